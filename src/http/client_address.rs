//! Whom a request comes from, resolved once per request for the failed-login limits and the
//! audit log. Behind reverse proxies (`--trusted-proxies`) that is the rightmost address in
//! `X-Forwarded-For` that is not itself a trusted proxy: each proxy appends the address it was
//! reached from, so the entries left of the last untrusted one are whatever the client made up.
//! Without trusted proxies the header is ignored, since any client can send it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

use super::error::ApiError;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's address, as a request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// The reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Addresses (`10.0.0.7`) and CIDR ranges (`10.0.0.0/8`, `fd00::/8`); blank entries are
    /// skipped.
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        let mut ranges = Vec::new();
        for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let range = match entry.parse::<IpNet>() {
                Ok(range) => range.trunc(),
                Err(_) => match entry.parse::<IpAddr>() {
                    Ok(address) => IpNet::from(address.to_canonical()),
                    Err(_) => {
                        return Err(format!(
                            "--trusted-proxies: '{entry}' is neither an IP address nor a CIDR \
                             range (such as 10.0.0.0/8 or fd00::/8)"
                        ));
                    }
                },
            };
            ranges.push(range);
        }
        Ok(TrustedProxies(ranges))
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(&address))
    }

    /// The client's address, for a request from `peer` with `headers`.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        // Several header fields are one list, in order; walk it from the right.
        let fields: Vec<_> = headers.get_all(X_FORWARDED_FOR).iter().collect();
        for field in fields.into_iter().rev() {
            let Ok(text) = field.to_str() else {
                return client;
            };
            for entry in text.rsplit(',').map(str::trim).filter(|e| !e.is_empty()) {
                // Past what the proxy wrote lies nothing to believe.
                let Some(address) = hop_address(entry) else {
                    return client;
                };
                client = address;
                if !self.trusts(client) {
                    return client;
                }
            }
        }
        client
    }
}

/// An entry of `X-Forwarded-For`: an address, which some proxies write with a port
/// (`203.0.113.7:41234`, `[2001:db8::7]:41234`).
fn hop_address(entry: &str) -> Option<IpAddr> {
    let address = entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .or_else(|_| entry.trim_matches(['[', ']']).parse::<IpAddr>())
        .ok()?;
    Some(address.to_canonical())
}

/// Puts the request's [`ClientAddress`] in its extensions, from the connection's peer address
/// and, behind trusted proxies, `X-Forwarded-For`.
pub async fn resolve(
    State(proxies): State<Arc<TrustedProxies>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    if let Some(peer) = peer {
        let client = proxies.client_address(peer, request.headers());
        request.extensions_mut().insert(ClientAddress(client));
    }
    next.run(request).await
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<ClientAddress>()
            .copied()
            .ok_or_else(|| ApiError::Internal("the client's address is not known".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(entries: &[&str]) -> TrustedProxies {
        let entries: Vec<String> = entries.iter().map(|e| (*e).to_owned()).collect();
        TrustedProxies::parse(&entries).unwrap()
    }

    fn forwarded(fields: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for field in fields {
            headers.append(X_FORWARDED_FOR, field.parse().unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = TrustedProxies::default();
        let headers = forwarded(&["203.0.113.7"]);
        assert_eq!(
            none.client_address(ip("127.0.0.1"), &headers),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn a_peer_that_is_not_trusted_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let headers = forwarded(&["203.0.113.7"]);
        assert_eq!(
            trusted.client_address(ip("192.0.2.1"), &headers),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8", "192.0.2.5"]);
        // The client claims 198.51.100.1; the outer proxy saw 203.0.113.7 and the inner one
        // the outer proxy.
        let headers = forwarded(&["198.51.100.1, 203.0.113.7", "192.0.2.5"]);
        assert_eq!(
            trusted.client_address(ip("10.1.2.3"), &headers),
            ip("203.0.113.7")
        );
        // No header: the proxy itself.
        assert_eq!(
            trusted.client_address(ip("10.1.2.3"), &HeaderMap::new()),
            ip("10.1.2.3")
        );
        // Every hop trusted: the leftmost.
        let internal = forwarded(&["10.9.9.9, 10.8.8.8"]);
        assert_eq!(
            trusted.client_address(ip("10.1.2.3"), &internal),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn entries_with_ports_count_and_garbage_stops_the_walk() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let ported = forwarded(&["[2001:db8::7]:4711, 10.0.0.2:80"]);
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &ported),
            ip("2001:db8::7")
        );
        let garbage = forwarded(&["203.0.113.7, unknown, 10.0.0.2"]);
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &garbage),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn ipv4_mapped_peers_are_ipv4() {
        let trusted = proxies(&["127.0.0.0/8"]);
        let headers = forwarded(&["203.0.113.7"]);
        assert_eq!(
            trusted.client_address(ip("::ffff:127.0.0.1"), &headers),
            ip("203.0.113.7")
        );
        assert_eq!(
            TrustedProxies::default().client_address(ip("::ffff:192.0.2.1"), &headers),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn entries_parse_as_addresses_or_ranges_and_nothing_else() {
        assert!(
            proxies(&[" 10.0.0.0/8", "fd00::/8 ", "192.0.2.1", ""])
                .0
                .len()
                == 3
        );
        for bad in ["10.0.0.0/33", "proxy.internal", "10.0.0", "*"] {
            let error = TrustedProxies::parse(&[bad.to_owned()]).unwrap_err();
            assert!(
                error.contains(bad) && error.contains("--trusted-proxies"),
                "{error}"
            );
        }
    }
}
