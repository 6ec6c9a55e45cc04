//! Users and their credential accounts, and readiness, over SQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Database, Postgres, Row, Sqlite};

use super::events::Writer;
use super::rows::bind_extra;
use super::rows::user_from;
use super::SqlStore;
use crate::model::{Session, User};
use crate::store::{Health, NewCredentialAccount, PrimaryStore, StoreError, UserChange, UserStore};

/// [`Health`] and [`UserStore`] for one backend (the statements are the same on both).
macro_rules! user_store {
    ($db:ty) => {
#[async_trait]
impl Health for SqlStore<$db> {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn ping(&self) -> Result<(), StoreError> {
        // A PostgreSQL standby, or a database made read-only (as after a failover that
        // went wrong), answers reads but refuses every sign-in: not ready. Nor is one
        // without the tables (dropped and made again empty): the statement names them, so
        // it fails there too, at no cost (`where false` reads nothing).
        // With events on, every session write also writes the event table: without it
        // (dropped, renamed) nothing can sign in, so it is named too.
        let sql = match (<$db as Database>::NAME == "PostgreSQL", self.events) {
            (true, false) => r#"select case when pg_is_in_recovery() or current_setting('transaction_read_only') = 'on' then 0::int8 else 1::int8 end from (select 1 from "user" where false union all select 1 from "session" where false union all select 1) t"#,
            (true, true) => r#"select case when pg_is_in_recovery() or current_setting('transaction_read_only') = 'on' then 0::int8 else 1::int8 end from (select 1 from "user" where false union all select 1 from "session" where false union all select 1 from "sessiond_event" where false union all select 1) t"#,
            (false, false) => r#"select 1 from (select 1 from "user" where 0 union all select 1 from "session" where 0 union all select 1)"#,
            (false, true) => r#"select 1 from (select 1 from "user" where 0 union all select 1 from "session" where 0 union all select 1 from "sessiond_event" where 0 union all select 1)"#,
        };
        let writable: i64 = sqlx::query_scalar(sql).fetch_one(&self.pool).await?;
        if writable != 1 {
            return Err(StoreError::Unavailable("the database is read-only".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl UserStore for SqlStore<$db> {
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
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let assigned = self.sql.ids.assigned();
        let mut tx = Writer::<$db>::begin(&self.pool, self.events, now).await?;
        let mut q = sqlx::query(&self.sql.insert_user);
        if !assigned {
            q = q.bind(user.id.clone());
        }
        q = q
            .bind(user.name.clone())
            .bind(user.email.clone())
            .bind(user.email_verified)
            .bind(user.image.clone())
            .bind(user.created_at)
            .bind(user.updated_at);
        for c in &self.extras.user {
            q = bind_extra(q, c.kind, user.extra.get(&c.name));
        }
        let user_id: String = q.fetch_one(tx.conn()).await?.try_get(0)?;
        let mut q = sqlx::query(&self.sql.insert_account);
        if !assigned {
            q = q.bind(account.id.clone());
        }
        q.bind(user_id.clone())
        .bind("credential")
        .bind(user_id.clone())
        .bind(account.password_hash.clone())
        .bind(user.created_at)
        .bind(user.created_at)
        .execute(tx.conn())
        .await?;
        let session_id = match session.as_deref() {
            Some(s) => Some(self.insert_session(tx.conn(), s, &user_id).await?),
            None => None,
        };
        tx.done().await?;
        if let (Some(s), Some(id)) = (session, session_id) {
            s.id = id;
            user_id.clone_into(&mut s.user_id);
        }
        user.id = user_id;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn user_by_email(
        &self,
        email: &str,
    ) -> Result<Option<(User, Option<String>)>, StoreError> {
        let row = sqlx::query(&self.sql.user_by_email).bind(email.to_owned()).fetch_optional(&self.pool).await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some((
                user_from(&r, 0, &self.extras.user)?,
                r.try_get("a_password")?,
            ))),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id))]
    async fn credential_password(
        &self,
        user_id: &str,
    ) -> Result<Option<Option<String>>, StoreError> {
        let row = sqlx::query(&self.sql.credential_password)
        .bind(user_id.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(r.try_get("password")?)),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id))]
    async fn set_password(
        &self,
        user_id: &str,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut w = Writer::<$db>::open(&self.pool, self.events, now).await?;
        sqlx::query(&self.sql.set_password)
        .bind(hash.to_owned())
        .bind(now)
        .bind(user_id.to_owned())
        .execute(w.conn())
        .await?;
        w.done().await?;
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
        // Name and image are always bound; a flag says whether each one changes. The
        // additional columns set are named in the statement.
        let mut sets = String::from(
            r#""name" = case when $1 then $2 else "name" end,
               "image" = case when $3 then $4 else "image" end,
               "updatedAt" = $5"#,
        );
        let mut kinds = Vec::new();
        for c in &self.extras.user {
            if let Some(v) = change.fields.get(&c.name) {
                kinds.push((c.kind, v));
                sets.push_str(&format!(r#", "{}" = ${}"#, c.name, kinds.len() + 5));
            }
        }
        let sql = format!(
            r#"update "user" set {sets} where "id" = {} returning {}"#,
            self.sql.ids.param(kinds.len() + 6),
            self.sql.user_returning
        );
        let mut q = sqlx::query(&sql)
            .bind(change.name.is_some())
            .bind(change.name.map(String::from))
            .bind(change.image.is_some())
            .bind(change.image.flatten().map(String::from))
            .bind(now);
        for (kind, v) in kinds {
            q = bind_extra(q, kind, if v.is_null() { None } else { Some(v) });
        }
        let row = q.bind(user_id.to_owned()).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| user_from(&r, 0, &self.extras.user)).transpose()?)
    }
}
    };
}

user_store!(Postgres);
user_store!(Sqlite);
