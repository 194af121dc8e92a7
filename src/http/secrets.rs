//! Secrets in ZenML 0.98 shapes, scoped to a workspace. Private secrets exist only for their
//! owner; public ones for every member. Lists never carry values.

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::error::{ApiError, ApiResult, name_taken};
use super::extract::{Json, Query, ReadQuery, WorkspaceQuery};
use super::openapi::workspace_form;
use super::page::{ListRequest, ListSpec, Page, list_parameters};
use super::sealing::{self, Visibility};
use super::time;
use super::users::{UserResponse, owner_of};
use super::{AppState, audit};
use crate::crypto::keyring::secret_aad;
use crate::domain::audit::{Origin, Target, action};
use crate::domain::secret::SecretValues;
use crate::domain::{Caller, EntityName, Scope};
use crate::store::data_keys::{self, DataKeyRow};
use crate::store::secrets::{self, SecretRow, SecretView};
use crate::store::users::Owner;
use crate::store::{self, StoreError};

/// ZenML's `SecretResponse`; values sit in `body`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretResponse {
    id: Uuid,
    name: String,
    permission_denied: bool,
    body: SecretBody,
    metadata: Option<serde_json::Value>,
    resources: SecretResources,
}

#[derive(Debug, Serialize, ToSchema)]
struct SecretResources {
    user: Option<UserResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
struct SecretBody {
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = super::time::Timestamp)]
    created: DateTime<Utc>,
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = super::time::Timestamp)]
    updated: DateTime<Utc>,
    user_id: Option<Uuid>,
    workspace_id: Uuid,
    private: bool,
    /// Empty in lists; the values otherwise.
    values: BTreeMap<String, Option<String>>,
}

impl SecretResponse {
    fn render(
        row: SecretRow,
        owner: Option<&Owner>,
        values: Option<&SecretValues>,
        hydrate: bool,
    ) -> SecretResponse {
        let values = values
            .map(|v| {
                v.iter()
                    .map(|(k, v)| (k.to_owned(), Some(v.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        SecretResponse {
            id: row.id,
            name: row.name,
            permission_denied: false,
            body: SecretBody {
                created: row.created,
                updated: row.updated,
                user_id: row.user_id,
                workspace_id: row.workspace_id,
                private: row.private,
                values,
            },
            metadata: hydrate.then(|| serde_json::json!({})),
            resources: SecretResources {
                user: owner.map(UserResponse::owner),
            },
        }
    }
}

async fn open(state: &AppState, row: &SecretRow) -> ApiResult<SecretValues> {
    sealing::open(state, row.workspace_id, row.id, &row.ciphertext).await
}

/// The secret with its owner, if it exists for this caller.
async fn visible(state: &AppState, scope: &Scope, id: Uuid) -> ApiResult<SecretView> {
    let mut conn = state.store.conn().await?;
    secrets::get(&mut conn, scope.workspace_id, id)
        .await?
        .filter(|s| scope.can_see(s.secret.user_id, s.secret.private))
        .ok_or_else(|| ApiError::NotFound(format!("Unable to find secret with ID '{id}'")))
}

/// The secret's id in the path (by name, so the workspace-scoped routes work too).
#[derive(Debug, Deserialize)]
pub struct SecretPath {
    secret_id: Uuid,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretCreate {
    /// Ignored: the owner is always the caller.
    #[allow(dead_code)]
    user: Option<Uuid>,
    name: EntityName,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    values: BTreeMap<String, Option<String>>,
}

#[utoipa::path(post, path = "/api/v1/secrets", tag = "secrets", request_body = SecretCreate,
    params(WorkspaceQuery),
    responses((status = 200, body = SecretResponse), (status = 400), (status = 409)),
    security(("bearer" = [])))]
pub async fn create_secret(
    State(state): State<AppState>,
    scope: Scope,
    origin: Origin,
    Query(_workspace): Query<WorkspaceQuery>,
    Json(request): Json<SecretCreate>,
) -> ApiResult<Json<SecretResponse>> {
    let values = SecretValues::parse(request.values)?;
    let visibility = Visibility::User {
        private: request.private,
    };
    let name = request.name.into_inner();
    let row = sealing::new_secret(&state, &scope, name, visibility, &values).await?;
    let mut tx = state.store.begin().await?;
    secrets::insert(&mut tx, &row).await.map_err(name_taken(
        "create",
        "secret",
        &row.name,
        secrets::NAME_UNIQUE,
    ))?;
    let target = Target::new("secret", row.id, &row.name);
    let record = audit::in_scope(&state, &scope, &origin, action::SECRET_CREATED, target);
    store::audit::append(&mut tx, &record).await?;
    tx.commit().await?;
    let owner = owner_of(&scope.caller);
    Ok(Json(SecretResponse::render(
        row,
        Some(&owner),
        Some(&values),
        true,
    )))
}

const LIST: ListSpec = ListSpec {
    fields: secrets::FIELDS,
    default_sort: "created",
    extras: &[],
};

list_parameters!(SecretListQuery, LIST);

#[utoipa::path(get, path = "/api/v1/secrets", tag = "secrets",
    params(SecretListQuery),
    responses((status = 200, body = Page<SecretResponse>)),
    security(("bearer" = [])))]
pub async fn list_secrets(
    State(state): State<AppState>,
    scope: Scope,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Page<SecretResponse>>> {
    let request = ListRequest::parse(query.as_deref(), &LIST)?;
    let mut conn = state.store.conn().await?;
    let listed = secrets::list(
        &mut conn,
        scope.workspace_id,
        scope.user_id(),
        &request.query,
    )
    .await?;
    Ok(Json(request.page(listed, |s| {
        SecretResponse::render(s.secret, s.owner.as_ref(), None, request.hydrate)
    })?))
}

#[utoipa::path(get, path = "/api/v1/secrets/{secret_id}", tag = "secrets",
    params(("secret_id" = Uuid, Path), ReadQuery),
    responses((status = 200, body = SecretResponse), (status = 404)),
    security(("bearer" = [])))]
pub async fn get_secret(
    State(state): State<AppState>,
    scope: Scope,
    origin: Origin,
    Path(SecretPath { secret_id: id }): Path<SecretPath>,
    Query(query): Query<ReadQuery>,
) -> ApiResult<Json<SecretResponse>> {
    let view = visible(&state, &scope, id).await?;
    let values = open(&state, &view.secret).await?;
    let target = Target::new("secret", id, &view.secret.name);
    let record = audit::in_scope(&state, &scope, &origin, action::SECRET_READ, target);
    state.audit.record(&state.store, record).await?;
    Ok(Json(SecretResponse::render(
        view.secret,
        view.owner.as_ref(),
        Some(&values),
        query.hydrate.unwrap_or(true),
    )))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretUpdate {
    name: Option<EntityName>,
    private: Option<bool>,
    values: Option<BTreeMap<String, Option<String>>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UpdateQuery {
    /// Merge `values` into the stored ones (a null value removes its key) instead of replacing
    /// them all.
    #[serde(default, deserialize_with = "super::page::optional_bool")]
    patch_values: Option<bool>,
    #[allow(dead_code)] // Read by the `Scope` extractor.
    project_name_or_id: Option<String>,
    #[allow(dead_code)]
    workspace: Option<String>,
}

/// Times an update is retried when another request changed the secret in between.
const UPDATE_ATTEMPTS: usize = 5;

#[utoipa::path(put, path = "/api/v1/secrets/{secret_id}", tag = "secrets",
    params(("secret_id" = Uuid, Path), UpdateQuery),
    request_body = SecretUpdate,
    responses((status = 200, body = SecretResponse), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
pub async fn update_secret(
    State(state): State<AppState>,
    scope: Scope,
    origin: Origin,
    Path(SecretPath { secret_id: id }): Path<SecretPath>,
    Query(query): Query<UpdateQuery>,
    Json(update): Json<SecretUpdate>,
) -> ApiResult<Json<SecretResponse>> {
    for _ in 0..UPDATE_ATTEMPTS {
        let SecretView {
            secret: mut row,
            owner,
        } = visible(&state, &scope, id).await?;
        scope.require_owner_or_admin(row.user_id, "secret")?;
        let mut values = open(&state, &row).await?;
        if let Some(new_values) = update.values.clone() {
            if query.patch_values.unwrap_or(false) {
                values.patch(new_values)?;
            } else {
                values = SecretValues::parse(new_values)?;
            }
        }
        if let Some(name) = &update.name {
            row.name = name.as_str().to_owned();
        }
        row.private = update.private.unwrap_or(row.private);
        row.updated = state.clock.now();
        let expected = row.revision;
        row.revision += 1;
        sealing::seal(&state, &mut row, &values).await?;
        let mut tx = state.store.begin().await?;
        match secrets::update(&mut tx, &row, expected).await {
            Ok(()) => {
                let target = Target::new("secret", row.id, &row.name);
                let record =
                    audit::in_scope(&state, &scope, &origin, action::SECRET_UPDATED, target)
                        .with_details(json!({ "values_changed": update.values.is_some() }));
                store::audit::append(&mut tx, &record).await?;
                tx.commit().await?;
                let rendered = SecretResponse::render(row, owner.as_ref(), Some(&values), true);
                return Ok(Json(rendered));
            }
            Err(StoreError::Concurrent) => continue,
            Err(e) => {
                return Err(name_taken(
                    "update",
                    "secret",
                    &row.name,
                    secrets::NAME_UNIQUE,
                )(e));
            }
        }
    }
    Err(StoreError::Concurrent.into())
}

#[utoipa::path(delete, path = "/api/v1/secrets/{secret_id}", tag = "secrets",
    params(("secret_id" = Uuid, Path), WorkspaceQuery),
    responses((status = 200), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn delete_secret(
    State(state): State<AppState>,
    scope: Scope,
    origin: Origin,
    Path(SecretPath { secret_id: id }): Path<SecretPath>,
    Query(_workspace): Query<WorkspaceQuery>,
) -> ApiResult<Json<()>> {
    let row = visible(&state, &scope, id).await?.secret;
    scope.require_owner_or_admin(row.user_id, "secret")?;
    let mut tx = state.store.begin().await?;
    secrets::delete(&mut tx, scope.workspace_id, id).await?;
    let target = Target::new("secret", id, &row.name);
    let record = audit::in_scope(&state, &scope, &origin, action::SECRET_DELETED, target);
    store::audit::append(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(Json(()))
}

/// Every secret with the data keys that protect it, still encrypted: restoring needs the same
/// master key, so a backup file reveals no value on its own.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretsBackup {
    format: String,
    data_keys: Vec<BackupKey>,
    secrets: Vec<BackupSecret>,
}

const BACKUP_FORMAT: &str = "connector-hub-secrets/1";

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BackupKey {
    id: Uuid,
    /// Base64 of the data key wrapped by the master key.
    wrapped: String,
    master_key_id: String,
    encryptions: i64,
    created: DateTime<Utc>,
    retired: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BackupSecret {
    id: Uuid,
    workspace_id: Uuid,
    user_id: Option<Uuid>,
    name: String,
    private: bool,
    internal: bool,
    key_id: Uuid,
    /// Base64 of the encrypted values.
    ciphertext: String,
    revision: i64,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
}

#[utoipa::path(post, path = "/api/v1/secrets_operations/backup", tag = "secrets",
    responses((status = 200, body = SecretsBackup), (status = 403)),
    security(("bearer" = [])))]
pub async fn backup_secrets(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
) -> ApiResult<Json<SecretsBackup>> {
    caller.require_server_admin()?;
    let mut tx = state.store.begin().await?;
    let keys = data_keys::all(&mut tx).await?;
    let rows = secrets::all(&mut tx).await?;
    let target = Target::id_only("secrets", "all");
    let record = audit::by_caller(&state, &caller, &origin, action::SECRETS_BACKED_UP)
        .on(target)
        .with_details(json!({ "secrets": rows.len(), "data_keys": keys.len() }));
    store::audit::append(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(Json(SecretsBackup {
        format: BACKUP_FORMAT.into(),
        data_keys: keys
            .into_iter()
            .map(|k| BackupKey {
                id: k.id,
                wrapped: STANDARD.encode(&k.wrapped),
                master_key_id: k.master_key_id,
                encryptions: k.encryptions,
                created: k.created,
                retired: k.retired,
            })
            .collect(),
        secrets: rows
            .into_iter()
            .map(|s| BackupSecret {
                id: s.id,
                workspace_id: s.workspace_id,
                user_id: s.user_id,
                name: s.name,
                private: s.private,
                internal: s.internal,
                key_id: s.key_id,
                ciphertext: STANDARD.encode(&s.ciphertext),
                revision: s.revision,
                created: s.created,
                updated: s.updated,
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RestoreReport {
    restored: usize,
    /// Secrets that exist already (same id or name) or whose workspace is gone.
    skipped: usize,
}

fn decode_b64(what: &str, value: &str) -> ApiResult<Vec<u8>> {
    STANDARD
        .decode(value)
        .map_err(|_| ApiError::BadRequest(format!("the backup's {what} is not valid base64")))
}

/// Restores the secrets of a backup that do not exist here. Every data key is checked to be
/// wrapped by a master key this server has, and every value to decrypt, before anything is
/// written; the keys and secrets are then written in one transaction.
#[utoipa::path(post, path = "/api/v1/secrets_operations/restore", tag = "secrets",
    request_body = SecretsBackup,
    responses((status = 200, body = RestoreReport), (status = 400), (status = 403)),
    security(("bearer" = [])))]
pub async fn restore_secrets(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Json(backup): Json<SecretsBackup>,
) -> ApiResult<Json<RestoreReport>> {
    caller.require_server_admin()?;
    if backup.format != BACKUP_FORMAT {
        return Err(ApiError::BadRequest(format!(
            "unknown backup format '{}'",
            backup.format
        )));
    }
    let keys = backup
        .data_keys
        .iter()
        .map(|key| {
            Ok(DataKeyRow {
                id: key.id,
                wrapped: decode_b64("data key", &key.wrapped)?,
                master_key_id: key.master_key_id.clone(),
                active: false,
                encryptions: key.encryptions,
                created: key.created,
                retired: key.retired,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let unwrapped = state.keyring.backup_keys(&keys).await.map_err(|e| {
        ApiError::BadRequest(format!("the backup's data keys cannot be restored: {e}"))
    })?;

    let mut rows = Vec::with_capacity(backup.secrets.len());
    for secret in backup.secrets {
        let row = SecretRow {
            ciphertext: decode_b64("ciphertext", &secret.ciphertext)?,
            id: secret.id,
            workspace_id: secret.workspace_id,
            user_id: secret.user_id,
            name: secret.name,
            private: secret.private,
            internal: secret.internal,
            key_id: secret.key_id,
            revision: secret.revision,
            created: secret.created,
            updated: secret.updated,
        };
        state
            .keyring
            .decrypt_backup(
                &unwrapped,
                &secret_aad(row.workspace_id, row.id),
                &row.ciphertext,
            )
            .await
            .map_err(|e| {
                ApiError::BadRequest(format!(
                    "secret {} in the backup cannot be restored: {e}",
                    row.id
                ))
            })?;
        rows.push(row);
    }
    // Everything was checked; the keys and the secrets are stored together or not at all.
    let mut tx = state.store.begin().await?;
    for key in &keys {
        data_keys::insert_retired_if_absent(&mut tx, key).await?;
    }
    let mut restored = 0;
    for row in &rows {
        if secrets::insert_if_absent(&mut tx, row).await? {
            restored += 1;
        }
    }
    let target = Target::id_only("secrets", "all");
    let record = audit::by_caller(&state, &caller, &origin, action::SECRETS_RESTORED)
        .on(target)
        .with_details(json!({ "restored": restored, "skipped": rows.len() - restored }));
    store::audit::append(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(Json(RestoreReport {
        restored,
        skipped: rows.len() - restored,
    }))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_secret, list_secrets))
        .routes(routes!(get_secret, update_secret, delete_secret))
        .routes(routes!(backup_secrets))
        .routes(routes!(restore_secrets))
}

/// The same operations under `/api/v1/workspaces/{workspace}/…` (not the backup and restore).
pub fn workspace_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(workspace_form(routes!(create_secret, list_secrets)))
        .routes(workspace_form(routes!(
            get_secret,
            update_secret,
            delete_secret
        )))
}
