//! list-sessions, revoke-session(s), revoke-other-sessions, update-session.

use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    coerce_field_types_option,
    list_and_revoke,
    revoke_session_by_id,
    revoke_sessions_revokes_all_and_clears_cookies,
    revoke_other_sessions_keeps_current,
    session_gated_routes_need_a_session,
    update_session_additional_field,
);

async fn list_and_revoke(b: Backend) {
    let app = spawn(b).await;
    let email = unique_email();
    let (_a, _) = app.sign_up(&email).await;
    let (mut b_jar, _) = app.sign_in(&email, PASSWORD).await;
    let (mut c_jar, c_res) = app.sign_in(&email, PASSWORD).await;
    let c_token = c_res.json()["token"].as_str().unwrap().to_string();
    let list = app.get("/list-sessions", &mut b_jar).await;
    assert_eq!(list.status, 200);
    // Unlike Better Auth, answers carrying tokens are never stored by caches.
    assert_eq!(list.header("cache-control").as_deref(), Some("no-store"));
    let arr = list.json();
    assert_eq!(arr.as_array().unwrap().len(), 3);
    assert!(arr
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["token"] == c_token.as_str()));

    // Revoke C from B.
    let res = app
        .post("/revoke-session", json!({"token": c_token}), &mut b_jar)
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), json!({"status": true}));
    assert!(res.set_cookies().is_empty());
    assert_eq!(app.session(&mut c_jar).await, Value::Null);
    // Unknown tokens and other users' tokens: success, nothing happens.
    let res = app
        .post(
            "/revoke-session",
            json!({"token": "no-such-token"}),
            &mut b_jar,
        )
        .await;
    assert_eq!(res.json(), json!({"status": true}));
    let (_, other) = app.sign_up(&unique_email()).await;
    let other_token = other.json()["token"].as_str().unwrap().to_string();
    app.post("/revoke-session", json!({"token": other_token}), &mut b_jar)
        .await;
    assert_eq!(
        app.count(&format!(
            r#"select count(*) from "session" where "token" = '{other_token}'"#
        ))
        .await,
        1
    );
    assert_eq!(
        app.get("/list-sessions", &mut b_jar)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Missing token field: validation error.
    let res = app.post("/revoke-session", json!({}), &mut b_jar).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.code().as_deref(), Some("VALIDATION_ERROR"));
    // Revoking one's own session clears one's cookies.
    let own = app.session(&mut b_jar).await["session"]["token"].clone();
    let res = app
        .post("/revoke-session", json!({"token": own}), &mut b_jar)
        .await;
    assert_eq!(res.json(), json!({"status": true}));
    assert!(res.cookie(TOKEN_COOKIE).unwrap().contains("Max-Age=0"));
}

async fn revoke_sessions_revokes_all_and_clears_cookies(b: Backend) {
    let app = spawn(b).await;
    let email = unique_email();
    let (mut a, _) = app.sign_up(&email).await;
    let (mut b_jar, _) = app.sign_in(&email, PASSWORD).await;
    let mut a_copy = a.clone();
    let res = app
        .send(
            reqwest::Method::POST,
            "/revoke-sessions",
            None,
            Some(&mut a),
            &[],
        )
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), json!({"status": true}));
    assert!(res.cookie(TOKEN_COOKIE).unwrap().contains("Max-Age=0"));
    assert_eq!(app.session(&mut a_copy).await, Value::Null);
    assert_eq!(app.session(&mut b_jar).await, Value::Null);
}

async fn revoke_other_sessions_keeps_current(b: Backend) {
    let app = spawn(b).await;
    let email = unique_email();
    let (mut a, _) = app.sign_up(&email).await;
    let (mut b_jar, _) = app.sign_in(&email, PASSWORD).await;
    let (mut c_jar, _) = app.sign_in(&email, PASSWORD).await;
    let res = app
        .post("/revoke-other-sessions", json!({}), &mut b_jar)
        .await;
    assert_eq!(res.json(), json!({"status": true}));
    assert_eq!(app.session(&mut a).await, Value::Null);
    assert_eq!(app.session(&mut c_jar).await, Value::Null);
    assert_ne!(app.session(&mut b_jar).await, Value::Null);
    assert_eq!(
        app.get("/list-sessions", &mut b_jar)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn session_gated_routes_need_a_session(b: Backend) {
    let app = spawn(b).await;
    let mut none = Jar::default();
    for (method, path, body) in [
        ("GET", "/list-sessions", None),
        ("POST", "/revoke-session", Some(json!({"token": "x"}))),
        ("POST", "/revoke-sessions", None),
        ("POST", "/revoke-other-sessions", None),
        ("POST", "/update-user", Some(json!({"name": "x"}))),
        ("POST", "/update-session", Some(json!({"theme": "x"}))),
        (
            "POST",
            "/change-password",
            Some(json!({"currentPassword": PASSWORD, "newPassword": "another-password"})),
        ),
    ] {
        let m = if method == "GET" {
            reqwest::Method::GET
        } else {
            reqwest::Method::POST
        };
        let res = app.send(m, path, body, Some(&mut none), &[]).await;
        assert_eq!(res.status, 401, "{path}: {}", res.text);
        assert_eq!(
            res.json(),
            json!({"message": "Unauthorized", "code": "UNAUTHORIZED"}),
            "{path}"
        );
    }
}

async fn update_session_additional_field(b: Backend) {
    let app = spawn_with(b, |s| {
        s.session.additional_fields.insert(
            "theme".into(),
            serde_json::from_value(json!({"type": "string", "default_value": "light"})).unwrap(),
        );
        s.session.additional_fields.insert(
            "role".into(),
            serde_json::from_value(json!({"type": "string", "input": false, "returned": false}))
                .unwrap(),
        );
    })
    .await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    let s = app.session(&mut jar).await;
    assert_eq!(s["session"]["theme"], "light");
    assert!(
        s["session"].get("role").is_none(),
        "returned:false fields are hidden"
    );
    let res = app
        .post("/update-session", json!({"theme": "dark"}), &mut jar)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json()["session"]["theme"], "dark");
    assert!(res.cookie(TOKEN_COOKIE).unwrap().contains("Max-Age=604800"));
    assert_eq!(app.session(&mut jar).await["session"]["theme"], "dark");
    // Core fields and unknown fields are dropped: nothing to update.
    for body in [
        json!({"token": "x", "userId": "y"}),
        json!({"nope": 1}),
        json!({}),
    ] {
        let res = app.post("/update-session", body, &mut jar).await;
        assert_eq!(res.status, 400);
        assert_eq!(res.json(), json!({"message": "No fields to update"}));
    }
    let res = app
        .post("/update-session", json!({"role": "admin"}), &mut jar)
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.json(),
        json!({"message": "role is not allowed to be set", "code": "FIELD_NOT_ALLOWED"})
    );
    // A number for a text field is stored as its text, as Better Auth stores it.
    let res = app
        .post("/update-session", json!({"theme": 5}), &mut jar)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json()["session"]["theme"], "5");
    let res = app.post("/update-session", json!("dark"), &mut jar).await;
    assert_eq!(
        res.json(),
        json!({"message": "[body] Invalid input: expected record, received string", "code": "VALIDATION_ERROR"})
    );
    // Additional fields follow the core ones, `id` last (Better Auth's schema order).
    let s = app.session(&mut jar).await;
    let keys: Vec<_> = s["session"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys[keys.len() - 3..], ["userId", "theme", "id"]);
}

async fn coerce_field_types_option(b: Backend) {
    let theme = || serde_json::from_value(json!({"type": "string"})).unwrap();
    // Better Auth's behaviour by default: non-text values are stored as their text.
    let app = spawn_with(b, |s| {
        s.session.additional_fields.insert("theme".into(), theme());
    })
    .await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    let res = app
        .post("/update-session", json!({"theme": 42}), &mut jar)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json()["session"]["theme"], "42");
    let res = app
        .post(
            "/update-user",
            json!({"name": {"a": 1}, "image": true}),
            &mut jar,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let s = app.session(&mut jar).await;
    assert_eq!(s["user"]["name"], r#"{"a":1}"#);
    assert_eq!(s["user"]["image"], "true");

    // Strict on request: 400, nothing stored.
    let app = spawn_with(b, |s| {
        s.advanced.coerce_field_types = false;
        s.session.additional_fields.insert("theme".into(), theme());
    })
    .await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    for (path, body, message) in [
        (
            "/update-session",
            json!({"theme": 42}),
            "[body.theme] Invalid input: expected string, received number",
        ),
        (
            "/update-user",
            json!({"name": 42}),
            "[body.name] Invalid input: expected string, received number",
        ),
    ] {
        let res = app.post(path, body, &mut jar).await;
        assert_eq!(res.status, 400, "{path}");
        assert_eq!(
            res.json(),
            json!({"message": message, "code": "VALIDATION_ERROR"})
        );
    }
    let s = app.session(&mut jar).await;
    assert_eq!(s["session"]["theme"], Value::Null);
    assert_eq!(s["user"]["name"], "Test User");
}

async fn revoke_session_by_id(b: Backend) {
    let app = spawn(b).await;
    let email = unique_email();
    let (mut a, _) = app.sign_up(&email).await;
    let (mut other, _) = app.sign_in(&email, PASSWORD).await;
    let other_id = app.session(&mut other).await["session"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A device list shows ids; revoking by id needs no token.
    let res = app
        .post("/revoke-session", json!({"id": other_id}), &mut a)
        .await;
    assert_eq!(res.json(), json!({"status": true}));
    assert_eq!(app.session(&mut other).await, Value::Null);
    assert_ne!(app.session(&mut a).await, Value::Null);
    // Unknown ids and other users' ids: success, nothing happens (as for tokens).
    let (mut stranger, _) = app.sign_up(&unique_email()).await;
    let stranger_id = app.session(&mut stranger).await["session"]["id"].clone();
    let res = app
        .post("/revoke-session", json!({"id": stranger_id}), &mut a)
        .await;
    assert_eq!(res.json(), json!({"status": true}));
    assert_ne!(app.session(&mut stranger).await, Value::Null);
    // Neither token nor id: Better Auth's validation error on `token`.
    let res = app.post("/revoke-session", json!({}), &mut a).await;
    assert_eq!(
        res.json()["message"],
        "[body.token] Invalid input: expected string, received undefined"
    );
}
