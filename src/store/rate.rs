//! The rate limiter's shared counter: Better Auth's `secondary-storage` backend, one Redis
//! key per client and route, counted in a fixed window that starts with the first hit.

use async_trait::async_trait;
use redis::Script;

use super::redis_conn::{RedisConn, RedisTarget, Timeouts};
use super::StoreError;

/// A counter shared by every replica.
#[async_trait]
pub trait RateCounter: Send + Sync + 'static {
    /// Counts one hit on `key` in a window of `window_secs`; the hits so far in the window.
    async fn hit(&self, key: &str, window_secs: u64) -> Result<u64, StoreError>;
}

/// Increments, and starts the window on the first hit.
const INCR_SCRIPT: &str = r#"
local c = redis.call('INCR', KEYS[1])
if c == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return c
"#;

/// The Redis counter (keys `<prefix><key>`).
pub struct RedisRateCounter {
    conn: RedisConn,
    prefix: String,
    script: Script,
}

impl RedisRateCounter {
    /// Connects (auto-reconnecting, with short timeouts so that a Redis outage answers
    /// quickly instead of holding requests).
    pub async fn connect(target: &RedisTarget, prefix: String) -> Result<Self, StoreError> {
        let timeouts = Timeouts {
            connect: std::time::Duration::from_secs(1),
            response: std::time::Duration::from_secs(1),
            retries: 1,
        };
        let conn = RedisConn::connect(target, timeouts).await?;
        Ok(Self {
            conn,
            prefix,
            script: Script::new(INCR_SCRIPT),
        })
    }
}

#[async_trait]
impl RateCounter for RedisRateCounter {
    async fn hit(&self, key: &str, window_secs: u64) -> Result<u64, StoreError> {
        let mut c = self.conn.clone();
        Ok(self
            .script
            .key(format!("{}{key}", self.prefix))
            .arg(window_secs.max(1))
            .invoke_async(&mut c)
            .await?)
    }
}
