//! `audit export`: the stored records as JSON lines for a SIEM, one record
//! per line, hashes in hex, in seq order, filtered by time.
//!
//! The export carries `seq`, `prev_hash` and `hash`, so the receiving side
//! can check the links itself and keep the last hash as an outside witness
//! of the head.

use std::io::Write;

use serde::Serialize;

use super::{decode_entry, key_seq, AuditLog, META_PREFIX};

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    /// Lines written.
    pub records: u64,
    /// Seq of the first record written.
    pub first_seq: Option<u64>,
    /// Seq of the last record written.
    pub last_seq: Option<u64>,
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store could not be read.
    #[error("cannot read the audit store: {0}")]
    Store(#[from] sled::Error),
    /// A stored record cannot be decoded (run `audit verify`).
    #[error("record {seq}: undecodable: {reason}")]
    Undecodable {
        /// The key's seq.
        seq: u64,
        /// The decoder's message.
        reason: String,
    },
    /// Writing the output failed.
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
    /// A record could not be serialised as JSON.
    #[error("cannot serialise record {seq}: {source}")]
    Json {
        /// The record.
        seq: u64,
        /// The serialiser's error.
        source: serde_json::Error,
    },
}

/// Writes every record with `since_ms <= time_ms < until_ms` (either bound
/// optional) to `out`, one JSON object per line.
pub fn export(
    log: &AuditLog,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
    out: &mut dyn Write,
) -> Result<ExportReport, ExportError> {
    let mut out = std::io::BufWriter::new(out);
    let mut report = ExportReport {
        records: 0,
        first_seq: None,
        last_seq: None,
    };
    for item in log.tree().range(..[META_PREFIX].as_slice()) {
        let (key, value) = item?;
        let first = key_seq(&key).unwrap_or(0);
        let (recs, err) = decode_entry(&value);
        let decoded = recs.len() as u64;
        for (rec, _) in recs {
            if since_ms.is_some_and(|s| rec.time_ms < s)
                || until_ms.is_some_and(|u| rec.time_ms >= u)
            {
                continue;
            }
            serde_json::to_writer(&mut out, &rec).map_err(|source| ExportError::Json {
                seq: rec.seq,
                source,
            })?;
            out.write_all(b"\n")?;
            report.records += 1;
            report.first_seq.get_or_insert(rec.seq);
            report.last_seq = Some(rec.seq);
        }
        if let Some(e) = err {
            return Err(ExportError::Undecodable {
                seq: first + decoded,
                reason: e.to_string(),
            });
        }
    }
    out.flush()?;
    Ok(report)
}

/// The admin socket's export: the same as [`export`], on the running
/// agent's open log (the writer may append meanwhile; records appended
/// after the walk passed their position are not included).
pub fn export_log(
    log: &AuditLog,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
    out: &mut dyn Write,
) -> Result<ExportReport, ExportError> {
    export(log, since_ms, until_ms, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::test_support::fill;
    use crate::audit::AuditRecord;

    #[test]
    fn since_until_filter_by_time_and_lines_are_json() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        // Record i has time 1000 * i ms.
        fill(&log, 20);
        let mut buf = Vec::new();
        let r = export(&log, Some(5_000), Some(10_000), &mut buf).unwrap();
        assert_eq!((r.records, r.first_seq, r.last_seq), (5, Some(5), Some(9)));
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5);
        let mut prev: Option<AuditRecord> = None;
        for line in lines {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["hash"].as_str().unwrap().len(), 64);
            let rec: AuditRecord = serde_json::from_value(v).unwrap();
            assert!((5_000..10_000).contains(&rec.time_ms));
            // The receiver can check the chain from the export alone.
            assert_eq!(rec.compute_hash(), rec.hash);
            if let Some(p) = prev {
                assert_eq!(rec.prev_hash, p.hash);
            }
            prev = Some(rec);
        }

        let mut all = Vec::new();
        assert_eq!(export(&log, None, None, &mut all).unwrap().records, 20);
        let mut tail = Vec::new();
        assert_eq!(
            export(&log, Some(18_000), None, &mut tail).unwrap().records,
            3
        );
        let mut none = Vec::new();
        assert_eq!(
            export(&log, Some(50_000), None, &mut none).unwrap().records,
            0
        );
        assert!(none.is_empty());
    }
}
