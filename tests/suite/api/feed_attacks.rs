//! Attacks on the revocation feed: every method, malformed cursors and `Last-Event-ID`,
//! hundreds of streams at once against `max_streams`, a slow request head.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::feed::{feed, feed_app, KEY};
use super::feed_stream::open;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_methods_are_unknown() {
    let app = feed_app(|_| {}).await;
    for m in ["POST", "PUT", "DELETE", "PATCH", "HEAD", "TRACE", "FEED"] {
        let res = app
            .client
            .request(
                reqwest::Method::from_bytes(m.as_bytes()).unwrap(),
                app.url("/revocations"),
            )
            .header("authorization", format!("Bearer {KEY}"))
            .header("origin", ORIGIN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{m}");
        assert!(res.text().await.unwrap().is_empty(), "{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_cursors_are_refused() {
    let app = feed_app(|_| {}).await;
    let long = "9".repeat(4000);
    let bad = [
        "",
        "abc",
        "-1",
        "1.5",
        "1e3",
        "%2B5",
        "%205",
        "0x10",
        "12a",
        "99999999999999999999",
        "9223372036854775808",
        &long,
        "1&since=2",
        "%00",
    ];
    for b in bad {
        let r = feed(&app, &format!("?since={b}"), &[]).await;
        assert_eq!(r.status, 400, "since={b:.40}: {}", r.text);
        assert_eq!(r.code().as_deref(), Some("INVALID_CURSOR"), "since={b:.40}");
        let s = open(&app, &format!("?since={b}"), &[]).await;
        assert_eq!(s.status(), 400, "stream since={b:.40}");
    }
    let top = feed(&app, "?since=9223372036854775807", &[]).await;
    assert_eq!(top.status, 200);
    let v = top.json();
    assert_eq!(v["revoked"], serde_json::json!([]));
    // Counted from now, not echoed: an echoed future cursor would hide every later end
    // (attacks_tokens.rs: a_cursor_from_the_future_does_not_hide_later_ends).
    let cursor: i64 = v["cursor"].as_str().unwrap().parse().unwrap();
    assert!(cursor <= app.clock_ms() + 1, "{cursor}");
    for ok in ["0", "00012", "1"] {
        assert_eq!(feed(&app, &format!("?since={ok}"), &[]).await.status, 200);
    }
    for junk in ["abc", "-5", "1 2", "", "１２"] {
        let s = open(&app, "", &[("last-event-id", junk)]).await;
        assert_eq!(s.status(), 400, "Last-Event-ID {junk:?}");
        let v: serde_json::Value = s.json().await.unwrap();
        assert_eq!(v["code"], "INVALID_CURSOR");
    }
    // A JSON request ignores Last-Event-ID.
    assert_eq!(
        feed(&app, "", &[("last-event-id", "junk")]).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_streams_at_once_stay_under_the_cap() {
    let cap = 8;
    let app = feed_app(|s| s.revocation_feed.max_streams = cap).await;
    let opens = (0..300).map(|_| open(&app, "", &[]));
    let answers = futures::future::join_all(opens).await;
    let open_now = answers.iter().filter(|r| r.status() == 200).count();
    let refused = answers.iter().filter(|r| r.status() == 503).count();
    assert_eq!(open_now, cap);
    assert_eq!(refused, 300 - cap, "anything but 200 or 503");
    drop(answers);
    // Every slot comes back once the clients are gone.
    let start = Instant::now();
    loop {
        let again = futures::future::join_all((0..cap).map(|_| open(&app, "", &[]))).await;
        if again.iter().all(|r| r.status() == 200) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "slots leaked");
        drop(again);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_stream_request_takes_no_slot_and_is_closed() {
    let app = feed_app(|s| {
        s.revocation_feed.max_streams = 1;
        s.server.header_read_timeout = 1;
    })
    .await;
    let mut slow = tokio::net::TcpStream::connect(&app.addr).await.unwrap();
    slow.write_all(
        b"GET /api/auth/revocations HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n",
    )
    .await
    .unwrap();
    let res = open(&app, "", &[]).await;
    assert_eq!(res.status(), 200, "the half-sent request took the one slot");
    // The server closes the slow one (at most a 408-style answer, then end of stream).
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the slow request head is never closed");
    assert!(!String::from_utf8_lossy(&buf).contains("event:"));
}
