//! Settings: built-in defaults, then a TOML file (`config/default.toml` or `--config FILE`),
//! then the environment, later layers winning. Option names are Better Auth's, in snake_case;
//! every option can be set as `SESSIOND_<PATH>` with `__` between levels
//! (`SESSIOND_SESSION__EXPIRES_IN=3600`); lists and maps take JSON. Better Auth's own
//! variables (`BETTER_AUTH_SECRET`, `BETTER_AUTH_URL`, `BETTER_AUTH_TRUSTED_ORIGINS`) and
//! `DATABASE_URL`, `REDIS_URL`, `HOST`, `PORT` are honoured under the `SESSIOND_` ones.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

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
    pub secret: String,
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
            secret: String::new(),
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
            log: LogSettings::default(),
        }
    }
}

/// Database connection settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://…` or `sqlite://…`; empty: SQLite at `<data_dir>/sessiond.db`.
    pub url: String,
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
            url: String::new(),
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
    /// `redis://host:6379/0`; empty: no secondary storage.
    pub url: String,
    /// Prefix of every key (Better Auth core: none; `@better-auth/redis-storage`:
    /// `better-auth:`).
    pub key_prefix: String,
    /// Turn on Redis keyspace notifications for deleted keys, so that sessions deleted by
    /// other applications are refused by cookie caches at once.
    pub keyspace_notifications: bool,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            key_prefix: String::new(),
            keyspace_notifications: true,
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
    pub strategy: Option<crate::session::cache::Strategy>,
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
    /// Allow email and password sign-in.
    pub enabled: bool,
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
            enabled: true,
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
    pub same_site: Option<String>,
    /// Force `Secure` on or off (the `__Secure-` name prefix follows `use_secure_cookies`).
    pub secure: Option<bool>,
    /// Add `Partitioned` (CHIPS; forces `Secure`).
    pub partitioned: bool,
}

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
    pub storage: String,
    /// Per-path rules (exact path under the base path, or a `*` glob), overriding the
    /// defaults and the built-in sign-in rule.
    pub custom_rules: BTreeMap<String, RateLimitRule>,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: None,
            window: 10,
            max: 100,
            storage: String::new(),
            custom_rules: BTreeMap::new(),
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
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            request_timeout: 30,
            body_limit: 65_536,
            shutdown_grace: 30,
        }
    }
}

/// Prometheus metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `/metrics`.
    pub enabled: bool,
    /// `host:port` of a separate listener for `/metrics`; empty: the main listener.
    pub listen: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: String::new(),
        }
    }
}

/// Logging settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `tracing` filter, e.g. `info` or `sessiond=debug`.
    pub level: String,
    /// `json`, `pretty`, or empty: JSON in production, pretty otherwise.
    pub format: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: String::new(),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value could not be read; the message names the key and where it came from.
    #[error("configuration: {0}")]
    Invalid(String),
}

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        // Name the key and where its value came from, e.g.
        // "session.expires_in (environment variable SESSIOND_SESSION__EXPIRES_IN): …".
        let mut msgs = Vec::new();
        for err in e {
            let key = err.path.join(".").to_lowercase();
            let source = match err.metadata.as_ref() {
                Some(m) if m.name.contains("SESSIOND_") => {
                    format!(
                        "environment variable SESSIOND_{}",
                        key.to_uppercase().replace('.', "__")
                    )
                }
                Some(m) if m.name.contains("environment") => format!(
                    "environment variable {}",
                    match key.as_str() {
                        "secret" => "BETTER_AUTH_SECRET",
                        "base_url" => "BETTER_AUTH_URL",
                        "database.url" => "DATABASE_URL",
                        "redis.url" => "REDIS_URL",
                        "host" => "HOST",
                        _ => "PORT",
                    }
                ),
                Some(m) => match &m.source {
                    Some(src) => format!("{} {src}", m.name),
                    None => m.name.to_string(),
                },
                None => "defaults".into(),
            };
            let what = match &err.kind {
                figment::error::Kind::UnknownField(f, _) => {
                    format!("unknown option {:?}", f.to_lowercase())
                }
                other => other.to_string(),
            };
            if key.is_empty() {
                msgs.push(format!("{what} (from {source})"));
            } else {
                msgs.push(format!("invalid value for {key} (from {source}): {what}"));
            }
        }
        ConfigError::Invalid(msgs.join("; "))
    }
}

impl Settings {
    /// Loads defaults < `file` (or `config/default.toml` when present) < environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError::Invalid(format!(
                        "config file {} does not exist",
                        path.display()
                    )));
                }
                fig = fig.merge(Toml::file_exact(path));
            }
            // The default file is optional, and only looked for where sessiond runs.
            None if Path::new("config/default.toml").is_file() => {
                fig = fig.merge(Toml::file_exact("config/default.toml"));
            }
            None => {}
        }
        Self::from_figment(fig.merge(environment_provider()))
    }

    /// Extracts and checks settings from a prepared figment.
    pub fn from_figment(fig: Figment) -> Result<Self, ConfigError> {
        let s: Settings = fig.extract()?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !self.base_path.starts_with('/') || self.base_path.ends_with('/') {
            return Err(ConfigError::Invalid(format!(
                "base_path must start with '/' and not end with '/': {:?}",
                self.base_path
            )));
        }
        if self.session.expires_in == 0 {
            return Err(ConfigError::Invalid(
                "session.expires_in must be > 0".into(),
            ));
        }
        for (name, field) in &self.session.additional_fields {
            let ok = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !ok || crate::session::model::CORE_SESSION_FIELDS.contains(&name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "session.additional_fields: {name:?} is not a usable field name"
                )));
            }
            if let Some(d) = &field.default_value {
                if !field_type_matches(field.kind, d) {
                    return Err(ConfigError::Invalid(format!(
                        "session.additional_fields.{name}.default_value does not match its type"
                    )));
                }
            }
        }
        if let Some(ss) = &self.advanced.default_cookie_attributes.same_site {
            if !matches!(ss.to_ascii_lowercase().as_str(), "lax" | "strict" | "none") {
                return Err(ConfigError::Invalid(format!(
                    "advanced.default_cookie_attributes.same_site must be lax, strict or none, not {ss:?}"
                )));
            }
        }
        if self.email_and_password.min_password_length > self.email_and_password.max_password_length
        {
            return Err(ConfigError::Invalid(
                "email_and_password.min_password_length exceeds max_password_length".into(),
            ));
        }
        Ok(())
    }

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
        matches!(self.database.url.as_str(), "memory" | "memory:")
    }

    /// Whether the rate limiter runs (Better Auth's default: in production only).
    pub fn rate_limit_enabled(&self) -> bool {
        self.rate_limit
            .enabled
            .unwrap_or(self.environment == Environment::Production)
    }

    /// Whether cookies are `Secure` and `__Secure-`-prefixed.
    pub fn secure_cookies(&self) -> bool {
        self.advanced.use_secure_cookies.unwrap_or_else(|| {
            self.effective_base_url().starts_with("https://")
                || self.environment == Environment::Production
        })
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

fn environment_provider() -> Figment {
    // Better Auth's and the platform's variable names, under our own prefixed ones.
    let compat = Env::raw()
        .only(&[
            "BETTER_AUTH_SECRET",
            "BETTER_AUTH_URL",
            "DATABASE_URL",
            "REDIS_URL",
            "HOST",
            "PORT",
        ])
        .map(|k| {
            match k.as_str() {
                "BETTER_AUTH_SECRET" => "secret",
                "BETTER_AUTH_URL" => "base_url",
                "DATABASE_URL" => "database.url",
                "REDIS_URL" => "redis.url",
                "HOST" => "host",
                _ => "port",
            }
            .into()
        })
        .split(".");
    // Lists and maps come as JSON (`SESSIOND_TRUSTED_ORIGINS='["https://a.example"]'`);
    // figment's own parser does not read JSON objects, so those values are parsed here.
    let mut json_keys = Vec::new();
    let mut fig = Figment::new().merge(compat);
    for (key, value) in std::env::vars() {
        let Some(rest) = key.strip_prefix("SESSIOND_") else {
            continue;
        };
        let trimmed = value.trim_start();
        if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
            continue;
        }
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&value) {
            fig = fig.merge(Serialized::default(
                &rest.to_lowercase().replace("__", "."),
                v,
            ));
            json_keys.push(rest.to_owned());
        }
    }
    fig.merge(
        Env::prefixed("SESSIOND_")
            .filter(move |k| !json_keys.iter().any(|j| j.eq_ignore_ascii_case(k.as_str())))
            .split("__"),
    )
}
