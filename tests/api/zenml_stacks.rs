//! The real zenml 0.98 client registering stack components and stacks against connector-hub:
//! the seed document's end-to-end example (steps 2 to 7) as written, the stack wizard, and
//! the refusals a user meets on the way.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::fakes::azure::{
    FakeAzure, FakeAzureConfig, FakeCluster, FakeRegistry, FakeServicePrincipal,
    FakeStorageAccount, FakeSubscription,
};
use crate::harness::{ADMIN_PASSWORD, Backend, TestApp};
use crate::zenml_cli::{Ran, Zenml};

/// The seed's identities. Its own example ids (`a79ff3633-…`, `8926254a-…-bdab234fd491e`)
/// are not UUIDs, which ZenML's client refuses as well, so the last digit of each is dropped.
const TENANT: &str = "a79ff363-8f45-4a74-a42e-68871c17b7fb";
const CLIENT: &str = "8926254a-8c3f-430a-a2fd-bdab234fd491";
const SECRET: &str = "AzureSuperSecret";
const SUBSCRIPTION: &str = "5e1a7c6b-2f3d-4e8a-9b0c-1d2e3f4a5b6c";

/// The seed's Azure: a subscription with a blob container, an AKS cluster and an ACR
/// registry, which one service principal reaches.
async fn seed_azure() -> FakeAzure {
    FakeAzure::start(FakeAzureConfig {
        tenant_id: TENANT.into(),
        service_principals: vec![FakeServicePrincipal::new(CLIENT, SECRET)],
        subscriptions: vec![FakeSubscription::new(SUBSCRIPTION, "ZenML Subscription")],
        storage_accounts: vec![
            FakeStorageAccount::new(SUBSCRIPTION, "demo-zenml-demos", "demozenmlstorage")
                .with_containers(&["demo-zenmlartifactstore"]),
        ],
        registries: vec![FakeRegistry::new(
            SUBSCRIPTION,
            "demo-zenml-demos",
            "demozenmlcontainerregistry",
        )],
        clusters: vec![FakeCluster::new(
            SUBSCRIPTION,
            "demo-zenml-demos",
            "demo-zenml-terraform-cluster",
        )],
        ..FakeAzureConfig::default()
    })
    .await
}

const CONNECTOR: &str = "azure-service-principal";
const CONTAINER: &str = "az://demo-zenmlartifactstore";
const CLUSTER: &str = "demo-zenml-demos/demo-zenml-terraform-cluster";
const REGISTRY: &str = "demozenmlcontainerregistry.azurecr.io";

fn register_connector() -> Vec<String> {
    vec![
        "service-connector".into(),
        "register".into(),
        CONNECTOR.into(),
        "--type".into(),
        "azure".into(),
        "--auth-method".into(),
        "service-principal".into(),
        format!("--tenant_id={TENANT}"),
        format!("--client_id={CLIENT}"),
        format!("--client_secret={SECRET}"),
    ]
}

fn assert_has(output: &str, expected: &[&str]) {
    for text in expected {
        assert!(output.contains(text), "missing {text:?} in:\n{output}");
    }
}

/// Runs a command and answers its prompts with `answers`, one per line.
async fn answering(zenml: &Zenml, args: &[&str], answers: &str) -> Ran {
    let mut command = zenml.command(args);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("zenml runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answers.as_bytes())
        .await
        .unwrap();
    let output = crate::zenml_cli::finish(child, &format!("zenml {args:?}")).await;
    Ran {
        success: output.status.success(),
        output: String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_example_registers_connects_and_stacks_its_components() {
    let azure = seed_azure().await;
    let app = TestApp::spawn_with_azure(Backend::Sqlite, &azure, |_| {}).await;
    let zenml = Zenml::as_user(&app, "default", ADMIN_PASSWORD);

    // 2. The Azure type is available.
    let types = zenml
        .ok(&["service-connector", "list-types", "--type", "azure"])
        .await;
    assert_has(
        &types,
        &[
            "Azure Service Connector",
            "service-principal",
            "blob-container",
        ],
    );

    // 3. A multi-type connector, and what it reaches.
    let registered = zenml.ok(&strs(&register_connector())).await;
    assert_has(
        &registered,
        &[
            "Successfully registered service connector `azure-service-principal`",
            "ZenML Subscription",
            CONTAINER,
            CLUSTER,
            REGISTRY,
        ],
    );

    // 4. An artifact store on the blob container.
    let store = zenml
        .ok(&[
            "artifact-store",
            "register",
            "azure-demo",
            "--flavor",
            "azure",
            &format!("--path={CONTAINER}"),
        ])
        .await;
    assert_has(
        &store,
        &["Successfully registered artifact_store `azure-demo`."],
    );
    let connected = zenml
        .ok(&[
            "artifact-store",
            "connect",
            "azure-demo",
            "--connector",
            CONNECTOR,
        ])
        .await;
    assert_has(
        &connected,
        &[
            "Successfully connected artifact store `azure-demo` to the following resources:",
            CONNECTOR,
            "blob-container",
            CONTAINER,
        ],
    );

    // 5. A Kubernetes orchestrator on the AKS cluster.
    let orchestrator = zenml
        .ok(&[
            "orchestrator",
            "register",
            "aks-demo-cluster",
            "--flavor",
            "kubernetes",
            "--synchronous=true",
            "--kubernetes_namespace=zenml-workloads",
        ])
        .await;
    assert_has(
        &orchestrator,
        &["Successfully registered orchestrator `aks-demo-cluster`."],
    );
    let connected = zenml
        .ok(&[
            "orchestrator",
            "connect",
            "aks-demo-cluster",
            "--connector",
            CONNECTOR,
        ])
        .await;
    assert_has(
        &connected,
        &[
            "Successfully connected orchestrator `aks-demo-cluster` to the following resources:",
            "kubernetes-cluster",
            CLUSTER,
        ],
    );

    // 6. An Azure container registry on the ACR registry.
    let registry = zenml
        .ok(&[
            "container-registry",
            "register",
            "acr-demo-registry",
            "--flavor",
            "azure",
            &format!("--uri={REGISTRY}"),
        ])
        .await;
    assert_has(
        &registry,
        &["Successfully registered container_registry `acr-demo-registry`."],
    );
    let connected = zenml
        .ok(&[
            "container-registry",
            "connect",
            "acr-demo-registry",
            "--connector",
            CONNECTOR,
        ])
        .await;
    assert_has(
        &connected,
        &[
            "Successfully connected container registry `acr-demo-registry` to the following resources:",
            "docker-registry",
            REGISTRY,
        ],
    );

    // 7. A local image builder, and the stack, made active.
    let builder = zenml
        .ok(&["image-builder", "register", "local", "--flavor", "local"])
        .await;
    assert_has(
        &builder,
        &["Successfully registered image_builder `local`."],
    );
    let stack = zenml
        .ok(&[
            "stack",
            "register",
            "gcp-demo",
            "-a",
            "azure-demo",
            "-o",
            "aks-demo-cluster",
            "-c",
            "acr-demo-registry",
            "-i",
            "local",
            "--set",
        ])
        .await;
    assert_has(
        &stack,
        &[
            "Stack 'gcp-demo' successfully registered!",
            "Active global stack set to:'gcp-demo'",
        ],
    );
    let described = zenml.ok(&["stack", "describe"]).await;
    assert_has(
        &described,
        &[
            "'gcp-demo' stack (ACTIVE)",
            "ARTIFACT_STORE",
            "azure-demo",
            "ORCHESTRATOR",
            "aks-demo-cluster",
            "CONTAINER_REGISTRY",
            "acr-demo-registry",
            "IMAGE_BUILDER",
            "local",
        ],
    );
    let listed = zenml.ok(&["stack", "list"]).await;
    assert_has(
        &listed,
        &["gcp-demo", "default", "azure-demo", "aks-demo-cluster"],
    );

    // What the server stored: each component linked to the connector's canonical resource.
    let components = app
        .get("/api/v1/components?hydrate=true&size=50", &app.admin)
        .await
        .ok();
    let linked = |name: &str| {
        components["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} is listed: {components}"))["metadata"]
            .clone()
    };
    for (name, resource) in [
        ("azure-demo", CONTAINER),
        ("aks-demo-cluster", CLUSTER),
        ("acr-demo-registry", REGISTRY),
    ] {
        let metadata = linked(name);
        assert_eq!(metadata["connector"]["name"], CONNECTOR, "{metadata}");
        assert_eq!(metadata["connector_resource_id"], resource, "{metadata}");
    }
    assert!(linked("local")["connector"].is_null());
    app.stop().await;
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_wizard_builds_a_stack_from_one_connector() {
    let azure = seed_azure().await;
    let app = TestApp::spawn_with_azure(Backend::Sqlite, &azure, |_| {}).await;
    let zenml = Zenml::as_user(&app, "default", ADMIN_PASSWORD);
    zenml.ok(&strs(&register_connector())).await;

    // The wizard asks, per component, whether to reuse one already connected (none: `0`
    // makes a new one), then which resource to use: the blob container, the Kubernetes
    // orchestrator on the cluster (after the two that run on the subscription), the registry.
    let wizard = answering(
        &zenml,
        &[
            "stack",
            "register",
            "az-wizard",
            "-p",
            "azure",
            "-sc",
            CONNECTOR,
        ],
        "0\n0\n0\n2\n0\n0\n",
    )
    .await;
    assert!(wizard.success, "{}", wizard.output);
    assert_has(
        &wizard.output,
        &["Stack 'az-wizard' successfully registered!"],
    );
    let described = zenml.ok(&["stack", "describe", "az-wizard"]).await;
    assert_has(
        &described,
        &[
            "ARTIFACT_STORE",
            "ORCHESTRATOR",
            "CONTAINER_REGISTRY",
            "az-wizard",
        ],
    );
    let stack = app
        .get("/api/v1/stacks?name=az-wizard&hydrate=true", &app.admin)
        .await
        .ok();
    let components = &stack["items"][0]["metadata"]["components"];
    assert_eq!(
        components["orchestrator"][0]["body"]["flavor_name"],
        "kubernetes"
    );
    assert_eq!(
        components["artifact_store"][0]["body"]["flavor_name"],
        "azure"
    );
    assert_eq!(
        components["container_registry"][0]["body"]["flavor_name"],
        "azure"
    );
    let orchestrator = components["orchestrator"][0]["id"].as_str().unwrap();
    let orchestrator = app
        .get(&format!("/api/v1/components/{orchestrator}"), &app.admin)
        .await
        .ok();
    assert_eq!(orchestrator["metadata"]["connector"]["name"], CONNECTOR);
    assert_eq!(orchestrator["metadata"]["connector_resource_id"], CLUSTER);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_in_use_are_protected_and_come_apart_in_order() {
    let azure = seed_azure().await;
    let app = TestApp::spawn_with_azure(Backend::Sqlite, &azure, |_| {}).await;
    let zenml = Zenml::as_user(&app, "default", ADMIN_PASSWORD);
    zenml.ok(&strs(&register_connector())).await;
    zenml
        .ok(&[
            "artifact-store",
            "register",
            "azure-demo",
            "--flavor",
            "azure",
            &format!("--path={CONTAINER}"),
            "--connector",
            CONNECTOR,
        ])
        .await;
    zenml
        .ok(&[
            "stack",
            "register",
            "in-use",
            "-a",
            "azure-demo",
            "-o",
            "default",
        ])
        .await;

    // The connector serves a component: deleting it is refused, saying why.
    let refused = answering(&zenml, &["service-connector", "delete", CONNECTOR], "y\n").await;
    assert!(!refused.success, "{}", refused.output);
    let refused = refused.output;
    assert_has(
        &refused,
        &["cannot be deleted as it is still referenced by 1 stack components"],
    );
    // The component is part of a stack: deleting it is refused, saying why.
    zenml
        .fails(
            &["artifact-store", "delete", "azure-demo"],
            &["cannot be deleted as it is part of 1 stacks"],
        )
        .await;

    let disconnected = zenml
        .ok(&["artifact-store", "disconnect", "azure-demo"])
        .await;
    assert_has(&disconnected, &["azure-demo"]);
    let described = zenml
        .ok(&["artifact-store", "describe", "azure-demo"])
        .await;
    assert_has(&described, &["No connector is set for this component."]);

    let deleted = zenml.ok(&["stack", "delete", "in-use", "-y"]).await;
    assert_has(&deleted, &["Deleted stack 'in-use'."]);
    let deleted = zenml.ok(&["artifact-store", "delete", "azure-demo"]).await;
    assert_has(&deleted, &["Deleted artifact store: azure-demo"]);
    let deleted = zenml
        .confirmed(&["service-connector", "delete", CONNECTOR])
        .await;
    assert_has(
        &deleted,
        &["Deleted service connector: azure-service-principal"],
    );
    let stacks = zenml.ok(&["stack", "list"]).await;
    assert!(!stacks.contains("in-use"), "{stacks}");
    app.stop().await;
}
