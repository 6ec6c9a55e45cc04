//! The admin plugin's session routes (`/admin/*`): permissions (role "admin",
//! `admin_user_ids`), each route's answers, bans ending sessions at once (cookie cache on,
//! and with Redis), impersonation round trips through `admin_session`, and attempts to
//! abuse them.

use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    routes_are_unknown_without_the_plugin,
    non_admins_are_refused_with_better_auths_codes,
    admins_by_role_list_and_revoke_sessions,
    admin_user_ids_are_admins_whatever_their_role,
    ban_ends_sessions_at_once_and_unban_lifts_it,
    ban_refusals_and_expiry,
    set_role_sets_one_or_several_roles,
    impersonation_round_trip,
    impersonating_admins_is_refused_unless_allowed,
    forged_or_stale_admin_session_cookies_restore_nothing,
    ban_ends_sessions_with_redis,
);

/// `path` with `{userId: id}`.
async fn on(app: &TestApp, path: &str, id: &str, jar: &mut Jar) -> Res {
    app.post(path, json!({"userId": id}), jar).await
}

const ADMIN_COOKIE: &str = "better-auth.admin_session";

async fn admin_app(b: Backend, f: impl FnOnce(&mut sessiond::config::Settings)) -> TestApp {
    spawn_with(b, |s| {
        s.plugins.admin.enabled = true;
        s.session.cookie_cache.enabled = true;
        f(s);
    })
    .await
}

/// A new user: jar, id.
async fn user(app: &TestApp) -> (Jar, String) {
    let (jar, res) = app.sign_up(&unique_email()).await;
    let id = res.json()["user"]["id"].as_str().unwrap().to_owned();
    (jar, id)
}

/// A new user made admin by role (written as the app would), signed in again so that the
/// session's cached user has the role.
async fn admin(app: &TestApp) -> (Jar, String) {
    let email = unique_email();
    let (_, res) = app.sign_up(&email).await;
    let id = res.json()["user"]["id"].as_str().unwrap().to_owned();
    app.exec(&format!(
        r#"update "user" set "role" = 'admin' where "id" = '{id}'"#
    ))
    .await;
    let (jar, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(res.status, 200, "{}", res.text);
    (jar, id)
}

async fn routes_are_unknown_without_the_plugin(b: Backend) {
    let app = spawn(b).await;
    let (mut jar, id) = user(&app).await;
    let res = on(&app, "/admin/list-user-sessions", &id, &mut jar).await;
    assert_eq!(res.status, 404);
}

async fn non_admins_are_refused_with_better_auths_codes(b: Backend) {
    let app = admin_app(b, |_| {}).await;
    let (mut jar, me) = user(&app).await;
    let (mut victim, id) = user(&app).await;
    let cases = [
        (
            "/admin/list-user-sessions",
            json!({"userId": id}),
            "YOU_ARE_NOT_ALLOWED_TO_LIST_USERS_SESSIONS",
        ),
        (
            "/admin/revoke-user-sessions",
            json!({"userId": id}),
            "YOU_ARE_NOT_ALLOWED_TO_REVOKE_USERS_SESSIONS",
        ),
        (
            "/admin/revoke-user-session",
            json!({"sessionToken": "x"}),
            "YOU_ARE_NOT_ALLOWED_TO_REVOKE_USERS_SESSIONS",
        ),
        (
            "/admin/ban-user",
            json!({"userId": id}),
            "YOU_ARE_NOT_ALLOWED_TO_BAN_USERS",
        ),
        (
            "/admin/unban-user",
            json!({"userId": id}),
            "YOU_ARE_NOT_ALLOWED_TO_BAN_USERS",
        ),
        (
            "/admin/set-role",
            json!({"userId": me, "role": "admin"}),
            "YOU_ARE_NOT_ALLOWED_TO_CHANGE_USERS_ROLE",
        ),
        (
            "/admin/impersonate-user",
            json!({"userId": id}),
            "YOU_ARE_NOT_ALLOWED_TO_IMPERSONATE_USERS",
        ),
    ];
    for (path, body, code) in cases {
        let res = app.post(path, body.clone(), &mut jar).await;
        assert_eq!(res.status, 403, "{path}: {}", res.text);
        assert_eq!(res.code().as_deref(), Some(code), "{path}");
        // Without a session: 401.
        let res = app.post(path, body, &mut Jar::default()).await;
        assert_eq!(res.status, 401, "{path}");
        assert_eq!(res.code().as_deref(), Some("UNAUTHORIZED"));
    }
    // Nothing happened to the victim, and no role was gained.
    assert_ne!(app.session(&mut victim).await, Value::Null);
    let s = app
        .get("/get-session?disableCookieCache=true", &mut jar)
        .await
        .json();
    assert_eq!(s["user"]["role"], "user");
    // A role that is not "admin" grants nothing either.
    app.exec(&format!(
        r#"update "user" set "role" = 'user, admin' where "id" = '{me}'"#
    ))
    .await;
    let res = on(&app, "/admin/ban-user", &id, &mut jar).await;
    assert_eq!(res.status, 403);
}

async fn admins_by_role_list_and_revoke_sessions(b: Backend) {
    let app = admin_app(b, |_| {}).await;
    let (mut adm, _) = admin(&app).await;
    let email = unique_email();
    let (mut one, res) = app.sign_up(&email).await;
    let id = res.json()["user"]["id"].as_str().unwrap().to_owned();
    let (mut two, _) = app.sign_in(&email, PASSWORD).await;
    let res = on(&app, "/admin/list-user-sessions", &id, &mut adm).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let sessions = res.json()["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2);
    assert!(sessions.iter().all(|s| s["userId"] == id.as_str()));
    // Unknown users have no sessions; a userId is coerced to text, as zod's coerce does.
    let res = app
        .post("/admin/list-user-sessions", json!({"userId": 12}), &mut adm)
        .await;
    assert_eq!(res.json(), json!({"sessions": []}));
    let res = app
        .post("/admin/list-user-sessions", json!([]), &mut adm)
        .await;
    assert_eq!(res.status, 400);
    // Revoke one by token: that session ends at once, though its cookie cache is fresh.
    let token = sessions[0]["token"].as_str().unwrap();
    let res = app
        .post(
            "/admin/revoke-user-session",
            json!({"sessionToken": token}),
            &mut adm,
        )
        .await;
    assert_eq!(res.json(), json!({"success": true}));
    let alive = [app.session(&mut one).await, app.session(&mut two).await];
    assert_eq!(alive.iter().filter(|s| s.is_null()).count(), 1);
    let res = app
        .post(
            "/admin/revoke-user-session",
            json!({"sessionToken": 5}),
            &mut adm,
        )
        .await;
    assert_eq!(res.code().as_deref(), Some("VALIDATION_ERROR"));
    // Revoke all.
    let res = on(&app, "/admin/revoke-user-sessions", &id, &mut adm).await;
    assert_eq!(res.json(), json!({"success": true}));
    assert_eq!(app.session(&mut one).await, Value::Null);
    assert_eq!(app.session(&mut two).await, Value::Null);
    // The admin's own session is untouched.
    assert_ne!(app.session(&mut adm).await, Value::Null);
}

async fn admin_user_ids_are_admins_whatever_their_role(b: Backend) {
    let email = unique_email();
    // The id is known only after sign-up: a first app makes the user, a second (same
    // database) lists it in admin_user_ids.
    let first = admin_app(b, |_| {}).await;
    let (_, res) = first.sign_up(&email).await;
    let id = res.json()["user"]["id"].as_str().unwrap().to_owned();
    let db = first.db_url.clone();
    let root = id.clone();
    let app = admin_app(b, move |s| {
        s.database.url = db.into();
        s.plugins.admin.admin_user_ids = vec![root];
    })
    .await;
    let (mut jar, _) = app.sign_in(&email, PASSWORD).await;
    let (_, target) = admin(&app).await;
    let res = on(&app, "/admin/list-user-sessions", &target, &mut jar).await;
    assert_eq!(res.status, 200, "{}", res.text);
    // admin_user_ids hold "impersonate-admins" too.
    let res = on(&app, "/admin/impersonate-user", &target, &mut jar).await;
    assert_eq!(res.status, 200, "{}", res.text);
}

async fn ban_ends_sessions_at_once_and_unban_lifts_it(b: Backend) {
    let app = admin_app(b, |_| {}).await;
    let (mut adm, _) = admin(&app).await;
    let email = unique_email();
    let (mut victim, res) = app.sign_up(&email).await;
    let id = res.json()["user"]["id"].as_str().unwrap().to_owned();
    assert_ne!(app.session(&mut victim).await, Value::Null);
    let res = app
        .post(
            "/admin/ban-user",
            json!({"userId": id, "banReason": "spam"}),
            &mut adm,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let u = &res.json()["user"];
    assert_eq!(u["banned"], true);
    assert_eq!(u["banReason"], "spam");
    assert_eq!(u["banExpires"], Value::Null);
    // The cookie cache is on and fresh: the session is refused all the same.
    assert_eq!(app.session(&mut victim).await, Value::Null);
    assert_eq!(
        app.count(&format!(
            r#"select count(*) from "session" where "userId" = '{id}'"#
        ))
        .await,
        0
    );
    let (_, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(res.code().as_deref(), Some("BANNED_USER"));
    let res = on(&app, "/admin/unban-user", &id, &mut adm).await;
    let u = &res.json()["user"];
    assert_eq!(
        (u["banned"].clone(), u["banReason"].clone()),
        (json!(false), Value::Null)
    );
    let (_, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(res.status, 200);
    // Default reason.
    let res = on(&app, "/admin/ban-user", &id, &mut adm).await;
    assert_eq!(res.json()["user"]["banReason"], "No reason");
}

async fn ban_refusals_and_expiry(b: Backend) {
    let app = admin_app(b, |_| {}).await;
    let (mut adm, me) = admin(&app).await;
    let res = on(&app, "/admin/ban-user", &me, &mut adm).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.code().as_deref(), Some("YOU_CANNOT_BAN_YOURSELF"));
    assert_ne!(app.session(&mut adm).await, Value::Null);
    let res = app
        .post(
            "/admin/ban-user",
            json!({"userId": "no-such-user"}),
            &mut adm,
        )
        .await;
    assert_eq!(res.status, 404);
    assert_eq!(res.code().as_deref(), Some("USER_NOT_FOUND"));
    let res = app
        .post(
            "/admin/unban-user",
            json!({"userId": "no-such-user"}),
            &mut adm,
        )
        .await;
    assert_eq!(res.code().as_deref(), Some("USER_NOT_FOUND"));
    let (_, id) = user(&app).await;
    for bad in [json!("60"), json!(true), json!(1e300)] {
        let res = app
            .post(
                "/admin/ban-user",
                json!({"userId": id, "banExpiresIn": bad}),
                &mut adm,
            )
            .await;
        assert_eq!(res.status, 400, "{bad}: {}", res.text);
        assert_eq!(res.code().as_deref(), Some("VALIDATION_ERROR"));
    }
    let res = app
        .post(
            "/admin/ban-user",
            json!({"userId": id, "banReason": "x".repeat(1025)}),
            &mut adm,
        )
        .await;
    assert_eq!(
        res.code().as_deref(),
        Some("VALIDATION_ERROR"),
        "{}",
        res.text
    );
    let res = app
        .post(
            "/admin/ban-user",
            json!({"userId": id, "banExpiresIn": 60}),
            &mut adm,
        )
        .await;
    let until = res.json()["user"]["banExpires"]
        .as_str()
        .unwrap()
        .to_owned();
    let until = chrono::DateTime::parse_from_rfc3339(&until)
        .unwrap()
        .timestamp_millis();
    assert_eq!(until, app.clock_ms() + 60_000);
}

async fn set_role_sets_one_or_several_roles(b: Backend) {
    let app = admin_app(b, |_| {}).await;
    let (mut adm, _) = admin(&app).await;
    let (mut jar, id) = user(&app).await;
    let res = app
        .post(
            "/admin/set-role",
            json!({"userId": id, "role": ["user", "admin"]}),
            &mut adm,
        )
        .await;
    assert_eq!(res.json()["user"]["role"], "user,admin");
    // The new admin can act at once (its session's user is read from the store).
    let res = on(&app, "/admin/list-user-sessions", &id, &mut jar).await;
    assert_eq!(res.status, 200, "{}", res.text);
    for bad in [
        json!({"userId": id}),
        json!({"userId": id, "role": 3}),
        json!({"userId": id, "role": [1]}),
        json!({"role": "admin"}),
    ] {
        let res = app.post("/admin/set-role", bad, &mut adm).await;
        assert_eq!(res.code().as_deref(), Some("VALIDATION_ERROR"));
    }
    // z.coerce.string() takes null ("null") but not a missing userId.
    let res = app
        .post("/admin/list-user-sessions", json!({}), &mut adm)
        .await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert_eq!(
        res.json()["message"],
        "[body.userId] Invalid input: expected nonoptional, received undefined"
    );
    let res = app
        .post(
            "/admin/list-user-sessions",
            json!({"userId": null}),
            &mut adm,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let res = app
        .post(
            "/admin/set-role",
            json!({"userId": "nobody", "role": "admin"}),
            &mut adm,
        )
        .await;
    assert_eq!(res.code().as_deref(), Some("USER_NOT_FOUND"));
}

async fn impersonation_round_trip(b: Backend) {
    let app = admin_app(b, |s| s.plugins.admin.impersonation_session_duration = 600).await;
    let (mut adm, admin_id) = admin(&app).await;
    let admin_token = app.session(&mut adm).await["session"]["token"].clone();
    let (mut victim, id) = user(&app).await;
    let res = on(&app, "/admin/impersonate-user", &id, &mut adm).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let body = res.json();
    assert_eq!(body["user"]["id"], id.as_str());
    assert_eq!(body["session"]["impersonatedBy"], admin_id.as_str());
    let created =
        chrono::DateTime::parse_from_rfc3339(body["session"]["createdAt"].as_str().unwrap())
            .unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(body["session"]["expiresAt"].as_str().unwrap())
            .unwrap();
    assert_eq!((expires - created).num_seconds(), 600);
    let line = res.cookie(ADMIN_COOKIE).expect("admin_session set");
    assert!(line.contains("HttpOnly"), "{line}");
    // Not remembered: the impersonation's token cookie is a browser-session cookie.
    let token_line = res.cookie(TOKEN_COOKIE).unwrap();
    assert!(!token_line.contains("Max-Age"), "{token_line}");
    assert!(res.cookie(DONT_REMEMBER_COOKIE).is_some());
    // The jar now speaks as the user.
    let s = app.session(&mut adm).await;
    assert_eq!(s["user"]["id"], id.as_str());
    // The user does not see the impersonation in their own list; admins do.
    let own = app.get("/list-sessions", &mut victim).await.json();
    assert_eq!(own.as_array().unwrap().len(), 1);
    let mut other_admin = admin(&app).await.0;
    let all = on(&app, "/admin/list-user-sessions", &id, &mut other_admin)
        .await
        .json();
    assert_eq!(all["sessions"].as_array().unwrap().len(), 2);
    // Stop: back to the admin's own session, the impersonation ends.
    let imp_token = s["session"]["token"].as_str().unwrap().to_owned();
    let mut copy = app.jar_for(&imp_token);
    let res = app
        .post("/admin/stop-impersonating", json!({}), &mut adm)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json()["user"]["id"], admin_id.as_str());
    assert_eq!(res.json()["session"]["token"], admin_token);
    assert!(res.cookie(ADMIN_COOKIE).unwrap().contains("Max-Age=0"));
    // The admin's remembered session replaces the impersonation's "don't remember" flag.
    let flag = res
        .cookie(DONT_REMEMBER_COOKIE)
        .expect("dont_remember expired");
    assert!(flag.contains("Max-Age=0"), "{flag}");
    assert_eq!(app.session(&mut adm).await["user"]["id"], admin_id.as_str());
    assert_eq!(app.session(&mut copy).await, Value::Null);
    // Not impersonating now.
    let res = app
        .post("/admin/stop-impersonating", json!({}), &mut adm)
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.json()["message"], "You are not impersonating anyone");
    let res = app
        .post("/admin/stop-impersonating", json!({}), &mut Jar::default())
        .await;
    assert_eq!(res.status, 401);
    // A banned user cannot be impersonated.
    on(&app, "/admin/ban-user", &id, &mut adm).await;
    let res = on(&app, "/admin/impersonate-user", &id, &mut adm).await;
    assert_eq!(res.code().as_deref(), Some("BANNED_USER"));
}

async fn impersonating_admins_is_refused_unless_allowed(b: Backend) {
    let app = admin_app(b, |_| {}).await;
    let (mut adm, _) = admin(&app).await;
    let (_, other) = admin(&app).await;
    let res = on(&app, "/admin/impersonate-user", &other, &mut adm).await;
    assert_eq!(res.status, 403);
    assert_eq!(res.code().as_deref(), Some("YOU_CANNOT_IMPERSONATE_ADMINS"));
    // The refused request changed no cookie.
    assert!(res.cookie(ADMIN_COOKIE).is_none());
    let db = app.db_url.clone();
    let allowed = admin_app(b, move |s| {
        s.database.url = db.into();
        s.plugins.admin.allow_impersonating_admins = true;
    })
    .await;
    let res = on(&allowed, "/admin/impersonate-user", &other, &mut adm).await;
    assert_eq!(res.status, 200, "{}", res.text);
}

async fn forged_or_stale_admin_session_cookies_restore_nothing(b: Backend) {
    let app = admin_app(b, |_| {}).await;
    let (mut adm, _) = admin(&app).await;
    let (mut victim, id) = user(&app).await;
    let victim_token = app.session(&mut victim).await["session"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = on(&app, "/admin/impersonate-user", &id, &mut adm).await;
    assert_eq!(res.status, 200);
    let good = adm.get(ADMIN_COOKIE).unwrap().clone();
    // Unsigned, signed over another value, or naming another user's session: refused.
    let key = sessiond::crypto::signed::SigningKey::new(SECRET.as_bytes()).unwrap();
    let signed = |v: &str| sessiond::http::set_cookie::encode_uri_component(&key.sign(v));
    for forged in [
        format!("{victim_token}:"),
        signed(&format!("{victim_token}:")),
        good.replace("%3A", "%3Atrue"),
        String::new(),
    ] {
        let mut jar = adm.clone();
        jar.cookies.insert(ADMIN_COOKIE.into(), forged.clone());
        let res = app
            .post("/admin/stop-impersonating", json!({}), &mut jar)
            .await;
        assert_eq!(res.status, 500, "{forged}: {}", res.text);
        assert_eq!(res.json()["message"], "Failed to find admin session");
    }
    // A user who is not impersonating gains nothing from a stolen admin_session.
    let mut thief = victim.clone();
    thief.cookies.insert(ADMIN_COOKIE.into(), good.clone());
    let res = app
        .post("/admin/stop-impersonating", json!({}), &mut thief)
        .await;
    assert_eq!(res.status, 400);
    // The admin's session revoked meanwhile: nothing to return to.
    let admin_token = signed_token_of(&good);
    let mut other_admin = admin(&app).await.0;
    app.post(
        "/admin/revoke-user-session",
        json!({"sessionToken": admin_token}),
        &mut other_admin,
    )
    .await;
    let res = app
        .post("/admin/stop-impersonating", json!({}), &mut adm)
        .await;
    assert_eq!(res.status, 500, "{}", res.text);
}

/// The admin token inside an `admin_session` cookie value (`token%3A…`).
fn signed_token_of(cookie: &str) -> String {
    cookie.split("%3A").next().unwrap().to_owned()
}

async fn ban_ends_sessions_with_redis(b: Backend) {
    let p = redis_prefix();
    let app = admin_app(b, move |s| use_shared_redis(&mut s.redis, p)).await;
    let (mut adm, _) = admin(&app).await;
    let email = unique_email();
    let (mut one, res) = app.sign_up(&email).await;
    let id = res.json()["user"]["id"].as_str().unwrap().to_owned();
    let (mut two, _) = app.sign_in(&email, PASSWORD).await;
    let res = on(&app, "/admin/ban-user", &id, &mut adm).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(app.session(&mut one).await, Value::Null);
    assert_eq!(app.session(&mut two).await, Value::Null);
    let res = on(&app, "/admin/list-user-sessions", &id, &mut adm).await;
    assert_eq!(res.json(), json!({"sessions": []}));
    // Impersonation through Redis too.
    let (_, other) = user(&app).await;
    let res = on(&app, "/admin/impersonate-user", &other, &mut adm).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let res = app
        .post("/admin/stop-impersonating", json!({}), &mut adm)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
}
