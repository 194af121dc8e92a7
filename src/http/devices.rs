//! The OAuth 2.0 device authorization flow (RFC 8628) that `zenml login <url>` uses: the client
//! asks for a device code, a logged-in user approves it, and the client's polling of
//! `POST /api/v1/login` then yields a token.

use axum::extract::{Path, State};
use axum::response::Html;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::error::{ApiError, ApiResult};
use super::extract::{Form, Json};
use super::{AppState, audit};
use crate::domain::Caller;
use crate::domain::audit::{Origin, Target, action};
use crate::store::devices::{self, DeviceRow};

/// How long a device code may wait for approval.
const DEVICE_CODE_LIFETIME_SECONDS: i64 = 300;
/// How often the client should poll, in seconds.
const POLL_INTERVAL_SECONDS: u64 = 1;

/// The stored form of a device code: it is a bearer secret until exchanged.
pub fn device_code_hash(code: &str) -> String {
    Sha256::digest(code.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn user_code() -> String {
    const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ23456789";
    let mut bytes = [0u8; 8];
    rand_core::OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DeviceAuthorizationForm {
    client_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceAuthorizationResponse {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: String,
    expires_in: i64,
    interval: u64,
}

/// Starts a device login; no authentication needed.
#[utoipa::path(post, path = "/api/v1/device_authorization", tag = "auth",
    request_body(content = DeviceAuthorizationForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = DeviceAuthorizationResponse)))]
pub async fn start(
    State(state): State<AppState>,
    Form(form): Form<DeviceAuthorizationForm>,
) -> ApiResult<Json<DeviceAuthorizationResponse>> {
    let mut secret = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut secret);
    let device_code = URL_SAFE_NO_PAD.encode(secret);
    let now = state.clock.now();
    let device = DeviceRow {
        id: Uuid::new_v4(),
        client_id: form.client_id,
        device_code_hash: device_code_hash(&device_code),
        user_code: user_code(),
        user_id: None,
        expires_at: now + chrono::Duration::seconds(DEVICE_CODE_LIFETIME_SECONDS),
        created: now,
    };
    let mut conn = state.store.write_conn().await?;
    // Unauthenticated callers create these: expired ones go as new ones come.
    devices::delete_expired(&mut conn, now).await?;
    devices::insert(&mut conn, &device).await?;
    let base = state.server.url.clone().unwrap_or_default();
    Ok(Json(DeviceAuthorizationResponse {
        verification_uri: format!("{base}/devices/verify"),
        verification_uri_complete: format!(
            "{base}/devices/verify?device_id={}&user_code={}",
            device.id, device.user_code
        ),
        user_code: device.user_code,
        device_code,
        expires_in: DEVICE_CODE_LIFETIME_SECONDS,
        interval: POLL_INTERVAL_SECONDS,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceVerification {
    user_code: String,
    /// Accepted for ZenML compatibility; devices are not remembered.
    #[allow(dead_code)]
    trusted_device: Option<bool>,
}

/// Approves a waiting device login as the caller: the device then receives a token for the
/// caller's account.
#[utoipa::path(put, path = "/api/v1/devices/{device_id}/verify", tag = "auth",
    params(("device_id" = Uuid, Path)),
    request_body = DeviceVerification,
    responses((status = 200), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Path(device_id): Path<Uuid>,
    Json(verification): Json<DeviceVerification>,
) -> ApiResult<Json<()>> {
    // The device's token would outlive the key: deleting a key must end all it gave access to.
    if caller.api_key_id.is_some() {
        return Err(ApiError::Forbidden(
            "A device login must be approved by a user signed in with a password, not with an \
             API key."
                .into(),
        ));
    }
    let mut tx = state.store.begin().await?;
    let approved = devices::approve(
        &mut tx,
        device_id,
        &verification.user_code,
        caller.user_id,
        state.clock.now(),
    )
    .await?;
    if approved {
        let target = Target::id_only("device", device_id);
        let record =
            audit::by_caller(&state, &caller, &origin, action::DEVICE_AUTHORIZED).on(target);
        crate::store::audit::append(&mut tx, &record).await?;
    }
    tx.commit().await?;
    if approved {
        Ok(Json(()))
    } else {
        Err(ApiError::NotFound(format!(
            "No device login with this id and code is waiting for approval (it may have expired, \
             or been dropped after {} wrong codes).",
            devices::MAX_FAILED_VERIFICATIONS
        )))
    }
}

/// Where `zenml login` sends the user: says how to approve the device.
pub async fn verification_page() -> Html<&'static str> {
    Html(include_str!("device_verification.html"))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(approve))
}
