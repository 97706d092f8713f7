//! Access tokens (JWT, HS256, RFC 7519) and opaque secrets.
//!
//! Opaque secrets (refresh tokens, emailed links) are 256 random bits,
//! base64url; only their SHA-256 is stored, so a database leak yields nothing
//! usable. Short codes (6 digits) are too small for a bare hash, so they are
//! stored as HMAC-SHA256 under a server key. Comparisons are constant-time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chrono::Utc;
use entity::enums::Role;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::{Rng, RngCore};
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::keys::Keys;

/// Issuer and audience of our access tokens.
pub const ISSUER: &str = "switchboard";

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the user id.
    pub sub: Uuid,
    /// The user's platform role.
    pub role: Role,
    /// The business this user owns, if any. Ownership never changes, so
    /// owner routes need no lookup to find their tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bid: Option<Uuid>,
    /// Issuer, always [`ISSUER`].
    pub iss: String,
    /// Audience, always [`ISSUER`].
    pub aud: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expiry (Unix seconds).
    pub exp: i64,
}

/// Signs and checks access tokens.
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: u64,
    code_key: SecretBox<[u8; 32]>,
}

impl TokenSigner {
    /// From the server keys; access tokens live `ttl_secs`.
    pub fn new(keys: &Keys, ttl_secs: u64) -> TokenSigner {
        let secret = keys.jwt_secret.expose_secret();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        TokenSigner {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs,
            code_key: SecretBox::new(Box::new(*keys.code_hash_key.expose_secret())),
        }
    }

    /// Access-token lifetime in seconds.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// A signed access token for `user`, owner of `business` if any.
    pub fn issue(
        &self,
        user: Uuid,
        role: Role,
        business: Option<Uuid>,
    ) -> crate::error::Result<String> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user,
            role,
            bid: business,
            iss: ISSUER.into(),
            aud: ISSUER.into(),
            iat: now,
            exp: now + self.ttl_secs as i64,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(crate::error::Error::internal)
    }

    /// The claims of a valid, unexpired token of ours; `None` otherwise.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|d| d.claims)
    }

    /// Keyed hash of a short code bound to its context (registration id),
    /// hex. HMAC-SHA256 (RFC 2104).
    pub fn hash_code(&self, context: &[u8], code: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.code_key.expose_secret()) else {
            unreachable!("HMAC accepts keys of any length")
        };
        mac.update(context);
        mac.update(b":");
        mac.update(code.as_bytes());
        hex(&mac.finalize().into_bytes())
    }
}

/// A fresh opaque secret: 32 random bytes, base64url without padding.
pub fn opaque_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    B64URL.encode(bytes)
}

/// A uniformly random 6-digit code, zero-padded.
pub fn six_digit_code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// SHA-256 of an opaque secret, hex: what the database stores.
pub fn sha256_hex(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Constant-time equality of two hex digests.
pub fn digest_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
