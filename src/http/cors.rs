//! CORS for browsers on other trusted origins, and only where it belongs.
//!
//! The grant is the exact origin (never `*`) with credentials, for trusted origins only.
//! It applies under the base path alone — forward auth, health and metrics are for
//! proxies and operators, not browsers — and an `OPTIONS` request is answered as a
//! preflight only when it is one (`Origin` and `Access-Control-Request-Method`); any other
//! `OPTIONS` is routed like any request (a 404 under the base path, as Better Auth's; a
//! check like any other on forward auth).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::response::Response;
use futures::future::{Either, FutureExt, Map};
use tower::{Layer, Service};
use tower_http::cors::{AllowCredentials, AllowHeaders, AllowOrigin, Cors, CorsLayer};

use crate::http::origin::TrustedOrigins;

/// The CORS policy: trusted origins get their own origin back, with credentials; others
/// get no grant at all.
pub fn layer(origins: Arc<TrustedOrigins>) -> CorsLayer {
    let trusted = move |o: &HeaderValue| o.to_str().is_ok_and(|o| origins.is_trusted(o));
    let trusted2 = trusted.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |o: &HeaderValue, _| trusted(o)))
        .allow_credentials(AllowCredentials::predicate(move |o: &HeaderValue, _| {
            trusted2(o)
        }))
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        // No expose list here: the bearer and jwt plugins name `set-auth-token` and
        // `set-auth-jwt` in `Access-Control-Expose-Headers` on the answers that carry them,
        // as Better Auth does (a list here would replace theirs).
        .max_age(std::time::Duration::from_secs(600))
        // Added by `Scoped` as one value made at compile time: tower-http builds the
        // same list into a new header value on every request.
        .vary(Vec::<HeaderName>::new())
}

/// The `Vary` of every answer CORS handles: the request headers a preflight's answer
/// depends on (tower-http's default list).
const VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

/// Appends [`VARY`], keeping any `Vary` the answer already has (as tower-http does).
fn add_vary(res: Result<Response, Infallible>) -> Result<Response, Infallible> {
    res.map(|mut r| {
        r.headers_mut().append(header::VARY, VARY);
        r
    })
}

type VaryAdded<F> = Map<F, fn(Result<Response, Infallible>) -> Result<Response, Infallible>>;

/// `inner`, with CORS applied to the requests under the base path only. One copy of the
/// inner service, reached through the CORS wrapper or around it: the router clones this
/// per request.
#[derive(Clone)]
pub struct Scoped<S> {
    cors: Cors<S>,
    base_path: Arc<str>,
    /// The API routes, with the configured base path: the only paths preflights answer.
    api_paths: Arc<[String]>,
}

impl<S> Scoped<S> {
    /// Wraps `inner`; `api_paths` are the served paths under `base_path`.
    pub fn new(inner: S, cors: CorsLayer, base_path: Arc<str>, api_paths: Arc<[String]>) -> Self {
        Self {
            cors: cors.layer(inner),
            base_path,
            api_paths,
        }
    }
}

/// Whether CORS handles `req`: under the base path, and for `OPTIONS` only a preflight
/// (`Origin` and `Access-Control-Request-Method`) for a route that exists, spelled as
/// served, so that no other path (`/api/auth/../../forward-auth`, an unknown route)
/// answers 2xx to an anonymous `OPTIONS`.
fn wants_cors(req: &Request, base_path: &str, api_paths: &[String]) -> bool {
    let path = req.uri().path();
    if !crate::http::is_under(path, base_path) {
        return false;
    }
    req.method() != Method::OPTIONS
        || (req.headers().contains_key(header::ORIGIN)
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
            && api_paths.iter().any(|p| p == path))
}

impl<S> Service<Request> for Scoped<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<VaryAdded<<Cors<S> as Service<Request>>::Future>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The CORS wrapper is ready when the service inside is: either path may follow.
        self.cors.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if wants_cors(&req, &self.base_path, &self.api_paths) {
            Either::Left(self.cors.call(req).map(add_vary as fn(_) -> _))
        } else {
            Either::Right(self.cors.get_mut().call(req))
        }
    }
}
