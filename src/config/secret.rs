//! Settings that must never be shown: the signing secret, and URLs that may carry a
//! password.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// What `{:?}` and serialisation show instead of a value that is set.
const REDACTED: &str = "[redacted]";

/// Text held in a [`SecretString`] (wiped from memory when dropped): `{:?}` and
/// serialisation show `[redacted]` in its place, or `""` when it is empty (that nothing is
/// set is no secret, and the empty defaults stay loadable). So a serialised `Settings`
/// never carries a secret back in; the value is read with [`expose_secret`](Self::expose_secret)
/// where it is used.
#[derive(Clone, Default)]
pub struct Secret(SecretString);

impl Secret {
    /// The value itself.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.expose_secret().is_empty()
    }

    fn shown(&self) -> &'static str {
        if self.is_empty() {
            ""
        } else {
            REDACTED
        }
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s.into())
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.into())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.shown(), f)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.shown())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;

    #[test]
    fn secrets_and_passwords_are_never_shown() {
        let vars: Vec<(String, String)> = [
            (
                "BETTER_AUTH_SECRET",
                "signing-secret-E7FTgwuEDywVtnv6eUxauY",
            ),
            (
                "DATABASE_URL",
                "postgres://app:db-pass-Qx7Rk2@db.internal/app",
            ),
            (
                "REDIS_URL",
                "redis://:redis-pass-Wm4Zt9@cache.internal:6379/0",
            ),
            (
                "BETTER_AUTH_SECRETS",
                "2:rotated-new-kX2v9QmP4sT7wZ1bN6yR3h,1:rotated-old-3f9a1c7e5b2d8f4a6c",
            ),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let s = Settings::from_sources("", &vars).unwrap();
        assert_eq!(s.secret.expose_secret(), vars[0].1);
        assert_eq!(s.database.url.expose_secret(), vars[1].1);
        assert_eq!(s.redis.url.expose_secret(), vars[2].1);
        assert_eq!(s.secrets.len(), 2);
        let shown = [
            format!("{s:?}"),
            format!("{s:#?}"),
            serde_json::to_string(&s).unwrap(),
        ];
        for text in shown {
            for hidden in [
                "signing-secret",
                "db-pass",
                "redis-pass",
                "db.internal",
                "rotated-",
            ] {
                assert!(!text.contains(hidden), "{hidden} shown in {text}");
            }
            assert!(text.contains("[redacted]"), "{text}");
        }
        // Unset stays visibly unset.
        let d = Settings::default();
        assert!(format!("{d:?}").contains("secret: \"\""));
        assert_eq!(serde_json::to_value(&d).unwrap()["secret"], "");
    }
}
