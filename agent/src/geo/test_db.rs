//! A small MaxMind DB built in tests, so no test depends on a downloaded
//! database. The same bytes are committed as
//! `agent/tests/fixtures/geoip-test.mmdb` for end-to-end tests; regenerate it
//! with `RESIDENCY_WRITE_FIXTURES=1 cargo test -p residency-agent geo::`.
//!
//! It deliberately maps private and CGNAT ranges to `US`: a lookup that
//! wrongly sends a LAN address to GeoIP then shows up as a wrong country.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use mmdb_writer::ipnet::IpNet;
use mmdb_writer::{IpVersion, Value, Writer};

/// `database_type` in the fixture's metadata.
pub(crate) const DATABASE_TYPE: &str = "Residency-Test-Country";

/// What the fixture holds: network, then the record's top-level entries.
fn records() -> Vec<(&'static str, Value)> {
    let iso = |code: &str| Value::map([("iso_code", Value::from(code))]);
    let country =
        |code: &str| Value::map([("country", iso(code)), ("registered_country", iso(code))]);
    vec![
        ("49.36.0.0/14", country("IN")),
        ("8.8.8.0/24", country("US")),
        ("2401:4900::/32", country("IN")),
        (
            "103.21.0.0/16",
            Value::map([
                (
                    "city",
                    Value::map([("names", Value::map([("en", "Mumbai")]))]),
                ),
                ("continent", Value::map([("code", "AS")])),
                (
                    "country",
                    Value::map([
                        ("geoname_id", Value::from(1_269_750_u32)),
                        ("iso_code", Value::from("IN")),
                        ("names", Value::map([("en", "India")])),
                    ]),
                ),
            ]),
        ),
        (
            "81.2.69.0/24",
            Value::map([("registered_country", iso("GB"))]),
        ),
        (
            "5.5.5.0/24",
            Value::map([("country", iso("fr")), ("registered_country", iso("FR"))]),
        ),
        ("1.1.1.0/24", Value::map([("country", iso("XXX"))])),
        ("2.2.2.0/24", Value::map([("country", Value::from(7_u32))])),
        // Traps: LAN ranges must never be looked up here.
        ("10.0.0.0/8", country("US")),
        ("192.168.0.0/16", country("US")),
        ("100.64.0.0/10", country("US")),
        ("fd00::/8", country("US")),
    ]
}

fn build(version: IpVersion) -> Vec<u8> {
    let mut writer = Writer::builder(DATABASE_TYPE)
        .ip_version(version)
        .description(&[("en", "Residency Agent test database")])
        // Fixed so the output is reproducible.
        .build_epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000))
        .build();
    for (net, value) in records() {
        let net: IpNet = net.parse().expect("fixture networks are valid");
        if version == IpVersion::V4 && matches!(net, IpNet::V6(_)) {
            continue;
        }
        writer.insert_value(net, value).expect("fixture insert");
    }
    writer.to_bytes().expect("fixture serialises")
}

/// The fixture as an IPv6 database (IPv4 reachable through `::/96`).
pub(crate) fn bytes() -> Vec<u8> {
    build(IpVersion::V6)
}

/// The IPv4 records only, as an IPv4 database.
pub(crate) fn ipv4_only_bytes() -> Vec<u8> {
    build(IpVersion::V4)
}

/// Writes the fixture into `dir` and returns its path.
pub(crate) fn write(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("geoip-test.mmdb");
    std::fs::write(&path, bytes()).expect("write fixture");
    path
}

/// The committed copy under `agent/tests/fixtures/`.
pub(crate) fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geoip-test.mmdb")
}

#[cfg(test)]
mod tests {
    use super::super::geoip::GeoIpDb;
    use super::*;

    /// The committed fixture answers like the generator. Compared by lookups,
    /// not bytes, so a writer upgrade that lays bytes out differently is fine.
    #[test]
    fn committed_fixture_matches_generator() {
        let path = committed_path();
        if std::env::var_os("RESIDENCY_WRITE_FIXTURES").is_some() {
            std::fs::create_dir_all(path.parent().expect("has a parent")).unwrap();
            std::fs::write(&path, bytes()).unwrap();
        }
        let committed = GeoIpDb::open(&path).unwrap();
        let generated = GeoIpDb::from_bytes(bytes(), &path).unwrap();
        assert_eq!(committed.database_type(), DATABASE_TYPE);
        for probe in [
            "49.36.0.1",
            "49.39.255.254",
            "49.40.0.1",
            "8.8.8.8",
            "8.8.9.8",
            "2401:4900::1",
            "2401:4901::1",
            "103.21.1.1",
            "81.2.69.1",
            "5.5.5.5",
            "1.1.1.1",
            "2.2.2.2",
            "10.1.2.3",
            "192.168.1.1",
            "100.64.0.1",
            "fd00::1",
            "9.9.9.9",
        ] {
            let ip = probe.parse().unwrap();
            assert_eq!(
                committed.country_of(ip),
                generated.country_of(ip),
                "{probe}"
            );
        }
        assert_eq!(
            committed
                .country_of("49.36.0.1".parse().unwrap())
                .map(|j| j.to_string()),
            Some("IN".to_owned())
        );
    }
}
