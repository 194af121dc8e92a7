//! The Docker Registry v2 login handshake, as dockerd performs it for `docker login` and
//! before a pull: `GET /v2/`, the 401 challenge, the token endpoint with Basic credentials, the
//! account and what else the caller asks for, then `/v2/` with the bearer token.
//!
//! The fake Docker daemon's `/auth` runs it, and so do the tests that use registry credentials
//! as Docker would (`docker_login.rs`).

use std::fmt;

use base64::Engine;
use reqwest::{Client, StatusCode, header};

/// Where a handshake stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum HandshakeError {
    /// No answer, or one the protocol does not allow (no challenge, no token, not JSON).
    Protocol(String),
    /// The token endpoint refused the credentials: its status and the registry's errors as
    /// (code, message) pairs.
    TokenRefused {
        status: StatusCode,
        body: String,
        errors: Vec<(String, String)>,
    },
    /// `/v2/` refused the credentials (Basic, or the bearer token just issued).
    RegistryRefused { status: StatusCode },
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Protocol(message) => f.write_str(message),
            HandshakeError::TokenRefused { status, body, .. } => {
                write!(f, "the token endpoint answered {status}: {body}")
            }
            HandshakeError::RegistryRefused { status } => {
                write!(f, "GET /v2/ with the credentials answered {status}")
            }
        }
    }
}

/// What `/v2/` accepted.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    /// `/v2/` answered 200 without credentials.
    Anonymous,
    /// `/v2/` asked for Basic credentials and took them.
    Basic,
    /// The token the token endpoint issued, which `/v2/` took.
    Bearer(String),
}

/// Logs in to `registry` (`host:port`) over HTTPS with `username` and `password` as a Docker
/// client does: `GET /v2/` without credentials; on its 401, the credentials the challenge asks
/// for, either Basic on `/v2/` itself or at the announced token endpoint (Basic credentials,
/// `service`, `account`, then `token_query`, such as the scope wanted) for a token that `/v2/`
/// must then take.
pub async fn handshake(
    http: &Client,
    registry: &str,
    username: &str,
    password: &str,
    token_query: &[(&str, &str)],
) -> Result<Accepted, HandshakeError> {
    let transport = |e: reqwest::Error| HandshakeError::Protocol(e.to_string());
    let base = format!("https://{registry}/v2/");
    let first = http.get(&base).send().await.map_err(transport)?;
    if first.status() == StatusCode::OK {
        return Ok(Accepted::Anonymous);
    }
    if first.status() != StatusCode::UNAUTHORIZED {
        return Err(HandshakeError::Protocol(format!(
            "GET /v2/ without credentials answered {}",
            first.status()
        )));
    }
    let challenge = first
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| {
            HandshakeError::Protocol("the 401 carries no WWW-Authenticate challenge".into())
        })?
        .to_owned();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    if challenge.starts_with("Basic ") || challenge == "Basic" {
        let retried = (http.get(&base))
            .header(header::AUTHORIZATION, format!("Basic {basic}"))
            .send()
            .await
            .map_err(transport)?;
        return match retried.status() {
            StatusCode::OK => Ok(Accepted::Basic),
            status => Err(HandshakeError::RegistryRefused { status }),
        };
    }
    let parameters = bearer_challenge(&challenge).ok_or_else(|| {
        HandshakeError::Protocol(format!("not a Basic or Bearer challenge: {challenge}"))
    })?;
    let parameter = |name: &str| {
        (parameters.iter())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .ok_or_else(|| {
                HandshakeError::Protocol(format!("the challenge names no {name}: {challenge}"))
            })
    };
    let (realm, service) = (parameter("realm")?, parameter("service")?);
    let mut query = vec![("account", username), ("service", &service)];
    query.extend_from_slice(token_query);
    let query = serde_urlencoded::to_string(query).unwrap();
    let answer = http
        .get(format!("{realm}?{query}"))
        .header(header::AUTHORIZATION, format!("Basic {basic}"))
        .send()
        .await
        .map_err(transport)?;
    if answer.status() != StatusCode::OK {
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        let errors = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|body| body["errors"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|error| {
                let text = |key: &str| error[key].as_str().unwrap_or_default().to_owned();
                (text("code"), text("message"))
            })
            .collect();
        return Err(HandshakeError::TokenRefused {
            status,
            body,
            errors,
        });
    }
    let body: serde_json::Value = answer.json().await.map_err(transport)?;
    let token = (body["token"].as_str())
        .or(body["access_token"].as_str())
        .ok_or_else(|| {
            HandshakeError::Protocol(format!("the token endpoint sent no token: {body}"))
        })?
        .to_owned();
    let retried = http
        .get(&base)
        .bearer_auth(&token)
        .send()
        .await
        .map_err(transport)?;
    match retried.status() {
        StatusCode::OK => Ok(Accepted::Bearer(token)),
        status => Err(HandshakeError::RegistryRefused { status }),
    }
}

/// `Bearer key="value",key="value"` as pairs.
fn bearer_challenge(challenge: &str) -> Option<Vec<(String, String)>> {
    let mut rest = challenge.strip_prefix("Bearer ")?;
    let mut pairs = Vec::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let (value, after) = after.split_once('"')?;
        pairs.push((key.trim().to_owned(), value.to_owned()));
        rest = after.trim_start_matches(',').trim_start();
    }
    Some(pairs)
}
