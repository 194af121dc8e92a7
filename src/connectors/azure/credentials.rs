//! Azure AD tokens for a connector, per auth method, cached per connector and scope until
//! shortly before they expire.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::ClientOptions;
use azure_identity::{
    AzureCliCredential, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::cloud::Cloud;
use super::outbound::Outbound;
use crate::metrics::{AzureService, CacheResult, TokenCacheMetrics};

/// A cached token is handed out only while it has at least this long to live.
const EXPIRY_MARGIN_SECONDS: i64 = 300;
/// Cached tokens kept at most; expired ones are dropped first.
const MAX_CACHED_TOKENS: usize = 10_000;

/// A bearer token and when it expires.
#[derive(Clone)]
pub struct Token {
    pub secret: Zeroizing<String>,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// How a connector proves who it is.
pub enum Credentials {
    ServicePrincipal {
        tenant_id: String,
        client_id: String,
        client_secret: Zeroizing<String>,
    },
    AccessToken(Token),
    Implicit,
}

/// The server's own identity for implicit connectors, from its environment.
#[derive(Debug, Clone, Default)]
pub struct ImplicitIdentitySettings {
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub federated_token_file: Option<PathBuf>,
}

/// The sources of the server's identity, tried in order.
pub struct ImplicitIdentity {
    sources: Vec<(&'static str, Arc<dyn TokenCredential>)>,
}

impl ImplicitIdentity {
    /// No identity at all: implicit authentication is off, so nothing is probed or logged.
    pub fn disabled() -> ImplicitIdentity {
        ImplicitIdentity {
            sources: Vec::new(),
        }
    }

    /// As Azure's default credential chain: an environment service principal, workload
    /// identity, managed identity, then the Azure CLI where installed.
    pub fn new(
        settings: &ImplicitIdentitySettings,
        cloud: &Cloud,
        outbound: &Outbound,
    ) -> ImplicitIdentity {
        let mut sources: Vec<(&'static str, Arc<dyn TokenCredential>)> = Vec::new();
        if let (Some(tenant), Some(client), Some(secret)) = (
            &settings.tenant_id,
            &settings.client_id,
            &settings.client_secret,
        ) && let Ok(credential) =
            client_secret_credential(tenant, client, secret, cloud, outbound)
        {
            sources.push(("environment service principal", credential));
        }
        if let Some(file) = &settings.federated_token_file {
            let mut options = WorkloadIdentityCredentialOptions {
                client_id: settings.client_id.clone(),
                tenant_id: settings.tenant_id.clone(),
                token_file_path: Some(file.clone()),
                ..Default::default()
            };
            options.credential_options.client_options = client_options(cloud, outbound);
            if let Ok(credential) = WorkloadIdentityCredential::new(Some(options)) {
                sources.push(("workload identity", credential));
            }
        }
        if let Ok(credential) =
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                client_options: outbound.sdk_options(),
                ..Default::default()
            }))
        {
            sources.push(("managed identity", credential));
        }
        if let Ok(credential) = AzureCliCredential::new(None) {
            sources.push(("Azure CLI", credential));
        }
        ImplicitIdentity { sources }
    }

    async fn token(&self, scope: &str) -> Result<Token, String> {
        if self.sources.is_empty() {
            return Err("implicit authentication is disabled on this server".into());
        }
        let mut failures = Vec::new();
        for (name, source) in &self.sources {
            match source.get_token(&[scope], None).await {
                Ok(token) => return Ok(from_sdk(token)),
                Err(error) => failures.push(format!("{name}: {}", sdk_error(&error))),
            }
        }
        Err(format!(
            "the server found no Azure identity of its own ({})",
            failures.join("; ")
        ))
    }
}

/// The SDK's options for calls to `cloud`'s Azure AD through our transport.
fn client_options(cloud: &Cloud, outbound: &Outbound) -> ClientOptions {
    let mut custom = CustomConfiguration::default();
    custom.authority_host = cloud.authority_host.clone();
    let mut options = outbound.sdk_options();
    options.cloud = Some(Arc::new(CloudConfiguration::Custom(custom)));
    options
}

fn client_secret_credential(
    tenant_id: &str,
    client_id: &str,
    client_secret: &str,
    cloud: &Cloud,
    outbound: &Outbound,
) -> azure_core::Result<Arc<ClientSecretCredential>> {
    ClientSecretCredential::new(
        tenant_id,
        client_id.to_owned(),
        Secret::new(client_secret.to_owned()),
        Some(ClientSecretCredentialOptions {
            client_options: client_options(cloud, outbound),
        }),
    )
}

fn from_sdk(token: azure_core::credentials::AccessToken) -> Token {
    Token {
        secret: Zeroizing::new(token.token.secret().to_owned()),
        expires_at: Utc
            .timestamp_opt(token.expires_on.unix_timestamp(), 0)
            .single()
            .unwrap_or_else(Utc::now),
    }
}

/// An SDK error with its causes: Azure AD's `error_description` is in there.
pub fn sdk_error(error: &azure_core::Error) -> String {
    super::outbound::describe(error)
}

/// Why Azure AD issued no token for a service principal. Only a 4xx answer (other than 429)
/// is a refusal of the credentials; throttling, outages and timeouts are said to be what they
/// are, so that users do not rotate a secret that is fine.
fn token_failure(error: &azure_core::Error) -> String {
    let status = error.http_status().or_else(|| {
        error
            .downcast_ref::<azure_core::Error>()
            .and_then(azure_core::Error::http_status)
    });
    match status.map(u16::from) {
        Some(code @ 400..=499) if code != 429 => format!(
            "Azure AD refused the service principal credentials: {}",
            sdk_error(error)
        ),
        Some(code) => format!(
            "Azure AD failed to issue a token (HTTP {code}), after retries: {}",
            sdk_error(error)
        ),
        None => format!("Azure AD issued no token: {}", sdk_error(error)),
    }
}

/// Tokens by (connector and credentials, scope).
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<([u8; 32], String), Token>>,
    lookups: TokenCacheMetrics,
}

impl TokenCache {
    /// An empty cache that counts its hits and misses in `lookups`.
    pub fn counted(lookups: TokenCacheMetrics) -> TokenCache {
        TokenCache {
            entries: Mutex::default(),
            lookups,
        }
    }

    fn get(&self, key: &([u8; 32], String), now: DateTime<Utc>) -> Option<Token> {
        let entries = self.entries.lock().expect("token cache lock");
        let found = entries
            .get(key)
            .filter(|token| token.expires_at - Duration::seconds(EXPIRY_MARGIN_SECONDS) > now)
            .cloned();
        self.lookups.looked_up(match found {
            Some(_) => CacheResult::hit,
            None => CacheResult::miss,
        });
        found
    }

    fn put(&self, key: ([u8; 32], String), token: Token, now: DateTime<Utc>) {
        let mut entries = self.entries.lock().expect("token cache lock");
        if entries.len() >= MAX_CACHED_TOKENS {
            entries.retain(|_, token| token.expires_at > now);
            if entries.len() >= MAX_CACHED_TOKENS {
                entries.clear();
            }
        }
        entries.insert(key, token);
    }
}

/// Fetches tokens for one connector.
pub struct TokenSource<'a> {
    pub connector_id: Uuid,
    pub credentials: &'a Credentials,
    pub cloud: &'a Cloud,
    pub outbound: &'a Outbound,
    pub cache: &'a TokenCache,
    pub implicit: &'a ImplicitIdentity,
    pub now: DateTime<Utc>,
}

impl TokenSource<'_> {
    /// A token for `scope`, from the cache when it has time left.
    pub async fn token(&self, scope: &str) -> Result<Token, String> {
        if let Credentials::AccessToken(token) = self.credentials {
            // A static token is whatever it is, for every scope.
            return Ok(token.clone());
        }
        let key = (self.fingerprint(), scope.to_owned());
        if let Some(token) = self.cache.get(&key, self.now) {
            return Ok(token);
        }
        let token = match self.credentials {
            Credentials::ServicePrincipal {
                tenant_id,
                client_id,
                client_secret,
            } => {
                let credential = client_secret_credential(
                    tenant_id,
                    client_id,
                    client_secret,
                    self.cloud,
                    self.outbound,
                )
                .map_err(|e| {
                    format!(
                        "the service principal credentials are not usable: {}",
                        sdk_error(&e)
                    )
                })?;
                let token = self
                    .outbound
                    .timed(AzureService::AAD, credential.get_token(&[scope], None))
                    .await
                    .map_err(|e| token_failure(&e))?;
                from_sdk(token)
            }
            Credentials::Implicit => {
                self.outbound
                    .timed(AzureService::AAD, self.implicit.token(scope))
                    .await?
            }
            Credentials::AccessToken(_) => unreachable!("handled above"),
        };
        self.cache.put(key, token.clone(), self.now);
        Ok(token)
    }

    /// Identifies the connector and its credentials, so that changed credentials never get an
    /// old token.
    fn fingerprint(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(self.connector_id.as_bytes());
        hash.update(self.cloud.name.as_bytes());
        match self.credentials {
            Credentials::ServicePrincipal {
                tenant_id,
                client_id,
                client_secret,
            } => {
                for part in [tenant_id.as_str(), client_id, client_secret] {
                    hash.update((part.len() as u64).to_le_bytes());
                    hash.update(part.as_bytes());
                }
            }
            Credentials::AccessToken(_) => hash.update(b"access-token"),
            Credentials::Implicit => hash.update(b"implicit"),
        }
        hash.finalize().into()
    }
}
