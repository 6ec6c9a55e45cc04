//! The container image and compose file, checked without a Docker engine: the compose
//! file parses (`docker-compose config`), the Dockerfile lints clean (`hadolint`), and
//! the image keeps its promises (multi-stage, the README's build command, non-root,
//! a healthcheck through `sessiond healthcheck`).

use std::process::Command;

use crate::support::require_tool;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn compose_file_is_valid() {
    require_tool("docker-compose");
    let out = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config"])
        .current_dir(ROOT)
        .env(
            "BETTER_AUTH_SECRET",
            "a-secret-for-checking-the-compose-file-only",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for service in ["postgres:", "redis:", "sessiond:", "nginx:"] {
        assert!(text.contains(service), "{service} missing");
    }
    assert_eq!(
        text.matches("healthcheck:").count(),
        4,
        "every service but the demo app has a healthcheck"
    );
    // nginx forwards the client's address and sessiond trusts nginx, and nginx alone: one
    // client cannot lock every other out of sign-in (they would share nginx's bucket).
    let fixed = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("ipv4_address: "))
        .expect("nginx has a fixed address");
    let trusted = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("SESSIOND_ADVANCED__IP_ADDRESS__TRUSTED_PROXIES: ")
        })
        .expect("sessiond trusts a proxy");
    assert!(
        trusted.contains(fixed.trim_matches('\'')),
        "{trusted} vs {fixed}"
    );
    let nginx = std::fs::read_to_string(format!("{ROOT}/deploy/nginx.conf")).unwrap();
    assert!(nginx.contains("proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;"));
    // The secret must come from the operator, never a default.
    let out = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config"])
        .current_dir(ROOT)
        .env_remove("BETTER_AUTH_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn dockerfile_lints_clean_and_keeps_its_promises() {
    let text = std::fs::read_to_string(format!("{ROOT}/Dockerfile")).unwrap();
    assert_eq!(
        text.matches("\nFROM ").count() + usize::from(text.starts_with("FROM ")),
        2,
        "two stages"
    );
    assert!(
        text.contains("cargo build --release --locked"),
        "the README's build command"
    );
    assert!(text.contains("USER 10001"), "non-root");
    assert!(text.contains(r#"HEALTHCHECK"#) && text.contains(r#""healthcheck"]"#));
    require_tool("hadolint");
    let out = Command::new("hadolint")
        .arg("Dockerfile")
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
