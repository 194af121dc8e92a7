//! The Azure engine against the fake Azure (Azure AD, ARM, ACR, AKS) and Azurite: verifying
//! connectors, listing what they reach, and the short-lived credentials handed to clients.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::docker_login;
use crate::fakes::azure::{
    ARM_AUDIENCE, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_SUBSCRIPTION_ID,
    DEFAULT_TENANT_ID, FakeAzure, FakeAzureConfig, FakeCluster, FakeRegistry, FakeServicePrincipal,
    FakeStorageAccount, Permission, Surface,
};
use crate::harness::{Backend, TestApp, on_both_backends};

pub const ALL_TYPES: [&str; 4] = [
    "azure-generic",
    "blob-container",
    "kubernetes-cluster",
    "docker-registry",
];

/// One subscription holding a storage account with two containers, a registry, a cluster
/// with local accounts and an AAD-only one.
pub fn estate() -> FakeAzureConfig {
    let sub = DEFAULT_SUBSCRIPTION_ID;
    FakeAzureConfig {
        storage_accounts: vec![
            FakeStorageAccount::new(sub, "rg1", "acct1").with_containers(&["data", "models"]),
        ],
        registries: vec![FakeRegistry::new(sub, "rg1", "reg1").with_admin_user()],
        clusters: vec![
            FakeCluster::new(sub, "rg1", "c1"),
            FakeCluster::new(sub, "rg2", "c2").with_aad_only(),
        ],
        ..FakeAzureConfig::default()
    }
}

/// A service-principal connector for every resource type, as the API takes it.
pub fn service_principal(name: &str, secret: &str) -> Value {
    json!({
        "name": name,
        "connector_type": "azure",
        "auth_method": "service-principal",
        "resource_types": ALL_TYPES,
        "configuration": {
            "tenant_id": DEFAULT_TENANT_ID,
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": secret,
        },
    })
}

/// Verifies a stored connector as the admin: ZenML's resources model.
pub async fn verify_stored(app: &TestApp, id: &str) -> Value {
    let path = format!("/api/v1/service_connectors/{id}/verify");
    app.put(&path, &app.admin, json!({})).await.ok()
}

/// Registers `connector` shared, as the admin, and returns its client as the admin gets it,
/// after checking that a member, who sees the connector, is refused the client and is never
/// shown `secret`: for types whose client is the connector itself.
pub async fn client_only_for_secret_readers(
    app: &TestApp,
    mut connector: Value,
    secret: &str,
) -> Value {
    connector["shared"] = json!(true);
    let id = register(app, connector).await;
    let member = app.create_user("bob", "default", "member").await;
    let sees = app
        .get(&format!("/api/v1/service_connectors/{id}"), &member)
        .await;
    assert_eq!(sees.status, StatusCode::OK);
    let refused = app
        .get(&format!("/api/v1/service_connectors/{id}/client"), &member)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(!refused.body.to_string().contains(secret));
    let path = format!("/api/v1/service_connectors/{id}/client");
    app.get(&path, &app.admin).await.ok()
}

/// A verify result's error, if any, and the ids its first resource type reached.
pub fn verify_outcome(verified: &Value) -> (Option<String>, Value) {
    (
        verified["error"].as_str().map(str::to_owned),
        verified["resources"][0]["resource_ids"].clone(),
    )
}

/// How many requests `surface` of the fake has received so far.
pub fn requests_to(azure: &FakeAzure, surface: Surface) -> usize {
    (azure.requests().iter())
        .filter(|r| r.surface == surface)
        .count()
}

/// Verifies an unsaved configuration as the admin, with `query` (e.g. `?list_resources=false`).
pub async fn verify_draft(app: &TestApp, query: &str, body: Value) -> Value {
    let path = format!("/api/v1/service_connectors/verify{query}");
    app.post(&path, &app.admin, body).await.ok()
}

/// Registers a connector as the admin; its id.
pub async fn register(app: &TestApp, body: Value) -> String {
    let created = app
        .post("/api/v1/service_connectors", &app.admin, body)
        .await
        .ok();
    created["id"].as_str().unwrap().to_owned()
}

/// A client that trusts the fake's CA, as a ZenML client handed these credentials would.
pub fn trusting(azure: &FakeAzure) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_merge([reqwest::Certificate::from_pem(azure.ca_pem().as_bytes()).unwrap()])
        .build()
        .unwrap()
}

fn ids(result: &Value, resource_type: &str) -> Vec<String> {
    result["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource_type"] == resource_type)
        .unwrap_or_else(|| panic!("no {resource_type} entry in {result}"))["resource_ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no {resource_type} ids in {result}"))
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect()
}

async fn a_multi_type_service_principal_reaches_every_resource_type(backend: Backend) {
    let azure = FakeAzure::start(estate()).await;
    let app = TestApp::spawn_with_azure(backend, &azure, |_| {}).await;
    let id = register(&app, service_principal("az-all", DEFAULT_CLIENT_SECRET)).await;

    let verified = verify_stored(&app, &id).await;
    assert_eq!(verified["error"], Value::Null, "{verified}");
    assert_eq!(ids(&verified, "azure-generic"), ["Example Subscription"]);
    assert_eq!(
        ids(&verified, "blob-container"),
        ["az://data", "az://models"]
    );
    assert_eq!(ids(&verified, "kubernetes-cluster"), ["rg1/c1", "rg2/c2"]);
    assert_eq!(ids(&verified, "docker-registry"), ["reg1.azurecr.io"]);

    let http = trusting(&azure);
    let client = async |resource_type: &str, resource_id: &str| {
        let path = format!(
            "/api/v1/service_connectors/{id}/client?resource_type={resource_type}&resource_id={resource_id}"
        );
        app.get(&path, &app.admin).await
    };

    // azure-generic: an ARM token that ARM accepts.
    let generic = client("azure-generic", "Example%20Subscription").await.ok();
    assert_eq!(generic["body"]["connector_type"], "azure");
    assert_eq!(generic["body"]["auth_method"], "access-token");
    assert!(generic["body"]["expires_at"].is_string(), "{generic}");
    let token = generic["metadata"]["configuration"]["token"]
        .as_str()
        .unwrap();
    let subscriptions = http
        .get(format!(
            "{}/subscriptions?api-version=2022-12-01",
            azure.resource_manager_endpoint()
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(subscriptions.status(), StatusCode::OK);

    // blob-container: a storage token that Azurite accepts.
    let blob = client("blob-container", "az://data").await.ok();
    assert_eq!(blob["body"]["resource_id"], "az://data");
    let token = blob["metadata"]["configuration"]["token"].as_str().unwrap();
    let listing = http
        .get(format!("{}?comp=list", azure.blob_endpoint("acct1")))
        .bearer_auth(token)
        .header("x-ms-version", "2023-11-03")
        .header("x-ms-date", httpdate_now())
        .send()
        .await
        .unwrap();
    assert_eq!(listing.status(), StatusCode::OK);
    assert!(listing.text().await.unwrap().contains("<Name>data</Name>"));

    // kubernetes-cluster: a service-account token for the cluster with local accounts, and an
    // AAD token for the AAD-only one; both expire.
    let mut kubes = Vec::new();
    for cluster in ["rg1/c1", "rg2/c2"] {
        let kube = client("kubernetes-cluster", cluster).await.ok();
        assert_eq!(kube["body"]["connector_type"], "kubernetes");
        assert_eq!(kube["body"]["auth_method"], "token");
        assert!(kube["body"]["expires_at"].is_string(), "{kube}");
        let configuration = &kube["metadata"]["configuration"];
        let name = cluster.split('/').nth(1).unwrap();
        assert_eq!(configuration["server"], azure.cluster_server_url(name));
        let version = http
            .get(format!(
                "{}/version",
                configuration["server"].as_str().unwrap()
            ))
            .bearer_auth(configuration["token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(version.status(), StatusCode::OK, "{cluster}");
        kubes.push(kube);
    }

    // docker-registry: an ACR token under the all-zero user name.
    let docker = client("docker-registry", "reg1.azurecr.io").await.ok();
    assert_eq!(docker["body"]["connector_type"], "docker");
    let configuration = &docker["metadata"]["configuration"];
    assert_eq!(
        configuration["username"],
        "00000000-0000-0000-0000-000000000000"
    );
    let login_server = azure.registry_login_server("reg1");
    assert_eq!(configuration["registry"], login_server);
    // As Docker uses them: the token handshake, then a pull of a repository.
    let tags = docker_login::list_tags(
        &http,
        &login_server,
        configuration["username"].as_str().unwrap(),
        configuration["password"].as_str().unwrap(),
        "zenml/pipeline",
    )
    .await;
    assert_eq!(tags, Ok(vec!["latest".to_owned()]));

    // The long-lived secret stays on the server, and went to Azure AD's token endpoint
    // alone, in the body; everything else was called with bearer tokens, and ARM with the
    // api-version of its provider.
    for handed_out in [&generic, &blob, &docker].into_iter().chain(&kubes) {
        assert!(!handed_out.to_string().contains(DEFAULT_CLIENT_SECRET));
    }
    let requests = azure.requests();
    for request in &requests {
        let sent_secret = request.contains(DEFAULT_CLIENT_SECRET);
        match request.surface {
            Surface::ActiveDirectory => {
                assert!(
                    request.path_and_query.ends_with("/oauth2/v2.0/token"),
                    "{request:?}"
                );
                assert!(sent_secret, "{request:?}");
                assert_eq!(request.header("authorization"), None, "{request:?}");
            }
            Surface::ResourceManager => {
                assert!(!sent_secret, "{request:?}");
                assert_eq!(request.auth_scheme(), Some("Bearer"), "{request:?}");
                assert!(request.query("api-version").is_some(), "{request:?}");
            }
            _ => assert!(!sent_secret, "{request:?}"),
        }
    }
    // The server listed blobs itself while verifying, with a storage token.
    assert!(
        requests
            .iter()
            .any(|request| request.surface == Surface::BlobStorage
                && request.auth_scheme() == Some("Bearer")
                && request.query("comp").as_deref() == Some("list")),
        "{requests:?}"
    );
    app.stop().await;
}

/// `x-ms-date`: the current time in RFC 1123 form.
pub fn httpdate_now() -> String {
    chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// A principal whose roles are on one resource group, as least privilege has it, lists what
/// that group holds and nothing more; what lies elsewhere is out of its reach.
async fn roles_on_one_resource_group_reach_that_group_alone(backend: Backend) {
    let mut config = estate();
    config.service_principals = vec![
        FakeServicePrincipal::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).only_on_group("rg1"),
    ];
    let azure = FakeAzure::start(config).await;
    let app = TestApp::spawn_with_azure(backend, &azure, |_| {}).await;
    let id = register(&app, service_principal("az-rg1", DEFAULT_CLIENT_SECRET)).await;
    let verified = verify_stored(&app, &id).await;
    assert_eq!(verified["error"], Value::Null, "{verified}");
    assert_eq!(ids(&verified, "azure-generic"), ["Example Subscription"]);
    assert_eq!(
        ids(&verified, "blob-container"),
        ["az://data", "az://models"]
    );
    assert_eq!(ids(&verified, "kubernetes-cluster"), ["rg1/c1"]);
    assert_eq!(ids(&verified, "docker-registry"), ["reg1.azurecr.io"]);

    let client = |resource_type: &str, resource_id: &str| {
        format!(
            "/api/v1/service_connectors/{id}/client?resource_type={resource_type}&resource_id={resource_id}"
        )
    };
    app.get(&client("kubernetes-cluster", "rg1/c1"), &app.admin)
        .await
        .ok();
    let elsewhere = app
        .get(&client("kubernetes-cluster", "rg2/c2"), &app.admin)
        .await;
    assert_eq!(
        elsewhere.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        elsewhere.body
    );
    let (class, message) = elsewhere.error();
    assert_eq!(class, "AuthorizationException");
    assert!(
        message.contains(
            "does not have authorization to perform action \
             'Microsoft.ContainerService/managedClusters/read' over scope \
             '/subscriptions/291bba3f-e0a5-47bc-a099-3bdcb2a50a05/resourceGroups/rg2/"
        ),
        "{message}"
    );
    app.stop().await;
}

async fn tokens_are_cached_per_connector_and_scope(backend: Backend) {
    let azure = FakeAzure::start(estate()).await;
    let app = TestApp::spawn_with_azure(backend, &azure, |_| {}).await;
    let token_requests = || {
        azure
            .requests()
            .iter()
            .filter(|r| r.surface == Surface::ActiveDirectory)
            .count()
    };
    let mut body = service_principal("az-registries", DEFAULT_CLIENT_SECRET);
    body["resource_types"] = json!(["docker-registry"]);
    let id = register(&app, body).await;
    let verified_ok = async || {
        let verified = verify_stored(&app, &id).await;
        assert_eq!(verified["error"], Value::Null, "{verified}");
        assert_eq!(ids(&verified, "docker-registry"), ["reg1.azurecr.io"]);
    };
    verified_ok().await;
    assert_eq!(token_requests(), 1, "one ARM token");
    verified_ok().await;
    assert_eq!(token_requests(), 1, "the second verify reuses it");

    // A changed secret gets a token of its own.
    let update = json!({"configuration": {
        "tenant_id": DEFAULT_TENANT_ID, "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET, "resource_group": "rg1",
    }});
    app.put(
        &format!("/api/v1/service_connectors/{id}"),
        &app.admin,
        update,
    )
    .await
    .ok();
    verified_ok().await;
    assert_eq!(token_requests(), 1, "same credentials, same token");
    azure.set_client_secret(DEFAULT_CLIENT_ID, "rotated");
    let update = json!({"configuration": {
        "tenant_id": DEFAULT_TENANT_ID, "client_id": DEFAULT_CLIENT_ID,
        "client_secret": "rotated",
    }});
    app.put(
        &format!("/api/v1/service_connectors/{id}"),
        &app.admin,
        update,
    )
    .await
    .ok();
    verified_ok().await;
    assert_eq!(token_requests(), 2);

    // A token is reused until it is within five minutes of expiring (the fake's tokens live
    // 3599 s from now).
    // (The fake issues tokens by the real clock, so behind the server's advanced clock every
    // new one is close to expiry too: count new tokens, not requests.)
    let arm_bearers = || {
        let mut bearers: Vec<String> = (azure.requests().into_iter())
            .filter(|request| request.surface == Surface::ResourceManager)
            .filter_map(|request| request.header("authorization").map(str::to_owned))
            .collect();
        bearers.dedup();
        bearers
    };
    app.clock.advance(Duration::from_secs(3200));
    verified_ok().await;
    assert_eq!(token_requests(), 2);
    let before = arm_bearers();
    app.clock.advance(Duration::from_secs(200));
    verified_ok().await;
    assert!(token_requests() > 2, "a token about to expire is replaced");
    let after = arm_bearers();
    assert!(after.len() > before.len(), "ARM saw a new token");
    assert!(
        !before.contains(after.last().unwrap()),
        "ARM saw a new token"
    );
    app.stop().await;
}

async fn unsaved_configurations_and_resource_listings_are_verified(backend: Backend) {
    let azure = FakeAzure::start(estate()).await;
    let app = TestApp::spawn_with_azure(backend, &azure, |_| {}).await;
    let verified = verify_draft(
        &app,
        "?list_resources=true",
        service_principal("draft", DEFAULT_CLIENT_SECRET),
    )
    .await;
    assert_eq!(verified["id"], Value::Null);
    assert_eq!(ids(&verified, "docker-registry"), ["reg1.azurecr.io"]);
    let global_only = verify_draft(
        &app,
        "?list_resources=false",
        service_principal("draft", DEFAULT_CLIENT_SECRET),
    )
    .await;
    assert_eq!(global_only["error"], Value::Null);
    assert!(
        global_only["resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["resource_ids"].is_null() && r["error"].is_null()),
        "{global_only}"
    );
    // Nothing was stored.
    let listed = app.get("/api/v1/service_connectors", &app.admin).await.ok();
    assert_eq!(listed["total"], 0);

    for (name, secret) in [("good", DEFAULT_CLIENT_SECRET), ("bad", "wrong")] {
        register(&app, service_principal(name, secret)).await;
    }
    let resources = app
        .get(
            "/api/v1/service_connectors/resources?resource_type=kubernetes-cluster",
            &app.admin,
        )
        .await
        .ok();
    let by_name = |name: &str| {
        resources
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {resources}"))
            .clone()
    };
    assert_eq!(
        ids(&by_name("good"), "kubernetes-cluster"),
        ["rg1/c1", "rg2/c2"]
    );
    let bad = by_name("bad");
    assert!(
        bad["error"].as_str().unwrap().contains("AADSTS7000215"),
        "{bad}"
    );
    assert_eq!(bad["resources"].as_array().unwrap().len(), 1);
    app.stop().await;
}

async fn registries_fall_back_to_their_admin_user_without_acr_pull(backend: Backend) {
    let azure = FakeAzure::start(estate()).await;
    let app = TestApp::spawn_with_azure(backend, &azure, |_| {}).await;
    let id = register(&app, service_principal("az-all", DEFAULT_CLIENT_SECRET)).await;
    let everything_but_pull: Vec<Permission> = Permission::ALL
        .into_iter()
        .filter(|p| *p != Permission::PullFromRegistry)
        .collect();
    azure.set_permissions(DEFAULT_CLIENT_ID, &everything_but_pull);
    let docker = app
        .get(
            &format!(
                "/api/v1/service_connectors/{id}/client?resource_type=docker-registry&resource_id=reg1.azurecr.io"
            ),
            &app.admin,
        )
        .await
        .ok();
    let configuration = &docker["metadata"]["configuration"];
    assert_eq!(configuration["username"], "reg1");
    assert_eq!(configuration["password"], "reg1-password-1");
    assert_eq!(docker["body"]["expires_at"], Value::Null);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_choose_a_cloud_by_name_and_never_an_endpoint() {
    let azure = FakeAzure::start(estate()).await;
    let app = TestApp::spawn_with_azure(Backend::Sqlite, &azure, |_| {}).await;
    let in_cloud = |cloud: &str| {
        let mut body = service_principal("az-cloud", DEFAULT_CLIENT_SECRET);
        body["configuration"]["cloud"] = json!(cloud);
        body
    };
    // The configured custom cloud (the fake) by its name.
    let verified = verify_draft(&app, "", in_cloud("FakeAzure")).await;
    assert_eq!(verified["error"], Value::Null, "{verified}");

    // A national cloud is not offered by a server that offers its custom cloud alone, as
    // every test server does: nothing is called, here or anywhere.
    let before = azure.requests().len();
    let china = verify_draft(&app, "", in_cloud("AzureChinaCloud")).await;
    let error = china["error"].as_str().unwrap();
    assert!(
        error.contains("'AzureChinaCloud' is not known to this server"),
        "{error}"
    );
    assert!(error.contains("FakeAzure"), "{error}");
    assert_eq!(azure.requests().len(), before);

    // Anything else is not a cloud this server knows; a URL is not taken as an endpoint.
    let unknown = verify_draft(&app, "", in_cloud("https://evil.example")).await;
    let error = unknown["error"].as_str().unwrap();
    assert!(error.contains("is not known to this server"), "{error}");
    assert!(error.contains("(known: FakeAzure)"), "{error}");
    assert_eq!(azure.requests().len(), before);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_connectors_can_use_the_servers_workload_identity() {
    const ISSUER: &str = "https://oidc.prod-aks.azure.com/fake-cluster/";
    const SUBJECT: &str = "system:serviceaccount:zenml:connector-hub";
    let mut config = estate();
    config.service_principals = vec![
        FakeServicePrincipal::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
            .with_federated_credential(ISSUER, SUBJECT),
    ];
    let azure = FakeAzure::start(config).await;
    let workload = json!({
        "name": "az-workload",
        "connector_type": "azure",
        "auth_method": "implicit",
        "resource_types": ["docker-registry"],
    });
    // The server presents the token Kubernetes mounted for it: one about another service
    // account, or expired, is refused by Azure AD.
    let cases = [
        (azure.workload_token(ISSUER, SUBJECT, 3600), None),
        (
            azure.workload_token(ISSUER, "system:serviceaccount:zenml:other", 3600),
            Some(
                "AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: 'https://oidc.prod-aks.azure.com/fake-cluster/'. Assertion Subject: 'system:serviceaccount:zenml:other'.",
            ),
        ),
        (
            azure.workload_token(ISSUER, SUBJECT, -60),
            Some("AADSTS700024: Client assertion is not within its valid time range."),
        ),
        (
            "not.a.jwt".to_owned(),
            Some("AADSTS50027: JWT token is invalid or malformed."),
        ),
    ];
    for (token, refusal) in cases {
        let token_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(token_file.path(), &token).unwrap();
        let app = TestApp::spawn_with_azure(Backend::Sqlite, &azure, |config| {
            config.enable_implicit_auth_methods = true;
            config.azure.azure_tenant_id = Some(DEFAULT_TENANT_ID.into());
            config.azure.azure_client_id = Some(DEFAULT_CLIENT_ID.into());
            config.azure.azure_federated_token_file = Some(token_file.path().to_owned());
        })
        .await;
        let verified = verify_draft(&app, "", workload.clone()).await;
        match refusal {
            None => {
                assert_eq!(verified["error"], Value::Null, "{verified}");
                assert_eq!(ids(&verified, "docker-registry"), ["reg1.azurecr.io"]);
            }
            Some(expected) => {
                let error = verified["error"].as_str().unwrap_or_default();
                assert!(
                    error.contains(expected),
                    "expected {expected} in {verified}"
                );
                assert!(!error.contains(&token), "{error}");
            }
        }
        app.stop().await;
    }
    // The assertion went to Azure AD as a client assertion, and nowhere else.
    let token_requests: Vec<_> = (azure.requests().into_iter())
        .filter(|request| request.surface == Surface::ActiveDirectory)
        .collect();
    assert!(!token_requests.is_empty());
    for request in &token_requests {
        let form = request.form();
        let field = |name: &str| {
            form.iter()
                .find(|(key, _)| key == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            field("client_assertion_type"),
            Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            "{request:?}"
        );
        assert_eq!(field("client_secret"), None, "{request:?}");
    }
}

/// An access-token connector's client is its stored token, so a shared one gives members no
/// client, though they may still verify it; its owner and workspace admins get the token.
async fn a_stored_token_is_handed_out_only_to_those_who_may_read_it(backend: Backend) {
    let azure = FakeAzure::start(estate()).await;
    let app = TestApp::spawn_with_azure(backend, &azure, |_| {}).await;
    let expires_at = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let arm_token = azure.mint_aad_token(DEFAULT_CLIENT_ID, ARM_AUDIENCE, 3600);
    let owner = app.create_user("owner", "default", "member").await;
    let member = app.create_user("member", "default", "member").await;
    let workspace_admin = app.create_user("ws-admin", "default", "admin").await;
    let created = app
        .post(
            "/api/v1/service_connectors",
            &owner,
            json!({
                "name": "az-token", "connector_type": "azure", "auth_method": "access-token",
                "resource_types": ["azure-generic"], "configuration": {"token": arm_token},
                "expires_at": expires_at, "shared": true,
            }),
        )
        .await
        .ok();
    let id = created["id"].as_str().unwrap();
    let client_path = format!("/api/v1/service_connectors/{id}/client?resource_type=azure-generic");

    let refused = app.get(&client_path, &member).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let (class, message) = refused.error();
    assert_eq!(class, "IllegalOperationError");
    assert!(!message.contains(&arm_token));
    let verify_path = format!("/api/v1/service_connectors/{id}/verify");
    let verified = app.put(&verify_path, &member, json!({})).await.ok();
    assert_eq!(verified["error"], Value::Null, "{verified}");

    for token in [&owner, &workspace_admin] {
        let client = app.get(&client_path, token).await.ok();
        assert_eq!(client["metadata"]["configuration"]["token"], arm_token);
    }
    app.stop().await;
}

async fn every_auth_method_reaches_what_it_can_of_every_resource_type(backend: Backend) {
    let azure = FakeAzure::start(estate()).await;
    let app = TestApp::spawn_with_azure(backend, &azure, |config| {
        config.enable_implicit_auth_methods = true;
        config.azure.azure_tenant_id = Some(DEFAULT_TENANT_ID.into());
        config.azure.azure_client_id = Some(DEFAULT_CLIENT_ID.into());
        config.azure.azure_client_secret = Some(DEFAULT_CLIENT_SECRET.into());
    })
    .await;
    let expires_at = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let arm_token = azure.mint_aad_token(DEFAULT_CLIENT_ID, ARM_AUDIENCE, 3600);
    let implicit = json!({
        "name": "az-implicit", "connector_type": "azure", "auth_method": "implicit",
        "resource_types": ALL_TYPES,
    });
    let access_token = json!({
        "name": "az-token", "connector_type": "azure", "auth_method": "access-token",
        "resource_types": ALL_TYPES, "configuration": {"token": arm_token},
        "expires_at": expires_at,
    });
    for body in [
        service_principal("az-sp", DEFAULT_CLIENT_SECRET),
        implicit,
        access_token,
    ] {
        let method = body["auth_method"].as_str().unwrap().to_owned();
        let id = register(&app, body).await;
        let verified = verify_stored(&app, &id).await;
        assert_eq!(verified["error"], Value::Null, "{method}: {verified}");
        assert_eq!(ids(&verified, "azure-generic"), ["Example Subscription"]);
        assert_eq!(ids(&verified, "kubernetes-cluster"), ["rg1/c1", "rg2/c2"]);
        assert_eq!(ids(&verified, "docker-registry"), ["reg1.azurecr.io"]);
        if method == "access-token" {
            // A token has one audience; storage does not take one issued for ARM.
            let blob = verified["resources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["resource_type"] == "blob-container")
                .unwrap();
            assert!(blob["resource_ids"].is_null());
            assert!(
                blob["error"]
                    .as_str()
                    .unwrap()
                    .contains("cannot reach blob containers"),
                "{blob}"
            );
        } else {
            assert_eq!(
                ids(&verified, "blob-container"),
                ["az://data", "az://models"]
            );
        }
    }
    app.stop().await;
}

on_both_backends!(
    a_multi_type_service_principal_reaches_every_resource_type,
    roles_on_one_resource_group_reach_that_group_alone,
    tokens_are_cached_per_connector_and_scope,
    unsaved_configurations_and_resource_listings_are_verified,
    registries_fall_back_to_their_admin_user_without_acr_pull,
    a_stored_token_is_handed_out_only_to_those_who_may_read_it,
    every_auth_method_reaches_what_it_can_of_every_resource_type,
);
