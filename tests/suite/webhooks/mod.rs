//! Webhooks: the outbox's claim and settle semantics on PostgreSQL and SQLite
//! ([`outbox`]), the signature against the Standard Webhooks specification's vector, and
//! the delivery loop against real receivers, hostile ones included ([`delivery`]).

mod delivery;
mod outbox;
mod receiver;
mod replicas;

use std::sync::Arc;

use sessiond::store::outbox::Outbox;
use sessiond::store::sql::connect;

use crate::store::fixture::db_settings;
use crate::support::PgDb;

/// The events table and triggers as sessiond installs them.
const PG_EVENTS: &str = include_str!("../../../src/store/sql/events/postgres.sql");
const SQLITE_EVENTS: &str = include_str!("../../../src/store/sql/events/sqlite.sql");

/// A database with sessiond's schema and the event table, opened `n` times (as replicas).
pub struct Db {
    pub outboxes: Vec<Arc<dyn Outbox>>,
    pub url: String,
    _pg: Option<PgDb>,
    _dir: tempfile::TempDir,
}

impl Db {
    pub async fn postgres(n: usize) -> Self {
        let pg = PgDb::create().await;
        let url = pg.url.clone();
        Self::open(url, Some(pg), n).await
    }

    pub async fn sqlite(n: usize) -> Self {
        Self::open(String::new(), None, n).await
    }

    async fn open(url: String, pg: Option<PgDb>, n: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = if url.is_empty() {
            format!("sqlite://{}", dir.path().join("events.db").display())
        } else {
            url
        };
        let mut outboxes = Vec::new();
        for i in 0..n {
            let c = connect(&db_settings(&url, 4), dir.path(), Default::default(), true)
                .await
                .unwrap();
            if i == 0 {
                match &c.pg_pool {
                    Some(pool) => sqlx::raw_sql(PG_EVENTS).execute(pool).await.map(|_| ()),
                    None => {
                        use sqlx::Connection;
                        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                        sqlx::raw_sql(SQLITE_EVENTS)
                            .execute(&mut conn)
                            .await
                            .map(|_| ())
                    }
                }
                .unwrap();
            }
            outboxes.push(c.outbox.unwrap());
        }
        Self {
            outboxes,
            url,
            _pg: pg,
            _dir: dir,
        }
    }

    pub fn outbox(&self) -> Arc<dyn Outbox> {
        self.outboxes[0].clone()
    }

    /// Runs a statement.
    pub async fn exec(&self, stmt: &str) {
        crate::store::sql::exec(&self.url, stmt).await;
    }

    /// A number a query returns.
    pub async fn count(&self, q: &str) -> i64 {
        use sqlx::Connection;
        if self.url.starts_with("postgres") {
            let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar(q).fetch_one(&mut c).await.unwrap()
        } else {
            let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar(q).fetch_one(&mut c).await.unwrap()
        }
    }
}

/// One test per backend for each scenario `$name(db)` of the invoking module, on a
/// database opened `$n` times.
macro_rules! on_both {
    ($($name:ident($n:expr)),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::webhooks::Db::postgres($n).await).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::webhooks::Db::sqlite($n).await).await;
                }
            )*
        }
    };
}
pub(crate) use on_both;
