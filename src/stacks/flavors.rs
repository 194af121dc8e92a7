//! The flavors this server serves: ZenML's own identifiers, sources and configuration schemas
//! (the client imports a flavor's `source` to check a configuration locally, so they must be
//! ZenML's). Each flavor is a JSON file under `flavors/`, produced from the zenml client by
//! `tests/zenml/dump_flavors.py`; adding one is that file and one line in [`LEAVES`].

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::ComponentType;

/// One JSON document per flavor.
const LEAVES: &[&str] = &[
    include_str!("flavors/artifact_store/azure.json"),
    include_str!("flavors/artifact_store/local.json"),
    include_str!("flavors/container_registry/azure.json"),
    include_str!("flavors/container_registry/default.json"),
    include_str!("flavors/container_registry/dockerhub.json"),
    include_str!("flavors/container_registry/github.json"),
    include_str!("flavors/image_builder/local.json"),
    include_str!("flavors/orchestrator/azureml.json"),
    include_str!("flavors/orchestrator/kubernetes.json"),
    include_str!("flavors/orchestrator/local.json"),
    include_str!("flavors/step_operator/azureml.json"),
    include_str!("flavors/step_operator/kubernetes.json"),
];

/// ZenML's flavor model, as its `to_model` dumps it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flavor {
    #[serde(skip, default = "Uuid::nil")]
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    #[serde(rename = "type")]
    pub component_type: ComponentType,
    pub config_schema: Value,
    pub connector_type: Option<String>,
    pub connector_resource_type: Option<String>,
    pub connector_resource_id_attr: Option<String>,
    pub source: String,
    pub integration: Option<String>,
    pub logo_url: Option<String>,
    pub docs_url: Option<String>,
    pub sdk_docs_url: Option<String>,
    pub is_custom: bool,
}

/// What a flavor asks of the connector its components are linked to (ZenML's
/// `ServiceConnectorRequirements`).
#[derive(Debug, Clone, Copy)]
pub struct Requirements<'a> {
    /// Any connector type providing the resource type will do when `None`.
    pub connector_type: Option<&'a str>,
    pub resource_type: &'a str,
    /// The configuration attribute that names the resource, such as an artifact store's `path`.
    pub resource_id_attr: Option<&'a str>,
}

impl Flavor {
    /// The same in every server process: derived from the type and the name.
    fn derive_id(component_type: ComponentType, name: &str) -> Uuid {
        const FLAVORS: Uuid = Uuid::from_u128(0x3b0d_51c2_8e7a_4f16_9c45_2d8e_6a1f_04b7);
        Uuid::new_v5(
            &FLAVORS,
            format!("{}/{name}", component_type.as_str()).as_bytes(),
        )
    }

    /// `None` when components of this flavor cannot use a service connector.
    pub fn requirements(&self) -> Option<Requirements<'_>> {
        Some(Requirements {
            connector_type: self.connector_type.as_deref(),
            resource_type: self.connector_resource_type.as_deref()?,
            resource_id_attr: self.connector_resource_id_attr.as_deref(),
        })
    }
}

/// Every flavor served, built once at start-up and shared read-only.
pub struct Flavors {
    all: Vec<Flavor>,
}

impl Flavors {
    pub fn new() -> Flavors {
        let mut all: Vec<Flavor> = LEAVES
            .iter()
            .map(|leaf| {
                let mut flavor: Flavor =
                    serde_json::from_str(leaf).expect("the embedded flavors are valid");
                flavor.id = Flavor::derive_id(flavor.component_type, &flavor.name);
                flavor
            })
            .collect();
        all.sort_by(|a, b| (a.component_type, &a.name).cmp(&(b.component_type, &b.name)));
        Flavors { all }
    }

    pub fn all(&self) -> &[Flavor] {
        &self.all
    }

    pub fn get(&self, component_type: ComponentType, name: &str) -> Option<&Flavor> {
        self.all
            .iter()
            .find(|f| f.component_type == component_type && f.name == name)
    }

    pub fn by_id(&self, id: Uuid) -> Option<&Flavor> {
        self.all.iter().find(|f| f.id == id)
    }
}

impl Default for Flavors {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_leaf_loads_with_a_stable_id_of_its_own() {
        let flavors = Flavors::new();
        assert_eq!(flavors.all().len(), LEAVES.len());
        let azure = flavors
            .get(ComponentType::ArtifactStore, "azure")
            .expect("the azure artifact store is served");
        assert_eq!(Flavors::new().by_id(azure.id).unwrap().name, "azure");
        let ids: std::collections::HashSet<Uuid> = flavors.all().iter().map(|f| f.id).collect();
        assert_eq!(ids.len(), LEAVES.len());
        let requirements = azure.requirements().unwrap();
        assert_eq!(
            (requirements.connector_type, requirements.resource_type),
            (Some("azure"), "blob-container")
        );
        let local = flavors.get(ComponentType::Orchestrator, "local").unwrap();
        assert!(local.requirements().is_none());
    }
}
