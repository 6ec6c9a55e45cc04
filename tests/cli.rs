//! The binary as an operator runs it: defaults, environment overrides, Better Auth's
//! variables, `migrate`, secret rules, bad configuration, graceful stop.

use std::process::Command;
use std::time::Duration;

mod common;

use common::{command, free_port, Server};

#[test]
fn help_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path()).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("sessiond "));
    let out = command(dir.path()).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["serve", "migrate", "healthcheck"] {
        assert!(text.contains(word), "{text}");
    }
}

#[test]
fn bad_config_value_names_key_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .arg("migrate")
        .env("SESSIOND_SESSION__EXPIRES_IN", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expires_in"), "{err}");
    assert!(err.contains("SESSIOND_SESSION__EXPIRES_IN"), "{err}");
    let out = command(dir.path())
        .arg("migrate")
        .env("SESSIOND_NO_SUCH_OPTION", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_option"));
    let out = command(dir.path())
        .args(["--config", "missing.toml", "migrate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn production_refuses_missing_or_short_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .env("SESSIOND_ENVIRONMENT", "production")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("secret"));
    let out = command(dir.path())
        .env("SESSIOND_ENVIRONMENT", "production")
        .env("BETTER_AUTH_SECRET", "too-short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32"));
    assert!(
        !dir.path().join("data").exists(),
        "nothing written when refusing to start"
    );
}

#[test]
fn defaults_run_on_embedded_sqlite_with_generated_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = Server::start(command(dir.path()));
    assert!(dir.path().join("data/sessiond.db").exists());
    let secret = std::fs::read_to_string(dir.path().join("data/secret")).unwrap();
    assert!(secret.trim().len() >= 32);
    let res = client
        .post(server.url("/sign-up/email"))
        .json(
            &serde_json::json!({"name": "a", "email": "a@example.com", "password": "password-123"}),
        )
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    // Graceful stop on SIGTERM exits 0.
    assert!(server.stop().success());
    // The generated secret is reused on the next start: the old cookie still works.
    let again = std::fs::read_to_string(dir.path().join("data/secret")).unwrap();
    assert_eq!(secret, again);
}

#[test]
fn environment_overrides_and_better_auth_variables() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "an-operator-secret-that-is-long-enough-1234";
    let mut cmd = command(dir.path());
    cmd.env("BETTER_AUTH_SECRET", secret)
        .env("BETTER_AUTH_URL", "http://auth.example")
        .env("SESSIOND_SESSION__EXPIRES_IN", "3600")
        .env("SESSIOND_TRUSTED_ORIGINS", r#"["https://app.example"]"#)
        .env("SESSIOND_ADVANCED__COOKIE_PREFIX", "myapp")
        .env(
            "SESSIOND_SESSION__ADDITIONAL_FIELDS",
            r#"{"theme": {"type": "string", "default_value": "light"}}"#,
        )
        .env("SESSIOND_DATA_DIR", dir.path().join("state"));
    let (server, client) = Server::start(cmd);
    let res = client
        .post(server.url("/sign-up/email"))
        .json(
            &serde_json::json!({"name": "a", "email": "a@example.com", "password": "password-123"}),
        )
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("myapp.session_token="), "{cookie}");
    assert!(cookie.contains("Max-Age=3600"), "{cookie}");
    // Signed with BETTER_AUTH_SECRET.
    let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
    let decoded = percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .unwrap();
    let key = sessiond::crypto::signed::SigningKey::new(secret.as_bytes()).unwrap();
    assert!(matches!(
        key.verify(&decoded),
        sessiond::crypto::signed::Verified::Valid(_)
    ));
    assert!(dir.path().join("state/sessiond.db").exists());
    // A JSON map from the environment: the additional field exists with its default.
    let s: serde_json::Value = client
        .get(server.url("/get-session"))
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(s["session"]["theme"], "light");
    // Trusted origins from JSON and from BETTER_AUTH_URL.
    let jar_cookie = cookie.split(';').next().unwrap().to_string();
    for origin in ["https://app.example", "http://auth.example"] {
        let res = client
            .post(server.url("/sign-out"))
            .header("cookie", &jar_cookie)
            .header("origin", origin)
            .send()
            .unwrap();
        assert_eq!(res.status(), 200, "{origin}");
    }
    let res = client
        .post(server.url("/sign-out"))
        .header("cookie", &jar_cookie)
        .header("origin", "https://other.example")
        .send()
        .unwrap();
    assert_eq!(res.status(), 403);
    server.stop();
}

#[test]
fn migrate_command_prepares_the_database_without_serving() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path()).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("data/sessiond.db").exists());
    // Running it again is a no-op.
    assert!(command(dir.path())
        .arg("migrate")
        .status()
        .unwrap()
        .success());
}

#[test]
fn healthcheck_command() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = command(dir.path())
        .arg("healthcheck")
        .env("SESSIOND_PORT", port.to_string())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let (server, _) = Server::start(command(dir.path()));
    let out = command(dir.path())
        .arg("healthcheck")
        .env("SESSIOND_PORT", server.port.to_string())
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn logs_carry_no_secrets_tokens_or_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "log-test-secret-that-must-never-appear-0123456789";
    let password = "a-password-that-must-never-appear";
    let mut cmd = command(dir.path());
    cmd.env("BETTER_AUTH_SECRET", secret)
        .env("SESSIOND_LOG__LEVEL", "debug")
        // Production's default log format is JSON: no format is set here.
        .env("SESSIOND_ENVIRONMENT", "production");
    let (server, client) = Server::start(cmd);
    let origin = format!("http://localhost:{}", server.port);
    let body = serde_json::json!({"name": "a", "email": "log@example.com", "password": password});
    let res = client
        .post(server.url("/sign-up/email"))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let token = res.json::<serde_json::Value>().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let res = client
        .post(server.url("/sign-in/email"))
        .json(&serde_json::json!({"email": "log@example.com", "password": password}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let token2 = res.json::<serde_json::Value>().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let res = client
        .get(server.url("/get-session?disableCookieCache=1"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let bearer = format!("Bearer {token}");
    client
        .get(format!("http://127.0.0.1:{}/forward-auth", server.port))
        .header("authorization", &bearer)
        .send()
        .unwrap();
    let res = client
        .post(server.url("/sign-out"))
        .header("cookie", &cookie)
        .header("origin", origin)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut child = server;
    let pid = child.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let out = child.wait_stderr();
    assert!(out.lines().count() > 5, "logs were captured: {out}");
    assert!(
        out.contains("/api/auth/sign-in/email"),
        "requests are logged"
    );
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not a JSON line: {line}"
        );
    }
    let cookie_value = cookie.split_once('=').unwrap().1;
    for needle in [
        secret,
        password,
        &token,
        &token2,
        cookie_value,
        "log@example.com",
    ] {
        assert!(!out.contains(needle), "log leaked {needle:?}");
    }
}

#[test]
fn sigterm_drains_in_flight_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env("SESSIOND_EMAIL_AND_PASSWORD__HASH_CONCURRENCY", "1");
    let (server, _) = Server::start(cmd);
    let url = server.url("/sign-up/email");
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let status = reqwest::blocking::Client::new()
                    .post(url)
                    .json(&serde_json::json!({"name": "n", "email": format!("u{i}@example.com"), "password": "password-123"}))
                    .send()
                    .map(|r| r.status().as_u16());
                (status, std::time::Instant::now())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(60));
    let signalled = std::time::Instant::now();
    let status = server.stop();
    let mut after_signal = 0;
    for h in handles {
        let (code, done) = h.join().unwrap();
        assert_eq!(code.unwrap(), 200, "in-flight requests complete");
        if done > signalled {
            after_signal += 1;
        }
    }
    // Eight hashes, one at a time: some were still running when SIGTERM came.
    assert!(
        after_signal > 0,
        "no request was in flight at SIGTERM; the test proves nothing"
    );
    assert!(status.success(), "exit 0 after draining");
}
