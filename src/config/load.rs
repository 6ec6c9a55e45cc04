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

/// Options whose values may be (or contain) secrets: errors never show them.
const SENSITIVE: &[&str] = &["secret", "database.url", "redis.url"];

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

/// The environment as providers: Better Auth's variables first, then `SESSIOND_*`.
fn environment(vars: &[(String, String)]) -> Vec<EnvVar> {
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
    out
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
        figment::error::Kind::InvalidType(_, expected) if SENSITIVE.contains(&key.as_str()) => {
            format!("expected {expected} (the value is not shown)")
        }
        _ if SENSITIVE.contains(&key.as_str()) => "unusable value (not shown)".into(),
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
        for var in environment(vars) {
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
