//! Sessions over SQL: [`SessionStore`], and the [`PrimaryStore`] methods a Redis store
//! wrapping this one uses.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::{Executor, Postgres, Row, Sqlite};

use super::events::Writer;
use super::rows::{bind_extra, session_from, user_from};
use super::{SqlStore, SESSION_CORE_COLS};
use crate::model::{Session, User};
use crate::store::outbox::EventContext;
use crate::store::{
    Capped, EndTarget, PrimaryStore, SessionCap, SessionStore, StoreError, Touched,
};

/// [`SessionStore`] and [`PrimaryStore`] for one backend (the statements are the same on
/// both).
macro_rules! session_store {
    ($db:ty) => {
impl SqlStore<$db> {
    /// Inserts `s` as a session of `user_id`; the id it was stored under.
    pub(super) async fn insert_session<'e, E>(
        &self,
        exec: E,
        s: &Session,
        user_id: &str,
    ) -> Result<String, sqlx::Error>
    where
        E: Executor<'e, Database = $db>,
    {
        let mut q = sqlx::query(&self.sql.insert_session);
        if !self.sql.ids.assigned() {
            q = q.bind(s.id.clone());
        }
        q = q
            .bind(s.token.clone())
            .bind(user_id.to_owned())
            .bind(s.expires_at)
            .bind(s.created_at)
            .bind(s.updated_at)
            .bind(s.ip_address.clone())
            .bind(s.user_agent.clone());
        for c in &self.extras.session {
            q = bind_extra(q, c.kind, s.extra.get(&c.name));
        }
        q.fetch_one(exec).await?.try_get(0)
    }

    /// Ends `target`'s live sessions in place; their tokens.
    async fn end<'e, E>(
        &self,
        exec: E,
        target: EndTarget<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, sqlx::Error>
    where
        E: Executor<'e, Database = $db>,
    {
        let q = match target {
            EndTarget::Token(t) => sqlx::query_scalar(
                r#"update "session" set "expiresAt" = $1, "updatedAt" = $1
                   where "token" = $2 and "expiresAt" > $1 returning "token""#,
            )
            .bind(now)
            .bind(t.to_owned()),
            EndTarget::User(u, except) => sqlx::query_scalar(&self.sql.end_user_sessions)
            .bind(now)
            .bind(u.to_owned())
            .bind(except.unwrap_or("").to_owned()),
        };
        q.fetch_all(exec).await
    }

    /// Deletes (or, when `end`, ends in place) every session of a user and inserts `new`,
    /// in one transaction; the tokens deleted or ended.
    async fn replace(
        &self,
        user_id: &str,
        new: &mut Session,
        now: DateTime<Utc>,
        end: bool,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = Writer::<$db>::begin(&self.pool, self.events, now).await?;
        let tokens = if end {
            self.end(tx.conn(), EndTarget::User(user_id, None), now).await?
        } else {
            sqlx::query_scalar(&self.sql.delete_user_sessions)
                .bind(user_id.to_owned())
                .fetch_all(tx.conn())
                .await?
        };
        let id = self.insert_session(tx.conn(), new, &new.user_id).await?;
        tx.done().await?;
        new.id = id;
        Ok(tokens)
    }
}

#[async_trait]
impl SessionStore for SqlStore<$db> {
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(session_id = %session.id, user_id = %session.user_id)
    )]
    async fn create_session(&self, session: &mut Session, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut w = Writer::<$db>::open(&self.pool, self.events, now).await?;
        session.id = self.insert_session(w.conn(), session, &session.user_id).await?;
        w.done().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %session.user_id))]
    async fn create_session_capped(
        &self,
        session: &mut Session,
        cap: SessionCap,
        now: DateTime<Utc>,
    ) -> Result<Capped, StoreError> {
        self.insert_capped(session, cap, now, false).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn find_session(&self, token: &str) -> Result<Option<(Session, User)>, StoreError> {
        // A read: tried again once on a fresh connection when the first one turns out dead
        // (a server restart or a terminated backend leaves idle connections broken).
        let mut attempt = 0;
        let row = loop {
            let mut conn = self.hot.take().await?;
            let read = sqlx::query(&self.sql.find_session)
                .bind(token.to_owned())
                .fetch_optional(conn.get()?);
            let res = self.hot.bounded(read).await?;
            match res {
                Ok(row) => {
                    conn.release();
                    break row;
                }
                Err(StoreError::Unavailable(_)) if attempt == 0 => attempt += 1,
                Err(e) => return Err(e),
            }
        };
        match row {
            None => Ok(None),
            Some(r) => Ok(Some((
                session_from(&r, &self.extras.session)?,
                user_from(&r, SESSION_CORE_COLS + self.extras.session.len(), &self.extras.user)?,
            ))),
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
        let touch = sqlx::query(&self.sql.touch_session)
            .bind(expires_at)
            .bind(now)
            .bind(token.to_owned())
            .bind(due_by);
        let row = if self.refreshed {
            // Announced refreshes: a write with its context, as any other.
            let mut ctx = EventContext::current().unwrap_or_default();
            ctx.refreshed = true;
            let mut w = ctx.scope(Writer::<$db>::open(&self.pool, true, now)).await?;
            let row = touch.fetch_optional(w.conn()).await?;
            w.done().await?;
            row
        } else {
            let mut conn = self.hot.take().await?;
            let row = self.hot.bounded(touch.fetch_optional(conn.get()?)).await??;
            conn.release();
            row
        };
        if let Some(r) = row {
            return Ok(Touched::Refreshed(Box::new(session_from(&r, &self.extras.session)?)));
        }
        // Not updated: refreshed concurrently, or gone. A row ended in place (its expiry
        // set to the moment it ended) is gone: a refresh racing the revocation must not
        // bring it back.
        let exists = sqlx::query(
            r#"select 1 from "session" where "token" = $1 and "expiresAt" > "updatedAt" and "expiresAt" > $2"#,
        )
            .bind(token.to_owned())
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        Ok(if exists.is_some() { Touched::AlreadyFresh } else { Touched::Gone })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn update_session_fields(
        &self,
        token: &str,
        fields: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let mut sets = String::from(r#""updatedAt" = $1"#);
        let mut kinds = Vec::new();
        for c in &self.extras.session {
            if let Some(v) = fields.get(&c.name) {
                kinds.push((c.kind, v));
                sets.push_str(&format!(r#", "{}" = ${}"#, c.name, kinds.len() + 1));
            }
        }
        let sql = format!(
            r#"update "session" set {sets} where "token" = ${} returning {}"#,
            kinds.len() + 2,
            self.sql.session_cols
        );
        let mut q = sqlx::query(&sql).bind(now);
        for (kind, v) in kinds {
            q = bind_extra(q, kind, if v.is_null() { None } else { Some(v) });
        }
        let row = q.bind(token.to_owned()).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| session_from(&r, &self.extras.session)).transpose()?)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn delete_session(&self, token: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut w = Writer::<$db>::open(&self.pool, self.events, now).await?;
        sqlx::query(r#"delete from "session" where "token" = $1"#)
            .bind(token.to_owned())
            .execute(w.conn())
            .await?;
        w.done().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id))]
    async fn delete_user_session(
        &self,
        user_id: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut w = Writer::<$db>::open(&self.pool, self.events, now).await?;
        let done = sqlx::query(&self.sql.delete_user_session)
            .bind(token.to_owned())
            .bind(user_id.to_owned())
            .execute(w.conn())
            .await?;
        w.done().await?;
        Ok(done.rows_affected() > 0)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id))]
    async fn delete_user_sessions(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let mut w = Writer::<$db>::open(&self.pool, self.events, now).await?;
        let tokens = sqlx::query_scalar(&self.sql.delete_user_sessions)
            .bind(user_id.to_owned())
            .fetch_all(w.conn())
            .await?;
        w.done().await?;
        Ok(tokens)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id))]
    async fn delete_other_sessions(
        &self,
        user_id: &str,
        keep_token: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let mut w = Writer::<$db>::open(&self.pool, self.events, now).await?;
        let tokens = sqlx::query_scalar(&self.sql.delete_other_sessions)
        .bind(user_id.to_owned())
        .bind(keep_token.to_owned())
        .fetch_all(w.conn())
        .await?;
        w.done().await?;
        Ok(tokens)
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
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        self.replace(user_id, new, now, false).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn session_by_id(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query(&self.sql.session_by_id)
            .bind(id.to_owned())
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?)))
            .transpose()
            .map_err(|e: sqlx::Error| StoreError::from(e))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id, limit = limit))]
    async fn list_sessions(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Session>, StoreError> {
        // A read: tried again once on a fresh connection, as `find_session`.
        let mut attempt = 0;
        let rows = loop {
            let mut conn = self.hot.take().await?;
            let read = sqlx::query(&self.sql.list_sessions)
                .bind(user_id.to_owned())
                .bind(now)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(conn.get()?);
            let res = self.hot.bounded(read).await?;
            match res {
                Ok(rows) => {
                    conn.release();
                    break rows;
                }
                Err(StoreError::Unavailable(_)) if attempt == 0 => attempt += 1,
                Err(e) => return Err(e),
            }
        };
        // Newest first from the query; oldest first in the answer.
        rows.iter()
            .rev()
            .map(|r| session_from(r, &self.extras.session).map_err(StoreError::from))
            .collect()
    }
}

#[async_trait]
impl PrimaryStore for SqlStore<$db> {
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = id))]
    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&self.sql.user_by_id)
            .bind(id.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| user_from(&r, 0, &self.extras.user)).transpose()?)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = target.user_id()))]
    async fn end_sessions(
        &self,
        target: EndTarget<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let mut w = Writer::<$db>::open(&self.pool, self.events, now).await?;
        let tokens = self.end(w.conn(), target, now).await?;
        w.done().await?;
        Ok(tokens)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %session.user_id))]
    async fn end_and_create_session_capped(
        &self,
        session: &mut Session,
        cap: SessionCap,
        now: DateTime<Utc>,
    ) -> Result<Capped, StoreError> {
        self.insert_capped(session, cap, now, true).await
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
        self.replace(user_id, new, now, true).await
    }
}
    };
}

session_store!(Postgres);
session_store!(Sqlite);
