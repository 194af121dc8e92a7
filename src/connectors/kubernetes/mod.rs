//! The `kubernetes` connector type: one cluster, reached at the API server URL its user gives,
//! with a bearer token, a client certificate, or a username and password. Its client connector
//! is the connector itself.

mod cluster;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::catalogue::Setup;
use super::engine::{ClientConnector, Connector, Session};
use super::spec::ConnectorTypeSpec;
use super::user_endpoints::UserEndpoints;
use super::{ConnectorType, ValidConnector};
use crate::metrics::TargetType;
use cluster::ClusterSettings;

pub const KUBERNETES_CLUSTER: &str = "kubernetes-cluster";
const PASSWORD: &str = "password";
const TOKEN: &str = "token";

pub struct Kubernetes {
    spec: ConnectorTypeSpec,
    endpoints: Arc<UserEndpoints>,
}

impl Kubernetes {
    pub fn start(setup: &Setup) -> Result<Kubernetes, String> {
        let spec = serde_json::from_str(include_str!("spec.json"))
            .expect("the Kubernetes connector spec shipped with the server is valid");
        Ok(Kubernetes {
            spec,
            endpoints: Arc::clone(&setup.user_endpoints),
        })
    }
}

impl ConnectorType for Kubernetes {
    fn spec(&self) -> &ConnectorTypeSpec {
        &self.spec
    }

    /// The cluster is named in the configuration; any other name is a different cluster.
    fn canonical_resource_id(
        &self,
        _resource_type: &str,
        id: &str,
        _configuration: &BTreeMap<String, Value>,
    ) -> Result<String, String> {
        Ok(id.to_owned())
    }

    fn check(&self, connector: &ValidConnector) -> Result<(), String> {
        let server = connector
            .configuration
            .get("server")
            .and_then(Value::as_str)
            .unwrap_or_default();
        cluster::server_url(server)?;
        if connector.auth_method == TOKEN {
            let has = |key: &str| connector.secrets.keys().any(|k| k == key);
            let certificate = has("client_certificate") && has("client_key");
            if !(has("token") || certificate) {
                return Err(
                    "the 'token' authentication method needs a token, or a client_certificate \
                     with its client_key"
                        .into(),
                );
            }
        }
        Ok(())
    }

    fn session<'a>(
        &'a self,
        connector: &'a Connector,
        _now: DateTime<Utc>,
    ) -> Result<Box<dyn Session + 'a>, String> {
        Ok(Box::new(ClusterSession {
            connector,
            settings: ClusterSettings::of(connector)?,
            endpoints: &self.endpoints,
        }))
    }
}

struct ClusterSession<'a> {
    connector: &'a Connector,
    settings: ClusterSettings,
    endpoints: &'a UserEndpoints,
}

#[async_trait::async_trait]
impl Session for ClusterSession<'_> {
    async fn authenticate(&self) -> Result<(), String> {
        let check = self.settings.check(self.endpoints);
        self.endpoints.counted(TargetType::kubernetes, check).await
    }

    async fn list(&self, resource_type: &str, id: Option<&str>) -> Result<Vec<String>, String> {
        let cluster_name = &self.settings.cluster_name;
        if resource_type != KUBERNETES_CLUSTER {
            return Err(format!(
                "the Kubernetes connector has no resource type '{resource_type}'"
            ));
        }
        match id {
            Some(id) if id != cluster_name => Err(format!(
                "the connector reaches the cluster '{cluster_name}', not '{id}'"
            )),
            _ => Ok(vec![cluster_name.clone()]),
        }
    }

    /// The connector itself: a cluster's own credentials are all there is to hand out.
    async fn client(&self, resource_type: &str, id: &str) -> Result<ClientConnector, String> {
        let resource_id = self.list(resource_type, Some(id)).await?.remove(0);
        let auth_method = match self.connector.auth_method.as_str() {
            PASSWORD => PASSWORD,
            _ => TOKEN,
        };
        Ok(ClientConnector::itself(
            self.connector,
            "kubernetes",
            auth_method,
            KUBERNETES_CLUSTER,
            resource_id,
        ))
    }
}
