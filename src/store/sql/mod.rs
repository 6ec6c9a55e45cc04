//! The SQL store, written once over sqlx and instantiated for PostgreSQL and SQLite.
//!
//! Both backends share every statement: quoted camelCase identifiers, `$n` placeholders
//! and `RETURNING` mean the same on each. Times are bound as `DateTime<Utc>` (PostgreSQL
//! `timestamptz`; SQLite RFC 3339 text, which orders correctly as text because every time
//! here has millisecond precision). Additional session fields are extra columns whose
//! names were validated at configuration time; the statements naming them are built once.
//!
//! Here: opening a database and the statements; [`schema`]: migrations and additional
//! columns; [`hot`]: the connections of `get-session`'s reads; [`users`] and [`sessions`]:
//! the store traits; [`rows`]: reading rows; [`error`]: classifying failures.

mod error;
mod hot;
mod rows;
mod schema;
mod sessions;
mod users;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Database, Pool};

use self::hot::HotConns;
use super::{PrimaryStore, StoreError};
use crate::config::{DatabaseSettings, FieldType};

/// Which backend a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
    /// In process memory (stateless mode: `database.url = "memory"`).
    Memory,
}

/// An opened database.
pub struct Connected {
    /// The store over it.
    pub store: Arc<dyn PrimaryStore>,
    /// Which backend it is.
    pub backend: Backend,
    /// The PostgreSQL pool (for the revocation listener).
    pub pg_pool: Option<sqlx::PgPool>,
}

/// An additional session column.
#[derive(Debug, Clone)]
pub struct ExtraColumn {
    /// Column and JSON name.
    pub name: String,
    /// Value type.
    pub kind: FieldType,
}

/// Opens the configured database (SQLite under `data_dir` when no URL is set), applies
/// migrations when asked, and makes sure additional session columns exist.
pub async fn connect(
    db: &DatabaseSettings,
    data_dir: &Path,
    extras: Vec<ExtraColumn>,
    migrate: bool,
) -> Result<Connected, StoreError> {
    let url = if db.url.is_empty() {
        let file = data_dir.join("sessiond.db");
        private_dir(data_dir).map_err(|e| StoreError::Unavailable(e.into()))?;
        private_file(&file).map_err(|e| StoreError::Unavailable(e.into()))?;
        format!("sqlite://{}", file.display())
    } else {
        db.url.expose_secret().to_owned()
    };
    let acquire = Duration::from_secs(db.acquire_timeout.max(1));
    if url == "memory" || url == "memory:" {
        return Ok(Connected {
            store: Arc::new(super::memory::MemoryStore::new()),
            backend: Backend::Memory,
            pg_pool: None,
        });
    }
    let (pool_size, hot_size) = split_connections(db.max_connections);
    if db.is_postgres() {
        let opts = PgConnectOptions::from_str(&url)?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(acquire)
            .test_before_acquire(false)
            .connect_with(opts.clone())
            .await?;
        let hot = HotConns::new(opts, hot_size, acquire, &pool);
        schema::prepare_postgres(&pool, &extras, migrate).await?;
        Ok(Connected {
            store: Arc::new(SqlStore::new(pool.clone(), hot, extras)),
            backend: Backend::Postgres,
            pg_pool: Some(pool),
        })
    } else if url.starts_with("sqlite:") {
        let opts = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(acquire)
            .connect_with(opts.clone())
            .await?;
        let hot = HotConns::new(opts, hot_size, acquire, &pool);
        schema::prepare_sqlite(&pool, &extras, migrate).await?;
        Ok(Connected {
            store: Arc::new(SqlStore::new(pool, hot, extras)),
            backend: Backend::Sqlite,
            pg_pool: None,
        })
    } else {
        Err(StoreError::Backend(Box::new(sqlx::Error::Configuration(
            "database.url must start with postgres://, postgresql:// or sqlite:".into(),
        ))))
    }
}

/// How `database.max_connections` is shared, as (sqlx pool, hot connections): together
/// never more. The hot set serves `get-session`'s reads and gets half; the pool serves
/// everything else and keeps at least two, as the PostgreSQL revocation listener holds
/// one of its connections for as long as it runs. Without hot connections (one or two in
/// all), the hot reads borrow from the pool.
pub fn split_connections(max_connections: u32) -> (u32, u32) {
    let total = max_connections.max(1);
    let pool = (total - total / 2).max(total.min(2));
    (pool, total - pool)
}

/// Creates `dir` (and its parents) readable by this user only (0700), as the database and
/// the generated secret inside it are. An existing directory is left as it is, with a
/// warning when others can read it.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if let Ok(meta) = std::fs::metadata(dir) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(dir = %dir.display(), "the data directory is readable by other users");
            }
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Creates the SQLite file empty and private (0600) before SQLite opens it: SQLite gives
/// its journal and WAL files the database file's permissions.
fn private_file(file: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file)
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(())
    }
}

const USER_COLS: &str = r#"u."id" as "u_id", u."name" as "u_name", u."email" as "u_email",
 u."emailVerified" as "u_emailVerified", u."image" as "u_image",
 u."createdAt" as "u_createdAt", u."updatedAt" as "u_updatedAt""#;

/// How many core columns a session row starts with (see [`Statements::new`]).
const SESSION_CORE_COLS: usize = 8;

/// The statements that depend on the configured additional columns, built once. Every
/// session row they return has the same column order, which `session_from` relies on.
struct Statements {
    session_cols: String,
    insert_session: String,
    find_session: String,
    touch_session: String,
    list_sessions: String,
}

impl Statements {
    fn new(extras: &[ExtraColumn]) -> Self {
        let mut cols = String::from(
            r#"s."id", s."token", s."userId", s."expiresAt", s."createdAt", s."updatedAt", s."ipAddress", s."userAgent""#,
        );
        let mut insert_cols = String::from(
            r#""id", "token", "userId", "expiresAt", "createdAt", "updatedAt", "ipAddress", "userAgent""#,
        );
        let mut placeholders = String::from("$1, $2, $3, $4, $5, $6, $7, $8");
        for (i, c) in extras.iter().enumerate() {
            cols.push_str(&format!(r#", s."{}""#, c.name));
            insert_cols.push_str(&format!(r#", "{}""#, c.name));
            placeholders.push_str(&format!(", ${}", i + 9));
        }
        let returning = cols.replace("s.", "");
        Self {
            insert_session: format!(
                r#"insert into "session" ({insert_cols}) values ({placeholders})"#
            ),
            find_session: format!(
                r#"select {cols}, {USER_COLS} from "session" s join "user" u on u."id" = s."userId" where s."token" = $1"#
            ),
            touch_session: format!(
                r#"update "session" set "expiresAt" = $1, "updatedAt" = $2
                   where "token" = $3 and "expiresAt" <= $4 and "expiresAt" > "updatedAt" returning {returning}"#
            ),
            list_sessions: format!(
                r#"select {cols} from "session" s where s."userId" = $1 and s."expiresAt" > $2
                   order by s."createdAt" desc, s."id" desc limit $3"#
            ),
            session_cols: returning,
        }
    }
}

/// The store over one sqlx pool.
pub struct SqlStore<DB: Database> {
    pool: Pool<DB>,
    hot: HotConns<DB>,
    extras: Vec<ExtraColumn>,
    sql: Statements,
}

impl<DB: Database> SqlStore<DB> {
    fn new(pool: Pool<DB>, hot: HotConns<DB>, extras: Vec<ExtraColumn>) -> Self {
        let sql = Statements::new(&extras);
        Self {
            pool,
            hot,
            extras,
            sql,
        }
    }
}
