//! Short-lived Kubernetes credentials: for AKS clusters with local accounts the server keeps
//! the admin kubeconfig and hands clients a token of its own service account, obtained with
//! the TokenRequest API, which expires and never outlives the connector.

use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::azure::{estate, register, service_principal, trusting};
use crate::fakes::azure::{DEFAULT_CLIENT_SECRET, FakeAzure};
use crate::harness::{Backend, TestApp, on_both_backends};

async fn cluster_client(app: &TestApp, connector: &str, cluster: &str) -> crate::harness::Reply {
    let path = format!(
        "/api/v1/service_connectors/{connector}/client?resource_type=kubernetes-cluster&resource_id={cluster}"
    );
    app.get(&path, &app.admin).await
}

fn expires_at(client: &Value) -> DateTime<Utc> {
    client["body"]["expires_at"]
        .as_str()
        .and_then(|at| format!("{at}Z").parse().ok().or_else(|| at.parse().ok()))
        .unwrap_or_else(|| panic!("no expires_at in {client}"))
}

/// `GET {path}` on the cluster's API server with `token`: the status.
async fn cluster_status(azure: &FakeAzure, token: &str, path: &str) -> StatusCode {
    trusting(azure)
        .get(format!("{}{path}", azure.cluster_server_url("c1")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

async fn a_local_account_cluster_gets_an_expiring_service_account_token(backend: Backend) {
    let azure = FakeAzure::start(estate()).await;
    let app = TestApp::spawn_with_azure(backend, &azure, |_| {}).await;
    let id = register(&app, service_principal("az", DEFAULT_CLIENT_SECRET)).await;

    let asked = Utc::now();
    let client = cluster_client(&app, &id, "rg1/c1").await.ok();
    let configuration = &client["metadata"]["configuration"];
    let token = configuration["token"].as_str().unwrap();

    // Nothing from the admin kubeconfig but the server and its CA reaches the client.
    assert_ne!(token, azure.cluster_admin_token("c1"));
    let handed_out = client.to_string();
    assert!(!handed_out.contains(&azure.cluster_admin_token("c1")));
    for field in ["client_certificate", "client_key"] {
        assert!(configuration.get(field).is_none(), "{field} in {client}");
    }
    assert_eq!(configuration["server"], azure.cluster_server_url("c1"));
    assert!(configuration["certificate_authority"].is_string());

    // The token is the configured service account's, bound to cluster-admin, and lives an
    // hour (the default) from when it was asked for.
    assert_eq!(
        azure.cluster_service_accounts("c1"),
        ["kube-system/connector-hub-client"]
    );
    let bindings = azure.cluster_role_bindings("c1");
    let [binding] = bindings.as_slice() else {
        panic!("{bindings:?}")
    };
    assert_eq!(binding["roleRef"]["name"], "cluster-admin");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "connector-hub-client", "namespace": "kube-system"}])
    );
    let expires = expires_at(&client);
    let lifetime = expires - asked;
    assert!(
        (Duration::seconds(3599)..=Duration::seconds(3605)).contains(&lifetime),
        "{lifetime}"
    );

    // It reaches the API server with cluster-admin's power until Kubernetes' stated expiry.
    assert_eq!(
        cluster_status(&azure, token, "/version").await,
        StatusCode::OK
    );
    assert_eq!(
        cluster_status(&azure, token, "/api/v1/namespaces").await,
        StatusCode::OK
    );
    let left = (expires - Utc::now()).num_seconds();
    azure.advance_cluster_clock("c1", left - 5);
    assert_eq!(
        cluster_status(&azure, token, "/api/v1/namespaces").await,
        StatusCode::OK
    );
    azure.advance_cluster_clock("c1", 10);
    assert_eq!(
        cluster_status(&azure, token, "/version").await,
        StatusCode::UNAUTHORIZED
    );

    // The next client gets a fresh token from the same account: nothing is created twice.
    let again = cluster_client(&app, &id, "rg1/c1").await.ok();
    let fresh = again["metadata"]["configuration"]["token"]
        .as_str()
        .unwrap();
    assert_ne!(fresh, token);
    assert_eq!(
        cluster_status(&azure, fresh, "/version").await,
        StatusCode::OK
    );
    let creates = azure
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && !r.path_and_query.contains("/token"))
        .filter(|r| {
            r.path_and_query.contains("serviceaccounts")
                || r.path_and_query.contains("clusterrolebindings")
        })
        .count();
    assert_eq!(
        creates, 2,
        "one service account and one binding, created once"
    );
    app.stop().await;
}

async fn a_second_process_reuses_the_service_account(backend: Backend) {
    let azure = FakeAzure::start(estate()).await;
    let app = TestApp::spawn_with_azure(backend, &azure, |_| {}).await;
    let id = register(&app, service_principal("az", DEFAULT_CLIENT_SECRET)).await;
    let first = cluster_client(&app, &id, "rg1/c1").await.ok();

    let peer = app.spawn_peer(|_| {}).await;
    let second = cluster_client(&peer, &id, "rg1/c1").await.ok();
    // The peer found the account and binding made by the first process (its creates met
    // 409 Conflict, which counts as success), and both tokens work.
    assert_eq!(
        azure.cluster_service_accounts("c1"),
        ["kube-system/connector-hub-client"]
    );
    assert_eq!(azure.cluster_role_bindings("c1").len(), 1);
    for client in [&first, &second] {
        let token = client["metadata"]["configuration"]["token"]
            .as_str()
            .unwrap();
        assert_eq!(
            cluster_status(&azure, token, "/api/v1/namespaces").await,
            StatusCode::OK
        );
    }
    peer.stop().await;
    app.stop().await;
}

async fn a_near_connector_expiry_caps_every_credential(backend: Backend) {
    let azure = FakeAzure::start(estate()).await;
    let app = TestApp::spawn_with_azure(backend, &azure, |_| {}).await;
    // Twenty minutes left, less the default five minutes of skew tolerance: fifteen.
    let connector_expires = Utc::now() + Duration::minutes(20);
    let mut body = service_principal("az-near", DEFAULT_CLIENT_SECRET);
    body["expires_at"] = json!(connector_expires.format("%Y-%m-%dT%H:%M:%S").to_string());
    let id = register(&app, body).await;
    let until = connector_expires - Duration::seconds(300);

    let kube = cluster_client(&app, &id, "rg1/c1").await.ok();
    let kube_expires = expires_at(&kube);
    assert!(kube_expires <= until, "{kube_expires} after {until}");
    assert!(
        kube_expires >= until - Duration::seconds(5),
        "{kube_expires}"
    );
    // The cluster itself refuses the token from then on, not only the client.
    let token = kube["metadata"]["configuration"]["token"].as_str().unwrap();
    let left = (kube_expires - Utc::now()).num_seconds();
    azure.advance_cluster_clock("c1", left + 1);
    assert_eq!(
        cluster_status(&azure, token, "/version").await,
        StatusCode::UNAUTHORIZED
    );

    // Azure AD fixes its own tokens' lifetime (an hour here): the client is told to stop
    // using them when the connector expires.
    for (resource_type, resource_id) in [
        ("azure-generic", "Example%20Subscription"),
        ("docker-registry", "reg1.azurecr.io"),
        ("kubernetes-cluster", "rg2/c2"),
    ] {
        let path = format!(
            "/api/v1/service_connectors/{id}/client?resource_type={resource_type}&resource_id={resource_id}"
        );
        let client = app.get(&path, &app.admin).await.ok();
        assert!(expires_at(&client) <= until, "{resource_type}: {client}");
    }

    // With less than Kubernetes' ten-minute minimum left, no cluster token is issued.
    let mut body = service_principal("az-nearer", DEFAULT_CLIENT_SECRET);
    let soon = Utc::now() + Duration::minutes(14);
    body["expires_at"] = json!(soon.format("%Y-%m-%dT%H:%M:%S").to_string());
    let nearer = register(&app, body).await;
    let refused = cluster_client(&app, &nearer, "rg1/c1").await;
    let (_, message) = refused.error();
    assert!(
        message.contains("sooner than the 600 s a Kubernetes token lives at least"),
        "{message}"
    );
    app.stop().await;
}

async fn a_refused_permission_is_named(backend: Backend) {
    let azure = FakeAzure::start(estate()).await;
    let app = TestApp::spawn_with_azure(backend, &azure, |_| {}).await;
    let id = register(&app, service_principal("az", DEFAULT_CLIENT_SECRET)).await;
    azure.deny_cluster_admin("c1", "create", "serviceaccounts");

    let refused = cluster_client(&app, &id, "rg1/c1").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let (class, message) = refused.error();
    assert_eq!(class, "AuthorizationException");
    assert!(
        message.contains(
            "the cluster's admin credentials may not create service accounts in the 'kube-system' namespace"
        ),
        "{message}"
    );
    assert!(
        message.contains("cannot create resource \"serviceaccounts\""),
        "{message}"
    );
    assert!(!message.contains(&azure.cluster_admin_token("c1")));
    assert!(azure.cluster_service_accounts("c1").is_empty());
    app.stop().await;
}

async fn the_service_account_and_role_are_settings(backend: Backend) {
    let azure = FakeAzure::start(estate()).await;
    let app = TestApp::spawn_with_azure(backend, &azure, |config| {
        config.cluster_clients.kubernetes_client_namespace = "default".into();
        config.cluster_clients.kubernetes_client_service_account = "ml-pipelines".into();
        config.cluster_clients.kubernetes_client_cluster_role = "edit".into();
    })
    .await;
    let mut body = service_principal("az", DEFAULT_CLIENT_SECRET);
    body["resource_types"] = json!(["kubernetes-cluster"]);
    let id = register(&app, body).await;

    let client = cluster_client(&app, &id, "rg1/c1").await.ok();
    assert_eq!(
        azure.cluster_service_accounts("c1"),
        ["default/ml-pipelines"]
    );
    let bindings = azure.cluster_role_bindings("c1");
    assert_eq!(bindings[0]["roleRef"]["name"], "edit");
    // The fake grants only cluster-admin more than discovery: an `edit` token may read the
    // version but not list namespaces, so the binding decides what the client may do.
    let token = client["metadata"]["configuration"]["token"]
        .as_str()
        .unwrap();
    assert_eq!(
        cluster_status(&azure, token, "/version").await,
        StatusCode::OK
    );
    assert_eq!(
        cluster_status(&azure, token, "/api/v1/namespaces").await,
        StatusCode::FORBIDDEN
    );
    app.stop().await;
}

on_both_backends!(
    a_local_account_cluster_gets_an_expiring_service_account_token,
    a_second_process_reuses_the_service_account,
    a_near_connector_expiry_caps_every_credential,
    a_refused_permission_is_named,
    the_service_account_and_role_are_settings,
);
