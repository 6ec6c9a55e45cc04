//! The event outbox: lifecycle events written in the same transaction as the change they
//! describe, then claimed by any replica's delivery loop for the webhooks, and kept for the
//! audit trail.
//!
//! In SQL the rows are written by triggers on `session`, `user` and `account` (installed
//! when events are on, see `sql/events.rs`), so a change made by a Better Auth app sharing
//! the database yields its event too. sessiond's own writes hand the trigger an
//! [`EventContext`] (why, by whom, from where) inside the same transaction.
//!
//! Delivery state lives on the row: `pending` until every endpoint has it (or it is given
//! up), `attempts`, `nextAt` for the backoff, `leaseUntil` while a replica holds it, and
//! `delivered`, the endpoints done. A claim sets the lease in one statement over rows
//! locked `FOR UPDATE SKIP LOCKED` (PostgreSQL), so two replicas never hold one row; a
//! replica that dies mid-delivery lets its lease lapse and another delivers again (at least
//! once; the event id is the idempotency key).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;

/// Why sessions end, as `session.revoked` events (and the audit trail) name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The user signed out.
    SignOut,
    /// The user revoked one of their sessions (or all of them).
    Revoke,
    /// The user revoked every session but the current one.
    RevokeOthers,
    /// A password change ended the other sessions.
    PasswordChange,
    /// An admin (or a backend through the service API) ended it.
    Admin,
    /// The user was banned.
    Ban,
    /// It had expired and was removed.
    Expired,
    /// A newer sign-in pushed it out (`session.max_per_user`).
    Limit,
}

impl Reason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SignOut => "sign_out",
            Reason::Revoke => "revoke",
            Reason::RevokeOthers => "revoke_others",
            Reason::PasswordChange => "password_change",
            Reason::Admin => "admin",
            Reason::Ban => "ban",
            Reason::Expired => "expired",
            Reason::Limit => "limit",
        }
    }
}

/// What a write tells the event triggers: never a token, a cookie value or a password.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EventContext {
    /// Why sessions ended by this write end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The user who acted, when not the sessions' owner (an admin, an impersonator).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The requesting client's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The requesting client's user agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ua: Option<String>,
    /// A session this write inserts is a sign-in (`user.signed_in` too).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sign_in: bool,
    /// A refresh this write makes is announced (`session.refreshed`, opt-in).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub refreshed: bool,
}

tokio::task_local! {
    static CONTEXT: EventContext;
}

impl EventContext {
    /// The context of the current task, if one was set.
    pub fn current() -> Option<EventContext> {
        CONTEXT.try_with(Clone::clone).ok()
    }

    /// Runs `fut` with this context: the stores' writes inside it carry it.
    pub async fn scope<F: std::future::Future>(self, fut: F) -> F::Output {
        CONTEXT.scope(self, fut).await
    }

    /// The current context (or an empty one) with `reason` set.
    pub fn because(reason: Reason) -> EventContext {
        let mut c = Self::current().unwrap_or_default();
        c.reason = Some(reason);
        c
    }

    /// This context, naming `user_id` as the one who acted.
    pub fn by(mut self, user_id: &str) -> EventContext {
        self.by = Some(user_id.to_owned());
        self
    }

    /// This context, for a write that signs a user in.
    pub fn signing_in(mut self) -> EventContext {
        self.sign_in = true;
        self
    }
}

/// An event written by sessiond itself rather than by a trigger (`user.sign_in_failed`,
/// which changes no row; events of sessions kept in Redis only).
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// `user.sign_in_failed`, `session.created`, …
    pub kind: &'static str,
    /// The user concerned, when known.
    pub user_id: Option<String>,
    /// The session concerned, when any.
    pub session_id: Option<String>,
    /// The event's `data` object (JSON).
    pub data: serde_json::Value,
}

/// An event as a delivery loop claims it.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Row id (the order of events).
    pub id: i64,
    /// The event's unique id: the webhook id and idempotency key.
    pub event_id: String,
    /// `session.revoked`, …
    pub kind: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The event's `data` object, as JSON text.
    pub data: String,
    /// Delivery rounds already made, this claim included.
    pub attempts: u32,
    /// Endpoints that already have it.
    pub delivered: Vec<String>,
}

/// What became of a claimed event.
#[derive(Debug, Clone)]
pub enum Settled {
    /// Every endpoint has it (or none wants it).
    Done,
    /// Some endpoints failed: try again at `at`; `delivered` lists the endpoints done.
    Retry {
        /// When to try again.
        at: DateTime<Utc>,
        /// Endpoints done so far.
        delivered: Vec<String>,
    },
    /// Given up after too many attempts (counted as dropped).
    GiveUp,
}

/// A user's session history entry (the audit trail), newest first.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// The event's id.
    pub id: String,
    /// `session.created` or `session.revoked`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The session.
    pub session_id: Option<String>,
    /// The event's data.
    pub data: serde_json::Value,
}

/// The outbox over the database.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Writes events sessiond makes itself.
    async fn record(&self, events: &[NewEvent], now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Claims up to `limit` events due at `now` (oldest first) for `lease`, counting an
    /// attempt on each; no two replicas hold one event at once.
    async fn claim(
        &self,
        limit: usize,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// Records what became of a claimed event and releases it.
    async fn settle(&self, id: i64, outcome: &Settled) -> Result<(), StoreError>;

    /// Events still to deliver.
    async fn pending(&self) -> Result<u64, StoreError>;

    /// Gives up the oldest pending events beyond `cap`; how many.
    async fn drop_beyond(&self, cap: u64) -> Result<u64, StoreError>;

    /// Deletes events older than `before` (only those settled, when `settled_only`); how
    /// many.
    async fn purge(&self, before: DateTime<Utc>, settled_only: bool) -> Result<u64, StoreError>;

    /// A user's session history: `session.created` and `session.revoked`, newest first,
    /// before row id `before` when given, at most `limit`.
    async fn history(
        &self,
        user_id: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, AuditEntry)>, StoreError>;
}
