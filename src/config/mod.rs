//! Settings: built-in defaults, then a TOML file (`config/default.toml` or `--config FILE`),
//! then the environment, later layers winning. Option names are Better Auth's, in snake_case;
//! every option can be set as `SESSIOND_<PATH>` with `__` between levels
//! (`SESSIOND_SESSION__EXPIRES_IN=3600`); lists and maps take JSON. Better Auth's own
//! variables (`BETTER_AUTH_SECRET`, `BETTER_AUTH_URL`, `BETTER_AUTH_TRUSTED_ORIGINS`) and
//! `DATABASE_URL`, `REDIS_URL`, `HOST`, `PORT` are honoured under the `SESSIOND_` ones.

mod load;
mod secret;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use load::ConfigError;
pub use secret::Secret;

/// `Deserialize` for an option with a closed set of spellings (`exact`, or in `any case`),
/// whose error shows what was written and lists them (`must be a or b, not "c"`); the
/// loader adds the option's name and where its value came from.
macro_rules! one_of {
    (@key exact, $raw:ident) => {
        $raw.as_str()
    };
    (@key any case, $raw:ident) => {
        $raw.to_ascii_lowercase().as_str()
    };
    ($ty:ident, $($case:ident)+, $expected:literal, { $($name:literal => $v:ident),+ $(,)? }) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                match one_of!(@key $($case)+, raw) {
                    $($name => Ok(Self::$v),)+
                    _ => Err(serde::de::Error::custom(format!(
                        concat!("must be ", $expected, ", not {:?}"),
                        raw
                    ))),
                }
            }
        }
    };
}
pub use validate::{check_origin_pattern, path_glob, CREDENTIAL_ROUTES, MAX_DURATION_SECS};

/// Where the service runs; production refuses weak configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Local use: a secret is generated when none is given, logs are human-readable.
    #[default]
    Development,
    /// Deployed: a secret of at least 32 characters is required, logs are JSON.
    Production,
}

/// Every setting of the service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `development` or `production`.
    pub environment: Environment,
    /// Address to listen on.
    pub host: String,
    /// Port to listen on.
    pub port: u16,
    /// Public URL of the service (Better Auth's `baseURL`); its origin is trusted.
    /// Empty: `http://localhost:<port>`.
    pub base_url: String,
    /// Path under which the API is served.
    pub base_path: String,
    /// Secret for signing cookies (Better Auth's `secret` / `BETTER_AUTH_SECRET`).
    pub secret: Secret,
    /// Extra origins allowed to send cookie-bearing POSTs; `*` and `?` are wildcards.
    pub trusted_origins: Vec<String>,
    /// Directory for the embedded SQLite database and a generated development secret.
    pub data_dir: PathBuf,
    /// Database connection.
    pub database: DatabaseSettings,
    /// Redis as Better Auth's secondary storage.
    pub redis: RedisSettings,
    /// Session lifetime and refresh.
    pub session: SessionSettings,
    /// Email and password sign-in.
    pub email_and_password: EmailPasswordSettings,
    /// Cookies, origin checks, client addresses.
    pub advanced: AdvancedSettings,
    /// The forward-auth endpoint for reverse proxies.
    pub forward_auth: ForwardAuthSettings,
    /// Better Auth's rate limiter.
    pub rate_limit: RateLimitSettings,
    /// HTTP server limits.
    pub server: ServerSettings,
    /// Prometheus metrics.
    pub metrics: MetricsSettings,
    /// The operations endpoints (`/metrics`, `/readyz` detail, `/openapi.json`).
    pub ops: OpsSettings,
    /// Logging.
    pub log: LogSettings,
}

/// The forward-auth endpoint (nginx `auth_request`, Traefik ForwardAuth, Caddy
/// `forward_auth`, Envoy `ext_authz`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardAuthSettings {
    /// Serve the endpoint.
    pub enabled: bool,
    /// Its path (outside `base_path`).
    pub path: String,
    /// Answer signed-out requests with a 302 to `sign_in_url` instead of 401 (also per
    /// request with `?redirect=1`).
    pub redirect: bool,
    /// Where redirects go; the original URL is added as the `redirect_param` query parameter.
    pub sign_in_url: String,
    /// Name of the query parameter carrying the original URL.
    pub redirect_param: String,
    /// Response header carrying the user id.
    pub header_user_id: String,
    /// Response header carrying the email.
    pub header_email: String,
    /// Response header carrying the display name (percent-encoded when not ASCII).
    pub header_name: String,
    /// Response header carrying the session id.
    pub header_session_id: String,
    /// Response header carrying the session expiry (ISO 8601).
    pub header_expires_at: String,
}

impl Default for ForwardAuthSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/forward-auth".into(),
            redirect: false,
            sign_in_url: String::new(),
            redirect_param: "rd".into(),
            header_user_id: "X-Auth-User-Id".into(),
            header_email: "X-Auth-Email".into(),
            header_name: "X-Auth-Name".into(),
            header_session_id: "X-Auth-Session-Id".into(),
            header_expires_at: "X-Auth-Expires-At".into(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            environment: Environment::Development,
            host: "127.0.0.1".into(),
            port: 3000,
            base_url: String::new(),
            base_path: "/api/auth".into(),
            secret: Secret::default(),
            trusted_origins: Vec::new(),
            data_dir: PathBuf::from("./data"),
            database: DatabaseSettings::default(),
            redis: RedisSettings::default(),
            session: SessionSettings::default(),
            email_and_password: EmailPasswordSettings::default(),
            advanced: AdvancedSettings::default(),
            forward_auth: ForwardAuthSettings::default(),
            rate_limit: RateLimitSettings::default(),
            server: ServerSettings::default(),
            metrics: MetricsSettings::default(),
            ops: OpsSettings::default(),
            log: LogSettings::default(),
        }
    }
}

/// Database connection settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://…` or `sqlite://…`; empty: SQLite at `<data_dir>/sessiond.db`. May
    /// carry a password.
    pub url: Secret,
    /// Connection pool size.
    pub max_connections: u32,
    /// Seconds to wait for a pooled connection before answering 503.
    pub acquire_timeout: u64,
    /// Apply migrations at start.
    pub migrate_on_start: bool,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: Secret::default(),
            max_connections: 16,
            acquire_timeout: 5,
            migrate_on_start: true,
        }
    }
}

/// Redis (Better Auth's `secondaryStorage`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:6379/0`; empty: no secondary storage. May carry a password.
    pub url: Secret,
    /// Prefix of every key (Better Auth core: none; `@better-auth/redis-storage`:
    /// `better-auth:`).
    pub key_prefix: String,
    /// How session keys deleted by other applications (a Better Auth app sharing this
    /// Redis, an operator) are learned: through Redis keyspace notifications.
    pub keyspace_notifications: KeyspaceNotifications,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: Secret::default(),
            key_prefix: String::new(),
            keyspace_notifications: KeyspaceNotifications::Check,
        }
    }
}

/// Whether sessiond may rely on, or set, Redis's `notify-keyspace-events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyspaceNotifications {
    /// Read the setting on every connection and every second: while deletions are not
    /// announced (flags `E`, `g` and `e` missing), cookie-cache hits are revalidated.
    Check,
    /// As `check`, and set the missing flags (`CONFIG SET`) whenever they are missing:
    /// changes the configuration of a shared Redis, so only when allowed.
    Configure,
    /// The operator guarantees the flags (e.g. a managed Redis's parameter group).
    Assume,
    /// Do not follow deletions by others: a key deleted outside sessiond stays usable from
    /// a cookie cache until it expires (Better Auth's behaviour).
    Off,
}

impl<'de> Deserialize<'de> for KeyspaceNotifications {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Earlier versions took a boolean: true configured Redis, false did nothing.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Name(String),
        }
        match Raw::deserialize(d)? {
            Raw::Flag(true) => Ok(Self::Configure),
            Raw::Flag(false) => Ok(Self::Off),
            Raw::Name(n) => match n.as_str() {
                "check" => Ok(Self::Check),
                "configure" | "true" => Ok(Self::Configure),
                "assume" => Ok(Self::Assume),
                "off" | "false" => Ok(Self::Off),
                other => Err(serde::de::Error::custom(format!(
                    "expected check, configure, assume or off, not {other:?}"
                ))),
            },
        }
    }
}

/// Better Auth's `session.*` options (durations in seconds).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// Session lifetime; each refresh moves the expiry to now + this.
    pub expires_in: u64,
    /// How old the last refresh must be before `get-session` slides the expiry.
    pub update_age: u64,
    /// Sessions younger than this are "fresh"; 0 disables freshness checks.
    pub fresh_age: u64,
    /// Never slide the expiry.
    pub disable_session_refresh: bool,
    /// `GET /get-session` never writes; `POST /get-session` refreshes.
    pub defer_session_refresh: bool,
    /// Absolute lifetime of a session from sign-in (s), whatever the refreshes; 0: none.
    /// Not a Better Auth option: its sessions slide for ever while in use.
    pub absolute_timeout: u64,
    /// Extra session columns, by name.
    pub additional_fields: BTreeMap<String, AdditionalField>,
    /// The `session_data` cookie cache.
    pub cookie_cache: CookieCacheSettings,
    /// With Redis: keep sessions in the database too.
    pub store_session_in_database: bool,
    /// With Redis and `store_session_in_database`: end revoked rows (`expiresAt = now`)
    /// instead of deleting them, for audit.
    pub preserve_session_in_database: bool,
    /// Which tokens `list-sessions` shows: every session's (Better Auth's behaviour), the
    /// caller's own only, or none (revoke by id instead).
    pub list_sessions_tokens: ListSessionsTokens,
}

/// The tokens `list-sessions` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ListSessionsTokens {
    /// Every session's token (Better Auth).
    #[default]
    All,
    /// Only the calling session's.
    Current,
    /// None: sessions are revoked by id.
    None,
}

/// Better Auth's `session.cookieCache`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CookieCacheSettings {
    /// Answer `get-session` from a signed cookie without reading the store.
    pub enabled: bool,
    /// Lifetime of a cached value (s); unset: 300, or `expires_in` in stateless mode.
    pub max_age: Option<u64>,
    /// `compact`, `jwt` or `jwe`; unset: `compact`, or `jwe` in stateless mode.
    pub strategy: Option<CacheStrategy>,
    /// Cached values of another version are refused; change it to invalidate every cache.
    pub version: String,
    /// Re-issue the cache when 80% of its life has passed (stateless mode only; forced
    /// off with a database, as in Better Auth). Unset: on in stateless mode.
    pub refresh_cache: Option<bool>,
    /// Refuse cached sessions revoked on any replica at once (PostgreSQL LISTEN/NOTIFY,
    /// Redis pub/sub) instead of after `max_age`.
    pub immediate_revocation: bool,
}

impl Default for CookieCacheSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            max_age: None,
            strategy: None,
            version: "1".into(),
            refresh_cache: None,
            immediate_revocation: true,
        }
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            expires_in: 604_800,
            update_age: 86_400,
            fresh_age: 86_400,
            disable_session_refresh: false,
            defer_session_refresh: false,
            absolute_timeout: 0,
            additional_fields: BTreeMap::new(),
            cookie_cache: CookieCacheSettings::default(),
            store_session_in_database: false,
            preserve_session_in_database: false,
            list_sessions_tokens: ListSessionsTokens::All,
        }
    }
}

/// Type of an additional field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Text.
    String,
    /// Integer.
    Number,
    /// Boolean.
    Boolean,
}

/// An additional session field, as Better Auth's `additionalFields` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdditionalField {
    /// Value type.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Must a value exist (after defaults) when a session is created.
    #[serde(default)]
    pub required: bool,
    /// Value given to new sessions.
    #[serde(default)]
    pub default_value: Option<serde_json::Value>,
    /// Clients may set it through `update-session`.
    #[serde(default = "yes")]
    pub input: bool,
    /// Included in responses.
    #[serde(default = "yes")]
    pub returned: bool,
}

fn yes() -> bool {
    true
}

/// Better Auth's `emailAndPassword.*` options.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailPasswordSettings {
    /// Allow email and password sign-up and sign-in. Unset: yes, except in stateless mode,
    /// where users would live in one process only (anyone could sign up again, on
    /// another replica or after a restart, with an email already in use).
    pub enabled: Option<bool>,
    /// Refuse new sign-ups.
    pub disable_sign_up: bool,
    /// Shortest accepted password.
    pub min_password_length: usize,
    /// Longest accepted password.
    pub max_password_length: usize,
    /// Sign the user in after sign-up.
    pub auto_sign_in: bool,
    /// Password hashes allowed to run at once (0: half the CPUs).
    pub hash_concurrency: usize,
}

impl Default for EmailPasswordSettings {
    fn default() -> Self {
        Self {
            enabled: None,
            disable_sign_up: false,
            min_password_length: 8,
            max_password_length: 128,
            auto_sign_in: true,
            hash_concurrency: 0,
        }
    }
}

/// Better Auth's `advanced.*` options.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdvancedSettings {
    /// Cookie name prefix (`<prefix>.session_token`).
    pub cookie_prefix: String,
    /// Force `Secure` cookies and the `__Secure-` prefix on or off; unset: on when
    /// `base_url` is https or in production.
    pub use_secure_cookies: Option<bool>,
    /// Skip the origin check on cookie-bearing POSTs and the sign-in CSRF check.
    pub disable_csrf_check: bool,
    /// Skip the origin check (Better Auth's older switch).
    pub disable_origin_check: bool,
    /// Share cookies with subdomains.
    pub cross_sub_domain_cookies: CrossSubDomainCookies,
    /// Attributes applied to every session cookie (Better Auth's `defaultCookieAttributes`).
    pub default_cookie_attributes: CookieAttributes,
    /// Client address detection.
    pub ip_address: IpAddressSettings,
    /// Better Auth stores a number, boolean or object sent for a text field of
    /// `update-user`/`update-session` as its text (`42` → `"42"`); sessiond answers 400
    /// unless this is on.
    pub coerce_field_types: bool,
}

impl Default for AdvancedSettings {
    fn default() -> Self {
        Self {
            cookie_prefix: "better-auth".into(),
            use_secure_cookies: None,
            disable_csrf_check: false,
            disable_origin_check: false,
            cross_sub_domain_cookies: CrossSubDomainCookies::default(),
            default_cookie_attributes: CookieAttributes::default(),
            ip_address: IpAddressSettings::default(),
            coerce_field_types: false,
        }
    }
}

/// `advanced.defaultCookieAttributes`: overrides of the session cookies' attributes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CookieAttributes {
    /// `lax` (default), `strict` or `none` (which forces `Secure`).
    pub same_site: Option<SameSite>,
    /// Force `Secure` on or off (the `__Secure-` name prefix follows `use_secure_cookies`).
    pub secure: Option<bool>,
    /// Add `Partitioned` (CHIPS; forces `Secure`).
    pub partitioned: bool,
}

/// The `SameSite` attribute of the session cookies. Spelled in any case (`Lax`, `lax`),
/// as Better Auth accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    /// Sent on top-level navigations from other sites (the browsers' default).
    #[default]
    Lax,
    /// Sent only on requests from the same site.
    Strict,
    /// Sent on every request, cross-site too; forces `Secure`.
    None,
}

impl SameSite {
    /// The attribute's value in a `Set-Cookie` header.
    pub fn as_attribute(self) -> &'static str {
        match self {
            Self::Lax => "Lax",
            Self::Strict => "Strict",
            Self::None => "None",
        }
    }
}

one_of!(SameSite, any case, "lax, strict or none", {
    "lax" => Lax,
    "strict" => Strict,
    "none" => None,
});

/// `advanced.crossSubDomainCookies`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrossSubDomainCookies {
    /// Emit `Domain=` on session cookies.
    pub enabled: bool,
    /// The domain; empty: the host of `base_url`.
    pub domain: String,
}

/// `advanced.ipAddress`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpAddressSettings {
    /// Headers holding the client address, tried in order.
    pub ip_address_headers: Vec<String>,
    /// Never record addresses.
    pub disable_ip_tracking: bool,
    /// IPv6 addresses are masked to this prefix length.
    pub ipv6_subnet: u8,
    /// Proxies (addresses or CIDRs) whose hops are skipped in forwarded chains.
    pub trusted_proxies: Vec<String>,
}

impl Default for IpAddressSettings {
    fn default() -> Self {
        Self {
            ip_address_headers: vec!["x-forwarded-for".into()],
            disable_ip_tracking: false,
            ipv6_subnet: 64,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Better Auth's `rateLimit.*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Limit requests per client address and path. Unset: on in production only (as
    /// Better Auth does).
    pub enabled: Option<bool>,
    /// Default window (s).
    pub window: u64,
    /// Default requests per window.
    pub max: u64,
    /// `memory` (per process, sliding) or `secondary-storage` (Redis, shared by replicas,
    /// fixed window). Empty: `secondary-storage` when Redis is configured, else `memory`.
    pub storage: RateLimitStorage,
    /// Per-path rules (exact path under the base path, or a `*` glob), overriding the
    /// defaults and the built-in sign-in rule.
    pub custom_rules: BTreeMap<String, RateLimitRule>,
    /// What a limited request gets while the shared counter (Redis) cannot be reached.
    pub on_store_failure: OnStoreFailure,
}

/// Where the rate limiter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum RateLimitStorage {
    /// Empty: Redis when `redis.url` is set, else memory.
    #[default]
    #[serde(rename = "")]
    Auto,
    /// In this process (the window slides with each allowed request).
    #[serde(rename = "memory")]
    Memory,
    /// In Redis, shared by every replica (fixed window).
    #[serde(rename = "secondary-storage")]
    SecondaryStorage,
}

one_of!(RateLimitStorage, exact, "memory or secondary-storage", {
    "" => Auto,
    "memory" => Memory,
    "secondary-storage" => SecondaryStorage,
});

/// The rate limiter's answer when its shared counter is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreFailure {
    /// Refuse (503) the routes that check credentials (sign-in, sign-up,
    /// change-password: 3 per 10 s rules and stricter), let the rest through.
    #[default]
    ClosedForCredentials,
    /// Refuse every limited request.
    Closed,
    /// Let every request through (logged).
    Open,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: None,
            window: 10,
            max: 100,
            storage: RateLimitStorage::Auto,
            custom_rules: BTreeMap::new(),
            on_store_failure: OnStoreFailure::ClosedForCredentials,
        }
    }
}

/// One rate-limit rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRule {
    /// Window (s).
    #[serde(default = "ten")]
    pub window: u64,
    /// Requests per window.
    #[serde(default = "hundred")]
    pub max: u64,
    /// `false` exempts the path from limiting.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn ten() -> u64 {
    10
}

fn hundred() -> u64 {
    100
}

/// HTTP server limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Seconds a request may take before it is answered 503.
    pub request_timeout: u64,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Seconds in-flight requests get to finish after SIGTERM.
    pub shutdown_grace: u64,
    /// Largest request head (request line and headers, cookies included), in bytes; 431
    /// beyond. Node's default, which Better Auth apps already live with.
    pub max_header_bytes: usize,
    /// Seconds a client has to send a whole request head once it has started one.
    pub header_read_timeout: u64,
    /// Seconds an idle keep-alive connection is kept open (and a stalled response write).
    pub idle_timeout: u64,
    /// Open connections at most; beyond, the longest-idle ones are closed to admit new
    /// ones. Lowered to fit the process's file descriptor limit.
    pub max_connections: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            request_timeout: 30,
            body_limit: 65_536,
            shutdown_grace: 30,
            max_header_bytes: 16_384,
            header_read_timeout: 10,
            idle_timeout: 75,
            max_connections: 1_024,
        }
    }
}

/// Prometheus metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Record and serve `/metrics`.
    pub enabled: bool,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// Where the operations endpoints are served: `/metrics`, `/openapi.json` and `/readyz`
/// with each check's detail. `/healthz` and a bare `/readyz` status are always on the main
/// listener, for probes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpsSettings {
    /// `host:port` of a private listener serving them (and `/healthz`); empty: none.
    #[serde(deserialize_with = "empty_is_none", serialize_with = "none_is_empty")]
    pub listen: Option<ListenAddr>,
    /// Serve them on the main listener too. Unset: yes in development, no in production.
    pub on_main_listener: Option<bool>,
}

/// A listen address, `host:port`: an IP address or a name resolved when binding, and a
/// port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ListenAddr(String);

impl ListenAddr {
    /// The address as written, for binding.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Self(s.to_owned()))
            }
            _ => Err(format!("must be host:port (127.0.0.1:9464), not {s:?}")),
        }
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An optional value written as empty text when absent.
fn empty_is_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr<Err = String>,
{
    match Option::<String>::deserialize(d)? {
        Some(s) if !s.is_empty() => s.parse().map(Some).map_err(serde::de::Error::custom),
        _ => Ok(None),
    }
}

/// The other half of [`empty_is_none`].
fn none_is_empty<S: serde::Serializer>(v: &Option<ListenAddr>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_ref().map_or("", ListenAddr::as_str))
}

/// Logging settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `tracing` filter, e.g. `info` or `sessiond=debug`.
    pub level: String,
    /// `json`, `pretty`, or empty: JSON in production, pretty otherwise.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Empty: JSON in production, pretty otherwise.
    #[default]
    #[serde(rename = "")]
    Auto,
    /// JSON lines.
    Json,
    /// Human-readable text (also spelled `text`).
    Pretty,
}

one_of!(LogFormat, exact, "json, pretty or text", {
    "" => Auto,
    "json" => Json,
    "pretty" => Pretty,
    "text" => Pretty,
});

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Auto,
        }
    }
}

impl Settings {
    /// The public base URL, defaulting to `http://localhost:<port>`.
    pub fn effective_base_url(&self) -> String {
        if self.base_url.is_empty() {
            format!("http://localhost:{}", self.port)
        } else {
            self.base_url.trim_end_matches('/').to_string()
        }
    }

    /// Stateless mode: no database (`database.url = "memory"`); sessions live in the
    /// cookie cache, which is then always on.
    pub fn is_stateless(&self) -> bool {
        matches!(self.database.url.expose_secret(), "memory" | "memory:")
    }

    /// Whether the rate limiter runs (Better Auth's default: in production only).
    pub fn rate_limit_enabled(&self) -> bool {
        self.rate_limit
            .enabled
            .unwrap_or(self.environment == Environment::Production)
    }

    /// Whether the rate limiter counts in Redis, shared by every replica (the default when
    /// Redis is configured), rather than in this process.
    pub fn rate_limit_shared(&self) -> bool {
        match self.rate_limit.storage {
            RateLimitStorage::Auto => !self.redis.url.is_empty(),
            RateLimitStorage::SecondaryStorage => true,
            RateLimitStorage::Memory => false,
        }
    }

    /// Whether log lines are JSON (production's default) rather than text.
    pub fn json_logs(&self) -> bool {
        match self.log.format {
            LogFormat::Auto => self.environment == Environment::Production,
            LogFormat::Json => true,
            LogFormat::Pretty => false,
        }
    }

    /// Whether cookies are `Secure` and `__Secure-`-prefixed.
    pub fn secure_cookies(&self) -> bool {
        self.advanced.use_secure_cookies.unwrap_or_else(|| {
            self.effective_base_url().starts_with("https://")
                || self.environment == Environment::Production
        })
    }

    /// The cookie cache's `max_age` in effect (s): as set, else `expires_in` in stateless
    /// mode (the cookie is the session) and 300 otherwise (Better Auth's defaults).
    pub fn cache_max_age(&self) -> u64 {
        self.session
            .cookie_cache
            .max_age
            .unwrap_or(if self.is_stateless() {
                self.session.expires_in
            } else {
                300
            })
    }

    /// Whether `get-session` answers from the cookie cache: as set, and always in stateless
    /// mode, where the cookie is the session.
    pub fn cookie_cache_enabled(&self) -> bool {
        self.session.cookie_cache.enabled || self.is_stateless()
    }

    /// The longest a cookie-cache value this service mints stays acceptable (s): the
    /// [`cache_max_age`](Self::cache_max_age) of a remembered session, or the codecs'
    /// fallback for one that is not remembered (minted without `Max-Age`). Revocations are
    /// remembered, and caches minted while they could not be learned are distrusted, this
    /// long.
    pub fn cookie_cache_window_secs(&self) -> u64 {
        self.cache_max_age()
            .max(COMPACT_FALLBACK_S)
            .max(TOKEN_FALLBACK_S)
    }

    /// Whether email and password sign-up and sign-in are on (off by default in stateless
    /// mode).
    pub fn email_password_enabled(&self) -> bool {
        self.email_and_password
            .enabled
            .unwrap_or(!self.is_stateless())
    }

    /// Whether `/metrics`, `/openapi.json` and `/readyz`'s detail are served on the main
    /// listener (development's default) or only on `ops.listen` (production's).
    pub fn ops_on_main_listener(&self) -> bool {
        self.ops
            .on_main_listener
            .unwrap_or(self.environment == Environment::Development)
    }
}

/// Whether a JSON value fits an additional field's type.
pub fn field_type_matches(kind: FieldType, v: &serde_json::Value) -> bool {
    match kind {
        FieldType::String => v.is_string(),
        FieldType::Number => v.is_i64(),
        FieldType::Boolean => v.is_boolean(),
    }
}

/// Lifetime (s) of a compact cookie-cache value minted without `Max-Age` (Better Auth's
/// `maxAge || 60`).
pub const COMPACT_FALLBACK_S: u64 = 60;
/// Lifetime (s) of a JWT or JWE cookie-cache value minted without `Max-Age` (Better Auth's
/// `maxAge || 300`).
pub const TOKEN_FALLBACK_S: u64 = 300;

/// Which cookie cache format to write and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CacheStrategy {
    /// base64url(JSON) with an HMAC-SHA256 signature (Better Auth's default).
    #[default]
    Compact,
    /// HS256 JWT.
    Jwt,
    /// Encrypted JWE (`dir`, A256CBC-HS512).
    Jwe,
}

#[cfg(test)]
mod tests {
    use super::Settings;

    #[test]
    fn the_cache_window_covers_values_minted_without_max_age() {
        let mut s = Settings::default();
        assert!(!s.cookie_cache_enabled());
        assert_eq!(s.cookie_cache_window_secs(), 300);
        s.session.cookie_cache.max_age = Some(30);
        assert_eq!(s.cookie_cache_window_secs(), 300);
        s.session.cookie_cache.max_age = Some(3_600);
        assert_eq!(s.cookie_cache_window_secs(), 3_600);
        // Stateless: the cookie is the session, cached for as long as it lives.
        s.session.cookie_cache.max_age = None;
        s.database.url = "memory".into();
        assert!(s.cookie_cache_enabled());
        assert_eq!(s.cookie_cache_window_secs(), s.session.expires_in);
    }

    fn load(toml: &str, vars: &[(&str, &str)]) -> Result<Settings, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_sources(toml, &vars).map_err(|e| e.to_string())
    }

    #[test]
    fn closed_options_take_their_documented_spellings() {
        use super::{LogFormat, RateLimitStorage, SameSite};
        let s = load(
            "[advanced.default_cookie_attributes]\nsame_site = \"Strict\"\n\
             [rate_limit]\nstorage = \"secondary-storage\"\n[log]\nformat = \"text\"\n",
            &[("SESSIOND_OPS__LISTEN", "localhost:9464")],
        )
        .unwrap();
        let adv = &s.advanced.default_cookie_attributes;
        assert_eq!(adv.same_site, Some(SameSite::Strict));
        assert_eq!(s.rate_limit.storage, RateLimitStorage::SecondaryStorage);
        assert_eq!(s.log.format, LogFormat::Pretty);
        assert_eq!(
            s.ops.listen.as_ref().map(|l| l.as_str()),
            Some("localhost:9464")
        );
        let s = load(
            "[rate_limit]\nstorage = \"memory\"\n[ops]\nlisten = \"\"\n",
            &[("SESSIOND_LOG__FORMAT", "json")],
        )
        .unwrap();
        assert_eq!(s.rate_limit.storage, RateLimitStorage::Memory);
        assert_eq!(s.log.format, LogFormat::Json);
        assert!(s.ops.listen.is_none());
        assert!(!s.rate_limit_shared());
        let s = load("", &[("REDIS_URL", "redis://127.0.0.1:6379")]).unwrap();
        assert_eq!(s.rate_limit.storage, RateLimitStorage::Auto);
        assert!(s.rate_limit_shared());
    }

    #[test]
    fn closed_options_name_the_option_and_the_spellings() {
        for (toml, key, message) in [
            (
                "[advanced.default_cookie_attributes]\nsame_site = \"Loose\"\n",
                "advanced.default_cookie_attributes.same_site",
                "must be lax, strict or none, not \"Loose\"",
            ),
            (
                "[rate_limit]\nstorage = \"redis\"\n",
                "rate_limit.storage",
                "must be memory or secondary-storage, not \"redis\"",
            ),
            (
                "[log]\nformat = \"xml\"\n",
                "log.format",
                "must be json, pretty or text, not \"xml\"",
            ),
            (
                "[ops]\nlisten = \"9464\"\n",
                "ops.listen",
                "must be host:port (127.0.0.1:9464), not \"9464\"",
            ),
        ] {
            let err = load(toml, &[]).unwrap_err();
            assert!(
                err.contains(&format!("invalid value for {key} (from ")) && err.contains(message),
                "{err}"
            );
        }
    }
}
