//! `config/default.toml` documents every option with its real default.

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use sessiond::config::Settings;

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml");

#[test]
fn default_toml_matches_built_in_defaults() {
    let fig = Figment::from(Serialized::defaults(Settings::default())).merge(Toml::file(FILE));
    let loaded = Settings::from_figment(fig).unwrap();
    assert_eq!(
        serde_json::to_value(&loaded).unwrap(),
        serde_json::to_value(Settings::default()).unwrap()
    );
}

fn leaves(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&p, v, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

#[test]
fn default_toml_mentions_every_option() {
    let text = std::fs::read_to_string(FILE).unwrap();
    let mut keys = Vec::new();
    leaves(
        "",
        &serde_json::to_value(Settings::default()).unwrap(),
        &mut keys,
    );
    keys.push("advanced.use_secure_cookies".into());
    for key in keys {
        let (section, name) = key.rsplit_once('.').unwrap_or(("", &key));
        let header = format!("[{section}]");
        let in_section = section.is_empty() || text.contains(&header);
        let has_key = text.lines().any(|l| {
            let l = l.trim_start_matches('#').trim();
            l.starts_with(&format!("{name} =")) || l == format!("[{key}]")
        });
        assert!(
            in_section && has_key,
            "config/default.toml does not document {key}"
        );
    }
}
