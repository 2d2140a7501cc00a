//! Check-digit algorithms and fixed code lists: Verhoeff (Aadhaar, VID), Luhn and
//! network prefixes (cards), the GSTIN mod-36 check character, the PAN holder-type
//! letter and Indian state codes. Inputs are digit values (0-9), not ASCII.

const VERHOEFF_D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];

const VERHOEFF_P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];

#[cfg(test)]
const VERHOEFF_INV: [u8; 10] = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9];

/// Whether `digits` (check digit last) pass the Verhoeff check.
pub(crate) fn verhoeff_valid(digits: &[u8]) -> bool {
    let mut c = 0u8;
    for (i, &d) in digits.iter().rev().enumerate() {
        c = VERHOEFF_D[c as usize][VERHOEFF_P[i % 8][d as usize % 10] as usize];
    }
    c == 0
}

/// The Verhoeff check digit to append to `digits`.
#[cfg(test)]
pub(crate) fn verhoeff_check_digit(digits: &[u8]) -> u8 {
    let mut c = 0u8;
    for (i, &d) in digits.iter().rev().enumerate() {
        c = VERHOEFF_D[c as usize][VERHOEFF_P[(i + 1) % 8][d as usize % 10] as usize];
    }
    VERHOEFF_INV[c as usize]
}

/// Whether `digits` (check digit last) pass the Luhn check.
pub(crate) fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut x = u32::from(d);
        if i % 2 == 1 {
            x *= 2;
            if x > 9 {
                x -= 9;
            }
        }
        sum += x;
    }
    sum % 10 == 0
}

/// The Luhn check digit to append to `digits`.
#[cfg(test)]
pub(crate) fn luhn_check_digit(digits: &[u8]) -> u8 {
    (0..10)
        .find(|&c| {
            let mut v = digits.to_vec();
            v.push(c);
            luhn_valid(&v)
        })
        .unwrap_or(0)
}

/// Whether a card number of this length starts with a known network prefix
/// (Visa, Mastercard, Amex, RuPay, Diners, JCB, Discover).
pub(crate) fn card_prefix_valid(d: &[u8]) -> bool {
    if d.len() < 13 || d.len() > 19 {
        return false;
    }
    let two = d[0] * 10 + d[1];
    let three = u16::from(two) * 10 + u16::from(d[2]);
    let four = three * 10 + u16::from(d[3]);
    match two {
        40..=49 => true,                          // Visa
        51..=55 => true,                          // Mastercard
        22..=27 => (2221..=2720).contains(&four), // Mastercard 2-series
        34 | 37 => d.len() == 15,                 // Amex
        36 | 38 => true,                          // Diners
        35 => true,                               // JCB
        60 | 65 | 81 | 82 | 64 => true,           // RuPay, Discover
        50 => three == 508,                       // RuPay
        _ => false,
    }
}

/// Value of a GSTIN character in base 36 (`0-9`, `A-Z`).
fn base36(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'A'..=b'Z' => Some(u32::from(c - b'A') + 10),
        _ => None,
    }
}

/// Whether the 15-character GSTIN (ASCII, uppercase) has a valid check character.
pub(crate) fn gstin_check_valid(g: &[u8; 15]) -> bool {
    gstin_check_char(&g[..14]) == Some(g[14])
}

/// The GSTIN mod-36 check character for the first 14 characters.
pub(crate) fn gstin_check_char(first14: &[u8]) -> Option<u8> {
    let mut sum = 0u32;
    for (i, &c) in first14.iter().enumerate() {
        let v = base36(c)? * if i % 2 == 1 { 2 } else { 1 };
        sum += v / 36 + v % 36;
    }
    let check = (36 - sum % 36) % 36;
    // `check` is below 36, so the cast to u8 cannot truncate.
    let check = check as u8;
    Some(if check < 10 {
        b'0' + check
    } else {
        b'A' + check - 10
    })
}

/// Whether the PAN's 4th character (holder type) is one the tax department issues.
pub(crate) fn pan_holder_type_valid(c: u8) -> bool {
    matches!(
        c.to_ascii_uppercase(),
        b'A' | b'B' | b'C' | b'F' | b'G' | b'H' | b'J' | b'L' | b'P' | b'T'
    )
}

/// Vehicle/licence state and union-territory codes (including old ones still on plates).
const STATE_CODES: [&[u8; 2]; 40] = [
    b"AN", b"AP", b"AR", b"AS", b"BR", b"CG", b"CH", b"DD", b"DL", b"DN", b"GA", b"GJ", b"HP",
    b"HR", b"JH", b"JK", b"KA", b"KL", b"LA", b"LD", b"MH", b"ML", b"MN", b"MP", b"MZ", b"NL",
    b"OD", b"OR", b"PB", b"PY", b"RJ", b"SK", b"TN", b"TR", b"TS", b"UK", b"UP", b"WB", b"UA",
    b"BH",
];

/// Whether two uppercase ASCII letters are an Indian state/UT code.
pub(crate) fn is_state_code(a: u8, b: u8) -> bool {
    STATE_CODES.iter().any(|s| s[0] == a && s[1] == b)
}

/// Whether a two-digit GST state code is assigned (01-38, 97 other territory, 99 centre).
pub(crate) fn gst_state_valid(tens: u8, ones: u8) -> bool {
    let n = tens * 10 + ones;
    (1..=38).contains(&n) || n == 97 || n == 99
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(s: &str) -> Vec<u8> {
        s.bytes()
            .filter(u8::is_ascii_digit)
            .map(|b| b - b'0')
            .collect()
    }

    #[test]
    fn verhoeff_known_values() {
        // Published test vector: 236 -> check digit 3.
        assert_eq!(verhoeff_check_digit(&digits("236")), 3);
        assert!(verhoeff_valid(&digits("2363")));
        // Corpus Aadhaar numbers.
        assert!(verhoeff_valid(&digits("3417-7763-1706")));
        assert!(verhoeff_valid(&digits("372645606777")));
        assert!(verhoeff_valid(&digits("2740885595406626")));
        // One digit changed or two adjacent digits swapped is always caught.
        assert!(!verhoeff_valid(&digits("3417-7763-1707")));
        assert!(!verhoeff_valid(&digits("3417-7736-1706")));
        for body in ["23456789012", "98765432101", "555555555555111"] {
            let mut d = digits(body);
            d.push(verhoeff_check_digit(&d));
            assert!(verhoeff_valid(&d));
            let last = d.len() - 1;
            d[last] = (d[last] + 1) % 10;
            assert!(!verhoeff_valid(&d));
        }
    }

    #[test]
    fn luhn_and_prefixes() {
        assert!(luhn_valid(&digits("4111111111111111")));
        assert!(luhn_valid(&digits("347439150008060")));
        assert!(!luhn_valid(&digits("4111111111111112")));
        assert!(card_prefix_valid(&digits("4111111111111111")));
        assert!(card_prefix_valid(&digits("6081127505546135")));
        assert!(card_prefix_valid(&digits("5081127505546135")));
        assert!(card_prefix_valid(&digits("8171127505546135")));
        assert!(card_prefix_valid(&digits("2221000000000009")));
        assert!(!card_prefix_valid(&digits("2220000000000009")));
        assert!(!card_prefix_valid(&digits("5091127505546135")));
        assert!(!card_prefix_valid(&digits("1234567890123456")));
        assert!(!card_prefix_valid(&digits("411111111111"))); // too short
        let mut d = digits("608112750554613");
        d.push(luhn_check_digit(&d));
        assert!(luhn_valid(&d));
    }

    #[test]
    fn gstin_check_character() {
        for g in ["09XKXBW8683J8ZM", "27AAPFU0939F1ZV", "29EJZHS2709F1ZW"] {
            let b: [u8; 15] = g.as_bytes().try_into().unwrap();
            assert!(gstin_check_valid(&b), "{g}");
        }
        let b: [u8; 15] = b"09XKXBW8683J8ZN".to_owned();
        assert!(!gstin_check_valid(&b));
        assert_eq!(gstin_check_char(b"09xk"), None);
    }

    #[test]
    fn codes() {
        assert!(pan_holder_type_valid(b'P'));
        assert!(!pan_holder_type_valid(b'Y'));
        assert!(is_state_code(b'K', b'A'));
        assert!(!is_state_code(b'Z', b'Z'));
        assert!(gst_state_valid(0, 9));
        assert!(!gst_state_valid(0, 0));
        assert!(!gst_state_valid(5, 5));
    }
}
