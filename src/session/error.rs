//! The domain's errors: each says what went wrong in Better Auth's terms, never how it is
//! answered. The HTTP layer maps every variant to its status and wire code in one place.

use crate::crypto::password::PasswordError;
use crate::store::StoreError;

/// Why a session operation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Email and password sign-in is off.
    #[error("email and password is disabled")]
    EmailPasswordDisabled,
    /// Sign-up is off (or email and password altogether).
    #[error("sign-up is disabled")]
    SignUpDisabled,
    /// The email belongs to another user.
    #[error("a user with this email exists")]
    UserExists,
    /// Shorter than `min_password_length` (UTF-16 code units).
    #[error("password too short")]
    PasswordTooShort,
    /// Longer than `max_password_length` (UTF-16 code units).
    #[error("password too long")]
    PasswordTooLong,
    /// Sign-in: unknown email or wrong password (never told apart).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// Change-password: the current password is wrong.
    #[error("invalid password")]
    WrongPassword,
    /// The user has no credential account (or it has no password).
    #[error("credential account not found")]
    NoCredentialAccount,
    /// The session is older than `fresh_age`.
    #[error("session is not fresh")]
    NotFresh,
    /// An update carried nothing to update.
    #[error("no fields to update")]
    NoFieldsToUpdate,
    /// An additional field with `input = false` was sent with a truthy value.
    #[error("{0} is not allowed to be set")]
    FieldNotAllowed(String),
    /// Sign-up left out a required additional field that has no default.
    #[error("{0} is required")]
    MissingField(String),
    /// The admin plugin: the user is banned (the configured message).
    #[error("banned user")]
    Banned(String),
    /// An additional field's value does not fit it: zod's summary, `[body.<name>] …`.
    #[error("{0}")]
    InvalidField(String),
    /// Sign-in beyond `session.max_per_user` with `max_per_user_action = "refuse"`.
    #[error("too many sessions")]
    TooManySessions,
    /// The signed-in user no longer exists.
    #[error("user not found")]
    UserGone,
    /// The session disappeared between its lookup and a write.
    #[error("session gone")]
    SessionGone,
    /// The multi-session plugin: no valid `_multi-` cookie for the token, or its session
    /// is over.
    #[error("invalid session token")]
    InvalidSessionToken,
    /// Sign-up could not write the user (cause logged where it happened).
    #[error("failed to create user")]
    CreateUserFailed,
    /// Sign-in could not write its session (cause logged where it happened).
    #[error("failed to create session")]
    CreateSessionFailed,
    /// Change-password could not replace the sessions (cause logged where it happened).
    #[error("failed to replace sessions")]
    ReplaceSessionsFailed,
    /// A store failure not otherwise classified (cause logged where it happened).
    #[error("internal error")]
    Internal,
    /// An admin route refused the operation.
    #[error(transparent)]
    Admin(#[from] crate::session::service::admin::AdminError),
    /// The store failed; [`StoreError`] says whether it is worth retrying.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed or is saturated.
    #[error(transparent)]
    Hashing(#[from] PasswordError),
}

impl SessionError {
    /// The service could not answer (store or hashing failure), as opposed to refusing the
    /// request by a rule: a caller that needs a session must not read it as "signed out".
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            Self::Store(_) | Self::Hashing(_) | Self::Internal | Self::ReplaceSessionsFailed
        )
    }

    /// A store failure as the caller answers it: an unreachable store stays a store error
    /// (retry later), anything else is logged here with `context` and becomes `otherwise`.
    pub fn from_store(e: StoreError, context: &'static str, otherwise: Self) -> Self {
        match e {
            e @ StoreError::Unavailable(_) => Self::Store(e),
            e => {
                tracing::error!(error = %e, "{context}");
                otherwise
            }
        }
    }
}
