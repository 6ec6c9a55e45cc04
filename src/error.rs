//! The one error type of the service and its wire form: Better Auth's
//! `{"message": "...", "code": "..."}` body with its status codes. Storage failures become
//! 503 (backend unreachable) or 500, with no detail on the wire; the cause is logged.

use std::borrow::Cow;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::crypto::password::PasswordError;
use crate::session::SessionError;
use crate::store::StoreError;

/// An error answered to the client.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Better Auth's machine-readable code; some of its errors have none.
    pub code: Option<&'static str>,
    /// Human-readable message.
    pub message: Cow<'static, str>,
}

impl ApiError {
    /// An error with a code and a message.
    pub const fn new(status: StatusCode, code: &'static str, message: &'static str) -> Self {
        Self {
            status,
            code: Some(code),
            message: Cow::Borrowed(message),
        }
    }

    /// An error with a code and a computed message.
    pub fn with_message(status: StatusCode, code: &'static str, message: String) -> Self {
        Self {
            status,
            code: Some(code),
            message: Cow::Owned(message),
        }
    }

    /// An error whose body is `{"message"}` only.
    pub const fn message_only(status: StatusCode, message: &'static str) -> Self {
        Self {
            status,
            code: None,
            message: Cow::Borrowed(message),
        }
    }

    /// An error whose body is a computed `{"message"}` only.
    pub fn message_owned(status: StatusCode, message: String) -> Self {
        Self {
            status,
            code: None,
            message: Cow::Owned(message),
        }
    }

    /// 400 `VALIDATION_ERROR` with a zod-style summary.
    pub fn validation(summary: String) -> Self {
        Self::with_message(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", summary)
    }
}

/// Better Auth's error catalogue, for the errors this service can raise.
pub mod codes {
    use super::ApiError;
    use axum::http::StatusCode as S;

    /// The multi-session plugin: no valid `_multi-` cookie for the token sent.
    pub const INVALID_SESSION_TOKEN: ApiError = ApiError::new(
        S::UNAUTHORIZED,
        "INVALID_SESSION_TOKEN",
        "Invalid session token",
    );
    /// No valid session.
    pub const UNAUTHORIZED: ApiError =
        ApiError::new(S::UNAUTHORIZED, "UNAUTHORIZED", "Unauthorized");
    /// A refresh or update found the session gone.
    pub const FAILED_TO_GET_SESSION: ApiError = ApiError::new(
        S::UNAUTHORIZED,
        "FAILED_TO_GET_SESSION",
        "Failed to get session",
    );
    /// Unexpected failure while resolving a session.
    pub const FAILED_TO_GET_SESSION_500: ApiError = ApiError::new(
        S::INTERNAL_SERVER_ERROR,
        "FAILED_TO_GET_SESSION",
        "Failed to get session",
    );
    /// `POST /get-session` without `defer_session_refresh`.
    pub const METHOD_NOT_ALLOWED_DEFER: ApiError = ApiError::new(
        S::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED_DEFER_SESSION_REQUIRED",
        "POST method requires deferSessionRefresh to be enabled in session config",
    );
    /// The session is older than `fresh_age`.
    pub const SESSION_NOT_FRESH: ApiError =
        ApiError::new(S::FORBIDDEN, "SESSION_NOT_FRESH", "Session is not fresh");
    /// Body is not a JSON object.
    pub const BODY_MUST_BE_AN_OBJECT: ApiError = ApiError::new(
        S::BAD_REQUEST,
        "BODY_MUST_BE_AN_OBJECT",
        "Body must be an object",
    );
    /// Nothing updatable in the body.
    pub const NO_FIELDS_TO_UPDATE: ApiError =
        ApiError::message_only(S::BAD_REQUEST, "No fields to update");
    /// `update-user` with an email.
    pub const EMAIL_CAN_NOT_BE_UPDATED: ApiError = ApiError::new(
        S::BAD_REQUEST,
        "EMAIL_CAN_NOT_BE_UPDATED",
        "Email can not be updated",
    );
    /// Password under the minimum length.
    pub const PASSWORD_TOO_SHORT: ApiError =
        ApiError::new(S::BAD_REQUEST, "PASSWORD_TOO_SHORT", "Password too short");
    /// Password over the maximum length.
    pub const PASSWORD_TOO_LONG: ApiError =
        ApiError::new(S::BAD_REQUEST, "PASSWORD_TOO_LONG", "Password too long");
    /// No credential account for the user.
    pub const CREDENTIAL_ACCOUNT_NOT_FOUND: ApiError = ApiError::new(
        S::BAD_REQUEST,
        "CREDENTIAL_ACCOUNT_NOT_FOUND",
        "Credential account not found",
    );
    /// Wrong current password.
    pub const INVALID_PASSWORD: ApiError =
        ApiError::new(S::BAD_REQUEST, "INVALID_PASSWORD", "Invalid password");
    /// Malformed email on sign-in.
    pub const INVALID_EMAIL: ApiError =
        ApiError::new(S::BAD_REQUEST, "INVALID_EMAIL", "Invalid email");
    /// Email and password disabled.
    pub const EMAIL_PASSWORD_DISABLED: ApiError = ApiError::new(
        S::BAD_REQUEST,
        "EMAIL_PASSWORD_DISABLED",
        "Email and password is not enabled",
    );
    /// Sign-up disabled.
    pub const EMAIL_PASSWORD_SIGN_UP_DISABLED: ApiError = ApiError::new(
        S::BAD_REQUEST,
        "EMAIL_PASSWORD_SIGN_UP_DISABLED",
        "Email and password sign up is not enabled",
    );
    /// Unknown email or wrong password.
    pub const INVALID_EMAIL_OR_PASSWORD: ApiError = ApiError::new(
        S::UNAUTHORIZED,
        "INVALID_EMAIL_OR_PASSWORD",
        "Invalid email or password",
    );
    /// Duplicate sign-up.
    pub const USER_ALREADY_EXISTS: ApiError = ApiError::new(
        S::UNPROCESSABLE_ENTITY,
        "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL",
        "User already exists. Use another email.",
    );
    /// Sign-up could not write the user.
    pub const FAILED_TO_CREATE_USER: ApiError = ApiError::new(
        S::UNPROCESSABLE_ENTITY,
        "FAILED_TO_CREATE_USER",
        "Failed to create user",
    );
    /// Sign-in could not create its session.
    pub const FAILED_TO_CREATE_SESSION: ApiError = ApiError::new(
        S::UNAUTHORIZED,
        "FAILED_TO_CREATE_SESSION",
        "Failed to create session",
    );
    /// Storage failure in revocation.
    pub const INTERNAL_SERVER_ERROR: ApiError = ApiError::new(
        S::INTERNAL_SERVER_ERROR,
        "INTERNAL_SERVER_ERROR",
        "Internal Server Error",
    );
    /// Origin not trusted.
    pub const INVALID_ORIGIN: ApiError =
        ApiError::new(S::FORBIDDEN, "INVALID_ORIGIN", "Invalid origin");
    /// Origin missing or `null`.
    pub const MISSING_OR_NULL_ORIGIN: ApiError = ApiError::new(
        S::FORBIDDEN,
        "MISSING_OR_NULL_ORIGIN",
        "Missing or null Origin",
    );
    /// `callbackURL` not trusted.
    pub const INVALID_CALLBACK_URL: ApiError =
        ApiError::new(S::FORBIDDEN, "INVALID_CALLBACK_URL", "Invalid callbackURL");
    /// A `redirectTo` that is not a trusted origin or a safe relative path.
    pub const INVALID_REDIRECT_URL: ApiError =
        ApiError::new(S::FORBIDDEN, "INVALID_REDIRECT_URL", "Invalid redirectURL");
    /// An `errorCallbackURL` that is not a trusted origin or a safe relative path.
    pub const INVALID_ERROR_CALLBACK_URL: ApiError = ApiError::new(
        S::FORBIDDEN,
        "INVALID_ERROR_CALLBACK_URL",
        "Invalid errorCallbackURL",
    );
    /// A `newUserCallbackURL` that is not a trusted origin or a safe relative path.
    pub const INVALID_NEW_USER_CALLBACK_URL: ApiError = ApiError::new(
        S::FORBIDDEN,
        "INVALID_NEW_USER_CALLBACK_URL",
        "Invalid newUserCallbackURL",
    );
    /// Cross-site navigation to a sign-in form.
    pub const CROSS_SITE_NAVIGATION_LOGIN_BLOCKED: ApiError = ApiError::new(
        S::FORBIDDEN,
        "CROSS_SITE_NAVIGATION_LOGIN_BLOCKED",
        "Cross-site navigation login blocked. This request appears to be a CSRF attack.",
    );
    /// Malformed JSON body.
    pub const INVALID_JSON: ApiError = ApiError::new(
        S::BAD_REQUEST,
        "BAD_REQUEST",
        "Invalid JSON in request body",
    );
    /// Storage unreachable.
    pub const SERVICE_UNAVAILABLE: ApiError = ApiError::new(
        S::SERVICE_UNAVAILABLE,
        "SERVICE_UNAVAILABLE",
        "The session store is unavailable. Try again later.",
    );
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => {
                crate::metrics::store_error("unavailable");
                tracing::warn!(error = %cause, "session store unavailable");
                codes::SERVICE_UNAVAILABLE
            }
            other => {
                crate::metrics::store_error("backend");
                tracing::error!(error = %other, "session store error");
                codes::INTERNAL_SERVER_ERROR
            }
        }
    }
}

/// The one place where the domain's errors get Better Auth's status and wire code.
impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        use SessionError as E;
        match e {
            E::EmailPasswordDisabled => codes::EMAIL_PASSWORD_DISABLED,
            E::SignUpDisabled => codes::EMAIL_PASSWORD_SIGN_UP_DISABLED,
            E::UserExists => codes::USER_ALREADY_EXISTS,
            E::PasswordTooShort => codes::PASSWORD_TOO_SHORT,
            E::PasswordTooLong => codes::PASSWORD_TOO_LONG,
            E::InvalidCredentials => codes::INVALID_EMAIL_OR_PASSWORD,
            E::WrongPassword => codes::INVALID_PASSWORD,
            E::NoCredentialAccount => codes::CREDENTIAL_ACCOUNT_NOT_FOUND,
            E::NotFresh => codes::SESSION_NOT_FRESH,
            E::NoFieldsToUpdate => codes::NO_FIELDS_TO_UPDATE,
            E::FieldNotAllowed(name) => ApiError::with_message(
                StatusCode::BAD_REQUEST,
                "FIELD_NOT_ALLOWED",
                format!("{name} is not allowed to be set"),
            ),
            E::InvalidField(summary) => ApiError::validation(summary),
            E::MissingField(name) => ApiError::with_message(
                StatusCode::BAD_REQUEST,
                "MISSING_FIELD",
                format!("{name} is required"),
            ),
            E::Banned(message) => {
                ApiError::with_message(StatusCode::FORBIDDEN, "BANNED_USER", message)
            }
            E::TooManySessions => ApiError::new(
                StatusCode::FORBIDDEN,
                "TOO_MANY_SESSIONS",
                "Too many active sessions: sign out elsewhere first",
            ),
            E::UserGone => codes::UNAUTHORIZED,
            E::SessionGone => codes::FAILED_TO_GET_SESSION,
            E::InvalidSessionToken => codes::INVALID_SESSION_TOKEN,
            E::CreateUserFailed => codes::FAILED_TO_CREATE_USER,
            E::CreateSessionFailed => codes::FAILED_TO_CREATE_SESSION,
            E::ReplaceSessionsFailed => codes::FAILED_TO_GET_SESSION_500,
            E::Internal => codes::INTERNAL_SERVER_ERROR,
            E::Store(e) => e.into(),
            E::Hashing(e) => e.into(),
            E::Admin(e) => admin_error(e),
        }
    }
}

/// The admin plugin's refusals, with its codes and messages.
fn admin_error(e: crate::session::service::admin::AdminError) -> ApiError {
    use crate::session::service::admin::{AdminError as A, Permission as P};
    let forbidden = |code, message| ApiError::new(StatusCode::FORBIDDEN, code, message);
    match e {
        A::NotAllowed(P::ListSessions) => forbidden(
            "YOU_ARE_NOT_ALLOWED_TO_LIST_USERS_SESSIONS",
            "You are not allowed to list users sessions",
        ),
        A::NotAllowed(P::RevokeSessions) => forbidden(
            "YOU_ARE_NOT_ALLOWED_TO_REVOKE_USERS_SESSIONS",
            "You are not allowed to revoke users sessions",
        ),
        A::NotAllowed(P::Ban) => forbidden(
            "YOU_ARE_NOT_ALLOWED_TO_BAN_USERS",
            "You are not allowed to ban users",
        ),
        A::NotAllowed(P::SetRole) => forbidden(
            "YOU_ARE_NOT_ALLOWED_TO_CHANGE_USERS_ROLE",
            "You are not allowed to change users role",
        ),
        A::NotAllowed(P::Impersonate) => forbidden(
            "YOU_ARE_NOT_ALLOWED_TO_IMPERSONATE_USERS",
            "You are not allowed to impersonate users",
        ),
        A::ImpersonateAdmin => forbidden(
            "YOU_CANNOT_IMPERSONATE_ADMINS",
            "You cannot impersonate admins",
        ),
        A::UserNotFound => ApiError::new(StatusCode::NOT_FOUND, "USER_NOT_FOUND", "User not found"),
        A::BanYourself => ApiError::new(
            StatusCode::BAD_REQUEST,
            "YOU_CANNOT_BAN_YOURSELF",
            "You cannot ban yourself",
        ),
        A::NotImpersonating => {
            ApiError::message_only(StatusCode::BAD_REQUEST, "You are not impersonating anyone")
        }
        A::AdminSessionGone => ApiError::message_only(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Failed to find admin session",
        ),
        A::AdminUserGone => {
            ApiError::message_only(StatusCode::INTERNAL_SERVER_ERROR, "Failed to find user")
        }
    }
}

impl From<PasswordError> for ApiError {
    fn from(e: PasswordError) -> Self {
        if matches!(e, PasswordError::Busy) {
            return codes::SERVICE_UNAVAILABLE;
        }
        tracing::error!(error = %e, "password hashing failed");
        codes::INTERNAL_SERVER_ERROR
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let m = &self.message;
        let body = match self.code {
            Some(c) => serde_json::json!({ "message": m, "code": c }).to_string(),
            None => serde_json::json!({ "message": m }).to_string(),
        };
        let mut res = (self.status, body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        res
    }
}
