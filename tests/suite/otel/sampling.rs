//! Head sampling: the sampler decides once per request, a caller's sampled flag decides
//! under a `parentbased_*` sampler, and the configured ratio is the rate (not its square).

use super::receiver::{below, request, Receiver};
use super::{sign_up, traced, traced_on_pg, PASSWORD};
use crate::support::process::Server;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn traceparent(flags: &str) -> String {
    format!("00-{TRACE}-00f067aa0ba902b7-{flags}")
}

/// `n` get-session calls without a `traceparent`, with request ids `{prefix}-{i}`.
fn plain_calls(server: &Server, client: &reqwest::blocking::Client, prefix: &str, n: usize) {
    for i in 0..n {
        let res = client
            .get(server.url("/get-session"))
            .header("x-request-id", format!("{prefix}-{i}"))
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
    }
}

fn sign_up_under(
    client: &reqwest::blocking::Client,
    server: &Server,
    id: &str,
    flags: &str,
) -> reqwest::blocking::Response {
    let email = format!(
        "sampled-{}@example.com",
        sessiond::crypto::token::generate_id().to_lowercase()
    );
    client
        .post(server.url("/sign-up/email"))
        .header("x-request-id", id)
        .header("traceparent", traceparent(flags))
        .json(&serde_json::json!({"name": "S", "email": email, "password": PASSWORD}))
        .send()
        .unwrap()
}

/// Ratio 0, parent-based: nothing of a request without a sampled caller is exported, not
/// even its store or scrypt spans; a caller's sampled request is exported whole.
#[test]
fn ratio_zero_exports_only_what_a_sampled_caller_asks_for() {
    let rx = Receiver::start();
    let (_db, _dir, mut cmd) = traced_on_pg(&rx);
    cmd.env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
        .env("OTEL_TRACES_SAMPLER_ARG", "0");
    let (server, client) = Server::start(cmd);
    plain_calls(&server, &client, "plain", 20);
    let _ = sign_up(&client, &server, "plain-sign-up", PASSWORD);
    assert_eq!(
        sign_up_under(&client, &server, "unsampled-caller", "00").status(),
        200
    );
    assert_eq!(
        sign_up_under(&client, &server, "sampled-caller", "01").status(),
        200
    );
    let spans = rx.wait_for("the sampled caller's request", |s| {
        request(s, "sampled-caller").is_some_and(|r| !below(s, r, "scrypt").is_empty())
    });
    let root = request(&spans, "sampled-caller").unwrap();
    assert_eq!(root.trace_id, TRACE);
    assert!(
        !below(&spans, root, "db create user").is_empty(),
        "{spans:#?}"
    );
    // Stopping flushes whatever else was queued.
    assert!(server.stop().success());
    let spans = rx.spans();
    assert!(spans.iter().all(|s| s.trace_id == TRACE), "{spans:#?}");
    assert!(request(&spans, "unsampled-caller").is_none());
}

/// Ratio 1, parent-based: every request is exported, except one whose caller did not
/// sample it; `traceidratio` (not parent-based) at 1 exports that one too.
#[test]
fn ratio_one_exports_every_request() {
    for (sampler, unsampled_caller_kept) in
        [("parentbased_traceidratio", false), ("traceidratio", true)]
    {
        let rx = Receiver::start();
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = traced(dir.path(), &rx);
        cmd.env("OTEL_TRACES_SAMPLER", sampler)
            .env("OTEL_TRACES_SAMPLER_ARG", "1");
        let (server, client) = Server::start(cmd);
        plain_calls(&server, &client, "all", 20);
        assert_eq!(
            sign_up_under(&client, &server, "unsampled-caller", "00").status(),
            200
        );
        let spans = rx.wait_for("every request", |s| {
            (0..20).all(|i| request(s, &format!("all-{i}")).is_some())
        });
        assert!(server.stop().success());
        let spans = rx.spans().into_iter().chain(spans).collect::<Vec<_>>();
        let caller = request(&spans, "unsampled-caller");
        assert_eq!(caller.is_some(), unsampled_caller_kept, "{sampler}");
        if let Some(c) = caller {
            assert_eq!(c.trace_id, TRACE);
            assert!(!below(&spans, c, "scrypt").is_empty(), "{spans:#?}");
        }
    }
}
