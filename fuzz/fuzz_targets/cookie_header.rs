//! The Cookie header parser: any bytes, every way the service reads them.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use sessiond::crypto::signed::{Keyring, Verified};
use sessiond::session::cookies::{RequestCookies, MAX_CHUNKS, MAX_MULTI_COOKIES, MULTI_MARK};

const DATA: &str = "better-auth.session_data";

fuzz_target!(|data: &[u8]| {
    let header = String::from_utf8_lossy(data).into_owned();
    let c = RequestCookies::new(header);
    let _ = c.is_empty();
    let _ = c.get("better-auth.session_token");
    let _ = c.get(DATA);
    // Whatever the header holds, the clean-up it can cause stays bounded.
    let carried = c.carried(DATA);
    assert!(carried.chunks < (1 << MAX_CHUNKS));
    assert_eq!(carried.chunks, c.chunk_set(DATA));
    assert_eq!(carried.whole, c.get(DATA).is_some());
    for i in 0..MAX_CHUNKS {
        if carried.chunks & (1 << i) != 0 {
            assert!(c.get(&format!("{DATA}.{i}")).is_some(), "{i}");
        }
    }
    let names = c.multi_names();
    assert!(names.iter().all(|n| n.contains(MULTI_MARK)));
    if let Some(key) = Keyring::new([common::SECRET]) {
        if let Verified::Valid(v) = c.signed("better-auth.session_token", &key) {
            // Only a value signed with the secret verifies.
            assert!(matches!(key.verify(&key.sign(&v)), Verified::Valid(_)));
        }
        // The multi-session plugin's cookies: at most the cap, each a name the header holds.
        let held = c.multi_tokens(&key);
        assert!(held.len() <= MAX_MULTI_COOKIES.min(names.len()));
        assert!(held.iter().all(|(n, _)| names.contains(&n.as_str())));
    }
});
