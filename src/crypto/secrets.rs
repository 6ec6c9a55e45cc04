//! The secrets in use, as resolved at start: the current one (which signs and encrypts),
//! older versions still read, and Better Auth's legacy secret, which only decrypts `jwe`
//! cache values (its `getAllSecrets`).

use super::signed::Keyring;

/// The resolved secrets. `{:?}` shows how many there are, never a value.
#[derive(Clone)]
pub struct SecretSet {
    current: String,
    older: Vec<String>,
    legacy: Option<String>,
    /// The versions of `current` then `older`, when versioned.
    versions: Vec<u64>,
}

impl std::fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSet")
            .field("versions", &(1 + self.older.len()))
            .field("legacy", &self.legacy.is_some())
            .finish()
    }
}

impl SecretSet {
    /// One secret, unversioned.
    pub fn single(secret: String) -> Self {
        Self {
            current: secret,
            older: Vec::new(),
            legacy: None,
            versions: Vec::new(),
        }
    }

    /// Versioned secrets, the current one first, and the legacy secret; `None` without any
    /// version.
    pub fn versioned(listed: Vec<(u64, String)>, legacy: Option<String>) -> Option<Self> {
        let versions = listed.iter().map(|(v, _)| *v).collect();
        let mut listed = listed.into_iter().map(|(_, s)| s);
        let current = listed.next()?;
        Some(Self {
            current,
            older: listed.collect(),
            legacy,
            versions,
        })
    }

    /// The current secret's version, when versioned.
    pub fn current_version(&self) -> Option<u64> {
        self.versions.first().copied()
    }

    /// The secret of a listed version.
    pub fn by_version(&self, version: u64) -> Option<&str> {
        let i = self.versions.iter().position(|v| *v == version)?;
        if i == 0 {
            Some(&self.current)
        } else {
            self.older.get(i - 1).map(String::as_str)
        }
    }

    /// The secret that signs and encrypts.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// The older versions, in the order listed.
    pub fn older(&self) -> &[String] {
        &self.older
    }

    /// The legacy secret, if any.
    pub fn legacy(&self) -> Option<&str> {
        self.legacy.as_deref()
    }

    /// The HMAC keys of the listed versions (not the legacy secret), current first.
    pub fn keyring(&self) -> Option<Keyring> {
        Keyring::new(
            std::iter::once(self.current.as_str()).chain(self.older.iter().map(String::as_str)),
        )
    }
}
