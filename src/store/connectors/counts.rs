//! What keeps connector filters and totals cheap: each connector's labels and resource types
//! in filter tables, and per-workspace counts by facet (everything, a resource type, a label),
//! spread over shards so that concurrent writers seldom wait for one row.

use super::ConnectorRow;

use uuid::Uuid;

use crate::store::query::{Dialect, SqlBuilder};
use crate::store::{Arg, Conn, StoreResult, classify, execute, with_conn};

/// The count row a transaction adds to, among a scope's rows: on PostgreSQL one of 16, chosen by
/// its transaction id, so that concurrent writers (whose ids are consecutive) seldom wait for
/// each other's row locks; the triggers that count changes for rendered lists pick the same
/// (see the migration `0006_connector_list_versions.sql`). SQLite has one writer at a time.
pub(super) fn shard_sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "(pg_current_xact_id()::text::bigint % 16)::smallint",
        Dialect::Sqlite => "0",
    }
}

/// The count rows a connector is tallied in: shared ones under the nil owner.
pub(super) fn count_owner(shared: bool, owner: Option<Uuid>) -> Uuid {
    if shared {
        Uuid::nil()
    } else {
        owner.unwrap_or_default()
    }
}

/// Separates a label's key from its value in a facet; label keys never contain it.
pub(super) const UNIT_SEPARATOR: char = '\u{1f}';

pub(super) fn type_facet(resource_type: &str) -> String {
    format!("type:{resource_type}")
}

pub(super) fn label_facet(key: &str, value: Option<&str>) -> String {
    match value {
        Some(value) => format!("label:{key}{UNIT_SEPARATOR}{value}"),
        None => format!("label:{key}"),
    }
}

/// Every facet a connector is counted under, sorted (so that concurrent writers take row
/// locks in the same order).
pub(super) fn facets(row: &ConnectorRow) -> Vec<String> {
    let mut facets = vec![String::new()];
    facets.extend(row.resource_types.iter().map(|t| type_facet(t)));
    for (key, value) in &row.labels {
        facets.push(label_facet(key, None));
        facets.push(label_facet(key, Some(value)));
    }
    facets.sort();
    facets.dedup();
    facets
}

/// Fills `sql` with the statement that adds `delta` to the counts of `facets` (not empty), in
/// the transaction's shard.
pub(super) fn counts_sql(
    mut sql: SqlBuilder,
    dialect: Dialect,
    workspace_id: Uuid,
    owner: Uuid,
    facets: &[String],
    delta: i64,
) -> SqlBuilder {
    sql.push(
        "INSERT INTO service_connector_counts (workspace_id, owner_id, facet, shard, total) VALUES ",
    );
    for (i, facet) in facets.iter().enumerate() {
        sql.push(if i == 0 { "(" } else { ", (" });
        sql.bind(Arg::Uuid(workspace_id)).push(", ");
        sql.bind(Arg::Uuid(owner)).push(", ");
        sql.bind(Arg::Text(facet.clone())).push(", ");
        sql.push(shard_sql(dialect)).push(", ");
        sql.bind(Arg::Int(delta)).push(")");
    }
    sql.push(
        " ON CONFLICT (workspace_id, facet, owner_id, shard) \
         DO UPDATE SET total = service_connector_counts.total + excluded.total",
    );
    sql
}

/// Adds `delta` to the counts of `facets`.
pub(super) async fn add_to_counts(
    conn: &mut Conn,
    workspace_id: Uuid,
    owner: Uuid,
    facets: &[String],
    delta: i64,
) -> StoreResult<()> {
    if facets.is_empty() {
        return Ok(());
    }
    let sql = counts_sql(
        SqlBuilder::new(""),
        conn.dialect(),
        workspace_id,
        owner,
        facets,
        delta,
    );
    execute(conn, sql).await?;
    Ok(())
}

/// Clears a connector's rows in the filter tables.
pub(super) async fn delete_side_tables(conn: &mut Conn, row: &ConnectorRow) -> StoreResult<()> {
    with_conn!(conn, |c| {
        sqlx::query("DELETE FROM service_connector_labels WHERE connector_id = $1")
            .bind(row.id)
            .execute(&mut *c)
            .await?;
        sqlx::query("DELETE FROM service_connector_resource_types WHERE connector_id = $1")
            .bind(row.id)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    Ok(())
}

/// Fills `sql` with the insert of a connector's labels (not empty) into their filter table.
pub(super) fn labels_sql(mut sql: SqlBuilder, row: &ConnectorRow) -> SqlBuilder {
    sql.push(
        "INSERT INTO service_connector_labels (connector_id, workspace_id, key, value, created) VALUES ",
    );
    sql.bind_rows(row.labels.iter().map(|(key, value)| {
        [
            Arg::Uuid(row.id),
            Arg::Uuid(row.workspace_id),
            Arg::Text(key.clone()),
            Arg::Text(value.clone()),
            Arg::Time(row.created),
        ]
    }));
    sql
}

/// Fills `sql` with the insert of a connector's resource types (not empty) into their filter
/// table.
pub(super) fn resource_types_sql(mut sql: SqlBuilder, row: &ConnectorRow) -> SqlBuilder {
    sql.push(
        "INSERT INTO service_connector_resource_types \
         (connector_id, workspace_id, resource_type, created) VALUES ",
    );
    sql.bind_rows(row.resource_types.iter().map(|resource_type| {
        [
            Arg::Uuid(row.id),
            Arg::Uuid(row.workspace_id),
            Arg::Text(resource_type.clone()),
            Arg::Time(row.created),
        ]
    }));
    sql
}

/// Writes a connector's labels and resource types to the filter tables (one statement each).
pub(super) async fn insert_side_tables(conn: &mut Conn, row: &ConnectorRow) -> StoreResult<()> {
    if !row.labels.is_empty() {
        execute(conn, labels_sql(SqlBuilder::new(""), row)).await?;
    }
    if !row.resource_types.is_empty() {
        execute(conn, resource_types_sql(SqlBuilder::new(""), row)).await?;
    }
    Ok(())
}
