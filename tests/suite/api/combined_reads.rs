//! On PostgreSQL, get-session's reads that wait at the same time share one statement
//! (`token = any($1)`). Each answer must still be its own session's: many users at once,
//! the same session several times in one statement, and a signed-out session among them.

use futures::future::join_all;
use serde_json::{json, Value};

use crate::support::*;

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn metrics(app: &TestApp) -> (f64, f64) {
    let url = format!("http://{}/metrics", app.addr);
    let text = app
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (
        metric(&text, "db_session_reads_total"),
        metric(&text, "db_session_read_statements_total"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_at_once_each_get_their_own_session() {
    // Two connections for get-session's reads (max_connections 4 in tests), so that reads
    // wait for one and are combined.
    let app = spawn(Backend::Postgres).await;
    let mut users = Vec::new();
    for i in 0..24 {
        let email = format!("combined-{i}-{}", unique_email());
        let (jar, _) = app.sign_up(&email).await;
        users.push((jar, Value::String(email)));
    }
    // A session signed out: its cookie is still well signed, its row is gone.
    let (mut gone, _) = app.sign_up(&unique_email()).await;
    let kept = gone.clone();
    app.post("/sign-out", json!({}), &mut gone).await;
    // The first user's session four times more in every round.
    let mut asks: Vec<(Jar, Value)> = users.clone();
    asks.extend(std::iter::repeat_n(users[0].clone(), 4));
    asks.push((kept, Value::Null));

    let before = metrics(&app).await;
    for round in 0..10 {
        let answers = join_all(asks.iter().map(|(jar, _)| {
            let mut jar = jar.clone();
            let app = &app;
            async move { app.get("/get-session", &mut jar).await }
        }))
        .await;
        for ((_, want), res) in asks.iter().zip(answers) {
            assert_eq!(res.status, 200, "round {round}: {}", res.text);
            let got = &res.json()["user"]["email"];
            let got = if res.json().is_null() {
                &Value::Null
            } else {
                got
            };
            assert_eq!(got, want, "round {round}: another session's answer");
        }
    }
    let after = metrics(&app).await;
    let (reads, statements) = (after.0 - before.0, after.1 - before.1);
    assert!(reads >= 290.0, "every read counted: {reads}");
    assert!(
        statements < reads,
        "reads waiting together share statements: {reads} reads in {statements} statements"
    );
}
