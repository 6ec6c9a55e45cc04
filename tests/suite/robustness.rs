//! Randomised robustness of every parser that reads client input: cookie headers, signed
//! cookies, the three cookie-cache decoders and the cached record schema. Fixed seeds, many
//! iterations: nothing panics, garbage is refused, and any single-byte change to a valid
//! signed or encrypted value is refused.

use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use sessiond::crypto::cache::{CacheCodec, Strategy};
use sessiond::crypto::signed::{Keyring, SigningKey, Verified};
use sessiond::model::{Session, User};
use sessiond::session::cookies::RequestCookies;

const SECRET: &str = "robustness-secret-xEnDrPhvkd3WfpfZVR4Mw3RFnVjhXy";
const NOW: i64 = 1_767_225_600_000;

fn random_text(rng: &mut impl Rng, max: usize) -> String {
    const ALPHABET: &[u8] = b"abcXYZ019=;.%\\\"' \t-_+/,{}[]:";
    let len = rng.gen_range(0..max);
    (0..len)
        .map(|_| {
            if rng.gen_bool(0.05) {
                char::from_u32(rng.gen_range(0x80..0x3000)).unwrap_or('?')
            } else {
                ALPHABET[rng.gen_range(0..ALPHABET.len())] as char
            }
        })
        .collect()
}

fn payload() -> (Map<String, Value>, Map<String, Value>) {
    let session = json!({
        "expiresAt": "2026-01-08T00:00:00.000Z", "token": "Tk7fJ2hL9mNpQ4rS6tVwX8yZ1aBcD3eF",
        "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z",
        "ipAddress": "127.0.0.1", "userAgent": "ua", "userId": "u1", "id": "s1"
    });
    let user = json!({
        "name": "Zoë", "email": "z@example.com", "emailVerified": true, "image": null,
        "createdAt": "2025-12-01T08:00:00.000Z", "updatedAt": "2025-12-01T08:00:00.000Z", "id": "u1"
    });
    (
        session.as_object().unwrap().clone(),
        user.as_object().unwrap().clone(),
    )
}

#[test]
fn cookie_headers_never_panic() {
    let key = Keyring::new([SECRET]).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for _ in 0..20_000 {
        let header = random_text(&mut rng, 120);
        let c = RequestCookies::new(header.clone());
        let _ = c.get("a");
        let _ = c.carried("better-auth.session_data");
        let name = header.split('=').next().unwrap_or("").trim().to_string();
        let _ = c.get(&name);
        match c.signed(&name, &key) {
            Verified::Valid(v) | Verified::Older(v) => {
                panic!("random header verified: {header:?} -> {v:?}")
            }
            Verified::Invalid | Verified::Absent => {}
        }
    }
}

#[test]
fn signed_values_refuse_every_single_byte_change() {
    let key = SigningKey::new(SECRET.as_bytes()).unwrap();
    let signed = key.sign("Tk7fJ2hL9mNpQ4rS6tVwX8yZ1aBcD3eF");
    assert_eq!(
        key.verify(&signed),
        Verified::Valid("Tk7fJ2hL9mNpQ4rS6tVwX8yZ1aBcD3eF".into())
    );
    let bytes = signed.as_bytes();
    for i in 0..bytes.len() {
        for replacement in [b'A', b'z', b'0', b'+', b'/', b'.', b'='] {
            if bytes[i] == replacement {
                continue;
            }
            let mut m = bytes.to_vec();
            m[i] = replacement;
            let m = String::from_utf8(m).unwrap();
            if let Verified::Valid(v) = key.verify(&m) {
                // Only base64's ignored low bits of the 43rd character may change (as atob).
                assert_eq!(v, "Tk7fJ2hL9mNpQ4rS6tVwX8yZ1aBcD3eF", "{m}");
                assert_eq!(i, bytes.len() - 2, "{m}");
            }
        }
    }
}

#[test]
fn cache_decoders_never_panic_and_refuse_garbage() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    for strategy in [Strategy::Compact, Strategy::Jwt, Strategy::Jwe] {
        let codec = CacheCodec::new(strategy, SECRET, &[]);
        for _ in 0..5_000 {
            let text = random_text(&mut rng, 300);
            assert!(
                codec.decode(&text, NOW).is_err(),
                "{strategy:?} accepted {text:?}"
            );
        }
        // Structured garbage: dotted segments of base64url.
        for _ in 0..2_000 {
            let parts: Vec<String> = (0..rng.gen_range(1..7))
                .map(|_| {
                    let bytes: Vec<u8> = (0..rng.gen_range(0..60)).map(|_| rng.gen()).collect();
                    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
                })
                .collect();
            let text = parts.join(".");
            assert!(
                codec.decode(&text, NOW).is_err(),
                "{strategy:?} accepted {text:?}"
            );
        }
    }
}

#[test]
fn cache_values_refuse_every_single_byte_change() {
    let (session, user) = payload();
    for strategy in [Strategy::Compact, Strategy::Jwt, Strategy::Jwe] {
        let codec = CacheCodec::new(strategy, SECRET, &[]);
        let value = codec.encode(&session, &user, "1", NOW, Some(300)).unwrap();
        let good = codec.decode(&value, NOW).unwrap();
        assert_eq!(good.session, session);
        let bytes = value.as_bytes();
        let step = (bytes.len() / 150).max(1);
        for i in (0..bytes.len()).step_by(step) {
            let mut m = bytes.to_vec();
            m[i] = if m[i] == b'A' { b'B' } else { b'A' };
            let m = String::from_utf8(m).unwrap();
            if let Ok(p) = codec.decode(&m, NOW) {
                // Base64's unused low bits may flip without changing the decoded bytes.
                assert_eq!(
                    p.session, good.session,
                    "{strategy:?}: byte {i} changed the payload"
                );
                assert_eq!(p.user, good.user);
            }
        }
        // Another secret never decodes it.
        let other = CacheCodec::new(
            strategy,
            "another-secret-eUqEHicL2XKhcCuE2mn46WXwYqhp5f",
            &[],
        );
        assert!(other.decode(&value, NOW).is_err(), "{strategy:?}");
    }
}

#[test]
fn cached_records_with_random_fields_never_panic() {
    let (session, user) = payload();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let values = [
        json!(null),
        json!(true),
        json!(0),
        json!(-1.5e300),
        json!(""),
        json!("2026-01-01T00:00:00Z"),
        json!("2026-13-45T99:99:99.999Z"),
        json!([]),
        json!({}),
    ];
    for _ in 0..5_000 {
        let mut s = session.clone();
        let mut u = user.clone();
        for _ in 0..3 {
            let v = values[rng.gen_range(0..values.len())].clone();
            let keys: Vec<String> = s.keys().cloned().collect();
            s.insert(keys[rng.gen_range(0..keys.len())].clone(), v.clone());
            let keys: Vec<String> = u.keys().cloned().collect();
            u.insert(keys[rng.gen_range(0..keys.len())].clone(), v);
        }
        let _ = Session::from_json(&s);
        let _ = User::from_json(&u);
    }
    assert!(Session::from_json(&session).is_some());
    assert!(User::from_json(&user).is_some());
}
