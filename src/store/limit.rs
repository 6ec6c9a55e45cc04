//! `session.max_per_user` (sessiond's own; Better Auth has none): how many live sessions a
//! user may hold, and what a sign-in beyond that does. The rule is a pure function here;
//! each store applies it under its own lock, in the transaction (or script) that inserts
//! the new session, so that concurrent sign-ins on any number of replicas cannot both see
//! room for one more.
//!
//! Impersonation sessions (the admin plugin's, `impersonatedBy` set) neither count nor
//! end: an admin's impersonation must not sign the user out, and a user's sign-in must not
//! end an admin's impersonation; they are short-lived (`impersonation_session_duration`)
//! and only admins make them.

use chrono::{DateTime, Utc};

use crate::model::Session;

/// What a sign-in beyond the limit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// End the user's oldest live sessions (by creation) to make room.
    EndOldest,
    /// Refuse the new session.
    Refuse,
}

/// A per-user session limit (`max ≥ 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCap {
    /// Live sessions a user may hold, the new one included.
    pub max: usize,
    /// What a session beyond `max` does.
    pub overflow: Overflow,
}

/// The outcome of creating a session under a [`SessionCap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capped {
    /// The session was created; the tokens of the sessions ended to make room.
    Created(Vec<String>),
    /// The user already holds `max` live sessions and the cap refuses more: nothing
    /// was written.
    Refused,
}

/// For a user holding `live` live sessions (impersonations aside) who gets one more, how
/// many of the oldest end first, or `None` when the new one is refused:
///
/// `ended = max(0, live + 1 − max)`; refused when `overflow = Refuse ∧ ended > 0`.
///
/// So at most `max` remain with the new one, whatever `live` was (a lowered limit ends
/// every surplus session at the next sign-in).
pub fn to_end(live: usize, cap: SessionCap) -> Option<usize> {
    let max = cap.max.max(1);
    let ended = (live + 1).saturating_sub(max);
    match cap.overflow {
        Overflow::Refuse if ended > 0 => None,
        _ => Some(ended),
    }
}

/// Whether a session is an impersonation (its `impersonatedBy` set): outside the limit.
pub fn is_impersonation(s: &Session) -> bool {
    s.extra
        .get("impersonatedBy")
        .is_some_and(|v| !v.is_null() && v.as_str() != Some(""))
}

/// Of one user's sessions, the tokens that end before one more is created under `cap`:
/// the [`to_end`] oldest live ones (by `createdAt`, then token), impersonations aside;
/// `None` when the new one is refused. For stores that hold the sessions at hand.
pub fn surplus<'a>(
    sessions: impl IntoIterator<Item = &'a Session>,
    cap: SessionCap,
    now: DateTime<Utc>,
) -> Option<Vec<String>> {
    let mut live: Vec<&Session> = sessions
        .into_iter()
        .filter(|s| s.expires_at > now && !is_impersonation(s))
        .collect();
    let n = to_end(live.len(), cap)?;
    live.sort_by(|a, b| (a.created_at, &a.token).cmp(&(b.created_at, &b.token)));
    Some(live.iter().take(n).map(|s| s.token.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(max: usize, overflow: Overflow) -> SessionCap {
        SessionCap { max, overflow }
    }

    #[test]
    fn ends_the_surplus_or_refuses() {
        let end = |live, max| to_end(live, cap(max, Overflow::EndOldest));
        assert_eq!(end(0, 1), Some(0));
        assert_eq!(end(1, 1), Some(1));
        assert_eq!(end(2, 3), Some(0));
        assert_eq!(end(3, 3), Some(1));
        // A limit lowered below what a user holds ends the whole surplus at once.
        assert_eq!(end(10, 3), Some(8));
        let refuse = |live, max| to_end(live, cap(max, Overflow::Refuse));
        assert_eq!(refuse(2, 3), Some(0));
        assert_eq!(refuse(3, 3), None);
        assert_eq!(refuse(0, 1), Some(0));
        assert_eq!(refuse(1, 1), None);
        // max 0 is "off" in the configuration and never reaches a store; treated as 1.
        assert_eq!(to_end(4, cap(0, Overflow::EndOldest)), Some(4));
    }

    fn session(token: &str, age_s: i64, now: DateTime<Utc>) -> Session {
        Session {
            id: token.into(),
            token: token.into(),
            user_id: "u".into(),
            expires_at: now + chrono::Duration::seconds(60),
            created_at: now - chrono::Duration::seconds(age_s),
            updated_at: now,
            ip_address: None,
            user_agent: None,
            extra: serde_json::Map::new(),
        }
    }

    #[test]
    fn the_oldest_live_ones_end_and_impersonations_stay() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let mut expired = session("expired", 50, now);
        expired.expires_at = now;
        let mut imp = session("imp", 99, now);
        imp.extra.insert("impersonatedBy".into(), "admin".into());
        let all = [
            session("b", 10, now),
            session("a", 30, now),
            session("c", 20, now),
            expired,
            imp,
        ];
        let end_oldest = cap(2, Overflow::EndOldest);
        assert_eq!(
            surplus(&all, end_oldest, now),
            Some(vec!["a".into(), "c".into()])
        );
        assert_eq!(
            surplus(&all, cap(4, Overflow::EndOldest), now),
            Some(vec![])
        );
        assert_eq!(surplus(&all, cap(3, Overflow::Refuse), now), None);
    }
}
