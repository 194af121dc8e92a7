//! What a Docker client does with registry credentials, so that the credentials the server
//! hands out are tested as Docker would use them: the registry login handshake
//! ([`handshake`], which the fake Docker daemon's `/auth` runs too), then the registry API with
//! the bearer token.

use reqwest::{Client, StatusCode, header};

pub use crate::fakes::registry_handshake::{Accepted, handshake};

/// Pulls the tag list of `repository` from `registry` (`host:port`) with `username` and
/// `password`, as `docker pull` would start; the tags, or where the handshake failed.
pub async fn list_tags(
    http: &Client,
    registry: &str,
    username: &str,
    password: &str,
    repository: &str,
) -> Result<Vec<String>, String> {
    let scope = format!("repository:{repository}:pull");
    let token = match handshake(http, registry, username, password, &[("scope", &scope)]).await {
        Ok(Accepted::Bearer(token)) => token,
        Ok(other) => return Err(format!("the registry issued no token: {other:?}")),
        Err(error) => return Err(error.to_string()),
    };
    let tags = http
        .get(format!("https://{registry}/v2/{repository}/tags/list"))
        .bearer_auth(&token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if tags.status() != StatusCode::OK {
        let status = tags.status();
        let challenge = tags
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        return Err(format!("the tag list answered {status} ({challenge})"));
    }
    let body: serde_json::Value = tags.json().await.map_err(|e| e.to_string())?;
    Ok(
        (body["tags"].as_array().cloned().unwrap_or_default().iter())
            .filter_map(|tag| tag.as_str().map(str::to_owned))
            .collect(),
    )
}

/// The fake Docker daemon (`fakes/docker_daemon.rs`) against the fake ACR.
mod fake_daemon {
    use reqwest::StatusCode;
    use serde_json::{Value, json};

    use crate::docker_type::{ADMIN_PASSWORD, one_registry};
    use crate::fakes::docker_daemon::{FakeDockerDaemon, Login};
    use crate::fakes::tls::TestCertificateAuthority;

    async fn call(
        daemon: &FakeDockerDaemon,
        request: impl FnOnce(&reqwest::Client, String) -> reqwest::RequestBuilder,
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let base = daemon.docker_host().replace("tcp://", "http://");
        let response = request(&reqwest::Client::new(), base).send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.text().await.unwrap())
    }

    fn message(body: &str) -> String {
        let body: Value = serde_json::from_str(body).unwrap();
        body["message"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn it_speaks_the_engine_api_and_refuses_what_dockerd_refuses() {
        let azure = one_registry().await;
        let registry = azure.registry_login_server("reg1");
        let daemon = FakeDockerDaemon::start(azure.ca_pem()).await;

        let (status, headers, body) = call(&daemon, |c, b| c.get(format!("{b}/_ping"))).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "OK"));
        assert_eq!(headers["api-version"], "1.47");
        let (_, _, body) = call(&daemon, |c, b| c.get(format!("{b}/version"))).await;
        let version: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (&version["ApiVersion"], &version["MinAPIVersion"]),
            (&json!("1.47"), &json!("1.24"))
        );
        let (status, _, body) = call(&daemon, |c, b| c.get(format!("{b}/v1.99/_ping"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(message(&body).contains("client version 1.99 is too new"));
        let (status, _, body) = call(&daemon, |c, b| c.get(format!("{b}/v1.12/_ping"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(message(&body).contains("client version 1.12 is too old"));
        let (status, _, body) =
            call(&daemon, |c, b| c.get(format!("{b}/v1.47/containers/json"))).await;
        assert_eq!(
            (status, message(&body)),
            (StatusCode::NOT_FOUND, "page not found".into())
        );

        let login = |password: &'static str, address: String| {
            move |c: &reqwest::Client, b: String| {
                c.post(format!("{b}/v1.47/auth")).json(&json!({
                    "username": "reg1",
                    "password": password,
                    "serveraddress": address,
                }))
            }
        };
        let (status, _, body) = call(&daemon, |c, b| {
            c.post(format!("{b}/v1.47/auth"))
                .header("content-type", "text/plain")
                .body("{}")
        })
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(message(&body).contains("must be 'application/json'"));

        let (status, _, body) = call(
            &daemon,
            login(ADMIN_PASSWORD, format!("https://{registry}/some/repo")),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({"IdentityToken": "", "Status": "Login Succeeded"})
        );
        let (status, _, body) = call(&daemon, login("wrong", registry.clone())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            message(&body),
            format!(
                "Get \"https://{registry}/v2/\": unauthorized: authentication required, visit \
                 https://aka.ms/acr/authorization for more information."
            )
        );
        let requests = azure.requests().len();
        let (status, _, body) = call(
            &daemon,
            login(ADMIN_PASSWORD, "registry.example.com".into()),
        )
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(message(&body).contains("this machine only"));
        assert_eq!(
            daemon
                .logins()
                .iter()
                .map(|l| l.outcome.is_ok())
                .collect::<Vec<_>>(),
            [true, false],
            "the refused address was never logged in to"
        );
        assert_eq!(azure.requests().len(), requests);

        // A daemon that does not trust the registry's CA cannot log in to it.
        let other = TestCertificateAuthority::new();
        let untrusting = FakeDockerDaemon::start(&other.ca_pem()).await;
        let (status, _, body) = call(&untrusting, login(ADMIN_PASSWORD, registry.clone())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        let [
            Login {
                outcome: Err(_), ..
            },
        ] = untrusting.logins().as_slice()
        else {
            panic!("{:?}", untrusting.logins())
        };
    }
}
