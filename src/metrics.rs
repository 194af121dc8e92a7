//! The server's Prometheus metrics. Each server builds one [`Metrics`] and hands its parts to
//! what they count (the engine's Azure calls and token cache, the keyring, the login limiter,
//! the audit log, the HTTP layer); `/metrics` renders them. Parts are cheap handles on shared
//! atomics, so counting costs an atomic add and never a lock held across a call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Latency buckets: 0.5 ms to about 16 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// A request's route is its template (`/api/v1/service_connectors/{id}`), never the raw path:
/// ids in label values would grow the series without bound.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: String,
}

/// Requests served, by route template, method and status, with their latency.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Histograms<RouteLabels>,
}

impl HttpMetrics {
    pub fn observe(&self, route: &str, method: &str, status: u16, took: Duration) {
        let (route, method) = (route.to_owned(), method.to_owned());
        self.latency
            .get_or_create(&RouteLabels {
                route: route.clone(),
                method: method.clone(),
            })
            .observe(took.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
    }
}

/// The Azure services the engine calls.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(clippy::upper_case_acronyms)]
pub enum AzureService {
    /// Azure AD (Entra ID) tokens.
    AAD,
    /// Azure Resource Manager.
    ARM,
    /// Blob storage's data plane.
    Blob,
    /// Azure Container Registry's token service and registry API.
    ACR,
    /// AKS API servers.
    AKS,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum CallOutcome {
    success,
    error,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AzureCallLabels {
    pub service: AzureService,
    pub outcome: CallOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    pub service: AzureService,
}

/// Calls to Azure, by service and outcome, with their latency (retries included).
#[derive(Clone)]
pub struct AzureCalls {
    calls: Family<AzureCallLabels, Counter>,
    latency: Histograms<ServiceLabels>,
}

impl AzureCalls {
    /// Runs `call`, counting it under `service` with its outcome and latency.
    pub async fn timed<T, E>(
        &self,
        service: AzureService,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        timed(call, |outcome, seconds| {
            (self.latency.get_or_create(&ServiceLabels { service })).observe(seconds);
            (self
                .calls
                .get_or_create(&AzureCallLabels { service, outcome }))
            .inc();
        })
        .await
    }
}

/// Runs `call`, then hands its outcome and duration in seconds to `record`.
async fn timed<T, E>(
    call: impl Future<Output = Result<T, E>>,
    record: impl FnOnce(CallOutcome, f64),
) -> Result<T, E> {
    let started = Instant::now();
    let result = call.await;
    let outcome = match result {
        Ok(_) => CallOutcome::success,
        Err(_) => CallOutcome::error,
    };
    record(outcome, started.elapsed().as_secs_f64());
    result
}

/// The connector types that call endpoints their users name.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum TargetType {
    kubernetes,
    docker,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetCallLabels {
    pub connector_type: TargetType,
    pub outcome: CallOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetTypeLabels {
    pub connector_type: TargetType,
}

/// Checks of user-named endpoints (a cluster's API server, a registry's login handshake), by
/// connector type and outcome, with their latency.
#[derive(Clone)]
pub struct TargetCalls {
    calls: Family<TargetCallLabels, Counter>,
    latency: Histograms<TargetTypeLabels>,
}

impl TargetCalls {
    pub async fn timed<T, E>(
        &self,
        connector_type: TargetType,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        timed(call, |outcome, seconds| {
            (self
                .latency
                .get_or_create(&TargetTypeLabels { connector_type }))
            .observe(seconds);
            let labels = TargetCallLabels {
                connector_type,
                outcome,
            };
            self.calls.get_or_create(&labels).inc();
        })
        .await
    }
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum CacheResult {
    hit,
    miss,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub result: CacheResult,
}

/// Lookups in the engine's Azure AD token cache.
#[derive(Clone, Default)]
pub struct TokenCacheMetrics {
    lookups: Family<CacheLabels, Counter>,
}

impl TokenCacheMetrics {
    pub fn looked_up(&self, result: CacheResult) {
        self.lookups.get_or_create(&CacheLabels { result }).inc();
    }
}

/// Secret values sealed and opened with the keyring's data keys.
#[derive(Clone, Default)]
pub struct CryptoMetrics {
    pub encryptions: Counter,
    pub decryptions: Counter,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum LoginRefusal {
    /// Wrong credentials.
    failed,
    /// Refused by the failed-login limit before any credential was checked.
    rate_limited,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoginLabels {
    pub outcome: LoginRefusal,
}

#[derive(Clone, Default)]
pub struct LoginMetrics {
    refused: Family<LoginLabels, Counter>,
}

impl LoginMetrics {
    pub fn refused(&self, outcome: LoginRefusal) {
        self.refused.get_or_create(&LoginLabels { outcome }).inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: &'static str,
}

/// A database pool's state, as the store reports it when metrics are read.
#[derive(Debug, Clone, Copy)]
pub struct PoolReading {
    pub name: &'static str,
    pub in_use: usize,
    pub idle: usize,
    pub waiting: usize,
    /// Since start: connections handed out, and the total time spent waiting for them.
    pub acquired: u64,
    pub wait: Duration,
}

/// The database pools, refreshed from [`PoolReading`]s when metrics are read.
#[derive(Clone, Default)]
struct PoolMetrics {
    in_use: Family<PoolLabels, Gauge>,
    idle: Family<PoolLabels, Gauge>,
    waiting: Family<PoolLabels, Gauge>,
    acquired: Family<PoolLabels, Counter>,
    wait_seconds: Family<PoolLabels, Counter<f64, AtomicU64>>,
}

/// Every metric of one server, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    pub http: HttpMetrics,
    pub azure: AzureCalls,
    pub targets: TargetCalls,
    pub token_cache: TokenCacheMetrics,
    pub crypto: CryptoMetrics,
    pub logins: LoginMetrics,
    pub audit_records: Counter,
    pools: PoolMetrics,
    /// Held while the pools' counters catch up with a reading, so that two scrapes at once
    /// do not both add the same difference.
    refreshing: std::sync::Mutex<()>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("connector_hub");
        let http = HttpMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        };
        registry.register(
            "http_requests",
            "HTTP requests served, by route template, method and status",
            http.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to serve an HTTP request, by route template and method",
            http.latency.clone(),
        );
        let azure = AzureCalls {
            calls: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        };
        registry.register(
            "azure_calls",
            "Calls to Azure, by service and outcome",
            azure.calls.clone(),
        );
        registry.register(
            "azure_call_duration_seconds",
            "Time a call to Azure took, retries included, by service",
            azure.latency.clone(),
        );
        let targets = TargetCalls {
            calls: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        };
        registry.register(
            "target_calls",
            "Checks of user-named endpoints (cluster API servers, registries), by connector \
             type and outcome",
            targets.calls.clone(),
        );
        registry.register(
            "target_call_duration_seconds",
            "Time a check of a user-named endpoint took, by connector type",
            targets.latency.clone(),
        );
        let token_cache = TokenCacheMetrics::default();
        registry.register(
            "token_cache_lookups",
            "Lookups in the Azure AD token cache, by hit or miss",
            token_cache.lookups.clone(),
        );
        let crypto = CryptoMetrics::default();
        registry.register(
            "encryptions",
            "Secret values encrypted",
            crypto.encryptions.clone(),
        );
        registry.register(
            "decryptions",
            "Secret values decrypted",
            crypto.decryptions.clone(),
        );
        let logins = LoginMetrics::default();
        registry.register(
            "logins_refused",
            "Logins refused: failed credentials, or the failed-login limit",
            logins.refused.clone(),
        );
        let audit_records = Counter::default();
        registry.register(
            "audit_records",
            "Audit records committed and chained by this process (each record is chained by \
             exactly one process, so the sum over processes counts every record once)",
            audit_records.clone(),
        );
        let pools = PoolMetrics::default();
        registry.register(
            "db_pool_connections_in_use",
            "Database connections handed out, by pool",
            pools.in_use.clone(),
        );
        registry.register(
            "db_pool_connections_idle",
            "Database connections open and idle, by pool",
            pools.idle.clone(),
        );
        registry.register(
            "db_pool_waiting",
            "Requests waiting for a database connection, by pool",
            pools.waiting.clone(),
        );
        registry.register(
            "db_pool_acquires",
            "Database connections taken from the pool, by pool",
            pools.acquired.clone(),
        );
        registry.register(
            "db_pool_wait_seconds",
            "Time spent waiting for a database connection, by pool",
            pools.wait_seconds.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register(
            "build_info",
            "The server's version, as a label; always 1",
            build,
        );
        Arc::new(Metrics {
            registry,
            http,
            azure,
            targets,
            token_cache,
            crypto,
            logins,
            audit_records,
            pools,
            refreshing: Default::default(),
        })
    }

    /// The metrics in the text format, after refreshing the pools' from `pools`.
    pub fn render(&self, pools: &[PoolReading]) -> String {
        self.refresh_pools(pools);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    fn refresh_pools(&self, pools: &[PoolReading]) {
        let _refreshing = self.refreshing.lock().expect("metrics lock");
        for reading in pools {
            let labels = PoolLabels { pool: reading.name };
            let gauge = |family: &Family<PoolLabels, Gauge>, value: usize| {
                family
                    .get_or_create(&labels)
                    .set(i64::try_from(value).unwrap_or(i64::MAX));
            };
            gauge(&self.pools.in_use, reading.in_use);
            gauge(&self.pools.idle, reading.idle);
            gauge(&self.pools.waiting, reading.waiting);
            // The pool counts from its start; the counters advance by what they lack.
            let acquired = self.pools.acquired.get_or_create(&labels);
            acquired.inc_by(reading.acquired.saturating_sub(acquired.get()));
            let waited = self.pools.wait_seconds.get_or_create(&labels);
            waited.inc_by((reading.wait.as_secs_f64() - waited.get()).max(0.0));
        }
    }
}

/// Counts a pool's hand-outs and the time spent waiting for them; the pool keeps one.
#[derive(Debug, Default)]
pub struct WaitCounter {
    acquired: AtomicU64,
    waited_nanos: AtomicU64,
}

impl WaitCounter {
    pub fn record(&self, waited: Duration) {
        self.acquired.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.waited_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Hand-outs so far, and the total wait.
    pub fn read(&self) -> (u64, Duration) {
        (
            self.acquired.load(Ordering::Relaxed),
            Duration::from_nanos(self.waited_nanos.load(Ordering::Relaxed)),
        )
    }
}
