//! The HTTP surface: Better Auth's routes under the base path, one file per area
//! ([`auth`]: sign-up, sign-in, sign-out; [`sessions`]: get/list/revoke/update session;
//! [`account`]: update-user, change-password), request inputs ([`extract`], [`client`])
//! and the origin check ([`origin`]). Unknown paths get 404 with an empty body.

pub mod account;
pub mod admin;
pub mod auth;
pub mod bearer;
pub mod bodies;
pub mod client;
pub mod cors;
pub mod extract;
pub mod feed_stream;
pub mod forward_auth;
pub mod json;
pub mod multi_session;
pub mod ops;
pub mod origin;
pub mod rate_limit;
pub mod revocations;
pub mod server;
pub mod service_api;
pub mod sessions;
pub mod set_cookie;
pub mod tokens;
pub mod trace;
pub mod unread;

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::metrics::RouteMetrics;
use crate::session::SessionService;
use crate::store::outbox::EventContext;

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
    /// Writes the service's cookie operations as `Set-Cookie` lines.
    pub cookie_writer: Arc<set_cookie::CookieWriter>,
    /// Trusted origins for the origin check.
    pub origins: Arc<origin::TrustedOrigins>,
    /// Client address rules.
    pub ip: Arc<client::IpRules>,
    /// The API's base path (e.g. `/api/auth`).
    pub base_path: Arc<str>,
    /// Origin and CSRF checks are off.
    pub csrf_disabled: bool,
    /// Redirect targets (`callbackURL` and its kin) are not checked
    /// (`advanced.disable_origin_check`).
    pub origin_check_disabled: bool,
    /// Better Auth's bearer plugin, when on.
    pub bearer: Option<bearer::Plugin>,
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
    /// Time a body has to arrive once the head is in.
    pub body_timeout: std::time::Duration,
    /// The OpenAPI document served at `/openapi.json`.
    pub openapi: Arc<str>,
    /// Store non-text values sent for text fields as text (Better Auth's behaviour).
    pub coerce_field_types: bool,
    /// The Prometheus handle, when metrics are on.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Whether `/metrics`, `/openapi.json` and `/readyz`'s detail are served by the main
    /// listener (else only by the operations listener).
    pub ops_on_main: bool,
    /// The jwt plugin, when enabled.
    pub jwt: Option<tokens::JwtRoutes>,
    /// Its key set's path under the base path.
    pub jwks_path: Arc<str>,
    /// The revocation feed, when served.
    pub revocation_feed: Option<Arc<revocations::FeedAccess>>,
    /// The service API, when enabled.
    pub service_api: Option<Arc<service_api::ServiceApi>>,
    /// Whether the main listener serves the service API (else its own listener does).
    pub service_api_on_main: bool,
    /// Lifecycle events are recorded: each request's writes carry its client's address
    /// and user agent.
    pub events: bool,
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
    ("GET", "/api/auth/jwks"),
    ("GET", "/api/auth/token"),
    ("GET", "/api/auth/revocations"),
    ("POST", "/api/auth/admin/list-user-sessions"),
    ("POST", "/api/auth/admin/revoke-user-session"),
    ("POST", "/api/auth/admin/revoke-user-sessions"),
    ("POST", "/api/auth/admin/ban-user"),
    ("POST", "/api/auth/admin/unban-user"),
    ("POST", "/api/auth/admin/set-role"),
    ("POST", "/api/auth/admin/impersonate-user"),
    ("POST", "/api/auth/admin/stop-impersonating"),
    ("GET", "/api/auth/multi-session/list-device-sessions"),
    ("POST", "/api/auth/multi-session/set-active"),
    ("POST", "/api/auth/multi-session/revoke"),
    ("GET", "/forward-auth"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/openapi.json"),
    ("GET", "/metrics"),
    ("GET", "/service/v1/users/{userId}/sessions"),
    ("DELETE", "/service/v1/sessions/{sessionId}"),
    ("POST", "/service/v1/users/revoke-sessions"),
    ("POST", "/service/v1/users/{userId}/ban"),
    ("POST", "/service/v1/users/{userId}/unban"),
    ("GET", "/service/v1/users/{userId}/history"),
];

/// The OpenAPI 3.1 document, with the configured paths.
pub fn openapi_document(base_path: &str, forward_auth_path: &str) -> String {
    include_str!("../../openapi/openapi.json")
        .replace("\"/api/auth/", &format!("\"{base_path}/"))
        .replace("\"/forward-auth\"", &format!("\"{forward_auth_path}\""))
}

/// The API's routes under the base path, and what serves each.
fn api_routes() -> Vec<(&'static str, axum::routing::MethodRouter<AppState>)> {
    vec![
        ("/sign-up/email", post(auth::sign_up)),
        ("/sign-in/email", post(auth::sign_in)),
        ("/sign-out", post(auth::sign_out)),
        (
            "/get-session",
            get(sessions::get_session).post(sessions::post_get_session),
        ),
        ("/list-sessions", get(sessions::list_sessions)),
        ("/revoke-session", post(sessions::revoke_session)),
        ("/revoke-sessions", post(sessions::revoke_sessions)),
        (
            "/revoke-other-sessions",
            post(sessions::revoke_other_sessions),
        ),
        ("/update-session", post(sessions::update_session)),
        ("/update-user", post(account::update_user)),
        ("/change-password", post(account::change_password)),
        ("/ok", get(ok)),
        ("/revocations", get(revocations::revocations)),
        ("/admin/list-user-sessions", post(admin::list_user_sessions)),
        (
            "/admin/revoke-user-session",
            post(admin::revoke_user_session),
        ),
        (
            "/admin/revoke-user-sessions",
            post(admin::revoke_user_sessions),
        ),
        ("/admin/ban-user", post(admin::ban_user)),
        ("/admin/unban-user", post(admin::unban_user)),
        ("/admin/set-role", post(admin::set_role)),
        ("/admin/impersonate-user", post(admin::impersonate_user)),
        ("/admin/stop-impersonating", post(admin::stop_impersonating)),
        (
            "/multi-session/list-device-sessions",
            get(multi_session::list_device_sessions),
        ),
        ("/multi-session/set-active", post(multi_session::set_active)),
        ("/multi-session/revoke", post(multi_session::revoke)),
    ]
}

/// The full paths of the API's routes under `base_path`.
pub fn api_paths(base_path: &str) -> Vec<String> {
    api_routes()
        .into_iter()
        .map(|(p, _)| format!("{base_path}{p}"))
        .collect()
}

/// The operations listener's routes: health, detailed readiness, metrics, OpenAPI.
pub fn ops_router(state: AppState) -> Router {
    let mut r = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/openapi.json", get(openapi));
    if let Some(handle) = state.metrics.clone() {
        r = r.route("/metrics", get(move || async move { handle.render() }));
    }
    r.fallback(not_found).with_state(state)
}

/// The router with every route, the origin check, and the 404 fallback.
pub fn router(state: AppState) -> Router {
    // Full paths rather than a nested router: nesting costs a prefix strip per request.
    let mut served: Vec<(String, axum::routing::MethodRouter<AppState>)> = api_routes()
        .into_iter()
        // Off, the feed is an unknown path.
        .filter(|(p, _)| *p != "/revocations" || state.revocation_feed.is_some())
        // Off, the admin plugin's routes are unknown paths.
        .filter(|(p, _)| !p.starts_with("/admin/") || state.sessions.admin_enabled())
        .filter(|(p, _)| {
            !p.starts_with("/multi-session/") || state.sessions.multi_session_max().is_some()
        })
        .map(|(p, r)| (format!("{}{p}", state.base_path), r))
        .collect();
    if state.jwt.is_some() {
        served.push((
            format!("{}{}", state.base_path, state.jwks_path),
            get(tokens::jwks),
        ));
        served.push((format!("{}/token", state.base_path), get(tokens::token)));
    }
    served.push(("/healthz".into(), get(ops::healthz)));
    if state.ops_on_main {
        served.push(("/readyz".into(), get(ops::readyz)));
        served.push(("/openapi.json".into(), get(openapi)));
        if let Some(handle) = state.metrics.clone() {
            served.push((
                "/metrics".into(),
                get(move || async move { handle.render() }),
            ));
        }
    } else {
        served.push(("/readyz".into(), get(ops::readyz_status)));
    }
    if let Some(path) = &state.forward_auth_path {
        // Any method, and any suffix: Envoy's ext_authz appends the original path.
        served.push((path.to_string(), axum::routing::any(forward_auth::check)));
        served.push((format!("{path}/"), axum::routing::any(forward_auth::check)));
        served.push((
            format!("{path}/{{*rest}}"),
            axum::routing::any(forward_auth::check),
        ));
    }
    let mut root = Router::new();
    let mut metrics = std::collections::HashMap::new();
    for (path, route) in served {
        root = root.route(&path, route);
        if !path.contains('{') {
            metrics.insert(path.clone(), RouteMetrics::new(&path));
        }
    }
    let routes = root
        .fallback(not_found)
        // A known path with another method is a 404 in Better Auth, not a 405.
        .method_not_allowed_fallback(not_found)
        .with_state(state.clone());
    // Layers run outside in: CORS (API paths only), request id, the sampling verdict (export
    // on only), trace span, then `edge`
    // (metrics, rate limit, origin check, timeout, no-store), the body limit, and the
    // routes. They wrap the routes once, as one service, rather than through
    // `Router::layer`, which wraps every route in every layer with a boxed clone per
    // layer per request.
    let inner = tower::ServiceBuilder::new()
        // One body type for the CORS scope's two paths.
        .map_response(axum::response::IntoResponse::into_response)
        .map_request(sanitise_request_id)
        .layer(SetRequestIdLayer::x_request_id(FastRequestId))
        .option_layer(crate::telemetry::exporting().then_some(trace::SampleLayer))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(trace::request_span::<axum::body::Body>)
                .on_response(DefaultOnResponse::new().level(Level::INFO))
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(middleware::from_fn_with_state(
            Edge {
                state: state.clone(),
                metrics: Arc::new(metrics),
                posts: ROUTES
                    .iter()
                    .filter(|(m, _)| *m == "POST")
                    .filter_map(|(_, p)| p.strip_prefix("/api/auth"))
                    .map(|rest| format!("{}{rest}", state.base_path))
                    .collect::<std::collections::HashSet<_>>()
                    .into(),
            },
            edge,
        ))
        .layer(DefaultBodyLimit::max(state.body_limit))
        .service(routes);
    let api_paths: Arc<[String]> = ROUTES
        .iter()
        .filter_map(|(_, p)| p.strip_prefix("/api/auth"))
        .map(|rest| format!("{}{rest}", state.base_path))
        .collect();
    let scoped = cors::Scoped::new(
        inner,
        cors::layer(state.origins.clone()),
        state.base_path.clone(),
        api_paths,
    );
    let mut root = Router::new();
    if state.service_api_on_main {
        if let Some(service) = service_api::router(state.clone()) {
            root = root.merge(service);
        }
    }
    root.fallback_service(scoped)
}

/// Longest path written to a log line.
const LOGGED_PATH_MAX: usize = 200;

/// Longest method written to a log line (methods are client-chosen tokens).
const LOGGED_METHOD_MAX: usize = 16;

/// Client text for the logs: printable ASCII as is, every other byte percent-encoded
/// (no control, bidirectional or line-separator character reaches a log), cut after a
/// number of input bytes.
struct Shortened<'a>(&'a str, usize);

impl std::fmt::Display for Shortened<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self(text, max) = *self;
        for &b in text.as_bytes().iter().take(max) {
            if (0x21..0x7f).contains(&b) {
                f.write_char(char::from(b))?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        if text.len() > max {
            f.write_str("…")?;
        }
        Ok(())
    }
}

/// Longest client-supplied request id kept.
const REQUEST_ID_MAX: usize = 128;

/// Drops a client's `X-Request-Id` unless it is short and plain (letters, digits, `-`,
/// `_`, `.`, `:`): anything else would let a client write into the logs; a fresh id
/// replaces it.
fn sanitise_request_id(
    mut req: axum::http::Request<axum::body::Body>,
) -> axum::http::Request<axum::body::Body> {
    let ok = |v: &HeaderValue| {
        let b = v.as_bytes();
        !b.is_empty()
            && b.len() <= REQUEST_ID_MAX
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
    };
    let headers = req.headers_mut();
    let mut values = headers.get_all("x-request-id").iter();
    let keep = match (values.next(), values.next()) {
        (None, _) => true,
        (Some(v), None) => ok(v),
        _ => false,
    };
    if !keep {
        headers.remove("x-request-id");
    }
    req
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
    /// The full paths served for POST: the only ones the origin check applies to (another
    /// path, or another method, is a 404 first, as in Better Auth).
    posts: Arc<std::collections::HashSet<String>>,
}

/// Whether `path` is `base` or below it.
pub fn is_under(path: &str, base: &str) -> bool {
    path.strip_prefix(base)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl Edge {
    /// The served path a request path belongs to, with its metrics: itself, or forward
    /// auth for its suffixed form.
    fn route(&self, path: &str) -> Option<(&str, &RouteMetrics)> {
        if let Some((k, m)) = self.metrics.get_key_value(path) {
            return Some((k.as_str(), m));
        }
        let fa = self.state.forward_auth_path.as_deref()?;
        if !is_under(path, fa) {
            return None;
        }
        self.metrics.get_key_value(fa).map(|(k, m)| (k.as_str(), m))
    }
}

/// Everything every request passes, in one middleware (each layer costs a boxed clone
/// per request): metrics around it all, then the rate limiter, the origin check, and
/// the request timeout (503 `REQUEST_TIMEOUT`) around the handler. API answers are
/// never stored by caches (`Cache-Control: no-store`): they carry tokens and identities.
async fn edge(
    axum::extract::State(edge): axum::extract::State<Edge>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let state = &edge.state;
    let under_base = is_under(req.uri().path(), &state.base_path);
    // Better Auth routes by (method, path): HEAD is not GET under the base path.
    if req.method() == axum::http::Method::HEAD && under_base {
        return StatusCode::NOT_FOUND.into_response();
    }
    let route = edge.route(req.uri().path());
    if let Some((r, _)) = route {
        trace::record_route(req.method(), r, &state.base_path);
    }
    let timing = state
        .metrics
        .is_some()
        .then(|| crate::metrics::begin(route.map(|(_, m)| m)));
    let method = req.method().clone();
    let limited = match rate_limit::key_for(state, &req, route.map(|(r, _)| r)) {
        Some(counted) => rate_limit::verdict(state, counted).await,
        None => None,
    };
    let checked = req.method() == axum::http::Method::POST && edge.posts.contains(req.uri().path());
    let mut res = if let Some(limited) = limited {
        limited
    } else if let Some(Err(e)) = checked.then(|| origin::verdict(state, &req)) {
        // Better Auth reads the body before it checks the origin: a body it cannot read
        // is what it answers.
        extract::unreadable_body(req, state)
            .await
            .unwrap_or(e)
            .into_response()
    } else {
        let run = async {
            // Reads (get-session's cache hits above all) pay nothing: the writes a GET can
            // make (a refresh, an expired session's removal) are recorded without the
            // requesting client, whose address the session row holds anyway.
            if state.events && req.method() != axum::http::Method::GET {
                events_context(state, &req).scope(next.run(req)).await
            } else {
                next.run(req).await
            }
        };
        match tokio::time::timeout(state.request_timeout, run).await {
            Ok(res) => res,
            Err(_) => crate::error::ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "REQUEST_TIMEOUT",
                "The request took too long. Try again later.",
            )
            .into_response(),
        }
    };
    if under_base {
        bearer::expose_token(state, &mut res);
        res.headers_mut()
            .entry(axum::http::header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    // The router lists a known path's methods in `Allow` even on the 404 that a wrong
    // method gets here (as in Better Auth, which sends no `Allow`).
    res.headers_mut().remove(axum::http::header::ALLOW);
    trace::record_status(res.status().as_u16());
    if let Some(t) = timing {
        crate::metrics::finish(t, &method, &res);
    }
    res
}

/// What a request's writes tell the event triggers: its client (never a credential).
fn events_context(state: &AppState, req: &axum::extract::Request) -> EventContext {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let client = state.ip.client_info(req.headers(), peer);
    EventContext {
        ip: (!client.ip_address.is_empty()).then_some(client.ip_address),
        ua: (!client.user_agent.is_empty()).then(|| {
            crate::session::limits::cut(
                &client.user_agent,
                crate::session::limits::MAX_USER_AGENT_BYTES,
            )
            .to_owned()
        }),
        ..EventContext::default()
    }
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
