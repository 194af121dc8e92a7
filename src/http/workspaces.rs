//! Workspaces, the tenants (ZenML's projects), and their members. Server administrators manage
//! them; members see the workspaces they belong to; to anyone else a workspace does not exist.

use axum::extract::{Path, RawQuery, State};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::error::{ApiError, ApiResult, name_taken};
use super::extract::Json;
use super::page::{ListRequest, ListSpec, Page, list_parameters};
use super::time;
use super::users::account_kind;
use super::{AppState, audit};
use crate::domain::audit::{Origin, Target, action};
use crate::domain::{Caller, EntityName, LongText, Role, ShortText};
use crate::store::workspaces::{self, WorkspaceRow};
use crate::store::{self, Conn, StoreError, stacks, users};

/// ZenML's `ProjectResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceResponse {
    id: Uuid,
    name: String,
    permission_denied: bool,
    body: WorkspaceBody,
    metadata: Option<WorkspaceMetadata>,
    resources: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
struct WorkspaceBody {
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = super::time::Timestamp)]
    created: chrono::DateTime<chrono::Utc>,
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = super::time::Timestamp)]
    updated: chrono::DateTime<chrono::Utc>,
    display_name: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct WorkspaceMetadata {
    description: String,
}

impl WorkspaceResponse {
    pub fn render(ws: WorkspaceRow, hydrate: bool) -> WorkspaceResponse {
        WorkspaceResponse {
            id: ws.id,
            name: ws.name,
            permission_denied: false,
            metadata: hydrate.then_some(WorkspaceMetadata {
                description: ws.description,
            }),
            body: WorkspaceBody {
                created: ws.created,
                updated: ws.updated,
                display_name: ws.display_name,
            },
            resources: serde_json::json!({}),
        }
    }
}

/// The workspace, if the caller may see it: server administrators see all, others the ones
/// they are members of.
async fn visible_workspace(
    conn: &mut Conn,
    caller: &Caller,
    reference: &str,
) -> ApiResult<WorkspaceRow> {
    let not_found = || ApiError::not_found("workspace", reference);
    let ws = workspaces::by_name_or_id(conn, reference)
        .await?
        .ok_or_else(not_found)?;
    if !caller.is_admin
        && workspaces::membership_by_id(conn, caller.user_id, ws.id)
            .await?
            .is_none()
    {
        return Err(not_found());
    }
    Ok(ws)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceCreate {
    name: EntityName,
    display_name: Option<ShortText>,
    #[serde(default)]
    description: LongText,
}

#[utoipa::path(post, path = "/api/v1/workspaces", tag = "workspaces", request_body = WorkspaceCreate,
    responses((status = 200, body = WorkspaceResponse), (status = 403), (status = 409)),
    security(("bearer" = [])))]
pub async fn create_workspace(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Json(request): Json<WorkspaceCreate>,
) -> ApiResult<Json<WorkspaceResponse>> {
    caller.require_server_admin()?;
    let now = state.clock.now();
    let name = request.name.into_inner();
    let ws = WorkspaceRow {
        id: Uuid::new_v4(),
        display_name: request
            .display_name
            .map_or_else(|| name.clone(), ShortText::into_inner),
        name,
        description: request.description.into_inner(),
        created: now,
        updated: now,
    };
    let mut tx = state.store.begin().await?;
    workspaces::insert(&mut tx, &ws).await.map_err(name_taken(
        "create",
        "workspace",
        &ws.name,
        workspaces::NAME_UNIQUE,
    ))?;
    stacks::insert_default(&mut tx, ws.id, now).await?;
    let target = Target::new("workspace", ws.id, &ws.name);
    let record = audit::by_caller(&state, &caller, &origin, action::WORKSPACE_CREATED)
        .on(target)
        .in_workspace(ws.id);
    store::audit::append(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(Json(WorkspaceResponse::render(ws, true)))
}

const LIST: ListSpec = ListSpec {
    fields: workspaces::FIELDS,
    default_sort: "created",
    extras: &[],
};

list_parameters!(WorkspaceListQuery, LIST);

#[utoipa::path(get, path = "/api/v1/workspaces", tag = "workspaces",
    params(WorkspaceListQuery),
    responses((status = 200, body = Page<WorkspaceResponse>)),
    security(("bearer" = [])))]
pub async fn list_workspaces(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Page<WorkspaceResponse>>> {
    let request = ListRequest::parse(query.as_deref(), &LIST)?;
    let member = (!caller.is_admin).then_some(caller.user_id);
    let mut conn = state.store.conn().await?;
    let listed = workspaces::list(&mut conn, member, &request.query).await?;
    Ok(Json(request.page(listed, |w| {
        WorkspaceResponse::render(w, request.hydrate)
    })?))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}", tag = "workspaces",
    params(("workspace" = String, Path, description = "Workspace name or id")),
    responses((status = 200, body = WorkspaceResponse), (status = 404)),
    security(("bearer" = [])))]
pub async fn get_workspace(
    State(state): State<AppState>,
    caller: Caller,
    Path(reference): Path<String>,
) -> ApiResult<Json<WorkspaceResponse>> {
    let mut conn = state.store.conn().await?;
    let ws = visible_workspace(&mut conn, &caller, &reference).await?;
    Ok(Json(WorkspaceResponse::render(ws, true)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceUpdate {
    name: Option<EntityName>,
    display_name: Option<ShortText>,
    description: Option<LongText>,
}

#[utoipa::path(put, path = "/api/v1/workspaces/{workspace}", tag = "workspaces",
    params(("workspace" = String, Path, description = "Workspace name or id")),
    request_body = WorkspaceUpdate,
    responses((status = 200, body = WorkspaceResponse), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
pub async fn update_workspace(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(reference): Path<String>,
    Json(update): Json<WorkspaceUpdate>,
) -> ApiResult<Json<WorkspaceResponse>> {
    caller.require_server_admin()?;
    let mut tx = state.store.begin().await?;
    let mut ws = visible_workspace(&mut tx, &caller, &reference).await?;
    if let Some(name) = update.name {
        ws.name = name.into_inner();
    }
    if let Some(display_name) = update.display_name {
        ws.display_name = display_name.into_inner();
    }
    if let Some(description) = update.description {
        ws.description = description.into_inner();
    }
    ws.updated = state.clock.now();
    workspaces::update(&mut tx, &ws).await.map_err(name_taken(
        "update",
        "workspace",
        &ws.name,
        workspaces::NAME_UNIQUE,
    ))?;
    let target = Target::new("workspace", ws.id, &ws.name);
    let record = audit::by_caller(&state, &caller, &origin, action::WORKSPACE_UPDATED)
        .on(target)
        .in_workspace(ws.id);
    store::audit::append(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(Json(WorkspaceResponse::render(ws, true)))
}

/// Deletes a workspace with everything in it.
#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}", tag = "workspaces",
    params(("workspace" = String, Path, description = "Workspace name or id")),
    responses((status = 200), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn delete_workspace(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(reference): Path<String>,
) -> ApiResult<Json<()>> {
    caller.require_server_admin()?;
    let mut tx = state.store.begin().await?;
    let ws = visible_workspace(&mut tx, &caller, &reference).await?;
    workspaces::delete(&mut tx, ws.id).await?;
    let target = Target::new("workspace", ws.id, &ws.name);
    let record = audit::by_caller(&state, &caller, &origin, action::WORKSPACE_DELETED)
        .on(target)
        .in_workspace(ws.id);
    store::audit::append(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(Json(()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberResponse {
    user_id: Uuid,
    user_name: String,
    role: Role,
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = super::time::Timestamp)]
    created: chrono::DateTime<chrono::Utc>,
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace}/members", tag = "workspaces",
    params(("workspace" = String, Path, description = "Workspace name or id")),
    responses((status = 200, body = Vec<MemberResponse>), (status = 404)),
    security(("bearer" = [])))]
pub async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    Path(reference): Path<String>,
) -> ApiResult<Json<Vec<MemberResponse>>> {
    let mut conn = state.store.conn().await?;
    let ws = visible_workspace(&mut conn, &caller, &reference).await?;
    let members = workspaces::members(&mut conn, ws.id).await?;
    Ok(Json(
        members
            .into_iter()
            .map(|m| MemberResponse {
                role: Role::parse(&m.role).unwrap_or(Role::Member),
                user_id: m.user_id,
                user_name: m.user_name,
                created: m.created,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MembershipUpdate {
    role: Role,
}

/// Adds a user to the workspace or changes their role.
#[utoipa::path(put, path = "/api/v1/workspaces/{workspace}/members/{user}", tag = "workspaces",
    params(("workspace" = String, Path, description = "Workspace name or id"),
           ("user" = String, Path, description = "User name or id")),
    request_body = MembershipUpdate,
    responses((status = 200, body = Vec<MemberResponse>), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn set_member(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path((ws_ref, user_ref)): Path<(String, String)>,
    Json(update): Json<MembershipUpdate>,
) -> ApiResult<Json<Vec<MemberResponse>>> {
    caller.require_server_admin()?;
    {
        let mut tx = state.store.begin().await?;
        let ws = visible_workspace(&mut tx, &caller, &ws_ref).await?;
        let user = users::by_name_or_id(&mut tx, &user_ref)
            .await?
            .ok_or_else(|| ApiError::not_found("user", &user_ref))?;
        let before = workspaces::membership_by_id(&mut tx, user.id, ws.id).await?;
        workspaces::set_member(&mut tx, ws.id, user.id, update.role, state.clock.now()).await?;
        let action = match before {
            Some(_) => action::MEMBER_UPDATED,
            None => action::MEMBER_ADDED,
        };
        let target = Target::new(account_kind(&user), user.id, &user.name);
        let record = audit::by_caller(&state, &caller, &origin, action)
            .on(target)
            .in_workspace(ws.id)
            .with_details(json!({
                "role": update.role.as_str(),
                "previous_role": before.map(|m| m.role),
            }));
        store::audit::append(&mut tx, &record).await?;
        if user.default_workspace_id.is_none() {
            let mut user = user;
            user.default_workspace_id = Some(ws.id);
            let read_updated = user.touch(state.clock.now());
            users::update(&mut tx, &user, read_updated).await?;
        }
        tx.commit().await?;
    }
    list_members(State(state), caller, Path(ws_ref)).await
}

#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace}/members/{user}", tag = "workspaces",
    params(("workspace" = String, Path, description = "Workspace name or id"),
           ("user" = String, Path, description = "User name or id")),
    responses((status = 200), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path((ws_ref, user_ref)): Path<(String, String)>,
) -> ApiResult<Json<()>> {
    caller.require_server_admin()?;
    let mut tx = state.store.begin().await?;
    let ws = visible_workspace(&mut tx, &caller, &ws_ref).await?;
    let user = users::by_name_or_id(&mut tx, &user_ref)
        .await?
        .ok_or_else(|| ApiError::not_found("user", &user_ref))?;
    workspaces::remove_member(&mut tx, ws.id, user.id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("member", &user_ref),
            other => other.into(),
        })?;
    let target = Target::new(account_kind(&user), user.id, &user.name);
    let record = audit::by_caller(&state, &caller, &origin, action::MEMBER_REMOVED)
        .on(target)
        .in_workspace(ws.id);
    store::audit::append(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(Json(()))
}

/// ZenML's name for a workspace: the caller's workspaces, as `ProjectResponse`s.
#[utoipa::path(get, path = "/api/v1/projects", tag = "workspaces",
    params(WorkspaceListQuery),
    responses((status = 200, body = Page<WorkspaceResponse>)),
    security(("bearer" = [])))]
pub async fn list_projects(
    state: State<AppState>,
    caller: Caller,
    query: RawQuery,
) -> ApiResult<Json<Page<WorkspaceResponse>>> {
    list_workspaces(state, caller, query).await
}

#[utoipa::path(get, path = "/api/v1/projects/{workspace}", tag = "workspaces",
    params(("workspace" = String, Path, description = "Workspace name or id"),
           ("hydrate" = Option<bool>, Query, description = "Accepted; the project is always hydrated")),
    responses((status = 200, body = WorkspaceResponse), (status = 404)),
    security(("bearer" = [])))]
pub async fn get_project(
    state: State<AppState>,
    caller: Caller,
    path: Path<String>,
) -> ApiResult<Json<WorkspaceResponse>> {
    get_workspace(state, caller, path).await
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_projects))
        .routes(routes!(get_project))
        .routes(routes!(create_workspace, list_workspaces))
        .routes(routes!(get_workspace, update_workspace, delete_workspace))
        .routes(routes!(list_members))
        .routes(routes!(set_member, remove_member))
}
