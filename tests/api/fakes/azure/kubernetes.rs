//! An AKS API server (just enough of it: `/version`) and the kubeconfigs ARM hands out for it.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;

use super::config::{AKS_AAD_SERVER_APP_ID, AZURE_CLI_CLIENT_ID};
use super::{ClusterEndpoint, Shared};

pub(crate) fn router(shared: &Arc<Shared>, cluster_index: usize) -> Router {
    Router::new()
        .route("/version", get(version))
        .fallback(not_found)
        .with_state((shared.clone(), cluster_index))
}

type ClusterState = State<(Arc<Shared>, usize)>;

/// `GET /version`, for any authenticated caller (as `system:discovery` allows).
async fn version(State((shared, index)): ClusterState, headers: HeaderMap) -> Response {
    if !is_authenticated(&shared, &shared.clusters[index], &headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    let version = &shared.clusters[index].cluster.kubernetes_version;
    let mut parts = version.split('.');
    let major = parts.next().unwrap_or("1");
    let minor = parts.next().unwrap_or("0");
    Json(json!({
        "major": major,
        "minor": minor,
        "gitVersion": format!("v{version}"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-07-16T00:00:00Z",
        "goVersion": "go1.22.5",
        "compiler": "gc",
        "platform": "linux/amd64"
    }))
    .into_response()
}

async fn not_found(State((shared, index)): ClusterState, headers: HeaderMap) -> Response {
    if !is_authenticated(&shared, &shared.clusters[index], &headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
    )
}

/// A kubeconfig's static token, or (AAD clusters) an AAD token for the AKS server app.
fn is_authenticated(shared: &Shared, endpoint: &ClusterEndpoint, headers: &HeaderMap) -> bool {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    else {
        return false;
    };
    let local_tokens_allowed = !endpoint.cluster.disable_local_accounts;
    let is_local_token = token == endpoint.admin_token
        || (token == endpoint.user_token && !endpoint.cluster.aad_integrated);
    if is_local_token {
        return local_tokens_allowed;
    }
    endpoint.cluster.aad_integrated
        && shared
            .tokens
            .verify_aad(token, &[AKS_AAD_SERVER_APP_ID])
            .is_ok()
}

/// A Kubernetes `Status` object, as the API server answers errors.
fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    (
        code,
        Json(json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code.as_u16()
        })),
    )
        .into_response()
}

/// What `listClusterAdminCredential` returns: a client certificate and a static token.
pub(crate) fn admin_kubeconfig(shared: &Shared, endpoint: &ClusterEndpoint) -> String {
    let at = &endpoint.cluster.at;
    let user_name = format!("clusterAdmin_{}_{}", at.resource_group, at.name);
    let certificate = &endpoint.admin_client_certificate;
    let user = format!(
        "    client-certificate-data: {}\n    client-key-data: {}\n    token: {}\n",
        BASE64.encode(&certificate.certificate_pem),
        BASE64.encode(&certificate.private_key_pem),
        endpoint.admin_token
    );
    kubeconfig(
        shared,
        endpoint,
        &format!("{}-admin", at.name),
        &user_name,
        &user,
    )
}

/// What `listClusterUserCredential` returns: kubelogin (exec, no token) for AAD clusters,
/// otherwise a client certificate and a static user token.
pub(crate) fn user_kubeconfig(shared: &Shared, endpoint: &ClusterEndpoint) -> String {
    let at = &endpoint.cluster.at;
    let user_name = format!("clusterUser_{}_{}", at.resource_group, at.name);
    let user = if endpoint.cluster.aad_integrated {
        format!(
            "    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      args:
      - get-token
      - --environment
      - AzurePublicCloud
      - --server-id
      - {AKS_AAD_SERVER_APP_ID}
      - --client-id
      - {AZURE_CLI_CLIENT_ID}
      - --tenant-id
      - {}
      - --login
      - devicecode
      command: kubelogin
      env: null
      installHint: |2

        kubelogin is not installed which is required to connect to AAD enabled cluster.
      interactiveMode: IfAvailable
      provideClusterInfo: false
",
            shared.config.tenant_id
        )
    } else {
        let certificate = &endpoint.user_client_certificate;
        format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n    token: {}\n",
            BASE64.encode(&certificate.certificate_pem),
            BASE64.encode(&certificate.private_key_pem),
            endpoint.user_token
        )
    };
    kubeconfig(shared, endpoint, &at.name, &user_name, &user)
}

/// A kubeconfig laid out as AKS writes it, with the fake CA and the fake API server.
fn kubeconfig(
    shared: &Shared,
    endpoint: &ClusterEndpoint,
    context: &str,
    user_name: &str,
    user_body: &str,
) -> String {
    let cluster = &endpoint.cluster.at.name;
    format!(
        "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {ca}
    server: {server}
  name: {cluster}
contexts:
- context:
    cluster: {cluster}
    user: {user_name}
  name: {context}
current-context: {context}
kind: Config
preferences: {{}}
users:
- name: {user_name}
  user:
{user_body}",
        ca = BASE64.encode(&shared.ca_pem),
        server = endpoint.server_url,
    )
}
