//! Revocation feeds: background loops that follow what the stores announce about ended
//! sessions, so that every replica refuses a revoked session's cookie cache at once.
//!
//! - PostgreSQL: `LISTEN sessiond_revoked`, fed by a trigger on every ended session row
//!   (deleted, ended early, token rewritten) and by `TRUNCATE` (payload `*`); a watchdog
//!   checks twice a second that the triggers exist, fire in every replication role and
//!   were not altered, and that the listener still hears.
//! - Redis: a subscriber for sessiond's own announcements and Redis's keyspace events
//!   (keys deleted, evicted or renamed by anyone), and a watchdog that notices a flush or a
//!   restart (its marker key vanished) and whether keyspace notifications are on.
//!
//! Each loop reports through [`Listener`]: ended sessions, resets (sessions may have
//! ended unannounced: every cache minted earlier must be checked), and whether it can
//! currently guarantee that every end is announced.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::Notify;

/// The PostgreSQL channel the trigger announces on.
pub const PG_CHANNEL: &str = "sessiond_revoked";
/// Pause before reconnecting a lost feed.
const RETRY: Duration = Duration::from_millis(500);

/// SHA-256 of a session token: what announcements carry (never the token).
pub type TokenHash = [u8; 32];

/// The hash of a token.
pub fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// Parses an announced hash (64 hex digits).
pub fn parse_hash(hex_text: &str) -> Option<TokenHash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text.trim(), &mut out).ok()?;
    Some(out)
}

/// What a feed tells its listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announcement {
    /// A session ended: refused from caches, and from the store too while remembered (a
    /// store that rolls back, such as a Redis failover to a lagging replica, must not bring
    /// it back).
    Revoked(TokenHash),
    /// A session changed in a way its cached copies do not show (its expiry moved
    /// earlier): caches are refused, the store's answer stands.
    Changed(TokenHash),
    /// Sessions may have ended unannounced (why, in a fixed word): every cache minted
    /// before now must be checked against the store.
    Reset(&'static str),
    /// From now on every end is announced.
    Guaranteed,
    /// Ends may go unannounced (why, in a fixed word) until the next `Guaranteed`.
    Unguaranteed(&'static str),
}

/// Receives a feed's announcements; `source` tells the feeds apart.
pub trait Listener: Send + Sync + 'static {
    /// Registers a feed that starts unguaranteed; its number.
    fn register(&self, name: &'static str) -> usize;
    /// One announcement of feed `source`.
    fn announce(&self, source: usize, a: Announcement);
}

/// How often the watchdogs look and ping their listeners.
pub const LOOK_INTERVAL: Duration = Duration::from_millis(500);
/// Pings a listener may lag behind before it counts as silent (about a second).
const PING_SLACK: u64 = 2;
/// A silent listener is reconnected after this many looks.
const SILENT_RECONNECT: u64 = 6;

/// What a listener and its watchdog share: the last ping the listener heard on its own
/// channel, and a way to make it reconnect. A connection that stalls without closing (a
/// partition, a stuck middlebox) hears nothing: that is how it is found out.
pub struct Liveness {
    /// The listener's own channel.
    pub ping_channel: String,
    seen: AtomicU64,
    /// Tells the listener to drop its connection and make a new one.
    pub reconnect: Notify,
    silent: AtomicU64,
    /// Subscriptions the listener made, and whether the latest still holds. A listener
    /// whose guarantee depends on the server it listens on (Redis: keyspace events are
    /// configured per server, and a failover moves it) is vouched for by its watchdog,
    /// under this lock, so that a disconnection cannot fall between the check and the
    /// announcement.
    subscription: std::sync::Mutex<(u64, bool)>,
    /// Wakes the watchdog when the listener subscribes, so that it vouches at once.
    pub subscribed_now: Notify,
}

impl Liveness {
    /// A fresh channel name for `kind` (lower-case letters, digits and `_`).
    pub fn new(kind: &str) -> Self {
        Self {
            ping_channel: format!(
                "sessiond_ping_{kind}_{}",
                crate::crypto::token::generate_id().to_lowercase()
            ),
            seen: AtomicU64::new(0),
            reconnect: Notify::new(),
            silent: AtomicU64::new(0),
            subscription: std::sync::Mutex::new((0, false)),
            subscribed_now: Notify::new(),
        }
    }

    fn subscription_state(&self) -> std::sync::MutexGuard<'_, (u64, bool)> {
        self.subscription
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The listener subscribed anew.
    pub fn subscribed(&self) {
        {
            let mut s = self.subscription_state();
            *s = (s.0 + 1, true);
        }
        self.subscribed_now.notify_one();
    }

    /// The listener lost its subscription: `then` runs before a watchdog can vouch again.
    pub fn unsubscribed(&self, then: impl FnOnce()) {
        let mut s = self.subscription_state();
        s.1 = false;
        then();
    }

    /// The subscription holding now, if any.
    pub fn subscription(&self) -> Option<u64> {
        let s = self.subscription_state();
        s.1.then_some(s.0)
    }

    /// Runs `then` if subscription `n` still holds; whether it did.
    pub fn vouch(&self, n: u64, then: impl FnOnce()) -> bool {
        let s = self.subscription_state();
        let holds = *s == (n, true);
        if holds {
            then();
        }
        holds
    }

    /// Whether the listener heard ping `seq` or a later one.
    pub fn heard_since(&self, seq: u64) -> bool {
        self.seen.load(Ordering::SeqCst) >= seq
    }

    /// Whether the listener hears ping `seq` (or a later one) within `wait`.
    pub async fn hears(&self, seq: u64, wait: Duration) -> bool {
        let until = tokio::time::Instant::now() + wait;
        while !self.heard_since(seq) {
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// The listener heard ping `payload`.
    pub fn heard(&self, payload: &str) {
        if let Ok(seq) = payload.parse::<u64>() {
            self.seen.fetch_max(seq, Ordering::SeqCst);
        }
    }

    /// After ping `seq` was sent: whether the listener keeps up. A listener silent for
    /// [`SILENT_RECONNECT`] looks is told to reconnect.
    pub fn keeps_up(&self, seq: u64) -> bool {
        if self.seen.load(Ordering::SeqCst) + PING_SLACK >= seq {
            self.silent.store(0, Ordering::SeqCst);
            return true;
        }
        if self.silent.fetch_add(1, Ordering::SeqCst) + 1 >= SILENT_RECONNECT {
            self.silent.store(0, Ordering::SeqCst);
            self.reconnect.notify_one();
        }
        false
    }
}

/// Reads an announcement payload: a token hash (an end), `~` and a hash (a change), or `*`
/// (a truncation).
pub fn parse_payload(payload: &str) -> Option<Announcement> {
    match payload {
        "*" => Some(Announcement::Reset("truncate")),
        p => match p.strip_prefix('~') {
            Some(h) => parse_hash(h).map(Announcement::Changed),
            None => parse_hash(p).map(Announcement::Revoked),
        },
    }
}

/// Follows the trigger's announcements until the process ends. A watchdog checks twice a
/// second that the triggers are there, unchanged and enabled in every replication role,
/// and that the listener still hears: it notifies the listener's own channel and expects
/// to hear it back. A connection that stalls without closing (a partition, a stuck
/// middlebox) therefore counts as down within about a second, and is replaced.
pub fn spawn_pg(pool: sqlx::PgPool, listener: Arc<dyn Listener>) {
    let live = Arc::new(Liveness::new("pg"));
    let listen = listener.register("postgres-listen");
    tokio::spawn(pg_listen(
        pool.clone(),
        listener.clone(),
        listen,
        live.clone(),
    ));
    let watch = listener.register("postgres-watch");
    tokio::spawn(pg_watch(pool, listener, watch, live));
}

async fn pg_listen(pool: sqlx::PgPool, l: Arc<dyn Listener>, source: usize, live: Arc<Liveness>) {
    loop {
        let mut pg = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(pg) => pg,
            Err(e) => {
                tracing::warn!(error = %e, "revocation listener cannot connect");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if let Err(e) = pg
            .listen_all([PG_CHANNEL, live.ping_channel.as_str()])
            .await
        {
            tracing::warn!(error = %e, "revocation listener cannot LISTEN");
            tokio::time::sleep(RETRY).await;
            continue;
        }
        l.announce(source, Announcement::Guaranteed);
        loop {
            // Dropping a receive in flight is fine: the connection is dropped with it.
            let n = tokio::select! {
                n = pg.try_recv() => n,
                () = live.reconnect.notified() => break,
            };
            let Ok(Some(n)) = n else { break };
            if n.channel() == live.ping_channel {
                live.heard(n.payload());
            } else if let Some(a) = parse_payload(n.payload()) {
                l.announce(source, a);
            }
        }
        tracing::warn!("revocation listener disconnected; cache hits are revalidated");
        l.announce(source, Announcement::Unguaranteed("postgres disconnected"));
    }
}

/// What one look found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PgSeen {
    Fine,
    TriggerMissing,
    ListenerSilent,
    Unreachable,
}

async fn pg_watch(pool: sqlx::PgPool, l: Arc<dyn Listener>, source: usize, live: Arc<Liveness>) {
    let mut last: Option<PgSeen> = None;
    let mut triggers: Option<String> = None;
    let mut seq: u64 = 0;
    loop {
        seq += 1;
        let looked = tokio::time::timeout(LOOK_INTERVAL * 2, async {
            let t = trigger_state(&pool).await?;
            sqlx::query("select pg_notify($1, $2)")
                .bind(&live.ping_channel)
                .bind(seq.to_string())
                .execute(&pool)
                .await?;
            Ok::<_, sqlx::Error>(t)
        })
        .await;
        let seen = match looked {
            Ok(Ok((true, state))) => {
                // Disabled and enabled again between two looks: ends may have gone
                // unannounced meanwhile.
                if triggers.as_ref().is_some_and(|t| *t != state) {
                    tracing::warn!(
                        "the revocation triggers changed: every cached session is revalidated"
                    );
                    l.announce(source, Announcement::Reset("trigger changed"));
                }
                triggers = Some(state);
                if live.keeps_up(seq) {
                    PgSeen::Fine
                } else {
                    PgSeen::ListenerSilent
                }
            }
            Ok(Ok((false, _))) => PgSeen::TriggerMissing,
            Ok(Err(_)) | Err(_) => PgSeen::Unreachable,
        };
        if last != Some(seen) {
            let a = match seen {
                PgSeen::Fine => Announcement::Guaranteed,
                PgSeen::TriggerMissing => {
                    tracing::warn!(
                        "the session revocation triggers are missing or not enabled ALWAYS; \
                         cookie-cache hits are revalidated until they are back (sessiond \
                         migrate restores them)"
                    );
                    Announcement::Unguaranteed("trigger missing")
                }
                PgSeen::ListenerSilent => {
                    tracing::warn!(
                        "the revocation listener stopped hearing; cache hits are revalidated"
                    );
                    Announcement::Unguaranteed("postgres listener silent")
                }
                PgSeen::Unreachable => Announcement::Unguaranteed("postgres unreachable"),
            };
            l.announce(source, a);
            last = Some(seen);
        }
        tokio::time::sleep(LOOK_INTERVAL).await;
    }
}

/// The revocation triggers and their functions, as sessiond's migrations make them;
/// applied again at start when they are missing or altered (and migrations are on).
pub const REVOCATION_TRIGGERS: &str =
    include_str!("../../migrations/postgres/20261206000000_revocation_truncate_and_always.sql");

/// Whether both revocation triggers exist, fire whatever the replication role (`ENABLE
/// ALWAYS`) and call functions that still announce, and a text that changes whenever a
/// trigger or its function is altered (their row versions).
pub async fn trigger_state(pool: &sqlx::PgPool) -> Result<(bool, String), sqlx::Error> {
    let (sound, versions): (i64, Option<String>) = sqlx::query_as(
        r#"select count(*) filter (where t.tgenabled = 'A'
                                     and p.prosrc like '%pg_catalog.pg_notify(''sessiond_revoked''%'
                                     and 'search_path=pg_catalog' = any(p.proconfig)),
                  string_agg(t.tgname || ':' || t.xmin::text || ':' || p.xmin::text, ','
                             order by t.tgname)
           from pg_trigger t join pg_proc p on p.oid = t.tgfoid
           where t.tgrelid = '"session"'::regclass
             and t.tgname in ('sessiond_session_revoked', 'sessiond_session_truncated')"#,
    )
    .fetch_one(pool)
    .await?;
    Ok((sound == 2, versions.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::Liveness;

    /// A watchdog vouches only for the subscription that holds now: not for one lost
    /// since, nor for an earlier one after a resubscription.
    #[test]
    fn only_the_holding_subscription_is_vouched_for() {
        let live = Liveness::new("t");
        assert_eq!(live.subscription(), None);
        live.subscribed();
        let n = live.subscription().unwrap();
        let mut said = 0;
        live.unsubscribed(|| said += 1);
        assert_eq!(said, 1);
        assert!(!live.vouch(n, || said += 10));
        live.subscribed();
        assert!(!live.vouch(n, || said += 10));
        let m = live.subscription().unwrap();
        assert!(m != n);
        assert!(live.vouch(m, || said += 100));
        assert_eq!(said, 101);
        live.heard("7");
        assert!(live.heard_since(7) && !live.heard_since(8));
    }
}
