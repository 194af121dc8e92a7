//! The catalogue of connector types, built once at start-up and shared read-only, so that no
//! request ever races a registration.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::ConnectorType;
use super::spec::ConnectorTypeSpec;
use super::user_endpoints::{TargetHosts, UserEndpoints};
use crate::config::ServeConfig;
use crate::metrics::Metrics;

/// What connector types are built from at start-up.
pub struct Setup<'a> {
    pub config: &'a ServeConfig,
    pub metrics: &'a Metrics,
    /// Shared by the types that call endpoints their users name.
    pub user_endpoints: Arc<UserEndpoints>,
}

impl<'a> Setup<'a> {
    pub fn new(config: &'a ServeConfig, metrics: &'a Metrics) -> Result<Setup<'a>, String> {
        let settings = &config.user_endpoints;
        let trusted_ca =
            match &settings.trusted_ca_file {
                Some(path) => Some(std::fs::read(path).map_err(|e| {
                    format!("cannot read --trusted-ca-file {}: {e}", path.display())
                })?),
                None => None,
            };
        let user_endpoints = UserEndpoints::new(
            TargetHosts::parse(settings.allowed_target_hosts.as_deref())?,
            trusted_ca.as_deref(),
            Duration::from_secs(settings.target_connect_timeout_seconds),
            Duration::from_secs(settings.target_request_timeout_seconds),
            metrics.targets.clone(),
        )?;
        Ok(Setup {
            config,
            metrics,
            user_endpoints: Arc::new(user_endpoints),
        })
    }
}

/// The auth method that lends the server's own identity to connectors.
pub const IMPLICIT: &str = "implicit";

pub struct Catalogue {
    types: Vec<Arc<dyn ConnectorType>>,
    implicit_enabled: bool,
    /// Where implicit authentication may be used (workspace names or ids); everywhere if unset.
    implicit_workspaces: Option<Vec<String>>,
}

impl Catalogue {
    pub fn new(
        types: Vec<Arc<dyn ConnectorType>>,
        implicit_enabled: bool,
        implicit_workspaces: Option<Vec<String>>,
    ) -> Catalogue {
        Catalogue {
            types,
            implicit_enabled,
            implicit_workspaces,
        }
    }

    pub fn get(&self, connector_type: &str) -> Option<&dyn ConnectorType> {
        self.types
            .iter()
            .find(|t| t.spec().connector_type == connector_type)
            .map(|t| t.as_ref())
    }

    /// Where implicit authentication may be used (workspace names or ids), if the
    /// administrator kept it to some workspaces.
    pub fn implicit_workspaces(&self) -> Option<&[String]> {
        self.implicit_workspaces.as_deref()
    }

    /// Whether connectors may use `auth_method` on this server.
    pub fn auth_method_enabled(&self, auth_method: &str) -> bool {
        auth_method != IMPLICIT || self.implicit_enabled
    }

    /// Whether connectors in this workspace may use `auth_method`: implicit authentication lends
    /// the server's identity, so an administrator may keep it to some workspaces.
    pub fn auth_method_allowed_in(
        &self,
        auth_method: &str,
        workspace_id: Uuid,
        workspace_name: &str,
    ) -> bool {
        if auth_method != IMPLICIT {
            return true;
        }
        self.implicit_enabled
            && self.implicit_workspaces.as_ref().is_none_or(|allowed| {
                allowed.iter().any(|w| {
                    w == workspace_name || w.parse::<Uuid>().is_ok_and(|id| id == workspace_id)
                })
            })
    }

    /// The specs as served, each auth method marked with whether it is enabled here.
    pub fn specs(&self) -> impl Iterator<Item = ConnectorTypeSpec> + '_ {
        self.types.iter().map(|t| {
            let mut spec = t.spec().clone();
            for method in &mut spec.auth_methods {
                method.enabled = self.auth_method_enabled(&method.auth_method);
            }
            spec
        })
    }
}
