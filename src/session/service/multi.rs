//! Better Auth's multi-session plugin: several signed-in accounts per browser, each named
//! by a signed `<session token cookie>_multi-<token in lower case>` cookie
//! ([`CookieNames::multi`](crate::session::cookies::CookieNames::multi)).
//!
//! A `_multi-` cookie is only ever acted on through its verified value: the token a body
//! names picks the cookie, and the session acted on is the one the cookie (signed by this
//! service when it created that session) holds. So no request can list, activate or end a
//! session whose token its browser was not given.

use super::{Current, SessionService};
use crate::model::{Session, User};
use crate::session::cookies::{CookieKind, CookieOp, Credential, RequestCookies};
use crate::session::SessionError;
use crate::store::outbox::{EventContext, Reason};

impl SessionService {
    /// With the multi-session plugin, the accounts one browser holds at most.
    pub fn multi_session_max(&self) -> Option<usize> {
        self.inner.multi_max
    }

    /// A session that may still be used: found, not known revoked, not expired or past
    /// its cap, and its user not banned.
    async fn live_session(&self, token: &str) -> Result<Option<(Session, User)>, SessionError> {
        let now = self.now();
        let found = self.inner.store.find_session(token).await?;
        Ok(found.filter(|(s, u)| {
            !self.inner.revocations.is_revoked(token)
                && !s.is_expired(now)
                && !self.inner.policy.past_cap(s, now)
                && !self.banned_now(u)
        }))
    }

    /// Ends sessions at once (deny set first, then the store).
    async fn end_tokens(&self, tokens: &[String], why: Reason) -> Result<(), SessionError> {
        if tokens.is_empty() {
            return Ok(());
        }
        self.note_revoked(tokens);
        let now = self.now();
        for t in tokens {
            EventContext::because(why)
                .scope(self.inner.store.delete_session(t, now))
                .await?;
        }
        Ok(())
    }

    /// The verified multi-session cookie for `token` (the one its lower-cased name picks):
    /// its name and the session token it holds.
    fn multi_cookie(&self, req: &RequestCookies, token: &str) -> Option<(String, String)> {
        let name = self.inner.names.multi(token);
        let held = req.signed(&name, &self.inner.keys).valid()?;
        Some((name, held))
    }

    /// `list-device-sessions`: the live sessions the request's `_multi-` cookies hold, in
    /// cookie order, one per user (the first).
    pub async fn device_sessions(
        &self,
        cred: &Credential,
    ) -> Result<Vec<(Session, User)>, SessionError> {
        let mut out: Vec<(Session, User)> = Vec::new();
        for (_, token) in cred.cookies().multi_tokens(&self.inner.keys) {
            if let Some((s, u)) = self.live_session(&token).await? {
                if !out.iter().any(|(_, seen)| seen.id == u.id) {
                    out.push((s, u));
                }
            }
        }
        Ok(out)
    }

    /// `set-active`: makes the session of the browser's `_multi-` cookie for `token` the
    /// active one (session cookie and cache). A cookie whose session is over is expired.
    pub async fn set_active(
        &self,
        token: &str,
        cred: &Credential,
        out: &mut Vec<CookieOp>,
    ) -> Result<(Session, User), SessionError> {
        let req = cred.cookies();
        let (name, held) = self
            .multi_cookie(req, token)
            .ok_or(SessionError::InvalidSessionToken)?;
        let Some((session, user)) = self.live_session(&held).await? else {
            out.push(CookieOp::ExpireMulti(name));
            return Err(SessionError::InvalidSessionToken);
        };
        let dont = self.has_dont_remember(req);
        self.set_session_cookie(&session, &user, dont, dont, req, out);
        Ok((session, user))
    }

    /// `revoke`: ends the session of the browser's `_multi-` cookie for `token` and expires
    /// that cookie; when it was the active one, the next live session among the browser's
    /// `_multi-` cookies becomes active, or the session cookies are expired.
    pub async fn revoke_device_session(
        &self,
        cur: &Current,
        token: &str,
        cred: &Credential,
        out: &mut Vec<CookieOp>,
    ) -> Result<(), SessionError> {
        let req = cred.cookies();
        let (name, held) = self
            .multi_cookie(req, token)
            .ok_or(SessionError::InvalidSessionToken)?;
        self.end_tokens(std::slice::from_ref(&held), Reason::Revoke)
            .await?;
        out.push(CookieOp::ExpireMulti(name));
        if held != cur.session.token {
            return Ok(());
        }
        for (_, next) in req.multi_tokens(&self.inner.keys) {
            if let Some((s, u)) = self.live_session(&next).await? {
                let dont = self.has_dont_remember(req);
                self.set_session_cookie(&s, &u, dont, dont, req, out);
                return Ok(());
            }
        }
        self.delete_session_cookies(req, out);
        Ok(())
    }

    /// After a response that created a session (sign-in, sign-up): the browser's earlier
    /// sessions of the same user end (their cookies expire), and the new session gets its
    /// `_multi-` cookie unless the browser already holds `maximum_sessions` of them.
    pub async fn multi_after_new_session(
        &self,
        token: &str,
        user_id: &str,
        cred: &Credential,
        out: &mut Vec<CookieOp>,
    ) -> Result<(), SessionError> {
        let Some(max) = self.inner.multi_max else {
            return Ok(());
        };
        let req = cred.cookies();
        let name = self.inner.names.multi(token);
        if req.get(&name).is_some() {
            return Ok(());
        }
        let mut same_user = Vec::new();
        for (cookie, held) in req.multi_tokens(&self.inner.keys) {
            let found = self.inner.store.find_session(&held).await?;
            if found.is_some_and(|(_, u)| u.id == user_id) {
                same_user.push(held);
                out.push(CookieOp::ExpireMulti(cookie));
            }
        }
        self.end_tokens(&same_user, Reason::Revoke).await?;
        // As Better Auth counts: every `_multi-` cookie sent, verified or not, less the ones
        // just ended, plus the new session.
        if req.multi_names().len().saturating_sub(same_user.len()) + 1 > max {
            return Ok(());
        }
        out.push(CookieOp::SetMulti {
            name,
            value: self.inner.keys.sign(token),
            max_age: self.inner.policy.cookie_max_age(),
        });
        Ok(())
    }

    /// After any other answer that sets the session cookie (a refresh, update-session,
    /// update-user, change-password's new session): as the plugin's after hook runs on every
    /// route, that session gets its `_multi-` cookie when the browser does not send one yet
    /// ([`Self::multi_after_new_session`]). `user_id`: the session's user.
    pub async fn multi_after_session_cookie(
        &self,
        user_id: &str,
        cred: &Credential,
        out: &mut Vec<CookieOp>,
    ) -> Result<(), SessionError> {
        if self.inner.multi_max.is_none() {
            return Ok(());
        }
        let token = out.iter().rev().find_map(|op| match op {
            CookieOp::Set {
                kind: CookieKind::Token,
                value,
                ..
            } => value.split_once('.').map(|(t, _)| t.to_owned()),
            _ => None,
        });
        match token {
            Some(t) => self.multi_after_new_session(&t, user_id, cred, out).await,
            None => Ok(()),
        }
    }

    /// After sign-out: every session a verified `_multi-` cookie holds ends, and those
    /// cookies expire.
    pub async fn multi_sign_out(
        &self,
        cred: &Credential,
        out: &mut Vec<CookieOp>,
    ) -> Result<(), SessionError> {
        if self.inner.multi_max.is_none() {
            return Ok(());
        }
        let held = cred.cookies().multi_tokens(&self.inner.keys);
        let mut tokens = Vec::with_capacity(held.len());
        for (name, token) in held {
            out.push(CookieOp::ExpireMulti(name));
            tokens.push(token);
        }
        self.end_tokens(&tokens, Reason::SignOut).await
    }
}
