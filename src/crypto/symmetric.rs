//! Better Auth's `symmetricEncrypt` / `symmetricDecrypt`, which seal the jwt plugin's
//! private keys: XChaCha20-Poly1305 under SHA-256(secret), a random 24-byte nonce in front
//! of the sealed bytes, all as lowercase hex. With versioned secrets the hex is wrapped as
//! `$ba$<version>$<hex>` and opened with that version's secret; a bare hex value is opened
//! with the legacy secret (or, unversioned, the one secret).

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use super::secrets::SecretSet;

const ENVELOPE: &str = "$ba$";
const NONCE_LEN: usize = 24;

/// Why a sealed value could not be opened. Says nothing of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Not hex, too short, or an envelope without a usable version.
    #[error("malformed sealed value")]
    Malformed,
    /// Its envelope names a secret version this service does not hold.
    #[error("sealed with a secret version not configured")]
    UnknownVersion,
    /// The tag does not verify under the secret (another secret, or altered).
    #[error("sealed with another secret, or altered")]
    Refused,
}

fn cipher(secret: &str) -> XChaCha20Poly1305 {
    let key = Sha256::digest(secret.as_bytes());
    XChaCha20Poly1305::new(&key)
}

/// `rawEncrypt`: hex(nonce ‖ ciphertext ‖ tag).
fn seal_raw(secret: &str, data: &str) -> Option<String> {
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let sealed = cipher(secret).encrypt(&nonce, data.as_bytes()).ok()?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Some(hex::encode(out))
}

/// `rawDecrypt`.
fn open_raw(secret: &str, hex_text: &str) -> Result<String, OpenError> {
    let bytes = hex::decode(hex_text).map_err(|_| OpenError::Malformed)?;
    if bytes.len() < NONCE_LEN + 16 {
        return Err(OpenError::Malformed);
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let plain = cipher(secret)
        .decrypt(XNonce::from_slice(nonce), sealed)
        .map_err(|_| OpenError::Refused)?;
    String::from_utf8(plain).map_err(|_| OpenError::Refused)
}

/// Seals `data` under the current secret: bare hex with one unversioned secret, else the
/// `$ba$<version>$` envelope of the current version. `None` only if the cipher fails.
pub fn seal(secrets: &SecretSet, data: &str) -> Option<String> {
    let raw = seal_raw(secrets.current(), data)?;
    Some(match secrets.current_version() {
        Some(v) => format!("{ENVELOPE}{v}${raw}"),
        None => raw,
    })
}

/// Opens a value sealed by [`seal`] or by Better Auth under any configured version.
pub fn open(secrets: &SecretSet, sealed: &str) -> Result<String, OpenError> {
    let Some(rest) = sealed.strip_prefix(ENVELOPE) else {
        // Bare hex: the one secret when unversioned, else the legacy secret.
        let secret = match secrets.current_version() {
            None => secrets.current(),
            Some(_) => secrets.legacy().ok_or(OpenError::UnknownVersion)?,
        };
        return open_raw(secret, sealed);
    };
    let (version, hex_text) = rest.split_once('$').ok_or(OpenError::Malformed)?;
    // JavaScript's parseInt reads leading digits; a version is written as plain digits.
    if version.is_empty() || version.len() > 15 || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OpenError::Malformed);
    }
    let version: u64 = version.parse().map_err(|_| OpenError::Malformed)?;
    let secret = secrets
        .by_version(version)
        .ok_or(OpenError::UnknownVersion)?;
    open_raw(secret, hex_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_under_their_secret() {
        let one = SecretSet::single("s".repeat(32));
        let sealed = seal(&one, "{\"d\":\"x\"}").unwrap();
        assert_eq!(sealed.len(), 2 * (24 + 9 + 16));
        assert_eq!(open(&one, &sealed).unwrap(), "{\"d\":\"x\"}");
        let other = SecretSet::single("t".repeat(32));
        assert_eq!(open(&other, &sealed), Err(OpenError::Refused));
        assert_eq!(open(&one, "zz"), Err(OpenError::Malformed));
        assert_eq!(open(&one, &sealed[..40]), Err(OpenError::Malformed));
    }
}
