//! Start-up: opens storage and the keyring, creates the first admin on an empty database, builds
//! the router and serves it until shut down.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use uuid::Uuid;

use crate::auth::shared_limit::SharedFailedLogins;
use crate::auth::{FailedLogins, LoginLimiter, LoginLimits, TokenSigner, password};
use crate::config::{LogFormat, ServeConfig, StorageConfig};
use crate::connectors::Catalogue;
use crate::connectors::catalogue::Setup;
use crate::connectors::connector_types;
use crate::crypto::{CryptoError, Keyring, KeyringSettings, MasterKey};
use crate::domain::clock::Clock;
use crate::domain::{Password, Role};
use crate::http::audit::AuditLog;
use crate::http::client_address::TrustedProxies;
use crate::http::rendered::RenderedPages;
use crate::http::serve::{ConnectionLimits, serve};
use crate::http::{self, AppState, Limits, MetricsRoute, ServerIdentity};
use crate::metrics::Metrics;
use crate::stacks::Flavors;
use crate::store::users::UserRow;
use crate::store::workspaces::WorkspaceRow;
use crate::store::{Dialect, Store, StoreError, settings, stacks, users, workspaces};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("encryption: {0}")]
    Crypto(#[from] CryptoError),
    #[error("{0}")]
    Config(String),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

const KEY_FILE_NAME: &str = "master.key";

/// Finds the master key: the environment, else the key file, else (only for the embedded SQLite
/// default) a key file in the data directory, generated on first start.
fn master_key(storage: &StorageConfig) -> Result<MasterKey, StartupError> {
    if let Some(key) = &storage.encryption_key {
        return Ok(MasterKey::from_base64(key)?);
    }
    if let Some(path) = &storage.encryption_key_file {
        return Ok(MasterKey::read_file(path)?);
    }
    if storage.database_url.is_some() {
        return Err(StartupError::Config(
            "no encryption key: an external database needs CONNECTOR_HUB_ENCRYPTION_KEY or \
             --encryption-key-file. Make a key with `head -c 32 /dev/urandom | base64` and keep \
             it safe: without it no stored secret can be read."
                .into(),
        ));
    }
    create_private_dir(&storage.data_dir)?;
    let path = storage.data_dir.join(KEY_FILE_NAME);
    if path.exists() {
        return Ok(MasterKey::read_file(&path)?);
    }
    let (key, generated) = MasterKey::read_or_generate_file(&path)?;
    if generated {
        tracing::warn!(
            path = %path.display(),
            "generated a new master encryption key; back it up, since without it no stored secret can be read"
        );
    }
    Ok(key)
}

/// The data directory holds the database and the key file: only its owner may enter it.
fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Opens the database: what every command needs first.
pub async fn open_store(storage: &StorageConfig) -> Result<Store, StartupError> {
    Ok(Store::open(
        storage.database_url.as_deref(),
        &storage.data_dir,
        storage.database_max_connections,
    )
    .await?)
}

/// The audit log of a `keys` or `audit` command's process: what it chains goes to the
/// `--audit-log-file`, as a server's does.
pub fn command_audit_log(
    store: &Store,
    storage: &StorageConfig,
) -> Result<Arc<AuditLog>, StartupError> {
    AuditLog::start(
        store,
        storage.audit_log_file.as_deref(),
        prometheus_client::metrics::counter::Counter::default(),
        Clock::default(),
    )
    .map_err(audit_file_error)
}

fn audit_file_error(err: std::io::Error) -> StartupError {
    StartupError::Config(format!("cannot open the audit log file: {err}"))
}

/// Opens the keyring on `store`: what `serve` and `keys` both need. Opening it may rotate a
/// worn data key, which the audit log records.
pub async fn open_keyring(
    storage: &StorageConfig,
    store: &Store,
    clock: Clock,
) -> Result<Keyring, StartupError> {
    let master = master_key(storage)?;
    let previous = storage
        .previous_encryption_key_file
        .as_deref()
        .map(MasterKey::read_file)
        .transpose()?;
    let settings = KeyringSettings {
        refresh: Duration::from_secs(storage.key_refresh_seconds),
        max_encryptions: storage.key_max_encryptions.max(1),
    };
    Ok(Keyring::open(store.clone(), master, previous, settings, clock).await?)
}

/// On an empty database: the `default` workspace and its admin user `default`.
async fn create_first_admin(
    store: &Store,
    config: &ServeConfig,
    clock: &Clock,
) -> Result<(), StartupError> {
    let mut conn = store.conn().await?;
    if users::count(&mut conn).await? > 0 {
        return Ok(());
    }
    drop(conn);
    let (password, generated) = match &config.admin_password {
        Some(given) => (
            Password::parse(given.clone())
                .map_err(|e| StartupError::Config(format!("CONNECTOR_HUB_ADMIN_PASSWORD: {e}")))?,
            false,
        ),
        None => (
            Password::parse(password::generate()).expect("generated passwords are long enough"),
            true,
        ),
    };
    let hash = {
        let password = password.clone();
        password::off_thread(move || password::hash(password.expose()))
            .await
            .map_err(|e| StartupError::Config(e.to_string()))?
    };
    let now = clock.now();
    let workspace = WorkspaceRow {
        id: Uuid::new_v4(),
        name: "default".into(),
        display_name: "default".into(),
        description: "Created on first start".into(),
        created: now,
        updated: now,
    };
    let admin = UserRow {
        id: Uuid::new_v4(),
        name: "default".into(),
        full_name: "Server administrator".into(),
        email: None,
        password_hash: Some(hash),
        description: String::new(),
        is_admin: true,
        is_service_account: false,
        active: true,
        default_workspace_id: Some(workspace.id),
        created: now,
        updated: now,
        session_generation: 0,
    };
    let mut tx = store.begin().await?;
    let created = async {
        workspaces::insert(&mut tx, &workspace).await?;
        stacks::insert_default(&mut tx, workspace.id, now).await?;
        users::insert(&mut tx, &admin).await?;
        workspaces::set_member(&mut tx, workspace.id, admin.id, Role::Admin, now).await
    }
    .await;
    match created {
        Ok(()) => tx.commit().await?,
        // Another process started at the same moment and created them.
        Err(StoreError::Conflict(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    if generated {
        // Printed once, to the terminal rather than the log stream.
        eprintln!(
            "\n  connector-hub created the admin user 'default' with password: {}\n  \
             Log in and change it; it is not shown again.\n",
            password.expose()
        );
    } else {
        tracing::info!("created the admin user 'default' with the configured password");
    }
    Ok(())
}

/// The failed-login limiter: in the database on PostgreSQL, so that every process sharing it
/// counts against the same limits; in this process on SQLite.
fn login_limiter(store: &Store, config: &ServeConfig) -> LoginLimiter {
    let limits = LoginLimits {
        per_user_and_address: config.login_max_failures_per_user,
        per_address: config.login_max_failures_per_address,
        per_user: config.login_max_failures_per_user_all_addresses,
        window: Duration::from_secs(config.login_failure_window_seconds),
    };
    match store.dialect() {
        Dialect::Postgres => LoginLimiter::Shared(SharedFailedLogins::new(store.clone(), limits)),
        Dialect::Sqlite => LoginLimiter::Local(FailedLogins::new(limits)),
    }
}

/// A server bound to its address, ready to run.
pub struct Server {
    listener: TcpListener,
    /// `--metrics-bind`.
    metrics_listener: Option<TcpListener>,
    router: axum::Router,
    state: AppState,
    connections: ConnectionLimits,
}

impl Server {
    pub async fn build(config: ServeConfig) -> Result<Server, StartupError> {
        Self::build_with_clock(config, Clock::default()).await
    }

    /// As [`Server::build`], with a clock tests can move forward.
    pub async fn build_with_clock(
        config: ServeConfig,
        clock: Clock,
    ) -> Result<Server, StartupError> {
        let metrics = Metrics::new();
        let proxies =
            TrustedProxies::parse(&config.trusted_proxies).map_err(StartupError::Config)?;
        let store = open_store(&config.storage).await?;
        // First, so that the file hears of every record this process writes.
        let audit = AuditLog::start(
            &store,
            config.storage.audit_log_file.as_deref(),
            metrics.audit_records.clone(),
            clock.clone(),
        )
        .map_err(audit_file_error)?;
        let keyring = open_keyring(&config.storage, &store, clock.clone())
            .await?
            .counted(metrics.crypto.clone());
        let store = match config.unaudited_benchmark_baseline {
            true => {
                tracing::warn!("the audit log is off: this server is a benchmark's baseline");
                store.unaudited()
            }
            false => store,
        };
        let mut conn = store.conn().await?;
        let server_id: Uuid =
            settings::get_or_insert(&mut conn, "server_id", &Uuid::new_v4().to_string())
                .await?
                .parse()
                .map_err(|_| StartupError::Config("the stored server id is not a UUID".into()))?;
        drop(conn);
        let tokens = TokenSigner::load(
            &store,
            &keyring,
            server_id.to_string(),
            config.token_lifetime(),
            clock.now(),
        )
        .await?;
        create_first_admin(&store, &config, &clock).await?;
        stacks::insert_missing_defaults(&store, clock.now()).await?;

        let logins = Arc::new(login_limiter(&store, &config));
        let state = AppState {
            server: Arc::new(ServerIdentity {
                id: server_id,
                url: config.server_url.clone(),
                database_type: store.backend_name(),
            }),
            store,
            keyring: Arc::new(keyring),
            tokens: Arc::new(tokens),
            catalogue: Arc::new(Catalogue::new(
                Setup::new(&config, &metrics)
                    .and_then(|setup| connector_types(&setup))
                    .map_err(StartupError::Config)?,
                config.enable_implicit_auth_methods,
                config.implicit_auth_workspaces.clone(),
            )),
            flavors: Arc::new(Flavors::new()),
            pages: Arc::new(RenderedPages::new(config.list_cache_bytes)),
            logins,
            audit,
            metrics,
            metrics_token: config.metrics_token.as_deref().map(Arc::from),
            clock,
        };
        let limits = Limits {
            max_body_bytes: config.max_body_bytes,
            request_timeout: config.request_timeout(),
        };
        let metrics_route = match (config.unmetered_benchmark_baseline, config.metrics_bind) {
            (true, _) => {
                tracing::warn!("requests are not counted: this server is a benchmark's baseline");
                MetricsRoute::Off
            }
            (false, Some(_)) => MetricsRoute::Separate,
            (false, None) => MetricsRoute::ForAdmins,
        };
        let router = http::router(state.clone(), limits, metrics_route, proxies);
        let listener = TcpListener::bind(config.bind).await?;
        let metrics_listener = match config.metrics_bind {
            Some(address) => Some(TcpListener::bind(address).await?),
            None => None,
        };
        let connections = ConnectionLimits {
            header_read_timeout: Duration::from_secs(config.header_read_timeout_seconds.max(1)),
            max_connections: config.max_connections.max(1),
        };
        Ok(Server {
            listener,
            metrics_listener,
            router,
            state,
            connections,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The `--metrics-bind` address, when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(address = %self.local_addr(), "connector-hub is listening");
        let store = self.state.store.clone();
        // The metrics address serves until the main one has drained: it stops with the process.
        let metrics = self.metrics_listener.map(|listener| {
            let router = http::metrics::separate_router(self.state.clone());
            tokio::spawn(async move { axum::serve(listener, router).await })
        });
        serve(self.listener, self.router, self.connections, shutdown).await;
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        store.close().await;
        Ok(())
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

pub fn init_tracing(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
