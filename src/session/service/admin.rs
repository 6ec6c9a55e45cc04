//! The admin plugin's session operations (Better Auth's `admin()`): permissions from the
//! default roles and `admin_user_ids`, listing and revoking another user's sessions, bans,
//! roles, and impersonation. Every ended session goes through [`SessionService::note_revoked`]
//! (the deny set); the stores announce it on the revocation feeds.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

use super::{ClientInfo, Current, SessionService};
use crate::model::{Session, User};
use crate::session::cookies::{CookieKind, CookieOp, Credential};
use crate::session::{limits, SessionError};
use crate::store::outbox::{EventContext, Reason};
use crate::store::UserChange;

/// A permission of Better Auth's default statements (`user:[…]`, `session:[…]`) that the
/// session routes check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// `session: ["list"]`.
    ListSessions,
    /// `session: ["revoke"]`.
    RevokeSessions,
    /// `user: ["ban"]`.
    Ban,
    /// `user: ["set-role"]`.
    SetRole,
    /// `user: ["impersonate"]`.
    Impersonate,
}

/// Why an admin operation was refused (Better Auth's admin error codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// The caller lacks the permission the route needs.
    #[error("not allowed")]
    NotAllowed(Permission),
    /// No user with that id.
    #[error("user not found")]
    UserNotFound,
    /// An admin tried to ban themselves.
    #[error("cannot ban yourself")]
    BanYourself,
    /// The target is an admin and the caller may not impersonate admins.
    #[error("cannot impersonate admins")]
    ImpersonateAdmin,
    /// Stop-impersonating from a session that is not an impersonation.
    #[error("not impersonating")]
    NotImpersonating,
    /// Stop-impersonating found no admin (user or session) to return to.
    #[error("admin session not found")]
    AdminSessionGone,
    /// Stop-impersonating: the impersonating admin no longer exists.
    #[error("admin user not found")]
    AdminUserGone,
}

/// Better Auth's `hasPermission` over its default roles: `admin_user_ids` hold every
/// permission; otherwise any of the user's roles (comma-separated, `default_role` when
/// unset) must grant it, and only the role "admin" grants any (never impersonating admins).
pub fn has_permission(
    settings: &crate::config::AdminSettings,
    user: &User,
    impersonate_admins: bool,
) -> bool {
    if settings.admin_user_ids.contains(&user.id) {
        return true;
    }
    !impersonate_admins && roles_of(settings, user).any(|r| r == "admin")
}

/// The user's roles: its `role` split on commas, else the default role.
fn roles_of<'a>(
    settings: &'a crate::config::AdminSettings,
    user: &'a User,
) -> impl Iterator<Item = &'a str> {
    let role = match user.extra.get("role") {
        Some(Value::String(r)) if !r.is_empty() => r.as_str(),
        _ => settings.default_role.as_str(),
    };
    role.split(',')
}

/// Whether a user counts as an admin for impersonation (one of `admin_roles`, trimmed, or
/// in `admin_user_ids`).
fn is_admin(settings: &crate::config::AdminSettings, user: &User) -> bool {
    roles_of(settings, user).any(|r| settings.admin_roles.iter().any(|a| a.trim() == r))
        || settings.admin_user_ids.contains(&user.id)
}

/// A ban to write: reason and lifetime as sent (`banExpiresIn`, seconds).
#[derive(Debug, Clone, Default)]
pub struct BanInput {
    /// `banReason`; the default reason when absent or empty.
    pub reason: Option<String>,
    /// `banExpiresIn` (seconds; 0 or absent: the default lifetime).
    pub expires_in: Option<f64>,
}

/// The signed `admin_session` value: the admin's token and, when their session was not
/// remembered, the `dont_remember` value ("true").
fn admin_cookie_value(token: &str, dont_remember: bool) -> String {
    format!("{token}:{}", if dont_remember { "true" } else { "" })
}

impl SessionService {
    /// Whether the admin plugin (and so its routes) is on.
    pub fn admin_enabled(&self) -> bool {
        self.inner.admin.enabled
    }

    fn admin_settings(&self) -> &crate::config::AdminSettings {
        &self.inner.admin
    }

    /// Refuses a caller without `p`.
    pub fn require(&self, cur: &Current, p: Permission) -> Result<(), SessionError> {
        if has_permission(self.admin_settings(), &cur.user, false) {
            Ok(())
        } else {
            Err(AdminError::NotAllowed(p).into())
        }
    }

    async fn target(&self, user_id: &str) -> Result<User, SessionError> {
        self.inner
            .store
            .find_user(user_id)
            .await?
            .ok_or(SessionError::Admin(AdminError::UserNotFound))
    }

    /// Every live session of a user (impersonations included).
    pub async fn admin_list_sessions(
        &self,
        cur: &Current,
        user_id: &str,
    ) -> Result<Vec<Session>, SessionError> {
        self.require(cur, Permission::ListSessions)?;
        Ok(self
            .inner
            .store
            .list_sessions(user_id, self.now(), limits::MAX_LISTED_SESSIONS)
            .await?)
    }

    /// Ends one session, whoever holds it (unknown tokens are success, as in Better Auth).
    pub async fn admin_revoke_session(
        &self,
        cur: &Current,
        token: &str,
    ) -> Result<(), SessionError> {
        self.require(cur, Permission::RevokeSessions)?;
        // Denied first: a cached copy is refused from now, whatever the store does next.
        self.note_revoked(std::slice::from_ref(&token.to_owned()));
        EventContext::because(Reason::Admin)
            .by(&cur.user.id)
            .scope(self.inner.store.delete_session(token, self.now()))
            .await?;
        Ok(())
    }

    /// Ends every session of a user.
    pub async fn admin_revoke_sessions(
        &self,
        cur: &Current,
        user_id: &str,
    ) -> Result<(), SessionError> {
        self.require(cur, Permission::RevokeSessions)?;
        self.end_all(
            user_id,
            EventContext::because(Reason::Admin).by(&cur.user.id),
        )
        .await
    }

    async fn end_all(&self, user_id: &str, why: EventContext) -> Result<(), SessionError> {
        let gone = why
            .scope(self.inner.store.delete_user_sessions(user_id, self.now()))
            .await?;
        self.note_revoked(&gone);
        Ok(())
    }

    async fn set_user_fields(
        &self,
        user_id: &str,
        fields: &Map<String, Value>,
    ) -> Result<User, SessionError> {
        let change = UserChange {
            name: None,
            image: None,
            fields,
        };
        self.inner
            .store
            .update_user(user_id, &change, self.now())
            .await?
            .ok_or(SessionError::Admin(AdminError::UserNotFound))
    }

    /// Bans a user (reason, expiry) and ends every session of theirs.
    pub async fn ban_user(
        &self,
        cur: &Current,
        user_id: &str,
        input: BanInput,
    ) -> Result<User, SessionError> {
        self.require(cur, Permission::Ban)?;
        self.target(user_id).await?;
        if user_id == cur.user.id {
            return Err(AdminError::BanYourself.into());
        }
        let settings = self.admin_settings();
        let reason = input
            .reason
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| settings.default_ban_reason.clone());
        // JavaScript truthiness: 0 (and absent) fall back to the default lifetime.
        let secs = match input.expires_in {
            Some(s) if s != 0.0 && !s.is_nan() => Some(s),
            _ => (settings.default_ban_expires_in > 0)
                .then_some(settings.default_ban_expires_in as f64),
        };
        let expires = match secs {
            Some(s) => Value::String(iso(self.after(s)?)),
            None => Value::Null,
        };
        let mut fields = Map::new();
        fields.insert("banned".into(), Value::Bool(true));
        fields.insert("banReason".into(), Value::String(reason));
        fields.insert("banExpires".into(), expires);
        let user = self.set_user_fields(user_id, &fields).await?;
        self.end_all(user_id, EventContext::because(Reason::Ban).by(&cur.user.id))
            .await?;
        tracing::info!(admin = %cur.user.id, user_id, "user banned");
        Ok(user)
    }

    /// `now + secs`, refused (as a validation error) outside the dates JavaScript holds.
    fn after(&self, secs: f64) -> Result<DateTime<Utc>, SessionError> {
        let ms = secs * 1000.0;
        // ±8.64e15 ms is JavaScript's Date range.
        if !ms.is_finite() || ms.abs() > 8.64e15 {
            return Err(SessionError::InvalidField(
                "[body.banExpiresIn] Invalid date".into(),
            ));
        }
        self.now()
            .checked_add_signed(Duration::milliseconds(ms as i64))
            .ok_or_else(|| SessionError::InvalidField("[body.banExpiresIn] Invalid date".into()))
    }

    /// Lifts a user's ban.
    pub async fn unban_user(&self, cur: &Current, user_id: &str) -> Result<User, SessionError> {
        self.require(cur, Permission::Ban)?;
        self.target(user_id).await?;
        let mut fields = Map::new();
        fields.insert("banned".into(), Value::Bool(false));
        fields.insert("banExpires".into(), Value::Null);
        fields.insert("banReason".into(), Value::Null);
        self.set_user_fields(user_id, &fields).await
    }

    /// Sets a user's role (several joined with commas).
    pub async fn set_role(
        &self,
        cur: &Current,
        user_id: &str,
        role: String,
    ) -> Result<User, SessionError> {
        self.require(cur, Permission::SetRole)?;
        self.target(user_id).await?;
        let mut fields = Map::new();
        fields.insert("role".into(), Value::String(role));
        self.set_user_fields(user_id, &fields).await
    }

    /// Starts impersonating a user: a session of theirs marked `impersonatedBy`, lasting
    /// `impersonation_session_duration`, not remembered; the admin's session token goes
    /// into the signed `admin_session` cookie.
    pub async fn impersonate(
        &self,
        cur: &Current,
        user_id: &str,
        client: &ClientInfo,
        cred: &Credential,
        out: &mut Vec<CookieOp>,
    ) -> Result<(Session, User), SessionError> {
        self.require(cur, Permission::Impersonate)?;
        let mut target = self.target(user_id).await?;
        let settings = self.admin_settings();
        if is_admin(settings, &target)
            && !settings.allow_impersonating_admins
            && !has_permission(settings, &cur.user, true)
        {
            return Err(AdminError::ImpersonateAdmin.into());
        }
        // As any new session: refused to a banned user.
        self.admit(&mut target).await?;
        let now = self.now();
        let mut session = self.new_session(&target.id, false, client, now);
        session.expires_at = now
            + Duration::seconds(
                i64::try_from(settings.impersonation_session_duration).unwrap_or(i64::MAX),
            );
        session
            .extra
            .insert("impersonatedBy".into(), Value::String(cur.user.id.clone()));
        let ctx = EventContext::current().unwrap_or_default().by(&cur.user.id);
        if let Err(e) = ctx
            .scope(self.inner.store.create_session(&mut session, now))
            .await
        {
            return Err(SessionError::from_store(
                e,
                "impersonate-user could not create its session",
                SessionError::CreateUserFailed,
            ));
        }
        crate::metrics::session_created();
        tracing::info!(admin = %cur.user.id, user_id, "impersonation started");
        let req = cred.cookies();
        let dont = self.has_dont_remember(req);
        self.delete_session_cookies(req, out);
        out.push(CookieOp::Set {
            kind: CookieKind::AdminSession,
            value: self
                .inner
                .keys
                .sign(&admin_cookie_value(&cur.session.token, dont)),
            max_age: Some(self.inner.policy.cookie_max_age()),
        });
        self.set_session_cookie(&session, &target, true, false, req, out);
        Ok((session, target))
    }

    /// Ends an impersonation: its session is deleted and the admin's session (from the
    /// signed `admin_session` cookie, which must be a live session of the impersonating
    /// admin) is restored.
    pub async fn stop_impersonating(
        &self,
        cur: &Current,
        cred: &Credential,
        out: &mut Vec<CookieOp>,
    ) -> Result<(Session, User), SessionError> {
        let Some(Value::String(admin_id)) = cur.session.extra.get("impersonatedBy") else {
            return Err(AdminError::NotImpersonating.into());
        };
        if admin_id.is_empty() {
            return Err(AdminError::NotImpersonating.into());
        }
        if self.inner.store.find_user(admin_id).await?.is_none() {
            return Err(AdminError::AdminUserGone.into());
        }
        let req = cred.cookies();
        let value = req
            .signed(&self.inner.names.admin_session, &self.inner.keys)
            .valid()
            .ok_or(SessionError::Admin(AdminError::AdminSessionGone))?;
        let (token, dont) = value.split_once(':').unwrap_or((value.as_str(), ""));
        let found = self.inner.store.find_session(token).await?;
        let now = self.now();
        let (admin_session, admin_user) = match found {
            Some((s, u))
                if s.user_id == *admin_id
                    && s.expires_at > now
                    && !self.inner.revocations.is_revoked(token) =>
            {
                (s, u)
            }
            _ => return Err(AdminError::AdminSessionGone.into()),
        };
        self.note_revoked(std::slice::from_ref(&cur.session.token));
        EventContext::because(Reason::SignOut)
            .by(admin_id)
            .scope(self.inner.store.delete_session(&cur.session.token, now))
            .await?;
        tracing::info!(admin = %admin_id, "impersonation stopped");
        let dont = !dont.is_empty();
        // The impersonation's own "don't remember" flag is in the request: a remembered
        // admin session expires it, as Better Auth does.
        let had_flag = self.has_dont_remember(req);
        self.set_session_cookie(&admin_session, &admin_user, dont, had_flag, req, out);
        out.push(CookieOp::Expire(CookieKind::AdminSession));
        Ok((admin_session, admin_user))
    }
}

/// ISO 8601 with milliseconds, as Better Auth writes dates.
fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AdminSettings;

    fn user(id: &str, role: Option<&str>) -> User {
        let mut u = User {
            id: id.into(),
            name: String::new(),
            email: String::new(),
            email_verified: false,
            image: None,
            created_at: DateTime::<Utc>::MIN_UTC,
            updated_at: DateTime::<Utc>::MIN_UTC,
            extra: Map::new(),
        };
        if let Some(r) = role {
            u.extra.insert("role".into(), Value::String(r.into()));
        }
        u
    }

    #[test]
    fn permissions_follow_the_default_roles() {
        let mut s = AdminSettings::default();
        assert!(has_permission(&s, &user("a", Some("admin")), false));
        assert!(has_permission(&s, &user("a", Some("user,admin")), false));
        assert!(!has_permission(&s, &user("a", Some("admin")), true));
        assert!(!has_permission(&s, &user("a", Some("user")), false));
        assert!(!has_permission(&s, &user("a", Some("owner")), false));
        // A space is part of the role name, as in Better Auth.
        assert!(!has_permission(&s, &user("a", Some("user, admin")), false));
        assert!(!has_permission(&s, &user("a", None), false));
        s.admin_user_ids = vec!["root".into()];
        assert!(has_permission(&s, &user("root", None), true));
        s.default_role = "admin".into();
        assert!(has_permission(&s, &user("b", None), false));
    }

    #[test]
    fn admins_are_by_role_or_by_id() {
        let mut s = AdminSettings::default();
        assert!(is_admin(&s, &user("a", Some("user,admin"))));
        assert!(!is_admin(&s, &user("a", Some("user"))));
        s.admin_user_ids = vec!["x".into()];
        assert!(is_admin(&s, &user("x", Some("user"))));
    }

    #[test]
    fn the_admin_cookie_value_is_token_colon_flag() {
        assert_eq!(admin_cookie_value("t", false), "t:");
        assert_eq!(admin_cookie_value("t", true), "t:true");
    }
}
