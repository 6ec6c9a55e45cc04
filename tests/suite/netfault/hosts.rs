//! The programs on a [`Net`]'s hosts: a private PostgreSQL 15 and a private Redis, each
//! alone in its namespace, and sessiond replicas, each in its own, all killed when dropped.

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::net::{run, Net};
use crate::support::process::BIN;
use crate::support::{require_tool, unavailable};

pub const SECRET: &str = "netfault-test-secret-q7RzK2mVbX9cLpW4sT8nYhD3jF6";
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A child process, killed when dropped.
pub struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `ready` every 100 ms until it holds; fails after `secs` seconds naming `what`.
pub async fn wait_for(what: &str, secs: u64, mut ready: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ready().await {
        assert!(Instant::now() < deadline, "{what} not ready after {secs} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// PostgreSQL on `host`, port 5432, trusting the net; data in a temporary directory.
pub struct Postgres {
    pub url: String,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Postgres {
    pub async fn start(net: &Net, host: &str) -> Self {
        if !std::path::Path::new(&format!("{PG_BIN}/initdb")).exists() {
            unavailable(
                &format!("PostgreSQL 15's programs ({PG_BIN})"),
                "install postgresql-15",
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let path = dir.path().to_str().unwrap().to_string();
        run("chown", &["postgres:postgres", &path]);
        let as_postgres = ["--reuid=postgres", "--regid=postgres", "--init-groups"];
        let out = Command::new("setpriv")
            .args(as_postgres)
            .arg(format!("{PG_BIN}/initdb"))
            .args(["-U", "postgres", "-A", "trust", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {out:?}");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhost all all 0.0.0.0/0 trust\n",
        )
        .unwrap();
        let ip = net.host(host).ip.clone();
        let log = File::create(dir.path().join("postgres.log")).unwrap();
        let child = net
            .command(host, "setpriv")
            .args(as_postgres)
            .arg(format!("{PG_BIN}/postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", "5432", "-c", &format!("listen_addresses={ip}")])
            .args(["-c", &format!("unix_socket_directories={path}")])
            .args(["-c", "fsync=off", "-c", "max_connections=60"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let pg = Self {
            url: format!("postgres://postgres@{ip}:5432/postgres"),
            _proc: Proc(child),
            _dir: dir,
        };
        let url = pg.url.clone();
        wait_for("PostgreSQL", 60, async || {
            use sqlx::Connection;
            sqlx::PgConnection::connect(&url).await.is_ok()
        })
        .await;
        pg
    }
}

/// redis-server on `host`, port 6379, nothing saved.
pub struct Redis {
    pub url: String,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Redis {
    pub async fn start(net: &Net, host: &str) -> Self {
        require_tool("redis-server");
        let dir = tempfile::tempdir().unwrap();
        let ip = net.host(host).ip.clone();
        let child = net
            .command(host, "redis-server")
            .args(["--bind", &ip, "--port", "6379", "--protected-mode", "no"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let r = Self {
            url: format!("redis://{ip}:6379"),
            _proc: Proc(child),
            _dir: dir,
        };
        let url = r.url.clone();
        wait_for("Redis", 30, async || {
            let Ok(c) = redis::Client::open(url.as_str()) else {
                return false;
            };
            c.get_multiplexed_async_connection().await.is_ok()
        })
        .await;
        r
    }
}

/// A sessiond replica on `host`, port 3000, its log in a temporary directory.
pub struct Replica {
    pub name: String,
    pub base: String,
    dir: tempfile::TempDir,
    _proc: Proc,
}

impl Replica {
    /// Starts the sessiond binary in `host`'s namespace with `env` and waits until it
    /// answers.
    pub async fn start(net: &Net, host: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ip = net.host(host).ip.clone();
        let log = File::create(dir.path().join("sessiond.log")).unwrap();
        let mut cmd = net.command(host, BIN);
        cmd.current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BETTER_AUTH_SECRET", SECRET)
            .env("SESSIOND_HOST", &ip)
            .env("SESSIOND_PORT", "3000")
            .env("SESSIOND_BASE_URL", "http://sessiond.test")
            .env("SESSIOND_LOG__LEVEL", "warn")
            // Far above the test's patience for one request (super::HUNG): a store call
            // that hangs shows as a hang, not as the request timeout's 503.
            .env("SESSIOND_SERVER__REQUEST_TIMEOUT", "300")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log);
        let child = cmd.spawn().unwrap();
        let r = Self {
            name: host.to_string(),
            base: format!("http://{ip}:3000"),
            dir,
            _proc: Proc(child),
        };
        let url = format!("{}/api/auth/ok", r.base);
        let client = reqwest::Client::new();
        wait_for(&format!("sessiond on {host}"), 60, async || {
            client.get(&url).send().await.is_ok()
        })
        .await;
        r
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/auth{path}", self.base)
    }

    /// What it logged so far (for a failure's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sessiond.log")).unwrap_or_default()
    }
}
