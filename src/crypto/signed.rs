//! Signed cookie values as better-call writes them:
//! `encodeURIComponent(value + "." + base64(HMAC-SHA256(secret, value)))`.
//!
//! Verification follows `getSignedCookie`: a value without a 44-character, `=`-terminated
//! signature is *absent*; a signature that does not verify is *invalid*. Both mean "no
//! session" to callers, but they are kept apart because Better Auth treats them alike
//! only by accident of its callers.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// `atob` accepts non-canonical trailing bits; so must we, to accept what Better Auth accepts.
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The outcome of reading a signed cookie value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The signature matches; the inner value.
    Valid(String),
    /// Present but the signature does not verify (better-call's `false`).
    Invalid,
    /// Missing or malformed (better-call's `null`).
    Absent,
}

impl Verified {
    /// The verified value, if any.
    pub fn valid(self) -> Option<String> {
        match self {
            Verified::Valid(v) => Some(v),
            _ => None,
        }
    }
}

/// The HMAC-SHA256 key made from the secret's UTF-8 bytes, keyed once and cloned per use
/// (cheaper than re-keying, and it keeps the raw secret out of the hot path).
#[derive(Clone)]
pub struct SigningKey {
    mac: HmacSha256,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// Keys HMAC-SHA256 with `secret` (HMAC takes keys of any length).
    pub fn new(secret: &[u8]) -> Result<Self, hmac::digest::InvalidLength> {
        Ok(Self {
            mac: HmacSha256::new_from_slice(secret)?,
        })
    }

    fn mac(&self, value: &[u8]) -> HmacSha256 {
        let mut m = self.mac.clone();
        m.update(value);
        m
    }

    /// The standard-base64 HMAC-SHA256 signature of `value` (44 characters).
    pub fn signature(&self, value: &str) -> String {
        STANDARD.encode(self.mac(value.as_bytes()).finalize().into_bytes())
    }

    /// Raw HMAC-SHA256 of `value`.
    pub fn raw(&self, value: &[u8]) -> Vec<u8> {
        self.mac(value).finalize().into_bytes().to_vec()
    }

    /// Checks a raw tag in constant time.
    pub fn check(&self, value: &[u8], tag: &[u8]) -> bool {
        self.mac(value).verify_slice(tag).is_ok()
    }

    /// `value.signature`, not yet percent-encoded.
    pub fn sign(&self, value: &str) -> String {
        let mut out = String::with_capacity(value.len() + 45);
        out.push_str(value);
        out.push('.');
        out.push_str(&self.signature(value));
        out
    }

    /// Verifies an already percent-decoded `value.signature` string.
    pub fn verify(&self, signed: &str) -> Verified {
        verify(self, signed)
    }
}

fn verify(key: &SigningKey, signed: &str) -> Verified {
    let Some(dot) = signed.rfind('.') else {
        return Verified::Absent;
    };
    if dot == 0 {
        return Verified::Absent;
    }
    let (value, sig) = (&signed[..dot], &signed[dot + 1..]);
    if sig.len() != 44 || !sig.ends_with('=') {
        return Verified::Absent;
    }
    let Ok(raw) = LENIENT_B64.decode(sig) else {
        return Verified::Invalid;
    };
    // `verify_slice` compares in constant time.
    if key.check(value.as_bytes(), &raw) {
        Verified::Valid(value.to_owned())
    } else {
        Verified::Invalid
    }
}
