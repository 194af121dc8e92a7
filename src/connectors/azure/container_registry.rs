//! Azure Container Registry's data plane: exchanging an Azure AD token for a registry token,
//! and checking that the token opens the registry's `/v2/` API.

use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use zeroize::Zeroizing;

use super::outbound::{CallError, Outbound};
use crate::metrics::AzureService;

/// Docker logins with an ACR access token use this user name.
pub const TOKEN_USERNAME: &str = "00000000-0000-0000-0000-000000000000";

pub struct RegistryToken {
    pub token: Zeroizing<String>,
    /// From the token's `exp` claim, when it has one.
    pub expires_at: Option<DateTime<Utc>>,
}

/// `https://{login_server}`; the login server comes from ARM's `properties.loginServer`.
fn base_url(login_server: &str) -> Result<String, String> {
    let host = login_server.trim_end_matches('/');
    if host.is_empty() || host.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "the registry's login server '{login_server}' is not a host name"
        ));
    }
    Ok(format!("https://{host}"))
}

/// ACR's two-step exchange: an AAD token for a refresh token, then for an access token
/// allowed to pull and push every repository.
pub async fn access_token(
    outbound: &Outbound,
    login_server: &str,
    aad_token: &str,
) -> Result<RegistryToken, String> {
    let base = base_url(login_server)?;
    let refresh = outbound
        .send(AzureService::ACR, |client| {
            client.post(format!("{base}/oauth2/exchange")).form(&[
                ("grant_type", "access_token"),
                ("service", login_server),
                ("access_token", aad_token),
            ])
        })
        .await
        .map_err(|e| token_failure(login_server, "a refresh token", &e))?
        .json::<serde_json::Value>()
        .await
        .map_err(|e| {
            format!("the registry {login_server} sent an unreadable refresh token: {e}")
        })?;
    let refresh = refresh["refresh_token"]
        .as_str()
        .ok_or_else(|| format!("the registry {login_server} sent no refresh token"))?
        .to_owned();
    let access = outbound
        .send(AzureService::ACR, |client| {
            client.post(format!("{base}/oauth2/token")).form(&[
                ("grant_type", "refresh_token"),
                ("service", login_server),
                ("scope", "repository:*:*"),
                ("refresh_token", refresh.as_str()),
            ])
        })
        .await
        .map_err(|e| token_failure(login_server, "an access token", &e))?
        .json::<serde_json::Value>()
        .await
        .map_err(|e| format!("the registry {login_server} sent an unreadable access token: {e}"))?;
    let token = access["access_token"]
        .as_str()
        .ok_or_else(|| format!("the registry {login_server} sent no access token"))?;
    Ok(RegistryToken {
        expires_at: jwt_expiry(token),
        token: Zeroizing::new(token.to_owned()),
    })
}

/// `GET /v2/` with the registry token: proves the token opens the registry API.
pub async fn check(outbound: &Outbound, login_server: &str, token: &str) -> Result<(), String> {
    let base = base_url(login_server)?;
    outbound
        .send(AzureService::ACR, |client| {
            client.get(format!("{base}/v2/")).bearer_auth(token)
        })
        .await
        .map(drop)
        .map_err(|e| {
            format!(
                "the registry {login_server} refused its own access token ({})",
                brief(&e)
            )
        })
}

/// Why a token request failed; only a refusal (a 4xx other than 429) suggests a missing role.
fn token_failure(login_server: &str, what: &str, error: &CallError) -> String {
    let refused = matches!(error, CallError::Status { status, .. }
        if status.is_client_error() && *status != reqwest::StatusCode::TOO_MANY_REQUESTS);
    if refused {
        format!(
            "the registry {login_server} refused {what} ({}); make sure the connector's identity \
             has the AcrPull (or AcrPush) role on the registry",
            brief(error)
        )
    } else {
        format!(
            "the registry {login_server} failed to issue {what} ({})",
            brief(error)
        )
    }
}

fn brief(error: &CallError) -> String {
    match error {
        CallError::Transport(message) => message.clone(),
        CallError::Status { status, body } => {
            let body: String = body.chars().take(200).collect();
            format!("HTTP {status}: {body}")
        }
    }
}

/// The `exp` claim of a JWT, read without checking the signature: it only tells the client
/// when to ask again.
pub fn jwt_expiry(token: &str) -> Option<DateTime<Utc>> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Utc.timestamp_opt(claims["exp"].as_i64()?, 0).single()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_comes_from_the_exp_claim_and_login_servers_are_plain_hosts() {
        let payload =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp":1700000000}"#);
        assert_eq!(
            jwt_expiry(&format!("e30.{payload}.sig"))
                .unwrap()
                .timestamp(),
            1_700_000_000
        );
        assert!(jwt_expiry("not-a-jwt").is_none());
        assert_eq!(
            base_url("reg.azurecr.io").unwrap(),
            "https://reg.azurecr.io"
        );
        assert!(base_url("evil.example/path").is_err());
        assert!(base_url("user@evil.example").is_err());
    }
}
