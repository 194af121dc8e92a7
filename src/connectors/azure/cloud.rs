//! Where the server reaches Azure. Endpoints come only from here (built-in national clouds, or
//! a custom cloud from the server's configuration file), never from a connector, so a user
//! cannot point the server's credentials at a host of their choosing.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The cloud a connector uses when it names none (unless the server configures a custom one).
pub const PUBLIC_CLOUD: &str = "AzurePublicCloud";

/// One Azure cloud's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cloud {
    pub name: String,
    /// Azure AD, e.g. `https://login.microsoftonline.com`.
    pub authority_host: String,
    /// ARM, e.g. `https://management.azure.com`, without a trailing slash.
    pub resource_manager_endpoint: String,
    /// The scope of ARM tokens, e.g. `https://management.azure.com/.default`.
    pub resource_manager_scope: String,
    /// The scope of blob data-plane tokens.
    pub storage_scope: String,
}

impl Cloud {
    fn named(name: &str, authority: &str, resource_manager: &str, storage: &str) -> Cloud {
        Cloud {
            name: name.to_owned(),
            authority_host: authority.to_owned(),
            resource_manager_endpoint: resource_manager.to_owned(),
            resource_manager_scope: format!("{resource_manager}/.default"),
            storage_scope: format!("{storage}/.default"),
        }
    }
}

/// The custom cloud file given by `--azure-cloud-config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomCloudFile {
    /// The name connectors select it by (default `AzureCustomCloud`).
    name: Option<String>,
    authority_host: String,
    resource_manager_endpoint: String,
    resource_manager_scope: String,
    storage_scope: String,
    /// A PEM file of extra roots trusted for outbound Azure calls.
    ca_certificate: Option<PathBuf>,
}

/// The clouds this server may call, and which one connectors get by default.
#[derive(Debug, Clone)]
pub struct Clouds {
    clouds: Vec<Cloud>,
    default: usize,
    /// Extra trusted roots (PEM) from the custom cloud file.
    pub extra_roots_pem: Option<Vec<u8>>,
}

impl Clouds {
    /// The national clouds, plus the custom cloud in `config_file` if given, which then becomes
    /// the default; with `custom_only`, the custom cloud alone.
    pub fn load(config_file: Option<&Path>, custom_only: bool) -> Result<Clouds, String> {
        let mut clouds = vec![
            Cloud::named(
                PUBLIC_CLOUD,
                "https://login.microsoftonline.com",
                "https://management.azure.com",
                "https://storage.azure.com",
            ),
            Cloud::named(
                "AzureChinaCloud",
                "https://login.chinacloudapi.cn",
                "https://management.chinacloudapi.cn",
                "https://storage.azure.com",
            ),
            Cloud::named(
                "AzureUSGovernment",
                "https://login.microsoftonline.us",
                "https://management.usgovcloudapi.net",
                "https://storage.azure.com",
            ),
        ];
        let Some(path) = config_file else {
            if custom_only {
                return Err(
                    "--azure-custom-cloud-only needs a custom cloud (--azure-cloud-config)".into(),
                );
            }
            return Ok(Clouds {
                clouds,
                default: 0,
                extra_roots_pem: None,
            });
        };
        let describe = |e: &dyn std::fmt::Display| {
            format!("the Azure cloud configuration {}: {e}", path.display())
        };
        let text = std::fs::read_to_string(path).map_err(|e| describe(&e))?;
        let file: CustomCloudFile = serde_json::from_str(&text).map_err(|e| describe(&e))?;
        for (field, url) in [
            ("authority_host", &file.authority_host),
            ("resource_manager_endpoint", &file.resource_manager_endpoint),
        ] {
            if !url.starts_with("https://") {
                return Err(describe(&format!("{field} must be an https URL")));
            }
        }
        let extra_roots_pem = match &file.ca_certificate {
            Some(ca) => Some(std::fs::read(ca).map_err(|e| {
                describe(&format!("cannot read ca_certificate {}: {e}", ca.display()))
            })?),
            None => None,
        };
        let name = file.name.unwrap_or_else(|| "AzureCustomCloud".to_owned());
        if clouds.iter().any(|c| c.name == name) {
            return Err(describe(&format!("the name '{name}' is a built-in cloud")));
        }
        if custom_only {
            clouds.clear();
        }
        clouds.push(Cloud {
            name,
            authority_host: file.authority_host.trim_end_matches('/').to_owned(),
            resource_manager_endpoint: file
                .resource_manager_endpoint
                .trim_end_matches('/')
                .to_owned(),
            resource_manager_scope: file.resource_manager_scope,
            storage_scope: file.storage_scope,
        });
        Ok(Clouds {
            default: clouds.len() - 1,
            clouds,
            extra_roots_pem,
        })
    }

    /// The cloud named `name`, or the default one.
    pub fn get(&self, name: Option<&str>) -> Option<&Cloud> {
        match name {
            None => Some(&self.clouds[self.default]),
            Some(name) => self
                .clouds
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(name)),
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.clouds.iter().map(|c| c.name.as_str())
    }

    /// Every endpoint the server may call for Azure AD and ARM, in every cloud it offers.
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.clouds.iter().flat_map(|c| {
            [
                c.authority_host.as_str(),
                c.resource_manager_endpoint.as_str(),
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_custom_cloud_becomes_the_default_and_must_use_https() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cloud.json");
        let write = |authority: &str| {
            std::fs::write(
                &path,
                serde_json::json!({
                    "name": "Stack",
                    "authority_host": authority,
                    "resource_manager_endpoint": "https://arm.example/",
                    "resource_manager_scope": "https://arm.example/.default",
                    "storage_scope": "https://storage.azure.com/.default",
                })
                .to_string(),
            )
            .unwrap()
        };
        write("https://login.example");
        let clouds = Clouds::load(Some(&path), false).unwrap();
        assert_eq!(clouds.get(None).unwrap().name, "Stack");
        assert_eq!(
            clouds.get(None).unwrap().resource_manager_endpoint,
            "https://arm.example"
        );
        assert_eq!(
            clouds.get(Some("azurechinacloud")).unwrap().authority_host,
            "https://login.chinacloudapi.cn"
        );
        assert!(clouds.get(Some("Elsewhere")).is_none());

        write("http://login.example");
        let error = Clouds::load(Some(&path), false).unwrap_err();
        assert!(
            error.contains("authority_host must be an https URL"),
            "{error}"
        );
        assert_eq!(
            Clouds::load(None, false).unwrap().get(None).unwrap().name,
            PUBLIC_CLOUD
        );
    }

    #[test]
    fn a_custom_cloud_alone_leaves_no_national_cloud() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cloud.json");
        std::fs::write(
            &path,
            serde_json::json!({
                "name": "Stack",
                "authority_host": "https://127.0.0.1:1",
                "resource_manager_endpoint": "https://127.0.0.1:2",
                "resource_manager_scope": "https://management.azure.com/.default",
                "storage_scope": "https://storage.azure.com/.default",
            })
            .to_string(),
        )
        .unwrap();
        let clouds = Clouds::load(Some(&path), true).unwrap();
        assert_eq!(clouds.names().collect::<Vec<_>>(), ["Stack"]);
        assert!(clouds.get(Some(PUBLIC_CLOUD)).is_none());
        assert_eq!(
            clouds.endpoints().collect::<Vec<_>>(),
            ["https://127.0.0.1:1", "https://127.0.0.1:2"]
        );
        let error = Clouds::load(None, true).unwrap_err();
        assert!(error.contains("needs a custom cloud"), "{error}");
    }
}
