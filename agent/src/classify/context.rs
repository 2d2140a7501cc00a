//! Context words near a number: they decide what an ambiguous number is (a 16-digit
//! card or Aadhaar VID, a `91`-prefixed mobile or an Aadhaar) and enable the types that
//! need them (bank accounts, bare 14-digit ABHA numbers). English words match ASCII
//! case-insensitively at a word start; Hindi words match as written.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// What a context word points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cue {
    Card,
    Vid,
    Phone,
    Aadhaar,
    Account,
    Health,
    /// Landline, toll-free, fax: the number is not a mobile.
    NotMobile,
}

impl Cue {
    const COUNT: usize = 7;

    fn index(self) -> usize {
        self as usize
    }
}

/// Bytes looked at before a span and after it.
const BEFORE: usize = 48;
const AFTER: usize = 32;
/// Words after a span count a little less than words before it.
const AFTER_PENALTY: usize = 8;

const WORDS: &[(&str, Cue)] = &[
    ("card", Cue::Card),
    ("cards", Cue::Card),
    ("rupay", Cue::Card),
    ("visa", Cue::Card),
    ("mastercard", Cue::Card),
    ("amex", Cue::Card),
    ("credit", Cue::Card),
    ("debit", Cue::Card),
    ("cvv", Cue::Card),
    ("कार्ड", Cue::Card),
    ("vid", Cue::Vid),
    ("virtual id", Cue::Vid),
    ("virtual", Cue::Vid),
    ("वीआईडी", Cue::Vid),
    ("वर्चुअल", Cue::Vid),
    ("mobile", Cue::Phone),
    ("mob", Cue::Phone),
    ("phone", Cue::Phone),
    ("ph", Cue::Phone),
    ("cell", Cue::Phone),
    ("whatsapp", Cue::Phone),
    ("call", Cue::Phone),
    ("contact", Cue::Phone),
    ("sms", Cue::Phone),
    ("otp", Cue::Phone),
    ("मोबाइल", Cue::Phone),
    ("मोबाईल", Cue::Phone),
    ("फोन", Cue::Phone),
    ("फ़ोन", Cue::Phone),
    ("aadhaar", Cue::Aadhaar),
    ("aadhar", Cue::Aadhaar),
    ("adhaar", Cue::Aadhaar),
    ("uid", Cue::Aadhaar),
    ("uidai", Cue::Aadhaar),
    ("आधार", Cue::Aadhaar),
    ("account", Cue::Account),
    ("a/c", Cue::Account),
    ("acct", Cue::Account),
    ("acc", Cue::Account),
    ("acc no", Cue::Account),
    ("ac no", Cue::Account),
    ("iban", Cue::Account),
    ("khata", Cue::Account),
    ("खाता", Cue::Account),
    ("खाते", Cue::Account),
    ("abha", Cue::Health),
    ("health", Cue::Health),
    ("abdm", Cue::Health),
    ("ndhm", Cue::Health),
    ("patient", Cue::Health),
    ("hospital", Cue::Health),
    ("आभा", Cue::Health),
    ("स्वास्थ्य", Cue::Health),
    ("landline", Cue::NotMobile),
    ("toll free", Cue::NotMobile),
    ("toll-free", Cue::NotMobile),
    ("tollfree", Cue::NotMobile),
    ("fax", Cue::NotMobile),
    ("std", Cue::NotMobile),
];

/// Prebuilt automaton over [`WORDS`].
#[derive(Debug, Clone)]
pub(crate) struct ContextWords {
    ac: AhoCorasick,
}

/// The distance (bytes) from a span to the nearest word of each cue, if any.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cues {
    dist: [Option<usize>; Cue::COUNT],
}

impl Cues {
    /// Distance to the nearest word for `cue`.
    pub(crate) fn get(&self, cue: Cue) -> Option<usize> {
        self.dist[cue.index()]
    }

    fn note(&mut self, cue: Cue, d: usize) {
        let slot = &mut self.dist[cue.index()];
        if slot.is_none_or(|old| d < old) {
            *slot = Some(d);
        }
    }

    /// Of the given cues, the one whose word is nearest.
    pub(crate) fn nearest(&self, among: &[Cue]) -> Option<Cue> {
        among
            .iter()
            .filter_map(|&c| self.get(c).map(|d| (d, c)))
            .min_by_key(|&(d, _)| d)
            .map(|(_, c)| c)
    }
}

impl ContextWords {
    pub(crate) fn new() -> Self {
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(WORDS.iter().map(|(w, _)| w))
            // The word list is a small constant; building it cannot fail (covered by tests).
            .expect("context word automaton builds");
        ContextWords { ac }
    }

    /// Context words around `text[start..end]`.
    pub(crate) fn around(&self, text: &str, start: usize, end: usize) -> Cues {
        let mut cues = Cues::default();
        let b = text.as_bytes();
        let lo = floor_boundary(text, start.saturating_sub(BEFORE));
        for m in self.ac.find_iter(&b[lo..start]) {
            let (ms, me) = (lo + m.start(), lo + m.end());
            if word_bounded(b, ms, me) {
                cues.note(WORDS[m.pattern().as_usize()].1, start - me);
            }
        }
        let hi = ceil_boundary(text, (end + AFTER).min(b.len()));
        for m in self.ac.find_iter(&b[end..hi]) {
            let (ms, me) = (end + m.start(), end + m.end());
            if word_bounded(b, ms, me) {
                cues.note(WORDS[m.pattern().as_usize()].1, ms - end + AFTER_PENALTY);
            }
        }
        cues
    }
}

/// English words must start a word; short ones must also end one ("uid" is not in
/// "fluid", "vid" not in "video", but "account" matches "accounts").
fn word_bounded(b: &[u8], ms: usize, me: usize) -> bool {
    if !b[ms].is_ascii() {
        return true;
    }
    let before_ok = ms == 0 || !b[ms - 1].is_ascii_alphabetic();
    let after_ok = me - ms >= 5 || me >= b.len() || !b[me].is_ascii_alphabetic();
    before_ok && after_ok
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(text: &str, mut i: usize) -> usize {
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cues(text: &str, needle: &str) -> Cues {
        let start = text.find(needle).unwrap();
        ContextWords::new().around(text, start, start + needle.len())
    }

    #[test]
    fn nearest_word_wins() {
        let c = cues("Aadhaar 1 and card 2345 here", "2345");
        assert_eq!(c.nearest(&[Cue::Card, Cue::Aadhaar]), Some(Cue::Card));
        let c = cues("मेरा आधार नंबर 2345 है", "2345");
        assert_eq!(c.nearest(&[Cue::Card, Cue::Aadhaar]), Some(Cue::Aadhaar));
        let c = cues("2345 is my VID", "2345");
        assert_eq!(c.nearest(&[Cue::Card, Cue::Vid]), Some(Cue::Vid));
    }

    #[test]
    fn words_need_boundaries() {
        let c = cues("the fluid video provides 2345", "2345");
        assert_eq!(c.nearest(&[Cue::Aadhaar, Cue::Vid]), None);
        let c = cues("ACCOUNTS: 2345", "2345");
        assert!(c.get(Cue::Account).is_some());
        let c = cues(
            "far away account word then a long stretch of filler text, more filler 2345",
            "2345",
        );
        assert!(c.get(Cue::Account).is_none());
    }
}
