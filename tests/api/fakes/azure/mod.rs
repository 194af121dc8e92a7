//! A fake Azure: Azure AD's token endpoint, Azure Resource Manager, container registries and
//! AKS API servers, each on its own HTTPS listener on 127.0.0.1 with a test CA; and, when
//! there are storage accounts, their blob data plane, served by an Azurite process.
//!
//! ```ignore
//! let azure = FakeAzure::start(FakeAzureConfig {
//!     registries: vec![FakeRegistry::new(DEFAULT_SUBSCRIPTION_ID, "rg1", "reg1")],
//!     ..FakeAzureConfig::default()
//! })
//! .await;
//! // trust azure.ca_pem(); post to {azure.authority_host()}/{tenant}/oauth2/v2.0/token; ...
//! ```
//!
//! Every registry and every cluster gets a listener of its own, so that a login server or
//! kubeconfig `server` identifies exactly one of them. Storage accounts share the fake's one
//! Azurite (installed by `tests/run.sh`), which serves each at a path of its own.

mod active_directory;
mod blob_storage;
mod config;
mod container_registry;
mod faults;
mod kubernetes;
mod resource_manager;
mod tests;
mod tokens;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::JoinSet;

pub use blob_storage::STORAGE_AUDIENCE;
pub use config::*;
pub use faults::{Fault, RecordedRequest, Surface};

use super::tls::{BoundListener, PemKeyPair, TestCertificateAuthority};
use blob_storage::Azurite;
use faults::FaultState;
use tokens::TokenIssuer;

/// The audience of ARM tokens, as AAD issues it for `https://management.azure.com/.default`.
pub const ARM_AUDIENCE: &str = "https://management.azure.com/";

pub struct FakeAzure {
    shared: Arc<Shared>,
    /// The accept loops; dropping the fake drops them and every open connection.
    _servers: JoinSet<()>,
    /// Serves the storage accounts' blobs, if there are any; dropping it kills the process.
    _azurite: Option<Azurite>,
}

/// A storage account and where its blob data plane listens.
pub(crate) struct StorageAccountEndpoint {
    pub account: FakeStorageAccount,
    /// `https://127.0.0.1:PORT/{account}/`, the account's `primaryEndpoints.blob`.
    pub blob_endpoint: String,
}

/// A registry and where its data plane listens.
pub(crate) struct RegistryEndpoint {
    pub registry: FakeRegistry,
    /// `127.0.0.1:PORT`, the registry's `properties.loginServer` and ACR `service`.
    pub login_server: String,
}

/// A cluster and its API server.
pub(crate) struct ClusterEndpoint {
    pub cluster: FakeCluster,
    /// `https://127.0.0.1:PORT`, the kubeconfig's `server`.
    pub server_url: String,
    /// The static bearer tokens of the admin and (non-AAD) user kubeconfigs.
    pub admin_token: String,
    pub user_token: String,
    pub admin_client_certificate: PemKeyPair,
    pub user_client_certificate: PemKeyPair,
}

/// What every handler sees.
pub(crate) struct Shared {
    pub config: FakeAzureConfig,
    pub authority_host: String,
    pub resource_manager_endpoint: String,
    pub ca_pem: String,
    pub tokens: TokenIssuer,
    pub storage_accounts: Vec<StorageAccountEndpoint>,
    pub registries: Vec<RegistryEndpoint>,
    pub clusters: Vec<ClusterEndpoint>,
    state: Mutex<RuntimeState>,
    /// Counts requests received, for tests that wait for one to arrive.
    pub arrivals: tokio::sync::watch::Sender<usize>,
}

/// What tests may change while the fake runs.
pub(crate) struct RuntimeState {
    /// By client id.
    pub service_principals: HashMap<String, FakeServicePrincipal>,
    pub faults: FaultState,
    /// In the order of `Shared::clusters`.
    pub clusters: Vec<kubernetes::ClusterState>,
}

impl Shared {
    pub fn state(&self) -> MutexGuard<'_, RuntimeState> {
        self.state.lock().unwrap()
    }

    pub fn service_principal(&self, client_id: &str) -> Option<FakeServicePrincipal> {
        self.state().service_principals.get(client_id).cloned()
    }
}

impl FakeAzure {
    pub async fn start(config: FakeAzureConfig) -> FakeAzure {
        let authority = TestCertificateAuthority::new();
        let active_directory_listener = BoundListener::bind().await;
        let resource_manager_listener = BoundListener::bind().await;
        let mut servers = JoinSet::new();

        let azurite = match config.storage_accounts.as_slice() {
            [] => None,
            accounts => Some(Azurite::start(accounts, &authority, &mut servers).await),
        };
        // Storage is reached through a recording proxy in front of Azurite.
        let blob_listener = BoundListener::bind().await;
        let storage_accounts = match &azurite {
            None => Vec::new(),
            Some(_) => (config.storage_accounts.iter())
                .map(|account| StorageAccountEndpoint {
                    account: account.clone(),
                    blob_endpoint: format!("{}/{}/", blob_listener.https_url(), account.at.name),
                })
                .collect(),
        };

        let mut registry_listeners = Vec::new();
        let mut registries = Vec::new();
        for registry in &config.registries {
            let listener = BoundListener::bind().await;
            registries.push(RegistryEndpoint {
                registry: registry.clone(),
                login_server: listener.address.to_string(),
            });
            registry_listeners.push(listener);
        }

        let mut cluster_listeners = Vec::new();
        let mut clusters = Vec::new();
        for cluster in &config.clusters {
            let listener = BoundListener::bind().await;
            clusters.push(ClusterEndpoint {
                cluster: cluster.clone(),
                server_url: listener.https_url(),
                admin_token: random_hex_token(),
                user_token: random_hex_token(),
                admin_client_certificate: authority
                    .issue_client_certificate("masterclient", Some("system:masters")),
                user_client_certificate: authority
                    .issue_client_certificate("client", Some("system:masters")),
            });
            cluster_listeners.push(listener);
        }

        let shared = Arc::new(Shared {
            authority_host: active_directory_listener.https_url(),
            resource_manager_endpoint: resource_manager_listener.https_url(),
            ca_pem: authority.ca_pem(),
            tokens: TokenIssuer::new(),
            storage_accounts,
            registries,
            clusters,
            state: Mutex::new(RuntimeState {
                service_principals: config
                    .service_principals
                    .iter()
                    .map(|principal| (principal.client_id.clone(), principal.clone()))
                    .collect(),
                faults: FaultState::default(),
                clusters: config
                    .clusters
                    .iter()
                    .map(|_| kubernetes::ClusterState::default())
                    .collect(),
            }),
            arrivals: tokio::sync::watch::Sender::new(0),
            config,
        });

        let guarded = |router: axum::Router, surface| faults::guard(router, &shared, surface);
        active_directory_listener.serve(
            guarded(active_directory::router(&shared), Surface::ActiveDirectory),
            &authority,
            &mut servers,
        );
        resource_manager_listener.serve(
            guarded(resource_manager::router(&shared), Surface::ResourceManager),
            &authority,
            &mut servers,
        );
        if let Some(azurite) = &azurite {
            blob_listener.serve(
                guarded(azurite.proxy(&shared.ca_pem), Surface::BlobStorage),
                &authority,
                &mut servers,
            );
        }
        for (index, listener) in registry_listeners.into_iter().enumerate() {
            listener.serve(
                guarded(
                    container_registry::router(&shared, index),
                    Surface::ContainerRegistry,
                ),
                &authority,
                &mut servers,
            );
        }
        for (index, listener) in cluster_listeners.into_iter().enumerate() {
            listener.serve(
                guarded(kubernetes::router(&shared, index), Surface::Kubernetes),
                &authority,
                &mut servers,
            );
        }
        if let Some(azurite) = &azurite {
            create_containers(&shared, azurite).await;
        }
        FakeAzure {
            shared,
            _servers: servers,
            _azurite: azurite,
        }
    }

    /// Writes the server's custom cloud file (this fake's endpoints, and its CA beside it) into
    /// `dir`; its path.
    pub fn write_cloud_file(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let ca = dir.join("azure-ca.pem");
        std::fs::write(&ca, self.ca_pem()).unwrap();
        let cloud = dir.join("azure-cloud.json");
        let description = serde_json::json!({
            "name": "FakeAzure",
            "authority_host": self.authority_host(),
            "resource_manager_endpoint": self.resource_manager_endpoint(),
            "resource_manager_scope": "https://management.azure.com/.default",
            "storage_scope": "https://storage.azure.com/.default",
            "ca_certificate": ca,
        });
        std::fs::write(&cloud, description.to_string()).unwrap();
        cloud
    }

    /// The test CA's certificate (PEM), which clients must trust.
    pub fn ca_pem(&self) -> &str {
        &self.shared.ca_pem
    }

    /// `https://127.0.0.1:PORT`, in place of `https://login.microsoftonline.com`.
    pub fn authority_host(&self) -> &str {
        &self.shared.authority_host
    }

    /// `https://127.0.0.1:PORT`, in place of `https://management.azure.com`.
    pub fn resource_manager_endpoint(&self) -> &str {
        &self.shared.resource_manager_endpoint
    }

    /// `{authority}/{tenant}/oauth2/v2.0/token`
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority_host(),
            self.tenant_id()
        )
    }

    pub fn tenant_id(&self) -> &str {
        &self.shared.config.tenant_id
    }

    /// The configuration the fake started with (service principals as they were then).
    pub fn config(&self) -> &FakeAzureConfig {
        &self.shared.config
    }

    /// `https://127.0.0.1:PORT/{account}/`, the named storage account's blob endpoint (its
    /// `primaryEndpoints.blob`), Azurite behind the recording proxy, in place of `https://{account}.blob.core.windows.net/`.
    pub fn blob_endpoint(&self, account_name: &str) -> String {
        self.shared
            .storage_accounts
            .iter()
            .find(|endpoint| endpoint.account.at.name.eq_ignore_ascii_case(account_name))
            .map(|endpoint| endpoint.blob_endpoint.clone())
            .unwrap_or_else(|| panic!("no fake storage account named {account_name}"))
    }

    /// `127.0.0.1:PORT` of the named registry.
    pub fn registry_login_server(&self, registry_name: &str) -> String {
        self.shared
            .registries
            .iter()
            .find(|endpoint| {
                endpoint
                    .registry
                    .at
                    .name
                    .eq_ignore_ascii_case(registry_name)
            })
            .map(|endpoint| endpoint.login_server.clone())
            .unwrap_or_else(|| panic!("no fake registry named {registry_name}"))
    }

    /// `https://127.0.0.1:PORT` of the named cluster's API server.
    pub fn cluster_server_url(&self, cluster_name: &str) -> String {
        self.cluster(cluster_name).server_url.clone()
    }

    /// The token of the named cluster's admin kubeconfig.
    pub fn cluster_admin_token(&self, cluster_name: &str) -> String {
        self.cluster(cluster_name).admin_token.clone()
    }

    fn cluster(&self, cluster_name: &str) -> &ClusterEndpoint {
        &self.shared.clusters[self.cluster_index(cluster_name)]
    }

    fn cluster_index(&self, cluster_name: &str) -> usize {
        self.shared
            .clusters
            .iter()
            .position(|endpoint| endpoint.cluster.at.name.eq_ignore_ascii_case(cluster_name))
            .unwrap_or_else(|| panic!("no fake cluster named {cluster_name}"))
    }

    /// The named cluster's service accounts, as `namespace/name`.
    pub fn cluster_service_accounts(&self, cluster_name: &str) -> Vec<String> {
        let index = self.cluster_index(cluster_name);
        let state = self.shared.state();
        (state.clusters[index].service_accounts.keys())
            .map(|(namespace, name)| format!("{namespace}/{name}"))
            .collect()
    }

    /// The named cluster's ClusterRoleBindings, as the API server returns them.
    pub fn cluster_role_bindings(&self, cluster_name: &str) -> Vec<serde_json::Value> {
        let index = self.cluster_index(cluster_name);
        let state = self.shared.state();
        state.clusters[index]
            .cluster_role_bindings
            .values()
            .cloned()
            .collect()
    }

    /// Moves the named cluster's clock forward, so that its tokens expire without waiting.
    pub fn advance_cluster_clock(&self, cluster_name: &str, seconds: i64) {
        let index = self.cluster_index(cluster_name);
        self.shared.state().clusters[index].clock_offset_seconds += seconds;
    }

    /// Refuses the named cluster's admin credentials `verb` on `resource` (as `create`,
    /// `serviceaccounts`), as an admission policy or a narrowed role would.
    pub fn deny_cluster_admin(&self, cluster_name: &str, verb: &str, resource: &str) {
        let index = self.cluster_index(cluster_name);
        self.shared.state().clusters[index]
            .denied_to_admin
            .push((verb.to_owned(), resource.to_owned()));
    }

    /// An AAD token for a configured service principal, as the token endpoint would issue
    /// it, but with any audience and lifetime: e.g. for the access-token auth method, or an
    /// already expired token (negative lifetime).
    pub fn mint_aad_token(&self, client_id: &str, audience: &str, lifetime_seconds: i64) -> String {
        let principal = self
            .shared
            .service_principal(client_id)
            .unwrap_or_else(|| panic!("no fake service principal {client_id}"));
        self.shared.tokens.mint_aad(
            self.tenant_id(),
            &principal.client_id,
            &principal.object_id,
            audience,
            lifetime_seconds,
        )
    }

    /// A workload's token from `issuer` about `subject`, for Azure AD's token exchange
    /// audience, as a Kubernetes cluster with workload identity mounts it in a pod.
    pub fn workload_token(&self, issuer: &str, subject: &str, lifetime_seconds: i64) -> String {
        (self.shared.tokens).mint_workload(
            issuer,
            subject,
            TOKEN_EXCHANGE_AUDIENCE,
            lifetime_seconds,
        )
    }

    /// A blob storage token (audience [`STORAGE_AUDIENCE`]) for a configured service
    /// principal, as the token endpoint would issue it for `https://storage.azure.com/.default`.
    pub fn storage_token(&self, client_id: &str) -> String {
        let lifetime = self.config().token_lifetime.as_secs() as i64;
        self.mint_aad_token(client_id, STORAGE_AUDIENCE, lifetime)
    }

    /// Answers the next `count` requests to `surface` with `fault` instead of serving them.
    pub fn fail_next_requests(&self, surface: Surface, count: usize, fault: Fault) {
        self.shared.state().faults.fail_next(surface, count, fault);
    }

    /// Holds every later response from `surface` back by `delay` (`None` to stop).
    pub fn set_response_delay(&self, surface: Surface, delay: Option<Duration>) {
        self.shared.state().faults.set_delay(surface, delay);
    }

    /// Rotates a service principal's secret: the old one gets AADSTS7000215 from now on.
    pub fn set_client_secret(&self, client_id: &str, client_secret: &str) {
        self.with_principal(client_id, |principal| {
            principal.client_secret = client_secret.to_owned()
        });
    }

    /// Replaces what a service principal may do; applies to tokens already issued too.
    pub fn set_permissions(&self, client_id: &str, permissions: &[Permission]) {
        self.with_principal(client_id, |principal| {
            principal.permissions = permissions.to_vec()
        });
    }

    fn with_principal(&self, client_id: &str, change: impl FnOnce(&mut FakeServicePrincipal)) {
        let mut state = self.shared.state();
        let principal = state
            .service_principals
            .get_mut(client_id)
            .unwrap_or_else(|| panic!("no fake service principal {client_id}"));
        change(principal);
    }

    /// Waits until a request for which `wanted` holds has arrived (it may still be being
    /// answered), for at most a minute.
    pub async fn wait_for_request(&self, wanted: impl Fn(&RecordedRequest) -> bool) {
        let mut arrivals = self.shared.arrivals.subscribe();
        let arrived = tokio::time::timeout(Duration::from_secs(60), async {
            while !self.requests().iter().any(&wanted) {
                arrivals.changed().await.unwrap();
            }
        });
        arrived
            .await
            .expect("the request arrives at the fake Azure within a minute");
    }

    /// Every request received so far, in order, including those answered with a fault.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().faults.requests.clone()
    }
}

/// Creates every account's configured containers in Azurite, with a storage token: Azurite
/// checks its claims, not who it names.
async fn create_containers(shared: &Shared, azurite: &Azurite) {
    let token = shared.tokens.mint_aad(
        &shared.config.tenant_id,
        "fake-azure-setup",
        "fake-azure-setup",
        STORAGE_AUDIENCE,
        300,
    );
    for endpoint in &shared.storage_accounts {
        blob_storage::create_containers(
            &azurite.direct_blob_endpoint(&endpoint.account.at.name),
            &endpoint.account.containers,
            &token,
            &shared.ca_pem,
        )
        .await;
    }
}

pub(crate) fn random_hex_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}
