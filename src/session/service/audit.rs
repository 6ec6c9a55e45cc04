//! The audit trail and the events sessiond records itself: a user's session history (the
//! sessions started and ended, why and from where) read from the event outbox, and failed
//! sign-ins, which change no row for a trigger to see.

use serde_json::{json, Map, Value};

use super::{ClientInfo, SessionService};
use crate::session::{limits, SessionError};
use crate::store::outbox::{AuditEntry, NewEvent};

/// Most history entries one call returns.
pub const MAX_HISTORY_PAGE: usize = 200;

/// Failed sign-ins recorded per second at most, per replica: a stranger decides how many
/// there are, so their rows are capped (beyond: counted in
/// `sign_in_failed_events_dropped_total`, not recorded).
pub const MAX_FAILED_SIGN_IN_EVENTS_PER_SEC: u32 = 50;

/// The per-second window of [`MAX_FAILED_SIGN_IN_EVENTS_PER_SEC`]: (second, count).
#[derive(Debug, Default)]
pub struct FailedSignInWindow(std::sync::Mutex<(i64, u32)>);

impl FailedSignInWindow {
    /// Whether one more failed sign-in may be recorded in the second of `now_ms`:
    /// `count(second) < MAX_FAILED_SIGN_IN_EVENTS_PER_SEC`.
    pub fn admit(&self, now_ms: i64) -> bool {
        let second = now_ms.div_euclid(1000);
        let Ok(mut w) = self.0.lock() else {
            return false;
        };
        if w.0 != second {
            *w = (second, 0);
        }
        if w.1 >= MAX_FAILED_SIGN_IN_EVENTS_PER_SEC {
            return false;
        }
        w.1 += 1;
        true
    }
}

/// Why a sign-in failed, as `user.sign_in_failed` names it.
#[derive(Debug, Clone, Copy)]
pub enum SignInFailure {
    /// No user has that email (or it has no password).
    UnknownUser,
    /// The password did not match.
    WrongPassword,
    /// The user is banned.
    Banned,
}

impl SignInFailure {
    fn as_str(self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::WrongPassword => "wrong_password",
            Self::Banned => "banned",
        }
    }
}

impl SessionService {
    /// Whether the audit trail can be read (events are recorded).
    pub fn audit_on(&self) -> bool {
        self.inner.outbox.is_some()
    }

    /// A page of a user's session history, newest first: `session.created` and
    /// `session.revoked` events before `before` (a row id), at most `limit`; with the
    /// cursor of the next page when there may be one.
    pub async fn user_history(
        &self,
        user_id: &str,
        limit: usize,
        before: Option<i64>,
    ) -> Result<(Vec<AuditEntry>, Option<i64>), SessionError> {
        let Some(outbox) = &self.inner.outbox else {
            return Ok((Vec::new(), None));
        };
        let limit = limit.clamp(1, MAX_HISTORY_PAGE);
        let rows = outbox
            .history(user_id, before, limit + 1)
            .await
            .map_err(|e| SessionError::from_store(e, "history failed", SessionError::Internal))?;
        let more = rows.len() > limit;
        let mut page: Vec<(i64, AuditEntry)> = rows.into_iter().take(limit).collect();
        let next = if more {
            page.last().map(|(id, _)| *id)
        } else {
            None
        };
        Ok((page.drain(..).map(|(_, e)| e).collect(), next))
    }

    /// Records a failed sign-in (`user.sign_in_failed`): the user when one has that email,
    /// why, and the client. Never fails the request: an outbox that cannot take it is
    /// logged.
    pub(super) async fn sign_in_failed(
        &self,
        user_id: Option<&str>,
        why: SignInFailure,
        client: &ClientInfo,
    ) {
        let Some(outbox) = &self.inner.outbox else {
            return;
        };
        if !self.inner.failed_window.admit(self.inner.clock.now_ms()) {
            crate::metrics::sign_in_failed_event_dropped();
            return;
        }
        let mut data = Map::new();
        if let Some(u) = user_id {
            data.insert("userId".into(), Value::String(u.to_owned()));
        }
        data.insert("reason".into(), why.as_str().into());
        data.insert("origin".into(), "sessiond".into());
        data.insert(
            "request".into(),
            json!({
                "ipAddress": (!client.ip_address.is_empty()).then_some(&client.ip_address),
                "userAgent": (!client.user_agent.is_empty())
                    .then(|| limits::cut(&client.user_agent, limits::MAX_USER_AGENT_BYTES)),
            }),
        );
        let event = NewEvent {
            kind: "user.sign_in_failed",
            user_id: user_id.map(str::to_owned),
            session_id: None,
            data: Value::Object(data),
        };
        if let Err(e) = outbox.record(&[event], self.now()).await {
            tracing::warn!(error = %e, "a failed sign-in could not be recorded");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_sign_ins_are_capped_per_second() {
        let w = FailedSignInWindow::default();
        let admitted = (0..MAX_FAILED_SIGN_IN_EVENTS_PER_SEC + 10)
            .filter(|_| w.admit(5_999))
            .count();
        assert_eq!(admitted, MAX_FAILED_SIGN_IN_EVENTS_PER_SEC as usize);
        assert!(!w.admit(5_000), "the same second stays full");
        assert!(w.admit(6_000), "a new second starts empty");
        assert!(w.admit(-1), "before the epoch too");
    }
}
