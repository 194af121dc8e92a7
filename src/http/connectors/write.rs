//! Creating, updating and deleting connectors: validation against the type spec, secret
//! fields sealed into an internal secret, and connectors in use protected.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    ConnectorPath, connector_type,
    engine::require_allowed,
    model::{ConnectorRequest, ConnectorResponse, ConnectorTypeRef},
    seal_secret, view_secret, visible,
};
use crate::connectors::validate::{self, ConnectorDraft, ValidConnector};
use crate::domain::audit::{Origin, Target, action};
use crate::domain::secret::SecretValues;
use crate::domain::{EntityName, LongText, Scope};
use crate::http::error::{ApiError, ApiResult, name_taken};
use crate::http::extract::{Json, Query, WorkspaceQuery};
use crate::http::time;
use crate::http::{AppState, audit};
use crate::store::connectors::{self, ConnectorRow, ConnectorView, LastVerification};
use crate::store::secrets::{self, SecretRow};
use crate::store::{self, Conn, StoreError, components};

pub(super) fn draft_of(request: &ConnectorRequest) -> ConnectorDraft {
    let mut configuration = request.configuration.clone();
    for (key, value) in &request.secrets {
        if let Some(value) = value {
            configuration.insert(key.clone(), Value::String(value.clone()));
        }
    }
    ConnectorDraft {
        auth_method: request.auth_method.clone(),
        resource_types: request.resource_types.clone(),
        resource_id: request.resource_id.clone(),
        expires_at: request.expires_at,
        expires_skew_tolerance: request.expires_skew_tolerance,
        expiration_seconds: request.expiration_seconds,
        configuration,
    }
}

/// Checks a request against its type and this server's policy.
pub(super) fn validated(
    state: &AppState,
    scope: &Scope,
    request: &ConnectorRequest,
) -> ApiResult<ValidConnector> {
    let kind = connector_type(state, request.connector_type.name())?;
    require_allowed(state, scope, &request.auth_method)?;
    validate::validate_labels(&request.labels)?;
    Ok(validate::validate(kind, draft_of(request))?)
}

/// What a connector is besides its validated configuration.
pub(super) struct Identity {
    pub(super) id: Uuid,
    pub(super) name: String,
    pub(super) description: String,
    pub(super) connector_type: String,
    pub(super) shared: bool,
    pub(super) created: DateTime<Utc>,
    pub(super) updated: DateTime<Utc>,
}

pub(super) fn to_row(
    identity: Identity,
    scope: &Scope,
    valid: &ValidConnector,
    labels: &BTreeMap<String, String>,
    secret_id: Option<Uuid>,
) -> ConnectorRow {
    ConnectorRow {
        id: identity.id,
        workspace_id: scope.workspace_id,
        user_id: Some(scope.user_id()),
        name: identity.name,
        description: identity.description,
        connector_type: identity.connector_type,
        auth_method: valid.auth_method.clone(),
        resource_types: valid.resource_types.clone(),
        resource_id: valid.resource_id.clone(),
        supports_instances: valid.supports_instances,
        expires_at: valid.expires_at,
        expires_skew_tolerance: valid.expires_skew_tolerance,
        expiration_seconds: valid.expiration_seconds,
        configuration: valid.configuration.clone(),
        labels: labels.clone(),
        secret_id,
        shared: identity.shared,
        created: identity.created,
        updated: identity.updated,
    }
}

pub(super) fn view_of(row: ConnectorRow, scope: &Scope) -> ConnectorView {
    ConnectorView {
        connector: row,
        owner_name: Some(scope.caller.name.clone()),
        owner_is_admin: Some(scope.caller.is_admin),
        owner_is_service_account: Some(scope.caller.is_service_account),
        owner_created: Some(scope.caller.created),
        owner_updated: Some(scope.caller.updated),
        secret_ciphertext: None,
        verification: LastVerification::default(),
    }
}

#[utoipa::path(post, path = "/api/v1/service_connectors", tag = "service connectors",
    params(WorkspaceQuery), request_body = ConnectorRequest,
    responses((status = 200, body = ConnectorResponse), (status = 400), (status = 403), (status = 409)),
    security(("bearer" = [])))]
pub async fn create_connector(
    State(state): State<AppState>,
    scope: Scope,
    origin: Origin,
    Query(_workspace): Query<WorkspaceQuery>,
    Json(request): Json<ConnectorRequest>,
) -> ApiResult<Json<ConnectorResponse>> {
    let new = NewConnector::prepare(&state, &scope, request).await?;
    let mut batch = state.store.batch();
    new.push(&mut batch);
    let record = audit::in_scope(
        &state,
        &scope,
        &origin,
        action::CONNECTOR_CREATED,
        Target::new("service_connector", new.row.id, &new.row.name),
    );
    store::audit::push(&mut batch, &record);
    let taken = name_taken(
        "create",
        "service connector",
        &new.row.name,
        connectors::NAME_UNIQUE,
    );
    state.store.write(batch).await.map_err(taken)?;
    Ok(Json(new.render(&scope, state.clock.now())))
}

/// A connector validated and with its secret sealed, ready to be written.
pub(in crate::http) struct NewConnector {
    pub row: ConnectorRow,
    secret: Option<SecretRow>,
    values: SecretValues,
}

impl NewConnector {
    /// Validates a request against its type and this server's policy, and encrypts its secret
    /// fields: all that comes before the write, so that it runs before a write transaction
    /// begins (the keyring may need the writer to count an encryption).
    pub(in crate::http) async fn prepare(
        state: &AppState,
        scope: &Scope,
        request: ConnectorRequest,
    ) -> ApiResult<NewConnector> {
        let valid = validated(state, scope, &request)?;
        let id = Uuid::new_v4();
        let secret = seal_secret(state, scope, id, &valid.secrets).await?;
        let now = state.clock.now();
        let identity = Identity {
            id,
            name: request.name.into_inner(),
            description: request.description.into_inner(),
            connector_type: request.connector_type.name().to_owned(),
            shared: request.shared,
            created: now,
            updated: now,
        };
        let row = to_row(
            identity,
            scope,
            &valid,
            &request.labels,
            secret.as_ref().map(|s| s.id),
        );
        Ok(NewConnector {
            row,
            secret,
            values: valid.secrets,
        })
    }

    /// Adds the connector's writes to `batch`.
    pub(in crate::http) fn push(&self, batch: &mut crate::store::Batch) {
        if let Some(secret) = &self.secret {
            secrets::push_insert(batch, secret);
        }
        connectors::push_insert(batch, &self.row);
    }

    /// The connector as stored, with its owner and secret values: what its creator is shown.
    pub(in crate::http) fn render(&self, scope: &Scope, now: DateTime<Utc>) -> ConnectorResponse {
        ConnectorResponse::full(view_of(self.row.clone(), scope), &self.values, now)
    }
}

/// ZenML's `ServiceConnectorUpdate`: absent fields stay as they are, except `resource_id` and
/// `expiration_seconds`, which absent or null clear. `configuration` and `labels` replace the
/// stored ones whole.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorUpdate {
    name: Option<EntityName>,
    #[schema(value_type = Option<String>)]
    connector_type: Option<ConnectorTypeRef>,
    description: Option<LongText>,
    auth_method: Option<String>,
    resource_types: Option<Vec<String>>,
    resource_id: Option<String>,
    #[allow(dead_code)]
    supports_instances: Option<bool>,
    #[serde(default, deserialize_with = "time::deserialize_opt")]
    #[schema(value_type = Option<super::time::Timestamp>)]
    expires_at: Option<DateTime<Utc>>,
    expires_skew_tolerance: Option<i64>,
    expiration_seconds: Option<i64>,
    #[schema(value_type = Option<Object>)]
    configuration: Option<Map<String, Value>>,
    secrets: Option<BTreeMap<String, Option<String>>>,
    labels: Option<BTreeMap<String, String>>,
    shared: Option<bool>,
}

#[utoipa::path(put, path = "/api/v1/service_connectors/{connector_id}", tag = "service connectors",
    params(("connector_id" = Uuid, Path), WorkspaceQuery),
    request_body = ConnectorUpdate,
    responses((status = 200, body = ConnectorResponse), (status = 400), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
pub async fn update_connector(
    State(state): State<AppState>,
    scope: Scope,
    origin: Origin,
    Path(ConnectorPath { connector_id }): Path<ConnectorPath>,
    Query(_workspace): Query<WorkspaceQuery>,
    Json(update): Json<ConnectorUpdate>,
) -> ApiResult<Json<ConnectorResponse>> {
    let view = visible(&mut state.store.conn().await?, &scope, connector_id).await?;
    scope.require_owner_or_admin(view.connector.user_id, "service connector")?;
    let before = view.connector.clone();
    // A private connector is its owner's alone; one without an owner would be nobody's.
    if update.shared == Some(false) && before.user_id.is_none() {
        return Err(ApiError::BadRequest(
            "A connector whose owner was deleted must stay shared: as a private connector \
             nobody could see it."
                .into(),
        ));
    }

    // The configuration to validate: the new one whole, or the stored one with its secrets.
    let configuration = match (update.configuration, update.secrets) {
        (None, None) => {
            let stored = view_secret(&state, &view).await?;
            let mut configuration: Map<String, Value> =
                before.configuration.clone().into_iter().collect();
            for (key, value) in stored.iter().flat_map(|s| s.iter()) {
                configuration.insert(key.to_owned(), Value::String(value.to_owned()));
            }
            configuration
        }
        (configuration, secret_values) => {
            let mut configuration = configuration.unwrap_or_default();
            for (key, value) in secret_values.unwrap_or_default() {
                if let Some(value) = value {
                    configuration.insert(key, Value::String(value));
                }
            }
            configuration
        }
    };
    let type_name = update
        .connector_type
        .as_ref()
        .map_or(before.connector_type.as_str(), |t| t.name())
        .to_owned();
    let kind = connector_type(&state, &type_name)?;
    let auth_method = update
        .auth_method
        .unwrap_or_else(|| before.auth_method.clone());
    require_allowed(&state, &scope, &auth_method)?;
    let labels = update.labels.unwrap_or_else(|| before.labels.clone());
    validate::validate_labels(&labels)?;
    let draft = ConnectorDraft {
        auth_method,
        resource_types: update
            .resource_types
            .unwrap_or_else(|| before.resource_types.clone()),
        resource_id: update.resource_id,
        expires_at: update.expires_at.or(before.expires_at),
        expires_skew_tolerance: update
            .expires_skew_tolerance
            .or(before.expires_skew_tolerance),
        expiration_seconds: update.expiration_seconds,
        configuration,
    };
    let valid = validate::validate(kind, draft)?;
    let secret = seal_secret(&state, &scope, before.id, &valid.secrets).await?;
    let now = state
        .clock
        .now()
        .max(before.updated + Duration::microseconds(1));
    let identity = Identity {
        id: before.id,
        name: update
            .name
            .map_or_else(|| before.name.clone(), EntityName::into_inner),
        description: update
            .description
            .map_or_else(|| before.description.clone(), LongText::into_inner),
        connector_type: type_name,
        shared: update.shared.unwrap_or(before.shared),
        created: before.created,
        updated: now,
    };
    let mut row = to_row(
        identity,
        &scope,
        &valid,
        &labels,
        secret.as_ref().map(|s| s.id),
    );
    row.user_id = before.user_id;
    let mut tx = state.store.begin().await?;
    refuse_changes_in_use(&mut tx, &before, &row).await?;
    if let Some(secret) = &secret {
        secrets::insert(&mut tx, secret).await?;
    }
    connectors::update(&mut tx, &before, &row)
        .await
        .map_err(name_taken(
            "update",
            "service connector",
            &row.name,
            connectors::NAME_UNIQUE,
        ))?;
    if let Some(old_secret) = before.secret_id {
        secrets::delete(&mut tx, scope.workspace_id, old_secret).await?;
    }
    let record = audit::in_scope(
        &state,
        &scope,
        &origin,
        action::CONNECTOR_UPDATED,
        Target::new("service_connector", row.id, &row.name),
    )
    .with_details(json!({ "secrets_changed": secret.is_some() }));
    store::audit::append(&mut tx, &record).await?;
    tx.commit().await?;
    let view = ConnectorView {
        connector: row,
        ..view
    };
    Ok(Json(ConnectorResponse::full(view, &valid.secrets, now)))
}

/// Components rely on what a connector is and reaches: while any use it, its type, auth method,
/// resource types and resource id stay as they are. The connector is locked first, so that no
/// component is linked to it between the count and the update.
pub(super) async fn refuse_changes_in_use(
    tx: &mut Conn,
    before: &ConnectorRow,
    after: &ConnectorRow,
) -> ApiResult<()> {
    let changed = [
        (
            "service type",
            before.connector_type != after.connector_type,
        ),
        (
            "authentication method",
            before.auth_method != after.auth_method,
        ),
        (
            "resource type",
            before.resource_types != after.resource_types,
        ),
        ("resource ID", before.resource_id != after.resource_id),
    ];
    let Some((what, _)) = changed.iter().find(|(_, changed)| *changed) else {
        return Ok(());
    };
    connectors::lock(tx, before.workspace_id, before.id).await?;
    if components::using_connector(tx, before.id).await? > 0 {
        return Err(ApiError::Forbidden(format!(
            "The {what} of a service connector that is already actively used in one or more \
             stack components cannot be changed."
        )));
    }
    Ok(())
}

#[utoipa::path(delete, path = "/api/v1/service_connectors/{connector_id}", tag = "service connectors",
    params(("connector_id" = Uuid, Path), WorkspaceQuery),
    responses((status = 200), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn delete_connector(
    State(state): State<AppState>,
    scope: Scope,
    origin: Origin,
    Path(ConnectorPath { connector_id }): Path<ConnectorPath>,
    Query(_workspace): Query<WorkspaceQuery>,
) -> ApiResult<Json<()>> {
    let view = visible(&mut state.store.conn().await?, &scope, connector_id).await?;
    scope.require_owner_or_admin(view.connector.user_id, "service connector")?;
    let mut tx = state.store.begin().await?;
    connectors::delete(&mut tx, &view.connector)
        .await
        .map_err(|err| match err {
            StoreError::Referenced(count) => ApiError::Forbidden(format!(
                "Service connector with ID {connector_id} cannot be deleted as it is still \
                 referenced by {count} stack components. Before deleting this service \
                 connector, make sure to remove it from all stack components."
            )),
            other => other.into(),
        })?;
    let record = audit::in_scope(
        &state,
        &scope,
        &origin,
        action::CONNECTOR_DELETED,
        Target::new("service_connector", connector_id, &view.connector.name),
    );
    store::audit::append(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(Json(()))
}
