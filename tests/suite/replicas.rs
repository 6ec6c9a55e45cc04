//! Three sessiond processes on loopback sharing one PostgreSQL database (and, in the
//! Redis variant, one Redis): sessions made on one work on the others, a revocation on
//! any replica — or a row deleted by another application — is refused by every replica
//! within a second even with the cookie cache on, and concurrent refreshes from all
//! replicas write a bounded number of times.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::process::{command, Server};
use crate::support::{redis_conn, redis_url, PgDb, PASSWORD};

const SECRET: &str = "replica-test-secret-WKbtDE6kGZpDiPCFdcERFmdD6nHQss";

pub(crate) fn replicas(
    db: &PgDb,
    redis_prefix: Option<&str>,
    extra: &[(&str, &str)],
) -> (Vec<Server>, Vec<tempfile::TempDir>) {
    let mut servers = Vec::new();
    let mut dirs = Vec::new();
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = command(dir.path());
        cmd.env("DATABASE_URL", &db.url)
            .env("BETTER_AUTH_SECRET", SECRET)
            .env("SESSIOND_BASE_URL", "http://sessiond.test")
            .env("SESSIOND_SESSION__COOKIE_CACHE__ENABLED", "true")
            .env("SESSIOND_LOG__LEVEL", "warn");
        if let Some(p) = redis_prefix {
            cmd.env("REDIS_URL", redis_url())
                .env("SESSIOND_REDIS__KEY_PREFIX", p);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        servers.push(Server::start(cmd).0);
        dirs.push(dir);
    }
    (servers, dirs)
}

pub(crate) fn cookie_of(res: &reqwest::blocking::Response) -> String {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Signs a new user up on `s`; its email.
pub(crate) fn signed_up(client: &reqwest::blocking::Client, s: &Server) -> String {
    let email = format!(
        "r{}@example.com",
        sessiond::crypto::token::generate_id().to_lowercase()
    );
    let res = client
        .post(s.url("/sign-up/email"))
        .json(&json!({"name": "Replica", "email": email, "password": PASSWORD}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    email
}

pub(crate) fn sign_in(
    client: &reqwest::blocking::Client,
    s: &Server,
    email: &str,
) -> (String, String) {
    let res = client
        .post(s.url("/sign-in/email"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = cookie_of(&res);
    let token = res.json::<Value>().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    (cookie, token)
}

fn session(client: &reqwest::blocking::Client, s: &Server, cookie: &str) -> Value {
    client
        .get(s.url("/get-session"))
        .header("cookie", cookie)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// Polls every replica until each answers `null` for `cookie`; returns the time taken.
fn refused_everywhere(
    client: &reqwest::blocking::Client,
    servers: &[Server],
    cookie: &str,
) -> Duration {
    let start = Instant::now();
    for s in servers {
        loop {
            if session(client, s, cookie).is_null() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "replica still accepts a revoked session"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    start.elapsed()
}

fn scenario(redis_prefix: Option<&str>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(PgDb::create());
    if redis_prefix.is_some() {
        // An unreachable Redis fails the test here, by name, not as replicas that never start.
        rt.block_on(redis_conn(&redis_url()));
    }
    let (servers, _dirs) = replicas(&db, redis_prefix, &[]);
    let client = reqwest::blocking::Client::new();
    let email = signed_up(&client, &servers[0]);

    // Signed in on one, used on the others (cache primed on each).
    let (victim, victim_token) = sign_in(&client, &servers[0], &email);
    for s in &servers {
        assert_eq!(
            session(&client, s, &victim)["session"]["token"],
            victim_token.as_str()
        );
    }
    // Revoked through replica 1: every replica refuses it within a second.
    let (admin, _) = sign_in(&client, &servers[1], &email);
    let res = client
        .post(servers[1].url("/revoke-session"))
        .header("cookie", &admin)
        .header("origin", "http://sessiond.test")
        .json(&json!({"token": victim_token}))
        .send()
        .unwrap();
    assert_eq!(res.json::<Value>().unwrap(), json!({"status": true}));
    let took = refused_everywhere(&client, &servers, &victim);
    assert!(took < Duration::from_secs(1), "revocation took {took:?}");

    // Deleted by another application straight from the session table (sessions in the
    // database): refused everywhere within a second too.
    if redis_prefix.is_none() {
        let (other, other_token) = sign_in(&client, &servers[2], &email);
        for s in &servers {
            assert_eq!(
                session(&client, s, &other)["session"]["token"],
                other_token.as_str()
            );
        }
        let n = rt.block_on(db.exec(&format!(
            r#"delete from "session" where "token" = '{other_token}'"#
        )));
        assert_eq!(n, 1);
        let took = refused_everywhere(&client, &servers, &other);
        assert!(
            took < Duration::from_secs(1),
            "external deletion took {took:?}"
        );
    }
}

#[test]
fn three_replicas_on_postgres() {
    scenario(None);
}

#[test]
fn three_replicas_on_postgres_and_redis() {
    let prefix = format!("r{}:", sessiond::crypto::token::generate_id());
    scenario(Some(&prefix));
}

/// Concurrent refreshes from all replicas: nobody is signed out, and the refresh is
/// written a bounded number of times (counted by each replica's metrics).
fn concurrent_refresh(redis_prefix: Option<&str>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(PgDb::create());
    if redis_prefix.is_some() {
        // An unreachable Redis fails the test here, by name, not as replicas that never start.
        rt.block_on(redis_conn(&redis_url()));
    }
    // A refresh is due one second after the last one; the cache is off so every request
    // reaches the store.
    let (servers, _dirs) = replicas(
        &db,
        redis_prefix,
        &[
            ("SESSIOND_SESSION__UPDATE_AGE", "1"),
            ("SESSIOND_SESSION__COOKIE_CACHE__ENABLED", "false"),
        ],
    );
    let client = reqwest::blocking::Client::new();
    let email = format!(
        "c{}@example.com",
        sessiond::crypto::token::generate_id().to_lowercase()
    );
    client
        .post(servers[0].url("/sign-up/email"))
        .json(&json!({"name": "Replica", "email": email, "password": PASSWORD}))
        .send()
        .unwrap();
    let (cookie, token) = sign_in(&client, &servers[0], &email);
    let refreshed = |servers: &[Server]| -> f64 {
        servers
            .iter()
            .map(|s| {
                let text = client
                    .get(s.root("/metrics"))
                    .send()
                    .unwrap()
                    .text()
                    .unwrap();
                text.lines()
                    .filter(|l| l.starts_with("sessions_refreshed_total"))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum::<f64>()
            })
            .sum()
    };
    let before = refreshed(&servers);
    // Wait until a refresh is due (update_age is one second), then hit all replicas at once.
    std::thread::sleep(Duration::from_millis(1100));
    let burst = std::time::Instant::now();
    let handles: Vec<_> = (0..30)
        .map(|i| {
            let url = servers[i % 3].url("/get-session");
            let cookie = cookie.clone();
            std::thread::spawn(move || {
                let res = reqwest::blocking::Client::new()
                    .get(url)
                    .header("cookie", cookie)
                    .send()
                    .unwrap();
                (res.status().as_u16(), res.json::<Value>().unwrap())
            })
        })
        .collect();
    for h in handles {
        let (status, body) = h.join().unwrap();
        assert_eq!(status, 200);
        assert_eq!(body["session"]["token"], token.as_str(), "no session lost");
    }
    let writes = refreshed(&servers) - before;
    assert!(writes >= 1.0, "the due refresh happened");
    // Each replica writes a due refresh at most once; on a loaded machine the burst may
    // outlast update_age, and then a refresh is due again (three more at most per second).
    let seconds = burst.elapsed().as_secs_f64().floor();
    let allowed = 3.0 * (1.0 + seconds);
    assert!(
        writes <= allowed,
        "refresh writes bounded: {writes} for 30 requests over {seconds} s"
    );
    for s in &servers {
        assert_eq!(
            session(&client, s, &cookie)["session"]["token"],
            token.as_str()
        );
    }
}

#[test]
fn concurrent_refresh_from_three_replicas() {
    concurrent_refresh(None);
}

#[test]
fn concurrent_refresh_from_three_replicas_with_redis() {
    let prefix = format!("c{}:", sessiond::crypto::token::generate_id());
    concurrent_refresh(Some(&prefix));
}
