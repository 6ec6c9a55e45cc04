//! Better Auth's rate limiter: per client and route, 100 requests per 10 s by default and 3
//! per 10 s on sign-in, sign-up and change-password, with custom rules per path. Like
//! Better Auth's memory backend, each allowed request moves the window
//! (`lastRequest = now`), and a blocked one gets `429` with `X-Retry-After`.
//!
//! Bounded by construction:
//! - the client is the peer's address (IPv6 masked to `ipv6_subnet`), or the address a
//!   *trusted* proxy forwarded ([`crate::http::client`]): a client cannot pose as many;
//! - the bucket is the route, not the raw path: every unknown path shares one bucket, so
//!   inventing paths neither dodges the limit nor grows the table;
//! - the table holds at most [`MAX_ENTRIES`] entries; expired windows are swept from each
//!   shard at most once a second as it is used, and a full shard drops its stalest entry.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::clock::Clock;
use crate::config::{OnStoreFailure, Settings};
use crate::error::ApiError;
use crate::http::AppState;
use crate::store::rate::RateCounter;

const SHARDS: usize = 16;
/// Entries kept in memory at most (Better Auth caps its table at 100 000 too).
pub const MAX_ENTRIES: usize = 100_000;
const SHARD_CAP: usize = MAX_ENTRIES / SHARDS;
/// Expired windows are swept from a shard at most this often.
const SWEEP_EVERY_MS: i64 = 1_000;
/// The bucket of every path that is no route.
const UNMATCHED: &str = "unmatched";
/// Routes that check credentials: 3 per 10 s, and refused while the shared counter is
/// unreachable (`closed_for_credentials`).
use crate::config::{path_glob as glob, CREDENTIAL_ROUTES};

/// A limit: `max` requests per window.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    window_ms: i64,
    max: u64,
    credentials: bool,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    count: u64,
    last_ms: i64,
    window_ms: i64,
}

/// One shard of the in-memory table, keyed by (client address, route).
#[derive(Default)]
struct Shard {
    map: HashMap<(IpAddr, Arc<str>), Entry>,
    last_sweep_ms: i64,
}

/// The limiter's rules and its counters.
pub struct RateLimiter {
    default: Rule,
    custom: Vec<(String, Option<Rule>)>,
    base_path: String,
    clock: Arc<dyn Clock>,
    shards: Vec<Mutex<Shard>>,
    hasher: std::collections::hash_map::RandomState,
    /// Route labels (relative to the base path), shared by the table's keys.
    routes: HashMap<String, Arc<str>>,
    unmatched: Arc<str>,
    /// Shared counters for every replica (Better Auth's `secondary-storage` backend).
    shared: Option<Arc<dyn RateCounter>>,
    on_failure: OnStoreFailure,
}

fn rule(window: u64, max: u64) -> Rule {
    Rule {
        window_ms: i64::try_from(window)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000),
        max,
        credentials: false,
    }
}

impl RateLimiter {
    /// Builds the limiter from settings; `routes` are the served paths (full).
    pub fn new(s: &Settings, clock: Arc<dyn Clock>, routes: &[String]) -> Self {
        let custom = s
            .rate_limit
            .custom_rules
            .iter()
            .map(|(p, r)| (p.clone(), r.enabled.then(|| rule(r.window, r.max))))
            .collect();
        let routes = routes
            .iter()
            .filter_map(|p| p.strip_prefix(s.base_path.as_str()))
            .filter(|rel| rel.starts_with('/'))
            .map(|rel| (rel.to_owned(), Arc::from(rel)))
            .collect();
        Self {
            default: rule(s.rate_limit.window, s.rate_limit.max),
            custom,
            base_path: s.base_path.clone(),
            clock,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: Default::default(),
            routes,
            unmatched: Arc::from(UNMATCHED),
            shared: None,
            on_failure: s.rate_limit.on_store_failure,
        }
    }

    /// Counts in a store shared by every replica.
    pub fn with_shared(mut self, counter: Arc<dyn RateCounter>) -> Self {
        self.shared = Some(counter);
        self
    }

    /// The rule for a path relative to the base path; `None` when exempt.
    fn rule_for(&self, rel: &str) -> Option<Rule> {
        let mut r = Some(self.default);
        let credentials = CREDENTIAL_ROUTES.iter().any(|p| rel.starts_with(p));
        if credentials {
            r = Some(rule(10, 3));
        }
        for (pattern, custom) in &self.custom {
            if glob(pattern, rel) {
                r = *custom;
            }
        }
        r.map(|r| Rule { credentials, ..r })
    }

    /// Entries in the in-memory table (for tests and metrics).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| match s.lock() {
                Ok(g) => g.map.len(),
                Err(p) => p.into_inner().map.len(),
            })
            .sum()
    }

    /// Whether the in-memory table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts a request in memory; `Err(seconds)` when it must wait.
    fn hit(&self, key: (IpAddr, Arc<str>), r: Rule) -> Result<(), i64> {
        let now = self.clock.now_ms();
        let idx = usize::try_from(self.hasher.hash_one(&key) % SHARDS as u64).unwrap_or(0);
        let Some(shard) = self.shards.get(idx) else {
            return Ok(());
        };
        let mut shard = match shard.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if now - shard.last_sweep_ms >= SWEEP_EVERY_MS {
            shard.map.retain(|_, e| now - e.last_ms < e.window_ms);
            shard.last_sweep_ms = now;
        }
        match shard.map.get_mut(&key) {
            Some(e) if now - e.last_ms < e.window_ms => {
                if e.count >= r.max {
                    let wait_ms = e.last_ms + e.window_ms - now;
                    return Err((wait_ms + 999) / 1000);
                }
                e.count += 1;
                e.last_ms = now;
                Ok(())
            }
            _ => {
                if shard.map.len() >= SHARD_CAP && !shard.map.contains_key(&key) {
                    // Full of live windows: the stalest makes room.
                    let stalest = shard
                        .map
                        .iter()
                        .min_by_key(|(_, e)| e.last_ms)
                        .map(|(k, _)| k.clone());
                    if let Some(k) = stalest {
                        shard.map.remove(&k);
                    }
                }
                shard.map.insert(
                    key,
                    Entry {
                        count: 1,
                        last_ms: now,
                        window_ms: r.window_ms,
                    },
                );
                Ok(())
            }
        }
    }
}

/// What a request is counted under: its client, its route, and the rule that applies.
pub struct Counted {
    client: IpAddr,
    route: Arc<str>,
    rule: Rule,
}

/// The bucket and rule of a request under the base path; `None` when it is not limited.
/// `route` is the served path the request matched, if any.
pub fn key_for(state: &AppState, req: &Request, route: Option<&str>) -> Option<Counted> {
    let limiter = state.rate_limiter.as_ref()?;
    let rel = req.uri().path().strip_prefix(limiter.base_path.as_str())?;
    let rule = limiter.rule_for(rel)?;
    let peer = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let client = state
        .ip
        .client_addr(req.headers(), peer)
        .map_or(IpAddr::from([0, 0, 0, 0]), |ip| state.ip.masked(ip));
    let route = route
        .and_then(|r| r.strip_prefix(limiter.base_path.as_str()))
        .and_then(|rel| limiter.routes.get(rel))
        .cloned()
        .unwrap_or_else(|| limiter.unmatched.clone());
    Some(Counted {
        client,
        route,
        rule,
    })
}

/// Counts a request (before routing, as Better Auth); the answer when it must not go on:
/// 429 over its limit, 503 when the shared counter is unreachable and the policy refuses.
pub async fn verdict(state: &AppState, c: Counted) -> Option<Response> {
    let limiter = state.rate_limiter.as_ref()?;
    let verdict = match &limiter.shared {
        Some(counter) => {
            let window = u64::try_from((c.rule.window_ms / 1000).max(1)).unwrap_or(1);
            let key = format!("{}|{}", c.client, c.route);
            match counter.hit(&key, window).await {
                Ok(n) if n > c.rule.max => Err(i64::try_from(window).unwrap_or(i64::MAX)),
                Ok(_) => Ok(()),
                Err(e) => {
                    crate::metrics::rate_limit_store_failure();
                    let refuse = match limiter.on_failure {
                        OnStoreFailure::Open => false,
                        OnStoreFailure::Closed => true,
                        OnStoreFailure::ClosedForCredentials => c.rule.credentials,
                    };
                    tracing::warn!(error = %e, refused = refuse, "rate limit counter unavailable");
                    if refuse {
                        return Some(
                            ApiError::new(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "RATE_LIMIT_UNAVAILABLE",
                                "Too many requests cannot be told apart right now. Try again later.",
                            )
                            .into_response(),
                        );
                    }
                    Ok(())
                }
            }
        }
        None => limiter.hit((c.client, c.route), c.rule),
    };
    let retry = verdict.err()?;
    let mut res = ApiError::message_only(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests. Please try again later.",
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
        res.headers_mut().insert("x-retry-after", v);
    }
    Some(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn limiter(clock: &ManualClock) -> RateLimiter {
        let s = Settings::default();
        RateLimiter::new(
            &s,
            Arc::new(clock.clone()),
            &["/api/auth/sign-in/email".to_string()],
        )
    }

    #[test]
    fn expired_windows_are_swept_as_shards_are_used() {
        let clock = ManualClock::starting_now();
        let l = limiter(&clock);
        let r = l.rule_for("/get-session").unwrap();
        for i in 0..5_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            assert!(l.hit((ip, l.unmatched.clone()), r).is_ok());
        }
        assert_eq!(l.len(), 5_000);
        clock.advance_secs(11);
        // One request per shard finds its shard's windows over and sweeps them.
        for i in 0..200u32 {
            let ip = IpAddr::from((1_000_000 + i).to_be_bytes());
            let _ = l.hit((ip, l.unmatched.clone()), r);
        }
        assert!(l.len() <= 200, "{} entries left", l.len());
    }

    #[test]
    fn the_table_never_exceeds_its_cap() {
        let clock = ManualClock::starting_now();
        let l = limiter(&clock);
        let r = l.rule_for("/get-session").unwrap();
        for i in 0..(MAX_ENTRIES as u32 + 20_000) {
            let ip = IpAddr::from(i.to_be_bytes());
            let _ = l.hit((ip, l.unmatched.clone()), r);
        }
        assert!(l.len() <= MAX_ENTRIES, "{}", l.len());
    }

    #[test]
    fn credential_routes_are_strict() {
        let clock = ManualClock::starting_now();
        let l = limiter(&clock);
        let r = l.rule_for("/sign-in/email").unwrap();
        assert!(r.credentials && r.max == 3);
        assert!(!l.rule_for("/get-session").unwrap().credentials);
    }
}
