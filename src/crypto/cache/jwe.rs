//! The `jwe` strategy: a compact JWE (`dir`, A256CBC-HS512) of the payload plus `iat`,
//! `exp` and `jti`, under a key derived from the secret with HKDF and named by its
//! RFC 7638 thumbprint. Rotated-out secrets and Better Auth's legacy secret still decrypt.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use josekit::jwe::enc::A256CBC_HS512;
use josekit::jwe::JweContentEncryption;
use rand::rngs::OsRng;
use rand::RngCore;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha512};

use super::{
    check_claims, extract, payload_json, token_times, CacheCodec, CacheError, CachePayload,
    Contents,
};

/// HKDF salt of the `session_data` JWE key.
pub const JWE_SESSION_SALT: &str = "better-auth-session";
/// HKDF salt of the `account_data` JWE key (same derivation, other cookie).
pub const JWE_ACCOUNT_SALT: &str = "better-auth-account";
/// HKDF info of every Better Auth JWE key.
pub const JWE_HKDF_INFO: &str = "BetterAuth.js Generated Encryption Key";
/// jose's `clockTolerance` in `symmetricDecodeJWT`.
const JWE_CLOCK_TOLERANCE_S: f64 = 15.0;

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
pub(super) struct JweKey {
    key: [u8; 64],
    kid: String,
}

impl JweKey {
    pub(super) fn new(secret: &str) -> Option<Self> {
        let key = derive_jwe_key(secret, JWE_SESSION_SALT)?;
        Some(Self {
            kid: jwe_kid(&key),
            key,
        })
    }
}

impl CacheCodec {
    /// Encodes with a random `iv` and `jti`.
    pub(super) fn encode_jwe(&self, c: &Contents<'_>) -> Result<String, CacheError> {
        let mut iv = [0u8; JWE_IV_LEN];
        let mut jti = [0u8; 16];
        OsRng
            .try_fill_bytes(&mut iv)
            .and_then(|()| OsRng.try_fill_bytes(&mut jti))
            .map_err(|_| CacheError::Encode)?;
        let jti = uuid::Builder::from_random_bytes(jti)
            .into_uuid()
            .to_string();
        self.seal_jwe(c, &iv, &jti)
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
        let contents = Contents {
            session,
            user,
            version,
            now_ms,
            max_age,
        };
        self.seal_jwe(&contents, iv, jti)
    }

    fn seal_jwe(&self, c: &Contents<'_>, iv: &[u8], jti: &str) -> Result<String, CacheError> {
        let key = self.jwe_keys.first().ok_or(CacheError::Encode)?;
        if iv.len() != JWE_IV_LEN {
            return Err(CacheError::Encode);
        }
        let (iat, exp) = token_times(c.now_ms, c.max_age)?;
        let plaintext = payload_json(
            c,
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

    pub(super) fn decode_jwe(&self, value: &str, now_ms: i64) -> Result<CachePayload, CacheError> {
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
        let candidates: Vec<(usize, &JweKey)> = match header.get("kid") {
            Some(kid) => self
                .jwe_keys
                .iter()
                .enumerate()
                .filter(|(_, k)| kid.as_str() == Some(k.kid.as_str()))
                .take(1)
                .collect(),
            None => self.jwe_keys.iter().enumerate().collect(),
        };
        let aad = header_b64.as_bytes();
        for (i, key) in candidates {
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
            let mut payload = extract(claims, expires_at_ms)?;
            payload.older_secret = i > 0;
            return Ok(payload);
        }
        Err(CacheError::Invalid)
    }
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
