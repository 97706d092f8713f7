//! Constant-time checks of the HMAC signatures inbound sources send, over
//! the raw body. Each source's module says which one its docs specify (e.g.
//! WAHA: hex HMAC-SHA512 of the body in `X-Webhook-Hmac`; Meta: `sha256=`
//! and hex HMAC-SHA256 of the body in `X-Hub-Signature-256`). The
//! comparison is `hmac`'s `verify_slice`, constant-time in the tag.

use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};

/// Whether `signature` (hex, either case) is the HMAC-SHA256 of `body`
/// under `key`. A signature that is not hex is no match.
pub fn hmac_sha256_hex(key: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(tag) = hex::decode(signature) else {
        return false;
    };
    Hmac::<Sha256>::new_from_slice(key).is_ok_and(|mut mac| {
        mac.update(body);
        mac.verify_slice(&tag).is_ok()
    })
}

/// Whether `signature` (hex, either case) is the HMAC-SHA512 of `body`
/// under `key`. A signature that is not hex is no match.
pub fn hmac_sha512_hex(key: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(tag) = hex::decode(signature) else {
        return false;
    };
    Hmac::<Sha512>::new_from_slice(key).is_ok_and(|mut mac| {
        mac.update(body);
        mac.verify_slice(&tag).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values from Python's `hmac` module (an independent
    // implementation) for key "key" and the pangram.
    const BODY: &[u8] = b"The quick brown fox jumps over the lazy dog";
    const SHA256: &str = "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8";
    const SHA512: &str = "b42af09057bac1e2d41708e48a902e09b5ff7f12ab428a4fe86653c73dd248fb82f948a549f7b791a5b41915ee4d1ec3935357e4e2317250d0372afa2ebeeb3a";

    #[test]
    fn matches_reference_vectors_and_refuses_the_rest() {
        assert!(hmac_sha256_hex(b"key", BODY, SHA256));
        assert!(hmac_sha256_hex(b"key", BODY, &SHA256.to_uppercase()));
        assert!(hmac_sha512_hex(b"key", BODY, SHA512));
        assert!(!hmac_sha256_hex(b"other", BODY, SHA256));
        assert!(!hmac_sha512_hex(b"key", b"another body", SHA512));
        assert!(!hmac_sha512_hex(b"key", BODY, SHA256), "a truncated tag");
        assert!(!hmac_sha256_hex(b"key", BODY, "not hex"));
        assert!(!hmac_sha256_hex(b"key", BODY, ""));
    }
}
