//! Operations: health and readiness, request ids, rate limits, body limits, timeouts, and
//! behaviour while the database is unreachable (through a TCP relay the test can cut).

use std::time::Duration;

use serde_json::json;
use tokio::net::TcpStream;

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    health_and_request_ids,
    rate_limits_like_better_auth,
    body_limit_is_enforced
);

async fn health_and_request_ids(b: Backend) {
    let app = spawn(b).await;
    let res = app
        .client
        .get(format!("http://{}/healthz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .client
        .get(format!("http://{}/readyz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["checks"]["database"],
        "ok"
    );
    // A request id is made up when absent and echoed when given.
    let res = app.client.get(app.url("/ok")).send().await.unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 36);
    let res = app
        .client
        .get(app.url("/ok"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
}

async fn rate_limits_like_better_auth(b: Backend) {
    let app = spawn_with(b, |s| s.rate_limit.enabled = Some(true)).await;
    let email = unique_email();
    let body = json!({"email": email, "password": "wrong-password"});
    for _ in 0..3 {
        let res = app
            .post("/sign-in/email", body.clone(), &mut Jar::default())
            .await;
        assert_eq!(res.status, 401);
    }
    app.clock.advance_secs(3);
    let res = app
        .post("/sign-in/email", body.clone(), &mut Jar::default())
        .await;
    assert_eq!(res.status, 429);
    assert_eq!(
        res.json(),
        json!({"message": "Too many requests. Please try again later."})
    );
    assert_eq!(res.header("x-retry-after").as_deref(), Some("7"));
    // Another path has its own bucket; the default rule is 100 per 10 s.
    for _ in 0..100 {
        assert_eq!(
            app.get("/get-session", &mut Jar::default()).await.status,
            200
        );
    }
    assert_eq!(
        app.get("/get-session", &mut Jar::default()).await.status,
        429
    );
    // After the window, requests pass again.
    app.clock.advance_secs(10);
    assert_eq!(
        app.post("/sign-in/email", body, &mut Jar::default())
            .await
            .status,
        401
    );
    // A forged X-Forwarded-For does not open a new bucket without trusted proxies.
    let res = app
        .send(
            reqwest::Method::GET,
            "/get-session",
            None,
            None,
            &[("x-forwarded-for", "198.51.100.9")],
        )
        .await;
    assert_eq!(res.status, 200);
    for _ in 0..100 {
        app.send(
            reqwest::Method::GET,
            "/get-session",
            None,
            None,
            &[("x-forwarded-for", "198.51.100.10")],
        )
        .await;
    }
    assert_eq!(
        app.get("/get-session", &mut Jar::default()).await.status,
        429
    );
}

async fn body_limit_is_enforced(b: Backend) {
    let app = spawn_with(b, |s| s.server.body_limit = 1024).await;
    let big = json!({"name": "x".repeat(2000), "email": unique_email(), "password": PASSWORD});
    let res = app.post("/sign-up/email", big, &mut Jar::default()).await;
    assert_eq!(res.status, 413);
    assert_eq!(res.code().as_deref(), Some("PAYLOAD_TOO_LARGE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_gives_503_and_recovers() {
    let db = PgDb::create().await;
    let relay = Relay::start(db.port()).await;
    let url = db.url_via(relay.port);
    let app = spawn_with(Backend::Sqlite, |s| {
        s.database.url = url.into();
        s.database.acquire_timeout = 1;
        s.database.max_connections = 2;
    })
    .await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    relay.set(1);
    // Existing pooled connections are cut; new ones are refused.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let res = app.get("/get-session", &mut jar.clone()).await;
    assert_eq!(res.status, 503, "{}", res.text);
    assert_eq!(res.code().as_deref(), Some("SERVICE_UNAVAILABLE"));
    let res = app
        .client
        .get(format!("http://{}/readyz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let res = app
        .post(
            "/sign-in/email",
            json!({"email": "a@example.com", "password": PASSWORD}),
            &mut Jar::default(),
        )
        .await;
    assert_eq!(res.status, 503);
    // Sign-out cannot end the session now: it says so and keeps the cookies.
    let res = app.post("/sign-out", json!({}), &mut jar.clone()).await;
    assert_eq!(res.status, 503, "{}", res.text);
    assert!(
        res.cookie(TOKEN_COOKIE).is_none(),
        "{:?}",
        res.set_cookies()
    );
    // The database returns: service resumes without a restart.
    relay.set(0);
    let mut ok = false;
    for _ in 0..50 {
        if app.get("/get-session", &mut jar.clone()).await.status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "recovered after the database came back");
    assert_ne!(app.session(&mut jar).await, serde_json::Value::Null);
    let res = app
        .client
        .get(format!("http://{}/readyz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_time_out() {
    let db = PgDb::create().await;
    let relay = Relay::start(db.port()).await;
    let url = db.url_via(relay.port);
    let app = spawn_with(Backend::Sqlite, |s| {
        s.database.url = url.into();
        s.database.acquire_timeout = 30;
        s.database.max_connections = 2;
        s.server.request_timeout = 1;
    })
    .await;
    // A signed token the store has to be asked about. (Not a sign-up: hashing a password
    // on a busy machine can itself pass the 1 s limit.)
    let mut jar = app.jar_for("a-token-the-store-is-asked-about");
    // Stall: the pooled connection dies and the new one never answers.
    relay.set(2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let res = app.get("/get-session", &mut jar).await;
    assert_eq!(res.status, 503, "{}", res.text);
    assert_eq!(res.code().as_deref(), Some("REQUEST_TIMEOUT"));
    assert!(started.elapsed() < Duration::from_secs(10));
}

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_metrics() {
    let app = spawn_with(Backend::Sqlite, |s| {
        s.session.cookie_cache.enabled = true;
    })
    .await;
    let url = format!("http://{}/metrics", app.addr);
    let before = app
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    app.session(&mut jar).await;
    app.post("/sign-out", json!({}), &mut jar).await;
    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let after = res.text().await.unwrap();
    let get_session =
        r#"http_requests_total{method="GET",route="/api/auth/get-session",status="200"}"#;
    assert!(
        metric(&after, get_session) >= metric(&before, get_session) + 1.0,
        "{after}"
    );
    assert!(
        after.contains("http_request_duration_seconds_bucket{"),
        "latency histogram"
    );
    for (name, at_least) in [
        ("sessions_created_total", 1.0),
        ("sessions_revoked_total", 1.0),
        ("cookie_cache_hits_total", 1.0),
    ] {
        assert!(
            metric(&after, name) >= metric(&before, name) + at_least,
            "{name}: {after}"
        );
    }
    assert!(after.contains("password_hash_queue"));
    // Unknown paths are counted under one label, not one per path.
    app.client
        .get(format!("http://{}/nope/123", app.addr))
        .send()
        .await
        .unwrap();
    let text = app
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("/nope/123"));
    assert!(text.contains(r#"route="unmatched""#));
}

/// A request cut short mid-statement (here by the request timeout, as when a client hangs
/// up) does not cost a database connection: the connection is drained and reused, so the
/// same PostgreSQL backends serve before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_requests_keep_their_database_connection() {
    use sqlx::{Connection, Executor};
    let db = PgDb::create().await;
    let app = spawn_with(Backend::Sqlite, |s| {
        s.database.url = db.url.clone().into();
        s.database.max_connections = 2;
        // Room for the sign-up's password hash on a busy machine.
        s.server.request_timeout = 3;
    })
    .await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    for _ in 0..3 {
        assert_ne!(app.session(&mut jar).await, serde_json::Value::Null);
    }
    let mut locker = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let backends = |me: i32| {
        let url = db.url.clone();
        async move {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            let mut pids: Vec<i32> = sqlx::query_scalar(
                "select pid from pg_stat_activity where datname = current_database() \
                 and pid <> pg_backend_pid() and pid <> $1",
            )
            .bind(me)
            .fetch_all(&mut c)
            .await
            .unwrap();
            pids.sort();
            pids
        }
    };
    let me: i32 = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(&mut locker)
        .await
        .unwrap();
    let before = backends(me).await;
    assert!(!before.is_empty());

    // The session table is locked: get-session's read waits until the timeout cuts it off.
    locker.execute("begin").await.unwrap();
    locker
        .execute(r#"lock table "session" in access exclusive mode"#)
        .await
        .unwrap();
    let res = app.get("/get-session", &mut jar.clone()).await;
    assert_eq!(res.status, 503, "{}", res.text);
    assert_eq!(res.code().as_deref(), Some("REQUEST_TIMEOUT"));
    locker.execute("commit").await.unwrap();

    // The cut-short read completes on its connection, which goes back to work.
    let mut served = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if backends(me).await == before {
            served = true;
            break;
        }
    }
    for _ in 0..3 {
        assert_ne!(app.session(&mut jar).await, serde_json::Value::Null);
    }
    assert!(
        served,
        "backends changed: {before:?} -> {:?}",
        backends(me).await
    );
    assert_eq!(
        backends(me).await,
        before,
        "no connection was closed or opened"
    );
}

/// A sign-in whose client hangs up while it waits for the (one) hashing thread is not
/// hashed: the queue drains without doing work nobody waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_sign_ins_are_not_hashed() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_with(Backend::Sqlite, |s| {
        s.email_and_password.hash_concurrency = 1;
    })
    .await;
    let email = unique_email();
    app.sign_up(&email).await;
    let metrics_url = format!("http://{}/metrics", app.addr);
    let abandoned = || async {
        let res = app.client.get(&metrics_url).send().await.unwrap();
        metric(
            &res.text().await.unwrap(),
            "password_hashes_abandoned_total",
        )
    };
    let before = abandoned().await;
    // Eight sign-ins sent whole on their own connections queue behind one scrypt; then
    // every client hangs up.
    let body = json!({"email": email, "password": PASSWORD}).to_string();
    let path = app.url("/sign-in/email");
    let path = path.trim_start_matches(&format!("http://{}", app.addr));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(&app.addr).await.unwrap();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nOrigin: {ORIGIN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            app.addr,
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        clients.push(s);
    }
    // Give the server a moment to read them, so that they are queued, not unsent. The
    // moment may be longer than one hash: only the last of the eight needs to be still
    // queued when the clients leave.
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(clients);
    // A sign-in queued behind them completes once each of them was hashed or skipped.
    let (_, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let skipped = abandoned().await - before;
    assert!(
        skipped >= 1.0,
        "queued hashes of clients that left are skipped ({skipped})"
    );
}

/// The database refuses at the protocol level (restarting, backends terminated): 503 with a
/// JSON body everywhere, never a 500 with an empty body nor a 401 for a valid session; a
/// dead pooled connection is replaced on the next read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_restart_gives_503_never_401() {
    use sqlx::Connection;
    let app = spawn(Backend::Postgres).await;
    let known = unique_email();
    let (mut jar, _) = app.sign_up(&known).await;
    assert_ne!(app.session(&mut jar).await, serde_json::Value::Null);
    let db = app.db_url.rsplit('/').next().unwrap().to_string();
    let admin = app.db_url.replace(&format!("/{db}"), "/postgres");
    let mut a = sqlx::PgConnection::connect(&admin).await.unwrap();
    let kill = format!(
        "select count(pg_terminate_backend(pid)) from pg_stat_activity \
         where datname = '{db}' and pid <> pg_backend_pid()"
    );
    // Every backend terminated: the next reads get fresh connections.
    sqlx::query(&kill).execute(&mut a).await.unwrap();
    let res = app.get("/list-sessions", &mut jar.clone()).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let fa = format!("http://{}/forward-auth", app.addr);
    for _ in 0..3 {
        let res = app
            .get("/get-session?disableCookieCache=1", &mut jar.clone())
            .await;
        assert_eq!(res.status, 200, "{}", res.text);
        assert_ne!(res.json(), serde_json::Value::Null);
    }
    // Now the database refuses new connections too (as while restarting).
    sqlx::query(&format!("alter database {db} allow_connections false"))
        .execute(&mut a)
        .await
        .unwrap();
    sqlx::query(&kill).execute(&mut a).await.unwrap();
    for path in ["/get-session", "/list-sessions"] {
        let res = app.get(path, &mut jar.clone()).await;
        assert_eq!(res.status, 503, "{path}: {}", res.text);
        assert_eq!(res.code().as_deref(), Some("SERVICE_UNAVAILABLE"), "{path}");
    }
    let res = app
        .client
        .get(&fa)
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let email = unique_email();
    writes_refused_with_503(&app, &jar, &known, &email).await;
    sqlx::query(&format!("alter database {db} allow_connections true"))
        .execute(&mut a)
        .await
        .unwrap();
    let recovered = async {
        for _ in 0..50 {
            if app.get("/get-session", &mut jar.clone()).await.status == 200 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    assert!(recovered.await, "recovered");

    // A database turned read-only (a standby promoted wrongly, a failover half done):
    // reads work, writes are refused with 503 and the replica is not ready.
    sqlx::query(&format!(
        "alter database {db} set default_transaction_read_only = on"
    ))
    .execute(&mut a)
    .await
    .unwrap();
    sqlx::query(&kill).execute(&mut a).await.unwrap();
    let ready = format!("http://{}/readyz", app.addr);
    let res = app.client.get(&ready).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains(r#""database":"unavailable""#));
    writes_refused_with_503(&app, &jar, &known, &email).await;
    sqlx::query(&format!(
        "alter database {db} reset default_transaction_read_only"
    ))
    .execute(&mut a)
    .await
    .unwrap();
    sqlx::query(&kill).execute(&mut a).await.unwrap();
    // Ready again once the revocation listener has reconnected too.
    let mut status = 0;
    for _ in 0..100 {
        status = app
            .client
            .get(&ready)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
    assert_eq!(
        app.sign_in(&email, PASSWORD).await.1.status,
        401,
        "no such user was written"
    );
}

/// Every write answers 503 with a JSON body, and the session stays valid.
async fn writes_refused_with_503(app: &TestApp, jar: &Jar, known: &str, email: &str) {
    let calls = [
        (
            "/sign-up/email",
            json!({"name": "N", "email": email, "password": PASSWORD}),
        ),
        (
            "/sign-in/email",
            json!({"email": known, "password": PASSWORD}),
        ),
        ("/sign-out", json!({})),
        ("/update-user", json!({"name": "X"})),
        ("/revoke-sessions", json!({})),
    ];
    for (path, body) in calls {
        let res = app.post(path, body, &mut jar.clone()).await;
        assert_eq!(res.status, 503, "{path}: {}", res.text);
        assert_eq!(res.code().as_deref(), Some("SERVICE_UNAVAILABLE"), "{path}");
    }
}

/// A database whose tables are gone (dropped and made again empty) is not ready, though it
/// answers; it is again once they are back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_without_the_tables() {
    let app = spawn(Backend::Postgres).await;
    let ready = || async {
        app.client
            .get(format!("http://{}/readyz", app.addr))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(ready().await, 200);
    app.exec(r#"alter table "session" rename to "session_gone""#)
        .await;
    assert_eq!(ready().await, 503, "the session table is missing");
    app.exec(r#"alter table "session_gone" rename to "session""#)
        .await;
    assert_eq!(ready().await, 200);
}
