//! The revocation feed as server-sent events: the backlog since the cursor, then live
//! ends as they are heard; `event: reset` when the replica cannot vouch for what follows
//! (a feed down, a reset, the subscriber too slow), and then the stream closes; a
//! `: ping` comment every [`PING`]; every stream ends after [`MAX_STREAM_AGE`] (clients
//! reconnect with `Last-Event-ID`).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast;

use super::revocations::{too_many_streams, FeedAccess, StreamSlot};
use super::server::{ConnHandle, Streaming};
use crate::session::revoked_log::{Live, Revoked};

/// Time between keep-alive comments.
pub const PING: Duration = Duration::from_secs(15);
/// A stream's longest life.
pub const MAX_STREAM_AGE: Duration = Duration::from_secs(3600);
/// Backlog entries read from the log at a time (bounds a stream's memory).
const BACKLOG_CHUNK: usize = 500;
const RESET: &str = "event: reset\ndata: {\"complete\":false}\n\n";

struct Stream {
    feed: Arc<FeedAccess>,
    live: broadcast::Receiver<Live>,
    /// Where the backlog goes on; `None` once it is sent.
    backlog: Option<Option<i64>>,
    first: bool,
    ping: tokio::time::Interval,
    deadline: tokio::time::Instant,
    closing: bool,
    _slot: StreamSlot,
    _conn: Option<Streaming>,
}

fn event(out: &mut String, e: &Revoked) {
    let _ = write!(
        out,
        "id: {at}\nevent: revoked\ndata: {{\"sid\":\"{sid}\",\"at\":{at}}}\n\n",
        at = e.at,
        sid = e.sid_hex()
    );
}

impl Stream {
    async fn next(&mut self) -> Option<String> {
        if self.closing {
            return None;
        }
        if let Some(since) = self.backlog {
            let page = self.feed.log.page(since, BACKLOG_CHUNK);
            let mut out = String::new();
            if self.first && !page.complete {
                // Not closed: reconnecting would not make the past any more complete.
                out.push_str(RESET);
            }
            self.first = false;
            for e in &page.revoked {
                event(&mut out, e);
            }
            self.backlog = page.more.then_some(Some(page.cursor));
            if !out.is_empty() {
                return Some(out);
            }
        }
        tokio::select! {
            () = tokio::time::sleep_until(self.deadline) => None,
            _ = self.ping.tick() => Some(": ping\n\n".into()),
            got = self.live.recv() => match got {
                Ok(Live::Revoked(e)) => {
                    let mut out = String::new();
                    event(&mut out, &e);
                    Some(out)
                }
                Ok(Live::Reset) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.closing = true;
                    Some(RESET.into())
                }
                Err(broadcast::error::RecvError::Closed) => None,
            },
        }
    }
}

/// Opens a stream from `since` (all retained when `None`); 503 at the cap.
pub fn respond(feed: &Arc<FeedAccess>, since: Option<i64>, conn: Option<ConnHandle>) -> Response {
    let Some(slot) = feed.open_stream() else {
        return too_many_streams();
    };
    // Subscribed before the backlog is read: an end heard in between comes twice, never
    // not at all.
    let live = feed.log.subscribe();
    let start = tokio::time::Instant::now();
    let stream = Stream {
        feed: feed.clone(),
        live,
        backlog: Some(since),
        first: true,
        ping: tokio::time::interval_at(start + PING, PING),
        deadline: start + MAX_STREAM_AGE,
        closing: false,
        _slot: slot,
        _conn: conn.map(|c| c.streaming()),
    };
    let body = futures::stream::unfold(stream, |mut s| async move {
        let chunk = s.next().await?;
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(chunk)), s))
    });
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}
