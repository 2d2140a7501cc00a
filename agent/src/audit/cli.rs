//! The `audit verify|export|prune` subcommands as plain functions: the CLI
//! wires them to clap and gives them stdout.
//!
//! They open the audit database offline, from the agent's `state_dir`. sled
//! takes an exclusive lock on its files, so they work only while the agent
//! is stopped; while it runs they fail with [`CliError::AgentRunning`], and
//! the running agent offers the same verify and export through its admin
//! socket ([`super::verify_log`], [`super::export_log`]).
//!
//! Times for `--since`/`--until` are RFC 3339 (`2026-11-23T10:00:00Z`, a
//! fraction and a `+05:30` offset are accepted) or unix seconds; ages for
//! `--older-than` are a number with `s`, `m`, `h`, `d` or `w` (plain
//! seconds without).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::export::{ExportError, ExportReport};
use super::retention::{PruneError, PruneReport};
use super::verify::{ChainError, VerifyReport};
use super::{audit_dir, AuditError, AuditLog};

/// Why an `audit` subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The agent is running and holds the audit database.
    #[error("the audit database at {path} is locked: the agent is running; stop it first, or ask the running agent through its admin socket")]
    AgentRunning {
        /// The sled directory.
        path: PathBuf,
    },
    /// There is no audit database under the state directory.
    #[error("no audit log at {path} (check the state directory)")]
    NoAuditLog {
        /// Where it was expected.
        path: PathBuf,
    },
    /// The audit database could not be opened (damaged, permissions).
    #[error(transparent)]
    Open(AuditError),
    /// A `--since`/`--until` value is not a time.
    #[error(
        "{flag} {value:?}: {reason}; expected RFC 3339 like 2026-11-23T10:00:00Z or unix seconds"
    )]
    BadTime {
        /// The option.
        flag: &'static str,
        /// What was given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An `--older-than` value is not an age.
    #[error("--older-than {value:?}: expected a number with s, m, h, d or w, like 90d")]
    BadAge {
        /// What was given.
        value: String,
    },
    /// The chain does not verify.
    #[error("audit chain does not verify: {0}")]
    Chain(#[from] ChainError),
    /// The export failed.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The prune failed or was refused.
    #[error(transparent)]
    Prune(#[from] PruneError),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Write(#[from] std::io::Error),
}

/// Opens the audit log under `state_dir` for an offline command.
pub fn open_offline(state_dir: &Path) -> Result<AuditLog, CliError> {
    AuditLog::open_existing(&audit_dir(state_dir)).map_err(|e| match e {
        AuditError::Locked { path } => CliError::AgentRunning { path },
        AuditError::Missing { path } => CliError::NoAuditLog { path },
        other => CliError::Open(other),
    })
}

/// `audit verify`: checks the chain and writes a one-line summary.
pub fn verify(state_dir: &Path, out: &mut dyn Write) -> Result<VerifyReport, CliError> {
    let log = open_offline(state_dir)?;
    let report = super::verify(&log)?;
    write_verify(&report, out)?;
    Ok(report)
}

/// Writes the summary line of a successful verify.
pub fn write_verify(r: &VerifyReport, out: &mut dyn Write) -> std::io::Result<()> {
    match (r.first_seq, r.last_seq) {
        (Some(first), Some(last)) => write!(
            out,
            "audit chain OK: {} records, seq {first}..={last}, head {}",
            r.records, r.head_hash
        )?,
        _ => write!(out, "audit chain OK: no records")?,
    }
    if let Some(a) = &r.anchor {
        write!(
            out,
            ", pruned up to seq {} (anchor {})",
            a.pruned_up_to_seq,
            hex::encode(a.hash_of_last_pruned)
        )?;
    }
    writeln!(out)
}

/// `audit export --since --until`: JSON lines to `out`.
pub fn export(
    state_dir: &Path,
    since: Option<&str>,
    until: Option<&str>,
    out: &mut dyn Write,
) -> Result<ExportReport, CliError> {
    let since_ms = since.map(|s| parse_time("--since", s)).transpose()?;
    let until_ms = until.map(|s| parse_time("--until", s)).transpose()?;
    let log = open_offline(state_dir)?;
    Ok(super::export(&log, since_ms, until_ms, out)?)
}

/// `audit prune --older-than --max-records`: removes old records behind an
/// anchor and writes a summary. `now_ms` is the current time.
pub fn prune(
    state_dir: &Path,
    older_than: Option<&str>,
    max_records: Option<u64>,
    now_ms: u64,
    out: &mut dyn Write,
) -> Result<PruneReport, CliError> {
    let age_ms = older_than.map(parse_age).transpose()?;
    let log = open_offline(state_dir)?;
    let r = super::prune(&log, age_ms, max_records, now_ms)?;
    write!(out, "pruned {} records, {} remain", r.removed, r.remaining)?;
    if let Some(a) = &r.anchor {
        write!(out, ", chain now starts after seq {}", a.pruned_up_to_seq)?;
    }
    writeln!(out)?;
    Ok(r)
}

/// Parses RFC 3339 (`2026-11-23T10:00:00Z`, `...10:00:00.250+05:30`) or unix
/// seconds into unix milliseconds.
pub fn parse_time(flag: &'static str, value: &str) -> Result<u64, CliError> {
    parse_time_ms(value.trim()).map_err(|reason| CliError::BadTime {
        flag,
        value: value.to_owned(),
        reason: reason.to_owned(),
    })
}

fn parse_time_ms(s: &str) -> Result<u64, &'static str> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = s.parse().map_err(|_| "too large")?;
        return secs.checked_mul(1000).ok_or("too large");
    }
    let b = s.as_bytes();
    if b.len() < 20 {
        return Err("too short");
    }
    let sep = |i: usize, c: &[u8]| c.contains(&b[i]);
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return Err("not RFC 3339");
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err("no such date");
    }
    // 60 is a leap second; count it as the last second of the minute.
    if hour > 23 || minute > 59 || second > 60 {
        return Err("no such time");
    }
    let mut rest = &b[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return Err("empty fraction");
        }
        for (i, c) in frac[..n.min(3)].iter().enumerate() {
            millis += u64::from(c - b'0') * [100, 10, 1][i];
        }
        rest = &frac[n..];
    }
    let offset_secs: i64 = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = digits(&[*h1, *h2])?;
            let m = digits(&[*m1, *m2])?;
            if h > 23 || m > 59 {
                return Err("bad offset");
            }
            let off = i64::try_from(h * 3600 + m * 60).map_err(|_| "bad offset")?;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return Err("needs Z or an offset like +05:30"),
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400
        + i64::try_from(hour * 3600 + minute * 60 + second.min(59)).map_err(|_| "bad time")?
        - offset_secs;
    let secs = u64::try_from(secs).map_err(|_| "before 1970")?;
    Ok(secs * 1000 + millis)
}

/// Parses an age like `90d`, `12h`, `30m`, `45s`, `2w` (plain = seconds)
/// into milliseconds.
pub fn parse_age(value: &str) -> Result<u64, CliError> {
    let bad = || CliError::BadAge {
        value: value.to_owned(),
    };
    let s = value.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs_per)
        .and_then(|s| s.checked_mul(1000))
        .ok_or_else(bad)
}

fn digits(b: &[u8]) -> Result<u64, &'static str> {
    b.iter().try_fold(0u64, |acc, c| {
        if c.is_ascii_digit() {
            Ok(acc * 10 + u64::from(c - b'0'))
        } else {
            Err("not a number")
        }
    })
}

fn is_leap(y: u64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`). The inputs are at most 9999-12-31, so no overflow.
fn days_from_civil(y: u64, m: u64, d: u64) -> i64 {
    let (y, m, d) = (y as i64, m as i64, d as i64);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::test_support::fill;

    fn t(s: &str) -> Result<u64, &'static str> {
        parse_time_ms(s)
    }

    #[test]
    fn parses_rfc3339_and_unix_seconds() {
        assert_eq!(t("2026-11-23T10:00:00Z"), Ok(1_795_428_000_000));
        assert_eq!(t("1795428000"), Ok(1_795_428_000_000));
        assert_eq!(t("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(t("2000-02-29T23:59:59Z"), Ok(951_868_799_000));
        assert_eq!(t("2024-12-31T23:59:59.5Z"), Ok(1_735_689_599_500));
        assert_eq!(t("2026-11-23T15:30:00+05:30"), Ok(1_795_428_000_000));
        assert_eq!(t("2026-11-23T04:30:00-05:30"), Ok(1_795_428_000_000));
        assert_eq!(t("2026-11-23t10:00:00.123456z"), Ok(1_795_428_000_123));
    }

    #[test]
    fn rejects_what_is_not_a_time() {
        for bad in [
            "",
            "yesterday",
            "2026-11-23",
            "2026-11-23T10:00:00",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T10:00:00.Z",
            "2026-11-23T10:00:00+0530",
            "1969-12-31T23:59:59Z",
            "99999999999999999999",
        ] {
            assert!(t(bad).is_err(), "{bad:?} accepted");
        }
        let err = parse_time("--since", "soon").unwrap_err();
        assert!(err.to_string().contains("--since \"soon\""), "{err}");
    }

    #[test]
    fn parses_ages() {
        assert_eq!(parse_age("90d").unwrap(), 90 * 86_400_000);
        assert_eq!(parse_age("12h").unwrap(), 12 * 3_600_000);
        assert_eq!(parse_age("30").unwrap(), 30_000);
        assert!(parse_age("3 days").is_err());
        assert!(parse_age("d").is_err());
    }

    #[test]
    fn offline_commands_work_on_a_stopped_agent() {
        let state = tempfile::tempdir().unwrap();
        {
            let log = AuditLog::open(&audit_dir(state.path())).unwrap();
            fill(&log, 10);
        }
        let mut out = Vec::new();
        let r = verify(state.path(), &mut out).unwrap();
        assert_eq!(r.records, 10);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("audit chain OK: 10 records, seq 1..=10, head "),
            "{text}"
        );

        // Record i has time 1000 * i ms: unix seconds 3..=5 pick 3 records.
        let mut out = Vec::new();
        let r = export(
            state.path(),
            Some("3"),
            Some("1970-01-01T00:00:06Z"),
            &mut out,
        )
        .unwrap();
        assert_eq!(r.records, 3);
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 3);

        let mut out = Vec::new();
        let r = prune(state.path(), Some("5s"), None, 10_000, &mut out).unwrap();
        assert_eq!(r.removed, 4);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "pruned 4 records, 6 remain, chain now starts after seq 4\n"
        );
        let mut out = Vec::new();
        verify(state.path(), &mut out).unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("pruned up to seq 4"));
    }

    #[test]
    fn running_agent_and_missing_log_are_named() {
        let state = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        let err = verify(state.path(), &mut out).unwrap_err();
        assert!(matches!(err, CliError::NoAuditLog { .. }), "{err}");
        assert!(!audit_dir(state.path()).exists(), "verify created a log");

        let _running = AuditLog::open(&audit_dir(state.path())).unwrap();
        let err = verify(state.path(), &mut out).unwrap_err();
        assert!(matches!(err, CliError::AgentRunning { .. }), "{err}");
        assert!(err.to_string().contains("admin socket"));
        let err = export(state.path(), None, None, &mut out).unwrap_err();
        assert!(matches!(err, CliError::AgentRunning { .. }), "{err}");
    }

    #[test]
    fn broken_chain_fails_verify() {
        let state = tempfile::tempdir().unwrap();
        {
            let log = AuditLog::open(&audit_dir(state.path())).unwrap();
            fill(&log, 10);
            crate::audit::test_support::remove(&log, 4);
            log.sync().unwrap();
        }
        let mut out = Vec::new();
        let err = verify(state.path(), &mut out).unwrap_err();
        assert!(
            matches!(
                err,
                CliError::Chain(ChainError::Missing { seq: 4, next: 5 })
            ),
            "{err}"
        );
        assert!(out.is_empty());
    }
}
