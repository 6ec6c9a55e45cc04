//! The client's address and user agent, as Better Auth records them on sessions.
//!
//! The address comes from the configured headers (default `X-Forwarded-For`). Without
//! trusted proxies the header must hold exactly one address; with them, the chain is
//! walked right to left past trusted hops. IPv4-mapped IPv6 becomes IPv4; other IPv6 is
//! expanded and masked to the configured prefix (default /64).

use std::net::{IpAddr, Ipv6Addr};

use axum::http::{header, HeaderMap};
use ipnet::IpNet;

use crate::config::IpAddressSettings;
use crate::session::ClientInfo;

/// Address detection settings, parsed once.
#[derive(Debug, Clone)]
pub struct IpRules {
    headers: Vec<String>,
    disabled: bool,
    ipv6_subnet: u8,
    trusted: Vec<IpNet>,
}

impl IpRules {
    /// Parses the settings; unparsable proxy entries are reported by name.
    pub fn new(s: &IpAddressSettings) -> Result<Self, String> {
        let mut trusted = Vec::new();
        for p in &s.trusted_proxies {
            let net = p
                .parse::<IpNet>()
                .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!("advanced.ip_address.trusted_proxies: {p:?} is not an address or CIDR")
                })?;
            trusted.push(net);
        }
        Ok(Self {
            headers: s
                .ip_address_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            disabled: s.disable_ip_tracking,
            ipv6_subnet: s.ipv6_subnet.min(128),
            trusted,
        })
    }

    /// The normalised client address, if one can be trusted.
    pub fn client_ip(&self, h: &HeaderMap) -> Option<String> {
        if self.disabled {
            return None;
        }
        for name in &self.headers {
            let Some(v) = h.get(name.as_str()).and_then(|v| v.to_str().ok()) else {
                continue;
            };
            let hops: Vec<&str> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            let found = if self.trusted.is_empty() {
                match hops.as_slice() {
                    [one] => one.parse::<IpAddr>().ok(),
                    _ => None,
                }
            } else {
                hops.iter()
                    .rev()
                    .filter_map(|s| s.parse::<IpAddr>().ok())
                    .find(|ip| !self.trusted.iter().any(|n| n.contains(ip)))
            };
            if let Some(ip) = found {
                return Some(self.normalise(ip));
            }
        }
        None
    }

    fn normalise(&self, ip: IpAddr) -> String {
        match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let bits = u128::from(v6);
                    let mask = if self.ipv6_subnet == 0 {
                        0
                    } else {
                        u128::MAX << (128 - u32::from(self.ipv6_subnet))
                    };
                    let seg = Ipv6Addr::from(bits & mask).segments();
                    seg.iter()
                        .map(|s| format!("{s:04x}"))
                        .collect::<Vec<_>>()
                        .join(":")
                }
            },
        }
    }

    /// Address and user agent of a request.
    pub fn client_info(&self, h: &HeaderMap) -> ClientInfo {
        ClientInfo {
            ip_address: self.client_ip(h).unwrap_or_default(),
            user_agent: h
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(trusted: &[&str]) -> IpRules {
        IpRules::new(&IpAddressSettings {
            trusted_proxies: trusted.iter().map(|s| s.to_string()).collect(),
            ..IpAddressSettings::default()
        })
        .unwrap()
    }

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    #[test]
    fn single_address_only_without_trusted_proxies() {
        assert_eq!(
            rules(&[]).client_ip(&xff("1.2.3.4")).as_deref(),
            Some("1.2.3.4")
        );
        assert_eq!(rules(&[]).client_ip(&xff("1.2.3.4, 10.0.0.5")), None);
        assert_eq!(rules(&[]).client_ip(&xff("garbage")), None);
    }

    #[test]
    fn trusted_proxies_are_skipped_right_to_left() {
        let r = rules(&["10.0.0.0/8"]);
        assert_eq!(
            r.client_ip(&xff("9.9.9.9, 1.2.3.4, 10.0.0.5")).as_deref(),
            Some("1.2.3.4")
        );
    }

    #[test]
    fn ipv6_is_masked_and_mapped_ipv4_unwrapped() {
        let r = rules(&[]);
        assert_eq!(
            r.client_ip(&xff("2001:db8::1")).as_deref(),
            Some("2001:0db8:0000:0000:0000:0000:0000:0000")
        );
        assert_eq!(
            r.client_ip(&xff("::ffff:1.2.3.4")).as_deref(),
            Some("1.2.3.4")
        );
    }
}
