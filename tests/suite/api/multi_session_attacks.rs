//! Attacks on the multi-session plugin, kept as tests: tokens the browser does not hold,
//! forged, unsigned and foreign-secret `_multi-` cookies, a revoke without a session, far
//! more `_multi-` cookies than are read, and the largest `maximum_sessions` against the
//! `Set-Cookie` cap.

use serde_json::json;
use sessiond::crypto::signed::SigningKey;
use sessiond::http::set_cookie::encode_uri_component;

use super::multi_session::*;
use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    set_active_refuses_tokens_the_browser_does_not_hold,
    revoke_needs_a_session_and_a_held_cookie,
    forged_multi_cookies_count_but_never_act,
    the_largest_maximum_stays_under_the_set_cookie_cap,
);

async fn set_active_refuses_tokens_the_browser_does_not_hold(b: Backend) {
    let app = multi_app(b, |_| {}).await;
    let mut victim = Jar::default();
    let (tv, _) = add_user(&app, &mut victim).await;
    let mut jar = Jar::default();
    let (mine, _) = add_user(&app, &mut jar).await;
    for token in [tv.as_str(), "unknown", ""] {
        let res = set_active(&app, &mut jar, token).await;
        assert_eq!(res.status, 401, "{token}: {}", res.text);
        assert_eq!(res.code().as_deref(), Some("INVALID_SESSION_TOKEN"));
        assert_eq!(res.json()["message"], "Invalid session token");
    }
    // A cookie named for the victim's token but not signed by the service.
    let name = format!("{MULTI}{}", tv.to_lowercase());
    for value in [
        tv.clone(),
        format!("{tv}.forged"),
        encode_uri_component(
            &SigningKey::new(b"another-secret-abcdefghijklmnopqrstu")
                .unwrap()
                .sign(&tv),
        ),
    ] {
        let mut forged = jar.clone();
        forged.cookies.insert(name.clone(), value);
        let res = set_active(&app, &mut forged, &tv).await;
        assert_eq!(res.status, 401, "{}", res.text);
        assert_eq!(active_token(&forged).unwrap(), mine);
    }
    let res = revoke(&app, &mut jar, &tv).await;
    assert_eq!(res.code().as_deref(), Some("INVALID_SESSION_TOKEN"));
    assert!(alive(&app, &tv).await);
    // Missing or mistyped body.
    let res = app
        .post(
            "/multi-session/set-active",
            json!({"sessionToken": 1}),
            &mut jar,
        )
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.code().as_deref(), Some("VALIDATION_ERROR"));
}

async fn revoke_needs_a_session_and_a_held_cookie(b: Backend) {
    let app = multi_app(b, |_| {}).await;
    let mut jar = Jar::default();
    let (ta, _) = add_user(&app, &mut jar).await;
    // The _multi- cookie alone is not a session.
    let mut only_multi = jar.clone();
    only_multi.cookies.remove(TOKEN_COOKIE);
    let res = revoke(&app, &mut only_multi, &ta).await;
    assert_eq!(res.status, 401);
    assert_eq!(res.code().as_deref(), Some("UNAUTHORIZED"));
    assert!(alive(&app, &ta).await);
    // Signed in, but not holding the named cookie.
    let mut other = Jar::default();
    add_user(&app, &mut other).await;
    let res = revoke(&app, &mut other, &ta).await;
    assert_eq!(res.status, 401);
    assert_eq!(res.code().as_deref(), Some("INVALID_SESSION_TOKEN"));
    assert!(alive(&app, &ta).await);
}

async fn forged_multi_cookies_count_but_never_act(b: Backend) {
    let app = multi_app(b, |_| {}).await;
    let mut jar = Jar::default();
    let (ta, _) = add_user(&app, &mut jar).await;
    // Far more junk _multi- cookies than the read cap, one of them carrying the signed
    // dont_remember value (the same key signs it).
    let key = SigningKey::new(SECRET.as_bytes()).unwrap();
    for i in 0..60 {
        jar.cookies
            .insert(format!("x_multi-{i:02}"), format!("junk{i}"));
    }
    jar.cookies.insert(
        "a_multi-flag".into(),
        encode_uri_component(&key.sign("true")),
    );
    // They count against maximum_sessions as Better Auth counts them: no new cookie.
    let (tb, _) = add_user(&app, &mut jar).await;
    assert!(jar.get(&format!("{MULTI}{}", tb.to_lowercase())).is_none());
    let listed = list(&app, &mut jar).await;
    assert!(listed.len() <= 1);
    // Sign-out stays under the Set-Cookie cap and still ends the held session when it is
    // among the first cookies read.
    let res = app.post("/sign-out", json!({}), &mut jar).await;
    assert_eq!(res.status, 200);
    assert!(res.set_cookies().len() <= 32, "{}", res.set_cookies().len());
    assert!(!alive(&app, &tb).await);
    assert!(!alive(&app, &ta).await);
}

async fn the_largest_maximum_stays_under_the_set_cookie_cap(b: Backend) {
    let max = sessiond::config::MAX_MULTI_SESSIONS;
    let app = multi_app(b, |s| {
        s.plugins.multi_session.maximum_sessions = max;
        // The most cache lines a response can carry.
        s.session.cookie_cache.enabled = true;
    })
    .await;
    let mut jar = Jar::default();
    let mut tokens = Vec::new();
    for _ in 0..max {
        tokens.push(add_user(&app, &mut jar).await.0);
    }
    assert_eq!(multi_names(&jar).len(), max);
    assert_eq!(list(&app, &mut jar).await.len(), max);
    // Stale cache chunks the browser sends are expired on sign-out too.
    for i in 0..8 {
        jar.cookies
            .insert(format!("better-auth.session_data.{i}"), "x".into());
    }
    let res = app.post("/sign-out", json!({}), &mut jar).await;
    assert_eq!(res.status, 200);
    let lines = res.set_cookies();
    assert!(lines.len() <= 32, "{}", lines.len());
    // Every held session ended, every _multi- cookie expired: nothing was dropped.
    assert_eq!(lines.iter().filter(|l| l.contains("_multi-")).count(), max);
    for t in &tokens {
        assert!(!alive(&app, t).await);
    }
}

#[test]
fn maximum_sessions_is_bounded() {
    for (n, ok) in [(0, false), (1, true), (16, true), (17, false)] {
        let mut s = test_settings();
        s.plugins.multi_session.maximum_sessions = n;
        assert_eq!(s.validate().is_ok(), ok, "{n}");
    }
}
