//! `POST /update-user` and `POST /change-password`.

use axum::response::Response;
use axum::Json;
use serde_json::{json, Value};

use crate::error::{codes, ApiError};
use crate::http::extract::{Body, Client, Ctx, Fields, Gate};
use crate::http::multi_session;
use crate::session::limits;
use crate::session::service::PasswordChange;

/// What update-user may change: the name, the image (`Some(None)` clears it), and the
/// body itself, whose additional fields the service picks.
pub type UserUpdate = (
    Option<String>,
    Option<Option<String>>,
    serde_json::Map<String, Value>,
);

/// Update-user's body, validated (`coerce`: non-text values of the text fields named
/// `text_fields` and of name and image become their text, as Better Auth stores them).
pub fn update_user_input(
    body: &Body<false>,
    coerce: bool,
    text_fields: &[&str],
) -> Result<UserUpdate, ApiError> {
    let record = Fields::of_record(body)?.object();
    let coerced;
    let obj = if coerce {
        let mut names = vec!["name", "image"];
        names.extend_from_slice(text_fields);
        coerced = Fields::coerce_to_text(record, &names);
        &coerced
    } else {
        record
    };
    let mut f = Fields::of_map(obj);
    let name = f.opt_string("name");
    let image = f.nullable_string("image");
    f.storable("name", name.as_deref(), limits::MAX_NAME_CHARS);
    f.storable(
        "image",
        image.as_ref().and_then(|i| i.as_deref()),
        limits::MAX_IMAGE_CHARS,
    );
    f.finish()?;
    if obj.get("email").is_some_and(is_truthy_str) {
        return Err(codes::EMAIL_CAN_NOT_BE_UPDATED);
    }
    Ok((name, image, obj.clone()))
}

/// Change-password's body, validated.
pub fn change_password_input(body: &Body<false>) -> Result<PasswordChange, ApiError> {
    let mut f = Fields::of(body)?;
    let new_password = f.string("newPassword");
    let current_password = f.string("currentPassword");
    let revoke = f.opt_bool("revokeOtherSessions").unwrap_or(false);
    f.finish()?;
    Ok(PasswordChange {
        current_password,
        new_password,
        revoke_others: revoke,
    })
}

/// Updates name and/or image: `{status: true}`.
pub async fn update_user(mut ctx: Ctx, body: Body<false>) -> Response {
    let result = async {
        let svc = ctx.state.sessions.clone();
        let (name, image, rest) =
            update_user_input(&body, ctx.state.coerce_field_types, &svc.user_text_fields())?;
        let cur = ctx.session(Gate::Session).await?;
        svc.update_user(&cur, name, image, &rest, &ctx.credential, &mut ctx.out)
            .await?;
        multi_session::after_session_cookie(&mut ctx, &cur.user.id).await?;
        Ok(Json(json!({ "status": true })))
    }
    .await;
    ctx.respond(result)
}

fn is_truthy_str(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false)) && v.as_str() != Some("")
}

/// Changes the password: `{token, user}`, `token` set when other sessions were revoked.
pub async fn change_password(mut ctx: Ctx, Client(client): Client, body: Body<false>) -> Response {
    let result = async {
        let change = change_password_input(&body)?;
        let cur = ctx.session(Gate::Sensitive).await?;
        let svc = ctx.state.sessions.clone();
        let token = svc
            .change_password(&cur, change, &client, &ctx.credential, &mut ctx.out)
            .await?;
        multi_session::after_session_cookie(&mut ctx, &cur.user.id).await?;
        Ok(Json(
            json!({ "token": token, "user": svc.user_output(&cur.user) }),
        ))
    }
    .await;
    ctx.respond(result)
}
