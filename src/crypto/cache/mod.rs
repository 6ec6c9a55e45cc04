//! The `session_data` cookie cache codecs, byte-compatible with Better Auth 1.7:
//! `compact` (base64url JSON + HMAC-SHA256 over the JavaScript `JSON.stringify` text),
//! `jwt` (HS256) and `jwe` (`dir` + A256CBC-HS512 with an HKDF-derived key and a
//! thumbprint `kid`). The codec only signs, encrypts, verifies and checks the token-level
//! expiry; whether a decoded payload is acceptable for a request (token, version, session
//! expiry) is the session service's decision.
//!
//! Values are written under the current secret and read under every secret version in
//! use (and `jwe` also under Better Auth's legacy secret); a value read under any but the
//! current one says so ([`CachePayload::older_secret`]), for the caller to write it again.
//!
//! Everything written here is JSON exactly as JavaScript's `JSON.stringify` prints it
//! (see [`crate::js::json`]), so the bytes match Better Auth's for the same inputs and clock.

mod compact;
mod jwe;
mod jwt;

use jsonwebtoken::{DecodingKey, EncodingKey};
use serde_json::{Map, Number, Value};

use crate::crypto::signed::Keyring;
use crate::js::json::{write_object, write_string, write_value};
use jwe::JweKey;

pub use crate::config::CacheStrategy as Strategy;
pub use jwe::{derive_jwe_key, jwe_kid, JWE_ACCOUNT_SALT, JWE_HKDF_INFO, JWE_SESSION_SALT};

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
    /// Read under an older secret version (or the legacy secret), not the current one.
    pub older_secret: bool,
}

// Fallback lifetimes when the cookie has no Max-Age (`maxAge || 60`, `maxAge || 300`),
// kept with the settings, which derive the longest cache window from them.
pub(crate) use crate::config::{COMPACT_FALLBACK_S, TOKEN_FALLBACK_S};

/// What one value carries, as [`CacheCodec::encode`] was given it.
struct Contents<'a> {
    session: &'a Map<String, Value>,
    user: &'a Map<String, Value>,
    version: &'a str,
    /// The minting time (ms), written as `updatedAt`.
    now_ms: i64,
    /// The cookie's Max-Age; `None` takes Better Auth's fallback.
    max_age: Option<u64>,
}

/// Encoder and decoder for one strategy and secret set.
#[derive(Clone)]
pub struct CacheCodec {
    strategy: Strategy,
    /// The secrets' HMAC-SHA256 keys (compact), current first, keyed once.
    hmac: Option<Keyring>,
    /// The current secret as a jwt signing key, built once.
    jwt_encoding: EncodingKey,
    /// Every secret as a jwt verifying key, current first (empty unless `Jwt`).
    jwt_decoding: Vec<DecodingKey>,
    /// JWE keys: the current secret's first, then the older ones, then the legacy one
    /// (empty unless `Jwe`).
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
    /// A codec for `strategy`. `secret` is the current secret, which writes; values
    /// written under it or any of `older_secrets` (the other listed versions, tried in
    /// order after it) are read.
    pub fn new(strategy: Strategy, secret: &str, older_secrets: &[String]) -> Self {
        Self::with_legacy(strategy, secret, older_secrets, None)
    }

    /// As [`new`](Self::new), and `jwe` values also decrypt under `legacy`: Better Auth's
    /// `secret` beside its versioned `secrets`, tried last (its `getAllSecrets`).
    pub fn with_legacy(
        strategy: Strategy,
        secret: &str,
        older_secrets: &[String],
        legacy: Option<&str>,
    ) -> Self {
        let all = || std::iter::once(secret).chain(older_secrets.iter().map(String::as_str));
        let mut jwe_keys = Vec::new();
        if strategy == Strategy::Jwe {
            let mut seen: Vec<&str> = Vec::new();
            for s in all().chain(legacy) {
                if seen.contains(&s) {
                    continue;
                }
                seen.push(s);
                jwe_keys.extend(JweKey::new(s));
            }
        }
        let jwt_decoding = if strategy == Strategy::Jwt {
            all()
                .map(|s| DecodingKey::from_secret(s.as_bytes()))
                .collect()
        } else {
            Vec::new()
        };
        Self {
            strategy,
            hmac: Keyring::new(all()),
            jwt_encoding: EncodingKey::from_secret(secret.as_bytes()),
            jwt_decoding,
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
        let contents = Contents {
            session,
            user,
            version,
            now_ms,
            max_age,
        };
        match self.strategy {
            Strategy::Compact => self.encode_compact(&contents),
            Strategy::Jwt => self.encode_jwt(&contents),
            Strategy::Jwe => self.encode_jwe(&contents),
        }
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

/// `JSON.stringify({ session, user, updatedAt, version, ...extra })`: the payload's keys in
/// that order, then `extra` (none of them integer-like, so JavaScript keeps this order).
fn payload_json(c: &Contents<'_>, extra: &[(&str, Value)]) -> String {
    let mut out = String::from("{\"session\":");
    write_object(c.session, &mut out);
    out.push_str(",\"user\":");
    write_object(c.user, &mut out);
    out.push_str(",\"updatedAt\":");
    write_value(&Value::from(c.now_ms), &mut out);
    out.push_str(",\"version\":");
    write_string(c.version, &mut out);
    for (key, value) in extra {
        out.push(',');
        write_string(key, &mut out);
        out.push(':');
        write_value(value, &mut out);
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
        older_secret: false,
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
