//! Access tokens (JWT, HS256, RFC 7519) and opaque secrets.
//!
//! Opaque secrets (refresh tokens, emailed links) are 256 random bits,
//! base64url; only their SHA-256 is stored, so a database leak yields nothing
//! usable. Short codes (6 digits) are too small for a bare hash, so they are
//! stored as HMAC-SHA256 under a server key. Comparisons are constant-time.
//!
//! Verification is memoized: every authenticated request presents the same
//! token many times in its 15 minutes, and a full check (base64, HMAC, two
//! JSON parses) cost about 8 µs per request under load. A token that passed
//! the full check is remembered by its SHA-256 until it expires; a repeat
//! presentation must hash to exactly that digest, so only the byte-identical
//! token hits, and expiry is still checked on every use.

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
use crate::memo::Memo;

/// Issuer and audience of our access tokens.
pub const ISSUER: &str = "switchboard";

/// Clock skew tolerated on `exp`, seconds.
const LEEWAY_SECS: i64 = 5;

/// Verified tokens remembered at most; when full, expired ones are dropped,
/// and if that frees nothing the memo starts over. 65,536 entries are about
/// 6 MiB.
const MAX_REMEMBERED: usize = 65_536;

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
    /// Issued at, Unix milliseconds: compared with the account's "sessions
    /// valid after" instant, which a second would not resolve (a password
    /// reset and the next sign-in often share one). Absent on tokens issued
    /// before it existed: `iat` · 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat_ms: Option<i64>,
    /// When the user last proved who they are (Unix seconds; OpenID Connect
    /// Core §2 `auth_time`): sensitive changes want it recent. Absent on
    /// older tokens: 0 (never).
    #[serde(default)]
    pub auth_time: i64,
    /// Expiry (Unix seconds).
    pub exp: i64,
}

/// What a valid access token grants: the claims the server acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The user id (`sub`).
    pub user_id: Uuid,
    /// The user's platform role.
    pub role: Role,
    /// The business the user owns (`bid`), if any.
    pub owned_business: Option<Uuid>,
    /// Issued at (Unix milliseconds).
    pub issued_at_ms: i64,
    /// Last authentication (Unix seconds).
    pub auth_time: i64,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
}

/// Signs and checks access tokens.
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: u64,
    code_key: SecretBox<[u8; 32]>,
    /// Tokens that passed the full check, by SHA-256 of the token.
    verified: Memo<[u8; 32], Grant>,
}

impl TokenSigner {
    /// From the server keys; access tokens live `ttl_secs`.
    pub fn new(keys: &Keys, ttl_secs: u64) -> TokenSigner {
        let secret = keys.jwt_secret.expose_secret();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS as u64;
        TokenSigner {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs,
            code_key: SecretBox::new(Box::new(*keys.code_hash_key.expose_secret())),
            verified: Memo::new(MAX_REMEMBERED),
        }
    }

    /// Access-token lifetime in seconds.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// A signed access token for `user`, owner of `business` if any, who
    /// last authenticated at `auth_time` (Unix seconds).
    pub fn issue(
        &self,
        user: Uuid,
        role: Role,
        business: Option<Uuid>,
        auth_time: i64,
    ) -> crate::error::Result<String> {
        let now_ms = Utc::now().timestamp_millis();
        let now = now_ms.div_euclid(1000);
        let claims = Claims {
            sub: user,
            role,
            bid: business,
            iss: ISSUER.into(),
            aud: ISSUER.into(),
            iat: now,
            iat_ms: Some(now_ms),
            auth_time,
            exp: now + self.ttl_secs as i64,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(crate::error::Error::internal)
    }

    /// What a valid, unexpired token of ours grants; `None` otherwise
    /// (bad signature, other issuer or audience, expired beyond
    /// [`LEEWAY_SECS`], malformed). The full check runs once per token; see
    /// the module docs for the memo.
    pub fn verify(&self, token: &str) -> Option<Grant> {
        self.verify_at(token, Utc::now().timestamp())
    }

    /// [`verify`](Self::verify) with the memo's clock at `now` (Unix
    /// seconds); the full check always uses the real clock.
    fn verify_at(&self, token: &str, now: i64) -> Option<Grant> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let unexpired = |grant: &Grant| grant.expires_at >= now - LEEWAY_SECS;
        if let Some(grant) = self.verified.get(&digest) {
            return unexpired(&grant).then_some(grant);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()?
            .claims;
        let grant = Grant {
            user_id: claims.sub,
            role: claims.role,
            owned_business: claims.bid,
            issued_at_ms: claims.iat_ms.unwrap_or(claims.iat.saturating_mul(1000)),
            auth_time: claims.auth_time,
            expires_at: claims.exp,
        };
        self.verified.insert(digest, grant, unexpired);
        Some(grant)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TokenSigner {
        let keys = Keys {
            jwt_secret: SecretBox::new(Box::new(vec![7u8; 32])),
            code_hash_key: SecretBox::new(Box::new([9u8; 32])),
            master_keys: Vec::new(),
        };
        TokenSigner::new(&keys, 900)
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let signer = signer();
        let user = Uuid::now_v7();
        let token = signer.issue(user, Role::Owner, Some(user), 0).unwrap();
        let now = Utc::now().timestamp();
        let grant = signer.verify_at(&token, now).expect("fresh token");
        assert_eq!(grant.user_id, user);
        assert_eq!(grant.owned_business, Some(user));
        // Remembered now; still valid within the leeway, refused after it.
        let exp = grant.expires_at;
        assert_eq!(signer.verify_at(&token, exp + LEEWAY_SECS), Some(grant));
        assert_eq!(signer.verify_at(&token, exp + LEEWAY_SECS + 1), None);
    }

    #[test]
    fn only_the_identical_token_hits_the_memo() {
        let signer = signer();
        let user = Uuid::now_v7();
        let token = signer.issue(user, Role::Owner, None, 0).unwrap();
        assert!(signer.verify(&token).is_some());
        // Flip one signature character: not remembered, and fails the check.
        let mut forged = token.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(signer.verify(&forged), None);
        // Another key's token for the same user is refused too.
        let other = TokenSigner::new(
            &Keys {
                jwt_secret: SecretBox::new(Box::new(vec![8u8; 32])),
                code_hash_key: SecretBox::new(Box::new([9u8; 32])),
                master_keys: Vec::new(),
            },
            900,
        );
        let foreign = other.issue(user, Role::Owner, None, 0).unwrap();
        assert_eq!(signer.verify(&foreign), None);
        assert!(signer.verify(&token).is_some());
    }
}
