//! Attacks a stranger (or a careless operator) tried against the admin plugin, additional
//! fields and Redis mode that got through; each test names the attack. They fail until the
//! product is fixed.

use futures::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    banned_user_with_redis_gets_no_session,
    update_session_does_not_extend_a_banned_users_cache,
    concurrent_update_session_on_redis_keeps_the_session,
    number_beyond_the_column_is_a_400_not_a_500,
    date_only_ban_expiry_is_not_a_500,
);

fn field(v: Value) -> sessiond::config::AdditionalField {
    serde_json::from_value(v).unwrap()
}

fn user_id(res: &Res) -> String {
    res.json()["user"]["id"].as_str().unwrap().to_owned()
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

/// An app on `b` with Redis (secondary storage) under a key prefix of its own.
async fn redis_app(b: Backend, f: impl FnOnce(&mut sessiond::config::Settings)) -> TestApp {
    let p = redis_prefix();
    spawn_with(b, move |s| {
        use_shared_redis(&mut s.redis, p);
        f(s);
    })
    .await
}

/// Attack: ban a user in the database while sessiond keeps sessions in Redis. The Redis
/// value holds a copy of the user taken at sign-in (`banned: false`): reading the user row
/// on every get-session would undo what Redis is for, so a ban written straight into the
/// database (Better Auth's admin API deletes the sessions as it bans, which every replica
/// learns at once) reaches Redis-held sessions only when their copy is rewritten. What must
/// hold: no new session for the banned user, by sign-in or by change-password (which
/// minted one), and a rewrite of the copy (update-user) ends the session.
async fn banned_user_with_redis_gets_no_session(b: Backend) {
    let app = redis_app(b, |s| s.plugins.admin.enabled = true).await;
    let email = unique_email();
    let (mut jar, res) = app.sign_up(&email).await;
    let id = user_id(&res);
    app.exec(&format!(
        r#"update "user" set "banned" = true where "id" = '{id}'"#
    ))
    .await;
    let (_, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(res.code().as_deref(), Some("BANNED_USER"), "{}", res.text);
    let res = app
        .post(
            "/change-password",
            json!({"currentPassword": PASSWORD, "newPassword": "another-horse-battery",
                   "revokeOtherSessions": true}),
            &mut jar.clone(),
        )
        .await;
    assert_eq!(
        res.status, 403,
        "change-password for a banned user: {}",
        res.text
    );
    assert_eq!(res.code().as_deref(), Some("BANNED_USER"));
    // Refused before the password changed: the old one still signs in once unbanned.
    let res = app
        .post("/update-user", json!({"name": "Rewritten"}), &mut jar)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let mut probe = jar.clone();
    assert_eq!(
        app.get("/get-session?disableCookieCache=true", &mut probe)
            .await
            .json(),
        Value::Null,
        "the rewritten copy says banned"
    );
    assert_eq!(forward_auth(&app, &jar).await, 401);
    app.exec(&format!(
        r#"update "user" set "banned" = false where "id" = '{id}'"#
    ))
    .await;
    assert_eq!(app.sign_in(&email, PASSWORD).await.1.status, 200);
}

/// Attack: with the cookie cache on, a banned user calls update-session every few
/// minutes. Each call re-mints the cache from the cached user (`banned: false`) with a
/// fresh `max_age`, so the ban never reaches get-session or forward auth.
async fn update_session_does_not_extend_a_banned_users_cache(b: Backend) {
    let app = spawn_with(b, |s| {
        s.plugins.admin.enabled = true;
        s.session.cookie_cache.enabled = true;
        s.session.cookie_cache.max_age = Some(300);
        s.session.additional_fields.insert(
            "theme".into(),
            field(json!({"type": "string", "default_value": "light"})),
        );
    })
    .await;
    let (mut jar, res) = app.sign_up(&unique_email()).await;
    let id = user_id(&res);
    app.exec(&format!(
        r#"update "user" set "banned" = true where "id" = '{id}'"#
    ))
    .await;
    for _ in 0..3 {
        app.clock.advance_secs(200);
        app.post("/update-session", json!({"theme": "dark"}), &mut jar)
            .await;
    }
    // 600 s after the ban, twice the cache's lifetime.
    let mut probe = jar.clone();
    assert_eq!(
        app.get("/get-session", &mut probe).await.json(),
        Value::Null,
        "the ban never reached get-session"
    );
    assert_eq!(forward_auth(&app, &jar).await, 401);
}

/// Attack: two tabs save a session setting at once. In Redis mode some of the concurrent
/// update-session calls answered 401 FAILED_TO_GET_SESSION and expired the session cookie,
/// signing the browser out although the session is valid.
async fn concurrent_update_session_on_redis_keeps_the_session(b: Backend) {
    let app = redis_app(b, |s| {
        s.session.additional_fields.insert(
            "theme".into(),
            field(json!({"type": "string", "default_value": "light"})),
        );
    })
    .await;
    let (jar, _) = app.sign_up(&unique_email()).await;
    let results = join_all((0..16).map(|i| {
        let mut j = jar.clone();
        let app = &app;
        async move {
            app.post("/update-session", json!({"theme": format!("t{i}")}), &mut j)
                .await
        }
    }))
    .await;
    for res in &results {
        assert_eq!(res.status, 200, "concurrent update-session: {}", res.text);
        assert!(
            !res.set_cookies().iter().any(|c| c.contains("Max-Age=0")),
            "a concurrent update-session expired the cookies: {:?}",
            res.set_cookies()
        );
    }
}

/// Attack: a `number` field set beyond the column's range (PostgreSQL `integer`): the
/// database's "integer out of range" became a 500 on update-user (and a 422
/// FAILED_TO_CREATE_USER on sign-up) instead of a 400 for bad input.
async fn number_beyond_the_column_is_a_400_not_a_500(b: Backend) {
    let app = spawn_with(b, |s| {
        s.user
            .additional_fields
            .insert("credits".into(), field(json!({"type": "number"})));
    })
    .await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    for v in [
        json!(2147483648_i64),
        json!(-2147483649_i64),
        json!(9007199254740992_i64),
    ] {
        let res = app
            .post("/update-user", json!({"credits": v}), &mut jar)
            .await;
        assert!(
            res.status == 200 || res.status == 400,
            "update-user credits={v}: {} {}",
            res.status,
            res.text
        );
        let mut fresh = Jar::default();
        let res = app
            .post(
                "/sign-up/email",
                json!({"name": "N", "email": unique_email(), "password": PASSWORD, "credits": v}),
                &mut fresh,
            )
            .await;
        assert!(
            res.status == 200 || res.code().as_deref() == Some("VALIDATION_ERROR"),
            "sign-up credits={v}: {} {}",
            res.status,
            res.text
        );
    }
}

/// Attack: an operator bans by hand with a date-only end (`banExpires = '2099-01-01'`). On
/// SQLite the column holds that text and every request of the user became a 500 (the row
/// no longer decoded); the ban must hold (403 at sign-in, no session) without a 500.
async fn date_only_ban_expiry_is_not_a_500(b: Backend) {
    let app = spawn_with(b, |s| s.plugins.admin.enabled = true).await;
    let email = unique_email();
    let (jar, res) = app.sign_up(&email).await;
    let id = user_id(&res);
    app.exec(&format!(
        r#"update "user" set "banned" = true, "banExpires" = '2099-01-01' where "id" = '{id}'"#
    ))
    .await;
    let mut probe = jar.clone();
    let res = app
        .get("/get-session?disableCookieCache=true", &mut probe)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json(), Value::Null);
    let (_, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(res.status, 403, "{}", res.text);
    assert_eq!(res.code().as_deref(), Some("BANNED_USER"));
}
