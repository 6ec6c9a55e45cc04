//! Expiry, sliding refresh, deferred refresh and freshness, driven by the injected clock.

use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    refresh_slides_expiry_after_update_age,
    expired_session_is_null_cleared_and_deleted,
    update_age_zero_refreshes_every_time,
    disable_session_refresh_never_slides,
    disable_refresh_query_flag,
    defer_session_refresh_get_reports_post_refreshes,
    post_get_session_without_defer_is_405,
    list_sessions_requires_fresh_session,
    fresh_age_zero_disables_freshness,
    tampered_or_unsigned_cookie_is_null_without_clearing,
    absolute_timeout_caps_sliding_refresh,
);

fn ts(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap()
}

async fn refresh_slides_expiry_after_update_age(b: Backend) {
    let app = spawn(b).await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    let first = app.session(&mut jar).await;
    // Before update_age: no write, no cookie.
    app.clock.advance_secs(86_400 - 1);
    let res = app.get("/get-session", &mut jar).await;
    assert!(res.set_cookies().is_empty());
    assert_eq!(
        res.json()["session"]["expiresAt"],
        first["session"]["expiresAt"]
    );
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(res.header("pragma").as_deref(), Some("no-cache"));
    // At update_age: expiresAt = now + 7 d, cookie re-issued with the same signed value.
    app.clock.advance_secs(1);
    let res = app.get("/get-session", &mut jar).await;
    let cookie = res
        .cookie(TOKEN_COOKIE)
        .expect("refresh re-issues the cookie");
    assert!(cookie.contains("; Max-Age=604800;"));
    assert_eq!(
        cookie.split(';').next().unwrap(),
        format!("{TOKEN_COOKIE}={}", jar.get(TOKEN_COOKIE).unwrap())
    );
    let s = res.json();
    assert_eq!(
        (ts(&s["session"]["expiresAt"]) - ts(&first["session"]["expiresAt"])).num_seconds(),
        86_400
    );
    assert_eq!(s["session"]["createdAt"], first["session"]["createdAt"]);
    assert_ne!(s["session"]["updatedAt"], first["session"]["updatedAt"]);
    // The next call right after is not due again.
    let res = app.get("/get-session", &mut jar).await;
    assert!(res.set_cookies().is_empty());
}

async fn expired_session_is_null_cleared_and_deleted(b: Backend) {
    let app = spawn(b).await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    app.clock.advance_secs(604_800 + 1);
    let res = app.get("/get-session", &mut jar).await;
    assert_eq!(res.json(), Value::Null);
    assert_eq!(
        res.cookie(TOKEN_COOKIE).unwrap(),
        format!("{TOKEN_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax")
    );
    assert_eq!(app.count(r#"select count(*) from "session""#).await, 0);
}

async fn update_age_zero_refreshes_every_time(b: Backend) {
    let app = spawn_with(b, |s| s.session.update_age = 0).await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    let mut last = ts(&app.session(&mut jar).await["session"]["expiresAt"]);
    for _ in 0..3 {
        app.clock.advance_secs(5);
        let res = app.get("/get-session", &mut jar).await;
        assert!(res.cookie(TOKEN_COOKIE).is_some());
        let now = ts(&res.json()["session"]["expiresAt"]);
        assert_eq!((now - last).num_seconds(), 5);
        last = now;
    }
}

async fn disable_session_refresh_never_slides(b: Backend) {
    let app = spawn_with(b, |s| s.session.disable_session_refresh = true).await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    let first = app.session(&mut jar).await;
    app.clock.advance_secs(3 * 86_400);
    let res = app.get("/get-session", &mut jar).await;
    assert!(res.set_cookies().is_empty());
    assert_eq!(
        res.json()["session"]["expiresAt"],
        first["session"]["expiresAt"]
    );
}

async fn disable_refresh_query_flag(b: Backend) {
    let app = spawn(b).await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    let first = app.session(&mut jar).await;
    app.clock.advance_secs(2 * 86_400);
    // Any non-empty value means true, "false" included (z.coerce.boolean).
    let res = app.get("/get-session?disableRefresh=false", &mut jar).await;
    assert!(res.set_cookies().is_empty());
    assert_eq!(
        res.json()["session"]["expiresAt"],
        first["session"]["expiresAt"]
    );
    // An empty value means false.
    let res = app.get("/get-session?disableRefresh=", &mut jar).await;
    assert!(res.cookie(TOKEN_COOKIE).is_some());
}

async fn defer_session_refresh_get_reports_post_refreshes(b: Backend) {
    let app = spawn_with(b, |s| s.session.defer_session_refresh = true).await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    let first = app.session(&mut jar).await;
    assert_eq!(first["needsRefresh"], false);
    app.clock.advance_secs(86_400 + 5);
    let res = app.get("/get-session", &mut jar).await;
    assert!(res.set_cookies().is_empty());
    let body = res.json();
    assert_eq!(body["needsRefresh"], true);
    assert_eq!(body["session"]["expiresAt"], first["session"]["expiresAt"]);
    // Still not written.
    let again = app.session(&mut jar).await;
    assert_eq!(again["session"]["expiresAt"], first["session"]["expiresAt"]);
    // POST performs the refresh and has no needsRefresh key.
    let res = app
        .send(
            reqwest::Method::POST,
            "/get-session",
            None,
            Some(&mut jar),
            &[],
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let body = res.json();
    assert!(body.get("needsRefresh").is_none());
    assert_ne!(body["session"]["expiresAt"], first["session"]["expiresAt"]);
    assert!(res.cookie(TOKEN_COOKIE).unwrap().contains("Max-Age=604800"));
    // An expired session: GET answers null without deleting; POST deletes.
    app.clock.advance_secs(8 * 86_400);
    assert_eq!(
        app.get("/get-session", &mut jar.clone()).await.json(),
        Value::Null
    );
    assert_eq!(app.count(r#"select count(*) from "session""#).await, 1);
    let res = app
        .send(
            reqwest::Method::POST,
            "/get-session",
            None,
            Some(&mut jar.clone()),
            &[],
        )
        .await;
    assert_eq!(res.json(), Value::Null);
    assert_eq!(app.count(r#"select count(*) from "session""#).await, 0);
}

async fn post_get_session_without_defer_is_405(b: Backend) {
    let app = spawn(b).await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    let res = app
        .send(
            reqwest::Method::POST,
            "/get-session",
            None,
            Some(&mut jar),
            &[],
        )
        .await;
    assert_eq!(res.status, 405);
    assert_eq!(
        res.json(),
        json!({"message": "POST method requires deferSessionRefresh to be enabled in session config", "code": "METHOD_NOT_ALLOWED_DEFER_SESSION_REQUIRED"})
    );
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
}

async fn list_sessions_requires_fresh_session(b: Backend) {
    let app = spawn(b).await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    assert_eq!(app.get("/list-sessions", &mut jar).await.status, 200);
    app.clock.advance_secs(86_400);
    let res = app.get("/list-sessions", &mut jar).await;
    assert_eq!(res.status, 403);
    assert_eq!(
        res.json(),
        json!({"message": "Session is not fresh", "code": "SESSION_NOT_FRESH"})
    );
    // The lookup behind the gate refreshed the session (the cookie rides on the 403), but
    // sliding refresh does not make it fresh again.
    assert!(res.cookie(TOKEN_COOKIE).unwrap().contains("Max-Age=604800"));
    assert_eq!(app.get("/list-sessions", &mut jar).await.status, 403);
}

async fn fresh_age_zero_disables_freshness(b: Backend) {
    let app = spawn_with(b, |s| s.session.fresh_age = 0).await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    app.clock.advance_secs(5 * 86_400);
    assert_eq!(app.get("/list-sessions", &mut jar).await.status, 200);
}

async fn tampered_or_unsigned_cookie_is_null_without_clearing(b: Backend) {
    let app = spawn(b).await;
    let (jar, res) = app.sign_up(&unique_email()).await;
    let token = res.json()["token"].as_str().unwrap().to_string();
    let signed = jar.get(TOKEN_COOKIE).unwrap().clone();
    let tampered = format!("{}{}", &signed[..signed.len() - 10], "AAAAAAA%3D");
    for value in [tampered, token.clone(), format!("{token}.")] {
        let mut j = Jar::default();
        j.cookies.insert(TOKEN_COOKIE.into(), value.clone());
        let res = app.get("/get-session", &mut j).await;
        assert_eq!(res.json(), Value::Null, "{value}");
        assert!(res.set_cookies().is_empty(), "{value}");
        assert_eq!(app.get("/list-sessions", &mut j).await.status, 401);
    }
    // The first of two same-named cookies wins.
    let res = app
        .send(
            reqwest::Method::GET,
            "/get-session",
            None,
            None,
            &[(
                "cookie",
                &format!(
                    "{TOKEN_COOKIE}=bogus.{}; {TOKEN_COOKIE}={signed}",
                    "A".repeat(43) + "="
                ),
            )],
        )
        .await;
    assert_eq!(res.json(), Value::Null);
    let res = app
        .send(
            reqwest::Method::GET,
            "/get-session",
            None,
            None,
            &[(
                "cookie",
                &format!("{TOKEN_COOKIE}={signed}; {TOKEN_COOKIE}=bogus"),
            )],
        )
        .await;
    assert_eq!(res.json()["session"]["token"], token);
}

async fn absolute_timeout_caps_sliding_refresh(b: Backend) {
    let app = spawn_with(b, |s| s.session.absolute_timeout = 3 * 86_400).await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    let first = app.session(&mut jar).await;
    let created = ts(&first["session"]["createdAt"]);
    // Created with min(expires_in, cap): three days, not seven.
    assert_eq!(
        (ts(&first["session"]["expiresAt"]) - created).num_seconds(),
        3 * 86_400
    );
    // A refresh cannot move it past the cap, and does not repeat once at the cap.
    app.clock.advance_secs(2 * 86_400);
    let res = app.get("/get-session", &mut jar).await;
    assert_eq!(
        (ts(&res.json()["session"]["expiresAt"]) - created).num_seconds(),
        3 * 86_400
    );
    assert!(res.set_cookies().is_empty(), "nothing to extend at the cap");
    // At the cap the session ends, in use or not.
    app.clock.advance_secs(86_400);
    let res = app.get("/get-session", &mut jar).await;
    assert_eq!(res.json(), Value::Null);
    assert!(res.cookie(TOKEN_COOKIE).unwrap().contains("Max-Age=0"));
    assert_eq!(app.count(r#"select count(*) from "session""#).await, 0);
}
