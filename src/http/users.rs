//! Users, service accounts and API keys. Managing accounts is for server administrators; every
//! user may read their own account.

use axum::extract::{Path, RawQuery, State};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::error::{ApiError, ApiResult, name_taken};
use super::extract::{Json, Query};
use super::page::{ListRequest, ListSpec, Page, list_parameters};
use super::time;
use super::{AppState, audit};
use crate::auth::{api_key, password};
use crate::domain::audit::{Origin, Target, action};
use crate::domain::{Caller, EntityName, LongText, Password, Role, ShortText};
use crate::store::users::{self, ApiKeyRow, Owner, UserRow};
use crate::store::{self, Conn, StoreError, workspaces};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HydrateQuery {
    /// Include the `metadata` section.
    #[serde(default, deserialize_with = "super::page::optional_bool")]
    pub hydrate: Option<bool>,
}

/// ZenML's `UserResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    id: Uuid,
    name: String,
    permission_denied: bool,
    body: UserBody,
    metadata: Option<UserMetadata>,
    resources: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
struct UserBody {
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = super::time::Timestamp)]
    created: chrono::DateTime<chrono::Utc>,
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = super::time::Timestamp)]
    updated: chrono::DateTime<chrono::Utc>,
    active: bool,
    activation_token: Option<String>,
    full_name: String,
    email_opted_in: Option<bool>,
    is_service_account: bool,
    is_admin: bool,
    /// The user's default workspace.
    default_project_id: Option<Uuid>,
    avatar_url: Option<String>,
    description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct UserMetadata {
    email: Option<String>,
    external_user_id: Option<Uuid>,
    user_metadata: serde_json::Value,
}

/// The caller, as the owner of what they create.
pub fn owner_of(caller: &Caller) -> Owner {
    Owner {
        id: caller.user_id,
        name: caller.name.clone(),
        is_admin: caller.is_admin,
        is_service_account: caller.is_service_account,
        created: caller.created,
        updated: caller.updated,
    }
}

impl UserResponse {
    /// A user as embedded in another resource: the body only.
    pub fn summary(
        id: Uuid,
        name: String,
        is_admin: bool,
        is_service_account: bool,
        created: chrono::DateTime<chrono::Utc>,
        updated: chrono::DateTime<chrono::Utc>,
    ) -> UserResponse {
        UserResponse {
            id,
            name,
            permission_denied: false,
            body: UserBody {
                created,
                updated,
                active: true,
                activation_token: None,
                full_name: String::new(),
                email_opted_in: None,
                is_service_account,
                is_admin,
                default_project_id: None,
                avatar_url: None,
                description: None,
            },
            metadata: None,
            resources: serde_json::json!({}),
        }
    }

    /// The owner of a record, as embedded in it.
    pub fn owner(owner: &Owner) -> UserResponse {
        Self::summary(
            owner.id,
            owner.name.clone(),
            owner.is_admin,
            owner.is_service_account,
            owner.created,
            owner.updated,
        )
    }

    pub fn render(user: UserRow, hydrate: bool) -> UserResponse {
        UserResponse {
            id: user.id,
            permission_denied: false,
            metadata: hydrate.then(|| UserMetadata {
                email: user.email.clone(),
                external_user_id: None,
                user_metadata: serde_json::json!({}),
            }),
            body: UserBody {
                created: user.created,
                updated: user.updated,
                active: user.active,
                activation_token: None,
                full_name: user.full_name,
                email_opted_in: None,
                is_service_account: user.is_service_account,
                is_admin: user.is_admin,
                default_project_id: user.default_workspace_id,
                avatar_url: None,
                description: user.is_service_account.then_some(user.description),
            },
            name: user.name,
            resources: serde_json::json!({}),
        }
    }
}

pub async fn hash_password(password: Password) -> ApiResult<String> {
    password::off_thread(move || password::hash(password.expose()))
        .await
        .map_err(ApiError::internal)
}

/// Resolves a workspace reference given by an administrator.
async fn workspace_id(conn: &mut Conn, reference: &str) -> ApiResult<Uuid> {
    Ok(workspaces::by_name_or_id(conn, reference)
        .await?
        .ok_or_else(|| ApiError::not_found("workspace", reference))?
        .id)
}

async fn load_account(
    conn: &mut Conn,
    reference: &str,
    service_account: bool,
) -> ApiResult<UserRow> {
    let what = if service_account {
        "service account"
    } else {
        "user"
    };
    users::by_name_or_id(conn, reference)
        .await?
        .filter(|u| u.is_service_account == service_account)
        .ok_or_else(|| ApiError::not_found(what, reference))
}

/// A new user. With `default_workspace` the user also becomes a member of it (`role`, default
/// `member`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    name: EntityName,
    #[serde(default)]
    full_name: ShortText,
    email: Option<ShortText>,
    password: Password,
    #[serde(default)]
    is_admin: bool,
    #[serde(default = "yes")]
    active: bool,
    default_workspace: Option<String>,
    role: Option<Role>,
}

fn yes() -> bool {
    true
}

/// What the audit log calls an account.
pub(super) fn account_kind(user: &UserRow) -> &'static str {
    crate::domain::audit::account_kind(user.is_service_account)
}

/// Creates the account and, when asked, its membership of its default workspace, in one
/// transaction.
async fn insert_account(
    state: &AppState,
    (caller, origin): (&Caller, &Origin),
    mut user: UserRow,
    default_workspace: Option<String>,
    role: Option<Role>,
) -> ApiResult<UserRow> {
    let what = if user.is_service_account {
        "service account"
    } else {
        "user"
    };
    let mut tx = state.store.begin().await?;
    if let Some(reference) = &default_workspace {
        user.default_workspace_id = Some(workspace_id(&mut tx, reference).await?);
    }
    users::insert(&mut tx, &user).await.map_err(name_taken(
        "create",
        what,
        &user.name,
        users::NAME_UNIQUE,
    ))?;
    if let Some(ws) = user.default_workspace_id {
        workspaces::set_member(
            &mut tx,
            ws,
            user.id,
            role.unwrap_or(Role::Member),
            user.created,
        )
        .await?;
    }
    let target = Target::new(account_kind(&user), user.id, &user.name);
    let record = audit::by_caller(state, caller, origin, action::USER_CREATED)
        .on(target)
        .with_details(json!({
            "is_admin": user.is_admin,
            "default_workspace": user.default_workspace_id,
        }));
    store::audit::append(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(user)
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = UserCreate,
    responses((status = 200, body = UserResponse), (status = 403), (status = 409)),
    security(("bearer" = [])))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Json(request): Json<UserCreate>,
) -> ApiResult<Json<UserResponse>> {
    caller.require_server_admin()?;
    let now = state.clock.now();
    let user = UserRow {
        id: Uuid::new_v4(),
        name: request.name.into_inner(),
        full_name: request.full_name.into_inner(),
        email: request.email.map(ShortText::into_inner),
        password_hash: Some(hash_password(request.password).await?),
        description: String::new(),
        is_admin: request.is_admin,
        is_service_account: false,
        active: request.active,
        default_workspace_id: None,
        created: now,
        updated: now,
        session_generation: 0,
    };
    let user = insert_account(
        &state,
        (&caller, &origin),
        user,
        request.default_workspace,
        request.role,
    )
    .await?;
    Ok(Json(UserResponse::render(user, true)))
}

const USER_LIST: ListSpec = ListSpec {
    fields: users::FIELDS,
    default_sort: "created",
    extras: &[],
};

list_parameters!(UserListQuery, USER_LIST);

#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    params(UserListQuery),
    responses((status = 200, body = Page<UserResponse>), (status = 403)),
    security(("bearer" = [])))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Page<UserResponse>>> {
    list_accounts(state, caller, query, false).await
}

#[utoipa::path(get, path = "/api/v1/users/{user}", tag = "users",
    params(("user" = String, Path, description = "User name or id"), HydrateQuery),
    responses((status = 200, body = UserResponse), (status = 404)),
    security(("bearer" = [])))]
pub async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(reference): Path<String>,
    Query(query): Query<HydrateQuery>,
) -> ApiResult<Json<UserResponse>> {
    let mut conn = state.store.conn().await?;
    let user = users::by_name_or_id(&mut conn, &reference)
        .await?
        .filter(|u| caller.may_read_user(u.id))
        .ok_or_else(|| ApiError::not_found("user", &reference))?;
    Ok(Json(UserResponse::render(
        user,
        query.hydrate.unwrap_or(true),
    )))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    name: Option<EntityName>,
    full_name: Option<ShortText>,
    email: Option<ShortText>,
    password: Option<Password>,
    is_admin: Option<bool>,
    active: Option<bool>,
    default_workspace: Option<String>,
}

#[utoipa::path(put, path = "/api/v1/users/{user}", tag = "users", request_body = UserUpdate,
    params(("user" = String, Path, description = "User name or id")),
    responses((status = 200, body = UserResponse), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
pub async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(reference): Path<String>,
    Json(update): Json<UserUpdate>,
) -> ApiResult<Json<UserResponse>> {
    caller.require_server_admin()?;
    let password_hash = match update.password {
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };
    let password_changed = password_hash.is_some();
    let mut tx = state.store.begin().await?;
    let mut user = load_account(&mut tx, &reference, false).await?;
    if user.id == caller.user_id && (update.is_admin == Some(false) || update.active == Some(false))
    {
        return Err(ApiError::Forbidden(
            "administrators cannot demote or deactivate their own account".into(),
        ));
    }
    if let Some(name) = update.name {
        user.name = name.into_inner();
    }
    if let Some(full_name) = update.full_name {
        user.full_name = full_name.into_inner();
    }
    if let Some(email) = update.email {
        user.email = Some(email.into_inner());
    }
    // A new password or a deactivation ends the account's sessions (the administrator's own
    // session goes on when it changes its own password).
    let ends_sessions = password_hash.is_some() || (user.active && update.active == Some(false));
    if password_hash.is_some() {
        user.password_hash = password_hash;
    }
    user.is_admin = update.is_admin.unwrap_or(user.is_admin);
    user.active = update.active.unwrap_or(user.active);
    if let Some(reference) = update.default_workspace {
        user.default_workspace_id = Some(workspace_id(&mut tx, &reference).await?);
    }
    let read_updated = user.touch(state.clock.now());
    users::update(&mut tx, &user, read_updated)
        .await
        .map_err(name_taken("update", "user", &user.name, users::NAME_UNIQUE))?;
    if ends_sessions {
        let keep = Some(caller.session).filter(|id| user.id == caller.user_id && !id.is_nil());
        users::end_sessions(&mut tx, user.id, keep).await?;
    }
    let target = Target::new(account_kind(&user), user.id, &user.name);
    let record = audit::by_caller(&state, &caller, &origin, action::USER_UPDATED)
        .on(target)
        .with_details(json!({
            "is_admin": user.is_admin,
            "active": user.active,
            "password_changed": password_changed,
            "sessions_ended": ends_sessions,
        }));
    store::audit::append(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(Json(UserResponse::render(user, true)))
}

/// Ends every session of an account, in every server process: its tokens stop working at
/// once, the caller's own too. Server administrators may end anyone's; users their own.
#[utoipa::path(delete, path = "/api/v1/users/{user}/sessions", tag = "users",
    params(("user" = String, Path, description = "User name or id")),
    responses((status = 200), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn end_sessions(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(reference): Path<String>,
) -> ApiResult<Json<()>> {
    let mut tx = state.store.begin().await?;
    let user = users::by_name_or_id(&mut tx, &reference)
        .await?
        .filter(|u| caller.may_read_user(u.id))
        .ok_or_else(|| ApiError::not_found("user", &reference))?;
    users::end_sessions(&mut tx, user.id, None).await?;
    let target = Target::new(account_kind(&user), user.id, &user.name);
    let record = audit::by_caller(&state, &caller, &origin, action::USER_SESSIONS_ENDED).on(target);
    store::audit::append(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(Json(()))
}

#[utoipa::path(delete, path = "/api/v1/users/{user}", tag = "users",
    params(("user" = String, Path, description = "User name or id")),
    responses((status = 200), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(reference): Path<String>,
) -> ApiResult<Json<()>> {
    delete_account(state, (caller, origin), reference, false).await
}

/// A new service account, for machines that log in with API keys.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountCreate {
    name: EntityName,
    #[serde(default)]
    description: LongText,
    #[serde(default = "yes")]
    active: bool,
    default_workspace: Option<String>,
    role: Option<Role>,
}

#[utoipa::path(post, path = "/api/v1/service_accounts", tag = "service accounts",
    request_body = ServiceAccountCreate,
    responses((status = 200, body = UserResponse), (status = 403), (status = 409)),
    security(("bearer" = [])))]
pub async fn create_service_account(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Json(request): Json<ServiceAccountCreate>,
) -> ApiResult<Json<UserResponse>> {
    caller.require_server_admin()?;
    let now = state.clock.now();
    let account = UserRow {
        id: Uuid::new_v4(),
        name: request.name.into_inner(),
        full_name: String::new(),
        email: None,
        password_hash: None,
        description: request.description.into_inner(),
        is_admin: false,
        is_service_account: true,
        active: request.active,
        default_workspace_id: None,
        created: now,
        updated: now,
        session_generation: 0,
    };
    let account = insert_account(
        &state,
        (&caller, &origin),
        account,
        request.default_workspace,
        request.role,
    )
    .await?;
    Ok(Json(UserResponse::render(account, true)))
}

#[utoipa::path(get, path = "/api/v1/service_accounts", tag = "service accounts",
    params(UserListQuery),
    responses((status = 200, body = Page<UserResponse>), (status = 403)),
    security(("bearer" = [])))]
pub async fn list_service_accounts(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Page<UserResponse>>> {
    list_accounts(state, caller, query, true).await
}

#[utoipa::path(delete, path = "/api/v1/service_accounts/{account}", tag = "service accounts",
    params(("account" = String, Path, description = "Service account name or id")),
    responses((status = 200), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn delete_service_account(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(reference): Path<String>,
) -> ApiResult<Json<()>> {
    delete_account(state, (caller, origin), reference, true).await
}

/// ZenML's `APIKeyResponse`; `key` is present only in the answer that creates it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyResponse {
    id: Uuid,
    name: String,
    permission_denied: bool,
    body: ApiKeyBody,
    metadata: serde_json::Value,
    resources: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
struct ApiKeyBody {
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = super::time::Timestamp)]
    created: chrono::DateTime<chrono::Utc>,
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = super::time::Timestamp)]
    updated: chrono::DateTime<chrono::Utc>,
    active: bool,
    service_account_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

impl ApiKeyResponse {
    fn render(key: ApiKeyRow, text: Option<String>) -> ApiKeyResponse {
        ApiKeyResponse {
            id: key.id,
            permission_denied: false,
            body: ApiKeyBody {
                created: key.created,
                updated: key.updated,
                active: key.active,
                service_account_id: key.service_account_id,
                key: text,
            },
            metadata: serde_json::json!({
                "description": key.description,
                "last_login": key.last_login.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()),
            }),
            resources: serde_json::json!({}),
            name: key.name,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreate {
    name: EntityName,
    #[serde(default)]
    description: LongText,
}

#[utoipa::path(post, path = "/api/v1/service_accounts/{account}/api_keys", tag = "service accounts",
    params(("account" = String, Path, description = "Service account name or id")),
    request_body = ApiKeyCreate,
    responses((status = 200, body = ApiKeyResponse), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
pub async fn create_api_key(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(reference): Path<String>,
    Json(request): Json<ApiKeyCreate>,
) -> ApiResult<Json<ApiKeyResponse>> {
    caller.require_server_admin()?;
    let id = Uuid::new_v4();
    let generated = api_key::generate(id);
    let secret = generated.secret.clone();
    let key_hash = password::off_thread(move || password::hash(&secret))
        .await
        .map_err(ApiError::internal)?;
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let account = load_account(&mut tx, &reference, true).await?;
    let key = ApiKeyRow {
        id,
        service_account_id: account.id,
        name: request.name.into_inner(),
        description: request.description.into_inner(),
        key_hash,
        active: true,
        last_login: None,
        created: now,
        updated: now,
    };
    users::insert_api_key(&mut tx, &key)
        .await
        .map_err(name_taken(
            "create",
            "API key",
            &key.name,
            users::API_KEY_NAME_UNIQUE,
        ))?;
    let target = Target::new("api_key", key.id, &key.name);
    let record = audit::by_caller(&state, &caller, &origin, action::API_KEY_CREATED)
        .on(target)
        .with_details(json!({ "service_account": account.name }));
    store::audit::append(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(Json(ApiKeyResponse::render(
        key,
        Some(generated.text.to_string()),
    )))
}

#[utoipa::path(get, path = "/api/v1/service_accounts/{account}/api_keys", tag = "service accounts",
    params(("account" = String, Path, description = "Service account name or id"), ApiKeyListQuery),
    responses((status = 200, body = Page<ApiKeyResponse>), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn list_api_keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(reference): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Page<ApiKeyResponse>>> {
    caller.require_server_admin()?;
    let request = ListRequest::parse(query.as_deref(), &API_KEY_LIST)?;
    let mut conn = state.store.conn().await?;
    let account = load_account(&mut conn, &reference, true).await?;
    let listed = users::api_keys(&mut conn, account.id, &request.query).await?;
    Ok(Json(
        request.page(listed, |k| ApiKeyResponse::render(k, None))?,
    ))
}

const API_KEY_LIST: ListSpec = ListSpec {
    fields: users::KEY_FIELDS,
    default_sort: "created",
    extras: &[],
};

list_parameters!(ApiKeyListQuery, API_KEY_LIST);

#[utoipa::path(delete, path = "/api/v1/service_accounts/{account}/api_keys/{key_id}",
    tag = "service accounts",
    params(("account" = String, Path, description = "Service account name or id"),
           ("key_id" = Uuid, Path, description = "API key id")),
    responses((status = 200), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn delete_api_key(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path((reference, key_id)): Path<(String, Uuid)>,
) -> ApiResult<Json<()>> {
    caller.require_server_admin()?;
    let mut tx = state.store.begin().await?;
    let account = load_account(&mut tx, &reference, true).await?;
    users::delete_api_key(&mut tx, account.id, key_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("API key", key_id),
            other => other.into(),
        })?;
    let target = Target::id_only("api_key", key_id);
    let record = audit::by_caller(&state, &caller, &origin, action::API_KEY_DELETED)
        .on(target)
        .with_details(json!({ "service_account": account.name }));
    store::audit::append(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(Json(()))
}

/// Lists users or service accounts (server administrators only).
async fn list_accounts(
    state: AppState,
    caller: Caller,
    query: Option<String>,
    service_accounts: bool,
) -> ApiResult<Json<Page<UserResponse>>> {
    caller.require_server_admin()?;
    let request = ListRequest::parse(query.as_deref(), &USER_LIST)?;
    let mut conn = state.store.conn().await?;
    let listed = users::list(&mut conn, service_accounts, &request.query).await?;
    Ok(Json(request.page(listed, |u| {
        UserResponse::render(u, request.hydrate)
    })?))
}

/// Deletes a user or service account (server administrators only, never themselves).
async fn delete_account(
    state: AppState,
    (caller, origin): (Caller, Origin),
    reference: String,
    service_account: bool,
) -> ApiResult<Json<()>> {
    caller.require_server_admin()?;
    let mut tx = state.store.begin().await?;
    let account = load_account(&mut tx, &reference, service_account).await?;
    if account.id == caller.user_id {
        return Err(ApiError::Forbidden(
            "administrators cannot delete their own account".into(),
        ));
    }
    users::delete(&mut tx, account.id).await?;
    let target = Target::new(account_kind(&account), account.id, &account.name);
    let record = audit::by_caller(&state, &caller, &origin, action::USER_DELETED).on(target);
    store::audit::append(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(Json(()))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user, list_users))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(end_sessions))
        .routes(routes!(create_service_account, list_service_accounts))
        .routes(routes!(delete_service_account))
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(delete_api_key))
}
