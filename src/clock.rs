//! Time, injected. Every "now" in the service comes from a [`Clock`], so tests move time
//! forward instead of sleeping. Times are kept at millisecond precision, like JavaScript's
//! `Date`, so that values round-trip through Better Auth's JSON unchanged.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// The current time, truncated to milliseconds.
    fn now(&self) -> DateTime<Utc> {
        from_ms(self.now_ms())
    }
}

/// Converts epoch milliseconds into a UTC time (saturating to the epoch when out of range).
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    // The one place that reads the wall clock.
    #[allow(clippy::disallowed_methods)]
    fn now_ms(&self) -> i64 {
        Utc::now().timestamp_millis()
    }
}

/// A clock that only moves when told to; shared between a test and the server it drives.
#[derive(Debug, Clone)]
pub struct ManualClock {
    ms: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock frozen at `ms` milliseconds since the epoch.
    pub fn at_ms(ms: i64) -> Self {
        Self {
            ms: Arc::new(AtomicI64::new(ms)),
        }
    }

    /// A clock frozen at the current system time.
    pub fn starting_now() -> Self {
        Self::at_ms(SystemClock.now_ms())
    }

    /// Moves the clock forward by `secs` seconds.
    pub fn advance_secs(&self, secs: i64) {
        self.ms.fetch_add(secs * 1000, Ordering::SeqCst);
    }

    /// Sets the clock to `ms` milliseconds since the epoch.
    pub fn set_ms(&self, ms: i64) {
        self.ms.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.ms.load(Ordering::SeqCst)
    }
}
