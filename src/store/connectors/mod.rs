//! Service connectors, their labels and resource types (kept in side tables for filtering), and
//! per-workspace counts that keep unfiltered totals cheap.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::FromRow;
use uuid::Uuid;

use super::query::bind_args;
use super::query::{Field, FieldKind, SqlBuilder};
use super::workspaces::{CALLER_COLUMNS, CALLER_FROM, CallerInWorkspace, CallerKey};
use super::{Arg, Batch, Conn, StoreError, StoreResult, Unique, classify, parse_json, with_conn};

mod counts;
mod list;
use counts::{
    add_to_counts, count_owner, counts_sql, delete_side_tables, facets, insert_side_tables,
    labels_sql, resource_types_sql,
};
pub use list::{ListVersion, caller_and_list_version, list};

#[derive(Debug, Clone)]
pub struct ConnectorRow {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub user_id: Option<Uuid>,
    pub name: String,
    pub description: String,
    pub connector_type: String,
    pub auth_method: String,
    pub resource_types: Vec<String>,
    pub resource_id: Option<String>,
    pub supports_instances: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub expires_skew_tolerance: Option<i64>,
    pub expiration_seconds: Option<i64>,
    /// The non-secret configuration.
    pub configuration: BTreeMap<String, Value>,
    pub labels: BTreeMap<String, String>,
    pub secret_id: Option<Uuid>,
    pub shared: bool,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// A connector with its owner's account, as lists and reads render it.
#[derive(Debug, Clone)]
pub struct ConnectorView {
    pub connector: ConnectorRow,
    pub owner_name: Option<String>,
    pub owner_is_admin: Option<bool>,
    pub owner_is_service_account: Option<bool>,
    pub owner_created: Option<DateTime<Utc>>,
    pub owner_updated: Option<DateTime<Utc>>,
    /// The encrypted secret values, when the query asked for them.
    pub secret_ciphertext: Option<Vec<u8>>,
    pub verification: LastVerification,
}

/// The outcome of the last verification of a stored connector, if it was ever verified.
#[derive(Debug, Clone, Default)]
pub struct LastVerification {
    pub last_verified_at: Option<DateTime<Utc>>,
    /// The engine's error; `None` when the verification succeeded.
    pub last_verification_error: Option<String>,
    /// Resource type to the number of resources reached.
    pub last_verified_resources: BTreeMap<String, usize>,
}

/// A connector's row as read, before its JSON columns are parsed.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ConnectorColumns {
    id: Uuid,
    workspace_id: Uuid,
    user_id: Option<Uuid>,
    name: String,
    description: String,
    connector_type: String,
    auth_method: String,
    resource_types: String,
    resource_id: Option<String>,
    supports_instances: bool,
    expires_at: Option<DateTime<Utc>>,
    expires_skew_tolerance: Option<i64>,
    expiration_seconds: Option<i64>,
    configuration: String,
    labels: String,
    secret_id: Option<Uuid>,
    shared: bool,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
    owner_name: Option<String>,
    owner_is_admin: Option<bool>,
    owner_is_service_account: Option<bool>,
    owner_created: Option<DateTime<Utc>>,
    owner_updated: Option<DateTime<Utc>>,
    #[sqlx(default)]
    secret_ciphertext: Option<Vec<u8>>,
    last_verified_at: Option<DateTime<Utc>>,
    last_verification_error: Option<String>,
    last_verified_resources: Option<String>,
}

/// A JSON column of the connector `id`, parsed.
fn json<T: DeserializeOwned>(id: Uuid, column: &str, text: &str) -> StoreResult<T> {
    parse_json(column, text).map_err(|e| match e {
        StoreError::Corrupt(why) => StoreError::Corrupt(format!("service connector {id}: {why}")),
        other => other,
    })
}

impl ConnectorColumns {
    /// The connector with its JSON columns parsed; one that does not parse is corrupt (and
    /// logged as such where the error is answered), never read as empty.
    pub(crate) fn parse(self) -> StoreResult<ConnectorView> {
        let id = self.id;
        let connector = ConnectorRow {
            resource_types: json(id, "resource_types", &self.resource_types)?,
            configuration: json(id, "configuration", &self.configuration)?,
            labels: json(id, "labels", &self.labels)?,
            id: self.id,
            workspace_id: self.workspace_id,
            user_id: self.user_id,
            name: self.name,
            description: self.description,
            connector_type: self.connector_type,
            auth_method: self.auth_method,
            resource_id: self.resource_id,
            supports_instances: self.supports_instances,
            expires_at: self.expires_at,
            expires_skew_tolerance: self.expires_skew_tolerance,
            expiration_seconds: self.expiration_seconds,
            secret_id: self.secret_id,
            shared: self.shared,
            created: self.created,
            updated: self.updated,
        };
        let verification = LastVerification {
            last_verified_resources: match &self.last_verified_resources {
                Some(counts) => json(id, "last_verified_resources", counts)?,
                None => BTreeMap::new(),
            },
            last_verified_at: self.last_verified_at,
            last_verification_error: self.last_verification_error,
        };
        Ok(ConnectorView {
            connector,
            owner_name: self.owner_name,
            owner_is_admin: self.owner_is_admin,
            owner_is_service_account: self.owner_is_service_account,
            owner_created: self.owner_created,
            owner_updated: self.owner_updated,
            secret_ciphertext: self.secret_ciphertext,
            verification,
        })
    }
}

const COLUMNS: &str = "c.id, c.workspace_id, c.user_id, c.name, c.description, c.connector_type, \
    c.auth_method, c.resource_types, c.resource_id, c.supports_instances, c.expires_at, \
    c.expires_skew_tolerance, c.expiration_seconds, c.configuration, c.labels, c.secret_id, \
    c.shared, c.created, c.updated, u.name AS owner_name, u.is_admin AS owner_is_admin, \
    u.is_service_account AS owner_is_service_account, u.created AS owner_created, \
    u.updated AS owner_updated, c.last_verified_at, c.last_verification_error, \
    c.last_verified_resources";

const FROM: &str = "FROM service_connectors c LEFT JOIN users u ON u.id = c.user_id";

pub static FIELDS: &[Field] = &[
    Field::new("id", FieldKind::Uuid, "c.id"),
    Field::new("name", FieldKind::Text, "c.name"),
    Field::new("connector_type", FieldKind::Text, "c.connector_type"),
    Field::new("auth_method", FieldKind::Text, "c.auth_method"),
    Field::new("resource_id", FieldKind::Text, "c.resource_id"),
    Field::new("description", FieldKind::Text, "c.description"),
    Field::new("shared", FieldKind::Bool, "c.shared"),
    Field::new("user", FieldKind::Text, "u.name"),
    Field::new("user_id", FieldKind::Uuid, "c.user_id"),
    Field::new("expires_at", FieldKind::Time, "c.expires_at"),
    Field::new("created", FieldKind::Time, "c.created"),
    Field::new("updated", FieldKind::Time, "c.updated"),
];

/// What keeps connector names apart within a workspace.
pub const NAME_UNIQUE: &[Unique] = &[Unique {
    postgres: "service_connectors_workspace_id_name_key",
    sqlite: "service_connectors.workspace_id, service_connectors.name",
}];

/// Filters outside the generic field conditions: they always narrow the result.
#[derive(Debug, Clone, Default)]
pub struct ConnectorFilter {
    pub resource_type: Option<String>,
    /// `(key, Some(value))` requires that value; `(key, None)` only that the key is present.
    pub labels: Vec<(String, Option<String>)>,
}

/// A connector's columns, in table order.
fn column_args(row: &ConnectorRow) -> [Arg; 19] {
    // Maps with string keys and plain values always serialise.
    let json =
        |value: Result<String, serde_json::Error>| Arg::Text(value.expect("JSON serialises"));
    [
        Arg::Uuid(row.id),
        Arg::Uuid(row.workspace_id),
        Arg::opt_uuid(row.user_id),
        Arg::Text(row.name.clone()),
        Arg::Text(row.description.clone()),
        Arg::Text(row.connector_type.clone()),
        Arg::Text(row.auth_method.clone()),
        json(serde_json::to_string(&row.resource_types)),
        Arg::opt_text(row.resource_id.as_deref()),
        Arg::Bool(row.supports_instances),
        Arg::opt_time(row.expires_at),
        Arg::opt_int(row.expires_skew_tolerance),
        Arg::opt_int(row.expiration_seconds),
        json(serde_json::to_string(&row.configuration)),
        json(serde_json::to_string(&row.labels)),
        Arg::opt_uuid(row.secret_id),
        Arg::Bool(row.shared),
        Arg::Time(row.created),
        Arg::Time(row.updated),
    ]
}

/// Adds to `batch` the insert of a connector with its labels, resource types and counts.
pub fn push_insert(batch: &mut Batch, row: &ConnectorRow) {
    let mut insert = batch.statement();
    insert.push(
        "INSERT INTO service_connectors (id, workspace_id, user_id, name, description, \
         connector_type, auth_method, resource_types, resource_id, supports_instances, \
         expires_at, expires_skew_tolerance, expiration_seconds, configuration, labels, \
         secret_id, shared, created, updated) VALUES ",
    );
    insert.bind_tuple(column_args(row));
    batch.push(insert);
    if !row.labels.is_empty() {
        batch.push(labels_sql(batch.statement(), row));
    }
    if !row.resource_types.is_empty() {
        batch.push(resource_types_sql(batch.statement(), row));
    }
    let owner = count_owner(row.shared, row.user_id);
    let counts = counts_sql(
        batch.statement(),
        batch.dialect(),
        row.workspace_id,
        owner,
        &facets(row),
        1,
    );
    batch.push(counts);
}

/// Runs `sql` with a connector's columns, in table order, as `$1`…`$19`, and `expected_updated`
/// (the optimistic-concurrency check of an update) as `$20`.
async fn write_row(
    conn: &mut Conn,
    sql: &'static str,
    row: &ConnectorRow,
    expected_updated: Option<DateTime<Utc>>,
) -> StoreResult<u64> {
    with_conn!(conn, |c| {
        let query = bind_args!(sqlx::query(sql), column_args(row));
        match expected_updated {
            Some(updated) => query.bind(updated),
            None => query,
        }
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    })
    .map_err(classify)
}

/// Rewrites a connector (the row as read, `before`, keeps the counts right). Run inside a
/// transaction.
pub async fn update(conn: &mut Conn, before: &ConnectorRow, row: &ConnectorRow) -> StoreResult<()> {
    let sql = "UPDATE service_connectors SET user_id = $3, name = $4, description = $5, \
               connector_type = $6, auth_method = $7, resource_types = $8, resource_id = $9, \
               supports_instances = $10, expires_at = $11, expires_skew_tolerance = $12, \
               expiration_seconds = $13, configuration = $14, labels = $15, secret_id = $16, \
               shared = $17, created = $18, updated = $19 \
               WHERE id = $1 AND workspace_id = $2 AND updated = $20";
    let done = write_row(conn, sql, row, Some(before.updated)).await?;
    if done == 0 {
        return Err(StoreError::Concurrent);
    }
    delete_side_tables(conn, row).await?;
    insert_side_tables(conn, row).await?;
    let old_owner = count_owner(before.shared, before.user_id);
    let new_owner = count_owner(row.shared, row.user_id);
    let (old, new) = (facets(before), facets(row));
    if old_owner == new_owner {
        // Only the facets that changed move.
        let gone: Vec<String> = old.iter().filter(|f| !new.contains(f)).cloned().collect();
        let added: Vec<String> = new.iter().filter(|f| !old.contains(f)).cloned().collect();
        add_to_counts(conn, row.workspace_id, old_owner, &gone, -1).await?;
        add_to_counts(conn, row.workspace_id, new_owner, &added, 1).await
    } else {
        add_to_counts(conn, row.workspace_id, old_owner, &old, -1).await?;
        add_to_counts(conn, row.workspace_id, new_owner, &new, 1).await
    }
}

/// Records the outcome of a verification. It is no edit: `updated` stays, so that a form read
/// before it still saves; the list version moves on (by trigger), so that lists show it.
pub async fn record_verification(
    conn: &mut Conn,
    workspace_id: Uuid,
    id: Uuid,
    at: DateTime<Utc>,
    error: Option<&str>,
    resources: &BTreeMap<String, usize>,
) -> StoreResult<()> {
    let counts = serde_json::to_string(resources).expect("counts serialise");
    with_conn!(conn, |c| {
        sqlx::query(
            "UPDATE service_connectors SET last_verified_at = $3, last_verification_error = $4, \
             last_verified_resources = $5 WHERE workspace_id = $1 AND id = $2",
        )
        .bind(workspace_id)
        .bind(id)
        .bind(at)
        .bind(error)
        .bind(&counts)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    Ok(())
}

/// Deletes a connector, as read (`row`, which keeps the counts right), and its internal secret:
/// [`StoreError::Concurrent`] if another request changed it since, and
/// [`StoreError::Referenced`] while components use it. Run inside a transaction: the row is
/// locked before its components are counted, so that none can be linked to it in between.
pub async fn delete(conn: &mut Conn, row: &ConnectorRow) -> StoreResult<()> {
    let lock = format!(
        "SELECT updated FROM service_connectors WHERE id = $1 AND workspace_id = $2{}",
        conn.dialect().row_lock(" FOR UPDATE")
    );
    let current: Option<DateTime<Utc>> = with_conn!(conn, |c| {
        sqlx::query_scalar(sqlx::AssertSqlSafe(lock.clone()))
            .bind(row.id)
            .bind(row.workspace_id)
            .fetch_optional(c)
            .await
    })
    .map_err(classify)?;
    match current {
        None => return Err(StoreError::NotFound),
        Some(updated) if updated != row.updated => return Err(StoreError::Concurrent),
        Some(_) => {}
    }
    let used = super::components::using_connector(conn, row.id).await?;
    if used > 0 {
        return Err(StoreError::Referenced(used));
    }
    with_conn!(conn, |c| {
        sqlx::query("DELETE FROM service_connectors WHERE id = $1")
            .bind(row.id)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    if let Some(secret_id) = row.secret_id {
        super::secrets::delete(conn, row.workspace_id, secret_id).await?;
    }
    let owner = count_owner(row.shared, row.user_id);
    add_to_counts(conn, row.workspace_id, owner, &facets(row), -1).await
}

/// Locks a connector against changes and deletion until the transaction ends (on PostgreSQL;
/// SQLite's write transaction holds the whole database), and reads it as it now is: what a
/// component is linked to must still be there, unchanged, when the link is written.
pub async fn get_for_link(
    conn: &mut Conn,
    workspace_id: Uuid,
    id: Uuid,
) -> StoreResult<Option<ConnectorView>> {
    let sql = format!(
        "SELECT {COLUMNS} {FROM} WHERE c.workspace_id = $1 AND c.id = $2{}",
        conn.dialect().row_lock(" FOR SHARE OF c")
    );
    let found: Option<ConnectorColumns> = with_conn!(conn, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(workspace_id)
            .bind(id)
            .fetch_optional(c)
            .await
    })
    .map_err(classify)?;
    found.map(ConnectorColumns::parse).transpose()
}

/// Locks a connector against links being made to it until the transaction ends (on
/// PostgreSQL), so that what uses it is counted right.
pub async fn lock(conn: &mut Conn, workspace_id: Uuid, id: Uuid) -> StoreResult<()> {
    let sql = format!(
        "SELECT id FROM service_connectors WHERE workspace_id = $1 AND id = $2{}",
        conn.dialect().row_lock(" FOR UPDATE")
    );
    with_conn!(conn, |c| {
        sqlx::query_scalar::<_, Uuid>(sqlx::AssertSqlSafe(sql.clone()))
            .bind(workspace_id)
            .bind(id)
            .fetch_optional(c)
            .await
    })
    .map_err(classify)?;
    Ok(())
}

/// The connectors of a workspace with the given ids (no secrets), in no particular order.
pub async fn get_many(
    conn: &mut Conn,
    workspace_id: Uuid,
    ids: &[Uuid],
) -> StoreResult<Vec<ConnectorView>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = SqlBuilder::new(format!("SELECT {COLUMNS} {FROM} WHERE c.workspace_id = "));
    sql.bind(Arg::Uuid(workspace_id)).push(" AND c.id IN ");
    sql.bind_tuple(ids.iter().map(|id| Arg::Uuid(*id)));
    let rows: Vec<ConnectorColumns> = super::fetch_all(conn, sql).await?;
    rows.into_iter().map(ConnectorColumns::parse).collect()
}

/// Whether the workspace has a connector of this name.
pub async fn name_taken(conn: &mut Conn, workspace_id: Uuid, name: &str) -> StoreResult<bool> {
    let sql = "SELECT COUNT(*) FROM service_connectors WHERE workspace_id = $1 AND name = $2";
    let found: i64 = with_conn!(conn, repeatable, |c| sqlx::query_scalar(sql)
        .bind(workspace_id)
        .bind(name)
        .fetch_one(c)
        .await)
    .map_err(classify)?;
    Ok(found > 0)
}

/// A connector with its owner and its encrypted secret, in one query.
pub async fn get(
    conn: &mut Conn,
    workspace_id: Uuid,
    id: Uuid,
) -> StoreResult<Option<ConnectorView>> {
    let sql = format!(
        "SELECT {COLUMNS}, s.ciphertext AS secret_ciphertext {FROM} \
         LEFT JOIN secrets s ON s.id = c.secret_id AND s.workspace_id = c.workspace_id \
         WHERE c.workspace_id = $1 AND c.id = $2"
    );
    let found: Option<ConnectorColumns> = with_conn!(conn, repeatable, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(workspace_id)
            .bind(id)
            .fetch_optional(c)
            .await
    })
    .map_err(classify)?;
    found.map(ConnectorColumns::parse).transpose()
}

/// The caller's standing in a workspace and, only if they are a member of it, one of its
/// connectors with its owner and encrypted secret: the two reads of an authorised get, in one
/// query. `None` when the caller's account is gone.
pub async fn get_as(
    conn: &mut Conn,
    caller: &CallerKey<'_>,
    id: Uuid,
) -> StoreResult<Option<(CallerInWorkspace, Option<ConnectorView>)>> {
    let sql = format!(
        "SELECT {CALLER_COLUMNS}, {COLUMNS}, s.ciphertext AS secret_ciphertext {CALLER_FROM} \
         LEFT JOIN service_connectors c ON c.workspace_id = cm.workspace_id AND c.id = $5 \
         LEFT JOIN users u ON u.id = c.user_id \
         LEFT JOIN secrets s ON s.id = c.secret_id AND s.workspace_id = c.workspace_id \
         WHERE cu.id = $1"
    );
    let found = with_conn!(conn, repeatable, |c| {
        let row = bind_args!(sqlx::query(sqlx::AssertSqlSafe(sql.clone())), caller.args())
            .bind(id)
            .fetch_optional(c)
            .await?;
        row.map(|row| {
            let found = CallerInWorkspace::from_row(&row)?;
            let connector: Option<Uuid> = sqlx::Row::try_get(&row, "id")?;
            let columns = connector
                .map(|_| ConnectorColumns::from_row(&row))
                .transpose()?;
            Ok((found, columns))
        })
        .transpose()
    })
    .map_err(classify)?;
    found
        .map(|(caller, columns)| Ok((caller, columns.map(ConnectorColumns::parse).transpose()?)))
        .transpose()
}

/// Deletes a user's private connectors (with their secrets), unlinking the components that
/// used them; their shared ones stay, unowned.
pub async fn delete_private_of(conn: &mut Conn, user_id: Uuid) -> StoreResult<()> {
    super::components::disconnect_private_connectors_of(conn, user_id).await?;
    with_conn!(conn, |c| {
        sqlx::query(
            "DELETE FROM secrets WHERE id IN \
             (SELECT secret_id FROM service_connectors WHERE user_id = $1 AND NOT shared)",
        )
        .bind(user_id)
        .execute(&mut *c)
        .await?;
        sqlx::query("DELETE FROM service_connectors WHERE user_id = $1 AND NOT shared")
            .bind(user_id)
            .execute(&mut *c)
            .await?;
        sqlx::query("DELETE FROM service_connector_counts WHERE owner_id = $1")
            .bind(user_id)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::workspaces::{self, WorkspaceRow};

    fn team(name: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("team".to_owned(), name.to_owned())])
    }

    /// A delete made from a read that another request's update overtook is refused: it would
    /// take the connector's old labels off the counts, and leave its new ones counted.
    #[tokio::test]
    async fn a_delete_based_on_a_stale_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(None, dir.path(), 2).await.unwrap();
        let now = Utc::now();
        let workspace = WorkspaceRow {
            id: Uuid::new_v4(),
            name: "ws".into(),
            display_name: "ws".into(),
            description: String::new(),
            created: now,
            updated: now,
        };
        let mut tx = store.begin().await.unwrap();
        workspaces::insert(&mut tx, &workspace).await.unwrap();
        tx.commit().await.unwrap();
        let read = ConnectorRow {
            id: Uuid::new_v4(),
            workspace_id: workspace.id,
            user_id: None,
            name: "shared".into(),
            description: String::new(),
            connector_type: "azure".into(),
            auth_method: "implicit".into(),
            resource_types: vec!["azure-generic".to_owned()],
            resource_id: None,
            supports_instances: false,
            expires_at: None,
            expires_skew_tolerance: None,
            expiration_seconds: None,
            configuration: BTreeMap::new(),
            labels: team("a"),
            secret_id: None,
            shared: true,
            created: now,
            updated: now,
        };
        let mut batch = store.batch();
        push_insert(&mut batch, &read);
        store.write(batch).await.unwrap();

        let relabelled = ConnectorRow {
            labels: team("b"),
            updated: now + chrono::Duration::microseconds(1),
            ..read.clone()
        };
        let mut tx = store.begin().await.unwrap();
        update(&mut tx, &read, &relabelled).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = store.begin().await.unwrap();
        let stale = delete(&mut tx, &read).await;
        assert!(matches!(stale, Err(StoreError::Concurrent)), "{stale:?}");
        drop(tx);
        let mut tx = store.begin().await.unwrap();
        delete(&mut tx, &relabelled).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        let gone = delete(&mut tx, &relabelled).await;
        assert!(matches!(gone, Err(StoreError::NotFound)), "{gone:?}");
    }
}
