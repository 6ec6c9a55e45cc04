//! Request inputs with Better Auth's rules: bodies (JSON, and forms where allowed), their
//! zod-style validation messages, the `get-session` query flags, and the per-request
//! context that carries cookies in and `Set-Cookie` lines out.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, IntoResponseParts, Response, ResponseParts};
use serde_json::{Map, Value};

use crate::error::{codes, ApiError};
use crate::http::AppState;
use crate::session::cookies::{token_first, CookieOp, Credential, RequestCookies};
use crate::session::service::json_type;
use crate::session::{ClientInfo, Current, ResolveOptions};

pub use super::json::{json_bytes, json_response};

/// A request body: `None` when there is none (or, as in Better Auth on Node, when it came
/// without a `Content-Type`). `FORM` also admits `application/x-www-form-urlencoded`.
/// Extracted, it has passed Better Auth's router-wide check of redirect targets
/// ([`crate::http::origin::check_redirect_targets`]), which comes before a route's own.
pub struct Body<const FORM: bool> {
    /// The parsed body.
    pub value: Option<Value>,
    /// Whether it came as a form (all values strings).
    pub form: bool,
}

impl<const FORM: bool> FromRequest<AppState> for Body<FORM> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let query = req.uri().query().map(str::to_owned);
        let bytes = read_body(req, state.body_limit, state.body_timeout)
            .await
            .map_err(IntoResponse::into_response)?;
        let body = Self::parse(ct.as_deref(), &bytes).map_err(IntoResponse::into_response)?;
        crate::http::origin::check_redirect_targets(state, body.value.as_ref(), query.as_deref())
            .map_err(IntoResponse::into_response)?;
        Ok(body)
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        "Request body is too large",
    )
}

/// Reads a request body into one buffer, bounded three ways: a declared `Content-Length`
/// over `limit` is refused before anything is read (413), the bytes received may not
/// exceed `limit` (413), and the whole body must arrive within `timeout` of the head
/// (408). Each received piece is copied and let go at once, so that a body trickled a
/// byte at a time costs its bytes, not a network buffer per byte.
async fn read_body(
    req: Request,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Vec<u8>, ApiError> {
    use http_body_util::BodyExt;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let conn = req.extensions().get::<super::server::ConnHandle>().cloned();
    let mut body = req.into_body();
    let mut buf = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "BAD_REQUEST",
                    "Could not read the request body",
                )
            })?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(too_large());
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(())
    };
    // While the body is awaited the connection may be evicted at the cap, as one still
    // sending its head: bodies sent slowly must not hold every connection.
    if let Some(c) = &conn {
        c.receiving_body();
    }
    let read = tokio::time::timeout(timeout, read).await;
    if let Some(c) = &conn {
        c.body_received();
    }
    match read {
        Ok(Ok(())) => Ok(buf),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "REQUEST_TIMEOUT",
            "The request body took too long to arrive",
        )),
    }
}

impl<const FORM: bool> Body<FORM> {
    /// Reads `bytes` as the extractor does, given the request's `Content-Type`: JSON,
    /// forms where `FORM` allows them, nothing when empty or untyped (as Better Auth on
    /// Node), 415 for other types, 400 for malformed JSON.
    pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Self, ApiError> {
        let none = Self {
            value: None,
            form: false,
        };
        let Some(ct) = content_type.filter(|_| !bytes.is_empty()) else {
            return Ok(none);
        };
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media == "application/json" {
            let v: Value = serde_json::from_slice(bytes).map_err(|_| codes::INVALID_JSON)?;
            return Ok(Self {
                value: Some(v),
                form: false,
            });
        }
        if FORM && media == "application/x-www-form-urlencoded" {
            let mut m = Map::new();
            for (k, v) in url::form_urlencoded::parse(bytes) {
                m.entry(k.into_owned())
                    .or_insert(Value::String(v.into_owned()));
            }
            return Ok(Self {
                value: Some(Value::Object(m)),
                form: true,
            });
        }
        let allowed = if FORM {
            "application/x-www-form-urlencoded, application/json"
        } else {
            "application/json"
        };
        Err(ApiError::with_message(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            format!("Content-Type \"{ct}\" is not allowed. Allowed types: {allowed}"),
        ))
    }
}

/// The error Better Auth's router gives a POST's body before anything else looks at the
/// request (413, 408, 415, malformed JSON), if any; routes that read no body have none.
pub async fn unreadable_body(req: Request, state: &AppState) -> Option<ApiError> {
    let path = req.uri().path();
    let rel = path.strip_prefix(&*state.base_path).unwrap_or(path);
    let form = rel == "/sign-in/email" || rel == "/sign-up/email";
    if rel == "/get-session" {
        return None;
    }
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = match read_body(req, state.body_limit, state.body_timeout).await {
        Ok(b) => b,
        Err(e) => return Some(e),
    };
    if form {
        Body::<true>::parse(ct.as_deref(), &bytes).err()
    } else {
        Body::<false>::parse(ct.as_deref(), &bytes).err()
    }
}

fn received(v: Option<&Value>) -> &'static str {
    v.map_or("undefined", json_type)
}

/// Validates body fields, collecting zod-style issues
/// (`[body.email] Invalid input: expected string, received undefined`).
pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
    form: bool,
    issues: Vec<String>,
}

impl<'a> Fields<'a> {
    /// Starts validation of a body whose schema is the given zod types (`object`,
    /// `record`): anything but a JSON object fails each of them, and zod reports each.
    fn start<const F: bool>(body: &'a Body<F>, expected: &[&str]) -> Result<Self, ApiError> {
        match &body.value {
            Some(Value::Object(obj)) => Ok(Self {
                obj,
                form: body.form,
                issues: Vec::new(),
            }),
            other => {
                let got = received(other.as_ref());
                let issues: Vec<String> = expected
                    .iter()
                    .map(|e| format!("[body] Invalid input: expected {e}, received {got}"))
                    .collect();
                Err(ApiError::validation(issues.join("; ")))
            }
        }
    }

    /// Starts validation of a body that must be an object.
    pub fn of<const F: bool>(body: &'a Body<F>) -> Result<Self, ApiError> {
        Self::start(body, &["object"])
    }

    /// The underlying object.
    pub fn object(&self) -> &'a Map<String, Value> {
        self.obj
    }

    fn issue(&mut self, key: &str, msg: String) {
        self.issues.push(format!("[body.{key}] {msg}"));
    }

    /// A required string.
    pub fn string(&mut self, key: &str) -> String {
        match self.obj.get(key) {
            Some(Value::String(s)) => s.clone(),
            other => {
                let msg = format!(
                    "Invalid input: expected string, received {}",
                    received(other)
                );
                self.issue(key, msg);
                String::new()
            }
        }
    }

    /// A required non-empty string.
    pub fn non_empty(&mut self, key: &str) -> String {
        let s = self.string(key);
        // zod's length check also runs on an empty array (after the type issue).
        let what = match self.obj.get(key) {
            Some(Value::String(v)) if v.is_empty() => "string to have >=1 characters",
            Some(Value::Array(v)) if v.is_empty() => "array to have >=1 items",
            _ => return s,
        };
        self.issue(key, format!("Too small: expected {what}"));
        s
    }

    /// Starts validation of an already extracted object.
    pub fn of_map(obj: &'a Map<String, Value>) -> Self {
        Self {
            obj,
            form: false,
            issues: Vec::new(),
        }
    }

    /// Starts validation of a body that must be a record (`update-user`, `update-session`).
    pub fn of_record<const F: bool>(body: &'a Body<F>) -> Result<Self, ApiError> {
        Self::start(body, &["record"])
    }

    /// Starts validation of sign-up's body, whose schema is an object and a record.
    pub fn of_object_record<const F: bool>(body: &'a Body<F>) -> Result<Self, ApiError> {
        Self::start(body, &["object", "record"])
    }

    /// An optional string (`null` is refused, as zod's `optional()` does).
    pub fn opt_string(&mut self, key: &str) -> Option<String> {
        match self.obj.get(key) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                let msg = format!(
                    "Invalid input: expected string, received {}",
                    json_type(other)
                );
                self.issue(key, msg);
                None
            }
        }
    }

    /// Replaces non-null, non-string values of `keys` by their text as node-postgres sends
    /// it, which is what Better Auth on PostgreSQL ends up storing.
    pub fn coerce_to_text(obj: &Map<String, Value>, keys: &[&str]) -> Map<String, Value> {
        let mut out = obj.clone();
        for k in keys {
            if let Some(v) = out.get_mut(*k) {
                if let Some(text) = crate::js::pg::param_text(v).filter(|_| !v.is_string()) {
                    *v = Value::String(text);
                }
            }
        }
        out
    }

    /// An optional string that may be `null` (`Some(None)`).
    pub fn nullable_string(&mut self, key: &str) -> Option<Option<String>> {
        match self.obj.get(key) {
            Some(Value::Null) => Some(None),
            _ => self.opt_string(key).map(Some),
        }
    }

    /// An optional boolean; forms send `"true"`/`"false"`.
    pub fn opt_bool(&mut self, key: &str) -> Option<bool> {
        match self.obj.get(key) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) if self.form && (s == "true" || s == "false") => {
                Some(s == "true")
            }
            Some(other) => {
                let msg = format!(
                    "Invalid input: expected boolean, received {}",
                    json_type(other)
                );
                self.issue(key, msg);
                None
            }
        }
    }

    /// Records an issue when `value` cannot be stored: a NUL, or more than `max_chars`
    /// characters ([`crate::session::limits`]).
    pub fn storable(&mut self, key: &str, value: Option<&str>, max_chars: usize) {
        if let Some(problem) =
            value.and_then(|v| crate::session::limits::text_problem(v, max_chars))
        {
            self.issue(key, problem);
        }
    }

    /// Records a custom issue.
    pub fn fail(&mut self, key: &str, msg: &str) {
        self.issue(key, msg.to_owned());
    }

    /// Ends validation: 400 `VALIDATION_ERROR` listing every issue, if any.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.issues.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.issues.join("; ")))
        }
    }
}

/// zod 4's email check (`z.email()`), which both sign-up and sign-in apply.
pub fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && !local.starts_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_'+-.".contains(&b))
        && local
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b"_+-".contains(&b));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().take(labels.len() - 1).all(|l| {
            l.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
    local_ok && domain_ok
}

/// `Set-Cookie` lines to send, one header each (never comma-joined).
#[derive(Debug, Default)]
pub struct SetCookies(pub Vec<String>);

/// `Set-Cookie` lines in one response at most. The session service writes a bounded
/// number by construction (three cookies and at most eight cache chunks, set or expired);
/// this is the last line of defence, keeping the latest lines, which win in browsers.
pub const MAX_SET_COOKIES: usize = 32;

impl IntoResponseParts for SetCookies {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        let skip = self.0.len().saturating_sub(MAX_SET_COOKIES);
        if skip > 0 {
            tracing::warn!(
                lines = self.0.len(),
                "Set-Cookie lines over the cap were dropped"
            );
        }
        for c in self.0.into_iter().skip(skip) {
            if let Ok(v) = HeaderValue::from_str(&c) {
                res.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        Ok(res)
    }
}

/// How a route needs its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Any valid session (Better Auth's `sessionMiddleware`).
    Session,
    /// Read from the store, never a cache (`sensitiveSessionMiddleware`).
    Sensitive,
    /// A session younger than `fresh_age` (`freshSessionMiddleware`).
    Fresh,
}

/// Address and user agent of the client, for the routes that create sessions (only they
/// read these headers).
pub struct Client(pub ClientInfo);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(Self(state.ip.client_info(&parts.headers, peer)))
    }
}

/// Per-request context: the service, the request's cookies, the query flags,
/// and the `Set-Cookie` lines collected while handling it.
pub struct Ctx {
    /// The application state.
    pub state: AppState,
    /// What the request presents as its session: its cookies, or a bearer token.
    pub credential: Credential,
    /// `?disableRefresh` (any non-empty value).
    pub disable_refresh: bool,
    /// `?disableCookieCache` (any non-empty value).
    pub disable_cookie_cache: bool,
    /// Cookie operations for the response.
    pub out: Vec<CookieOp>,
    query: Option<String>,
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let mut joined = String::new();
        for v in parts.headers.get_all(header::COOKIE) {
            if let Ok(s) = v.to_str() {
                if !joined.is_empty() {
                    joined.push_str("; ");
                }
                joined.push_str(s);
            }
        }
        let joined = crate::http::bearer::cookie_header(state, parts, joined);
        let (mut disable_refresh, mut disable_cookie_cache) = (false, false);
        if let Some(q) = parts.uri.query() {
            for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
                // z.coerce.boolean(): any non-empty string, "false" included, is true.
                match k.as_ref() {
                    "disableRefresh" => disable_refresh = !v.is_empty(),
                    "disableCookieCache" => disable_cookie_cache = !v.is_empty(),
                    _ => {}
                }
            }
        }
        Ok(Self {
            state: state.clone(),
            credential: Credential::Cookies(RequestCookies::new(joined)),
            disable_refresh,
            disable_cookie_cache,
            out: Vec::new(),
            query: parts.uri.query().map(String::from),
        })
    }
}

impl Ctx {
    /// The first value of a query parameter.
    pub fn query(&self, name: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// Uses `Authorization: Bearer <token>` as the session cookie when the request has
    /// none (Better Auth's bearer plugin): a signed `token.signature` is verified as the
    /// cookie would be; a bare token is the credential itself and is signed here.
    pub fn adopt_bearer(&mut self, authorization: Option<&str>) {
        let svc = &self.state.sessions;
        let name = &svc.cookie_names().token;
        if self.credential.cookies().has(name) {
            return;
        }
        let Some(token) = authorization
            // The scheme in any case, as the bearer plugin reads it.
            .and_then(|v| {
                v.get(..7)
                    .filter(|s| s.eq_ignore_ascii_case("bearer "))
                    .and_then(|_| v.get(7..))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return;
        };
        let signed = if token.contains('.') {
            token.to_owned()
        } else {
            svc.sign_token(token)
        };
        self.credential = Credential::Bearer(signed);
    }

    /// The session a gated route requires: 401 `UNAUTHORIZED` without one, 403
    /// `SESSION_NOT_FRESH` for a stale one on fresh-gated routes. As in Better Auth, the
    /// lookup behaves as an internal `GET /get-session` (so it never refreshes in deferred
    /// mode) and its own errors mean "no session" — except a store failure (5xx): a
    /// signed-in user is not told to sign in again because the store failed.
    pub async fn session(&mut self, gate: Gate) -> Result<Current, ApiError> {
        let svc = &self.state.sessions;
        let opts = ResolveOptions {
            disable_refresh: self.disable_refresh,
            disable_cookie_cache: self.disable_cookie_cache
                || (gate == Gate::Sensitive && !svc.cache_is_authoritative()),
            defer_read_only: svc.policy().defer_refresh,
        };
        let cur = match svc.resolve(&self.credential, opts, &mut self.out).await {
            Ok(Some(cur)) => cur,
            Ok(None) => return Err(codes::UNAUTHORIZED),
            Err(e) if e.is_fault() => return Err(e.into()),
            Err(_) => return Err(codes::UNAUTHORIZED),
        };
        if gate == Gate::Fresh {
            svc.require_fresh(&cur)?;
        }
        Ok(cur)
    }

    /// The collected cookie operations as `Set-Cookie` lines (taken: the list is empty after).
    pub fn take_cookies(&mut self) -> SetCookies {
        let ops = std::mem::take(&mut self.out);
        SetCookies(self.state.cookie_writer.render(&ops))
    }

    /// The collected cookies for a proxy that passes on one line (see [`token_first`]).
    pub fn take_cookies_token_first(&mut self) -> SetCookies {
        self.out = token_first(std::mem::take(&mut self.out));
        self.take_cookies()
    }

    /// Sends `result` with the collected cookies, on success and on error alike.
    pub fn respond<T: IntoResponse>(mut self, result: Result<T, ApiError>) -> Response {
        (self.take_cookies(), result).into_response()
    }
}
