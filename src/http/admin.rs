//! The admin plugin's session routes under `/admin/*` (`plugins.admin.enabled`): thin
//! handlers over [`crate::session::service::admin`]. Bodies are validated as Better Auth's
//! zod schemas do (ids with `z.coerce.string()`), then the caller's session is read from
//! the store (never a cookie cache), then its permission is checked.

use axum::response::Response;
use axum::Json;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::http::extract::{json_response, Body, Client, Ctx, Fields, Gate};
use crate::session::limits::MAX_FIELD_CHARS;
use crate::session::service::admin::BanInput;

/// JavaScript's `String(v)`, which `z.coerce.string()` applies: every value is a string.
fn coerced(obj: &Map<String, Value>, key: &str) -> String {
    match obj.get(key) {
        None => "undefined".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) => "null".into(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        // `[].join(",")`: null items are empty.
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::Null => String::new(),
                _ => coerced(&wrap(v), "v"),
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(Value::Object(_)) => "[object Object]".into(),
    }
}

fn wrap(v: &Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("v".into(), v.clone());
    m
}

/// A `z.coerce.string()` field: any value but a missing one, which zod refuses.
fn coerced_field(f: &mut Fields<'_>, key: &str) -> String {
    if !f.object().contains_key(key) {
        f.fail(
            key,
            "Invalid input: expected nonoptional, received undefined",
        );
    }
    coerced(f.object(), key)
}

/// A body's `{userId}`.
pub fn user_id_input(body: &Body<false>) -> Result<String, ApiError> {
    let mut f = Fields::of(body)?;
    let id = coerced_field(&mut f, "userId");
    f.finish()?;
    Ok(id)
}

/// Ban-user's body: `{userId, banReason?, banExpiresIn?}`.
pub fn ban_input(body: &Body<false>) -> Result<(String, BanInput), ApiError> {
    let mut f = Fields::of(body)?;
    let id = coerced_field(&mut f, "userId");
    let reason = f.opt_string("banReason");
    f.storable("banReason", reason.as_deref(), MAX_FIELD_CHARS);
    let expires_in = match f.object().get("banExpiresIn") {
        None => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(other) => {
            let msg = format!(
                "Invalid input: expected number, received {}",
                crate::session::service::json_type(other)
            );
            f.fail("banExpiresIn", &msg);
            None
        }
    };
    f.finish()?;
    Ok((id, BanInput { reason, expires_in }))
}

/// Set-role's body: `{userId, role}`, the role a string or an array of strings (joined
/// with commas).
pub fn set_role_input(body: &Body<false>) -> Result<(String, String), ApiError> {
    let mut f = Fields::of(body)?;
    let id = coerced_field(&mut f, "userId");
    let role = match f.object().get("role") {
        Some(Value::String(r)) => Some(r.clone()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    };
    if role.is_none() {
        f.fail("role", "Invalid input");
    }
    f.storable("role", role.as_deref(), MAX_FIELD_CHARS);
    f.finish()?;
    Ok((id, role.unwrap_or_default()))
}

/// `{sessions}` of a user (every live one, impersonations included).
pub async fn list_user_sessions(mut ctx: Ctx, body: Body<false>) -> Response {
    let result = async {
        let user_id = user_id_input(&body)?;
        let cur = ctx.session(Gate::Sensitive).await?;
        let svc = &ctx.state.sessions;
        let list = svc.admin_list_sessions(&cur, &user_id).await?;
        let out: Vec<_> = list.iter().map(|s| svc.output(s)).collect();
        Ok(json_response(
            &json!({ "sessions": out }),
            64 + 400 * out.len(),
        ))
    }
    .await;
    ctx.respond(result)
}

/// Ends one session by token: `{success: true}`.
pub async fn revoke_user_session(mut ctx: Ctx, body: Body<false>) -> Response {
    let result = async {
        let mut f = Fields::of(&body)?;
        let token = f.string("sessionToken");
        f.finish()?;
        let cur = ctx.session(Gate::Sensitive).await?;
        ctx.state
            .sessions
            .admin_revoke_session(&cur, &token)
            .await?;
        Ok(Json(json!({ "success": true })))
    }
    .await;
    ctx.respond(result)
}

/// Ends every session of a user: `{success: true}`.
pub async fn revoke_user_sessions(mut ctx: Ctx, body: Body<false>) -> Response {
    let result = async {
        let user_id = user_id_input(&body)?;
        let cur = ctx.session(Gate::Sensitive).await?;
        ctx.state
            .sessions
            .admin_revoke_sessions(&cur, &user_id)
            .await?;
        Ok(Json(json!({ "success": true })))
    }
    .await;
    ctx.respond(result)
}

/// Bans a user and ends their sessions: `{user}`.
pub async fn ban_user(mut ctx: Ctx, body: Body<false>) -> Response {
    let result = async {
        let (user_id, input) = ban_input(&body)?;
        let cur = ctx.session(Gate::Sensitive).await?;
        let svc = &ctx.state.sessions;
        let user = svc.ban_user(&cur, &user_id, input).await?;
        Ok(Json(json!({ "user": svc.user_output(&user) })))
    }
    .await;
    ctx.respond(result)
}

/// Lifts a ban: `{user}`.
pub async fn unban_user(mut ctx: Ctx, body: Body<false>) -> Response {
    let result = async {
        let user_id = user_id_input(&body)?;
        let cur = ctx.session(Gate::Sensitive).await?;
        let svc = &ctx.state.sessions;
        let user = svc.unban_user(&cur, &user_id).await?;
        Ok(Json(json!({ "user": svc.user_output(&user) })))
    }
    .await;
    ctx.respond(result)
}

/// Sets a user's role: `{user}`.
pub async fn set_role(mut ctx: Ctx, body: Body<false>) -> Response {
    let result = async {
        let (user_id, role) = set_role_input(&body)?;
        let cur = ctx.session(Gate::Sensitive).await?;
        let svc = &ctx.state.sessions;
        let user = svc.set_role(&cur, &user_id, role).await?;
        Ok(Json(json!({ "user": svc.user_output(&user) })))
    }
    .await;
    ctx.respond(result)
}

/// Starts impersonating a user: `{session, user}`, with the impersonation's cookies and
/// the signed `admin_session`.
pub async fn impersonate_user(mut ctx: Ctx, Client(client): Client, body: Body<false>) -> Response {
    let result = async {
        let user_id = user_id_input(&body)?;
        let cur = ctx.session(Gate::Sensitive).await?;
        let svc = ctx.state.sessions.clone();
        let (s, u) = svc
            .impersonate(&cur, &user_id, &client, &ctx.credential, &mut ctx.out)
            .await?;
        Ok(Json(
            json!({ "session": svc.output(&s), "user": svc.user_output(&u) }),
        ))
    }
    .await;
    ctx.respond(result)
}

/// Ends the impersonation and restores the admin's session: `{session, user}`.
pub async fn stop_impersonating(mut ctx: Ctx) -> Response {
    let result = async {
        let cur = ctx.session(Gate::Session).await?;
        let svc = ctx.state.sessions.clone();
        let (s, u) = svc
            .stop_impersonating(&cur, &ctx.credential, &mut ctx.out)
            .await?;
        Ok(Json(
            json!({ "session": svc.output(&s), "user": svc.user_output(&u) }),
        ))
    }
    .await;
    ctx.respond(result)
}
