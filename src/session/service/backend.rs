//! What the service API does for backends: list a user's sessions page by page, revoke
//! a session by id or every session of some users, ban and unban. No caller session is
//! involved; every revocation goes through the store's revocation (which feeds the
//! revocation feed) and this process's deny set, as the signed-in routes' do.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

use super::SessionService;
use crate::js::date::Iso;
use crate::model::Session;
use crate::session::SessionError;
use crate::store::outbox::{EventContext, Reason};
use crate::store::UserChange;

/// Sessions a page holds at most.
pub const MAX_PAGE: usize = 100;
/// A user's sessions paging reaches: the newest this many live ones.
pub const MAX_PAGED_SESSIONS: usize = 1_000;
/// Users one revoke-sessions call names at most.
pub const MAX_USERS_PER_CALL: usize = 100;
/// Longest ban reason, in characters.
pub const MAX_BAN_REASON_CHARS: usize = 1_024;
/// Longest cursor accepted, in bytes.
pub const MAX_CURSOR_BYTES: usize = 512;

/// Where a page starts: after the session created at `at` with id `id` (sessions are
/// ordered by creation time, then id). Written as `<unix ms>.<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    at: DateTime<Utc>,
    id: String,
}

impl Cursor {
    /// Reads a cursor as [`Cursor::encode`] wrote it; `None` if it is not one.
    pub fn decode(s: &str) -> Option<Self> {
        if s.len() > MAX_CURSOR_BYTES {
            return None;
        }
        let (ms, id) = s.split_once('.')?;
        let at = DateTime::from_timestamp_millis(ms.parse().ok()?)?;
        (!id.is_empty()).then(|| Self {
            at,
            id: id.to_owned(),
        })
    }

    /// The text form.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.at.timestamp_millis(), self.id)
    }

    fn of(s: &Session) -> Self {
        Self {
            at: s.created_at,
            id: s.id.clone(),
        }
    }

    fn key(&self) -> (i64, &str) {
        (self.at.timestamp_millis(), &self.id)
    }
}

/// A ban as asked.
#[derive(Debug, Clone, Default)]
pub struct BanRequest {
    /// Why (Better Auth's default: "No reason").
    pub reason: Option<String>,
    /// Seconds until it ends; none: for good.
    pub expires_in: Option<u64>,
}

impl SessionService {
    /// One page of a user's live sessions, oldest first, and the cursor of the next page
    /// when there is one.
    pub async fn page_user_sessions(
        &self,
        user_id: &str,
        limit: usize,
        after: Option<&Cursor>,
    ) -> Result<(Vec<Session>, Option<Cursor>), SessionError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut all = self
            .inner
            .store
            .list_sessions(user_id, self.now(), MAX_PAGED_SESSIONS)
            .await
            .map_err(|e| {
                SessionError::from_store(e, "service list-sessions failed", SessionError::Internal)
            })?;
        all.sort_by(|a, b| Cursor::of(a).key().cmp(&Cursor::of(b).key()));
        let start = match after {
            Some(c) => all.partition_point(|s| Cursor::of(s).key() <= c.key()),
            None => 0,
        };
        let mut page: Vec<Session> = all.into_iter().skip(start).take(limit + 1).collect();
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last().map(Cursor::of)
        } else {
            None
        };
        Ok((page, next))
    }

    /// Revokes the live session with this id; whether there was one.
    pub async fn revoke_session_by_id(&self, id: &str) -> Result<bool, SessionError> {
        let now = self.now();
        let store = &self.inner.store;
        let Some((token, user_id)) = store
            .session_by_id(id, now)
            .await
            .map_err(Self::service_revoke_error)?
        else {
            return Ok(false);
        };
        let deleted = EventContext::because(Reason::Admin)
            .scope(store.delete_user_session(&user_id, &token, now))
            .await
            .map_err(Self::service_revoke_error)?;
        if deleted {
            self.note_revoked(std::slice::from_ref(&token));
        }
        Ok(deleted)
    }

    fn service_revoke_error(e: crate::store::StoreError) -> SessionError {
        SessionError::from_store(e, "service revocation failed", SessionError::Internal)
    }

    /// Revokes every session of each user; how many sessions ended.
    pub async fn revoke_users_sessions(&self, user_ids: &[String]) -> Result<usize, SessionError> {
        self.end_users_sessions(user_ids, Reason::Admin).await
    }

    async fn end_users_sessions(
        &self,
        user_ids: &[String],
        why: Reason,
    ) -> Result<usize, SessionError> {
        let mut ended = 0;
        for u in user_ids {
            let tokens = EventContext::because(why)
                .scope(self.inner.store.delete_user_sessions(u, self.now()))
                .await
                .map_err(Self::service_revoke_error)?;
            self.note_revoked(&tokens);
            ended += tokens.len();
        }
        Ok(ended)
    }

    /// Bans a user and ends every session of theirs, as the admin plugin's ban-user does;
    /// `None` if there is no such user, else how many sessions ended.
    pub async fn api_ban_user(
        &self,
        user_id: &str,
        ban: &BanRequest,
    ) -> Result<Option<usize>, SessionError> {
        let now = self.now();
        let mut fields = Map::new();
        fields.insert("banned".into(), Value::Bool(true));
        let reason = ban.reason.clone().unwrap_or_else(|| "No reason".into());
        fields.insert("banReason".into(), Value::String(reason));
        let until = ban
            .expires_in
            .and_then(|s| i64::try_from(s).ok())
            .and_then(Duration::try_seconds)
            .and_then(|d| now.checked_add_signed(d));
        fields.insert(
            "banExpires".into(),
            until.map_or(Value::Null, |t| Value::String(Iso(&t).to_string())),
        );
        if !self.change_user_fields(user_id, &fields, now).await? {
            return Ok(None);
        }
        self.end_users_sessions(std::slice::from_ref(&user_id.to_owned()), Reason::Ban)
            .await
            .map(Some)
    }

    /// Lifts a user's ban; whether the user exists.
    pub async fn api_unban_user(&self, user_id: &str) -> Result<bool, SessionError> {
        let mut fields = Map::new();
        fields.insert("banned".into(), Value::Bool(false));
        fields.insert("banReason".into(), Value::Null);
        fields.insert("banExpires".into(), Value::Null);
        self.change_user_fields(user_id, &fields, self.now()).await
    }

    async fn change_user_fields(
        &self,
        user_id: &str,
        fields: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<bool, SessionError> {
        let change = UserChange {
            name: None,
            image: None,
            fields,
        };
        let updated = self
            .inner
            .store
            .update_user(user_id, &change, now)
            .await
            .map_err(|e| {
                SessionError::from_store(e, "service ban failed", SessionError::Internal)
            })?;
        Ok(updated.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        let c = Cursor {
            at: DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
            id: "abc.def".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in ["", "x.y", "12", "12.", &"1".repeat(600)] {
            assert!(Cursor::decode(bad).is_none(), "{bad}");
        }
    }
}
