//! Whether a component may be linked to a connector, and to which of its resources. ZenML's
//! server checks none of this (its client does, and only sometimes); here every link is
//! checked on the server, so that no component names a resource its connector cannot reach.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::flavors::Flavor;
use crate::connectors::ConnectorType;
use crate::domain::{DomainError, DomainResult};

/// The connector side of a link.
pub struct LinkedConnector<'a> {
    pub name: &'a str,
    pub kind: &'a dyn ConnectorType,
    pub resource_types: &'a [String],
    /// Set when the connector reaches one resource only.
    pub resource_id: Option<&'a str>,
    pub configuration: &'a BTreeMap<String, Value>,
}

fn refuse(reason: String) -> DomainError {
    DomainError::Invalid(format!(
        "the component cannot be connected to this service connector: {reason}"
    ))
}

/// The canonical id of the resource the component reaches through `connector`, checked against
/// what the component's `flavor` needs: the connector's type and resource type, and one
/// resource named consistently by the request (`requested`), the component's configuration
/// (the flavor's resource-id attribute, such as an artifact store's `path`) and the connector
/// itself. `None` where the resource type has no instances to choose from.
pub fn resource_id(
    flavor: &Flavor,
    configuration: &Map<String, Value>,
    connector: &LinkedConnector,
    requested: Option<&str>,
) -> DomainResult<Option<String>> {
    let what = format!("{} {}", flavor.name, flavor.component_type);
    let Some(needs) = flavor.requirements() else {
        return Err(refuse(format!(
            "the {what} flavor does not use service connectors"
        )));
    };
    let connector_type = connector.kind.spec().connector_type.as_str();
    if let Some(wanted) = needs.connector_type
        && wanted != connector_type
    {
        return Err(refuse(format!(
            "the {what} flavor needs a '{wanted}' connector, and '{}' is of type \
             '{connector_type}'",
            connector.name
        )));
    }
    let resource_type = needs.resource_type;
    if !connector.resource_types.iter().any(|t| t == resource_type) {
        return Err(refuse(format!(
            "the {what} flavor needs the '{resource_type}' resource type, and '{}' provides only \
             {}",
            connector.name,
            connector
                .resource_types
                .iter()
                .map(|t| format!("'{t}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let canonical = |id: &str| {
        connector
            .kind
            .canonical_resource_id(resource_type, id, connector.configuration)
            .map_err(refuse)
    };
    let requested = requested.map(canonical).transpose()?;
    let attribute = needs.resource_id_attr.and_then(|attr| {
        configuration
            .get(attr)
            .and_then(Value::as_str)
            .map(|value| (attr, value))
    });
    let configured = match attribute {
        Some((attr, value)) => Some((attr, canonical(value)?)),
        None => None,
    };
    if let (Some(requested), Some((attr, configured))) = (&requested, &configured)
        && requested != configured
    {
        return Err(refuse(format!(
            "the component's '{attr}' is the resource '{configured}', not the requested \
             '{requested}'"
        )));
    }
    let chosen = requested
        .or(configured.map(|(_, id)| id))
        .or(connector.resource_id.map(str::to_owned));
    if let (Some(chosen), Some(own)) = (&chosen, connector.resource_id)
        && chosen != own
    {
        return Err(refuse(format!(
            "'{}' reaches only the {resource_type} resource '{own}', not '{chosen}'",
            connector.name
        )));
    }
    let has_instances = connector
        .kind
        .spec()
        .resource_type(resource_type)
        .is_some_and(|spec| spec.supports_instances);
    if chosen.is_none() && has_instances {
        return Err(refuse(format!(
            "'{}' reaches many {resource_type} resources: name one with connector_resource_id",
            connector.name
        )));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::connectors::azure;
    use crate::stacks::{ComponentType, Flavors};

    fn link(
        flavor: (ComponentType, &str),
        configuration: Value,
        resource_types: &[&str],
        connector_resource_id: Option<&str>,
        requested: Option<&str>,
    ) -> DomainResult<Option<String>> {
        let flavors = Flavors::new();
        let azure = azure::with_defaults();
        let resource_types: Vec<String> = resource_types.iter().map(|t| t.to_string()).collect();
        let settings = BTreeMap::new();
        let connector = LinkedConnector {
            name: "az",
            kind: &azure,
            resource_types: &resource_types,
            resource_id: connector_resource_id,
            configuration: &settings,
        };
        resource_id(
            flavors.get(flavor.0, flavor.1).unwrap(),
            configuration.as_object().unwrap(),
            &connector,
            requested,
        )
    }

    const ALL: &[&str] = &[
        "azure-generic",
        "blob-container",
        "kubernetes-cluster",
        "docker-registry",
    ];

    #[test]
    fn the_resource_comes_from_the_request_the_configuration_or_the_connector() {
        let store = (ComponentType::ArtifactStore, "azure");
        let path = json!({"path": "az://data/runs"});
        assert_eq!(
            link(store, path.clone(), ALL, None, None).unwrap(),
            Some("az://data".into())
        );
        assert_eq!(
            link(store, path.clone(), ALL, None, Some("abfs://data")).unwrap(),
            Some("az://data".into())
        );
        let one = ["blob-container"];
        assert_eq!(
            link(store, path, &one, Some("az://data"), None).unwrap(),
            Some("az://data".into())
        );
        let generic = (ComponentType::Orchestrator, "azureml");
        let settings = json!({"subscription_id": "s", "resource_group": "g", "workspace": "w"});
        assert_eq!(link(generic, settings, ALL, None, None).unwrap(), None);
    }

    #[test]
    fn each_mismatch_says_what_does_not_fit() {
        let refusal = |result: DomainResult<Option<String>>| result.unwrap_err().to_string();
        let local = refusal(link(
            (ComponentType::Orchestrator, "local"),
            json!({}),
            ALL,
            None,
            None,
        ));
        assert!(local.contains("does not use service connectors"), "{local}");
        let dockerhub = refusal(link(
            (ComponentType::ContainerRegistry, "dockerhub"),
            json!({"uri": "docker.io/me"}),
            ALL,
            None,
            None,
        ));
        assert!(
            dockerhub.contains("needs a 'docker' connector"),
            "{dockerhub}"
        );
        let store = (ComponentType::ArtifactStore, "azure");
        let no_blob = refusal(link(
            store,
            json!({"path": "az://data"}),
            &["docker-registry"],
            None,
            None,
        ));
        assert!(
            no_blob.contains("'blob-container' resource type"),
            "{no_blob}"
        );
        let other = refusal(link(
            store,
            json!({"path": "az://data"}),
            ALL,
            None,
            Some("az://logs"),
        ));
        assert!(other.contains("not the requested 'az://logs'"), "{other}");
        let single = refusal(link(
            store,
            json!({"path": "az://data"}),
            ALL,
            Some("az://logs"),
            None,
        ));
        assert!(single.contains("reaches only"), "{single}");
        let bad = refusal(link(store, json!({"path": "s3://x"}), ALL, None, None));
        assert!(bad.contains("blob storage container"), "{bad}");
        let cluster = refusal(link(
            (ComponentType::Orchestrator, "kubernetes"),
            json!({}),
            ALL,
            None,
            None,
        ));
        assert!(cluster.contains("name one"), "{cluster}");
    }
}
