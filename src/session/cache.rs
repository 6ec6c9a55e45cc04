//! The `session_data` cookie cache codecs, byte-compatible with Better Auth 1.7:
//! `compact` (base64url JSON + HMAC-SHA256 over the JavaScript `JSON.stringify` text),
//! `jwt` (HS256) and `jwe` (`dir` + A256CBC-HS512 with an HKDF-derived key and a
//! thumbprint `kid`). The codec only signs, encrypts, verifies and checks the token-level
//! expiry; whether a decoded payload is acceptable for a request (token, version, session
//! expiry) is the session service's decision.
//!
//! Everything written here is JSON exactly as JavaScript's `JSON.stringify` prints it
//! (key order kept, integer-like keys first, JS number formatting, JS string escaping), so
//! the bytes match Better Auth's for the same inputs and clock.
//!
//! Compact values are verified the way Better Auth verifies them: the MAC covers the
//! JavaScript re-serialization of the *parsed* value, after Better Auth's date reviver
//! turned every ISO-looking string into a `Date` (printed again as `.sssZ`). So a value
//! whose ISO strings are not canonical fails, exactly as it does in Better Auth.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use josekit::jwe::enc::A256CBC_HS512;
use josekit::jwe::JweContentEncryption;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use rand::rngs::OsRng;
use rand::RngCore;
use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256, Sha512};

use crate::crypto::signed::SigningKey;

pub use crate::config::CacheStrategy as Strategy;

/// Why a cache value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    /// Not decodable, wrong signature, wrong key, wrong algorithm or malformed.
    #[error("invalid cookie cache value")]
    Invalid,
    /// The token-level expiry (`exp`, with the strategy's tolerance) has passed.
    #[error("cookie cache expired")]
    Expired,
    /// Encoding failed.
    #[error("cookie cache could not be encoded")]
    Encode,
}

/// A decoded, verified cache payload.
#[derive(Debug, Clone, PartialEq)]
pub struct CachePayload {
    /// The `session` object as received (keys in received order).
    pub session: Map<String, Value>,
    /// The `user` object as received.
    pub user: Map<String, Value>,
    /// `updatedAt` (ms since the epoch).
    pub updated_at: Option<i64>,
    /// `version`, if present.
    pub version: Option<String>,
    /// When the cache window ends, in ms (compact: the outer `expiresAt`; jwt/jwe: `exp`·1000).
    pub expires_at_ms: i64,
}

/// HKDF salt of the `session_data` JWE key.
pub const JWE_SESSION_SALT: &str = "better-auth-session";
/// HKDF salt of the `account_data` JWE key (same derivation, other cookie).
pub const JWE_ACCOUNT_SALT: &str = "better-auth-account";
/// HKDF info of every Better Auth JWE key.
pub const JWE_HKDF_INFO: &str = "BetterAuth.js Generated Encryption Key";

// Fallback lifetimes when the cookie has no Max-Age (`maxAge || 60`, `maxAge || 300`),
// kept with the settings, which derive the longest cache window from them.
use crate::config::{COMPACT_FALLBACK_S, TOKEN_FALLBACK_S};
/// jose's `clockTolerance` in `symmetricDecodeJWT`.
const JWE_CLOCK_TOLERANCE_S: f64 = 15.0;

const JWT_HEADER: &str = r#"{"alg":"HS256"}"#;
const JWE_ALG: &str = "dir";
const JWE_ENC: &str = "A256CBC-HS512";
const JWE_IV_LEN: usize = 16;
const JWE_TAG_LEN: usize = 32;

/// `HKDF-SHA256(IKM = utf8(secret), salt = utf8(salt), info = JWE_HKDF_INFO, L = 64)`, the
/// A256CBC-HS512 key of Better Auth's `symmetricEncodeJWT` (`None` cannot happen for L = 64).
pub fn derive_jwe_key(secret: &str, salt: &str) -> Option<[u8; 64]> {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(salt.as_bytes()), secret.as_bytes());
    let mut okm = [0u8; 64];
    hk.expand(JWE_HKDF_INFO.as_bytes(), &mut okm).ok()?;
    Some(okm)
}

/// The RFC 7638 thumbprint of `{"kty":"oct","k":b64url(key)}` that Better Auth writes as
/// the JWE `kid`: `b64url(SHA-256('{"k":"<b64url(key)>","kty":"oct"}'))`.
pub fn jwe_kid(key: &[u8]) -> String {
    let input = format!(r#"{{"k":"{}","kty":"oct"}}"#, URL_SAFE_NO_PAD.encode(key));
    URL_SAFE_NO_PAD.encode(Sha256::digest(input.as_bytes()))
}

/// One JWE key (current or rotated-out secret) with its `kid`.
#[derive(Clone)]
struct JweKey {
    key: [u8; 64],
    kid: String,
}

impl JweKey {
    fn new(secret: &str) -> Option<Self> {
        let key = derive_jwe_key(secret, JWE_SESSION_SALT)?;
        Some(Self {
            kid: jwe_kid(&key),
            key,
        })
    }
}

/// Encoder and decoder for one strategy and secret set.
#[derive(Clone)]
pub struct CacheCodec {
    strategy: Strategy,
    /// The current secret's HMAC-SHA256 key (compact), keyed once.
    hmac: Option<SigningKey>,
    /// The current secret as jwt keys, built once.
    jwt_encoding: EncodingKey,
    jwt_decoding: DecodingKey,
    /// JWE keys: the current secret's first, then the older ones (empty unless `Jwe`).
    jwe_keys: Vec<JweKey>,
}

impl std::fmt::Debug for CacheCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheCodec")
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

impl CacheCodec {
    /// A codec for `strategy`. `secret` is the current secret; `older_secrets` are
    /// rotated-out secrets still accepted when decrypting JWE values.
    pub fn new(strategy: Strategy, secret: &str, older_secrets: &[String]) -> Self {
        let mut jwe_keys = Vec::new();
        if strategy == Strategy::Jwe {
            let mut seen: Vec<&str> = Vec::new();
            for s in std::iter::once(secret).chain(older_secrets.iter().map(String::as_str)) {
                if seen.contains(&s) {
                    continue;
                }
                seen.push(s);
                jwe_keys.extend(JweKey::new(s));
            }
        }
        Self {
            strategy,
            hmac: SigningKey::new(secret.as_bytes()).ok(),
            jwt_encoding: EncodingKey::from_secret(secret.as_bytes()),
            jwt_decoding: DecodingKey::from_secret(secret.as_bytes()),
            jwe_keys,
        }
    }

    /// The strategy in use.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Encodes `{session, user, updatedAt: now_ms, version}`. `max_age` is the cookie's
    /// Max-Age; `None` (a session that is not remembered) embeds Better Auth's fallbacks:
    /// 60 s for compact, 300 s for jwt and jwe.
    pub fn encode(
        &self,
        session: &Map<String, Value>,
        user: &Map<String, Value>,
        version: &str,
        now_ms: i64,
        max_age: Option<u64>,
    ) -> Result<String, CacheError> {
        match self.strategy {
            Strategy::Compact => self.encode_compact(session, user, version, now_ms, max_age),
            Strategy::Jwt => self.encode_jwt(session, user, version, now_ms, max_age),
            Strategy::Jwe => {
                let mut iv = [0u8; JWE_IV_LEN];
                let mut jti = [0u8; 16];
                OsRng
                    .try_fill_bytes(&mut iv)
                    .and_then(|()| OsRng.try_fill_bytes(&mut jti))
                    .map_err(|_| CacheError::Encode)?;
                let jti = uuid::Builder::from_random_bytes(jti)
                    .into_uuid()
                    .to_string();
                self.encode_jwe_with(session, user, version, now_ms, max_age, &iv, &jti)
            }
        }
    }

    /// The JWE encoder with the random parts given: `iv` (16 bytes) and `jti`. Only for
    /// reproducing recorded values in tests; [`CacheCodec::encode`] draws both at random.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub fn encode_jwe_with(
        &self,
        session: &Map<String, Value>,
        user: &Map<String, Value>,
        version: &str,
        now_ms: i64,
        max_age: Option<u64>,
        iv: &[u8],
        jti: &str,
    ) -> Result<String, CacheError> {
        let key = self.jwe_keys.first().ok_or(CacheError::Encode)?;
        if iv.len() != JWE_IV_LEN {
            return Err(CacheError::Encode);
        }
        let (iat, exp) = token_times(now_ms, max_age)?;
        let plaintext = payload_json(
            session,
            user,
            version,
            now_ms,
            &[
                ("iat", Value::from(iat)),
                ("exp", Value::from(exp)),
                ("jti", Value::from(jti)),
            ],
        );
        let header = format!(
            r#"{{"alg":"{JWE_ALG}","enc":"{JWE_ENC}","kid":"{}"}}"#,
            key.kid
        );
        let header_b64 = URL_SAFE_NO_PAD.encode(header.as_bytes());
        let (ciphertext, tag) = A256CBC_HS512
            .encrypt(
                &key.key,
                Some(iv),
                plaintext.as_bytes(),
                header_b64.as_bytes(),
            )
            .map_err(|_| CacheError::Encode)?;
        let tag = tag.ok_or(CacheError::Encode)?;
        Ok(format!(
            "{header_b64}..{}.{}.{}",
            URL_SAFE_NO_PAD.encode(iv),
            URL_SAFE_NO_PAD.encode(ciphertext),
            URL_SAFE_NO_PAD.encode(tag)
        ))
    }

    /// Decodes and verifies a cookie value (already percent-decoded and, if chunked,
    /// joined) at `now_ms`.
    pub fn decode(&self, value: &str, now_ms: i64) -> Result<CachePayload, CacheError> {
        match self.strategy {
            Strategy::Compact => self.decode_compact(value),
            Strategy::Jwt => self.decode_jwt(value, now_ms),
            Strategy::Jwe => self.decode_jwe(value, now_ms),
        }
    }

    // ---- compact -------------------------------------------------------------------------

    fn encode_compact(
        &self,
        session: &Map<String, Value>,
        user: &Map<String, Value>,
        version: &str,
        now_ms: i64,
        max_age: Option<u64>,
    ) -> Result<String, CacheError> {
        let secs =
            i64::try_from(fallback(max_age, COMPACT_FALLBACK_S)).map_err(|_| CacheError::Encode)?;
        let expires_at = secs
            .checked_mul(1000)
            .and_then(|ms| ms.checked_add(now_ms))
            .ok_or(CacheError::Encode)?;
        let expires_at = Value::from(expires_at);
        // JSON.stringify({ ...sessionData, expiresAt })
        let signed = payload_json(
            session,
            user,
            version,
            now_ms,
            &[("expiresAt", expires_at.clone())],
        );
        let key = self.hmac.as_ref().ok_or(CacheError::Encode)?;
        let signature = URL_SAFE_NO_PAD.encode(key.raw(signed.as_bytes()));
        // JSON.stringify({ session: sessionData, expiresAt, signature })
        let mut outer = String::from("{\"session\":");
        outer.push_str(&payload_json(session, user, version, now_ms, &[]));
        outer.push_str(",\"expiresAt\":");
        write_js(&expires_at, &mut outer);
        outer.push_str(",\"signature\":");
        write_js_string(&signature, &mut outer);
        outer.push('}');
        Ok(URL_SAFE_NO_PAD.encode(outer.as_bytes()))
    }

    fn decode_compact(&self, value: &str) -> Result<CachePayload, CacheError> {
        // binary.decode(base64Url.decode(value)): lenient base64, then a non-fatal
        // TextDecoder (invalid bytes become U+FFFD, a leading BOM is dropped).
        let bytes = better_auth_base64_decode(value).ok_or(CacheError::Invalid)?;
        let text = String::from_utf8_lossy(&bytes);
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let outer: Value = serde_json::from_str(text).map_err(|_| CacheError::Invalid)?;
        // z.object({ session: z.record(...), expiresAt: z.number(), signature: z.string() })
        let outer = outer.as_object().ok_or(CacheError::Invalid)?;
        let session = outer
            .get("session")
            .and_then(Value::as_object)
            .ok_or(CacheError::Invalid)?;
        let expires_at = match outer.get("expiresAt") {
            Some(Value::Number(n)) => n.clone(),
            _ => return Err(CacheError::Invalid),
        };
        let signature = outer
            .get("signature")
            .and_then(Value::as_str)
            .ok_or(CacheError::Invalid)?;
        // The reviver would have made an ISO-looking signature a Date: not a string.
        if revive_iso_date(signature).is_some() {
            return Err(CacheError::Invalid);
        }
        // JSON.stringify({ ...parsed.session, expiresAt: parsed.expiresAt }) with the
        // revived Dates printed by toISOString.
        let mut signed = session.clone();
        signed.insert("expiresAt".into(), Value::Number(expires_at.clone()));
        let mut signed = Value::Object(signed);
        revive_dates(&mut signed);
        let signed = js_stringify(&signed);
        let tag = better_auth_base64_decode(signature).ok_or(CacheError::Invalid)?;
        let key = self.hmac.as_ref().ok_or(CacheError::Invalid)?;
        // Constant-time; a tag of the wrong length is refused (as WebCrypto does).
        if !key.check(signed.as_bytes(), &tag) {
            return Err(CacheError::Invalid);
        }
        extract(
            session,
            number_to_ms(&expires_at).ok_or(CacheError::Invalid)?,
        )
    }

    // ---- jwt -----------------------------------------------------------------------------

    fn encode_jwt(
        &self,
        session: &Map<String, Value>,
        user: &Map<String, Value>,
        version: &str,
        now_ms: i64,
        max_age: Option<u64>,
    ) -> Result<String, CacheError> {
        let (iat, exp) = token_times(now_ms, max_age)?;
        let claims = payload_json(
            session,
            user,
            version,
            now_ms,
            &[("iat", Value::from(iat)), ("exp", Value::from(exp))],
        );
        // The header and payload bytes are written here (exactly `{"alg":"HS256"}` and the
        // JS serialization); jsonwebtoken computes the HS256 signature over them.
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(JWT_HEADER.as_bytes()),
            URL_SAFE_NO_PAD.encode(claims.as_bytes())
        );
        let signature = jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &self.jwt_encoding,
            Algorithm::HS256,
        )
        .map_err(|_| CacheError::Encode)?;
        Ok(format!("{signing_input}.{signature}"))
    }

    fn decode_jwt(&self, value: &str, now_ms: i64) -> Result<CachePayload, CacheError> {
        // HS256 only (Better Auth's jose also takes HS384/HS512; we never write those).
        // jsonwebtoken checks the algorithm and the signature (constant time); the claims
        // are checked below against the given clock, not the system's.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Value>(value, &self.jwt_decoding, &validation)
            .map_err(|_| CacheError::Invalid)?;
        let claims = data.claims.as_object().ok_or(CacheError::Invalid)?;
        let expires_at_ms = check_claims(claims, now_ms, 0.0)?;
        extract(claims, expires_at_ms)
    }

    // ---- jwe -----------------------------------------------------------------------------

    fn decode_jwe(&self, value: &str, now_ms: i64) -> Result<CachePayload, CacheError> {
        let mut parts = value.split('.');
        let (Some(header_b64), Some(encrypted_key), Some(iv), Some(ciphertext), Some(tag), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(CacheError::Invalid);
        };
        let header = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| CacheError::Invalid)?;
        let header: Value = serde_json::from_slice(&header).map_err(|_| CacheError::Invalid)?;
        let header = header.as_object().ok_or(CacheError::Invalid)?;
        // keyManagementAlgorithms: ["dir"]. Of the allowed encs only A256CBC-HS512 can work
        // (A256GCM needs a 32-byte key; the derived key has 64). No compression, no crit.
        if header.get("alg").and_then(Value::as_str) != Some(JWE_ALG)
            || header.get("enc").and_then(Value::as_str) != Some(JWE_ENC)
            || header.contains_key("zip")
            || header.contains_key("crit")
            || !encrypted_key.is_empty()
        {
            return Err(CacheError::Invalid);
        }
        let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|_| CacheError::Invalid);
        let (iv, ciphertext, tag) = (decode(iv)?, decode(ciphertext)?, decode(tag)?);
        if iv.len() != JWE_IV_LEN || tag.len() != JWE_TAG_LEN || ciphertext.is_empty() {
            return Err(CacheError::Invalid);
        }
        // With a kid, only the secret whose thumbprint it is; without, each in turn.
        let candidates: Vec<&JweKey> = match header.get("kid") {
            Some(kid) => self
                .jwe_keys
                .iter()
                .filter(|k| kid.as_str() == Some(k.kid.as_str()))
                .take(1)
                .collect(),
            None => self.jwe_keys.iter().collect(),
        };
        let aad = header_b64.as_bytes();
        for key in candidates {
            // Authenticate before decrypting, in constant time (josekit decrypts first and
            // compares the tag with `!=`); josekit then decrypts (and re-checks the tag).
            if !jwe_tag_matches(&key.key, aad, &iv, &ciphertext, &tag) {
                continue;
            }
            let plaintext = A256CBC_HS512
                .decrypt(&key.key, Some(&iv), &ciphertext, aad, Some(&tag))
                .map_err(|_| CacheError::Invalid)?;
            // jose parses the claims with a fatal UTF-8 decoder; serde_json is as strict.
            let claims: Value =
                serde_json::from_slice(&plaintext).map_err(|_| CacheError::Invalid)?;
            let claims = claims.as_object().ok_or(CacheError::Invalid)?;
            let expires_at_ms = check_claims(claims, now_ms, JWE_CLOCK_TOLERANCE_S)?;
            return extract(claims, expires_at_ms);
        }
        Err(CacheError::Invalid)
    }
}

/// `maxAge || fallback` (0 is falsy in JavaScript).
fn fallback(max_age: Option<u64>, default_s: u64) -> u64 {
    match max_age {
        Some(s) if s > 0 => s,
        _ => default_s,
    }
}

/// `iat = floor(now / 1000)`, `exp = iat + (maxAge || 300)`.
fn token_times(now_ms: i64, max_age: Option<u64>) -> Result<(i64, i64), CacheError> {
    let iat = now_ms.div_euclid(1000);
    let secs =
        i64::try_from(fallback(max_age, TOKEN_FALLBACK_S)).map_err(|_| CacheError::Encode)?;
    let exp = iat.checked_add(secs).ok_or(CacheError::Encode)?;
    Ok((iat, exp))
}

/// `{ session, user, updatedAt, version }`, in that order.
/// `JSON.stringify({ session, user, updatedAt, version, ...extra })`: the payload's keys in
/// that order, then `extra` (none of them integer-like, so JavaScript keeps this order).
fn payload_json(
    session: &Map<String, Value>,
    user: &Map<String, Value>,
    version: &str,
    now_ms: i64,
    extra: &[(&str, Value)],
) -> String {
    let mut out = String::from("{\"session\":");
    write_js_object(session, &mut out);
    out.push_str(",\"user\":");
    write_js_object(user, &mut out);
    out.push_str(",\"updatedAt\":");
    write_js(&Value::from(now_ms), &mut out);
    out.push_str(",\"version\":");
    write_js_string(version, &mut out);
    for (key, value) in extra {
        out.push(',');
        write_js_string(key, &mut out);
        out.push(':');
        write_js(value, &mut out);
    }
    out.push('}');
    out
}

/// The payload fields every strategy carries.
fn extract(obj: &Map<String, Value>, expires_at_ms: i64) -> Result<CachePayload, CacheError> {
    let object = |key: &str| {
        obj.get(key)
            .and_then(Value::as_object)
            .cloned()
            .ok_or(CacheError::Invalid)
    };
    let updated_at = match obj.get("updatedAt") {
        None => None,
        Some(Value::Number(n)) => Some(number_to_ms(n).ok_or(CacheError::Invalid)?),
        Some(_) => return Err(CacheError::Invalid),
    };
    let version = match obj.get("version") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(CacheError::Invalid),
    };
    Ok(CachePayload {
        session: object("session")?,
        user: object("user")?,
        updated_at,
        version,
        expires_at_ms,
    })
}

/// A JSON number as whole milliseconds, rounded down: for an integer `now`,
/// `x < now` holds exactly when `floor(x) < now`, so the caller's comparisons keep their
/// JavaScript meaning.
fn number_to_ms(n: &Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    // `as` saturates; NaN cannot come out of JSON.
    f.is_finite().then(|| f.floor() as i64)
}

/// jose's JWT claim checks (`validateClaimsSet`) at `now_ms` with `tolerance` seconds:
/// `iat` and `nbf` must be numbers if present, `nbf > now + tolerance` is refused, and
/// `exp` (required here) expires the token when `exp <= now - tolerance`. Returns
/// `exp`·1000.
fn check_claims(
    claims: &Map<String, Value>,
    now_ms: i64,
    tolerance: f64,
) -> Result<i64, CacheError> {
    // jose: epoch(new Date()) = Math.floor(ms / 1000)
    let now = now_ms.div_euclid(1000) as f64;
    if claims.get("iat").is_some_and(|v| !v.is_number()) {
        return Err(CacheError::Invalid);
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_f64().ok_or(CacheError::Invalid)?;
        if nbf > now + tolerance {
            return Err(CacheError::Invalid);
        }
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .ok_or(CacheError::Invalid)?;
    if exp <= now - tolerance {
        return Err(CacheError::Expired);
    }
    Ok((exp * 1000.0).floor() as i64)
}

/// The A256CBC-HS512 tag check of RFC 7518 §5.2.2.2, in constant time:
/// `HMAC-SHA-512(K[..32], AAD ‖ IV ‖ C ‖ uint64_be(8·len(AAD)))[..32] == tag`.
fn jwe_tag_matches(key: &[u8; 64], aad: &[u8], iv: &[u8], ciphertext: &[u8], tag: &[u8]) -> bool {
    if tag.len() != JWE_TAG_LEN {
        return false;
    }
    let Some(mac_key) = key.get(..32) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha512>::new_from_slice(mac_key) else {
        return false;
    };
    let aad_bits = (aad.len() as u64).wrapping_mul(8);
    mac.update(aad);
    mac.update(iv);
    mac.update(ciphertext);
    mac.update(&aad_bits.to_be_bytes());
    mac.verify_truncated_left(tag).is_ok()
}

/// `@better-auth/utils` base64/base64url decoding: the alphabet is URL-safe when the text
/// contains `-` or `_` and standard otherwise, decoding stops at the first `=`, leftover
/// bits are ignored, and any other character is an error.
fn better_auth_base64_decode(data: &str) -> Option<Vec<u8>> {
    let url_safe = data.contains('-') || data.contains('_');
    let mut out = Vec::with_capacity(data.len() / 4 * 3 + 3);
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    for c in data.chars() {
        let v = match c {
            '=' => break,
            'A'..='Z' => c as u32 - 'A' as u32,
            'a'..='z' => c as u32 - 'a' as u32 + 26,
            '0'..='9' => c as u32 - '0' as u32 + 52,
            '-' if url_safe => 62,
            '_' if url_safe => 63,
            '+' if !url_safe => 62,
            '/' if !url_safe => 63,
            _ => return None,
        };
        buffer = ((buffer << 6) | v) & 0x3fff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

// ---- JavaScript JSON ---------------------------------------------------------------------

/// `JSON.stringify(value)` as JavaScript prints it.
fn js_stringify(value: &Value) -> String {
    let mut out = String::new();
    write_js(value, &mut out);
    out
}

fn write_js(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&js_number(n)),
        Value::String(s) => write_js_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_js(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => write_js_object(map, out),
    }
}

/// Objects list their array-index keys first, in ascending numeric order, then the other
/// keys in insertion order (ECMAScript `OrdinaryOwnPropertyKeys`).
fn write_js_object(map: &Map<String, Value>, out: &mut String) {
    let mut indexed: Vec<(u32, &String, &Value)> = map
        .iter()
        .filter_map(|(k, v)| array_index(k).map(|i| (i, k, v)))
        .collect();
    indexed.sort_by_key(|(i, _, _)| *i);
    let rest = map.iter().filter(|(k, _)| array_index(k).is_none());
    out.push('{');
    let mut first = true;
    for (k, v) in indexed.into_iter().map(|(_, k, v)| (k, v)).chain(rest) {
        if !first {
            out.push(',');
        }
        first = false;
        write_js_string(k, out);
        out.push(':');
        write_js(v, out);
    }
    out.push('}');
}

/// A canonical array index: "0" or digits without a leading zero, at most 2^32 − 2.
fn array_index(key: &str) -> Option<u32> {
    if key.is_empty() || key.len() > 10 || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if key.len() > 1 && key.starts_with('0') {
        return None;
    }
    key.parse::<u32>().ok().filter(|&i| i != u32::MAX)
}

/// JSON.stringify's string quoting: `"` and `\` escaped, U+0000–U+001F as `\b \t \n \f \r`
/// or `\u00xx` (lowercase hex), everything else (non-ASCII, `/`, U+2028) as is. A Rust
/// string holds no lone surrogates, the one case where JavaScript would also escape.
fn write_js_string(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let b = c as u32 as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[(b >> 4) & 0xf]));
                out.push(char::from(HEX[b & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON number as JavaScript prints it (`Number.prototype.toString`): every JSON number
/// is a double in JavaScript.
fn js_number(n: &Number) -> String {
    const SAFE: u64 = 1 << 53;
    if let Some(i) = n.as_i64() {
        if i.unsigned_abs() <= SAFE {
            return i.to_string();
        }
    }
    if let Some(u) = n.as_u64() {
        if u <= SAFE {
            return u.to_string();
        }
    }
    n.as_f64().map_or_else(|| "null".to_owned(), js_format_f64)
}

/// ECMAScript Number::toString(10) for a finite double; NaN and ±Infinity print `null`
/// as in JSON.stringify.
fn js_format_f64(x: f64) -> String {
    if !x.is_finite() {
        return "null".to_owned();
    }
    if x == 0.0 {
        return "0".to_owned();
    }
    // Rust's `{:e}` prints the shortest round-trip digits, "d[.ddd]e<exp>", but where two
    // k-digit strings both round-trip it does not always take the one ECMAScript wants
    // (the closest to x, the even one on a tie). The correctly rounded k-digit string
    // (`{:.N$e}` rounds the exact value half to even) is that one whenever it round-trips.
    let ax = x.abs();
    let shortest = format!("{ax:e}");
    let k = shortest
        .split('e')
        .next()
        .map_or(0, |m| m.chars().filter(char::is_ascii_digit).count());
    let rounded = format!("{:.*e}", k.saturating_sub(1), ax);
    let sci = if rounded.parse::<f64>() == Ok(ax) {
        rounded
    } else {
        shortest
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = match digits.trim_end_matches('0') {
        "" => "0",
        d => d,
    };
    let Ok(e) = exp.parse::<i32>() else {
        return "null".to_owned();
    };
    let k = digits.len() as i32;
    let n = e + 1; // value = 0.digits × 10^n
    let mut out = String::new();
    if x < 0.0 {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(digits);
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if n > 0 { '+' } else { '-' });
        out.push_str(&(n - 1).unsigned_abs().to_string());
    }
    out
}

// ---- Better Auth's date reviver ----------------------------------------------------------

/// Replaces, anywhere in `value`, each string that Better Auth's JSON reviver turns into a
/// `Date` by that Date's `toISOString()`, i.e. what `JSON.stringify` prints for it.
fn revive_dates(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let Some(iso) = revive_iso_date(s) {
                *s = iso;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(revive_dates),
        Value::Object(map) => map.values_mut().for_each(revive_dates),
        _ => {}
    }
}

/// If `s` matches `^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$` and V8's `new Date(s)`
/// is valid, that Date's `toISOString()`; otherwise `None` (the string stays a string).
///
/// V8 takes months 01–12 and days 01–31 (an overflowing day rolls into the next month:
/// `02-31` is March 2 or 3), hours 00–23 plus `24:00:00` with an all-zero fraction (the
/// next midnight), minutes and seconds 00–59; see [`v8_milliseconds`] for the fraction.
fn revive_iso_date(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().try_fold(0i64, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
        })
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let rest = b.get(19..)?;
    let frac: &[u8] = match rest {
        [b'Z'] => &[],
        [b'.', digits @ .., b'Z']
            if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) =>
        {
            digits
        }
        _ => return None,
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    if hour == 24 {
        if minute != 0 || second != 0 || frac.iter().any(|&d| d != b'0') {
            return None;
        }
    } else if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let ms = v8_milliseconds(frac);
    let days = days_from_civil(year, month, 1) + day - 1;
    let t = days * 86_400_000 + hour * 3_600_000 + minute * 60_000 + second * 1000 + ms;
    Some(to_iso_string(t))
}

/// V8's `ReadMilliseconds` of the fraction digits: the numeral's value is read from its
/// first nine digits after any leading zeros, its length counts every digit (capped at
/// nine), and the value is scaled to three digits by that length. So up to nine digits
/// the first three are kept; past nine, the first three *significant* ones, shifted by
/// how many leading zeros there were (`.0294681200` gives 294, as V8 does).
fn v8_milliseconds(frac: &[u8]) -> i64 {
    let significant = frac.iter().skip_while(|&&d| d == b'0');
    let n = significant
        .take(9)
        .fold(0i64, |acc, &d| acc * 10 + i64::from(d - b'0'));
    match frac.len() {
        0 => 0,
        1 => n * 100,
        2 => n * 10,
        3 => n,
        len => n / 10i64.pow(len.min(9) as u32 - 3),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `Date.prototype.toISOString()` of `t` ms since the epoch.
fn to_iso_string(t: i64) -> String {
    let days = t.div_euclid(86_400_000);
    let ms_of_day = t.rem_euclid(86_400_000);
    // civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let year = if (0..=9999).contains(&y) {
        format!("{y:04}")
    } else if y < 0 {
        format!("-{:06}", -y)
    } else {
        format!("+{y:06}")
    };
    format!(
        "{year}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_numbers() {
        // Inputs as text: what JSON.parse reads, and no float-literal lints.
        for (text, js) in [
            ("1e21", "1e+21"),
            ("1e-7", "1e-7"),
            ("1e-6", "0.000001"),
            ("0.000001234", "0.000001234"),
            ("123.456", "123.456"),
            ("1.5e300", "1.5e+300"),
            ("-0.0", "0"),
            ("12345678901234567890.0", "12345678901234567000"),
            ("5e-324", "5e-324"),
            ("0.1", "0.1"),
            ("100.0", "100"),
            ("1e20", "100000000000000000000"),
            ("123e-20", "1.23e-18"),
            ("-2.5", "-2.5"),
            ("9007199254740993.0", "9007199254740992"),
            ("786667646615959.25", "786667646615959.2"),
            ("645260784255316.3", "645260784255316.2"),
        ] {
            let x: f64 = text.parse().unwrap();
            assert_eq!(js_format_f64(x), js, "{text}");
        }
        let n = |s: &str| serde_json::from_str::<Number>(s).unwrap();
        assert_eq!(js_number(&n("1767225600000")), "1767225600000");
        assert_eq!(js_number(&n("1.0")), "1");
        assert_eq!(js_number(&n("-0")), "0");
        assert_eq!(
            js_number(&n("12345678901234567890")),
            "12345678901234567000"
        );
        assert_eq!(js_number(&n("-9007199254740993")), "-9007199254740992");
    }

    #[test]
    fn v8_date_revival() {
        for (s, out) in [
            ("2020-13-01T00:00:00Z", None),
            ("2020-00-01T00:00:00Z", None),
            ("2020-02-31T00:00:00Z", Some("2020-03-02T00:00:00.000Z")),
            ("2020-02-00T00:00:00Z", None),
            ("2020-02-32T00:00:00Z", None),
            ("2020-01-01T24:00:00Z", Some("2020-01-02T00:00:00.000Z")),
            ("2020-01-01T24:00:00.000Z", Some("2020-01-02T00:00:00.000Z")),
            ("2020-01-01T24:00:00.0001Z", None),
            ("2020-01-01T24:00:00.0000000000001Z", None),
            (
                "2020-01-01T24:00:00.0000000000000Z",
                Some("2020-01-02T00:00:00.000Z"),
            ),
            ("2020-01-01T25:00:00Z", None),
            ("2020-01-01T23:60:00Z", None),
            ("2020-01-01T23:59:60Z", None),
            (
                "2020-01-01T00:00:00.9999Z",
                Some("2020-01-01T00:00:00.999Z"),
            ),
            ("2020-01-01T00:00:00.5Z", Some("2020-01-01T00:00:00.500Z")),
            ("9999-12-31T24:00:00Z", Some("+010000-01-01T00:00:00.000Z")),
            ("0000-01-01T00:00:00Z", Some("0000-01-01T00:00:00.000Z")),
            ("2021-02-29T00:00:00Z", Some("2021-03-01T00:00:00.000Z")),
            ("1969-12-31T23:59:59.999Z", Some("1969-12-31T23:59:59.999Z")),
            ("2020-04-31T12:00:00Z", Some("2020-05-01T12:00:00.000Z")),
            ("2020-01-01T00:00:00.Z", None),
            ("2020-01-01T00:00:00z", None),
            ("2020-01-01 00:00:00Z", None),
            ("2020-01-01T00:00:00.000Z\n", None),
            ("x2020-01-01T00:00:00.000Z", None),
            ("2025-12-20T17:45:30.123Z", Some("2025-12-20T17:45:30.123Z")),
            (
                "2000-04-31T23:59:59.029468120022Z",
                Some("2000-05-01T23:59:59.294Z"),
            ),
            (
                "2020-01-01T00:00:00.0000000123Z",
                Some("2020-01-01T00:00:00.000Z"),
            ),
            (
                "2020-01-01T00:00:00.0001234567Z",
                Some("2020-01-01T00:00:00.001Z"),
            ),
        ] {
            assert_eq!(revive_iso_date(s).as_deref(), out, "{s}");
        }
    }

    #[test]
    fn js_key_order_and_escaping() {
        let v: Value =
            serde_json::from_str(r#"{"b":1,"10":2,"a":"\u0001\u001f\b\f/é\u2028","2":3,"01":4,"4294967295":5,"4294967294":6}"#)
                .unwrap();
        assert_eq!(
            js_stringify(&v),
            r#"{"2":3,"10":2,"4294967294":6,"b":1,"a":"\u0001\u001f\b\f/é"#.to_owned()
                + "\u{2028}"
                + r#"","01":4,"4294967295":5}"#
        );
    }

    #[test]
    fn lenient_base64() {
        assert_eq!(better_auth_base64_decode("aGk").unwrap(), b"hi");
        assert_eq!(better_auth_base64_decode("aGl=garbage!").unwrap(), b"hi");
        assert_eq!(better_auth_base64_decode("aGm").unwrap(), b"hi");
        assert_eq!(better_auth_base64_decode("-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(better_auth_base64_decode("+/8").unwrap(), [0xfb, 0xff]);
        assert!(better_auth_base64_decode("+_8").is_none());
        assert!(better_auth_base64_decode("a b").is_none());
    }
}
