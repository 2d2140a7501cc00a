//! Sensitivity classification: finds Indian personal and regulated data in text and in
//! OpenAI-style request bodies, and turns what it found into a [`Tier`].
//!
//! The contract (entity names, tiers, rules, CLI output) is `shared/spec/sensitivity.md`.
//! Everything here is a pure function over bytes: no I/O except in [`cli`], no clock,
//! no logging. Sensitive values never leave this module except as spans; only the CLI
//! prints a value, and only when asked to with `--show-values`.
//!
//! Layout: `fold` maps invisible and look-alike characters to plain ones (offsets kept),
//! `digits` decodes digits of any Indian script, `validators` holds the check-digit
//! algorithms, `context` finds the context words that decide ambiguous numbers,
//! `table` finds the column header of a value in a pasted table, `detect` is the
//! scanner, `request` walks JSON request bodies, `body` reads bodies of every content
//! type (uploads, forms, text, binary) with `multipart` splitting form-data bodies,
//! and [`cli`] is the `classify` command.

use std::fmt;
use std::str::FromStr;

pub use residency_proto::Tier;

mod body;
pub mod cli;
mod context;
mod detect;
mod digits;
mod fold;
mod multipart;
mod request;
mod table;
mod validators;

#[cfg(test)]
mod evaluation;
#[cfg(test)]
mod settled;

pub use detect::Classifier;
pub use multipart::{field_spans, MultipartError};
pub use request::{RequestClassification, UnscannableBody, MAX_DEPTH};

/// The kinds of entity the classifier reports. Names are stable (see the spec):
/// add new variants at the end, never rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityType {
    /// 12-digit Aadhaar number with a valid Verhoeff check digit.
    Aadhaar,
    /// 16-digit Aadhaar Virtual ID with a valid Verhoeff check digit.
    AadhaarVid,
    /// Payment card number: Luhn-valid with a known network prefix.
    PaymentCard,
    /// Bank account number (9-18 digits next to an account context word).
    BankAccount,
    /// UPI virtual payment address (`handle@psp`).
    UpiId,
    /// 14-digit ABHA health ID.
    Abha,
    /// Permanent Account Number.
    Pan,
    /// Indian passport number.
    Passport,
    /// EPIC voter ID.
    VoterId,
    /// Driving licence number.
    DrivingLicence,
    /// Indian mobile number.
    Phone,
    /// E-mail address with a dotted domain.
    Email,
    /// GST identification number with a valid check character.
    Gstin,
    /// Bank branch IFSC code.
    Ifsc,
    /// Vehicle registration number.
    VehicleRegistration,
    /// IPv4 or IPv6 address.
    IpAddress,
}

/// A type name that is not in the spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown entity type {0:?}")]
pub struct UnknownEntityType(pub String);

impl EntityType {
    /// Every entity type, in declaration (and `Ord`) order.
    pub const ALL: [EntityType; 16] = [
        EntityType::Aadhaar,
        EntityType::AadhaarVid,
        EntityType::PaymentCard,
        EntityType::BankAccount,
        EntityType::UpiId,
        EntityType::Abha,
        EntityType::Pan,
        EntityType::Passport,
        EntityType::VoterId,
        EntityType::DrivingLicence,
        EntityType::Phone,
        EntityType::Email,
        EntityType::Gstin,
        EntityType::Ifsc,
        EntityType::VehicleRegistration,
        EntityType::IpAddress,
    ];

    /// The spec's stable name, e.g. `"aadhaar_vid"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityType::Aadhaar => "aadhaar",
            EntityType::AadhaarVid => "aadhaar_vid",
            EntityType::PaymentCard => "payment_card",
            EntityType::BankAccount => "bank_account",
            EntityType::UpiId => "upi_id",
            EntityType::Abha => "abha",
            EntityType::Pan => "pan",
            EntityType::Passport => "passport",
            EntityType::VoterId => "voter_id",
            EntityType::DrivingLicence => "driving_licence",
            EntityType::Phone => "phone",
            EntityType::Email => "email",
            EntityType::Gstin => "gstin",
            EntityType::Ifsc => "ifsc",
            EntityType::VehicleRegistration => "vehicle_registration",
            EntityType::IpAddress => "ip_address",
        }
    }

    /// The tier the spec assigns to this type.
    pub fn tier(self) -> Tier {
        match self {
            EntityType::Aadhaar
            | EntityType::AadhaarVid
            | EntityType::PaymentCard
            | EntityType::BankAccount
            | EntityType::UpiId
            | EntityType::Abha => Tier::Restricted,
            EntityType::Pan
            | EntityType::Passport
            | EntityType::VoterId
            | EntityType::DrivingLicence
            | EntityType::Phone
            | EntityType::Email => Tier::Confidential,
            EntityType::Gstin
            | EntityType::Ifsc
            | EntityType::VehicleRegistration
            | EntityType::IpAddress => Tier::Internal,
        }
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntityType {
    type Err = UnknownEntityType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntityType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEntityType(s.to_owned()))
    }
}

/// One entity found in a text: its type and UTF-8 byte span (end exclusive).
/// Deliberately holds no value, so it can be logged and audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entity {
    /// What was found.
    pub kind: EntityType,
    /// Byte offset of the first byte; always on a char boundary.
    pub start: usize,
    /// Byte offset one past the last byte; always on a char boundary.
    pub end: usize,
}

/// The canonical form of an entity's text, so that one value written two
/// ways compares equal: invisible characters dropped and look-alikes folded,
/// digits of any script as ASCII, and for numbers and codes only letters
/// and digits (upper case); e-mail, UPI and IP addresses keep their
/// punctuation (lower case). Used to give one value one redaction
/// placeholder; it holds the value, so it is never logged.
pub fn canonical_value(kind: EntityType, text: &str) -> String {
    let folded = fold::fold(text);
    let t = folded.as_ref().map_or(text, |f| f.text.as_str());
    let b = t.as_bytes();
    let punctuated = matches!(
        kind,
        EntityType::Email | EntityType::UpiId | EntityType::IpAddress
    );
    let mut out = String::with_capacity(t.len());
    let mut i = 0;
    while i < b.len() {
        if let Some((d, n)) = digits::digit_at(b, i) {
            out.push(char::from(b'0' + d));
            i += n;
            continue;
        }
        let Some(c) = t[i..].chars().next() else {
            break;
        };
        if punctuated && !c.is_whitespace() {
            out.extend(c.to_lowercase());
        } else if c.is_alphanumeric() {
            out.extend(c.to_uppercase());
        }
        i += c.len_utf8();
    }
    out
}

/// The highest tier of the given entities; [`Tier::Public`] when there are none.
pub fn tier_of(entities: &[Entity]) -> Tier {
    entities
        .iter()
        .map(|e| e.kind.tier())
        .max()
        .unwrap_or(Tier::Public)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for t in EntityType::ALL {
            assert!(seen.insert(t.as_str()));
            assert_eq!(t.as_str().parse::<EntityType>(), Ok(t));
            assert_eq!(t.to_string(), t.as_str());
        }
        assert!("aadhar".parse::<EntityType>().is_err());
    }

    #[test]
    fn tiers_follow_the_spec() {
        assert_eq!(EntityType::AadhaarVid.tier(), Tier::Restricted);
        assert_eq!(EntityType::UpiId.tier(), Tier::Restricted);
        assert_eq!(EntityType::Phone.tier(), Tier::Confidential);
        assert_eq!(EntityType::Gstin.tier(), Tier::Internal);
        assert_eq!(tier_of(&[]), Tier::Public);
        let e = |kind| Entity {
            kind,
            start: 0,
            end: 1,
        };
        assert_eq!(
            tier_of(&[e(EntityType::Ifsc), e(EntityType::Pan)]),
            Tier::Confidential
        );
    }
}
