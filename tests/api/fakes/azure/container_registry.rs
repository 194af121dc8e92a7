//! An Azure Container Registry's data plane: the AAD-to-ACR token exchange and the Docker
//! Registry v2 base endpoint.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;

use super::config::Permission;
use super::tokens::AcrAccess;
use super::{ARM_AUDIENCE, RegistryEndpoint, Shared};

const DISTRIBUTION_API_VERSION: (HeaderName, HeaderValue) = (
    HeaderName::from_static("docker-distribution-api-version"),
    HeaderValue::from_static("registry/2.0"),
);

pub(crate) fn router(shared: &Arc<Shared>, registry_index: usize) -> Router {
    Router::new()
        .route("/oauth2/exchange", post(exchange))
        .route("/oauth2/token", post(token))
        .route("/v2/", get(base))
        .with_state((shared.clone(), registry_index))
}

type RegistryState = State<(Arc<Shared>, usize)>;

/// `POST /oauth2/exchange`: an AAD token for ARM becomes an ACR refresh token.
async fn exchange(
    State((shared, index)): RegistryState,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let endpoint = &shared.registries[index];
    if let Err(error) = check_grant(&form, "access_token", endpoint) {
        return error.into_response();
    }
    if form
        .get("tenant")
        .is_some_and(|tenant| !tenant.eq_ignore_ascii_case(&shared.config.tenant_id))
    {
        return acr_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "tenant mismatch");
    }
    let Some(aad_token) = form.get("access_token") else {
        return acr_error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "missing access_token",
        );
    };
    let aad = match shared.tokens.verify_aad(aad_token, &[ARM_AUDIENCE]) {
        Ok(claims) if shared.service_principal(&claims.appid).is_some() => claims,
        _ => {
            return acr_error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "invalid AAD access token",
            );
        }
    };
    let refresh_token = shared.tokens.mint_acr_refresh(&endpoint.login_server, &aad);
    Json(json!({ "refresh_token": refresh_token })).into_response()
}

/// `POST /oauth2/token`: an ACR refresh token becomes an access token for `scope`, if the
/// principal may pull.
async fn token(
    State((shared, index)): RegistryState,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let endpoint = &shared.registries[index];
    if let Err(error) = check_grant(&form, "refresh_token", endpoint) {
        return error.into_response();
    }
    let refresh = form.get("refresh_token").and_then(|token| {
        (shared.tokens)
            .verify_acr_refresh(token, &endpoint.login_server)
            .ok()
    });
    let Some(refresh) = refresh else {
        return acr_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "invalid refresh token",
        );
    };
    let may_pull = {
        let state = shared.state();
        let principals = state.service_principals.values();
        principals
            .filter(|principal| principal.object_id == refresh.sub)
            .any(|principal| {
                principal
                    .permissions
                    .contains(&Permission::PullFromRegistry)
            })
    };
    if !may_pull {
        return acr_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required, visit https://aka.ms/acr/authorization for more information.",
        );
    }
    let access = form.get("scope").map(|scope| parse_scopes(scope));
    let access_token =
        shared
            .tokens
            .mint_acr_access(&endpoint.login_server, &refresh, access.unwrap_or_default());
    Json(json!({ "access_token": access_token })).into_response()
}

/// `grant_type` and `service` (which must name this registry) of a token request.
fn check_grant(
    form: &HashMap<String, String>,
    grant_type: &str,
    endpoint: &RegistryEndpoint,
) -> Result<(), AcrError> {
    if form.get("grant_type").map(String::as_str) != Some(grant_type) {
        return Err(AcrError(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            format!("grant_type must be {grant_type}"),
        ));
    }
    if form.get("service") != Some(&endpoint.login_server) {
        return Err(AcrError(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            format!("service must be {}", endpoint.login_server),
        ));
    }
    Ok(())
}

/// `repository:name:action,action` scopes, space-separated (names may contain `:`).
fn parse_scopes(scopes: &str) -> Vec<AcrAccess> {
    scopes
        .split_whitespace()
        .filter_map(|scope| {
            let (kind, rest) = scope.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            Some(AcrAccess {
                kind: kind.to_owned(),
                name: name.to_owned(),
                actions: actions.split(',').map(ToOwned::to_owned).collect(),
            })
        })
        .collect()
}

/// `GET /v2/`: 200 `{}` with an ACR access token or the admin user's Basic credentials,
/// otherwise the 401 challenge that sends Docker to `/oauth2/token`.
async fn base(State((shared, index)): RegistryState, headers: HeaderMap) -> Response {
    let endpoint = &shared.registries[index];
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let authorized = if let Some(token) = authorization.strip_prefix("Bearer ") {
        (shared.tokens)
            .verify_acr_access(token, &endpoint.login_server)
            .is_ok()
    } else if let Some(encoded) = authorization.strip_prefix("Basic ") {
        is_admin(endpoint, encoded)
    } else {
        false
    };
    if authorized {
        return ([DISTRIBUTION_API_VERSION], Json(json!({}))).into_response();
    }
    let login_server = &endpoint.login_server;
    let challenge =
        format!("Bearer realm=\"https://{login_server}/oauth2/token\",service=\"{login_server}\"");
    let mut response = acr_error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "authentication required, visit https://aka.ms/acr/authorization for more information.",
    );
    let headers = response.headers_mut();
    headers.insert(header::WWW_AUTHENTICATE, challenge.parse().unwrap());
    headers.insert(DISTRIBUTION_API_VERSION.0, DISTRIBUTION_API_VERSION.1);
    response
}

fn is_admin(endpoint: &RegistryEndpoint, encoded: &str) -> bool {
    let registry = &endpoint.registry;
    let Some(decoded) = BASE64
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
    else {
        return false;
    };
    let Some((username, password)) = decoded.split_once(':') else {
        return false;
    };
    registry.admin_user_enabled
        && username.eq_ignore_ascii_case(&registry.at.name)
        && registry.admin_passwords.iter().any(|p| p == password)
}

/// The Docker registry error body.
fn acr_error(status: StatusCode, code: &'static str, message: &str) -> Response {
    AcrError(status, code, message.to_owned()).into_response()
}

/// A rejection, kept small (unlike a `Response`) for `Result`s.
struct AcrError(StatusCode, &'static str, String);

impl IntoResponse for AcrError {
    fn into_response(self) -> Response {
        let AcrError(status, code, message) = self;
        let body = json!({"errors": [{"code": code, "message": message, "detail": null}]});
        (status, Json(body)).into_response()
    }
}
