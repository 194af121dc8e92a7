//! Stack components in ZenML 0.98 shapes, scoped to a workspace: every member sees them, their
//! owner or a workspace admin changes or deletes them. A component's configuration is checked
//! against its flavor, and its link to a service connector against what the flavor needs.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, RawQuery, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::connectors::{self, ConnectorResponse, Detail};
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Query, ReadQuery, ScopedRead, WorkspaceQuery};
use super::flavors::FlavorResponse;
use super::openapi::workspace_form;
use super::page::{Extra, ListRequest, ListSpec, Page, list_parameters};
use super::time;
use super::users::UserResponse;
use super::{AppState, audit};
use crate::domain::audit::{Origin, Target, action};
use crate::domain::{EntityName, Scope};
use crate::stacks::link::{self, LinkedConnector};
use crate::stacks::{ComponentType, Flavor, config};
use crate::store::components::{self, Component, ComponentFilter, ComponentView};
use crate::store::connectors::{self as stored_connectors, ConnectorView};
use crate::store::query::FieldKind;
use crate::store::{self, Conn, StoreError, secrets};

/// ZenML's `ComponentRequest`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentRequest {
    /// Ignored: the owner is always the caller.
    #[allow(dead_code)]
    user: Option<Uuid>,
    name: EntityName,
    #[serde(rename = "type")]
    component_type: ComponentType,
    flavor: String,
    #[schema(value_type = Object)]
    configuration: Map<String, Value>,
    environment: Option<BTreeMap<String, String>>,
    /// Public secrets of the workspace, by name or id.
    secrets: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    labels: Option<Map<String, Value>>,
    /// The resource the component reaches through `connector`.
    connector_resource_id: Option<String>,
    /// The service connector the component reaches its resource through.
    connector: Option<Uuid>,
}

/// ZenML's `ComponentUpdate`: absent fields stay as they are, except `connector` and
/// `connector_resource_id`, which absent or null clear (ZenML's client sends the current link
/// again on every update). `configuration`, `environment` and `labels` replace the stored ones.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentUpdate {
    name: Option<EntityName>,
    #[schema(value_type = Option<Object>)]
    configuration: Option<Map<String, Value>>,
    environment: Option<BTreeMap<String, String>>,
    connector_resource_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    labels: Option<Map<String, Value>>,
    connector: Option<Uuid>,
    add_secrets: Option<Vec<String>>,
    remove_secrets: Option<Vec<String>>,
}

/// ZenML's `ComponentResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentResponse {
    id: Uuid,
    name: String,
    permission_denied: bool,
    body: ComponentBody,
    metadata: Option<ComponentMetadata>,
    resources: Option<ComponentResources>,
}

#[derive(Debug, Serialize, ToSchema)]
struct ComponentBody {
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = super::time::Timestamp)]
    created: DateTime<Utc>,
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = super::time::Timestamp)]
    updated: DateTime<Utc>,
    user_id: Option<Uuid>,
    #[serde(rename = "type")]
    component_type: ComponentType,
    flavor_name: String,
    integration: Option<String>,
    logo_url: Option<String>,
    workspace_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
struct ComponentMetadata {
    #[schema(value_type = Object)]
    configuration: Map<String, Value>,
    environment: BTreeMap<String, String>,
    secrets: Vec<Uuid>,
    #[schema(value_type = Option<Object>)]
    labels: Option<Map<String, Value>>,
    connector_resource_id: Option<String>,
    connector: Option<Linked>,
}

#[derive(Debug, Serialize, ToSchema)]
struct ComponentResources {
    user: Option<UserResponse>,
    flavor: FlavorResponse,
}

/// The connector a component is linked to: the connector, or only that one exists where the
/// caller may not see it (a private connector of someone else).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
enum Linked {
    Visible(Box<ConnectorResponse>),
    Hidden(HiddenRecord),
}

/// A record the caller may not see, as ZenML renders one: its id and nothing else.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct HiddenRecord {
    id: Uuid,
    name: String,
    permission_denied: bool,
    #[schema(value_type = Option<Object>)]
    body: Option<()>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<()>,
    #[schema(value_type = Option<Object>)]
    resources: Option<()>,
}

impl HiddenRecord {
    fn new(id: Uuid) -> HiddenRecord {
        HiddenRecord {
            id,
            name: String::new(),
            permission_denied: true,
            body: None,
            metadata: None,
            resources: None,
        }
    }
}

/// What rendering a set of components needs besides them: their connectors and secrets.
pub(super) struct Related {
    connectors: BTreeMap<Uuid, ConnectorView>,
    secrets: BTreeMap<Uuid, Vec<Uuid>>,
}

impl Related {
    /// Reads what rendering `components` with their metadata needs.
    pub(super) async fn read(
        conn: &mut Conn,
        workspace_id: Uuid,
        components: &[&Component],
    ) -> ApiResult<Related> {
        let connector_ids: BTreeSet<Uuid> =
            components.iter().filter_map(|c| c.connector_id).collect();
        let connector_ids: Vec<Uuid> = connector_ids.into_iter().collect();
        let connectors = stored_connectors::get_many(conn, workspace_id, &connector_ids)
            .await?
            .into_iter()
            .map(|view| (view.connector.id, view))
            .collect();
        let ids: Vec<Uuid> = components.iter().map(|c| c.id).collect();
        let secrets = components::secrets_of(conn, &ids).await?;
        Ok(Related {
            connectors,
            secrets,
        })
    }
}

/// Renders stored components for one caller.
pub(super) struct Renderer<'a> {
    pub state: &'a AppState,
    pub scope: &'a Scope,
    pub now: DateTime<Utc>,
}

impl Renderer<'_> {
    /// With `related`, the component's metadata; without it, its body and resources only.
    pub(super) fn render(
        &self,
        view: ComponentView,
        related: Option<&Related>,
    ) -> ComponentResponse {
        let component = view.component;
        let flavor = self
            .state
            .flavors
            .get(component.component_type, &component.flavor);
        let metadata = related.map(|related| {
            let connector = component.connector_id.map(|id| {
                match related
                    .connectors
                    .get(&id)
                    .filter(|c| self.scope.can_see(c.connector.user_id, !c.connector.shared))
                {
                    Some(view) => {
                        let detail = Detail {
                            hydrate: false,
                            expand: false,
                        };
                        Linked::Visible(Box::new(ConnectorResponse::render(
                            view.clone(),
                            None,
                            detail,
                            self.now,
                        )))
                    }
                    None => Linked::Hidden(HiddenRecord::new(id)),
                }
            });
            ComponentMetadata {
                configuration: component.configuration,
                environment: component.environment,
                secrets: related
                    .secrets
                    .get(&component.id)
                    .cloned()
                    .unwrap_or_default(),
                labels: component.labels,
                connector_resource_id: component.connector_resource_id,
                connector,
            }
        });
        ComponentResponse {
            id: component.id,
            name: component.name,
            permission_denied: false,
            body: ComponentBody {
                created: component.created,
                updated: component.updated,
                user_id: component.user_id,
                component_type: component.component_type,
                flavor_name: component.flavor,
                integration: flavor.and_then(|f| f.integration.clone()),
                logo_url: flavor.and_then(|f| f.logo_url.clone()),
                workspace_id: component.workspace_id,
            },
            metadata,
            // A flavor this server no longer serves has nothing to show.
            resources: flavor.map(|flavor| ComponentResources {
                user: view.owner.as_ref().map(UserResponse::owner),
                flavor: FlavorResponse::render(flavor, false),
            }),
        }
    }
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!(
        "Unable to get stack component with ID '{id}': No stack component with this ID found"
    ))
}

fn flavor<'a>(
    state: &'a AppState,
    component_type: ComponentType,
    name: &str,
) -> ApiResult<&'a Flavor> {
    state.flavors.get(component_type, name).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "Flavor '{name}' not found for component type '{component_type}'."
        ))
    })
}

/// Checks a configuration against its flavor.
pub(super) fn check_configuration(
    flavor: &Flavor,
    configuration: &Map<String, Value>,
) -> ApiResult<()> {
    let what = format!("the {} {}", flavor.name, flavor.component_type);
    Ok(config::check(&flavor.config_schema, configuration, &what)?)
}

/// Links `component` to `connector` (and one of its resources), or unlinks it when there is
/// none, checked against the connector as it is now within the write transaction (which holds
/// the connector until it ends). A link the component has already is kept even where the
/// connector is hidden from the caller: someone may change a component that its owner linked
/// to their private connector.
async fn link(
    state: &AppState,
    scope: &Scope,
    tx: &mut Conn,
    flavor: &Flavor,
    component: &mut Component,
    (connector, resource_id): (Option<Uuid>, Option<String>),
) -> ApiResult<()> {
    let linked_before = component.connector_id;
    component.connector_id = connector;
    component.connector_resource_id = None;
    let Some(connector_id) = connector else {
        return match resource_id {
            Some(_) => Err(ApiError::BadRequest(
                "connector_resource_id names a resource of a connector: send the connector too"
                    .into(),
            )),
            None => Ok(()),
        };
    };
    let found = stored_connectors::get_for_link(tx, scope.workspace_id, connector_id).await?;
    let view = match linked_before == Some(connector_id) {
        true => found.ok_or_else(|| connector_gone(connector_id))?,
        false => connectors::visible_to(scope, connector_id, found)?,
    };
    component.connector_resource_id = check_link_to(
        state,
        flavor,
        &component.configuration,
        &view.connector,
        resource_id.as_deref(),
    )?;
    Ok(())
}

/// The canonical id of the resource a component of `flavor` reaches through the connector
/// `row`: see [`link::resource_id`].
pub(super) fn check_link_to(
    state: &AppState,
    flavor: &Flavor,
    configuration: &Map<String, Value>,
    row: &stored_connectors::ConnectorRow,
    resource_id: Option<&str>,
) -> ApiResult<Option<String>> {
    let kind = connectors::connector_type(state, &row.connector_type)?;
    let connector = LinkedConnector {
        name: &row.name,
        kind,
        resource_types: &row.resource_types,
        resource_id: row.resource_id.as_deref(),
        configuration: &row.configuration,
    };
    Ok(link::resource_id(
        flavor,
        configuration,
        &connector,
        resource_id,
    )?)
}

fn connector_gone(id: Uuid) -> ApiError {
    ApiError::NotFound(format!(
        "Unable to get service connector with ID '{id}': No service connector with this ID found"
    ))
}

/// The ids of public secrets of the workspace, named by name or id.
pub(super) async fn public_secrets(
    conn: &mut Conn,
    scope: &Scope,
    references: &[String],
) -> ApiResult<Vec<Uuid>> {
    let mut ids = Vec::with_capacity(references.len());
    for reference in references {
        let secret = secrets::by_name_or_id(conn, scope.workspace_id, scope.user_id(), reference)
            .await?
            .ok_or_else(|| ApiError::not_found("secret", reference))?;
        if secret.private {
            return Err(ApiError::BadRequest(format!(
                "the secret '{}' is private: components and stacks use only public secrets, \
                 which every member who runs them may read",
                secret.name
            )));
        }
        if !ids.contains(&secret.id) {
            ids.push(secret.id);
        }
    }
    Ok(ids)
}

fn name_taken(component_type: ComponentType, name: &str) -> impl FnOnce(StoreError) -> ApiError {
    let message = format!(
        "Unable to register '{component_type}' component with name '{name}': Found an existing \
         component with the same name and type."
    );
    move |err| match err {
        err if err.violates(components::NAME_UNIQUE) => ApiError::Conflict(message),
        other => other.into(),
    }
}

/// Registers a component, linked to a connector if the request names one.
#[utoipa::path(post, path = "/api/v1/components", tag = "stack components",
    params(WorkspaceQuery), request_body = ComponentRequest,
    responses((status = 200, body = ComponentResponse), (status = 400), (status = 401), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = [])))]
pub async fn create_component(
    State(state): State<AppState>,
    scope: Scope,
    origin: Origin,
    Query(_workspace): Query<WorkspaceQuery>,
    Json(request): Json<ComponentRequest>,
) -> ApiResult<Json<ComponentResponse>> {
    let flavor = flavor(&state, request.component_type, &request.flavor)?;
    check_configuration(flavor, &request.configuration)?;
    let now = state.clock.now();
    let mut component = Component {
        id: Uuid::new_v4(),
        workspace_id: scope.workspace_id,
        user_id: Some(scope.user_id()),
        name: request.name.into_inner(),
        component_type: request.component_type,
        flavor: flavor.name.clone(),
        configuration: request.configuration,
        environment: request.environment.unwrap_or_default(),
        labels: request.labels,
        connector_id: None,
        connector_resource_id: None,
        is_default: false,
        created: now,
        updated: now,
    };
    let mut tx = state.store.begin().await?;
    link(
        &state,
        &scope,
        &mut tx,
        flavor,
        &mut component,
        (request.connector, request.connector_resource_id),
    )
    .await?;
    let secret_ids = public_secrets(&mut tx, &scope, &request.secrets.unwrap_or_default()).await?;
    components::insert(&mut tx, &component)
        .await
        .map_err(name_taken(component.component_type, &component.name))?;
    components::set_secrets(&mut tx, component.id, &secret_ids).await?;
    let recorded = (&origin, action::COMPONENT_CREATED);
    written(&state, &scope, tx, component.id, recorded).await
}

/// A component as just written in `tx`, read back with its owner, once `tx` commits.
async fn written(
    state: &AppState,
    scope: &Scope,
    mut tx: Conn,
    id: Uuid,
    (origin, action): (&Origin, &str),
) -> ApiResult<Json<ComponentResponse>> {
    let view = components::get(&mut tx, scope.workspace_id, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let related = Related::read(&mut tx, scope.workspace_id, &[&view.component]).await?;
    let target = Target::new("component", id, &view.component.name);
    let record = audit::in_scope(state, scope, origin, action, target);
    store::audit::append(&mut tx, &record).await?;
    tx.commit().await?;
    let renderer = Renderer {
        state,
        scope,
        now: state.clock.now(),
    };
    Ok(Json(renderer.render(view, Some(&related))))
}

const LIST: ListSpec = ListSpec {
    fields: components::FIELDS,
    default_sort: "created",
    extras: &[
        Extra::new(
            "stack_id",
            FieldKind::Uuid,
            "Only components of this stack.",
        ),
        Extra::new(
            "scope_type",
            FieldKind::Text,
            "Only components of this type (ZenML's scope).",
        ),
    ],
};

list_parameters!(ComponentListQuery, LIST);

/// The workspace's components, filtered by `name`, `type`, `flavor`, `connector_id`,
/// `stack_id` and `user` with the list protocol.
#[utoipa::path(get, path = "/api/v1/components", tag = "stack components",
    params(ComponentListQuery),
    responses((status = 200, body = Page<ComponentResponse>), (status = 401), (status = 404), (status = 422)),
    security(("bearer" = [])))]
pub async fn list_components(
    State(state): State<AppState>,
    ScopedRead { scope, mut conn }: ScopedRead,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Page<ComponentResponse>>> {
    let request = ListRequest::parse(query.as_deref(), &LIST)?;
    let stack_id = match request.extra("stack_id") {
        Some(id) => Some(parse_id("stack_id", id)?),
        None => None,
    };
    // ZenML's scope to one type, besides any `type` filter.
    let component_type = match request.extra("scope_type") {
        Some(name) => Some(ComponentType::parse(name).ok_or_else(|| {
            ApiError::Unprocessable(format!("'{name}' is not a stack component type"))
        })?),
        None => None,
    };
    let filter = ComponentFilter {
        stack_id,
        component_type,
    };
    let listed = components::list(&mut conn, scope.workspace_id, &request.query, filter).await?;
    let related = match request.hydrate {
        true => {
            let items: Vec<&Component> = listed.items.iter().map(|v| &v.component).collect();
            Some(Related::read(&mut conn, scope.workspace_id, &items).await?)
        }
        false => None,
    };
    drop(conn);
    let renderer = Renderer {
        state: &state,
        scope: &scope,
        now: state.clock.now(),
    };
    Ok(Json(request.page(listed, |view| {
        renderer.render(view, related.as_ref())
    })?))
}

pub(super) fn parse_id(name: &str, value: &str) -> ApiResult<Uuid> {
    let value = value.strip_prefix("equals:").unwrap_or(value);
    Uuid::parse_str(value).map_err(|_| {
        ApiError::Unprocessable(format!("filter '{name}' expects a UUID, not '{value}'"))
    })
}

/// The component's id in the path (by name, so the workspace-scoped routes work too).
#[derive(Debug, Deserialize)]
pub struct ComponentPath {
    component_id: Uuid,
}

#[utoipa::path(get, path = "/api/v1/components/{component_id}", tag = "stack components",
    params(("component_id" = Uuid, Path), ReadQuery),
    responses((status = 200, body = ComponentResponse), (status = 401), (status = 404)),
    security(("bearer" = [])))]
pub async fn get_component(
    State(state): State<AppState>,
    ScopedRead { scope, mut conn }: ScopedRead,
    Path(ComponentPath { component_id }): Path<ComponentPath>,
    Query(query): Query<ReadQuery>,
) -> ApiResult<Json<ComponentResponse>> {
    let view = components::get(&mut conn, scope.workspace_id, component_id)
        .await?
        .ok_or_else(|| not_found(component_id))?;
    let related = match query.hydrate.unwrap_or(true) {
        true => Some(Related::read(&mut conn, scope.workspace_id, &[&view.component]).await?),
        false => None,
    };
    drop(conn);
    let renderer = Renderer {
        state: &state,
        scope: &scope,
        now: state.clock.now(),
    };
    Ok(Json(renderer.render(view, related.as_ref())))
}

/// Changes a component. Its owner or a workspace admin may; the default components stay as
/// they are.
#[utoipa::path(put, path = "/api/v1/components/{component_id}", tag = "stack components",
    params(("component_id" = Uuid, Path), WorkspaceQuery), request_body = ComponentUpdate,
    responses((status = 200, body = ComponentResponse), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = [])))]
pub async fn update_component(
    State(state): State<AppState>,
    scope: Scope,
    origin: Origin,
    Path(ComponentPath { component_id }): Path<ComponentPath>,
    Query(_workspace): Query<WorkspaceQuery>,
    Json(update): Json<ComponentUpdate>,
) -> ApiResult<Json<ComponentResponse>> {
    let mut tx = state.store.begin().await?;
    let view = components::get(&mut tx, scope.workspace_id, component_id)
        .await?
        .ok_or_else(|| not_found(component_id))?;
    let mut component = view.component;
    scope.require_owner_or_admin(component.user_id, "stack component")?;
    if component.is_default {
        return Err(ApiError::Forbidden(format!(
            "The default {} cannot be modified.",
            component.component_type
        )));
    }
    let flavor = flavor(&state, component.component_type, &component.flavor)?;
    if let Some(configuration) = update.configuration {
        check_configuration(flavor, &configuration)?;
        component.configuration = configuration;
    }
    if let Some(name) = update.name {
        component.name = name.into_inner();
    }
    if let Some(environment) = update.environment {
        component.environment = environment;
    }
    if let Some(labels) = update.labels {
        component.labels = Some(labels);
    }
    link(
        &state,
        &scope,
        &mut tx,
        flavor,
        &mut component,
        (update.connector, update.connector_resource_id),
    )
    .await?;
    let add = public_secrets(&mut tx, &scope, &update.add_secrets.unwrap_or_default()).await?;
    let remove =
        referenced_secrets(&mut tx, &scope, &update.remove_secrets.unwrap_or_default()).await?;
    let now = state.clock.now();
    let read_updated = crate::store::touch(&mut component.updated, now);
    components::update(&mut tx, &component, read_updated)
        .await
        .map_err(name_taken(component.component_type, &component.name))?;
    components::change_secrets(&mut tx, component.id, &add, &remove).await?;
    let recorded = (&origin, action::COMPONENT_UPDATED);
    written(&state, &scope, tx, component.id, recorded).await
}

/// The ids of secrets named to be unlinked; an unknown one is no error, since it is not linked.
pub(super) async fn referenced_secrets(
    conn: &mut Conn,
    scope: &Scope,
    references: &[String],
) -> ApiResult<Vec<Uuid>> {
    let mut ids = Vec::with_capacity(references.len());
    for reference in references {
        if let Ok(id) = Uuid::parse_str(reference) {
            ids.push(id);
        } else if let Some(secret) =
            secrets::by_name_or_id(conn, scope.workspace_id, scope.user_id(), reference).await?
        {
            ids.push(secret.id);
        }
    }
    Ok(ids)
}

/// Deletes a component that no stack holds. Its owner or a workspace admin may; the default
/// components stay.
#[utoipa::path(delete, path = "/api/v1/components/{component_id}", tag = "stack components",
    params(("component_id" = Uuid, Path), WorkspaceQuery),
    responses((status = 200), (status = 401), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
pub async fn delete_component(
    State(state): State<AppState>,
    scope: Scope,
    origin: Origin,
    Path(ComponentPath { component_id }): Path<ComponentPath>,
    Query(_workspace): Query<WorkspaceQuery>,
) -> ApiResult<Json<()>> {
    let mut tx = state.store.begin().await?;
    let component = components::get(&mut tx, scope.workspace_id, component_id)
        .await?
        .ok_or_else(|| not_found(component_id))?
        .component;
    scope.require_owner_or_admin(component.user_id, "stack component")?;
    if component.is_default {
        return Err(ApiError::Forbidden(format!(
            "The default {} cannot be deleted.",
            component.component_type
        )));
    }
    components::delete(&mut tx, &component)
        .await
        .map_err(|err| match err {
            StoreError::Referenced(stacks) => ApiError::Forbidden(format!(
                "Stack Component `{}` of type `{}` cannot be deleted as it is part of {stacks} \
                 stacks. Before deleting this stack component, make sure to remove it from all \
                 stacks.",
                component.name, component.component_type
            )),
            other => other.into(),
        })?;
    let target = Target::new("component", component.id, &component.name);
    let record = audit::in_scope(&state, &scope, &origin, action::COMPONENT_DELETED, target);
    store::audit::append(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(Json(()))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_component, list_components))
        .routes(routes!(get_component, update_component, delete_component))
}

/// The same operations under `/api/v1/workspaces/{workspace}/…`.
pub fn workspace_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(workspace_form(routes!(create_component, list_components)))
        .routes(workspace_form(routes!(
            get_component,
            update_component,
            delete_component
        )))
}
