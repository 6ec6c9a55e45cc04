//! The service API for backends, under `service_api.path_prefix` (on the main listener or
//! on `service_api.listen`): authenticated by `Authorization: Bearer <API key>`, each key
//! limited to its configured operations, every call logged by key name (never the key).
//! Thin: the work is [`crate::session::SessionService`]'s.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::AppState;
use crate::config::{Operation, ServiceApiSettings, MAX_DURATION_SECS};
use crate::error::ApiError;
use crate::js::date::Iso;
use crate::model::Session;
use crate::session::api_keys::ApiKeys;
use crate::session::service::{
    BanRequest, Cursor, MAX_BAN_REASON_CHARS, MAX_HISTORY_PAGE, MAX_PAGE, MAX_USERS_PER_CALL,
};

/// Largest request body the service API reads.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest id (user or session) accepted in a path or body.
pub const MAX_ID_BYTES: usize = 255;

/// The service API's configuration as served.
pub struct ServiceApi {
    keys: ApiKeys,
    prefix: String,
}

impl ServiceApi {
    /// From `service_api.*`; `None` when it is off.
    pub fn new(settings: &ServiceApiSettings) -> Option<Self> {
        settings.enabled.then(|| Self {
            keys: ApiKeys::new(settings),
            prefix: settings.path_prefix.clone(),
        })
    }
}

/// The routes (relative to the prefix), as listed in `ROUTES` with the default prefix.
pub const PATHS: &[(&str, &str)] = &[
    ("GET", "/users/{userId}/sessions"),
    ("DELETE", "/sessions/{sessionId}"),
    ("POST", "/users/revoke-sessions"),
    ("POST", "/users/{userId}/ban"),
    ("POST", "/users/{userId}/unban"),
    ("GET", "/users/{userId}/history"),
];

/// The service API's router, `None` when it is off.
pub fn router(state: AppState) -> Option<Router> {
    let api = state.service_api.clone()?;
    let p = &api.prefix;
    let r = Router::new()
        .route(&format!("{p}/users/{{userId}}/sessions"), get(list))
        .route(&format!("{p}/sessions/{{sessionId}}"), delete(revoke_one))
        .route(&format!("{p}/users/revoke-sessions"), post(revoke_users))
        .route(&format!("{p}/users/{{userId}}/ban"), post(ban))
        .route(&format!("{p}/users/{{userId}}/unban"), post(unban))
        .route(&format!("{p}/users/{{userId}}/history"), get(history))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard));
    // Its calls are sampled as requests (their store spans are exported or not as one).
    let r = if crate::telemetry::exporting() {
        r.layer(super::trace::SampleLayer)
    } else {
        r
    };
    Some(r.with_state(state))
}

/// Around every call: the request time limit, and no caching of the answers.
async fn guard(
    State(state): State<AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let mut res = match tokio::time::timeout(state.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "REQUEST_TIMEOUT",
            "The request took too long. Try again later.",
        )
        .into_response(),
    };
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

const UNAUTHORIZED: ApiError = ApiError::new(
    StatusCode::UNAUTHORIZED,
    "INVALID_API_KEY",
    "A valid API key is required",
);

/// The calling key if it may call `op`: 401 for a missing or unknown key, 403 for one
/// without the operation. Logs the call by key name.
fn authorize(state: &AppState, headers: &HeaderMap, op: Operation) -> Result<(), ApiError> {
    let Some(api) = state.service_api.as_ref() else {
        return Err(UNAUTHORIZED);
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, key) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        });
    let Some(presented) = presented else {
        tracing::info!(operation = op.as_str(), "service api: no API key");
        return Err(UNAUTHORIZED);
    };
    let Some(holder) = api.keys.identify(presented) else {
        tracing::info!(operation = op.as_str(), "service api: unknown API key");
        return Err(UNAUTHORIZED);
    };
    if !holder.may(op) {
        tracing::info!(
            key = holder.name,
            operation = op.as_str(),
            "service api: operation not allowed"
        );
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "OPERATION_NOT_ALLOWED",
            "This API key may not perform this operation",
        ));
    }
    tracing::info!(
        key = holder.name,
        operation = op.as_str(),
        "service api call"
    );
    Ok(())
}

/// A path parameter, or 400 when it does not decode.
fn param(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    p.map(|Path(v)| v)
        .map_err(|_| bad("INVALID_ID", "The id in the path does not decode".into()))
}

fn bad(code: &'static str, message: String) -> ApiError {
    ApiError::with_message(StatusCode::BAD_REQUEST, code, message)
}

fn check_id(what: &str, id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES || id.contains('\0') {
        return Err(bad(
            "INVALID_ID",
            format!("{what} must be 1 to {MAX_ID_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Reads a JSON body of at most [`MAX_BODY_BYTES`] (an empty body is `{}`).
async fn read_body<T: serde::de::DeserializeOwned>(req: Request) -> Result<T, ApiError> {
    let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::with_message(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BODY_TOO_LARGE",
                format!("The body exceeds {MAX_BODY_BYTES} bytes"),
            )
        })?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(bytes)
        .map_err(|e| bad("INVALID_REQUEST_BODY", format!("Invalid body: {e}")))
}

fn session_json(s: &Session) -> Value {
    json!({
        "id": s.id,
        "userId": s.user_id,
        "createdAt": Iso(&s.created_at).to_string(),
        "updatedAt": Iso(&s.updated_at).to_string(),
        "expiresAt": Iso(&s.expires_at).to_string(),
        "ipAddress": s.ip_address,
        "userAgent": s.user_agent,
        "impersonatedBy": s.extra.get("impersonatedBy").cloned().unwrap_or(Value::Null),
    })
}

#[derive(Deserialize)]
struct Paging {
    limit: Option<String>,
    cursor: Option<String>,
}

/// A page size: `default` when absent, else a whole number from 1 to `max`.
fn page_limit(limit: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    match limit {
        None => Ok(default),
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(bad(
                "INVALID_LIMIT",
                format!("limit must be a whole number from 1 to {max}"),
            )),
        },
    }
}

/// `GET {prefix}/users/{userId}/sessions?limit=&cursor=`: a page of the user's live
/// sessions, oldest first, without their tokens.
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    user_id: Result<Path<String>, PathRejection>,
    paging: Result<Query<Paging>, QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Operation::SessionsList)?;
    let user_id = param(user_id)?;
    check_id("userId", &user_id)?;
    let Query(paging) = paging.map_err(|_| bad("INVALID_QUERY", "Invalid query".into()))?;
    let limit = page_limit(paging.limit.as_deref(), MAX_PAGE, MAX_PAGE)?;
    let cursor = match paging.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => {
            Some(Cursor::decode(c).ok_or_else(|| bad("INVALID_CURSOR", "Invalid cursor".into()))?)
        }
    };
    let (page, next) = state
        .sessions
        .page_user_sessions(&user_id, limit, cursor.as_ref())
        .await?;
    let sessions: Vec<Value> = page.iter().map(session_json).collect();
    Ok(axum::Json(json!({
        "sessions": sessions,
        "nextCursor": next.map(|c| c.encode()),
    }))
    .into_response())
}

/// `GET {prefix}/users/{userId}/history?limit=&cursor=`: a page of the user's session
/// history (the audit trail), newest first.
async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    user_id: Result<Path<String>, PathRejection>,
    paging: Result<Query<Paging>, QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Operation::SessionsHistory)?;
    let user_id = param(user_id)?;
    check_id("userId", &user_id)?;
    if !state.sessions.audit_on() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "AUDIT_TRAIL_OFF",
            "The audit trail is off (session.audit.keep_days)",
        ));
    }
    let Query(paging) = paging.map_err(|_| bad("INVALID_QUERY", "Invalid query".into()))?;
    let limit = page_limit(paging.limit.as_deref(), 50, MAX_HISTORY_PAGE)?;
    let before = match paging.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            c.parse::<i64>()
                .ok()
                .filter(|n| *n > 0 && c.len() <= 20)
                .ok_or_else(|| bad("INVALID_CURSOR", "Invalid cursor".into()))?,
        ),
    };
    let (events, next) = state.sessions.user_history(&user_id, limit, before).await?;
    Ok(axum::Json(json!({
        "events": events,
        "nextCursor": next.map(|n| n.to_string()),
    }))
    .into_response())
}

/// `DELETE {prefix}/sessions/{sessionId}`: 404 `SESSION_NOT_FOUND` when no live session
/// has that id.
async fn revoke_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Operation::SessionsRevoke)?;
    let id = param(id)?;
    check_id("sessionId", &id)?;
    if !state.sessions.revoke_session_by_id(&id).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "SESSION_NOT_FOUND",
            "Session not found",
        ));
    }
    Ok(axum::Json(json!({ "success": true })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserIds {
    #[serde(rename = "userIds")]
    user_ids: Vec<String>,
}

/// `POST {prefix}/users/revoke-sessions {userIds}`: ends every session of each user.
async fn revoke_users(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Operation::UsersRevokeSessions)?;
    let body: UserIds = read_body(req).await?;
    if body.user_ids.is_empty() || body.user_ids.len() > MAX_USERS_PER_CALL {
        return Err(bad(
            "INVALID_USER_IDS",
            format!("userIds must hold 1 to {MAX_USERS_PER_CALL} ids"),
        ));
    }
    for u in &body.user_ids {
        check_id("userIds[]", u)?;
    }
    let revoked = state.sessions.revoke_users_sessions(&body.user_ids).await?;
    Ok(axum::Json(json!({ "success": true, "revoked": revoked })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BanBody {
    reason: Option<String>,
    #[serde(rename = "expiresIn")]
    expires_in: Option<u64>,
}

fn user_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "USER_NOT_FOUND", "User not found")
}

/// `POST {prefix}/users/{userId}/ban {reason?, expiresIn?}`: bans and ends every session.
async fn ban(
    State(state): State<AppState>,
    headers: HeaderMap,
    user_id: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Operation::UsersBan)?;
    let user_id = param(user_id)?;
    check_id("userId", &user_id)?;
    let body: BanBody = read_body(req).await?;
    if let Some(r) = &body.reason {
        if let Some(problem) = crate::session::limits::text_problem(r, MAX_BAN_REASON_CHARS) {
            return Err(bad("INVALID_REASON", format!("reason: {problem}")));
        }
    }
    if body
        .expires_in
        .is_some_and(|s| s == 0 || s > MAX_DURATION_SECS)
    {
        return Err(bad(
            "INVALID_EXPIRES_IN",
            format!("expiresIn must be from 1 to {MAX_DURATION_SECS} seconds"),
        ));
    }
    let ban = BanRequest {
        reason: body.reason,
        expires_in: body.expires_in,
    };
    match state.sessions.api_ban_user(&user_id, &ban).await? {
        Some(revoked) => {
            Ok(axum::Json(json!({ "success": true, "revoked": revoked })).into_response())
        }
        None => Err(user_not_found()),
    }
}

/// `POST {prefix}/users/{userId}/unban`.
async fn unban(
    State(state): State<AppState>,
    headers: HeaderMap,
    user_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Operation::UsersBan)?;
    let user_id = param(user_id)?;
    check_id("userId", &user_id)?;
    if !state.sessions.api_unban_user(&user_id).await? {
        return Err(user_not_found());
    }
    Ok(axum::Json(json!({ "success": true })).into_response())
}
