//! Azure Resource Manager: subscriptions, storage accounts, container registries and AKS
//! clusters, with ARM's bearer authentication, RBAC errors and `nextLink` paging.
//!
//! ARM paths are case-insensitive (AKS even returns `resourcegroups` in its ids), so requests
//! are matched on lower-cased path segments rather than with axum routes.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::config::{FakeServicePrincipal, Permission, ResourceLocation};
use super::tokens::TokenRejection;
use super::{ARM_AUDIENCE, Shared, kubernetes};

const STORAGE_ACCOUNTS: &str = "Microsoft.Storage/storageAccounts";
const REGISTRIES: &str = "Microsoft.ContainerRegistry/registries";
const MANAGED_CLUSTERS: &str = "Microsoft.ContainerService/managedClusters";

/// The audiences ARM accepts.
const ARM_AUDIENCES: [&str; 4] = [
    ARM_AUDIENCE,
    "https://management.azure.com",
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
];

pub(crate) fn router(shared: &Arc<Shared>) -> Router {
    Router::new().fallback(dispatch).with_state(shared.clone())
}

/// One ARM request, authenticated.
struct ArmRequest {
    shared: Arc<Shared>,
    caller: FakeServicePrincipal,
    uri: Uri,
    /// The path's segments as sent, for names and ids.
    segments: Vec<String>,
}

async fn dispatch(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let caller = match authenticate(&shared, &headers) {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    let segments: Vec<String> = uri
        .path()
        .trim_matches('/')
        .split('/')
        .map(ToOwned::to_owned)
        .collect();
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    if let Err(error) = check_api_version(&uri, &lower) {
        return error.into_response();
    }
    let request = ArmRequest {
        shared,
        caller,
        uri,
        segments,
    };
    let result = match (&method, lower.as_slice()) {
        (&Method::GET, ["subscriptions"]) => request.list_subscriptions(),
        (&Method::GET, ["subscriptions", _]) => request.get_subscription(),
        (&Method::GET, ["tenants"]) => request.list_tenants(),
        (
            &Method::GET,
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.storage",
                "storageaccounts",
            ],
        )
        | (
            &Method::GET,
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                "microsoft.storage",
                "storageaccounts",
            ],
        ) => request.list_storage_accounts(),
        (
            &Method::GET,
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.containerregistry",
                "registries",
            ]
            | [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                "microsoft.containerregistry",
                "registries",
            ],
        ) => request.list_registries(),
        (
            &Method::GET,
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                "microsoft.containerregistry",
                "registries",
                _,
            ],
        ) => request.get_registry(),
        (
            &Method::POST,
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                "microsoft.containerregistry",
                "registries",
                _,
                "listcredentials",
            ],
        ) => request.list_registry_credentials(),
        (
            &Method::GET,
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.containerservice",
                "managedclusters",
            ]
            | [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                "microsoft.containerservice",
                "managedclusters",
            ],
        ) => request.list_clusters(),
        (
            &Method::GET,
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                "microsoft.containerservice",
                "managedclusters",
                _,
            ],
        ) => request.get_cluster(),
        (
            &Method::POST,
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                "microsoft.containerservice",
                "managedclusters",
                _,
                action @ ("listclusteradmincredential" | "listclusterusercredential"),
            ],
        ) => request.list_cluster_credentials(*action == "listclusteradmincredential"),
        _ => Err(arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!(
                "The requested resource '{method} {}' does not exist in this fake.",
                request.uri.path()
            ),
        )),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

type ArmResult = Result<Response, ArmError>;

/// The api-versions each resource provider serves here (a subset of Azure's, newest first).
fn supported_api_versions(lower_segments: &[&str]) -> &'static [&'static str] {
    let provider = lower_segments
        .iter()
        .position(|&segment| segment == "providers")
        .and_then(|index| lower_segments.get(index + 1).copied());
    match provider {
        Some("microsoft.storage") => &["2023-05-01", "2023-01-01", "2022-09-01", "2021-09-01"],
        Some("microsoft.containerregistry") => &[
            "2023-07-01",
            "2023-01-01-preview",
            "2022-12-01",
            "2021-09-01",
        ],
        Some("microsoft.containerservice") => {
            &["2024-08-01", "2024-05-01", "2024-02-01", "2023-10-01"]
        }
        _ => &["2022-12-01", "2021-01-01", "2020-01-01", "2016-06-01"],
    }
}

/// ARM refuses a request without an `api-version` its provider knows, before anything else.
fn check_api_version(uri: &Uri, lower_segments: &[&str]) -> Result<(), ArmError> {
    let parameters: Vec<(String, String)> =
        serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
    let Some((_, version)) = parameters.iter().find(|(name, _)| name == "api-version") else {
        return Err(arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ));
    };
    let supported = supported_api_versions(lower_segments);
    if supported.contains(&version.as_str()) {
        return Ok(());
    }
    Err(arm_error(
        StatusCode::BAD_REQUEST,
        "InvalidApiVersionParameter",
        &format!(
            "The api-version '{version}' is invalid. The supported versions are '{}'.",
            supported.join(",")
        ),
    ))
}

/// Checks `Authorization: Bearer <AAD token for ARM>`, with ARM's 401 codes.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<FakeServicePrincipal, ArmError> {
    let unauthorized = |code: &str, message: &str| ArmError {
        challenge: Some(format!(
            "Bearer authorization_uri=\"{}/{}\", error=\"invalid_token\", error_description=\"{message}\"",
            shared.authority_host, shared.config.tenant_id
        )),
        ..arm_error(StatusCode::UNAUTHORIZED, code, message)
    };
    let Some(authorization) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        ));
    };
    let Some(token) = authorization
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer "))
    else {
        return Err(unauthorized(
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is provided in an invalid format.",
        ));
    };
    let claims = match shared.tokens.verify_aad(token, &ARM_AUDIENCES) {
        Ok(claims) => claims,
        Err(TokenRejection::Expired) => {
            return Err(unauthorized(
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.",
            ));
        }
        Err(TokenRejection::WrongAudience(audience)) => {
            return Err(unauthorized(
                "InvalidAuthenticationTokenAudience",
                &format!(
                    "The access token has been obtained for wrong audience or resource '{audience}'. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'."
                ),
            ));
        }
        Err(TokenRejection::Invalid) => {
            return Err(unauthorized(
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            ));
        }
    };
    shared.service_principal(&claims.appid).ok_or_else(|| {
        unauthorized(
            "InvalidAuthenticationToken",
            "The access token is from a service principal that no longer exists.",
        )
    })
}

impl ArmRequest {
    fn segment(&self, index: usize) -> &str {
        &self.segments[index]
    }

    /// `/subscriptions/{sub}`, as the request spelled it.
    fn subscription_scope(&self) -> String {
        format!("/subscriptions/{}", self.segment(1))
    }

    /// The resource group segment, when the path has one.
    fn resource_group(&self) -> Option<&str> {
        self.segments
            .get(2)
            .filter(|segment| segment.eq_ignore_ascii_case("resourceGroups"))
            .map(|_| self.segment(3))
    }

    /// Everything after the scope that a list was asked for.
    fn list_scope(&self) -> String {
        match self.resource_group() {
            Some(group) => format!("{}/resourceGroups/{group}", self.subscription_scope()),
            None => self.subscription_scope(),
        }
    }

    /// Lists at a subscription are filtered to what the caller may read, as ARM does for a
    /// caller whose roles are on some resource groups only; lists at a resource group, and
    /// single resources, need the role on that group (or the subscription).
    fn require_list(&self, permission: Permission) -> Result<(), ArmError> {
        match self.resource_group() {
            None if self.caller.may_somewhere(permission) => Ok(()),
            group => self.require(permission, group, &self.list_scope()),
        }
    }

    /// Whether a resource belongs in a list the caller asked for and may read.
    fn listable(&self, permission: Permission, at: &ResourceLocation) -> bool {
        self.in_scope(at) && self.caller.may(permission, Some(&at.resource_group))
    }

    fn require(
        &self,
        permission: Permission,
        resource_group: Option<&str>,
        scope: &str,
    ) -> Result<(), ArmError> {
        if self.caller.may(permission, resource_group) {
            return Ok(());
        }
        let client = &self.caller.client_id;
        let object = &self.caller.object_id;
        Err(arm_error(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            &format!(
                "The client '{client}' with object id '{object}' does not have authorization to perform action '{}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
                permission.action()
            ),
        ))
    }

    /// The subscription of the path, or ARM's 404.
    fn known_subscription(&self) -> Result<&str, ArmError> {
        let wanted = self.segment(1);
        self.shared
            .config
            .subscriptions
            .iter()
            .find(|subscription| subscription.subscription_id.eq_ignore_ascii_case(wanted))
            .map(|subscription| subscription.subscription_id.as_str())
            .ok_or_else(|| {
                arm_error(
                    StatusCode::NOT_FOUND,
                    "SubscriptionNotFound",
                    &format!("The subscription '{wanted}' could not be found."),
                )
            })
    }

    /// Whether a resource is in the subscription (and resource group) of the path.
    fn in_scope(&self, at: &ResourceLocation) -> bool {
        at.subscription_id.eq_ignore_ascii_case(self.segment(1))
            && self
                .resource_group()
                .is_none_or(|group| at.resource_group.eq_ignore_ascii_case(group))
    }

    /// The one resource the path names (`.../{type}/{name}` at segments 3 and 7), or the
    /// 404 ARM gives: `ResourceGroupNotFound` or `ResourceNotFound`.
    fn find_one<'a, T>(
        &self,
        resources: impl IntoIterator<Item = &'a T>,
        location: impl Fn(&T) -> &ResourceLocation,
        provider_type: &str,
    ) -> Result<&'a T, ArmError>
    where
        T: 'a,
    {
        let group = self.segment(3);
        let name = self.segment(7);
        if !self.resource_group_exists(group) {
            return Err(arm_error(
                StatusCode::NOT_FOUND,
                "ResourceGroupNotFound",
                &format!("Resource group '{group}' could not be found."),
            ));
        }
        resources
            .into_iter()
            .find(|resource| {
                let at = location(resource);
                self.in_scope(at) && at.name.eq_ignore_ascii_case(name)
            })
            .ok_or_else(|| {
                arm_error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFound",
                    &format!(
                        "The Resource '{provider_type}/{name}' under resource group '{group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
                    ),
                )
            })
    }

    fn resource_group_exists(&self, group: &str) -> bool {
        let config = &self.shared.config;
        config
            .storage_accounts
            .iter()
            .map(|account| &account.at)
            .chain(config.registries.iter().map(|registry| &registry.at))
            .chain(config.clusters.iter().map(|cluster| &cluster.at))
            .any(|at| {
                at.subscription_id.eq_ignore_ascii_case(self.segment(1))
                    && at.resource_group.eq_ignore_ascii_case(group)
            })
    }

    /// `{"value": [...], "nextLink": ...}`, one page of `items` from `$skipToken` on.
    fn page(&self, items: Vec<Value>) -> ArmResult {
        let page_size = self.shared.config.page_size.max(1);
        let mut other_parameters: Vec<(String, String)> =
            serde_urlencoded::from_str(self.uri.query().unwrap_or_default()).unwrap_or_default();
        let skip = other_parameters
            .iter()
            .find(|(name, _)| name == "$skipToken")
            .and_then(|(_, value)| value.parse::<usize>().ok())
            .unwrap_or(0);
        other_parameters.retain(|(name, _)| name != "$skipToken");
        let end = (skip + page_size).min(items.len());
        let mut body = json!({ "value": items.get(skip..end).unwrap_or_default() });
        if end < items.len() {
            other_parameters.push(("$skipToken".to_owned(), end.to_string()));
            let base = (self.shared.config.next_link_base.as_ref())
                .unwrap_or(&self.shared.resource_manager_endpoint);
            body["nextLink"] = Value::String(format!(
                "{}{}?{}",
                base,
                self.uri.path(),
                serde_urlencoded::to_string(&other_parameters).unwrap()
            ));
        }
        Ok(Json(body).into_response())
    }

    fn subscription_json(&self, subscription_id: &str, display_name: &str) -> Value {
        json!({
            "id": format!("/subscriptions/{subscription_id}"),
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
            "subscriptionId": subscription_id,
            "tenantId": self.shared.config.tenant_id,
            "displayName": display_name,
            "state": "Enabled",
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "PayAsYouGo_2014-09-01",
                "spendingLimit": "Off"
            },
            "tags": {}
        })
    }

    /// `GET /subscriptions`: a principal with no access sees an empty list, not a 403.
    fn list_subscriptions(&self) -> ArmResult {
        // A role anywhere in a subscription makes it visible.
        let visible = self.caller.may_somewhere(Permission::ReadSubscriptions);
        let items = self
            .shared
            .config
            .subscriptions
            .iter()
            .filter(|_| visible)
            .map(|s| self.subscription_json(&s.subscription_id, &s.display_name))
            .collect();
        self.page(items)
    }

    fn get_subscription(&self) -> ArmResult {
        if !self.caller.may_somewhere(Permission::ReadSubscriptions) {
            self.require(
                Permission::ReadSubscriptions,
                None,
                &self.subscription_scope(),
            )?;
        }
        let id = self.known_subscription()?;
        let subscription = self
            .shared
            .config
            .subscriptions
            .iter()
            .find(|subscription| subscription.subscription_id == id)
            .unwrap();
        Ok(Json(self.subscription_json(id, &subscription.display_name)).into_response())
    }

    fn list_tenants(&self) -> ArmResult {
        let tenant_id = &self.shared.config.tenant_id;
        self.page(vec![json!({
            "id": format!("/tenants/{tenant_id}"),
            "tenantId": tenant_id,
            "tenantCategory": "Home",
            "displayName": "Fake Directory",
            "defaultDomain": "fake.onmicrosoft.com",
            "domains": ["fake.onmicrosoft.com"],
            "tenantType": "AAD",
            "countryCode": "US"
        })])
    }

    fn list_storage_accounts(&self) -> ArmResult {
        self.require_list(Permission::ReadStorageAccounts)?;
        self.known_subscription()?;
        let items = (self.shared.storage_accounts.iter())
            .filter(|endpoint| self.listable(Permission::ReadStorageAccounts, &endpoint.account.at))
            .map(|endpoint| {
                let account = &endpoint.account;
                json!({
                    "id": account.at.resource_id(STORAGE_ACCOUNTS),
                    "name": account.at.name,
                    "type": STORAGE_ACCOUNTS,
                    "location": account.at.location,
                    "kind": "StorageV2",
                    "sku": {"name": "Standard_LRS", "tier": "Standard"},
                    "tags": {},
                    "properties": {
                        "provisioningState": "Succeeded",
                        "primaryLocation": account.at.location,
                        "statusOfPrimary": "available",
                        "primaryEndpoints": {"blob": endpoint.blob_endpoint},
                        "isHnsEnabled": false,
                        "allowSharedKeyAccess": true
                    }
                })
            })
            .collect();
        self.page(items)
    }

    fn registry_json(&self, index: usize) -> Value {
        let endpoint = &self.shared.registries[index];
        let registry = &endpoint.registry;
        json!({
            "id": registry.at.resource_id(REGISTRIES),
            "name": registry.at.name,
            "type": REGISTRIES,
            "location": registry.at.location,
            "sku": {"name": "Standard", "tier": "Standard"},
            "tags": {},
            "properties": {
                "loginServer": endpoint.login_server,
                "adminUserEnabled": registry.admin_user_enabled,
                "provisioningState": "Succeeded",
                "creationDate": "2024-01-15T10:00:00.0000000Z",
                "publicNetworkAccess": "Enabled"
            }
        })
    }

    fn list_registries(&self) -> ArmResult {
        self.require_list(Permission::ReadRegistries)?;
        self.known_subscription()?;
        let items = (0..self.shared.registries.len())
            .filter(|&index| {
                self.listable(
                    Permission::ReadRegistries,
                    &self.shared.registries[index].registry.at,
                )
            })
            .map(|index| self.registry_json(index))
            .collect();
        self.page(items)
    }

    fn find_registry(&self, permission: Permission) -> Result<usize, ArmError> {
        let scope = self.resource_scope(REGISTRIES);
        self.require(permission, Some(self.segment(3)), &scope)?;
        self.known_subscription()?;
        let endpoints = &self.shared.registries;
        let found = self.find_one(endpoints, |endpoint| &endpoint.registry.at, REGISTRIES)?;
        Ok(endpoints
            .iter()
            .position(|e| std::ptr::eq(e, found))
            .unwrap())
    }

    fn get_registry(&self) -> ArmResult {
        let index = self.find_registry(Permission::ReadRegistries)?;
        Ok(Json(self.registry_json(index)).into_response())
    }

    fn list_registry_credentials(&self) -> ArmResult {
        let index = self.find_registry(Permission::ListRegistryCredentials)?;
        let registry = &self.shared.registries[index].registry;
        if !registry.admin_user_enabled {
            return Err(arm_error(
                StatusCode::BAD_REQUEST,
                "UnAuthorizedForCredentialOperations",
                &format!(
                    "Cannot perform credential operations for {} as admin user is disabled. Kindly enable admin user as per docs: https://docs.microsoft.com/azure/container-registry/container-registry-authentication#admin-account",
                    registry.at.resource_id(REGISTRIES)
                ),
            ));
        }
        Ok(Json(json!({
            "username": registry.at.name,
            "passwords": [
                {"name": "password", "value": registry.admin_passwords[0]},
                {"name": "password2", "value": registry.admin_passwords[1]}
            ]
        }))
        .into_response())
    }

    fn cluster_json(&self, index: usize) -> Value {
        let cluster = &self.shared.clusters[index].cluster;
        let at = &cluster.at;
        // AKS returns ids with `resourcegroups` in lower case.
        let id = format!(
            "/subscriptions/{}/resourcegroups/{}/providers/{MANAGED_CLUSTERS}/{}",
            at.subscription_id, at.resource_group, at.name
        );
        let dns_prefix = format!("{}-dns", at.name);
        let mut properties = json!({
            "provisioningState": "Succeeded",
            "powerState": {"code": "Running"},
            "kubernetesVersion": cluster.kubernetes_version,
            "currentKubernetesVersion": cluster.kubernetes_version,
            "dnsPrefix": dns_prefix,
            "fqdn": format!("{dns_prefix}-fake0001.hcp.{}.azmk8s.io", at.location),
            "azurePortalFQDN": format!("{dns_prefix}-fake0001.portal.hcp.{}.azmk8s.io", at.location),
            "enableRBAC": true,
            "disableLocalAccounts": cluster.disable_local_accounts
        });
        if cluster.aad_integrated {
            properties["aadProfile"] = json!({
                "managed": true,
                "enableAzureRBAC": false,
                "adminGroupObjectIDs": [],
                "tenantID": self.shared.config.tenant_id
            });
        }
        json!({
            "id": id,
            "name": at.name,
            "type": "Microsoft.ContainerService/ManagedClusters",
            "location": at.location,
            "sku": {"name": "Base", "tier": "Free"},
            "tags": {},
            "properties": properties
        })
    }

    fn list_clusters(&self) -> ArmResult {
        self.require_list(Permission::ReadClusters)?;
        self.known_subscription()?;
        let items = (0..self.shared.clusters.len())
            .filter(|&index| {
                self.listable(
                    Permission::ReadClusters,
                    &self.shared.clusters[index].cluster.at,
                )
            })
            .map(|index| self.cluster_json(index))
            .collect();
        self.page(items)
    }

    fn find_cluster(&self, permission: Permission) -> Result<usize, ArmError> {
        let scope = self.resource_scope(MANAGED_CLUSTERS);
        self.require(permission, Some(self.segment(3)), &scope)?;
        self.known_subscription()?;
        let endpoints = &self.shared.clusters;
        let found = self.find_one(endpoints, |endpoint| &endpoint.cluster.at, MANAGED_CLUSTERS)?;
        Ok(endpoints
            .iter()
            .position(|e| std::ptr::eq(e, found))
            .unwrap())
    }

    fn get_cluster(&self) -> ArmResult {
        let index = self.find_cluster(Permission::ReadClusters)?;
        Ok(Json(self.cluster_json(index)).into_response())
    }

    fn list_cluster_credentials(&self, admin: bool) -> ArmResult {
        let permission = if admin {
            Permission::ListClusterAdminCredential
        } else {
            Permission::ListClusterUserCredential
        };
        let index = self.find_cluster(permission)?;
        let endpoint = &self.shared.clusters[index];
        if admin && endpoint.cluster.disable_local_accounts {
            return Err(arm_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Getting static credential is not allowed because this cluster is set to disable local accounts.",
            ));
        }
        let (name, kubeconfig) = if admin {
            (
                "clusterAdmin",
                kubernetes::admin_kubeconfig(&self.shared, endpoint),
            )
        } else {
            (
                "clusterUser",
                kubernetes::user_kubeconfig(&self.shared, endpoint),
            )
        };
        let value = base64::engine::general_purpose::STANDARD.encode(kubeconfig);
        Ok(Json(json!({"kubeconfigs": [{"name": name, "value": value}]})).into_response())
    }

    /// The id of the resource the path names, e.g. for `AuthorizationFailed` messages.
    fn resource_scope(&self, provider_type: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/{provider_type}/{}",
            self.segment(1),
            self.segment(3),
            self.segment(7)
        )
    }
}

/// ARM's error body, `{"error": {"code": ..., "message": ...}}`, and for 401s the
/// `WWW-Authenticate` challenge naming the authority.
pub(crate) struct ArmError {
    status: StatusCode,
    code: String,
    message: String,
    challenge: Option<String>,
}

pub(crate) fn arm_error(status: StatusCode, code: &str, message: &str) -> ArmError {
    ArmError {
        status,
        code: code.to_owned(),
        message: message.to_owned(),
        challenge: None,
    }
}

impl IntoResponse for ArmError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(challenge) = self.challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge.parse().unwrap());
        }
        response
    }
}
