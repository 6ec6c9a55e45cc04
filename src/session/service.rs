//! The session service: sign-up, sign-in, sign-out, session resolution with sliding
//! refresh, listing, revocation and updates, with Better Auth's rules and error codes.
//!
//! Every method that can change cookies takes the request's cookies and pushes complete
//! `Set-Cookie` lines onto `out`; the HTTP layer sends them with the response, errors
//! included (Better Auth does the same).

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::clock::Clock;
use crate::config::{field_type_matches, AdditionalField, EmailPasswordSettings, Settings};
use crate::crypto::password::Hasher;
use crate::crypto::signed::SigningKey;
use crate::crypto::token::generate_id;
use crate::error::{codes, ApiError};
use crate::model::{Session, SessionJson, User, UserSchemaOrder};
use crate::session::cache::{CacheCodec, Strategy};
use crate::session::cookies::{CookieConfig, RequestCookies, MAX_CHUNKS};
use crate::session::limits;
use crate::session::policy::Policy;
use crate::session::revocation::Revocations;
use crate::store::{NewCredentialAccount, Store, StoreError, Touched};

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
    /// Served from the cookie cache (Better Auth then outputs its schema's key order).
    pub from_cache: bool,
}

/// `get-session`'s body, serialised straight from the resolved session.
pub struct SessionBody<'a> {
    session: SessionJson<'a>,
    user: &'a User,
    needs_refresh: Option<bool>,
}

impl serde::Serialize for SessionBody<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("session", &self.session)?;
        if self.session.schema_order {
            m.serialize_entry("user", &UserSchemaOrder(self.user))?;
        } else {
            m.serialize_entry("user", self.user)?;
        }
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
    key: SigningKey,
    cookies: CookieConfig,
    policy: Policy,
    hasher: Hasher,
    email_password: EmailPasswordSettings,
    email_password_enabled: bool,
    fields: Vec<(String, AdditionalField)>,
    hidden_fields: Vec<String>,
    list_tokens: crate::config::ListSessionsTokens,
    cache: CacheSetup,
    revocations: Arc<Revocations>,
}

/// The effective cookie-cache settings (Better Auth's defaults for stateless mode applied).
struct CacheSetup {
    enabled: bool,
    codec: CacheCodec,
    /// Cookie Max-Age of a remembered session's cache.
    max_age: u64,
    version: String,
    /// Stateless refresh: re-issue when less than this many ms of the window remain.
    refresh_within_ms: Option<i64>,
    /// Without a server store the cookie is the session, even for sensitive routes.
    authoritative: bool,
    /// The longest window of a cache value this service mints (ms): `max_age`, or the
    /// codecs' fallback for a session that is not remembered.
    longest_window_ms: i64,
    /// Largest value written: the accepted request head less 4 KiB for the request line,
    /// the other headers and cookies, so that the browser can still send it back.
    max_bytes: usize,
    memo: Memo,
}

impl CacheSetup {
    fn new(settings: &Settings, secret: &str) -> Self {
        let cc = &settings.session.cookie_cache;
        let stateless = settings.is_stateless();
        let max_age = settings.cache_max_age();
        let strategy = cc.strategy.unwrap_or(if stateless {
            Strategy::Jwe
        } else {
            Strategy::Compact
        });
        // Better Auth forces refreshCache off whenever a database is configured.
        let refresh = stateless && cc.refresh_cache.unwrap_or(true);
        let refresh_within_ms = refresh.then(|| {
            i64::try_from(max_age / 5)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000)
        });
        Self {
            enabled: cc.enabled || stateless,
            codec: CacheCodec::new(strategy, secret, &[]),
            max_age,
            version: cc.version.clone(),
            refresh_within_ms,
            authoritative: stateless,
            max_bytes: settings.server.max_header_bytes.saturating_sub(4096),
            longest_window_ms: i64::try_from(crate::session::cache::longest_window_secs(max_age))
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000)
                .saturating_add(1000),
            memo: Memo::default(),
        }
    }
}

/// A verified cookie-cache value, decoded.
struct Decoded {
    session: Arc<Session>,
    user: Arc<User>,
    version: Option<String>,
    window_end_ms: i64,
    minted_ms: Option<i64>,
}

/// Verified cache values by their exact text, so that a client sending the same cookie
/// again costs a lookup instead of a decode and a signature check. Only the cryptography
/// and parsing are remembered: token, version, windows and revocation are checked on
/// every request. Bounded; emptied when full.
#[derive(Default)]
struct Memo {
    map: std::sync::Mutex<std::collections::HashMap<String, Arc<Decoded>>>,
}

/// Entries kept: with values of at most [`MEMO_MAX_VALUE`] bytes, a few MiB at most.
const MEMO_CAP: usize = 1024;
/// Longer values are decoded every time rather than remembered.
const MEMO_MAX_VALUE: usize = 4096;

impl Memo {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Arc<Decoded>>> {
        match self.map.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn get(&self, raw: &str) -> Option<Arc<Decoded>> {
        self.lock().get(raw).cloned()
    }

    fn put(&self, raw: &str, d: Arc<Decoded>) {
        if raw.len() > MEMO_MAX_VALUE {
            return;
        }
        let mut map = self.lock();
        if map.len() >= MEMO_CAP {
            map.clear();
        }
        map.insert(raw.to_owned(), d);
    }
}

/// Better Auth's per-cookie size limit, attributes included.
const MAX_COOKIE_SIZE: usize = 4050;

impl SessionService {
    /// Builds the service from settings, a store, a clock and the signing key.
    pub fn new(
        settings: &Settings,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        secret: &str,
        revocations: Arc<Revocations>,
    ) -> Result<Self, hmac::digest::InvalidLength> {
        let key = SigningKey::new(secret.as_bytes())?;
        let ep = settings.email_and_password.clone();
        let limit = if ep.hash_concurrency == 0 {
            // Half the CPUs: hashes (32 MiB and tens of ms each) must leave room for the
            // requests that only read sessions.
            std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
        } else {
            ep.hash_concurrency
        };
        let fields: Vec<_> = settings
            .session
            .additional_fields
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let hidden_fields = fields
            .iter()
            .filter(|(_, f)| !f.returned)
            .map(|(k, _)| k.clone())
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock,
                key,
                cookies: CookieConfig::new(settings),
                policy: Policy::new(&settings.session),
                hasher: Hasher::new(limit),
                email_password: ep,
                email_password_enabled: settings.email_password_enabled(),
                fields,
                hidden_fields,
                list_tokens: settings.session.list_sessions_tokens,
                cache: CacheSetup::new(settings, secret),
                revocations,
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
        self.inner.key.sign(token)
    }

    /// Whether a valid cookie cache is the session even for sensitive routes (stateless).
    pub fn cache_is_authoritative(&self) -> bool {
        self.inner.cache.authoritative
    }

    /// The cookie names and attributes in use.
    pub fn cookies(&self) -> &CookieConfig {
        &self.inner.cookies
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

    /// The `{session, user}` body of a resolved session: Better Auth's schema key order when
    /// it came from the cookie cache, its database order otherwise.
    pub fn session_json<'a>(&'a self, c: &'a Current) -> SessionBody<'a> {
        SessionBody {
            session: SessionJson {
                session: &c.session,
                hidden: &self.inner.hidden_fields,
                schema_order: c.from_cache,
                show_token: true,
            },
            user: &c.user,
            needs_refresh: c.needs_refresh,
        }
    }

    /// Each backend and whether it answers.
    pub async fn health(&self) -> Vec<(&'static str, bool)> {
        self.inner.store.health().await
    }

    // ---- cookies -------------------------------------------------------------------

    /// Expires the session cookies: token, cache (and every cache chunk the request
    /// carried), and `dont_remember`.
    pub fn delete_session_cookies(&self, req: &RequestCookies, out: &mut Vec<String>) {
        let c = &self.inner.cookies;
        // As Better Auth, earlier Set-Cookie lines for these cookies are dropped first, so
        // a response never carries a fresh cache for a session it ends.
        // (every cache chunk is named `<data_name>.<n>`)
        out.retain(|line| {
            let name = line.split('=').next().unwrap_or("");
            name != c.token_name
                && name != c.dont_remember_name
                && name != c.data_name
                && !name
                    .strip_prefix(c.data_name.as_str())
                    .is_some_and(|r| r.starts_with('.'))
        });
        out.push(c.expire(&c.token_name));
        out.push(c.expire(&c.data_name));
        for name in req.names_with_chunks(&c.data_name) {
            out.push(c.expire(&name));
        }
        out.push(c.expire(&c.dont_remember_name));
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
        out: &mut Vec<String>,
    ) {
        let c = &self.inner.cookies;
        let signed = self.inner.key.sign(&session.token);
        let max_age = (!dont).then(|| self.inner.policy.cookie_max_age());
        out.push(c.set(&c.token_name, &signed, max_age));
        if dont {
            out.push(c.set(&c.dont_remember_name, &self.inner.key.sign("true"), None));
        } else if had_flag {
            // A remembered sign-in replaces a stale "don't remember" flag (Better Auth 1.7.25).
            out.push(c.expire(&c.dont_remember_name));
        }
        self.write_cache(session, user, dont, req, out);
    }

    /// Writes the `session_data` cookie (chunked when too large), if the cache is on.
    fn write_cache(
        &self,
        session: &Session,
        user: &User,
        dont_remember: bool,
        req: &RequestCookies,
        out: &mut Vec<String>,
    ) {
        let cache = &self.inner.cache;
        if !cache.enabled {
            return;
        }
        let max_age = (!dont_remember).then_some(cache.max_age);
        let encoded = cache.codec.encode(
            &self.output(session).to_json(),
            &user.to_json(),
            &cache.version,
            self.inner.clock.now_ms(),
            max_age,
        );
        let value = match encoded {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "cookie cache not written");
                return;
            }
        };
        let c = &self.inner.cookies;
        let name = &c.data_name;
        let overhead = c.set(&format!("{name}.99"), "", max_age).len();
        let chunk_size = MAX_COOKIE_SIZE.saturating_sub(overhead).max(1);
        let mut written: Vec<String> = Vec::new();
        let count = value.len().div_ceil(chunk_size);
        if value.len() > cache.max_bytes || count > MAX_CHUNKS {
            // The browser could not send it back: answer from the store instead.
            static WARNED: std::sync::atomic::AtomicBool =
                std::sync::atomic::AtomicBool::new(false);
            if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(
                    bytes = value.len(),
                    "cookie cache too large for a request head; not written (logged once)"
                );
            }
        } else if value.len() <= chunk_size {
            out.push(c.set(name, &value, max_age));
            written.push(name.clone());
        } else {
            // The value is ASCII (base64url and dots), so byte chunks are char chunks.
            for (i, part) in value.as_bytes().chunks(chunk_size).enumerate() {
                let chunk_name = format!("{name}.{i}");
                out.push(c.set(&chunk_name, &String::from_utf8_lossy(part), max_age));
                written.push(chunk_name);
            }
        }
        for stale in req.names_with_chunks(name) {
            if !written.contains(&stale) {
                out.push(c.expire(&stale));
            }
        }
    }

    /// The request's cache value: the whole cookie, or its chunks joined in order.
    fn read_cache<'r>(&self, req: &'r RequestCookies) -> Option<Cow<'r, str>> {
        let name = &self.inner.cookies.data_name;
        if let Some(v) = req.get(name) {
            return Some(v);
        }
        let set = req.chunk_set(name);
        if set == 0 {
            return None;
        }
        let joined: String = (0..MAX_CHUNKS)
            .filter(|i| set & (1 << i) != 0)
            .filter_map(|i| req.get(&format!("{name}.{i}")))
            .collect();
        Some(Cow::Owned(joined))
    }

    fn expire_cache(&self, req: &RequestCookies, out: &mut Vec<String>) {
        let c = &self.inner.cookies;
        out.push(c.expire(&c.data_name));
        for name in req.names_with_chunks(&c.data_name) {
            if name != c.data_name {
                out.push(c.expire(&name));
            }
        }
    }

    /// A cached session that Better Auth would accept: verified, same token, same
    /// version, window open, session not expired.
    fn accept_cache(
        &self,
        raw: &str,
        token: &str,
        now_ms: i64,
    ) -> Option<(Arc<Session>, Arc<User>, i64)> {
        let cache = &self.inner.cache;
        let d = match cache.memo.get(raw) {
            Some(d) => {
                // The codec's own time check, skipped on a memo hit: jwt refuses at `exp`.
                if cache.codec.strategy() == Strategy::Jwt
                    && d.window_end_ms.div_euclid(1000) <= now_ms.div_euclid(1000)
                {
                    return None;
                }
                d
            }
            None => {
                let p = cache.codec.decode(raw, now_ms).ok()?;
                let d = Arc::new(Decoded {
                    session: Arc::new(Session::from_json(&p.session)?),
                    user: Arc::new(User::from_json(&p.user)?),
                    version: p.version,
                    window_end_ms: p.expires_at_ms,
                    minted_ms: p.updated_at,
                });
                cache.memo.put(raw, d.clone());
                d
            }
        };
        if d.session.token != token
            || d.version.as_deref().unwrap_or("1") != cache.version
            || d.window_end_ms < now_ms
            // A window longer than any this service mints (a peer's or another replica's
            // longer max_age) would outlive the memory of revocations: check the store.
            || d.window_end_ms - now_ms > cache.longest_window_ms
            || d.session.expires_at.timestamp_millis() < now_ms
            || self
                .inner
                .policy
                .past_cap(&d.session, crate::clock::from_ms(now_ms))
            || !self.inner.revocations.allows_cached(token, d.minted_ms)
        {
            return None;
        }
        Some((d.session.clone(), d.user.clone(), d.window_end_ms))
    }

    fn has_dont_remember(&self, req: &RequestCookies) -> bool {
        req.signed(&self.inner.cookies.dont_remember_name, &self.inner.key)
            .valid()
            .is_some()
    }

    // ---- resolution ----------------------------------------------------------------

    /// Finds the request's session, as `get-session` does: verifies the signed token,
    /// reads the store, deletes an expired session, and slides the expiry when due
    /// (re-issuing the cookie). `Ok(None)` means signed out.
    pub async fn resolve(
        &self,
        req: &RequestCookies,
        opts: ResolveOptions,
        out: &mut Vec<String>,
    ) -> Result<Option<Current>, ApiError> {
        let inner = &self.inner;
        let c = &inner.cookies;
        if !inner.cache.enabled {
            // Without a cookie cache, stray cache cookies are only noise: expire them.
            for name in req.names_with_chunks(&c.data_name) {
                out.push(c.expire(&name));
            }
        }
        let Some(token) = req.signed(&c.token_name, &inner.key).valid() else {
            return Ok(None);
        };
        let dont_remember = self.has_dont_remember(req);
        let current = |session: Arc<Session>, user: Arc<User>, needs_refresh, from_cache| Current {
            session,
            user,
            needs_refresh,
            dont_remember,
            from_cache,
        };
        let now = inner.clock.now();
        if inner.cache.enabled && !opts.disable_cookie_cache {
            if let Some(raw) = self.read_cache(req) {
                let now_ms = now.timestamp_millis();
                match self.accept_cache(&raw, &token, now_ms) {
                    Some((session, user, window_end)) => {
                        crate::metrics::cache_hit();
                        let refresh = inner.cache.refresh_within_ms;
                        if refresh.is_some_and(|r| window_end - now_ms < r) {
                            self.set_session_cookie(
                                &session,
                                &user,
                                dont_remember,
                                dont_remember,
                                req,
                                out,
                            );
                        }
                        return Ok(Some(current(session, user, None, true)));
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
        // failover to a lagging replica) still holds.
        let Some((session, user)) = found.filter(|_| !inner.revocations.is_revoked(&token)) else {
            self.delete_session_cookies(req, out);
            return Ok(None);
        };
        let (session, user) = (Arc::new(session), Arc::new(user));
        if session.is_expired(now) || inner.policy.past_cap(&session, now) {
            self.delete_session_cookies(req, out);
            if !opts.defer_read_only {
                inner.store.delete_session(&token, now).await?;
            }
            return Ok(None);
        }
        if dont_remember || opts.disable_refresh {
            return Ok(Some(current(session, user, None, false)));
        }
        let due = inner.policy.needs_refresh(&session, now);
        if opts.defer_read_only {
            self.write_cache(&session, &user, false, req, out);
            return Ok(Some(current(session, user, Some(due), false)));
        }
        if !due {
            self.write_cache(&session, &user, false, req, out);
            return Ok(Some(current(session, user, None, false)));
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
                Ok(Some(current(updated, user, None, false)))
            }
            Touched::AlreadyFresh => {
                // Another request or replica refreshed it a moment ago.
                self.write_cache(&session, &user, false, req, out);
                Ok(Some(current(session, user, None, false)))
            }
            Touched::Gone => {
                // Deleted between the read and the refresh: fail closed.
                self.delete_session_cookies(req, out);
                Err(codes::FAILED_TO_GET_SESSION)
            }
        }
    }

    /// Rejects sessions older than `fresh_age` (403 `SESSION_NOT_FRESH`).
    pub fn require_fresh(&self, cur: &Current) -> Result<(), ApiError> {
        if self.inner.policy.is_stale(&cur.session, self.now()) {
            Err(codes::SESSION_NOT_FRESH)
        } else {
            Ok(())
        }
    }

    // ---- sign-up, sign-in, sign-out -------------------------------------------------

    fn check_password_length(&self, password: &str) -> Result<(), ApiError> {
        // Better Auth measures JavaScript string length (UTF-16 code units).
        let len = password.encode_utf16().count();
        let ep = &self.inner.email_password;
        if len < ep.min_password_length {
            return Err(codes::PASSWORD_TOO_SHORT);
        }
        if len > ep.max_password_length {
            return Err(codes::PASSWORD_TOO_LONG);
        }
        Ok(())
    }

    fn new_session(
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
            id: generate_id(),
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
    pub async fn sign_up(
        &self,
        input: SignUp,
        client: &ClientInfo,
        req: &RequestCookies,
        out: &mut Vec<String>,
    ) -> Result<(Option<String>, User), ApiError> {
        let inner = &self.inner;
        if !inner.email_password_enabled || inner.email_password.disable_sign_up {
            return Err(codes::EMAIL_PASSWORD_SIGN_UP_DISABLED);
        }
        self.check_password_length(&input.password)?;
        let email = input.email.to_lowercase();
        if inner.store.user_by_email(&email).await?.is_some() {
            return Err(codes::USER_ALREADY_EXISTS);
        }
        let hash = inner.hasher.hash(input.password).await?;
        let now = inner.clock.now();
        let user = User {
            id: generate_id(),
            name: input.name,
            email,
            email_verified: false,
            image: input.image,
            created_at: now,
            updated_at: now,
            extra: Map::new(),
        };
        let account = NewCredentialAccount {
            id: generate_id(),
            password_hash: hash,
        };
        let session = inner
            .email_password
            .auto_sign_in
            .then(|| self.new_session(&user.id, input.remember_me, client, now));
        match inner
            .store
            .create_user(&user, &account, session.as_ref(), now)
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(codes::USER_ALREADY_EXISTS),
            Err(e @ StoreError::Unavailable(_)) => return Err(e.into()),
            Err(e) => {
                tracing::error!(error = %e, "sign-up could not write the user");
                return Err(codes::FAILED_TO_CREATE_USER);
            }
        }
        match session {
            Some(s) => {
                crate::metrics::session_created();
                let had_flag = self.has_dont_remember(req);
                self.set_session_cookie(&s, &user, !input.remember_me, had_flag, req, out);
                Ok((Some(s.token), user))
            }
            None => Ok((None, user)),
        }
    }

    /// Checks email and password and creates a session. Unknown users cost a hash too,
    /// so response time does not reveal which emails exist.
    pub async fn sign_in(
        &self,
        input: SignIn,
        client: &ClientInfo,
        req: &RequestCookies,
        out: &mut Vec<String>,
    ) -> Result<(String, User), ApiError> {
        let inner = &self.inner;
        if !inner.email_password_enabled {
            return Err(codes::EMAIL_PASSWORD_DISABLED);
        }
        let email = input.email.to_lowercase();
        let found = inner.store.user_by_email(&email).await?;
        let (user, stored) = match found {
            Some((user, Some(stored))) => (user, stored),
            _ => {
                inner.hasher.hash(input.password).await?;
                return Err(codes::INVALID_EMAIL_OR_PASSWORD);
            }
        };
        let ok = match inner.hasher.verify(input.password, stored.clone()).await {
            Ok(ok) => ok,
            Err(crate::crypto::password::PasswordError::Malformed) => false,
            Err(e) => return Err(e.into()),
        };
        if !ok {
            return Err(codes::INVALID_EMAIL_OR_PASSWORD);
        }
        let now = inner.clock.now();
        let session = self.new_session(&user.id, input.remember_me, client, now);
        match inner.store.create_session(&session, now).await {
            Ok(()) => {}
            Err(e @ StoreError::Unavailable(_)) => return Err(e.into()),
            Err(e) => {
                tracing::error!(error = %e, "sign-in could not create its session");
                return Err(codes::FAILED_TO_CREATE_SESSION);
            }
        }
        self.password_still(&user.id, &stored, &session.token)
            .await?;
        crate::metrics::session_created();
        let had_flag = self.has_dont_remember(req);
        self.set_session_cookie(&session, &user, !input.remember_me, had_flag, req, out);
        Ok((session.token, user))
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
    ) -> Result<(), ApiError> {
        let store = &self.inner.store;
        let now = store.credential_password(user_id).await;
        if matches!(&now, Ok(Some(Some(h))) if h == verified) {
            return Ok(());
        }
        self.note_revoked(&[token.to_owned()]);
        if let Err(e) = store.delete_session(token, self.now()).await {
            tracing::error!(error = %e, "sign-in could not withdraw its session");
        }
        match now {
            Err(e @ StoreError::Unavailable(_)) => Err(e.into()),
            Err(e) => {
                tracing::error!(error = %e, "sign-in could not read the password again");
                Err(codes::FAILED_TO_CREATE_SESSION)
            }
            Ok(_) => Err(codes::INVALID_EMAIL_OR_PASSWORD),
        }
    }

    /// Deletes the request's session (if any) and expires the cookies. When the store
    /// cannot delete it, the error is answered and the cookies are kept: the client is told
    /// it is still signed in and can try again, rather than believing a session is over
    /// that a copy of its cookie could still use.
    pub async fn sign_out(
        &self,
        req: &RequestCookies,
        out: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        let inner = &self.inner;
        if let Some(token) = req.signed(&inner.cookies.token_name, &inner.key).valid() {
            // Refused here at once whatever happens next.
            self.note_revoked(std::slice::from_ref(&token));
            inner.store.delete_session(&token, self.now()).await?;
        }
        self.delete_session_cookies(req, out);
        Ok(())
    }

    // ---- listing and revocation -----------------------------------------------------

    /// The user's live sessions.
    pub async fn list_sessions(&self, cur: &Current) -> Result<Vec<Session>, ApiError> {
        self.inner
            .store
            .list_sessions(&cur.user.id, self.now(), limits::MAX_LISTED_SESSIONS)
            .await
            .map_err(|e| match e {
                e @ StoreError::Unavailable(_) => e.into(),
                e => {
                    tracing::error!(error = %e, "list-sessions failed");
                    codes::INTERNAL_SERVER_ERROR
                }
            })
    }

    fn revoke_error(e: StoreError) -> ApiError {
        match e {
            e @ StoreError::Unavailable(_) => e.into(),
            e => {
                tracing::error!(error = %e, "revocation failed");
                codes::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// Revokes one of the user's sessions by token; other users' tokens and unknown
    /// tokens are silently ignored (Better Auth answers success). Revoking the caller's
    /// own session also expires its cookies.
    pub async fn revoke_session(
        &self,
        cur: &Current,
        token: &str,
        req: &RequestCookies,
        out: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        let deleted = self
            .inner
            .store
            .delete_user_session(&cur.user.id, token, self.now())
            .await
            .map_err(Self::revoke_error)?;
        if deleted {
            self.note_revoked(std::slice::from_ref(&token.to_owned()));
        }
        if token == cur.session.token {
            self.delete_session_cookies(req, out);
        }
        Ok(())
    }

    /// The token of one of the user's live sessions, by its id (unknown ids and other
    /// users' sessions give `None`, which revocation treats as success, as for tokens).
    pub async fn token_of(&self, cur: &Current, id: &str) -> Result<Option<String>, ApiError> {
        let sessions = self.list_sessions(cur).await?;
        Ok(sessions.into_iter().find(|s| s.id == id).map(|s| s.token))
    }

    /// Revokes every session of the user, the caller's included (its cookies expire).
    pub async fn revoke_sessions(
        &self,
        cur: &Current,
        req: &RequestCookies,
        out: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        let n = self
            .inner
            .store
            .delete_user_sessions(&cur.user.id, self.now())
            .await
            .map_err(Self::revoke_error)?;
        self.note_revoked(&n);
        self.delete_session_cookies(req, out);
        Ok(())
    }

    /// Revokes every session of the user but the caller's.
    pub async fn revoke_other_sessions(&self, cur: &Current) -> Result<(), ApiError> {
        let n = self
            .inner
            .store
            .delete_other_sessions(&cur.user.id, &cur.session.token, self.now())
            .await
            .map_err(Self::revoke_error)?;
        self.note_revoked(&n);
        Ok(())
    }

    // ---- updates --------------------------------------------------------------------

    /// Sets additional session fields from a JSON object. Core and unknown keys are
    /// dropped; fields with `input = false` sent with a truthy value are refused.
    pub async fn update_session(
        &self,
        cur: &Current,
        body: &Map<String, Value>,
        req: &RequestCookies,
        out: &mut Vec<String>,
    ) -> Result<Session, ApiError> {
        let mut fields = Map::new();
        for (name, field) in &self.inner.fields {
            let Some(v) = body.get(name) else { continue };
            if !field.input {
                if is_truthy(v) {
                    return Err(ApiError::with_message(
                        axum::http::StatusCode::BAD_REQUEST,
                        "FIELD_NOT_ALLOWED",
                        format!("{name} is not allowed to be set"),
                    ));
                }
                continue;
            }
            if let Some(problem) = v
                .as_str()
                .and_then(|t| limits::text_problem(t, limits::MAX_FIELD_CHARS))
            {
                return Err(ApiError::validation(format!("[body.{name}] {problem}")));
            }
            if !v.is_null() && !field_type_matches(field.kind, v) {
                let expected = match field.kind {
                    crate::config::FieldType::String => "string",
                    crate::config::FieldType::Number => "number",
                    crate::config::FieldType::Boolean => "boolean",
                };
                return Err(ApiError::validation(format!(
                    "[body.{name}] Invalid input: expected {expected}, received {}",
                    json_type(v)
                )));
            }
            fields.insert(name.clone(), v.clone());
        }
        if fields.is_empty() {
            return Err(codes::NO_FIELDS_TO_UPDATE);
        }
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
                return Err(codes::FAILED_TO_GET_SESSION);
            }
        };
        self.set_session_cookie(
            &s,
            &cur.user,
            cur.dont_remember,
            cur.dont_remember,
            req,
            out,
        );
        Ok(s)
    }

    /// Updates the user's name and/or image (`Some(None)` clears the image) and
    /// re-issues the session cookie; the session's expiry does not move.
    pub async fn update_user(
        &self,
        cur: &Current,
        name: Option<String>,
        image: Option<Option<String>>,
        req: &RequestCookies,
        out: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        if name.is_none() && image.is_none() {
            return Err(codes::NO_FIELDS_TO_UPDATE);
        }
        let image_ref = image.as_ref().map(|i| i.as_deref());
        let updated = self
            .inner
            .store
            .update_user(&cur.user.id, name.as_deref(), image_ref, self.now())
            .await?;
        let user = match updated {
            Some(u) => u,
            None if self.inner.cache.authoritative => {
                // Stateless and unknown to this process: update the cookie's copy.
                let mut u = User::clone(&cur.user);
                if let Some(n) = name {
                    u.name = n;
                }
                if let Some(i) = image {
                    u.image = i;
                }
                u.updated_at = self.now();
                u
            }
            None => return Err(codes::UNAUTHORIZED),
        };
        self.set_session_cookie(
            &cur.session,
            &user,
            cur.dont_remember,
            cur.dont_remember,
            req,
            out,
        );
        Ok(())
    }

    /// Changes the password after checking the current one. With `revoke_others`, every
    /// session of the user (the caller's too) is replaced by a single new one, atomically.
    pub async fn change_password(
        &self,
        cur: &Current,
        change: PasswordChange,
        client: &ClientInfo,
        req: &RequestCookies,
        out: &mut Vec<String>,
    ) -> Result<Option<String>, ApiError> {
        let inner = &self.inner;
        let PasswordChange {
            current_password,
            new_password,
            revoke_others,
        } = change;
        self.check_password_length(&new_password)?;
        let Some(Some(stored)) = inner.store.credential_password(&cur.user.id).await? else {
            return Err(codes::CREDENTIAL_ACCOUNT_NOT_FOUND);
        };
        let new_hash = inner.hasher.hash(new_password).await?;
        let ok = match inner.hasher.verify(current_password, stored).await {
            Ok(ok) => ok,
            Err(crate::crypto::password::PasswordError::Malformed) => false,
            Err(e) => return Err(e.into()),
        };
        if !ok {
            return Err(codes::INVALID_PASSWORD);
        }
        let now = inner.clock.now();
        inner
            .store
            .set_password(&cur.user.id, &new_hash, now)
            .await?;
        if !revoke_others {
            return Ok(None);
        }
        let session = self.new_session(&cur.user.id, true, client, now);
        match inner
            .store
            .replace_user_sessions(&cur.user.id, &session, now)
            .await
        {
            Ok(gone) => self.note_revoked(&gone),
            Err(e @ StoreError::Unavailable(_)) => return Err(e.into()),
            Err(e) => {
                tracing::error!(error = %e, "change-password could not replace sessions");
                return Err(codes::FAILED_TO_GET_SESSION_500);
            }
        }
        crate::metrics::session_created();
        self.set_session_cookie(
            &session,
            &cur.user,
            cur.dont_remember,
            cur.dont_remember,
            req,
            out,
        );
        Ok(Some(session.token))
    }
}

/// JavaScript truthiness of a JSON value.
fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// zod's name for a JSON value's type.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded() -> Arc<Decoded> {
        let t = chrono::DateTime::UNIX_EPOCH;
        Arc::new(Decoded {
            session: Arc::new(Session {
                id: "s".into(),
                token: "t".into(),
                user_id: "u".into(),
                expires_at: t,
                created_at: t,
                updated_at: t,
                ip_address: None,
                user_agent: None,
                extra: Map::new(),
            }),
            user: Arc::new(User {
                id: "u".into(),
                name: String::new(),
                email: "u@example.com".into(),
                email_verified: false,
                image: None,
                created_at: t,
                updated_at: t,
                extra: Map::new(),
            }),
            version: None,
            window_end_ms: 0,
            minted_ms: None,
        })
    }

    #[test]
    fn the_memo_is_bounded_in_entries_and_value_size() {
        let memo = Memo::default();
        for i in 0..3 * MEMO_CAP {
            memo.put(&format!("value-{i}"), decoded());
            assert!(memo.lock().len() <= MEMO_CAP);
        }
        let long = "x".repeat(MEMO_MAX_VALUE + 1);
        memo.put(&long, decoded());
        assert!(memo.get(&long).is_none(), "long values are not remembered");
        assert!(memo.get(&format!("value-{}", 3 * MEMO_CAP - 1)).is_some());
    }
}
