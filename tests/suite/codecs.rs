//! Codecs checked byte for byte against values produced by Better Auth 1.7.25
//! (`tests/vectors/better-auth-1.7.json`).

use serde_json::Value;
use sessiond::config::Settings;
use sessiond::crypto::password::{hash_with_salt, verify_blocking, PasswordError};
use sessiond::crypto::signed::{Keyring, SigningKey, Verified};
use sessiond::crypto::token::generate_with;
use sessiond::http::set_cookie::{encode_uri_component, CookieWriter};
use sessiond::session::cookies::{CarriedCache, CookieKind, RequestCookies};

use crate::support::vectors::{s, vectors};

#[test]
fn signed_session_token_matches() {
    let v = vectors();
    let key = SigningKey::new(s(&v, "/inputs/secret").as_bytes()).unwrap();
    let st = &v["signed_cookie"]["session_token"];
    let token = s(st, "/token");
    assert_eq!(key.signature(token), s(st, "/signature_base64"));
    assert_eq!(key.sign(token), s(st, "/value_decoded"));
    assert_eq!(
        encode_uri_component(&key.sign(token)),
        s(st, "/value_on_wire")
    );
    let cfg = CookieWriter::new(&Settings {
        base_url: s(&v, "/inputs/base_url").into(),
        ..Settings::default()
    });
    assert_eq!(
        cfg.set(CookieKind::Token, &key.sign(token), Some(604_800)),
        s(st, "/set_cookie_via_better_call")
    );
    let dr = &v["signed_cookie"]["dont_remember"];
    assert_eq!(
        encode_uri_component(&key.sign("true")),
        s(dr, "/value_on_wire")
    );
}

#[test]
fn signed_cookie_verify_cases() {
    let v = vectors();
    let secret = s(&v, "/inputs/secret");
    let cases = v["signed_cookie"]["verify_cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let case_secret = match case["secret"].as_str().unwrap() {
            "<inputs.secret>" => secret,
            other => other,
        };
        let header = case["cookie_header"].as_str().unwrap_or("").to_string();
        let ring = Keyring::new([case_secret]).unwrap();
        let got = RequestCookies::new(header).signed("better-auth.session_token", &ring);
        let expected = match &case["result"] {
            Value::String(t) => Verified::Valid(t.clone()),
            Value::Bool(false) => Verified::Invalid,
            Value::Null => Verified::Absent,
            other => panic!("unexpected result {other}"),
        };
        assert_eq!(got, expected, "case {}", case["case"]);
    }
}

#[test]
fn cookie_variant_https_prefix_and_domain() {
    let v = vectors();
    let var = &v["cookie_variants"]["https_custom_prefix_cross_subdomain"];
    let mut st = Settings {
        base_url: "https://auth.example.com".into(),
        ..Settings::default()
    };
    st.session.expires_in = 2_592_000;
    st.advanced.cookie_prefix = "myapp".into();
    st.advanced.cross_sub_domain_cookies.enabled = true;
    st.advanced.cross_sub_domain_cookies.domain = "example.com".into();
    let cfg = CookieWriter::new(&st);
    assert_eq!(cfg.names.token, "__Secure-myapp.session_token");
    let key = SigningKey::new(s(&v, "/inputs/secret").as_bytes()).unwrap();
    let token = s(&v, "/inputs/db_session_row/token");
    let expected = var["response_set_cookie"][0].as_str().unwrap();
    assert_eq!(
        cfg.set(CookieKind::Token, &key.sign(token), Some(2_592_000)),
        expected
    );
    // The data cookie shares the attributes (its value is the cache, issue of its own).
    let data_line = var["response_set_cookie"][1].as_str().unwrap();
    let data_value = data_line
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1;
    assert_eq!(cfg.set(CookieKind::Cache, data_value, Some(600)), data_line);
}

#[test]
fn server_flow_remember_me_false_cookies() {
    let v = vectors();
    let flow = &v["server_flows"]["sign_in_email_remember_me_false"];
    let key = SigningKey::new(s(&v, "/inputs/secret").as_bytes()).unwrap();
    let cfg = CookieWriter::new(&Settings {
        base_url: "http://localhost:3000".into(),
        ..Settings::default()
    });
    let lines: Vec<&str> = flow["response_set_cookie"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(
        cfg.set(
            CookieKind::Token,
            &key.sign(s(flow, "/session_token")),
            None
        ),
        lines[0]
    );
    assert_eq!(
        cfg.set(CookieKind::DontRemember, &key.sign("true"), None),
        lines[1]
    );
    let out = &v["server_flows"]["sign_out"]["response_set_cookie"];
    assert_eq!(cfg.expire(CookieKind::Token), out[0].as_str().unwrap());
    assert_eq!(
        cfg.expire(CookieKind::DontRemember),
        out[3].as_str().unwrap()
    );
}

#[test]
fn id_generation_with_injected_bytes() {
    let v = vectors();
    let g = &v["id_generation"]["generateId"];
    let bytes = hex::decode(s(g, "/injected_random_bytes_hex")).unwrap();
    let mut pos = 0;
    let out = generate_with(32, |buf| {
        for b in buf.iter_mut() {
            *b = bytes[pos % bytes.len()];
            pos += 1;
        }
    });
    assert_eq!(out, s(g, "/output_length_32"));
    assert_eq!(
        sessiond::crypto::token::ALPHABET.as_slice(),
        s(g, "/alphabet").as_bytes()
    );
}

#[test]
fn password_hashes_both_ways() {
    let v = vectors();
    let p = &v["password"];
    // Made by Better Auth, verified here.
    assert!(verify_blocking(
        s(p, "/hashed_by_package/password"),
        s(p, "/hashed_by_package/hash")
    )
    .unwrap());
    let stored = s(&v, "/server_flows/sign_up_email/stored_account_password");
    assert!(verify_blocking("correct horse battery staple", stored).unwrap());
    // Made here, identical to what Better Auth accepts (same salt → same bytes).
    let salt = s(p, "/hashed_elsewhere/salt");
    assert_eq!(
        hash_with_salt(s(p, "/hashed_elsewhere/password"), salt).unwrap(),
        s(p, "/hashed_elsewhere/hash")
    );
    for case in [
        "nfkc_equivalent_password",
        "uppercase_hex_key",
        "salt_hex_decoded_instead_of_ascii",
        "wrong_password",
    ] {
        let c = &p[case];
        let expected = c["verifyPassword"].as_bool().unwrap();
        assert_eq!(
            verify_blocking(s(c, "/password"), s(c, "/hash")).unwrap(),
            expected,
            "{case}"
        );
    }
    assert!(matches!(
        verify_blocking("x", s(p, "/malformed_hash/hash")),
        Err(PasswordError::Malformed)
    ));
    // A fresh hash has Better Auth's shape and verifies.
    let h = sessiond::crypto::password::hash_blocking("pässword").unwrap();
    let (salt, key) = h.split_once(':').unwrap();
    assert_eq!(salt.len(), 32);
    assert_eq!(key.len(), 128);
    assert!(key
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert!(verify_blocking("pässword", &h).unwrap());
}

#[test]
fn cookie_parsing_rules() {
    let c = RequestCookies::new("a=1; b=\"quoted%20v\"; a=2; c=x%ZZ; d=p+q".into());
    assert_eq!(c.get("a").as_deref(), Some("1"));
    assert_eq!(c.get("b").as_deref(), Some("quoted v"));
    assert_eq!(c.get("c").as_deref(), Some("x%ZZ"));
    assert_eq!(c.get("d").as_deref(), Some("p+q"));
    assert_eq!(c.get("missing"), None);
    let chunks = RequestCookies::new(
        "x.session_data.1=a; x.session_data.0=b; x.session_data=c; x.session_data.z=d".into(),
    );
    // The whole cookie and chunks 0 and 1; other suffixes are not chunks.
    assert_eq!(
        chunks.carried("x.session_data"),
        CarriedCache {
            whole: true,
            chunks: 0b11
        }
    );
}

/// The jwt plugin's private keys are sealed with Better Auth's `symmetricEncrypt`: its
/// values open here, bare and enveloped, and ours open under the same rules.
#[test]
fn symmetric_encryption_opens_better_auths_values() {
    use sessiond::crypto::secrets::SecretSet;
    use sessiond::crypto::symmetric::{open, seal, OpenError};
    let v = vectors();
    let secret = s(&v, "/inputs/secret").to_string();
    let other = s(&v, "/inputs/other_secret_for_negative_cases").to_string();
    let se = &v["symmetric_encryption"];
    let data = s(se, "/xchacha20poly1305/data");
    let single = SecretSet::single(secret.clone());
    assert_eq!(
        open(&single, s(se, "/xchacha20poly1305/output_hex")).unwrap(),
        data
    );
    let versioned =
        SecretSet::versioned(vec![(2, secret.clone()), (1, other.clone())], None).unwrap();
    let enveloped = s(se, "/xchacha20poly1305_envelope/output");
    assert_eq!(open(&versioned, enveloped).unwrap(), data);
    // Version 2 rotated out: the envelope names a secret no longer held.
    let rotated = SecretSet::versioned(vec![(3, other.clone()), (1, other.clone())], None).unwrap();
    assert_eq!(open(&rotated, enveloped), Err(OpenError::UnknownVersion));
    // A bare value under versioned secrets needs the legacy secret.
    let bare = s(se, "/xchacha20poly1305/output_hex");
    assert_eq!(open(&versioned, bare), Err(OpenError::UnknownVersion));
    let with_legacy = SecretSet::versioned(vec![(2, other.clone())], Some(secret.clone())).unwrap();
    assert_eq!(open(&with_legacy, bare).unwrap(), data);
    assert_eq!(
        open(&SecretSet::single(other), bare),
        Err(OpenError::Refused)
    );
    // Ours: enveloped with the current version, and readable back.
    let ours = seal(&versioned, data).unwrap();
    assert!(ours.starts_with("$ba$2$"), "{ours}");
    assert_eq!(open(&versioned, &ours).unwrap(), data);
    let bare_ours = seal(&single, data).unwrap();
    assert!(bare_ours.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(open(&single, &bare_ours).unwrap(), data);
}
