//! The revocation feed as server-sent events: backlog then live events, resuming with
//! `Last-Event-ID`, a reset (and the end) when a feed loses its guarantee, the stream cap,
//! and a stream outliving the server's idle timeout.

use std::time::{Duration, Instant};

use serde_json::json;

use super::feed::{feed_app, sid, signed_up, until_listed, wait_guaranteed, KEY};
use crate::support::*;

/// Opens a stream (the key, `Accept: text/event-stream`, extra headers).
pub async fn open(app: &TestApp, query: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app
        .client
        .get(app.url(&format!("/revocations{query}")))
        .header("authorization", format!("Bearer {KEY}"))
        .header("accept", "text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// Reads the stream until `text` has arrived (or it ends); everything read.
pub async fn read_until(res: &mut reqwest::Response, seen: &mut String, text: &str) -> bool {
    let start = Instant::now();
    while !seen.contains(text) {
        let left = Duration::from_secs(20).saturating_sub(start.elapsed());
        match tokio::time::timeout(left, res.chunk()).await {
            Ok(Ok(Some(c))) => seen.push_str(&String::from_utf8_lossy(&c)),
            Ok(_) | Err(_) => return false,
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_then_live_events_and_resuming() {
    let app = feed_app(|_| {}).await;
    wait_guaranteed(&app).await;
    let (mut jar, token) = signed_up(&app).await;
    let (mut jar2, token2) = signed_up(&app).await;
    let since = app.clock_ms();
    app.post("/sign-out", json!({}), &mut jar).await;
    until_listed(&app, &sid(&token)).await;
    let mut res = open(&app, &format!("?since={since}"), &[]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    assert_eq!(res.headers()["cache-control"].to_str().unwrap(), "no-store");
    let mut seen = String::new();
    let first = format!(
        "id: {since}\nevent: revoked\ndata: {{\"sid\":\"{}\",\"at\":{since}}}\n\n",
        sid(&token)
    );
    assert!(read_until(&mut res, &mut seen, &first).await, "{seen}");
    assert!(
        !seen.contains("event: reset"),
        "complete since {since}: {seen}"
    );
    app.clock.advance_secs(2);
    let live_at = app.clock_ms();
    app.post("/sign-out", json!({}), &mut jar2).await;
    let live = format!(
        "id: {live_at}\nevent: revoked\ndata: {{\"sid\":\"{}\",\"at\":{live_at}}}\n\n",
        sid(&token2)
    );
    assert!(read_until(&mut res, &mut seen, &live).await, "{seen}");
    assert_eq!(seen.matches(&sid(&token2)).count(), 1, "{seen}");

    // Resuming: Last-Event-ID wins over since.
    let mut again = open(
        &app,
        &format!("?since={since}"),
        &[("last-event-id", &live_at.to_string())],
    )
    .await;
    let mut resumed = String::new();
    assert!(read_until(&mut again, &mut resumed, &sid(&token2)).await);
    assert!(!resumed.contains(&sid(&token)), "{resumed}");

    // No cursor: everything retained, and the process cannot vouch for before its start.
    let mut all = open(&app, "", &[]).await;
    let mut text = String::new();
    assert!(read_until(&mut all, &mut text, &sid(&token2)).await);
    assert!(
        text.starts_with("event: reset\ndata: {\"complete\":false}\n\n"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_losing_its_guarantee_resets_and_ends_the_stream() {
    let app = feed_app(|_| {}).await;
    wait_guaranteed(&app).await;
    let since = app.clock_ms();
    let mut res = open(&app, &format!("?since={since}"), &[]).await;
    assert_eq!(res.status(), 200);
    app.exec("drop trigger sessiond_session_revoked on session")
        .await;
    let mut seen = String::new();
    assert!(
        read_until(
            &mut res,
            &mut seen,
            "event: reset\ndata: {\"complete\":false}\n\n"
        )
        .await,
        "{seen}"
    );
    // Then it ends.
    let end = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(_)) = res.chunk().await {}
    })
    .await;
    assert!(end.is_ok(), "the stream stays open after a reset");
    let v = super::feed::feed(&app, &format!("?since={since}"), &[])
        .await
        .json();
    assert_eq!(v["complete"], false, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_capped_and_slots_come_back() {
    let app = feed_app(|s| s.revocation_feed.max_streams = 2).await;
    let a = open(&app, "", &[]).await;
    let b = open(&app, "", &[]).await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let c = open(&app, "", &[]).await;
    assert_eq!(c.status(), 503);
    let v: serde_json::Value = c.json().await.unwrap();
    assert_eq!(v["code"], "TOO_MANY_STREAMS");
    assert!(v["message"].is_string());
    // JSON answers are not streams.
    assert_eq!(super::feed::feed(&app, "", &[]).await.status, 200);
    drop(a);
    let start = Instant::now();
    loop {
        let d = open(&app, "", &[]).await;
        if d.status() == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "a closed stream's slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_outlives_the_idle_timeout() {
    let app = feed_app(|s| {
        s.server.idle_timeout = 1;
        s.server.header_read_timeout = 1;
    })
    .await;
    wait_guaranteed(&app).await;
    let (mut jar, token) = signed_up(&app).await;
    let since = app.clock_ms();
    let mut res = open(&app, &format!("?since={since}"), &[]).await;
    assert_eq!(res.status(), 200);
    // Longer than the idle timeout, with nothing sent.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    app.post("/sign-out", json!({}), &mut jar).await;
    let mut seen = String::new();
    assert!(
        read_until(&mut res, &mut seen, &sid(&token)).await,
        "{seen}"
    );
}
