//! The audit log's tables: records written with the changes they record, each given its
//! place in one hash chain per database, listed, verified and purged. A record is never
//! rewritten.
//!
//! On SQLite every record is linked in the transaction that writes it, its link part of its
//! row: the one writer holds the database's write lock through that transaction anyway. The
//! group commit links the records of the batches it commits after the end of the chain it last
//! left ([`ChainEnd`]); a transaction of its own reads the head first ([`append`]).
//!
//! On PostgreSQL, where writes commit side by side, a record is queued in `audit_unchained` by
//! the transaction that writes it and linked right after that commits ([`chain_pending`]), its
//! link a row of `audit_links`: that keeps the chain's lock out of every audited transaction,
//! and one short transaction links whatever has committed since, in any process.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::query::{Arg, Dialect, Field, FieldKind, ListQuery, Listed, SqlBuilder};
use super::{
    Batch, Conn, Store, StoreError, StoreResult, classify, execute, execute_unprepared, fetch_page,
    with_conn,
};
use crate::domain::audit::{Actor, AuditEvent, Origin, Outcome, Target};

/// Records chained per transaction.
const CHAIN_BATCH: usize = 500;

/// A record's columns as its content is written and hashed.
const CONTENT_COLUMNS: &str = "id, created, actor_id, actor_name, actor_kind, api_key_id, \
    workspace_id, action, target_type, target_id, target_name, outcome, status, client_address, \
    request_id, details";

/// A record's columns, qualified: the queries that read them join other tables. (A macro, so
/// that [`LINKED_COLUMNS`] can extend it at compile time.)
macro_rules! event_columns {
    () => {
        "audit_events.id, audit_events.created, actor_id, actor_name, actor_kind, api_key_id, \
         workspace_id, action, target_type, target_id, target_name, outcome, status, \
         client_address, request_id, details"
    };
}

const EVENT_COLUMNS: &str = event_columns!();

/// A record's columns and its link in the chain.
const LINKED_COLUMNS: &str = concat!(event_columns!(), ", chain_seq, prev_hash, hash");

/// Where linked records are read with their links ([`LINKED_COLUMNS`]), and the table that
/// holds the links.
fn linked_records(dialect: Dialect) -> (&'static str, &'static str) {
    match dialect {
        Dialect::Sqlite => ("audit_events", "audit_events"),
        Dialect::Postgres => (
            "audit_links JOIN audit_events ON audit_events.id = audit_links.event_id",
            "audit_links",
        ),
    }
}

fn content_args(event: &AuditEvent) -> [Arg; 16] {
    let target = event.target.as_ref();
    [
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
    ]
}

/// Adds the record to `batch`, to commit with the batch's other writes, which write it linked
/// (SQLite) or queued for the chainer (PostgreSQL) as they are committed.
pub fn push(batch: &mut Batch, event: &AuditEvent) {
    if batch.audited {
        batch.audit_events.push(event.clone());
    }
}

/// Writes the record on `conn`, inside the transaction it holds, with the transaction's other
/// writes (see [`Conn::apply`]).
pub async fn append(conn: &mut Conn, event: &AuditEvent) -> StoreResult<()> {
    let mut batch = Batch::new(conn.dialect());
    batch.audited = conn.audited();
    push(&mut batch, event);
    conn.apply(batch).await
}

/// Writes `events` unlinked (on PostgreSQL, to be queued for the chainer).
pub(super) fn unlinked_statement(statement: &mut SqlBuilder, events: &[AuditEvent]) {
    statement
        .push(&format!(
            "INSERT INTO audit_events ({CONTENT_COLUMNS}) VALUES "
        ))
        .bind_rows(events.iter().map(content_args));
}

/// Queues `events` for the chainer: the statement to write with them.
pub(super) fn queue_statement(statement: &mut SqlBuilder, events: &[AuditEvent]) {
    statement
        .push("INSERT INTO audit_unchained (created, id) VALUES ")
        .bind_rows(
            events
                .iter()
                .map(|event| [Arg::Time(event.created), Arg::Uuid(event.id)]),
        );
}

/// Writes the links of `chained`: on SQLite the records themselves, their links in their rows;
/// on PostgreSQL rows of `audit_links` (the records were written by their own transactions).
pub(super) fn link_statement(dialect: Dialect, statement: &mut SqlBuilder, chained: &[Chained]) {
    if chained.is_empty() {
        return;
    }
    if !statement.sql.is_empty() {
        statement.push("; ");
    }
    match dialect {
        Dialect::Sqlite => statement
            .push(&format!(
                "INSERT INTO audit_events (chain_seq, {CONTENT_COLUMNS}, prev_hash, hash) VALUES "
            ))
            .bind_rows(chained.iter().map(|c| {
                std::iter::once(Arg::Int(c.seq))
                    .chain(content_args(&c.event))
                    .chain([Arg::Text(c.prev_hash.clone()), Arg::Text(c.hash.clone())])
            })),
        Dialect::Postgres => statement
            .push("INSERT INTO audit_links (chain_seq, event_id, prev_hash, hash) VALUES ")
            .bind_rows(chained.iter().map(|c| {
                [
                    Arg::Int(c.seq),
                    Arg::Uuid(c.event.id),
                    Arg::Text(c.prev_hash.clone()),
                    Arg::Text(c.hash.clone()),
                ]
            })),
    };
}

/// A record as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
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
}

/// A record as stored, with its place in the chain once it has one.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    #[sqlx(flatten)]
    row: EventRow,
    pub chain_seq: Option<i64>,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

impl AuditRow {
    /// The record's content; a value no writer produces is a corrupt record.
    pub fn event(&self) -> StoreResult<AuditEvent> {
        self.row.event()
    }
}

impl EventRow {
    fn event(&self) -> StoreResult<AuditEvent> {
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

const READ_HEAD: &str =
    "SELECT last_seq, last_hash, anchor_seq, anchor_hash FROM audit_chain WHERE id = 1";

/// The end of the chain, locked for the transaction on `conn` (on SQLite, the transaction's
/// write lock holds it already).
pub(super) async fn locked_end(conn: &mut Conn) -> StoreResult<ChainEnd> {
    Ok(locked_head(conn).await?.into())
}

async fn locked_head(conn: &mut Conn) -> StoreResult<ChainHead> {
    let sql = format!("{READ_HEAD}{}", conn.dialect().row_lock(" FOR UPDATE"));
    with_conn!(conn, |c| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .fetch_one(c)
        .await)
    .map_err(classify)
}

/// A record with its place in the chain.
pub struct Chained {
    pub event: AuditEvent,
    pub seq: i64,
    /// The hash of the record before it (or of the anchor).
    pub prev_hash: String,
    pub hash: String,
}

/// The end of the chain, as records are linked to it inside the transaction that holds its
/// lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ChainEnd {
    seq: i64,
    hash: String,
}

impl ChainEnd {
    /// Places `events` after the end, which moves past them.
    pub(super) fn link(&mut self, events: impl IntoIterator<Item = AuditEvent>) -> Vec<Chained> {
        events
            .into_iter()
            .map(|event| {
                self.seq += 1;
                let hash = event.chain_hash(self.seq, &self.hash);
                let prev_hash = std::mem::replace(&mut self.hash, hash.clone());
                Chained {
                    event,
                    seq: self.seq,
                    prev_hash,
                    hash,
                }
            })
            .collect()
    }

    /// Adds to `statement` the move of the chain's head from `from` to this end. The database
    /// refuses it (a NOT NULL constraint) unless the head is still at `from`: a writer that
    /// linked after a stale end (another process, or another transaction of this one, moved
    /// the head since) is rolled back, to link again after the head as it is.
    pub(super) fn move_head(&self, from: &ChainEnd, statement: &mut SqlBuilder) {
        if self == from {
            return;
        }
        if !statement.sql.is_empty() {
            statement.push("; ");
        }
        statement
            .push("UPDATE audit_chain SET last_seq = CASE WHEN last_seq = ")
            .bind(Arg::Int(from.seq))
            .push(" AND last_hash = ")
            .bind(Arg::Text(from.hash.clone()))
            .push(" THEN ")
            .bind(Arg::Int(self.seq))
            .push(" END, last_hash = ")
            .bind(Arg::Text(self.hash.clone()))
            .push(" WHERE id = 1");
    }
}

impl From<ChainHead> for ChainEnd {
    fn from(head: ChainHead) -> ChainEnd {
        ChainEnd {
            seq: head.last_seq,
            hash: head.last_hash,
        }
    }
}

/// On SQLite, inside a transaction that holds the write lock: the end of the chain, to link
/// records after.
pub(super) async fn read_chain_end(
    conn: &mut sqlx::SqliteConnection,
) -> Result<ChainEnd, sqlx::Error> {
    sqlx::query_as::<_, ChainHead>(READ_HEAD)
        .fetch_one(conn)
        .await
        .map(ChainEnd::from)
}

/// On SQLite, once migrated past the links' own table: links the records that a stopped
/// process had left waiting for its chainer, after the others, and drops the table that the
/// migration moved them to. (They do not reach an `--audit-log-file`: no process chained them
/// while it ran.)
pub(super) async fn link_records_left_waiting(store: &Store) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    let left: Option<String> = with_conn!(&mut tx, |c| sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'audit_records_to_link'"
    )
    .fetch_optional(c)
    .await)
    .map_err(classify)?;
    if left.is_none() {
        return Ok(());
    }
    let sql = format!("SELECT {CONTENT_COLUMNS} FROM audit_records_to_link ORDER BY created, id");
    let rows: Vec<EventRow> = with_conn!(&mut tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .fetch_all(c)
    .await)
    .map_err(classify)?;
    let events = rows
        .iter()
        .map(EventRow::event)
        .collect::<StoreResult<Vec<_>>>()?;
    let from = locked_end(&mut tx).await?;
    let mut end = from.clone();
    let chained = end.link(events);
    for some in chained.chunks(CHAIN_BATCH) {
        let mut links = SqlBuilder::new("");
        link_statement(Dialect::Sqlite, &mut links, some);
        execute_unprepared(&mut tx, links).await?;
    }
    let mut head = SqlBuilder::new("");
    end.move_head(&from, &mut head);
    head.push(if head.sql.is_empty() { "" } else { "; " })
        .push("DROP TABLE audit_records_to_link");
    execute_unprepared(&mut tx, head).await?;
    tx.commit().await
}

/// Which queued records a chaining pass looks at.
#[derive(Debug, Clone, Copy)]
pub enum Queued {
    /// Every one.
    All,
    /// Those created at or after this time. Records leave the queue as they are chained, and on
    /// PostgreSQL the queue's index keeps their entries until the next vacuum: a pass over
    /// recent records skips them, where a pass over all of them walks them each time.
    CreatedSince(DateTime<Utc>),
}

/// Chains every committed record that is queued (of those `queued` names), oldest first, in
/// transactions of up to [`CHAIN_BATCH`], handing each committed batch to `on_chained`; how
/// many it chained. Safe to run in any number of processes: each record is chained by exactly
/// one. On SQLite nothing waits: every record is linked as it is written.
pub async fn chain_pending(
    store: &Store,
    queued: Queued,
    mut on_chained: impl FnMut(&[Chained]),
) -> StoreResult<usize> {
    if store.dialect() == Dialect::Sqlite {
        return Ok(0);
    }
    let mut total = 0;
    loop {
        let chained = chain_some(store, queued).await?;
        on_chained(&chained);
        total += chained.len();
        if chained.len() < CHAIN_BATCH {
            return Ok(total);
        }
    }
}

async fn chain_some(store: &Store, queued: Queued) -> StoreResult<Vec<Chained>> {
    let mut tx = store.begin().await?;
    // The queue's statistics say little (rows come and go many times between analyses), and a
    // plan that scans it rather than looking records up by key walks every row removed since
    // the last vacuum, on every pass. The pass need not wait for its commit to reach the disk:
    // lost in a crash, it is made again, as the records it chains stay queued with it (their
    // own writes committed durably).
    execute(
        &mut tx,
        SqlBuilder::new(
            "SELECT set_config('enable_seqscan', 'off', true), \
             set_config('enable_hashjoin', 'off', true), \
             set_config('synchronous_commit', 'off', true)",
        ),
    )
    .await?;
    let from = locked_end(&mut tx).await?;
    let since = match queued {
        Queued::All => None,
        Queued::CreatedSince(since) => Some(since),
    };
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_unchained \
         JOIN audit_events ON audit_events.id = audit_unchained.id {} \
         ORDER BY audit_unchained.created, audit_unchained.id LIMIT {CHAIN_BATCH}",
        match since {
            Some(_) => "WHERE audit_unchained.created >= $1",
            None => "",
        }
    );
    let pending: Vec<EventRow> = with_conn!(&mut tx, |c| {
        let query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
        match since {
            Some(since) => query.bind(since),
            None => query,
        }
        .fetch_all(c)
        .await
    })
    .map_err(classify)?;
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let events = pending
        .iter()
        .map(EventRow::event)
        .collect::<StoreResult<Vec<_>>>()?;
    // Unprepared: their text changes with the number of records, and kept prepared they
    // would fill each connection's statement cache with large statements.
    let mut end = from.clone();
    let chained = end.link(events);
    let mut links = SqlBuilder::new("");
    link_statement(Dialect::Postgres, &mut links, &chained);
    execute_unprepared(&mut tx, links).await?;
    // Bounded by the oldest and newest chained, so that the queue's index finds them without
    // walking what earlier passes removed (until a vacuum clears it).
    let oldest = chained.iter().map(|c| c.event.created).min();
    let newest = chained.iter().map(|c| c.event.created).max();
    let mut dequeue = SqlBuilder::new("DELETE FROM audit_unchained WHERE created >= ");
    dequeue
        .bind(Arg::opt_time(oldest))
        .push(" AND created <= ")
        .bind(Arg::opt_time(newest))
        .push(" AND (created, id) IN (VALUES ")
        .bind_rows(
            chained
                .iter()
                .map(|c| [Arg::Time(c.event.created), Arg::Uuid(c.event.id)]),
        )
        .push(")");
    execute_unprepared(&mut tx, dequeue).await?;
    let mut head = SqlBuilder::new("");
    end.move_head(&from, &mut head);
    execute(&mut tx, head).await?;
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
    let (linked, _) = linked_records(store.dialect());
    let head: ChainHead = with_conn!(&mut conn, |c| sqlx::query_as(READ_HEAD).fetch_one(c).await)
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
            "SELECT {LINKED_COLUMNS} FROM {linked} \
             WHERE chain_seq > $1 AND chain_seq <= $2 ORDER BY chain_seq LIMIT 1000"
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
                    first_mismatch: Some(mismatch(at, Some(row.row.id), reason)),
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
    let unchained = match store.dialect() {
        Dialect::Sqlite => 0,
        Dialect::Postgres => with_conn!(&mut conn, repeatable, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_unchained"
        )
        .fetch_one(c)
        .await)
        .map_err(classify)?,
    };
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
    let (linked, links) = linked_records(store.dialect());
    let head = locked_head(&mut tx).await?;
    let sql = format!("SELECT MIN(chain_seq) FROM {linked} WHERE created >= $1");
    let newer: Option<i64> = with_conn!(&mut tx, |c| sqlx::query_scalar(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .bind(before)
    .fetch_one(c)
    .await)
    .map_err(classify)?;
    let through = newer.map_or(head.last_seq, |first_kept| first_kept - 1);
    let mut removed = 0;
    if through > head.anchor_seq {
        let sql = format!("SELECT hash FROM {links} WHERE chain_seq = $1");
        let anchor_hash: String = with_conn!(&mut tx, |c| sqlx::query_scalar(sqlx::AssertSqlSafe(
            sql.clone()
        ))
        .bind(through)
        .fetch_one(c)
        .await)
        .map_err(classify)?;
        let mut delete = SqlBuilder::new(match store.dialect() {
            Dialect::Sqlite => "DELETE FROM audit_events WHERE chain_seq <= ",
            Dialect::Postgres => {
                "DELETE FROM audit_events USING audit_links \
                 WHERE audit_events.id = audit_links.event_id AND audit_links.chain_seq <= "
            }
        });
        delete.bind(Arg::Int(through));
        removed = execute(&mut tx, delete).await?;
        if store.dialect() == Dialect::Postgres {
            let mut unlink = SqlBuilder::new("DELETE FROM audit_links WHERE chain_seq <= ");
            unlink.bind(Arg::Int(through));
            execute(&mut tx, unlink).await?;
        }
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
    let mut from = SqlBuilder::new(match dialect {
        Dialect::Sqlite => "FROM audit_events WHERE 1 = 1",
        Dialect::Postgres => {
            "FROM audit_events LEFT JOIN audit_links ON audit_links.event_id = audit_events.id \
             WHERE 1 = 1"
        }
    });
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
    fetch_page(conn, LINKED_COLUMNS, from, query, query.order("id"), None).await
}
