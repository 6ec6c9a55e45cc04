//! Test harness: spawns sessiond in-process on a random port, on SQLite (a temporary
//! directory) or PostgreSQL (a fresh database per test on 127.0.0.1:5432), with a manual
//! clock, and talks plain HTTP to it.
//!
//! PostgreSQL tests skip loudly when the server is unreachable, unless
//! `REQUIRE_TEST_SERVICES=1` (CI), which turns the skip into a failure.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sessiond::app::Application;
use sessiond::clock::ManualClock;
use sessiond::config::Settings;
use sqlx::Connection;

pub const SECRET: &str = "test-secret-pDnpbDQCm8JUcKkHnVm6vMGpnsNZGm";
pub const BASE_URL: &str = "http://sessiond.test";
pub const ORIGIN: &str = "http://sessiond.test";
pub const PASSWORD: &str = "correct-horse-battery";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn services_required() -> bool {
    std::env::var("REQUIRE_TEST_SERVICES").is_ok_and(|v| v == "1" || v == "true")
}

/// A fresh PostgreSQL database, dropped when this value is.
pub struct PgDb {
    pub name: String,
    pub url: String,
}

impl PgDb {
    /// Creates a database, or `None` (loudly) when PostgreSQL is unreachable and not required.
    pub async fn create() -> Option<Self> {
        let admin = admin_url();
        let mut conn = match sqlx::PgConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    !services_required(),
                    "PostgreSQL is required but unreachable at {admin}: {e}"
                );
                eprintln!("\n!!! SKIPPING PostgreSQL test: {admin} unreachable ({e}) !!!\n");
                return None;
            }
        };
        let name = format!(
            "sessiond_t_{}",
            sessiond::crypto::token::generate_id().to_lowercase()
        );
        sqlx::query(&format!("create database {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
        Some(Self {
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = admin_url();
        // Dropping happens outside any runtime; use a private one on a thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
                        .execute(&mut c)
                        .await;
                }
            });
        })
        .join();
    }
}

pub struct TestApp {
    pub addr: String,
    pub base: String,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub backend: Backend,
    pub db_url: String,
    _pg: Option<PgDb>,
    _dir: tempfile::TempDir,
}

/// Default test settings: fixed secret and base URL, random port.
pub fn test_settings() -> Settings {
    Settings {
        port: 0,
        secret: SECRET.into(),
        base_url: BASE_URL.into(),
        ..Settings::default()
    }
}

/// Spawns an app on `backend` with settings tweaked by `f`; `None` when the backend is
/// unavailable and not required.
pub async fn spawn_with(backend: Backend, f: impl FnOnce(&mut Settings)) -> Option<TestApp> {
    let dir = tempfile::tempdir().unwrap();
    let mut s = test_settings();
    s.data_dir = dir.path().to_path_buf();
    let pg = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(PgDb::create().await?),
    };
    if let Some(pg) = &pg {
        s.database.url = pg.url.clone().into();
        s.database.max_connections = 4;
    }
    f(&mut s);
    let db_url = if s.database.url.is_empty() {
        format!("sqlite://{}", dir.path().join("sessiond.db").display())
    } else {
        s.database.url.expose_secret().to_owned()
    };
    let clock = ManualClock::starting_now();
    let app = Application::build_with_clock(s.clone(), Arc::new(clock.clone()))
        .await
        .unwrap();
    let addr = app.local_addr().unwrap().to_string();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Some(TestApp {
        base: format!("http://{addr}{}", s.base_path),
        addr,
        client,
        clock,
        backend,
        db_url,
        _pg: pg,
        _dir: dir,
    })
}

pub async fn spawn(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, |_| {}).await
}

/// A response, read whole.
#[derive(Debug)]
pub struct Res {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Res {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// Every `Set-Cookie` line, in order.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    /// The `Set-Cookie` line for `name` (the last one if several).
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .rev()
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    pub fn code(&self) -> Option<String> {
        self.json()
            .get("code")
            .and_then(|c| c.as_str())
            .map(String::from)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
}

/// A browser-like cookie jar: applies `Set-Cookie` lines (Max-Age=0 deletes).
#[derive(Debug, Default, Clone)]
pub struct Jar {
    pub cookies: BTreeMap<String, String>,
}

impl Jar {
    pub fn absorb(&mut self, res: &Res) {
        for line in res.set_cookies() {
            let first = line.split(';').next().unwrap();
            let (name, value) = first.split_once('=').unwrap();
            if line.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
    }

    pub fn header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn get(&self, name: &str) -> Option<&String> {
        self.cookies.get(name)
    }
}

pub const TOKEN_COOKIE: &str = "better-auth.session_token";
pub const DONT_REMEMBER_COOKIE: &str = "better-auth.dont_remember";

impl TestApp {
    /// The status of `/readyz`.
    pub async fn ready_status(&self) -> u16 {
        let url = format!("http://{}/readyz", self.addr);
        self.client.get(url).send().await.unwrap().status().as_u16()
    }

    /// The test clock's current time in ms.
    pub fn clock_ms(&self) -> i64 {
        use sessiond::clock::Clock;
        self.clock.now_ms()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request; `jar` cookies are sent and updated from the response.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        jar: Option<&mut Jar>,
        headers: &[(&str, &str)],
    ) -> Res {
        let mut req = self.client.request(method.clone(), self.url(path));
        if method == Method::POST {
            req = req.header("origin", ORIGIN);
        }
        if let Some(j) = jar.as_deref() {
            if !j.cookies.is_empty() {
                req = req.header("cookie", j.header());
            }
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let res = Res {
            status: resp.status(),
            headers: resp.headers().clone(),
            text: resp.text().await.unwrap(),
        };
        if let Some(j) = jar {
            j.absorb(&res);
        }
        res
    }

    /// `GET path` with only `Authorization: Bearer <token>`.
    pub async fn get_bearer(&self, path: &str, token: &str) -> Res {
        let auth = format!("Bearer {token}");
        self.send(Method::GET, path, None, None, &[("authorization", &auth)])
            .await
    }

    pub async fn get(&self, path: &str, jar: &mut Jar) -> Res {
        self.send(Method::GET, path, None, Some(jar), &[]).await
    }

    pub async fn post(&self, path: &str, body: Value, jar: &mut Jar) -> Res {
        self.send(Method::POST, path, Some(body), Some(jar), &[])
            .await
    }

    /// Signs up a new user; returns its jar and the response.
    pub async fn sign_up(&self, email: &str) -> (Jar, Res) {
        let mut jar = Jar::default();
        let res = self
            .post(
                "/sign-up/email",
                serde_json::json!({"name": "Test User", "email": email, "password": PASSWORD}),
                &mut jar,
            )
            .await;
        assert_eq!(res.status, 200, "sign-up failed: {}", res.text);
        (jar, res)
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> (Jar, Res) {
        let mut jar = Jar::default();
        let res = self
            .post(
                "/sign-in/email",
                serde_json::json!({"email": email, "password": password}),
                &mut jar,
            )
            .await;
        (jar, res)
    }

    pub async fn session(&self, jar: &mut Jar) -> Value {
        let res = self.get("/get-session", jar).await;
        assert_eq!(res.status, 200, "{}", res.text);
        res.json()
    }

    /// Runs a statement against the test database.
    pub async fn exec(&self, sql: &str) {
        match self.backend {
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.db_url).await.unwrap();
                sqlx::query(sql).execute(&mut c).await.unwrap();
            }
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.db_url).await.unwrap();
                sqlx::query("pragma foreign_keys = on")
                    .execute(&mut c)
                    .await
                    .unwrap();
                sqlx::query(sql).execute(&mut c).await.unwrap();
            }
        }
    }

    /// Runs a scalar query against the test database (both backends).
    pub async fn count(&self, sql: &str) -> i64 {
        match self.backend {
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.db_url).await.unwrap();
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(&mut c)
                    .await
                    .unwrap()
            }
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.db_url).await.unwrap();
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(&mut c)
                    .await
                    .unwrap()
            }
        }
    }
}

/// Generates a `sqlite` and a `postgres` test for each scenario `fn name(Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::*;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() { super::$name(Backend::Sqlite).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() { super::$name(Backend::Postgres).await }
            }
        )*
    };
}

/// Spawns or returns early (skipped) when the backend is unavailable.
#[macro_export]
macro_rules! app {
    ($b:expr) => {
        match $crate::helpers::spawn($b).await {
            Some(a) => a,
            None => return,
        }
    };
    ($b:expr, $f:expr) => {
        match $crate::helpers::spawn_with($b, $f).await {
            Some(a) => a,
            None => return,
        }
    };
}

pub fn unique_email() -> String {
    format!(
        "user-{}@example.com",
        sessiond::crypto::token::generate_id().to_lowercase()
    )
}

pub fn redis_available() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            !std::env::var("REQUIRE_TEST_SERVICES").is_ok_and(|v| v == "1"),
            "redis-server is required but not installed"
        );
        eprintln!("\n!!! SKIPPING test: redis-server not installed !!!\n");
    }
    found
}

/// A private redis-server, so that a test may flush, reconfigure, stop and restart it.
pub struct PrivateRedis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
}

impl PrivateRedis {
    pub async fn start(args: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
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

/// A TCP relay (to PostgreSQL or Redis): 0 = pass, 1 = refuse (down), 2 = hold every
/// connection and forward nothing (a stall: a partition, a stuck middlebox), 3 = stall only
/// the connections that subscribed (sent `LISTEN` or `SUBSCRIBE`: the revocation feeds),
/// while the others pass.
pub struct Relay {
    pub port: u16,
    mode: Arc<AtomicU8>,
}

impl Relay {
    pub async fn start(target: u16) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(0));
        let m = mode.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let m = m.clone();
                tokio::spawn(async move {
                    match m.load(Ordering::SeqCst) {
                        1 => return,
                        2 => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                        _ => {}
                    }
                    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    let (mut ri, mut wi) = inbound.split();
                    let (mut ro, mut wo) = outbound.split();
                    let subscriber = std::sync::atomic::AtomicBool::new(false);
                    let passing = || match m.load(Ordering::SeqCst) {
                        0 => true,
                        3 => !subscriber.load(Ordering::SeqCst),
                        _ => false,
                    };
                    let up = async {
                        let mut buf = vec![0u8; 16384];
                        loop {
                            let n = ri.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            let text = String::from_utf8_lossy(&buf[..n]).to_ascii_uppercase();
                            if text.contains("SUBSCRIBE") || text.contains("LISTEN") {
                                subscriber.store(true, Ordering::SeqCst);
                            }
                            while !passing() {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            if wo.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    let down = async {
                        let mut buf = vec![0u8; 16384];
                        loop {
                            let n = ro.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            while !passing() {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            if wi.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    let cut = async {
                        while m.load(Ordering::SeqCst) != 1 {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                        _ = cut => {}
                    }
                });
            }
        });
        Self { port, mode }
    }

    pub fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}
