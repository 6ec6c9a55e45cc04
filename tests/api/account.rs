//! update-user and change-password.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::{app, on_both_backends};

on_both_backends!(update_user_name_and_image, change_password_flows);

async fn update_user_name_and_image(b: Backend) {
    let app = app!(b);
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    let before = app.session(&mut jar).await;
    app.clock.advance_secs(60);
    let res = app
        .post(
            "/update-user",
            json!({"name": "New Name", "image": "https://img.example/a.png"}),
            &mut jar,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json(), json!({"status": true}));
    assert!(res.cookie(TOKEN_COOKIE).unwrap().contains("Max-Age=604800"));
    let s = app.session(&mut jar).await;
    assert_eq!(s["user"]["name"], "New Name");
    assert_eq!(s["user"]["image"], "https://img.example/a.png");
    assert_ne!(s["user"]["updatedAt"], before["user"]["updatedAt"]);
    assert_eq!(
        s["session"]["expiresAt"], before["session"]["expiresAt"],
        "update-user does not extend the session"
    );
    let res = app
        .post("/update-user", json!({"image": null}), &mut jar)
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(app.session(&mut jar).await["user"]["image"], Value::Null);
    let res = app
        .post("/update-user", json!({"email": "x@example.com"}), &mut jar)
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.json(),
        json!({"message": "Email can not be updated", "code": "EMAIL_CAN_NOT_BE_UPDATED"})
    );
    let res = app
        .post("/update-user", json!({"emailVerified": true}), &mut jar)
        .await;
    assert_eq!(res.json(), json!({"message": "No fields to update"}));
    let res = app.post("/update-user", json!(["x"]), &mut jar).await;
    assert_eq!(
        res.json(),
        json!({"message": "[body] Invalid input: expected record, received array", "code": "VALIDATION_ERROR"})
    );
    let res = app
        .post("/update-user", json!({"name": 42}), &mut jar)
        .await;
    assert_eq!(
        res.json()["message"],
        "[body.name] Invalid input: expected string, received number"
    );
}

async fn change_password_flows(b: Backend) {
    let app = app!(b);
    let email = unique_email();
    let (mut a, _) = app.sign_up(&email).await;
    let (mut other, _) = app.sign_in(&email, PASSWORD).await;
    let res = app
        .post(
            "/change-password",
            json!({"currentPassword": "wrong-password", "newPassword": "new-password-1"}),
            &mut a,
        )
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.json(),
        json!({"message": "Invalid password", "code": "INVALID_PASSWORD"})
    );
    let res = app
        .post(
            "/change-password",
            json!({"currentPassword": PASSWORD, "newPassword": "short"}),
            &mut a,
        )
        .await;
    assert_eq!(
        res.json(),
        json!({"message": "Password too short", "code": "PASSWORD_TOO_SHORT"})
    );
    let res = app
        .post(
            "/change-password",
            json!({"currentPassword": PASSWORD}),
            &mut a,
        )
        .await;
    assert_eq!(res.code().as_deref(), Some("VALIDATION_ERROR"));

    // Without revocation: token null, sessions untouched.
    let res = app
        .post(
            "/change-password",
            json!({"currentPassword": PASSWORD, "newPassword": "new-password-1"}),
            &mut a,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let body = res.json();
    assert_eq!(body["token"], Value::Null);
    assert_eq!(body["user"]["email"], email);
    assert_ne!(app.session(&mut other).await, Value::Null);
    assert_eq!(app.sign_in(&email, PASSWORD).await.1.status, 401);
    assert_eq!(app.sign_in(&email, "new-password-1").await.1.status, 200);

    // With revocation: every old session dies, a new one replaces the caller's.
    let mut a_old = a.clone();
    let res = app
        .post("/change-password", json!({"currentPassword": "new-password-1", "newPassword": "new-password-2", "revokeOtherSessions": true}), &mut a)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let token = res.json()["token"].as_str().unwrap().to_string();
    assert!(res
        .cookie(TOKEN_COOKIE)
        .unwrap()
        .starts_with(&format!("{TOKEN_COOKIE}={token}.")));
    assert_eq!(app.session(&mut other).await, Value::Null);
    assert_eq!(app.session(&mut a_old).await, Value::Null);
    assert_eq!(app.session(&mut a).await["session"]["token"], token);
    assert_eq!(app.count(r#"select count(*) from "session""#).await, 1);
}
