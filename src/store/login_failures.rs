//! Failed logins kept in the database, so that every server process on one PostgreSQL database
//! counts against the same limits (see `auth::shared_limit`). A row is one failure under one
//! count's key; an attempt writes its three rows before its credentials are checked, as a
//! pending failure, and takes them back when it succeeds. Times are the database's clock, the
//! one every process shares. PostgreSQL only: a SQLite server counts in process.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Conn, StoreResult, classify, with_conn};

/// The first key of this table's advisory locks, so that they share no lock with anything
/// else that takes advisory locks on the database (sqlx's migrations take a one-key lock).
const LOCK_CLASS: i32 = 0x4c6f_6769; // "Logi"

/// The advisory lock of a count's key: 32 bits of its SHA-256, the same in every process.
/// Two keys that share a lock only wait for each other.
fn lock_id(key: &str) -> i32 {
    let digest = Sha256::digest(key.as_bytes());
    i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Takes the locks of `keys` until the transaction ends, in one order in every process so that
/// two attempts never wait for each other's. Run inside a transaction.
pub async fn lock(conn: &mut Conn, keys: &[&str]) -> StoreResult<()> {
    let mut ids: Vec<i32> = keys.iter().map(|key| lock_id(key)).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let sql = "SELECT pg_advisory_xact_lock($1, $2)";
        with_conn!(conn, |c| sqlx::query(sql)
            .bind(LOCK_CLASS)
            .bind(id)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
        .map_err(classify)?;
    }
    Ok(())
}

/// The failures of one key within the window.
#[derive(Debug, sqlx::FromRow)]
pub struct KeyFailures {
    pub limit_key: String,
    pub failures: i64,
    pub oldest: Option<DateTime<Utc>>,
    /// The database's clock as it counted.
    pub now: DateTime<Utc>,
}

/// The failures of each of three keys in the `window_seconds` up to the database's clock.
pub async fn count(
    conn: &mut Conn,
    keys: [&str; 3],
    window_seconds: f64,
) -> StoreResult<Vec<KeyFailures>> {
    let sql = "SELECT k.limit_key, COUNT(f.at) AS failures, MIN(f.at) AS oldest, clock.now \
               FROM (SELECT clock_timestamp() AS now) AS clock \
               CROSS JOIN (VALUES ($1), ($2), ($3)) AS k (limit_key) \
               LEFT JOIN login_failures f ON f.limit_key = k.limit_key \
                   AND f.at > clock.now - make_interval(secs => $4) \
               GROUP BY k.limit_key, clock.now";
    with_conn!(conn, |c| sqlx::query_as(sql)
        .bind(keys[0])
        .bind(keys[1])
        .bind(keys[2])
        .bind(window_seconds)
        .fetch_all(c)
        .await)
    .map_err(classify)
}

/// Counts `attempt` as a failure under each of `keys`, as of `at`.
pub async fn insert(
    conn: &mut Conn,
    attempt: Uuid,
    keys: [&str; 3],
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = "INSERT INTO login_failures (limit_key, at, attempt) \
               VALUES ($1, $4, $5), ($2, $4, $5), ($3, $4, $5)";
    with_conn!(conn, |c| sqlx::query(sql)
        .bind(keys[0])
        .bind(keys[1])
        .bind(keys[2])
        .bind(at)
        .bind(attempt)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(classify)?;
    Ok(())
}

/// Takes back the failures `attempt` counted under `keys`, and every failure within the window
/// under `cleared`. Rows older than the window are left to [`sweep`], so that the two never
/// delete the same row.
pub async fn forget(
    conn: &mut Conn,
    attempt: Uuid,
    keys: [&str; 3],
    cleared: &str,
    window_seconds: f64,
) -> StoreResult<()> {
    let sql = "DELETE FROM login_failures \
               WHERE (limit_key IN ($1, $2, $3) AND attempt = $4) \
                  OR (limit_key = $5 AND at > clock_timestamp() - make_interval(secs => $6))";
    with_conn!(conn, |c| sqlx::query(sql)
        .bind(keys[0])
        .bind(keys[1])
        .bind(keys[2])
        .bind(attempt)
        .bind(cleared)
        .bind(window_seconds)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(classify)?;
    Ok(())
}

/// Deletes the failures older than `older_than_seconds`; how many.
pub async fn sweep(conn: &mut Conn, older_than_seconds: f64) -> StoreResult<u64> {
    let sql = "DELETE FROM login_failures \
               WHERE at < clock_timestamp() - make_interval(secs => $1)";
    with_conn!(conn, |c| sqlx::query(sql)
        .bind(older_than_seconds)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(classify)
}
