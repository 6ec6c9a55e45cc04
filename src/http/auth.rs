//! `POST /sign-up/email`, `POST /sign-in/email`, `POST /sign-out`.
//!
//! Their `callbackURL` was checked with the other redirect targets when the body was read
//! ([`crate::http::origin::check_redirect_targets`]).

use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::{codes, ApiError};
use crate::http::extract::{is_valid_email, Body, Client, Ctx, Fields};
use crate::http::multi_session;
use crate::http::origin::form_csrf;
use crate::session::limits;
use crate::session::service::{SignIn, SignUp};

/// Sign-up's body, validated: the input and its `callbackURL`.
pub fn sign_up_input(body: &Body<true>) -> Result<(SignUp, Option<String>), ApiError> {
    let mut f = Fields::of_object_record(body)?;
    let name = f.string("name");
    let email = f.string("email");
    let password = f.non_empty("password");
    let image = f.opt_string("image");
    let callback = f.opt_string("callbackURL");
    let remember_me = f.opt_bool("rememberMe");
    let email_ok = is_valid_email(&email);
    if f.object().get("email").is_some_and(|v| v.is_string()) && !email_ok {
        f.fail("email", "Invalid email address");
    }
    f.storable("name", Some(&name), limits::MAX_NAME_CHARS);
    // An address already refused is not measured too (Better Auth reports it once).
    f.storable(
        "email",
        Some(email.as_str()).filter(|_| email_ok),
        limits::MAX_EMAIL_CHARS,
    );
    f.storable("image", image.as_deref(), limits::MAX_IMAGE_CHARS);
    let mut extra = f.object().clone();
    f.finish()?;
    for k in [
        "name",
        "email",
        "password",
        "image",
        "callbackURL",
        "rememberMe",
    ] {
        extra.remove(k);
    }
    let input = SignUp {
        name,
        email,
        password,
        image,
        remember_me: remember_me != Some(false),
        extra,
    };
    Ok((input, callback))
}

/// Sign-in's body, validated for shape (the email's form is checked after the callback,
/// as Better Auth does): the input and its `callbackURL`.
pub fn sign_in_input(body: &Body<true>) -> Result<(SignIn, Option<String>), ApiError> {
    let mut f = Fields::of(body)?;
    let email = f.string("email");
    let password = f.string("password");
    let callback = f.opt_string("callbackURL");
    let remember_me = f.opt_bool("rememberMe");
    f.finish()?;
    let input = SignIn {
        email,
        password,
        remember_me: remember_me != Some(false),
    };
    Ok((input, callback))
}

/// Sign-out's optional body: its `callbackURL`.
pub fn sign_out_input(body: &Body<false>) -> Result<Option<String>, ApiError> {
    let Some(serde_json::Value::Object(_)) = &body.value else {
        return Ok(None);
    };
    let mut f = Fields::of(body)?;
    let callback = f.opt_string("callbackURL");
    f.opt_bool("disableRedirect");
    f.opt_string("state");
    f.finish()?;
    Ok(callback)
}

/// Creates a user and (unless auto sign-in is off) a session: `{token, user}`.
pub async fn sign_up(
    mut ctx: Ctx,
    Client(client): Client,
    headers: HeaderMap,
    body: Body<true>,
) -> Response {
    let result = async {
        let (input, _) = sign_up_input(&body)?;
        form_csrf(&ctx.state, &headers)?;
        let svc = ctx.state.sessions.clone();
        let (token, user) = svc
            .sign_up(input, &client, &ctx.credential, &mut ctx.out)
            .await?;
        if let Some(t) = &token {
            multi_session::after_new_session(&mut ctx, t, &user.id).await?;
        }
        Ok(Json(
            json!({ "token": token, "user": svc.user_output(&user) }),
        ))
    }
    .await;
    ctx.respond(result)
}

/// Checks email and password and creates a session: `{redirect, token, url?, user}`, with
/// `url` when a `callbackURL` was sent, and `redirect` and `Location` when it is not empty.
pub async fn sign_in(
    mut ctx: Ctx,
    Client(client): Client,
    headers: HeaderMap,
    body: Body<true>,
) -> Response {
    let result = async {
        let (input, callback) = sign_in_input(&body)?;
        form_csrf(&ctx.state, &headers)?;
        if !is_valid_email(&input.email) {
            return Err(codes::INVALID_EMAIL);
        }
        let svc = ctx.state.sessions.clone();
        let (token, user) = svc
            .sign_in(input, &client, &ctx.credential, &mut ctx.out)
            .await?;
        multi_session::after_new_session(&mut ctx, &token, &user.id).await?;
        let redirect = callback.as_deref().is_some_and(|u| !u.is_empty());
        let mut body = serde_json::Map::new();
        body.insert("redirect".into(), json!(redirect));
        body.insert("token".into(), json!(token));
        if let Some(url) = &callback {
            body.insert("url".into(), json!(url));
        }
        body.insert("user".into(), json!(svc.user_output(&user)));
        let mut res = Json(body).into_response();
        if let Some(url) = callback.filter(|_| redirect).and_then(|u| u.parse().ok()) {
            res.headers_mut().insert(header::LOCATION, url);
        }
        Ok(res)
    }
    .await;
    ctx.respond(result)
}

/// Deletes the session and expires its cookies: `{success: true}`, signed in or not.
pub async fn sign_out(mut ctx: Ctx, body: Body<false>) -> Response {
    let result = async {
        sign_out_input(&body)?;
        ctx.state
            .sessions
            .sign_out(&ctx.credential, &mut ctx.out)
            .await?;
        multi_session::after_sign_out(&mut ctx).await?;
        Ok(Json(json!({ "success": true })))
    }
    .await;
    ctx.respond(result)
}
