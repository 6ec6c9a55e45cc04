//! Checks that refuse, at start, a configuration that would misbehave later: durations that
//! would overflow date arithmetic, URLs that are not URLs, trusted-origin patterns that
//! trust every website, limits too small to serve a request.

use ipnet::IpNet;

use super::{field_type_matches, ConfigError, Settings};

/// The longest duration any option accepts: 100 years, in seconds. Beyond it date
/// arithmetic would overflow, and nothing needs more.
pub const MAX_DURATION_SECS: u64 = 3_155_760_000;

/// Smallest accepted request head: the HTTP server's own minimum buffer.
const MIN_HEADER_BYTES: usize = 8_192;
/// Largest accepted request head (1 MiB).
const MAX_HEADER_BYTES: usize = 1 << 20;
/// Largest accepted body limit (1 MiB): no route reads more than a few KiB.
const MAX_BODY_BYTES: usize = 1 << 20;
/// Most password hashes at once.
const MAX_HASH_CONCURRENCY: usize = 256;

/// IPv6 ranges that hold IPv4 addresses, with the bit where the address starts:
/// mapped (`::ffff:0:0/96`), NAT64 (`64:ff9b::/96`, local-use `64:ff9b:1::/48`), the old
/// compatible form (`::/96`), Teredo clients (`2001::/32`) and 6to4 (`2002::/16`).
const IPV4_IN_IPV6: [(u128, u8, u8); 6] = [
    (0xffff_0000_0000, 96, 96),
    (0x64_ff9b << 96, 96, 96),
    ((0x64_ff9b_0001 << 80), 48, 48),
    (0, 96, 96),
    (0x2001 << 112, 32, 96),
    (0x2002 << 112, 16, 16),
];

/// The widest IPv4 range one operator's proxies need: a /8.
const MAX_TRUSTED_V4: u128 = 1 << 24;
/// The widest public IPv6 range one operator's proxies need: a /32.
const MAX_TRUSTED_V6: u128 = 1 << 96;

/// Whether an IPv6 range is unique-local (`fc00::/7`) or link-local (`fe80::/10`).
fn is_private_v6(n: &ipnet::Ipv6Net) -> bool {
    ["fc00::/7", "fe80::/10"]
        .iter()
        .filter_map(|r| r.parse::<ipnet::Ipv6Net>().ok())
        .any(|r| r.contains(n))
}

/// Whether a trusted-proxy range covers more than any one operator's proxies:
/// IPv4 shorter than /8; IPv6 shorter than /32 outside unique-local and link-local
/// space; an IPv6 range inside one of [`IPV4_IN_IPV6`] judged by the IPv4 rule on its
/// embedded address (`::ffff:0:0/96` is all of IPv4); and any range containing one of
/// those whole.
fn too_broad(net: &IpNet) -> bool {
    match net {
        IpNet::V4(n) => n.prefix_len() < 8,
        IpNet::V6(n) => {
            let mut broad = false;
            for &(base, len, at) in &IPV4_IN_IPV6 {
                let Ok(e) = ipnet::Ipv6Net::new(std::net::Ipv6Addr::from(base), len) else {
                    continue;
                };
                if n.contains(&e) {
                    broad = true;
                } else if e.contains(n) {
                    return n.prefix_len() < at + 8;
                }
            }
            broad || (!is_private_v6(n) && n.prefix_len() < 32)
        }
    }
}

/// Whether the ranges together cover more than one operator's proxies: over a /8 of
/// public IPv4 (IPv4 written as IPv6 included) or a /32 of public IPv6 in all, since many
/// narrow entries can list the whole internet. Private, loopback, link-local and shared
/// (CGNAT) ranges do not count.
fn too_broad_together(nets: &[IpNet]) -> bool {
    let public_v4 = |n: &ipnet::Ipv4Net| {
        [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "100.64.0.0/10",
        ]
        .iter()
        .filter_map(|r| r.parse::<ipnet::Ipv4Net>().ok())
        .all(|r| !r.contains(n))
    };
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for n in nets {
        match n {
            IpNet::V4(n4) => v4.push(*n4),
            IpNet::V6(n6) => match embedded_v4(n6) {
                Some(n4) => v4.push(n4),
                None if !is_private_v6(n6) => v6.push(*n6),
                None => {}
            },
        }
    }
    let v4_size: u128 = ipnet::Ipv4Net::aggregate(&v4)
        .iter()
        .filter(|n| public_v4(n))
        .map(|n| 1u128 << (32 - n.prefix_len()))
        .sum();
    let v6_size = ipnet::Ipv6Net::aggregate(&v6)
        .iter()
        .map(|n| {
            1u128
                .checked_shl(u32::from(128 - n.prefix_len()))
                .unwrap_or(u128::MAX)
        })
        .fold(0u128, u128::saturating_add);
    v4_size > MAX_TRUSTED_V4 || v6_size > MAX_TRUSTED_V6
}

/// The IPv4 range an IPv6 range spells in its last 32 bits (mapped, NAT64 /96, compatible).
fn embedded_v4(n: &ipnet::Ipv6Net) -> Option<ipnet::Ipv4Net> {
    IPV4_IN_IPV6
        .iter()
        .filter(|&&(_, len, at)| len == 96 && at == 96)
        .filter_map(|&(base, len, _)| ipnet::Ipv6Net::new(std::net::Ipv6Addr::from(base), len).ok())
        .find(|e| e.contains(n))
        .and_then(|_| {
            let addr = std::net::Ipv4Addr::from((u128::from(n.network()) & 0xffff_ffff) as u32);
            ipnet::Ipv4Net::new(addr, n.prefix_len().saturating_sub(96)).ok()
        })
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// Whether a trusted-origin entry is usable: an exact origin (`scheme://host[:port]`), or a
/// pattern whose `*`/`?` wildcards stay in the leftmost host label and are followed by a
/// registrable domain (`https://*.example.com`, `*.example.com`): never `*`, `https://*`,
/// `*.com` or `*.co.uk`, which would trust other people's sites.
pub fn check_origin_pattern(p: &str) -> Result<(), String> {
    let wild = |s: &str| s.contains('*') || s.contains('?');
    if !wild(p) {
        let url = url::Url::parse(p).map_err(|_| {
            format!("{p:?} is not an origin (scheme://host[:port]) nor a host pattern")
        })?;
        let exact = url.host_str().is_some()
            && matches!(url.path(), "" | "/")
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none();
        return if exact {
            Ok(())
        } else {
            Err(format!(
                "{p:?} is not an origin (scheme://host[:port], no path)"
            ))
        };
    }
    let host_port = match p.split_once("://") {
        Some((scheme, rest)) if scheme == "http" || scheme == "https" => rest,
        Some(_) => return Err(format!("{p:?}: wildcard patterns must use http or https")),
        None => p,
    };
    let host = match host_port.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        Some(_) => return Err(format!("{p:?}: a port must be digits")),
        None => host_port,
    };
    let (first, suffix) = host.split_once('.').ok_or_else(|| {
        format!("{p:?} trusts every website; name a domain (https://*.example.com)")
    })?;
    let label_ok = !first.is_empty()
        && first
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-*?".contains(&b));
    if !label_ok || wild(suffix) || suffix.contains('/') {
        return Err(format!(
            "{p:?}: wildcards are allowed only in the leftmost host label (https://*.example.com)"
        ));
    }
    if suffix
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "{p:?}: a wildcard over IP addresses trusts other people's hosts; list them exactly"
        ));
    }
    // The suffix must be at or below a registrable domain: then so is the registrable
    // domain of any host under it. Under a wildcard rule (`*.compute.amazonaws.com`) a
    // host's own name may be public or registrable on its own.
    let child = format!("x.{suffix}");
    let within = matches!(psl::domain_str(&child), Some(d) if d != child);
    if psl::domain_str(suffix).is_none() || !within {
        return Err(format!(
            "{p:?} trusts every site under the public suffix {suffix:?}; name a registrable \
             domain (https://*.example.com)"
        ));
    }
    Ok(())
}

/// Whether `v` is an absolute http(s) URL with a real host (a domain of letters, digits,
/// `-`, `.` and `_`, or an address: no `*` or `?`) and nothing but a path after it.
fn is_http_url(v: &str) -> bool {
    url::Url::parse(v).is_ok_and(|u| {
        let host_ok = match u.host() {
            Some(url::Host::Domain(d)) => {
                !d.is_empty()
                    && d.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
            }
            Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => true,
            None => false,
        };
        matches!(u.scheme(), "http" | "https")
            && host_ok
            && u.username().is_empty()
            && u.password().is_none()
            && u.fragment().is_none()
    })
}

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

/// RFC 6265 cookie-name characters (a token: no separators, spaces or controls).
fn is_cookie_token(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Paths (relative to the base path) whose rate limit is 3 per 10 s unless a custom rule
/// says otherwise: every path starting with one of these.
pub const CREDENTIAL_ROUTES: [&str; 4] =
    ["/sign-in", "/sign-up", "/change-password", "/change-email"];

/// Whether a rate-limit rule's path pattern matches a path: exact, or with one `*`
/// standing for any run of characters.
pub fn path_glob(pattern: &str, path: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == path,
        Some((pre, post)) => {
            path.len() >= pre.len() + post.len() && path.starts_with(pre) && path.ends_with(post)
        }
    }
}

impl Settings {
    /// Choices that weaken a production deployment, each worth a warning at start: they
    /// may be deliberate (a proxy in front does the same job), never silent.
    pub fn risky_choices(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let adv = &self.advanced;
        if adv.disable_csrf_check {
            out.push("advanced.disable_csrf_check is on: cross-site requests are not refused");
        }
        if adv.disable_origin_check {
            out.push(
                "advanced.disable_origin_check is on: callback URLs and origins are not checked",
            );
        }
        if adv.use_secure_cookies == Some(false) {
            out.push("advanced.use_secure_cookies is off: session cookies travel over plain HTTP");
        }
        if !self.rate_limit_enabled() {
            out.push("rate_limit is off: passwords can be guessed at full speed");
        } else if self.rate_limit.on_store_failure == super::OnStoreFailure::Open {
            out.push("rate_limit.on_store_failure = open: no limit while Redis is unreachable");
        }
        let credential_rules = self.rate_limit.custom_rules.iter().filter(|(p, _)| {
            ["/sign-in/email", "/sign-up/email", "/change-password"]
                .iter()
                .any(|route| path_glob(p, route))
        });
        for (_, r) in credential_rules {
            // Above Better Auth's 3 per 10 s in rate, or over 10 attempts in one burst.
            let lifted =
                !r.enabled || r.max > 10 || r.max.saturating_mul(10) > r.window.saturating_mul(3);
            if self.rate_limit_enabled() && lifted {
                out.push(
                    "rate_limit.custom_rules lift the limit on sign-in, sign-up or \
                     change-password above 3 attempts per 10 s or 10 in a burst: passwords \
                     can be guessed",
                );
                break;
            }
        }
        if self.ops_on_main_listener() {
            out.push("ops.on_main_listener is on: /metrics and /readyz details are public");
        }
        let cache = &self.session.cookie_cache;
        if cache.enabled && !cache.immediate_revocation && self.cache_max_age() > 300 {
            out.push(
                "session.cookie_cache.immediate_revocation is off with a max_age over 5 minutes: \
                 a revoked session stays usable that long",
            );
        }
        if cache.enabled
            && self.redis.keyspace_notifications == super::KeyspaceNotifications::Off
            && !self.redis.url.is_empty()
            && self.cache_max_age() > 300
        {
            out.push(
                "redis.keyspace_notifications is off with a cookie cache over 5 minutes: a \
                 session another application deletes from Redis stays usable that long",
            );
        }
        out
    }

    /// Refuses settings that cannot work, naming the option.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.base_path.starts_with('/') || self.base_path.ends_with('/') {
            return Err(invalid(format!(
                "base_path must start with '/' and not end with '/': {:?}",
                self.base_path
            )));
        }
        if !self.base_url.is_empty()
            && (!is_http_url(&self.base_url) || self.base_url.contains('?'))
        {
            return Err(invalid(format!(
                "base_url (BETTER_AUTH_URL) must be an absolute http:// or https:// URL, not {:?}",
                self.base_url
            )));
        }
        if self.session.expires_in == 0 {
            return Err(invalid("session.expires_in must be > 0"));
        }
        self.check_durations()?;
        self.check_fields()?;
        let ep = &self.email_and_password;
        if ep.min_password_length > ep.max_password_length {
            return Err(invalid(
                "email_and_password.min_password_length exceeds max_password_length",
            ));
        }
        if self.advanced.ip_address.ipv6_subnet > 128 {
            return Err(invalid(
                "advanced.ip_address.ipv6_subnet must be at most 128",
            ));
        }
        for p in &self.trusted_origins {
            check_origin_pattern(p).map_err(|e| invalid(format!("trusted_origins: {e}")))?;
        }
        self.check_forward_auth()?;
        self.check_advanced()?;
        self.check_server()
    }

    fn check_durations(&self) -> Result<(), ConfigError> {
        let s = &self.session;
        let mut all = vec![
            ("session.expires_in", s.expires_in),
            ("session.update_age", s.update_age),
            ("session.fresh_age", s.fresh_age),
            ("session.absolute_timeout", s.absolute_timeout),
            (
                "session.cookie_cache.max_age",
                s.cookie_cache.max_age.unwrap_or(0),
            ),
            ("database.acquire_timeout", self.database.acquire_timeout),
            ("rate_limit.window", self.rate_limit.window),
            ("server.request_timeout", self.server.request_timeout),
            ("server.shutdown_grace", self.server.shutdown_grace),
            (
                "server.header_read_timeout",
                self.server.header_read_timeout,
            ),
            ("server.idle_timeout", self.server.idle_timeout),
        ];
        for r in self.rate_limit.custom_rules.values() {
            all.push(("rate_limit.custom_rules.*.window", r.window));
        }
        for (name, v) in all {
            if v > MAX_DURATION_SECS {
                return Err(invalid(format!(
                    "{name} must be at most {MAX_DURATION_SECS} seconds (100 years), not {v}"
                )));
            }
        }
        Ok(())
    }

    fn check_fields(&self) -> Result<(), ConfigError> {
        for (name, field) in &self.session.additional_fields {
            let ok = !name.is_empty()
                && name.len() <= 63
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !ok || crate::model::CORE_SESSION_FIELDS.contains(&name.as_str()) {
                return Err(invalid(format!(
                    "session.additional_fields: {name:?} is not a usable field name"
                )));
            }
            if let Some(d) = &field.default_value {
                if !field_type_matches(field.kind, d) {
                    return Err(invalid(format!(
                        "session.additional_fields.{name}.default_value does not match its type"
                    )));
                }
            }
        }
        Ok(())
    }

    fn check_forward_auth(&self) -> Result<(), ConfigError> {
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
        let names = [
            ("header_user_id", &fa.header_user_id),
            ("header_email", &fa.header_email),
            ("header_name", &fa.header_name),
            ("header_session_id", &fa.header_session_id),
            ("header_expires_at", &fa.header_expires_at),
        ];
        for (i, (key, name)) in names.iter().enumerate() {
            if !is_identity_header(name) {
                return Err(invalid(format!(
                    "forward_auth.{key}: {name:?} cannot carry an identity (not a header name, or one that frames, routes or controls the answer)"
                )));
            }
            let cgi = |n: &str| n.to_ascii_lowercase().replace('_', "-");
            if names[..i].iter().any(|(_, other)| cgi(other) == cgi(name)) {
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

    fn check_server(&self) -> Result<(), ConfigError> {
        let sv = &self.server;
        if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&sv.max_header_bytes) {
            return Err(invalid(format!(
                "server.max_header_bytes must be between {MIN_HEADER_BYTES} and {MAX_HEADER_BYTES}"
            )));
        }
        if sv.max_connections == 0 || sv.header_read_timeout == 0 || sv.idle_timeout == 0 {
            return Err(invalid(
                "server.max_connections, header_read_timeout and idle_timeout must be > 0",
            ));
        }
        if sv.body_limit == 0 || sv.body_limit > MAX_BODY_BYTES {
            return Err(invalid(format!(
                "server.body_limit must be between 1 and {MAX_BODY_BYTES} bytes"
            )));
        }
        if sv.request_timeout == 0 {
            return Err(invalid("server.request_timeout must be > 0"));
        }
        let rl = &self.rate_limit;
        let rules = std::iter::once((rl.window, rl.max))
            .chain(rl.custom_rules.values().map(|r| (r.window, r.max)));
        for (window, max) in rules {
            if window == 0 || max == 0 {
                return Err(invalid(
                    "rate_limit.window and rate_limit.max (and each custom rule's) must be at least 1",
                ));
            }
        }
        Ok(())
    }

    /// Cookie names and domains, address headers and proxies, password rules: what would
    /// otherwise inject attributes, trust everyone or stop the process later.
    fn check_advanced(&self) -> Result<(), ConfigError> {
        let adv = &self.advanced;
        if !is_cookie_token(&adv.cookie_prefix) {
            return Err(invalid(format!(
                "advanced.cookie_prefix {:?} must be cookie-name characters (letters, digits, - _ . and the like)",
                adv.cookie_prefix
            )));
        }
        let domain = adv.cross_sub_domain_cookies.domain.as_str();
        if !domain.is_empty() {
            let d = domain.trim_start_matches('.');
            let chars_ok = d
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
            if !chars_ok || psl::domain_str(d).is_none() {
                return Err(invalid(format!(
                    "advanced.cross_sub_domain_cookies.domain {domain:?} must be a registrable domain (example.com), not a public suffix"
                )));
            }
        }
        for h in &adv.ip_address.ip_address_headers {
            if axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(invalid(format!(
                    "advanced.ip_address.ip_address_headers: {h:?} is not a header name"
                )));
            }
        }
        let mut nets = Vec::new();
        for p in &adv.ip_address.trusted_proxies {
            let net = p
                .parse::<IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    invalid(format!(
                        "advanced.ip_address.trusted_proxies: {p:?} is not an address or CIDR"
                    ))
                })?;
            if too_broad(&net) {
                return Err(invalid(format!(
                    "advanced.ip_address.trusted_proxies: {p:?} trusts a large part of the \
                     internet; list your proxies (IPv4 /8 or narrower, IPv6 /32 or narrower)"
                )));
            }
            nets.push(net);
        }
        if too_broad_together(&nets) {
            return Err(invalid(
                "advanced.ip_address.trusted_proxies: together the entries trust more than a /8 \
                 of public IPv4 or a /32 of public IPv6; list your proxies",
            ));
        }
        let ep = &self.email_and_password;
        if ep.min_password_length == 0 {
            return Err(invalid(
                "email_and_password.min_password_length must be at least 1",
            ));
        }
        if ep.hash_concurrency > MAX_HASH_CONCURRENCY {
            return Err(invalid(format!(
                "email_and_password.hash_concurrency must be at most {MAX_HASH_CONCURRENCY} (each hash holds 32 MiB)"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{check_origin_pattern, too_broad, IpNet};

    #[test]
    fn trusted_proxy_ranges_must_be_narrow() {
        let broad = |s: &str| too_broad(&s.parse::<IpNet>().unwrap());
        for b in [
            "0.0.0.0/1",
            "128.0.0.0/1",
            "0.0.0.0/7",
            "::/0",
            "::/1",
            "2000::/3",
            "2001::/16",
            "::ffff:0:0/96",
            "::ffff:0:0/100",
            "64:ff9b::/96",
            "::/80",
            "::/32",
        ] {
            assert!(broad(b), "{b}");
        }
        for ok in [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "127.0.0.1/32",
            "fc00::/7",
            "fd12:3456::/32",
            "fe80::/10",
            "2001:db8::/32",
            "::1/128",
            "::ffff:10.0.0.0/104",
            "::ffff:127.0.0.1/128",
        ] {
            assert!(!broad(ok), "{ok}");
        }
        for b in ["2001::/32", "2001:0:1::/48", "64:ff9b:1::/48", "2002::/16"] {
            assert!(broad(b), "{b}");
        }
    }

    #[test]
    fn limits_lifted_on_credential_routes_and_unannounced_deletions_are_risky() {
        use crate::config::{Environment, KeyspaceNotifications, RateLimitRule, Settings};
        let warned = |s: &Settings, what: &str| s.risky_choices().iter().any(|w| w.contains(what));
        let mut s = Settings {
            environment: Environment::Production,
            ..Settings::default()
        };
        let rule = |window, max| RateLimitRule {
            window,
            max,
            enabled: true,
        };
        assert!(!warned(&s, "custom_rules"));
        for (pattern, rule) in [
            ("/sign-in/email", rule(86_400, 86_400)),
            ("/sign-up/*", rule(10, 4)),
            (
                "/*",
                RateLimitRule {
                    window: 10,
                    max: 3,
                    enabled: false,
                },
            ),
            (
                "/sign-in/*",
                RateLimitRule {
                    window: 1,
                    max: 1_000_000,
                    enabled: true,
                },
            ),
            (
                "/change-password",
                RateLimitRule {
                    window: 10,
                    max: 11,
                    enabled: true,
                },
            ),
        ] {
            s.rate_limit.custom_rules.clear();
            s.rate_limit.custom_rules.insert(pattern.into(), rule);
            assert!(warned(&s, "custom_rules"), "{pattern}");
        }
        s.rate_limit.custom_rules.clear();
        s.rate_limit.custom_rules.insert(
            "/get-session".into(),
            RateLimitRule {
                window: 1,
                max: 1_000,
                enabled: true,
            },
        );
        s.rate_limit
            .custom_rules
            .insert("/sign-in/email".into(), rule(60, 10));
        assert!(!warned(&s, "custom_rules"));
        s.redis.url = "redis://127.0.0.1:6379".into();
        s.redis.keyspace_notifications = KeyspaceNotifications::Off;
        s.session.cookie_cache.enabled = true;
        s.session.cookie_cache.max_age = Some(86_400);
        assert!(warned(&s, "keyspace_notifications"));
        s.session.cookie_cache.max_age = Some(300);
        assert!(!warned(&s, "keyspace_notifications"));
    }

    #[test]
    fn trusted_proxy_ranges_are_judged_together() {
        let together = |list: &[&str]| {
            let nets: Vec<IpNet> = list.iter().map(|s| s.parse().unwrap()).collect();
            super::too_broad_together(&nets)
        };
        let every_slash_8: Vec<String> = (0..=255).map(|i| format!("{i}.0.0.0/8")).collect();
        let every_slash_8: Vec<&str> = every_slash_8.iter().map(String::as_str).collect();
        assert!(together(&every_slash_8));
        assert!(together(&["1.0.0.0/8", "2.0.0.0/8"]));
        assert!(together(&["::ffff:1.0.0.0/104", "::ffff:2.0.0.0/104"]));
        assert!(together(&["2001:db8::/32", "2001:db9::/32"]));
        // Private networks do not count, and one public /8 or /32 is allowed.
        assert!(!together(&[
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "127.0.0.0/8",
            "100.64.0.0/10",
            "fc00::/7",
            "fe80::/10",
            "::1/128",
            "203.0.113.0/24",
            "2001:db8::/32",
        ]));
        assert!(!together(&["1.0.0.0/8"]));
    }

    #[test]
    fn origin_patterns() {
        for ok in [
            "https://app.example",
            "http://localhost:5173",
            "https://*.example.com",
            "*.tenants.example.org",
            "https://app-?.example.net",
            "https://*.example.com:8443",
            "myapp://callback",
        ] {
            assert!(check_origin_pattern(ok).is_ok(), "{ok}");
        }
        for bad in [
            "*",
            "https://*",
            "http://*",
            "*.com",
            "https://*.co.uk",
            "*example.com",
            "https://*.*.example.com",
            "https://app.*.example.com",
            "null",
            "https://app.example/path",
            "app.example.com",
            "*://app.example.com",
            "https://*.example.com/x",
            "https://*.localhost",
            "https://u:p@app.example",
            "https://*.0.0.1",
            "https://*.compute.amazonaws.com",
            "https://*.github.io",
            "*.168.1.1",
            "https://*.10:8080",
        ] {
            assert!(check_origin_pattern(bad).is_err(), "{bad}");
        }
    }
}
