//! Service-account API keys in ZenML's format: `ZENKEY_` followed by base64 of
//! `{"id": "<key uuid>", "key": "<secret>"}`. Only an Argon2 hash of the secret part is stored.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

const PREFIX: &str = "ZENKEY_";

#[derive(Serialize, Deserialize)]
struct Encoded {
    id: Uuid,
    key: String,
}

/// A freshly made key: the text handed to the client once, and the secret part to hash.
pub struct NewApiKey {
    pub text: Zeroizing<String>,
    pub secret: Zeroizing<String>,
}

pub fn generate(id: Uuid) -> NewApiKey {
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    let secret = Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes));
    let json = serde_json::to_vec(&Encoded {
        id,
        key: secret.to_string(),
    })
    .expect("an API key always serialises");
    NewApiKey {
        text: Zeroizing::new(format!("{PREFIX}{}", STANDARD.encode(json))),
        secret,
    }
}

/// Splits a presented key into its id and secret part; `None` when it is not one of ours.
pub fn parse(text: &str) -> Option<(Uuid, Zeroizing<String>)> {
    let json = Zeroizing::new(STANDARD.decode(text.trim().strip_prefix(PREFIX)?).ok()?);
    let decoded: Encoded = serde_json::from_slice(&json).ok()?;
    Some((decoded.id, Zeroizing::new(decoded.key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back() {
        let id = Uuid::new_v4();
        let key = generate(id);
        assert!(key.text.starts_with("ZENKEY_"));
        let (parsed_id, secret) = parse(&key.text).unwrap();
        assert_eq!(parsed_id, id);
        assert_eq!(*secret, *key.secret);
        assert!(parse("ZENKEY_garbage").is_none());
        assert!(parse("not a key").is_none());
    }
}
