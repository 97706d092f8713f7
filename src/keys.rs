//! Server keys: the access-token signing key and the key-encryption keyring.
//!
//! In production both come from configuration (`SWITCHBOARD_JWT_SECRET`,
//! `SWITCHBOARD_MASTER_KEYS`). In development, missing keys are generated once
//! into `dev_keys_path` (mode 0600, ignored by git) with a loud warning, so
//! tokens survive a restart and a newcomer configures nothing.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::config::{Config, ConfigError, Environment};

/// One key-encryption key of the keyring.
pub struct MasterKey {
    /// Identifier stored beside every ciphertext it wraps.
    pub id: String,
    /// 256-bit AES key.
    pub key: SecretBox<[u8; 32]>,
}

/// The keys a running server holds. No `Debug`: nothing here may be printed.
pub struct Keys {
    /// HS256 key of access tokens.
    pub jwt_secret: SecretBox<Vec<u8>>,
    /// HMAC key hashing short codes at rest, derived from `jwt_secret`.
    pub code_hash_key: SecretBox<[u8; 32]>,
    /// Ordered keyring: the first encrypts, all decrypt.
    pub master_keys: Vec<MasterKey>,
}

#[derive(Serialize, Deserialize)]
struct DevKeyFile {
    jwt_secret: String,
    master_keys: String,
}

impl Keys {
    /// Resolves the keys from configuration, or (development only) from the
    /// dev key file, creating it on first use.
    pub fn resolve(config: &Config) -> Result<Keys, ConfigError> {
        let (jwt, master) = match (&config.jwt_secret, &config.master_keys) {
            (Some(j), Some(m)) => (j.clone(), m.clone()),
            _ if config.environment == Environment::Production => {
                return Err(ConfigError::Invalid {
                    key: "jwt_secret",
                    message: "keys are required in production".into(),
                });
            }
            (j, m) => {
                let dev = load_or_create_dev_keys(&config.dev_keys_path)?;
                (
                    j.clone().unwrap_or_else(|| dev.jwt_secret.into()),
                    m.clone().unwrap_or_else(|| dev.master_keys.into()),
                )
            }
        };
        let jwt_secret =
            B64.decode(jwt.expose_secret().trim())
                .map_err(|_| ConfigError::Invalid {
                    key: "jwt_secret",
                    message: "must be base64".into(),
                })?;
        if jwt_secret.len() < 32 {
            return Err(ConfigError::Invalid {
                key: "jwt_secret",
                message: "must decode to at least 32 bytes".into(),
            });
        }
        let master_keys = parse_keyring(&master)?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&jwt_secret).map_err(|_| ConfigError::Invalid {
                key: "jwt_secret",
                message: "unusable as an HMAC key".into(),
            })?;
        mac.update(b"switchboard/code-hash/v1");
        let derived: [u8; 32] = mac.finalize().into_bytes().into();
        Ok(Keys {
            jwt_secret: SecretBox::new(Box::new(jwt_secret)),
            code_hash_key: SecretBox::new(Box::new(derived)),
            master_keys,
        })
    }
}

/// Parses `id:base64[,id:base64…]`; every key must be 32 bytes, ids unique.
pub fn parse_keyring(s: &SecretString) -> Result<Vec<MasterKey>, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        key: "master_keys",
        message,
    };
    let mut keys: Vec<MasterKey> = Vec::new();
    for entry in s.expose_secret().split(',').map(str::trim) {
        let Some((id, b64)) = entry.split_once(':') else {
            return Err(invalid("entries must be `key_id:base64`".into()));
        };
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid("key ids are [A-Za-z0-9_-]+".into()));
        }
        let bytes = B64
            .decode(b64)
            .map_err(|_| invalid(format!("key `{id}` is not base64")))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| invalid(format!("key `{id}` must be 32 bytes")))?;
        if keys.iter().any(|k| k.id == id) {
            return Err(invalid(format!("key id `{id}` appears twice")));
        }
        keys.push(MasterKey {
            id: id.to_owned(),
            key: SecretBox::new(Box::new(key)),
        });
    }
    if keys.is_empty() {
        return Err(invalid("at least one key is required".into()));
    }
    Ok(keys)
}

fn random_b64(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::rng().fill_bytes(&mut bytes);
    B64.encode(bytes)
}

fn load_or_create_dev_keys(path: &Path) -> Result<DevKeyFile, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        key: "dev_keys_path",
        message,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| invalid(format!("{} is not a dev key file: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keys = DevKeyFile {
                jwt_secret: random_b64(32),
                master_keys: format!("dev1:{}", random_b64(32)),
            };
            let text = serde_json::to_string_pretty(&keys)
                .map_err(|e| invalid(format!("cannot encode dev keys: {e}")))?;
            write_private(path, text.as_bytes())
                .map_err(|e| invalid(format!("cannot write {}: {e}", path.display())))?;
            tracing::warn!(
                path = %path.display(),
                "GENERATED DEVELOPMENT KEYS. Never use them in production: set \
                 SWITCHBOARD_JWT_SECRET and SWITCHBOARD_MASTER_KEYS there."
            );
            Ok(keys)
        }
        Err(e) => Err(invalid(format!("cannot read {}: {e}", path.display()))),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
