//! Address classes that decide where a client address may be looked up:
//! addresses that only mean something inside the branch (LAN, loopback,
//! link-local, CGNAT, unique-local IPv6) are never sent to GeoIP.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) turned into IPv4, so a
/// dual-stack listener sees the same client as an IPv4 one.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Whether a GeoIP database can say anything meaningful about `ip`; expects a
/// [`canonical`] address.
///
/// False for addresses whose location is local to the network that uses them:
/// unspecified, loopback, private (RFC 1918), link-local, CGNAT (RFC 6598),
/// broadcast, multicast, IPv6 unique-local and site-local.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let cgnat = a == 100 && (64..128).contains(&b);
    // 0.0.0.0/8 is "this network": never a real peer.
    let this_network = a == 0;
    !(ip.is_unspecified()
        || this_network
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || cgnat
        || ip.is_broadcast()
        || ip.is_multicast())
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00; // fc00::/7
    let link_local = first & 0xffc0 == 0xfe80; // fe80::/10
    let site_local = first & 0xffc0 == 0xfec0; // fec0::/10, deprecated but still seen
    !(ip.is_unspecified()
        || ip.is_loopback()
        || unique_local
        || link_local
        || site_local
        || ip.is_multicast())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(canonical(s.parse().unwrap()))
    }

    #[test]
    fn local_addresses_are_not_public() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "10.20.1.1",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.1",
            "169.254.10.10",
            "100.64.0.1",
            "100.127.255.254",
            "255.255.255.255",
            "224.0.0.1",
            "::",
            "::1",
            "fd00::1",
            "fc12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!public(ip), "{ip} must not be public");
        }
    }

    #[test]
    fn global_addresses_are_public() {
        for ip in [
            "8.8.8.8",
            "49.36.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "2401:4900::1",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
        ] {
            assert!(public(ip), "{ip} must be public");
        }
    }

    #[test]
    fn mapped_addresses_become_ipv4() {
        let ip: IpAddr = "::ffff:49.36.1.2".parse().unwrap();
        assert_eq!(canonical(ip), "49.36.1.2".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "2401:4900::1".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }
}
