//! Session resolution, as `get-session` does it: the signed token, the cookie cache, the
//! store, expiry and the sliding refresh.

use std::sync::Arc;

use super::{AnswerMemo, Current, ResolveOptions, SessionService};
use crate::model::{Session, User};
use crate::session::cookies::{CookieOp, Credential, RequestCookies};
use crate::session::SessionError;
use crate::store::outbox::{EventContext, Reason};
use crate::store::Touched;

impl SessionService {
    /// Finds the request's session, as `get-session` does: verifies the signed token,
    /// reads the store, deletes an expired session, and slides the expiry when due
    /// (re-issuing the cookie). `Ok(None)` means signed out.
    ///
    /// Cookies signed or encrypted under an older secret version are accepted and issued
    /// again under the current one on this response, so that a rotation signs nobody out
    /// (Better Auth's verify under the current secret only). Such a cache value is checked
    /// against the store first, unless the cache is the session (stateless): minting it
    /// again from its own copy would stretch its window past what revocations are
    /// remembered for. A bearer token is the client's to keep: it is accepted, not
    /// re-issued.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn resolve(
        &self,
        cred: &Credential,
        opts: ResolveOptions,
        out: &mut Vec<CookieOp>,
    ) -> Result<Option<Current>, SessionError> {
        let inner = &self.inner;
        let req = cred.cookies();
        if !inner.cache.enabled {
            // Without a cookie cache, stray cache cookies are only noise: expire them.
            let carried = req.carried(&inner.names.data);
            out.extend(carried.kinds().map(CookieOp::Expire));
        }
        let verified = cred.token(&inner.names, &inner.keys);
        let flag = self.dont_remember_flag(req);
        let mut stale = flag.is_older() || (verified.is_older() && !cred.is_bearer());
        let Some(token) = verified.valid() else {
            return Ok(None);
        };
        let dont_remember = flag.valid().is_some();
        let current = |session: Arc<Session>,
                       user: Arc<User>,
                       needs_refresh,
                       memo: Option<Arc<AnswerMemo>>| Current {
            session,
            user,
            needs_refresh,
            dont_remember,
            memo,
        };
        let now = inner.clock.now();
        if inner.cache.enabled && !opts.disable_cookie_cache {
            if let Some(raw) = self.read_cache(req) {
                let now_ms = now.timestamp_millis();
                let accepted = self.accept_cache(&raw, &token, now_ms);
                match accepted.filter(|hit| !self.banned_now(&hit.user)) {
                    Some(hit) if inner.cache.authoritative || !(stale || hit.older_secret) => {
                        crate::metrics::cache_hit();
                        let refresh = inner.cache.refresh_within_ms;
                        let due = refresh.is_some_and(|r| hit.window_end_ms - now_ms < r);
                        if due || stale || hit.older_secret {
                            self.set_session_cookie(
                                &hit.session,
                                &hit.user,
                                dont_remember,
                                dont_remember,
                                req,
                                out,
                            );
                        }
                        return Ok(Some(current(hit.session, hit.user, None, Some(hit.answer))));
                    }
                    // Valid under an older secret: answered from the store below, which
                    // writes every cookie again.
                    Some(_) => {
                        crate::metrics::cache_miss();
                        stale = true;
                    }
                    None => {
                        crate::metrics::cache_miss();
                        self.expire_cache(req, out);
                    }
                }
            }
        }
        let found = inner.store.find_session(&token).await?;
        // A session known to have ended is over, whatever a store that rolled back (a
        // failover to a lagging replica) still holds; so is a banned user's.
        let found = found
            .filter(|(_, user)| !inner.revocations.is_revoked(&token) && !self.banned_now(user));
        let Some((session, user)) = found else {
            self.delete_session_cookies(req, out);
            return Ok(None);
        };
        let (session, user) = (Arc::new(session), Arc::new(user));
        if session.is_expired(now) || inner.policy.past_cap(&session, now) {
            self.delete_session_cookies(req, out);
            if !opts.defer_read_only {
                EventContext::because(Reason::Expired)
                    .scope(inner.store.delete_session(&token, now))
                    .await?;
            }
            return Ok(None);
        }
        if dont_remember || opts.disable_refresh {
            if stale {
                self.set_session_cookie(&session, &user, dont_remember, dont_remember, req, out);
            }
            return Ok(Some(current(session, user, None, None)));
        }
        let due = inner.policy.needs_refresh(&session, now);
        if opts.defer_read_only {
            self.write_cookies(&session, &user, stale, req, out);
            return Ok(Some(current(session, user, Some(due), None)));
        }
        if !due {
            self.write_cookies(&session, &user, stale, req, out);
            return Ok(Some(current(session, user, None, None)));
        }
        let expires_at = inner.policy.refreshed_expiry(&session, now);
        let due_by = inner.policy.due_by(now);
        match inner
            .store
            .touch_session(&token, expires_at, now, due_by)
            .await?
        {
            Touched::Refreshed(updated) => {
                let updated = Arc::new(*updated);
                crate::metrics::session_refreshed();
                self.set_session_cookie(&updated, &user, false, dont_remember, req, out);
                Ok(Some(current(updated, user, None, None)))
            }
            Touched::AlreadyFresh => {
                // Another request or replica refreshed it a moment ago.
                self.write_cookies(&session, &user, stale, req, out);
                Ok(Some(current(session, user, None, None)))
            }
            Touched::Gone => {
                // Deleted between the read and the refresh: fail closed.
                self.delete_session_cookies(req, out);
                Err(SessionError::SessionGone)
            }
        }
    }

    /// The cookies of a remembered session answered from the store without a refresh: the
    /// cache, and with `stale` (a cookie under an older secret) the signed cookies too.
    fn write_cookies(
        &self,
        session: &Session,
        user: &User,
        stale: bool,
        req: &RequestCookies,
        out: &mut Vec<CookieOp>,
    ) {
        if stale {
            self.set_session_cookie(session, user, false, false, req, out);
        } else {
            self.write_cache(session, user, false, req, out);
        }
    }

    /// Rejects sessions older than `fresh_age`.
    pub fn require_fresh(&self, cur: &Current) -> Result<(), SessionError> {
        if self.inner.policy.is_stale(&cur.session, self.now()) {
            Err(SessionError::NotFresh)
        } else {
            Ok(())
        }
    }
}
