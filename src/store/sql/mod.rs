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

mod capped;
mod error;
mod events;
mod hot;
mod keys;
mod lag;
mod outbox;
mod replica;
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

pub use self::lag::ReplicaState;
pub use self::outbox::PG_EVENT_CHANNEL;
pub use self::replica::with_read_replica;

use self::hot::HotConns;
use super::{PrimaryStore, StoreError};
use crate::config::{DatabaseSettings, FieldType, GenerateId};

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
    /// The jwt plugin's keys (the same database).
    pub keys: Arc<dyn super::keys::KeyStore>,
    /// The event outbox (none in stateless mode).
    pub outbox: Option<Arc<dyn super::outbox::Outbox>>,
    /// The PostgreSQL store itself, for a read replica to be put in front of.
    primary_sql: Option<Arc<SqlStore<sqlx::Postgres>>>,
}

/// An additional column of `user` or `session`.
#[derive(Debug, Clone)]
pub struct ExtraColumn {
    /// Column and JSON name.
    pub name: String,
    /// Value type.
    pub kind: FieldType,
    /// A value is required (the column is `not null` when sessiond adds it).
    pub required: bool,
    /// Value given to rows that existed before the column (when sessiond adds it).
    pub default_value: Option<serde_json::Value>,
}

/// What the configuration says the `user` and `session` tables hold beyond the core.
#[derive(Debug, Clone, Default)]
pub struct Shape {
    /// Additional columns of `user`.
    pub user: Vec<ExtraColumn>,
    /// Additional columns of `session`.
    pub session: Vec<ExtraColumn>,
    /// How ids are made (and so the type of the id columns).
    pub generate_id: GenerateId,
    /// The jwt plugin's `jwks` table is used.
    pub jwks: bool,
    /// Lifecycle events are recorded (the outbox and its triggers).
    pub events: bool,
    /// `session.refreshed` events too.
    pub events_refreshed: bool,
}

/// Opens the configured database (SQLite under `data_dir` when no URL is set), applies
/// migrations when asked, and makes sure additional columns exist.
pub async fn connect(
    db: &DatabaseSettings,
    data_dir: &Path,
    extras: Shape,
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
        let store = Arc::new(super::memory::MemoryStore::new());
        return Ok(Connected {
            store: store.clone(),
            backend: Backend::Memory,
            pg_pool: None,
            keys: store,
            outbox: None,
            primary_sql: None,
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
        let store = Arc::new(SqlStore::new(pool.clone(), hot, extras));
        Ok(Connected {
            store: store.clone(),
            backend: Backend::Postgres,
            pg_pool: Some(pool),
            keys: store.clone(),
            outbox: Some(store.clone()),
            primary_sql: Some(store),
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
        let store = Arc::new(SqlStore::new(pool, hot, extras));
        Ok(Connected {
            store: store.clone(),
            backend: Backend::Sqlite,
            pg_pool: None,
            keys: store.clone(),
            outbox: Some(store),
            primary_sql: None,
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

/// How many core columns a session row starts with (see [`Statements::new`]).
const SESSION_CORE_COLS: usize = 8;

/// How many core columns a user row starts with.
const USER_CORE_COLS_N: usize = 7;

/// A column as selected: numbers are read as 64-bit whatever their width (Better Auth's
/// migrator makes `integer` columns, sessiond `bigint`).
fn selected(alias: &str, c: &ExtraColumn) -> String {
    match c.kind {
        FieldType::Number => format!(r#"cast({alias}"{}" as bigint)"#, c.name),
        _ => format!(r#"{alias}"{}""#, c.name),
    }
}

/// The statements that depend on the configured additional columns, built once. Every
/// session row they return has the same column order (the core columns, then the
/// additional ones), which `session_from` relies on; so has every user row (`user_from`).
struct Statements {
    session_cols: String,
    insert_session: String,
    find_session: String,
    touch_session: String,
    list_sessions: String,
    session_by_id: String,
    /// A user's columns, unqualified (`returning`).
    user_returning: String,
    insert_user: String,
    insert_account: String,
    user_by_id: String,
    user_by_email: String,
    credential_password: String,
    set_password: String,
    end_user_sessions: String,
    delete_user_sessions: String,
    delete_user_session: String,
    delete_other_sessions: String,
    /// `$n` as an id parameter, for statements built per call (`update_user`).
    ids: Ids,
}

/// How ids travel: bound as text everywhere, cast to the id columns' type where
/// PostgreSQL needs it (`uuid` and integer columns compare with no text), and read back as
/// text. Under `serial` the database assigns them: inserts leave `id` out and return it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ids {
    /// The type parameters are cast to (PostgreSQL `uuid`, or `bigint`, which compares
    /// with `integer` columns too). SQLite converts text to its integer columns itself.
    cast: Option<&'static str>,
    /// The id columns are not text: read back cast to it.
    not_text: bool,
    /// The database assigns ids (`serial`).
    assigned: bool,
}

impl Ids {
    fn new(generate_id: GenerateId, postgres: bool) -> Self {
        let (cast, not_text) = match generate_id {
            GenerateId::Uuid if postgres => (Some("uuid"), true),
            GenerateId::Serial if postgres => (Some("bigint"), true),
            GenerateId::Serial => (None, true),
            _ => (None, false),
        };
        Self {
            cast,
            not_text,
            assigned: generate_id == GenerateId::Serial,
        }
    }

    /// Whether the database assigns ids: an insert's statement leaves out the row's id
    /// (its first parameter, which is then not bound).
    pub(super) fn assigned(self) -> bool {
        self.assigned
    }

    /// Parameter `$n` holding an id.
    pub(super) fn param(self, n: usize) -> String {
        match self.cast {
            Some(ty) => format!("cast(${n} as {ty})"),
            None => format!("${n}"),
        }
    }

    /// An id column as selected (read back as text).
    fn col(self, col: &str) -> String {
        if self.not_text {
            format!("cast({col} as text)")
        } else {
            col.to_owned()
        }
    }

    /// `sql` with every `ID($n)` written as [`Self::param`].
    fn sql(self, sql: &str) -> String {
        let mut out = String::with_capacity(sql.len() + 16);
        let mut rest = sql;
        while let Some(at) = rest.find("ID($") {
            out.push_str(rest.get(..at).unwrap_or_default());
            let tail = rest.get(at + 4..).unwrap_or_default();
            let digits = tail.find(')').unwrap_or(0);
            let n = tail.get(..digits).and_then(|d| d.parse().ok()).unwrap_or(0);
            out.push_str(&self.param(n));
            rest = tail.get(digits + 1..).unwrap_or_default();
        }
        out.push_str(rest);
        out
    }

    /// An insert of one row into `table`, every column a parameter in order (`$1`, `$2`,
    /// …), those named in `id_cols` as id parameters, returning the row's id. `cols`
    /// starts with `id`, which is left out (and the others numbered from `$1`) when the
    /// database assigns it.
    fn insert(self, table: &str, cols: &[&str], id_cols: &[&str]) -> String {
        let cols = cols.get(usize::from(self.assigned)..).unwrap_or_default();
        let names: Vec<String> = cols.iter().map(|c| format!(r#""{c}""#)).collect();
        let values: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if id_cols.contains(c) {
                    self.param(i + 1)
                } else {
                    format!("${}", i + 1)
                }
            })
            .collect();
        format!(
            r#"insert into "{table}" ({}) values ({}) returning {}"#,
            names.join(", "),
            values.join(", "),
            self.col(r#""id""#)
        )
    }
}

impl Statements {
    fn new<'a>(shape: &'a Shape, postgres: bool) -> Self {
        let ids = Ids::new(shape.generate_id, postgres);
        // A core column as read (ids as text).
        let column = |alias: &str, c: &str| {
            let col = format!(r#"{alias}"{c}""#);
            if c == "id" || c == "userId" {
                ids.col(&col)
            } else {
                col
            }
        };
        // A table's columns three ways: selected (`alias.`), inserted, returned.
        let columns = |alias: &str, core: &'static [&'static str], extras: &'a [ExtraColumn]| {
            let list =
                |alias: &str| -> Vec<String> { core.iter().map(|c| column(alias, c)).collect() };
            let (mut selected_cols, mut inserted, mut returned) =
                (list(alias), core.to_vec(), list(""));
            for c in extras {
                selected_cols.push(selected(alias, c));
                inserted.push(c.name.as_str());
                returned.push(selected("", c));
            }
            (selected_cols.join(", "), inserted, returned.join(", "))
        };
        let (cols, insert_cols, returning) =
            columns("s.", crate::model::CORE_SESSION_FIELDS, &shape.session);
        let (user_cols, user_insert, user_returning) =
            columns("u.", crate::model::CORE_USER_FIELDS, &shape.user);
        Self {
            insert_session: ids.insert("session", &insert_cols, &["id", "userId"]),
            find_session: format!(
                r#"select {cols}, {user_cols} from "session" s join "user" u on u."id" = s."userId" where s."token" = $1"#
            ),
            touch_session: format!(
                r#"update "session" set "expiresAt" = $1, "updatedAt" = $2
                   where "token" = $3 and "expiresAt" <= $4 and "expiresAt" > "updatedAt" returning {returning}"#
            ),
            list_sessions: ids.sql(&format!(
                r#"select {cols} from "session" s where s."userId" = ID($1) and s."expiresAt" > $2
                   order by s."createdAt" desc, s."id" desc limit $3"#
            )),
            session_by_id: ids.sql(&format!(
                r#"select "token", {} from "session" where "id" = ID($1) and "expiresAt" > $2"#,
                ids.col(r#""userId""#)
            )),
            session_cols: returning,
            insert_user: ids.insert("user", &user_insert, &["id"]),
            insert_account: ids.insert(
                "account",
                &[
                    "id",
                    "accountId",
                    "providerId",
                    "userId",
                    "password",
                    "createdAt",
                    "updatedAt",
                ],
                &["id", "userId"],
            ),
            user_by_id: ids.sql(&format!(
                r#"select {user_cols} from "user" u where u."id" = ID($1)"#
            )),
            user_by_email: format!(
                r#"select {user_cols}, a."password" as "a_password" from "user" u
                   left join "account" a on a."userId" = u."id" and a."providerId" = 'credential'
                     and a."accountId" = {}
                   where u."email" = $1 limit 1"#,
                ids.col(r#"u."id""#)
            ),
            credential_password: ids.sql(
                r#"select "password" from "account"
                   where "userId" = ID($1) and "providerId" = 'credential' and "accountId" = $1 limit 1"#,
            ),
            set_password: ids.sql(
                r#"update "account" set "password" = $1, "updatedAt" = $2
                   where "userId" = ID($3) and "providerId" = 'credential' and "accountId" = $3"#,
            ),
            end_user_sessions: ids.sql(
                r#"update "session" set "expiresAt" = $1, "updatedAt" = $1
                   where "userId" = ID($2) and "expiresAt" > $1 and "token" <> $3 returning "token""#,
            ),
            delete_user_sessions: ids.sql(
                r#"delete from "session" where "userId" = ID($1) returning "token""#,
            ),
            delete_user_session: ids.sql(
                r#"delete from "session" where "token" = $1 and "userId" = ID($2)"#,
            ),
            delete_other_sessions: ids.sql(
                r#"delete from "session" where "userId" = ID($1) and "token" <> $2 returning "token""#,
            ),
            user_returning,
            ids,
        }
    }
}

/// The store over one sqlx pool.
pub struct SqlStore<DB: Database> {
    pool: Pool<DB>,
    hot: HotConns<DB>,
    extras: Shape,
    sql: Statements,
    /// Writes carry their event context (see [`events`]).
    events: bool,
    /// Refreshes are written with their context too (`session.refreshed`).
    refreshed: bool,
}

impl<DB: Database> SqlStore<DB> {
    fn new(pool: Pool<DB>, hot: HotConns<DB>, extras: Shape) -> Self {
        let sql = Statements::new(&extras, DB::NAME == "PostgreSQL");
        Self {
            pool,
            hot,
            events: extras.events,
            refreshed: extras.events && extras.events_refreshed,
            extras,
            sql,
        }
    }
}
