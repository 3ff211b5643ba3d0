//! Redaction of secrets and personal data in generated text: API keys and private keys, payment
//! card numbers (Luhn-checked), email addresses and phone numbers become `[REDACTED:kind]`.
//! Patterns, not a model: they are precise for the formats they know and blind to the rest.

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::Regex;

/// (kind, pattern), tried in this order (secrets before the looser number patterns).
const PATTERNS: [(&str, &str); 7] = [
    (
        "private_key",
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
    ),
    (
        "api_key",
        r"\b(?:sk-[A-Za-z0-9_-]{20,}|tdm-[0-9a-f]{48}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})",
    ),
    (
        "email",
        r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
    ),
    // 13–19 digits, optionally grouped by single spaces or dashes (checked with Luhn below).
    ("card", r"\b\d(?:[ -]?\d){12,18}\b"),
    ("iban", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b"),
    // +CC and 6–14 digits, or (NNN) NNN-NNNN / NNN-NNN-NNNN / NNN.NNN.NNNN.
    ("phone", r"\+\d{1,3}[ .-]?\(?\d{1,4}\)?(?:[ .-]?\d{2,4}){2,4}\b"),
    ("phone", r"(?:\(\d{3}\) ?|\b\d{3}[.-])\d{3}[.-]\d{4}\b"),
];

fn patterns() -> &'static [(&'static str, Regex)] {
    static RE: OnceLock<Vec<(&'static str, Regex)>> = OnceLock::new();
    RE.get_or_init(|| {
        PATTERNS
            .iter()
            .map(|(k, p)| (*k, Regex::new(p).expect("redaction patterns compile")))
            .collect()
    })
}

/// The Luhn checksum of the digits in `s` holds (payment cards).
fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                (d * 2) % 9 + if d == 9 { 9 } else { 0 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// `text` with every recognised secret or personal datum replaced by `[REDACTED:kind]`; borrowed
/// when nothing matched.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    for (kind, re) in patterns() {
        if !re.is_match(&out) {
            continue;
        }
        let replaced = re.replace_all(&out, |c: &regex::Captures| {
            let m = &c[0];
            if *kind == "card" && !luhn(m) {
                m.to_string()
            } else {
                format!("[REDACTED:{kind}]")
            }
        });
        if let Cow::Owned(s) = replaced {
            out = Cow::Owned(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{luhn, redact};

    #[test]
    fn secrets_and_personal_data_are_replaced() {
        let cases = [
            (
                "mail me at jane.doe+x@example.co.uk today",
                "mail me at [REDACTED:email] today",
            ),
            ("card 4111 1111 1111 1111 ok", "card [REDACTED:card] ok"),
            ("card 4111-1111-1111-1111", "card [REDACTED:card]"),
            ("key sk-proj-abcdefghijklmnopqrstuvwx123", "key [REDACTED:api_key]"),
            ("AKIAIOSFODNN7EXAMPLE is the id", "[REDACTED:api_key] is the id"),
            ("call +44 20 7946 0958 now", "call [REDACTED:phone] now"),
            ("or (555) 123-4567.", "or [REDACTED:phone]."),
            ("IBAN DE89 3704 0044 0532 0130 00", "IBAN [REDACTED:iban]"),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
                "[REDACTED:private_key]",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(redact(text), want, "{text}");
        }
    }

    #[test]
    fn ordinary_text_and_numbers_stay() {
        for text in [
            "The answer is 42, and 3.14159 is pi.",
            "Order 1234567890123 shipped", // 13 digits failing Luhn: not a card
            "version 1.2.3, port 8080, year 2026-11-27",
            "def add(a, b): return a + b",
            "email me? no",
        ] {
            assert_eq!(redact(text), text, "{text}");
        }
        assert!(luhn("4111111111111111"));
        assert!(!luhn("4111111111111112"));
    }
}
