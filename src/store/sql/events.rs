//! Lifecycle events over SQL: installing the outbox table and its triggers
//! (`events/postgres.sql`, `events/sqlite.sql`), and [`Writer`], the connection a write
//! runs on, which hands the triggers the write's [`EventContext`] inside its transaction.
//!
//! With events off nothing is installed and a write runs as before, on a plain pooled
//! connection. With events on, each write is a transaction that first sets the context
//! (PostgreSQL: the transaction-local setting `sessiond.ctx`; SQLite: the one row of
//! `sessiond_event_ctx`, cleared again before the commit), so the trigger knows why the
//! sessions end and from where, and that the change is sessiond's own.

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::pool::PoolConnection;
use sqlx::{Database, Executor, PgPool, Postgres, Sqlite, SqlitePool, Transaction};

use crate::store::outbox::EventContext;
use crate::store::StoreError;

const POSTGRES: &str = include_str!("events/postgres.sql");
const SQLITE: &str = include_str!("events/sqlite.sql");
/// Serializes installs by replicas starting together (`create or replace function` is
/// not safe to race).
const PG_LOCK: &str = "select pg_advisory_xact_lock(hashtext('sessiond_event'))";

/// Removes the triggers (the table and its events stay): a database whose replicas no
/// longer record events must not keep growing a table nobody purges.
const PG_OFF: &str = r#"
drop trigger if exists sessiond_event_session on "session";
drop trigger if exists sessiond_event_user on "user";
drop trigger if exists sessiond_event_password on "account";
"#;
const SQLITE_OFF: &str = r#"
drop trigger if exists "sessiond_event_session_insert";
drop trigger if exists "sessiond_event_session_delete";
drop trigger if exists "sessiond_event_session_update";
drop trigger if exists "sessiond_event_user";
drop trigger if exists "sessiond_event_password";
"#;

/// PostgreSQL, events off: the triggers go (when `migrate`).
pub(super) async fn remove_postgres(pool: &PgPool) -> Result<(), StoreError> {
    // Looked up first: dropping, even what is absent, locks the tables out.
    let present: i64 = sqlx::query_scalar(
        "select count(*) from pg_catalog.pg_trigger where tgname in \
         ('sessiond_event_session', 'sessiond_event_user', 'sessiond_event_password')",
    )
    .fetch_one(pool)
    .await?;
    if present == 0 {
        return Ok(());
    }
    tracing::warn!("events are off: the event triggers are removed (the recorded events stay)");
    let mut tx = pool.begin().await?;
    tx.execute(PG_LOCK).await?;
    tx.execute(PG_OFF).await?;
    tx.commit().await?;
    Ok(())
}

/// SQLite, events off: the triggers go (when `migrate`).
pub(super) async fn remove_sqlite(pool: &SqlitePool) -> Result<(), StoreError> {
    pool.execute(SQLITE_OFF).await?;
    Ok(())
}

/// PostgreSQL: installs the outbox when `migrate`, else checks that it is there.
pub(super) async fn prepare_postgres(pool: &PgPool, migrate: bool) -> Result<(), StoreError> {
    if migrate {
        let mut tx = pool.begin().await?;
        tx.execute(PG_LOCK).await?;
        tx.execute(POSTGRES).await?;
        tx.commit().await?;
        return Ok(());
    }
    let found: Option<String> =
        sqlx::query_scalar("select pg_catalog.to_regclass('sessiond_event')::text")
            .fetch_one(pool)
            .await?;
    found.map(|_| ()).ok_or_else(missing)
}

/// SQLite: as [`prepare_postgres`].
pub(super) async fn prepare_sqlite(pool: &SqlitePool, migrate: bool) -> Result<(), StoreError> {
    if migrate {
        let mut tx = pool.begin().await?;
        tx.execute(SQLITE).await?;
        tx.commit().await?;
        return Ok(());
    }
    let found: Option<String> = sqlx::query_scalar(
        "select name from sqlite_master where type = 'table' and name = 'sessiond_event'",
    )
    .fetch_optional(pool)
    .await?;
    found.map(|_| ()).ok_or_else(missing)
}

fn missing() -> StoreError {
    StoreError::Backend(Box::new(sqlx::Error::Configuration(
        "events are on (session.audit or webhooks) but the sessiond_event table is missing: start once with database.migrate = true"
            .into(),
    )))
}

/// The context the triggers read, as JSON: the current task's [`EventContext`] (or an
/// empty one: still sessiond's own change) and the write's time, in the text form the
/// SQLite store writes times in.
pub(super) fn context_json(now: DateTime<Utc>) -> String {
    #[derive(serde::Serialize)]
    struct Told {
        #[serde(flatten)]
        ctx: EventContext,
        at: String,
    }
    let told = Told {
        ctx: EventContext::current().unwrap_or_default(),
        at: now.to_rfc3339_opts(SecondsFormat::AutoSi, false),
    };
    serde_json::to_string(&told).unwrap_or_else(|_| String::from("{}"))
}

/// The connection a write runs on: plain, or a transaction carrying its context.
pub(super) enum Writer<DB: Database> {
    /// Events off.
    Plain(PoolConnection<DB>),
    /// A transaction; whether it told the triggers its context.
    Tx(Transaction<'static, DB>, bool),
}

impl<DB: Database> Writer<DB> {
    /// The connection to run the write's statements on.
    pub(super) fn conn(&mut self) -> &mut DB::Connection {
        match self {
            Writer::Plain(c) => c,
            Writer::Tx(t, _) => t,
        }
    }
}

macro_rules! writer {
    ($db:ty, $set:expr, $clear:expr) => {
        impl Writer<$db> {
            /// Opens a write: a transaction telling the triggers this write's context when
            /// `events`, else a plain connection.
            pub(super) async fn open(
                pool: &sqlx::Pool<$db>,
                events: bool,
                now: DateTime<Utc>,
            ) -> Result<Self, sqlx::Error> {
                if !events {
                    return Ok(Writer::Plain(pool.acquire().await?));
                }
                Self::begin(pool, events, now).await
            }

            /// Opens a transaction, telling the triggers this write's context when `events`.
            pub(super) async fn begin(
                pool: &sqlx::Pool<$db>,
                events: bool,
                now: DateTime<Utc>,
            ) -> Result<Self, sqlx::Error> {
                let mut tx = pool.begin().await?;
                if events {
                    sqlx::query($set)
                        .bind(context_json(now))
                        .execute(&mut *tx)
                        .await?;
                }
                Ok(Writer::Tx(tx, events))
            }

            /// Ends the write: commits (a plain connection has nothing to do). Dropped
            /// without it, a transaction rolls back.
            pub(super) async fn done(self) -> Result<(), sqlx::Error> {
                if let Writer::Tx(mut tx, told) = self {
                    if let (true, Some(clear)) = (told, $clear) {
                        sqlx::query(clear).execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                }
                Ok(())
            }
        }
    };
}

writer!(
    Postgres,
    "select pg_catalog.set_config('sessiond.ctx', $1, true)",
    None::<&str>
);
writer!(
    Sqlite,
    r#"insert or replace into "sessiond_event_ctx" ("id", "data") values (1, $1)"#,
    Some(r#"delete from "sessiond_event_ctx""#)
);
