//! The session and user records, shared by the domain and the stores, and their JSON forms, in Better Auth's field names, key
//! order (`id` last) and date format (`YYYY-MM-DDTHH:mm:ss.sssZ`).

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
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
    Iso(t).to_string()
}

/// A time in `toISOString()` form that writes itself without allocating: responses carry
/// three per session, and `list-sessions` may answer thousands of sessions.
#[derive(Clone, Copy)]
pub struct Iso<'a>(pub &'a DateTime<Utc>);

impl Iso<'_> {
    /// `YYYY-MM-DDTHH:mm:ss.sssZ` for years 0 to 9999 (all others: `None`).
    fn ascii(&self) -> Option<[u8; 24]> {
        let t = self.0.naive_utc();
        let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
        // A leap second (nanosecond >= 1e9) shows as second 60, as chrono writes it.
        let (sec, nano) = match t.nanosecond() {
            n if n >= 1_000_000_000 => (t.second() + 1, n - 1_000_000_000),
            n => (t.second(), n),
        };
        let mut b = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut v: u32| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, t.month());
        put(8, 2, t.day());
        put(11, 2, t.hour());
        put(14, 2, t.minute());
        put(17, 2, sec);
        put(20, 3, nano / 1_000_000);
        Some(b)
    }
}

impl std::fmt::Display for Iso<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ascii() {
            Some(b) => f.write_str(std::str::from_utf8(&b).map_err(|_| std::fmt::Error)?),
            // Signed and widened years: chrono's own formatting.
            None => f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true)),
        }
    }
}

impl Serialize for Iso<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.ascii() {
            Some(b) => s.serialize_str(std::str::from_utf8(&b).map_err(serde::ser::Error::custom)?),
            None => s.collect_str(self),
        }
    }
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
    /// Fields this service does not model (e.g. a Better Auth plugin's, read from a cookie
    /// cache); passed through unchanged.
    pub extra: Map<String, Value>,
}

impl Serialize for User {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("name", &self.name)?;
        m.serialize_entry("email", &self.email)?;
        m.serialize_entry("emailVerified", &self.email_verified)?;
        m.serialize_entry("image", &self.image)?;
        m.serialize_entry("createdAt", &Iso(&self.created_at))?;
        m.serialize_entry("updatedAt", &Iso(&self.updated_at))?;
        for (k, v) in &self.extra {
            m.serialize_entry(k, v)?;
        }
        m.serialize_entry("id", &self.id)?;
        m.end()
    }
}

/// Parses a date as Better Auth's reviver does (`YYYY-MM-DDTHH:mm:ss[.fff]Z`).
pub fn parse_iso(v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?;
    if !s.ends_with('Z') || s.len() < 20 {
        return None;
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Whether Better Auth's JSON reviver would turn this string into a `Date`
/// (`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$`); such a value in a text field
/// fails its schema, so the cache holding it is refused.
fn is_iso_like(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    if b.len() < 20 || b.last() != Some(&b'Z') {
        return false;
    }
    let head = digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && b.get(10) == Some(&b'T')
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19);
    let tail = &b[19..b.len() - 1];
    head && (tail.is_empty()
        || (tail.len() >= 2 && tail[0] == b'.' && tail[1..].iter().all(u8::is_ascii_digit)))
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
        for k in [
            "id",
            "name",
            "email",
            "emailVerified",
            "image",
            "createdAt",
            "updatedAt",
        ] {
            extra.remove(k);
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

    /// The user as a JSON object (output order).
    pub fn to_json(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
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

/// A user in Better Auth's schema order (what it answers from a cookie cache).
pub struct UserSchemaOrder<'a>(pub &'a User);

impl Serialize for UserSchemaOrder<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let u = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &u.id)?;
        m.serialize_entry("createdAt", &Iso(&u.created_at))?;
        m.serialize_entry("updatedAt", &Iso(&u.updated_at))?;
        m.serialize_entry("email", &u.email)?;
        m.serialize_entry("emailVerified", &u.email_verified)?;
        m.serialize_entry("name", &u.name)?;
        m.serialize_entry("image", &u.image)?;
        for (k, v) in &u.extra {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::Rng;

    #[test]
    fn iso_writes_what_chrono_writes() {
        let mut rng = rand::thread_rng();
        let mut times: Vec<DateTime<Utc>> = [
            0i64,
            -1,
            1,
            -62_167_219_200_000, // 0000-01-01
            -62_167_219_200_001, // -0001-12-31
            253_402_300_799_999, // 9999-12-31T23:59:59.999
            253_402_300_800_000, // +10000-01-01
        ]
        .iter()
        .filter_map(|ms| Utc.timestamp_millis_opt(*ms).single())
        .collect();
        for _ in 0..10_000 {
            let ms = rng.gen_range(-70_000_000_000_000i64..300_000_000_000_000);
            let nanos = rng.gen_range(0..1_000_000);
            if let Some(t) = Utc.timestamp_millis_opt(ms).single() {
                times.push(t + chrono::Duration::nanoseconds(nanos));
            }
        }
        // a leap second
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_milli_opt(23, 59, 59, 1_500))
            .map(|n| n.and_utc());
        times.extend(leap);
        for t in &times {
            let want = t.to_rfc3339_opts(SecondsFormat::Millis, true);
            assert_eq!(iso(t), want);
            assert_eq!(
                serde_json::to_string(&Iso(t)).ok(),
                serde_json::to_string(&want).ok()
            );
        }
        assert_eq!(
            iso(&Utc.timestamp_millis_opt(1_700_000_000_123).unwrap()),
            "2023-11-14T22:13:20.123Z"
        );
    }

    #[test]
    fn iso_like_strings_are_refused_in_text_fields() {
        assert!(is_iso_like("2026-01-01T00:00:00Z"));
        assert!(is_iso_like("2026-01-01T00:00:00.123456Z"));
        assert!(!is_iso_like("2026-01-01T00:00:00.Z"));
        assert!(!is_iso_like("2026-01-01 00:00:00Z"));
        assert!(!is_iso_like("Zoë"));
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
            u.to_json().keys().next_back().map(String::as_str),
            Some("id")
        );
    }
}
