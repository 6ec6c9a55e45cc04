//! What the keys hold: a session with its user (Better Auth's JSON), and the entries of a
//! user's active-session list.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::model::{Session, SessionJson, User};

/// Seconds until `at`, floored, never negative (Better Auth's `getTTLSeconds`).
pub(super) fn ttl_secs(at: DateTime<Utc>, now_ms: i64) -> i64 {
    ((at.timestamp_millis() - now_ms) / 1000).max(0)
}

pub(super) fn stored_value(session: &Session, user: &User) -> String {
    json!({ "session": SessionJson { session, hidden: &[], schema_order: false, show_token: true }, "user": user })
        .to_string()
}

pub(super) fn parse_value(raw: &str) -> Option<(Session, User)> {
    let v: Value = serde_json::from_str(raw).ok()?;
    // Better Auth's storage adapters may store the JSON text of the JSON text.
    let v = match v {
        Value::String(inner) => serde_json::from_str(&inner).ok()?,
        other => other,
    };
    let session = Session::from_json(v.get("session")?.as_object()?)?;
    let user = User::from_json(v.get("user")?.as_object()?)?;
    Some((session, user))
}

#[derive(serde::Deserialize)]
pub(super) struct ListEntry {
    pub(super) token: String,
    #[serde(rename = "expiresAt")]
    pub(super) expires_at: f64,
}

/// Adds the tokens of `more` that `tokens` lacks.
pub(super) fn merge(tokens: &mut Vec<String>, more: Vec<String>) {
    for t in more {
        if !tokens.contains(&t) {
            tokens.push(t);
        }
    }
}
