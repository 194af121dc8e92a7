//! Data keys (wrapped by the master key) and the tables whose values they encrypt.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Conn, StoreResult, classify, with_conn};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DataKeyRow {
    pub id: Uuid,
    pub wrapped: Vec<u8>,
    pub master_key_id: String,
    pub active: bool,
    pub encryptions: i64,
    pub created: DateTime<Utc>,
    pub retired: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, wrapped, master_key_id, active, encryptions, created, retired";

pub async fn all(conn: &mut Conn) -> StoreResult<Vec<DataKeyRow>> {
    let sql = "SELECT id, wrapped, master_key_id, active, encryptions, created, retired \
               FROM data_keys ORDER BY created, id";
    with_conn!(conn, repeatable, |c| sqlx::query_as(sql).fetch_all(c).await).map_err(classify)
}

pub async fn get(conn: &mut Conn, id: Uuid) -> StoreResult<Option<DataKeyRow>> {
    let sql = "SELECT id, wrapped, master_key_id, active, encryptions, created, retired \
               FROM data_keys WHERE id = $1";
    with_conn!(conn, repeatable, |c| sqlx::query_as(sql)
        .bind(id)
        .fetch_optional(c)
        .await)
    .map_err(classify)
}

pub async fn active_id(conn: &mut Conn) -> StoreResult<Option<Uuid>> {
    let sql = "SELECT id FROM data_keys WHERE active";
    with_conn!(conn, repeatable, |c| sqlx::query_scalar(sql)
        .fetch_optional(c)
        .await)
    .map_err(classify)
}

/// Retires the active key (if any) and makes `key` active. Run inside a transaction; a
/// concurrent rotation makes the insert fail with a conflict on `data_keys_one_active`.
pub async fn activate_new(conn: &mut Conn, key: &DataKeyRow) -> StoreResult<()> {
    let retire = "UPDATE data_keys SET active = FALSE, retired = $1 WHERE active";
    let insert =
        format!("INSERT INTO data_keys ({COLUMNS}) VALUES ($1, $2, $3, TRUE, 0, $4, NULL)");
    with_conn!(conn, |c| {
        sqlx::query(retire)
            .bind(key.created)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected())?;
        sqlx::query(sqlx::AssertSqlSafe(insert))
            .bind(key.id)
            .bind(&key.wrapped)
            .bind(&key.master_key_id)
            .bind(key.created)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    Ok(())
}

/// Makes `key` the first active key, unless a key is active already (another process made
/// it first): whether it was made. Two inserts at once conflict on `data_keys_one_active`.
pub async fn activate_first(conn: &mut Conn, key: &DataKeyRow) -> StoreResult<bool> {
    let insert = "INSERT INTO data_keys (id, wrapped, master_key_id, active, encryptions, created) \
                  SELECT $1, $2, $3, TRUE, 0, $4 WHERE NOT EXISTS (SELECT 1 FROM data_keys WHERE active)";
    let inserted = with_conn!(conn, |c| {
        sqlx::query(insert)
            .bind(key.id)
            .bind(&key.wrapped)
            .bind(&key.master_key_id)
            .bind(key.created)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    Ok(inserted == 1)
}

/// Adds a retired key (restored from a backup) unless one with its id exists.
pub async fn insert_retired_if_absent(conn: &mut Conn, key: &DataKeyRow) -> StoreResult<()> {
    let sql = "INSERT INTO data_keys (id, wrapped, master_key_id, active, encryptions, created, retired) \
               VALUES ($1, $2, $3, FALSE, $4, $5, $6) ON CONFLICT (id) DO NOTHING";
    with_conn!(conn, |c| {
        sqlx::query(sql)
            .bind(key.id)
            .bind(&key.wrapped)
            .bind(&key.master_key_id)
            .bind(key.encryptions)
            .bind(key.created)
            .bind(key.retired.unwrap_or(key.created))
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    Ok(())
}

/// Reserves `count` encryptions under `id` if it is still the active key, returning the new
/// total; `None` when another process has rotated it meanwhile.
pub async fn reserve(conn: &mut Conn, id: Uuid, count: i64) -> StoreResult<Option<i64>> {
    let sql = "UPDATE data_keys SET encryptions = encryptions + $1 \
               WHERE id = $2 AND active RETURNING encryptions";
    with_conn!(conn, |c| sqlx::query_scalar(sql)
        .bind(count)
        .bind(id)
        .fetch_optional(c)
        .await)
    .map_err(classify)
}

pub async fn set_wrapped(
    conn: &mut Conn,
    id: Uuid,
    wrapped: &[u8],
    master_key_id: &str,
) -> StoreResult<()> {
    let sql = "UPDATE data_keys SET wrapped = $1, master_key_id = $2 WHERE id = $3";
    with_conn!(conn, |c| {
        sqlx::query(sql)
            .bind(wrapped)
            .bind(master_key_id)
            .bind(id)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    Ok(())
}

/// Deletes a key that is retired and protects nothing; `false` when it is active or in use.
pub async fn delete_unused(conn: &mut Conn, id: Uuid) -> StoreResult<bool> {
    let sql = "DELETE FROM data_keys WHERE id = $1 AND NOT active \
               AND NOT EXISTS (SELECT 1 FROM secrets WHERE key_id = $1) \
               AND NOT EXISTS (SELECT 1 FROM server_secrets WHERE key_id = $1)";
    let done = with_conn!(conn, |c| sqlx::query(sql)
        .bind(id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(classify)?;
    Ok(done == 1)
}

/// How many values each key protects, over every table that holds encrypted values.
pub async fn usage(conn: &mut Conn) -> StoreResult<Vec<(Uuid, i64)>> {
    let sql = "SELECT key_id, COUNT(*) FROM (\
                 SELECT key_id FROM secrets UNION ALL SELECT key_id FROM server_secrets\
               ) AS sealed GROUP BY key_id";
    with_conn!(conn, repeatable, |c| sqlx::query_as(sql).fetch_all(c).await).map_err(classify)
}

/// A table holding encrypted values, each row with `id`, `key_id`, `ciphertext` and `revision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedTable {
    Secrets,
    ServerSecrets,
}

impl SealedTable {
    pub const ALL: [SealedTable; 2] = [SealedTable::Secrets, SealedTable::ServerSecrets];

    fn select_stale(self) -> &'static str {
        match self {
            SealedTable::Secrets => {
                "SELECT id, workspace_id, name, ciphertext, revision FROM secrets \
                 WHERE key_id <> $1 ORDER BY id LIMIT $2"
            }
            SealedTable::ServerSecrets => {
                "SELECT id, CAST(NULL AS UUID) AS workspace_id, name, ciphertext, revision \
                 FROM server_secrets WHERE key_id <> $1 ORDER BY id LIMIT $2"
            }
        }
    }

    fn swap(self) -> &'static str {
        match self {
            SealedTable::Secrets => {
                "UPDATE secrets SET ciphertext = $1, key_id = $2, revision = revision + 1 \
                 WHERE id = $3 AND revision = $4"
            }
            SealedTable::ServerSecrets => {
                "UPDATE server_secrets SET ciphertext = $1, key_id = $2, revision = revision + 1 \
                 WHERE id = $3 AND revision = $4"
            }
        }
    }
}

/// A value that is still encrypted under a key other than the active one.
#[derive(Debug, sqlx::FromRow)]
pub struct StaleValue {
    pub id: Uuid,
    pub workspace_id: Option<Uuid>,
    pub name: String,
    pub ciphertext: Vec<u8>,
    pub revision: i64,
}

pub async fn stale_values(
    conn: &mut Conn,
    table: SealedTable,
    active: Uuid,
    limit: u32,
) -> StoreResult<Vec<StaleValue>> {
    let sql = table.select_stale();
    let sql = match conn.dialect() {
        // SQLite has no UUID type to cast to; a NULL is a NULL.
        super::Dialect::Sqlite => sql.replace("CAST(NULL AS UUID)", "NULL"),
        super::Dialect::Postgres => sql.to_owned(),
    };
    with_conn!(conn, repeatable, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(active)
            .bind(i64::from(limit))
            .fetch_all(c)
            .await
    })
    .map_err(classify)
}

/// Replaces a value's ciphertext if nobody wrote it since it was read; `false` otherwise.
pub async fn swap_ciphertext(
    conn: &mut Conn,
    table: SealedTable,
    value: &StaleValue,
    ciphertext: &[u8],
    key_id: Uuid,
) -> StoreResult<bool> {
    let sql = table.swap();
    let done = with_conn!(conn, |c| {
        sqlx::query(sql)
            .bind(ciphertext)
            .bind(key_id)
            .bind(value.id)
            .bind(value.revision)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    Ok(done == 1)
}
