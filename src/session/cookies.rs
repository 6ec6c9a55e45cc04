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
        let same_site = match over
            .same_site
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("strict") => "Strict",
            Some("none") => "None",
            _ => "Lax",
        };
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

/// The request's `Cookie` header(s), parsed lazily by name.
#[derive(Debug, Clone, Default)]
pub struct RequestCookies {
    header: String,
}

impl RequestCookies {
    /// Wraps the joined `Cookie` header values (HTTP/2 may send several).
    pub fn new(header: String) -> Self {
        Self { header }
    }

    /// Whether any cookie was sent.
    pub fn is_empty(&self) -> bool {
        self.header.trim().is_empty()
    }

    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.header.split(';').filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = k.trim();
            if k.is_empty() {
                return None;
            }
            Some((k, v.trim()))
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

    /// Names of cookies equal to `name` or chunks `name.N`, in request order, deduplicated.
    pub fn names_with_chunks(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (k, _) in self.pairs() {
            let is_chunk = k
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if (k == name || is_chunk) && !out.iter().any(|o| o == k) {
                out.push(k.to_owned());
            }
        }
        out
    }
}
