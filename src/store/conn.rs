//! One pooled connection, on either backend, possibly inside a transaction, and the macro that
//! runs a statement on it.

use std::sync::Arc;

use sqlx::{PgConnection, SqliteConnection};
use tokio::sync::Notify;

use super::{Dialect, StoreResult, audit, batch, pool};

pub(super) enum Checkout {
    Postgres(pool::Pooled<PgConnection>),
    Sqlite(pool::Pooled<SqliteConnection>),
}

/// One pooled connection, possibly inside a transaction; store functions take `&mut Conn`.
pub struct Conn {
    /// Always present until the connection is dropped.
    checkout: Option<Checkout>,
    /// Whether audit records are written on it (see [`super::Store::unaudited`]).
    audited: bool,
    /// Told when audit records it queued have committed (see [`super::Store::records_queued`]).
    records_queued: Option<Arc<Notify>>,
    /// Told of the audit records it linked once they commit (see
    /// [`super::Store::when_writer_chains`]).
    records_linked: Option<batch::ChainListener>,
    /// Its open transaction queued audit records: the chainer is told when it commits.
    queued_in_transaction: bool,
    /// The audit records its open transaction linked: the listener is told when it commits.
    linked_in_transaction: Vec<audit::Chained>,
    /// The connection was idle in the pool and nothing has run on it since: the database may
    /// have closed it meanwhile, before it could have run anything we send.
    untried_reuse: bool,
}

/// Runs `$body` with `$c` bound to the underlying `&mut PgConnection` or `&mut SqliteConnection`.
/// The body is compiled once per backend, so it is written exactly once. A transport failure
/// marks the connection so that the pool replaces it.
///
/// Written `with_conn!(conn, repeatable, |c| …)` for a statement that changes nothing, it runs
/// once more, on another connection, when it was the first on a connection taken from the pool
/// and the database had closed that connection: after a database restart, reads do not fail.
macro_rules! with_conn {
    ($conn:expr, |$c:ident| $body:expr) => {{
        let result = match $conn.raw() {
            $crate::store::RawConn::Postgres($c) => $body,
            $crate::store::RawConn::Sqlite($c) => $body,
        };
        $conn.observe(&result);
        result
    }};
    ($conn:expr, repeatable, |$c:ident| $body:expr) => {{
        let conn: &mut $crate::store::Conn = $conn;
        loop {
            let result = match conn.raw() {
                $crate::store::RawConn::Postgres($c) => $body,
                $crate::store::RawConn::Sqlite($c) => $body,
            };
            if conn.found_closed(&result) {
                match conn.reconnect().await {
                    Ok(()) => continue,
                    Err(err) => break Err(err),
                }
            }
            conn.observe(&result);
            break result;
        }
    }};
}
pub(crate) use with_conn;

pub(crate) enum RawConn<'a> {
    Postgres(&'a mut PgConnection),
    Sqlite(&'a mut SqliteConnection),
}

const CHECKED_OUT: &str = "a connection is checked out until dropped";

impl Checkout {
    fn reused(&self) -> bool {
        match self {
            Checkout::Postgres(session) => pool::Pooled::metrics(session).recycle_count > 0,
            Checkout::Sqlite(session) => pool::Pooled::metrics(session).recycle_count > 0,
        }
    }

    /// Tells the pool that this connection was found closed, so that it checks the others.
    fn connection_lost(&self) {
        match self {
            Checkout::Postgres(session) => pool::lost_in(session),
            Checkout::Sqlite(session) => pool::lost_in(session),
        }
    }

    /// Another connection from the same pool.
    async fn another(&self) -> Result<Checkout, sqlx::Error> {
        Ok(match self {
            Checkout::Postgres(session) => Checkout::Postgres(pool::sibling(session).await?),
            Checkout::Sqlite(session) => Checkout::Sqlite(pool::sibling(session).await?),
        })
    }
}

impl Conn {
    /// A connection from `checkout`, writing audit records if `audited`, and telling
    /// `records_queued` and `records_linked` of those it writes.
    pub(super) fn new(
        checkout: Checkout,
        audited: bool,
        records_queued: Arc<Notify>,
        records_linked: Option<batch::ChainListener>,
    ) -> Conn {
        Conn {
            untried_reuse: checkout.reused(),
            checkout: Some(checkout),
            audited,
            records_queued: Some(records_queued),
            records_linked,
            queued_in_transaction: false,
            linked_in_transaction: Vec::new(),
        }
    }

    /// Whether audit records are written on it (see [`super::Store::unaudited`]).
    pub(super) fn audited(&self) -> bool {
        self.audited
    }

    pub(crate) fn raw(&mut self) -> RawConn<'_> {
        match self.checkout.as_mut().expect(CHECKED_OUT) {
            Checkout::Postgres(session) => RawConn::Postgres(&mut session.conn),
            Checkout::Sqlite(session) => RawConn::Sqlite(&mut session.conn),
        }
    }

    fn state(&mut self) -> &mut pool::SessionState {
        match self.checkout.as_mut().expect(CHECKED_OUT) {
            Checkout::Postgres(session) => &mut session.state,
            Checkout::Sqlite(session) => &mut session.state,
        }
    }

    pub(crate) fn observe<T>(&mut self, result: &Result<T, sqlx::Error>) {
        self.untried_reuse = false;
        let state = self.state();
        let was_broken = state.broken;
        state.observe(result);
        if state.broken && !was_broken {
            self.checkout.as_ref().expect(CHECKED_OUT).connection_lost();
        }
    }

    /// Whether `result` shows that the database had closed this connection while it was idle
    /// in the pool, so that the statement cannot have run.
    pub(crate) fn found_closed<T>(&self, result: &Result<T, sqlx::Error>) -> bool {
        self.untried_reuse && result.as_ref().is_err_and(pool::ends_session)
    }

    /// Gives up this connection, which was found closed, for another from the same pool. Any
    /// transaction about to begin is carried over; none can have begun on a closed connection.
    pub(crate) async fn reconnect(&mut self) -> Result<(), sqlx::Error> {
        let closed = self.checkout.as_ref().expect(CHECKED_OUT);
        closed.connection_lost();
        let replacement = closed.another().await;
        let beginning = self.state().in_transaction;
        // Not reused: the pool closes it.
        *self.state() = pool::SessionState {
            in_transaction: false,
            broken: true,
        };
        self.checkout = Some(replacement?);
        self.untried_reuse = false;
        self.state().in_transaction = beginning;
        Ok(())
    }

    pub fn dialect(&self) -> Dialect {
        match self.checkout.as_ref().expect(CHECKED_OUT) {
            Checkout::Postgres(_) => Dialect::Postgres,
            Checkout::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Runs a transaction-control statement (`COMMIT`, `ROLLBACK`).
    async fn control(&mut self, sql: &'static str) -> StoreResult<()> {
        with_conn!(self, |c| sqlx::raw_sql(sql).execute(c).await.map(|_| ()))?;
        Ok(())
    }

    pub(super) async fn begin(mut self, sql: &'static str) -> StoreResult<Conn> {
        // Marked first: should BEGIN fail half-way, the connection is rolled back before reuse.
        self.state().in_transaction = true;
        with_conn!(&mut self, repeatable, |c| sqlx::raw_sql(sql)
            .execute(c)
            .await
            .map(|_| ()))?;
        Ok(self)
    }

    /// Commits a transaction; a plain connection has nothing to commit.
    pub async fn commit(mut self) -> StoreResult<()> {
        if self.state().open_transaction() {
            self.control("COMMIT").await?;
            self.state().in_transaction = false;
            let queued = std::mem::take(&mut self.queued_in_transaction);
            let linked = std::mem::take(&mut self.linked_in_transaction);
            self.tell_of_records(queued, &linked);
        }
        Ok(())
    }

    pub(super) fn in_transaction(&mut self) -> bool {
        self.state().in_transaction
    }

    /// Notes audit records written on this connection: queued for the chainer, or `linked`
    /// as they were written. Whoever hears of them is told now, or when the transaction that
    /// holds them commits.
    pub(super) fn wrote_records(&mut self, linked: Vec<audit::Chained>) {
        let queued = linked.is_empty();
        match self.in_transaction() {
            true => {
                self.queued_in_transaction |= queued;
                self.linked_in_transaction.extend(linked);
            }
            false => self.tell_of_records(queued, &linked),
        }
    }

    fn tell_of_records(&self, queued: bool, linked: &[audit::Chained]) {
        if queued && let Some(chainer) = &self.records_queued {
            chainer.notify_one();
        }
        if !linked.is_empty()
            && let Some(listener) = &self.records_linked
        {
            batch::tell(listener, linked);
        }
    }
}

impl Drop for Conn {
    /// A transaction left unfinished (an error, or a cancelled request) is rolled back now
    /// rather than at the connection's next use, so that its locks go with the request.
    fn drop(&mut self) {
        if self.checkout.is_none() || !self.state().open_transaction() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let checkout = self.checkout.take();
        runtime.spawn(async move {
            // Made inside the task: should the task be cancelled before it runs (the runtime is
            // shutting down), only the checkout is dropped, and the pool rolls it back before
            // its next use. A `Conn` dropped there would spawn this task again, and again.
            let mut conn = Conn {
                checkout,
                untried_reuse: false,
                audited: true,
                records_queued: None,
                records_linked: None,
                queued_in_transaction: false,
                linked_in_transaction: Vec::new(),
            };
            let state_after = match conn.control("ROLLBACK").await {
                Ok(()) => pool::SessionState::default(),
                // Not reused: the pool closes it rather than roll back again.
                Err(_) => pool::SessionState {
                    in_transaction: true,
                    broken: true,
                },
            };
            *conn.state() = state_after;
        });
    }
}
