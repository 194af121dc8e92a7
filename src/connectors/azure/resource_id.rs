//! Canonical Azure resource ids: `az://container`, `[resource-group/]cluster`,
//! `name.azurecr.io`.

const BLOB_FORMATS: &str = "'az://{container}', 'abfs://{container}' or '{container}'";
const REGISTRY_FORMATS: &str = "'[https://]{registry}.azurecr.io' or '{registry}'";
const CLUSTER_FORMATS: &str = "'{resource-group}/{cluster}' or '{cluster}'";

/// 3 to 63 lower-case letters, digits and single hyphens, starting and ending alphanumeric.
fn is_container_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
        && !name.contains("--")
}

pub fn blob_container(id: &str) -> Result<String, String> {
    let name = match id
        .strip_prefix("az://")
        .or_else(|| id.strip_prefix("abfs://"))
    {
        // Anything after the container (a path inside it) is dropped.
        Some(rest) => rest.split('/').next().unwrap_or_default(),
        None => id,
    };
    if is_container_name(name) {
        Ok(format!("az://{name}"))
    } else {
        Err(format!(
            "invalid resource ID for an Azure blob storage container: '{id}'. Supported formats \
             are {BLOB_FORMATS}"
        ))
    }
}

fn is_alphanumeric(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

pub fn container_registry(id: &str) -> Result<String, String> {
    let without_scheme = id
        .strip_prefix("https://")
        .or_else(|| id.strip_prefix("http://"))
        .unwrap_or(id);
    let host = without_scheme.split('/').next().unwrap_or_default();
    let name = match host.strip_suffix(".azurecr.io") {
        Some(name) => name,
        None if host == id => id,
        None => "",
    };
    if is_alphanumeric(name) {
        Ok(format!("{name}.azurecr.io"))
    } else {
        Err(format!(
            "invalid resource ID for an Azure container registry: '{id}'. Supported formats are \
             {REGISTRY_FORMATS}"
        ))
    }
}

/// At least two characters of letters, digits, `_` and `-`, starting and ending alphanumeric.
fn is_cluster_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 2
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

fn is_resource_group(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.()-".contains(&b))
}

/// `[resource-group/]cluster`. A resource group in the id must match the connector's
/// configured one (ignoring case, as Azure does); a bare name takes the configured group.
pub fn aks_cluster(id: &str, configured_group: Option<&str>) -> Result<String, String> {
    let (group, name) = match id.split_once('/') {
        Some((group, name)) if is_resource_group(group) => (Some(group), name),
        Some(_) => (None, ""),
        None => (None, id),
    };
    if !is_cluster_name(name) {
        return Err(format!(
            "invalid resource ID for an AKS cluster: '{id}'. Supported formats are {CLUSTER_FORMATS}"
        ));
    }
    match (group, configured_group) {
        (Some(group), Some(configured)) if !group.eq_ignore_ascii_case(configured) => Err(format!(
            "the resource group '{group}' does not match the resource group configured in the \
             connector: '{configured}'"
        )),
        (Some(group), _) | (None, Some(group)) => Ok(format!("{group}/{name}")),
        (None, None) => Ok(name.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_containers_take_uri_or_name_forms() {
        assert_eq!(
            blob_container("az://my-container").unwrap(),
            "az://my-container"
        );
        assert_eq!(
            blob_container("abfs://data/some/path").unwrap(),
            "az://data"
        );
        assert_eq!(blob_container("logs").unwrap(), "az://logs");
        for bad in [
            "az://",
            "ab",
            "Upper",
            "a--b",
            "-ab",
            "ab-",
            "abfss://data",
            &"x".repeat(64),
        ] {
            assert!(blob_container(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn registries_keep_their_name_and_drop_the_scheme() {
        assert_eq!(
            container_registry("https://MyReg.azurecr.io").unwrap(),
            "MyReg.azurecr.io"
        );
        assert_eq!(
            container_registry("myreg.azurecr.io/path/x").unwrap(),
            "myreg.azurecr.io"
        );
        assert_eq!(container_registry("myreg").unwrap(), "myreg.azurecr.io");
        for bad in ["my-reg", "myreg.docker.io", "https://", ""] {
            assert!(container_registry(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn clusters_carry_their_resource_group() {
        assert_eq!(aks_cluster("rg-1/cluster", None).unwrap(), "rg-1/cluster");
        assert_eq!(aks_cluster("cluster", Some("rg")).unwrap(), "rg/cluster");
        assert_eq!(aks_cluster("RG/cluster", Some("rg")).unwrap(), "RG/cluster");
        assert_eq!(aks_cluster("cluster", None).unwrap(), "cluster");
        assert!(
            aks_cluster("other/cluster", Some("rg"))
                .unwrap_err()
                .contains("does not match")
        );
        for bad in ["c", "-cluster", "rg/", "r g/cluster", "a/b/c"] {
            assert!(aks_cluster(bad, None).is_err(), "{bad} was accepted");
        }
    }
}
