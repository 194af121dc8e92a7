//! Which components a connector's resources can back, for the stack wizards (ZenML's
//! `ServiceConnectorResourcesInfo`): a blob container an Azure artifact store, a cluster a
//! Kubernetes orchestrator, a registry an Azure container registry. Only flavors this server
//! serves are offered.

use super::{ComponentType, Flavors};

/// One kind of component a connector's resource type can back.
#[derive(Debug, Clone, Copy)]
pub struct Offer {
    pub component_type: ComponentType,
    pub flavor: &'static str,
    pub flavor_display_name: &'static str,
    /// Configuration attributes the wizard asks for, with the label it shows.
    pub required_configuration: &'static [(&'static str, &'static str)],
    /// The resource id itself is the value of the one required attribute.
    pub use_resource_value_as_fixed_config: bool,
}

/// `(connector type, resource type, offer)`, in the order wizards list them.
const OFFERS: &[(&str, &str, Offer)] = &[
    (
        "azure",
        "blob-container",
        Offer {
            component_type: ComponentType::ArtifactStore,
            flavor: "azure",
            flavor_display_name: "Blob container",
            required_configuration: &[("path", "Path")],
            use_resource_value_as_fixed_config: true,
        },
    ),
    (
        "azure",
        "azure-generic",
        Offer {
            component_type: ComponentType::Orchestrator,
            flavor: "azureml",
            flavor_display_name: "AzureML",
            required_configuration: &[
                ("subscription_id", "subscription ID"),
                ("resource_group", "resource group"),
                ("workspace", "workspace"),
            ],
            use_resource_value_as_fixed_config: false,
        },
    ),
    (
        "azure",
        "kubernetes-cluster",
        Offer {
            component_type: ComponentType::Orchestrator,
            flavor: "kubernetes",
            flavor_display_name: "Kubernetes",
            required_configuration: &[],
            use_resource_value_as_fixed_config: false,
        },
    ),
    (
        "azure",
        "docker-registry",
        Offer {
            component_type: ComponentType::ContainerRegistry,
            flavor: "azure",
            flavor_display_name: "ACR",
            required_configuration: &[("uri", "URI")],
            use_resource_value_as_fixed_config: true,
        },
    ),
];

/// What resources of `resource_type`, reached by a connector of `connector_type`, can back.
pub fn for_resources<'a>(
    flavors: &'a Flavors,
    connector_type: &'a str,
    resource_type: &'a str,
) -> impl Iterator<Item = Offer> + 'a {
    OFFERS
        .iter()
        .filter(move |(c, r, _)| *c == connector_type && *r == resource_type)
        .map(|(_, _, offer)| *offer)
        .filter(|offer| flavors.get(offer.component_type, offer.flavor).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_offer_names_a_served_flavor_that_uses_its_resource_type() {
        let flavors = Flavors::new();
        for (connector_type, resource_type, offer) in OFFERS {
            let flavor = flavors
                .get(offer.component_type, offer.flavor)
                .unwrap_or_else(|| panic!("{offer:?} is not served"));
            let needs = flavor
                .requirements()
                .expect("offered flavors use connectors");
            assert_eq!(needs.resource_type, *resource_type);
            assert!(needs.connector_type.is_none_or(|t| t == *connector_type));
        }
        let kinds: Vec<_> = for_resources(&flavors, "azure", "kubernetes-cluster")
            .map(|o| o.flavor)
            .collect();
        assert_eq!(kinds, ["kubernetes"]);
    }
}
