//! Where data lives: the database and Redis.

use serde::{Deserialize, Serialize};

use super::Secret;

/// Database connection settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://…` or `sqlite://…`; empty: SQLite at `<data_dir>/sessiond.db`. May
    /// carry a password.
    pub url: Secret,
    /// Connections to the database at most, all uses together: half are kept open for
    /// session reads, the rest (at least two) are the pool for everything else.
    pub max_connections: u32,
    /// Seconds to wait for a pooled connection before answering 503; also how long
    /// get-session's and list-sessions' reads wait for the database to answer (one cut
    /// off without a reset would otherwise hold them until the request timeout).
    pub acquire_timeout: u64,
    /// Apply migrations at start.
    pub migrate_on_start: bool,
    /// A PostgreSQL streaming replica of `url` (`postgres://…`); empty: none. get-session
    /// and list-sessions read from it while it is within `read_max_lag_ms`; everything
    /// else, and whatever this process just wrote, is read from the primary. May carry a
    /// password.
    pub read_url: Secret,
    /// How far behind the primary (ms) the replica may be and still be read from.
    pub read_max_lag_ms: u64,
    /// Connections to the replica at most (its own budget, apart from `max_connections`):
    /// one measures its lag, the others read.
    pub read_max_connections: u32,
}

impl DatabaseSettings {
    /// Whether `read_url` names PostgreSQL.
    pub fn read_is_postgres(&self) -> bool {
        let url = self.read_url.expose_secret();
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    }

    /// Whether the URL names PostgreSQL (`postgres://` or `postgresql://`).
    pub fn is_postgres(&self) -> bool {
        let url = self.url.expose_secret();
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: Secret::default(),
            max_connections: 16,
            acquire_timeout: 5,
            migrate_on_start: true,
            read_url: Secret::default(),
            read_max_lag_ms: 1000,
            read_max_connections: 8,
        }
    }
}

/// Redis (Better Auth's `secondaryStorage`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:6379/0`; empty: no secondary storage. May carry a password.
    pub url: Secret,
    /// Prefix of every key (Better Auth core: none; `@better-auth/redis-storage`:
    /// `better-auth:`).
    pub key_prefix: String,
    /// How session keys deleted by other applications (a Better Auth app sharing this
    /// Redis, an operator) are learned: through Redis keyspace notifications.
    pub keyspace_notifications: KeyspaceNotifications,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: Secret::default(),
            key_prefix: String::new(),
            keyspace_notifications: KeyspaceNotifications::Check,
        }
    }
}

/// Whether sessiond may rely on, or set, Redis's `notify-keyspace-events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyspaceNotifications {
    /// Read the setting on every connection and every second: while deletions are not
    /// announced (flags `E`, `g` and `e` missing), cookie-cache hits are revalidated.
    Check,
    /// As `check`, and set the missing flags (`CONFIG SET`) whenever they are missing:
    /// changes the configuration of a shared Redis, so only when allowed.
    Configure,
    /// The operator guarantees the flags (e.g. a managed Redis's parameter group).
    Assume,
    /// Do not follow deletions by others: a key deleted outside sessiond stays usable from
    /// a cookie cache until it expires (Better Auth's behaviour).
    Off,
}

impl<'de> Deserialize<'de> for KeyspaceNotifications {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Earlier versions took a boolean: true configured Redis, false did nothing.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Name(String),
        }
        match Raw::deserialize(d)? {
            Raw::Flag(true) => Ok(Self::Configure),
            Raw::Flag(false) => Ok(Self::Off),
            Raw::Name(n) => match n.as_str() {
                "check" => Ok(Self::Check),
                "configure" | "true" => Ok(Self::Configure),
                "assume" => Ok(Self::Assume),
                "off" | "false" => Ok(Self::Off),
                other => Err(serde::de::Error::custom(format!(
                    "expected check, configure, assume or off, not {other:?}"
                ))),
            },
        }
    }
}
