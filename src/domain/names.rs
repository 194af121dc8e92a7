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
        if let Some(hidden) = value.chars().find(|c| is_invisible_format(*c)) {
            return Err(DomainError::Invalid(format!(
                "the {what} name must not contain invisible formatting characters such as \
                 U+{:04X}, which make one name look like another",
                u32::from(hidden)
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

/// The longest free text ZenML stores, such as a description.
pub const MAX_TEXT_LEN: usize = 65_535;

/// Short free text, such as a person's full name or an e-mail address: at most 255
/// characters, with no control characters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ShortText(String);

impl ShortText {
    pub fn parse(value: impl Into<String>) -> DomainResult<ShortText> {
        let value = value.into();
        if value.chars().count() > MAX_NAME_LEN {
            return Err(DomainError::Invalid(format!(
                "must be at most {MAX_NAME_LEN} characters long"
            )));
        }
        if value.chars().any(char::is_control) {
            return Err(DomainError::Invalid(
                "must not contain control characters".into(),
            ));
        }
        Ok(ShortText(value))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl<'de> Deserialize<'de> for ShortText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ShortText::parse(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// Long free text, such as a description: at most 65,535 characters; line breaks and tabs
/// are kept, other control characters refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct LongText(String);

impl LongText {
    pub fn parse(value: impl Into<String>) -> DomainResult<LongText> {
        let value = value.into();
        if value.chars().count() > MAX_TEXT_LEN {
            return Err(DomainError::Invalid(format!(
                "must be at most {MAX_TEXT_LEN} characters long"
            )));
        }
        if value
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(DomainError::Invalid(
                "must not contain control characters other than line breaks and tabs".into(),
            ));
        }
        Ok(LongText(value))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl<'de> Deserialize<'de> for LongText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        LongText::parse(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// Unicode's format characters (category Cf): invisible, yet they change what text looks like
/// (bidirectional overrides and isolates, zero-width characters, the byte order mark, soft
/// hyphens, tags), so that two different names can read the same.
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// A string schema with bounds and a description, for the types above.
fn string_schema(
    min: Option<usize>,
    max: usize,
    description: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .min_length(min)
        .max_length(Some(max))
        .description(Some(description))
        .into()
}

impl utoipa::PartialSchema for EntityName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_schema(
            Some(1),
            MAX_NAME_LEN,
            "A name: 1 to 255 characters, no surrounding white space, no control or invisible \
             formatting characters, and not a UUID.",
        )
    }
}

impl utoipa::ToSchema for EntityName {}

impl utoipa::PartialSchema for ShortText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_schema(
            None,
            MAX_NAME_LEN,
            "Short text: at most 255 characters, no control characters.",
        )
    }
}

impl utoipa::ToSchema for ShortText {}

impl utoipa::PartialSchema for LongText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_schema(
            None,
            MAX_TEXT_LEN,
            "Text: at most 65,535 characters; line breaks and tabs, but no other control \
             characters.",
        )
    }
}

impl utoipa::ToSchema for LongText {}

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

impl utoipa::PartialSchema for Password {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_schema(
            Some(Self::MIN_LEN),
            Self::MAX_LEN,
            "A password: 8 to 1,024 characters.",
        )
    }
}

impl utoipa::ToSchema for Password {}

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
        for lookalike in [
            "admin\u{202E}nimda",
            "a\u{200B}b",
            "\u{FEFF}bom",
            "pay\u{00AD}ment",
        ] {
            assert!(
                EntityName::parse("user", lookalike).is_err(),
                "{lookalike:?} was accepted"
            );
        }
        assert!(EntityName::parse("user", "café-ümlaut-名前").is_ok());
    }

    #[test]
    fn free_text_is_bounded_and_free_of_control_characters() {
        assert!(ShortText::parse("Ada Lovelace").is_ok());
        assert!(ShortText::parse("x".repeat(256)).is_err());
        assert!(ShortText::parse("a\u{7}b").is_err());
        assert!(LongText::parse("line one\nline two\twith a tab").is_ok());
        assert!(LongText::parse("x".repeat(MAX_TEXT_LEN + 1)).is_err());
        assert!(LongText::parse("bell\u{7}").is_err());
    }

    #[test]
    fn passwords_have_a_minimum_length_and_hide_in_debug() {
        assert!(Password::parse("short".into()).is_err());
        let password = Password::parse("long enough".into()).unwrap();
        assert_eq!(format!("{password:?}"), "Password(<redacted>)");
    }
}
