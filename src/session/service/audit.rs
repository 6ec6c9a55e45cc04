//! The audit trail and the events sessiond records itself: a user's session history (the
//! sessions started and ended, why and from where) read from the event outbox, and failed
//! sign-ins, which change no row for a trigger to see.

use serde_json::{json, Map, Value};

use super::{ClientInfo, SessionService};
use crate::session::SessionError;
use crate::store::outbox::{AuditEntry, NewEvent};

/// Most history entries one call returns.
pub const MAX_HISTORY_PAGE: usize = 200;

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
                "userAgent": (!client.user_agent.is_empty()).then_some(&client.user_agent),
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
