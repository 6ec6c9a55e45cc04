//! CORS for frontends on other trusted origins, and cookies shared with subdomains.

use serde_json::json;

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(cors_grants_trusted_origins_only, cross_sub_domain_cookies);

async fn cors_grants_trusted_origins_only(b: Backend) {
    let app = spawn_with(b, |s| {
        s.trusted_origins = vec![
            "https://app.example".into(),
            "https://*.tenants.example".into(),
        ]
    })
    .await;
    let url = app.url("/sign-in/email");
    for origin in ["https://app.example", "https://acme.tenants.example"] {
        let res = app
            .client
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{origin}: {}", res.status());
        let h = res.headers();
        assert_eq!(h["access-control-allow-origin"], origin);
        assert_eq!(h["access-control-allow-credentials"], "true");
        assert!(h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST"));
        assert!(h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_lowercase()
            .contains("content-type"));
        assert!(h.get_all("vary").iter().any(|v| v
            .to_str()
            .unwrap()
            .to_lowercase()
            .contains("origin")));
    }
    // The actual response carries the grant too, with the exact origin, never "*".
    let res = app
        .client
        .get(app.url("/get-session"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    // Every answer under the base path, preflight or not, with an origin or without, names
    // what it varies with, once; forward auth (no CORS) does not.
    const VARY: &str = "origin, access-control-request-method, access-control-request-headers";
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    for r in [&res, &preflight] {
        let vary: Vec<_> = r.headers().get_all("vary").iter().collect();
        assert_eq!(vary, [VARY], "{}", r.url());
    }
    let mut jar = Jar::default();
    let plain = app.get("/get-session", &mut jar).await;
    let vary: Vec<_> = plain.headers.get_all("vary").iter().collect();
    assert_eq!(vary, [VARY]);
    assert!(app
        .client
        .get(format!("http://{}/forward-auth", app.addr))
        .send()
        .await
        .unwrap()
        .headers()
        .get("vary")
        .is_none());
    // Untrusted origins get no grant at all.
    for origin in ["https://evil.example", "https://app.example.evil", "null"] {
        let res = app
            .client
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert!(
            res.headers().get("access-control-allow-origin").is_none(),
            "{origin}"
        );
        let res = app
            .client
            .get(app.url("/get-session"))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert!(
            res.headers().get("access-control-allow-origin").is_none(),
            "{origin}"
        );
        assert!(
            res.headers()
                .get("access-control-allow-credentials")
                .is_none(),
            "{origin}"
        );
    }
}

async fn cross_sub_domain_cookies(b: Backend) {
    let app = spawn_with(b, |s| {
        s.base_url = "https://auth.example.com".into();
        s.advanced.cross_sub_domain_cookies.enabled = true;
        s.advanced.cross_sub_domain_cookies.domain = "example.com".into();
        s.trusted_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let email = unique_email();
    let res = app
        .client
        .post(app.url("/sign-up/email"))
        .header("origin", "https://app.example.com")
        .json(&json!({"name": "n", "email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("__Secure-better-auth.session_token="),
        "{cookie}"
    );
    assert!(
        cookie.ends_with(
            "; Max-Age=604800; Domain=example.com; Path=/; HttpOnly; Secure; SameSite=Lax"
        ),
        "{cookie}"
    );
    // Without an explicit domain, the base URL's host is used.
    let app = spawn_with(b, |s| {
        s.base_url = "https://auth.example.com".into();
        s.advanced.cross_sub_domain_cookies.enabled = true;
    })
    .await;
    let res = app
        .client
        .post(app.url("/sign-up/email"))
        .json(&json!({"name": "n", "email": unique_email(), "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("; Domain=auth.example.com;"), "{cookie}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_cookie_attributes() {
    let app = spawn_with(Backend::Sqlite, |s| {
        s.advanced.default_cookie_attributes.same_site = Some(sessiond::config::SameSite::None);
        s.advanced.default_cookie_attributes.partitioned = Some(true);
    })
    .await;
    let (_, res) = app.sign_up(&unique_email()).await;
    let cookie = res.cookie(TOKEN_COOKIE).unwrap();
    assert!(
        cookie.ends_with("; Max-Age=604800; Path=/; HttpOnly; Secure; SameSite=None; Partitioned"),
        "{cookie}"
    );
}
