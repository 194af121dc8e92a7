//! The JWTs the fake issues and checks: AAD access tokens and ACR refresh/access tokens.
//!
//! They are HS256-signed with a key made at start, so only tokens this fake issued pass; the
//! claims follow Azure's (Azurite, which ignores signatures, checks `aud`, `iss`, `nbf` and
//! `exp` of AAD tokens).

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const ACR_ISSUER: &str = "Azure Container Registry";
/// ACR refresh tokens last about three hours, access tokens 75 minutes.
const ACR_REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(3 * 3600);
pub const ACR_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(75 * 60);

/// The claims of an app-only AAD v1 access token (what client credentials yield).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AadClaims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub tid: String,
    pub oid: String,
    pub sub: String,
    pub appid: String,
    pub appidacr: String,
    pub idtyp: String,
    /// Unique per token, as AAD's are, so that two tokens issued in one second differ.
    pub uti: String,
    pub ver: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcrAccess {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// ACR's own tokens. A refresh token has `grant_type: refresh_token` and no `access`; an
/// access token has `access` and no `grant_type`, so neither passes for the other.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AcrClaims {
    pub jti: String,
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub tenant: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Vec<AcrAccess>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRejection {
    /// Not a JWT this fake signed, or of the wrong kind.
    Invalid,
    Expired,
    WrongAudience(String),
}

/// The claims of a workload's own token (e.g. a Kubernetes service-account token) that it
/// presents to AAD as a federated client assertion.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

pub struct TokenIssuer {
    key: Vec<u8>,
}

impl TokenIssuer {
    pub fn new() -> TokenIssuer {
        let key = [Uuid::new_v4().into_bytes(), Uuid::new_v4().into_bytes()].concat();
        TokenIssuer { key }
    }

    /// An AAD token for `audience`; a negative `lifetime_seconds` makes an expired one.
    pub fn mint_aad(
        &self,
        tenant_id: &str,
        client_id: &str,
        object_id: &str,
        audience: &str,
        lifetime_seconds: i64,
    ) -> String {
        let now = now();
        self.sign(&AadClaims {
            aud: audience.to_owned(),
            iss: format!("https://sts.windows.net/{tenant_id}/"),
            iat: now,
            nbf: now.min(now + lifetime_seconds),
            exp: now + lifetime_seconds,
            tid: tenant_id.to_owned(),
            oid: object_id.to_owned(),
            sub: object_id.to_owned(),
            appid: client_id.to_owned(),
            appidacr: "1".to_owned(),
            idtyp: "app".to_owned(),
            uti: Uuid::new_v4().simple().to_string(),
            ver: "1.0".to_owned(),
        })
    }

    /// Checks an AAD token this fake issued, whose `aud` is one of `audiences`.
    pub fn verify_aad(&self, token: &str, audiences: &[&str]) -> Result<AadClaims, TokenRejection> {
        let claims: AadClaims = self.verify(token)?;
        if !claims.iss.starts_with("https://sts.windows.net/") {
            return Err(TokenRejection::Invalid);
        }
        if !audiences.contains(&claims.aud.as_str()) {
            return Err(TokenRejection::WrongAudience(claims.aud));
        }
        Ok(claims)
    }

    /// A workload token, signed as if by `issuer` (AAD trusts this fake's key for every
    /// issuer, where Azure would fetch the issuer's published keys).
    pub fn mint_workload(
        &self,
        issuer: &str,
        subject: &str,
        audience: &str,
        lifetime_seconds: i64,
    ) -> String {
        let now = now();
        self.sign(&WorkloadClaims {
            iss: issuer.to_owned(),
            sub: subject.to_owned(),
            aud: audience.to_owned(),
            iat: now,
            nbf: now.min(now + lifetime_seconds),
            exp: now + lifetime_seconds,
        })
    }

    /// Signature, `exp` and `nbf` of a workload token; the record it must match is checked by
    /// the caller.
    pub fn verify_workload(&self, token: &str) -> Result<WorkloadClaims, TokenRejection> {
        self.verify(token)
    }

    pub fn mint_acr_refresh(&self, login_server: &str, aad: &AadClaims) -> String {
        let now = now();
        self.sign(&AcrClaims {
            jti: Uuid::new_v4().to_string(),
            sub: aad.oid.clone(),
            iss: ACR_ISSUER.to_owned(),
            aud: login_server.to_owned(),
            iat: now,
            nbf: now,
            exp: now + ACR_REFRESH_TOKEN_LIFETIME.as_secs() as i64,
            tenant: aad.tid.clone(),
            version: "1.0".to_owned(),
            grant_type: Some("refresh_token".to_owned()),
            access: None,
        })
    }

    /// An access token for `subject` (an object id, or the admin user's name).
    pub fn mint_acr_access(
        &self,
        login_server: &str,
        subject: &str,
        tenant: &str,
        access: Vec<AcrAccess>,
    ) -> String {
        let now = now();
        self.sign(&AcrClaims {
            jti: Uuid::new_v4().to_string(),
            sub: subject.to_owned(),
            iss: ACR_ISSUER.to_owned(),
            aud: login_server.to_owned(),
            iat: now,
            nbf: now,
            exp: now + ACR_ACCESS_TOKEN_LIFETIME.as_secs() as i64,
            tenant: tenant.to_owned(),
            version: "1.0".to_owned(),
            grant_type: None,
            access: Some(access),
        })
    }

    pub fn verify_acr_refresh(
        &self,
        token: &str,
        login_server: &str,
    ) -> Result<AcrClaims, TokenRejection> {
        let claims = self.verify_acr(token, login_server)?;
        match claims.grant_type.as_deref() {
            Some("refresh_token") => Ok(claims),
            _ => Err(TokenRejection::Invalid),
        }
    }

    pub fn verify_acr_access(
        &self,
        token: &str,
        login_server: &str,
    ) -> Result<AcrClaims, TokenRejection> {
        let claims = self.verify_acr(token, login_server)?;
        match claims.access {
            Some(_) => Ok(claims),
            None => Err(TokenRejection::Invalid),
        }
    }

    fn verify_acr(&self, token: &str, login_server: &str) -> Result<AcrClaims, TokenRejection> {
        let claims: AcrClaims = self.verify(token)?;
        if claims.iss != ACR_ISSUER {
            return Err(TokenRejection::Invalid);
        }
        if claims.aud != login_server {
            return Err(TokenRejection::WrongAudience(claims.aud));
        }
        Ok(claims)
    }

    fn sign(&self, claims: &impl Serialize) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("JWT".to_owned());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(&self.key)).unwrap()
    }

    /// Signature, `exp` and `nbf` only; audiences are checked by the callers, so that they
    /// can say which one was wrong.
    fn verify<T: for<'de> Deserialize<'de>>(&self, token: &str) -> Result<T, TokenRejection> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        jsonwebtoken::decode::<T>(token, &DecodingKey::from_secret(&self.key), &validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => TokenRejection::Expired,
                _ => TokenRejection::Invalid,
            })
    }
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
