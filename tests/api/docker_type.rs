//! The `docker` connector type against the fake ACR's registry API: ZenML's spec, the `/v2/`
//! login handshake, the host guard (redirects included), and the client connector that is the
//! connector itself.

use axum::Router;
use axum::http::{StatusCode as AxumStatus, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::azure::{
    client_only_for_secret_readers, register, requests_to, verify_outcome, verify_stored,
};
use crate::connectors::zenml_fields;
use crate::fakes::azure::{
    DEFAULT_SUBSCRIPTION_ID, FakeAzure, FakeAzureConfig, FakeRegistry, Surface,
};
use crate::fakes::tls::{BoundListener, TestCertificateAuthority};
use crate::harness::{Backend, TestApp, on_both_backends};

/// One registry, `reg1`, with its admin user enabled.
pub async fn one_registry() -> FakeAzure {
    FakeAzure::start(FakeAzureConfig {
        registries: vec![
            FakeRegistry::new(DEFAULT_SUBSCRIPTION_ID, "rg1", "reg1").with_admin_user(),
        ],
        ..FakeAzureConfig::default()
    })
    .await
}

/// A `docker` connector for `registry` with the admin user's name and `password`.
pub fn registry_connector(name: &str, registry: &str, password: &str) -> Value {
    json!({
        "name": name,
        "connector_type": "docker",
        "auth_method": "password",
        "resource_types": ["docker-registry"],
        "configuration": {
            "registry": registry,
            "username": "reg1",
            "password": password,
        },
    })
}

pub const ADMIN_PASSWORD: &str = "reg1-password-1";

/// A server that trusts `pems` as added CAs (`--trusted-ca-file`), and allows `hosts` (the
/// default guard when `None`).
async fn trusting(
    backend: Backend,
    pems: &[&str],
    hosts: Option<Vec<String>>,
) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("trusted.pem");
    std::fs::write(&ca_file, pems.concat()).unwrap();
    let app = TestApp::spawn_with(backend, |c| {
        c.user_endpoints.trusted_ca_file = Some(ca_file.clone());
        c.user_endpoints.allowed_target_hosts = hosts;
    })
    .await;
    (app, dir)
}

fn loopback() -> Option<Vec<String>> {
    Some(vec!["127.0.0.0/8".into()])
}

async fn the_catalogue_serves_zenmls_docker_type(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let served = app
        .get("/api/v1/service_connector_types/docker", &app.admin)
        .await
        .ok();
    let zenml: Value =
        serde_json::from_str(include_str!("../fixtures/zenml-0.98-docker-type.json")).unwrap();
    assert_eq!(zenml_fields(&served), zenml_fields(&zenml));
    let properties = &served["auth_methods"][0]["config_schema"]["properties"];
    for (field, secret) in [("username", true), ("password", true), ("registry", false)] {
        assert_eq!(properties[field]["writeOnly"] == true, secret, "{field}");
    }
    app.stop().await;
}

async fn logins_verify_with_the_registrys_handshake(backend: Backend) {
    let azure = one_registry().await;
    let login_server = azure.registry_login_server("reg1");
    let (app, _dir) = trusting(backend, &[azure.ca_pem()], loopback()).await;

    // Any spelling of the registry is stored and reported by its host.
    let url = format!("https://{login_server}/some/repository");
    let id = register(&app, registry_connector("acr-admin", &url, ADMIN_PASSWORD)).await;
    let verified = verify_stored(&app, &id).await;
    assert_eq!(
        verify_outcome(&verified),
        (None, json!([login_server])),
        "{verified}"
    );
    // The bearer-token exchange happened: the token endpoint was asked for the account.
    assert!(azure.requests().iter().any(|r| {
        r.surface == Surface::ContainerRegistry
            && r.path_and_query.starts_with("/oauth2/token?")
            && r.path_and_query.contains("account=reg1")
    }));

    let id = register(&app, registry_connector("acr-wrong", &login_server, "nope")).await;
    let (error, reached) = verify_outcome(&verify_stored(&app, &id).await);
    let error = error.unwrap();
    assert!(
        error.contains("refused the username and password"),
        "{error}"
    );
    assert_eq!(reached, Value::Null);

    let shared = registry_connector("acr-shared", &login_server, ADMIN_PASSWORD);
    let client = client_only_for_secret_readers(&app, shared, ADMIN_PASSWORD).await;
    assert_eq!(client["body"]["connector_type"], "docker");
    assert_eq!(client["body"]["auth_method"], "password");
    assert_eq!(client["body"]["resource_id"], login_server.as_str());
    assert_eq!(
        client["metadata"]["configuration"]["password"],
        ADMIN_PASSWORD
    );
    app.stop().await;

    // Without the added CA, the registry's certificate is not trusted.
    let untrusting = TestApp::spawn(backend).await;
    let id = register(
        &untrusting,
        registry_connector("acr-untrusted", &login_server, ADMIN_PASSWORD),
    )
    .await;
    let (error, _) = verify_outcome(&verify_stored(&untrusting, &id).await);
    let error = error.unwrap();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    untrusting.stop().await;
}

/// A registry on an allowed host that redirects towards a refused one is not followed there.
async fn redirects_pass_the_host_guard_too(backend: Backend) {
    let azure = one_registry().await;
    let login_server = azure.registry_login_server("reg1");
    let authority = TestCertificateAuthority::new();
    let listener = BoundListener::bind().await;
    let redirector_port = listener.address.port();
    let target = format!("https://{login_server}/v2/");
    let router =
        Router::new().route(
            "/v2/",
            get(move || {
                let target = target.clone();
                async move {
                    (AxumStatus::TEMPORARY_REDIRECT, [(header::LOCATION, target)]).into_response()
                }
            }),
        );
    let mut servers = JoinSet::new();
    listener.serve(router, &authority, &mut servers);
    let redirecting = format!("localhost:{redirector_port}");

    let before = requests_to(&azure, Surface::ContainerRegistry);
    let (named_only, _dir) = trusting(
        backend,
        &[azure.ca_pem(), &authority.ca_pem()],
        Some(vec!["localhost".into()]),
    )
    .await;
    let id = register(
        &named_only,
        registry_connector("redirected", &redirecting, ADMIN_PASSWORD),
    )
    .await;
    let (error, _) = verify_outcome(&verify_stored(&named_only, &id).await);
    let error = error.unwrap();
    assert!(error.contains("does not call '127.0.0.1'"), "{error}");
    assert_eq!(
        requests_to(&azure, Surface::ContainerRegistry),
        before,
        "the redirect was not followed"
    );
    named_only.stop().await;

    // Allowed, the same redirect is followed to the registry.
    let (both, _dir) = trusting(
        backend,
        &[azure.ca_pem(), &authority.ca_pem()],
        Some(vec!["localhost".into(), "127.0.0.1".into()]),
    )
    .await;
    let id = register(
        &both,
        registry_connector("followed", &redirecting, ADMIN_PASSWORD),
    )
    .await;
    let verified = verify_stored(&both, &id).await;
    assert!(
        !verified.to_string().contains("does not call"),
        "{verified}"
    );
    assert!(
        requests_to(&azure, Surface::ContainerRegistry) > before,
        "the redirect was followed"
    );
    both.stop().await;

    // By default, a registry on this machine is refused before any request is sent.
    let (guarded, _dir) = trusting(backend, &[azure.ca_pem()], None).await;
    let before = requests_to(&azure, Surface::ContainerRegistry);
    let id = register(
        &guarded,
        registry_connector("local", &login_server, ADMIN_PASSWORD),
    )
    .await;
    let (error, _) = verify_outcome(&verify_stored(&guarded, &id).await);
    assert!(error.unwrap().contains("--allowed-target-hosts"));
    assert_eq!(requests_to(&azure, Surface::ContainerRegistry), before);
    guarded.stop().await;
}

on_both_backends!(
    the_catalogue_serves_zenmls_docker_type,
    logins_verify_with_the_registrys_handshake,
    redirects_pass_the_host_guard_too,
);
