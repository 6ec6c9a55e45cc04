//! The forward-auth endpoint over HTTP (the nginx and Caddy tests drive it through real
//! proxies in `tests/proxies.rs`).

use reqwest::Method;
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    forward_auth_answers_identity_or_401,
    forward_auth_accepts_bearer_tokens,
    a_bearer_token_is_never_answered_from_another_users_cache,
    forward_auth_redirect_mode,
    forward_auth_passes_refreshed_cookies_and_follows_revocation,
    cache_hits_answer_each_user_their_own_identity,
);

async fn fa(app: &TestApp, method: Method, jar: Option<&mut Jar>, headers: &[(&str, &str)]) -> Res {
    let url = format!("http://{}/forward-auth", app.addr);
    let mut req = app.client.request(method, url);
    if let Some(j) = jar.as_deref() {
        if !j.cookies.is_empty() {
            req = req.header("cookie", j.header());
        }
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let res = Res {
        status: resp.status(),
        headers: resp.headers().clone(),
        text: resp.text().await.unwrap(),
    };
    if let Some(j) = jar {
        j.absorb(&res);
    }
    res
}

async fn forward_auth_answers_identity_or_401(b: Backend) {
    let app = spawn(b).await;
    let res = fa(&app, Method::GET, None, &[]).await;
    assert_eq!(res.status, 401);
    assert_eq!(
        res.json(),
        json!({"message": "Unauthorized", "code": "UNAUTHORIZED"})
    );
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    app.post("/update-user", json!({"name": "Zoë Ångström"}), &mut jar)
        .await;
    let s = app.session(&mut jar).await;
    for method in [Method::GET, Method::HEAD, Method::POST, Method::DELETE] {
        // No origin check here: the proxy forwards whatever the browser sent.
        let res = fa(
            &app,
            method.clone(),
            Some(&mut jar),
            &[
                ("origin", "https://elsewhere.example"),
                ("x-forwarded-method", "PUT"),
            ],
        )
        .await;
        assert_eq!(res.status, 200, "{method}");
        assert_eq!(
            res.header("x-auth-user-id").unwrap(),
            s["user"]["id"].as_str().unwrap()
        );
        assert_eq!(
            res.header("x-auth-email").unwrap(),
            s["user"]["email"].as_str().unwrap()
        );
        assert_eq!(
            res.header("x-auth-name").unwrap(),
            "Zo%C3%AB%20%C3%85ngstr%C3%B6m"
        );
        assert_eq!(
            res.header("x-auth-session-id").unwrap(),
            s["session"]["id"].as_str().unwrap()
        );
        assert_eq!(
            res.header("x-auth-expires-at").unwrap(),
            s["session"]["expiresAt"].as_str().unwrap()
        );
    }
    // Header names are configurable.
    let app = spawn_with(b, |s| s.forward_auth.header_user_id = "Remote-User".into()).await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    let res = fa(&app, Method::GET, Some(&mut jar), &[]).await;
    assert!(res.header("remote-user").is_some());
    assert!(res.header("x-auth-user-id").is_none());
}

/// The identity headers of a cookie-cache hit are made once per cookie value and sent again
/// after that: each user still gets their own, and a new value (after a profile change) its
/// new ones.
async fn cache_hits_answer_each_user_their_own_identity(b: Backend) {
    let app = spawn_with(b, |s| s.session.cookie_cache.enabled = true).await;
    let (mut ann, _) = app.sign_up(&unique_email()).await;
    let (mut bob, _) = app.sign_up(&unique_email()).await;
    app.post("/update-user", json!({"name": "Zoë"}), &mut bob)
        .await;
    let expected = |s: &Value, name: &str| {
        [
            s["user"]["id"].as_str().unwrap().to_owned(),
            s["user"]["email"].as_str().unwrap().to_owned(),
            name.to_owned(),
            s["session"]["id"].as_str().unwrap().to_owned(),
            s["session"]["expiresAt"].as_str().unwrap().to_owned(),
        ]
    };
    let identity = |res: &Res| {
        assert_eq!(res.status, 200, "{}", res.text);
        [
            "x-auth-user-id",
            "x-auth-email",
            "x-auth-name",
            "x-auth-session-id",
            "x-auth-expires-at",
        ]
        .map(|h| res.header(h).unwrap())
    };
    let a = expected(&app.session(&mut ann).await, "Test User");
    let z = expected(&app.session(&mut bob).await, "Zo%C3%AB");
    assert_ne!(a[0], z[0]);
    for _ in 0..3 {
        for method in [Method::HEAD, Method::GET] {
            assert_eq!(
                identity(&fa(&app, method.clone(), Some(&mut ann), &[]).await),
                a
            );
            assert_eq!(identity(&fa(&app, method, Some(&mut bob), &[]).await), z);
        }
    }
    let res = fa(&app, Method::GET, Some(&mut bob), &[]).await;
    assert_eq!(
        res.json(),
        json!({"userId": z[0], "sessionId": z[3]}),
        "the body is the same session's"
    );
    app.post("/update-user", json!({"name": "Zoë Ångström"}), &mut bob)
        .await;
    let z2 = expected(
        &app.session(&mut bob).await,
        "Zo%C3%AB%20%C3%85ngstr%C3%B6m",
    );
    for _ in 0..2 {
        assert_eq!(
            identity(&fa(&app, Method::HEAD, Some(&mut bob), &[]).await),
            z2
        );
    }
}

async fn forward_auth_accepts_bearer_tokens(b: Backend) {
    let app = spawn(b).await;
    let (jar, res) = app.sign_up(&unique_email()).await;
    let token = res.json()["token"].as_str().unwrap().to_string();
    let signed = percent_encoding::percent_decode_str(jar.get(TOKEN_COOKIE).unwrap())
        .decode_utf8()
        .unwrap()
        .to_string();
    for credential in [token.clone(), signed] {
        // The scheme in any case, as the bearer plugin reads it.
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let auth = format!("{scheme} {credential}");
            let res = fa(&app, Method::GET, None, &[("authorization", &auth)]).await;
            assert_eq!(res.status, 200, "{auth}");
        }
    }
    for bad in [
        "Bearer nope",
        "Bearer ",
        &format!("Bearer {token}.AAAA"),
        &format!("Basic {token}"),
    ] {
        let res = fa(&app, Method::GET, None, &[("authorization", bad)]).await;
        assert_eq!(res.status, 401, "{bad}");
    }
}

/// A bearer token stands in for the session cookie alone: cache cookies sent beside it
/// (another user's) are not read, and a valid session cookie takes precedence over it.
async fn a_bearer_token_is_never_answered_from_another_users_cache(b: Backend) {
    let app = spawn_with(b, |s| {
        s.session.cookie_cache.enabled = true;
        s.session.cookie_cache.immediate_revocation = false;
    })
    .await;
    let (_, res) = app.sign_up(&unique_email()).await;
    let my_token = res.json()["token"].as_str().unwrap().to_string();
    let me = res.json()["user"]["id"].as_str().unwrap().to_string();
    let (theirs, res) = app.sign_up(&unique_email()).await;
    let them = res.json()["user"]["id"].as_str().unwrap().to_string();
    let data = "better-auth.session_data";
    let auth = format!("Bearer {my_token}");

    let mut their_cache = Jar::default();
    their_cache
        .cookies
        .insert(data.into(), theirs.get(data).unwrap().clone());
    let res = fa(
        &app,
        Method::GET,
        Some(&mut their_cache),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json()["userId"], me.as_str());

    // Their whole cookie set beside my bearer token: the cookie is the credential.
    let mut theirs = theirs.clone();
    let res = fa(
        &app,
        Method::GET,
        Some(&mut theirs),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(res.json()["userId"], them.as_str());
}

async fn forward_auth_redirect_mode(b: Backend) {
    let app = spawn_with(b, |s| {
        s.forward_auth.sign_in_url = "https://app.example/login".into();
        // Only trusted origins are handed to the sign-in page as the way back.
        s.trusted_origins = vec!["https://app.example".into(), "https://a.example".into()];
    })
    .await;
    let url = format!("http://{}/forward-auth?redirect=1", app.addr);
    let res = app
        .client
        .get(&url)
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "app.example")
        .header("x-forwarded-uri", "/private/page?x=1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        "https://app.example/login?rd=https%3A%2F%2Fapp.example%2Fprivate%2Fpage%3Fx%3D1"
    );
    let res = app
        .client
        .get(&url)
        .header("x-original-url", "https://a.example/b")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        "https://app.example/login?rd=https%3A%2F%2Fa.example%2Fb"
    );
    // Without ?redirect the default mode (401) applies; with redirect = true in config, 302.
    assert_eq!(fa(&app, Method::GET, None, &[]).await.status, 401);
    let app = spawn_with(b, |s| {
        s.forward_auth.sign_in_url = "/login".into();
        s.forward_auth.redirect = true;
    })
    .await;
    let res = fa(&app, Method::GET, None, &[]).await;
    assert_eq!(res.status, 302);
    assert_eq!(res.header("location").as_deref(), Some("/login"));
}

async fn forward_auth_passes_refreshed_cookies_and_follows_revocation(b: Backend) {
    let app = spawn(b).await;
    let email = unique_email();
    let (mut jar, _) = app.sign_up(&email).await;
    let (mut other, _) = app.sign_in(&email, PASSWORD).await;
    app.clock.advance_secs(86_400 + 1);
    let res = fa(&app, Method::GET, Some(&mut jar), &[]).await;
    assert_eq!(res.status, 200);
    assert!(
        res.cookie(TOKEN_COOKIE).unwrap().contains("Max-Age=604800"),
        "refresh cookie passed back"
    );
    let token = app.session(&mut jar).await["session"]["token"].clone();
    app.post("/revoke-session", json!({"token": token}), &mut other)
        .await;
    let res = fa(&app, Method::GET, Some(&mut jar), &[]).await;
    assert_eq!(res.status, 401);
    assert!(res.cookie(TOKEN_COOKIE).unwrap().contains("Max-Age=0"));
    assert_eq!(app.session(&mut jar).await, Value::Null);
}
