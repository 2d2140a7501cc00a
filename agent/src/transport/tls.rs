//! TLS for agent-gateway QUIC: loading PEM files, mutual TLS against the fleet
//! CA (TLS 1.3 only, ALPN `residency/1`, no 0-RTT), and the identities carried
//! in certificates.
//!
//! A fleet certificate names who holds it in a URI subject alternative name:
//! `urn:residency:gateway:<region id>`, `urn:residency:agent:<name>` or
//! `urn:residency:admin:<name>`. An agent accepts a gateway only if its
//! certificate chains to the fleet CA *and* names the region the agent's config
//! expects there.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use residency_proto::RegionId;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Who a fleet certificate says its holder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// An in-region gateway serving this region.
    Gateway(RegionId),
    /// A branch agent.
    Agent(String),
    /// An operator's tool.
    Admin(String),
}

/// The PEM files that make up one side's TLS identity.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The fleet CA certificate(s) that peers must chain to.
    pub ca: PathBuf,
    /// This side's certificate chain.
    pub cert: PathBuf,
    /// This side's private key.
    pub key: PathBuf,
}

/// Loaded TLS material.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

/// Why TLS material could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file holds no usable PEM item of the expected kind.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// rustls refused the material.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// Building the client-certificate verifier failed.
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The QUIC layer refused the TLS configuration.
    #[error("QUIC TLS configuration: {0}")]
    Quic(String),
}

impl Identity {
    /// The URI written into a certificate.
    pub fn to_uri(&self) -> String {
        match self {
            Identity::Gateway(r) => format!("urn:residency:gateway:{r}"),
            Identity::Agent(n) => format!("urn:residency:agent:{n}"),
            Identity::Admin(n) => format!("urn:residency:admin:{n}"),
        }
    }

    /// Parses a URI written by [`Identity::to_uri`].
    pub fn from_uri(uri: &str) -> Option<Identity> {
        let rest = uri.strip_prefix("urn:residency:")?;
        let (kind, value) = rest.split_once(':')?;
        match kind {
            "gateway" => RegionId::new(value).ok().map(Identity::Gateway),
            "agent" if !value.is_empty() => Some(Identity::Agent(value.to_owned())),
            "admin" if !value.is_empty() => Some(Identity::Admin(value.to_owned())),
            _ => None,
        }
    }

    /// The identities named in a DER certificate (empty if none or unparsable).
    pub fn of_certificate(cert: &CertificateDer<'_>) -> Vec<Identity> {
        use x509_parser::extensions::GeneralName;
        let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
            return Vec::new();
        };
        let Ok(Some(san)) = parsed.subject_alternative_name() else {
            return Vec::new();
        };
        san.value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::URI(uri) => Identity::from_uri(uri),
                _ => None,
            })
            .collect()
    }

    /// The identities the peer of a QUIC connection presented.
    pub fn of_peer(conn: &quinn::Connection) -> Vec<Identity> {
        conn.peer_identity()
            .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
            .map(|chain| Identity::of_chain(&chain))
            .unwrap_or_default()
    }

    /// The identities a peer's certificate chain (leaf first) presents.
    pub fn of_chain(chain: &[CertificateDer<'_>]) -> Vec<Identity> {
        chain
            .first()
            .map(Identity::of_certificate)
            .unwrap_or_default()
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Gateway(r) => write!(f, "gateway {r}"),
            Identity::Agent(n) => write!(f, "agent {n}"),
            Identity::Admin(n) => write!(f, "admin {n}"),
        }
    }
}

/// How long before its own certificate expires a process starts warning.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);

/// How often a running process looks at its own certificate's expiry.
const EXPIRY_CHECK_EVERY: Duration = Duration::from_secs(6 * 3600);

/// How a certificate's expiry stands at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// More than [`EXPIRY_WARNING`] left.
    Fine,
    /// Expires within [`EXPIRY_WARNING`]: this many whole days left.
    Soon(i64),
    /// Already expired.
    Expired,
}

impl Expiry {
    /// The state of a certificate valid until `not_after` at `now` (both in
    /// seconds since the Unix epoch).
    pub fn at(not_after: i64, now: i64) -> Expiry {
        let left = not_after - now;
        if left <= 0 {
            Expiry::Expired
        } else if left < EXPIRY_WARNING.as_secs() as i64 {
            Expiry::Soon(left / 86_400)
        } else {
            Expiry::Fine
        }
    }
}

/// Logs a warning (`who` names the certificate, e.g. `tls.cert`) while the
/// certificate whose expiry `not_after` holds (Unix seconds, 0 = unknown)
/// is within [`EXPIRY_WARNING`] of expiring or expired: at once, then every
/// few hours until `shutdown`. `not_after` may be changed by a reload.
pub async fn watch_expiry(
    who: &'static str,
    not_after: prometheus_client::metrics::gauge::Gauge,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let until = not_after.get();
        if until > 0 {
            match Expiry::at(until, now) {
                Expiry::Fine => {}
                Expiry::Soon(days) => tracing::warn!(
                    certificate = who,
                    days_left = days,
                    "own certificate expires soon: issue a new one and reload"
                ),
                Expiry::Expired => tracing::error!(
                    certificate = who,
                    "own certificate has expired: peers will refuse it"
                ),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(EXPIRY_CHECK_EVERY) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// The one crypto provider in the tree: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsMaterial {
    /// Reads the CA, certificate chain and key named in `files`.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let ca = read_certs(&files.ca)?;
        let mut roots = RootCertStore::empty();
        for c in ca {
            roots.add(c).map_err(|e| TlsError::Pem {
                path: files.ca.clone(),
                what: format!("not a usable CA certificate: {e}"),
            })?;
        }
        let chain = read_certs(&files.cert)?;
        let key = read_key(&files.key)?;
        Ok(TlsMaterial {
            roots: Arc::new(roots),
            chain,
            key: Arc::new(key),
        })
    }

    /// When this side's own certificate stops being valid, in seconds since
    /// the Unix epoch (`None` if it cannot be parsed).
    pub fn not_after(&self) -> Option<i64> {
        let cert = self.chain.first()?;
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
        Some(parsed.validity().not_after.timestamp())
    }

    /// The identities named in this side's own certificate.
    pub fn identities(&self) -> Vec<Identity> {
        self.chain
            .first()
            .map(Identity::of_certificate)
            .unwrap_or_default()
    }

    /// rustls server config: TLS 1.3, client certificates required and chained
    /// to the fleet CA, no early data.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let provider = provider();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider.clone())
                .build()?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.alpn_protocols = vec![residency_proto::ALPN.to_vec()];
        cfg.max_early_data_size = 0;
        Ok(cfg)
    }

    /// [`TlsMaterial::server_config`] for the HTTP/2 listener on TCP: the same
    /// identity rules, ALPN `h2`.
    pub fn tcp_server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let mut cfg = self.server_config()?;
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        Ok(cfg)
    }

    /// rustls client config that accepts only a gateway chaining to the fleet
    /// CA whose certificate names `expected` region. Early data stays off.
    pub fn client_config(&self, expected: &RegionId) -> Result<rustls::ClientConfig, TlsError> {
        let provider = provider();
        let inner =
            WebPkiServerVerifier::builder_with_provider(self.roots.clone(), provider.clone())
                .build()
                .map_err(|e| TlsError::Quic(e.to_string()))?;
        let verifier = Arc::new(RegionVerifier {
            inner,
            expected: expected.clone(),
        });
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.alpn_protocols = vec![residency_proto::ALPN.to_vec()];
        cfg.enable_early_data = false;
        Ok(cfg)
    }

    /// rustls client config for a process probing its own listener: the
    /// server must present exactly this side's own certificate, and this side
    /// authenticates with it too.
    pub fn self_probe_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = provider();
        let own = self
            .chain
            .first()
            .cloned()
            .ok_or_else(|| TlsError::Quic("no certificate loaded".into()))?;
        let verifier = Arc::new(OwnCertVerifier {
            own,
            algorithms: provider.signature_verification_algorithms,
        });
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.alpn_protocols = vec![residency_proto::ALPN.to_vec()];
        cfg.enable_early_data = false;
        Ok(cfg)
    }

    /// rustls client config for an operator's tool: any gateway chaining to the
    /// fleet CA.
    pub fn admin_client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.alpn_protocols = vec![residency_proto::ALPN.to_vec()];
        Ok(cfg)
    }
}

/// Standard WebPKI verification against the fleet CA, then a check that the
/// certificate names the region this endpoint is configured for.
#[derive(Debug)]
struct RegionVerifier {
    inner: Arc<WebPkiServerVerifier>,
    expected: RegionId,
}

impl ServerCertVerifier for RegionVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let ids = Identity::of_certificate(end_entity);
        if ids.contains(&Identity::Gateway(self.expected.clone())) {
            return Ok(ServerCertVerified::assertion());
        }
        let named: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        Err(rustls::Error::General(format!(
            "gateway certificate does not name region {} (it names: {})",
            self.expected,
            if named.is_empty() {
                "nothing".to_owned()
            } else {
                named.join(", ")
            }
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts only one certificate, byte for byte: a process talking to itself.
#[derive(Debug)]
struct OwnCertVerifier {
    own: CertificateDer<'static>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for OwnCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.own.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the listener presented a certificate other than this process's own".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads every certificate in a PEM file; an empty file is an error.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            what: format!("bad PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            what: "no CERTIFICATE found".into(),
        });
    }
    Ok(certs)
}

/// Reads the first private key in a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    rustls_pemfile::private_key(&mut bytes.as_slice())
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            what: format!("bad PEM: {e}"),
        })?
        .ok_or_else(|| TlsError::Pem {
            path: path.to_owned(),
            what: "no PRIVATE KEY found".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_uris_round_trip() {
        for id in [
            Identity::Gateway(RegionId::new("aws:ap-south-1").unwrap()),
            Identity::Agent("branch-7".into()),
            Identity::Admin("ops".into()),
        ] {
            assert_eq!(Identity::from_uri(&id.to_uri()), Some(id));
        }
        assert_eq!(Identity::from_uri("urn:residency:gateway:nope"), None);
        assert_eq!(Identity::from_uri("https://example.com"), None);
    }

    #[test]
    fn generated_certificates_carry_their_identity() {
        let dir = tempfile::tempdir().unwrap();
        let keys = crate::keys::generate(dir.path(), &crate::keys::KeysSpec::default()).unwrap();
        let (region, cert, key) = keys.gateways[0].clone();
        let m = TlsMaterial::load(&TlsFiles {
            ca: keys.ca_cert.clone(),
            cert,
            key,
        })
        .unwrap();
        assert_eq!(m.identities(), vec![Identity::Gateway(region)]);
        m.server_config().unwrap();
    }

    #[test]
    fn generated_certificates_expire_as_asked() {
        let dir = tempfile::tempdir().unwrap();
        let spec = crate::keys::KeysSpec {
            leaf_days: 20,
            ..crate::keys::KeysSpec::default()
        };
        let keys = crate::keys::generate(dir.path(), &spec).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let load = |cert: &PathBuf, key: &PathBuf| {
            TlsMaterial::load(&TlsFiles {
                ca: keys.ca_cert.clone(),
                cert: cert.clone(),
                key: key.clone(),
            })
            .unwrap()
        };
        let agent = load(&keys.agent.0, &keys.agent.1).not_after().unwrap();
        assert!((agent - now - 20 * 86_400).abs() < 120, "{agent} vs {now}");
        assert!(matches!(Expiry::at(agent, now), Expiry::Soon(19 | 20)));
        let ca = load(&keys.ca_cert, &keys.agent.1).not_after().unwrap();
        assert!((ca - now - 3650 * 86_400).abs() < 120, "{ca} vs {now}");
        assert_eq!(Expiry::at(ca, now), Expiry::Fine);
        assert_eq!(Expiry::at(now - 1, now), Expiry::Expired);
        let err = crate::keys::generate(
            &dir.path().join("b"),
            &crate::keys::KeysSpec {
                leaf_days: 4000,
                ..crate::keys::KeysSpec::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("outlive the CA"), "{err}");
    }

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = read_certs(&empty).unwrap_err().to_string();
        assert!(
            err.contains("empty.pem") && err.contains("no CERTIFICATE"),
            "{err}"
        );
        let err = read_key(&dir.path().join("nope.key"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.key"), "{err}");
    }
}
