//! Settings: built-in defaults, then a TOML file (`config/default.toml` or `--config FILE`),
//! then the environment, later layers winning. Option names are Better Auth's, in snake_case;
//! every option can be set as `SESSIOND_<PATH>` with `__` between levels
//! (`SESSIOND_SESSION__EXPIRES_IN=3600`); lists and maps take JSON. Better Auth's own
//! variables (`BETTER_AUTH_SECRET`, `BETTER_AUTH_SECRETS`, `BETTER_AUTH_URL`,
//! `BETTER_AUTH_TRUSTED_ORIGINS`) and
//! `DATABASE_URL`, `REDIS_URL`, `HOST`, `PORT` are honoured under the `SESSIOND_` ones.

/// `Deserialize` for an option with a closed set of spellings (`exact`, or in `any case`),
/// whose error shows what was written and lists them (`must be a or b, not "c"`); the
/// loader adds the option's name and where its value came from. Defined before the
/// modules that use it.
macro_rules! one_of {
    (@key exact, $raw:ident) => {
        $raw.as_str()
    };
    (@key any case, $raw:ident) => {
        $raw.to_ascii_lowercase().as_str()
    };
    ($ty:ident, $($case:ident)+, $expected:literal, { $($name:literal => $v:ident),+ $(,)? }) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <String as serde::Deserialize>::deserialize(d)?;
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

mod advanced;
mod cookies;
mod forward_auth;
mod load;
mod multi_session;
mod origins;
mod proxies;
mod schema;
mod secret;
mod secrets;
mod service_api;
mod serving;
mod session;
mod storage;
mod telemetry;
mod tokens;
mod validate;
mod webhooks;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use advanced::{AdvancedSettings, CrossSubDomainCookies, IpAddressSettings, SameSite};
pub use cookies::{CookieAttributes, CookieSettings, CookiesSettings, SessionCookie};
pub use load::ConfigError;
pub use multi_session::{MultiSessionSettings, MAX_MULTI_SESSIONS};
pub use origins::check_origin_pattern;
pub use schema::{AdminSettings, AdvancedDatabase, GenerateId, PluginSettings, UserSettings};
pub use secret::Secret;
pub use secrets::{
    parse_secrets_env, VersionedSecret, BETTER_AUTH_DEFAULT_SECRET, MAX_SECRET_VERSION,
    MAX_SECRET_VERSIONS,
};
pub use service_api::{hash_key, Operation, ServiceApiSettings, ServiceKey, MAX_KEYS, MIN_KEY_LEN};
pub use serving::{
    ForwardAuthSettings, ListenAddr, LogFormat, LogSettings, MetricsSettings, OnStoreFailure,
    OpsSettings, RateLimitRule, RateLimitSettings, RateLimitStorage, ServerSettings,
};
pub use session::{
    field_type_matches, AdditionalField, CacheStrategy, CookieCacheSettings, EmailPasswordSettings,
    FieldType, ListSessionsTokens, MaxPerUserAction, SessionSettings, COMPACT_FALLBACK_S,
    TOKEN_FALLBACK_S,
};
pub use storage::{
    has_hash_tag, redis_addr, sentinel_addr, ClusterSettings, DatabaseSettings,
    KeyspaceNotifications, RedisSettings, SentinelSettings,
};
pub use telemetry::TelemetrySettings;
pub use tokens::{
    BearerSettings, ForwardAuthJwtSettings, JwksSettings, JwtSettings, KeyAlg,
    RevocationFeedSettings,
};
pub use validate::{path_glob, CREDENTIAL_ROUTES, MAX_DURATION_SECS};
pub use webhooks::{WebhookEndpoint, WebhooksSettings, EVENT_TYPES};

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
    /// Secret for signing cookies (Better Auth's `secret` / `BETTER_AUTH_SECRET`). With
    /// `secrets` set, only Better Auth's legacy secret: it still decrypts `jwe` caches.
    pub secret: Secret,
    /// Versioned secrets (Better Auth's `secrets` / `BETTER_AUTH_SECRETS`): the first signs,
    /// every one verifies (at most [`MAX_SECRET_VERSIONS`]). Empty: `secret` alone.
    pub secrets: Vec<VersionedSecret>,
    /// Extra origins allowed to send cookie-bearing POSTs; `*` and `?` are wildcards.
    pub trusted_origins: Vec<String>,
    /// Directory for the embedded SQLite database and a generated development secret.
    pub data_dir: PathBuf,
    /// Database connection.
    pub database: DatabaseSettings,
    /// Redis as Better Auth's secondary storage.
    pub redis: RedisSettings,
    /// Extra user columns (Better Auth's `user.*`).
    pub user: UserSettings,
    /// Session lifetime and refresh.
    pub session: SessionSettings,
    /// Email and password sign-in.
    pub email_and_password: EmailPasswordSettings,
    /// Cookies, origin checks, client addresses.
    pub advanced: AdvancedSettings,
    /// Better Auth plugins whose columns and rules apply.
    pub plugins: PluginSettings,
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
    /// The revocation feed for offline verifiers.
    pub revocation_feed: RevocationFeedSettings,
    /// The service API for backends.
    pub service_api: ServiceApiSettings,
    /// Trace export options (export itself is set by `OTEL_*` variables).
    pub telemetry: TelemetrySettings,
    /// Signed webhooks for lifecycle events.
    pub webhooks: WebhooksSettings,
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
            secrets: Vec::new(),
            trusted_origins: Vec::new(),
            data_dir: PathBuf::from("./data"),
            database: DatabaseSettings::default(),
            redis: RedisSettings::default(),
            user: UserSettings::default(),
            session: SessionSettings::default(),
            email_and_password: EmailPasswordSettings::default(),
            advanced: AdvancedSettings::default(),
            plugins: PluginSettings::default(),
            forward_auth: ForwardAuthSettings::default(),
            rate_limit: RateLimitSettings::default(),
            server: ServerSettings::default(),
            metrics: MetricsSettings::default(),
            ops: OpsSettings::default(),
            log: LogSettings::default(),
            revocation_feed: RevocationFeedSettings::default(),
            service_api: ServiceApiSettings::default(),
            telemetry: TelemetrySettings::default(),
            webhooks: WebhooksSettings::default(),
        }
    }
}

fn yes() -> bool {
    true
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

    /// Whether lifecycle events are recorded (the outbox and its triggers): for the audit
    /// trail or for webhooks.
    pub fn events_on(&self) -> bool {
        self.session.audit.keep_days > 0 || self.webhooks.enabled()
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
            RateLimitStorage::Auto => self.redis.enabled(),
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
