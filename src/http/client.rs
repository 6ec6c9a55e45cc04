//! The client's address and user agent, as Better Auth records them on sessions.
//!
//! The address comes from the configured headers (default `X-Forwarded-For`).
//! - Without trusted proxies (Better Auth's behaviour) the header must hold exactly one
//!   address, and it is only *recorded* on sessions: the rate limiter never believes it.
//! - With trusted proxies, headers are believed only when the connection itself comes
//!   from a trusted proxy; the chain is then walked right to left past trusted hops, and
//!   the first untrusted hop is the client (for the limiter and the record alike). From
//!   any other peer, the peer's address is the client.
//!
//! IPv4-mapped IPv6 becomes IPv4; other IPv6 is expanded and masked to the configured
//! prefix (default /64), so that one host cannot pose as many by changing its low bits.

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

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    /// The right-most hop of the configured headers that is not a trusted proxy (the
    /// left-most one when all are), or, without trusted proxies, a single-valued header.
    fn forwarded(&self, h: &HeaderMap) -> Option<IpAddr> {
        for name in &self.headers {
            // Repeated lines of a header are one list, in order (RFC 9110): a proxy that
            // adds its own line puts the address it saw last.
            let lines: Vec<&str> = h
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            if lines.is_empty() {
                continue;
            }
            let mut hops = lines
                .iter()
                .flat_map(|l| l.split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty());
            let found = if self.trusted.is_empty() {
                match (hops.next(), hops.next()) {
                    (Some(one), None) => one.parse::<IpAddr>().ok(),
                    _ => None,
                }
            } else {
                let mut last = None;
                let mut found = None;
                for ip in hops.rev().filter_map(|s| s.parse::<IpAddr>().ok()) {
                    let ip = ip.to_canonical();
                    last = Some(ip);
                    if !self.is_trusted(ip) {
                        found = Some(ip);
                        break;
                    }
                }
                found.or(last)
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// The client's address as far as it can be trusted: forwarded by a trusted proxy, or
    /// the peer's. `None` only without a peer address.
    pub fn client_addr(&self, h: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        let peer = peer.map(|p| p.to_canonical());
        match peer {
            Some(p) if !self.trusted.is_empty() && self.is_trusted(p) => {
                self.forwarded(h).or(Some(p))
            }
            other => other,
        }
    }

    /// The address recorded on a session ("" when unknown or tracking is off): with trusted
    /// proxies the client address above; without, Better Auth's rule (a single-valued
    /// header, else nothing).
    pub fn recorded_ip(&self, h: &HeaderMap, peer: Option<IpAddr>) -> String {
        if self.disabled {
            return String::new();
        }
        let ip = if self.trusted.is_empty() {
            self.forwarded(h)
        } else {
            self.client_addr(h, peer)
        };
        ip.map(|ip| self.normalise(ip)).unwrap_or_default()
    }

    /// The address masked as the limiter counts it: IPv6 to the configured prefix.
    pub fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let mask = if self.ipv6_subnet == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.ipv6_subnet))
                };
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
            v4 => v4,
        }
    }

    /// Better Auth's text for an address: IPv4 as is, IPv6 masked and fully expanded.
    fn normalise(&self, ip: IpAddr) -> String {
        match self.masked(ip) {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => v6
                .segments()
                .iter()
                .map(|s| format!("{s:04x}"))
                .collect::<Vec<_>>()
                .join(":"),
        }
    }

    /// Address and user agent of a request from `peer`.
    pub fn client_info(&self, h: &HeaderMap, peer: Option<IpAddr>) -> ClientInfo {
        ClientInfo {
            ip_address: self.recorded_ip(h, peer),
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

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn single_address_only_without_trusted_proxies() {
        let r = rules(&[]);
        assert_eq!(r.recorded_ip(&xff("1.2.3.4"), ip("127.0.0.1")), "1.2.3.4");
        assert_eq!(r.recorded_ip(&xff("1.2.3.4, 10.0.0.5"), None), "");
        assert_eq!(r.recorded_ip(&xff("garbage"), None), "");
        // The limiter never believes it.
        assert_eq!(
            r.client_addr(&xff("1.2.3.4"), ip("127.0.0.1")),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn trusted_proxies_are_skipped_right_to_left_from_a_trusted_peer_only() {
        let r = rules(&["10.0.0.0/8"]);
        let chain = xff("9.9.9.9, 1.2.3.4, 10.0.0.5");
        assert_eq!(r.client_addr(&chain, ip("10.1.1.1")), ip("1.2.3.4"));
        assert_eq!(r.recorded_ip(&chain, ip("10.1.1.1")), "1.2.3.4");
        // From anyone else the header is ignored: the peer is the client.
        assert_eq!(r.client_addr(&chain, ip("203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(r.recorded_ip(&chain, ip("203.0.113.9")), "203.0.113.9");
        // A mapped IPv4 peer (dual-stack listener) is the same peer.
        assert_eq!(r.client_addr(&chain, ip("::ffff:10.1.1.1")), ip("1.2.3.4"));
        // All hops trusted: the left-most.
        assert_eq!(
            r.client_addr(&xff("10.0.0.1, 10.0.0.2"), ip("10.1.1.1")),
            ip("10.0.0.1")
        );
        // No header: the proxy itself.
        assert_eq!(
            r.client_addr(&HeaderMap::new(), ip("10.1.1.1")),
            ip("10.1.1.1")
        );
    }

    #[test]
    fn repeated_header_lines_are_one_list() {
        let r = rules(&["127.0.0.1"]);
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "10.0.0.1".parse().unwrap());
        h.append("x-forwarded-for", "8.8.8.8".parse().unwrap());
        assert_eq!(r.client_addr(&h, ip("127.0.0.1")), ip("8.8.8.8"));
        // Without trusted proxies, two lines are two addresses: not a single one.
        assert_eq!(rules(&[]).recorded_ip(&h, None), "");
    }

    #[test]
    fn ipv6_is_masked_and_mapped_ipv4_unwrapped() {
        let r = rules(&[]);
        assert_eq!(
            r.recorded_ip(&xff("2001:db8::1"), None),
            "2001:0db8:0000:0000:0000:0000:0000:0000"
        );
        assert_eq!(r.recorded_ip(&xff("::ffff:1.2.3.4"), None), "1.2.3.4");
        // Peers are masked for the limiter too: one /64 is one client.
        assert_eq!(
            r.masked("2001:db8::1:2:3".parse().unwrap()),
            r.masked("2001:db8::ffff".parse().unwrap())
        );
        assert_ne!(
            r.masked("2001:db8:0:1::1".parse().unwrap()),
            r.masked("2001:db8:0:2::1".parse().unwrap())
        );
    }
}
