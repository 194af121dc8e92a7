//! Secret values: bounded in number and size, wiped from memory when dropped, never printed.

use std::collections::BTreeMap;
use std::fmt;

use zeroize::Zeroizing;

use super::{DomainError, DomainResult};

pub const MAX_VALUES: usize = 100;
pub const MAX_KEY_LEN: usize = 255;
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
pub const MAX_TOTAL_BYTES: usize = 512 * 1024;

/// The key/value pairs of one secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretValues(BTreeMap<String, Zeroizing<String>>);

impl SecretValues {
    /// Checks a map sent by a client. `None` values are dropped: they mean "no value".
    pub fn parse(values: BTreeMap<String, Option<String>>) -> DomainResult<SecretValues> {
        let values = values
            .into_iter()
            .filter_map(|(key, value)| value.map(|v| (key, Zeroizing::new(v))))
            .collect();
        let values = SecretValues(values);
        values.check()?;
        Ok(values)
    }

    /// Applies a patch: `Some` sets a key, `None` removes it.
    pub fn patch(&mut self, patch: BTreeMap<String, Option<String>>) -> DomainResult<()> {
        for (key, value) in patch {
            match value {
                Some(value) => {
                    self.0.insert(key, Zeroizing::new(value));
                }
                None => {
                    self.0.remove(&key);
                }
            }
        }
        self.check()
    }

    fn check(&self) -> DomainResult<()> {
        if self.0.len() > MAX_VALUES {
            return Err(DomainError::Invalid(format!(
                "a secret holds at most {MAX_VALUES} values, not {}",
                self.0.len()
            )));
        }
        let mut total = 0;
        for (key, value) in &self.0 {
            if key.is_empty() || key.len() > MAX_KEY_LEN || key.chars().any(char::is_control) {
                return Err(DomainError::Invalid(format!(
                    "secret keys must be 1 to {MAX_KEY_LEN} characters without control characters"
                )));
            }
            if value.len() > MAX_VALUE_BYTES {
                return Err(DomainError::Invalid(format!(
                    "the value of secret key '{key}' is longer than {MAX_VALUE_BYTES} bytes"
                )));
            }
            total += key.len() + value.len();
        }
        if total > MAX_TOTAL_BYTES {
            return Err(DomainError::Invalid(format!(
                "a secret's keys and values may hold at most {MAX_TOTAL_BYTES} bytes in all"
            )));
        }
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The serialised form that gets encrypted.
    pub fn to_plaintext(&self) -> Zeroizing<Vec<u8>> {
        let map: BTreeMap<&str, &str> = self.iter().collect();
        Zeroizing::new(serde_json::to_vec(&map).expect("a string map always serialises"))
    }

    pub fn from_plaintext(bytes: &[u8]) -> Option<SecretValues> {
        let map: BTreeMap<String, String> = serde_json::from_slice(bytes).ok()?;
        Some(SecretValues(
            map.into_iter()
                .map(|(k, v)| (k, Zeroizing::new(v)))
                .collect(),
        ))
    }
}

impl fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect()
    }

    #[test]
    fn debug_output_never_shows_values() {
        let values = SecretValues::parse(map(&[("password", Some("hunter2"))])).unwrap();
        let printed = format!("{values:?}");
        assert!(!printed.contains("hunter2"));
        assert!(printed.contains("password"));
    }

    #[test]
    fn patch_sets_and_removes_keys() {
        let mut values = SecretValues::parse(map(&[("a", Some("1")), ("b", Some("2"))])).unwrap();
        values.patch(map(&[("a", None), ("c", Some("3"))])).unwrap();
        assert_eq!(values.keys().collect::<Vec<_>>(), ["b", "c"]);
    }

    #[test]
    fn limits_are_enforced() {
        let too_many: BTreeMap<_, _> = (0..=MAX_VALUES)
            .map(|i| (format!("k{i}"), Some("v".to_string())))
            .collect();
        assert!(SecretValues::parse(too_many).is_err());
        let too_long = map(&[("k", Some(&"x".repeat(MAX_VALUE_BYTES + 1)))]);
        assert!(SecretValues::parse(too_long).is_err());
        assert!(SecretValues::parse(map(&[("", Some("v"))])).is_err());
    }

    #[test]
    fn plaintext_round_trips() {
        let values = SecretValues::parse(map(&[("user", Some("u")), ("pw", Some("p"))])).unwrap();
        assert_eq!(
            SecretValues::from_plaintext(&values.to_plaintext()),
            Some(values)
        );
    }
}
