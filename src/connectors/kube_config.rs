//! kube's client configuration for one cluster and one user, as both the Azure type (AKS
//! clusters) and the kubernetes type build it: from inline data only, with timeouts.

use std::time::Duration;

use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};

/// Where the cluster is and how to reach it.
pub struct ClusterEndpoint<'a> {
    pub name: &'a str,
    pub server: &'a str,
    /// Base64 PEM, as kubeconfigs carry it.
    pub certificate_authority: Option<String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

pub async fn kube_config(
    cluster: ClusterEndpoint<'_>,
    user: AuthInfo,
) -> Result<kube::Config, String> {
    const USER: &str = "connector";
    let kubeconfig = Kubeconfig {
        clusters: vec![NamedCluster {
            name: cluster.name.to_owned(),
            cluster: Some(Cluster {
                server: Some(cluster.server.to_owned()),
                certificate_authority_data: cluster.certificate_authority,
                ..Cluster::default()
            }),
            other: Default::default(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: USER.into(),
            auth_info: Some(user),
            other: Default::default(),
        }],
        contexts: vec![NamedContext {
            name: USER.into(),
            context: Some(Context {
                cluster: cluster.name.to_owned(),
                user: Some(USER.into()),
                ..Context::default()
            }),
            other: Default::default(),
        }],
        current_context: Some(USER.into()),
        ..Kubeconfig::default()
    };
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| format!("the cluster credentials are not usable: {e}"))?;
    config.connect_timeout = Some(cluster.connect_timeout);
    config.read_timeout = Some(cluster.request_timeout);
    config.write_timeout = Some(cluster.request_timeout);
    Ok(config)
}
