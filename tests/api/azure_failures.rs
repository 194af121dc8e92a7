//! The Azure engine when Azure says no, is slow, throttles or pages, and when users hand it
//! odd input: what verify and the client endpoint tell the user, against the fake Azure.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fakes::azure::{
    ARM_AUDIENCE, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_SUBSCRIPTION_ID,
    DEFAULT_TENANT_ID, FakeAzure, FakeAzureConfig, FakeCluster, FakeRegistry, Fault, Permission,
    Surface,
};
use crate::harness::{Backend, Reply, TestApp, on_both_backends};

const SUB: &str = DEFAULT_SUBSCRIPTION_ID;
/// How long any one request to the server may take here; a hang fails the test instead.
const BOUND: Duration = Duration::from_secs(30);
const EXPIRED: &str = "the connector's authentication credentials have expired.";
/// A connector for several resource types reaches all of them (as in ZenML).
const ALL_TYPES: [&str; 4] = [
    "azure-generic",
    "blob-container",
    "kubernetes-cluster",
    "docker-registry",
];

/// Two resource groups, each with a registry and a cluster with local accounts.
fn two_groups() -> FakeAzureConfig {
    FakeAzureConfig {
        registries: vec![
            FakeRegistry::new(SUB, "rg1", "reg1"),
            FakeRegistry::new(SUB, "rg2", "reg2"),
        ],
        clusters: vec![
            FakeCluster::new(SUB, "rg1", "c1"),
            FakeCluster::new(SUB, "rg2", "c2"),
        ],
        ..FakeAzureConfig::default()
    }
}

/// A service-principal connector, as the API takes it; `extra` is merged into its
/// configuration.
fn service_principal(name: &str, types: &[&str], secret: &str, extra: Value) -> Value {
    let mut configuration = json!({
        "tenant_id": DEFAULT_TENANT_ID,
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": secret,
    });
    for (key, value) in extra.as_object().into_iter().flatten() {
        configuration[key] = value.clone();
    }
    json!({
        "name": name,
        "connector_type": "azure",
        "auth_method": "service-principal",
        "resource_types": types,
        "configuration": configuration,
    })
}

/// An `access-token` connector whose token expires in an hour.
fn access_token(name: &str, types: &[&str], token: &str) -> Value {
    let expires = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    json!({
        "name": name,
        "connector_type": "azure",
        "auth_method": "access-token",
        "resource_types": types,
        "configuration": {"token": token},
        "expires_at": expires,
    })
}

fn implicit(name: &str, types: &[&str]) -> Value {
    json!({
        "name": name,
        "connector_type": "azure",
        "auth_method": "implicit",
        "resource_types": types,
        "configuration": {},
    })
}

async fn spawn(azure: &FakeAzure, backend: Backend) -> TestApp {
    TestApp::spawn_with_azure(backend, azure, |_| {}).await
}

/// `request`, failing the test if the server takes longer than [`BOUND`].
async fn bounded(request: impl Future<Output = Reply>) -> Reply {
    tokio::time::timeout(BOUND, request)
        .await
        .expect("the server answers within the bound")
}

async fn create(app: &TestApp, body: Value) -> String {
    let created = app
        .post("/api/v1/service_connectors", &app.admin, body)
        .await
        .ok();
    created["id"].as_str().unwrap().to_owned()
}

/// `PUT …/{id}/verify?{query}`.
async fn verify(app: &TestApp, id: &str, query: &str) -> Reply {
    bounded(app.put(
        &format!("/api/v1/service_connectors/{id}/verify?{query}"),
        &app.admin,
        json!(null),
    ))
    .await
}

/// `POST …/verify?{query}` of a configuration that is not stored.
async fn verify_configuration(app: &TestApp, body: Value, query: &str) -> Reply {
    bounded(app.post(
        &format!("/api/v1/service_connectors/verify?{query}"),
        &app.admin,
        body,
    ))
    .await
}

/// `GET …/{id}/client?{query}`.
async fn client(app: &TestApp, id: &str, query: &str) -> Reply {
    bounded(app.get(
        &format!("/api/v1/service_connectors/{id}/client?{query}"),
        &app.admin,
    ))
    .await
}

fn entry<'a>(result: &'a Value, resource_type: &str) -> &'a Value {
    result["resources"]
        .as_array()
        .unwrap_or_else(|| panic!("no resources in {result}"))
        .iter()
        .find(|r| r["resource_type"] == resource_type)
        .unwrap_or_else(|| panic!("no {resource_type} entry in {result}"))
}

fn ids(result: &Value, resource_type: &str) -> Vec<String> {
    let entry = entry(result, resource_type);
    assert_eq!(entry["error"], Value::Null, "{result}");
    entry["resource_ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no {resource_type} ids in {result}"))
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect()
}

fn entry_error(result: &Value, resource_type: &str) -> String {
    let entry = entry(result, resource_type);
    assert_eq!(entry["resource_ids"], Value::Null, "{result}");
    entry["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no {resource_type} error in {result}"))
        .to_owned()
}

fn arm_requests(azure: &FakeAzure) -> Vec<String> {
    azure
        .requests()
        .into_iter()
        .filter(|r| r.surface == Surface::ResourceManager)
        .map(|r| r.path_and_query)
        .collect()
}

fn all_but(denied: Permission) -> Vec<Permission> {
    Permission::ALL
        .into_iter()
        .filter(|p| *p != denied)
        .collect()
}

// Azure AD refuses the client secret.

async fn a_wrong_client_secret_reports_azure_ads_refusal_and_lists_nothing(backend: Backend) {
    let azure = FakeAzure::start(two_groups()).await;
    let app = spawn(&azure, backend).await;
    let id = create(
        &app,
        service_principal("wrong-secret", &ALL_TYPES, "not the secret", json!({})),
    )
    .await;

    let verified = verify(&app, &id, "").await.ok();
    let error = verified["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{verified}"));
    assert!(error.contains("wrong-secret"), "{error}");
    assert!(error.contains("AADSTS7000215"), "{error}");
    assert!(error.contains("Invalid client secret provided"), "{error}");
    for resource_type in ALL_TYPES {
        assert_eq!(entry_error(&verified, resource_type), error);
    }
    // Nothing reached ARM without a token.
    assert!(arm_requests(&azure).is_empty(), "{:?}", azure.requests());

    // The client endpoint says the same, as ZenML's AuthorizationException.
    let refused = client(&app, &id, "resource_type=docker-registry&resource_id=reg1").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert!(refused.headers.get("www-authenticate").is_none());
    let (class, message) = refused.error();
    assert_eq!(class, "AuthorizationException");
    assert!(message.contains("AADSTS7000215"), "{message}");
    app.stop().await;
}

// A role is missing.

async fn a_missing_cluster_role_fails_only_the_cluster_entry_and_names_the_role(backend: Backend) {
    let azure = FakeAzure::start(two_groups()).await;
    azure.set_permissions(DEFAULT_CLIENT_ID, &all_but(Permission::ReadClusters));
    let app = spawn(&azure, backend).await;
    let id = create(
        &app,
        service_principal("no-aks", &ALL_TYPES, DEFAULT_CLIENT_SECRET, json!({})),
    )
    .await;

    let verified = verify(&app, &id, "").await.ok();
    assert_eq!(verified["error"], Value::Null, "{verified}");
    let error = entry_error(&verified, "kubernetes-cluster");
    for expected in [
        "403",
        "AuthorizationFailed",
        "Microsoft.ContainerService/managedClusters/read",
        "Azure Kubernetes Service Cluster User Role",
    ] {
        assert!(error.contains(expected), "{expected} missing from: {error}");
    }
    // The other types still list.
    assert_eq!(ids(&verified, "azure-generic"), ["Example Subscription"]);
    assert_eq!(
        ids(&verified, "docker-registry"),
        ["reg1.azurecr.io", "reg2.azurecr.io"]
    );
    app.stop().await;
}

async fn a_registry_pull_refusal_names_acr_pull(backend: Backend) {
    let azure = FakeAzure::start(two_groups()).await;
    azure.set_permissions(DEFAULT_CLIENT_ID, &all_but(Permission::PullFromRegistry));
    let app = spawn(&azure, backend).await;
    let id = create(
        &app,
        service_principal(
            "no-pull",
            &["docker-registry"],
            DEFAULT_CLIENT_SECRET,
            json!({}),
        ),
    )
    .await;

    // Listing needs no data-plane access ...
    let listed = verify(&app, &id, "").await.ok();
    assert_eq!(
        ids(&listed, "docker-registry"),
        ["reg1.azurecr.io", "reg2.azurecr.io"]
    );
    // ... but checking one registry does.
    let verified = verify(&app, &id, "resource_id=reg1.azurecr.io").await.ok();
    let error = verified["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{verified}"));
    assert!(error.contains("AcrPull"), "{error}");
    assert_eq!(entry_error(&verified, "docker-registry"), error);

    // No admin user to fall back on: the client endpoint refuses, naming the role too.
    let refused = client(&app, &id, "resource_id=reg1").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    let (class, message) = refused.error();
    assert_eq!(class, "AuthorizationException");
    assert!(message.contains("AcrPull"), "{message}");
    app.stop().await;
}

// Throttling, outages and slowness.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_within_the_retries_is_waited_out() {
    let azure = FakeAzure::start(two_groups()).await;
    let app = spawn(&azure, Backend::Sqlite).await;
    let body = service_principal(
        "throttled",
        &["azure-generic"],
        DEFAULT_CLIENT_SECRET,
        json!({}),
    );
    azure.fail_next_requests(Surface::ResourceManager, 2, Fault::TooManyRequests);

    let verified = verify_configuration(&app, body, "").await.ok();
    assert_eq!(verified["error"], Value::Null, "{verified}");
    assert_eq!(ids(&verified, "azure-generic"), ["Example Subscription"]);
    // Two 429s and the answer.
    assert_eq!(arm_requests(&azure).len(), 3, "{:?}", azure.requests());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_retries_ends_in_a_clear_error() {
    let azure = FakeAzure::start(two_groups()).await;
    let app = spawn(&azure, Backend::Sqlite).await;
    let body = service_principal(
        "outage",
        &["azure-generic"],
        DEFAULT_CLIENT_SECRET,
        json!({}),
    );
    azure.fail_next_requests(Surface::ResourceManager, 10, Fault::ServiceUnavailable);

    let verified = verify_configuration(&app, body, "").await.ok();
    let error = verified["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{verified}"));
    assert!(error.contains("503"), "{error}");
    assert!(error.contains("ServiceUnavailable"), "{error}");
    assert!(error.contains("temporarily unavailable"), "{error}");
    assert_eq!(entry_error(&verified, "azure-generic"), error);
    // The first attempt and the configured two retries, then no more.
    let max_retries = app.config.azure.azure_max_retries as usize;
    assert_eq!(
        arm_requests(&azure).len(),
        1 + max_retries,
        "{:?}",
        azure.requests()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_beyond_the_maximum_wait_is_not_waited_for() {
    let azure = FakeAzure::start(two_groups()).await;
    let app = spawn(&azure, Backend::Sqlite).await;
    let body = service_principal(
        "patient",
        &["azure-generic"],
        DEFAULT_CLIENT_SECRET,
        json!({}),
    );
    azure.fail_next_requests(Surface::ResourceManager, 1, Fault::TooManyRequestsFor(3600));

    let verified = verify_configuration(&app, body, "").await.ok();
    let error = entry_error(&verified, "azure-generic");
    assert!(error.contains("429 (TooManyRequests)"), "{error}");
    assert!(error.contains("Please retry after 3600 seconds"), "{error}");
    // Given up at once: one attempt, no retry an hour later.
    assert_eq!(arm_requests(&azure).len(), 1, "{:?}", azure.requests());
    app.stop().await;
}

/// A page that links to a next page on another host: the server's ARM token would go with
/// the request, so the link is not followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_link_to_another_host_is_not_followed() {
    let elsewhere = FakeAzure::start(FakeAzureConfig::default()).await;
    let azure = FakeAzure::start(FakeAzureConfig {
        page_size: 1,
        next_link_base: Some(elsewhere.resource_manager_endpoint().to_owned()),
        ..two_groups()
    })
    .await;
    let app = spawn(&azure, Backend::Sqlite).await;
    let body = service_principal(
        "paged",
        &["docker-registry"],
        DEFAULT_CLIENT_SECRET,
        json!({}),
    );
    let verified = verify_configuration(&app, body, "").await.ok();
    let error = entry_error(&verified, "docker-registry");
    assert!(
        error.contains(&format!(
            "Azure Resource Manager linked to a page outside its endpoint ({}/subscriptions/",
            elsewhere.resource_manager_endpoint()
        )) && error.contains("it was not followed"),
        "{error}"
    );
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );
    app.stop().await;
}

/// An Azure endpoint that redirects: the credential-bearing request is not sent on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_from_azure_endpoints_are_not_followed() {
    let elsewhere = FakeAzure::start(FakeAzureConfig::default()).await;
    let azure = FakeAzure::start(two_groups()).await;
    let app = spawn(&azure, Backend::Sqlite).await;
    // (Azure AD's client reads the empty redirect as a token answer it cannot parse.)
    for (surface, name, expected) in [
        (
            Surface::ActiveDirectory,
            "redirected-aad",
            "Azure AD issued no token",
        ),
        (
            Surface::ResourceManager,
            "redirected-arm",
            "307 Temporary Redirect",
        ),
    ] {
        let target = format!(
            "{}/{}/oauth2/v2.0/token",
            elsewhere.authority_host(),
            DEFAULT_TENANT_ID
        );
        azure.fail_next_requests(surface, 10, Fault::RedirectTo(target));
        let body = service_principal(name, &["azure-generic"], DEFAULT_CLIENT_SECRET, json!({}));
        let verified = verify_configuration(&app, body, "").await.ok();
        let error = verified["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{verified}"));
        assert!(error.contains(expected), "{surface:?}: {error}");
        azure.fail_next_requests(surface, 0, Fault::TooManyRequests);
    }
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arm_slower_than_the_request_timeout_ends_in_a_timeout_error() {
    let azure = FakeAzure::start(two_groups()).await;
    let app = spawn(&azure, Backend::Sqlite).await;
    let body = service_principal("slow", &["azure-generic"], DEFAULT_CLIENT_SECRET, json!({}));
    azure.set_response_delay(Surface::ResourceManager, Some(Duration::from_secs(60)));

    let verified = verify_configuration(&app, body, "").await.ok();
    let error = verified["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{verified}"));
    assert!(error.contains("timed out"), "{error}");
    assert!(error.contains("did not answer in time"), "{error}");
    // One attempt per allowed try, each given up on rather than waited out.
    let max_retries = app.config.azure.azure_max_retries as usize;
    assert_eq!(
        arm_requests(&azure).len(),
        1 + max_retries,
        "{:?}",
        azure.requests()
    );
    azure.set_response_delay(Surface::ResourceManager, None);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_azure_ad_outage_is_not_reported_as_refused_credentials() {
    let azure = FakeAzure::start(two_groups()).await;
    let app = spawn(&azure, Backend::Sqlite).await;
    let body = service_principal(
        "aad-down",
        &["azure-generic"],
        DEFAULT_CLIENT_SECRET,
        json!({}),
    );
    azure.fail_next_requests(Surface::ActiveDirectory, 10, Fault::ServiceUnavailable);

    let verified = verify_configuration(&app, body, "").await.ok();
    let error = verified["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{verified}"));
    assert!(
        error.contains("Azure AD failed to issue a token (HTTP 503)"),
        "{error}"
    );
    assert!(!error.contains("refused"), "{error}");
    let aad = azure
        .requests()
        .into_iter()
        .filter(|r| r.surface == Surface::ActiveDirectory)
        .count();
    let max_retries = app.config.azure.azure_max_retries as usize;
    assert_eq!(aad, 1 + max_retries, "{:?}", azure.requests());
    assert!(arm_requests(&azure).is_empty(), "{:?}", azure.requests());
    app.stop().await;
}

// ARM pages long lists.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_of_a_paged_arm_list_is_read() {
    let names = ["reg1", "reg2", "reg3", "reg4", "reg5"];
    let azure = FakeAzure::start(FakeAzureConfig {
        registries: names
            .iter()
            .map(|name| FakeRegistry::new(SUB, "rg1", name))
            .collect(),
        page_size: 2,
        ..FakeAzureConfig::default()
    })
    .await;
    let app = spawn(&azure, Backend::Sqlite).await;
    let body = service_principal(
        "paged",
        &["docker-registry"],
        DEFAULT_CLIENT_SECRET,
        json!({}),
    );

    let verified = verify_configuration(&app, body, "").await.ok();
    let expected: Vec<String> = names.iter().map(|n| format!("{n}.azurecr.io")).collect();
    assert_eq!(ids(&verified, "docker-registry"), expected);
    let pages = arm_requests(&azure)
        .into_iter()
        .filter(|p| p.contains("Microsoft.ContainerRegistry/registries"))
        .count();
    assert_eq!(pages, 3);
    app.stop().await;
}

// A configured resource group scopes what is reached, ignoring case.

async fn a_configured_resource_group_scopes_clusters_and_registries_ignoring_case(
    backend: Backend,
) {
    let azure = FakeAzure::start(two_groups()).await;
    let app = spawn(&azure, backend).await;
    let id = create(
        &app,
        service_principal(
            "scoped",
            &ALL_TYPES,
            DEFAULT_CLIENT_SECRET,
            json!({"resource_group": "RG1"}),
        ),
    )
    .await;

    let verified = verify(&app, &id, "").await.ok();
    assert_eq!(verified["error"], Value::Null, "{verified}");
    assert_eq!(ids(&verified, "kubernetes-cluster"), ["rg1/c1"]);
    assert_eq!(ids(&verified, "docker-registry"), ["reg1.azurecr.io"]);

    // One resource of the group, named without it or with it in another case.
    for resource_id in ["c1", "rg1/c1"] {
        let one = verify(
            &app,
            &id,
            &format!("resource_type=kubernetes-cluster&resource_id={resource_id}"),
        )
        .await
        .ok();
        assert_eq!(one["error"], Value::Null, "{resource_id}: {one}");
        assert_eq!(ids(&one, "kubernetes-cluster"), ["rg1/c1"]);
    }
    let one = verify(&app, &id, "resource_type=docker-registry&resource_id=reg1")
        .await
        .ok();
    assert_eq!(ids(&one, "docker-registry"), ["reg1.azurecr.io"]);

    // Resources of the other group are out of reach.
    let other = verify(&app, &id, "resource_type=kubernetes-cluster&resource_id=c2")
        .await
        .ok();
    let error = entry_error(&other, "kubernetes-cluster");
    assert!(error.contains("'c2' AKS cluster was not found"), "{error}");
    let other = verify(&app, &id, "resource_type=docker-registry&resource_id=reg2")
        .await
        .ok();
    let error = entry_error(&other, "docker-registry");
    assert!(error.contains("'reg2' registry was not found"), "{error}");
    let refused = verify(
        &app,
        &id,
        "resource_type=kubernetes-cluster&resource_id=rg2/c2",
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(
        refused.error().1.contains("does not match"),
        "{}",
        refused.body
    );
    app.stop().await;
}

// Expired credentials.

async fn an_expired_connector_is_refused_without_calling_azure(backend: Backend) {
    let azure = FakeAzure::start(two_groups()).await;
    let app = spawn(&azure, backend).await;
    let token = azure.mint_aad_token(DEFAULT_CLIENT_ID, ARM_AUDIENCE, 3600);
    let id = create(&app, access_token("expiring", &["docker-registry"], &token)).await;
    // Within the default five minutes of skew before expires_at, it counts as expired.
    app.clock.advance(Duration::from_secs(56 * 60));

    let verified = verify(&app, &id, "").await.ok();
    assert_eq!(verified["error"], EXPIRED);
    assert_eq!(entry_error(&verified, "docker-registry"), EXPIRED);

    let refused = client(&app, &id, "resource_id=reg1").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert!(refused.headers.get("www-authenticate").is_none());
    assert_eq!(
        refused.error(),
        ("AuthorizationException".to_owned(), EXPIRED.to_owned())
    );
    assert!(azure.requests().is_empty(), "{:?}", azure.requests());
    app.stop().await;
}

// A static ARM token.

async fn an_arm_access_token_lists_registries_but_cannot_reach_blob_containers(backend: Backend) {
    let azure = FakeAzure::start(two_groups()).await;
    let app = spawn(&azure, backend).await;
    let token = azure.mint_aad_token(DEFAULT_CLIENT_ID, ARM_AUDIENCE, 3600);
    let id = create(&app, access_token("static", &ALL_TYPES, &token)).await;

    let verified = verify(&app, &id, "").await.ok();
    assert_eq!(verified["error"], Value::Null, "{verified}");
    assert_eq!(
        ids(&verified, "docker-registry"),
        ["reg1.azurecr.io", "reg2.azurecr.io"]
    );
    let error = entry_error(&verified, "blob-container");
    assert!(
        error.contains("'access-token' authentication method cannot reach blob containers"),
        "{error}"
    );
    assert!(error.contains("Azure Storage does not accept"), "{error}");

    // The token is used as it is: Azure AD is never asked for another.
    let docker = client(&app, &id, "resource_type=docker-registry&resource_id=reg1")
        .await
        .ok();
    assert_eq!(docker["body"]["connector_type"], "docker");
    assert!(
        azure
            .requests()
            .iter()
            .all(|r| r.surface != Surface::ActiveDirectory),
        "{:?}",
        azure.requests()
    );
    // No storage call is made for blob containers.
    assert!(
        arm_requests(&azure)
            .iter()
            .all(|p| !p.contains("Microsoft.Storage")),
        "{:?}",
        azure.requests()
    );
    app.stop().await;
}

// The implicit-auth gate.

fn assert_implicit_refused(reply: &Reply, naming: &[&str]) {
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let (_, message) = reply.error();
    for expected in naming {
        assert!(
            message.contains(expected),
            "{expected} missing from: {message}"
        );
    }
}

async fn implicit_auth_is_refused_while_disabled(backend: Backend) {
    let azure = FakeAzure::start(two_groups()).await;
    let app = spawn(&azure, backend).await;
    let body = implicit("implicit", &["docker-registry"]);
    let gate = ["ZENML_ENABLE_IMPLICIT_AUTH_METHODS"];
    let registered = app
        .post("/api/v1/service_connectors", &app.admin, body.clone())
        .await;
    assert_implicit_refused(&registered, &gate);
    assert_implicit_refused(&verify_configuration(&app, body, "").await, &gate);
    assert!(azure.requests().is_empty(), "{:?}", azure.requests());
    app.stop().await;
}

fn server_identity(config: &mut connector_hub::config::ServeConfig) {
    config.enable_implicit_auth_methods = true;
    config.azure.azure_tenant_id = Some(DEFAULT_TENANT_ID.to_owned());
    config.azure.azure_client_id = Some(DEFAULT_CLIENT_ID.to_owned());
    config.azure.azure_client_secret = Some(DEFAULT_CLIENT_SECRET.to_owned());
}

async fn enabled_implicit_auth_lends_the_server_identity_until_disabled_again(backend: Backend) {
    let azure = FakeAzure::start(two_groups()).await;
    let app = TestApp::spawn_with_azure(backend, &azure, server_identity).await;
    let body = implicit("implicit", &["docker-registry"]);

    let verified = verify_configuration(&app, body.clone(), "").await.ok();
    assert_eq!(verified["error"], Value::Null, "{verified}");
    assert_eq!(
        ids(&verified, "docker-registry"),
        ["reg1.azurecr.io", "reg2.azurecr.io"]
    );
    let id = create(&app, body).await;
    let stored = verify(&app, &id, "").await.ok();
    assert_eq!(stored["error"], Value::Null, "{stored}");

    // Switched off again: the stored connector can be neither verified nor used.
    let app = app
        .restart_with(|config| config.enable_implicit_auth_methods = false)
        .await;
    let gate = ["ZENML_ENABLE_IMPLICIT_AUTH_METHODS"];
    assert_implicit_refused(&verify(&app, &id, "").await, &gate);
    assert_implicit_refused(&client(&app, &id, "resource_id=reg1").await, &gate);
    app.stop().await;
}

async fn implicit_auth_limited_to_other_workspaces_is_refused_here(backend: Backend) {
    let azure = FakeAzure::start(two_groups()).await;
    let app = TestApp::spawn_with_azure(backend, &azure, |config| {
        server_identity(config);
        config.implicit_auth_workspaces = Some(vec!["other".into()]);
    })
    .await;
    let body = implicit("implicit", &["docker-registry"]);
    let restriction = ["--implicit-auth-workspaces", "'default' is not one of them"];
    let registered = app
        .post("/api/v1/service_connectors", &app.admin, body.clone())
        .await;
    assert_implicit_refused(&registered, &restriction);
    assert_implicit_refused(&verify_configuration(&app, body, "").await, &restriction);
    assert!(azure.requests().is_empty(), "{:?}", azure.requests());
    app.stop().await;
}

/// `--implicit-auth-workspaces` names a workspace by name or by id; either way implicit
/// connectors work there, and only there.
async fn implicit_auth_allowed_for_one_workspace_by_name_or_id_works_there_alone(backend: Backend) {
    let azure = FakeAzure::start(two_groups()).await;
    let mut app = TestApp::spawn_with_azure(backend, &azure, server_identity).await;
    let team = app.create_workspace("team").await;
    let team_id = team["id"].as_str().unwrap().to_owned();
    app.put(
        "/api/v1/workspaces/team/members/default",
        &app.admin,
        json!({"role": "admin"}),
    )
    .await
    .ok();
    let body = implicit("implicit", &["docker-registry"]);
    for allowed in ["team".to_owned(), team_id] {
        app = app
            .restart_with(|config| config.implicit_auth_workspaces = Some(vec![allowed.clone()]))
            .await;
        let there = verify_configuration(&app, body.clone(), "project_name_or_id=team")
            .await
            .ok();
        assert_eq!(there["error"], Value::Null, "{allowed}: {there}");
        assert_eq!(
            ids(&there, "docker-registry"),
            ["reg1.azurecr.io", "reg2.azurecr.io"]
        );
        let created = app
            .post(
                "/api/v1/service_connectors?project_name_or_id=team",
                &app.admin,
                body.clone(),
            )
            .await
            .ok();
        let id = created["id"].as_str().unwrap().to_owned();
        let used = client(&app, &id, "resource_id=reg1&project_name_or_id=team")
            .await
            .ok();
        assert_eq!(
            used["body"]["connector_type"], "docker",
            "{allowed}: {used}"
        );
        app.delete(
            &format!("/api/v1/service_connectors/{id}?project_name_or_id=team"),
            &app.admin,
        )
        .await
        .ok();

        let elsewhere = verify_configuration(&app, body.clone(), "").await;
        assert_implicit_refused(
            &elsewhere,
            &["--implicit-auth-workspaces", "'default' is not one of them"],
        );
    }
    app.stop().await;
}

// Client requests that do not fit the connector.

async fn client_requests_that_do_not_fit_the_connector_are_bad_requests(backend: Backend) {
    let azure = FakeAzure::start(two_groups()).await;
    let app = spawn(&azure, backend).await;
    let multi = create(
        &app,
        service_principal("multi", &ALL_TYPES, DEFAULT_CLIENT_SECRET, json!({})),
    )
    .await;
    let clusters = create(
        &app,
        service_principal(
            "clusters",
            &["kubernetes-cluster"],
            DEFAULT_CLIENT_SECRET,
            json!({}),
        ),
    )
    .await;

    for (id, query, says) in [
        (&multi, "", "a resource type must be specified"),
        (
            &multi,
            "resource_id=c1",
            "a resource type must be specified too",
        ),
        (
            &multi,
            "resource_type=kubernetes-cluster",
            "a resource name must be specified",
        ),
        (&clusters, "", "a resource name must be specified"),
        (
            &multi,
            "resource_type=s3-bucket&resource_id=data",
            "different resource type was requested: 's3-bucket'",
        ),
        (
            &clusters,
            "resource_type=docker-registry&resource_id=reg1",
            "different resource type was requested: 'docker-registry'",
        ),
    ] {
        let refused = client(&app, id, query).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            refused.body
        );
        let (class, message) = refused.error();
        assert_eq!(class, "ValueError", "{query}");
        assert!(message.contains(says), "{query}: {message}");
    }
    assert!(azure.requests().is_empty(), "{:?}", azure.requests());
    app.stop().await;
}

// Resource names cannot steer ARM.

async fn resource_names_cannot_steer_arm_requests(backend: Backend) {
    let azure = FakeAzure::start(two_groups()).await;
    let app = spawn(&azure, backend).await;
    let id = create(
        &app,
        service_principal("steer", &ALL_TYPES, DEFAULT_CLIENT_SECRET, json!({})),
    )
    .await;

    // Malformed names in the request are refused before any call.
    for (resource_type, resource_id) in [
        ("kubernetes-cluster", "rg1/../../x"),
        ("kubernetes-cluster", "rg1/c1%3Fapi-version%3D1"),
        ("kubernetes-cluster", "..%2F..%2Fc1"),
        ("docker-registry", "reg1%3Fx%3Dy"),
        ("docker-registry", "..%2Freg1"),
    ] {
        let query = format!("resource_type={resource_type}&resource_id={resource_id}");
        let refused = verify(&app, &id, &query).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            refused.body
        );
        assert!(
            refused.error().1.contains("invalid resource ID"),
            "{}",
            refused.body
        );
        let refused = client(&app, &id, &query).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            refused.body
        );
    }
    assert!(azure.requests().is_empty(), "{:?}", azure.requests());

    // A resource group that tries to climb out of its place in the path is refused by the
    // engine: the named resource gets an error and ARM sees nothing but the subscription
    // lookup.
    for group in ["rg1/../..", "..", "rg1?api-version=1"] {
        let configured = create(
            &app,
            service_principal(
                &format!("steer-group-{}", group.len()),
                &ALL_TYPES,
                DEFAULT_CLIENT_SECRET,
                json!({"resource_group": group}),
            ),
        )
        .await;
        for (resource_type, resource_id) in
            [("kubernetes-cluster", "c1"), ("docker-registry", "reg1")]
        {
            let query = format!("resource_type={resource_type}&resource_id={resource_id}");
            let verified = verify(&app, &configured, &query).await.ok();
            let error = entry_error(&verified, resource_type);
            assert!(
                error.contains("is not a valid Azure") || error.contains("invalid resource ID"),
                "{group} {query}: {error}"
            );
        }
    }
    let seen = arm_requests(&azure);
    assert!(!seen.is_empty());
    for path in &seen {
        assert!(
            path.starts_with("/subscriptions?"),
            "ARM was asked for {path}; all: {seen:?}"
        );
    }
    assert!(
        azure
            .requests()
            .iter()
            .all(|r| !r.path_and_query.contains("..")
                && !r.path_and_query.to_ascii_lowercase().contains("%2e")),
        "{:?}",
        azure.requests()
    );
    app.stop().await;
}

on_both_backends!(
    a_wrong_client_secret_reports_azure_ads_refusal_and_lists_nothing,
    a_missing_cluster_role_fails_only_the_cluster_entry_and_names_the_role,
    a_registry_pull_refusal_names_acr_pull,
    a_configured_resource_group_scopes_clusters_and_registries_ignoring_case,
    an_expired_connector_is_refused_without_calling_azure,
    an_arm_access_token_lists_registries_but_cannot_reach_blob_containers,
    implicit_auth_is_refused_while_disabled,
    enabled_implicit_auth_lends_the_server_identity_until_disabled_again,
    implicit_auth_limited_to_other_workspaces_is_refused_here,
    implicit_auth_allowed_for_one_workspace_by_name_or_id_works_there_alone,
    client_requests_that_do_not_fit_the_connector_are_bad_requests,
    resource_names_cannot_steer_arm_requests,
);
