//! The Azure engine: authenticates a connector, lists what it reaches per resource type, and
//! derives short-lived credentials for one resource.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::OnceCell;
use zeroize::Zeroizing;

use super::arm::{Arm, ArmError, ArmResource, Subscription};
use super::cloud::{Cloud, Clouds};
use super::credentials::{Credentials, ImplicitIdentity, Token, TokenCache, TokenSource};
use super::kubernetes::{
    AKS_AAD_SERVER_SCOPE, ClientIdentity, ClusterAccess, EnsuredIdentities, MIN_TOKEN_SECONDS,
};
use super::outbound::Outbound;
use super::{
    ACCESS_TOKEN, BLOB_CONTAINER, DOCKER_REGISTRY, GENERIC, KUBERNETES_CLUSTER, container_registry,
    resource_id,
};
use crate::connectors::engine::{ClientConnector, Connector, Session};
use crate::metrics::AzureService;

/// Built once at start-up and shared by every request.
pub struct AzureEngine {
    pub clouds: Clouds,
    pub outbound: Outbound,
    pub tokens: TokenCache,
    pub implicit: ImplicitIdentity,
    /// Who clients of local-account AKS clusters act as.
    pub cluster_clients: ClientIdentity,
    pub ensured_cluster_clients: EnsuredIdentities,
}

impl AzureEngine {
    /// A session for one connector: its cloud and credentials, read from its configuration.
    pub fn session<'a>(
        &'a self,
        connector: &'a Connector,
        now: DateTime<Utc>,
    ) -> Result<AzureSession<'a>, String> {
        let cloud = self.clouds.get(connector.setting("cloud")).ok_or_else(|| {
            format!(
                "the Azure cloud '{}' is not known to this server (known: {})",
                connector.setting("cloud").unwrap_or_default(),
                self.clouds.names().collect::<Vec<_>>().join(", ")
            )
        })?;
        let credentials = match connector.auth_method.as_str() {
            "service-principal" => Credentials::ServicePrincipal {
                tenant_id: required(connector.setting("tenant_id"), "tenant_id")?.to_owned(),
                client_id: required(connector.setting("client_id"), "client_id")?.to_owned(),
                client_secret: Zeroizing::new(
                    required(connector.secret("client_secret"), "client_secret")?.to_owned(),
                ),
            },
            ACCESS_TOKEN => Credentials::AccessToken(Token {
                secret: Zeroizing::new(required(connector.secret("token"), "token")?.to_owned()),
                expires_at: connector
                    .expires_at
                    .ok_or("the 'access-token' authentication method needs expires_at")?,
            }),
            "implicit" => Credentials::Implicit,
            other => {
                return Err(format!(
                    "the authentication method '{other}' is not supported by the Azure connector"
                ));
            }
        };
        if let Some(subscription) = connector.setting("subscription_id")
            && uuid::Uuid::parse_str(subscription).is_err()
        {
            return Err(format!(
                "the subscription_id '{subscription}' is not a UUID"
            ));
        }
        Ok(AzureSession {
            engine: self,
            connector,
            cloud,
            credentials,
            now,
            subscription: OnceCell::new(),
        })
    }
}

fn required<'a>(value: Option<&'a str>, field: &str) -> Result<&'a str, String> {
    value.ok_or_else(|| format!("the connector configuration lacks '{field}'"))
}

pub struct AzureSession<'a> {
    engine: &'a AzureEngine,
    connector: &'a Connector,
    cloud: &'a Cloud,
    credentials: Credentials,
    now: DateTime<Utc>,
    subscription: OnceCell<Subscription>,
}

impl AzureSession<'_> {
    fn tokens(&self) -> TokenSource<'_> {
        TokenSource {
            connector_id: self.connector.id,
            credentials: &self.credentials,
            cloud: self.cloud,
            outbound: &self.engine.outbound,
            cache: &self.engine.tokens,
            implicit: &self.engine.implicit,
            now: self.now,
        }
    }

    async fn token(&self, scope: &str) -> Result<Token, String> {
        self.tokens().token(scope).await
    }

    async fn arm_token(&self) -> Result<Token, String> {
        self.token(&self.cloud.resource_manager_scope).await
    }

    fn resource_group(&self) -> Option<&str> {
        self.connector.setting("resource_group")
    }

    /// Runs `call` against ARM with a fresh (or cached) management token.
    async fn arm<T, F>(&self, call: F) -> Result<T, ArmFailure>
    where
        F: AsyncFnOnce(&Arm<'_>) -> Result<T, ArmError>,
    {
        let token = self.arm_token().await.map_err(ArmFailure::Auth)?;
        let arm = Arm {
            outbound: &self.engine.outbound,
            endpoint: &self.cloud.resource_manager_endpoint,
            token: &token.secret,
        };
        call(&arm).await.map_err(ArmFailure::Arm)
    }

    /// The connector's subscription: the configured one, or the only one its identity sees.
    async fn subscription(&self) -> Result<&Subscription, String> {
        self.subscription
            .get_or_try_init(|| async {
                match self.connector.setting("subscription_id") {
                    Some(id) => self.arm(async |arm| arm.subscription(id).await).await.map_err(|e| {
                        e.explain(&format!("failed to fetch the Azure subscription '{id}'"), "Reader")
                    }),
                    None => {
                        let mut all = self.arm(async |arm| arm.subscriptions().await).await.map_err(|e| {
                            e.explain("failed to list the Azure subscriptions", "Reader")
                        })?;
                        match all.len() {
                            0 => Err("no Azure subscriptions found for the configured credentials.".to_owned()),
                            1 => Ok(all.remove(0)),
                            _ => Err("multiple Azure subscriptions found for the configured credentials. \
                                 Please configure the subscription ID explicitly in the connector."
                                .to_owned()),
                        }
                    }
                }
            })
            .await
    }

    /// The ids of the resources of `resource_type` the connector reaches, or only `id`.
    async fn resources(&self, resource_type: &str, id: Option<&str>) -> Result<Vec<String>, String> {
        match resource_type {
            GENERIC => {
                let subscription = self.subscription().await?;
                if let Some(id) = id
                    && id != subscription.display_name
                    && id != subscription.id
                {
                    return Err(format!(
                        "the connector reaches the subscription '{}', not '{id}'",
                        subscription.display_name
                    ));
                }
                Ok(vec![subscription.display_name.clone()])
            }
            BLOB_CONTAINER => {
                let container = id.map(container_name).transpose()?;
                let found = self.containers(container.as_deref()).await?;
                Ok(found
                    .into_iter()
                    .map(|(name, _)| format!("az://{name}"))
                    .collect())
            }
            KUBERNETES_CLUSTER => {
                let clusters = self.clusters(id).await?;
                if id.is_some()
                    && let [cluster] = clusters.as_slice()
                {
                    let access = self.cluster_access(cluster).await?;
                    let outbound = &self.engine.outbound;
                    outbound
                        .timed(AzureService::AKS, access.check(outbound.limits()))
                        .await?;
                }
                Ok(clusters
                    .iter()
                    .map(|c| format!("{}/{}", c.resource_group, c.name))
                    .collect())
            }
            DOCKER_REGISTRY => {
                let registries = self.registries(id).await?;
                if id.is_some()
                    && let [registry] = registries.as_slice()
                {
                    let login_server = login_server(registry);
                    let token = self.registry_token(&login_server).await?;
                    container_registry::check(&self.engine.outbound, &login_server, &token.token).await?;
                }
                Ok(registries
                    .iter()
                    .map(|r| format!("{}.azurecr.io", r.name.to_ascii_lowercase()))
                    .collect())
            }
            other => Err(format!(
                "the Azure connector has no resource type '{other}'"
            )),
        }
    }

    /// Blob containers by name, with the blob endpoint of the account holding each.
    async fn containers(&self, wanted: Option<&str>) -> Result<Vec<(String, String)>, String> {
        if self.connector.auth_method == ACCESS_TOKEN {
            return Err(
                "the 'access-token' authentication method cannot reach blob containers: \
                 a token is issued for one audience, and Azure Storage does not accept a token \
                 issued for Azure Resource Manager. Use a service principal or implicit \
                 authentication for blob containers."
                    .into(),
            );
        }
        let subscription = self.subscription().await?.id.clone();
        let configured = self.connector.setting("storage_account");
        let group = self.resource_group();
        let accounts = self
            .arm(async |arm| arm.storage_accounts(&subscription).await)
            .await
            .map_err(|e| {
                e.explain(
                    "failed to list the Azure storage accounts",
                    "Reader (or Storage Account Contributor)",
                )
            })?;
        let accounts: Vec<ArmResource> = accounts
            .into_iter()
            .filter(|a| a.in_group(group))
            .filter(|a| configured.is_none_or(|c| a.name.eq_ignore_ascii_case(c)))
            .collect();
        if accounts.is_empty() {
            return Err(match (configured, group) {
                (Some(account), _) => format!(
                    "the '{account}' storage account configured in the connector was not found{}.",
                    group
                        .map(|g| format!(" in the '{g}' resource group"))
                        .unwrap_or_default()
                ),
                (None, Some(group)) => {
                    format!(
                        "no storage accounts were found in the '{group}' resource group specified in the connector configuration."
                    )
                }
                (None, None) => "no storage accounts were found.".to_owned(),
            });
        }
        let token = self.token(&self.cloud.storage_scope).await?;
        let mut found: BTreeMap<String, String> = BTreeMap::new();
        for account in &accounts {
            let endpoint = account.properties["primaryEndpoints"]["blob"]
                .as_str()
                .filter(|e| e.starts_with("https://"))
                .ok_or_else(|| {
                    format!(
                        "the '{}' storage account reports no https blob endpoint",
                        account.name
                    )
                })?;
            let names = super::blob::containers(&self.engine.outbound, endpoint, token.clone())
                .await
                .map_err(|e| {
                    format!(
                        "failed to list the blob containers in the '{}' storage account: {e}. Make sure \
                         the connector's identity has the Storage Blob Data Contributor (or Reader) role \
                         on it.",
                        account.name
                    )
                })?;
            for name in names {
                found.insert(name, endpoint.to_owned());
            }
            if wanted.is_some_and(|w| found.contains_key(w)) {
                break;
            }
        }
        match wanted {
            Some(wanted) => match found.remove_entry(wanted) {
                Some(entry) => Ok(vec![entry]),
                None => Err(match configured {
                    Some(account) => format!("the '{wanted}' container was not found in the '{account}' storage account."),
                    None => format!("the '{wanted}' container was not found in any of the storage accounts accessible to the connector."),
                }),
            },
            None if found.is_empty() => Err("no Azure blob storage containers were found in any of the storage accounts accessible to the connector.".into()),
            None => Ok(found.into_iter().collect()),
        }
    }

    /// The AKS clusters in scope, or the one `id` names.
    async fn clusters(&self, id: Option<&str>) -> Result<Vec<ArmResource>, String> {
        let subscription = self.subscription().await?.id.clone();
        let (parsed_group, name) = match id {
            Some(id) => {
                let canonical = resource_id::aks_cluster(id, self.resource_group())?;
                match canonical.split_once('/') {
                    Some((group, name)) => (Some(group.to_owned()), Some(name.to_owned())),
                    None => (None, Some(canonical)),
                }
            }
            None => (None, None),
        };
        let group = parsed_group.as_deref().or(self.resource_group());
        let role = "Azure Kubernetes Service Cluster User Role (or Reader)";
        if let (Some(group), Some(name)) = (group, name.as_deref()) {
            let cluster = self
                .arm(async |arm| arm.cluster(&subscription, group, name).await)
                .await
                .map_err(|e| {
                    if e.is_not_found() {
                        format!("the '{name}' AKS cluster was not found in the '{group}' resource group.")
                    } else {
                        e.explain(&format!("failed to fetch the Azure AKS cluster '{name}' in the '{group}' resource group"), role)
                    }
                })?;
            return Ok(vec![cluster]);
        }
        let clusters: Vec<ArmResource> = self
            .arm(async |arm| arm.clusters(&subscription).await)
            .await
            .map_err(|e| e.explain("failed to list the Azure AKS clusters", role))?
            .into_iter()
            .filter(|c| c.in_group(group))
            .filter(|c| {
                name.as_deref()
                    .is_none_or(|n| c.name.eq_ignore_ascii_case(n))
            })
            .collect();
        match (name, clusters.len()) {
            (None, 0) => Err(match group {
                Some(group) => format!(
                    "no AKS clusters were found in the '{group}' resource group specified in the connector configuration."
                ),
                None => "no AKS clusters were found.".into(),
            }),
            (Some(name), 0) => Err(format!(
                "the '{name}' AKS cluster was not found or is not accessible."
            )),
            (Some(name), n) if n > 1 => Err(format!(
                "the '{name}' AKS cluster was found in multiple resource groups: {}. Include the \
                 resource group in the resource name (resource-group/cluster) or configure one in \
                 the connector.",
                clusters
                    .iter()
                    .map(|c| c.resource_group.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => Ok(clusters),
        }
    }

    /// The registries in scope, or the one `id` names.
    async fn registries(&self, id: Option<&str>) -> Result<Vec<ArmResource>, String> {
        let subscription = self.subscription().await?.id.clone();
        let name = match id {
            Some(id) => {
                let canonical = resource_id::container_registry(id)?;
                Some(canonical.split('.').next().unwrap_or_default().to_owned())
            }
            None => None,
        };
        let group = self.resource_group();
        if let (Some(group), Some(name)) = (group, name.as_deref()) {
            let registry = self
                .arm(async |arm| arm.registry(&subscription, group, name).await)
                .await
                .map_err(|e| {
                    if e.is_not_found() {
                        format!("the '{name}' registry was not found in the '{group}' resource group specified in the connector configuration.")
                    } else {
                        e.explain(&format!("failed to fetch the Azure container registry '{name}' in the '{group}' resource group"), "Reader")
                    }
                })?;
            return Ok(vec![registry]);
        }
        let registries: Vec<ArmResource> = self
            .arm(async |arm| arm.registries(&subscription).await)
            .await
            .map_err(|e| e.explain("failed to list the Azure container registries", "Reader"))?
            .into_iter()
            .filter(|r| r.in_group(group))
            .filter(|r| {
                name.as_deref()
                    .is_none_or(|n| r.name.eq_ignore_ascii_case(n))
            })
            .collect();
        match (name, registries.is_empty()) {
            (None, true) => Err(match group {
                Some(group) => format!(
                    "no container registries were found in the '{group}' resource group specified in the connector configuration."
                ),
                None => "no container registries were found.".into(),
            }),
            (Some(name), true) => Err(format!(
                "the '{name}' registry was not found or is not accessible."
            )),
            _ => Ok(registries),
        }
    }

    /// An ACR access token for the registry at `login_server`.
    async fn registry_token(&self, login_server: &str) -> Result<container_registry::RegistryToken, String> {
        let aad = self.arm_token().await?;
        container_registry::access_token(&self.engine.outbound, login_server, &aad.secret).await
    }

    /// Credentials for a cluster: the admin kubeconfig where local accounts exist; otherwise
    /// the user kubeconfig with an Azure AD token for the AKS server application.
    async fn cluster_access(&self, cluster: &ArmResource) -> Result<ClusterAccess, String> {
        let subscription = self.subscription().await?.id.clone();
        let local_accounts = cluster.properties["disableLocalAccounts"].as_bool() != Some(true);
        let (group, name) = (&cluster.resource_group, &cluster.name);
        let role = if local_accounts {
            "Azure Kubernetes Service Cluster Admin Role"
        } else {
            "Azure Kubernetes Service Cluster User Role"
        };
        let kubeconfig = self
            .arm(async |arm| arm.cluster_kubeconfig(&subscription, group, name, local_accounts).await)
            .await
            .map_err(|e| {
                e.explain(
                    &format!("failed to list credentials for the Azure AKS cluster '{name}' in the '{group}' resource group"),
                    role,
                )
            })?;
        let mut access = ClusterAccess::from_kubeconfig(&kubeconfig)?;
        if !access.has_credentials() {
            let token = self.token(AKS_AAD_SERVER_SCOPE).await?;
            access.token = Some(token.secret);
            access.expires_at = Some(token.expires_at);
        }
        Ok(access)
    }

    /// What a client of the cluster gets: for a cluster with local accounts, a token of the
    /// server's client service account, obtained with the admin credentials (which stay here);
    /// for an AAD-only cluster, an Azure AD token for the AKS server application.
    async fn client_cluster_access(&self, cluster: &ArmResource) -> Result<ClusterAccess, String> {
        let admin = self.cluster_access(cluster).await?;
        if admin.expires_at.is_some() {
            return Ok(admin);
        }
        let lifetime = self.cluster_token_lifetime()?;
        let outbound = &self.engine.outbound;
        let issued = outbound
            .timed(
                AzureService::AKS,
                admin.issue_token(
                    &self.engine.cluster_clients,
                    &self.engine.ensured_cluster_clients,
                    lifetime,
                    outbound.limits(),
                ),
            )
            .await?;
        if self
            .connector
            .usable_until
            .is_some_and(|until| issued.expires_at > until)
        {
            return Err(format!(
                "the cluster issued a token valid until {}, after the connector expires",
                issued.expires_at
            ));
        }
        Ok(ClusterAccess {
            token: Some(issued.token),
            expires_at: Some(issued.expires_at),
            client_certificate: None,
            client_key: None,
            ..admin
        })
    }

    /// The connector's `expiration_seconds` (an hour by default), at least Kubernetes' minimum,
    /// and at most what is left of the connector's own life.
    fn cluster_token_lifetime(&self) -> Result<i64, String> {
        let wanted = (self.connector.expiration_seconds)
            .unwrap_or(DEFAULT_CLIENT_TOKEN_SECONDS)
            .max(MIN_TOKEN_SECONDS);
        let Some(until) = self.connector.usable_until else {
            return Ok(wanted);
        };
        let left = (until - self.now).num_seconds();
        if left < MIN_TOKEN_SECONDS {
            return Err(format!(
                "the connector expires in {} s, sooner than the {MIN_TOKEN_SECONDS} s a Kubernetes \
                 token lives at least",
                left.max(0)
            ));
        }
        Ok(wanted.min(left))
    }

    /// Short-lived credentials for one resource.
    async fn credentials(&self, resource_type: &str, id: &str) -> Result<ClientConnector, String> {
        let mut configuration = BTreeMap::new();
        let mut secrets = BTreeMap::new();
        match resource_type {
            GENERIC | BLOB_CONTAINER => {
                let listed = self.resources(resource_type, Some(id)).await?;
                let scope = if resource_type == GENERIC {
                    &self.cloud.resource_manager_scope
                } else {
                    &self.cloud.storage_scope
                };
                let token = self.token(scope).await?;
                let subscription = self.subscription().await?;
                configuration.insert("subscription_id".into(), json!(subscription.id));
                for key in ["tenant_id", "resource_group", "storage_account", "cloud"] {
                    if let Some(value) = self.connector.setting(key) {
                        configuration.insert(key.into(), json!(value));
                    }
                }
                secrets.insert("token".into(), token.secret);
                Ok(ClientConnector {
                    connector_type: "azure",
                    auth_method: ACCESS_TOKEN,
                    resource_type: resource_type.to_owned(),
                    resource_id: listed.into_iter().next().unwrap_or_else(|| id.to_owned()),
                    configuration,
                    secrets,
                    expires_at: Some(token.expires_at),
                })
            }
            KUBERNETES_CLUSTER => {
                let clusters = self.clusters(Some(id)).await?;
                let [cluster] = clusters.as_slice() else {
                    return Err(format!(
                        "the resource id '{id}' names more than one AKS cluster"
                    ));
                };
                let access = self.client_cluster_access(cluster).await?;
                configuration.insert("server".into(), json!(access.server));
                configuration.insert("cluster_name".into(), json!(access.cluster_name));
                configuration.insert("insecure".into(), json!(false));
                if let Some(ca) = &access.certificate_authority {
                    secrets.insert("certificate_authority".into(), Zeroizing::new(ca.clone()));
                }
                let token = access
                    .token
                    .ok_or("the cluster credentials hold no token")?;
                secrets.insert("token".into(), token);
                Ok(ClientConnector {
                    connector_type: "kubernetes",
                    auth_method: "token",
                    resource_type: resource_type.to_owned(),
                    resource_id: access.cluster_name.clone(),
                    configuration,
                    secrets,
                    expires_at: access.expires_at,
                })
            }
            DOCKER_REGISTRY => {
                let registries = self.registries(Some(id)).await?;
                let [registry] = registries.as_slice() else {
                    return Err(format!(
                        "the resource id '{id}' names more than one registry"
                    ));
                };
                let login_server = login_server(registry);
                let (username, password, expires_at) = match self
                    .registry_token(&login_server)
                    .await
                {
                    Ok(token) => (
                        container_registry::TOKEN_USERNAME.to_owned(),
                        token.token,
                        token.expires_at,
                    ),
                    Err(exchange_error) => {
                        // As ZenML does: registries with an admin user still work without AcrPull.
                        let subscription = self.subscription().await?.id.clone();
                        let (user, password) = self
                            .arm(async |arm| {
                                arm.registry_admin_credentials(&subscription, &registry.resource_group, &registry.name)
                                    .await
                            })
                            .await
                            .map_err(|e| {
                                format!(
                                    "{exchange_error}; the fallback to the registry's admin credentials failed too ({})",
                                    e.explain("listing them", "Contributor")
                                )
                            })?;
                        (user, Zeroizing::new(password), None)
                    }
                };
                configuration.insert("username".into(), json!(username));
                configuration.insert("registry".into(), json!(login_server));
                secrets.insert("password".into(), password);
                Ok(ClientConnector {
                    connector_type: "docker",
                    auth_method: "password",
                    resource_type: resource_type.to_owned(),
                    resource_id: login_server,
                    configuration,
                    secrets,
                    expires_at,
                })
            }
            other => Err(format!(
                "the Azure connector has no resource type '{other}'"
            )),
        }
    }
}

/// How long cluster tokens live when the connector does not say.
const DEFAULT_CLIENT_TOKEN_SECONDS: i64 = 3600;

/// The registry's data-plane host, as ARM reports it.
fn login_server(registry: &ArmResource) -> String {
    registry.properties["loginServer"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{}.azurecr.io", registry.name.to_ascii_lowercase()))
}

fn container_name(id: &str) -> Result<String, String> {
    let canonical = resource_id::blob_container(id)?;
    Ok(canonical.trim_start_matches("az://").to_owned())
}

/// A failed ARM call: no token, or ARM's refusal.
enum ArmFailure {
    Auth(String),
    Arm(ArmError),
}

impl ArmFailure {
    fn is_not_found(&self) -> bool {
        matches!(self, ArmFailure::Arm(e) if e.is_not_found())
    }

    /// What failed, and for a refusal, the role that is likely missing.
    fn explain(&self, what: &str, role: &str) -> String {
        match self {
            ArmFailure::Auth(message) => message.clone(),
            ArmFailure::Arm(error) if error.is_denied() => {
                let error = error.to_string();
                format!(
                    "{what}: {}. Make sure the connector's identity has the {role} role.",
                    error.trim_end_matches('.')
                )
            }
            ArmFailure::Arm(error) => format!("{what}: {error}"),
        }
    }
}

#[async_trait::async_trait]
impl Session for AzureSession<'_> {
    /// Reading the subscription proves the credentials, as ZenML's Azure connector does.
    async fn authenticate(&self) -> Result<(), String> {
        self.subscription().await.map(|_| ())
    }

    async fn list(&self, resource_type: &str, id: Option<&str>) -> Result<Vec<String>, String> {
        self.resources(resource_type, id).await
    }

    async fn client(&self, resource_type: &str, id: &str) -> Result<ClientConnector, String> {
        self.credentials(resource_type, id).await
    }
}

impl std::fmt::Debug for AzureSession<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureSession")
            .field("connector", &self.connector.name)
            .field("cloud", &self.cloud.name)
            .finish()
    }
}
