//! The master key: 32 random bytes from the environment or a key file, never from the database.

use std::fmt;
use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::aes::cipher::{BlockEncrypt, generic_array::GenericArray};
use aes_gcm::{AeadCore, Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand_core::RngCore;
use zeroize::Zeroizing;

use super::{CryptoError, CryptoResult};

pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

pub struct MasterKey {
    cipher: Aes256Gcm,
    id: String,
}

impl MasterKey {
    /// Parses the base64 form of 32 random bytes.
    pub fn from_base64(encoded: &str) -> CryptoResult<MasterKey> {
        let bytes = Zeroizing::new(STANDARD.decode(encoded.trim()).map_err(|_| {
            CryptoError::MasterKey("the encryption key is not valid base64".into())
        })?);
        if bytes.len() != KEY_LEN {
            return Err(CryptoError::MasterKey(format!(
                "the encryption key must be {KEY_LEN} bytes (base64 of `head -c 32 /dev/urandom`), \
                 not {}",
                bytes.len()
            )));
        }
        Ok(MasterKey::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8]) -> MasterKey {
        MasterKey {
            cipher: Aes256Gcm::new(GenericArray::from_slice(bytes)),
            id: key_check_value(bytes),
        }
    }

    pub fn read_file(path: &Path) -> CryptoResult<MasterKey> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            CryptoError::MasterKey(format!("cannot read the key file {}: {e}", path.display()))
        })?);
        MasterKey::from_base64(&text)
    }

    /// Creates a key file readable by its owner only, holding a fresh random key.
    pub fn generate_file(path: &Path) -> CryptoResult<MasterKey> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(bytes.as_mut());
        let encoded = Zeroizing::new(STANDARD.encode(bytes.as_ref()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|e| {
            CryptoError::MasterKey(format!(
                "cannot create the key file {}: {e}",
                path.display()
            ))
        })?;
        file.write_all(encoded.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(|e| {
                CryptoError::MasterKey(format!("cannot write the key file {}: {e}", path.display()))
            })?;
        Ok(MasterKey::from_bytes(bytes.as_ref()))
    }

    /// A public identifier of this key (a key check value): it tells keys apart without
    /// revealing anything usable about them.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Encrypts a data key; the data key's id is the associated data, so a wrapped key cannot be
    /// swapped for another one.
    pub fn wrap(&self, key_id: uuid::Uuid, data_key: &[u8]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: data_key,
            aad: key_id.as_bytes(),
        };
        let sealed = self
            .cipher
            .encrypt(&nonce, payload)
            .expect("AES-GCM encryption is infallible");
        [nonce.as_slice(), &sealed].concat()
    }

    pub fn unwrap(&self, key_id: uuid::Uuid, wrapped: &[u8]) -> CryptoResult<Zeroizing<Vec<u8>>> {
        if wrapped.len() < NONCE_LEN {
            return Err(CryptoError::Format);
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        let payload = Payload {
            msg: sealed,
            aad: key_id.as_bytes(),
        };
        self.cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Tampered)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The first 8 bytes of AES-256 applied to a zero block, in hex: the classic key check value.
fn key_check_value(key: &[u8]) -> String {
    let aes = Aes256::new(GenericArray::from_slice(key));
    let mut block = GenericArray::from([0u8; 16]);
    aes.encrypt_block(&mut block);
    block[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_keys_only_unwrap_with_their_master_key_and_id() {
        let master = MasterKey::from_base64(&STANDARD.encode([7u8; 32])).unwrap();
        let other = MasterKey::from_base64(&STANDARD.encode([8u8; 32])).unwrap();
        let id = uuid::Uuid::new_v4();
        let wrapped = master.wrap(id, b"data key bytes");
        assert_eq!(
            master.unwrap(id, &wrapped).unwrap().as_slice(),
            b"data key bytes"
        );
        assert!(other.unwrap(id, &wrapped).is_err());
        assert!(master.unwrap(uuid::Uuid::new_v4(), &wrapped).is_err());
        assert_ne!(master.id(), other.id());
    }

    #[test]
    fn keys_of_the_wrong_length_are_refused() {
        let err = MasterKey::from_base64(&STANDARD.encode([1u8; 16])).unwrap_err();
        assert!(err.to_string().contains("32 bytes"));
        assert!(MasterKey::from_base64("not base64!").is_err());
    }
}
