//! `audit verify`: walks the chain from the retention anchor (or the
//! genesis) to the head, recomputes every hash and checks every link, and
//! names the first record where the chain breaks and how.
//!
//! The head witness file (see the parent module) is checked too: the chain
//! must reach the record it names, with the hash it names.
//!
//! Safe while the writer runs: the head is read first and only records up
//! to it are checked; records past it are accepted only if the head has
//! moved past them by the end of the walk (they were appended meanwhile).

use serde::Serialize;

use super::record::{Anchor, GENESIS_HASH};
use super::{decode_entry, key_seq, AuditError, AuditLog, META_PREFIX};
use super::{ANCHOR_KEY, HEAD_KEY};

/// What a successful verify covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Records checked.
    pub records: u64,
    /// First seq checked (`None` if no record is stored).
    pub first_seq: Option<u64>,
    /// Last seq checked.
    pub last_seq: Option<u64>,
    /// The head hash the chain ends in, hex (zeros for an empty chain).
    pub head_hash: String,
    /// The retention anchor the chain starts from, if pruned.
    pub anchor: Option<Anchor>,
}

/// Where and how the chain is broken. Every variant names the first bad
/// record by seq.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The record's content does not match its hash: it was modified.
    #[error("record {seq}: modified (its hash does not match its content)")]
    Modified {
        /// The record.
        seq: u64,
    },
    /// A seq is missing between the anchor and the head: a record was deleted.
    #[error("record {seq}: missing (deleted); the next stored record is {next}")]
    Missing {
        /// The first missing seq.
        seq: u64,
        /// The next seq present.
        next: u64,
    },
    /// The record is intact but does not link to the one before it: a record
    /// was inserted before it, or records were reordered.
    #[error("record {seq}: does not link to record {} (a record was inserted or reordered)", seq.saturating_sub(1))]
    BrokenLink {
        /// The record.
        seq: u64,
    },
    /// The record stored in slot `seq` (its entry's key plus its position in
    /// the entry) claims another seq: records were moved or swapped.
    #[error("record {seq}: its place holds record {claims} (records were reordered or moved)")]
    Reordered {
        /// The key's seq.
        seq: u64,
        /// The seq inside the stored record.
        claims: u64,
    },
    /// An entry starts inside the range of the entry before it: records
    /// were stored twice or an entry was added among the others.
    #[error("record {seq}: stored twice (an entry starts inside the one before it)")]
    Duplicate {
        /// The first seq of the overlapping entry.
        seq: u64,
    },
    /// A record at or below the anchor is stored: pruned records were put back.
    #[error("record {seq}: stored although the chain was pruned up to {anchor}")]
    BeforeAnchor {
        /// The record.
        seq: u64,
        /// The anchor's seq.
        anchor: u64,
    },
    /// The records end before the head: the tail was truncated.
    #[error("record {seq}: missing (the tail was truncated; the head says the chain ends at {head_seq})")]
    Truncated {
        /// The first missing seq.
        seq: u64,
        /// The seq the head names.
        head_seq: u64,
    },
    /// Records are stored past the head: they were added behind the writer's back.
    #[error("record {seq}: stored past the head ({head_seq}); records were added")]
    PastHead {
        /// The first record past the head.
        seq: u64,
        /// The head's seq.
        head_seq: u64,
    },
    /// The last record's hash differs from the head's.
    #[error("record {seq}: the head meta names a different hash for the last record")]
    HeadMismatch {
        /// The last record.
        seq: u64,
    },
    /// The chain ends before a record the head witness says was made
    /// durable: acknowledged records were lost (sled recovery cut its log),
    /// or the tail was cut and the head rewritten.
    #[error("record {seq}: missing, but records up to {witness_seq} were acknowledged as durable (head witness): acknowledged records were lost or the tail was cut")]
    Lost {
        /// The first missing seq.
        seq: u64,
        /// The seq the witness names.
        witness_seq: u64,
    },
    /// The record the head witness names has another hash: the chain was
    /// rewritten from there on.
    #[error(
        "record {seq}: differs from the hash the head witness recorded (the chain was rewritten)"
    )]
    WitnessMismatch {
        /// The record.
        seq: u64,
    },
    /// Records are stored but no head.
    #[error("the head meta is missing although {records} records are stored")]
    HeadMissing {
        /// Records stored.
        records: u64,
    },
    /// A record cannot be decoded.
    #[error("record {seq}: undecodable: {reason}")]
    Undecodable {
        /// The key's seq.
        seq: u64,
        /// The decoder's message.
        reason: String,
    },
    /// A key that is neither a record nor a known meta key.
    #[error("unexpected key {key_hex} in the audit tree")]
    UnexpectedKey {
        /// The key, hex.
        key_hex: String,
    },
    /// The head or anchor meta value cannot be decoded.
    #[error("audit {what} meta is undecodable: {reason}")]
    BadMeta {
        /// `head` or `anchor`.
        what: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// The store could not be read.
    #[error("cannot read the audit store: {0}")]
    Store(String),
}

impl From<AuditError> for ChainError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::BadMeta { what, reason } => ChainError::BadMeta { what, reason },
            other => ChainError::Store(other.to_string()),
        }
    }
}

/// Verifies the whole stored chain. Takes the log's maintenance lock, so it
/// does not overlap a prune in this process.
pub fn verify(log: &AuditLog) -> Result<VerifyReport, ChainError> {
    let _guard = log.maintenance();
    walk(log, None)
}

/// The admin socket's verify: the same as [`verify`], on the running
/// agent's open log.
pub fn verify_log(log: &AuditLog) -> Result<VerifyReport, ChainError> {
    verify(log)
}

/// Walks the chain from the anchor, stopping after record `stop_at` if
/// given (used by prune to check what it is about to remove). Callers hold
/// the maintenance lock.
pub(crate) fn walk(log: &AuditLog, stop_at: Option<u64>) -> Result<VerifyReport, ChainError> {
    let anchor = log.anchor()?;
    // The witness is written after the head, so reading it first keeps it
    // at or behind the head while the writer runs.
    let witness = if stop_at.is_none() {
        log.witness()?
    } else {
        None
    };
    let head = log.head()?;
    let (mut expected, mut prev) = match &anchor {
        Some(a) => (a.pruned_up_to_seq + 1, a.hash_of_last_pruned),
        None => (1, GENESIS_HASH),
    };
    let base = expected - 1;
    let head_seq = head.map_or(base, |h| h.seq);
    let limit = stop_at.map_or(head_seq, |s| s.min(head_seq));
    let mut records = 0u64;
    let mut first_seq = None;
    let mut past_head: Option<(u64, u64)> = None;
    'entries: for item in log.tree().iter() {
        let (key, value) = item.map_err(|e| ChainError::Store(e.to_string()))?;
        if key.first() == Some(&META_PREFIX) {
            if key.as_ref() == HEAD_KEY || key.as_ref() == ANCHOR_KEY {
                continue;
            }
            return Err(unexpected(&key));
        }
        let Some(first) = key_seq(&key) else {
            return Err(unexpected(&key));
        };
        if first > limit && stop_at.is_some() {
            break;
        }
        if first <= limit {
            if let Some(a) = &anchor {
                if first <= a.pruned_up_to_seq {
                    return Err(ChainError::BeforeAnchor {
                        seq: first,
                        anchor: a.pruned_up_to_seq,
                    });
                }
            }
            if first > expected {
                return Err(ChainError::Missing {
                    seq: expected,
                    next: first,
                });
            }
            if first < expected {
                // This entry's range overlaps the one before it.
                return Err(ChainError::Duplicate { seq: first });
            }
        }
        let (recs, err) = decode_entry(&value);
        let decoded = recs.len() as u64;
        // Each record's slot is the entry's key plus its position.
        for (seq, (rec, _)) in (first..).zip(recs) {
            if seq > limit {
                if stop_at.is_some() {
                    break 'entries;
                }
                let (from, _) = past_head.unwrap_or((seq, seq));
                past_head = Some((from, seq));
                continue;
            }
            if rec.seq != seq {
                return Err(ChainError::Reordered {
                    seq,
                    claims: rec.seq,
                });
            }
            if rec.compute_hash() != rec.hash {
                return Err(ChainError::Modified { seq });
            }
            if rec.prev_hash != prev {
                return Err(ChainError::BrokenLink { seq });
            }
            if witness.is_some_and(|w| w.seq == seq && w.hash != rec.hash) {
                return Err(ChainError::WitnessMismatch { seq });
            }
            first_seq.get_or_insert(seq);
            records += 1;
            prev = rec.hash;
            expected += 1;
        }
        if let Some(e) = err {
            return Err(ChainError::Undecodable {
                seq: first + decoded,
                reason: e.to_string(),
            });
        }
    }
    let last = expected - 1;
    if last < limit {
        return Err(ChainError::Truncated {
            seq: expected,
            head_seq: limit,
        });
    }
    // Only a full walk compares with the head (prune stops early).
    if let (Some(h), None) = (head, stop_at) {
        if h.hash != prev {
            return Err(ChainError::HeadMismatch { seq: h.seq });
        }
    }
    if let Some((first, max)) = past_head {
        // Appended while we walked, if the head covers them once the batch
        // we may have seen half of is complete.
        match log.settled_head()? {
            None => {
                return Err(ChainError::HeadMissing {
                    records: log.len() as u64,
                })
            }
            Some(now) if now.seq < max => {
                return Err(ChainError::PastHead {
                    seq: first,
                    head_seq,
                })
            }
            Some(_) => {}
        }
    }
    if let Some(w) = witness {
        if w.seq > last && head.is_none_or(|h| h.seq < w.seq) {
            return Err(ChainError::Lost {
                seq: expected,
                witness_seq: w.seq,
            });
        }
        if records == 0 && w.seq == last && w.hash != prev {
            return Err(ChainError::WitnessMismatch { seq: w.seq });
        }
    }
    Ok(VerifyReport {
        records,
        first_seq,
        last_seq: first_seq.map(|_| last),
        head_hash: hex::encode(prev),
        anchor,
    })
}

fn unexpected(key: &[u8]) -> ChainError {
    ChainError::UnexpectedKey {
        key_hex: hex::encode(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::test_support::{chain, get, put, put_raw, remove, sample};
    use crate::audit::AuditRecord;

    #[test]
    fn untouched_chain_verifies() {
        let (_dir, log) = chain(100);
        let r = verify(&log).unwrap();
        assert_eq!(r.records, 100);
        assert_eq!((r.first_seq, r.last_seq), (Some(1), Some(100)));
        assert_eq!(r.head_hash, hex::encode(get(&log, 100).hash));
        assert_eq!(r.anchor, None);
    }

    #[test]
    fn empty_chain_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        let r = verify(&log).unwrap();
        assert_eq!((r.records, r.first_seq, r.last_seq), (0, None, None));
    }

    #[test]
    fn modified_field_is_found() {
        let (_dir, log) = chain(100);
        let mut rec = get(&log, 42);
        rec.region = Some("aws:us-east-1".into());
        put(&log, 42, &rec);
        assert_eq!(verify(&log), Err(ChainError::Modified { seq: 42 }));
    }

    #[test]
    fn modified_and_rehashed_record_breaks_the_next_link() {
        let (_dir, log) = chain(100);
        let mut rec = get(&log, 42);
        rec.region = Some("aws:us-east-1".into());
        rec.hash = rec.compute_hash();
        put(&log, 42, &rec);
        assert_eq!(verify(&log), Err(ChainError::BrokenLink { seq: 43 }));
    }

    #[test]
    fn deleted_record_is_found() {
        let (_dir, log) = chain(100);
        remove(&log, 17);
        let err = verify(&log).unwrap_err();
        assert_eq!(err, ChainError::Missing { seq: 17, next: 18 });
        assert!(err.to_string().starts_with("record 17: missing"));
    }

    #[test]
    fn inserted_record_is_found() {
        let (_dir, log) = chain(100);
        // Make room after 29 by moving 30..=100 up one key, as an attacker
        // would, then forge a record for the gap.
        for seq in (30..=100).rev() {
            let rec = get(&log, seq);
            put(&log, seq + 1, &rec);
        }
        let forged = AuditRecord::seal(sample(29_500, 999), 30, [9; 32]);
        put(&log, 30, &forged);
        assert_eq!(verify(&log), Err(ChainError::BrokenLink { seq: 30 }));

        // A forger who links it properly is caught at the moved record.
        let forged = AuditRecord::seal(sample(29_500, 999), 30, get(&log, 29).hash);
        put(&log, 30, &forged);
        assert_eq!(
            verify(&log),
            Err(ChainError::Reordered {
                seq: 31,
                claims: 30
            })
        );
    }

    #[test]
    fn an_entry_inside_another_is_found() {
        // The writer stored records 1..=8 as one entry; a second entry
        // starting at 5 holds a copy.
        let (_dir, log) = chain(10);
        let copy = get(&log, 5).encode().unwrap();
        log.tree()
            .insert(crate::audit::record_key(5), copy)
            .unwrap();
        assert_eq!(verify(&log), Err(ChainError::Duplicate { seq: 5 }));
    }

    #[test]
    fn swapped_records_are_found() {
        let (_dir, log) = chain(100);
        let (a, b) = (get(&log, 50), get(&log, 51));
        put(&log, 50, &b);
        put(&log, 51, &a);
        assert_eq!(
            verify(&log),
            Err(ChainError::Reordered {
                seq: 50,
                claims: 51
            })
        );
    }

    #[test]
    fn truncated_tail_is_found() {
        let (_dir, log) = chain(100);
        for seq in 91..=100 {
            remove(&log, seq);
        }
        assert_eq!(
            verify(&log),
            Err(ChainError::Truncated {
                seq: 91,
                head_seq: 100
            })
        );
    }

    #[test]
    fn cut_tail_with_rewritten_head_is_found_by_the_witness() {
        let (_dir, log) = chain(100);
        for seq in 91..=100 {
            remove(&log, seq);
        }
        let head = crate::audit::Head {
            seq: 90,
            hash: get(&log, 90).hash,
        };
        log.tree()
            .insert(HEAD_KEY, postcard::to_allocvec(&head).unwrap())
            .unwrap();
        assert_eq!(
            verify(&log),
            Err(ChainError::Lost {
                seq: 91,
                witness_seq: 100
            })
        );
    }

    #[test]
    fn rewritten_chain_is_found_by_the_witness() {
        let (_dir, log) = chain(10);
        // Rewrite record 10 and fix the head: only the witness remembers.
        let mut rec = get(&log, 10);
        rec.region = Some("aws:us-east-1".into());
        rec.hash = rec.compute_hash();
        put(&log, 10, &rec);
        let head = crate::audit::Head {
            seq: 10,
            hash: rec.hash,
        };
        log.tree()
            .insert(HEAD_KEY, postcard::to_allocvec(&head).unwrap())
            .unwrap();
        assert_eq!(verify(&log), Err(ChainError::WitnessMismatch { seq: 10 }));
    }

    #[test]
    fn records_past_the_head_are_found() {
        let (_dir, log) = chain(10);
        let extra = AuditRecord::seal(sample(1, 11), 11, get(&log, 10).hash);
        put(&log, 11, &extra);
        assert_eq!(
            verify(&log),
            Err(ChainError::PastHead {
                seq: 11,
                head_seq: 10
            })
        );
    }

    #[test]
    fn rewritten_head_is_found() {
        let (_dir, log) = chain(10);
        let head = crate::audit::Head {
            seq: 10,
            hash: [1; 32],
        };
        log.tree()
            .insert(HEAD_KEY, postcard::to_allocvec(&head).unwrap())
            .unwrap();
        assert_eq!(verify(&log), Err(ChainError::HeadMismatch { seq: 10 }));
    }

    #[test]
    fn garbage_record_is_undecodable() {
        let (_dir, log) = chain(10);
        // Alone in its entry, garbage does not decode.
        let mut slots = crate::audit::test_support::slots(&log);
        slots.insert(4, b"\xff\xff".to_vec());
        crate::audit::test_support::store_slots(&log, &slots, 1);
        let got = verify(&log);
        assert!(
            matches!(got, Err(ChainError::Undecodable { seq: 4, .. })),
            "{got:?}"
        );
        // Inside an entry, it may read as a record and run into the next
        // one; either way the chain breaks at record 4.
        let (_dir, log) = chain(10);
        put_raw(&log, 4, b"\xff\xff".to_vec());
        let got = verify(&log).unwrap_err();
        assert!(got.to_string().starts_with("record 4:"), "{got}");
        // An entry cut off in the middle of its last record: undecodable
        // there (the writer stored records 1..=ENTRY_RECORDS as one entry).
        let (_dir, log) = chain(10);
        let key = crate::audit::record_key(1);
        let value = log.tree().get(key).unwrap().unwrap();
        log.tree().insert(key, &value[..value.len() - 5]).unwrap();
        let got = verify(&log);
        let last = crate::audit::ENTRY_RECORDS.min(10) as u64;
        assert!(
            matches!(got, Err(ChainError::Undecodable { seq, .. }) if seq == last),
            "{got:?}"
        );
    }

    #[test]
    fn stray_key_is_reported() {
        let (_dir, log) = chain(3);
        log.tree().insert(b"junk", &b"x"[..]).unwrap();
        assert!(matches!(
            verify(&log),
            Err(ChainError::UnexpectedKey { .. })
        ));
    }

    #[test]
    fn records_without_head_are_reported() {
        let (_dir, log) = chain(3);
        log.tree().remove(HEAD_KEY).unwrap();
        assert_eq!(verify(&log), Err(ChainError::HeadMissing { records: 3 }));
    }
}
