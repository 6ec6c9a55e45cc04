//! End to end against Better Auth's own exchange: the vectors' user and session rows,
//! the vectors' secret and frozen clock, and the vectors' request cookie must produce the
//! exact response body and session cookie that Better Auth 1.7.25 produced.

use serde_json::Value;

use crate::on_both_backends;
use crate::support::vectors::vectors;
use crate::support::*;

on_both_backends!(
    get_session_matches_better_auth_exchange,
    unprefixed_cookie_is_ignored_under_secure_prefix
);

async fn seed(app: &TestApp, v: &Value) {
    let u = &v["inputs"]["db_user_row"];
    let s = &v["inputs"]["db_session_row"];
    let q = |x: &Value| {
        x.as_str().map_or("null".to_string(), |t| {
            format!("'{}'", t.replace('\'', "''"))
        })
    };
    let (t, f) = if app.backend == Backend::Postgres {
        ("true", "false")
    } else {
        ("1", "0")
    };
    let verified = if u["emailVerified"].as_bool().unwrap() {
        t
    } else {
        f
    };
    app.exec(&format!(
        r#"insert into "user" ("id","name","email","emailVerified","image","createdAt","updatedAt") values ({},{},{},{},{},{},{})"#,
        q(&u["id"]), q(&u["name"]), q(&u["email"]), verified, q(&u["image"]), q(&u["createdAt"]), q(&u["updatedAt"])
    ))
    .await;
    app.exec(&format!(
        r#"insert into "session" ("id","token","userId","expiresAt","createdAt","updatedAt","ipAddress","userAgent") values ({},{},{},{},{},{},{},{})"#,
        q(&s["id"]), q(&s["token"]), q(&s["userId"]), q(&s["expiresAt"]), q(&s["createdAt"]), q(&s["updatedAt"]), q(&s["ipAddress"]), q(&s["userAgent"])
    ))
    .await;
}

async fn get_session_matches_better_auth_exchange(b: Backend) {
    let v = vectors();
    let secret = v["inputs"]["secret"].as_str().unwrap().to_string();
    let app = spawn_with(b, |s| {
        s.secret = secret.into();
        s.base_url = "http://localhost:3000".into();
    })
    .await;
    app.clock
        .set_ms(v["generator"]["frozen_clock"]["now_ms"].as_i64().unwrap());
    seed(&app, &v).await;
    let ex = &v["cookie_cache"]["compact"];
    let cookie = ex["request"]["cookie"].as_str().unwrap();
    let res = app
        .send(
            reqwest::Method::GET,
            "/get-session",
            None,
            None,
            &[("cookie", cookie)],
        )
        .await;
    assert_eq!(res.status, 200);
    // Byte-identical body: same keys, order, dates and non-ASCII text.
    assert_eq!(
        res.text,
        serde_json::to_string(&ex["response_body"]).unwrap()
    );
    // The refresh re-issued the session cookie exactly as Better Auth did.
    assert_eq!(
        res.cookie(TOKEN_COOKIE).unwrap(),
        ex["response_set_cookie"][0].as_str().unwrap()
    );
}

async fn unprefixed_cookie_is_ignored_under_secure_prefix(b: Backend) {
    let v = vectors();
    let var = &v["cookie_variants"]["https_custom_prefix_cross_subdomain"];
    let secret = v["inputs"]["secret"].as_str().unwrap().to_string();
    let app = spawn_with(b, |s| {
        s.secret = secret.into();
        s.base_url = "https://auth.example.com".into();
        s.session.expires_in = 2_592_000;
        s.advanced.cookie_prefix = "myapp".into();
        s.advanced.cross_sub_domain_cookies.enabled = true;
        s.advanced.cross_sub_domain_cookies.domain = "example.com".into();
    })
    .await;
    app.clock
        .set_ms(v["generator"]["frozen_clock"]["now_ms"].as_i64().unwrap());
    seed(&app, &v).await;
    let good = var["request_cookie"].as_str().unwrap();
    let res = app
        .send(
            reqwest::Method::GET,
            "/get-session",
            None,
            None,
            &[("cookie", good)],
        )
        .await;
    assert_eq!(
        res.json()["session"]["token"],
        v["inputs"]["db_session_row"]["token"]
    );
    assert_eq!(
        res.set_cookies()[0],
        var["response_set_cookie"][0].as_str().unwrap()
    );
    let unprefixed = good.replace("__Secure-myapp.", "better-auth.");
    let res = app
        .send(
            reqwest::Method::GET,
            "/get-session",
            None,
            None,
            &[("cookie", &unprefixed)],
        )
        .await;
    assert_eq!(
        res.json(),
        var["same_token_under_unprefixed_name_response_body"]
    );
}
