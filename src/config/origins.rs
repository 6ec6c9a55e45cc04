//! Which origins and URLs the options may name: trusted-origin patterns that stay within
//! a registrable domain, absolute http(s) URLs.

/// Whether a trusted-origin entry is usable: an exact origin (`scheme://host[:port]`), or a
/// pattern whose `*`/`?` wildcards stay in the leftmost host label and are followed by a
/// registrable domain (`https://*.example.com`, `*.example.com`): never `*`, `https://*`,
/// `*.com` or `*.co.uk`, which would trust other people's sites.
pub fn check_origin_pattern(p: &str) -> Result<(), String> {
    // Messages quote the entry without any user:password it holds.
    check_pattern(p)
        .map_err(|e| e.replace(&format!("{p:?}"), &format!("{:?}", without_userinfo(p))))
}

fn check_pattern(p: &str) -> Result<(), String> {
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
/// `v` with the `user:password@` of a URL's authority replaced by `…@`, for messages: an
/// option refused at start must not print a password someone put in it.
pub fn without_userinfo(v: &str) -> std::borrow::Cow<'_, str> {
    let Some((scheme, rest)) = v.split_once("://") else {
        return v.into();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://…@{host}{tail}").into(),
        None => v.into(),
    }
}

pub(super) fn is_http_url(v: &str) -> bool {
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

#[cfg(test)]
mod tests {
    #[test]
    fn refusals_quote_entries_without_their_passwords() {
        use super::without_userinfo;
        assert_eq!(
            without_userinfo("https://u:pw@a.example.com:8/p?q#f"),
            "https://…@a.example.com:8/p?q#f"
        );
        assert_eq!(
            without_userinfo("https://a.example.com/@x"),
            "https://a.example.com/@x"
        );
        assert_eq!(without_userinfo("*.example.com"), "*.example.com");
        for bad in [
            "http://u:hunter2@a.example.com",
            "https://u:hunter2@*.example.com",
        ] {
            let e = check_origin_pattern(bad).unwrap_err();
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    use super::check_origin_pattern;

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
