//! Tests only: the spec's "Settled cases (real pasted text)", one test per section,
//! each generated over every entity type or every variant the section names.

use super::evaluation::assert_spans_valid;
use super::validators::{gstin_check_char, verhoeff_check_digit};
use super::{Classifier, Entity, EntityType, Tier};

/// A valid value of every type, with the words that give it its context (for the
/// types that need context), as `(type, before, value)`.
fn samples() -> Vec<(EntityType, &'static str, String)> {
    let vid = {
        let mut d = vec![9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5];
        d.push(verhoeff_check_digit(&d));
        let s: String = d.iter().map(|x| char::from(b'0' + x)).collect();
        format!("{} {} {} {}", &s[..4], &s[4..8], &s[8..12], &s[12..])
    };
    let gstin = {
        let first = b"27ABCPK1234L1Z";
        let c = gstin_check_char(first).unwrap();
        format!("{}{}", std::str::from_utf8(first).unwrap(), char::from(c))
    };
    vec![
        (EntityType::Aadhaar, "Aadhaar ", "2345 6789 0124".into()),
        (EntityType::AadhaarVid, "VID ", vid),
        (
            EntityType::PaymentCard,
            "card ",
            "4111 1111 1111 1111".into(),
        ),
        (EntityType::BankAccount, "account ", "123456789012".into()),
        (EntityType::UpiId, "pay ", "ramesh.k@okaxis".into()),
        (EntityType::Abha, "ABHA ", "12-3456-7890-1234".into()),
        (EntityType::Pan, "PAN ", "ABCPK1234L".into()),
        (EntityType::Passport, "passport ", "J8369854".into()),
        (EntityType::VoterId, "EPIC ", "ABC1234567".into()),
        (EntityType::DrivingLicence, "DL ", "MH12 20110012345".into()),
        (EntityType::Phone, "mobile ", "9876543210".into()),
        (EntityType::Email, "mail ", "priya.s@example.org".into()),
        (EntityType::Gstin, "GSTIN ", gstin),
        (EntityType::Ifsc, "IFSC ", "SBIN0001234".into()),
        (
            EntityType::VehicleRegistration,
            "vehicle ",
            "MH12AB1234".into(),
        ),
        (EntityType::IpAddress, "server ", "192.168.10.20".into()),
        (EntityType::IpAddress, "server ", "2001:db8::1".into()),
    ]
}

/// Boundary classes the spec names: `(left, right)` around a value.
const BOUNDARIES: &[(&str, &str)] = &[
    ("**", "**"),
    ("*", "*"),
    ("_", "_"),
    ("__", "__"),
    ("~~", "~~"),
    ("`", "`"),
    ("|", "|"),
    ("| ", " |"),
    ("\"", "\""),
    ("'", "'"),
    ("“", "”"),
    ("(", ")"),
    ("[", "]"),
    ("{", "}"),
    ("<b>", "</b>"),
    ("#", "#"),
    (":", ":"),
    ("=", "&"),
    ("/", "/"),
    ("😀", "😀"),
    ("👉", "✅"),
    ("«", "»"),
    ("", ","),
    ("", ";"),
    ("", "."),
    ("", "।"),
    ("", "!"),
    ("", "?"),
];

fn scan(text: &str) -> Vec<Entity> {
    let found = Classifier::new().scan(text);
    assert_spans_valid(text, &found);
    found
}

fn has(found: &[Entity], kind: EntityType, start: usize, end: usize) -> bool {
    found
        .iter()
        .any(|e| e.kind == kind && e.start == start && e.end == end)
}

#[test]
fn every_type_next_to_every_boundary_class_is_found_with_exact_offsets() {
    let mut failures = Vec::new();
    for (kind, before, value) in samples() {
        for (l, r) in BOUNDARIES {
            let text = format!("{before}{l}{value}{r} thanks");
            let start = before.len() + l.len();
            if !has(&scan(&text), kind, start, start + value.len()) {
                failures.push(format!("{kind}: {text:?} -> {:?}", scan(&text)));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_same_value_glued_to_a_letter_or_digit_is_not_that_value() {
    let mut failures = Vec::new();
    for (kind, before, value) in samples() {
        for (l, r) in [
            ("x", ""),
            ("", "x"),
            ("Q", ""),
            ("", "Q"),
            ("7", ""),
            ("", "7"),
            ("क", ""),
            ("", "क"),
        ] {
            let text = format!("{before}{l}{value}{r} thanks");
            let start = before.len() + l.len();
            if has(&scan(&text), kind, start, start + value.len()) {
                failures.push(format!("{kind}: {text:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The standard groupings of the grouped types, as digit strings and group sizes.
fn grouped() -> Vec<(EntityType, &'static str, &'static str, &'static [usize])> {
    vec![
        (EntityType::Aadhaar, "Aadhaar ", "234567890124", &[4, 4, 4]),
        (
            EntityType::PaymentCard,
            "card ",
            "4111111111111111",
            &[4, 4, 4, 4],
        ),
        (
            EntityType::PaymentCard,
            "amex ",
            "378282246310005",
            &[4, 6, 5],
        ),
        (EntityType::Abha, "ABHA ", "12345678901234", &[2, 4, 4, 4]),
        (EntityType::Phone, "mobile ", "9876543210", &[5, 5]),
    ]
}

fn group(digits: &str, sizes: &[usize], seps: &[&str]) -> String {
    let mut out = String::new();
    let mut at = 0;
    for (i, n) in sizes.iter().enumerate() {
        if i > 0 {
            out.push_str(seps[(i - 1) % seps.len()]);
        }
        out.push_str(&digits[at..at + n]);
        at += n;
    }
    out
}

#[test]
fn groups_may_be_separated_by_any_separator_the_spec_allows_mixed() {
    let seps = [
        " ", "  ", "   ", "\t", " \t", "\u{A0}", "\u{2009}", "\u{202F}", "\u{3000}", "\n", " \n ",
        "\r\n", "  \n", "-", "–", "—", ".", "_", "/", " - ",
    ];
    let mut failures = Vec::new();
    for (kind, before, digits, sizes) in grouped() {
        for (i, sep) in seps.iter().enumerate() {
            // Alone, and mixed with the next separator in the list.
            for mix in [vec![*sep], vec![*sep, seps[(i + 7) % seps.len()]]] {
                let value = group(digits, sizes, &mix);
                let text = format!("{before}{value} ok");
                if !has(&scan(&text), kind, before.len(), before.len() + value.len()) {
                    failures.push(format!("{kind}: {text:?} -> {:?}", scan(&text)));
                }
            }
        }
        // Too much space, or a blank line, splits a number.
        for sep in ["    ", "\n\n", " \n \n ", "--", ".."] {
            let value = group(digits, sizes, &[sep]);
            let text = format!("{before}{value} ok");
            if scan(&text)
                .iter()
                .any(|e| e.kind == kind && e.end - e.start >= value.len())
            {
                failures.push(format!("{kind} across {sep:?}: {text:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn numbers_on_consecutive_lines_stay_separate() {
    let text = "Aadhaar list:\n2345 6789 0124\n3417 7763 1706\n4111 1111 1111 1111";
    let found: Vec<_> = scan(text)
        .iter()
        .map(|e| (e.kind, &text[e.start..e.end]))
        .collect();
    assert_eq!(
        found,
        vec![
            (EntityType::Aadhaar, "2345 6789 0124"),
            (EntityType::Aadhaar, "3417 7763 1706"),
            (EntityType::PaymentCard, "4111 1111 1111 1111"),
        ]
    );
}

const FORMAT_CHARS: [char; 8] = [
    '\u{200B}', '\u{200C}', '\u{200D}', '\u{00AD}', '\u{2060}', '\u{FEFF}', '\u{180E}', '\u{202C}',
];

#[test]
fn invisible_characters_inside_or_around_a_value_are_ignored() {
    let mut failures = Vec::new();
    for (kind, before, value) in samples() {
        for (n, fc) in FORMAT_CHARS.iter().enumerate() {
            // Between every two characters, or after every third one.
            let step = if n % 2 == 0 { 1 } else { 3 };
            let mut hidden = String::new();
            for (i, c) in value.chars().enumerate() {
                if i > 0 && i % step == 0 {
                    hidden.push(*fc);
                }
                hidden.push(c);
            }
            let text = format!("{before}{fc}{hidden}{fc} ok");
            let start = before.len() + fc.len_utf8();
            if !has(&scan(&text), kind, start, start + hidden.len()) {
                failures.push(format!(
                    "{kind} with U+{:04X}: {:?}",
                    *fc as u32,
                    scan(&text)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `c` written in a compatibility form: fullwidth, mathematical bold, monospace.
fn lookalike(c: char, style: usize) -> char {
    let (digit0, upper_a, lower_a) = match style {
        0 => (0xFF10, 0xFF21, 0xFF41),
        1 => (0x1D7CE, 0x1D400, 0x1D41A),
        _ => (0x1D7F6, 0x1D670, 0x1D68A),
    };
    let u = match c {
        '0'..='9' => digit0 + (c as u32 - '0' as u32),
        'A'..='Z' => upper_a + (c as u32 - 'A' as u32),
        'a'..='z' => lower_a + (c as u32 - 'a' as u32),
        _ => return c,
    };
    char::from_u32(u).unwrap_or(c)
}

#[test]
fn lookalike_digits_and_letters_count_as_plain_ones() {
    let mut failures = Vec::new();
    for (kind, before, value) in samples() {
        for style in 0..3 {
            let odd: String = value.chars().map(|c| lookalike(c, style)).collect();
            let text = format!("{before}{odd} ok");
            if !has(&scan(&text), kind, before.len(), before.len() + odd.len()) {
                failures.push(format!("{kind} style {style}: {text:?}"));
            }
        }
    }
    // Circled digits.
    let text = "Aadhaar ②③④⑤ ⑥⑦⑧⑨ ⓪①②④";
    assert!(
        has(&scan(text), EntityType::Aadhaar, 8, text.len()),
        "{:?}",
        scan(text)
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn labels_and_field_names_are_context() {
    for text in [
        "Acct#123456789",
        "account_no: 123456789012",
        "acctNumber=123456789012",
        "a/c-no 123456789012",
        "ACCOUNT NUMBER: 123456789012",
        "{\"customerAccountNo\": \"123456789012\"}",
        "mera khata number 123456789012 hai",
        "khaata no. 123456789012",
        "खाता संख्या 123456789012",
    ] {
        let found = scan(text);
        assert!(
            found.iter().any(|e| e.kind == EntityType::BankAccount),
            "{text}: {found:?}"
        );
    }
    // Romanised Hindi decides an ambiguous number.
    let n = "919876543007"; // a 91-prefixed mobile that also passes Verhoeff
    for (text, kind) in [
        (format!("mobile no {n}"), EntityType::Phone),
        (format!("phone no. {n}"), EntityType::Phone),
        (format!("aadhar {n}"), EntityType::Aadhaar),
        (format!("adhar card no {n}"), EntityType::Aadhaar),
    ] {
        assert_eq!(scan(&text).first().map(|e| e.kind), Some(kind), "{text}");
    }
}

fn kinds_in(text: &str, kind: EntityType) -> Vec<&str> {
    scan(text)
        .into_iter()
        .filter(|e| e.kind == kind)
        .map(|e| &text[e.start..e.end])
        .collect()
}

#[test]
fn a_column_headed_account_no_makes_every_cell_an_account() {
    let cells = [
        "123456789",
        "50100234567891",
        "000123456789012",
        "31234567890",
    ];
    let csv = format!(
        "Name,Account No,Branch\nRavi,{},Pune\n\"Iyer, A\",{},Goa\nMeena,{},\"Navi Mumbai\"\nJoseph,{},Kochi\n",
        cells[0], cells[1], cells[2], cells[3]
    );
    assert_eq!(kinds_in(&csv, EntityType::BankAccount), cells, "{csv}");
    let md = format!(
        "| Name | Account No | Branch |\n|------|-----------:|--------|\n| Ravi | {} | Pune |\n| Asha | {} | Goa |\n| Meena | {} | Thane |\n| Joseph | {} | Kochi |\n",
        cells[0], cells[1], cells[2], cells[3]
    );
    assert_eq!(kinds_in(&md, EntityType::BankAccount), cells, "{md}");
    let tsv = format!(
        "\"Customer\"\t\"A/C No\"\n\"Ravi\"\t\"{}\"\n\"Asha\"\t\"{}\"\n",
        cells[0], cells[1]
    );
    assert_eq!(
        kinds_in(&tsv, EntityType::BankAccount),
        &cells[..2],
        "{tsv}"
    );
    // The same digits under "Invoice", next to an account column, are not accounts.
    let csv = format!(
        "Invoice,Amount,Account No\n{},1200,{}\n{},900,{}\n",
        cells[0], cells[3], cells[1], cells[2]
    );
    assert_eq!(
        kinds_in(&csv, EntityType::BankAccount),
        [cells[3], cells[2]],
        "{csv}"
    );
    let md = format!(
        "| Invoice | Amount |\n|---|---|\n| {} | 1200 |\n| {} | 900 |\n",
        cells[0], cells[1]
    );
    assert!(scan(&md).is_empty(), "{md}: {:?}", scan(&md));
    // A header "Order ID" makes 10-digit numbers references, not phones; "Mobile"
    // keeps them phones.
    let csv = "Order ID,Mobile\n9876543210,9123456780\n8765432109,7012345678\n";
    assert_eq!(
        kinds_in(csv, EntityType::Phone),
        ["9123456780", "7012345678"]
    );
    // A bare 14-digit number under a health ID header is an ABHA number.
    let csv = "Patient,ABHA ID\nRavi,12345678901234\nAsha,98765432109876\n";
    assert_eq!(
        kinds_in(csv, EntityType::Abha),
        ["12345678901234", "98765432109876"]
    );
}

#[test]
fn precision_rules() {
    // Lowercase PAN only with a PAN word nearby.
    assert_eq!(kinds_in("pan: abcpe1234f", EntityType::Pan), ["abcpe1234f"]);
    assert_eq!(
        kinds_in("my pan card abcpe1234f", EntityType::Pan),
        ["abcpe1234f"]
    );
    assert!(kinds_in("ref abcpe1234f", EntityType::Pan).is_empty());
    assert_eq!(kinds_in("ref ABCPE1234F", EntityType::Pan), ["ABCPE1234F"]);
    // Labelled references are not phones; plain 10-digit mobiles are.
    for text in [
        "Order 9876543210 shipped",
        "Order ID: 9876543210",
        "Invoice No. 9876543210",
        "UTR 9876543210",
        "AWB no 9876543210",
        "Ticket #9876543210",
        "txn id 9876543210",
        "ref: 9876543210",
        "Policy No. 9876543210",
        "orderId=9876543210",
    ] {
        assert!(kinds_in(text, EntityType::Phone).is_empty(), "{text}");
    }
    for text in [
        "call 9876543210",
        "+919876543210",
        "+91-98765-43210",
        "Box 9876543210",
        "Mobile No. 98765 43210",
        "customer 9876543210 called",
    ] {
        assert_eq!(kinds_in(text, EntityType::Phone).len(), 1, "{text}");
    }
    // STD-code landlines and labelled ones are not mobiles.
    for text in [
        "080-2345 6789",
        "0124 234 5678",
        "022 2345 6789",
        "Tel: 9876543210",
        "Office 9876543210",
        "landline 9876543210",
        "fax 9876543210",
    ] {
        assert!(kinds_in(text, EntityType::Phone).is_empty(), "{text}");
    }
    // UPI: a known handle, or a UPI word; package and host names are not.
    assert_eq!(
        kinds_in("pay ravi@okhdfcbank", EntityType::UpiId),
        ["ravi@okhdfcbank"]
    );
    assert_eq!(
        kinds_in("UPI id: ravi@mybank", EntityType::UpiId),
        ["ravi@mybank"]
    );
    assert_eq!(
        kinds_in("GPay ravi@newpsp", EntityType::UpiId),
        ["ravi@newpsp"]
    );
    for text in [
        "npm i react@latest",
        "ssh user@localhost",
        "git@github:org/repo.git",
        "pip install pkg@next",
    ] {
        assert!(scan(text).is_empty(), "{text}: {:?}", scan(text));
    }
    // Version strings are not addresses.
    for text in [
        "version 10.0.0.1",
        "v 1.2.3.4",
        "ver. 2.10.3.1",
        "build 10.0.19041.1",
        "Version: 4.4.0.2",
    ] {
        assert!(kinds_in(text, EntityType::IpAddress).is_empty(), "{text}");
    }
    assert_eq!(
        kinds_in("server 10.0.0.1", EntityType::IpAddress),
        ["10.0.0.1"]
    );
    // Labelled cloud ids are not bank accounts.
    for text in [
        "AWS account 123456789012",
        "aws account id: 123456789012",
        "Azure subscription id 123456789012",
        "GCP project number 123456789012",
        "arn:aws:iam::123456789012:role/admin",
    ] {
        assert!(kinds_in(text, EntityType::BankAccount).is_empty(), "{text}");
    }
    assert_eq!(
        kinds_in("SBI account 123456789012", EntityType::BankAccount),
        ["123456789012"]
    );
}

#[test]
fn masked_values_are_not_entities_but_bold_ones_are() {
    for text in [
        "XXXX XXXX 0124",
        "Aadhaar XXXX-XXXX-0124",
        "card **** **** **** 1111",
        "card •••• •••• •••• 1111",
        "**** 2345 6789 0124",
        "2345 6789 0124 ****",
    ] {
        assert!(scan(text).is_empty(), "{text}: {:?}", scan(text));
    }
    assert_eq!(
        kinds_in("**Aadhaar:** 2345 6789 0124", EntityType::Aadhaar),
        ["2345 6789 0124"]
    );
    assert_eq!(
        kinds_in("**2345 6789 0124**", EntityType::Aadhaar),
        ["2345 6789 0124"]
    );
}

/// The invariant the fuzz target checks, over generated inputs: hiding characters or
/// changing separators never lowers a text's tier.
#[test]
fn evasions_never_lower_the_tier() {
    let c = Classifier::new();
    for (kind, before, digits, sizes) in grouped() {
        let plain = format!("{before}{}", group(digits, sizes, &[" "]));
        let tier = super::tier_of(&c.scan(&plain));
        assert!(tier >= kind.tier(), "{plain}");
        for (i, fc) in FORMAT_CHARS.iter().enumerate() {
            let seps = ["-", ".", "/", "_", "\u{A0}", "\n", "–", "  "];
            let sep = format!("{fc}{}", seps[i % seps.len()]);
            let text = format!("{before}{}", group(digits, sizes, &[&sep]));
            let hidden: String = text
                .chars()
                .flat_map(|ch| [Some(ch), ch.is_ascii_digit().then_some(*fc)])
                .flatten()
                .collect();
            assert!(super::tier_of(&c.scan(&hidden)) >= tier, "{hidden:?}");
        }
    }
    assert!(Tier::Restricted > Tier::Confidential);
}
