//! Stacks: every workspace's default stack, stacks of existing components, full stacks created
//! with their connectors and components in one transaction, the resources a connector offers
//! to a stack wizard, and ZenML's own models reading what we send.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::components::{
    artifact_store, azure_connector, create_component, create_connector, refused,
};
use crate::fakes::azure::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_SUBSCRIPTION_ID, DEFAULT_TENANT_ID,
    FakeAzure, FakeAzureConfig, FakeCluster, FakeRegistry, FakeStorageAccount,
};
use crate::harness::{Backend, TestApp, id_of, on_both_backends};

fn orchestrator(name: &str) -> Value {
    json!({"name": name, "type": "orchestrator", "flavor": "local", "configuration": {}})
}

async fn default_stack(app: &TestApp, token: &str) -> Value {
    let listed = app
        .get("/api/v1/stacks?name=default&hydrate=true", token)
        .await
        .ok();
    assert_eq!(listed["total"], 1, "{listed}");
    listed["items"][0].clone()
}

async fn every_workspace_has_a_default_stack_that_stays(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let stack = default_stack(&app, &app.admin).await;
    let components = &stack["metadata"]["components"];
    assert_eq!(components["orchestrator"][0]["name"], "default");
    assert_eq!(
        components["orchestrator"][0]["body"]["flavor_name"],
        "local"
    );
    assert_eq!(
        components["artifact_store"][0]["body"]["flavor_name"],
        "local"
    );
    assert!(stack["body"]["user_id"].is_null());
    let path = format!("/api/v1/stacks/{}", id_of(&stack));
    let got = app.get(&path, &app.admin).await.ok();
    assert_eq!(got["metadata"]["components"], *components);
    refused(
        &app.put(&path, &app.admin, json!({"description": "mine"}))
            .await,
        StatusCode::FORBIDDEN,
        "IllegalOperationError",
        &["The default stack cannot be modified."],
    );
    refused(
        &app.delete(&path, &app.admin).await,
        StatusCode::FORBIDDEN,
        "IllegalOperationError",
        &["The default stack cannot be deleted."],
    );

    // A new workspace comes with its own; a restart adds none.
    app.create_workspace("other").await;
    let eve = app.create_user("eve", "other", "member").await;
    let theirs = default_stack(&app, &eve).await;
    assert_ne!(id_of(&theirs), id_of(&stack));
    let app = app.restart().await;
    assert_eq!(app.db.row_count("stacks").await, 2);
    assert_eq!(app.db.row_count("stack_components").await, 4);
    assert_eq!(id_of(&default_stack(&app, &app.admin).await), id_of(&stack));

    // Deleting the workspace takes its stack and components with it.
    app.delete("/api/v1/workspaces/other", &app.admin)
        .await
        .ok();
    assert_eq!(app.db.row_count("stacks").await, 1);
    assert_eq!(app.db.row_count("stack_components").await, 2);
    app.stop().await;
}

async fn stacks_are_made_of_existing_components(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = &app.admin;
    let first = create_component(&app, token, orchestrator("first")).await;
    let second = create_component(&app, token, orchestrator("second")).await;
    let store = create_component(&app, token, artifact_store("store", "az://data")).await;
    let builder = create_component(
        &app,
        token,
        json!({"name": "builder", "type": "image_builder", "flavor": "local", "configuration": {}}),
    )
    .await;
    app.create_secret(token, "runtime", false, json!({"token": "t"}))
        .await;
    app.create_secret(token, "mine-only", true, json!({"token": "t"}))
        .await;

    let request = |name: &str, components: Value| json!({"name": name, "components": components, "labels": {"team": "ml"}});
    let invalid = [
        (
            json!({"orchestrator": [id_of(&first)]}),
            StatusCode::BAD_REQUEST,
            "an orchestrator and an artifact store",
        ),
        (
            json!({"orchestrator": [id_of(&first), id_of(&second)], "artifact_store": [id_of(&store)]}),
            StatusCode::BAD_REQUEST,
            "at most one orchestrator",
        ),
        (
            json!({"orchestrator": [id_of(&store)], "artifact_store": [id_of(&store)]}),
            StatusCode::BAD_REQUEST,
            "'store' is of type 'artifact_store', not 'orchestrator'",
        ),
        (
            json!({"orchestrator": [uuid::Uuid::new_v4()], "artifact_store": [id_of(&store)]}),
            StatusCode::NOT_FOUND,
            "No stack component with this ID found",
        ),
    ];
    for (components, status, words) in invalid {
        let reply = app
            .post("/api/v1/stacks", token, request("bad", components))
            .await;
        assert_eq!(reply.status, status, "{}", reply.body);
        assert!(reply.error().1.contains(words), "{}", reply.body);
    }
    let mut body = request(
        "ml",
        json!({"orchestrator": [id_of(&first)], "artifact_store": [id_of(&store)], "image_builder": [id_of(&builder)]}),
    );
    body["secrets"] = json!(["mine-only"]);
    refused(
        &app.post("/api/v1/stacks", token, body.clone()).await,
        StatusCode::BAD_REQUEST,
        "ValueError",
        &["the secret 'mine-only' is private"],
    );
    body["secrets"] = json!(["runtime"]);
    let stack = app.post("/api/v1/stacks", token, body.clone()).await.ok();
    let components = &stack["metadata"]["components"];
    assert_eq!(components["orchestrator"][0]["name"], "first");
    assert_eq!(components["image_builder"][0]["name"], "builder");
    assert_eq!(stack["metadata"]["labels"]["team"], "ml");
    assert_eq!(stack["metadata"]["secrets"].as_array().unwrap().len(), 1);
    assert_eq!(stack["resources"]["user"]["name"], "default");
    refused(
        &app.post("/api/v1/stacks", token, body).await,
        StatusCode::CONFLICT,
        "EntityExistsError",
        &["stack with name 'ml'"],
    );

    // Filters: the stacks holding a component, the components of a stack.
    let holding = app
        .get(
            &format!("/api/v1/stacks?component_id={}", id_of(&first)),
            token,
        )
        .await
        .ok();
    assert_eq!(holding["total"], 1);
    let of_stack = app
        .get(
            &format!("/api/v1/components?stack_id={}&sort_by=name", id_of(&stack)),
            token,
        )
        .await
        .ok();
    let names: Vec<&str> = of_stack["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["builder", "first", "store"]);

    // An update swaps components; the one let go can be deleted, the one taken up cannot.
    let path = format!("/api/v1/stacks/{}", id_of(&stack));
    let updated = app
        .put(
            &path,
            token,
            json!({"name": "ml-2", "components": {"orchestrator": [id_of(&second)], "artifact_store": [id_of(&store)]}, "remove_secrets": ["runtime"]}),
        )
        .await
        .ok();
    assert_eq!(updated["name"], "ml-2");
    assert_eq!(
        updated["metadata"]["components"]["orchestrator"][0]["name"],
        "second"
    );
    assert!(updated["metadata"]["components"]["image_builder"].is_null());
    assert_eq!(updated["metadata"]["secrets"], json!([]));
    app.delete(&format!("/api/v1/components/{}", id_of(&first)), token)
        .await
        .ok();
    refused(
        &app.delete(&format!("/api/v1/components/{}", id_of(&second)), token)
            .await,
        StatusCode::FORBIDDEN,
        "IllegalOperationError",
        &["`second` of type `orchestrator` cannot be deleted as it is part of 1 stacks"],
    );
    let member = app.create_user("member", "default", "member").await;
    refused(
        &app.delete(&path, &member).await,
        StatusCode::FORBIDDEN,
        "IllegalOperationError",
        &["only the owner of this stack"],
    );
    app.delete(&path, token).await.ok();
    app.delete(&format!("/api/v1/components/{}", id_of(&second)), token)
        .await
        .ok();
    assert_eq!(app.get(&path, token).await.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// The Azure a full stack reaches: a container, a cluster and a registry.
async fn fake_azure() -> FakeAzure {
    let sub = DEFAULT_SUBSCRIPTION_ID;
    FakeAzure::start(FakeAzureConfig {
        storage_accounts: vec![
            FakeStorageAccount::new(sub, "rg1", "acct1").with_containers(&["data"]),
        ],
        registries: vec![FakeRegistry::new(sub, "rg1", "myregistry")],
        clusters: vec![FakeCluster::new(sub, "rg1", "c1")],
        ..FakeAzureConfig::default()
    })
    .await
}

fn service_principal_info() -> Value {
    json!({
        "type": "azure",
        "auth_method": "service-principal",
        "configuration": {
            "tenant_id": DEFAULT_TENANT_ID,
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
        },
    })
}

fn full_stack(name: &str, orchestrator_flavor: &str) -> Value {
    json!({
        "name": name,
        "labels": {"zenml:wizard": "true", "zenml:provider": "azure"},
        "service_connectors": [service_principal_info()],
        "components": {
            "artifact_store": [{"flavor": "azure", "service_connector_index": 0,
                "service_connector_resource_id": "az://data", "configuration": {"path": "az://data"}}],
            "orchestrator": [{"flavor": orchestrator_flavor, "service_connector_index": 0,
                "service_connector_resource_id": "rg1/c1", "configuration": {}}],
            "container_registry": [{"flavor": "azure", "service_connector_index": 0,
                "service_connector_resource_id": "myregistry.azurecr.io",
                "configuration": {"uri": "myregistry.azurecr.io"}}],
        },
    })
}

async fn a_full_stack_is_created_whole_or_not_at_all(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = &app.admin;
    // The names it would take are partly taken: it takes others.
    create_connector(&app, token, azure_connector("full", json!({}))).await;
    create_component(&app, token, artifact_store("full", "az://logs")).await;

    let stack = app
        .post("/api/v1/stacks", token, full_stack("full", "kubernetes"))
        .await
        .ok();
    let components = &stack["metadata"]["components"];
    assert_eq!(components["orchestrator"][0]["name"], "full");
    let store_name = components["artifact_store"][0]["name"].as_str().unwrap();
    assert!(
        store_name.starts_with("full-") && store_name.len() == 9,
        "{store_name}"
    );
    let store = app
        .get(
            &format!(
                "/api/v1/components/{}",
                id_of(&components["artifact_store"][0])
            ),
            token,
        )
        .await
        .ok();
    let connector = &store["metadata"]["connector"];
    let connector_name = connector["name"].as_str().unwrap();
    assert!(connector_name.starts_with("full-"), "{connector_name}");
    assert_eq!(store["metadata"]["connector_resource_id"], "az://data");
    assert_eq!(store["metadata"]["labels"]["zenml:wizard"], "true");
    // The new connector keeps its secret like any other, encrypted apart.
    let stored = app
        .get(
            &format!("/api/v1/service_connectors/{}", id_of(connector)),
            token,
        )
        .await
        .ok();
    assert_eq!(
        stored["metadata"]["configuration"]["client_secret"],
        DEFAULT_CLIENT_SECRET
    );
    assert_eq!(stored["metadata"]["labels"]["zenml:provider"], "azure");
    let counts = (
        app.db.row_count("service_connectors").await,
        app.db.row_count("secrets").await,
        app.db.row_count("stack_components").await,
        app.db.row_count("stacks").await,
    );
    assert_eq!(counts, (2, 2, 6, 2));

    // Failures at any step leave nothing behind: a flavor that does not exist (after the
    // connector and the first component were written), a link the connector cannot serve,
    // and a stack name that is taken (the last write).
    let mut bad_link = full_stack("broken", "kubernetes");
    bad_link["components"]["container_registry"][0]["service_connector_resource_id"] =
        json!("az://data");
    let failures = [
        (
            full_stack("broken", "skypilot"),
            StatusCode::BAD_REQUEST,
            "Flavor 'skypilot' not found",
        ),
        (
            bad_link,
            StatusCode::BAD_REQUEST,
            "invalid resource ID for an Azure container registry",
        ),
        (
            full_stack("full", "kubernetes"),
            StatusCode::CONFLICT,
            "stack with name 'full'",
        ),
    ];
    for (request, status, words) in failures {
        let reply = app.post("/api/v1/stacks", token, request).await;
        assert_eq!(reply.status, status, "{}", reply.body);
        assert!(reply.error().1.contains(words), "{}", reply.body);
        let after = (
            app.db.row_count("service_connectors").await,
            app.db.row_count("secrets").await,
            app.db.row_count("stack_components").await,
            app.db.row_count("stacks").await,
        );
        assert_eq!(after, counts, "{words}");
    }
    let mut out_of_range = full_stack("broken", "kubernetes");
    out_of_range["components"]["orchestrator"][0]["service_connector_index"] = json!(1);
    refused(
        &app.post("/api/v1/stacks", token, out_of_range).await,
        StatusCode::BAD_REQUEST,
        "ValueError",
        &["service connector index 1 is out of range"],
    );
    app.stop().await;
}

async fn a_connector_offers_its_resources_to_a_stack_wizard(backend: Backend) {
    let azure = fake_azure().await;
    let app = TestApp::spawn_with_azure(backend, &azure, |_| {}).await;
    let token = &app.admin;
    let mut connector = azure_connector("wizard", json!({}));
    connector["configuration"] = service_principal_info()["configuration"].clone();
    let connector = create_connector(&app, token, connector).await;
    let mut store = artifact_store("store", "az://data");
    store["connector"] = json!(id_of(&connector));
    create_component(&app, token, store).await;

    let path = "/api/v1/service_connectors/full_stack_resources";
    let stored = app
        .call(
            reqwest::Method::POST,
            &format!("{path}?connector_uuid={}", id_of(&connector)),
            token,
            None,
        )
        .await
        .ok();
    assert_eq!(stored["connector_type"], "azure");
    let offers = &stored["components_resources_info"];
    let stores = &offers["artifact_store"][0];
    assert_eq!(stores["flavor"], "azure");
    assert_eq!(
        stores["accessible_by_service_connector"],
        json!(["az://data"])
    );
    assert_eq!(stores["use_resource_value_as_fixed_config"], true);
    assert_eq!(stores["required_configuration"]["path"], "Path");
    assert_eq!(
        stores["connected_through_service_connector"][0]["name"],
        "store"
    );
    let orchestrators: Vec<&str> = offers["orchestrator"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["flavor"].as_str().unwrap())
        .collect();
    assert_eq!(orchestrators, ["azureml", "kubernetes"]);
    assert_eq!(
        offers["container_registry"][0]["accessible_by_service_connector"],
        json!(["myregistry.azurecr.io"])
    );

    let described = app.post(path, token, service_principal_info()).await.ok();
    assert_eq!(
        described["components_resources_info"]["artifact_store"][0]["connected_through_service_connector"],
        json!([])
    );
    assert_eq!(
        described["components_resources_info"]["orchestrator"][1]["accessible_by_service_connector"],
        json!(["rg1/c1"])
    );
    let both = app
        .post(
            &format!("{path}?connector_uuid={}", id_of(&connector)),
            token,
            service_principal_info(),
        )
        .await;
    refused(&both, StatusCode::BAD_REQUEST, "ValueError", &["not both"]);
    let mut wrong = service_principal_info();
    wrong["configuration"]["client_secret"] = json!("not the secret");
    refused(
        &app.post(path, token, wrong).await,
        StatusCode::BAD_REQUEST,
        "ValueError",
        &[
            "reaches no resource that an artifact store can use",
            "AADSTS7000215",
        ],
    );
    app.stop().await;
}

async fn another_workspace_sees_no_stacks(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_workspace("other").await;
    let eve = app.create_user("eve", "other", "admin").await;
    let ours = default_stack(&app, &app.admin).await;
    let orchestrator = create_component(&app, &app.admin, orchestrator("ours")).await;
    let store = &ours["metadata"]["components"]["artifact_store"][0];
    let stack = app
        .post(
            "/api/v1/stacks",
            &app.admin,
            json!({"name": "ours", "components": {"orchestrator": [id_of(&orchestrator)], "artifact_store": [id_of(store)]}}),
        )
        .await
        .ok();
    let path = format!("/api/v1/stacks/{}", id_of(&stack));
    for reply in [
        app.get(&path, &eve).await,
        app.put(&path, &eve, json!({"name": "theirs"})).await,
        app.delete(&path, &eve).await,
    ] {
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    }
    // Nor can Eve build a stack of our components.
    let reply = app
        .post(
            "/api/v1/stacks",
            &eve,
            json!({"name": "stolen", "components": {"orchestrator": [id_of(&orchestrator)], "artifact_store": [id_of(store)]}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    let listed = app.get("/api/v1/stacks", &eve).await.ok();
    assert_eq!(listed["total"], 1);
    assert_ne!(listed["items"][0]["id"], ours["id"]);
    assert_eq!(
        app.get("/api/v1/workspaces/default/stacks", &eve)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

/// ZenML's own pydantic models, in the installed client, read every shape we send.
async fn zenmls_models_read_what_we_send(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_user("alice", "default", "member").await;
    let private = create_connector(&app, &alice, azure_connector("private", json!({}))).await;
    let mut linked = artifact_store("linked", "az://data");
    linked["connector"] = json!(id_of(&private));
    let linked = create_component(&app, &alice, linked).await;
    let default = default_stack(&app, &app.admin).await;
    let store = &default["metadata"]["components"]["artifact_store"][0];
    let stack = app
        .post(
            "/api/v1/stacks",
            &alice,
            json!({"name": "s", "components": {"orchestrator": [default["metadata"]["components"]["orchestrator"][0]["id"]], "artifact_store": [id_of(store)]}}),
        )
        .await
        .ok();
    let server = &app;
    let get = |path: String| async move { server.get(&path, &server.admin).await.ok() };
    let flavor_id = linked["resources"]["flavor"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cases = json!([
        ["flavor", get(format!("/api/v1/flavors/{flavor_id}")).await],
        [
            "page:flavor",
            get("/api/v1/flavors?hydrate=true".into()).await
        ],
        ["page:flavor", get("/api/v1/flavors".into()).await],
        ["component", linked],
        [
            "component",
            get(format!("/api/v1/components/{}", id_of(&linked))).await
        ],
        [
            "page:component",
            get("/api/v1/components?hydrate=true".into()).await
        ],
        ["page:component", get("/api/v1/components".into()).await],
        ["stack", stack],
        [
            "page:stack",
            get("/api/v1/stacks?hydrate=true".into()).await
        ],
        ["page:stack", get("/api/v1/stacks".into()).await],
    ]);
    let script = r#"
import json, sys
from zenml.models import ComponentResponse, FlavorResponse, Page, StackResponse
models = {"flavor": FlavorResponse, "component": ComponentResponse, "stack": StackResponse}
read = []
for kind, value in json.load(sys.stdin):
    model = models[kind.removeprefix("page:")]
    parsed = Page[model].model_validate(value) if kind.startswith("page:") else model.model_validate(value)
    for item in getattr(parsed, "items", [parsed]):
        if isinstance(item, ComponentResponse) and item.metadata and item.metadata.connector:
            read.append(["connector", item.name, item.metadata.connector.permission_denied])
        if isinstance(item, StackResponse) and item.metadata:
            read.append(["stack", item.name, sorted(str(t) for t in item.metadata.components)])
        if isinstance(item, FlavorResponse) and item.metadata and item.name == "azure":
            read.append(["flavor", str(item.body.type), item.metadata.connector_resource_type])
print(json.dumps(read))
"#;
    let python = crate::zenml_cli::zenml_executable().with_file_name("python");
    let mut child = tokio::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the zenml client's python runs");
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(cases.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let output = crate::zenml_cli::finish(child, "zenml's models").await;
    assert!(
        output.status.success(),
        "zenml's models refused our JSON:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    // Alice's link reads as hers; the admin sees it only as a connector that exists.
    assert!(
        read.contains(&json!(["connector", "linked", false])),
        "{read:?}"
    );
    assert!(
        read.contains(&json!(["connector", "linked", true])),
        "{read:?}"
    );
    assert!(read.contains(&json!(["stack", "s", ["artifact_store", "orchestrator"]])));
    assert!(read.contains(&json!(["flavor", "artifact_store", "blob-container"])));
    app.stop().await;
}

/// The OpenAPI document describes every route of components, flavors and stacks, the
/// workspace-scoped forms included.
async fn the_document_covers_stacks_and_components(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let document = app.get("/openapi.json", "").await.ok();
    let paths = &document["paths"];
    for (path, methods) in [
        ("/api/v1/flavors", &["get"][..]),
        ("/api/v1/flavors/{flavor_id}", &["get"]),
        ("/api/v1/component-types", &["get"]),
        ("/api/v1/components", &["get", "post"]),
        (
            "/api/v1/components/{component_id}",
            &["get", "put", "delete"],
        ),
        ("/api/v1/stacks", &["get", "post"]),
        ("/api/v1/stacks/{stack_id}", &["get", "put", "delete"]),
        ("/api/v1/service_connectors/full_stack_resources", &["post"]),
        (
            "/api/v1/workspaces/{workspace}/components",
            &["get", "post"],
        ),
        (
            "/api/v1/workspaces/{workspace}/components/{component_id}",
            &["get", "put", "delete"],
        ),
        ("/api/v1/workspaces/{workspace}/stacks", &["get", "post"]),
        (
            "/api/v1/workspaces/{workspace}/stacks/{stack_id}",
            &["get", "put", "delete"],
        ),
    ] {
        for method in methods {
            let operation = &paths[path][method];
            assert!(operation.is_object(), "{method} {path} is not documented");
            if path.contains("{workspace}") {
                assert_eq!(operation["parameters"][0]["name"], "workspace");
                assert_eq!(operation["parameters"][0]["in"], "path");
            }
        }
    }
    // What the document says is served: the workspace-scoped list answers.
    let scoped = app
        .get("/api/v1/workspaces/default/stacks", &app.admin)
        .await
        .ok();
    assert_eq!(scoped["items"][0]["name"], "default");
    app.stop().await;
}

on_both_backends!(
    the_document_covers_stacks_and_components,
    every_workspace_has_a_default_stack_that_stays,
    stacks_are_made_of_existing_components,
    a_full_stack_is_created_whole_or_not_at_all,
    a_connector_offers_its_resources_to_a_stack_wizard,
    another_workspace_sees_no_stacks,
    zenmls_models_read_what_we_send,
);
