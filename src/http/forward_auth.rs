//! Forward auth for reverse proxies: any method on the configured path answers
//! `200` with identity headers when the request carries a valid session (cookie or
//! `Authorization: Bearer <token>`), else `401` with a JSON body — never Better Auth's
//! `200 null`, which nginx's `auth_request` would take as success — or, in redirect mode,
//! a `302` to the sign-in URL carrying the original URL. Session resolution is exactly
//! `get-session`'s (cache, revocation, refresh), and refreshed cookies come back as
//! `Set-Cookie` for the proxy to pass on.
//!
//! The path accepts any suffix (`/forward-auth/app/page`: Envoy's `ext_authz` appends
//! the original path), and no method gets a 2xx without a valid session: CORS does not
//! apply here, so even a preflight is checked like any request.
//!
//! Identity headers are always sent, in one encoding a proxy's upstream can always undo
//! with `decodeURIComponent`: a value of printable ASCII without `%` (and without spaces
//! at its ends) as is, anything else percent-encoded as `encodeURIComponent` does.
//!
//! In redirect mode the original URL (from `X-Original-URL` or
//! `X-Forwarded-Proto/Host/Uri`, which the client may forge) is passed to the sign-in
//! page only when it is an http(s) URL of a trusted origin; otherwise the redirect goes
//! to the sign-in page alone. A `401` carries the same target in `X-Auth-Sign-In` (when
//! a sign-in URL is configured), for proxies that can only turn a 401 into a redirect
//! themselves (nginx), so that they need not build the URL from what the client sent.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::config::ForwardAuthSettings;
use crate::error::{codes, ApiError};
use crate::http::extract::{json_response, Ctx};
use crate::http::set_cookie::encode_uri_component;
use crate::http::AppState;
use crate::js::date::iso;
use crate::session::{Current, ResolveOptions};

/// Header names, parsed once.
#[derive(Debug, Clone)]
pub struct ForwardAuth {
    user_id: HeaderName,
    email: HeaderName,
    name: HeaderName,
    session_id: HeaderName,
    expires_at: HeaderName,
    redirect: bool,
    sign_in_url: String,
    redirect_param: String,
    /// A JWT for the upstream: its header, the audiences `?aud=` may name, its lifetime.
    jwt: Option<(HeaderName, Vec<String>, u64)>,
}

impl ForwardAuth {
    /// Validates the configured header names.
    pub fn new(s: &ForwardAuthSettings) -> Result<Self, String> {
        let h = |key: &str, v: &str| {
            HeaderName::try_from(v)
                .map_err(|_| format!("forward_auth.{key}: {v:?} is not a header name"))
        };
        if s.redirect && s.sign_in_url.is_empty() {
            return Err("forward_auth.redirect needs forward_auth.sign_in_url".into());
        }
        Ok(Self {
            user_id: h("header_user_id", &s.header_user_id)?,
            email: h("header_email", &s.header_email)?,
            name: h("header_name", &s.header_name)?,
            session_id: h("header_session_id", &s.header_session_id)?,
            expires_at: h("header_expires_at", &s.header_expires_at)?,
            redirect: s.redirect,
            sign_in_url: s.sign_in_url.clone(),
            redirect_param: s.redirect_param.clone(),
            jwt: if s.jwt.enabled {
                Some((
                    h("jwt.header", &s.jwt.header)?,
                    s.jwt.audiences.clone(),
                    s.jwt.expiration_time,
                ))
            } else {
                None
            },
        })
    }
}

/// `?aud=` names an audience `forward_auth.jwt.audiences` does not list.
const INVALID_AUDIENCE: ApiError = ApiError::new(
    StatusCode::BAD_REQUEST,
    "INVALID_AUDIENCE",
    "The audience is not one forward_auth.jwt.audiences lists",
);

/// What forward auth reads from the proxy's request besides cookies: the values as sent,
/// the original URL put together only for a signed-out user.
pub struct ProxyRequest {
    authorization: Option<String>,
    original_url: Option<HeaderValue>,
    forwarded_uri: Option<HeaderValue>,
    original_uri: Option<HeaderValue>,
    forwarded_host: Option<HeaderValue>,
    host: Option<HeaderValue>,
    forwarded_proto: Option<HeaderValue>,
}

const X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

impl FromRequestParts<AppState> for ProxyRequest {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        let h = &parts.headers;
        let get = |name: HeaderName| h.get(name).cloned();
        Ok(Self {
            authorization: h
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(String::from),
            original_url: get(X_ORIGINAL_URL),
            forwarded_uri: get(X_FORWARDED_URI),
            original_uri: get(X_ORIGINAL_URI),
            forwarded_host: get(X_FORWARDED_HOST),
            host: get(header::HOST),
            forwarded_proto: get(X_FORWARDED_PROTO),
        })
    }
}

impl ProxyRequest {
    /// The URL the user asked for, from the proxy's forwarding headers.
    fn original_url(&self) -> Option<String> {
        fn text(v: &Option<HeaderValue>) -> Option<&str> {
            v.as_ref()
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
        }
        if let Some(url) = text(&self.original_url) {
            return Some(url.to_owned());
        }
        let uri = text(&self.forwarded_uri).or_else(|| text(&self.original_uri))?;
        let host = text(&self.forwarded_host).or_else(|| text(&self.host))?;
        let proto = text(&self.forwarded_proto).unwrap_or("https");
        Some(format!("{proto}://{host}{uri}"))
    }
}

fn redirect_requested(ctx: &Ctx, cfg: &ForwardAuth) -> bool {
    match ctx.query("redirect") {
        Some(v) => !matches!(v.as_str(), "" | "0" | "false"),
        None => cfg.redirect,
    }
}

/// A header value `decodeURIComponent` turns back into `v`: `v` itself when it is
/// printable ASCII without `%` and without spaces at its ends, else its percent-encoding.
pub fn header_text(v: &str) -> std::borrow::Cow<'_, str> {
    let plain = v.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'%')
        && !v.starts_with(' ')
        && !v.ends_with(' ');
    if plain {
        std::borrow::Cow::Borrowed(v)
    } else {
        std::borrow::Cow::Owned(encode_uri_component(v))
    }
}

fn identity_headers(cfg: &ForwardAuth, cur: &Current, h: &mut HeaderMap) {
    // The values depend on the session and user alone: made once per remembered
    // cookie-cache value.
    let make = || -> Box<[Bytes]> {
        let expires_at = iso(&cur.session.expires_at);
        [
            cur.user.id.as_str(),
            &cur.user.email,
            &cur.user.name,
            &cur.session.id,
            &expires_at,
        ]
        .map(|v| Bytes::from(header_text(v).into_owned()))
        .into()
    };
    let made;
    let values = match &cur.memo {
        Some(memo) => memo.pieces(make),
        None => {
            made = make();
            &made
        }
    };
    let names = [
        &cfg.user_id,
        &cfg.email,
        &cfg.name,
        &cfg.session_id,
        &cfg.expires_at,
    ];
    for (name, value) in names.into_iter().zip(values) {
        // Always valid: header_text leaves only printable ASCII.
        if let Ok(v) = HeaderValue::from_maybe_shared(value.clone()) {
            h.insert(name.clone(), v);
        }
    }
}

/// The original URL, if it may be handed to the sign-in page: an http(s) URL of a trusted
/// origin (so that a forged forwarding header cannot send users elsewhere).
fn trusted_return_url(ctx: &Ctx, url: Option<String>) -> Option<String> {
    let url = url?;
    let parsed = url::Url::parse(&url).ok()?;
    let ok = matches!(parsed.scheme(), "http" | "https")
        && parsed.username().is_empty()
        && parsed.password().is_none()
        // A path of `//host` (from `/..//evil.com`) reads as another host to whatever
        // takes the path alone.
        && !parsed.path().starts_with("//")
        && ctx.state.origins.is_trusted(&url);
    // The URL as parsed, not as sent: any other parser then reads the same host.
    ok.then(|| parsed.to_string())
}

/// Where a signed-out user is sent: the sign-in URL, with the original URL when trusted.
fn sign_in_target(cfg: &ForwardAuth, original: Option<String>) -> String {
    let mut target = cfg.sign_in_url.clone();
    if let Some(url) = original {
        target.push(if target.contains('?') { '&' } else { '?' });
        target.push_str(&cfg.redirect_param);
        target.push('=');
        target.push_str(&encode_uri_component(&url));
    }
    target
}

/// The check's body: `{"userId", "sessionId"}`.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Identity<'a> {
    user_id: &'a str,
    session_id: &'a str,
}

/// The forward-auth check.
pub async fn check(mut ctx: Ctx, proxy: ProxyRequest) -> Response {
    ctx.adopt_bearer(proxy.authorization.as_deref());
    let svc = ctx.state.sessions.clone();
    let cfg = ctx.state.forward_auth.clone();
    // The audience is checked before the session: a misconfigured location fails for
    // everyone, visibly, not only for signed-in users.
    let audience = match &cfg.jwt {
        Some((_, allowed, _)) => match ctx.query("aud") {
            Some(aud) if !allowed.contains(&aud) => return INVALID_AUDIENCE.into_response(),
            aud => aud,
        },
        None => None,
    };
    let opts = ResolveOptions {
        disable_refresh: false,
        disable_cookie_cache: false,
        defer_read_only: svc.policy().defer_refresh,
    };
    let resolved = svc.resolve(&ctx.credential, opts, &mut ctx.out).await;
    // Where a signed-out user goes: worked out only for one.
    let signed_out = matches!(resolved, Ok(None));
    let redirect = signed_out && redirect_requested(&ctx, &cfg);
    let original = signed_out
        .then(|| trusted_return_url(&ctx, proxy.original_url()))
        .flatten();
    // nginx hands the browser only the first Set-Cookie line of this answer.
    let cookies = ctx.take_cookies_token_first();
    let mut res = match resolved {
        Ok(Some(cur)) => {
            let body = Identity {
                user_id: &cur.user.id,
                session_id: &cur.session.id,
            };
            let jwt = match (&cfg.jwt, ctx.state.jwt.as_ref()) {
                (Some((name, _, ttl)), Some(j)) => {
                    match crate::http::tokens::mint_for(j, &svc, &cur, audience.as_deref(), *ttl)
                        .await
                    {
                        Ok(t) => Some((name, t)),
                        // No token, no pass: the upstream relies on it.
                        Err(e) => return (cookies, e).into_response(),
                    }
                }
                _ => None,
            };
            let mut res = (cookies, json_response(&body, 128)).into_response();
            identity_headers(&cfg, &cur, res.headers_mut());
            if let Some((name, t)) = jwt {
                if let Ok(v) = HeaderValue::from_str(&t) {
                    res.headers_mut().insert(name.clone(), v);
                }
            }
            res
        }
        Ok(None) if redirect && !cfg.sign_in_url.is_empty() => {
            let mut res = (cookies, StatusCode::FOUND).into_response();
            if let Ok(v) = HeaderValue::from_str(&sign_in_target(&cfg, original)) {
                res.headers_mut().insert(header::LOCATION, v);
            }
            res
        }
        Ok(None) => {
            let mut res = (cookies, codes::UNAUTHORIZED).into_response();
            if !cfg.sign_in_url.is_empty() {
                if let Ok(v) = HeaderValue::from_str(&sign_in_target(&cfg, original)) {
                    res.headers_mut()
                        .insert(HeaderName::from_static("x-auth-sign-in"), v);
                }
            }
            res
        }
        // A store failure is not "signed out": a 401 would send a signed-in user to the
        // sign-in page. Proxies treat 5xx as an error.
        Err(e) if e.is_fault() => (cookies, ApiError::from(e)).into_response(),
        Err(_) => (cookies, codes::UNAUTHORIZED).into_response(),
    };
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
