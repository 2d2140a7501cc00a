//! Context words near a number: they decide what an ambiguous number is (a 16-digit
//! card or Aadhaar VID, a `91`-prefixed mobile or an Aadhaar) and enable the types that
//! need them (bank accounts, bare 14-digit ABHA numbers, lowercase PAN, UPI ids with an
//! unknown handle). English words match ASCII case-insensitively at a word start, where
//! a word also starts at a camel-case hump (`acctNumber`) or after `_`; Hindi words
//! match as written.
//!
//! Besides the words around a value, a *label* can give context: the JSON key a string
//! belongs to, or the header of the table column a cell is in ([`super::table`]). And
//! the word right before a value can name it as something else ([`label_before`]): an
//! order or invoice number is not a phone, a dotted quad after `version` is not an IP.

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
    /// PAN: enables a lowercase PAN.
    Pan,
    /// UPI, VPA, a payment app: enables a `handle@psp` with an unlisted handle.
    Upi,
    /// A cloud provider's account or project: its id is not a bank account. Counted
    /// only before a value (or in its label).
    Cloud,
}

impl Cue {
    const COUNT: usize = 10;

    fn index(self) -> usize {
        self as usize
    }
}

/// Bytes looked at before a span and after it.
const BEFORE: usize = 48;
const AFTER: usize = 32;
/// Words after a span count a little less than words before it.
const AFTER_PENALTY: usize = 8;
/// The distance a label's words count at: weaker than a word in the same sentence.
pub(crate) const LABEL_DISTANCE: usize = 40;

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
    ("mobno", Cue::Phone),
    ("phone", Cue::Phone),
    ("phoneno", Cue::Phone),
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
    ("adhar", Cue::Aadhaar),
    ("aadhaarno", Cue::Aadhaar),
    ("uid", Cue::Aadhaar),
    ("uidai", Cue::Aadhaar),
    ("आधार", Cue::Aadhaar),
    ("account", Cue::Account),
    ("accountno", Cue::Account),
    ("a/c", Cue::Account),
    ("acct", Cue::Account),
    ("acctno", Cue::Account),
    ("acc", Cue::Account),
    ("accno", Cue::Account),
    ("acno", Cue::Account),
    ("acc no", Cue::Account),
    ("ac no", Cue::Account),
    ("iban", Cue::Account),
    ("khata", Cue::Account),
    ("khaata", Cue::Account),
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
    ("pan", Cue::Pan),
    ("panno", Cue::Pan),
    ("permanent account", Cue::Pan),
    ("income tax", Cue::Pan),
    ("पैन", Cue::Pan),
    ("upi", Cue::Upi),
    ("vpa", Cue::Upi),
    ("gpay", Cue::Upi),
    ("google pay", Cue::Upi),
    ("phonepe", Cue::Upi),
    ("phone pe", Cue::Upi),
    ("paytm", Cue::Upi),
    ("bhim", Cue::Upi),
    ("यूपीआई", Cue::Upi),
    ("aws", Cue::Cloud),
    ("amazon web services", Cue::Cloud),
    ("azure", Cue::Cloud),
    ("gcp", Cue::Cloud),
    ("google cloud", Cue::Cloud),
    ("project id", Cue::Cloud),
    ("project number", Cue::Cloud),
    ("subscription id", Cue::Cloud),
    ("tenant id", Cue::Cloud),
    ("arn", Cue::Cloud),
];

/// What the word right before a value names it as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Label {
    /// A document or reference number (order, invoice, UTR, AWB, ticket, id, ...).
    Reference,
    /// A landline, office, telephone or fax number.
    Landline,
    /// A mobile or phone number.
    Mobile,
    /// A version or build number.
    Version,
}

/// Words that, right before a number, name it as a reference, not a phone.
const REFERENCE_WORDS: &[&str] = &[
    "admission",
    "application",
    "applicationid",
    "awb",
    "batch",
    "bill",
    "booking",
    "case",
    "certificate",
    "challan",
    "cheque",
    "chq",
    "cif",
    "claim",
    "complaint",
    "consignment",
    "crn",
    "docket",
    "enrollment",
    "enrolment",
    "file",
    "folio",
    "form",
    "id",
    "inv",
    "invoice",
    "job",
    "loan",
    "lot",
    "member",
    "membership",
    "ord",
    "order",
    "orderid",
    "pnr",
    "policy",
    "receipt",
    "ref",
    "reference",
    "registration",
    "req",
    "request",
    "roll",
    "serial",
    "shipment",
    "sku",
    "sr",
    "srn",
    "ticket",
    "tkt",
    "tracking",
    "transaction",
    "trxn",
    "txn",
    "txnid",
    "uan",
    "utr",
    "voucher",
];

/// Words that, right before a number, name it as a landline.
const LANDLINE_WORDS: &[&str] = &[
    "board", "ext", "fax", "landline", "off", "office", "std", "tel", "telefax",
];

/// Words that name a mobile.
const MOBILE_WORDS: &[&str] = &[
    "call", "cell", "contact", "mob", "mobile", "phone", "sms", "whatsapp",
];

/// Words that name a version.
const VERSION_WORDS: &[&str] = &["build", "firmware", "release", "v", "ver", "version"];

/// Words skipped between a label and its value (`Order No.`, `UTR number:`).
const FILLER_WORDS: &[&str] = &["no", "nos", "nr", "num", "number"];

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

    /// Adds the cues of `other` (the nearer word of each cue wins).
    pub(crate) fn merge(&mut self, other: &Cues) {
        for (i, d) in other.dist.iter().enumerate() {
            if let Some(d) = *d {
                let slot = &mut self.dist[i];
                if slot.is_none_or(|old| d < old) {
                    *slot = Some(d);
                }
            }
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
    /// The automaton is built once per process and shared (cloning it is cheap), so a
    /// classifier costs nothing to make.
    pub(crate) fn new() -> Self {
        static SHARED: std::sync::OnceLock<ContextWords> = std::sync::OnceLock::new();
        SHARED
            .get_or_init(|| {
                let ac = AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(WORDS.iter().map(|(w, _)| w))
                    // The word list is a small constant; building it cannot fail (covered
                    // by tests).
                    .expect("context word automaton builds");
                ContextWords { ac }
            })
            .clone()
    }

    /// Context words around `text[start..end]`, looking no further back than `lo` and
    /// no further on than `hi` (a table row's line).
    pub(crate) fn around(
        &self,
        text: &str,
        start: usize,
        end: usize,
        lo: usize,
        hi: usize,
    ) -> Cues {
        let mut cues = Cues::default();
        let b = text.as_bytes();
        let lo = floor_boundary(text, start.saturating_sub(BEFORE).max(lo.min(start)));
        for m in self.ac.find_iter(&b[lo..start]) {
            let (ms, me) = (lo + m.start(), lo + m.end());
            if word_bounded(b, ms, me) {
                cues.note(WORDS[m.pattern().as_usize()].1, start - me);
            }
        }
        let hi = ceil_boundary(text, (end + AFTER).min(b.len()).min(hi.max(end)));
        for m in self.ac.find_iter(&b[end..hi]) {
            let (ms, me) = (end + m.start(), end + m.end());
            let cue = WORDS[m.pattern().as_usize()].1;
            if cue != Cue::Cloud && word_bounded(b, ms, me) {
                cues.note(cue, ms - end + AFTER_PENALTY);
            }
        }
        cues
    }

    /// Every context word in a label (a JSON key, a column header), all at `distance`.
    pub(crate) fn in_label(&self, label: &str, distance: usize) -> Cues {
        let mut cues = Cues::default();
        let b = label.as_bytes();
        for m in self.ac.find_iter(b) {
            if word_bounded(b, m.start(), m.end()) {
                cues.note(WORDS[m.pattern().as_usize()].1, distance);
            }
        }
        cues
    }
}

/// What the word right before `text[..start]` names the value as: skips punctuation
/// and filler (`No.`, `number`, `#`, `:`) and reads one word, which may end at a camel
/// hump (`orderId`) or an underscore (`order_id`).
pub(crate) fn label_before(text: &str, start: usize) -> Option<Label> {
    let b = text.as_bytes();
    let table = label_words();
    let mut i = start;
    for _ in 0..3 {
        i = skip_label_punct(b, i);
        let (ws, word) = ascii_word_before(b, i)?;
        let key = word_key(word);
        let k = table.binary_search_by_key(&key, |&(k, _)| k).ok()?;
        match table[k].1 {
            LabelWord::Filler => i = ws,
            LabelWord::Names(label) => return Some(label),
        }
    }
    None
}

/// What a word in the label tables is.
#[derive(Debug, Clone, Copy)]
enum LabelWord {
    /// Skipped between a label and its value.
    Filler,
    /// Names the value.
    Names(Label),
}

/// Every label word as a [`word_key`], sorted, built once per process: looking a word
/// up is one binary search over integers, not string comparisons.
fn label_words() -> &'static [(u128, LabelWord)] {
    static TABLE: std::sync::OnceLock<Vec<(u128, LabelWord)>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let lists: [(&[&str], LabelWord); 5] = [
            (FILLER_WORDS, LabelWord::Filler),
            (REFERENCE_WORDS, LabelWord::Names(Label::Reference)),
            (LANDLINE_WORDS, LabelWord::Names(Label::Landline)),
            (MOBILE_WORDS, LabelWord::Names(Label::Mobile)),
            (VERSION_WORDS, LabelWord::Names(Label::Version)),
        ];
        let mut t: Vec<(u128, LabelWord)> = lists
            .iter()
            .flat_map(|(words, kind)| words.iter().map(|w| (word_key(w.as_bytes()), *kind)))
            .collect();
        t.sort_unstable_by_key(|&(k, _)| k);
        t
    })
}

/// An ASCII word of at most 16 letters, lowercased and packed into an integer.
fn word_key(word: &[u8]) -> u128 {
    word.iter()
        .take(16)
        .fold(0u128, |k, c| (k << 8) | u128::from(c.to_ascii_lowercase()))
}

/// Skips at most a few bytes of label punctuation and spaces before `i`.
fn skip_label_punct(b: &[u8], mut i: usize) -> usize {
    let mut n = 0;
    while i > 0
        && n < 6
        && matches!(
            b[i - 1],
            b' ' | b'\t'
                | b':'
                | b'#'
                | b'='
                | b'-'
                | b'.'
                | b'('
                | b')'
                | b'['
                | b']'
                | b'"'
                | b'\''
                | b'*'
                | b'_'
                | b'|'
                | b'/'
                | b'>'
        )
    {
        i -= 1;
        n += 1;
    }
    i
}

/// The ASCII word (letters only, at most 16) ending at `i`, and where it starts. A
/// lowercase letter before an uppercase one ends the word there (`invoiceNo` gives
/// `No`, then `invoice`).
fn ascii_word_before(b: &[u8], i: usize) -> Option<(usize, &[u8])> {
    let mut s = i;
    while s > 0 && b[s - 1].is_ascii_alphabetic() {
        if s < i && b[s].is_ascii_uppercase() && b[s - 1].is_ascii_lowercase() {
            break;
        }
        s -= 1;
    }
    if s == i || i - s > 16 {
        return None;
    }
    // Glued to a digit or a non-ASCII letter: not a label word.
    if s > 0 && (b[s - 1].is_ascii_digit() || b[s - 1] >= 0x80) {
        return None;
    }
    Some((s, &b[s..i]))
}

/// English words must start a word; short ones must also end one ("uid" is not in
/// "fluid", "vid" not in "video", but "account" matches "accounts"). A camel-case hump
/// is a word boundary on either side (`acctNumber`, `customerAccount`).
fn word_bounded(b: &[u8], ms: usize, me: usize) -> bool {
    if !b[ms].is_ascii() {
        return true;
    }
    let hump = |i: usize| b[i - 1].is_ascii_lowercase() && b[i].is_ascii_uppercase();
    let before_ok = ms == 0 || !b[ms - 1].is_ascii_alphabetic() || hump(ms);
    let after_ok = me - ms >= 5 || me >= b.len() || !b[me].is_ascii_alphabetic() || hump(me);
    before_ok && after_ok
}

/// The char boundary at or before `i`.
pub(crate) fn floor_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The char boundary at or after `i`.
pub(crate) fn ceil_boundary(text: &str, mut i: usize) -> usize {
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
        ContextWords::new().around(text, start, start + needle.len(), 0, text.len())
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

#[cfg(test)]
mod label_tests {
    use super::*;

    #[test]
    fn label_words_are_short_and_in_one_list_each() {
        let t = label_words();
        assert!(
            t.windows(2).all(|w| w[0].0 < w[1].0),
            "a word is in two lists"
        );
        for list in [
            REFERENCE_WORDS,
            LANDLINE_WORDS,
            MOBILE_WORDS,
            VERSION_WORDS,
            FILLER_WORDS,
        ] {
            assert!(list
                .iter()
                .all(|w| w.len() <= 16 && w.bytes().all(|c| c.is_ascii_lowercase())));
        }
    }

    #[test]
    fn labels_right_before_a_value() {
        let at = |t: &str| label_before(t, t.len());
        assert_eq!(at("Order ID: "), Some(Label::Reference));
        assert_eq!(at("Invoice No. "), Some(Label::Reference));
        assert_eq!(at("UTR number "), Some(Label::Reference));
        assert_eq!(at("invoiceNo="), Some(Label::Reference));
        assert_eq!(at("order_id\": \""), Some(Label::Reference));
        assert_eq!(at("Tel: "), Some(Label::Landline));
        assert_eq!(at("Mobile No. "), Some(Label::Mobile));
        assert_eq!(at("version "), Some(Label::Version));
        assert_eq!(at("please call me on "), None);
        assert_eq!(at("x"), None);
    }

    #[test]
    fn camel_case_and_snake_case_field_names_are_context() {
        let c = ContextWords::new();
        for label in [
            "acctNumber",
            "account_no",
            "a/c-no",
            "ACCOUNT NUMBER:",
            "customerAccountNo",
            "khaata",
        ] {
            assert!(c.in_label(label, 1).get(Cue::Account).is_some(), "{label}");
        }
        assert!(c.in_label("accumulate", 1).get(Cue::Account).is_none());
    }
}
