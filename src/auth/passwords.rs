//! Password hashing with argon2id (OWASP Password Storage Cheat Sheet:
//! m = 19 MiB, t = 2, p = 1), always on tokio's blocking pool and bounded by
//! a semaphore, so a login flood cannot starve the async threads or memory.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// Hashes and verifies passwords off the async threads.
#[derive(Clone)]
pub struct PasswordHasherPool {
    permits: Arc<Semaphore>,
}

fn argon2() -> Argon2<'static> {
    // OWASP minimum for argon2id: 19 MiB memory, 2 iterations, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A valid hash of a random password, verified against when the email is
/// unknown so that a login takes as long whether or not the account exists.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        argon2()
            .hash_password(b"switchboard-dummy-password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

impl PasswordHasherPool {
    /// A pool allowing `concurrency` hashes at once.
    pub fn new(concurrency: usize) -> PasswordHasherPool {
        PasswordHasherPool {
            permits: Arc::new(Semaphore::new(concurrency)),
        }
    }

    /// argon2id PHC string of `password`.
    pub async fn hash(&self, password: SecretString) -> Result<String> {
        let _permit = self.permits.acquire().await.map_err(Error::internal)?;
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
            argon2()
                .hash_password(password.expose_secret().as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(Error::internal)
        })
        .await
        .map_err(Error::internal)?
    }

    /// Whether `password` matches `hash`; with `hash = None` (unknown user or
    /// no password set) it still spends the same work and answers false.
    pub async fn verify(&self, password: SecretString, hash: Option<String>) -> Result<bool> {
        let _permit = self.permits.acquire().await.map_err(Error::internal)?;
        tokio::task::spawn_blocking(move || {
            let known = hash.is_some();
            let hash = hash.unwrap_or_else(|| dummy_hash().to_owned());
            let parsed = PasswordHash::new(&hash).map_err(Error::internal)?;
            let ok = argon2()
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok();
            Ok(ok && known)
        })
        .await
        .map_err(Error::internal)?
    }

    /// Computes the dummy hash now rather than on the first unknown login.
    pub fn warm_up(&self) {
        let _ = dummy_hash();
    }
}
