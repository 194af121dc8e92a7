//! The byte format of an encrypted value:
//!
//! ```text
//! [format: u8 = 1][data key id: 16 bytes][nonce: 12 random bytes][AES-256-GCM ciphertext + tag]
//! ```
//!
//! The associated data binds the value to the format, its workspace, its record and its field,
//! so a ciphertext copied into another row, tenant or column fails authentication instead of
//! decrypting there.

use aes_gcm::aead::{Aead, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Nonce};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{CryptoError, CryptoResult};

pub const FORMAT_V1: u8 = 1;
const KEY_ID_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

/// Where a value belongs. Every part goes into the associated data.
#[derive(Debug, Clone, Copy)]
pub struct Aad<'a> {
    /// The kind of record, e.g. `secret`.
    pub table: &'a str,
    /// The owning workspace; nil for server-wide values.
    pub workspace: Uuid,
    pub record: Uuid,
    pub field: &'a str,
}

impl Aad<'_> {
    /// The associated data also covers the header, so no header byte can change unnoticed.
    fn encode(&self, format: u8, key_id: Uuid) -> Vec<u8> {
        let mut out = Vec::with_capacity(80 + self.table.len() + self.field.len());
        out.extend_from_slice(b"connector-hub\0");
        out.push(format);
        out.extend_from_slice(key_id.as_bytes());
        out.extend_from_slice(self.table.as_bytes());
        out.push(0);
        out.extend_from_slice(self.workspace.as_bytes());
        out.extend_from_slice(self.record.as_bytes());
        out.extend_from_slice(self.field.as_bytes());
        out
    }
}

pub fn seal(key_id: Uuid, cipher: &Aes256Gcm, aad: &Aad<'_>, plaintext: &[u8]) -> Vec<u8> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let aad = aad.encode(FORMAT_V1, key_id);
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .expect("AES-GCM encryption is infallible for in-memory buffers");
    let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

/// The id of the data key a value was encrypted under.
pub fn key_id(sealed: &[u8]) -> CryptoResult<Uuid> {
    if sealed.len() < HEADER_LEN || sealed[0] != FORMAT_V1 {
        return Err(CryptoError::Format);
    }
    Ok(Uuid::from_slice(&sealed[1..1 + KEY_ID_LEN]).expect("16 bytes make a UUID"))
}

pub fn open(cipher: &Aes256Gcm, aad: &Aad<'_>, sealed: &[u8]) -> CryptoResult<Zeroizing<Vec<u8>>> {
    let key_id = key_id(sealed)?;
    let nonce = Nonce::from_slice(&sealed[1 + KEY_ID_LEN..HEADER_LEN]);
    let aad = aad.encode(sealed[0], key_id);
    cipher
        .decrypt(
            nonce,
            Payload {
                msg: &sealed[HEADER_LEN..],
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Tampered)
}

#[cfg(test)]
mod tests {
    use aes_gcm::KeyInit;

    use super::*;

    fn aad(record: Uuid) -> Aad<'static> {
        Aad {
            table: "secret",
            workspace: Uuid::nil(),
            record,
            field: "values",
        }
    }

    #[test]
    fn values_open_only_in_their_own_record_and_field() {
        let cipher = Aes256Gcm::new(&[3u8; 32].into());
        let key = Uuid::new_v4();
        let record = Uuid::new_v4();
        let sealed = seal(key, &cipher, &aad(record), b"hunter2");
        assert_eq!(key_id(&sealed).unwrap(), key);
        assert_eq!(
            open(&cipher, &aad(record), &sealed).unwrap().as_slice(),
            b"hunter2"
        );
        assert!(matches!(
            open(&cipher, &aad(Uuid::new_v4()), &sealed),
            Err(CryptoError::Tampered)
        ));
        let other_field = Aad {
            field: "other",
            ..aad(record)
        };
        assert!(open(&cipher, &other_field, &sealed).is_err());
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let cipher = Aes256Gcm::new(&[3u8; 32].into());
        let record = Uuid::new_v4();
        let sealed = seal(Uuid::new_v4(), &cipher, &aad(record), b"value");
        for i in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[i] ^= 0x01;
            assert!(
                open(&cipher, &aad(record), &altered).is_err(),
                "byte {i} flipped unnoticed"
            );
        }
    }

    #[test]
    fn nonces_are_fresh_for_every_encryption() {
        let cipher = Aes256Gcm::new(&[3u8; 32].into());
        let record = Uuid::new_v4();
        let a = seal(Uuid::nil(), &cipher, &aad(record), b"same");
        let b = seal(Uuid::nil(), &cipher, &aad(record), b"same");
        assert_ne!(a, b);
    }
}
