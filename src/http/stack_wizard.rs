//! `POST /service_connectors/full_stack_resources`: what a connector (stored, or described in
//! the request) reaches, offered per component flavor, with the components already using it.
//! ZenML's dashboard calls it to build a stack from one connector.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::AppState;
use super::components::{ComponentResponse, Related, Renderer};
use super::connectors::{self, ConnectorRequest, ResourcesResponse, Target};
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Query};
use super::page::MAX_PAGE_SIZE;
use super::stacks::ConnectorInfo;
use crate::domain::{EntityName, Scope};
use crate::stacks::{ComponentType, offers};
use crate::store::Arg;
use crate::store::components;
use crate::store::query::{Condition, Direction, ListQuery, Op};

/// ZenML's `ServiceConnectorResourcesInfo`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FullStackResources {
    connector_type: String,
    components_resources_info: BTreeMap<ComponentType, Vec<ResourcesInfo>>,
}

/// ZenML's `ResourcesInfo`: one flavor the connector's resources can back.
#[derive(Debug, Serialize, ToSchema)]
struct ResourcesInfo {
    flavor: String,
    flavor_display_name: String,
    required_configuration: BTreeMap<String, String>,
    use_resource_value_as_fixed_config: bool,
    accessible_by_service_connector: Vec<String>,
    connected_through_service_connector: Vec<ComponentResponse>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FullStackQuery {
    /// A stored connector; otherwise the body describes one.
    connector_uuid: Option<Uuid>,
    #[allow(dead_code)] // Read by the `Scope` extractor.
    project_name_or_id: Option<String>,
    #[allow(dead_code)]
    workspace: Option<String>,
}

/// The kinds of component a stack wizard needs, in the order it asks for them.
const NEEDED: [(ComponentType, &str); 3] = [
    (ComponentType::ArtifactStore, "artifact store"),
    (ComponentType::Orchestrator, "orchestrator"),
    (ComponentType::ContainerRegistry, "container registry"),
];

#[utoipa::path(post, path = "/api/v1/service_connectors/full_stack_resources", tag = "stacks",
    params(FullStackQuery), request_body(content = Option<ConnectorInfo>),
    responses((status = 200, body = FullStackResources), (status = 400), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = [])))]
pub async fn full_stack_resources(
    State(state): State<AppState>,
    scope: Scope,
    origin: crate::domain::audit::Origin,
    Query(query): Query<FullStackQuery>,
    body: Bytes,
) -> ApiResult<Json<FullStackResources>> {
    let info: Option<ConnectorInfo> = match body.iter().all(u8::is_ascii_whitespace) {
        true => None,
        false => serde_json::from_slice(&body)
            .map_err(|e| ApiError::Unprocessable(format!("invalid request body: {e}")))?,
    };
    let everything = Target {
        resource_type: None,
        resource_id: None,
        list_resources: true,
    };
    let found = match (query.connector_uuid, info) {
        (Some(id), None) => {
            connectors::verify_stored(&state, &scope, &origin, id, everything).await?
        }
        (None, Some(info)) => {
            let name = EntityName::parse("connector", "wizard")?;
            let request = ConnectorRequest::new(
                name,
                &info.connector_type,
                &info.auth_method,
                info.configuration,
                BTreeMap::new(),
            );
            connectors::verify_request(&state, &scope, request, everything).await?
        }
        _ => {
            return Err(ApiError::BadRequest(
                "name one service connector: either connector_uuid or a connector description \
                 in the body, not both"
                    .into(),
            ));
        }
    };
    Ok(Json(
        offer(&state, &scope, query.connector_uuid, found).await?,
    ))
}

async fn offer(
    state: &AppState,
    scope: &Scope,
    stored: Option<Uuid>,
    found: ResourcesResponse,
) -> ApiResult<FullStackResources> {
    let connector_type = found.connector_type().to_owned();
    let mut by_type: BTreeMap<ComponentType, Vec<ResourcesInfo>> =
        NEEDED.iter().map(|(t, _)| (*t, Vec::new())).collect();
    for (resource_type, ids) in found.reached() {
        for offer in offers::for_resources(&state.flavors, &connector_type, resource_type) {
            let connected = match stored {
                Some(connector_id) => using(state, scope, connector_id, &offer).await?,
                None => Vec::new(),
            };
            by_type
                .entry(offer.component_type)
                .or_default()
                .push(ResourcesInfo {
                    flavor: offer.flavor.to_owned(),
                    flavor_display_name: offer.flavor_display_name.to_owned(),
                    required_configuration: offer
                        .required_configuration
                        .iter()
                        .map(|(key, label)| ((*key).to_owned(), (*label).to_owned()))
                        .collect(),
                    use_resource_value_as_fixed_config: offer.use_resource_value_as_fixed_config,
                    accessible_by_service_connector: ids.to_vec(),
                    connected_through_service_connector: connected,
                });
        }
    }
    if let Some((_, missing)) = NEEDED
        .iter()
        .find(|(component_type, _)| by_type[component_type].is_empty())
    {
        let why = found
            .error()
            .map(|error| format!(": {error}"))
            .unwrap_or_else(|| {
                ". Check that the connector's identity holds the roles it needs".into()
            });
        return Err(ApiError::BadRequest(format!(
            "The service connector reaches no resource that an {missing} can use{why}"
        )));
    }
    Ok(FullStackResources {
        connector_type,
        components_resources_info: by_type,
    })
}

/// The components of the offered type and flavor that already use the stored connector.
async fn using(
    state: &AppState,
    scope: &Scope,
    connector_id: Uuid,
    offer: &offers::Offer,
) -> ApiResult<Vec<ComponentResponse>> {
    let field = |name: &str| {
        components::FIELDS
            .iter()
            .find(|f| f.name == name)
            .expect("components have this field")
    };
    let equals = |name: &str, value: Arg| Condition {
        field: field(name),
        op: Op::Equals,
        values: vec![value],
    };
    let query = ListQuery {
        conditions: vec![
            equals("connector_id", Arg::Uuid(connector_id)),
            equals("type", Arg::Text(offer.component_type.as_str().to_owned())),
            equals("flavor", Arg::Text(offer.flavor.to_owned())),
        ],
        any: false,
        sort: field("created"),
        direction: Direction::Asc,
        page: 1,
        size: MAX_PAGE_SIZE,
    };
    let mut conn = state.store.conn().await?;
    let filter = components::ComponentFilter::default();
    let listed = components::list(&mut conn, scope.workspace_id, &query, filter).await?;
    let items: Vec<&components::Component> = listed.items.iter().map(|v| &v.component).collect();
    let related = Related::read(&mut conn, scope.workspace_id, &items).await?;
    drop(conn);
    let renderer = Renderer {
        state,
        scope,
        now: state.clock.now(),
    };
    Ok(listed
        .items
        .into_iter()
        .map(|view| renderer.render(view, Some(&related)))
        .collect())
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(full_stack_resources))
}
