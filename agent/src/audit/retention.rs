//! Retention: removes the oldest records by age and by count, and leaves an
//! anchor (`pruned_up_to_seq`, `hash_of_last_pruned`) so [`verify`] still
//! proves that the first remaining record links to what was removed.
//!
//! Prune refuses to remove records that do not verify: pruning must not
//! erase the evidence of tampering. It removes in chunks, each one atomic
//! sled batch that also moves the anchor, then flushes and fsyncs, so a
//! crash leaves a chain that verifies. An entry that holds records on both
//! sides of the cut is stored again with only the records it keeps.
//!
//! [`verify`]: super::verify::verify

use serde::Serialize;

use super::record::{Anchor, AuditRecord};
use super::verify::{walk, ChainError};
use super::{record_key, AuditError, AuditLog, ANCHOR_KEY};

/// Records removed per sled batch.
const CHUNK: u64 = 10_000;

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
        // From the entry holding record `cut + 1` on.
        let from = record_key(log.entry_at(cut + 1)?.map_or(cut + 1, |(first, _)| first));
        'entries: for item in log.tree().range(from..=record_key(head.seq)) {
            let (key, value) = item?;
            for rec in decode(&key, &value)? {
                if rec.seq <= cut {
                    continue;
                }
                if rec.time_ms >= cutoff {
                    break 'entries;
                }
                cut = rec.seq;
            }
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
    // Entries wholly at or below the cut go; an entry that straddles it is
    // stored again under `cut + 1` with the records after the cut. Each
    // batch moves the anchor to the last record it removes.
    let mut current = anchor;
    let mut batch = sled::Batch::default();
    let mut in_batch = 0u64;
    let mut last: Option<AuditRecord> = None;
    for item in log.tree().range(..=record_key(cut)) {
        let (key, value) = item?;
        // `walk` checked every record up to the cut; what follows it in
        // the entry is kept byte for byte, whatever it is.
        let mut kept_from = 0;
        for (rec, range) in super::decode_entry(&value).0 {
            if rec.seq > cut {
                break;
            }
            kept_from = range.end;
            in_batch += 1;
            last = Some(rec);
        }
        if kept_from == 0 {
            continue;
        }
        batch.remove(&key);
        if let (Some(l), true) = (&last, kept_from < value.len()) {
            batch.insert(&record_key(l.seq + 1), &value[kept_from..]);
        }
        if let (true, Some(l)) = (in_batch >= CHUNK, &last) {
            current = Some(apply(log, std::mem::take(&mut batch), l, now_ms)?);
            in_batch = 0;
        }
    }
    if let (true, Some(l)) = (in_batch > 0, &last) {
        current = Some(apply(log, batch, l, now_ms)?);
    }
    if current.map_or(start - 1, |a| a.pruned_up_to_seq) != cut {
        return Err(ChainError::Missing {
            seq: cut,
            next: cut + 1,
        }
        .into());
    }
    Ok(PruneReport {
        removed: cut + 1 - start,
        remaining: head.seq - cut,
        anchor: current,
    })
}

/// Applies a prune batch with the anchor moved to `last` (the last record
/// it removes), and makes it durable.
fn apply(
    log: &AuditLog,
    mut batch: sled::Batch,
    last: &AuditRecord,
    now_ms: u64,
) -> Result<Anchor, PruneError> {
    let next = Anchor {
        pruned_up_to_seq: last.seq,
        hash_of_last_pruned: last.hash,
        pruned_at_ms: now_ms,
    };
    batch.insert(
        ANCHOR_KEY,
        postcard::to_allocvec(&next).map_err(AuditError::from)?,
    );
    log.tree().apply_batch(batch)?;
    log.sync()?;
    Ok(next)
}

/// The records of one entry.
fn decode(key: &[u8], value: &[u8]) -> Result<Vec<AuditRecord>, ChainError> {
    let (recs, err) = super::decode_entry(value);
    match err {
        Some(e) => Err(ChainError::Undecodable {
            seq: super::key_seq(key).unwrap_or(0) + recs.len() as u64,
            reason: e.to_string(),
        }),
        None => Ok(recs.into_iter().map(|(r, _)| r).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::test_support::{chain, get, put, remove, sample};
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
    fn prune_inside_an_entry_keeps_the_rest_of_it() {
        // The writer stored 100 records in entries of ENTRY_RECORDS; the
        // cut after 61 falls inside one (61 is not 1 past a multiple).
        let e = super::super::ENTRY_RECORDS as u64;
        assert_ne!(61 % e, 1);
        let (_dir, log) = chain(100);
        prune(&log, None, Some(39), 1).unwrap();
        let keys: Vec<u64> = log
            .tree()
            .range(..[super::super::META_PREFIX].as_slice())
            .keys()
            .map(|k| super::super::key_seq(&k.unwrap()).unwrap())
            .collect();
        let next = (61 / e + 1) * e + 1;
        assert_eq!(keys[..2], [62, next]);
        assert_eq!(get(&log, 62).seq, 62);
        assert_eq!(verify(&log).unwrap().records, 39);
    }

    #[test]
    fn prune_keeps_what_follows_the_cut_byte_for_byte() {
        // Junk after record 8, inside the first entry: not the prune's to
        // judge or erase; verify still reports it after the prune.
        let (_dir, log) = chain(10);
        let key = record_key(1);
        let mut value = log.tree().get(key).unwrap().unwrap().to_vec();
        value.extend_from_slice(b"\x00junk");
        log.tree().insert(key, value.clone()).unwrap();
        let before = verify(&log).unwrap_err();
        let r = prune(&log, None, Some(5), 1).unwrap();
        assert_eq!(r.removed, 5);
        let kept = log.tree().get(record_key(6)).unwrap().unwrap();
        assert!(kept.ends_with(b"\x00junk"));
        assert!(value.ends_with(&kept));
        let after = verify(&log).unwrap_err();
        assert_eq!(before.to_string(), after.to_string());
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
        put(&log, 31, &rec);
        assert_eq!(verify(&log), Err(ChainError::Modified { seq: 31 }));

        // Deleting the first record after the anchor is a gap too.
        let (_dir2, log2) = chain(50);
        prune(&log2, None, Some(20), 1).unwrap();
        remove(&log2, 31);
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
        put(&log3, 31, &rec);
        assert_eq!(verify(&log3), Err(ChainError::BrokenLink { seq: 31 }));
    }

    #[test]
    fn pruned_record_put_back_is_found() {
        let (_dir, log) = chain(30);
        let old = get(&log, 5);
        prune(&log, None, Some(10), 1).unwrap();
        put(&log, 5, &old);
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
        put(&log, 3, &rec);
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
