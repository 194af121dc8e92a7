//! Writes applied all or nothing in one round trip, and SQLite's group commit.
//!
//! On PostgreSQL a [`Batch`] is one statement (every write but the last a data-modifying `WITH`
//! part). On SQLite it is one script between `BEGIN IMMEDIATE` and `COMMIT`, run by one task
//! that owns the queue in front of the single writer connection. Batches that queue while it
//! commits are committed together next: one transaction, one round trip per batch, the first
//! opening it and the last committing it. Should any of them fail, the group is rolled back
//! and each batch is committed alone, so that every caller learns its own outcome.
//!
//! SQLite lets one writer in at a time, and handing the writer from one request to the next
//! (returning the connection, waking the next request's task) was the limit on creates per
//! second; a group pays for that once.

use sqlx::SqliteConnection;
use tokio::sync::{mpsc, oneshot, watch};

use super::checkpoint::Checkpointer;
use super::query::{self, Arg, Dialect, bind_args};
use super::{Pools, Store, StoreError, StoreResult, classify, pool, with_conn};

/// Writes to apply together: take one from [`super::Store::batch`], build with
/// [`Batch::statement`] and [`Batch::push`], then hand to [`super::Store::write`].
pub struct Batch {
    dialect: Dialect,
    statements: Vec<String>,
    args: Vec<Arg>,
    /// Whether audit records are written in it (see [`Store::unaudited`]).
    pub(super) audited: bool,
}

impl Batch {
    pub(super) fn new(dialect: Dialect) -> Batch {
        Batch {
            dialect,
            statements: Vec::new(),
            args: Vec::new(),
            audited: true,
        }
    }

    /// The SQL dialect of the store the batch is for.
    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// A statement to fill and [`Batch::push`]: its placeholders follow the batch's.
    pub(crate) fn statement(&self) -> query::SqlBuilder {
        query::SqlBuilder::numbered_after(self.args.len())
    }

    pub(crate) fn push(&mut self, statement: query::SqlBuilder) {
        self.statements.push(statement.sql);
        self.args.extend(statement.args);
    }

    fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// The batch as one PostgreSQL statement: every write but the last a `WITH` part.
    fn postgres_statement(&self) -> String {
        let Some((last, parts)) = self.statements.split_last() else {
            return String::new();
        };
        let parts: Vec<String> = parts
            .iter()
            .enumerate()
            .map(|(i, part)| format!("w{i} AS ({part})"))
            .collect();
        match parts.is_empty() {
            true => last.clone(),
            false => format!("WITH {} {last}", parts.join(", ")),
        }
    }

    /// The batch as a SQLite script, opening the transaction it runs in if `begin`, and
    /// committing it if `commit`.
    fn sqlite_script(&self, begin: bool, commit: bool) -> String {
        let mut script = String::new();
        if begin {
            script.push_str("BEGIN IMMEDIATE; ");
        }
        script.push_str(&self.statements.join("; "));
        if commit {
            script.push_str("; COMMIT");
        }
        script
    }

    fn query(
        &self,
        sql: String,
    ) -> sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
        bind_args!(
            sqlx::query::<sqlx::Sqlite>(sqlx::AssertSqlSafe(sql)),
            self.args.iter().cloned()
        )
    }
}

/// At most this many batches share a transaction, so that one group's commit (and its share
/// of the write-ahead log) stays small.
const MAX_GROUP: usize = 64;

/// A batch waiting for the SQLite writer, and where its outcome goes.
struct Queued {
    batch: Batch,
    outcome: oneshot::Sender<StoreResult<()>>,
}

/// The queue in front of SQLite's writer connection.
#[derive(Clone)]
pub(super) struct GroupCommit {
    queue: mpsc::Sender<Queued>,
    #[cfg_attr(not(test), allow(dead_code))]
    checkpoints: watch::Receiver<u64>,
}

impl GroupCommit {
    /// Starts the task that commits queued batches on `writer`'s connection and has
    /// `checkpointer` checkpoint after them. It ends when the last [`GroupCommit`] is dropped.
    pub(super) fn start(
        writer: pool::Pool<SqliteConnection>,
        checkpointer: Checkpointer,
    ) -> GroupCommit {
        let (queue, queued) = mpsc::channel(MAX_GROUP * 4);
        let checkpoints = checkpointer.completed();
        tokio::spawn(commit_queued(writer, checkpointer, queued));
        GroupCommit { queue, checkpoints }
    }

    /// The number of checkpoints completed so far (see [`Checkpointer`]).
    #[cfg(test)]
    fn checkpoints(&self) -> watch::Receiver<u64> {
        self.checkpoints.clone()
    }

    /// Applies `batch`, all or nothing. The commit runs in its own task: a caller that stops
    /// waiting (a cancelled request) does not stop it, as with any write already sent.
    pub(super) async fn write(&self, batch: Batch) -> StoreResult<()> {
        let (outcome, received) = oneshot::channel();
        self.queue
            .send(Queued { batch, outcome })
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?;
        received
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?
    }
}

async fn commit_queued(
    writer: pool::Pool<SqliteConnection>,
    mut checkpointer: Checkpointer,
    mut queued: mpsc::Receiver<Queued>,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while queued.recv_many(&mut group, MAX_GROUP).await > 0 {
        let outcomes = match pool::get(&writer).await {
            Ok(mut session) => commit_group(&mut session, &group).await,
            Err(err) => failed_group(&err, group.len()),
        };
        checkpointer.committed(outcomes.iter().filter(|o| o.is_ok()).count() as u32);
        for (queued, outcome) in group.drain(..).zip(outcomes) {
            // The caller may have stopped waiting; the write stands.
            let _ = queued.outcome.send(outcome);
        }
    }
}

/// Commits `group` on the writer and gives each batch its outcome.
async fn commit_group(
    session: &mut pool::Session<SqliteConnection>,
    group: &[Queued],
) -> Vec<StoreResult<()>> {
    if group.len() > 1 {
        match commit_together(session, group).await {
            Ok(()) => return group.iter().map(|_| Ok(())).collect(),
            // Nothing was written: each batch is tried alone, to learn which one failed.
            Err(err) => tracing::debug!(error = %err, "a group of writes was rolled back"),
        }
    }
    let mut outcomes = Vec::with_capacity(group.len());
    for queued in group {
        outcomes.push(commit_alone(session, &queued.batch).await);
    }
    outcomes
}

/// Every batch of `group` in one transaction, one round trip each, or none of them.
async fn commit_together(
    session: &mut pool::Session<SqliteConnection>,
    group: &[Queued],
) -> Result<(), sqlx::Error> {
    // Marked first: should anything below fail half-way, the pool rolls the connection back
    // before its next use.
    session.state.in_transaction = true;
    let last = group.len() - 1;
    for (i, queued) in group.iter().enumerate() {
        let sql = queued.batch.sqlite_script(i == 0, i == last);
        let result = queued.batch.query(sql).execute(&mut session.conn).await;
        session.state.observe(&result);
        if let Err(err) = result {
            roll_back(session).await;
            return Err(err);
        }
    }
    session.state.in_transaction = false;
    Ok(())
}

/// One batch in a transaction of its own: one round trip.
async fn commit_alone(
    session: &mut pool::Session<SqliteConnection>,
    batch: &Batch,
) -> StoreResult<()> {
    // The script opens a transaction: should any statement in it fail, the transaction is
    // rolled back here, or else by the pool before the connection's next use.
    session.state.in_transaction = true;
    let result = batch
        .query(batch.sqlite_script(true, true))
        .execute(&mut session.conn)
        .await;
    session.state.observe(&result);
    if let Err(err) = result {
        roll_back(session).await;
        return Err(classify(err));
    }
    session.state.in_transaction = false;
    Ok(())
}

/// Ends the transaction a failed script left open, if it began one: the next batch on this
/// connection begins its own.
async fn roll_back(session: &mut pool::Session<SqliteConnection>) {
    // Fails harmlessly if the transaction never began.
    if run_control(session, "ROLLBACK").await.is_ok() {
        session.state.in_transaction = false;
    }
}

async fn run_control(
    session: &mut pool::Session<SqliteConnection>,
    sql: &'static str,
) -> Result<(), sqlx::Error> {
    let result = sqlx::raw_sql(sql)
        .execute(&mut session.conn)
        .await
        .map(|_| ());
    session.state.observe(&result);
    result
}

/// The outcome of every batch in a group when the writer connection could not be had.
fn failed_group(err: &sqlx::Error, size: usize) -> Vec<StoreResult<()>> {
    (0..size)
        .map(|_| Err(StoreError::Unavailable(err.to_string())))
        .collect()
}

impl super::Conn {
    /// Applies `batch` inside the transaction this connection holds, with the transaction's
    /// other writes: one round trip.
    pub async fn apply(&mut self, batch: Batch) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let sql = match batch.dialect {
            Dialect::Postgres => batch.postgres_statement(),
            Dialect::Sqlite => batch.sqlite_script(false, false),
        };
        with_conn!(self, |c| {
            bind_args!(
                sqlx::query(sqlx::AssertSqlSafe(sql.clone())),
                batch.args.iter().cloned()
            )
            .execute(c)
            .await
            .map(|_| ())
        })
        .map_err(classify)
    }
}

impl Store {
    /// Applies every write in `batch`, or none of them.
    pub async fn write(&self, batch: Batch) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        if let Pools::Sqlite { batches, .. } = &self.pools {
            return batches.write(batch).await;
        }
        let mut conn = self.write_conn().await?;
        let sql = batch.postgres_statement();
        with_conn!(&mut conn, |c| {
            bind_args!(
                sqlx::query(sqlx::AssertSqlSafe(sql.clone())),
                batch.args.iter().cloned()
            )
            .execute(c)
            .await
            .map(|_| ())
        })
        .map_err(classify)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::Poll;

    use super::*;
    use crate::store::RawConn;
    use crate::store::checkpoint::COMMITS_PER_CHECKPOINT;

    const PAGE: usize = 4096;

    fn queue(store: &Store) -> &GroupCommit {
        match &store.pools {
            Pools::Sqlite { batches, .. } => batches,
            Pools::Postgres(_) => unreachable!("the embedded store is SQLite"),
        }
    }

    fn sqlite(conn: &mut crate::store::Conn) -> &mut SqliteConnection {
        match conn.raw() {
            RawConn::Sqlite(c) => c,
            RawConn::Postgres(_) => unreachable!("the embedded store is SQLite"),
        }
    }

    async fn sqlite_store(dir: &std::path::Path) -> Store {
        let store = Store::open(None, dir, 4).await.unwrap();
        let mut conn = store.conn().await.unwrap();
        sqlx::raw_sql("CREATE TABLE names (name TEXT PRIMARY KEY, filler BLOB NOT NULL)")
            .execute(sqlite(&mut conn))
            .await
            .unwrap();
        store
    }

    /// Inserts `name` with a page of filler, so that each write adds a page to the database.
    fn insert(name: &str) -> Batch {
        let mut batch = Batch::new(Dialect::Sqlite);
        let mut insert = batch.statement();
        insert.push("INSERT INTO names (name, filler) VALUES ");
        insert.bind_tuple([Arg::Text(name.to_owned()), Arg::Bytes(vec![7; PAGE])]);
        batch.push(insert);
        batch
    }

    async fn names(store: &Store) -> Vec<String> {
        let mut conn = store.conn().await.unwrap();
        sqlx::query_scalar("SELECT name FROM names ORDER BY name")
            .fetch_all(sqlite(&mut conn))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_write_that_fails_in_a_group_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(dir.path()).await;
        let batches = queue(&store);
        // While a transaction holds the writer, writes queue; then they commit as one group.
        let held = store.begin().await.unwrap();
        let mut writes = Box::pin(futures::future::join_all(
            ["b", "c", "b", "d"].map(|name| store.write(insert(name))),
        ));
        // One poll queues every write (this test's runtime has one thread, so the committing
        // task cannot take them yet).
        std::future::poll_fn(|cx| {
            assert!(writes.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        assert_eq!(batches.queue.max_capacity() - batches.queue.capacity(), 4);
        held.commit().await.unwrap();

        let outcomes = writes.await;
        assert!(
            matches!(
                outcomes.as_slice(),
                [Ok(()), Ok(()), Err(StoreError::Conflict(_)), Ok(())]
            ),
            "{outcomes:?}"
        );
        assert_eq!(names(&store).await, ["b", "c", "d"]);
    }

    #[tokio::test]
    async fn writes_reach_the_database_file_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(dir.path()).await;
        let batches = queue(&store);
        let file = dir.path().join("connector-hub.sqlite3");
        let size = || std::fs::metadata(&file).unwrap().len() as usize;
        let before = size();
        let mut checkpoints = batches.checkpoints();

        for i in 0..COMMITS_PER_CHECKPOINT {
            store.write(insert(&format!("name-{i}"))).await.unwrap();
        }
        // Far below the writer's own threshold: only the checkpointer copies them over.
        checkpoints.wait_for(|done| *done >= 1).await.unwrap();
        assert!(size() >= before + COMMITS_PER_CHECKPOINT as usize * PAGE);
        assert_eq!(names(&store).await.len(), COMMITS_PER_CHECKPOINT as usize);
    }
}
