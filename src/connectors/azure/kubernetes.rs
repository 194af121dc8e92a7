//! AKS cluster credentials: what a kubeconfig from ARM holds, and a check that they reach the
//! cluster's API server (with the kube crate).

use chrono::{DateTime, Utc};
use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};
use zeroize::Zeroizing;

use super::outbound::OutboundLimits;

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

    /// `GET /version` on the API server with these credentials; the server's git version.
    pub async fn check(&self, limits: OutboundLimits) -> Result<String, String> {
        let kubeconfig = Kubeconfig {
            clusters: vec![NamedCluster {
                name: self.cluster_name.clone(),
                cluster: Some(Cluster {
                    server: Some(self.server.clone()),
                    certificate_authority_data: self.certificate_authority.clone(),
                    ..Cluster::default()
                }),
                other: Default::default(),
            }],
            auth_infos: vec![NamedAuthInfo {
                name: "connector".into(),
                auth_info: Some(AuthInfo {
                    token: self.token.as_ref().map(|t| t.to_string().into()),
                    client_certificate_data: self.client_certificate.clone(),
                    client_key_data: self.client_key.as_ref().map(|k| k.to_string().into()),
                    ..AuthInfo::default()
                }),
                other: Default::default(),
            }],
            contexts: vec![NamedContext {
                name: "connector".into(),
                context: Some(Context {
                    cluster: self.cluster_name.clone(),
                    user: Some("connector".into()),
                    ..Context::default()
                }),
                other: Default::default(),
            }],
            current_context: Some("connector".into()),
            ..Kubeconfig::default()
        };
        let mut config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("the cluster credentials are not usable: {e}"))?;
        config.connect_timeout = Some(limits.connect_timeout);
        config.read_timeout = Some(limits.request_timeout);
        config.write_timeout = Some(limits.request_timeout);
        let client = kube::Client::try_from(config)
            .map_err(|e| format!("cannot build a client for the cluster: {e}"))?;
        let version = tokio::time::timeout(limits.request_timeout, client.apiserver_version())
            .await
            .map_err(|_| {
                format!(
                    "the cluster's API server {} did not answer in time",
                    self.server
                )
            })?
            .map_err(|e| {
                format!(
                    "the cluster's API server {} refused the credentials or failed: {e}",
                    self.server
                )
            })?;
        Ok(version.git_version)
    }
}

fn expose(secret: &secrecy::SecretString) -> String {
    use secrecy::ExposeSecret;
    secret.expose_secret().to_owned()
}
