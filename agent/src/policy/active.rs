//! The policy in force on this box: verified bundles are stored (sled history
//! plus the crash-safe file) and activated atomically with arc-swap, so a
//! request finishes under the policy it started with. A bundle with a bad
//! signature, an unknown key or a version not newer than the active one is
//! refused with a log line and a counter, and the active policy stays.
//!
//! At start only what is activated is verified in full (signature and
//! policy): the newest stored bundle that holds. History entries are checked
//! when they are used: verified in full if one has to be activated, their
//! signature checked when the history is listed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use tokio::sync::watch;
use tracing::{info, warn};

use super::sign::{check_signature, verify, TrustedKey, VerifyError};
use super::Policy;
use crate::store::{PolicyStore, Source, StoreError};

/// Largest bundle accepted, in bytes: it must fit in one frame.
pub const MAX_BUNDLE_BYTES: usize = residency_proto::DEFAULT_MAX_BUNDLE_LEN;

/// The `[policy]` section of agent.toml and gateway.toml.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Public keys (`policy keys gen` writes `policy-signing.pub`) whose
    /// signatures are accepted.
    #[serde(default)]
    pub trusted_keys: Vec<PathBuf>,
    /// Use the built-in India baseline while no signed policy is stored.
    #[serde(default)]
    pub builtin_baseline: bool,
    /// How many bundles to keep in the history.
    #[serde(default = "default_history")]
    pub history: usize,
}

fn default_history() -> usize {
    10
}

/// A policy ready for use.
#[derive(Debug)]
pub struct ActivePolicy {
    /// Signed version; `None` for the built-in baseline.
    pub version: Option<u64>,
    /// Key id that signed it.
    pub key_id: Option<String>,
    /// The encoded bundle (empty for the built-in baseline).
    pub bundle: Vec<u8>,
    /// The validated policy.
    pub policy: Policy,
}

/// Why a bundle was not installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Verification failed: bad signature, unknown key, rollback, bad policy.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The bundle could not be stored; the active policy is unchanged.
    #[error("cannot store the bundle: {0}")]
    Store(#[from] StoreError),
}

/// Why the policy state could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A trusted key file is missing or malformed.
    #[error("policy.trusted_keys: {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The policy state of an agent or a gateway.
#[derive(Debug)]
pub struct PolicyState {
    active: ArcSwapOption<ActivePolicy>,
    trusted: std::sync::RwLock<Vec<TrustedKey>>,
    store: PolicyStore,
    install_lock: Mutex<()>,
    announce: watch::Sender<Option<u64>>,
    refused: AtomicU64,
}

/// Reads the trusted public keys named in the config.
pub fn load_trusted_keys(paths: &[PathBuf]) -> Result<Vec<TrustedKey>, OpenError> {
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| OpenError::Key {
                path: p.clone(),
                reason: e.to_string(),
            })?;
            TrustedKey::from_pem(&text).map_err(|e| OpenError::Key {
                path: p.clone(),
                reason: e.to_string(),
            })
        })
        .collect()
}

impl PolicyState {
    /// Opens the store in `dir` and activates the newest valid bundle (or the
    /// built-in baseline if the config asks and nothing valid is stored).
    pub fn open(cfg: &PolicyConfig, dir: &Path) -> Result<PolicyState, OpenError> {
        let trusted = load_trusted_keys(&cfg.trusted_keys)?;
        let store = PolicyStore::open(dir, cfg.history)?;
        let mut chosen: Option<ActivePolicy> = None;
        // Newest claimed version first, the last-known-good file (whose
        // version is known only once verified) before all. Once one holds,
        // only an entry claiming a newer version could replace it; the older
        // ones are not verified now, but when they are used.
        for cand in store.candidates() {
            if chosen
                .as_ref()
                .and_then(|c| c.version)
                .is_some_and(|v| cand.version <= v)
            {
                break;
            }
            match verify(&cand.bytes, &trusted, None, MAX_BUNDLE_BYTES) {
                Ok(v) => {
                    if chosen.as_ref().and_then(|c| c.version) >= Some(v.version) {
                        continue;
                    }
                    if cand.source == Source::File && !store.has(v.version) {
                        warn!(
                            version = v.version,
                            "rebuilding the policy history from the last-known-good file"
                        );
                        store.record(v.version, &v.bundle_bytes)?;
                    }
                    chosen = Some(ActivePolicy {
                        version: Some(v.version),
                        key_id: Some(v.key_id),
                        bundle: v.bundle_bytes,
                        policy: v.policy,
                    });
                }
                Err(e) => {
                    warn!(source = ?cand.source, stored_version = cand.version, error = %e, "stored policy bundle ignored")
                }
            }
        }
        if chosen.is_none() && cfg.builtin_baseline {
            chosen = Some(ActivePolicy {
                version: None,
                key_id: None,
                bundle: Vec::new(),
                policy: Policy::builtin_baseline(),
            });
        }
        match &chosen {
            Some(p) => info!(version = ?p.version, key_id = ?p.key_id, "policy active"),
            None => warn!("no valid policy: restricted and confidential requests will be refused"),
        }
        let version = chosen.as_ref().and_then(|c| c.version);
        let (announce, _) = watch::channel(version);
        Ok(PolicyState {
            active: ArcSwapOption::new(chosen.map(Arc::new)),
            trusted: std::sync::RwLock::new(trusted),
            store,
            install_lock: Mutex::new(()),
            announce,
            refused: AtomicU64::new(0),
        })
    }

    /// The keys whose signatures are accepted now.
    pub fn trusted_keys(&self) -> Vec<TrustedKey> {
        self.trusted
            .read()
            .map(|k| k.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Replaces the trusted keys (on reload). The active policy stays: it
    /// was verified when it was installed.
    pub fn set_trusted_keys(&self, keys: Vec<TrustedKey>) {
        match self.trusted.write() {
            Ok(mut k) => *k = keys,
            Err(p) => *p.into_inner() = keys,
        }
    }

    /// The policy in force now; keep the `Arc` for the whole request.
    pub fn current(&self) -> Option<Arc<ActivePolicy>> {
        self.active.load_full()
    }

    /// The active signed version, if any.
    pub fn version(&self) -> Option<u64> {
        self.active.load().as_ref().and_then(|p| p.version)
    }

    /// Bundles refused so far (bad signature, unknown key, rollback, ...).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Changes of the active signed version.
    pub fn subscribe(&self) -> watch::Receiver<Option<u64>> {
        self.announce.subscribe()
    }

    /// Verifies, stores and activates a bundle; returns its version. On any
    /// error the active policy is unchanged.
    pub fn install(&self, bytes: &[u8]) -> Result<u64, InstallError> {
        // One install at a time, so the rollback check and the swap agree.
        let _guard = self
            .install_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let trusted = self.trusted_keys();
        let verified = match verify(bytes, &trusted, self.version(), MAX_BUNDLE_BYTES) {
            Ok(v) => v,
            Err(e) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                warn!(error = %e, active = ?self.version(), "policy bundle refused; active policy unchanged");
                return Err(e.into());
            }
        };
        if let Err(e) = self.store.save(verified.version, &verified.bundle_bytes) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            warn!(error = %e, "policy bundle could not be stored; active policy unchanged");
            return Err(e.into());
        }
        let version = verified.version;
        self.active.store(Some(Arc::new(ActivePolicy {
            version: Some(version),
            key_id: Some(verified.key_id.clone()),
            bundle: verified.bundle_bytes,
            policy: verified.policy,
        })));
        self.announce.send_replace(Some(version));
        info!(version, key_id = %verified.key_id, "policy activated");
        Ok(version)
    }

    /// Stored history, newest first: (version, key id, issued at) of every
    /// bundle still signed by a trusted key. Their policies were validated
    /// when they were installed and are covered by the signature, so they are
    /// not linted again; an entry whose bytes changed on disk is left out.
    pub fn history(&self) -> Vec<(u64, String, u64)> {
        let trusted = self.trusted_keys();
        self.store
            .history()
            .into_iter()
            .filter_map(
                |b| match check_signature(&b.bytes, &trusted, MAX_BUNDLE_BYTES) {
                    Ok(bundle) if bundle.version == b.version => {
                        Some((bundle.version, bundle.key_id, bundle.issued_at))
                    }
                    Ok(bundle) => {
                        warn!(
                            stored_version = b.version,
                            bundle_version = bundle.version,
                            "policy history entry stored under another version; left out"
                        );
                        None
                    }
                    Err(e) => {
                        warn!(stored_version = b.version, error = %e, "policy history entry refused; left out");
                        None
                    }
                },
            )
            .collect()
    }
}
