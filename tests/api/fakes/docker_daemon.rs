//! A Docker daemon, just enough of it for what docker-py does when zenml logs a registry in:
//! `DockerClient.from_env()` (`GET /version`, to negotiate the API version), `ping`
//! (`GET /_ping`) and `login` (`POST /auth`), in the Docker Engine API's wire format (v1.47),
//! over plain HTTP on 127.0.0.1 as `DOCKER_HOST=tcp://127.0.0.1:PORT` reaches it.
//!
//! `/auth` does what dockerd does with it: the registry login handshake against the named
//! registry (`GET /v2/`, the 401 challenge, the token endpoint with Basic credentials and the
//! account, then `/v2/` with the token), answering `{"Status":"Login Succeeded"}` when it
//! succeeds and dockerd's 401 with a `message` when the registry refuses. It calls registries
//! on this machine only, over HTTPS, trusting only the CA it was started with.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tokio::task::JoinSet;

use super::registry_handshake::{HandshakeError, handshake};
use super::tls::BoundListener;

/// The Engine API version this daemon speaks (Docker 27.5), and the oldest it accepts.
pub const API_VERSION: (u32, u32) = (1, 47);
pub const MIN_API_VERSION: (u32, u32) = (1, 24);

/// One `POST /auth` the daemon answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Login {
    /// The registry as `host:port`.
    pub registry: String,
    pub username: String,
    /// `Ok` when the daemon answered "Login Succeeded", else the message it answered.
    pub outcome: Result<(), String>,
}

pub struct FakeDockerDaemon {
    address: SocketAddr,
    logins: Arc<Mutex<Vec<Login>>>,
    _server: JoinSet<()>,
}

struct Daemon {
    registries: reqwest::Client,
    logins: Arc<Mutex<Vec<Login>>>,
}

impl FakeDockerDaemon {
    /// A daemon that trusts `registry_ca_pem` (and no other CA) for registries.
    pub async fn start(registry_ca_pem: &str) -> FakeDockerDaemon {
        connector_hub::install_crypto_provider();
        let registries = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(registry_ca_pem.as_bytes()).unwrap()])
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                match attempt.url().host_str().is_some_and(is_loopback) {
                    true if attempt.previous().len() < 10 => attempt.follow(),
                    true => attempt.error("too many redirects"),
                    false => attempt.error("the fake daemon reaches this machine only"),
                }
            }))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let logins = Arc::new(Mutex::new(Vec::new()));
        let daemon = Arc::new(Daemon {
            registries,
            logins: logins.clone(),
        });
        let router = Router::new().fallback(dispatch).with_state(daemon);
        let listener = BoundListener::bind().await;
        let address = listener.address;
        let mut server = JoinSet::new();
        listener.serve_plain(router, &mut server);
        FakeDockerDaemon {
            address,
            logins,
            _server: server,
        }
    }

    /// `tcp://127.0.0.1:PORT`, for `DOCKER_HOST`.
    pub fn docker_host(&self) -> String {
        format!("tcp://{}", self.address)
    }

    /// Every login asked of the daemon, in order.
    pub fn logins(&self) -> Vec<Login> {
        self.logins.lock().unwrap().clone()
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The router: an optional `/vX.Y` prefix, checked as dockerd checks it, then the endpoint.
async fn dispatch(
    State(daemon): State<Arc<Daemon>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut path = uri.path();
    if let Some((version, rest)) = versioned(path) {
        let Some(asked) = parse_version(version) else {
            return page_not_found();
        };
        if asked > API_VERSION {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "client version {version} is too new. Maximum supported API version is {}",
                    show(API_VERSION)
                ),
            );
        }
        if asked < MIN_API_VERSION {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "client version {version} is too old. Minimum supported API version is {}, \
                     please upgrade your client to a newer version",
                    show(MIN_API_VERSION)
                ),
            );
        }
        path = rest;
    }
    let response = match (method, path) {
        (Method::GET | Method::HEAD, "/_ping") => ping(),
        (Method::GET, "/version") => version(),
        (Method::POST, "/auth") => auth(&daemon, &headers, &body).await,
        _ => page_not_found(),
    };
    with_daemon_headers(response)
}

/// `/v1.47/auth` as ("1.47", "/auth").
fn versioned(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v")?;
    let slash = rest.find('/')?;
    let version = &rest[..slash];
    (!version.is_empty() && version.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .then(|| (version, &rest[slash..]))
}

fn parse_version(version: &str) -> Option<(u32, u32)> {
    let (major, minor) = version.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn show((major, minor): (u32, u32)) -> String {
    format!("{major}.{minor}")
}

/// The headers dockerd sets on every answer.
fn with_daemon_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        "api-version",
        HeaderValue::from_str(&show(API_VERSION)).unwrap(),
    );
    headers.insert("docker-experimental", HeaderValue::from_static("false"));
    headers.insert("ostype", HeaderValue::from_static("linux"));
    headers.insert(
        header::SERVER,
        HeaderValue::from_static("Docker/27.5.1 (linux)"),
    );
    response
}

/// `GET /_ping`: `OK` as plain text, not cached.
fn ping() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
            (header::PRAGMA, "no-cache"),
        ],
        "OK",
    )
        .into_response()
}

/// `GET /version`: the engine's version, with the API versions it speaks.
fn version() -> Response {
    axum::Json(json!({
        "Platform": {"Name": "Docker Engine - Community"},
        "Components": [{
            "Name": "Engine",
            "Version": "27.5.1",
            "Details": {
                "ApiVersion": show(API_VERSION),
                "MinAPIVersion": show(MIN_API_VERSION),
                "Os": "linux",
                "Arch": "amd64",
            },
        }],
        "Version": "27.5.1",
        "ApiVersion": show(API_VERSION),
        "MinAPIVersion": show(MIN_API_VERSION),
        "GitCommit": "4c9b3b0",
        "GoVersion": "go1.22.11",
        "Os": "linux",
        "Arch": "amd64",
        "KernelVersion": "6.1.0",
        "BuildTime": "2025-01-21T00:00:00.000000000+00:00",
    }))
    .into_response()
}

/// The `AuthConfig` a client posts to `/auth`.
#[derive(Deserialize)]
struct AuthConfig {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    serveraddress: String,
}

/// `POST /auth`: logs in to the registry as dockerd does, and says whether it worked.
async fn auth(daemon: &Daemon, headers: &HeaderMap, body: &Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if content_type.split(';').next().map(str::trim) != Some("application/json") {
        return error(
            StatusCode::BAD_REQUEST,
            &format!(
                "unsupported Content-Type header ({content_type}): must be 'application/json'"
            ),
        );
    }
    let config: AuthConfig = match serde_json::from_slice(body) {
        Ok(config) => config,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
    };
    // As dockerd's `ConvertToHostname`: no scheme, nothing after the host; none is Docker Hub.
    let address = match config.serveraddress.as_str() {
        "" => "https://index.docker.io/v1/",
        address => address,
    };
    let registry = address
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let host = match registry.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => registry.as_str(),
    };
    if !is_loopback(host) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!(
                "the fake Docker daemon logs in to registries on this machine only, not '{registry}'"
            ),
        );
    }
    let attempt = handshake(
        &daemon.registries,
        &registry,
        &config.username,
        &config.password,
        &[("client_id", "docker"), ("offline_token", "true")],
    )
    .await;
    let v2 = format!("https://{registry}/v2/");
    let (status, message) = match attempt {
        Ok(_) => (StatusCode::OK, None),
        // The token fetch runs inside the `GET /v2/`, so Go reports it as that request's
        // error, and the registry's error code (`UNAUTHORIZED`) as its lower-case words.
        Err(HandshakeError::TokenRefused { status, errors, .. }) => {
            let cause = match errors.first() {
                Some((code, text)) => {
                    format!("{}: {text}", code.to_lowercase().replace('_', " "))
                }
                None => format!("unexpected status code {status}"),
            };
            (
                StatusCode::UNAUTHORIZED,
                Some(format!("Get \"{v2}\": {cause}")),
            )
        }
        Err(HandshakeError::RegistryRefused { status }) => (
            StatusCode::UNAUTHORIZED,
            Some(format!(
                "login attempt to {v2} failed with status: {status}"
            )),
        ),
        Err(HandshakeError::Protocol(cause)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(format!("Get \"{v2}\": {cause}")),
        ),
    };
    daemon.logins.lock().unwrap().push(Login {
        registry,
        username: config.username,
        outcome: message.clone().map_or(Ok(()), Err),
    });
    match message {
        None => {
            axum::Json(json!({"IdentityToken": "", "Status": "Login Succeeded"})).into_response()
        }
        Some(message) => error(status, &message),
    }
}

fn page_not_found() -> Response {
    error(StatusCode::NOT_FOUND, "page not found")
}

/// dockerd's error body.
fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "message": message }))).into_response()
}
