//! The session service: sign-up, sign-in, sign-out, session resolution with sliding
//! refresh, listing, revocation and updates, with Better Auth's rules.
//!
//! Every method that can change cookies takes what the request presented
//! ([`Credential`](crate::session::cookies::Credential))
//! and pushes [`CookieOp`]s onto `out`; the HTTP layer writes them into the response,
//! errors included (Better Auth does the same). Errors are
//! [`SessionError`](crate::session::SessionError)s.
//!
//! One file per concern: [`resolve`] (get-session), [`cached`] (the cookie cache),
//! [`credentials`] (email and password), [`manage`] (listing, revocation, updates).

pub mod admin;
mod audit;
mod backend;
mod cached;
mod credentials;
mod fields;
mod manage;
mod multi;
mod resolve;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::config::{AdditionalField, EmailPasswordSettings, Settings};
use crate::crypto::password::Hasher;
use crate::crypto::secrets::SecretSet;
use crate::crypto::signed::{Keyring, Verified};
use crate::model::{Session, SessionJson, User, UserJson};
use crate::session::cookies::{CookieKind, CookieNames, CookieOp, RequestCookies};
use crate::session::policy::Policy;
use crate::session::revocation::Revocations;
use crate::store::Store;
pub use audit::{MAX_FAILED_SIGN_IN_EVENTS_PER_SEC, MAX_HISTORY_PAGE};
pub use backend::{BanRequest, Cursor, MAX_BAN_REASON_CHARS, MAX_PAGE, MAX_USERS_PER_CALL};
use cached::CacheSetup;
pub use fields::json_type;

/// What the HTTP layer knows of the client, recorded on new sessions.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Normalised client address ("" when unknown).
    pub ip_address: String,
    /// `User-Agent` ("" when absent).
    pub user_agent: String,
}

/// How a session is looked up.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResolveOptions {
    /// Do not slide the expiry (`?disableRefresh`).
    pub disable_refresh: bool,
    /// Bypass any cookie cache (`?disableCookieCache`, sensitive endpoints).
    pub disable_cookie_cache: bool,
    /// A `GET /get-session` in deferred-refresh mode: report, never write.
    pub defer_read_only: bool,
}

/// The signed-in session of a request.
#[derive(Debug, Clone)]
pub struct Current {
    /// The session row (shared: a cache hit hands out the remembered copy, not a clone).
    pub session: Arc<Session>,
    /// Its user.
    pub user: Arc<User>,
    /// In deferred-refresh mode, whether the client should POST to refresh.
    pub needs_refresh: Option<bool>,
    /// Whether the request carried a valid `dont_remember` cookie.
    pub dont_remember: bool,
    /// For a cookie-cache hit, its remembered answer body ([`AnswerMemo`]); `None` for a
    /// session read from the store.
    pub memo: Option<Arc<AnswerMemo>>,
}

impl Current {
    /// Served from the cookie cache (Better Auth then outputs its schema's key order).
    pub fn from_cache(&self) -> bool {
        self.memo.is_some()
    }
}

/// What is answered for a remembered cookie-cache value, made on its first hit: the
/// `get-session` body, and the pieces of forward auth's answer. They depend only on the
/// cached session and user (and the configuration): every later request with the same
/// cookie sends the same bytes without making them again.
#[derive(Debug, Default)]
pub struct AnswerMemo {
    body: std::sync::OnceLock<bytes::Bytes>,
    pieces: std::sync::OnceLock<Box<[bytes::Bytes]>>,
}

impl AnswerMemo {
    /// The answer pieces another route makes from the session and user alone (forward
    /// auth's identity header values), made by `make` on first use.
    pub fn pieces(&self, make: impl FnOnce() -> Box<[bytes::Bytes]>) -> &[bytes::Bytes] {
        self.pieces.get_or_init(make)
    }
}

/// `get-session`'s body, serialised straight from the resolved session.
pub struct SessionBody<'a> {
    session: SessionJson<'a>,
    user: UserJson<'a>,
    needs_refresh: Option<bool>,
}

impl serde::Serialize for SessionBody<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("session", &self.session)?;
        m.serialize_entry("user", &self.user)?;
        if let Some(n) = self.needs_refresh {
            m.serialize_entry("needsRefresh", &n)?;
        }
        m.end()
    }
}

/// Sign-up input, validated for shape by the HTTP layer.
#[derive(Debug, Clone)]
pub struct SignUp {
    /// Display name.
    pub name: String,
    /// Email as sent.
    pub email: String,
    /// Password as sent.
    pub password: String,
    /// Avatar URL.
    pub image: Option<String>,
    /// `rememberMe` (default true).
    pub remember_me: bool,
    /// The body's other keys: additional user fields, checked by the service.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Sign-in input.
#[derive(Debug, Clone)]
pub struct SignIn {
    /// Email as sent.
    pub email: String,
    /// Password as sent.
    pub password: String,
    /// `rememberMe` (default true).
    pub remember_me: bool,
}

/// Change-password input.
#[derive(Debug, Clone)]
pub struct PasswordChange {
    /// The password the user has now.
    pub current_password: String,
    /// The password to set.
    pub new_password: String,
    /// Replace every session of the user by one new session.
    pub revoke_others: bool,
}

/// The service; cheap to clone.
#[derive(Clone)]
pub struct SessionService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Signs with the current secret, verifies under every listed version.
    keys: Keyring,
    names: CookieNames,
    policy: Policy,
    hasher: Hasher,
    email_password: EmailPasswordSettings,
    email_password_enabled: bool,
    /// Additional session fields (plugins' included).
    fields: Vec<(String, AdditionalField)>,
    hidden_fields: Vec<String>,
    /// Additional user fields (plugins' included).
    user_fields: Vec<(String, AdditionalField)>,
    hidden_user_fields: Vec<String>,
    /// With the admin plugin: the role of new users.
    default_role: Option<String>,
    /// With the admin plugin: the message refusing a banned user.
    banned_message: Option<String>,
    /// The admin plugin's settings (its routes are served only when enabled).
    admin: crate::config::AdminSettings,
    /// How row ids are made.
    ids: crate::config::GenerateId,
    list_tokens: crate::config::ListSessionsTokens,
    cache: CacheSetup,
    revocations: Arc<Revocations>,
    /// With the multi-session plugin: accounts per browser at most.
    multi_max: Option<usize>,
    /// `session.max_per_user`, when set.
    cap: Option<crate::store::SessionCap>,
    /// The event outbox, when events are recorded.
    outbox: Option<Arc<dyn crate::store::outbox::Outbox>>,
    /// Caps the failed sign-ins recorded.
    failed_window: audit::FailedSignInWindow,
}

/// The per-user session limit of the settings (`max_per_user = 0`: none).
fn session_cap(s: &crate::config::SessionSettings) -> Option<crate::store::SessionCap> {
    use crate::config::MaxPerUserAction as A;
    use crate::store::Overflow;
    (s.max_per_user > 0).then(|| crate::store::SessionCap {
        max: usize::try_from(s.max_per_user).unwrap_or(usize::MAX),
        overflow: match s.max_per_user_action {
            A::EndOldest => Overflow::EndOldest,
            A::Refuse => Overflow::Refuse,
        },
    })
}

impl SessionService {
    /// Builds the service from settings, a store, a clock, the secrets (keyed here, once)
    /// and the event outbox when events are recorded (failed sign-ins are written to it,
    /// the audit trail read from it); `None` when the secrets cannot key HMAC.
    pub fn new(
        settings: &Settings,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        secrets: &SecretSet,
        revocations: Arc<Revocations>,
        outbox: Option<Arc<dyn crate::store::outbox::Outbox>>,
    ) -> Option<Self> {
        let keys = secrets.keyring()?;
        let ep = settings.email_and_password.clone();
        let limit = if ep.hash_concurrency == 0 {
            // Every CPU: the hashing threads run at a lower priority, so the requests
            // that only read sessions get a core first (see `Hasher`). Each running hash
            // holds 32 MiB.
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            ep.hash_concurrency
        };
        let hidden = |fields: &[(String, AdditionalField)]| -> Vec<String> {
            fields
                .iter()
                .filter(|(_, f)| !f.returned)
                .map(|(k, _)| k.clone())
                .collect()
        };
        let fields = settings.session_fields();
        let hidden_fields = hidden(&fields);
        let user_fields = settings.user_fields();
        let hidden_user_fields = hidden(&user_fields);
        let admin = &settings.plugins.admin;
        Some(Self {
            inner: Arc::new(Inner {
                store,
                clock,
                keys,
                names: CookieNames::new(settings),
                policy: Policy::new(&settings.session),
                hasher: Hasher::new(limit),
                email_password: ep,
                email_password_enabled: settings.email_password_enabled(),
                fields,
                hidden_fields,
                user_fields,
                hidden_user_fields,
                default_role: admin.enabled.then(|| admin.default_role.clone()),
                banned_message: admin.enabled.then(|| admin.banned_user_message.clone()),
                admin: admin.clone(),
                ids: settings.advanced.database.generate_id,
                list_tokens: settings.session.list_sessions_tokens,
                cache: CacheSetup::new(settings, secrets),
                revocations,
                multi_max: settings
                    .plugins
                    .multi_session
                    .enabled
                    .then_some(settings.plugins.multi_session.maximum_sessions),
                cap: session_cap(&settings.session),
                outbox,
                failed_window: audit::FailedSignInWindow::default(),
            }),
        })
    }

    /// Counts revoked sessions and denies their cached copies at once on this replica
    /// (other replicas learn through the revocation listeners).
    fn note_revoked(&self, tokens: &[String]) {
        crate::metrics::sessions_revoked(tokens.len() as u64);
        for t in tokens {
            self.inner.revocations.deny(t);
        }
    }

    /// The deny set of revoked tokens.
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.inner.revocations
    }

    /// Names of the string-typed additional session fields.
    pub fn text_fields(&self) -> Vec<&str> {
        self.inner
            .fields
            .iter()
            .filter(|(_, f)| f.kind == crate::config::FieldType::String)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// `token.signature` for a bare session token (bearer tokens).
    pub fn sign_token(&self, token: &str) -> String {
        self.inner.keys.sign(token)
    }

    /// The session-token cookie value an `Authorization` value stands for under Better
    /// Auth's bearer plugin, checked with the current secret ([`crate::session::bearer`]).
    pub fn bearer_cookie(&self, authorization: &str, require_signature: bool) -> Option<String> {
        crate::session::bearer::cookie_value(
            authorization,
            self.inner.keys.current(),
            require_signature,
        )
    }

    /// Whether a valid cookie cache is the session even for sensitive routes (stateless).
    pub fn cache_is_authoritative(&self) -> bool {
        self.inner.cache.authoritative
    }

    /// The cookie names in use.
    pub fn cookie_names(&self) -> &CookieNames {
        &self.inner.names
    }

    /// The lifecycle rules in use.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// A session as clients see it (hidden additional fields removed).
    pub fn output<'a>(&'a self, s: &'a Session) -> SessionJson<'a> {
        SessionJson {
            session: s,
            hidden: &self.inner.hidden_fields,
            schema_order: false,
            show_token: true,
        }
    }

    /// A session as `list-sessions` shows it to the holder of `cur`: its token only as
    /// `session.list_sessions_tokens` allows (every one, the caller's own, or none).
    pub fn listed<'a>(&'a self, s: &'a Session, cur: &Current) -> SessionJson<'a> {
        use crate::config::ListSessionsTokens as T;
        let show_token = match self.inner.list_tokens {
            T::All => true,
            T::Current => s.token == cur.session.token,
            T::None => false,
        };
        SessionJson {
            show_token,
            ..self.output(s)
        }
    }

    /// A user as responses show it (fields with `returned = false` left out).
    pub fn user_output<'a>(&'a self, u: &'a User) -> UserJson<'a> {
        UserJson {
            user: u,
            hidden: &self.inner.hidden_user_fields,
            schema_order: false,
        }
    }

    /// `get-session`'s JSON body for a resolved session: [`Self::session_json`], made once
    /// per remembered cookie-cache value.
    pub fn session_answer(&self, c: &Current) -> Result<bytes::Bytes, serde_json::Error> {
        let write = || -> Result<bytes::Bytes, serde_json::Error> {
            let mut buf = Vec::with_capacity(1024);
            serde_json::to_writer(&mut buf, &self.session_json(c))?;
            Ok(buf.into())
        };
        // A cache hit's answer has no needsRefresh: the memo is for that shape alone.
        let Some(memo) = c.memo.as_ref().filter(|_| c.needs_refresh.is_none()) else {
            return write();
        };
        if let Some(body) = memo.body.get() {
            return Ok(body.clone());
        }
        let body = write()?;
        let _ = memo.body.set(body.clone());
        Ok(body)
    }

    /// The `{session, user}` body of a resolved session: Better Auth's schema key order when
    /// it came from the cookie cache, its database order otherwise.
    pub fn session_json<'a>(&'a self, c: &'a Current) -> SessionBody<'a> {
        SessionBody {
            session: SessionJson {
                session: &c.session,
                hidden: &self.inner.hidden_fields,
                schema_order: c.from_cache(),
                show_token: true,
            },
            user: UserJson {
                user: &c.user,
                hidden: &self.inner.hidden_user_fields,
                schema_order: c.from_cache(),
            },
            needs_refresh: c.needs_refresh,
        }
    }

    /// A new row id (`advanced.database.generate_id`): 32 random alphanumerics, a random
    /// UUID, or none under `serial`, whose ids the store assigns as it writes the row.
    /// Session tokens are always the first.
    fn new_id(&self) -> String {
        match self.inner.ids {
            crate::config::GenerateId::Default => crate::crypto::token::generate_id(),
            crate::config::GenerateId::Uuid => uuid::Uuid::new_v4().to_string(),
            crate::config::GenerateId::Serial => String::new(),
        }
    }

    /// Each backend and whether it answers.
    pub async fn health(&self) -> Vec<(&'static str, bool)> {
        self.inner.store.health().await
    }

    /// What readiness reports without depending on it (a read replica's state).
    pub fn health_notes(&self) -> Vec<(&'static str, &'static str)> {
        self.inner.store.notes()
    }

    // ---- cookies -------------------------------------------------------------------

    /// Expires the session cookies: token, cache (and every cache chunk the request
    /// carried), and `dont_remember`.
    fn delete_session_cookies(&self, req: &RequestCookies, out: &mut Vec<CookieOp>) {
        // As Better Auth, cookie operations queued earlier in this request are dropped
        // first (the session cookies'; multi-session cookies are others and stay), so a
        // response never carries a fresh cache for a session it ends.
        out.retain(CookieOp::is_multi);
        out.push(CookieOp::Expire(CookieKind::Token));
        out.push(CookieOp::Expire(CookieKind::Cache));
        let carried = req.carried(&self.inner.names.data);
        out.extend(carried.kinds().map(CookieOp::Expire));
        out.push(CookieOp::Expire(CookieKind::DontRemember));
    }

    /// Issues the session cookie (and `dont_remember` for a session that is not
    /// remembered), then the cookie cache. `had_flag`: the request carried a valid
    /// `dont_remember` cookie (already verified by the caller).
    fn set_session_cookie(
        &self,
        session: &Session,
        user: &User,
        dont: bool,
        had_flag: bool,
        req: &RequestCookies,
        out: &mut Vec<CookieOp>,
    ) {
        let key = &self.inner.keys;
        out.push(CookieOp::Set {
            kind: CookieKind::Token,
            value: key.sign(&session.token),
            max_age: (!dont).then(|| self.inner.policy.cookie_max_age()),
        });
        if dont {
            out.push(CookieOp::Set {
                kind: CookieKind::DontRemember,
                value: key.sign("true"),
                max_age: None,
            });
        } else if had_flag {
            // A remembered sign-in replaces a stale "don't remember" flag (Better Auth 1.7.25).
            out.push(CookieOp::Expire(CookieKind::DontRemember));
        }
        self.write_cache(session, user, dont, req, out);
    }

    fn has_dont_remember(&self, req: &RequestCookies) -> bool {
        self.dont_remember_flag(req).valid().is_some()
    }

    /// The request's `dont_remember` cookie, verified.
    fn dont_remember_flag(&self, req: &RequestCookies) -> Verified {
        req.signed(&self.inner.names.dont_remember, &self.inner.keys)
    }
}
