//! The PostgreSQL read replica (`database.read_url`): [`Routed`] sends get-session's and
//! list-sessions' reads to it while that is safe, and everything else to the primary.
//!
//! Safe means: the replica is within `database.read_max_lag_ms` of the primary (see
//! [`super::lag`]), and has replayed every write this process made to the session or
//! user read (a refresh, a revocation, a changed name must be seen at once by the client
//! that made it). An answer the replica cannot vouch for is asked of the primary again:
//! a session it does not know (created a moment ago), one it says has expired (a refresh
//! it has not replayed yet must not get a live session deleted), one whose user this
//! process just changed. A replica that fails or does not answer within the bound is
//! left for the primary, with no error to the client.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::Postgres;

use super::hot::HotConns;
use super::lag::{spawn_probe, Lag};
use super::{Connected, Shape, SqlStore};
use crate::clock::Clock;
use crate::config::DatabaseSettings;
use crate::model::{Session, User};
use crate::store::{
    Capped, EndTarget, Health, NewCredentialAccount, PrimaryStore, SessionCap, SessionStore,
    StoreError, Touched, UserChange, UserStore,
};

/// Puts a read replica in front of an opened PostgreSQL primary, when `database.read_url`
/// names one. The replica is connected lazily: one down at start is read from once up.
pub async fn with_read_replica(
    mut connected: Connected,
    db: &DatabaseSettings,
    extras: Shape,
    clock: Arc<dyn Clock>,
) -> Result<Connected, StoreError> {
    let (Some(primary_pool), false) = (connected.pg_pool.clone(), db.read_url.is_empty()) else {
        return Ok(connected);
    };
    let Some(primary) = connected.primary_sql.take() else {
        return Ok(connected);
    };
    let opts = PgConnectOptions::from_str(db.read_url.expose_secret())?;
    let acquire = Duration::from_secs(db.acquire_timeout.max(1));
    // One connection probes, the others read.
    let probe_pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(acquire)
        .connect_lazy_with(opts.clone());
    let readers = db.read_max_connections.max(2) - 1;
    let hot = HotConns::new(opts, readers, acquire, &probe_pool);
    let replica = Arc::new(SqlStore::new(probe_pool.clone(), hot, extras));
    let max_lag = Duration::from_millis(db.read_max_lag_ms.max(1));
    let lag = Arc::new(Lag::new(max_lag));
    spawn_probe(lag.clone(), primary_pool, probe_pool, max_lag, acquire);
    connected.store = Arc::new(Routed {
        primary,
        replica,
        lag,
        clock,
        // A replica slower than the bound is no better than a stale one; nor is one that
        // takes a second over one indexed row, whatever the bound.
        read_timeout: max_lag.clamp(Duration::from_millis(100), Duration::from_secs(1)),
    });
    tracing::info!(max_lag_ms = db.read_max_lag_ms, "read replica configured");
    Ok(connected)
}

/// The primary store, with get-session's and list-sessions' reads routed to the replica.
pub(super) struct Routed {
    primary: Arc<SqlStore<Postgres>>,
    replica: Arc<SqlStore<Postgres>>,
    lag: Arc<Lag>,
    clock: Arc<dyn Clock>,
    read_timeout: Duration,
}

fn token_key(token: &str) -> String {
    format!("t:{token}")
}

fn user_key(user_id: &str) -> String {
    format!("u:{user_id}")
}

impl Routed {
    /// Records writes of these tokens and users.
    fn wrote_tokens(&self, tokens: &[String], user: Option<&str>) {
        let keys: Vec<String> = tokens
            .iter()
            .map(|t| token_key(t))
            .chain(user.map(user_key))
            .collect();
        self.lag.wrote(keys.iter().map(String::as_str));
    }

    /// Runs a read on the replica within the read timeout (counted when it answered);
    /// `None` when it failed (and the replica is then left alone until a probe finds it
    /// well).
    async fn on_replica<T>(
        &self,
        read: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Option<T> {
        match tokio::time::timeout(self.read_timeout, read).await {
            Ok(Ok(v)) => {
                crate::metrics::db_read("replica");
                Some(v)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "replica read failed: reading from the primary");
                self.lag.failed();
                None
            }
            Err(_) => {
                tracing::debug!("replica read timed out: reading from the primary");
                self.lag.failed();
                None
            }
        }
    }

    /// The replica's state, for `/readyz`.
    fn replica_word(&self) -> &'static str {
        self.lag.state().word()
    }
}

#[async_trait]
impl Health for Routed {
    async fn ping(&self) -> Result<(), StoreError> {
        self.primary.ping().await
    }

    fn notes(&self) -> Vec<(&'static str, &'static str)> {
        vec![("database_replica", self.replica_word())]
    }
}

#[async_trait]
impl UserStore for Routed {
    async fn create_user(
        &self,
        user: &mut User,
        account: &NewCredentialAccount,
        session: Option<&mut Session>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut session = session;
        let res = self
            .primary
            .create_user(user, account, session.as_deref_mut(), now)
            .await;
        let tokens: Vec<String> = session.map(|s| s.token.clone()).into_iter().collect();
        self.wrote_tokens(&tokens, Some(&user.id));
        res
    }

    async fn user_by_email(
        &self,
        email: &str,
    ) -> Result<Option<(User, Option<String>)>, StoreError> {
        self.primary.user_by_email(email).await
    }

    async fn credential_password(
        &self,
        user_id: &str,
    ) -> Result<Option<Option<String>>, StoreError> {
        self.primary.credential_password(user_id).await
    }

    async fn set_password(
        &self,
        user_id: &str,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.primary.set_password(user_id, hash, now).await
    }

    async fn find_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.primary.find_user(id).await
    }

    async fn update_user(
        &self,
        user_id: &str,
        change: &UserChange<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let res = self.primary.update_user(user_id, change, now).await;
        self.wrote_tokens(&[], Some(user_id));
        res
    }
}

#[async_trait]
impl SessionStore for Routed {
    async fn create_session(
        &self,
        session: &mut Session,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let res = self.primary.create_session(session, now).await;
        self.wrote_tokens(std::slice::from_ref(&session.token), Some(&session.user_id));
        res
    }

    async fn create_session_capped(
        &self,
        session: &mut Session,
        cap: SessionCap,
        now: DateTime<Utc>,
    ) -> Result<Capped, StoreError> {
        let res = self.primary.create_session_capped(session, cap, now).await;
        self.wrote_capped(session, &res);
        res
    }

    async fn find_session(&self, token: &str) -> Result<Option<(Session, User)>, StoreError> {
        if self.lag.readable(&[&token_key(token)]) {
            if let Some(Some((s, u))) = self.on_replica(self.replica.find_session(token)).await {
                // An expired session is deleted by the caller: only on the primary's word.
                let vouched =
                    s.expires_at > self.clock.now() && self.lag.readable(&[&user_key(&s.user_id)]);
                if vouched {
                    return Ok(Some((s, u)));
                }
            }
            // Not there (yet), or not to be trusted: the primary decides.
        }
        crate::metrics::db_read("primary");
        self.primary.find_session(token).await
    }

    async fn touch_session(
        &self,
        token: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
        due_by: DateTime<Utc>,
    ) -> Result<Touched, StoreError> {
        let res = self
            .primary
            .touch_session(token, expires_at, now, due_by)
            .await;
        // Whatever the outcome, the replica's copy may be older than the primary's.
        self.wrote_tokens(&[token.to_owned()], None);
        res
    }

    async fn update_session_fields(
        &self,
        token: &str,
        fields: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let res = self.primary.update_session_fields(token, fields, now).await;
        self.wrote_tokens(&[token.to_owned()], None);
        res
    }

    async fn delete_session(&self, token: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let res = self.primary.delete_session(token, now).await;
        self.wrote_tokens(&[token.to_owned()], None);
        res
    }

    async fn delete_user_session(
        &self,
        user_id: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let res = self.primary.delete_user_session(user_id, token, now).await;
        self.wrote_tokens(&[token.to_owned()], Some(user_id));
        res
    }

    async fn delete_user_sessions(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let res = self.primary.delete_user_sessions(user_id, now).await;
        self.wrote_tokens(res.as_deref().unwrap_or_default(), Some(user_id));
        res
    }

    async fn delete_other_sessions(
        &self,
        user_id: &str,
        keep_token: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let res = self
            .primary
            .delete_other_sessions(user_id, keep_token, now)
            .await;
        self.wrote_tokens(res.as_deref().unwrap_or_default(), Some(user_id));
        res
    }

    async fn replace_user_sessions(
        &self,
        user_id: &str,
        new: &mut Session,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let res = self.primary.replace_user_sessions(user_id, new, now).await;
        self.wrote_replaced(user_id, new, &res);
        res
    }

    async fn session_by_id(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(String, String)>, StoreError> {
        self.primary.session_by_id(id, now).await
    }

    async fn list_sessions(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Session>, StoreError> {
        if self.lag.readable(&[&user_key(user_id)]) {
            let read = self.replica.list_sessions(user_id, now, limit);
            if let Some(list) = self.on_replica(read).await {
                // A session this process changed since the replica last caught up (a
                // refresh, a revocation by token) is shown as the primary has it.
                let keys: Vec<String> = list.iter().map(|s| token_key(&s.token)).collect();
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                if self.lag.readable(&keys) {
                    return Ok(list);
                }
            }
        }
        crate::metrics::db_read("primary");
        self.primary.list_sessions(user_id, now, limit).await
    }
}

impl Routed {
    fn wrote_capped(&self, session: &Session, res: &Result<Capped, StoreError>) {
        let mut tokens = vec![session.token.clone()];
        if let Ok(Capped::Created(gone)) = res {
            tokens.extend(gone.iter().cloned());
        }
        self.wrote_tokens(&tokens, Some(&session.user_id));
    }

    fn wrote_replaced(&self, user_id: &str, new: &Session, res: &Result<Vec<String>, StoreError>) {
        let mut tokens = vec![new.token.clone()];
        tokens.extend(res.as_deref().unwrap_or_default().iter().cloned());
        self.wrote_tokens(&tokens, Some(user_id));
    }
}

#[async_trait]
impl PrimaryStore for Routed {
    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.primary.user_by_id(id).await
    }

    async fn end_sessions(
        &self,
        target: EndTarget<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let res = self.primary.end_sessions(target, now).await;
        let mut tokens = res.as_deref().unwrap_or_default().to_vec();
        if let EndTarget::Token(t) = target {
            tokens.push(t.to_owned());
        }
        self.wrote_tokens(&tokens, target.user_id());
        res
    }

    async fn end_and_create_session_capped(
        &self,
        session: &mut Session,
        cap: SessionCap,
        now: DateTime<Utc>,
    ) -> Result<Capped, StoreError> {
        let res = self
            .primary
            .end_and_create_session_capped(session, cap, now)
            .await;
        self.wrote_capped(session, &res);
        res
    }

    async fn end_and_replace_user_sessions(
        &self,
        user_id: &str,
        new: &mut Session,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let res = self
            .primary
            .end_and_replace_user_sessions(user_id, new, now)
            .await;
        self.wrote_replaced(user_id, new, &res);
        res
    }
}
