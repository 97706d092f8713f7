//! Password hashing with argon2id (OWASP Password Storage Cheat Sheet:
//! m = 19 MiB, t = 2, p = 1), always on tokio's blocking pool and bounded by
//! a semaphore, so a login flood cannot starve the async threads or memory.
//!
//! The semaphore allows `auth.hash_concurrency` hashes at once (default: half
//! the cores this process may use, at least one), so hashing never takes
//! more than that share of the machine and other requests keep their
//! threads. Waiting for a turn is bounded too: a caller that cannot start
//! within `auth.hash_wait_ms` (default 1 s) is answered 503 `auth_overloaded`
//! with `Retry-After` instead of joining an unbounded queue. Unknown-email
//! logins verify against a fixed dummy hash of the same parameters, so they
//! cost (and wait) exactly like known ones.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::{Error, Result};

/// Hashes and verifies passwords off the async threads.
#[derive(Clone)]
pub struct PasswordHasherPool {
    permits: Arc<Semaphore>,
    wait: Duration,
}

fn argon2() -> Argon2<'static> {
    // OWASP minimum for argon2id: 19 MiB memory, 2 iterations, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// An argon2id hash (m = 19 MiB, t = 2, p = 1, like every hash made here)
/// of a random 64-character password that was thrown away, verified against
/// when the email is unknown so that a login takes as long whether or not
/// the account exists. Fixed, so that nothing is hashed at start-up (19 MiB
/// and tens of milliseconds); no password matches it, and a match would
/// still answer false.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$fMoxHdfiGxg6ETlx+a6r1w$ZVRfi7q1oz8sBTNzLue6WYAA75f8H8NKVenWrrdnht8";

/// The default of `auth.hash_concurrency`: half the cores this process may
/// use (`std::thread::available_parallelism`), at least one.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// 503 `auth_overloaded`: no hashing turn within the configured wait.
fn overloaded(wait: Duration) -> Error {
    Error::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "auth_overloaded",
        "Too many sign-ins at once",
    )
    .with_detail("Password checks are busy; retry after the time in Retry-After.")
    .with_retry_after(wait.as_secs().max(1))
}

impl PasswordHasherPool {
    /// A pool allowing `concurrency` hashes at once, each caller waiting at
    /// most `wait` for its turn.
    pub fn new(concurrency: usize, wait: Duration) -> PasswordHasherPool {
        PasswordHasherPool {
            permits: Arc::new(Semaphore::new(concurrency)),
            wait,
        }
    }

    /// A turn to hash, or 503 `auth_overloaded` after the configured wait.
    async fn turn(&self) -> Result<SemaphorePermit<'_>> {
        match tokio::time::timeout(self.wait, self.permits.acquire()).await {
            Ok(permit) => permit.map_err(Error::internal),
            Err(_) => Err(overloaded(self.wait)),
        }
    }

    /// argon2id PHC string of `password`. 503 `auth_overloaded` when no
    /// turn comes within the configured wait.
    pub async fn hash(&self, password: SecretString) -> Result<String> {
        let _permit = self.turn().await?;
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
    /// no password set) it still spends the same work (and waits alike) and
    /// answers false. 503 `auth_overloaded` when no turn comes in time.
    pub async fn verify(&self, password: SecretString, hash: Option<String>) -> Result<bool> {
        let _permit = self.turn().await?;
        tokio::task::spawn_blocking(move || {
            let known = hash.is_some();
            let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
            let parsed = PasswordHash::new(&hash).map_err(Error::internal)?;
            let ok = argon2()
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok();
            Ok(ok && known)
        })
        .await
        .map_err(Error::internal)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_dummy_hash_has_the_parameters_of_real_ones_and_matches_nothing() {
        let parsed = PasswordHash::new(DUMMY_HASH).unwrap();
        let real = argon2()
            .hash_password(
                b"x",
                &SaltString::generate(&mut argon2::password_hash::rand_core::OsRng),
            )
            .unwrap()
            .to_string();
        let real = PasswordHash::new(&real).unwrap();
        assert_eq!(parsed.algorithm, real.algorithm);
        assert_eq!(parsed.params, real.params);
        let pool = PasswordHasherPool::new(1, Duration::from_secs(5));
        assert!(
            !pool
                .verify("switchboard-dummy-password".to_owned().into(), None)
                .await
                .unwrap()
        );
    }
}
