//! What a test needs from outside the crate (PostgreSQL, Redis, redis-server, nginx,
//! Caddy, docker-compose, hadolint) and what happens when it is missing.

use std::process::{Command, Stdio};

fn required() -> bool {
    std::env::var("REQUIRE_TEST_SERVICES").is_ok_and(|v| v == "1" || v == "true")
}

/// Says loudly that `what` is missing, or fails when services are required.
pub fn unavailable(what: &str) {
    assert!(!required(), "{what} is required but unavailable");
    eprintln!("\n!!! SKIPPING test: {what} unavailable !!!\n");
}

/// Whether `bin` runs (`bin --version`, or `-v` / `version` for the proxies); loudly
/// false when it does not.
pub fn have_tool(bin: &str) -> bool {
    let runs = |arg: &str| {
        Command::new(bin)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let found = runs("--version") || runs("-v") || runs("version");
    if !found {
        unavailable(&format!("{bin} (not installed)"));
    }
    found
}
