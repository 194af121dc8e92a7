//! The API's connector shapes: ZenML's request and response models, and how a stored
//! connector is rendered (with its expiry and last verification).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::connectors::expiry;
use crate::domain::secret::SecretValues;
use crate::domain::{EntityName, LongText};
use crate::http::time;
use crate::http::users::UserResponse;
use crate::store::connectors::{ConnectorView, LastVerification};

/// The connector type in a request: its name, or (as ZenML clients may send) the whole type.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ConnectorTypeRef {
    Name(String),
    Spec { connector_type: String },
}

impl ConnectorTypeRef {
    pub(super) fn name(&self) -> &str {
        match self {
            ConnectorTypeRef::Name(name)
            | ConnectorTypeRef::Spec {
                connector_type: name,
            } => name,
        }
    }
}

/// ZenML's `ServiceConnectorRequest`, plus `shared`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorRequest {
    /// Ignored: the owner is always the caller.
    #[allow(dead_code)]
    pub(super) user: Option<Uuid>,
    pub(super) name: EntityName,
    #[schema(value_type = String)]
    pub(super) connector_type: ConnectorTypeRef,
    #[serde(default)]
    pub(super) description: LongText,
    pub(super) auth_method: String,
    #[serde(default)]
    pub(super) resource_types: Vec<String>,
    pub(super) resource_id: Option<String>,
    /// Ignored: derived from the resource type.
    #[allow(dead_code)]
    pub(super) supports_instances: Option<bool>,
    #[serde(default, deserialize_with = "time::deserialize_opt")]
    #[schema(value_type = Option<super::time::Timestamp>)]
    pub(super) expires_at: Option<DateTime<Utc>>,
    pub(super) expires_skew_tolerance: Option<i64>,
    pub(super) expiration_seconds: Option<i64>,
    /// Every configuration value, secret ones included (they are split out and encrypted).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub(super) configuration: Map<String, Value>,
    /// Secret values sent apart, as ZenML clients before 0.84 do.
    #[serde(default)]
    pub(super) secrets: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub(super) labels: BTreeMap<String, String>,
    /// Visible to every member of the workspace (default: only to the owner).
    #[serde(default)]
    pub(super) shared: bool,
}

impl ConnectorRequest {
    /// A private connector of the given type and configuration, as a full-stack registration
    /// describes one.
    pub(in crate::http) fn new(
        name: EntityName,
        connector_type: &str,
        auth_method: &str,
        configuration: Map<String, Value>,
        labels: BTreeMap<String, String>,
    ) -> ConnectorRequest {
        ConnectorRequest {
            user: None,
            name,
            connector_type: ConnectorTypeRef::Name(connector_type.to_owned()),
            description: LongText::default(),
            auth_method: auth_method.to_owned(),
            resource_types: Vec::new(),
            resource_id: None,
            supports_instances: None,
            expires_at: None,
            expires_skew_tolerance: None,
            expiration_seconds: None,
            configuration,
            secrets: BTreeMap::new(),
            labels,
            shared: false,
        }
    }
}

/// ZenML's `ServiceConnectorResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorResponse {
    id: Uuid,
    name: String,
    permission_denied: bool,
    body: ConnectorBody,
    metadata: Option<ConnectorMetadata>,
    resources: ConnectorResources,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ConnectorBody {
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = super::time::Timestamp)]
    created: DateTime<Utc>,
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = super::time::Timestamp)]
    updated: DateTime<Utc>,
    user_id: Option<Uuid>,
    description: String,
    connector_type: String,
    auth_method: String,
    resource_types: Vec<String>,
    resource_id: Option<String>,
    supports_instances: bool,
    #[serde(serialize_with = "time::zenml_opt")]
    #[schema(value_type = Option<super::time::Timestamp>)]
    expires_at: Option<DateTime<Utc>>,
    expires_skew_tolerance: Option<i64>,
    workspace_id: Uuid,
    shared: bool,
    /// The credentials are past `expires_at` (less the skew tolerance).
    expired: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ConnectorMetadata {
    #[schema(value_type = Object)]
    configuration: BTreeMap<String, Value>,
    expiration_seconds: Option<i64>,
    labels: BTreeMap<String, String>,
    /// The last verification of the stored connector; null if it was never verified.
    last_verification: Option<Verification>,
}

/// The outcome of a verification of a stored connector, from the API or the dashboard.
#[derive(Debug, Serialize, ToSchema)]
pub struct Verification {
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = super::time::Timestamp)]
    pub verified_at: DateTime<Utc>,
    /// The engine's error, as the verify call answered it; null when it succeeded.
    pub error: Option<String>,
    /// How many resources of each resource type the connector reached.
    pub resources: BTreeMap<String, usize>,
}

impl Verification {
    fn of(last: &LastVerification) -> Option<Verification> {
        Some(Verification {
            verified_at: last.last_verified_at?,
            error: last.last_verification_error.clone(),
            resources: last.last_verified_resources.clone(),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ConnectorResources {
    user: Option<UserResponse>,
}

/// How much of a connector to render.
#[derive(Debug, Clone, Copy)]
pub(in crate::http) struct Detail {
    pub hydrate: bool,
    /// Secret values to merge into the configuration, when the caller may read them.
    pub expand: bool,
}

impl ConnectorResponse {
    /// Hydrated, with the given secret values: what create, update and the client endpoint
    /// answer.
    pub(super) fn full(view: ConnectorView, secret: &SecretValues, now: DateTime<Utc>) -> Self {
        let detail = Detail {
            hydrate: true,
            expand: true,
        };
        Self::render(view, Some(secret), detail, now)
    }

    pub(in crate::http) fn render(
        view: ConnectorView,
        secret: Option<&SecretValues>,
        detail: Detail,
        now: DateTime<Utc>,
    ) -> Self {
        let owner = match (&view.owner_name, view.connector.user_id) {
            (Some(name), Some(id)) => Some(UserResponse::summary(
                id,
                name.clone(),
                view.owner_is_admin.unwrap_or(false),
                view.owner_is_service_account.unwrap_or(false),
                view.owner_created.unwrap_or(view.connector.created),
                view.owner_updated.unwrap_or(view.connector.created),
            )),
            _ => None,
        };
        let row = view.connector;
        let expanded = secret.filter(|_| detail.expand);
        // As ZenML does, expanded secrets come with the metadata even when not hydrating.
        let metadata = (detail.hydrate || expanded.is_some()).then(|| {
            let mut configuration = row.configuration.clone();
            for (key, value) in expanded.iter().flat_map(|s| s.iter()) {
                configuration.insert(key.to_owned(), Value::String(value.to_owned()));
            }
            ConnectorMetadata {
                configuration,
                expiration_seconds: row.expiration_seconds,
                labels: row.labels.clone(),
                last_verification: Verification::of(&view.verification),
            }
        });
        ConnectorResponse {
            id: row.id,
            permission_denied: false,
            body: ConnectorBody {
                expired: expiry::is_expired(row.expires_at, row.expires_skew_tolerance, now),
                created: row.created,
                updated: row.updated,
                user_id: row.user_id,
                description: row.description,
                connector_type: row.connector_type,
                auth_method: row.auth_method,
                resource_types: row.resource_types,
                resource_id: row.resource_id,
                supports_instances: row.supports_instances,
                expires_at: row.expires_at,
                expires_skew_tolerance: row.expires_skew_tolerance,
                workspace_id: row.workspace_id,
                shared: row.shared,
            },
            name: row.name,
            metadata,
            resources: ConnectorResources { user: owner },
        }
    }
}
