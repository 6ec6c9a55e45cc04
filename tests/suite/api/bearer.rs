//! Better Auth's bearer plugin (`plugins.bearer`): `Authorization: Bearer` is the session
//! credential on every route under the base path, a bearer that does not verify leaves
//! the cookies alone, and answers that set the session cookie carry `set-auth-token`.

use percent_encoding::percent_decode_str;
use reqwest::Method;
use serde_json::{json, Value};
use sessiond::config::{Settings, VersionedSecret};
use sessiond::crypto::signed::SigningKey;

use crate::on_both_backends;
use crate::support::*;

const DATA: &str = "better-auth.session_data";

on_both_backends!(
    signed_encoded_and_bare_bearers_are_the_session,
    require_signature_ignores_bare_tokens,
    a_bearer_that_does_not_verify_leaves_the_cookie,
    a_verified_bearer_wins_over_another_users_cookies,
    set_auth_token_on_answers_that_set_the_cookie,
    set_auth_token_uses_the_services_cookie_name,
    the_plugin_off_ignores_bearers_on_the_api,
    revoke_and_sign_out_through_a_bearer,
    a_bearer_under_an_older_secret_is_ignored,
    hostile_authorization_values,
);

async fn bearer_app(b: Backend, f: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_with(b, |s| {
        s.plugins.bearer.enabled = true;
        f(s);
    })
    .await
}

/// The signed session token a jar holds, decoded (`token.signature`).
fn signed(jar: &Jar) -> String {
    let raw = jar.get(TOKEN_COOKIE).expect("a session cookie");
    percent_decode_str(raw).decode_utf8().unwrap().into_owned()
}

/// The bare session token of a jar.
fn bare(jar: &Jar) -> String {
    signed(jar).split('.').next().unwrap().to_owned()
}

/// `GET /get-session` with `authorization` and the cookies of `jar` (none if `None`).
async fn session_with(app: &TestApp, authorization: &str, jar: Option<&Jar>) -> Res {
    session_headers(app, &[("authorization", authorization)], jar).await
}

/// `GET /get-session` with `headers` and the cookies of `jar` (none if `None`).
async fn session_headers(app: &TestApp, headers: &[(&str, &str)], jar: Option<&Jar>) -> Res {
    let mut jar = jar.cloned().unwrap_or_default();
    app.send(Method::GET, "/get-session", None, Some(&mut jar), headers)
        .await
}

/// A request with `authorization` and no cookie.
async fn bearer_only(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    authorization: &str,
) -> Res {
    app.send(
        method,
        path,
        body,
        None,
        &[("authorization", authorization)],
    )
    .await
}

/// `signed` with the signature character `i` places after the `.` changed.
fn flip_at(signed: &str, i: usize) -> String {
    let at = signed.find('.').unwrap() + 1 + i;
    let mut b = signed.as_bytes().to_vec();
    b[at] = if b[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

/// The session token get-session answered with (`None` for `null`).
fn token_of(res: &Res) -> Option<String> {
    assert_eq!(res.status, 200, "{}", res.text);
    res.json()["session"]["token"].as_str().map(String::from)
}

async fn signed_encoded_and_bare_bearers_are_the_session(b: Backend) {
    let app = bearer_app(b, |_| {}).await;
    let (jar, _) = app.sign_up(&unique_email()).await;
    let token = bare(&jar);
    let encoded = jar.get(TOKEN_COOKIE).unwrap().clone();
    assert!(encoded.contains('%'), "the jar holds it percent-encoded");
    for auth in [
        format!("Bearer {}", signed(&jar)),
        format!("Bearer {encoded}"),
        format!("Bearer {token}"),
        format!("bearer {}", signed(&jar)),
        format!("BEARER   {}  ", signed(&jar)),
        format!("Bearer \t{token}\t"),
    ] {
        let res = session_with(&app, &auth, None).await;
        assert_eq!(token_of(&res).as_deref(), Some(token.as_str()), "{auth}");
    }
    // Every route reads it: list-sessions, update-user.
    let auth = format!("Bearer {token}");
    let res = bearer_only(&app, Method::GET, "/list-sessions", None, &auth).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json().as_array().map(Vec::len), Some(1));
    let body = json!({"name": "Renamed"});
    let res = bearer_only(&app, Method::POST, "/update-user", Some(body), &auth).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let res = session_with(&app, &auth, None).await;
    assert_eq!(res.json()["user"]["name"], "Renamed");
}

async fn require_signature_ignores_bare_tokens(b: Backend) {
    let app = bearer_app(b, |s| s.plugins.bearer.require_signature = true).await;
    let (jar, _) = app.sign_up(&unique_email()).await;
    let res = session_with(&app, &format!("Bearer {}", bare(&jar)), None).await;
    assert_eq!(res.json(), Value::Null);
    // Ignored, so a cookie next to it stands.
    let res = session_with(&app, "Bearer not-a-session", Some(&jar)).await;
    assert_eq!(token_of(&res), Some(bare(&jar)));
    let res = session_with(&app, &format!("Bearer {}", signed(&jar)), None).await;
    assert_eq!(token_of(&res), Some(bare(&jar)));
}

async fn a_bearer_that_does_not_verify_leaves_the_cookie(b: Backend) {
    let app = bearer_app(b, |_| {}).await;
    let (jar, _) = app.sign_up(&unique_email()).await;
    let (other, _) = app.sign_up(&unique_email()).await;
    // A signature with a character changed where every bit counts.
    let tampered = flip_at(&signed(&other), 10);
    let foreign = SigningKey::new(b"some-other-services-secret-0123456789abcdef")
        .unwrap()
        .sign(&bare(&other));
    for auth in [
        "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl".to_owned(),
        format!("Bearer {tampered}"),
        format!("Bearer {foreign}"),
        "Bearer a.b".to_owned(),
        "Bearer ".to_owned(),
        "Basic dXNlcjpwYXNz".to_owned(),
        "Bearer".to_owned(),
    ] {
        let res = session_with(&app, &auth, Some(&jar)).await;
        assert_eq!(token_of(&res), Some(bare(&jar)), "{auth}");
        assert!(res.header("set-auth-token").is_none());
    }
    // The last signature character before `=` carries two spare bits, which Better Auth's
    // base64 (and the cookie reader) ignores: another spelling of the same MAC verifies.
    // No forgery: the MAC is the server's, only its encoding differs.
    let sig = signed(&other);
    let spare = sig.len() - 2;
    let mut respelled = sig.clone().into_bytes();
    let v = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let at = v.iter().position(|c| *c == respelled[spare]).unwrap();
    respelled[spare] = v[at ^ 1];
    let respelled = String::from_utf8(respelled).unwrap();
    assert_ne!(respelled, sig);
    let res = session_with(&app, &format!("Bearer {respelled}"), Some(&jar)).await;
    assert_eq!(token_of(&res), Some(bare(&other)));
    // A bare value is signed here and stands for the cookie, as in Better Auth: an unknown
    // one is no session (and the cookie it replaced is cleared).
    let res = session_with(&app, "Bearer no-such-session", Some(&jar)).await;
    assert_eq!(res.json(), Value::Null);
}

async fn a_verified_bearer_wins_over_another_users_cookies(b: Backend) {
    let app = bearer_app(b, |s| {
        s.session.cookie_cache.enabled = true;
    })
    .await;
    let (mine, _) = app.sign_up(&unique_email()).await;
    let (theirs, _) = app.sign_up(&unique_email()).await;
    assert!(mine.get(DATA).is_some(), "the cache cookie is set");
    let res = session_with(&app, &format!("Bearer {}", signed(&theirs)), Some(&mine)).await;
    assert_eq!(token_of(&res), Some(bare(&theirs)));
    // The cache cookie of the other session is not served for the bearer's token, and is
    // replaced by the bearer's session's.
    let data = res.cookie(DATA).expect("the cache cookie is rewritten");
    assert!(!data.contains("Max-Age=0"), "{data}");
    assert_ne!(
        data.split(';').next().unwrap(),
        format!("{DATA}={}", mine.get(DATA).unwrap())
    );
    // With the cache cookie of its own session the bearer is answered from the cache.
    let res = session_with(&app, &format!("Bearer {}", bare(&theirs)), Some(&theirs)).await;
    assert_eq!(token_of(&res), Some(bare(&theirs)));
    assert!(res.cookie(DATA).is_none(), "answered from the cache");
}

/// The `set-auth-token` of an answer, which must then be exposed to CORS.
fn auth_token(res: &Res) -> Option<String> {
    let token = res.header("set-auth-token")?;
    let exposed = res
        .header("access-control-expose-headers")
        .unwrap_or_default();
    assert!(
        exposed.split(',').any(|h| h.trim() == "set-auth-token"),
        "{exposed:?}"
    );
    Some(token)
}

async fn set_auth_token_on_answers_that_set_the_cookie(b: Backend) {
    let app = bearer_app(b, |_| {}).await;
    let email = unique_email();
    let (mut jar, res) = app.sign_up(&email).await;
    assert_eq!(auth_token(&res), Some(signed(&jar)), "sign-up");
    let (signed_in, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(auth_token(&res), Some(signed(&signed_in)), "sign-in");
    // A get-session that sets nothing sends nothing.
    let res = app.get("/get-session", &mut jar).await;
    assert!(res.set_cookies().is_empty());
    assert_eq!(res.header("set-auth-token"), None);
    // A refresh re-issues the cookie, and the token with it.
    app.clock.advance_secs(86_400);
    let res = session_with(&app, &format!("Bearer {}", signed(&jar)), None).await;
    assert!(res.cookie(TOKEN_COOKIE).is_some());
    let refreshed = auth_token(&res).expect("refresh sends the token");
    assert_eq!(refreshed, signed(&jar));
    // The value is a bearer as it is.
    let res = session_with(&app, &format!("Bearer {refreshed}"), None).await;
    assert_eq!(token_of(&res), Some(bare(&jar)));
    // A failed sign-in sets nothing; sign-out expires the cookie: no token either.
    let (_, res) = app.sign_in(&email, "wrong-password-123").await;
    assert_eq!(res.status, 401);
    assert_eq!(res.header("set-auth-token"), None);
    let res = app.post("/sign-out", json!({}), &mut jar).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(res.cookie(TOKEN_COOKIE).unwrap().contains("Max-Age=0"));
    assert_eq!(res.header("set-auth-token"), None);
    // change-password with revokeOtherSessions makes a new session: its token is sent.
    let mut browser = signed_in.clone();
    let res = app
        .post(
            "/change-password",
            json!({"currentPassword": PASSWORD, "newPassword": "another-horse-battery",
                   "revokeOtherSessions": true}),
            &mut browser,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_ne!(signed(&browser), signed(&signed_in));
    assert_eq!(auth_token(&res), Some(signed(&browser)));
}

async fn set_auth_token_uses_the_services_cookie_name(b: Backend) {
    let app = bearer_app(b, |s| {
        s.base_url = "https://auth.example.com".into();
        s.trusted_origins = vec![ORIGIN.into()];
        s.advanced.cookies.session_token.name = "sid".into();
    })
    .await;
    let (jar, res) = app.sign_up(&unique_email()).await;
    let value = jar.get("__Secure-sid").expect("the renamed cookie");
    let decoded = percent_decode_str(value).decode_utf8().unwrap();
    assert_eq!(auth_token(&res).as_deref(), Some(decoded.as_ref()));
    // And the bearer stands for the renamed cookie.
    let res = session_with(&app, &format!("Bearer {decoded}"), None).await;
    assert_eq!(
        token_of(&res).as_deref(),
        decoded.split('.').next(),
        "{}",
        res.text
    );
}

async fn the_plugin_off_ignores_bearers_on_the_api(b: Backend) {
    let app = spawn(b).await;
    let (jar, res) = app.sign_up(&unique_email()).await;
    assert_eq!(res.header("set-auth-token"), None);
    for auth in [
        format!("Bearer {}", signed(&jar)),
        format!("Bearer {}", bare(&jar)),
    ] {
        let res = session_with(&app, &auth, None).await;
        assert_eq!(res.json(), Value::Null, "{auth}");
    }
    let auth = format!("Bearer {}", bare(&jar));
    let res = bearer_only(&app, Method::GET, "/list-sessions", None, &auth).await;
    assert_eq!(res.status, 401);
}

async fn revoke_and_sign_out_through_a_bearer(b: Backend) {
    let app = bearer_app(b, |_| {}).await;
    let email = unique_email();
    let (first, _) = app.sign_up(&email).await;
    let (second, _) = app.sign_in(&email, PASSWORD).await;
    let auth = format!("Bearer {}", signed(&first));
    let body = json!({"token": bare(&second)});
    let res = bearer_only(&app, Method::POST, "/revoke-session", Some(body), &auth).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        session_with(&app, "", Some(&second)).await.json(),
        Value::Null
    );
    let res = bearer_only(&app, Method::POST, "/sign-out", Some(json!({})), &auth).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json()["success"], true);
    assert_eq!(session_with(&app, &auth, None).await.json(), Value::Null);
    assert_eq!(app.count("SELECT COUNT(*) FROM session").await, 0);
}

async fn a_bearer_under_an_older_secret_is_ignored(b: Backend) {
    const OLD: &str = "bearer-old-Qm7xV2pL9sK4wR8tY3nB6hJ1cF5gD0zA";
    const NEW: &str = "bearer-new-kX2v9QmP4sT7wZ1bN6yR3hJ8cL5gF0dA";
    let app = bearer_app(b, |s| {
        s.secret = "".into();
        s.secrets = [(2, NEW), (1, OLD)]
            .into_iter()
            .map(|(version, value)| VersionedSecret {
                version,
                value: value.into(),
            })
            .collect();
    })
    .await;
    let (jar, res) = app.sign_up(&unique_email()).await;
    let token = bare(&jar);
    let under_new = SigningKey::new(NEW.as_bytes()).unwrap().sign(&token);
    assert_eq!(auth_token(&res), Some(under_new.clone()));
    let under_old = SigningKey::new(OLD.as_bytes()).unwrap().sign(&token);
    // Better Auth checks a bearer with the current secret only.
    let res = session_with(&app, &format!("Bearer {under_old}"), None).await;
    assert_eq!(res.json(), Value::Null);
    // Ignored, so the cookie next to it stands.
    let res = session_with(&app, &format!("Bearer {under_old}"), Some(&jar)).await;
    assert_eq!(token_of(&res), Some(token.clone()));
    // The same value as a cookie is accepted, and signed again under the current secret.
    let mut old_jar = Jar::default();
    old_jar.cookies.insert(
        TOKEN_COOKIE.into(),
        sessiond::http::set_cookie::encode_uri_component(&under_old),
    );
    let res = session_with(&app, "", Some(&old_jar)).await;
    assert_eq!(token_of(&res), Some(token.clone()));
    assert_eq!(auth_token(&res), Some(under_new.clone()));
    // A bare token is signed with the current secret.
    let res = session_with(&app, &format!("Bearer {token}"), None).await;
    assert_eq!(token_of(&res), Some(token));
}

async fn hostile_authorization_values(b: Backend) {
    let app = bearer_app(b, |_| {}).await;
    let (jar, _) = app.sign_up(&unique_email()).await;
    let (other, _) = app.sign_up(&unique_email()).await;
    let mine = Some(bare(&jar));
    // Dotted values that do not verify leave the cookie's session.
    let dots = ".".repeat(10_000);
    let signature_of_other = signed(&other).split_once('.').unwrap().1.to_owned();
    for auth in [
        "Bearer %00.x".to_owned(),
        "Bearer %ZZ.%ZZ".to_owned(),
        "Bearer a%00b.c%".to_owned(),
        "Bearer %E2%82%AC.%E2%82".to_owned(),
        "Bearer .".to_owned(),
        "Bearer a.".to_owned(),
        "Bearer .b".to_owned(),
        format!("Bearer {dots}"),
        format!("Bearer .{signature_of_other}"),
        format!("Bearer {}.{signature_of_other}", bare(&jar)),
        format!("Bearer {}", flip_at(&signed(&other), 0)),
        format!("Bearer {}", flip_at(&signed(&other), 30)),
    ] {
        let res = session_with(&app, &auth, Some(&jar)).await;
        assert_eq!(token_of(&res), mine, "{}", &auth[..auth.len().min(40)]);
    }
    // As in Better Auth: the plugin checks the first two parts, the cookie reader the last
    // `.`: a verified value with more after it replaces the cookie and is no session; a
    // value whose only dot is encoded is a bare token, signed here, and no session either.
    for auth in [
        format!("Bearer {}.x", signed(&other)),
        format!("Bearer {}", signed(&other).replace('.', "%2E")),
    ] {
        let res = session_with(&app, &auth, Some(&jar)).await;
        assert_eq!(res.json(), Value::Null, "{auth}");
    }
    // Tabs around the scheme: "Bearer\t" is not the scheme; tabs after it are trimmed.
    let res = session_with(&app, &format!("Bearer\t{}", signed(&other)), Some(&jar)).await;
    assert_eq!(token_of(&res), mine);
    // A value with raw UTF-8 bytes is not text the plugin reads.
    let mut req = app.client.get(app.url("/get-session"));
    req = req.header("cookie", jar.header()).header(
        "authorization",
        reqwest::header::HeaderValue::from_bytes("Bearer €.x".as_bytes()).unwrap(),
    );
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["session"]["token"].as_str(), mine.as_deref());
    // Several Authorization headers: the first counts (Node keeps the first).
    let first = format!("Bearer {}", signed(&other));
    let two = [
        ("authorization", first.as_str()),
        ("authorization", "Bearer junk.junk"),
    ];
    let res = session_headers(&app, &two, Some(&jar)).await;
    assert_eq!(token_of(&res), Some(bare(&other)));
    let many: Vec<(&str, String)> = (0..50)
        .map(|i| ("authorization", format!("Bearer x{i}.y")))
        .chain([("authorization", format!("Bearer {}", signed(&other)))])
        .collect();
    let headers: Vec<(&str, &str)> = many.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = session_headers(&app, &headers, Some(&jar)).await;
    assert_eq!(token_of(&res), mine);
    // A value past the request-head limit (16 KiB by default) is refused whole, before
    // any route: 431, or the connection closed while the client still writes; the server
    // goes on.
    let huge = format!("Bearer {}", "a".repeat(64 * 1024));
    let res = app
        .client
        .get(app.url("/get-session"))
        .header("authorization", huge)
        .send()
        .await;
    if let Ok(res) = res {
        assert_eq!(res.status(), 431);
    }
    // Just under the limit, a bare value is signed and read (no session by that token).
    let big = format!("Bearer {}", "a".repeat(12 * 1024));
    let res = session_with(&app, &big, None).await;
    assert_eq!(res.json(), Value::Null);
    let res = session_with(&app, &format!("Bearer {}", signed(&jar)), None).await;
    assert_eq!(token_of(&res), mine);
}
