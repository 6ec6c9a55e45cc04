//! Better Auth's `multiSession()` options (`plugins.multi_session`).

use serde::{Deserialize, Serialize};

use super::load::ConfigError;

/// `maximum_sessions` at most: every `_multi-` cookie a sign-in or sign-out touches is one
/// `Set-Cookie` line, and with the session's own (token, `dont_remember`, the cache and
/// its chunks) they must stay under the response's cap on cookie lines (32, the HTTP
/// layer's `MAX_SET_COOKIES`).
pub const MAX_MULTI_SESSIONS: usize = 16;

/// Better Auth's `multiSession()` options.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MultiSessionSettings {
    /// Several signed-in accounts per browser: `<session_token>_multi-<token>` cookies
    /// and the `/multi-session/*` routes.
    pub enabled: bool,
    /// Accounts one browser holds at most (`maximumSessions`, 1 to
    /// [`MAX_MULTI_SESSIONS`]).
    pub maximum_sessions: usize,
}

impl Default for MultiSessionSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            maximum_sessions: 5,
        }
    }
}

impl MultiSessionSettings {
    /// Checks `maximum_sessions` against its bounds.
    pub fn check(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_MULTI_SESSIONS).contains(&self.maximum_sessions) {
            return Err(ConfigError::Invalid(format!(
                "plugins.multi_session.maximum_sessions must be between 1 and {MAX_MULTI_SESSIONS}"
            )));
        }
        Ok(())
    }
}
