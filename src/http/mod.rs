//! The HTTP surface: Better Auth's routes under the base path, one file per area
//! ([`auth`]: sign-up, sign-in, sign-out; [`sessions`]: get/list/revoke/update session;
//! [`account`]: update-user, change-password), request inputs ([`extract`], [`client`])
//! and the origin check ([`origin`]). Unknown paths get 404 with an empty body.

pub mod account;
pub mod auth;
pub mod client;
pub mod extract;
pub mod forward_auth;
pub mod ops;
pub mod origin;
pub mod rate_limit;
pub mod sessions;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use tower_http::cors::{AllowCredentials, AllowHeaders, AllowOrigin, CorsLayer};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::metrics::RouteMetrics;
use crate::session::SessionService;

/// Shared state of every handler: one `Arc`, so that cloning it per request is one
/// reference count.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Wraps the shared state.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What every handler shares.
pub struct Shared {
    /// The session service.
    pub sessions: SessionService,
    /// Trusted origins for the origin check.
    pub origins: Arc<origin::TrustedOrigins>,
    /// Client address rules.
    pub ip: Arc<client::IpRules>,
    /// The API's base path (e.g. `/api/auth`).
    pub base_path: Arc<str>,
    /// Origin and CSRF checks are off.
    pub csrf_disabled: bool,
    /// Forward-auth settings.
    pub forward_auth: Arc<forward_auth::ForwardAuth>,
    /// Forward-auth path, if served.
    pub forward_auth_path: Option<Arc<str>>,
    /// The rate limiter, when enabled.
    pub rate_limiter: Option<Arc<rate_limit::RateLimiter>>,
    /// Per-request time limit.
    pub request_timeout: std::time::Duration,
    /// Largest accepted body.
    pub body_limit: usize,
    /// The OpenAPI document served at `/openapi.json`.
    pub openapi: Arc<str>,
    /// Store non-text values sent for text fields as text (Better Auth's behaviour).
    pub coerce_field_types: bool,
    /// The Prometheus handle, when metrics are on.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Whether `/metrics` is served by the main listener.
    pub metrics_on_main: bool,
}

/// Every route the router serves, as (method, path) with the default base path and
/// forward-auth path; the OpenAPI document must describe each (a test checks both ways).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/auth/sign-up/email"),
    ("POST", "/api/auth/sign-in/email"),
    ("POST", "/api/auth/sign-out"),
    ("GET", "/api/auth/get-session"),
    ("POST", "/api/auth/get-session"),
    ("GET", "/api/auth/list-sessions"),
    ("POST", "/api/auth/revoke-session"),
    ("POST", "/api/auth/revoke-sessions"),
    ("POST", "/api/auth/revoke-other-sessions"),
    ("POST", "/api/auth/update-session"),
    ("POST", "/api/auth/update-user"),
    ("POST", "/api/auth/change-password"),
    ("GET", "/api/auth/ok"),
    ("GET", "/forward-auth"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/openapi.json"),
    ("GET", "/metrics"),
];

/// The OpenAPI 3.1 document, with the configured paths.
pub fn openapi_document(base_path: &str, forward_auth_path: &str) -> String {
    include_str!("../../openapi/openapi.json")
        .replace("\"/api/auth/", &format!("\"{base_path}/"))
        .replace("\"/forward-auth\"", &format!("\"{forward_auth_path}\""))
}

/// The router with every route, the origin check, and the 404 fallback.
pub fn router(state: AppState) -> Router {
    // Full paths rather than a nested router: nesting costs a prefix strip per request.
    let p = |path: &str| format!("{}{path}", state.base_path);
    let mut served: Vec<(String, axum::routing::MethodRouter<AppState>)> = vec![
        (p("/sign-up/email"), post(auth::sign_up)),
        (p("/sign-in/email"), post(auth::sign_in)),
        (p("/sign-out"), post(auth::sign_out)),
        (
            p("/get-session"),
            get(sessions::get_session).post(sessions::post_get_session),
        ),
        (p("/list-sessions"), get(sessions::list_sessions)),
        (p("/revoke-session"), post(sessions::revoke_session)),
        (p("/revoke-sessions"), post(sessions::revoke_sessions)),
        (
            p("/revoke-other-sessions"),
            post(sessions::revoke_other_sessions),
        ),
        (p("/update-session"), post(sessions::update_session)),
        (p("/update-user"), post(account::update_user)),
        (p("/change-password"), post(account::change_password)),
        (p("/ok"), get(ok)),
        ("/healthz".into(), get(ops::healthz)),
        ("/readyz".into(), get(ops::readyz)),
        ("/openapi.json".into(), get(openapi)),
    ];
    if let Some(handle) = state.metrics.clone().filter(|_| state.metrics_on_main) {
        served.push((
            "/metrics".into(),
            get(move || async move { handle.render() }),
        ));
    }
    if let Some(path) = &state.forward_auth_path {
        served.push((path.to_string(), axum::routing::any(forward_auth::check)));
    }
    let mut root = Router::new();
    let mut metrics = std::collections::HashMap::new();
    for (path, route) in served {
        root = root.route(&path, route);
        metrics.insert(path.clone(), RouteMetrics::new(&path));
    }
    let routes = root
        .fallback(not_found)
        // A known path with another method is a 404 in Better Auth, not a 405.
        .method_not_allowed_fallback(not_found)
        .with_state(state.clone());
    // Layers run outside in: CORS, request id, trace span, then `edge` (metrics, rate
    // limit, origin check, timeout), the body limit, and the routes. They wrap the routes
    // once, as one service, rather than through `Router::layer`, which wraps every route
    // in every layer with a boxed clone per layer per request.
    let stack = tower::ServiceBuilder::new()
        .layer(cors(state.origins.clone()))
        // CORS answers preflights itself, so it needs a body type with a default.
        .map_response(axum::response::IntoResponse::into_response)
        .layer(SetRequestIdLayer::x_request_id(FastRequestId))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &axum::http::Request<axum::body::Body>| {
                    // Method, path and request id only: never the query, headers or cookies.
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        request_id = %id,
                    )
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO))
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(middleware::from_fn_with_state(
            Edge {
                state: state.clone(),
                metrics: Arc::new(metrics),
            },
            edge,
        ))
        .layer(DefaultBodyLimit::max(state.body_limit))
        .service(routes);
    Router::new().fallback_service(stack)
}

/// CORS for browsers on other trusted origins: the exact origin (never `*`) with
/// credentials, answered to preflights before routing; untrusted origins get no grant.
fn cors(origins: Arc<origin::TrustedOrigins>) -> CorsLayer {
    let trusted = move |o: &HeaderValue| o.to_str().is_ok_and(|o| origins.is_trusted(o));
    let trusted2 = trusted.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |o: &HeaderValue, _| trusted(o)))
        // An untrusted origin gets no Allow-Credentials either: nothing is granted.
        .allow_credentials(AllowCredentials::predicate(move |o: &HeaderValue, _| {
            trusted2(o)
        }))
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([HeaderName::from_static("set-auth-token")])
        .max_age(std::time::Duration::from_secs(600))
}

/// Random UUID v4 request ids from a per-thread generator seeded by the OS once, instead of
/// a system call per request (they identify requests, they protect nothing).
#[derive(Clone, Copy)]
struct FastRequestId;

impl MakeRequestId for FastRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        use rand::Rng;
        let bytes: [u8; 16] = rand::thread_rng().gen();
        let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        let mut buf = uuid::Uuid::encode_buffer();
        HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf))
            .ok()
            .map(RequestId::new)
    }
}

/// `edge`'s state: the app, and the request metrics of each served path (the edge runs
/// before routing, so axum's matched path is not known yet).
#[derive(Clone)]
struct Edge {
    state: AppState,
    metrics: Arc<std::collections::HashMap<String, RouteMetrics>>,
}

/// Everything every request passes, in one middleware (each layer costs a boxed clone
/// per request): metrics around it all, then the rate limiter, the origin check, and
/// the request timeout (503 `REQUEST_TIMEOUT`) around the handler.
async fn edge(
    axum::extract::State(Edge { state, metrics }): axum::extract::State<Edge>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    // Better Auth routes by (method, path): HEAD is not GET under the base path.
    if req.method() == axum::http::Method::HEAD && req.uri().path().starts_with(&*state.base_path) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let timing = state
        .metrics
        .is_some()
        .then(|| crate::metrics::begin(metrics.get(req.uri().path())));
    let method = req.method().clone();
    let limited = match rate_limit::key_for(&state, &req) {
        Some((key, rule)) => rate_limit::verdict(&state, key, rule).await,
        None => None,
    };
    let res = if let Some(limited) = limited {
        limited
    } else if let Err(e) = origin::verdict(&state, &req) {
        e.into_response()
    } else {
        match tokio::time::timeout(state.request_timeout, next.run(req)).await {
            Ok(res) => res,
            Err(_) => crate::error::ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "REQUEST_TIMEOUT",
                "The request took too long. Try again later.",
            )
            .into_response(),
        }
    };
    if let Some(t) = timing {
        crate::metrics::finish(t, &method, &res);
    }
    res
}

async fn openapi(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        state.openapi.to_string(),
    )
}

async fn ok() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "ok": true }))
}

async fn not_found() -> StatusCode {
    StatusCode::NOT_FOUND
}
