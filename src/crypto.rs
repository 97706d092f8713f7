//! Envelope encryption of integration secrets (AES-256-GCM, NIST SP 800-38D).
//!
//! Each secret gets its own random 256-bit data key (DEK). The plaintext is
//! sealed under the DEK; the DEK is sealed ("wrapped") under a key-encryption
//! key (KEK) of the [`Keyring`]. Both seals use fresh random 96-bit nonces from
//! the OS generator and associated data binding the ciphertext to its
//! business, secret id, provider and name (the wrap also binds the KEK id), so
//! a ciphertext copied to another row, or any flipped bit, fails to open
//! instead of yielding garbage. Keys and plaintexts live in `zeroize`d
//! buffers and never implement `Debug`.

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use secrecy::ExposeSecret;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::keys::MasterKey;

/// The envelope format written today.
pub const FORMAT_VERSION: i32 = 1;

/// What a ciphertext is bound to (the associated data).
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// Owning business.
    pub business_id: Uuid,
    /// The secret's row id.
    pub secret_id: Uuid,
    /// Provider (`telegram`, `waha`, …).
    pub provider: &'a str,
    /// Name within the provider.
    pub name: &'a str,
}

impl Binding<'_> {
    fn data_aad(&self) -> Vec<u8> {
        format!(
            "switchboard/secret/v{FORMAT_VERSION}\0{}\0{}\0{}\0{}",
            self.business_id, self.secret_id, self.provider, self.name
        )
        .into_bytes()
    }

    fn hint_aad(&self) -> Vec<u8> {
        format!(
            "switchboard/secret-hint/v{FORMAT_VERSION}\0{}\0{}\0{}\0{}",
            self.business_id, self.secret_id, self.provider, self.name
        )
        .into_bytes()
    }

    fn wrap_aad(&self, key_id: &str) -> Vec<u8> {
        format!(
            "switchboard/dek/v{FORMAT_VERSION}\0{key_id}\0{}\0{}\0{}\0{}",
            self.business_id, self.secret_id, self.provider, self.name
        )
        .into_bytes()
    }
}

/// A sealed secret as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// AES-GCM ciphertext of the plaintext under the DEK (tag appended).
    pub ciphertext: Vec<u8>,
    /// Its 96-bit nonce.
    pub nonce: Vec<u8>,
    /// AES-GCM ciphertext of the DEK under the KEK (tag appended).
    pub wrapped_dek: Vec<u8>,
    /// The wrap's 96-bit nonce.
    pub dek_nonce: Vec<u8>,
    /// Id of the KEK that wrapped the DEK.
    pub key_id: String,
    /// Envelope format version.
    pub version: i32,
}

/// Why a secret could not be opened. None of these carry secret material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The ciphertext names a KEK that is not in the keyring.
    #[error("key `{0}` is not in the keyring (SWITCHBOARD_MASTER_KEYS)")]
    UnknownKey(String),
    /// Authentication failed: tampered, moved to another row, or wrong key.
    #[error("the ciphertext failed authentication (tampered, moved, or sealed under another key)")]
    Authentication,
    /// A format this build does not read.
    #[error("unsupported envelope version {0}")]
    UnsupportedVersion(i32),
    /// Stored fields of the wrong size.
    #[error("malformed envelope")]
    Malformed,
}

/// The ordered KEKs: the first seals, all open.
pub struct Keyring {
    keys: Vec<MasterKey>,
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))
}

/// A 96-bit nonce from stored bytes; any other length is malformed.
fn nonce(bytes: &[u8]) -> Result<Nonce<aes_gcm::aead::consts::U12>, CryptoError> {
    let array: [u8; 12] = bytes.try_into().map_err(|_| CryptoError::Malformed)?;
    Ok(Nonce::from(array))
}

impl Keyring {
    /// From the configured keys (non-empty, validated by [`crate::keys`]).
    pub fn new(keys: Vec<MasterKey>) -> Keyring {
        Keyring { keys }
    }

    /// Id of the key that seals new secrets.
    pub fn current_id(&self) -> &str {
        self.keys.first().map_or("", |k| k.id.as_str())
    }

    fn current(&self) -> Result<&MasterKey, CryptoError> {
        self.keys
            .first()
            .ok_or(CryptoError::UnknownKey(String::new()))
    }

    fn find(&self, id: &str) -> Result<&MasterKey, CryptoError> {
        self.keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| CryptoError::UnknownKey(id.to_owned()))
    }

    /// Seals `plaintext` under a fresh DEK wrapped by the current KEK.
    pub fn seal(&self, binding: &Binding<'_>, plaintext: &[u8]) -> Result<Sealed, CryptoError> {
        let dek = Zeroizing::new(random::<32>());
        let nonce = random::<12>();
        let ciphertext = cipher(&dek)
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &binding.data_aad(),
                },
            )
            .map_err(|_| CryptoError::Malformed)?;
        let kek = self.current()?;
        let (wrapped_dek, dek_nonce) = wrap(kek, binding, &dek)?;
        Ok(Sealed {
            ciphertext,
            nonce: nonce.to_vec(),
            wrapped_dek,
            dek_nonce,
            key_id: kek.id.clone(),
            version: FORMAT_VERSION,
        })
    }

    /// Seals `hint` (the few characters a list may show) under the data key
    /// of `sealed`, with associated data of its own: `(ciphertext, nonce)`.
    /// The hint then needs the keyring to read, goes with the secret's data
    /// key when it is shredded, and survives rotation (which re-wraps the
    /// data key only).
    pub fn seal_hint(
        &self,
        binding: &Binding<'_>,
        sealed: &Sealed,
        hint: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
        let dek = self.unwrap_dek(binding, sealed)?;
        let nonce = random::<12>();
        let ciphertext = cipher(&dek)
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: hint,
                    aad: &binding.hint_aad(),
                },
            )
            .map_err(|_| CryptoError::Malformed)?;
        Ok((ciphertext, nonce.to_vec()))
    }

    /// Opens a hint sealed by [`Keyring::seal_hint`].
    pub fn open_hint(
        &self,
        binding: &Binding<'_>,
        sealed: &Sealed,
        ciphertext: &[u8],
        hint_nonce: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let dek = self.unwrap_dek(binding, sealed)?;
        cipher(&dek)
            .decrypt(
                &nonce(hint_nonce)?,
                Payload {
                    msg: ciphertext,
                    aad: &binding.hint_aad(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Authentication)
    }

    /// Opens a sealed secret bound to `binding`.
    pub fn open(
        &self,
        binding: &Binding<'_>,
        sealed: &Sealed,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let dek = self.unwrap_dek(binding, sealed)?;
        cipher(&dek)
            .decrypt(
                &nonce(&sealed.nonce)?,
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &binding.data_aad(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Authentication)
    }

    /// Re-wraps the DEK under the current KEK; `None` when it already is.
    /// The data ciphertext is untouched (rotation never sees plaintext).
    pub fn rewrap(
        &self,
        binding: &Binding<'_>,
        sealed: &Sealed,
    ) -> Result<Option<Sealed>, CryptoError> {
        let kek = self.current()?;
        if sealed.key_id == kek.id {
            return Ok(None);
        }
        let dek = self.unwrap_dek(binding, sealed)?;
        let (wrapped_dek, dek_nonce) = wrap(kek, binding, &dek)?;
        Ok(Some(Sealed {
            wrapped_dek,
            dek_nonce,
            key_id: kek.id.clone(),
            ..sealed.clone()
        }))
    }

    fn unwrap_dek(
        &self,
        binding: &Binding<'_>,
        sealed: &Sealed,
    ) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        if sealed.version != FORMAT_VERSION {
            return Err(CryptoError::UnsupportedVersion(sealed.version));
        }
        let dek_nonce = nonce(&sealed.dek_nonce)?;
        let kek = self.find(&sealed.key_id)?;
        let dek = Zeroizing::new(
            cipher(kek.key.expose_secret())
                .decrypt(
                    &dek_nonce,
                    Payload {
                        msg: &sealed.wrapped_dek,
                        aad: &binding.wrap_aad(&kek.id),
                    },
                )
                .map_err(|_| CryptoError::Authentication)?,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        if dek.len() != 32 {
            return Err(CryptoError::Malformed);
        }
        key.copy_from_slice(&dek);
        Ok(key)
    }
}

fn wrap(
    kek: &MasterKey,
    binding: &Binding<'_>,
    dek: &[u8; 32],
) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
    let nonce = random::<12>();
    let wrapped = cipher(kek.key.expose_secret())
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: dek,
                aad: &binding.wrap_aad(&kek.id),
            },
        )
        .map_err(|_| CryptoError::Malformed)?;
    Ok((wrapped, nonce.to_vec()))
}

#[cfg(test)]
mod tests {
    use secrecy::SecretBox;

    use super::*;

    fn key(id: &str, byte: u8) -> MasterKey {
        MasterKey {
            id: id.into(),
            key: SecretBox::new(Box::new([byte; 32])),
        }
    }

    fn binding(business: Uuid, secret: Uuid) -> Binding<'static> {
        Binding {
            business_id: business,
            secret_id: secret,
            provider: "telegram",
            name: "bot_token",
        }
    }

    #[test]
    fn round_trip() {
        let ring = Keyring::new(vec![key("a", 1)]);
        let b = binding(Uuid::now_v7(), Uuid::now_v7());
        let sealed = ring.seal(&b, b"123456:ABC-DEF").unwrap();
        assert_eq!(sealed.key_id, "a");
        assert_ne!(sealed.ciphertext, b"123456:ABC-DEF");
        assert_eq!(&ring.open(&b, &sealed).unwrap()[..], b"123456:ABC-DEF");
        // Fresh DEK and nonces each time.
        let again = ring.seal(&b, b"123456:ABC-DEF").unwrap();
        assert_ne!(again.ciphertext, sealed.ciphertext);
        assert_ne!(again.nonce, sealed.nonce);
    }

    #[test]
    fn a_ciphertext_moved_to_another_business_or_row_fails() {
        let ring = Keyring::new(vec![key("a", 1)]);
        let secret = Uuid::now_v7();
        let b = binding(Uuid::now_v7(), secret);
        let sealed = ring.seal(&b, b"secret").unwrap();
        let other_business = binding(Uuid::now_v7(), secret);
        assert!(matches!(
            ring.open(&other_business, &sealed),
            Err(CryptoError::Authentication)
        ));
        let other_row = binding(b.business_id, Uuid::now_v7());
        assert!(matches!(
            ring.open(&other_row, &sealed),
            Err(CryptoError::Authentication)
        ));
        let other_name = Binding { name: "other", ..b };
        assert!(matches!(
            ring.open(&other_name, &sealed),
            Err(CryptoError::Authentication)
        ));
    }

    #[test]
    fn any_flipped_bit_fails() {
        let ring = Keyring::new(vec![key("a", 1)]);
        let b = binding(Uuid::now_v7(), Uuid::now_v7());
        let sealed = ring.seal(&b, b"secret value").unwrap();
        for field in 0..4 {
            let mut t = sealed.clone();
            let bytes = match field {
                0 => &mut t.ciphertext,
                1 => &mut t.nonce,
                2 => &mut t.wrapped_dek,
                _ => &mut t.dek_nonce,
            };
            bytes[0] ^= 0x01;
            assert!(
                matches!(ring.open(&b, &t), Err(CryptoError::Authentication)),
                "field {field}"
            );
        }
    }

    #[test]
    fn wrong_or_unknown_key_id_fails_clearly() {
        let ring = Keyring::new(vec![key("a", 1), key("b", 2)]);
        let b = binding(Uuid::now_v7(), Uuid::now_v7());
        let mut sealed = ring.seal(&b, b"secret").unwrap();
        sealed.key_id = "b".into();
        assert!(matches!(
            ring.open(&b, &sealed),
            Err(CryptoError::Authentication)
        ));
        sealed.key_id = "gone".into();
        let err = ring.open(&b, &sealed).err().unwrap();
        assert_eq!(err, CryptoError::UnknownKey("gone".into()));
        assert!(err.to_string().contains("`gone` is not in the keyring"));
    }

    #[test]
    fn a_hint_opens_under_its_secret_after_rotation_and_nowhere_else() {
        let a_only = Keyring::new(vec![key("a", 1)]);
        let b = binding(Uuid::now_v7(), Uuid::now_v7());
        let sealed = a_only.seal(&b, b"123456:ABCDEFGHIJKL").unwrap();
        let (hint, nonce) = a_only.seal_hint(&b, &sealed, b"IJKL").unwrap();
        assert_ne!(hint, b"IJKL");
        assert_eq!(
            &a_only.open_hint(&b, &sealed, &hint, &nonce).unwrap()[..],
            b"IJKL"
        );
        let both = Keyring::new(vec![key("b", 2), key("a", 1)]);
        let rewrapped = both.rewrap(&b, &sealed).unwrap().unwrap();
        assert_eq!(
            &both.open_hint(&b, &rewrapped, &hint, &nonce).unwrap()[..],
            b"IJKL"
        );
        let other = Binding { name: "other", ..b };
        assert!(matches!(
            a_only.open_hint(&other, &sealed, &hint, &nonce),
            Err(CryptoError::Authentication)
        ));
        // The hint is not the data: opening it as the secret fails.
        let swapped = Sealed {
            ciphertext: hint.clone(),
            nonce: nonce.clone(),
            ..sealed.clone()
        };
        assert!(matches!(
            a_only.open(&b, &swapped),
            Err(CryptoError::Authentication)
        ));
    }

    #[test]
    fn rewrap_moves_to_the_current_key_and_old_key_can_go() {
        let a_only = Keyring::new(vec![key("a", 1)]);
        let b = binding(Uuid::now_v7(), Uuid::now_v7());
        let sealed = a_only.seal(&b, b"rotate me").unwrap();
        let both = Keyring::new(vec![key("b", 2), key("a", 1)]);
        let rewrapped = both.rewrap(&b, &sealed).unwrap().unwrap();
        assert_eq!(rewrapped.key_id, "b");
        assert_eq!(
            rewrapped.ciphertext, sealed.ciphertext,
            "data ciphertext untouched"
        );
        assert!(both.rewrap(&b, &rewrapped).unwrap().is_none(), "idempotent");
        let b_only = Keyring::new(vec![key("b", 2)]);
        assert_eq!(&b_only.open(&b, &rewrapped).unwrap()[..], b"rotate me");
        assert!(matches!(
            b_only.open(&b, &sealed),
            Err(CryptoError::UnknownKey(_))
        ));
    }
}
