//! What `docker login` makes a registry do (the Docker Registry HTTP API v2 handshake): `GET
//! /v2/` without credentials; on a 401, the credentials as the challenge in `WWW-Authenticate`
//! asks for them, either Basic on `/v2/` itself or exchanged at the announced token endpoint
//! for a bearer token that `/v2/` then accepts.

use reqwest::{Client, StatusCode, Url, header};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::connectors::engine::with_causes;
use crate::connectors::user_endpoints::UserEndpoints;

/// Docker Hub's API is not served at `docker.io` itself.
fn api_host(registry: &str) -> &str {
    match registry {
        "docker.io" => "registry-1.docker.io",
        other => other,
    }
}

pub async fn log_in(
    http: &Client,
    endpoints: &UserEndpoints,
    registry: &str,
    username: &str,
    password: &str,
) -> Result<(), String> {
    let base = Url::parse(&format!("https://{}/v2/", api_host(registry)))
        .map_err(|e| format!("the registry '{registry}' is not a host: {e}"))?;
    endpoints.check_url(&base)?;
    let send = async |request: reqwest::RequestBuilder, what: &str| {
        request
            .send()
            .await
            .map_err(|e| format!("failed to reach {what}: {}", with_causes(&e)))
    };
    let anonymous = send(http.get(base.clone()), "the registry").await?;
    let challenge = match anonymous.status() {
        // Open to anyone: as for `docker login`, there is nothing to prove.
        status if status.is_success() => return Ok(()),
        StatusCode::UNAUTHORIZED => anonymous
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(Challenge::parse)
            .ok_or("the registry answered 401 without a WWW-Authenticate challenge")??,
        status => return Err(not_a_registry(registry, status)),
    };
    let answer = match challenge {
        Challenge::Basic => {
            let request = http.get(base).basic_auth(username, Some(password));
            send(request, "the registry").await?
        }
        Challenge::Bearer { realm, service } => {
            let token = bearer_token(http, endpoints, &realm, service.as_deref(), username, password)
                .await?;
            let request = http.get(base).bearer_auth(token.as_str());
            send(request, "the registry").await?
        }
    };
    match answer.status() {
        status if status.is_success() => Ok(()),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(format!(
            "the registry '{registry}' refused the username and password (HTTP {})",
            answer.status().as_u16()
        )),
        status => Err(not_a_registry(registry, status)),
    }
}

fn not_a_registry(registry: &str, status: StatusCode) -> String {
    format!(
        "the registry '{registry}' answered HTTP {} to /v2/: it does not look like a Docker \
         registry",
        status.as_u16()
    )
}

/// How the registry wants credentials presented.
#[derive(Debug, PartialEq)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    fn parse(header: &str) -> Result<Challenge, String> {
        let (scheme, parameters) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        let parameter = |name: &str| {
            split_parameters(parameters)
                .into_iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value)
        };
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Ok(Challenge::Basic),
            "bearer" => Ok(Challenge::Bearer {
                realm: parameter("realm")
                    .ok_or_else(|| format!("the registry's challenge names no realm: {header}"))?,
                service: parameter("service"),
            }),
            _ => Err(format!("the registry asks for credentials that Docker cannot give: {header}")),
        }
    }
}

/// `key="value", key2=value2`, with commas allowed inside quotes.
fn split_parameters(text: &str) -> Vec<(String, String)> {
    let mut parameters = Vec::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let after = after.trim_start();
        let (value, remainder) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.split_once('"') {
                Some((value, remainder)) => (value, remainder),
                None => (quoted, ""),
            },
            None => after.split_once(',').map_or((after, ""), |(v, r)| (v, r)),
        };
        parameters.push((key.trim().to_owned(), value.trim().to_owned()));
        rest = remainder.trim_start().trim_start_matches(',').trim_start();
    }
    parameters
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
}

/// The token endpoint's bearer token for the account, with no repository scope, as `docker
/// login` asks for it.
async fn bearer_token(
    http: &Client,
    endpoints: &UserEndpoints,
    realm: &str,
    service: Option<&str>,
    username: &str,
    password: &str,
) -> Result<Zeroizing<String>, String> {
    let mut url = Url::parse(realm)
        .map_err(|e| format!("the registry's token endpoint '{realm}' is not a URL: {e}"))?;
    if url.scheme() != "https" {
        return Err(format!(
            "the registry's token endpoint '{realm}' is not https: credentials are sent only \
             over TLS"
        ));
    }
    endpoints.check_url(&url)?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(service) = service {
            query.append_pair("service", service);
        }
        query.append_pair("account", username);
    }
    let answer = http
        .get(url)
        .basic_auth(username, Some(password))
        .send()
        .await
        .map_err(|e| format!("failed to reach the registry's token endpoint: {}", with_causes(&e)))?;
    match answer.status() {
        status if status.is_success() => {}
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            return Err(format!(
                "the registry's token endpoint refused the username and password (HTTP {})",
                answer.status().as_u16()
            ));
        }
        status => {
            return Err(format!(
                "the registry's token endpoint answered HTTP {}",
                status.as_u16()
            ));
        }
    }
    let body: TokenAnswer = answer
        .json()
        .await
        .map_err(|e| format!("the registry's token endpoint sent no token: {e}"))?;
    body.token
        .or(body.access_token)
        .filter(|t| !t.is_empty())
        .map(Zeroizing::new)
        .ok_or_else(|| "the registry's token endpoint sent no token".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_read_as_registries_send_them() {
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push""#
            )
            .unwrap(),
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
            }
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="Registry Realm""#).unwrap(),
            Challenge::Basic
        );
        assert!(Challenge::parse("Bearer service=x").is_err());
        assert!(Challenge::parse("Negotiate").is_err());
    }
}
