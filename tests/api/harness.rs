//! Starts the real server on 127.0.0.1:0 against a fresh database and talks HTTP to it.
//!
//! PostgreSQL tests each get a schema of their own in the database named by
//! `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`); they fail, never
//! skip, when it cannot be reached.

use std::path::PathBuf;
use std::time::Duration;

use crate::fakes::azure::FakeAzure;
use base64::Engine;
use connector_hub::app::Server;
use connector_hub::config::ServeConfig;
use connector_hub::domain::clock::Clock;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, Row};
use tokio::sync::oneshot;
use uuid::Uuid;

pub const ADMIN_PASSWORD: &str = "admin password for tests";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Declares each listed `async fn name(backend: Backend)` as two tests, one per backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::harness::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::harness::Backend::Postgres).await
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;

fn postgres_base_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database no other test uses, and a way to look at it directly.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    pub backend: Backend,
    /// `None` for the embedded default in `data_dir`.
    pub url: Option<String>,
    pub data_dir: PathBuf,
    /// The test's own PostgreSQL schema.
    schema: Option<String>,
}

impl TestDatabase {
    pub async fn new(backend: Backend, data_dir: PathBuf) -> TestDatabase {
        match backend {
            Backend::Sqlite => TestDatabase {
                backend,
                url: None,
                data_dir,
                schema: None,
            },
            Backend::Postgres => {
                let schema = format!("t_{}", Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&postgres_base_url())
                    .await
                    .expect(
                        "PostgreSQL must be reachable for the PostgreSQL tests (TEST_DATABASE_URL)",
                    );
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test schema");
                let separator = if postgres_base_url().contains('?') {
                    '&'
                } else {
                    '?'
                };
                // Named after the schema, so that a test can find the server's sessions.
                let url = format!(
                    "{}{separator}options=-c%20search_path%3D{schema}&application_name={schema}",
                    postgres_base_url()
                );
                TestDatabase {
                    backend,
                    url: Some(url),
                    data_dir,
                    schema: Some(schema),
                }
            }
        }
    }

    /// Every row of every table, as text (binary columns hex-encoded on PostgreSQL), or the
    /// raw database files on SQLite: what an attacker with a copy of the database would see.
    pub async fn raw_contents(&self) -> Vec<u8> {
        match self.backend {
            Backend::Sqlite => {
                let mut bytes = Vec::new();
                for entry in std::fs::read_dir(&self.data_dir).unwrap() {
                    let path = entry.unwrap().path();
                    if path
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("connector-hub.sqlite3")
                    {
                        bytes.extend(std::fs::read(path).unwrap());
                    }
                }
                bytes
            }
            Backend::Postgres => {
                let mut conn = self.pg().await;
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
                )
                .fetch_all(&mut conn)
                .await
                .unwrap();
                let mut text = String::new();
                for table in tables {
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT row_to_json(t)::text FROM {table} t"
                    )))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                    text.extend(rows);
                }
                text.into_bytes()
            }
        }
    }

    async fn pg(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(self.url.as_deref().unwrap())
            .await
            .unwrap()
    }

    /// Brings the new database to the schema of migration `version` and no further, as the
    /// release that ended there left it.
    pub async fn migrate_to(&self, version: i64) {
        let dialect = match self.backend {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        };
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dialect);
        let older = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(source).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            let number: i64 = name[..4].parse().unwrap();
            if number <= version {
                std::fs::copy(entry.path(), older.path().join(&name)).unwrap();
            }
        }
        let migrator = sqlx::migrate::Migrator::new(older.path()).await.unwrap();
        match self.backend {
            Backend::Postgres => migrator.run(&mut self.pg().await).await,
            Backend::Sqlite => {
                let path = self.data_dir.join("connector-hub.sqlite3");
                let url = format!("sqlite://{}?mode=rwc", path.display());
                migrator
                    .run(&mut sqlx::SqliteConnection::connect(&url).await.unwrap())
                    .await
            }
        }
        .unwrap();
    }

    /// `id` as a literal of the backend's UUID column.
    pub fn uuid_literal(&self, id: Uuid) -> String {
        match self.backend {
            Backend::Postgres => format!("'{id}'"),
            Backend::Sqlite => format!("X'{}'", id.simple()),
        }
    }

    async fn sqlite(&self) -> sqlx::SqliteConnection {
        let path = self.data_dir.join("connector-hub.sqlite3");
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap()
    }

    /// Reads a secret's row: (workspace id, ciphertext).
    pub async fn secret_ciphertext(&self, id: Uuid) -> (Uuid, Vec<u8>) {
        let sql = "SELECT workspace_id, ciphertext FROM secrets WHERE id = $1";
        match self.backend {
            Backend::Postgres => {
                let row = sqlx::query(sql)
                    .bind(id)
                    .fetch_one(&mut self.pg().await)
                    .await
                    .unwrap();
                (row.get(0), row.get(1))
            }
            Backend::Sqlite => {
                let row = sqlx::query(sql)
                    .bind(id)
                    .fetch_one(&mut self.sqlite().await)
                    .await
                    .unwrap();
                (row.get(0), row.get(1))
            }
        }
    }

    /// Overwrites a secret's ciphertext and workspace behind the server's back.
    pub async fn tamper_secret(&self, id: Uuid, workspace: Uuid, ciphertext: &[u8]) {
        let sql = "UPDATE secrets SET workspace_id = $1, ciphertext = $2 WHERE id = $3";
        let done = match self.backend {
            Backend::Postgres => sqlx::query(sql)
                .bind(workspace)
                .bind(ciphertext)
                .bind(id)
                .execute(&mut self.pg().await)
                .await
                .unwrap()
                .rows_affected(),
            Backend::Sqlite => sqlx::query(sql)
                .bind(workspace)
                .bind(ciphertext)
                .bind(id)
                .execute(&mut self.sqlite().await)
                .await
                .unwrap()
                .rows_affected(),
        };
        assert_eq!(done, 1);
    }

    /// Ends every PostgreSQL session the server holds on this database, as a restart of
    /// PostgreSQL does (each is sent a FATAL error and closed), and waits until they have
    /// ended (PostgreSQL 14 or newer). Returns how many there were.
    pub async fn end_server_sessions(&self) -> usize {
        let mut conn = self.pg().await;
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity \
             WHERE application_name = current_setting('application_name') \
             AND pid <> pg_backend_pid()",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert!(ended.iter().all(|&done| done), "every session ended");
        ended.len()
    }

    /// Every foreign key (`table.column`) that no index starts with: deleting the row it refers
    /// to then scans the whole referencing table.
    pub async fn unindexed_foreign_keys(&self) -> Vec<String> {
        match self.backend {
            Backend::Postgres => sqlx::query_scalar(
                "SELECT c.conrelid::regclass::text || '.' || a.attname FROM pg_constraint c \
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
                 WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace \
                 AND NOT EXISTS (SELECT 1 FROM pg_index i \
                     WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1]) \
                 ORDER BY 1",
            )
            .fetch_all(&mut self.pg().await)
            .await
            .unwrap(),
            Backend::Sqlite => sqlx::query_scalar(
                "SELECT t.name || '.' || f.\"from\" FROM sqlite_master t \
                 JOIN pragma_foreign_key_list(t.name) f \
                 WHERE t.type = 'table' AND NOT EXISTS (\
                     SELECT 1 FROM pragma_index_list(t.name) l \
                     JOIN pragma_index_info(l.name) i ON i.seqno = 0 \
                     WHERE i.name = f.\"from\") \
                 ORDER BY 1",
            )
            .fetch_all(&mut self.sqlite().await)
            .await
            .unwrap(),
        }
    }

    /// Runs a statement behind the server's back.
    pub async fn execute(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self.backend {
            Backend::Postgres => sqlx::raw_sql(sql)
                .execute(&mut self.pg().await)
                .await
                .map(|_| ()),
            Backend::Sqlite => sqlx::raw_sql(sql)
                .execute(&mut self.sqlite().await)
                .await
                .map(|_| ()),
        }
        .unwrap();
    }

    /// Makes every insert into the audit log fail, as a full disk or a revoked grant would.
    pub async fn refuse_audit_records(&self) {
        self.execute(match self.backend {
            Backend::Postgres => {
                "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'the audit log is unavailable'; END $$; \
                 CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events \
                 FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
            }
            Backend::Sqlite => {
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events \
                 BEGIN SELECT RAISE(ABORT, 'the audit log is unavailable'); END"
            }
        })
        .await;
    }

    /// Every text column of every audit record, read behind the server's back.
    pub async fn audit_rows_as_text(&self) -> String {
        let sql = "SELECT action || ' ' || actor_name || ' ' || COALESCE(target_id, '') || ' ' || \
                   COALESCE(target_name, '') || ' ' || details || ' ' || \
                   COALESCE(client_address, '') || ' ' || COALESCE(request_id, '') \
                   FROM audit_events";
        let rows: Vec<String> = match self.backend {
            Backend::Postgres => sqlx::query_scalar(sql)
                .fetch_all(&mut self.pg().await)
                .await
                .unwrap(),
            Backend::Sqlite => sqlx::query_scalar(sql)
                .fetch_all(&mut self.sqlite().await)
                .await
                .unwrap(),
        };
        assert!(!rows.is_empty());
        rows.join("\n")
    }

    /// How many rows `table` holds, read behind the server's back.
    pub async fn row_count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match self.backend {
            Backend::Postgres => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut self.pg().await)
                .await
                .unwrap(),
            Backend::Sqlite => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut self.sqlite().await)
                .await
                .unwrap(),
        }
    }
}

/// A PostgreSQL test schema, dropped with everything in it when its owner goes (so that runs
/// do not pile schemas up in the shared database), also when a test panics.
pub struct OwnedSchema(Option<String>);

impl OwnedSchema {
    /// The schema of `db`, if it has one, to be dropped with the returned guard.
    pub fn of(db: &TestDatabase) -> Option<OwnedSchema> {
        db.schema.clone().map(|schema| OwnedSchema(Some(schema)))
    }

    async fn drop_now(mut self) {
        if let Some(schema) = self.0.take() {
            drop_schema(&schema).await.expect("drop test schema");
        }
    }
}

impl Drop for OwnedSchema {
    fn drop(&mut self) {
        let Some(schema) = self.0.take() else { return };
        // A test that panicked or never stopped its app. This may run on the test's runtime,
        // which cannot be blocked on, so the schema goes from a thread of its own.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(drop_schema(&schema))
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop a test schema: {dropped:?}");
        }
    }
}

/// Waits at most a few seconds for locks: a server still running may hold some.
async fn drop_schema(schema: &str) -> Result<(), sqlx::Error> {
    let mut conn = sqlx::PgConnection::connect(&postgres_base_url()).await?;
    sqlx::query("SET lock_timeout = '10s'")
        .execute(&mut conn)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// A response: status, headers and JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Asserts the ZenML error shape and returns its exception class and message.
    pub fn error(&self) -> (String, String) {
        let detail = self.body["detail"]
            .as_array()
            .unwrap_or_else(|| panic!("expected an error body, got {} {}", self.status, self.body));
        assert_eq!(detail.len(), 2, "error detail has two parts: {}", self.body);
        (
            detail[0].as_str().unwrap().to_owned(),
            detail[1].as_str().unwrap().to_owned(),
        )
    }

    pub fn ok(self) -> Value {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "unexpected reply: {}",
            self.body
        );
        self.body
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: Clock,
    pub db: TestDatabase,
    pub config: ServeConfig,
    pub admin: String,
    /// The server's audit log, to chain what is pending before a test reads it.
    pub audit: std::sync::Arc<connector_hub::http::audit::AuditLog>,
    /// Where `/metrics` is served with `--metrics-bind`.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// What the server's handlers reach, to build its router again and read its routes.
    pub state: connector_hub::http::AppState,
    _data_dir: tempfile::TempDir,
    /// Set when this app made the database (not a peer on another's): its schema goes with it.
    owned_schema: Option<OwnedSchema>,
    shutdown: Option<oneshot::Sender<()>>,
    finished: Option<tokio::task::JoinHandle<()>>,
}

/// A fixed master key for tests that start a second server on the same database.
pub fn test_master_key() -> String {
    base64::engine::general_purpose::STANDARD.encode([42u8; 32])
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    /// A server with no Azure behind it (see [`test_config`]).
    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut ServeConfig)) -> TestApp {
        Self::spawn_in(backend, tempfile::tempdir().unwrap(), configure).await
    }

    /// A server whose Azure is `azure`: its custom cloud file (endpoints and CA) is written to
    /// the data directory, so every outbound call goes to the fake or to its Azurite.
    pub async fn spawn_with_azure(
        backend: Backend,
        azure: &FakeAzure,
        configure: impl FnOnce(&mut ServeConfig),
    ) -> TestApp {
        let data_dir = tempfile::tempdir().unwrap();
        let cloud = azure.write_cloud_file(data_dir.path());
        Self::spawn_in(backend, data_dir, |config| {
            config.azure.azure_cloud_config = Some(cloud);
            configure(config)
        })
        .await
    }

    async fn spawn_in(
        backend: Backend,
        data_dir: tempfile::TempDir,
        configure: impl FnOnce(&mut ServeConfig),
    ) -> TestApp {
        Self::spawn_prepared(backend, data_dir, async |_| {}, configure).await
    }

    /// A server on a database that `prepare` set up before it started, as an older release
    /// may have left it.
    pub async fn spawn_after(
        backend: Backend,
        prepare: impl AsyncFnOnce(&TestDatabase),
    ) -> TestApp {
        Self::spawn_prepared(backend, tempfile::tempdir().unwrap(), prepare, |_| {}).await
    }

    async fn spawn_prepared(
        backend: Backend,
        data_dir: tempfile::TempDir,
        prepare: impl AsyncFnOnce(&TestDatabase),
        configure: impl FnOnce(&mut ServeConfig),
    ) -> TestApp {
        let db = TestDatabase::new(backend, data_dir.path().to_owned()).await;
        prepare(&db).await;
        let mut config = test_config(&db);
        configure(&mut config);
        let owned_schema = OwnedSchema::of(&db);
        let mut app = Self::start(config, db, data_dir).await;
        app.owned_schema = owned_schema;
        app.admin = app.login("default", ADMIN_PASSWORD).await;
        app
    }

    /// Starts another server process on this app's database (same master key).
    pub async fn spawn_peer(&self, configure: impl FnOnce(&mut ServeConfig)) -> TestApp {
        let mut config = self.config.clone();
        configure(&mut config);
        let data_dir = tempfile::tempdir().unwrap();
        let mut peer = Self::start(config, self.db.clone(), data_dir).await;
        peer.admin = peer.login("default", ADMIN_PASSWORD).await;
        peer
    }

    async fn start(config: ServeConfig, db: TestDatabase, data_dir: tempfile::TempDir) -> TestApp {
        connector_hub::install_crypto_provider();
        refuse_azure_beyond_this_machine(&config);
        let clock = Clock::default();
        let server = Server::build_with_clock(config.clone(), clock.clone())
            .await
            .expect("server starts");
        let base = format!("http://{}", server.local_addr());
        let metrics_addr = server.metrics_addr();
        let state = server.state().clone();
        let audit = state.audit.clone();
        let (tx, rx) = oneshot::channel();
        let finished = tokio::spawn(async move {
            server
                .run(async { rx.await.unwrap_or(()) })
                .await
                .expect("server runs");
        });
        TestApp {
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            clock,
            db,
            config,
            admin: String::new(),
            audit,
            metrics_addr,
            state,
            _data_dir: data_dir,
            owned_schema: None,
            shutdown: Some(tx),
            finished: Some(finished),
        }
    }

    /// Stops the server gracefully and waits until it has; then drops the test's database
    /// schema, unless this is a peer (peers stop before the app they joined).
    pub async fn stop(mut self) {
        self.shut_down().await;
        if let Some(schema) = self.owned_schema.take() {
            schema.drop_now().await;
        }
    }

    async fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(finished) = self.finished.take() {
            finished.await.unwrap();
        }
    }

    /// Stops the server and starts a new one on the same data.
    pub async fn restart(self) -> TestApp {
        self.restart_with(|_| {}).await
    }

    /// Stops the server and starts a new one on the same data with a changed configuration.
    pub async fn restart_with(mut self, configure: impl FnOnce(&mut ServeConfig)) -> TestApp {
        self.shut_down().await;
        configure(&mut self.config);
        let owned_schema = self.owned_schema.take();
        let mut app = Self::start(self.config, self.db, self._data_dir).await;
        app.owned_schema = owned_schema;
        app.admin = app.login("default", ADMIN_PASSWORD).await;
        app
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request is answered");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A JSON request as `token` (no token when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, token, None).await
    }

    pub async fn try_login(&self, username: &str, password: &str) -> Reply {
        let form = [
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ];
        self.send(self.client.post(self.url("/api/v1/login")).form(&form))
            .await
    }

    /// Logs in with an API key (`ZENKEY_…`).
    pub async fn try_login_with_api_key(&self, key: &str) -> Reply {
        let form = [("grant_type", "zenml-api-key"), ("password", key)];
        self.send(self.client.post(self.url("/api/v1/login")).form(&form))
            .await
    }

    /// A service account whose default workspace is `workspace`, with one API key named `main`;
    /// returns the key as created (its text in `body.key`, shown only this once).
    pub async fn create_service_account(&self, name: &str, workspace: &str) -> Value {
        self.post(
            "/api/v1/service_accounts",
            &self.admin,
            json!({ "name": name, "default_workspace": workspace }),
        )
        .await
        .ok();
        self.post(
            &format!("/api/v1/service_accounts/{name}/api_keys"),
            &self.admin,
            json!({ "name": "main" }),
        )
        .await
        .ok()
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let reply = self.try_login(username, password).await.ok();
        reply["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn create_workspace(&self, name: &str) -> Value {
        self.post("/api/v1/workspaces", &self.admin, json!({ "name": name }))
            .await
            .ok()
    }

    /// A user whose default workspace is `workspace`, with `role` there; returns a token.
    pub async fn create_user(&self, name: &str, workspace: &str, role: &str) -> String {
        let password = format!("{name} password");
        self.post(
            "/api/v1/users",
            &self.admin,
            json!({ "name": name, "password": password, "default_workspace": workspace, "role": role }),
        )
        .await
        .ok();
        self.login(name, &password).await
    }

    pub async fn add_member(&self, workspace: &str, user: &str, role: &str) {
        self.put(
            &format!("/api/v1/workspaces/{workspace}/members/{user}"),
            &self.admin,
            json!({ "role": role }),
        )
        .await
        .ok();
    }

    pub async fn create_secret(
        &self,
        token: &str,
        name: &str,
        private: bool,
        values: Value,
    ) -> Value {
        self.post(
            "/api/v1/secrets",
            token,
            json!({ "name": name, "private": private, "values": values }),
        )
        .await
        .ok()
    }
}

/// The configuration every test server starts from: the defaults, never the environment of
/// whoever runs the tests, on `db`, with short Azure timeouts.
///
/// Its one Azure cloud is a closed port on this machine, so that whatever reaches for Azure
/// fails at once and never leaves the machine; tests with a fake Azure replace it.
pub fn test_config(db: &TestDatabase) -> ServeConfig {
    let cloud = db.data_dir.join("no-azure-cloud.json");
    std::fs::write(
        &cloud,
        json!({
            "name": "NoAzure",
            "authority_host": format!("https://{CLOSED_PORT}"),
            "resource_manager_endpoint": format!("https://{CLOSED_PORT}"),
            "resource_manager_scope": "https://management.azure.com/.default",
            "storage_scope": "https://storage.azure.com/.default",
        })
        .to_string(),
    )
    .unwrap();
    // The defaults, never the environment of whoever runs the tests.
    let mut config = ServeConfig::defaults();
    config.azure.azure_cloud_config = Some(cloud);
    config.storage.data_dir = db.data_dir.clone();
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.storage.database_url = db.url.clone();
    config.storage.encryption_key = Some(test_master_key());
    config.storage.database_max_connections = 8;
    config.admin_password = Some(ADMIN_PASSWORD.to_owned());
    config.request_timeout_seconds = 30;
    // Azure calls fail fast in tests.
    config.azure.azure_connect_timeout_seconds = 2;
    config.azure.azure_request_timeout_seconds = 5;
    config.azure.azure_max_retries = 2;
    config.azure.azure_max_retry_wait_seconds = 2;
    config.azure.azure_custom_cloud_only = true;
    // User-named endpoints (kubernetes, docker) only on this machine; tests of the default
    // guard unset it and name only loopback addresses, which it refuses.
    config.user_endpoints.allowed_target_hosts = Some(vec!["127.0.0.0/8".into(), "::1".into()]);
    config.user_endpoints.target_connect_timeout_seconds = 2;
    config.user_endpoints.target_request_timeout_seconds = 5;
    config
}

/// A port on this machine that nothing listens on (the discard service's).
pub const CLOSED_PORT: &str = "127.0.0.1:9";

/// Panics unless every Azure endpoint the server could call is on this machine: no test may
/// reach a real cloud.
fn refuse_azure_beyond_this_machine(config: &ServeConfig) {
    let clouds = connector_hub::connectors::azure::cloud::Clouds::load(
        config.azure.azure_cloud_config.as_deref(),
        config.azure.azure_custom_cloud_only,
    )
    .expect("the test's Azure cloud configuration loads");
    for endpoint in clouds.endpoints() {
        let host = reqwest::Url::parse(endpoint)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
            .unwrap_or_default();
        let local = host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        assert!(
            local,
            "refusing to start a test server that may call {endpoint}: every Azure endpoint of a \
             test must be on this machine"
        );
    }
}

pub fn id_of(value: &Value) -> Uuid {
    value["id"].as_str().unwrap().parse().unwrap()
}
