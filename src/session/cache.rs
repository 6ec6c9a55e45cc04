//! The `session_data` cookie cache codecs, byte-compatible with Better Auth 1.7:
//! `compact` (base64url JSON + HMAC-SHA256 over the JavaScript `JSON.stringify` text),
//! `jwt` (HS256) and `jwe` (`dir` + A256CBC-HS512 with an HKDF-derived key and a
//! thumbprint `kid`). The codec only signs, encrypts, verifies and checks the token-level
//! expiry; whether a decoded payload is acceptable for a request (token, version, session
//! expiry) is the session service's decision.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Which cookie cache format to write and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// base64url(JSON) with an HMAC-SHA256 signature (Better Auth's default).
    #[default]
    Compact,
    /// HS256 JWT.
    Jwt,
    /// Encrypted JWE (`dir`, A256CBC-HS512).
    Jwe,
}

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

/// Encoder and decoder for one strategy and secret set.
#[derive(Clone)]
pub struct CacheCodec {
    strategy: Strategy,
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
        let _ = (secret, older_secrets);
        Self { strategy }
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
        let _ = (session, user, version, now_ms, max_age);
        Err(CacheError::Encode)
    }

    /// Decodes and verifies a cookie value (already percent-decoded and, if chunked,
    /// joined) at `now_ms`.
    pub fn decode(&self, value: &str, now_ms: i64) -> Result<CachePayload, CacheError> {
        let _ = (value, now_ms);
        Err(CacheError::Invalid)
    }
}
