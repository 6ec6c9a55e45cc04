//! Loading: built-in defaults, then a TOML file, then the environment, later layers winning.
//!
//! Environment values are typed by the option they set: a string option takes the
//! variable's text exactly as given (a numeric secret, a cache version `2`, surrounding
//! spaces: Better Auth uses its variables as they are), any other option reads it as JSON
//! (numbers, booleans, lists and maps). Errors name the option and the variable or file it
//! came from, and never show the value of an option that may hold a secret.

use std::collections::HashSet;
use std::path::Path;

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map as FigMap};
use figment::{Figment, Metadata, Profile, Provider};
use serde_json::Value;

use super::Settings;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value could not be read or is unusable; the message names the key and where it
    /// came from.
    #[error("configuration: {0}")]
    Invalid(String),
}

/// Options whose values may be (or contain) secrets: errors never show them (nor any part
/// of them, such as `secrets.0.value`).
const SENSITIVE: &[&str] = &[
    "secret",
    "secrets",
    "database.url",
    "redis.url",
    "redis.sentinel.password",
    "redis.cluster.password",
];

/// Whether an error about `key` could show a secret: a sensitive option or a part of one,
/// except a version number.
fn sensitive(key: &str) -> bool {
    SENSITIVE.iter().any(|s| {
        key == *s
            || key
                .strip_prefix(s)
                .is_some_and(|rest| rest.starts_with('.') && !rest.ends_with(".version"))
    })
}

/// Better Auth's and the platform's variables, and the option each sets (under the
/// `SESSIOND_` ones).
const COMPAT_VARS: &[(&str, &str)] = &[
    ("BETTER_AUTH_SECRET", "secret"),
    ("BETTER_AUTH_URL", "base_url"),
    ("DATABASE_URL", "database.url"),
    ("REDIS_URL", "redis.url"),
    ("HOST", "host"),
    ("PORT", "port"),
];

/// One environment variable setting one option; its own provider, so that an error names
/// the variable.
struct EnvVar {
    name: String,
    path: String,
    value: Value,
}

impl Provider for EnvVar {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("environment variable {}", self.name))
    }

    fn data(&self) -> Result<FigMap<Profile, Dict>, figment::Error> {
        Serialized::default(&self.path, &self.value).data()
    }
}

/// Dotted paths of every option whose built-in default is a string.
fn string_options() -> HashSet<String> {
    fn walk(prefix: &str, v: &Value, out: &mut HashSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, v, out);
                }
            }
            Value::String(_) => {
                out.insert(prefix.to_owned());
            }
            _ => {}
        }
    }
    let mut out = HashSet::new();
    if let Ok(v) = serde_json::to_value(Settings::default()) {
        walk("", &v, &mut out);
    }
    out
}

/// The value a variable gives its option.
fn typed(path: &str, raw: &str, strings: &HashSet<String>) -> Value {
    if strings.contains(path) {
        return Value::String(raw.to_owned());
    }
    match serde_json::from_str::<Value>(raw.trim()) {
        Ok(v) => v,
        Err(_) => Value::String(raw.to_owned()),
    }
}

/// `BETTER_AUTH_SECRETS` (`"2:new,1:old"`) as the `secrets` list, when set and not empty.
fn secrets_var(vars: &[(String, String)]) -> Result<Option<EnvVar>, ConfigError> {
    const VAR: &str = "BETTER_AUTH_SECRETS";
    let Some((_, raw)) = vars.iter().find(|(k, _)| k == VAR) else {
        return Ok(None);
    };
    let Some(list) = super::parse_secrets_env(raw)? else {
        return Ok(None);
    };
    let value: Vec<Value> = list
        .iter()
        .map(|s| serde_json::json!({"version": s.version, "value": s.value.expose_secret()}))
        .collect();
    Ok(Some(EnvVar {
        name: VAR.to_owned(),
        path: "secrets".to_owned(),
        value: Value::Array(value),
    }))
}

/// The environment as providers: Better Auth's variables first, then `SESSIOND_*`.
fn environment(vars: &[(String, String)]) -> Result<Vec<EnvVar>, ConfigError> {
    let strings = string_options();
    let mut out = Vec::new();
    for (var, path) in COMPAT_VARS {
        if let Some((_, raw)) = vars.iter().find(|(k, _)| k == var) {
            out.push(EnvVar {
                name: (*var).to_owned(),
                path: (*path).to_owned(),
                value: typed(path, raw, &strings),
            });
        }
    }
    out.extend(secrets_var(vars)?);
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix("SESSIOND_") else {
            continue;
        };
        let path = rest.to_lowercase().replace("__", ".");
        out.push(EnvVar {
            name: name.clone(),
            value: typed(&path, raw, &strings),
            path,
        });
    }
    Ok(out)
}

/// Describes a figment error: the key, where its value came from, what is wrong, and the
/// value only where it cannot be a secret.
fn describe(err: &figment::Error) -> String {
    let key = err.path.join(".").to_lowercase();
    let source = match err.metadata.as_ref() {
        Some(m) => match &m.source {
            Some(src) => format!("{} {src}", m.name),
            None => m.name.to_string(),
        },
        None => "defaults".into(),
    };
    let what = match &err.kind {
        figment::error::Kind::UnknownField(f, _) => {
            format!("unknown option {:?}", f.to_lowercase())
        }
        figment::error::Kind::InvalidType(_, expected) if sensitive(&key) => {
            format!("expected {expected} (the value is not shown)")
        }
        _ if sensitive(&key) => "unusable value (not shown)".into(),
        // A syntax error quotes the offending line, which may hold a secret: keep only
        // where it is.
        figment::error::Kind::Message(m) => m.lines().next().unwrap_or_default().to_owned(),
        other => other.to_string(),
    };
    if key.is_empty() {
        format!("{what} (from {source})")
    } else {
        format!("invalid value for {key} (from {source}): {what}")
    }
}

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        let msgs: Vec<String> = e.into_iter().map(|err| describe(&err)).collect();
        ConfigError::Invalid(msgs.join("; "))
    }
}

impl Settings {
    /// Loads defaults < `file` (or `config/default.toml` when present) < the process's
    /// environment, and checks the result.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        // Variables that are not Unicode cannot be options; they are skipped, not a panic.
        let vars: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError::Invalid(format!(
                        "config file {} does not exist",
                        path.display()
                    )));
                }
                fig = fig.merge(Toml::file_exact(path));
            }
            // The default file is optional, and only looked for where sessiond runs.
            None if Path::new("config/default.toml").is_file() => {
                fig = fig.merge(Toml::file_exact("config/default.toml"));
            }
            None => {}
        }
        Self::from_layers(fig, &vars)
    }

    /// Settings from TOML text and environment variables (what `load` reads from a file
    /// and the process), for tests and fuzzing.
    pub fn from_sources(toml: &str, vars: &[(String, String)]) -> Result<Self, ConfigError> {
        let fig =
            Figment::from(Serialized::defaults(Settings::default())).merge(Toml::string(toml));
        Self::from_layers(fig, vars)
    }

    fn from_layers(mut fig: Figment, vars: &[(String, String)]) -> Result<Self, ConfigError> {
        for var in environment(vars)? {
            fig = fig.merge(var);
        }
        let mut s: Settings = fig.extract()?;
        // Better Auth's comma-separated list adds to the configured origins.
        if let Some((_, list)) = vars
            .iter()
            .find(|(k, _)| k == "BETTER_AUTH_TRUSTED_ORIGINS")
        {
            s.trusted_origins.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(String::from),
            );
        }
        s.validate()?;
        Ok(s)
    }

    /// Extracts and checks settings from a prepared figment.
    pub fn from_figment(fig: Figment) -> Result<Self, ConfigError> {
        let s: Settings = fig.extract()?;
        s.validate()?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn strings_stay_strings_and_the_rest_is_json() {
        let s = Settings::from_sources(
            "",
            &env(&[
                ("SESSIOND_SESSION__COOKIE_CACHE__VERSION", "1.10"),
                ("BETTER_AUTH_SECRET", " 0123456789012345678901234567890123 "),
                ("SESSIOND_SESSION__EXPIRES_IN", "3600"),
                ("SESSIOND_TRUSTED_ORIGINS", r#"["https://a.example"]"#),
                ("SESSIOND_SESSION__COOKIE_CACHE__ENABLED", "true"),
                (
                    "BETTER_AUTH_TRUSTED_ORIGINS",
                    "https://b.example, https://c.example",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(s.session.cookie_cache.version, "1.10");
        assert_eq!(
            s.secret.expose_secret(),
            " 0123456789012345678901234567890123 "
        );
        assert_eq!(s.session.expires_in, 3600);
        assert!(s.session.cookie_cache.enabled);
        assert_eq!(
            s.trusted_origins,
            [
                "https://a.example",
                "https://b.example",
                "https://c.example"
            ]
        );
    }

    #[test]
    fn secrets_are_never_shown_in_errors() {
        let err = Settings::from_sources("secret = 1234567890123\n", &[]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("secret") && !text.contains("1234567890123"),
            "{text}"
        );
        let err = Settings::from_sources("[database]\nurl = 987654321\n", &[]).unwrap_err();
        assert!(!err.to_string().contains("987654321"), "{err}");
        let err = Settings::from_sources("secret = 12345678901234567890\n", &[]).unwrap_err();
        assert!(!err.to_string().contains("12345678901234567890"), "{err}");
        let err = Settings::from_sources("secret = hunter2-unquoted\n", &[]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    fn versions(s: &Settings) -> Vec<(u64, &str)> {
        s.secrets
            .iter()
            .map(|v| (v.version, v.value.expose_secret()))
            .collect()
    }

    #[test]
    fn versioned_secrets_come_from_the_file_then_better_auth_then_sessiond() {
        let toml =
            "secret = \"legacy-secret\"\nsecrets = [{ version = 1, value = \"file-secret\" }]\n";
        let s = Settings::from_sources(toml, &[]).unwrap();
        assert_eq!(versions(&s), [(1, "file-secret")]);
        let ba = ("BETTER_AUTH_SECRETS", " 2:env-new , 1:env-old");
        let s = Settings::from_sources(toml, &env(&[ba])).unwrap();
        assert_eq!(versions(&s), [(2, "env-new"), (1, "env-old")]);
        assert_eq!(s.secret.expose_secret(), "legacy-secret");
        let json = (
            "SESSIOND_SECRETS",
            r#"[{"version": 3, "value": "json-secret"}]"#,
        );
        let s = Settings::from_sources(toml, &env(&[json, ba])).unwrap();
        assert_eq!(versions(&s), [(3, "json-secret")]);
        // Empty is unset, as in Better Auth.
        let s = Settings::from_sources(toml, &env(&[("BETTER_AUTH_SECRETS", "")])).unwrap();
        assert_eq!(versions(&s), [(1, "file-secret")]);
    }

    #[test]
    fn versioned_secret_errors_name_the_source_and_show_no_secret() {
        let refused = |toml: &str, vars: &[(&str, &str)]| {
            Settings::from_sources(toml, &env(vars))
                .unwrap_err()
                .to_string()
        };
        let err = refused(
            "",
            &[("BETTER_AUTH_SECRETS", "2:first-secret,2:second-secret")],
        );
        assert!(err.contains("secrets: version 2 is listed twice"), "{err}");
        let err = refused("", &[("BETTER_AUTH_SECRETS", "oops-secret-value")]);
        assert!(
            err.contains("environment variable BETTER_AUTH_SECRETS: entry 1"),
            "{err}"
        );
        let err = refused("", &[("SESSIOND_SECRETS", "not json hunter2-secret")]);
        assert!(err.contains("SESSIOND_SECRETS"), "{err}");
        let err = refused(
            "",
            &[("SESSIOND_SECRETS", r#"[{"version": 1, "value": 77777777}]"#)],
        );
        assert!(err.contains("secrets.0.value"), "{err}");
        let err = refused(
            "secrets = [{ version = -1, value = \"neg-secret\" }]\n",
            &[],
        );
        assert!(
            err.contains("secrets.0.version") && err.contains("-1"),
            "{err}"
        );
        let err = refused(
            "secrets = [{ version = 1, valeu = \"typo-secret\" }]\n",
            &[],
        );
        assert!(err.contains("unknown option \"valeu\""), "{err}");
        let err = refused("secrets = \"plain-secret\"\n", &[]);
        assert!(err.contains("invalid value for secrets"), "{err}");
        for err in [
            refused(
                "",
                &[("BETTER_AUTH_SECRETS", "2:first-secret,2:second-secret")],
            ),
            refused("", &[("BETTER_AUTH_SECRETS", "oops-secret-value")]),
            refused("", &[("SESSIOND_SECRETS", "not json hunter2-secret")]),
            refused(
                "",
                &[("SESSIOND_SECRETS", r#"[{"version": 1, "value": 77777777}]"#)],
            ),
            refused(
                "secrets = [{ version = -1, value = \"neg-secret\" }]\n",
                &[],
            ),
            refused(
                "secrets = [{ version = 1, valeu = \"typo-secret\" }]\n",
                &[],
            ),
            refused("secrets = \"plain-secret\"\n", &[]),
        ] {
            for hidden in ["-secret", "hunter2", "77777777"] {
                assert!(!err.contains(hidden), "{hidden} shown in {err}");
            }
        }
    }

    #[test]
    fn errors_name_the_variable() {
        let err = Settings::from_sources("", &env(&[("SESSIOND_SESSION__EXPIRES_IN", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("session.expires_in"), "{err}");
        assert!(err.contains("SESSIOND_SESSION__EXPIRES_IN"), "{err}");
        let err = Settings::from_sources("", &env(&[("PORT", "http")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("environment variable PORT"), "{err}");
    }
}
