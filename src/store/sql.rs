//! The SQL store, written once over sqlx and instantiated for PostgreSQL and SQLite.
//!
//! Both backends share every statement: quoted camelCase identifiers, `$n` placeholders
//! and `RETURNING` mean the same on each. Times are bound as `DateTime<Utc>` (PostgreSQL
//! `timestamptz`; SQLite RFC 3339 text, which orders correctly as text because every time
//! here has millisecond precision). Additional session fields are extra columns whose
//! names were validated at configuration time; the statements naming them are built once.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Database, Executor, Pool, Postgres, Row, Sqlite};

use super::{
    EndTarget, Health, NewCredentialAccount, PrimaryStore, SessionStore, StoreError, Touched,
    UserStore,
};
use crate::config::{DatabaseSettings, FieldType};
use crate::model::{Session, User};

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
        db.url.clone()
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
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let opts = PgConnectOptions::from_str(&url)?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(acquire)
            .test_before_acquire(false)
            .connect_with(opts.clone())
            .await?;
        let hot = HotConns::new(opts, hot_size, acquire, &pool);
        if migrate {
            sqlx::migrate!("migrations/postgres")
                .run(&pool)
                .await
                .map_err(|e| StoreError::Backend(e.into()))?;
            // Migrations run once; the revocation triggers must also survive someone
            // dropping or rewriting them later: restored (in one transaction) when unsound.
            if !super::feed::trigger_state(&pool).await?.0 {
                tracing::warn!("the session revocation triggers were missing or altered: restored");
                pool.execute(super::feed::REVOCATION_TRIGGERS).await?;
            }
        }
        if !extras.is_empty() {
            let existing: Vec<String> = sqlx::query_scalar(
                r#"select attname::text from pg_attribute
                   where attrelid = '"session"'::regclass and attnum > 0 and not attisdropped"#,
            )
            .fetch_all(&pool)
            .await?;
            for c in missing_columns(&extras, &existing, migrate)? {
                let ty = match c.kind {
                    FieldType::String => "text",
                    FieldType::Number => "bigint",
                    FieldType::Boolean => "boolean",
                };
                // "if not exists": replicas starting together may race to add it.
                let stmt = format!(
                    r#"alter table "session" add column if not exists "{}" {ty}"#,
                    c.name
                );
                pool.execute(stmt.as_str()).await?;
            }
        }
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
        if migrate {
            sqlx::migrate!("migrations/sqlite")
                .run(&pool)
                .await
                .map_err(|e| StoreError::Backend(e.into()))?;
        }
        if !extras.is_empty() {
            let existing: Vec<String> =
                sqlx::query_scalar(r#"select "name" from pragma_table_info('session')"#)
                    .fetch_all(&pool)
                    .await?;
            for c in missing_columns(&extras, &existing, migrate)? {
                let ty = match c.kind {
                    FieldType::String => "text",
                    FieldType::Number | FieldType::Boolean => "integer",
                };
                let stmt = format!(r#"alter table "session" add column "{}" {ty}"#, c.name);
                pool.execute(stmt.as_str()).await?;
            }
        }
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

/// The additional fields whose session column is missing, to be added when migrations
/// run. Without migrations a missing column stops the start (every sign-in would fail on
/// it), and nothing is altered: the database user may well have no right to.
fn missing_columns<'a>(
    extras: &'a [ExtraColumn],
    existing: &[String],
    migrate: bool,
) -> Result<Vec<&'a ExtraColumn>, StoreError> {
    let missing: Vec<&ExtraColumn> = extras
        .iter()
        .filter(|c| !existing.contains(&c.name))
        .collect();
    if missing.is_empty() || migrate {
        return Ok(missing);
    }
    let names: Vec<String> = missing.iter().map(|c| format!("\"{}\"", c.name)).collect();
    Err(StoreError::Backend(
        format!(
            "the session table has no column {} for session.additional_fields, and \
             database.migrate_on_start is off: run `sessiond migrate` (or turn it on)",
            names.join(", ")
        )
        .into(),
    ))
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

/// Connections for the one read every `get-session` makes, kept outside sqlx's pool:
/// sqlx pings each connection it takes back, a second round trip per request. Here a
/// connection that answered goes back to the idle list as it is. One dropped mid-statement
/// (its request was cancelled: the client went away, or the request timed out) or after an
/// error is first brought back to a clean state off the request path, and closed only if
/// that fails: clients that hang up must not make the database open a process each time.
/// With no connections of its own (see [`split_connections`]) it lends the pool's.
pub struct HotConns<DB: Database> {
    inner: Arc<HotInner<DB>>,
}

struct HotInner<DB: Database> {
    options: <DB::Connection as sqlx::Connection>::Options,
    idle: std::sync::Mutex<Vec<DB::Connection>>,
    size: usize,
    permits: Arc<tokio::sync::Semaphore>,
    acquire_timeout: Duration,
    /// Where connections come from when `size` is 0.
    pool: Option<Pool<DB>>,
}

impl<DB: Database> HotInner<DB> {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<DB::Connection>> {
        match self.idle.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

impl<DB: Database> HotConns<DB> {
    fn new(
        options: <DB::Connection as sqlx::Connection>::Options,
        size: u32,
        acquire_timeout: Duration,
        pool: &Pool<DB>,
    ) -> Self {
        let size = size as usize;
        Self {
            inner: Arc::new(HotInner {
                options,
                idle: std::sync::Mutex::new(Vec::with_capacity(size)),
                size,
                permits: Arc::new(tokio::sync::Semaphore::new(size)),
                acquire_timeout,
                pool: (size == 0).then(|| pool.clone()),
            }),
        }
    }

    /// A connection, holding one of the permits that bound how many are out.
    async fn take(&self) -> Result<HotConn<DB>, StoreError> {
        let inner = &self.inner;
        if let Some(pool) = &inner.pool {
            return Ok(HotConn {
                conn: None,
                lent: Some(pool.acquire().await?),
                permit: None,
                home: inner.clone(),
            });
        }
        let permit =
            tokio::time::timeout(inner.acquire_timeout, inner.permits.clone().acquire_owned())
                .await
                .map_err(|_| StoreError::Unavailable(Box::new(sqlx::Error::PoolTimedOut)))?
                .map_err(|_| StoreError::Unavailable(Box::new(sqlx::Error::PoolClosed)))?;
        let idle = inner.idle().pop();
        let conn = match idle {
            Some(c) => c,
            // Whatever stops a connection from opening (a server starting or shutting down,
            // a database refusing connections) means: not now, try again.
            None => tokio::time::timeout(
                inner.acquire_timeout,
                <DB::Connection as sqlx::Connection>::connect_with(&inner.options),
            )
            .await
            .map_err(|_| StoreError::Unavailable(Box::new(sqlx::Error::PoolTimedOut)))?
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?,
        };
        Ok(HotConn {
            conn: Some(conn),
            lent: None,
            permit: Some(permit),
            home: inner.clone(),
        })
    }
}

/// A connection taken from [`HotConns`]. [`HotConn::release`] returns it after a statement
/// completed; dropping it instead (cancellation, `?` on an error) sends it to be checked.
/// A connection lent by the pool goes back to the pool either way, which checks it.
struct HotConn<DB: Database> {
    conn: Option<DB::Connection>,
    lent: Option<sqlx::pool::PoolConnection<DB>>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    home: Arc<HotInner<DB>>,
}

impl<DB: Database> HotConn<DB> {
    fn get(&mut self) -> Result<&mut DB::Connection, StoreError> {
        if let Some(c) = self.lent.as_mut() {
            return Ok(&mut **c);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable(Box::new(sqlx::Error::PoolClosed)))
    }

    /// Back to the idle list as it is: the last statement completed.
    fn release(mut self) {
        if let Some(c) = self.conn.take() {
            self.home.idle().push(c);
        }
    }
}

impl<DB: Database> Drop for HotConn<DB> {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // The permit travels with the connection, so the number open stays bounded while
        // it is checked. `ping` first reads whatever answer of the cut-short statement is
        // still due (sqlx tracks it), then makes one round trip.
        let permit = self.permit.take();
        let home = self.home.clone();
        rt.spawn(async move {
            let ok = matches!(
                tokio::time::timeout(home.acquire_timeout, sqlx::Connection::ping(&mut conn)).await,
                Ok(Ok(()))
            );
            if ok {
                let mut idle = home.idle();
                if idle.len() < home.size {
                    idle.push(conn);
                }
            }
            drop(permit);
        });
    }
}

macro_rules! sql_store {
    ($db:ty) => {
impl SqlStore<$db> {
    async fn insert_session<'e, E>(&self, exec: E, s: &Session) -> Result<(), sqlx::Error>
    where
        E: Executor<'e, Database = $db>,
    {
        let mut q = sqlx::query(&self.sql.insert_session)
            .bind(s.id.clone())
            .bind(s.token.clone())
            .bind(s.user_id.clone())
            .bind(s.expires_at)
            .bind(s.created_at)
            .bind(s.updated_at)
            .bind(s.ip_address.clone())
            .bind(s.user_agent.clone());
        for c in &self.extras {
            q = bind_extra(q, c.kind, s.extra.get(&c.name));
        }
        q.execute(exec).await?;
        Ok(())
    }

    /// Ends `target`'s live sessions in place; their tokens.
    async fn end<'e, E>(
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
            EndTarget::User(u, except) => sqlx::query_scalar(
                r#"update "session" set "expiresAt" = $1, "updatedAt" = $1
                   where "userId" = $2 and "expiresAt" > $1 and "token" <> $3 returning "token""#,
            )
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
        new: &Session,
        now: DateTime<Utc>,
        end: bool,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let tokens = if end {
            Self::end(&mut *tx, EndTarget::User(user_id, None), now).await?
        } else {
            sqlx::query_scalar(r#"delete from "session" where "userId" = $1 returning "token""#)
                .bind(user_id.to_owned())
                .fetch_all(&mut *tx)
                .await?
        };
        self.insert_session(&mut *tx, new).await?;
        tx.commit().await?;
        Ok(tokens)
    }
}

#[async_trait]
impl Health for SqlStore<$db> {
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

#[async_trait]
impl SessionStore for SqlStore<$db> {
    async fn create_session(&self, session: &Session, _now: DateTime<Utc>) -> Result<(), StoreError> {
        self.insert_session(&self.pool, session).await?;
        Ok(())
    }

    async fn find_session(&self, token: &str) -> Result<Option<(Session, User)>, StoreError> {
        // A read: tried again once on a fresh connection when the first one turns out dead
        // (a server restart or a terminated backend leaves idle connections broken).
        let mut attempt = 0;
        let row = loop {
            let mut conn = self.hot.take().await?;
            let res = sqlx::query(&self.sql.find_session)
                .bind(token.to_owned())
                .fetch_optional(conn.get()?)
                .await
                .map_err(StoreError::from);
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
                session_from(&r, &self.extras)?,
                user_from(&r, SESSION_CORE_COLS + self.extras.len())?,
            ))),
        }
    }

    async fn touch_session(
        &self,
        token: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
        due_by: DateTime<Utc>,
    ) -> Result<Touched, StoreError> {
        let mut conn = self.hot.take().await?;
        let row = sqlx::query(&self.sql.touch_session)
            .bind(expires_at)
            .bind(now)
            .bind(token.to_owned())
            .bind(due_by)
            .fetch_optional(conn.get()?)
            .await?;
        conn.release();
        if let Some(r) = row {
            return Ok(Touched::Refreshed(Box::new(session_from(&r, &self.extras)?)));
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

    async fn update_session_fields(
        &self,
        token: &str,
        fields: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let mut sets = String::from(r#""updatedAt" = $1"#);
        let mut kinds = Vec::new();
        for c in &self.extras {
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
        Ok(row.map(|r| session_from(&r, &self.extras)).transpose()?)
    }

    async fn delete_session(&self, token: &str, _now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(r#"delete from "session" where "token" = $1"#)
            .bind(token.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_user_session(
        &self,
        user_id: &str,
        token: &str,
        _now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(r#"delete from "session" where "token" = $1 and "userId" = $2"#)
            .bind(token.to_owned())
            .bind(user_id.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_user_sessions(
        &self,
        user_id: &str,
        _now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let tokens = sqlx::query_scalar(r#"delete from "session" where "userId" = $1 returning "token""#)
            .bind(user_id.to_owned())
            .fetch_all(&self.pool)
            .await?;
        Ok(tokens)
    }

    async fn delete_other_sessions(
        &self,
        user_id: &str,
        keep_token: &str,
        _now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let tokens = sqlx::query_scalar(
            r#"delete from "session" where "userId" = $1 and "token" <> $2 returning "token""#,
        )
        .bind(user_id.to_owned())
        .bind(keep_token.to_owned())
        .fetch_all(&self.pool)
        .await?;
        Ok(tokens)
    }

    async fn replace_user_sessions(
        &self,
        user_id: &str,
        new: &Session,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        self.replace(user_id, new, now, false).await
    }

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
            let res = sqlx::query(&self.sql.list_sessions)
                .bind(user_id.to_owned())
                .bind(now)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(conn.get()?)
                .await
                .map_err(StoreError::from);
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
            .map(|r| session_from(r, &self.extras).map_err(StoreError::from))
            .collect()
    }
}

#[async_trait]
impl PrimaryStore for SqlStore<$db> {
    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        let sql = format!(r#"select {USER_COLS} from "user" u where u."id" = $1"#);
        let row = sqlx::query(&sql).bind(id.to_owned()).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| user_from(&r, 0)).transpose()?)
    }

    async fn end_sessions(
        &self,
        target: EndTarget<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        Ok(Self::end(&self.pool, target, now).await?)
    }

    async fn end_and_replace_user_sessions(
        &self,
        user_id: &str,
        new: &Session,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        self.replace(user_id, new, now, true).await
    }
}
    };
}

sql_store!(Postgres);
sql_store!(Sqlite);

/// Columns are read by position (names would be hashed per column per row): a user's
/// seven columns start at `at`, in [`USER_COLS`]' order.
fn user_from<R: Row>(r: &R, at: usize) -> Result<User, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'q> String: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> bool: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> DateTime<Utc>: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    Ok(User {
        id: r.try_get(at)?,
        name: r.try_get(at + 1)?,
        email: r.try_get(at + 2)?,
        email_verified: r.try_get(at + 3)?,
        image: r.try_get(at + 4)?,
        created_at: r.try_get(at + 5)?,
        updated_at: r.try_get(at + 6)?,
        extra: Map::new(),
    })
}

/// A session row in [`Statements`]' column order: the eight core columns, then the
/// additional ones (read by position, as [`user_from`]).
fn session_from<R: Row>(r: &R, extras: &[ExtraColumn]) -> Result<Session, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'q> String: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> i64: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> bool: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> DateTime<Utc>: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    let mut extra = Map::new();
    for (i, c) in extras.iter().enumerate() {
        let at = SESSION_CORE_COLS + i;
        let v = match c.kind {
            FieldType::String => r.try_get::<Option<String>, _>(at)?.map(Value::from),
            FieldType::Number => r.try_get::<Option<i64>, _>(at)?.map(Value::from),
            FieldType::Boolean => r.try_get::<Option<bool>, _>(at)?.map(Value::from),
        };
        extra.insert(c.name.clone(), v.unwrap_or(Value::Null));
    }
    Ok(Session {
        id: r.try_get(0)?,
        token: r.try_get(1)?,
        user_id: r.try_get(2)?,
        expires_at: r.try_get(3)?,
        created_at: r.try_get(4)?,
        updated_at: r.try_get(5)?,
        ip_address: r.try_get(6)?,
        user_agent: r.try_get(7)?,
        extra,
    })
}

/// Binds one additional field's JSON value with its column's type.
fn bind_extra<'q, DB: Database>(
    q: sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>,
    kind: FieldType,
    v: Option<&Value>,
) -> sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<bool>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    match kind {
        FieldType::String => q.bind(v.and_then(Value::as_str).map(String::from)),
        FieldType::Number => q.bind(v.and_then(Value::as_i64)),
        FieldType::Boolean => q.bind(v.and_then(Value::as_bool)),
    }
}
