//! Redis Cluster: redis-rs's cluster connection routes each command to the master of its
//! key's slot and follows resharding and failovers (`MOVED`, `ASK`, a lost node). The key
//! prefix holds a hash tag (checked at start), so every key sessiond writes — a session,
//! its user's list, the rate counters, the replicas' markers — is in one slot, and the
//! scripts that change several keys at once run on one node. That slot's master is also
//! where keyspace events for session keys are emitted, so the revocation subscriber
//! listens there (`PUBLISH` reaches every node of a cluster) and moves when the slot does.

use std::sync::Arc;

use redis::aio::ConnectionLike;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    Client, Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, RedisFuture,
    RedisResult, Value,
};

use super::redis_conn::{Reconnecting, Timeouts};
use crate::config::Secret;

/// The nodes to start from and how to log in.
#[derive(Clone)]
pub struct ClusterTarget {
    /// Some of the cluster's nodes.
    pub nodes: Vec<(String, u16)>,
    /// The ACL user (empty: the default user).
    pub username: String,
    /// The password (empty: none).
    pub password: Secret,
    /// A key in sessiond's slot (the key prefix with anything after it).
    pub slot_key: String,
}

/// A connection to the whole cluster, shared by every clone. redis-rs's cluster
/// connection keeps a node connection whose reply never comes (a stalled node, a proxy
/// holding the connection open) and queues every later command behind it, and it reads
/// a reply however long it grows: a call that times out or loses its connection drops
/// the whole cluster connection, and the next call makes a new one from the seed nodes.
#[derive(Clone)]
pub struct ClusterConn(Arc<Shared>);

struct Shared {
    target: ClusterTarget,
    timeouts: Timeouts,
    conn: Reconnecting<ClusterConnection>,
}

impl ClusterConn {
    /// Connects to the cluster; fails when no node answers.
    pub async fn connect(target: &ClusterTarget, t: Timeouts) -> RedisResult<Self> {
        let c = Self(Arc::new(Shared {
            target: target.clone(),
            timeouts: t,
            conn: Reconnecting::new(),
        }));
        c.current().await?;
        Ok(c)
    }

    /// The connection in use, made anew when there is none.
    async fn current(&self) -> RedisResult<(u64, ClusterConnection)> {
        let s = &self.0;
        s.conn.get(|_| open(&s.target, s.timeouts)).await
    }

    /// After a call on connection `n` failed with `e`: drops that connection when the
    /// failure was the connection's (a timeout, a lost or broken connection).
    async fn failed(&self, n: u64, e: &RedisError) {
        let connection_failed = e.is_timeout()
            || e.is_io_error()
            || e.is_connection_dropped()
            || e.is_unrecoverable_error();
        if connection_failed && self.0.conn.forget(n).await {
            tracing::warn!(error = %e, "redis cluster connection dropped; a new one is made");
        }
    }

    /// The master of sessiond's slot (`host:port`), as the cluster tells now.
    pub async fn slot_master(&self) -> RedisResult<String> {
        let mut c = self.clone();
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&self.0.target.slot_key)
            .query_async(&mut c)
            .await?;
        let slots: Vec<Vec<Value>> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut c)
            .await?;
        slots
            .iter()
            .find_map(|range| master_of(range, slot))
            .ok_or_else(|| {
                RedisError::from((ErrorKind::Client, "no master serves the session keys' slot"))
            })
    }

    /// A client for the master of sessiond's slot, and its address.
    pub async fn master_client(&self) -> RedisResult<(Client, String)> {
        let name = self.slot_master().await?;
        let (host, port) = name
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
            .ok_or_else(|| RedisError::from((ErrorKind::Parse, "a node address")))?;
        let mut redis = redis::RedisConnectionInfo::default();
        if !self.0.target.username.is_empty() {
            redis = redis.set_username(&self.0.target.username);
        }
        if !self.0.target.password.is_empty() {
            redis = redis.set_password(self.0.target.password.expose_secret());
        }
        let info = ConnectionAddr::Tcp(host, port)
            .into_connection_info()?
            .set_redis_settings(redis);
        Ok((super::redis_conn::open_client(info)?, name))
    }
}

/// A new cluster connection from the seed nodes.
async fn open(target: &ClusterTarget, t: Timeouts) -> RedisResult<ClusterConnection> {
    let nodes: Vec<ConnectionAddr> = target
        .nodes
        .iter()
        .map(|(h, p)| ConnectionAddr::Tcp(h.clone(), *p))
        .collect();
    let mut b = ClusterClientBuilder::new(nodes)
        .connection_timeout(t.connect)
        .response_timeout(t.response)
        .retries(u32::try_from(t.retries).unwrap_or(u32::MAX))
        .tcp_settings(super::redis_conn::tcp_settings());
    if !target.username.is_empty() {
        b = b.username(&target.username);
    }
    if !target.password.is_empty() {
        b = b.password(target.password.expose_secret());
    }
    // Connecting asks the seeds for the slots: bounded as a call is.
    tokio::time::timeout(t.connect + t.response, b.build()?.get_async_connection())
        .await
        .unwrap_or_else(|_| {
            Err(RedisError::from(std::io::Error::from(
                std::io::ErrorKind::TimedOut,
            )))
        })
}

/// In one `CLUSTER SLOTS` entry (`[start, end, [ip, port, id], replicas…]`), the master's
/// `ip:port` when the range holds `slot`.
fn master_of(range: &[Value], slot: i64) -> Option<String> {
    let int = |v: Option<&Value>| match v {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    };
    let (start, end) = (int(range.first())?, int(range.get(1))?);
    if slot < start || slot > end {
        return None;
    }
    let Some(Value::Array(node)) = range.get(2) else {
        return None;
    };
    let host = match node.first()? {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
        Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    Some(format!("{host}:{}", int(node.get(1))?))
}

impl ConnectionLike for ClusterConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (n, mut c) = self.current().await?;
            let res = c.req_packed_command(cmd).await;
            if let Err(e) = &res {
                self.failed(n, e).await;
            }
            res
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (n, mut c) = self.current().await?;
            let res = c.req_packed_commands(cmd, offset, count).await;
            if let Err(e) = &res {
                self.failed(n, e).await;
            }
            res
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}
