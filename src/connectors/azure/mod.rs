//! The Azure connector type: resource types `azure-generic`, `blob-container`,
//! `kubernetes-cluster` and `docker-registry`; auth methods `service-principal`,
//! `access-token` and `implicit`.

mod arm;
mod blob;
pub mod cloud;
pub mod credentials;
pub mod engine;
pub mod kubernetes;
pub mod outbound;
mod registry;
mod resource_id;

use std::collections::BTreeMap;

use serde_json::Value;

use super::spec::ConnectorTypeSpec;
use super::{ConnectorType, ValidConnector};

pub const GENERIC: &str = "azure-generic";
pub const BLOB_CONTAINER: &str = "blob-container";
pub const KUBERNETES_CLUSTER: &str = "kubernetes-cluster";
pub const DOCKER_REGISTRY: &str = "docker-registry";
pub const ACCESS_TOKEN: &str = "access-token";

pub struct Azure {
    spec: ConnectorTypeSpec,
}

impl Azure {
    pub fn new() -> Azure {
        let spec = serde_json::from_str(include_str!("spec.json"))
            .expect("the Azure connector spec shipped with the server is valid");
        Azure { spec }
    }
}

impl Default for Azure {
    fn default() -> Self {
        Azure::new()
    }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::spec::config_fields;

    #[test]
    fn the_shipped_spec_marks_exactly_the_secret_fields() {
        let azure = Azure::new();
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
