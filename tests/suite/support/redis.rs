//! Redis: the shared server at `TEST_REDIS_URL` (default 127.0.0.1:6379), where each test
//! keeps to a key prefix of its own, and private `redis-server`s for tests that flush,
//! reconfigure, stop or restart theirs. With `TEST_REDIS_CLUSTER=host:port,…` the shared
//! Redis is that cluster instead: prefixes carry a hash tag, so each test's keys share a slot.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::process::free_port;
use super::services::{require_tool, unavailable};

/// The shared Redis.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The shared Redis Cluster's nodes, when the suite runs on one.
fn shared_cluster() -> Option<Vec<String>> {
    let nodes = std::env::var("TEST_REDIS_CLUSTER").ok()?;
    let nodes: Vec<String> = nodes
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect();
    (!nodes.is_empty()).then_some(nodes)
}

/// Points `r` at the shared Redis (or cluster) under `prefix`, from `redis_prefix`.
pub fn use_shared_redis(r: &mut sessiond::config::RedisSettings, prefix: String) {
    match shared_cluster() {
        Some(nodes) => r.cluster.urls = nodes,
        None => r.url = redis_url().into(),
    }
    r.key_prefix = prefix;
}

/// A connection to the shared Redis that sees the keys under `prefix`: on a cluster, the
/// node owning the prefix's hash-tag slot (found by asking each which answers without
/// redirecting), so that the tests read and scan keys as on one server.
pub async fn shared_redis_conn(prefix: &str) -> redis::aio::MultiplexedConnection {
    let Some(nodes) = shared_cluster() else {
        return redis_conn(&redis_url()).await;
    };
    for n in &nodes {
        let mut c = redis_conn(&format!("redis://{n}")).await;
        let r: redis::RedisResult<redis::Value> =
            redis::cmd("TYPE").arg(prefix).query_async(&mut c).await;
        if r.is_ok() {
            return c;
        }
    }
    panic!("no node of TEST_REDIS_CLUSTER ({nodes:?}) owns the slot of {prefix}");
}

/// A connection to the Redis at `url`; fails the test when it is unreachable.
pub async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    let conn = match redis::Client::open(url) {
        Ok(c) => c.get_multiplexed_async_connection().await,
        Err(e) => Err(e),
    };
    conn.unwrap_or_else(|e| {
        unavailable(
            &format!("Redis at {url} ({e})"),
            "start it, or point TEST_REDIS_URL at one",
        )
    })
}

/// A unique key prefix, so that tests sharing one Redis never see each other's keys.
pub fn redis_prefix() -> String {
    let id = sessiond::crypto::token::generate_id();
    match shared_cluster() {
        Some(_) => format!("{{t{id}}}:"),
        None => format!("t{id}:"),
    }
}

/// A private redis-server, so that a test may flush, reconfigure, stop and restart it.
pub struct PrivateRedis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
}

impl PrivateRedis {
    /// Starts one with `args`; fails the test when `redis-server` is not installed.
    pub async fn start(args: &[&str]) -> Self {
        require_tool("redis-server");
        let port = free_port();
        let mut r = Self {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        r.up().await;
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub async fn up(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..100 {
            if self.conn().await.is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start");
    }

    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn conn(&self) -> Option<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url())
            .ok()?
            .get_multiplexed_async_connection()
            .await
            .ok()
    }

    pub async fn cmd(&self, args: &[&str]) {
        let mut c = self.conn().await.unwrap();
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        let _: redis::Value = cmd.query_async(&mut c).await.unwrap();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.down();
    }
}
