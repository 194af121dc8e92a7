//! Server-wide settings: plain ones (the deployment id) and encrypted ones (the token signing
//! key). Both are written once by whichever process starts first.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Conn, StoreResult, classify, with_conn};

pub async fn get(conn: &mut Conn, name: &str) -> StoreResult<Option<String>> {
    let sql = "SELECT value FROM server_settings WHERE name = $1";
    with_conn!(conn, repeatable, |c| sqlx::query_scalar(sql)
        .bind(name)
        .fetch_optional(c)
        .await)
    .map_err(classify)
}

/// Stores `value` unless the setting exists; returns the value that is stored now.
pub async fn get_or_insert(conn: &mut Conn, name: &str, value: &str) -> StoreResult<String> {
    let insert = "INSERT INTO server_settings (name, value) VALUES ($1, $2) \
                  ON CONFLICT (name) DO NOTHING";
    with_conn!(conn, |c| sqlx::query(insert)
        .bind(name)
        .bind(value)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(classify)?;
    get(conn, name).await?.ok_or(super::StoreError::NotFound)
}

#[derive(Debug, sqlx::FromRow)]
pub struct SealedSetting {
    pub id: Uuid,
    pub ciphertext: Vec<u8>,
}

pub async fn get_sealed(conn: &mut Conn, name: &str) -> StoreResult<Option<SealedSetting>> {
    let sql = "SELECT id, ciphertext FROM server_secrets WHERE name = $1";
    with_conn!(conn, repeatable, |c| sqlx::query_as(sql)
        .bind(name)
        .fetch_optional(c)
        .await)
    .map_err(classify)
}

/// Stores an encrypted setting unless one of that name exists (another process won the race).
pub async fn insert_sealed_if_absent(
    conn: &mut Conn,
    id: Uuid,
    name: &str,
    key_id: Uuid,
    ciphertext: &[u8],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = "INSERT INTO server_secrets (id, name, key_id, ciphertext, revision, updated) \
               VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (name) DO NOTHING";
    with_conn!(conn, |c| {
        sqlx::query(sql)
            .bind(id)
            .bind(name)
            .bind(key_id)
            .bind(ciphertext)
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    Ok(())
}
