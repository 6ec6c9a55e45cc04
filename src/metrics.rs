//! Prometheus metrics: requests by route and status with latency histograms, session
//! lifecycle counters, cookie-cache hits and misses, store errors and the password-hashing
//! queue. One recorder per process; `/metrics` renders it.

use std::sync::OnceLock;
use std::time::Instant;

use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often histogram samples are folded into their buckets. The recorder keeps every
/// sample until then: at tens of thousands of requests a second, waiting for a scrape
/// (or never being scraped) would grow memory without bound.
const UPKEEP: std::time::Duration = std::time::Duration::from_secs(1);

/// Installs the process-wide recorder (once) and returns its handle.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    &buckets,
                )
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full("webhook_delivery_duration_seconds".into()),
                    &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
                )
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("sessiond-metrics".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP);
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the metrics upkeep thread");
            }
            Some(handle)
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "http_requests_total",
        "HTTP requests by method, route and status"
    );
    describe_histogram!("http_request_duration_seconds", "HTTP request latency");
    describe_counter!(
        "sessions_created_total",
        "Sessions created (sign-up, sign-in, password change)"
    );
    describe_counter!(
        "sessions_refreshed_total",
        "Sliding refreshes written to the store"
    );
    describe_counter!("sessions_revoked_total", "Sessions revoked or signed out");
    describe_counter!(
        "sign_in_failed_events_dropped_total",
        "Failed sign-ins not recorded as events: beyond the per-second cap"
    );
    describe_counter!(
        "db_reads_total",
        "Session reads with a read replica configured, by where they went (replica, primary)"
    );
    describe_gauge!(
        "db_replica_staleness_seconds",
        "How far behind the primary the read replica was at its last probe"
    );
    describe_counter!(
        "cookie_cache_hits_total",
        "get-session answered from the cookie cache"
    );
    describe_counter!(
        "cookie_cache_misses_total",
        "Cookie cache present but refused"
    );
    describe_counter!("store_errors_total", "Storage errors by kind");
    describe_gauge!("password_hash_queue", "Password hashes waiting or running");
    describe_counter!(
        "password_hashes_total",
        "Password hashes computed (sign-up, sign-in, unknown-email sign-in, password change)"
    );
    describe_counter!(
        "password_hashes_abandoned_total",
        "Queued password hashes skipped because their request was gone"
    );
    describe_gauge!("http_open_connections", "Open client connections");
    describe_counter!(
        "http_connections_evicted_total",
        "Idle connections closed to admit new ones at the connection cap"
    );
    describe_counter!(
        "http_connections_refused_total",
        "Connections closed at once: the cap was reached and every connection was busy"
    );
    describe_counter!(
        "http_header_timeouts_total",
        "Connections closed because their request head took too long"
    );
    describe_counter!(
        "http_write_timeouts_total",
        "Connections closed because the client stopped taking its answer"
    );
    describe_gauge!(
        "revocation_guaranteed",
        "1 when every revocation reaches this replica at once; 0 while cookie-cache hits are revalidated"
    );
    describe_counter!(
        "revocation_resets_total",
        "Every cached session was revalidated: the store was flushed, truncated or reconnected"
    );
    describe_counter!(
        "webhook_deliveries_total",
        "Webhook deliveries by endpoint id and outcome (success, status, redirect, timeout, connect, failed)"
    );
    describe_histogram!(
        "webhook_delivery_duration_seconds",
        "Webhook delivery time by endpoint id"
    );
    describe_counter!(
        "webhook_events_dropped_total",
        "Events given up undelivered: after webhooks.max_attempts (give_up) or beyond webhooks.max_pending (overflow)"
    );
    describe_gauge!(
        "webhook_pending",
        "Events waiting for delivery (all replicas)"
    );
    describe_counter!(
        "rate_limit_store_failures_total",
        "Rate-limit checks that could not reach the shared counter"
    );
}

fn status_label(code: u16) -> &'static str {
    match code {
        200 => "200",
        204 => "204",
        302 => "302",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}

/// The `method` label: the standard methods by name, anything else `other`, so that
/// invented methods cannot create series.
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method as M;
    match *m {
        M::GET => "GET",
        M::HEAD => "HEAD",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::PATCH => "PATCH",
        M::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The counters and histograms of one route label, by (method label, status) as they
/// appear: the router holds one per served path, and a request borrows its path's for its
/// whole life, so that recording costs neither a lookup by label nor a reference count.
/// Routes, method labels and status labels are fixed sets: at most 8 × 15 series a route.
pub struct RouteMetrics {
    label: String,
    handles: std::sync::RwLock<Vec<(&'static str, u16, Handles)>>,
}

type Handles = (metrics::Counter, metrics::Histogram);

impl RouteMetrics {
    /// The metrics of requests labelled `label` (a served path).
    pub fn new(label: &str) -> Self {
        Self {
            label: label.to_owned(),
            handles: Default::default(),
        }
    }

    /// Counts one request and records its duration.
    fn record(&self, method: &axum::http::Method, code: u16, seconds: f64) {
        let count = |(counter, histogram): &Handles| {
            counter.increment(1);
            histogram.record(seconds);
        };
        let method = method_label(method);
        let known = |v: &Vec<(&'static str, u16, Handles)>| {
            v.iter()
                .find(|(me, c, _)| *c == code && *me == method)
                .map(|(_, _, h)| count(h))
                .is_some()
        };
        let done = match self.handles.read() {
            Ok(v) => known(&v),
            Err(p) => known(&p.into_inner()),
        };
        if done {
            return;
        }
        let labels = [
            ("method", method.to_string()),
            ("route", self.label.clone()),
            ("status", status_label(code).to_string()),
        ];
        let h = (
            metrics::counter!("http_requests_total", &labels),
            metrics::histogram!("http_request_duration_seconds", &labels),
        );
        count(&h);
        let mut v = match self.handles.write() {
            Ok(v) => v,
            Err(p) => p.into_inner(),
        };
        // Statuses outside the label set share "other": keep one entry per label pair.
        if v.len() < 128 {
            v.push((method, code, h));
        }
    }
}

/// A request's route metrics and its start time.
pub struct Timing<'a> {
    start: Instant,
    route: &'a RouteMetrics,
}

/// Starts measuring a request to a served path (`None`: labelled `unmatched`).
pub fn begin(route: Option<&RouteMetrics>) -> Timing<'_> {
    static UNMATCHED: OnceLock<RouteMetrics> = OnceLock::new();
    Timing {
        start: Instant::now(),
        route: route.unwrap_or_else(|| UNMATCHED.get_or_init(|| RouteMetrics::new("unmatched"))),
    }
}

/// Counts and times a finished request.
pub fn finish(t: Timing<'_>, method: &axum::http::Method, res: &Response) {
    t.route.record(
        method,
        res.status().as_u16(),
        t.start.elapsed().as_secs_f64(),
    );
}

/// A label-less counter, registered once the recorder is installed and then reused (a
/// registration hashes the name on every call). Before that, each call asks the global
/// recorder again, so a counter used early is not stuck as a no-op.
fn counter(cell: &'static OnceLock<metrics::Counter>, name: &'static str) -> metrics::Counter {
    if let Some(c) = cell.get() {
        return c.clone();
    }
    let c = metrics::counter!(name);
    if matches!(HANDLE.get(), Some(Some(_))) {
        let _ = cell.set(c.clone());
    }
    c
}

/// A session was created.
pub fn session_created() {
    static C: OnceLock<metrics::Counter> = OnceLock::new();
    counter(&C, "sessions_created_total").increment(1);
}

/// A refresh was written.
pub fn session_refreshed() {
    static C: OnceLock<metrics::Counter> = OnceLock::new();
    counter(&C, "sessions_refreshed_total").increment(1);
}

/// Sessions were revoked.
pub fn sessions_revoked(n: u64) {
    static C: OnceLock<metrics::Counter> = OnceLock::new();
    counter(&C, "sessions_revoked_total").increment(n);
}

/// A failed sign-in was not recorded (beyond the cap).
pub fn sign_in_failed_event_dropped() {
    static C: OnceLock<metrics::Counter> = OnceLock::new();
    counter(&C, "sign_in_failed_events_dropped_total").increment(1);
}

/// A session read with a read replica configured, by `target` (`replica`, `primary`).
pub fn db_read(target: &'static str) {
    metrics::counter!("db_reads_total", "target" => target).increment(1);
}

/// A cookie cache answered.
pub fn cache_hit() {
    static C: OnceLock<metrics::Counter> = OnceLock::new();
    counter(&C, "cookie_cache_hits_total").increment(1);
    crate::telemetry::cache_verdict(true);
}

/// A cookie cache was present but refused.
pub fn cache_miss() {
    static C: OnceLock<metrics::Counter> = OnceLock::new();
    counter(&C, "cookie_cache_misses_total").increment(1);
    crate::telemetry::cache_verdict(false);
}

/// The store failed.
pub fn store_error(kind: &'static str) {
    metrics::counter!("store_errors_total", "kind" => kind).increment(1);
}

/// A queued password hash was skipped: its request was gone.
pub fn hash_abandoned() {
    static C: OnceLock<metrics::Counter> = OnceLock::new();
    counter(&C, "password_hashes_abandoned_total").increment(1);
}

/// A password hash is starting (a scrypt, whatever the outcome).
pub fn hash_run() {
    static C: OnceLock<metrics::Counter> = OnceLock::new();
    counter(&C, "password_hashes_total").increment(1);
}

/// Password hashes waiting or running.
pub fn hash_queue(n: usize) {
    metrics::gauge!("password_hash_queue").set(n as f64);
}

/// Client connections now open.
pub fn open_connections(n: usize) {
    static G: OnceLock<metrics::Gauge> = OnceLock::new();
    G.get_or_init(|| metrics::gauge!("http_open_connections"))
        .set(n as f64);
}

/// An idle connection was closed to admit a new one.
pub fn connection_evicted() {
    static C: OnceLock<metrics::Counter> = OnceLock::new();
    counter(&C, "http_connections_evicted_total").increment(1);
}

/// A new connection was closed at once: every open one was busy.
pub fn connection_refused() {
    static C: OnceLock<metrics::Counter> = OnceLock::new();
    counter(&C, "http_connections_refused_total").increment(1);
}

/// A request head took too long.
pub fn header_timeout() {
    static C: OnceLock<metrics::Counter> = OnceLock::new();
    counter(&C, "http_header_timeouts_total").increment(1);
}

pub fn write_timeout() {
    static C: OnceLock<metrics::Counter> = OnceLock::new();
    counter(&C, "http_write_timeouts_total").increment(1);
}

/// Whether revocations reach this replica at once (else caches are revalidated).
pub fn revocation_guaranteed(yes: bool) {
    metrics::gauge!("revocation_guaranteed").set(if yes { 1.0 } else { 0.0 });
}

/// Every cached session must be revalidated (`reason`: a fixed word).
pub fn revocation_reset(reason: &'static str) {
    metrics::counter!("revocation_resets_total", "reason" => reason).increment(1);
}

/// A rate-limit check could not reach its shared counter.
pub fn rate_limit_store_failure() {
    static C: OnceLock<metrics::Counter> = OnceLock::new();
    counter(&C, "rate_limit_store_failures_total").increment(1);
}

/// One webhook delivery to endpoint `endpoint` (a configured id: a bounded set) ended with
/// `outcome` (a fixed word) after `took`.
pub fn webhook_delivery(endpoint: &str, outcome: &'static str, took: std::time::Duration) {
    let e = endpoint.to_owned();
    metrics::counter!("webhook_deliveries_total", "endpoint" => e.clone(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!("webhook_delivery_duration_seconds", "endpoint" => e)
        .record(took.as_secs_f64());
}

/// Events given up undelivered (`reason`: `give_up` or `overflow`).
pub fn webhook_dropped(reason: &'static str, n: u64) {
    metrics::counter!("webhook_events_dropped_total", "reason" => reason).increment(n);
}

/// Events waiting for delivery.
pub fn webhook_pending(n: u64) {
    metrics::gauge!("webhook_pending").set(n as f64);
}
