//! Better Auth's rate limiter: per client address and path, 100 requests per 10 s by
//! default and 3 per 10 s on sign-in, sign-up and change-password, with custom rules per
//! path. Like Better Auth's memory backend, each allowed request moves the window
//! (`lastRequest = now`), and a blocked one gets `429` with `X-Retry-After`.
//!
//! The client address comes from forwarding headers only when `trusted_proxies` is set;
//! otherwise it is the peer address, so a client cannot dodge its limit by inventing an
//! `X-Forwarded-For`.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::clock::Clock;
use crate::config::Settings;
use crate::error::ApiError;
use crate::http::AppState;

const SHARDS: usize = 16;
/// Entries kept per shard before expired ones are swept (Better Auth caps at 100 000).
const SHARD_CAP: usize = 100_000 / SHARDS;

/// A limit: `max` requests per window.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    window_ms: i64,
    max: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    count: u64,
    last_ms: i64,
    window_ms: i64,
}

/// The limiter's rules and its in-memory counters.
pub struct RateLimiter {
    default: Rule,
    custom: Vec<(String, Option<Rule>)>,
    base_path: String,
    use_forwarded: bool,
    clock: Arc<dyn Clock>,
    shards: Vec<Mutex<HashMap<String, Entry>>>,
    /// Shared counters for every replica (Better Auth's `secondary-storage` backend).
    redis: Option<(redis::aio::ConnectionManager, String)>,
}

/// Better Auth's secondary-storage counter: a fixed window that starts with the first hit.
const INCR_SCRIPT: &str = r#"
local c = redis.call('INCR', KEYS[1])
if c == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return c
"#;

fn rule(window: u64, max: u64) -> Rule {
    Rule {
        window_ms: i64::try_from(window)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000),
        max,
    }
}

fn glob(pattern: &str, path: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == path,
        Some((pre, post)) => {
            path.len() >= pre.len() + post.len() && path.starts_with(pre) && path.ends_with(post)
        }
    }
}

impl RateLimiter {
    /// Builds the limiter from settings.
    pub fn new(s: &Settings, clock: Arc<dyn Clock>) -> Self {
        let custom = s
            .rate_limit
            .custom_rules
            .iter()
            .map(|(p, r)| (p.clone(), r.enabled.then(|| rule(r.window, r.max))))
            .collect();
        Self {
            default: rule(s.rate_limit.window, s.rate_limit.max),
            custom,
            base_path: s.base_path.clone(),
            use_forwarded: !s.advanced.ip_address.trusted_proxies.is_empty(),
            clock,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            redis: None,
        }
    }

    /// Counts in Redis (keys `<prefix><ip>|<path>`) so that replicas share their limits.
    pub fn with_redis(mut self, conn: redis::aio::ConnectionManager, prefix: String) -> Self {
        self.redis = Some((conn, prefix));
        self
    }

    /// Counts a request in Redis: blocked beyond `max` in a fixed window, told to wait the
    /// whole window. A Redis failure lets the request through (and is logged): limits
    /// must not take the service down with them.
    async fn hit_shared(
        &self,
        conn: &redis::aio::ConnectionManager,
        prefix: &str,
        key: &str,
        r: Rule,
    ) -> Result<(), i64> {
        let window = (r.window_ms / 1000).max(1);
        let mut c = conn.clone();
        let count: Result<u64, _> = redis::Script::new(INCR_SCRIPT)
            .key(format!("{prefix}{key}"))
            .arg(window)
            .invoke_async(&mut c)
            .await;
        match count {
            Ok(n) if n > r.max => Err(window),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "rate limit counter unavailable; request allowed");
                Ok(())
            }
        }
    }

    /// The rule for a path relative to the base path; `None` when exempt.
    fn rule_for(&self, rel: &str) -> Option<Rule> {
        let mut r = Some(self.default);
        const STRICT: [&str; 4] = ["/sign-in", "/sign-up", "/change-password", "/change-email"];
        if STRICT.iter().any(|p| rel.starts_with(p)) {
            r = Some(rule(10, 3));
        }
        for (pattern, custom) in &self.custom {
            if glob(pattern, rel) {
                r = *custom;
            }
        }
        r
    }

    /// Counts a request; `Err(seconds)` when it must wait.
    fn hit(&self, key: String, r: Rule) -> Result<(), i64> {
        let now = self.clock.now_ms();
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let idx = usize::try_from(h.finish() % SHARDS as u64).unwrap_or(0);
        let Some(shard) = self.shards.get(idx) else {
            return Ok(());
        };
        let mut map = match shard.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if map.len() >= SHARD_CAP {
            map.retain(|_, e| now - e.last_ms < e.window_ms);
        }
        match map.get_mut(&key) {
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
                map.insert(
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

/// The counter key and rule of a request under the base path; `None` when it is not
/// limited.
pub fn key_for(state: &AppState, req: &Request) -> Option<(String, Rule)> {
    let limiter = state.rate_limiter.as_ref()?;
    let rel = req.uri().path().strip_prefix(limiter.base_path.as_str())?;
    let r = limiter.rule_for(rel)?;
    let forwarded = limiter
        .use_forwarded
        .then(|| state.ip.client_ip(req.headers()))
        .flatten();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let ip = forwarded.or(peer).unwrap_or_else(|| "no-trusted-ip".into());
    Some((format!("{ip}|{rel}"), r))
}

/// Counts a request (before routing, as Better Auth); the 429 answer when it is over its
/// limit.
pub async fn verdict(state: &AppState, key: String, r: Rule) -> Option<Response> {
    let limiter = state.rate_limiter.as_ref()?;
    let verdict = match &limiter.redis {
        Some((conn, prefix)) => limiter.hit_shared(conn, prefix, &key, r).await,
        None => limiter.hit(key, r),
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
