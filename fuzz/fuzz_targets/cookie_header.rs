//! The Cookie header parser: any bytes, every way the service reads them.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use sessiond::crypto::signed::{SigningKey, Verified};
use sessiond::session::cookies::{RequestCookies, MAX_CHUNKS};

const DATA: &str = "better-auth.session_data";

fuzz_target!(|data: &[u8]| {
    let header = String::from_utf8_lossy(data).into_owned();
    let c = RequestCookies::new(header);
    let _ = c.is_empty();
    let _ = c.get("better-auth.session_token");
    let _ = c.get(DATA);
    // Whatever the header holds, the clean-up it can cause stays bounded.
    let names = c.names_with_chunks(DATA);
    assert!(names.len() <= MAX_CHUNKS + 1);
    assert!(c.chunk_set(DATA) < (1 << MAX_CHUNKS));
    for n in &names {
        assert!(c.get(n).is_some(), "{n}");
    }
    if let Ok(key) = SigningKey::new(common::SECRET.as_bytes()) {
        if let Verified::Valid(v) = c.signed("better-auth.session_token", &key) {
            // Only a value signed with the secret verifies.
            assert!(matches!(key.verify(&key.sign(&v)), Verified::Valid(_)));
        }
    }
});
