//! `session.max_per_user` across three sessiond processes on one PostgreSQL database:
//! fifty sign-ins of one user at once, spread over the replicas, leave exactly the limit
//! alive; every sign-in answered 200, and each of its sessions is either alive or ended,
//! and an ended one is refused by every replica (cookie cache on) within a second.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::replicas::{replicas, sign_in, signed_up};
use crate::support::process::Server;
use crate::support::PgDb;

const LIMIT: usize = 3;
const SIGN_INS: usize = 50;

fn session(client: &reqwest::blocking::Client, s: &Server, cookie: &str) -> Value {
    client
        .get(s.url("/get-session"))
        .header("cookie", cookie)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn fifty_concurrent_sign_ins_over_three_replicas_keep_the_limit() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(PgDb::create());
    let limit = LIMIT.to_string();
    let (servers, _dirs) = replicas(&db, None, &[("SESSIOND_SESSION__MAX_PER_USER", &limit)]);
    let client = reqwest::blocking::Client::new();
    let email = signed_up(&client, &servers[0]);
    // Fifty sign-ins at once, round robin over the replicas.
    let signed: Vec<(String, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..SIGN_INS)
            .map(|i| {
                let (client, s, email) = (&client, &servers[i % servers.len()], &email);
                scope.spawn(move || sign_in(client, s, email))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(signed.len(), SIGN_INS, "every sign-in answered 200");
    let rows: Vec<String> = rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar(
            r#"select s."token" from "session" s join "user" u on u."id" = s."userId" where u."email" = $1"#,
        )
        .bind(&email)
        .fetch_all(&mut c)
        .await
        .unwrap()
    });
    assert_eq!(rows.len(), LIMIT, "sessions alive in the database");
    // Each sign-in's session: the survivors answer on every replica, the others are
    // refused everywhere, cached cookie and all.
    let start = Instant::now();
    let mut alive = 0;
    for (cookie, token) in &signed {
        let kept = rows.contains(token);
        alive += usize::from(kept);
        for s in &servers {
            loop {
                let v = session(&client, s, cookie);
                let answers = v["session"]["token"] == token.as_str();
                if answers == kept {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "kept {kept}, answered {answers}: a surviving session refused, or an ended one still served"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    assert_eq!(alive, LIMIT, "the survivors are sign-ins of this run");
}
