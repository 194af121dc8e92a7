//! AKS cluster credentials: what a kubeconfig from ARM holds, a check that they reach the
//! cluster's API server, and short-lived service-account tokens obtained with them (with the
//! kube crate).

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::config::{AuthInfo, Kubeconfig};
use zeroize::Zeroizing;

use super::outbound::OutboundLimits;
use crate::connectors::kube_config::{ClusterEndpoint, kube_config};

/// The Azure AD application of AKS API servers: the audience of tokens for AAD clusters.
pub const AKS_AAD_SERVER_SCOPE: &str = "6dae42f8-4368-4678-94ff-3960e28e3630/.default";

/// How to reach and authenticate to one cluster.
pub struct ClusterAccess {
    pub cluster_name: String,
    pub server: String,
    /// Base64 PEM, as in kubeconfigs.
    pub certificate_authority: Option<String>,
    pub token: Option<Zeroizing<String>>,
    pub client_certificate: Option<String>,
    pub client_key: Option<Zeroizing<String>>,
    /// When the token stops working, for Azure AD tokens.
    pub expires_at: Option<DateTime<Utc>>,
}

impl ClusterAccess {
    /// Reads the first cluster and user of an AKS kubeconfig. Only inline data is used: file
    /// paths, exec plugins and proxies in it are ignored.
    pub fn from_kubeconfig(yaml: &str) -> Result<ClusterAccess, String> {
        let config = Kubeconfig::from_yaml(yaml)
            .map_err(|e| format!("the cluster credentials are not a valid kubeconfig: {e}"))?;
        let named = config
            .clusters
            .first()
            .ok_or("the cluster credentials name no cluster")?;
        let cluster = named
            .cluster
            .as_ref()
            .ok_or("the kubeconfig cluster is empty")?;
        let server = cluster
            .server
            .clone()
            .filter(|s| s.starts_with("https://"))
            .ok_or("the kubeconfig names no https API server")?;
        let user = config
            .auth_infos
            .first()
            .and_then(|u| u.auth_info.clone())
            .unwrap_or_default();
        Ok(ClusterAccess {
            cluster_name: named.name.clone(),
            server,
            certificate_authority: cluster.certificate_authority_data.clone(),
            token: user.token.map(|t| Zeroizing::new(expose(&t))),
            client_certificate: user.client_certificate_data,
            client_key: user.client_key_data.map(|k| Zeroizing::new(expose(&k))),
            expires_at: None,
        })
    }

    pub fn has_credentials(&self) -> bool {
        self.token.is_some() || (self.client_certificate.is_some() && self.client_key.is_some())
    }

    /// A client for the API server with these credentials, bounded by the outbound limits.
    async fn kube_client(&self, limits: OutboundLimits) -> Result<kube::Client, String> {
        let cluster = ClusterEndpoint {
            name: &self.cluster_name,
            server: &self.server,
            certificate_authority: self.certificate_authority.clone(),
            connect_timeout: limits.connect_timeout,
            request_timeout: limits.request_timeout,
        };
        let user = AuthInfo {
            token: self.token.as_ref().map(|t| t.to_string().into()),
            client_certificate_data: self.client_certificate.clone(),
            client_key_data: self.client_key.as_ref().map(|k| k.to_string().into()),
            ..AuthInfo::default()
        };
        let config = kube_config(cluster, user).await?;
        kube::Client::try_from(config)
            .map_err(|e| format!("cannot build a client for the cluster: {e}"))
    }

    /// `GET /version` on the API server with these credentials; the server's git version.
    pub async fn check(&self, limits: OutboundLimits) -> Result<String, String> {
        let client = self.kube_client(limits).await?;
        let version = self
            .bounded(limits, client.apiserver_version())
            .await?
            .map_err(|e| {
                format!(
                    "the cluster's API server {} refused the credentials or failed: {e}",
                    self.server
                )
            })?;
        Ok(version.git_version)
    }

    async fn bounded<T>(
        &self,
        limits: OutboundLimits,
        call: impl Future<Output = T>,
    ) -> Result<T, String> {
        tokio::time::timeout(limits.request_timeout, call)
            .await
            .map_err(|_| {
                format!(
                    "the cluster's API server {} did not answer in time",
                    self.server
                )
            })
    }

    /// A token for the client identity, living `lifetime_seconds`, obtained with these (admin)
    /// credentials through the TokenRequest API. The identity is created on first use.
    pub async fn issue_token(
        &self,
        identity: &ClientIdentity,
        ensured: &EnsuredIdentities,
        lifetime_seconds: i64,
        limits: OutboundLimits,
    ) -> Result<IssuedToken, String> {
        let client = self.kube_client(limits).await?;
        let key = (self.server.clone(), identity.clone());
        // Once per cluster and process; again if the account has gone from the cluster since.
        for attempt in 0..2 {
            if !ensured.lock().expect("not poisoned").contains(&key) {
                self.bounded(limits, identity.ensure(&client)).await??;
                ensured.lock().expect("not poisoned").insert(key.clone());
            }
            let accounts: Api<ServiceAccount> =
                Api::namespaced(client.clone(), &identity.namespace);
            let request = TokenRequest {
                spec: Some(TokenRequestSpec {
                    expiration_seconds: Some(lifetime_seconds),
                    ..TokenRequestSpec::default()
                }),
                ..TokenRequest::default()
            };
            let issued = self
                .bounded(
                    limits,
                    accounts.create_token_request(
                        &identity.service_account,
                        &PostParams::default(),
                        &request,
                    ),
                )
                .await?;
            match issued {
                Err(e) if status_code(&e) == Some(404) && attempt == 0 => {
                    ensured.lock().expect("not poisoned").remove(&key);
                }
                Err(e) => {
                    return Err(refused(
                        &e,
                        &format!(
                            "request tokens for the '{}' service account in the '{}' namespace",
                            identity.service_account, identity.namespace
                        ),
                    ));
                }
                Ok(issued) => {
                    let status = issued.status.unwrap_or_default();
                    let (Some(token), Some(expires)) = (status.token, status.expiration_timestamp)
                    else {
                        return Err(
                            "the cluster answered the token request without a token and \
                                    its expiry"
                                .into(),
                        );
                    };
                    let expires_at = DateTime::from_timestamp(expires.0.as_second(), 0)
                        .ok_or("the cluster's token expiry is out of range")?;
                    return Ok(IssuedToken {
                        token: Zeroizing::new(token),
                        expires_at,
                    });
                }
            }
        }
        Err(format!(
            "the '{}' service account disappeared from the '{}' namespace while a token was requested",
            identity.service_account, identity.namespace
        ))
    }
}

/// The identity the server hands out cluster tokens for: a service account, bound to a
/// ClusterRole. Server settings, the same for every cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientIdentity {
    pub namespace: String,
    pub service_account: String,
    pub cluster_role: String,
}

/// The (API server, identity) pairs this process has made sure exist.
pub type EnsuredIdentities = Mutex<HashSet<(String, ClientIdentity)>>;

/// Kubernetes refuses token lifetimes shorter than ten minutes.
pub const MIN_TOKEN_SECONDS: i64 = 600;

/// A service-account token and when it stops working.
pub struct IssuedToken {
    pub token: Zeroizing<String>,
    pub expires_at: DateTime<Utc>,
}

impl ClientIdentity {
    /// The ClusterRoleBinding's name: one per service account, whichever namespace it is in.
    fn binding_name(&self) -> String {
        format!("connector-hub:{}:{}", self.namespace, self.service_account)
    }

    /// Creates the service account and its ClusterRoleBinding where they are missing. Another
    /// process creating them at the same time is no failure.
    async fn ensure(&self, client: &kube::Client) -> Result<(), String> {
        let labels = BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_owned(),
            "connector-hub".to_owned(),
        )]);
        let account = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(self.service_account.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels.clone()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &self.namespace);
        match accounts.create(&PostParams::default(), &account).await {
            Ok(_) => {}
            Err(e) if status_code(&e) == Some(409) => {}
            Err(e) => {
                return Err(refused(
                    &e,
                    &format!(
                        "create service accounts in the '{}' namespace",
                        self.namespace
                    ),
                ));
            }
        }
        let binding = ClusterRoleBinding {
            metadata: ObjectMeta {
                name: Some(self.binding_name()),
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "ClusterRole".into(),
                name: self.cluster_role.clone(),
            },
            subjects: Some(vec![self.subject()]),
        };
        let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
        match bindings.create(&PostParams::default(), &binding).await {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(409) => {
                let existing = bindings
                    .get(&self.binding_name())
                    .await
                    .map_err(|e| refused(&e, "read ClusterRoleBindings"))?;
                let binds_us = existing.role_ref.kind == "ClusterRole"
                    && existing.role_ref.name == self.cluster_role
                    && existing
                        .subjects
                        .unwrap_or_default()
                        .contains(&self.subject());
                match binds_us {
                    true => Ok(()),
                    false => Err(format!(
                        "the ClusterRoleBinding '{}' exists but does not bind the '{}' \
                         ClusterRole to the '{}' service account; delete it so that it is made \
                         again",
                        self.binding_name(),
                        self.cluster_role,
                        self.service_account
                    )),
                }
            }
            Err(e) => Err(refused(&e, "create ClusterRoleBindings")),
        }
    }

    fn subject(&self) -> Subject {
        Subject {
            kind: "ServiceAccount".into(),
            name: self.service_account.clone(),
            namespace: Some(self.namespace.clone()),
            api_group: None,
        }
    }
}

fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// A failed call, naming the permission that is missing when the cluster refused it.
fn refused(error: &kube::Error, what: &str) -> String {
    match error {
        kube::Error::Api(status) if status.code == 403 => format!(
            "the cluster's admin credentials may not {what}: {}",
            status.message
        ),
        kube::Error::Api(status) => format!("the cluster refused to {what}: {}", status.message),
        other => format!("failed to {what} on the cluster: {other}"),
    }
}

fn expose(secret: &secrecy::SecretString) -> String {
    use secrecy::ExposeSecret;
    secret.expose_secret().to_owned()
}
