//! One connection type for every way of reaching Redis, so that the stores and the
//! revocation feed keep one code path: a fixed address (`redis.url`, redis-rs's
//! reconnecting `ConnectionManager`), a master found through Redis Sentinel
//! ([`super::redis_sentinel`], which follows failovers), or a Redis Cluster
//! ([`super::redis_cluster`]).

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::redis_cluster::{ClusterConn, ClusterTarget};
use super::redis_sentinel::{SentinelConn, SentinelTarget};
use super::StoreError;
use crate::config::{redis_addr, sentinel_addr, RedisSettings};

/// How long data sent to Redis may stay unacknowledged before the kernel gives the
/// connection up (TCP_USER_TIMEOUT). A network that goes silent (a partition, packets
/// dropped without a reset) fails each call at its response timeout but leaves the
/// connection in place, retransmitting ever more rarely: after a long silence it would
/// come back tens of seconds, up to two minutes, after the network did. Given up, it is
/// replaced by a new one, which answers as soon as the network does.
pub(crate) const SILENT_NETWORK: Duration = Duration::from_secs(5);

/// The TCP settings of every connection to Redis (servers, sentinels, cluster nodes).
pub(crate) fn tcp_settings() -> redis::io::tcp::TcpSettings {
    redis::io::tcp::TcpSettings::default().set_user_timeout(SILENT_NETWORK)
}

/// A client for `info` whose connections are given up after [`SILENT_NETWORK`].
pub(crate) fn open_client(
    info: impl redis::IntoConnectionInfo,
) -> redis::RedisResult<redis::Client> {
    redis::Client::open(
        info.into_connection_info()?
            .set_tcp_settings(tcp_settings()),
    )
}

/// After a connection could not be made, calls fail at once for this long rather than
/// each trying again: a Redis lost under load is not followed by a storm of attempts.
pub(crate) const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);

/// The connection in use, shared by every clone of its owner: made by the first call
/// that finds none (the others wait for it), dropped when a call on it fails, made anew
/// by the next call, and numbered, so that an old call's failure does not drop a newer
/// connection. After a failure to make one, calls fail at once for
/// [`RECONNECT_BACKOFF`].
pub(crate) struct Reconnecting<T> {
    state: Mutex<Slot<T>>,
}

struct Slot<T> {
    current: Option<(u64, T)>,
    made: u64,
    failed: Option<(Instant, RedisError)>,
}

impl<T: Clone> Reconnecting<T> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(Slot {
                current: None,
                made: 0,
                failed: None,
            }),
        }
    }

    /// The connection in use and its number; made with `make` (given the number it
    /// will have) when there is none.
    pub(crate) async fn get<F>(&self, make: impl FnOnce(u64) -> F) -> RedisResult<(u64, T)>
    where
        F: Future<Output = RedisResult<T>>,
    {
        let mut st = self.state.lock().await;
        if let Some((n, c)) = &st.current {
            return Ok((*n, c.clone()));
        }
        if let Some((at, e)) = &st.failed {
            if at.elapsed() < RECONNECT_BACKOFF {
                return Err(e.clone());
            }
        }
        let n = st.made + 1;
        match make(n).await {
            Ok(c) => {
                st.made = n;
                st.failed = None;
                st.current = Some((n, c.clone()));
                Ok((n, c))
            }
            Err(e) => {
                st.failed = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    /// The connection in use, if there is one (none is made).
    pub(crate) async fn peek(&self) -> Option<(u64, T)> {
        self.state.lock().await.current.clone()
    }

    /// Drops connection `n` if it is still the one in use; whether it was.
    pub(crate) async fn forget(&self, n: u64) -> bool {
        let mut st = self.state.lock().await;
        let current = st.current.as_ref().is_some_and(|(m, _)| *m == n);
        if current {
            st.current = None;
        }
        current
    }
}

/// Where Redis is, read from the settings once; each [`RedisConn`] is made from it.
#[derive(Clone)]
pub enum RedisTarget {
    /// One server at a fixed address.
    Single(redis::Client),
    /// The master the sentinels name.
    Sentinel(SentinelTarget),
    /// A cluster.
    Cluster(ClusterTarget),
}

impl RedisTarget {
    /// Reads the settings (already validated at start).
    pub fn new(s: &RedisSettings) -> Result<Self, StoreError> {
        if s.cluster.enabled() {
            let nodes = s
                .cluster
                .urls
                .iter()
                .map(|u| redis_addr(u, 6379))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::Backend(e.into()))?;
            return Ok(Self::Cluster(ClusterTarget {
                nodes,
                username: s.cluster.username.clone(),
                password: s.cluster.password.clone(),
                slot_key: format!("{}sessiond:slot", s.key_prefix),
            }));
        }
        if !s.sentinel.enabled() {
            return Ok(Self::Single(open_client(s.url.expose_secret())?));
        }
        let sentinels = s
            .sentinel
            .urls
            .iter()
            .map(|u| sentinel_addr(u))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Backend(e.into()))?;
        Ok(Self::Sentinel(SentinelTarget {
            master_name: s.sentinel.master_name.clone(),
            sentinels,
            username: s.sentinel.username.clone(),
            password: s.sentinel.password.clone(),
        }))
    }

    /// The database keyspace events are announced for.
    pub fn db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_connection_info().redis_settings().db(),
            Self::Sentinel(_) | Self::Cluster(_) => 0,
        }
    }
}

/// Connection limits: how long a connection attempt and a reply may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Connecting (TCP and hand-shake).
    pub connect: Duration,
    /// Waiting for one reply.
    pub response: Duration,
    /// Reconnection attempts of a fixed-address connection before a command fails.
    pub retries: usize,
}

/// A connection to wherever Redis currently is: cheap to clone, shared by every request.
#[derive(Clone)]
pub enum RedisConn {
    /// A fixed address.
    Single(ConnectionManager),
    /// The current master of a Sentinel set-up.
    Sentinel(SentinelConn),
    /// A cluster.
    Cluster(ClusterConn),
}

impl RedisConn {
    /// Connects: fails when Redis cannot be reached now, so that a wrong address, a
    /// wrong master name or no reachable sentinel stops sessiond at start.
    pub async fn connect(target: &RedisTarget, t: Timeouts) -> Result<Self, StoreError> {
        match target {
            RedisTarget::Single(client) => {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(t.connect))
                    .set_response_timeout(Some(t.response))
                    .set_number_of_retries(t.retries);
                Ok(Self::Single(
                    ConnectionManager::new_with_config(client.clone(), config).await?,
                ))
            }
            RedisTarget::Sentinel(s) => Ok(Self::Sentinel(SentinelConn::connect(s, t).await?)),
            RedisTarget::Cluster(c) => Ok(Self::Cluster(ClusterConn::connect(c, t).await?)),
        }
    }

    /// A client for the server the revocation subscriber listens on now, and a name for
    /// that server (see [`Self::still_serves`]).
    pub async fn subscriber_client(
        &self,
        target: &RedisTarget,
    ) -> redis::RedisResult<(redis::Client, String)> {
        match (self, target) {
            (Self::Sentinel(s), _) => s.master_client().await,
            (Self::Cluster(c), _) => c.master_client().await,
            (Self::Single(_), RedisTarget::Single(c)) => Ok((c.clone(), String::new())),
            (Self::Single(_), _) => Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "a fixed-address connection for another target",
            ))),
        }
    }

    /// Whether the server named `server` (by [`Self::subscriber_client`]) is still the
    /// one to listen on: after a failover the old master may live on as a replica, where
    /// nothing is announced any more; in a cluster the slot may have moved.
    pub async fn still_serves(&self, server: &str) -> bool {
        match self {
            Self::Single(_) => true,
            Self::Sentinel(s) => s.still_serves(server),
            // Unknown (the cluster unreachable) counts as moved: the subscriber reconnects.
            Self::Cluster(c) => c.slot_master().await.is_ok_and(|m| m == server),
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Sentinel(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Sentinel(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Sentinel(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}
