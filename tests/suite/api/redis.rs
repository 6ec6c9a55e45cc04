//! Redis as Better Auth's secondary storage: key layout and TTLs, the same behaviour as
//! without Redis, the database modes, honest revocation under concurrent refreshes, and
//! outages. Uses the Redis on 127.0.0.1:6379 (a unique key prefix per test), or a
//! private `redis-server` where a test stops it.

use std::time::Duration;

use redis::AsyncCommands;
use serde_json::{json, Value};

use crate::support::*;

struct Redis {
    conn: redis::aio::MultiplexedConnection,
    prefix: String,
}

impl Redis {
    async fn get(&mut self, key: &str) -> Option<String> {
        self.conn
            .get(format!("{}{key}", self.prefix))
            .await
            .unwrap()
    }
    async fn ttl(&mut self, key: &str) -> i64 {
        self.conn
            .ttl(format!("{}{key}", self.prefix))
            .await
            .unwrap()
    }
    async fn del(&mut self, key: &str) {
        let _: i64 = self
            .conn
            .del(format!("{}{key}", self.prefix))
            .await
            .unwrap();
    }
    async fn set_ex(&mut self, key: &str, value: &str, ttl: u64) {
        let _: () = self
            .conn
            .set_ex(format!("{}{key}", self.prefix), value, ttl)
            .await
            .unwrap();
    }
}

/// An app on `b` using the shared Redis under a key prefix of its own, and a view of that
/// prefix.
async fn redis_app(
    b: Backend,
    f: impl FnOnce(&mut sessiond::config::Settings),
) -> (TestApp, Redis) {
    let p = redis_prefix();
    let conn = shared_redis_conn(&p).await;
    let pp = p.clone();
    let app = spawn_with(b, move |s| {
        use_shared_redis(&mut s.redis, pp);
        f(s);
    })
    .await;
    (app, Redis { conn, prefix: p })
}

crate::on_both_backends!(
    key_layout_and_ttls_are_better_auths,
    same_behaviour_as_without_redis,
    store_session_in_database_modes,
    revocation_wins_over_concurrent_refresh,
    reads_sessions_written_in_better_auths_layout,
    change_password_wins_over_sign_ins_in_flight,
);

async fn change_password_wins_over_sign_ins_in_flight(b: Backend) {
    for store_in_db in [false, true] {
        let (app, _r) = redis_app(b, |s| {
            s.email_and_password.hash_concurrency = 1;
            s.session.store_session_in_database = store_in_db;
        })
        .await;
        super::account::old_password_sign_ins_lose(&app).await;
    }
}

async fn key_layout_and_ttls_are_better_auths(b: Backend) {
    let (app, mut r) = redis_app(b, |_| {}).await;
    let (mut jar, res) = app.sign_up(&unique_email()).await;
    let token = res.json()["token"].as_str().unwrap().to_string();
    let uid = res.json()["user"]["id"].as_str().unwrap().to_string();
    let stored: Value = serde_json::from_str(&r.get(&token).await.expect("token key")).unwrap();
    assert_eq!(stored["session"]["token"], token);
    assert_eq!(stored["user"]["id"], uid.as_str());
    assert_eq!(
        stored["session"]["expiresAt"],
        app.session(&mut jar).await["session"]["expiresAt"]
    );
    let ttl = r.ttl(&token).await;
    assert!((604_790..=604_800).contains(&ttl), "token TTL {ttl}");
    let list: Value =
        serde_json::from_str(&r.get(&format!("active-sessions-{uid}")).await.unwrap()).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["token"], token);
    assert!(list[0]["expiresAt"].is_i64());
    // Sessions live in Redis only (store_session_in_database is off).
    assert_eq!(app.count(r#"select count(*) from "session""#).await, 0);
    // A second session, expiring a minute later, is appended in expiry order.
    app.clock.advance_secs(60);
    let (_, res2) = app
        .sign_in(res.json()["user"]["email"].as_str().unwrap(), PASSWORD)
        .await;
    let list: Value =
        serde_json::from_str(&r.get(&format!("active-sessions-{uid}")).await.unwrap()).unwrap();
    assert_eq!(list[1]["token"], res2.json()["token"]);
    let expiry = |i: usize| list[i]["expiresAt"].as_i64().expect("expiresAt in ms");
    assert!(expiry(0) < expiry(1), "{list}");
}

async fn same_behaviour_as_without_redis(b: Backend) {
    let (app, mut r) = redis_app(b, |s| {
        s.session.additional_fields.insert(
            "theme".into(),
            serde_json::from_value(json!({"type": "string"})).unwrap(),
        );
    })
    .await;
    let email = unique_email();
    let (mut a, res) = app.sign_up(&email).await;
    let uid = res.json()["user"]["id"].as_str().unwrap().to_string();
    let (mut bj, res_b) = app.sign_in(&email, PASSWORD).await;
    let b_token = res_b.json()["token"].as_str().unwrap().to_string();
    assert_eq!(
        app.get("/list-sessions", &mut a)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // update-session and update-user rewrite the stored values.
    let res = app
        .post("/update-session", json!({"theme": "dark"}), &mut a)
        .await;
    assert_eq!(res.json()["session"]["theme"], "dark");
    assert_eq!(app.session(&mut a).await["session"]["theme"], "dark");
    app.post("/update-user", json!({"name": "Renamed"}), &mut a)
        .await;
    let stored: Value = serde_json::from_str(&r.get(&b_token).await.unwrap()).unwrap();
    assert_eq!(
        stored["user"]["name"], "Renamed",
        "every session carries the new user"
    );
    assert_eq!(app.session(&mut bj).await["user"]["name"], "Renamed");
    // Sliding refresh moves expiresAt, the TTL and the list entry.
    app.clock.advance_secs(86_400 + 1);
    let res = app.get("/get-session", &mut bj).await;
    assert!(res.cookie(TOKEN_COOKIE).unwrap().contains("Max-Age=604800"));
    let stored: Value = serde_json::from_str(&r.get(&b_token).await.unwrap()).unwrap();
    assert_eq!(
        stored["session"]["expiresAt"],
        res.json()["session"]["expiresAt"]
    );
    let list: Value =
        serde_json::from_str(&r.get(&format!("active-sessions-{uid}")).await.unwrap()).unwrap();
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["token"] == b_token.as_str())
        .unwrap()
        .clone();
    let exp =
        chrono::DateTime::parse_from_rfc3339(stored["session"]["expiresAt"].as_str().unwrap())
            .unwrap();
    assert_eq!(entry["expiresAt"].as_i64().unwrap(), exp.timestamp_millis());
    // Revocation removes the key and the list entry; revoking all removes the list.
    let res = app
        .post("/revoke-session", json!({"token": b_token}), &mut a)
        .await;
    assert_eq!(res.json(), json!({"status": true}));
    assert!(r.get(&b_token).await.is_none());
    assert_eq!(app.session(&mut bj).await, Value::Null);
    app.send(
        reqwest::Method::POST,
        "/revoke-sessions",
        None,
        Some(&mut a),
        &[],
    )
    .await;
    assert!(r.get(&format!("active-sessions-{uid}")).await.is_none());
    assert_eq!(app.session(&mut a).await, Value::Null);
    // change-password with revocation leaves exactly the replacement session.
    let (mut c, _) = app.sign_in(&email, PASSWORD).await;
    let (_, _) = app.sign_in(&email, PASSWORD).await;
    let res = app
        .post("/change-password", json!({"currentPassword": PASSWORD, "newPassword": "next-password-1", "revokeOtherSessions": true}), &mut c)
        .await;
    let new_token = res.json()["token"].as_str().unwrap().to_string();
    let list: Value =
        serde_json::from_str(&r.get(&format!("active-sessions-{uid}")).await.unwrap()).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["token"], new_token);
}

async fn store_session_in_database_modes(b: Backend) {
    let (app, mut r) = redis_app(b, |s| s.session.store_session_in_database = true).await;
    let email = unique_email();
    let (mut a, res) = app.sign_up(&email).await;
    let token = res.json()["token"].as_str().unwrap().to_string();
    assert_eq!(app.count(r#"select count(*) from "session""#).await, 1);
    // A Redis miss falls back to the database.
    r.del(&token).await;
    assert_eq!(app.session(&mut a).await["session"]["token"], token);
    app.post("/sign-out", json!({}), &mut a).await;
    assert_eq!(app.count(r#"select count(*) from "session""#).await, 0);

    // preserve_session_in_database: revoked rows stay, ended, and never come back.
    let (app, mut r) = redis_app(b, |s| {
        s.session.store_session_in_database = true;
        s.session.preserve_session_in_database = true;
    })
    .await;
    let (mut a, res) = app.sign_up(&unique_email()).await;
    let token = res.json()["token"].as_str().unwrap().to_string();
    let mut copy = a.clone();
    app.post("/sign-out", json!({}), &mut a).await;
    assert!(r.get(&token).await.is_none());
    assert_eq!(
        app.count(r#"select count(*) from "session""#).await,
        1,
        "row kept for audit"
    );
    assert_eq!(
        app.session(&mut copy).await,
        Value::Null,
        "not resurrected from the database"
    );
}

async fn revocation_wins_over_concurrent_refresh(b: Backend) {
    for (store_in_db, preserve) in [(false, false), (true, false), (true, true)] {
        let (app, mut r) = redis_app(b, |s| {
            s.session.update_age = 0;
            s.session.store_session_in_database = store_in_db;
            s.session.preserve_session_in_database = preserve;
        })
        .await;
        let email = unique_email();
        app.sign_up(&email).await;
        for round in 0..10 {
            let (victim, res) = app.sign_in(&email, PASSWORD).await;
            let token = res.json()["token"].as_str().unwrap().to_string();
            let (mut admin, _) = app.sign_in(&email, PASSWORD).await;
            app.clock.advance_secs(1);
            let refreshes: Vec<_> = (0..4)
                .map(|_| {
                    let client = app.client.clone();
                    let url = app.url("/get-session");
                    let cookie = victim.header();
                    tokio::spawn(async move {
                        client
                            .get(url)
                            .header("cookie", cookie)
                            .send()
                            .await
                            .unwrap()
                            .status()
                    })
                })
                .collect();
            let res = app
                .post("/revoke-session", json!({"token": token}), &mut admin)
                .await;
            assert_eq!(res.json(), json!({"status": true}));
            for h in refreshes {
                let status = h.await.unwrap();
                assert!(status == 200 || status == 401, "{status}");
            }
            // Success was reported: the session must be gone everywhere, for good.
            assert!(
                r.get(&token).await.is_none(),
                "round {round} (db {store_in_db}): key resurrected"
            );
            assert_eq!(
                app.session(&mut victim.clone()).await,
                Value::Null,
                "round {round}"
            );
            if store_in_db {
                // Deleted, or (preserved) ended in place: never live again.
                let n = app
                    .count(&format!(
                        r#"select count(*) from "session" where "token" = '{token}' and "expiresAt" > "updatedAt""#
                    ))
                    .await;
                assert_eq!(n, 0, "round {round} (preserve {preserve}): row live again");
            }
        }
    }
}

async fn reads_sessions_written_in_better_auths_layout(b: Backend) {
    let (app, mut r) = redis_app(b, |_| {}).await;
    let (_, res) = app.sign_up(&unique_email()).await;
    let user = res.json()["user"].clone();
    let uid = user["id"].as_str().unwrap();
    // Exactly what Better Auth's internal adapter writes (its own key order and dates).
    let now = chrono::DateTime::from_timestamp_millis(app.clock_ms()).unwrap();
    let iso =
        |d: chrono::DateTime<chrono::Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let token = "BAwrittenTokenAbCdEfGhIjKlMnOpQr";
    let value = json!({
        "session": {
            "expiresAt": iso(now + chrono::Duration::days(7)), "token": token,
            "createdAt": iso(now), "updatedAt": iso(now), "ipAddress": "", "userAgent": "node",
            "userId": uid, "id": "BAwrittenSessionId00000000000000"
        },
        "user": user,
    });
    r.set_ex(token, &value.to_string(), 604_800).await;
    let list = json!([{"token": token, "expiresAt": (now + chrono::Duration::days(7)).timestamp_millis()}]);
    r.set_ex(
        &format!("active-sessions-{uid}"),
        &list.to_string(),
        604_800,
    )
    .await;
    let res = app.get("/get-session", &mut app.jar_for(token)).await;
    assert_eq!(
        res.json()["session"]["id"],
        "BAwrittenSessionId00000000000000"
    );
    assert_eq!(res.json()["user"]["id"], uid);
    let list = app
        .get("/list-sessions", &mut app.jar_for(token))
        .await
        .json();
    assert!(list.as_array().unwrap().iter().any(|s| s["token"] == token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_gives_503_then_recovers() {
    let mut server = PrivateRedis::start(&[]).await;
    let u = server.url();
    let app = spawn_with(Backend::Sqlite, move |s| s.redis.url = u.into()).await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    assert_ne!(app.session(&mut jar).await, Value::Null);
    server.down();
    let res = app.get("/get-session", &mut jar.clone()).await;
    assert_eq!(res.status, 503, "{}", res.text);
    assert_eq!(res.code().as_deref(), Some("SERVICE_UNAVAILABLE"));
    let ready = app
        .client
        .get(format!("http://{}/readyz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(
        ready.json::<Value>().await.unwrap()["checks"]["redis"],
        "unavailable"
    );
    // Revocation while Redis is down fails loudly instead of pretending: sign-out too
    // (its cookies are kept, so that the client knows and can try again).
    let res = app.post("/sign-out", json!({}), &mut jar.clone()).await;
    assert_eq!(res.status, 503, "{}", res.text);
    assert_eq!(res.code().as_deref(), Some("SERVICE_UNAVAILABLE"));
    assert!(
        res.cookie(TOKEN_COOKIE).is_none(),
        "cookies kept: {:?}",
        res.set_cookies()
    );
    let res = app
        .send(
            reqwest::Method::POST,
            "/revoke-sessions",
            None,
            Some(&mut jar.clone()),
            &[],
        )
        .await;
    assert_eq!(res.status, 503);
    // Redis returns (empty: it keeps nothing on disk): service resumes by itself.
    server.up().await;
    let mut ok = false;
    for _ in 0..60 {
        let ready = app
            .client
            .get(format!("http://{}/readyz", app.addr))
            .send()
            .await
            .unwrap();
        if ready.status() == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "ready again without a restart");
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    assert_ne!(app.session(&mut jar).await, Value::Null);
}

/// A Redis that answers but refuses writes: a master demoted to replica by a failover
/// (`READONLY`), or full under `noeviction` (`OOM`). Every route answers 503, never a 401
/// for a valid session or an empty 500; `/readyz` fails; writes resume by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_refusing_writes_gives_503_never_401() {
    let refusals: [(&[&str], &[&str]); 2] = [
        (
            &["REPLICAOF", "127.0.0.1", "1"],
            &["REPLICAOF", "NO", "ONE"],
        ),
        (
            &["CONFIG", "SET", "maxmemory", "1"],
            &["CONFIG", "SET", "maxmemory", "0"],
        ),
    ];
    for (refuse, restore) in refusals {
        let server = PrivateRedis::start(&["--maxmemory-policy", "noeviction"]).await;
        let u = server.url();
        // A refresh is due on every request.
        let app = spawn_with(Backend::Sqlite, move |s| {
            s.redis.url = u.into();
            s.session.update_age = 0;
        })
        .await;
        let email = unique_email();
        let (mut jar, _) = app.sign_up(&email).await;
        assert_ne!(app.session(&mut jar).await, Value::Null);
        server.cmd(refuse).await;
        let what = refuse.join(" ");
        let unavailable = |res: &Res, route: &str| {
            assert_eq!(res.status, 503, "{what}: {route}: {}", res.text);
            assert_eq!(
                res.code().as_deref(),
                Some("SERVICE_UNAVAILABLE"),
                "{what}: {route}"
            );
        };
        for path in ["/get-session", "/list-sessions"] {
            unavailable(&app.get(path, &mut jar.clone()).await, path);
        }
        for (path, body) in [
            ("/update-user", json!({"name": "New"})),
            ("/revoke-other-sessions", json!({})),
        ] {
            let res = app.post(path, body, &mut jar.clone()).await;
            unavailable(&res, path);
            assert!(
                res.cookie(TOKEN_COOKIE).is_none(),
                "{what}: {path} kept the cookies"
            );
        }
        let res = app
            .client
            .get(format!("http://{}/forward-auth", app.addr))
            .header("cookie", jar.header())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 503, "{what}: forward-auth");
        let res = app
            .post(
                "/sign-in/email",
                json!({"email": email, "password": PASSWORD}),
                &mut Jar::default(),
            )
            .await;
        unavailable(&res, "sign-in");
        assert_eq!(app.ready_status().await, 503, "{what}: readyz");
        // Sign-out either ends the session (a full Redis still deletes) or says it could not.
        let out = app.post("/sign-out", json!({}), &mut jar.clone()).await;
        let ended = out.status == 200;
        if !ended {
            unavailable(&out, "/sign-out");
            assert!(
                out.cookie(TOKEN_COOKIE).is_none(),
                "{what}: sign-out kept the cookies"
            );
        }
        // Writes come back by themselves; the session is there exactly when sign-out failed.
        server.cmd(restore).await;
        assert_eq!(app.session(&mut jar).await == Value::Null, ended, "{what}");
    }
    // An access rule that forbids deletes (NOPERM): sign-out says it could not, never an
    // empty 500, and the replica is not ready.
    let server = PrivateRedis::start(&[]).await;
    let u = server.url();
    let app = spawn_with(Backend::Sqlite, move |s| s.redis.url = u.into()).await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    server
        .cmd(&["ACL", "SETUSER", "default", "-del", "-unlink"])
        .await;
    let out = app.post("/sign-out", json!({}), &mut jar.clone()).await;
    assert_eq!(out.status, 503, "{}", out.text);
    assert_eq!(out.code().as_deref(), Some("SERVICE_UNAVAILABLE"));
    assert_eq!(app.ready_status().await, 503);
    server
        .cmd(&["ACL", "SETUSER", "default", "+del", "+unlink"])
        .await;
    assert_ne!(app.session(&mut jar).await, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_falls_back_to_database_when_sessions_are_there_too() {
    let mut server = PrivateRedis::start(&[]).await;
    let u = server.url();
    let app = spawn_with(Backend::Sqlite, move |s| {
        s.redis.url = u.into();
        s.session.store_session_in_database = true;
    })
    .await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    server.down();
    let res = app.get("/get-session?disableRefresh=1", &mut jar).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_ne!(res.json(), Value::Null);
    assert_eq!(app.get("/list-sessions", &mut jar).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_rate_limits_through_redis() {
    let p = redis_prefix();
    let mut conn = shared_redis_conn(&p).await;
    let mk = |p: String| {
        move |s: &mut sessiond::config::Settings| {
            use_shared_redis(&mut s.redis, p);
            s.rate_limit.enabled = Some(true);
        }
    };
    let a = spawn_with(Backend::Sqlite, mk(p.clone())).await;
    let b = spawn_with(Backend::Sqlite, mk(p.clone())).await;
    let body = json!({"email": "nobody@example.com", "password": "wrong-password"});
    for app in [&a, &b, &a] {
        assert_eq!(
            app.post("/sign-in/email", body.clone(), &mut Jar::default())
                .await
                .status,
            401
        );
    }
    // The fourth sign-in in the window is refused, whichever replica gets it.
    let res = b.post("/sign-in/email", body, &mut Jar::default()).await;
    assert_eq!(res.status, 429);
    assert_eq!(res.header("x-retry-after").as_deref(), Some("10"));
    let count: i64 = conn
        .get(format!("{p}127.0.0.1|/sign-in/email"))
        .await
        .unwrap();
    assert_eq!(count, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_key_deleted_by_another_application_is_refused_at_once() {
    let p = redis_prefix();
    let mut conn = shared_redis_conn(&p).await;
    let pp = p.clone();
    let app = spawn_with(Backend::Sqlite, move |s| {
        use_shared_redis(&mut s.redis, pp);
        s.session.cookie_cache.enabled = true;
    })
    .await;
    // Wait until the replica listens, so that the cache it mints next is trusted.
    for _ in 0..100 {
        let r: Value = app
            .client
            .get(format!("http://{}/readyz", app.addr))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if r["checks"]["revocation"] == "ok" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (jar, res) = app.sign_up(&unique_email()).await;
    let token = res.json()["token"].as_str().unwrap().to_string();
    assert_ne!(app.session(&mut jar.clone()).await, Value::Null);
    // What a Better Auth app's revoke does: delete the key (and its list entry).
    let _: i64 = conn.del(format!("{p}{token}")).await.unwrap();
    let start = std::time::Instant::now();
    loop {
        if app.session(&mut jar.clone()).await.is_null() {
            break;
        }
        // Milliseconds in practice; five seconds so that a loaded machine cannot fail it.
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still served from the cookie cache"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
