//! The session and user records and their JSON output, in Better Auth's field names, key
//! order (`id` last) and date format (`YYYY-MM-DDTHH:mm:ss.sssZ`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// Session columns that belong to Better Auth's core schema.
pub const CORE_SESSION_FIELDS: &[&str] = &[
    "id",
    "token",
    "userId",
    "expiresAt",
    "createdAt",
    "updatedAt",
    "ipAddress",
    "userAgent",
];

/// Formats a time as JavaScript's `Date.prototype.toISOString()` does.
pub fn iso(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A user row (Better Auth's `user` table).
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Row id.
    pub id: String,
    /// Display name (may be empty).
    pub name: String,
    /// Lower-cased email, unique.
    pub email: String,
    /// Whether the email was verified.
    pub email_verified: bool,
    /// Avatar URL.
    pub image: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Serialize for User {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(7))?;
        m.serialize_entry("name", &self.name)?;
        m.serialize_entry("email", &self.email)?;
        m.serialize_entry("emailVerified", &self.email_verified)?;
        m.serialize_entry("image", &self.image)?;
        m.serialize_entry("createdAt", &iso(&self.created_at))?;
        m.serialize_entry("updatedAt", &iso(&self.updated_at))?;
        m.serialize_entry("id", &self.id)?;
        m.end()
    }
}

/// A session row (Better Auth's `session` table), with configured additional fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Row id (distinct from the token).
    pub id: String,
    /// The bearer secret carried by the `session_token` cookie.
    pub token: String,
    /// Owner.
    pub user_id: String,
    /// When the session stops being valid; slides on refresh.
    pub expires_at: DateTime<Utc>,
    /// Sign-in time; never changes (freshness is measured from it).
    pub created_at: DateTime<Utc>,
    /// Last refresh or update.
    pub updated_at: DateTime<Utc>,
    /// Client address at sign-in ("" when unknown).
    pub ip_address: Option<String>,
    /// Client user agent at sign-in ("" when absent).
    pub user_agent: Option<String>,
    /// Additional fields by name (only configured ones; `null` when unset).
    pub extra: Map<String, Value>,
}

impl Session {
    /// Whether the session has expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at < now
    }
}

/// A session as clients see it: additional fields marked `returned = false` are hidden.
pub struct SessionOut<'a> {
    /// The session.
    pub session: &'a Session,
    /// Names of fields to hide.
    pub hidden: &'a [String],
}

impl Serialize for SessionOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let x = self.session;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("expiresAt", &iso(&x.expires_at))?;
        m.serialize_entry("token", &x.token)?;
        m.serialize_entry("createdAt", &iso(&x.created_at))?;
        m.serialize_entry("updatedAt", &iso(&x.updated_at))?;
        m.serialize_entry("ipAddress", &x.ip_address)?;
        m.serialize_entry("userAgent", &x.user_agent)?;
        for (k, v) in &x.extra {
            if !self.hidden.iter().any(|h| h == k) {
                m.serialize_entry(k, v)?;
            }
        }
        m.serialize_entry("userId", &x.user_id)?;
        m.serialize_entry("id", &x.id)?;
        m.end()
    }
}
