//! Every request body the API reads, validated as its route does, without a request or a
//! store: what the request-body fuzz target drives (`fuzz/`), and a single place that
//! lists which routes read which bodies.

use crate::error::ApiError;
use crate::http::extract::{is_valid_email, Body, Fields};
use crate::http::{account, auth, sessions};

/// The routes that read a body, relative to the base path.
pub const ROUTES: [&str; 10] = [
    "/sign-up/email",
    "/sign-in/email",
    "/sign-out",
    "/revoke-session",
    "/revoke-sessions",
    "/revoke-other-sessions",
    "/update-session",
    "/update-user",
    "/change-password",
    "/get-session",
];

/// Parses and validates `bytes` (sent with `content_type`) as `route` does before it
/// looks at any session: `Ok` when the route would go on, else the 4xx it would answer.
pub fn validate(route: &str, content_type: Option<&str>, bytes: &[u8]) -> Result<(), ApiError> {
    match route {
        "/sign-up/email" => {
            auth::sign_up_input(&Body::<true>::parse(content_type, bytes)?).map(drop)
        }
        "/sign-in/email" => {
            let (input, _) = auth::sign_in_input(&Body::<true>::parse(content_type, bytes)?)?;
            let _ = is_valid_email(&input.email);
            Ok(())
        }
        "/sign-out" => auth::sign_out_input(&Body::<false>::parse(content_type, bytes)?).map(drop),
        "/revoke-session" => {
            sessions::revoke_session_input(&Body::<false>::parse(content_type, bytes)?).map(drop)
        }
        "/update-session" => {
            Fields::of_record(&Body::<false>::parse(content_type, bytes)?).map(drop)
        }
        "/update-user" => {
            let body = Body::<false>::parse(content_type, bytes)?;
            account::update_user_input(&body, false, &[])?;
            account::update_user_input(&body, true, &["theme"]).map(drop)
        }
        "/change-password" => {
            account::change_password_input(&Body::<false>::parse(content_type, bytes)?).map(drop)
        }
        // Parsed, then left unread.
        "/revoke-sessions" | "/revoke-other-sessions" => {
            Body::<false>::parse(content_type, bytes).map(drop)
        }
        // Reads no body: whatever is sent is ignored.
        _ => Ok(()),
    }
}
