//! An AKS API server, just enough of it: `/version`, namespaces, service accounts with the
//! TokenRequest API, and ClusterRoleBindings, as Kubernetes documents them; and the kubeconfigs
//! ARM hands out for it.
//!
//! Who may do what follows Kubernetes' rules in small: the admin kubeconfig's credentials may
//! do everything (unless a test denies it something), a service-account token may do what a
//! ClusterRoleBinding to `cluster-admin` grants it and otherwise only discovery, and such a
//! token stops working at its `expirationTimestamp` or when its account is deleted. Without
//! credentials, only `/version` answers, as the default `system:public-info-viewer` allows.

// The checks below return the API server's ready answer as their error, as its handlers do.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::config::{AKS_AAD_SERVER_APP_ID, AZURE_CLI_CLIENT_ID};
use super::{ClusterEndpoint, Shared};

const RBAC: &str = "/apis/rbac.authorization.k8s.io/v1";

/// What a cluster holds and tests may change while it runs.
#[derive(Default)]
pub(crate) struct ClusterState {
    /// By (namespace, name).
    pub service_accounts: BTreeMap<(String, String), Value>,
    /// By name.
    pub cluster_role_bindings: BTreeMap<String, Value>,
    /// Issued service-account tokens.
    pub tokens: HashMap<String, ServiceAccountToken>,
    /// Seconds the cluster's clock runs ahead of the real one.
    pub clock_offset_seconds: i64,
    /// (verb, resource) pairs the admin credentials are refused.
    pub denied_to_admin: Vec<(String, String)>,
}

#[derive(Clone)]
pub(crate) struct ServiceAccountToken {
    pub namespace: String,
    pub service_account: String,
    pub expires_at: i64,
}

impl ClusterState {
    pub fn now(&self) -> i64 {
        chrono::Utc::now().timestamp() + self.clock_offset_seconds
    }
}

const NAMESPACES: [&str; 4] = ["default", "kube-node-lease", "kube-public", "kube-system"];

pub(crate) fn router(shared: &Arc<Shared>, cluster_index: usize) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/api/v1/namespaces", get(list_namespaces))
        .route(
            "/api/v1/namespaces/{namespace}/serviceaccounts",
            post(create_service_account),
        )
        .route(
            "/api/v1/namespaces/{namespace}/serviceaccounts/{name}",
            get(get_service_account),
        )
        .route(
            "/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            post(create_token),
        )
        .route(
            &format!("{RBAC}/clusterrolebindings"),
            post(create_cluster_role_binding),
        )
        .route(
            &format!("{RBAC}/clusterrolebindings/{{name}}"),
            get(get_cluster_role_binding),
        )
        .fallback(not_found)
        .with_state((shared.clone(), cluster_index))
}

type ClusterRoute = State<(Arc<Shared>, usize)>;

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq)]
enum Principal {
    /// The admin (or non-AAD user) kubeconfig's static token: `system:masters`.
    Admin,
    /// An Azure AD token for the AKS server application.
    AzureAd,
    ServiceAccount {
        namespace: String,
        name: String,
    },
}

impl Principal {
    fn user_name(&self) -> String {
        match self {
            Principal::Admin => "masterclient".into(),
            Principal::AzureAd => "aad-user".into(),
            Principal::ServiceAccount { namespace, name } => {
                format!("system:serviceaccount:{namespace}:{name}")
            }
        }
    }
}

/// The caller, or the 401 the API server answers.
fn authenticate(shared: &Shared, index: usize, headers: &HeaderMap) -> Result<Principal, Response> {
    let unauthorized = || status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    let endpoint = &shared.clusters[index];
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if let Some(basic) = authorization.and_then(|value| value.strip_prefix("Basic ")) {
        let decoded = BASE64
            .decode(basic)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let accepted = decoded
            .as_deref()
            .and_then(|pair| pair.split_once(':'))
            .is_some_and(|(user, password)| {
                (endpoint.cluster.static_passwords.iter()).any(|(u, p)| u == user && p == password)
            });
        return match accepted {
            true => Ok(Principal::Admin),
            false => Err(unauthorized()),
        };
    }
    let Some(token) = authorization.and_then(|value| value.strip_prefix("Bearer ")) else {
        return Err(unauthorized());
    };
    let is_local_token = token == endpoint.admin_token
        || (token == endpoint.user_token && !endpoint.cluster.aad_integrated);
    if is_local_token {
        return match endpoint.cluster.disable_local_accounts {
            true => Err(unauthorized()),
            false => Ok(Principal::Admin),
        };
    }
    if endpoint.cluster.aad_integrated
        && shared
            .tokens
            .verify_aad(token, &[AKS_AAD_SERVER_APP_ID])
            .is_ok()
    {
        return Ok(Principal::AzureAd);
    }
    let state = shared.state();
    let cluster = &state.clusters[index];
    match cluster.tokens.get(token) {
        Some(issued)
            if issued.expires_at > cluster.now()
                && cluster
                    .service_accounts
                    .contains_key(&(issued.namespace.clone(), issued.service_account.clone())) =>
        {
            Ok(Principal::ServiceAccount {
                namespace: issued.namespace.clone(),
                name: issued.service_account.clone(),
            })
        }
        _ => Err(unauthorized()),
    }
}

/// Authenticates the request, then authorises its caller to `verb` `resource`: the 401 or
/// 403 the API server answers otherwise.
fn permit(
    shared: &Shared,
    index: usize,
    headers: &HeaderMap,
    verb: &str,
    resource: &str,
    scope: (&str, Option<&str>),
) -> Result<(), Response> {
    let principal = authenticate(shared, index, headers)?;
    authorize(shared, index, &principal, verb, resource, scope)
}

/// Whether `principal` may `verb` `resource`; else the 403 the API server answers.
fn authorize(
    shared: &Shared,
    index: usize,
    principal: &Principal,
    verb: &str,
    resource: &str,
    (group, namespace): (&str, Option<&str>),
) -> Result<(), Response> {
    let state = shared.state();
    let cluster = &state.clusters[index];
    let allowed = match principal {
        Principal::Admin => !cluster
            .denied_to_admin
            .iter()
            .any(|(v, r)| v == verb && r == resource),
        Principal::AzureAd => true,
        Principal::ServiceAccount { namespace, name } => {
            cluster.cluster_role_bindings.values().any(|binding| {
                binding["roleRef"]["name"] == "cluster-admin"
                    && binding["subjects"].as_array().is_some_and(|subjects| {
                        subjects.iter().any(|s| {
                            s["kind"] == "ServiceAccount"
                                && s["name"] == name.as_str()
                                && s["namespace"] == namespace.as_str()
                        })
                    })
            })
        }
    };
    if allowed {
        return Ok(());
    }
    let mut message = format!(
        "{resource} is forbidden: User \"{}\" cannot {verb} resource \"{resource}\" in API group \"{group}\"",
        principal.user_name()
    );
    match namespace {
        Some(namespace) => message.push_str(&format!(" in the namespace \"{namespace}\"")),
        None => message.push_str(" at the cluster scope"),
    }
    Err(status(StatusCode::FORBIDDEN, "Forbidden", &message))
}

/// `GET /version`, for any authenticated caller (as `system:discovery` allows) and for a
/// request with no credentials at all, as the default `system:public-info-viewer` binding
/// allows `system:unauthenticated` (kubectl and the Python client call it so). Credentials
/// that do not authenticate are refused as anywhere else.
async fn version(State((shared, index)): ClusterRoute, headers: HeaderMap) -> Response {
    let anonymous = !headers.contains_key(header::AUTHORIZATION);
    if let (false, Err(refusal)) = (anonymous, authenticate(&shared, index, &headers)) {
        return refusal;
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

/// `GET /api/v1/namespaces`: a `NamespaceList`.
async fn list_namespaces(State((shared, index)): ClusterRoute, headers: HeaderMap) -> Response {
    if let Err(refusal) = permit(&shared, index, &headers, "list", "namespaces", ("", None)) {
        return refusal;
    }
    let items: Vec<Value> = NAMESPACES
        .iter()
        .map(|name| {
            json!({
                "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"}
            })
        })
        .collect();
    Json(json!({
        "kind": "NamespaceList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "1"},
        "items": items
    }))
    .into_response()
}

/// The request body as a JSON object of `kind`, or the 400 the API server answers.
fn object_of(body: &Bytes, kind: &str) -> Result<Value, Response> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("the object provided is unrecognized: {e}"),
        )
    })?;
    if value.get("kind").is_some_and(|k| k != kind) {
        return Err(status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("the object provided is unrecognized (must be of type {kind})"),
        ));
    }
    Ok(value)
}

fn metadata_name(object: &Value) -> Option<String> {
    object["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

/// `POST /api/v1/namespaces/{namespace}/serviceaccounts`.
async fn create_service_account(
    State((shared, index)): ClusterRoute,
    Path(namespace): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = permit(
        &shared,
        index,
        &headers,
        "create",
        "serviceaccounts",
        ("", Some(&namespace)),
    ) {
        return refusal;
    }
    let mut account = match object_of(&body, "ServiceAccount") {
        Ok(account) => account,
        Err(refusal) => return refusal,
    };
    if !NAMESPACES.contains(&namespace.as_str()) {
        return not_found_named("namespaces", &namespace);
    }
    if account["metadata"]["namespace"]
        .as_str()
        .is_some_and(|n| n != namespace)
    {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        );
    }
    let Some(name) = metadata_name(&account) else {
        return invalid(
            "ServiceAccount",
            "",
            "metadata.name: Required value: name or generateName is required",
        );
    };
    let mut state = shared.state();
    let cluster = &mut state.clusters[index];
    let key = (namespace.clone(), name.clone());
    if cluster.service_accounts.contains_key(&key) {
        return already_exists("serviceaccounts", &name);
    }
    account["apiVersion"] = json!("v1");
    account["kind"] = json!("ServiceAccount");
    account["metadata"]["namespace"] = json!(namespace);
    account["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
    account["metadata"]["creationTimestamp"] = json!(timestamp(cluster.now()));
    cluster.service_accounts.insert(key, account.clone());
    (StatusCode::CREATED, Json(account)).into_response()
}

/// `GET /api/v1/namespaces/{namespace}/serviceaccounts/{name}`.
async fn get_service_account(
    State((shared, index)): ClusterRoute,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = permit(
        &shared,
        index,
        &headers,
        "get",
        "serviceaccounts",
        ("", Some(&namespace)),
    ) {
        return refusal;
    }
    let state = shared.state();
    match state.clusters[index]
        .service_accounts
        .get(&(namespace, name.clone()))
    {
        Some(account) => Json(account.clone()).into_response(),
        None => not_found_named("serviceaccounts", &name),
    }
}

/// `POST /api/v1/namespaces/{namespace}/serviceaccounts/{name}/token`: the TokenRequest API.
async fn create_token(
    State((shared, index)): ClusterRoute,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = permit(
        &shared,
        index,
        &headers,
        "create",
        "serviceaccounts/token",
        ("", Some(&namespace)),
    ) {
        return refusal;
    }
    let mut request = match object_of(&body, "TokenRequest") {
        Ok(request) => request,
        Err(refusal) => return refusal,
    };
    if request["apiVersion"] != "authentication.k8s.io/v1" {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the API version in the data (authentication.k8s.io/v1) is required",
        );
    }
    let seconds = match &request["spec"]["expirationSeconds"] {
        Value::Null => 3600,
        value => match value.as_i64() {
            Some(seconds) => seconds,
            None => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "spec.expirationSeconds must be an integer",
                );
            }
        },
    };
    if seconds < 600 {
        return invalid(
            "TokenRequest.authentication.k8s.io",
            &name,
            &format!(
                "spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration less than 10 minutes"
            ),
        );
    }
    if seconds > 1 << 32 {
        return invalid(
            "TokenRequest.authentication.k8s.io",
            &name,
            &format!(
                "spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"
            ),
        );
    }
    let mut state = shared.state();
    let cluster = &mut state.clusters[index];
    if !cluster
        .service_accounts
        .contains_key(&(namespace.clone(), name.clone()))
    {
        return not_found_named("serviceaccounts", &name);
    }
    let now = cluster.now();
    let token = super::random_hex_token();
    let expires_at = now + seconds;
    cluster.tokens.insert(
        token.clone(),
        ServiceAccountToken {
            namespace: namespace.clone(),
            service_account: name.clone(),
            expires_at,
        },
    );
    request["metadata"] = json!({
        "name": name,
        "namespace": namespace,
        "creationTimestamp": timestamp(now)
    });
    request["spec"]["expirationSeconds"] = json!(seconds);
    request["spec"]["audiences"] = json!(["https://kubernetes.default.svc.cluster.local"]);
    request["status"] = json!({"token": token, "expirationTimestamp": timestamp(expires_at)});
    (StatusCode::CREATED, Json(request)).into_response()
}

/// `POST /apis/rbac.authorization.k8s.io/v1/clusterrolebindings`.
async fn create_cluster_role_binding(
    State((shared, index)): ClusterRoute,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = permit(
        &shared,
        index,
        &headers,
        "create",
        "clusterrolebindings",
        ("rbac.authorization.k8s.io", None),
    ) {
        return refusal;
    }
    let mut binding = match object_of(&body, "ClusterRoleBinding") {
        Ok(binding) => binding,
        Err(refusal) => return refusal,
    };
    let Some(name) = metadata_name(&binding) else {
        return invalid(
            "ClusterRoleBinding.rbac.authorization.k8s.io",
            "",
            "metadata.name: Required value: name or generateName is required",
        );
    };
    let role = &binding["roleRef"];
    if role["apiGroup"] != "rbac.authorization.k8s.io"
        || role["kind"] != "ClusterRole"
        || role["name"].as_str().is_none_or(str::is_empty)
    {
        return invalid(
            "ClusterRoleBinding.rbac.authorization.k8s.io",
            &name,
            "roleRef: Invalid value: a ClusterRoleBinding must name a ClusterRole of rbac.authorization.k8s.io",
        );
    }
    let mut state = shared.state();
    let cluster = &mut state.clusters[index];
    if cluster.cluster_role_bindings.contains_key(&name) {
        return already_exists("clusterrolebindings.rbac.authorization.k8s.io", &name);
    }
    binding["apiVersion"] = json!("rbac.authorization.k8s.io/v1");
    binding["kind"] = json!("ClusterRoleBinding");
    binding["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
    binding["metadata"]["creationTimestamp"] = json!(timestamp(cluster.now()));
    cluster.cluster_role_bindings.insert(name, binding.clone());
    (StatusCode::CREATED, Json(binding)).into_response()
}

/// `GET /apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{name}`.
async fn get_cluster_role_binding(
    State((shared, index)): ClusterRoute,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = permit(
        &shared,
        index,
        &headers,
        "get",
        "clusterrolebindings",
        ("rbac.authorization.k8s.io", None),
    ) {
        return refusal;
    }
    let state = shared.state();
    match state.clusters[index].cluster_role_bindings.get(&name) {
        Some(binding) => Json(binding.clone()).into_response(),
        None => not_found_named("clusterrolebindings.rbac.authorization.k8s.io", &name),
    }
}

async fn not_found(State((shared, index)): ClusterRoute, headers: HeaderMap) -> Response {
    if let Err(refusal) = authenticate(&shared, index, &headers) {
        return refusal;
    }
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn not_found_named(resource: &str, name: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{resource} \"{name}\" not found"),
    )
}

fn already_exists(resource: &str, name: &str) -> Response {
    status(
        StatusCode::CONFLICT,
        "AlreadyExists",
        &format!("{resource} \"{name}\" already exists"),
    )
}

fn invalid(kind: &str, name: &str, cause: &str) -> Response {
    status(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        &format!("{kind} \"{name}\" is invalid: {cause}"),
    )
}

/// RFC 3339 in UTC with seconds, as Kubernetes writes `metav1.Time`.
fn timestamp(unix_seconds: i64) -> String {
    chrono::DateTime::from_timestamp(unix_seconds, 0)
        .expect("in range")
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
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
