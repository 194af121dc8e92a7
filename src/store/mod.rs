//! Persistence with sqlx. One set of functions serves both backends: every query is written once
//! in SQL both PostgreSQL and SQLite accept, and [`with_conn!`] runs it on whichever connection
//! the caller holds. The store never decides permissions; callers pass in what the domain allows.

pub mod audit;
mod batch;
mod checkpoint;
pub mod components;
mod conn;
pub mod connectors;
pub mod data_keys;
pub mod devices;
pub mod login_failures;
pub mod pool;
pub mod query;
mod secret_links;
pub mod secrets;
pub mod settings;
pub mod stacks;
pub mod users;
pub mod workspaces;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{PgConnection, SqliteConnection};
use tokio::sync::Notify;

pub use batch::Batch;
use conn::Checkout;
pub use conn::Conn;
pub(crate) use conn::{RawConn, with_conn};
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
    /// The record is still used by this many others (components linked to a connector, stacks
    /// holding a component), so it cannot go.
    #[error("the record is used by {0} others")]
    Referenced(i64),
    /// A write named a record that does not exist (any more), or removed one that is still
    /// referenced: a foreign key refused it.
    #[error("a reference between records was refused: {0}")]
    ForeignKey(String),
    /// A stored value does not parse as what it must be.
    #[error("a stored record is corrupt: {0}")]
    Corrupt(String),
    /// The database could not be reached, or closed the connection; trying again later may
    /// succeed.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database refused a value, such as text with a NUL character in it on PostgreSQL.
    #[error("the database refused a value: {0}")]
    InvalidValue(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("invalid database configuration: {0}")]
    Config(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A unique constraint, as each backend names a violation of it (the payload of
/// [`StoreError::Conflict`]): PostgreSQL by the constraint's or unique index's name (see the
/// migrations), SQLite by the columns it covers.
#[derive(Debug, Clone, Copy)]
pub struct Unique {
    pub postgres: &'static str,
    pub sqlite: &'static str,
}

impl StoreError {
    /// Whether this is a violation of one of `constraints`, rather than of another rule.
    pub fn violates(&self, constraints: &[Unique]) -> bool {
        matches!(self, StoreError::Conflict(violated)
            if constraints.iter().any(|u| u.postgres == violated || u.sqlite == violated))
    }
}

/// Names the unique constraint a violation broke: PostgreSQL says which; SQLite's message
/// lists its columns (`UNIQUE constraint failed: t.a, t.b`).
fn violated_unique(db: &dyn sqlx::error::DatabaseError) -> String {
    match db.constraint() {
        Some(name) => name.to_owned(),
        None => db
            .message()
            .strip_prefix("UNIQUE constraint failed: ")
            .unwrap_or(db.message())
            .to_owned(),
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`], "no rows" to
/// [`StoreError::NotFound`], text the database cannot hold to [`StoreError::InvalidValue`], and
/// a lost or unobtainable connection to [`StoreError::Unavailable`]; everything else stays a
/// database error.
pub(crate) fn classify(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(violated_unique(db.as_ref()))
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::ForeignKey(db.message().to_owned())
        }
        // character_not_in_repertoire, untranslatable_character: a NUL in text, say.
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("22021" | "22P05")) => {
            StoreError::InvalidValue(db.message().to_owned())
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            StoreError::Unavailable(err.to_string())
        }
        err if pool::ends_session(err) => StoreError::Unavailable(err.to_string()),
        _ => StoreError::Database(err),
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        classify(err)
    }
}

/// SQLite runs each connection on a thread of its own and lets one writer in at a time: one
/// connection is kept for write transactions (so its page cache stays warm across them) and a
/// few serve reads. More readers only cost memory on a small host.
const SQLITE_READERS: u32 = 3;

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
enum Pools {
    Postgres(pool::Pool<PgConnection>),
    Sqlite {
        readers: pool::Pool<SqliteConnection>,
        /// Its one connection is the write lock: transactions queue here, in order, rather
        /// than in SQLite's busy handler (which sleeps and retries).
        writer: pool::Pool<SqliteConnection>,
        /// Batches queue here for the writer, to be committed in groups.
        batches: batch::GroupCommit,
    },
}

/// A handle on the database: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Store {
    pools: Pools,
    /// Audit records are written (always, but in the benchmark's baseline).
    audited: bool,
    /// Told whenever audit records queued for the chainer have committed.
    records_queued: Arc<Notify>,
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

/// Waits for this process's turn to migrate the SQLite database `file`: an exclusive lock on
/// `{file}.migrations.lock`, held until the returned file is dropped.
async fn migration_turn(file: &Path) -> StoreResult<std::fs::File> {
    let mut lock_path = file.as_os_str().to_owned();
    lock_path.push(".migrations.lock");
    let lock_path = PathBuf::from(lock_path);
    tokio::task::spawn_blocking(move || {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        lock.lock()?;
        Ok(lock)
    })
    .await
    .map_err(|e| StoreError::Config(format!("waiting to migrate: {e}")))?
    .map_err(|e: std::io::Error| {
        StoreError::Config(format!("cannot lock the database for migrations: {e}"))
    })
}

impl Store {
    /// Connects to `database_url`, or to the embedded SQLite database in `data_dir`, and applies
    /// the migrations.
    pub async fn open(
        database_url: Option<&str>,
        data_dir: &Path,
        max_connections: u32,
    ) -> StoreResult<Store> {
        let mut sqlite_file = None;
        let store = match database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                // Requests are short: parallel workers and JIT compilation cost more to start
                // than they save. Every query is prepared once per connection and run with
                // its values bound; planning it again for each run cost more than any plan
                // chosen for particular values saved.
                let options = PgConnectOptions::from_str(url)?.options([
                    ("max_parallel_workers_per_gather", "0"),
                    ("jit", "off"),
                    ("plan_cache_mode", "force_generic_plan"),
                ]);
                let pool = pool::build(options, max_connections, ACQUIRE_TIMEOUT);
                Store {
                    pools: Pools::Postgres(pool),
                    audited: true,
                    records_queued: Arc::default(),
                }
            }
            Some(url) if url.starts_with("sqlite:") => {
                // As with the embedded default, the named file is made on first start.
                let options = SqliteConnectOptions::from_str(url)?.create_if_missing(true);
                sqlite_file = Some(options.get_filename().to_owned());
                Self::open_sqlite(options, max_connections)
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
                let file = data_dir.join("connector-hub.sqlite3");
                let options = SqliteConnectOptions::new().filename(&file);
                sqlite_file = Some(file);
                Self::open_sqlite(options.create_if_missing(true), max_connections)
            }
        };
        // sqlx locks PostgreSQL while it migrates, but not SQLite: processes starting together
        // on one SQLite file take turns through a lock file beside it.
        let _turn = match sqlite_file.filter(|file| file != Path::new(":memory:")) {
            Some(file) => Some(migration_turn(&file).await?),
            None => None,
        };
        store.migrate().await?;
        Ok(store)
    }

    fn open_sqlite(options: SqliteConnectOptions, max_connections: u32) -> Store {
        disable_sqlite_memory_statistics();
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(ACQUIRE_TIMEOUT);
        // 512 KiB of page cache per connection instead of 2 MiB: the operating system caches
        // the file too, and each connection's cache is resident memory. With 100k connectors,
        // 1 MiB served no request faster than 512 KiB did.
        let options = options
            .pragma("cache_size", "-512")
            .pragma("wal_autocheckpoint", checkpoint::BACKSTOP_PAGES);
        let writer = pool::build(options.clone(), 1, ACQUIRE_TIMEOUT);
        let checkpointer = checkpoint::Checkpointer::start(options.clone());
        Store {
            pools: Pools::Sqlite {
                readers: pool::build(
                    options,
                    max_connections.clamp(1, SQLITE_READERS),
                    ACQUIRE_TIMEOUT,
                ),
                batches: batch::GroupCommit::start(writer.clone(), checkpointer),
                writer,
            },
            audited: true,
            records_queued: Arc::default(),
        }
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut conn = self.write_conn().await?;
        match conn.raw() {
            RawConn::Postgres(c) => sqlx::migrate!("migrations/postgres").run(c).await?,
            RawConn::Sqlite(c) => sqlx::migrate!("migrations/sqlite").run(c).await?,
        }
        drop(conn);
        if self.dialect() == Dialect::Sqlite {
            audit::link_records_left_waiting(self).await?;
        }
        Ok(())
    }

    /// An empty batch of writes for [`Store::write`].
    pub fn batch(&self) -> Batch {
        let mut batch = Batch::new(self.dialect());
        batch.audited = self.audited;
        batch
    }

    /// Hands `listener` the audit records linked on SQLite, from now on, as they commit: group
    /// by group as the writer commits them, before the writes' callers learn their outcome,
    /// and those of a longer transaction as it commits. On PostgreSQL, records are linked by
    /// [`audit::chain_pending`], which hands them to its caller.
    pub fn when_writer_chains(&self, listener: impl Fn(&[audit::Chained]) + Send + Sync + 'static) {
        if let Pools::Sqlite { batches, .. } = &self.pools {
            batches.when_chained(std::sync::Arc::new(listener));
        }
    }

    /// Told whenever audit records that wait for the chainer ([`audit::chain_pending`]) have
    /// committed: on PostgreSQL. On SQLite none wait.
    pub fn records_queued(&self) -> Arc<Notify> {
        self.records_queued.clone()
    }

    /// This store, writing no audit records: only to measure what the audit log costs.
    pub fn unaudited(mut self) -> Store {
        self.audited = false;
        self
    }

    pub fn dialect(&self) -> Dialect {
        match self.pools {
            Pools::Postgres(_) => Dialect::Postgres,
            Pools::Sqlite { .. } => Dialect::Sqlite,
        }
    }

    /// The pools' state, for `/metrics`.
    pub fn pool_readings(&self) -> Vec<crate::metrics::PoolReading> {
        match &self.pools {
            Pools::Postgres(pool) => vec![pool::reading("postgres", pool)],
            Pools::Sqlite {
                readers, writer, ..
            } => vec![
                pool::reading("sqlite_readers", readers),
                pool::reading("sqlite_writer", writer),
            ],
        }
    }

    /// The name reported as `database_type` by `/api/v1/info`.
    pub fn backend_name(&self) -> &'static str {
        match self.pools {
            Pools::Postgres(_) => "postgresql",
            Pools::Sqlite { .. } => "sqlite",
        }
    }

    /// A pooled connection for reads.
    pub async fn conn(&self) -> StoreResult<Conn> {
        self.checkout(false).await
    }

    /// The connection writes run on, outside a transaction: on SQLite the one writer, so that
    /// a write queues in order with the others instead of retrying in SQLite's busy handler on a
    /// reader. Take it only after any encryption: the keyring may need it to count one.
    pub async fn write_conn(&self) -> StoreResult<Conn> {
        self.checkout(true).await
    }

    async fn checkout(&self, writer: bool) -> StoreResult<Conn> {
        let checkout = match &self.pools {
            Pools::Postgres(pool) => Checkout::Postgres(pool::get(pool).await?),
            Pools::Sqlite { writer: w, .. } if writer => Checkout::Sqlite(pool::get(w).await?),
            Pools::Sqlite { readers, .. } => Checkout::Sqlite(pool::get(readers).await?),
        };
        let records_linked = match &self.pools {
            Pools::Sqlite { batches, .. } => Some(batches.listener()),
            Pools::Postgres(_) => None,
        };
        Ok(Conn::new(
            checkout,
            self.audited,
            self.records_queued.clone(),
            records_linked,
        ))
    }

    /// A write transaction. On SQLite it takes the write lock up front (`BEGIN IMMEDIATE`), on
    /// the one writer connection, so that writers queue for it in order.
    pub async fn begin(&self) -> StoreResult<Conn> {
        let begin = match self.dialect() {
            Dialect::Postgres => "BEGIN",
            Dialect::Sqlite => "BEGIN IMMEDIATE",
        };
        self.write_conn().await?.begin(begin).await
    }

    /// Closes every idle connection; connections still in use close as they come back.
    pub async fn close(&self) {
        match &self.pools {
            Pools::Postgres(pool) => close_pool(pool).await,
            Pools::Sqlite {
                readers, writer, ..
            } => {
                close_pool(readers).await;
                close_pool(writer).await;
            }
        }
    }
}

async fn close_pool<C>(pool: &pool::Pool<C>)
where
    C: sqlx::Connection,
    for<'e> &'e mut C: sqlx::Executor<'e, Database = C::Database>,
{
    let idle = pool.retain(|_, _| false).removed;
    pool.close();
    for session in idle {
        let _ = session.conn.close().await;
    }
}

/// Runs one statement built with [`query::SqlBuilder`]; returns the rows it changed.
pub(crate) async fn execute(conn: &mut Conn, sql: query::SqlBuilder) -> StoreResult<u64> {
    with_conn!(conn, |c| {
        query::bind_args!(
            sqlx::query(sqlx::AssertSqlSafe(sql.sql.clone())),
            sql.args.iter().cloned()
        )
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    })
    .map_err(classify)
}

/// As [`execute`], for a statement whose text changes with its data (a `VALUES` list as long as
/// a batch): run without keeping it prepared, so that its many forms cannot evict, from the
/// connection's statement cache, the statements every request runs.
pub(crate) async fn execute_unprepared(
    conn: &mut Conn,
    sql: query::SqlBuilder,
) -> StoreResult<u64> {
    with_conn!(conn, |c| {
        query::bind_args!(
            sqlx::query(sqlx::AssertSqlSafe(sql.sql.clone())).persistent(false),
            sql.args.iter().cloned()
        )
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    })
    .map_err(classify)
}

/// Reads every row of a query built with [`query::SqlBuilder`].
pub(crate) async fn fetch_all<T>(conn: &mut Conn, sql: query::SqlBuilder) -> StoreResult<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + Send
        + Unpin,
{
    with_conn!(conn, repeatable, |c| {
        query::bind_args!(
            sqlx::query_as(sqlx::AssertSqlSafe(sql.sql.clone())),
            sql.args.iter().cloned()
        )
        .fetch_all(c)
        .await
    })
    .map_err(classify)
}

/// Marks a record read as last changed at `*updated` as changed at `now`, and later than that
/// whatever the clock says; returns when it was last changed before, for an update that
/// applies only to the record as read.
pub fn touch(
    updated: &mut chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> chrono::DateTime<chrono::Utc> {
    let read_updated = *updated;
    *updated = now.max(read_updated + chrono::Duration::microseconds(1));
    read_updated
}

/// Parses a JSON column; a value that does not parse is a corrupt record, never read as empty.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    column: &str,
    text: &str,
) -> StoreResult<T> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("the column '{column}' does not parse: {e}")))
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
    with_conn!(conn, repeatable, |c| {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A request cancelled by a server shutting down drops its transaction while the runtime
    /// refuses new tasks. Dropping it used to spawn its rollback, whose cancellation dropped the
    /// connection again, without end: the stack overflowed and the process aborted.
    #[test]
    fn a_transaction_dropped_as_the_runtime_shuts_down_is_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let store = runtime.block_on(Store::open(None, dir.path(), 4)).unwrap();
        let (began, transaction_open) = tokio::sync::oneshot::channel();
        let writer = store.clone();
        runtime.spawn(async move {
            let _transaction = writer.begin().await.unwrap();
            began.send(()).unwrap();
            std::future::pending::<()>().await;
        });
        runtime.block_on(transaction_open).unwrap();
        // Cancels the task above, dropping its transaction, inside the runtime's shutdown.
        drop(runtime);

        // The writer connection went back to the pool and is rolled back before it is reused.
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let mut transaction = store.begin().await.unwrap();
            let RawConn::Sqlite(c) = transaction.raw() else {
                unreachable!("the embedded store is SQLite")
            };
            sqlx::raw_sql("CREATE TABLE after_shutdown (id INTEGER)")
                .execute(c)
                .await
                .unwrap();
            transaction.commit().await.unwrap();
        });
    }

    /// A conflict says which constraint it broke: a name taken is told from, say, an id taken.
    #[tokio::test]
    async fn a_conflict_names_the_constraint_it_broke() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(None, dir.path(), 2).await.unwrap();
        let now = chrono::Utc::now();
        let first = workspaces::WorkspaceRow {
            id: uuid::Uuid::new_v4(),
            name: "first".into(),
            display_name: "first".into(),
            description: String::new(),
            created: now,
            updated: now,
        };
        let mut tx = store.begin().await.unwrap();
        workspaces::insert(&mut tx, &first).await.unwrap();
        let same_name = workspaces::WorkspaceRow {
            id: uuid::Uuid::new_v4(),
            ..first.clone()
        };
        let taken = workspaces::insert(&mut tx, &same_name).await.unwrap_err();
        assert!(taken.violates(workspaces::NAME_UNIQUE), "{taken:?}");
        let same_id = workspaces::WorkspaceRow {
            name: "second".into(),
            ..first.clone()
        };
        let other = workspaces::insert(&mut tx, &same_id).await.unwrap_err();
        assert!(matches!(other, StoreError::Conflict(_)), "{other:?}");
        assert!(!other.violates(workspaces::NAME_UNIQUE), "{other:?}");
    }
}
