//! The cookie cache as the domain uses it: which cached session a request may be answered
//! from (verified, same token, same version, window open, not revoked), and the value to
//! write. Encoding and verifying are the codec's; chunking is the HTTP layer's.

use std::borrow::Cow;
use std::sync::Arc;

use super::{AnswerMemo, SessionService};
use crate::config::Settings;
use crate::crypto::cache::{CacheCodec, Strategy};
use crate::crypto::secrets::SecretSet;
use crate::model::{Session, User};
use crate::session::cookies::{chunk_kinds, CookieKind, CookieOp, RequestCookies, MAX_CHUNKS};

/// The effective cookie-cache settings (Better Auth's defaults for stateless mode applied).
pub(super) struct CacheSetup {
    pub(super) enabled: bool,
    codec: CacheCodec,
    /// Cookie Max-Age of a remembered session's cache.
    max_age: u64,
    version: String,
    /// Stateless refresh: re-issue when less than this many ms of the window remain.
    pub(super) refresh_within_ms: Option<i64>,
    /// Without a server store the cookie is the session, even for sensitive routes.
    pub(super) authoritative: bool,
    /// The longest window of a cache value this service mints (ms): `max_age`, or the
    /// codecs' fallback for a session that is not remembered.
    longest_window_ms: i64,
    memo: Memo,
}

impl CacheSetup {
    pub(super) fn new(settings: &Settings, secrets: &SecretSet) -> Self {
        let cc = &settings.session.cookie_cache;
        let stateless = settings.is_stateless();
        let max_age = settings.cache_max_age();
        let strategy = cc.strategy.unwrap_or(if stateless {
            Strategy::Jwe
        } else {
            Strategy::Compact
        });
        // Better Auth forces refreshCache off whenever a database is configured.
        let refresh = stateless && cc.refresh_cache.unwrap_or(true);
        let refresh_within_ms = refresh.then(|| {
            i64::try_from(max_age / 5)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000)
        });
        Self {
            enabled: settings.cookie_cache_enabled(),
            codec: CacheCodec::with_legacy(
                strategy,
                secrets.current(),
                secrets.older(),
                secrets.legacy(),
            ),
            max_age,
            version: cc.version.clone(),
            refresh_within_ms,
            authoritative: stateless,
            longest_window_ms: i64::try_from(settings.cookie_cache_window_secs())
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000)
                .saturating_add(1000),
            memo: Memo::default(),
        }
    }
}

/// A verified cookie-cache value, decoded.
struct Decoded {
    session: Arc<Session>,
    user: Arc<User>,
    version: Option<String>,
    window_end_ms: i64,
    minted_ms: Option<i64>,
    older_secret: bool,
    answer: Arc<AnswerMemo>,
}

/// A cached session a request may be answered from.
pub(super) struct Hit {
    pub(super) session: Arc<Session>,
    pub(super) user: Arc<User>,
    /// When the cache window ends (ms).
    pub(super) window_end_ms: i64,
    /// Signed or encrypted under an older secret version: to be written again.
    pub(super) older_secret: bool,
    pub(super) answer: Arc<AnswerMemo>,
}

/// Verified cache values by their exact text, so that a client sending the same cookie
/// again costs a lookup instead of a decode and a signature check, and its answer is the
/// body already made ([`AnswerMemo`]). Only the cryptography, the parsing and the answer's
/// bytes are remembered: token, version, windows, bans and revocation are checked on
/// every request. Bounded; emptied when full.
#[derive(Default)]
struct Memo {
    /// foldhash rather than SipHash: a key is a whole cookie value (often 1–2 KB), hashed on
    /// every request; only values that passed verification are inserted, so a stranger
    /// cannot choose the keys.
    map: std::sync::Mutex<MemoMap>,
}

type MemoMap = std::collections::HashMap<String, Arc<Decoded>, foldhash::fast::RandomState>;

/// Entries kept: with values of at most [`MEMO_MAX_VALUE`] bytes, each with an answer no
/// larger than its value, a few MiB at most.
const MEMO_CAP: usize = 1024;
/// Longer values are decoded every time rather than remembered.
const MEMO_MAX_VALUE: usize = 4096;

impl Memo {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoMap> {
        match self.map.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn get(&self, raw: &str) -> Option<Arc<Decoded>> {
        self.lock().get(raw).cloned()
    }

    fn put(&self, raw: &str, d: Arc<Decoded>) {
        if raw.len() > MEMO_MAX_VALUE {
            return;
        }
        let mut map = self.lock();
        if map.len() >= MEMO_CAP {
            map.clear();
        }
        map.insert(raw.to_owned(), d);
    }
}

impl SessionService {
    /// Writes the cache cookie for `session` (chunked by the HTTP layer when too large),
    /// if the cache is on.
    pub(super) fn write_cache(
        &self,
        session: &Session,
        user: &User,
        dont_remember: bool,
        req: &RequestCookies,
        out: &mut Vec<CookieOp>,
    ) {
        let cache = &self.inner.cache;
        if !cache.enabled {
            return;
        }
        let max_age = (!dont_remember).then_some(cache.max_age);
        let encoded = cache.codec.encode(
            &self.output(session).to_json(),
            &self.user_output(user).to_json(),
            &cache.version,
            self.inner.clock.now_ms(),
            max_age,
        );
        match encoded {
            Ok(value) => out.push(CookieOp::SetCache {
                value,
                max_age,
                carried: req.carried(&self.inner.names.data),
            }),
            Err(e) => tracing::warn!(error = %e, "cookie cache not written"),
        }
    }

    /// The request's cache value: the whole cookie, or its chunks joined in order.
    pub(super) fn read_cache<'r>(&self, req: &'r RequestCookies) -> Option<Cow<'r, str>> {
        let name = &self.inner.names.data;
        if let Some(v) = req.get(name) {
            return Some(v);
        }
        let set = req.chunk_set(name);
        if set == 0 {
            return None;
        }
        let joined: String = (0..MAX_CHUNKS)
            .filter(|i| set & (1 << i) != 0)
            .filter_map(|i| req.get(&format!("{name}.{i}")))
            .collect();
        Some(Cow::Owned(joined))
    }

    /// Expires the cache cookie and every chunk the request carried.
    pub(super) fn expire_cache(&self, req: &RequestCookies, out: &mut Vec<CookieOp>) {
        out.push(CookieOp::Expire(CookieKind::Cache));
        let carried = req.carried(&self.inner.names.data);
        out.extend(chunk_kinds(carried.chunks).map(CookieOp::Expire));
    }

    /// A cached session that Better Auth would accept: verified (under any secret version),
    /// same token, same version, window open, session not expired.
    pub(super) fn accept_cache(&self, raw: &str, token: &str, now_ms: i64) -> Option<Hit> {
        let cache = &self.inner.cache;
        let d = match cache.memo.get(raw) {
            Some(d) => {
                // The codec's own time check, skipped on a memo hit: jwt refuses at `exp`.
                if cache.codec.strategy() == Strategy::Jwt
                    && d.window_end_ms.div_euclid(1000) <= now_ms.div_euclid(1000)
                {
                    return None;
                }
                d
            }
            None => {
                let p = cache.codec.decode(raw, now_ms).ok()?;
                let d = Arc::new(Decoded {
                    session: Arc::new(Session::from_json(&p.session)?),
                    user: Arc::new(User::from_json(&p.user)?),
                    version: p.version,
                    window_end_ms: p.expires_at_ms,
                    minted_ms: p.updated_at,
                    older_secret: p.older_secret,
                    answer: Arc::default(),
                });
                cache.memo.put(raw, d.clone());
                d
            }
        };
        if d.session.token != token
            || d.version.as_deref().unwrap_or("1") != cache.version
            || d.window_end_ms < now_ms
            // A window longer than any this service mints (a peer's or another replica's
            // longer max_age) would outlive the memory of revocations: check the store.
            || d.window_end_ms - now_ms > cache.longest_window_ms
            || d.session.expires_at.timestamp_millis() < now_ms
            || self
                .inner
                .policy
                .past_cap(&d.session, crate::clock::from_ms(now_ms))
            || !self.inner.revocations.allows_cached(token, d.minted_ms)
        {
            return None;
        }
        Some(Hit {
            session: d.session.clone(),
            user: d.user.clone(),
            window_end_ms: d.window_end_ms,
            older_secret: d.older_secret,
            answer: d.answer.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn decoded() -> Arc<Decoded> {
        let t = chrono::DateTime::UNIX_EPOCH;
        Arc::new(Decoded {
            session: Arc::new(Session {
                id: "s".into(),
                token: "t".into(),
                user_id: "u".into(),
                expires_at: t,
                created_at: t,
                updated_at: t,
                ip_address: None,
                user_agent: None,
                extra: Map::new(),
            }),
            user: Arc::new(User {
                id: "u".into(),
                name: String::new(),
                email: "u@example.com".into(),
                email_verified: false,
                image: None,
                created_at: t,
                updated_at: t,
                extra: Map::new(),
            }),
            version: None,
            window_end_ms: 0,
            minted_ms: None,
            older_secret: false,
            answer: Arc::default(),
        })
    }

    #[test]
    fn the_memo_is_bounded_in_entries_and_value_size() {
        let memo = Memo::default();
        for i in 0..3 * MEMO_CAP {
            memo.put(&format!("value-{i}"), decoded());
            assert!(memo.lock().len() <= MEMO_CAP);
        }
        let long = "x".repeat(MEMO_MAX_VALUE + 1);
        memo.put(&long, decoded());
        assert!(memo.get(&long).is_none(), "long values are not remembered");
        assert!(memo.get(&format!("value-{}", 3 * MEMO_CAP - 1)).is_some());
    }
}
