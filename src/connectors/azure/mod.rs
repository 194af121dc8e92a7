//! The Azure connector type: resource types `azure-generic`, `blob-container`,
//! `kubernetes-cluster` and `docker-registry`; auth methods `service-principal`,
//! `access-token` and `implicit`.

mod arm;
mod blob;
pub mod cloud;
mod container_registry;
pub mod credentials;
pub mod engine;
pub mod kubernetes;
pub mod outbound;
mod resource_id;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::catalogue::Setup;
use super::engine::{Connector, Session};
use super::spec::ConnectorTypeSpec;
use super::{ConnectorType, ValidConnector};
use crate::config::ClusterClientConfig;
use cloud::Clouds;
use credentials::{ImplicitIdentity, ImplicitIdentitySettings, TokenCache};
use engine::AzureEngine;
use kubernetes::ClientIdentity;
use outbound::{Outbound, OutboundLimits};

pub const GENERIC: &str = "azure-generic";
pub const BLOB_CONTAINER: &str = "blob-container";
pub const KUBERNETES_CLUSTER: &str = "kubernetes-cluster";
pub const DOCKER_REGISTRY: &str = "docker-registry";
pub const ACCESS_TOKEN: &str = "access-token";

pub struct Azure {
    spec: ConnectorTypeSpec,
    engine: AzureEngine,
}

impl Azure {
    /// The type with its engine: the clouds it may call, its one HTTP client, and the server's
    /// own Azure identity for implicit connectors.
    pub fn start(setup: &Setup) -> Result<Azure, String> {
        let (config, metrics) = (&setup.config.azure, setup.metrics);
        let implicit_enabled = setup.config.enable_implicit_auth_methods;
        let cluster_clients = cluster_client_identity(&setup.config.cluster_clients)?;
        let clouds = Clouds::load(
            config.azure_cloud_config.as_deref(),
            config.azure_custom_cloud_only,
        )?;
        let limits = OutboundLimits {
            connect_timeout: Duration::from_secs(config.azure_connect_timeout_seconds),
            request_timeout: Duration::from_secs(config.azure_request_timeout_seconds),
            max_retries: config.azure_max_retries,
            max_retry_wait: Duration::from_secs(config.azure_max_retry_wait_seconds),
        };
        let outbound = Outbound::new(
            clouds.extra_roots_pem.as_deref(),
            limits,
            metrics.azure.clone(),
        )?;
        let settings = ImplicitIdentitySettings {
            tenant_id: config.azure_tenant_id.clone(),
            client_id: config.azure_client_id.clone(),
            client_secret: config.azure_client_secret.clone(),
            federated_token_file: config.azure_federated_token_file.clone(),
        };
        let default_cloud = clouds.get(None).expect("there is always a default cloud");
        // Off, the server neither builds nor probes an identity of its own, nor logs about one.
        let implicit = match implicit_enabled {
            true => ImplicitIdentity::new(&settings, default_cloud, &outbound),
            false => ImplicitIdentity::disabled(),
        };
        let spec = serde_json::from_str(include_str!("spec.json"))
            .expect("the Azure connector spec shipped with the server is valid");
        Ok(Azure {
            spec,
            engine: AzureEngine {
                clouds,
                outbound,
                tokens: TokenCache::counted(metrics.token_cache.clone()),
                implicit,
                cluster_clients,
                ensured_cluster_clients: Default::default(),
            },
        })
    }
}

/// The cluster client settings, checked as Kubernetes checks names: DNS labels for the
/// namespace and service account, a path segment for the ClusterRole.
fn cluster_client_identity(config: &ClusterClientConfig) -> Result<ClientIdentity, String> {
    let dns_label = |flag: &str, value: &str| {
        let valid = (1..=63).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !value.starts_with('-')
            && !value.ends_with('-');
        match valid {
            true => Ok(value.to_owned()),
            false => Err(format!(
                "--{flag} must be a Kubernetes name (lower-case letters, digits and '-', at most \
                 63 characters), not '{value}'"
            )),
        }
    };
    let role = &config.kubernetes_client_cluster_role;
    if role.is_empty() || role == "." || role == ".." || role.contains(['/', '%']) {
        return Err(format!(
            "--kubernetes-client-cluster-role must be a ClusterRole name, not '{role}'"
        ));
    }
    Ok(ClientIdentity {
        namespace: dns_label(
            "kubernetes-client-namespace",
            &config.kubernetes_client_namespace,
        )?,
        service_account: dns_label(
            "kubernetes-client-service-account",
            &config.kubernetes_client_service_account,
        )?,
        cluster_role: role.clone(),
    })
}

impl ConnectorType for Azure {
    fn spec(&self) -> &ConnectorTypeSpec {
        &self.spec
    }

    fn canonical_resource_id(
        &self,
        resource_type: &str,
        id: &str,
        configuration: &BTreeMap<String, Value>,
    ) -> Result<String, String> {
        match resource_type {
            BLOB_CONTAINER => resource_id::blob_container(id),
            DOCKER_REGISTRY => resource_id::container_registry(id),
            KUBERNETES_CLUSTER => {
                let configured = configuration.get("resource_group").and_then(Value::as_str);
                resource_id::aks_cluster(id, configured)
            }
            _ => Ok(id.to_owned()),
        }
    }

    fn check(&self, connector: &ValidConnector) -> Result<(), String> {
        // A static token's lifetime cannot be discovered, so it must be stated.
        if connector.auth_method == ACCESS_TOKEN && connector.expires_at.is_none() {
            return Err(
                "the 'access-token' authentication method needs expires_at: the time the token \
                 expires"
                    .into(),
            );
        }
        Ok(())
    }

    fn session<'a>(
        &'a self,
        connector: &'a Connector,
        now: DateTime<Utc>,
    ) -> Result<Box<dyn Session + 'a>, String> {
        Ok(Box::new(self.engine.session(connector, now)?))
    }
}

/// The Azure type as the server's defaults build it, for unit tests of its rules.
#[cfg(test)]
pub(crate) fn with_defaults() -> Azure {
    let config = crate::config::ServeConfig::defaults();
    let metrics = crate::metrics::Metrics::new();
    Azure::start(&Setup::new(&config, &metrics).expect("the defaults set up"))
        .expect("the defaults start")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::spec::config_fields;

    #[test]
    fn the_shipped_spec_marks_exactly_the_secret_fields() {
        let azure = with_defaults();
        let secrets = |method: &str| -> Vec<String> {
            let schema = &azure.spec().auth_method(method).unwrap().config_schema;
            config_fields(schema)
                .unwrap()
                .into_iter()
                .filter(|f| f.secret)
                .map(|f| f.name)
                .collect()
        };
        assert_eq!(secrets("service-principal"), ["client_secret"]);
        assert_eq!(secrets("access-token"), ["token"]);
        assert!(secrets("implicit").is_empty());
        let types: Vec<_> = azure
            .spec()
            .resource_types
            .iter()
            .map(|r| r.resource_type.as_str())
            .collect();
        assert_eq!(
            types,
            [
                "azure-generic",
                BLOB_CONTAINER,
                KUBERNETES_CLUSTER,
                DOCKER_REGISTRY
            ]
        );
    }
}
