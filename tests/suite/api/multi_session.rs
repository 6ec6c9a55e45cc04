//! Better Auth's multi-session plugin (`plugins.multi_session`): `_multi-` cookies on
//! sign-in and sign-up, list-device-sessions, set-active, revoke, sign-out ending every
//! held session, `maximum_sessions`, the read and write caps, and forged or foreign
//! `_multi-` cookies.

use serde_json::{json, Value};
use sessiond::config::Settings;
use sessiond::crypto::signed::SigningKey;
use sessiond::http::set_cookie::encode_uri_component;

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    sign_in_and_sign_up_set_signed_multi_cookies,
    list_is_one_live_session_per_user_in_cookie_order,
    signing_in_again_as_a_held_user_ends_the_earlier_session,
    set_active_switches_the_session_cookie,
    set_active_expires_a_cookie_whose_session_is_over,
    revoke_keeps_or_moves_the_active_session,
    revoke_the_last_session_signs_out,
    sign_out_ends_every_held_session,
    maximum_sessions_caps_the_cookies,
    the_plugin_off_serves_nothing,
    a_new_session_from_change_password_is_held_too,
    a_refresh_adds_the_missing_multi_cookie,
    redis_ends_held_sessions_too,
);

pub(super) const MULTI: &str = "better-auth.session_token_multi-";

pub(super) async fn multi_app(b: Backend, f: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_with(b, |s| {
        s.plugins.multi_session.enabled = true;
        f(s);
    })
    .await
}

/// Signs a new user up in `jar` (the browser); returns its session token.
pub(super) async fn add_user(app: &TestApp, jar: &mut Jar) -> (String, String) {
    let email = unique_email();
    let res = app
        .post(
            "/sign-up/email",
            json!({"name": "U", "email": email, "password": PASSWORD}),
            jar,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    (res.json()["token"].as_str().unwrap().to_owned(), email)
}

/// Signs `email` in within `jar`; the response.
pub(super) async fn sign_in_into(app: &TestApp, jar: &mut Jar, email: &str) -> Res {
    let res = app
        .post(
            "/sign-in/email",
            json!({"email": email, "password": PASSWORD}),
            jar,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    res
}

pub(super) fn multi_names(jar: &Jar) -> Vec<String> {
    jar.cookies
        .keys()
        .filter(|k| k.contains("_multi-"))
        .cloned()
        .collect()
}

/// The bare session token the jar's session cookie holds.
pub(super) fn active_token(jar: &Jar) -> Option<String> {
    let raw = jar.get(TOKEN_COOKIE)?;
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .unwrap()
        .into_owned();
    Some(decoded.split('.').next().unwrap().to_owned())
}

/// Whether `token` is still a session (get-session with only its cookie).
pub(super) async fn alive(app: &TestApp, token: &str) -> bool {
    let mut jar = app.jar_for(token);
    !app.session(&mut jar).await.is_null()
}

/// `POST /multi-session/<route>` with `{sessionToken}`.
pub(super) async fn by_token(app: &TestApp, route: &str, jar: &mut Jar, token: &str) -> Res {
    let path = format!("/multi-session/{route}");
    app.post(&path, json!({ "sessionToken": token }), jar).await
}

pub(super) async fn set_active(app: &TestApp, jar: &mut Jar, token: &str) -> Res {
    by_token(app, "set-active", jar, token).await
}

pub(super) async fn revoke(app: &TestApp, jar: &mut Jar, token: &str) -> Res {
    by_token(app, "revoke", jar, token).await
}

pub(super) async fn list(app: &TestApp, jar: &mut Jar) -> Vec<Value> {
    let res = app.get("/multi-session/list-device-sessions", jar).await;
    assert_eq!(res.status, 200, "{}", res.text);
    res.json().as_array().unwrap().clone()
}

async fn sign_in_and_sign_up_set_signed_multi_cookies(b: Backend) {
    let app = multi_app(b, |_| {}).await;
    let mut jar = Jar::default();
    let email = unique_email();
    let res = app
        .post(
            "/sign-up/email",
            json!({"name": "U", "email": email, "password": PASSWORD}),
            &mut jar,
        )
        .await;
    let token = res.json()["token"].as_str().unwrap().to_owned();
    let name = format!("{MULTI}{}", token.to_lowercase());
    let line = res.cookie(&name).expect("a _multi- cookie on sign-up");
    // Signed as the session cookie is, with its attributes and the session's lifetime.
    let key = SigningKey::new(SECRET.as_bytes()).unwrap();
    assert_eq!(
        line,
        format!(
            "{name}={}; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax",
            encode_uri_component(&key.sign(&token))
        )
    );
    let mut other = Jar::default();
    let res = sign_in_into(&app, &mut other, &email).await;
    let t2 = res.json()["token"].as_str().unwrap().to_owned();
    assert!(res
        .cookie(&format!("{MULTI}{}", t2.to_lowercase()))
        .is_some());
}

async fn list_is_one_live_session_per_user_in_cookie_order(b: Backend) {
    let app = multi_app(b, |_| {}).await;
    let mut jar = Jar::default();
    assert!(list(&app, &mut jar).await.is_empty());
    let (ta, _) = add_user(&app, &mut jar).await;
    let (tb, _) = add_user(&app, &mut jar).await;
    let (tc, _) = add_user(&app, &mut jar).await;
    let listed = list(&app, &mut jar).await;
    let tokens: Vec<&str> = listed
        .iter()
        .map(|e| e["session"]["token"].as_str().unwrap())
        .collect();
    // The jar sends its cookies in name order: the list follows the cookies.
    let mut expected = vec![ta.as_str(), tb.as_str(), tc.as_str()];
    expected.sort_by_key(|t| t.to_lowercase());
    assert_eq!(tokens, expected);
    for e in &listed {
        assert_eq!(e["session"]["userId"], e["user"]["id"]);
        assert!(e["user"]["email"].is_string());
    }
    // An expired session leaves the list.
    app.clock.advance_secs(8 * 24 * 3600);
    assert!(list(&app, &mut jar).await.is_empty());
}

async fn signing_in_again_as_a_held_user_ends_the_earlier_session(b: Backend) {
    let app = multi_app(b, |_| {}).await;
    let mut jar = Jar::default();
    let (first, email) = add_user(&app, &mut jar).await;
    let res = sign_in_into(&app, &mut jar, &email).await;
    let second = res.json()["token"].as_str().unwrap().to_owned();
    let old = format!("{MULTI}{}", first.to_lowercase());
    assert!(res.cookie(&old).unwrap().contains("Max-Age=0"));
    assert!(!alive(&app, &first).await);
    assert!(alive(&app, &second).await);
    assert_eq!(
        multi_names(&jar),
        vec![format!("{MULTI}{}", second.to_lowercase())]
    );
    assert_eq!(list(&app, &mut jar).await.len(), 1);
}

async fn set_active_switches_the_session_cookie(b: Backend) {
    let app = multi_app(b, |_| {}).await;
    let mut jar = Jar::default();
    let (ta, _) = add_user(&app, &mut jar).await;
    let (tb, _) = add_user(&app, &mut jar).await;
    assert_eq!(active_token(&jar).unwrap(), tb);
    // The token's case does not matter: it only picks the cookie.
    let res = set_active(&app, &mut jar, &ta.to_uppercase()).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let body = res.json();
    assert_eq!(body["session"]["token"], ta.as_str());
    assert_eq!(body["session"]["userId"], body["user"]["id"]);
    assert_eq!(active_token(&jar).unwrap(), ta);
    assert_eq!(app.session(&mut jar).await["session"]["token"], ta.as_str());
    // Switching ends nothing.
    assert!(alive(&app, &tb).await);
}

async fn set_active_expires_a_cookie_whose_session_is_over(b: Backend) {
    let app = multi_app(b, |_| {}).await;
    let mut jar = Jar::default();
    let (ta, _) = add_user(&app, &mut jar).await;
    let mut elsewhere = app.jar_for(&ta);
    let res = app.post("/sign-out", json!({}), &mut elsewhere).await;
    assert_eq!(res.status, 200);
    add_user(&app, &mut jar).await;
    let res = set_active(&app, &mut jar, &ta).await;
    assert_eq!(res.status, 401);
    assert_eq!(res.code().as_deref(), Some("INVALID_SESSION_TOKEN"));
    let name = format!("{MULTI}{}", ta.to_lowercase());
    assert!(res.cookie(&name).unwrap().contains("Max-Age=0"));
    assert!(jar.get(&name).is_none());
}

async fn revoke_keeps_or_moves_the_active_session(b: Backend) {
    let app = multi_app(b, |_| {}).await;
    let mut jar = Jar::default();
    let (ta, _) = add_user(&app, &mut jar).await;
    let (tb, _) = add_user(&app, &mut jar).await;
    let (tc, _) = add_user(&app, &mut jar).await;
    // Another held session: it ends, the active one stays.
    let res = revoke(&app, &mut jar, &ta).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json(), json!({"status": true}));
    assert!(!alive(&app, &ta).await);
    assert!(res.cookie(TOKEN_COOKIE).is_none());
    assert_eq!(active_token(&jar).unwrap(), tc);
    let mut left = vec![
        format!("{MULTI}{}", tb.to_lowercase()),
        format!("{MULTI}{}", tc.to_lowercase()),
    ];
    left.sort();
    assert_eq!(multi_names(&jar), left);
    // The active one: the other held session becomes active.
    let res = revoke(&app, &mut jar, &tc).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(!alive(&app, &tc).await);
    assert_eq!(active_token(&jar).unwrap(), tb);
    assert_eq!(app.session(&mut jar).await["session"]["token"], tb.as_str());
}

async fn revoke_the_last_session_signs_out(b: Backend) {
    let app = multi_app(b, |_| {}).await;
    let mut jar = Jar::default();
    let (ta, _) = add_user(&app, &mut jar).await;
    let res = revoke(&app, &mut jar, &ta).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(res.cookie(TOKEN_COOKIE).unwrap().contains("Max-Age=0"));
    assert!(jar.cookies.is_empty(), "{:?}", jar.cookies);
    assert!(!alive(&app, &ta).await);
}

async fn sign_out_ends_every_held_session(b: Backend) {
    let app = multi_app(b, |_| {}).await;
    let mut jar = Jar::default();
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(add_user(&app, &mut jar).await.0);
    }
    let res = app.post("/sign-out", json!({}), &mut jar).await;
    assert_eq!(res.status, 200);
    for t in &tokens {
        assert!(!alive(&app, t).await);
        let line = res.cookie(&format!("{MULTI}{}", t.to_lowercase())).unwrap();
        assert!(line.contains("Max-Age=0"));
    }
    assert!(jar.cookies.is_empty(), "{:?}", jar.cookies);
}

async fn maximum_sessions_caps_the_cookies(b: Backend) {
    let app = multi_app(b, |s| s.plugins.multi_session.maximum_sessions = 2).await;
    let mut jar = Jar::default();
    let (ta, _) = add_user(&app, &mut jar).await;
    let (tb, _) = add_user(&app, &mut jar).await;
    let (tc, _) = add_user(&app, &mut jar).await;
    // The third sign-in is a session (the active one) without a _multi- cookie.
    assert_eq!(active_token(&jar).unwrap(), tc);
    let mut held = vec![
        format!("{MULTI}{}", ta.to_lowercase()),
        format!("{MULTI}{}", tb.to_lowercase()),
    ];
    held.sort();
    assert_eq!(multi_names(&jar), held);
    assert_eq!(list(&app, &mut jar).await.len(), 2);
    // Sign-out ends what the cookies hold and the active session.
    app.post("/sign-out", json!({}), &mut jar).await;
    for t in [&ta, &tb, &tc] {
        assert!(!alive(&app, t).await);
    }
}

async fn a_new_session_from_change_password_is_held_too(b: Backend) {
    let app = multi_app(b, |_| {}).await;
    let mut jar = Jar::default();
    let (old, _) = add_user(&app, &mut jar).await;
    let res = app
        .post(
            "/change-password",
            json!({"currentPassword": PASSWORD, "newPassword": "another-password-9", "revokeOtherSessions": true}),
            &mut jar,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let new = res.json()["token"].as_str().unwrap().to_owned();
    assert!(res
        .cookie(&format!("{MULTI}{}", new.to_lowercase()))
        .is_some());
    // The old session's cookie stays (its session is gone) and is no longer listed.
    assert!(jar.get(&format!("{MULTI}{}", old.to_lowercase())).is_some());
    let listed = list(&app, &mut jar).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["session"]["token"], new.as_str());
}

async fn a_refresh_adds_the_missing_multi_cookie(b: Backend) {
    let app = multi_app(b, |s| s.session.update_age = 0).await;
    let mut jar = Jar::default();
    let (token, _) = add_user(&app, &mut jar).await;
    let name = format!("{MULTI}{}", token.to_lowercase());
    jar.cookies.remove(&name);
    app.clock.advance_secs(5);
    let res = app.get("/get-session", &mut jar).await;
    assert_eq!(res.status, 200);
    assert!(res.cookie(&name).is_some(), "{:?}", res.set_cookies());
    // Once held, a refresh leaves it alone.
    app.clock.advance_secs(5);
    let res = app.get("/get-session", &mut jar).await;
    assert!(res.cookie(TOKEN_COOKIE).is_some());
    assert!(res.cookie(&name).is_none());
}

async fn the_plugin_off_serves_nothing(b: Backend) {
    let app = spawn(b).await;
    let mut jar = Jar::default();
    add_user(&app, &mut jar).await;
    assert!(multi_names(&jar).is_empty());
    let res = app
        .get("/multi-session/list-device-sessions", &mut jar)
        .await;
    assert_eq!(res.status, 404);
    let res = set_active(&app, &mut jar, "x").await;
    assert_eq!(res.status, 404);
}

async fn redis_ends_held_sessions_too(b: Backend) {
    let prefix = redis_prefix();
    let app = multi_app(b, move |s| use_shared_redis(&mut s.redis, prefix)).await;
    let mut jar = Jar::default();
    let (ta, _) = add_user(&app, &mut jar).await;
    let (tb, _) = add_user(&app, &mut jar).await;
    assert_eq!(list(&app, &mut jar).await.len(), 2);
    assert_eq!(set_active(&app, &mut jar, &ta).await.status, 200);
    assert_eq!(revoke(&app, &mut jar, &ta).await.status, 200);
    assert!(!alive(&app, &ta).await);
    assert_eq!(active_token(&jar).unwrap(), tb);
    app.post("/sign-out", json!({}), &mut jar).await;
    assert!(!alive(&app, &tb).await);
}
