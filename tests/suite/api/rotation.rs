//! Rotating the secret (`secrets` / `BETTER_AUTH_SECRETS`): sessions and caches made
//! under `1:old` stay signed in after a restart with `2:new,1:old` and come back signed
//! with `new`; after `2:new` alone the old cookies are refused and the re-signed ones work.
//! Each restart is another app on the same database.

use percent_encoding::percent_decode_str;
use reqwest::Method;
use serde_json::{json, Value};
use sessiond::clock::Clock;
use sessiond::config::{Settings, VersionedSecret};
use sessiond::crypto::cache::{CacheCodec, Strategy};
use sessiond::crypto::signed::SigningKey;

use crate::on_both_backends;
use crate::support::*;

const OLD: &str = "rotation-old-Qm7xV2pL9sK4wR8tY3nB6hJ1cF5gD0zA";
const NEW: &str = "rotation-new-kX2v9QmP4sT7wZ1bN6yR3hJ8cL5gF0dA";
const DATA: &str = "better-auth.session_data";

on_both_backends!(
    rotation_signs_nobody_out_and_removal_does,
    a_cache_under_an_older_secret_is_checked_against_the_store,
    signed_bearer_tokens_verify_under_every_version,
);

/// `secrets` as `(version, value)` pairs, and no unversioned secret.
fn use_secrets(s: &mut Settings, list: &[(u64, &str)]) {
    s.secret = "".into();
    s.secrets = list
        .iter()
        .map(|(version, value)| VersionedSecret {
            version: *version,
            value: (*value).into(),
        })
        .collect();
}

/// An app on `db` (or a new database) with `secrets` and the cookie cache in `strategy`
/// (none: off). Its clock starts after the earlier apps' (never set back: the revocation
/// guard distrusts caches minted before an app started).
async fn app_with(
    b: Backend,
    db: Option<&str>,
    secrets: &[(u64, &str)],
    strategy: Option<Strategy>,
) -> TestApp {
    let db = db.map(str::to_owned);
    let app = spawn_with(b, |s| {
        use_secrets(s, secrets);
        if let Some(db) = db {
            s.database.url = db.into();
        }
        s.session.cookie_cache.enabled = strategy.is_some();
        s.session.cookie_cache.strategy = strategy;
    })
    .await;
    // Caches minted before the revocation listener connects are revalidated, which would
    // re-set them on the next request.
    app.wait_ready().await;
    app
}

/// The value a signed cookie (as a jar holds it, percent-encoded) carries when its
/// signature is `secret`'s.
fn signed_with(secret: &str, cookie: &str) -> Option<String> {
    let raw = percent_decode_str(cookie).decode_utf8().unwrap();
    SigningKey::new(secret.as_bytes())
        .unwrap()
        .verify(&raw)
        .valid()
}

/// Whether a cache value verifies (or decrypts) under `secret` alone.
fn cache_under(strategy: Strategy, secret: &str, value: &str, now_ms: i64) -> bool {
    CacheCodec::new(strategy, secret, &[])
        .decode(value, now_ms)
        .is_ok()
}

/// Signs up (remembered) and signs in again without "remember me", under `app`'s secret.
async fn two_sessions(app: &TestApp) -> (Jar, Jar) {
    let email = unique_email();
    let (remembered, _) = app.sign_up(&email).await;
    let mut browser = Jar::default();
    let res = app
        .post(
            "/sign-in/email",
            json!({"email": email, "password": PASSWORD, "rememberMe": false}),
            &mut browser,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(browser.get(DONT_REMEMBER_COOKIE).is_some());
    (remembered, browser)
}

async fn rotation_signs_nobody_out_and_removal_does(b: Backend) {
    for strategy in [
        None,
        Some(Strategy::Compact),
        Some(Strategy::Jwt),
        Some(Strategy::Jwe),
    ] {
        let first = app_with(b, None, &[(1, OLD)], strategy).await;
        let (remembered, browser) = two_sessions(&first).await;
        let db = first.db_url.clone();
        let rotated = app_with(b, Some(&db), &[(2, NEW), (1, OLD)], strategy).await;
        let now = rotated.clock_ms();
        let mut resigned = Vec::new();
        for old_jar in [&remembered, &browser] {
            let token = signed_with(OLD, old_jar.get(TOKEN_COOKIE).unwrap()).unwrap();
            let dont = old_jar.get(DONT_REMEMBER_COOKIE).is_some();
            let mut jar = old_jar.clone();
            let res = rotated.get("/get-session", &mut jar).await;
            assert_eq!(res.status, 200, "{strategy:?}: {}", res.text);
            assert_eq!(
                res.json()["session"]["token"],
                token.as_str(),
                "{strategy:?}"
            );
            // Every cookie it carried comes back under the new secret.
            let line = res.cookie(TOKEN_COOKIE).expect("session_token re-set");
            assert_eq!(line.contains("Max-Age=604800"), !dont, "{line}");
            let cookie = jar.get(TOKEN_COOKIE).unwrap();
            assert_eq!(signed_with(NEW, cookie).as_deref(), Some(token.as_str()));
            assert_eq!(signed_with(OLD, cookie), None, "{strategy:?}");
            if dont {
                let flag = jar.get(DONT_REMEMBER_COOKIE).unwrap();
                assert_ne!(Some(flag), old_jar.get(DONT_REMEMBER_COOKIE));
                assert_eq!(signed_with(NEW, flag).as_deref(), Some("true"));
            }
            match strategy {
                Some(strategy) => {
                    let cache = jar.get(DATA).expect("cache re-set");
                    assert!(cache_under(strategy, NEW, cache, now), "{strategy:?}");
                    assert!(!cache_under(strategy, OLD, cache, now), "{strategy:?}");
                }
                None => assert!(jar.get(DATA).is_none()),
            }
            // Re-signed once: the next answer sets nothing again.
            let res = rotated.get("/get-session", &mut jar.clone()).await;
            assert_eq!(res.json()["session"]["token"], token.as_str());
            assert_eq!(res.set_cookies(), Vec::<String>::new(), "{strategy:?}");
            resigned.push(jar);
        }
        if strategy.is_none() {
            // Only the dont_remember flag under the old secret: it alone comes back.
            let mut jar = browser.clone();
            let token = resigned[1].get(TOKEN_COOKIE).unwrap().clone();
            jar.cookies.insert(TOKEN_COOKIE.into(), token);
            let res = rotated.get("/get-session", &mut jar).await;
            assert_ne!(res.json(), Value::Null);
            let flag = jar.get(DONT_REMEMBER_COOKIE).unwrap();
            assert_eq!(signed_with(NEW, flag).as_deref(), Some("true"));
        }
        // Version 1 removed: its cookies are refused, the re-signed ones work.
        let removed = app_with(b, Some(&db), &[(2, NEW)], strategy).await;
        for old_jar in [&remembered, &browser] {
            let res = removed.get("/get-session", &mut old_jar.clone()).await;
            assert_eq!(res.json(), Value::Null, "{strategy:?}");
        }
        for jar in &mut resigned {
            let res = removed.get("/get-session", jar).await;
            assert_ne!(res.json(), Value::Null, "{strategy:?}");
            assert!(res.cookie(TOKEN_COOKIE).is_none(), "{strategy:?}");
        }
    }
}

/// A cache value under an older secret is not served on its own word: the store is read
/// (so it is not re-minted with a longer window from a copy that may be stale).
async fn a_cache_under_an_older_secret_is_checked_against_the_store(b: Backend) {
    let strategy = Some(Strategy::Compact);
    let first = app_with(b, None, &[(1, OLD)], strategy).await;
    let (mut jar, _) = first.sign_up(&unique_email()).await;
    first.exec(r#"update "user" set "name" = 'Renamed'"#).await;
    let rotated = app_with(b, Some(&first.db_url), &[(2, NEW), (1, OLD)], strategy).await;
    // Under the current secret the stale name would be served; here the store answers.
    assert_eq!(
        first.session(&mut jar.clone()).await["user"]["name"],
        "Test User"
    );
    assert_eq!(
        rotated.session(&mut jar.clone()).await["user"]["name"],
        "Renamed"
    );
    first.exec(r#"delete from "session""#).await;
    assert_eq!(
        rotated.get("/get-session", &mut jar).await.json(),
        Value::Null
    );
}

async fn signed_bearer_tokens_verify_under_every_version(b: Backend) {
    let first = app_with(b, None, &[(1, OLD)], None).await;
    let (jar, res) = first.sign_up(&unique_email()).await;
    let token = res.json()["token"].as_str().unwrap().to_owned();
    let signed = percent_decode_str(jar.get(TOKEN_COOKIE).unwrap())
        .decode_utf8()
        .unwrap()
        .into_owned();
    let check = |app: &TestApp, credential: &str| {
        let url = format!("http://{}/forward-auth", app.addr);
        let req = app
            .client
            .request(Method::GET, url)
            .header("authorization", format!("Bearer {credential}"));
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let set_cookies = resp.headers().get_all("set-cookie").iter().count();
            (status, set_cookies)
        }
    };
    let rotated = app_with(b, Some(&first.db_url), &[(2, NEW), (1, OLD)], None).await;
    // Accepted; no cookie is set for a client that sent none.
    assert_eq!(check(&rotated, &signed).await, (200, 0));
    assert_eq!(check(&rotated, &token).await, (200, 0));
    let removed = app_with(b, Some(&first.db_url), &[(2, NEW)], None).await;
    assert_eq!(check(&removed, &signed).await.0, 401);
    // A bare token is signed by the service itself, with the current secret.
    assert_eq!(check(&removed, &token).await.0, 200);
}

/// Stateless mode: the cookie is the session, so a cache under an older secret is taken as
/// it is and written again under the new one. Better Auth's legacy secret (`secret` beside
/// `secrets`) still decrypts a jwe cache, as in Better Auth, though it verifies no
/// signature.
#[tokio::test]
async fn stateless_sessions_survive_rotation_and_legacy_secrets_decrypt() {
    let stateless = |list: &'static [(u64, &'static str)], legacy: &'static str| {
        spawn_with(Backend::Sqlite, move |s| {
            use_secrets(s, list);
            s.secret = legacy.into();
            s.database.url = "memory".into();
            s.email_and_password.enabled = Some(true);
        })
    };
    let first = stateless(&[(1, OLD)], "").await;
    let (jar, _) = first.sign_up(&unique_email()).await;
    let at = first.clock.now_ms();
    let before = first.session(&mut jar.clone()).await;

    let rotated = stateless(&[(2, NEW), (1, OLD)], "").await;
    rotated.clock.set_ms(at);
    let mut resigned = jar.clone();
    let res = rotated.get("/get-session", &mut resigned).await;
    assert_eq!(res.json(), before);
    let token = before["session"]["token"].as_str().unwrap();
    let cookie = resigned.get(TOKEN_COOKIE).unwrap();
    assert_eq!(signed_with(NEW, cookie).as_deref(), Some(token));
    let cache = resigned.get(DATA).unwrap();
    assert!(cache_under(Strategy::Jwe, NEW, cache, at));
    assert!(!cache_under(Strategy::Jwe, OLD, cache, at));

    let removed = stateless(&[(2, NEW)], "").await;
    removed.clock.set_ms(at);
    assert_eq!(removed.session(&mut jar.clone()).await, Value::Null);
    assert_eq!(removed.session(&mut resigned.clone()).await, before);

    // The old cache beside a token cookie signed under the new secret: read only with the
    // old secret as the legacy one.
    let mut mixed = jar.clone();
    mixed.cookies.insert(
        TOKEN_COOKIE.into(),
        resigned.get(TOKEN_COOKIE).unwrap().clone(),
    );
    assert_eq!(removed.session(&mut mixed.clone()).await, Value::Null);
    let legacy = stateless(&[(2, NEW)], OLD).await;
    legacy.clock.set_ms(at);
    assert_eq!(legacy.session(&mut mixed).await, before);
    assert!(cache_under(
        Strategy::Jwe,
        NEW,
        mixed.get(DATA).unwrap(),
        at
    ));
}

/// Production refuses a guessable secret wherever it is: any listed version, and the legacy
/// secret beside them (it decrypts jwe caches).
#[tokio::test]
async fn production_judges_every_secret() {
    use sessiond::app::Application;
    use sessiond::config::Environment;
    let build = |list: &'static [(u64, &'static str)], legacy: &'static str| async move {
        let dir = tempfile::tempdir().unwrap();
        let mut s = test_settings();
        s.environment = Environment::Production;
        s.data_dir = dir.path().to_path_buf();
        use_secrets(&mut s, list);
        s.secret = legacy.into();
        let clock = sessiond::clock::ManualClock::starting_now();
        Application::build_with_clock(s, std::sync::Arc::new(clock))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let err = build(&[(2, NEW), (1, "short-one")], "").await.unwrap_err();
    assert!(
        err.contains("secrets version 1 must be at least 32"),
        "{err}"
    );
    let err = build(&[(2, NEW), (1, OLD)], "changeme-changeme-please-change-me")
        .await
        .unwrap_err();
    assert!(err.contains("legacy secret"), "{err}");
    assert!(!err.contains("changeme-"), "{err}");
    build(&[(2, NEW), (1, OLD)], SECRET).await.unwrap();
    // Better Auth's built-in default is never the legacy secret (refused alone in
    // production, ignored beside versioned secrets).
    build(&[(2, NEW)], "better-auth-secret-12345678901234567890")
        .await
        .unwrap();
}
