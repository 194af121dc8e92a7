//! The audit log as the HTTP layer uses it: where a request came from, recording reads and
//! refusals before answering (failing closed), chaining what was written, the optional JSON
//! lines file, and `GET /api/v1/audit_events`.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use tokio::sync::Notify;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::AppState;
use super::client_address::ClientAddress;
use super::error::{ApiError, ApiResult, ToRecord};
use super::extract::Json;
use super::page::{ListRequest, ListSpec, Page, list_parameters};
use crate::domain::audit::{Actor, AuditEvent, Origin, Outcome, Target};
use crate::domain::clock::Clock;
use crate::domain::{Caller, Scope};
use crate::store::{self, Store, audit};

/// How often each process looks for records left unchained (by a process that stopped
/// between its commit and chaining them).
const CHAIN_SWEEP: Duration = Duration::from_secs(5);

/// How long the chainer lets records gather after it is told of one, so that under load one
/// short transaction chains many of them rather than one each.
const CHAIN_GATHER: Duration = Duration::from_millis(200);

/// How far back a chainer told of new records looks for them: a record whose transaction
/// commits later than this after it was made is chained by the next sweep.
const RECENT: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// The audit log's side of the server: shared by every request.
pub struct AuditLog {
    store: Store,
    chain: Arc<Notify>,
    /// `--audit-log-file`: every record this process chains also goes here, as a JSON line.
    file: Arc<Option<Mutex<std::fs::File>>>,
    /// Records this process chained: every committed record is chained by exactly one process.
    chained: Counter,
    /// The server's clock, which records are made by.
    clock: Clock,
}

impl AuditLog {
    /// Opens the JSON lines file (appending) and, on PostgreSQL, starts the task that chains new
    /// records. With several server processes, each record goes to the file of the process that
    /// chained it.
    pub fn start(
        store: &Store,
        file: Option<&Path>,
        chained: Counter,
        clock: Clock,
    ) -> std::io::Result<Arc<AuditLog>> {
        let file = match file {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )),
            None => None,
        };
        let log = Arc::new(AuditLog {
            store: store.clone(),
            chain: store.records_queued(),
            file: Arc::new(file),
            chained,
            clock,
        });
        if store.dialect() == store::query::Dialect::Postgres {
            tokio::spawn(chain_records(Arc::downgrade(&log)));
        }
        let writer_chained = Arc::downgrade(&log);
        store.when_writer_chains(move |chained| {
            if let Some(log) = writer_chained.upgrade() {
                log.append(chained);
            }
        });
        Ok(log)
    }

    /// Writes `event` on its own, before the response that it records is sent. When it cannot
    /// be written the request fails.
    pub async fn record(&self, store: &Store, event: AuditEvent) -> ApiResult<()> {
        self.record_all(store, &[event]).await
    }

    /// As [`AuditLog::record`], for several records written together.
    pub async fn record_all(&self, store: &Store, events: &[AuditEvent]) -> ApiResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut batch = store.batch();
        for event in events {
            audit::push(&mut batch, event);
        }
        store.write(batch).await.map_err(|e| {
            tracing::error!(error = %e, action = %events[0].action, "an audit record could not be written");
            ApiError::from(e)
        })?;
        Ok(())
    }

    /// Chains every committed record now (appending them to the file); how many.
    pub async fn chain_now(&self) -> store::StoreResult<usize> {
        self.chain(audit::Queued::All).await
    }

    async fn chain(&self, queued: audit::Queued) -> store::StoreResult<usize> {
        audit::chain_pending(&self.store, queued, |chained| self.append(chained)).await
    }

    fn append(&self, chained: &[audit::Chained]) {
        self.chained.inc_by(chained.len() as u64);
        let Some(file) = self.file.as_ref() else {
            return;
        };
        let mut lines = Vec::new();
        for record in chained {
            let link = ChainLink {
                seq: record.seq,
                hash: record.hash.clone(),
            };
            let response = AuditEventResponse::from_event(&record.event, Some(link));
            serde_json::to_writer(&mut lines, &response).expect("records serialise");
            lines.push(b'\n');
        }
        let mut file = file.lock().expect("not poisoned");
        if let Err(e) = file.write_all(&lines) {
            tracing::error!(error = %e, "the audit log file could not be written");
        }
    }
}

/// Chains records as they are written, and sweeps for stragglers now and then. Ends when the
/// log is dropped.
async fn chain_records(log: std::sync::Weak<AuditLog>) {
    let mut swept = Instant::now();
    loop {
        let Some(notify) = log.upgrade().map(|log| log.chain.clone()) else {
            return;
        };
        if tokio::time::timeout(CHAIN_SWEEP, notify.notified())
            .await
            .is_ok()
        {
            tokio::time::sleep(CHAIN_GATHER).await;
        }
        let Some(log) = log.upgrade() else {
            return;
        };
        let queued = match swept.elapsed() >= CHAIN_SWEEP {
            true => {
                swept = Instant::now();
                audit::Queued::All
            }
            false => audit::Queued::CreatedSince(log.clock.now() - RECENT),
        };
        if let Err(e) = log.chain(queued).await {
            tracing::warn!(error = %e, "audit records could not be chained yet");
        }
    }
}

/// Writes the audit record a response carries ([`ToRecord`]), with the request's origin and
/// the response's status, before the response is sent. Should the record not be written, the
/// client gets the error instead.
pub async fn write_carried_records(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let origin = origin_of(&parts);
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if let Some(ToRecord(record)) = response.extensions_mut().remove::<ToRecord>() {
        let record = record
            .from_origin(&origin)
            .with_status(response.status().as_u16());
        if let Err(error) = state.audit.record(&state.store, record).await {
            return error.into_response();
        }
    }
    response
}

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(origin_of(parts))
    }
}

/// The client's address and the request's id (`x-request-id`, set for every request).
pub fn origin_of(parts: &Parts) -> Origin {
    Origin {
        client_address: parts
            .extensions
            .get::<ClientAddress>()
            .map(|ClientAddress(address)| address.to_string()),
        request_id: parts
            .headers
            .get(super::REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}

/// One record, as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventResponse {
    id: Uuid,
    /// RFC 3339, UTC, in microseconds.
    created: String,
    actor: Actor,
    workspace_id: Option<Uuid>,
    action: String,
    target: Option<Target>,
    outcome: Outcome,
    status: Option<u16>,
    client_address: Option<String>,
    request_id: Option<String>,
    /// Facts about the action; never a secret value.
    #[schema(value_type = Object)]
    details: serde_json::Value,
    /// The record's place in the hash chain, once it is chained (just after it commits).
    chain: Option<ChainLink>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChainLink {
    seq: i64,
    /// SHA-256 (hex) over the previous record's hash and this record.
    hash: String,
}

impl AuditEventResponse {
    fn from_event(event: &AuditEvent, chain: Option<ChainLink>) -> AuditEventResponse {
        AuditEventResponse {
            id: event.id,
            created: event
                .created
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            actor: event.actor.clone(),
            workspace_id: event.workspace_id,
            action: event.action.clone(),
            target: event.target.clone(),
            outcome: event.outcome,
            status: event.status,
            client_address: event.origin.client_address.clone(),
            request_id: event.origin.request_id.clone(),
            details: serde_json::from_str(&event.details).unwrap_or_default(),
            chain,
        }
    }
}

const LIST: ListSpec = ListSpec {
    fields: audit::FIELDS,
    default_sort: "created",
    extras: &[],
};

list_parameters!(AuditListQuery, LIST);

/// The audit log, in the list protocol: filter by `action` (e.g. `startswith:secret.`),
/// `actor`, `workspace`, `target_id`, `outcome` and `created`. Server administrators see
/// every record, workspace administrators those of their workspaces; others get 403.
#[utoipa::path(get, path = "/api/v1/audit_events", tag = "audit",
    params(AuditListQuery),
    responses((status = 200, body = Page<AuditEventResponse>), (status = 401), (status = 403), (status = 422)),
    security(("bearer" = [])))]
pub async fn list_audit_events(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Page<AuditEventResponse>>> {
    let request = ListRequest::parse(query.as_deref(), &LIST)?;
    let mut conn = state.store.conn().await?;
    let workspaces = match caller.is_admin {
        true => None,
        false => {
            let administered =
                store::workspaces::administered_by(&mut conn, caller.user_id).await?;
            if administered.is_empty() {
                return Err(ApiError::Forbidden(
                    "the audit log is open to server administrators and workspace administrators"
                        .into(),
                ));
            }
            Some(administered)
        }
    };
    let listed = audit::list(&mut conn, &request.query, workspaces.as_deref()).await?;
    drop(conn);
    let listed = listed.try_map(|row| {
        let chain = match (row.chain_seq, &row.hash) {
            (Some(seq), Some(hash)) => Some(ChainLink {
                seq,
                hash: hash.clone(),
            }),
            _ => None,
        };
        row.event()
            .map(|event| AuditEventResponse::from_event(&event, chain))
    })?;
    Ok(Json(request.page(listed, |item| item)?))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_events))
}

/// A record of the caller's `action` on `target` in the request's workspace, answered 200.
pub fn in_scope(
    state: &AppState,
    scope: &Scope,
    origin: &Origin,
    action: &str,
    target: Target,
) -> AuditEvent {
    AuditEvent::in_scope(scope, action, state.clock.now())
        .from_origin(origin)
        .on(target)
}

/// A record of the caller's `action`, in no workspace, answered 200 (its target follows).
pub fn by_caller(state: &AppState, caller: &Caller, origin: &Origin, action: &str) -> AuditEvent {
    AuditEvent::new(
        Actor::of(caller),
        action,
        Outcome::Success,
        state.clock.now(),
    )
    .with_status(200)
    .from_origin(origin)
}
