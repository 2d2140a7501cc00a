//! Folding of invisible and look-alike characters before a scan, with a map back to
//! the original text.
//!
//! The spec treats Unicode format characters (zero-width space, joiners, soft hyphen,
//! word joiner, BOM, ...) as absent, Unicode spaces as spaces, Unicode dashes as
//! hyphens, line separators as line breaks, and compatibility forms of letters and
//! digits (fullwidth, mathematical alphanumerics, circled, super- and subscript digits)
//! as their plain forms, as NFKC does. The scanner then only ever sees plain
//! characters.
//!
//! Most text needs none of it: ASCII text is recognised with one vectorised check and
//! scanned in place; other text is copied only when a character in it actually folds.
//! Offsets found in the folded copy are mapped back, so spans always point into the
//! original text.

/// How one character folds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fold {
    /// Kept as it is.
    Keep,
    /// Dropped (format characters).
    Drop,
    /// Replaced by one ASCII character.
    Ascii(u8),
    /// Replaced by a short ASCII string (circled 10-20).
    Str(&'static str),
}

/// A folded copy of a text and, for each byte of it, where its character was in the
/// original.
#[derive(Debug, Default)]
pub(crate) struct Folded {
    /// The folded text.
    pub(crate) text: String,
    /// Original byte offset of the character that produced each folded byte.
    start: Vec<u32>,
    /// Original byte offset just past that character.
    end: Vec<u32>,
}

/// Lead bytes of the UTF-8 encodings of every character that can fold (U+0080-00BF,
/// U+0600-06FF, U+1000-1FFF, U+2000-2FFF, U+3000-3FFF, U+F000-FFFF, U+1xxxx,
/// U+Exxxx tags). Devanagari and the other Indic blocks (lead `E0`) never fold.
static MAY_FOLD: [bool; 256] = {
    let mut t = [false; 256];
    t[0xC2] = true;
    t[0xD8] = true;
    t[0xE1] = true;
    t[0xE2] = true;
    t[0xE3] = true;
    t[0xEF] = true;
    t[0xF0] = true;
    t[0xF3] = true;
    t
};

/// Whether a character starting with byte `c` may fold: a cheap prefilter.
pub(crate) const fn may_fold(c: u8) -> bool {
    MAY_FOLD[c as usize]
}

/// Whether the character at byte offset `i` (a char boundary) folds.
pub(crate) fn folds_at(text: &str, i: usize) -> bool {
    text.get(i..)
        .and_then(|s| s.chars().next())
        .is_some_and(|c| fold_char(c) != Fold::Keep)
}

impl Folded {
    /// Appends `piece`, which stands for the original `start..end`.
    fn push(&mut self, piece: &str, start: usize, end: usize) {
        self.text.push_str(piece);
        for _ in 0..piece.len() {
            self.start.push(start as u32);
            self.end.push(end as u32);
        }
    }

    /// The original span of the folded span `start..end`.
    pub(crate) fn original(&self, start: usize, end: usize) -> (usize, usize) {
        (self.start[start] as usize, self.end[end - 1] as usize)
    }
}

/// The folded form of `text`, or `None` when folding would not change it (the text can
/// be scanned as it is).
pub(crate) fn fold(text: &str) -> Option<Folded> {
    if text.is_ascii() {
        return None;
    }
    let b = text.as_bytes();
    let first = first_folding(text, b, 0)?;
    let mut f = Folded {
        text: String::with_capacity(text.len()),
        start: Vec::with_capacity(text.len()),
        end: Vec::with_capacity(text.len()),
    };
    // Offsets are stored as u32; a body over 4 GiB is refused long before this.
    let keep = |f: &mut Folded, s: usize, e: usize| {
        for (i, c) in text[s..e].char_indices() {
            let cs = s + i;
            f.push(&text[cs..cs + c.len_utf8()], cs, cs + c.len_utf8());
        }
    };
    let mut done = 0;
    let mut at = Some(first);
    while let Some(i) = at {
        keep(&mut f, done, i);
        let c = text[i..].chars().next().unwrap_or('\0');
        let ce = i + c.len_utf8();
        match fold_char(c) {
            Fold::Keep => keep(&mut f, i, ce),
            Fold::Drop => {}
            Fold::Ascii(a) => f.push(char::from(a).encode_utf8(&mut [0; 4]), i, ce),
            Fold::Str(s) => f.push(s, i, ce),
        }
        done = ce;
        at = first_folding(text, b, ce);
    }
    keep(&mut f, done, text.len());
    Some(f)
}

/// The offset of the first character at or after `from` that folds.
fn first_folding(text: &str, b: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let p = b[from..].iter().position(|&c| MAY_FOLD[c as usize])?;
        let i = from + p;
        let c = text[i..].chars().next()?;
        if fold_char(c) != Fold::Keep {
            return Some(i);
        }
        from = i + c.len_utf8();
    }
}

/// How `c` folds (see the module docs).
fn fold_char(c: char) -> Fold {
    let u = c as u32;
    match u {
        // Format characters: soft hyphen, Arabic letter mark, Mongolian vowel
        // separator, zero-width space/joiners and marks, bidi embeddings and isolates,
        // word joiner and invisible operators, variation selectors, BOM, tags.
        0xAD | 0x61C | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 => Fold::Drop,
        0x2066..=0x206F | 0xFE00..=0xFE0F | 0xFEFF | 0xE0001 | 0xE0020..=0xE007F => Fold::Drop,
        // Spaces.
        0xA0 | 0x1680 | 0x2000..=0x200A | 0x202F | 0x205F | 0x3000 => Fold::Ascii(b' '),
        // Line and paragraph separators.
        0x2028 | 0x2029 => Fold::Ascii(b'\n'),
        // Dashes and minus signs.
        0x2010..=0x2015 | 0x2212 | 0xFE58 | 0xFE63 => Fold::Ascii(b'-'),
        // Superscript and subscript digits and letters, ordinal indicators.
        0xAA => Fold::Ascii(b'a'),
        0xBA => Fold::Ascii(b'o'),
        0x2071 => Fold::Ascii(b'i'),
        0x207F => Fold::Ascii(b'n'),
        0x2090..=0x209F => match SUBSCRIPT_LETTERS[(u - 0x2090) as usize] {
            0 => Fold::Keep,
            a => Fold::Ascii(a),
        },
        // Letterlike symbols and Roman numerals that are one plain letter.
        0x2102..=0x217F => LETTERLIKE
            .iter()
            .find(|&&(k, _)| k == u)
            .map_or(Fold::Keep, |&(_, a)| Fold::Ascii(a)),
        0xB9 => Fold::Ascii(b'1'),
        0xB2 | 0xB3 => Fold::Ascii(b'0' + (u - 0xB0) as u8),
        0x2070 => Fold::Ascii(b'0'),
        0x2074..=0x2079 => Fold::Ascii(b'0' + (u - 0x2070) as u8),
        0x2080..=0x2089 => Fold::Ascii(b'0' + (u - 0x2080) as u8),
        // Circled digits and numbers, circled letters.
        0x2460..=0x2468 => Fold::Ascii(b'1' + (u - 0x2460) as u8),
        0x2469..=0x2473 => Fold::Str(CIRCLED_10_20[(u - 0x2469) as usize]),
        0x24EA => Fold::Ascii(b'0'),
        0x24F5..=0x24FD => Fold::Ascii(b'1' + (u - 0x24F5) as u8),
        0x24FE => Fold::Str("10"),
        0x24FF => Fold::Ascii(b'0'),
        0x24B6..=0x24CF => Fold::Ascii(b'A' + (u - 0x24B6) as u8),
        0x24D0..=0x24E9 => Fold::Ascii(b'a' + (u - 0x24D0) as u8),
        // Fullwidth ASCII.
        0xFF01..=0xFF5E => Fold::Ascii((u - 0xFEE0) as u8),
        0xFF5F..=0xFFFF => Fold::Keep,
        // Mathematical alphanumeric symbols: 13 alphabets of A-Z a-z, then the Greek
        // ones (kept), then 5 sets of digits.
        0x1D400..=0x1D6A3 => {
            let k = ((u - 0x1D400) % 52) as u8;
            Fold::Ascii(if k < 26 { b'A' + k } else { b'a' + k - 26 })
        }
        0x1D7CE..=0x1D7FF => Fold::Ascii(b'0' + ((u - 0x1D7CE) % 10) as u8),
        // Segmented digits.
        0x1FBF0..=0x1FBF9 => Fold::Ascii(b'0' + (u - 0x1FBF0) as u8),
        _ => Fold::Keep,
    }
}

/// U+2090..=U+209F; 0 where the subscript is not an ASCII letter.
const SUBSCRIPT_LETTERS: [u8; 16] = *b"aeox\0hklmnpstwyz";

/// Letterlike symbols (the holes of the mathematical alphabets) and one-letter Roman
/// numerals, with their NFKC letter.
const LETTERLIKE: [(u32, u8); 46] = [
    (0x2102, b'C'),
    (0x210A, b'g'),
    (0x210B, b'H'),
    (0x210C, b'H'),
    (0x210D, b'H'),
    (0x210E, b'h'),
    (0x2110, b'I'),
    (0x2111, b'I'),
    (0x2112, b'L'),
    (0x2113, b'l'),
    (0x2115, b'N'),
    (0x2119, b'P'),
    (0x211A, b'Q'),
    (0x211B, b'R'),
    (0x211C, b'R'),
    (0x211D, b'R'),
    (0x2124, b'Z'),
    (0x2128, b'Z'),
    (0x212A, b'K'),
    (0x212C, b'B'),
    (0x212D, b'C'),
    (0x212F, b'e'),
    (0x2130, b'E'),
    (0x2131, b'F'),
    (0x2133, b'M'),
    (0x2134, b'o'),
    (0x2139, b'i'),
    (0x2145, b'D'),
    (0x2146, b'd'),
    (0x2147, b'e'),
    (0x2148, b'i'),
    (0x2149, b'j'),
    (0x2160, b'I'),
    (0x2164, b'V'),
    (0x2169, b'X'),
    (0x216C, b'L'),
    (0x216D, b'C'),
    (0x216E, b'D'),
    (0x216F, b'M'),
    (0x2170, b'i'),
    (0x2174, b'v'),
    (0x2179, b'x'),
    (0x217C, b'l'),
    (0x217D, b'c'),
    (0x217E, b'd'),
    (0x217F, b'm'),
];

const CIRCLED_10_20: [&str; 11] = [
    "10", "11", "12", "13", "14", "15", "16", "17", "18", "19", "20",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(s: &str) -> String {
        fold(s).map_or_else(|| s.to_owned(), |f| f.text)
    }

    #[test]
    fn plain_text_is_not_copied() {
        assert!(fold("Aadhaar 2345 6789 0124").is_none());
        assert!(fold("आधार २३४५ ६७८९ ०१२४ “quoted” 😀 …").is_none());
    }

    #[test]
    fn invisible_characters_vanish_and_lookalikes_become_plain() {
        assert_eq!(folded("2345\u{200B}6789\u{200D}0124\u{AD}"), "234567890124");
        assert_eq!(folded("\u{FEFF}12\u{2060}34"), "1234");
        assert_eq!(folded("2345\u{A0}6789\u{2009}0124"), "2345 6789 0124");
        assert_eq!(folded("2345\u{2013}6789\u{2014}0124"), "2345-6789-0124");
        assert_eq!(folded("２３４５ ＡＢＣ"), "2345 ABC");
        assert_eq!(folded("𝟐𝟑𝟒𝟓 𝐀𝐁𝐂𝐏𝐊 𝟷𝟸"), "2345 ABCPK 12");
        assert_eq!(folded("①②③⑩⓪"), "123100");
        assert_eq!(folded("ℍℹ ⅰ"), "Hi i");
        assert_eq!(folded("x²"), "x2");
    }

    #[test]
    fn offsets_map_back_into_the_original() {
        let s = "PAN: 𝐀𝐁𝐂\u{200B}𝐏𝐊1234𝐋 ok";
        let f = fold(s).unwrap();
        let fs = f.text.find("ABCPK1234L").unwrap();
        let (os, oe) = f.original(fs, fs + "ABCPK1234L".len());
        assert_eq!(&s[os..oe], "𝐀𝐁𝐂\u{200B}𝐏𝐊1234𝐋");
        // Every folded byte maps to a char boundary of the original.
        for i in 0..f.text.len() {
            let (a, b) = f.original(i, i + 1);
            assert!(s.is_char_boundary(a) && s.is_char_boundary(b) && a < b);
        }
    }

    /// The table agrees with NFKC for every character it folds to a letter or digit,
    /// and every character whose NFKC form is one ASCII letter or digit is folded.
    #[test]
    fn agrees_with_nfkc() {
        use unicode_normalization::char::decompose_compatible;
        let ranges = [
            0x80u32..0x100,
            0x2000..0x2190,
            0x2400..0x2500,
            0x3000..0x3100,
            0xFF00..0xFFF0,
            0x1D400..0x1D800,
            0x1FBF0..0x1FC00,
        ];
        let mut unfolded = Vec::new();
        for r in ranges {
            for u in r {
                let Some(c) = char::from_u32(u) else { continue };
                let mut nfkc = String::new();
                decompose_compatible(c, |d| nfkc.push(d));
                let plain = nfkc.len() == 1 && nfkc.as_bytes()[0].is_ascii_alphanumeric();
                match fold_char(c) {
                    // Reserved code points (the holes of the mathematical
                    // alphabets) and the double-circled digits have no decomposition;
                    // folding them anyway costs nothing.
                    Fold::Ascii(a) if a.is_ascii_alphanumeric() && nfkc != c.to_string() => {
                        assert_eq!(nfkc, char::from(a).to_string(), "U+{u:04X}")
                    }
                    Fold::Str(s) if nfkc != c.to_string() => assert_eq!(nfkc, s, "U+{u:04X}"),
                    _ => unfolded.extend((plain && !c.is_ascii()).then(|| (u, nfkc.clone()))),
                }
            }
        }
        assert!(unfolded.is_empty(), "not folded: {unfolded:X?}");
    }
}
