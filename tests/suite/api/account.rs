//! update-user and change-password.

use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    update_user_name_and_image,
    change_password_flows,
    change_password_wins_over_sign_ins_in_flight
);

async fn update_user_name_and_image(b: Backend) {
    let app = spawn(b).await;
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
    // Stored as its text, as Better Auth stores it (advanced.coerce_field_types).
    let res = app
        .post("/update-user", json!({"name": 42}), &mut jar)
        .await;
    assert_eq!(res.json(), json!({"status": true}));
    assert_eq!(app.session(&mut jar).await["user"]["name"], "42");
}

async fn change_password_flows(b: Backend) {
    let app = spawn(b).await;
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

/// Sign-ins that read the old password before a change-password commits, and write
/// their session after it deleted "every other" session, must not survive it: someone
/// who knows the old password would keep a session the user believes is gone.
async fn change_password_wins_over_sign_ins_in_flight(b: Backend) {
    let app = spawn_with(b, |s| s.email_and_password.hash_concurrency = 1).await;
    old_password_sign_ins_lose(&app).await;
}

pub async fn old_password_sign_ins_lose(app: &TestApp) {
    let email = unique_email();
    let (mut owner, _) = app.sign_up(&email).await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attackers: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, email, done) = (
                app.client.clone(),
                app.url("/sign-in/email"),
                email.clone(),
                done.clone(),
            );
            tokio::spawn(async move {
                let mut tokens = Vec::new();
                // Keep signing in until a few rounds after the change returned.
                let mut after = 0;
                while after < 3 {
                    if done.load(std::sync::atomic::Ordering::SeqCst) {
                        after += 1;
                    }
                    let res = client
                        .post(&url)
                        .json(&json!({"email": email, "password": PASSWORD}))
                        .send()
                        .await
                        .unwrap();
                    if res.status() == 200 {
                        let body: Value = res.json().await.unwrap();
                        tokens.push(body["token"].as_str().unwrap().to_string());
                    }
                }
                tokens
            })
        })
        .collect();
    // Let the attackers get going, so that some are between reading and writing.
    for _ in 0..3 {
        app.sign_in(&email, PASSWORD).await;
    }
    let res = app
        .post(
            "/change-password",
            json!({"currentPassword": PASSWORD, "newPassword": "new-password-1", "revokeOtherSessions": true}),
            &mut owner,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut issued = 0;
    for a in attackers {
        for token in a.await.unwrap() {
            issued += 1;
            // get-session reads the session cookie (bearer tokens are forward auth's).
            let res = app.get("/get-session", &mut app.jar_for(&token)).await;
            assert_eq!(
                res.text, "null",
                "a session signed in with the old password survived"
            );
        }
    }
    assert!(issued > 0, "the old password worked before the change");
    let mut jar = owner.clone();
    let listed = app.get("/list-sessions", &mut jar).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(app.sign_in(&email, PASSWORD).await.1.status, 401);
}
