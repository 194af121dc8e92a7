//! Service connectors: the type catalogue, create/read/update/delete with validation, secret
//! splitting, ownership and sharing, expiry, filters and resource listing.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Backend, CLOSED_PORT, TestApp, id_of, on_both_backends};

const TENANT: &str = "2f7a1c3e-0000-4000-8000-000000000001";
const CLIENT: &str = "2f7a1c3e-0000-4000-8000-000000000002";
const CLIENT_SECRET: &str = "sp-secret-7f3b9e";

fn service_principal(name: &str) -> Value {
    json!({
        "name": name,
        "connector_type": "azure",
        "auth_method": "service-principal",
        "configuration": {"tenant_id": TENANT, "client_id": CLIENT, "client_secret": CLIENT_SECRET},
        "labels": {"env": "dev", "team": "ml"},
    })
}

fn with(mut value: Value, changes: Value) -> Value {
    for (key, change) in changes.as_object().unwrap() {
        value[key] = change.clone();
    }
    value
}

/// Every field a client reads, in the same order: all but the prose, the flags that say where
/// a type is implemented, and our Azure `cloud` setting.
pub fn zenml_fields(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "description"
                            | "cloud"
                            | "docs_url"
                            | "sdk_docs_url"
                            | "local"
                            | "remote"
                            | "enabled"
                    )
                })
                .map(|(k, v)| (k.clone(), zenml_fields(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(zenml_fields).collect()),
        other => other.clone(),
    }
}

async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    app.post("/api/v1/service_connectors", token, body)
        .await
        .ok()
}

async fn the_catalogue_serves_zenmls_azure_type(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let served = app
        .get("/api/v1/service_connector_types/azure", &app.admin)
        .await
        .ok();
    let zenml: Value =
        serde_json::from_str(include_str!("../fixtures/zenml-0.98-azure-type.json")).unwrap();
    assert_eq!(zenml_fields(&served), zenml_fields(&zenml));
    let keys = |v: &Value, path: &str| -> Vec<String> {
        v.pointer(path)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let mut served_fields = keys(&served, "/auth_methods/1/config_schema/properties");
    let ours = served_fields.iter().position(|f| f == "cloud").unwrap();
    served_fields.remove(ours);
    assert_eq!(
        served_fields,
        keys(&zenml, "/auth_methods/1/config_schema/properties")
    );
    let secret = &served["auth_methods"][1]["config_schema"]["properties"]["client_secret"];
    assert_eq!(
        (secret["format"].as_str(), secret["writeOnly"].as_bool()),
        (Some("password"), Some(true))
    );
    for method in served["auth_methods"].as_array().unwrap() {
        assert!(
            method["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
        assert_eq!(
            method["enabled"],
            method["auth_method"] != "implicit",
            "implicit is off by default"
        );
    }

    let filtered = app
        .get(
            "/api/v1/service_connector_types?resource_type=blob-container",
            &app.admin,
        )
        .await
        .ok();
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    let none = app
        .get(
            "/api/v1/service_connector_types?auth_method=secret-key",
            &app.admin,
        )
        .await
        .ok();
    assert_eq!(none, json!([]));
    let missing = app
        .get("/api/v1/service_connector_types/aws", &app.admin)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error().0, "KeyError");
    app.stop().await;

    let gated = TestApp::spawn_with(backend, |c| c.enable_implicit_auth_methods = true).await;
    let served = gated
        .get("/api/v1/service_connector_types/azure", &gated.admin)
        .await
        .ok();
    assert!(
        served["auth_methods"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["enabled"] == true)
    );
    gated.stop().await;
}

async fn secrets_are_split_out_encrypted_and_returned_only_on_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = create(&app, &app.admin, service_principal("azure-sp")).await;
    assert_eq!(
        created["body"]["resource_types"],
        json!([
            "azure-generic",
            "blob-container",
            "kubernetes-cluster",
            "docker-registry"
        ])
    );
    assert_eq!(created["body"]["supports_instances"], false);
    assert_eq!(created["body"]["resource_id"], Value::Null);
    assert_eq!(created["body"]["connector_type"], "azure");
    assert_eq!(created["body"]["shared"], false);
    assert_eq!(
        created["metadata"]["configuration"]["client_secret"],
        CLIENT_SECRET
    );
    assert_eq!(
        created["metadata"]["labels"],
        json!({"env": "dev", "team": "ml"})
    );
    assert_eq!(created["resources"]["user"]["name"], "default");
    let path = format!("/api/v1/service_connectors/{}", id_of(&created));

    let expanded = app.get(&path, &app.admin).await.ok();
    assert_eq!(
        expanded["metadata"]["configuration"]["client_secret"],
        CLIENT_SECRET
    );
    let hidden = app
        .get(&format!("{path}?expand_secrets=False"), &app.admin)
        .await
        .ok();
    assert_eq!(
        hidden["metadata"]["configuration"],
        json!({"tenant_id": TENANT, "client_id": CLIENT})
    );
    let listed = app
        .get(
            "/api/v1/service_connectors?hydrate=False&expand_secrets=False",
            &app.admin,
        )
        .await
        .ok();
    assert_eq!(listed["total"], 1);
    assert!(listed["items"][0]["metadata"].is_null());
    assert!(!listed.to_string().contains(CLIENT_SECRET));
    let dry = app
        .get(
            "/api/v1/service_connectors?hydrate=true&expand_secrets=false",
            &app.admin,
        )
        .await
        .ok();
    assert!(
        dry["items"][0]["metadata"]["configuration"]
            .get("client_secret")
            .is_none()
    );

    // The backing secret is internal: never listed or readable as a secret.
    assert_eq!(
        app.get("/api/v1/secrets", &app.admin).await.ok()["total"],
        0
    );
    let raw = app.db.raw_contents().await;
    assert!(
        !raw.windows(CLIENT_SECRET.len())
            .any(|w| w == CLIENT_SECRET.as_bytes())
    );
    app.stop().await;
}

async fn single_resource_connectors_get_canonical_ids(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        (
            "blob-container",
            "abfs://my-data/some/path",
            "az://my-data",
            json!({}),
        ),
        (
            "docker-registry",
            "https://MyRegistry.azurecr.io",
            "MyRegistry.azurecr.io",
            json!({}),
        ),
        (
            "kubernetes-cluster",
            "aks-prod",
            "ml-rg/aks-prod",
            json!({"resource_group": "ml-rg"}),
        ),
        (
            "azure-generic",
            "My Subscription",
            "My Subscription",
            json!({}),
        ),
    ];
    for (i, (resource_type, given, canonical, extra)) in cases.into_iter().enumerate() {
        let mut body = service_principal(&format!("single-{i}"));
        for (k, v) in extra.as_object().unwrap() {
            body["configuration"][k] = v.clone();
        }
        body["resource_types"] = json!([resource_type]);
        body["resource_id"] = json!(given);
        let created = create(&app, &app.admin, body).await;
        assert_eq!(created["body"]["resource_types"], json!([resource_type]));
        assert_eq!(created["body"]["resource_id"], canonical);
        assert_eq!(
            created["body"]["supports_instances"],
            resource_type != "azure-generic"
        );
    }
    let mut bad = service_principal("bad-id");
    bad["resource_types"] = json!(["blob-container"]);
    bad["resource_id"] = json!("Not_A--Container");
    let reply = app
        .post("/api/v1/service_connectors", &app.admin, bad)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.error().1.contains("az://{container}"),
        "{}",
        reply.body
    );
    let mut mismatch = service_principal("other-rg");
    mismatch["configuration"]["resource_group"] = json!("ml-rg");
    mismatch["resource_types"] = json!(["kubernetes-cluster"]);
    mismatch["resource_id"] = json!("other-rg/aks");
    let reply = app
        .post("/api/v1/service_connectors", &app.admin, mismatch)
        .await;
    assert!(
        reply
            .error()
            .1
            .contains("does not match the resource group")
    );
    app.stop().await;
}

async fn invalid_connectors_are_refused_with_a_clear_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = service_principal("invalid");
    let cases: Vec<(Value, &str)> = vec![
        (
            with(
                base.clone(),
                json!({"configuration": {"tenant_id": TENANT, "client_id": CLIENT}}),
            ),
            "missing required attribute 'client_secret'",
        ),
        (
            with(
                base.clone(),
                json!({"configuration": {"tenant_id": TENANT, "client_id": CLIENT, "client_secret": "x", "region": "eu", "colour": 1}}),
            ),
            "'colour', 'region'",
        ),
        (
            with(
                base.clone(),
                json!({"configuration": {"tenant_id": "not-a-uuid", "client_id": CLIENT, "client_secret": "x"}}),
            ),
            "'tenant_id' must be a UUID",
        ),
        (
            with(
                base.clone(),
                json!({"configuration": {"tenant_id": TENANT, "client_id": CLIENT, "client_secret": 42}}),
            ),
            "'client_secret' must be a string",
        ),
        (
            with(base.clone(), json!({"auth_method": "secret-key"})),
            "no 'secret-key' authentication method",
        ),
        (
            with(base.clone(), json!({"resource_types": ["s3-bucket"]})),
            "no 's3-bucket' resource type",
        ),
        (
            with(base.clone(), json!({"resource_id": "az://data"})),
            "needs exactly one resource type",
        ),
        (
            with(base.clone(), json!({"expiration_seconds": 600})),
            "Expiration time is not supported",
        ),
        (
            with(base.clone(), json!({"connector_type": "aws"})),
            "'aws' is not available",
        ),
        (
            json!({"name": "token", "connector_type": "azure", "auth_method": "access-token", "configuration": {"token": "t"}}),
            "needs expires_at",
        ),
        (
            json!({"name": "token", "connector_type": "azure", "auth_method": "access-token",
                   "configuration": {"token": "t"}, "expires_at": "2030-01-01T00:00:00",
                   "expires_skew_tolerance": i64::MAX}),
            "expires_skew_tolerance must be between 0 and 86400 seconds",
        ),
        (
            json!({"name": "token", "connector_type": "azure", "auth_method": "access-token",
                   "configuration": {"token": "t"}, "expires_at": "2030-01-01T00:00:00",
                   "expires_skew_tolerance": -1}),
            "expires_skew_tolerance must be between 0 and 86400 seconds",
        ),
        (
            json!({"name": "token", "connector_type": "azure", "auth_method": "access-token",
                   "configuration": {"token": "t"}, "expires_at": "0000-12-31T00:00:00"}),
            "expires_at must be a date in the years 1 to 9999",
        ),
    ];
    for (body, message) in cases {
        let reply = app
            .post("/api/v1/service_connectors", &app.admin, body.clone())
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
        let (class, text) = reply.error();
        assert_eq!(class, "ValueError");
        assert!(text.contains(message), "expected '{message}' in '{text}'");
    }
    let implicit = json!({"name": "implicit", "connector_type": "azure", "auth_method": "implicit", "configuration": {}});
    let refused = app
        .post("/api/v1/service_connectors", &app.admin, implicit.clone())
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused
            .error()
            .1
            .contains("ZENML_ENABLE_IMPLICIT_AUTH_METHODS")
    );
    assert_eq!(
        app.get("/api/v1/service_connectors", &app.admin).await.ok()["total"],
        0,
        "nothing half-written"
    );
    app.stop().await;

    let gated = TestApp::spawn_with(backend, |c| c.enable_implicit_auth_methods = true).await;
    let created = create(&gated, &gated.admin, implicit).await;
    assert_eq!(created["body"]["auth_method"], "implicit");
    gated.stop().await;
}

async fn access_tokens_carry_their_expiry_and_expire(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let expires = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let body = json!({
        "name": "short-lived", "connector_type": "azure", "auth_method": "access-token",
        "resource_types": ["docker-registry"], "resource_id": "registry1",
        "configuration": {"token": "token-value-1"}, "expires_at": expires,
    });
    let created = create(&app, &app.admin, body).await;
    assert_eq!(
        created["body"]["expires_at"].as_str().unwrap().get(..19),
        Some(expires.as_str())
    );
    assert_eq!(created["metadata"]["expiration_seconds"], 3600);
    assert_eq!(created["body"]["expired"], false);
    let path = format!("/api/v1/service_connectors/{}", id_of(&created));

    let listed = app.get("/api/v1/service_connectors", &app.admin).await.ok();
    assert_eq!(listed["items"][0]["body"]["expired"], false);

    // Within the default 5-minute skew of expires_at it counts as expired, in a list asked
    // for before too.
    app.clock.advance(Duration::from_secs(56 * 60));
    let listed = app.get("/api/v1/service_connectors", &app.admin).await.ok();
    assert_eq!(listed["items"][0]["body"]["expired"], true);
    let verified = app
        .put(&format!("{path}/verify"), &app.admin, json!(null))
        .await
        .ok();
    assert_eq!(
        verified["error"],
        "the connector's authentication credentials have expired."
    );
    assert_eq!(
        verified["resources"][0]["error"],
        "the connector's authentication credentials have expired."
    );
    assert_eq!(verified["resources"][0]["resource_ids"], Value::Null);

    // A skew too large to subtract is refused on update too, and changes nothing.
    let refused = app
        .put(
            &path,
            &app.admin,
            json!({"expires_skew_tolerance": 1_i64 << 62}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    let kept = app.get(&path, &app.admin).await.ok();
    assert_eq!(kept["metadata"]["expires_skew_tolerance"], Value::Null);
    app.stop().await;
}

async fn updates_replace_configuration_and_labels_as_zenml_does(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = create(&app, &app.admin, service_principal("to-update")).await;
    let path = format!("/api/v1/service_connectors/{}", id_of(&created));
    // Labels only: the configuration and its secret stay.
    let relabelled = app
        .put(
            &path,
            &app.admin,
            json!({"labels": {"env": "prod"}, "description": "updated"}),
        )
        .await
        .ok();
    assert_eq!(relabelled["metadata"]["labels"], json!({"env": "prod"}));
    assert_eq!(relabelled["body"]["description"], "updated");
    assert_eq!(
        relabelled["metadata"]["configuration"]["client_secret"],
        CLIENT_SECRET
    );
    // A new configuration replaces the old one whole, secret included.
    let config = json!({"tenant_id": TENANT, "client_id": CLIENT, "client_secret": "rotated-secret", "resource_group": "rg"});
    let reconfigured = app
        .put(&path, &app.admin, json!({"configuration": config, "resource_types": ["kubernetes-cluster"], "resource_id": "aks"}))
        .await
        .ok();
    assert_eq!(
        reconfigured["metadata"]["configuration"]["client_secret"],
        "rotated-secret"
    );
    assert_eq!(reconfigured["body"]["resource_id"], "rg/aks");
    let read = app.get(&path, &app.admin).await.ok();
    assert_eq!(read["metadata"]["configuration"], config);
    assert_eq!(read["metadata"]["labels"], json!({"env": "prod"}));
    // An absent resource_id clears it, as in ZenML.
    let cleared = app
        .put(
            &path,
            &app.admin,
            json!({"resource_types": ["kubernetes-cluster"]}),
        )
        .await
        .ok();
    assert_eq!(cleared["body"]["resource_id"], Value::Null);
    // Renaming onto a taken name.
    create(&app, &app.admin, service_principal("taken")).await;
    let clash = app.put(&path, &app.admin, json!({"name": "taken"})).await;
    assert_eq!(clash.status, StatusCode::CONFLICT);
    assert_eq!(
        clash.error().1,
        "Unable to update the requested service connector with name 'taken': Found another existing service connector with the same name."
    );
    let invalid = app
        .put(
            &path,
            &app.admin,
            json!({"configuration": {"tenant_id": TENANT}}),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.get(&path, &app.admin).await.ok()["metadata"]["configuration"],
        config,
        "a refused update changes nothing"
    );
    app.stop().await;
}

async fn deleting_a_connector_deletes_its_secret(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = create(&app, &app.admin, service_principal("short")).await;
    let path = format!("/api/v1/service_connectors/{}", id_of(&created));
    let before = app.get("/api/v1/keys", &app.admin).await.ok();
    let stored = |status: &Value| {
        status
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["values"].as_i64().unwrap())
            .sum::<i64>()
    };
    app.delete(&path, &app.admin).await.ok();
    assert_eq!(
        app.get(&path, &app.admin).await.status,
        StatusCode::NOT_FOUND
    );
    let after = app.get("/api/v1/keys", &app.admin).await.ok();
    assert_eq!(
        stored(&after),
        stored(&before) - 1,
        "the encrypted secret went with the connector"
    );
    assert_eq!(
        app.get("/api/v1/service_connectors", &app.admin).await.ok()["total"],
        0
    );
    app.stop().await;
}

/// Who can do what to a private and a shared connector.
async fn the_visibility_matrix_holds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_workspace("team").await;
    app.create_workspace("elsewhere").await;
    let owner = app.create_user("owner", "team", "member").await;
    let member = app.create_user("member", "team", "member").await;
    let ws_admin = app.create_user("wsadmin", "team", "admin").await;
    let outsider = app.create_user("outsider", "elsewhere", "admin").await;
    let server_admin = app.admin.clone(); // not a member of "team"

    let private = create(&app, &owner, service_principal("private-one")).await;
    let shared = create(
        &app,
        &owner,
        with(service_principal("shared-one"), json!({"shared": true})),
    )
    .await;
    let url = |c: &Value, suffix: &str| {
        format!(
            "/api/v1/service_connectors/{}?project_name_or_id=team{suffix}",
            id_of(c)
        )
    };
    let names = |page: Value| names_in(&page);
    let list = "/api/v1/service_connectors?project_name_or_id=team&sort_by=name";

    // Listing.
    assert_eq!(
        names(app.get(list, &owner).await.ok()),
        ["private-one", "shared-one"]
    );
    assert_eq!(names(app.get(list, &member).await.ok()), ["shared-one"]);
    assert_eq!(names(app.get(list, &ws_admin).await.ok()), ["shared-one"]);
    assert_eq!(app.get(list, &outsider).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(list, &server_admin).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get(list, &member).await.ok()["total"], 1);

    // A private connector does not exist for anyone but its owner, whatever the operation.
    for token in [&member, &ws_admin, &outsider, &server_admin] {
        for reply in [
            app.get(&url(&private, ""), token).await,
            app.put(&url(&private, ""), token, json!({"description": "x"}))
                .await,
            app.put(
                &url(&private, "/verify").replace(
                    "?project_name_or_id=team/verify",
                    "/verify?project_name_or_id=team",
                ),
                token,
                json!(null),
            )
            .await,
            app.delete(&url(&private, ""), token).await,
        ] {
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
            assert!(!reply.body.to_string().contains("private-one"));
        }
    }
    // The shared one: members read and use it, without its secret; the owner and workspace
    // admins also read its secret and change it; outsiders see nothing.
    let secret_of = |reply: Value| {
        reply["metadata"]["configuration"]
            .get("client_secret")
            .cloned()
    };
    assert_eq!(
        secret_of(app.get(&url(&shared, ""), &owner).await.ok()),
        Some(json!(CLIENT_SECRET))
    );
    assert_eq!(
        secret_of(app.get(&url(&shared, ""), &ws_admin).await.ok()),
        Some(json!(CLIENT_SECRET))
    );
    assert_eq!(
        secret_of(app.get(&url(&shared, ""), &member).await.ok()),
        None
    );
    let member_list = app
        .get(&format!("{list}&expand_secrets=true"), &member)
        .await
        .ok();
    assert!(!member_list.to_string().contains(CLIENT_SECRET));
    let verify = format!(
        "/api/v1/service_connectors/{}/verify?project_name_or_id=team",
        id_of(&shared)
    );
    let verified = app.put(&verify, &member, json!(null)).await.ok();
    // The member's verify ran with the owner's credentials, against this test's closed Azure.
    let error = verified["error"].as_str().unwrap();
    assert!(
        error.starts_with("connector 'shared-one' authorization failure: Azure AD issued no token")
            && error.contains(&format!("https://{CLOSED_PORT}/"))
            && error.contains("Connection refused"),
        "{error}"
    );
    let denied = app
        .put(
            &url(&shared, ""),
            &member,
            json!({"description": "mine now"}),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.delete(&url(&shared, ""), &member).await.status,
        StatusCode::FORBIDDEN
    );
    for token in [&outsider, &server_admin] {
        assert_eq!(
            app.get(&url(&shared, ""), token).await.status,
            StatusCode::NOT_FOUND
        );
    }
    app.put(
        &url(&shared, ""),
        &ws_admin,
        json!({"description": "by the admin"}),
    )
    .await
    .ok();
    // Unsharing hides it from members again, and the counts follow.
    app.put(&url(&shared, ""), &owner, json!({"shared": false}))
        .await
        .ok();
    assert_eq!(app.get(list, &member).await.ok()["total"], 0);
    assert_eq!(app.get(list, &owner).await.ok()["total"], 2);
    app.delete(&url(&shared, ""), &owner).await.ok();
    assert_eq!(app.get(list, &owner).await.ok()["total"], 1);

    // Names are unique in a workspace: a taken name says so and nothing more.
    let clash = app
        .post(
            "/api/v1/service_connectors?project_name_or_id=team",
            &member,
            service_principal("private-one"),
        )
        .await;
    assert_eq!(clash.status, StatusCode::CONFLICT);
    assert_eq!(
        clash.error().1,
        "Unable to create the requested service connector with name 'private-one': Found another existing service connector with the same name."
    );
    // The same name in another workspace is fine.
    create(&app, &outsider, service_principal("private-one")).await;
    app.stop().await;
}

/// Creates racing for one name: one wins, the others get 409 and leave nothing behind (no
/// secret, filter row or count), and the next create goes through.
async fn creates_racing_for_one_name_leave_exactly_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let rows = |table: &'static str| app.db.row_count(table);
    let (secrets, labels) = (
        rows("secrets").await,
        rows("service_connector_labels").await,
    );
    let replies = futures::future::join_all((0..8).map(|_| {
        app.post(
            "/api/v1/service_connectors",
            &app.admin,
            service_principal("contested"),
        )
    }))
    .await;
    let statuses: Vec<StatusCode> = replies.iter().map(|r| r.status).collect();
    let created = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, refused), (1, 7), "{statuses:?}");
    assert_eq!(rows("secrets").await, secrets + 1);
    assert_eq!(rows("service_connector_labels").await, labels + 2);

    create(&app, &app.admin, service_principal("next")).await;
    for path in [
        "/api/v1/service_connectors",
        "/api/v1/service_connectors?labels_str=team%3Dml",
    ] {
        assert_eq!(app.get(path, &app.admin).await.ok()["total"], 2, "{path}");
    }
    app.stop().await;
}

/// The names of the connectors on a page, in order.
fn names_in(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The names on the page `GET /api/v1/service_connectors?{query}` returns to the admin.
async fn listed_names(app: &TestApp, query: String) -> Vec<String> {
    let page = app
        .get(&format!("/api/v1/service_connectors?{query}"), &app.admin)
        .await
        .ok();
    names_in(&page)
}

async fn lists_filter_sort_and_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let other = app.create_user("other", "default", "member").await;
    let expires = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    for (name, labels, resource) in [
        (
            "blob-dev",
            json!({"env": "dev", "tier": "gold"}),
            Some(("blob-container", "az://dev")),
        ),
        (
            "blob-prod",
            json!({"env": "prod"}),
            Some(("blob-container", "az://prod")),
        ),
        (
            "aks-prod",
            json!({"env": "prod", "tier": "gold"}),
            Some(("kubernetes-cluster", "rg/aks")),
        ),
        ("everything", json!({}), None),
    ] {
        let mut body = with(service_principal(name), json!({"labels": labels}));
        if let Some((resource_type, id)) = resource {
            body["resource_types"] = json!([resource_type]);
            body["resource_id"] = json!(id);
        }
        create(&app, &app.admin, body).await;
    }
    create(
        &app,
        &other,
        json!({"name": "token", "connector_type": "azure", "auth_method": "access-token", "shared": true,
               "configuration": {"token": "t"}, "expires_at": expires, "labels": {"env": "dev"}}),
    )
    .await;
    create(&app, &other, service_principal("others-private")).await;

    let names = |query: &str| listed_names(&app, format!("sort_by=name&{query}"));
    assert_eq!(
        names("").await,
        ["aks-prod", "blob-dev", "blob-prod", "everything", "token"]
    );
    assert_eq!(names("name=equals:blob-dev").await, ["blob-dev"]);
    assert_eq!(
        names("name=startswith:blob").await,
        ["blob-dev", "blob-prod"]
    );
    assert_eq!(names("auth_method=access-token").await, ["token"]);
    // Multi-type connectors reach every resource type of their auth method.
    assert_eq!(
        names("resource_type=blob-container").await,
        ["blob-dev", "blob-prod", "everything", "token"]
    );
    assert_eq!(
        names("resource_type=kubernetes-cluster&resource_id=rg/aks").await,
        ["aks-prod"]
    );
    assert_eq!(
        names(r#"labels_str={"env":"prod"}"#).await,
        ["aks-prod", "blob-prod"]
    );
    assert_eq!(names("labels_str=env=prod,tier=gold").await, ["aks-prod"]);
    assert_eq!(names("labels_str=tier=").await, ["aks-prod", "blob-dev"]);
    assert_eq!(
        names(r#"labels_str={"tier":null,"env":"dev"}"#).await,
        ["blob-dev"]
    );
    assert_eq!(names("user=other").await, ["token"]);
    assert_eq!(names("shared=true").await, ["token"]);
    assert_eq!(
        names("connector_type=azure&name=contains:prod&logical_operator=and").await,
        ["aks-prod", "blob-prod"]
    );
    assert_eq!(
        names("name=blob-dev&name=token&logical_operator=or").await,
        ["blob-dev", "token"]
    );
    assert_eq!(names("expires_at=isnotnull:").await, ["token"]);
    // In creation order (the default), a resource-type filter reads its pages from its own
    // index; other users' private connectors stay out of them.
    let by_type = |query: &str| listed_names(&app, format!("resource_type=blob-container&{query}"));
    assert_eq!(
        by_type("").await,
        ["blob-dev", "blob-prod", "everything", "token"]
    );
    assert_eq!(
        by_type("sort_by=desc:created&size=2&page=2").await,
        ["blob-prod", "blob-dev"]
    );
    assert_eq!(by_type("size=3&page=2").await, ["token"]);
    // Totals of single-facet filters come from maintained counts: they must follow every change.
    let total = |query: &str| {
        let app = &app;
        let query = query.to_owned();
        async move {
            let page = app
                .get(
                    &format!("/api/v1/service_connectors?size=1&{query}"),
                    &app.admin,
                )
                .await
                .ok();
            page["total"].as_i64().unwrap()
        }
    };
    assert_eq!(total("resource_type=blob-container").await, 4);
    assert_eq!(total("labels_str=env=prod").await, 2);
    assert_eq!(total("labels_str=tier=").await, 2);
    let blob_dev = app
        .get("/api/v1/service_connectors?name=blob-dev", &app.admin)
        .await
        .ok();
    let blob_dev = format!(
        "/api/v1/service_connectors/{}",
        id_of(&blob_dev["items"][0])
    );
    // As in ZenML, an update without resource_id clears it: send it along.
    let relabel = |labels: Value| json!({"labels": labels, "resource_id": "az://dev"});
    app.put(&blob_dev, &app.admin, relabel(json!({"env": "prod"})))
        .await
        .ok();
    assert_eq!(total("labels_str=env=prod").await, 3);
    assert_eq!(total("labels_str=tier=").await, 1);
    // The filters read the new labels, not the old ones.
    assert_eq!(
        names("labels_str=env=prod").await,
        ["aks-prod", "blob-dev", "blob-prod"]
    );
    assert_eq!(names("labels_str=tier=").await, ["aks-prod"]);
    assert_eq!(
        total("labels_str=env=dev").await,
        1,
        "the other user's shared connector"
    );
    app.put(
        &blob_dev,
        &app.admin,
        relabel(json!({"env": "dev", "tier": "gold"})),
    )
    .await
    .ok();
    assert_eq!(total("labels_str=env=prod").await, 2);
    assert_eq!(total("labels_str=tier=").await, 2);
    assert_eq!(total("").await, 5);

    let page = app
        .get(
            "/api/v1/service_connectors?sort_by=desc:name&size=2&page=2",
            &app.admin,
        )
        .await
        .ok();
    assert_eq!(
        (page["total"].as_i64(), page["total_pages"].as_i64()),
        (Some(5), Some(3))
    );
    let on_page: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(on_page, ["blob-prod", "blob-dev"]);
    let first = app
        .get("/api/v1/service_connectors?sort_by=name&size=1", &app.admin)
        .await
        .ok();
    let prefix = &first["items"][0]["id"].as_str().unwrap()[..8];
    assert_eq!(
        names(&format!("id=startswith:{prefix}")).await,
        ["aks-prod"]
    );
    let bad = app
        .get("/api/v1/service_connectors?resource_kind=x", &app.admin)
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

    app.stop().await;
}

async fn workspace_paths_and_deleted_owners(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_workspace("team").await;
    let alice = app.create_user("alice", "team", "member").await;
    let made = app
        .post(
            "/api/v1/workspaces/team/service_connectors",
            &alice,
            service_principal("scoped"),
        )
        .await
        .ok();
    assert_eq!(
        made["body"]["workspace_id"],
        app.get("/api/v1/workspaces/team", &app.admin).await.ok()["id"]
    );
    let read = app
        .get(
            &format!(
                "/api/v1/workspaces/team/service_connectors/{}",
                id_of(&made)
            ),
            &alice,
        )
        .await
        .ok();
    assert_eq!(read["name"], "scoped");
    let shared = app
        .post(
            "/api/v1/workspaces/team/service_connectors",
            &alice,
            with(service_principal("kept"), json!({"shared": true})),
        )
        .await
        .ok();
    app.add_member("team", "default", "admin").await;
    app.delete("/api/v1/users/alice", &app.admin).await.ok();
    let left = app
        .get(
            "/api/v1/service_connectors?project_name_or_id=team",
            &app.admin,
        )
        .await
        .ok();
    assert_eq!(left["total"], 1);
    assert_eq!(left["items"][0]["id"], shared["id"]);
    assert_eq!(left["items"][0]["body"]["user_id"], Value::Null);
    // Made private, it would be nobody's: nobody could see, change or delete it.
    let kept_path = format!(
        "/api/v1/service_connectors/{}?project_name_or_id=team",
        id_of(&shared)
    );
    let unshared = app
        .put(&kept_path, &app.admin, json!({"shared": false}))
        .await;
    assert_eq!(
        unshared.status,
        StatusCode::BAD_REQUEST,
        "{}",
        unshared.body
    );
    assert!(unshared.error().1.contains("must stay shared"));
    // Refused, the update changed nothing: still shared, still nobody's.
    let kept = app.get(&kept_path, &app.admin).await.ok();
    assert_eq!(kept["body"]["shared"], true, "{kept}");
    assert_eq!(kept["body"]["user_id"], Value::Null, "{kept}");
    app.stop().await;
}

/// Lists are served from rendered pages while nothing on them has changed. Every change made
/// through another server process on the same database shows at once in the next list.
async fn lists_show_every_change_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = app.spawn_peer(|_| {}).await;
    app.create_workspace("team").await;
    let bob = app.create_user("bob", "team", "member").await;
    let alice = app.create_user("alice", "team", "member").await;
    let bob_at_peer = peer.login("bob", "bob password").await;
    // Each change below follows a list of the page it changes, so that page was kept. Pages
    // with secret values in them are never kept, hence `expand_secrets=false`.
    let list =
        "/api/v1/service_connectors?project_name_or_id=team&hydrate=true&expand_secrets=false";
    let expanded = "/api/v1/service_connectors?project_name_or_id=team&hydrate=true";
    let bob_lists = || async { app.get(list, &bob).await.ok() };
    let alice_lists = || async { app.get(list, &alice).await.ok() };
    // Whether the page was served as kept (`hit`) or rendered (`miss`).
    let bob_cache = || async {
        let reply = app.get(list, &bob).await;
        assert_eq!(reply.status, StatusCode::OK);
        let cache = reply.headers["x-cache"].to_str().unwrap().to_owned();
        (cache, reply.body)
    };
    assert_eq!(bob_lists().await["total"], 0);
    assert_eq!(alice_lists().await["total"], 0);
    let (cache, empty) = bob_cache().await;
    assert_eq!((cache.as_str(), empty["total"].as_i64()), ("hit", Some(0)));

    // A create through the peer.
    let made = peer
        .post(
            "/api/v1/workspaces/team/service_connectors",
            &bob_at_peer,
            service_principal("first"),
        )
        .await
        .ok();
    let path = format!(
        "/api/v1/workspaces/team/service_connectors/{}",
        id_of(&made)
    );
    // Made in another process, it shows at once: the kept page is not served again.
    let (cache, page) = bob_cache().await;
    assert_eq!(cache, "miss");
    assert_eq!(names_in(&page), ["first"]);
    assert_eq!(page["items"][0]["metadata"]["labels"]["env"], "dev");
    let (cache, again) = bob_cache().await;
    assert_eq!((cache.as_str(), &again), ("hit", &page));
    // Still private: alice's page is unchanged.
    assert_eq!(alice_lists().await["total"], 0);

    // An update of its labels, then sharing it.
    peer.put(&path, &bob_at_peer, json!({"labels": {"env": "prod"}}))
        .await
        .ok();
    let (cache, page) = bob_cache().await;
    assert_eq!(cache, "miss");
    assert_eq!(page["items"][0]["metadata"]["labels"]["env"], "prod");
    assert_eq!(alice_lists().await["total"], 0);
    peer.put(&path, &bob_at_peer, json!({"shared": true}))
        .await
        .ok();
    assert_eq!(names_in(&alice_lists().await), ["first"]);
    // A member reads a shared connector without its secret.
    let page = app.get(expanded, &alice).await.ok();
    assert_eq!(
        page["items"][0]["metadata"]["configuration"]["client_secret"],
        Value::Null
    );

    // A new role for alice: as a workspace admin she reads the secret.
    peer.add_member("team", "alice", "admin").await;
    let page = app.get(expanded, &alice).await.ok();
    assert_eq!(
        page["items"][0]["metadata"]["configuration"]["client_secret"],
        CLIENT_SECRET
    );

    // The owner's account, renamed: every page shows its owner.
    assert_eq!(
        bob_lists().await["items"][0]["resources"]["user"]["name"],
        "bob"
    );
    peer.put("/api/v1/users/bob", &peer.admin, json!({"name": "robert"}))
        .await
        .ok();
    assert_eq!(
        bob_lists().await["items"][0]["resources"]["user"]["name"],
        "robert"
    );

    // Out of the workspace, alice sees nothing of it.
    peer.delete("/api/v1/workspaces/team/members/alice", &peer.admin)
        .await
        .ok();
    assert_eq!(app.get(list, &alice).await.status, StatusCode::NOT_FOUND);

    // Deleted through the peer.
    peer.delete(&path, &bob_at_peer).await.ok();
    assert_eq!(bob_lists().await["total"], 0);
    peer.stop().await;
    app.stop().await;
}

/// A JSON column that does not parse is a corrupt record, answered as such: never read as
/// empty labels, configuration, resource types or verification counts.
async fn a_corrupt_row_is_an_integrity_error_not_empty(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let intact = create(&app, &app.admin, service_principal("intact")).await;
    let columns = [
        "labels",
        "configuration",
        "resource_types",
        "last_verified_resources",
    ];
    let mut paths = Vec::new();
    for column in columns {
        let name = format!("broken-{}", column.replace('_', "-"));
        let connector = create(&app, &app.admin, service_principal(&name)).await;
        app.db
            .execute(&format!(
                "UPDATE service_connectors SET {column} = '{{not json' WHERE name = '{name}'"
            ))
            .await;
        paths.push(format!("/api/v1/service_connectors/{}", id_of(&connector)));
    }
    let list = "/api/v1/service_connectors".to_owned();
    for path in paths.iter().chain([&list]) {
        let reply = app.get(path, &app.admin).await;
        assert_eq!(
            reply.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{path}: {}",
            reply.body
        );
        let (class, message) = reply.error();
        assert_eq!(class, "RuntimeError", "{path}");
        assert!(message.contains("corrupt"), "{path}: {message}");
    }
    let path = format!("/api/v1/service_connectors/{}", id_of(&intact));
    app.get(&path, &app.admin).await.ok();
    app.stop().await;
}

on_both_backends!(
    the_catalogue_serves_zenmls_azure_type,
    creates_racing_for_one_name_leave_exactly_one,
    secrets_are_split_out_encrypted_and_returned_only_on_request,
    single_resource_connectors_get_canonical_ids,
    invalid_connectors_are_refused_with_a_clear_400,
    access_tokens_carry_their_expiry_and_expire,
    updates_replace_configuration_and_labels_as_zenml_does,
    deleting_a_connector_deletes_its_secret,
    the_visibility_matrix_holds,
    lists_filter_sort_and_page,
    workspace_paths_and_deleted_owners,
    lists_show_every_change_at_once,
    a_corrupt_row_is_an_integrity_error_not_empty,
);
