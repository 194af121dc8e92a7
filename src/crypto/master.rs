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

    /// The key in the file at `path`, which is made, readable by its owner only and holding a
    /// fresh random key, if there is none. Processes starting together agree on one key: the
    /// file appears whole (written aside, then linked into place) or not at all.
    pub fn read_or_generate_file(path: &Path) -> CryptoResult<(MasterKey, bool)> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(bytes.as_mut());
        let encoded = Zeroizing::new(STANDARD.encode(bytes.as_ref()));
        let failed = |what: &str, e: std::io::Error| {
            CryptoError::MasterKey(format!(
                "cannot {what} the key file {}: {e}",
                path.display()
            ))
        };
        let mut aside = path.as_os_str().to_owned();
        aside.push(format!(".{}.new", uuid::Uuid::new_v4().simple()));
        let aside = std::path::PathBuf::from(aside);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&aside).and_then(|mut file| {
            file.write_all(encoded.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()
        });
        let linked = written.and_then(|()| std::fs::hard_link(&aside, path));
        let _ = std::fs::remove_file(&aside);
        match linked {
            Ok(()) => Ok((MasterKey::from_bytes(bytes.as_ref()), true)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Ok((MasterKey::read_file(path)?, false))
            }
            Err(e) => Err(failed("create", e)),
        }
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

    #[test]
    fn processes_making_the_key_file_at_once_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let start = std::sync::Barrier::new(8);
        let made: Vec<(String, bool)> = std::thread::scope(|scope| {
            let makers: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        let (key, generated) = MasterKey::read_or_generate_file(&path).unwrap();
                        (key.id().to_owned(), generated)
                    })
                })
                .collect();
            makers.into_iter().map(|m| m.join().unwrap()).collect()
        });
        assert!(made.iter().all(|(id, _)| *id == made[0].0), "{made:?}");
        assert_eq!(made.iter().filter(|(_, generated)| *generated).count(), 1);
        assert_eq!(MasterKey::read_file(&path).unwrap().id(), made[0].0);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no file is left aside");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
