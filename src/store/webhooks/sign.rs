//! The Standard Webhooks signature and the delivered body.
//!
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`,
//! keyed with the endpoint secret's bytes (the base64 after `whsec_`).

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

/// The `webhook-signature` header value for one attempt.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    // HMAC takes keys of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let tag = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

/// The delivered body: `{"type", "timestamp", "data"}`. `data` is the row's object with its
/// top-level nulls left out, so that an event reads the same whichever database wrote it
/// (PostgreSQL's triggers strip them, SQLite's cannot).
pub fn body(kind: &str, occurred_at: DateTime<Utc>, data: &str) -> String {
    let mut data: Map<String, Value> = serde_json::from_str(data).unwrap_or_default();
    data.retain(|_, v| !v.is_null());
    let mut out = Map::with_capacity(3);
    out.insert("type".into(), Value::String(kind.to_owned()));
    out.insert(
        "timestamp".into(),
        Value::String(occurred_at.to_rfc3339_opts(SecondsFormat::Millis, true)),
    );
    out.insert("data".into(), Value::Object(data));
    Value::Object(out).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_are_left_out_and_the_time_is_rfc3339() {
        let at = DateTime::parse_from_rfc3339("2026-12-07T07:22:43.120Z")
            .unwrap()
            .with_timezone(&Utc);
        let b = body(
            "session.revoked",
            at,
            r#"{"request": null, "sessionId": "s1", "by": null, "nested": {"x": null}}"#,
        );
        assert_eq!(
            b,
            r#"{"type":"session.revoked","timestamp":"2026-12-07T07:22:43.120Z","data":{"sessionId":"s1","nested":{"x":null}}}"#
        );
    }
}
