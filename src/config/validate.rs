//! Checks that refuse, at start, a configuration that would misbehave later: durations that
//! would overflow date arithmetic, URLs that are not URLs, trusted-origin patterns that
//! trust every website, limits too small to serve a request. Origins, trusted proxies and
//! the forward-auth endpoint have modules of their own; `validate` runs them all.

use super::cookies::{check_cookies, check_domain, is_cookie_token};
use super::origins::is_http_url;
use super::proxies::check_trusted_proxies;
use super::{check_origin_pattern, field_type_matches, ConfigError, Settings};

/// The longest duration any option accepts: 100 years, in seconds. Beyond it date
/// arithmetic would overflow, and nothing needs more.
pub const MAX_DURATION_SECS: u64 = 3_155_760_000;

/// Smallest accepted request head: the HTTP server's own minimum buffer.
const MIN_HEADER_BYTES: usize = 8_192;
/// Largest accepted request head (1 MiB).
const MAX_HEADER_BYTES: usize = 1 << 20;
/// Largest accepted body limit (1 MiB): no route reads more than a few KiB.
const MAX_BODY_BYTES: usize = 1 << 20;
/// Most password hashes at once.
const MAX_HASH_CONCURRENCY: usize = 256;

/// A refusal, its message naming the option.
pub(super) fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// Paths (relative to the base path) whose rate limit is 3 per 10 s unless a custom rule
/// says otherwise: every path starting with one of these.
pub const CREDENTIAL_ROUTES: [&str; 4] =
    ["/sign-in", "/sign-up", "/change-password", "/change-email"];

/// Whether a rate-limit rule's path pattern matches a path: exact, or with one `*`
/// standing for any run of characters.
pub fn path_glob(pattern: &str, path: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == path,
        Some((pre, post)) => {
            path.len() >= pre.len() + post.len() && path.starts_with(pre) && path.ends_with(post)
        }
    }
}

impl Settings {
    /// Choices that weaken a production deployment, each worth a warning at start: they
    /// may be deliberate (a proxy in front does the same job), never silent.
    pub fn risky_choices(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let adv = &self.advanced;
        if adv.disable_csrf_check {
            out.push("advanced.disable_csrf_check is on: cross-site requests are not refused");
        }
        if adv.disable_origin_check {
            out.push(
                "advanced.disable_origin_check is on: callback URLs and origins are not checked",
            );
        }
        if adv.use_secure_cookies == Some(false) {
            out.push("advanced.use_secure_cookies is off: session cookies travel over plain HTTP");
        }
        if !self.rate_limit_enabled() {
            out.push("rate_limit is off: passwords can be guessed at full speed");
        } else if self.rate_limit.on_store_failure == super::OnStoreFailure::Open {
            out.push("rate_limit.on_store_failure = open: no limit while Redis is unreachable");
        }
        let credential_rules = self.rate_limit.custom_rules.iter().filter(|(p, _)| {
            ["/sign-in/email", "/sign-up/email", "/change-password"]
                .iter()
                .any(|route| path_glob(p, route))
        });
        for (_, r) in credential_rules {
            // Above Better Auth's 3 per 10 s in rate, or over 10 attempts in one burst.
            let lifted =
                !r.enabled || r.max > 10 || r.max.saturating_mul(10) > r.window.saturating_mul(3);
            if self.rate_limit_enabled() && lifted {
                out.push(
                    "rate_limit.custom_rules lift the limit on sign-in, sign-up or \
                     change-password above 3 attempts per 10 s or 10 in a burst: passwords \
                     can be guessed",
                );
                break;
            }
        }
        if self.ops_on_main_listener() {
            out.push("ops.on_main_listener is on: /metrics and /readyz details are public");
        }
        let cache = &self.session.cookie_cache;
        if cache.enabled && !cache.immediate_revocation && self.cache_max_age() > 300 {
            out.push(
                "session.cookie_cache.immediate_revocation is off with a max_age over 5 minutes: \
                 a revoked session stays usable that long",
            );
        }
        if cache.enabled
            && self.redis.keyspace_notifications == super::KeyspaceNotifications::Off
            && self.redis.enabled()
            && self.cache_max_age() > 300
        {
            out.push(
                "redis.keyspace_notifications is off with a cookie cache over 5 minutes: a \
                 session another application deletes from Redis stays usable that long",
            );
        }
        out
    }

    /// Refuses settings that cannot work, naming the option.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.redis.check()?;
        if !self.base_path.starts_with('/') || self.base_path.ends_with('/') {
            return Err(invalid(format!(
                "base_path must start with '/' and not end with '/': {:?}",
                self.base_path
            )));
        }
        if !self.base_url.is_empty()
            && (!is_http_url(&self.base_url) || self.base_url.contains('?'))
        {
            return Err(invalid(format!(
                "base_url (BETTER_AUTH_URL) must be an absolute http:// or https:// URL, not {:?}",
                super::origins::without_userinfo(&self.base_url)
            )));
        }
        let db = &self.database;
        if db.max_connections == 0 {
            return Err(invalid("database.max_connections must be > 0"));
        }
        if db.is_postgres() && db.max_connections < 2 {
            return Err(invalid(
                "database.max_connections must be at least 2 with PostgreSQL: the revocation listener keeps one connection open",
            ));
        }
        if !db.read_url.is_empty() {
            if !db.is_postgres() || !db.read_is_postgres() {
                return Err(invalid(
                    "database.read_url needs PostgreSQL: both database.url and database.read_url must start with postgres:// or postgresql://",
                ));
            }
            if db.read_max_connections < 2 {
                return Err(invalid(
                    "database.read_max_connections must be at least 2: one connection measures the replica's lag",
                ));
            }
            if db.read_max_lag_ms == 0 || db.read_max_lag_ms > 3_600_000 {
                return Err(invalid(
                    "database.read_max_lag_ms must be between 1 and 3600000",
                ));
            }
        }
        if self.session.expires_in == 0 {
            return Err(invalid("session.expires_in must be > 0"));
        }
        self.check_secrets()?;
        self.check_durations()?;
        self.check_fields()?;
        let ep = &self.email_and_password;
        if ep.min_password_length > ep.max_password_length {
            return Err(invalid(
                "email_and_password.min_password_length exceeds max_password_length",
            ));
        }
        if self.advanced.ip_address.ipv6_subnet > 128 {
            return Err(invalid(
                "advanced.ip_address.ipv6_subnet must be at most 128",
            ));
        }
        for p in &self.trusted_origins {
            check_origin_pattern(p).map_err(|e| invalid(format!("trusted_origins: {e}")))?;
        }
        self.check_forward_auth()?;
        self.check_tokens()?;
        self.plugins.multi_session.check()?;
        self.check_advanced()?;
        self.check_service_api()?;
        self.check_webhooks()?;
        self.check_server()
    }

    /// The service API's keys and paths, and what its operations need: a database to look
    /// sessions up in, the admin plugin's columns to ban, sessions findable by id.
    fn check_service_api(&self) -> Result<(), ConfigError> {
        let api = &self.service_api;
        api.check().map_err(invalid)?;
        if !api.enabled {
            return Ok(());
        }
        if self.is_stateless() {
            return Err(invalid(
                "service_api needs a database: a stateless service keeps no sessions to act on",
            ));
        }
        if api.grants(super::Operation::UsersBan) && !self.plugins.admin.enabled {
            return Err(invalid(
                "service_api.keys grant users:ban, which needs plugins.admin.enabled (its columns banned, banReason, banExpires)",
            ));
        }
        if api.grants(super::Operation::SessionsRevoke)
            && self.redis.enabled()
            && !self.session.store_session_in_database
        {
            return Err(invalid(
                "service_api.keys grant sessions:revoke, which finds a session by id: sessions kept only in Redis cannot be; set session.store_session_in_database",
            ));
        }
        Ok(())
    }

    /// Webhooks need the database's outbox: a stateless service has none.
    fn check_webhooks(&self) -> Result<(), ConfigError> {
        self.webhooks.check().map_err(invalid)?;
        if self.webhooks.enabled() && self.is_stateless() {
            return Err(invalid(
                "webhooks.endpoints need a database: a stateless service (database.url = \"memory\") keeps no event outbox to deliver from",
            ));
        }
        Ok(())
    }

    fn check_durations(&self) -> Result<(), ConfigError> {
        let s = &self.session;
        let mut all = vec![
            ("session.expires_in", s.expires_in),
            ("session.update_age", s.update_age),
            ("session.fresh_age", s.fresh_age),
            ("session.absolute_timeout", s.absolute_timeout),
            (
                "session.cookie_cache.max_age",
                s.cookie_cache.max_age.unwrap_or(0),
            ),
            ("database.acquire_timeout", self.database.acquire_timeout),
            ("rate_limit.window", self.rate_limit.window),
            ("server.request_timeout", self.server.request_timeout),
            ("server.shutdown_grace", self.server.shutdown_grace),
            (
                "server.header_read_timeout",
                self.server.header_read_timeout,
            ),
            ("server.idle_timeout", self.server.idle_timeout),
        ];
        for r in self.rate_limit.custom_rules.values() {
            all.push(("rate_limit.custom_rules.*.window", r.window));
        }
        for (name, v) in all {
            if v > MAX_DURATION_SECS {
                return Err(invalid(format!(
                    "{name} must be at most {MAX_DURATION_SECS} seconds (100 years), not {v}"
                )));
            }
        }
        Ok(())
    }

    fn check_fields(&self) -> Result<(), ConfigError> {
        let tables = [
            (
                "session",
                &self.session.additional_fields,
                crate::model::CORE_SESSION_FIELDS,
            ),
            (
                "user",
                &self.user.additional_fields,
                crate::model::CORE_USER_FIELDS,
            ),
        ];
        for (table, fields, core) in tables {
            for (name, field) in fields {
                let ok = !name.is_empty()
                    && name.len() <= 63
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !name.starts_with(|c: char| c.is_ascii_digit());
                if !ok || core.contains(&name.as_str()) {
                    return Err(invalid(format!(
                        "{table}.additional_fields: {name:?} is not a usable field name"
                    )));
                }
                if let Some(d) = &field.default_value {
                    if !field_type_matches(field.kind, d) {
                        return Err(invalid(format!(
                            "{table}.additional_fields.{name}.default_value does not match its type"
                        )));
                    }
                }
            }
        }
        if self.session.max_per_user > 0 && self.is_stateless() {
            return Err(invalid(
                "session.max_per_user needs a database: a stateless service's sessions live in cookies, where no replica can count them",
            ));
        }
        if self.events_on() && self.is_stateless() {
            return Err(invalid(
                "session.audit and webhooks need a database: a stateless service writes nothing it could record events in",
            ));
        }
        if self.events_on() && self.redis.enabled() && !self.session.store_session_in_database {
            return Err(invalid(
                "session.audit and webhooks with Redis need session.store_session_in_database = true: events are written by the database, in the transaction of each change, and sessions kept only in Redis have no row there",
            ));
        }
        if self.session.audit.keep_days > 36_500 {
            return Err(invalid("session.audit.keep_days must be at most 36500"));
        }
        let admin = &self.plugins.admin;
        if admin.enabled && admin.impersonation_session_duration == 0 {
            return Err(invalid(
                "plugins.admin.impersonation_session_duration must be > 0",
            ));
        }
        if admin.impersonation_session_duration > MAX_DURATION_SECS {
            return Err(invalid(format!(
                "plugins.admin.impersonation_session_duration must be at most {MAX_DURATION_SECS} seconds"
            )));
        }
        if admin.default_ban_expires_in > MAX_DURATION_SECS {
            return Err(invalid(format!(
                "plugins.admin.default_ban_expires_in must be at most {MAX_DURATION_SECS} seconds"
            )));
        }
        // Better Auth refuses admin roles that are not roles: without custom roles, its
        // roles are "admin" and "user".
        if let Some(r) = admin
            .admin_roles
            .iter()
            .find(|r| !["admin", "user"].contains(&r.to_lowercase().as_str()))
        {
            return Err(invalid(format!(
                "plugins.admin.admin_roles: {r:?} is not a role (admin or user)"
            )));
        }
        Ok(())
    }

    fn check_server(&self) -> Result<(), ConfigError> {
        let sv = &self.server;
        if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&sv.max_header_bytes) {
            return Err(invalid(format!(
                "server.max_header_bytes must be between {MIN_HEADER_BYTES} and {MAX_HEADER_BYTES}"
            )));
        }
        if sv.max_connections == 0 || sv.header_read_timeout == 0 || sv.idle_timeout == 0 {
            return Err(invalid(
                "server.max_connections, header_read_timeout and idle_timeout must be > 0",
            ));
        }
        if sv.body_limit == 0 || sv.body_limit > MAX_BODY_BYTES {
            return Err(invalid(format!(
                "server.body_limit must be between 1 and {MAX_BODY_BYTES} bytes"
            )));
        }
        if sv.request_timeout == 0 {
            return Err(invalid("server.request_timeout must be > 0"));
        }
        let rl = &self.rate_limit;
        let rules = std::iter::once((rl.window, rl.max))
            .chain(rl.custom_rules.values().map(|r| (r.window, r.max)));
        for (window, max) in rules {
            if window == 0 || max == 0 {
                return Err(invalid(
                    "rate_limit.window and rate_limit.max (and each custom rule's) must be at least 1",
                ));
            }
        }
        Ok(())
    }

    /// Cookie names and domains, address headers and proxies, password rules: what would
    /// otherwise inject attributes, trust everyone or stop the process later.
    fn check_advanced(&self) -> Result<(), ConfigError> {
        let adv = &self.advanced;
        if !is_cookie_token(&adv.cookie_prefix) {
            return Err(invalid(format!(
                "advanced.cookie_prefix {:?} must be cookie-name characters (letters, digits, - _ . and the like)",
                adv.cookie_prefix
            )));
        }
        let domain = adv.cross_sub_domain_cookies.domain.as_str();
        if !domain.is_empty() {
            check_domain("advanced.cross_sub_domain_cookies.domain", domain).map_err(invalid)?;
        }
        check_cookies(adv).map_err(invalid)?;
        for h in &adv.ip_address.ip_address_headers {
            if axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(invalid(format!(
                    "advanced.ip_address.ip_address_headers: {h:?} is not a header name"
                )));
            }
        }
        check_trusted_proxies(&adv.ip_address.trusted_proxies).map_err(invalid)?;
        let ep = &self.email_and_password;
        if ep.min_password_length == 0 {
            return Err(invalid(
                "email_and_password.min_password_length must be at least 1",
            ));
        }
        if ep.hash_concurrency > MAX_HASH_CONCURRENCY {
            return Err(invalid(format!(
                "email_and_password.hash_concurrency must be at most {MAX_HASH_CONCURRENCY} (each hash holds 32 MiB)"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_budget_leaves_room_for_the_revocation_listener() {
        use crate::config::Settings;
        let with = |url: &str, n: u32| {
            let mut s = Settings::default();
            s.database.url = url.into();
            s.database.max_connections = n;
            s.validate()
        };
        let pg = "postgres://postgres@127.0.0.1:5432/db";
        assert!(with(pg, 1).is_err_and(|e| e.to_string().contains("at least 2")));
        assert!(with(pg, 0).is_err());
        assert!(with(pg, 2).is_ok());
        assert!(with("", 1).is_ok(), "SQLite has no listener");
        assert!(with("", 0).is_err());
    }

    #[test]
    fn a_refused_base_url_is_quoted_without_its_password() {
        use crate::config::Settings;
        let s = Settings {
            base_url: "ftp://admin:hunter2@example.com/x".into(),
            ..Settings::default()
        };
        let e = s.validate().map(|_| ()).unwrap_err().to_string();
        assert!(!e.contains("hunter2") && e.contains("…@example.com"), "{e}");
    }

    #[test]
    fn limits_lifted_on_credential_routes_and_unannounced_deletions_are_risky() {
        use crate::config::{Environment, KeyspaceNotifications, RateLimitRule, Settings};
        let warned = |s: &Settings, what: &str| s.risky_choices().iter().any(|w| w.contains(what));
        let mut s = Settings {
            environment: Environment::Production,
            ..Settings::default()
        };
        let rule = |window, max| RateLimitRule {
            window,
            max,
            enabled: true,
        };
        assert!(!warned(&s, "custom_rules"));
        for (pattern, rule) in [
            ("/sign-in/email", rule(86_400, 86_400)),
            ("/sign-up/*", rule(10, 4)),
            (
                "/*",
                RateLimitRule {
                    window: 10,
                    max: 3,
                    enabled: false,
                },
            ),
            (
                "/sign-in/*",
                RateLimitRule {
                    window: 1,
                    max: 1_000_000,
                    enabled: true,
                },
            ),
            (
                "/change-password",
                RateLimitRule {
                    window: 10,
                    max: 11,
                    enabled: true,
                },
            ),
        ] {
            s.rate_limit.custom_rules.clear();
            s.rate_limit.custom_rules.insert(pattern.into(), rule);
            assert!(warned(&s, "custom_rules"), "{pattern}");
        }
        s.rate_limit.custom_rules.clear();
        s.rate_limit.custom_rules.insert(
            "/get-session".into(),
            RateLimitRule {
                window: 1,
                max: 1_000,
                enabled: true,
            },
        );
        s.rate_limit
            .custom_rules
            .insert("/sign-in/email".into(), rule(60, 10));
        assert!(!warned(&s, "custom_rules"));
        s.redis.url = "redis://127.0.0.1:6379".into();
        s.redis.keyspace_notifications = KeyspaceNotifications::Off;
        s.session.cookie_cache.enabled = true;
        s.session.cookie_cache.max_age = Some(86_400);
        assert!(warned(&s, "keyspace_notifications"));
        s.session.cookie_cache.max_age = Some(300);
        assert!(!warned(&s, "keyspace_notifications"));
    }
}
