//! Azure Resource Manager calls: subscriptions, storage accounts, registries and AKS clusters.
//! Lists follow `nextLink`, but only to the same ARM endpoint.

use reqwest::StatusCode;
use serde_json::Value;

use super::outbound::{CallError, Outbound};
use crate::metrics::AzureService;

const SUBSCRIPTIONS_API: &str = "2022-12-01";
const STORAGE_API: &str = "2023-05-01";
const REGISTRY_API: &str = "2023-07-01";
const AKS_API: &str = "2024-08-01";

/// An ARM resource as the engine needs it.
#[derive(Debug, Clone)]
pub struct ArmResource {
    pub name: String,
    pub resource_group: String,
    pub properties: Value,
}

impl ArmResource {
    fn parse(value: &Value) -> Option<ArmResource> {
        let id = value["id"].as_str()?;
        // /subscriptions/{s}/resourceGroups/{rg}/providers/…; AKS may lower-case the segment.
        let resource_group = id.split('/').nth(4)?.to_owned();
        Some(ArmResource {
            name: value["name"].as_str()?.to_owned(),
            resource_group,
            properties: value["properties"].clone(),
        })
    }

    pub fn in_group(&self, group: Option<&str>) -> bool {
        group.is_none_or(|g| self.resource_group.eq_ignore_ascii_case(g))
    }
}

pub struct Subscription {
    pub id: String,
    pub display_name: String,
}

/// A failed ARM call, with Azure's error code and message when it sent them.
#[derive(Debug)]
pub struct ArmError {
    pub status: Option<StatusCode>,
    pub message: String,
}

impl ArmError {
    pub fn is_denied(&self) -> bool {
        self.status == Some(StatusCode::FORBIDDEN)
    }

    pub fn is_not_found(&self) -> bool {
        self.status == Some(StatusCode::NOT_FOUND)
    }
}

impl std::fmt::Display for ArmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<CallError> for ArmError {
    fn from(error: CallError) -> ArmError {
        match error {
            CallError::Transport(message) => ArmError {
                status: None,
                message,
            },
            CallError::Status { status, body } => {
                let parsed: Option<Value> = serde_json::from_str(&body).ok();
                let message = parsed
                    .as_ref()
                    .and_then(|v| {
                        let error = &v["error"];
                        Some(format!(
                            "{} ({}): {}",
                            status.as_u16(),
                            error["code"].as_str()?,
                            error["message"].as_str().unwrap_or("")
                        ))
                    })
                    .unwrap_or_else(|| format!("{status}: {}", truncate(&body)));
                ArmError {
                    status: Some(status),
                    message,
                }
            }
        }
    }
}

fn truncate(text: &str) -> &str {
    match text.char_indices().nth(300) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

pub struct Arm<'a> {
    pub outbound: &'a Outbound,
    /// Without a trailing slash.
    pub endpoint: &'a str,
    pub token: &'a str,
}

impl Arm<'_> {
    async fn call(&self, method: reqwest::Method, url: &str) -> Result<Value, ArmError> {
        let response = self
            .outbound
            .send(AzureService::ARM, |client| {
                let request = client.request(method.clone(), url).bearer_auth(self.token);
                if method == reqwest::Method::POST {
                    request.header(reqwest::header::CONTENT_LENGTH, 0)
                } else {
                    request
                }
            })
            .await?;
        response.json().await.map_err(|e| ArmError {
            status: None,
            message: format!("Azure Resource Manager sent an unreadable answer: {e}"),
        })
    }

    fn url(&self, path: &str, api_version: &str) -> String {
        format!("{}{path}?api-version={api_version}", self.endpoint)
    }

    async fn list(&self, path: &str, api_version: &str) -> Result<Vec<Value>, ArmError> {
        let mut url = self.url(path, api_version);
        let mut items = Vec::new();
        // A bound on pages, in case a broken endpoint links to itself.
        for _ in 0..1000 {
            let page = self.call(reqwest::Method::GET, &url).await?;
            items.extend(page["value"].as_array().cloned().unwrap_or_default());
            match page["nextLink"].as_str().filter(|l| !l.is_empty()) {
                Some(next) if next.starts_with(&format!("{}/", self.endpoint)) => {
                    url = next.to_owned()
                }
                Some(next) => {
                    return Err(ArmError {
                        status: None,
                        message: format!(
                            "Azure Resource Manager linked to a page outside its endpoint ({next}); \
                             it was not followed"
                        ),
                    });
                }
                None => return Ok(items),
            }
        }
        Ok(items)
    }

    pub async fn subscription(&self, id: &str) -> Result<Subscription, ArmError> {
        let value = self
            .call(
                reqwest::Method::GET,
                &self.url(&format!("/subscriptions/{id}"), SUBSCRIPTIONS_API),
            )
            .await?;
        Ok(subscription_of(&value).unwrap_or(Subscription {
            id: id.to_owned(),
            display_name: id.to_owned(),
        }))
    }

    pub async fn subscriptions(&self) -> Result<Vec<Subscription>, ArmError> {
        Ok(self
            .list("/subscriptions", SUBSCRIPTIONS_API)
            .await?
            .iter()
            .filter_map(subscription_of)
            .collect())
    }

    async fn resources(
        &self,
        subscription: &str,
        provider: &str,
        api: &str,
    ) -> Result<Vec<ArmResource>, ArmError> {
        Ok(self
            .list(
                &format!("/subscriptions/{subscription}/providers/{provider}"),
                api,
            )
            .await?
            .iter()
            .filter_map(ArmResource::parse)
            .collect())
    }

    async fn resource(
        &self,
        subscription: &str,
        group: &str,
        provider: &str,
        name: &str,
        api: &str,
    ) -> Result<ArmResource, ArmError> {
        let value = self
            .call(
                reqwest::Method::GET,
                &self.url(&resource_path(subscription, group, provider, name)?, api),
            )
            .await?;
        ArmResource::parse(&value).ok_or_else(|| ArmError {
            status: None,
            message: "Azure Resource Manager sent a resource without an id or name".into(),
        })
    }

    pub async fn storage_accounts(&self, subscription: &str) -> Result<Vec<ArmResource>, ArmError> {
        self.resources(
            subscription,
            "Microsoft.Storage/storageAccounts",
            STORAGE_API,
        )
        .await
    }

    pub async fn registries(&self, subscription: &str) -> Result<Vec<ArmResource>, ArmError> {
        self.resources(subscription, REGISTRIES, REGISTRY_API).await
    }

    pub async fn registry(
        &self,
        subscription: &str,
        group: &str,
        name: &str,
    ) -> Result<ArmResource, ArmError> {
        self.resource(subscription, group, REGISTRIES, name, REGISTRY_API)
            .await
    }

    /// The admin user's name and first password.
    pub async fn registry_admin_credentials(
        &self,
        subscription: &str,
        group: &str,
        name: &str,
    ) -> Result<(String, String), ArmError> {
        let path = format!(
            "{}/listCredentials",
            resource_path(subscription, group, REGISTRIES, name)?
        );
        let value = self
            .call(reqwest::Method::POST, &self.url(&path, REGISTRY_API))
            .await?;
        match (
            value["username"].as_str(),
            value["passwords"][0]["value"].as_str(),
        ) {
            (Some(user), Some(password)) => Ok((user.to_owned(), password.to_owned())),
            _ => Err(ArmError {
                status: None,
                message: "the registry's admin credentials came without a user or password".into(),
            }),
        }
    }

    pub async fn clusters(&self, subscription: &str) -> Result<Vec<ArmResource>, ArmError> {
        self.resources(subscription, CLUSTERS, AKS_API).await
    }

    pub async fn cluster(
        &self,
        subscription: &str,
        group: &str,
        name: &str,
    ) -> Result<ArmResource, ArmError> {
        self.resource(subscription, group, CLUSTERS, name, AKS_API)
            .await
    }

    /// The kubeconfig (YAML) of the cluster's admin or user credentials.
    pub async fn cluster_kubeconfig(
        &self,
        subscription: &str,
        group: &str,
        name: &str,
        admin: bool,
    ) -> Result<String, ArmError> {
        let action = if admin {
            "listClusterAdminCredential"
        } else {
            "listClusterUserCredential"
        };
        let path = format!(
            "{}/{action}",
            resource_path(subscription, group, CLUSTERS, name)?
        );
        let value = self
            .call(reqwest::Method::POST, &self.url(&path, AKS_API))
            .await?;
        use base64::Engine;
        value["kubeconfigs"][0]["value"]
            .as_str()
            .and_then(|encoded| {
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .ok()
            })
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| ArmError {
                status: None,
                message: "the cluster credentials hold no readable kubeconfig".into(),
            })
    }
}

const REGISTRIES: &str = "Microsoft.ContainerRegistry/registries";
const CLUSTERS: &str = "Microsoft.ContainerService/managedClusters";

/// The ARM path of a resource. Names come from users, so anything that could change the path
/// or query (`/`, `?`, `..`, …) is refused rather than sent.
fn resource_path(
    subscription: &str,
    group: &str,
    provider: &str,
    name: &str,
) -> Result<String, ArmError> {
    for (what, value) in [
        ("subscription", subscription),
        ("resource group", group),
        ("resource name", name),
    ] {
        let allowed =
            |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')');
        if value.is_empty() || value.chars().any(|c| !allowed(c)) || value.chars().all(|c| c == '.')
        {
            return Err(ArmError {
                status: None,
                message: format!("'{value}' is not a valid Azure {what} name"),
            });
        }
    }
    Ok(format!(
        "/subscriptions/{subscription}/resourceGroups/{group}/providers/{provider}/{name}"
    ))
}

fn subscription_of(value: &Value) -> Option<Subscription> {
    let id = value["subscriptionId"].as_str()?;
    Some(Subscription {
        id: id.to_owned(),
        display_name: value["displayName"].as_str().unwrap_or(id).to_owned(),
    })
}
