//! Better Auth's `session.*` options (the cookie cache, additional fields) and
//! `emailAndPassword.*`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
    /// Live sessions one user may hold (impersonations aside); 0: no limit. Not a Better
    /// Auth option.
    pub max_per_user: u64,
    /// What a sign-in beyond `max_per_user` does.
    pub max_per_user_action: MaxPerUserAction,
    /// The audit trail of sessions (lifecycle events kept in the database).
    pub audit: AuditSettings,
}

/// `session.audit.*`: lifecycle events kept for the audit trail. Not Better Auth options.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// Days events (sessions started and ended: who, when, why, from where) are kept; 0:
    /// none kept beyond their delivery to the webhooks.
    pub keep_days: u64,
    /// Also record `session.refreshed` each time an expiry slides (many events).
    pub session_refreshed: bool,
}

/// What a sign-in beyond `session.max_per_user` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MaxPerUserAction {
    /// End the user's oldest sessions.
    #[default]
    EndOldest,
    /// Refuse the sign-in (403 `TOO_MANY_SESSIONS`).
    Refuse,
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
            max_per_user: 0,
            max_per_user_action: MaxPerUserAction::EndOldest,
            audit: AuditSettings::default(),
        }
    }
}

/// Type of an additional field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Text.
    String,
    /// An integer that fits 32 bits (PostgreSQL `integer`, as Better Auth's migrator makes).
    Number,
    /// Boolean.
    Boolean,
    /// A point in time: an ISO 8601 string in JSON, `timestamptz` in PostgreSQL.
    Date,
}

impl FieldType {
    /// The type's name in Better Auth's validation messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Date => "date",
        }
    }
}

/// An additional user or session field, as Better Auth's `additionalFields` entry.
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
    #[serde(default = "super::yes")]
    pub input: bool,
    /// Included in responses.
    #[serde(default = "super::yes")]
    pub returned: bool,
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
    /// Password hashes allowed to run at once, on as many threads at a lower CPU
    /// priority (0: one per CPU). Each running hash holds 32 MiB.
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

/// Whether a JSON value fits an additional field's type.
pub fn field_type_matches(kind: FieldType, v: &serde_json::Value) -> bool {
    match kind {
        FieldType::String => v.is_string(),
        // Better Auth's migrator makes `integer` columns: 32 bits.
        FieldType::Number => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        FieldType::Boolean => v.is_boolean(),
        FieldType::Date => crate::js::date::parse_iso(v).is_some(),
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
