//! JSON answers: serialised into one buffer, or sent as bytes already made.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::error::codes;

/// A JSON response written into a buffer of `capacity` bytes, so that it does not grow on
/// the hot paths (the headers are left to grow as they come: reserving room for all of them up
/// front costs an allocation too large for the allocator's fast path, and measured slower).
/// A value that cannot be serialised is a 500.
pub fn json_response<T: serde::Serialize>(value: &T, capacity: usize) -> Response {
    let mut buf = Vec::with_capacity(capacity);
    let written = serde_json::to_writer(&mut buf, value);
    json_bytes(written.map(|()| buf.into()))
}

/// A 200 with a JSON body already serialised; a 500 when it could not be.
pub fn json_bytes(body: Result<bytes::Bytes, serde_json::Error>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "response serialisation failed");
            return codes::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut res = Response::new(axum::body::Body::from(body));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}
