//! Flavors and stack components: the flavors ZenML's client imports, configurations checked
//! against them, links to connectors checked against what a flavor needs, and the protection
//! of what is in use.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Backend, Reply, TestApp, id_of, on_both_backends};

const TENANT: &str = "2f7a1c3e-0000-4000-8000-000000000001";
const CLIENT: &str = "2f7a1c3e-0000-4000-8000-000000000002";

/// A multi-type Azure connector, or one limited by `changes`.
pub(crate) fn azure_connector(name: &str, changes: Value) -> Value {
    let mut connector = json!({
        "name": name,
        "connector_type": "azure",
        "auth_method": "service-principal",
        "configuration": {"tenant_id": TENANT, "client_id": CLIENT, "client_secret": "sp-secret"},
    });
    for (key, value) in changes.as_object().unwrap() {
        connector[key] = value.clone();
    }
    connector
}

pub(crate) async fn create_connector(app: &TestApp, token: &str, body: Value) -> Value {
    app.post("/api/v1/service_connectors", token, body)
        .await
        .ok()
}

pub(crate) fn artifact_store(name: &str, path: &str) -> Value {
    json!({
        "name": name,
        "type": "artifact_store",
        "flavor": "azure",
        "configuration": {"path": path},
    })
}

pub(crate) async fn create_component(app: &TestApp, token: &str, body: Value) -> Value {
    app.post("/api/v1/components", token, body).await.ok()
}

/// Asserts a refusal: its status, exception class, and words of its message.
pub(crate) fn refused(reply: &Reply, status: StatusCode, class: &str, words: &[&str]) {
    assert_eq!(reply.status, status, "{}", reply.body);
    let (found, message) = reply.error();
    assert_eq!(found, class, "{message}");
    for word in words {
        assert!(message.contains(word), "{word:?} not in {message:?}");
    }
}

async fn flavors_are_zenmls_own(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let zenml: Vec<Value> =
        serde_json::from_str(include_str!("../fixtures/zenml-0.98-flavors.json")).unwrap();
    let served = app
        .get("/api/v1/flavors?hydrate=true&size=100", &app.admin)
        .await
        .ok();
    let served = served["items"].as_array().unwrap();
    assert_eq!(served.len(), zenml.len());
    for expected in &zenml {
        let flavor = served
            .iter()
            .find(|f| f["name"] == expected["name"] && f["body"]["type"] == expected["type"])
            .unwrap_or_else(|| panic!("{} {} is served", expected["type"], expected["name"]));
        for field in [
            "display_name",
            "integration",
            "source",
            "logo_url",
            "is_custom",
        ] {
            assert_eq!(
                flavor["body"][field], expected[field],
                "{field} of {expected}"
            );
        }
        for field in [
            "config_schema",
            "connector_type",
            "connector_resource_type",
            "connector_resource_id_attr",
            "docs_url",
            "sdk_docs_url",
        ] {
            assert_eq!(
                flavor["metadata"][field], expected[field],
                "{field} of {expected}"
            );
        }
        // By id, hydrated by default.
        let by_id = app
            .get(&format!("/api/v1/flavors/{}", id_of(flavor)), &app.admin)
            .await
            .ok();
        assert_eq!(&by_id, flavor);
    }

    // The filters the client uses to find a flavor for a component.
    let azure = app
        .get(
            "/api/v1/flavors?name=equals:azure&type=artifact_store&hydrate=true",
            &app.admin,
        )
        .await
        .ok();
    assert_eq!(azure["total"], 1);
    assert_eq!(
        azure["items"][0]["metadata"]["connector_resource_type"],
        "blob-container"
    );
    let kubernetes = app
        .get("/api/v1/flavors?integration=kubernetes", &app.admin)
        .await
        .ok();
    let types: Vec<&str> = kubernetes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["body"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.len(), 2);
    assert!(types.contains(&"orchestrator") && types.contains(&"step_operator"));
    assert!(kubernetes["items"][0]["metadata"].is_null(), "not hydrated");

    let unknown = app
        .get(
            &format!("/api/v1/flavors/{}", uuid::Uuid::new_v4()),
            &app.admin,
        )
        .await;
    refused(&unknown, StatusCode::NOT_FOUND, "KeyError", &["flavor"]);
    let types = app.get("/api/v1/component-types", &app.admin).await.ok();
    assert!(
        types
            .as_array()
            .unwrap()
            .contains(&json!("container_registry"))
    );
    assert_eq!(types.as_array().unwrap().len(), 15);
    let anonymous = app.get("/api/v1/flavors", "").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn configurations_are_checked_against_their_flavor(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = &app.admin;
    let cases = [
        (
            json!({"name": "a", "type": "artifact_store", "flavor": "azure", "configuration": {"path": "az://x", "colour": "red"}}),
            vec!["unknown attributes 'colour'", "'path'"],
        ),
        (
            json!({"name": "a", "type": "artifact_store", "flavor": "azure", "configuration": {}}),
            vec!["missing required attributes 'path'"],
        ),
        (
            json!({"name": "o", "type": "orchestrator", "flavor": "kubernetes", "configuration": {"synchronous": "yes"}}),
            vec!["attribute 'synchronous' must be true or false"],
        ),
        (
            json!({"name": "o", "type": "orchestrator", "flavor": "kubernetes", "configuration": {"max_parallelism": 0}}),
            vec!["'max_parallelism'", "greater than 0"],
        ),
        (
            json!({"name": "s", "type": "step_operator", "flavor": "azureml", "configuration": {
                "subscription_id": "s", "resource_group": "g", "workspace_name": "w",
                "service_principal_password": "hunter2"}}),
            vec![
                "'service_principal_password' is sensitive",
                "{{secret_name.key}}",
            ],
        ),
        (
            json!({"name": "x", "type": "artifact_store", "flavor": "s3", "configuration": {}}),
            vec!["Flavor 's3' not found for component type 'artifact_store'"],
        ),
    ];
    for (request, words) in cases {
        let reply = app.post("/api/v1/components", token, request.clone()).await;
        refused(&reply, StatusCode::BAD_REQUEST, "ValueError", &words);
    }
    let no_type = app
        .post(
            "/api/v1/components",
            token,
            json!({"name": "x", "type": "spaceship", "flavor": "local", "configuration": {}}),
        )
        .await;
    refused(
        &no_type,
        StatusCode::UNPROCESSABLE_ENTITY,
        "ValueError",
        &["spaceship"],
    );
    // A sensitive attribute holds a reference to a secret, never its value.
    let referenced = create_component(
        &app,
        token,
        json!({"name": "s", "type": "step_operator", "flavor": "azureml", "configuration": {
            "subscription_id": "s", "resource_group": "g", "workspace_name": "w",
            "service_principal_password": "{{azureml.password}}"}}),
    )
    .await;
    assert_eq!(
        referenced["metadata"]["configuration"]["service_principal_password"],
        "{{azureml.password}}"
    );
    // Nothing refused was stored (two defaults and the one accepted).
    assert_eq!(app.db.row_count("stack_components").await, 3);

    // Names are unique per workspace and type.
    create_component(&app, token, artifact_store("shared-name", "az://data")).await;
    let again = app
        .post(
            "/api/v1/components",
            token,
            artifact_store("shared-name", "az://logs"),
        )
        .await;
    refused(
        &again,
        StatusCode::CONFLICT,
        "EntityExistsError",
        &["'artifact_store' component with name 'shared-name'"],
    );
    create_component(
        &app,
        token,
        json!({"name": "shared-name", "type": "image_builder", "flavor": "local", "configuration": {}}),
    )
    .await;

    // An update replaces the configuration, checked again.
    let store = create_component(&app, token, artifact_store("store", "az://data")).await;
    let path = format!("/api/v1/components/{}", id_of(&store));
    let bad = app
        .put(&path, token, json!({"configuration": {"path": 7}}))
        .await;
    refused(
        &bad,
        StatusCode::BAD_REQUEST,
        "ValueError",
        &["attribute 'path' must be a string"],
    );
    let good = app
        .put(
            &path,
            token,
            json!({"configuration": {"path": "az://logs"}, "labels": {"tier": 1}}),
        )
        .await
        .ok();
    assert_eq!(good["metadata"]["configuration"]["path"], "az://logs");
    assert_eq!(good["metadata"]["labels"]["tier"], 1);
    app.stop().await;
}

async fn links_are_checked_against_the_flavor_and_the_connector(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = &app.admin;
    let multi = create_connector(&app, token, azure_connector("az-multi", json!({}))).await;
    let registries = create_connector(
        &app,
        token,
        azure_connector(
            "az-registries",
            json!({"resource_types": ["docker-registry"]}),
        ),
    )
    .await;
    let one_container = create_connector(
        &app,
        token,
        azure_connector(
            "az-data",
            json!({"resource_types": ["blob-container"], "resource_id": "az://data"}),
        ),
    )
    .await;
    let link = |mut component: Value, connector: &Value, resource: Option<&str>| {
        component["connector"] = json!(id_of(connector));
        if let Some(resource) = resource {
            component["connector_resource_id"] = json!(resource);
        }
        component
    };
    let refusals = [
        (
            link(
                json!({"name": "l", "type": "orchestrator", "flavor": "local", "configuration": {}}),
                &multi,
                None,
            ),
            vec!["the local orchestrator flavor does not use service connectors"],
        ),
        (
            link(
                json!({"name": "d", "type": "container_registry", "flavor": "dockerhub", "configuration": {"uri": "docker.io/me"}}),
                &multi,
                None,
            ),
            vec![
                "needs a 'docker' connector",
                "'az-multi' is of type 'azure'",
            ],
        ),
        (
            link(artifact_store("s", "az://data"), &registries, None),
            vec![
                "needs the 'blob-container' resource type",
                "provides only 'docker-registry'",
            ],
        ),
        (
            link(artifact_store("s", "az://logs"), &one_container, None),
            vec!["'az-data' reaches only the blob-container resource 'az://data'"],
        ),
        (
            link(artifact_store("s", "az://data"), &multi, Some("az://logs")),
            vec![
                "the component's 'path' is the resource 'az://data', not the requested 'az://logs'",
            ],
        ),
        (
            link(artifact_store("s", "az://data"), &multi, Some("s3://data")),
            vec!["invalid resource ID for an Azure blob storage container"],
        ),
        (
            link(
                json!({"name": "k", "type": "orchestrator", "flavor": "kubernetes", "configuration": {}}),
                &multi,
                None,
            ),
            vec!["'az-multi' reaches many kubernetes-cluster resources"],
        ),
    ];
    for (request, words) in refusals {
        let reply = app.post("/api/v1/components", token, request).await;
        refused(&reply, StatusCode::BAD_REQUEST, "ValueError", &words);
    }
    assert_eq!(app.db.row_count("stack_components").await, 2);

    // Resource ids are canonical, as connectors make them.
    let linked = create_component(
        &app,
        token,
        link(
            artifact_store("store", "abfs://data/runs"),
            &multi,
            Some("data"),
        ),
    )
    .await;
    assert_eq!(linked["metadata"]["connector_resource_id"], "az://data");
    assert_eq!(linked["metadata"]["connector"]["name"], "az-multi");
    let orchestrator = create_component(
        &app,
        token,
        link(
            json!({"name": "k", "type": "orchestrator", "flavor": "kubernetes", "configuration": {}}),
            &multi,
            Some("rg1/c1"),
        ),
    )
    .await;
    assert_eq!(orchestrator["metadata"]["connector_resource_id"], "rg1/c1");
    let single = create_component(
        &app,
        token,
        link(artifact_store("single", "az://data"), &one_container, None),
    )
    .await;
    assert_eq!(single["metadata"]["connector_resource_id"], "az://data");

    // An update that sends no connector clears the link, as in ZenML.
    let path = format!("/api/v1/components/{}", id_of(&linked));
    let cleared = app.put(&path, token, json!({"name": "store-2"})).await.ok();
    assert!(cleared["metadata"]["connector"].is_null());
    assert!(cleared["metadata"]["connector_resource_id"].is_null());
    let relinked = app
        .put(
            &path,
            token,
            json!({"connector": id_of(&multi), "connector_resource_id": "az://data"}),
        )
        .await
        .ok();
    assert_eq!(relinked["metadata"]["connector_resource_id"], "az://data");
    let by_connector = app
        .get(
            &format!("/api/v1/components?connector_id={}", id_of(&multi)),
            token,
        )
        .await
        .ok();
    assert_eq!(by_connector["total"], 2);
    app.stop().await;
}

async fn private_connectors_stay_private_behind_components(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", "default", "member").await;
    let bob = app.create_user("bob", "default", "member").await;
    let private = create_connector(&app, &alice, azure_connector("alice-private", json!({}))).await;
    let shared = create_connector(
        &app,
        &alice,
        azure_connector("alice-shared", json!({"shared": true})),
    )
    .await;

    // Bob cannot link Alice's private connector: for him it does not exist.
    let mut component = artifact_store("bobs", "az://data");
    component["connector"] = json!(id_of(&private));
    let reply = app
        .post("/api/v1/components", &bob, component.clone())
        .await;
    refused(
        &reply,
        StatusCode::NOT_FOUND,
        "KeyError",
        &["No service connector with this ID found"],
    );
    component["connector"] = json!(id_of(&shared));
    create_component(&app, &bob, component).await;

    // Alice links her private connector; Bob sees that a connector is linked, nothing more.
    let mut hers = artifact_store("alices", "az://data");
    hers["connector"] = json!(id_of(&private));
    let hers = create_component(&app, &alice, hers).await;
    let seen = app
        .get(&format!("/api/v1/components/{}", id_of(&hers)), &bob)
        .await
        .ok();
    let connector = &seen["metadata"]["connector"];
    assert_eq!(connector["permission_denied"], true);
    assert_eq!(connector["id"], hers["metadata"]["connector"]["id"]);
    assert_eq!(connector["name"], "");
    assert!(connector["body"].is_null() && connector["metadata"].is_null());
    assert!(!seen.to_string().contains("alice-private"));
    // Bob may not change Alice's component; an admin may, keeping her link.
    let path = format!("/api/v1/components/{}", id_of(&hers));
    let reply = app.put(&path, &bob, json!({"labels": {"x": "y"}})).await;
    refused(
        &reply,
        StatusCode::FORBIDDEN,
        "IllegalOperationError",
        &["only the owner"],
    );
    let kept = app
        .put(
            &path,
            &app.admin,
            json!({"labels": {"x": "y"}, "connector": id_of(&private), "connector_resource_id": "az://data"}),
        )
        .await
        .ok();
    assert_eq!(kept["metadata"]["labels"]["x"], "y");
    assert_eq!(kept["metadata"]["connector"]["permission_denied"], true);

    // Deleting Alice disconnects the components that used her private connector.
    app.delete("/api/v1/users/alice", &app.admin).await.ok();
    let after = app.get(&path, &app.admin).await.ok();
    assert!(after["metadata"]["connector"].is_null(), "{after}");
    assert!(after["body"]["user_id"].is_null());
    app.stop().await;
}

async fn connectors_in_use_are_kept(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = &app.admin;
    let connector = create_connector(&app, token, azure_connector("in-use", json!({}))).await;
    let mut component = artifact_store("store", "az://data");
    component["connector"] = json!(id_of(&connector));
    let component = create_component(&app, token, component).await;
    let connector_path = format!("/api/v1/service_connectors/{}", id_of(&connector));

    let reply = app.delete(&connector_path, token).await;
    refused(
        &reply,
        StatusCode::FORBIDDEN,
        "IllegalOperationError",
        &["cannot be deleted as it is still referenced by 1 stack components"],
    );
    // What the component relies on stays as it is while it is in use.
    let reply = app
        .put(
            &connector_path,
            token,
            json!({"resource_types": ["docker-registry"]}),
        )
        .await;
    refused(
        &reply,
        StatusCode::FORBIDDEN,
        "IllegalOperationError",
        &["The resource type of a service connector that is already actively used"],
    );
    let relabelled = app
        .put(&connector_path, token, json!({"labels": {"team": "ml"}}))
        .await
        .ok();
    assert_eq!(relabelled["metadata"]["labels"]["team"], "ml");

    // Once the component lets go, the connector can go.
    app.put(
        &format!("/api/v1/components/{}", id_of(&component)),
        token,
        json!({}),
    )
    .await
    .ok();
    app.delete(&connector_path, token).await.ok();
    assert_eq!(app.db.row_count("service_connectors").await, 0);
    app.stop().await;
}

/// A delete and a connect of the same connector, at the same moment, many times: exactly one
/// of them wins each time, and what the API answered is what was stored.
async fn a_concurrent_delete_and_connect_agree(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = &app.admin;
    let (mut deleted, mut connected) = (0, 0);
    for round in 0..12 {
        let connector = create_connector(
            &app,
            token,
            azure_connector(&format!("racing-{round}"), json!({})),
        )
        .await;
        let component = create_component(
            &app,
            token,
            artifact_store(&format!("store-{round}"), "az://data"),
        )
        .await;
        let connector_path = format!("/api/v1/service_connectors/{}", id_of(&connector));
        let component_path = format!("/api/v1/components/{}", id_of(&component));
        let (delete, connect) = tokio::join!(
            app.delete(&connector_path, token),
            app.put(
                &component_path,
                token,
                json!({"connector": id_of(&connector)}),
            ),
        );
        let stored = app.get(&component_path, token).await.ok();
        let exists = app.get(&connector_path, token).await.status == StatusCode::OK;
        match (delete.status, connect.status) {
            (StatusCode::OK, connect_status) => {
                assert!(
                    matches!(connect_status, StatusCode::NOT_FOUND | StatusCode::CONFLICT),
                    "both won: {}",
                    connect.body
                );
                assert!(!exists);
                assert!(stored["metadata"]["connector"].is_null());
                deleted += 1;
            }
            (StatusCode::FORBIDDEN, StatusCode::OK) => {
                assert!(exists);
                assert_eq!(
                    stored["metadata"]["connector"]["id"],
                    json!(id_of(&connector))
                );
                connected += 1;
            }
            other => panic!(
                "unexpected outcome {other:?}: {} {}",
                delete.body, connect.body
            ),
        }
    }
    assert_eq!(deleted + connected, 12);
    app.stop().await;
}

async fn another_workspace_sees_no_components(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_workspace("other").await;
    let eve = app.create_user("eve", "other", "admin").await;
    let component = create_component(&app, &app.admin, artifact_store("ours", "az://data")).await;
    let path = format!("/api/v1/components/{}", id_of(&component));
    for reply in [
        app.get(&path, &eve).await,
        app.put(&path, &eve, json!({"name": "theirs"})).await,
        app.delete(&path, &eve).await,
        app.get(
            &format!(
                "/api/v1/workspaces/default/components/{}",
                id_of(&component)
            ),
            &eve,
        )
        .await,
    ] {
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
        assert_eq!(reply.error().0, "KeyError");
    }
    let listed = app.get("/api/v1/components?size=100", &eve).await.ok();
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "default"], "only its own defaults");
    // Eve's connectors cannot be linked across workspaces either.
    let theirs = create_connector(&app, &eve, azure_connector("theirs", json!({}))).await;
    let mut linking = artifact_store("cross", "az://data");
    linking["connector"] = json!(id_of(&theirs));
    let reply = app.post("/api/v1/components", &app.admin, linking).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    // The workspace-scoped form lists the named workspace.
    let scoped = app
        .get(
            "/api/v1/workspaces/default/components?name=ours",
            &app.admin,
        )
        .await
        .ok();
    assert_eq!(scoped["total"], 1);
    app.stop().await;
}

async fn default_components_stay(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let defaults = app
        .get("/api/v1/components?name=default&sort_by=type", &app.admin)
        .await
        .ok();
    let types: Vec<&str> = defaults["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["body"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["artifact_store", "orchestrator"]);
    for component in defaults["items"].as_array().unwrap() {
        let path = format!("/api/v1/components/{}", id_of(component));
        let reply = app.delete(&path, &app.admin).await;
        refused(
            &reply,
            StatusCode::FORBIDDEN,
            "IllegalOperationError",
            &["cannot be deleted"],
        );
        let reply = app.put(&path, &app.admin, json!({"name": "x"})).await;
        refused(
            &reply,
            StatusCode::FORBIDDEN,
            "IllegalOperationError",
            &["cannot be modified"],
        );
    }
    app.stop().await;
}

on_both_backends!(
    flavors_are_zenmls_own,
    configurations_are_checked_against_their_flavor,
    links_are_checked_against_the_flavor_and_the_connector,
    private_connectors_stay_private_behind_components,
    connectors_in_use_are_kept,
    a_concurrent_delete_and_connect_agree,
    another_workspace_sees_no_components,
    default_components_stay,
);
