//! Users and their credential accounts, and readiness, over SQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Database, Postgres, Row, Sqlite};

use super::rows::user_from;
use super::{SqlStore, USER_COLS};
use crate::model::{Session, User};
use crate::store::{Health, NewCredentialAccount, StoreError, UserStore};

/// [`Health`] and [`UserStore`] for one backend (the statements are the same on both).
macro_rules! user_store {
    ($db:ty) => {
#[async_trait]
impl Health for SqlStore<$db> {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn ping(&self) -> Result<(), StoreError> {
        // A PostgreSQL standby, or a database made read-only (as after a failover that
        // went wrong), answers reads but refuses every sign-in: not ready.
        let sql = if <$db as Database>::NAME == "PostgreSQL" {
            "select case when pg_is_in_recovery() or current_setting('transaction_read_only') = 'on' then 0::int8 else 1::int8 end"
        } else {
            "select 1"
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
        fields(user_id = %user.id, session_id = session.map(|s| s.id.as_str()))
    )]
    async fn create_user(
        &self,
        user: &User,
        account: &NewCredentialAccount,
        session: Option<&Session>,
        _now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            r#"insert into "user" ("id", "name", "email", "emailVerified", "image", "createdAt", "updatedAt")
               values ($1, $2, $3, $4, $5, $6, $7)"#,
        )
        .bind(user.id.clone())
        .bind(user.name.clone())
        .bind(user.email.clone())
        .bind(user.email_verified)
        .bind(user.image.clone())
        .bind(user.created_at)
        .bind(user.updated_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            r#"insert into "account" ("id", "accountId", "providerId", "userId", "password", "createdAt", "updatedAt")
               values ($1, $2, 'credential', $3, $4, $5, $6)"#,
        )
        .bind(account.id.clone())
        .bind(user.id.clone())
        .bind(user.id.clone())
        .bind(account.password_hash.clone())
        .bind(user.created_at)
        .bind(user.created_at)
        .execute(&mut *tx)
        .await?;
        if let Some(s) = session {
            self.insert_session(&mut *tx, s).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn user_by_email(
        &self,
        email: &str,
    ) -> Result<Option<(User, Option<String>)>, StoreError> {
        let sql = format!(
            r#"select {USER_COLS}, a."password" as "a_password" from "user" u
               left join "account" a on a."userId" = u."id" and a."providerId" = 'credential' and a."accountId" = u."id"
               where u."email" = $1 limit 1"#
        );
        let row = sqlx::query(&sql).bind(email.to_owned()).fetch_optional(&self.pool).await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some((user_from(&r, 0)?, r.try_get("a_password")?))),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id))]
    async fn credential_password(
        &self,
        user_id: &str,
    ) -> Result<Option<Option<String>>, StoreError> {
        let row = sqlx::query(
            r#"select "password" from "account" where "userId" = $1 and "providerId" = 'credential' and "accountId" = $1 limit 1"#,
        )
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
        sqlx::query(
            r#"update "account" set "password" = $1, "updatedAt" = $2
               where "userId" = $3 and "providerId" = 'credential' and "accountId" = $3"#,
        )
        .bind(hash.to_owned())
        .bind(now)
        .bind(user_id.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }


    #[tracing::instrument(level = "debug", skip_all, fields(user_id = user_id))]
    async fn update_user(
        &self,
        user_id: &str,
        name: Option<&str>,
        image: Option<Option<&str>>,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        // Both columns are always bound; a flag says whether each one changes.
        let row = sqlx::query(
            r#"update "user" set
                 "name" = case when $1 then $2 else "name" end,
                 "image" = case when $3 then $4 else "image" end,
                 "updatedAt" = $5
               where "id" = $6
               returning "id" as "u_id", "name" as "u_name", "email" as "u_email",
                 "emailVerified" as "u_emailVerified", "image" as "u_image",
                 "createdAt" as "u_createdAt", "updatedAt" as "u_updatedAt""#,
        )
        .bind(name.is_some())
        .bind(name.map(String::from))
        .bind(image.is_some())
        .bind(image.flatten().map(String::from))
        .bind(now)
        .bind(user_id.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| user_from(&r, 0)).transpose()?)
    }
}
    };
}

user_store!(Postgres);
user_store!(Sqlite);
