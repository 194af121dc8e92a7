//! Connector types: their specs, the rules that check a connector against its spec, and (per
//! type) what a resource id looks like and how its credentials are used. Nothing here touches
//! the database: handlers load a connector, hand it over, and store what comes back.
//!
//! A type is a module of its own that implements [`ConnectorType`], registered with one line
//! below.

pub mod catalogue;
pub mod engine;
pub mod expiry;
pub mod kube_config;
pub mod spec;
pub mod user_endpoints;
pub mod validate;

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;

pub use catalogue::Catalogue;
use catalogue::Setup;
use engine::{Connector, Session};
pub use spec::ConnectorTypeSpec;
pub use validate::{ConnectorDraft, ValidConnector};

/// Declares each connector type's module and builds the types in the order they are listed;
/// each type has `start(&Setup) -> Result<Self, String>`.
macro_rules! connector_types {
    ($($module:ident => $type:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// The connector types this server implements, built at start-up.
        pub fn connector_types(
            setup: &Setup,
        ) -> Result<Vec<std::sync::Arc<dyn ConnectorType>>, String> {
            Ok(vec![$(std::sync::Arc::new($module::$type::start(setup)?)),*])
        }
    };
}

connector_types! {
    azure => Azure,
    kubernetes => Kubernetes,
    docker => Docker,
}

/// One kind of connector (`azure`, …).
pub trait ConnectorType: Send + Sync {
    fn spec(&self) -> &ConnectorTypeSpec;

    /// The canonical form of `id`, a resource of `resource_type`, given the connector's
    /// non-secret configuration; an error says which forms are accepted.
    fn canonical_resource_id(
        &self,
        resource_type: &str,
        id: &str,
        configuration: &BTreeMap<String, Value>,
    ) -> Result<String, String>;

    /// Rules beyond the schema, such as a static token needing an expiry time.
    fn check(&self, _connector: &ValidConnector) -> Result<(), String> {
        Ok(())
    }

    /// Reads the connector's credentials and settings, without calling out yet; an error says
    /// what in the connector cannot be used.
    fn session<'a>(
        &'a self,
        connector: &'a Connector,
        now: DateTime<Utc>,
    ) -> Result<Box<dyn Session + 'a>, String>;
}
