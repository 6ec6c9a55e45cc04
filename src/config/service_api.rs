//! The service API for backends (`service_api.*`): its path prefix, optional listener, and
//! the API keys, kept as SHA-256 hashes with the operations each may call.

use serde::{Deserialize, Serialize};

use super::serving::ListenAddr;

/// What a service API key may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operation {
    /// List a user's sessions.
    #[serde(rename = "sessions:list")]
    SessionsList,
    /// Revoke one session by id.
    #[serde(rename = "sessions:revoke")]
    SessionsRevoke,
    /// Revoke every session of one or many users.
    #[serde(rename = "users:revoke-sessions")]
    UsersRevokeSessions,
    /// Ban and unban users (ending their sessions).
    #[serde(rename = "users:ban")]
    UsersBan,
    /// Read a user's session history (the audit trail).
    #[serde(rename = "sessions:history")]
    SessionsHistory,
}

impl Operation {
    /// The name used in configuration and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SessionsList => "sessions:list",
            Self::SessionsRevoke => "sessions:revoke",
            Self::UsersRevokeSessions => "users:revoke-sessions",
            Self::UsersBan => "users:ban",
            Self::SessionsHistory => "sessions:history",
        }
    }
}

/// One API key: a name for the logs, the key's hash, and what it may do.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceKey {
    /// Shown in logs in place of the key.
    pub name: String,
    /// SHA-256 of the key, 64 lower-case hex digits (`sessiond hash-key`).
    pub hash: String,
    /// The operations it may call.
    #[serde(default)]
    pub operations: Vec<Operation>,
}

/// `service_api.*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceApiSettings {
    /// Serve the service API.
    pub enabled: bool,
    /// Where its routes live.
    pub path_prefix: String,
    /// `host:port` of a listener of its own (then the main listener does not serve it);
    /// empty: the main listener.
    #[serde(
        deserialize_with = "super::serving::empty_is_none",
        serialize_with = "super::serving::none_is_empty"
    )]
    pub listen: Option<ListenAddr>,
    /// The API keys.
    pub keys: Vec<ServiceKey>,
}

impl Default for ServiceApiSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            path_prefix: "/service/v1".into(),
            listen: None,
            keys: Vec::new(),
        }
    }
}

/// Shortest API key `sessiond hash-key` accepts: 32 characters of a random alphabet is at
/// least 160 bits, beyond any search of the hashes.
pub const MIN_KEY_LEN: usize = 32;

/// Most keys configured (each request compares against all of them).
pub const MAX_KEYS: usize = 64;

/// The hash of an API key as configured: SHA-256, lower-case hex.
pub fn hash_key(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

impl ServiceApiSettings {
    /// Refuses keys and paths that cannot work.
    pub(super) fn check(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        let p = &self.path_prefix;
        if !p.starts_with('/') || p.ends_with('/') || p.contains(['{', '}', '*', '?', '#']) {
            return Err(format!(
                "service_api.path_prefix must start with '/', not end with '/' and hold no pattern characters: {p:?}"
            ));
        }
        if self.keys.len() > MAX_KEYS {
            return Err(format!("service_api.keys: at most {MAX_KEYS} keys"));
        }
        let mut names = std::collections::HashSet::new();
        for k in &self.keys {
            if k.name.is_empty()
                || k.name.len() > 64
                || !k
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
            {
                return Err(format!(
                    "service_api.keys: name must be 1 to 64 letters, digits, '-', '_', '.' or ':', not {:?}",
                    k.name
                ));
            }
            if !names.insert(k.name.as_str()) {
                return Err(format!("service_api.keys: name {:?} appears twice", k.name));
            }
            if k.hash.len() != 64
                || !k
                    .hash
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err(format!(
                    "service_api.keys.{}: hash must be the key's SHA-256 as 64 lower-case hex digits (sessiond hash-key)",
                    k.name
                ));
            }
        }
        Ok(())
    }

    /// Whether some key may call `op`.
    pub fn grants(&self, op: Operation) -> bool {
        self.enabled && self.keys.iter().any(|k| k.operations.contains(&op))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn bad_hashes_and_names_are_refused() {
        let mut s = ServiceApiSettings {
            enabled: true,
            ..Default::default()
        };
        s.keys.push(ServiceKey {
            name: "ok".into(),
            hash: "ABC".into(),
            operations: vec![],
        });
        assert!(s.check().is_err());
        s.keys[0].hash = hash_key("k");
        assert!(s.check().is_ok());
        s.keys[0].name = "a b".into();
        assert!(s.check().is_err());
    }
}
