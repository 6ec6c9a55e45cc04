//! Better Auth's multi-session plugin (`plugins.multi_session`): `GET
//! /multi-session/list-device-sessions`, `POST /multi-session/set-active` and `POST
//! /multi-session/revoke`, and the steps sign-in, sign-up and sign-out add
//! ([`after_new_session`], [`after_sign_out`]). The rules live in the session service.

use axum::response::Response;
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::http::extract::{json_response, Body, Ctx, Fields, Gate};

/// The body's `sessionToken`, required.
fn session_token_input(body: &Body<false>) -> Result<String, ApiError> {
    let mut f = Fields::of(body)?;
    let token = f.string("sessionToken");
    f.finish()?;
    Ok(token)
}

/// The live sessions of the browser's `_multi-` cookies, one per user:
/// `[{session, user}]` (`[]` without any).
pub async fn list_device_sessions(ctx: Ctx) -> Response {
    let result = async {
        let svc = &ctx.state.sessions;
        let found = svc.device_sessions(&ctx.credential).await?;
        let out: Vec<_> = found
            .iter()
            .map(|(s, u)| json!({ "session": svc.output(s), "user": svc.user_output(u) }))
            .collect();
        Ok(json_response(&out, 64 + 600 * out.len()))
    }
    .await;
    ctx.respond(result)
}

/// Makes the session of the browser's `_multi-` cookie for `sessionToken` the active one:
/// `{session, user}`, or 401 `INVALID_SESSION_TOKEN`.
pub async fn set_active(mut ctx: Ctx, body: Body<false>) -> Response {
    let result = async {
        let token = session_token_input(&body)?;
        let svc = ctx.state.sessions.clone();
        let (s, u) = svc
            .set_active(&token, &ctx.credential, &mut ctx.out)
            .await?;
        Ok(Json(
            json!({ "session": svc.output(&s), "user": svc.user_output(&u) }),
        ))
    }
    .await;
    ctx.respond(result)
}

/// Ends the session of the browser's `_multi-` cookie for `sessionToken` (the caller must
/// be signed in): `{status: true}`, or 401 `INVALID_SESSION_TOKEN`.
pub async fn revoke(mut ctx: Ctx, body: Body<false>) -> Response {
    let result = async {
        let token = session_token_input(&body)?;
        let cur = ctx.session(Gate::Session).await?;
        let svc = ctx.state.sessions.clone();
        svc.revoke_device_session(&cur, &token, &ctx.credential, &mut ctx.out)
            .await?;
        Ok(Json(json!({ "status": true })))
    }
    .await;
    ctx.respond(result)
}

/// After a sign-in or sign-up that made session `token` of `user_id`: its `_multi-`
/// cookie, as the plugin's after hook sets it (nothing when the plugin is off).
pub async fn after_new_session(ctx: &mut Ctx, token: &str, user_id: &str) -> Result<(), ApiError> {
    let svc = ctx.state.sessions.clone();
    svc.multi_after_new_session(token, user_id, &ctx.credential, &mut ctx.out)
        .await?;
    Ok(())
}

/// After any other answer of a signed-in user (`user_id`) that may set the session cookie:
/// the `_multi-` cookie of that session when the browser has none yet (nothing when the
/// plugin is off or no session cookie is set).
pub async fn after_session_cookie(ctx: &mut Ctx, user_id: &str) -> Result<(), ApiError> {
    let svc = ctx.state.sessions.clone();
    svc.multi_after_session_cookie(user_id, &ctx.credential, &mut ctx.out)
        .await?;
    Ok(())
}

/// After a sign-out: every session of the browser's `_multi-` cookies ends (nothing when
/// the plugin is off).
pub async fn after_sign_out(ctx: &mut Ctx) -> Result<(), ApiError> {
    let svc = ctx.state.sessions.clone();
    svc.multi_sign_out(&ctx.credential, &mut ctx.out).await?;
    Ok(())
}
