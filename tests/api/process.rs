//! The server as operators run it: the `connector-hub` binary in a process of its own, its
//! environment given whole (nothing inherited), and its JSON log read line by line so that a
//! test can wait for what it says instead of sleeping.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::harness::ADMIN_PASSWORD;

/// How long a test waits for the process to say something, or to exit.
const WAIT: Duration = Duration::from_secs(60);

/// The `connector-hub` binary cargo built for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_connector-hub")
}

pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    log: mpsc::UnboundedReceiver<Value>,
    /// Every log entry read so far.
    seen: Vec<Value>,
}

impl ServerProcess {
    /// Starts `connector-hub serve` on 127.0.0.1 with its data in `data_dir`, the test admin
    /// password and `env`, and waits until it listens.
    pub async fn start(data_dir: &Path, env: &[(&str, &str)]) -> ServerProcess {
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .env_clear()
            .env("CONNECTOR_HUB_BIND", "127.0.0.1:0")
            .env("CONNECTOR_HUB_DATA_DIR", data_dir)
            .env("CONNECTOR_HUB_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("CONNECTOR_HUB_LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("the server binary starts");
        let stderr = child.stderr.take().unwrap();
        let (sender, log) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Value>(&line) {
                    Ok(entry) => {
                        let _ = sender.send(entry);
                    }
                    // Not the log: printed for whoever reads a failed test's output.
                    Err(_) => eprintln!("server: {line}"),
                }
            }
        });
        let mut process = ServerProcess {
            child,
            base: String::new(),
            log,
            seen: Vec::new(),
        };
        let listening = process.wait_for_log("connector-hub is listening").await;
        let address = listening["fields"]["address"].as_str().unwrap();
        process.base = format!("http://{address}");
        process
    }

    /// Waits for a log entry whose message is `message`, and returns it.
    pub async fn wait_for_log(&mut self, message: &str) -> Value {
        let found = tokio::time::timeout(WAIT, async {
            while let Some(entry) = self.log.recv().await {
                self.seen.push(entry.clone());
                if entry["fields"]["message"] == message {
                    return Some(entry);
                }
            }
            None
        });
        match found.await {
            Ok(Some(entry)) => entry,
            Ok(None) => panic!("the server ended without logging {message:?}"),
            Err(_) => panic!("the server did not log {message:?} within {WAIT:?}"),
        }
    }

    /// Every log entry the process has written so far.
    pub fn logged_so_far(&mut self) -> Vec<Value> {
        while let Ok(entry) = self.log.try_recv() {
            self.seen.push(entry);
        }
        self.seen.clone()
    }

    /// Sends SIGTERM, as a service manager stopping the server does.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("the server is running") as libc::pid_t;
        // SAFETY: kill has no memory effects; the pid is our own child's.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    }

    /// Waits for the process to exit.
    pub async fn exited(mut self) -> ExitStatus {
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the server did not exit within {WAIT:?}"))
            .unwrap()
    }
}
