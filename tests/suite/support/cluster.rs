//! A three-master Redis Cluster on loopback, each node a private `redis-server` on free
//! ports (client and cluster bus), killed when dropped.

use std::process::Command;
use std::time::{Duration, Instant};

use super::process::free_port;
use super::redis::PrivateRedis;
use super::services::require_tool;

pub struct PrivateCluster {
    pub nodes: Vec<PrivateRedis>,
}

impl PrivateCluster {
    /// Starts three nodes, joins them (`redis-cli --cluster create`, no replicas) and waits
    /// until every node says the cluster is up.
    pub async fn start() -> Self {
        require_tool("redis-cli");
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let bus = free_port().to_string();
            nodes.push(
                PrivateRedis::start(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-port",
                    &bus,
                    "--cluster-node-timeout",
                    "5000",
                ])
                .await,
            );
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Self { nodes };
        let deadline = Instant::now() + Duration::from_secs(60);
        for n in &cluster.nodes {
            loop {
                let mut c = n.conn().await.unwrap();
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut c)
                    .await
                    .unwrap();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster not up: {info}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        cluster
    }

    /// The nodes' addresses, as `redis.cluster.urls` takes them.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect()
    }

    /// The node holding `key`.
    pub async fn node_of(&self, key: &str) -> &PrivateRedis {
        for n in &self.nodes {
            let mut c = n.conn().await.unwrap();
            let r: redis::RedisResult<redis::Value> =
                redis::cmd("TYPE").arg(key).query_async(&mut c).await;
            if r.is_ok() {
                return n;
            }
        }
        panic!("no node holds {key}");
    }
}
