//! Revocation feeds: background loops that follow what the stores announce about ended
//! sessions, so that every replica refuses a revoked session's cookie cache at once.
//!
//! - PostgreSQL: `LISTEN sessiond_revoked`, fed by a trigger on every ended session row
//!   (deleted, ended in place, token rewritten) and by `TRUNCATE` (payload `*`); a second
//!   loop checks every second that the trigger exists and fires in every replication role.
//! - Redis: a subscriber for sessiond's own announcements and Redis's keyspace events
//!   (keys deleted, evicted or renamed by anyone), and a watchdog that notices a flush or a
//!   restart (its marker key vanished) and whether keyspace notifications are on.
//!
//! Each loop reports through [`Listener`]: ended sessions, resets (sessions may have
//! ended unannounced: every cache minted earlier must be checked), and whether it can
//! currently guarantee that every end is announced.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

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

/// Follows the trigger's announcements until the process ends.
pub fn spawn_pg(pool: sqlx::PgPool, listener: Arc<dyn Listener>) {
    let listen = listener.register("postgres-listen");
    let l = listener.clone();
    let p = pool.clone();
    tokio::spawn(async move {
        loop {
            let mut pg = match sqlx::postgres::PgListener::connect_with(&p).await {
                Ok(pg) => pg,
                Err(e) => {
                    tracing::warn!(error = %e, "revocation listener cannot connect");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            if let Err(e) = pg.listen(PG_CHANNEL).await {
                tracing::warn!(error = %e, "revocation listener cannot LISTEN");
                tokio::time::sleep(RETRY).await;
                continue;
            }
            l.announce(listen, Announcement::Guaranteed);
            while let Ok(Some(n)) = pg.try_recv().await {
                match n.payload() {
                    "*" => l.announce(listen, Announcement::Reset("truncate")),
                    hash => {
                        if let Some(h) = parse_hash(hash) {
                            l.announce(listen, Announcement::Revoked(h));
                        }
                    }
                }
            }
            tracing::warn!("revocation listener disconnected; cache hits are revalidated");
            l.announce(listen, Announcement::Unguaranteed("postgres disconnected"));
        }
    });
    let trigger = listener.register("postgres-trigger");
    tokio::spawn(async move {
        let mut last: Option<Result<bool, ()>> = None;
        loop {
            let now = trigger_fires(&pool).await.map_err(|_| ());
            if last != Some(now) {
                let a = match now {
                    Ok(true) => Announcement::Guaranteed,
                    Ok(false) => {
                        tracing::warn!(
                            "the session revocation triggers are missing or not enabled ALWAYS; \
                             cookie-cache hits are revalidated until they are back (sessiond \
                             migrate restores them)"
                        );
                        Announcement::Unguaranteed("trigger missing")
                    }
                    Err(()) => Announcement::Unguaranteed("postgres unreachable"),
                };
                listener.announce(trigger, a);
                last = Some(now);
            }
            tokio::time::sleep(WATCH_INTERVAL).await;
        }
    });
}

/// Whether the revocation trigger exists and fires whatever the replication role
/// (`ENABLE ALWAYS`), for both row ends and truncation.
async fn trigger_fires(pool: &sqlx::PgPool) -> Result<bool, sqlx::Error> {
    let found: i64 = sqlx::query_scalar(
        r#"select count(*) from pg_trigger
           where tgrelid = '"session"'::regclass
             and tgname in ('sessiond_session_revoked', 'sessiond_session_truncated')
             and tgenabled = 'A'"#,
    )
    .fetch_one(pool)
    .await?;
    Ok(found == 2)
}
