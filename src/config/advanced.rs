//! Better Auth's `advanced.*` options: cookies, origin checks, client addresses.

use serde::{Deserialize, Serialize};

use super::cookies::{CookieAttributes, CookiesSettings};

/// Better Auth's `advanced.*` options.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdvancedSettings {
    /// Cookie name prefix (`<prefix>.session_token`).
    pub cookie_prefix: String,
    /// Force `Secure` cookies and the `__Secure-` prefix on or off; unset: on when
    /// `base_url` is https or in production.
    pub use_secure_cookies: Option<bool>,
    /// Skip the origin check on cookie-bearing POSTs and the sign-in CSRF check.
    pub disable_csrf_check: bool,
    /// Skip the origin check (Better Auth's older switch), and the check of redirect
    /// targets (`callbackURL` and its kin) against the trusted origins.
    pub disable_origin_check: bool,
    /// Share cookies with subdomains.
    pub cross_sub_domain_cookies: CrossSubDomainCookies,
    /// Attributes applied to every session cookie (Better Auth's `defaultCookieAttributes`).
    pub default_cookie_attributes: CookieAttributes,
    /// Each session cookie's name and attributes (Better Auth's `cookies`).
    pub cookies: CookiesSettings,
    /// Client address detection.
    pub ip_address: IpAddressSettings,
    /// Store a number, boolean or object sent for a text field of
    /// `update-user`/`update-session` as its text (`42` → `"42"`), as Better Auth does;
    /// off: 400 `VALIDATION_ERROR` instead.
    pub coerce_field_types: bool,
    /// Id generation (`advanced.database.*`).
    pub database: super::AdvancedDatabase,
}

impl Default for AdvancedSettings {
    fn default() -> Self {
        Self {
            cookie_prefix: "better-auth".into(),
            use_secure_cookies: None,
            disable_csrf_check: false,
            disable_origin_check: false,
            cross_sub_domain_cookies: CrossSubDomainCookies::default(),
            default_cookie_attributes: CookieAttributes::default(),
            cookies: CookiesSettings::default(),
            ip_address: IpAddressSettings::default(),
            coerce_field_types: true,
            database: super::AdvancedDatabase::default(),
        }
    }
}

/// The `SameSite` attribute of the session cookies. Spelled in any case (`Lax`, `lax`),
/// as Better Auth accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    /// Sent on top-level navigations from other sites (the browsers' default).
    #[default]
    Lax,
    /// Sent only on requests from the same site.
    Strict,
    /// Sent on every request, cross-site too; forces `Secure`.
    None,
}

impl SameSite {
    /// The attribute's value in a `Set-Cookie` header.
    pub fn as_attribute(self) -> &'static str {
        match self {
            Self::Lax => "Lax",
            Self::Strict => "Strict",
            Self::None => "None",
        }
    }
}

one_of!(SameSite, any case, "lax, strict or none", {
    "lax" => Lax,
    "strict" => Strict,
    "none" => None,
});

/// `advanced.crossSubDomainCookies`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrossSubDomainCookies {
    /// Emit `Domain=` on session cookies.
    pub enabled: bool,
    /// The domain; empty: the host of `base_url`.
    pub domain: String,
}

/// `advanced.ipAddress`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpAddressSettings {
    /// Headers holding the client address, tried in order.
    pub ip_address_headers: Vec<String>,
    /// Never record addresses.
    pub disable_ip_tracking: bool,
    /// IPv6 addresses are masked to this prefix length.
    pub ipv6_subnet: u8,
    /// Proxies (addresses or CIDRs) whose hops are skipped in forwarded chains.
    pub trusted_proxies: Vec<String>,
}

impl Default for IpAddressSettings {
    fn default() -> Self {
        Self {
            ip_address_headers: vec!["x-forwarded-for".into()],
            disable_ip_tracking: false,
            ipv6_subnet: 64,
            trusted_proxies: Vec::new(),
        }
    }
}
