//! SQLite's write-ahead log, checkpointed beside the writer rather than by it.
//!
//! By default the connection whose commit takes the log past a threshold copies the log back
//! into the database file and syncs both, while every write queued behind it waits. Here a
//! connection of its own makes a passive checkpoint, which never blocks the writer, after every
//! so many commits of [`super::Batch`]es. Writes made in other transactions are copied by the
//! next checkpoint too. The connections' own automatic checkpoint stays on, at a higher
//! threshold, should this one fall behind.

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use tokio::sync::{mpsc, watch};

/// Commits between two checkpoints. A create writes about twenty pages to the log, so this is
/// about as often as SQLite's default (every 1,000 pages).
pub(super) const COMMITS_PER_CHECKPOINT: u32 = 48;

/// Log pages past which a committing connection checkpoints by itself all the same.
pub(super) const BACKSTOP_PAGES: &str = "4000";

/// Asks for checkpoints; they run one at a time, and requests made meanwhile merge into one.
pub(super) struct Checkpointer {
    requests: mpsc::Sender<()>,
    commits: u32,
    done: watch::Receiver<u64>,
}

impl Checkpointer {
    /// Starts the task that checkpoints on its own connection, opened with `options`. It ends
    /// when the [`Checkpointer`] is dropped.
    pub(super) fn start(options: SqliteConnectOptions) -> Checkpointer {
        let (requests, requested) = mpsc::channel(1);
        let (completed, done) = watch::channel(0);
        tokio::spawn(checkpoint_on_request(options, requested, completed));
        Checkpointer {
            requests,
            commits: 0,
            done,
        }
    }

    /// Counts `commits` more, and asks for a checkpoint once there have been enough.
    pub(super) fn committed(&mut self, commits: u32) {
        self.commits += commits;
        if self.commits >= COMMITS_PER_CHECKPOINT {
            self.commits = 0;
            // Full: a checkpoint is already due, and will cover these commits too.
            let _ = self.requests.try_send(());
        }
    }

    /// The number of checkpoints completed so far.
    pub(super) fn completed(&self) -> watch::Receiver<u64> {
        self.done.clone()
    }
}

async fn checkpoint_on_request(
    options: SqliteConnectOptions,
    mut requested: mpsc::Receiver<()>,
    completed: watch::Sender<u64>,
) {
    let mut conn: Option<SqliteConnection> = None;
    while requested.recv().await.is_some() {
        let result = match conn.as_mut() {
            Some(c) => checkpoint(c).await,
            None => match options.connect().await {
                Ok(c) => checkpoint(conn.insert(c)).await,
                Err(err) => Err(err),
            },
        };
        match result {
            Ok(()) => {
                completed.send_modify(|count| *count += 1);
            }
            Err(err) => {
                // Not fatal: the next request tries again, on a new connection.
                tracing::warn!(error = %err, "checkpointing the SQLite write-ahead log failed");
                if let Some(c) = conn.take() {
                    let _ = c.close().await;
                }
            }
        }
    }
    if let Some(c) = conn {
        let _ = c.close().await;
    }
}

async fn checkpoint(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(conn)
        .await
        .map(|_| ())
}
