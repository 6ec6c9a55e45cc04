//! sign-up, sign-in, sign-out: bodies, cookies, errors.

use serde_json::json;

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    sign_up_returns_token_user_and_cookie,
    sign_up_rejects_duplicates_and_lowercases_email,
    sign_up_validation_errors,
    sign_in_success_and_failures,
    sign_in_remember_me_false,
    sign_out_clears_cookies_and_deletes_session,
    sign_up_is_atomic_under_concurrency,
    client_ip_and_user_agent_are_recorded,
    form_encoded_sign_in,
);

fn is_iso_ms(v: &serde_json::Value) -> bool {
    let s = v.as_str().unwrap_or("");
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[19] == b'.'
}

async fn sign_up_returns_token_user_and_cookie(b: Backend) {
    let app = spawn(b).await;
    let email = unique_email();
    let (jar, res) = app.sign_up(&email).await;
    let body = res.json();
    let token = body["token"].as_str().unwrap();
    assert_eq!(token.len(), 32);
    assert!(token.bytes().all(|c| c.is_ascii_alphanumeric()));
    let user = &body["user"];
    let keys: Vec<_> = user.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "name",
            "email",
            "emailVerified",
            "image",
            "createdAt",
            "updatedAt",
            "id"
        ]
    );
    assert_eq!(user["email"], email);
    assert_eq!(user["emailVerified"], false);
    assert!(user["image"].is_null());
    assert!(is_iso_ms(&user["createdAt"]));
    // The cookie carries token.HMAC with Better Auth's attributes.
    let cookie = res.cookie(TOKEN_COOKIE).unwrap();
    assert!(
        cookie.starts_with(&format!("{TOKEN_COOKIE}={token}.")),
        "{cookie}"
    );
    assert!(
        cookie.ends_with("; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax"),
        "{cookie}"
    );
    assert_eq!(res.set_cookies().len(), 1);
    // And it resolves to the same user.
    let mut jar = jar;
    let s = app.session(&mut jar).await;
    assert_eq!(s["user"]["id"], user["id"]);
    assert_eq!(s["session"]["token"], token);
    let skeys: Vec<_> = s["session"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        skeys,
        [
            "expiresAt",
            "token",
            "createdAt",
            "updatedAt",
            "ipAddress",
            "userAgent",
            "userId",
            "id"
        ]
    );
    assert_eq!(
        app.count(r#"select count(*) from "account" where "providerId" = 'credential'"#)
            .await,
        1
    );
}

async fn sign_up_rejects_duplicates_and_lowercases_email(b: Backend) {
    let app = spawn(b).await;
    let email = unique_email();
    app.sign_up(&email).await;
    let mut jar = Jar::default();
    let res = app
        .post(
            "/sign-up/email",
            json!({"name": "x", "email": email.to_uppercase(), "password": PASSWORD}),
            &mut jar,
        )
        .await;
    assert_eq!(res.status, 422);
    assert_eq!(
        res.json(),
        json!({"message": "User already exists. Use another email.", "code": "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL"})
    );
    assert!(res.set_cookies().is_empty());
    // Sign-in is case-insensitive.
    let (_, res) = app.sign_in(&email.to_uppercase(), PASSWORD).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json()["user"]["email"], email);
}

async fn sign_up_validation_errors(b: Backend) {
    let app = spawn(b).await;
    let mut jar = Jar::default();
    let cases = [
        (
            json!({"name": "x", "email": "not-an-email", "password": PASSWORD}),
            400,
            "VALIDATION_ERROR",
            Some("[body.email] Invalid email address"),
        ),
        (
            json!({"name": "x", "email": unique_email(), "password": "short"}),
            400,
            "PASSWORD_TOO_SHORT",
            Some("Password too short"),
        ),
        (
            json!({"name": "x", "email": unique_email(), "password": "x".repeat(129)}),
            400,
            "PASSWORD_TOO_LONG",
            Some("Password too long"),
        ),
        (
            json!({"email": unique_email(), "password": PASSWORD}),
            400,
            "VALIDATION_ERROR",
            Some("[body.name] Invalid input: expected string, received undefined"),
        ),
        (
            json!({"name": 5, "email": unique_email(), "password": PASSWORD}),
            400,
            "VALIDATION_ERROR",
            Some("[body.name] Invalid input: expected string, received number"),
        ),
        (
            json!([1, 2]),
            400,
            "VALIDATION_ERROR",
            Some("[body] Invalid input: expected object, received array; [body] Invalid input: expected record, received array"),
        ),
    ];
    for (body, status, code, message) in cases {
        let res = app.post("/sign-up/email", body.clone(), &mut jar).await;
        assert_eq!(res.status, status, "{body}: {}", res.text);
        assert_eq!(res.code().as_deref(), Some(code), "{body}");
        if let Some(m) = message {
            assert_eq!(res.json()["message"], m, "{body}");
        }
    }
    // 128 characters is allowed.
    let res = app
        .post(
            "/sign-up/email",
            json!({"name": "", "email": unique_email(), "password": "p".repeat(128)}),
            &mut jar,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(app.count(r#"select count(*) from "user""#).await, 1);
}

async fn sign_in_success_and_failures(b: Backend) {
    let app = spawn(b).await;
    let email = unique_email();
    app.sign_up(&email).await;
    let (mut jar, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(res.status, 200);
    let body = res.json();
    let keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["redirect", "token", "user"]);
    assert_eq!(body["redirect"], false);
    assert_eq!(
        app.session(&mut jar).await["session"]["token"],
        body["token"]
    );

    for (email, password) in [
        (email.as_str(), "wrong-password-1"),
        ("nobody@example.com", PASSWORD),
    ] {
        let (_, res) = app.sign_in(email, password).await;
        assert_eq!(res.status, 401);
        assert_eq!(
            res.json(),
            json!({"message": "Invalid email or password", "code": "INVALID_EMAIL_OR_PASSWORD"})
        );
        assert!(res.set_cookies().is_empty());
    }
    let (_, res) = app.sign_in("not-an-email", PASSWORD).await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.json(),
        json!({"message": "Invalid email", "code": "INVALID_EMAIL"})
    );

    // A callbackURL is echoed with redirect: true and a Location header (still 200).
    let mut jar = Jar::default();
    let res = app
        .post(
            "/sign-in/email",
            json!({"email": email, "password": PASSWORD, "callbackURL": "/dashboard"}),
            &mut jar,
        )
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["redirect"], true);
    assert_eq!(res.json()["url"], "/dashboard");
    assert_eq!(res.header("location").as_deref(), Some("/dashboard"));
    // Another site, or a path that resolves to `//host` in whatever re-reads it.
    for callback in [
        "https://evil.example",
        "/..//evil.example",
        "/.//evil.example",
    ] {
        let res = app
            .post(
                "/sign-in/email",
                json!({"email": email, "password": PASSWORD, "callbackURL": callback}),
                &mut Jar::default(),
            )
            .await;
        assert_eq!(res.status, 403, "{callback}");
        assert_eq!(res.code().as_deref(), Some("INVALID_CALLBACK_URL"));
    }
}

async fn sign_in_remember_me_false(b: Backend) {
    let app = spawn(b).await;
    let email = unique_email();
    app.sign_up(&email).await;
    let mut jar = Jar::default();
    let res = app
        .post(
            "/sign-in/email",
            json!({"email": email, "password": PASSWORD, "rememberMe": false}),
            &mut jar,
        )
        .await;
    assert_eq!(res.status, 200);
    let token_cookie = res.cookie(TOKEN_COOKIE).unwrap();
    assert!(token_cookie.ends_with("; Path=/; HttpOnly; SameSite=Lax"));
    assert!(!token_cookie.contains("Max-Age"), "{token_cookie}");
    let dr = res.cookie(DONT_REMEMBER_COOKIE).unwrap();
    assert!(
        dr.starts_with(&format!("{DONT_REMEMBER_COOKIE}=true.")),
        "{dr}"
    );
    assert!(!dr.contains("Max-Age"));
    // A fixed one-day session, never extended.
    let s = app.session(&mut jar).await;
    let expires =
        chrono::DateTime::parse_from_rfc3339(s["session"]["expiresAt"].as_str().unwrap()).unwrap();
    let created =
        chrono::DateTime::parse_from_rfc3339(s["session"]["createdAt"].as_str().unwrap()).unwrap();
    assert_eq!((expires - created).num_seconds(), 86_400);
    app.clock.advance_secs(86_400 - 10);
    let res = app.get("/get-session", &mut jar).await;
    assert!(
        res.set_cookies().is_empty(),
        "no refresh for a don't-remember session"
    );
    assert_eq!(
        res.json()["session"]["expiresAt"],
        s["session"]["expiresAt"]
    );
    // Nor by a client that leaves the dont_remember cookie out (a bearer token through
    // forward auth, a copied token cookie): the server knows the session's kind.
    let token = s["session"]["token"].as_str().unwrap().to_string();
    let res = app
        .client
        .get(format!("http://{}/forward-auth", app.addr))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("set-cookie").is_none(), "not refreshed");
    let mut bare = Jar::default();
    bare.cookies
        .insert(TOKEN_COOKIE.into(), jar.get(TOKEN_COOKIE).unwrap().clone());
    assert_eq!(
        app.session(&mut bare).await["session"]["expiresAt"],
        s["session"]["expiresAt"]
    );
    app.clock.advance_secs(20);
    let res = app.get("/get-session", &mut jar).await;
    assert_eq!(res.json(), serde_json::Value::Null);
}

async fn sign_out_clears_cookies_and_deletes_session(b: Backend) {
    let app = spawn(b).await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    let mut stolen = jar.clone();
    let res = app.post("/sign-out", json!({}), &mut jar).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), json!({"success": true}));
    assert_eq!(
        res.set_cookies(),
        [
            "better-auth.session_token=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax",
            "better-auth.session_data=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax",
            "better-auth.dont_remember=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax",
        ]
    );
    // The old cookie no longer works anywhere.
    assert_eq!(app.session(&mut stolen).await, serde_json::Value::Null);
    assert_eq!(app.count(r#"select count(*) from "session""#).await, 0);
    // Signing out without a session still answers success (bodiless, no cookie).
    let res = app
        .send(reqwest::Method::POST, "/sign-out", None, None, &[])
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), json!({"success": true}));
}

async fn sign_up_is_atomic_under_concurrency(b: Backend) {
    let app = spawn(b).await;
    let email = unique_email();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let client = app.client.clone();
        let url = app.url("/sign-up/email");
        let email = email.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"name": "n", "email": email, "password": PASSWORD}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap().as_u16() {
            200 => ok += 1,
            422 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(app.count(r#"select count(*) from "user""#).await, 1);
    assert_eq!(app.count(r#"select count(*) from "account""#).await, 1);
    assert_eq!(app.count(r#"select count(*) from "session""#).await, 1);
}

async fn client_ip_and_user_agent_are_recorded(b: Backend) {
    let app = spawn(b).await;
    let email = unique_email();
    app.sign_up(&email).await;
    let body = json!({"email": email, "password": PASSWORD});
    let mut jar = Jar::default();
    app.send(
        reqwest::Method::POST,
        "/sign-in/email",
        Some(body.clone()),
        Some(&mut jar),
        &[
            ("x-forwarded-for", "203.0.113.7"),
            ("user-agent", "Test/1.0"),
        ],
    )
    .await;
    let s = app.session(&mut jar).await;
    assert_eq!(s["session"]["ipAddress"], "203.0.113.7");
    assert_eq!(s["session"]["userAgent"], "Test/1.0");
    // A chain without trusted proxies yields no address (Better Auth's rule).
    let mut jar = Jar::default();
    app.send(
        reqwest::Method::POST,
        "/sign-in/email",
        Some(body),
        Some(&mut jar),
        &[
            ("x-forwarded-for", "203.0.113.7, 10.0.0.1"),
            ("user-agent", ""),
        ],
    )
    .await;
    let s = app.session(&mut jar).await;
    assert_eq!(s["session"]["ipAddress"], "");
}

async fn form_encoded_sign_in(b: Backend) {
    let app = spawn(b).await;
    let email = unique_email();
    app.sign_up(&email).await;
    let res = app
        .client
        .post(app.url("/sign-in/email"))
        .form(&[("email", email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: serde_json::Value = res.json().await.unwrap();
    assert_eq!(v["user"]["email"], email);
}
