//! Signed bearer tokens (HS256 JWTs). The signing key is random, stored encrypted in the
//! database, and shared by every server process, so tokens survive restarts and work behind a
//! load balancer. Expiry is checked against the server's clock.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::crypto::keyring::server_secret_aad;
use crate::crypto::{CryptoError, CryptoResult, Keyring};
use crate::store::{Store, settings};

const SIGNING_KEY_NAME: &str = "token-signing-key";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: Uuid,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// Set when the token was obtained with a service account's API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<Uuid>,
    /// This session's own id, by which a password change may keep it.
    #[serde(default = "Uuid::nil")]
    pub jti: Uuid,
    /// The generation of the user's sessions this one belongs to: it ends when the user's
    /// moves on. Tokens from before generations existed belong to the first.
    #[serde(default)]
    pub generation: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the access token is malformed or its signature is invalid")]
    Invalid,
    #[error("the access token has expired")]
    Expired,
}

pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    lifetime: Duration,
}

impl TokenSigner {
    /// Loads the signing key, creating it when this is the first process to start.
    pub async fn load(
        store: &Store,
        keyring: &Keyring,
        issuer: String,
        lifetime: Duration,
        now: DateTime<Utc>,
    ) -> CryptoResult<TokenSigner> {
        let mut conn = store.conn().await?;
        if settings::get_sealed(&mut conn, SIGNING_KEY_NAME)
            .await?
            .is_none()
        {
            let mut fresh = Zeroizing::new([0u8; 32]);
            rand_core::OsRng.fill_bytes(fresh.as_mut());
            let encoded = Zeroizing::new(STANDARD.encode(fresh.as_ref()));
            let id = Uuid::new_v4();
            let (key_id, ciphertext) = keyring
                .encrypt(&server_secret_aad(id, SIGNING_KEY_NAME), encoded.as_bytes())
                .await?;
            settings::insert_sealed_if_absent(
                &mut conn,
                id,
                SIGNING_KEY_NAME,
                key_id,
                &ciphertext,
                now,
            )
            .await?;
        }
        let stored = settings::get_sealed(&mut conn, SIGNING_KEY_NAME)
            .await?
            .ok_or(CryptoError::Format)?;
        let encoded = keyring
            .decrypt(
                &server_secret_aad(stored.id, SIGNING_KEY_NAME),
                &stored.ciphertext,
            )
            .await?;
        let secret = Zeroizing::new(
            STANDARD
                .decode(&*encoded)
                .map_err(|_| CryptoError::Format)?,
        );

        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[&issuer]);
        // Expiry is checked against the server clock in `verify`.
        validation.validate_exp = false;
        validation.required_spec_claims = ["sub", "iss", "aud", "exp"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        Ok(TokenSigner {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            validation,
            issuer,
            lifetime,
        })
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A token for `user`, in the generation of their sessions `generation`.
    pub fn issue(
        &self,
        user: Uuid,
        api_key_id: Option<Uuid>,
        generation: i64,
        now: DateTime<Utc>,
    ) -> String {
        let claims = Claims {
            sub: user,
            iss: self.issuer.clone(),
            aud: self.issuer.clone(),
            iat: now.timestamp(),
            exp: now.timestamp() + i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX / 2),
            api_key_id,
            jti: Uuid::new_v4(),
            generation,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        if data.claims.exp <= now.timestamp() {
            return Err(TokenError::Expired);
        }
        Ok(data.claims)
    }
}
