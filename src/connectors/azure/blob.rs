//! The blob data plane, through azure_storage_blob: the containers of one storage account.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_storage_blob::{BlobServiceClient, BlobServiceClientOptions};
use futures::StreamExt;

use super::credentials::Token;
use super::outbound::Outbound;
use crate::metrics::AzureService;

/// Hands the SDK a storage token the engine already holds (and caches).
struct HeldToken(Token);

impl std::fmt::Debug for HeldToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeldToken(<redacted>)")
    }
}

#[async_trait]
impl TokenCredential for HeldToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let expires_on =
            azure_core::time::OffsetDateTime::from_unix_timestamp(self.0.expires_at.timestamp())
                .unwrap_or(azure_core::time::OffsetDateTime::now_utc());
        Ok(AccessToken::new(
            Secret::new(self.0.secret.to_string()),
            expires_on,
        ))
    }
}

/// The names of the containers at `endpoint` (the account's `primaryEndpoints.blob`).
pub async fn containers(
    outbound: &Outbound,
    endpoint: &str,
    token: Token,
) -> Result<Vec<String>, String> {
    outbound
        .timed(
            AzureService::Blob,
            list_containers(outbound, endpoint, token),
        )
        .await
}

async fn list_containers(
    outbound: &Outbound,
    endpoint: &str,
    token: Token,
) -> Result<Vec<String>, String> {
    let url = azure_core::http::Url::parse(endpoint).map_err(|e| {
        format!("the storage account's blob endpoint '{endpoint}' is not a URL: {e}")
    })?;
    let options = BlobServiceClientOptions {
        client_options: outbound.sdk_options(),
        ..Default::default()
    };
    let client = BlobServiceClient::new(url, Some(Arc::new(HeldToken(token))), Some(options))
        .map_err(|e| format!("cannot reach the blob endpoint {endpoint}: {e}"))?;
    let mut pager = client
        .list_containers(None)
        .map_err(|e| format!("cannot list the containers at {endpoint}: {e}"))?;
    let mut names = Vec::new();
    let deadline = outbound.limits().request_timeout * (outbound.limits().max_retries + 2);
    let drained = tokio::time::timeout(deadline, async {
        while let Some(item) = pager.next().await {
            let item = item.map_err(|e| super::credentials::sdk_error(&e))?;
            names.extend(item.name);
        }
        Ok::<_, String>(())
    })
    .await;
    match drained {
        Ok(Ok(())) => Ok(names),
        Ok(Err(message)) => Err(message),
        Err(_) => Err(format!(
            "the blob endpoint {endpoint} did not answer in time"
        )),
    }
}
