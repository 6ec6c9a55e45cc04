//! Lifecycle events: what the outbox holds after each kind of change, with its reason,
//! its client and nothing secret; changes made by another application sharing the
//! database are recorded as "external"; with events off nothing is installed.

use reqwest::Method;
use serde_json::{json, Value};
use sqlx::{Connection, Row};

use crate::support::*;
use sessiond::config::{MaxPerUserAction, Settings};

crate::on_both_backends!(
    sign_up_sign_in_and_revocations_are_recorded_with_their_reasons,
    password_change_and_limit_are_recorded,
    expired_and_external_ends_are_recorded,
    events_hold_no_secret,
    with_events_off_nothing_is_installed,
    turning_events_off_removes_the_triggers,
    a_missing_event_table_is_not_ready,
    long_user_agents_are_cut,
    with_redis_the_database_rows_carry_the_events,
    refreshes_are_recorded_only_when_asked,
);

fn audited(s: &mut Settings) {
    s.session.audit.keep_days = 30;
}

/// An event as the outbox holds it.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: String,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub data: Value,
}

/// Every event in the outbox, oldest first.
pub async fn events(app: &TestApp) -> Vec<Event> {
    let sql = r#"select "type", "userId", "sessionId", cast("data" as text) as "data"
                 from "sessiond_event" order by "id""#;
    let rows = match app.backend {
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&app.db_url).await.unwrap();
            sqlx::query(sql)
                .fetch_all(&mut c)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get::<String, _>(3)))
                .collect::<Vec<(String, Option<String>, Option<String>, String)>>()
        }
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&app.db_url).await.unwrap();
            sqlx::query(sql)
                .fetch_all(&mut c)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get::<String, _>(3)))
                .collect()
        }
    };
    rows.into_iter()
        .map(|(kind, user_id, session_id, data)| Event {
            kind,
            user_id,
            session_id,
            data: serde_json::from_str(&data).unwrap(),
        })
        .collect()
}

fn kinds(evs: &[Event]) -> Vec<&str> {
    evs.iter().map(|e| e.kind.as_str()).collect()
}

fn user_id(res: &Res) -> String {
    res.json()["user"]["id"].as_str().unwrap().to_owned()
}

async fn session_id(app: &TestApp, jar: &mut Jar) -> String {
    app.session(jar).await["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn sign_up_sign_in_and_revocations_are_recorded_with_their_reasons(b: Backend) {
    let app = spawn_with(b, audited).await;
    let email = unique_email();
    let mut jar = Jar::default();
    let res = app
        .send(
            Method::POST,
            "/sign-up/email",
            Some(json!({"name": "Ev", "email": email, "password": PASSWORD})),
            Some(&mut jar),
            &[("user-agent", "events-test/1")],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let uid = user_id(&res);
    let first = session_id(&app, &mut jar).await;
    let evs = events(&app).await;
    assert_eq!(
        kinds(&evs),
        ["user.created", "session.created", "user.signed_in"]
    );
    for e in &evs {
        assert_eq!(e.user_id.as_deref(), Some(uid.as_str()));
        assert_eq!(e.data["origin"], "sessiond");
        assert_eq!(e.data["request"]["userAgent"], "events-test/1");
    }
    assert_eq!(evs[1].session_id.as_deref(), Some(first.as_str()));
    assert_eq!(evs[1].data["userAgent"], "events-test/1");

    app.clock.advance_secs(1);
    let (mut second, _) = app.sign_in(&email, PASSWORD).await;
    let second_id = session_id(&app, &mut second).await;
    app.clock.advance_secs(1);
    let (mut third, _) = app.sign_in(&email, PASSWORD).await;
    let third_id = session_id(&app, &mut third).await;
    app.clock.advance_secs(1);
    let (mut fourth, _) = app.sign_in(&email, PASSWORD).await;
    let before = events(&app).await.len();

    // revoke-session (another device), revoke-other-sessions, sign-out.
    let token = app.get("/list-sessions", &mut jar).await.json()[1]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .post("/revoke-session", json!({ "token": token }), &mut jar)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let res = app
        .post("/revoke-other-sessions", json!({}), &mut fourth)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let res = app.post("/sign-out", json!({}), &mut fourth).await;
    assert_eq!(res.status, 200, "{}", res.text);

    let evs = events(&app).await;
    let ended: Vec<(&str, &str)> = evs[before..]
        .iter()
        .map(|e| {
            assert_eq!(e.kind, "session.revoked");
            assert!(e.data["endedAt"].is_string(), "{:?}", e.data);
            (
                e.session_id.as_deref().unwrap(),
                e.data["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(ended[0], (second_id.as_str(), "revoke"));
    // The first and third sessions end as "others" of the fourth, in either order.
    let mut others: Vec<_> = ended[1..3].to_vec();
    others.sort();
    let mut want = vec![
        (first.as_str(), "revoke_others"),
        (third_id.as_str(), "revoke_others"),
    ];
    want.sort();
    assert_eq!(others, want);
    assert_eq!(ended[3].1, "sign_out");
    assert_eq!(ended.len(), 4);
}

async fn password_change_and_limit_are_recorded(b: Backend) {
    let app = spawn_with(b, |s| {
        audited(s);
        s.session.max_per_user = 1;
        s.session.max_per_user_action = MaxPerUserAction::EndOldest;
    })
    .await;
    let email = unique_email();
    let (mut a, _) = app.sign_up(&email).await;
    let first = session_id(&app, &mut a).await;
    app.clock.advance_secs(1);
    let (mut bj, _) = app.sign_in(&email, PASSWORD).await;
    let evs = events(&app).await;
    let limit = evs.iter().find(|e| e.kind == "session.revoked").unwrap();
    assert_eq!(limit.session_id.as_deref(), Some(first.as_str()));
    assert_eq!(limit.data["reason"], "limit");

    app.clock.advance_secs(1);
    let second = session_id(&app, &mut bj).await;
    let before = events(&app).await.len();
    let res = app
        .post(
            "/change-password",
            json!({"currentPassword": PASSWORD, "newPassword": "another-horse-battery", "revokeOtherSessions": true}),
            &mut bj,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let evs = events(&app).await;
    let after = &evs[before..];
    assert_eq!(
        kinds(after),
        [
            "user.password_changed",
            "session.revoked",
            "session.created"
        ]
    );
    assert_eq!(after[1].session_id.as_deref(), Some(second.as_str()));
    assert_eq!(after[1].data["reason"], "password_change");
}

async fn expired_and_external_ends_are_recorded(b: Backend) {
    let app = spawn_with(b, audited).await;
    let email = unique_email();
    let (mut a, _) = app.sign_up(&email).await;
    let sid = session_id(&app, &mut a).await;
    // Past its expiry: the next read removes it.
    app.clock.advance_secs(8 * 24 * 3600);
    assert!(app.session(&mut a).await.is_null());
    let evs = events(&app).await;
    let last = evs.last().unwrap();
    assert_eq!(last.kind, "session.revoked");
    assert_eq!(last.session_id.as_deref(), Some(sid.as_str()));
    assert_eq!(last.data["reason"], "expired");

    // Another application deletes a live session row: recorded as external.
    let (mut c, _) = app.sign_in(&email, PASSWORD).await;
    let sid = session_id(&app, &mut c).await;
    app.exec(&format!(r#"delete from "session" where "id" = '{sid}'"#))
        .await;
    let evs = events(&app).await;
    let last = evs.last().unwrap();
    assert_eq!(last.kind, "session.revoked");
    assert_eq!(last.session_id.as_deref(), Some(sid.as_str()));
    assert_eq!(last.data["origin"], "external");
    assert_eq!(last.data["reason"], "external");
    assert!(last.data.get("request").is_none_or(Value::is_null));
}

async fn events_hold_no_secret(b: Backend) {
    let app = spawn_with(b, audited).await;
    let email = unique_email();
    let (mut a, res) = app.sign_up(&email).await;
    let mut tokens = vec![res.json()["token"].as_str().unwrap().to_owned()];
    let (mut bj, res) = app.sign_in(&email, PASSWORD).await;
    tokens.push(res.json()["token"].as_str().unwrap().to_owned());
    let res = app
        .post(
            "/change-password",
            json!({"currentPassword": PASSWORD, "newPassword": "another-horse-battery", "revokeOtherSessions": true}),
            &mut bj,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    tokens.push(res.json()["token"].as_str().unwrap().to_owned());
    app.post("/sign-out", json!({}), &mut bj).await;
    app.post("/sign-out", json!({}), &mut a).await;
    let cookies: Vec<String> = a
        .cookies
        .values()
        .chain(bj.cookies.values())
        .cloned()
        .collect();
    let all = events(&app).await;
    assert!(all.len() >= 7, "{all:?}");
    let text = format!("{:?}", all);
    for secret in tokens
        .iter()
        .chain(cookies.iter())
        .map(String::as_str)
        .chain([PASSWORD, "another-horse-battery", SECRET])
        .filter(|s| s.len() >= 8)
    {
        assert!(!text.contains(secret), "an event holds a secret");
    }
}

async fn with_events_off_nothing_is_installed(b: Backend) {
    let app = spawn(b).await;
    app.sign_up(&unique_email()).await;
    let sql = match b {
        Backend::Postgres => {
            "select count(*) from pg_catalog.pg_class where relname = 'sessiond_event'"
        }
        Backend::Sqlite => "select count(*) from sqlite_master where name like 'sessiond_event%'",
    };
    assert_eq!(app.count(sql).await, 0);
}

async fn with_redis_the_database_rows_carry_the_events(b: Backend) {
    for preserve in [false, true] {
        let prefix = redis_prefix();
        let app = spawn_with(b, move |s| {
            audited(s);
            use_shared_redis(&mut s.redis, prefix);
            s.session.store_session_in_database = true;
            s.session.preserve_session_in_database = preserve;
        })
        .await;
        let email = unique_email();
        let (mut a, _) = app.sign_up(&email).await;
        let sid = session_id(&app, &mut a).await;
        app.clock.advance_secs(1);
        let (mut bj, _) = app.sign_in(&email, PASSWORD).await;
        app.post("/revoke-other-sessions", json!({}), &mut bj).await;
        app.post("/sign-out", json!({}), &mut bj).await;
        let evs = events(&app).await;
        let ended: Vec<(&str, &str)> = evs
            .iter()
            .filter(|e| e.kind == "session.revoked")
            .map(|e| {
                (
                    e.data["reason"].as_str().unwrap(),
                    e.data["origin"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            ended,
            [("revoke_others", "sessiond"), ("sign_out", "sessiond")],
            "preserve = {preserve}"
        );
        assert_eq!(
            evs.iter()
                .find(|e| e.kind == "session.revoked")
                .unwrap()
                .session_id
                .as_deref(),
            Some(sid.as_str())
        );
    }
    // Sessions kept in Redis only have no rows: refused at start.
    let mut s = test_settings();
    s.session.audit.keep_days = 1;
    s.redis.url = redis_url().into();
    let err = s.validate().unwrap_err().to_string();
    assert!(err.contains("store_session_in_database"), "{err}");
}

async fn refreshes_are_recorded_only_when_asked(b: Backend) {
    for on in [false, true] {
        let app = spawn_with(b, move |s| {
            audited(s);
            s.session.audit.session_refreshed = on;
            s.session.update_age = 60;
        })
        .await;
        let (mut a, _) = app.sign_up(&unique_email()).await;
        let sid = session_id(&app, &mut a).await;
        let before = events(&app).await.len();
        app.clock.advance_secs(120);
        assert!(!app.session(&mut a).await.is_null());
        // Within update_age again: no second refresh.
        assert!(!app.session(&mut a).await.is_null());
        let evs = events(&app).await;
        let refreshed: Vec<_> = evs[before..]
            .iter()
            .filter(|e| e.kind == "session.refreshed")
            .collect();
        assert_eq!(refreshed.len(), usize::from(on), "session_refreshed = {on}");
        if on {
            assert_eq!(refreshed[0].session_id.as_deref(), Some(sid.as_str()));
            assert_eq!(refreshed[0].data["origin"], "sessiond");
        }
        assert_eq!(evs.len(), before + usize::from(on), "{evs:?}");
    }
}

async fn turning_events_off_removes_the_triggers(b: Backend) {
    let on = spawn_with(b, audited).await;
    on.sign_up(&unique_email()).await;
    let recorded = events(&on).await.len();
    assert!(recorded >= 3);
    let url = on.db_url.clone();
    let off = spawn_with(b, move |s| s.database.url = url.into()).await;
    off.sign_up(&unique_email()).await;
    // The events stay; no new ones are written, by this replica or by anyone.
    assert_eq!(events(&off).await.len(), recorded);
    off.exec(r#"delete from "session""#).await;
    assert_eq!(events(&off).await.len(), recorded);
}

async fn a_missing_event_table_is_not_ready(b: Backend) {
    let app = spawn_with(b, audited).await;
    let (mut a, _) = app.sign_up(&unique_email()).await;
    assert_eq!(app.ready_status().await, 200);
    app.exec(r#"drop table "sessiond_event""#).await;
    // Every session write needs it: sign-out fails rather than end a session unrecorded,
    // the session stays valid, and readiness says so.
    let res = app.post("/sign-out", json!({}), &mut a).await;
    assert!(res.status.is_server_error(), "{}", res.text);
    assert!(!app.session(&mut a).await.is_null());
    assert_eq!(app.ready_status().await, 503);
}

async fn long_user_agents_are_cut(b: Backend) {
    let app = spawn_with(b, audited).await;
    let ua = "x".repeat(6000);
    let mut jar = Jar::default();
    let body = json!({"name": "Ua", "email": unique_email(), "password": PASSWORD});
    let res = app
        .send(
            Method::POST,
            "/sign-up/email",
            Some(body),
            Some(&mut jar),
            &[("user-agent", &ua)],
        )
        .await;
    assert_eq!(res.status, 200);
    let body = json!({"email": unique_email(), "password": PASSWORD});
    app.send(
        Method::POST,
        "/sign-in/email",
        Some(body),
        None,
        &[("user-agent", &ua)],
    )
    .await;
    let evs = events(&app).await;
    assert!(evs.iter().any(|e| e.kind == "user.sign_in_failed"));
    for e in &evs {
        for v in [&e.data["userAgent"], &e.data["request"]["userAgent"]] {
            if let Some(s) = v.as_str() {
                assert_eq!(s.len(), 512, "{}", e.kind);
            }
        }
    }
}
