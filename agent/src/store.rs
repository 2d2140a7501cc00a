//! Durable state on the branch box: the policy bundle history in sled, and the
//! last-known-good bundle as a plain file.
//!
//! sled is kept behind this one module so it can be swapped. sled 0.34's
//! `flush()` does not fsync on Linux and it has corruption reports after hard
//! kills, so the bundle that matters most is also written as a file the
//! crash-safe way (temp file, fsync, rename, fsync the directory). At start
//! the caller verifies candidates newest first and keeps the first valid one;
//! a missing or damaged sled is moved aside and rebuilt from the file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use tracing::warn;

/// sled's page cache; its 1 GiB default is absurd for a branch box.
const CACHE_BYTES: u64 = 4 * 1024 * 1024;
/// File name of the last-known-good bundle.
const ACTIVE_FILE: &str = "active-policy.bundle";
/// sled tree of bundles by version.
const HISTORY_TREE: &[u8] = b"policy-history";

/// Where a stored bundle came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The crash-safe last-known-good file.
    File,
    /// The sled history.
    Sled,
}

/// A stored bundle, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBundle {
    /// The version it was stored under (verify before trusting it).
    pub version: u64,
    /// The encoded bundle.
    pub bytes: Vec<u8>,
    /// Where it came from.
    pub source: Source,
}

/// The agent's (or gateway's) durable policy state.
#[derive(Debug)]
pub struct PolicyStore {
    dir: PathBuf,
    db: sled::Db,
    history: sled::Tree,
    keep: usize,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// sled failed.
    #[error("policy store: {0}")]
    Sled(#[from] sled::Error),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

impl PolicyStore {
    /// Opens (creating if needed) the store in `dir`, keeping the newest
    /// `keep` bundles. A sled database that cannot be opened is moved aside
    /// and a fresh one created: the file copy is the source of truth.
    pub fn open(dir: &Path, keep: usize) -> Result<PolicyStore, StoreError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let sled_dir = dir.join("sled");
        let db = match open_sled(&sled_dir) {
            Ok(db) => db,
            Err(e) => {
                let aside = dir.join(format!(
                    "sled.damaged-{}",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs())
                ));
                warn!(error = %e, moved_to = %aside.display(), "policy database damaged; rebuilding from the last-known-good file");
                fs::rename(&sled_dir, &aside).map_err(io_err(&sled_dir))?;
                open_sled(&sled_dir)?
            }
        };
        let history = db.open_tree(HISTORY_TREE)?;
        Ok(PolicyStore {
            dir: dir.to_owned(),
            db,
            history,
            keep: keep.max(1),
        })
    }

    /// Stores a verified bundle: first the crash-safe file, then the history.
    pub fn save(&self, version: u64, bytes: &[u8]) -> Result<(), StoreError> {
        write_atomic(&self.dir.join(ACTIVE_FILE), bytes)?;
        self.record(version, bytes)
    }

    /// Adds a bundle to the sled history only (used to rebuild it).
    pub fn record(&self, version: u64, bytes: &[u8]) -> Result<(), StoreError> {
        self.history.insert(version.to_be_bytes(), bytes)?;
        while self.history.len() > self.keep {
            match self.history.pop_min()? {
                Some(_) => {}
                None => break,
            }
        }
        self.db.flush()?;
        Ok(())
    }

    /// Every stored bundle, newest claimed version first: the file copy and
    /// the sled history. Unreadable entries are skipped with a warning.
    pub fn candidates(&self) -> Vec<StoredBundle> {
        let mut out = self.history();
        let file = self.dir.join(ACTIVE_FILE);
        match fs::read(&file) {
            Ok(bytes) => out.push(StoredBundle {
                version: u64::MAX,
                bytes,
                source: Source::File,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                warn!(path = %file.display(), error = %e, "cannot read the last-known-good policy")
            }
        }
        // The file's version is unknown until verified: try it first.
        out.sort_by_key(|b| std::cmp::Reverse(b.version));
        out
    }

    /// The sled history, newest first.
    pub fn history(&self) -> Vec<StoredBundle> {
        let mut out = Vec::new();
        for item in self.history.iter().rev() {
            match item {
                Ok((k, v)) if k.len() == 8 => {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(&k);
                    out.push(StoredBundle {
                        version: u64::from_be_bytes(be),
                        bytes: v.to_vec(),
                        source: Source::Sled,
                    });
                }
                Ok(_) => warn!("skipping a malformed policy history key"),
                Err(e) => {
                    warn!(error = %e, "policy history unreadable past this point");
                    break;
                }
            }
        }
        out
    }

    /// Whether the sled history holds `version`.
    pub fn has(&self, version: u64) -> bool {
        self.history
            .contains_key(version.to_be_bytes())
            .unwrap_or(false)
    }
}

fn open_sled(path: &Path) -> Result<sled::Db, sled::Error> {
    sled::Config::new()
        .path(path)
        .cache_capacity(CACHE_BYTES)
        .flush_every_ms(Some(1000))
        .open()
}

/// Writes `bytes` to `path` so that after a crash the file holds either the
/// old or the new content, never a mix: temp file, fsync, rename, fsync dir.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    {
        let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_keeps_history_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = PolicyStore::open(dir.path(), 3).unwrap();
        for v in 1..=5u64 {
            store.save(v, format!("bundle {v}").as_bytes()).unwrap();
        }
        let hist: Vec<u64> = store.history().iter().map(|b| b.version).collect();
        assert_eq!(hist, vec![5, 4, 3]);
        let c = store.candidates();
        assert_eq!(c[0].source, Source::File);
        assert_eq!(c[0].bytes, b"bundle 5");
        drop(store);
        // Reopening finds the same state.
        let store = PolicyStore::open(dir.path(), 3).unwrap();
        assert!(store.has(5) && !store.has(2));
    }

    #[test]
    fn damaged_sled_is_moved_aside_and_the_file_survives() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = PolicyStore::open(dir.path(), 3).unwrap();
            store.save(7, b"bundle 7").unwrap();
        }
        // Wreck the database: replace its directory with garbage.
        let sled_dir = dir.path().join("sled");
        fs::remove_dir_all(&sled_dir).unwrap();
        fs::write(&sled_dir, b"not a database").unwrap();
        let store = PolicyStore::open(dir.path(), 3).unwrap();
        assert!(store.history().is_empty());
        let c = store.candidates();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].bytes, b"bundle 7");
        store.record(7, &c[0].bytes).unwrap();
        assert!(store.has(7));
    }

    #[test]
    fn atomic_write_replaces_whole_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"old content").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        let leftovers = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "temp file left behind");
    }
}
