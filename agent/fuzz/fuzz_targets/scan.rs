//! Fuzz target: the scanner and the request walker never panic on arbitrary bytes, and
//! every reported span is a non-empty, sorted, non-overlapping range on char boundaries.

#![no_main]

use libfuzzer_sys::fuzz_target;
use residency_agent::classify::{tier_of, Classifier, Tier};
use std::sync::OnceLock;

static CLASSIFIER: OnceLock<Classifier> = OnceLock::new();

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
    let r = c.scan_request(data, Tier::Confidential);
    assert!(r.tier >= tier_of(&[]));
    if !r.unscannable.is_empty() {
        assert!(r.tier >= Tier::Confidential);
    }
    assert!(r.counts.windows(2).all(|w| w[0].0 < w[1].0));
});
