//! What the targets share: the secret and the clock the seeds (made by the real Better
//! Auth, `tests/vectors/better-auth-1.7.json`) were produced with, and the cache check.

#![allow(dead_code)]

use sessiond::crypto::cache::{CacheCodec, Strategy};
use sessiond::model::{Session, User};

/// The vectors' secret, so that seeds are valid values and mutations start from there.
pub const SECRET: &str = "test-vector-secret-not-for-production-4f9a2c7e1b8d3f6a";
/// The vectors' frozen clock (ms).
pub const NOW_MS: i64 = 1_767_225_600_000;

/// Decodes `data` as a `session_data` value of `strategy`, then reads the records as the
/// service does: nothing may panic, whatever the input.
pub fn cache(strategy: Strategy, codec: &CacheCodec, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = codec.decode(text, NOW_MS) {
        let _ = Session::from_json(&p.session);
        let _ = User::from_json(&p.user);
        // A value that decodes was made with the secret: it decodes the same again.
        let again = codec.decode(text, NOW_MS).ok().map(|q| q.session);
        assert_eq!(again.as_ref(), Some(&p.session), "{strategy:?}");
    }
}
