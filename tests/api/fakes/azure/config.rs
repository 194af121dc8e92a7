//! What a [`super::FakeAzure`] holds: its tenant, service principals, subscriptions and
//! resources.

use std::time::Duration;

pub const DEFAULT_TENANT_ID: &str = "31c75423-32d6-4322-88b7-c478bdde4858";
pub const DEFAULT_SUBSCRIPTION_ID: &str = "291bba3f-e0a5-47bc-a099-3bdcb2a50a05";
pub const DEFAULT_CLIENT_ID: &str = "6b2b6b1e-8d0c-4a52-9d0e-2f7a1c0f5e11";
pub const DEFAULT_CLIENT_SECRET: &str = "fake~client~secret";

/// The application id of the AKS AAD server app: the audience of tokens for AAD-integrated
/// AKS clusters (the scope is `6dae42f8-4368-4678-94ff-3960e28e3630/.default`).
pub const AKS_AAD_SERVER_APP_ID: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";
/// The client id kubelogin uses, found in AAD kubeconfigs.
pub const AZURE_CLI_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

/// What a service principal may do. A denied ARM call gets a 403 `AuthorizationFailed`
/// naming the matching Azure action; a denied registry pull gets a 401 from ACR's token
/// endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    ReadSubscriptions,
    ReadStorageAccounts,
    ReadRegistries,
    ListRegistryCredentials,
    /// The `AcrPull`/`AcrPush` data-plane roles: getting an ACR access token.
    PullFromRegistry,
    ReadClusters,
    ListClusterAdminCredential,
    ListClusterUserCredential,
}

impl Permission {
    pub const ALL: [Permission; 8] = [
        Permission::ReadSubscriptions,
        Permission::ReadStorageAccounts,
        Permission::ReadRegistries,
        Permission::ListRegistryCredentials,
        Permission::PullFromRegistry,
        Permission::ReadClusters,
        Permission::ListClusterAdminCredential,
        Permission::ListClusterUserCredential,
    ];

    /// The Azure RBAC action, as ARM names it in `AuthorizationFailed` messages.
    pub fn action(self) -> &'static str {
        match self {
            Permission::ReadSubscriptions => "Microsoft.Resources/subscriptions/read",
            Permission::ReadStorageAccounts => "Microsoft.Storage/storageAccounts/read",
            Permission::ReadRegistries => "Microsoft.ContainerRegistry/registries/read",
            Permission::ListRegistryCredentials => {
                "Microsoft.ContainerRegistry/registries/listCredentials/action"
            }
            Permission::PullFromRegistry => "Microsoft.ContainerRegistry/registries/pull/read",
            Permission::ReadClusters => "Microsoft.ContainerService/managedClusters/read",
            Permission::ListClusterAdminCredential => {
                "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action"
            }
            Permission::ListClusterUserCredential => {
                "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action"
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct FakeServicePrincipal {
    pub client_id: String,
    /// The enterprise application's object id, which ARM error messages also name.
    pub object_id: String,
    pub client_secret: String,
    /// The token a workload presents instead of the secret (a federated identity credential,
    /// e.g. a Kubernetes service-account token the app trusts).
    pub federated_credential: Option<FederatedCredential>,
    /// Granted on the whole subscription.
    pub permissions: Vec<Permission>,
    /// Granted on one resource group each: `(resource group, permission)`.
    pub group_permissions: Vec<(String, Permission)>,
}

/// A federated identity credential of an app registration: AAD accepts, instead of the
/// secret, a JWT from `issuer` about `subject` for `audience`.
#[derive(Debug, Clone)]
pub struct FederatedCredential {
    pub issuer: String,
    pub subject: String,
    pub audience: String,
}

/// The audience Azure's federated identity credentials expect by default.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

impl FakeServicePrincipal {
    /// A principal allowed everything.
    pub fn new(client_id: &str, client_secret: &str) -> FakeServicePrincipal {
        FakeServicePrincipal {
            client_id: client_id.to_owned(),
            object_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, client_id.as_bytes())
                .to_string(),
            client_secret: client_secret.to_owned(),
            federated_credential: None,
            permissions: Permission::ALL.to_vec(),
            group_permissions: Vec::new(),
        }
    }

    /// Also accepts, as a client assertion, a JWT from `issuer` about `subject` (workload
    /// identity federation, e.g. a Kubernetes service-account token the app trusts).
    pub fn with_federated_credential(
        mut self,
        issuer: &str,
        subject: &str,
    ) -> FakeServicePrincipal {
        self.federated_credential = Some(FederatedCredential {
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
            audience: TOKEN_EXCHANGE_AUDIENCE.to_owned(),
        });
        self
    }

    /// Holds its roles on `resource_group` only, not on the subscription.
    pub fn only_on_group(mut self, resource_group: &str) -> FakeServicePrincipal {
        self.group_permissions = (self.permissions.drain(..))
            .map(|permission| (resource_group.to_owned(), permission))
            .collect();
        self
    }

    /// Whether it holds `permission` on the subscription, or on `resource_group` if given.
    pub fn may(&self, permission: Permission, resource_group: Option<&str>) -> bool {
        self.permissions.contains(&permission)
            || resource_group.is_some_and(|wanted| self.may_in_group(permission, wanted))
    }

    pub fn may_in_group(&self, permission: Permission, resource_group: &str) -> bool {
        (self.group_permissions.iter())
            .any(|(group, held)| *held == permission && group.eq_ignore_ascii_case(resource_group))
    }

    /// Whether it holds `permission` anywhere in the subscription.
    pub fn may_somewhere(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
            || self
                .group_permissions
                .iter()
                .any(|(_, held)| *held == permission)
    }
}

#[derive(Debug, Clone)]
pub struct FakeSubscription {
    pub subscription_id: String,
    pub display_name: String,
}

impl FakeSubscription {
    pub fn new(subscription_id: &str, display_name: &str) -> FakeSubscription {
        FakeSubscription {
            subscription_id: subscription_id.to_owned(),
            display_name: display_name.to_owned(),
        }
    }
}

/// Where a resource lives; ARM matches resource groups and names case-insensitively.
#[derive(Debug, Clone)]
pub struct ResourceLocation {
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
    pub location: String,
}

impl ResourceLocation {
    fn new(subscription_id: &str, resource_group: &str, name: &str) -> ResourceLocation {
        ResourceLocation {
            subscription_id: subscription_id.to_owned(),
            resource_group: resource_group.to_owned(),
            name: name.to_owned(),
            location: "westeurope".to_owned(),
        }
    }

    /// `/subscriptions/{sub}/resourceGroups/{rg}/providers/{provider_type}/{name}`
    pub fn resource_id(&self, provider_type: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/{provider_type}/{}",
            self.subscription_id, self.resource_group, self.name
        )
    }
}

/// A storage account whose blob data plane Azurite serves (see
/// [`super::FakeAzure::blob_endpoint`]).
#[derive(Debug, Clone)]
pub struct FakeStorageAccount {
    pub at: ResourceLocation,
    /// Blob containers created in Azurite when the fake starts.
    pub containers: Vec<String>,
}

impl FakeStorageAccount {
    /// An account with no containers.
    pub fn new(subscription_id: &str, resource_group: &str, name: &str) -> FakeStorageAccount {
        FakeStorageAccount {
            at: ResourceLocation::new(subscription_id, resource_group, name),
            containers: Vec::new(),
        }
    }

    pub fn with_containers(mut self, containers: &[&str]) -> FakeStorageAccount {
        self.containers = containers.iter().map(|&name| name.to_owned()).collect();
        self
    }
}

#[derive(Debug, Clone)]
pub struct FakeRegistry {
    pub at: ResourceLocation,
    pub admin_user_enabled: bool,
    /// `password` and `password2` of the admin user, whose username is the registry name.
    pub admin_passwords: [String; 2],
    /// Repositories, each holding one tag, `latest`.
    pub repositories: Vec<String>,
}

impl FakeRegistry {
    /// A registry with its admin user disabled.
    pub fn new(subscription_id: &str, resource_group: &str, name: &str) -> FakeRegistry {
        FakeRegistry {
            at: ResourceLocation::new(subscription_id, resource_group, name),
            admin_user_enabled: false,
            admin_passwords: [format!("{name}-password-1"), format!("{name}-password-2")],
            repositories: vec!["zenml/pipeline".to_owned()],
        }
    }

    pub fn with_admin_user(mut self) -> FakeRegistry {
        self.admin_user_enabled = true;
        self
    }
}

#[derive(Debug, Clone)]
pub struct FakeCluster {
    pub at: ResourceLocation,
    /// `major.minor.patch`, served by the cluster's `/version`.
    pub kubernetes_version: String,
    /// Azure AD integration (`properties.aadProfile`): user kubeconfigs use kubelogin and
    /// the API server accepts AAD tokens for the AKS server app.
    pub aad_integrated: bool,
    /// `properties.disableLocalAccounts`: refuses `listClusterAdminCredential`.
    pub disable_local_accounts: bool,
    /// Users of a static password file (`--basic-auth-file`, which API servers read until
    /// Kubernetes 1.19): Basic credentials accepted as the admin's. None by default, as
    /// current API servers accept no Basic credentials at all.
    pub static_passwords: Vec<(String, String)>,
}

impl FakeCluster {
    /// A cluster with local accounts and no AAD integration.
    pub fn new(subscription_id: &str, resource_group: &str, name: &str) -> FakeCluster {
        FakeCluster {
            at: ResourceLocation::new(subscription_id, resource_group, name),
            kubernetes_version: "1.30.3".to_owned(),
            aad_integrated: false,
            disable_local_accounts: false,
            static_passwords: Vec::new(),
        }
    }

    /// Also accepts `username` and `password` by Basic authentication.
    pub fn with_static_password(mut self, username: &str, password: &str) -> FakeCluster {
        (self.static_passwords).push((username.to_owned(), password.to_owned()));
        self
    }

    /// AAD-integrated with local accounts disabled, as Azure's hardened defaults have it.
    pub fn with_aad_only(mut self) -> FakeCluster {
        self.aad_integrated = true;
        self.disable_local_accounts = true;
        self
    }
}

#[derive(Debug, Clone)]
pub struct FakeAzureConfig {
    pub tenant_id: String,
    pub service_principals: Vec<FakeServicePrincipal>,
    pub subscriptions: Vec<FakeSubscription>,
    pub storage_accounts: Vec<FakeStorageAccount>,
    pub registries: Vec<FakeRegistry>,
    pub clusters: Vec<FakeCluster>,
    /// ARM lists longer than this are paged with `nextLink`.
    pub page_size: usize,
    /// Where `nextLink`s point instead of this ARM: a link elsewhere, which clients must not
    /// follow with their token.
    pub next_link_base: Option<String>,
    /// `expires_in` of AAD tokens (Azure's own is 3599 s).
    pub token_lifetime: Duration,
}

impl Default for FakeAzureConfig {
    /// One tenant, one subscription, one all-powerful service principal and no resources.
    fn default() -> FakeAzureConfig {
        FakeAzureConfig {
            tenant_id: DEFAULT_TENANT_ID.to_owned(),
            service_principals: vec![FakeServicePrincipal::new(
                DEFAULT_CLIENT_ID,
                DEFAULT_CLIENT_SECRET,
            )],
            subscriptions: vec![FakeSubscription::new(
                DEFAULT_SUBSCRIPTION_ID,
                "Example Subscription",
            )],
            storage_accounts: Vec::new(),
            registries: Vec::new(),
            clusters: Vec::new(),
            page_size: 100,
            next_link_base: None,
            token_lifetime: Duration::from_secs(3599),
        }
    }
}
