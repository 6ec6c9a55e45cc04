//! `database.read_url`: a real PostgreSQL streaming replica (made once per run with
//! `pg_basebackup`, see `support::replica`). get-session and list-sessions read from it,
//! and the client that wrote still reads its own writes while its replay is paused; a
//! replica beyond the lag bound, stopped, stalled or not a standby leaves the primary to
//! serve, with no error to the client.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::replica::PgReplica;
use crate::support::*;

/// An app on a fresh PostgreSQL database, reading from the replica at `read_port` (the
/// replica itself, or a relay in front of it) with the given lag bound.
async fn replicated(read_port: u16, max_lag_ms: u64) -> TestApp {
    replicated_with(read_port, max_lag_ms, |_| {}).await
}

async fn replicated_with(
    read_port: u16,
    max_lag_ms: u64,
    f: impl FnOnce(&mut sessiond::config::Settings),
) -> TestApp {
    spawn_with(Backend::Postgres, |s| {
        let url = url::Url::parse(s.database.url.expose_secret()).unwrap();
        let db = url.path().trim_start_matches('/').to_owned();
        s.database.read_url = format!("postgres://postgres@127.0.0.1:{read_port}/{db}").into();
        s.database.read_max_lag_ms = max_lag_ms;
        s.database.read_max_connections = 3;
        f(s);
    })
    .await
}

fn db_name(app: &TestApp) -> String {
    url::Url::parse(&app.db_url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_owned()
}

/// `db_reads_total{target}` (the recorder is the process's; tests reading it hold
/// [`PgReplica::exclusive`]).
async fn reads(app: &TestApp, target: &str) -> u64 {
    let text = app
        .client
        .get(format!("http://{}/metrics", app.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("db_reads_total{{target=\"{target}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Gets the session until the replica answers one of the reads (it has replayed the
/// sign-up and is within the bound): each answer must be the signed-in user.
async fn until_read_from_replica(app: &TestApp, jar: &mut Jar, email: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (r0, p0) = (reads(app, "replica").await, reads(app, "primary").await);
        let body = app.session(jar).await;
        assert_eq!(body["user"]["email"], email, "{body}");
        // Answered by the replica alone (a miss there is asked of the primary too).
        if reads(app, "replica").await > r0 && reads(app, "primary").await == p0 {
            return;
        }
        assert!(Instant::now() < deadline, "the replica never served a read");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn replica_check(app: &TestApp) -> Value {
    app.readyz().await["checks"]["database_replica"].clone()
}

async fn until_replica_state(app: &TestApp, word: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while replica_check(app).await != word {
        assert!(
            Instant::now() < deadline,
            "replica never {word}: {}",
            app.readyz().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn forward_auth(app: &TestApp, jar: &Jar) -> u16 {
    let url = format!("http://{}/forward-auth", app.addr);
    let res = app
        .client
        .request(Method::GET, url)
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    res.status().as_u16()
}

fn token_of(jar: &Jar) -> String {
    let raw = jar.get(TOKEN_COOKIE).unwrap();
    let decoded = url::form_urlencoded::parse(format!("t={raw}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned();
    decoded.split('.').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_the_replica_and_are_counted() {
    let replica = PgReplica::get();
    let _one = PgReplica::exclusive().await;
    replica.resume().await;
    let app = replicated(replica.port, 1000).await;
    let email = unique_email();
    let (mut jar, _) = app.sign_up(&email).await;
    until_read_from_replica(&app, &mut jar, &email).await;
    until_replica_state(&app, "ok").await;
    let ready = app.readyz().await;
    assert_eq!(ready["status"], "ok", "{ready}");
    // list-sessions and forward auth read there too.
    let before = reads(&app, "replica").await;
    let listed = app.get("/list-sessions", &mut jar).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json().as_array().unwrap().len(), 1);
    assert_eq!(forward_auth(&app, &jar).await, 200);
    assert!(reads(&app, "replica").await >= before + 2);
}

/// A session created on the primary by another process, not yet on the (paused)
/// replica, is found: the replica's "no such session" is checked on the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_not_yet_replayed_is_found_on_the_primary() {
    let replica = PgReplica::get();
    let _one = PgReplica::exclusive().await;
    replica.resume().await;
    // A bound long enough that the paused replica is still read.
    let reader = replicated(replica.port, 600_000).await;
    let db = db_name(&reader);
    replica.url_for(&db).await;
    let primary_url = reader.db_url.clone();
    let writer = spawn_with(Backend::Postgres, |s| {
        s.database.url = primary_url.into();
    })
    .await;
    let email = unique_email();
    let (mut first, _) = writer.sign_up(&email).await;
    until_read_from_replica(&reader, &mut first, &email).await;
    let paused = replica.pause().await;
    let (mut jar, res) = writer.sign_in(&email, PASSWORD).await;
    assert_eq!(res.status, 200);
    let token = token_of(&jar);
    let on_replica = replica
        .count(
            &db,
            &format!(r#"select count(*) from "session" where "token" = '{token}'"#),
        )
        .await;
    assert_eq!(
        on_replica, 0,
        "the replica must not have the new session yet"
    );
    let (r0, p0) = (
        reads(&reader, "replica").await,
        reads(&reader, "primary").await,
    );
    let body = reader.session(&mut jar).await;
    assert_eq!(body["user"]["email"], email, "{body}");
    assert!(reads(&reader, "replica").await > r0);
    assert!(reads(&reader, "primary").await > p0);
    assert_eq!(forward_auth(&reader, &jar).await, 200);
    paused.resume().await;
}

/// After a refresh this process wrote, the paused replica still holds the old expiry: the
/// next reads show the new one (the primary's), never the old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_is_read_back_while_the_replica_lags() {
    let replica = PgReplica::get();
    let _one = PgReplica::exclusive().await;
    replica.resume().await;
    let app = replicated_with(replica.port, 600_000, |s| s.session.update_age = 60).await;
    let email = unique_email();
    let (mut jar, _) = app.sign_up(&email).await;
    until_read_from_replica(&app, &mut jar, &email).await;
    let before = app.session(&mut jar).await["session"]["expiresAt"].clone();
    let paused = replica.pause().await;
    // Past update_age: this get-session refreshes.
    app.clock.advance_secs(120);
    let refreshed = app.session(&mut jar).await["session"]["expiresAt"].clone();
    assert_ne!(refreshed, before, "the refresh must move the expiry");
    let token = token_of(&jar);
    let db = db_name(&app);
    let stale: i64 = replica
        .count(
            &db,
            &format!(
                r#"select cast(extract(epoch from "expiresAt") * 1000 as int8) from "session" where "token" = '{token}'"#
            ),
        )
        .await;
    let old_ms = chrono::DateTime::parse_from_rfc3339(before.as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert_eq!(stale, old_ms, "the paused replica holds the old expiry");
    for _ in 0..3 {
        let again = app.session(&mut jar).await;
        assert_eq!(again["session"]["expiresAt"], refreshed, "{again}");
        let listed = app.get("/list-sessions", &mut jar).await.json();
        assert_eq!(listed[0]["expiresAt"], refreshed, "{listed}");
    }
    paused.resume().await;
}

/// A revocation this process made is final at once, though the paused replica still has
/// the row: get-session says signed out, forward auth 401, list-sessions leaves it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_is_final_at_once_while_the_replica_lags() {
    let replica = PgReplica::get();
    let _one = PgReplica::exclusive().await;
    replica.resume().await;
    let app = replicated(replica.port, 600_000).await;
    let email = unique_email();
    let (mut victim, _) = app.sign_up(&email).await;
    let (mut other, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(res.status, 200);
    until_read_from_replica(&app, &mut victim, &email).await;
    until_read_from_replica(&app, &mut other, &email).await;
    let paused = replica.pause().await;
    let token = token_of(&victim);
    let res = app
        .post("/revoke-session", json!({ "token": token }), &mut other)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let db = db_name(&app);
    let still = replica
        .count(
            &db,
            &format!(r#"select count(*) from "session" where "token" = '{token}'"#),
        )
        .await;
    assert_eq!(still, 1, "the paused replica still has the revoked session");
    assert_eq!(forward_auth(&app, &victim).await, 401);
    let res = app.get("/get-session", &mut victim.clone()).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), Value::Null, "{}", res.text);
    let listed = app.get("/list-sessions", &mut other).await.json();
    let tokens: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["token"].as_str().unwrap())
        .collect();
    assert!(!tokens.contains(&token.as_str()), "{listed}");
    assert_eq!(tokens.len(), 1);
    // Signing out (revoking one's own) is as final.
    let res = app.post("/sign-out", json!({}), &mut other.clone()).await;
    assert_eq!(res.status, 200);
    assert_eq!(forward_auth(&app, &other).await, 401);
    paused.resume().await;
}

/// Replay paused while the primary moves on: beyond the bound, reads go to the primary
/// and readiness stays green; replay resumed, they return to the replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_lag_bound_the_primary_serves() {
    let replica = PgReplica::get();
    let _one = PgReplica::exclusive().await;
    replica.resume().await;
    let app = replicated(replica.port, 1000).await;
    let email = unique_email();
    let (mut jar, _) = app.sign_up(&email).await;
    until_read_from_replica(&app, &mut jar, &email).await;
    let paused = replica.pause().await;
    // The primary moves on (other tests write too).
    app.sign_up(&unique_email()).await;
    until_replica_state(&app, "lagging").await;
    assert_eq!(app.ready_status().await, 200);
    let (r0, p0) = (reads(&app, "replica").await, reads(&app, "primary").await);
    for _ in 0..3 {
        assert_eq!(app.session(&mut jar).await["user"]["email"], email);
    }
    assert_eq!(app.get("/list-sessions", &mut jar).await.status, 200);
    assert_eq!(
        reads(&app, "replica").await,
        r0,
        "no read went to the lagging replica"
    );
    assert!(reads(&app, "primary").await >= p0 + 4);
    paused.resume().await;
    until_replica_state(&app, "ok").await;
    until_read_from_replica(&app, &mut jar, &email).await;
}

/// The replica refused (down) and then stalled (a partition): get-session and
/// list-sessions answer from the primary without an error, readiness stays green, and
/// the replica is read again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_outage_falls_back_to_the_primary() {
    let replica = PgReplica::get();
    let _one = PgReplica::exclusive().await;
    replica.resume().await;
    let relay = Relay::start(replica.port).await;
    let app = replicated(relay.port, 1000).await;
    let email = unique_email();
    let (mut jar, _) = app.sign_up(&email).await;
    until_read_from_replica(&app, &mut jar, &email).await;
    for (mode, word) in [(1, "down"), (2, "stalled")] {
        relay.set(mode);
        for _ in 0..5 {
            let res = app.get("/get-session", &mut jar).await;
            assert_eq!(res.status, 200, "{word}: {}", res.text);
            assert_eq!(res.json()["user"]["email"], email, "{word}");
            let listed = app.get("/list-sessions", &mut jar).await;
            assert_eq!(listed.status, 200, "{word}: {}", listed.text);
            assert_eq!(forward_auth(&app, &jar).await, 200, "{word}");
        }
        until_replica_state(&app, "unavailable").await;
        let ready = app.readyz().await;
        assert_eq!(ready["status"], "ok", "{word}: {ready}");
        assert_eq!(app.ready_status().await, 200);
        relay.set(0);
        until_replica_state(&app, "ok").await;
        until_read_from_replica(&app, &mut jar, &email).await;
    }
}

/// The replica stopped for good at start (nothing listens): the service starts, serves
/// from the primary and is ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_down_at_start_does_not_stop_the_service() {
    let nothing = crate::support::process::free_port();
    let app = replicated(nothing, 1000).await;
    let email = unique_email();
    let (mut jar, _) = app.sign_up(&email).await;
    for _ in 0..3 {
        assert_eq!(app.session(&mut jar).await["user"]["email"], email);
    }
    until_replica_state(&app, "unavailable").await;
    assert_eq!(app.ready_status().await, 200);
}

/// Attack: `read_url` pointed at a primary (a promoted standby, a wrong URL). It would
/// answer every read, but it is not following `url`: never read from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_url_that_is_not_a_standby_is_never_read() {
    let _one = PgReplica::exclusive().await;
    let app = spawn_with(Backend::Postgres, |s| {
        s.database.read_url = s.database.url.clone();
    })
    .await;
    until_replica_state(&app, "not_a_standby").await;
    let email = unique_email();
    let (mut jar, _) = app.sign_up(&email).await;
    let r0 = reads(&app, "replica").await;
    for _ in 0..3 {
        assert_eq!(app.session(&mut jar).await["user"]["email"], email);
    }
    assert_eq!(reads(&app, "replica").await, r0);
    assert_eq!(app.ready_status().await, 200);
}

/// `read_url` is PostgreSQL's only: refused at start with SQLite, or with a non-PostgreSQL
/// replica URL, with a message naming the option; and its secret never reaches the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_url_is_refused_without_postgres() {
    let dir = tempfile::tempdir().unwrap();
    for (url, read) in [
        ("", "postgres://u:hunter2-secret@127.0.0.1:1/db"),
        (
            "sqlite://x.db",
            "postgres://u:hunter2-secret@127.0.0.1:1/db",
        ),
        (
            "postgres://u@127.0.0.1:1/db",
            "mysql://u:hunter2-secret@127.0.0.1/db",
        ),
    ] {
        let mut s = test_settings();
        s.data_dir = dir.path().to_path_buf();
        s.database.url = url.into();
        s.database.read_url = read.into();
        let err = match sessiond::app::Application::build(s).await {
            Ok(_) => panic!("{url} / {read} accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("database.read_url"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
    let mut s = test_settings();
    s.database.url = "postgres://u@127.0.0.1:1/db".into();
    s.database.read_url = "postgres://u@127.0.0.1:2/db".into();
    s.database.read_max_lag_ms = 0;
    let err = s.validate().unwrap_err().to_string();
    assert!(err.contains("read_max_lag_ms"), "{err}");
}

/// Attack on the stale read: another process refreshed a session the paused replica still
/// holds with its old expiry, now past. Taking the replica's word would sign the client out
/// and delete a live session; the primary is asked instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_seen_on_the_replica_is_checked_on_the_primary() {
    let replica = PgReplica::get();
    let _one = PgReplica::exclusive().await;
    replica.resume().await;
    let short = |s: &mut sessiond::config::Settings| {
        s.session.expires_in = 3600;
        s.session.update_age = 60;
    };
    let reader = replicated_with(replica.port, 600_000, short).await;
    let primary_url = reader.db_url.clone();
    let writer = spawn_with(Backend::Postgres, |s| {
        s.database.url = primary_url.into();
        short(s);
    })
    .await;
    let email = unique_email();
    let (mut jar, _) = writer.sign_up(&email).await;
    until_read_from_replica(&reader, &mut jar.clone(), &email).await;
    let paused = replica.pause().await;
    writer.clock.advance_secs(3000);
    let refreshed = writer.session(&mut jar).await;
    assert_eq!(refreshed["user"]["email"], email, "{refreshed}");
    // Past the expiry the replica holds, before the refreshed one.
    reader.clock.advance_secs(3700);
    let body = reader.session(&mut jar.clone()).await;
    assert_eq!(body["user"]["email"], email, "{body}");
    let token = token_of(&jar);
    let live = reader
        .count(&format!(
            r#"select count(*) from "session" where "token" = '{token}'"#
        ))
        .await;
    assert_eq!(live, 1, "the live session must not have been deleted");
    paused.resume().await;
}

/// A stalled replica (a partition: connections hang) under a long lag bound: reads still
/// fall back to the primary rather than wait on it until the request times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_replica_is_not_waited_for_under_a_long_bound() {
    let replica = PgReplica::get();
    let _one = PgReplica::exclusive().await;
    replica.resume().await;
    let relay = Relay::start(replica.port).await;
    let app = replicated(relay.port, 600_000).await;
    let email = unique_email();
    let (mut jar, _) = app.sign_up(&email).await;
    until_read_from_replica(&app, &mut jar, &email).await;
    relay.set(2);
    for _ in 0..3 {
        let res = app.get("/get-session", &mut jar).await;
        assert_eq!(res.status, 200, "{}", res.text);
        assert_eq!(res.json()["user"]["email"], email);
        let listed = app.get("/list-sessions", &mut jar).await;
        assert_eq!(listed.status, 200, "{}", listed.text);
    }
    until_replica_state(&app, "unavailable").await;
    relay.set(0);
    until_replica_state(&app, "ok").await;
}
