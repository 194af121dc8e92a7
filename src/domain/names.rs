//! Parsed names and passwords: once constructed they are known to be valid.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use zeroize::Zeroizing;

use super::{DomainError, DomainResult};

/// The longest name ZenML accepts for any entity.
pub const MAX_NAME_LEN: usize = 255;

/// A name of a user, workspace or secret: 1 to 255 characters, no surrounding white space, no
/// control characters, and not a UUID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EntityName(String);

impl EntityName {
    pub fn parse(what: &str, value: impl Into<String>) -> DomainResult<EntityName> {
        let value = value.into();
        if value.is_empty() {
            return Err(DomainError::Invalid(format!(
                "the {what} name must not be empty"
            )));
        }
        if value.chars().count() > MAX_NAME_LEN {
            return Err(DomainError::Invalid(format!(
                "the {what} name must be at most {MAX_NAME_LEN} characters long"
            )));
        }
        if value.trim() != value {
            return Err(DomainError::Invalid(format!(
                "the {what} name must not start or end with white space"
            )));
        }
        if value.chars().any(char::is_control) {
            return Err(DomainError::Invalid(format!(
                "the {what} name must not contain control characters"
            )));
        }
        // Records are referenced by name or id; a name that reads as an id would make that
        // ambiguous, and could pick another record than the one meant.
        if uuid::Uuid::parse_str(&value).is_ok() {
            return Err(DomainError::Invalid(format!(
                "the {what} name must not be a UUID, which would read as an id"
            )));
        }
        Ok(EntityName(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EntityName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        EntityName::parse("entity", value).map_err(serde::de::Error::custom)
    }
}

/// A password chosen by a person: at least 8 characters. Wiped from memory when dropped and
/// never printed by `Debug`.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    pub const MIN_LEN: usize = 8;
    pub const MAX_LEN: usize = 1024;

    pub fn parse(value: String) -> DomainResult<Password> {
        let value = Zeroizing::new(value);
        let len = value.chars().count();
        if len < Self::MIN_LEN {
            return Err(DomainError::Invalid(format!(
                "a password must be at least {} characters long",
                Self::MIN_LEN
            )));
        }
        if len > Self::MAX_LEN {
            return Err(DomainError::Invalid(format!(
                "a password must be at most {} characters long",
                Self::MAX_LEN
            )));
        }
        Ok(Password(value))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for Password {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Password::parse(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reject_empty_padded_long_and_control_characters() {
        assert!(EntityName::parse("secret", "db-creds").is_ok());
        assert!(EntityName::parse("secret", "").is_err());
        assert!(EntityName::parse("secret", " x").is_err());
        assert!(EntityName::parse("secret", "a\nb").is_err());
        assert!(EntityName::parse("secret", "x".repeat(256)).is_err());
        assert!(EntityName::parse("secret", "x".repeat(255)).is_ok());
        let id = uuid::Uuid::new_v4();
        assert!(EntityName::parse("workspace", id.to_string()).is_err());
        assert!(EntityName::parse("workspace", id.simple().to_string()).is_err());
        assert!(EntityName::parse("workspace", format!("{id}-copy")).is_ok());
    }

    #[test]
    fn passwords_have_a_minimum_length_and_hide_in_debug() {
        assert!(Password::parse("short".into()).is_err());
        let password = Password::parse("long enough".into()).unwrap();
        assert_eq!(format!("{password:?}"), "Password(<redacted>)");
    }
}
