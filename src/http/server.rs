//! Server identity and health: `/api/v1/info`, `/api/v1/version`, `/health`, `/ready`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::AppState;
use super::extract::Json;
use crate::crypto::CryptoError;
use crate::store::StoreError;

/// The version of ZenML's API this server speaks.
pub const ZENML_API_VERSION: &str = "0.98.0";

/// ZenML's `ServerModel`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerInfo {
    pub id: Uuid,
    pub name: String,
    pub version: String,
    pub active: bool,
    pub debug: bool,
    /// Never `cloud`: ZenML clients would take this server for ZenML Pro.
    pub deployment_type: String,
    pub database_type: String,
    pub secrets_store_type: String,
    pub auth_scheme: String,
    /// Empty when not configured (ZenML clients need a string).
    pub server_url: String,
    pub dashboard_url: String,
    pub analytics_enabled: bool,
    pub metadata: std::collections::BTreeMap<String, String>,
}

#[utoipa::path(get, path = "/api/v1/info", tag = "server",
    responses((status = 200, body = ServerInfo)))]
pub async fn info(State(state): State<AppState>) -> Json<ServerInfo> {
    let mut metadata = std::collections::BTreeMap::new();
    metadata.insert(
        "server".into(),
        format!("connector-hub {}", env!("CARGO_PKG_VERSION")),
    );
    Json(ServerInfo {
        id: state.server.id,
        name: "connector-hub".into(),
        version: ZENML_API_VERSION.into(),
        active: true,
        debug: false,
        deployment_type: "other".into(),
        database_type: if state.server.database_type == "sqlite" {
            "sqlite"
        } else {
            "other"
        }
        .into(),
        secrets_store_type: "sql".into(),
        auth_scheme: "OAUTH2_PASSWORD_BEARER".into(),
        server_url: state.server.url.clone().unwrap_or_default(),
        dashboard_url: String::new(),
        analytics_enabled: false,
        metadata,
    })
}

#[utoipa::path(get, path = "/api/v1/version", tag = "server",
    responses((status = 200, body = String, content_type = "application/json")))]
pub async fn version() -> Json<&'static str> {
    Json(ZENML_API_VERSION)
}

/// Liveness: answers `"OK"` once the server accepts requests.
#[utoipa::path(get, path = "/health", tag = "server",
    responses((status = 200, body = String, content_type = "application/json")))]
pub async fn health() -> Json<&'static str> {
    Json("OK")
}

/// How long `/ready` waits for the database before it answers 503.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/ready` found: `ok`, or why not.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not ready`.
    pub status: String,
    pub database: String,
    pub keyring: String,
}

/// Readiness, for load balancers and Kubernetes: 200 when the database answers and the keyring
/// can encrypt with the active data key, else 503 with the reason (while PostgreSQL restarts,
/// say). `/health` only says that the process serves.
#[utoipa::path(get, path = "/ready", tag = "server",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    const OK: &str = "ok";
    let unknown = || "not checked: the database did not answer".to_owned();
    let (database, keyring) =
        match tokio::time::timeout(READY_TIMEOUT, state.keyring.check_ready()).await {
            Ok(Ok(())) => (OK.to_owned(), OK.to_owned()),
            Ok(Err(CryptoError::Store(StoreError::NotFound))) => (
                OK.to_owned(),
                "the database names no active data key".to_owned(),
            ),
            Ok(Err(CryptoError::Store(e))) => (e.to_string(), unknown()),
            Ok(Err(e)) => (OK.to_owned(), e.to_string()),
            Err(_) => (
                format!("no answer within {} s", READY_TIMEOUT.as_secs()),
                unknown(),
            ),
        };
    let ready = database == OK && keyring == OK;
    let status = match ready {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    let readiness = Readiness {
        status: if ready { "ready" } else { "not ready" }.into(),
        database,
        keyring,
    };
    (status, Json(readiness))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(info))
        .routes(routes!(version))
        .routes(routes!(health))
        .routes(routes!(ready))
}
