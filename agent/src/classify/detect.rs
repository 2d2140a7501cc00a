//! The text scanner. One pass over the bytes finds triggers (a digit of any supported
//! script, or `@`); only around a trigger does it build a short normalised view of the
//! word(s) there and run the entity matchers, validate check digits and consult context
//! words. Text without digits or `@` costs one table lookup per byte and allocates
//! nothing.
//!
//! Text with invisible or look-alike characters is first folded ([`super::fold`]) and
//! the spans mapped back. Digit groups may be separated as the spec allows (up to three
//! spaces, one line break, or one of `- . _ /`; see [`sep_run_at`]). Only letters and
//! digits glue: any other character next to a value is a boundary.
//!
//! Overlaps are resolved at the end: the longer span wins. Ambiguous numbers (same span,
//! several valid types) are decided by the nearest context word, else by tier, else by a
//! fixed priority (payment card before Aadhaar VID). Context comes from the words
//! around a value, the label it was given (a JSON key), and the header of the table
//! column it is in.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::context::{label_before, ContextWords, Cue, Cues, Label, LABEL_DISTANCE};
use super::digits::{
    char_at, char_before, digit_at, digit_before, is_group_sep, is_mask_char, is_word_char,
    may_start_digit,
};
use super::fold::{fold, folds_at, may_fold};
use super::table::TableCache;
use super::validators::{
    card_prefix_valid, gst_state_valid, gstin_check_valid, is_state_code, luhn_valid,
    pan_holder_type_valid, verhoeff_valid,
};
use super::{Entity, EntityType};

/// Units (letters, digits, separator runs) looked at from one start position:
/// enough for a 19-digit card in groups or a phone with its prefix.
const MAX_UNITS: usize = 40;

/// Separator units: one space or one hyphen (any grouping may use it), any other run
/// the spec allows between the groups of a standard grouping, and such a run with a
/// line break in it.
const SEP: u8 = b' ';
const SEP_WIDE: u8 = b'~';
const SEP_LINE: u8 = b'\n';
/// The longest separator run: three spaces, CR LF, three spaces.
const MAX_SEP_LEN: usize = 8;

/// A published UPI handle (the part after `@`) per line; `#` starts a comment.
const UPI_HANDLES: &str = include_str!("upi_handles.txt");

const T_NONE: u8 = 0;
const T_DIGIT: u8 = 1;
const T_AT: u8 = 2;
const T_LEAD: u8 = 3;
/// A lead byte of a character that may fold (see [`super::fold`]), perhaps a digit.
const T_FOLD: u8 = 4;

/// What each byte means to the main loop.
static TRIGGER: [u8; 256] = {
    let mut t = [T_NONE; 256];
    let mut c = b'0';
    while c <= b'9' {
        t[c as usize] = T_DIGIT;
        c += 1;
    }
    t[b'@' as usize] = T_AT;
    let mut c = 0x80usize;
    while c < 256 {
        // `EF` starts both fullwidth digits and other characters that fold: it is a
        // fold lead, checked for digits too.
        if may_fold(c as u8) {
            t[c] = T_FOLD;
        } else if may_start_digit(c as u8) {
            t[c] = T_LEAD;
        }
        c += 1;
    }
    t
};

/// Finds entities in text. Build once and share (it is `Send + Sync`; wrap in `Arc`).
#[derive(Debug, Clone)]
pub struct Classifier {
    context: ContextWords,
    /// Known UPI handles, lowercase, sorted (parsed once per process).
    upi_handles: &'static [&'static str],
}

/// A normalised view of the text from one start: ASCII letters as they are, digits of
/// any script as ASCII digits, at most one separator in a row; `end[k]` is the byte
/// offset just after unit `k`.
struct Units {
    ch: [u8; MAX_UNITS],
    end: [usize; MAX_UNITS],
    len: usize,
}

/// A matcher over units: how many units the entity takes, if it matches.
type Matcher = fn(&Units) -> Option<usize>;

/// Per-scan bookkeeping: each start position is tried once; the label and table
/// context of the text.
struct ScanState<'l> {
    last_start: Option<usize>,
    v6_end: usize,
    /// The label the text was given (a JSON key), folded.
    label: Option<&'l str>,
    table: TableCache,
}

/// What the context of one value says.
struct Context {
    cues: Cues,
    /// What the word right before it (or its label, or its column header) names it.
    label: Option<Label>,
}

impl ScanState<'_> {
    fn first_try(&mut self, start: usize) -> bool {
        if self.last_start.is_none_or(|l| start > l) {
            self.last_start = Some(start);
            true
        } else {
            false
        }
    }
}

impl Default for Classifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Classifier {
    /// Builds the classifier. The word automaton and the handle list are built on first
    /// use and shared, so this is cheap after the first call.
    pub fn new() -> Self {
        static HANDLES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
        let upi_handles = HANDLES.get_or_init(|| {
            let mut h: Vec<&'static str> = UPI_HANDLES
                .lines()
                .map(|l| l.split('#').next().unwrap_or_default().trim())
                .filter(|l| !l.is_empty())
                .collect();
            h.sort_unstable();
            h.dedup();
            h
        });
        Classifier {
            context: ContextWords::new(),
            upi_handles,
        }
    }

    /// Entities in `text`, sorted by start and non-overlapping.
    pub fn scan(&self, text: &str) -> Vec<Entity> {
        let mut out = Vec::new();
        self.scan_into(text, &mut out);
        out
    }

    /// Appends the entities in `text` to `out` (sorted by start, non-overlapping among
    /// themselves). Allocates nothing when nothing is found in plain text.
    pub fn scan_into(&self, text: &str, out: &mut Vec<Entity>) {
        self.scan_labelled(text, None, out);
    }

    /// Like [`Classifier::scan_into`], for a text that has a label: the JSON key it is
    /// the value of, whose context words apply to it (`"account_no": "..."`).
    pub fn scan_labelled(&self, text: &str, label: Option<&str>, out: &mut Vec<Entity>) {
        let folded_label = label.and_then(fold);
        let label = folded_label.as_ref().map(|f| f.text.as_str()).or(label);
        let base = out.len();
        // Most text has nothing to fold: scan it in place, and only if the scan meets a
        // character that folds, start again on a folded copy.
        if self.scan_plain(text, label, true, out) {
            return;
        }
        out.truncate(base);
        if let Some(f) = fold(text) {
            self.scan_plain(&f.text, label, false, out);
            for e in &mut out[base..] {
                (e.start, e.end) = f.original(e.start, e.end);
            }
        }
    }

    /// The scan proper. With `fold_check`, stops and returns `false` at the first
    /// character that folds (the caller folds the text and scans again).
    fn scan_plain(
        &self,
        text: &str,
        label: Option<&str>,
        fold_check: bool,
        out: &mut Vec<Entity>,
    ) -> bool {
        let base = out.len();
        let b = text.as_bytes();
        let mut st = ScanState {
            last_start: None,
            v6_end: 0,
            label,
            table: TableCache::default(),
        };
        let mut i = 0;
        while i < b.len() {
            match b[i..].iter().position(|&c| TRIGGER[c as usize] != T_NONE) {
                Some(p) => i += p,
                None => break,
            }
            match TRIGGER[b[i] as usize] {
                T_AT => {
                    i = self.email_or_upi(text, i, &mut st, out);
                    continue;
                }
                // Fullwidth digits fold too, so that `１９２.１６８.１.１` is an address.
                T_FOLD if fold_check && folds_at(text, i) => return false,
                T_LEAD | T_FOLD if digit_at(b, i).is_none() => {
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let ws = word_start(b, i);
            let we = word_end(b, i);
            self.word(text, ws, we, &mut st, out);
            i = we.max(i + 1);
        }
        resolve(out, base);
        true
    }

    /// Runs the matchers that can start in or just before the word `text[ws..we]`,
    /// which contains a digit.
    fn word(
        &self,
        text: &str,
        ws: usize,
        we: usize,
        st: &mut ScanState<'_>,
        out: &mut Vec<Entity>,
    ) {
        let b = text.as_bytes();
        if let Some(pws) = state_word_before(text, ws) {
            if st.first_try(pws) {
                self.alnum_at(text, pws, st, out);
            }
        }
        if st.first_try(ws) {
            if b[ws].is_ascii_alphabetic() {
                self.alnum_at(text, ws, st, out);
            } else {
                self.digits_at(text, ws, st, out);
            }
        }
        if ws >= st.v6_end
            && (b.get(we) == Some(&b':') || (ws > 0 && b[ws - 1] == b':'))
            && b[ws..we].iter().all(u8::is_ascii_hexdigit)
        {
            if let Some(end) = ipv6_around(text, ws) {
                push(out, EntityType::IpAddress, ipv6_start(b, ws), end);
                st.v6_end = end;
            }
        }
    }

    /// Matchers for entities that start with a letter.
    fn alnum_at(&self, text: &str, s: usize, st: &mut ScanState<'_>, out: &mut Vec<Entity>) {
        if !start_ok(text, s) {
            return;
        }
        let u = Units::build(text.as_bytes(), s);
        let matchers: [(EntityType, Matcher); 6] = [
            (EntityType::Pan, match_pan),
            (EntityType::Passport, match_passport),
            (EntityType::VoterId, match_voter_id),
            (EntityType::Ifsc, match_ifsc),
            (EntityType::DrivingLicence, match_driving_licence),
            (EntityType::VehicleRegistration, match_vehicle),
        ];
        for (kind, m) in matchers {
            if let Some(n) = m(&u) {
                let e = u.end[n - 1];
                if !end_ok(text, e) {
                    continue;
                }
                // A lowercase PAN only with a PAN word nearby.
                if kind == EntityType::Pan
                    && text.as_bytes()[s].is_ascii_lowercase()
                    && self.context(text, s, e, st).cues.get(Cue::Pan).is_none()
                {
                    continue;
                }
                push(out, kind, s, e);
            }
        }
    }

    /// Matchers for entities that start with a digit: IPv4, GSTIN and the numbers.
    fn digits_at(&self, text: &str, s: usize, st: &mut ScanState<'_>, out: &mut Vec<Entity>) {
        let b = text.as_bytes();
        if let Some(e) = ipv4_at(text, s) {
            // `version 10.0.0.1` is a version, not an address.
            if self.context(text, s, e, st).label != Some(Label::Version) {
                push(out, EntityType::IpAddress, s, e);
            }
            return;
        }
        let plus = s > 0 && b[s - 1] == b'+';
        let start = if plus { s - 1 } else { s };
        if !start_ok(text, start) {
            return;
        }
        let u = Units::build(b, s);
        if let Some(n) = match_gstin(&u) {
            let e = u.end[n - 1];
            if end_ok(text, e) {
                push(out, EntityType::Gstin, s, e);
                return;
            }
        }
        self.number(text, start, plus, &u, st, out);
    }

    /// Digit groups from `u`: tries the longest run of groups first and reports the
    /// first span that is a valid number of some type. Runs of groups that stay on
    /// one line are tried before runs across a line break, so two numbers on
    /// consecutive lines are never read as one.
    fn number(
        &self,
        text: &str,
        start: usize,
        plus: bool,
        u: &Units,
        st: &mut ScanState<'_>,
        out: &mut Vec<Entity>,
    ) {
        // Every type here has at least 9 digits: most numbers in text (years, amounts,
        // counts) stop here, before any bookkeeping.
        let reachable = u.ch[..u.len]
            .iter()
            .take_while(|&&c| c.is_ascii_digit() || is_sep_unit(c))
            .filter(|c| c.is_ascii_digit())
            .count();
        if reachable < 9 {
            return;
        }
        let mut d = [0u8; MAX_UNITS];
        let mut nd = 0;
        // Digits before each separator, and the separator's kind.
        let mut bounds = [0usize; MAX_UNITS];
        let mut seps = [0u8; MAX_UNITS];
        let mut nb = 0;
        // (digits so far, bounds so far, byte end) at the end of each group.
        let mut groups = [(0usize, 0usize, 0usize); MAX_UNITS];
        let mut ng = 0;
        let mut first_line_break = None;
        for k in 0..u.len {
            let c = u.ch[k];
            if c.is_ascii_digit() {
                d[nd] = c - b'0';
                nd += 1;
                if k + 1 == u.len || !u.ch[k + 1].is_ascii_digit() {
                    groups[ng] = (nd, nb, u.end[k]);
                    ng += 1;
                }
            } else if is_sep_unit(c) && k + 1 < u.len && u.ch[k + 1].is_ascii_digit() {
                bounds[nb] = nd;
                seps[nb] = c;
                nb += 1;
                if c == SEP_LINE && first_line_break.is_none() {
                    first_line_break = Some(ng);
                }
            } else {
                break;
            }
        }
        if ng == 0 {
            return;
        }
        // `1234 5678 9012 3456`: a span never starts or ends between two 4-digit groups
        // on one line, so a part of a longer grouped number is not reported on its own.
        let b = text.as_bytes();
        if !plus && groups[0].0 == 4 && four_digit_group_before(b, start) {
            return;
        }
        let one_line = first_line_break.unwrap_or(ng);
        for gi in (0..one_line).rev().chain((one_line..ng).rev()) {
            let (n, nbk, end) = groups[gi];
            if !(9..=19).contains(&n) {
                continue;
            }
            if !end_ok(text, end) {
                continue;
            }
            let last_group = n - if nbk > 0 { bounds[nbk - 1] } else { 0 };
            if last_group == 4 && four_digit_group_after(b, end) {
                continue;
            }
            let digits = Digits {
                d: &d[..n],
                bounds: &bounds[..nbk],
                seps: &seps[..nbk],
                plus,
            };
            if let Some(kind) = self.number_kind(text, start, end, &digits, st) {
                push(out, kind, start, end);
                return;
            }
        }
    }

    /// What the digits at `text[start..end]` are.
    fn number_kind(
        &self,
        text: &str,
        start: usize,
        end: usize,
        n: &Digits<'_>,
        st: &mut ScanState<'_>,
    ) -> Option<EntityType> {
        let (d, bounds, plus) = (n.d, n.bounds, n.plus);
        let len = d.len();
        let mut cands = [EntityType::Aadhaar; 6];
        let mut nc = 0;
        macro_rules! add {
            ($k:expr) => {{
                cands[nc] = $k;
                nc += 1;
            }};
        }
        if phone_valid(n) {
            add!(EntityType::Phone);
        }
        let plain = bounds.is_empty();
        if !plus {
            if len == 12 && d[0] >= 2 && (plain || bounds == [4, 8]) && verhoeff_valid(d) {
                add!(EntityType::Aadhaar);
            }
            if len == 16 && (plain || bounds == [4, 8, 12]) && verhoeff_valid(d) {
                add!(EntityType::AadhaarVid);
            }
            if card_grouping_valid(n) && card_prefix_valid(d) && luhn_valid(d) {
                add!(EntityType::PaymentCard);
            }
            if len == 14 && bounds == [2, 6, 10] {
                add!(EntityType::Abha);
            }
        }
        let bank_eligible = !plus && plain && (9..=18).contains(&len);
        let abha_bare = !plus && plain && len == 14;
        if nc == 0 && !bank_eligible && !abha_bare {
            return None;
        }
        let Context { cues, label } = self.context(text, start, end, st);
        if bank_eligible && cues.get(Cue::Account).is_some() && !cloud_id(&cues) {
            add!(EntityType::BankAccount);
        }
        if abha_bare && cues.get(Cue::Health).is_some() {
            add!(EntityType::Abha);
        }
        let cands = &mut cands[..nc];
        // A landline or toll-free word nearer than any mobile word, or a label that
        // names the number as something else: not a phone.
        let not_mobile = match label {
            Some(Label::Reference | Label::Landline | Label::Version) => true,
            Some(Label::Mobile) => false,
            None => cues.nearest(&[Cue::Phone, Cue::NotMobile]) == Some(Cue::NotMobile),
        };
        let mut best: Option<(EntityType, Option<usize>)> = None;
        for &k in cands.iter() {
            if k == EntityType::Phone && not_mobile {
                continue;
            }
            let dist = cue_distance(&cues, k);
            best = match best {
                None => Some((k, dist)),
                Some((bk, bd)) => {
                    if better(k, dist, bk, bd) {
                        Some((k, dist))
                    } else {
                        Some((bk, bd))
                    }
                }
            };
        }
        best.map(|(k, _)| k)
    }

    /// The context of `text[start..end]`: words around it (only on its own line in a
    /// table row), its column header's words, its label's words, and what the word
    /// right before it (else the header, else the label) names it.
    fn context(&self, text: &str, start: usize, end: usize, st: &mut ScanState<'_>) -> Context {
        let cell = st.table.cell(text, start);
        let (lo, hi) = cell.map_or((0, text.len()), |c| c.line);
        let mut cues = self.context.around(text, start, end, lo, hi);
        let mut label = label_before(text, start);
        let header = cell.map(|c| &text[c.header.0..c.header.1]);
        for l in [header, st.label].into_iter().flatten() {
            cues.merge(&self.context.in_label(l, LABEL_DISTANCE));
            if label.is_none() {
                label = label_before(l, l.len());
            }
        }
        Context { cues, label }
    }

    /// E-mail or UPI id around the `@` at `at`; returns where the main loop resumes.
    fn email_or_upi(
        &self,
        text: &str,
        at: usize,
        st: &mut ScanState<'_>,
        out: &mut Vec<Entity>,
    ) -> usize {
        let b = text.as_bytes();
        let mut ls = at;
        while ls > 0 && is_local_byte(b[ls - 1]) {
            ls -= 1;
        }
        while ls < at && !b[ls].is_ascii_alphanumeric() {
            ls += 1;
        }
        if ls == at || b[at - 1] == b'.' || !start_ok(text, ls) {
            return at + 1;
        }
        let mut de = at + 1;
        while de < b.len() && (b[de].is_ascii_alphanumeric() || b[de] == b'.' || b[de] == b'-') {
            de += 1;
        }
        while de > at + 1 && (b[de - 1] == b'.' || b[de - 1] == b'-') {
            de -= 1;
        }
        let domain = &b[at + 1..de];
        if domain.is_empty() || !end_ok(text, de) || b.get(de) == Some(&b'@') {
            return de.max(at + 1);
        }
        let local = &b[ls..at];
        let kind = if domain.contains(&b'.') {
            let labels_ok = domain
                .split(|&c| c == b'.')
                .all(|l| !l.is_empty() && l[0] != b'-' && l[l.len() - 1] != b'-');
            let tld = domain.rsplit(|&c| c == b'.').next().unwrap_or_default();
            (labels_ok && tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic))
                .then_some(EntityType::Email)
        } else {
            let upi_local = local
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
            let shape =
                upi_local && domain.len() >= 2 && domain.iter().all(u8::is_ascii_alphabetic);
            // `pkg@latest`, `git@github`: only a known handle, or a UPI word nearby.
            (shape
                && (self.known_upi_handle(domain)
                    || self.context(text, ls, de, st).cues.get(Cue::Upi).is_some()))
            .then_some(EntityType::UpiId)
        };
        if let Some(kind) = kind {
            push(out, kind, ls, de);
        }
        de
    }
}

impl Classifier {
    /// Whether `handle` (ASCII letters) is a published UPI handle, in any case.
    fn known_upi_handle(&self, handle: &[u8]) -> bool {
        let mut lower = [0u8; 32];
        let Some(l) = lower.get_mut(..handle.len()) else {
            return false;
        };
        l.copy_from_slice(handle);
        l.make_ascii_lowercase();
        std::str::from_utf8(l).is_ok_and(|h| self.upi_handles.binary_search(&h).is_ok())
    }
}

/// The digits of a candidate number: values, group boundaries (digits before each
/// separator) and each separator's kind, and whether a `+` precedes them.
struct Digits<'a> {
    d: &'a [u8],
    bounds: &'a [usize],
    seps: &'a [u8],
    plus: bool,
}

impl Digits<'_> {
    /// Whether every separator after the first `skip` is a single space or hyphen.
    fn plain_seps_after(&self, skip: usize) -> bool {
        self.seps.iter().skip(skip).all(|&k| k == SEP)
    }
}

impl Units {
    fn build(b: &[u8], s: usize) -> Units {
        let mut u = Units {
            ch: [0; MAX_UNITS],
            end: [0; MAX_UNITS],
            len: 0,
        };
        let mut i = s;
        while u.len < MAX_UNITS && i < b.len() {
            let c = b[i];
            let (unit, len) = if c.is_ascii_alphabetic() {
                (c, 1)
            } else if let Some((v, l)) = digit_at(b, i) {
                (b'0' + v, l)
            } else if u.len > 0 && !is_sep_unit(u.ch[u.len - 1]) {
                match sep_run_at(b, i) {
                    Some((len, kind)) => (kind, len),
                    None => break,
                }
            } else {
                break;
            };
            i += len;
            u.ch[u.len] = unit;
            u.end[u.len] = i;
            u.len += 1;
        }
        if u.len > 0 && is_sep_unit(u.ch[u.len - 1]) {
            u.len -= 1;
        }
        u
    }

    fn get(&self, k: usize) -> u8 {
        if k < self.len {
            self.ch[k]
        } else {
            0
        }
    }
}

/// Distance from the span to the nearest context word that supports `kind`.
fn cue_distance(cues: &Cues, kind: EntityType) -> Option<usize> {
    let one = |c| cues.get(c);
    match kind {
        EntityType::PaymentCard => one(Cue::Card),
        EntityType::AadhaarVid => match (one(Cue::Vid), one(Cue::Aadhaar)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        },
        EntityType::Aadhaar => one(Cue::Aadhaar),
        EntityType::Phone => one(Cue::Phone),
        EntityType::BankAccount => one(Cue::Account),
        EntityType::Abha => one(Cue::Health),
        _ => None,
    }
}

/// Fixed order when neither context nor tier decides.
fn priority(kind: EntityType) -> u8 {
    match kind {
        EntityType::PaymentCard => 6,
        EntityType::AadhaarVid => 5,
        EntityType::Aadhaar => 4,
        EntityType::Abha => 3,
        EntityType::BankAccount => 2,
        EntityType::Phone => 1,
        _ => 0,
    }
}

/// Whether candidate `a` (with context distance `da`) beats `b`.
fn better(a: EntityType, da: Option<usize>, b: EntityType, db: Option<usize>) -> bool {
    match (da, db) {
        (Some(x), Some(y)) if x != y => x < y,
        (Some(_), None) => true,
        (None, Some(_)) => false,
        _ => (a.tier(), priority(a)) > (b.tier(), priority(b)),
    }
}

/// Indian mobile: optional `+91`/`91`/`0` prefix, then 10 digits starting 6-9, grouped
/// as 10, 5-5 (with any separator the spec allows), 3-3-4 or 4-3-3 (single space or
/// hyphen); any separator may follow the prefix.
fn phone_valid(n: &Digits<'_>) -> bool {
    let (d, bounds, plus) = (n.d, n.bounds, n.plus);
    let len = d.len();
    let prefixes: [usize; 3] = [0, 2, 1];
    prefixes.into_iter().any(|p| {
        if plus && p != 2 {
            return false;
        }
        let prefix_ok = match p {
            0 => true,
            1 => d[0] == 0,
            _ => len >= 2 && d[0] == 9 && d[1] == 1,
        };
        if !prefix_ok || len != p + 10 || d[p] < 6 {
            return false;
        }
        if bounds.iter().any(|&b| b < p) {
            return false;
        }
        let after_prefix = bounds.iter().filter(|&&b| b <= p).count();
        let mut rest = [0usize; 4];
        let mut nr = 0;
        for &b in bounds.iter().filter(|&&b| b > p) {
            if nr == rest.len() {
                return false;
            }
            rest[nr] = b - p;
            nr += 1;
        }
        // `0891 303 2830` is an STD code and a landline: after a `0` prefix, the 3-3-4
        // and 4-3-3 groupings need a separator right after the `0`.
        let std_code = p == 1 && !bounds.contains(&1);
        match &rest[..nr] {
            [] | [5] => true,
            [3, 6] | [4, 7] => !std_code && n.plain_seps_after(after_prefix),
            _ => false,
        }
    })
}

/// Cards are written as one run, in fours (the last group shorter), or 4-6-5 / 4-6-4
/// (Amex, Diners), with any separator the spec allows.
fn card_grouping_valid(n: &Digits<'_>) -> bool {
    let (len, bounds) = (n.d.len(), n.bounds);
    if !(13..=19).contains(&len) {
        return false;
    }
    if bounds.is_empty() || bounds == [4, 10] {
        return true;
    }
    bounds.iter().enumerate().all(|(i, &b)| b == 4 * (i + 1)) && len - bounds.len() * 4 <= 4
}

/// Whether a cloud provider's word labels the number (`AWS account 123456789012`):
/// nearer than, or about as near as, the account word.
fn cloud_id(cues: &Cues) -> bool {
    match (cues.get(Cue::Cloud), cues.get(Cue::Account)) {
        (Some(c), Some(a)) => c <= a + 16,
        (Some(_), None) => true,
        _ => false,
    }
}

fn is_upper(c: u8) -> bool {
    c.is_ascii_uppercase()
}

fn is_digit(c: u8) -> bool {
    c.is_ascii_digit()
}

fn all(u: &Units, from: usize, to: usize, f: fn(u8) -> bool) -> bool {
    (from..to).all(|k| f(u.get(k)))
}

/// PAN: 5 letters, 4 digits, 1 letter (all upper or all lower case), 4th letter a
/// holder type.
fn match_pan(u: &Units) -> Option<usize> {
    let ok = |f: fn(u8) -> bool, g: fn(u8) -> bool| {
        all(u, 0, 5, f) && all(u, 5, 9, is_digit) && g(u.get(9))
    };
    let upper = ok(is_upper, is_upper);
    let lower = ok(|c| c.is_ascii_lowercase(), |c| c.is_ascii_lowercase());
    ((upper || lower) && pan_holder_type_valid(u.get(3))).then_some(10)
}

/// Passport: a letter, then 7 digits not starting with 0.
fn match_passport(u: &Units) -> Option<usize> {
    (is_upper(u.get(0)) && all(u, 1, 8, is_digit) && u.get(1) != b'0').then_some(8)
}

/// Three-letter prefixes of business reference numbers (invoice, order, ticket, ...)
/// that share the EPIC shape but are not voter ids.
const NOT_EPIC: &[&[u8; 3]] = &[
    b"INV", b"ORD", b"REF", b"TKT", b"TXN", b"SKU", b"PNR", b"UTR", b"REQ", b"INC", b"CHG", b"BUG",
    b"SRN", b"CRN", b"AWB", b"RMA",
];

/// EPIC voter id: 3 letters, 7 digits.
fn match_voter_id(u: &Units) -> Option<usize> {
    let shape = all(u, 0, 3, is_upper) && all(u, 3, 10, is_digit);
    (shape && !NOT_EPIC.iter().any(|p| p[..] == u.ch[..3])).then_some(10)
}

/// IFSC: 4 letters, `0`, 6 letters or digits.
fn match_ifsc(u: &Units) -> Option<usize> {
    (all(u, 0, 4, is_upper) && u.get(4) == b'0' && all(u, 5, 11, |c| is_upper(c) || is_digit(c)))
        .then_some(11)
}

/// Skips one optional single space or hyphen at `k`.
fn opt_sep(u: &Units, k: usize) -> usize {
    if u.get(k) == SEP {
        k + 1
    } else {
        k
    }
}

/// Driving licence: state code, 2-digit RTO, optional separator, 4-digit year
/// (19xx/20xx), 7 digits (separators also tolerated after the state code and year).
fn match_driving_licence(u: &Units) -> Option<usize> {
    if !(is_upper(u.get(0)) && is_upper(u.get(1)) && is_state_code(u.get(0), u.get(1))) {
        return None;
    }
    let k = opt_sep(u, 2);
    if !all(u, k, k + 2, is_digit) {
        return None;
    }
    let k = opt_sep(u, k + 2);
    let year_ok = all(u, k, k + 4, is_digit)
        && matches!((u.get(k), u.get(k + 1)), (b'1', b'9') | (b'2', b'0'));
    if !year_ok {
        return None;
    }
    let k = opt_sep(u, k + 4);
    all(u, k, k + 7, is_digit).then_some(k + 7)
}

/// Vehicle registration: state code, 2-digit RTO, 1-3 letters, 4 digits, with optional
/// separators between the parts.
fn match_vehicle(u: &Units) -> Option<usize> {
    if !(is_upper(u.get(0)) && is_upper(u.get(1)) && is_state_code(u.get(0), u.get(1))) {
        return None;
    }
    let k = opt_sep(u, 2);
    if !all(u, k, k + 2, is_digit) {
        return None;
    }
    let mut k = opt_sep(u, k + 2);
    let letters_start = k;
    while k < letters_start + 3 && is_upper(u.get(k)) {
        k += 1;
    }
    if k == letters_start {
        return None;
    }
    let k = opt_sep(u, k);
    all(u, k, k + 4, is_digit).then_some(k + 4)
}

/// GSTIN: state code, PAN, entity character, `Z`, check character.
fn match_gstin(u: &Units) -> Option<usize> {
    if u.len < 15 {
        return None;
    }
    let mut g = [0u8; 15];
    g.copy_from_slice(&u.ch[..15]);
    let shape = is_digit(g[0])
        && is_digit(g[1])
        && gst_state_valid(g[0] - b'0', g[1] - b'0')
        && g[2..7].iter().all(|&c| is_upper(c))
        && pan_holder_type_valid(g[5])
        && g[7..11].iter().all(|&c| is_digit(c))
        && is_upper(g[11])
        && (is_upper(g[12]) || (b'1'..=b'9').contains(&g[12]))
        && g[13] == b'Z'
        && (is_upper(g[14]) || is_digit(g[14]));
    (shape && gstin_check_valid(&g)).then_some(15)
}

/// IPv4 dotted quad starting at `s`; returns its end.
fn ipv4_at(text: &str, s: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut e = s;
    let mut dots = 0;
    while e < b.len() && e - s < 15 {
        let c = b[e];
        if c.is_ascii_digit() {
            e += 1;
        } else if c == b'.' && dots < 3 && b.get(e + 1).is_some_and(u8::is_ascii_digit) {
            dots += 1;
            e += 1;
        } else {
            break;
        }
    }
    if dots != 3 || (s > 0 && b[s - 1] == b'.') {
        return None;
    }
    text[s..e].parse::<Ipv4Addr>().ok()?;
    (start_ok(text, s) && end_ok(text, e)).then_some(e)
}

fn is_v6_byte(c: u8) -> bool {
    c.is_ascii_hexdigit() || c == b':'
}

fn ipv6_start(b: &[u8], ws: usize) -> usize {
    let mut s = ws;
    while s > 0 && is_v6_byte(b[s - 1]) && ws - s < 40 {
        s -= 1;
    }
    // `ip:2001:db8::1`: a single colon before the address is punctuation.
    if s < ws && b[s] == b':' && b.get(s + 1) != Some(&b':') {
        s += 1;
    }
    s
}

/// IPv6 address containing the word at `ws`; returns its end.
fn ipv6_around(text: &str, ws: usize) -> Option<usize> {
    let b = text.as_bytes();
    let s = ipv6_start(b, ws);
    if !start_ok(text, s) {
        return None;
    }
    let mut e = s;
    while e < b.len() && e - s < 45 && (is_v6_byte(b[e]) || b[e] == b'.') {
        e += 1;
    }
    // Trim trailing punctuation (but keep a final "::").
    while e > s
        && (b[e - 1] == b'.' || (b[e - 1] == b':' && b.get(e.wrapping_sub(2)) != Some(&b':')))
    {
        e -= 1;
    }
    let span = text.get(s..e)?;
    if !span.contains(':') {
        return None;
    }
    span.parse::<Ipv6Addr>().ok()?;
    end_ok(text, e).then_some(e)
}

fn is_local_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// Start of the word (ASCII letters and digits of any script) containing offset `i`.
fn word_start(b: &[u8], mut i: usize) -> usize {
    loop {
        if i > 0 && b[i - 1].is_ascii_alphanumeric() {
            i -= 1;
        } else if let Some((_, l)) = digit_before(b, i) {
            i -= l;
        } else {
            return i;
        }
    }
}

/// End of the word containing offset `i`.
fn word_end(b: &[u8], mut i: usize) -> usize {
    loop {
        if i < b.len() && b[i].is_ascii_alphanumeric() {
            i += 1;
        } else if let Some((_, l)) = digit_at(b, i) {
            i += l;
        } else {
            return i;
        }
    }
}

/// A separator run starting at `i` (in folded text), as the spec allows between the
/// groups of a number: up to three spaces or tabs; or one line break with up to three
/// spaces or tabs on each side; or one of `- . _ /` with at most one space on each
/// side. Returns its length and kind ([`SEP`] for one space or one hyphen).
#[inline]
fn sep_run_at(b: &[u8], i: usize) -> Option<(usize, u8)> {
    // The common case: one space or hyphen before a letter or digit.
    if matches!(b[i], b' ' | b'-') && b.get(i + 1).is_some_and(u8::is_ascii_alphanumeric) {
        return Some((1, SEP));
    }
    let ws = |c: &u8| matches!(c, b' ' | b'\t');
    let lead = b[i..].iter().take(4).take_while(|c| ws(c)).count();
    if lead > 3 {
        return None;
    }
    let j = i + lead;
    let (mid, kind, max_trail) = match b.get(j) {
        Some(b'\r') if b.get(j + 1) == Some(&b'\n') => (2, SEP_LINE, 3),
        Some(b'\n' | b'\r') => (1, SEP_LINE, 3),
        Some(b'-' | b'.' | b'_' | b'/') if lead <= 1 => (1, SEP_WIDE, 1),
        _ => (0, SEP_WIDE, 0),
    };
    if lead == 0 && mid == 0 {
        return None;
    }
    let k = j + mid;
    let trail = b[k..]
        .iter()
        .take(max_trail + 1)
        .take_while(|c| ws(c))
        .count();
    if trail > max_trail {
        return None;
    }
    let len = lead + mid + trail;
    let plain = len == 1 && (b[i] == b' ' || b[i] == b'-');
    Some((len, if plain { SEP } else { kind }))
}

fn is_sep_unit(c: u8) -> bool {
    matches!(c, SEP | SEP_WIDE | SEP_LINE)
}

/// Whether exactly four digits end at `i` (no digit before them).
fn four_digits_end_at(b: &[u8], mut i: usize) -> bool {
    for _ in 0..4 {
        match digit_before(b, i) {
            Some((_, l)) => i -= l,
            None => return false,
        }
    }
    digit_before(b, i).is_none()
}

/// Whether `text[..s]` ends with a group of exactly four digits and a separator on
/// the same line.
fn four_digit_group_before(b: &[u8], s: usize) -> bool {
    (1..=MAX_SEP_LEN.min(s)).any(|len| {
        let j = s - len;
        matches!(sep_run_at(b, j), Some((l, kind)) if l == len && kind != SEP_LINE)
            && four_digits_end_at(b, j)
    })
}

/// Whether `text[e..]` starts with a separator on the same line and a group of
/// exactly four digits.
fn four_digit_group_after(b: &[u8], e: usize) -> bool {
    let Some((len, kind)) = (e < b.len()).then(|| sep_run_at(b, e)).flatten() else {
        return false;
    };
    if kind == SEP_LINE {
        return false;
    }
    let mut i = e + len;
    for _ in 0..4 {
        match digit_at(b, i) {
            Some((_, l)) => i += l,
            None => return false,
        }
    }
    digit_at(b, i).is_none()
}

/// A two-letter state code word followed by one separator right before `ws` (the
/// `KA 24 ...` in a vehicle registration).
fn state_word_before(text: &str, ws: usize) -> Option<usize> {
    let b = text.as_bytes();
    if ws < 3 || !is_group_sep(b[ws - 1]) {
        return None;
    }
    let s = ws - 3;
    let ok = is_upper(b[s]) && is_upper(b[s + 1]) && is_state_code(b[s], b[s + 1]);
    (ok && start_ok(text, s)).then_some(s)
}

/// Whether a match may start at `s`: not glued to a letter or digit, not the tail of a
/// decimal number, not after a masking run (`XXXX `, `****`).
fn start_ok(text: &str, s: usize) -> bool {
    let b = text.as_bytes();
    let Some(c) = char_before(text, s) else {
        return true;
    };
    if is_word_char(c) {
        return false;
    }
    // `1.5`, `12-3456`: the tail of a decimal or of a hyphen-joined number.
    if (c == '.' || c == '-') && digit_before(b, s - 1).is_some() {
        return false;
    }
    if c.is_ascii() && is_group_sep(c as u8) {
        return !masked_run_before(text, s - 1);
    }
    true
}

/// Whether a match may end at `e` (mirror of [`start_ok`]).
fn end_ok(text: &str, e: usize) -> bool {
    let b = text.as_bytes();
    let Some(c) = char_at(text, e) else {
        return true;
    };
    if is_word_char(c) {
        return false;
    }
    if (c == '.' || c == '-') && digit_at(b, e + 1).is_some() {
        return false;
    }
    if c.is_ascii() && is_group_sep(c as u8) {
        return !masked_run_after(text, e + 1);
    }
    true
}

/// A masking group ending at `i` (`XXXX`, `****`, `••`) that is a word of its own. Two
/// asterisks alone are markdown emphasis (`**Aadhaar:** 2345 6789 0124`), not a mask.
fn masked_run_before(text: &str, i: usize) -> bool {
    let mut j = i;
    let (mut n, mut stars) = (0, 0);
    while let Some(c) = char_before(text, j) {
        if !is_mask_char(c) {
            break;
        }
        j -= c.len_utf8();
        n += 1;
        stars += usize::from(c == '*');
    }
    is_mask_group(n, stars) && char_before(text, j).is_none_or(|c| !is_word_char(c))
}

/// A masking group starting at `i` (mirror of [`masked_run_before`]).
fn masked_run_after(text: &str, i: usize) -> bool {
    let mut j = i;
    let (mut n, mut stars) = (0, 0);
    while let Some(c) = char_at(text, j) {
        if !is_mask_char(c) {
            break;
        }
        j += c.len_utf8();
        n += 1;
        stars += usize::from(c == '*');
    }
    is_mask_group(n, stars) && char_at(text, j).is_none_or(|c| !is_word_char(c))
}

fn is_mask_group(n: usize, stars: usize) -> bool {
    n >= 2 && !(n == 2 && stars == 2)
}

fn push(out: &mut Vec<Entity>, kind: EntityType, start: usize, end: usize) {
    out.push(Entity { kind, start, end });
}

/// Sorts `out[base..]` by start and drops overlaps, keeping the longer span (the
/// higher tier on equal length).
fn resolve(out: &mut Vec<Entity>, base: usize) {
    let found = &mut out[base..];
    if found.len() < 2 {
        return;
    }
    found.sort_unstable_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut w = 0;
    for r in 0..found.len() {
        let e = found[r];
        if w > 0 && e.start < found[w - 1].end {
            let last = found[w - 1];
            let (el, ll) = (e.end - e.start, last.end - last.start);
            if el > ll || (el == ll && e.kind.tier() > last.kind.tier()) {
                found[w - 1] = e;
            }
            continue;
        }
        found[w] = e;
        w += 1;
    }
    out.truncate(base + w);
}

#[cfg(test)]
mod tests {
    use super::super::evaluation::assert_spans_valid;
    use super::super::validators::{luhn_check_digit, verhoeff_check_digit};
    use super::*;

    fn kinds(text: &str) -> Vec<(EntityType, &str)> {
        let found = Classifier::new().scan(text);
        assert_spans_valid(text, &found);
        found
            .iter()
            .map(|e| (e.kind, &text[e.start..e.end]))
            .collect()
    }

    /// A deterministic stream of digits (xorshift), so tests need no `rand`.
    fn digit_stream(seed: u64) -> impl Iterator<Item = u8> {
        let mut x = seed | 1;
        std::iter::from_fn(move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Some((x % 10) as u8)
        })
    }

    fn render(d: &[u8], groups: &[usize], sep: &str) -> String {
        let mut s = String::new();
        let mut i = 0;
        for (n, g) in groups.iter().enumerate() {
            if n > 0 {
                s.push_str(sep);
            }
            for &x in &d[i..i + g] {
                s.push(char::from(b'0' + x));
            }
            i += g;
        }
        s
    }

    #[test]
    fn generated_aadhaar_numbers_and_their_near_misses() {
        let mut digits = digit_stream(7);
        for round in 0..300 {
            let mut d: Vec<u8> = (0..11).map(|_| digits.next().unwrap()).collect();
            d[0] = 2 + d[0] % 8;
            d.push(verhoeff_check_digit(&d));
            let (groups, sep): (&[usize], &str) = match round % 3 {
                0 => (&[12], ""),
                1 => (&[4, 4, 4], " "),
                _ => (&[4, 4, 4], "-"),
            };
            let good = render(&d, groups, sep);
            let text = format!("Aadhaar {good} for KYC");
            assert_eq!(
                kinds(&text),
                vec![(EntityType::Aadhaar, good.as_str())],
                "{text}"
            );
            let mut bad = d.clone();
            bad[11] = (bad[11] + 1 + round as u8 % 9) % 10;
            let text = format!("Aadhaar {} for KYC", render(&bad, groups, sep));
            assert!(
                kinds(&text).iter().all(|(k, _)| *k != EntityType::Aadhaar),
                "{text}"
            );
            // First digit 0 or 1 is never an Aadhaar.
            let mut low = d.clone();
            low[0] = round as u8 % 2;
            low[11] = 0;
            low[11] = verhoeff_check_digit(&low[..11]);
            let text = format!("Order {} shipped", render(&low, &[12], ""));
            assert!(kinds(&text).is_empty(), "{text}");
        }
    }

    #[test]
    fn generated_cards_in_all_groupings() {
        let mut digits = digit_stream(11);
        let prefixes: [&[u8]; 8] = [
            &[4],
            &[5, 3],
            &[2, 5, 0, 0],
            &[6, 0],
            &[6, 5],
            &[8, 1],
            &[5, 0, 8],
            &[3, 5],
        ];
        for (round, p) in prefixes.iter().cycle().take(200).enumerate() {
            let len = [16, 16, 19, 13, 18][round % 5];
            let mut d: Vec<u8> = p.to_vec();
            while d.len() < len - 1 {
                d.push(digits.next().unwrap());
            }
            d.push(luhn_check_digit(&d));
            let mut groups = vec![4; len / 4];
            if len % 4 != 0 {
                groups.push(len % 4);
            }
            let (groups, sep): (Vec<usize>, &str) = match round % 3 {
                0 => (vec![len], ""),
                1 => (groups, " "),
                _ => (groups, "-"),
            };
            let good = render(&d, &groups, sep);
            let text = format!("my card {good} was charged");
            assert_eq!(
                kinds(&text),
                vec![(EntityType::PaymentCard, good.as_str())],
                "{text}"
            );
            let last = d.len() - 1;
            d[last] = (d[last] + 5) % 10;
            let bad = render(&d, &groups, sep);
            let text = format!("my card {bad} was charged");
            // (It may still be a valid Aadhaar VID, or a space-separated tail of it a
            // valid shorter card, by chance; the whole number is never a card.)
            assert!(
                !kinds(&text).contains(&(EntityType::PaymentCard, bad.as_str())),
                "{text}"
            );
        }
    }

    #[test]
    fn ambiguous_numbers_follow_context_then_tier_then_priority() {
        // Valid both as a card (Luhn, Visa prefix) and as a VID (Verhoeff).
        let n = "4290404796669724";
        assert_eq!(kinds(&format!("card {n}"))[0].0, EntityType::PaymentCard);
        assert_eq!(kinds(&format!("VID {n}"))[0].0, EntityType::AadhaarVid);
        assert_eq!(
            kinds(&format!("virtual id: {n}"))[0].0,
            EntityType::AadhaarVid
        );
        assert_eq!(
            kinds(&format!("{n} is my rupay"))[0].0,
            EntityType::PaymentCard
        );
        assert_eq!(kinds(&format!("value {n}"))[0].0, EntityType::PaymentCard);
        // Nearest word wins when both are present.
        assert_eq!(
            kinds(&format!("Aadhaar VID list, card {n}"))[0].0,
            EntityType::PaymentCard
        );
        // 91-prefixed mobile that also passes Verhoeff.
        let m = "919876543007";
        assert_eq!(kinds(&format!("phone {m}"))[0].0, EntityType::Phone);
        assert_eq!(kinds(&format!("मोबाइल {m}"))[0].0, EntityType::Phone);
        assert_eq!(kinds(&format!("आधार {m}"))[0].0, EntityType::Aadhaar);
        assert_eq!(kinds(m)[0].0, EntityType::Aadhaar);
    }

    #[test]
    fn longer_span_wins() {
        assert_eq!(
            kinds("pay 9876543210@ybl"),
            vec![(EntityType::UpiId, "9876543210@ybl")]
        );
        assert_eq!(
            kinds("mapped ::ffff:192.168.1.1 here"),
            vec![(EntityType::IpAddress, "::ffff:192.168.1.1")]
        );
        assert_eq!(
            kinds("mail ABCPK1234L@corp.in"),
            vec![(EntityType::Email, "ABCPK1234L@corp.in")]
        );
    }

    #[test]
    fn stand_alone_and_masking() {
        assert!(kinds("x2345 6789 0124").is_empty());
        assert!(kinds("कआधार२३४५६७८९०१२४").is_empty());
        assert!(kinds("0.234567890124").is_empty());
        assert!(kinds("1111-2345-6789-0124").is_empty());
        assert!(kinds("2345-6789-0124-5").is_empty());
        assert!(kinds("ref 1111 2345 6789 0124").is_empty());
        assert!(kinds("ref 2345 6789 0124 1111 done").is_empty());
        assert_eq!(
            kinds("Aadhaar 2345 6789 0124 9876543210"),
            vec![
                (EntityType::Aadhaar, "2345 6789 0124"),
                (EntityType::Phone, "9876543210")
            ]
        );
        assert!(kinds("2345 6789 0124XX").is_empty());
        assert!(kinds("**** 2345 6789 0124").is_empty());
        assert_eq!(
            kinds("Box 9876543210"),
            vec![(EntityType::Phone, "9876543210")]
        );
        assert_eq!(
            kinds("(2345-6789-0124)"),
            vec![(EntityType::Aadhaar, "2345-6789-0124")]
        );
    }

    #[test]
    fn spans_lie_on_char_boundaries_in_mixed_text() {
        let c = Classifier::new();
        let base = "आधार २३४५ ६७८९ ०१२४, मोबाइल +91 ९८७६५ ४३२१०, ईमेल प्रिया priya@example.org, \
                    card ４１１１ １１１１ １１１１ １１１１ ও ৯৮৭৬৫৪৩২১০ 😀 ABCPK1234L";
        let found = c.scan(base);
        assert_spans_valid(base, &found);
        assert!(found.len() >= 5, "{found:?}");
        // Every prefix and suffix at a char boundary: spans stay valid, nothing panics.
        for (i, _) in base.char_indices() {
            assert_spans_valid(&base[i..], &c.scan(&base[i..]));
            assert_spans_valid(&base[..i], &c.scan(&base[..i]));
        }
    }

    #[test]
    fn scan_into_appends_and_allocates_nothing_on_no_match() {
        let c = Classifier::new();
        let mut out = Vec::new();
        c.scan_into("No entities here, just words. १२३ and 42.", &mut out);
        assert_eq!(out.capacity(), 0);
        c.scan_into("PAN ABCPK1234L", &mut out);
        c.scan_into("IP 10.0.0.1", &mut out);
        assert_eq!(
            out.iter().map(|e| e.kind).collect::<Vec<_>>(),
            vec![EntityType::Pan, EntityType::IpAddress]
        );
    }

    #[test]
    fn classifier_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Classifier>();
        let c = std::sync::Arc::new(Classifier::default());
        let c2 = std::sync::Arc::clone(&c);
        let t = std::thread::spawn(move || c2.scan("PAN ABCPK1234L").len());
        assert_eq!(t.join().unwrap(), 1);
    }
}
