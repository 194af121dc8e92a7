//! The Kubernetes manifests in `deploy/kubernetes`, as `kubectl kustomize` renders them for an
//! operator: implicit authentication off unless the `implicit-auth` overlay turns it on, no
//! credential ever written into a manifest, and a server that runs replicated, probed,
//! unprivileged and within bounds, with its Service, disruption budget, service account and
//! network policy.
//!
//! It needs kubectl (v1.14 or later has Kustomize built in); `tests/run.sh` checks for it.
//! Without it these tests fail; they never skip.

use std::process::Command;

use serde_json::{Value, json};

const BASE: &str = "base";
const IMPLICIT_AUTH: &str = "overlays/implicit-auth";
const POSTGRES_DEV: &str = "overlays/postgres-dev";
const ALL: [&str; 3] = [BASE, IMPLICIT_AUTH, POSTGRES_DEV];

/// The server's credentials and their keys in the Secret `connector-hub-secrets`.
const SERVER_CREDENTIALS: [(&str, &str); 3] = [
    ("DATABASE_URL", "database-url"),
    ("CONNECTOR_HUB_ENCRYPTION_KEY", "encryption-key"),
    ("CONNECTOR_HUB_ADMIN_PASSWORD", "admin-password"),
];

/// Variables that carry credentials: they must come from a Secret.
fn is_credential(name: &str) -> bool {
    name == "POSTGRES_PASSWORD" || SERVER_CREDENTIALS.iter().any(|(v, _)| *v == name)
}

/// What runs next to the server in every variant, each named `connector-hub`.
const SUPPORTING: [&str; 4] = [
    "Service",
    "PodDisruptionBudget",
    "ServiceAccount",
    "NetworkPolicy",
];

/// The objects `kubectl kustomize deploy/kubernetes/{dir}` renders.
struct Render {
    dir: &'static str,
    objects: Vec<Value>,
}

fn render(dir: &'static str) -> Render {
    let path = format!("{}/deploy/kubernetes/{dir}", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run kubectl ({e}): the Kustomize render test needs kubectl on PATH")
        });
    assert!(
        output.status.success(),
        "kubectl kustomize {dir} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let yaml = String::from_utf8(output.stdout).expect("kubectl prints UTF-8");
    let objects = serde_saphyr::from_multiple(&yaml)
        .unwrap_or_else(|e| panic!("kubectl kustomize {dir} printed unreadable YAML: {e}"));
    Render { dir, objects }
}

/// `value` at `path`, keys separated by dots, or `Null`.
fn at<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(value, |v, key| &v[key])
}

fn text<'a>(value: &'a Value, path: &str) -> &'a str {
    at(value, path).as_str().unwrap_or_default()
}

fn list<'a>(value: &'a Value, path: &str) -> &'a [Value] {
    at(value, path).as_array().map_or(&[], Vec::as_slice)
}

/// Where a container's `variable` comes from, as `secret/key`.
fn secret_of(c: &Value, variable: &str) -> String {
    let env = list(c, "env").iter().find(|e| e["name"] == variable);
    let secret = env.map_or(&Value::Null, |e| at(e, "valueFrom.secretKeyRef"));
    format!("{}/{}", text(secret, "name"), text(secret, "key"))
}

impl Render {
    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        let named = |o: &&Value| o["kind"] == kind && o["metadata"]["name"] == name;
        self.objects.iter().find(named)
    }

    fn has(&self, kind: &str, name: &str) -> bool {
        self.find(kind, name).is_some()
    }

    fn get(&self, kind: &str, name: &str) -> &Value {
        self.find(kind, name)
            .unwrap_or_else(|| panic!("{} renders no {kind} {name}", self.dir))
    }

    /// The server's ConfigMap; Kustomize's generator appends a content hash to its name.
    fn config_map(&self) -> &Value {
        let server_config =
            |o: &&Value| text(o, "metadata.name").starts_with("connector-hub-config");
        let mut maps = self.of_kind("ConfigMap").filter(server_config);
        let map = maps.next();
        assert!(maps.next().is_none(), "{}: two server ConfigMaps", self.dir);
        map.unwrap_or_else(|| panic!("{} renders no connector-hub-config", self.dir))
    }

    fn implicit_auth(&self) -> &str {
        text(self.config_map(), "data.ZENML_ENABLE_IMPLICIT_AUTH_METHODS")
    }

    fn server_reads_config_map(&self) -> bool {
        let name = text(self.config_map(), "metadata.name");
        let sources = list(self.server(), "envFrom");
        sources.iter().any(|e| text(e, "configMapRef.name") == name)
    }

    fn pod(&self) -> &Value {
        at(self.get("Deployment", "connector-hub"), "spec.template")
    }

    fn server(&self) -> &Value {
        list(self.pod(), "spec.containers")
            .iter()
            .find(|c| c["name"] == "connector-hub")
            .unwrap_or_else(|| panic!("{}: no connector-hub container", self.dir))
    }

    /// Every container of every workload.
    fn containers(&self) -> impl Iterator<Item = &Value> {
        self.objects
            .iter()
            .flat_map(|o| list(o, "spec.template.spec.containers"))
    }

    /// Credential variables set by value anywhere, as `container/VARIABLE`.
    fn literal_credentials(&self) -> Vec<String> {
        let literal = |e: &&Value| {
            is_credential(text(e, "name"))
                && (!e["value"].is_null() || e["valueFrom"]["secretKeyRef"].is_null())
        };
        let mut found = Vec::new();
        for c in self.containers() {
            for e in list(c, "env").iter().filter(literal) {
                found.push(format!("{}/{}", text(c, "name"), text(e, "name")));
            }
        }
        found
    }

    /// Secrets written out with their contents.
    fn secrets_with_data(&self) -> usize {
        self.of_kind("Secret")
            .filter(|s| !s["data"].is_null() || !s["stringData"].is_null())
            .count()
    }

    /// The Service reaches the server's pods.
    fn service_selects_server(&self) -> bool {
        let selector = at(self.get("Service", "connector-hub"), "spec.selector");
        let labels = at(self.pod(), "metadata.labels");
        selector
            .as_object()
            .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| &labels[k] == v))
    }

    /// The TCP and UDP ports the network policy opens in `direction` (`ingress` or `egress`).
    fn policy_ports(&self, direction: &str) -> Vec<String> {
        let policy = self.get("NetworkPolicy", "connector-hub");
        list(policy, &format!("spec.{direction}"))
            .iter()
            .flat_map(|rule| list(rule, "ports"))
            .map(|p| format!("{}/{}", text(p, "protocol"), p["port"]))
            .collect()
    }
}

/// An admin opts in to lending connectors the server's identity; the `implicit-auth` overlay
/// does (with Azure workload identity), the others leave it off, and the server reads the
/// setting from its ConfigMap.
#[test]
fn implicit_auth_is_off_unless_the_overlay_turns_it_on() {
    for dir in ALL {
        let r = render(dir);
        let expected = (dir == IMPLICIT_AUTH).to_string();
        assert_eq!(r.implicit_auth(), expected, "{dir}");
        assert!(r.server_reads_config_map(), "{dir}: no envFrom");
    }
    let r = render(IMPLICIT_AUTH);
    let use_identity = &at(r.pod(), "metadata.labels")["azure.workload.identity/use"];
    assert_eq!(use_identity, "true", "the workload identity pod label");
    let account = r.get("ServiceAccount", "connector-hub");
    let client_id = &at(account, "metadata.annotations")["azure.workload.identity/client-id"];
    assert!(client_id.is_string(), "no managed identity client id");
}

/// Credentials live only in Secrets the operator creates; nothing in the repository holds one.
#[test]
fn no_credential_is_written_into_the_manifests() {
    for dir in ALL {
        let r = render(dir);
        assert_eq!(r.secrets_with_data(), 0, "{dir}: a Secret with contents");
        let literal = r.literal_credentials();
        assert!(literal.is_empty(), "{dir}: set by value: {literal:?}");
        for (variable, key) in SERVER_CREDENTIALS {
            let expected = format!("connector-hub-secrets/{key}");
            assert_eq!(secret_of(r.server(), variable), expected, "{dir}");
        }
    }
    let r = render(POSTGRES_DEV);
    let postgres = r.get("StatefulSet", "postgres");
    let container = &list(postgres, "spec.template.spec.containers")[0];
    let password = secret_of(container, "POSTGRES_PASSWORD");
    assert_eq!(password, "connector-hub-postgres-dev/password");
}

/// The server survives losing a pod, gets traffic only when it can serve, holds no
/// privileges, and is scheduled with known bounds, in every variant.
#[test]
fn the_server_runs_replicated_probed_unprivileged_and_bounded() {
    let server = [
        ("livenessProbe.httpGet.path", json!("/health")),
        ("readinessProbe.httpGet.path", json!("/ready")),
        ("securityContext.readOnlyRootFilesystem", json!(true)),
        ("securityContext.allowPrivilegeEscalation", json!(false)),
        ("securityContext.capabilities.drop", json!(["ALL"])),
    ];
    for dir in ALL {
        let r = render(dir);
        let replicas = at(r.get("Deployment", "connector-hub"), "spec.replicas");
        assert!(replicas.as_u64() >= Some(2), "{dir}: {replicas} replicas");
        let non_root = at(r.pod(), "spec.securityContext.runAsNonRoot");
        assert_eq!(non_root, true, "{dir}: runAsNonRoot");
        for (path, expected) in &server {
            assert_eq!(at(r.server(), path), expected, "{dir}: {path}");
        }
        for bound in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                let value = text(r.server(), &format!("resources.{bound}.{resource}"));
                assert!(!value.is_empty(), "{dir}: no resources.{bound}.{resource}");
            }
        }
    }
}

/// What runs next to the server: its Service, disruption budget, service account and network
/// policy everywhere; the development PostgreSQL only in its overlay.
#[test]
fn the_supporting_objects_are_there() {
    for dir in ALL {
        let r = render(dir);
        for kind in SUPPORTING {
            assert!(r.has(kind, "connector-hub"), "{dir}: no {kind}");
        }
        assert!(r.service_selects_server(), "{dir}: Service misses pods");
        assert_eq!(r.policy_ports("ingress"), ["TCP/8080"], "{dir}");
        let egress = ["UDP/53", "TCP/53", "TCP/5432", "TCP/443"];
        assert_eq!(r.policy_ports("egress"), egress, "{dir}");
    }
    assert!(!render(BASE).has("StatefulSet", "postgres"), "base");
    let r = render(POSTGRES_DEV);
    assert!(r.has("StatefulSet", "postgres"), "postgres-dev");
    assert!(r.has("Service", "postgres"), "postgres-dev");
}
