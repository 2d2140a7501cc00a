//! The audit chain: one record per request, appended to a SHA-256 hash chain
//! in its own sled database, so a compliance officer can prove months later
//! where every request went and under which policy.
//!
//! Layout: one sled tree, `audit`. Records are stored in entries: an entry
//! holds consecutive records back to back (each in its postcard storage
//! encoding, which is self-delimiting) under the sequence number of its
//! first record as 8 big-endian bytes (seq starts at 1). The writer stores
//! each group it commits as entries of at most [`ENTRY_RECORDS`] records, so
//! sled does its per-key work once per entry, not per record; a log written
//! with one record per key is the same format. Two meta keys that begin
//! with `0xff` (so they sort after every record key) hold the head (last
//! seq and last hash) and the retention anchor (pruned up to seq, hash of
//! the last pruned record). Entries and the head are written in one atomic
//! sled batch, so the head never points past what was written.
//!
//! - [`record`]: the record type and its hash (nothing in it can hold a
//!   prompt, an answer or a detected value).
//! - [`writer`]: the group-commit writer the request path appends through.
//! - [`mod@verify`]: walks the chain and says where and how it is broken.
//! - [`mod@export`]: JSON lines for a SIEM.
//! - [`retention`]: pruning by age and count behind a hashed anchor.
//! - [`cli`]: the `audit verify|export|prune` subcommands, offline.
//!
//! Next to sled, a small `head` file (the witness) holds the last head made
//! durable, rewritten and fsynced after every batch. sled 0.34 recovers a
//! damaged log by cutting it at the first bad entry, which would silently
//! drop acknowledged records together with their head; the witness turns
//! that into an error the writer and `verify` report.
//!
//! What the chain proves: every record links to the one before it, back to
//! the anchor, and the head names the last one. Someone who can write the
//! database can still rewrite the whole tail and recompute every hash; the
//! defence against that is shipping the head hash off the box (the export
//! carries it) so a later rewrite no longer matches what the SIEM holds.

pub mod cli;
pub mod export;
pub mod record;
pub mod retention;
pub mod verify;
pub mod writer;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

pub use export::{export, export_log, ExportError, ExportReport};
pub use record::{Anchor, AuditRecord, NewRecord, GENESIS_HASH};
pub use retention::{prune, PruneError, PruneReport};
pub use verify::{verify, verify_log, ChainError, VerifyReport};
pub use writer::{AuditWriter, WriterConfig, WriterStats};

/// sled's page cache; its 1 GiB default is absurd for a branch box.
const CACHE_BYTES: u64 = 4 * 1024 * 1024;
/// Name of the sled tree holding records and meta keys.
const AUDIT_TREE: &[u8] = b"audit";
/// Sub-directory of the audit directory that sled owns.
const SLED_DIR: &str = "sled";
/// The file sled 0.34 keeps its log in (`Config::db_path`); fsynced after
/// every batch, see [`AuditLog::sync`].
const SLED_LOG_FILE: &str = "db";
/// Every meta key starts with this byte; record keys are 8 bytes and never
/// reach it (that would take 2^63 records).
const META_PREFIX: u8 = 0xff;
/// Most records the writer puts in one entry (a group of more is split).
/// sled 0.34 splits a leaf past 16 keys and evicts a cold leaf only when
/// its cache shard has seen enough accesses, so the memory it holds grows
/// with the bytes per leaf: 8 records (a few KiB) keep most of the saving
/// of fewer keys (auditbench: 0.6-0.7x writer CPU per record) with peak
/// memory near one record per key; 64 let it grow by tens of MiB a minute
/// under load.
pub(crate) const ENTRY_RECORDS: usize = 8;
/// Meta key of the [`Head`].
const HEAD_KEY: &[u8] = b"\xffhead";
/// Meta key of the retention [`Anchor`].
const ANCHOR_KEY: &[u8] = b"\xffanchor";
/// File (next to the sled directory) holding the head witness.
const WITNESS_FILE: &str = "head";
/// Domain tag of the witness checksum.
const WITNESS_DOMAIN: &[u8] = b"residency-agent/audit-head/v1\0";
/// Sub-directory of the agent's `state_dir` holding the audit chain.
pub const AUDIT_SUBDIR: &str = "audit";

/// The last record of the chain, stored next to the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Sequence number of the last record.
    pub seq: u64,
    /// Hash of the last record.
    pub hash: [u8; 32],
}

/// Why the audit log could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file or directory operation failed.
    #[error("audit log {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The database exists but holds no readable audit chain. It is not
    /// replaced by a new chain (sled 0.34 itself may already have rewritten
    /// an unreadable log while opening it: restore from a backup or export).
    #[error("audit database {path} is damaged; refusing to start a new audit chain over it (restore it from a backup, or move it aside to start a new chain): {reason}")]
    Damaged {
        /// The sled directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Another process (normally the running agent) holds the database lock.
    #[error("audit database {path} is locked by another process: the agent is probably running; stop it, or use the admin socket to verify or export while it runs")]
    Locked {
        /// The sled directory.
        path: PathBuf,
    },
    /// No audit database exists where one was expected.
    #[error("no audit database at {path}")]
    Missing {
        /// The sled directory.
        path: PathBuf,
    },
    /// A sled operation failed.
    #[error("audit database: {0}")]
    Sled(#[from] sled::Error),
    /// A record or meta value could not be encoded.
    #[error("cannot encode an audit value: {0}")]
    Encode(#[from] postcard::Error),
    /// A meta value (head or anchor) cannot be decoded.
    #[error("audit {what} is undecodable: {reason}")]
    BadMeta {
        /// `head` or `anchor`.
        what: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// The head does not match the records, so appending would fork the
    /// chain; run `audit verify` to see where.
    #[error("audit chain head does not match its records ({reason}); run `audit verify`")]
    HeadMismatch {
        /// What does not match.
        reason: String,
    },
    /// A batch could not be written or made durable; the writer stopped.
    #[error("audit batch not durable: {reason}")]
    BatchFailed {
        /// What failed.
        reason: String,
    },
    /// A writer was already started on this log (two would fork the chain).
    #[error("an audit writer is already running on this log")]
    WriterRunning,
    /// The writer task has stopped (shut down, or an earlier batch failed).
    #[error("the audit writer has stopped")]
    WriterClosed,
}

/// The audit chain on disk. Cheap to clone: clones share the database, so
/// the agent can hand one to the writer and keep one for the admin socket.
#[derive(Debug, Clone)]
pub struct AuditLog {
    sled_dir: PathBuf,
    db: sled::Db,
    tree: sled::Tree,
    /// sled's log file, opened again so it can be fsynced (see `sync`).
    log_file: Arc<fs::File>,
    /// The head witness file (locked: reads and writes seek).
    witness: Arc<Mutex<fs::File>>,
    /// Serialises verify and prune within this process, so a verify never
    /// sees a half-applied prune (the writer does not need it: its batches
    /// only touch the tail and the head, atomically).
    maintenance: Arc<Mutex<()>>,
    /// Held by the writer while it applies a batch, so a verify can wait
    /// out a batch it saw half of.
    apply: Arc<Mutex<()>>,
    /// Set once a writer has been spawned on this log.
    pub(crate) writer_started: Arc<AtomicBool>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Key of the entry whose first record has sequence number `seq`.
pub(crate) fn record_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The sequence number an entry key names, if it is an entry key.
pub(crate) fn key_seq(key: &[u8]) -> Option<u64> {
    let be: [u8; 8] = key.try_into().ok()?;
    Some(u64::from_be_bytes(be))
}

/// The records of one stored entry, in order, each with its byte range in
/// the value. Decoding stops at the first record that does not decode: what
/// decoded before it is returned with the error (an empty value is one).
pub(crate) fn decode_entry(
    value: &[u8],
) -> (
    Vec<(record::AuditRecord, std::ops::Range<usize>)>,
    Option<postcard::Error>,
) {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        match postcard::take_from_bytes::<record::AuditRecord>(&value[at..]) {
            Ok((rec, rest)) => {
                let end = value.len() - rest.len();
                out.push((rec, at..end));
                at = end;
                if at == value.len() {
                    return (out, None);
                }
            }
            Err(e) => return (out, Some(e)),
        }
    }
}

/// The audit directory inside an agent's `state_dir`.
pub fn audit_dir(state_dir: &Path) -> PathBuf {
    state_dir.join(AUDIT_SUBDIR)
}

impl AuditLog {
    /// Opens the audit chain in `dir`, creating an empty one if `dir` holds
    /// none. A database that exists but cannot be opened is an error
    /// ([`AuditError::Damaged`]), never silently replaced; one locked by
    /// another process is [`AuditError::Locked`].
    pub fn open(dir: &Path) -> Result<AuditLog, AuditError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        Self::open_sled(dir)
    }

    /// Opens an existing audit chain in `dir`; [`AuditError::Missing`] if
    /// there is none (the offline CLI must not create one by accident).
    pub fn open_existing(dir: &Path) -> Result<AuditLog, AuditError> {
        let sled_dir = dir.join(SLED_DIR);
        if !sled_dir.join(SLED_LOG_FILE).is_file() {
            return Err(AuditError::Missing { path: sled_dir });
        }
        Self::open_sled(dir)
    }

    fn open_sled(dir: &Path) -> Result<AuditLog, AuditError> {
        let sled_dir = dir.join(SLED_DIR);
        let existed = sled_dir.exists();
        let had_data = fs::metadata(sled_dir.join(SLED_LOG_FILE)).is_ok_and(|m| m.len() > 0);
        let db = sled::Config::new()
            .path(&sled_dir)
            .cache_capacity(CACHE_BYTES)
            .flush_every_ms(Some(1000))
            .open()
            .map_err(|e| classify_open_error(&sled_dir, e))?;
        // sled 0.34 opens a log it cannot read as an empty database; every
        // audit database this code wrote has the tree, so its absence means
        // the data is gone.
        // Unless no record was ever made durable (no witness yet): then a
        // hard kill before the first flush only lost an empty tree.
        let ever_written = fs::metadata(dir.join(WITNESS_FILE)).is_ok_and(|m| m.len() > 0);
        if had_data && ever_written && !db.tree_names().iter().any(|n| n.as_ref() == AUDIT_TREE) {
            return Err(AuditError::Damaged {
                path: sled_dir,
                reason: "sled recovered no audit tree from a non-empty log".into(),
            });
        }
        let tree = db.open_tree(AUDIT_TREE)?;
        let log_path = sled_dir.join(SLED_LOG_FILE);
        let log_file = fs::File::open(&log_path).map_err(io_err(&log_path))?;
        let witness_path = dir.join(WITNESS_FILE);
        let witness = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&witness_path)
            .map_err(io_err(&witness_path))?;
        if !existed {
            // Make the new directory entries themselves durable once.
            for d in [&sled_dir, dir] {
                fs::File::open(d)
                    .and_then(|f| f.sync_all())
                    .map_err(io_err(d))?;
            }
        }
        let log = AuditLog {
            sled_dir,
            db,
            tree,
            log_file: Arc::new(log_file),
            witness: Arc::new(Mutex::new(witness)),
            maintenance: Arc::new(Mutex::new(())),
            apply: Arc::new(Mutex::new(())),
            writer_started: Arc::new(AtomicBool::new(false)),
        };
        // Fail at open, not at the first request, if the meta is unreadable.
        log.head()?;
        log.anchor()?;
        log.witness()?;
        Ok(log)
    }

    /// The sled directory (for messages).
    pub fn path(&self) -> &Path {
        &self.sled_dir
    }

    /// The head (last seq and hash), or `None` for a chain never written.
    pub fn head(&self) -> Result<Option<Head>, AuditError> {
        self.meta(HEAD_KEY, "head")
    }

    /// The retention anchor, or `None` if nothing was ever pruned.
    pub fn anchor(&self) -> Result<Option<Anchor>, AuditError> {
        self.meta(ANCHOR_KEY, "anchor")
    }

    fn meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
        what: &'static str,
    ) -> Result<Option<T>, AuditError> {
        match self.tree.get(key)? {
            None => Ok(None),
            Some(v) => postcard::from_bytes(&v)
                .map(Some)
                .map_err(|e| AuditError::BadMeta {
                    what,
                    reason: e.to_string(),
                }),
        }
    }

    /// Number of records currently stored (after pruning); an entry that
    /// does not decode counts the records before the damage.
    pub fn len(&self) -> usize {
        self.tree
            .range(..[META_PREFIX].as_slice())
            .values()
            .filter_map(Result::ok)
            .map(|v| decode_entry(&v).0.len())
            .sum()
    }

    /// Whether no record is stored.
    pub fn is_empty(&self) -> bool {
        self.tree.range(..[META_PREFIX].as_slice()).next().is_none()
    }

    /// Record `seq` as stored, found in the entry that starts at or before
    /// it; `None` if no entry holds it.
    pub fn record(&self, seq: u64) -> Result<Option<record::AuditRecord>, AuditError> {
        let Some((first, value)) = self.entry_at(seq)? else {
            return Ok(None);
        };
        let (recs, err) = decode_entry(&value);
        let at = usize::try_from(seq - first).unwrap_or(usize::MAX);
        match recs.into_iter().nth(at) {
            Some((rec, _)) => Ok(Some(rec)),
            None => match err {
                Some(e) => Err(e.into()),
                None => Ok(None),
            },
        }
    }

    /// The entry that starts at or before record `seq` (the one holding it,
    /// if any does): its first seq and its value.
    pub(crate) fn entry_at(&self, seq: u64) -> Result<Option<(u64, sled::IVec)>, AuditError> {
        let Some(item) = self.tree.range(..=record_key(seq)).next_back() else {
            return Ok(None);
        };
        let (key, value) = item?;
        Ok(key_seq(&key).map(|first| (first, value)))
    }

    /// Makes everything written so far durable: sled's `flush` writes its
    /// buffers, then the log file is fsynced (sled 0.34 on Linux only calls
    /// `sync_file_range` there, which neither flushes the drive cache nor
    /// the file's size).
    pub(crate) fn sync(&self) -> Result<(), AuditError> {
        self.db.flush()?;
        self.log_file
            .sync_data()
            .map_err(io_err(&self.sled_dir.join(SLED_LOG_FILE)))
    }

    /// The head last made durable, from the witness file (`None` if none was
    /// ever written).
    pub fn witness(&self) -> Result<Option<Head>, AuditError> {
        let path = self.sled_dir.with_file_name(WITNESS_FILE);
        let mut buf = Vec::new();
        let mut f = lock(&self.witness);
        f.seek(SeekFrom::Start(0))
            .and_then(|_| f.read_to_end(&mut buf))
            .map_err(io_err(&path))?;
        if buf.is_empty() {
            return Ok(None);
        }
        let bad = |reason: &str| AuditError::BadMeta {
            what: "head witness",
            reason: reason.to_owned(),
        };
        if buf.len() != 48 {
            return Err(bad("wrong length"));
        }
        if witness_check(&buf[..40]) != buf[40..48] {
            return Err(bad("checksum mismatch"));
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&buf[..8]);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&buf[8..40]);
        Ok(Some(Head {
            seq: u64::from_be_bytes(seq),
            hash,
        }))
    }

    /// Records `head` as durable: rewrites the witness in place (48 bytes,
    /// one sector, so no torn write) and fsyncs it. Called after [`sync`].
    ///
    /// [`sync`]: AuditLog::sync
    pub(crate) fn write_witness(&self, head: Head) -> Result<(), AuditError> {
        let path = self.sled_dir.with_file_name(WITNESS_FILE);
        let mut buf = Vec::with_capacity(48);
        buf.extend_from_slice(&head.seq.to_be_bytes());
        buf.extend_from_slice(&head.hash);
        let check = witness_check(&buf);
        buf.extend_from_slice(&check);
        let mut f = lock(&self.witness);
        f.seek(SeekFrom::Start(0))
            .and_then(|_| f.write_all(&buf))
            .and_then(|_| f.sync_data())
            .map_err(io_err(&path))
    }

    /// Applies a writer batch under the apply lock.
    pub(crate) fn apply_batch(&self, batch: sled::Batch) -> Result<(), AuditError> {
        let _guard = lock(&self.apply);
        Ok(self.tree.apply_batch(batch)?)
    }

    /// The head once no batch is being applied.
    pub(crate) fn settled_head(&self) -> Result<Option<Head>, AuditError> {
        let _guard = lock(&self.apply);
        self.head()
    }

    /// Takes the verify/prune lock.
    pub(crate) fn maintenance(&self) -> MutexGuard<'_, ()> {
        lock(&self.maintenance)
    }

    /// The raw tree, for the chain walkers in this module.
    pub(crate) fn tree(&self) -> &sled::Tree {
        &self.tree
    }
}

/// Locks `m`; a poisoned lock is still usable (a panic mid-seek leaves
/// nothing the next user does not reset).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// First 8 bytes of the domain-separated SHA-256 of a witness body.
fn witness_check(body: &[u8]) -> [u8; 8] {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(WITNESS_DOMAIN)
        .chain_update(body)
        .finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// Tells a held lock (the agent is running) and plain I/O failures from a
/// damaged database.
fn classify_open_error(sled_dir: &Path, e: sled::Error) -> AuditError {
    match e {
        // sled 0.34 reports a failed `try_lock_exclusive` only as this text.
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            AuditError::Locked {
                path: sled_dir.to_owned(),
            }
        }
        sled::Error::Io(source) => AuditError::Io {
            path: sled_dir.to_owned(),
            source,
        },
        other => AuditError::Damaged {
            path: sled_dir.to_owned(),
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers shared by the audit tests.

    use super::*;

    /// A plausible record for a request at `time_ms`.
    pub(crate) fn sample(time_ms: u64, i: u64) -> NewRecord {
        NewRecord {
            time_ms,
            request_id: format!("req-{i:04}"),
            app: Some("loans".into()),
            client: Some("10.1.2.3".into()),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            model: Some("gpt-4o".into()),
            tier: "restricted".into(),
            entities: vec![("aadhaar".into(), 1), ("phone".into(), 2)],
            unscannable: vec![],
            subject_country: Some("IN".into()),
            country_source: "site".into(),
            policy_version: Some(7),
            policy_label: "rbi-2026-11".into(),
            rule: "aadhaar-in-india".into(),
            decision: "allow".into(),
            region: Some("aws:ap-south-1".into()),
            endpoint: Some("gw-mumbai-1".into()),
            status: 200,
            bytes_in: 1200,
            bytes_out: 5400,
            latency_ms: 812.5,
            outcome: "complete".into(),
        }
    }

    /// A new chain of `n` records in a temporary directory.
    pub(crate) fn chain(n: u64) -> (tempfile::TempDir, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        fill(&log, n);
        (dir, log)
    }

    /// Record `seq` as stored.
    pub(crate) fn get(log: &AuditLog, seq: u64) -> record::AuditRecord {
        log.record(seq).unwrap().unwrap()
    }

    /// The stored records by slot (entry key + position), as raw bytes.
    pub(crate) fn slots(log: &AuditLog) -> std::collections::BTreeMap<u64, Vec<u8>> {
        let mut out = std::collections::BTreeMap::new();
        for item in log.tree().range(..[META_PREFIX].as_slice()) {
            let (key, value) = item.unwrap();
            let first = key_seq(&key).unwrap();
            let (recs, err) = decode_entry(&value);
            assert!(err.is_none(), "slots() reads an undamaged store");
            for (slot, (_, range)) in (first..).zip(recs) {
                out.insert(slot, value[range].to_vec());
            }
        }
        out
    }

    /// Replaces every entry with `slots`, packed into entries of up to
    /// `per_entry` consecutive slots (a gap starts a new entry), as someone
    /// editing the database would. Meta keys are left alone.
    pub(crate) fn store_slots(
        log: &AuditLog,
        slots: &std::collections::BTreeMap<u64, Vec<u8>>,
        per_entry: usize,
    ) {
        let keys: Vec<_> = log
            .tree()
            .range(..[META_PREFIX].as_slice())
            .keys()
            .map(Result::unwrap)
            .collect();
        for k in keys {
            log.tree().remove(k).unwrap();
        }
        // (first slot, slots in it, value)
        let mut entry: Option<(u64, usize, Vec<u8>)> = None;
        let flush = |e: Option<(u64, usize, Vec<u8>)>| {
            if let Some((first, _, value)) = e {
                log.tree().insert(record_key(first), value).unwrap();
            }
        };
        for (&slot, bytes) in slots {
            entry = match entry.take() {
                Some((first, n, mut value)) if first + n as u64 == slot && n < per_entry => {
                    value.extend_from_slice(bytes);
                    Some((first, n + 1, value))
                }
                other => {
                    flush(other);
                    Some((slot, 1, bytes.clone()))
                }
            };
        }
        flush(entry);
    }

    /// Stores `bytes` in slot `seq` (replacing what is there), repacking
    /// the store in entries of [`ENTRY_RECORDS`].
    pub(crate) fn put_raw(log: &AuditLog, seq: u64, bytes: Vec<u8>) {
        let mut s = slots(log);
        s.insert(seq, bytes);
        store_slots(log, &s, ENTRY_RECORDS);
    }

    /// Stores `rec` in slot `seq`.
    pub(crate) fn put(log: &AuditLog, seq: u64, rec: &record::AuditRecord) {
        put_raw(log, seq, rec.encode().unwrap());
    }

    /// Empties slot `seq`, repacking the store in entries of
    /// [`ENTRY_RECORDS`].
    pub(crate) fn remove(log: &AuditLog, seq: u64) {
        let mut s = slots(log);
        s.remove(&seq);
        store_slots(log, &s, ENTRY_RECORDS);
    }

    /// Appends `n` records synchronously (bypassing the writer), times
    /// `1000 * i` ms.
    pub(crate) fn fill(log: &AuditLog, n: u64) {
        let state = writer::ChainState::load(log).unwrap();
        let recs = (1..=n).map(|i| sample(1000 * i, i)).collect();
        writer::commit(log, state, recs).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_then_reopens_an_empty_chain() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        assert!(log.head().unwrap().is_none());
        assert!(log.is_empty());
        drop(log);
        let log = AuditLog::open_existing(dir.path()).unwrap();
        assert!(log.head().unwrap().is_none());
    }

    #[test]
    fn open_existing_refuses_to_create() {
        let dir = tempfile::tempdir().unwrap();
        let err = AuditLog::open_existing(dir.path()).unwrap_err();
        assert!(matches!(err, AuditError::Missing { .. }), "{err}");
        assert!(!dir.path().join(SLED_DIR).exists());
    }

    #[test]
    fn second_open_reports_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _held = AuditLog::open(dir.path()).unwrap();
        let err = AuditLog::open(dir.path()).unwrap_err();
        assert!(matches!(err, AuditError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("agent is probably running"));
    }

    /// The stored entries: (key seq, records in it).
    fn entries(log: &AuditLog) -> Vec<(u64, Vec<u64>)> {
        log.tree()
            .range(..[META_PREFIX].as_slice())
            .map(|item| {
                let (k, v) = item.unwrap();
                let (recs, err) = decode_entry(&v);
                assert!(err.is_none());
                (
                    key_seq(&k).unwrap(),
                    recs.iter().map(|(r, _)| r.seq).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn a_group_is_stored_as_entries_of_consecutive_records() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        test_support::fill(&log, 150);
        let e = entries(&log);
        let shape: Vec<(u64, usize)> = e.iter().map(|(k, r)| (*k, r.len())).collect();
        let full = 150 / ENTRY_RECORDS;
        let mut want: Vec<(u64, usize)> = (0..full)
            .map(|i| (1 + (i * ENTRY_RECORDS) as u64, ENTRY_RECORDS))
            .collect();
        want.push((1 + (full * ENTRY_RECORDS) as u64, 150 % ENTRY_RECORDS));
        const { assert!(ENTRY_RECORDS > 1 && 150 % ENTRY_RECORDS != 0) };
        assert_eq!(shape, want);
        for (k, recs) in &e {
            assert_eq!(recs, &(*k..*k + recs.len() as u64).collect::<Vec<_>>());
        }
        // Each record's bytes are its sealed storage encoding.
        let slots = test_support::slots(&log);
        assert_eq!(slots.len(), 150);
        for (seq, bytes) in &slots {
            assert_eq!(bytes, &test_support::get(&log, *seq).encode().unwrap());
        }
        assert_eq!(log.len(), 150);
        assert_eq!(log.record(151).unwrap(), None);
        let boundary = ENTRY_RECORDS as u64;
        assert_eq!(log.record(boundary).unwrap().unwrap().seq, boundary);
        assert_eq!(log.record(boundary + 1).unwrap().unwrap().seq, boundary + 1);
    }

    #[tokio::test]
    async fn a_log_with_one_record_per_key_still_verifies_exports_and_grows() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        test_support::fill(&log, 30);
        // The layout before entries held groups: one record per key.
        let slots = test_support::slots(&log);
        test_support::store_slots(&log, &slots, 1);
        assert_eq!(entries(&log).len(), 30);
        assert_eq!(verify(&log).unwrap().records, 30);
        let mut out = Vec::new();
        assert_eq!(export(&log, None, None, &mut out).unwrap().records, 30);
        let (w, task) = AuditWriter::spawn(log.clone()).unwrap();
        assert_eq!(
            w.append(test_support::sample(31_000, 31)).await.unwrap(),
            31
        );
        w.shutdown().await;
        task.await.unwrap();
        let v = verify(&log).unwrap();
        assert_eq!((v.records, v.last_seq), (31, Some(31)));
        assert_eq!(entries(&log).last(), Some(&(31, vec![31])));
        let r = prune(&log, None, Some(5), 1).unwrap();
        assert_eq!((r.removed, r.remaining), (26, 5));
        assert_eq!(verify(&log).unwrap().first_seq, Some(27));
    }

    #[test]
    fn damaged_database_is_an_error_every_time() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = AuditLog::open(dir.path()).unwrap();
            test_support::fill(&log, 3);
        }
        let db_file = dir.path().join(SLED_DIR).join(SLED_LOG_FILE);
        let len = fs::metadata(&db_file).unwrap().len();
        fs::write(&db_file, vec![0xA5; len as usize]).unwrap();
        let err = AuditLog::open(dir.path()).unwrap_err();
        assert!(matches!(err, AuditError::Damaged { .. }), "{err}");
        assert!(err.to_string().contains("damaged"));
        // sled rewrote the unreadable log while opening it; the audit chain
        // still does not come back as a fresh, empty one.
        let err = AuditLog::open(dir.path()).unwrap_err();
        assert!(matches!(err, AuditError::Damaged { .. }), "{err}");
    }
}
