//! When sessions expire, refresh and count as fresh (Better Auth's `session.*` rules),
//! as pure functions of the settings and the time.

use chrono::{DateTime, Duration, Utc};

use crate::config::SessionSettings;
use crate::model::Session;

/// Lifetime of a session created with `rememberMe: false`: a day (Better Auth's rule),
/// or `expires_in` when that is shorter (Better Auth would give such a session longer
/// than a remembered one).
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
    /// Absolute lifetime from sign-in, whatever the refreshes; `None`: no cap.
    pub absolute: Option<i64>,
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
            absolute: (s.absolute_timeout > 0).then(|| secs(s.absolute_timeout)),
            defer_refresh: s.defer_session_refresh,
        }
    }

    /// Expiry of a session created at `now`: `now + expires_in`, or for `rememberMe:
    /// false` `now + min(1 day, expires_in)`; within the absolute cap either way.
    pub fn expiry(&self, now: DateTime<Utc>, remember: bool) -> DateTime<Utc> {
        let secs = if remember {
            self.expires_in
        } else {
            DONT_REMEMBER_SECS.min(self.expires_in)
        };
        self.capped(now + Duration::seconds(secs), now)
    }

    /// The expiry a refresh at `now` gives: `now + expires_in`, within the absolute cap.
    pub fn refreshed_expiry(&self, s: &Session, now: DateTime<Utc>) -> DateTime<Utc> {
        self.capped(now + Duration::seconds(self.expires_in), s.created_at)
    }

    /// The absolute end of a session created at `created_at`, if there is a cap.
    pub fn cap(&self, created_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.absolute.map(|a| created_at + Duration::seconds(a))
    }

    fn capped(&self, expiry: DateTime<Utc>, created_at: DateTime<Utc>) -> DateTime<Utc> {
        self.cap(created_at).map_or(expiry, |cap| expiry.min(cap))
    }

    /// Whether the session is past its absolute cap (expired whatever its `expiresAt`).
    pub fn past_cap(&self, s: &Session, now: DateTime<Utc>) -> bool {
        self.cap(s.created_at).is_some_and(|cap| now >= cap)
    }

    /// Whether the session was made with `rememberMe: false`, whatever cookies the client
    /// still holds: `|expiresAt − createdAt − 1 day| ≤ 2 s` while `expiresIn > 1 day`.
    /// Such a session is born with exactly one day and never slides, while a remembered one
    /// is born with `expiresIn` and only grows; Better Auth relies on the `dont_remember`
    /// cookie alone, which a client can simply not send.
    pub fn is_dont_remember(&self, s: &Session) -> bool {
        let lifetime = (s.expires_at - s.created_at).num_milliseconds();
        self.expires_in > DONT_REMEMBER_SECS
            && (lifetime - DONT_REMEMBER_SECS * 1000).abs() <= 2_000
    }

    /// Better Auth's refresh rule: due once `update_age` has passed since the last
    /// refresh, i.e. `expiresAt − expiresIn + updateAge ≤ now`; never for a session made
    /// with `rememberMe: false`.
    pub fn needs_refresh(&self, s: &Session, now: DateTime<Utc>) -> bool {
        // At the cap there is nothing left to extend.
        let at_cap = self
            .cap(s.created_at)
            .is_some_and(|cap| s.expires_at >= cap);
        !self.disable_refresh
            && !at_cap
            && !self.is_dont_remember(s)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(expires_in: i64) -> Policy {
        Policy {
            expires_in,
            update_age: 0,
            fresh_age: 0,
            disable_refresh: false,
            absolute: None,
            defer_refresh: false,
        }
    }

    #[test]
    fn not_remembered_sessions_never_outlive_remembered_ones() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let day = Duration::seconds(DONT_REMEMBER_SECS);
        // Better Auth's rule while expires_in is longer than a day.
        assert_eq!(policy(604_800).expiry(now, false), now + day);
        assert_eq!(policy(604_800).expiry(now, true), now + Duration::days(7));
        // A shorter expires_in bounds both.
        let hour = policy(3_600);
        assert_eq!(hour.expiry(now, false), now + Duration::hours(1));
        assert_eq!(hour.expiry(now, true), now + Duration::hours(1));
    }
}
