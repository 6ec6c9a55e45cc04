//! Values produced by Better Auth 1.7.25 (`tests/vectors/better-auth-1.7.json`), read by
//! JSON pointer.

use serde_json::Value;

pub fn vectors() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/better-auth-1.7.json"
    ))
    .expect("vectors file");
    serde_json::from_str(&text).unwrap()
}

/// The string at `path`.
pub fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    v.pointer(path)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("missing {path}"))
}

/// The integer at `path`.
pub fn i(v: &Value, path: &str) -> i64 {
    v.pointer(path)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("missing {path}"))
}
