//! `GET {base}/revocations`: the sessions ended lately, by `sid`, for services that verify
//! JWTs offline. JSON (`?since=<cursor>`), or server-sent events with
//! `Accept: text/event-stream` ([`crate::http::feed_stream`]). The log itself is
//! [`crate::session::revoked_log`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use crate::error::ApiError;
use crate::session::revoked_log::{RevokedLog, PAGE};

/// Longest cursor read (digits of `i64::MAX`).
const MAX_CURSOR_LEN: usize = 19;

/// Who may read the feed, and its open streams.
pub struct FeedAccess {
    /// The log served.
    pub log: Arc<RevokedLog>,
    /// SHA-256 of the key; `None` when the feed is open.
    key_hash: Option<[u8; 32]>,
    max_streams: usize,
    streams: AtomicUsize,
}

impl FeedAccess {
    /// Access to `log` with `key` (ignored when `open`), at most `max_streams` streams.
    pub fn new(log: Arc<RevokedLog>, key: &str, open: bool, max_streams: usize) -> Self {
        Self {
            log,
            key_hash: (!open).then(|| Sha256::digest(key.as_bytes()).into()),
            max_streams,
            streams: AtomicUsize::new(0),
        }
    }

    /// Whether the request presents the key (compared as hashes, in constant time: neither
    /// the key's bytes nor its length show in the timing).
    fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(want) = &self.key_hash else {
            return true;
        };
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
        else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        bool::from(given.ct_eq(want))
    }

    /// Takes a stream slot; `None` at the cap.
    pub(crate) fn open_stream(self: &Arc<Self>) -> Option<StreamSlot> {
        self.streams
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max_streams).then_some(n + 1)
            })
            .ok()?;
        Some(StreamSlot(self.clone()))
    }
}

/// An open stream's slot, given back when the stream ends.
pub(crate) struct StreamSlot(Arc<FeedAccess>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A cursor: decimal milliseconds, digits only.
pub(crate) fn parse_cursor(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > MAX_CURSOR_LEN || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn invalid_cursor() -> Response {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "INVALID_CURSOR",
        "The cursor must be a number of milliseconds, as a previous answer gave it.",
    )
    .into_response()
}

/// The feed: 401 without the key, 400 for a malformed cursor, else JSON or a stream.
pub async fn revocations(State(state): State<AppState>, req: Request) -> Response {
    let Some(feed) = state.revocation_feed.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let headers = req.headers();
    if !feed.admits(headers) {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "The revocation feed needs its key: Authorization: Bearer <key>.",
        )
        .into_response();
    }
    let mut since = None;
    for (k, v) in url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        if k == "since" {
            match parse_cursor(&v) {
                Some(c) if since.is_none() => since = Some(c),
                _ => return invalid_cursor(),
            }
        }
    }
    let wants_stream = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"));
    if wants_stream {
        // A reconnecting client resumes from the last event it saw.
        if let Some(id) = headers.get("last-event-id") {
            match id.to_str().ok().and_then(parse_cursor) {
                Some(c) => since = Some(c),
                None => return invalid_cursor(),
            }
        }
        let conn = req.extensions().get::<super::server::ConnHandle>().cloned();
        return super::feed_stream::respond(&feed, since, conn);
    }
    let page = feed.log.page(since, PAGE);
    let revoked: Vec<_> = page
        .revoked
        .iter()
        .map(|e| json!({ "sid": e.sid_hex(), "at": e.at }))
        .collect();
    let body = if page.more {
        json!({
            "revoked": revoked,
            "cursor": page.cursor.to_string(),
            "complete": page.complete,
            "more": true,
        })
    } else {
        json!({
            "revoked": revoked,
            "cursor": page.cursor.to_string(),
            "complete": page.complete,
        })
    };
    Json(body).into_response()
}

/// Too many streams open.
pub(crate) fn too_many_streams() -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "TOO_MANY_STREAMS",
        "Too many revocation streams are open. Try again later.",
    )
    .into_response()
}
