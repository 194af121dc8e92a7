//! The catalogue of connector types, built once at start-up and shared read-only, so that no
//! request ever races a registration.

use std::sync::Arc;

use super::ConnectorType;
use super::spec::ConnectorTypeSpec;

/// The auth method that lends the server's own identity to connectors.
pub const IMPLICIT: &str = "implicit";

pub struct Catalogue {
    types: Vec<Arc<dyn ConnectorType>>,
    implicit_enabled: bool,
}

impl Catalogue {
    /// The connector types this server implements.
    pub fn new(implicit_enabled: bool) -> Catalogue {
        Catalogue {
            types: vec![Arc::new(super::azure::Azure::new())],
            implicit_enabled,
        }
    }

    pub fn get(&self, connector_type: &str) -> Option<&dyn ConnectorType> {
        self.types
            .iter()
            .find(|t| t.spec().connector_type == connector_type)
            .map(|t| t.as_ref())
    }

    /// Whether connectors may use `auth_method` on this server.
    pub fn auth_method_enabled(&self, auth_method: &str) -> bool {
        auth_method != IMPLICIT || self.implicit_enabled
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
