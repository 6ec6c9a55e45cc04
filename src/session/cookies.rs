//! Session cookies as the domain sees them: their names, the request's cookies parsed once,
//! what a request presents as its session ([`Credential`]), and the operations a response
//! must carry ([`CookieOp`]). Writing them out is the HTTP layer's job.
//!
//! Names: `[__Secure-]<prefix>.session_token`, `.session_data`, `.dont_remember`, or the
//! names `advanced.cookies` gives them (still behind `__Secure-`).
//! Reading follows better-call: the first cookie of a name wins, surrounding quotes are
//! dropped, and a value is percent-decoded only when it contains `%`. The `cookie` crate
//! is not used for it: its parser trims Unicode whitespace where this one trims ASCII, and
//! yields each cookie on its own, where this reader keeps spans into the one header string
//! (no copy per cookie, and each lookup without parsing again).

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use crate::config::{SessionCookie, Settings};
use crate::crypto::signed::{Keyring, Verified};

/// Cookie names, computed once from the settings.
#[derive(Debug, Clone)]
pub struct CookieNames {
    /// `…session_token`.
    pub token: String,
    /// `…session_data`.
    pub data: String,
    /// `…dont_remember`.
    pub dont_remember: String,
    /// `<cookie_prefix>.admin_session`.
    pub admin_session: String,
}

impl CookieNames {
    /// `__Secure-` when cookies are secure, then the configured name.
    pub fn new(s: &Settings) -> Self {
        let pre = if s.secure_cookies() { "__Secure-" } else { "" };
        let name = |c| format!("{pre}{}", s.advanced.cookie_name(c));
        Self {
            token: name(SessionCookie::SessionToken),
            data: name(SessionCookie::SessionData),
            dont_remember: name(SessionCookie::DontRemember),
            admin_session: format!("{pre}{}.admin_session", s.advanced.cookie_prefix),
        }
    }

    /// The name of a cookie kind (`<data>.<i>` for a cache chunk).
    pub fn of(&self, kind: CookieKind) -> Cow<'_, str> {
        match kind {
            CookieKind::Token => Cow::Borrowed(&self.token),
            CookieKind::DontRemember => Cow::Borrowed(&self.dont_remember),
            CookieKind::Cache => Cow::Borrowed(&self.data),
            CookieKind::CacheChunk(i) => Cow::Owned(format!("{}.{i}", self.data)),
            CookieKind::AdminSession => Cow::Borrowed(&self.admin_session),
        }
    }

    /// The multi-session plugin's cookie for a session token:
    /// `<session token name>_multi-<token in lower case>`, as Better Auth names it.
    pub fn multi(&self, token: &str) -> String {
        format!("{}{MULTI_MARK}{}", self.token, token.to_lowercase())
    }
}

/// What marks a cookie as the multi-session plugin's: Better Auth reads any cookie whose
/// name contains it.
pub const MULTI_MARK: &str = "_multi-";

/// `_multi-` cookies read from one request at most (the first ones); any beyond are
/// ignored, so a request costs at most this many store lookups, and the lines that end
/// them fit under the response's cap on cookie lines (32).
pub const MAX_MULTI_COOKIES: usize = 16;

/// The session cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieKind {
    /// The signed session token.
    Token,
    /// The signed "do not remember" flag of a browser-session sign-in.
    DontRemember,
    /// The whole cookie-cache value.
    Cache,
    /// One chunk of a cookie-cache value too large for one cookie (`0..MAX_CHUNKS`).
    CacheChunk(u8),
    /// The admin plugin's signed `admin_session` (the admin's session while impersonating).
    AdminSession,
}

/// Which cache cookies a request carried: the whole value and a bit set of chunks (bit `i`
/// for chunk `i`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CarriedCache {
    /// The unchunked cache cookie.
    pub whole: bool,
    /// Chunks `0..MAX_CHUNKS`.
    pub chunks: u32,
}

impl CarriedCache {
    /// Each carried cache cookie, the whole value first, then chunks in index order.
    pub fn kinds(self) -> impl Iterator<Item = CookieKind> {
        self.whole
            .then_some(CookieKind::Cache)
            .into_iter()
            .chain(chunk_kinds(self.chunks))
    }
}

/// The chunks of a chunk set, in index order.
pub fn chunk_kinds(set: u32) -> impl Iterator<Item = CookieKind> {
    (0..MAX_CHUNKS as u8)
        .filter(move |i| set & (1 << i) != 0)
        .map(CookieKind::CacheChunk)
}

/// What a response must do to the client's cookies, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieOp {
    /// Sets a cookie to a (signed) value; `max_age` `None` makes a browser-session cookie.
    Set {
        /// Which cookie.
        kind: CookieKind,
        /// Its value, not yet encoded.
        value: String,
        /// Lifetime in seconds.
        max_age: Option<u64>,
    },
    /// Writes a cookie-cache value: one cookie, or chunks when it does not fit in one, or
    /// nothing when the browser could not send it back. Carried cache cookies that are not
    /// rewritten are expired.
    SetCache {
        /// The encoded cache value.
        value: String,
        /// Lifetime in seconds.
        max_age: Option<u64>,
        /// What the request carried.
        carried: CarriedCache,
    },
    /// Deletes a cookie.
    Expire(CookieKind),
    /// Sets a multi-session cookie (named by [`CookieNames::multi`]) to a signed value,
    /// with the session token cookie's attributes.
    SetMulti {
        /// The cookie's name.
        name: String,
        /// Its value, not yet encoded.
        value: String,
        /// Lifetime in seconds.
        max_age: u64,
    },
    /// Deletes a multi-session cookie, by the name the request sent it under.
    ExpireMulti(String),
}

impl CookieOp {
    /// Whether it is a multi-session cookie's.
    pub fn is_multi(&self) -> bool {
        matches!(self, Self::SetMulti { .. } | Self::ExpireMulti(_))
    }

    /// Whether it writes `kind` anew, deleting any copy `kind` had: a [`Self::Set`] of it,
    /// or for the cache's cookies a [`Self::SetCache`] (which expires the carried cache
    /// cookies it does not rewrite).
    fn rewrites(&self, kind: CookieKind) -> bool {
        match self {
            Self::Set { kind: k, .. } => *k == kind,
            Self::SetCache { .. } => {
                matches!(kind, CookieKind::Cache | CookieKind::CacheChunk(_))
            }
            _ => false,
        }
    }
}

/// `ops` for a proxy that passes on only the first cookie line of an answer (nginx's
/// `$upstream_http_set_cookie`): a deletion that a later write of the same cookie makes
/// needless is left out, and the session token's write goes first. The browser ends with
/// the same cookies; through such a proxy, a refreshed session reaches it before a cache
/// value does (which is written again on a later request).
pub fn token_first(ops: Vec<CookieOp>) -> Vec<CookieOp> {
    let needless: Vec<bool> = ops
        .iter()
        .enumerate()
        .map(|(i, op)| match op {
            CookieOp::Expire(kind) => ops.iter().skip(i + 1).any(|later| later.rewrites(*kind)),
            _ => false,
        })
        .collect();
    let (mut first, rest): (Vec<_>, Vec<_>) = ops
        .into_iter()
        .zip(needless)
        .filter_map(|(op, needless)| (!needless).then_some(op))
        .partition(|op| {
            matches!(
                op,
                CookieOp::Set {
                    kind: CookieKind::Token,
                    ..
                }
            )
        });
    first.extend(rest);
    first
}

/// What a request presents as its session.
#[derive(Debug, Clone)]
pub enum Credential {
    /// Its cookies.
    Cookies(RequestCookies),
    /// Forward auth's `Authorization: Bearer`, standing in for the session cookie of a
    /// request that has none, as `token.signature`; no other cookie is read with it. (The
    /// bearer plugin on the API routes replaces the token cookie in [`Self::Cookies`]
    /// instead, as Better Auth does.)
    Bearer(String),
}

impl Credential {
    /// The signed session token presented, verified under `keys`.
    pub fn token(&self, names: &CookieNames, keys: &Keyring) -> Verified {
        match self {
            Self::Cookies(c) => c.signed(&names.token, keys),
            Self::Bearer(signed) => keys.verify(signed),
        }
    }

    /// Whether it is a bearer token.
    pub fn is_bearer(&self) -> bool {
        matches!(self, Self::Bearer(_))
    }

    /// The request's cookies (none for a bearer token).
    pub fn cookies(&self) -> &RequestCookies {
        static NONE: RequestCookies = RequestCookies::EMPTY;
        match self {
            Self::Cookies(c) => c,
            Self::Bearer(_) => &NONE,
        }
    }
}

/// Cookies read from one request at most (browsers keep about 180 per site); any beyond
/// are ignored.
pub const MAX_COOKIES: usize = 256;
/// Cookie-cache chunks (`<name>.0` to `<name>.7`) read, written or expired at most: with a
/// 16 KiB request head no more than four can ever come back.
pub const MAX_CHUNKS: usize = 8;

/// The request's `Cookie` header(s), parsed once into name and value spans (at most
/// [`MAX_COOKIES`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCookies {
    header: String,
    /// (name start, name end, value start, value end) in `header`.
    pairs: Vec<(usize, usize, usize, usize)>,
}

/// Trims ASCII whitespace off a span of `text`.
fn trimmed(text: &str, mut start: usize, mut end: usize) -> (usize, usize) {
    let b = text.as_bytes();
    while start < end && b.get(start).is_some_and(u8::is_ascii_whitespace) {
        start += 1;
    }
    while end > start && b.get(end - 1).is_some_and(u8::is_ascii_whitespace) {
        end -= 1;
    }
    (start, end)
}

impl RequestCookies {
    /// No cookies.
    pub const EMPTY: Self = Self {
        header: String::new(),
        pairs: Vec::new(),
    };

    /// Parses the joined `Cookie` header values (HTTP/2 and some clients send several).
    pub fn new(header: String) -> Self {
        let mut pairs = Vec::new();
        let mut at = 0;
        for part in header.split(';') {
            let start = at;
            at += part.len() + 1;
            if pairs.len() >= MAX_COOKIES {
                break;
            }
            let Some(eq) = part.find('=') else { continue };
            let (ns, ne) = trimmed(&header, start, start + eq);
            if ns == ne {
                continue;
            }
            let (vs, ve) = trimmed(&header, start + eq + 1, start + part.len());
            pairs.push((ns, ne, vs, ve));
        }
        Self { header, pairs }
    }

    /// Whether any cookie was sent.
    pub fn is_empty(&self) -> bool {
        self.header.trim().is_empty()
    }

    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().filter_map(|&(ns, ne, vs, ve)| {
            Some((self.header.get(ns..ne)?, self.header.get(vs..ve)?))
        })
    }

    /// The value of the first cookie called `name`, unquoted and percent-decoded when it
    /// contains `%` (left as-is if decoding fails). Borrowed from the header unless decoded:
    /// cache values (base64url) are never copied.
    pub fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        let (_, raw) = self.pairs().find(|(k, _)| *k == name)?;
        let raw = raw
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .unwrap_or(raw);
        if raw.contains('%') {
            match percent_decode_str(raw).decode_utf8() {
                Ok(v) => Some(Cow::Owned(v.into_owned())),
                Err(_) => Some(Cow::Borrowed(raw)),
            }
        } else {
            Some(Cow::Borrowed(raw))
        }
    }

    /// Whether a cookie called `name` was sent (its value neither copied nor decoded).
    pub fn has(&self, name: &str) -> bool {
        self.pairs().any(|(k, _)| k == name)
    }

    /// Reads and verifies a signed cookie.
    pub fn signed(&self, name: &str, keys: &Keyring) -> Verified {
        match self.get(name) {
            Some(v) if !v.is_empty() => keys.verify(&v),
            _ => Verified::Absent,
        }
    }

    /// Names of the cookies whose name contains [`MULTI_MARK`], each name once, in request
    /// order (all of them: counting costs no lookup).
    pub fn multi_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for (k, _) in self.pairs() {
            if k.contains(MULTI_MARK) && !names.contains(&k) {
                names.push(k);
            }
        }
        names
    }

    /// The first [`MAX_MULTI_COOKIES`] multi-session cookies that verify under `keys`, as
    /// (name, session token), in request order.
    pub fn multi_tokens(&self, keys: &Keyring) -> Vec<(String, String)> {
        self.multi_names()
            .into_iter()
            .take(MAX_MULTI_COOKIES)
            .filter_map(|name| Some((name.to_owned(), self.signed(name, keys).valid()?)))
            .collect()
    }

    /// Which chunks `name.0` … `name.{MAX_CHUNKS - 1}` the request carries, as a bit set
    /// (bit `i` for `name.i`). Other suffixes (`name.08`, `name.12`, `name.x`) are not
    /// chunks of this service and are ignored.
    pub fn chunk_set(&self, name: &str) -> u32 {
        let mut set = 0u32;
        for (k, _) in self.pairs() {
            let idx = k
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('.'))
                .filter(|n| n.len() == 1)
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|i| *i < MAX_CHUNKS);
            if let Some(i) = idx {
                set |= 1 << i;
            }
        }
        set
    }

    /// Which cache cookies called `name` (whole) and `name.<i>` (chunks) were sent.
    pub fn carried(&self, name: &str) -> CarriedCache {
        CarriedCache {
            whole: self.pairs().any(|(k, _)| k == name),
            chunks: self.chunk_set(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(kind: CookieKind) -> CookieOp {
        CookieOp::Set {
            kind,
            value: "v".into(),
            max_age: Some(1),
        }
    }

    fn cache() -> CookieOp {
        CookieOp::SetCache {
            value: "c".into(),
            max_age: Some(1),
            carried: CarriedCache::default(),
        }
    }

    #[test]
    fn token_first_puts_the_token_first_and_drops_only_deletions_written_over() {
        use CookieKind::*;
        // A cache miss (its cookies expired) followed by a refresh.
        let ops = vec![
            CookieOp::Expire(Cache),
            CookieOp::Expire(CacheChunk(1)),
            set(Token),
            cache(),
        ];
        assert_eq!(token_first(ops), vec![set(Token), cache()]);
        // Deletions nothing rewrites stay, in order, after the token.
        let ops = vec![
            CookieOp::Expire(DontRemember),
            cache(),
            CookieOp::Expire(Cache),
            set(Token),
        ];
        assert_eq!(
            token_first(ops),
            vec![
                set(Token),
                CookieOp::Expire(DontRemember),
                cache(),
                CookieOp::Expire(Cache),
            ]
        );
        // A signed-out answer is left as it is.
        let ops = vec![CookieOp::Expire(Token), CookieOp::Expire(Cache)];
        assert_eq!(token_first(ops.clone()), ops);
    }
}
