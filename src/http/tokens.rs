//! Better Auth's jwt plugin routes: `GET {base}/jwks` (the public keys, at
//! `jwks.jwks_path`) and `GET {base}/token` (`{"token": <JWT>}` for the session's user),
//! and the `set-auth-jwt` header of get-session.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::http::extract::{Ctx, Gate};
use crate::http::AppState;
use crate::session::tokens::{JwtError, JwtIssuer};
use crate::session::{Current, SessionService};

/// The jwt plugin as the routes use it.
pub struct JwtRoutes {
    /// Keys and tokens.
    pub issuer: Arc<JwtIssuer>,
    /// Lifetime of `/token` and `set-auth-jwt` tokens (s).
    pub ttl: u64,
    /// Send `set-auth-jwt` on get-session.
    pub header: bool,
    /// `Cache-Control` of the key set.
    pub jwks_cache: HeaderValue,
}

impl From<JwtError> for ApiError {
    fn from(e: JwtError) -> Self {
        match e {
            JwtError::Store(s) => s.into(),
            JwtError::Key(why) => {
                tracing::error!(why, "no JWT could be signed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "JWT_SIGNING_FAILED",
                    "Failed to sign the JWT",
                )
            }
        }
    }
}

/// The user object a token carries: what get-session returns for it.
pub fn user_claims(svc: &SessionService, cur: &Current) -> Map<String, Value> {
    match serde_json::to_value(svc.user_output(&cur.user)) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// The `sid` claim: the hex SHA-256 of the session token, as the revocation feed names it.
pub fn sid(cur: &Current) -> String {
    hex::encode(crate::store::feed::token_hash(&cur.session.token))
}

/// A token for the resolved session, for `audience` (else the configured one).
pub async fn mint_for(
    jwt: &JwtRoutes,
    svc: &SessionService,
    cur: &Current,
    audience: Option<&str>,
    ttl: u64,
) -> Result<Arc<str>, ApiError> {
    let key = crate::session::tokens::MintKey {
        session: &cur.session.token,
        user_version: cur.user.updated_at.timestamp_millis(),
        audience,
        ttl_secs: ttl,
    };
    Ok(jwt
        .issuer
        .mint(&key, || user_claims(svc, cur), || sid(cur))
        .await?)
}

/// Adds `name: value` and names it in `Access-Control-Expose-Headers`, as the plugins do.
pub fn expose(headers: &mut HeaderMap, name: &'static str, value: &str) {
    let Ok(v) = HeaderValue::from_str(value) else {
        return;
    };
    headers.insert(HeaderName::from_static(name), v);
    if !headers.contains_key(header::ACCESS_CONTROL_EXPOSE_HEADERS) {
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(name),
        );
        return;
    }
    let listed: Vec<String> = headers
        .get_all(header::ACCESS_CONTROL_EXPOSE_HEADERS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if listed.iter().any(|s| s.eq_ignore_ascii_case(name)) {
        return;
    }
    let mut all = listed;
    all.push(name.to_owned());
    if let Ok(v) = HeaderValue::from_str(&all.join(", ")) {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
}

/// `GET {base}{jwks_path}`: the published keys.
pub async fn jwks(State(state): State<AppState>) -> Response {
    let Some(jwt) = state.jwt.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match jwt.issuer.key_set().await {
        Ok(set) => {
            let mut res = (
                [(header::CONTENT_TYPE, "application/json")],
                set.to_string(),
            )
                .into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, jwt.jwks_cache.clone());
            res
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET {base}/token`: a JWT for the session's user (401 without a session).
pub async fn token(mut ctx: Ctx) -> Response {
    let state = ctx.state.clone();
    let Some(jwt) = state.jwt.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let result = match ctx.session(Gate::Session).await {
        Ok(cur) => mint_for(jwt, &state.sessions, &cur, None, jwt.ttl)
            .await
            .map(|t| axum::Json(serde_json::json!({ "token": &*t }))),
        Err(e) => Err(e),
    };
    ctx.respond(result)
}
