//! Calls to endpoints that users name (a cluster's API server, a container registry). Such a
//! call must not turn the server into a proxy into its own network: every address it connects
//! to passes the host guard, redirects included, and every call has timeouts. The system roots
//! are trusted, plus the CAs the administrator adds for private endpoints.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::metrics::{TargetCalls, TargetType};

/// Which hosts calls to user-named endpoints may reach.
#[derive(Debug, Clone)]
pub enum TargetHosts {
    /// Any host whose addresses are all public: the default.
    Public,
    /// Only hosts named in the list or whose addresses all lie in its networks.
    Listed(Vec<AllowedTarget>),
    /// Everything (`*`).
    Any,
}

#[derive(Debug, Clone)]
pub enum AllowedTarget {
    Name(String),
    Network(IpNet),
}

impl TargetHosts {
    /// Reads `--allowed-target-hosts`: host names, addresses and CIDRs, or `*`.
    pub fn parse(entries: Option<&[String]>) -> Result<TargetHosts, String> {
        let Some(entries) = entries else {
            return Ok(TargetHosts::Public);
        };
        let entries: Vec<&str> = entries
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
            .collect();
        if entries.contains(&"*") {
            return Ok(TargetHosts::Any);
        }
        entries
            .into_iter()
            .map(|entry| {
                if let Ok(network) = entry.parse::<IpNet>() {
                    return Ok(AllowedTarget::Network(network));
                }
                if let Ok(address) = entry.parse::<IpAddr>() {
                    return Ok(AllowedTarget::Network(IpNet::from(address)));
                }
                match is_host_name(entry) {
                    true => Ok(AllowedTarget::Name(entry.to_ascii_lowercase())),
                    false => Err(format!(
                        "--allowed-target-hosts: '{entry}' is not a host name, an address or a CIDR"
                    )),
                }
            })
            .collect::<Result<_, _>>()
            .map(TargetHosts::Listed)
    }

    /// Whether `host` may be reached at `address`.
    pub fn allows(&self, host: &str, address: IpAddr) -> bool {
        let address = address.to_canonical();
        match self {
            TargetHosts::Any => true,
            TargetHosts::Public => is_public(address),
            TargetHosts::Listed(allowed) => allowed.iter().any(|entry| match entry {
                AllowedTarget::Name(name) => host.trim_end_matches('.').eq_ignore_ascii_case(name),
                AllowedTarget::Network(network) => network.contains(&address),
            }),
        }
    }

    /// Refuses `host` at `address`, in words that tell the administrator what to change.
    fn check(&self, host: &str, address: IpAddr) -> Result<(), String> {
        match self.allows(host, address) {
            true => Ok(()),
            false => Err(format!(
                "the server does not call '{host}' ({address}): {}",
                match self {
                    TargetHosts::Public =>
                        "loopback, link-local and private addresses are refused unless the server \
                         administrator allows them with --allowed-target-hosts",
                    _ => "it is not in the server's --allowed-target-hosts",
                }
            )),
        }
    }
}

/// A DNS name: dot-separated labels of letters, digits and hyphens.
pub fn is_host_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The address a URL's host names literally (`[::1]` included), if it is one.
pub fn literal_address(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The certificates of a PEM bundle; `what` names it in errors.
pub fn pem_certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} is not valid PEM: {e}"))?;
    match certificates.is_empty() {
        true => Err(format!("{what} holds no certificate")),
        false => Ok(certificates),
    }
}

/// Not loopback, private, link-local, shared, unspecified, multicast or broadcast.
fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || a == 0
                // Carrier-grade NAT, shared address space (RFC 6598).
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local (fc00::/7) and link-local (fe80::/10).
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// How calls to user-named endpoints are made. Built once at start-up.
pub struct UserEndpoints {
    hosts: Arc<TargetHosts>,
    /// CAs trusted on top of the system roots (`--trusted-ca-file`).
    extra_roots: Vec<CertificateDer<'static>>,
    /// The system roots with them, read once; `None` when no CA was added.
    system_and_extra_roots: Option<Vec<CertificateDer<'static>>>,
    pub connect_timeout: Duration,
    /// For one call, from sending the request to the end of the response body.
    pub request_timeout: Duration,
    calls: TargetCalls,
}

impl UserEndpoints {
    pub fn new(
        hosts: TargetHosts,
        trusted_ca_pem: Option<&[u8]>,
        connect_timeout: Duration,
        request_timeout: Duration,
        calls: TargetCalls,
    ) -> Result<UserEndpoints, String> {
        let extra_roots = match trusted_ca_pem {
            None => Vec::new(),
            Some(pem) => pem_certificates(pem, "--trusted-ca-file")?,
        };
        let system_and_extra_roots = (!extra_roots.is_empty()).then(|| {
            let mut roots = rustls_native_certs::load_native_certs().certs;
            roots.extend(extra_roots.iter().cloned());
            roots
        });
        Ok(UserEndpoints {
            hosts: Arc::new(hosts),
            extra_roots,
            system_and_extra_roots,
            connect_timeout,
            request_timeout,
            calls,
        })
    }

    /// Runs `check` of a `connector_type` endpoint, counted in the metrics.
    pub async fn counted<T>(
        &self,
        connector_type: TargetType,
        check: impl Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        self.calls.timed(connector_type, check).await
    }

    /// Resolves `host` and checks every address it has (one refused address refuses the host,
    /// so that a name cannot mix an allowed address with a refused one); the address to
    /// connect to, so that the name is not resolved again to something else.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        let addresses = resolve_checked(&self.hosts, host, port, self.connect_timeout).await?;
        Ok(addresses[0])
    }

    /// The CAs to trust besides a cluster's own, in DER, for clients that take a root list.
    pub fn extra_roots(&self) -> &[CertificateDer<'static>] {
        &self.extra_roots
    }

    /// The system roots plus the added CAs, for clients that replace the system roots when
    /// given any root at all; `None` when no CA was added.
    pub fn system_and_extra_roots(&self) -> Option<&[CertificateDer<'static>]> {
        self.system_and_extra_roots.as_deref()
    }

    /// An HTTP client for user-named endpoints: every name it resolves and every redirect it
    /// follows passes the host guard.
    pub fn http_client(&self) -> Result<reqwest::Client, String> {
        let hosts = Arc::clone(&self.hosts);
        let redirect_hosts = Arc::clone(&self.hosts);
        let mut builder = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .no_proxy()
            .dns_resolver(GuardedResolver {
                hosts,
                timeout: self.connect_timeout,
            })
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 5 {
                    return attempt.error("too many redirects");
                }
                match literal_address_allowed(&redirect_hosts, attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(refused) => attempt.error(refused),
                }
            }))
            .user_agent(concat!("connector-hub/", env!("CARGO_PKG_VERSION")));
        if !self.extra_roots.is_empty() {
            let roots = self
                .extra_roots
                .iter()
                .map(|der| reqwest::Certificate::from_der(der))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("a trusted CA certificate is not usable: {e}"))?;
            builder = builder.tls_certs_merge(roots);
        }
        builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client for user endpoints: {e}"))
    }

    /// Checks a URL whose host is an address: names are checked when they are resolved, but
    /// an address is connected to as it is.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), String> {
        literal_address_allowed(&self.hosts, url)
    }
}

fn literal_address_allowed(hosts: &TargetHosts, url: &reqwest::Url) -> Result<(), String> {
    let host = url
        .host_str()
        .ok_or_else(|| format!("the URL '{url}' names no host"))?;
    match literal_address(host) {
        Some(address) => hosts.check(&address.to_string(), address),
        None => Ok(()),
    }
}

async fn resolve_checked(
    hosts: &TargetHosts,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, String> {
    if let Some(address) = literal_address(host) {
        hosts.check(&address.to_string(), address)?;
        return Ok(vec![SocketAddr::new(address, port)]);
    }
    let addresses: Vec<SocketAddr> =
        tokio::time::timeout(timeout, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| format!("resolving '{host}' timed out"))?
            .map_err(|e| format!("cannot resolve '{host}': {e}"))?
            .collect();
    if addresses.is_empty() {
        return Err(format!("'{host}' has no address"));
    }
    for address in &addresses {
        hosts.check(host, address.ip())?;
    }
    Ok(addresses)
}

/// reqwest's resolver, with the guard on every name it resolves (redirect targets too).
struct GuardedResolver {
    hosts: Arc<TargetHosts>,
    timeout: Duration,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let hosts = Arc::clone(&self.hosts);
        let timeout = self.timeout;
        Box::pin(async move {
            let addresses = resolve_checked(&hosts, name.as_str(), 0, timeout).await?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(entries: &[&str]) -> TargetHosts {
        let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        TargetHosts::parse(Some(&entries)).unwrap()
    }

    #[test]
    fn by_default_only_public_addresses_are_reached() {
        let hosts = TargetHosts::parse(None).unwrap();
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!hosts.allows("h", refused.parse().unwrap()), "{refused}");
        }
        for allowed in ["20.50.2.1", "140.82.112.3", "2001:4860::8888"] {
            assert!(hosts.allows("h", allowed.parse().unwrap()), "{allowed}");
        }
    }

    #[test]
    fn a_list_allows_exactly_its_names_and_networks() {
        let hosts = listed(&["registry.internal", "10.0.0.0/8", "192.168.5.5"]);
        assert!(hosts.allows("Registry.Internal.", "192.168.9.9".parse().unwrap()));
        assert!(hosts.allows("other", "10.200.0.1".parse().unwrap()));
        assert!(hosts.allows("other", "192.168.5.5".parse().unwrap()));
        assert!(!hosts.allows("other", "192.168.5.6".parse().unwrap()));
        assert!(!hosts.allows("other", "20.50.2.1".parse().unwrap()));
        let all = listed(&["*"]);
        assert!(all.allows("h", "127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn a_bad_entry_is_refused_at_start() {
        let entries = vec!["ok.example".to_string(), "not a host".to_string()];
        let error = TargetHosts::parse(Some(&entries)).unwrap_err();
        assert!(error.contains("not a host"), "{error}");
    }

    #[tokio::test]
    async fn a_name_with_one_refused_address_is_refused() {
        let hosts = TargetHosts::parse(None).unwrap();
        let error = resolve_checked(&hosts, "localhost", 443, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(error.contains("localhost"), "{error}");
        assert!(error.contains("--allowed-target-hosts"), "{error}");
    }
}
