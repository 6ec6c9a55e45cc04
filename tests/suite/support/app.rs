//! sessiond in-process on a random port, on SQLite (a temporary directory) or PostgreSQL
//! (a fresh database per test), with a manual clock, and plain HTTP to it: responses read
//! whole, a browser-like cookie jar, and the scenarios most tests start with.

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sessiond::app::Application;
use sessiond::clock::ManualClock;
use sessiond::config::Settings;
use sqlx::Connection;

use super::pg::PgDb;

pub const SECRET: &str = "test-secret-pDnpbDQCm8JUcKkHnVm6vMGpnsNZGm";
pub const BASE_URL: &str = "http://sessiond.test";
pub const ORIGIN: &str = "http://sessiond.test";
pub const PASSWORD: &str = "correct-horse-battery";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
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

/// Spawns an app on `backend` with settings tweaked by `f`.
pub async fn spawn_with(backend: Backend, f: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut s = test_settings();
    s.data_dir = dir.path().to_path_buf();
    let pg = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(PgDb::create().await),
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
    TestApp {
        base: format!("http://{addr}{}", s.base_path),
        addr,
        client,
        clock,
        backend,
        db_url,
        _pg: pg,
        _dir: dir,
    }
}

pub async fn spawn(backend: Backend) -> TestApp {
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

    /// `/readyz`'s detailed answer (checks by name).
    pub async fn readyz(&self) -> Value {
        let url = format!("http://{}/readyz", self.addr);
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until `/readyz` answers 200: the revocation listeners are up, so cached
    /// sessions minted from now on are trusted (a cache minted before a listener connects
    /// is revalidated against the store). Bounded: fails after 200 tries.
    pub async fn wait_ready(&self) {
        for _ in 0..200 {
            if self.ready_status().await == 200 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("/readyz never answered 200");
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

    /// A jar holding the session cookie of a bare `token`, signed with the test secret.
    pub fn jar_for(&self, token: &str) -> Jar {
        let key = sessiond::crypto::signed::SigningKey::new(SECRET.as_bytes()).unwrap();
        let value = sessiond::http::set_cookie::encode_uri_component(&key.sign(token));
        let mut jar = Jar::default();
        jar.cookies.insert(TOKEN_COOKIE.into(), value);
        jar
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

    /// Signs in with `rememberMe: false` (a browser-session cookie and the
    /// `dont_remember` flag); returns its jar and the response.
    pub async fn sign_in_unremembered(&self, email: &str) -> (Jar, Res) {
        let mut jar = Jar::default();
        let res = self
            .post(
                "/sign-in/email",
                serde_json::json!({"email": email, "password": PASSWORD, "rememberMe": false}),
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

pub fn unique_email() -> String {
    format!(
        "user-{}@example.com",
        sessiond::crypto::token::generate_id().to_lowercase()
    )
}
