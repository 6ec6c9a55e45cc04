//! Answers given before the request body was read say `Connection: close`.
//!
//! Some answers come before the body is read: an unknown route (404), a wrong method (405),
//! a body past the limit (413), a handler that has no use for the body. hyper then cannot
//! tell where the next request starts, so it closes the connection after the answer, but
//! the answer itself does not say so. A proxy that keeps connections open (nginx with
//! `keepalive`) then takes the answer as complete, returns the dying connection to its pool
//! and sends the next request, often another client's, into the close: that client gets a
//! 502 for a request it sent correctly. Saying `Connection: close` keeps the proxy from
//! reusing the connection. A request without a body, such as every `get-session` and
//! forward-auth check, is not tracked at all.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{header, HeaderValue, Request, Response};
use hyper::body::{Body, Frame, SizeHint};

/// A request body that clears its connection's `unread` flag once read to its end.
pub struct Tracked<B> {
    inner: B,
    /// The connection's flag, while the body has not ended; `None` for no body at all.
    unread: Option<Arc<AtomicBool>>,
}

/// Wraps the body of a request about to be served on a connection whose flag is `unread`:
/// the flag is set now, unless the request has no body, and cleared when the body ends.
pub fn track<B: Body>(req: Request<B>, unread: &Arc<AtomicBool>) -> Request<Tracked<B>> {
    let pending = !req.body().is_end_stream();
    unread.store(pending, Ordering::Relaxed);
    req.map(|inner| Tracked {
        inner,
        unread: pending.then(|| unread.clone()),
    })
}

/// Marks the answer `Connection: close` when its request's body was left unread.
pub fn close_if_unread<B>(res: &mut Response<B>, unread: &AtomicBool) {
    if unread.load(Ordering::Relaxed) {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
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
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            // An error leaves the rest unread.
            Poll::Ready(Some(Err(_))) | Poll::Pending => false,
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
        };
        if ended {
            if let Some(flag) = this.unread.take() {
                flag.store(false, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty, Full};

    fn flag() -> Arc<AtomicBool> {
        Arc::new(AtomicBool::new(true))
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_clears_the_flag() {
        let unread = flag();
        let req = track(Request::new(Full::new(&b"{}"[..])), &unread);
        assert!(
            unread.load(Ordering::Relaxed),
            "set while the body is unread"
        );
        let _ = req.into_body().collect().await;
        let mut res = Response::new(());
        close_if_unread(&mut res, &unread);
        assert!(res.headers().get(header::CONNECTION).is_none());
    }

    #[test]
    fn a_body_left_unread_closes_the_connection() {
        let unread = flag();
        let req = track(Request::new(Full::new(&b"{}"[..])), &unread);
        drop(req);
        let mut res = Response::new(());
        close_if_unread(&mut res, &unread);
        assert_eq!(res.headers()[header::CONNECTION], "close");
    }

    #[test]
    fn no_body_is_not_tracked() {
        let unread = flag();
        let req = track(Request::new(Empty::<axum::body::Bytes>::new()), &unread);
        assert!(req.body().unread.is_none());
        let mut res = Response::new(());
        close_if_unread(&mut res, &unread);
        assert!(res.headers().get(header::CONNECTION).is_none());
    }
}
