//! Types and rules with no I/O: validated names, roles, and who may see or change what.

pub mod access;
pub mod audit;
pub mod clock;
pub mod names;
pub mod secret;

pub use access::{Caller, Role, Scope};
pub use names::{EntityName, LongText, Password, ShortText};

/// A rule of the domain was broken by the input or by the caller's rights.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DomainError {
    /// The input is malformed or out of bounds.
    #[error("{0}")]
    Invalid(String),
    /// The caller may see the thing but not do this to it.
    #[error("{0}")]
    Forbidden(String),
}

pub type DomainResult<T> = Result<T, DomainError>;
