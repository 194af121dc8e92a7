//! Encryption-key administration for server administrators: the HTTP form of `connector-hub
//! keys`. Master-key rotation is left to the command line, so that no master key travels over
//! HTTP.

use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::AppState;
use super::error::ApiResult;
use super::extract::{Json, Query};
use crate::crypto::{KeyStatus, RewrapReport};
use crate::domain::Caller;
use crate::domain::audit::{Origin, action};

#[utoipa::path(get, path = "/api/v1/keys", tag = "keys",
    responses((status = 200, body = Vec<KeyStatus>), (status = 403)),
    security(("bearer" = [])))]
pub async fn key_status(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<KeyStatus>>> {
    caller.require_server_admin()?;
    Ok(Json(state.keyring.status().await?))
}

/// Makes a new data key active; older keys keep decrypting.
#[utoipa::path(post, path = "/api/v1/keys/rotate", tag = "keys",
    responses((status = 200, body = Vec<KeyStatus>), (status = 403)),
    security(("bearer" = [])))]
pub async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
) -> ApiResult<Json<Vec<KeyStatus>>> {
    caller.require_server_admin()?;
    let record = super::audit::by_caller(&state, &caller, &origin, action::KEY_ROTATED);
    state.keyring.rotate(record).await?;
    Ok(Json(state.keyring.status().await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RewrapQuery {
    /// Values re-encrypted per transaction (default 200).
    batch_size: Option<u32>,
}

/// Re-encrypts every value still under an older data key.
#[utoipa::path(post, path = "/api/v1/keys/rewrap", tag = "keys", params(RewrapQuery),
    responses((status = 200, body = RewrapReport), (status = 403)),
    security(("bearer" = [])))]
pub async fn rewrap_keys(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Query(query): Query<RewrapQuery>,
) -> ApiResult<Json<RewrapReport>> {
    caller.require_server_admin()?;
    let record = super::audit::by_caller(&state, &caller, &origin, action::KEY_REWRAPPED);
    let report = state
        .keyring
        .rewrap(query.batch_size.unwrap_or(200), &record)
        .await?;
    Ok(Json(report))
}

/// Removes a retired data key that protects no value (403 otherwise).
#[utoipa::path(delete, path = "/api/v1/keys/{key_id}", tag = "keys",
    params(("key_id" = Uuid, Path)),
    responses((status = 200), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn remove_key(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(key_id): Path<Uuid>,
) -> ApiResult<Json<()>> {
    caller.require_server_admin()?;
    let record = super::audit::by_caller(&state, &caller, &origin, action::KEY_REMOVED);
    state.keyring.remove(key_id, record).await?;
    Ok(Json(()))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(key_status))
        .routes(routes!(rotate_key))
        .routes(routes!(rewrap_keys))
        .routes(routes!(remove_key))
}
