//! Fuzz target: the scanner and the request walker never panic on arbitrary bytes;
//! every reported span is a non-empty, sorted, non-overlapping range on char
//! boundaries; and hiding a value does not work: inserting Unicode format characters
//! (zero-width space, joiners, soft hyphen, word joiner, BOM) anywhere, or changing
//! the separators between digit groups, never lowers a restricted value's tier.
//! `scan_body` never panics on any content type and body: the input is read as a
//! multipart body, a form, text and binary, and wrapped as a file upload whose
//! tier is never below the tier of the same text scanned alone.

#![no_main]

use libfuzzer_sys::fuzz_target;
use residency_agent::classify::{tier_of, Classifier, EntityType, RequestClassification, Tier};
use std::sync::OnceLock;

static CLASSIFIER: OnceLock<Classifier> = OnceLock::new();

const INVISIBLE: [char; 6] = [
    '\u{200B}', '\u{200C}', '\u{200D}', '\u{00AD}', '\u{2060}', '\u{FEFF}',
];
const SEPARATORS: [&str; 8] = [" ", "-", "\u{A0}", ".", "_", "/", "\u{2013}", "  "];
const BOUNDARY: &str = "fuzzQ7xBoundary";
const FILE_NAMES: [&str; 6] = [
    "notes.txt",
    "batch.jsonl",
    "data.json",
    "table.csv",
    "file.mp3",
    "blob",
];

/// The format characters the scanner drops before matching (as
/// `classify::fold` does): soft hyphen, zero-width and bidi marks, word
/// joiners, variation selectors, BOM, tags.
fn dropped(c: char) -> bool {
    matches!(c as u32,
        0xAD | 0x61C | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064
        | 0x2066..=0x206F | 0xFE00..=0xFE0F | 0xFEFF | 0xE0001 | 0xE0020..=0xE007F)
}

fuzz_target!(|data: &[u8]| {
    let c = CLASSIFIER.get_or_init(Classifier::new);
    let text = String::from_utf8_lossy(data);
    let found = c.scan(&text);
    let mut prev_end = 0;
    for e in &found {
        assert!(e.start < e.end, "empty span {e:?}");
        assert!(e.end <= text.len(), "span past the end {e:?}");
        assert!(
            text.is_char_boundary(e.start) && text.is_char_boundary(e.end),
            "{e:?}"
        );
        assert!(e.start >= prev_end, "unsorted or overlapping {e:?}");
        prev_end = e.end;
    }
    let tier = tier_of(&found);
    // The first byte picks the evasion; it is also part of the text.
    let pick = data.first().copied().unwrap_or(0) as usize;
    let invisible = INVISIBLE[pick % INVISIBLE.len()];
    let hidden: String = text
        .chars()
        .flat_map(|ch| [Some(ch), ch.is_ascii_digit().then_some(invisible)])
        .flatten()
        .collect();
    assert!(
        tier_of(&c.scan(&hidden)) >= tier,
        "format characters lowered the tier"
    );
    // The separators inside a grouped restricted number (Aadhaar, VID, card, ABHA)
    // replaced by another separator the spec allows.
    let sep = SEPARATORS[(pick / INVISIBLE.len()) % SEPARATORS.len()];
    for e in found.iter().filter(|e| {
        matches!(
            e.kind,
            EntityType::Aadhaar
                | EntityType::AadhaarVid
                | EntityType::PaymentCard
                | EntityType::Abha
        )
    }) {
        // Each run of separators between two digit groups (anything that is not a
        // digit: spaces, dashes, ". ", a line break) becomes one `sep`; the spec
        // allows up to three spaces, so a run is not multiplied. Fullwidth and
        // bold digits count as digits.
        let mut inside = String::new();
        let mut in_run = false;
        for ch in text[e.start..e.end].chars() {
            if dropped(ch) {
                // Format characters are ignored by the scanner; dropping them
                // keeps the digit groups as they were.
                continue;
            }
            if !ch.is_numeric() {
                if !in_run {
                    inside.push_str(sep);
                }
                in_run = true;
            } else {
                inside.push(ch);
                in_run = false;
            }
        }
        let swapped = format!("{}{inside}{}", &text[..e.start], &text[e.end..]);
        assert_eq!(
            tier_of(&c.scan(&swapped)),
            Tier::Restricted,
            "a separator change lowered a restricted value's tier"
        );
    }
    if let Ok(r) = c.scan_request(data, Tier::Confidential) {
        if !r.unscannable.is_empty() {
            assert!(r.tier >= Tier::Confidential);
        }
        assert!(r.counts.windows(2).all(|w| w[0].0 < w[1].0));
    }
    check_bodies(c, data, &text, pick);
});

/// `scan_body` over the input as bodies of several content types.
fn check_bodies(c: &Classifier, data: &[u8], text: &str, pick: usize) {
    let multipart = format!("multipart/form-data; boundary={BOUNDARY}");
    for ct in [
        Some(multipart.as_str()),
        Some("application/x-www-form-urlencoded"),
        Some("text/plain; charset=utf-8"),
        Some("application/octet-stream"),
        Some("multipart/form-data; boundary=\"a b\""),
        None,
    ] {
        if let Ok(r) = c.scan_body(ct, data, &[], Tier::Confidential) {
            check(&r, Tier::Confidential);
        }
    }
    // The input as one file of an upload, and as a content type of its own.
    let name = FILE_NAMES[pick % FILE_NAMES.len()];
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let upload = c.scan_body(Some(&multipart), &body, &[], Tier::Internal);
    let own = format!(
        "multipart/form-data; boundary={}",
        text.lines().next().unwrap_or("")
    );
    if let Ok(r) = c.scan_body(Some(&own), data, &[], Tier::Internal) {
        check(&r, Tier::Internal);
    }
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    if contains(data, BOUNDARY.as_bytes()) {
        return;
    }
    let r = match upload {
        Ok(r) => r,
        Err(e) => panic!("a well-formed upload was refused: {e}"),
    };
    check(&r, Tier::Internal);
    // A text file is scanned as the text it is; any other file is unscannable.
    if name == "notes.txt" && !data.contains(&0) {
        if let Ok(t) = std::str::from_utf8(data) {
            assert!(r.tier >= tier_of(&c.scan(t)), "an upload lowered the tier");
        }
    }
}

fn check(r: &RequestClassification, unscannable_tier: Tier) {
    if !r.unscannable.is_empty() {
        assert!(r.tier >= unscannable_tier);
    }
    assert!(r.counts.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(r.counts.iter().all(|(k, _)| r.tier >= k.tier()));
}
