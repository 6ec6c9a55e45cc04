//! The binary as an operator runs it: defaults, environment overrides, Better Auth's
//! variables, `migrate`, secret rules, bad configuration, graceful stop.

use std::process::Command;
use std::time::Duration;

use crate::support::process::{command, free_port, Server};
use crate::support::PrivateRedis;

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
fn production_refuses_guessable_secrets() {
    for weak in [
        " ".repeat(40),
        "a".repeat(40),
        "better-auth-secret-12345678901234567890".to_string(),
        "é".repeat(17),
        "abcdefgh".repeat(5),
        "01234567".repeat(4),
        "0123456789abcdefghijklmnopqrstuvwxyz".to_string(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = command(dir.path())
            .env("SESSIOND_ENVIRONMENT", "production")
            .env("BETTER_AUTH_SECRET", &weak)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{weak:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("secret") && !err.contains(&weak), "{err}");
    }
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
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env("SESSIOND_EMAIL_AND_PASSWORD__HASH_CONCURRENCY", "1");
    let (server, _) = Server::start(cmd);
    // Eight sign-ups are on the wire before the signal: connected and written, though the
    // server may not have accepted or read them yet (they wait in the kernel's backlog or
    // its socket buffers). Each is answered in full all the same; no timing is assumed.
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let body = serde_json::json!({"name": "n", "email": format!("u{i}@example.com"), "password": "password-123"}).to_string();
            let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            write!(
                s,
                "POST /api/auth/sign-up/email HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let read = s.read_to_end(&mut out);
                (read.map(|_| out), std::time::Instant::now())
            })
        })
        .collect();
    let signalled = std::time::Instant::now();
    let status = server.stop();
    let mut after_signal = 0;
    for h in handles {
        let (read, done) = h.join().unwrap();
        let out = String::from_utf8(read.expect("no reset")).unwrap();
        assert!(
            out.starts_with("HTTP/1.1 200 "),
            "answered in full: {out:?}"
        );
        assert!(out.contains("\"token\""), "{out}");
        if done > signalled {
            after_signal += 1;
        }
    }
    // Eight hashes one at a time take far longer than sending a signal: some were still
    // queued or running when it came.
    assert!(
        after_signal > 0,
        "no request was in flight at SIGTERM; the test proves nothing"
    );
    assert!(status.success(), "exit 0 after draining");
}

/// Starts the binary with `env` and returns (success, stderr) once it exits (`migrate`).
fn migrate_with(env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.arg("migrate");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn string_options_keep_their_exact_text() {
    // A number where a string is expected is that string (the cache version bump).
    let (ok, err) = migrate_with(&[("SESSIOND_SESSION__COOKIE_CACHE__VERSION", "2")]);
    assert!(ok, "{err}");
    let (ok, err) = migrate_with(&[("SESSIOND_SESSION__COOKIE_CACHE__VERSION", "1.10")]);
    assert!(ok, "{err}");
    // A numeric secret is a secret, and is never echoed.
    let digits = "98765432109876543210987654321098765";
    let (ok, err) = migrate_with(&[("BETTER_AUTH_SECRET", digits)]);
    assert!(ok, "{err}");
    assert!(!err.contains(digits));
    let (ok, err) = migrate_with(&[("SESSIOND_SECRET", "true")]);
    assert!(ok, "{err}");
    // A secret that is not text in a file (a number; a syntax error) is refused without
    // showing it.
    for (toml, hidden, names_key) in [
        ("secret = 1234567890123\n", "1234567890123", true),
        (
            "secret = 12345678901234567890\n",
            "12345678901234567890",
            false,
        ),
        ("secret = hunter2-not-quoted\n", "hunter2", false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.toml"), toml).unwrap();
        let out = command(dir.path())
            .args(["--config", "c.toml", "migrate"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(!err.contains(hidden), "{err}");
        assert!(!names_key || err.contains("secret"), "{err}");
    }
    // Secrets are used as given: surrounding spaces are part of them (as in Better Auth).
    let dir = tempfile::tempdir().unwrap();
    let secret = "  spaced-secret-E7FTgwuEDywVtnv6eUxauYBfYLrHhD  ";
    let mut cmd = command(dir.path());
    cmd.env("BETTER_AUTH_SECRET", secret);
    let (server, client) = Server::start(cmd);
    let res = client
        .post(server.url("/sign-up/email"))
        .json(
            &serde_json::json!({"name": "a", "email": "s@example.com", "password": "password-123"}),
        )
        .send()
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
    let value = percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .unwrap()
        .to_string();
    let key = sessiond::crypto::signed::SigningKey::new(secret.as_bytes()).unwrap();
    assert!(matches!(
        key.verify(&value),
        sessiond::crypto::signed::Verified::Valid(_)
    ));
}

#[test]
fn impossible_values_are_refused_at_start() {
    for (var, value, key) in [
        (
            "SESSIOND_SESSION__EXPIRES_IN",
            "18446744073709551615",
            "expires_in",
        ),
        (
            "SESSIOND_SESSION__EXPIRES_IN",
            "9223372036854775807",
            "expires_in",
        ),
        (
            "SESSIOND_SESSION__UPDATE_AGE",
            "99999999999999",
            "update_age",
        ),
        (
            "SESSIOND_SESSION__ABSOLUTE_TIMEOUT",
            "99999999999999",
            "absolute_timeout",
        ),
        (
            "SESSIOND_SESSION__COOKIE_CACHE__MAX_AGE",
            "99999999999999",
            "max_age",
        ),
        (
            "SESSIOND_SERVER__REQUEST_TIMEOUT",
            "99999999999999",
            "request_timeout",
        ),
        ("BETTER_AUTH_URL", "not a url", "base_url"),
        ("BETTER_AUTH_URL", "ftp://auth.example", "base_url"),
        ("BETTER_AUTH_URL", "http://", "base_url"),
        (
            "SESSIOND_FORWARD_AUTH__SIGN_IN_URL",
            "javascript:alert(1)",
            "sign_in_url",
        ),
        (
            "SESSIOND_SERVER__MAX_HEADER_BYTES",
            "100",
            "max_header_bytes",
        ),
        // A base URL that is a pattern would trust every matching origin.
        ("BETTER_AUTH_URL", "http://*", "base_url"),
        ("BETTER_AUTH_URL", "https://*.com", "base_url"),
        // Paths that would put routes under forward auth, or forward auth under the API.
        ("SESSIOND_FORWARD_AUTH__PATH", "/api", "forward_auth.path"),
        ("SESSIOND_BASE_PATH", "/forward-auth/x", "forward_auth.path"),
        ("SESSIOND_BASE_PATH", "/healthz", "base_path"),
        (
            "SESSIOND_FORWARD_AUTH__PATH",
            "/metrics/x",
            "forward_auth.path",
        ),
        // Identity headers that would frame or route the proxy's answer.
        (
            "SESSIOND_FORWARD_AUTH__HEADER_NAME",
            "content-length",
            "header_name",
        ),
        (
            "SESSIOND_FORWARD_AUTH__HEADER_NAME",
            "Transfer-Encoding",
            "header_name",
        ),
        (
            "SESSIOND_FORWARD_AUTH__HEADER_USER_ID",
            "set-cookie",
            "header_user_id",
        ),
        (
            "SESSIOND_FORWARD_AUTH__HEADER_EMAIL",
            "x-auth-user-id",
            "header_email",
        ),
        // Cookie attributes injected through names and domains.
        ("SESSIOND_ADVANCED__COOKIE_PREFIX", "a;b", "cookie_prefix"),
        (
            "SESSIOND_ADVANCED__CROSS_SUB_DOMAIN_COOKIES__DOMAIN",
            "x; Domain=evil.com",
            "domain",
        ),
        (
            "SESSIOND_ADVANCED__CROSS_SUB_DOMAIN_COOKIES__DOMAIN",
            "co.uk",
            "domain",
        ),
        (
            "SESSIOND_ADVANCED__COOKIES__SESSION_TOKEN__NAME",
            "sid; Domain=evil.com",
            "advanced.cookies.session_token.name",
        ),
        (
            "SESSIOND_ADVANCED__COOKIES__SESSION_DATA__NAME",
            "__Host-cache",
            "advanced.cookies.session_data.name",
        ),
        (
            "SESSIOND_ADVANCED__COOKIES",
            r#"{"session_data":{"name":"c"},"dont_remember":{"name":"c.1"}}"#,
            "chunk of session_data",
        ),
        (
            "SESSIOND_ADVANCED__COOKIES__DONT_REMEMBER__ATTRIBUTES__PATH",
            "/; Domain=evil.com",
            "advanced.cookies.dont_remember.attributes.path",
        ),
        (
            "SESSIOND_ADVANCED__DEFAULT_COOKIE_ATTRIBUTES__DOMAIN",
            "com",
            "advanced.default_cookie_attributes.domain",
        ),
        (
            "SESSIOND_ADVANCED__COOKIES__SESSION_TOKEN__ATTRIBUTES__HTTP_ONLY",
            "false",
            "http_only",
        ),
        (
            "SESSIOND_ADVANCED__IP_ADDRESS__IP_ADDRESS_HEADERS",
            r#"["bad header"]"#,
            "ip_address_headers",
        ),
        (
            "SESSIOND_ADVANCED__IP_ADDRESS__TRUSTED_PROXIES",
            r#"["0.0.0.0/0"]"#,
            "trusted_proxies",
        ),
        (
            "SESSIOND_EMAIL_AND_PASSWORD__HASH_CONCURRENCY",
            "100000",
            "hash_concurrency",
        ),
        (
            "SESSIOND_EMAIL_AND_PASSWORD__MIN_PASSWORD_LENGTH",
            "0",
            "min_password_length",
        ),
        ("SESSIOND_SERVER__REQUEST_TIMEOUT", "0", "request_timeout"),
        ("SESSIOND_SERVER__BODY_LIMIT", "99999999999", "body_limit"),
        ("SESSIOND_RATE_LIMIT__MAX", "0", "rate_limit"),
        ("SESSIOND_RATE_LIMIT__WINDOW", "0", "rate_limit"),
    ] {
        let (ok, err) = migrate_with(&[(var, value)]);
        assert!(!ok, "{var}={value} accepted");
        assert!(err.contains(key), "{var}={value}: {err}");
    }
    // Proxy ranges that trust half the internet, or all of it as mapped IPv6.
    for ranges in [
        r#"["0.0.0.0/1", "128.0.0.0/1"]"#,
        r#"["::ffff:0:0/96"]"#,
        r#"["not-an-address"]"#,
    ] {
        let var = "SESSIOND_ADVANCED__IP_ADDRESS__TRUSTED_PROXIES";
        let (ok, err) = migrate_with(&[(var, ranges)]);
        assert!(!ok && err.contains("trusted_proxies"), "{ranges}: {err}");
    }
    // Identity headers a proxy or an application would read as something else.
    for name in [
        "X-Accel-Redirect",
        "x-sendfile",
        "x-forwarded-for",
        "x-real-ip",
        "status",
        "expect",
        "retry-after",
        "content-security-policy",
        // As CGI, WSGI and Rack read them.
        "X_Real_IP",
        "X_Forwarded_For",
        "X-Forwarded_For",
        "Set_Cookie",
        "Content_Length",
        "X_Accel_Redirect",
        // Client address, method override, rewrite, scheme headers.
        "Client-IP",
        "Fastly-Client-IP",
        "X-Cluster-Client-IP",
        "X-HTTP-Method-Override",
        "X-Method-Override",
        "X-Rewrite-URL",
        "X-Scheme",
        "Front-End-Https",
        "X-Sendfile2",
        "X-Forwarded",
        "Forwarded-For",
        "WL-Proxy-Client-IP",
        "Fly-Client-IP",
        "X-Matched-Path",
        "X-Invoke-Path",
        "X-Frame-Options",
        "CDN-Cache-Control",
        // The user id header again, in CGI's spelling.
        "X_Auth_User_Id",
    ] {
        let (ok, err) = migrate_with(&[("SESSIOND_FORWARD_AUTH__HEADER_EMAIL", name)]);
        assert!(!ok && err.contains("header_email"), "{name}: {err}");
    }
}

/// Runs `cmd` expecting it to refuse to start: its standard error when it exits with a
/// failure, `None` when it is still serving after ten seconds (then it is stopped).
fn refused(mut cmd: Command) -> Option<String> {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (!status.success()).then_some(err);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn wildcard_trusted_origins_are_refused() {
    for bad in [
        r#"["*"]"#,
        r#"["https://*"]"#,
        r#"["http://*"]"#,
        r#"["*.com"]"#,
        r#"["https://*.co.uk"]"#,
        r#"["*example.com"]"#,
        r#"["https://*.*.example.com"]"#,
        r#"["https://app.*.example.com"]"#,
        r#"["null"]"#,
        r#"["https://app.example/path"]"#,
        r#"["app.example.com"]"#,
        r#"["https://*.0.0.1"]"#,
        r#"["*.168.1.1"]"#,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = command(dir.path());
        cmd.env("SESSIOND_TRUSTED_ORIGINS", bad)
            .env("SESSIOND_PORT", free_port().to_string());
        let err = refused(cmd).unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(err.contains("trusted_origins"), "{bad}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env("BETTER_AUTH_TRUSTED_ORIGINS", "https://app.example,*")
        .env("SESSIOND_PORT", free_port().to_string());
    assert!(
        refused(cmd).is_some(),
        "a wildcard from BETTER_AUTH_TRUSTED_ORIGINS accepted"
    );
    // Patterns with a registrable suffix are fine.
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env(
        "SESSIOND_TRUSTED_ORIGINS",
        r#"["https://*.example.com", "*.tenants.example.org", "http://localhost:5173", "https://app-?.example.net"]"#,
    );
    let (server, _) = Server::start(cmd);
    server.stop();
}

#[cfg(unix)]
#[test]
fn sqlite_files_and_secret_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = Server::start(command(dir.path()));
    client
        .post(server.url("/sign-up/email"))
        .json(
            &serde_json::json!({"name": "a", "email": "p@example.com", "password": "password-123"}),
        )
        .send()
        .unwrap();
    let mode = |p: &str| {
        std::fs::metadata(dir.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("data"), 0o700);
    for f in [
        "data/sessiond.db",
        "data/secret",
        "data/sessiond.db-wal",
        "data/sessiond.db-shm",
    ] {
        if dir.path().join(f).exists() {
            assert_eq!(mode(f), 0o600, "{f}");
        }
    }
    server.stop();
}

#[test]
fn production_keeps_internals_off_the_main_listener() {
    let dir = tempfile::tempdir().unwrap();
    let ops = free_port();
    let mut cmd = command(dir.path());
    cmd.env("SESSIOND_ENVIRONMENT", "production")
        .env(
            "BETTER_AUTH_SECRET",
            "production-secret-P3UJzRbb9hFLebmTJ6d9mTxcYvaQKF",
        )
        .env("SESSIOND_OPS__LISTEN", format!("127.0.0.1:{ops}"));
    let (server, client) = Server::start(cmd);
    for path in ["/metrics", "/openapi.json"] {
        let res = client.get(server.root(path)).send().unwrap();
        assert_eq!(res.status(), 404, "{path} on the main listener");
        let res = client
            .get(format!("http://127.0.0.1:{ops}{path}"))
            .send()
            .unwrap();
        assert_eq!(res.status(), 200, "{path} on the operations listener");
    }
    let public: serde_json::Value = client
        .get(server.root("/readyz"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(public, serde_json::json!({"status": "ok"}));
    let private: serde_json::Value = client
        .get(format!("http://127.0.0.1:{ops}/readyz"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(private["checks"]["database"], "ok");
    assert_eq!(
        client.get(server.root("/healthz")).send().unwrap().status(),
        200
    );
    server.stop();
}

#[test]
fn revocation_state_is_reported_in_readyz_and_metrics() {
    // A private Redis without keyspace notifications: revocations by other applications
    // cannot be seen, so the replica says so (and revalidates its caches).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let redis = rt.block_on(PrivateRedis::start(&["--notify-keyspace-events", ""]));
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env("REDIS_URL", redis.url())
        .env("SESSIOND_SESSION__COOKIE_CACHE__ENABLED", "true");
    // Its logs are not read: a full pipe would block the server's writes, then its answers.
    let (server, client) = Server::start_with_stderr(cmd, std::process::Stdio::null());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        // A kept-alive connection can be reset under the whole suite's load: asked again on
        // a new one until the deadline (a server that died fails there, by name).
        let read = |path: &str| {
            client
                .get(server.root(path))
                .send()
                .and_then(|r| r.text())
                .unwrap_or_default()
        };
        let ready: serde_json::Value =
            serde_json::from_str(&read("/readyz")).unwrap_or(serde_json::Value::Null);
        let metrics = read("/metrics");
        if ready["checks"]["revocation"] == "unverified"
            && ready["checks"]["revocation_detail"] == "keyspace notifications off"
            && metrics.lines().any(|l| l == "revocation_guaranteed 0")
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{ready}\n{metrics}");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.stop();
}

/// Production starts with weakening choices only after saying so, one warning each.
#[test]
fn production_warns_about_each_risky_choice() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env("SESSIOND_ENVIRONMENT", "production")
        .env(
            "BETTER_AUTH_SECRET",
            "an-operator-secret-that-is-long-enough-1234",
        )
        .env("SESSIOND_PORT", free_port().to_string())
        .env("SESSIOND_OPS__LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("SESSIOND_ADVANCED__DISABLE_CSRF_CHECK", "true")
        .env("SESSIOND_ADVANCED__USE_SECURE_COOKIES", "false")
        .env("SESSIOND_RATE_LIMIT__ENABLED", "false")
        .env("SESSIOND_OPS__ON_MAIN_LISTENER", "true")
        .env("SESSIOND_SESSION__COOKIE_CACHE__ENABLED", "true")
        .env(
            "SESSIOND_SESSION__COOKIE_CACHE__IMMEDIATE_REVOCATION",
            "false",
        )
        .env("SESSIOND_SESSION__COOKIE_CACHE__MAX_AGE", "86400")
        .env("RUST_LOG", "warn");
    let (mut server, _) = Server::start_with_stderr(cmd, std::process::Stdio::piped());
    Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    let err = server.wait_stderr();
    for option in [
        "disable_csrf_check",
        "use_secure_cookies",
        "rate_limit is off",
        "on_main_listener",
        "immediate_revocation",
    ] {
        assert!(err.contains(option), "no warning for {option}: {err}");
    }
}

/// A nullable column the configuration does not know (a plugin's, the app's own) is named
/// in the log at start, once per table, and does not stop the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_nullable_columns_are_logged_at_start() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path()).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = format!("sqlite://{}", dir.path().join("data/sessiond.db").display());
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query(r#"alter table "user" add column "nickname" text"#)
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let out = command(dir.path()).arg("migrate").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let noted: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("columns unknown to the configuration"))
        .collect();
    assert_eq!(noted.len(), 1, "{err}");
    assert!(
        noted[0].contains("nickname") && noted[0].contains("user"),
        "{err}"
    );
}
