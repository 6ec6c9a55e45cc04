//! What an attacker tries on the HTTP surface: every method on forward auth, preflights
//! outside the API, split `Cookie` headers, forged forwarding headers, hostile names and
//! redirect targets, caching of token-bearing answers, oversized strings.

use reqwest::Method;
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    forward_auth_is_2xx_only_with_a_session,
    cors_only_under_the_base_path_and_only_for_preflights,
    origin_check_reads_every_cookie_header,
    identity_headers_are_always_sent_and_decodable,
    redirect_targets_must_be_trusted,
    token_bearing_answers_are_not_stored,
    stored_strings_are_bounded,
    additional_text_fields_are_bounded,
    forwarded_addresses_only_from_trusted_proxies,
    rate_limits_key_by_route_not_by_raw_path,
    list_sessions_tokens_option,
    list_sessions_answers_the_newest_hundred,
);

fn port(app: &TestApp) -> u16 {
    app.addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// One request on a raw socket, so that any method and any header set can be sent.
fn raw(app: &TestApp, method: &str, path: &str, headers: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port(app))).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: sessiond.test\r\nConnection: close\r\n{headers}\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_ascii_lowercase(), body.to_string())
}

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO", "M-SEARCH",
    "PROPFIND",
];

async fn forward_auth_is_2xx_only_with_a_session(b: Backend) {
    let app = spawn_with(b, |s| {
        s.trusted_origins = vec!["https://app.example".into()]
    })
    .await;
    let paths = [
        "/forward-auth",
        "/forward-auth/",
        "/forward-auth/app/page",
        "/forward-auth/a%2F..%2Fb?x=1",
        "/forward-auth?redirect=0",
    ];
    let preflight = "Origin: https://app.example\r\nAccess-Control-Request-Method: GET\r\n";
    let junk = "Cookie: better-auth.session_token=forged.AAAA\r\nAuthorization: Bearer nope\r\n";
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    let cookie = format!("Cookie: {}\r\n", jar.header());
    for method in METHODS {
        for path in paths {
            for extra in ["", preflight, junk] {
                let (status, head, _) = raw(&app, method, path, extra);
                assert!(
                    !(200..300).contains(&status),
                    "anonymous {method} {path} {extra:?} -> {status}\n{head}"
                );
            }
            // With a session, every method and suffix passes, with the identity.
            let (status, head, _) = raw(&app, method, path, &cookie);
            assert_eq!(status, 200, "{method} {path}\n{head}");
            assert!(head.contains("x-auth-user-id:"), "{method} {path}\n{head}");
            // Even a real preflight with the session is answered as a check, not as CORS.
            let (status, head, _) = raw(&app, method, path, &format!("{cookie}{preflight}"));
            assert_eq!(status, 200, "{method} {path}\n{head}");
            assert!(!head.contains("access-control-allow-origin"), "{head}");
        }
    }
    // Lookalike paths are not forward auth.
    for path in [
        "/forward-authx",
        "/forward-auth.json",
        "/Forward-Auth",
        "//forward-auth",
    ] {
        let (status, _, _) = raw(&app, "GET", path, &cookie);
        assert_eq!(status, 404, "{path}");
    }
    assert_eq!(app.session(&mut jar).await["user"]["name"], "Test User");
}

async fn cors_only_under_the_base_path_and_only_for_preflights(b: Backend) {
    let app = spawn_with(b, |s| {
        s.trusted_origins = vec!["https://app.example".into()]
    })
    .await;
    let preflight = "Origin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n";
    // A real preflight under the base path from a trusted origin: granted.
    let (status, head, _) = raw(&app, "OPTIONS", "/api/auth/sign-in/email", preflight);
    assert!((200..300).contains(&status), "{head}");
    assert!(head.contains("access-control-allow-origin: https://app.example"));
    // OPTIONS that is not a preflight: Better Auth's 404.
    for extra in [
        "",
        "Origin: https://app.example\r\n",
        "Access-Control-Request-Method: POST\r\n",
    ] {
        let (status, head, _) = raw(&app, "OPTIONS", "/api/auth/get-session", extra);
        assert_eq!(status, 404, "{extra:?}\n{head}");
        assert!(!head.contains("\r\nallow:"), "{head}");
        assert!(!head.contains("access-control-allow"), "{head}");
    }
    // Preflights for paths that are not routes, or that leave the base path through dot
    // segments a proxy might resolve later, are not granted either.
    for path in [
        "/api/auth/no-such-route",
        "/api/auth/../../forward-auth",
        "/api/auth/%2e%2e/%2e%2e/forward-auth",
        "/api/auth/..%2f..%2fforward-auth",
        "/api/auth/get-session/",
        "/api/auth/get-session/..",
    ] {
        let (status, head, _) = raw(&app, "OPTIONS", path, preflight);
        assert!(!(200..300).contains(&status), "{path}: {status}\n{head}");
        assert!(!head.contains("access-control-allow"), "{path}\n{head}");
    }
    // Outside the base path there is no CORS at all.
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/elsewhere",
    ] {
        let (status, head, _) = raw(&app, "OPTIONS", path, preflight);
        assert!(!(200..300).contains(&status), "{path}: {status}\n{head}");
        assert!(!head.contains("access-control-allow"), "{path}\n{head}");
        let (_, head, _) = raw(&app, "GET", path, "Origin: https://app.example\r\n");
        assert!(!head.contains("access-control-allow"), "{path}\n{head}");
    }
}

async fn origin_check_reads_every_cookie_header(b: Backend) {
    let app = spawn(b).await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    // An empty first Cookie header must not hide the session cookie in the second.
    for first in ["Cookie: \r\n", "Cookie: ;\r\n", "Cookie: unrelated=1\r\n"] {
        let headers = format!("{first}Cookie: {}\r\nContent-Length: 0\r\n", jar.header());
        let (status, _, body) = raw(&app, "POST", "/api/auth/revoke-sessions", &headers);
        assert_eq!(status, 403, "{first:?}: {body}");
        assert!(body.contains("MISSING_OR_NULL_ORIGIN"), "{body}");
    }
    // Two Origin (or Referer) headers, in either order: refused, whichever is trusted.
    for two in [
        format!("Origin: {ORIGIN}\r\nOrigin: https://evil.example\r\n"),
        format!("Origin: https://evil.example\r\nOrigin: {ORIGIN}\r\n"),
        format!("Referer: {ORIGIN}/\r\nReferer: https://evil.example/\r\n"),
    ] {
        let headers = format!("{two}Cookie: {}\r\nContent-Length: 0\r\n", jar.header());
        let (status, _, body) = raw(&app, "POST", "/api/auth/revoke-sessions", &headers);
        assert_eq!(status, 403, "{two:?}: {body}");
        assert!(body.contains("INVALID_ORIGIN"), "{body}");
    }
    assert_eq!(app.session(&mut jar).await["user"]["name"], "Test User");
}

/// `decodeURIComponent`, as a proxy's upstream would apply it.
fn decode(v: &str) -> String {
    percent_encoding::percent_decode_str(v)
        .decode_utf8()
        .unwrap()
        .to_string()
}

async fn identity_headers_are_always_sent_and_decodable(b: Backend) {
    let app = spawn(b).await;
    let names = [
        "Plain Name",
        "Zoë",
        "50% off",
        "%41",
        " padded ",
        "tab\there",
        "line\nbreak\r\nX-Injected: 1",
        "bell\u{7}del\u{7f}",
        "a;b,c\"d'e",
    ];
    for name in names {
        let mut jar = Jar::default();
        let res = app
            .post(
                "/sign-up/email",
                json!({"name": name, "email": unique_email(), "password": PASSWORD}),
                &mut jar,
            )
            .await;
        assert_eq!(res.status, 200, "{name:?}: {}", res.text);
        let (status, head, _) = raw(
            &app,
            "GET",
            "/forward-auth",
            &format!("Cookie: {}\r\n", jar.header()),
        );
        assert_eq!(status, 200);
        let header = head
            .lines()
            .find_map(|l| l.strip_prefix("x-auth-name: "))
            .unwrap_or_else(|| panic!("no x-auth-name for {name:?}\n{head}"));
        // The header was lower-cased with the head: compare case-insensitively.
        assert_eq!(
            decode(header).to_lowercase(),
            name.to_lowercase(),
            "{name:?}"
        );
        assert!(!head.lines().any(|l| l.starts_with("x-injected")), "{head}");
    }
    // NUL cannot be stored (PostgreSQL refuses it in text): a clear 400, never a 500.
    for body in [
        json!({"name": "a\u{0}b", "email": unique_email(), "password": PASSWORD}),
        json!({"name": "ok", "email": unique_email(), "password": PASSWORD, "image": "x\u{0}"}),
    ] {
        let res = app.post("/sign-up/email", body, &mut Jar::default()).await;
        assert_eq!(res.status, 400, "{}", res.text);
        assert_eq!(res.code().as_deref(), Some("VALIDATION_ERROR"));
    }
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    let res = app
        .post("/update-user", json!({"name": "x\u{0}"}), &mut jar)
        .await;
    assert_eq!(res.status, 400, "{}", res.text);
}

async fn redirect_targets_must_be_trusted(b: Backend) {
    let app = spawn_with(b, |s| {
        s.forward_auth.sign_in_url = "https://app.example/login".into();
        s.trusted_origins = vec![
            "https://app.example".into(),
            "https://*.tenants.example".into(),
        ];
    })
    .await;
    let url = format!("http://{}/forward-auth?redirect=1", app.addr);
    let location = |headers: Vec<(&'static str, String)>| {
        let mut req = app.client.get(&url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 302);
            res.headers()["location"].to_str().unwrap().to_string()
        }
    };
    // Trusted origins keep their original URL.
    for (host, expect) in [
        ("app.example", "https%3A%2F%2Fapp.example%2Fp"),
        (
            "acme.tenants.example",
            "https%3A%2F%2Facme.tenants.example%2Fp",
        ),
    ] {
        let loc = location(vec![
            ("x-forwarded-proto", "https".into()),
            ("x-forwarded-host", host.into()),
            ("x-forwarded-uri", "/p".into()),
        ])
        .await;
        assert_eq!(loc, format!("https://app.example/login?rd={expect}"));
    }
    // A trusted URL is passed on as parsed, so that every parser reads the same host.
    let loc = location(vec![(
        "x-original-url",
        "https://app.example\\@evil.example/".to_string(),
    )])
    .await;
    assert_eq!(
        loc,
        "https://app.example/login?rd=https%3A%2F%2Fapp.example%2F%40evil.example%2F"
    );
    // A trusted URL whose path resolves to `//host` is dropped: the plain sign-in URL.
    for uri in ["/..//evil.example", "//evil.example", "/.//evil.example/x"] {
        let loc = location(vec![
            ("x-forwarded-proto", "https".into()),
            ("x-forwarded-host", "app.example".into()),
            ("x-forwarded-uri", uri.into()),
        ])
        .await;
        assert_eq!(loc, "https://app.example/login", "{uri}");
    }
    // callbackURLs that parsers read differently, or whose path is `//host`, are refused.
    for cb in [
        "https://app.example\\@evil.example/",
        "https://app.example/\tx",
        "/a\\b",
        "https://app.example//evil.example",
        "https://app.example/..//evil.example",
    ] {
        let res = app
            .post(
                "/sign-in/email",
                json!({"email": "x@example.com", "password": "p", "callbackURL": cb}),
                &mut Jar::default(),
            )
            .await;
        assert_eq!(res.status, 403, "{cb}: {}", res.text);
        assert_eq!(res.code().as_deref(), Some("INVALID_CALLBACK_URL"));
    }
    // Anything else is dropped: the sign-in page is still the target, without `rd`.
    for headers in [
        vec![
            ("x-forwarded-host", "evil.example".to_string()),
            ("x-forwarded-uri", "/p".into()),
        ],
        vec![("x-original-url", "javascript:alert(1)".to_string())],
        vec![("x-original-url", "https://evil.example/".to_string())],
        vec![("x-original-url", "//evil.example/x".to_string())],
        vec![(
            "x-original-url",
            "https://app.example@evil.example/".to_string(),
        )],
        vec![
            ("x-forwarded-proto", "javascript".to_string()),
            ("x-forwarded-host", "app.example".into()),
            ("x-forwarded-uri", "/p".into()),
        ],
        vec![
            ("x-forwarded-host", "app.example".to_string()),
            ("x-forwarded-uri", "@evil.example/p".into()),
        ],
    ] {
        let loc = location(headers.clone()).await;
        assert_eq!(loc, "https://app.example/login", "{headers:?}");
    }
}

/// An app whose sessions have an additional text field, `theme`.
async fn with_theme_field(b: Backend) -> TestApp {
    spawn_with(b, |s| {
        s.session.additional_fields = [(
            "theme".to_string(),
            serde_json::from_value(json!({"type": "string"})).unwrap(),
        )]
        .into()
    })
    .await
}

async fn token_bearing_answers_are_not_stored(b: Backend) {
    let app = with_theme_field(b).await;
    let email = unique_email();
    let (mut jar, res) = app.sign_up(&email).await;
    let mut answers = vec![("sign-up", res)];
    answers.push(("sign-in", app.sign_in(&email, PASSWORD).await.1));
    answers.push(("get-session", app.get("/get-session", &mut jar).await));
    answers.push(("list-sessions", app.get("/list-sessions", &mut jar).await));
    answers.push((
        "update-session",
        app.post("/update-session", json!({"theme": "dark"}), &mut jar)
            .await,
    ));
    answers.push((
        "change-password",
        app.post(
            "/change-password",
            json!({"currentPassword": PASSWORD, "newPassword": "another-password-1", "revokeOtherSessions": true}),
            &mut jar,
        )
        .await,
    ));
    answers.push(("sign-out", app.post("/sign-out", json!({}), &mut jar).await));
    for (name, res) in answers {
        assert_eq!(res.status, 200, "{name}: {}", res.text);
        assert_eq!(
            res.header("cache-control").as_deref(),
            Some("no-store"),
            "{name}"
        );
    }
}

async fn stored_strings_are_bounded(b: Backend) {
    let app = spawn(b).await;
    // A browser cannot shorten its User-Agent: it is stored truncated.
    let email = unique_email();
    let ua = "U".repeat(12_000);
    let res = app
        .send(
            Method::POST,
            "/sign-up/email",
            Some(json!({"name": "n", "email": email, "password": PASSWORD})),
            None,
            &[("user-agent", &ua)],
        )
        .await;
    assert_eq!(res.status, 200);
    let stored = app
        .count(r#"select cast(max(length("userAgent")) as bigint) from "session""#)
        .await;
    assert!(stored <= 512, "userAgent of {stored} characters stored");
    // Fields the client chooses are refused beyond their limits, with Better Auth's shape.
    for (field, len) in [("name", 300), ("image", 20_000)] {
        let mut body = json!({"name": "n", "email": unique_email(), "password": PASSWORD});
        body[field] = json!("x".repeat(len));
        let res = app.post("/sign-up/email", body, &mut Jar::default()).await;
        assert_eq!(res.status, 400, "{field}: {}", res.text);
        assert_eq!(res.code().as_deref(), Some("VALIDATION_ERROR"));
        assert!(res.json()["message"].as_str().unwrap().contains(field));
    }
    let long_email = format!("{}@example.com", "a".repeat(300));
    let res = app
        .post(
            "/sign-up/email",
            json!({"name": "n", "email": long_email, "password": PASSWORD}),
            &mut Jar::default(),
        )
        .await;
    assert_eq!(res.status, 400, "{}", res.text);
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    let res = app
        .post("/update-user", json!({"name": "y".repeat(300)}), &mut jar)
        .await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert!(
        app.count(r#"select cast(max(length("name")) as bigint) from "user""#)
            .await
            <= 256
    );
}

async fn additional_text_fields_are_bounded(b: Backend) {
    let app = with_theme_field(b).await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    for bad in [json!("t".repeat(1_025)), json!("dark\u{0}")] {
        let res = app
            .post("/update-session", json!({ "theme": bad }), &mut jar)
            .await;
        assert_eq!(res.status, 400, "{}", res.text);
        assert_eq!(res.code().as_deref(), Some("VALIDATION_ERROR"));
    }
    let res = app
        .post(
            "/update-session",
            json!({"theme": "t".repeat(1_024)}),
            &mut jar,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
}

async fn forwarded_addresses_only_from_trusted_proxies(b: Backend) {
    // The test client connects from 127.0.0.1, which is not a trusted proxy here.
    let app = spawn_with(b, |s| {
        s.advanced.ip_address.trusted_proxies = vec!["10.0.0.0/8".into()];
        s.rate_limit.enabled = Some(true);
    })
    .await;
    let email = unique_email();
    app.sign_up(&email).await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let forged = format!("203.0.113.{i}");
        let res = app
            .send(
                Method::POST,
                "/sign-in/email",
                Some(json!({"email": email, "password": PASSWORD})),
                None,
                &[("x-forwarded-for", &forged)],
            )
            .await;
        statuses.push(res.status.as_u16());
    }
    // Sign-up counted as one of the three per window: rotation does not dodge the limit.
    assert!(statuses.contains(&429), "{statuses:?}");
    let forged = app
        .count(r#"select count(*) from "session" where "ipAddress" like '203.0.113.%'"#)
        .await;
    assert_eq!(forged, 0, "a forged address was recorded");
    // From a trusted proxy, the right-most untrusted hop is the client.
    let app = spawn_with(b, |s| {
        s.advanced.ip_address.trusted_proxies = vec!["127.0.0.1".into()]
    })
    .await;
    let email = unique_email();
    app.sign_up(&email).await;
    let res = app
        .send(
            Method::POST,
            "/sign-in/email",
            Some(json!({"email": email, "password": PASSWORD})),
            None,
            &[("x-forwarded-for", "198.51.100.7, 192.0.2.1")],
        )
        .await;
    assert_eq!(res.status, 200);
    let mut jar = Jar::default();
    jar.absorb(&res);
    assert_eq!(
        app.session(&mut jar).await["session"]["ipAddress"],
        "192.0.2.1"
    );
    // Repeated header lines are one list: the line a proxy adds last is the one believed.
    let res = app
        .client
        .post(app.url("/sign-in/email"))
        .header("origin", ORIGIN)
        .header("x-forwarded-for", "198.51.100.99")
        .header("x-forwarded-for", "192.0.2.55")
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let s: Value = app
        .client
        .get(app.url("/get-session"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["session"]["ipAddress"], "192.0.2.55");
}

async fn rate_limits_key_by_route_not_by_raw_path(b: Backend) {
    let app = spawn_with(b, |s| s.rate_limit.enabled = Some(true)).await;
    let mut limited = 0;
    for i in 0..150 {
        let res = app
            .client
            .get(app.url(&format!("/no-such-route-{i}")))
            .send()
            .await
            .unwrap();
        if res.status() == 429 {
            limited += 1;
        }
    }
    // Unknown paths share one bucket (100 per 10 s by default), not one bucket each.
    assert!(limited >= 40, "{limited} limited");
    // Known routes keep their own buckets.
    let res = app.client.get(app.url("/ok")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

async fn list_sessions_tokens_option(b: Backend) {
    for (mode, expect_own, expect_other) in [
        ("all", true, true),
        ("current", true, false),
        ("none", false, false),
    ] {
        let app = spawn_with(b, |s| {
            s.session.list_sessions_tokens = serde_json::from_value(json!(mode)).unwrap()
        })
        .await;
        let email = unique_email();
        let (mut jar, _) = app.sign_up(&email).await;
        let (_, other) = app.sign_in(&email, PASSWORD).await;
        let other_token = other.json()["token"].as_str().unwrap().to_string();
        let own = app.session(&mut jar).await["session"].clone();
        let own_token = own["token"].clone();
        let res = app.get("/list-sessions", &mut jar).await;
        assert_eq!(res.status, 200);
        let list = res.json();
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 2);
        let text = res.text.clone();
        assert_eq!(
            text.contains(other_token.as_str()),
            expect_other,
            "{mode}: {text}"
        );
        assert_eq!(
            text.contains(own_token.as_str().unwrap_or("?")),
            expect_own,
            "{mode}"
        );
        // Revoking by id works whatever the mode.
        let other_id = list
            .iter()
            .find(|s| s["id"] != own["id"])
            .map(|s| s["id"].clone())
            .unwrap();
        let res = app
            .post("/revoke-session", json!({"id": other_id}), &mut jar)
            .await;
        assert_eq!(res.status, 200);
        let res = app.get("/list-sessions", &mut jar).await;
        assert_eq!(res.json().as_array().unwrap().len(), 1, "{mode}");
        let _: Value = res.json();
    }
}

/// A user may hold any number of sessions, but list-sessions answers the newest 100 (as
/// Better Auth's adapters do), so its answer cannot be grown without bound.
async fn list_sessions_answers_the_newest_hundred(b: Backend) {
    let app = spawn(b).await;
    let (mut jar, res) = app.sign_up(&unique_email()).await;
    let token = res.json()["token"].as_str().unwrap().to_string();
    let uid = res.json()["user"]["id"].as_str().unwrap().to_string();
    let rows: Vec<String> = (0..150)
        .map(|i| {
            format!(
                "('old-{i}','old-token-{i}','{uid}','2099-01-01T00:00:00.000Z','2000-01-01T00:{:02}:{:02}.000Z','2000-01-01T00:00:00.000Z','10.0.0.1','{}')",
                i / 60,
                i % 60,
                "u".repeat(512)
            )
        })
        .collect();
    app.exec(&format!(
        r#"insert into "session" ("id","token","userId","expiresAt","createdAt","updatedAt","ipAddress","userAgent") values {}"#,
        rows.join(",")
    ))
    .await;
    let res = app.get("/list-sessions", &mut jar).await;
    assert_eq!(res.status, 200);
    let list = res.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 100);
    assert_eq!(
        list[99]["token"],
        token.as_str(),
        "newest last, the caller's included"
    );
    assert_eq!(list[0]["id"], "old-51", "the oldest listed");
    assert!(list.iter().all(|s| s["id"] != "old-50"));
    // The unlisted ones are still sessions: revoke-sessions ends them all.
    assert_eq!(app.count(r#"select count(*) from "session""#).await, 151);
    app.post("/revoke-sessions", json!({}), &mut jar).await;
    assert_eq!(app.count(r#"select count(*) from "session""#).await, 0);
}
