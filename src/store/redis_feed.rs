//! The Redis revocation feed: a subscriber and a watchdog (see [`super::feed`]).
//!
//! The subscriber follows sessiond's own announcements (published by the same script that
//! deletes the keys, so neither happens without the other) and Redis's keyspace events
//! for session keys deleted, evicted or renamed by anyone. The watchdog, every second:
//! - checks this replica's marker key, which only a flush or a restart (Redis keeps
//!   nothing on disk here) can remove, and announces a reset when it is gone;
//! - checks `notify-keyspace-events` (unless told to assume it or to go without), and
//!   sets the missing flags only where allowed (`configure`): a shared Redis's
//!   configuration is not sessiond's to change by default.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::aio::ConnectionManager;

use super::feed::{parse_hash, token_hash, Announcement, Listener, WATCH_INTERVAL};
use crate::config::KeyspaceNotifications;

/// The channel sessiond announces revocations on.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}sessiond:revoked")
}

/// Keyspace events that end a session key.
const ENDING_EVENTS: [&str; 4] = ["del", "evicted", "rename_from", "expired"];
/// Marker keys live this long without a refresh (a crashed replica's goes away).
const MARKER_TTL_SECS: u64 = 3_600;

/// Whether `flags` (a `notify-keyspace-events` value) announce deleted and renamed keys
/// as key events (`E` and `g`, or `A` which holds `g`), and evicted ones (`e`, or `A`)
/// when `evicting` (a `maxmemory-policy` other than `noeviction`).
pub fn flags_announce_deletions(flags: &str, evicting: bool) -> bool {
    let has = |f: char| flags.contains(f) || flags.contains('A');
    flags.contains('E') && has('g') && (!evicting || has('e'))
}

/// Spawns the subscriber and the watchdog.
pub fn spawn(
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    mode: KeyspaceNotifications,
    listener: Arc<dyn Listener>,
) {
    let sub = listener.register("redis-subscriber");
    tokio::spawn(subscriber(
        client.clone(),
        prefix.clone(),
        listener.clone(),
        sub,
    ));
    let watch = listener.register("redis-watchdog");
    tokio::spawn(watchdog(conn, prefix, mode, listener, watch));
}

async fn subscriber(
    client: redis::Client,
    prefix: String,
    listener: Arc<dyn Listener>,
    source: usize,
) {
    let own = channel(&prefix);
    let db = client.get_connection_info().redis_settings().db();
    let events: Vec<String> = ENDING_EVENTS
        .iter()
        .map(|e| format!("__keyevent@{db}__:{e}"))
        .collect();
    loop {
        let mut pubsub = match client.get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "revocation subscriber cannot connect");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let mut subscribed = pubsub.subscribe(&own).await;
        for ch in &events {
            if subscribed.is_ok() {
                subscribed = pubsub.subscribe(ch).await;
            }
        }
        if let Err(e) = subscribed {
            tracing::warn!(error = %e, "revocation subscriber cannot SUBSCRIBE");
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        listener.announce(source, Announcement::Guaranteed);
        {
            let mut stream = pubsub.on_message();
            while let Some(msg) = stream.next().await {
                let Ok(payload) = msg.get_payload::<String>() else {
                    continue;
                };
                let hash = if msg.get_channel_name() == own {
                    parse_hash(&payload)
                } else {
                    // A key event: a session key is `<prefix><32-character token>`.
                    payload
                        .strip_prefix(prefix.as_str())
                        .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_alphanumeric()))
                        .map(token_hash)
                };
                if let Some(h) = hash {
                    listener.announce(source, Announcement::Revoked(h));
                }
            }
        }
        tracing::warn!("revocation subscriber disconnected; cache hits are revalidated");
        listener.announce(source, Announcement::Unguaranteed("redis disconnected"));
    }
}

/// What one look at Redis found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Fine,
    NotificationsOff,
    CannotReadConfig,
    Unreachable,
}

/// The watchdog's state between looks.
struct Watchdog {
    conn: ConnectionManager,
    marker: String,
    placed: bool,
    mode: KeyspaceNotifications,
    ticks: u64,
    /// `CONFIG SET` calls Redis has counted, when it tells (Redis 7's command stats).
    config_sets: Option<u64>,
    listener: Arc<dyn Listener>,
    source: usize,
}

async fn watchdog(
    conn: ConnectionManager,
    prefix: String,
    mode: KeyspaceNotifications,
    listener: Arc<dyn Listener>,
    source: usize,
) {
    let mut w = Watchdog {
        conn,
        marker: format!(
            "{prefix}sessiond:alive:{}",
            crate::crypto::token::generate_id()
        ),
        placed: false,
        mode,
        ticks: 0,
        config_sets: None,
        listener,
        source,
    };
    let mut last: Option<Seen> = None;
    loop {
        // A stalled Redis answers nothing: that counts as unreachable.
        let seen = tokio::time::timeout(WATCH_INTERVAL * 2, w.look())
            .await
            .unwrap_or(Seen::Unreachable);
        if last != Some(seen) {
            w.announce(seen);
            last = Some(seen);
        }
        w.ticks += 1;
        tokio::time::sleep(WATCH_INTERVAL).await;
    }
}

impl Watchdog {
    fn announce(&self, seen: Seen) {
        let a = match seen {
            Seen::Fine => Announcement::Guaranteed,
            Seen::NotificationsOff => {
                tracing::warn!(
                    "Redis keyspace notifications are off (notify-keyspace-events needs E and g, \
                     and e when keys can be evicted): sessions deleted by other applications \
                     cannot be seen, so cookie-cache hits are revalidated. Turn them on, or set \
                     redis.keyspace_notifications to \"configure\", \"assume\" or \"off\""
                );
                Announcement::Unguaranteed("keyspace notifications off")
            }
            Seen::CannotReadConfig => {
                tracing::warn!(
                    "Redis refuses CONFIG GET: keyspace notifications cannot be checked, so \
                     cookie-cache hits are revalidated. If they are on (a managed Redis's \
                     parameter group), set redis.keyspace_notifications = \"assume\""
                );
                Announcement::Unguaranteed("keyspace notifications unknown")
            }
            Seen::Unreachable => Announcement::Unguaranteed("redis unreachable"),
        };
        self.listener.announce(self.source, a);
    }

    fn reset(&self, why: &'static str) {
        self.listener
            .announce(self.source, Announcement::Reset(why));
    }

    /// One look: the marker (a reset when it vanished), then the notification flags, then
    /// whether anyone changed Redis's configuration since the last look (notifications
    /// may have been off in between: a reset).
    async fn look(&mut self) -> Seen {
        let present: Result<bool, _> = redis::cmd("EXISTS")
            .arg(&self.marker)
            .query_async(&mut self.conn)
            .await;
        match present {
            Err(_) => return Seen::Unreachable,
            Ok(false) => {
                if self.placed {
                    tracing::warn!(
                        "Redis lost its data (flushed or restarted): every cached session is revalidated"
                    );
                    self.reset("redis flush");
                }
                let set: Result<(), _> = redis::cmd("SET")
                    .arg(&self.marker)
                    .arg("1")
                    .arg("EX")
                    .arg(MARKER_TTL_SECS)
                    .query_async(&mut self.conn)
                    .await;
                if set.is_err() {
                    return Seen::Unreachable;
                }
                self.placed = true;
            }
            Ok(true) => {
                // Refreshed well before it would expire.
                if self.ticks.is_multiple_of(600) {
                    let _: Result<(), _> = redis::cmd("EXPIRE")
                        .arg(&self.marker)
                        .arg(MARKER_TTL_SECS)
                        .query_async(&mut self.conn)
                        .await;
                }
            }
        }
        if matches!(
            self.mode,
            KeyspaceNotifications::Assume | KeyspaceNotifications::Off
        ) {
            return Seen::Fine;
        }
        let seen = self.check_flags().await;
        let sets = config_set_calls(&mut self.conn).await;
        if let (Some(before), Some(now)) = (self.config_sets, sets) {
            if before != now {
                self.reset("redis config changed");
            }
        }
        self.config_sets = sets;
        seen
    }

    /// Whether Redis announces deletions; in `configure` mode, sets the missing flags.
    async fn check_flags(&mut self) -> Seen {
        let conn = &mut self.conn;
        let (flags, policy) = match (
            read_config(conn, "notify-keyspace-events").await,
            read_config(conn, "maxmemory-policy").await,
        ) {
            (Ok(f), Ok(p)) => (f, p),
            (Err(e), _) | (_, Err(e)) if e.is_io_error() || e.is_connection_dropped() => {
                return Seen::Unreachable
            }
            _ => return Seen::CannotReadConfig,
        };
        let evicting = policy != "noeviction";
        if flags_announce_deletions(&flags, evicting) {
            return Seen::Fine;
        }
        if self.mode == KeyspaceNotifications::Configure {
            let mut wanted = flags.clone();
            for f in ['E', 'g', 'e'] {
                if !wanted.contains(f) {
                    wanted.push(f);
                }
            }
            let set: Result<(), _> = redis::cmd("CONFIG")
                .arg("SET")
                .arg("notify-keyspace-events")
                .arg(&wanted)
                .query_async(conn)
                .await;
            match set {
                Ok(()) => {
                    tracing::info!(flags = %wanted, "Redis keyspace notifications turned on");
                    return Seen::Fine;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Redis refused CONFIG SET notify-keyspace-events")
                }
            }
        }
        Seen::NotificationsOff
    }
}

async fn read_config(
    conn: &mut ConnectionManager,
    name: &str,
) -> Result<String, redis::RedisError> {
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(conn)
        .await?;
    Ok(v.get(1).cloned().unwrap_or_default())
}

/// `CONFIG SET` calls counted by Redis (`INFO commandstats`, Redis 7 and later), if it
/// tells.
async fn config_set_calls(conn: &mut ConnectionManager) -> Option<u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .ok()?;
    Some(parse_config_sets(&info))
}

/// The `calls` of `cmdstat_config|set` in an `INFO commandstats` text (0 when absent).
fn parse_config_sets(info: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_config|set:"))
        .and_then(|rest| rest.split(',').find_map(|kv| kv.strip_prefix("calls=")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::flags_announce_deletions;

    #[test]
    fn flags() {
        for ok in ["Eg e", "KEA", "EA", "gEe", "Egex"] {
            assert!(flags_announce_deletions(ok, true), "{ok}");
        }
        for bad in ["", "Eg", "KA", "Ke", "gx"] {
            assert!(!flags_announce_deletions(bad, true), "{bad}");
        }
        // Without evictions, deletions and renames are enough.
        assert!(flags_announce_deletions("Eg", false));
        assert!(!flags_announce_deletions("Ee", false));
    }

    #[test]
    fn config_set_calls() {
        let info = "# Commandstats\r\ncmdstat_get:calls=9,usec=1\r\n\
                    cmdstat_config|set:calls=3,usec=20,usec_per_call=6.67\r\n";
        assert_eq!(super::parse_config_sets(info), 3);
        assert_eq!(super::parse_config_sets("# Commandstats\r\n"), 0);
    }
}
