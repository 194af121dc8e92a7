//! What the engine takes and gives: a connector with its secrets, the resources it reaches
//! (ZenML's `ServiceConnectorResourcesModel`), and short-lived client credentials.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::ConnectorType;
use crate::domain::secret::SecretValues;

/// A stored or proposed connector, as the engine sees it.
pub struct Connector {
    /// Nil for a configuration that is not stored.
    pub id: Uuid,
    pub name: String,
    pub auth_method: String,
    pub resource_types: Vec<String>,
    pub resource_id: Option<String>,
    pub configuration: BTreeMap<String, Value>,
    pub secrets: SecretValues,
    pub expires_at: Option<DateTime<Utc>>,
    /// `expires_at` less the skew tolerance: no credential handed out may outlive it.
    pub usable_until: Option<DateTime<Utc>>,
    pub expired: bool,
    /// How long the credentials handed out should live, where the connector says.
    pub expiration_seconds: Option<i64>,
}

impl Connector {
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.configuration
            .get(key)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn secret(&self, key: &str) -> Option<&str> {
        self.secrets.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// What verifying a connector found, per resource type.
#[derive(Debug)]
pub struct Resources {
    pub resources: Vec<TypedResources>,
    /// A failure that concerns every resource type.
    pub error: Option<String>,
}

#[derive(Debug)]
pub struct TypedResources {
    pub resource_type: String,
    pub resource_ids: Option<Vec<String>>,
    pub error: Option<String>,
}

impl Resources {
    /// The failure of the whole verification, else the first resource type's.
    pub fn first_error(&self) -> Option<&str> {
        self.error
            .as_deref()
            .or_else(|| self.resources.iter().find_map(|r| r.error.as_deref()))
    }

    /// How many resources of each type were reached.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.resources
            .iter()
            .map(|r| {
                let count = r.resource_ids.as_ref().map_or(0, Vec::len);
                (r.resource_type.clone(), count)
            })
            .collect()
    }

    pub fn unlisted(types: &[String]) -> Resources {
        Resources {
            resources: types
                .iter()
                .map(|t| TypedResources {
                    resource_type: t.clone(),
                    resource_ids: None,
                    error: None,
                })
                .collect(),
            error: None,
        }
    }

    /// A failure of the whole connector: every entry carries it and lists nothing.
    pub fn fail(&mut self, error: String) {
        for entry in &mut self.resources {
            entry.resource_ids = None;
            entry.error = Some(error.clone());
        }
        self.error = Some(error);
    }
}

/// Credentials for one resource, in the shape of another connector type (ZenML's
/// sub-connectors): `azure` `access-token`, `kubernetes` `token`, `docker` `password`.
pub struct ClientConnector {
    pub connector_type: &'static str,
    pub auth_method: &'static str,
    pub resource_type: String,
    pub resource_id: String,
    pub configuration: BTreeMap<String, Value>,
    pub secrets: BTreeMap<String, Zeroizing<String>>,
    /// When what is handed out stops working, if known.
    pub expires_at: Option<DateTime<Utc>>,
}

impl ClientConnector {
    /// The connector itself, for types whose stored credentials are all there is to hand out
    /// (so only those who may read its secrets receive it).
    pub fn itself(
        connector: &Connector,
        connector_type: &'static str,
        auth_method: &'static str,
        resource_type: &str,
        resource_id: String,
    ) -> ClientConnector {
        ClientConnector {
            connector_type,
            auth_method,
            resource_type: resource_type.to_owned(),
            resource_id,
            configuration: connector.configuration.clone(),
            secrets: (connector.secrets.iter())
                .map(|(k, v)| (k.to_owned(), Zeroizing::new(v.to_owned())))
                .collect(),
            expires_at: None,
        }
    }
}

/// Why a request to the engine could not be served.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request does not fit the connector (resource type, resource id): a 400.
    #[error("{0}")]
    Invalid(String),
    /// The cloud refused or failed: ZenML's `AuthorizationException`.
    #[error("{0}")]
    Cloud(String),
}

/// The connector's credentials are past their expiry (less the skew tolerance).
pub const EXPIRED: &str = "the connector's authentication credentials have expired.";

/// One connector's credentials in use against its service, opened by its type. Each call's
/// error is the service's refusal or failure in words for the user.
#[async_trait::async_trait]
pub trait Session: Send + Sync {
    /// Proves that the credentials work, before anything is listed.
    async fn authenticate(&self) -> Result<(), String>;

    /// The canonical ids of the resources of `resource_type` the connector reaches, or only
    /// `id` (checked to be reachable) when given. An empty list is not an error here.
    async fn list(&self, resource_type: &str, id: Option<&str>) -> Result<Vec<String>, String>;

    /// Credentials for one resource, as a client connector.
    async fn client(&self, resource_type: &str, id: &str) -> Result<ClientConnector, String>;
}

/// What a request is about: the resource types to look at, and one resource if named.
struct Target {
    types: Vec<String>,
    resource_id: Option<String>,
}

fn authorization_failure(connector: &Connector, error: String) -> String {
    format!(
        "connector '{}' authorization failure: {error}",
        connector.name
    )
}

fn target(
    kind: &dyn ConnectorType,
    connector: &Connector,
    resource_type: Option<&str>,
    resource_id: Option<&str>,
) -> Result<Target, EngineError> {
    let resource_type = match (
        resource_type,
        resource_id,
        connector.resource_types.as_slice(),
    ) {
        (Some(wanted), _, configured) if !configured.iter().any(|t| t == wanted) => {
            return Err(EngineError::Invalid(format!(
                "the connector is configured for the resource types {configured:?}, but a \
                 different resource type was requested: '{wanted}'."
            )));
        }
        (Some(wanted), _, _) => Some(wanted.to_owned()),
        (None, Some(_), [only]) => Some(only.clone()),
        (None, Some(_), _) => {
            return Err(EngineError::Invalid(
                "the connector reaches multiple resource types, and only a resource name was \
                 specified: a resource type must be specified too."
                    .into(),
            ));
        }
        (None, None, [only]) => Some(only.clone()),
        (None, None, _) => None,
    };
    let resource_id = match (&resource_type, resource_id) {
        (Some(resource_type), Some(id)) => {
            let canonical = kind
                .canonical_resource_id(resource_type, id, &connector.configuration)
                .map_err(EngineError::Invalid)?;
            if let Some(configured) = &connector.resource_id
                && *configured != canonical
            {
                return Err(EngineError::Invalid(format!(
                    "the connector is configured to access a single {resource_type} resource \
                     with a resource name of '{configured}', but a different resource name was \
                     requested: '{canonical}'."
                )));
            }
            Some(canonical)
        }
        (Some(_), None) => connector.resource_id.clone(),
        (None, _) => None,
    };
    Ok(Target {
        types: resource_type.map_or_else(|| connector.resource_types.clone(), |t| vec![t]),
        resource_id,
    })
}

/// ZenML's verify: authenticate, then list each resource type's resources (or check the
/// one named). Cloud failures are reported in the result, not as errors.
pub async fn verify(
    kind: &dyn ConnectorType,
    connector: &Connector,
    resource_type: Option<&str>,
    resource_id: Option<&str>,
    list_resources: bool,
    now: DateTime<Utc>,
) -> Result<Resources, EngineError> {
    let target = target(kind, connector, resource_type, resource_id)?;
    let mut result = Resources::unlisted(&target.types);
    if connector.expired {
        result.fail(EXPIRED.into());
        return Ok(result);
    }
    let session = match kind.session(connector, now) {
        Ok(session) => session,
        Err(error) => {
            result.fail(authorization_failure(connector, error));
            return Ok(result);
        }
    };
    if let Err(error) = session.authenticate().await {
        result.fail(authorization_failure(connector, error));
        return Ok(result);
    }
    if !list_resources && target.resource_id.is_none() {
        return Ok(result);
    }
    let listings = futures::future::join_all(
        target
            .types
            .iter()
            .map(|t| session.list(t, target.resource_id.as_deref())),
    )
    .await;
    for (entry, listing) in result.resources.iter_mut().zip(listings) {
        match listing {
            Ok(ids) if ids.is_empty() => {
                let type_name = kind
                    .spec()
                    .resource_type(&entry.resource_type)
                    .map_or(entry.resource_type.as_str(), |t| t.name.as_str());
                entry.error = Some(nothing_listed(&connector.name, type_name));
            }
            Ok(ids) => entry.resource_ids = Some(ids),
            Err(error) => entry.error = Some(authorization_failure(connector, error)),
        }
    }
    if let [only] = result.resources.as_slice() {
        result.error = only.error.clone();
    }
    Ok(result)
}

/// Short-lived credentials for one resource of the connector.
pub async fn client(
    kind: &dyn ConnectorType,
    connector: &Connector,
    resource_type: Option<&str>,
    resource_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<ClientConnector, EngineError> {
    let target = target(kind, connector, resource_type, resource_id)?;
    let [resource_type] = target.types.as_slice() else {
        return Err(EngineError::Invalid(
            "the connector reaches multiple resource types: a resource type must be specified."
                .into(),
        ));
    };
    let spec = kind.spec().resource_type(resource_type);
    if connector.expired {
        return Err(EngineError::Cloud(EXPIRED.into()));
    }
    let session = kind
        .session(connector, now)
        .map_err(|e| EngineError::Cloud(authorization_failure(connector, e)))?;
    let resource_id = match target.resource_id {
        Some(id) => id,
        None if spec.is_some_and(|s| s.supports_instances) => {
            return Err(EngineError::Invalid(format!(
                "the connector reaches multiple {} resources: a resource name must be specified.",
                spec.map_or(resource_type.as_str(), |s| s.name.as_str())
            )));
        }
        // A single-instance type's one resource.
        None => session
            .list(resource_type, None)
            .await
            .map_err(|e| EngineError::Cloud(authorization_failure(connector, e)))?
            .into_iter()
            .next()
            .unwrap_or_default(),
    };
    let mut client = session
        .client(resource_type, &resource_id)
        .await
        .map_err(|e| EngineError::Cloud(authorization_failure(connector, e)))?;
    // Where the issuer fixes the lifetime (Azure AD, ACR), clients are told to stop using
    // the credentials when the connector expires.
    client.expires_at = match (client.expires_at, connector.usable_until) {
        (Some(issued), Some(until)) => Some(issued.min(until)),
        (issued, until) => issued.or(until),
    };
    Ok(client)
}

/// The resource types' error when a listing comes back empty.
fn nothing_listed(connector: &str, type_name: &str) -> String {
    format!(
        "connector '{connector}' didn't list any {type_name} resources. This is likely caused by \
         the connector credentials not being valid or not having sufficient permissions to list or \
         access resources of this type."
    )
}

/// An error and its causes in one line: reqwest and kube wrap the reason a call failed (a
/// refused host, a certificate) several levels down.
pub fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
