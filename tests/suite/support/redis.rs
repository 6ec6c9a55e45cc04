//! Redis: the shared server at `TEST_REDIS_URL` (default 127.0.0.1:6379), where each test
//! keeps to a key prefix of its own, and private `redis-server`s for tests that flush,
//! reconfigure, stop or restart theirs.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::process::free_port;
use super::services::{require_tool, unavailable};

/// The shared Redis.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
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
    format!("t{}:", sessiond::crypto::token::generate_id())
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
