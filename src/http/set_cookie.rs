//! Writes the domain's cookie operations as `Set-Cookie` lines, byte for byte as Better
//! Auth does: better-call's attribute order (`Max-Age; Domain; Path; HttpOnly; Secure;
//! SameSite; Partitioned`), values percent-encoded as `encodeURIComponent` does, `Max-Age`
//! capped at the browsers' 400-day ceiling, and cache values chunked as Better Auth chunks
//! them. The `cookie` crate writes its attributes in another order, which clients that
//! compare headers (and our byte-exact tests against Better Auth) would see, so the lines
//! are written here.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::config::Settings;
use crate::session::cookies::{CarriedCache, CookieNames, CookieOp, MAX_CHUNKS};

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

/// Cookie names and shared attributes, computed once from the settings.
#[derive(Debug, Clone)]
pub struct CookieWriter {
    /// The names.
    pub names: CookieNames,
    /// `; Domain=…; Path=/; HttpOnly[; Secure]; SameSite=Lax` after the Max-Age.
    attrs_after_max_age: String,
    /// Largest cache value written: the accepted request head less 4 KiB for the request
    /// line, the other headers and cookies, so that the browser can still send it back.
    max_cache_bytes: usize,
}

impl CookieWriter {
    /// Derives names and attributes from the settings.
    pub fn new(s: &Settings) -> Self {
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
        let secure_attr = s.secure_cookies()
            || same_site == "None"
            || over.partitioned
            || over.secure == Some(true);
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
            names: CookieNames::new(s),
            attrs_after_max_age: attrs,
            max_cache_bytes: s.server.max_header_bytes.saturating_sub(4096),
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

    /// The length of [`Self::set`]'s line for a name of `name_len` bytes and an empty
    /// value, without writing it: the cache is chunked on every write.
    fn empty_line_len(&self, name_len: usize, max_age: Option<u64>) -> usize {
        let age = max_age.map_or(0, |a| {
            let digits = a
                .min(MAX_AGE_CEILING)
                .checked_ilog10()
                .map_or(1, |d| d as usize + 1);
            "; Max-Age=".len() + digits
        });
        name_len + "=".len() + age + self.attrs_after_max_age.len()
    }

    /// A `Set-Cookie` value that deletes the cookie (empty value, `Max-Age=0`).
    pub fn expire(&self, name: &str) -> String {
        self.set(name, "", Some(0))
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
                } => out.push(self.set(&self.names.of(*kind), value, *max_age)),
                CookieOp::Expire(kind) => out.push(self.expire(&self.names.of(*kind))),
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
        let overhead = self.empty_line_len(name.len() + ".99".len(), max_age);
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
            out.push(self.set(name, value, max_age));
            written.whole = true;
        } else {
            // The value is ASCII (base64url and dots), so byte chunks are char chunks.
            for (i, part) in value.as_bytes().chunks(chunk_size).enumerate() {
                let chunk = format!("{name}.{i}");
                out.push(self.set(&chunk, &String::from_utf8_lossy(part), max_age));
                written.chunks |= 1 << i;
            }
        }
        let stale = CarriedCache {
            whole: carried.whole && !written.whole,
            chunks: carried.chunks & !written.chunks,
        };
        for kind in stale.kinds() {
            out.push(self.expire(&self.names.of(kind)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::cookies::CookieKind;

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
        let data = &w.names.data;
        assert_eq!(lines[0], w.set(data, "small", None));
        assert_eq!(
            lines[1..],
            [
                w.expire(&format!("{data}.0")),
                w.expire(&format!("{data}.1"))
            ]
        );
    }

    #[test]
    fn the_empty_line_length_is_the_written_lines() {
        let w = CookieWriter::new(&Settings::default());
        for age in [None, Some(0), Some(300), Some(u64::MAX)] {
            assert_eq!(
                w.empty_line_len(7, age),
                w.set("abc.def", "", age).len(),
                "{age:?}"
            );
        }
    }

    #[test]
    fn max_age_is_capped_at_400_days() {
        let w = CookieWriter::new(&Settings::default());
        let line = w.set("n", "v", Some(u64::MAX));
        assert!(
            line.contains(&format!("Max-Age={MAX_AGE_CEILING};")),
            "{line}"
        );
    }
}
