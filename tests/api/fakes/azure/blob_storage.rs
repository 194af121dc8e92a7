//! The storage accounts' blob data plane: Azurite, the Azure Storage emulator (npm package
//! `azurite`, installed by `tests/run.sh`), one process per fake serving every account.
//!
//! Azurite serves HTTPS with a leaf of the fake's test CA, because it takes bearer tokens only
//! over HTTPS. Clients reach it through a proxy of the fake's own, which records each request
//! (as [`super::Surface::BlobStorage`]) and can delay or fail it like any other surface. With `--oauth basic` it ignores token signatures but checks `iss`, `aud`, `nbf`
//! and `exp`, so the fake's AAD tokens for `https://storage.azure.com` pass. Requests for a
//! host that is an IP address are path-style: `https://127.0.0.1:PORT/{account}/...`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::{Certificate, Client, RequestBuilder, StatusCode};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::config::FakeStorageAccount;
use crate::fakes::tls::TestCertificateAuthority;

/// The audience of storage tokens, as AAD issues it for `https://storage.azure.com/.default`.
pub const STORAGE_AUDIENCE: &str = "https://storage.azure.com";
/// A version Azurite 3.35.0 knows (it would refuse the newest SDKs' default without
/// `--skipApiVersionCheck`).
const STORAGE_API_VERSION: &str = "2023-11-03";
/// Node starts Azurite in about a second; many fakes starting at once on a small machine
/// take longer.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const LISTENING: &str = "Azurite Blob service successfully listens on ";

/// A running Azurite; dropping it kills the process and removes its certificate files.
pub(crate) struct Azurite {
    /// `https://127.0.0.1:PORT`
    url: String,
    _process: Child,
    _certificate_files: TempDir,
}

impl Azurite {
    /// Starts Azurite for `accounts` and waits until it listens. Its output is drained by
    /// tasks added to `tasks` (stderr goes to the test's output).
    pub async fn start(
        accounts: &[FakeStorageAccount],
        authority: &TestCertificateAuthority,
        tasks: &mut JoinSet<()>,
    ) -> Azurite {
        let binary = azurite_binary();
        let certificate_files = tempfile::tempdir().unwrap();
        let certificate = certificate_files.path().join("leaf.pem");
        let key = certificate_files.path().join("leaf.key");
        let server_certificate = authority.server_certificate();
        std::fs::write(&certificate, &server_certificate.certificate_pem).unwrap();
        std::fs::write(&key, &server_certificate.private_key_pem).unwrap();

        // Azurite replaces its default account with these; the keys are never used, since the
        // fake authenticates with tokens, but Azurite needs some.
        let declared_accounts = accounts
            .iter()
            .map(|account| {
                let key = [Uuid::new_v4().into_bytes(), Uuid::new_v4().into_bytes()].concat();
                format!("{}:{}", account.at.name, BASE64.encode(key))
            })
            .collect::<Vec<_>>()
            .join(";");

        let started = Command::new(&binary)
            // Port 0: the system picks a free port, which Azurite then prints.
            .args(["--blobHost", "127.0.0.1", "--blobPort", "0"])
            .args(["--inMemoryPersistence", "--disableTelemetry", "--silent"])
            .args(["--skipApiVersionCheck", "--oauth", "basic"])
            .arg("--cert")
            .arg(&certificate)
            .arg("--key")
            .arg(&key)
            .env("AZURITE_ACCOUNTS", declared_accounts)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut process = started
            .unwrap_or_else(|error| panic!("cannot start Azurite ({}): {error}", binary.display()));
        let mut stdout = BufReader::new(process.stdout.take().unwrap()).lines();
        let mut stderr = process.stderr.take().unwrap();

        let listening = tokio::time::timeout(STARTUP_TIMEOUT, async {
            while let Some(line) = stdout.next_line().await.unwrap() {
                if let Some(url) = line.strip_prefix(LISTENING) {
                    return Some(url.to_owned());
                }
            }
            None
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "Azurite ({}) did not say it listens within {STARTUP_TIMEOUT:?}",
                binary.display()
            )
        });
        let Some(url) = listening else {
            let mut errors = String::new();
            let _ = stderr.read_to_string(&mut errors).await;
            let status = process.wait().await.unwrap();
            panic!("Azurite exited before listening ({status}): {errors}");
        };
        assert!(url.starts_with("https://"), "Azurite listens on {url}");

        // Azurite would block on a full pipe; what it says from now on is of no use to the
        // fake, but its errors help whoever reads a failed test's output.
        tasks.spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        tasks.spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("azurite: {line}");
            }
        });
        Azurite {
            url,
            _process: process,
            _certificate_files: certificate_files,
        }
    }

    /// `https://127.0.0.1:PORT/{account}/` at Azurite itself, for setting the fake up unseen.
    pub fn direct_blob_endpoint(&self, account_name: &str) -> String {
        format!("{}/{account_name}/", self.url)
    }

    /// A router that passes every request on to Azurite and its answer back unchanged.
    pub fn proxy(&self, ca_pem: &str) -> Router {
        let client = Client::builder()
            .add_root_certificate(Certificate::from_pem(ca_pem.as_bytes()).unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Router::new()
            .fallback(forward)
            .with_state((client, self.url.clone()))
    }
}

/// Headers that belong to one connection, not to the request or answer passed on.
const HOP_BY_HOP: [&str; 5] = [
    "host",
    "connection",
    "transfer-encoding",
    "content-length",
    "keep-alive",
];

async fn forward(
    State((client, azurite)): State<(Client, String)>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let mut outbound = client.request(parts.method.clone(), format!("{azurite}{path}"));
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            outbound = outbound.header(name, value);
        }
    }
    let answer = match outbound.body(body).send().await {
        Ok(answer) => answer,
        Err(error) => {
            return (StatusCode::BAD_GATEWAY, format!("Azurite: {error}")).into_response();
        }
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    response.body(axum::body::Body::from(bytes)).unwrap()
}

/// `AZURITE_BLOB`, else what `tests/run.sh` installs; never skips the tests when missing.
fn azurite_binary() -> PathBuf {
    let binary = std::env::var_os("AZURITE_BLOB")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node_modules/.bin/azurite-blob")
        });
    assert!(
        binary.is_file(),
        "Azurite is not installed at {}: run tests/run.sh (or `npm ci --prefix tests`) first",
        binary.display()
    );
    binary
}

/// Adds what every storage request needs besides its URL: the bearer token, a version and
/// the date.
pub(crate) fn authorize(request: RequestBuilder, token: &str) -> RequestBuilder {
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT");
    request
        .bearer_auth(token)
        .header("x-ms-version", STORAGE_API_VERSION)
        .header("x-ms-date", date.to_string())
}

/// Creates an account's containers (`PUT {endpoint}{container}?restype=container`).
pub(crate) async fn create_containers(
    blob_endpoint: &str,
    containers: &[String],
    token: &str,
    ca_pem: &str,
) {
    let client = Client::builder()
        .add_root_certificate(Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    for container in containers {
        let request = client.put(format!("{blob_endpoint}{container}?restype=container"));
        let response = authorize(request, token).send().await.unwrap();
        if response.status() != StatusCode::CREATED {
            panic!(
                "Azurite refused to create container {container} at {blob_endpoint}: {} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
    }
}
