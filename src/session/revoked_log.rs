//! The revocation feed's log: the sessions ended lately, by `sid` (the SHA-256 of the
//! session token, never the token), for services that verify JWTs offline.
//!
//! Fed by this replica's own revocations and by every end the stores' feeds announce (a
//! local revocation also comes back through them: entries are deduplicated by sid while
//! retained). An entry is kept for the retention (the longest JWT lifetime plus a margin):
//! past it, every JWT of that session has expired anyway. At most [`MAX_ENTRIES`] are
//! kept; past the cap the oldest go, and a cursor from before them is no longer complete.
//!
//! The log knows since when it is complete: since this process started, the last reset
//! (sessions may have ended unannounced: a `TRUNCATE`, a Redis flush) and the last time
//! every feed guaranteed again; and not at all while a feed is down.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::clock::Clock;
use crate::store::feed::TokenHash;

/// Revoked sessions kept at most (about 100 bytes each with the index: ~10 MB).
pub const MAX_ENTRIES: usize = 100_000;
/// Entries per answer at most (a page of entries sharing one millisecond is sent whole).
pub const PAGE: usize = 10_000;
/// How far back a final answer's cursor points: replicas hear an end at slightly
/// different times, so a verifier moving between replicas sees the last seconds again.
pub const OVERLAP_MS: i64 = 5_000;
/// Live events buffered per subscriber; one that falls further behind gets a reset.
pub const LIVE_BUFFER: usize = 1_024;
/// Margin added to the longest JWT lifetime for the retention (clock skew, delays).
pub const RETENTION_MARGIN_SECS: u64 = 60;

/// One ended session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoked {
    /// SHA-256 of the session token (the JWTs' `sid`).
    pub sid: TokenHash,
    /// When this replica learnt of it (ms on the service's clock).
    pub at: i64,
}

impl Revoked {
    /// The sid as JWTs carry it: 64 lower-case hex digits.
    pub fn sid_hex(&self) -> String {
        hex::encode(self.sid)
    }
}

/// What live subscribers hear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// A session ended.
    Revoked(Revoked),
    /// Ends may go (or have gone) unannounced: the subscriber cannot rely on what follows.
    Reset,
}

/// One answer to "what ended since `since`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Oldest first.
    pub revoked: Vec<Revoked>,
    /// Where to ask next.
    pub cursor: i64,
    /// Whether every end since `since` is in the log.
    pub complete: bool,
    /// Whether more entries follow (ask again from `cursor` at once).
    pub more: bool,
}

struct Inner {
    entries: VecDeque<Revoked>,
    sids: HashSet<TokenHash>,
    /// `at` of the newest entry dropped by the cap.
    dropped_until: Option<i64>,
    /// Cursors from this moment on (ms) are complete.
    complete_since: i64,
}

/// The log, its completeness and its live subscribers.
pub struct RevokedLog {
    clock: Arc<dyn Clock>,
    retention_ms: i64,
    inner: Mutex<Inner>,
    /// Some feed cannot guarantee right now.
    down: AtomicBool,
    live: broadcast::Sender<Live>,
}

impl RevokedLog {
    /// A log keeping entries for `retention_secs`, complete from now on.
    pub fn new(retention_secs: u64, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now_ms();
        Self {
            retention_ms: i64::try_from(retention_secs)
                .unwrap_or(i64::MAX)
                .saturating_mul(1000),
            clock,
            inner: Mutex::new(Inner {
                entries: VecDeque::new(),
                sids: HashSet::new(),
                dropped_until: None,
                complete_since: now.saturating_add(1),
            }),
            down: AtomicBool::new(false),
            live: broadcast::channel(LIVE_BUFFER).0,
        }
    }

    /// The retention for JWT lifetimes `lifetimes_secs`: the longest plus a margin.
    pub fn retention_for(lifetimes_secs: &[u64]) -> u64 {
        lifetimes_secs
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .saturating_add(RETENTION_MARGIN_SECS)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn prune(&self, inner: &mut Inner, now: i64) {
        let floor = now.saturating_sub(self.retention_ms);
        while inner.entries.front().is_some_and(|e| e.at < floor) {
            if let Some(e) = inner.entries.pop_front() {
                inner.sids.remove(&e.sid);
            }
        }
    }

    /// Records an ended session (once while it is retained).
    pub fn record(&self, sid: TokenHash) {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        self.prune(&mut inner, now);
        if inner.sids.contains(&sid) {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            if let Some(old) = inner.entries.pop_front() {
                inner.sids.remove(&old.sid);
                inner.dropped_until = Some(old.at);
            }
        }
        // Never behind the newest entry, so that the log stays ordered if the clock steps
        // back.
        let at = inner.entries.back().map_or(now, |last| last.at.max(now));
        let e = Revoked { sid, at };
        inner.entries.push_back(e);
        inner.sids.insert(sid);
        // Sent under the lock: a subscriber taking its backlog under it misses nothing.
        let _ = self.live.send(Live::Revoked(e));
    }

    /// Sessions may have ended unannounced until now: live subscribers are reset.
    pub fn reset(&self) {
        let inner = self.complete_from_now();
        let _ = self.live.send(Live::Reset);
        drop(inner);
    }

    fn complete_from_now(&self) -> std::sync::MutexGuard<'_, Inner> {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        inner.complete_since = inner.complete_since.max(now.saturating_add(1));
        inner
    }

    /// Whether every feed guarantees now. Losing the guarantee resets live subscribers;
    /// regaining it makes the log complete from then on (ends in between may be missing;
    /// subscribers were told when it was lost, or at their start).
    pub fn set_guaranteed(&self, guaranteed: bool) {
        let was_down = self.down.swap(!guaranteed, Ordering::SeqCst);
        if guaranteed && was_down {
            drop(self.complete_from_now());
        } else if !guaranteed && !was_down {
            let _inner = self.lock();
            let _ = self.live.send(Live::Reset);
        }
    }

    fn complete(&self, inner: &Inner, since: i64, now: i64) -> bool {
        // Ends older than the retention matter no more: their JWTs have expired.
        let since = since.max(now.saturating_sub(self.retention_ms));
        !self.down.load(Ordering::SeqCst)
            && since >= inner.complete_since
            && inner.dropped_until.is_none_or(|d| since > d)
    }

    /// Up to `limit` entries with `at >= since` (all retained when `None`), oldest first.
    pub fn page(&self, since: Option<i64>, limit: usize) -> Page {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        self.prune(&mut inner, now);
        // A cursor ahead of this replica's clock (another replica's, skewed; or made up)
        // counts from now: kept as is, it would come back as the cursor, and ends heard
        // before it would never be listed while the answers still said `complete`.
        let from = since.unwrap_or(i64::MIN).min(now.saturating_add(1));
        let start = inner.entries.partition_point(|e| e.at < from);
        let complete = self.complete(&inner, from, now);
        let left = inner.entries.len() - start;
        let limit = limit.max(1);
        if left <= limit {
            return Page {
                revoked: inner.entries.range(start..).copied().collect(),
                cursor: now.saturating_sub(OVERLAP_MS).max(from),
                complete,
                more: false,
            };
        }
        let mut end = start + limit;
        let at = |i: usize| inner.entries.get(i).map_or(i64::MAX, |e| e.at);
        let last = at(end - 1);
        let mut cursor = last;
        if at(start) == last {
            // A whole page in one millisecond: send that millisecond whole and go past
            // it, or the next page would start at the same place.
            while inner.entries.get(end).is_some_and(|e| e.at == last) {
                end += 1;
            }
            cursor = last.saturating_add(1);
        }
        Page {
            revoked: inner.entries.range(start..end).copied().collect(),
            cursor,
            complete,
            more: end < inner.entries.len(),
        }
    }

    /// Live events from now on. Subscribe before reading the backlog: an end recorded in
    /// between is then heard twice rather than missed.
    pub fn subscribe(&self) -> broadcast::Receiver<Live> {
        let _inner = self.lock();
        self.live.subscribe()
    }

    /// Entries retained now.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no entry is retained.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[path = "revoked_log_tests.rs"]
mod tests;
