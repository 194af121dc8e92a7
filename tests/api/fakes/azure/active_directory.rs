//! Azure AD (Entra ID): the v2.0 token endpoint for client credentials, and the OpenID
//! configuration MSAL reads first.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::json;
use uuid::Uuid;

use super::config::{AKS_AAD_SERVER_APP_ID, FakeServicePrincipal};
use super::tokens::{TokenIssuer, TokenRejection};
use super::{ARM_AUDIENCE, STORAGE_AUDIENCE, Shared};

pub(crate) fn router(shared: &Arc<Shared>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(issue_token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .with_state(shared.clone())
}

/// `POST /{tenant}/oauth2/v2.0/token` with `grant_type=client_credentials`, authenticated by
/// a client secret or a federated client assertion. Unknown form fields (MSAL adds some) are
/// ignored.
async fn issue_token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !tenant.eq_ignore_ascii_case(&shared.config.tenant_id) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
        );
    }
    for required in ["grant_type", "client_id", "scope"] {
        if !form.contains_key(required) {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                &format!("The request body must contain the following parameter: '{required}'."),
            );
        }
    }
    if form["grant_type"] != "client_credentials" {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    let client_id = &form["client_id"];
    let Some(principal) = shared.service_principal(client_id) else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        );
    };
    if let Some(assertion) = form.get("client_assertion") {
        if let Some(refusal) =
            federated_assertion_refusal(&shared.tokens, &form, assertion, &principal)
        {
            return refusal;
        }
    } else if form.get("client_secret") != Some(&principal.client_secret) {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            &format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        );
    }
    let audience = match audience_of_scope(&form["scope"]) {
        Ok(audience) => audience,
        Err(ScopeRefusal::NotDefault) => {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                1002012,
                &format!(
                    "The provided value for scope {} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
                    form["scope"]
                ),
            );
        }
        Err(ScopeRefusal::SeveralResources) => {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                28000,
                &format!(
                    "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope {} is not valid.",
                    form["scope"]
                ),
            );
        }
        Err(ScopeRefusal::UnknownResource(resource)) => {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_resource",
                500011,
                &format!(
                    "The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
                ),
            );
        }
    };
    let lifetime = shared.config.token_lifetime.as_secs() as i64;
    let access_token = shared.tokens.mint_aad(
        &shared.config.tenant_id,
        &principal.client_id,
        &principal.object_id,
        &audience,
        lifetime,
    );
    Json(json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    }))
    .into_response()
}

/// Why a client-credentials scope is refused.
enum ScopeRefusal {
    /// Not `{resource}/.default`.
    NotDefault,
    /// One token is for one resource.
    SeveralResources,
    UnknownResource(String),
}

/// The `aud` AAD puts in a token for a `{resource}/.default` scope, for the resources this
/// tenant knows: ARM's registered identifier ends with a slash, storage's does not, and an
/// app id stays as it is.
fn audience_of_scope(scope: &str) -> Result<String, ScopeRefusal> {
    let mut resources = Vec::new();
    for scope in scope.split_whitespace() {
        let resource = scope
            .strip_suffix("/.default")
            .ok_or(ScopeRefusal::NotDefault)?;
        if !resources.contains(&resource) {
            resources.push(resource);
        }
    }
    let [resource] = resources.as_slice() else {
        return Err(match resources.len() {
            0 => ScopeRefusal::NotDefault,
            _ => ScopeRefusal::SeveralResources,
        });
    };
    match resource.trim_end_matches('/') {
        "https://management.azure.com" => Ok(ARM_AUDIENCE.to_owned()),
        "https://management.core.windows.net" => {
            Ok("https://management.core.windows.net/".to_owned())
        }
        STORAGE_AUDIENCE | AKS_AAD_SERVER_APP_ID => Ok(resource.trim_end_matches('/').to_owned()),
        _ => Err(ScopeRefusal::UnknownResource(resource.to_string())),
    }
}

/// Why a federated client assertion is refused, if it is: it must be an unexpired JWT whose
/// issuer, subject and audience match the app's federated identity credential.
fn federated_assertion_refusal(
    tokens: &TokenIssuer,
    form: &HashMap<String, String>,
    assertion: &str,
    principal: &FakeServicePrincipal,
) -> Option<Response> {
    if form.get("client_assertion_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return Some(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50027,
            "The client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
        ));
    }
    let claims = match tokens.verify_workload(assertion) {
        Ok(claims) => claims,
        Err(TokenRejection::Expired) => {
            return Some(aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range.",
            ));
        }
        Err(_) => {
            return Some(aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                50027,
                "JWT token is invalid or malformed.",
            ));
        }
    };
    let record = (principal.federated_credential.as_ref())
        .filter(|record| record.issuer == claims.iss && record.subject == claims.sub);
    let Some(record) = record else {
        return Some(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            70021,
            &format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{}'. Assertion Audience: '{}'.",
                claims.iss, claims.sub, claims.aud
            ),
        ));
    };
    if claims.aud != record.audience {
        return Some(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            700212,
            &format!(
                "No matching federated identity record found for presented assertion audience '{}'.",
                claims.aud
            ),
        ));
    }
    None
}

async fn openid_configuration(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
) -> Json<serde_json::Value> {
    let authority = format!("{}/{tenant}", shared.authority_host);
    Json(json!({
        "token_endpoint": format!("{authority}/oauth2/v2.0/token"),
        "authorization_endpoint": format!("{authority}/oauth2/v2.0/authorize"),
        "issuer": format!("{}/{}/v2.0", shared.authority_host, shared.config.tenant_id),
        "jwks_uri": format!("{authority}/discovery/v2.0/keys"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "tenant_region_scope": "EU",
    }))
}

/// AAD's OAuth error body; the description carries the AADSTS code and the trace ids.
fn aad_error(status: StatusCode, error: &str, code: u32, message: &str) -> Response {
    let trace_id = Uuid::new_v4();
    let correlation_id = Uuid::new_v4();
    let timestamp = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {message} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}"
        ),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    (status, Json(body)).into_response()
}
