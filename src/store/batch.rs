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
//!
//! The writer also writes the audit records of the batches it commits, linked into the audit
//! chain, in their transaction: it holds the write lock anyway, so moving the chain's head
//! there costs no one a wait. On PostgreSQL a batch writes its records queued for the chainer.

use std::sync::{Arc, Mutex};

use sqlx::SqliteConnection;
use tokio::sync::{mpsc, oneshot, watch};

use super::checkpoint::Checkpointer;
use super::query::{self, Arg, Dialect, bind_args};
use super::{Pools, Store, StoreError, StoreResult, audit, classify, pool, with_conn};
use crate::domain::audit::AuditEvent;

/// Writes to apply together: take one from [`super::Store::batch`], build with
/// [`Batch::statement`] and [`Batch::push`], then hand to [`super::Store::write`].
pub struct Batch {
    dialect: Dialect,
    statements: Vec<String>,
    args: Vec<Arg>,
    /// Whether audit records are written in it (see [`Store::unaudited`]).
    pub(super) audited: bool,
    /// The audit records written in it, to chain or queue for chaining as it commits.
    pub(super) audit_events: Vec<AuditEvent>,
}

impl Batch {
    pub(super) fn new(dialect: Dialect) -> Batch {
        Batch {
            dialect,
            statements: Vec::new(),
            args: Vec::new(),
            audited: true,
            audit_events: Vec::new(),
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
        self.statements.is_empty() && self.audit_events.is_empty()
    }

    fn is_audited(&self) -> bool {
        !self.audit_events.is_empty()
    }

    /// Adds the writes of its audit records, queued for the chainer (PostgreSQL).
    fn queue_audit_events(&mut self) {
        if self.audit_events.is_empty() {
            return;
        }
        let mut records = self.statement();
        audit::unlinked_statement(&mut records, &self.audit_events);
        self.push(records);
        let mut queued = self.statement();
        audit::queue_statement(&mut queued, &self.audit_events);
        self.push(queued);
    }

    /// Adds the writes of its audit records, linked after `end`, which moves past them
    /// (SQLite). The records linked.
    fn link_audit_events(&mut self, end: &mut audit::ChainEnd) -> Vec<audit::Chained> {
        let from = end.clone();
        let chained = end.link(self.audit_events.iter().cloned());
        let mut links = self.statement();
        audit::link_statement(Dialect::Sqlite, &mut links, &chained);
        end.move_head(&from, &mut links);
        self.push(links);
        chained
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
    /// committing it if `commit`, with `more` after its own statements.
    fn sqlite_script(&self, (begin, commit): (bool, bool), more: &str) -> String {
        let begin = begin.then_some("BEGIN IMMEDIATE");
        let commit = commit.then_some("COMMIT");
        let more = (!more.is_empty()).then_some(more);
        let parts = begin
            .into_iter()
            .chain(self.statements.iter().map(String::as_str))
            .chain(more)
            .chain(commit);
        parts.collect::<Vec<_>>().join("; ")
    }

    /// The batch as a SQLite query whose audit records are linked after `end`, opening the
    /// transaction it runs in if `begin`, and committing it if `commit`; the head of the chain
    /// then moves from `group_start` to `end`. The records linked join `chained`.
    fn sqlite_chained_query(
        &self,
        (group_start, end): (&audit::ChainEnd, &mut audit::ChainEnd),
        (begin, commit): (bool, bool),
        chained: &mut Vec<audit::Chained>,
    ) -> sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
        let mut links = query::SqlBuilder::numbered_after(self.args.len());
        let linked = end.link(self.audit_events.iter().cloned());
        audit::link_statement(Dialect::Sqlite, &mut links, &linked);
        chained.extend(linked);
        if commit {
            end.move_head(group_start, &mut links);
        }
        let script = self.sqlite_script((begin, commit), &links.sql);
        sqlite_query(script, self.args.iter().cloned().chain(links.args))
    }

    fn query(
        &self,
        sql: String,
    ) -> sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
        sqlite_query(sql, self.args.iter().cloned())
    }
}

fn sqlite_query(
    sql: String,
    args: impl IntoIterator<Item = Arg>,
) -> sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    bind_args!(sqlx::query::<sqlx::Sqlite>(sqlx::AssertSqlSafe(sql)), args)
}

/// At most this many batches share a transaction, so that one group's commit (and its share
/// of the write-ahead log) stays small.
const MAX_GROUP: usize = 64;

/// A batch waiting for the SQLite writer, and where its outcome goes.
struct Queued {
    batch: Batch,
    outcome: oneshot::Sender<StoreResult<()>>,
}

/// Told of the audit records the writer chains (see [`Store::when_writer_chains`]).
pub(super) type OnChained = Arc<dyn Fn(&[audit::Chained]) + Send + Sync>;

/// Where the writer finds the listener, which may be set after it started.
pub(super) type ChainListener = Arc<Mutex<Option<OnChained>>>;

/// Tells the listener, if one is set, of `chained`.
pub(super) fn tell(listener: &ChainListener, chained: &[audit::Chained]) {
    let listener = listener.lock().expect("not poisoned").clone();
    if let Some(listener) = listener {
        listener(chained);
    }
}

/// The queue in front of SQLite's writer connection.
#[derive(Clone)]
pub(super) struct GroupCommit {
    queue: mpsc::Sender<Queued>,
    listener: ChainListener,
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
        let listener = ChainListener::default();
        tokio::spawn(commit_queued(
            writer,
            checkpointer,
            queued,
            listener.clone(),
        ));
        GroupCommit {
            queue,
            listener,
            checkpoints,
        }
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

    /// From now on, the writer hands the audit records it chains to `listener` (and no longer
    /// to any listener set before).
    pub(super) fn when_chained(&self, listener: OnChained) {
        *self.listener.lock().expect("not poisoned") = Some(listener);
    }

    /// Where the listener is found, for transactions that link records of their own.
    pub(super) fn listener(&self) -> ChainListener {
        self.listener.clone()
    }
}

async fn commit_queued(
    writer: pool::Pool<SqliteConnection>,
    mut checkpointer: Checkpointer,
    mut queued: mpsc::Receiver<Queued>,
    listener: ChainListener,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    // The end of the audit chain as this writer last left it. The next group links its records
    // after it without reading the head first: the database refuses a link that does not
    // follow the head, should another process (or this one's chainer) have moved it.
    let mut chain_end = None;
    while queued.recv_many(&mut group, MAX_GROUP).await > 0 {
        let (outcomes, chained) = match pool::get(&writer).await {
            Ok(mut session) => commit_group(&mut session, &group, &mut chain_end).await,
            Err(err) => (failed_group(&err, group.len()), Vec::new()),
        };
        checkpointer.committed(outcomes.iter().filter(|o| o.is_ok()).count() as u32);
        // Before the writes' callers learn their outcome: a response never precedes the
        // record of it reaching the listener.
        if !chained.is_empty() {
            tell(&listener, &chained);
        }
        for (queued, outcome) in group.drain(..).zip(outcomes) {
            // The caller may have stopped waiting; the write stands.
            let _ = queued.outcome.send(outcome);
        }
    }
}

/// Commits `group` on the writer and gives each batch its outcome, with the audit records
/// chained in the batches that committed.
async fn commit_group(
    session: &mut pool::Session<SqliteConnection>,
    group: &[Queued],
    chain_end: &mut Option<audit::ChainEnd>,
) -> (Vec<StoreResult<()>>, Vec<audit::Chained>) {
    let batches: Vec<&Batch> = group.iter().map(|q| &q.batch).collect();
    let cached = chain_end.take();
    let after_cached_end = cached.is_some() && batches.iter().any(|b| b.is_audited());
    if batches.len() > 1 || after_cached_end {
        match commit_together(session, &batches, cached).await {
            Ok((chained, end)) => {
                *chain_end = end;
                return (group.iter().map(|_| Ok(())).collect(), chained);
            }
            // Nothing was written: a batch failed, or the chain's head had moved. Each batch
            // is tried alone, reading the head afresh, to learn which one failed.
            Err(err) => tracing::debug!(error = %err, "a group of writes was rolled back"),
        }
    }
    let mut outcomes = Vec::with_capacity(group.len());
    let mut chained = Vec::new();
    for batch in batches {
        match commit_together(session, &[batch], None).await {
            Ok((mut linked, end)) => {
                if end.is_some() {
                    *chain_end = end;
                }
                chained.append(&mut linked);
                outcomes.push(Ok(()));
            }
            Err(err) => outcomes.push(Err(classify(err))),
        }
    }
    (outcomes, chained)
}

/// Every batch in one transaction, one round trip each, or none of them. Their audit records
/// are linked after `end`, or, without one, after the head read in the transaction (one more
/// round trip). The records linked, and the chain's end after them.
async fn commit_together(
    session: &mut pool::Session<SqliteConnection>,
    batches: &[&Batch],
    end: Option<audit::ChainEnd>,
) -> Result<(Vec<audit::Chained>, Option<audit::ChainEnd>), sqlx::Error> {
    // Marked first: should anything below fail half-way, the pool rolls the connection back
    // before its next use.
    session.state.in_transaction = true;
    let audited = batches.iter().any(|b| b.is_audited());
    let (mut end, mut begun) = (end, false);
    if audited && end.is_none() {
        match begin_chaining(session).await {
            Ok(head) => (end, begun) = (Some(head), true),
            Err(err) => {
                roll_back(session).await;
                return Err(err);
            }
        }
    }
    let group_start = end.clone();
    let mut chained = Vec::new();
    let last = batches.len() - 1;
    for (i, batch) in batches.iter().enumerate() {
        let (begin, commit) = (i == 0 && !begun, i == last);
        let query = match (group_start.as_ref(), end.as_mut()) {
            (Some(start), Some(end)) if audited => {
                batch.sqlite_chained_query((start, end), (begin, commit), &mut chained)
            }
            _ => batch.query(batch.sqlite_script((begin, commit), "")),
        };
        let result = query.execute(&mut session.conn).await;
        session.state.observe(&result);
        if let Err(err) = result {
            roll_back(session).await;
            return Err(err);
        }
    }
    session.state.in_transaction = false;
    Ok((chained, end))
}

/// Begins the writer's transaction on its own, to read the end of the audit chain in it.
async fn begin_chaining(
    session: &mut pool::Session<SqliteConnection>,
) -> Result<audit::ChainEnd, sqlx::Error> {
    run_control(session, "BEGIN IMMEDIATE").await?;
    let end = audit::read_chain_end(&mut session.conn).await;
    session.state.observe(&end);
    end
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
    /// other writes: one round trip (two on SQLite with audit records: the chain's head is read
    /// first, under the write lock the transaction holds).
    pub async fn apply(&mut self, batch: Batch) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut batch = batch;
        let audited = batch.is_audited();
        let mut linked = Vec::new();
        let sql = match batch.dialect {
            Dialect::Postgres => {
                batch.queue_audit_events();
                batch.postgres_statement()
            }
            Dialect::Sqlite => {
                if audited {
                    // The head read and the records linked after it commit together.
                    debug_assert!(
                        self.in_transaction(),
                        "audit records are linked inside a transaction"
                    );
                    let mut end = audit::locked_end(self).await?;
                    linked = batch.link_audit_events(&mut end);
                }
                batch.sqlite_script((false, false), "")
            }
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
        .map_err(classify)?;
        if audited {
            self.wrote_records(linked);
        }
        Ok(())
    }
}

impl Store {
    /// Applies every write in `batch`, or none of them.
    pub async fn write(&self, mut batch: Batch) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        if let Pools::Sqlite { batches, .. } = &self.pools {
            return batches.write(batch).await;
        }
        let audited = batch.is_audited();
        batch.queue_audit_events();
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
        if audited {
            conn.wrote_records(Vec::new());
        }
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

    /// [`insert`], with an audit record of it (its action the name).
    fn audited(name: &str) -> Batch {
        use crate::domain::audit::{Actor, AuditEvent, Outcome};

        let mut batch = insert(name);
        let event = AuditEvent::new(Actor::system(), name, Outcome::Success, chrono::Utc::now());
        audit::push(&mut batch, &event);
        batch
    }

    async fn names(store: &Store) -> Vec<String> {
        let mut conn = store.conn().await.unwrap();
        sqlx::query_scalar("SELECT name FROM names ORDER BY name")
            .fetch_all(sqlite(&mut conn))
            .await
            .unwrap()
    }

    /// Queues `batches` while a transaction holds the writer, then lets them commit as one
    /// group; each one's outcome.
    async fn commit_as_one_group(store: &Store, batches: Vec<Batch>) -> Vec<StoreResult<()>> {
        let held = store.begin().await.unwrap();
        let count = batches.len();
        let mut writes = Box::pin(futures::future::join_all(
            batches.into_iter().map(|batch| store.write(batch)),
        ));
        // One poll queues every write (this test's runtime has one thread, so the committing
        // task cannot take them yet).
        std::future::poll_fn(|cx| {
            assert!(writes.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        let queued = queue(store);
        assert_eq!(queued.queue.max_capacity() - queued.queue.capacity(), count);
        held.commit().await.unwrap();
        writes.await
    }

    #[tokio::test]
    async fn a_write_that_fails_in_a_group_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(dir.path()).await;
        let batches = ["b", "c", "b", "d"].map(insert).into();
        let outcomes = commit_as_one_group(&store, batches).await;
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
    async fn a_group_that_fails_links_only_the_records_that_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(dir.path()).await;
        let told = Arc::new(Mutex::new(Vec::new()));
        let listener = told.clone();
        store.when_writer_chains(move |chained| {
            let mut told = listener.lock().unwrap();
            told.extend(chained.iter().map(|c| (c.seq, c.event.action.clone())));
        });
        let batches = ["b", "c", "b", "d"].map(audited).into();
        let outcomes = commit_as_one_group(&store, batches).await;
        assert!(
            matches!(outcomes[2], Err(StoreError::Conflict(_))),
            "{outcomes:?}"
        );

        // The group was rolled back and its batches committed alone: the failed one's record
        // took no place in the chain, and the listener heard of exactly the three that stand.
        let told = told.lock().unwrap().clone();
        assert_eq!(told, [(1, "b".into()), (2, "c".into()), (3, "d".into())]);
        let verification = audit::verify(&store).await.unwrap();
        assert_eq!(verification.checked, 3);
        assert!(verification.first_mismatch.is_none());
        assert_eq!(verification.unchained, 0);
    }

    #[tokio::test]
    async fn a_writer_whose_chain_end_is_stale_reads_the_head_again() {
        let dir = tempfile::tempdir().unwrap();
        let first = sqlite_store(dir.path()).await;
        // A second process on the same database file.
        let second = Store::open(None, dir.path(), 4).await.unwrap();
        // Each writer links after the head it last saw; the other has moved it since.
        for (i, store) in [&first, &second, &first, &second, &first]
            .iter()
            .enumerate()
        {
            store.write(audited(&format!("n{i}"))).await.unwrap();
        }
        assert_eq!(names(&first).await, ["n0", "n1", "n2", "n3", "n4"]);
        let verification = audit::verify(&first).await.unwrap();
        assert_eq!(verification.checked, 5);
        assert!(verification.first_mismatch.is_none(), "{verification:?}");
    }

    #[tokio::test]
    async fn a_writer_does_not_link_after_records_purged_since_it_last_wrote() {
        use crate::domain::audit::{Actor, AuditEvent, Outcome};

        let dir = tempfile::tempdir().unwrap();
        let first = sqlite_store(dir.path()).await;
        let second = Store::open(None, dir.path(), 4).await.unwrap();
        first.write(audited("n0")).await.unwrap();
        second.write(audited("n1")).await.unwrap();
        // Every link the first writer knows of is gone, the one it would reuse too: only the
        // head tells it that the chain has moved on.
        let now = chrono::Utc::now();
        let purge = AuditEvent::new(Actor::operator(), "audit.purged", Outcome::Success, now);
        audit::purge(&second, chrono::Utc::now(), purge)
            .await
            .unwrap();
        first.write(audited("n2")).await.unwrap();

        let verification = audit::verify(&first).await.unwrap();
        assert!(verification.first_mismatch.is_none(), "{verification:?}");
        let mut conn = first.conn().await.unwrap();
        let chain: Vec<(i64, String)> =
            sqlx::query_as("SELECT chain_seq, action FROM audit_events ORDER BY chain_seq")
                .fetch_all(sqlite(&mut conn))
                .await
                .unwrap();
        assert_eq!(chain, [(3, "audit.purged".into()), (4, "n2".into())]);
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
