//! The `jwt` strategy: an HS256 JWT whose claims are the payload plus `iat` and `exp`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use super::{
    check_claims, extract, payload_json, token_times, CacheCodec, CacheError, CachePayload,
    Contents,
};

const JWT_HEADER: &str = r#"{"alg":"HS256"}"#;

impl CacheCodec {
    pub(super) fn encode_jwt(&self, c: &Contents<'_>) -> Result<String, CacheError> {
        let (iat, exp) = token_times(c.now_ms, c.max_age)?;
        let claims = payload_json(c, &[("iat", Value::from(iat)), ("exp", Value::from(exp))]);
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

    pub(super) fn decode_jwt(&self, value: &str, now_ms: i64) -> Result<CachePayload, CacheError> {
        // HS256 only (Better Auth's jose also takes HS384/HS512; we never write those).
        // jsonwebtoken checks the algorithm and the signature (constant time); the claims
        // are checked below against the given clock, not the system's.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        // Each secret in turn, the current one first, while only the signature is wrong.
        for (i, key) in self.jwt_decoding.iter().enumerate() {
            let data = match jsonwebtoken::decode::<Value>(value, key, &validation) {
                Ok(data) => data,
                Err(e) if *e.kind() == ErrorKind::InvalidSignature => continue,
                Err(_) => return Err(CacheError::Invalid),
            };
            let claims = data.claims.as_object().ok_or(CacheError::Invalid)?;
            let expires_at_ms = check_claims(claims, now_ms, 0.0)?;
            let mut payload = extract(claims, expires_at_ms)?;
            payload.older_secret = i > 0;
            return Ok(payload);
        }
        Err(CacheError::Invalid)
    }
}
