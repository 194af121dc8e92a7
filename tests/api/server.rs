use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Backend, Reply, TestApp, on_both_backends};

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
    app.stop().await;
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
    assert!(app.db.end_server_sessions().await >= 2);

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

on_both_backends!(
    info_is_public_and_never_claims_to_be_zenml_pro,
    served_openapi_equals_the_committed_document,
    every_response_carries_a_request_id,
    data_and_tokens_survive_a_graceful_restart,
);
