//! The real zenml 0.98 command-line client against connector-hub, as users run it.
//!
//! It needs the client installed: `tests/run.sh` puts `zenml==0.98.0` into `tests/.venv`
//! (or set `ZENML_CLI` to a `zenml` executable). Without it these tests fail; they never skip.

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::fakes::azure::{
    ARM_AUDIENCE, DEFAULT_CLIENT_ID, DEFAULT_SUBSCRIPTION_ID, DEFAULT_TENANT_ID, FakeAzure,
    FakeAzureConfig, FakeCluster, FakeRegistry, FakeServicePrincipal, FakeStorageAccount,
};
use crate::harness::{ADMIN_PASSWORD, Backend, TestApp};

const TENANT: &str = DEFAULT_TENANT_ID;
const CLIENT: &str = DEFAULT_CLIENT_ID;
/// A second service principal, for the blob connector.
const BLOB_CLIENT: &str = "2f7a1c3e-0000-4000-8000-000000000002";

pub(crate) fn zenml_executable() -> PathBuf {
    let path = std::env::var_os("ZENML_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/.venv/bin/zenml"
            ))
        });
    assert!(
        path.exists(),
        "the zenml client is not installed at {}: run tests/run.sh, which installs zenml==0.98.0 \
         into tests/.venv",
        path.display()
    );
    path
}

/// The longest a zenml command may take before a test gives up on it.
const CLI_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Waits for a zenml process to end, for at most [`CLI_WAIT`]; past that it is killed.
pub(crate) async fn finish(child: tokio::process::Child, what: &str) -> std::process::Output {
    tokio::time::timeout(CLI_WAIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {CLI_WAIT:?}"))
        .expect("zenml runs")
}

/// One user's zenml client: its own home folder (configuration and cached token).
pub(crate) struct Zenml {
    home: tempfile::TempDir,
    store_url: String,
    login: Option<(String, String)>,
    /// Set for zenml and the tools it runs, such as `DOCKER_HOST`.
    extra_env: Vec<(String, String)>,
}

pub(crate) struct Ran {
    pub success: bool,
    pub output: String,
}

impl Zenml {
    /// A client that logs in lazily with a user name and password from the environment.
    pub(crate) fn as_user(app: &TestApp, username: &str, password: &str) -> Zenml {
        Zenml {
            home: tempfile::tempdir().unwrap(),
            store_url: app.base.clone(),
            login: Some((username.to_owned(), password.to_owned())),
            extra_env: Vec::new(),
        }
    }

    /// A client with no credentials configured, which logs in with `zenml login`.
    pub(crate) fn logged_out(app: &TestApp) -> Zenml {
        Zenml {
            home: tempfile::tempdir().unwrap(),
            store_url: app.base.clone(),
            login: None,
            extra_env: Vec::new(),
        }
    }

    /// The same client with `name` set to `value` in its environment.
    pub(crate) fn with_env(mut self, name: &str, value: &str) -> Zenml {
        self.extra_env.push((name.to_owned(), value.to_owned()));
        self
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = self.environment(Command::new(zenml_executable()));
        command.args(args);
        command
    }

    /// `zenml login <url>` with both output streams merged, to read what it prints in order.
    fn interactive_login(&self) -> Command {
        let script = format!(
            "exec '{}' login '{}' 2>&1",
            zenml_executable().display(),
            self.store_url
        );
        let mut command = self.environment(Command::new("sh"));
        command.args(["-c", &script]);
        command
    }

    fn environment(&self, mut command: Command) -> Command {
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("ZENML_ANALYTICS_OPT_IN", "false")
            .env("ZENML_LOGGING_COLORS_DISABLED", "true")
            .env("ZENML_ENABLE_RICH_TRACEBACK", "false")
            .env("NO_COLOR", "1")
            .env("COLUMNS", "250")
            .env("BROWSER", "true")
            .envs(self.extra_env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some((username, password)) = &self.login {
            command
                .env("ZENML_STORE_URL", &self.store_url)
                .env("ZENML_STORE_USERNAME", username)
                .env("ZENML_STORE_PASSWORD", password);
        }
        command
    }

    pub(crate) async fn run(&self, args: &[&str]) -> Ran {
        let output = tokio::time::timeout(CLI_WAIT, self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("zenml {args:?} did not finish within {CLI_WAIT:?}"))
            .expect("zenml runs");
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        Ran {
            success: output.status.success(),
            output: text,
        }
    }

    /// Runs a command that asks for confirmation, answering yes.
    pub(crate) async fn confirmed(&self, args: &[&str]) -> String {
        use tokio::io::AsyncWriteExt;
        let mut command = self.command(args);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("zenml runs");
        child.stdin.take().unwrap().write_all(b"y\n").await.unwrap();
        let output = finish(child, &format!("zenml {args:?}")).await;
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "zenml {args:?} failed:\n{text}");
        text
    }

    /// Runs kubectl with this client's home folder (and so its kubeconfig); must succeed.
    pub(crate) async fn kubectl(&self, args: &[&str]) -> String {
        let output = self
            .environment(Command::new("kubectl"))
            .args(args)
            .output()
            .await
            .expect("kubectl runs");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "kubectl {args:?} failed:\n{text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        text
    }

    /// Runs a command that must succeed and returns what it printed.
    pub(crate) async fn ok(&self, args: &[&str]) -> String {
        let ran = self.run(args).await;
        assert!(ran.success, "zenml {args:?} failed:\n{}", ran.output);
        ran.output
    }

    /// Runs a command that must fail saying each of `expected`; returns what it printed.
    pub(crate) async fn fails(&self, args: &[&str], expected: &[&str]) -> String {
        let ran = self.run(args).await;
        assert!(
            !ran.success,
            "zenml {args:?} should have failed:\n{}",
            ran.output
        );
        for wanted in expected {
            assert!(
                ran.output.contains(wanted),
                "zenml {args:?} failed without saying {wanted:?}:\n{}",
                ran.output
            );
        }
        ran.output
    }
}

fn service_principal_args(name: &str, client_id: &str, secret: &str) -> Vec<String> {
    vec![
        "service-connector".into(),
        "register".into(),
        name.into(),
        "--type".into(),
        "azure".into(),
        "--auth-method".into(),
        "service-principal".into(),
        format!("--tenant_id={TENANT}"),
        format!("--client_id={client_id}"),
        format!("--client_secret={secret}"),
    ]
}

/// The Azure the CLI's connectors reach: two service principals, a storage account with a
/// `data` container, a registry and a cluster.
async fn fake_azure() -> FakeAzure {
    let sub = DEFAULT_SUBSCRIPTION_ID;
    FakeAzure::start(FakeAzureConfig {
        service_principals: vec![
            FakeServicePrincipal::new(CLIENT, "very-secret-1"),
            FakeServicePrincipal::new(BLOB_CLIENT, "very-secret-2"),
        ],
        storage_accounts: vec![
            FakeStorageAccount::new(sub, "rg1", "acct1").with_containers(&["data"]),
        ],
        registries: vec![FakeRegistry::new(sub, "rg1", "myregistry")],
        clusters: vec![FakeCluster::new(sub, "rg1", "c1")],
        ..FakeAzureConfig::default()
    })
    .await
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_connectors_work_once_the_administrator_enables_them() {
    let azure = fake_azure().await;
    let app = TestApp::spawn_with_azure(Backend::Sqlite, &azure, |config| {
        config.enable_implicit_auth_methods = true;
        config.azure.azure_tenant_id = Some(TENANT.into());
        config.azure.azure_client_id = Some(CLIENT.into());
        config.azure.azure_client_secret = Some("very-secret-1".into());
    })
    .await;
    let zenml = Zenml::as_user(&app, "default", ADMIN_PASSWORD);
    let types = zenml
        .ok(&[
            "service-connector",
            "describe-type",
            "azure",
            "--auth-method",
            "implicit",
        ])
        .await;
    assert!(types.contains("implicit"), "{types}");
    let registered = zenml
        .ok(&[
            "service-connector",
            "register",
            "az-implicit",
            "--type",
            "azure",
            "--auth-method",
            "implicit",
            "--resource-type",
            "docker-registry",
        ])
        .await;
    assert!(registered.contains("myregistry.azurecr.io"), "{registered}");

    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_reads_as_zenmls_own_azure_type() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let zenml = Zenml::as_user(&app, "default", ADMIN_PASSWORD);
    let types = zenml
        .ok(&["service-connector", "list-types", "--type", "azure"])
        .await;
    for expected in [
        "Azure Service Connector",
        "azure-generic",
        "blob-container",
        "kubernetes-cluster",
        "docker-registry",
        "service-principal",
        "access-token",
        "implicit",
    ] {
        assert!(
            types.contains(expected),
            "list-types lacks {expected}:\n{types}"
        );
    }
    let described = zenml
        .ok(&["service-connector", "describe-type", "azure"])
        .await;
    assert!(
        described.contains("Azure Service Connector (connector type: azure)"),
        "{described}"
    );
    let method = zenml
        .ok(&[
            "service-connector",
            "describe-type",
            "azure",
            "--auth-method",
            "service-principal",
        ])
        .await;
    assert!(
        method.contains("client_secret") && method.contains("tenant_id"),
        "{method}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_are_registered_verified_listed_updated_and_deleted() {
    let azure = fake_azure().await;
    let app = TestApp::spawn_with_azure(Backend::Sqlite, &azure, |_| {}).await;
    let zenml = Zenml::as_user(&app, "default", ADMIN_PASSWORD);

    // Registering verifies against Azure and shows what the connector reaches.
    let registered = zenml
        .ok(&strs(&service_principal_args(
            "az-multi",
            CLIENT,
            "very-secret-1",
        )))
        .await;
    assert!(
        registered.contains("Successfully registered service connector `az-multi`"),
        "{registered}"
    );
    for reached in [
        "Example Subscription",
        "az://data",
        "rg1/c1",
        "myregistry.azurecr.io",
    ] {
        assert!(registered.contains(reached), "{reached}:\n{registered}");
    }
    let mut single = service_principal_args("az-blob", BLOB_CLIENT, "very-secret-2");
    single.extend([
        "--resource-type".into(),
        "blob-container".into(),
        "--resource-id".into(),
        "abfs://data".into(),
    ]);
    single.extend(["--label".into(), "env=prod".into()]);
    let registered = zenml.ok(&strs(&single)).await;
    assert!(
        registered.contains("az://data"),
        "the id is canonical: {registered}"
    );
    let token = zenml
        .ok(&[
            "service-connector",
            "register",
            "az-token",
            "--type",
            "azure",
            "--auth-method",
            "access-token",
            &format!(
                "--token={}",
                azure.mint_aad_token(CLIENT, ARM_AUDIENCE, 3600)
            ),
            "--expires-at",
            "2099-01-01T00:00:00",
            "--resource-type",
            "docker-registry",
            "--resource-id",
            "myregistry",
        ])
        .await;
    assert!(token.contains("myregistry.azurecr.io"), "{token}");
    zenml
        .fails(
            &strs(&service_principal_args(
                "az-wrong",
                CLIENT,
                "not-the-secret",
            )),
            &["AADSTS7000215"],
        )
        .await;
    zenml
        .fails(
            &[
                "service-connector",
                "register",
                "az-implicit",
                "--type",
                "azure",
                "--auth-method",
                "implicit",
            ],
            &["ZENML_ENABLE_IMPLICIT_AUTH_METHODS"],
        )
        .await;

    let listed = zenml.ok(&["service-connector", "list"]).await;
    for name in ["az-multi", "az-blob", "az-token"] {
        assert!(listed.contains(name), "{listed}");
    }
    assert!(!listed.contains("az-implicit"));
    let by_label = zenml
        .ok(&["service-connector", "list", "--label", "env=prod"])
        .await;
    assert!(
        by_label.contains("az-blob") && !by_label.contains("az-multi"),
        "{by_label}"
    );
    let by_type = zenml
        .ok(&[
            "service-connector",
            "list",
            "--resource_type",
            "docker-registry",
        ])
        .await;
    assert!(
        by_type.contains("az-token") && !by_type.contains("az-blob"),
        "{by_type}"
    );

    let described = zenml
        .ok(&["service-connector", "describe", "az-multi"])
        .await;
    assert!(
        described.contains(CLIENT) && !described.contains("very-secret-1"),
        "secrets stay hidden:\n{described}"
    );

    let verified = zenml.ok(&["service-connector", "verify", "az-multi"]).await;
    for reached in ["az://data", "rg1/c1", "myregistry.azurecr.io"] {
        assert!(verified.contains(reached), "{reached}:\n{verified}");
    }
    for (resource_type, resource_id) in [
        ("azure-generic", "Example Subscription"),
        ("blob-container", "az://data"),
        ("kubernetes-cluster", "rg1/c1"),
        ("docker-registry", "myregistry.azurecr.io"),
    ] {
        let one = zenml
            .ok(&[
                "service-connector",
                "verify",
                "az-multi",
                "--resource-type",
                resource_type,
                "--resource-id",
                resource_id,
            ])
            .await;
        assert!(one.contains(resource_id), "{resource_id}:\n{one}");
    }
    zenml
        .fails(
            &[
                "service-connector",
                "verify",
                "az-multi",
                "--resource-type",
                "blob-container",
                "--resource-id",
                "az://nowhere",
            ],
            &["nowhere"],
        )
        .await;

    // `login` hands kubectl the cluster's short-lived credentials from the client endpoint.
    let login = zenml
        .ok(&[
            "service-connector",
            "login",
            "az-multi",
            "--resource-type",
            "kubernetes-cluster",
            "--resource-id",
            "rg1/c1",
        ])
        .await;
    assert!(login.contains("c1"), "{login}");
    let context = zenml.kubectl(&["config", "current-context"]).await;
    assert_eq!(context.trim(), "c1");
    let server = zenml
        .kubectl(&[
            "config",
            "view",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ])
        .await;
    assert_eq!(server.trim(), azure.cluster_server_url("c1"));

    let updated = zenml
        .ok(&[
            "service-connector",
            "update",
            "az-multi",
            "--label",
            "team=ml",
            "--description",
            "the ML team's",
        ])
        .await;
    assert!(updated.contains("az-multi"), "{updated}");
    let described = zenml
        .ok(&["service-connector", "describe", "az-multi"])
        .await;
    assert!(described.contains("team"), "{described}");
    azure.set_client_secret(CLIENT, "rotated-secret");
    zenml
        .ok(&[
            "service-connector",
            "update",
            "az-multi",
            "--client_secret=rotated-secret",
        ])
        .await;
    let api = app
        .get(
            "/api/v1/service_connectors?name=az-multi&hydrate=true",
            &app.admin,
        )
        .await
        .ok();
    assert_eq!(api["items"][0]["body"]["description"], "the ML team's");
    assert_eq!(api["items"][0]["metadata"]["labels"]["team"], "ml");
    assert_eq!(
        api["items"][0]["metadata"]["configuration"]["client_secret"],
        "rotated-secret"
    );

    let resources = zenml
        .ok(&[
            "service-connector",
            "list-resources",
            "--resource-type",
            "blob-container",
        ])
        .await;
    assert!(resources.contains("az://data"), "{resources}");

    let deleted = zenml
        .confirmed(&["service-connector", "delete", "az-blob"])
        .await;
    assert!(
        deleted.contains("Deleted service connector: az-blob"),
        "{deleted}"
    );
    let listed = zenml.ok(&["service-connector", "list"]).await;
    assert!(!listed.contains("az-blob"), "{listed}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_created_read_updated_and_deleted() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let zenml = Zenml::as_user(&app, "default", ADMIN_PASSWORD);
    zenml
        .ok(&[
            "secret",
            "create",
            "db-creds",
            "--username=admin",
            "--password=hunter2",
        ])
        .await;
    let listed = zenml.ok(&["secret", "list"]).await;
    assert!(
        listed.contains("db-creds") && !listed.contains("hunter2"),
        "{listed}"
    );
    let got = zenml.ok(&["secret", "get", "db-creds"]).await;
    assert!(got.contains("hunter2") && got.contains("admin"), "{got}");
    zenml
        .ok(&["secret", "update", "db-creds", "--password=correct-horse"])
        .await;
    let got = zenml.ok(&["secret", "get", "db-creds"]).await;
    assert!(
        got.contains("correct-horse") && !got.contains("hunter2"),
        "{got}"
    );
    zenml.ok(&["secret", "delete", "db-creds", "-y"]).await;
    zenml
        .fails(&["secret", "get", "db-creds"], &["db-creds"])
        .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_workspace_sees_nothing_through_the_cli() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.create_workspace("other").await;
    app.create_user("eve", "other", "admin").await;
    let owner = Zenml::as_user(&app, "default", ADMIN_PASSWORD);
    owner
        .ok(&strs(
            &[
                service_principal_args("owners-connector", CLIENT, "owners-secret"),
                vec!["--no-verify".into()],
            ]
            .concat(),
        ))
        .await;
    owner
        .ok(&["secret", "create", "owners-secret", "--key=value"])
        .await;

    let eve = Zenml::as_user(&app, "eve", "eve password");
    let connectors = eve.ok(&["service-connector", "list"]).await;
    assert!(!connectors.contains("owners-connector"), "{connectors}");
    let secrets = eve.ok(&["secret", "list"]).await;
    assert!(!secrets.contains("owners-secret"), "{secrets}");
    eve.fails(
        &["service-connector", "describe", "owners-connector"],
        &[
            "No service_connectors have been found",
            "'owners-connector'",
        ],
    )
    .await;
    eve.fails(
        &["secret", "get", "owners-secret"],
        &["No secret found with name, ID or prefix 'owners-secret'"],
    )
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zenml_login_works_with_an_api_key_and_with_a_device_approval() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let key = app.create_service_account("robot", "default").await;
    let key = key["body"]["key"].as_str().unwrap().to_owned();

    // API key, read from standard input.
    let robot = Zenml::logged_out(&app);
    let mut login = robot.command(&["login", &app.base, "--api-key"]);
    login
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = login.spawn().unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(format!("{key}\n").as_bytes())
            .await
            .unwrap();
    }
    let output = finish(child, "zenml login --api-key").await;
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{printed}");
    let me = robot.ok(&["secret", "list"]).await;
    assert!(me.contains("items") || me.contains("No secrets"), "{me}");

    // The device flow: the client prints where to approve; the admin approves over the API.
    let person = Zenml::logged_out(&app);
    let mut login = person.interactive_login();
    login.stdout(Stdio::piped()).kill_on_drop(true);
    let mut child = login.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let url = tokio::time::timeout(CLI_WAIT, async {
        loop {
            let line = lines.next_line().await.unwrap().unwrap_or_else(|| {
                panic!("zenml login ended without a verification URL:\n{printed}")
            });
            if let Some(start) = line.find("/devices/verify?") {
                break line[start..].trim().to_owned();
            }
            printed.push_str(&line);
            printed.push('\n');
        }
    })
    .await
    .unwrap_or_else(|_| panic!("zenml login printed no verification URL within {CLI_WAIT:?}"));
    let query = url.split('?').nth(1).unwrap();
    let value = |name: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_owned()
    };
    app.put(
        &format!("/api/v1/devices/{}/verify", value("device_id")),
        &app.admin,
        json!({"user_code": value("user_code")}),
    )
    .await
    .ok();
    let mut rest = String::new();
    let finished = tokio::time::timeout(CLI_WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            rest.push_str(&line);
            rest.push('\n');
        }
        child.wait().await.unwrap()
    })
    .await;
    let status = finished.unwrap_or_else(|_| {
        panic!("zenml login did not finish within {CLI_WAIT:?} of the approval:\n{rest}")
    });
    assert!(status.success(), "{rest}");
    assert!(rest.contains("Successfully logged in"), "{rest}");
    let connectors = person.ok(&["service-connector", "list"]).await;
    assert!(!connectors.contains("Error"), "{connectors}");
    app.stop().await;
}
