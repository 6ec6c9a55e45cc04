//! Password hashing, counted rather than timed: every sign-in costs exactly one scrypt
//! whether or not the email exists, sign-up hashes once, and the hashing threads (one per
//! CPU by default) run at a lower CPU priority. Against the real binary, so that its
//! `/metrics` counts this server's hashes alone.

use serde_json::json;

use sessiond::crypto::password::HASH_NICE;

use crate::support::process::{command, Server};

const PASSWORD: &str = "password-123";

/// A counter or gauge of the server's `/metrics`, summed over its label sets.
fn metric(server: &Server, client: &reqwest::blocking::Client, name: &str) -> f64 {
    let text = client
        .get(server.root("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with([' ', '{']))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn hashes(server: &Server, client: &reqwest::blocking::Client) -> f64 {
    metric(server, client, "password_hashes_total")
}

fn post(
    server: &Server,
    client: &reqwest::blocking::Client,
    path: &str,
    body: serde_json::Value,
) -> u16 {
    client
        .post(server.url(path))
        .json(&body)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// The server's threads named `sessiond-hash-*` and their nice values (field 19 of
/// /proc/PID/task/TID/stat, counted after the parenthesised name).
fn hashing_threads(pid: u32) -> Vec<i64> {
    let mut nice = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.starts_with("sessiond-hash-") {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
        let after_name = stat.rsplit_once(')').unwrap().1;
        // Fields from 3 (state) on; nice is field 19.
        let value = after_name.split_whitespace().nth(19 - 3).unwrap();
        nice.push(value.parse().unwrap());
    }
    nice
}

#[test]
fn every_sign_in_costs_one_hash_known_email_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env("SESSIOND_DATA_DIR", dir.path().join("state"))
        .env("RUST_LOG", "warn");
    let (server, client) = Server::start(cmd);

    let before = hashes(&server, &client);
    let user = json!({"name": "a", "email": "known@example.com", "password": PASSWORD});
    assert_eq!(post(&server, &client, "/sign-up/email", user), 200);
    assert_eq!(
        hashes(&server, &client) - before,
        1.0,
        "sign-up hashes the password once"
    );

    let cases = [
        ("unknown email", "nobody@example.com", PASSWORD, 401),
        ("unknown email, odd case", "NoBody@Example.com", "x", 401),
        (
            "known email, wrong password",
            "known@example.com",
            "wrong-pass",
            401,
        ),
        (
            "known email, right password",
            "known@example.com",
            PASSWORD,
            200,
        ),
    ];
    for (case, email, password, status) in cases {
        let before = hashes(&server, &client);
        let body = json!({"email": email, "password": password});
        assert_eq!(
            post(&server, &client, "/sign-in/email", body),
            status,
            "{case}"
        );
        assert_eq!(
            hashes(&server, &client) - before,
            1.0,
            "{case}: one scrypt, as for every other sign-in"
        );
    }

    // One hashing thread per CPU by default, every one at a lower priority.
    let cpus = std::thread::available_parallelism().unwrap().get();
    let nice = hashing_threads(server.child.id());
    assert_eq!(nice.len(), cpus, "{nice:?}");
    assert!(nice.iter().all(|n| *n == i64::from(HASH_NICE)), "{nice:?}");
}

/// `hash_concurrency` still sets the number of hashing threads.
#[test]
fn hash_concurrency_sets_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env("SESSIOND_DATA_DIR", dir.path().join("state"))
        .env("SESSIOND_EMAIL_AND_PASSWORD__HASH_CONCURRENCY", "3")
        .env("RUST_LOG", "warn");
    let (server, _) = Server::start(cmd);
    let nice = hashing_threads(server.child.id());
    assert_eq!(nice, vec![i64::from(HASH_NICE); 3]);
}

/// At most `QUEUE_PER_THREAD` hashes wait per hashing thread; a sign-in beyond is refused
/// at once (503), so that a flood of sign-ins cannot keep every connection waiting (a
/// connection waiting for a hash cannot be closed to admit another). And the queue gauge
/// counts requests that left while waiting out again: it returns to 0.
#[test]
fn a_full_hash_queue_refuses_at_once_and_the_gauge_returns_to_zero() {
    use sessiond::crypto::password::QUEUE_PER_THREAD;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env("SESSIOND_DATA_DIR", dir.path().join("state"))
        .env("SESSIOND_EMAIL_AND_PASSWORD__HASH_CONCURRENCY", "1")
        .env("RUST_LOG", "error");
    let (server, client) = Server::start(cmd);
    let flood = 2 * QUEUE_PER_THREAD + 20;
    let body = json!({"email": "nobody@example.com", "password": PASSWORD});
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..flood)
            .map(|i| {
                let (server, body) = (&server, &body);
                scope.spawn(move || {
                    // Every fourth client gives up after 100 ms: its request is dropped
                    // while its hash waits.
                    let mut c = reqwest::blocking::Client::builder();
                    if i % 4 == 0 {
                        c = c.timeout(std::time::Duration::from_millis(100));
                    }
                    let res = c
                        .build()
                        .unwrap()
                        .post(server.url("/sign-in/email"))
                        .json(body)
                        .send();
                    res.map_or(0, |r| r.status().as_u16())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let refused = statuses.iter().filter(|s| **s == 503).count();
    assert!(
        statuses.iter().all(|s| [0, 401, 503].contains(s)),
        "{statuses:?}"
    );
    // One hashing, QUEUE_PER_THREAD waiting: the rest of those who stayed were refused.
    assert!(
        refused >= flood / 4,
        "{refused} of {flood} refused: {statuses:?}"
    );
    assert_eq!(metric(&server, &client, "password_hash_queue"), 0.0);
}
