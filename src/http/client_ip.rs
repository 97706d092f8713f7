//! Who the client is, as an IP address: the TCP peer, or, when the peer is
//! a configured trusted proxy (`rate_limit.trusted_proxies`), the right-most
//! `X-Forwarded-For` address that is not itself a trusted proxy. Everything
//! left of that was written by the client and proves nothing (MDN:
//! X-Forwarded-For, "Security and privacy concerns"; RFC 7239 §8.1).
//!
//! [`layer`] resolves it once per request into a [`ClientAddr`] extension,
//! which the rate limits and the audit log read. Limits key IPv6 clients by
//! their /64 ([`rate_key`]): one subscriber usually holds a whole /64, so
//! keying by the exact address would give them 2^64 budgets.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

/// The resolved client address of a request (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// An address (`203.0.113.7`, `::1`) or CIDR block (`10.0.0.0/8`) as an
/// [`IpNet`]; `None` when it is neither.
pub fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Resolves client addresses for one configuration.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    trusted: Arc<Vec<IpNet>>,
}

impl Resolver {
    /// Trusting `proxies` (addresses or CIDR blocks; unparsable entries are
    /// refused by configuration validation and skipped here).
    pub fn new(proxies: &[String]) -> Resolver {
        Resolver {
            trusted: Arc::new(proxies.iter().filter_map(|p| parse_net(p)).collect()),
        }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request from `peer` with `headers`.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        // Every X-Forwarded-For line, in order, as one list (RFC 9110 §5.3).
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) => {
                    client = canonical(ip);
                    if !self.trusts(client) {
                        return client;
                    }
                }
                // Garbage where an address should be: the last trusted hop
                // is the best known client.
                Err(_) => return client,
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) as the IPv4 they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The key a client is limited by: an IPv4 address as it is, an IPv6
/// address by its /64 prefix (the rest zeroed).
pub fn rate_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// Middleware: resolves the client of each request into [`ClientAddr`].
pub async fn layer(
    axum::extract::State(resolver): axum::extract::State<Resolver>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    {
        let client = resolver.resolve(peer.ip(), request.headers());
        request.extensions_mut().insert(ClientAddr(client));
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let r = Resolver::new(&[]);
        assert_eq!(
            r.resolve(ip("198.51.100.9"), &xff(&["1.2.3.4"])),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let r = Resolver::new(&["10.0.0.0/8".into(), "::1".into()]);
        // The client forged the left-most entry; the proxy appended the real one.
        let h = xff(&["6.6.6.6, 203.0.113.7", "10.1.2.3"]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), ip("203.0.113.7"));
        assert_eq!(r.resolve(ip("::1"), &h), ip("203.0.113.7"));
        // Nothing forwarded: the proxy itself.
        assert_eq!(r.resolve(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            r.resolve(ip("10.0.0.1"), &xff(&["nonsense, 10.9.9.9"])),
            ip("10.9.9.9")
        );
        assert_eq!(
            r.resolve(ip("::ffff:10.0.0.1"), &xff(&["2001:db8::5"])),
            ip("2001:db8::5")
        );
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        assert_eq!(rate_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            rate_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(rate_key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(rate_key(ip("192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(rate_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert!(parse_net("10.0.0.0/8").is_some() && parse_net("::1").is_some());
        assert!(parse_net("10.0.0.0/33").is_none() && parse_net("proxy").is_none());
    }
}
