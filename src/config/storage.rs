//! Where data lives: the database and Redis.

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};

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
    /// A master found through Redis Sentinel, instead of `url`.
    pub sentinel: SentinelSettings,
    /// A Redis Cluster, instead of `url`.
    pub cluster: ClusterSettings,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: Secret::default(),
            key_prefix: String::new(),
            keyspace_notifications: KeyspaceNotifications::Check,
            sentinel: SentinelSettings::default(),
            cluster: ClusterSettings::default(),
        }
    }
}

impl RedisSettings {
    /// Whether Redis is configured at all (a URL or sentinels).
    pub fn enabled(&self) -> bool {
        !self.url.is_empty() || self.sentinel.enabled() || self.cluster.enabled()
    }

    /// Refuses a Redis set-up that cannot be used: two ways to reach Redis, a sentinel
    /// set-up without a master name or with an unreadable address.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        self.check_cluster()?;
        let s = &self.sentinel;
        let invalid = |m: String| ConfigError::Invalid(m);
        if !s.enabled() {
            if !s.master_name.is_empty() || !s.username.is_empty() || !s.password.is_empty() {
                return Err(invalid(
                    "redis.sentinel is set without redis.sentinel.urls: list the sentinels".into(),
                ));
            }
            return Ok(());
        }
        if !self.url.is_empty() {
            return Err(invalid(
                "redis.url and redis.sentinel are exclusive: with Sentinel the master's address \
                 comes from the sentinels; leave redis.url (and REDIS_URL) empty"
                    .into(),
            ));
        }
        if s.master_name.trim().is_empty() || s.master_name.chars().any(char::is_whitespace) {
            return Err(invalid(
                "redis.sentinel.master_name must name the master the sentinels monitor".into(),
            ));
        }
        for u in &s.urls {
            sentinel_addr(u).map_err(|e| invalid(format!("redis.sentinel.urls: {e}")))?;
        }
        Ok(())
    }

    fn check_cluster(&self) -> Result<(), ConfigError> {
        let c = &self.cluster;
        let invalid = |m: String| ConfigError::Invalid(m);
        if !c.enabled() {
            if !c.username.is_empty() || !c.password.is_empty() {
                return Err(invalid(
                    "redis.cluster is set without redis.cluster.urls: list the nodes".into(),
                ));
            }
            return Ok(());
        }
        if !self.url.is_empty() || self.sentinel.enabled() {
            return Err(invalid(
                "redis.cluster is exclusive with redis.url (and REDIS_URL) and redis.sentinel"
                    .into(),
            ));
        }
        if !has_hash_tag(&self.key_prefix) {
            return Err(invalid(format!(
                "redis.cluster needs a redis.key_prefix with a hash tag, such as \"{{sessiond}}\" \
                 or \"better-auth:{{s}}:\" (not {:?}): the session scripts change <token> and \
                 active-sessions-<userId> together, which Redis Cluster allows only for keys \
                 in one slot",
                self.key_prefix
            )));
        }
        for u in &c.urls {
            redis_addr(u, 6379).map_err(|e| invalid(format!("redis.cluster.urls: {e}")))?;
        }
        Ok(())
    }
}

/// Whether keys starting with `prefix` all hash to one Redis Cluster slot: the prefix
/// holds a `{…}` with something inside (the first `{` and the first `}` after it).
pub fn has_hash_tag(prefix: &str) -> bool {
    prefix
        .split_once('{')
        .and_then(|(_, rest)| rest.split_once('}'))
        .is_some_and(|(tag, _)| !tag.is_empty())
}

/// Redis Cluster: sessions and their lists in the slot of the key prefix's hash tag.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    /// Some of the cluster's nodes, `host:port` or `redis://host:port` (port 6379 when
    /// left out), without credentials; the rest are learned from them. Empty: no Cluster.
    pub urls: Vec<String>,
    /// The ACL user on the nodes; empty: the default user.
    pub username: String,
    /// The nodes' password.
    pub password: Secret,
}

impl ClusterSettings {
    /// Whether cluster nodes are configured.
    pub fn enabled(&self) -> bool {
        !self.urls.is_empty()
    }
}

/// Redis Sentinel: the master is asked of the sentinels, and asked again after a failover.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SentinelSettings {
    /// The name the sentinels monitor the master under (`sentinel monitor <name> …`).
    pub master_name: String,
    /// The sentinels, `host:port` or `redis://host:port` (port 26379 when left out),
    /// without credentials; empty: no Sentinel.
    pub urls: Vec<String>,
    /// The ACL user on the master; empty: the default user.
    pub username: String,
    /// The master's password, also given to sentinels that ask for one.
    pub password: Secret,
}

impl SentinelSettings {
    /// Whether sentinels are configured.
    pub fn enabled(&self) -> bool {
        !self.urls.is_empty()
    }
}

/// Reads a sentinel address: `host:port` or `redis://host:port`, port 26379 when left out.
pub fn sentinel_addr(text: &str) -> Result<(String, u16), String> {
    redis_addr(text, 26379)
}

/// Reads a Redis address: `host:port` or `redis://host:port`, `default_port` when left out.
pub fn redis_addr(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let full = if text.contains("://") {
        text.to_string()
    } else {
        format!("redis://{text}")
    };
    // Credentials are refused before anything echoes the text: it must not show a password.
    if text.contains('@') {
        return Err(
            "an address here carries no credentials: set the username and password options".into(),
        );
    }
    let url = url::Url::parse(&full).map_err(|e| format!("{text:?} is not an address: {e}"))?;
    if url.scheme() != "redis" {
        return Err(format!("{text:?}: only redis:// addresses are supported"));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() {
        return Err(format!("{text:?}: an address is host:port only"));
    }
    let host = match url.host() {
        Some(url::Host::Ipv6(a)) => a.to_string(),
        Some(h) => h.to_string(),
        None => return Err(format!("{text:?} names no host")),
    };
    Ok((host, url.port().unwrap_or(default_port)))
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

#[cfg(test)]
mod tests {
    use super::{sentinel_addr, RedisSettings};

    fn sentinel(urls: &[&str], name: &str) -> RedisSettings {
        let mut r = RedisSettings::default();
        r.sentinel.urls = urls.iter().map(|u| u.to_string()).collect();
        r.sentinel.master_name = name.into();
        r
    }

    #[test]
    fn sentinel_addresses() {
        assert_eq!(sentinel_addr("s1:26380"), Ok(("s1".into(), 26380)));
        assert_eq!(
            sentinel_addr("redis://10.0.0.2"),
            Ok(("10.0.0.2".into(), 26379))
        );
        assert_eq!(sentinel_addr("[::1]:5000"), Ok(("::1".into(), 5000)));
        for bad in [
            "redis://:pw@s1:26379",
            "redis://u:pw@s1",
            "rediss://s1:26379",
            "s1:26379/0",
            "http://s1",
            "s1:notaport",
            "",
        ] {
            assert!(sentinel_addr(bad).is_err(), "{bad}");
        }
        // A refused address with a password never shows it.
        for bad in [
            "redis://:hunter2@s1",
            "rediss://:hunter2@s1",
            "x://u:hunter2@/",
        ] {
            assert!(
                !sentinel_addr(bad).unwrap_err().contains("hunter2"),
                "{bad}"
            );
        }
    }

    #[test]
    fn cluster_settings() {
        let cluster = |prefix: &str| {
            let mut r = RedisSettings::default();
            r.cluster.urls = vec!["n1:7000".into()];
            r.key_prefix = prefix.into();
            r
        };
        for ok in ["{sessiond}", "better-auth:{s}:", "{a}{b}", "x{y}z"] {
            assert!(cluster(ok).check().is_ok(), "{ok}");
        }
        for bad in ["", "better-auth:", "{}", "{}{a}", "}a{", "{open"] {
            let e = cluster(bad).check().unwrap_err().to_string();
            assert!(e.contains("hash tag"), "{bad}: {e}");
        }
        let mut both = cluster("{s}");
        both.url = "redis://127.0.0.1:6379".into();
        assert!(both.check().unwrap_err().to_string().contains("exclusive"));
        let mut both = cluster("{s}");
        both.sentinel.urls = vec!["s1".into()];
        both.sentinel.master_name = "m".into();
        assert!(both.check().unwrap_err().to_string().contains("exclusive"));
        let mut creds = cluster("{s}");
        creds.cluster.urls.push("redis://:pw@n2".into());
        assert!(!creds.check().unwrap_err().to_string().contains("pw"));
    }

    #[test]
    fn sentinel_settings() {
        assert!(sentinel(&["s1:26379"], "mymaster").check().is_ok());
        let mut both = sentinel(&["s1:26379"], "mymaster");
        both.url = "redis://127.0.0.1:6379".into();
        assert!(both.check().unwrap_err().to_string().contains("exclusive"));
        for name in ["", " ", "my master"] {
            assert!(sentinel(&["s1:26379"], name).check().is_err(), "{name:?}");
        }
        assert!(sentinel(&[], "mymaster").check().is_err());
        assert!(sentinel(&["s1:26379", "redis://:pw@s2"], "m")
            .check()
            .is_err());
        assert!(RedisSettings::default().check().is_ok());
    }
}
