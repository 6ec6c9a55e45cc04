//! Better Auth's bearer plugin as a rule on one `Authorization` value: the signed session
//! cookie value it stands for, if any. The caller puts that value in place of the
//! request's session-token cookie (its other cookies stay, as in Better Auth); a value
//! that does not pass is ignored, so that a JWT or junk meant for another service does not
//! hide a good cookie.
//!
//! The rules, in Better Auth's order:
//! - the scheme is the first seven characters, `bearer ` in any case; the rest is trimmed,
//!   and an empty rest is ignored;
//! - a value holding `.` is `token.signature`, percent-decoded when it holds `%` (kept as
//!   is when it does not decode); a bare value is signed here, unless signatures are
//!   required (then it is ignored);
//! - the signature is the text between the first and second `.`, decoded by
//!   `@better-auth/utils`' lenient base64, and must be the HMAC of the text before the
//!   first `.` under the CURRENT secret (Better Auth's `ctx.context.secret`): a value
//!   signed under an older secret version is ignored, though the same value in the cookie
//!   would be accepted and signed again.
//!
//! What passes is the whole decoded value, which the cookie reader then verifies as it
//! verifies any cookie (its last `.`, a 44-character signature).

use crate::crypto::signed::SigningKey;

/// The signed session-token cookie value `authorization` stands for, or `None` when it is
/// to be ignored. `key` is the current secret's; `require_signature` refuses bare tokens.
/// The value is bounded by the server's request-head limit (`server.max_header_bytes`), as
/// a cookie is; the work on it is linear in its length.
pub fn cookie_value(
    authorization: &str,
    key: &SigningKey,
    require_signature: bool,
) -> Option<String> {
    let scheme = authorization.get(..7)?;
    if !scheme.eq_ignore_ascii_case("bearer ") {
        return None;
    }
    let token = crate::js::string::trim(authorization.get(7..)?);
    if token.is_empty() {
        return None;
    }
    let decoded = if token.contains('.') {
        if token.contains('%') {
            crate::js::string::decode_uri_component(token).unwrap_or_else(|| token.to_owned())
        } else {
            token.to_owned()
        }
    } else if require_signature {
        return None;
    } else {
        key.sign(token)
    };
    let mut parts = decoded.split('.');
    let value = parts.next()?;
    let signature = parts.next()?;
    let tag = crate::js::base64::decode_lenient(signature)?;
    // `check` compares in constant time.
    key.check(value.as_bytes(), &tag).then_some(decoded)
}

#[cfg(test)]
mod tests {
    use super::cookie_value;
    use crate::crypto::signed::SigningKey;

    fn key() -> SigningKey {
        SigningKey::new(b"a-secret-of-enough-length-for-tests-0123456789").unwrap()
    }

    #[test]
    fn the_plugin_rules() {
        let k = key();
        let signed = k.sign("tok");
        let ok = |v: &str| cookie_value(v, &k, false);
        assert_eq!(ok(&format!("Bearer {signed}")), Some(signed.clone()));
        assert_eq!(ok(&format!("bEaReR   {signed}  ")), Some(signed.clone()));
        let encoded = signed
            .replace('=', "%3D")
            .replace('+', "%2B")
            .replace('/', "%2F");
        assert_eq!(ok(&format!("Bearer {encoded}")), Some(signed.clone()));
        assert_eq!(ok("Bearer tok"), Some(signed.clone()));
        assert_eq!(cookie_value("Bearer tok", &k, true), None);
        assert_eq!(
            cookie_value(&format!("Bearer {signed}"), &k, true),
            Some(signed.clone())
        );
        for ignored in [
            "Bearer ",
            "Bearer    ",
            "Bearer",
            "Basic dG9rOg==",
            "Bearer\ttok",
            "",
        ] {
            assert_eq!(ok(ignored), None, "{ignored:?}");
        }
        // A signature under another secret, a tampered one, junk.
        let other = SigningKey::new(b"another-secret-of-enough-length-0123456789").unwrap();
        assert_eq!(ok(&format!("Bearer {}", other.sign("tok"))), None);
        assert_eq!(
            ok(&format!("Bearer {}", signed.replace("tok.", "tol."))),
            None
        );
        for junk in [
            ".",
            "a.",
            ".b",
            "a.b.c",
            "%ZZ.x",
            "%00.x",
            "eyJhbGciOiJIUzI1NiJ9.e30.sig",
        ] {
            assert_eq!(ok(&format!("Bearer {junk}")), None, "{junk}");
        }
        let dots = format!("Bearer {}", ".".repeat(10_000));
        assert_eq!(ok(&dots), None);
    }

    #[test]
    fn a_signature_verifies_on_the_first_dot_as_better_auth_checks_it() {
        // Better Auth checks the text between the first and second dot, and stops decoding
        // at `=`: what follows passes here; the cookie reader then refuses it.
        let k = key();
        let signed = k.sign("tok");
        let v = format!("Bearer {signed}.more");
        assert_eq!(cookie_value(&v, &k, false), Some(format!("{signed}.more")));
    }
}
