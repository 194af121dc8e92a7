//! Reading connectors: the list (served again from kept pages while nothing on it changed)
//! and a get by id.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    ConnectorPath, may_read_secrets,
    model::{ConnectorResponse, Detail},
    view_secret, visible_to,
};
use crate::connectors::expiry;
use crate::domain::Scope;
use crate::domain::audit::{AuditEvent, Origin, Target, action};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ClaimedRead, Json, Query};
use crate::http::page::{Extra, ListRequest, ListSpec, Page, list_parameters, optional_bool};
use crate::http::rendered::{PageKey, RenderedPage};
use crate::http::{AppState, audit};
use crate::store::connectors::{self, ConnectorFilter, ConnectorRow};
use crate::store::query::FieldKind;

pub(super) const LIST: ListSpec = ListSpec {
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
pub(super) fn parse_labels(text: &str) -> ApiResult<Vec<(String, Option<String>)>> {
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

pub(super) fn connector_filter(request: &ListRequest) -> ApiResult<ConnectorFilter> {
    let labels = match request
        .extra("labels_str")
        .or_else(|| request.extra("labels"))
    {
        Some(text) => parse_labels(text)?,
        None => Vec::new(),
    };
    // Each label is a term of the query too.
    let values = request.filter_values() + labels.len();
    if values > crate::http::page::MAX_FILTER_VALUES {
        return Err(crate::http::page::too_many_filter_values(values));
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
    origin: Origin,
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
    let readable = |row: &ConnectorRow| expand && may_read_secrets(&scope, row.user_id);
    let mut values = BTreeMap::new();
    let mut reads = Vec::new();
    for view in listed.items.iter().filter(|v| readable(&v.connector)) {
        if let (Some(id), Some(secret)) =
            (view.connector.secret_id, view_secret(&state, view).await?)
        {
            values.insert(id, secret);
            reads.push(secrets_read(&state, &scope, &origin, &view.connector));
        }
    }
    state.audit.record_all(&state.store, &reads).await?;
    let fresh_until = listed
        .items
        .iter()
        .filter_map(|view| {
            expiry::expired_after(
                view.connector.expires_at,
                view.connector.expires_skew_tolerance,
            )
        })
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

/// The record of a response carrying a connector's secret values.
fn secrets_read(
    state: &AppState,
    scope: &Scope,
    origin: &Origin,
    connector: &ConnectorRow,
) -> AuditEvent {
    let target = Target::new("service_connector", connector.id, &connector.name);
    audit::in_scope(state, scope, origin, action::CONNECTOR_SECRETS_READ, target)
}

/// `X-Cache` says whether a page was served again as kept (`hit`) or rendered (`miss`), for
/// operators watching the cache at work.
pub(super) const KEPT: &str = "hit";
pub(super) const RENDERED: &str = "miss";

pub(super) fn page_body(body: Bytes, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::HeaderName::from_static("x-cache"), cache),
        ],
        body,
    )
        .into_response()
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
    origin: Origin,
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
        query.expand_secrets.unwrap_or(true) && may_read_secrets(&scope, view.connector.user_id);
    // The secret came with the connector, in the same query.
    let secret = match expand {
        true => view_secret(&state, &view).await?,
        false => None,
    };
    if secret.is_some() {
        let record = secrets_read(&state, &scope, &origin, &view.connector);
        state.audit.record(&state.store, record).await?;
    }
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
