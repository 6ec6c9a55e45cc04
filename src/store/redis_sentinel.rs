//! Redis Sentinel: the master is the address the sentinels name for `master_name`, and
//! only a server that says it is a master (`ROLE`) is used, so nothing is ever written to
//! a replica. When the master goes away (a connection error, a timeout) or turns out to
//! be a replica (`READONLY`, a failover that demoted it), the connection is dropped and
//! the sentinels are asked again on the next command. Between a master's loss and the
//! failover's end commands fail (the store answers 503); a write refused as `READONLY` was
//! not made, so it is sent once more to the new master.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, Pipeline,
    RedisError, RedisFuture, RedisResult, Value,
};

use super::redis_conn::{Reconnecting, Timeouts};
use crate::config::Secret;

/// The sentinels and what to ask them.
#[derive(Clone)]
pub struct SentinelTarget {
    /// The name the sentinels monitor the master under.
    pub master_name: String,
    /// The sentinels' addresses.
    pub sentinels: Vec<(String, u16)>,
    /// The ACL user on the master (empty: the default user).
    pub username: String,
    /// The master's password (empty: none); sentinels get it when they ask for one.
    pub password: Secret,
}

/// A connection to the current master, shared by every clone.
#[derive(Clone)]
pub struct SentinelConn(Arc<Inner>);

struct Inner {
    target: SentinelTarget,
    timeouts: Timeouts,
    /// The master in use (after the sentinels could not name a usable one, commands fail
    /// at once for a moment rather than each asking them again).
    state: Reconnecting<Master>,
    /// The current master (`host:port`), readable without waiting for a discovery.
    master: StdMutex<String>,
}

#[derive(Clone)]
struct Master {
    name: String,
    client: Client,
    conn: MultiplexedConnection,
    generation: u64,
}

impl SentinelConn {
    /// Finds the master now: fails, naming why, when no sentinel answers or none knows
    /// `master_name`.
    pub async fn connect(target: &SentinelTarget, timeouts: Timeouts) -> RedisResult<Self> {
        let c = Self(Arc::new(Inner {
            target: target.clone(),
            timeouts,
            state: Reconnecting::new(),
            master: StdMutex::new(String::new()),
        }));
        c.0.current().await?;
        tokio::spawn(watch(Arc::downgrade(&c.0)));
        Ok(c)
    }

    /// A client for the current master and its address.
    pub async fn master_client(&self) -> RedisResult<(Client, String)> {
        let m = self.0.current().await?;
        Ok((m.client, m.name))
    }

    /// Whether `name` is the current master.
    pub fn still_serves(&self, name: &str) -> bool {
        *self.0.master.lock().unwrap_or_else(|p| p.into_inner()) == name
    }
}

impl Inner {
    /// The current master, found through the sentinels if there is none.
    async fn current(&self) -> RedisResult<Master> {
        let (_, m) = self
            .state
            .get(|generation| async move {
                let m = self.discover(generation).await?;
                if let Ok(mut name) = self.master.lock() {
                    name.clone_from(&m.name);
                }
                tracing::info!(master = %m.name, "redis master found through the sentinels");
                Ok(m)
            })
            .await?;
        Ok(m)
    }

    /// Drops the master of `generation` after it failed (not a newer one).
    async fn forget(&self, generation: u64, why: &RedisError) {
        if self.state.forget(generation).await {
            tracing::warn!(error = %why, "redis master lost; asking the sentinels again");
        }
    }

    /// Asks every sentinel at once for the master's address (one that stalls costs its
    /// timeout only when no other answers), and connects to the first address given that
    /// is a master.
    async fn discover(&self, generation: u64) -> RedisResult<Master> {
        let mut last = RedisError::from((ErrorKind::EmptySentinelList, "no sentinel configured"));
        let mut asked: FuturesUnordered<_> = self
            .target
            .sentinels
            .iter()
            .map(|(host, port)| async move { (host, *port, self.ask(host, *port).await) })
            .collect();
        while let Some((host, port, answer)) = asked.next().await {
            let (mhost, mport) = match answer {
                Ok(Some(addr)) => addr,
                Ok(None) => {
                    last = RedisError::from((
                        ErrorKind::MasterNameNotFoundBySentinel,
                        "the sentinels know no such master",
                        format!(
                            "sentinel {host}:{port} monitors no master named {:?} \
                             (redis.sentinel.master_name)",
                            self.target.master_name
                        ),
                    ));
                    continue;
                }
                Err(e) => {
                    // A sentinel that answered "no such master" says more than one that
                    // did not answer.
                    if last.kind() != ErrorKind::MasterNameNotFoundBySentinel {
                        last = RedisError::from((
                            ErrorKind::Io,
                            "no sentinel answered",
                            format!("sentinel {host}:{port}: {e}"),
                        ));
                    }
                    continue;
                }
            };
            match self.open_master(&mhost, mport, generation).await {
                Ok(m) => return Ok(m),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// `SENTINEL get-master-addr-by-name`: `None` when the sentinel knows no such master.
    async fn ask(&self, host: &str, port: u16) -> RedisResult<Option<(String, u16)>> {
        let mut q = redis::cmd("SENTINEL");
        q.arg("get-master-addr-by-name")
            .arg(&self.target.master_name);
        let mut conn = self.open(host, port, false).await?.1;
        let reply: RedisResult<Option<(String, String)>> = match q.query_async(&mut conn).await {
            // A sentinel with a password of its own: the master's is what it is given.
            Err(e) if needs_auth(&e) && !self.target.password.is_empty() => {
                let mut conn = self.open(host, port, true).await?.1;
                q.query_async(&mut conn).await
            }
            other => other,
        };
        let Some((h, p)) = reply? else {
            return Ok(None);
        };
        let p = p.parse().map_err(|_| {
            RedisError::from((
                ErrorKind::Parse,
                "a sentinel named a master with an unreadable port",
                p,
            ))
        })?;
        Ok(Some((h, p)))
    }

    /// Connects to a server the sentinels named and checks that it is the master.
    async fn open_master(&self, host: &str, port: u16, generation: u64) -> RedisResult<Master> {
        let (client, mut conn) = self.open(host, port, true).await?;
        let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
        let name = format!("{host}:{port}");
        if !says_master(&role) {
            return Err(RedisError::from((
                ErrorKind::Client,
                "the server the sentinels name is not a master (a failover under way)",
                name,
            )));
        }
        Ok(Master {
            name,
            client,
            conn,
            generation,
        })
    }

    /// A connection to `host:port`, with the master's credentials when `auth`.
    async fn open(
        &self,
        host: &str,
        port: u16,
        auth: bool,
    ) -> RedisResult<(Client, MultiplexedConnection)> {
        let mut redis = redis::RedisConnectionInfo::default();
        if auth && !self.target.username.is_empty() {
            redis = redis.set_username(&self.target.username);
        }
        if auth && !self.target.password.is_empty() {
            redis = redis.set_password(self.target.password.expose_secret());
        }
        let info = ConnectionAddr::Tcp(host.to_string(), port)
            .into_connection_info()?
            .set_redis_settings(redis);
        let client = super::redis_conn::open_client(info)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeouts.connect))
            .set_response_timeout(Some(self.timeouts.response));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok((client, conn))
    }
}

/// How often the master in use is asked whether it still is one.
const ROLE_CHECK: Duration = Duration::from_secs(1);

/// Asks the master in use, every [`ROLE_CHECK`], whether it still is one, for as long as
/// the connection is used: a master demoted by a failover (a partition healed, a manual
/// failover) stays up as a replica, where reads would go on and writes fail.
async fn watch(inner: std::sync::Weak<Inner>) {
    loop {
        tokio::time::sleep(ROLE_CHECK).await;
        let Some(inner) = inner.upgrade() else { return };
        let Some((_, m)) = inner.state.peek().await else {
            continue;
        };
        let mut conn = m.conn.clone();
        let role: RedisResult<Vec<Value>> = redis::cmd("ROLE").query_async(&mut conn).await;
        match role {
            Ok(r) if says_master(&r) => {}
            Ok(_) => {
                let e = RedisError::from((ErrorKind::Client, "the master became a replica"));
                inner.forget(m.generation, &e).await;
            }
            Err(e) if lost_master(&e) => inner.forget(m.generation, &e).await,
            Err(_) => {}
        }
    }
}

fn says_master(role: &[Value]) -> bool {
    match role.first() {
        Some(Value::BulkString(b)) => b.as_slice() == b"master",
        Some(Value::SimpleString(s)) => s == "master",
        _ => false,
    }
}

fn needs_auth(e: &RedisError) -> bool {
    e.kind() == ErrorKind::AuthenticationFailed || e.code() == Some("NOAUTH")
}

/// Whether an error means the master is gone or is no longer the master.
fn lost_master(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || refused_as_replica(e)
}

/// A write refused by a replica (`READONLY`, also inside a script), which was not made.
fn refused_as_replica(e: &RedisError) -> bool {
    e.code() == Some("READONLY") || e.to_string().contains("READONLY")
}

impl ConnectionLike for SentinelConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut resent = false;
            loop {
                let m = self.0.current().await?;
                let mut conn = m.conn;
                match conn.req_packed_command(cmd).await {
                    Err(e) if lost_master(&e) => {
                        self.0.forget(m.generation, &e).await;
                        if resent || !refused_as_replica(&e) {
                            return Err(e);
                        }
                        resent = true;
                    }
                    other => return other,
                }
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let m = self.0.current().await?;
            let mut conn = m.conn;
            let r = conn.req_packed_commands(cmd, offset, count).await;
            if let Err(e) = &r {
                if lost_master(e) {
                    self.0.forget(m.generation, e).await;
                }
            }
            r
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}
