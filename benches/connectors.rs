//! Load benchmark: connectors listed, filtered, read and created over HTTP with 100k labelled
//! connectors in one workspace, and stack components listed by connector with 10k components,
//! on SQLite and on PostgreSQL, with encryption on. A bare axum handler returning a small JSON
//! body, measured in the same run by the same load generator, is the floor of this machine;
//! results are reported as ratios to it.
//!
//!     cargo bench --bench connectors
//!
//! Settings (environment): BENCH_CONNECTORS (100000), BENCH_SECONDS per measurement (5),
//! BENCH_BACKENDS (`sqlite,postgres`), TEST_DATABASE_URL (as for the tests).
//!
//! The server and the floor each run as a child process; the load generator shares the
//! machine's cores with them, as it would on a small host. Last, with the server idle, the same
//! reads are made through the store alone, from this process: what the database allows before
//! any HTTP.

// The tests' fake Azure, for the credentials `/client` issues (its other parts go unused here).
#[allow(dead_code, unused_imports)]
#[path = "../tests/api/fakes/mod.rs"]
mod fakes;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connector_hub::metrics::Metrics;
use connector_hub::store::connectors::{self, ConnectorFilter};
use connector_hub::store::query::{Direction, ListQuery};
use connector_hub::store::workspaces::{self, CallerKey, Session};
use connector_hub::store::{Store, audit};
use fakes::azure::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID, FakeAzure, FakeAzureConfig,
};
use serde_json::{Value, json};
use sqlx::Connection;
use uuid::Uuid;

/// The server's allocator, so that the store's reads measured in this process allocate as they
/// do in the server (SQLite's too: the `override` feature replaces `malloc`). With glibc's
/// allocator they spent a quarter of their time in `malloc` and `free`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CLIENTS: usize = 16;
const CREATE_CLIENTS: usize = 4;
const PASSWORD: &str = "benchmark admin password";
/// The setting that sizes the server's memory for rendered pages of lists.
const LIST_CACHE_BYTES: &str = "CONNECTOR_HUB_LIST_CACHE_BYTES";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A body the size and shape of a page of 20 connectors as the server lists them (not
/// hydrated), each with its owner's summary.
fn page_shaped_body() -> axum::body::Bytes {
    let time = "2026-11-30T18:09:42.528731";
    let owner = json!({
        "id": Uuid::new_v4(), "name": "default", "permission_denied": false,
        "body": {
            "created": time, "updated": time, "active": true, "activation_token": null,
            "full_name": "", "email_opted_in": null, "is_service_account": false,
            "is_admin": true, "default_project_id": null, "avatar_url": null, "description": null,
        },
        "metadata": null, "resources": {},
    });
    let items: Vec<Value> = (0..20)
        .map(|i| {
            json!({
                "id": Uuid::new_v4(), "name": format!("connector-{i:06}"), "permission_denied": false,
                "body": {
                    "created": time, "updated": time, "user_id": owner["id"], "description": "",
                    "connector_type": "azure", "auth_method": "service-principal",
                    "resource_types": ["kubernetes-cluster"], "resource_id": format!("rg-1/aks-{i}"),
                    "supports_instances": false, "expires_at": null, "expires_skew_tolerance": null,
                    "workspace_id": Uuid::new_v4(), "shared": false, "expired": false,
                },
                "metadata": null, "resources": {"user": owner},
            })
        })
        .collect();
    let page =
        json!({"index": 1, "max_size": 20, "total_pages": 5000, "total": 100000, "items": items});
    serde_json::to_vec(&page).unwrap().into()
}

/// The floor: the smallest useful axum service, in its own process. `/floor/page` sends a
/// page-sized body, serialised once: what moving a page's bytes costs, with no work behind it.
async fn serve_floor(port: u16) {
    let page = page_shaped_body();
    let app = axum::Router::new()
        .route(
            "/floor",
            axum::routing::get(|| async {
                axum::Json(json!({"status": "ok", "items": [1, 2, 3]}))
            }),
        )
        .route(
            "/floor/page",
            axum::routing::get(move || {
                let page = page.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        page,
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    axum::serve(listener, app).await.unwrap();
}

/// CPU time the whole machine has spent busy since boot, in every process: the server, the
/// database, the load generator. `/proc/stat` counts in USER_HZ, which is 100 on Linux.
fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat is readable");
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|all_cpus| all_cpus.strip_prefix("cpu "))
        .expect("/proc/stat starts with the total of all CPUs")
        .split_whitespace()
        .map(|v| v.parse().expect("a count of ticks"))
        .collect();
    // user, nice, system, then idle and iowait (not busy), then irq, softirq and steal.
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().map(|&i| ticks[i]).sum();
    Duration::from_millis(busy * 10)
}

struct Measured {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// The machine's busy CPU time over the measurement.
    busy: Duration,
}

impl Measured {
    /// This measurement and `other` as one.
    fn and(mut self, other: Measured) -> Measured {
        self.requests += other.requests;
        self.elapsed += other.elapsed;
        self.busy += other.busy;
        self.latencies.extend(other.latencies);
        self.latencies.sort();
        self
    }

    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// Busy CPU time per operation in µs, summed over every process on the machine. While both
    /// keep the cores busy, a ratio to the floor is close to the floor's CPU per request over
    /// this.
    fn cpu_us_per_request(&self) -> f64 {
        self.busy.as_secs_f64() * 1e6 / self.requests as f64
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index].as_secs_f64() * 1000.0
    }
}

/// The connector the `i`th get reads: spread over all of them, the same sequence over HTTP and
/// through the store.
fn scattered(ids: &[Uuid], i: usize) -> Uuid {
    ids[(i * 7919) % ids.len()]
}

/// What counting one request for `/metrics` costs, alone in this process: the label lookups,
/// the counter and the histogram, as the request middleware does them. Rows across processes
/// differ by more than this, so it bounds what they cannot.
fn counting_cost() -> Duration {
    let metrics = Metrics::new();
    let rounds: u32 = 1_000_000;
    let started = Instant::now();
    for i in 0..rounds {
        metrics.http.observe(
            std::hint::black_box("/api/v1/service_connectors"),
            "GET",
            200,
            Duration::from_micros(u64::from(i % 4096)),
        );
    }
    started.elapsed() / rounds
}

/// Chains, from the benchmark's own process, every audit record the server has written so
/// far, so that the next measurement does not pay for chaining the last one's records.
async fn catch_up_audit_chain(server: &Server, data_dir: &std::path::Path) {
    let url = (!server.database_url.is_empty()).then_some(server.database_url.as_str());
    let store = Store::open(url, data_dir, 2)
        .await
        .expect("the store opens");
    audit::chain_pending(&store, audit::Queued::All, |_| {})
        .await
        .expect("the audit records are chained");
}

/// Runs `clients` loops of `operation(i)` until `duration` has passed.
async fn measure_operation<F, Fut>(clients: usize, duration: Duration, operation: F) -> Measured
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let operation = Arc::new(operation);
    let busy_before = machine_busy();
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let operation = operation.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = client;
            while Instant::now() < deadline {
                let sent = Instant::now();
                operation(i).await;
                latencies.push(sent.elapsed());
                i += clients;
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = start.elapsed();
    let busy = machine_busy() - busy_before;
    latencies.sort();
    Measured {
        requests: latencies.len(),
        elapsed,
        latencies,
        busy,
    }
}

/// Runs `clients` loops sending `request(i)` until `duration` has passed; every reply must be
/// a success.
async fn measure<F>(clients: usize, duration: Duration, request: F) -> Measured
where
    F: Fn(usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    measure_operation(clients, duration, move |i| {
        let sent = request(i).send();
        async move {
            let response = sent.await.expect("the server answers");
            let status = response.status();
            let body = response.bytes().await.expect("the body arrives");
            assert!(
                status.is_success(),
                "{status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    })
    .await
}

/// Turns each side of a comparison gets.
const TURNS: usize = 8;

/// Two sides measured in turns: each side's turns as one measurement, and the ratio `a ÷ b`
/// of each pair of adjacent turns.
struct Comparison {
    a: Measured,
    b: Measured,
    pairs: Vec<f64>,
}

impl Comparison {
    /// `a`'s rate over `b`'s, over all their turns.
    fn ratio(&self) -> f64 {
        self.a.rps() / self.b.rps()
    }

    /// The ratio, with the lowest, median and highest of the pairs' ratios: how far the host's
    /// drift within the comparison moved it.
    fn describe(&self) -> String {
        let mut pairs = self.pairs.clone();
        pairs.sort_by(f64::total_cmp);
        format!(
            "{:.2} (pairs of turns: {:.2} to {:.2}, median {:.2})",
            self.ratio(),
            pairs[0],
            pairs[pairs.len() - 1],
            pairs[pairs.len() / 2],
        )
    }
}

/// Measures `a` and `b` in turns, [`TURNS`] each and `duration * 2 / TURNS` long, in the order
/// a b b a a b b a …: the machine's speed drifts (tables grow, the write-ahead log fills, the
/// host's other tenants come and go), and short turns spread that drift over both sides alike.
/// Each side's requests are made by `side(turn)`; `between` runs after every turn, unmeasured.
async fn compare<A, B, FA, FB>(
    clients: usize,
    duration: Duration,
    (a, b): (A, B),
    between: impl AsyncFn(),
) -> Comparison
where
    A: Fn(usize) -> FA,
    B: Fn(usize) -> FB,
    FA: Fn(usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
    FB: Fn(usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let turn = duration * 2 / TURNS as u32;
    let (mut measured_a, mut measured_b): (Option<Measured>, Option<Measured>) = (None, None);
    let (mut pairs, mut pair_rates) = (Vec::new(), (0.0, 0.0));
    for i in 0..2 * TURNS {
        let on_a = i % 4 == 0 || i % 4 == 3;
        let measured = match on_a {
            true => measure(clients, turn, a(i / 2)).await,
            false => measure(clients, turn, b(i / 2)).await,
        };
        match on_a {
            true => pair_rates.0 = measured.rps(),
            false => pair_rates.1 = measured.rps(),
        }
        if i % 2 == 1 {
            pairs.push(pair_rates.0 / pair_rates.1);
        }
        let side = match on_a {
            true => &mut measured_a,
            false => &mut measured_b,
        };
        *side = Some(match side.take() {
            Some(so_far) => so_far.and(measured),
            None => measured,
        });
        between().await;
    }
    Comparison {
        a: measured_a.expect("measured"),
        b: measured_b.expect("measured"),
        pairs,
    }
}

/// The reads of a get and of pages of the connector list, made straight through the store
/// from this process: the database and sqlx with no HTTP, token or JSON around them. Their
/// rates bound what the server can reach.
async fn measure_store(
    server: &Server,
    data_dir: &std::path::Path,
    user_id: Uuid,
    ids: Arc<Vec<Uuid>>,
    seconds: Duration,
) -> (Measured, Measured, Measured) {
    let url = (!server.database_url.is_empty()).then_some(server.database_url.as_str());
    let store = Store::open(url, data_dir, 16)
        .await
        .expect("the store opens");
    let key = move || CallerKey {
        user_id,
        workspace: None,
        api_key_id: None,
        session: Session {
            id: Uuid::nil(),
            generation: 0,
        },
    };
    let get = {
        let store = store.clone();
        measure_operation(CLIENTS, seconds, move |i| {
            let (store, id) = (store.clone(), scattered(&ids, i));
            async move {
                let mut conn = store.conn().await.unwrap();
                let found = connectors::get_as(&mut conn, &key(), id).await.unwrap();
                assert!(found.is_some_and(|(_, view)| view.is_some()));
            }
        })
        .await
    };
    // A page of 20 in creation order, unfiltered or filtered by one label.
    let query = Arc::new(ListQuery {
        conditions: Vec::new(),
        any: false,
        sort: connectors::FIELDS
            .iter()
            .find(|f| f.name == "created")
            .unwrap(),
        direction: Direction::Desc,
        page: 1,
        size: 20,
    });
    let list = move |store: Store, filter: ConnectorFilter| {
        let query = query.clone();
        async move {
            let mut conn = store.conn().await.unwrap();
            let caller = workspaces::caller_in_workspace(&mut conn, &key())
                .await
                .unwrap()
                .expect("the caller exists");
            let workspace = caller.workspace_id.expect("a default workspace");
            let page = connectors::list(&mut conn, workspace, user_id, &query, &filter, false)
                .await
                .unwrap();
            assert!(page.total > 0);
            assert_eq!(page.items.len() as i64, page.total.min(20));
        }
    };
    let page = {
        let (store, list) = (store.clone(), list.clone());
        measure_operation(CLIENTS, seconds, move |_| {
            list(store.clone(), ConnectorFilter::default())
        })
        .await
    };
    let label = measure_operation(CLIENTS, seconds, move |i| {
        let filter = ConnectorFilter {
            resource_type: None,
            labels: vec![("team".to_owned(), Some(format!("t{}", i % 100)))],
        };
        list(store.clone(), filter)
    })
    .await;
    (get, page, label)
}

const ENVIRONMENTS: [&str; 4] = ["dev", "prod", "staging", "test"];

fn connector(i: usize) -> Value {
    let (resource_types, resource_id) = match i % 5 {
        0 => (
            json!(["blob-container"]),
            json!(format!("az://container-{i}")),
        ),
        1 => (
            json!(["kubernetes-cluster"]),
            json!(format!("rg-{}/aks-{i}", i % 10)),
        ),
        2 => (json!(["docker-registry"]), json!(format!("registry{i}"))),
        3 => (json!(["azure-generic"]), json!("Benchmark subscription")),
        _ => (json!([]), Value::Null),
    };
    json!({
        "name": format!("connector-{i:06}"),
        "connector_type": "azure",
        "auth_method": "service-principal",
        "resource_types": resource_types,
        "resource_id": resource_id,
        "configuration": {
            "tenant_id": "5e1e2c3a-0000-4000-8000-000000000001",
            "client_id": "5e1e2c3a-0000-4000-8000-000000000002",
            "client_secret": format!("secret-{i}"),
        },
        "labels": {"env": ENVIRONMENTS[i % 4], "team": format!("t{}", i % 100)},
    })
}

struct Server {
    child: Child,
    base: String,
    pid: u32,
    database_url: String,
    /// The PostgreSQL schema this run created, dropped at the end.
    schema: Option<String>,
}

impl Server {
    /// What PostgreSQL does by itself within minutes of a bulk load: autovacuum gives the
    /// planner statistics and vacuums the new rows, and a checkpoint writes the dirty pages out.
    /// Done here, none of it runs during a measurement (it did: listing 100k right after the
    /// load measured 0.66× of listing 1k over 5 s, 0.81× over 30 s).
    async fn settle(&self) {
        if self.schema.is_some() {
            let mut conn = sqlx::PgConnection::connect(&self.database_url)
                .await
                .unwrap();
            for statement in ["VACUUM ANALYZE", "CHECKPOINT"] {
                sqlx::query(statement).execute(&mut conn).await.unwrap();
            }
        }
    }

    /// Starts the peak RSS afresh from the current RSS (Linux's `clear_refs`). Creating the
    /// admin and logging in each hash a password with argon2id, which briefly takes 19 MiB;
    /// the peak that matters here is the one while holding and serving the connectors.
    fn reset_peak_rss(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5")
            .expect("the peak RSS can be reset");
    }

    /// Stops the server and drops its PostgreSQL schema.
    async fn remove(self) {
        let (url, schema) = (self.database_url.clone(), self.schema.clone());
        drop(self);
        if let Some(schema) = schema {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }

    /// A field of `/proc/PID/status`, in KiB.
    fn status_kib(&self, name: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    fn rss_kib(&self) -> (u64, u64) {
        (self.status_kib("VmRSS:"), self.status_kib("VmHWM:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
        let _ = self.child.wait();
    }
}

async fn wait_until_up(client: &reqwest::Client, url: &str) {
    for _ in 0..600 {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not come up");
}

async fn start_server(
    backend: &str,
    data_dir: &std::path::Path,
    env: &[(&str, &str)],
    client: &reqwest::Client,
) -> Server {
    let mut database_url = String::new();
    let mut bench_schema = None;
    if backend == "postgres" {
        let base = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&base)
            .await
            .expect("PostgreSQL is reachable");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .unwrap();
        database_url = format!("{base}?options=-c%20search_path%3D{schema}");
        bench_schema = Some(schema);
    }
    let mut server = spawn_server(data_dir, &database_url, (env, &[]), client).await;
    server.schema = bench_schema;
    server
}

/// Starts the server binary on the SQLite database in `data_dir`, or on `database_url` when it
/// is not empty, with `env` added to its environment.
async fn spawn_server(
    data_dir: &std::path::Path,
    database_url: &str,
    (env, args): (&[(&str, &str)], &[&str]),
    client: &reqwest::Client,
) -> Server {
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_connector-hub"));
    command
        .arg("serve")
        .args(args)
        .env("CONNECTOR_HUB_BIND", format!("127.0.0.1:{port}"))
        .env("CONNECTOR_HUB_DATA_DIR", data_dir)
        .env("CONNECTOR_HUB_ADMIN_PASSWORD", PASSWORD)
        .env(
            "CONNECTOR_HUB_ENCRYPTION_KEY",
            "YmVuY2htYXJrIGtleSBvZiAzMiBieXRlcyBsb25nIS4=",
        )
        .env("CONNECTOR_HUB_LOG", "warn")
        .env_remove("DATABASE_URL")
        .envs(env.iter().copied())
        .stdout(Stdio::null());
    if !database_url.is_empty() {
        command.env("DATABASE_URL", database_url);
    }
    let child = command.spawn().expect("the server binary starts");
    let pid = child.id();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(client, &format!("{base}/health")).await;
    Server {
        child,
        base,
        pid,
        database_url: database_url.to_owned(),
        schema: None,
    }
}

/// The page the benchmark lists: the newest 20, as the zenml client asks for them.
fn page_url(base: &str) -> String {
    format!(
        "{base}/api/v1/service_connectors?hydrate=False&expand_secrets=False&sort_by=desc:created&logical_operator=and&page=1&size=20"
    )
}

/// The `i`th request's page filtered by label: one of 100 teams, each on 1% of the connectors.
fn label_page_url(base: &str, i: usize) -> String {
    format!(
        "{base}/api/v1/service_connectors?hydrate=False&expand_secrets=False&labels_str=team%3Dt{}&page=1&size=20",
        i % 100
    )
}

/// Sends `request` and reads its JSON reply.
async fn json_reply(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

async fn login(client: &reqwest::Client, base: &str) -> String {
    let form = [("username", "default"), ("password", PASSWORD)];
    let reply = json_reply(client.post(format!("{base}/api/v1/login")).form(&form)).await;
    reply["access_token"].as_str().unwrap().to_owned()
}

/// Creates connectors `from..to` with 16 clients; returns their ids.
async fn load(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    from: usize,
    to: usize,
) -> Vec<Uuid> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(from));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, base, token, next) = (
            client.clone(),
            base.to_owned(),
            token.to_owned(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut ids: Vec<Uuid> = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= to {
                    return ids;
                }
                let reply = json_reply(
                    client
                        .post(format!("{base}/api/v1/service_connectors"))
                        .bearer_auth(&token)
                        .json(&connector(i)),
                )
                .await;
                ids.push(reply["id"].as_str().expect("created").parse().unwrap());
            }
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await.unwrap());
    }
    ids
}

/// How many stack components the benchmark loads, and over how many connectors they spread.
const COMPONENTS: usize = 10_000;
const LINKED_CONNECTORS: usize = 10;

/// The ids of `LINKED_CONNECTORS` of the loaded connectors that reach every resource type
/// (those whose index is 4 modulo 5, which name no resource types).
async fn multi_type_connectors(client: &reqwest::Client, base: &str, token: &str) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for n in 0..LINKED_CONNECTORS {
        let name = format!("connector-{:06}", 5 * n + 4);
        let found = json_reply(
            client
                .get(format!(
                    "{base}/api/v1/service_connectors?name=equals:{name}"
                ))
                .bearer_auth(token),
        )
        .await;
        ids.push(found["items"][0]["id"].as_str().unwrap().parse().unwrap());
    }
    ids
}

/// Creates `COMPONENTS` Azure artifact stores with 16 clients, each linked to one of
/// `connectors` in turn.
async fn load_components(client: &reqwest::Client, base: &str, token: &str, connectors: &[Uuid]) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let connectors = Arc::new(connectors.to_vec());
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, base, token, next, connectors) = (
            client.clone(),
            base.to_owned(),
            token.to_owned(),
            next.clone(),
            connectors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= COMPONENTS {
                    return;
                }
                let component = json!({
                    "name": format!("store-{i:06}"),
                    "type": "artifact_store",
                    "flavor": "azure",
                    "configuration": {"path": format!("az://data-{}", i % 100)},
                    "connector": connectors[i % connectors.len()],
                });
                json_reply(
                    client
                        .post(format!("{base}/api/v1/components"))
                        .bearer_auth(&token)
                        .json(&component),
                )
                .await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

struct Row {
    name: String,
    measured: Measured,
    clients: usize,
}

fn print_rows(title: &str, floor: &Measured, rows: &[Row]) {
    println!("\n### {title}\n");
    println!(
        "| operation | clients | requests/s | ratio to floor | p50 ms | p99 ms | machine CPU µs per request |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        let m = &row.measured;
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} |",
            row.name,
            row.clients,
            m.rps(),
            m.rps() / floor.rps(),
            m.percentile_ms(0.5),
            m.percentile_ms(0.99),
            m.cpu_us_per_request(),
        );
    }
}

fn main() {
    if let Ok(port) = std::env::var("BENCH_FLOOR_PORT") {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(serve_floor(port.parse().unwrap()));
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let total: usize = env_or("BENCH_CONNECTORS", 100_000);
    let seconds = Duration::from_secs(env_or("BENCH_SECONDS", 5));
    let backends: String = env_or("BENCH_BACKENDS", "sqlite,postgres".to_owned());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();

    let floor_port = free_port();
    let mut floor_process = Command::new(std::env::current_exe().unwrap())
        .env("BENCH_FLOOR_PORT", floor_port.to_string())
        .spawn()
        .unwrap();
    let floor_url = format!("http://127.0.0.1:{floor_port}/floor");
    wait_until_up(&client, &floor_url).await;
    let floor_page_url = format!("{floor_url}/page");
    let floor = {
        let client = client.clone();
        measure(CLIENTS, seconds, move |_| client.get(&floor_url)).await
    };
    let floor_page = {
        let client = client.clone();
        measure(CLIENTS, seconds, move |_| client.get(&floor_page_url)).await
    };
    let _ = floor_process.kill();
    let _ = floor_process.wait();
    println!(
        "floor (bare axum JSON handler): {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, machine CPU {:.0} µs per request",
        floor.rps(),
        floor.percentile_ms(0.5),
        floor.percentile_ms(0.99),
        floor.cpu_us_per_request(),
    );
    println!(
        "floor with a page-sized body ({} bytes, serialised once): {:.0} requests/s ({:.2} of the floor), machine CPU {:.0} µs per request",
        page_shaped_body().len(),
        floor_page.rps(),
        floor_page.rps() / floor.rps(),
        floor_page.cpu_us_per_request(),
    );

    for backend in backends.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        let data_dir = tempfile::tempdir().unwrap();
        // A fake Azure on loopback (the tests' own), for the credentials `/client` issues.
        let azure = FakeAzure::start(FakeAzureConfig::default()).await;
        let cloud = azure.write_cloud_file(data_dir.path());
        let azure_env = [
            ("CONNECTOR_HUB_AZURE_CLOUD_CONFIG", cloud.to_str().unwrap()),
            ("CONNECTOR_HUB_AZURE_CUSTOM_CLOUD_ONLY", "true"),
        ];
        let server = start_server(backend, data_dir.path(), &azure_env, &client).await;
        let token = login(&client, &server.base).await;
        server.reset_peak_rss();
        let base = server.base.clone();
        let auth = format!("Bearer {token}");
        let list = |client: &reqwest::Client, base: &str| {
            let (client, url, auth) = (client.clone(), page_url(base), auth.clone());
            move |_| client.get(&url).header("authorization", &auth)
        };
        let label_pages = |client: &reqwest::Client, base: &str| {
            let (client, base, auth) = (client.clone(), base.to_owned(), auth.clone());
            move |i| {
                client
                    .get(label_page_url(&base, i))
                    .header("authorization", &auth)
            }
        };

        let started = Instant::now();
        let mut ids = load(&client, &base, &token, 0, 1_000.min(total)).await;
        let mut loaded_in = started.elapsed();
        server.settle().await;
        let list_1k = measure(CLIENTS, seconds, list(&client, &base)).await;
        let started = Instant::now();
        ids.extend(load(&client, &base, &token, 1_000.min(total), total).await);
        loaded_in += started.elapsed();
        server.settle().await;
        let (rss_loaded, _) = server.rss_kib();

        let list_full = measure(CLIENTS, seconds, list(&client, &base)).await;
        let label = measure(CLIENTS, seconds, label_pages(&client, &base)).await;
        // The dashboard's connectors page, as a signed-in browser loads it: its session cookie
        // holds the same token.
        let dashboard = {
            let (client, base) = (client.clone(), base.clone());
            let cookie = format!("connector_hub_session={token}");
            let page = client
                .get(format!("{base}/"))
                .header("cookie", &cookie)
                .send()
                .await;
            let page = page.unwrap().text().await.unwrap();
            assert!(
                page.contains("Service connectors"),
                "the dashboard shows the connectors"
            );
            measure(CLIENTS, seconds, move |_| {
                client.get(format!("{base}/")).header("cookie", &cookie)
            })
            .await
        };
        let by_type = {
            let (client, auth, base) = (client.clone(), auth.clone(), base.clone());
            measure(CLIENTS, seconds, move |_| {
                client
                    .get(format!("{base}/api/v1/service_connectors?hydrate=False&expand_secrets=False&resource_type=kubernetes-cluster&page=1&size=20"))
                    .header("authorization", &auth)
            })
            .await
        };
        // A second server process on the same database that keeps no rendered pages: what a
        // page costs when it is rendered, as the first request after a change finds it.
        let rendering = spawn_server(
            data_dir.path(),
            &server.database_url,
            (&[(LIST_CACHE_BYTES, "0")], &[]),
            &client,
        )
        .await;
        let rendered_list = measure(CLIENTS, seconds, list(&client, &rendering.base)).await;
        let rendered_label = measure(CLIENTS, seconds, label_pages(&client, &rendering.base)).await;
        drop(rendering);
        // A second process on the same database that neither counts requests nor serves
        // `/metrics`: what counting costs the cheapest request served from the database's data.
        let unmetered = spawn_server(
            data_dir.path(),
            &server.database_url,
            (&[], &["--unmetered-benchmark-baseline"]),
            &client,
        )
        .await;
        let metering = compare(
            CLIENTS,
            seconds,
            (|_| list(&client, &base), |_| list(&client, &unmetered.base)),
            async || {},
        )
        .await;
        drop(unmetered);
        let ids = Arc::new(ids);
        // As the zenml client reads a connector, without its secret values.
        let get = {
            let (client, auth, base, ids) =
                (client.clone(), auth.clone(), base.clone(), ids.clone());
            measure(CLIENTS, seconds, move |i| {
                let id = scattered(&ids, i);
                client
                    .get(format!(
                        "{base}/api/v1/service_connectors/{id}?expand_secrets=false"
                    ))
                    .header("authorization", &auth)
            })
            .await
        };
        // With its secret values (the API's default): each answer writes its audit record.
        let get_expanded = {
            let (client, auth, base, ids) =
                (client.clone(), auth.clone(), base.clone(), ids.clone());
            measure(CLIENTS, seconds, move |i| {
                let id = scattered(&ids, i);
                client
                    .get(format!("{base}/api/v1/service_connectors/{id}"))
                    .header("authorization", &auth)
            })
            .await
        };
        // Creates and credentials on two new processes on the same database, alike but for
        // the audit log: what it costs. (The first process, with its history of this run,
        // is left out of it.)
        let audited = spawn_server(
            data_dir.path(),
            &server.database_url,
            (&azure_env, &[]),
            &client,
        )
        .await;
        let unaudited = spawn_server(
            data_dir.path(),
            &server.database_url,
            (&azure_env, &["--unaudited-benchmark-baseline"]),
            &client,
        )
        .await;
        let creates = |base: &str, first: usize| {
            let (client, auth, base) = (client.clone(), auth.clone(), base.to_owned());
            move |i| {
                client
                    .post(format!("{base}/api/v1/service_connectors"))
                    .header("authorization", &auth)
                    .json(&connector(first + i))
            }
        };
        // Records left to chain after a turn are chained from this process before the next,
        // so that neither side pays for chaining the other's; the expanded gets' first.
        let catch_up = async || catch_up_audit_chain(&server, data_dir.path()).await;
        catch_up().await;
        let creating = compare(
            CREATE_CLIENTS,
            seconds,
            (
                |turn| creates(&audited.base, 10_000_000 + turn * 1_000_000),
                |turn| creates(&unaudited.base, 20_000_000 + turn * 1_000_000),
            ),
            &catch_up,
        )
        .await;
        let azure_connector = json_reply(
            client
                .post(format!("{base}/api/v1/service_connectors"))
                .header("authorization", &auth)
                .json(&json!({
                    "name": "azure-for-clients",
                    "connector_type": "azure",
                    "auth_method": "service-principal",
                    "resource_types": ["azure-generic"],
                    "configuration": {
                        "tenant_id": DEFAULT_TENANT_ID,
                        "client_id": DEFAULT_CLIENT_ID,
                        "client_secret": DEFAULT_CLIENT_SECRET,
                    },
                })),
        )
        .await;
        let azure_id = azure_connector["id"].as_str().unwrap().to_owned();
        let clients = |base: &str| {
            let (client, auth) = (client.clone(), auth.clone());
            let url = format!(
                "{base}/api/v1/service_connectors/{azure_id}/client?resource_type=azure-generic"
            );
            move |_| client.get(&url).header("authorization", &auth)
        };
        let issuing = compare(
            CLIENTS,
            seconds,
            (|_| clients(&audited.base), |_| clients(&unaudited.base)),
            &catch_up,
        )
        .await;
        drop(audited);
        drop(unaudited);
        // Deletes take connectors from the end of the load, far from the ones components use.
        // Each delete takes the next connector from the end, however the clients interleave.
        let deleted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let delete = {
            let (client, auth, base, ids, deleted) = (
                client.clone(),
                auth.clone(),
                base.clone(),
                ids.clone(),
                deleted.clone(),
            );
            measure(CREATE_CLIENTS, seconds, move |_| {
                let taken = deleted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let id = ids[ids.len() - 1 - taken];
                client
                    .delete(format!("{base}/api/v1/service_connectors/{id}"))
                    .header("authorization", &auth)
            })
            .await
        };
        // The connectors deleted go from the ids read later.
        let deleted = deleted.load(std::sync::atomic::Ordering::Relaxed);
        let ids = Arc::new(ids[..ids.len() - deleted].to_vec());
        let linked = multi_type_connectors(&client, &base, &token).await;
        load_components(&client, &base, &token, &linked).await;
        server.settle().await;
        let by_connector = {
            let (client, auth, base) = (client.clone(), auth.clone(), base.clone());
            let linked = Arc::new(linked);
            measure(CLIENTS, seconds, move |i| {
                client
                    .get(format!(
                        "{base}/api/v1/components?hydrate=False&connector_id={}&page=1&size=20",
                        linked[i % linked.len()]
                    ))
                    .header("authorization", &auth)
            })
            .await
        };
        let audit_costs = (creating.describe(), issuing.describe());
        let metrics_cost = metering.describe();
        let page_cpu_us = metering.a.cpu_us_per_request();
        let (rss_now, rss_peak) = server.rss_kib();
        // File-backed pages are mostly the binary's own code; anonymous ones are the heap.
        let (rss_anon, rss_file) = (server.status_kib("RssAnon:"), server.status_kib("RssFile:"));
        print_rows(
            &format!("{backend}: {total} connectors"),
            &floor,
            &[
                Row {
                    name: "list a page of 20 (1k connectors)".into(),
                    measured: list_1k,
                    clients: CLIENTS,
                },
                Row {
                    name: format!("list a page of 20 ({total} connectors)"),
                    measured: list_full,
                    clients: CLIENTS,
                },
                Row {
                    name: format!("list a page of 20 ({total} connectors), rendered every time"),
                    measured: rendered_list,
                    clients: CLIENTS,
                },
                Row {
                    name: format!("dashboard: the connectors page ({total} connectors)"),
                    measured: dashboard,
                    clients: CLIENTS,
                },
                Row {
                    name: "filter by label (1% match)".into(),
                    measured: label,
                    clients: CLIENTS,
                },
                Row {
                    name: "filter by label (1% match), rendered every time".into(),
                    measured: rendered_label,
                    clients: CLIENTS,
                },
                Row {
                    name: "filter by resource type".into(),
                    measured: by_type,
                    clients: CLIENTS,
                },
                Row {
                    name: format!("list a page of 20 ({total} connectors), counted for `/metrics`"),
                    measured: metering.a,
                    clients: CLIENTS,
                },
                Row {
                    name: format!("list a page of 20 ({total} connectors), not counted (baseline)"),
                    measured: metering.b,
                    clients: CLIENTS,
                },
                Row {
                    name: "get by id".into(),
                    measured: get,
                    clients: CLIENTS,
                },
                Row {
                    name: "get by id, secrets expanded (audited)".into(),
                    measured: get_expanded,
                    clients: CLIENTS,
                },
                Row {
                    name: "create (audited)".into(),
                    measured: creating.a,
                    clients: CREATE_CLIENTS,
                },
                Row {
                    name: "create, audit log off (baseline)".into(),
                    measured: creating.b,
                    clients: CREATE_CLIENTS,
                },
                Row {
                    name: "`/client`, azure-generic (audited)".into(),
                    measured: issuing.a,
                    clients: CLIENTS,
                },
                Row {
                    name: "`/client`, azure-generic, audit log off (baseline)".into(),
                    measured: issuing.b,
                    clients: CLIENTS,
                },
                Row {
                    name: "delete".into(),
                    measured: delete,
                    clients: CREATE_CLIENTS,
                },
                Row {
                    name: format!(
                        "list components by connector ({} of {COMPONENTS} components)",
                        COMPONENTS / LINKED_CONNECTORS
                    ),
                    measured: by_connector,
                    clients: CLIENTS,
                },
            ],
        );
        println!(
            "\nthe audit log's cost, audited rate ÷ rate without it: creates {}; `/client` {}",
            audit_costs.0, audit_costs.1,
        );
        let counting = counting_cost();
        println!(
            "metrics' cost, a page's rate counted ÷ not: {metrics_cost}; \
             counting one request takes {:.0} ns in process, {:.2}% of a counted page's machine \
             CPU ({:.0} µs)",
            counting.as_nanos(),
            100.0 * counting.as_secs_f64() / (page_cpu_us * 1e-6),
            page_cpu_us,
        );
        println!(
            "\nloaded {total} connectors in {:.1} s ({:.0}/s with {CLIENTS} clients); server RSS {:.1} MiB after loading, {:.1} MiB now ({:.1} anonymous, {:.1} file-backed), peak {:.1} MiB since login",
            loaded_in.as_secs_f64(),
            total as f64 / loaded_in.as_secs_f64(),
            rss_loaded as f64 / 1024.0,
            rss_now as f64 / 1024.0,
            rss_anon as f64 / 1024.0,
            rss_file as f64 / 1024.0,
            rss_peak as f64 / 1024.0,
        );
        // The server is idle from here on; the store's reads run in this process.
        let caller = json_reply(
            client
                .get(format!("{base}/api/v1/current-user"))
                .header("authorization", &auth),
        )
        .await;
        let user_id = caller["id"].as_str().unwrap().parse().unwrap();
        let (store_get, store_list, store_label) =
            measure_store(&server, data_dir.path(), user_id, ids, seconds).await;
        print_rows(
            &format!("{backend}: the same reads through the store alone, no HTTP"),
            &floor,
            &[
                Row {
                    name: format!("caller, then a page of 20 ({total} connectors)"),
                    measured: store_list,
                    clients: CLIENTS,
                },
                Row {
                    name: "caller, then a page filtered by label (1% match)".into(),
                    measured: store_label,
                    clients: CLIENTS,
                },
                Row {
                    name: "caller and connector with its secret (one query)".into(),
                    measured: store_get,
                    clients: CLIENTS,
                },
            ],
        );
        server.remove().await;
    }
}
