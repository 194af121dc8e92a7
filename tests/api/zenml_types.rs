//! The real zenml 0.98 client with the `kubernetes` and `docker` connector types: `register`,
//! `verify`, `describe` and `login`, against the fake AKS API server and the fake ACR, and
//! then the tools `login` configures (kubectl, and a Docker daemon) used as users use them.
//!
//! Like the other CLI tests (`zenml_cli.rs`), they need the zenml client and fail without it.

use serde_json::Value;

use crate::docker_type::{ADMIN_PASSWORD as REGISTRY_PASSWORD, one_registry};
use crate::fakes::azure::{FakeAzure, Surface};
use crate::fakes::docker_daemon::{FakeDockerDaemon, Login};
use crate::harness::{ADMIN_PASSWORD, Backend, TestApp};
use crate::kubernetes_type::{PASSWORD, USER, base64_of, one_cluster};
use crate::zenml_cli::Zenml;

/// How a `kubernetes` connector authenticates.
enum Credentials {
    Token(String),
    Password(&'static str),
}

fn kubernetes_register_args(
    azure: &FakeAzure,
    name: &str,
    credentials: &Credentials,
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "service-connector".into(),
        "register".into(),
        name.into(),
        "--type".into(),
        "kubernetes".into(),
        format!("--server={}", azure.cluster_server_url("c1")),
        "--cluster_name=c1".into(),
        format!("--certificate_authority={}", base64_of(azure.ca_pem())),
    ];
    match credentials {
        Credentials::Token(token) => args.extend([
            "--auth-method".into(),
            "token".into(),
            format!("--token={token}"),
        ]),
        Credentials::Password(password) => args.extend([
            "--auth-method".into(),
            "password".into(),
            format!("--username={USER}"),
            format!("--password={password}"),
        ]),
    }
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Registers a `kubernetes` connector for `c1`, verifies and describes it, logs kubectl in
/// with it, and uses kubectl on the cluster with what `login` wrote.
async fn kubectl_reaches_the_cluster_after_login(
    credentials: impl FnOnce(&FakeAzure) -> Credentials,
) {
    let azure = one_cluster().await;
    let credentials = credentials(&azure);
    let secret = match &credentials {
        Credentials::Token(token) => token.clone(),
        Credentials::Password(password) => password.to_string(),
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let zenml = Zenml::as_user(&app, "default", ADMIN_PASSWORD);
    let server = azure.cluster_server_url("c1");

    let registered = zenml
        .ok(&strs(&kubernetes_register_args(
            &azure,
            "k8s",
            &credentials,
        )))
        .await;
    assert!(
        registered.contains("Successfully registered service connector `k8s`")
            && registered.contains("c1"),
        "{registered}"
    );
    let verified = zenml.ok(&["service-connector", "verify", "k8s"]).await;
    assert!(
        verified.contains("kubernetes-cluster") && verified.contains("c1"),
        "{verified}"
    );
    let described = zenml.ok(&["service-connector", "describe", "k8s"]).await;
    assert!(
        described.contains(&server) && described.contains("c1"),
        "{described}"
    );
    assert!(
        !described.contains(&secret),
        "secrets stay hidden:\n{described}"
    );

    let login = zenml.ok(&["service-connector", "login", "k8s"]).await;
    assert!(login.contains("c1"), "{login}");
    let context = zenml.kubectl(&["config", "current-context"]).await;
    assert_eq!(context.trim(), "c1");
    let configured = zenml
        .kubectl(&[
            "config",
            "view",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ])
        .await;
    assert_eq!(configured.trim(), server);

    // kubectl itself, with the kubeconfig `login` wrote: the version and the namespaces.
    let version: Value =
        serde_json::from_str(&zenml.kubectl(&["version", "-o", "json"]).await).unwrap();
    assert_eq!(
        version["serverVersion"]["gitVersion"], "v1.30.3",
        "{version}"
    );
    let namespaces: Value =
        serde_json::from_str(&zenml.kubectl(&["get", "--raw", "/api/v1/namespaces"]).await)
            .unwrap();
    assert_eq!(namespaces["kind"], "NamespaceList");
    assert!(
        namespaces.to_string().contains("kube-system"),
        "{namespaces}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_token_connector_logs_kubectl_in() {
    kubectl_reaches_the_cluster_after_login(|azure| {
        Credentials::Token(azure.cluster_admin_token("c1"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_password_connector_logs_kubectl_in() {
    kubectl_reaches_the_cluster_after_login(|_| Credentials::Password(PASSWORD)).await;
}

/// A server that trusts the fake ACR's CA for user-named registries (`--trusted-ca-file`).
async fn server_trusting(azure: &FakeAzure) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("registry-ca.pem");
    std::fs::write(&ca_file, azure.ca_pem()).unwrap();
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.user_endpoints.trusted_ca_file = Some(ca_file.clone());
    })
    .await;
    (app, dir)
}

fn docker_register_args<'a>(name: &'a str, registry: &'a str, password: &'a str) -> Vec<String> {
    vec![
        "service-connector".into(),
        "register".into(),
        name.into(),
        "--type".into(),
        "docker".into(),
        "--auth-method".into(),
        "password".into(),
        format!("--registry={registry}"),
        "--username=reg1".into(),
        format!("--password={password}"),
    ]
}

/// Registers a `docker` connector for the fake ACR with its admin user, verifies and
/// describes it, and logs the Docker daemon in with it: the daemon performs the registry's
/// login handshake for `reg1`. A wrong password is refused by the server's verify and by the
/// daemon's login alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_connector_logs_the_docker_daemon_in() {
    let azure = one_registry().await;
    let registry = azure.registry_login_server("reg1");
    let daemon = FakeDockerDaemon::start(azure.ca_pem()).await;
    let (app, _dir) = server_trusting(&azure).await;
    let zenml = Zenml::as_user(&app, "default", ADMIN_PASSWORD)
        .with_env("DOCKER_HOST", &daemon.docker_host());

    let registered = zenml
        .ok(&strs(&docker_register_args(
            "acr",
            &registry,
            REGISTRY_PASSWORD,
        )))
        .await;
    assert!(
        registered.contains("Successfully registered service connector `acr`")
            && registered.contains(&registry),
        "{registered}"
    );
    let verified = zenml.ok(&["service-connector", "verify", "acr"]).await;
    assert!(
        verified.contains("docker-registry") && verified.contains(&registry),
        "{verified}"
    );
    let described = zenml.ok(&["service-connector", "describe", "acr"]).await;
    assert!(described.contains(&registry), "{described}");
    assert!(
        !described.contains(REGISTRY_PASSWORD),
        "secrets stay hidden:\n{described}"
    );
    assert!(daemon.logins().is_empty(), "{:?}", daemon.logins());

    let token_requests = |azure: &FakeAzure| {
        (azure.requests().into_iter())
            .filter(|r| {
                r.surface == Surface::ContainerRegistry
                    && r.path_and_query.starts_with("/oauth2/token?")
            })
            .map(|r| r.path_and_query)
            .collect::<Vec<_>>()
    };
    let before = token_requests(&azure).len();
    let login = zenml.ok(&["service-connector", "login", "acr"]).await;
    assert!(login.contains("successfully configure"), "{login}");
    assert_eq!(
        daemon.logins(),
        [Login {
            registry: registry.clone(),
            username: "reg1".into(),
            outcome: Ok(()),
        }]
    );
    // The daemon asked the registry's token endpoint for the account, as dockerd does.
    let asked = token_requests(&azure);
    assert!(
        asked[before..]
            .iter()
            .any(|query| query.contains("account=reg1") && query.contains("client_id=docker")),
        "{asked:?}"
    );

    // A wrong password: the server's verify says so, and so does the daemon's login.
    zenml
        .fails(
            &strs(&docker_register_args(
                "acr-wrong",
                &registry,
                "not-the-password",
            )),
            &["refused the username and password"],
        )
        .await;
    let mut unverified = docker_register_args("acr-wrong", &registry, "not-the-password");
    unverified.push("--no-verify".into());
    zenml.ok(&strs(&unverified)).await;
    zenml
        .fails(
            &["service-connector", "verify", "acr-wrong"],
            &["refused the username and password"],
        )
        .await;
    let refused = zenml
        .fails(
            &["service-connector", "login", "acr-wrong"],
            &["unauthorized"],
        )
        .await;
    let logins = daemon.logins();
    let [
        _,
        Login {
            username,
            outcome: Err(message),
            ..
        },
    ] = logins.as_slice()
    else {
        panic!("{logins:?}\n{refused}")
    };
    assert_eq!(username, "reg1");
    assert!(
        message.starts_with(&format!("Get \"https://{registry}/v2/\": unauthorized:")),
        "{message}"
    );
    app.stop().await;
}
