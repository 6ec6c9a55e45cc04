//! How far behind the read replica is, and what this process wrote that it may not have
//! replayed yet (see [`Lag`]).
//!
//! Staleness is measured in time without writing anything: every probe reads the
//! primary's WAL flush position and remembers when it did; the replica's replay position
//! then says which of those moments it has caught up with. Everything committed before
//! that moment is on the replica. An idle primary's position does not move, so an idle
//! replica stays fresh (`pg_last_xact_replay_timestamp()` would grow stale instead).
//! Time here is monotonic, as timeouts are: it is not the service's (injected) clock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;

/// Keys written recently remembered at most; beyond, every read goes to the primary until
/// the replica has caught up (a flood of writes must not grow memory).
const MAX_RECENT: usize = 10_000;

/// Primary positions remembered at most (a replica further behind is stale anyway).
const MAX_SAMPLES: usize = 256;

/// What the replica looks like, for `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// Not measured yet.
    Starting,
    /// Within the lag bound: reads go to it.
    Ok,
    /// Behind by more than the bound: reads go to the primary.
    Lagging,
    /// Does not answer: reads go to the primary.
    Unavailable,
    /// Answers but is not a standby (promoted, or a wrong URL): never read.
    NotStandby,
}

impl ReplicaState {
    /// The word `/readyz` shows.
    pub fn word(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ok => "ok",
            Self::Lagging => "lagging",
            Self::Unavailable => "unavailable",
            Self::NotStandby => "not_a_standby",
        }
    }
}

struct Inner {
    state: ReplicaState,
    /// Everything committed on the primary before this moment is on the replica.
    caught_up_to: Option<Instant>,
    /// (when, primary flush position) of recent probes, oldest first.
    samples: VecDeque<(Instant, i64)>,
    /// The primary's cluster (`pg_control_system()`), which the replica must replicate.
    primary_id: Option<i64>,
    /// Keys (a session token, a user id) this process wrote, and when the write ended.
    recent: HashMap<String, Instant>,
    /// Every read goes to the primary until the replica caught up with this moment.
    all_since: Option<Instant>,
}

/// The replica's staleness and this process's recent writes.
pub(super) struct Lag {
    inner: Mutex<Inner>,
    max_lag: Duration,
}

impl Lag {
    pub(super) fn new(max_lag: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner {
                state: ReplicaState::Starting,
                caught_up_to: None,
                samples: VecDeque::new(),
                primary_id: None,
                recent: HashMap::new(),
                all_since: None,
            }),
            max_lag,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub(super) fn state(&self) -> ReplicaState {
        let g = self.lock();
        match (g.state, g.caught_up_to) {
            (ReplicaState::Ok, Some(c)) if c.elapsed() > self.max_lag => ReplicaState::Lagging,
            (s, _) => s,
        }
    }

    /// Whether a read of `keys` may go to the replica: it is within the bound, and has
    /// replayed every write of them this process made.
    pub(super) fn readable(&self, keys: &[&str]) -> bool {
        let g = self.lock();
        let Some(c) = g.caught_up_to else {
            return false;
        };
        if g.state != ReplicaState::Ok || c.elapsed() > self.max_lag {
            return false;
        }
        if g.all_since.is_some_and(|w| c <= w) {
            return false;
        }
        keys.iter().all(|k| g.recent.get(*k).is_none_or(|w| c > *w))
    }

    /// Records that `keys` were just written (on the primary; the write has ended).
    pub(super) fn wrote<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let now = Instant::now();
        let mut g = self.lock();
        for k in keys {
            if g.recent.len() >= MAX_RECENT {
                prune(&mut g, self.max_lag);
            }
            if g.recent.len() >= MAX_RECENT {
                g.recent.clear();
                g.all_since = Some(now);
            }
            g.recent.insert(k.to_owned(), now);
        }
    }

    /// A read on the replica failed: the primary serves until a probe succeeds again.
    pub(super) fn failed(&self) {
        let mut g = self.lock();
        g.state = ReplicaState::Unavailable;
        g.caught_up_to = None;
    }

    /// One probe: the primary's position now, then the replica's.
    pub(super) async fn probe(&self, primary: &PgPool, replica: &PgPool, timeout: Duration) {
        let at = Instant::now();
        let flushed = tokio::time::timeout(
            timeout,
            sqlx::query_as::<_, (i64, i64)>(
                "select (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::int8, \
                 (select system_identifier from pg_control_system())",
            )
            .fetch_one(primary),
        )
        .await;
        if let Ok(Ok((lsn, id))) = flushed {
            let mut g = self.lock();
            g.primary_id = Some(id);
            g.samples.push_back((at, lsn));
            if g.samples.len() > MAX_SAMPLES {
                g.samples.pop_front();
            }
        }
        // Without the primary's position the replica's cannot be placed in time: nothing
        // moves, and the replica ages out of the bound by itself.
        let replayed = tokio::time::timeout(
            timeout,
            sqlx::query_as::<_, (bool, Option<i64>, i64)>(
                "select pg_is_in_recovery(), (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8, \
                 (select system_identifier from pg_control_system())",
            )
            .fetch_one(replica),
        )
        .await;
        let mut g = self.lock();
        match replayed {
            // A standby of another cluster (a wrong URL): its positions mean nothing here,
            // and its sessions are not this database's.
            Ok(Ok((true, _, id))) if g.primary_id.is_some_and(|p| p != id) => {
                if g.state != ReplicaState::NotStandby {
                    tracing::warn!(
                        "database.read_url is a standby of another cluster than database.url: reading from the primary only"
                    );
                }
                g.state = ReplicaState::NotStandby;
                g.caught_up_to = None;
            }
            // Not placed in time yet (the primary not reached so far, or nothing replayed).
            Ok(Ok((true, None, _))) => g.caught_up_to = None,
            Ok(Ok((true, _, _))) if g.primary_id.is_none() => g.caught_up_to = None,
            Ok(Ok((true, Some(lsn), _))) => {
                // The newest moment whose position the replica has replayed.
                let reached = g.samples.iter().rev().find(|(_, l)| *l <= lsn).map(|s| s.0);
                if let Some(t) = reached {
                    g.caught_up_to = Some(g.caught_up_to.map_or(t, |c| c.max(t)));
                    while g.samples.front().is_some_and(|(s, _)| *s < t) {
                        g.samples.pop_front();
                    }
                }
                if g.state != ReplicaState::Ok {
                    tracing::info!("read replica available");
                }
                g.state = ReplicaState::Ok;
                prune(&mut g, self.max_lag);
            }
            Ok(Ok((false, _, _))) => {
                if g.state != ReplicaState::NotStandby {
                    tracing::warn!(
                        "database.read_url is not a standby: reading from the primary only"
                    );
                }
                g.state = ReplicaState::NotStandby;
                g.caught_up_to = None;
            }
            Ok(Err(e)) => {
                if g.state != ReplicaState::Unavailable {
                    tracing::warn!(error = %e, "read replica unavailable: reading from the primary");
                }
                g.state = ReplicaState::Unavailable;
                g.caught_up_to = None;
            }
            Err(_) => {
                if g.state != ReplicaState::Unavailable {
                    tracing::warn!("read replica does not answer: reading from the primary");
                }
                g.state = ReplicaState::Unavailable;
                g.caught_up_to = None;
            }
        }
        if let Some(c) = g.caught_up_to {
            metrics::gauge!("db_replica_staleness_seconds").set(c.elapsed().as_secs_f64());
        }
    }
}

/// Forgets writes the replica has replayed, and those older than the bound (a replica
/// that has not replayed them is beyond the bound, so not read anyway).
fn prune(g: &mut Inner, max_lag: Duration) {
    let caught = g.caught_up_to;
    g.recent
        .retain(|_, w| w.elapsed() <= max_lag && caught.is_none_or(|c| c <= *w));
    if g.all_since
        .is_some_and(|w| caught.is_some_and(|c| c > w) || w.elapsed() > max_lag)
    {
        g.all_since = None;
    }
}

/// Probes the replica for as long as the process runs.
pub(super) fn spawn_probe(
    lag: Arc<Lag>,
    primary: PgPool,
    replica: PgPool,
    max_lag: Duration,
    acquire: Duration,
) {
    let every = probe_interval(max_lag);
    // A probe that takes longer than the bound proves nothing in time.
    let timeout = max_lag.max(Duration::from_millis(200)).min(acquire);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            lag.probe(&primary, &replica, timeout).await;
        }
    });
}

/// How often the replica is probed: a quarter of the bound (at least every second, at most
/// every 20 ms), so that a replica within it is seen so.
fn probe_interval(max_lag: Duration) -> Duration {
    (max_lag / 4).clamp(Duration::from_millis(20), Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: Duration = Duration::from_secs(10);

    /// A replica probed just now, caught up with everything before `at`.
    fn caught_up(lag: &Lag, at: Instant) {
        let mut g = lag.lock();
        g.state = ReplicaState::Ok;
        g.caught_up_to = Some(at);
    }

    #[test]
    fn nothing_is_read_before_a_probe_or_beyond_the_bound() {
        let lag = Lag::new(BOUND);
        assert!(!lag.readable(&[]));
        assert_eq!(lag.state(), ReplicaState::Starting);
        let long_ago = Instant::now()
            .checked_sub(BOUND * 2)
            .unwrap_or_else(Instant::now);
        caught_up(&lag, long_ago);
        if long_ago.elapsed() > BOUND {
            assert!(!lag.readable(&[]));
            assert_eq!(lag.state(), ReplicaState::Lagging);
        }
        caught_up(&lag, Instant::now());
        assert!(lag.readable(&["t:a"]));
        lag.failed();
        assert!(!lag.readable(&[]));
        assert_eq!(lag.state(), ReplicaState::Unavailable);
    }

    #[test]
    fn a_write_is_read_from_the_primary_until_the_replica_has_it() {
        let lag = Lag::new(BOUND);
        caught_up(&lag, Instant::now());
        lag.wrote(["t:a", "u:1"]);
        assert!(!lag.readable(&["t:a"]));
        assert!(!lag.readable(&["t:b", "u:1"]));
        assert!(lag.readable(&["t:b", "u:2"]));
        // A probe taken after the write ended, replayed.
        std::thread::sleep(Duration::from_millis(1));
        caught_up(&lag, Instant::now());
        assert!(lag.readable(&["t:a", "u:1"]));
    }

    #[test]
    fn a_flood_of_writes_is_bounded_and_sends_every_read_to_the_primary() {
        let lag = Lag::new(BOUND);
        caught_up(&lag, Instant::now());
        let keys: Vec<String> = (0..=MAX_RECENT).map(|i| format!("t:{i}")).collect();
        lag.wrote(keys.iter().map(String::as_str));
        assert!(lag.lock().recent.len() <= MAX_RECENT);
        assert!(!lag.readable(&["t:never-written"]));
        std::thread::sleep(Duration::from_millis(1));
        caught_up(&lag, Instant::now());
        assert!(lag.readable(&["t:never-written"]));
        assert!(lag.readable(&["t:0", "t:1"]));
    }

    #[test]
    fn the_probe_runs_several_times_per_bound() {
        assert_eq!(
            probe_interval(Duration::from_millis(1000)),
            Duration::from_millis(250)
        );
        assert_eq!(
            probe_interval(Duration::from_millis(1)),
            Duration::from_millis(20)
        );
        assert_eq!(
            probe_interval(Duration::from_secs(600)),
            Duration::from_secs(1)
        );
    }
}
