//! `session.max_per_user`: the oldest sessions end (refused at once, cookie cache
//! included) or the sign-in is refused with 403 `TOO_MANY_SESSIONS`; under concurrent
//! sign-ins on one replica, and sign-ins racing sign-outs, never more than the limit stay
//! alive; the same over Redis (sessions in Redis only, and in the database too).

use futures::future::join_all;
use serde_json::{json, Value};

use crate::support::*;
use sessiond::config::{MaxPerUserAction, Settings};

crate::on_both_backends!(
    oldest_end_and_are_refused_at_once,
    refuse_mode_answers_too_many_sessions,
    concurrent_sign_ins_keep_the_limit,
    concurrent_refused_sign_ins_admit_exactly_the_room,
    sign_ins_racing_sign_outs_keep_the_limit,
    redis_keeps_the_limit,
);

fn capped(max: u64, action: MaxPerUserAction) -> impl FnOnce(&mut Settings) {
    move |s| {
        s.session.max_per_user = max;
        s.session.max_per_user_action = action;
        s.session.cookie_cache.enabled = true;
    }
}

/// The user's session rows (ended ones are deleted).
async fn rows(app: &TestApp, user_id: &str) -> i64 {
    app.count(&format!(
        r#"select count(*) from "session" where "userId" = '{user_id}'"#
    ))
    .await
}

fn token(res: &Res) -> String {
    res.json()["token"].as_str().unwrap().to_string()
}

async fn alive(app: &TestApp, jar: &mut Jar) -> bool {
    !app.session(jar).await.is_null()
}

async fn oldest_end_and_are_refused_at_once(b: Backend) {
    let app = spawn_with(b, capped(2, MaxPerUserAction::EndOldest)).await;
    let email = unique_email();
    let (mut a, res) = app.sign_up(&email).await;
    let uid = res.json()["user"]["id"].as_str().unwrap().to_string();
    // Each jar holds a cookie cache: a store-only check would not see the end.
    assert!(alive(&app, &mut a).await);
    app.clock.advance_secs(1);
    let (mut bj, _) = app.sign_in(&email, PASSWORD).await;
    assert!(alive(&app, &mut bj).await);
    app.clock.advance_secs(1);
    let (mut c, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(res.status, 200);
    assert!(!alive(&app, &mut a).await, "the oldest session ended");
    assert!(alive(&app, &mut bj).await);
    assert!(alive(&app, &mut c).await);
    assert_eq!(rows(&app, &uid).await, 2);
    app.clock.advance_secs(1);
    let (mut d, _) = app.sign_in(&email, PASSWORD).await;
    assert!(!alive(&app, &mut bj).await);
    assert!(alive(&app, &mut c).await && alive(&app, &mut d).await);
    assert_eq!(rows(&app, &uid).await, 2);
    // Another user's sessions are not counted.
    let (mut other, _) = app.sign_up(&unique_email()).await;
    assert!(alive(&app, &mut other).await && alive(&app, &mut c).await);
}

async fn refuse_mode_answers_too_many_sessions(b: Backend) {
    let app = spawn_with(b, capped(2, MaxPerUserAction::Refuse)).await;
    let email = unique_email();
    let (mut a, res) = app.sign_up(&email).await;
    let uid = res.json()["user"]["id"].as_str().unwrap().to_string();
    let (mut bj, _) = app.sign_in(&email, PASSWORD).await;
    let (_, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(res.status, 403);
    assert_eq!(res.code().as_deref(), Some("TOO_MANY_SESSIONS"));
    assert!(res.json()["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert!(
        res.set_cookies().is_empty(),
        "a refused sign-in sets no cookie"
    );
    assert_eq!(rows(&app, &uid).await, 2);
    assert!(alive(&app, &mut a).await && alive(&app, &mut bj).await);
    // A wrong password is still told as such (the limit does not reveal the password).
    let (_, res) = app.sign_in(&email, "wrong-password-123").await;
    assert_eq!(res.code().as_deref(), Some("INVALID_EMAIL_OR_PASSWORD"));
    // Room again once one signs out.
    assert_eq!(app.post("/sign-out", json!({}), &mut a).await.status, 200);
    let (_, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(res.status, 200);
    assert_eq!(rows(&app, &uid).await, 2);
    // An expired session leaves room too.
    app.clock.advance_secs(604_801);
    let (mut fresh, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(res.status, 200);
    assert!(alive(&app, &mut fresh).await);
}

/// `n` sign-ins of `email` at once; their answers.
async fn many_sign_ins(app: &TestApp, email: &str, n: usize) -> Vec<(Jar, Res)> {
    join_all((0..n).map(|_| app.sign_in(email, PASSWORD))).await
}

async fn concurrent_sign_ins_keep_the_limit(b: Backend) {
    for max in [1, 3] {
        let app = spawn_with(b, capped(max, MaxPerUserAction::EndOldest)).await;
        let email = unique_email();
        let (_, res) = app.sign_up(&email).await;
        let uid = res.json()["user"]["id"].as_str().unwrap().to_string();
        // Newer than the sign-up's session: same-millisecond sessions tie on `createdAt`.
        app.clock.advance_secs(1);
        let mut all = many_sign_ins(&app, &email, 20).await;
        let mut live = 0;
        for (jar, res) in &mut all {
            assert_eq!(res.status, 200, "{}", res.text);
            live += i64::from(alive(&app, jar).await);
        }
        assert_eq!(rows(&app, &uid).await, max as i64);
        assert_eq!(live, max as i64, "exactly the newest {max} answer");
    }
}

async fn concurrent_refused_sign_ins_admit_exactly_the_room(b: Backend) {
    let app = spawn_with(b, capped(3, MaxPerUserAction::Refuse)).await;
    let email = unique_email();
    let (_, res) = app.sign_up(&email).await;
    let uid = res.json()["user"]["id"].as_str().unwrap().to_string();
    let all = many_sign_ins(&app, &email, 16).await;
    let ok = all.iter().filter(|(_, r)| r.status == 200).count();
    let refused = all
        .iter()
        .filter(|(_, r)| r.code().as_deref() == Some("TOO_MANY_SESSIONS"))
        .count();
    assert_eq!((ok, refused), (2, 14));
    assert_eq!(rows(&app, &uid).await, 3);
}

async fn sign_ins_racing_sign_outs_keep_the_limit(b: Backend) {
    let app = spawn_with(b, capped(1, MaxPerUserAction::EndOldest)).await;
    let email = unique_email();
    let (_, res) = app.sign_up(&email).await;
    let uid = res.json()["user"]["id"].as_str().unwrap().to_string();
    let mut jars: Vec<Jar> = many_sign_ins(&app, &email, 6)
        .await
        .into_iter()
        .map(|(j, _)| j)
        .collect();
    let outs = join_all(jars.iter_mut().map(|j| app.post("/sign-out", json!({}), j)));
    let ins = many_sign_ins(&app, &email, 6);
    let (outs, ins) = tokio::join!(outs, ins);
    assert!(outs.iter().all(|r| r.status == 200));
    assert!(ins.iter().all(|(_, r)| r.status == 200));
    assert_eq!(rows(&app, &uid).await, 1);
    let mut live = 0;
    for (mut jar, _) in ins {
        live += i64::from(alive(&app, &mut jar).await);
    }
    assert_eq!(live, 1);
}

/// Entries in a Redis active-sessions list.
async fn listed(r: &mut redis::aio::MultiplexedConnection, key: &str) -> usize {
    let list: Option<String> = redis::AsyncCommands::get(r, key).await.unwrap();
    let list: Value = serde_json::from_str(&list.unwrap()).unwrap();
    list.as_array().unwrap().len()
}

/// The entries of the list at `key` whose token key (under `prefix`) still exists.
async fn listed_live(r: &mut redis::aio::MultiplexedConnection, key: &str, prefix: &str) -> usize {
    let list: Option<String> = redis::AsyncCommands::get(&mut *r, key).await.unwrap();
    let list: Value = serde_json::from_str(&list.unwrap()).unwrap();
    let mut live = 0;
    for e in list.as_array().unwrap() {
        let token = e["token"].as_str().unwrap();
        let exists: bool = redis::AsyncCommands::exists(&mut *r, format!("{prefix}{token}"))
            .await
            .unwrap();
        live += usize::from(exists);
    }
    live
}

async fn redis_keeps_the_limit(b: Backend) {
    for store_in_db in [false, true] {
        let prefix = redis_prefix();
        let mut r = shared_redis_conn(&prefix).await;
        let p = prefix.clone();
        let app = spawn_with(b, move |s| {
            capped(2, MaxPerUserAction::EndOldest)(s);
            use_shared_redis(&mut s.redis, p);
            s.session.store_session_in_database = store_in_db;
        })
        .await;
        let email = unique_email();
        let (mut a, res) = app.sign_up(&email).await;
        let uid = res.json()["user"]["id"].as_str().unwrap().to_string();
        let first = token(&res);
        assert!(alive(&app, &mut a).await);
        app.clock.advance_secs(1);
        let (mut bj, _) = app.sign_in(&email, PASSWORD).await;
        app.clock.advance_secs(1);
        let (mut c, _) = app.sign_in(&email, PASSWORD).await;
        assert!(
            !alive(&app, &mut a).await,
            "oldest ended (store_in_db {store_in_db})"
        );
        assert!(alive(&app, &mut bj).await && alive(&app, &mut c).await);
        let gone: Option<String> = redis::AsyncCommands::get(&mut r, format!("{prefix}{first}"))
            .await
            .unwrap();
        assert!(gone.is_none());
        assert_eq!(
            listed(&mut r, &format!("{prefix}active-sessions-{uid}")).await,
            2
        );
        if store_in_db {
            assert_eq!(rows(&app, &uid).await, 2);
        }
        // Concurrent sign-ins, all newer than the sessions above (sessions made in the same
        // millisecond tie on `createdAt`, and then the token decides which is "oldest"): the
        // list and the live keys stay at the limit, all of it theirs. With the database
        // deciding, a sign-in whose Redis write comes after a later one's must not write
        // back the session that later one ended (that left an entry whose key was deleted
        // when its use found no row): a few rounds, to give the race its chances.
        let key = format!("{prefix}active-sessions-{uid}");
        for round in 0..3 {
            app.clock.advance_secs(1);
            let mut all = many_sign_ins(&app, &email, 12).await;
            let mut live = 0;
            for (jar, res) in &mut all {
                assert_eq!(res.status, 200, "{}", res.text);
                live += i64::from(alive(&app, jar).await);
            }
            assert_eq!(live, 2, "store_in_db {store_in_db}, round {round}");
            assert_eq!(
                listed(&mut r, &key).await,
                2,
                "store_in_db {store_in_db}, round {round}"
            );
            assert_eq!(listed_live(&mut r, &key, &prefix).await, 2);
            if store_in_db {
                assert_eq!(rows(&app, &uid).await, 2);
            }
        }
        // Refuse mode over Redis.
        let p = redis_prefix();
        let app = spawn_with(b, move |s| {
            capped(1, MaxPerUserAction::Refuse)(s);
            use_shared_redis(&mut s.redis, p);
            s.session.store_session_in_database = store_in_db;
        })
        .await;
        let email = unique_email();
        app.sign_up(&email).await;
        let (_, res) = app.sign_in(&email, PASSWORD).await;
        assert_eq!(res.code().as_deref(), Some("TOO_MANY_SESSIONS"));
    }
}
