//! The configuration loader: a TOML file and environment variables, both arbitrary. Input:
//! the TOML text, then (after a NUL byte) `NAME=value` lines.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sessiond::config::Settings;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (toml, env) = text.split_once('\0').unwrap_or((&text, ""));
    let vars: Vec<(String, String)> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if let Ok(s) = Settings::from_sources(toml, &vars) {
        // Whatever loads has passed validation: it can be checked again, and used.
        assert!(s.validate().is_ok());
        let _ = s.effective_base_url();
        let _ = s.secure_cookies();
    }
});
