//! Connection pools that hand a connection back without a round trip.
//!
//! sqlx's own pool pings every connection it takes back, which costs each request one more round
//! trip to PostgreSQL, or one more hop to a SQLite connection's thread and back; in a profile of
//! reads on SQLite, thread switches were the largest cost. Here a connection goes back as it is.
//! What the ping guarded against is handled before the connection's next use instead: one that
//! failed at the transport level is dropped, one left inside a transaction is rolled back (see
//! [`super::Conn`], which also starts that rollback at once), and one idle for a while is pinged.
//! Once one connection is found to have been closed under us (a PostgreSQL restart closes them
//! all), every connection last handed out before that is pinged before its next use.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use sqlx::postgres::{PgDatabaseError, PgSeverity};
use sqlx::{ConnectOptions, Connection, Executor};

use crate::metrics::{PoolReading, WaitCounter};

/// A database connection as the pool holds it.
pub struct Session<C> {
    pub(super) conn: C,
    pub(super) state: SessionState,
}

/// What the pool must know about a connection before handing it out again.
#[derive(Debug, Default)]
pub struct SessionState {
    /// A transaction was begun and has not ended: it is rolled back before the next use.
    pub(super) in_transaction: bool,
    /// The transport failed: the connection is closed instead of reused.
    pub(super) broken: bool,
}

impl SessionState {
    /// Notes a failure that leaves the connection unusable (rather than a failed statement).
    pub(super) fn observe<T>(&mut self, result: &Result<T, sqlx::Error>) {
        if let Err(err) = result
            && ends_session(err)
        {
            self.broken = true;
        }
    }

    /// Inside a transaction that can still be rolled back.
    pub(super) fn open_transaction(&self) -> bool {
        self.in_transaction && !self.broken
    }
}

/// Whether `err` means the connection cannot be used again: its transport failed, or the server
/// ended the session. PostgreSQL sends a FATAL error before it closes a connection, for example
/// when it shuts down or an administrator terminates the backend.
pub fn ends_session(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<PgDatabaseError>()
            .is_some_and(|pg| matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic)),
        _ => false,
    }
}

/// Opens connections with the given options and readies them for reuse.
pub struct Connector<C: Connection> {
    options: C::Options,
    /// When a connection was last found closed under us.
    lost_at: Mutex<Option<Instant>>,
    /// Connections handed out and the time spent waiting for them, for `/metrics`.
    waits: WaitCounter,
}

impl<C: Connection> Connector<C> {
    /// Notes that a connection was found closed: the others may have been closed with it.
    pub(super) fn connection_lost(&self) {
        *self.lost_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Whether a connection was found closed after `instant`.
    fn lost_since(&self, instant: Instant) -> bool {
        self.lost_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|lost| lost > instant)
    }
}

pub type Pool<C> = managed::Pool<Connector<C>>;
pub type Pooled<C> = managed::Object<Connector<C>>;

/// A connection idle for longer than this is pinged before it is used again: the database may
/// have closed it meanwhile.
const PING_AFTER_IDLE: Duration = Duration::from_secs(30);

/// A pool of at most `max_size` connections; waiting for one fails after `wait`.
pub fn build<C>(options: C::Options, max_size: u32, wait: Duration) -> Pool<C>
where
    C: Connection,
    for<'e> &'e mut C: Executor<'e, Database = C::Database>,
{
    managed::Pool::builder(Connector {
        options,
        lost_at: Mutex::new(None),
        waits: WaitCounter::default(),
    })
    .max_size(max_size as usize)
    // The connection used last goes out first: under light load requests keep to a few
    // connections whose caches (and, on PostgreSQL, backends) are warm, rather than taking
    // turns through all of them.
    .queue_mode(managed::QueueMode::Lifo)
    .wait_timeout(Some(wait))
    .create_timeout(Some(wait))
    .recycle_timeout(Some(wait))
    .runtime(deadpool::Runtime::Tokio1)
    .build()
    .expect("a timeout has a runtime to run on")
}

impl<C> managed::Manager for Connector<C>
where
    C: Connection,
    for<'e> &'e mut C: Executor<'e, Database = C::Database>,
{
    type Type = Session<C>;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<Session<C>, sqlx::Error> {
        Ok(Session {
            conn: self.options.connect().await?,
            state: SessionState::default(),
        })
    }

    async fn recycle(
        &self,
        session: &mut Session<C>,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        if session.state.broken {
            return Err(RecycleError::message("the connection failed"));
        }
        if session.state.in_transaction {
            sqlx::raw_sql("ROLLBACK").execute(&mut session.conn).await?;
            session.state.in_transaction = false;
        } else if metrics.last_used() > PING_AFTER_IDLE
            || self.lost_since(metrics.recycled.unwrap_or(metrics.created))
        {
            session.conn.ping().await?;
        }
        Ok(())
    }
}

/// A connection from `pool`, with the pool's errors mapped to the ones sqlx's pool gave.
pub async fn get<C>(pool: &Pool<C>) -> Result<Pooled<C>, sqlx::Error>
where
    C: Connection,
    for<'e> &'e mut C: Executor<'e, Database = C::Database>,
{
    let asked = Instant::now();
    let got = pool.get().await;
    pool.manager().waits.record(asked.elapsed());
    got.map_err(|err| match err {
        managed::PoolError::Backend(err) => err,
        managed::PoolError::Timeout(_) => sqlx::Error::PoolTimedOut,
        managed::PoolError::Closed => sqlx::Error::PoolClosed,
        other => sqlx::Error::Configuration(other.to_string().into()),
    })
}

/// Tells `pooled`'s pool that a connection of it was found closed.
pub fn lost_in<C>(pooled: &Pooled<C>)
where
    C: Connection,
    for<'e> &'e mut C: Executor<'e, Database = C::Database>,
{
    if let Some(pool) = Pooled::pool(pooled) {
        pool.manager().connection_lost();
    }
}

/// Another connection from `pooled`'s pool.
pub async fn sibling<C>(pooled: &Pooled<C>) -> Result<Pooled<C>, sqlx::Error>
where
    C: Connection,
    for<'e> &'e mut C: Executor<'e, Database = C::Database>,
{
    match Pooled::pool(pooled) {
        Some(pool) => get(&pool).await,
        None => Err(sqlx::Error::PoolClosed),
    }
}

/// `pool`'s state for `/metrics`, under `name`.
pub fn reading<C>(name: &'static str, pool: &Pool<C>) -> PoolReading
where
    C: Connection,
    for<'e> &'e mut C: Executor<'e, Database = C::Database>,
{
    let status = pool.status();
    let (acquired, wait) = pool.manager().waits.read();
    PoolReading {
        name,
        in_use: status.size.saturating_sub(status.available),
        idle: status.available,
        waiting: status.waiting,
        acquired,
        wait,
    }
}
