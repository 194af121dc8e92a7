//! An Azure Container Registry's data plane: the AAD-to-ACR token exchange, the token
//! endpoint a Docker client logs in at, and enough of the Docker Registry v2 API to prove
//! what a token opens (`/v2/` and a repository's tag list).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
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

/// The user name of logins with an ACR token rather than the admin user.
const ACR_TOKEN_USERNAME: &str = "00000000-0000-0000-0000-000000000000";

const DISTRIBUTION_API_VERSION: (HeaderName, HeaderValue) = (
    HeaderName::from_static("docker-distribution-api-version"),
    HeaderValue::from_static("registry/2.0"),
);

pub(crate) fn router(shared: &Arc<Shared>, registry_index: usize) -> Router {
    Router::new()
        .route("/oauth2/exchange", post(exchange))
        .route("/oauth2/token", post(token).get(docker_token))
        .route("/v2/", get(base))
        .route("/v2/{*repository_path}", get(repository))
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
    if !may_pull(&shared, endpoint, &refresh.sub) {
        return acr_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required, visit https://aka.ms/acr/authorization for more information.",
        );
    }
    let access = form.get("scope").map(|scope| parse_scopes(scope));
    let access_token = shared.tokens.mint_acr_access(
        &endpoint.login_server,
        &refresh.sub,
        &refresh.tenant,
        access.unwrap_or_default(),
    );
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

/// `GET /oauth2/token?service=…&scope=…` with Basic credentials, as a Docker client asks
/// after a 401 challenge: the registry's admin user, or the all-zero user name with an ACR
/// refresh token or access token. An access token yields no more than it holds itself.
async fn docker_token(
    State((shared, index)): RegistryState,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let endpoint = &shared.registries[index];
    if query.get("service") != Some(&endpoint.login_server) {
        return acr_error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            &format!("service must be {}", endpoint.login_server),
        );
    }
    let requested = query
        .get("scope")
        .map(|scope| parse_scopes(scope))
        .unwrap_or_default();
    let Some((username, password)) = basic_credentials(&headers) else {
        return acr_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required, visit https://aka.ms/acr/authorization for more information.",
        );
    };
    let tokens = &shared.tokens;
    let login_server = &endpoint.login_server;
    let tenant = &shared.config.tenant_id;
    // (whom the token is for, what it allows)
    let granted = if is_admin(endpoint, &username, &password) {
        Some((username.clone(), requested))
    } else if username == ACR_TOKEN_USERNAME {
        if let Ok(held) = tokens.verify_acr_access(&password, login_server) {
            let allowed = held.access.unwrap_or_default();
            let narrowed = (requested.iter())
                .filter_map(|wanted| narrow(wanted, &allowed))
                .collect();
            Some((held.sub, narrowed))
        } else if let Ok(refresh) = tokens.verify_acr_refresh(&password, login_server) {
            may_pull(&shared, endpoint, &refresh.sub).then_some((refresh.sub, requested))
        } else {
            None
        }
    } else {
        None
    };
    let Some((subject, access)) = granted else {
        return acr_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required, visit https://aka.ms/acr/authorization for more information.",
        );
    };
    let access_token = tokens.mint_acr_access(login_server, &subject, tenant, access);
    Json(json!({ "access_token": access_token })).into_response()
}

/// What of `wanted` a token holding `held` may have: the actions both allow, for a
/// repository both name (`*` stands for every repository or action).
fn narrow(wanted: &AcrAccess, held: &[AcrAccess]) -> Option<AcrAccess> {
    let covers = |pattern: &str, value: &str| pattern == "*" || pattern == value;
    let actions: Vec<String> = (wanted.actions.iter())
        .filter(|action| {
            held.iter().any(|grant| {
                grant.kind == wanted.kind
                    && covers(&grant.name, &wanted.name)
                    && grant.actions.iter().any(|held| covers(held, action))
            })
        })
        .cloned()
        .collect();
    (!actions.is_empty()).then(|| AcrAccess {
        actions,
        ..wanted.clone()
    })
}

/// The access token's grants, if the request carries a valid one.
fn bearer_access(
    shared: &Shared,
    endpoint: &RegistryEndpoint,
    headers: &HeaderMap,
) -> Option<Vec<AcrAccess>> {
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    let claims = (shared.tokens)
        .verify_acr_access(token, &endpoint.login_server)
        .ok()?;
    claims.access
}

/// `GET /v2/`: 200 `{}` with an ACR access token or the admin user's Basic credentials,
/// otherwise the 401 challenge that sends Docker to `/oauth2/token`.
async fn base(State((shared, index)): RegistryState, headers: HeaderMap) -> Response {
    let endpoint = &shared.registries[index];
    let authorized = bearer_access(&shared, endpoint, &headers).is_some()
        || basic_credentials(&headers)
            .is_some_and(|(username, password)| is_admin(endpoint, &username, &password));
    if authorized {
        return ([DISTRIBUTION_API_VERSION], Json(json!({}))).into_response();
    }
    challenge(endpoint, None)
}

/// `GET /v2/{repository}/tags/list`: needs a token whose `access` allows `pull` on the
/// repository; one that does not gets the challenge naming the scope it lacks.
async fn repository(
    State((shared, index)): RegistryState,
    Path(repository_path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let endpoint = &shared.registries[index];
    let Some(name) = repository_path.strip_suffix("/tags/list") else {
        return acr_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "not served by this fake",
        );
    };
    let wanted = AcrAccess {
        kind: "repository".to_owned(),
        name: name.to_owned(),
        actions: vec!["pull".to_owned()],
    };
    let held = bearer_access(&shared, endpoint, &headers);
    if held.is_none_or(|held| narrow(&wanted, &held).is_none()) {
        return challenge(endpoint, Some(&format!("repository:{name}:pull")));
    }
    if !endpoint.registry.repositories.iter().any(|r| r == name) {
        return acr_error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            &format!("repository name not known to registry. {name}"),
        );
    }
    (
        [DISTRIBUTION_API_VERSION],
        Json(json!({"name": name, "tags": ["latest"]})),
    )
        .into_response()
}

/// The 401 that tells a Docker client where to get a token, and for what.
fn challenge(endpoint: &RegistryEndpoint, scope: Option<&str>) -> Response {
    let login_server = &endpoint.login_server;
    let mut challenge =
        format!("Bearer realm=\"https://{login_server}/oauth2/token\",service=\"{login_server}\"");
    if let Some(scope) = scope {
        challenge.push_str(&format!(",scope=\"{scope}\",error=\"insufficient_scope\""));
    }
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

/// `Authorization: Basic …` as (username, password).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let encoded = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = String::from_utf8(BASE64.decode(encoded).ok()?).ok()?;
    let (username, password) = decoded.split_once(':')?;
    Some((username.to_owned(), password.to_owned()))
}

fn is_admin(endpoint: &RegistryEndpoint, username: &str, password: &str) -> bool {
    let registry = &endpoint.registry;
    registry.admin_user_enabled
        && username.eq_ignore_ascii_case(&registry.at.name)
        && registry.admin_passwords.iter().any(|p| p == password)
}

/// Whether the principal with object id `subject` holds a pull role on the registry.
fn may_pull(shared: &Shared, endpoint: &RegistryEndpoint, subject: &str) -> bool {
    let state = shared.state();
    let principals = state.service_principals.values();
    principals
        .filter(|principal| principal.object_id == subject)
        .any(|principal| {
            principal.may(
                Permission::PullFromRegistry,
                Some(&endpoint.registry.at.resource_group),
            )
        })
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
