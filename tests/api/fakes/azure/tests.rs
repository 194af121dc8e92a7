//! Self-tests: the fake answers as Azure documents, to a client that trusts only its CA.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD};
use reqwest::{Certificate, Client, StatusCode, header};
use serde_json::Value;

use super::*;

/// The user name Docker logs in with when its password is an ACR token.
const ACR_TOKEN_USER: &str = "00000000-0000-0000-0000-000000000000";

const MANAGEMENT_SCOPE: &str = "https://management.azure.com/.default";
const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

fn client(azure: &FakeAzure) -> Client {
    Client::builder()
        .add_root_certificate(Certificate::from_pem(azure.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap()
}

async fn request_token(azure: &FakeAzure, secret: &str, scope: &str) -> reqwest::Response {
    client(azure)
        .post(azure.token_url())
        .form(&[
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", secret),
            ("grant_type", "client_credentials"),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap()
}

async fn access_token(azure: &FakeAzure, scope: &str) -> String {
    let response = request_token(azure, DEFAULT_CLIENT_SECRET, scope).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// The claims of a JWT, unchecked.
fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn arm_get(azure: &FakeAzure, url: &str) -> reqwest::Response {
    let token = access_token(azure, MANAGEMENT_SCOPE).await;
    get_as(azure, url, &token).await
}

async fn get_as(azure: &FakeAzure, url: &str, token: &str) -> reqwest::Response {
    client(azure)
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Azurite's List Containers: `GET {blob_endpoint}?comp=list`.
async fn list_containers(azure: &FakeAzure, account: &str, token: &str) -> reqwest::Response {
    let request = client(azure).get(format!("{}?comp=list", azure.blob_endpoint(account)));
    blob_storage::authorize(request, token)
        .send()
        .await
        .unwrap()
}

/// The container names in a List Containers answer, in order.
fn container_names(xml: &str) -> Vec<&str> {
    assert!(xml.contains("<EnumerationResults "), "{xml}");
    (xml.split("<Name>").skip(1))
        .map(|rest| rest.split_once("</Name>").unwrap().0)
        .collect()
}

/// The value of `key: value` in a kubeconfig, for the first line that has it.
fn kubeconfig_value(kubeconfig: &str, key: &str) -> Option<String> {
    kubeconfig.lines().find_map(|line| {
        line.trim()
            .strip_prefix(&format!("{key}: "))
            .map(ToOwned::to_owned)
    })
}

#[tokio::test]
async fn token_endpoint_issues_tokens_and_rejects_a_wrong_secret() {
    let azure = FakeAzure::start(FakeAzureConfig::default()).await;

    let response = request_token(&azure, DEFAULT_CLIENT_SECRET, MANAGEMENT_SCOPE).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    let claims = jwt_claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "https://management.azure.com/");
    assert_eq!(
        claims["iss"],
        format!("https://sts.windows.net/{DEFAULT_TENANT_ID}/")
    );
    assert_eq!(claims["tid"], DEFAULT_TENANT_ID);
    assert_eq!(claims["appid"], DEFAULT_CLIENT_ID);
    let exp = claims["exp"].as_i64().unwrap();
    assert_eq!(exp - claims["iat"].as_i64().unwrap(), 3599);
    // Valid now, by this machine's clock, and not before.
    let now = chrono::Utc::now().timestamp();
    assert!(
        claims["nbf"].as_i64().unwrap() <= now && now < exp,
        "{claims}"
    );

    let response = request_token(&azure, "wrong", MANAGEMENT_SCOPE).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"][0], 7000215);
    let description = body["error_description"].as_str().unwrap();
    assert!(description.starts_with("AADSTS7000215: Invalid client secret provided."));
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[field].is_string(), "{field} missing from {body}");
    }
}

#[tokio::test]
async fn token_audience_follows_the_scope_and_unknown_tenants_are_refused() {
    let azure = FakeAzure::start(FakeAzureConfig::default()).await;
    for (scope, audience) in [
        (
            "https://storage.azure.com/.default",
            "https://storage.azure.com",
        ),
        (
            "6dae42f8-4368-4678-94ff-3960e28e3630/.default",
            AKS_AAD_SERVER_APP_ID,
        ),
    ] {
        assert_eq!(
            jwt_claims(&access_token(&azure, scope).await)["aud"],
            audience
        );
    }

    let url = format!("{}/not-my-tenant/oauth2/v2.0/token", azure.authority_host());
    let response = client(&azure)
        .post(url)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error_codes"][0], 90002);
}

#[tokio::test]
async fn resource_manager_serves_subscriptions_to_bearers_of_arm_tokens() {
    let azure = FakeAzure::start(FakeAzureConfig::default()).await;
    let arm = azure.resource_manager_endpoint();

    let response = arm_get(
        &azure,
        &format!("{arm}/subscriptions?api-version=2022-12-01"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let subscription = &body["value"][0];
    assert_eq!(subscription["subscriptionId"], DEFAULT_SUBSCRIPTION_ID);
    assert_eq!(subscription["tenantId"], DEFAULT_TENANT_ID);
    assert_eq!(subscription["displayName"], "Example Subscription");
    assert_eq!(subscription["state"], "Enabled");
    assert!(body.get("nextLink").is_none());

    let one = format!("{arm}/subscriptions/{DEFAULT_SUBSCRIPTION_ID}?api-version=2022-12-01");
    let body: Value = arm_get(&azure, &one).await.json().await.unwrap();
    assert_eq!(
        body["id"],
        format!("/subscriptions/{DEFAULT_SUBSCRIPTION_ID}")
    );

    let response = client(&azure).get(&one).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let storage_token = access_token(&azure, "https://storage.azure.com/.default").await;
    let response = get_as(&azure, &one, &storage_token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationTokenAudience");
}

#[tokio::test]
async fn long_lists_are_paged_with_next_links() {
    let registries = (1..=5)
        .map(|n| FakeRegistry::new(DEFAULT_SUBSCRIPTION_ID, "rg1", &format!("reg{n}")))
        .collect();
    let azure = FakeAzure::start(FakeAzureConfig {
        registries,
        page_size: 2,
        ..FakeAzureConfig::default()
    })
    .await;

    let mut url = Some(format!(
        "{}/subscriptions/{DEFAULT_SUBSCRIPTION_ID}/providers/Microsoft.ContainerRegistry/registries?api-version=2023-07-01",
        azure.resource_manager_endpoint()
    ));
    let mut names = Vec::new();
    let mut pages = 0;
    while let Some(next) = url {
        let body: Value = arm_get(&azure, &next).await.json().await.unwrap();
        for registry in body["value"].as_array().unwrap() {
            names.push(registry["name"].as_str().unwrap().to_owned());
            assert_eq!(
                registry["properties"]["loginServer"],
                azure.registry_login_server(registry["name"].as_str().unwrap())
            );
        }
        url = body["nextLink"].as_str().map(ToOwned::to_owned);
        if let Some(link) = &url {
            assert!(link.starts_with(azure.resource_manager_endpoint()));
            assert!(link.contains("api-version=2023-07-01"));
        }
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["reg1", "reg2", "reg3", "reg4", "reg5"]);
}

#[tokio::test]
async fn a_denied_area_gets_authorization_failed() {
    let mut config = FakeAzureConfig {
        clusters: vec![FakeCluster::new(DEFAULT_SUBSCRIPTION_ID, "rg1", "c1")],
        ..FakeAzureConfig::default()
    };
    config.service_principals[0].permissions = vec![Permission::ReadSubscriptions];
    let azure = FakeAzure::start(config).await;

    let url = format!(
        "{}/subscriptions/{DEFAULT_SUBSCRIPTION_ID}/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/c1?api-version=2024-08-01",
        azure.resource_manager_endpoint()
    );
    let response = arm_get(&azure, &url).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "AuthorizationFailed");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with(&format!(
        "The client '{DEFAULT_CLIENT_ID}' with object id '"
    )));
    assert!(message.contains(
        "perform action 'Microsoft.ContainerService/managedClusters/read' over scope \
         '/subscriptions/291bba3f-e0a5-47bc-a099-3bdcb2a50a05/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/c1'"
    ));

    azure.set_permissions(DEFAULT_CLIENT_ID, &[Permission::ReadClusters]);
    let body: Value = arm_get(&azure, &url).await.json().await.unwrap();
    assert_eq!(body["properties"]["disableLocalAccounts"], false);
    assert!(body["properties"].get("aadProfile").is_none());
}

#[tokio::test]
async fn acr_exchanges_an_aad_token_for_registry_access() {
    let azure = FakeAzure::start(FakeAzureConfig {
        registries: vec![
            FakeRegistry::new(DEFAULT_SUBSCRIPTION_ID, "rg1", "reg1").with_admin_user(),
        ],
        ..FakeAzureConfig::default()
    })
    .await;
    let client = client(&azure);
    let login_server = azure.registry_login_server("reg1");
    let v2 = format!("https://{login_server}/v2/");

    let response = client.get(&v2).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        format!("Bearer realm=\"https://{login_server}/oauth2/token\",service=\"{login_server}\"")
    );
    assert_eq!(
        response.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );

    let aad_token = access_token(&azure, MANAGEMENT_SCOPE).await;
    let response = client
        .post(format!("https://{login_server}/oauth2/exchange"))
        .form(&[
            ("grant_type", "access_token"),
            ("service", &login_server),
            ("tenant", DEFAULT_TENANT_ID),
            ("access_token", &aad_token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();

    let response = client
        .post(format!("https://{login_server}/oauth2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("service", &login_server),
            ("scope", "repository:*:*"),
            ("refresh_token", &refresh_token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let acr_token = body["access_token"].as_str().unwrap().to_owned();
    let claims = jwt_claims(&acr_token);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        4500
    );
    assert_eq!(claims["access"][0]["name"], "*");

    let response = client
        .get(&v2)
        .bearer_auth(&acr_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        serde_json::json!({})
    );
    // A refresh token is not an access token.
    let response = client
        .get(&v2)
        .bearer_auth(&refresh_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let password = &azure.config().registries[0].admin_passwords[0];
    let response = client
        .get(&v2)
        .basic_auth("reg1", Some(password))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn aks_admin_kubeconfig_reaches_the_fake_api_server() {
    let azure = FakeAzure::start(FakeAzureConfig {
        clusters: vec![FakeCluster::new(DEFAULT_SUBSCRIPTION_ID, "rg1", "c1")],
        ..FakeAzureConfig::default()
    })
    .await;
    let token = access_token(&azure, MANAGEMENT_SCOPE).await;
    let response = client(&azure)
        .post(format!(
            "{}/subscriptions/{DEFAULT_SUBSCRIPTION_ID}/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/c1/listClusterAdminCredential?api-version=2024-08-01",
            azure.resource_manager_endpoint()
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["kubeconfigs"][0]["name"], "clusterAdmin");
    let kubeconfig = BASE64
        .decode(body["kubeconfigs"][0]["value"].as_str().unwrap())
        .unwrap();
    let kubeconfig = String::from_utf8(kubeconfig).unwrap();
    let server = kubeconfig_value(&kubeconfig, "server").unwrap();
    assert_eq!(server, azure.cluster_server_url("c1"));
    let ca = kubeconfig_value(&kubeconfig, "certificate-authority-data").unwrap();
    assert_eq!(BASE64.decode(ca).unwrap(), azure.ca_pem().as_bytes());
    let cluster_token = kubeconfig_value(&kubeconfig, "token").unwrap();
    assert_eq!(cluster_token, azure.cluster_admin_token("c1"));

    let version_url = format!("{server}/version");
    let response = get_as(&azure, &version_url, &cluster_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let version: Value = response.json().await.unwrap();
    assert_eq!(version["major"], "1");
    assert_eq!(version["minor"], "30");
    assert_eq!(version["gitVersion"], "v1.30.3");

    // Without credentials, `/version` is public (`system:public-info-viewer`); with
    // credentials that do not authenticate, it is refused.
    let response = client(&azure).get(&version_url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = get_as(&azure, &version_url, "not-a-token").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let status: Value = response.json().await.unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Unauthorized");
    assert_eq!(status["code"], 401);
}

#[tokio::test]
async fn aad_only_clusters_refuse_admin_credentials_but_take_aad_tokens() {
    let azure = FakeAzure::start(FakeAzureConfig {
        clusters: vec![FakeCluster::new(DEFAULT_SUBSCRIPTION_ID, "rg1", "c1").with_aad_only()],
        ..FakeAzureConfig::default()
    })
    .await;
    let credential_url = |action: &str| {
        format!(
            "{}/subscriptions/{DEFAULT_SUBSCRIPTION_ID}/resourcegroups/rg1/providers/Microsoft.ContainerService/managedClusters/c1/{action}?api-version=2024-08-01",
            azure.resource_manager_endpoint()
        )
    };
    let token = access_token(&azure, MANAGEMENT_SCOPE).await;
    let client = client(&azure);

    let response = client
        .post(credential_url("listClusterAdminCredential"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "BadRequest");
    assert_eq!(
        body["error"]["message"],
        "Getting static credential is not allowed because this cluster is set to disable local accounts."
    );

    let response = client
        .post(credential_url("listClusterUserCredential"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let kubeconfig = BASE64
        .decode(body["kubeconfigs"][0]["value"].as_str().unwrap())
        .unwrap();
    let kubeconfig = String::from_utf8(kubeconfig).unwrap();
    assert_eq!(
        kubeconfig_value(&kubeconfig, "command").unwrap(),
        "kubelogin"
    );
    assert!(kubeconfig_value(&kubeconfig, "token").is_none());

    let aks_token = access_token(&azure, "6dae42f8-4368-4678-94ff-3960e28e3630/.default").await;
    let version_url = format!("{}/version", azure.cluster_server_url("c1"));
    let response = client
        .get(&version_url)
        .bearer_auth(&aks_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = client
        .get(&version_url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn injected_throttling_answers_429_with_retry_after_then_recovers() {
    let azure = FakeAzure::start(FakeAzureConfig::default()).await;
    let url = format!(
        "{}/subscriptions?api-version=2022-12-01",
        azure.resource_manager_endpoint()
    );
    let token = access_token(&azure, MANAGEMENT_SCOPE).await;
    azure.fail_next_requests(Surface::ResourceManager, 2, Fault::TooManyRequests);

    for _ in 0..2 {
        let response = get_as(&azure, &url, &token).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
    let response = get_as(&azure, &url, &token).await;
    assert_eq!(response.status(), StatusCode::OK);

    let arm_requests = azure
        .requests()
        .into_iter()
        .filter(|request| request.surface == Surface::ResourceManager)
        .count();
    assert_eq!(arm_requests, 3);

    azure.fail_next_requests(Surface::ResourceManager, 1, Fault::ServiceUnavailable);
    let response = get_as(&azure, &url, &token).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_response_delay_makes_impatient_clients_time_out() {
    let azure = FakeAzure::start(FakeAzureConfig::default()).await;
    azure.set_response_delay(Surface::ActiveDirectory, Some(Duration::from_secs(30)));
    let impatient = Client::builder()
        .add_root_certificate(Certificate::from_pem(azure.ca_pem().as_bytes()).unwrap())
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let error = impatient
        .post(azure.token_url())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");

    azure.set_response_delay(Surface::ActiveDirectory, None);
    let response = request_token(&azure, DEFAULT_CLIENT_SECRET, MANAGEMENT_SCOPE).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn azurite_lists_an_accounts_containers_to_bearers_of_storage_tokens() {
    let azure = FakeAzure::start(FakeAzureConfig {
        storage_accounts: vec![
            FakeStorageAccount::new(DEFAULT_SUBSCRIPTION_ID, "rg1", "acct1")
                .with_containers(&["alpha", "beta"]),
        ],
        ..FakeAzureConfig::default()
    })
    .await;
    let endpoint = azure.blob_endpoint("acct1");
    assert!(endpoint.starts_with("https://127.0.0.1:"), "{endpoint}");
    assert!(endpoint.ends_with("/acct1/"), "{endpoint}");

    let accounts_url = format!(
        "{}/subscriptions/{DEFAULT_SUBSCRIPTION_ID}/providers/Microsoft.Storage/storageAccounts?api-version=2023-05-01",
        azure.resource_manager_endpoint()
    );
    let body: Value = arm_get(&azure, &accounts_url).await.json().await.unwrap();
    assert_eq!(body["value"][0]["name"], "acct1");
    assert_eq!(
        body["value"][0]["properties"]["primaryEndpoints"]["blob"],
        endpoint
    );

    let token = access_token(&azure, STORAGE_SCOPE).await;
    let response = list_containers(&azure, "acct1", &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let xml = response.text().await.unwrap();
    assert_eq!(container_names(&xml), ["alpha", "beta"]);

    // Seen on its way to Azurite, like every other surface's requests.
    let storage: Vec<_> = (azure.requests().into_iter())
        .filter(|request| request.surface == Surface::BlobStorage)
        .collect();
    assert_eq!(storage.len(), 1, "{storage:?}");
    assert_eq!(storage[0].path_and_query, "/acct1/?comp=list");
    assert_eq!(
        storage[0].header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
    assert_eq!(storage[0].header("x-ms-version"), Some("2023-11-03"));
    assert!(
        !format!("{:?}", storage[0]).contains(&token),
        "printed redacted"
    );
}

#[tokio::test]
async fn azurite_refuses_management_and_expired_tokens() {
    let azure = FakeAzure::start(FakeAzureConfig {
        storage_accounts: vec![
            FakeStorageAccount::new(DEFAULT_SUBSCRIPTION_ID, "rg1", "acct1")
                .with_containers(&["alpha"]),
        ],
        ..FakeAzureConfig::default()
    })
    .await;

    let management_token = access_token(&azure, MANAGEMENT_SCOPE).await;
    let response = list_containers(&azure, "acct1", &management_token).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let xml = response.text().await.unwrap();
    assert!(xml.contains("<Code>AuthenticationFailed</Code>"), "{xml}");
    assert!(xml.contains("Invalid token audience."), "{xml}");

    let expired = azure.mint_aad_token(DEFAULT_CLIENT_ID, STORAGE_AUDIENCE, -60);
    let response = list_containers(&azure, "acct1", &expired).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let xml = response.text().await.unwrap();
    assert!(xml.contains("The token is expired."), "{xml}");
}

#[tokio::test]
async fn accounts_sharing_one_azurite_see_only_their_own_containers() {
    let azure = FakeAzure::start(FakeAzureConfig {
        storage_accounts: vec![
            FakeStorageAccount::new(DEFAULT_SUBSCRIPTION_ID, "rg1", "acct1")
                .with_containers(&["alpha", "beta"]),
            FakeStorageAccount::new(DEFAULT_SUBSCRIPTION_ID, "rg2", "acct2")
                .with_containers(&["gamma"]),
        ],
        ..FakeAzureConfig::default()
    })
    .await;
    let one = azure.blob_endpoint("acct1");
    let two = azure.blob_endpoint("acct2");
    assert_eq!(
        one.strip_suffix("acct1/").unwrap(),
        two.strip_suffix("acct2/").unwrap()
    );

    let token = azure.storage_token(DEFAULT_CLIENT_ID);
    for (account, containers) in [("acct1", &["alpha", "beta"][..]), ("acct2", &["gamma"])] {
        let response = list_containers(&azure, account, &token).await;
        assert_eq!(response.status(), StatusCode::OK);
        let xml = response.text().await.unwrap();
        assert_eq!(container_names(&xml), containers, "{account}");
    }
}

#[tokio::test]
async fn arm_refuses_a_missing_or_unknown_api_version() {
    let azure = FakeAzure::start(FakeAzureConfig::default()).await;
    let arm = azure.resource_manager_endpoint();
    let registries = format!(
        "{arm}/subscriptions/{DEFAULT_SUBSCRIPTION_ID}/providers/Microsoft.ContainerRegistry/registries"
    );
    for (url, code, message) in [
        (
            format!("{arm}/subscriptions"),
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.".to_owned(),
        ),
        (
            format!("{arm}/subscriptions?api-version=2099-01-01"),
            "InvalidApiVersionParameter",
            "The api-version '2099-01-01' is invalid. The supported versions are '2022-12-01,2021-01-01,2020-01-01,2016-06-01'.".to_owned(),
        ),
        // A version of another provider is no version of this one.
        (
            format!("{registries}?api-version=2024-08-01"),
            "InvalidApiVersionParameter",
            "The api-version '2024-08-01' is invalid. The supported versions are '2023-07-01,2023-01-01-preview,2022-12-01,2021-09-01'.".to_owned(),
        ),
    ] {
        let response = arm_get(&azure, &url).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{url}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{url}");
        assert_eq!(body["error"]["message"], message, "{url}");
    }
    let response = arm_get(&azure, &format!("{registries}?api-version=2023-07-01")).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn aad_refuses_unknown_resources_and_several_in_one_request() {
    let azure = FakeAzure::start(FakeAzureConfig::default()).await;
    for (scope, error, code) in [
        (
            "https://management.azure.com/.default https://storage.azure.com/.default",
            "invalid_scope",
            28000,
        ),
        ("https://vault.example/.default", "invalid_resource", 500011),
        (
            "https://management.azure.com/user_impersonation",
            "invalid_scope",
            1002012,
        ),
    ] {
        let response = request_token(&azure, DEFAULT_CLIENT_SECRET, scope).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{scope}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], error, "{scope}");
        assert_eq!(body["error_codes"][0], code, "{scope}");
    }
    // The same resource twice is still one resource.
    let twice = "https://storage.azure.com/.default https://storage.azure.com/.default";
    assert_eq!(
        jwt_claims(&access_token(&azure, twice).await)["aud"],
        STORAGE_AUDIENCE
    );
}

#[tokio::test]
async fn federated_assertions_are_checked_as_jwts() {
    const ISSUER: &str = "https://issuer.example/cluster";
    const SUBJECT: &str = "system:serviceaccount:ns:app";
    let azure = FakeAzure::start(FakeAzureConfig {
        service_principals: vec![
            FakeServicePrincipal::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
                .with_federated_credential(ISSUER, SUBJECT),
        ],
        ..FakeAzureConfig::default()
    })
    .await;
    let exchange = async |assertion: &str| {
        let response = client(&azure)
            .post(azure.token_url())
            .form(&[
                ("client_id", DEFAULT_CLIENT_ID),
                ("client_assertion", assertion),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("grant_type", "client_credentials"),
                ("scope", MANAGEMENT_SCOPE),
            ])
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        (status, body)
    };
    let (status, body) = exchange(&azure.workload_token(ISSUER, SUBJECT, 600)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        jwt_claims(body["access_token"].as_str().unwrap())["appid"],
        DEFAULT_CLIENT_ID
    );

    let wrong_audience = azure
        .shared
        .tokens
        .mint_workload(ISSUER, SUBJECT, "api://elsewhere", 600);
    for (assertion, code) in [
        (
            azure.workload_token("https://other.example", SUBJECT, 600),
            70021,
        ),
        (
            azure.workload_token(ISSUER, "system:serviceaccount:ns:other", 600),
            70021,
        ),
        (wrong_audience, 700212),
        (azure.workload_token(ISSUER, SUBJECT, -60), 700024),
        ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.".to_owned(), 50027),
    ] {
        let (status, body) = exchange(&assertion).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error_codes"][0], code, "{body}");
    }
}

#[tokio::test]
async fn docker_logins_get_no_more_than_the_token_they_present_holds() {
    let azure = FakeAzure::start(FakeAzureConfig {
        registries: vec![
            FakeRegistry::new(DEFAULT_SUBSCRIPTION_ID, "rg1", "reg1").with_admin_user(),
        ],
        ..FakeAzureConfig::default()
    })
    .await;
    let http = client(&azure);
    let login_server = azure.registry_login_server("reg1");
    let aad_token = access_token(&azure, MANAGEMENT_SCOPE).await;
    let refresh: Value = http
        .post(format!("https://{login_server}/oauth2/exchange"))
        .form(&[
            ("grant_type", "access_token"),
            ("service", &login_server),
            ("access_token", &aad_token),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refresh_token = refresh["refresh_token"].as_str().unwrap().to_owned();
    let access_for = async |scope: Option<&str>| {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("service", login_server.as_str()),
            ("refresh_token", refresh_token.as_str()),
        ];
        form.extend(scope.map(|scope| ("scope", scope)));
        let body: Value = http
            .post(format!("https://{login_server}/oauth2/token"))
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    };
    let pull = async |username: &str, password: &str| {
        crate::docker_login::list_tags(&http, &login_server, username, password, "zenml/pipeline")
            .await
    };
    let latest = Ok(vec!["latest".to_owned()]);
    // Every repository, one repository, the refresh token itself, the admin user.
    assert_eq!(
        pull(ACR_TOKEN_USER, &access_for(Some("repository:*:*")).await).await,
        latest
    );
    assert_eq!(
        pull(
            ACR_TOKEN_USER,
            &access_for(Some("repository:zenml/pipeline:pull")).await
        )
        .await,
        latest
    );
    assert_eq!(pull(ACR_TOKEN_USER, &refresh_token).await, latest);
    let admin_password = &azure.config().registries[0].admin_passwords[1];
    assert_eq!(pull("reg1", admin_password).await, latest);

    // A token without the scope opens `/v2/` but no repository, and cannot be widened.
    for narrow in [
        access_for(None).await,
        access_for(Some("repository:other:pull")).await,
        access_for(Some("repository:zenml/pipeline:push")).await,
    ] {
        let refused = pull(ACR_TOKEN_USER, &narrow).await.unwrap_err();
        assert!(
            refused.starts_with("the tag list answered 401")
                && refused.contains(
                    "scope=\"repository:zenml/pipeline:pull\",error=\"insufficient_scope\""
                ),
            "{refused}"
        );
    }
    let refused = pull(ACR_TOKEN_USER, "not a token").await.unwrap_err();
    assert!(
        refused.starts_with("the token endpoint answered 401"),
        "{refused}"
    );
    let refused = pull("reg1", "wrong password").await.unwrap_err();
    assert!(
        refused.starts_with("the token endpoint answered 401"),
        "{refused}"
    );
}

#[tokio::test]
async fn roles_on_one_resource_group_reach_that_group_only() {
    let sub = DEFAULT_SUBSCRIPTION_ID;
    let azure = FakeAzure::start(FakeAzureConfig {
        service_principals: vec![
            FakeServicePrincipal::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
                .only_on_group("rg1"),
        ],
        registries: vec![
            FakeRegistry::new(sub, "rg1", "reg1"),
            FakeRegistry::new(sub, "rg2", "reg2"),
        ],
        ..FakeAzureConfig::default()
    })
    .await;
    let arm = azure.resource_manager_endpoint();
    let provider = "providers/Microsoft.ContainerRegistry/registries";
    let names = |body: &Value| -> Vec<String> {
        (body["value"].as_array().unwrap().iter())
            .map(|item| item["name"].as_str().unwrap().to_owned())
            .collect()
    };
    // The subscription shows, and its lists hold what the group holds.
    let body: Value = arm_get(
        &azure,
        &format!("{arm}/subscriptions?api-version=2022-12-01"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["value"][0]["subscriptionId"], sub);
    let body: Value = arm_get(
        &azure,
        &format!("{arm}/subscriptions/{sub}/{provider}?api-version=2023-07-01"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(names(&body), ["reg1"]);
    let in_group =
        |group: &str| format!("{arm}/subscriptions/{sub}/resourceGroups/{group}/{provider}");
    let body: Value = arm_get(
        &azure,
        &format!("{}?api-version=2023-07-01", in_group("rg1")),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(names(&body), ["reg1"]);
    // The other group is closed, listed or by name.
    for url in [
        format!("{}?api-version=2023-07-01", in_group("rg2")),
        format!("{}/reg2?api-version=2023-07-01", in_group("rg2")),
    ] {
        let response = arm_get(&azure, &url).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{url}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "AuthorizationFailed");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("/resourceGroups/rg2"),
            "{body}"
        );
    }
}
