//! Device authorization grants for the OAuth device flow.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Conn, StoreResult, classify, with_conn};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeviceRow {
    pub id: Uuid,
    pub client_id: Uuid,
    pub device_code_hash: String,
    pub user_code: String,
    pub user_id: Option<Uuid>,
    pub expires_at: DateTime<Utc>,
    pub created: DateTime<Utc>,
}

pub async fn insert(conn: &mut Conn, device: &DeviceRow) -> StoreResult<()> {
    let sql = "INSERT INTO device_authorizations \
               (id, client_id, device_code_hash, user_code, user_id, expires_at, created) \
               VALUES ($1, $2, $3, $4, $5, $6, $7)";
    with_conn!(conn, |c| {
        sqlx::query(sql)
            .bind(device.id)
            .bind(device.client_id)
            .bind(&device.device_code_hash)
            .bind(&device.user_code)
            .bind(device.user_id)
            .bind(device.expires_at)
            .bind(device.created)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    Ok(())
}

pub async fn by_code(conn: &mut Conn, device_code_hash: &str) -> StoreResult<Option<DeviceRow>> {
    let sql = "SELECT id, client_id, device_code_hash, user_code, user_id, expires_at, created \
               FROM device_authorizations WHERE device_code_hash = $1";
    with_conn!(conn, repeatable, |c| sqlx::query_as(sql)
        .bind(device_code_hash)
        .fetch_optional(c)
        .await)
    .map_err(classify)
}

/// Wrong user codes a device login survives.
pub const MAX_FAILED_VERIFICATIONS: i64 = 5;

/// Approves a pending, unexpired grant whose user code matches; `false` otherwise. A wrong
/// code counts against the grant, which goes after [`MAX_FAILED_VERIFICATIONS`] of them. Run
/// inside a transaction.
pub async fn approve(
    conn: &mut Conn,
    id: Uuid,
    user_code: &str,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let sql = "UPDATE device_authorizations SET user_id = $1 \
               WHERE id = $2 AND user_code = $3 AND user_id IS NULL AND expires_at > $4";
    let done = with_conn!(conn, |c| {
        sqlx::query(sql)
            .bind(user_id)
            .bind(id)
            .bind(user_code)
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    if done == 1 {
        return Ok(true);
    }
    with_conn!(conn, |c| {
        sqlx::query(
            "UPDATE device_authorizations SET failed_verifications = failed_verifications + 1 \
             WHERE id = $1 AND user_id IS NULL",
        )
        .bind(id)
        .execute(&mut *c)
        .await?;
        sqlx::query(
            "DELETE FROM device_authorizations WHERE id = $1 AND failed_verifications >= $2",
        )
        .bind(id)
        .bind(MAX_FAILED_VERIFICATIONS)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    Ok(false)
}

/// Deletes a grant; `false` when another request already did (it was exchanged).
pub async fn delete(conn: &mut Conn, id: Uuid) -> StoreResult<bool> {
    let done = with_conn!(conn, |c| {
        sqlx::query("DELETE FROM device_authorizations WHERE id = $1")
            .bind(id)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    Ok(done == 1)
}

/// Deletes every grant that expired before `now`.
pub async fn delete_expired(conn: &mut Conn, now: DateTime<Utc>) -> StoreResult<()> {
    with_conn!(conn, |c| {
        sqlx::query("DELETE FROM device_authorizations WHERE expires_at <= $1")
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    Ok(())
}
