//! Checks of the forward-auth endpoint: a path of its own, identity headers that cannot
//! frame, route or pass for anything else, a usable sign-in URL.

use super::origins::is_http_url;
use super::validate::invalid;
use super::{ConfigError, Settings};

/// Whether path `a` is `b` or below it (`/a/b` is within `/a`, `/ab` is not).
fn path_within(a: &str, b: &str) -> bool {
    a.strip_prefix(b)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || b.ends_with('/'))
}

/// Headers that frame or route an answer or a request, that a proxy or server acts on, or
/// that an application reads as the client's address, scheme, host, path or method: an
/// identity header of one of these names would let a user's data steer the proxy or pass
/// for something else. Compared with `_` read as `-`, as CGI, WSGI and Rack do.
const RESERVED_HEADERS: [&str; 72] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "host",
    "set-cookie",
    "set-cookie2",
    "location",
    "cache-control",
    "vary",
    "www-authenticate",
    "authorization",
    "cookie",
    "date",
    "server",
    "status",
    "expect",
    "retry-after",
    "via",
    "origin",
    "referer",
    "user-agent",
    "range",
    "max-forwards",
    "refresh",
    "link",
    "alt-svc",
    "clear-site-data",
    "strict-transport-security",
    "x-request-id",
    "x-auth-sign-in",
    // Client address.
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "x-originating-ip",
    "x-remote-ip",
    "x-remote-addr",
    "remote-addr",
    "x-proxyuser-ip",
    "x-forwarded",
    "forwarded-for",
    "wl-proxy-client-ip",
    "fly-client-ip",
    "x-appengine-user-ip",
    "x-azure-clientip",
    // Routing inside frameworks.
    "x-matched-path",
    // Response policy a proxy passes on.
    "x-frame-options",
    "x-content-type-options",
    "x-xss-protection",
    "referrer-policy",
    "permissions-policy",
    "cdn-cache-control",
    "surrogate-control",
    // Scheme, host, path, method.
    "x-scheme",
    "x-url-scheme",
    "x-client-scheme",
    "front-end-https",
    "x-host",
    "x-http-host-override",
    "x-rewrite-url",
    "x-script-name",
    "script-name",
    "path-info",
    "request-method",
];

/// Prefixes of reserved header families (see [`RESERVED_HEADERS`]).
const RESERVED_PREFIXES: [&str; 19] = [
    "access-control-",
    "proxy-",
    "sec-",
    "content-",
    "x-forwarded-",
    "x-original-",
    "x-accel-",
    "x-envoy-",
    "x-middleware-",
    "x-sendfile",
    "x-lighttpd-",
    "x-litespeed-",
    "x-http-method",
    "x-method-override",
    "accept",
    "if-",
    "server-",
    "x-invoke-",
    "cross-origin-",
];

/// Whether `name` may carry an identity header: a valid header name, not one that
/// frames or routes the answer, not a CORS or proxy control header, however spelled.
fn is_identity_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase().replace('_', "-");
    axum::http::HeaderName::from_bytes(name.as_bytes()).is_ok()
        && !RESERVED_HEADERS.contains(&lower.as_str())
        && !RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p))
}

impl Settings {
    /// Refuses a forward-auth path overlapping another route, identity headers a proxy or an
    /// application would act on, a sign-in URL or redirect parameter that is not usable.
    pub(super) fn check_forward_auth(&self) -> Result<(), ConfigError> {
        let fa = &self.forward_auth;
        let path = fa.path.as_str();
        let base = self.base_path.as_str();
        let reserved = ["/healthz", "/readyz", "/metrics", "/openapi.json"];
        if reserved
            .iter()
            .any(|r| path_within(base, r) || path_within(r, base))
        {
            return Err(invalid(format!(
                "base_path {base:?} overlaps an operations endpoint"
            )));
        }
        if !fa.enabled {
            return Ok(());
        }
        if !path.starts_with('/') || path.len() < 2 || path.ends_with('/') || path.contains("//") {
            return Err(invalid(format!(
                "forward_auth.path must start with '/' and not end with '/': {path:?}"
            )));
        }
        // Every path below forward_auth.path is forward auth (Envoy appends the client's
        // path): no other route may live there, nor it among them.
        let overlaps = path_within(path, base)
            || path_within(base, path)
            || reserved
                .iter()
                .any(|r| path_within(path, r) || path_within(r, path));
        if overlaps {
            return Err(invalid(format!(
                "forward_auth.path {path:?} overlaps base_path {base:?} or an operations endpoint"
            )));
        }
        let mut names = vec![
            ("header_user_id", &fa.header_user_id),
            ("header_email", &fa.header_email),
            ("header_name", &fa.header_name),
            ("header_session_id", &fa.header_session_id),
            ("header_expires_at", &fa.header_expires_at),
        ];
        if fa.jwt.enabled {
            names.push(("jwt.header", &fa.jwt.header));
        }
        for (i, (key, name)) in names.iter().enumerate() {
            if !is_identity_header(name) {
                return Err(invalid(format!(
                    "forward_auth.{key}: {name:?} cannot carry an identity (not a header name, or one that frames, routes or controls the answer)"
                )));
            }
            let cgi = |n: &str| n.to_ascii_lowercase().replace('_', "-");
            if names
                .iter()
                .take(i)
                .any(|(_, other)| cgi(other) == cgi(name))
            {
                return Err(invalid(format!(
                    "forward_auth.{key}: {name:?} is used twice"
                )));
            }
        }
        let url = fa.sign_in_url.as_str();
        let relative = url.starts_with('/') && !url.starts_with("//") && !url.contains('\\');
        let printable = url.bytes().all(|b| (0x21..0x7f).contains(&b));
        if !url.is_empty() && (!printable || !(relative || is_http_url(url))) {
            return Err(invalid(format!(
                "forward_auth.sign_in_url must be a path (/login) or an http(s) URL, not {url:?}"
            )));
        }
        let param_ok = !fa.redirect_param.is_empty()
            && fa
                .redirect_param
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
        if !param_ok {
            return Err(invalid(
                "forward_auth.redirect_param must be letters, digits, _ or -",
            ));
        }
        Ok(())
    }
}
