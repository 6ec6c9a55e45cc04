//! The revocation feed (`GET {base}/revocations`) for services that verify JWTs offline:
//! its key, cursors, JSON and event-stream forms, and that ends made through the API, by
//! another application's SQL, and in Redis all appear. Three replicas are in
//! `tests/suite/replicas.rs`; attacks in `feed_attacks.rs`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::*;

pub const KEY: &str = "feed-key-7hT2mVq9Lr4xWc8Zp3Kd6Nf1Bs5Yg0Ja";

pub fn sid(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub async fn feed_app(f: impl FnOnce(&mut sessiond::config::Settings)) -> TestApp {
    spawn_with(Backend::Postgres, |s| {
        s.revocation_feed.enabled = true;
        s.revocation_feed.key = KEY.into();
        f(s);
    })
    .await
}

/// `GET /revocations` with `query` and extra headers (the key unless given).
pub async fn feed(app: &TestApp, query: &str, headers: &[(&str, &str)]) -> Res {
    let auth = format!("Bearer {KEY}");
    let mut h: Vec<(&str, &str)> = headers.to_vec();
    if !h
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
    {
        h.push(("authorization", &auth));
    }
    app.send(
        reqwest::Method::GET,
        &format!("/revocations{query}"),
        None,
        None,
        &h,
    )
    .await
}

fn sids(v: &Value) -> Vec<String> {
    v["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sid"].as_str().unwrap().to_string())
        .collect()
}

/// Polls the feed until `sid` is in it; the answer.
pub async fn until_listed(app: &TestApp, sid: &str) -> Value {
    let start = Instant::now();
    loop {
        let v = feed(app, "", &[]).await.json();
        if sids(&v).iter().any(|s| s == sid) {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{sid} never listed: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every revocation feed guarantees (`/readyz` says so), then moves the
/// clock a millisecond on: the log vouches for cursors after that moment.
pub async fn wait_guaranteed(app: &TestApp) {
    let start = Instant::now();
    loop {
        let r = app.readyz().await;
        if r["checks"]["revocation"] == "ok" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never guaranteed: {r}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.clock.set_ms(app.clock_ms() + 1);
}

pub async fn signed_up(app: &TestApp) -> (Jar, String) {
    let (jar, res) = app.sign_up(&unique_email()).await;
    (jar, res.json()["token"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_is_required_unless_open_and_off_is_not_found() {
    let app = feed_app(|_| {}).await;
    let unauthorized = |r: Res| {
        assert_eq!(r.status, 401, "{}", r.text);
        assert_eq!(r.code().as_deref(), Some("UNAUTHORIZED"));
        assert!(r.json()["message"].is_string());
    };
    unauthorized(feed(&app, "", &[("authorization", "")]).await);
    unauthorized(feed(&app, "", &[("authorization", "Bearer")]).await);
    unauthorized(feed(&app, "", &[("authorization", &format!("Basic {KEY}"))]).await);
    let mut forged = KEY.to_string();
    forged.pop();
    forged.push('b');
    unauthorized(feed(&app, "", &[("authorization", &format!("Bearer {forged}"))]).await);
    unauthorized(feed(&app, "", &[("authorization", &format!("Bearer {KEY}x"))]).await);
    let ok = feed(&app, "", &[]).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.header("cache-control").as_deref(), Some("no-store"));
    let ok = feed(&app, "", &[("authorization", &format!("bearer  {KEY}"))]).await;
    assert_eq!(ok.status, 200, "the scheme is case-insensitive");

    let open = feed_app(|s| {
        s.revocation_feed.open = true;
        s.revocation_feed.key = "".into();
    })
    .await;
    assert_eq!(feed(&open, "", &[("authorization", "")]).await.status, 200);

    let off = spawn(Backend::Postgres).await;
    let r = feed(&off, "", &[]).await;
    assert_eq!(r.status, 404);
    assert!(r.text.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_revocation_is_listed_with_cursor_semantics() {
    let app = feed_app(|_| {}).await;
    wait_guaranteed(&app).await;
    let (mut jar, token) = signed_up(&app).await;
    let started = app.clock_ms();
    let res = app.post("/sign-out", json!({}), &mut jar).await;
    assert_eq!(res.status, 200);
    let v = until_listed(&app, &sid(&token)).await;
    let entry = &v["revoked"].as_array().unwrap()[0];
    let at = entry["at"].as_i64().unwrap();
    assert_eq!(at, started, "the injected clock's time");
    assert_eq!(
        v["complete"], false,
        "no cursor: before this process started"
    );
    assert_eq!(v.get("more"), None);
    assert_eq!(v["cursor"], (app.clock_ms() - 5000).to_string());
    // Listed once although it also came back through NOTIFY.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sids(&feed(&app, "", &[]).await.json()).len(), 1);

    let same = feed(&app, &format!("?since={at}"), &[]).await.json();
    assert_eq!(sids(&same), [sid(&token)]);
    assert_eq!(same["complete"], true);
    assert_eq!(same["cursor"], at.to_string(), "never below since");
    let after = feed(&app, &format!("?since={}", at + 1), &[]).await.json();
    assert!(sids(&after).is_empty());
    app.clock.advance_secs(60);
    let later = feed(&app, &format!("?since={at}"), &[]).await.json();
    assert_eq!(later["cursor"], (at + 55_000).to_string());
    assert_eq!(sids(&later).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_deleted_by_sql_is_listed() {
    let app = feed_app(|_| {}).await;
    wait_guaranteed(&app).await;
    let (_, token) = signed_up(&app).await;
    app.exec(&format!("delete from session where token = '{token}'"))
        .await;
    until_listed(&app, &sid(&token)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_deleted_in_redis_is_listed() {
    use redis::AsyncCommands;
    let redis = PrivateRedis::start(&["--notify-keyspace-events", "KEA"]).await;
    let url = redis.url();
    let prefix = redis_prefix();
    let p = prefix.clone();
    let u = url.clone();
    let app = feed_app(move |s| {
        s.redis.url = u.into();
        s.redis.key_prefix = p;
    })
    .await;
    wait_guaranteed(&app).await;
    let (_, token) = signed_up(&app).await;
    let mut conn = redis_conn(&url).await;
    let n: i64 = conn.del(format!("{prefix}{token}")).await.unwrap();
    assert_eq!(n, 1);
    until_listed(&app, &sid(&token)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_replica_answers_old_cursors_incomplete() {
    let first = feed_app(|_| {}).await;
    wait_guaranteed(&first).await;
    let (mut jar, token) = signed_up(&first).await;
    first.post("/sign-out", json!({}), &mut jar).await;
    let v = until_listed(&first, &sid(&token)).await;
    let cursor = v["revoked"][0]["at"].as_i64().unwrap();
    assert_eq!(
        feed(&first, &format!("?since={cursor}"), &[]).await.json()["complete"],
        true
    );
    let url = first.db_url.clone();
    let second = feed_app(move |s| s.database.url = url.into()).await;
    wait_guaranteed(&second).await;
    let answer = feed(&second, &format!("?since={cursor}"), &[]).await.json();
    assert_eq!(answer["complete"], false, "{answer}");
    assert!(sids(&answer).is_empty(), "ended before it started");
    // From its own start on, it vouches.
    second.clock.advance_secs(1);
    let now = second.clock_ms();
    assert_eq!(
        feed(&second, &format!("?since={now}"), &[]).await.json()["complete"],
        true
    );
}

/// Every sid listed, paging from the start; checks each page's size.
async fn all_listed(app: &TestApp) -> std::collections::HashSet<String> {
    let page_cap = sessiond::session::revoked_log::PAGE;
    let mut seen = std::collections::HashSet::new();
    let mut query = String::new();
    loop {
        let v = feed(app, &query, &[]).await.json();
        let page = sids(&v);
        assert!(page.len() <= page_cap, "{} in one page", page.len());
        let more = v.get("more") == Some(&json!(true));
        if more {
            assert_eq!(page.len(), page_cap, "only a full page says more");
        }
        seen.extend(page);
        if !more {
            return seen;
        }
        query = format!("?since={}", v["cursor"].as_str().unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_delete_is_paged_at_ten_thousand() {
    let app = feed_app(|_| {}).await;
    wait_guaranteed(&app).await;
    let (_, token) = signed_up(&app).await;
    let n = sessiond::session::revoked_log::PAGE + 500;
    app.exec(&format!(
        "insert into session (id, token, \"userId\", \"expiresAt\", \"updatedAt\")
         select 'bulk' || i, 'bulk-token-' || i, s.\"userId\", s.\"expiresAt\", now()
         from session s, generate_series(1, {n}) i where s.token = '{token}'"
    ))
    .await;
    // In batches a millisecond apart on the injected clock, so that pages can be cut.
    let batch = 2_100;
    let mut expected = 0;
    for first in (1..=n).step_by(batch) {
        let last = (first + batch - 1).min(n);
        app.exec(&format!(
            "delete from session where id in (select 'bulk' || i from generate_series({first}, {last}) i)"
        ))
        .await;
        expected += last + 1 - first;
        let start = Instant::now();
        while all_listed(&app).await.len() < expected {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "batch {first} never listed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        app.clock.set_ms(app.clock_ms() + 1);
    }
    let seen = all_listed(&app).await;
    assert_eq!(seen.len(), n);
    assert!(seen.contains(&sid(&format!("bulk-token-{n}"))));
}
