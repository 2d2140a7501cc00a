//! The `policy` and `keys` subcommands as plain functions: explicit arguments,
//! output to a `&mut dyn Write`, errors naming the file at fault. The clap
//! wiring lives with the rest of the command line.

use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use residency_proto::{PolicyBundle, DEFAULT_MAX_BUNDLE_LEN};

use super::sign::{self, PolicySigningKey, TrustedKey};
use super::{lint as lint_text, PolicyError};

/// File name of the secret key written by [`keys_gen`].
pub const SECRET_KEY_FILE: &str = "policy-signing.key";

/// File name of the public key written by [`keys_gen`].
pub const PUBLIC_KEY_FILE: &str = "policy-signing.pub";

/// Why a `policy` subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyCliError {
    /// A file could not be read, created or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A file's content is invalid: policy, key, bundle or request.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The command's own output could not be written.
    #[error("cannot write output: {0}")]
    Output(#[from] io::Error),
}

impl PolicyCliError {
    /// True for bad input (the user must fix a file), false for I/O trouble.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, PolicyCliError::Invalid { .. })
    }

    /// A sysexits-style exit code: 65 (EX_DATAERR) for invalid input, 74
    /// (EX_IOERR) for I/O errors.
    pub fn exit_code(&self) -> u8 {
        if self.is_invalid_input() {
            65
        } else {
            74
        }
    }
}

/// `keys gen`: writes a new `policy-signing.key` (mode 0600) and
/// `policy-signing.pub` into `out_dir`, refusing to overwrite either.
pub fn keys_gen(out_dir: &Path, out: &mut dyn Write) -> Result<(), PolicyCliError> {
    let (secret, public) = sign::generate_keypair().map_err(|e| PolicyCliError::Invalid {
        path: out_dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let secret_path = out_dir.join(SECRET_KEY_FILE);
    let public_path = out_dir.join(PUBLIC_KEY_FILE);
    for p in [&secret_path, &public_path] {
        if p.exists() {
            return Err(PolicyCliError::Invalid {
                path: p.clone(),
                reason: "already exists; refusing to overwrite a key".into(),
            });
        }
    }
    write_new(&secret_path, secret.to_pem().as_bytes(), 0o600)?;
    write_new(&public_path, public.to_pem().as_bytes(), 0o644)?;
    writeln!(
        out,
        "key id {}\nsecret key: {} (mode 0600; keep it offline)\npublic key: {} (pin it in agent.toml)",
        public.key_id(),
        secret_path.display(),
        public_path.display()
    )?;
    Ok(())
}

/// `policy lint FILE`: prints `ok: N rules` or every error as
/// `FILE:LINE:COL: FIELD: REASON`.
pub fn lint(path: &Path, out: &mut dyn Write) -> Result<(), PolicyCliError> {
    let text = read_text(path)?;
    match lint_text(&text) {
        Ok(policy) => {
            writeln!(out, "ok: {} rules", policy.rules().len())?;
            Ok(())
        }
        Err(errors) => Err(report(path, &errors, out)?),
    }
}

/// `policy sign`: lints the policy, signs it as `version` issued at `now_unix`
/// with the key in `key_path`, and writes the bundle to `out_path` (through a
/// temporary file and a rename, so a reader never sees half a bundle).
pub fn sign(
    policy_path: &Path,
    key_path: &Path,
    version: u64,
    out_path: &Path,
    now_unix: u64,
    out: &mut dyn Write,
) -> Result<(), PolicyCliError> {
    let text = read_text(policy_path)?;
    if let Err(errors) = lint_text(&text) {
        return Err(report(policy_path, &errors, out)?);
    }
    let key =
        PolicySigningKey::from_pem(&read_text(key_path)?).map_err(|e| PolicyCliError::Invalid {
            path: key_path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let bundle =
        sign::sign(&text, version, now_unix, &key).map_err(|e| PolicyCliError::Invalid {
            path: policy_path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let bytes = bundle.encode();
    let tmp = out_path.with_extension("tmp");
    fs::write(&tmp, &bytes).map_err(|e| io_err(&tmp, e))?;
    fs::rename(&tmp, out_path).map_err(|e| io_err(out_path, e))?;
    writeln!(
        out,
        "signed {} as version {version} with key {} -> {} ({} bytes)",
        policy_path.display(),
        key.key_id(),
        out_path.display(),
        bytes.len()
    )?;
    Ok(())
}

/// `policy verify BUNDLE --key PUB...`: checks the bundle against the given
/// public keys and prints its version, key id, issue time and rule count.
pub fn verify(
    bundle_path: &Path,
    pubkey_paths: &[PathBuf],
    out: &mut dyn Write,
) -> Result<(), PolicyCliError> {
    let keys = pubkey_paths
        .iter()
        .map(|p| {
            TrustedKey::from_pem(&read_text(p)?).map_err(|e| PolicyCliError::Invalid {
                path: p.clone(),
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bytes = fs::read(bundle_path).map_err(|e| io_err(bundle_path, e))?;
    let v = sign::verify(&bytes, &keys, None, DEFAULT_MAX_BUNDLE_LEN).map_err(|e| {
        PolicyCliError::Invalid {
            path: bundle_path.to_path_buf(),
            reason: e.to_string(),
        }
    })?;
    writeln!(out, "ok: signature valid")?;
    writeln!(out, "version: {}", v.version)?;
    writeln!(out, "key id: {}", v.key_id)?;
    writeln!(out, "issued at: {} ({})", utc(v.issued_at), v.issued_at)?;
    writeln!(out, "policy: {}", v.policy.name())?;
    writeln!(out, "rules: {}", v.policy.rules().len())?;
    Ok(())
}

/// `policy show BUNDLE`: prints the bundle header and the policy text. The
/// signature is not checked (use [`verify`]).
pub fn show(bundle_path: &Path, out: &mut dyn Write) -> Result<(), PolicyCliError> {
    let bytes = fs::read(bundle_path).map_err(|e| io_err(bundle_path, e))?;
    let b = PolicyBundle::decode(&bytes, DEFAULT_MAX_BUNDLE_LEN).map_err(|e| {
        PolicyCliError::Invalid {
            path: bundle_path.to_path_buf(),
            reason: e.to_string(),
        }
    })?;
    let text = b.policy_text().map_err(|e| PolicyCliError::Invalid {
        path: bundle_path.to_path_buf(),
        reason: e.to_string(),
    })?;
    writeln!(out, "format: {}", b.format)?;
    writeln!(out, "version: {}", b.version)?;
    writeln!(out, "issued at: {} ({})", utc(b.issued_at), b.issued_at)?;
    writeln!(out, "key id: {}", b.key_id)?;
    writeln!(
        out,
        "signature: {} (not verified)",
        hex::encode(&b.signature)
    )?;
    writeln!(out, "policy: {} bytes", b.policy.len())?;
    writeln!(out, "---")?;
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        writeln!(out)?;
    }
    Ok(())
}

/// The site `policy test` decides for: the agent's gateway regions, region
/// catalogue and geography, as an `agent.toml` configures them.
#[derive(Debug)]
pub struct Site {
    /// The configured gateway regions and the built-in rule.
    pub router: crate::plan::Router,
    /// The region catalogue.
    pub catalogue: crate::plan::catalogue::Catalogue,
    /// Site map and GeoIP.
    pub geo: crate::geo::Geo,
    /// The config file it came from, for the output.
    pub path: PathBuf,
}

impl Site {
    /// The site an `agent.toml` describes.
    pub fn from_config(
        cfg: &crate::config::AgentConfig,
        path: &Path,
    ) -> Result<Site, PolicyCliError> {
        let geo = crate::geo::Geo::load(&cfg.geo).map_err(|e| PolicyCliError::Invalid {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Site {
            router: cfg.router(),
            catalogue: cfg.catalogue(),
            geo,
            path: path.to_path_buf(),
        })
    }
}

/// `policy test`: decides one request file as the agent would, with the same
/// decision core, and prints the decision, the rule, the effective tier, the
/// regions in the order they would be tried and the trace.
///
/// The app is identified by an `authorization: Bearer KEY` header; the
/// subject's country comes from `x-residency-subject-country` only if that app
/// is trusted for it. With a `site` (`--config agent.toml`) the candidates are
/// the agent's gateway regions and the client address is located as the
/// agent locates it (trusted proxies, site map, GeoIP, the site's country);
/// without one, every region the policy knows is a candidate and the client
/// address is not located.
pub fn test(
    policy_path: &Path,
    request_json_path: &Path,
    client_ip: Option<IpAddr>,
    headers: &[(String, String)],
    site: Option<&Site>,
    classifier: &crate::classify::Classifier,
    out: &mut dyn Write,
) -> Result<(), PolicyCliError> {
    use crate::plan::{self, Env, Facts, InForce};
    let text = read_text(policy_path)?;
    let policy = match lint_text(&text) {
        Ok(p) => p,
        Err(errors) => return Err(report(policy_path, &errors, out)?),
    };
    let body = fs::read(request_json_path).map_err(|e| io_err(request_json_path, e))?;
    let invalid = |reason: String| PolicyCliError::Invalid {
        path: request_json_path.to_path_buf(),
        reason,
    };
    let pick = |names: &[&str]| -> Vec<(String, String)> {
        headers
            .iter()
            .filter(|(k, _)| names.iter().any(|n| k.eq_ignore_ascii_case(n)))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect()
    };
    let forwarded = pick(crate::gateway::upstream::FORWARD_REQUEST_HEADERS);
    let decision_headers = pick(&plan::DECISION_HEADERS);
    let pairs = crate::ingress::read::header_pairs(&forwarded);
    let classified = classifier
        .scan_request_with_headers(&body, &pairs, policy.unscannable_tier())
        .map_err(|e| invalid(e.to_string()))?;
    let probe = crate::ingress::read::probe(&body).map_err(|e| invalid(e.message))?;

    // Without a site every region the policy knows is a candidate, in the
    // policy's order, and the client is not located.
    let bare;
    let place = match site {
        Some(s) => s,
        None => {
            let regions = policy.known_regions();
            let Some(first) = regions.first().cloned() else {
                return Err(invalid("the policy knows no region".into()));
            };
            bare = Site {
                router: crate::plan::Router::new(first, Vec::new(), regions),
                catalogue: crate::plan::catalogue::Catalogue::default(),
                geo: crate::geo::Geo::empty(),
                path: PathBuf::new(),
            };
            &bare
        }
    };
    let client = match (site, client_ip) {
        (Some(s), Some(ip)) => Some(
            s.geo.client_addr(
                ip,
                headers
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case("x-forwarded-for"))
                    .map(|(_, v)| v.as_str()),
            ),
        ),
        _ => None,
    };
    let env = Env {
        policy: Some(InForce {
            policy: &policy,
            version: None,
        }),
        router: &place.router,
        catalogue: &place.catalogue,
        geo: &place.geo,
        pins: None,
        pin_by_api_key: false,
    };
    let facts = Facts {
        classification: &classified,
        model: probe.model(),
        user: probe.user(),
        conversation: None,
        headers: &decision_headers,
        client,
        now: std::time::Instant::now(),
        explain: true,
        objects: &[],
    };
    let mut redaction = None;
    let (decided, allow, regions, trace, notes, deny) = match plan::plan(&facts, &env) {
        Ok(p) => {
            let regions = p.regions();
            redaction = p.redact.clone().map(|r| (r, p.decided.tier));
            (p.decided, p.allow, regions, p.trace, p.notes, None)
        }
        Err(r) => {
            let r = *r;
            let deny = match r.why {
                plan::Why::Denied { reason } => Some(reason),
                plan::Why::NoPolicy => Some("no valid policy".to_owned()),
                plan::Why::NoRegion => None,
                plan::Why::ObjectElsewhere { .. } => None,
            };
            (r.decided, r.allow, Vec::new(), r.trace, r.notes, deny)
        }
    };

    if let Some((r, tier)) = &redaction {
        let kinds: Vec<&str> = r.kinds.iter().map(|k| k.as_str()).collect();
        writeln!(
            out,
            "decision: redact [{}] as {}, then send the redacted request to {}",
            kinds.join(", "),
            r.placeholder,
            allow.as_ref().map(|a| a.describe()).unwrap_or_default()
        )?;
        // What the agent would send: the same redaction, classified again.
        let outcome = crate::redact::PlaceholderStyle::parse(&r.placeholder)
            .map_err(|e| e.to_string())
            .and_then(|style| {
                let mut table = crate::redact::Placeholders::new(style, 256);
                crate::redact::redact_json(&body, classifier, &r.kinds, &mut table)
                    .map_err(|e| e.to_string())
            })
            .and_then(|done| {
                let again = classifier
                    .scan_request_with_headers(&done.body, &pairs, policy.unscannable_tier())
                    .map_err(|e| e.to_string())?;
                Ok((done, again))
            });
        match outcome {
            Ok((done, again)) => {
                let replaced: Vec<String> = done
                    .counts
                    .iter()
                    .map(|(k, n)| format!("{k}={n}"))
                    .collect();
                writeln!(
                    out,
                    "redacted: [{}] replaced; the redacted request is {}",
                    replaced.join(", "),
                    again.tier
                )?;
                if again.tier >= *tier {
                    writeln!(
                        out,
                        "refused (HTTP 451 redaction_failed): still {} after redaction ({})",
                        again.tier,
                        again.summary()
                    )?;
                }
            }
            Err(e) => writeln!(out, "refused (HTTP 451 redaction_failed): {e}")?,
        }
    }
    match (&deny, &allow) {
        (Some(reason), _) => writeln!(out, "decision: deny (HTTP 451): {reason}")?,
        (None, _) if redaction.is_some() => {
            let names: Vec<&str> = regions.iter().map(|r| r.as_str()).collect();
            writeln!(
                out,
                "allowed regions for the redacted request: {}",
                names.join(", ")
            )?;
        }
        (None, allow) => {
            let set = allow.as_ref().map(|a| a.describe()).unwrap_or_default();
            writeln!(out, "decision: allow {set}")?;
            let names: Vec<&str> = regions.iter().map(|r| r.as_str()).collect();
            writeln!(
                out,
                "allowed regions (preference order): {}",
                if names.is_empty() {
                    "none (the agent refuses with 503 no_compliant_route)".to_owned()
                } else {
                    names.join(", ")
                }
            )?;
        }
    }
    writeln!(out, "rule: {}", decided.rule)?;
    writeln!(out, "effective tier: {}", decided.tier)?;
    let entities: Vec<&str> = classified.counts.iter().map(|(t, _)| t.as_str()).collect();
    writeln!(
        out,
        "classified: tier {}, entities [{}]",
        decided.classified,
        entities.join(", ")
    )?;
    writeln!(
        out,
        "app: {}",
        match (&decided.app, plan::bearer(&decision_headers)) {
            (Some(a), _) => format!("{a} (by API key)"),
            (None, Some(_)) => "none (bearer key matches no [[app]])".into(),
            (None, None) => "none (no bearer key)".into(),
        }
    )?;
    writeln!(
        out,
        "model: {}",
        decided.model.as_deref().unwrap_or("(none)")
    )?;
    if !classified.unscannable.is_empty() {
        writeln!(
            out,
            "unscannable content: yes (counts as {})",
            policy.unscannable_tier()
        )?;
    }
    match decided.subject_country {
        Some(c) => writeln!(
            out,
            "subject country: {c} (from {})",
            decided.country_source.as_str()
        )?,
        None => writeln!(out, "subject country: unknown")?,
    }
    match (client_ip, site) {
        (Some(ip), Some(s)) => writeln!(
            out,
            "client ip: {ip} (located as {} configures it{})",
            s.path.display(),
            match client {
                Some(c) if c != ip => format!(", behind a trusted proxy: {c}"),
                _ => String::new(),
            }
        )?,
        (Some(ip), None) => writeln!(out, "client ip: {ip} (geography not resolved)")?,
        (None, _) => writeln!(out, "client ip: (none given)")?,
    }
    for note in &notes {
        writeln!(out, "note: {note}")?;
    }
    writeln!(out, "trace:")?;
    for line in &trace {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

/// Prints lint errors as `FILE:LINE:COL: FIELD: REASON` and returns the error
/// to give back.
fn report(
    path: &Path,
    errors: &[PolicyError],
    out: &mut dyn Write,
) -> Result<PolicyCliError, PolicyCliError> {
    for e in errors {
        writeln!(
            out,
            "{}:{}:{}: {}: {}",
            path.display(),
            e.line,
            e.column,
            e.field,
            e.reason
        )?;
    }
    Ok(PolicyCliError::Invalid {
        path: path.to_path_buf(),
        reason: format!(
            "{} error{} in policy",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" }
        ),
    })
}

fn io_err(path: &Path, source: io::Error) -> PolicyCliError {
    PolicyCliError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_text(path: &Path) -> Result<String, PolicyCliError> {
    let bytes = fs::read(path).map_err(|e| io_err(path, e))?;
    String::from_utf8(bytes).map_err(|_| PolicyCliError::Invalid {
        path: path.to_path_buf(),
        reason: "not UTF-8 text".into(),
    })
}

/// Creates a file that must not exist yet, with the given Unix mode.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PolicyCliError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).map_err(|e| io_err(path, e))?;
    f.write_all(bytes).map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
fn utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::App;

    fn run(
        f: impl FnOnce(&mut Vec<u8>) -> Result<(), PolicyCliError>,
    ) -> (String, Result<(), PolicyCliError>) {
        let mut out = Vec::new();
        let r = f(&mut out);
        (String::from_utf8(out).unwrap(), r)
    }

    #[test]
    fn policy_test_explains_a_redaction_and_its_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("p.toml"),
            r#"name = "r"
[[rule]]
name = "gpt5-redacted"
[rule.match]
tier = ["restricted", "confidential"]
model = ["gpt-5*"]
[rule.redact]
entities = ["aadhaar", "aadhaar_vid", "payment_card", "bank_account", "upi_id", "abha",
            "pan", "passport", "voter_id", "driving_licence", "phone", "email"]
regions = ["aws:us-east-1"]
[[rule]]
name = "rest"
[rule.allow]
jurisdictions = ["IN"]
"#,
        )
        .unwrap();
        let c = crate::classify::Classifier::new();
        let ask = |body: &str| {
            std::fs::write(d.join("req.json"), body).unwrap();
            let (o, r) = run(|out| {
                test(
                    &d.join("p.toml"),
                    &d.join("req.json"),
                    None,
                    &[],
                    None,
                    &c,
                    out,
                )
            });
            r.unwrap();
            o
        };
        let o = ask(
            r#"{"model":"gpt-5","messages":[{"role":"user","content":"PAN ABCPE1234F, Aadhaar 2345 6789 0124"}]}"#,
        );
        assert!(o.contains("rule: gpt5-redacted"), "{o}");
        assert!(o.contains("decision: redact [aadhaar, aadhaar_vid, payment_card, bank_account, upi_id, abha, pan, passport, voter_id, driving_licence, phone, email] as <TYPE_N>"), "{o}");
        assert!(
            o.contains("redacted: [aadhaar=1, pan=1] replaced; the redacted request is public"),
            "{o}"
        );
        assert!(o.contains("aws:us-east-1"), "{o}");
        assert!(!o.contains("refused"), "{o}");
        assert!(!o.contains("ABCPE1234F") && !o.contains("2345"), "{o}");
        // Split across two text parts, the value is not replaced: the agent
        // would refuse it, and `policy test` says so.
        let o = ask(
            r#"{"model":"gpt-5","messages":[{"role":"user","content":[{"type":"text","text":"Aadhaar 2345 6789"},{"type":"text","text":" 0124"}]}]}"#,
        );
        assert!(
            o.contains("refused (HTTP 451 redaction_failed): still restricted after redaction"),
            "{o}"
        );
    }

    #[test]
    fn utc_formats_known_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_790_000_000), "2026-09-21T14:13:20Z");
    }

    #[test]
    fn keys_sign_verify_show_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (o, r) = run(|out| keys_gen(d, out));
        r.unwrap();
        assert!(o.contains("key id "));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(d.join(SECRET_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A second run must not overwrite the key.
        let (_, r) = run(|out| keys_gen(d, out));
        assert!(r.unwrap_err().is_invalid_input());

        let policy = d.join("p.toml");
        fs::write(&policy, crate::policy::BASELINE_TEXT).unwrap();
        let bundle = d.join("p.bundle");
        let (o, r) = run(|out| {
            sign(
                &policy,
                &d.join(SECRET_KEY_FILE),
                7,
                &bundle,
                1_790_000_000,
                out,
            )
        });
        r.unwrap();
        assert!(o.contains("version 7"), "{o}");

        let (o, r) = run(|out| verify(&bundle, &[d.join(PUBLIC_KEY_FILE)], out));
        r.unwrap();
        assert!(o.contains("version: 7\n"), "{o}");
        assert!(o.contains("rules: 3\n"), "{o}");
        assert!(o.contains("issued at: 2026-09-21T14:13:20Z"), "{o}");

        let (o, r) = run(|out| show(&bundle, out));
        r.unwrap();
        assert!(
            o.contains("version: 7\n") && o.contains("restricted-stays-in-india"),
            "{o}"
        );

        // A different key refuses the bundle.
        let other = d.join("other");
        fs::create_dir(&other).unwrap();
        run(|out| keys_gen(&other, out)).1.unwrap();
        let (_, r) = run(|out| verify(&bundle, &[other.join(PUBLIC_KEY_FILE)], out));
        let e = r.unwrap_err();
        assert!(e.is_invalid_input());
        assert!(e.to_string().contains("unknown key id"), "{e}");

        // A truncated bundle is refused as such, naming the file.
        let bytes = fs::read(&bundle).unwrap();
        fs::write(&bundle, &bytes[..bytes.len() - 10]).unwrap();
        let (_, r) = run(|out| verify(&bundle, &[d.join(PUBLIC_KEY_FILE)], out));
        let e = r.unwrap_err().to_string();
        assert!(e.contains("p.bundle") && e.contains("truncated"), "{e}");

        // Missing file: an I/O error.
        let (_, r) = run(|out| show(&d.join("nope"), out));
        assert_eq!(r.unwrap_err().exit_code(), 74);
    }

    #[test]
    fn lint_prints_file_line_col_field_reason() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.toml");
        fs::write(
            &p,
            "[[rule]]\nname = \"r\"\n[rule.allow]\nregions = [\"aws:ap-south-1\", \"aws:mars-1\"]\n",
        )
        .unwrap();
        let (o, r) = run(|out| lint(&p, out));
        assert_eq!(r.unwrap_err().exit_code(), 65);
        assert_eq!(
            o,
            format!(
                "{}:4:30: rule[0].allow.regions[1]: unknown region id aws:mars-1: not in the built-in catalogue and not defined by a [[region]] entry\n",
                p.display()
            )
        );
        fs::write(&p, crate::policy::BASELINE_TEXT).unwrap();
        let (o, r) = run(|out| lint(&p, out));
        r.unwrap();
        assert_eq!(o, "ok: 3 rules\n");
        // sign refuses an invalid policy and writes no bundle.
        fs::write(&p, "[[rule]]\nname = \"r\"\n[rule.deny]\n").unwrap();
        let key = dir.path().join("k");
        fs::write(&key, PolicySigningKey::from_seed(&[1; 32]).to_pem()).unwrap();
        let b = dir.path().join("b");
        let (o, r) = run(|out| sign(&p, &key, 1, &b, 0, out));
        assert!(r.unwrap_err().is_invalid_input());
        assert!(o.contains("rule[0].deny.reason"), "{o}");
        assert!(!b.exists());
    }

    #[test]
    fn test_command_uses_trusted_headers_only_from_trusted_apps() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("p.toml");
        fs::write(
            &policy,
            format!(
                "[[app]]\nname = \"loans\"\napi_key_sha256 = [\"{}\"]\ntrusted_headers = [\"x-residency-tier\"]\n\n\
                 [[rule]]\nname = \"restricted\"\n[rule.match]\ntier = [\"restricted\"]\n[rule.allow]\njurisdictions = [\"IN\"]\n\n\
                 [[rule]]\nname = \"rest\"\n[rule.allow]\njurisdictions = [\"*\"]\n",
                App::key_hash_hex("sk-loans")
            ),
        )
        .unwrap();
        let req = dir.path().join("req.json");
        fs::write(
            &req,
            br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        let classifier = crate::classify::Classifier::new();
        let h = |k: &str, v: &str| (k.to_owned(), v.to_owned());

        let headers = [
            h("Authorization", "Bearer sk-loans"),
            h("X-Residency-Tier", "restricted"),
        ];
        let (o, r) = run(|out| {
            test(
                &policy,
                &req,
                Some("10.1.2.3".parse().unwrap()),
                &headers,
                None,
                &classifier,
                out,
            )
        });
        r.unwrap();
        assert!(o.contains("decision: allow jurisdictions [IN]\n"), "{o}");
        assert!(
            o.contains("rule: restricted\n") && o.contains("effective tier: restricted\n"),
            "{o}"
        );
        assert!(o.contains("app: loans (by API key)"), "{o}");
        assert!(
            o.contains("client ip: 10.1.2.3 (geography not resolved)"),
            "{o}"
        );
        assert!(
            o.contains("allowed regions (preference order): aws:ap-south-1,"),
            "{o}"
        );
        assert!(!o.contains("us-east-1"), "{o}");

        // An image part counts as the policy's unscannable tier (restricted).
        let img = dir.path().join("img.json");
        fs::write(
            &img,
            br#"{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:,"}}]}]}"#,
        )
        .unwrap();
        let (o, r) = run(|out| test(&policy, &img, None, &[], None, &classifier, out));
        r.unwrap();
        assert!(o.contains("effective tier: restricted\n"), "{o}");
        assert!(o.contains("unscannable content: yes"), "{o}");

        // The same header from an unknown key is ignored.
        let headers = [
            h("Authorization", "Bearer sk-other"),
            h("X-Residency-Tier", "restricted"),
        ];
        let (o, r) = run(|out| test(&policy, &req, None, &headers, None, &classifier, out));
        r.unwrap();
        assert!(
            o.contains("rule: rest\n") && o.contains("effective tier: public\n"),
            "{o}"
        );
        assert!(o.contains("note: ignored x-residency-tier"), "{o}");
    }
}
