//! Byte-level helpers: decimal digits of any supported script, word characters and
//! char-boundary-safe neighbours. Everything works on `&[u8]` of valid UTF-8.
//!
//! Supported digit scripts: ASCII, Devanagari, Bengali, Gurmukhi, Gujarati, Oriya,
//! Tamil, Telugu, Kannada, Malayalam (all `U+0xE6..=U+0xEF` of their block, which in
//! UTF-8 is `E0 <odd A5..=B5> <A6..=AF>`), Arabic-Indic and Extended Arabic-Indic (Urdu)
//! and fullwidth digits.

/// A digit at byte offset `i`: its value and its length in bytes. Inlined into the
/// scanner's main loop, where it runs for every lead byte of Indic text.
#[inline(always)]
pub(crate) fn digit_at(b: &[u8], i: usize) -> Option<(u8, usize)> {
    let c = *b.get(i)?;
    if c.is_ascii_digit() {
        return Some((c - b'0', 1));
    }
    if c < 0x80 {
        return None;
    }
    multibyte_digit_at(b, i)
}

#[inline(always)]
fn multibyte_digit_at(b: &[u8], i: usize) -> Option<(u8, usize)> {
    let c = b[i];
    match c {
        0xE0 => {
            let (c1, c2) = (*b.get(i + 1)?, *b.get(i + 2)?);
            if (0xA5..=0xB5).contains(&c1) && c1 & 1 == 1 && (0xA6..=0xAF).contains(&c2) {
                Some((c2 - 0xA6, 3))
            } else {
                None
            }
        }
        0xEF => {
            let (c1, c2) = (*b.get(i + 1)?, *b.get(i + 2)?);
            if c1 == 0xBC && (0x90..=0x99).contains(&c2) {
                Some((c2 - 0x90, 3))
            } else {
                None
            }
        }
        0xD9 => {
            let c1 = *b.get(i + 1)?;
            (0xA0..=0xA9).contains(&c1).then(|| (c1 - 0xA0, 2))
        }
        0xDB => {
            let c1 = *b.get(i + 1)?;
            (0xB0..=0xB9).contains(&c1).then(|| (c1 - 0xB0, 2))
        }
        _ => None,
    }
}

/// The digit that ends just before byte offset `i`, with its length.
#[inline]
pub(crate) fn digit_before(b: &[u8], i: usize) -> Option<(u8, usize)> {
    if i == 0 {
        return None;
    }
    let c = b[i - 1];
    if c.is_ascii_digit() {
        return Some((c - b'0', 1));
    }
    if c < 0x80 {
        return None;
    }
    for len in [2usize, 3] {
        if i >= len {
            if let Some((v, l)) = multibyte_digit_at(b, i - len) {
                if l == len {
                    return Some((v, l));
                }
            }
        }
    }
    None
}

/// Whether a lead byte can start a non-ASCII digit (a cheap prefilter).
#[inline]
pub(crate) const fn may_start_digit(c: u8) -> bool {
    matches!(c, 0xE0 | 0xEF | 0xD9 | 0xDB)
}

/// The char that starts at byte offset `i` (which must be a char boundary).
#[inline]
pub(crate) fn char_at(text: &str, i: usize) -> Option<char> {
    text.get(i..).and_then(|s| s.chars().next())
}

/// The char that ends at byte offset `i` (which must be a char boundary).
#[inline]
pub(crate) fn char_before(text: &str, i: usize) -> Option<char> {
    text.get(..i).and_then(|s| s.chars().next_back())
}

/// A letter or digit of any script: what a match must not be glued to.
#[inline]
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// Characters used to mask numbers (`XXXX XXXX 1234`, `**** **** 1234`). Next to a
/// value they are boundaries like any other punctuation (`**2345 6789 0124**` is bold);
/// only a masking group of its own before or after the digits makes them masked.
#[inline]
pub(crate) fn is_mask_char(c: char) -> bool {
    matches!(c, 'X' | 'x' | '*' | '•' | '×')
}

/// A separator allowed between digit groups.
#[inline]
pub(crate) fn is_group_sep(c: u8) -> bool {
    c == b' ' || c == b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_digits_of_every_supported_script() {
        let samples = [
            "0123456789",
            "०१२३४५६७८९",
            "০১২৩৪৫৬৭৮৯",
            "੦੧੨੩੪੫੬੭੮੯",
            "૦૧૨૩૪૫૬૭૮૯",
            "୦୧୨୩୪୫୬୭୮୯",
            "௦௧௨௩௪௫௬௭௮௯",
            "౦౧౨౩౪౫౬౭౮౯",
            "೦೧೨೩೪೫೬೭೮೯",
            "൦൧൨൩൪൫൬൭൮൯",
            "٠١٢٣٤٥٦٧٨٩",
            "۰۱۲۳۴۵۶۷۸۹",
            "０１２３４５６７８９",
        ];
        for s in samples {
            let b = s.as_bytes();
            let mut i = 0;
            let mut got = Vec::new();
            while i < b.len() {
                let (v, l) = digit_at(b, i).unwrap_or_else(|| panic!("no digit in {s} at {i}"));
                assert_eq!(digit_before(b, i + l), Some((v, l)));
                got.push(v);
                i += l;
            }
            assert_eq!(got, (0..10).collect::<Vec<u8>>(), "{s}");
            // Every char agrees with the standard library's notion of a digit value.
            for (c, v) in s.chars().zip(0u8..) {
                assert!(c.is_numeric(), "{c}");
                assert_eq!(v, got[v as usize]);
            }
        }
    }

    #[test]
    fn letters_are_not_digits() {
        for s in ["a", "क", "ॐ", "१a", "।", "Ａ", "ী", "ಅ"] {
            let b = s.as_bytes();
            if s.starts_with('१') {
                continue;
            }
            assert_eq!(digit_at(b, 0), None, "{s}");
            assert_eq!(digit_before(b, b.len()), None, "{s}");
        }
        // Truncated input never panics.
        assert_eq!(digit_at(&[0xE0, 0xA5], 0), None);
        assert_eq!(digit_at(&[0xEF], 0), None);
    }
}
