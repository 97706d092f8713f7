//! Validated input types: once parsed, a value is known good, so nothing past
//! the edge re-checks it. Failures are 422 `validation_failed` naming the field.

use std::sync::OnceLock;

use regex::Regex;
use secrecy::SecretString;

use crate::error::{Error, Result};

/// Longest accepted email address (RFC 5321 path limit).
pub const EMAIL_MAX: usize = 254;
/// Password length bounds in characters (NIST SP 800-63B: at least 8; we ask 10).
pub const PASSWORD_MIN: usize = 10;
/// Upper bound, so hashing cost stays bounded.
pub const PASSWORD_MAX: usize = 128;
/// Longest name (people, businesses, companies).
pub const NAME_MAX: usize = 200;

/// The email addresses accepted, as the API document's `pattern` states
/// them: an RFC 5322 dot-atom local part and a domain of LDH labels whose
/// last label starts with a letter (no quoted local parts, no address
/// literals). The same text is written in the `#[schema(pattern)]` of
/// every email field; a test checks that the document's patterns are
/// these constants.
pub const EMAIL_PATTERN: &str = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?$";

/// One-line text (names): no control characters (C0, DEL, C1) and at
/// least one character that is not white space (Unicode `White_Space`,
/// spelled out because `\s` differs between regex dialects).
pub const NAME_PATTERN: &str = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$";

/// One-line free text that may be empty (descriptions, statuses): no
/// control characters (C0, DEL, C1). Besides keeping logs and emails one
/// line, this keeps U+0000 out: PostgreSQL's `text` cannot store it.
pub const TEXT_PATTERN: &str = r"^[^\x00-\x1f\x7f-\x9f]*$";

/// The outgoing URLs customers may register (webhook endpoints): `http` or
/// `https`, a DNS name whose last label starts with a letter or a dotted
/// IPv4 address, an optional port 1..=65535, then an optional path and
/// query of URL code points (RFC 3986 `pchar`, `/` and `?`); no user info,
/// no fragment, no IPv6 literal.
pub const URL_PATTERN: &str = r"^https?://(([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?|(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3})(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?(\?[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$";

/// Longest token a client hands back (refresh, registration and emailed
/// tokens are far shorter; the bound keeps lookups cheap).
pub const TOKEN_MAX: usize = 512;

/// A token a client hands back: 1..=[`TOKEN_MAX`] characters, else 422.
pub fn token<'a>(field: &str, raw: &'a str) -> Result<&'a str> {
    match raw.chars().count() {
        0 => Err(Error::invalid_field(field, "must not be empty")),
        n if n > TOKEN_MAX => Err(Error::invalid_field(
            field,
            format!("at most {TOKEN_MAX} characters"),
        )),
        _ => Ok(raw),
    }
}

/// Longest URL accepted.
pub const URL_MAX: usize = 2048;

/// Every `pattern` the API document states (body fields, parameters,
/// headers, streamed fields), each the very rule the server applies with
/// [`matches`]. The document's patterns are literal copies (utoipa takes
/// literals); the `openapi` tests hold the document to this list.
pub const PATTERNS: [&str; 15] = [
    EMAIL_PATTERN,
    NAME_PATTERN,
    URL_PATTERN,
    crate::domain::pagination::CURSOR_PATTERN,
    crate::domain::identity::signup::CODE_PATTERN,
    crate::domain::vault::secrets::NAME_PATTERN,
    TEXT_PATTERN,
    crate::domain::billing::plans::PLAN_ID_PATTERN,
    crate::domain::billing::customer::INVOICE_ID_PATTERN,
    crate::domain::programs::idempotency::KEY_PATTERN,
    crate::domain::events::SEQ_PATTERN,
    crate::domain::channels::whatsapp::SESSION_PATTERN,
    crate::integrations::telegram::TOKEN_PATTERN,
    crate::domain::billing::connect::COUNTRY_PATTERN,
    crate::domain::billing::purchases::CURRENCY_PATTERN,
];

/// Whether `raw` matches `pattern` (one of [`PATTERNS`], compiled once;
/// any other pattern is compiled for the call). The patterns use the
/// syntax common to ECMA-262 (JSON Schema's dialect), Python's `re` and
/// the `regex` crate, so clients and the server agree on every value.
pub fn matches(pattern: &str, raw: &str) -> bool {
    static COMPILED: OnceLock<Vec<(&'static str, Regex)>> = OnceLock::new();
    let compiled = COMPILED.get_or_init(|| {
        PATTERNS
            .iter()
            .filter_map(|p| Regex::new(p).ok().map(|re| (*p, re)))
            .collect()
    });
    match compiled.iter().find(|(p, _)| *p == pattern) {
        Some((_, re)) => re.is_match(raw),
        None => Regex::new(pattern).is_ok_and(|re| re.is_match(raw)),
    }
}

/// Whether `raw` is an outgoing URL customers may register: at most
/// [`URL_MAX`] long and matching [`URL_PATTERN`].
pub fn is_url(raw: &str) -> bool {
    raw.len() <= URL_MAX && matches(URL_PATTERN, raw)
}

/// An email address, lower-cased (unique case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses `raw` for `field`: at most [`EMAIL_MAX`] characters matching
    /// [`EMAIL_PATTERN`] exactly (no surrounding spaces), else 422.
    pub fn parse(field: &str, raw: &str) -> Result<Email> {
        if raw.chars().count() > EMAIL_MAX {
            return Err(Error::invalid_field(
                field,
                format!("at most {EMAIL_MAX} characters"),
            ));
        }
        if !matches(EMAIL_PATTERN, raw) {
            return Err(Error::invalid_field(
                field,
                "expected an address such as name@example.com",
            ));
        }
        Ok(Email(raw.to_lowercase()))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password meeting the length rules.
pub struct Password(pub SecretString);

impl Password {
    /// Parses `raw` for `field`.
    pub fn parse(field: &str, raw: SecretString) -> Result<Password> {
        use secrecy::ExposeSecret;
        let len = raw.expose_secret().chars().count();
        if len < PASSWORD_MIN {
            return Err(Error::invalid_field(
                field,
                format!("at least {PASSWORD_MIN} characters"),
            ));
        }
        if len > PASSWORD_MAX {
            return Err(Error::invalid_field(
                field,
                format!("at most {PASSWORD_MAX} characters"),
            ));
        }
        Ok(Password(raw))
    }
}

/// A required one-line text: 1..=`max` characters matching
/// [`NAME_PATTERN`] (no control characters, not only white space), kept
/// without its surrounding white space.
pub fn name(field: &str, raw: &str, max: usize) -> Result<String> {
    if raw.chars().count() > max {
        return Err(Error::invalid_field(
            field,
            format!("at most {max} characters"),
        ));
    }
    if raw.chars().any(char::is_control) {
        return Err(Error::invalid_field(
            field,
            "must not contain control characters",
        ));
    }
    if !matches(NAME_PATTERN, raw) {
        return Err(Error::invalid_field(field, "must not be empty"));
    }
    Ok(raw.trim().to_owned())
}

/// An optional one-line text with the rules of [`name`].
pub fn optional_name(field: &str, raw: Option<&str>, max: usize) -> Result<Option<String>> {
    raw.map(|r| name(field, r, max)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles() {
        for p in PATTERNS {
            assert!(Regex::new(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn emails_names_and_urls_follow_their_patterns() {
        assert!(Email::parse("email", "Ann.O'Neil+tag@Mail.Example.co").is_ok());
        for bad in [
            " a@example.com",
            "a@example.com ",
            "a@example",
            "a@-x.com",
            "a@x.1com",
            "a b@x.com",
        ] {
            assert!(Email::parse("email", bad).is_err(), "{bad:?}");
        }
        assert_eq!(name("n", "  Ann  ", 10).ok().as_deref(), Some("Ann"));
        for bad in ["", "   ", "\u{3000}", "a\tb", "a\u{85}", "12345678901"] {
            assert!(name("n", bad, 10).is_err(), "{bad:?}");
        }
        for good in [
            "https://example.com",
            "http://10.0.0.1:8080/hook?x=1",
            "https://hooks.example.co/a/b",
        ] {
            assert!(is_url(good), "{good}");
        }
        for bad in [
            "ftp://example.com",
            "https://u:p@example.com",
            "https://example.1",
            "https://[::1]/",
            "https://example.com:0",
            "https://example.com:65536",
            "https://example.com/#f",
        ] {
            assert!(!is_url(bad), "{bad}");
        }
    }
}
