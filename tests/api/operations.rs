//! What operators rely on to run the server: `/metrics` in the Prometheus text format and who
//! may read it, `/ready` following the database, the image's `health` probe, and a start-up
//! that stays quiet about implicit credentials while implicit authentication is off.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::azure::{estate, register, service_principal, verify_stored};
use crate::fakes::azure::{DEFAULT_CLIENT_SECRET, FakeAzure};
use crate::harness::{Backend, TestApp, on_both_backends};
use crate::process::{ServerProcess, binary};

/// One sample of a scrape: its family's full name and labels, and the value.
type Samples = BTreeMap<String, f64>;

/// Parses a scrape in the text format, failing on any line that is not a comment or a sample,
/// on a sample whose family has no `# TYPE`, or on a missing `# EOF`.
fn parse_scrape(text: &str) -> Samples {
    assert!(text.ends_with("# EOF\n"), "no # EOF terminator:\n{text}");
    let mut typed = Vec::new();
    let mut samples = Samples::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "info"].contains(&kind),
                "unknown type in {line}"
            );
            typed.push(family.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") || line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample is 'series value'");
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "not a metric name in {line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "malformed labels in {line}"
            );
        }
        assert!(
            typed.iter().any(|family| name.starts_with(family.as_str())),
            "{name} has no # TYPE"
        );
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number in {line}"));
        samples.insert(series.to_owned(), value);
    }
    samples
}

async fn scrape(app: &TestApp) -> Samples {
    let response = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    parse_scrape(&response.text().await.unwrap())
}

/// The value of `series` (absent counts as 0), and how much it moved between two scrapes.
fn value(samples: &Samples, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

fn moved(before: &Samples, after: &Samples, series: &str) -> f64 {
    value(after, series) - value(before, series)
}

async fn metrics_move_with_requests_azure_calls_and_logins(backend: Backend) {
    let azure = FakeAzure::start(estate()).await;
    let app = TestApp::spawn_with_azure(backend, &azure, |_| {}).await;
    let id = register(&app, service_principal("az", DEFAULT_CLIENT_SECRET)).await;
    let before = scrape(&app).await;

    for _ in 0..3 {
        app.get(&format!("/api/v1/service_connectors/{id}"), &app.admin)
            .await
            .ok();
    }
    let missing = uuid::Uuid::new_v4();
    app.get(&format!("/api/v1/service_connectors/{missing}"), &app.admin)
        .await;
    assert_eq!(
        app.try_login("default", "wrong password").await.status,
        StatusCode::UNAUTHORIZED
    );
    let verified = verify_stored(&app, &id).await;
    assert_eq!(verified["error"], Value::Null, "{verified}");
    verify_stored(&app, &id).await;
    let client = format!(
        "/api/v1/service_connectors/{id}/client?resource_type=kubernetes-cluster&resource_id=rg1/c1"
    );
    app.get(&client, &app.admin).await.ok();
    app.audit.chain_now().await.unwrap();
    let after = scrape(&app).await;

    // Requests by route template, method and status: never the raw path.
    let route = "/api/v1/service_connectors/{connector_id}";
    let requests = |status: u16| {
        format!(
            "connector_hub_http_requests_total{{route=\"{route}\",method=\"GET\",status=\"{status}\"}}"
        )
    };
    assert_eq!(moved(&before, &after, &requests(200)), 3.0, "{after:#?}");
    assert_eq!(moved(&before, &after, &requests(404)), 1.0);
    let latency = format!(
        "connector_hub_http_request_duration_seconds_count{{route=\"{route}\",method=\"GET\"}}"
    );
    assert_eq!(moved(&before, &after, &latency), 4.0);
    assert!(
        after
            .keys()
            .all(|series| !series.contains(&id) && !series.contains(&missing.to_string())),
        "an id became a label"
    );

    // Every Azure service the verify and the cluster client reached, with their outcomes.
    for service in ["AAD", "ARM", "Blob", "AKS"] {
        let calls =
            format!("connector_hub_azure_calls_total{{service=\"{service}\",outcome=\"success\"}}");
        assert!(
            moved(&before, &after, &calls) >= 1.0,
            "no {service} call in {after:#?}"
        );
        let timed =
            format!("connector_hub_azure_call_duration_seconds_count{{service=\"{service}\"}}");
        assert!(moved(&before, &after, &timed) >= 1.0, "{service} untimed");
    }
    // The second verify found its tokens in the cache.
    let hits = "connector_hub_token_cache_lookups_total{result=\"hit\"}";
    let misses = "connector_hub_token_cache_lookups_total{result=\"miss\"}";
    assert!(moved(&before, &after, misses) >= 1.0);
    assert!(moved(&before, &after, hits) >= 1.0);
    // Reading the connector decrypts its secret; registering it encrypted it.
    assert!(moved(&before, &after, "connector_hub_decryptions_total") >= 3.0);
    assert!(value(&after, "connector_hub_encryptions_total") >= 1.0);
    assert_eq!(
        moved(
            &before,
            &after,
            "connector_hub_logins_refused_total{outcome=\"failed\"}"
        ),
        1.0
    );
    // The failed login and the verifies and credential were recorded, and chained here.
    assert!(moved(&before, &after, "connector_hub_audit_records_total") >= 4.0);
    assert!(
        after
            .keys()
            .any(|s| s.starts_with("connector_hub_db_pool_connections_idle{pool=")),
        "{after:#?}"
    );
    assert!(
        after
            .keys()
            .any(|s| s.starts_with("connector_hub_db_pool_acquires_total{pool="))
    );
    assert_eq!(
        value(
            &after,
            &format!(
                "connector_hub_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );
    app.stop().await;
}

async fn rate_limited_logins_are_counted(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| config.login_max_failures_per_user = 2).await;
    for _ in 0..3 {
        app.try_login("default", "wrong password").await;
    }
    let after = scrape(&app).await;
    assert_eq!(
        value(
            &after,
            "connector_hub_logins_refused_total{outcome=\"failed\"}"
        ),
        2.0
    );
    assert_eq!(
        value(
            &after,
            "connector_hub_logins_refused_total{outcome=\"rate_limited\"}"
        ),
        1.0
    );
    app.stop().await;
}

/// Under the main address: server admins and the scrape token, nobody else. With
/// `--metrics-bind`: on that address to anyone, and no longer under the main one.
async fn only_admins_and_the_scrape_token_read_metrics(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.metrics_token = Some("scrape-token-0123456789".into());
    })
    .await;
    let status = |token: Option<&str>| {
        let request = app.client.get(app.url("/metrics"));
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(status(None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status(Some("scrape-token-0123456788")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(Some("scrape-token-0123456789")).await,
        StatusCode::OK
    );
    let member = app.create_user("member", "default", "admin").await;
    assert_eq!(status(Some(&member)).await, StatusCode::FORBIDDEN);
    assert_eq!(status(Some(&app.admin)).await, StatusCode::OK);
    app.stop().await;

    let app = TestApp::spawn_with(backend, |config| {
        config.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    assert_eq!(
        status_of(&app, "/metrics", &app.admin).await,
        StatusCode::NOT_FOUND
    );
    let separate = app.metrics_addr.expect("a metrics address");
    let response = reqwest::get(format!("http://{separate}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    parse_scrape(&response.text().await.unwrap());
    app.stop().await;
}

async fn status_of(app: &TestApp, path: &str, token: &str) -> StatusCode {
    app.get(path, token).await.status
}

async fn ready_and_the_health_probe(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ready = app.get("/ready", "").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(
        ready.body,
        json!({"status": "ready", "database": "ok", "keyring": "ok"})
    );
    let probe = |url: String| async move {
        tokio::process::Command::new(binary())
            .args(["health", "--url", &url])
            .env_clear()
            .output()
            .await
            .unwrap()
    };
    let answered = probe(app.url("/ready")).await;
    assert!(answered.status.success(), "{answered:?}");
    app.stop().await;
    let refused = probe(format!("http://{}/ready", crate::harness::CLOSED_PORT)).await;
    assert!(!refused.status.success());
}

/// A relay in front of PostgreSQL that a test can cut and restore, as a database restart or a
/// network partition would.
struct Relay {
    address: SocketAddr,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let relay = Relay {
            address,
            tasks: Arc::default(),
        };
        relay.serve(listener, target);
        relay
    }

    fn serve(&self, listener: TcpListener, target: SocketAddr) {
        let tasks = self.tasks.clone();
        let accepting = tasks.clone();
        tasks.lock().unwrap().spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                accepting.lock().unwrap().spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
    }

    /// Closes the listener and every relayed connection.
    fn cut(&self) {
        self.tasks.lock().unwrap().abort_all();
    }

    async fn restore(&self, target: SocketAddr) {
        let listener = TcpListener::bind(self.address).await.unwrap();
        self.serve(listener, target);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_503_while_postgresql_is_unreachable_and_200_after() {
    let direct = TestApp::spawn(Backend::Postgres).await;
    let url = reqwest::Url::parse(direct.db.url.as_deref().unwrap()).unwrap();
    let host = url.host_str().unwrap();
    let target = tokio::net::lookup_host((host, url.port().unwrap_or(5432)))
        .await
        .unwrap()
        .next()
        .unwrap();
    let relay = Relay::start(target).await;
    let mut relayed = url.clone();
    relayed.set_host(Some("127.0.0.1")).unwrap();
    relayed.set_port(Some(relay.address.port())).unwrap();
    let app = direct
        .spawn_peer(|config| config.storage.database_url = Some(relayed.to_string()))
        .await;
    assert_eq!(app.get("/ready", "").await.status, StatusCode::OK);

    relay.cut();
    let down = app.get("/ready", "").await;
    assert_eq!(
        down.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        down.body
    );
    assert_eq!(down.body["status"], "not ready");
    assert_ne!(down.body["database"], "ok");
    // Liveness is not readiness: the process still serves.
    assert_eq!(app.get("/health", "").await.status, StatusCode::OK);

    relay.restore(target).await;
    let up = app.get("/ready", "").await;
    assert_eq!(up.status, StatusCode::OK, "{:?}", up.body);
    app.stop().await;
    direct.stop().await;
}

/// With implicit authentication off (the default), nothing about the server's own Azure
/// identity is probed or logged at start-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_is_quiet_about_implicit_credentials_while_they_are_off() {
    let data_dir = tempfile::tempdir().unwrap();
    let trace = "trace,azure_identity=trace,azure_core=trace,hyper=info,h2=info,sqlx=info";
    let identity_env = [
        ("CONNECTOR_HUB_LOG", trace),
        // Where a managed identity would be found, were anything to look.
        ("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token"),
        ("IDENTITY_HEADER", "header"),
        ("MSI_ENDPOINT", "http://127.0.0.1:9/msi/token"),
    ];
    let mut server = ServerProcess::start(data_dir.path(), &identity_env).await;
    let logged = server.logged_so_far();
    let identity_words = [
        "managed identity",
        "managedidentity",
        "imds",
        "workload identity",
        "azure cli",
        "azure_identity",
    ];
    for entry in &logged {
        let text = entry.to_string().to_lowercase();
        assert!(
            !identity_words.iter().any(|word| text.contains(word)),
            "logged about implicit credentials: {entry}"
        );
    }
    assert!(!logged.is_empty(), "the trace log was read");
}

/// Each verify of a `kubernetes` or `docker` connector is one check of its endpoint, counted
/// by connector type and outcome, and timed.
async fn checks_of_user_named_endpoints_are_counted(backend: Backend) {
    use crate::docker_type::{ADMIN_PASSWORD, one_registry, registry_connector};
    use crate::kubernetes_type::{one_cluster, token_connector};
    let cluster = one_cluster().await;
    let registry = one_registry().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("registry-ca.pem");
    std::fs::write(&ca_file, registry.ca_pem()).unwrap();
    let app = TestApp::spawn_with(backend, |c| {
        c.user_endpoints.trusted_ca_file = Some(ca_file.clone());
    })
    .await;
    let login_server = registry.registry_login_server("reg1");
    let admin_token = cluster.cluster_admin_token("c1");
    let connectors = [
        token_connector(&cluster, "k8s-ok", &admin_token),
        token_connector(&cluster, "k8s-refused", "not-a-token"),
        registry_connector("docker-ok", &login_server, ADMIN_PASSWORD),
        registry_connector("docker-refused", &login_server, "nope"),
    ];
    let mut ids = Vec::new();
    for connector in connectors {
        ids.push(register(&app, connector).await);
    }
    let before = scrape(&app).await;
    for id in &ids {
        verify_stored(&app, id).await;
    }
    let after = scrape(&app).await;
    for connector_type in ["kubernetes", "docker"] {
        for outcome in ["success", "error"] {
            let series = format!(
                "connector_hub_target_calls_total{{connector_type=\"{connector_type}\",outcome=\"{outcome}\"}}"
            );
            assert_eq!(moved(&before, &after, &series), 1.0, "{series}");
        }
        let timed = format!(
            "connector_hub_target_call_duration_seconds_count{{connector_type=\"{connector_type}\"}}"
        );
        assert_eq!(moved(&before, &after, &timed), 2.0, "{timed}");
    }
    app.stop().await;
}

on_both_backends!(
    metrics_move_with_requests_azure_calls_and_logins,
    checks_of_user_named_endpoints_are_counted,
    rate_limited_logins_are_counted,
    only_admins_and_the_scrape_token_read_metrics,
    ready_and_the_health_probe,
);
