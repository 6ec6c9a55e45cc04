//! The audit trail: failed sign-ins and bans are recorded, the service API lists a
//! user's session history newest first in pages, refuses what it should, and old events
//! are purged after `session.audit.keep_days`.

use reqwest::Method;
use serde_json::{json, Value};
use sessiond::config::{hash_key, Operation, ServiceKey, Settings};

use super::events::events;
use crate::support::*;

crate::on_both_backends!(
    failed_sign_ins_are_recorded_without_the_password,
    history_pages_newest_first_with_reasons,
    history_refuses_bad_input_and_other_keys,
    old_events_are_purged_at_start,
    failed_sign_ins_recorded_are_capped_per_second,
);

const KEY: &str = "audit-reader-key-0123456789abcdefghijklmnopq";
const NO_HISTORY: &str = "banning-key-0123456789abcdefghijklmnopqrstuv";

fn configure(s: &mut Settings) {
    s.session.audit.keep_days = 30;
    s.plugins.admin.enabled = true;
    s.service_api.enabled = true;
    s.service_api.keys = vec![
        ServiceKey {
            name: "auditor".into(),
            hash: hash_key(KEY),
            operations: vec![Operation::SessionsHistory, Operation::UsersBan],
        },
        ServiceKey {
            name: "banner".into(),
            hash: hash_key(NO_HISTORY),
            operations: vec![Operation::UsersBan],
        },
    ];
}

async fn call(app: &TestApp, method: Method, path: &str, key: &str, body: Option<Value>) -> Res {
    super::service_api::call(app, method, path, Some(key), body).await
}

async fn failed_sign_ins_are_recorded_without_the_password(b: Backend) {
    let app = spawn_with(b, configure).await;
    let email = unique_email();
    let (_, res) = app.sign_up(&email).await;
    let uid = res.json()["user"]["id"].as_str().unwrap().to_owned();
    let wrong = "not-the-password-at-all";
    let (_, res) = app.sign_in(&email, wrong).await;
    assert_eq!(res.status, 401);
    let (_, res) = app.sign_in(&unique_email(), wrong).await;
    assert_eq!(res.status, 401);
    let res = call(
        &app,
        Method::POST,
        &format!("/users/{uid}/ban"),
        KEY,
        Some(json!({})),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let (_, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(res.status, 403);

    let evs = events(&app).await;
    let failed: Vec<_> = evs
        .iter()
        .filter(|e| e.kind == "user.sign_in_failed")
        .collect();
    assert_eq!(failed.len(), 3, "{evs:?}");
    assert_eq!(failed[0].user_id.as_deref(), Some(uid.as_str()));
    assert_eq!(failed[0].data["reason"], "wrong_password");
    assert_eq!(failed[1].user_id, None);
    assert_eq!(failed[1].data["reason"], "unknown_user");
    assert_eq!(failed[2].data["reason"], "banned");
    let ban = evs
        .iter()
        .find(|e| e.kind == "session.revoked")
        .expect("the ban ended the session");
    assert_eq!(ban.data["reason"], "ban");
    let text = format!("{evs:?}");
    assert!(!text.contains(wrong) && !text.contains(PASSWORD));
}

async fn history_pages_newest_first_with_reasons(b: Backend) {
    let app = spawn_with(b, configure).await;
    let email = unique_email();
    let (mut a, res) = app.sign_up(&email).await;
    let uid = res.json()["user"]["id"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        app.clock.advance_secs(1);
        let (mut j, _) = app.sign_in(&email, PASSWORD).await;
        app.post("/sign-out", json!({}), &mut j).await;
    }
    app.post("/sign-out", json!({}), &mut a).await;
    // Another user's history stays out.
    app.sign_up(&unique_email()).await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("?limit=3&cursor={c}"),
            None => "?limit=3".into(),
        };
        let res = call(
            &app,
            Method::GET,
            &format!("/users/{uid}/history{q}"),
            KEY,
            None,
        )
        .await;
        assert_eq!(res.status, 200, "{}", res.text);
        let body = res.json();
        let page = body["events"].as_array().unwrap().clone();
        assert!(page.len() <= 3);
        seen.extend(page);
        match body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    // Four sessions, each started and ended: newest first, so an end comes first.
    let kinds: Vec<&str> = seen.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 8, "{seen:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "session.created").count(), 4);
    assert_eq!(kinds[0], "session.revoked");
    assert_eq!(seen[0]["data"]["reason"], "sign_out");
    let times: Vec<&str> = seen
        .iter()
        .map(|e| e["occurredAt"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(times, sorted, "newest first");
    for e in &seen {
        assert!(e["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(e["data"]["userId"], uid.as_str());
    }
}

async fn history_refuses_bad_input_and_other_keys(b: Backend) {
    let app = spawn_with(b, configure).await;
    let res = call(&app, Method::GET, "/users/x/history", NO_HISTORY, None).await;
    assert_eq!(res.status, 403);
    assert_eq!(res.code().as_deref(), Some("OPERATION_NOT_ALLOWED"));
    let res = call(
        &app,
        Method::GET,
        "/users/x/history",
        "no-such-key-0123456789abcdefghijklmn",
        None,
    )
    .await;
    assert_eq!(res.status, 401);
    for (q, code) in [
        ("?limit=0", "INVALID_LIMIT"),
        ("?limit=201", "INVALID_LIMIT"),
        ("?limit=-1", "INVALID_LIMIT"),
        ("?cursor=abc", "INVALID_CURSOR"),
        ("?cursor=-5", "INVALID_CURSOR"),
        ("?cursor=0", "INVALID_CURSOR"),
        ("?cursor=99999999999999999999999", "INVALID_CURSOR"),
    ] {
        let res = call(
            &app,
            Method::GET,
            &format!("/users/x/history{q}"),
            KEY,
            None,
        )
        .await;
        assert_eq!(res.status, 400, "{q}: {}", res.text);
        assert_eq!(res.code().as_deref(), Some(code), "{q}");
    }
    let long = "u".repeat(256);
    let res = call(
        &app,
        Method::GET,
        &format!("/users/{long}/history"),
        KEY,
        None,
    )
    .await;
    assert_eq!(res.status, 400);
    // Unknown users, odd encodings and quotes: an empty history, never an error.
    for id in [
        "nobody",
        "%00",
        "a%2Fb",
        "x'%20or%20'1'='1",
        "%F0%9F%98%80",
        "%C0%AF",
    ] {
        let res = call(
            &app,
            Method::GET,
            &format!("/users/{id}/history"),
            KEY,
            None,
        )
        .await;
        if res.status == 200 {
            assert_eq!(
                res.json(),
                json!({"events": [], "nextCursor": null}),
                "{id}"
            );
        } else {
            assert_eq!(res.status, 400, "{id}: {}", res.text);
        }
    }
    let res = call(&app, Method::POST, "/users/x/history", KEY, None).await;
    assert_ne!(res.status, 200);
    // With the trail off: 404.
    let off = spawn_with(b, |s| {
        configure(s);
        s.session.audit.keep_days = 0;
    })
    .await;
    let res = call(&off, Method::GET, "/users/x/history", KEY, None).await;
    assert_eq!(res.status, 404);
    assert_eq!(res.code().as_deref(), Some("AUDIT_TRAIL_OFF"));
}

async fn old_events_are_purged_at_start(b: Backend) {
    let first = spawn_with(b, configure).await;
    first.sign_up(&unique_email()).await;
    let (old_type, fresh) = ("session.created", events(&first).await.len());
    assert!(fresh >= 3);
    // Two settled events, 40 and 20 days old, and an undelivered one 40 days old: past
    // the retention, delivered or not, events go (events written with no webhooks are never
    // delivered).
    let (f, t) = match b {
        Backend::Postgres => ("false", "true"),
        Backend::Sqlite => ("0", "1"),
    };
    for (days, pending, id) in [(40, f, "old"), (20, f, "kept"), (40, t, "pending")] {
        let at = (sessiond::clock::from_ms(first.clock_ms()) - chrono::Duration::days(days))
            .to_rfc3339();
        first
            .exec(&format!(
                r#"insert into "sessiond_event" ("eventId", "type", "occurredAt", "data", "nextAt", "pending")
                   values ('evt_{id}', '{old_type}', '{at}', '{{}}', '{at}', {pending})"#
            ))
            .await;
    }
    let url = first.db_url.clone();
    let second = spawn_with(b, move |s| {
        configure(s);
        s.database.url = url.into();
    })
    .await;
    let left =
        |id: &str| format!(r#"select count(*) from "sessiond_event" where "eventId" = 'evt_{id}'"#);
    // The purge runs at start, in the background: poll for it.
    for _ in 0..100 {
        if second.count(&left("old")).await + second.count(&left("pending")).await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        second.count(&left("old")).await,
        0,
        "a 40-day-old event was purged"
    );
    assert_eq!(second.count(&left("kept")).await, 1);
    assert_eq!(second.count(&left("pending")).await, 0);
    // The events just written (pending: no webhooks) stay.
    assert_eq!(events(&second).await.len(), fresh + 1);
}

async fn failed_sign_ins_recorded_are_capped_per_second(b: Backend) {
    let app = spawn_with(b, |s| {
        configure(s);
        s.metrics.enabled = true;
        // 62 hashes queued at once take tens of seconds on a machine busy with builds: no
        // request may time out before its hash.
        s.server.request_timeout = 600;
    })
    .await;
    let cap = sessiond::session::service::MAX_FAILED_SIGN_IN_EVENTS_PER_SEC as usize;
    let before = dropped(&app).await;
    // The clock stands still: every attempt falls in one second.
    let attempts = futures::future::join_all((0..cap + 12).map(|_| {
        let app = &app;
        async move {
            app.sign_in(&unique_email(), "wrong-password-here")
                .await
                .1
                .status
        }
    }))
    .await;
    assert!(attempts.iter().all(|s| *s == 401), "{attempts:?}");
    let failed = events(&app)
        .await
        .into_iter()
        .filter(|e| e.kind == "user.sign_in_failed")
        .count();
    assert_eq!(failed, cap);
    // Metrics are the process's: the other backend's run may add its own.
    let after = dropped(&app).await;
    assert!(after >= before + 12, "{before} -> {after}");
    // The next second records again.
    app.clock.advance_secs(1);
    app.sign_in(&unique_email(), "wrong-password-here").await;
    let failed = events(&app)
        .await
        .into_iter()
        .filter(|e| e.kind == "user.sign_in_failed")
        .count();
    assert_eq!(failed, cap + 1);
}

/// `sign_in_failed_events_dropped_total` as /metrics shows it (0 before the first drop).
async fn dropped(app: &TestApp) -> u64 {
    let res = app
        .client
        .get(format!("http://{}/metrics", app.addr))
        .send()
        .await
        .unwrap();
    let text = res.text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with("sign_in_failed_events_dropped_total"))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |n| n.parse::<f64>().unwrap() as u64)
}
