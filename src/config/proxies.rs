//! Which trusted-proxy ranges are acceptable: narrow enough to be one operator's proxies,
//! alone and together, however IPv4 is written inside IPv6.

use ipnet::IpNet;

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

/// Checks `advanced.ip_address.trusted_proxies`: each entry an address or CIDR, none and
/// not all together broader than one operator's proxies.
pub(super) fn check_trusted_proxies(proxies: &[String]) -> Result<(), String> {
    let mut nets = Vec::new();
    for p in proxies {
        let net = p
            .parse::<IpNet>()
            .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| {
                format!("advanced.ip_address.trusted_proxies: {p:?} is not an address or CIDR")
            })?;
        if too_broad(&net) {
            return Err(format!(
                "advanced.ip_address.trusted_proxies: {p:?} trusts a large part of the \
                 internet; list your proxies (IPv4 /8 or narrower, IPv6 /32 or narrower)"
            ));
        }
        nets.push(net);
    }
    if too_broad_together(&nets) {
        return Err(
            "advanced.ip_address.trusted_proxies: together the entries trust more than a /8 \
             of public IPv4 or a /32 of public IPv6; list your proxies"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{too_broad, too_broad_together, IpNet};

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
    fn trusted_proxy_ranges_are_judged_together() {
        let together = |list: &[&str]| {
            let nets: Vec<IpNet> = list.iter().map(|s| s.parse().unwrap()).collect();
            too_broad_together(&nets)
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
}
