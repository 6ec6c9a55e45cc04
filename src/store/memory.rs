//! The in-process store of stateless mode (Better Auth's memory adapter): users, accounts
//! and sessions live in this process only and are lost on restart. In that mode the
//! signed cookie cache is what carries sessions between requests and replicas.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio::sync::RwLock;

use super::limit::{surplus, Capped, SessionCap};
use super::{
    EndTarget, Health, NewCredentialAccount, PrimaryStore, SessionStore, StoreError, Touched,
    UserChange, UserStore,
};
use crate::model::{Session, User};

#[derive(Default)]
struct Data {
    users: HashMap<String, User>,
    emails: HashMap<String, String>,
    passwords: HashMap<String, Option<String>>,
    sessions: HashMap<String, Session>,
    /// The last serial id given to a user and to a session.
    last_user_id: u64,
    last_session_id: u64,
}

/// Gives an empty id the table's next number (as Better Auth's memory adapter numbers
/// each model from 1 under `generateId: "serial"`).
fn assign(id: &mut String, last: &mut u64) {
    if id.is_empty() {
        *last += 1;
        *id = last.to_string();
    }
}

/// A store held in memory.
#[derive(Default)]
pub struct MemoryStore {
    data: RwLock<Data>,
    /// The jwt plugin's keys (this process's own in stateless mode).
    keys: std::sync::Mutex<Vec<crate::store::keys::JwkRow>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Data {
    /// [`SessionStore::create_session_capped`] under the write lock: deletes (or, when
    /// `end`, ends in place) the surplus and inserts.
    fn insert_capped(
        &mut self,
        new: &mut Session,
        cap: SessionCap,
        now: DateTime<Utc>,
        end: bool,
    ) -> Capped {
        let mine = self.sessions.values().filter(|s| s.user_id == new.user_id);
        let Some(gone) = surplus(mine, cap, now) else {
            return Capped::Refused;
        };
        for t in &gone {
            if end {
                self.end_sessions(EndTarget::Token(t), now);
            } else {
                self.sessions.remove(t);
            }
        }
        assign(&mut new.id, &mut self.last_session_id);
        self.sessions.insert(new.token.clone(), new.clone());
        Capped::Created(gone)
    }

    /// Whether `s` is one of `target`'s sessions.
    fn targets(s: &Session, target: EndTarget<'_>) -> bool {
        match target {
            EndTarget::Token(t) => s.token == t,
            EndTarget::User(u, except) => s.user_id == u && Some(s.token.as_str()) != except,
        }
    }

    /// Deletes the sessions of `user_id` that `keep` does not keep; their tokens.
    fn remove_user_sessions(&mut self, user_id: &str, keep: Option<&str>) -> Vec<String> {
        let gone: Vec<String> = self
            .sessions
            .values()
            .filter(|s| Self::targets(s, EndTarget::User(user_id, keep)))
            .map(|s| s.token.clone())
            .collect();
        for t in &gone {
            self.sessions.remove(t);
        }
        gone
    }

    /// Ends `target`'s live sessions in place; their tokens.
    fn end_sessions(&mut self, target: EndTarget<'_>, now: DateTime<Utc>) -> Vec<String> {
        let mut ended = Vec::new();
        for s in self.sessions.values_mut() {
            if Self::targets(s, target) && s.expires_at > now {
                s.expires_at = now;
                s.updated_at = now;
                ended.push(s.token.clone());
            }
        }
        ended
    }
}

#[async_trait]
impl Health for MemoryStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(user_id = %user.id, session_id = session.as_ref().map(|s| s.id.as_str()))
    )]
    async fn create_user(
        &self,
        user: &mut User,
        account: &NewCredentialAccount,
        session: Option<&mut Session>,
        _now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut d = self.data.write().await;
        if d.emails.contains_key(&user.email) {
            return Err(StoreError::Conflict);
        }
        let d = &mut *d;
        assign(&mut user.id, &mut d.last_user_id);
        d.emails.insert(user.email.clone(), user.id.clone());
        d.passwords
            .insert(user.id.clone(), Some(account.password_hash.clone()));
        d.users.insert(user.id.clone(), user.clone());
        if let Some(s) = session {
            user.id.clone_into(&mut s.user_id);
            assign(&mut s.id, &mut d.last_session_id);
            d.sessions.insert(s.token.clone(), s.clone());
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn user_by_email(
        &self,
        email: &str,
    ) -> Result<Option<(User, Option<String>)>, StoreError> {
        let d = self.data.read().await;
        Ok(d.emails.get(email).and_then(|id| {
            let user = d.users.get(id)?.clone();
            Some((user, d.passwords.get(id).cloned().flatten()))
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id))]
    async fn credential_password(
        &self,
        user_id: &str,
    ) -> Result<Option<Option<String>>, StoreError> {
        Ok(self.data.read().await.passwords.get(user_id).cloned())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id))]
    async fn set_password(
        &self,
        user_id: &str,
        hash: &str,
        _now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if let Some(p) = self.data.write().await.passwords.get_mut(user_id) {
            *p = Some(hash.to_owned());
        }
        Ok(())
    }

    async fn find_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        PrimaryStore::user_by_id(self, id).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id))]
    async fn update_user(
        &self,
        user_id: &str,
        change: &UserChange<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let mut d = self.data.write().await;
        Ok(d.users.get_mut(user_id).map(|u| {
            change.apply(u, now);
            u.clone()
        }))
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(session_id = %session.id, user_id = %session.user_id)
    )]
    async fn create_session(
        &self,
        session: &mut Session,
        _now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut d = self.data.write().await;
        assign(&mut session.id, &mut d.last_session_id);
        d.sessions.insert(session.token.clone(), session.clone());
        Ok(())
    }

    async fn create_session_capped(
        &self,
        session: &mut Session,
        cap: SessionCap,
        now: DateTime<Utc>,
    ) -> Result<Capped, StoreError> {
        Ok(self
            .data
            .write()
            .await
            .insert_capped(session, cap, now, false))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn find_session(&self, token: &str) -> Result<Option<(Session, User)>, StoreError> {
        let d = self.data.read().await;
        Ok(d.sessions
            .get(token)
            .and_then(|s| Some((s.clone(), d.users.get(&s.user_id)?.clone()))))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn touch_session(
        &self,
        token: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
        due_by: DateTime<Utc>,
    ) -> Result<Touched, StoreError> {
        let mut d = self.data.write().await;
        Ok(match d.sessions.get_mut(token) {
            // Ended in place: a refresh racing the revocation must not bring it back.
            Some(s) if s.expires_at <= s.updated_at => Touched::Gone,
            None => Touched::Gone,
            Some(s) if s.expires_at > due_by => Touched::AlreadyFresh,
            Some(s) => {
                s.expires_at = expires_at;
                s.updated_at = now;
                Touched::Refreshed(Box::new(s.clone()))
            }
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn update_session_fields(
        &self,
        token: &str,
        fields: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let mut d = self.data.write().await;
        Ok(d.sessions.get_mut(token).map(|s| {
            for (k, v) in fields {
                s.extra.insert(k.clone(), v.clone());
            }
            s.updated_at = now;
            s.clone()
        }))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_session(&self, token: &str, _now: DateTime<Utc>) -> Result<(), StoreError> {
        self.data.write().await.sessions.remove(token);
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id))]
    async fn delete_user_session(
        &self,
        user_id: &str,
        token: &str,
        _now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut d = self.data.write().await;
        if d.sessions.get(token).is_some_and(|s| s.user_id == user_id) {
            d.sessions.remove(token);
            return Ok(true);
        }
        Ok(false)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id))]
    async fn delete_user_sessions(
        &self,
        user_id: &str,
        _now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self.data.write().await.remove_user_sessions(user_id, None))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id))]
    async fn delete_other_sessions(
        &self,
        user_id: &str,
        keep_token: &str,
        _now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let mut d = self.data.write().await;
        Ok(d.remove_user_sessions(user_id, Some(keep_token)))
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(user_id = user_id, session_id = %new.id)
    )]
    async fn replace_user_sessions(
        &self,
        user_id: &str,
        new: &mut Session,
        _now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        // One lock: no reader sees the user with neither the old sessions nor the new one.
        let mut d = self.data.write().await;
        assign(&mut new.id, &mut d.last_session_id);
        let gone = d.remove_user_sessions(user_id, None);
        d.sessions.insert(new.token.clone(), new.clone());
        Ok(gone)
    }

    async fn session_by_id(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(String, String)>, StoreError> {
        let d = self.data.read().await;
        Ok(d.sessions
            .values()
            .find(|s| s.id == id && s.expires_at > now)
            .map(|s| (s.token.clone(), s.user_id.clone())))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id, limit = limit))]
    async fn list_sessions(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Session>, StoreError> {
        let d = self.data.read().await;
        let mut out: Vec<Session> = d
            .sessions
            .values()
            .filter(|s| s.user_id == user_id && s.expires_at > now)
            .cloned()
            .collect();
        out.sort_by_key(|s| s.created_at);
        let skip = out.len().saturating_sub(limit);
        out.drain(..skip);
        Ok(out)
    }
}

#[async_trait]
impl PrimaryStore for MemoryStore {
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = id))]
    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        Ok(self.data.read().await.users.get(id).cloned())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = target.user_id()))]
    async fn end_sessions(
        &self,
        target: EndTarget<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self.data.write().await.end_sessions(target, now))
    }

    async fn end_and_create_session_capped(
        &self,
        session: &mut Session,
        cap: SessionCap,
        now: DateTime<Utc>,
    ) -> Result<Capped, StoreError> {
        Ok(self
            .data
            .write()
            .await
            .insert_capped(session, cap, now, true))
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(user_id = user_id, session_id = %new.id)
    )]
    async fn end_and_replace_user_sessions(
        &self,
        user_id: &str,
        new: &mut Session,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let mut d = self.data.write().await;
        assign(&mut new.id, &mut d.last_session_id);
        let ended = d.end_sessions(EndTarget::User(user_id, None), now);
        d.sessions.insert(new.token.clone(), new.clone());
        Ok(ended)
    }
}

#[async_trait]
impl crate::store::keys::KeyStore for MemoryStore {
    async fn jwks(&self) -> Result<Vec<crate::store::keys::JwkRow>, StoreError> {
        let keys = match self.keys.lock() {
            Ok(k) => k,
            Err(p) => p.into_inner(),
        };
        Ok(keys.clone())
    }

    async fn create_jwk(&self, row: &mut crate::store::keys::JwkRow) -> Result<bool, StoreError> {
        let mut keys = match self.keys.lock() {
            Ok(k) => k,
            Err(p) => p.into_inner(),
        };
        let live = keys
            .iter()
            .any(|k| k.expires_at.is_none_or(|e| e > row.created_at));
        if live {
            return Ok(false);
        }
        if row.id.is_empty() {
            row.id = (keys.len() + 1).to_string();
        }
        keys.push(row.clone());
        Ok(true)
    }
}
