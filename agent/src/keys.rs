//! Development certificates: a fleet CA, a certificate per gateway region, one
//! for the agent and one for an operator (`keys gen`).
//!
//! Identities live in URI subject alternative names (see
//! [`crate::transport::tls::Identity`]); DNS and IP names are there so the usual
//! hostname check works too.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use residency_proto::RegionId;

use crate::transport::tls::Identity;

/// What `keys gen` should produce.
#[derive(Debug, Clone)]
pub struct KeysSpec {
    /// Gateway regions to issue certificates for.
    pub regions: Vec<RegionId>,
    /// Name of the agent certificate's identity (`urn:residency:agent:NAME`).
    pub agent_name: String,
    /// Extra DNS names or IP addresses put on every gateway certificate.
    pub extra_names: Vec<String>,
    /// How long the fleet CA is valid, in days.
    pub ca_days: u32,
    /// How long the gateway, agent and admin certificates are valid, in days.
    pub leaf_days: u32,
}

/// Default validity of the fleet CA: ten years.
pub const CA_DAYS: u32 = 3650;
/// Default validity of a gateway, agent or admin certificate: one year.
pub const LEAF_DAYS: u32 = 365;

/// Paths of the files written by [`generate`].
#[derive(Debug, Clone)]
pub struct GeneratedKeys {
    /// The directory everything was written to.
    pub dir: PathBuf,
    /// Fleet CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// Per region: (region, certificate, key).
    pub gateways: Vec<(RegionId, PathBuf, PathBuf)>,
    /// Agent certificate and key.
    pub agent: (PathBuf, PathBuf),
    /// Operator (admin) certificate and key.
    pub admin: (PathBuf, PathBuf),
}

/// Why certificates could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// Key or certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The CA key exists but the CA certificate does not, or the other way round.
    #[error("{0}")]
    Inconsistent(String),
}

impl Default for KeysSpec {
    fn default() -> Self {
        KeysSpec {
            regions: ["aws:ap-south-1", "aws:ap-south-2", "aws:us-east-1"]
                .iter()
                .filter_map(|r| RegionId::new(r).ok())
                .collect(),
            agent_name: "branch-agent".into(),
            extra_names: Vec::new(),
            ca_days: CA_DAYS,
            leaf_days: LEAF_DAYS,
        }
    }
}

/// The file name stem used for a region's gateway certificate, e.g.
/// `gateway-aws-ap-south-1`.
pub fn gateway_stem(region: &RegionId) -> String {
    format!("gateway-{}", region.as_str().replace(':', "-"))
}

/// Generates a fresh fleet CA and leaf certificates into `dir`.
///
/// Private keys are written with mode 0600. Existing files are overwritten.
pub fn generate(dir: &Path, spec: &KeysSpec) -> Result<GeneratedKeys, KeysError> {
    fs::create_dir_all(dir).map_err(|source| KeysError::Write {
        path: dir.to_owned(),
        source,
    })?;
    if spec.ca_days == 0 || spec.leaf_days == 0 {
        return Err(KeysError::Inconsistent(
            "a certificate must be valid for at least one day".into(),
        ));
    }
    if spec.leaf_days > spec.ca_days {
        return Err(KeysError::Inconsistent(format!(
            "certificates valid for {} days would outlive the CA ({} days)",
            spec.leaf_days, spec.ca_days
        )));
    }
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    validity(&mut ca_params, spec.ca_days);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.distinguished_name = name("Residency fleet CA (development)");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;
    let ca_cert = dir.join("ca.pem");
    write(&ca_cert, ca.pem().as_bytes(), false)?;
    write(
        &dir.join("ca.key"),
        ca.key().serialize_pem().as_bytes(),
        true,
    )?;

    let mut gateways = Vec::new();
    for region in &spec.regions {
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
        names.extend(spec.extra_names.iter().cloned());
        let stem = gateway_stem(region);
        let (cert, key) = leaf(
            &ca,
            &format!("residency gateway {region}"),
            &Identity::Gateway(region.clone()),
            &names,
            dir,
            &stem,
            spec.leaf_days,
        )?;
        gateways.push((region.clone(), cert, key));
    }
    let agent = leaf(
        &ca,
        &format!("residency agent {}", spec.agent_name),
        &Identity::Agent(spec.agent_name.clone()),
        &[],
        dir,
        "agent",
        spec.leaf_days,
    )?;
    let admin = leaf(
        &ca,
        "residency operator",
        &Identity::Admin("operator".into()),
        &[],
        dir,
        "admin",
        spec.leaf_days,
    )?;
    Ok(GeneratedKeys {
        dir: dir.to_owned(),
        ca_cert,
        gateways,
        agent,
        admin,
    })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Residency Agent fleet");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn leaf(
    ca: &CertifiedIssuer<'_, KeyPair>,
    common_name: &str,
    identity: &Identity,
    names: &[String],
    dir: &Path,
    stem: &str,
    days: u32,
) -> Result<(PathBuf, PathBuf), KeysError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    validity(&mut params, days);
    params.distinguished_name = name(common_name);
    params
        .subject_alt_names
        .push(SanType::URI(identity.to_uri().try_into()?));
    for n in names {
        match n.parse::<IpAddr>() {
            Ok(ip) => params.subject_alt_names.push(SanType::IpAddress(ip)),
            Err(_) => params
                .subject_alt_names
                .push(SanType::DnsName(n.as_str().try_into()?)),
        }
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&key, ca)?;
    let cert_path = dir.join(format!("{stem}.pem"));
    let key_path = dir.join(format!("{stem}.key"));
    write(&cert_path, cert.pem().as_bytes(), false)?;
    write(&key_path, key.serialize_pem().as_bytes(), true)?;
    Ok((cert_path, key_path))
}

/// Valid from an hour ago (clocks differ a little) for `days` days.
fn validity(params: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(days));
}

fn write(path: &Path, bytes: &[u8], private: bool) -> Result<(), KeysError> {
    let err = |source| KeysError::Write {
        path: path.to_owned(),
        source,
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)
}
