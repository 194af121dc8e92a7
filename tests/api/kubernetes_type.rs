//! The `kubernetes` connector type against the fake AKS API server: ZenML's spec, verify with
//! a token, a client certificate's absence, or a password, the host guard and added CAs, and
//! the client connector that is the connector itself.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::azure::{
    client_only_for_secret_readers, register, requests_to, verify_outcome, verify_stored,
};
use crate::connectors::zenml_fields;
use crate::fakes::azure::{
    DEFAULT_SUBSCRIPTION_ID, FakeAzure, FakeAzureConfig, FakeCluster, Surface,
};
use crate::harness::{Backend, TestApp, on_both_backends};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "alice-password";

/// One cluster, `c1`, that also accepts `alice`'s static password.
pub async fn one_cluster() -> FakeAzure {
    FakeAzure::start(FakeAzureConfig {
        clusters: vec![
            FakeCluster::new(DEFAULT_SUBSCRIPTION_ID, "rg1", "c1")
                .with_static_password(USER, PASSWORD),
        ],
        ..FakeAzureConfig::default()
    })
    .await
}

pub fn base64_of(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A `token` connector for `c1`, trusting the fake's CA through its own configuration.
pub fn token_connector(azure: &FakeAzure, name: &str, token: &str) -> Value {
    json!({
        "name": name,
        "connector_type": "kubernetes",
        "auth_method": "token",
        "resource_types": ["kubernetes-cluster"],
        "configuration": {
            "server": azure.cluster_server_url("c1"),
            "cluster_name": "c1",
            "token": token,
            "certificate_authority": base64_of(azure.ca_pem()),
        },
    })
}

fn password_connector(azure: &FakeAzure, name: &str, password: &str) -> Value {
    json!({
        "name": name,
        "connector_type": "kubernetes",
        "auth_method": "password",
        "resource_types": ["kubernetes-cluster"],
        "configuration": {
            "server": azure.cluster_server_url("c1"),
            "cluster_name": "c1",
            "username": USER,
            "password": password,
            "certificate_authority": base64_of(azure.ca_pem()),
        },
    })
}

/// The verify result's one error, if any, and the ids it reached.
async fn the_catalogue_serves_zenmls_kubernetes_type(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let served = app
        .get("/api/v1/service_connector_types/kubernetes", &app.admin)
        .await
        .ok();
    let zenml: Value =
        serde_json::from_str(include_str!("../fixtures/zenml-0.98-kubernetes-type.json")).unwrap();
    assert_eq!(zenml_fields(&served), zenml_fields(&zenml));
    for method in served["auth_methods"].as_array().unwrap() {
        let properties = method["config_schema"]["properties"].as_object().unwrap();
        let secret: Vec<&str> = (properties.iter())
            .filter(|(_, p)| p.to_string().contains("writeOnly"))
            .map(|(name, _)| name.as_str())
            .collect();
        let expected: &[&str] = match method["auth_method"].as_str().unwrap() {
            "password" => &["certificate_authority", "password", "username"],
            _ => &[
                "certificate_authority",
                "client_certificate",
                "client_key",
                "token",
            ],
        };
        assert_eq!(secret, expected);
    }
    let listed = app
        .get(
            "/api/v1/service_connector_types?resource_type=kubernetes-cluster",
            &app.admin,
        )
        .await
        .ok();
    let types: Vec<&str> = (listed.as_array().unwrap().iter())
        .map(|t| t["connector_type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"azure") && types.contains(&"kubernetes"),
        "{types:?}"
    );
    app.stop().await;
}

async fn tokens_and_passwords_verify_against_the_cluster(backend: Backend) {
    let azure = one_cluster().await;
    let app = TestApp::spawn(backend).await;
    let admin_token = azure.cluster_admin_token("c1");

    let id = register(&app, token_connector(&azure, "k8s-token", &admin_token)).await;
    let verified = verify_stored(&app, &id).await;
    assert_eq!(
        verify_outcome(&verified),
        (None, json!(["c1"])),
        "{verified}"
    );
    // A cluster name other than the configured one is another cluster.
    let other = app
        .put(
            &format!("/api/v1/service_connectors/{id}/verify?resource_id=c2"),
            &app.admin,
            json!({}),
        )
        .await
        .ok();
    let (error, _) = verify_outcome(&other);
    assert!(
        error
            .unwrap()
            .contains("reaches the cluster 'c1', not 'c2'"),
        "{other}"
    );

    let id = register(&app, password_connector(&azure, "k8s-password", PASSWORD)).await;
    let verified = verify_stored(&app, &id).await;
    assert_eq!(
        verify_outcome(&verified),
        (None, json!(["c1"])),
        "{verified}"
    );

    // Refusals name what was refused.
    let id = register(
        &app,
        password_connector(&azure, "k8s-wrong-password", "nope"),
    )
    .await;
    let (error, reached) = verify_outcome(&verify_stored(&app, &id).await);
    let error = error.unwrap();
    assert!(
        error.contains("refused the credentials") && error.contains("401"),
        "{error}"
    );
    assert_eq!(reached, Value::Null);
    let id = register(
        &app,
        token_connector(&azure, "k8s-wrong-token", "not-a-token"),
    )
    .await;
    let (error, _) = verify_outcome(&verify_stored(&app, &id).await);
    assert!(error.unwrap().contains("401"));

    azure.deny_cluster_admin("c1", "list", "namespaces");
    let id = register(&app, token_connector(&azure, "k8s-no-list", &admin_token)).await;
    let (error, _) = verify_outcome(&verify_stored(&app, &id).await);
    let error = error.unwrap();
    assert!(error.contains("may not list namespaces"), "{error}");

    app.stop().await;
}

async fn a_token_connector_needs_a_token_or_a_certificate(backend: Backend) {
    let azure = one_cluster().await;
    let app = TestApp::spawn(backend).await;
    let mut neither = token_connector(&azure, "k8s-empty", "x");
    neither["configuration"]
        .as_object_mut()
        .unwrap()
        .remove("token");
    let refused = app
        .post("/api/v1/service_connectors", &app.admin, neither)
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.error().1.contains("needs a token"),
        "{}",
        refused.body
    );
    let mut not_a_url = token_connector(&azure, "k8s-bad-server", "x");
    not_a_url["configuration"]["server"] = json!("ftp://cluster");
    let refused = app
        .post("/api/v1/service_connectors", &app.admin, not_a_url)
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.error().1.contains("ftp://cluster"),
        "{}",
        refused.body
    );
    app.stop().await;
}

/// The connector's own credentials are its client: only those who may read its secrets get
/// them.
async fn the_client_is_the_connector_for_those_who_may_read_it(backend: Backend) {
    let azure = one_cluster().await;
    let app = TestApp::spawn(backend).await;
    let admin_token = azure.cluster_admin_token("c1");
    let shared = token_connector(&azure, "k8s-shared", &admin_token);
    let client = client_only_for_secret_readers(&app, shared, &admin_token).await;
    assert_eq!(client["body"]["connector_type"], "kubernetes");
    assert_eq!(client["body"]["auth_method"], "token");
    assert_eq!(client["body"]["resource_id"], "c1");
    let configuration = &client["metadata"]["configuration"];
    assert_eq!(configuration["token"], admin_token.as_str());
    assert_eq!(configuration["server"], azure.cluster_server_url("c1"));
    assert_eq!(
        configuration["certificate_authority"],
        base64_of(azure.ca_pem())
    );

    app.stop().await;
}

/// By default the server calls no loopback, private or link-local address, whatever the
/// user names; the administrator allows them by name, address or network.
async fn the_host_guard_refuses_local_addresses_by_default(backend: Backend) {
    let azure = one_cluster().await;
    let admin_token = azure.cluster_admin_token("c1");
    let guarded = TestApp::spawn_with(backend, |c| {
        c.user_endpoints.allowed_target_hosts = None;
    })
    .await;
    let before = requests_to(&azure, Surface::Kubernetes);
    for (name, server) in [
        ("loopback", azure.cluster_server_url("c1")),
        (
            "localhost",
            azure
                .cluster_server_url("c1")
                .replace("127.0.0.1", "localhost"),
        ),
        ("metadata", "https://169.254.169.254".to_owned()),
        ("private", "https://10.0.0.1:6443".to_owned()),
        ("mapped", "https://[::ffff:127.0.0.1]:6443".to_owned()),
    ] {
        let mut connector = token_connector(&azure, name, &admin_token);
        connector["configuration"]["server"] = json!(server);
        let id = register(&guarded, connector).await;
        let (error, reached) = verify_outcome(&verify_stored(&guarded, &id).await);
        let error = error.unwrap_or_else(|| panic!("{server} was reached"));
        assert!(
            error.contains("does not call") && error.contains("--allowed-target-hosts"),
            "{server}: {error}"
        );
        assert_eq!(reached, Value::Null);
    }
    assert_eq!(
        requests_to(&azure, Surface::Kubernetes),
        before,
        "no request reached the cluster"
    );
    guarded.stop().await;

    let by_name = TestApp::spawn_with(backend, |c| {
        c.user_endpoints.allowed_target_hosts = Some(vec!["localhost".into()]);
    })
    .await;
    let mut named = token_connector(&azure, "by-name", &admin_token);
    named["configuration"]["server"] = json!(
        azure
            .cluster_server_url("c1")
            .replace("127.0.0.1", "localhost")
    );
    let id = register(&by_name, named).await;
    assert_eq!(
        verify_outcome(&verify_stored(&by_name, &id).await),
        (None, json!(["c1"]))
    );
    let id = register(
        &by_name,
        token_connector(&azure, "by-address", &admin_token),
    )
    .await;
    let (error, _) = verify_outcome(&verify_stored(&by_name, &id).await);
    assert!(
        error
            .unwrap()
            .contains("not in the server's --allowed-target-hosts")
    );
    by_name.stop().await;
}

/// A cluster whose certificate is signed by a CA the connector does not carry verifies once
/// the administrator adds that CA, and not before.
async fn added_cas_are_trusted_for_clusters(backend: Backend) {
    let azure = one_cluster().await;
    let admin_token = azure.cluster_admin_token("c1");
    let mut without_ca = token_connector(&azure, "k8s-no-ca", &admin_token);
    without_ca["configuration"]
        .as_object_mut()
        .unwrap()
        .remove("certificate_authority");

    let app = TestApp::spawn(backend).await;
    let id = register(&app, without_ca.clone()).await;
    let (error, _) = verify_outcome(&verify_stored(&app, &id).await);
    let error = error.unwrap();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    app.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("company-ca.pem");
    std::fs::write(&ca_file, azure.ca_pem()).unwrap();
    let trusting = TestApp::spawn_with(backend, |c| {
        c.user_endpoints.trusted_ca_file = Some(ca_file.clone());
    })
    .await;
    let id = register(&trusting, without_ca).await;
    assert_eq!(
        verify_outcome(&verify_stored(&trusting, &id).await),
        (None, json!(["c1"]))
    );
    trusting.stop().await;
}

on_both_backends!(
    the_catalogue_serves_zenmls_kubernetes_type,
    tokens_and_passwords_verify_against_the_cluster,
    a_token_connector_needs_a_token_or_a_certificate,
    the_client_is_the_connector_for_those_who_may_read_it,
    the_host_guard_refuses_local_addresses_by_default,
    added_cas_are_trusted_for_clusters,
);
