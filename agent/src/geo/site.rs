//! The site map: client CIDR to site to country, built from `[[geo.site]]`,
//! with longest-prefix match among overlapping ranges.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use residency_proto::region::Jurisdiction;

use super::{GeoError, SiteEntry};

/// Longest site name accepted, in bytes.
const MAX_NAME_LEN: usize = 64;

/// One site of the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Site {
    /// The configured name, e.g. `pune-branch`.
    pub(crate) name: String,
    /// Where the people at this site are.
    pub(crate) country: Jurisdiction,
}

/// Parsed `[[geo.site]]` entries, ready for lookups.
#[derive(Debug, Clone, Default)]
pub(crate) struct SiteMap {
    sites: Vec<Site>,
    /// Sorted by prefix length, longest first, so the first hit is the longest match.
    v4: Vec<(Ipv4Net, usize)>,
    /// Sorted like `v4`.
    v6: Vec<(Ipv6Net, usize)>,
}

impl SiteMap {
    /// Parses and checks the entries; errors name the field, e.g.
    /// `geo.site[1].cidrs[0]`.
    pub(crate) fn build(entries: &[SiteEntry]) -> Result<SiteMap, GeoError> {
        let mut map = SiteMap::default();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut seen: HashMap<IpNet, (usize, usize)> = HashMap::new();
        for (i, entry) in entries.iter().enumerate() {
            let field = |rest: &str| format!("geo.site[{i}].{rest}");
            check_name(&entry.name).map_err(|reason| GeoError::invalid(field("name"), reason))?;
            if let Some(first) = names.insert(entry.name.as_str(), i) {
                return Err(GeoError::invalid(
                    field("name"),
                    format!(
                        "site {:?} is already defined by geo.site[{first}]",
                        entry.name
                    ),
                ));
            }
            let country = Jurisdiction::new(&entry.country).ok_or_else(|| {
                GeoError::invalid(
                    field("country"),
                    format!(
                        "{:?} is not a country code: expected two uppercase letters, e.g. \"IN\"",
                        entry.country
                    ),
                )
            })?;
            if entry.cidrs.is_empty() {
                return Err(GeoError::invalid(
                    field("cidrs"),
                    "a site needs at least one CIDR, e.g. [\"10.20.0.0/16\"]".to_owned(),
                ));
            }
            let index = map.sites.len();
            for (j, text) in entry.cidrs.iter().enumerate() {
                let cidr_field = field(&format!("cidrs[{j}]"));
                let net =
                    parse_cidr(text).map_err(|reason| GeoError::invalid(&cidr_field, reason))?;
                if let Some((si, sj)) = seen.insert(net, (i, j)) {
                    return Err(GeoError::invalid(
                        cidr_field,
                        format!("{net} is already listed as geo.site[{si}].cidrs[{sj}]"),
                    ));
                }
                match net {
                    IpNet::V4(n) => map.v4.push((n, index)),
                    IpNet::V6(n) => map.v6.push((n, index)),
                }
            }
            map.sites.push(Site {
                name: entry.name.clone(),
                country,
            });
        }
        // Stable sort: equal lengths cannot overlap without being equal, and
        // duplicates were refused above, so the order among them is irrelevant.
        map.v4
            .sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
        map.v6
            .sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
        Ok(map)
    }

    /// The most specific site whose ranges contain `ip`; expects a canonical
    /// address (IPv4-mapped IPv6 already turned into IPv4).
    pub(crate) fn lookup(&self, ip: IpAddr) -> Option<&Site> {
        let index = match ip {
            IpAddr::V4(a) => self.v4.iter().find(|(n, _)| n.contains(&a))?.1,
            IpAddr::V6(a) => self.v6.iter().find(|(n, _)| n.contains(&a))?.1,
        };
        self.sites.get(index)
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a site needs a name, e.g. \"pune-branch\"".to_owned());
    }
    // The name goes into logs and audit records: keep it plain.
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if name.len() > MAX_NAME_LEN || !plain {
        return Err(format!(
            "site name {name:?} may only use ASCII letters, digits, '-', '_' and '.' \
             (at most {MAX_NAME_LEN} bytes)"
        ));
    }
    Ok(())
}

/// Parses `10.20.0.0/16`, `2401:db8::/32` or a single address (taken as /32 or
/// /128). Refuses host bits below the prefix, which usually mean a typo, and
/// turns IPv4-mapped IPv6 ranges into IPv4 so they match canonical addresses.
pub(crate) fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let net = if text.contains('/') {
        text.parse::<IpNet>()
            .map_err(|_| format!("{text:?} is not a CIDR, e.g. \"10.20.0.0/16\""))?
    } else {
        let ip: IpAddr = text
            .parse()
            .map_err(|_| format!("{text:?} is not a CIDR, e.g. \"10.20.0.0/16\""))?;
        IpNet::from(ip)
    };
    if net.trunc() != net {
        return Err(format!(
            "{text:?} has bits set below the /{} prefix; did you mean \"{}\"?",
            net.prefix_len(),
            net.trunc()
        ));
    }
    Ok(unmap(net))
}

/// `::ffff:a.b.c.d/n` (n >= 96) as the IPv4 range it stands for.
fn unmap(net: IpNet) -> IpNet {
    if let IpNet::V6(n) = net {
        if n.prefix_len() >= 96 {
            if let Some(v4) = n.network().to_ipv4_mapped() {
                if let Ok(v4net) = Ipv4Net::new(v4, n.prefix_len() - 96) {
                    return IpNet::V4(v4net);
                }
            }
        }
    }
    net
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, cidrs: &[&str], country: &str) -> SiteEntry {
        SiteEntry {
            name: name.to_owned(),
            cidrs: cidrs.iter().map(|s| (*s).to_owned()).collect(),
            country: country.to_owned(),
        }
    }

    fn name_of<'a>(map: &'a SiteMap, ip: &str) -> Option<&'a str> {
        map.lookup(ip.parse().unwrap()).map(|s| s.name.as_str())
    }

    #[test]
    fn longest_prefix_wins_whatever_the_order() {
        // Listed broadest last and most specific first, then the other way:
        // the answer must not depend on the order of the config.
        let mut entries = vec![
            entry("lab", &["10.20.5.0/24"], "GB"),
            entry("pune", &["10.20.0.0/16"], "IN"),
            entry("corp", &["10.0.0.0/8"], "US"),
        ];
        for _ in 0..2 {
            let map = SiteMap::build(&entries).unwrap();
            assert_eq!(name_of(&map, "10.20.5.1"), Some("lab"));
            assert_eq!(name_of(&map, "10.20.6.1"), Some("pune"));
            assert_eq!(name_of(&map, "10.1.1.1"), Some("corp"));
            assert_eq!(name_of(&map, "11.1.1.1"), None);
            assert_eq!(name_of(&map, "fd00::1"), None);
            entries.reverse();
        }
    }

    #[test]
    fn ipv6_ranges_and_single_addresses() {
        let map = SiteMap::build(&[
            entry("v6", &["fd12:3456::/32"], "IN"),
            entry("host", &["fd12:3456::7", "192.0.2.7"], "US"),
        ])
        .unwrap();
        assert_eq!(name_of(&map, "fd12:3456::1"), Some("v6"));
        assert_eq!(name_of(&map, "fd12:3456::7"), Some("host"));
        assert_eq!(name_of(&map, "192.0.2.7"), Some("host"));
        assert_eq!(name_of(&map, "192.0.2.8"), None);
        assert_eq!(
            map.lookup("fd12:3456::7".parse().unwrap())
                .unwrap()
                .country
                .as_str(),
            "US"
        );
    }

    #[test]
    fn mapped_ranges_match_ipv4_addresses() {
        assert_eq!(
            parse_cidr("::ffff:49.36.0.0/120").unwrap().to_string(),
            "49.36.0.0/24"
        );
        let map = SiteMap::build(&[entry("nat", &["::ffff:49.36.0.0/120"], "IN")]).unwrap();
        assert_eq!(name_of(&map, "49.36.0.9"), Some("nat"));
        assert_eq!(name_of(&map, "49.36.1.9"), None);
    }

    #[test]
    fn cidr_errors_say_why() {
        assert!(parse_cidr("10.20.0.0/33")
            .unwrap_err()
            .contains("is not a CIDR"));
        assert!(parse_cidr("pune").unwrap_err().contains("is not a CIDR"));
        assert!(parse_cidr("").unwrap_err().contains("is not a CIDR"));
        let host_bits = parse_cidr("10.20.1.5/16").unwrap_err();
        assert!(host_bits.contains("10.20.0.0/16"), "{host_bits}");
        assert_eq!(
            parse_cidr("10.20.0.0/16").unwrap().to_string(),
            "10.20.0.0/16"
        );
    }
}
