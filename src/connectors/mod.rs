//! Connector types: their specs, the rules that check a connector against its spec, and (per
//! type) what a resource id looks like. Nothing here touches the database: handlers load a
//! connector, hand it over, and store what comes back.

pub mod azure;
pub mod engine;
pub mod expiry;
pub mod registry;
pub mod spec;
pub mod validate;

use serde_json::Value;
use std::collections::BTreeMap;

pub use registry::Catalogue;
pub use spec::ConnectorTypeSpec;
pub use validate::{ConnectorDraft, ValidConnector};

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
}
