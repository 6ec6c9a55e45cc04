//! Immediate revocation for cookie-cache hits.
//!
//! A cached `session_data` cookie lets `get-session` answer without the store, so a
//! session revoked elsewhere would stay usable until the cache expires (Better Auth's
//! behaviour). Here every replica keeps a deny set of recently revoked tokens (their
//! SHA-256, kept for the cache's lifetime), fed by its own revocations and by the stores'
//! feeds ([`crate::store::feed`]).
//!
//! A cache hit is trusted only when every feed currently guarantees that each end is
//! announced, *and* the cached value was minted after the last moment that guarantee was
//! (re)gained or the last reset (a flush, a truncation): anything older is checked against
//! the store once, and re-cached. A fresh process therefore revalidates caches minted
//! before it started. While a feed cannot guarantee (disconnected, Redis notifications
//! off, the trigger missing), every hit is revalidated: slower, never stale.
//!
//! The same feeds fill the revocation feed's log ([`RevokedLog`]) when it is on, whether
//! or not the deny set is.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::clock::Clock;
use crate::session::revoked_log::RevokedLog;
use crate::store::feed::{token_hash, Announcement, Listener, TokenHash};

/// Revoked tokens remembered at most (about 64 bytes each); beyond, the set is emptied and
/// every older cache revalidated instead.
pub const MAX_ENTRIES: usize = 200_000;

/// The deny set and the state of the feeds that fill it.
pub struct Revocations {
    enabled: bool,
    keep_ms: i64,
    clock: Arc<dyn Clock>,
    /// Token hashes: until when remembered, and whether the session ended (else it only
    /// changed: its cached copies are stale, the store's answer stands).
    denied: Mutex<HashMap<TokenHash, (i64, bool)>>,
    count: AtomicUsize,
    /// Feeds by number: name and, while unguaranteed, why.
    feeds: Mutex<Vec<(&'static str, Option<&'static str>)>>,
    /// Feeds that cannot guarantee right now.
    unguaranteed: AtomicUsize,
    /// Caches minted before this (ms) are revalidated against the store.
    trusted_since: AtomicI64,
    /// The revocation feed's log, when the feed is on.
    log: Option<Arc<RevokedLog>>,
}

impl Revocations {
    /// A deny set keeping entries for `cache_max_age` (plus clock tolerance).
    pub fn new(enabled: bool, cache_max_age_secs: u64, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now_ms();
        Self {
            enabled,
            keep_ms: i64::try_from(cache_max_age_secs).unwrap_or(i64::MAX / 2000) * 1000 + 15_000,
            clock,
            denied: Mutex::new(HashMap::new()),
            count: AtomicUsize::new(0),
            feeds: Mutex::new(Vec::new()),
            unguaranteed: AtomicUsize::new(0),
            trusted_since: AtomicI64::new(now),
            log: None,
        }
    }

    /// Also fills the revocation feed's `log`.
    pub fn with_log(mut self, log: Arc<RevokedLog>) -> Self {
        self.log = Some(log);
        self
    }

    /// Whether revocation checks (the deny set) run at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether the stores' feeds must run: for the deny set or for the feed's log.
    pub fn listening(&self) -> bool {
        self.enabled || self.log.is_some()
    }

    /// The revocation feed's log, when the feed is on.
    pub fn log(&self) -> Option<&Arc<RevokedLog>> {
        self.log.as_ref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, (i64, bool)>> {
        match self.denied.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn feeds(&self) -> std::sync::MutexGuard<'_, Vec<(&'static str, Option<&'static str>)>> {
        match self.feeds.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Caches minted until now (this millisecond included) are revalidated.
    fn reset(&self, reason: &'static str) {
        self.trusted_since
            .fetch_max(self.clock.now_ms() + 1, Ordering::SeqCst);
        crate::metrics::revocation_reset(reason);
    }

    /// Records a revoked token (by its hash).
    pub fn deny_hash(&self, hash: TokenHash) {
        self.remember(hash, true);
    }

    /// Records a token whose cached copies are stale (its session changed).
    fn stale_hash(&self, hash: TokenHash) {
        self.remember(hash, false);
    }

    fn remember(&self, hash: TokenHash, ended: bool) {
        if !self.enabled {
            return;
        }
        let now = self.clock.now_ms();
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (until, _)| *until > now);
            if map.len() >= MAX_ENTRIES {
                // Too many to remember: forget them all and revalidate every older cache.
                map.clear();
                self.reset("deny set full");
            }
        }
        let entry = map.entry(hash).or_insert((0, false));
        *entry = (now + self.keep_ms, entry.1 || ended);
        self.count.store(map.len(), Ordering::Relaxed);
    }

    /// Whether `token` is known to have ended (within the deny set's memory): a store that
    /// still holds it (a lagging replica after a failover) is not believed.
    pub fn is_revoked(&self, token: &str) -> bool {
        if !self.enabled || self.count.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let now = self.clock.now_ms();
        self.lock()
            .get(&token_hash(token))
            .is_some_and(|(until, ended)| *ended && *until > now)
    }

    /// Records a revoked token.
    pub fn deny(&self, token: &str) {
        if !self.listening() {
            return;
        }
        let hash = token_hash(token);
        self.deny_hash(hash);
        if let Some(log) = &self.log {
            log.record(hash);
        }
    }

    /// Whether a cache hit for `token`, minted at `minted_ms`, may be served.
    pub fn allows_cached(&self, token: &str, minted_ms: Option<i64>) -> bool {
        if !self.enabled {
            return true;
        }
        if self.unguaranteed.load(Ordering::SeqCst) > 0 {
            return false;
        }
        if minted_ms.is_none_or(|m| m < self.trusted_since.load(Ordering::SeqCst)) {
            return false;
        }
        if self.count.load(Ordering::Relaxed) == 0 {
            return true;
        }
        let now = self.clock.now_ms();
        self.lock()
            .get(&token_hash(token))
            .is_none_or(|(until, _)| *until <= now)
    }

    /// Whether every revocation reaches this replica at once, and if not, why (for
    /// `/readyz`).
    pub fn guarantee(&self) -> Result<(), &'static str> {
        match self.feeds().iter().find_map(|(_, why)| *why) {
            None => Ok(()),
            Some(why) => Err(why),
        }
    }
}

impl Listener for Revocations {
    fn register(&self, name: &'static str) -> usize {
        let mut feeds = self.feeds();
        feeds.push((name, Some("starting")));
        self.unguaranteed.fetch_add(1, Ordering::SeqCst);
        crate::metrics::revocation_guaranteed(false);
        if let Some(log) = &self.log {
            log.set_guaranteed(false);
        }
        feeds.len() - 1
    }

    fn announce(&self, source: usize, a: Announcement) {
        if !self.listening() {
            return;
        }
        match a {
            Announcement::Revoked(hash) => {
                self.deny_hash(hash);
                if let Some(log) = &self.log {
                    log.record(hash);
                }
            }
            Announcement::Changed(hash) => self.stale_hash(hash),
            Announcement::Reset(why) => {
                self.reset(why);
                if let Some(log) = &self.log {
                    log.reset();
                }
            }
            Announcement::Guaranteed | Announcement::Unguaranteed(_) => {
                let mut feeds = self.feeds();
                let Some((_, state)) = feeds.get_mut(source) else {
                    return;
                };
                let was_down = state.is_some();
                match a {
                    Announcement::Guaranteed => {
                        // Ends missed while it could not guarantee: caches minted until now
                        // are revalidated.
                        self.trusted_since
                            .fetch_max(self.clock.now_ms(), Ordering::SeqCst);
                        *state = None;
                        if was_down {
                            self.unguaranteed.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                    Announcement::Unguaranteed(why) => {
                        *state = Some(why);
                        if !was_down {
                            self.unguaranteed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    _ => {}
                }
                let all = self.unguaranteed.load(Ordering::SeqCst) == 0;
                crate::metrics::revocation_guaranteed(all);
                if let Some(log) = &self.log {
                    log.set_guaranteed(all);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn set() -> (Revocations, ManualClock) {
        let clock = ManualClock::starting_now();
        (Revocations::new(true, 300, Arc::new(clock.clone())), clock)
    }

    #[test]
    fn caches_are_trusted_only_while_every_feed_guarantees() {
        let (r, clock) = set();
        let feed = r.register("test");
        clock.advance_secs(1);
        assert!(
            !r.allows_cached("t", Some(clock.now_ms())),
            "a starting feed"
        );
        r.announce(feed, Announcement::Guaranteed);
        let minted_before = clock.now_ms() - 1;
        clock.advance_secs(1);
        let minted = clock.now_ms();
        assert!(r.allows_cached("t", Some(minted)));
        assert!(
            !r.allows_cached("t", Some(minted_before)),
            "minted before the guarantee"
        );
        r.announce(feed, Announcement::Unguaranteed("down"));
        assert!(!r.allows_cached("t", Some(minted)));
        assert_eq!(r.guarantee(), Err("down"));
        clock.advance_secs(1);
        r.announce(feed, Announcement::Guaranteed);
        assert!(
            !r.allows_cached("t", Some(minted)),
            "minted while it could not guarantee"
        );
        clock.advance_secs(1);
        assert!(r.allows_cached("t", Some(clock.now_ms())));
        assert_eq!(r.guarantee(), Ok(()));
    }

    #[test]
    fn resets_and_revocations() {
        let (r, clock) = set();
        let feed = r.register("test");
        r.announce(feed, Announcement::Guaranteed);
        clock.advance_secs(1);
        let minted = clock.now_ms();
        r.announce(feed, Announcement::Revoked(token_hash("gone")));
        assert!(!r.allows_cached("gone", Some(minted)));
        assert!(r.allows_cached("kept", Some(minted)));
        assert!(r.is_revoked("gone"));
        // A change makes caches stale but leaves the store's answer standing.
        r.announce(feed, Announcement::Changed(token_hash("changed")));
        assert!(!r.allows_cached("changed", Some(minted)));
        assert!(!r.is_revoked("changed"));
        clock.advance_secs(1);
        r.announce(feed, Announcement::Reset("flush"));
        assert!(
            !r.allows_cached("kept", Some(minted)),
            "minted before the reset"
        );
    }

    #[test]
    fn a_full_deny_set_empties_and_revalidates() {
        let (r, clock) = set();
        clock.advance_secs(1);
        let minted = clock.now_ms();
        for i in 0..MAX_ENTRIES as u32 + 1 {
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&i.to_le_bytes());
            r.deny_hash(h);
        }
        assert_eq!(r.count.load(Ordering::Relaxed), 1);
        assert!(!r.allows_cached("any", Some(minted)));
    }
}
