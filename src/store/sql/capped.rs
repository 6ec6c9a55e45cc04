//! `session.max_per_user` over SQL: one transaction per new session that serializes the
//! user's sign-ins, counts, ends the surplus and inserts (see [`crate::store::limit`]).
//!
//! PostgreSQL serializes on `pg_advisory_xact_lock(hashtext(userId))`, taken first and
//! held to the commit, so replicas sharing the database take turns per user (two users
//! whose ids hash alike merely wait for each other). SQLite has one writer: the insert is
//! the transaction's first statement, so it holds the write lock from the start. Deleted
//! (or ended) rows fire the PostgreSQL revocation trigger as any revocation does.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Sqlite};

use super::events::Writer;
use super::SqlStore;
use crate::model::Session;
use crate::store::limit::{to_end, Capped, SessionCap};
use crate::store::StoreError;

impl<DB: sqlx::Database> SqlStore<DB> {
    /// The condition that picks the user's live sessions other than the new one
    /// (`$1` user id, `$2` now, `$3` the new token), impersonations aside.
    fn others(&self) -> String {
        let imp = if self
            .extras
            .session
            .iter()
            .any(|c| c.name == "impersonatedBy")
        {
            r#" and ("impersonatedBy" is null or "impersonatedBy" = '')"#
        } else {
            ""
        };
        self.sql.ids.sql(&format!(
            r#""userId" = ID($1) and "expiresAt" > $2 and "token" <> $3{imp}"#
        ))
    }

    /// `select count(*)` of [`Self::others`], and the statement that deletes (or, when
    /// `end`, ends) the `$4` oldest of them, returning their tokens.
    fn capped_sql(&self, end: bool) -> (String, String) {
        let others = self.others();
        let oldest = format!(
            r#"select "token" from "session" where {others} order by "createdAt", "token" limit $4"#
        );
        let change = if end {
            format!(
                r#"update "session" set "expiresAt" = $2, "updatedAt" = $2
                   where "token" in ({oldest}) returning "token""#
            )
        } else {
            format!(r#"delete from "session" where "token" in ({oldest}) returning "token""#)
        };
        (
            format!(r#"select count(*) from "session" where {others}"#),
            change,
        )
    }
}

macro_rules! capped {
    ($db:ty, $lock:expr) => {
        impl SqlStore<$db> {
            /// Inserts `new` under `cap`, deleting (or, when `end`, ending in place) the
            /// surplus, all in one transaction; nothing written when refused.
            pub(super) async fn insert_capped(
                &self,
                new: &mut Session,
                cap: SessionCap,
                now: DateTime<Utc>,
                end: bool,
            ) -> Result<Capped, StoreError> {
                let (count, change) = self.capped_sql(end);
                let user_id = new.user_id.clone();
                let mut tx = Writer::<$db>::begin(&self.pool, self.events, now).await?;
                if let Some(lock) = $lock {
                    sqlx::query(lock)
                        .bind(user_id.clone())
                        .execute(tx.conn())
                        .await?;
                }
                let id = self.insert_session(tx.conn(), new, &user_id).await?;
                let live: i64 = sqlx::query_scalar(&count)
                    .bind(user_id.clone())
                    .bind(now)
                    .bind(new.token.clone())
                    .fetch_one(tx.conn())
                    .await?;
                let Some(n) = to_end(usize::try_from(live).unwrap_or(usize::MAX), cap) else {
                    // Dropped: rolled back, the insert with it.
                    return Ok(Capped::Refused);
                };
                let gone: Vec<String> = if n == 0 {
                    Vec::new()
                } else {
                    sqlx::query_scalar(&change)
                        .bind(user_id)
                        .bind(now)
                        .bind(new.token.clone())
                        .bind(i64::try_from(n).unwrap_or(i64::MAX))
                        .fetch_all(tx.conn())
                        .await?
                };
                tx.done().await?;
                new.id = id;
                Ok(Capped::Created(gone))
            }
        }
    };
}

capped!(Postgres, Some("select pg_advisory_xact_lock(hashtext($1))"));
capped!(Sqlite, None::<&str>);
