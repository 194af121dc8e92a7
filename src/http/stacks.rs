//! Stacks, as far as ZenML clients need them: each workspace has one `default` stack, which the
//! client looks up at start-up and hydrates with its (here empty) components.

use axum::extract::{Path, RawQuery, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Query};
use super::page::{ListRequest, ListSpec, Page, optional_bool};
use super::time;
use crate::domain::Scope;
use crate::store::Arg;
use crate::store::query::{Field, FieldKind, Op};
use crate::store::workspaces;

/// Derives the default stack's id from its workspace, so that it needs no storage and is the
/// same in every server process.
fn default_stack_id(workspace_id: Uuid) -> Uuid {
    const STACKS: Uuid = Uuid::from_u128(0x6c1e_2f4b_9a0d_4e57_8b3c_0d1f_5a6e_7c90);
    Uuid::new_v5(&STACKS, workspace_id.as_bytes())
}

/// ZenML's `StackResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StackResponse {
    id: Uuid,
    name: String,
    permission_denied: bool,
    body: StackBody,
    metadata: Option<StackMetadata>,
    resources: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
struct StackBody {
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = String, format = DateTime)]
    created: chrono::DateTime<chrono::Utc>,
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = String, format = DateTime)]
    updated: chrono::DateTime<chrono::Utc>,
    user_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
struct StackMetadata {
    /// Stack components by type; the default stack has none here.
    #[schema(value_type = Object)]
    components: serde_json::Map<String, serde_json::Value>,
    description: String,
    workspace_id: Uuid,
}

const DEFAULT: &str = "default";

fn default_stack(workspace: &workspaces::WorkspaceRow, hydrate: bool) -> StackResponse {
    StackResponse {
        id: default_stack_id(workspace.id),
        name: DEFAULT.into(),
        permission_denied: false,
        body: StackBody {
            created: workspace.created,
            updated: workspace.created,
            user_id: None,
        },
        metadata: hydrate.then(|| StackMetadata {
            components: serde_json::Map::new(),
            description: format!("The default stack of workspace '{}'", workspace.name),
            workspace_id: workspace.id,
        }),
        resources: serde_json::json!({ "user": null }),
    }
}

static FIELDS: &[Field] = &[
    Field::new("name", FieldKind::Text, "name"),
    Field::new("id", FieldKind::Uuid, "id"),
    Field::new("created", FieldKind::Time, "created"),
];

const LIST: ListSpec = ListSpec {
    fields: FIELDS,
    default_sort: "created",
    extras: &[],
};

/// Whether the default stack passes the request's name and id filters.
fn matches(request: &ListRequest, id: Uuid) -> bool {
    let test = |condition: &crate::store::query::Condition| {
        let value = match condition.field.name {
            "name" => Arg::Text(DEFAULT.into()),
            "id" => Arg::Uuid(id),
            _ => return true,
        };
        let text = |arg: &Arg| match arg {
            Arg::Text(t) => t.to_lowercase(),
            Arg::Uuid(u) => u.to_string(),
            other => format!("{other:?}"),
        };
        let (value, operands): (String, Vec<String>) =
            (text(&value), condition.values.iter().map(text).collect());
        let first = operands.first().cloned().unwrap_or_default();
        match condition.op {
            Op::Equals => value == first,
            Op::NotEquals => value != first,
            Op::Contains => value.contains(&first),
            Op::NotContains => !value.contains(&first),
            Op::StartsWith => value.starts_with(&first),
            Op::EndsWith => value.ends_with(&first),
            Op::OneOf => operands.contains(&value),
            Op::NotOneOf => !operands.contains(&value),
            Op::IsNotNull => true,
            _ => false,
        }
    };
    let conditions = &request.query.conditions;
    conditions.is_empty()
        || if request.query.any {
            conditions.iter().any(test)
        } else {
            conditions.iter().all(test)
        }
}

#[utoipa::path(get, path = "/api/v1/stacks", tag = "stacks",
    responses((status = 200, body = Page<StackResponse>)),
    security(("bearer" = [])))]
pub async fn list_stacks(
    State(state): State<AppState>,
    scope: Scope,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Page<StackResponse>>> {
    let request = ListRequest::parse(query.as_deref(), &LIST)?;
    let mut conn = state.store.conn().await?;
    let workspace = workspaces::by_name_or_id(&mut conn, &scope.workspace_id.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found("workspace", scope.workspace_id))?;
    let items: Vec<_> = Some(default_stack(&workspace, request.hydrate))
        .filter(|stack| matches(&request, stack.id))
        .into_iter()
        .collect();
    let total = items.len() as i64;
    Ok(Json(request.page(
        crate::store::query::Listed { items, total },
        |s| s,
    )?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StackQuery {
    #[serde(default, deserialize_with = "optional_bool")]
    hydrate: Option<bool>,
}

/// A workspace's default stack, for members of that workspace.
#[utoipa::path(get, path = "/api/v1/stacks/{stack_id}", tag = "stacks",
    params(("stack_id" = Uuid, Path), StackQuery),
    responses((status = 200, body = StackResponse), (status = 404)),
    security(("bearer" = [])))]
pub async fn get_stack(
    State(state): State<AppState>,
    caller: crate::domain::Caller,
    Path(stack_id): Path<Uuid>,
    Query(query): Query<StackQuery>,
) -> ApiResult<Json<StackResponse>> {
    let mut conn = state.store.conn().await?;
    let member_of = workspaces::list_of_member(&mut conn, caller.user_id).await?;
    member_of
        .iter()
        .find(|w| default_stack_id(w.id) == stack_id)
        .map(|w| Json(default_stack(w, query.hydrate.unwrap_or(true))))
        .ok_or_else(|| ApiError::NotFound(format!("Unable to find stack with ID '{stack_id}'")))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_stacks))
        .routes(routes!(get_stack))
}
