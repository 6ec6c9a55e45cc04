//! Better Auth's jwt plugin: `/jwks`, `/token`, `set-auth-jwt`, the `jwks` table and its
//! sealed private keys, rotation and grace on the injected clock, JWTs for forward auth.
//! Tokens are verified here as another service would: with the published key set only.

use serde_json::{json, Value};
use sessiond::config::{GenerateId, KeyAlg, Settings, VersionedSecret};

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    token_and_key_set,
    tokens_are_handed_out_again_then_renewed,
    keys_rotate_and_stay_published_for_the_grace_period,
    forward_auth_carries_a_jwt_per_audience,
    keys_open_under_every_secret_version,
);

fn jwt_on(s: &mut Settings) {
    s.plugins.jwt.enabled = true;
}

/// The claims of `token` once verified with the key of its `kid` in `jwks`.
fn verify(token: &str, jwks: &Value, aud: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = header.kid.clone().expect("kid");
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} not published: {jwks}"));
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.clone()).unwrap();
    let dk = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&[aud]);
    v.set_issuer(&[BASE_URL]);
    // Times are the injected clock's.
    v.validate_exp = false;
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(token, &dk, &v)
        .unwrap()
        .claims
}

fn header_of(token: &str) -> Value {
    use base64::Engine;
    let head = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn key_set(app: &TestApp) -> Value {
    let res = app.get("/jwks", &mut Jar::default()).await;
    assert_eq!(res.status, 200, "{}", res.text);
    res.json()
}

async fn token(app: &TestApp, jar: &mut Jar) -> String {
    let res = app.get("/token", jar).await;
    assert_eq!(res.status, 200, "{}", res.text);
    res.json()["token"].as_str().unwrap().to_owned()
}

async fn token_and_key_set(b: Backend) {
    let app = spawn_with(b, jwt_on).await;
    // No session, no token.
    let res = app.get("/token", &mut Jar::default()).await;
    assert_eq!(res.status, 401, "{}", res.text);
    assert_eq!(res.code().as_deref(), Some("UNAUTHORIZED"));
    let email = unique_email();
    let (mut jar, signed_up) = app.sign_up(&email).await;
    let user = signed_up.json()["user"].clone();
    let t = token(&app, &mut jar).await;
    let res = app.get("/jwks", &mut Jar::default()).await;
    assert_eq!(
        res.header("cache-control").as_deref(),
        Some("public, max-age=300")
    );
    let jwks = res.json();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    let k = &keys[0];
    // Better Auth's layout: alg, crv, the public members, kid; never the private part.
    let names: Vec<&str> = k.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(names, ["alg", "crv", "x", "kty", "kid"], "{k}");
    assert_eq!(k["alg"], "EdDSA");
    assert_eq!(k["crv"], "Ed25519");
    assert_eq!(header_of(&t), json!({"alg": "EdDSA", "kid": k["kid"]}));
    let claims = verify(&t, &jwks, BASE_URL);
    // Better Auth's order: iat, the user as get-session returns it, sub, exp, iss, aud.
    let names: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec!["iat"];
    expected.extend(user.as_object().unwrap().keys().map(String::as_str));
    expected.extend(["sub", "exp", "iss", "aud"]);
    assert_eq!(names, expected, "{claims}");
    assert_eq!(claims["iat"].as_i64().unwrap(), app.clock_ms() / 1000);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(claims["email"], email.as_str());
    assert_eq!(claims["iss"], BASE_URL);
    assert_eq!(claims["aud"], BASE_URL);
    assert!(
        claims.get("sid").is_none(),
        "sid only with the feed: {claims}"
    );
    for (k, v) in user.as_object().unwrap() {
        assert_eq!(&claims[k], v, "user member {k}");
    }
    // get-session carries one too, exposed to CORS.
    let res = app.get("/get-session", &mut jar).await;
    let jwt = res.header("set-auth-jwt").expect("set-auth-jwt");
    assert_eq!(verify(&jwt, &jwks, BASE_URL)["sub"], user["id"]);
    assert!(res
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .contains("set-auth-jwt"));
    // Signed out: neither.
    let res = app.get("/get-session", &mut Jar::default()).await;
    assert!(res.header("set-auth-jwt").is_none());
    // The row: the private key sealed as Better Auth seals it (JSON text of a hex string).
    assert_eq!(app.count(r#"select count(*) from "jwks""#).await, 1);
    assert_eq!(
        app.count(r#"select count(*) from "jwks" where "privateKey" like '"%"' and "privateKey" not like '%"d"%' and "alg" = 'EdDSA' and "crv" = 'Ed25519' and "expiresAt" is null"#)
            .await,
        1
    );
}

async fn tokens_are_handed_out_again_then_renewed(b: Backend) {
    let app = spawn_with(b, jwt_on).await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    let first = token(&app, &mut jar).await;
    app.clock.advance_secs(179);
    assert_eq!(
        token(&app, &mut jar).await,
        first,
        "within a fifth of its life"
    );
    app.clock.advance_secs(2);
    let second = token(&app, &mut jar).await;
    assert_ne!(second, first);
    let jwks = key_set(&app).await;
    let c = verify(&second, &jwks, BASE_URL);
    assert_eq!(c["iat"].as_i64().unwrap(), app.clock_ms() / 1000);
    // A changed user gets a new token at once.
    let res = app
        .post("/update-user", json!({"name": "Grace"}), &mut jar)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let third = token(&app, &mut jar).await;
    assert_eq!(verify(&third, &jwks, BASE_URL)["name"], "Grace");
}

async fn keys_rotate_and_stay_published_for_the_grace_period(b: Backend) {
    let app = spawn_with(b, |s| {
        jwt_on(s);
        s.plugins.jwt.jwks.rotation_interval = 3600;
        s.plugins.jwt.jwks.grace_period = 600;
    })
    .await;
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    let t1 = token(&app, &mut jar).await;
    let kid1 = header_of(&t1)["kid"].clone();
    app.clock.advance_secs(3601);
    let t2 = token(&app, &mut jar).await;
    let kid2 = header_of(&t2)["kid"].clone();
    assert_ne!(kid1, kid2, "the first key expired: a new one signs");
    let jwks = key_set(&app).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "{jwks}");
    verify(&t1, &jwks, BASE_URL);
    verify(&t2, &jwks, BASE_URL);
    app.clock.advance_secs(600);
    let jwks = key_set(&app).await;
    let kids: Vec<&Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["kid"])
        .collect();
    assert_eq!(kids, [&kid2], "past its grace period the first key is gone");
    assert_eq!(app.count(r#"select count(*) from "jwks""#).await, 2);
}

async fn forward_auth_carries_a_jwt_per_audience(b: Backend) {
    let app = spawn_with(b, |s| {
        jwt_on(s);
        s.forward_auth.jwt.enabled = true;
        s.forward_auth.jwt.audiences = vec!["orders".into()];
    })
    .await;
    let fa = |q: &str| format!("http://{}/forward-auth{q}", app.addr);
    let (jar, signed_up) = app.sign_up(&unique_email()).await;
    let uid = signed_up.json()["user"]["id"].clone();
    let get = |url: String, cookie: String| {
        let c = app.client.get(url);
        async move {
            let r = c.header("cookie", cookie).send().await.unwrap();
            let status = r.status().as_u16();
            let jwt = r
                .headers()
                .get("x-auth-jwt")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, jwt, r.text().await.unwrap())
        }
    };
    let jwks = key_set(&app).await;
    let (status, jwt, _) = get(fa(""), jar.header()).await;
    assert_eq!(status, 200);
    let c = verify(&jwt.expect("x-auth-jwt"), &jwks, BASE_URL);
    assert_eq!(c["sub"], uid);
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 300);
    let (status, jwt, _) = get(fa("?aud=orders"), jar.header()).await;
    assert_eq!(status, 200);
    assert_eq!(verify(&jwt.unwrap(), &jwks, "orders")["aud"], "orders");
    for bad in ["?aud=billing", "?aud=", "?aud=orders%00"] {
        let (status, jwt, body) = get(fa(bad), jar.header()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("INVALID_AUDIENCE"), "{body}");
        assert!(jwt.is_none());
    }
    let (status, jwt, _) = get(fa("?aud=orders"), String::new()).await;
    assert_eq!(status, 401);
    assert!(jwt.is_none(), "no session, no token");
}

/// A key sealed under secret version 1 still signs after version 2 becomes current; once
/// version 1 is dropped it cannot be opened, and signing fails rather than making keys
/// nobody else can read; get-session keeps answering, without `set-auth-jwt`.
async fn keys_open_under_every_secret_version(b: Backend) {
    let v = |version: u64, value: &str| VersionedSecret {
        version,
        value: value.to_owned().into(),
    };
    let old = "first-secret-version-aaaaaaaaaaaaaaaaaaaa";
    let new = "second-secret-version-bbbbbbbbbbbbbbbbbbbb";
    let app = spawn_with(b, |s| {
        jwt_on(s);
        s.secrets = vec![v(1, old)];
    })
    .await;
    let (_, signed_up) = app.sign_up(&unique_email()).await;
    assert_eq!(signed_up.status, 200);
    let jwks = key_set(&app).await;
    let kid = jwks["keys"][0]["kid"].clone();
    assert_eq!(
        app.count(r#"select count(*) from "jwks" where "privateKey" like '"$ba$1$%'"#)
            .await,
        1
    );
    let url = app.db_url.clone();
    let again = |secrets: Vec<VersionedSecret>| {
        let url = url.clone();
        spawn_with(b, move |s| {
            jwt_on(s);
            s.database.url = url.into();
            s.secrets = secrets;
        })
    };
    let rotated = again(vec![v(2, new), v(1, old)]).await;
    let (mut jar, _) = rotated.sign_up(&unique_email()).await;
    let t = token(&rotated, &mut jar).await;
    assert_eq!(header_of(&t)["kid"], kid, "the old key still signs");
    let retired = again(vec![v(2, new)]).await;
    let (mut jar, _) = retired.sign_up(&unique_email()).await;
    let res = retired.get("/token", &mut jar).await;
    assert_eq!(res.status, 500, "{}", res.text);
    assert_eq!(res.code().as_deref(), Some("JWT_SIGNING_FAILED"));
    // get-session still answers, without the header (Better Auth would fail it).
    let res = retired.get("/get-session", &mut jar).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(res.json()["user"].is_object());
    assert!(res.header("set-auth-jwt").is_none());
}

/// Other algorithms, a key set elsewhere, no header, the `sid` claim, uuid and serial ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn algorithms_paths_and_ids() {
    for alg in [KeyAlg::ES256, KeyAlg::RS256, KeyAlg::PS256] {
        let app = spawn_with(Backend::Sqlite, |s| {
            jwt_on(s);
            s.plugins.jwt.jwks.alg = alg;
        })
        .await;
        let (mut jar, _) = app.sign_up(&unique_email()).await;
        let t = token(&app, &mut jar).await;
        assert_eq!(header_of(&t)["alg"], alg.as_str());
        verify(&t, &key_set(&app).await, BASE_URL);
    }
    let app = spawn_with(Backend::Sqlite, |s| {
        jwt_on(s);
        s.plugins.jwt.jwks.jwks_path = "/.well-known/jwks.json".into();
        s.plugins.jwt.disable_setting_jwt_header = true;
        s.plugins.jwt.issuer = "https://issuer.example".into();
        s.revocation_feed.enabled = true;
        s.revocation_feed.open = true;
    })
    .await;
    assert_eq!(app.get("/jwks", &mut Jar::default()).await.status, 404);
    let res = app.get("/.well-known/jwks.json", &mut Jar::default()).await;
    assert_eq!(res.status, 200);
    let (mut jar, _) = app.sign_up(&unique_email()).await;
    let res = app.get("/get-session", &mut jar).await;
    assert!(res.header("set-auth-jwt").is_none());
    let t = token(&app, &mut jar).await;
    let claims = {
        use base64::Engine;
        let body = t.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()
    };
    assert_eq!(claims["iss"], "https://issuer.example");
    let token_value = jar.get(TOKEN_COOKIE).unwrap().clone();
    let raw = percent_encoding::percent_decode_str(&token_value)
        .decode_utf8()
        .unwrap();
    let session_token = raw.split('.').next().unwrap();
    let expected = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(session_token.as_bytes()))
    };
    assert_eq!(claims["sid"], expected.as_str());
    for (ids, kid_ok) in [
        (
            GenerateId::Uuid,
            (|k: &str| uuid::Uuid::parse_str(k).is_ok()) as fn(&str) -> bool,
        ),
        (GenerateId::Serial, |k: &str| k == "1"),
    ] {
        let app = spawn_with(Backend::Postgres, |s| {
            jwt_on(s);
            s.advanced.database.generate_id = ids;
        })
        .await;
        let jwks = key_set(&app).await;
        let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
        assert!(kid_ok(&kid), "{ids:?}: {kid}");
        let (mut jar, _) = app.sign_up(&unique_email()).await;
        verify(&token(&app, &mut jar).await, &jwks, BASE_URL);
    }
}

/// Settings the plugin cannot work with are refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_settings_are_refused() {
    type Tweak = fn(&mut Settings);
    let cases: Vec<(Tweak, &str)> = vec![
        (|s| s.forward_auth.jwt.enabled = true, "forward_auth.jwt"),
        (
            |s| {
                jwt_on(s);
                s.plugins.jwt.jwks.jwks_path = "/../x".into();
            },
            "jwks_path",
        ),
        (
            |s| {
                jwt_on(s);
                s.plugins.jwt.jwks.jwks_path = "/get-session".into();
            },
            "another route",
        ),
        (
            |s| {
                jwt_on(s);
                s.plugins.jwt.jwks.crv = "P-256".into();
            },
            "crv",
        ),
        (
            |s| {
                jwt_on(s);
                s.plugins.jwt.jwks.modulus_length = 1024;
            },
            "modulus_length",
        ),
        (
            |s| {
                s.revocation_feed.enabled = true;
                s.revocation_feed.key = "short".to_string().into();
            },
            "revocation_feed.key",
        ),
    ];
    for (tweak, expected) in cases {
        let mut s = test_settings();
        tweak(&mut s);
        let err = s
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(expected), "{expected}: {err:?}");
    }
    // Without migrations, a missing table is named.
    let dir = tempfile::tempdir().unwrap();
    let mut s = test_settings();
    s.data_dir = dir.path().to_path_buf();
    let app = sessiond::app::Application::build(s.clone()).await;
    assert!(app.is_ok());
    drop(app);
    jwt_on(&mut s);
    s.database.migrate_on_start = false;
    let err = sessiond::app::Application::build(s)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("jwks table"), "{err}");
}
