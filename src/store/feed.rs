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
/// How often the watchdogs look (the bound on a silent loss, e.g. a flush).
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);
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
    /// A session ended.
    Revoked(TokenHash),
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

/// How often the PostgreSQL watchdog looks and pings its listener.
const PG_WATCH_INTERVAL: Duration = Duration::from_millis(500);
/// Pings the listener may lag behind before it counts as silent (about a second).
const PG_PING_SLACK: u64 = 2;
/// A silent listener is reconnected after this many looks.
const PG_SILENT_RECONNECT: u64 = 6;

/// What the PostgreSQL listener and its watchdog share: the last ping the listener
/// received, and a way to make it reconnect.
struct PgLiveness {
    ping_channel: String,
    seen: AtomicU64,
    reconnect: Notify,
}

/// Follows the trigger's announcements until the process ends. A watchdog checks twice a
/// second that the triggers are there, unchanged and enabled in every replication role,
/// and that the listener still hears: it notifies the listener's own channel and expects
/// to hear it back. A connection that stalls without closing (a partition, a stuck
/// middlebox) therefore counts as down within about a second, and is replaced.
pub fn spawn_pg(pool: sqlx::PgPool, listener: Arc<dyn Listener>) {
    let live = Arc::new(PgLiveness {
        ping_channel: format!(
            "sessiond_ping_{}",
            crate::crypto::token::generate_id().to_lowercase()
        ),
        seen: AtomicU64::new(0),
        reconnect: Notify::new(),
    });
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

async fn pg_listen(pool: sqlx::PgPool, l: Arc<dyn Listener>, source: usize, live: Arc<PgLiveness>) {
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
                if let Ok(seq) = n.payload().parse::<u64>() {
                    live.seen.fetch_max(seq, Ordering::SeqCst);
                }
                continue;
            }
            match n.payload() {
                "*" => l.announce(source, Announcement::Reset("truncate")),
                hash => {
                    if let Some(h) = parse_hash(hash) {
                        l.announce(source, Announcement::Revoked(h));
                    }
                }
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

async fn pg_watch(pool: sqlx::PgPool, l: Arc<dyn Listener>, source: usize, live: Arc<PgLiveness>) {
    let mut last: Option<PgSeen> = None;
    let mut triggers: Option<String> = None;
    let mut seq: u64 = 0;
    let mut silent: u64 = 0;
    loop {
        seq += 1;
        let looked = tokio::time::timeout(PG_WATCH_INTERVAL * 2, async {
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
                let heard = live.seen.load(Ordering::SeqCst);
                if heard + PG_PING_SLACK < seq {
                    silent += 1;
                    PgSeen::ListenerSilent
                } else {
                    silent = 0;
                    PgSeen::Fine
                }
            }
            Ok(Ok((false, _))) => PgSeen::TriggerMissing,
            Ok(Err(_)) | Err(_) => PgSeen::Unreachable,
        };
        if silent >= PG_SILENT_RECONNECT {
            live.reconnect.notify_one();
            silent = 0;
        }
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
        tokio::time::sleep(PG_WATCH_INTERVAL).await;
    }
}

/// Whether both revocation triggers exist and fire whatever the replication role
/// (`ENABLE ALWAYS`), and a text that changes whenever either is altered (their row
/// versions).
async fn trigger_state(pool: &sqlx::PgPool) -> Result<(bool, String), sqlx::Error> {
    let (enabled, versions): (i64, Option<String>) = sqlx::query_as(
        r#"select count(*) filter (where tgenabled = 'A'),
                  string_agg(tgname || ':' || xmin::text, ',' order by tgname)
           from pg_trigger
           where tgrelid = '"session"'::regclass
             and tgname in ('sessiond_session_revoked', 'sessiond_session_truncated')"#,
    )
    .fetch_one(pool)
    .await?;
    Ok((enabled == 2, versions.unwrap_or_default()))
}
