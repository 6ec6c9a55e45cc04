//! Redis Cluster: two sessiond replicas on a three-master cluster, with a hash-tagged key
//! prefix — sessions served by both, a sign-out and a key deleted by another application
//! reach both cookie caches (keyspace events from the shard holding the keys), and a
//! prefix without a hash tag stops the start, saying why.

use std::time::Duration;

use serde_json::json;

use crate::replicas::signed_up;
use crate::sentinel::{percent_decode, probe, revocation_guaranteed, sign_in, wait_until};
use crate::support::cluster::PrivateCluster;
use crate::support::process::{command, free_port, Server};
use crate::support::PgDb;

const SECRET: &str = "cluster-test-secret-Vt4Yp8Qs2Mx6Kc9Hn3Bw7Jr5";

fn sessiond(db: &PgDb, cluster: &PrivateCluster, prefix: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env("DATABASE_URL", &db.url)
        .env("BETTER_AUTH_SECRET", SECRET)
        .env("SESSIOND_BASE_URL", "http://sessiond.test")
        .env("SESSIOND_SESSION__COOKIE_CACHE__ENABLED", "true")
        .env(
            "SESSIOND_REDIS__CLUSTER__URLS",
            serde_json::to_string(&cluster.urls()).unwrap(),
        )
        .env("SESSIOND_REDIS__KEY_PREFIX", prefix)
        .env("SESSIOND_REDIS__KEYSPACE_NOTIFICATIONS", "configure")
        .env("SESSIOND_LOG__LEVEL", "warn");
    let (server, _) = Server::start_with_stderr(cmd, std::process::Stdio::null());
    (server, dir)
}

#[test]
fn sessions_and_revocations_on_a_cluster() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt.block_on(PrivateCluster::start());
    let db = rt.block_on(PgDb::create());
    let prefix = format!("{{{}}}:", sessiond::crypto::token::generate_id());
    let servers: Vec<_> = (0..2).map(|_| sessiond(&db, &cluster, &prefix)).collect();
    let client = reqwest::blocking::Client::new();
    for (s, _) in &servers {
        wait_until("revocation feed not guaranteed", || {
            revocation_guaranteed(&client, s)
        });
    }
    let email = signed_up(&client, &servers[0].0);
    let (victim, _) = sign_in(&client, &servers[0].0, &email);
    let (other_app_victim, _) = sign_in(&client, &servers[1].0, &email);
    for (s, _) in &servers {
        assert_eq!(probe(&client, s, &victim), Some(true));
        assert_eq!(probe(&client, s, &other_app_victim), Some(true));
    }
    let out = client
        .post(servers[0].0.url("/sign-out"))
        .header("origin", "http://sessiond.test")
        .header("cookie", &victim)
        .json(&json!({}))
        .send()
        .unwrap();
    assert_eq!(out.status(), 200);
    let signed_out = wait_until("sign-out did not reach replica 1", || {
        probe(&client, &servers[1].0, &victim) == Some(false)
    });
    let token = other_app_victim
        .split("; ")
        .find_map(|c| c.split_once("session_token=").map(|(_, v)| v.to_string()))
        .unwrap();
    let key = format!(
        "{prefix}{}",
        percent_decode(token.split('.').next().unwrap())
    );
    rt.block_on(async {
        let node = cluster.node_of(&key).await;
        let mut c = node.conn().await.unwrap();
        let n: i64 = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(n, 1);
    });
    let deleted = std::time::Instant::now();
    for (s, _) in &servers {
        wait_until("a deleted key did not reach a replica", || {
            probe(&client, s, &other_app_victim) == Some(false)
        });
    }
    eprintln!(
        "cluster: sign-out refused on the other replica after {} ms, a key deleted by \
         another application on both after {} ms",
        signed_out.as_millis(),
        deleted.elapsed().as_millis()
    );
    assert!(signed_out < Duration::from_secs(5) && deleted.elapsed() < Duration::from_secs(5));
}

/// Without a hash tag in the key prefix the scripts' keys would be in different slots:
/// sessiond refuses to start and says why.
#[test]
fn a_prefix_without_hash_tag_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .env("BETTER_AUTH_SECRET", SECRET)
        .env("SESSIOND_PORT", free_port().to_string())
        .env("SESSIOND_REDIS__CLUSTER__URLS", r#"["127.0.0.1:7000"]"#)
        .env("SESSIOND_REDIS__KEY_PREFIX", "better-auth:")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hash tag") && err.contains("one slot"),
        "{err}"
    );
}

/// A cluster node that misbehaves: sessiond answers 503 while it does, never grows its
/// memory with it, and serves again as soon as the node behaves. A command whose answer
/// never comes (a stalled node, a proxy holding the connection open) used to leave every
/// later command queued behind it until a restart; an endless `CLUSTER SLOTS` reply was
/// read without end (gigabytes within seconds).
#[test]
fn a_stalled_or_endless_node_is_dropped_and_replaced() {
    crate::support::require_tool("python3");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let backend = rt.block_on(crate::support::PrivateRedis::start(&[]));
    let db = rt.block_on(PgDb::create());
    let dir = tempfile::tempdir().unwrap();
    let mode = dir.path().join("mode");
    let set_mode = |m: &str| std::fs::write(&mode, m).unwrap();
    set_mode("normal");
    let port = free_port();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/suite/support/fake_cluster_node.py"
    );
    let node = std::process::Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .arg(backend.port.to_string())
        .arg(&mode)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed however the test ends.
    let _node = KillOnDrop(node);
    let mut cmd = command(dir.path());
    cmd.env("DATABASE_URL", &db.url)
        .env("BETTER_AUTH_SECRET", SECRET)
        .env("SESSIOND_BASE_URL", "http://sessiond.test")
        .env(
            "SESSIOND_REDIS__CLUSTER__URLS",
            format!(r#"["127.0.0.1:{port}"]"#),
        )
        .env("SESSIOND_REDIS__KEY_PREFIX", "{fake}:")
        .env("SESSIOND_REDIS__KEYSPACE_NOTIFICATIONS", "off")
        .env("SESSIOND_LOG__LEVEL", "error");
    wait_until("the fake node does not listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let (s, _) = Server::start_with_stderr(cmd, std::process::Stdio::null());
    let client = reqwest::blocking::Client::new();
    let email = signed_up(&client, &s);
    let (cookie, _) = sign_in(&client, &s, &email);
    assert_eq!(probe(&client, &s, &cookie), Some(true));

    for bad in ["stallcmd", "slots_huge"] {
        set_mode(bad);
        for _ in 0..3 {
            assert_eq!(probe(&client, &s, &cookie), None, "{bad}");
        }
        set_mode("normal");
        wait_until(&format!("not served again after {bad}"), || {
            probe(&client, &s, &cookie) == Some(true)
        });
        // Nothing keeps reading in the background: memory stays flat.
        let before = crate::support::process::rss_kib(s.child.id());
        std::thread::sleep(Duration::from_secs(3));
        let after = crate::support::process::rss_kib(s.child.id());
        assert!(
            after < 1024 * 1024 && after <= before + 64 * 1024,
            "{bad}: RSS {before} KiB, then {after} KiB"
        );
    }
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
