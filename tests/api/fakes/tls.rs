//! A throwaway certificate authority and an HTTPS server loop for fakes.
//!
//! rustls refuses a self-signed certificate that is its own CA, so the fakes present a leaf
//! certificate (CA:FALSE, subjectAltName IP:127.0.0.1 and DNS:localhost) issued by a CA made
//! for the test. Clients trust that CA through [`TestCertificateAuthority::ca_pem`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct PemKeyPair {
    pub certificate_pem: String,
    pub private_key_pem: String,
}

/// A CA made at test start, and the TLS server configuration of a leaf it issued.
pub struct TestCertificateAuthority {
    issuer: CertifiedIssuer<'static, KeyPair>,
    server_config: Arc<rustls::ServerConfig>,
    /// The same leaf as PEM, for servers that run as processes of their own (Azurite).
    server_certificate: PemKeyPair,
}

impl TestCertificateAuthority {
    pub fn new() -> TestCertificateAuthority {
        connector_hub::install_crypto_provider();
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = distinguished_name("connector-hub test CA", None);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let mut leaf_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        leaf_params.distinguished_name = distinguished_name("127.0.0.1", None);
        leaf_params.is_ca = IsCa::ExplicitNoCa;
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

        let mut server_config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![
                    leaf.der().clone(),
                    CertificateDer::from(issuer.der().to_vec()),
                ],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .unwrap();
        // The fakes speak HTTP/1.1 only; say so, so that clients do not try h2.
        server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let server_certificate = PemKeyPair {
            certificate_pem: format!("{}{}", leaf.pem(), issuer.pem()),
            private_key_pem: leaf_key.serialize_pem(),
        };
        TestCertificateAuthority {
            issuer,
            server_config: Arc::new(server_config),
            server_certificate,
        }
    }

    /// The CA certificate clients must trust.
    pub fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The server leaf (then the CA, as the fakes' listeners send the chain) and its key.
    pub fn server_certificate(&self) -> &PemKeyPair {
        &self.server_certificate
    }

    /// A client certificate, as found in an AKS admin kubeconfig (`O=system:masters`).
    pub fn issue_client_certificate(
        &self,
        common_name: &str,
        organization: Option<&str>,
    ) -> PemKeyPair {
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name, organization);
        params.is_ca = IsCa::ExplicitNoCa;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        PemKeyPair {
            certificate_pem: certificate.pem(),
            private_key_pem: key.serialize_pem(),
        }
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.server_config.clone())
    }
}

fn distinguished_name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    if let Some(organization) = organization {
        name.push(DnType::OrganizationName, organization);
    }
    name
}

/// A TCP listener on 127.0.0.1:0, bound before its router is built so that the router can be
/// told its own address (for absolute links such as ARM's `nextLink`).
pub struct BoundListener {
    listener: TcpListener,
    pub address: SocketAddr,
}

impl BoundListener {
    pub async fn bind() -> BoundListener {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        BoundListener { listener, address }
    }

    /// `https://127.0.0.1:PORT`
    pub fn https_url(&self) -> String {
        format!("https://{}", self.address)
    }

    /// Serves `router` over HTTPS on a task added to `tasks`; aborting that task (or dropping
    /// the set) also ends every connection it accepted.
    pub fn serve(
        self,
        router: Router,
        authority: &TestCertificateAuthority,
        tasks: &mut JoinSet<()>,
    ) {
        let acceptor = authority.acceptor();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((tcp, _)) = self.listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let service = TowerToHyperService::new(router.clone());
                connections.spawn(async move {
                    // A failed handshake is the client's to report (e.g. it does not trust
                    // the CA); the server just drops the connection.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
    }

    /// Serves `router` over plain HTTP, for fakes of local services reached without TLS (a
    /// Docker daemon on `tcp://`); aborting the task added to `tasks` ends every connection.
    pub fn serve_plain(self, router: Router, tasks: &mut JoinSet<()>) {
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((tcp, _)) = self.listener.accept().await else {
                    continue;
                };
                let service = TowerToHyperService::new(router.clone());
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
    }
}
