//! The request span. Without trace export it is the log span it always was (method, path,
//! request id). With export on, it also continues the caller's W3C trace (`traceparent`)
//! and carries what Better Auth's instrumentation puts on its endpoint spans: the name
//! `{METHOD} {route}` (route = the served route template; an unknown path is named by the
//! method alone, so names stay few), `http.request.method`, `http.route`,
//! `http.response.status_code` and `better_auth.operation_id`.

use std::task::{Context, Poll};

use axum::http::{HeaderMap, HeaderName, Method, Request};
use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use tokio::task::futures::TaskLocalFuture;
use tracing::field::Empty;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::Shortened;
use crate::telemetry;
use crate::telemetry::sample;

/// Decides whether a request is traced before its span exists (the configured sampler,
/// once), and keeps that verdict for the request's spans (`telemetry::sample`). Only
/// installed when spans are exported.
#[derive(Clone, Copy)]
pub struct SampleLayer;

impl<S> tower::Layer<S> for SampleLayer {
    type Service = Sample<S>;

    fn layer(&self, inner: S) -> Sample<S> {
        Sample(inner)
    }
}

/// See [`SampleLayer`].
#[derive(Clone)]
pub struct Sample<S>(S);

impl<S, B> tower::Service<Request<B>> for Sample<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TaskLocalFuture<bool, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let sampled = sample::decide(remote_parent(req.headers()).as_ref());
        let inner = &mut self.0;
        // The request span is made in the inner `call`: the verdict is in force for it too.
        sample::in_request(sampled, move || inner.call(req))
    }
}

/// The caller's span, from exactly one valid `traceparent` (two are ambiguous and start a
/// new trace) and its `tracestate`.
pub fn remote_parent(headers: &HeaderMap) -> Option<SpanContext> {
    // Typed names: a `&str` name is parsed again on every lookup.
    const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
    const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
    let mut parents = headers.get_all(TRACEPARENT).iter();
    let (Some(tp), None) = (parents.next(), parents.next()) else {
        return None;
    };
    let mut states = headers.get_all(TRACESTATE).iter();
    let state = match (states.next(), states.next()) {
        (Some(s), None) => Some(s.as_bytes()),
        _ => None,
    };
    telemetry::propagate::remote_parent(tp.as_bytes(), state)
}

/// The span of one request.
pub fn request_span<B>(req: &Request<B>) -> Span {
    // Method, path (cut short) and request id only: never the query, headers or cookies.
    // The id was checked to be short and plain.
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let method = Shortened(req.method().as_str(), super::LOGGED_METHOD_MAX);
    let path = Shortened(req.uri().path(), super::LOGGED_PATH_MAX);
    // Unsampled, the request span is the log span alone: nothing of it is exported.
    if !telemetry::exporting() || !sample::sampled() {
        return tracing::info_span!("request", method = %method, path = %path, request_id = %id);
    }
    let name = method_name(req.method());
    let span = tracing::info_span!(
        "request",
        method = %method,
        path = %path,
        request_id = %id,
        "otel.name" = name,
        "otel.kind" = "server",
        "http.request.method" = name,
        "http.route" = Empty,
        "http.response.status_code" = Empty,
        "better_auth.operation_id" = Empty,
    );
    if let Some(parent) = remote_parent(req.headers()) {
        let cx = opentelemetry::Context::new().with_remote_span_context(parent);
        let _ = span.set_parent(cx);
    }
    span
}

/// Records the served route (full template) and its operation id on the current request
/// span, when the request is traced.
pub fn record_route(method: &Method, route: &str, base_path: &str) {
    if !telemetry::exporting() || !sample::sampled() {
        return;
    }
    let span = Span::current();
    span.record("http.route", route);
    let relative = route.strip_prefix(base_path).unwrap_or("");
    if let Some(op) = operation_id(method, relative) {
        span.record("better_auth.operation_id", op);
    }
}

/// Records the response status on the current request span, when the request is traced.
pub fn record_status(status: u16) {
    if telemetry::exporting() && sample::sampled() {
        Span::current().record("http.response.status_code", status);
    }
}

/// The method as OpenTelemetry names it: a known method, or `_OTHER` (methods are
/// client-chosen tokens; span names must stay few).
fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

/// Better Auth's operation id of an endpoint (its `operationId`, else its OpenAPI
/// `operationId`, else its key), by path under the base path.
fn operation_id(method: &Method, relative: &str) -> Option<&'static str> {
    let post = *method == Method::POST;
    let get = *method == Method::GET;
    Some(match relative {
        "/get-session" if get || post => "getSession",
        "/sign-up/email" if post => "signUpWithEmailAndPassword",
        "/sign-in/email" if post => "signInEmail",
        "/sign-out" if post => "signOut",
        "/list-sessions" if get => "listUserSessions",
        "/revoke-session" if post => "revokeSession",
        "/revoke-sessions" if post => "revokeSessions",
        "/revoke-other-sessions" if post => "revokeOtherSessions",
        "/update-session" if post => "updateSession",
        "/update-user" if post => "updateUser",
        "/change-password" if post => "changePassword",
        "/ok" if get => "ok",
        "/jwks" if get => "getJSONWebKeySet",
        "/token" if get => "getJSONWebToken",
        "/admin/list-user-sessions" if post => "adminListUserSessions",
        "/admin/revoke-user-session" if post => "revokeUserSession",
        "/admin/revoke-user-sessions" if post => "revokeUserSessions",
        "/admin/ban-user" if post => "banUser",
        "/admin/unban-user" if post => "unbanUser",
        "/admin/set-role" if post => "setUserRole",
        "/admin/impersonate-user" if post => "impersonateUser",
        "/admin/stop-impersonating" if post => "stopImpersonating",
        "/multi-session/list-device-sessions" if get => "listDeviceSessions",
        "/multi-session/set-active" if post => "setActiveSession",
        "/multi-session/revoke" if post => "revokeDeviceSession",
        _ => return None,
    })
}
