//! What a test needs from outside the crate: PostgreSQL and Redis (always there in CI and
//! on a developer's machine, see README), and the programs `redis-server`, nginx, Caddy,
//! docker-compose, hadolint, kubernetes-validate and check-jsonschema (which `.ci/run`
//! installs). A test whose service or program is missing fails, saying what to start or
//! install: it never passes without having run.

use std::process::{Command, Stdio};

/// Fails the test: `what` could not be reached; `hint` says how to get it.
pub fn unavailable(what: &str, hint: &str) -> ! {
    panic!("{what} is unavailable; {hint}")
}

/// Fails the test unless `bin` runs (`bin --version`, or `-v` / `version` for the
/// proxies).
pub fn require_tool(bin: &str) {
    let runs = |arg: &str| {
        Command::new(bin)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !(runs("--version") || runs("-v") || runs("version")) {
        unavailable(
            &format!("`{bin}`"),
            "install it (.ci/run lists how) to run this test",
        );
    }
}
