//! The `compact` strategy: `base64url(JSON.stringify({session, expiresAt, signature}))`,
//! the signature an HMAC-SHA256 of `JSON.stringify({...session, expiresAt})`.
//!
//! Values are verified the way Better Auth verifies them: the MAC covers the JavaScript
//! re-serialization of the *parsed* value, after Better Auth's date reviver turned every
//! ISO-looking string into a `Date` (printed again as `.sssZ`). So a value whose ISO
//! strings are not canonical fails, exactly as it does in Better Auth.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

use super::{
    extract, fallback, number_to_ms, payload_json, CacheCodec, CacheError, CachePayload, Contents,
    COMPACT_FALLBACK_S,
};
use crate::js::base64::decode_lenient;
use crate::js::date::{revive_dates, revive_iso_date};
use crate::js::json::{stringify, write_string, write_value};

impl CacheCodec {
    pub(super) fn encode_compact(&self, c: &Contents<'_>) -> Result<String, CacheError> {
        let secs = i64::try_from(fallback(c.max_age, COMPACT_FALLBACK_S))
            .map_err(|_| CacheError::Encode)?;
        let expires_at = secs
            .checked_mul(1000)
            .and_then(|ms| ms.checked_add(c.now_ms))
            .ok_or(CacheError::Encode)?;
        let expires_at = Value::from(expires_at);
        // JSON.stringify({ ...sessionData, expiresAt })
        let signed = payload_json(c, &[("expiresAt", expires_at.clone())]);
        let key = self.hmac.as_ref().ok_or(CacheError::Encode)?;
        let signature = URL_SAFE_NO_PAD.encode(key.current().raw(signed.as_bytes()));
        // JSON.stringify({ session: sessionData, expiresAt, signature })
        let mut outer = String::from("{\"session\":");
        outer.push_str(&payload_json(c, &[]));
        outer.push_str(",\"expiresAt\":");
        write_value(&expires_at, &mut outer);
        outer.push_str(",\"signature\":");
        write_string(&signature, &mut outer);
        outer.push('}');
        Ok(URL_SAFE_NO_PAD.encode(outer.as_bytes()))
    }

    pub(super) fn decode_compact(&self, value: &str) -> Result<CachePayload, CacheError> {
        // binary.decode(base64Url.decode(value)): lenient base64, then a non-fatal
        // TextDecoder (invalid bytes become U+FFFD, a leading BOM is dropped).
        let bytes = decode_lenient(value).ok_or(CacheError::Invalid)?;
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
        let signed = stringify(&signed);
        let tag = decode_lenient(signature).ok_or(CacheError::Invalid)?;
        let keys = self.hmac.as_ref().ok_or(CacheError::Invalid)?;
        // Constant-time, current secret first; a tag of the wrong length is refused (as
        // WebCrypto does).
        let signer = keys
            .all()
            .position(|k| k.check(signed.as_bytes(), &tag))
            .ok_or(CacheError::Invalid)?;
        let mut payload = extract(
            session,
            number_to_ms(&expires_at).ok_or(CacheError::Invalid)?,
        )?;
        payload.older_secret = signer > 0;
        Ok(payload)
    }
}
