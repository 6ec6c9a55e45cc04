//! The `session_data` cookie cache codecs (compact, jwt, jwe) checked byte for byte against
//! values produced by Better Auth 1.7.25 (`tests/vectors/better-auth-1.7.json`), both ways:
//! our encoder given the vector's inputs at the frozen clock writes Better Auth's exact
//! value, and Better Auth's value decodes here to the vector's payload.
//!
//! What belongs to the codec and what to its caller (the session service):
//! - the codec verifies (MAC, signature, decryption, key selection) and applies the
//!   token-level expiry of jwt (`exp <= now`, no tolerance) and jwe (`exp <= now - 15 s`,
//!   jose's clock tolerance); it never rejects a compact value for time;
//! - the caller applies Better Auth's server-side window `cacheExpiresAt < now` to
//!   `expires_at_ms` (compact: the outer `expiresAt`; jwt/jwe: `exp`·1000), compares the
//!   token and version, checks the session's own expiry and validates the payload schema
//!   (for example Better Auth refuses an ISO-looking `user.name`, revived to a Date).
//!   Those checks are simulated here with [`server_window_open`] where a clock matrix needs
//!   them, and otherwise tested with the service.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwe::enc::{A256CBC_HS512, A256GCM};
use josekit::jwe::JweContentEncryption;
use serde_json::{Map, Value};
use sessiond::crypto::cache::{
    derive_jwe_key, jwe_kid, CacheCodec, CacheError, CachePayload, Strategy, JWE_ACCOUNT_SALT,
    JWE_SESSION_SALT,
};
use sha2::{Digest, Sha256};

use crate::support::vectors::{i, s, vectors};

/// Parses JSON text keeping its key order (serde_json is built with `preserve_order`).
fn parse(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text).unwrap() {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn obj<'a>(m: &'a Map<String, Value>, key: &str) -> &'a Map<String, Value> {
    m.get(key)
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("missing object {key}"))
}

/// Order-sensitive comparison (`Map`'s `==` ignores key order).
fn assert_same_order(got: &Map<String, Value>, want: &Map<String, Value>) {
    assert_eq!(
        serde_json::to_string(got).unwrap(),
        serde_json::to_string(want).unwrap()
    );
}

fn now(v: &Value) -> i64 {
    i(v, "/generator/frozen_clock/now_ms")
}

fn secret(v: &Value) -> &str {
    s(v, "/inputs/secret")
}

fn other_secret(v: &Value) -> &str {
    s(v, "/inputs/other_secret_for_negative_cases")
}

fn codec(strategy: Strategy, secret: &str) -> CacheCodec {
    CacheCodec::new(strategy, secret, &[])
}

/// The `better-auth.session_data` value of a `Cookie` header.
fn session_data_of(cookie_header: &str) -> &str {
    cookie_header
        .split("; ")
        .find_map(|pair| pair.strip_prefix("better-auth.session_data="))
        .expect("session_data in cookie header")
}

/// The caller's check, not the codec's: Better Auth's server refuses the cache when
/// `cacheExpiresAt < now`.
fn server_window_open(p: &CachePayload, now_ms: i64) -> bool {
    p.expires_at_ms >= now_ms
}

/// Checks a decoded payload against the vector's payload object (`session`, `user`,
/// `updatedAt`, `version`), key order included.
fn assert_payload(p: &CachePayload, want: &Map<String, Value>, expires_at_ms: i64) {
    assert_same_order(&p.session, obj(want, "session"));
    assert_same_order(&p.user, obj(want, "user"));
    assert_eq!(p.updated_at, want.get("updatedAt").and_then(Value::as_i64));
    assert_eq!(
        p.version.as_deref(),
        want.get("version").and_then(Value::as_str)
    );
    assert_eq!(p.expires_at_ms, expires_at_ms);
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

// ---- compact -------------------------------------------------------------------------------

#[test]
fn compact_vector_both_ways() {
    let v = vectors();
    let cc = &v["cookie_cache"]["compact"];
    let decoded = parse(s(cc, "/decoded_json"));
    let payload = obj(&decoded, "session");
    let value = s(cc, "/session_data_value");
    let codec = codec(Strategy::Compact, secret(&v));

    // Ours, from the same inputs at the frozen clock, is Better Auth's value.
    let ours = codec
        .encode(
            obj(payload, "session"),
            obj(payload, "user"),
            "1",
            now(&v),
            Some(300),
        )
        .unwrap();
    assert_eq!(ours, value);
    // ...and its decomposition: the JSON text and the signature over the signed string.
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(&ours).unwrap()).unwrap();
    assert_eq!(text, s(cc, "/decoded_json"));
    assert!(text.contains(&format!("\"signature\":\"{}\"", s(cc, "/signature"))));

    // Better Auth's value decodes to the vector's payload.
    let p = codec.decode(value, now(&v)).unwrap();
    assert_payload(&p, payload, i(cc, "/expires_at_ms"));
    assert_eq!(p.updated_at, Some(now(&v)));

    // The same value is in the real Set-Cookie and was accepted by Better Auth's server.
    let set_cookie = cc["response_set_cookie"][1].as_str().unwrap();
    assert!(set_cookie.starts_with(&format!("better-auth.session_data={value};")));
    let accepted = s(
        cc,
        "/verification/empty_db_server_accepts_cookie_pair/cookie",
    );
    assert_eq!(session_data_of(accepted), value);
}

#[test]
fn compact_without_max_age_uses_60_seconds() {
    let v = vectors();
    let codec = codec(Strategy::Compact, secret(&v));
    let (sess, user) = (parse(r#"{"token":"t"}"#), parse(r#"{"id":"u"}"#));
    for max_age in [None, Some(0)] {
        let value = codec.encode(&sess, &user, "1", now(&v), max_age).unwrap();
        let p = codec.decode(&value, now(&v)).unwrap();
        assert_eq!(p.expires_at_ms, now(&v) + 60_000, "{max_age:?}");
    }
}

#[test]
fn compact_refusals() {
    let v = vectors();
    let codec = codec(Strategy::Compact, secret(&v));
    let value = s(&v, "/cookie_cache/compact/session_data_value");
    // Better Auth's own tampered value (one character flipped).
    let tampered = session_data_of(s(
        &v,
        "/cookie_cache/compact/verification/tampered_value_rejected/cookie",
    ));
    assert_ne!(tampered, value);
    assert_eq!(codec.decode(tampered, now(&v)), Err(CacheError::Invalid));
    // The payload edited, the old signature kept.
    let edited = &v["cookie_cache_acceptance"]["compact"]["edited_payload_old_signature"];
    assert_eq!(edited["server_accepts"], false);
    assert_eq!(
        codec.decode(s(edited, "/session_data"), now(&v)),
        Err(CacheError::Invalid)
    );
    // Another secret.
    assert_eq!(
        CacheCodec::new(Strategy::Compact, other_secret(&v), &[]).decode(value, now(&v)),
        Err(CacheError::Invalid)
    );
    // A compact codec does not read the other strategies' values.
    for other in ["jwt", "jwe"] {
        let value = s(&v, &format!("/cookie_cache/{other}/session_data_value"));
        assert_eq!(codec.decode(value, now(&v)), Err(CacheError::Invalid));
    }
}

/// Compact values made with Better Auth 1.7.25's own primitives (`safeJSONParse`,
/// `base64Url`, `binary`, `createHMAC`), signed the way Better Auth verifies: over
/// `JSON.stringify({...parsed.session, expiresAt})` of the parsed, date-revived cookie.
/// Each also comes MAC'd over its literal text. `accepts` is Better Auth's verdict
/// (MAC and outer shape; the payload schema is the caller's and the payloads here are
/// minimal). Secret: `inputs.secret`.
const JS_SEMANTICS_CASES: &[(&str, &str, bool, &str, bool)] = &[
    ("iso_without_ms_signed_as_revived", "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0Iiwibm90ZSI6IjIwMjAtMDEtMDFUMDA6MDA6MDBaIn0sInVzZXIiOnsiaWQiOiJ1In0sInVwZGF0ZWRBdCI6MTc2NzIyNTYwMDAwMCwidmVyc2lvbiI6IjEifSwiZXhwaXJlc0F0IjoxNzY3MjI1OTAwMDAwLCJzaWduYXR1cmUiOiJzVlEwSXlNZXl6YVhSUTJTZzZhMzRGbmFiZ0ZmS19KX29CZE55UG9rM1BRIn0", true, "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0Iiwibm90ZSI6IjIwMjAtMDEtMDFUMDA6MDA6MDBaIn0sInVzZXIiOnsiaWQiOiJ1In0sInVwZGF0ZWRBdCI6MTc2NzIyNTYwMDAwMCwidmVyc2lvbiI6IjEifSwiZXhwaXJlc0F0IjoxNzY3MjI1OTAwMDAwLCJzaWduYXR1cmUiOiI1Q1c2dURscGNqUFBMb19weEVETDM4enQ1Nl9Oc0tITjFBakhjelBkcms4In0", false),
    ("iso_day_overflow", "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0IiwiZCI6IjIwMjEtMDItMjlUMDA6MDA6MDBaIn0sInVzZXIiOnsiaWQiOiJ1In0sInVwZGF0ZWRBdCI6MTc2NzIyNTYwMDAwMCwidmVyc2lvbiI6IjEifSwiZXhwaXJlc0F0IjoxNzY3MjI1OTAwMDAwLCJzaWduYXR1cmUiOiIzNzZ0V0VSbjZZemhWMzJ3Sm9MV0huNlVYT1dJTUphcXFVcXNZS3laSnI0In0", true, "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0IiwiZCI6IjIwMjEtMDItMjlUMDA6MDA6MDBaIn0sInVzZXIiOnsiaWQiOiJ1In0sInVwZGF0ZWRBdCI6MTc2NzIyNTYwMDAwMCwidmVyc2lvbiI6IjEifSwiZXhwaXJlc0F0IjoxNzY3MjI1OTAwMDAwLCJzaWduYXR1cmUiOiJxM2c5c2NGUjBDbGVqbTFNLVZIOEZzNXVxeXNvN2pYWDk5MmNnN1ZzNmp3In0", false),
    ("iso_invalid_month_stays_string", "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0IiwiZCI6IjIwMjAtMTMtMDFUMDA6MDA6MDBaIn0sInVzZXIiOnsiaWQiOiJ1In0sInVwZGF0ZWRBdCI6MTc2NzIyNTYwMDAwMCwidmVyc2lvbiI6IjEifSwiZXhwaXJlc0F0IjoxNzY3MjI1OTAwMDAwLCJzaWduYXR1cmUiOiJ0bkwyQWtjSGhyMzZPNHREZjVDMmNEZFozSkhaMWpIc1g5aUU5TEFLSS1FIn0", true, "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0IiwiZCI6IjIwMjAtMTMtMDFUMDA6MDA6MDBaIn0sInVzZXIiOnsiaWQiOiJ1In0sInVwZGF0ZWRBdCI6MTc2NzIyNTYwMDAwMCwidmVyc2lvbiI6IjEifSwiZXhwaXJlc0F0IjoxNzY3MjI1OTAwMDAwLCJzaWduYXR1cmUiOiJ0bkwyQWtjSGhyMzZPNHREZjVDMmNEZFozSkhaMWpIc1g5aUU5TEFLSS1FIn0", true),
    ("iso_long_fraction", "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0IiwiZCI6IjIwMjAtMDEtMDFUMDA6MDA6MDAuMDI5NDY4MTIwMFoiLCJlIjpbIjE5OTktMTItMzFUMjQ6MDA6MDBaIl19LCJ1c2VyIjp7ImlkIjoidSJ9LCJ1cGRhdGVkQXQiOjE3NjcyMjU2MDAwMDAsInZlcnNpb24iOiIxIn0sImV4cGlyZXNBdCI6MTc2NzIyNTkwMDAwMCwic2lnbmF0dXJlIjoibmNpbkRuTy1CUGNNTUl1ajVVTGFlVWJhZzlmaXpZbVhQTzB3UmZDaHVodyJ9", true, "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0IiwiZCI6IjIwMjAtMDEtMDFUMDA6MDA6MDAuMDI5NDY4MTIwMFoiLCJlIjpbIjE5OTktMTItMzFUMjQ6MDA6MDBaIl19LCJ1c2VyIjp7ImlkIjoidSJ9LCJ1cGRhdGVkQXQiOjE3NjcyMjU2MDAwMDAsInZlcnNpb24iOiIxIn0sImV4cGlyZXNBdCI6MTc2NzIyNTkwMDAwMCwic2lnbmF0dXJlIjoiWnFJbEpfd01vbkVRU21wWTBiaWdJdklOWk9BWWIybzVXNTEzYWVFTy1LQSJ9", false),
    ("integer_like_keys", "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0IiwieCI6eyJiIjoxLCIxMCI6MiwiMiI6MywiMDEiOjR9fSwidXNlciI6eyJpZCI6InUifSwidXBkYXRlZEF0IjoxNzY3MjI1NjAwMDAwLCJ2ZXJzaW9uIjoiMSJ9LCJleHBpcmVzQXQiOjE3NjcyMjU5MDAwMDAsInNpZ25hdHVyZSI6IkJJV0txYUJyMWpEdlE0LXVTSk9wcEt2bEFxbF9iekdwVV9yQXdVSWthQlkifQ", true, "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0IiwieCI6eyJiIjoxLCIxMCI6MiwiMiI6MywiMDEiOjR9fSwidXNlciI6eyJpZCI6InUifSwidXBkYXRlZEF0IjoxNzY3MjI1NjAwMDAwLCJ2ZXJzaW9uIjoiMSJ9LCJleHBpcmVzQXQiOjE3NjcyMjU5MDAwMDAsInNpZ25hdHVyZSI6Ijk3ajZUYnhqWllrcWhaLXVMbnE4RnRndkJqa0pwNVFTN20ybF9YWElzeE0ifQ", false),
    ("numbers", "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0IiwibiI6WzEuNTAsMWUyLDEyMzQ1Njc4OTAxMjM0NTY3ODkwLC0wLDAuMWUxLDFlMjEsMWUtNywwLjAwMDAwMSw3ODY2Njc2NDY2MTU5NTkuMjVdfSwidXNlciI6eyJpZCI6InUifSwidXBkYXRlZEF0IjoxNzY3MjI1NjAwMDAwLCJ2ZXJzaW9uIjoiMSJ9LCJleHBpcmVzQXQiOjE3NjcyMjU5MDAwMDAsInNpZ25hdHVyZSI6Imp6R0p6MEFZa0FYTkQ1TG01SENUa3k1dzNvcTNGaFhaOHUtR2N6Vzl4LTQifQ", true, "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0IiwibiI6WzEuNTAsMWUyLDEyMzQ1Njc4OTAxMjM0NTY3ODkwLC0wLDAuMWUxLDFlMjEsMWUtNywwLjAwMDAwMSw3ODY2Njc2NDY2MTU5NTkuMjVdfSwidXNlciI6eyJpZCI6InUifSwidXBkYXRlZEF0IjoxNzY3MjI1NjAwMDAwLCJ2ZXJzaW9uIjoiMSJ9LCJleHBpcmVzQXQiOjE3NjcyMjU5MDAwMDAsInNpZ25hdHVyZSI6IlhNTm1jQ1d1UE5HMjFvRXBDTUU0clc5UXdVVmVLOWQ4M2JIdVVkRDkwQjgifQ", false),
    ("escapes", "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0IiwicyI6Ilx1MDBlOVwvXHUyMDI4XHUwMDFmXHVkODNkXHVkZTAwIn0sInVzZXIiOnsiaWQiOiJ1In0sInVwZGF0ZWRBdCI6MTc2NzIyNTYwMDAwMCwidmVyc2lvbiI6IjEifSwiZXhwaXJlc0F0IjoxNzY3MjI1OTAwMDAwLCJzaWduYXR1cmUiOiJfRGFFYWpQdWxrREh5Nk9iRlNuMGJfOVFyR1Bfc3E3SWpSMHdJTHJmRDFjIn0", true, "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0IiwicyI6Ilx1MDBlOVwvXHUyMDI4XHUwMDFmXHVkODNkXHVkZTAwIn0sInVzZXIiOnsiaWQiOiJ1In0sInVwZGF0ZWRBdCI6MTc2NzIyNTYwMDAwMCwidmVyc2lvbiI6IjEifSwiZXhwaXJlc0F0IjoxNzY3MjI1OTAwMDAwLCJzaWduYXR1cmUiOiJjQ0swT3Z5N2FXdkpZRkxsaU1iOXJPNXV0ell1c3U0cFBEWE1PbDJxdGhjIn0", false),
    ("duplicate_keys", "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0IiwiYSI6MSwiYiI6MiwiYSI6M30sInVzZXIiOnsiaWQiOiJ1In0sInVwZGF0ZWRBdCI6MTc2NzIyNTYwMDAwMCwidmVyc2lvbiI6IjEifSwiZXhwaXJlc0F0IjoxNzY3MjI1OTAwMDAwLCJzaWduYXR1cmUiOiJZaENtY0o5cUtXNjExNERZNWkxcUQ3d1dvT1dkdWtuazVibno1dmxPTXBvIn0", true, "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0IiwiYSI6MSwiYiI6MiwiYSI6M30sInVzZXIiOnsiaWQiOiJ1In0sInVwZGF0ZWRBdCI6MTc2NzIyNTYwMDAwMCwidmVyc2lvbiI6IjEifSwiZXhwaXJlc0F0IjoxNzY3MjI1OTAwMDAwLCJzaWduYXR1cmUiOiJCbzRhNVhReFdQX18yRFpXWkpJRHJFQ0dKV2ltQ184bjJCZjNveGJQbHhnIn0", false),
    ("whitespace", "eyJzZXNzaW9uIjogeyAic2Vzc2lvbiIgOiB7ICJ0b2tlbiIgOiAidCIgfSAsCiAidXNlciI6eyJpZCI6InUifSAsInVwZGF0ZWRBdCI6IDE3NjcyMjU2MDAwMDAgLCAidmVyc2lvbiI6IjEiIH0gLCJleHBpcmVzQXQiOjE3NjcyMjU5MDAwMDAsInNpZ25hdHVyZSI6ImlpTGFvWW9WMzBSdU5CeTZlSkxrTVRhT0FyMUtZTHNKSi02Y3RfQVFRQkEifQ", true, "eyJzZXNzaW9uIjogeyAic2Vzc2lvbiIgOiB7ICJ0b2tlbiIgOiAidCIgfSAsCiAidXNlciI6eyJpZCI6InUifSAsInVwZGF0ZWRBdCI6IDE3NjcyMjU2MDAwMDAgLCAidmVyc2lvbiI6IjEiIH0gLCJleHBpcmVzQXQiOjE3NjcyMjU5MDAwMDAsInNpZ25hdHVyZSI6IjJKZmV5cGNvdWpqR3N6T2JsNmpQR3Q3d0ZuSjVyMFIxTFZWYkJ3SHVXTkUifQ", false),
    ("own_expires_at_first", "eyJzZXNzaW9uIjp7ImV4cGlyZXNBdCI6NSwic2Vzc2lvbiI6eyJ0b2tlbiI6InQifSwidXNlciI6eyJpZCI6InUifSwidXBkYXRlZEF0IjoxNzY3MjI1NjAwMDAwLCJ2ZXJzaW9uIjoiMSJ9LCJleHBpcmVzQXQiOjE3NjcyMjU5MDAwMDAsInNpZ25hdHVyZSI6IlA0cU1EYWhoeVRfZkZILU1JSjFicFE4RTdTRVdYVTczNmRsNTFTLW1RQm8ifQ", true, "eyJzZXNzaW9uIjp7ImV4cGlyZXNBdCI6NSwic2Vzc2lvbiI6eyJ0b2tlbiI6InQifSwidXNlciI6eyJpZCI6InUifSwidXBkYXRlZEF0IjoxNzY3MjI1NjAwMDAwLCJ2ZXJzaW9uIjoiMSJ9LCJleHBpcmVzQXQiOjE3NjcyMjU5MDAwMDAsInNpZ25hdHVyZSI6IkhlakxFSFRuVnJSZFJBOHNhbkdjTVpkblUzM3g3LU1VTllSOUxwanc2YkEifQ", false),
    ("bom", "77u_eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0In0sInVzZXIiOnsiaWQiOiJ1In0sInVwZGF0ZWRBdCI6MTc2NzIyNTYwMDAwMCwidmVyc2lvbiI6IjEifSwiZXhwaXJlc0F0IjoxNzY3MjI1OTAwMDAwLCJzaWduYXR1cmUiOiJpaUxhb1lvVjMwUnVOQnk2ZUpMa01UYU9BcjFLWUxzSkotNmN0X0FRUUJBIn0", true, "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0In0sInVzZXIiOnsiaWQiOiJ1In0sInVwZGF0ZWRBdCI6MTc2NzIyNTYwMDAwMCwidmVyc2lvbiI6IjEifSwiZXhwaXJlc0F0IjoxNzY3MjI1OTAwMDAwLCJzaWduYXR1cmUiOiJpaUxhb1lvVjMwUnVOQnk2ZUpMa01UYU9BcjFLWUxzSkotNmN0X0FRUUJBIn0", true),
    ("standard_alphabet_padding_junk", "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0IiwicCI6Ij8/Pj4ifSwidXNlciI6eyJpZCI6InUifSwidXBkYXRlZEF0IjoxNzY3MjI1NjAwMDAwLCJ2ZXJzaW9uIjoiMSJ9LCJleHBpcmVzQXQiOjE3NjcyMjU5MDAwMDAsInNpZ25hdHVyZSI6IjNiZ2dzdVI3VXZkN0szcnZWbVhMREgzMUR4RDNVTlZIRTN3Ti1GbEVoYU0ifQ===junk!", true, "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0IiwicCI6Ij8_Pj4ifSwidXNlciI6eyJpZCI6InUifSwidXBkYXRlZEF0IjoxNzY3MjI1NjAwMDAwLCJ2ZXJzaW9uIjoiMSJ9LCJleHBpcmVzQXQiOjE3NjcyMjU5MDAwMDAsInNpZ25hdHVyZSI6IjNiZ2dzdVI3VXZkN0szcnZWbVhMREgzMUR4RDNVTlZIRTN3Ti1GbEVoYU0ifQ", true),
    ("fractional_expires_at", "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0In0sInVzZXIiOnsiaWQiOiJ1In0sInVwZGF0ZWRBdCI6MTc2NzIyNTYwMDAwMCwidmVyc2lvbiI6IjEifSwiZXhwaXJlc0F0IjoxNzY3MjI1OTAwMDAwLjUsInNpZ25hdHVyZSI6Ikx2YzEyQlNwVUsxZkNDcnZkb19QN2FON3Jza1kyOGNPWVBZbmM5dkU5ZFUifQ", true, "eyJzZXNzaW9uIjp7InNlc3Npb24iOnsidG9rZW4iOiJ0In0sInVzZXIiOnsiaWQiOiJ1In0sInVwZGF0ZWRBdCI6MTc2NzIyNTYwMDAwMCwidmVyc2lvbiI6IjEifSwiZXhwaXJlc0F0IjoxNzY3MjI1OTAwMDAwLjUsInNpZ25hdHVyZSI6Ikx2YzEyQlNwVUsxZkNDcnZkb19QN2FON3Jza1kyOGNPWVBZbmM5dkU5ZFUifQ", true),
];

#[test]
fn compact_mac_covers_the_javascript_reserialization() {
    let v = vectors();
    let codec = codec(Strategy::Compact, secret(&v));
    for &(name, value, accepts, literal, literal_accepts) in JS_SEMANTICS_CASES {
        let got = codec.decode(value, now(&v));
        assert_eq!(got.is_ok(), accepts, "{name}: {got:?}");
        let got = codec.decode(literal, now(&v));
        assert_eq!(
            got.is_ok(),
            literal_accepts,
            "{name} (literal MAC): {got:?}"
        );
    }
    // The payload comes back as received, not revived or re-serialized.
    let (_, value, ..) = JS_SEMANTICS_CASES
        .iter()
        .find(|c| c.0 == "iso_without_ms_signed_as_revived")
        .unwrap();
    let p = codec.decode(value, now(&v)).unwrap();
    assert_eq!(p.session["note"], "2020-01-01T00:00:00Z");
    let (_, value, ..) = JS_SEMANTICS_CASES
        .iter()
        .find(|c| c.0 == "fractional_expires_at")
        .unwrap();
    // 1767225900000.5 ms: `x < now` holds for integer `now` exactly when `floor(x) < now`.
    assert_eq!(
        codec.decode(value, now(&v)).unwrap().expires_at_ms,
        1_767_225_900_000
    );
}

#[test]
fn compact_iso_string_revival_vectors() {
    let v = vectors();
    let codec = codec(Strategy::Compact, secret(&v));
    let rev = &v["cookie_cache_acceptance"]["compact"]["iso_string_revival"];
    // A canonical `.sssZ` string survives revival and re-serialization: the MAC holds.
    let c = &rev["extra_user_field_canonical_iso"];
    assert_eq!(c["getCookieCache_accepts"], true);
    let p = codec.decode(s(c, "/session_data"), now(&v)).unwrap();
    assert_same_order(&p.user, c["user"].as_object().unwrap());
    // Without milliseconds it becomes `.000Z` in the re-serialization: the MAC fails.
    let c = &rev["extra_user_field_iso_without_ms"];
    assert_eq!(c["getCookieCache_accepts"], false);
    assert_eq!(
        codec.decode(s(c, "/session_data"), now(&v)),
        Err(CacheError::Invalid)
    );
    // An ISO-looking `user.name` keeps its MAC (it is canonical), so the codec accepts it;
    // Better Auth refuses it in the payload schema (the name was revived to a Date), which
    // is the caller's check, not the codec's.
    let c = &rev["user_name_canonical_iso"];
    assert_eq!(c["getCookieCache_accepts"], false);
    let p = codec.decode(s(c, "/session_data"), now(&v)).unwrap();
    assert_eq!(p.user["name"], "2020-01-01T00:00:00.000Z");
}

#[test]
fn compact_clock_matrix() {
    let v = vectors();
    let codec = codec(Strategy::Compact, secret(&v));
    let acc = &v["cookie_cache_acceptance"]["compact"];
    let value = s(&v, "/cookie_cache/compact/session_data_value");
    let expiry = i(acc, "/cache_expiry_ms");
    for row in acc["clock_matrix"].as_array().unwrap() {
        let at = i(row, "/now_ms");
        // The codec never refuses a compact value for time; the window is the caller's.
        let p = codec.decode(value, at).unwrap();
        assert_eq!(p.expires_at_ms, expiry);
        assert_eq!(
            server_window_open(&p, at),
            row["server_accepts"].as_bool().unwrap(),
            "{row}"
        );
        // getCookieCache applies the same `expiresAt < now` rule to compact values.
        assert_eq!(
            server_window_open(&p, at),
            row["getCookieCache_accepts"].as_bool().unwrap(),
            "{row}"
        );
    }
}

#[test]
fn compact_lenient_base64_like_better_auth() {
    let v = vectors();
    let codec = codec(Strategy::Compact, secret(&v));
    let value = s(&v, "/cookie_cache/compact/session_data_value");
    let want = codec.decode(value, now(&v)).unwrap();
    // Padding and anything after the first '=' are ignored.
    let padded = format!("{value}==!!not base64");
    assert_eq!(codec.decode(&padded, now(&v)).unwrap(), want);
    // The standard alphabet is read when the text has no '-' or '_'.
    let standard = value.replace('-', "+").replace('_', "/");
    assert_eq!(codec.decode(&standard, now(&v)).unwrap(), want);
    // Mixed alphabets and foreign characters are not base64.
    assert_eq!(
        codec.decode(&format!("{value}+"), now(&v)),
        Err(CacheError::Invalid)
    );
    assert_eq!(
        codec.decode(&format!(" {value}"), now(&v)),
        Err(CacheError::Invalid)
    );
}

#[test]
fn chunked_compact_value() {
    let v = vectors();
    let ch = &v["chunking"]["compact_large_user_image"];
    let mut chunks: Vec<(usize, &str)> = ch["response_set_cookie"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| {
            let c = c.as_str()?.strip_prefix("better-auth.session_data.")?;
            let (index, rest) = c.split_once('=')?;
            Some((index.parse().ok()?, rest.split(';').next()?))
        })
        .collect();
    chunks.sort_by_key(|c| c.0);
    assert_eq!(chunks.len(), ch["chunk_names"].as_array().unwrap().len());
    let joined: String = chunks.iter().map(|c| c.1).collect();
    assert_eq!(joined.len() as i64, i(ch, "/joined_value_length"));

    let codec = codec(Strategy::Compact, secret(&v));
    let p = codec.decode(&joined, now(&v)).unwrap();
    let image = p.user["image"].as_str().unwrap();
    assert_eq!(image.len() as i64, i(ch, "/input_user_image_length"));
    // Re-encoding what we read gives Better Auth's bytes again.
    let version = p.version.as_deref().unwrap();
    let again = codec
        .encode(&p.session, &p.user, version, now(&v), Some(300))
        .unwrap();
    assert_eq!(again, joined);
}

// ---- jwt -----------------------------------------------------------------------------------

#[test]
fn jwt_vector_both_ways() {
    let v = vectors();
    let jw = &v["cookie_cache"]["jwt"];
    let payload = parse(s(jw, "/payload_json"));
    let value = s(jw, "/session_data_value");
    let codec = codec(Strategy::Jwt, secret(&v));

    let ours = codec
        .encode(
            obj(&payload, "session"),
            obj(&payload, "user"),
            "1",
            now(&v),
            Some(300),
        )
        .unwrap();
    assert_eq!(ours, value);
    assert_eq!(
        ours,
        format!("{}.{}", s(jw, "/signing_input"), s(jw, "/signature_b64url"))
    );
    let header = ours.split('.').next().unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.decode(header).unwrap(),
        s(jw, "/header_json").as_bytes()
    );

    let p = codec.decode(value, now(&v)).unwrap();
    assert_payload(
        &p,
        &payload,
        i(&v, "/cookie_cache_acceptance/jwt/cache_expiry_ms"),
    );
    assert_eq!(payload["exp"].as_i64().unwrap() * 1000, p.expires_at_ms);
}

#[test]
fn jwt_without_max_age_uses_300_seconds() {
    let v = vectors();
    let codec = codec(Strategy::Jwt, secret(&v));
    let (sess, user) = (parse(r#"{"token":"t"}"#), parse(r#"{"id":"u"}"#));
    for max_age in [None, Some(0)] {
        let value = codec
            .encode(&sess, &user, "1", now(&v) + 999, max_age)
            .unwrap();
        let claims = value.split('.').nth(1).unwrap();
        let claims = parse(&String::from_utf8(URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap());
        assert_eq!(claims["iat"], now(&v) / 1000);
        assert_eq!(claims["exp"], now(&v) / 1000 + 300);
        assert_eq!(claims["updatedAt"], now(&v) + 999);
    }
}

#[test]
fn jwt_clock_matrix() {
    let v = vectors();
    let codec = codec(Strategy::Jwt, secret(&v));
    let acc = &v["cookie_cache_acceptance"]["jwt"];
    let value = s(&v, "/cookie_cache/jwt/session_data_value");
    for row in acc["clock_matrix"].as_array().unwrap() {
        let at = i(row, "/now_ms");
        let got = codec.decode(value, at);
        // jose refuses at `exp <= now` (seconds, no tolerance): the codec's check alone
        // gives Better Auth's answer; the caller's window never refuses more here.
        let accepted = got.as_ref().is_ok_and(|p| server_window_open(p, at));
        assert_eq!(accepted, row["server_accepts"].as_bool().unwrap(), "{row}");
        assert_eq!(
            got.is_ok(),
            row["getCookieCache_accepts"].as_bool().unwrap(),
            "{row}"
        );
        if let Err(e) = got {
            assert_eq!(e, CacheError::Expired, "{row}");
        }
    }
}

/// Signs `header.payload` with HMAC-SHA-2 as a JWS would (for forged-algorithm tokens).
fn jws(header: &str, claims: &str, alg: jsonwebtoken::Algorithm, key: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let sig = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
        alg,
    )
    .unwrap();
    format!("{input}.{sig}")
}

#[test]
fn jwt_refusals() {
    use jsonwebtoken::Algorithm::{HS256, HS384, HS512};
    let v = vectors();
    let jw = &v["cookie_cache"]["jwt"];
    let codec = codec(Strategy::Jwt, secret(&v));
    let value = s(jw, "/session_data_value");
    let claims = s(jw, "/payload_json");
    let at = now(&v);
    // Sanity: our forger reproduces the vector with HS256.
    assert_eq!(jws(r#"{"alg":"HS256"}"#, claims, HS256, secret(&v)), value);

    // Better Auth's tampered value.
    let tampered = session_data_of(s(jw, "/verification/tampered_value_rejected/cookie"));
    assert_eq!(codec.decode(tampered, at), Err(CacheError::Invalid));
    // Wrong secret.
    assert_eq!(
        CacheCodec::new(Strategy::Jwt, other_secret(&v), &[]).decode(value, at),
        Err(CacheError::Invalid)
    );
    // Other algorithms, even correctly signed with the secret (jose would take HS384/512).
    for (header, alg) in [(r#"{"alg":"HS512"}"#, HS512), (r#"{"alg":"HS384"}"#, HS384)] {
        let token = jws(header, claims, alg, secret(&v));
        assert_eq!(
            codec.decode(&token, at),
            Err(CacheError::Invalid),
            "{header}"
        );
    }
    // An HS512 signature under an HS256 label does not verify either.
    let token = jws(r#"{"alg":"HS256"}"#, claims, HS512, secret(&v));
    assert_eq!(codec.decode(&token, at), Err(CacheError::Invalid));
    // alg "none", with and without a signature.
    let unsigned = format!("{}.{}", b64(br#"{"alg":"none"}"#), b64(claims.as_bytes()));
    assert_eq!(
        codec.decode(&format!("{unsigned}."), at),
        Err(CacheError::Invalid)
    );
    let sig = value.rsplit('.').next().unwrap();
    assert_eq!(
        codec.decode(&format!("{unsigned}.{sig}"), at),
        Err(CacheError::Invalid)
    );
    // The vector's header and payload re-labelled `none` with its own signature.
    let relabelled = format!(
        "{}.{}",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        value.split_once('.').unwrap().1
    );
    assert_eq!(codec.decode(&relabelled, at), Err(CacheError::Invalid));
    // `exp` is required, and must be a number; so must `iat`; `nbf` is honoured.
    let mut c = parse(claims);
    c.remove("exp");
    let no_exp = jws(
        r#"{"alg":"HS256"}"#,
        &Value::Object(c.clone()).to_string(),
        HS256,
        secret(&v),
    );
    assert_eq!(codec.decode(&no_exp, at), Err(CacheError::Invalid));
    for (k, bad) in [
        ("exp", r#""1767225900""#),
        ("iat", r#""x""#),
        ("nbf", r#""x""#),
        ("nbf", "1767225601"),
    ] {
        let mut c = parse(claims);
        c.insert(k.into(), serde_json::from_str(bad).unwrap());
        let token = jws(
            r#"{"alg":"HS256"}"#,
            &Value::Object(c).to_string(),
            HS256,
            secret(&v),
        );
        assert_eq!(
            codec.decode(&token, at),
            Err(CacheError::Invalid),
            "{k}={bad}"
        );
    }
    // `session` and `user` must be objects.
    for (k, bad) in [
        ("session", "[]"),
        ("user", "\"u\""),
        ("version", "1"),
        ("updatedAt", "\"1\""),
    ] {
        let mut c = parse(claims);
        c.insert(k.into(), serde_json::from_str(bad).unwrap());
        let token = jws(
            r#"{"alg":"HS256"}"#,
            &Value::Object(c).to_string(),
            HS256,
            secret(&v),
        );
        assert_eq!(
            codec.decode(&token, at),
            Err(CacheError::Invalid),
            "{k}={bad}"
        );
    }
    // A well-formed token whose claims are not an object.
    let token = jws(r#"{"alg":"HS256"}"#, "[1]", HS256, secret(&v));
    assert_eq!(codec.decode(&token, at), Err(CacheError::Invalid));
}

// ---- jwe -----------------------------------------------------------------------------------

fn iv_of(vector: &Value, path: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s(vector, path)).unwrap()
}

#[test]
fn jwe_vector_both_ways() {
    let v = vectors();
    let je = &v["cookie_cache"]["jwe"];
    let plaintext = parse(s(je, "/plaintext_json"));
    let value = s(je, "/session_data_value");
    let codec = codec(Strategy::Jwe, secret(&v));

    // With the recorded IV and jti, our encryption is Better Auth's token.
    let ours = codec
        .encode_jwe_with(
            obj(&plaintext, "session"),
            obj(&plaintext, "user"),
            "1",
            now(&v),
            Some(300),
            &iv_of(je, "/random_parts/iv_b64url"),
            s(je, "/random_parts/jti"),
        )
        .unwrap();
    assert_eq!(ours, value);
    let parts: Vec<&str> = ours.split('.').collect();
    assert_eq!(parts.len(), 5);
    assert_eq!(parts[0], s(je, "/protected_header_b64url"));
    assert_eq!(
        URL_SAFE_NO_PAD.decode(parts[0]).unwrap(),
        s(je, "/protected_header_json").as_bytes()
    );
    assert_eq!(parts[1], "");
    assert_eq!(parts[2], s(je, "/iv_b64url"));
    assert_eq!(parts[3], s(je, "/ciphertext_b64url"));
    assert_eq!(parts[4], s(je, "/tag_b64url"));

    // Better Auth's token decrypts here to the recorded plaintext's payload.
    let p = codec.decode(value, now(&v)).unwrap();
    assert_payload(
        &p,
        &plaintext,
        i(&v, "/cookie_cache_acceptance/jwe/cache_expiry_ms"),
    );
    assert_eq!(plaintext["exp"].as_i64().unwrap() * 1000, p.expires_at_ms);

    // The key and kid.
    let key = derive_jwe_key(secret(&v), JWE_SESSION_SALT).unwrap();
    assert_eq!(hex::encode(key), s(je, "/derived_key_hex"));
    assert_eq!(hex::encode(&key[..32]), s(je, "/mac_key_hex"));
    assert_eq!(hex::encode(&key[32..]), s(je, "/aes_key_hex"));
    assert_eq!(
        s(je, "/kid_thumbprint_input"),
        format!(r#"{{"k":"{}","kty":"oct"}}"#, b64(&key))
    );
    assert_eq!(jwe_kid(&key), s(je, "/kid"));
    assert_eq!(
        b64(&Sha256::digest(s(je, "/kid_thumbprint_input"))),
        s(je, "/kid")
    );
}

#[test]
fn jwe_encode_is_random_and_decodes() {
    let v = vectors();
    let codec = codec(Strategy::Jwe, secret(&v));
    let (sess, user) = (parse(r#"{"token":"t"}"#), parse(r#"{"id":"u"}"#));
    let a = codec.encode(&sess, &user, "7", now(&v), None).unwrap();
    let b = codec.encode(&sess, &user, "7", now(&v), None).unwrap();
    assert_ne!(a, b);
    for token in [&a, &b] {
        let p = codec.decode(token, now(&v)).unwrap();
        assert_eq!(p.version.as_deref(), Some("7"));
        // No Max-Age: exp = now + 300 s.
        assert_eq!(p.expires_at_ms, now(&v) + 300_000);
        let header = URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(header).unwrap(),
            format!(
                r#"{{"alg":"dir","enc":"A256CBC-HS512","kid":"{}"}}"#,
                s(&v, "/key_derivation/session_cookie_cache/kid")
            )
        );
    }
}

#[test]
fn jwe_clock_matrix() {
    let v = vectors();
    let codec = codec(Strategy::Jwe, secret(&v));
    let acc = &v["cookie_cache_acceptance"]["jwe"];
    let value = s(&v, "/cookie_cache/jwe/session_data_value");
    for row in acc["clock_matrix"].as_array().unwrap() {
        let at = i(row, "/now_ms");
        let got = codec.decode(value, at);
        // The codec is jose with its 15 s tolerance: `getCookieCache`'s answer.
        assert_eq!(
            got.is_ok(),
            row["getCookieCache_accepts"].as_bool().unwrap(),
            "{row}"
        );
        if let Err(e) = &got {
            assert_eq!(*e, CacheError::Expired, "{row}");
        }
        // The server also refuses when `exp * 1000 < now`: the caller's window check.
        let accepted = got.as_ref().is_ok_and(|p| server_window_open(p, at));
        assert_eq!(accepted, row["server_accepts"].as_bool().unwrap(), "{row}");
    }
}

/// A compact JWE under `key` with exactly `header` as its protected header.
fn jwe_with_header(header: &str, key: &[u8], plaintext: impl AsRef<[u8]>) -> String {
    let h = b64(header.as_bytes());
    let iv = [7u8; 16];
    let (ct, tag) = A256CBC_HS512
        .encrypt(key, Some(&iv), plaintext.as_ref(), h.as_bytes())
        .unwrap();
    format!("{h}..{}.{}.{}", b64(&iv), b64(&ct), b64(&tag.unwrap()))
}

#[test]
fn jwe_keys_kids_and_rotation() {
    let v = vectors();
    let je = &v["cookie_cache"]["jwe"];
    let value = s(je, "/session_data_value");
    let plaintext = s(je, "/plaintext_json");
    let at = now(&v);
    let current = codec(Strategy::Jwe, secret(&v));
    let key = derive_jwe_key(secret(&v), JWE_SESSION_SALT).unwrap();
    let other_key = derive_jwe_key(other_secret(&v), JWE_SESSION_SALT).unwrap();
    let account_key = derive_jwe_key(secret(&v), JWE_ACCOUNT_SALT).unwrap();
    let no_kid = r#"{"alg":"dir","enc":"A256CBC-HS512"}"#;
    let with_kid = |k: &[u8]| {
        format!(
            r#"{{"alg":"dir","enc":"A256CBC-HS512","kid":"{}"}}"#,
            jwe_kid(k)
        )
    };

    // Another secret: its kid matches none of ours.
    let foreign = CacheCodec::new(Strategy::Jwe, other_secret(&v), &[]);
    let sess = parse(r#"{"token":"t"}"#);
    let user = parse(r#"{"id":"u"}"#);
    let theirs = foreign.encode(&sess, &user, "1", at, Some(300)).unwrap();
    assert_eq!(current.decode(&theirs, at), Err(CacheError::Invalid));
    assert_eq!(foreign.decode(value, at), Err(CacheError::Invalid));
    // Without a kid, another key fails authentication; ours is used directly.
    let t = jwe_with_header(no_kid, &other_key, plaintext);
    assert_eq!(current.decode(&t, at), Err(CacheError::Invalid));
    let t = jwe_with_header(no_kid, &key, plaintext);
    assert!(current.decode(&t, at).is_ok());
    // A kid that names no configured secret is refused even if the key would work.
    let t = jwe_with_header(
        r#"{"alg":"dir","enc":"A256CBC-HS512","kid":"nope"}"#,
        &key,
        plaintext,
    );
    assert_eq!(current.decode(&t, at), Err(CacheError::Invalid));
    // The account_data salt is another key ("symmetricDecodeJWT with other salt -> null").
    for header in [with_kid(&account_key), no_kid.to_owned()] {
        let t = jwe_with_header(&header, &account_key, plaintext);
        assert_eq!(current.decode(&t, at), Err(CacheError::Invalid), "{header}");
    }

    // Rotation: a codec whose current secret is new still reads values of an older one,
    // by kid or, without a kid, by trying each secret in turn; it writes with the new one.
    let rotated = CacheCodec::new(Strategy::Jwe, other_secret(&v), &[secret(&v).to_owned()]);
    let p = rotated.decode(value, at).unwrap();
    assert!(p.older_secret);
    let p = CachePayload {
        older_secret: false,
        ..p
    };
    assert_eq!(p, current.decode(value, at).unwrap());
    let t = jwe_with_header(no_kid, &key, plaintext);
    assert!(rotated.decode(&t, at).is_ok());
    let t = jwe_with_header(&with_kid(&key), &key, plaintext);
    assert!(rotated.decode(&t, at).is_ok());
    let written = rotated.encode(&sess, &user, "1", at, Some(300)).unwrap();
    assert!(foreign.decode(&written, at).is_ok());
    assert_eq!(current.decode(&written, at), Err(CacheError::Invalid));
}

#[test]
fn every_strategy_reads_older_secret_versions_and_writes_the_current() {
    let v = vectors();
    let at = now(&v);
    let (old, new) = (secret(&v), other_secret(&v));
    let sess = parse(r#"{"token":"t"}"#);
    let user = parse(r#"{"id":"u"}"#);
    for (strategy, name) in [
        (Strategy::Compact, "compact"),
        (Strategy::Jwt, "jwt"),
        (Strategy::Jwe, "jwe"),
    ] {
        // Better Auth's value, made under the vectors' secret, now the older version.
        let value = s(&v["cookie_cache"][name], "/session_data_value");
        let before = codec(strategy, old).decode(value, at).unwrap();
        assert!(!before.older_secret, "{name}: under the current secret");
        let rotated = CacheCodec::new(strategy, new, &[old.to_owned()]);
        let p = rotated.decode(value, at).unwrap();
        assert!(p.older_secret, "{name}");
        assert_eq!(
            CachePayload {
                older_secret: false,
                ..p
            },
            before,
            "{name}"
        );
        // Written under the new secret only.
        let written = rotated.encode(&sess, &user, "1", at, Some(300)).unwrap();
        assert!(
            !rotated.decode(&written, at).unwrap().older_secret,
            "{name}"
        );
        assert!(codec(strategy, new).decode(&written, at).is_ok(), "{name}");
        assert_eq!(
            codec(strategy, old).decode(&written, at),
            Err(CacheError::Invalid),
            "{name}"
        );
        // The older version removed: refused.
        assert_eq!(
            codec(strategy, new).decode(value, at),
            Err(CacheError::Invalid),
            "{name}"
        );
        // Better Auth's legacy secret decrypts jwe values only (its getAllSecrets); it
        // verifies no signature.
        let legacy = CacheCodec::with_legacy(strategy, new, &[], Some(old)).decode(value, at);
        if strategy == Strategy::Jwe {
            assert!(legacy.unwrap().older_secret);
        } else {
            assert_eq!(legacy, Err(CacheError::Invalid), "{name}");
        }
    }
}

#[test]
fn jwe_refusals() {
    let v = vectors();
    let je = &v["cookie_cache"]["jwe"];
    let value = s(je, "/session_data_value");
    let plaintext = s(je, "/plaintext_json");
    let at = now(&v);
    let codec = codec(Strategy::Jwe, secret(&v));
    let key = derive_jwe_key(secret(&v), JWE_SESSION_SALT).unwrap();
    let kid = jwe_kid(&key);

    // Better Auth's tampered value.
    let tampered = session_data_of(s(je, "/verification/tampered_value_rejected/cookie"));
    assert_eq!(codec.decode(tampered, at), Err(CacheError::Invalid));
    // Each segment altered in turn.
    let parts: Vec<&str> = value.split('.').collect();
    for (n, part) in parts.iter().enumerate() {
        let mut altered = parts.clone();
        let flipped = if part.starts_with('A') {
            part.replacen('A', "B", 1)
        } else {
            format!("A{}", part.get(1..).unwrap_or(""))
        };
        altered[n] = &flipped;
        assert_eq!(
            codec.decode(&altered.join("."), at),
            Err(CacheError::Invalid),
            "segment {n}"
        );
    }
    // Other algorithms: A256GCM (allowed by Better Auth, but its 64-byte key cannot be
    // used with it), a key-wrapping alg, none, and compression.
    let gcm_header = format!(r#"{{"alg":"dir","enc":"A256GCM","kid":"{kid}"}}"#);
    let h = b64(gcm_header.as_bytes());
    let iv = [1u8; 12];
    let (ct, tag) = A256GCM
        .encrypt(&key[..32], Some(&iv), plaintext.as_bytes(), h.as_bytes())
        .unwrap();
    let gcm = format!("{h}..{}.{}.{}", b64(&iv), b64(&ct), b64(&tag.unwrap()));
    assert_eq!(codec.decode(&gcm, at), Err(CacheError::Invalid));
    for header in [
        format!(r#"{{"alg":"A256KW","enc":"A256CBC-HS512","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"none","enc":"A256CBC-HS512","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"dir","enc":"A128CBC-HS256","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"dir","enc":"A256CBC-HS512","kid":"{kid}","zip":"DEF"}}"#),
        format!(r#"{{"alg":"dir","enc":"A256CBC-HS512","kid":"{kid}","crit":["exp"]}}"#),
    ] {
        let t = jwe_with_header(&header, &key, plaintext);
        assert_eq!(codec.decode(&t, at), Err(CacheError::Invalid), "{header}");
    }
    // A non-empty encrypted-key segment.
    let t = value.replacen("..", ".AAAA.", 1);
    assert_eq!(codec.decode(&t, at), Err(CacheError::Invalid));
    // Claims: exp required and numeric, nbf honoured (with the 15 s tolerance),
    // session/user objects, a JSON object at all.
    let header = format!(r#"{{"alg":"dir","enc":"A256CBC-HS512","kid":"{kid}"}}"#);
    let mut c = parse(plaintext);
    c.remove("exp");
    let t = jwe_with_header(&header, &key, Value::Object(c).to_string());
    assert_eq!(codec.decode(&t, at), Err(CacheError::Invalid));
    for (k, bad) in [
        ("exp", "null"),
        ("iat", r#""x""#),
        ("nbf", "1767225616"),
        ("user", "[]"),
        ("session", "null"),
    ] {
        let mut c = parse(plaintext);
        c.insert(k.into(), serde_json::from_str(bad).unwrap());
        let t = jwe_with_header(&header, &key, Value::Object(c).to_string());
        assert_eq!(codec.decode(&t, at), Err(CacheError::Invalid), "{k}={bad}");
    }
    let mut c = parse(plaintext);
    c.insert("nbf".into(), Value::from(1_767_225_615));
    let t = jwe_with_header(&header, &key, Value::Object(c).to_string());
    assert!(codec.decode(&t, at).is_ok(), "nbf within tolerance");
    let t = jwe_with_header(&header, &key, "\"not an object\"");
    assert_eq!(codec.decode(&t, at), Err(CacheError::Invalid));
    // Claims that are not UTF-8 (jose decodes them with a fatal decoder).
    let mut bytes = br#"{"session":{},"user":{},"exp":1767225900,"x":"?"}"#.to_vec();
    let q = bytes.iter().position(|&b| b == b'?').unwrap();
    bytes[q] = 0xff;
    let t = jwe_with_header(&header, &key, &bytes);
    assert_eq!(codec.decode(&t, at), Err(CacheError::Invalid));
    bytes[q] = b'x';
    let t = jwe_with_header(&header, &key, &bytes);
    assert!(codec.decode(&t, at).is_ok());
}

// ---- direct primitives and key derivation --------------------------------------------------

#[test]
fn direct_primitives() {
    let v = vectors();
    let dp = &v["direct_primitives"];
    let at = now(&v);

    // signJWT(payload, secret, 300)
    let payload = parse(s(dp, "/signJWT/payload_json_in"));
    let jwt = codec(Strategy::Jwt, secret(&v));
    let ours = jwt
        .encode(
            obj(&payload, "session"),
            obj(&payload, "user"),
            payload["version"].as_str().unwrap(),
            at,
            Some(300),
        )
        .unwrap();
    assert_eq!(ours, s(dp, "/signJWT/output"));
    let out = parse(s(dp, "/signJWT/payload_json_out"));
    let p = jwt.decode(s(dp, "/signJWT/output"), at).unwrap();
    assert_payload(&p, &out, out["exp"].as_i64().unwrap() * 1000);

    // symmetricEncodeJWT(payload, secret, 'better-auth-session', 300)
    let token = s(dp, "/symmetricEncodeJWT/output");
    let jwe = codec(Strategy::Jwe, secret(&v));
    let dec = parse(s(dp, "/symmetricEncodeJWT/decrypted_payload_json"));
    let p = jwe.decode(token, at).unwrap();
    assert_payload(&p, &dec, dec["exp"].as_i64().unwrap() * 1000);
    // Re-encrypting with its IV and jti gives the package's token.
    let iv = URL_SAFE_NO_PAD
        .decode(token.split('.').nth(2).unwrap())
        .unwrap();
    let again = jwe
        .encode_jwe_with(
            obj(&dec, "session"),
            obj(&dec, "user"),
            dec["version"].as_str().unwrap(),
            at,
            Some(300),
            &iv,
            dec["jti"].as_str().unwrap(),
        )
        .unwrap();
    assert_eq!(again, token);

    // Expiry semantics.
    let es = &dp["expiry_semantics"];
    let exp_ms = i(es, "/jwe_symmetricDecodeJWT/exp_ms");
    assert_eq!(
        es["jwe_symmetricDecodeJWT"]["accepted_at_exp_plus_14s"],
        true
    );
    assert!(jwe.decode(token, exp_ms + 14_000).is_ok());
    assert_eq!(
        es["jwe_symmetricDecodeJWT"]["accepted_at_exp_plus_15s"],
        false
    );
    assert_eq!(jwe.decode(token, exp_ms + 15_000), Err(CacheError::Expired));
    let exp_ms = i(es, "/jwt_verifyJWT/exp_ms");
    let jwt_token = s(dp, "/signJWT/output");
    assert_eq!(es["jwt_verifyJWT"]["accepted_at_exp"], false);
    assert_eq!(jwt.decode(jwt_token, exp_ms), Err(CacheError::Expired));
    assert_eq!(es["jwt_verifyJWT"]["accepted_at_exp_minus_1s"], true);
    assert!(jwt.decode(jwt_token, exp_ms - 1000).is_ok());
}

#[test]
fn key_derivation_both_salts() {
    let v = vectors();
    let kd = &v["key_derivation"];
    assert_eq!(s(kd, "/hkdf_info"), sessiond::crypto::cache::JWE_HKDF_INFO);
    for name in ["session_cookie_cache", "account_cookie"] {
        let salt = s(kd, &format!("/{name}/salt"));
        let key = derive_jwe_key(secret(&v), salt).unwrap();
        assert_eq!(
            hex::encode(key),
            s(kd, &format!("/{name}/key_hex")),
            "{name}"
        );
        assert_eq!(jwe_kid(&key), s(kd, &format!("/{name}/kid")), "{name}");
    }
    assert_eq!(s(kd, "/session_cookie_cache/salt"), JWE_SESSION_SALT);
    assert_eq!(s(kd, "/account_cookie/salt"), JWE_ACCOUNT_SALT);
}

// ---- every strategy ------------------------------------------------------------------------

#[test]
fn non_ascii_round_trip_every_strategy() {
    let v = vectors();
    let at = now(&v);
    let session = parse(
        r#"{"id":"s","token":"tök","expiresAt":"2026-01-08T00:00:00.000Z","10":1,"2":[0.5,-3,1e21],"nested":{"b":true,"a":null}}"#,
    );
    let mut user = parse(r#"{"id":"u","email":"zoë@example.com","image":null}"#);
    user.insert(
        "name".into(),
        Value::from("Zoë Ångström 日本語 😀 \"quoted\" back\\slash /slash \u{1}\u{1f}\n\t\u{2028}"),
    );
    // What JavaScript would hold after a round trip: integer-like keys first.
    let js_order = parse(
        r#"{"2":[0.5,-3,1e21],"10":1,"id":"s","token":"tök","expiresAt":"2026-01-08T00:00:00.000Z","nested":{"b":true,"a":null}}"#,
    );
    for strategy in [Strategy::Compact, Strategy::Jwt, Strategy::Jwe] {
        let c = codec(strategy, secret(&v));
        let value = c.encode(&session, &user, "ü-1", at, Some(600)).unwrap();
        assert!(
            value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "{strategy:?}"
        );
        let p = c.decode(&value, at).unwrap();
        assert_same_order(&p.user, &user);
        assert_same_order(&p.session, &js_order);
        assert_eq!(p.version.as_deref(), Some("ü-1"));
        assert_eq!(p.updated_at, Some(at));
        let expires = match strategy {
            Strategy::Compact => at + 600_000,
            _ => (at / 1000 + 600) * 1000,
        };
        assert_eq!(p.expires_at_ms, expires, "{strategy:?}");
    }
    // Compact writes the text unescaped, as JSON.stringify does.
    let value = codec(Strategy::Compact, secret(&v))
        .encode(&session, &user, "1", at, None)
        .unwrap();
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(value).unwrap()).unwrap();
    assert!(text.contains(
        r#""name":"Zoë Ångström 日本語 😀 \"quoted\" back\\slash /slash \u0001\u001f\n\t"#
    ));
    assert!(text.contains("\u{2028}"));
    assert!(text.contains(r#""2":[0.5,-3,1e+21],"10":1,"#));
}

#[test]
fn garbage_never_panics() {
    let v = vectors();
    let mut inputs: Vec<String> = [
        "",
        ".",
        "..",
        "....",
        "a.b.c",
        "a.b.c.d.e",
        "....=",
        "=",
        "==",
        "e30",
        "W10",
        "bnVsbA",
        "eyJzZXNzaW9uIjp7fX0",
        "eyJzZXNzaW9uIjp7fSwiZXhwaXJlc0F0IjoxLCJzaWduYXR1cmUiOiIifQ",
        "\u{feff}",
        "😀",
        "%%",
        "eyJhbGciOiJIUzI1NiJ9..",
        "eyJhbGciOiJkaXIifQ....",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for strategy in ["compact", "jwt", "jwe"] {
        let value = s(&v, &format!("/cookie_cache/{strategy}/session_data_value"));
        for cut in [1, 7, value.len() / 2, value.len() - 1] {
            inputs.push(value[..cut].to_owned());
            inputs.push(value[cut..].to_owned());
        }
    }
    for strategy in [Strategy::Compact, Strategy::Jwt, Strategy::Jwe] {
        let c = codec(strategy, secret(&v));
        for input in &inputs {
            for at in [i64::MIN, -1, 0, now(&v), i64::MAX] {
                assert!(c.decode(input, at).is_err(), "{strategy:?} {input:?}");
            }
        }
        // Extreme clocks and lifetimes do not panic either.
        let (sess, user) = (parse("{}"), parse("{}"));
        for (at, max_age) in [(i64::MAX, Some(u64::MAX)), (i64::MIN, None), (0, Some(1))] {
            let _ = c.encode(&sess, &user, "1", at, max_age);
        }
        let value = s(
            &v,
            &format!(
                "/cookie_cache/{}/session_data_value",
                match strategy {
                    Strategy::Compact => "compact",
                    Strategy::Jwt => "jwt",
                    Strategy::Jwe => "jwe",
                }
            ),
        );
        for at in [i64::MIN, i64::MAX] {
            let _ = c.decode(value, at);
        }
    }
}

#[test]
fn strategies_serialize_as_better_auth_names() {
    for (strategy, name) in [
        (Strategy::Compact, "\"compact\""),
        (Strategy::Jwt, "\"jwt\""),
        (Strategy::Jwe, "\"jwe\""),
    ] {
        assert_eq!(serde_json::to_string(&strategy).unwrap(), name);
        assert_eq!(codec(strategy, "x").strategy(), strategy);
    }
    assert_eq!(Strategy::default(), Strategy::Compact);
    // The secret stays out of Debug output.
    let dbg = format!("{:?}", codec(Strategy::Jwe, "super-secret-value"));
    assert!(!dbg.contains("super-secret"));
}
