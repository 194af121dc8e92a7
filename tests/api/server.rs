use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use connector_hub::app::Server;
use connector_hub::http::{self, Limits, NOT_API};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{
    ADMIN_PASSWORD, Backend, OwnedSchema, Reply, TestApp, TestDatabase, on_both_backends,
    test_config,
};
use crate::process::ServerProcess;

async fn info_is_public_and_never_claims_to_be_zenml_pro(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let info = app.get("/api/v1/info", "").await.ok();
    assert_eq!(info["auth_scheme"], "OAUTH2_PASSWORD_BEARER");
    assert_ne!(info["deployment_type"], "cloud");
    assert!(info["version"].is_string());
    assert!(info["id"].as_str().unwrap().parse::<uuid::Uuid>().is_ok());
    assert_eq!(app.get("/health", "").await.ok(), "OK");
    app.stop().await;
}

/// The document served is the one committed, and it describes every route served: each path
/// the router answers, with the methods it answers, but for the few that are not API.
async fn served_openapi_equals_the_committed_document(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let served = app.get("/openapi.json", "").await.ok();
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    assert!(
        served == committed,
        "openapi/openapi.json is stale: regenerate it with `cargo run -- openapi > openapi/openapi.json`"
    );
    assert_eq!(served["openapi"].as_str().unwrap().get(..3), Some("3.1"));
    let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger"));
    every_route_served_is_documented(&app, &served).await;
    app.stop().await;
}

/// Holds the routes the server serves against `document`: its paths are exactly the paths
/// served less [`NOT_API`], and for each, the methods it names are exactly those answered.
async fn every_route_served_is_documented(app: &TestApp, document: &Value) {
    let documented: BTreeMap<&str, BTreeSet<String>> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let methods = item.as_object().unwrap().keys().filter(|key| {
                let methods = ["get", "put", "post", "delete", "options", "head", "patch"];
                methods.contains(&key.as_str())
            });
            (path.as_str(), methods.map(|m| m.to_uppercase()).collect())
        })
        .collect();
    let limits = Limits {
        max_body_bytes: app.config.max_body_bytes,
        request_timeout: app.config.request_timeout(),
    };
    let router = http::router(
        app.state.clone(),
        limits,
        http::MetricsRoute::ForAdmins,
        Default::default(),
    );
    let served = http::served_paths(&router);

    for path in NOT_API {
        assert!(!path.starts_with("/api/"), "{path} is API: document it");
        assert!(
            served.contains(*path),
            "{path} is listed in NOT_API but not served"
        );
    }
    let api: BTreeSet<&str> = served
        .iter()
        .map(String::as_str)
        .filter(|path| !NOT_API.contains(path))
        .collect();
    let undocumented: Vec<_> = api
        .iter()
        .filter(|p| !documented.contains_key(*p))
        .collect();
    assert!(
        undocumented.is_empty(),
        "served but not in the OpenAPI document (document them, or, if they are not API, list \
         them in http::NOT_API): {undocumented:?}"
    );
    let unserved: Vec<_> = documented.keys().filter(|p| !api.contains(*p)).collect();
    assert!(
        unserved.is_empty(),
        "documented but not served: {unserved:?}"
    );

    // The methods: a request of a method no route takes (TRACE) is refused by the path's own
    // route, which names the methods it takes; the fallback would answer a path not served.
    let mut wrong = Vec::new();
    for (path, methods) in &documented {
        let concrete = path
            .split('/')
            .map(|segment| match segment.starts_with('{') {
                true => "00000000-0000-0000-0000-000000000000",
                false => segment,
            })
            .collect::<Vec<_>>()
            .join("/");
        let reply = app
            .send(app.client.request(Method::TRACE, app.url(&concrete)))
            .await;
        let allowed = reply.headers.get("allow").map(|v| v.to_str().unwrap());
        let mut answered: BTreeSet<String> = allowed
            .unwrap_or_default()
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            .collect();
        if answered.contains("GET") {
            answered.remove("HEAD");
        }
        if reply.status != StatusCode::METHOD_NOT_ALLOWED || &answered != methods {
            wrong.push(format!(
                "{path}: documented {methods:?}, answered {answered:?} ({} {})",
                reply.status, reply.body
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "documented methods differ from those served:\n{}",
        wrong.join("\n")
    );
}

async fn every_response_carries_a_request_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reply = app.get("/api/v1/info", "").await;
    assert!(!reply.headers["x-request-id"].is_empty());
    let mine = app
        .send(
            app.client
                .get(app.url("/api/v1/nothing-here"))
                .header("x-request-id", "abc12345"),
        )
        .await;
    assert_eq!(mine.status, StatusCode::NOT_FOUND);
    assert_eq!(mine.headers["x-request-id"], "abc12345");
    app.stop().await;
}

async fn data_and_tokens_survive_a_graceful_restart(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secret = app
        .create_secret(&app.admin, "kept", false, serde_json::json!({"k": "v"}))
        .await;
    let token = app.admin.clone();
    let app = app.restart().await;
    // The signing key lives in the database, so a token issued before the restart still works.
    let read = app
        .get(
            &format!("/api/v1/secrets/{}", secret["id"].as_str().unwrap()),
            &token,
        )
        .await
        .ok();
    assert_eq!(read["body"]["values"]["k"], "v");
    app.stop().await;
}

/// PostgreSQL closes every connection when it restarts (or fails over, or an administrator
/// ends the sessions). Reads that find their pooled connection closed run again on a new one,
/// and the pool checks its other connections before handing them out, so no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_succeed_after_postgresql_closes_every_connection() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let secret = app
        .create_secret(&app.admin, "before", false, json!({"k": "v"}))
        .await;
    let secret_path = format!("/api/v1/secrets/{}", secret["id"].as_str().unwrap());
    // Several requests at once, so that the pool holds several connections.
    let reads = (0..6).map(|_| app.get(&secret_path, &app.admin));
    for reply in futures::future::join_all(reads).await {
        reply.ok();
    }
    // However many connections the pool opened for them, every one is ended.
    assert!(app.db.end_server_sessions().await >= 1);

    // Reads at once, then one request of each kind, each on a connection the server must
    // find closed or replace.
    let reads = (0..6).map(|_| app.get(&secret_path, &app.admin));
    for reply in futures::future::join_all(reads).await {
        assert_eq!(reply.ok()["body"]["values"]["k"], "v");
    }
    let listed = after_sessions_end(&app, || app.get("/api/v1/secrets", &app.admin)).await;
    assert_eq!(listed["total"], 1);
    let created = after_sessions_end(&app, || {
        let body = json!({"name": "after", "values": {"k": "w"}});
        app.post("/api/v1/secrets", &app.admin, body)
    })
    .await;
    let updated = after_sessions_end(&app, || {
        app.put(&secret_path, &app.admin, json!({"values": {"k": "x"}}))
    })
    .await;
    assert_eq!(updated["body"]["values"]["k"], "x");
    let created_path = format!("/api/v1/secrets/{}", created["id"].as_str().unwrap());
    after_sessions_end(&app, || app.delete(&created_path, &app.admin)).await;
    assert_eq!(
        app.get(&created_path, &app.admin).await.status,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

/// Ends the server's PostgreSQL sessions, then sends `request`, which must succeed.
async fn after_sessions_end<F: Future<Output = Reply>>(
    app: &TestApp,
    request: impl FnOnce() -> F,
) -> serde_json::Value {
    app.db.end_server_sessions().await;
    request().await.ok()
}

/// The admin's token from the server at `base`.
async fn admin_token(client: &reqwest::Client, base: &str) -> String {
    let form = [("username", "default"), ("password", ADMIN_PASSWORD)];
    let login = json_reply(client.post(format!("{base}/api/v1/login")).form(&form)).await;
    login["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("the admin logs in: {login}"))
        .to_owned()
}

/// Sends `request` and reads its JSON answer.
async fn json_reply(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// Two processes started at the same moment on an empty database (a scaled-out deployment's
/// first start) both come up, and agree: one admin, one workspace, one data key and, on the
/// embedded default, one master key file.
async fn two_servers_starting_at_once_on_an_empty_database_agree(backend: Backend) {
    let data_dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new(backend, data_dir.path().to_owned()).await;
    let _schema = OwnedSchema::of(&db);
    let mut config = test_config(&db);
    if backend == Backend::Sqlite {
        // Made on first start, by whichever process gets there first.
        config.storage.encryption_key = None;
    }
    let (first, second) =
        tokio::join!(Server::build(config.clone()), Server::build(config.clone()));
    let first = first.expect("the first server starts");
    let second = second.expect("the second server starts");
    for table in ["users", "workspaces", "data_keys", "stacks"] {
        assert_eq!(db.row_count(table).await, 1, "{table}");
    }
    // Both serve the same account, and each reads what the other encrypted.
    let client = reqwest::Client::new();
    let (first_base, second_base) = (
        format!("http://{}", first.local_addr()),
        format!("http://{}", second.local_addr()),
    );
    let mut running = Vec::new();
    for server in [first, second] {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async { stopped.await.unwrap_or(()) }));
        running.push((stop, task));
    }
    let (first_token, second_token) = (
        admin_token(&client, &first_base).await,
        admin_token(&client, &second_base).await,
    );
    let created = json_reply(
        client
            .post(format!("{first_base}/api/v1/secrets"))
            .bearer_auth(&first_token)
            .json(&json!({"name": "shared", "values": {"k": "written by the first"}})),
    )
    .await;
    let read = json_reply(
        client
            .get(format!(
                "{second_base}/api/v1/secrets/{}",
                created["id"].as_str().unwrap()
            ))
            .bearer_auth(&second_token),
    )
    .await;
    assert_eq!(
        read["body"]["values"]["k"], "written by the first",
        "{read}"
    );
    for (stop, task) in running {
        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
    }
}

/// `--database-url` takes an explicit `sqlite:` URL (the file is made if missing) and refuses a
/// scheme it does not serve with a clear error, before touching anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_urls_name_sqlite_or_postgres_and_nothing_else() {
    let data_dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new(Backend::Sqlite, data_dir.path().to_owned()).await;
    let elsewhere = tempfile::tempdir().unwrap();
    let file = elsewhere.path().join("explicit.sqlite3");
    let mut config = test_config(&db);
    config.storage.database_url = Some(format!("sqlite://{}", file.display()));
    let server = Server::build(config.clone())
        .await
        .expect("an explicit sqlite: URL serves");
    drop(server);
    assert!(file.is_file(), "the database is the named file");
    assert!(!data_dir.path().join("connector-hub.sqlite3").exists());

    for url in [
        "mysql://root@127.0.0.1/connector_hub",
        "sqlite3.db",
        "postgres",
    ] {
        config.storage.database_url = Some(url.to_owned());
        let error = Server::build(config.clone())
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(
            error.contains("DATABASE_URL must start with postgres://, postgresql:// or sqlite:"),
            "{url}: {error}"
        );
    }
}

on_both_backends!(
    info_is_public_and_never_claims_to_be_zenml_pro,
    served_openapi_equals_the_committed_document,
    every_response_carries_a_request_id,
    data_and_tokens_survive_a_graceful_restart,
    two_servers_starting_at_once_on_an_empty_database_agree,
);

/// Variables an operator may have exported change no test: these tests, run again in a
/// process of their own with such variables set (one that would turn implicit authentication
/// on, one that would keep no pages, and malformed ones that would stop a server from
/// starting), still pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_does_not_leak_into_test_servers() {
    // Each would fail if a variable below reached its server: the first if implicit
    // authentication were on, the second if pages were not kept.
    let tests = [
        "azure_failures::sqlite::implicit_auth_is_refused_while_disabled",
        "connectors::sqlite::lists_show_every_change_at_once",
    ];
    let output = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(tests)
        .args(["--exact", "--test-threads", "2"])
        .env("ZENML_ENABLE_IMPLICIT_AUTH_METHODS", "true")
        .env("CONNECTOR_HUB_LIST_CACHE_BYTES", "0")
        .env("CONNECTOR_HUB_MAX_BODY_BYTES", "a lot")
        .env("CONNECTOR_HUB_BIND", "not an address")
        .env("DATABASE_URL", "mysql://nowhere")
        .env("AZURE_TENANT_ID", "00000000-0000-0000-0000-000000000001")
        .env("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000002")
        .env("AZURE_CLIENT_SECRET", "from the environment")
        .env("CONNECTOR_HUB_AZURE_CUSTOM_CLOUD_ONLY", "maybe")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(300), output)
        .await
        .expect("the tests finish within 5 minutes")
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{printed}");
    assert!(printed.contains("2 passed"), "{printed}");
}

/// SIGTERM, as a service manager stops the server: a request in flight (here a verify held up
/// by a slow Azure) completes, new connections are refused, and the process exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_requests_in_flight_finish_and_refuses_new_ones() {
    use crate::fakes::azure::{
        DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID, FakeAzure, FakeAzureConfig,
        Surface,
    };
    let azure = FakeAzure::start(FakeAzureConfig::default()).await;
    let data_dir = tempfile::tempdir().unwrap();
    let cloud = azure.write_cloud_file(data_dir.path());
    let mut server = ServerProcess::start(
        data_dir.path(),
        &[
            ("CONNECTOR_HUB_AZURE_CLOUD_CONFIG", cloud.to_str().unwrap()),
            ("CONNECTOR_HUB_AZURE_CUSTOM_CLOUD_ONLY", "true"),
            ("CONNECTOR_HUB_AZURE_REQUEST_TIMEOUT_SECONDS", "30"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let token = admin_token(&client, &server.base).await;

    azure.set_response_delay(Surface::ResourceManager, Some(Duration::from_secs(2)));
    let verify = client
        .post(format!("{}/api/v1/service_connectors/verify", server.base))
        .bearer_auth(&token)
        .json(&json!({
            "name": "in-flight", "connector_type": "azure", "auth_method": "service-principal",
            "resource_types": ["azure-generic"],
            "configuration": {
                "tenant_id": DEFAULT_TENANT_ID, "client_id": DEFAULT_CLIENT_ID,
                "client_secret": DEFAULT_CLIENT_SECRET,
            },
        }))
        .send();
    let in_flight = tokio::spawn(tokio::time::timeout(Duration::from_secs(60), verify));
    azure
        .wait_for_request(|request| request.surface == Surface::ResourceManager)
        .await;

    server.terminate();
    server.wait_for_log("shutting down").await;
    let fresh = reqwest::Client::new();
    let refused = fresh.get(format!("{}/health", server.base)).send().await;
    assert!(refused.is_err(), "a new request was served: {refused:?}");

    let finished = in_flight
        .await
        .unwrap()
        .expect("the verify finishes")
        .unwrap();
    assert_eq!(finished.status(), StatusCode::OK);
    let verified: Value = finished.json().await.unwrap();
    assert_eq!(verified["error"], Value::Null, "{verified}");
    assert_eq!(
        verified["resources"][0]["resource_ids"],
        json!(["Example Subscription"])
    );
    let status = server.exited().await;
    assert!(status.success(), "{status:?}");
}
