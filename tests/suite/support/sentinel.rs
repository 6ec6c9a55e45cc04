//! A Redis Sentinel set-up on loopback: a master, one replica and three sentinels, each a
//! private process on a free port, killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::free_port;
use super::redis::PrivateRedis;
use super::services::require_tool;

pub const MASTER_NAME: &str = "sessiond-test";

/// One `redis-server --sentinel`.
pub struct Sentinel {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    /// Starts a sentinel watching the master on `master` (none: a sentinel that knows
    /// no master).
    pub fn start(master: Option<u16>) -> Self {
        require_tool("redis-server");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        let mut text = format!(
            "port {port}\nbind 127.0.0.1\ndir {}\n",
            dir.path().display()
        );
        if let Some(m) = master {
            text.push_str(&format!(
                "sentinel monitor {MASTER_NAME} 127.0.0.1 {m} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                 sentinel failover-timeout {MASTER_NAME} 5000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n"
            ));
        }
        std::fs::write(&conf, text).unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s = Self {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sentinel did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The master, its replica and three sentinels watching them.
pub struct SentinelSet {
    pub master: PrivateRedis,
    pub replica: PrivateRedis,
    sentinels: Vec<Sentinel>,
}

impl SentinelSet {
    /// Starts everything and waits until the sentinels know the replica and each other.
    pub async fn start() -> Self {
        require_tool("redis-server");
        let master = PrivateRedis::start(&[]).await;
        let mport = master.port.to_string();
        let replica = PrivateRedis::start(&["--replicaof", "127.0.0.1", &mport]).await;
        let sentinels = (0..3).map(|_| Sentinel::start(Some(master.port))).collect();
        let set = Self {
            master,
            replica,
            sentinels,
        };
        set.wait_settled().await;
        set
    }

    /// The sentinels' addresses, as `redis.sentinel.urls` takes them (JSON).
    pub fn urls_json(&self) -> String {
        let urls: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        serde_json::to_string(&urls).unwrap()
    }

    async fn ask(port: u16, args: &[&str]) -> Option<redis::Value> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
        let mut c = client.get_multiplexed_async_connection().await.ok()?;
        let mut cmd = redis::cmd("SENTINEL");
        for a in args {
            cmd.arg(*a);
        }
        cmd.query_async(&mut c).await.ok()
    }

    /// Every sentinel's view of the master: (other sentinels, replicas) it knows.
    async fn views(&self) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        for s in &self.sentinels {
            let v = Self::ask(s.port, &["master", MASTER_NAME]).await;
            let map: std::collections::HashMap<String, String> = v
                .and_then(|v| redis::FromRedisValue::from_redis_value(v).ok())
                .unwrap_or_default();
            let n = |k: &str| map.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
            out.push((n("num-other-sentinels"), n("num-slaves")));
        }
        out
    }

    async fn wait_settled(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let views = self.views().await;
            if views
                .iter()
                .all(|&(others, replicas)| others == 2 && replicas == 1)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sentinels did not settle: {views:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A sentinel's port.
    pub fn sentinel_port(&self) -> u16 {
        self.sentinels[0].port
    }

    /// The master's port as the first sentinel names it.
    pub async fn master_port(&self) -> Option<u16> {
        let v = Self::ask(
            self.sentinels[0].port,
            &["get-master-addr-by-name", MASTER_NAME],
        )
        .await?;
        let (_, port): (String, u16) = redis::FromRedisValue::from_redis_value(v).ok()?;
        Some(port)
    }
}
