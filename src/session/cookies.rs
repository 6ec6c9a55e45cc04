//! Session cookies as Better Auth names, reads and writes them.
//!
//! Names: `[__Secure-]<prefix>.session_token`, `.session_data`, `.dont_remember`.
//! `Set-Cookie` lines use better-call's attribute order
//! (`Max-Age; Domain; Path; HttpOnly; Secure; SameSite`), values are percent-encoded as
//! `encodeURIComponent` does, and `Max-Age` is capped at the browsers' 400-day ceiling.
//! Reading follows better-call: the first cookie of a name wins, surrounding quotes are
//! dropped, and a value is percent-decoded only when it contains `%`.

use std::borrow::Cow;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::config::Settings;
use crate::crypto::signed::{SigningKey, Verified};

/// Characters `encodeURIComponent` leaves alone: `A-Z a-z 0-9 - _ . ! ~ * ' ( )`.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// Browsers cap `Max-Age` at 400 days (RFC 6265bis); Better Auth throws above it, we clamp.
pub const MAX_AGE_CEILING: u64 = 34_560_000;

/// Percent-encodes like JavaScript's `encodeURIComponent`.
pub fn encode_uri_component(v: &str) -> String {
    utf8_percent_encode(v, URI_COMPONENT).to_string()
}

/// Cookie names and shared attributes, computed once from the settings.
#[derive(Debug, Clone)]
pub struct CookieConfig {
    /// `…session_token`.
    pub token_name: String,
    /// `…session_data`.
    pub data_name: String,
    /// `…dont_remember`.
    pub dont_remember_name: String,
    /// `; Domain=…; Path=/; HttpOnly[; Secure]; SameSite=Lax` after the Max-Age.
    attrs_after_max_age: String,
}

impl CookieConfig {
    /// Derives names and attributes from the settings.
    pub fn new(s: &Settings) -> Self {
        let secure = s.secure_cookies();
        let pre = if secure { "__Secure-" } else { "" };
        let prefix = &s.advanced.cookie_prefix;
        let mut attrs = String::new();
        let xs = &s.advanced.cross_sub_domain_cookies;
        if xs.enabled {
            let domain = if xs.domain.is_empty() {
                url::Url::parse(&s.effective_base_url())
                    .ok()
                    .and_then(|u| u.host_str().map(String::from))
                    .unwrap_or_default()
            } else {
                xs.domain.clone()
            };
            if !domain.is_empty() {
                attrs.push_str("; Domain=");
                attrs.push_str(&domain);
            }
        }
        let over = &s.advanced.default_cookie_attributes;
        let same_site = over.same_site.unwrap_or_default().as_attribute();
        // better-call forces Secure for SameSite=None, Partitioned and __Secure- names.
        let secure_attr =
            secure || same_site == "None" || over.partitioned || over.secure == Some(true);
        attrs.push_str("; Path=/; HttpOnly");
        if secure_attr {
            attrs.push_str("; Secure");
        }
        attrs.push_str("; SameSite=");
        attrs.push_str(same_site);
        if over.partitioned {
            attrs.push_str("; Partitioned");
        }
        Self {
            token_name: format!("{pre}{prefix}.session_token"),
            data_name: format!("{pre}{prefix}.session_data"),
            dont_remember_name: format!("{pre}{prefix}.dont_remember"),
            attrs_after_max_age: attrs,
        }
    }

    /// A `Set-Cookie` value; `value` is encoded here, `max_age` `None` makes a browser-session
    /// cookie.
    pub fn set(&self, name: &str, value: &str, max_age: Option<u64>) -> String {
        let mut out = String::with_capacity(name.len() + value.len() + 80);
        out.push_str(name);
        out.push('=');
        out.push_str(&encode_uri_component(value));
        if let Some(age) = max_age {
            out.push_str("; Max-Age=");
            out.push_str(&age.min(MAX_AGE_CEILING).to_string());
        }
        out.push_str(&self.attrs_after_max_age);
        out
    }

    /// A `Set-Cookie` value that deletes the cookie (empty value, `Max-Age=0`).
    pub fn expire(&self, name: &str) -> String {
        self.set(name, "", Some(0))
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
#[derive(Debug, Clone, Default)]
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

    /// Reads and verifies a signed cookie.
    pub fn signed(&self, name: &str, key: &SigningKey) -> Verified {
        match self.get(name) {
            Some(v) if !v.is_empty() => key.verify(&v),
            _ => Verified::Absent,
        }
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

    /// `name` (when sent) and the names of the chunks sent, in index order: at most
    /// `1 + MAX_CHUNKS` names, whatever the request holds.
    pub fn names_with_chunks(&self, name: &str) -> Vec<String> {
        let set = self.chunk_set(name);
        let mut out = Vec::new();
        if self.pairs().any(|(k, _)| k == name) {
            out.push(name.to_owned());
        }
        out.extend(
            (0..MAX_CHUNKS)
                .filter(|i| set & (1 << i) != 0)
                .map(|i| format!("{name}.{i}")),
        );
        out
    }
}
