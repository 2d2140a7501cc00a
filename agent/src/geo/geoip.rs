//! The GeoIP database: a MaxMind DB (GeoLite2 / GeoIP2 / DB-IP Country or
//! City) read into memory and checked once at load, then looked up without
//! allocating.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{PathElement, Reader};
use residency_proto::region::Jurisdiction;

use super::GeoError;

/// Where a country code sits in a record, in order of preference: the
/// country where the address is used, then the one where it is registered.
const COUNTRY_PATHS: [[PathElement<'static>; 2]; 2] = [
    [PathElement::Key("country"), PathElement::Key("iso_code")],
    [
        PathElement::Key("registered_country"),
        PathElement::Key("iso_code"),
    ],
];

/// A loaded and verified GeoIP database.
pub(crate) struct GeoIpDb {
    reader: Reader<Vec<u8>>,
    path: PathBuf,
}

impl GeoIpDb {
    /// Reads `path` into memory and verifies the whole database, so a corrupt
    /// file fails here and not on some later request.
    pub(crate) fn open(path: &Path) -> Result<GeoIpDb, GeoError> {
        let bytes = std::fs::read(path).map_err(|source| GeoError::DatabaseRead {
            path: path.to_owned(),
            source,
        })?;
        GeoIpDb::from_bytes(bytes, path)
    }

    /// Parses and verifies a database already in memory; `path` is for errors.
    pub(crate) fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<GeoIpDb, GeoError> {
        let invalid = |source| GeoError::DatabaseInvalid {
            path: path.to_owned(),
            source,
        };
        let reader = Reader::from_source(bytes).map_err(invalid)?;
        reader.verify().map_err(invalid)?;
        Ok(GeoIpDb {
            reader,
            path: path.to_owned(),
        })
    }

    /// The country code recorded for `ip`, if any. Any lookup or decoding
    /// error counts as "unknown": the caller falls back to the next source.
    pub(crate) fn country_of(&self, ip: IpAddr) -> Option<Jurisdiction> {
        let result = self.reader.lookup(ip).ok()?;
        if !result.has_data() {
            return None;
        }
        COUNTRY_PATHS.iter().find_map(|path| {
            // Borrowed from the database bytes: no allocation per lookup.
            let code: &str = result.decode_path(path).ok()??;
            Jurisdiction::new(code)
        })
    }

    /// The file the database was read from.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The database's own name for its type, e.g. `GeoLite2-Country`.
    pub(crate) fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }
}

impl std::fmt::Debug for GeoIpDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIpDb")
            .field("path", &self.path)
            .field("database_type", &self.database_type())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_db;
    use super::*;

    fn db() -> GeoIpDb {
        GeoIpDb::from_bytes(test_db::bytes(), Path::new("test.mmdb")).unwrap()
    }

    fn country(db: &GeoIpDb, ip: &str) -> Option<String> {
        db.country_of(ip.parse().unwrap()).map(|j| j.to_string())
    }

    #[test]
    fn reads_country_iso_code() {
        let db = db();
        assert_eq!(country(&db, "49.36.1.2").as_deref(), Some("IN"));
        assert_eq!(country(&db, "49.39.255.255").as_deref(), Some("IN"));
        assert_eq!(country(&db, "49.40.0.0"), None);
        assert_eq!(country(&db, "8.8.8.8").as_deref(), Some("US"));
        assert_eq!(country(&db, "2401:4900::1").as_deref(), Some("IN"));
        assert_eq!(country(&db, "2401:4901::1"), None);
        assert_eq!(country(&db, "9.9.9.9"), None);
    }

    #[test]
    fn city_records_and_registered_country_fallback() {
        let db = db();
        // A City-shaped record: the code sits among other keys.
        assert_eq!(country(&db, "103.21.1.1").as_deref(), Some("IN"));
        // No `country`, only `registered_country`.
        assert_eq!(country(&db, "81.2.69.1").as_deref(), Some("GB"));
        // `country` malformed: fall back to `registered_country`.
        assert_eq!(country(&db, "5.5.5.5").as_deref(), Some("FR"));
        // Malformed and nothing to fall back to.
        assert_eq!(country(&db, "1.1.1.1"), None);
        // `country` holds a number, not a string.
        assert_eq!(country(&db, "2.2.2.2"), None);
    }

    #[test]
    fn reports_its_type() {
        assert_eq!(db().database_type(), test_db::DATABASE_TYPE);
        assert!(format!("{:?}", db()).contains(test_db::DATABASE_TYPE));
    }

    #[test]
    fn ipv6_lookup_in_an_ipv4_database_is_unknown() {
        let db = GeoIpDb::from_bytes(test_db::ipv4_only_bytes(), Path::new("v4.mmdb")).unwrap();
        assert_eq!(country(&db, "8.8.8.8").as_deref(), Some("US"));
        assert_eq!(country(&db, "2401:4900::1"), None);
    }

    #[test]
    fn damaged_databases_fail_at_load_and_never_panic() {
        let good = test_db::bytes();
        let probes: Vec<IpAddr> = ["49.36.1.2", "8.8.8.8", "2401:4900::1", "1.1.1.1", "::"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut refused = 0;
        for len in 0..good.len() {
            match GeoIpDb::from_bytes(good[..len].to_vec(), Path::new("cut.mmdb")) {
                Err(e) => {
                    assert!(e.to_string().contains("cut.mmdb"), "{e}");
                    refused += 1;
                }
                Ok(db) => {
                    for ip in &probes {
                        let _ = db.country_of(*ip);
                    }
                }
            }
        }
        // A database cut anywhere loses its metadata marker or its tree.
        assert_eq!(refused, good.len());
        // Flipping bytes in the tree and data section: load may refuse, lookups
        // must not panic. Some damage only the full verification at load sees.
        let mut caught_by_verify = 0;
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xa5;
            let parses = Reader::from_source(bad.clone()).is_ok();
            match GeoIpDb::from_bytes(bad, Path::new("flip.mmdb")) {
                Ok(db) => {
                    for ip in &probes {
                        let _ = db.country_of(*ip);
                    }
                }
                Err(_) if parses => caught_by_verify += 1,
                Err(_) => {}
            }
        }
        assert!(caught_by_verify > 0);
    }
}
