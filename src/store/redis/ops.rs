//! The store traits over Redis (sessions) and the wrapped database (users, and sessions
//! too when configured).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use serde_json::{Map, Value};

use super::values::{merge, parse_value, ttl_secs};
use super::RedisStore;
use crate::model::{Session, User};
use crate::store::feed::token_hash;
use crate::store::redis_feed::channel;
use crate::store::{
    Capped, EndTarget, Health, NewCredentialAccount, SessionCap, SessionStore, StoreError, Touched,
    UserChange, UserStore,
};

/// Gives a session whose id is left to the store (`generate_id = "serial"`) and that no
/// database numbered, as it lives in Redis only, a random id: Better Auth does the same.
fn assign_id(s: &mut Session) {
    if s.id.is_empty() {
        s.id = crate::crypto::token::generate_id();
    }
}

#[async_trait]
impl Health for RedisStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn ping(&self) -> Result<(), StoreError> {
        self.primary.ping().await?;
        self.writable().await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn health(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("database", self.primary.ping().await.is_ok()),
            ("redis", self.writable().await.is_ok()),
        ]
    }

    fn notes(&self) -> Vec<(&'static str, &'static str)> {
        self.primary.notes()
    }
}

#[async_trait]
impl UserStore for RedisStore {
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(user_id = %user.id, session_id = session.as_ref().map(|s| s.id.as_str()))
    )]
    async fn create_user(
        &self,
        user: &mut User,
        account: &NewCredentialAccount,
        mut session: Option<&mut Session>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let in_db = session.as_deref_mut().filter(|_| self.opts.store_in_db);
        self.primary.create_user(user, account, in_db, now).await?;
        if let Some(s) = session {
            user.id.clone_into(&mut s.user_id);
            assign_id(s);
            self.write_new(s, user, now.timestamp_millis()).await?;
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn user_by_email(
        &self,
        email: &str,
    ) -> Result<Option<(User, Option<String>)>, StoreError> {
        self.primary.user_by_email(email).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id))]
    async fn credential_password(
        &self,
        user_id: &str,
    ) -> Result<Option<Option<String>>, StoreError> {
        self.primary.credential_password(user_id).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id))]
    async fn set_password(
        &self,
        user_id: &str,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.primary.set_password(user_id, hash, now).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = id))]
    async fn find_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.primary.user_by_id(id).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id))]
    async fn update_user(
        &self,
        user_id: &str,
        change: &UserChange<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let Some(user) = self.primary.update_user(user_id, change, now).await? else {
            return Ok(None);
        };
        // Every cached session of the user carries the new user snapshot.
        let now_ms = now.timestamp_millis();
        for token in self.list_tokens(user_id, now_ms).await? {
            self.modify(&token, now_ms, |_, u| *u = user.clone())
                .await?;
        }
        Ok(Some(user))
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(session_id = %session.id, user_id = %session.user_id)
    )]
    async fn create_session(
        &self,
        session: &mut Session,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if self.opts.store_in_db {
            self.primary.create_session(session, now).await?;
        }
        assign_id(session);
        let user = self.owner(session).await?;
        self.write_new(session, &user, now.timestamp_millis()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %session.user_id))]
    async fn create_session_capped(
        &self,
        session: &mut Session,
        cap: SessionCap,
        now: DateTime<Utc>,
    ) -> Result<Capped, StoreError> {
        self.insert_capped(session, cap, now).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn find_session(&self, token: &str) -> Result<Option<(Session, User)>, StoreError> {
        match self.get(&self.key(token)).await {
            Ok(Some(raw)) => Ok(parse_value(&raw)),
            Ok(None) if self.falls_back_to_db() => self.primary.find_session(token).await,
            Ok(None) => Ok(None),
            Err(StoreError::Unavailable(_)) if self.falls_back_to_db() => {
                self.primary.find_session(token).await
            }
            Err(e) => Err(e),
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn touch_session(
        &self,
        token: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
        due_by: DateTime<Utc>,
    ) -> Result<Touched, StoreError> {
        let key = self.key(token);
        let Some(raw) = self.get(&key).await? else {
            return Ok(Touched::Gone);
        };
        let Some((mut session, user)) = parse_value(&raw) else {
            return Ok(Touched::Gone);
        };
        if session.expires_at > due_by {
            return Ok(Touched::AlreadyFresh);
        }
        session.expires_at = expires_at;
        session.updated_at = now;
        let now_ms = now.timestamp_millis();
        let ttl = ttl_secs(expires_at, now_ms);
        let mut c = self.conn.clone();
        let swapped = self
            .swap(&mut c, &key, &raw, (&session, &user), ttl.max(1))
            .await?;
        if !swapped {
            let exists: bool = c.exists(&key).await?;
            return Ok(if exists {
                Touched::AlreadyFresh
            } else {
                Touched::Gone
            });
        }
        self.list_add(&mut c, &session, now_ms).await?;
        if self.opts.store_in_db {
            // The database row follows; its answer is authoritative, as in Better Auth.
            return match self
                .primary
                .touch_session(token, expires_at, now, due_by)
                .await?
            {
                Touched::Gone => Ok(Touched::Refreshed(Box::new(session))),
                other => Ok(other),
            };
        }
        Ok(Touched::Refreshed(Box::new(session)))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn update_session_fields(
        &self,
        token: &str,
        fields: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let updated = self
            .modify(token, now.timestamp_millis(), |s, _| {
                for (k, v) in fields {
                    s.extra.insert(k.clone(), v.clone());
                }
                s.updated_at = now;
            })
            .await?;
        if self.opts.store_in_db {
            let db = self
                .primary
                .update_session_fields(token, fields, now)
                .await?;
            return Ok(db.or(updated.map(|(s, _)| s)));
        }
        Ok(updated.map(|(s, _)| s))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_session(&self, token: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        if let Some(raw) = self.get(&self.key(token)).await? {
            let user_id = parse_value(&raw).map(|(s, _)| s.user_id);
            match user_id {
                Some(u) => {
                    self.revoke_in_redis(&u, &[token.to_owned()], now.timestamp_millis())
                        .await?;
                }
                None => {
                    // An unreadable value: no owner to update, but announced all the same.
                    let mut c = self.conn.clone();
                    let _: i64 = c.del(self.key(token)).await?;
                    let _: i64 = c
                        .publish(channel(&self.opts.prefix), hex::encode(token_hash(token)))
                        .await?;
                }
            }
        }
        if self.opts.store_in_db {
            if self.opts.preserve_in_db {
                self.primary
                    .end_sessions(EndTarget::Token(token), now)
                    .await?;
            } else {
                self.primary.delete_session(token, now).await?;
            }
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id))]
    async fn delete_user_session(
        &self,
        user_id: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        match self.find_session(token).await? {
            Some((s, _)) if s.user_id == user_id => {
                self.delete_session(token, now).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id))]
    async fn delete_user_sessions(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        self.revoke_user(user_id, None, now).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id))]
    async fn delete_other_sessions(
        &self,
        user_id: &str,
        keep_token: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        self.revoke_user(user_id, Some(keep_token), now).await
    }

    /// The list is snapshotted first (as in [`Self::revoke_user`]); the database replaces
    /// in one transaction, then one script replaces in Redis. A failure before the script
    /// leaves Redis as it was.
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(user_id = user_id, session_id = %new.id)
    )]
    async fn replace_user_sessions(
        &self,
        user_id: &str,
        new: &mut Session,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let now_ms = now.timestamp_millis();
        let user = self.owner(new).await?;
        let mut tokens = self.list_tokens(user_id, now_ms).await?;
        if self.opts.store_in_db {
            let db = if self.opts.preserve_in_db {
                self.primary
                    .end_and_replace_user_sessions(user_id, new, now)
                    .await?
            } else {
                self.primary
                    .replace_user_sessions(user_id, new, now)
                    .await?
            };
            merge(&mut tokens, db);
        }
        assign_id(new);
        self.replace_in_redis(user_id, new, &user, &tokens, now_ms)
            .await?;
        Ok(tokens)
    }

    /// Sessions kept only in Redis are keyed by token: none is found by id (the service
    /// API refuses `sessions:revoke` at start in that setup).
    async fn session_by_id(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(String, String)>, StoreError> {
        if !self.opts.store_in_db {
            return Ok(None);
        }
        self.primary.session_by_id(id, now).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id, limit = limit))]
    async fn list_sessions(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Session>, StoreError> {
        let mut tokens = match self.list_tokens(user_id, now.timestamp_millis()).await {
            Ok(t) => t,
            Err(StoreError::Unavailable(_)) if self.falls_back_to_db() => {
                return self.primary.list_sessions(user_id, now, limit).await;
            }
            Err(e) => return Err(e),
        };
        // The list is in expiry order: the last ones are the newest.
        tokens.drain(..tokens.len().saturating_sub(limit));
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = tokens.iter().map(|t| self.key(t)).collect();
        let mut c = self.conn.clone();
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut c).await?;
        // Missing or corrupt entries are skipped, never failing the whole list.
        Ok(values
            .into_iter()
            .flatten()
            .filter_map(|raw| parse_value(&raw).map(|(s, _)| s))
            .filter(|s| s.expires_at > now)
            .collect())
    }
}
