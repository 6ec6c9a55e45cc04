//! Better Auth's `advanced.cookies` and `advanced.defaultCookieAttributes`: each session
//! cookie's name and attributes, how they combine, and the checks that refuse a name or an
//! attribute that would break the `Set-Cookie` line or the cookies' reading.
//!
//! As in Better Auth's `createCookieGetter`: a cookie's name is `advanced.cookies.<key>.name`
//! or `<cookie_prefix>.<key>`, with `__Secure-` prepended when cookies are secure; its
//! attributes are the defaults (`Path=/`, `HttpOnly`, `SameSite=Lax`, the cross-subdomain
//! `Domain`), then `default_cookie_attributes`, then the cookie's own `attributes`, later
//! ones winning key by key.

use serde::{Deserialize, Serialize};

use super::{AdvancedSettings, SameSite};

/// Cookie attributes (Better Auth's `CookieOptions`), for every session cookie
/// (`default_cookie_attributes`) or one (`cookies.<key>.attributes`). Unset keys inherit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CookieAttributes {
    /// `lax` (default), `strict` or `none` (which forces `Secure`).
    pub same_site: Option<SameSite>,
    /// Force `Secure` on or off (the `__Secure-` name prefix follows `use_secure_cookies`,
    /// and forces it on).
    pub secure: Option<bool>,
    /// Add `Partitioned` (CHIPS; forces `Secure`).
    pub partitioned: Option<bool>,
    /// `Path=`; empty: inherited (`/` by default).
    pub path: String,
    /// `Domain=` (a registrable domain or a subdomain of one); empty: inherited (the
    /// cross-subdomain domain, or none).
    pub domain: String,
}

impl CookieAttributes {
    /// These attributes over `base`: each key set here wins.
    pub fn over(&self, base: &Self) -> Self {
        let text =
            |mine: &String, theirs: &String| if mine.is_empty() { theirs } else { mine }.clone();
        Self {
            same_site: self.same_site.or(base.same_site),
            secure: self.secure.or(base.secure),
            partitioned: self.partitioned.or(base.partitioned),
            path: text(&self.path, &base.path),
            domain: text(&self.domain, &base.domain),
        }
    }
}

/// `advanced.cookies`: the session cookies by Better Auth's keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CookiesSettings {
    /// The signed session token.
    pub session_token: CookieSettings,
    /// The cookie cache (and its chunks, `<name>.0`, `<name>.1`, …).
    pub session_data: CookieSettings,
    /// The signed "do not remember" flag of a `rememberMe: false` sign-in.
    pub dont_remember: CookieSettings,
}

/// `advanced.cookies.<key>`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CookieSettings {
    /// Replaces `<cookie_prefix>.<key>`; `__Secure-` is still prepended when cookies are
    /// secure. Empty: `<cookie_prefix>.<key>`.
    pub name: String,
    /// This cookie's attributes, over `default_cookie_attributes`.
    pub attributes: CookieAttributes,
}

/// One of the session cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCookie {
    /// `session_token`.
    SessionToken,
    /// `session_data`.
    SessionData,
    /// `dont_remember`.
    DontRemember,
}

impl SessionCookie {
    /// Every session cookie.
    pub const ALL: [Self; 3] = [Self::SessionToken, Self::SessionData, Self::DontRemember];

    /// Better Auth's key for it (`advanced.cookies.<key>`, `<prefix>.<key>`).
    pub fn key(self) -> &'static str {
        match self {
            Self::SessionToken => "session_token",
            Self::SessionData => "session_data",
            Self::DontRemember => "dont_remember",
        }
    }
}

impl AdvancedSettings {
    fn cookie(&self, c: SessionCookie) -> &CookieSettings {
        match c {
            SessionCookie::SessionToken => &self.cookies.session_token,
            SessionCookie::SessionData => &self.cookies.session_data,
            SessionCookie::DontRemember => &self.cookies.dont_remember,
        }
    }

    /// A cookie's name before any `__Secure-`: as configured, else `<cookie_prefix>.<key>`.
    pub fn cookie_name(&self, c: SessionCookie) -> String {
        let own = &self.cookie(c).name;
        if own.is_empty() {
            format!("{}.{}", self.cookie_prefix, c.key())
        } else {
            own.clone()
        }
    }

    /// A cookie's configured attributes: its own over `default_cookie_attributes`.
    pub fn cookie_attributes(&self, c: SessionCookie) -> CookieAttributes {
        self.cookie(c)
            .attributes
            .over(&self.default_cookie_attributes)
    }
}

/// Longest cookie name accepted (before `__Secure-` and a chunk's `.N`).
const MAX_NAME_BYTES: usize = 128;
/// Longest `Path` accepted.
const MAX_PATH_BYTES: usize = 256;

/// RFC 6265 cookie-name characters (a token: no separators, spaces or controls).
pub(super) fn is_cookie_token(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A `Domain` value: a registrable domain or below, optionally with a leading dot.
pub(super) fn check_domain(option: &str, domain: &str) -> Result<(), String> {
    let d = domain.strip_prefix('.').unwrap_or(domain);
    let chars_ok = d
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
    if chars_ok && psl::domain_str(d).is_some() {
        Ok(())
    } else {
        Err(format!(
            "{option} {domain:?} must be a registrable domain (example.com), not a public suffix"
        ))
    }
}

/// A `Path` value: starts with `/`; printable ASCII without `;` or `,`, which would end
/// the attribute.
fn check_path(option: &str, path: &str) -> Result<(), String> {
    let ok = path.starts_with('/')
        && path.len() <= MAX_PATH_BYTES
        && path
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b) && b != b';' && b != b',');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{option} {path:?} must start with '/' and be at most {MAX_PATH_BYTES} printable \
             ASCII characters without ';' or ','"
        ))
    }
}

fn check_attributes(option: &str, a: &CookieAttributes) -> Result<(), String> {
    if !a.path.is_empty() {
        check_path(&format!("{option}.path"), &a.path)?;
    }
    if !a.domain.is_empty() {
        check_domain(&format!("{option}.domain"), &a.domain)?;
    }
    Ok(())
}

/// Refuses names that are not cookie names, that claim a prefix the browser enforces
/// (`__Secure-` is added by `use_secure_cookies`; `__Host-` forbids `Domain` and another
/// `Path`), or that one cookie could mistake for another (the same name, or a cache
/// chunk's `<session_data>.<n>`); and attributes that would break the `Set-Cookie` line.
pub(super) fn check_cookies(adv: &AdvancedSettings) -> Result<(), String> {
    check_attributes(
        "advanced.default_cookie_attributes",
        &adv.default_cookie_attributes,
    )?;
    for c in SessionCookie::ALL {
        let option = format!("advanced.cookies.{}", c.key());
        let own = adv.cookie(c);
        let name = &own.name;
        if !name.is_empty() {
            let lower = name.to_ascii_lowercase();
            if !is_cookie_token(name) || name.len() > MAX_NAME_BYTES {
                return Err(format!(
                    "{option}.name {name:?} must be at most {MAX_NAME_BYTES} cookie-name \
                     characters (letters, digits, - _ . and the like)"
                ));
            }
            if lower.starts_with("__secure-") || lower.starts_with("__host-") {
                return Err(format!(
                    "{option}.name {name:?} must not start with __Secure- or __Host-: \
                     __Secure- is added when cookies are secure (advanced.use_secure_cookies)"
                ));
            }
        }
        check_attributes(&format!("{option}.attributes"), &own.attributes)?;
    }
    let data = adv.cookie_name(SessionCookie::SessionData);
    let names = SessionCookie::ALL.map(|c| (c, adv.cookie_name(c)));
    for (i, (a, name_a)) in names.iter().enumerate() {
        for (b, name_b) in names.iter().skip(i + 1) {
            if name_a == name_b {
                return Err(format!(
                    "advanced.cookies: {} and {} are both named {name_a:?}",
                    a.key(),
                    b.key()
                ));
            }
        }
        let is_chunk = name_a
            .strip_prefix(data.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_chunk {
            return Err(format!(
                "advanced.cookies: {} is named {name_a:?}, the name of a chunk of session_data \
                 ({data:?})",
                a.key()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut AdvancedSettings)) -> Result<(), String> {
        let mut adv = AdvancedSettings::default();
        f(&mut adv);
        check_cookies(&adv)
    }

    #[test]
    fn names_replace_the_prefixed_default_and_attributes_win_key_by_key() {
        let mut adv = AdvancedSettings {
            cookie_prefix: "app".into(),
            ..AdvancedSettings::default()
        };
        adv.cookies.session_token.name = "sid".into();
        adv.default_cookie_attributes.same_site = Some(SameSite::None);
        adv.default_cookie_attributes.path = "/api".into();
        adv.cookies.session_token.attributes.same_site = Some(SameSite::Strict);
        assert_eq!(adv.cookie_name(SessionCookie::SessionToken), "sid");
        assert_eq!(
            adv.cookie_name(SessionCookie::SessionData),
            "app.session_data"
        );
        let token = adv.cookie_attributes(SessionCookie::SessionToken);
        assert_eq!(
            (token.same_site, token.path.as_str()),
            (Some(SameSite::Strict), "/api")
        );
        let data = adv.cookie_attributes(SessionCookie::SessionData);
        assert_eq!(data.same_site, Some(SameSite::None));
    }

    #[test]
    fn unusable_names_and_attributes_are_refused() {
        assert!(with(|_| {}).is_ok());
        for (f, what) in [
            (
                (|a: &mut AdvancedSettings| a.cookies.session_token.name = "a;b".into())
                    as fn(&mut AdvancedSettings),
                "cookie-name characters",
            ),
            (
                |a| a.cookies.session_token.name = "x".repeat(129),
                "at most 128",
            ),
            (
                |a| a.cookies.session_data.name = "__Host-data".into(),
                "__Secure- or __Host-",
            ),
            (
                |a| a.cookies.dont_remember.name = "__secure-flag".into(),
                "__Secure- or __Host-",
            ),
            (
                |a| a.cookies.dont_remember.name = "better-auth.session_token".into(),
                "both named",
            ),
            (
                |a| {
                    a.cookies.session_data.name = "s".into();
                    a.cookies.session_token.name = "s.0".into();
                },
                "chunk",
            ),
            (
                |a| a.cookies.session_token.attributes.path = "app".into(),
                "session_token.attributes.path",
            ),
            (
                |a| a.default_cookie_attributes.path = "/a;Domain=evil.com".into(),
                "default_cookie_attributes.path",
            ),
            (
                |a| a.cookies.session_data.attributes.domain = "co.uk".into(),
                "registrable domain",
            ),
            (
                |a| a.cookies.session_data.attributes.domain = "a.com;x".into(),
                "registrable domain",
            ),
        ] {
            let err = with(f).unwrap_err();
            assert!(err.contains(what), "{err} (expected {what})");
        }
        assert!(with(|a| {
            a.cookies.session_data.name = "s".into();
            a.cookies.session_token.name = "s.x".into();
            a.cookies.session_token.attributes.path = "/api/auth".into();
            a.cookies.session_token.attributes.domain = ".example.com".into();
        })
        .is_ok());
    }
}
