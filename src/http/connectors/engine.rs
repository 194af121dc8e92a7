//! Running connectors against their clouds: verify (recorded on the connector), resource
//! listings and the client credentials handed out.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    ConnectorPath, connector_type, may_read_secrets,
    model::{ConnectorRequest, ConnectorResponse},
    read::{LIST, connector_filter},
    view_secret, visible,
    write::validated,
};
use crate::connectors::ValidConnector;
use crate::connectors::engine::{self, Connector as EngineConnector, EngineError, Resources};
use crate::connectors::{catalogue, expiry};
use crate::domain::Scope;
use crate::domain::audit::{Actor, AuditEvent, Origin, Outcome, Target as AuditTarget, action};
use crate::domain::secret::SecretValues;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Json, Query};
use crate::http::page::{ListRequest, optional_bool};
use crate::http::{AppState, audit};
use crate::store;
use crate::store::connectors::{self, ConnectorRow, ConnectorView};

/// ZenML's `ServiceConnectorResourcesModel`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourcesResponse {
    id: Option<Uuid>,
    name: Option<String>,
    connector_type: String,
    resources: Vec<TypedResources>,
    error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TypedResources {
    resource_type: String,
    resource_ids: Option<Vec<String>>,
    error: Option<String>,
}

impl ResourcesResponse {
    pub(in crate::http) fn connector_type(&self) -> &str {
        &self.connector_type
    }

    /// Each resource type that lists resources, with their ids.
    pub(in crate::http) fn reached(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.resources.iter().filter_map(|r| {
            r.resource_ids
                .as_deref()
                .filter(|ids| !ids.is_empty())
                .map(|ids| (r.resource_type.as_str(), ids))
        })
    }

    /// Why the connector reaches nothing, or some resource type nothing, if it says.
    pub(in crate::http) fn error(&self) -> Option<&str> {
        self.error
            .as_deref()
            .or_else(|| self.resources.iter().find_map(|r| r.error.as_deref()))
    }

    pub(in crate::http) fn new(
        id: Option<Uuid>,
        name: &str,
        connector_type: &str,
        found: Resources,
    ) -> Self {
        ResourcesResponse {
            id,
            name: Some(name.to_owned()),
            connector_type: connector_type.to_owned(),
            resources: found
                .resources
                .into_iter()
                .map(|r| TypedResources {
                    resource_type: r.resource_type,
                    resource_ids: r.resource_ids,
                    error: r.error,
                })
                .collect(),
            error: found.error,
        }
    }
}

/// Refuses implicit authentication where the administrator has not allowed it.
pub fn require_allowed(state: &AppState, scope: &Scope, auth_method: &str) -> ApiResult<()> {
    if state.catalogue.auth_method_allowed_in(
        auth_method,
        scope.workspace_id,
        &scope.workspace_name,
    ) {
        return Ok(());
    }
    let why = if state.catalogue.auth_method_enabled(auth_method) {
        format!(
            "The administrator allows them only in some workspaces, and '{}' is not one of them \
             (see --implicit-auth-workspaces).",
            scope.workspace_name
        )
    } else {
        "An administrator can enable them by setting ZENML_ENABLE_IMPLICIT_AUTH_METHODS=true."
            .to_owned()
    };
    let refusal = ApiError::Forbidden(format!(
        "Implicit authentication methods for service connectors are disabled for security \
         reasons, because they lend the server's own cloud identity to its users. {why} Requested \
         method: '{}'.",
        catalogue::IMPLICIT
    ));
    let record = AuditEvent::new(
        Actor::of(&scope.caller),
        action::IMPLICIT_AUTH_REFUSED,
        Outcome::Denied,
        state.clock.now(),
    )
    .in_workspace(scope.workspace_id)
    .with_details(json!({ "auth_method": auth_method }));
    Err(refusal.recorded(record))
}

/// A stored connector with its secret values, as the engine takes it.
pub(in crate::http) fn engine_connector(
    row: &ConnectorRow,
    secrets: SecretValues,
    now: DateTime<Utc>,
) -> EngineConnector {
    let (expires_at, skew) = (row.expires_at, row.expires_skew_tolerance);
    EngineConnector {
        id: row.id,
        name: row.name.clone(),
        auth_method: row.auth_method.clone(),
        resource_types: row.resource_types.clone(),
        resource_id: row.resource_id.clone(),
        configuration: row.configuration.clone(),
        secrets,
        expires_at,
        usable_until: expiry::expired_after(expires_at, skew),
        expired: expiry::is_expired(expires_at, skew, now),
        expiration_seconds: row.expiration_seconds,
    }
}

/// A connector that is not stored (its id is nil), as validated, the way the engine takes it.
fn proposed_connector(name: String, valid: ValidConnector, now: DateTime<Utc>) -> EngineConnector {
    let (expires_at, skew) = (valid.expires_at, valid.expires_skew_tolerance);
    EngineConnector {
        id: Uuid::nil(),
        name,
        usable_until: expiry::expired_after(expires_at, skew),
        expired: expiry::is_expired(expires_at, skew, now),
        expires_at,
        expiration_seconds: valid.expiration_seconds,
        auth_method: valid.auth_method,
        resource_types: valid.resource_types,
        resource_id: valid.resource_id,
        configuration: valid.configuration,
        secrets: valid.secrets,
    }
}

/// A visible connector, checked against the implicit-auth policy, with its secret values.
pub(in crate::http) async fn usable(
    state: &AppState,
    scope: &Scope,
    connector_id: Uuid,
) -> ApiResult<(ConnectorView, EngineConnector)> {
    let view = visible(&mut state.store.conn().await?, scope, connector_id).await?;
    require_allowed(state, scope, &view.connector.auth_method)?;
    let secret = view_secret(state, &view).await?.unwrap_or_default();
    let connector = engine_connector(&view.connector, secret, state.clock.now());
    Ok((view, connector))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    /// Verify only this resource type.
    resource_type: Option<String>,
    /// Verify only this resource (its id in any accepted form).
    resource_id: Option<String>,
    /// List the resources the connector reaches (default true).
    #[serde(default, deserialize_with = "optional_bool")]
    list_resources: Option<bool>,
    #[allow(dead_code)] // Read by the `Scope` extractor.
    project_name_or_id: Option<String>,
    #[allow(dead_code)]
    workspace: Option<String>,
}

/// Verifies a stored connector against its cloud and lists the resources it reaches.
#[utoipa::path(put, path = "/api/v1/service_connectors/{connector_id}/verify", tag = "service connectors",
    params(("connector_id" = Uuid, Path), VerifyQuery),
    responses((status = 200, body = ResourcesResponse), (status = 400), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn verify_connector(
    State(state): State<AppState>,
    scope: Scope,
    origin: Origin,
    Path(ConnectorPath { connector_id }): Path<ConnectorPath>,
    Query(query): Query<VerifyQuery>,
) -> ApiResult<Json<ResourcesResponse>> {
    let target = Target {
        resource_type: query.resource_type.as_deref(),
        resource_id: query.resource_id.as_deref(),
        list_resources: query.list_resources.unwrap_or(true),
    };
    Ok(Json(
        verify_stored(&state, &scope, &origin, connector_id, target).await?,
    ))
}

/// What a verification looks at.
#[derive(Debug, Clone, Copy)]
pub(in crate::http) struct Target<'a> {
    pub resource_type: Option<&'a str>,
    pub resource_id: Option<&'a str>,
    pub list_resources: bool,
}

/// Verifies a stored connector the caller may use against its cloud.
pub(in crate::http) async fn verify_stored(
    state: &AppState,
    scope: &Scope,
    origin: &Origin,
    connector_id: Uuid,
    target: Target<'_>,
) -> ApiResult<ResourcesResponse> {
    let (view, connector) = usable(state, scope, connector_id).await?;
    let kind = connector_type(state, &view.connector.connector_type)?;
    let now = state.clock.now();
    let outcome = engine::verify(
        kind,
        &connector,
        target.resource_type,
        target.resource_id,
        target.list_resources,
        now,
    )
    .await;
    // A request that does not fit the connector says nothing about its credentials.
    if !matches!(outcome, Err(EngineError::Invalid(_))) {
        let (error, counts) = match &outcome {
            Ok(found) => (found.first_error().map(str::to_owned), found.counts()),
            Err(failure) => (Some(failure.to_string()), BTreeMap::new()),
        };
        let mut tx = state.store.begin().await?;
        let (workspace, id) = (view.connector.workspace_id, view.connector.id);
        connectors::record_verification(&mut tx, workspace, id, now, error.as_deref(), &counts)
            .await?;
        let on = AuditTarget::new("service_connector", id, &view.connector.name);
        let mut record = audit::in_scope(state, scope, origin, action::CONNECTOR_VERIFIED, on)
            .with_details(json!({
                "resource_type": target.resource_type,
                "resource_id": target.resource_id,
                "resources": counts,
            }));
        if error.is_some() {
            record.outcome = Outcome::Error;
        }
        store::audit::append(&mut tx, &record).await?;
        tx.commit().await?;
    }
    let found = outcome?;
    Ok(ResourcesResponse::new(
        Some(connector.id),
        &connector.name,
        &view.connector.connector_type,
        found,
    ))
}

/// Verifies a connector configuration that is not stored.
#[utoipa::path(post, path = "/api/v1/service_connectors/verify", tag = "service connectors",
    params(VerifyQuery), request_body = ConnectorRequest,
    responses((status = 200, body = ResourcesResponse), (status = 400), (status = 403)),
    security(("bearer" = [])))]
pub async fn verify_configuration(
    State(state): State<AppState>,
    scope: Scope,
    Query(query): Query<VerifyQuery>,
    Json(request): Json<ConnectorRequest>,
) -> ApiResult<Json<ResourcesResponse>> {
    let target = Target {
        resource_type: query.resource_type.as_deref(),
        resource_id: query.resource_id.as_deref(),
        list_resources: query.list_resources.unwrap_or(true),
    };
    Ok(Json(verify_request(&state, &scope, request, target).await?))
}

/// Verifies a connector described by a request, without storing it.
pub(in crate::http) async fn verify_request(
    state: &AppState,
    scope: &Scope,
    request: ConnectorRequest,
    target: Target<'_>,
) -> ApiResult<ResourcesResponse> {
    let valid = validated(state, scope, &request)?;
    let type_name = request.connector_type.name();
    let kind = connector_type(state, type_name)?;
    let now = state.clock.now();
    let connector = proposed_connector(request.name.into_inner(), valid, now);
    let found = engine::verify(
        kind,
        &connector,
        target.resource_type,
        target.resource_id,
        target.list_resources,
        now,
    )
    .await?;
    Ok(ResourcesResponse::new(
        None,
        &connector.name,
        type_name,
        found,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ClientQuery {
    /// The resource type to get credentials for (needed for multi-type connectors).
    resource_type: Option<String>,
    /// The resource to get credentials for (needed where a type has many resources).
    resource_id: Option<String>,
    #[allow(dead_code)] // Read by the `Scope` extractor.
    project_name_or_id: Option<String>,
    #[allow(dead_code)]
    workspace: Option<String>,
}

/// Short-lived credentials for one resource, as a connector of the type a client uses for it
/// (`azure` access token, `kubernetes` token, `docker` password). The connector's own
/// long-lived secret never leaves the server.
#[utoipa::path(get, path = "/api/v1/service_connectors/{connector_id}/client", tag = "service connectors",
    params(("connector_id" = Uuid, Path), ClientQuery),
    responses((status = 200, body = ConnectorResponse), (status = 400), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn connector_client(
    State(state): State<AppState>,
    scope: Scope,
    origin: Origin,
    Path(ConnectorPath { connector_id }): Path<ConnectorPath>,
    Query(query): Query<ClientQuery>,
) -> ApiResult<Json<ConnectorResponse>> {
    let (view, connector) = usable(&state, &scope, connector_id).await?;
    let kind = connector_type(&state, &view.connector.connector_type)?;
    let now = state.clock.now();
    let on = AuditTarget::new("service_connector", connector_id, &view.connector.name);
    let record = audit::in_scope(&state, &scope, &origin, action::CONNECTOR_CLIENT_ISSUED, on);
    let client = match engine::client(
        kind,
        &connector,
        query.resource_type.as_deref(),
        query.resource_id.as_deref(),
        now,
    )
    .await
    {
        Ok(client) => client,
        Err(EngineError::Cloud(message)) => {
            let mut record = record.with_details(json!({
                "resource_type": query.resource_type,
                "resource_id": query.resource_id,
            }));
            record.outcome = Outcome::Error;
            return Err(ApiError::CloudAuthorization(message).recorded(record));
        }
        Err(invalid) => return Err(invalid.into()),
    };
    // A client that carries a stored secret as it is (an access token is its own client) is
    // that secret, and goes only to those who may read the connector's secrets.
    let hands_out_stored_secret = client.secrets.values().any(|handed| {
        connector
            .secrets
            .iter()
            .any(|(_, stored)| stored == handed.as_str())
    });
    if hands_out_stored_secret && !may_read_secrets(&scope, view.connector.user_id) {
        let mut record = record.with_details(json!({
            "resource_type": client.resource_type,
            "resource_id": client.resource_id,
        }));
        record.outcome = Outcome::Denied;
        return Err(ApiError::Forbidden(
            "This connector's client credentials are its stored secret, which only its owner \
             and workspace admins may receive."
                .into(),
        )
        .recorded(record));
    }
    let record = record.with_details(json!({
        "resource_type": client.resource_type,
        "resource_id": client.resource_id,
        "connector_type": client.connector_type,
        "expires_at": client.expires_at.map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    }));
    state.audit.record(&state.store, record).await?;
    let secrets = SecretValues::parse(
        client
            .secrets
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.to_string())))
            .collect(),
    )?;
    let parent = &view.connector;
    let row = ConnectorRow {
        name: format!(
            "{} ({} | {} client)",
            parent.name, client.resource_type, client.resource_id
        ),
        description: parent.description.clone(),
        connector_type: client.connector_type.to_owned(),
        auth_method: client.auth_method.to_owned(),
        resource_types: vec![client.resource_type.clone()],
        resource_id: Some(client.resource_id.clone()),
        supports_instances: false,
        expires_at: client.expires_at,
        expiration_seconds: None,
        configuration: client.configuration.clone(),
        labels: BTreeMap::new(),
        secret_id: None,
        ..parent.clone()
    };
    let view = ConnectorView {
        connector: row,
        ..view
    };
    Ok(Json(ConnectorResponse::full(view, &secrets, now)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ResourcesQuery {
    connector_type: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    labels_str: Option<String>,
    #[allow(dead_code)] // Read by the `Scope` extractor.
    project_name_or_id: Option<String>,
    #[allow(dead_code)]
    workspace: Option<String>,
    // Sent by ZenML clients; a resource list is not paged.
    #[allow(dead_code)]
    sort_by: Option<String>,
    #[allow(dead_code)]
    logical_operator: Option<String>,
    #[allow(dead_code)]
    page: Option<u32>,
    #[allow(dead_code)]
    size: Option<u32>,
}

/// One connector's part of a resource listing; `None` for a connector that cannot serve the
/// request (ZenML leaves those out).
pub(super) async fn verify_listed(
    state: &AppState,
    scope: &Scope,
    type_name: String,
    connector: EngineConnector,
    (resource_type, resource_id): &(Option<String>, Option<String>),
    now: DateTime<Utc>,
) -> Option<ResourcesResponse> {
    let kind = connector_type(state, &type_name).ok()?;
    let found = match require_allowed(state, scope, &connector.auth_method) {
        Err(refusal) => {
            let mut found = Resources::unlisted(&connector.resource_types);
            found.fail(refusal.to_string());
            found
        }
        Ok(()) => engine::verify(
            kind,
            &connector,
            resource_type.as_deref(),
            resource_id.as_deref(),
            true,
            now,
        )
        .await
        .ok()?,
    };
    Some(ResourcesResponse::new(
        Some(connector.id),
        &connector.name,
        &type_name,
        found,
    ))
}

/// Connectors verified at once while listing resources.
pub(super) const CONCURRENT_VERIFICATIONS: usize = 8;

/// The resources every visible connector reaches, each connector verified against its cloud.
#[utoipa::path(get, path = "/api/v1/service_connectors/resources", tag = "service connectors",
    params(ResourcesQuery),
    responses((status = 200, body = Vec<ResourcesResponse>)),
    security(("bearer" = [])))]
pub async fn list_resources(
    State(state): State<AppState>,
    scope: Scope,
    Query(query): Query<ResourcesQuery>,
) -> ApiResult<Json<Vec<ResourcesResponse>>> {
    let mut pairs = vec![(
        "size".to_owned(),
        crate::http::page::MAX_PAGE_SIZE.to_string(),
    )];
    if let Some(connector_type) = &query.connector_type {
        pairs.push((
            "connector_type".to_owned(),
            format!("equals:{connector_type}"),
        ));
    }
    if let Some(resource_type) = &query.resource_type {
        pairs.push(("resource_type".to_owned(), resource_type.clone()));
    }
    if let Some(labels) = &query.labels_str {
        pairs.push(("labels_str".to_owned(), labels.clone()));
    }
    let request = ListRequest::from_pairs(pairs, &LIST)?;
    let filter = connector_filter(&request)?;
    let mut conn = state.store.conn().await?;
    let listed = connectors::list(
        &mut conn,
        scope.workspace_id,
        scope.user_id(),
        &request.query,
        &filter,
        true,
    )
    .await?;
    drop(conn);
    let now = state.clock.now();
    let mut connectors = Vec::new();
    for view in &listed.items {
        let secret = view_secret(&state, view).await?.unwrap_or_default();
        let connector = engine_connector(&view.connector, secret, now);
        connectors.push((view.connector.connector_type.clone(), connector));
    }
    let target = (query.resource_type, query.resource_id);
    let verified = futures::stream::iter(connectors.into_iter().map(|(type_name, connector)| {
        verify_listed(&state, &scope, type_name, connector, &target, now)
    }))
    .buffered(CONCURRENT_VERIFICATIONS)
    .filter_map(std::future::ready)
    .collect::<Vec<_>>()
    .await;
    Ok(Json(verified))
}
