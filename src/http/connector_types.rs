//! The connector type catalogue: what types, resource types and auth methods this server offers.

use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Query};
use crate::connectors::ConnectorTypeSpec;
use crate::domain::Caller;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TypeFilter {
    connector_type: Option<String>,
    resource_type: Option<String>,
    auth_method: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/service_connector_types", tag = "service connectors",
    params(TypeFilter),
    responses((status = 200, body = Vec<ConnectorTypeSpec>)),
    security(("bearer" = [])))]
pub async fn list_types(
    State(state): State<AppState>,
    _caller: Caller,
    Query(filter): Query<TypeFilter>,
) -> Json<Vec<ConnectorTypeSpec>> {
    let matches = |spec: &ConnectorTypeSpec| {
        filter
            .connector_type
            .as_ref()
            .is_none_or(|t| &spec.connector_type == t)
            && filter
                .resource_type
                .as_ref()
                .is_none_or(|r| spec.resource_type(r).is_some())
            && filter
                .auth_method
                .as_ref()
                .is_none_or(|m| spec.auth_method(m).is_some())
    };
    Json(state.catalogue.specs().filter(matches).collect())
}

#[utoipa::path(get, path = "/api/v1/service_connector_types/{connector_type}", tag = "service connectors",
    params(("connector_type" = String, Path)),
    responses((status = 200, body = ConnectorTypeSpec), (status = 404)),
    security(("bearer" = [])))]
pub async fn get_type(
    State(state): State<AppState>,
    _caller: Caller,
    Path(connector_type): Path<String>,
) -> ApiResult<Json<ConnectorTypeSpec>> {
    state
        .catalogue
        .specs()
        .find(|s| s.connector_type == connector_type)
        .map(Json)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "Service connector type {connector_type} is not available on this server."
            ))
        })
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_types))
        .routes(routes!(get_type))
}
