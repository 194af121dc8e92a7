//! Encryption at rest. A master key (kept outside the database) wraps data keys (kept inside it,
//! each with an id); data keys encrypt values with AES-256-GCM, bound to the row and field they
//! belong to. See `envelope` for the byte format and `keyring` for rotation.

pub mod envelope;
pub mod keyring;
pub mod master;

pub use envelope::Aad;
pub use keyring::{KeyStatus, Keyring, KeyringSettings, RewrapReport};
pub use master::MasterKey;

use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The master key could not be read or is not 32 bytes of base64.
    #[error("{0}")]
    MasterKey(String),
    /// The configured master key is not the one the database's data keys are wrapped with.
    #[error(
        "the configured encryption key (id {configured}) does not match the key this database \
         was encrypted with (id {expected}); start the server with the original key"
    )]
    WrongMasterKey {
        configured: String,
        expected: String,
    },
    #[error("the value was encrypted under data key {0}, which does not exist")]
    UnknownKey(Uuid),
    /// A data key named for an operation on it does not exist.
    #[error("there is no data key {0}")]
    NoSuchKey(Uuid),
    /// Authentication failed: the ciphertext was altered, or it belongs to another record.
    #[error("the encrypted value is corrupt or does not belong to this record")]
    Tampered,
    #[error("the encrypted value has an unknown format")]
    Format,
    #[error("data key {0} is still in use or active and cannot be removed")]
    KeyInUse(Uuid),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

pub type CryptoResult<T> = Result<T, CryptoError>;
