//! Retention: removes the oldest records by age and by count, and leaves an
//! anchor (`pruned_up_to_seq`, `hash_of_last_pruned`) so [`verify`] still
//! proves that the first remaining record links to what was removed.
//!
//! Prune refuses to remove records that do not verify: pruning must not
//! erase the evidence of tampering. It removes in chunks, each one atomic
//! sled batch that also moves the anchor, then flushes and fsyncs, so a
//! crash leaves a chain that verifies.
//!
//! [`verify`]: super::verify::verify

use serde::{Deserialize, Serialize};

use super::record::AuditRecord;
use super::verify::{walk, ChainError};
use super::{record_key, AuditError, AuditLog, ANCHOR_KEY};

/// Records removed per sled batch.
const CHUNK: u64 = 10_000;

/// Where a pruned chain now starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// Seq of the last removed record; the chain continues at the next one.
    pub pruned_up_to_seq: u64,
    /// Hash of that record: the next record's `prev_hash` must equal it.
    #[serde(with = "super::record::hex32")]
    pub hash_of_last_pruned: [u8; 32],
    /// When the prune ran, unix milliseconds.
    pub pruned_at_ms: u64,
}

/// What a prune did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Records removed now.
    pub removed: u64,
    /// Records left.
    pub remaining: u64,
    /// The anchor now in force (`None` if nothing was ever pruned).
    pub anchor: Option<Anchor>,
}

/// Why a prune did not run or stopped.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// The records to remove do not verify; nothing was removed.
    #[error("refusing to prune: the records to remove do not verify: {0}")]
    Chain(#[from] ChainError),
    /// The store failed (a prune that stops midway leaves a valid anchor).
    #[error(transparent)]
    Store(#[from] AuditError),
}

impl From<sled::Error> for PruneError {
    fn from(e: sled::Error) -> Self {
        PruneError::Store(AuditError::Sled(e))
    }
}

/// Removes the oldest records: those older than `older_than_ms` before
/// `now_ms` (from the oldest, stopping at the first younger record, so a
/// clock step never leaves a hole), and as many more as it takes to keep at
/// most `max_records`. The head is always kept in the anchor.
pub fn prune(
    log: &AuditLog,
    older_than_ms: Option<u64>,
    max_records: Option<u64>,
    now_ms: u64,
) -> Result<PruneReport, PruneError> {
    let _guard = log.maintenance();
    let anchor = log.anchor()?;
    let Some(head) = log.head()? else {
        return Ok(PruneReport {
            removed: 0,
            remaining: 0,
            anchor,
        });
    };
    let start = anchor.map_or(1, |a| a.pruned_up_to_seq + 1);
    let stored = (head.seq + 1).saturating_sub(start);
    let by_count = max_records.map_or(0, |keep| stored.saturating_sub(keep));
    let mut cut = start - 1 + by_count;
    if let Some(age) = older_than_ms {
        let cutoff = now_ms.saturating_sub(age);
        for item in log.tree().range(record_key(cut + 1)..=record_key(head.seq)) {
            let (key, value) = item?;
            let rec = decode(&key, &value)?;
            if rec.time_ms >= cutoff {
                break;
            }
            cut = rec.seq;
        }
    }
    if cut < start {
        return Ok(PruneReport {
            removed: 0,
            remaining: stored,
            anchor,
        });
    }
    walk(log, Some(cut))?;
    let mut current = anchor;
    let mut from = start;
    while from <= cut {
        let to = cut.min(from + CHUNK - 1);
        let last = match log.tree().get(record_key(to))? {
            Some(v) => decode(&record_key(to), &v)?,
            None => {
                return Err(ChainError::Missing {
                    seq: to,
                    next: to + 1,
                }
                .into())
            }
        };
        let next = Anchor {
            pruned_up_to_seq: to,
            hash_of_last_pruned: last.hash,
            pruned_at_ms: now_ms,
        };
        let mut batch = sled::Batch::default();
        for seq in from..=to {
            batch.remove(&record_key(seq));
        }
        batch.insert(
            ANCHOR_KEY,
            postcard::to_allocvec(&next).map_err(AuditError::from)?,
        );
        log.tree().apply_batch(batch)?;
        log.sync()?;
        current = Some(next);
        from = to + 1;
    }
    Ok(PruneReport {
        removed: cut + 1 - start,
        remaining: head.seq - cut,
        anchor: current,
    })
}

fn decode(key: &[u8], value: &[u8]) -> Result<AuditRecord, ChainError> {
    AuditRecord::decode(value).map_err(|e| ChainError::Undecodable {
        seq: super::key_seq(key).unwrap_or(0),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::test_support::{chain, get, sample};
    use crate::audit::verify::verify;
    use crate::audit::writer::AuditWriter;

    #[test]
    fn prune_by_count_keeps_the_chain_verifiable() {
        let (_dir, log) = chain(100);
        let hash_60 = get(&log, 60).hash;
        let r = prune(&log, None, Some(40), 1).unwrap();
        assert_eq!((r.removed, r.remaining), (60, 40));
        let a = r.anchor.unwrap();
        assert_eq!(a.pruned_up_to_seq, 60);
        assert_eq!(a.hash_of_last_pruned, hash_60);
        assert_eq!(log.len(), 40);
        let v = verify(&log).unwrap();
        assert_eq!(
            (v.records, v.first_seq, v.last_seq),
            (40, Some(61), Some(100))
        );
        assert_eq!(v.anchor, Some(a));
        // Pruning again to the same size does nothing.
        assert_eq!(prune(&log, None, Some(40), 2).unwrap().removed, 0);
    }

    #[test]
    fn prune_by_age_stops_at_the_first_young_record() {
        // Record i has time 1000 * i ms.
        let (_dir, log) = chain(100);
        // Older than 30 s at t = 100 s: times below 70 000 ms, seq 1..=69.
        let r = prune(&log, Some(30_000), None, 100_000).unwrap();
        assert_eq!(r.removed, 69);
        assert_eq!(verify(&log).unwrap().first_seq, Some(70));
        // Both limits: the stricter wins.
        let r = prune(&log, Some(95_000), Some(10), 100_000).unwrap();
        assert_eq!(r.removed, 21);
        assert_eq!(verify(&log).unwrap().first_seq, Some(91));
    }

    #[test]
    fn tampering_right_after_the_anchor_is_found() {
        let (_dir, log) = chain(50);
        prune(&log, None, Some(20), 1).unwrap();
        let mut rec = get(&log, 31);
        rec.decision = "deny".into();
        log.tree()
            .insert(record_key(31), rec.encode().unwrap())
            .unwrap();
        assert_eq!(verify(&log), Err(ChainError::Modified { seq: 31 }));

        // Deleting the first record after the anchor is a gap too.
        let (_dir2, log2) = chain(50);
        prune(&log2, None, Some(20), 1).unwrap();
        log2.tree().remove(record_key(31)).unwrap();
        assert_eq!(
            verify(&log2),
            Err(ChainError::Missing { seq: 31, next: 32 })
        );

        // A rehashed first record no longer links to the anchor.
        let (_dir3, log3) = chain(50);
        prune(&log3, None, Some(20), 1).unwrap();
        let mut rec = get(&log3, 31);
        rec.prev_hash = [3; 32];
        rec.hash = rec.compute_hash();
        log3.tree()
            .insert(record_key(31), rec.encode().unwrap())
            .unwrap();
        assert_eq!(verify(&log3), Err(ChainError::BrokenLink { seq: 31 }));
    }

    #[test]
    fn pruned_record_put_back_is_found() {
        let (_dir, log) = chain(30);
        let old = get(&log, 5);
        prune(&log, None, Some(10), 1).unwrap();
        log.tree()
            .insert(record_key(5), old.encode().unwrap())
            .unwrap();
        assert_eq!(
            verify(&log),
            Err(ChainError::BeforeAnchor { seq: 5, anchor: 20 })
        );
    }

    #[test]
    fn prune_refuses_to_remove_tampered_records() {
        let (_dir, log) = chain(30);
        let mut rec = get(&log, 3);
        rec.region = Some("aws:us-east-1".into());
        log.tree()
            .insert(record_key(3), rec.encode().unwrap())
            .unwrap();
        let err = prune(&log, None, Some(10), 1).unwrap_err();
        assert!(
            matches!(err, PruneError::Chain(ChainError::Modified { seq: 3 })),
            "{err}"
        );
        assert_eq!(log.len(), 30);
    }

    #[tokio::test]
    async fn prune_everything_then_append_continues_the_chain() {
        let (_dir, log) = chain(10);
        let r = prune(&log, None, Some(0), 1).unwrap();
        assert_eq!((r.removed, r.remaining), (10, 0));
        assert_eq!(verify(&log).unwrap().records, 0);
        let (w, task) = AuditWriter::spawn(log.clone()).unwrap();
        assert_eq!(w.append(sample(20_000, 11)).await.unwrap(), 11);
        w.shutdown().await;
        task.await.unwrap();
        let v = verify(&log).unwrap();
        assert_eq!(
            (v.records, v.first_seq, v.last_seq),
            (1, Some(11), Some(11))
        );
    }
}
