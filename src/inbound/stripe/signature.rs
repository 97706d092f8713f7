//! Verification of Stripe's `Stripe-Signature` webhook header.
//!
//! Stripe signs a delivery as `t={unix seconds},v1={hex HMAC-SHA256}` where
//! the HMAC key is the endpoint's signing secret (the whole `whsec_…`
//! string) and the message is `"{t}.{raw body}"`. While a secret is being
//! rolled the header carries one `v1` per active secret; `v0` and other
//! schemes are ignored. A timestamp more than the tolerance (300 s) away
//! from now is refused, so a captured delivery cannot be replayed later.
//! See Stripe docs: webhooks/signatures.
//!
//! async-stripe's `Webhook::construct_event` keeps only the last `v1` of a
//! header and takes a single secret, so it cannot accept a delivery during a
//! secret roll; this module implements the scheme itself (HMAC from
//! `hmac`/`sha2`, comparison in constant time).

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Why a delivery was refused (every one answers 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// No `Stripe-Signature` header.
    Missing,
    /// No `t=` timestamp or no `v1=` signature in the header.
    Malformed,
    /// No `v1` matches any configured secret.
    Mismatch,
    /// Signed, but outside the tolerance.
    Stale,
}

impl SignatureError {
    /// The stable problem code.
    pub fn code(self) -> &'static str {
        match self {
            SignatureError::Missing => "signature_missing",
            SignatureError::Malformed => "signature_malformed",
            SignatureError::Mismatch => "signature_mismatch",
            SignatureError::Stale => "signature_expired",
        }
    }
}

/// Checks `header` over `body` against every secret in `secrets`, at Unix
/// time `now` with `tolerance` seconds either way.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[SecretString],
    now: i64,
    tolerance: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp: Option<&str> = None;
    let mut candidates: Vec<[u8; 32]> = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" => timestamp = Some(value),
            "v1" => {
                if let Some(sig) = decode_hex32(value) {
                    candidates.push(sig);
                }
            }
            _ => {}
        }
    }
    let t_text = timestamp.ok_or(SignatureError::Malformed)?;
    let t: i64 = t_text.parse().map_err(|_| SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let mut matched = false;
    for secret in secrets {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
            continue;
        };
        mac.update(t_text.as_bytes());
        mac.update(b".");
        mac.update(body);
        let expected = mac.finalize().into_bytes();
        for c in &candidates {
            // Constant time per comparison; no early exit across candidates.
            matched |= bool::from(expected[..].ct_eq(&c[..]));
        }
    }
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    if (now - t).abs() > tolerance {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// The header Stripe would send for `body` signed with each of `secrets` at
/// `t` (for tests, benchmarks and local tools).
pub fn sign(body: &[u8], secrets: &[&str], t: i64) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
            mac.update(format!("{t}.").as_bytes());
            mac.update(body);
            header.push_str(",v1=");
            for b in mac.finalize().into_bytes() {
                header.push_str(&format!("{b:02x}"));
            }
        }
    }
    header
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// The configured secrets, split on commas.
pub fn secrets(list: &SecretString) -> Vec<SecretString> {
    list.expose_secret()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| SecretString::from(s.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> SecretString {
        SecretString::from(v.to_owned())
    }

    #[test]
    fn accepts_any_v1_under_any_secret_and_refuses_the_rest() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign(body, &["whsec_old", "whsec_new"], 1_000);
        assert_eq!(
            verify(Some(&header), body, &[s("whsec_new")], 1_000, 300),
            Ok(())
        );
        assert_eq!(
            verify(Some(&header), body, &[s("x"), s("whsec_old")], 1_100, 300),
            Ok(())
        );
        assert_eq!(
            verify(Some(&header), body, &[s("whsec_other")], 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                Some(&header),
                br#"{"id":"evt_2"}"#,
                &[s("whsec_new")],
                1_000,
                300
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&header), body, &[s("whsec_new")], 1_301, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(None, body, &[s("whsec_new")], 1_000, 300),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(Some("t=1000"), body, &[s("whsec_new")], 1_000, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(Some("v1=00,t=abc"), body, &[s("whsec_new")], 1_000, 300),
            Err(SignatureError::Malformed)
        );
    }
}
