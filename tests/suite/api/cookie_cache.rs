//! The `session_data` cookie cache in each strategy: written and re-written by Better
//! Auth's rules, served without touching the store, refused when invalid, expired,
//! version- or token-mismatched, chunked when large; and stateless mode.

use serde_json::{json, Value};
use sessiond::crypto::cache::Strategy;

use crate::on_both_backends;
use crate::support::*;

const DATA: &str = "better-auth.session_data";
const STRATEGIES: [Strategy; 3] = [Strategy::Compact, Strategy::Jwt, Strategy::Jwe];

on_both_backends!(
    cache_hit_reads_no_store,
    cache_is_refused_when_tampered_expired_or_mismatched,
    sensitive_routes_bypass_the_cache,
    version_change_invalidates_the_cache,
    large_cache_is_chunked,
    dont_remember_cache_has_no_max_age,
    another_users_cache_never_answers_for_a_token,
    a_remembered_answer_is_the_same_answer,
);

/// An app with the cache on and Better Auth's semantics (no immediate revocation), so
/// that deleting rows behind the cache's back shows what the cache alone answers.
async fn cached_app(b: Backend, strategy: Strategy) -> TestApp {
    spawn_with(b, |s| {
        s.session.cookie_cache.enabled = true;
        s.session.cookie_cache.strategy = Some(strategy);
        s.session.cookie_cache.immediate_revocation = false;
    })
    .await
}

async fn cache_hit_reads_no_store(b: Backend) {
    for strategy in STRATEGIES {
        let app = cached_app(b, strategy).await;
        let (mut jar, res) = app.sign_up(&unique_email()).await;
        let lines = res.set_cookies();
        assert_eq!(lines.len(), 2, "{strategy:?}: {lines:?}");
        assert!(lines[0].starts_with(TOKEN_COOKIE));
        assert!(lines[1].starts_with(&format!("{DATA}=")), "{strategy:?}");
        assert!(lines[1].ends_with("; Max-Age=300; Path=/; HttpOnly; SameSite=Lax"));
        let before = app.session(&mut jar).await;
        // Delete the row behind the cache's back: a cache hit never reads the store.
        app.exec(r#"delete from "session""#).await;
        let res = app.get("/get-session", &mut jar).await;
        assert_eq!(res.json(), before, "{strategy:?}: served from the cache");
        assert!(
            res.set_cookies().is_empty(),
            "{strategy:?}: no refresh from the cache"
        );
        // Forcing the store shows the truth and clears everything.
        let res = app
            .get("/get-session?disableCookieCache=true", &mut jar)
            .await;
        assert_eq!(res.json(), Value::Null, "{strategy:?}");
        assert!(res.cookie(TOKEN_COOKIE).unwrap().contains("Max-Age=0"));
    }
}

async fn cache_is_refused_when_tampered_expired_or_mismatched(b: Backend) {
    for strategy in STRATEGIES {
        let app = cached_app(b, strategy).await;
        let email = unique_email();
        let (mut jar, _) = app.sign_up(&email).await;
        let (other, _) = app.sign_in(&email, PASSWORD).await;
        let good = jar.get(DATA).unwrap().clone();

        // Tampered: refused, expired, and the store answers (writing a fresh cache).
        let mut bad = jar.clone();
        let mut t = good.clone().into_bytes();
        let mid = t.len() / 2;
        t[mid] = if t[mid] == b'A' { b'B' } else { b'A' };
        bad.cookies
            .insert(DATA.into(), String::from_utf8(t).unwrap());
        let res = app.get("/get-session", &mut bad).await;
        let lines = res.set_cookies();
        assert_eq!(
            lines[0],
            format!("{DATA}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"),
            "{strategy:?}"
        );
        assert!(
            lines[1].starts_with(&format!("{DATA}=")) && lines[1].contains("Max-Age=300"),
            "{strategy:?}: {lines:?}"
        );
        assert_ne!(res.json(), Value::Null);

        // Another session's cache with this session's token: refused.
        let mut mixed = jar.clone();
        mixed
            .cookies
            .insert(DATA.into(), other.get(DATA).unwrap().clone());
        let res = app.get("/get-session", &mut mixed).await;
        assert_eq!(
            res.set_cookies()[0],
            format!("{DATA}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax")
        );
        assert_eq!(
            res.json()["session"]["token"],
            app.session(&mut jar.clone()).await["session"]["token"]
        );

        // Past max_age (300 s) the cache is refused and re-primed from the store.
        app.clock.advance_secs(301);
        let res = app.get("/get-session", &mut jar).await;
        let lines = res.set_cookies();
        assert_eq!(
            lines[0],
            format!("{DATA}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"),
            "{strategy:?}: {lines:?}"
        );
        assert!(lines[1].starts_with(&format!("{DATA}=")));
        // ... and the next call is a hit again (row deleted, still served).
        app.exec(r#"delete from "session""#).await;
        assert_ne!(
            app.get("/get-session", &mut jar).await.json(),
            Value::Null,
            "{strategy:?}"
        );
    }
}

async fn sensitive_routes_bypass_the_cache(b: Backend) {
    let app = cached_app(b, Strategy::Compact).await;
    let email = unique_email();
    let (mut a, _) = app.sign_up(&email).await;
    let (mut other, _) = app.sign_in(&email, PASSWORD).await;
    let token = app.session(&mut a).await["session"]["token"].clone();
    // Revoked elsewhere: get-session still answers from the cache (Better Auth's
    // semantics), but sensitive routes read the store and refuse.
    app.post("/revoke-session", json!({"token": token}), &mut other)
        .await;
    assert_ne!(
        app.get("/get-session", &mut a.clone()).await.json(),
        Value::Null
    );
    for (path, body) in [
        (
            "/change-password",
            json!({"currentPassword": PASSWORD, "newPassword": "another-one-1"}),
        ),
        ("/revoke-other-sessions", json!({})),
    ] {
        let res = app.post(path, body, &mut a.clone()).await;
        assert_eq!(res.status, 401, "{path}");
    }
    // ?disableCookieCache= (empty) cannot re-enable the cache on a sensitive route.
    let res = app
        .send(
            reqwest::Method::POST,
            "/revoke-sessions?disableCookieCache=",
            None,
            Some(&mut a.clone()),
            &[],
        )
        .await;
    assert_eq!(res.status, 401);
}

async fn version_change_invalidates_the_cache(b: Backend) {
    let first = cached_app(b, Strategy::Jwt).await;
    let (mut jar, _) = first.sign_up(&unique_email()).await;
    let db = first.db_url.clone();
    let second = spawn_with(b, |s| {
        s.database.url = db.into();
        s.session.cookie_cache.enabled = true;
        s.session.cookie_cache.strategy = Some(Strategy::Jwt);
        s.session.cookie_cache.version = "2".into();
    })
    .await;
    first.exec(r#"update "user" set "name" = 'Renamed'"#).await;
    // Same version: stale cached name. New version: cache refused, fresh data.
    assert_eq!(
        first.session(&mut jar.clone()).await["user"]["name"],
        "Test User"
    );
    let res = second.get("/get-session", &mut jar).await;
    assert_eq!(res.json()["user"]["name"], "Renamed");
    assert_eq!(
        res.set_cookies()[0],
        format!("{DATA}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax")
    );
}

async fn large_cache_is_chunked(b: Backend) {
    for strategy in STRATEGIES {
        let app = cached_app(b, strategy).await;
        let (mut jar, _) = app.sign_up(&unique_email()).await;
        let image = format!("https://img.example/{}", "x".repeat(6000));
        let res = app
            .post("/update-user", json!({"image": image}), &mut jar)
            .await;
        assert_eq!(res.status, 200);
        let names: Vec<String> = res
            .set_cookies()
            .iter()
            .filter(|l| !l.contains("Max-Age=0"))
            .map(|l| l.split('=').next().unwrap().to_string())
            .collect();
        assert!(
            names.contains(&format!("{DATA}.0")) && names.contains(&format!("{DATA}.1")),
            "{strategy:?}: {names:?}"
        );
        assert!(res.set_cookies().iter().all(|l| l.len() <= 4050));
        // The whole cookie from before is expired, the chunks are read back joined.
        assert!(res.set_cookies().contains(&format!(
            "{DATA}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"
        )));
        app.exec(r#"delete from "session""#).await;
        let s = app.session(&mut jar).await;
        assert_eq!(s["user"]["image"], image.as_str(), "{strategy:?}");
    }
}

async fn dont_remember_cache_has_no_max_age(b: Backend) {
    let app = cached_app(b, Strategy::Compact).await;
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
    let data = res.cookie(DATA).unwrap();
    assert!(!data.contains("Max-Age"), "{data}");
    // The compact cache of a session that is not remembered lives 60 s.
    app.exec(r#"delete from "session""#).await;
    app.clock.advance_secs(59);
    assert_ne!(
        app.get("/get-session", &mut jar.clone()).await.json(),
        Value::Null
    );
    app.clock.advance_secs(2);
    assert_eq!(app.get("/get-session", &mut jar).await.json(), Value::Null);
}

mod stateless {
    use super::*;

    async fn stateless_app(version: &str) -> TestApp {
        let version = version.to_string();
        spawn_with(Backend::Sqlite, |s| {
            s.database.url = "memory".into();
            s.email_and_password.enabled = Some(true);
            s.session.cookie_cache.version = version;
        })
        .await
    }

    #[tokio::test]
    async fn email_and_password_is_off_unless_asked_for() {
        // Users would live in one process: another replica would take the same email.
        let app = spawn_with(Backend::Sqlite, |s| s.database.url = "memory".into()).await;
        let res = app
            .post(
                "/sign-up/email",
                json!({"name": "n", "email": unique_email(), "password": PASSWORD}),
                &mut Jar::default(),
            )
            .await;
        assert_eq!(res.status, 400, "{}", res.text);
        assert_eq!(
            res.code().as_deref(),
            Some("EMAIL_PASSWORD_SIGN_UP_DISABLED")
        );
    }

    #[tokio::test]
    async fn sessions_live_in_the_cookie() {
        let first = stateless_app("1").await;
        let (mut jar, res) = first.sign_up(&unique_email()).await;
        let data = res.cookie(DATA).unwrap();
        // jwe by default, Max-Age = expires_in.
        assert!(data.contains("; Max-Age=604800;"), "{data}");
        assert_eq!(
            jar.get(DATA).unwrap().split('.').count(),
            5,
            "a compact JWE"
        );
        let s = first.session(&mut jar).await;
        // Another process with the same secret and nothing in memory accepts it.
        let second = stateless_app("1").await;
        second.clock.set_ms(first.clock.now_ms());
        assert_eq!(second.session(&mut jar.clone()).await, s);
        // update-session/update-user work on the cookie alone.
        let res = second
            .post("/update-user", json!({"name": "Cookie Only"}), &mut jar)
            .await;
        assert_eq!(res.status, 200, "{}", res.text);
        assert_eq!(
            second.session(&mut jar).await["user"]["name"],
            "Cookie Only"
        );
        // A version bump signs everyone out.
        let third = stateless_app("2").await;
        third.clock.set_ms(first.clock.now_ms());
        assert_eq!(third.session(&mut jar).await, Value::Null);
    }

    #[tokio::test]
    async fn refresh_cache_extends_the_window_not_the_session() {
        let app = stateless_app("1").await;
        let (mut jar, _) = app.sign_up(&unique_email()).await;
        let before = app.session(&mut jar).await;
        // Inside the last 20% of the window: new cookies, same expiresAt.
        app.clock.advance_secs(604_800 * 81 / 100);
        let res = app.get("/get-session", &mut jar).await;
        assert!(res.cookie(DATA).unwrap().contains("Max-Age=604800"));
        assert!(res.cookie(TOKEN_COOKIE).unwrap().contains("Max-Age=604800"));
        assert_eq!(
            res.json()["session"]["expiresAt"],
            before["session"]["expiresAt"]
        );
        // Past the session's own expiry the cookie is refused for good.
        app.clock.advance_secs(604_800 * 20 / 100);
        assert_eq!(app.get("/get-session", &mut jar).await.json(), Value::Null);
    }
}

use sessiond::clock::Clock;

/// A credential and a cache value belong together: another user's cache cookie sent with
/// my token cookie answers for me (or no one), never for them.
async fn another_users_cache_never_answers_for_a_token(b: Backend) {
    for strategy in STRATEGIES {
        let app = cached_app(b, strategy).await;
        let (mut mine, res) = app.sign_up(&unique_email()).await;
        let my_token = res.json()["token"].as_str().unwrap().to_owned();
        let me = app.session(&mut mine).await["user"]["id"].clone();
        let (theirs, _) = app.sign_up(&unique_email()).await;
        let their_cache = theirs.get(DATA).unwrap().clone();
        // Their answer is remembered with their cache value: it must not answer for me.
        app.session(&mut theirs.clone()).await;

        let mut mixed = mine.clone();
        mixed.cookies.insert(DATA.into(), their_cache.clone());
        let res = app.get("/get-session", &mut mixed).await;
        assert_eq!(res.json()["user"]["id"], me, "{strategy:?}");

        // A token issued by sign-in, as a client stores it, with their cache beside it.
        let mut rebuilt = app.jar_for(&my_token);
        rebuilt.cookies.insert(DATA.into(), their_cache.clone());
        let res = app.get("/get-session", &mut rebuilt).await;
        assert_eq!(res.json()["user"]["id"], me, "{strategy:?}: rebuilt");
    }
}

/// A cache hit's answer body is made once per cache value and sent again as it was: the
/// same bytes on every hit, and a new cache value (the user renamed) answers anew.
async fn a_remembered_answer_is_the_same_answer(b: Backend) {
    for strategy in STRATEGIES {
        let app = cached_app(b, strategy).await;
        let (mut jar, _) = app.sign_up(&unique_email()).await;
        let old = jar.clone();
        let first = app.get("/get-session", &mut jar).await;
        let again = app.get("/get-session", &mut jar).await;
        assert_eq!(first.status, 200, "{strategy:?}");
        assert_eq!(first.text, again.text, "{strategy:?}: the same bytes");
        assert_eq!(first.header("content-type"), again.header("content-type"));
        let res = app
            .post("/update-user", json!({"name": "Renamed"}), &mut jar)
            .await;
        assert_eq!(res.status, 200, "{strategy:?}: {}", res.text);
        let renamed = app.get("/get-session", &mut jar).await;
        assert_eq!(renamed.json()["user"]["name"], "Renamed", "{strategy:?}");
        // The old cache value still answers as it did (the cache's own window), unchanged.
        let stale = app.get("/get-session", &mut old.clone()).await;
        assert_eq!(stale.text, first.text, "{strategy:?}");
    }
}
