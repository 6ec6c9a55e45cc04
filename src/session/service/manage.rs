//! What a signed-in user does to their sessions and profile: list, revoke, update.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::fields::{is_truthy, parse_input, Action};
use super::{Current, SessionService};
use crate::model::{Session, User};
use crate::session::cookies::{CookieOp, Credential};
use crate::session::{limits, SessionError};
use crate::store::outbox::{EventContext, Reason};
use crate::store::{StoreError, UserChange};

impl SessionService {
    /// The user's live sessions.
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %cur.user.id))]
    pub async fn list_sessions(&self, cur: &Current) -> Result<Vec<Session>, SessionError> {
        let mut sessions = self
            .inner
            .store
            .list_sessions(&cur.user.id, self.now(), limits::MAX_LISTED_SESSIONS)
            .await
            .map_err(|e| {
                SessionError::from_store(e, "list-sessions failed", SessionError::Internal)
            })?;
        if self.inner.banned_message.is_some() {
            // The admin plugin hides impersonation sessions from their user.
            sessions.retain(|s| !s.extra.get("impersonatedBy").is_some_and(is_truthy));
        }
        Ok(sessions)
    }

    fn revoke_error(e: StoreError) -> SessionError {
        SessionError::from_store(e, "revocation failed", SessionError::Internal)
    }

    /// Revokes one of the user's sessions by token; other users' tokens and unknown
    /// tokens are silently ignored (Better Auth answers success). Revoking the caller's
    /// own session also expires its cookies.
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %cur.user.id))]
    pub async fn revoke_session(
        &self,
        cur: &Current,
        token: &str,
        cred: &Credential,
        out: &mut Vec<CookieOp>,
    ) -> Result<(), SessionError> {
        let deleted = EventContext::because(Reason::Revoke)
            .scope(
                self.inner
                    .store
                    .delete_user_session(&cur.user.id, token, self.now()),
            )
            .await
            .map_err(Self::revoke_error)?;
        if deleted {
            self.note_revoked(std::slice::from_ref(&token.to_owned()));
        }
        if token == cur.session.token {
            self.delete_session_cookies(cred.cookies(), out);
        }
        Ok(())
    }

    /// The token of one of the user's live sessions, by its id (unknown ids and other
    /// users' sessions give `None`, which revocation treats as success, as for tokens).
    pub async fn token_of(&self, cur: &Current, id: &str) -> Result<Option<String>, SessionError> {
        let sessions = self.list_sessions(cur).await?;
        Ok(sessions.into_iter().find(|s| s.id == id).map(|s| s.token))
    }

    /// Revokes every session of the user, the caller's included (its cookies expire).
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %cur.user.id))]
    pub async fn revoke_sessions(
        &self,
        cur: &Current,
        cred: &Credential,
        out: &mut Vec<CookieOp>,
    ) -> Result<(), SessionError> {
        let n = EventContext::because(Reason::Revoke)
            .scope(
                self.inner
                    .store
                    .delete_user_sessions(&cur.user.id, self.now()),
            )
            .await
            .map_err(Self::revoke_error)?;
        self.note_revoked(&n);
        self.delete_session_cookies(cred.cookies(), out);
        Ok(())
    }

    /// Revokes every session of the user but the caller's.
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %cur.user.id))]
    pub async fn revoke_other_sessions(&self, cur: &Current) -> Result<(), SessionError> {
        let n = EventContext::because(Reason::RevokeOthers)
            .scope(self.inner.store.delete_other_sessions(
                &cur.user.id,
                &cur.session.token,
                self.now(),
            ))
            .await
            .map_err(Self::revoke_error)?;
        self.note_revoked(&n);
        Ok(())
    }

    /// The additional session fields a body sets (see [`parse_input`]); at least one.
    fn fields_to_set(&self, body: &Map<String, Value>) -> Result<Map<String, Value>, SessionError> {
        let fields = parse_input(&self.inner.fields, body, Action::Update)?;
        if fields.is_empty() {
            return Err(SessionError::NoFieldsToUpdate);
        }
        Ok(fields)
    }

    /// Sets additional session fields from a JSON object (see [`Self::fields_to_set`]) and
    /// re-issues the session cookie.
    #[tracing::instrument(level = "debug", skip_all, fields(session_id = %cur.session.id))]
    pub async fn update_session(
        &self,
        cur: &Current,
        body: &Map<String, Value>,
        cred: &Credential,
        out: &mut Vec<CookieOp>,
    ) -> Result<Session, SessionError> {
        let fields = self.fields_to_set(body)?;
        let req = cred.cookies();
        // A session answered from the cookie cache carries the user as it was cached: the
        // cache written below would hand that copy a new lifetime (and a user banned since
        // would keep it for ever). So the user is read again first.
        let user = if cur.from_cache() && !self.inner.cache.authoritative {
            match self.inner.store.find_session(&cur.session.token).await? {
                Some((_, user)) if !self.banned_now(&user) => Arc::new(user),
                _ => {
                    self.delete_session_cookies(req, out);
                    return Err(SessionError::SessionGone);
                }
            }
        } else {
            Arc::clone(&cur.user)
        };
        let updated = self
            .inner
            .store
            .update_session_fields(&cur.session.token, &fields, self.now())
            .await?;
        let s = match updated {
            Some(s) => s,
            None if self.inner.cache.authoritative => {
                // Stateless: the cookie is the session; merge into it.
                let mut s = Session::clone(&cur.session);
                s.extra.extend(fields);
                s.updated_at = self.now();
                s
            }
            None => {
                self.delete_session_cookies(req, out);
                return Err(SessionError::SessionGone);
            }
        };
        let dont = cur.dont_remember;
        self.set_session_cookie(&s, &user, dont, dont, req, out);
        Ok(s)
    }

    /// Updates the user's name, image (`Some(None)` clears it) and additional fields (a
    /// body's, see [`parse_input`]) and re-issues the session cookie; the session's expiry
    /// does not move.
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %cur.user.id))]
    pub async fn update_user(
        &self,
        cur: &Current,
        name: Option<String>,
        image: Option<Option<String>>,
        body: &Map<String, Value>,
        cred: &Credential,
        out: &mut Vec<CookieOp>,
    ) -> Result<(), SessionError> {
        let fields = self.user_input(body, Action::Update)?;
        if name.is_none() && image.is_none() && fields.is_empty() {
            return Err(SessionError::NoFieldsToUpdate);
        }
        let change = UserChange {
            name: name.as_deref(),
            image: image.as_ref().map(|i| i.as_deref()),
            fields: &fields,
        };
        let now = self.now();
        let updated = self
            .inner
            .store
            .update_user(&cur.user.id, &change, now)
            .await?;
        let user = match updated {
            Some(u) => u,
            None if self.inner.cache.authoritative => {
                // Stateless and unknown to this process: update the cookie's copy.
                let mut u = User::clone(&cur.user);
                change.apply(&mut u, now);
                u
            }
            None => return Err(SessionError::UserGone),
        };
        let dont = cur.dont_remember;
        self.set_session_cookie(&cur.session, &user, dont, dont, cred.cookies(), out);
        Ok(())
    }
}
