//! Tokens for other services: Better Auth's `bearer()` and `jwt()` plugins
//! (`plugins.bearer`, `plugins.jwt`), the JWT forward auth hands upstreams
//! (`forward_auth.jwt`), and the revocation feed offline verifiers follow
//! (`revocation_feed`).

use serde::{Deserialize, Serialize};

use super::Secret;

/// Better Auth's `bearer()` options.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BearerSettings {
    /// `Authorization: Bearer <token>` is the session credential on every route, and
    /// responses that set the session cookie carry `set-auth-token`.
    pub enabled: bool,
    /// Refuse bare tokens: only `token.signature` is read (`requireSignature`).
    pub require_signature: bool,
}

/// Key algorithms the jwt plugin can make keys for (`jwks.keyPairConfig.alg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum KeyAlg {
    /// Ed25519 or Ed448 (by `crv`).
    #[default]
    EdDSA,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-521 with SHA-512.
    ES512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PSS with SHA-256.
    PS256,
}

one_of!(KeyAlg, exact, "EdDSA, ES256, ES512, RS256 or PS256", {
    "EdDSA" => EdDSA,
    "ES256" => ES256,
    "ES512" => ES512,
    "RS256" => RS256,
    "PS256" => PS256,
});

impl KeyAlg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::ES512 => "ES512",
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
        }
    }
}

/// Better Auth's `jwt()` options.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSettings {
    /// Serve `{base}/jwks` and `{base}/token`, and send `set-auth-jwt` on get-session.
    pub enabled: bool,
    /// `iss` of minted tokens; empty: the base URL.
    pub issuer: String,
    /// `aud` of minted tokens; empty: the base URL.
    pub audience: String,
    /// Lifetime of a minted token (s): `exp = iat + expiration_time`.
    pub expiration_time: u64,
    /// Do not send `set-auth-jwt` on get-session.
    pub disable_setting_jwt_header: bool,
    /// The signing keys.
    pub jwks: JwksSettings,
}

impl Default for JwtSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            issuer: String::new(),
            audience: String::new(),
            expiration_time: 900,
            disable_setting_jwt_header: false,
            jwks: JwksSettings::default(),
        }
    }
}

/// Better Auth's `jwt({ jwks })` options.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwksSettings {
    /// Algorithm of new keys.
    pub alg: KeyAlg,
    /// Curve of new EdDSA keys: `Ed25519` or `Ed448`.
    pub crv: String,
    /// Modulus length (bits) of new RSA keys.
    pub modulus_length: u32,
    /// A key is replaced this long (s) after it was made; 0: never.
    pub rotation_interval: u64,
    /// A replaced key stays published this long (s).
    pub grace_period: u64,
    /// Path of the key set under the base path (`jwksPath`).
    pub jwks_path: String,
    /// Store private keys in clear (`disablePrivateKeyEncryption`).
    pub disable_private_key_encryption: bool,
    /// `Cache-Control: public, max-age` of the key set (s).
    pub cache_max_age: u64,
}

impl Default for JwksSettings {
    fn default() -> Self {
        Self {
            alg: KeyAlg::EdDSA,
            crv: "Ed25519".into(),
            modulus_length: 2048,
            rotation_interval: 0,
            grace_period: 2_592_000,
            jwks_path: "/jwks".into(),
            disable_private_key_encryption: false,
            cache_max_age: 300,
        }
    }
}

/// A JWT on forward auth's 200 answers, for the upstream to verify.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardAuthJwtSettings {
    /// Add the JWT (needs `plugins.jwt.enabled`).
    pub enabled: bool,
    /// The response header carrying it.
    pub header: String,
    /// Audiences a request may ask for with `?aud=`; without `?aud=` the token's audience
    /// is `plugins.jwt.audience`.
    pub audiences: Vec<String>,
    /// Lifetime of these tokens (s).
    pub expiration_time: u64,
}

impl Default for ForwardAuthJwtSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            header: "X-Auth-Jwt".into(),
            audiences: Vec::new(),
            expiration_time: 300,
        }
    }
}

/// `GET {base}/revocations`: the sessions ended lately, for verifiers that check JWTs
/// offline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RevocationFeedSettings {
    /// Serve the feed (and put `sid` in minted JWTs).
    pub enabled: bool,
    /// The key verifiers send as `Authorization: Bearer <key>`; required unless `open`.
    pub key: Secret,
    /// Serve the feed to anyone.
    pub open: bool,
    /// Event streams open at once at most; more get 503.
    pub max_streams: usize,
}

impl Default for RevocationFeedSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            key: Secret::default(),
            open: false,
            max_streams: 256,
        }
    }
}

/// Longest audience `forward_auth.jwt.audiences` may list, and most entries.
pub const MAX_AUDIENCE_LEN: usize = 256;
/// Most entries of `forward_auth.jwt.audiences`.
pub const MAX_AUDIENCES: usize = 64;
/// The routes under the base path, which the key set may not take.
const API_ROUTES: [&str; 15] = [
    "/sign-up/email",
    "/sign-in/email",
    "/sign-out",
    "/get-session",
    "/list-sessions",
    "/revoke-session",
    "/revoke-sessions",
    "/revoke-other-sessions",
    "/update-session",
    "/update-user",
    "/change-password",
    "/ok",
    "/error",
    "/token",
    "/revocations",
];
/// Shortest revocation feed key.
pub const MIN_FEED_KEY_LEN: usize = 32;

impl super::Settings {
    /// Refuses token settings that cannot work: a key pair the plugin cannot make, a key set
    /// path that is not a plain path, forward-auth JWTs or a feed without what they need.
    pub(super) fn check_tokens(&self) -> Result<(), super::ConfigError> {
        use super::validate::{invalid, MAX_DURATION_SECS};
        let jwt = &self.plugins.jwt;
        let jwks = &jwt.jwks;
        let crv_ok = match jwks.alg {
            KeyAlg::EdDSA => matches!(jwks.crv.as_str(), "Ed25519" | "Ed448"),
            _ => true,
        };
        if !crv_ok {
            return Err(invalid(format!(
                "plugins.jwt.jwks.crv must be Ed25519 or Ed448 for EdDSA, not {:?}",
                jwks.crv
            )));
        }
        if !(2048..=8192).contains(&jwks.modulus_length) {
            return Err(invalid(
                "plugins.jwt.jwks.modulus_length must be between 2048 and 8192",
            ));
        }
        let path = jwks.jwks_path.as_str();
        let plain = path.starts_with('/')
            && path.len() > 1
            && !path.contains("..")
            && !path.contains("//")
            && !path.ends_with('/')
            && path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b));
        if !plain {
            return Err(invalid(format!(
                "plugins.jwt.jwks.jwks_path must be a plain path starting with '/' and without '..', not {path:?}"
            )));
        }
        let taken = API_ROUTES.contains(&path);
        if taken {
            return Err(invalid(format!(
                "plugins.jwt.jwks.jwks_path {path:?} is another route's"
            )));
        }
        let durations = [
            ("plugins.jwt.expiration_time", jwt.expiration_time),
            ("plugins.jwt.jwks.rotation_interval", jwks.rotation_interval),
            ("plugins.jwt.jwks.grace_period", jwks.grace_period),
            ("plugins.jwt.jwks.cache_max_age", jwks.cache_max_age),
            (
                "forward_auth.jwt.expiration_time",
                self.forward_auth.jwt.expiration_time,
            ),
        ];
        for (name, v) in durations {
            if v > MAX_DURATION_SECS {
                return Err(invalid(format!(
                    "{name} must be at most {MAX_DURATION_SECS} seconds"
                )));
            }
        }
        if jwt.expiration_time == 0 || self.forward_auth.jwt.expiration_time == 0 {
            return Err(invalid(
                "plugins.jwt.expiration_time and forward_auth.jwt.expiration_time must be > 0",
            ));
        }
        let fa = &self.forward_auth.jwt;
        if fa.enabled && !(jwt.enabled && self.forward_auth.enabled) {
            return Err(invalid(
                "forward_auth.jwt needs plugins.jwt.enabled and forward_auth.enabled",
            ));
        }
        if fa.audiences.len() > MAX_AUDIENCES
            || fa
                .audiences
                .iter()
                .any(|a| a.is_empty() || a.len() > MAX_AUDIENCE_LEN)
        {
            return Err(invalid(format!(
                "forward_auth.jwt.audiences: at most {MAX_AUDIENCES}, each 1 to {MAX_AUDIENCE_LEN} bytes"
            )));
        }
        let feed = &self.revocation_feed;
        if feed.enabled {
            if self.is_stateless() {
                return Err(invalid(
                    "revocation_feed needs a database or Redis to learn revocations from",
                ));
            }
            if !feed.open && feed.key.expose_secret().len() < MIN_FEED_KEY_LEN {
                return Err(invalid(format!(
                    "revocation_feed.key must be at least {MIN_FEED_KEY_LEN} characters (or set revocation_feed.open)"
                )));
            }
            if feed.max_streams == 0 || feed.max_streams > 65_536 {
                return Err(invalid(
                    "revocation_feed.max_streams must be between 1 and 65536",
                ));
            }
        }
        Ok(())
    }
}
