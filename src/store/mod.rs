//! Persistence with sqlx. One set of functions serves both backends: every query is written once
//! in SQL both PostgreSQL and SQLite accept, and [`with_conn!`] runs it on whichever connection
//! the caller holds. The store never decides permissions; callers pass in what the domain allows.

pub mod connectors;
pub mod data_keys;
pub mod devices;
pub mod query;
pub mod secrets;
pub mod settings;
pub mod users;
pub mod workspaces;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgConnection, Postgres, Sqlite, SqliteConnection};

pub use query::{Arg, Dialect};

/// The errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("record not found")]
    NotFound,
    /// A uniqueness rule was broken; the payload names the constraint or index.
    #[error("unique constraint {0} violated")]
    Conflict(String),
    #[error("the record was changed concurrently")]
    Concurrent,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("invalid database configuration: {0}")]
    Config(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Maps a unique-constraint violation to [`StoreError::Conflict`] and "no rows" to
/// [`StoreError::NotFound`]; everything else stays a database error.
pub(crate) fn classify(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.constraint().unwrap_or("unique").to_owned())
        }
        _ => StoreError::Database(err),
    }
}

/// SQLite runs each connection on a thread of its own and lets one writer in at a time; on a
/// small host four connections serve as many requests as eight, with less memory.
const SQLITE_MAX_CONNECTIONS: u32 = 4;

#[derive(Clone)]
enum Pool {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

/// A handle on the database: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// SQLite takes one writer at a time; queueing writers here, rather than in SQLite's busy
    /// handler (which sleeps and retries), keeps write latency flat.
    sqlite_writer: Arc<tokio::sync::Mutex<()>>,
}

/// One connection taken from the pool, or an open transaction; store functions take `&mut Conn`.
pub enum Conn {
    Postgres(PoolConnection<Postgres>),
    Sqlite(PoolConnection<Sqlite>),
    PostgresTx(sqlx::Transaction<'static, Postgres>),
    SqliteTx(
        sqlx::Transaction<'static, Sqlite>,
        tokio::sync::OwnedMutexGuard<()>,
    ),
}

/// Runs `$body` with `$c` bound to the underlying `&mut PgConnection` or `&mut SqliteConnection`.
/// The body is compiled once per backend, so it is written exactly once.
macro_rules! with_conn {
    ($conn:expr, |$c:ident| $body:expr) => {{
        match $conn.raw() {
            $crate::store::RawConn::Postgres($c) => $body,
            $crate::store::RawConn::Sqlite($c) => $body,
        }
    }};
}
pub(crate) use with_conn;

pub(crate) enum RawConn<'a> {
    Postgres(&'a mut PgConnection),
    Sqlite(&'a mut SqliteConnection),
}

impl Conn {
    pub(crate) fn raw(&mut self) -> RawConn<'_> {
        match self {
            Conn::Postgres(c) => RawConn::Postgres(c),
            Conn::Sqlite(c) => RawConn::Sqlite(c),
            Conn::PostgresTx(tx) => RawConn::Postgres(tx),
            Conn::SqliteTx(tx, _) => RawConn::Sqlite(tx),
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Conn::Postgres(_) | Conn::PostgresTx(_) => Dialect::Postgres,
            Conn::Sqlite(_) | Conn::SqliteTx(..) => Dialect::Sqlite,
        }
    }

    /// Commits a transaction; a plain connection has nothing to commit.
    pub async fn commit(self) -> StoreResult<()> {
        match self {
            Conn::PostgresTx(tx) => tx.commit().await?,
            Conn::SqliteTx(tx, _writer) => tx.commit().await?,
            Conn::Postgres(_) | Conn::Sqlite(_) => {}
        }
        Ok(())
    }
}

/// SQLite counts every allocation under one process-wide mutex unless told not to; nothing here
/// reads those counts, and the lock was a visible share of a list request's time. The setting
/// only takes before SQLite initialises (the first connection), so later calls change nothing.
fn disable_sqlite_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `SQLITE_CONFIG_MEMSTATUS` takes one int; sqlite3_config is safe to call before
        // initialisation and returns SQLITE_MISUSE (ignored) after it.
        unsafe {
            libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS, 0);
        }
    });
}

impl Store {
    fn new(pool: Pool) -> Store {
        Store {
            pool,
            sqlite_writer: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Connects to `database_url`, or to the embedded SQLite database in `data_dir`, and applies
    /// the migrations.
    pub async fn open(
        database_url: Option<&str>,
        data_dir: &Path,
        max_connections: u32,
    ) -> StoreResult<Store> {
        let store = match database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                // Requests are short: parallel workers cost more to start than they save.
                let options = PgConnectOptions::from_str(url)?
                    .options([("max_parallel_workers_per_gather", "0")]);
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(Duration::from_secs(10))
                    // sqlx already pings a connection when it comes back to the pool; pinging
                    // it again on the way out cost every request an extra round trip.
                    .test_before_acquire(false)
                    .connect_with(options)
                    .await?;
                Store::new(Pool::Postgres(pool))
            }
            Some(url) if url.starts_with("sqlite:") => {
                Self::open_sqlite(SqliteConnectOptions::from_str(url)?, max_connections).await?
            }
            Some(_) => {
                return Err(StoreError::Config(
                    "DATABASE_URL must start with postgres://, postgresql:// or sqlite:".into(),
                ));
            }
            None => {
                std::fs::create_dir_all(data_dir).map_err(|e| {
                    StoreError::Config(format!("cannot create {}: {e}", data_dir.display()))
                })?;
                let options =
                    SqliteConnectOptions::new().filename(data_dir.join("connector-hub.sqlite3"));
                Self::open_sqlite(options.create_if_missing(true), max_connections).await?
            }
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn open_sqlite(
        options: SqliteConnectOptions,
        max_connections: u32,
    ) -> StoreResult<Store> {
        disable_sqlite_memory_statistics();
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // 1 MiB of page cache per connection instead of 2: the operating system caches the
            // file too, and each connection's cache is resident memory.
            .pragma("cache_size", "-1024");
        // One writer at a time and a page cache per connection: more than a few connections
        // only cost memory.
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.min(SQLITE_MAX_CONNECTIONS))
            .acquire_timeout(Duration::from_secs(10))
            // As for PostgreSQL: the ping on release is enough.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        Ok(Store::new(Pool::Sqlite(pool)))
    }

    async fn migrate(&self) -> StoreResult<()> {
        match &self.pool {
            Pool::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
            Pool::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await?,
        }
        Ok(())
    }

    pub fn dialect(&self) -> Dialect {
        match self.pool {
            Pool::Postgres(_) => Dialect::Postgres,
            Pool::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// The name reported as `database_type` by `/api/v1/info`.
    pub fn backend_name(&self) -> &'static str {
        match self.pool {
            Pool::Postgres(_) => "postgresql",
            Pool::Sqlite(_) => "sqlite",
        }
    }

    /// A pooled connection for reads and single-statement writes.
    pub async fn conn(&self) -> StoreResult<Conn> {
        Ok(match &self.pool {
            Pool::Postgres(pool) => Conn::Postgres(pool.acquire().await?),
            Pool::Sqlite(pool) => Conn::Sqlite(pool.acquire().await?),
        })
    }

    /// A write transaction. On SQLite it takes the write lock up front (`BEGIN IMMEDIATE`), so
    /// that concurrent writers queue on the busy timeout instead of failing on lock upgrade.
    pub async fn begin(&self) -> StoreResult<Conn> {
        Ok(match &self.pool {
            Pool::Postgres(pool) => Conn::PostgresTx(pool.begin().await?),
            Pool::Sqlite(pool) => {
                let writer = self.sqlite_writer.clone().lock_owned().await;
                Conn::SqliteTx(pool.begin_with("BEGIN IMMEDIATE").await?, writer)
            }
        })
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Postgres(pool) => pool.close().await,
            Pool::Sqlite(pool) => pool.close().await,
        }
    }
}

/// Fetches the requested page of the rows `from` selects, with their total, in one query: the
/// total is a scalar sub-select, either `total` (text numbered after `from`'s values, see
/// [`query::SqlBuilder::numbered_after`]) or else a count of the rows `from` selects.
pub(crate) async fn fetch_page<T>(
    conn: &mut Conn,
    columns: &str,
    from: query::SqlBuilder,
    list: &query::ListQuery,
    order: query::Order<'_>,
    total: Option<query::SqlBuilder>,
) -> StoreResult<query::Listed<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + Send
        + Unpin,
{
    // `$n` placeholders may repeat, so a count of `from` can reuse its values.
    let total =
        total.unwrap_or_else(|| query::SqlBuilder::new(format!("SELECT COUNT(*) {}", from.sql)));
    let select = format!(
        "SELECT {columns}, ({}) AS total_rows {}",
        total.sql, from.sql
    );
    let args: Vec<query::Arg> = from.args.into_iter().chain(total.args).collect();
    let rows: Vec<(T, i64)> = page_rows(conn, &select, &args, list, order).await?;
    if let Some((_, total)) = rows.first() {
        let total = *total;
        return Ok(query::Listed {
            items: rows.into_iter().map(|(item, _)| item).collect(),
            total,
        });
    }
    // Past the last page, the total (which the error message tells) comes from the first row.
    let first = query::ListQuery {
        page: 1,
        size: 1,
        ..list.clone()
    };
    let total = match list.offset() {
        0 => 0,
        _ => page_rows::<T>(conn, &select, &args, &first, order)
            .await?
            .first()
            .map_or(0, |(_, t)| *t),
    };
    Ok(query::Listed {
        items: Vec::new(),
        total,
    })
}

async fn page_rows<T>(
    conn: &mut Conn,
    select: &str,
    args: &[query::Arg],
    list: &query::ListQuery,
    order: query::Order<'_>,
) -> StoreResult<Vec<(T, i64)>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + Send
        + Unpin,
{
    let mut page = query::SqlBuilder::new(select);
    page.args = args.to_vec();
    list.push_tail(&mut page, order);
    with_conn!(conn, |c| {
        query::bind_args!(
            sqlx::query(sqlx::AssertSqlSafe(page.sql.clone())),
            page.args.iter().cloned()
        )
        .fetch_all(c)
        .await
        .and_then(|rows| {
            rows.iter()
                .map(|row| Ok((T::from_row(row)?, sqlx::Row::try_get(row, "total_rows")?)))
                .collect()
        })
    })
    .map_err(classify)
}
