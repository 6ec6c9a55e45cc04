//! Better Auth's CSRF defences for cookie-bearing POSTs: the request's `Origin` (or
//! `Referer`) must be a trusted origin. Sign-in and sign-up, which usually carry no cookie,
//! also refuse cross-site navigations and untrusted origins (Fetch Metadata), while still
//! admitting `curl` and server-to-server calls that send none of those headers. And the
//! redirect targets any POST may carry (`callbackURL` and its kin) must be trusted.

use axum::extract::Request;
use axum::http::{header, HeaderMap, Method};
use serde_json::Value;

use crate::config::Settings;
use crate::error::{codes, ApiError};
use crate::http::AppState;

/// The trusted origins: the base URL's origin and `trusted_origins` (which
/// `BETTER_AUTH_TRUSTED_ORIGINS` adds to). Patterns with `*` or `?` are globs, checked at
/// start to stay within a registrable domain ([`crate::config::check_origin_pattern`]).
#[derive(Debug, Clone)]
pub struct TrustedOrigins {
    patterns: Vec<Pattern>,
}

/// One trusted origin.
#[derive(Debug, Clone)]
enum Pattern {
    /// `scheme://host[:port]`, compared whole.
    Exact(String),
    /// A glob over the origin (`https://*.example.com`) or the host (`*.example.com`),
    /// whose matches must also lie within `domain`, the registrable domain after its
    /// wildcard: `*` never reaches across a public suffix (`*.amazonaws.com` does not
    /// trust `bucket.s3.amazonaws.com`, a site of its own).
    Glob {
        glob: String,
        on_origin: bool,
        domain: String,
    },
}

impl Pattern {
    fn new(p: &str) -> Self {
        if !(p.contains('*') || p.contains('?')) {
            return Self::Exact(p.trim_end_matches('/').to_owned());
        }
        let host_port = p.split_once("://").map_or(p, |(_, rest)| rest);
        let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
        let suffix = host.split_once('.').map_or("", |(_, s)| s);
        Self::Glob {
            glob: p.to_owned(),
            on_origin: p.contains("://"),
            domain: psl::domain_str(suffix).unwrap_or(suffix).to_owned(),
        }
    }
}

impl TrustedOrigins {
    /// Collects the trusted origins from settings.
    pub fn new(s: &Settings) -> Self {
        let mut patterns = Vec::new();
        // The base URL's origin is trusted as it is, never as a pattern.
        if let Some(o) = origin_of(&s.effective_base_url()) {
            patterns.push(Pattern::Exact(o));
        }
        if s.base_url.is_empty() {
            // The default base URL names localhost; the default listener is 127.0.0.1.
            patterns.push(Pattern::Exact(format!("http://127.0.0.1:{}", s.port)));
        }
        patterns.extend(s.trusted_origins.iter().map(|p| Pattern::new(p)));
        Self { patterns }
    }

    /// Whether `value` (an origin or a full URL) matches a trusted origin.
    pub fn is_trusted(&self, value: &str) -> bool {
        // Parsed once: the origin for exact and `scheme://` patterns, the host for the rest.
        let url = url::Url::parse(value).ok();
        let origin = url.as_ref().and_then(|u| {
            let o = u.origin();
            o.is_tuple().then(|| o.ascii_serialization())
        });
        let host = url.as_ref().and_then(|u| u.host_str());
        self.patterns.iter().any(|p| match p {
            Pattern::Exact(e) => origin.as_deref() == Some(e.as_str()),
            Pattern::Glob {
                glob: g,
                on_origin,
                domain,
            } => {
                let matched = if *on_origin {
                    origin.as_deref().is_some_and(|o| glob(g, o))
                } else {
                    host.is_some_and(|h| glob(g, h))
                };
                matched && host.and_then(psl::domain_str) == Some(domain.as_str())
            }
        })
    }

    /// Whether a `callbackURL` is acceptable: a trusted origin or a safe relative path.
    /// Backslashes, spaces and control characters are refused outright: URL parsers
    /// disagree on them (WHATWG reads `https://app.example\@evil.com/` as app.example,
    /// others as evil.com), and the value is handed back as it was sent.
    pub fn is_trusted_callback(&self, value: &str) -> bool {
        if value.bytes().any(|b| b <= b' ' || b == b'\\' || b == 0x7f) {
            return false;
        }
        if value.starts_with('/') {
            return is_safe_relative_path(value);
        }
        // As for relative paths: no path that resolves to `//host`.
        let resolves_to_host = url::Url::parse(value).is_ok_and(|u| u.path().starts_with("//"));
        !resolves_to_host && self.is_trusted(value)
    }
}

/// `scheme://host[:port]` of a URL, as `new URL(v).origin`.
fn origin_of(v: &str) -> Option<String> {
    let u = url::Url::parse(v).ok()?;
    let o = u.origin();
    o.is_tuple().then(|| o.ascii_serialization())
}

/// Glob over a host or origin. `?` matches one character of a label; `*` matches any run
/// within its label (no `.` or `/`), except that a `*` that is a whole leftmost label
/// (`*.example.com`) stands for one or more whole labels (`a.b.example.com`, never
/// `.example.com`).
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8], prev: Option<u8>) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => {
                let labels = matches!(prev, None | Some(b'/')) && rest.first() == Some(&b'.');
                if !labels && go(rest, t, Some(b'*')) {
                    return true;
                }
                let mut before = None;
                for (i, &c) in t.iter().enumerate() {
                    let stop =
                        c == b'/' || (c == b'.' && (!labels || i == 0 || before == Some(b'.')));
                    if stop {
                        return false;
                    }
                    // A match ends inside a label, never on a dot.
                    let after = t.get(i + 1..).unwrap_or_default();
                    if c != b'.' && go(rest, after, Some(b'*')) {
                        return true;
                    }
                    before = Some(c);
                }
                false
            }
            Some((b'?', rest)) => match t.split_first() {
                Some((c, after)) => *c != b'.' && *c != b'/' && go(rest, after, Some(b'?')),
                None => false,
            },
            Some((c, rest)) => match t.split_first() {
                Some((first, after)) => first == c && go(rest, after, Some(*c)),
                None => false,
            },
        }
    }
    go(pattern.as_bytes(), text.as_bytes(), None)
}

/// Better Auth's rule for relative callback paths: one leading `/`, no `//`, `\` or their
/// encodings, and only URL-safe characters.
fn is_safe_relative_path(v: &str) -> bool {
    let rest = &v[1..];
    let lower = rest.to_ascii_lowercase();
    if rest.starts_with('/')
        || rest.starts_with('\\')
        || lower.starts_with("%2f")
        || lower.starts_with("%5c")
    {
        return false;
    }
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    // Dot segments and empty ones could resolve to `//host` (`/..//evil.com`) in whatever
    // re-reads the path: refused, though Better Auth accepts them.
    let path_ok = path.split('/').all(|seg| seg != "." && seg != "..")
        && !path.contains("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.+/@".contains(&b));
    let query_ok = query.is_none_or(|q| {
        q.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.+/=&%@".contains(&b))
    });
    path_ok && query_ok
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Checks `Origin`, else `Referer`, against the trusted origins.
fn validate_origin(state: &AppState, h: &HeaderMap) -> Result<(), ApiError> {
    // Browsers send one of each: two are a forgery, and no first or last one is "the" one.
    if ["origin", "referer"]
        .iter()
        .any(|name| h.get_all(*name).iter().nth(1).is_some())
    {
        return Err(codes::INVALID_ORIGIN);
    }
    let origin = header_str(h, "origin")
        .or_else(|| header_str(h, "referer"))
        .unwrap_or("");
    if origin.is_empty() || origin == "null" {
        return Err(codes::MISSING_OR_NULL_ORIGIN);
    }
    if !state.origins.is_trusted(origin) {
        return Err(codes::INVALID_ORIGIN);
    }
    Ok(())
}

/// The origin check on every cookie-bearing POST (Better Auth's router-wide one; sign-in
/// and sign-up add [`form_csrf`] once their body is validated).
pub fn verdict(state: &AppState, req: &Request) -> Result<(), ApiError> {
    let is_forward_auth = state
        .forward_auth_path
        .as_deref()
        .is_some_and(|p| crate::http::is_under(req.uri().path(), p));
    if req.method() != Method::POST || state.csrf_disabled || is_forward_auth {
        return Ok(());
    }
    let h = req.headers();
    if has_cookie(h) {
        return validate_origin(state, h);
    }
    Ok(())
}

/// Whether a request carries cookies. Every Cookie header counts: an empty first one must
/// not hide the session's.
fn has_cookie(h: &HeaderMap) -> bool {
    h.get_all(header::COOKIE)
        .iter()
        .any(|c| !c.as_bytes().iter().all(u8::is_ascii_whitespace))
}

/// Sign-in's and sign-up's check of a request without cookies (those with cookies passed
/// [`verdict`]), made after their body is validated, as Better Auth's `formCsrfMiddleware`:
/// cross-site navigations are refused, and a request with Fetch Metadata, `Origin` or
/// `Referer` must come from a trusted origin.
pub fn form_csrf(state: &AppState, h: &HeaderMap) -> Result<(), ApiError> {
    if state.csrf_disabled || has_cookie(h) {
        return Ok(());
    }
    let site = header_str(h, "sec-fetch-site");
    let mode = header_str(h, "sec-fetch-mode");
    if site.is_some() || mode.is_some() || h.contains_key("sec-fetch-dest") {
        if site == Some("cross-site") && mode == Some("navigate") {
            return Err(codes::CROSS_SITE_NAVIGATION_LOGIN_BLOCKED);
        }
        return validate_origin(state, h);
    }
    if h.contains_key("origin") || h.contains_key("referer") {
        return validate_origin(state, h);
    }
    Ok(())
}

/// A body field Better Auth's origin check reads on every POST, the name its errors give
/// it, and the error an untrusted value gets.
fn redirect_target(field: &str) -> (&'static str, ApiError) {
    match field {
        "redirectTo" => ("redirectURL", codes::INVALID_REDIRECT_URL),
        "errorCallbackURL" => ("errorCallbackURL", codes::INVALID_ERROR_CALLBACK_URL),
        "newUserCallbackURL" => ("newUserCallbackURL", codes::INVALID_NEW_USER_CALLBACK_URL),
        _ => ("callbackURL", codes::INVALID_CALLBACK_URL),
    }
}

/// JavaScript's truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => false,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// Better Auth's router-wide check of every POST's redirect targets, made once the body is
/// parsed and before the route validates it: `callbackURL` (the body's, else the query's),
/// `redirectTo`, `errorCallbackURL`, `newUserCallbackURL`. A falsy one is skipped; another
/// that is not a string is a 400 with no code, one that is not a trusted origin or a safe
/// relative path a 403. Off with `advanced.disable_origin_check`.
pub fn check_redirect_targets(
    state: &AppState,
    body: Option<&Value>,
    query: Option<&str>,
) -> Result<(), ApiError> {
    if state.origin_check_disabled {
        return Ok(());
    }
    let field = |name: &str| {
        body.and_then(|b| b.as_object())
            .and_then(|o| o.get(name))
            .filter(|v| truthy(v))
            .cloned()
    };
    // Repeated in the query, it is a list, which is no string.
    let from_query = || {
        let mut values = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .filter(|(k, _)| k == "callbackURL")
            .map(|(_, v)| Value::String(v.into_owned()));
        let first = values.next()?;
        Some(match values.next() {
            None => first,
            Some(second) => Value::Array([first, second].into_iter().chain(values).collect()),
        })
    };
    let callback = field("callbackURL").or_else(|| from_query().filter(truthy));
    let targets = [
        ("callbackURL", callback),
        ("redirectTo", field("redirectTo")),
        ("errorCallbackURL", field("errorCallbackURL")),
        ("newUserCallbackURL", field("newUserCallbackURL")),
    ];
    for (name, value) in targets {
        let Some(value) = value else { continue };
        let (label, untrusted) = redirect_target(name);
        match value.as_str() {
            None => {
                return Err(ApiError::message_owned(
                    axum::http::StatusCode::BAD_REQUEST,
                    format!("Invalid {label}: expected a string"),
                ))
            }
            Some(url) if !state.origins.is_trusted_callback(url) => return Err(untrusted),
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_hosts_and_origins() {
        assert!(glob("*.example.com", "app.example.com"));
        assert!(glob("*.example.com", "a.b.example.com"));
        assert!(!glob("*.example.com", "example.com"));
        assert!(!glob("*.example.com", ".example.com"));
        assert!(!glob("*.example.com", "..example.com"));
        assert!(!glob("*.example.com", "a..example.com"));
        assert!(!glob("https://*.example.org", "https://.example.org"));
        // A `*` inside a label stays in it.
        assert!(glob("https://x*.example.com", "https://xy.example.com"));
        assert!(!glob(
            "https://x*.example.com",
            "https://x.evil.example.com"
        ));
        assert!(glob("https://x*.example.com", "https://x.example.com"));
        assert!(!glob("app-?.example.net", "app-..example.net"));
        assert!(glob("https://*.example.com", "https://app.example.com"));
        assert!(!glob("https://*.example.com", "http://app.example.com"));
    }

    #[test]
    fn wildcards_stay_within_their_registrable_domain() {
        let s = Settings {
            trusted_origins: vec!["https://*.amazonaws.com".into(), "*.example.com".into()],
            ..Settings::default()
        };
        let t = TrustedOrigins::new(&s);
        assert!(t.is_trusted("https://console.amazonaws.com"));
        assert!(
            !t.is_trusted("https://bucket.s3.amazonaws.com"),
            "a site of its own"
        );
        assert!(t.is_trusted("https://a.b.example.com"));
        assert!(t.is_trusted("http://app.example.com:8080"));
        assert!(!t.is_trusted("https://example.com.evil.net"));
    }

    #[test]
    fn relative_callbacks() {
        assert!(is_safe_relative_path("/dashboard"));
        assert!(is_safe_relative_path("/a/b?x=1&y=%20"));
        assert!(!is_safe_relative_path("//evil.com"));
        assert!(!is_safe_relative_path("/\\evil.com"));
        assert!(!is_safe_relative_path("/%2fevil.com"));
        for dotted in [
            "/..//evil.com",
            "/.//evil.com",
            "/a/../..//evil.com",
            "/a//evil.com",
            "/..",
        ] {
            assert!(!is_safe_relative_path(dotted), "{dotted}");
        }
        assert!(is_safe_relative_path("/"));
        assert!(is_safe_relative_path("/a/b/"));
        assert!(is_safe_relative_path("/file.v2..txt"));
    }
}
