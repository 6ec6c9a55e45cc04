//! Better Auth's bearer plugin on the routes under the base path (`plugins.bearer`).
//!
//! In: an `Authorization` value that passes the plugin's rule
//! ([`crate::session::bearer`]) takes the place of the request's session-token cookie; the
//! other cookies stay, as Better Auth rewrites only that one in the request's `Cookie`
//! header. A cache cookie of another session is then refused by the service (its token
//! differs) and expired, as Better Auth expires it. Only the first `Authorization` header
//! counts: Node keeps the first and drops the others.
//!
//! Out: a response whose last `Set-Cookie` for the session token sets a non-empty value
//! (not `Max-Age=0`) also carries `set-auth-token` with that value, decoded as Better Auth
//! reads it back, and lists `set-auth-token` in `Access-Control-Expose-Headers`.
//!
//! Forward auth keeps its own bearer handling ([`crate::http::extract::Ctx::adopt_bearer`]).

use axum::http::header;
use axum::http::request::Parts;
use axum::response::Response;

use crate::http::set_cookie::encode_uri_component;
use crate::http::{is_under, AppState};

/// The plugin's options, when it is on.
#[derive(Debug, Clone, Copy)]
pub struct Plugin {
    /// Bare tokens are ignored; only `token.signature` is read.
    pub require_signature: bool,
}

/// The response header carrying the session token.
pub const SET_AUTH_TOKEN: &str = "set-auth-token";

/// The request's `Cookie` header as the plugin leaves it: `joined` (the request's cookie
/// headers, joined), with the session-token cookie replaced by what a verified bearer
/// stands for. The new value is put first, where the reader's first-wins rule finds it.
pub fn cookie_header(state: &AppState, parts: &Parts, joined: String) -> String {
    let Some(plugin) = state.bearer else {
        return joined;
    };
    let path = parts.uri.path();
    let forward_auth = state
        .forward_auth_path
        .as_deref()
        .is_some_and(|fa| is_under(path, fa));
    if !is_under(path, &state.base_path) || forward_auth {
        return joined;
    }
    let Some(auth) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return joined;
    };
    let Some(value) = state.sessions.bearer_cookie(auth, plugin.require_signature) else {
        return joined;
    };
    let name = &state.sessions.cookie_names().token;
    let mut out = String::with_capacity(name.len() + value.len() + joined.len() + 8);
    out.push_str(name);
    out.push('=');
    out.push_str(&encode_uri_component(&value));
    if !joined.is_empty() {
        out.push_str("; ");
        out.push_str(&joined);
    }
    out
}

/// Adds `set-auth-token` to a response that sets the session-token cookie (plugin on).
pub fn expose_token(state: &AppState, res: &mut Response) {
    if state.bearer.is_none() || !res.headers().contains_key(header::SET_COOKIE) {
        return;
    }
    let name = &state.sessions.cookie_names().token;
    let last = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .rev()
        .filter_map(|v| v.to_str().ok())
        .find_map(|line| set_cookie_of(line, name));
    let Some(Some(token)) = last else {
        return;
    };
    crate::http::tokens::expose(res.headers_mut(), SET_AUTH_TOKEN, &token);
}

/// For a `Set-Cookie` line of cookie `name`: `Some(Some(value))` when it sets a non-empty
/// value, `Some(None)` when it clears or expires it (`Max-Age=0`), `None` for another
/// cookie. The value is unquoted and percent-decoded when it decodes, as Better Auth's
/// `parseSetCookieHeader` reads it.
fn set_cookie_of(line: &str, name: &str) -> Option<Option<String>> {
    let mut parts = line.split(';').map(str::trim);
    let (n, raw) = parts.next()?.split_once('=')?;
    if n != name {
        return None;
    }
    let expired = parts.any(|attr| {
        attr.split_once('=').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("max-age")
                && matches!(crate::js::string::parse_int(v), Some((_, 0)))
        })
    });
    let raw = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    let value = if raw.contains('%') {
        crate::js::string::decode_uri_component(raw).unwrap_or_else(|| raw.to_owned())
    } else {
        raw.to_owned()
    };
    Some((!expired && !value.is_empty()).then_some(value))
}

#[cfg(test)]
mod tests {
    use super::set_cookie_of;

    #[test]
    fn set_cookie_lines_as_better_auth_reads_them() {
        let n = "better-auth.session_token";
        let set = |l: &str| set_cookie_of(l, n);
        assert_eq!(
            set("better-auth.session_token=t.a%2Bb%3D; Max-Age=604800; Path=/"),
            Some(Some("t.a+b=".into()))
        );
        assert_eq!(
            set("better-auth.session_token=; Max-Age=0; Path=/"),
            Some(None)
        );
        assert_eq!(set("better-auth.session_token=t.s; Max-Age=0"), Some(None));
        assert_eq!(
            set("better-auth.session_token=t.s; Path=/"),
            Some(Some("t.s".into()))
        );
        assert_eq!(set("better-auth.session_data=x; Max-Age=300"), None);
        assert_eq!(set("__Secure-better-auth.session_token=x"), None);
    }
}
