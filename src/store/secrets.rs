//! Secrets: names and owners in the clear, values only as ciphertext.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::query::{Field, FieldKind, ListQuery, Listed, SqlBuilder};
use super::users::{OWNER_COLUMNS, Owner, OwnerColumns};
use super::{Arg, Batch, Conn, StoreError, StoreResult, Unique, classify, fetch_page, with_conn};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SecretRow {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub user_id: Option<Uuid>,
    pub name: String,
    pub private: bool,
    pub internal: bool,
    pub key_id: Uuid,
    pub ciphertext: Vec<u8>,
    pub revision: i64,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// A secret with its owner's account.
#[derive(Debug, Clone)]
pub struct SecretView {
    pub secret: SecretRow,
    pub owner: Option<Owner>,
}

#[derive(Debug, sqlx::FromRow)]
struct SecretColumns {
    #[sqlx(flatten)]
    secret: SecretRow,
    #[sqlx(flatten)]
    owner: OwnerColumns,
}

impl From<SecretColumns> for SecretView {
    fn from(columns: SecretColumns) -> SecretView {
        SecretView {
            secret: columns.secret,
            owner: columns.owner.owner(),
        }
    }
}

const COLUMNS: &str = "s.id, s.workspace_id, s.user_id, s.name, s.private, s.internal, s.key_id, \
                       s.ciphertext, s.revision, s.created, s.updated";

/// What keeps secret names apart: public ones within a workspace, private ones per owner.
pub const NAME_UNIQUE: &[Unique] = &[
    Unique {
        postgres: "secrets_public_name",
        sqlite: "secrets.workspace_id, secrets.name",
    },
    Unique {
        postgres: "secrets_private_name",
        sqlite: "secrets.workspace_id, secrets.user_id, secrets.name",
    },
];

pub static FIELDS: &[Field] = &[
    Field::new("id", FieldKind::Uuid, "s.id"),
    Field::new("name", FieldKind::Text, "s.name"),
    Field::new("private", FieldKind::Bool, "s.private"),
    Field::new("user", FieldKind::Text, "u.name"),
    Field::new("user_id", FieldKind::Uuid, "s.user_id"),
    Field::new("created", FieldKind::Time, "s.created"),
    Field::new("updated", FieldKind::Time, "s.updated"),
];

pub async fn insert(conn: &mut Conn, secret: &SecretRow) -> StoreResult<()> {
    let sql = "INSERT INTO secrets (id, workspace_id, user_id, name, private, internal, key_id, \
               ciphertext, revision, created, updated) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
    insert_with(conn, sql, secret).await?;
    Ok(())
}

/// Adds the insert of `secret` to `batch`.
pub fn push_insert(batch: &mut Batch, secret: &SecretRow) {
    let mut sql = batch.statement();
    sql.push(
        "INSERT INTO secrets (id, workspace_id, user_id, name, private, internal, key_id, \
         ciphertext, revision, created, updated) VALUES ",
    );
    sql.bind_tuple([
        Arg::Uuid(secret.id),
        Arg::Uuid(secret.workspace_id),
        Arg::opt_uuid(secret.user_id),
        Arg::Text(secret.name.clone()),
        Arg::Bool(secret.private),
        Arg::Bool(secret.internal),
        Arg::Uuid(secret.key_id),
        Arg::Bytes(secret.ciphertext.clone()),
        Arg::Int(secret.revision),
        Arg::Time(secret.created),
        Arg::Time(secret.updated),
    ]);
    batch.push(sql);
}

/// Runs an insert whose eleven parameters are a secret's columns in table order.
async fn insert_with(conn: &mut Conn, sql: &'static str, secret: &SecretRow) -> StoreResult<u64> {
    with_conn!(conn, |c| {
        sqlx::query(sql)
            .bind(secret.id)
            .bind(secret.workspace_id)
            .bind(secret.user_id)
            .bind(&secret.name)
            .bind(secret.private)
            .bind(secret.internal)
            .bind(secret.key_id)
            .bind(&secret.ciphertext)
            .bind(secret.revision)
            .bind(secret.created)
            .bind(secret.updated)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)
}

/// A user-facing (not internal) secret of the workspace, with its owner.
pub async fn get(conn: &mut Conn, workspace_id: Uuid, id: Uuid) -> StoreResult<Option<SecretView>> {
    let sql = format!(
        "SELECT {COLUMNS}, {OWNER_COLUMNS} FROM secrets s LEFT JOIN users u ON u.id = s.user_id \
         WHERE s.workspace_id = $1 AND s.id = $2 AND NOT s.internal"
    );
    let found: Option<SecretColumns> = with_conn!(conn, repeatable, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(workspace_id)
            .bind(id)
            .fetch_optional(c)
            .await
    })
    .map_err(classify)?;
    Ok(found.map(SecretView::from))
}

/// The secrets `viewer` may see in a workspace: public ones and their own private ones.
pub async fn list(
    conn: &mut Conn,
    workspace_id: Uuid,
    viewer: Uuid,
    query: &ListQuery,
) -> StoreResult<Listed<SecretView>> {
    let mut from = SqlBuilder::new(
        "FROM secrets s LEFT JOIN users u ON u.id = s.user_id WHERE s.workspace_id = ",
    );
    from.bind(Arg::Uuid(workspace_id));
    from.push(" AND NOT s.internal AND (NOT s.private OR s.user_id = ");
    from.bind(Arg::Uuid(viewer));
    from.push(")");
    from.push_conditions(conn.dialect(), &query.conditions, query.any);
    let columns = format!("{COLUMNS}, {OWNER_COLUMNS}");
    let listed: Listed<SecretColumns> =
        fetch_page(conn, &columns, from, query, query.order("s.id"), None).await?;
    listed.try_map(|columns| Ok::<_, StoreError>(columns.into()))
}

/// Writes new name, visibility and ciphertext if the row is still at `expected_revision`.
pub async fn update(
    conn: &mut Conn,
    secret: &SecretRow,
    expected_revision: i64,
) -> StoreResult<()> {
    let sql = "UPDATE secrets SET name = $1, private = $2, key_id = $3, ciphertext = $4, \
               revision = $5, updated = $6 WHERE id = $7 AND workspace_id = $8 AND revision = $9";
    let done = with_conn!(conn, |c| {
        sqlx::query(sql)
            .bind(&secret.name)
            .bind(secret.private)
            .bind(secret.key_id)
            .bind(&secret.ciphertext)
            .bind(secret.revision)
            .bind(secret.updated)
            .bind(secret.id)
            .bind(secret.workspace_id)
            .bind(expected_revision)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    if done == 0 {
        return Err(StoreError::Concurrent);
    }
    Ok(())
}

pub async fn delete(conn: &mut Conn, workspace_id: Uuid, id: Uuid) -> StoreResult<()> {
    let sql = "DELETE FROM secrets WHERE id = $1 AND workspace_id = $2";
    let done = with_conn!(conn, |c| sqlx::query(sql)
        .bind(id)
        .bind(workspace_id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(classify)?;
    if done == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Every secret of every workspace, internal ones included, for a backup.
pub async fn all(conn: &mut Conn) -> StoreResult<Vec<SecretRow>> {
    let sql = format!("SELECT {COLUMNS} FROM secrets s ORDER BY s.created, s.id");
    with_conn!(conn, repeatable, |c| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .fetch_all(c)
    .await)
    .map_err(classify)
}

/// Restores a secret from a backup. Skipped (`false`) when its workspace is gone or a secret
/// with its id or name exists; an owner that no longer exists is dropped.
pub async fn insert_if_absent(conn: &mut Conn, secret: &SecretRow) -> StoreResult<bool> {
    let sql = "INSERT INTO secrets (id, workspace_id, user_id, name, private, internal, key_id, \
               ciphertext, revision, created, updated) \
               SELECT $1, $2, (SELECT id FROM users WHERE id = $3), $4, $5, $6, $7, $8, $9, $10, $11 \
               WHERE EXISTS (SELECT 1 FROM workspaces WHERE id = $2) \
               ON CONFLICT DO NOTHING";
    let done = insert_with(conn, sql, secret).await?;
    Ok(done == 1)
}

/// A user-facing secret of the workspace that `viewer` may see, by id or by name (a public
/// one before the viewer's own private one of the same name).
pub async fn by_name_or_id(
    conn: &mut Conn,
    workspace_id: Uuid,
    viewer: Uuid,
    name_or_id: &str,
) -> StoreResult<Option<SecretRow>> {
    let id = Uuid::parse_str(name_or_id).unwrap_or(Uuid::nil());
    let sql = format!(
        "SELECT {COLUMNS} FROM secrets s WHERE s.workspace_id = $1 AND NOT s.internal \
         AND (NOT s.private OR s.user_id = $2) AND (s.id = $3 OR s.name = $4) \
         ORDER BY CASE WHEN s.id = $3 THEN 0 WHEN NOT s.private THEN 1 ELSE 2 END LIMIT 1"
    );
    with_conn!(conn, repeatable, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(workspace_id)
            .bind(viewer)
            .bind(id)
            .bind(name_or_id)
            .fetch_optional(c)
            .await
    })
    .map_err(classify)
}
