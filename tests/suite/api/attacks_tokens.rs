//! Attacks on the token routes (`/jwks`, `/token`, forward auth's `X-Auth-Jwt` and
//! `?aud=`, the bearer plugin, the revocation feed) as a stranger and as another account:
//! a JWT is never a credential here, odd paths and methods find nothing, audiences stay
//! apart, a changed secret or a missing table leaves the key set published, two replicas
//! on an empty table make one key between them, and a cursor from the future does not
//! hide later ends.

use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};

use super::feed::{feed, feed_app, sid};
use crate::support::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn everything_on(s: &mut sessiond::config::Settings) {
    s.plugins.bearer.enabled = true;
    s.plugins.jwt.enabled = true;
    s.forward_auth.jwt.enabled = true;
    s.forward_auth.jwt.audiences = vec!["orders".into(), "billing".into()];
}

fn claims(token: &str) -> Value {
    let body = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(body).unwrap()).unwrap()
}

fn kid(token: &str) -> String {
    let head = token.split('.').next().unwrap();
    let h: Value = serde_json::from_slice(&B64.decode(head).unwrap()).unwrap();
    h["kid"].as_str().unwrap().to_owned()
}

fn kids(set: &Value) -> Vec<String> {
    set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn token(app: &TestApp, jar: &mut Jar) -> String {
    let res = app.get("/token", jar).await;
    assert_eq!(res.status, 200, "{}", res.text);
    res.json()["token"].as_str().unwrap().to_owned()
}

/// A raw request to the listener (paths reqwest would normalise).
async fn raw(app: &TestApp, method: &str, target: &str, headers: &[(&str, &str)]) -> Res {
    let url = format!("http://{}{target}", app.addr);
    let mut req = app
        .client
        .request(Method::from_bytes(method.as_bytes()).unwrap(), url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    Res {
        status: resp.status(),
        headers: resp.headers().clone(),
        text: resp.text().await.unwrap(),
    }
}

/// Tokens from `/token` and `X-Auth-Jwt`, and forgeries of them (alg `none`, HS256 keyed
/// with the public key, a `kid` naming SQL or a path), used as a bearer and as the session
/// cookie: no route takes any of them for a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_is_never_a_credential() {
    let app = spawn_with(Backend::Postgres, everything_on).await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    let real = token(&app, &mut jar).await;
    let fa = raw(
        &app,
        "GET",
        "/forward-auth?aud=orders",
        &[("cookie", &jar.header())],
    )
    .await;
    assert_eq!(fa.status, 200, "{}", fa.text);
    let upstream = fa.header("x-auth-jwt").unwrap();
    let set = app.get("/jwks", &mut Jar::default()).await.json();
    let x = set["keys"][0]["x"].as_str().unwrap().to_owned();
    let body = real.split('.').nth(1).unwrap();
    let forge =
        |header: Value, sig: &str| format!("{}.{body}.{sig}", B64.encode(header.to_string()));
    let hs256 = {
        use hmac::Mac;
        let head = B64.encode(json!({"alg":"HS256","kid":kid(&real)}).to_string());
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(x.as_bytes()).unwrap();
        mac.update(format!("{head}.{body}").as_bytes());
        format!("{head}.{body}.{}", B64.encode(mac.finalize().into_bytes()))
    };
    let forged = [
        real.clone(),
        upstream,
        forge(json!({"alg":"none"}), ""),
        forge(json!({"alg":"none","kid":kid(&real)}), ""),
        hs256,
        forge(json!({"alg":"EdDSA","kid":"' or 1=1 --"}), "AAAA"),
        forge(json!({"alg":"EdDSA","kid":"../../etc/passwd"}), "AAAA"),
    ];
    for jwt in &forged {
        let bearer = format!("Bearer {jwt}");
        let as_bearer = [("authorization", bearer.as_str())];
        let cookie = format!("{TOKEN_COOKIE}={jwt}");
        let as_cookie = [("cookie", cookie.as_str())];
        for headers in [&as_bearer[..], &as_cookie[..]] {
            let res = raw(&app, "GET", "/api/auth/get-session", headers).await;
            assert_eq!((res.status.as_u16(), res.text.as_str()), (200, "null"));
            for path in [
                "/api/auth/token",
                "/api/auth/list-sessions",
                "/forward-auth",
            ] {
                let res = raw(&app, "GET", path, headers).await;
                assert_eq!(res.status, 401, "{path} took a JWT: {}", res.text);
            }
            let res = raw(&app, "POST", "/api/auth/revoke-sessions", headers).await;
            assert_ne!(res.status, 200, "{}", res.text);
        }
    }
    // The session is untouched by all of that.
    assert!(app.session(&mut jar).await["session"].is_object());
}

/// Suffixes, encodings, dot segments, `;` and every other method find nothing on the
/// token routes (404, empty); forward auth alone takes any method and suffix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_paths_and_methods_find_nothing() {
    let app = feed_app(everything_on).await;
    let (jar, signed_up) = app.sign_up(&unique_email()).await;
    let bearer = format!("Bearer {}", signed_up.header("set-auth-token").unwrap());
    let cookie = jar.header();
    let h = [
        ("authorization", bearer.as_str()),
        ("cookie", cookie.as_str()),
    ];
    for target in [
        "/api/auth/token/",
        "/api/auth/%74oken",
        "//api/auth/jwks",
        "/api/auth//jwks",
        "/api/auth/jwks;x",
        "/api/auth/token;a=b",
        "/api/auth/TOKEN",
        "/api/auth/%6Awks",
        "/api/auth/jwks/",
        "/api/auth/revocations/",
        "/api/auth/revocations%2F",
        "/forward-auth;x",
        "/forward-authx",
    ] {
        let res = raw(&app, "GET", target, &h).await;
        assert_eq!(res.status, 404, "{target}: {}", res.text);
        assert!(res.text.is_empty(), "{target}: {}", res.text);
    }
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"] {
        for path in ["/api/auth/jwks", "/api/auth/token", "/api/auth/revocations"] {
            let res = raw(&app, method, path, &h).await;
            assert_eq!(res.status, 404, "{method} {path}: {}", res.text);
        }
    }
}

/// `?aud=`: only listed audiences; the first of repeated ones counts, for the check and
/// the token alike; percent-encoding is decoded; a token for one audience never comes back
/// for another; thousands of distinct values are refused without growing anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiences_stay_apart() {
    let app = spawn_with(Backend::Sqlite, everything_on).await;
    let (jar, _) = app.sign_up(&unique_email()).await;
    let cookie = jar.header();
    let fa = |q: String| {
        let cookie = cookie.clone();
        let app = &app;
        async move {
            raw(
                app,
                "GET",
                &format!("/forward-auth{q}"),
                &[("cookie", &cookie)],
            )
            .await
        }
    };
    let aud_of = |res: &Res| claims(&res.header("x-auth-jwt").unwrap())["aud"].clone();
    let orders = fa("?aud=orders".into()).await;
    assert_eq!(aud_of(&orders), "orders");
    let billing = fa("?aud=billing".into()).await;
    assert_eq!(aud_of(&billing), "billing");
    assert_ne!(orders.header("x-auth-jwt"), billing.header("x-auth-jwt"));
    assert_eq!(
        aud_of(&fa(String::new()).await),
        BASE_URL,
        "no ?aud=: the default"
    );
    assert_eq!(aud_of(&fa("?aud=%6frders".into()).await), "orders");
    let first = fa("?aud=billing&aud=orders".into()).await;
    assert_eq!(aud_of(&first), "billing", "the first counts");
    let long = format!("?aud={}", "o".repeat(8000));
    for q in [
        "?aud=".to_owned(),
        "?aud".to_owned(),
        "?aud=evil&aud=orders".to_owned(),
        "?aud=ORDERS".to_owned(),
        "?aud=orders%00".to_owned(),
        "?aud=orders+".to_owned(),
        long,
    ] {
        let res = fa(q.clone()).await;
        assert_eq!(res.status, 400, "{q}: {}", res.text);
        assert_eq!(res.code().as_deref(), Some("INVALID_AUDIENCE"));
        assert!(res.header("x-auth-jwt").is_none());
    }
    for i in 0..2_000 {
        let res = fa(format!("?aud=svc-{i}")).await;
        assert_eq!(res.status, 400);
    }
    assert_eq!(
        fa("?aud=orders".into()).await.header("x-auth-jwt"),
        orders.header("x-auth-jwt")
    );
}

/// Bearer of one user with the cookie of another: the bearer stands for the session, the
/// cookie's user is not touched; a tampered bearer is ignored and the cookie stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_and_cookie_of_two_users() {
    let app = spawn_with(Backend::Postgres, everything_on).await;
    let (mut a, _) = app.sign_up(&unique_email()).await;
    let (_, b_res) = app.sign_up(&unique_email()).await;
    let b_token = b_res.header("set-auth-token").unwrap();
    let b_id = b_res.json()["user"]["id"].clone();
    let tampered = format!("Bearer {}x", &b_token[..b_token.len() - 1]);
    let res = app
        .send(
            Method::GET,
            "/get-session",
            None,
            Some(&mut a.clone()),
            &[("authorization", &tampered)],
        )
        .await;
    assert_ne!(
        res.json()["user"]["id"],
        b_id,
        "a tampered bearer is ignored"
    );
    assert!(res.json()["user"].is_object(), "and the cookie stands");
    let bearer = format!("Bearer {b_token}");
    let res = app
        .send(
            Method::POST,
            "/revoke-sessions",
            Some(json!({})),
            Some(&mut a.clone()),
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(
        app.session(&mut a).await["session"].is_object(),
        "A is signed in still"
    );
    let res = app
        .send(
            Method::GET,
            "/get-session",
            None,
            None,
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(res.text, "null", "B's sessions ended");
}

/// The secret changes between restarts: `/token` fails as documented, but `/jwks` still
/// publishes the key (it needs no private key, as in Better Auth), so verifiers keep
/// checking the tokens already out. get-session keeps answering, without `set-auth-jwt`
/// (Better Auth's after-hook would fail it with the same 500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_secret_leaves_the_key_set_published() {
    let first = spawn_with(Backend::Postgres, everything_on).await;
    let (mut jar, _) = first.sign_up(&unique_email()).await;
    let out = token(&first, &mut jar).await;
    let url = first.db_url.clone();
    let second = spawn_with(Backend::Postgres, move |s| {
        everything_on(s);
        s.database.url = url.into();
        s.secret = "another-secret-entirely-0123456789abcdef".to_owned().into();
    })
    .await;
    let res = second.get("/jwks", &mut Jar::default()).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(kids(&res.json()).contains(&kid(&out)));
    let (mut jar2, _) = second.sign_up(&unique_email()).await;
    let res = second.get("/token", &mut jar2).await;
    assert_eq!(res.status, 500, "{}", res.text);
    assert_eq!(res.code().as_deref(), Some("JWT_SIGNING_FAILED"));
    let res = second.get("/get-session", &mut jar2).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(res.header("set-auth-jwt").is_none());
    // Remembered, not retried per request: still published after the refresh period.
    second.clock.advance_secs(11);
    let res = second.get("/jwks", &mut Jar::default()).await;
    assert_eq!(res.status, 200, "{}", res.text);
}

/// The `jwks` table goes away: the key set last read is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_set_outlives_its_table() {
    let app = spawn_with(Backend::Postgres, everything_on).await;
    let before = app.get("/jwks", &mut Jar::default()).await.json();
    app.exec(r#"drop table "jwks""#).await;
    app.clock.advance_secs(11);
    for _ in 0..3 {
        let res = app.get("/jwks", &mut Jar::default()).await;
        assert_eq!(res.status, 200, "{}", res.text);
        assert_eq!(res.json(), before);
    }
}

/// Two replicas on one database, both asked for keys at once on an empty table: one key
/// between them (made under a lock), which both sign with and publish at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_an_empty_table_make_one_key() {
    let a = spawn_with(Backend::Postgres, everything_on).await;
    let url = a.db_url.clone();
    let b = spawn_with(Backend::Postgres, move |s| {
        everything_on(s);
        s.database.url = url.into();
    })
    .await;
    let mut calls = Vec::new();
    for _ in 0..5 {
        for app in [&a, &b] {
            calls.push(async move { app.get("/jwks", &mut Jar::default()).await.status });
        }
    }
    for status in futures::future::join_all(calls).await {
        assert_eq!(status, 200);
    }
    let made = a.count(r#"select count(*) from "jwks""#).await;
    assert_eq!(made, 1, "{made} keys");
    let (mut ja, _) = a.sign_up(&unique_email()).await;
    let (mut jb, _) = b.sign_up(&unique_email()).await;
    let (ta, tb) = (token(&a, &mut ja).await, token(&b, &mut jb).await);
    assert_eq!(kid(&ta), kid(&tb));
    for app in [&a, &b] {
        let published = kids(&app.get("/jwks", &mut Jar::default()).await.json());
        assert_eq!(published, vec![kid(&ta)]);
    }
}

/// A cursor ahead of the replica's clock (a skewed replica's, or made up) is answered
/// with one at most a millisecond ahead, so that an end heard afterwards is listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_from_the_future_does_not_hide_later_ends() {
    let app = feed_app(|_| {}).await;
    let ahead = app.clock_ms() + 3_600_000;
    let res = feed(&app, &format!("?since={ahead}"), &[]).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let cursor: i64 = res.json()["cursor"].as_str().unwrap().parse().unwrap();
    assert!(
        cursor <= app.clock_ms() + 1,
        "cursor {cursor} is ahead of the clock"
    );
    let (mut jar, signed_up) = app.sign_up(&unique_email()).await;
    let session_token = signed_up.json()["token"].as_str().unwrap().to_owned();
    app.clock.advance_secs(1);
    assert_eq!(app.post("/sign-out", json!({}), &mut jar).await.status, 200);
    let res = feed(&app, &format!("?since={cursor}"), &[]).await;
    let listed: Vec<String> = res.json()["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sid"].as_str().unwrap().to_owned())
        .collect();
    assert!(listed.contains(&sid(&session_token)), "{}", res.text);
    // Junk cursors and Last-Event-IDs are 400s, never a stream.
    for q in [
        "?since=-1",
        "?since=99999999999999999999",
        "?since=1e3",
        "?since=1&since=2",
    ] {
        assert_eq!(feed(&app, q, &[]).await.status, 400, "{q}");
    }
    let stream = [("accept", "text/event-stream"), ("last-event-id", "junk")];
    assert_eq!(feed(&app, "", &stream).await.status, 400);
}
