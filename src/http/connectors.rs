//! Service connectors in ZenML 0.98 shapes, scoped to a workspace. A private connector exists
//! only for its owner; a shared one is visible to and usable by every member. Secret fields go
//! to an internal encrypted secret and come back only to the owner and workspace admins.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult, name_taken};
use super::extract::{ClaimedRead, Json, Query, WorkspaceQuery};
use super::page::{Extra, ListRequest, ListSpec, Page, list_parameters, optional_bool};
use super::rendered::{PageKey, RenderedPage};
use super::time;
use super::users::UserResponse;
use crate::connectors::engine::{Connector as EngineConnector, EngineError, Resources};
use crate::connectors::validate::{self, ConnectorDraft, ValidConnector};
use crate::connectors::{ConnectorType, registry};
use crate::crypto::keyring::secret_aad;
use crate::domain::secret::SecretValues;
use crate::domain::{EntityName, LongText, Scope};
use crate::store::connectors::{
    self, ConnectorFilter, ConnectorRow, ConnectorView, LastVerification,
};
use crate::store::query::FieldKind;
use crate::store::secrets::{self, SecretRow};
use crate::store::{Conn, StoreError, components};

/// ZenML's default tolerance: a connector counts as expired this long before `expires_at`.
const DEFAULT_SKEW_SECONDS: i64 = 300;

/// The connector type in a request: its name, or (as ZenML clients may send) the whole type.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ConnectorTypeRef {
    Name(String),
    Spec { connector_type: String },
}

impl ConnectorTypeRef {
    fn name(&self) -> &str {
        match self {
            ConnectorTypeRef::Name(name)
            | ConnectorTypeRef::Spec {
                connector_type: name,
            } => name,
        }
    }
}

/// ZenML's `ServiceConnectorRequest`, plus `shared`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorRequest {
    /// Ignored: the owner is always the caller.
    #[allow(dead_code)]
    user: Option<Uuid>,
    name: EntityName,
    #[schema(value_type = String)]
    connector_type: ConnectorTypeRef,
    #[serde(default)]
    description: LongText,
    auth_method: String,
    #[serde(default)]
    resource_types: Vec<String>,
    resource_id: Option<String>,
    /// Ignored: derived from the resource type.
    #[allow(dead_code)]
    supports_instances: Option<bool>,
    #[serde(default, deserialize_with = "time::deserialize_opt")]
    #[schema(value_type = Option<super::time::Timestamp>)]
    expires_at: Option<DateTime<Utc>>,
    expires_skew_tolerance: Option<i64>,
    expiration_seconds: Option<i64>,
    /// Every configuration value, secret ones included (they are split out and encrypted).
    #[serde(default)]
    #[schema(value_type = Object)]
    configuration: Map<String, Value>,
    /// Secret values sent apart, as ZenML clients before 0.84 do.
    #[serde(default)]
    secrets: BTreeMap<String, Option<String>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// Visible to every member of the workspace (default: only to the owner).
    #[serde(default)]
    shared: bool,
}

impl ConnectorRequest {
    /// A private connector of the given type and configuration, as a full-stack registration
    /// describes one.
    pub(super) fn new(
        name: EntityName,
        connector_type: &str,
        auth_method: &str,
        configuration: Map<String, Value>,
        labels: BTreeMap<String, String>,
    ) -> ConnectorRequest {
        ConnectorRequest {
            user: None,
            name,
            connector_type: ConnectorTypeRef::Name(connector_type.to_owned()),
            description: LongText::default(),
            auth_method: auth_method.to_owned(),
            resource_types: Vec::new(),
            resource_id: None,
            supports_instances: None,
            expires_at: None,
            expires_skew_tolerance: None,
            expiration_seconds: None,
            configuration,
            secrets: BTreeMap::new(),
            labels,
            shared: false,
        }
    }
}

/// ZenML's `ServiceConnectorResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorResponse {
    id: Uuid,
    name: String,
    permission_denied: bool,
    body: ConnectorBody,
    metadata: Option<ConnectorMetadata>,
    resources: ConnectorResources,
}

#[derive(Debug, Serialize, ToSchema)]
struct ConnectorBody {
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = super::time::Timestamp)]
    created: DateTime<Utc>,
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = super::time::Timestamp)]
    updated: DateTime<Utc>,
    user_id: Option<Uuid>,
    description: String,
    connector_type: String,
    auth_method: String,
    resource_types: Vec<String>,
    resource_id: Option<String>,
    supports_instances: bool,
    #[serde(serialize_with = "time::zenml_opt")]
    #[schema(value_type = Option<super::time::Timestamp>)]
    expires_at: Option<DateTime<Utc>>,
    expires_skew_tolerance: Option<i64>,
    workspace_id: Uuid,
    shared: bool,
    /// The credentials are past `expires_at` (less the skew tolerance).
    expired: bool,
}

#[derive(Debug, Serialize, ToSchema)]
struct ConnectorMetadata {
    #[schema(value_type = Object)]
    configuration: BTreeMap<String, Value>,
    expiration_seconds: Option<i64>,
    labels: BTreeMap<String, String>,
    /// The last verification of the stored connector; null if it was never verified.
    last_verification: Option<Verification>,
}

/// The outcome of a verification of a stored connector, from the API or the dashboard.
#[derive(Debug, Serialize, ToSchema)]
pub struct Verification {
    #[serde(serialize_with = "time::zenml")]
    #[schema(value_type = super::time::Timestamp)]
    pub verified_at: DateTime<Utc>,
    /// The engine's error, as the verify call answered it; null when it succeeded.
    pub error: Option<String>,
    /// How many resources of each resource type the connector reached.
    pub resources: BTreeMap<String, usize>,
}

impl Verification {
    fn of(last: &LastVerification) -> Option<Verification> {
        Some(Verification {
            verified_at: last.last_verified_at?,
            error: last.last_verification_error.clone(),
            resources: last
                .last_verified_resources
                .as_deref()
                .and_then(|counts| serde_json::from_str(counts).ok())
                .unwrap_or_default(),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct ConnectorResources {
    user: Option<UserResponse>,
}

/// When the connector starts to count as expired: `expires_at` less the skew tolerance. Create
/// and update bound both; a row stored before they did, whose difference is out of range,
/// counts as expired always.
fn expired_after(row: &ConnectorRow) -> Option<DateTime<Utc>> {
    let skew = row.expires_skew_tolerance.unwrap_or(DEFAULT_SKEW_SECONDS);
    row.expires_at.map(|at| {
        Duration::try_seconds(skew)
            .and_then(|skew| at.checked_sub_signed(skew))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    })
}

fn is_expired(row: &ConnectorRow, now: DateTime<Utc>) -> bool {
    expired_after(row).is_some_and(|after| after < now)
}

/// How much of a connector to render.
#[derive(Debug, Clone, Copy)]
pub(super) struct Detail {
    pub hydrate: bool,
    /// Secret values to merge into the configuration, when the caller may read them.
    pub expand: bool,
}

impl ConnectorResponse {
    /// Hydrated, with the given secret values: what create, update and the client endpoint
    /// answer.
    fn full(view: ConnectorView, secret: &SecretValues, now: DateTime<Utc>) -> Self {
        let detail = Detail {
            hydrate: true,
            expand: true,
        };
        Self::render(view, Some(secret), detail, now)
    }

    pub(super) fn render(
        view: ConnectorView,
        secret: Option<&SecretValues>,
        detail: Detail,
        now: DateTime<Utc>,
    ) -> Self {
        let owner = match (&view.owner_name, view.connector.user_id) {
            (Some(name), Some(id)) => Some(UserResponse::summary(
                id,
                name.clone(),
                view.owner_is_admin.unwrap_or(false),
                view.owner_is_service_account.unwrap_or(false),
                view.owner_created.unwrap_or(view.connector.created),
                view.owner_updated.unwrap_or(view.connector.created),
            )),
            _ => None,
        };
        let row = view.connector;
        let expanded = secret.filter(|_| detail.expand);
        // As ZenML does, expanded secrets come with the metadata even when not hydrating.
        let metadata = (detail.hydrate || expanded.is_some()).then(|| {
            let mut configuration: BTreeMap<String, Value> =
                serde_json::from_str(&row.configuration).unwrap_or_default();
            for (key, value) in expanded.iter().flat_map(|s| s.iter()) {
                configuration.insert(key.to_owned(), Value::String(value.to_owned()));
            }
            ConnectorMetadata {
                configuration,
                expiration_seconds: row.expiration_seconds,
                labels: serde_json::from_str(&row.labels).unwrap_or_default(),
                last_verification: Verification::of(&view.verification),
            }
        });
        ConnectorResponse {
            id: row.id,
            permission_denied: false,
            body: ConnectorBody {
                expired: is_expired(&row, now),
                created: row.created,
                updated: row.updated,
                user_id: row.user_id,
                description: row.description,
                connector_type: row.connector_type,
                auth_method: row.auth_method,
                resource_types: serde_json::from_str(&row.resource_types).unwrap_or_default(),
                resource_id: row.resource_id,
                supports_instances: row.supports_instances,
                expires_at: row.expires_at,
                expires_skew_tolerance: row.expires_skew_tolerance,
                workspace_id: row.workspace_id,
                shared: row.shared,
            },
            name: row.name,
            metadata,
            resources: ConnectorResources { user: owner },
        }
    }
}

pub(super) fn connector_type<'a>(
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

/// The connector, if it exists for this caller.
async fn visible(conn: &mut Conn, scope: &Scope, id: Uuid) -> ApiResult<ConnectorView> {
    let found = connectors::get(conn, scope.workspace_id, id).await?;
    visible_to(scope, id, found)
}

/// `found` if the scope's caller may see it; anyone else learns nothing about it.
pub(super) fn visible_to(
    scope: &Scope,
    id: Uuid,
    found: Option<ConnectorView>,
) -> ApiResult<ConnectorView> {
    found
        .filter(|c| scope.can_see(c.connector.user_id, !c.connector.shared))
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "Unable to get service connector with ID '{id}': No service connector with this ID found"
            ))
        })
}

async fn open_secret(
    state: &AppState,
    workspace_id: Uuid,
    secret_id: Uuid,
    ciphertext: &[u8],
) -> ApiResult<SecretValues> {
    let plaintext = state
        .keyring
        .decrypt(&secret_aad(workspace_id, secret_id), ciphertext)
        .await?;
    SecretValues::from_plaintext(&plaintext).ok_or_else(|| {
        ApiError::Integrity("a connector's stored secret is not a key/value map".into())
    })
}

/// The secret values of a connector read with its encrypted secret (`get`, or a list asked
/// for secrets); `None` when it has none.
async fn view_secret(state: &AppState, view: &ConnectorView) -> ApiResult<Option<SecretValues>> {
    match (view.connector.secret_id, &view.secret_ciphertext) {
        (Some(id), Some(ciphertext)) => Ok(Some(
            open_secret(state, view.connector.workspace_id, id, ciphertext).await?,
        )),
        _ => Ok(None),
    }
}

/// Encrypts a connector's secret fields into a new internal secret row.
async fn seal_secret(
    state: &AppState,
    scope: &Scope,
    connector_id: Uuid,
    values: &SecretValues,
) -> ApiResult<Option<SecretRow>> {
    if values.keys().next().is_none() {
        return Ok(None);
    }
    let now = state.clock.now();
    let id = Uuid::new_v4();
    let (key_id, ciphertext) = state
        .keyring
        .encrypt(&secret_aad(scope.workspace_id, id), &values.to_plaintext())
        .await?;
    Ok(Some(SecretRow {
        id,
        workspace_id: scope.workspace_id,
        user_id: Some(scope.user_id()),
        name: format!("connector-{connector_id}"),
        private: false,
        internal: true,
        key_id,
        ciphertext,
        revision: 1,
        created: now,
        updated: now,
    }))
}

fn draft_of(request: &ConnectorRequest) -> ConnectorDraft {
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
fn validated(
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
struct Identity {
    id: Uuid,
    name: String,
    description: String,
    connector_type: String,
    shared: bool,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
}

fn to_row(
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
        resource_types: serde_json::to_string(&valid.resource_types).expect("strings serialise"),
        resource_id: valid.resource_id.clone(),
        supports_instances: valid.supports_instances,
        expires_at: valid.expires_at,
        expires_skew_tolerance: valid.expires_skew_tolerance,
        expiration_seconds: valid.expiration_seconds,
        configuration: serde_json::to_string(&valid.configuration).expect("JSON values serialise"),
        labels: serde_json::to_string(labels).expect("strings serialise"),
        secret_id,
        shared: identity.shared,
        created: identity.created,
        updated: identity.updated,
    }
}

fn view_of(row: ConnectorRow, scope: &Scope) -> ConnectorView {
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
    Query(_workspace): Query<WorkspaceQuery>,
    Json(request): Json<ConnectorRequest>,
) -> ApiResult<Json<ConnectorResponse>> {
    let new = NewConnector::prepare(&state, &scope, request).await?;
    let mut batch = state.store.batch();
    new.push(&mut batch);
    state.store.write(batch).await.map_err(name_taken(
        "create",
        "service connector",
        &new.row.name,
    ))?;
    Ok(Json(new.render(&scope, state.clock.now())))
}

/// A connector validated and with its secret sealed, ready to be written.
pub(super) struct NewConnector {
    pub row: ConnectorRow,
    secret: Option<SecretRow>,
    labels: BTreeMap<String, String>,
    resource_types: Vec<String>,
    values: SecretValues,
}

impl NewConnector {
    /// Validates a request against its type and this server's policy, and encrypts its secret
    /// fields: all that comes before the write, so that it runs before a write transaction
    /// begins (the keyring may need the writer to count an encryption).
    pub(super) async fn prepare(
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
            labels: request.labels,
            resource_types: valid.resource_types,
            values: valid.secrets,
        })
    }

    /// Adds the connector's writes to `batch`.
    pub(super) fn push(&self, batch: &mut crate::store::Batch) {
        if let Some(secret) = &self.secret {
            secrets::push_insert(batch, secret);
        }
        connectors::push_insert(batch, &self.row, &self.labels, &self.resource_types);
    }

    /// The connector as stored, with its owner and secret values: what its creator is shown.
    pub(super) fn render(&self, scope: &Scope, now: DateTime<Utc>) -> ConnectorResponse {
        ConnectorResponse::full(view_of(self.row.clone(), scope), &self.values, now)
    }
}

const LIST: ListSpec = ListSpec {
    fields: connectors::FIELDS,
    default_sort: "created",
    extras: &[
        Extra::new(
            "expand_secrets",
            FieldKind::Bool,
            "Merge secret values into each configuration (default true; only connectors whose \
             secrets the caller may read).",
        ),
        Extra::new(
            "resource_type",
            FieldKind::Text,
            "Only connectors that provide this resource type.",
        ),
        Extra::new(
            "labels_str",
            FieldKind::Text,
            "Only connectors with these labels: a JSON object (a null value means the key is \
             present), or `key=value,key2=`.",
        ),
        Extra::new("labels", FieldKind::Text, "The same as `labels_str`."),
    ],
};

list_parameters!(ConnectorListQuery, LIST);

/// `labels_str`: a JSON object (`null` values mean "key present") or `k=v,k2=`.
fn parse_labels(text: &str) -> ApiResult<Vec<(String, Option<String>)>> {
    if let Ok(map) = serde_json::from_str::<BTreeMap<String, Option<String>>>(text) {
        return Ok(map.into_iter().collect());
    }
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, "")) => Ok((key.trim().to_owned(), None)),
            Some((key, value)) => Ok((key.trim().to_owned(), Some(value.trim().to_owned()))),
            None => Ok((pair.to_owned(), None)),
        })
        .collect()
}

fn connector_filter(request: &ListRequest) -> ApiResult<ConnectorFilter> {
    let labels = match request
        .extra("labels_str")
        .or_else(|| request.extra("labels"))
    {
        Some(text) => parse_labels(text)?,
        None => Vec::new(),
    };
    // Each label is a term of the query too.
    let values = request.filter_values() + labels.len();
    if values > super::page::MAX_FILTER_VALUES {
        return Err(super::page::too_many_filter_values(values));
    }
    Ok(ConnectorFilter {
        resource_type: request.extra("resource_type").map(str::to_owned),
        labels,
    })
}

#[utoipa::path(get, path = "/api/v1/service_connectors", tag = "service connectors",
    params(ConnectorListQuery),
    responses((status = 200, body = Page<ConnectorResponse>)),
    security(("bearer" = [])))]
pub async fn list_connectors(
    State(state): State<AppState>,
    ClaimedRead { claim, mut conn }: ClaimedRead,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let found = connectors::caller_and_list_version(&mut conn, &claim.key()).await?;
    let (scope, version) = claim.scope_and(found)?;
    let key = PageKey::new(&scope, query.as_deref());
    let now = state.clock.now();
    // The same query string parsed before the page was kept, so it needs no parsing again.
    if let Some(body) = state.pages.get(&key, version, now) {
        drop(conn);
        return Ok(page_body(body, KEPT));
    }
    let request = ListRequest::parse(query.as_deref(), &LIST)?;
    let filter = connector_filter(&request)?;
    let expand = request.flag("expand_secrets")?.unwrap_or(true);
    let listed = connectors::list(
        &mut conn,
        scope.workspace_id,
        scope.user_id(),
        &request.query,
        &filter,
        expand,
    )
    .await?;
    drop(conn);
    let readable = |row: &ConnectorRow| expand && scope.may_read_secrets(row.user_id);
    let mut values = BTreeMap::new();
    for view in listed.items.iter().filter(|v| readable(&v.connector)) {
        if let (Some(id), Some(secret)) =
            (view.connector.secret_id, view_secret(&state, view).await?)
        {
            values.insert(id, secret);
        }
    }
    let fresh_until = listed
        .items
        .iter()
        .filter_map(|view| expired_after(&view.connector))
        .filter(|after| *after >= now)
        .min();
    let page = request.page(listed, |view| {
        let secret = view.connector.secret_id.and_then(|id| values.get(&id));
        let detail = Detail {
            hydrate: request.hydrate,
            expand: readable(&view.connector),
        };
        ConnectorResponse::render(view, secret, detail, now)
    })?;
    let mut body = serde_json::to_vec(&page).map_err(|e| ApiError::Internal(e.to_string()))?;
    // A kept page holds no spare capacity (serialising grows the buffer by doubling).
    body.shrink_to_fit();
    let body = Bytes::from(body);
    // Secret values stay out of the server's memory once their response is sent.
    if values.is_empty() {
        let rendered = RenderedPage {
            version,
            fresh_until,
            body: body.clone(),
        };
        state.pages.keep(key, rendered);
    }
    Ok(page_body(body, RENDERED))
}

/// `X-Cache` says whether a page was served again as kept (`hit`) or rendered (`miss`), for
/// operators watching the cache at work.
const KEPT: &str = "hit";
const RENDERED: &str = "miss";

fn page_body(body: Bytes, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::HeaderName::from_static("x-cache"), cache),
        ],
        body,
    )
        .into_response()
}

/// The connector's id in the path (by name, so the workspace-scoped routes work too).
#[derive(Debug, Deserialize)]
pub struct ConnectorPath {
    connector_id: Uuid,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    /// Include `metadata` (default true).
    #[serde(default, deserialize_with = "optional_bool")]
    hydrate: Option<bool>,
    /// Merge secret values into the configuration (default true; only for the owner and
    /// workspace admins).
    #[serde(default, deserialize_with = "optional_bool")]
    expand_secrets: Option<bool>,
    #[allow(dead_code)] // Read by the `Scope` extractor.
    project_name_or_id: Option<String>,
    #[allow(dead_code)]
    workspace: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/service_connectors/{connector_id}", tag = "service connectors",
    params(("connector_id" = Uuid, Path), GetQuery),
    responses((status = 200, body = ConnectorResponse), (status = 404)),
    security(("bearer" = [])))]
pub async fn get_connector(
    State(state): State<AppState>,
    ClaimedRead { claim, mut conn }: ClaimedRead,
    Path(ConnectorPath { connector_id }): Path<ConnectorPath>,
    Query(query): Query<GetQuery>,
) -> ApiResult<Json<ConnectorResponse>> {
    let (caller, found) = connectors::get_as(&mut conn, &claim.key(), connector_id)
        .await?
        .unzip();
    drop(conn);
    let scope = claim.scope(caller)?;
    let view = visible_to(&scope, connector_id, found.flatten())?;
    let expand =
        query.expand_secrets.unwrap_or(true) && scope.may_read_secrets(view.connector.user_id);
    // The secret came with the connector, in the same query.
    let secret = match expand {
        true => view_secret(&state, &view).await?,
        false => None,
    };
    let detail = Detail {
        hydrate: query.hydrate.unwrap_or(true),
        expand,
    };
    Ok(Json(ConnectorResponse::render(
        view,
        secret.as_ref(),
        detail,
        state.clock.now(),
    )))
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
                serde_json::from_str(&before.configuration).unwrap_or_default();
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
    let labels = match update.labels {
        Some(labels) => labels,
        None => serde_json::from_str(&before.labels).unwrap_or_default(),
    };
    validate::validate_labels(&labels)?;
    let draft = ConnectorDraft {
        auth_method,
        resource_types: update
            .resource_types
            .unwrap_or_else(|| serde_json::from_str(&before.resource_types).unwrap_or_default()),
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
    connectors::update(&mut tx, &before, &row, &labels, &valid.resource_types)
        .await
        .map_err(name_taken("update", "service connector", &row.name))?;
    if let Some(old_secret) = before.secret_id {
        secrets::delete(&mut tx, scope.workspace_id, old_secret).await?;
    }
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
async fn refuse_changes_in_use(
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
    tx.commit().await?;
    Ok(Json(()))
}

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
    pub(super) fn connector_type(&self) -> &str {
        &self.connector_type
    }

    /// Each resource type that lists resources, with their ids.
    pub(super) fn reached(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.resources.iter().filter_map(|r| {
            r.resource_ids
                .as_deref()
                .filter(|ids| !ids.is_empty())
                .map(|ids| (r.resource_type.as_str(), ids))
        })
    }

    /// Why the connector reaches nothing, or some resource type nothing, if it says.
    pub(super) fn error(&self) -> Option<&str> {
        self.error
            .as_deref()
            .or_else(|| self.resources.iter().find_map(|r| r.error.as_deref()))
    }

    pub(super) fn new(
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
    Err(ApiError::Forbidden(format!(
        "Implicit authentication methods for service connectors are disabled for security \
         reasons, because they lend the server's own cloud identity to its users. {why} Requested \
         method: '{}'.",
        registry::IMPLICIT
    )))
}

/// A connector with its secret values, as the engine takes it.
pub(super) fn engine_connector(
    row: &ConnectorRow,
    secrets: SecretValues,
    now: DateTime<Utc>,
) -> EngineConnector {
    EngineConnector {
        id: row.id,
        name: row.name.clone(),
        auth_method: row.auth_method.clone(),
        resource_types: serde_json::from_str(&row.resource_types).unwrap_or_default(),
        resource_id: row.resource_id.clone(),
        configuration: serde_json::from_str(&row.configuration).unwrap_or_default(),
        secrets,
        expires_at: row.expires_at,
        expired: is_expired(row, now),
    }
}

/// A visible connector, checked against the implicit-auth policy, with its secret values.
pub(super) async fn usable(
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
    Path(ConnectorPath { connector_id }): Path<ConnectorPath>,
    Query(query): Query<VerifyQuery>,
) -> ApiResult<Json<ResourcesResponse>> {
    let target = Target {
        resource_type: query.resource_type.as_deref(),
        resource_id: query.resource_id.as_deref(),
        list_resources: query.list_resources.unwrap_or(true),
    };
    Ok(Json(
        verify_stored(&state, &scope, connector_id, target).await?,
    ))
}

/// What a verification looks at.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target<'a> {
    pub resource_type: Option<&'a str>,
    pub resource_id: Option<&'a str>,
    pub list_resources: bool,
}

/// Verifies a stored connector the caller may use against its cloud.
pub(super) async fn verify_stored(
    state: &AppState,
    scope: &Scope,
    connector_id: Uuid,
    target: Target<'_>,
) -> ApiResult<ResourcesResponse> {
    let (view, connector) = usable(state, scope, connector_id).await?;
    let kind = connector_type(state, &view.connector.connector_type)?;
    let now = state.clock.now();
    let outcome = state
        .engine
        .verify(
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
        let mut conn = state.store.write_conn().await?;
        let (workspace, id) = (view.connector.workspace_id, view.connector.id);
        connectors::record_verification(&mut conn, workspace, id, now, error.as_deref(), &counts)
            .await?;
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
pub(super) async fn verify_request(
    state: &AppState,
    scope: &Scope,
    request: ConnectorRequest,
    target: Target<'_>,
) -> ApiResult<ResourcesResponse> {
    let valid = validated(state, scope, &request)?;
    let kind = connector_type(state, request.connector_type.name())?;
    let now = state.clock.now();
    let identity = Identity {
        id: Uuid::nil(),
        name: request.name.into_inner(),
        description: request.description.into_inner(),
        connector_type: request.connector_type.name().to_owned(),
        shared: request.shared,
        created: now,
        updated: now,
    };
    let row = to_row(identity, scope, &valid, &request.labels, None);
    let connector = engine_connector(&row, valid.secrets, now);
    let found = state
        .engine
        .verify(
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
        &row.connector_type,
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
    Path(ConnectorPath { connector_id }): Path<ConnectorPath>,
    Query(query): Query<ClientQuery>,
) -> ApiResult<Json<ConnectorResponse>> {
    let (view, connector) = usable(&state, &scope, connector_id).await?;
    let kind = connector_type(&state, &view.connector.connector_type)?;
    let now = state.clock.now();
    let client = state
        .engine
        .client(
            kind,
            &connector,
            query.resource_type.as_deref(),
            query.resource_id.as_deref(),
            now,
        )
        .await?;
    // A client that carries a stored secret as it is (an access token is its own client) is
    // that secret, and goes only to those who may read the connector's secrets.
    let hands_out_stored_secret = client.secrets.values().any(|handed| {
        connector
            .secrets
            .iter()
            .any(|(_, stored)| stored == handed.as_str())
    });
    if hands_out_stored_secret && !scope.may_read_secrets(view.connector.user_id) {
        return Err(ApiError::Forbidden(
            "This connector's client credentials are its stored secret, which only its owner \
             and workspace admins may receive."
                .into(),
        ));
    }
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
        resource_types: serde_json::to_string(&[&client.resource_type]).expect("strings serialise"),
        resource_id: Some(client.resource_id.clone()),
        supports_instances: false,
        expires_at: client.expires_at,
        expiration_seconds: None,
        configuration: serde_json::to_string(&client.configuration).expect("JSON values serialise"),
        labels: "{}".into(),
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
async fn verify_listed(
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
        Ok(()) => state
            .engine
            .verify(
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
const CONCURRENT_VERIFICATIONS: usize = 8;

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
    let mut pairs = vec![("size".to_owned(), super::page::MAX_PAGE_SIZE.to_string())];
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

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_connector, list_connectors))
        .routes(routes!(list_resources))
        .routes(routes!(verify_configuration))
        .routes(routes!(get_connector, update_connector, delete_connector))
        .routes(routes!(verify_connector))
        .routes(routes!(connector_client))
}

/// The same operations under `/api/v1/workspaces/{workspace}/…`, with ZenML's older paths.
pub fn workspace_router() -> axum::Router<AppState> {
    use axum::routing::{get, post, put};
    axum::Router::new()
        .route(
            "/service_connectors",
            get(list_connectors).post(create_connector),
        )
        .route("/service_connectors/resources", get(list_resources))
        .route("/resources", get(list_resources))
        .route("/service_connectors/verify", post(verify_configuration))
        .route(
            "/service_connectors/{connector_id}",
            get(get_connector)
                .put(update_connector)
                .delete(delete_connector),
        )
        .route(
            "/service_connectors/{connector_id}/verify",
            put(verify_connector),
        )
        .route(
            "/service_connectors/{connector_id}/client",
            get(connector_client),
        )
}
