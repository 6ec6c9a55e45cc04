//! Writes the domain's cookie operations as `Set-Cookie` lines, byte for byte as Better
//! Auth does: better-call's attribute order (`Max-Age; Domain; Path; HttpOnly; Secure;
//! SameSite; Partitioned`), values percent-encoded as `encodeURIComponent` does, `Max-Age`
//! capped at the browsers' 400-day ceiling, and cache values chunked as Better Auth chunks
//! them. Each session cookie has attributes of its own (`advanced.cookies.<key>.attributes`
//! over `advanced.default_cookie_attributes`). The `cookie` crate writes its attributes in
//! another order, which clients that compare headers (and our byte-exact tests against
//! Better Auth) would see, so the lines are written here.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::config::{CookieAttributes, SessionCookie, Settings};
use crate::session::cookies::{CarriedCache, CookieKind, CookieNames, CookieOp, MAX_CHUNKS};

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

/// Better Auth's per-cookie size limit, attributes included.
pub const MAX_COOKIE_SIZE: usize = 4050;

/// Percent-encodes like JavaScript's `encodeURIComponent`.
pub fn encode_uri_component(v: &str) -> String {
    utf8_percent_encode(v, URI_COMPONENT).to_string()
}

/// Cookie names and attributes, computed once from the settings.
#[derive(Debug, Clone)]
pub struct CookieWriter {
    /// The names.
    pub names: CookieNames,
    /// Each cookie's attributes after its Max-Age (`; Domain=…; Path=/; HttpOnly[; Secure];
    /// SameSite=Lax[; Partitioned]`): the session token's, the cache's (its chunks too), and
    /// the `dont_remember` flag's.
    token_attrs: String,
    data_attrs: String,
    dont_remember_attrs: String,
    /// Largest cache value written: the accepted request head less 4 KiB for the request
    /// line, the other headers and cookies, so that the browser can still send it back.
    max_cache_bytes: usize,
}

/// The attributes after the Max-Age of a cookie with the configured attributes `a`;
/// `cross_domain`: the cross-subdomain domain, if any (which `a.domain` overrides).
fn attributes(s: &Settings, cross_domain: &str, a: &CookieAttributes) -> String {
    let mut attrs = String::new();
    let domain = if a.domain.is_empty() {
        cross_domain
    } else {
        &a.domain
    };
    if !domain.is_empty() {
        attrs.push_str("; Domain=");
        attrs.push_str(domain);
    }
    attrs.push_str("; Path=");
    attrs.push_str(if a.path.is_empty() { "/" } else { &a.path });
    attrs.push_str("; HttpOnly");
    let same_site = a.same_site.unwrap_or_default().as_attribute();
    let partitioned = a.partitioned == Some(true);
    // better-call forces Secure for SameSite=None, Partitioned and __Secure- names.
    if s.secure_cookies() || same_site == "None" || partitioned || a.secure == Some(true) {
        attrs.push_str("; Secure");
    }
    attrs.push_str("; SameSite=");
    attrs.push_str(same_site);
    if partitioned {
        attrs.push_str("; Partitioned");
    }
    attrs
}

impl CookieWriter {
    /// Derives names and attributes from the settings.
    pub fn new(s: &Settings) -> Self {
        let xs = &s.advanced.cross_sub_domain_cookies;
        let cross_domain = match (xs.enabled, xs.domain.is_empty()) {
            (false, _) => String::new(),
            (true, false) => xs.domain.clone(),
            (true, true) => url::Url::parse(&s.effective_base_url())
                .ok()
                .and_then(|u| u.host_str().map(String::from))
                .unwrap_or_default(),
        };
        let attrs = |c| attributes(s, &cross_domain, &s.advanced.cookie_attributes(c));
        Self {
            names: CookieNames::new(s),
            token_attrs: attrs(SessionCookie::SessionToken),
            data_attrs: attrs(SessionCookie::SessionData),
            dont_remember_attrs: attrs(SessionCookie::DontRemember),
            max_cache_bytes: s.server.max_header_bytes.saturating_sub(4096),
        }
    }

    /// The attributes of a cookie kind (a cache chunk has the cache's).
    fn attrs(&self, kind: CookieKind) -> &str {
        match kind {
            // Better Auth writes `admin_session` with the session token's attributes.
            CookieKind::Token | CookieKind::AdminSession => &self.token_attrs,
            CookieKind::DontRemember => &self.dont_remember_attrs,
            CookieKind::Cache | CookieKind::CacheChunk(_) => &self.data_attrs,
        }
    }

    /// A `Set-Cookie` value for a cookie kind; `value` is encoded here, `max_age` `None`
    /// makes a browser-session cookie.
    pub fn set(&self, kind: CookieKind, value: &str, max_age: Option<u64>) -> String {
        line(&self.names.of(kind), self.attrs(kind), value, max_age)
    }

    /// The length of a cache chunk's line for a name of `name_len` bytes and an empty
    /// value, without writing it: the cache is chunked on every write.
    fn empty_chunk_len(&self, name_len: usize, max_age: Option<u64>) -> usize {
        let age = max_age.map_or(0, |a| {
            let digits = a
                .min(MAX_AGE_CEILING)
                .checked_ilog10()
                .map_or(1, |d| d as usize + 1);
            "; Max-Age=".len() + digits
        });
        name_len + "=".len() + age + self.data_attrs.len()
    }

    /// A `Set-Cookie` value that deletes the cookie (empty value, `Max-Age=0`).
    pub fn expire(&self, kind: CookieKind) -> String {
        self.set(kind, "", Some(0))
    }

    /// The `Set-Cookie` lines of `ops`, in order.
    pub fn render(&self, ops: &[CookieOp]) -> Vec<String> {
        if ops.is_empty() {
            // Most answers (a cache hit, a session not yet due) set no cookie.
            return Vec::new();
        }
        let mut out = Vec::with_capacity(ops.len() + 1);
        for op in ops {
            match op {
                CookieOp::Set {
                    kind,
                    value,
                    max_age,
                } => out.push(self.set(*kind, value, *max_age)),
                CookieOp::Expire(kind) => out.push(self.expire(*kind)),
                // Better Auth gives them the session token cookie's attributes.
                CookieOp::SetMulti {
                    name,
                    value,
                    max_age,
                } => out.push(line(name, &self.token_attrs, value, Some(*max_age))),
                CookieOp::ExpireMulti(name) => {
                    out.push(line(name, &self.token_attrs, "", Some(0)));
                }
                CookieOp::SetCache {
                    value,
                    max_age,
                    carried,
                } => self.write_cache(value, *max_age, *carried, &mut out),
            }
        }
        out
    }

    /// The cache value as one cookie or as chunks, then the carried cache cookies it does
    /// not overwrite, expired.
    fn write_cache(
        &self,
        value: &str,
        max_age: Option<u64>,
        carried: CarriedCache,
        out: &mut Vec<String>,
    ) {
        let name = &self.names.data;
        // A chunk's line less its value (a two-digit index counted, as Better Auth does).
        let overhead = self.empty_chunk_len(name.len() + ".99".len(), max_age);
        let chunk_size = MAX_COOKIE_SIZE.saturating_sub(overhead).max(1);
        let count = value.len().div_ceil(chunk_size);
        let mut written = CarriedCache::default();
        if value.len() > self.max_cache_bytes || count > MAX_CHUNKS {
            // The browser could not send it back: it is answered from the store instead.
            static WARNED: std::sync::atomic::AtomicBool =
                std::sync::atomic::AtomicBool::new(false);
            if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(
                    bytes = value.len(),
                    "cookie cache too large for a request head; not written (logged once)"
                );
            }
        } else if value.len() <= chunk_size {
            out.push(self.set(CookieKind::Cache, value, max_age));
            written.whole = true;
        } else {
            // The value is ASCII (base64url and dots), so byte chunks are char chunks.
            for (i, part) in value.as_bytes().chunks(chunk_size).enumerate() {
                let chunk = format!("{name}.{i}");
                let part = String::from_utf8_lossy(part);
                out.push(line(&chunk, &self.data_attrs, &part, max_age));
                written.chunks |= 1 << i;
            }
        }
        let stale = CarriedCache {
            whole: carried.whole && !written.whole,
            chunks: carried.chunks & !written.chunks,
        };
        for kind in stale.kinds() {
            out.push(self.expire(kind));
        }
    }
}

/// A `Set-Cookie` value: name, encoded value, Max-Age, then `attrs`.
fn line(name: &str, attrs: &str, value: &str, max_age: Option<u64>) -> String {
    let mut out = String::with_capacity(name.len() + value.len() + attrs.len() + 24);
    out.push_str(name);
    out.push('=');
    out.push_str(&encode_uri_component(value));
    if let Some(age) = max_age {
        out.push_str("; Max-Age=");
        out.push_str(&age.min(MAX_AGE_CEILING).to_string());
    }
    out.push_str(attrs);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(lines: &[String]) -> Vec<&str> {
        lines.iter().filter_map(|l| l.split('=').next()).collect()
    }

    #[test]
    fn a_large_cache_value_is_chunked_and_stale_cache_cookies_expire() {
        let w = CookieWriter::new(&Settings::default());
        let value = "v".repeat(9_000);
        let carried = CarriedCache {
            whole: true,
            chunks: 1 << 5,
        };
        let lines = w.render(&[
            CookieOp::Set {
                kind: CookieKind::Token,
                value: "t.s".into(),
                max_age: Some(60),
            },
            CookieOp::SetCache {
                value,
                max_age: Some(300),
                carried,
            },
        ]);
        let data = &w.names.data;
        let expected = [
            w.names.token.clone(),
            format!("{data}.0"),
            format!("{data}.1"),
            format!("{data}.2"),
            data.clone(),
            format!("{data}.5"),
        ];
        assert_eq!(
            names(&lines),
            expected.iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert!(lines.iter().all(|l| l.len() <= MAX_COOKIE_SIZE));
        assert!(lines[4].contains("Max-Age=0") && lines[5].contains("Max-Age=0"));
    }

    #[test]
    fn a_cache_value_that_fits_is_one_cookie_and_its_old_chunks_expire() {
        let w = CookieWriter::new(&Settings::default());
        let lines = w.render(&[CookieOp::SetCache {
            value: "small".into(),
            max_age: None,
            carried: CarriedCache {
                whole: true,
                chunks: 0b11,
            },
        }]);
        assert_eq!(lines[0], w.set(CookieKind::Cache, "small", None));
        assert_eq!(
            lines[1..],
            [
                w.expire(CookieKind::CacheChunk(0)),
                w.expire(CookieKind::CacheChunk(1))
            ]
        );
    }

    #[test]
    fn the_empty_line_length_is_the_written_lines() {
        let mut s = Settings::default();
        s.advanced.cookies.session_data.attributes.path = "/api/auth".into();
        let w = CookieWriter::new(&s);
        let name_len = w.names.data.len() + ".0".len();
        for age in [None, Some(0), Some(300), Some(u64::MAX)] {
            assert_eq!(
                w.empty_chunk_len(name_len, age),
                w.set(CookieKind::CacheChunk(0), "", age).len(),
                "{age:?}"
            );
        }
    }

    #[test]
    fn each_cookie_has_its_own_attributes_over_the_defaults() {
        let mut s = Settings::default();
        s.advanced.default_cookie_attributes.same_site = Some(crate::config::SameSite::Strict);
        s.advanced.cookies.session_token.attributes.path = "/app".into();
        s.advanced.cookies.session_data.attributes.domain = "example.com".into();
        s.advanced.cookies.dont_remember.attributes.partitioned = Some(true);
        let w = CookieWriter::new(&s);
        let tail = |kind| {
            w.set(kind, "v", None)
                .split_once("; ")
                .unwrap()
                .1
                .to_owned()
        };
        assert_eq!(
            tail(CookieKind::Token),
            "Path=/app; HttpOnly; SameSite=Strict"
        );
        assert_eq!(
            tail(CookieKind::CacheChunk(3)),
            "Domain=example.com; Path=/; HttpOnly; SameSite=Strict"
        );
        assert_eq!(
            tail(CookieKind::DontRemember),
            "Path=/; HttpOnly; Secure; SameSite=Strict; Partitioned"
        );
    }

    #[test]
    fn max_age_is_capped_at_400_days() {
        let w = CookieWriter::new(&Settings::default());
        let line = w.set(CookieKind::Token, "v", Some(u64::MAX));
        assert!(
            line.contains(&format!("Max-Age={MAX_AGE_CEILING};")),
            "{line}"
        );
    }
}
