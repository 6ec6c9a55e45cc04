//! The webhook delivery loop, run on every replica when endpoints are configured.
//!
//! It claims due events from the outbox with a lease (so no two replicas hold one event),
//! POSTs each to every endpoint that wants it and does not have it yet, at most
//! `webhooks.concurrency` at once, then settles it: done, retried later with backoff
//! (keeping the endpoints done), or given up after `webhooks.max_attempts`. It wakes on
//! PostgreSQL's `NOTIFY sessiond_event` and every `webhooks.poll_interval`. It shares
//! nothing with request handling but the database pool, and uses that only for short
//! statements: a dead or slow receiver delays only its own events.

mod deliver;
pub mod sign;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rand::Rng;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

pub use self::deliver::{Outcome, Target};
use crate::clock::Clock;
use crate::config::WebhooksSettings;
use crate::store::outbox::{Claimed, Outbox, Settled};

/// Backoff after each failed round (seconds), the last repeating; each with up to 20% jitter.
const BACKOFF: [i64; 8] = [5, 30, 120, 600, 3600, 7200, 14_400, 21_600];
/// Room beyond a round's deadline for settling before the lease lapses.
const LEASE_MARGIN: Duration = Duration::from_secs(25);
/// How often the queue is measured and trimmed to `max_pending`.
const UPKEEP: Duration = Duration::from_secs(5);
/// Pause before reconnecting a lost listener.
const RETRY: Duration = Duration::from_millis(500);

/// The delay before round `attempts + 1`, jittered.
pub fn backoff(attempts: u32, jitter: f64) -> chrono::Duration {
    let i = usize::try_from(attempts.saturating_sub(1)).unwrap_or(usize::MAX);
    let base = BACKOFF.get(i).or(BACKOFF.last()).copied().unwrap_or(5);
    chrono::Duration::milliseconds((base as f64 * 1000.0 * jitter.clamp(0.5, 1.5)) as i64)
}

/// What one delivery loop needs.
pub struct Webhooks {
    outbox: Arc<dyn Outbox>,
    targets: Vec<Target>,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    max_attempts: u32,
    max_pending: u64,
    concurrency: usize,
    poll: Duration,
    /// The longest one round may take; deliveries still running then count as failed.
    round: Duration,
    /// Failures were reported and no round has fully succeeded since (one warning per
    /// outage, not one per round).
    failing: AtomicBool,
}

impl Webhooks {
    /// The loop for `settings` over `outbox`; refuses an endpoint it cannot sign for.
    pub fn new(
        settings: &WebhooksSettings,
        outbox: Arc<dyn Outbox>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let mut targets = Vec::with_capacity(settings.endpoints.len());
        for (i, e) in settings.endpoints.iter().enumerate() {
            let id = settings.endpoint_id(i);
            let key = e
                .key()
                .map_err(|m| format!("webhooks.endpoints[{i}].{m}"))?;
            targets.push(Target::new(id, &e.url, key, e.events.clone())?);
        }
        let timeout = Duration::from_secs(settings.timeout.max(1));
        let concurrency = settings.concurrency.max(1);
        // A batch is `concurrency` events, so each endpoint's deliveries take at most one
        // timeout in turn.
        let rounds = u32::try_from(targets.len().max(1)).unwrap_or(u32::MAX);
        Ok(Self {
            client: deliver::client(timeout, concurrency)?,
            outbox,
            targets,
            clock,
            max_attempts: settings.max_attempts.max(1),
            max_pending: settings.max_pending,
            concurrency,
            poll: Duration::from_secs(settings.poll_interval.max(1)),
            round: timeout.saturating_mul(rounds) + Duration::from_secs(2),
            failing: AtomicBool::new(false),
        })
    }

    /// The lease a claim takes: longer than a round and its settling.
    pub fn lease(&self) -> Duration {
        self.round + LEASE_MARGIN
    }

    /// Runs until `stop` turns true, waking on `wake` (NOTIFY) and every poll interval.
    /// After the stop, no new claim is made; a round in flight finishes first.
    pub async fn run(self, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
        let mut next_upkeep = Instant::now();
        let mut failing = false;
        while !*stop.borrow() {
            if Instant::now() >= next_upkeep {
                self.upkeep().await;
                next_upkeep = Instant::now() + UPKEEP;
            }
            let more = match self.step().await {
                Ok(full) => {
                    failing = false;
                    full
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "webhooks: cannot claim events; retrying");
                    }
                    failing = true;
                    false
                }
            };
            if more {
                continue;
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(self.poll) => {}
                // The application is gone without a word: stop too.
                r = stop.changed() => if r.is_err() { break },
            }
        }
        tracing::info!("webhooks: delivery stopped");
    }

    /// Claims one batch and delivers it; whether the batch was full (more may be due).
    pub async fn step(&self) -> Result<bool, crate::store::StoreError> {
        let batch = self.concurrency;
        let claimed = self
            .outbox
            .claim(batch, self.lease(), self.clock.now())
            .await?;
        let full = claimed.len() >= batch;
        if !claimed.is_empty() {
            self.deliver(claimed).await;
        }
        Ok(full)
    }

    /// Gives up the oldest events beyond `max_pending` and reports the queue's length.
    async fn upkeep(&self) {
        match self.outbox.drop_beyond(self.max_pending).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(
                    dropped = n,
                    "webhooks: more than webhooks.max_pending events waiting; the oldest were given up"
                );
                crate::metrics::webhook_dropped("overflow", n);
            }
            Err(e) => tracing::debug!(error = %e, "webhooks: cannot trim the queue"),
        }
        if let Ok(n) = self.outbox.pending().await {
            crate::metrics::webhook_pending(n);
        }
    }

    /// One round: every (event, endpoint) still owed, at most `concurrency` at once, until
    /// the round's deadline; then each event is settled.
    async fn deliver(&self, events: Vec<Claimed>) {
        let now = self.clock.now();
        let timestamp = now.timestamp();
        let mut jobs = Vec::new();
        for (e, ev) in events.iter().enumerate() {
            let body = sign::body(&ev.kind, ev.occurred_at, &ev.data);
            for (t, target) in self.targets.iter().enumerate() {
                if target.wants(&ev.kind) && !ev.delivered.contains(&target.id) {
                    jobs.push((e, t, body.clone()));
                }
            }
        }
        let mut done = vec![Vec::<usize>::new(); events.len()];
        let mut owed = vec![0usize; events.len()];
        for (e, _, _) in &jobs {
            if let Some(n) = owed.get_mut(*e) {
                *n += 1;
            }
        }
        let mut running = futures::stream::iter(jobs.into_iter().filter_map(|(e, t, body)| {
            let (ev, target) = (events.get(e)?, self.targets.get(t)?);
            let client = &self.client;
            Some(async move {
                let outcome = deliver::send(client, target, &ev.event_id, timestamp, body).await;
                (e, t, outcome)
            })
        }))
        .buffer_unordered(self.concurrency);
        let deadline = Instant::now() + self.round;
        let mut failed = 0usize;
        while let Ok(Some((e, t, outcome))) =
            tokio::time::timeout_at(deadline, running.next()).await
        {
            if outcome == Outcome::Success {
                if let Some(d) = done.get_mut(e) {
                    d.push(t);
                }
            } else {
                failed += 1;
                tracing::debug!(endpoint = %self.targets.get(t).map_or("", |t| t.id.as_str()), outcome = outcome.as_str(), "webhook delivery failed");
            }
        }
        drop(running);
        if failed > 0 && !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                failed,
                "webhooks: deliveries are failing; they are retried with backoff (webhook_deliveries_total has each endpoint's outcomes)"
            );
        } else if failed == 0 && self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!("webhooks: deliveries succeed again");
        }
        for (i, ev) in events.iter().enumerate() {
            let ok = done.get(i).map_or(&[][..], Vec::as_slice);
            let outcome = self.settlement(ev, ok, owed.get(i).copied().unwrap_or(0));
            if matches!(outcome, Settled::GiveUp) {
                tracing::warn!(event = %ev.event_id, kind = %ev.kind, attempts = ev.attempts, "webhooks: event given up after webhooks.max_attempts");
                crate::metrics::webhook_dropped("give_up", 1);
            }
            // A failed settle leaves the lease to lapse: the event is delivered again.
            if let Err(e) = self.outbox.settle(ev.id, &outcome).await {
                tracing::warn!(error = %e, event = %ev.event_id, "webhooks: cannot settle an event; it will be delivered again");
            }
        }
    }

    /// What becomes of `ev` once the endpoints `ok` (indexes) have it, out of `owed`.
    fn settlement(&self, ev: &Claimed, ok: &[usize], owed: usize) -> Settled {
        if ok.len() >= owed {
            return Settled::Done;
        }
        if ev.attempts >= self.max_attempts {
            return Settled::GiveUp;
        }
        let mut delivered = ev.delivered.clone();
        delivered.extend(
            ok.iter()
                .filter_map(|t| self.targets.get(*t))
                .map(|t| t.id.clone()),
        );
        let jitter = rand::thread_rng().gen_range(0.8..1.2);
        Settled::Retry {
            at: self.clock.now() + backoff(ev.attempts, jitter),
            delivered,
        }
    }
}

/// Starts the delivery loop when endpoints are configured (and, on PostgreSQL, its
/// listener on a connection of its own); the sender that stops it (`true`, or dropped).
pub fn start(
    settings: &WebhooksSettings,
    outbox: Option<Arc<dyn Outbox>>,
    pg_pool: Option<sqlx::PgPool>,
    clock: Arc<dyn Clock>,
) -> Result<watch::Sender<bool>, String> {
    let (stop, stopped) = watch::channel(false);
    if !settings.enabled() {
        return Ok(stop);
    }
    let outbox = outbox.ok_or(
        "webhooks.endpoints need a database: a stateless service (database.url = \"memory\") keeps no event outbox",
    )?;
    let hooks = Webhooks::new(settings, outbox, clock)?;
    let wake = Arc::new(Notify::new());
    if let Some(pool) = pg_pool {
        tokio::spawn(listen(pool, wake.clone(), stopped.clone()));
    }
    tokio::spawn(hooks.run(wake, stopped));
    tracing::info!(
        endpoints = settings.endpoints.len(),
        "webhook delivery started"
    );
    Ok(stop)
}

/// Wakes the loop on each new event. Its connection is its own (not one of the pool's), so
/// the webhooks never take one from requests.
async fn listen(pool: sqlx::PgPool, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    let opts = pool.connect_options().as_ref().clone();
    let own = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(opts);
    while !*stop.borrow() {
        let mut pg = match sqlx::postgres::PgListener::connect_with(&own).await {
            Ok(pg) => pg,
            Err(_) => {
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if pg
            .listen(crate::store::sql::PG_EVENT_CHANNEL)
            .await
            .is_err()
        {
            tokio::time::sleep(RETRY).await;
            continue;
        }
        // Events may have come while it was not listening.
        wake.notify_one();
        loop {
            tokio::select! {
                n = pg.try_recv() => match n {
                    Ok(Some(_)) => wake.notify_one(),
                    _ => break,
                },
                _ = stop.changed() => return,
            }
        }
    }
}
