//! The binary run as the Kubernetes manifests run it, on real PostgreSQL and Redis: the
//! ConfigMap's and the Secret's variables, the image's configuration file, the ports the
//! probes and the ServiceMonitor name. The example Secret's placeholder is refused; a
//! replica started before the migration Job is not ready (kept out of the Service) yet
//! alive (not restarted), and becomes ready once the Job's command has run; metrics are
//! on the operations port only; forward auth answers as the recipes expect; SIGTERM exits
//! 0; and nothing is written to disk (the root filesystem is read-only).

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::kubernetes::{document, manifest_env, pod};
use crate::support::process::{command, free_port, Server};
use crate::support::{redis_conn, redis_prefix, redis_url, PgDb, PASSWORD};

const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml");
const SECRET: &str = "k8s-run-test-Vb3nQ8xZ2mK7pL5wR9tY4hJ6gF1dS0aE";

/// `sessiond <args>` with the manifests' environment, as the container would run it
/// (`--config` as the image's entrypoint), but on loopback ports and test stores.
fn as_in_the_pod(
    dir: &std::path::Path,
    data: &std::path::Path,
    db: &PgDb,
    prefix: &str,
    ops_port: u16,
    secret: Option<&str>,
    args: &[&str],
) -> Command {
    let mut cmd = command(dir);
    cmd.arg("--config").arg(CONFIG).args(args);
    for (k, v) in manifest_env() {
        cmd.env(k, v);
    }
    cmd.env("SESSIOND_HOST", "127.0.0.1")
        .env("SESSIOND_OPS__LISTEN", format!("127.0.0.1:{ops_port}"))
        .env("SESSIOND_DATA_DIR", data)
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", redis_url())
        .env("SESSIOND_REDIS__KEY_PREFIX", prefix);
    if let Some(s) = secret {
        cmd.env("BETTER_AUTH_SECRET", s);
    }
    cmd
}

fn status(client: &reqwest::blocking::Client, url: &str) -> u16 {
    client.get(url).send().unwrap().status().as_u16()
}

#[test]
fn the_binary_runs_as_the_manifests_configure_it() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(PgDb::create());
    rt.block_on(redis_conn(&redis_url()));
    let prefix = redis_prefix();
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let ops_port = free_port();
    let deployment = document("deployment.yaml");
    let (_, container) = pod(&deployment);
    assert_eq!(container["args"], json!(["serve"]));

    // Applied unchanged, the example Secret stops the start: its secret is a placeholder.
    let out = as_in_the_pod(
        dir.path(),
        data.path(),
        &db,
        &prefix,
        ops_port,
        None,
        &["serve"],
    )
    .env("SESSIOND_PORT", free_port().to_string())
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("placeholder"), "{err}");
    assert!(
        !err.contains("replace-me-with"),
        "the secret itself is never shown: {err}"
    );

    // What `enableServiceLinks: false` keeps out: the variables Kubernetes would set for
    // the Service `sessiond` are under sessiond's prefix and stop the start.
    let out = as_in_the_pod(
        dir.path(),
        data.path(),
        &db,
        &prefix,
        ops_port,
        Some(SECRET),
        &["serve"],
    )
    .env("SESSIOND_SERVICE_HOST", "10.96.0.10")
    .env("SESSIOND_PORT_3000_TCP_ADDR", "10.96.0.10")
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SESSIOND_"), "{err}");

    // A replica that starts before the migration Job has run: alive, not ready.
    let cmd = as_in_the_pod(
        dir.path(),
        data.path(),
        &db,
        &prefix,
        ops_port,
        Some(SECRET),
        &["serve"],
    );
    let (server, client) = Server::start(cmd);
    let ready = server.root("/readyz");
    assert_eq!(status(&client, &server.root("/healthz")), 200);
    assert_eq!(status(&client, &ready), 503);

    // The Job's command; the replica becomes ready without a restart.
    let job = document("migrate-job.yaml");
    let (_, job) = pod(&job);
    let args: Vec<&str> = job["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let out = as_in_the_pod(
        dir.path(),
        data.path(),
        &db,
        &prefix,
        ops_port,
        Some(SECRET),
        &args,
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(&client, &ready) != 200 {
        assert!(Instant::now() < deadline, "not ready after the migrations");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The ServiceMonitor's port serves the metrics; the public port does not.
    let metrics = client
        .get(format!("http://127.0.0.1:{ops_port}/metrics"))
        .send()
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().unwrap();
    assert!(text.contains("http_open_connections"), "{text}");
    assert_eq!(status(&client, &server.root("/metrics")), 404);

    // Sign-up through /api/auth from the public origin, then forward auth as the ingress
    // controller or the gateway asks it.
    let origin = manifest_env()
        .into_iter()
        .find(|(k, _)| k == "BETTER_AUTH_URL")
        .unwrap()
        .1;
    let email = format!(
        "k{}@example.com",
        sessiond::crypto::token::generate_id().to_lowercase()
    );
    let res = client
        .post(server.url("/sign-up/email"))
        .header("origin", &origin)
        .json(&json!({"name": "Pod", "email": email, "password": PASSWORD}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = crate::replicas::cookie_of(&res);
    assert!(
        cookie.starts_with("__Secure-better-auth.session_token="),
        "an https base URL gives secure cookies: {cookie}"
    );
    let check = client
        .get(server.root("/forward-auth/some/page"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(check.status(), 200);
    assert!(check.headers().get("x-auth-user-id").is_some());
    assert_eq!(
        check.headers()["x-auth-email"].to_str().unwrap(),
        email.as_str()
    );
    assert_eq!(
        status(&client, &server.root("/forward-auth/some/page")),
        401
    );

    // SIGTERM (after the preStop pause) drains and exits 0.
    assert!(server.stop().success());

    // Nothing written to disk: an emptyDir is all the pod needs, and only as a precaution.
    for d in [dir.path(), data.path()] {
        let written: Vec<_> = std::fs::read_dir(d).unwrap().collect();
        assert!(written.is_empty(), "{} has {written:?}", d.display());
    }
}
