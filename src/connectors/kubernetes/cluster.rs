//! Reaching a user-named API server with the kube crate: the address is resolved and checked
//! by the host guard once, and the client connects to that address, verifying TLS against the
//! name the user gave.

use base64::Engine;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::config::AuthInfo;
use rustls::pki_types::CertificateDer;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::connectors::engine::Connector;
use crate::connectors::kube_config::{ClusterEndpoint, kube_config};
use crate::connectors::engine::with_causes;
use crate::connectors::user_endpoints::{UserEndpoints, literal_address, pem_certificates};

/// The connector's cluster settings and credentials, read once per session.
pub struct ClusterSettings {
    pub cluster_name: String,
    server: reqwest::Url,
    insecure: bool,
    /// PEM certificates, decoded from the connector's base64.
    certificate_authority: Option<Vec<u8>>,
    token: Option<Zeroizing<String>>,
    /// Base64 PEM (standard alphabet), as kubeconfigs carry them.
    client_certificate: Option<String>,
    client_key: Option<Zeroizing<String>>,
    username: Option<String>,
    password: Option<Zeroizing<String>>,
}

/// The API server's URL: http or https, with a host.
pub fn server_url(server: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(server)
        .map_err(|e| format!("the server '{server}' is not a URL: {e}"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(format!(
            "the server '{server}' is not an http or https URL with a host"
        ));
    }
    Ok(url)
}

/// ZenML writes these fields with either base64 alphabet.
fn base64_decoded(field: &str, value: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let value = value.trim();
    base64::engine::general_purpose::STANDARD
        .decode(value)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(value))
        .map(Zeroizing::new)
        .map_err(|_| format!("the connector's {field} is not base64"))
}

impl ClusterSettings {
    pub fn of(connector: &Connector) -> Result<ClusterSettings, String> {
        let standard = |field: &str| -> Result<Option<Zeroizing<String>>, String> {
            connector
                .secret(field)
                .map(|value| {
                    let decoded = base64_decoded(field, value)?;
                    Ok(Zeroizing::new(
                        base64::engine::general_purpose::STANDARD.encode(&*decoded),
                    ))
                })
                .transpose()
        };
        let certificate_authority = connector
            .secret("certificate_authority")
            .map(|value| base64_decoded("certificate_authority", value).map(|pem| pem.to_vec()))
            .transpose()?;
        Ok(ClusterSettings {
            cluster_name: connector
                .setting("cluster_name")
                .ok_or("the connector configuration lacks 'cluster_name'")?
                .to_owned(),
            server: server_url(connector.setting("server").unwrap_or_default())?,
            insecure: connector
                .configuration
                .get("insecure")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            certificate_authority,
            token: connector.secret("token").map(|t| Zeroizing::new(t.to_owned())),
            client_certificate: standard("client_certificate")?.map(|c| c.to_string()),
            client_key: standard("client_key")?,
            username: connector.secret("username").map(str::to_owned),
            password: connector
                .secret("password")
                .map(|p| Zeroizing::new(p.to_owned())),
        })
    }

    /// Reaches the API server (`/version`), then checks that the credentials are accepted
    /// and may list namespaces: `/version` alone is open to anyone on most clusters.
    pub async fn check(&self, endpoints: &UserEndpoints) -> Result<(), String> {
        let client = self.client(endpoints).await?;
        let within = |what: &'static str| {
            move |_| format!("{what} timed out after {:?}", endpoints.request_timeout)
        };
        tokio::time::timeout(endpoints.request_timeout, client.apiserver_version())
            .await
            .map_err(within("reaching the API server"))?
            .map_err(|e| refusal("read the API server's version", &e))?;
        let namespaces: Api<Namespace> = Api::all(client);
        tokio::time::timeout(
            endpoints.request_timeout,
            namespaces.list(&ListParams::default().limit(1)),
        )
        .await
        .map_err(within("listing namespaces"))?
        .map_err(|e| refusal("list namespaces", &e))?;
        Ok(())
    }

    /// A client that connects only to the checked address of the server.
    async fn client(&self, endpoints: &UserEndpoints) -> Result<kube::Client, String> {
        let host = self.server.host_str().unwrap_or_default().to_owned();
        let port = self
            .server
            .port_or_known_default()
            .ok_or("the server URL has no port")?;
        let address = endpoints.resolve(&host, port).await?;
        let cluster = ClusterEndpoint {
            name: &self.cluster_name,
            server: self.server.as_str(),
            certificate_authority: None,
            connect_timeout: endpoints.connect_timeout,
            request_timeout: endpoints.request_timeout,
        };
        let mut config = kube_config(cluster, self.user()).await?;
        if literal_address(&host).is_none() {
            let mut pinned = self.server.clone();
            pinned
                .set_ip_host(address.ip())
                .map_err(|()| "cannot connect to the resolved address".to_owned())?;
            config.cluster_url = pinned
                .as_str()
                .parse()
                .map_err(|e| format!("the server URL is not usable: {e}"))?;
            config.tls_server_name = Some(host.clone());
        }
        config.root_cert = self.roots(endpoints)?;
        config.accept_invalid_certs = self.insecure;
        config.proxy_url = None;
        kube::Client::try_from(config)
            .map_err(|e| format!("cannot build a client for the cluster: {e}"))
    }

    /// The cluster's own CA with the added ones; else the system roots with the added ones.
    fn roots(&self, endpoints: &UserEndpoints) -> Result<Option<Vec<Vec<u8>>>, String> {
        let der = |certs: &[CertificateDer<'static>]| certs.iter().map(|c| c.to_vec()).collect();
        match &self.certificate_authority {
            Some(pem) => {
                let mut roots = pem_certificates(pem, "the certificate_authority")?;
                roots.extend(endpoints.extra_roots().iter().cloned());
                Ok(Some(der(&roots)))
            }
            None => Ok(endpoints.system_and_extra_roots().map(der)),
        }
    }

    /// The credentials, as a kubeconfig user; the CA is handled by [`Self::roots`].
    fn user(&self) -> AuthInfo {
        AuthInfo {
            token: self.token.as_ref().map(|t| t.to_string().into()),
            client_certificate_data: self.client_certificate.clone(),
            client_key_data: self.client_key.as_ref().map(|k| k.to_string().into()),
            username: self.username.clone(),
            password: self.password.as_ref().map(|p| p.to_string().into()),
            ..AuthInfo::default()
        }
    }
}

/// Why `action` failed, with Kubernetes' own status message where it sent one.
fn refusal(action: &str, error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.code == 401 => format!(
            "the Kubernetes API server refused the credentials (HTTP 401: {})",
            status.message
        ),
        kube::Error::Api(status) if status.code == 403 => format!(
            "the credentials were accepted, but may not {action} (HTTP 403: {}). Grant them \
             that permission in the cluster.",
            status.message
        ),
        kube::Error::Api(status) => format!(
            "the Kubernetes API server failed to {action}: HTTP {}: {}",
            status.code, status.message
        ),
        other => format!(
            "failed to reach the Kubernetes API server: {}",
            with_causes(other)
        ),
    }
}
