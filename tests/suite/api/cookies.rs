//! `advanced.cookies`: renamed session cookies read and written on every route that reads
//! or writes them (forward auth included, cache chunks too), the `__Secure-` rule over the
//! new names, and each cookie's own attributes over `default_cookie_attributes`.

use reqwest::Method;
use serde_json::{json, Value};
use sessiond::config::SameSite;

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    renamed_cookies_are_read_and_written_everywhere,
    the_secure_prefix_still_comes_before_a_renamed_cookie,
    each_cookie_has_its_own_attributes,
);

/// `name=value` and the attributes of each `Set-Cookie` line, value left out.
fn shapes(res: &Res) -> Vec<String> {
    res.set_cookies()
        .iter()
        .map(|l| {
            let (first, attrs) = l.split_once("; ").unwrap_or((l, ""));
            let name = first.split('=').next().unwrap();
            format!("{name}; {attrs}")
        })
        .collect()
}

fn names(res: &Res) -> Vec<String> {
    res.set_cookies()
        .iter()
        .map(|l| l.split('=').next().unwrap().to_owned())
        .collect()
}

async fn forward_auth(app: &TestApp, jar: &Jar) -> Res {
    let res = app
        .client
        .request(Method::GET, format!("http://{}/forward-auth", app.addr))
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    Res {
        status: res.status(),
        headers: res.headers().clone(),
        text: res.text().await.unwrap(),
    }
}

async fn renamed_cookies_are_read_and_written_everywhere(b: Backend) {
    let app = spawn_with(b, |s| {
        s.session.cookie_cache.enabled = true;
        // Rows deleted behind the cache's back show what the cache alone answers.
        s.session.cookie_cache.immediate_revocation = false;
        s.advanced.cookies.session_token.name = "sid".into();
        s.advanced.cookies.session_data.name = "sid_cache".into();
        s.advanced.cookies.dont_remember.name = "sid_once".into();
    })
    .await;
    let email = unique_email();
    let (mut jar, res) = app.sign_up(&email).await;
    assert_eq!(names(&res), ["sid", "sid_cache"]);
    let user_id = res.json()["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.session(&mut jar).await["user"]["email"], email.as_str());
    let fa = forward_auth(&app, &jar).await;
    assert_eq!(fa.status, 200, "{}", fa.text);
    assert_eq!(
        fa.header("x-auth-user-id").as_deref(),
        Some(user_id.as_str())
    );

    // Under Better Auth's default names the same values are no session.
    let mut defaults = Jar::default();
    for (name, value) in &jar.cookies {
        let key = name.replace("sid_cache", "better-auth.session_data");
        let key = if key == "sid" {
            TOKEN_COOKIE.to_owned()
        } else {
            key
        };
        defaults.cookies.insert(key, value.clone());
    }
    assert_eq!(
        app.get("/get-session", &mut defaults).await.json(),
        Value::Null
    );
    assert_eq!(forward_auth(&app, &defaults).await.status, 401);

    // A large cache is chunked under the new name, and read back from its chunks.
    let image = format!("https://img.example/{}", "x".repeat(6000));
    let res = app
        .post("/update-user", json!({"image": image}), &mut jar)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        names(&res),
        [
            "sid",
            "sid_cache.0",
            "sid_cache.1",
            "sid_cache.2",
            "sid_cache"
        ]
    );
    assert!(res.cookie("sid_cache").unwrap().contains("Max-Age=0"));
    app.exec(r#"delete from "session""#).await;
    assert_eq!(app.session(&mut jar).await["user"]["image"], image.as_str());
    assert_eq!(forward_auth(&app, &jar).await.status, 200);

    // A browser-session sign-in sets the renamed flag; sign-out expires every cookie,
    // chunks included.
    let (_, res) = app.sign_in_unremembered(&email).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(names(&res)[..2], ["sid", "sid_once"]);
    assert!(!res.cookie("sid").unwrap().contains("Max-Age"));
    let res = app.post("/sign-out", json!({}), &mut jar).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let chunks = ["sid_cache.0", "sid_cache.1", "sid_cache.2"];
    assert_eq!(
        names(&res),
        [&["sid", "sid_cache"][..], &chunks, &["sid_once"]].concat()
    );
    assert!(res.set_cookies().iter().all(|l| l.contains("Max-Age=0")));
    assert!(jar.cookies.is_empty(), "{:?}", jar.cookies);
}

async fn the_secure_prefix_still_comes_before_a_renamed_cookie(b: Backend) {
    let app = spawn_with(b, |s| {
        s.base_url = "https://auth.example.com".into();
        s.trusted_origins = vec![ORIGIN.into()];
        s.advanced.cookies.session_token.name = "sid".into();
    })
    .await;
    let (mut jar, res) = app.sign_up(&unique_email()).await;
    assert_eq!(
        shapes(&res),
        ["__Secure-sid; Max-Age=604800; Path=/; HttpOnly; Secure; SameSite=Lax"]
    );
    assert_ne!(app.session(&mut jar).await, Value::Null);
    assert_eq!(forward_auth(&app, &jar).await.status, 200);
    // The bare name is not the session cookie.
    let value = jar.get("__Secure-sid").unwrap().clone();
    let mut bare = Jar::default();
    bare.cookies.insert("sid".into(), value);
    assert_eq!(app.get("/get-session", &mut bare).await.json(), Value::Null);
    assert_eq!(forward_auth(&app, &bare).await.status, 401);
}

async fn each_cookie_has_its_own_attributes(b: Backend) {
    let app = spawn_with(b, |s| {
        s.session.cookie_cache.enabled = true;
        let adv = &mut s.advanced;
        adv.default_cookie_attributes.same_site = Some(SameSite::Strict);
        adv.default_cookie_attributes.domain = "sessiond.test".into();
        adv.cookies.session_token.attributes.path = "/api".into();
        adv.cookies.session_data.attributes.same_site = Some(SameSite::None);
        adv.cookies.dont_remember.attributes.partitioned = Some(true);
        adv.cookies.dont_remember.attributes.domain = "auth.sessiond.test".into();
    })
    .await;
    let email = unique_email();
    app.sign_up(&email).await;
    let (mut jar, res) = app.sign_in_unremembered(&email).await;
    let (token, flag, data) = (
        "better-auth.session_token; Domain=sessiond.test; Path=/api; HttpOnly; SameSite=Strict",
        "better-auth.dont_remember; Domain=auth.sessiond.test; Path=/; HttpOnly; Secure; \
         SameSite=Strict; Partitioned",
        "better-auth.session_data; Domain=sessiond.test; Path=/; HttpOnly; Secure; SameSite=None",
    );
    assert_eq!(shapes(&res), [token, flag, data]);
    // Expired with the attributes they were set with (the cache twice, as Better Auth:
    // once by name, once as a carried cache cookie).
    let res = app.post("/sign-out", json!({}), &mut jar).await;
    let expired = |shape: &str| {
        let (name, attrs) = shape.split_once("; ").unwrap();
        format!("{name}; Max-Age=0; {attrs}")
    };
    assert_eq!(
        shapes(&res),
        [expired(token), expired(data), expired(data), expired(flag)]
    );
}
