//! The session and user records, shared by the domain and the stores, and their JSON forms, in Better Auth's field names, key
//! order (`id` last) and date format (`YYYY-MM-DDTHH:mm:ss.sssZ`).

use chrono::{DateTime, Utc};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::js::date::{is_iso_like, parse_iso, Iso};

/// Session columns that belong to Better Auth's core schema, in the order the SQL store
/// reads them.
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

/// User columns that belong to Better Auth's core schema, in the order the SQL store reads
/// them.
pub const CORE_USER_FIELDS: &[&str] = &[
    "id",
    "name",
    "email",
    "emailVerified",
    "image",
    "createdAt",
    "updatedAt",
];

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
    /// Fields this service does not model (e.g. a Better Auth plugin's, read from a cookie
    /// cache); passed through unchanged.
    pub extra: Map<String, Value>,
}

impl Serialize for User {
    /// Everything, in database order (what secondary storage keeps).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        UserJson {
            user: self,
            hidden: &[],
            schema_order: false,
        }
        .serialize(s)
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !is_iso_like(s))
        .map(String::from)
}

fn opt_text(v: Option<&Value>) -> Option<Option<String>> {
    match v {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) if !is_iso_like(s) => Some(Some(s.clone())),
        Some(_) => None,
    }
}

impl User {
    /// Reads a user from a cookie-cache payload with Better Auth's schema rules (email
    /// lower-cased, `emailVerified` defaulting to false); `None` when it does not fit.
    pub fn from_json(m: &Map<String, Value>) -> Option<Self> {
        let text = |k: &str| text(m.get(k));
        let mut extra = m.clone();
        for k in CORE_USER_FIELDS {
            extra.remove(*k);
        }
        Some(Self {
            id: text("id")?,
            name: text("name")?,
            email: text("email")?.to_lowercase(),
            email_verified: match m.get("emailVerified") {
                None => false,
                Some(v) => v.as_bool()?,
            },
            image: opt_text(m.get("image"))?,
            created_at: parse_iso(m.get("createdAt")?)?,
            updated_at: parse_iso(m.get("updatedAt")?)?,
            extra,
        })
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
    /// Reads a session from a cookie-cache payload with Better Auth's schema rules; any
    /// key beyond the core fields is kept in `extra`. `None` when it does not fit.
    pub fn from_json(m: &Map<String, Value>) -> Option<Self> {
        let text = |k: &str| text(m.get(k));
        let mut extra = m.clone();
        for k in CORE_SESSION_FIELDS {
            extra.remove(*k);
        }
        let user_id = match m.get("userId")? {
            Value::String(s) if !is_iso_like(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        Some(Self {
            id: text("id")?,
            token: text("token")?,
            user_id,
            expires_at: parse_iso(m.get("expiresAt")?)?,
            created_at: parse_iso(m.get("createdAt")?)?,
            updated_at: parse_iso(m.get("updatedAt")?)?,
            ip_address: opt_text(m.get("ipAddress"))?,
            user_agent: opt_text(m.get("userAgent"))?,
            extra,
        })
    }

    /// Whether the session has expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at < now
    }
}

impl SessionJson<'_> {
    /// The session as a JSON object (output order).
    pub fn to_json(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }
}

/// A session in one of Better Auth's JSON forms: what clients see (additional fields marked
/// `returned = false` hidden, the token perhaps left out) and what secondary storage keeps
/// (everything, database order).
pub struct SessionJson<'a> {
    /// The session.
    pub session: &'a Session,
    /// Names of fields to hide.
    pub hidden: &'a [String],
    /// Better Auth's schema order (what it answers from a cookie cache) instead of its
    /// database order.
    pub schema_order: bool,
    /// Include the token (`list-sessions` may leave it out).
    pub show_token: bool,
}

impl Serialize for SessionJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let x = self.session;
        let mut m = s.serialize_map(None)?;
        if self.schema_order {
            m.serialize_entry("id", &x.id)?;
            m.serialize_entry("createdAt", &Iso(&x.created_at))?;
            m.serialize_entry("updatedAt", &Iso(&x.updated_at))?;
            m.serialize_entry("userId", &x.user_id)?;
            m.serialize_entry("expiresAt", &Iso(&x.expires_at))?;
            if self.show_token {
                m.serialize_entry("token", &x.token)?;
            }
            m.serialize_entry("ipAddress", &x.ip_address)?;
            m.serialize_entry("userAgent", &x.user_agent)?;
        } else {
            m.serialize_entry("expiresAt", &Iso(&x.expires_at))?;
            if self.show_token {
                m.serialize_entry("token", &x.token)?;
            }
            m.serialize_entry("createdAt", &Iso(&x.created_at))?;
            m.serialize_entry("updatedAt", &Iso(&x.updated_at))?;
            m.serialize_entry("ipAddress", &x.ip_address)?;
            m.serialize_entry("userAgent", &x.user_agent)?;
            m.serialize_entry("userId", &x.user_id)?;
        }
        // Better Auth's schema order puts additional fields after the core ones.
        for (k, v) in &x.extra {
            if !self.hidden.iter().any(|h| h == k) {
                m.serialize_entry(k, v)?;
            }
        }
        if !self.schema_order {
            m.serialize_entry("id", &x.id)?;
        }
        m.end()
    }
}

/// A user as responses show it: additional fields marked `returned = false` left out, in
/// Better Auth's database order (`id` last) or its schema order (what it answers from a
/// cookie cache).
pub struct UserJson<'a> {
    /// The user.
    pub user: &'a User,
    /// Names of fields to hide.
    pub hidden: &'a [String],
    /// Schema order instead of database order.
    pub schema_order: bool,
}

impl UserJson<'_> {
    /// The user as a JSON object (output order).
    pub fn to_json(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }
}

impl Serialize for UserJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let u = self.user;
        let mut m = s.serialize_map(None)?;
        if self.schema_order {
            m.serialize_entry("id", &u.id)?;
            m.serialize_entry("createdAt", &Iso(&u.created_at))?;
            m.serialize_entry("updatedAt", &Iso(&u.updated_at))?;
            m.serialize_entry("email", &u.email)?;
            m.serialize_entry("emailVerified", &u.email_verified)?;
            m.serialize_entry("name", &u.name)?;
            m.serialize_entry("image", &u.image)?;
        } else {
            m.serialize_entry("name", &u.name)?;
            m.serialize_entry("email", &u.email)?;
            m.serialize_entry("emailVerified", &u.email_verified)?;
            m.serialize_entry("image", &u.image)?;
            m.serialize_entry("createdAt", &Iso(&u.created_at))?;
            m.serialize_entry("updatedAt", &Iso(&u.updated_at))?;
        }
        for (k, v) in &u.extra {
            if !self.hidden.iter().any(|h| h == k) {
                m.serialize_entry(k, v)?;
            }
        }
        if !self.schema_order {
            m.serialize_entry("id", &u.id)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_like_strings_are_refused_in_text_fields() {
        let user = serde_json::json!({
            "id": "u", "name": "2026-01-01T00:00:00.000Z", "email": "a@b.co",
            "emailVerified": false, "createdAt": "2026-01-01T00:00:00.000Z",
            "updatedAt": "2026-01-01T00:00:00.000Z"
        });
        let mut m = user.as_object().unwrap().clone();
        assert!(User::from_json(&m).is_none());
        m.insert("name".into(), Value::String("Ada".into()));
        m.insert("role".into(), Value::String("admin".into()));
        let u = User::from_json(&m).unwrap();
        assert_eq!(u.extra.get("role"), Some(&Value::String("admin".into())));
        assert_eq!(
            serde_json::to_value(&u)
                .unwrap()
                .as_object()
                .unwrap()
                .keys()
                .next_back()
                .map(String::as_str),
            Some("id")
        );
    }
}
