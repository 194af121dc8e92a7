//! Flavors of stack components and the component types, as ZenML 0.98 serves them. Flavors are
//! the same for every workspace and are held in memory, not stored.

use axum::extract::{Path, RawQuery, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Query};
use super::page::{ListRequest, ListSpec, Page, list_parameters, optional_bool};
use super::time;
use crate::domain::Caller;
use crate::stacks::{ComponentType, Flavor};
use crate::store::Arg;
use crate::store::query::{Field, FieldKind, NullOf};

/// ZenML's `FlavorResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FlavorResponse {
    id: Uuid,
    name: String,
    permission_denied: bool,
    body: FlavorBody,
    metadata: Option<FlavorMetadata>,
    #[schema(value_type = Object)]
    resources: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
struct FlavorBody {
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = super::time::Timestamp)]
    created: DateTime<Utc>,
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = super::time::Timestamp)]
    updated: DateTime<Utc>,
    /// Built-in flavors belong to nobody.
    user_id: Option<Uuid>,
    #[serde(rename = "type")]
    component_type: ComponentType,
    display_name: String,
    integration: Option<String>,
    source: String,
    logo_url: Option<String>,
    is_custom: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
struct FlavorMetadata {
    /// The JSON schema of a component's configuration.
    #[schema(value_type = Object)]
    config_schema: serde_json::Value,
    connector_type: Option<String>,
    connector_resource_type: Option<String>,
    connector_resource_id_attr: Option<String>,
    docs_url: Option<String>,
    sdk_docs_url: Option<String>,
}

/// When the flavors were taken from ZenML; the same in every server process.
fn registered() -> DateTime<Utc> {
    DateTime::from_timestamp(1_796_083_200, 0).expect("a valid time")
}

impl FlavorResponse {
    pub fn render(flavor: &Flavor, hydrate: bool) -> FlavorResponse {
        FlavorResponse {
            id: flavor.id,
            name: flavor.name.clone(),
            permission_denied: false,
            body: FlavorBody {
                created: registered(),
                updated: registered(),
                user_id: None,
                component_type: flavor.component_type,
                display_name: flavor.display_name.clone(),
                integration: flavor.integration.clone(),
                source: flavor.source.clone(),
                logo_url: flavor.logo_url.clone(),
                is_custom: flavor.is_custom,
            },
            metadata: hydrate.then(|| FlavorMetadata {
                config_schema: flavor.config_schema.clone(),
                connector_type: flavor.connector_type.clone(),
                connector_resource_type: flavor.connector_resource_type.clone(),
                connector_resource_id_attr: flavor.connector_resource_id_attr.clone(),
                docs_url: flavor.docs_url.clone(),
                sdk_docs_url: flavor.sdk_docs_url.clone(),
            }),
            resources: serde_json::json!({ "user": null }),
        }
    }
}

static FIELDS: &[Field] = &[
    Field::new("id", FieldKind::Uuid, "id"),
    Field::new("name", FieldKind::Text, "name"),
    Field::new("type", FieldKind::Text, "type"),
    Field::new("integration", FieldKind::Text, "integration"),
    Field::new("display_name", FieldKind::Text, "display_name"),
    Field::new("created", FieldKind::Time, "created"),
    Field::new("updated", FieldKind::Time, "updated"),
];

const LIST: ListSpec = ListSpec {
    fields: FIELDS,
    default_sort: "created",
    extras: &[],
};

list_parameters!(FlavorListQuery, LIST);

fn field_value(flavor: &&Flavor, field: &str) -> Arg {
    let text = |value: Option<&str>| Arg::opt_text(value);
    match field {
        "id" => Arg::Uuid(flavor.id),
        "name" => text(Some(&flavor.name)),
        "type" => text(Some(flavor.component_type.as_str())),
        "integration" => text(flavor.integration.as_deref()),
        "display_name" => text(Some(&flavor.display_name)),
        "created" | "updated" => Arg::Time(registered()),
        _ => Arg::Null(NullOf::Text),
    }
}

/// The flavors served, filtered by `name`, `type`, `integration` and the list protocol.
#[utoipa::path(get, path = "/api/v1/flavors", tag = "flavors",
    params(FlavorListQuery),
    responses((status = 200, body = Page<FlavorResponse>), (status = 401), (status = 422)),
    security(("bearer" = [])))]
pub async fn list_flavors(
    State(state): State<AppState>,
    _caller: Caller,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Page<FlavorResponse>>> {
    let request = ListRequest::parse(query.as_deref(), &LIST)?;
    let listed = request.select(state.flavors.all().iter().collect(), field_value);
    Ok(Json(request.page(listed, |flavor| {
        FlavorResponse::render(flavor, request.hydrate)
    })?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FlavorQuery {
    /// Include `metadata` (default true).
    #[serde(default, deserialize_with = "optional_bool")]
    hydrate: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/flavors/{flavor_id}", tag = "flavors",
    params(("flavor_id" = Uuid, Path), FlavorQuery),
    responses((status = 200, body = FlavorResponse), (status = 401), (status = 404)),
    security(("bearer" = [])))]
pub async fn get_flavor(
    State(state): State<AppState>,
    _caller: Caller,
    Path(flavor_id): Path<Uuid>,
    Query(query): Query<FlavorQuery>,
) -> ApiResult<Json<FlavorResponse>> {
    let flavor = state.flavors.by_id(flavor_id).ok_or_else(|| {
        ApiError::NotFound(format!(
            "Unable to get flavor with ID '{flavor_id}': No flavor with this ID found"
        ))
    })?;
    Ok(Json(FlavorResponse::render(
        flavor,
        query.hydrate.unwrap_or(true),
    )))
}

/// Every stack component type.
#[utoipa::path(get, path = "/api/v1/component-types", tag = "flavors",
    responses((status = 200, body = Vec<ComponentType>), (status = 401)),
    security(("bearer" = [])))]
pub async fn list_component_types(_caller: Caller) -> Json<Vec<ComponentType>> {
    Json(ComponentType::ALL.to_vec())
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_flavors))
        .routes(routes!(get_flavor))
        .routes(routes!(list_component_types))
}
