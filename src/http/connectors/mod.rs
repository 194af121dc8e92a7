//! Service connectors in ZenML 0.98 shapes, scoped to a workspace. A private connector exists
//! only for its owner; a shared one is visible to and usable by every member. Secret fields go
//! to an internal encrypted secret and come back only to the owner and workspace admins.

mod access;
mod engine;
mod model;
mod read;
mod write;

use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::openapi::{workspace_alias, workspace_form};
use super::sealing::{self, Visibility};
use super::time;
use crate::connectors::ConnectorType;
use crate::domain::Scope;
use crate::domain::secret::SecretValues;
use crate::store::connectors::ConnectorView;
use crate::store::secrets::SecretRow;

pub(in crate::http) use access::{may_read_secrets, visible, visible_to};
pub use engine::{ResourcesResponse, require_allowed};
pub(in crate::http) use engine::{Target, verify_request, verify_stored};
pub(in crate::http) use model::Detail;
pub use model::{ConnectorRequest, ConnectorResponse};
pub(in crate::http) use write::NewConnector;

pub(in crate::http) fn connector_type<'a>(
    state: &'a AppState,
    name: &str,
) -> ApiResult<&'a dyn ConnectorType> {
    state.catalogue.get(name).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "connector configuration is not valid: the connector type '{name}' is not available on \
             this server"
        ))
    })
}

/// The secret values of a connector read with its encrypted secret (`get`, or a list asked
/// for secrets); `None` when it has none.
pub(super) async fn view_secret(
    state: &AppState,
    view: &ConnectorView,
) -> ApiResult<Option<SecretValues>> {
    match (view.connector.secret_id, &view.secret_ciphertext) {
        (Some(id), Some(ciphertext)) => Ok(Some(
            sealing::open(state, view.connector.workspace_id, id, ciphertext).await?,
        )),
        _ => Ok(None),
    }
}

/// Encrypts a connector's secret fields into a new internal secret; `None` without any.
pub(super) async fn seal_secret(
    state: &AppState,
    scope: &Scope,
    connector_id: Uuid,
    values: &SecretValues,
) -> ApiResult<Option<SecretRow>> {
    if values.keys().next().is_none() {
        return Ok(None);
    }
    let name = format!("connector-{connector_id}");
    let row = sealing::new_secret(state, scope, name, Visibility::Internal, values).await?;
    Ok(Some(row))
}

/// The connector's id in the path (by name, so the workspace-scoped routes work too).
#[derive(Debug, Deserialize)]
pub struct ConnectorPath {
    pub(super) connector_id: Uuid,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(write::create_connector, read::list_connectors))
        .routes(routes!(engine::list_resources))
        .routes(routes!(engine::verify_configuration))
        .routes(routes!(
            read::get_connector,
            write::update_connector,
            write::delete_connector
        ))
        .routes(routes!(engine::verify_connector))
        .routes(routes!(engine::connector_client))
}

/// The same operations under `/api/v1/workspaces/{workspace}/…`, and the resources at ZenML's
/// older path, `/api/v1/workspaces/{workspace}/resources`, besides.
pub fn workspace_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(workspace_form(routes!(
            write::create_connector,
            read::list_connectors
        )))
        .routes(workspace_form(routes!(engine::list_resources)))
        .routes(workspace_alias(
            "/resources",
            "list_workspace_resources",
            routes!(engine::list_resources),
        ))
        .routes(workspace_form(routes!(engine::verify_configuration)))
        .routes(workspace_form(routes!(
            read::get_connector,
            write::update_connector,
            write::delete_connector
        )))
        .routes(workspace_form(routes!(engine::verify_connector)))
        .routes(workspace_form(routes!(engine::connector_client)))
}
