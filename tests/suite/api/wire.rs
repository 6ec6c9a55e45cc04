//! Small wire details matched with Better Auth: the redirect targets every POST may carry,
//! the order in which a request's body, origin and fields are checked, password bounds on
//! sign-in and change-password, zod's messages, and the text a wrong-typed field is
//! stored as.

use reqwest::Method;
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    redirect_targets_are_checked_on_every_post,
    bodies_are_read_before_the_origin_is_checked,
    passwords_are_bounded_on_sign_in_and_change_password,
    wrong_types_are_stored_as_node_postgres_prints_them,
);

/// A raw POST with a body of our choosing.
async fn post_raw(
    app: &TestApp,
    path: &str,
    body: &str,
    jar: Option<&Jar>,
    headers: &[(&str, &str)],
) -> Res {
    let mut req = app
        .client
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(j) = jar {
        req = req.header("cookie", j.header());
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    Res {
        status: res.status(),
        headers: res.headers().clone(),
        text: res.text().await.unwrap(),
    }
}

async fn redirect_targets_are_checked_on_every_post(b: Backend) {
    let app = spawn(b).await;
    let email = unique_email();
    let (mut jar, _) = app.sign_up(&email).await;
    let revoke = |extra: Value| {
        let mut body = json!({"token": "no-such-token"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    // Not a string: 400 with no code, before the route's own validation.
    for (field, value, label) in [
        ("callbackURL", json!(5), "callbackURL"),
        ("redirectTo", json!(["/x"]), "redirectURL"),
        ("errorCallbackURL", json!({"a": 1}), "errorCallbackURL"),
        ("newUserCallbackURL", json!(true), "newUserCallbackURL"),
    ] {
        let res = app
            .post("/revoke-session", revoke(json!({ field: value })), &mut jar)
            .await;
        assert_eq!(res.status, 400, "{field}");
        assert_eq!(
            res.json(),
            json!({"message": format!("Invalid {label}: expected a string")})
        );
    }
    // Not trusted: 403 with the field's own code.
    for (field, code) in [
        ("callbackURL", "INVALID_CALLBACK_URL"),
        ("redirectTo", "INVALID_REDIRECT_URL"),
        ("errorCallbackURL", "INVALID_ERROR_CALLBACK_URL"),
        ("newUserCallbackURL", "INVALID_NEW_USER_CALLBACK_URL"),
    ] {
        let body = revoke(json!({ field: "https://evil.example/x" }));
        let res = app.post("/revoke-session", body, &mut jar).await;
        assert_eq!((res.status.as_u16(), res.code()), (403, Some(code.into())));
    }
    // Falsy values are no target; trusted ones and safe paths pass.
    for value in [json!(0), json!(false), json!(null), json!(""), json!("/x")] {
        let body = revoke(json!({"callbackURL": value, "redirectTo": "/y"}));
        let res = app.post("/revoke-session", body, &mut jar).await;
        assert_eq!(res.json(), json!({"status": true}), "{value}");
    }
    // The query's callbackURL counts too, on routes that read no body.
    for path in [
        "/revoke-sessions?callbackURL=https%3A%2F%2Fevil.example",
        "/revoke-other-sessions?callbackURL=%2Fa&callbackURL=%2Fb",
    ] {
        let res = app
            .send(Method::POST, path, None, Some(&mut jar), &[])
            .await;
        assert_eq!(res.status.as_u16() / 100, 4, "{path}: {}", res.text);
    }
    assert_ne!(app.session(&mut jar).await, Value::Null, "nothing revoked");

    // Sign-in: the check comes before the body's validation and the Fetch Metadata check.
    let res = app
        .post(
            "/sign-in/email",
            json!({"email": 5, "callbackURL": 5}),
            &mut Jar::default(),
        )
        .await;
    assert_eq!(
        res.json(),
        json!({"message": "Invalid callbackURL: expected a string"})
    );
    let res = post_raw(
        &app,
        "/sign-in/email",
        &json!({"email": email, "password": PASSWORD, "callbackURL": 5}).to_string(),
        None,
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(res.status, 400, "{}", res.text);
    // An empty callbackURL is echoed, but is no redirect.
    let res = app
        .post(
            "/sign-in/email",
            json!({"email": email, "password": PASSWORD, "callbackURL": ""}),
            &mut Jar::default(),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        (res.json()["redirect"].clone(), res.json()["url"].clone()),
        (json!(false), json!(""))
    );
    assert_eq!(res.header("location"), None);

    // advanced.disable_origin_check turns the check off; disable_csrf_check does not.
    for (origin_off, status) in [(true, 200), (false, 403)] {
        let app = spawn_with(b, |s| {
            s.advanced.disable_csrf_check = true;
            s.advanced.disable_origin_check = origin_off;
        })
        .await;
        let (mut jar, _) = app.sign_up(&unique_email()).await;
        let body = json!({"name": "x", "callbackURL": "https://evil.example"});
        let res = app.post("/update-user", body, &mut jar).await;
        assert_eq!(res.status, status, "{}", res.text);
    }
}

async fn bodies_are_read_before_the_origin_is_checked(b: Backend) {
    let app = spawn(b).await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    let evil = [("origin", "https://evil.example")];
    let res = post_raw(&app, "/update-user", "{nope", Some(&jar), &evil).await;
    assert_eq!(
        res.json(),
        json!({"message": "Invalid JSON in request body", "code": "BAD_REQUEST"})
    );
    let res = post_raw(&app, "/update-user", r#"{"name":5}"#, Some(&jar), &evil).await;
    assert_eq!(res.code().as_deref(), Some("INVALID_ORIGIN"));
    // An unknown path, or a known one with another method, is a 404 first, with no Allow.
    for path in ["/no-such-route", "/list-sessions", "/ok"] {
        let res = post_raw(&app, path, "{}", Some(&jar), &evil).await;
        assert_eq!(res.status, 404, "{path}");
        assert_eq!(res.header("allow"), None, "{path}");
    }
    // Routes that read no field still refuse a body they cannot read.
    let res = post_raw(
        &app,
        "/revoke-sessions",
        "{nope",
        Some(&jar),
        &[("origin", ORIGIN)],
    )
    .await;
    assert_eq!(res.status, 400);
    let res = app
        .send(
            Method::POST,
            "/revoke-other-sessions",
            None,
            Some(&mut jar),
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(res.status, 200, "an empty body is no body: {}", res.text);
    assert_ne!(app.session(&mut jar).await, Value::Null);
    // Sign-in validates its body before the Fetch Metadata check.
    let res = post_raw(
        &app,
        "/sign-in/email",
        r#"{"email":5}"#,
        None,
        &[
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
        ],
    )
    .await;
    assert_eq!(res.code().as_deref(), Some("VALIDATION_ERROR"));
}

async fn passwords_are_bounded_on_sign_in_and_change_password(b: Backend) {
    let app = spawn(b).await;
    let email = unique_email();
    let (mut jar, _) = app.sign_up(&email).await;
    let long = "p".repeat(129);
    let (_, res) = app.sign_in(&email, &long).await;
    assert_eq!(
        res.json(),
        json!({"message": "Password too long", "code": "PASSWORD_TOO_LONG"})
    );
    let body = json!({"currentPassword": long, "newPassword": "new-password-1"});
    let res = app.post("/change-password", body, &mut jar).await;
    assert_eq!(res.code().as_deref(), Some("PASSWORD_TOO_LONG"));
    // zod's own wording for an empty array where a non-empty string belongs, and one issue
    // for an address that is no address, however long.
    let body = json!({"name": "n", "email": unique_email(), "password": []});
    let res = app.post("/sign-up/email", body, &mut Jar::default()).await;
    assert_eq!(
        res.json()["message"],
        "[body.password] Invalid input: expected string, received array; \
         [body.password] Too small: expected array to have >=1 items"
    );
    let body = json!({"name": "n", "email": "x".repeat(300), "password": PASSWORD});
    let res = app.post("/sign-up/email", body, &mut Jar::default()).await;
    assert_eq!(res.json()["message"], "[body.email] Invalid email address");
}

async fn wrong_types_are_stored_as_node_postgres_prints_them(b: Backend) {
    let app = spawn_with(b, |s| {
        s.session.additional_fields.insert(
            "theme".into(),
            serde_json::from_value(json!({"type": "string"})).unwrap(),
        );
    })
    .await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    let res = post_raw(
        &app,
        "/update-session",
        r#"{"theme": [["a\"b", null], 1.50, true, {"k": 1e21}]}"#,
        Some(&jar),
        &[("origin", ORIGIN)],
    )
    .await;
    assert_eq!(
        res.json()["session"]["theme"],
        r#"{{"a\"b",NULL},"1.5","true","{\"k\":1e+21}"}"#
    );
    let res = post_raw(
        &app,
        "/update-user",
        r#"{"name": {"b": 1.0, "1": 2}}"#,
        Some(&jar),
        &[("origin", ORIGIN)],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        app.session(&mut jar).await["user"]["name"],
        r#"{"1":2,"b":1}"#
    );
}
