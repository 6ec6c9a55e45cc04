//! Signed-cookie verification (`value.base64(HMAC-SHA256)`) on arbitrary text.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use sessiond::crypto::signed::{SigningKey, Verified};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(key) = SigningKey::new(common::SECRET.as_bytes()) else {
        return;
    };
    if let Verified::Valid(v) = key.verify(text) {
        // A valid value is its payload, a dot and that payload's signature (base64's
        // unused low bits aside, which `atob` ignores too).
        let signed = key.sign(&v);
        assert!(text.starts_with(&format!("{v}.")), "{text:?}");
        assert_eq!(text.len(), signed.len(), "{text:?}");
    }
});
