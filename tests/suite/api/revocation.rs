//! Immediate revocation under the faults that used to lose it silently: a Redis restarted,
//! flushed or reconfigured at runtime, a PostgreSQL `TRUNCATE`, a token rewritten, the
//! trigger gone. Each time a cached session of a revoked (or vanished) session must be
//! refused soon after; when revocation cannot be guaranteed, caches are revalidated and
//! `/readyz` and `/metrics` say so.

use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;

use crate::support::*;

async fn readyz(app: &TestApp) -> Value {
    app.readyz().await
}

/// Waits until the revocation listeners report `want` in `/readyz`.
async fn wait_revocation(app: &TestApp, want: &str) {
    let start = Instant::now();
    loop {
        let r = readyz(app).await;
        if r["checks"]["revocation"] == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "revocation never {want}: {r}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A cached session must become signed out: polls `get-session` (cookie cache allowed)
/// until it answers `null`, and returns how long that took.
async fn until_refused(app: &TestApp, jar: &Jar, what: &str) -> Duration {
    let start = Instant::now();
    loop {
        let res = app.get("/get-session", &mut jar.clone()).await;
        if res.status == 200 && res.json().is_null() {
            let took = start.elapsed();
            eprintln!("{what}: refused after {} ms", took.as_millis());
            return took;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{what}: the cached session is still served ({} {})",
            res.status,
            res.text
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn cached_session(app: &TestApp) -> Jar {
    cached_token(app).await.0
}

/// A signed-up session whose cookie cache the next read may serve, and its token.
async fn cached_token(app: &TestApp) -> (Jar, String) {
    let (mut jar, res) = app.sign_up(&unique_email()).await;
    // The first read mints a cache the listeners vouch for; the next one is a hit.
    app.session(&mut jar).await;
    assert!(jar.get("better-auth.session_data").is_some());
    (jar, res.json()["token"].as_str().unwrap().to_string())
}

/// PostgreSQL with the cookie cache, once its revocation feed is up.
async fn cached_on_postgres() -> TestApp {
    let app = spawn_with(Backend::Postgres, |s| s.session.cookie_cache.enabled = true).await;
    wait_revocation(&app, "ok").await;
    app
}

/// SQLite and the Redis at `url` with the cookie cache, once its revocation feed is up.
async fn cached_on_redis(url: String) -> TestApp {
    let app = spawn_with(Backend::Sqlite, move |s| {
        s.redis.url = url.into();
        s.session.cookie_cache.enabled = true;
    })
    .await;
    wait_revocation(&app, "ok").await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_flush_and_restart_are_noticed() {
    let mut redis = PrivateRedis::start(&["--notify-keyspace-events", "KEA"]).await;
    let url = redis.url();
    let app = cached_on_redis(url).await;
    for flush in ["FLUSHDB", "FLUSHALL"] {
        let jar = cached_session(&app).await;
        redis.cmd(&[flush]).await;
        until_refused(&app, &jar, flush).await;
    }
    // A restart loses everything (no persistence): cached copies are refused too.
    let jar = cached_session(&app).await;
    redis.down();
    redis.up().await;
    until_refused(&app, &jar, "Redis restart").await;
    wait_revocation(&app, "ok").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_notifications_switched_off_at_runtime() {
    let redis = PrivateRedis::start(&["--notify-keyspace-events", "KEA"]).await;
    let url = redis.url();
    let app = cached_on_redis(url).await;
    let (jar, token) = cached_token(&app).await;
    // Someone turns keyspace notifications off; then another application deletes the key.
    redis
        .cmd(&["CONFIG", "SET", "notify-keyspace-events", ""])
        .await;
    wait_revocation(&app, "unverified").await;
    redis.cmd(&["DEL", &token]).await;
    until_refused(&app, &jar, "key deleted without notifications").await;
    // sessiond does not change a shared Redis's configuration unless told to.
    let mut c = redis.conn().await.unwrap();
    let flags: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(flags[1], "");
    // Turned back on by the operator: guaranteed again.
    redis
        .cmd(&["CONFIG", "SET", "notify-keyspace-events", "Egx"])
        .await;
    // (Egx is enough without evictions: maxmemory-policy is noeviction here.)
    wait_revocation(&app, "ok").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_notifications_reapplied_when_allowed() {
    let mut redis = PrivateRedis::start(&[]).await;
    let url = redis.url();
    let app = spawn_with(Backend::Sqlite, move |s| {
        s.redis.url = url.into();
        s.session.cookie_cache.enabled = true;
        s.redis.keyspace_notifications =
            serde_json::from_value(serde_json::json!("configure")).unwrap();
    })
    .await;
    wait_revocation(&app, "ok").await;
    // Lost in a restart (CONFIG SET is not persisted): applied again on reconnect.
    redis.down();
    redis.up().await;
    wait_revocation(&app, "ok").await;
    let jar = cached_session(&app).await;
    let token = {
        let mut j = jar.clone();
        app.session(&mut j).await["session"]["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    redis.cmd(&["DEL", &token]).await;
    until_refused(&app, &jar, "key deleted after a restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_truncate_and_token_rewrites_are_announced() {
    let app = cached_on_postgres().await;
    let jar = cached_session(&app).await;
    app.exec(r#"truncate "session""#).await;
    until_refused(&app, &jar, "TRUNCATE session").await;
    let jar = cached_session(&app).await;
    app.exec(r#"truncate "user" cascade"#).await;
    until_refused(&app, &jar, "TRUNCATE user CASCADE").await;
    let jar = cached_session(&app).await;
    app.exec(r#"update "session" set "token" = "token" || 'x'"#)
        .await;
    until_refused(&app, &jar, "token rewritten").await;
    // Triggers still fire for sessions deleted in replication mode (pg_restore, logical
    // replication apply).
    let jar = cached_session(&app).await;
    app.exec(
        r#"do $$ begin set local session_replication_role = replica; delete from "session"; end $$"#,
    )
    .await;
    until_refused(
        &app,
        &jar,
        "deleted with session_replication_role = replica",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_trigger_makes_caches_unverified() {
    let app = cached_on_postgres().await;
    app.exec(r#"alter table "session" disable trigger sessiond_session_revoked"#)
        .await;
    wait_revocation(&app, "unverified").await;
    let jar = cached_session(&app).await;
    app.exec(r#"delete from "session""#).await;
    until_refused(&app, &jar, "deleted while the trigger was disabled").await;
    app.exec(r#"alter table "session" enable always trigger sessiond_session_revoked"#)
        .await;
    wait_revocation(&app, "ok").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limiter_fails_closed_for_credentials_when_redis_is_down() {
    let mut redis = PrivateRedis::start(&[]).await;
    let url = redis.url();
    let app = spawn_with(Backend::Sqlite, move |s| {
        s.redis.url = url.into();
        s.session.store_session_in_database = true;
        s.rate_limit.enabled = Some(true);
    })
    .await;
    let body = serde_json::json!({"email": "nobody@example.com", "password": "wrong-password"});
    let res = app
        .post("/sign-in/email", body.clone(), &mut Jar::default())
        .await;
    assert_eq!(res.status, 401);
    redis.down();
    // Guessing passwords is not unlimited while the shared counter is gone.
    let res = app.post("/sign-in/email", body, &mut Jar::default()).await;
    assert_eq!(res.status, 503, "{}", res.text);
    assert_eq!(res.json()["code"], "RATE_LIMIT_UNAVAILABLE");
    // Other routes stay open (sessions are in the database too).
    let res = app.client.get(app.url("/ok")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_postgres_listener_is_noticed() {
    let db = PgDb::create().await;
    let relay = Relay::start(db.port()).await;
    let url = db.url_via(relay.port);
    let app = spawn_with(Backend::Sqlite, |s| {
        s.database.url = url.into();
        s.database.acquire_timeout = 1;
        s.server.request_timeout = 2;
        s.session.cookie_cache.enabled = true;
    })
    .await;
    wait_revocation(&app, "ok").await;
    let jar = cached_session(&app).await;
    // The replica is cut off without its connections closing; meanwhile the session ends.
    relay.set(2);
    let mut direct = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query(r#"delete from "session""#)
        .execute(&mut direct)
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        let res = app.get("/get-session", &mut jar.clone()).await;
        let served = res.status == 200 && !res.json().is_null();
        if !served {
            eprintln!(
                "stalled listener: cache refused after {} ms ({})",
                start.elapsed().as_millis(),
                res.status
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "still served from the cache"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The link comes back: the listener is replaced and revocation is guaranteed again.
    relay.set(0);
    wait_revocation(&app, "ok").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_toggled_between_looks_reset_the_caches() {
    let app = cached_on_postgres().await;
    let jar = cached_session(&app).await;
    // Off, a deletion nobody announces, and on again, all in one transaction.
    app.exec(
        r#"do $$ begin
             alter table "session" disable trigger sessiond_session_revoked;
             delete from "session";
             alter table "session" enable always trigger sessiond_session_revoked;
           end $$"#,
    )
    .await;
    until_refused(&app, &jar, "triggers toggled").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_notifications_toggled_between_looks_reset_the_caches() {
    let redis = PrivateRedis::start(&["--notify-keyspace-events", "KEA"]).await;
    let url = redis.url();
    let app = cached_on_redis(url).await;
    let (jar, token) = cached_token(&app).await;
    // Off, a deletion nobody announces, and on again, faster than a look.
    let mut c = redis.conn().await.unwrap();
    let _: () = redis::pipe()
        .cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("")
        .ignore()
        .cmd("DEL")
        .arg(&token)
        .ignore()
        .cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("KEA")
        .ignore()
        .query_async(&mut c)
        .await
        .unwrap();
    until_refused(&app, &jar, "notifications toggled").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_functions_cannot_be_replaced_or_shadowed() {
    let app = cached_on_postgres().await;
    // A pg_notify earlier in the caller's search_path does not swallow announcements.
    let jar = cached_session(&app).await;
    app.exec(
        r#"do $$ begin
             create function public.pg_notify(text, text) returns void
               language sql as 'select null::void';
             set local search_path = public, pg_catalog;
             delete from "session";
           end $$"#,
    )
    .await;
    until_refused(&app, &jar, "deleted with pg_notify shadowed").await;
    // The function rewritten to announce nothing: noticed, caches revalidated.
    app.exec(
        r#"create or replace function sessiond_notify_session_revoked() returns trigger
           language plpgsql as $$ begin
             if tg_op = 'DELETE' then return old; end if; return new; end $$"#,
    )
    .await;
    wait_revocation(&app, "unverified").await;
    let jar = cached_session(&app).await;
    app.exec(r#"delete from "session""#).await;
    until_refused(&app, &jar, "deleted with the trigger function rewritten").await;
    // A new start (migrations on) restores it.
    let url = app.db_url.clone();
    let again = spawn_with(Backend::Sqlite, move |s| {
        s.database.url = url.into();
        s.session.cookie_cache.enabled = true;
    })
    .await;
    wait_revocation(&again, "ok").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_subscriber_is_noticed() {
    let redis = PrivateRedis::start(&["--notify-keyspace-events", "KEA"]).await;
    let relay = Relay::start(redis.port).await;
    let url = format!("redis://127.0.0.1:{}", relay.port);
    let app = cached_on_redis(url).await;
    let (jar, token) = cached_token(&app).await;
    // Only the subscriber's connection stalls; then another application deletes the key.
    relay.set(3);
    redis.cmd(&["DEL", &token]).await;
    until_refused(&app, &jar, "key deleted while the subscriber stalled").await;
    wait_revocation(&app, "unverified").await;
    // The link comes back: the subscriber is replaced and revocation guaranteed again.
    relay.set(0);
    wait_revocation(&app, "ok").await;
}
