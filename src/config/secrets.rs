//! Versioned secrets (Better Auth's `secrets` option and `BETTER_AUTH_SECRETS`): the first
//! signs, and values signed or encrypted under any listed version are still read, so that a
//! secret can be rotated without signing anyone out.

use serde::{Deserialize, Serialize};

use super::validate::invalid;
use super::{ConfigError, Secret, Settings};
use crate::js::string::{parse_int, trim};

/// Most versions listed at once. A value signed under an older version is checked against
/// each in turn, so the list's length bounds that work.
pub const MAX_SECRET_VERSIONS: usize = 16;

/// The largest version: JavaScript's largest exact integer, so that a version is the same
/// number in Better Auth.
pub const MAX_SECRET_VERSION: u64 = (1 << 53) - 1;

/// Better Auth's built-in development secret: it never serves as the legacy secret.
pub const BETTER_AUTH_DEFAULT_SECRET: &str = "better-auth-secret-12345678901234567890";

/// One version of the secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionedSecret {
    /// A non-negative integer naming this secret, unique in the list.
    pub version: u64,
    /// The secret.
    pub value: Secret,
}

/// Reads `BETTER_AUTH_SECRETS` as Better Auth's `parseSecretsEnv` does: `""` is unset;
/// otherwise comma-separated `<version>:<secret>` entries, each trimmed, the version read
/// by `parseInt` (`"2x"` is 2) and non-negative, the secret trimmed and not empty. Errors
/// name the entry by position, never its value.
pub fn parse_secrets_env(raw: &str) -> Result<Option<Vec<VersionedSecret>>, ConfigError> {
    const VAR: &str = "environment variable BETTER_AUTH_SECRETS";
    if raw.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for (i, entry) in raw.split(',').enumerate() {
        let at = i + 1;
        let Some((version, value)) = trim(entry).split_once(':') else {
            return Err(invalid(format!(
                "{VAR}: entry {at} is not \"<version>:<secret>\""
            )));
        };
        let version = match parse_int(version) {
            Some((_, 0)) => 0,
            Some((false, v)) if v <= MAX_SECRET_VERSION => v,
            _ => {
                return Err(invalid(format!(
                    "{VAR}: the version of entry {at} must be an integer from 0 to \
                     {MAX_SECRET_VERSION}"
                )))
            }
        };
        let value = trim(value);
        if value.is_empty() {
            return Err(invalid(format!(
                "{VAR}: the secret of version {version} is empty"
            )));
        }
        out.push(VersionedSecret {
            version,
            value: value.into(),
        });
    }
    Ok(Some(out))
}

impl Settings {
    /// Refuses a `secrets` list Better Auth refuses (a duplicate version, an empty value),
    /// or one this service cannot bound (too many versions, a version past
    /// [`MAX_SECRET_VERSION`]). Strength is judged where the secrets are resolved.
    pub(super) fn check_secrets(&self) -> Result<(), ConfigError> {
        let list = &self.secrets;
        if list.len() > MAX_SECRET_VERSIONS {
            return Err(invalid(format!(
                "secrets lists {} versions; at most {MAX_SECRET_VERSIONS} are accepted \
                 (remove the oldest)",
                list.len()
            )));
        }
        for (i, s) in list.iter().enumerate() {
            if s.version > MAX_SECRET_VERSION {
                return Err(invalid(format!(
                    "secrets: version {} is above {MAX_SECRET_VERSION}",
                    s.version
                )));
            }
            if s.value.is_empty() {
                return Err(invalid(format!(
                    "secrets: the secret of version {} is empty",
                    s.version
                )));
            }
            if list.iter().take(i).any(|o| o.version == s.version) {
                return Err(invalid(format!(
                    "secrets: version {} is listed twice; each version must be unique",
                    s.version
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &str) -> Vec<(u64, String)> {
        parse_secrets_env(raw)
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|s| (s.version, s.value.expose_secret().to_owned()))
            .collect()
    }

    fn refused(raw: &str) -> String {
        parse_secrets_env(raw).unwrap_err().to_string()
    }

    #[test]
    fn the_environment_form_is_read_as_better_auth_reads_it() {
        assert!(parse_secrets_env("").unwrap().is_none());
        assert_eq!(
            parsed("2:new-secret,1:old-secret"),
            [(2, "new-secret".into()), (1, "old-secret".into())]
        );
        // Entries and secrets trimmed; a secret may hold ':'; parseInt's leniency.
        assert_eq!(
            parsed(" 3 : a:b:c , 10x:\u{feff}d\u{a0}, +4:e, -0:f"),
            [
                (3, "a:b:c".into()),
                (10, "d".into()),
                (4, "e".into()),
                (0, "f".into())
            ]
        );
        // Duplicates pass the parser; the settings' check refuses them.
        assert_eq!(parsed("1:a,1:b").len(), 2);
    }

    #[test]
    fn bad_entries_are_named_by_position_without_their_value() {
        for (raw, message) in [
            (
                "2:ok,secret-without-version",
                "entry 2 is not \"<version>:<secret>\"",
            ),
            ("2:ok,", "entry 2 is not"),
            (" ", "entry 1 is not"),
            ("-1:neg-secret", "the version of entry 1 must be an integer"),
            ("v2:vee-secret", "the version of entry 1 must be an integer"),
            (":no-version", "the version of entry 1 must be an integer"),
            ("9007199254740992:big-secret", "entry 1 must be an integer"),
            ("1:ok,7: \t", "the secret of version 7 is empty"),
        ] {
            let err = refused(raw);
            assert!(err.contains("BETTER_AUTH_SECRETS"), "{err}");
            assert!(err.contains(message), "{raw:?}: {err}");
            for word in ["secret-without", "neg-secret", "vee-secret", "big-secret"] {
                assert!(!err.contains(word), "{err}");
            }
        }
    }

    fn with(list: &[(u64, &str)]) -> Result<(), String> {
        let s = Settings {
            secrets: list
                .iter()
                .map(|(version, value)| VersionedSecret {
                    version: *version,
                    value: (*value).into(),
                })
                .collect(),
            ..Settings::default()
        };
        s.check_secrets().map_err(|e| e.to_string())
    }

    #[test]
    fn lists_better_auth_refuses_are_refused() {
        assert!(with(&[]).is_ok());
        assert!(with(&[(2, "b"), (1, "a"), (7, "c")]).is_ok());
        let err = with(&[(2, "b"), (1, "a"), (2, "c")]).unwrap_err();
        assert!(err.contains("version 2 is listed twice"), "{err}");
        let err = with(&[(2, "b"), (1, "")]).unwrap_err();
        assert!(err.contains("the secret of version 1 is empty"), "{err}");
        let err = with(&[(MAX_SECRET_VERSION + 1, "b")]).unwrap_err();
        assert!(err.contains("is above"), "{err}");
        let many: Vec<(u64, &str)> = (0..=MAX_SECRET_VERSIONS as u64).map(|v| (v, "x")).collect();
        let err = with(&many).unwrap_err();
        assert!(err.contains("at most 16"), "{err}");
        assert!(with(&many[1..]).is_ok());
    }
}
