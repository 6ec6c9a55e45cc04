//! Immediate revocation for cookie-cache hits.
//!
//! A cached `session_data` cookie lets `get-session` answer without the store, so a
//! session revoked elsewhere would stay usable until the cache expires (Better Auth's
//! behaviour). Here every replica keeps a deny set of recently revoked tokens (as
//! SHA-256 hex, entries kept for the cache's lifetime), fed by its own revocations and by
//! announcements: PostgreSQL `LISTEN sessiond_revoked` (a trigger announces every ended
//! session row, whoever deleted it) and Redis pub/sub (sessiond announces the sessions
//! it deletes from Redis).
//!
//! Announcements can be missed while a listener is disconnected, so a cache hit is only
//! trusted when every listener is connected *and* the cached value was minted after the
//! current connections were established; anything older is checked against the store
//! once (and re-cached). A fresh process therefore revalidates caches minted before it
//! started.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::clock::Clock;

/// Entries beyond this make the set reset (and every older cache be revalidated).
const MAX_ENTRIES: usize = 1_000_000;
/// The PostgreSQL channel the trigger announces on.
pub const PG_CHANNEL: &str = "sessiond_revoked";

/// SHA-256 hex of a token, as the trigger computes it.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The deny set and the health of the listeners that feed it.
pub struct Revocations {
    enabled: bool,
    keep_ms: i64,
    clock: Arc<dyn Clock>,
    denied: Mutex<HashMap<String, i64>>,
    count: AtomicUsize,
    /// Listeners that must be connected; each clears its flag while disconnected.
    listeners_down: AtomicUsize,
    /// Caches minted before this (ms) are revalidated against the store.
    trusted_since: AtomicI64,
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
            listeners_down: AtomicUsize::new(0),
            trusted_since: AtomicI64::new(now),
        }
    }

    /// Whether revocation checks run at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        match self.denied.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Records a revoked token (by its hash).
    pub fn deny_hash(&self, hash: String) {
        if !self.enabled {
            return;
        }
        let now = self.clock.now_ms();
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, until| *until > now);
            if map.len() >= MAX_ENTRIES {
                // Too many to remember: forget them all and revalidate every older cache.
                map.clear();
                self.trusted_since.fetch_max(now, Ordering::SeqCst);
            }
        }
        map.insert(hash, now + self.keep_ms);
        self.count.store(map.len(), Ordering::Relaxed);
    }

    /// Records a revoked token.
    pub fn deny(&self, token: &str) {
        if self.enabled {
            self.deny_hash(token_hash(token));
        }
    }

    /// Whether a cache hit for `token`, minted at `minted_ms`, may be served.
    pub fn allows_cached(&self, token: &str, minted_ms: Option<i64>) -> bool {
        if !self.enabled {
            return true;
        }
        if self.listeners_down.load(Ordering::SeqCst) > 0 {
            return false;
        }
        if minted_ms.is_none_or(|m| m < self.trusted_since.load(Ordering::SeqCst)) {
            return false;
        }
        if self.count.load(Ordering::Relaxed) == 0 {
            return true;
        }
        let now = self.clock.now_ms();
        let hash = token_hash(token);
        self.lock().get(&hash).is_none_or(|until| *until <= now)
    }

    /// A listener that must be connected exists; it starts disconnected.
    fn register_listener(&self) {
        self.listeners_down.fetch_add(1, Ordering::SeqCst);
    }

    /// A listener (re)connected: caches minted from now on can be trusted.
    fn listener_up(&self, was_down: &AtomicBool) {
        self.trusted_since
            .fetch_max(self.clock.now_ms(), Ordering::SeqCst);
        if was_down.swap(false, Ordering::SeqCst) {
            self.listeners_down.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A listener lost its connection.
    fn listener_down(&self, was_down: &AtomicBool) {
        if !was_down.swap(true, Ordering::SeqCst) {
            self.listeners_down.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Whether every listener is connected (for `/readyz`).
    pub fn listeners_connected(&self) -> bool {
        self.listeners_down.load(Ordering::SeqCst) == 0
    }

    /// Follows the PostgreSQL trigger's announcements until the process ends.
    pub fn spawn_pg_listener(self: &Arc<Self>, pool: sqlx::PgPool) {
        if !self.enabled {
            return;
        }
        self.register_listener();
        let this = self.clone();
        tokio::spawn(async move {
            let down = AtomicBool::new(true);
            loop {
                let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "revocation listener cannot connect");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                if let Err(e) = listener.listen(PG_CHANNEL).await {
                    tracing::warn!(error = %e, "revocation listener cannot LISTEN");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                this.listener_up(&down);
                while let Ok(Some(n)) = listener.try_recv().await {
                    this.deny_hash(n.payload().to_owned());
                }
                tracing::warn!("revocation listener disconnected; cache hits are revalidated");
                this.listener_down(&down);
            }
        });
    }

    /// Follows revocations announced on Redis until the process ends: sessiond's own
    /// announcements on `channel`, and — when `deletions` gives the key prefix — Redis's
    /// keyspace events for deleted keys, so that a session key deleted by another
    /// application (a Better Auth app sharing the Redis) counts too.
    pub fn spawn_redis_listener(
        self: &Arc<Self>,
        client: redis::Client,
        channel: String,
        deletions: Option<String>,
    ) {
        use futures::StreamExt;
        if !self.enabled {
            return;
        }
        self.register_listener();
        let this = self.clone();
        tokio::spawn(async move {
            let down = AtomicBool::new(true);
            loop {
                let mut pubsub = match client.get_async_pubsub().await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::debug!(error = %e, "revocation subscriber cannot connect");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                if let Err(e) = pubsub.subscribe(&channel).await {
                    tracing::warn!(error = %e, "revocation subscriber cannot SUBSCRIBE");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                let db = client.get_connection_info().redis_settings().db();
                let del_channel = format!("__keyevent@{db}__:del");
                if deletions.is_some() {
                    if let Err(e) = pubsub.subscribe(&del_channel).await {
                        tracing::warn!(error = %e, "cannot follow Redis key deletions");
                    }
                }
                this.listener_up(&down);
                {
                    let mut stream = pubsub.on_message();
                    while let Some(msg) = stream.next().await {
                        let Ok(payload) = msg.get_payload::<String>() else {
                            continue;
                        };
                        if msg.get_channel_name() == del_channel {
                            // A deleted key: a session key is `<prefix><32-char token>`.
                            let token = deletions
                                .as_deref()
                                .and_then(|p| payload.strip_prefix(p))
                                .filter(|t| {
                                    t.len() == 32 && t.bytes().all(|b| b.is_ascii_alphanumeric())
                                });
                            if let Some(t) = token {
                                this.deny(t);
                            }
                        } else {
                            this.deny_hash(payload);
                        }
                    }
                }
                tracing::warn!("revocation subscriber disconnected; cache hits are revalidated");
                this.listener_down(&down);
            }
        });
    }
}
