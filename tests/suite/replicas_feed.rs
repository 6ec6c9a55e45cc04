//! The revocation feed across three sessiond processes on one PostgreSQL database: a
//! session ended on one replica is listed in every replica's feed.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::replicas::{replicas, sign_in, signed_up};
use crate::support::process::Server;
use crate::support::PgDb;

const KEY: &str = "replica-feed-key-Qm3vT8wLx2Rk7Np4Hc9Zs6Dj";

fn listed(client: &reqwest::blocking::Client, s: &Server, sid: &str) -> bool {
    let v: Value = client
        .get(s.url("/revocations"))
        .bearer_auth(KEY)
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["sid"] == sid)
}

#[test]
fn a_revocation_on_one_replica_is_in_every_feed() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(PgDb::create());
    let (servers, _dirs) = replicas(
        &db,
        None,
        &[
            ("SESSIOND_REVOCATION_FEED__ENABLED", "true"),
            ("SESSIOND_REVOCATION_FEED__KEY", KEY),
        ],
    );
    let client = reqwest::blocking::Client::new();
    let email = signed_up(&client, &servers[0]);
    let (cookie, token) = sign_in(&client, &servers[0], &email);
    let sid = hex::encode(Sha256::digest(token.as_bytes()));
    for s in &servers {
        assert!(!listed(&client, s, &sid));
    }
    let out = client
        .post(servers[0].url("/sign-out"))
        .header("origin", "http://sessiond.test")
        .header("cookie", cookie)
        .json(&json!({}))
        .send()
        .unwrap();
    assert_eq!(out.status(), 200);
    let start = Instant::now();
    let mut missing: Vec<&Server> = servers.iter().collect();
    while !missing.is_empty() {
        missing.retain(|s| !listed(&client, s, &sid));
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not listed on {} replica(s)",
            missing.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
