//! The delivery loop as the service runs it: two replicas started at once on one
//! PostgreSQL database deliver each event of sessiond's own writes once; the database
//! going away mid-delivery loses nothing; stateless mode is refused.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use sessiond::app::Application;
use sessiond::clock::{Clock, ManualClock};
use sessiond::config::{Settings, WebhooksSettings};
use sessiond::store::webhooks::Webhooks;
use sqlx::Connection;

use super::delivery::endpoint;
use super::outbox::record;
use super::receiver::Receiver;
use super::Db;
use crate::support::{test_settings, PgDb, ORIGIN, PASSWORD};

fn replica(pg: &PgDb, dir: &tempfile::TempDir, hook: &str) -> Settings {
    let mut s = test_settings();
    s.data_dir = dir.path().to_path_buf();
    s.database.url = pg.url.clone().into();
    s.database.max_connections = 4;
    s.webhooks.endpoints = vec![endpoint("a", hook, &[])];
    s
}

async fn post(addr: &str, path: &str, body: serde_json::Value) -> u16 {
    reqwest::Client::new()
        .post(format!("http://{addr}/api/auth{path}"))
        .header("origin", ORIGIN)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_started_at_once_deliver_each_event_once() {
    let pg = PgDb::create().await;
    let (rx, url) = Receiver::start(200).await;
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = tokio::join!(
        Application::build(replica(&pg, &d1, &url)),
        Application::build(replica(&pg, &d2, &url))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let addrs = [
        a.local_addr().unwrap().to_string(),
        b.local_addr().unwrap().to_string(),
    ];
    tokio::spawn(a.run_until_stopped());
    tokio::spawn(b.run_until_stopped());
    let email = format!(
        "hooks-{}@example.com",
        sessiond::crypto::token::generate_id()
    );
    let signed_up = json_body(&email, true);
    assert_eq!(post(&addrs[0], "/sign-up/email", signed_up).await, 200);
    for i in 0..6 {
        assert_eq!(
            post(&addrs[i % 2], "/sign-in/email", json_body(&email, false)).await,
            200
        );
    }
    let mut c = sqlx::PgConnection::connect(&pg.url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let ids: Vec<String> = loop {
        let pending: i64 =
            sqlx::query_scalar(r#"select count(*) from "sessiond_event" where "pending""#)
                .fetch_one(&mut c)
                .await
                .unwrap();
        if pending == 0 {
            break sqlx::query_scalar(r#"select "eventId" from "sessiond_event""#)
                .fetch_all(&mut c)
                .await
                .unwrap();
        }
        assert!(Instant::now() < deadline, "{pending} events still pending");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // user.created, then session.created and user.signed_in for each of the 7 sign-ins.
    assert_eq!(ids.len(), 15);
    let got: Vec<String> = rx.got().into_iter().map(|g| g.id).collect();
    assert_eq!(got.len(), ids.len(), "each event once");
    assert_eq!(
        got.into_iter().collect::<HashSet<_>>(),
        ids.into_iter().collect::<HashSet<_>>()
    );
    assert!(!rx.got().iter().any(|g| g.body.contains(PASSWORD)));
}

fn json_body(email: &str, name: bool) -> serde_json::Value {
    if name {
        serde_json::json!({"name": "Hook", "email": email, "password": PASSWORD})
    } else {
        serde_json::json!({"email": email, "password": PASSWORD})
    }
}

/// The first time, ends every other connection to the database; answers 200: the first
/// delivery succeeds but its settling finds the database gone.
async fn cut_db(State((url, once)): State<(String, Arc<AtomicBool>)>) -> StatusCode {
    if once.swap(true, Ordering::SeqCst) {
        return StatusCode::OK;
    }
    let name = url.rsplit('/').next().unwrap().to_owned();
    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(
        "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
    )
    .bind(name)
    .execute(&mut c)
    .await
    .unwrap();
    StatusCode::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_going_away_mid_delivery_loses_nothing() {
    let db = Db::postgres(1).await;
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(cut_db))
        .with_state((db.url.clone(), Arc::new(AtomicBool::new(false))));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cutter = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    let (rx, url) = Receiver::start(200).await;
    let clock = ManualClock::starting_now();
    let s = WebhooksSettings {
        endpoints: vec![endpoint("cut", &cutter, &[]), endpoint("rx", &url, &[])],
        ..Default::default()
    };
    let h = Webhooks::new(&s, db.outbox(), Arc::new(clock.clone())).unwrap();
    record(&db, 1, clock.now()).await;
    // The round ends whatever the database does; its settle may fail.
    let _ = h.step().await;
    // Once the lease lapses the event is claimed again (the pool reconnects) and every
    // endpoint that is not known to have it gets it again, with the same id.
    clock.advance_secs(i64::try_from(h.lease().as_secs()).unwrap() + 1);
    let mut rounds = 0;
    while db.outbox().pending().await.map_or(true, |n| n > 0) {
        let _ = h.step().await;
        clock.advance_secs(3600);
        rounds += 1;
        assert!(rounds < 10, "still pending after {rounds} rounds");
    }
    let got = rx.got();
    assert!(!got.is_empty());
    assert!(got.iter().all(|g| g.id == got[0].id));
}

#[test]
fn stateless_mode_refuses_webhooks() {
    let mut s = test_settings();
    s.database.url = "memory".into();
    s.webhooks.endpoints = vec![endpoint("a", "http://127.0.0.1:9/hook", &[])];
    let e = s.validate().unwrap_err().to_string();
    assert!(e.contains("stateless"), "{e}");
}
