//! Storage: the [`Store`] traits the session service talks to ([`UserStore`],
//! [`SessionStore`], [`Health`]), and their implementations: SQL over PostgreSQL or
//! embedded SQLite ([`sql`]), process memory ([`memory`]), and Redis as Better Auth's
//! secondary storage around either ([`redis`]). All SQL and Redis of the service lives
//! under this module; nothing above it sees a query or a connection.

pub mod audit;
pub mod feed;
pub mod keys;
pub mod limit;
pub mod memory;
pub mod outbox;
pub mod rate;
pub mod redis;
pub mod redis_cluster;
pub mod redis_conn;
pub mod redis_feed;
pub mod redis_sentinel;
pub mod sql;
pub mod webhooks;

pub use self::limit::{Capped, Overflow, SessionCap};
pub use self::redis::{RedisOptions, RedisStore};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::model::{Session, User};

/// A boxed error cause.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A storage failure, classified by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write (e.g. an email already taken).
    #[error("conflict")]
    Conflict,
    /// The backend cannot be reached or has no free connection: retry later (503).
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// Anything else (500).
    #[error("storage error: {0}")]
    Backend(#[source] Cause),
}

/// The outcome of a sliding refresh.
#[derive(Debug, Clone)]
pub enum Touched {
    /// The expiry moved; the updated session.
    Refreshed(Box<Session>),
    /// Another request (or replica) refreshed it first; nothing written.
    AlreadyFresh,
    /// The session no longer exists.
    Gone,
}

/// The credential account written at sign-up (`providerId = 'credential'`).
#[derive(Debug, Clone)]
pub struct NewCredentialAccount {
    /// Row id.
    pub id: String,
    /// The scrypt hash string.
    pub password_hash: String,
}

/// Which sessions [`PrimaryStore::end_sessions`] ends.
#[derive(Debug, Clone, Copy)]
pub enum EndTarget<'a> {
    /// One session by token.
    Token(&'a str),
    /// Every live session of a user, except one token if given.
    User(&'a str, Option<&'a str>),
}

impl<'a> EndTarget<'a> {
    /// The user whose sessions end, when they end by user.
    pub fn user_id(&self) -> Option<&'a str> {
        match self {
            EndTarget::User(u, _) => Some(u),
            EndTarget::Token(_) => None,
        }
    }
}

// The contract every store holds: times come from the caller (`now`, from the injected
// clock; no implementation reads the time itself), and a method that writes several
// records writes all or none of them.
//
// Ids: a store writes the ids it is given, except where it assigns them itself (Better
// Auth's `generateId: "serial"`, for which the service leaves every id empty): a SQL store
// opened for serial ids always takes the database's; the memory store numbers each table
// from 1; the Redis store gives a session kept in Redis only a random id, as Better Auth
// does. A store that assigns an id writes it into the record it was handed, so that the
// caller answers and caches the record as stored.

/// Whether the backends answer, for `/readyz` and sign-in's probes.
#[async_trait]
pub trait Health: Send + Sync + 'static {
    /// Checks that the backend answers and takes writes.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Each backend and whether it answers, for `/readyz`.
    async fn health(&self) -> Vec<(&'static str, bool)> {
        vec![("database", self.ping().await.is_ok())]
    }

    /// What `/readyz` reports without it deciding readiness (a read replica's state: the
    /// primary serves whatever it cannot).
    fn notes(&self) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }
}

/// Users and their credential accounts: what sign-up, sign-in, change-password and
/// update-user need.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Writes a user, its credential account and optionally its first session (whose
    /// `userId` becomes the user's id) in one transaction. [`StoreError::Conflict`] when the
    /// email is taken. Ids the store assigns are written into `user` and `session`.
    async fn create_user(
        &self,
        user: &mut User,
        account: &NewCredentialAccount,
        session: Option<&mut Session>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Finds a user by (lower-cased) email, with the password of its credential account.
    async fn user_by_email(
        &self,
        email: &str,
    ) -> Result<Option<(User, Option<String>)>, StoreError>;

    /// The credential account's password: `None` without a credential account,
    /// `Some(None)` when it has no password.
    async fn credential_password(
        &self,
        user_id: &str,
    ) -> Result<Option<Option<String>>, StoreError>;

    /// Replaces the credential password.
    async fn set_password(
        &self,
        user_id: &str,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// A user by id (the admin routes act on users by id).
    async fn find_user(&self, id: &str) -> Result<Option<User>, StoreError>;

    /// Applies `change` to a user and sets `updatedAt`; `None` if no such user.
    async fn update_user(
        &self,
        user_id: &str,
        change: &UserChange<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError>;
}

/// What an update of a user changes.
#[derive(Debug, Clone, Copy)]
pub struct UserChange<'a> {
    /// The new name.
    pub name: Option<&'a str>,
    /// The new image; `Some(None)` clears it.
    pub image: Option<Option<&'a str>>,
    /// Additional fields to set (configured ones only, already checked against their types).
    pub fields: &'a Map<String, Value>,
}

impl UserChange<'_> {
    /// Applies the change to a user held in memory (or in a cached copy).
    pub fn apply(&self, u: &mut User, now: DateTime<Utc>) {
        if let Some(n) = self.name {
            n.clone_into(&mut u.name);
        }
        if let Some(i) = self.image {
            u.image = i.map(String::from);
        }
        for (k, v) in self.fields {
            u.extra.insert(k.clone(), v.clone());
        }
        u.updated_at = now;
    }
}

/// Sessions: what resolving, refreshing, listing and revoking them need.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Inserts a session (of an existing user); an id the store assigns is written into it.
    async fn create_session(
        &self,
        session: &mut Session,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Inserts a session as [`Self::create_session`] does, under `cap`: in one atomic step
    /// (per user, across every replica sharing the store) it counts the user's live
    /// sessions, ends the oldest beyond the cap ([`limit::to_end`]) through the same path
    /// as any revocation (announced to every replica), and inserts, or refuses and writes
    /// nothing.
    async fn create_session_capped(
        &self,
        session: &mut Session,
        cap: SessionCap,
        now: DateTime<Utc>,
    ) -> Result<Capped, StoreError>;

    /// A session and its user, by token, in one round trip.
    async fn find_session(&self, token: &str) -> Result<Option<(Session, User)>, StoreError>;

    /// Slides a session's expiry to `expires_at`, but only while it is still due (its
    /// expiry is at most `due_by`), so concurrent refreshes write once. A session ended in
    /// place ([`PrimaryStore::end_sessions`]) is [`Touched::Gone`].
    async fn touch_session(
        &self,
        token: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
        due_by: DateTime<Utc>,
    ) -> Result<Touched, StoreError>;

    /// Sets additional fields of a session; `None` if it no longer exists.
    async fn update_session_fields(
        &self,
        token: &str,
        fields: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError>;

    /// Deletes a session by token (absent is not an error).
    async fn delete_session(&self, token: &str, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Deletes a session by token only if it belongs to `user_id`; whether one was deleted.
    async fn delete_user_session(
        &self,
        user_id: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Deletes every session of a user; the deleted tokens.
    async fn delete_user_sessions(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError>;

    /// Deletes every session of a user but `keep_token`; the deleted tokens.
    async fn delete_other_sessions(
        &self,
        user_id: &str,
        keep_token: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError>;

    /// Atomically deletes every session of a user and inserts `new` (an id the store
    /// assigns is written into it); the deleted tokens. When the insert fails, nothing is
    /// deleted.
    async fn replace_user_sessions(
        &self,
        user_id: &str,
        new: &mut Session,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError>;

    /// The live session with this id (expiring after `now`), as (token, user id): how the
    /// service API revokes a session it knows by id only.
    async fn session_by_id(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(String, String)>, StoreError>;

    /// The user's sessions that expire after `now`, oldest first: the newest `limit` of
    /// them (the answer's size must not grow with whatever number a client created).
    async fn list_sessions(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Session>, StoreError>;
}

/// What the session service needs from storage.
pub trait Store: Health + UserStore + SessionStore {}

impl<T: Health + UserStore + SessionStore + ?Sized> Store for T {}

/// What a secondary store ([`redis::RedisStore`]) needs from the database it wraps, beyond
/// [`Store`]: the service itself never reads a user alone nor keeps ended sessions.
#[async_trait]
pub trait PrimaryStore: Store {
    /// A user by id (to write a session's user snapshot next to it).
    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError>;

    /// Ends sessions in place (`expiresAt = updatedAt = now`) instead of deleting them, for
    /// `preserve_session_in_database`: one token, or every live session of a user
    /// except `except`. Returns the tokens ended.
    async fn end_sessions(
        &self,
        target: EndTarget<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError>;

    /// As [`SessionStore::create_session_capped`], ending the surplus sessions in place
    /// instead of deleting them.
    async fn end_and_create_session_capped(
        &self,
        session: &mut Session,
        cap: SessionCap,
        now: DateTime<Utc>,
    ) -> Result<Capped, StoreError>;

    /// As [`SessionStore::replace_user_sessions`], ending the old sessions in place
    /// instead of deleting them; the ended tokens.
    async fn end_and_replace_user_sessions(
        &self,
        user_id: &str,
        new: &mut Session,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError>;
}
