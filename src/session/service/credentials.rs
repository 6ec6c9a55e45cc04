//! Email and password: sign-up, sign-in, sign-out and change-password.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::audit::SignInFailure;
use super::fields::Action;
use super::{ClientInfo, Current, PasswordChange, SessionService, SignIn, SignUp};
use crate::crypto::password::PasswordError;
use crate::crypto::token::generate_id;
use crate::model::{Session, User};
use crate::session::cookies::{CookieOp, Credential};
use crate::session::{limits, SessionError};
use crate::store::outbox::{EventContext, Reason};
use crate::store::{Capped, NewCredentialAccount, StoreError};

impl SessionService {
    fn check_password_length(&self, password: &str) -> Result<(), SessionError> {
        // Better Auth measures JavaScript string length (UTF-16 code units).
        if password.encode_utf16().count() < self.inner.email_password.min_password_length {
            return Err(SessionError::PasswordTooShort);
        }
        self.check_not_too_long(password)
    }

    /// The upper bound alone: what sign-in and change-password's current password get.
    fn check_not_too_long(&self, password: &str) -> Result<(), SessionError> {
        if password.encode_utf16().count() > self.inner.email_password.max_password_length {
            return Err(SessionError::PasswordTooLong);
        }
        Ok(())
    }

    /// Whether `password` matches `stored`; a malformed stored hash matches nothing.
    async fn password_matches(
        &self,
        password: String,
        stored: String,
    ) -> Result<bool, SessionError> {
        match self.inner.hasher.verify(password, stored).await {
            Ok(ok) => Ok(ok),
            Err(PasswordError::Malformed) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) fn new_session(
        &self,
        user_id: &str,
        remember: bool,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Session {
        let mut extra = Map::new();
        for (name, field) in &self.inner.fields {
            extra.insert(
                name.clone(),
                field.default_value.clone().unwrap_or(Value::Null),
            );
        }
        Session {
            id: self.new_id(),
            token: generate_id(),
            user_id: user_id.to_owned(),
            expires_at: self.inner.policy.expiry(now, remember),
            created_at: now,
            updated_at: now,
            ip_address: Some(client.ip_address.clone()),
            user_agent: Some(
                limits::cut(&client.user_agent, limits::MAX_USER_AGENT_BYTES).to_owned(),
            ),
            extra,
        }
    }

    /// Creates a user with a credential account and, unless auto sign-in is off, a
    /// session. Returns the new session token (if any) and the user.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn sign_up(
        &self,
        input: SignUp,
        client: &ClientInfo,
        cred: &Credential,
        out: &mut Vec<CookieOp>,
    ) -> Result<(Option<String>, User), SessionError> {
        let inner = &self.inner;
        if !inner.email_password_enabled || inner.email_password.disable_sign_up {
            return Err(SessionError::SignUpDisabled);
        }
        self.check_password_length(&input.password)?;
        let mut extra = self.user_input(&input.extra, Action::Create)?;
        // Every column comes back, unset ones as null, as the row Better Auth reads back.
        for (name, _) in &inner.user_fields {
            extra.entry(name.clone()).or_insert(Value::Null);
        }
        if let Some(role) = &inner.default_role {
            // The admin plugin gives every new user its default role.
            extra.insert("role".into(), Value::String(role.clone()));
        }
        let email = input.email.to_lowercase();
        if inner.store.user_by_email(&email).await?.is_some() {
            return Err(SessionError::UserExists);
        }
        let hash = inner.hasher.hash(input.password).await?;
        let now = inner.clock.now();
        let mut user = User {
            id: self.new_id(),
            name: input.name,
            email,
            email_verified: false,
            image: input.image,
            created_at: now,
            updated_at: now,
            extra,
        };
        let account = NewCredentialAccount {
            id: self.new_id(),
            password_hash: hash,
        };
        let mut session = inner
            .email_password
            .auto_sign_in
            .then(|| self.new_session(&user.id, input.remember_me, client, now));
        let ctx = EventContext::current().unwrap_or_default().signing_in();
        match ctx
            .scope(
                inner
                    .store
                    .create_user(&mut user, &account, session.as_mut(), now),
            )
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(SessionError::UserExists),
            Err(e) => {
                return Err(SessionError::from_store(
                    e,
                    "sign-up could not write the user",
                    SessionError::CreateUserFailed,
                ))
            }
        }
        tracing::debug!(user_id = %user.id, "user created");
        match session {
            Some(s) => {
                crate::metrics::session_created();
                let req = cred.cookies();
                let had_flag = self.has_dont_remember(req);
                self.set_session_cookie(&s, &user, !input.remember_me, had_flag, req, out);
                Ok((Some(s.token), user))
            }
            None => Ok((None, user)),
        }
    }

    /// Checks email and password and creates a session. Unknown users cost a hash too,
    /// so response time does not reveal which emails exist.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn sign_in(
        &self,
        input: SignIn,
        client: &ClientInfo,
        cred: &Credential,
        out: &mut Vec<CookieOp>,
    ) -> Result<(String, User), SessionError> {
        let inner = &self.inner;
        if !inner.email_password_enabled {
            return Err(SessionError::EmailPasswordDisabled);
        }
        self.check_not_too_long(&input.password)?;
        let email = input.email.to_lowercase();
        let found = inner.store.user_by_email(&email).await?;
        let (mut user, stored) = match found {
            Some((user, Some(stored))) => (user, stored),
            other => {
                inner.hasher.hash(input.password).await?;
                let user_id = other.as_ref().map(|(u, _)| u.id.as_str());
                self.sign_in_failed(user_id, SignInFailure::UnknownUser, client)
                    .await;
                return Err(SessionError::InvalidCredentials);
            }
        };
        if !self
            .password_matches(input.password, stored.clone())
            .await?
        {
            self.sign_in_failed(Some(&user.id), SignInFailure::WrongPassword, client)
                .await;
            return Err(SessionError::InvalidCredentials);
        }
        if let Err(e) = self.admit(&mut user).await {
            if matches!(e, SessionError::Banned(_)) {
                self.sign_in_failed(Some(&user.id), SignInFailure::Banned, client)
                    .await;
            }
            return Err(e);
        }
        let now = inner.clock.now();
        let mut session = self.new_session(&user.id, input.remember_me, client, now);
        self.create_capped(&mut session, now).await?;
        self.password_still(&user.id, &stored, &session.token)
            .await?;
        crate::metrics::session_created();
        tracing::debug!(user_id = %user.id, session_id = %session.id, "signed in");
        let req = cred.cookies();
        let had_flag = self.has_dont_remember(req);
        self.set_session_cookie(&session, &user, !input.remember_me, had_flag, req, out);
        Ok((session.token, user))
    }

    /// Writes a sign-in's session, under `session.max_per_user` when set: the sessions it
    /// ends to make room are revoked as any revocation is (deny set here, the store's
    /// announcement for the other replicas).
    async fn create_capped(
        &self,
        session: &mut Session,
        now: DateTime<Utc>,
    ) -> Result<(), SessionError> {
        let store = &self.inner.store;
        // Sessions it ends make room for this one.
        let ctx = EventContext::because(Reason::Limit).signing_in();
        let res = match self.inner.cap {
            None => ctx
                .scope(store.create_session(session, now))
                .await
                .map(|()| Capped::Created(Vec::new())),
            Some(cap) => {
                ctx.scope(store.create_session_capped(session, cap, now))
                    .await
            }
        };
        match res {
            Ok(Capped::Created(gone)) => {
                if !gone.is_empty() {
                    tracing::debug!(user_id = %session.user_id, ended = gone.len(), "session limit ended the oldest sessions");
                }
                self.note_revoked(&gone);
                Ok(())
            }
            Ok(Capped::Refused) => Err(SessionError::TooManySessions),
            Err(e) => Err(SessionError::from_store(
                e,
                "sign-in could not create its session",
                SessionError::CreateSessionFailed,
            )),
        }
    }

    /// A sign-in verified a password it read before hashing, which takes long enough for
    /// a change-password (with `revokeOtherSessions`) to commit in between and delete
    /// "every" session before this one was written. So the password is read again once
    /// the session exists: if it changed, the session goes and the sign-in fails. Either
    /// the change sees this session and deletes it, or this read sees the change.
    async fn password_still(
        &self,
        user_id: &str,
        verified: &str,
        token: &str,
    ) -> Result<(), SessionError> {
        let store = &self.inner.store;
        let now = store.credential_password(user_id).await;
        if matches!(&now, Ok(Some(Some(h))) if h == verified) {
            return Ok(());
        }
        self.note_revoked(&[token.to_owned()]);
        let withdrawn = EventContext::because(Reason::PasswordChange)
            .scope(store.delete_session(token, self.now()))
            .await;
        if let Err(e) = withdrawn {
            tracing::error!(error = %e, "sign-in could not withdraw its session");
        }
        match now {
            Err(e) => Err(SessionError::from_store(
                e,
                "sign-in could not read the password again",
                SessionError::CreateSessionFailed,
            )),
            Ok(_) => Err(SessionError::InvalidCredentials),
        }
    }

    /// Deletes the request's session (if any) and expires the cookies. When the store
    /// cannot delete it, the error is answered and the cookies are kept: the client is told
    /// it is still signed in and can try again, rather than believing a session is over
    /// that a copy of its cookie could still use.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn sign_out(
        &self,
        cred: &Credential,
        out: &mut Vec<CookieOp>,
    ) -> Result<(), SessionError> {
        let inner = &self.inner;
        if let Some(token) = cred.token(&inner.names, &inner.keys).valid() {
            // Refused here at once whatever happens next.
            self.note_revoked(std::slice::from_ref(&token));
            EventContext::because(Reason::SignOut)
                .scope(inner.store.delete_session(&token, self.now()))
                .await?;
        }
        self.delete_session_cookies(cred.cookies(), out);
        Ok(())
    }

    /// Changes the password after checking the current one. With `revoke_others`, every
    /// session of the user (the caller's too) is replaced by a single new one, atomically.
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %cur.user.id))]
    pub async fn change_password(
        &self,
        cur: &Current,
        change: PasswordChange,
        client: &ClientInfo,
        cred: &Credential,
        out: &mut Vec<CookieOp>,
    ) -> Result<Option<String>, SessionError> {
        let inner = &self.inner;
        let PasswordChange {
            current_password,
            new_password,
            revoke_others,
        } = change;
        self.check_password_length(&new_password)?;
        self.check_not_too_long(&current_password)?;
        let Some(Some(stored)) = inner.store.credential_password(&cur.user.id).await? else {
            return Err(SessionError::NoCredentialAccount);
        };
        let new_hash = inner.hasher.hash(new_password).await?;
        if !self.password_matches(current_password, stored).await? {
            return Err(SessionError::WrongPassword);
        }
        // A new session is created as sign-in creates one: refused to a banned user, whose
        // row is read again (the resolved copy may be a Redis or cache snapshot); checked
        // before the password changes, so that a refusal leaves nothing half-done.
        if revoke_others && inner.banned_message.is_some() {
            match inner.store.user_by_email(&cur.user.email).await? {
                Some((mut user, _)) if user.id == cur.user.id => self.admit(&mut user).await?,
                _ => return Err(SessionError::UserGone),
            }
        }
        let now = inner.clock.now();
        inner
            .store
            .set_password(&cur.user.id, &new_hash, now)
            .await?;
        if !revoke_others {
            return Ok(None);
        }
        let mut session = self.new_session(&cur.user.id, true, client, now);
        match EventContext::because(Reason::PasswordChange)
            .scope(
                inner
                    .store
                    .replace_user_sessions(&cur.user.id, &mut session, now),
            )
            .await
        {
            Ok(gone) => self.note_revoked(&gone),
            Err(e) => {
                return Err(SessionError::from_store(
                    e,
                    "change-password could not replace sessions",
                    SessionError::ReplaceSessionsFailed,
                ))
            }
        }
        crate::metrics::session_created();
        self.set_session_cookie(
            &session,
            &cur.user,
            cur.dont_remember,
            cur.dont_remember,
            cred.cookies(),
            out,
        );
        Ok(Some(session.token))
    }
}
