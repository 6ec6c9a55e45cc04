//! When sessions expire, refresh and count as fresh (Better Auth's `session.*` rules),
//! as pure functions of the settings and the time.

use chrono::{DateTime, Duration, Utc};

use crate::config::SessionSettings;
use crate::session::model::Session;

/// Lifetime of a session created with `rememberMe: false`: a fixed day, whatever
/// `expires_in` says (Better Auth's rule).
pub const DONT_REMEMBER_SECS: i64 = 86_400;

/// The lifecycle rules, in seconds.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Lifetime, and the new lifetime after each refresh.
    pub expires_in: i64,
    /// Minimum age of the last refresh before the next.
    pub update_age: i64,
    /// Freshness window; 0 disables it.
    pub fresh_age: i64,
    /// Never refresh.
    pub disable_refresh: bool,
    /// GET never writes; POST refreshes.
    pub defer_refresh: bool,
}

impl Policy {
    /// The policy of the given settings.
    pub fn new(s: &SessionSettings) -> Self {
        let secs = |v: u64| i64::try_from(v).unwrap_or(i64::MAX / 1000);
        Self {
            expires_in: secs(s.expires_in),
            update_age: secs(s.update_age),
            fresh_age: secs(s.fresh_age),
            disable_refresh: s.disable_session_refresh,
            defer_refresh: s.defer_session_refresh,
        }
    }

    /// Expiry of a session created at `now`.
    pub fn expiry(&self, now: DateTime<Utc>, remember: bool) -> DateTime<Utc> {
        let secs = if remember {
            self.expires_in
        } else {
            DONT_REMEMBER_SECS
        };
        now + Duration::seconds(secs)
    }

    /// Better Auth's refresh rule: due once `update_age` has passed since the last
    /// refresh, i.e. `expiresAt − expiresIn + updateAge ≤ now`.
    pub fn needs_refresh(&self, s: &Session, now: DateTime<Utc>) -> bool {
        !self.disable_refresh
            && s.expires_at - Duration::seconds(self.expires_in)
                + Duration::seconds(self.update_age)
                <= now
    }

    /// The latest expiry at which a session is still due for refresh at `now`
    /// (`expiresAt ≤ now + expiresIn − updateAge`), for refreshes that must not repeat.
    pub fn due_by(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + Duration::seconds(self.expires_in) - Duration::seconds(self.update_age)
    }

    /// Whether the session is too old for the endpoints that require a fresh sign-in.
    pub fn is_stale(&self, s: &Session, now: DateTime<Utc>) -> bool {
        self.fresh_age != 0 && now - s.created_at >= Duration::seconds(self.fresh_age)
    }

    /// The `Max-Age` of the session cookie for a remembered session.
    pub fn cookie_max_age(&self) -> u64 {
        u64::try_from(self.expires_in).unwrap_or(0)
    }
}
