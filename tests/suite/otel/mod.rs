//! OpenTelemetry traces, as a collector receives them: sessiond runs as its own process
//! (the exporter is process-wide) with the `OTEL_*` variables pointing at an OTLP/HTTP
//! receiver in the test ([`receiver`]).

mod forward_auth;
mod receiver;
mod sampling;

use std::process::Command;

use serde_json::{json, Value};

use crate::support::process::{command, Server};
use crate::support::{redis_prefix, redis_url, PgDb};
use receiver::{below, request, Got, Receiver};

const SECRET: &str = "otel-test-secret-Nq8zJ3vWc5LpR2tYb7KmX4sD9fGh6aE1";
const PASSWORD: &str = "an-otel-password-that-must-never-appear";
const SESSION_COOKIE: &str = "better-auth.session_token";
const DATA_COOKIE: &str = "better-auth.session_data";

/// sessiond exporting every trace to `rx` quickly.
pub(crate) fn traced(dir: &std::path::Path, rx: &Receiver) -> Command {
    let mut cmd = command(dir);
    cmd.env("BETTER_AUTH_SECRET", SECRET)
        .env("SESSIOND_SESSION__COOKIE_CACHE__ENABLED", "true")
        .env("OTEL_TRACES_EXPORTER", "otlp")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", rx.endpoint())
        .env("OTEL_TRACES_SAMPLER", "always_on")
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .env("OTEL_SERVICE_NAME", "sessiond-under-test");
    cmd
}

/// A fresh database, a working directory, and [`traced`] sessiond on them.
pub(crate) fn traced_on_pg(rx: &Receiver) -> (PgDb, tempfile::TempDir, Command) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(PgDb::create());
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = traced(dir.path(), rx);
    cmd.env("DATABASE_URL", &db.url);
    (db, dir, cmd)
}

/// The cookies a response sets, as `name=value` pairs.
pub(crate) fn cookies(res: &reqwest::blocking::Response) -> Vec<(String, String)> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next()?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Signs a new user up (request id `id`): email, cookies set, session token.
pub(crate) fn sign_up(
    client: &reqwest::blocking::Client,
    server: &Server,
    id: &str,
    password: &str,
) -> (String, Vec<(String, String)>, String) {
    let email = format!(
        "otel-{}@example.com",
        sessiond::crypto::token::generate_id().to_lowercase()
    );
    let res = client
        .post(server.url("/sign-up/email"))
        .header("x-request-id", id)
        .json(&json!({"name": "O", "email": email, "password": password}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let jar = cookies(&res);
    let token = res.json::<Value>().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    (email, jar, token)
}

fn header(pairs: &[(String, String)], only: &[&str]) -> String {
    pairs
        .iter()
        .filter(|(k, _)| only.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Every text a span shows: names, attribute keys and values, events.
fn texts(s: &Got) -> Vec<String> {
    let mut out = vec![s.name.clone()];
    for (k, v) in &s.attrs {
        out.push(format!("{k}={v}"));
    }
    for (name, attrs) in &s.events {
        out.push(name.clone());
        for (k, v) in attrs {
            out.push(format!("{k}={v}"));
        }
    }
    out
}

/// Asserts that no span shows any of `secrets` (nor a recognisable part of one).
pub(crate) fn assert_no_secrets(spans: &[Got], secrets: &[String]) {
    for s in spans {
        for t in texts(s) {
            for secret in secrets {
                // A token's first 16 characters would be enough to find it.
                let part = &secret[..secret.len().min(16)];
                assert!(!t.contains(part), "{part} (of a secret) in span {s:#?}");
            }
        }
    }
}

struct Run {
    server: Server,
    client: reqwest::blocking::Client,
}

impl Run {
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
        let mut req = self.client.get(self.server.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().unwrap()
    }

    fn post(&self, path: &str, body: Value, id: &str) -> reqwest::blocking::Response {
        self.client
            .post(self.server.url(path))
            .header("x-request-id", id)
            .json(&body)
            .send()
            .unwrap()
    }
}

#[test]
fn get_session_spans_link_through_cache_database_and_scrypt() {
    let rx = Receiver::start();
    let (_db, dir, mut cmd) = traced_on_pg(&rx);
    let log = std::fs::File::create(dir.path().join("stderr")).unwrap();
    cmd.env("SESSIOND_LOG__FORMAT", "json")
        .env("SESSIOND_PLUGINS__BEARER__ENABLED", "true");
    let (server, client) = Server::start_with_stderr(cmd, log.try_clone().unwrap());
    let run = Run { server, client };

    let (email, jar, token) = sign_up(&run.client, &run.server, "sign-up-1", PASSWORD);
    let res = run.post(
        "/sign-in/email",
        json!({"email": email, "password": PASSWORD}),
        "sign-in-1",
    );
    assert_eq!(res.status(), 200);
    let bearer = res.headers()["set-auth-token"]
        .to_str()
        .unwrap()
        .to_string();
    let token2 = res.json::<Value>().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();

    // Cookie-cache hit: both cookies.
    let both = header(&jar, &[SESSION_COOKIE, DATA_COOKIE]);
    assert!(both.contains(DATA_COOKIE), "{jar:?}");
    let res = run.get(
        "/get-session",
        &[("cookie", &both), ("x-request-id", "hit-1")],
    );
    assert_eq!(res.status(), 200);
    // Database: the session cookie alone.
    let alone = header(&jar, &[SESSION_COOKIE]);
    let res = run.get(
        "/get-session",
        &[("cookie", &alone), ("x-request-id", "db-1")],
    );
    assert_eq!(res.status(), 200);
    // A caller's trace continues.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let tp = format!("00-{trace}-{parent}-01");
    let res = run.get(
        "/get-session",
        &[
            ("cookie", &alone),
            ("x-request-id", "tp-1"),
            ("traceparent", &tp),
            ("tracestate", "vendor=x"),
        ],
    );
    assert_eq!(res.status(), 200);
    // Bearer.
    let res = run.get(
        "/get-session",
        &[
            ("authorization", &format!("Bearer {bearer}")),
            ("x-request-id", "bearer-1"),
        ],
    );
    assert_eq!(res.status(), 200);
    assert!(!res.json::<Value>().unwrap().is_null());
    // An unknown path is named by its method alone.
    let res = run.get(
        "/no-such-route/secret-looking-path",
        &[("x-request-id", "404-1")],
    );
    assert_eq!(res.status(), 404);

    let spans = rx.wait_for("all requests", |s| {
        [
            "sign-up-1",
            "sign-in-1",
            "hit-1",
            "db-1",
            "tp-1",
            "bearer-1",
            "404-1",
        ]
        .iter()
        .all(|id| request(s, id).is_some())
    });
    // Children end before their request: everything of those requests is in.
    let hit = request(&spans, "hit-1").unwrap();
    assert_eq!(hit.name, "GET /api/auth/get-session");
    assert_eq!(hit.service, "sessiond-under-test");
    assert_eq!(hit.attr("http.route"), Some("/api/auth/get-session"));
    assert_eq!(hit.attr("http.request.method"), Some("GET"));
    assert_eq!(hit.attr("http.response.status_code"), Some("200"));
    assert_eq!(hit.attr("better_auth.operation_id"), Some("getSession"));
    assert_eq!(below(&spans, hit, "cache hit").len(), 1, "{spans:#?}");
    assert!(below(&spans, hit, "db findOne session").is_empty());

    let db_req = request(&spans, "db-1").unwrap();
    assert_eq!(
        below(&spans, db_req, "db findOne session").len(),
        1,
        "{spans:#?}"
    );
    let find = below(&spans, db_req, "db findOne session")[0];
    assert_eq!(find.attr("db.operation.name"), Some("findOne"));
    assert_eq!(find.attr("db.collection.name"), Some("session"));
    assert!(below(&spans, db_req, "cache hit").is_empty());

    let tp_req = request(&spans, "tp-1").unwrap();
    assert_eq!(tp_req.trace_id, trace);
    assert_eq!(tp_req.parent, parent);
    assert!(!below(&spans, tp_req, "db findOne session").is_empty());

    let sign_up = request(&spans, "sign-up-1").unwrap();
    assert_eq!(sign_up.name, "POST /api/auth/sign-up/email");
    assert_eq!(
        sign_up.attr("better_auth.operation_id"),
        Some("signUpWithEmailAndPassword")
    );
    let scrypt = below(&spans, sign_up, "scrypt");
    assert_eq!(scrypt.len(), 1, "{spans:#?}");
    assert!(scrypt[0]
        .attr("scrypt.queue_wait_ms")
        .unwrap()
        .parse::<u64>()
        .is_ok());
    assert!(
        !below(&spans, sign_up, "db create user").is_empty(),
        "{spans:#?}"
    );
    let sign_in = request(&spans, "sign-in-1").unwrap();
    assert_eq!(
        sign_in.attr("better_auth.operation_id"),
        Some("signInEmail")
    );
    assert_eq!(below(&spans, sign_in, "scrypt").len(), 1);

    let unknown = request(&spans, "404-1").unwrap();
    assert_eq!(unknown.name, "GET");
    assert_eq!(unknown.attr("http.route"), None);
    assert_eq!(unknown.attr("http.response.status_code"), Some("404"));

    // Ids only with telemetry.record_ids; never a token, cookie, password or secret.
    for s in &spans {
        assert!(
            s.attr("user.id").is_none() && s.attr("session.id").is_none(),
            "{s:#?}"
        );
        assert!(
            s.attrs
                .iter()
                .all(|(k, _)| !k.contains("user_id") && k != "path"),
            "{s:#?}"
        );
    }
    let mut secrets = vec![
        token,
        token2,
        bearer,
        PASSWORD.to_string(),
        SECRET.to_string(),
    ];
    secrets.extend(jar.iter().map(|(_, v)| v.clone()));
    assert_no_secrets(&spans, &secrets);

    // JSON log lines name the trace they belong to.
    let logs = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    let line = logs
        .lines()
        .find(|l| l.contains(&format!("\"trace_id\":\"{trace}\"")))
        .unwrap_or_else(|| panic!("no log line of trace {trace}:\n{logs}"));
    let v: Value = serde_json::from_str(line).unwrap();
    let span_id = v["span_id"].as_str().unwrap();
    assert!(spans
        .iter()
        .any(|s| s.span_id == span_id && s.trace_id == trace));

    // Stopped, it flushes and exits cleanly.
    assert!(run.server.stop().success());
}

#[test]
fn redis_calls_are_spans_of_their_request() {
    let rx = Receiver::start();
    let (_db, _dir, mut cmd) = traced_on_pg(&rx);
    cmd.env("REDIS_URL", redis_url())
        .env("SESSIOND_REDIS__KEY_PREFIX", redis_prefix())
        // Ids on spans, asked for.
        .env("SESSIOND_TELEMETRY__RECORD_IDS", "true");
    let (server, client) = Server::start(cmd);
    let run = Run { server, client };
    let (_, jar, token) = sign_up(&run.client, &run.server, "r-up", PASSWORD);
    let alone = header(&jar, &[SESSION_COOKIE]);
    let res = run.get(
        "/get-session",
        &[("cookie", &alone), ("x-request-id", "r-get")],
    );
    assert_eq!(res.status(), 200);
    let user_id = res.json::<Value>().unwrap()["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = run
        .client
        .post(run.server.url("/revoke-sessions"))
        .header("cookie", &alone)
        .header("origin", format!("http://127.0.0.1:{}", run.server.port))
        .header("x-request-id", "r-revoke")
        .json(&json!({}))
        .send()
        .unwrap();
    let revoke_status = res.status();
    let spans = rx.wait_for("the Redis requests", |s| {
        request(s, "r-get").is_some() && request(s, "r-revoke").is_some()
    });
    let get = request(&spans, "r-get").unwrap();
    let redis = below(&spans, get, "redis");
    assert!(!redis.is_empty(), "{spans:#?}");
    assert!(redis
        .iter()
        .any(|s| s.attr("db.operation.name") == Some("findOne")
            && s.attr("db.collection.name") == Some("session")
            && s.attr("db.system.name") == Some("redis")));
    if revoke_status == 200 {
        let revoke = request(&spans, "r-revoke").unwrap();
        assert!(!below(&spans, revoke, "notify").is_empty(), "{spans:#?}");
    }
    // With telemetry.record_ids on, the store spans name the user (never the token).
    assert!(
        spans.iter().any(|s| s.attr("user.id") == Some(&user_id)),
        "{spans:#?}"
    );
    assert!(spans.iter().all(|s| s.attr("user_id").is_none()));
    let mut secrets: Vec<String> = jar.iter().map(|(_, v)| v.clone()).collect();
    secrets.extend([PASSWORD.to_string(), token]);
    assert_no_secrets(&spans, &secrets);
}

#[test]
fn malformed_traceparents_start_new_traces() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = Server::start(traced(dir.path(), &rx));
    let run = Run { server, client };
    let ok = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let bad = [
        format!("{ok}{}", "0".repeat(300)),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-".to_string(),
        ok.replace("0af7", "zzzz"),
        ok.to_uppercase(),
        ok.replace("00-", "ff-"),
        ok.replace("0af7651916cd43dd8448eb211c80319c", &"0".repeat(32)),
        ok.replace("b7ad6b7169203331", &"0".repeat(16)),
        "".to_string(),
        "garbage".to_string(),
        format!("00-{}-{}-01", "a".repeat(31), "b".repeat(16)),
    ];
    for (i, tp) in bad.iter().enumerate() {
        let id = format!("bad-tp-{i}");
        let res = run.get(
            "/get-session",
            &[
                ("x-request-id", &id),
                ("traceparent", tp),
                ("tracestate", &"x=".repeat(400)),
            ],
        );
        assert_eq!(res.status(), 200, "{tp}");
    }
    // Two traceparents are ambiguous.
    let res = run
        .client
        .get(run.server.url("/get-session"))
        .header("x-request-id", "two-tp")
        .header("traceparent", ok)
        .header("traceparent", ok)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let spans = rx.wait_for("every request", |s| {
        (0..bad.len()).all(|i| request(s, &format!("bad-tp-{i}")).is_some())
            && request(s, "two-tp").is_some()
    });
    for i in 0..bad.len() {
        let s = request(&spans, &format!("bad-tp-{i}")).unwrap();
        assert!(s.parent.is_empty(), "{s:#?}");
        assert_ne!(s.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_ne!(s.trace_id, "0".repeat(32));
    }
    assert!(request(&spans, "two-tp").unwrap().parent.is_empty());
    assert!(run.server.stop().success());
}

/// With export off nothing is sent, even with an endpoint set; with no `OTEL_*` variable
/// at all, nothing reaches the default endpoint either. Each server is stopped (which
/// would flush any queued span) before the receiver is checked.
#[test]
fn tracing_off_sends_nothing() {
    let rx = Receiver::start();
    let default = Receiver::on("127.0.0.1:4318");
    for vars in [
        vec![
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.endpoint().leak() as &str),
        ],
        vec![
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.endpoint().leak() as &str),
        ],
        vec![],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = command(dir.path());
        cmd.env("BETTER_AUTH_SECRET", SECRET)
            .env("OTEL_BSP_SCHEDULE_DELAY", "10");
        for (k, v) in &vars {
            cmd.env(k, v);
        }
        let (server, client) = Server::start(cmd);
        for _ in 0..5 {
            let res = client.get(server.url("/get-session")).send().unwrap();
            assert_eq!(res.status(), 200);
        }
        assert!(server.stop().success());
    }
    assert_eq!(rx.posts(), 0);
    assert_eq!(default.posts(), 0);
}

/// Settings that cannot be honoured stop the start with a message naming the variable.
#[test]
fn impossible_otel_settings_are_refused_at_start() {
    for (k, v) in [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-api-key=%0Ahidden-key-value",
        ),
        ("OTEL_TRACES_EXPORTER", "zipkin"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = command(dir.path());
        cmd.env("OTEL_TRACES_EXPORTER", "otlp")
            .env("OTEL_TRACES_SAMPLER_ARG", "1.5")
            .env(k, v);
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{k}={v}: {err}");
        assert!(err.contains("OTEL_"), "{err}");
        assert!(
            !err.contains("hidden-key-value") && !err.contains("panicked"),
            "{err}"
        );
    }
}
