//! The audit log's table: records written with the changes they record, chained afterwards
//! into one hash chain per database, listed, verified and purged.
//!
//! Chaining after the commit (rather than in it) keeps the chain's lock out of every audited
//! transaction: concurrent writes commit side by side, and one short transaction chains whatever
//! has committed since, in any process.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::query::{Arg, Field, FieldKind, ListQuery, Listed, SqlBuilder};
use super::{
    Batch, Conn, Store, StoreError, StoreResult, classify, execute, execute_unprepared, fetch_page,
    with_conn,
};
use crate::domain::audit::{Actor, AuditEvent, Origin, Outcome, Target};

/// Records chained per transaction.
const CHAIN_BATCH: usize = 500;

const INSERT: &str = "INSERT INTO audit_events (id, created, actor_id, actor_name, actor_kind, \
    api_key_id, workspace_id, action, target_type, target_id, target_name, outcome, status, \
    client_address, request_id, details) VALUES ";

const COLUMNS: &str = "id, created, actor_id, actor_name, actor_kind, api_key_id, workspace_id, \
    action, target_type, target_id, target_name, outcome, status, client_address, request_id, \
    details, chain_seq, prev_hash, hash";

fn insert_statement(statement: &mut SqlBuilder, event: &AuditEvent) {
    let target = event.target.as_ref();
    statement.push(INSERT).bind_tuple([
        Arg::Uuid(event.id),
        Arg::Time(event.created),
        Arg::opt_uuid(event.actor.id),
        Arg::Text(event.actor.name.clone()),
        Arg::Text(event.actor.kind.clone()),
        Arg::opt_uuid(event.actor.api_key_id),
        Arg::opt_uuid(event.workspace_id),
        Arg::Text(event.action.clone()),
        Arg::opt_text(target.map(|t| t.kind.as_str())),
        Arg::opt_text(target.and_then(|t| t.id.as_deref())),
        Arg::opt_text(target.and_then(|t| t.name.as_deref())),
        Arg::Text(event.outcome.as_str().into()),
        Arg::opt_int(event.status.map(i64::from)),
        Arg::opt_text(event.origin.client_address.as_deref()),
        Arg::opt_text(event.origin.request_id.as_deref()),
        Arg::Text(event.details.clone()),
    ]);
}

/// Adds the record to `batch`, to commit with the batch's other writes.
pub fn push(batch: &mut Batch, event: &AuditEvent) {
    if !batch.audited {
        return;
    }
    let mut statement = batch.statement();
    insert_statement(&mut statement, event);
    batch.push(statement);
}

/// Writes the record on `conn`: inside its transaction, if it holds one.
pub async fn append(conn: &mut Conn, event: &AuditEvent) -> StoreResult<()> {
    if !conn.audited {
        return Ok(());
    }
    let mut statement = SqlBuilder::new("");
    insert_statement(&mut statement, event);
    execute(conn, statement).await.map(|_| ())
}

/// A record as stored, with its place in the chain once it has one.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    id: Uuid,
    created: DateTime<Utc>,
    actor_id: Option<Uuid>,
    actor_name: String,
    actor_kind: String,
    api_key_id: Option<Uuid>,
    workspace_id: Option<Uuid>,
    action: String,
    target_type: Option<String>,
    target_id: Option<String>,
    target_name: Option<String>,
    outcome: String,
    status: Option<i64>,
    client_address: Option<String>,
    request_id: Option<String>,
    details: String,
    pub chain_seq: Option<i64>,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

impl AuditRow {
    /// The record's content; a value no writer produces is a corrupt record.
    pub fn event(&self) -> StoreResult<AuditEvent> {
        let corrupt =
            |what: &str| StoreError::Corrupt(format!("the audit record {} has {what}", self.id));
        Ok(AuditEvent {
            id: self.id,
            created: self.created,
            actor: Actor {
                id: self.actor_id,
                name: self.actor_name.clone(),
                kind: self.actor_kind.clone(),
                api_key_id: self.api_key_id,
            },
            workspace_id: self.workspace_id,
            action: self.action.clone(),
            target: self.target_type.as_ref().map(|kind| Target {
                kind: kind.clone(),
                id: self.target_id.clone(),
                name: self.target_name.clone(),
            }),
            outcome: Outcome::parse(&self.outcome).ok_or_else(|| corrupt("an unknown outcome"))?,
            status: match self.status {
                Some(status) => {
                    Some(u16::try_from(status).map_err(|_| corrupt("a status out of range"))?)
                }
                None => None,
            },
            origin: Origin {
                client_address: self.client_address.clone(),
                request_id: self.request_id.clone(),
            },
            details: self.details.clone(),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
struct ChainHead {
    last_seq: i64,
    last_hash: String,
    anchor_seq: i64,
    anchor_hash: String,
}

async fn locked_head(conn: &mut Conn) -> StoreResult<ChainHead> {
    let sql = format!(
        "SELECT last_seq, last_hash, anchor_seq, anchor_hash FROM audit_chain WHERE id = 1{}",
        conn.dialect().row_lock(" FOR UPDATE")
    );
    with_conn!(conn, |c| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .fetch_one(c)
        .await)
    .map_err(classify)
}

/// A record with its place in the chain.
pub struct Chained {
    pub event: AuditEvent,
    pub seq: i64,
    pub hash: String,
}

/// Chains every committed record that is not chained yet, oldest first, in transactions of
/// up to [`CHAIN_BATCH`], handing each committed batch to `on_chained`; how many it chained.
/// Safe to run in any number of processes: each record is chained by exactly one.
pub async fn chain_pending(
    store: &Store,
    mut on_chained: impl FnMut(&[Chained]),
) -> StoreResult<usize> {
    let mut total = 0;
    loop {
        let chained = chain_some(store).await?;
        on_chained(&chained);
        total += chained.len();
        if chained.len() < CHAIN_BATCH {
            return Ok(total);
        }
    }
}

async fn chain_some(store: &Store) -> StoreResult<Vec<Chained>> {
    let mut tx = store.begin().await?;
    let head = locked_head(&mut tx).await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_events WHERE chain_seq IS NULL \
         ORDER BY created, id LIMIT {CHAIN_BATCH}"
    );
    let pending: Vec<AuditRow> = with_conn!(&mut tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .fetch_all(c)
    .await)
    .map_err(classify)?;
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let (mut seq, mut hash) = (head.last_seq, head.last_hash);
    let mut rows = Vec::with_capacity(pending.len());
    let mut chained = Vec::with_capacity(pending.len());
    for row in &pending {
        let event = row.event()?;
        seq += 1;
        let next = event.chain_hash(seq, &hash);
        rows.push([
            Arg::Uuid(event.id),
            Arg::Int(seq),
            Arg::Text(hash),
            Arg::Text(next.clone()),
        ]);
        chained.push(Chained {
            event,
            seq,
            hash: next.clone(),
        });
        hash = next;
    }
    let mut update = SqlBuilder::new(
        "UPDATE audit_events SET chain_seq = v.column2, prev_hash = v.column3, \
         hash = v.column4 FROM (VALUES ",
    );
    update
        .bind_rows(rows)
        .push(") AS v WHERE audit_events.id = v.column1");
    execute_unprepared(&mut tx, update).await?;
    let mut head_update = SqlBuilder::new("UPDATE audit_chain SET last_seq = ");
    head_update
        .bind(Arg::Int(seq))
        .push(", last_hash = ")
        .bind(Arg::Text(hash))
        .push(" WHERE id = 1");
    execute(&mut tx, head_update).await?;
    tx.commit().await?;
    Ok(chained)
}

/// What walking the chain found.
#[derive(Debug, serde::Serialize)]
pub struct Verification {
    /// Records checked, from the anchor on.
    pub checked: u64,
    /// The first record that does not match, and how.
    pub first_mismatch: Option<Mismatch>,
    /// Committed records not chained yet (written while the walk ran).
    pub unchained: i64,
}

#[derive(Debug, serde::Serialize)]
pub struct Mismatch {
    pub chain_seq: i64,
    pub id: Option<Uuid>,
    pub reason: String,
}

/// Walks the chain from its anchor to its head, recomputing every hash.
pub async fn verify(store: &Store) -> StoreResult<Verification> {
    let mut conn = store.conn().await?;
    let head: ChainHead = with_conn!(&mut conn, |c| sqlx::query_as(
        "SELECT last_seq, last_hash, anchor_seq, anchor_hash FROM audit_chain WHERE id = 1"
    )
    .fetch_one(c)
    .await)
    .map_err(classify)?;
    let (mut seq, mut hash) = (head.anchor_seq, head.anchor_hash.clone());
    let mut checked = 0;
    let mismatch = |chain_seq, id, reason: String| Mismatch {
        chain_seq,
        id,
        reason,
    };
    loop {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_events WHERE chain_seq > $1 AND chain_seq <= $2 \
             ORDER BY chain_seq LIMIT 1000"
        );
        // Up to the head as read: records chained meanwhile are the next walk's.
        let rows: Vec<AuditRow> = with_conn!(&mut conn, repeatable, |c| sqlx::query_as(
            sqlx::AssertSqlSafe(sql.clone())
        )
        .bind(seq)
        .bind(head.last_seq)
        .fetch_all(c)
        .await)
        .map_err(classify)?;
        let Some(last) = rows.last().and_then(|r| r.chain_seq) else {
            break;
        };
        for row in &rows {
            let at = row.chain_seq.unwrap_or_default();
            let found = |reason: String| {
                Ok(Verification {
                    checked,
                    first_mismatch: Some(mismatch(at, Some(row.id), reason)),
                    unchained: 0,
                })
            };
            if at != seq + 1 {
                return found(format!(
                    "records {} to {} are missing from the chain",
                    seq + 1,
                    at - 1
                ));
            }
            if row.prev_hash.as_deref() != Some(hash.as_str()) {
                return found(
                    "its previous hash is not the hash of the record before it: a record \
                     before it was changed or replaced"
                        .into(),
                );
            }
            let event = match row.event() {
                Ok(event) => event,
                Err(e) => return found(e.to_string()),
            };
            let recomputed = event.chain_hash(at, &hash);
            if row.hash.as_deref() != Some(recomputed.as_str()) {
                return found("its content does not match its hash: it was changed".into());
            }
            seq = at;
            hash = recomputed;
            checked += 1;
        }
        if last != seq {
            break;
        }
    }
    let first_mismatch = (seq != head.last_seq || hash != head.last_hash).then(|| {
        mismatch(
            seq + 1,
            None,
            format!(
                "the chain ends at record {seq}, but its head names record {}: records were \
                 removed from its end",
                head.last_seq
            ),
        )
    });
    let unchained = with_conn!(&mut conn, repeatable, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE chain_seq IS NULL"
    )
    .fetch_one(c)
    .await)
    .map_err(classify)?;
    Ok(Verification {
        checked,
        first_mismatch,
        unchained,
    })
}

/// Removes the chained records created before `before` that begin the chain (up to the first
/// one that is newer), moving the anchor past them, and writes `event` (which records the
/// purge, with the date and count in its details) in the same transaction. How many it removed.
pub async fn purge(store: &Store, before: DateTime<Utc>, event: AuditEvent) -> StoreResult<u64> {
    let mut tx = store.begin().await?;
    let head = locked_head(&mut tx).await?;
    let newer: Option<i64> = with_conn!(&mut tx, |c| sqlx::query_scalar(
        "SELECT MIN(chain_seq) FROM audit_events WHERE chain_seq IS NOT NULL AND created >= $1"
    )
    .bind(before)
    .fetch_one(c)
    .await)
    .map_err(classify)?;
    let through = newer.map_or(head.last_seq, |first_kept| first_kept - 1);
    let mut removed = 0;
    if through > head.anchor_seq {
        let anchor_hash: String = with_conn!(&mut tx, |c| sqlx::query_scalar(
            "SELECT hash FROM audit_events WHERE chain_seq = $1"
        )
        .bind(through)
        .fetch_one(c)
        .await)
        .map_err(classify)?;
        let mut delete = SqlBuilder::new("DELETE FROM audit_events WHERE chain_seq <= ");
        delete.bind(Arg::Int(through));
        removed = execute(&mut tx, delete).await?;
        let mut anchor = SqlBuilder::new("UPDATE audit_chain SET anchor_seq = ");
        anchor
            .bind(Arg::Int(through))
            .push(", anchor_hash = ")
            .bind(Arg::Text(anchor_hash))
            .push(" WHERE id = 1");
        execute(&mut tx, anchor).await?;
    }
    let event = event.with_details(serde_json::json!({
        "before": before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "removed": removed,
    }));
    append(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(removed)
}

/// What the list filters and sorts on.
pub const FIELDS: &[Field] = &[
    Field::new("created", FieldKind::Time, "created"),
    Field::new("action", FieldKind::Text, "action"),
    Field::new("actor", FieldKind::Text, "actor_name"),
    Field::new("actor_id", FieldKind::Uuid, "actor_id"),
    Field::new("workspace", FieldKind::Uuid, "workspace_id"),
    Field::new("target_type", FieldKind::Text, "target_type"),
    Field::new("target_id", FieldKind::Text, "target_id"),
    Field::new("outcome", FieldKind::Text, "outcome"),
];

/// A page of records; only those of `workspaces` when given (none if it is empty).
pub async fn list(
    conn: &mut Conn,
    query: &ListQuery,
    workspaces: Option<&[Uuid]>,
) -> StoreResult<Listed<AuditRow>> {
    let dialect = conn.dialect();
    let mut from = SqlBuilder::new("FROM audit_events WHERE 1 = 1");
    if let Some(workspaces) = workspaces {
        from.push(" AND workspace_id IN (");
        for (i, id) in workspaces.iter().enumerate() {
            if i > 0 {
                from.push(", ");
            }
            from.bind(Arg::Uuid(*id));
        }
        if workspaces.is_empty() {
            from.push("NULL");
        }
        from.push(")");
    }
    from.push_conditions(dialect, &query.conditions, query.any);
    fetch_page(conn, COLUMNS, from, query, query.order("id"), None).await
}
