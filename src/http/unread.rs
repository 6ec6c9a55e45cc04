//! A request body left unread when the answer is ready: drained if it is small, else the
//! answer says `Connection: close`.
//!
//! Some answers come before the body is read: an unknown route (404), a wrong method (405),
//! a body past the limit (413), a handler that has no use for the body. hyper cannot tell
//! where the next request starts until the body has been read, so it would close the
//! connection after the answer without the answer saying so. A proxy that keeps connections
//! open (nginx with `keepalive`) then takes the answer as complete, returns the dying
//! connection to its pool and sends the next request, often another client's, into the
//! close: that client gets a 502 for a request it sent correctly.
//!
//! So, before the answer goes out, the rest of the body is read and discarded, at most
//! [`DRAIN_BYTES`] of it within [`DRAIN_WAIT`]; the connection then stays open, as for any
//! other request. A body that is larger, slower, or awaits `Expect: 100-continue` (reading
//! it would invite the client to send it) is not read: the answer says `Connection: close`
//! and the connection ends. A request without a body, such as every `get-session` and
//! forward-auth check, is not tracked at all.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{header, HeaderValue, Request, Response};
use hyper::body::{Body, Buf, Frame, SizeHint};

/// The most body bytes read and discarded after an answer given without them. 64 KiB: the
/// default `body_limit`, so that any body a route would have accepted is drained.
pub const DRAIN_BYTES: u64 = 64 * 1024;
/// How long the answer waits for those bytes to arrive.
pub const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// One connection's state: whether the request being served has body bytes unread, and the
/// body itself once the request's handler has dropped it unread.
pub struct Unread<B> {
    pending: AtomicBool,
    /// The request came as HTTP/1.0 (see [`finish`]).
    http10: AtomicBool,
    left: Mutex<Option<B>>,
}

impl<B> Default for Unread<B> {
    fn default() -> Self {
        Self {
            pending: AtomicBool::new(false),
            http10: AtomicBool::new(false),
            left: Mutex::new(None),
        }
    }
}

impl<B> Unread<B> {
    /// Whether the request being answered left body bytes unread.
    pub fn pending(&self) -> bool {
        self.pending.load(Ordering::Relaxed)
    }

    fn take(&self) -> Option<B> {
        match self.left.lock() {
            Ok(mut left) => left.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }

    fn keep(&self, body: B) {
        match self.left.lock() {
            Ok(mut left) => *left = Some(body),
            Err(poisoned) => *poisoned.into_inner() = Some(body),
        }
    }
}

/// A request body that clears its connection's `pending` flag once read to its end, and
/// hands itself back to the connection when dropped before that.
pub struct Tracked<B> {
    /// `None` only once dropped into the connection's keeping.
    inner: Option<B>,
    /// The connection's state, while the body has not ended; `None` for no body at all.
    unread: Option<Arc<Unread<B>>>,
    /// Whether a body dropped unread may be drained (not for `Expect: 100-continue`).
    drainable: bool,
}

/// Wraps the body of a request about to be served on a connection: the connection's flag
/// is set now, unless the request has no body, and cleared when the body ends.
pub fn track<B: Body>(req: Request<B>, unread: &Arc<Unread<B>>) -> Request<Tracked<B>> {
    let pending = !req.body().is_end_stream();
    unread.pending.store(pending, Ordering::Relaxed);
    if pending {
        let http10 = req.version() == axum::http::Version::HTTP_10;
        unread.http10.store(http10, Ordering::Relaxed);
    }
    let drainable = !req.headers().contains_key(header::EXPECT);
    req.map(|inner| Tracked {
        inner: Some(inner),
        unread: pending.then(|| unread.clone()),
        drainable,
    })
}

/// Reads and discards what is left of a body dropped unread, within [`DRAIN_BYTES`] and
/// [`DRAIN_WAIT`]; then marks the answer `Connection: close` if the body is still unread.
pub async fn finish<B, R>(res: &mut Response<R>, unread: &Unread<B>)
where
    B: Body + Unpin,
{
    if !unread.pending() {
        return;
    }
    if let Some(body) = unread.take() {
        let drained = tokio::time::timeout(DRAIN_WAIT, drain(body))
            .await
            .unwrap_or(false);
        if drained {
            unread.pending.store(false, Ordering::Relaxed);
            return;
        }
    }
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    // To an HTTP/1.0 client that asked for keep-alive, hyper adds `keep-alive` to the
    // Connection header of an HTTP/1.1 answer, even beside `close`; it answers such a
    // client in HTTP/1.0 anyway, and then adds nothing.
    if unread.http10.load(Ordering::Relaxed) {
        *res.version_mut() = axum::http::Version::HTTP_10;
    }
}

/// Whether `body` ended within [`DRAIN_BYTES`].
async fn drain<B: Body + Unpin>(mut body: B) -> bool {
    use http_body_util::BodyExt as _;
    if body.size_hint().lower() > DRAIN_BYTES {
        return false;
    }
    let mut read: u64 = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return false;
        };
        if let Some(data) = frame.data_ref() {
            read = read.saturating_add(data.remaining() as u64);
            if read > DRAIN_BYTES {
                return false;
            }
        }
    }
    true
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        if let (Some(unread), Some(inner)) = (self.unread.take(), self.inner.take()) {
            if self.drainable {
                unread.keep(inner);
            }
        }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(&mut *inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            // An error leaves the rest unread, and where it ends unknown: never drained.
            Poll::Ready(Some(Err(_))) => {
                this.drainable = false;
                false
            }
            Poll::Pending => false,
            Poll::Ready(Some(Ok(_))) => inner.is_end_stream(),
        };
        if ended {
            if let Some(unread) = this.unread.take() {
                unread.pending.store(false, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;
    use http_body_util::{BodyExt, Empty, Full, StreamBody};

    type Unreads<B> = Arc<Unread<B>>;

    async fn closes<B: Body + Unpin>(unread: &Unread<B>) -> bool {
        let mut res = Response::new(());
        finish(&mut res, unread).await;
        res.headers().get(header::CONNECTION).is_some()
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_keeps_the_connection() {
        let unread: Unreads<Full<Bytes>> = Arc::default();
        let req = track(Request::new(Full::from("{}")), &unread);
        assert!(unread.pending.load(Ordering::Relaxed), "set while unread");
        let _ = req.into_body().collect().await;
        assert!(!unread.pending.load(Ordering::Relaxed));
        assert!(!closes(&unread).await);
    }

    #[tokio::test]
    async fn a_small_body_dropped_unread_is_drained() {
        let unread: Unreads<Full<Bytes>> = Arc::default();
        drop(track(Request::new(Full::from(vec![b'x'; 1000])), &unread));
        assert!(!closes(&unread).await);
        assert!(
            unread.take().is_none(),
            "the body is not kept past its answer"
        );
    }

    #[tokio::test]
    async fn a_body_past_the_drain_limit_closes_the_connection() {
        let unread: Unreads<Full<Bytes>> = Arc::default();
        let big = vec![b'x'; usize::try_from(DRAIN_BYTES).unwrap() + 1];
        drop(track(Request::new(Full::from(big)), &unread));
        assert!(closes(&unread).await);
    }

    #[tokio::test]
    async fn a_body_of_unknown_length_is_drained_up_to_the_limit() {
        type Chunks = StreamBody<
            futures::stream::Iter<
                std::vec::IntoIter<Result<Frame<Bytes>, std::convert::Infallible>>,
            >,
        >;
        let chunks = |n: usize| -> Chunks {
            let frames = (0..n).map(|_| Ok(Frame::data(Bytes::from(vec![b'x'; 16 * 1024]))));
            StreamBody::new(futures::stream::iter(frames.collect::<Vec<_>>()))
        };
        for (n, closed) in [(4, false), (5, true)] {
            let unread: Unreads<Chunks> = Arc::default();
            drop(track(Request::new(chunks(n)), &unread));
            assert_eq!(closes(&unread).await, closed, "{n} chunks of 16 KiB");
        }
    }

    #[tokio::test]
    async fn expect_continue_is_never_drained() {
        let unread: Unreads<Full<Bytes>> = Arc::default();
        let mut req = Request::new(Full::from("{}"));
        req.headers_mut()
            .insert(header::EXPECT, HeaderValue::from_static("100-continue"));
        drop(track(req, &unread));
        assert!(closes(&unread).await);
    }

    #[tokio::test]
    async fn no_body_is_not_tracked() {
        let unread: Unreads<Empty<Bytes>> = Arc::default();
        let req = track(Request::new(Empty::new()), &unread);
        assert!(req.body().unread.is_none());
        drop(req);
        assert!(!closes(&unread).await);
    }
}
