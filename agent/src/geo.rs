//! The data subject's geography: the `[geo]` config section, the site map
//! (client CIDR to site to country), the GeoIP database, and the order in
//! which they answer "where is this person?" (DESIGN.md, "Geography").
//!
//! Everything here is a plain lookup over data loaded once at start-up: no
//! sockets, no clock. [`Geo::load`] is the only function that touches the file
//! system.
//!
//! ```toml
//! [geo]
//! site_country = "IN"
//! geoip_database = "GeoLite2-Country.mmdb"   # relative to agent.toml
//! gateway_attestation = "warn"               # off | warn | enforce
//!
//! [[geo.site]]
//! name = "pune-branch"
//! cidrs = ["10.20.0.0/16", "fd20::/48"]
//! country = "IN"
//! ```

mod addr;
pub mod attest;
mod geoip;
mod site;
#[cfg(test)]
mod test_db;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use residency_proto::region::Jurisdiction;
use serde::{Deserialize, Serialize};

use crate::policy::CountrySource;

use self::geoip::GeoIpDb;
use self::site::SiteMap;

/// The `[geo]` section of `agent.toml`. Every field has a default, so an
/// absent section means "no site, no database, no attestation".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeoConfig {
    /// The country of the agent's own site, e.g. `IN`: the answer when
    /// nothing more specific is known.
    pub site_country: Option<String>,
    /// A MaxMind DB (GeoLite2, GeoIP2 or DB-IP, Country or City) for public
    /// client addresses and gateway attestation.
    pub geoip_database: Option<PathBuf>,
    /// `[[geo.site]]`: client ranges and the country of the people in them.
    #[serde(rename = "site")]
    pub sites: Vec<SiteEntry>,
    /// Whether a gateway's address must geolocate to its region's jurisdiction.
    pub gateway_attestation: AttestationMode,
    /// Reverse proxies (CIDRs) whose `X-Forwarded-For` names the real client.
    /// From any other peer the header is ignored, so a client cannot choose
    /// its own location.
    pub trusted_proxies: Vec<String>,
}

/// One `[[geo.site]]`: a named set of client ranges in one country.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteEntry {
    /// Name for logs and audit, e.g. `pune-branch`.
    pub name: String,
    /// Client ranges, e.g. `10.20.0.0/16`; a bare address means one host.
    pub cidrs: Vec<String>,
    /// Country of the people at this site, e.g. `IN`.
    pub country: String,
}

/// How a gateway's IP address is checked against GeoIP before use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttestationMode {
    /// Not checked.
    #[default]
    Off,
    /// A mismatch is logged; the gateway is still used.
    Warn,
    /// A gateway whose address geolocates outside its region's jurisdiction
    /// is never used.
    Enforce,
}

/// The loaded `[geo]` section: site country, site map and GeoIP database.
///
/// Cheap to share behind an `Arc`; every lookup takes `&self`.
pub struct Geo {
    site_country: Option<Jurisdiction>,
    sites: SiteMap,
    db: Option<GeoIpDb>,
    attestation: AttestationMode,
    proxies: Vec<ipnet::IpNet>,
}

/// Why the `[geo]` section cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// A value is malformed or inconsistent; names the field.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field at fault, e.g. `geo.site[1].cidrs[0]`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The GeoIP database file could not be read.
    #[error("geo.geoip_database: cannot read {path}: {source}")]
    DatabaseRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The GeoIP database file is not a valid MaxMind DB.
    #[error("geo.geoip_database: {path} is not a valid MaxMind DB: {source}")]
    DatabaseInvalid {
        /// The file.
        path: PathBuf,
        /// What the reader found wrong.
        source: maxminddb::MaxMindDbError,
    },
}

impl GeoConfig {
    /// Makes a relative `geoip_database` relative to `base`, the directory of
    /// the config file, so the agent does not depend on its working directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(path) = &mut self.geoip_database {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }

    /// Checks what serde could not, without touching the file system; names
    /// the field at fault. [`Geo::load`] also opens the database.
    pub fn validate(&self) -> Result<(), GeoError> {
        self.check().map(|_| ())
    }

    /// [`GeoConfig::validate`], keeping what it parsed.
    fn proxies(&self) -> Result<Vec<ipnet::IpNet>, GeoError> {
        self.trusted_proxies
            .iter()
            .enumerate()
            .map(|(i, text)| {
                site::parse_cidr(text).map_err(|reason| {
                    GeoError::invalid(format!("geo.trusted_proxies[{i}]"), reason)
                })
            })
            .collect()
    }

    fn check(&self) -> Result<(Option<Jurisdiction>, SiteMap), GeoError> {
        self.proxies()?;
        let site_country = self.site_country()?;
        if let Some(path) = &self.geoip_database {
            if path.as_os_str().is_empty() {
                return Err(GeoError::invalid(
                    "geo.geoip_database",
                    "must not be empty; leave it out to use no database".to_owned(),
                ));
            }
        }
        let sites = SiteMap::build(&self.sites)?;
        Ok((site_country, sites))
    }

    fn site_country(&self) -> Result<Option<Jurisdiction>, GeoError> {
        self.site_country
            .as_deref()
            .map(|code| {
                Jurisdiction::new(code).ok_or_else(|| {
                    GeoError::invalid(
                        "geo.site_country",
                        format!(
                            "{code:?} is not a country code: expected two uppercase letters, e.g. \"IN\""
                        ),
                    )
                })
            })
            .transpose()
    }
}

impl Geo {
    /// Validates `cfg`, parses the site map and reads and verifies the GeoIP
    /// database (call [`GeoConfig::resolve_paths`] first). A missing or
    /// corrupt database is an error naming the path.
    pub fn load(cfg: &GeoConfig) -> Result<Geo, GeoError> {
        let (site_country, sites) = cfg.check()?;
        let db = cfg
            .geoip_database
            .as_deref()
            .map(GeoIpDb::open)
            .transpose()?;
        if let Some(db) = &db {
            tracing::info!(
                path = %db.path().display(),
                database_type = db.database_type(),
                "geoip database loaded"
            );
        }
        Ok(Geo {
            site_country,
            sites,
            db,
            attestation: cfg.gateway_attestation,
            proxies: cfg.proxies()?,
        })
    }

    /// No site country, no site map, no database: every answer is unknown.
    pub fn empty() -> Geo {
        Geo {
            site_country: None,
            sites: SiteMap::default(),
            db: None,
            attestation: AttestationMode::Off,
            proxies: Vec::new(),
        }
    }

    /// The client behind a connection: the peer itself, unless the peer is a
    /// trusted proxy, in which case the right-most `X-Forwarded-For` address
    /// that is not itself a trusted proxy (the left part of the header is
    /// whatever the client wrote, so it is never believed). A header that does
    /// not parse leaves the peer as the client.
    pub fn client_addr<'h>(
        &self,
        peer: IpAddr,
        forwarded_for: impl Iterator<Item = &'h str>,
    ) -> IpAddr {
        let trusted = |ip: IpAddr| {
            let ip = addr::canonical(ip);
            self.proxies.iter().any(|n| n.contains(&ip))
        };
        if !trusted(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                return peer;
            };
            client = ip;
            if !trusted(ip) {
                break;
            }
        }
        client
    }

    /// The data subject's country, in DESIGN order: the trusted header
    /// (already validated by the policy, passed in), then the site map for the
    /// client address, then GeoIP for a public client address, then the
    /// agent's site country. Returns which source answered.
    ///
    /// LAN, loopback, link-local, CGNAT and unique-local addresses are looked
    /// up only in the site map, never in GeoIP; IPv4-mapped IPv6 addresses
    /// count as IPv4.
    pub fn subject_country(
        &self,
        trusted_header: Option<Jurisdiction>,
        client: Option<IpAddr>,
    ) -> (Option<Jurisdiction>, CountrySource) {
        if let Some(country) = trusted_header {
            return (Some(country), CountrySource::Header);
        }
        if let Some(ip) = client.map(addr::canonical) {
            if let Some(site) = self.sites.lookup(ip) {
                return (Some(site.country), CountrySource::SiteMap);
            }
            if let Some(country) = self.geoip_country(ip) {
                return (Some(country), CountrySource::GeoIp);
            }
        }
        match self.site_country {
            Some(country) => (Some(country), CountrySource::Site),
            None => (None, CountrySource::None),
        }
    }

    /// GeoIP country of any address (for endpoint attestation of gateway
    /// addresses). `None` if there is no database, the database does not know
    /// the address, or the address is not public (private addresses have no
    /// meaningful location in a public database).
    pub fn country_of(&self, ip: IpAddr) -> Option<Jurisdiction> {
        self.geoip_country(addr::canonical(ip))
    }

    /// Name of the most specific `[[geo.site]]` containing `ip`, for logs and
    /// audit.
    pub fn site_of(&self, ip: IpAddr) -> Option<&str> {
        self.sites
            .lookup(addr::canonical(ip))
            .map(|site| site.name.as_str())
    }

    /// How gateway addresses are to be checked against GeoIP.
    pub fn attestation(&self) -> AttestationMode {
        self.attestation
    }

    /// Expects a canonical address.
    fn geoip_country(&self, ip: IpAddr) -> Option<Jurisdiction> {
        if !addr::is_public(ip) {
            return None;
        }
        self.db.as_ref()?.country_of(ip)
    }
}

impl Default for Geo {
    fn default() -> Self {
        Geo::empty()
    }
}

impl std::fmt::Debug for Geo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Geo")
            .field("site_country", &self.site_country)
            .field("sites", &self.sites)
            .field("db", &self.db)
            .field("attestation", &self.attestation)
            .finish()
    }
}

impl GeoError {
    fn invalid(field: impl Into<String>, reason: String) -> GeoError {
        GeoError::Invalid {
            field: field.into(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IN: Option<Jurisdiction> = Some(Jurisdiction::IN);
    const US: Option<Jurisdiction> = Some(Jurisdiction::US);

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn site(name: &str, cidrs: &[&str], country: &str) -> SiteEntry {
        SiteEntry {
            name: name.to_owned(),
            cidrs: cidrs.iter().map(|s| (*s).to_owned()).collect(),
            country: country.to_owned(),
        }
    }

    /// A branch in India with a LAN site, a listed public NAT range that
    /// GeoIP would place in the US, and the test database.
    fn branch(dir: &tempfile::TempDir, site_country: Option<&str>) -> Geo {
        let cfg = GeoConfig {
            site_country: site_country.map(str::to_owned),
            geoip_database: Some(test_db::write(dir.path())),
            sites: vec![
                site("pune-branch", &["10.20.0.0/16", "fd20::/48"], "IN"),
                site("us-desk", &["10.20.9.0/24"], "US"),
                site("nat-egress", &["8.8.8.0/28"], "IN"),
            ],
            gateway_attestation: AttestationMode::Enforce,
            trusted_proxies: Vec::new(),
        };
        Geo::load(&cfg).unwrap()
    }

    fn field_of(err: GeoError) -> String {
        match err {
            GeoError::Invalid { field, .. } => field,
            other => panic!("expected an invalid field, got {other}"),
        }
    }

    #[test]
    fn trusted_header_wins() {
        let dir = tempfile::tempdir().unwrap();
        let geo = branch(&dir, Some("IN"));
        let gb = Jurisdiction::new("GB");
        for client in [ip("10.20.1.1"), ip("8.8.8.100"), ip("49.36.1.1"), None] {
            assert_eq!(geo.subject_country(gb, client), (gb, CountrySource::Header));
        }
    }

    #[test]
    fn lan_address_uses_the_site_map() {
        let dir = tempfile::tempdir().unwrap();
        let geo = branch(&dir, Some("GB"));
        assert_eq!(
            geo.subject_country(None, ip("10.20.1.1")),
            (IN, CountrySource::SiteMap)
        );
        assert_eq!(
            geo.subject_country(None, ip("10.20.9.1")),
            (US, CountrySource::SiteMap)
        );
        assert_eq!(
            geo.subject_country(None, ip("fd20::5")),
            (IN, CountrySource::SiteMap)
        );
        assert_eq!(geo.site_of("10.20.9.1".parse().unwrap()), Some("us-desk"));
        assert_eq!(
            geo.site_of("10.20.1.1".parse().unwrap()),
            Some("pune-branch")
        );
    }

    #[test]
    fn lan_address_never_uses_geoip() {
        // The test database maps 10/8, 192.168/16, 100.64/10 and fd00::/8 to US.
        let dir = tempfile::tempdir().unwrap();
        let geo = branch(&dir, Some("IN"));
        for client in [
            "10.99.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "fd00::1",
            "::ffff:10.99.0.1",
        ] {
            assert_eq!(
                geo.subject_country(None, ip(client)),
                (IN, CountrySource::Site),
                "{client}"
            );
            assert_eq!(geo.country_of(client.parse().unwrap()), None, "{client}");
        }
        let no_site = branch(&dir, None);
        assert_eq!(
            no_site.subject_country(None, ip("192.168.1.1")),
            (None, CountrySource::None)
        );
    }

    #[test]
    fn public_address_in_the_site_map_uses_the_site_map() {
        // GeoIP says US for 8.8.8.0/24; the bank lists 8.8.8.0/28 as its own NAT.
        let dir = tempfile::tempdir().unwrap();
        let geo = branch(&dir, None);
        assert_eq!(
            geo.subject_country(None, ip("8.8.8.1")),
            (IN, CountrySource::SiteMap)
        );
        assert_eq!(geo.site_of("8.8.8.1".parse().unwrap()), Some("nat-egress"));
        assert_eq!(
            geo.subject_country(None, ip("8.8.8.100")),
            (US, CountrySource::GeoIp)
        );
    }

    #[test]
    fn public_address_maps_through_geoip() {
        let dir = tempfile::tempdir().unwrap();
        let geo = branch(&dir, Some("GB"));
        assert_eq!(
            geo.subject_country(None, ip("49.36.1.1")),
            (IN, CountrySource::GeoIp)
        );
        assert_eq!(
            geo.subject_country(None, ip("8.8.8.200")),
            (US, CountrySource::GeoIp)
        );
        assert_eq!(
            geo.subject_country(None, ip("2401:4900::9")),
            (IN, CountrySource::GeoIp)
        );
        assert_eq!(
            geo.subject_country(None, ip("::ffff:49.36.1.1")),
            (IN, CountrySource::GeoIp)
        );
        assert_eq!(geo.country_of("8.8.8.8".parse().unwrap()), US);
        assert_eq!(geo.country_of("::ffff:49.36.1.1".parse().unwrap()), IN);
        assert_eq!(geo.site_of("49.36.1.1".parse().unwrap()), None);
    }

    #[test]
    fn unknown_address_falls_back_to_the_site_country() {
        let dir = tempfile::tempdir().unwrap();
        let geo = branch(&dir, Some("IN"));
        assert_eq!(
            geo.subject_country(None, ip("9.9.9.9")),
            (IN, CountrySource::Site)
        );
        assert_eq!(geo.subject_country(None, None), (IN, CountrySource::Site));
        assert_eq!(geo.country_of("9.9.9.9".parse().unwrap()), None);
    }

    #[test]
    fn nothing_known_is_none() {
        let geo = Geo::empty();
        assert_eq!(geo.subject_country(None, None), (None, CountrySource::None));
        assert_eq!(
            geo.subject_country(None, ip("49.36.1.1")),
            (None, CountrySource::None)
        );
        assert_eq!(geo.country_of("49.36.1.1".parse().unwrap()), None);
        assert_eq!(geo.site_of("10.20.1.1".parse().unwrap()), None);
        assert_eq!(geo.attestation(), AttestationMode::Off);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            branch(&dir, None).subject_country(None, ip("9.9.9.9")),
            (None, CountrySource::None)
        );
    }

    #[test]
    fn site_map_without_a_database() {
        let geo = Geo::load(&GeoConfig {
            site_country: Some("IN".to_owned()),
            sites: vec![site("pune", &["10.20.0.0/16"], "IN")],
            ..GeoConfig::default()
        })
        .unwrap();
        assert_eq!(
            geo.subject_country(None, ip("10.20.0.1")),
            (IN, CountrySource::SiteMap)
        );
        assert_eq!(
            geo.subject_country(None, ip("8.8.8.8")),
            (IN, CountrySource::Site)
        );
    }

    #[test]
    fn parses_the_toml_section() {
        #[derive(Deserialize)]
        struct File {
            geo: GeoConfig,
        }
        let text = r#"
            [geo]
            site_country = "IN"
            geoip_database = "GeoLite2-Country.mmdb"
            gateway_attestation = "enforce"

            [[geo.site]]
            name = "pune-branch"
            cidrs = ["10.20.0.0/16"]
            country = "IN"
        "#;
        let cfg = toml::from_str::<File>(text).unwrap().geo;
        assert_eq!(cfg.site_country.as_deref(), Some("IN"));
        assert_eq!(cfg.gateway_attestation, AttestationMode::Enforce);
        assert_eq!(
            cfg.sites,
            vec![site("pune-branch", &["10.20.0.0/16"], "IN")]
        );
        cfg.validate().unwrap();

        let empty = toml::from_str::<File>("[geo]\n").unwrap().geo;
        assert_eq!(empty, GeoConfig::default());
        assert_eq!(empty.gateway_attestation, AttestationMode::Off);

        let typo = toml::from_str::<File>("[geo]\nsite_contry = \"IN\"\n");
        assert!(typo.err().unwrap().to_string().contains("site_contry"));
        let bad_mode = toml::from_str::<File>("[geo]\ngateway_attestation = \"strict\"\n");
        assert!(bad_mode.is_err());
        let site_typo = "[[geo.site]]\nname = \"a\"\ncidr = [\"10.0.0.0/8\"]\ncountry = \"IN\"\n";
        assert!(toml::from_str::<File>(site_typo).is_err());
    }

    #[test]
    fn config_errors_name_the_field() {
        let with_sites = |sites: Vec<SiteEntry>| GeoConfig {
            sites,
            ..GeoConfig::default()
        };
        let ok = site("pune", &["10.20.0.0/16"], "IN");
        let cases = [
            (
                with_sites(vec![ok.clone(), site("lab", &["10.300.0.0/16"], "IN")]),
                "geo.site[1].cidrs[0]",
            ),
            (
                with_sites(vec![
                    ok.clone(),
                    site("lab", &["10.21.0.0/16", "10.21.1.1/16"], "IN"),
                ]),
                "geo.site[1].cidrs[1]",
            ),
            (
                with_sites(vec![site("lab", &["10.21.0.0/16"], "in")]),
                "geo.site[0].country",
            ),
            (
                with_sites(vec![site("lab", &["10.21.0.0/16"], "IND")]),
                "geo.site[0].country",
            ),
            (
                with_sites(vec![ok.clone(), site("lab", &[], "IN")]),
                "geo.site[1].cidrs",
            ),
            (
                with_sites(vec![site("", &["10.21.0.0/16"], "IN")]),
                "geo.site[0].name",
            ),
            (
                with_sites(vec![site("a b", &["10.21.0.0/16"], "IN")]),
                "geo.site[0].name",
            ),
            (with_sites(vec![ok.clone(), ok.clone()]), "geo.site[1].name"),
            (
                with_sites(vec![ok.clone(), site("lab", &["10.20.0.0/16"], "US")]),
                "geo.site[1].cidrs[0]",
            ),
            (
                GeoConfig {
                    site_country: Some("India".to_owned()),
                    ..GeoConfig::default()
                },
                "geo.site_country",
            ),
            (
                GeoConfig {
                    geoip_database: Some(PathBuf::new()),
                    ..GeoConfig::default()
                },
                "geo.geoip_database",
            ),
        ];
        for (cfg, field) in cases {
            assert_eq!(field_of(cfg.validate().unwrap_err()), field);
            let err = Geo::load(&cfg).unwrap_err();
            assert!(err.to_string().starts_with(field), "{err}");
        }
        let msg = with_sites(vec![site("lab", &["10.300.0.0/16"], "IN")])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(msg.contains("\"10.300.0.0/16\" is not a CIDR"), "{msg}");
    }

    #[test]
    fn missing_or_corrupt_database_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("GeoLite2-Country.mmdb");
        let cfg = GeoConfig {
            geoip_database: Some(missing.clone()),
            ..GeoConfig::default()
        };
        cfg.validate().unwrap();
        let err = Geo::load(&cfg).unwrap_err();
        assert!(matches!(err, GeoError::DatabaseRead { ref path, .. } if *path == missing));
        let msg = err.to_string();
        assert!(msg.starts_with("geo.geoip_database: cannot read"), "{msg}");
        assert!(msg.contains("GeoLite2-Country.mmdb"), "{msg}");

        let corrupt = dir.path().join("corrupt.mmdb");
        std::fs::write(&corrupt, b"not a maxmind database at all").unwrap();
        let err = Geo::load(&GeoConfig {
            geoip_database: Some(corrupt.clone()),
            ..GeoConfig::default()
        })
        .unwrap_err();
        assert!(matches!(err, GeoError::DatabaseInvalid { ref path, .. } if *path == corrupt));
        assert!(err.to_string().contains("corrupt.mmdb"), "{err}");
    }

    #[test]
    fn relative_database_path_is_resolved_against_the_config_directory() {
        let mut cfg = GeoConfig {
            geoip_database: Some(PathBuf::from("geo/Country.mmdb")),
            ..GeoConfig::default()
        };
        cfg.resolve_paths(Path::new("/etc/residency"));
        assert_eq!(
            cfg.geoip_database,
            Some(PathBuf::from("/etc/residency/geo/Country.mmdb"))
        );
        cfg.resolve_paths(Path::new("/elsewhere"));
        assert_eq!(
            cfg.geoip_database,
            Some(PathBuf::from("/etc/residency/geo/Country.mmdb"))
        );
        let mut none = GeoConfig::default();
        none.resolve_paths(Path::new("/etc/residency"));
        assert_eq!(none.geoip_database, None);
    }

    #[test]
    fn attestation_mode_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(branch(&dir, None).attestation(), AttestationMode::Enforce);
        let warn = Geo::load(&GeoConfig {
            gateway_attestation: AttestationMode::Warn,
            ..GeoConfig::default()
        })
        .unwrap();
        assert_eq!(warn.attestation(), AttestationMode::Warn);
    }

    #[test]
    fn geo_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Geo>();
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let geo = Geo::load(&GeoConfig {
            trusted_proxies: vec!["10.0.0.5/32".into(), "10.0.1.0/24".into()],
            ..GeoConfig::default()
        })
        .unwrap();
        let at = |peer: &str, xff: &[&str]| {
            geo.client_addr(peer.parse().unwrap(), xff.iter().copied())
                .to_string()
        };
        // Not a proxy: the header is whatever the client wrote.
        assert_eq!(at("10.0.0.9", &["8.8.8.8"]), "10.0.0.9");
        // The proxy's word, right-most first, skipping trusted hops.
        assert_eq!(at("10.0.0.5", &["8.8.8.8"]), "8.8.8.8");
        assert_eq!(at("10.0.0.5", &["49.36.1.1, 8.8.8.8"]), "8.8.8.8");
        assert_eq!(at("10.0.0.5", &["8.8.8.8, 10.0.1.7"]), "8.8.8.8");
        assert_eq!(at("10.0.0.5", &["49.36.1.1", "8.8.8.8"]), "8.8.8.8");
        assert_eq!(at("::ffff:10.0.0.5", &["2401:4900::1"]), "2401:4900::1");
        // No header, or one that does not parse: the proxy itself.
        assert_eq!(at("10.0.0.5", &[]), "10.0.0.5");
        assert_eq!(at("10.0.0.5", &["8.8.8.8, unknown"]), "10.0.0.5");
        let e = Geo::load(&GeoConfig {
            trusted_proxies: vec!["proxy".into()],
            ..GeoConfig::default()
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("geo.trusted_proxies[0]"), "{e}");
    }
}
