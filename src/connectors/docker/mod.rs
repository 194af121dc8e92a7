//! The `docker` connector type: one Docker/OCI registry (Docker Hub when none is named),
//! reached with a username and a password or access token. Its client connector is the
//! connector itself.

mod handshake;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::catalogue::Setup;
use super::engine::{ClientConnector, Connector, Session};
use super::spec::ConnectorTypeSpec;
use super::user_endpoints::{UserEndpoints, is_host_name};
use super::ConnectorType;
use crate::metrics::TargetType;

const DOCKER_REGISTRY: &str = "docker-registry";
const DOCKER_HUB: &str = "docker.io";

pub struct Docker {
    spec: ConnectorTypeSpec,
    endpoints: Arc<UserEndpoints>,
    http: reqwest::Client,
}

impl Docker {
    pub fn start(setup: &Setup) -> Result<Docker, String> {
        let spec = serde_json::from_str(include_str!("spec.json"))
            .expect("the Docker connector spec shipped with the server is valid");
        Ok(Docker {
            spec,
            http: setup.user_endpoints.http_client()?,
            endpoints: Arc::clone(&setup.user_endpoints),
        })
    }
}

/// A registry's host (and port) from a registry name or URL, as Docker names registries:
/// `https://ghcr.io/org/repo` and `ghcr.io/org` are `ghcr.io`, Docker Hub is `docker.io`.
fn registry_host(id: &str) -> Result<String, String> {
    let without_scheme = id
        .strip_prefix("https://")
        .or_else(|| id.strip_prefix("http://"))
        .unwrap_or(id);
    let host = without_scheme.split('/').next().unwrap_or_default();
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let valid_name = is_host_name(name);
    let valid_port = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if !valid_name || !valid_port {
        return Err(format!(
            "'{id}' is not a Docker registry: give its host, such as docker.io, ghcr.io or \
             registry.example.com:5000, or its URL"
        ));
    }
    let host = host.to_ascii_lowercase();
    Ok(match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_owned(),
        _ => host,
    })
}

impl ConnectorType for Docker {
    fn spec(&self) -> &ConnectorTypeSpec {
        &self.spec
    }

    fn canonical_resource_id(
        &self,
        _resource_type: &str,
        id: &str,
        _configuration: &BTreeMap<String, Value>,
    ) -> Result<String, String> {
        registry_host(id)
    }

    fn session<'a>(
        &'a self,
        connector: &'a Connector,
        _now: DateTime<Utc>,
    ) -> Result<Box<dyn Session + 'a>, String> {
        let lacks = |field: &str| format!("the connector configuration lacks '{field}'");
        Ok(Box::new(RegistrySession {
            connector,
            registry: registry_host(connector.setting("registry").unwrap_or(DOCKER_HUB))?,
            username: connector.secret("username").ok_or_else(|| lacks("username"))?,
            password: connector.secret("password").ok_or_else(|| lacks("password"))?,
            docker: self,
        }))
    }
}

struct RegistrySession<'a> {
    connector: &'a Connector,
    registry: String,
    username: &'a str,
    password: &'a str,
    docker: &'a Docker,
}

#[async_trait::async_trait]
impl Session for RegistrySession<'_> {
    async fn authenticate(&self) -> Result<(), String> {
        let endpoints = &self.docker.endpoints;
        let log_in = handshake::log_in(
            &self.docker.http,
            endpoints,
            &self.registry,
            self.username,
            self.password,
        );
        endpoints.counted(TargetType::docker, log_in).await
    }

    async fn list(&self, resource_type: &str, id: Option<&str>) -> Result<Vec<String>, String> {
        if resource_type != DOCKER_REGISTRY {
            return Err(format!(
                "the Docker connector has no resource type '{resource_type}'"
            ));
        }
        match id.map(registry_host).transpose()? {
            Some(other) if other != self.registry => Err(format!(
                "the connector reaches the registry '{}', not '{other}'",
                self.registry
            )),
            _ => Ok(vec![self.registry.clone()]),
        }
    }

    /// The connector itself: a registry password is all there is to hand out.
    async fn client(&self, resource_type: &str, id: &str) -> Result<ClientConnector, String> {
        let resource_id = self.list(resource_type, Some(id)).await?.remove(0);
        Ok(ClientConnector::itself(
            self.connector,
            "docker",
            "password",
            DOCKER_REGISTRY,
            resource_id,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::registry_host;

    #[test]
    fn registries_are_named_by_their_host() {
        for (id, host) in [
            ("docker.io", "docker.io"),
            ("index.docker.io", "docker.io"),
            ("https://index.docker.io/v1/", "docker.io"),
            ("ghcr.io/org/repo", "ghcr.io"),
            ("https://Registry.Example.com:5000/team", "registry.example.com:5000"),
            ("127.0.0.1:5000", "127.0.0.1:5000"),
        ] {
            assert_eq!(registry_host(id).unwrap(), host, "{id}");
        }
        for bad in ["", "https://", "a b", "host:port", "host:0"] {
            assert!(registry_host(bad).is_err(), "{bad:?}");
        }
    }
}
