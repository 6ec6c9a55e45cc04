//! The service API for backends: API keys (missing, wrong, removed → 401; an operation
//! the key lacks → 403; timing independent of how much of a key matches), each operation,
//! paging, revocation refused at once with the cookie cache on, and its caps.

use std::time::Instant;

use reqwest::Method;
use serde_json::{json, Value};
use sessiond::config::{hash_key, Operation, ServiceKey, Settings};

use crate::on_both_backends;
use crate::support::*;

const FULL: &str = "full-access-key-0123456789abcdefghijklmnopqrstuv";
const LIST_ONLY: &str = "list-only-key-0123456789abcdefghijklmnopqrstuvw";
const PREFIX: &str = "/service/v1";

fn key(name: &str, k: &str, ops: &[Operation]) -> ServiceKey {
    ServiceKey {
        name: name.into(),
        hash: hash_key(k),
        operations: ops.to_vec(),
    }
}

fn configure(s: &mut Settings) {
    s.plugins.admin.enabled = true;
    s.session.cookie_cache.enabled = true;
    s.service_api.enabled = true;
    s.service_api.keys = vec![
        key(
            "backend",
            FULL,
            &[
                Operation::SessionsList,
                Operation::SessionsRevoke,
                Operation::UsersRevokeSessions,
                Operation::UsersBan,
            ],
        ),
        key("reader", LIST_ONLY, &[Operation::SessionsList]),
    ];
}

pub(crate) async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Res {
    let mut req = app
        .client
        .request(method, format!("http://{}{PREFIX}{path}", app.addr));
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    Res {
        status: resp.status(),
        headers: resp.headers().clone(),
        text: resp.text().await.unwrap(),
    }
}

/// A call with the key allowed everything.
async fn full(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Res {
    call(app, method, path, Some(FULL), body).await
}

async fn list_page(app: &TestApp, uid: &str, query: &str) -> Res {
    full(
        app,
        Method::GET,
        &format!("/users/{uid}/sessions{query}"),
        None,
    )
    .await
}

/// Signs up a user; its id and jar.
async fn user(app: &TestApp) -> (String, Jar) {
    let (jar, res) = app.sign_up(&unique_email()).await;
    (res.json()["user"]["id"].as_str().unwrap().to_owned(), jar)
}

async fn signed_in(app: &TestApp, jar: &Jar) -> bool {
    let res = app.get("/get-session", &mut jar.clone()).await;
    assert_eq!(res.status, 200, "{}", res.text);
    !res.json().is_null()
}

async fn keys_are_checked(backend: Backend) {
    let app = spawn_with(backend, configure).await;
    let (uid, _) = user(&app).await;
    let path = format!("/users/{uid}/sessions");
    for (k, why) in [
        (None, "missing"),
        (
            Some("wrong-key-0123456789abcdefghijklmnopqrstuvwxyz"),
            "wrong",
        ),
        (Some(""), "empty"),
        (Some(&FULL[..FULL.len() - 1]), "truncated"),
    ] {
        let res = call(&app, Method::GET, &path, k, None).await;
        assert_eq!(res.status, 401, "{why}: {}", res.text);
        assert_eq!(res.code().as_deref(), Some("INVALID_API_KEY"), "{why}");
    }
    // Another scheme, or the key as a cookie, is no key.
    let res = app
        .client
        .get(format!("http://{}{PREFIX}{path}", app.addr))
        .header("authorization", format!("Basic {FULL}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // The list-only key may list, and nothing else.
    let res = call(&app, Method::GET, &path, Some(LIST_ONLY), None).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    for (m, p, body) in [
        (Method::DELETE, "/sessions/x".to_owned(), None),
        (
            Method::POST,
            "/users/revoke-sessions".to_owned(),
            Some(json!({"userIds": [uid]})),
        ),
        (Method::POST, format!("/users/{uid}/ban"), Some(json!({}))),
        (Method::POST, format!("/users/{uid}/unban"), None),
    ] {
        let res = call(&app, m, &p, Some(LIST_ONLY), body).await;
        assert_eq!(res.status, 403, "{p}: {}", res.text);
        assert_eq!(res.code().as_deref(), Some("OPERATION_NOT_ALLOWED"));
    }
}

async fn a_removed_key_is_refused(backend: Backend) {
    // A key taken out of the configuration no longer opens anything once restarted with it.
    let app = spawn_with(backend, |s| {
        configure(s);
        s.service_api.keys.retain(|k| k.name != "reader");
    })
    .await;
    let (uid, _) = user(&app).await;
    let res = call(
        &app,
        Method::GET,
        &format!("/users/{uid}/sessions"),
        Some(LIST_ONLY),
        None,
    )
    .await;
    assert_eq!(res.status, 401, "{}", res.text);
    let res = list_page(&app, &uid, "").await;
    assert_eq!(res.status, 200);
}

async fn lists_sessions_page_by_page(backend: Backend) {
    let app = spawn_with(backend, configure).await;
    let email = unique_email();
    let (jar, res) = app.sign_up(&email).await;
    let uid = res.json()["user"]["id"].as_str().unwrap().to_owned();
    let token = jar.get(TOKEN_COOKIE).cloned().unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        app.clock.advance_secs(1);
        let (_, r) = app.sign_in(&email, PASSWORD).await;
        assert_eq!(r.status, 200);
    }
    let mut cursor: Option<String> = None;
    for page in 0..3 {
        let q = match &cursor {
            Some(c) => format!("?limit=2&cursor={}", urlencoding(c)),
            None => "?limit=2".into(),
        };
        let res = list_page(&app, &uid, &q).await;
        assert_eq!(res.status, 200, "{}", res.text);
        let body = res.json();
        let got = body["sessions"].as_array().unwrap();
        assert_eq!(
            got.len(),
            if page < 2 { 2 } else { 1 },
            "page {page}: {body}"
        );
        for s in got {
            assert_eq!(s["userId"], uid);
            assert!(s.get("token").is_none(), "no token is listed: {s}");
            ids.push(s["id"].as_str().unwrap().to_owned());
        }
        assert!(!res.text.contains(token.split('.').next().unwrap()));
        cursor = body["nextCursor"].as_str().map(String::from);
        if page == 2 {
            assert!(cursor.is_none(), "the last page has no next cursor");
        }
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "each session once: {ids:?}");
    // Bad paging input is a 400 with a code, never a 500.
    for q in [
        "?limit=0",
        "?limit=101",
        "?limit=x",
        "?cursor=nonsense",
        "?limit=-1",
    ] {
        let res = list_page(&app, &uid, q).await;
        assert_eq!(res.status, 400, "{q}: {}", res.text);
        assert!(res.code().is_some());
    }
    // An unknown user has no sessions.
    let res = full(&app, Method::GET, "/users/nobody/sessions", None).await;
    assert_eq!(res.json()["sessions"], json!([]));
}

fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn revocations_are_immediate(backend: Backend) {
    let app = spawn_with(backend, configure).await;
    // One session by id; the user's other session stays.
    let email = unique_email();
    let (jar1, res) = app.sign_up(&email).await;
    let uid = res.json()["user"]["id"].as_str().unwrap().to_owned();
    let (jar2, _) = app.sign_in(&email, PASSWORD).await;
    assert!(signed_in(&app, &jar1).await && signed_in(&app, &jar2).await);
    let sid = app.session(&mut jar1.clone()).await["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = full(&app, Method::DELETE, &format!("/sessions/{sid}"), None).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(
        !signed_in(&app, &jar1).await,
        "revoked by id: refused at once despite the cookie cache"
    );
    assert!(signed_in(&app, &jar2).await);
    let res = full(&app, Method::DELETE, &format!("/sessions/{sid}"), None).await;
    assert_eq!(res.status, 404);
    assert_eq!(res.code().as_deref(), Some("SESSION_NOT_FOUND"));
    // Every session of several users.
    let (uid_b, jar_b) = user(&app).await;
    let (_, jar_c) = user(&app).await;
    let res = full(
        &app,
        Method::POST,
        "/users/revoke-sessions",
        Some(json!({"userIds": [uid, uid_b, "nobody"]})),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json()["revoked"], 2);
    assert!(!signed_in(&app, &jar2).await && !signed_in(&app, &jar_b).await);
    assert!(
        signed_in(&app, &jar_c).await,
        "a user not named keeps their session"
    );
}

async fn ban_ends_sessions_and_unban_lets_back_in(backend: Backend) {
    let app = spawn_with(backend, configure).await;
    let email = unique_email();
    let (jar, res) = app.sign_up(&email).await;
    let uid = res.json()["user"]["id"].as_str().unwrap().to_owned();
    let res = full(
        &app,
        Method::POST,
        &format!("/users/{uid}/ban"),
        Some(json!({"reason": "spam", "expiresIn": 3600})),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json()["revoked"], 1);
    assert!(!signed_in(&app, &jar).await, "banned: refused at once");
    let (_, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(res.status, 403);
    assert_eq!(res.code().as_deref(), Some("BANNED_USER"));
    let res = full(&app, Method::POST, &format!("/users/{uid}/unban"), None).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let (_, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(res.status, 200, "unbanned: {}", res.text);
    // A ban with no body is for good, with Better Auth's default reason.
    let res = full(&app, Method::POST, &format!("/users/{uid}/ban"), None).await;
    assert_eq!(res.status, 200, "{}", res.text);
    app.clock.advance_secs(3650 * 86_400);
    let (_, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(res.status, 403);
    // Unknown users.
    for p in ["/users/nobody/ban", "/users/nobody/unban"] {
        let res = full(&app, Method::POST, p, Some(json!({}))).await;
        assert_eq!(res.status, 404, "{p}");
        assert_eq!(res.code().as_deref(), Some("USER_NOT_FOUND"));
    }
}

async fn caps_are_enforced(backend: Backend) {
    let app = spawn_with(backend, configure).await;
    let (uid, _) = user(&app).await;
    let many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    let cases = [
        (
            "/users/revoke-sessions".to_owned(),
            json!({"userIds": many}),
            400,
        ),
        (
            "/users/revoke-sessions".to_owned(),
            json!({"userIds": []}),
            400,
        ),
        (
            "/users/revoke-sessions".to_owned(),
            json!({"userIds": ["x".repeat(256)]}),
            400,
        ),
        (
            "/users/revoke-sessions".to_owned(),
            json!({"userIds": "x"}),
            400,
        ),
        (
            "/users/revoke-sessions".to_owned(),
            json!({"userIds": ["a"], "extra": 1}),
            400,
        ),
        (
            "/users/revoke-sessions".to_owned(),
            json!({"userIds": ["y"], "pad": "z".repeat(20_000)}),
            413,
        ),
        (
            format!("/users/{uid}/ban"),
            json!({"reason": "r".repeat(1025)}),
            400,
        ),
        (
            format!("/users/{uid}/ban"),
            json!({"reason": "a\u{0}b"}),
            400,
        ),
        (format!("/users/{uid}/ban"), json!({"expiresIn": 0}), 400),
        (format!("/users/{uid}/ban"), json!({"expiresIn": -5}), 400),
        (format!("/users/{uid}/ban"), json!({"expiresIn": 1e30}), 400),
    ];
    for (p, body, want) in cases {
        let res = full(&app, Method::POST, &p, Some(body)).await;
        assert_eq!(res.status, want, "{p}: {}", res.text);
        assert!(res.code().is_some(), "{p}: a JSON error: {}", res.text);
    }
    let long = "x".repeat(300);
    let res = full(&app, Method::DELETE, &format!("/sessions/{long}"), None).await;
    assert_eq!(res.status, 400);
    let res = full(&app, Method::GET, "/users/%FF%FE/sessions", None).await;
    assert_eq!(res.status, 400, "{}", res.text);
    // The service API is no part of the browser API: unknown there.
    let res = app
        .get("/../service/v1/users/x/sessions", &mut Jar::default())
        .await;
    assert_eq!(res.status, 404);
}

on_both_backends!(
    keys_are_checked,
    a_removed_key_is_refused,
    lists_sessions_page_by_page,
    revocations_are_immediate,
    ban_ends_sessions_and_unban_lets_back_in,
    caps_are_enforced,
);

/// The time to refuse a wrong key does not depend on how many of its leading characters
/// match a real key: medians of many attempts sharing 0 and 31 leading characters stay
/// within a generous factor of each other (no absolute duration is asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_timing_does_not_depend_on_the_matching_prefix() {
    let app = spawn_with(Backend::Sqlite, configure).await;
    let far: String = FULL
        .chars()
        .map(|c| if c == '#' { '$' } else { '#' })
        .collect();
    let near = format!("{}{}", &FULL[..31], &far[31..]);
    assert_eq!(near.len(), FULL.len());
    let mut samples: [Vec<u128>; 2] = [Vec::new(), Vec::new()];
    // Interleaved, so drift in machine load hits both groups alike.
    for i in 0..600 {
        let which = i % 2;
        let k = if which == 0 { &far } else { &near };
        let t = Instant::now();
        let res = call(&app, Method::GET, "/users/u/sessions", Some(k), None).await;
        let ns = t.elapsed().as_nanos();
        assert_eq!(res.status, 401);
        samples[which].push(ns);
    }
    let median = |v: &mut Vec<u128>| {
        v.sort_unstable();
        v[v.len() / 2] as f64
    };
    let (a, b) = (median(&mut samples[0]), median(&mut samples[1]));
    let ratio = a.max(b) / a.min(b);
    assert!(
        ratio < 2.0,
        "medians differ by {ratio:.2}: 0 shared {a} ns, 31 shared {b} ns"
    );
}

/// `service_api` settings that cannot work are refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_settings_are_refused() {
    let mut s = test_settings();
    configure(&mut s);
    s.plugins.admin.enabled = false;
    let e = s.validate().unwrap_err().to_string();
    assert!(
        e.contains("users:ban") && e.contains("plugins.admin"),
        "{e}"
    );
    let mut s = test_settings();
    configure(&mut s);
    s.service_api.keys[0].hash = "abc".into();
    assert!(s.validate().unwrap_err().to_string().contains("hash"));
    let mut s = test_settings();
    configure(&mut s);
    s.redis.url = "redis://127.0.0.1:6379".into();
    assert!(s
        .validate()
        .unwrap_err()
        .to_string()
        .contains("sessions:revoke"));
    let mut s = test_settings();
    configure(&mut s);
    s.service_api.path_prefix = "/svc/{x}".into();
    assert!(s.validate().is_err());
    let mut s = test_settings();
    configure(&mut s);
    s.database.url = "memory".into();
    assert!(s.validate().is_err());
}

/// On a listener of its own (and not on the main one), every call is logged with the key's
/// name and operation, and no log line holds a key, good or wrong.
#[test]
fn calls_are_logged_by_key_name_never_the_key() {
    use crate::support::process::{command, free_port, Server};
    let dir = tempfile::tempdir().unwrap();
    let svc_port = free_port();
    let wrong = "a-wrong-key-that-must-never-be-logged-0123456789";
    let config = format!(
        "[plugins.admin]\nenabled = true\n[service_api]\nenabled = true\nlisten = \"127.0.0.1:{svc_port}\"\n\
         [[service_api.keys]]\nname = \"billing\"\nhash = \"{}\"\noperations = [\"users:revoke-sessions\"]\n",
        hash_key(FULL)
    );
    std::fs::write(dir.path().join("sessiond.toml"), config).unwrap();
    let mut cmd = command(dir.path());
    cmd.args(["--config", "sessiond.toml"])
        .env("BETTER_AUTH_SECRET", SECRET)
        .env("SESSIOND_LOG__FORMAT", "json");
    let (server, client) = Server::start(cmd);
    let svc = format!("http://127.0.0.1:{svc_port}{PREFIX}/users/revoke-sessions");
    let body = json!({"userIds": ["someone"]});
    let res = client
        .post(&svc)
        .bearer_auth(FULL)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client
        .post(&svc)
        .bearer_auth(wrong)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(res.status(), 401);
    // The main listener does not serve it.
    let res = client
        .post(server.root(&format!("{PREFIX}/users/revoke-sessions")))
        .bearer_auth(FULL)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(res.status(), 404);
    let mut child = server;
    let pid = child.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let out = child.wait_stderr();
    let calls: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("service api call"))
        .collect();
    assert_eq!(calls.len(), 1, "{out}");
    assert!(calls[0].contains("billing") && calls[0].contains("users:revoke-sessions"));
    assert!(out.contains("unknown API key"), "{out}");
    for needle in [FULL, wrong, &FULL[..20], &wrong[..20]] {
        assert!(!out.contains(needle), "log leaked a key: {out}");
    }
}
