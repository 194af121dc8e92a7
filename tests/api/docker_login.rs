//! What a Docker client does with registry credentials (the Docker Registry v2 token
//! handshake), so that the credentials the server hands out are tested as Docker would use
//! them: `GET /v2/`, the 401 challenge, the token endpoint with Basic credentials and the
//! scope wanted, then the registry API with the bearer token.

use base64::Engine;
use reqwest::{Client, StatusCode, header};

/// Pulls the tag list of `repository` from `registry` (`host:port`) with `username` and
/// `password`, as `docker pull` would start; the tags, or where the handshake failed.
pub async fn list_tags(
    http: &Client,
    registry: &str,
    username: &str,
    password: &str,
    repository: &str,
) -> Result<Vec<String>, String> {
    let base = format!("https://{registry}/v2/");
    let first = http.get(&base).send().await.map_err(|e| e.to_string())?;
    if first.status() != StatusCode::UNAUTHORIZED {
        return Err(format!(
            "GET /v2/ without credentials answered {}",
            first.status()
        ));
    }
    let challenge = first
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|value| value.to_str().ok())
        .ok_or("the 401 carries no WWW-Authenticate challenge")?
        .to_owned();
    let parameters = bearer_challenge(&challenge)
        .ok_or_else(|| format!("not a Bearer challenge: {challenge}"))?;
    let parameter = |name: &str| {
        (parameters.iter())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .ok_or_else(|| format!("the challenge names no {name}: {challenge}"))
    };
    let (realm, service) = (parameter("realm")?, parameter("service")?);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let scope = format!("repository:{repository}:pull");
    let query = serde_urlencoded::to_string([("service", &service), ("scope", &scope)]).unwrap();
    let answer = http
        .get(format!("{realm}?{query}"))
        .header(header::AUTHORIZATION, format!("Basic {basic}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if answer.status() != StatusCode::OK {
        return Err(format!(
            "the token endpoint answered {}: {}",
            answer.status(),
            answer.text().await.unwrap_or_default()
        ));
    }
    let body: serde_json::Value = answer.json().await.map_err(|e| e.to_string())?;
    let token = (body["token"].as_str())
        .or(body["access_token"].as_str())
        .ok_or_else(|| format!("the token endpoint sent no token: {body}"))?
        .to_owned();
    let retried = http
        .get(&base)
        .bearer_auth(&token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if retried.status() != StatusCode::OK {
        return Err(format!(
            "GET /v2/ with the token answered {}",
            retried.status()
        ));
    }
    let tags = http
        .get(format!("https://{registry}/v2/{repository}/tags/list"))
        .bearer_auth(&token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if tags.status() != StatusCode::OK {
        let status = tags.status();
        let challenge = tags
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        return Err(format!("the tag list answered {status} ({challenge})"));
    }
    let body: serde_json::Value = tags.json().await.map_err(|e| e.to_string())?;
    Ok(
        (body["tags"].as_array().cloned().unwrap_or_default().iter())
            .filter_map(|tag| tag.as_str().map(str::to_owned))
            .collect(),
    )
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
