//! Every setting of the server: a command-line flag, its environment variable and its default,
//! documented once here (and listed by `--help`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "connector-hub",
    version,
    about = "A self-hosted server for cloud service connectors"
)]
pub struct Cli {
    /// What to do; without a command the server runs with its defaults and environment.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(Box<ServeConfig>),
    /// Manage the encryption keys that protect stored secrets.
    Keys {
        #[command(flatten)]
        storage: StorageConfig,
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Check or trim the audit log.
    Audit {
        #[command(flatten)]
        storage: StorageConfig,
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
    /// Ask a running server whether it is ready (a container's health check): exit status 0
    /// when it answers 200, 1 otherwise. The image has no curl; this is its probe.
    Health {
        #[arg(long, default_value = "http://127.0.0.1:8080/ready")]
        url: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Walk the hash chain and name the first record that does not match (exit status 1).
    Verify,
    /// Remove the records created before a date; the rest stays verifiable.
    Purge {
        /// A date (`2026-01-31`) or a time (`2026-01-31T12:00:00Z`), in UTC.
        #[arg(long)]
        before: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Show every data key, which one is active and how many values each protects.
    Status,
    /// Make a new data key active; older keys keep decrypting what they protect.
    Rotate,
    /// Re-encrypt every value that is still under an older data key (resumable, safe while servers run).
    Rewrap {
        /// How many values to re-encrypt per transaction.
        #[arg(long, default_value_t = 200)]
        batch_size: u32,
    },
    /// Remove a retired data key that no longer protects any value.
    Remove { key_id: uuid::Uuid },
    /// Re-wrap every data key under a new master key (values are not touched).
    RotateMaster {
        /// File holding the new master key (32 random bytes, base64).
        #[arg(long)]
        new_key_file: PathBuf,
    },
}

/// Where data lives, how it is encrypted and where audit records are shipped: shared by
/// `serve`, `keys` and `audit`.
#[derive(Debug, Clone, Args)]
pub struct StorageConfig {
    /// Folder for the embedded SQLite database and its generated key file.
    #[arg(long, env = "CONNECTOR_HUB_DATA_DIR", default_value = ".connector-hub")]
    pub data_dir: PathBuf,

    /// Use this database instead of the embedded SQLite one (`postgres://…` or `sqlite://…`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Largest number of pooled database connections per server process.
    #[arg(
        long,
        env = "CONNECTOR_HUB_DATABASE_MAX_CONNECTIONS",
        default_value_t = 16
    )]
    pub database_max_connections: u32,

    /// Master key (32 random bytes, base64) that wraps the data keys. Make one with
    /// `head -c 32 /dev/urandom | base64`.
    #[arg(long, env = "CONNECTOR_HUB_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,

    /// File holding the master key. On the embedded SQLite default it is created (mode 0600) in
    /// the data directory when no key is given.
    #[arg(long, env = "CONNECTOR_HUB_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,

    /// The master key in use before a master-key rotation, so that processes keep reading data
    /// keys wrapped by either key during a rolling restart.
    #[arg(long, env = "CONNECTOR_HUB_PREVIOUS_ENCRYPTION_KEY_FILE")]
    pub previous_encryption_key_file: Option<PathBuf>,

    /// How often a process re-reads which data key is active (seconds), so that a rotation made
    /// by another process takes effect here within this time.
    #[arg(long, env = "CONNECTOR_HUB_KEY_REFRESH_SECONDS", default_value_t = 2)]
    pub key_refresh_seconds: u64,

    /// Encryptions after which a data key is rotated automatically; well below the 2^32 limit
    /// for random 96-bit AES-GCM nonces.
    #[arg(long, env = "CONNECTOR_HUB_KEY_MAX_ENCRYPTIONS", default_value_t = 1 << 31)]
    pub key_max_encryptions: u64,

    /// Also append every audit record that this process chains to this file, one JSON object
    /// per line, for log shippers (the `keys` and `audit` commands too: their own records, and
    /// those they chain). The database stays the record of truth.
    #[arg(long, env = "CONNECTOR_HUB_AUDIT_LOG_FILE")]
    pub audit_log_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address and port to listen on.
    #[arg(long, env = "CONNECTOR_HUB_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    #[command(flatten)]
    pub storage: StorageConfig,

    /// Password for the `default` admin user created on first start. When unset a random one is
    /// generated and printed once.
    #[arg(long, env = "CONNECTOR_HUB_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// Lifetime of issued access tokens, in seconds.
    #[arg(
        long,
        env = "CONNECTOR_HUB_TOKEN_LIFETIME_SECONDS",
        default_value_t = 3600
    )]
    pub token_lifetime_seconds: u64,

    /// Failed logins allowed per user name from one client address within the failure window.
    #[arg(
        long,
        env = "CONNECTOR_HUB_LOGIN_MAX_FAILURES_PER_USER",
        default_value_t = 5
    )]
    pub login_max_failures_per_user: u32,

    /// Failed logins per user name from all addresses within the failure window, beyond which
    /// addresses that failed are refused and others slowed down (against guessing from many
    /// addresses; the right password from an address that has not failed still works).
    #[arg(
        long,
        env = "CONNECTOR_HUB_LOGIN_MAX_FAILURES_PER_USER_ALL_ADDRESSES",
        default_value_t = 100
    )]
    pub login_max_failures_per_user_all_addresses: u32,

    /// Failed logins allowed per client address within the failure window.
    #[arg(
        long,
        env = "CONNECTOR_HUB_LOGIN_MAX_FAILURES_PER_ADDRESS",
        default_value_t = 20
    )]
    pub login_max_failures_per_address: u32,

    /// Length of the failed-login window, in seconds.
    #[arg(
        long,
        env = "CONNECTOR_HUB_LOGIN_FAILURE_WINDOW_SECONDS",
        default_value_t = 300
    )]
    pub login_failure_window_seconds: u64,

    /// Time a client has to send a request's head (and to start the next request on a
    /// kept-alive connection) before its connection is closed, in seconds.
    #[arg(
        long,
        env = "CONNECTOR_HUB_HEADER_READ_TIMEOUT_SECONDS",
        default_value_t = 30
    )]
    pub header_read_timeout_seconds: u64,

    /// Connections served at once; one more is answered 503 and closed. Keep it below the
    /// process's limit on open files.
    #[arg(long, env = "CONNECTOR_HUB_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Reverse proxies in front of the server: addresses or CIDR ranges, comma-separated. A
    /// request from one of them comes from the rightmost address in its `X-Forwarded-For`
    /// that is not itself a trusted proxy; with none, that header is ignored (any client can
    /// send it). The client's address is what failed logins are counted by and the audit log
    /// records.
    #[arg(long, env = "CONNECTOR_HUB_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "CONNECTOR_HUB_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,

    /// Memory for rendered pages of connector lists, in bytes (0 keeps none). A page is served
    /// again only while nothing it shows has changed, in any server process.
    #[arg(
        long,
        env = "CONNECTOR_HUB_LIST_CACHE_BYTES",
        default_value_t = 4 << 20
    )]
    pub list_cache_bytes: u64,

    /// Time after which a request is abandoned with 408, in seconds.
    #[arg(
        long,
        env = "CONNECTOR_HUB_REQUEST_TIMEOUT_SECONDS",
        default_value_t = 60
    )]
    pub request_timeout_seconds: u64,

    /// The URL clients use to reach this server, reported by `/api/v1/info`. When it is https,
    /// the dashboard's session cookies are marked `Secure`.
    #[arg(long, env = "CONNECTOR_HUB_SERVER_URL")]
    pub server_url: Option<String>,

    /// Allow connectors to use implicit authentication, which lends them this server's own
    /// cloud identity (`1`, `y`, `yes` or `true`, in any case; off otherwise).
    #[arg(long, env = "ZENML_ENABLE_IMPLICIT_AUTH_METHODS", default_value = "false",
          value_parser = truthy, action = clap::ArgAction::Set)]
    pub enable_implicit_auth_methods: bool,

    /// Limit implicit authentication to these workspaces (names or ids, comma-separated); when
    /// unset and implicit authentication is enabled, every workspace may use it.
    #[arg(
        long,
        env = "CONNECTOR_HUB_IMPLICIT_AUTH_WORKSPACES",
        value_delimiter = ','
    )]
    pub implicit_auth_workspaces: Option<Vec<String>>,

    #[command(flatten)]
    pub azure: AzureConfig,

    #[command(flatten)]
    pub cluster_clients: ClusterClientConfig,

    #[command(flatten)]
    pub user_endpoints: UserEndpointConfig,

    /// Serve `/metrics` on this separate address (for example `0.0.0.0:9090`), to anyone who
    /// can reach it, instead of under the main address to server admins.
    #[arg(long, env = "CONNECTOR_HUB_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,

    /// A bearer token that may read `/metrics` under the main address, for a scraper that has
    /// no account. Server admins may read it with their own credentials either way.
    #[arg(long, env = "CONNECTOR_HUB_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Write no audit records: only for the benchmark's baseline, which measures what the
    /// audit log costs. Hidden, and without an environment variable, so that no deployment
    /// turns it on by accident.
    #[arg(long, hide = true)]
    pub unaudited_benchmark_baseline: bool,

    /// Neither count requests nor serve `/metrics`: only for the benchmark's baseline, which
    /// measures what counting costs. Hidden, as above.
    #[arg(long, hide = true)]
    pub unmetered_benchmark_baseline: bool,

    /// Log format.
    #[arg(long, env = "CONNECTOR_HUB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter, in `tracing` env-filter syntax.
    #[arg(long, env = "CONNECTOR_HUB_LOG", default_value = "info")]
    pub log: String,
}

/// How the server reaches Azure, and its own Azure identity for implicit connectors.
#[derive(Debug, Clone, Args)]
pub struct AzureConfig {
    /// A JSON file describing a custom Azure cloud (`name`, `authority_host`,
    /// `resource_manager_endpoint`, `resource_manager_scope`, `storage_scope`, optional
    /// `ca_certificate`: a PEM file trusted for Azure calls). It becomes the default cloud.
    #[arg(long, env = "CONNECTOR_HUB_AZURE_CLOUD_CONFIG")]
    pub azure_cloud_config: Option<PathBuf>,

    /// Offer connectors only the custom cloud of `--azure-cloud-config`, not the national
    /// clouds: for an installation whose Azure is private, such as Azure Stack Hub, and which
    /// must never reach the public endpoints.
    #[arg(
        long,
        env = "CONNECTOR_HUB_AZURE_CUSTOM_CLOUD_ONLY",
        default_value = "false",
        value_parser = truthy,
        action = clap::ArgAction::Set
    )]
    pub azure_custom_cloud_only: bool,

    /// Time allowed to connect to an Azure endpoint, in seconds.
    #[arg(
        long,
        env = "CONNECTOR_HUB_AZURE_CONNECT_TIMEOUT_SECONDS",
        default_value_t = 5
    )]
    pub azure_connect_timeout_seconds: u64,

    /// Time allowed for one call to Azure, in seconds.
    #[arg(
        long,
        env = "CONNECTOR_HUB_AZURE_REQUEST_TIMEOUT_SECONDS",
        default_value_t = 20
    )]
    pub azure_request_timeout_seconds: u64,

    /// Retries of an Azure call answered with 429 or 5xx (or failing in transport).
    #[arg(long, env = "CONNECTOR_HUB_AZURE_MAX_RETRIES", default_value_t = 3)]
    pub azure_max_retries: u32,

    /// The longest `Retry-After` honoured, in seconds; a longer one fails the call at once.
    #[arg(
        long,
        env = "CONNECTOR_HUB_AZURE_MAX_RETRY_WAIT_SECONDS",
        default_value_t = 10
    )]
    pub azure_max_retry_wait_seconds: u64,

    /// Tenant of the server's own service principal, used by implicit connectors.
    #[arg(long, env = "AZURE_TENANT_ID")]
    pub azure_tenant_id: Option<String>,

    /// Client id of the server's own service principal or workload identity.
    #[arg(long, env = "AZURE_CLIENT_ID")]
    pub azure_client_id: Option<String>,

    /// Client secret of the server's own service principal.
    #[arg(long, env = "AZURE_CLIENT_SECRET", hide_env_values = true)]
    pub azure_client_secret: Option<String>,

    /// Federated token file of the server's workload identity (with the tenant and client id).
    #[arg(long, env = "AZURE_FEDERATED_TOKEN_FILE")]
    pub azure_federated_token_file: Option<PathBuf>,
}

/// Who clients of Kubernetes clusters with local accounts act as: the server holds the admin
/// credentials and hands out short-lived tokens of this service account instead.
#[derive(Debug, Clone, Args)]
pub struct ClusterClientConfig {
    /// Namespace of the service account that cluster tokens are issued for.
    #[arg(
        long,
        env = "CONNECTOR_HUB_KUBERNETES_CLIENT_NAMESPACE",
        default_value = "kube-system"
    )]
    pub kubernetes_client_namespace: String,

    /// Service account that cluster tokens are issued for; created on first use.
    #[arg(
        long,
        env = "CONNECTOR_HUB_KUBERNETES_CLIENT_SERVICE_ACCOUNT",
        default_value = "connector-hub-client"
    )]
    pub kubernetes_client_service_account: String,

    /// ClusterRole bound to that service account on first use (`cluster-admin` gives what
    /// the admin credentials give, but expiring and revocable).
    #[arg(
        long,
        env = "CONNECTOR_HUB_KUBERNETES_CLIENT_CLUSTER_ROLE",
        default_value = "cluster-admin"
    )]
    pub kubernetes_client_cluster_role: String,
}

/// How the server calls endpoints that users name: the API servers of `kubernetes` connectors
/// and the registries of `docker` connectors.
#[derive(Debug, Clone, Args)]
pub struct UserEndpointConfig {
    /// Hosts that user-named endpoints may be on: host names, addresses and CIDRs, comma
    /// separated, or `*` for any. Unset, loopback, link-local and private addresses are refused
    /// and everything else is allowed, so that the server is no proxy into its own network.
    #[arg(
        long,
        env = "CONNECTOR_HUB_ALLOWED_TARGET_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_target_hosts: Option<Vec<String>>,

    /// A PEM file of CAs trusted for user-named endpoints on top of the system roots, such as
    /// a company CA that signs a private registry's certificate.
    #[arg(long, env = "CONNECTOR_HUB_TRUSTED_CA_FILE")]
    pub trusted_ca_file: Option<PathBuf>,

    /// Time allowed to connect to a user-named endpoint, in seconds.
    #[arg(
        long,
        env = "CONNECTOR_HUB_TARGET_CONNECT_TIMEOUT_SECONDS",
        default_value_t = 5
    )]
    pub target_connect_timeout_seconds: u64,

    /// Time allowed for one call to a user-named endpoint, in seconds.
    #[arg(
        long,
        env = "CONNECTOR_HUB_TARGET_REQUEST_TIMEOUT_SECONDS",
        default_value_t = 20
    )]
    pub target_request_timeout_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// ZenML's reading of a boolean environment variable: anything but these means false.
fn truthy(value: &str) -> Result<bool, String> {
    Ok(matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "y" | "yes" | "true"
    ))
}

impl ServeConfig {
    pub fn token_lifetime(&self) -> Duration {
        Duration::from_secs(self.token_lifetime_seconds)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds)
    }

    /// The defaults, overridden by the environment: what `serve` without flags runs with.
    pub fn from_env() -> Self {
        match Cli::parse_from(["connector-hub", "serve"]).command {
            Some(Command::Serve(config)) => *config,
            _ => unreachable!("parsing `serve` yields the serve command"),
        }
    }

    /// The defaults alone, whatever the environment holds: what tests start from, so that an
    /// exported variable changes no test.
    pub fn defaults() -> Self {
        let command = <Cli as clap::CommandFactory>::command()
            .mut_subcommand("serve", |serve| serve.mut_args(|arg| arg.env(None)));
        let matches = command
            .try_get_matches_from(["connector-hub", "serve"])
            .expect("the defaults parse");
        let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
            .expect("the defaults make a configuration");
        match cli.command {
            Some(Command::Serve(config)) => *config,
            _ => unreachable!("parsing `serve` yields the serve command"),
        }
    }
}
