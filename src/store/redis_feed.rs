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

use super::feed::{parse_payload, token_hash, Announcement, Listener, Liveness, LOOK_INTERVAL};
use super::redis_conn::{RedisConn, RedisTarget};
use crate::config::KeyspaceNotifications;

/// The channel sessiond announces revocations on.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}sessiond:revoked")
}

/// Keyspace events that end a session key.
const ENDING_EVENTS: [&str; 5] = ["del", "evicted", "rename_from", "move_from", "expired"];
/// Marker keys live this long without a refresh (a crashed replica's goes away).
const MARKER_TTL_SECS: u64 = 3_600;

/// Whether `flags` (a `notify-keyspace-events` value) announce every way a key can go as
/// key events: `E`, with `g` (deleted, renamed, moved), `x` (expired: a TTL shortened by
/// another application) and, when `evicting` (a `maxmemory-policy` other than
/// `noeviction`), `e`; `A` holds `g`, `x` and `e`.
pub fn flags_announce_deletions(flags: &str, evicting: bool) -> bool {
    let has = |f: char| flags.contains(f) || flags.contains('A');
    flags.contains('E') && has('g') && has('x') && (!evicting || has('e'))
}

/// Spawns the subscriber and the watchdog.
pub fn spawn(
    target: RedisTarget,
    conn: RedisConn,
    prefix: String,
    mode: KeyspaceNotifications,
    listener: Arc<dyn Listener>,
) {
    let live = Arc::new(Liveness::new("redis"));
    // The watchdog first: /readyz names the first feed not guaranteed, and the
    // watchdog's reason (notifications off, unreachable) says more than the subscriber's.
    let watch = listener.register("redis-watchdog");
    let sub = listener.register("redis-subscriber");
    tokio::spawn(subscriber(
        target,
        conn.clone(),
        prefix.clone(),
        listener.clone(),
        sub,
        live.clone(),
    ));
    tokio::spawn(watchdog(conn, prefix, mode, listener, [watch, sub], live));
}

async fn subscriber(
    target: RedisTarget,
    conn: RedisConn,
    prefix: String,
    listener: Arc<dyn Listener>,
    source: usize,
    live: Arc<Liveness>,
) {
    let own = channel(&prefix);
    let db = target.db();
    let events: Vec<String> = ENDING_EVENTS
        .iter()
        .map(|e| format!("__keyevent@{db}__:{e}"))
        .collect();
    loop {
        // Where to listen: with Sentinel, the master of now (a new one after a failover).
        let connected = match conn.subscriber_client(&target).await {
            Ok((client, server)) => {
                tokio::time::timeout(SUBSCRIBE_TIMEOUT, client.get_async_pubsub())
                    .await
                    .unwrap_or_else(|_| Err(timed_out()))
                    .map(|p| (p, server))
            }
            Err(e) => Err(e),
        };
        let (mut pubsub, server) = match connected {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "revocation subscriber cannot connect");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let mut subscribed = pubsub.subscribe(&own).await;
        for ch in events.iter().chain(std::iter::once(&live.ping_channel)) {
            if subscribed.is_ok() {
                subscribed = pubsub.subscribe(ch).await;
            }
        }
        if let Err(e) = subscribed {
            tracing::warn!(error = %e, "revocation subscriber cannot SUBSCRIBE");
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        // Not guaranteed yet: the watchdog vouches for this subscription once it has
        // checked the server's keyspace events after it and the subscriber heard a ping
        // sent after it (a new master after a failover starts with them off).
        live.subscribed();
        {
            let mut stream = pubsub.on_message();
            let mut moved = tokio::time::interval(LOOK_INTERVAL);
            loop {
                let msg = tokio::select! {
                    m = stream.next() => m,
                    () = live.reconnect.notified() => None,
                    _ = moved.tick() => {
                        if conn.still_serves(&server).await {
                            continue;
                        }
                        tracing::warn!("redis master changed; resubscribing on the new one");
                        None
                    }
                };
                let Some(msg) = msg else { break };
                let Ok(payload) = msg.get_payload::<String>() else {
                    continue;
                };
                let channel = msg.get_channel_name();
                let a = if channel == live.ping_channel {
                    live.heard(&payload);
                    None
                } else if channel == own {
                    parse_payload(&payload)
                } else {
                    // A key event: a session key is `<prefix><32-character token>`. Deleted,
                    // renamed or moved away: the session ended. Expired or evicted: the key
                    // is gone but the session may live on elsewhere (the database, with
                    // store_session_in_database): its cached copies are checked.
                    let ended = !channel.ends_with(":expired") && !channel.ends_with(":evicted");
                    payload
                        .strip_prefix(prefix.as_str())
                        .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_alphanumeric()))
                        .map(|t| {
                            let h = token_hash(t);
                            if ended {
                                Announcement::Revoked(h)
                            } else {
                                Announcement::Changed(h)
                            }
                        })
                };
                if let Some(a) = a {
                    listener.announce(source, a);
                }
            }
        }
        tracing::warn!("revocation subscriber disconnected; cache hits are revalidated");
        live.unsubscribed(|| {
            listener.announce(source, Announcement::Unguaranteed("redis disconnected"))
        });
    }
}

/// How long connecting the subscriber may take: an address that swallows packets (a
/// master cut off) must not hold it for the system's TCP timeout.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(3);

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

/// What one look at Redis found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Fine,
    NotificationsOff,
    CannotReadConfig,
    SubscriberSilent,
    Unreachable,
}

/// The watchdog's state between looks.
struct Watchdog {
    conn: RedisConn,
    marker: String,
    /// The marker's value after the last look: it counts looks, so that a value lower
    /// than expected means Redis lost writes (a flush, a restart, a failover to a lagging
    /// replica).
    marker_value: Option<u64>,
    mode: KeyspaceNotifications,
    ticks: u64,
    live: Arc<Liveness>,
    /// `CONFIG SET` calls Redis has counted, when it tells (Redis 7's command stats).
    config_sets: Option<u64>,
    listener: Arc<dyn Listener>,
    source: usize,
}

/// The watchdog's feed and the subscriber's, which it vouches for.
type Sources = [usize; 2];

async fn watchdog(
    conn: RedisConn,
    prefix: String,
    mode: KeyspaceNotifications,
    listener: Arc<dyn Listener>,
    [source, subscriber]: Sources,
    live: Arc<Liveness>,
) {
    let mut w = Watchdog {
        conn,
        marker: format!(
            "{prefix}sessiond:alive:{}",
            crate::crypto::token::generate_id()
        ),
        marker_value: None,
        mode,
        ticks: 0,
        live,
        config_sets: None,
        listener,
        source,
    };
    let mut last: Option<Seen> = None;
    // The subscription vouched for (0: none yet).
    let mut vouched = 0;
    loop {
        // A stalled Redis answers nothing: that counts as unreachable.
        w.ticks += 1;
        let subscription = w.live.subscription();
        let seen = tokio::time::timeout(LOOK_INTERVAL * 2, w.look())
            .await
            .unwrap_or(Seen::Unreachable);
        if last != Some(seen) {
            w.announce(seen);
            last = Some(seen);
        }
        // A new subscription is vouched for by a look that began after it, found the
        // server fine, and whose ping the subscriber heard.
        if let Some(n) = subscription.filter(|n| *n != vouched) {
            if seen == Seen::Fine
                && w.live.hears(w.ticks, LOOK_INTERVAL / 2).await
                && w.live.vouch(n, || {
                    w.listener.announce(subscriber, Announcement::Guaranteed)
                })
            {
                vouched = n;
            }
        }
        // The next look at the interval, or at once when the subscriber subscribes anew.
        tokio::select! {
            () = tokio::time::sleep(LOOK_INTERVAL) => {}
            () = w.live.subscribed_now.notified() => {}
        }
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
            Seen::SubscriberSilent => {
                tracing::warn!(
                    "the revocation subscriber stopped hearing; cache hits are revalidated"
                );
                Announcement::Unguaranteed("redis subscriber silent")
            }
            Seen::Unreachable => Announcement::Unguaranteed("redis unreachable"),
        };
        self.listener.announce(self.source, a);
    }

    fn reset(&self, why: &'static str) {
        self.listener
            .announce(self.source, Announcement::Reset(why));
    }

    /// One look: the marker (a reset when Redis lost writes), a ping to the subscriber,
    /// then the notification flags, then whether anyone changed Redis's configuration
    /// since the last look (notifications may have been off in between: a reset).
    async fn look(&mut self) -> Seen {
        let counted: Result<u64, _> = redis::cmd("INCR")
            .arg(&self.marker)
            .query_async(&mut self.conn)
            .await;
        let Ok(now) = counted else {
            return Seen::Unreachable;
        };
        if self.marker_value.is_some_and(|before| now <= before) {
            tracing::warn!(
                "Redis lost writes (flushed, restarted or failed over): every cached session is revalidated"
            );
            self.reset("redis lost writes");
        }
        self.marker_value = Some(now);
        if now == 1 || self.ticks.is_multiple_of(600) {
            let _: Result<(), _> = redis::cmd("EXPIRE")
                .arg(&self.marker)
                .arg(MARKER_TTL_SECS)
                .query_async(&mut self.conn)
                .await;
        }
        let pinged: Result<u64, _> = redis::cmd("PUBLISH")
            .arg(&self.live.ping_channel)
            .arg(self.ticks)
            .query_async(&mut self.conn)
            .await;
        if pinged.is_err() {
            return Seen::Unreachable;
        }
        if !self.live.keeps_up(self.ticks) {
            return Seen::SubscriberSilent;
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
            for f in ['E', 'g', 'x', 'e'] {
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

async fn read_config(conn: &mut RedisConn, name: &str) -> Result<String, redis::RedisError> {
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(conn)
        .await?;
    Ok(v.get(1).cloned().unwrap_or_default())
}

/// `CONFIG SET` calls counted by Redis (`INFO commandstats`, Redis 7 and later), if it
/// tells.
async fn config_set_calls(conn: &mut RedisConn) -> Option<u64> {
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
        for ok in ["Eg ex", "KEA", "EA", "gEex", "Egex"] {
            assert!(flags_announce_deletions(ok, true), "{ok}");
        }
        for bad in ["", "Eg", "Egx", "KA", "Ke", "gx"] {
            assert!(!flags_announce_deletions(bad, true), "{bad}");
        }
        // Without evictions, deletions, renames, moves and expiries are enough.
        assert!(flags_announce_deletions("Egx", false));
        assert!(!flags_announce_deletions("Eg", false));
    }

    #[test]
    fn config_set_calls() {
        let info = "# Commandstats\r\ncmdstat_get:calls=9,usec=1\r\n\
                    cmdstat_config|set:calls=3,usec=20,usec_per_call=6.67\r\n";
        assert_eq!(super::parse_config_sets(info), 3);
        assert_eq!(super::parse_config_sets("# Commandstats\r\n"), 0);
    }
}
