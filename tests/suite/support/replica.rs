//! A PostgreSQL streaming replica of the test server, made once per test run with
//! `pg_basebackup` and run as the `postgres` user on a free port; removed when the test
//! process exits (a watchdog shell waits for it). Tests that pause its replay take
//! [`PgReplica::exclusive`] so that they do not see each other's lag.

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::Connection;

use super::pg::admin_url;
use super::process::free_port;
use super::services::unavailable;

const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct PgReplica {
    pub port: u16,
}

static REPLICA: OnceLock<PgReplica> = OnceLock::new();
static EXCLUSIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `cmd` as the `postgres` user; its output when it fails.
fn as_postgres(args: &[&str]) -> Result<(), String> {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("runuser: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The shell command dropping `slot` on the primary.
fn drop_slot_cmd(host: &str, port: &str, slot: &str) -> String {
    format!(
        "{BIN}/psql -h {host} -p {port} -U postgres -d postgres -qAtc \
         \"select pg_drop_replication_slot('{slot}')\" >/dev/null 2>&1"
    )
}

/// Drops the slots of test processes that are gone (their watchdog could not run).
fn sweep_slots(host: &str, port: &str) {
    let out = Command::new(format!("{BIN}/psql"))
        .args(["-h", host, "-p", port, "-U", "postgres", "-d", "postgres", "-qAtc"])
        .arg("select slot_name from pg_replication_slots where slot_name like 'sessiond_test_%' and not active")
        .output();
    let Ok(out) = out else { return };
    for slot in String::from_utf8_lossy(&out.stdout).lines() {
        let pid = slot.split('_').nth(2).unwrap_or("");
        let alive = !pid.is_empty() && std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            let _ = Command::new("sh")
                .args(["-c", &drop_slot_cmd(host, port, slot)])
                .status();
        }
    }
}

impl PgReplica {
    /// The replica, made on first use (fails the test when it cannot be).
    pub fn get() -> &'static PgReplica {
        REPLICA.get_or_init(Self::make)
    }

    /// Held by a test for as long as it relies on the replica's replay (pausing it, or
    /// counting reads that a paused replica would divert).
    pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
        EXCLUSIVE.lock().await
    }

    fn make() -> PgReplica {
        let admin = url::Url::parse(&admin_url()).unwrap();
        let (host, port) = (
            admin.host_str().unwrap_or("127.0.0.1").to_owned(),
            admin.port().unwrap_or(5432),
        );
        let dir = std::env::temp_dir().join(format!(
            "sessiond-replica-{}",
            sessiond::crypto::token::generate_id().to_lowercase()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("data");
        let started = Instant::now();
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status();
        if !chown.is_ok_and(|s| s.success()) {
            unavailable(
                "a `postgres` OS user",
                "the replica tests run PostgreSQL as it",
            );
        }
        let data_s = data.to_str().unwrap();
        let port_s = port.to_string();
        // A slot keeps the primary's WAL until the replica has it: a busy primary (whole
        // suites creating and dropping databases, each drop a checkpoint) otherwise
        // recycles segments the replica has not streamed yet. Named after this process, so
        // that slots of processes gone without cleaning up are found and dropped.
        sweep_slots(&host, &port_s);
        let slot = format!(
            "sessiond_test_{}_{}",
            std::process::id(),
            sessiond::crypto::token::generate_id()[..8].to_lowercase()
        );
        if let Err(e) = as_postgres(&[
            &format!("{BIN}/pg_basebackup"),
            "-h",
            &host,
            "-p",
            &port_s,
            "-U",
            "postgres",
            "-D",
            data_s,
            "-R",
            "-X",
            "stream",
            "-C",
            "-S",
            &slot,
        ]) {
            let _ = std::fs::remove_dir_all(&dir);
            unavailable(
                &format!("pg_basebackup from {host}:{port} ({e})"),
                "the primary must allow replication: wal_level = replica, max_wal_senders > 0, and a pg_hba.conf line `host replication all 127.0.0.1/32 trust` (a reload applies it)",
            );
        }
        eprintln!("replica base backup took {:?}", started.elapsed());
        // The primary's configuration files live outside its data directory (Debian):
        // the replica gets its own.
        std::fs::write(data.join("postgresql.conf"), "").unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhost all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        std::fs::write(data.join("pg_ident.conf"), "").unwrap();
        Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .unwrap();
        let rport = free_port();
        let log = dir.join("replica.log");
        let started = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{BIN}/pg_ctl"), "-D", data_s])
            .args(["-l", log.to_str().unwrap(), "-w", "-t", "60", "start", "-o"])
            .arg(format!(
                "-p {rport} -k {} -c listen_addresses=127.0.0.1 -c hot_standby=on -c max_connections=100",
                dir.display()
            ))
            .stdout(Stdio::null())
            .status();
        if !started.is_ok_and(|s| s.success()) {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = std::fs::remove_dir_all(&dir);
            unavailable(
                &format!("the replica on port {rport}: {log}"),
                "see its log",
            );
        }
        // Stopped and removed once this process is gone, however it ends.
        let watchdog = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             runuser -u postgres -- {BIN}/pg_ctl -D {data} stop -m immediate >/dev/null 2>&1; \
             {drop}; rm -rf {dir}",
            pid = std::process::id(),
            data = data.display(),
            dir = dir.display(),
            drop = drop_slot_cmd(&host, &port_s, &slot),
        );
        // Detached (the shell that starts it exits at once), so it outlives this process.
        Command::new("sh")
            .args(["-c", &format!("( {watchdog} ) >/dev/null 2>&1 &")])
            .stdin(Stdio::null())
            .status()
            .unwrap();
        PgReplica { port: rport }
    }

    /// `db` on the replica (by name), once the replica has it.
    pub async fn url_for(&self, db: &str) -> String {
        let url = format!("postgres://postgres@127.0.0.1:{}/{db}", self.port);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(c) = sqlx::PgConnection::connect(&url).await {
                let _ = c.close().await;
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "database {db} never reached the replica"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn admin(&self) -> sqlx::PgConnection {
        let url = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        sqlx::PgConnection::connect(&url).await.unwrap()
    }

    /// Stops replaying WAL (the replica keeps answering, with what it had): lag made to
    /// order. Resumed when the guard drops.
    pub async fn pause(&'static self) -> Paused {
        let mut c = self.admin().await;
        sqlx::query("select pg_wal_replay_pause()")
            .execute(&mut c)
            .await
            .unwrap();
        // Paused once it says so (a pause requested is taken at the next record).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state: String = sqlx::query_scalar("select pg_get_wal_replay_pause_state()")
                .fetch_one(&mut c)
                .await
                .unwrap();
            if state == "paused" {
                break;
            }
            assert!(Instant::now() < deadline, "replay never paused");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Paused { replica: self }
    }

    /// Resumes replay.
    pub async fn resume(&self) {
        let mut c = self.admin().await;
        sqlx::query("select pg_wal_replay_resume()")
            .execute(&mut c)
            .await
            .unwrap();
    }

    /// Runs a query returning one number on `db` on the replica.
    pub async fn count(&self, db: &str, sql: &str) -> i64 {
        let url = format!("postgres://postgres@127.0.0.1:{}/{db}", self.port);
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    }
}

/// Replay paused until dropped.
pub struct Paused {
    replica: &'static PgReplica,
}

impl Paused {
    pub async fn resume(self) {
        self.replica.resume().await;
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        // Resumed whatever happened (a failed assertion included), on a private runtime.
        let replica = self.replica;
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(replica.resume());
        })
        .join();
    }
}
