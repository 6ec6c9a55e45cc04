//! The jwt plugin's signing keys: made, exported and read as JSON Web Keys laid out as
//! Better Auth's `jose` writes them (so that either side reads the other's `jwks` rows),
//! and JWTs signed with them. The JOSE algorithms themselves are josekit's.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use josekit::jwk::Jwk;
use josekit::jws::{EdDSA, JwsSigner, ES256, ES512, PS256, RS256};
use serde_json::{Map, Value};

/// A key could not be made or read. Says nothing of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    /// The algorithm or curve is not one the plugin uses.
    #[error("unsupported key algorithm")]
    Unsupported,
    /// The stored key is not a usable JWK for its algorithm.
    #[error("unusable key")]
    Unusable,
    /// Signing failed.
    #[error("signing failed")]
    Sign,
}

/// A new key pair as the `jwks` row stores it: both halves as JSON text, and the curve
/// for the `crv` column.
pub struct NewKeyPair {
    /// The public JWK.
    pub public: String,
    /// The private JWK (to be sealed before it is stored).
    pub private: String,
    /// Its curve, for curve keys.
    pub crv: Option<String>,
}

impl std::fmt::Debug for NewKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKeyPair")
            .field("public", &self.public)
            .field("private", &"[redacted]")
            .finish()
    }
}

/// Members of each key type in `jose`'s `exportJWK` order: public, then private.
fn layout(kty: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    match kty {
        "OKP" => Some((&["crv", "x", "kty"], &["crv", "d", "x", "kty"])),
        "EC" => Some((&["kty", "x", "y", "crv"], &["kty", "x", "y", "crv", "d"])),
        "RSA" => Some((
            &["kty", "n", "e"],
            &["kty", "n", "e", "d", "p", "q", "dp", "dq", "qi"],
        )),
        _ => None,
    }
}

fn pick(jwk: &Jwk, names: &[&str]) -> Result<String, JwkError> {
    let mut m = Map::new();
    for n in names {
        let v = jwk.parameter(n).ok_or(JwkError::Unusable)?;
        m.insert((*n).to_owned(), v.clone());
    }
    serde_json::to_string(&m).map_err(|_| JwkError::Unusable)
}

/// Makes a key pair for `alg` (`crv` for EdDSA, `modulus_bits` for RSA).
pub fn generate(alg: &str, crv: &str, modulus_bits: u32) -> Result<NewKeyPair, JwkError> {
    use josekit::jwk::alg::ed::EdCurve;
    let private = match alg {
        "EdDSA" => {
            let curve = match crv {
                "Ed25519" => EdCurve::Ed25519,
                "Ed448" => EdCurve::Ed448,
                _ => return Err(JwkError::Unsupported),
            };
            EdDSA.generate_key_pair(curve).map(|k| k.to_jwk_key_pair())
        }
        "ES256" => ES256.generate_key_pair().map(|k| k.to_jwk_key_pair()),
        "ES512" => ES512.generate_key_pair().map(|k| k.to_jwk_key_pair()),
        "RS256" => RS256
            .generate_key_pair(modulus_bits)
            .map(|k| k.to_jwk_key_pair()),
        "PS256" => PS256
            .generate_key_pair(modulus_bits)
            .map(|k| k.to_jwk_key_pair()),
        _ => return Err(JwkError::Unsupported),
    }
    .map_err(|_| JwkError::Unsupported)?;
    let (public_names, private_names) = layout(private.key_type()).ok_or(JwkError::Unusable)?;
    Ok(NewKeyPair {
        public: pick(&private, public_names)?,
        private: pick(&private, private_names)?,
        crv: private.curve().map(str::to_owned),
    })
}

/// A key ready to sign: its `kid` and algorithm, as the JWT header names them.
pub struct SigningJwk {
    kid: String,
    alg: String,
    signer: Box<dyn JwsSigner>,
}

impl std::fmt::Debug for SigningJwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningJwk")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningJwk {
    /// Reads a private JWK (JSON text) for `alg`.
    pub fn new(kid: &str, alg: &str, private_json: &str) -> Result<Self, JwkError> {
        let mut jwk = Jwk::from_bytes(private_json.as_bytes()).map_err(|_| JwkError::Unusable)?;
        // The row's alg decides; a stray member must not stop the key.
        jwk.set_algorithm(alg);
        let signer: Box<dyn JwsSigner> = match alg {
            "EdDSA" => Box::new(
                EdDSA
                    .signer_from_jwk(&jwk)
                    .map_err(|_| JwkError::Unusable)?,
            ),
            "ES256" => Box::new(
                ES256
                    .signer_from_jwk(&jwk)
                    .map_err(|_| JwkError::Unusable)?,
            ),
            "ES512" => Box::new(
                ES512
                    .signer_from_jwk(&jwk)
                    .map_err(|_| JwkError::Unusable)?,
            ),
            "RS256" => Box::new(
                RS256
                    .signer_from_jwk(&jwk)
                    .map_err(|_| JwkError::Unusable)?,
            ),
            "PS256" => Box::new(
                PS256
                    .signer_from_jwk(&jwk)
                    .map_err(|_| JwkError::Unusable)?,
            ),
            _ => return Err(JwkError::Unsupported),
        };
        Ok(Self {
            kid: kid.to_owned(),
            alg: alg.to_owned(),
            signer,
        })
    }

    /// The key's id (the `jwks` row id).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs a JWT whose claims are `payload_json` (written by the caller, in the order it
    /// wants), under the header `{"alg","kid"}` that Better Auth writes.
    pub fn sign(&self, payload_json: &str) -> Result<String, JwkError> {
        let header = serde_json::json!({ "alg": self.alg, "kid": self.kid }).to_string();
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.as_bytes()),
            URL_SAFE_NO_PAD.encode(payload_json.as_bytes())
        );
        let sig = self
            .signer
            .sign(input.as_bytes())
            .map_err(|_| JwkError::Sign)?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// The public key set entry of a row, as Better Auth's `/jwks` writes it:
/// `{alg, crv?, …public members, kid}`.
pub fn published(kid: &str, alg: &str, crv: Option<&str>, public_json: &str) -> Option<Value> {
    let public: Map<String, Value> = serde_json::from_str(public_json).ok()?;
    let mut m = Map::new();
    m.insert("alg".into(), Value::from(alg));
    if let Some(c) = crv {
        m.insert("crv".into(), Value::from(c));
    }
    // A row written by hand (or damaged) could hold private members: never published.
    const PRIVATE: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
    for (k, v) in public {
        if !PRIVATE.contains(&k.as_str()) {
            m.insert(k, v);
        }
    }
    m.insert("kid".into(), Value::from(kid));
    Some(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_makes_keys_laid_out_as_jose_does_and_signs() {
        for (alg, crv, public_keys) in [
            ("EdDSA", "Ed25519", vec!["crv", "x", "kty"]),
            ("EdDSA", "Ed448", vec!["crv", "x", "kty"]),
            ("ES256", "", vec!["kty", "x", "y", "crv"]),
            ("ES512", "", vec!["kty", "x", "y", "crv"]),
            ("RS256", "", vec!["kty", "n", "e"]),
            ("PS256", "", vec!["kty", "n", "e"]),
        ] {
            let pair = generate(alg, crv, 2048)
                .map_err(|e| format!("{alg}: {e}"))
                .unwrap();
            let public: Map<String, Value> = serde_json::from_str(&pair.public).unwrap();
            assert_eq!(public.keys().collect::<Vec<_>>(), public_keys, "{alg}");
            assert!(!pair.public.contains("\"d\""), "{alg}");
            let key = SigningJwk::new("k1", alg, &pair.private).unwrap();
            let jwt = key.sign("{\"sub\":\"u\"}").unwrap();
            assert_eq!(jwt.split('.').count(), 3);
            assert!(!format!("{key:?}").contains("\"d\""));
        }
        assert_eq!(generate("HS256", "", 0).err(), Some(JwkError::Unsupported));
        let leaky = r#"{"crv":"Ed25519","d":"secret","x":"pub","kty":"OKP","k":"s"}"#;
        let shown = published("k", "EdDSA", Some("Ed25519"), leaky).unwrap();
        assert_eq!(
            shown,
            serde_json::json!({"alg":"EdDSA","crv":"Ed25519","x":"pub","kty":"OKP","kid":"k"})
        );
        assert_eq!(
            SigningJwk::new("k", "EdDSA", "{}").err(),
            Some(JwkError::Unusable)
        );
    }
}
