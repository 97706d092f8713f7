//! Validated input types: once parsed, a value is known good, so nothing past
//! the edge re-checks it. Failures are 422 `validation_failed` naming the field.

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

/// An email address, trimmed and lower-cased (unique case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses `raw` for `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Email> {
        let value = raw.trim().to_lowercase();
        if value.len() > EMAIL_MAX {
            return Err(Error::invalid_field(
                field,
                format!("at most {EMAIL_MAX} characters"),
            ));
        }
        if !email_address::EmailAddress::is_valid(&value) || !value.contains('.') {
            return Err(Error::invalid_field(field, "not a valid email address"));
        }
        Ok(Email(value))
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

/// A required one-line text: trimmed, 1..=`max` characters, no control characters.
pub fn name(field: &str, raw: &str, max: usize) -> Result<String> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(Error::invalid_field(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(Error::invalid_field(
            field,
            format!("at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid_field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

/// An optional one-line text with the rules of [`name`].
pub fn optional_name(field: &str, raw: Option<&str>, max: usize) -> Result<Option<String>> {
    raw.map(|r| name(field, r, max)).transpose()
}
