//! Origin checks, content types, malformed and random input.

use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::json;

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    origin_check_on_cookie_bearing_posts,
    sign_in_csrf_checks,
    content_types_and_json,
    random_and_truncated_bodies_get_4xx
);

async fn origin_check_on_cookie_bearing_posts(b: Backend) {
    let app = spawn_with(b, |s| {
        s.trusted_origins = vec!["https://app.example".into(), "*.wild.example".into()]
    })
    .await;
    let (jar, _) = app.sign_up(&unique_email()).await;
    let cookie = jar.header();
    let url = app.url("/sign-out");
    let send = |origin: Option<&'static str>, referer: Option<&'static str>| {
        let mut r = app
            .client
            .post(url.clone())
            .header("cookie", cookie.clone());
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if let Some(o) = referer {
            r = r.header("referer", o);
        }
        r.send()
    };
    let res = send(None, None).await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap(),
        json!({"message": "Missing or null Origin", "code": "MISSING_OR_NULL_ORIGIN"})
    );
    let res = send(Some("null"), None).await.unwrap();
    assert_eq!(res.status(), 403);
    let res = send(Some("https://evil.example"), None).await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap(),
        json!({"message": "Invalid origin", "code": "INVALID_ORIGIN"})
    );
    // Referer counts when there is no Origin; wildcard patterns match hosts.
    assert_eq!(
        send(None, Some("https://app.example/some/page"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        send(Some("https://x.wild.example"), None)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(send(Some(ORIGIN), None).await.unwrap().status(), 200);
    // GET is never origin-checked.
    let res = app
        .client
        .get(app.url("/get-session"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

async fn sign_in_csrf_checks(b: Backend) {
    let app = spawn(b).await;
    let email = unique_email();
    app.sign_up(&email).await;
    let body = json!({"email": email, "password": PASSWORD});
    let post = |headers: Vec<(&'static str, &'static str)>| {
        let mut r = app.client.post(app.url("/sign-in/email")).json(&body);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.send()
    };
    // curl / server-to-server: no cookie, no Origin, no Fetch Metadata.
    assert_eq!(post(vec![]).await.unwrap().status(), 200);
    let res = post(vec![
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-mode", "navigate"),
    ])
    .await
    .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["code"],
        "CROSS_SITE_NAVIGATION_LOGIN_BLOCKED"
    );
    assert_eq!(
        post(vec![("origin", "https://evil.example")])
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        post(vec![
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-mode", "cors"),
            ("origin", ORIGIN)
        ])
        .await
        .unwrap()
        .status(),
        200
    );
    let res = post(vec![
        ("sec-fetch-site", "same-origin"),
        ("sec-fetch-mode", "cors"),
    ])
    .await
    .unwrap();
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["code"],
        "MISSING_OR_NULL_ORIGIN"
    );
}

async fn content_types_and_json(b: Backend) {
    let app = spawn(b).await;
    let raw = |ct: Option<&'static str>, body: &'static str| {
        let mut r = app.client.post(app.url("/sign-in/email")).body(body);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        r.send()
    };
    let res = raw(Some("text/plain"), "hello").await.unwrap();
    assert_eq!(res.status(), 415);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap(),
        json!({"message": "Content-Type \"text/plain\" is not allowed. Allowed types: application/x-www-form-urlencoded, application/json", "code": "UNSUPPORTED_MEDIA_TYPE"})
    );
    let res = raw(Some("application/json"), "{\"email\":").await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap(),
        json!({"message": "Invalid JSON in request body", "code": "BAD_REQUEST"})
    );
    let res = raw(None, "{\"email\":\"a@b.co\",\"password\":\"x\"}")
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["code"],
        "VALIDATION_ERROR"
    );
    // Unknown paths and wrong methods on known paths: 404 with an empty body.
    for (m, p) in [
        (Method::GET, "/nope"),
        (Method::POST, "/list-sessions"),
        (Method::GET, "/sign-out"),
        (Method::GET, "/get-session/"),
    ] {
        let res = app
            .client
            .request(m.clone(), app.url(p))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{m} {p}");
        // Better Auth names no methods (axum's router would list them in Allow).
        assert!(res.headers().get("allow").is_none(), "{m} {p}");
        assert_eq!(res.text().await.unwrap(), "");
    }
    // Routing is by method and path: HEAD is not GET.
    for p in ["/ok", "/get-session"] {
        let res = app.client.head(app.url(p)).send().await.unwrap();
        assert_eq!(res.status(), 404, "HEAD {p}");
    }
    let res = app
        .client
        .get(format!("http://{}/elsewhere", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = app.client.get(app.url("/ok")).send().await.unwrap();
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap(),
        json!({"ok": true})
    );
}

async fn random_and_truncated_bodies_get_4xx(b: Backend) {
    let app = spawn(b).await;
    let email = unique_email();
    let (mut jar, _) = app.sign_up(&email).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let valid = json!({"name": "n", "email": "e@example.com", "password": "password-123", "token": "t",
        "currentPassword": "password-123", "newPassword": "password-456", "rememberMe": true, "theme": "x"}).to_string();
    let paths = [
        "/sign-up/email",
        "/sign-in/email",
        "/sign-out",
        "/get-session",
        "/revoke-session",
        "/revoke-sessions",
        "/revoke-other-sessions",
        "/update-session",
        "/update-user",
        "/change-password",
    ];
    for path in paths {
        let cookie = jar.header();
        let mut ended = false;
        for i in 0..25 {
            let body: Vec<u8> = match i % 5 {
                0 => (0..rng.gen_range(1..200)).map(|_| rng.gen()).collect(),
                1 => valid.as_bytes()[..rng.gen_range(1..valid.len())].to_vec(),
                2 => b"null".to_vec(),
                3 => format!("[{}]", rng.gen::<u32>()).into_bytes(),
                _ => format!(
                    "{{\"email\":{},\"password\":[1],\"token\":{{}}}}",
                    rng.gen::<i64>()
                )
                .into_bytes(),
            };
            for ct in [
                "application/json",
                "application/x-www-form-urlencoded",
                "text/plain",
            ] {
                let res = app
                    .client
                    .post(app.url(path))
                    .header("content-type", ct)
                    .header("origin", ORIGIN)
                    .header("cookie", cookie.clone())
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                let text = res.text().await.unwrap();
                ended |= status < 300 && ["/sign-out", "/revoke-sessions"].contains(&path);
                assert!(
                    status < 500,
                    "{path} {ct} {:?} -> {status} {text}",
                    String::from_utf8_lossy(&body)
                );
                if status >= 400 && !text.is_empty() {
                    let v: serde_json::Value =
                        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: {text}"));
                    assert!(v["message"].is_string(), "{path}: {text}");
                }
            }
        }
        // Garbage ends the session only where a sign-out or revoke-sessions answered
        // success, and such an answer did end it. Then a new one, so that the next route
        // reads its bodies as a signed-in client's.
        let alive = !app.session(&mut jar.clone()).await.is_null();
        assert_eq!(
            alive, !ended,
            "{path}: session alive {alive}, ended {ended}"
        );
        if !alive {
            jar = app.sign_in(&email, PASSWORD).await.0;
        }
    }
}
