//! Stacks in ZenML 0.98 shapes, scoped to a workspace: every member sees them, their owner or
//! a workspace admin changes or deletes them. A stack is made of existing components, or (as
//! `zenml stack register -p azure` sends it) of components and connectors described in the
//! request, all created in one transaction: a failure at any step creates nothing. Every
//! workspace has a default stack that cannot be changed.

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::components::{
    self, ComponentResponse, Renderer, check_configuration, check_link_to, public_secrets,
    referenced_secrets,
};
use super::connectors::{self, ConnectorRequest, NewConnector};
use super::error::{ApiError, ApiResult, name_taken};
use super::extract::{Json, Query, ReadQuery, ScopedRead, WorkspaceQuery};
use super::openapi::workspace_form;
use super::page::{Extra, ListRequest, ListSpec, Page, list_parameters};
use super::time;
use super::users::UserResponse;
use super::{AppState, audit};
use crate::domain::audit::{Origin, Target, action};
use crate::domain::{EntityName, LongText, Scope};
use crate::stacks::{ComponentType, check_composition};
use crate::store::components::{self as stored_components, Component, ComponentView};
use crate::store::connectors::{self as stored_connectors, ConnectorRow};
use crate::store::query::FieldKind;
use crate::store::stacks::{self, Stack, StackView};
use crate::store::{self, Conn, StoreResult};

/// A component of a new stack: an existing one, or one to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ComponentEntry {
    Existing(Uuid),
    New(ComponentInfo),
}

/// ZenML's `ComponentInfo`: a component to create with the stack, named after it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentInfo {
    flavor: String,
    /// The position in `service_connectors` of the connector the component uses.
    service_connector_index: Option<usize>,
    service_connector_resource_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    configuration: Map<String, Value>,
}

/// A connector of a new stack: an existing one, or one to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ConnectorEntry {
    Existing(Uuid),
    New(ConnectorInfo),
}

/// ZenML's `ServiceConnectorInfo`: a connector to create with the stack, named after it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorInfo {
    #[serde(rename = "type")]
    pub connector_type: String,
    pub auth_method: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub configuration: Map<String, Value>,
}

/// ZenML's `StackRequest`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StackRequest {
    /// Ignored: the owner is always the caller.
    #[allow(dead_code)]
    user: Option<Uuid>,
    name: EntityName,
    #[serde(default)]
    description: LongText,
    stack_spec_path: Option<String>,
    components: BTreeMap<ComponentType, Vec<ComponentEntry>>,
    environment: Option<BTreeMap<String, String>>,
    /// Public secrets of the workspace, by name or id.
    secrets: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    labels: Option<Map<String, Value>>,
    #[serde(default)]
    service_connectors: Vec<ConnectorEntry>,
}

/// ZenML's `StackUpdate`: absent fields stay as they are; `components`, `environment` and
/// `labels` replace the stored ones.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StackUpdate {
    name: Option<EntityName>,
    description: Option<LongText>,
    stack_spec_path: Option<String>,
    components: Option<BTreeMap<ComponentType, Vec<Uuid>>>,
    environment: Option<BTreeMap<String, String>>,
    #[schema(value_type = Option<Object>)]
    labels: Option<Map<String, Value>>,
    add_secrets: Option<Vec<String>>,
    remove_secrets: Option<Vec<String>>,
}

/// ZenML's `StackResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StackResponse {
    id: Uuid,
    name: String,
    permission_denied: bool,
    body: StackBody,
    metadata: Option<StackMetadata>,
    resources: StackResources,
}

#[derive(Debug, Serialize, ToSchema)]
struct StackBody {
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = super::time::Timestamp)]
    created: DateTime<Utc>,
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = super::time::Timestamp)]
    updated: DateTime<Utc>,
    user_id: Option<Uuid>,
    workspace_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
struct StackMetadata {
    /// The components by type, each type's default first.
    components: BTreeMap<ComponentType, Vec<ComponentResponse>>,
    description: String,
    stack_spec_path: Option<String>,
    environment: BTreeMap<String, String>,
    secrets: Vec<Uuid>,
    #[schema(value_type = Option<Object>)]
    labels: Option<Map<String, Value>>,
    workspace_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
struct StackResources {
    user: Option<UserResponse>,
}

/// What rendering stacks with their metadata needs besides them.
struct StackRelated {
    members: BTreeMap<Uuid, Vec<ComponentView>>,
    secrets: BTreeMap<Uuid, Vec<Uuid>>,
}

impl StackRelated {
    async fn read(conn: &mut Conn, stacks: &[Uuid]) -> StoreResult<StackRelated> {
        Ok(StackRelated {
            members: stacks::members(conn, stacks).await?,
            secrets: stacks::secrets_of(conn, stacks).await?,
        })
    }
}

fn render(
    renderer: &Renderer,
    view: StackView,
    related: Option<&mut StackRelated>,
) -> StackResponse {
    let stack = view.stack;
    let metadata = related.map(|related| {
        let mut components: BTreeMap<ComponentType, Vec<ComponentResponse>> = BTreeMap::new();
        for member in related.members.remove(&stack.id).unwrap_or_default() {
            components
                .entry(member.component.component_type)
                .or_default()
                .push(renderer.render(member, None));
        }
        StackMetadata {
            components,
            description: stack.description,
            stack_spec_path: stack.stack_spec_path,
            environment: stack.environment,
            secrets: related.secrets.remove(&stack.id).unwrap_or_default(),
            labels: stack.labels,
            workspace_id: stack.workspace_id,
        }
    });
    StackResponse {
        id: stack.id,
        name: stack.name,
        permission_denied: false,
        body: StackBody {
            created: stack.created,
            updated: stack.updated,
            user_id: stack.user_id,
            workspace_id: stack.workspace_id,
        },
        metadata,
        resources: StackResources {
            user: view.owner.as_ref().map(UserResponse::owner),
        },
    }
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!(
        "Unable to get stack with ID '{id}': No stack with this ID found"
    ))
}

/// A stack as just written in `tx`, read back with its owner and components, once `tx`
/// commits.
async fn written(
    state: &AppState,
    scope: &Scope,
    mut tx: Conn,
    id: Uuid,
    (origin, action): (&Origin, &str),
) -> ApiResult<Json<StackResponse>> {
    let view = stacks::get(&mut tx, scope.workspace_id, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let mut related = StackRelated::read(&mut tx, &[id]).await?;
    let target = Target::new("stack", id, &view.stack.name);
    let record = audit::in_scope(state, scope, origin, action, target);
    store::audit::append(&mut tx, &record).await?;
    tx.commit().await?;
    let renderer = Renderer {
        state,
        scope,
        now: state.clock.now(),
    };
    Ok(Json(render(&renderer, view, Some(&mut related))))
}

/// What a name is for: names are unique per workspace among connectors, and among
/// components of one type.
#[derive(Debug, Clone, Copy)]
enum NameOf {
    Connector,
    Component(ComponentType),
}

/// `base`, or else `base` with a random suffix, whichever is free in the workspace.
async fn free_name(
    tx: &mut Conn,
    workspace_id: Uuid,
    base: &EntityName,
    of: NameOf,
) -> ApiResult<EntityName> {
    let mut candidate = base.clone();
    for _ in 0..8 {
        let taken = match of {
            NameOf::Connector => {
                stored_connectors::name_taken(tx, workspace_id, candidate.as_str()).await?
            }
            NameOf::Component(component_type) => {
                stored_components::name_taken(tx, workspace_id, component_type, candidate.as_str())
                    .await?
            }
        };
        if !taken {
            return Ok(candidate);
        }
        let suffix = &Uuid::new_v4().simple().to_string()[..4];
        let stem: String = base.as_str().chars().take(200).collect();
        candidate = EntityName::parse("stack", format!("{}-{suffix}", stem.to_lowercase()))?;
    }
    Err(ApiError::Conflict(format!(
        "No free name was found for a record named after '{base}'."
    )))
}

/// Registers a stack of existing components, or of components and connectors the request
/// describes (created with it, named after it), all or nothing.
#[utoipa::path(post, path = "/api/v1/stacks", tag = "stacks",
    params(WorkspaceQuery), request_body = StackRequest,
    responses((status = 200, body = StackResponse), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = [])))]
pub async fn create_stack(
    State(state): State<AppState>,
    scope: Scope,
    origin: Origin,
    Query(_workspace): Query<WorkspaceQuery>,
    Json(request): Json<StackRequest>,
) -> ApiResult<Json<StackResponse>> {
    let counts = request
        .components
        .iter()
        .map(|(component_type, entries)| (*component_type, entries.len()))
        .collect();
    check_composition(&counts)?;
    let connector_count = request.service_connectors.len();
    for entry in request.components.values().flatten() {
        if let ComponentEntry::New(ComponentInfo {
            service_connector_index: Some(index),
            ..
        }) = entry
            && *index >= connector_count
        {
            return Err(ApiError::BadRequest(format!(
                "service connector index {index} is out of range: the request lists \
                 {connector_count} service connectors"
            )));
        }
    }
    // Encryption comes before the write transaction (the keyring may need the writer).
    let labels: BTreeMap<String, String> = request
        .labels
        .iter()
        .flatten()
        .map(|(key, value)| match value {
            Value::String(text) => (key.clone(), text.clone()),
            other => (key.clone(), other.to_string()),
        })
        .collect();
    let mut prepared = Vec::with_capacity(connector_count);
    for entry in &request.service_connectors {
        prepared.push(match entry {
            ConnectorEntry::Existing(id) => Err(*id),
            ConnectorEntry::New(info) => {
                let request = ConnectorRequest::new(
                    request.name.clone(),
                    &info.connector_type,
                    &info.auth_method,
                    info.configuration.clone(),
                    labels.clone(),
                );
                Ok(NewConnector::prepare(&state, &scope, request).await?)
            }
        });
    }

    let mut tx = state.store.begin().await?;
    let mut linked: Vec<ConnectorRow> = Vec::with_capacity(connector_count);
    for entry in prepared {
        match entry {
            Err(id) => {
                let found =
                    stored_connectors::get_for_link(&mut tx, scope.workspace_id, id).await?;
                let view = connectors::visible_to(&scope, id, found)?;
                connectors::require_allowed(&state, &scope, &view.connector.auth_method)?;
                linked.push(view.connector);
            }
            Ok(mut new) => {
                let name = free_name(
                    &mut tx,
                    scope.workspace_id,
                    &request.name,
                    NameOf::Connector,
                )
                .await?;
                new.row.name = name.into_inner();
                let mut batch = state.store.batch();
                new.push(&mut batch);
                let target = Target::new("service_connector", new.row.id, &new.row.name);
                let record =
                    audit::in_scope(&state, &scope, &origin, action::CONNECTOR_CREATED, target);
                store::audit::push(&mut batch, &record);
                tx.apply(batch).await?;
                linked.push(new.row);
            }
        }
    }

    let now = state.clock.now();
    let mut members = Vec::new();
    for (component_type, entries) in request.components {
        for entry in entries {
            let id = match entry {
                ComponentEntry::Existing(id) => {
                    existing_member(&mut tx, &scope, component_type, id).await?
                }
                ComponentEntry::New(info) => {
                    let flavor =
                        state
                            .flavors
                            .get(component_type, &info.flavor)
                            .ok_or_else(|| {
                                ApiError::BadRequest(format!(
                                    "Flavor '{}' not found for component type '{component_type}'.",
                                    info.flavor
                                ))
                            })?;
                    check_configuration(flavor, &info.configuration)?;
                    let (connector_id, connector_resource_id) = match info.service_connector_index {
                        Some(index) => {
                            let row = &linked[index];
                            let resource_id = check_link_to(
                                &state,
                                flavor,
                                &info.configuration,
                                row,
                                info.service_connector_resource_id.as_deref(),
                            )?;
                            (Some(row.id), resource_id)
                        }
                        None => (None, None),
                    };
                    let of = NameOf::Component(component_type);
                    let name = free_name(&mut tx, scope.workspace_id, &request.name, of).await?;
                    let component = Component {
                        id: Uuid::new_v4(),
                        workspace_id: scope.workspace_id,
                        user_id: Some(scope.user_id()),
                        name: name.into_inner(),
                        component_type,
                        flavor: flavor.name.clone(),
                        configuration: info.configuration,
                        environment: BTreeMap::new(),
                        labels: request.labels.clone(),
                        connector_id,
                        connector_resource_id,
                        is_default: false,
                        created: now,
                        updated: now,
                    };
                    stored_components::insert(&mut tx, &component).await?;
                    let target = Target::new("component", component.id, &component.name);
                    let record =
                        audit::in_scope(&state, &scope, &origin, action::COMPONENT_CREATED, target);
                    store::audit::append(&mut tx, &record).await?;
                    component.id
                }
            };
            members.push(id);
        }
    }

    let stack = Stack {
        id: Uuid::new_v4(),
        workspace_id: scope.workspace_id,
        user_id: Some(scope.user_id()),
        name: request.name.into_inner(),
        description: request.description.into_inner(),
        stack_spec_path: request.stack_spec_path,
        environment: request.environment.unwrap_or_default(),
        labels: request.labels,
        is_default: false,
        created: now,
        updated: now,
    };
    stacks::insert(&mut tx, &stack).await.map_err(name_taken(
        "create",
        "stack",
        &stack.name,
        stacks::NAME_UNIQUE,
    ))?;
    stacks::set_members(&mut tx, stack.id, &members).await?;
    let secret_ids = public_secrets(&mut tx, &scope, &request.secrets.unwrap_or_default()).await?;
    stacks::set_secrets(&mut tx, stack.id, &secret_ids).await?;
    let recorded = (&origin, action::STACK_CREATED);
    written(&state, &scope, tx, stack.id, recorded).await
}

/// An existing component of the workspace, checked to be of the type it is listed under.
async fn existing_member(
    tx: &mut Conn,
    scope: &Scope,
    component_type: ComponentType,
    id: Uuid,
) -> ApiResult<Uuid> {
    let view = stored_components::get(tx, scope.workspace_id, id)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "Unable to get {component_type} stack component with ID '{id}': No stack \
                 component with this ID found"
            ))
        })?;
    let found = view.component.component_type;
    if found != component_type {
        return Err(ApiError::BadRequest(format!(
            "the stack component '{}' is of type '{found}', not '{component_type}'",
            view.component.name
        )));
    }
    Ok(id)
}

const LIST: ListSpec = ListSpec {
    fields: stacks::FIELDS,
    default_sort: "created",
    extras: &[Extra::new(
        "component_id",
        FieldKind::Uuid,
        "Only stacks that hold this component.",
    )],
};

list_parameters!(StackListQuery, LIST);

/// The workspace's stacks, filtered by `name`, `description`, `user` and `component_id` with
/// the list protocol.
#[utoipa::path(get, path = "/api/v1/stacks", tag = "stacks",
    params(StackListQuery),
    responses((status = 200, body = Page<StackResponse>), (status = 401), (status = 404), (status = 422)),
    security(("bearer" = [])))]
pub async fn list_stacks(
    State(state): State<AppState>,
    ScopedRead { scope, mut conn }: ScopedRead,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Page<StackResponse>>> {
    let request = ListRequest::parse(query.as_deref(), &LIST)?;
    let component_id = match request.extra("component_id") {
        Some(id) => Some(components::parse_id("component_id", id)?),
        None => None,
    };
    let listed = stacks::list(&mut conn, scope.workspace_id, &request.query, component_id).await?;
    let mut related = match request.hydrate {
        true => {
            let ids: Vec<Uuid> = listed.items.iter().map(|v| v.stack.id).collect();
            Some(StackRelated::read(&mut conn, &ids).await?)
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
        render(&renderer, view, related.as_mut())
    })?))
}

/// The stack's id in the path (by name, so the workspace-scoped routes work too).
#[derive(Debug, Deserialize)]
pub struct StackPath {
    stack_id: Uuid,
}

#[utoipa::path(get, path = "/api/v1/stacks/{stack_id}", tag = "stacks",
    params(("stack_id" = Uuid, Path), ReadQuery),
    responses((status = 200, body = StackResponse), (status = 401), (status = 404)),
    security(("bearer" = [])))]
pub async fn get_stack(
    State(state): State<AppState>,
    ScopedRead { scope, mut conn }: ScopedRead,
    Path(StackPath { stack_id }): Path<StackPath>,
    Query(query): Query<ReadQuery>,
) -> ApiResult<Json<StackResponse>> {
    let view = stacks::get(&mut conn, scope.workspace_id, stack_id)
        .await?
        .ok_or_else(|| not_found(stack_id))?;
    let mut related = match query.hydrate.unwrap_or(true) {
        true => Some(StackRelated::read(&mut conn, &[stack_id]).await?),
        false => None,
    };
    drop(conn);
    let renderer = Renderer {
        state: &state,
        scope: &scope,
        now: state.clock.now(),
    };
    Ok(Json(render(&renderer, view, related.as_mut())))
}

/// Changes a stack. Its owner or a workspace admin may; the default stack stays as it is.
#[utoipa::path(put, path = "/api/v1/stacks/{stack_id}", tag = "stacks",
    params(("stack_id" = Uuid, Path), WorkspaceQuery), request_body = StackUpdate,
    responses((status = 200, body = StackResponse), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = [])))]
pub async fn update_stack(
    State(state): State<AppState>,
    scope: Scope,
    origin: Origin,
    Path(StackPath { stack_id }): Path<StackPath>,
    Query(_workspace): Query<WorkspaceQuery>,
    Json(update): Json<StackUpdate>,
) -> ApiResult<Json<StackResponse>> {
    let mut tx = state.store.begin().await?;
    let mut stack = stacks::get(&mut tx, scope.workspace_id, stack_id)
        .await?
        .ok_or_else(|| not_found(stack_id))?
        .stack;
    scope.require_owner_or_admin(stack.user_id, "stack")?;
    if stack.is_default {
        return Err(ApiError::Forbidden(
            "The default stack cannot be modified.".into(),
        ));
    }
    if let Some(name) = update.name {
        stack.name = name.into_inner();
    }
    if let Some(description) = update.description {
        stack.description = description.into_inner();
    }
    if let Some(path) = update.stack_spec_path {
        stack.stack_spec_path = Some(path);
    }
    if let Some(environment) = update.environment {
        stack.environment = environment;
    }
    if let Some(labels) = update.labels {
        stack.labels = Some(labels);
    }
    if let Some(components) = &update.components {
        let counts = components
            .iter()
            .map(|(component_type, ids)| (*component_type, ids.len()))
            .collect();
        check_composition(&counts)?;
        let mut members = Vec::new();
        for (component_type, ids) in components {
            for id in ids {
                members.push(existing_member(&mut tx, &scope, *component_type, *id).await?);
            }
        }
        stacks::set_members(&mut tx, stack.id, &members).await?;
    }
    let add = public_secrets(&mut tx, &scope, &update.add_secrets.unwrap_or_default()).await?;
    let remove =
        referenced_secrets(&mut tx, &scope, &update.remove_secrets.unwrap_or_default()).await?;
    let read_updated = crate::store::touch(&mut stack.updated, state.clock.now());
    stacks::update(&mut tx, &stack, read_updated)
        .await
        .map_err(name_taken(
            "update",
            "stack",
            &stack.name,
            stacks::NAME_UNIQUE,
        ))?;
    stacks::change_secrets(&mut tx, stack.id, &add, &remove).await?;
    let recorded = (&origin, action::STACK_UPDATED);
    written(&state, &scope, tx, stack.id, recorded).await
}

/// Deletes a stack; its components stay. Its owner or a workspace admin may; the default
/// stack stays.
#[utoipa::path(delete, path = "/api/v1/stacks/{stack_id}", tag = "stacks",
    params(("stack_id" = Uuid, Path), WorkspaceQuery),
    responses((status = 200), (status = 401), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
pub async fn delete_stack(
    State(state): State<AppState>,
    scope: Scope,
    origin: Origin,
    Path(StackPath { stack_id }): Path<StackPath>,
    Query(_workspace): Query<WorkspaceQuery>,
) -> ApiResult<Json<()>> {
    let mut tx = state.store.begin().await?;
    let stack = stacks::get(&mut tx, scope.workspace_id, stack_id)
        .await?
        .ok_or_else(|| not_found(stack_id))?
        .stack;
    scope.require_owner_or_admin(stack.user_id, "stack")?;
    if stack.is_default {
        return Err(ApiError::Forbidden(
            "The default stack cannot be deleted.".into(),
        ));
    }
    stacks::delete(&mut tx, &stack).await?;
    let target = Target::new("stack", stack.id, &stack.name);
    let record = audit::in_scope(&state, &scope, &origin, action::STACK_DELETED, target);
    store::audit::append(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(Json(()))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_stack, list_stacks))
        .routes(routes!(get_stack, update_stack, delete_stack))
}

/// The same operations under `/api/v1/workspaces/{workspace}/…`.
pub fn workspace_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(workspace_form(routes!(create_stack, list_stacks)))
        .routes(workspace_form(routes!(
            get_stack,
            update_stack,
            delete_stack
        )))
}
