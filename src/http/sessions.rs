//! `GET|POST /get-session`, `GET /list-sessions`, `POST /revoke-session`,
//! `POST /revoke-sessions`, `POST /revoke-other-sessions`, `POST /update-session`.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::{codes, ApiError};
use crate::http::extract::{json_bytes, json_response, Body, Ctx, Fields, Gate};
use crate::http::multi_session;
use crate::session::ResolveOptions;

async fn get_session_with(mut ctx: Ctx, defer_read_only: bool) -> Response {
    let opts = ResolveOptions {
        disable_refresh: ctx.disable_refresh,
        disable_cookie_cache: ctx.disable_cookie_cache,
        defer_read_only,
    };
    let svc = ctx.state.sessions.clone();
    let mut resolved = svc
        .resolve(&ctx.credential, opts, &mut ctx.out)
        .await
        .map_err(ApiError::from);
    // The multi-session hook, only with the plugin on: no clone or call on every read.
    if let (Ok(Some(cur)), Some(_)) = (&resolved, svc.multi_session_max()) {
        let user = cur.user.clone();
        if let Err(e) = multi_session::after_session_cookie(&mut ctx, &user.id).await {
            resolved = Err(e);
        }
    }
    // The jwt plugin's after hook: a token for the session's user in `set-auth-jwt`.
    let jwt = match (&resolved, ctx.state.jwt.as_ref()) {
        (Ok(Some(cur)), Some(j)) if j.header => {
            // Unlike Better Auth (a 500), a token that cannot be made (keys unreadable after
            // a secret was retired, the table unreachable) leaves the session answer standing
            // without the header: every session read must not fail for it. `/token` fails.
            match crate::http::tokens::mint_for(j, &svc, cur, None, j.ttl).await {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(
                        code = e.code.unwrap_or(""),
                        "get-session answered without set-auth-jwt"
                    );
                    None
                }
            }
        }
        _ => None,
    };
    // Serialised straight from the session (no intermediate JSON tree), once per cached
    // cookie value.
    let result = resolved.map(|cur| match cur.as_ref() {
        Some(c) => json_bytes(svc.session_answer(c)),
        None => json_response(&serde_json::Value::Null, 8),
    });
    let mut res = ctx.respond(result);
    if let Some(t) = jwt {
        crate::http::tokens::expose(res.headers_mut(), "set-auth-jwt", &t);
    }
    no_store(&mut res);
    res
}

/// `get-session` answers are never cached (Better Auth's headers).
fn no_store(res: &mut Response) {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// The caller's `{session, user}` or `null`; slides the expiry when due (in deferred
/// mode it only reports `needsRefresh`).
pub async fn get_session(ctx: Ctx) -> Response {
    let defer = ctx.state.sessions.policy().defer_refresh;
    get_session_with(ctx, defer).await
}

/// The deferred refresh: as `GET` without deferral. 405 unless deferred refresh is on. It
/// reads no body, but a `callbackURL` in its query is checked as on every POST.
pub async fn post_get_session(ctx: Ctx, uri: axum::http::Uri) -> Response {
    if let Err(e) = crate::http::origin::check_redirect_targets(&ctx.state, None, uri.query()) {
        return e.into_response();
    }
    if !ctx.state.sessions.policy().defer_refresh {
        let mut res = codes::METHOD_NOT_ALLOWED_DEFER.into_response();
        no_store(&mut res);
        return res;
    }
    get_session_with(ctx, false).await
}

/// The user's live sessions (fresh session required).
pub async fn list_sessions(mut ctx: Ctx) -> Response {
    let result = async {
        let cur = ctx.session(Gate::Fresh).await?;
        let svc = &ctx.state.sessions;
        let list = svc.list_sessions(&cur).await?;
        // Serialised straight from the sessions: a user may have thousands, and a JSON
        // tree would copy each of them again.
        let out: Vec<_> = list.iter().map(|s| svc.listed(s, &cur)).collect();
        Ok(json_response(&out, 64 + 400 * out.len()))
    }
    .await;
    ctx.respond(result)
}

/// Which session revoke-session ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeTarget {
    /// By token (Better Auth's `{"token"}`).
    Token(String),
    /// By id (sessiond's `{"id"}`, so that a device list revokes what it shows without
    /// handling tokens).
    Id(String),
}

/// Revoke-session's body, validated.
pub fn revoke_session_input(body: &Body<false>) -> Result<RevokeTarget, ApiError> {
    let mut f = Fields::of(body)?;
    let by_id = match f.object().get("token") {
        None => f.opt_string("id"),
        Some(_) => None,
    };
    let token = if by_id.is_some() {
        String::new()
    } else {
        f.string("token")
    };
    f.finish()?;
    Ok(by_id.map_or(RevokeTarget::Token(token), RevokeTarget::Id))
}

/// Revokes one of the user's sessions by token (or, sessiond's addition, by id):
/// `{status: true}`.
pub async fn revoke_session(mut ctx: Ctx, body: Body<false>) -> Response {
    let result = async {
        let target = revoke_session_input(&body)?;
        let cur = ctx.session(Gate::Sensitive).await?;
        let svc = ctx.state.sessions.clone();
        let token = match target {
            RevokeTarget::Id(id) => svc.token_of(&cur, &id).await?,
            RevokeTarget::Token(token) => Some(token),
        };
        if let Some(token) = token {
            svc.revoke_session(&cur, &token, &ctx.credential, &mut ctx.out)
                .await?;
        }
        Ok(Json(json!({ "status": true })))
    }
    .await;
    ctx.respond(result)
}

/// Revokes every session of the user: `{status: true}`. The body, which nothing reads, is
/// parsed all the same (a malformed one is refused, as Better Auth's router refuses it).
pub async fn revoke_sessions(mut ctx: Ctx, _: Body<false>) -> Response {
    let result = async {
        let cur = ctx.session(Gate::Sensitive).await?;
        let svc = ctx.state.sessions.clone();
        svc.revoke_sessions(&cur, &ctx.credential, &mut ctx.out)
            .await?;
        Ok(Json(json!({ "status": true })))
    }
    .await;
    ctx.respond(result)
}

/// Revokes every session of the user but the caller's: `{status: true}` (the body is
/// parsed as revoke-sessions').
pub async fn revoke_other_sessions(mut ctx: Ctx, _: Body<false>) -> Response {
    let result = async {
        let cur = ctx.session(Gate::Sensitive).await?;
        ctx.state.sessions.revoke_other_sessions(&cur).await?;
        Ok(Json(json!({ "status": true })))
    }
    .await;
    ctx.respond(result)
}

/// Sets additional session fields: `{session}`.
pub async fn update_session(mut ctx: Ctx, body: Body<false>) -> Response {
    let result: Result<_, ApiError> = async {
        let record = Fields::of_record(&body)?.object();
        let coerced;
        let fields = if ctx.state.coerce_field_types {
            coerced = Fields::coerce_to_text(record, &ctx.state.sessions.text_fields());
            &coerced
        } else {
            record
        };
        let cur = ctx.session(Gate::Session).await?;
        let svc = ctx.state.sessions.clone();
        let s = svc
            .update_session(&cur, fields, &ctx.credential, &mut ctx.out)
            .await?;
        multi_session::after_session_cookie(&mut ctx, &cur.user.id).await?;
        Ok(Json(json!({ "session": svc.output(&s) })))
    }
    .await;
    ctx.respond(result)
}
