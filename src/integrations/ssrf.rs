//! Outgoing requests to URLs that customers choose (their webhook
//! endpoints) must not reach the platform's own network: a URL whose host
//! resolves to a loopback, private, link-local, shared, multicast or
//! otherwise non-public address is refused (OWASP SSRF Prevention Cheat
//! Sheet), unless configuration allows it (tests, private deployments).
//! The check runs on the resolved addresses, and the request then connects
//! to exactly those addresses (the name is not resolved again), so a DNS
//! answer that changes between the check and the connection (DNS
//! rebinding) cannot slip through. Redirects are not followed.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

/// Why a URL was refused; the text is safe to show to the customer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlRefused {
    /// Not an absolute `http(s)` URL with a host.
    #[error("must be an absolute http:// or https:// URL with a host")]
    Malformed,
    /// Credentials in the URL would be sent in clear to anyone logging it.
    #[error("must not carry a user name or password")]
    Credentials,
    /// The host did not resolve.
    #[error("the host does not resolve: {0}")]
    Unresolvable(String),
    /// The host resolves to an address outside the public internet.
    #[error("the host resolves to a non-public address ({0})")]
    NonPublic(IpAddr),
}

/// Blocks that are not the public internet (IANA special-purpose address
/// registries for IPv4 and IPv6).
const NON_PUBLIC: [&str; 19] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/3",
    "::/128",
    "::1/128",
    "64:ff9b:1::/48",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// Whether `ip` is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    !NON_PUBLIC.iter().any(|block| {
        block
            .parse::<IpNet>()
            .is_ok_and(|net: IpNet| net.contains(&ip))
    })
}

/// A checked destination: the URL and the addresses to connect to.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as given.
    pub url: reqwest::Url,
    /// Its host.
    pub host: String,
    /// Where to connect (every address the host resolved to, all checked).
    pub addrs: Vec<SocketAddr>,
}

/// Parses `raw` and resolves its host; refuses a non-public address unless
/// `allow_private`.
pub async fn check(raw: &str, allow_private: bool) -> Result<Target, UrlRefused> {
    let url = reqwest::Url::parse(raw).map_err(|_| UrlRefused::Malformed)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlRefused::Malformed);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefused::Credentials);
    }
    let host = url
        .host_str()
        .ok_or(UrlRefused::Malformed)?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port_or_known_default().ok_or(UrlRefused::Malformed)?;
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        .map_err(|_| UrlRefused::Unresolvable("timed out".into()))?
        .map_err(|e| UrlRefused::Unresolvable(e.to_string()))?
        .collect(),
    };
    if addrs.is_empty() {
        return Err(UrlRefused::Unresolvable("no address".into()));
    }
    if !allow_private && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
        return Err(UrlRefused::NonPublic(bad.ip()));
    }
    Ok(Target { url, host, addrs })
}

/// Checks a URL being stored (a new webhook endpoint): as [`check`], except
/// that a host that does not resolve now is accepted, since it may resolve
/// later; every request to it is checked again ([`check`]) before
/// connecting, so nothing unchecked is ever reached.
pub async fn vet(raw: &str, allow_private: bool) -> Result<(), UrlRefused> {
    match check(raw, allow_private).await {
        Ok(_) | Err(UrlRefused::Unresolvable(_)) => Ok(()),
        Err(refused) => Err(refused),
    }
}

/// A client that connects to `target`'s checked addresses only, follows no
/// redirect and gives up after `timeout`.
pub fn client(target: &Target, timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .resolve_to_addrs(&target.host, &target.addrs)
        .user_agent(concat!("Switchboard-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_after_resolution() {
        assert_eq!(
            check("http://127.0.0.1:9/hook", false).await.err(),
            Some(UrlRefused::NonPublic("127.0.0.1".parse().unwrap()))
        );
        assert!(matches!(
            check("http://localhost:9/hook", false).await.err(),
            Some(UrlRefused::NonPublic(_))
        ));
        assert_eq!(
            check("ftp://example.com/", false).await.err(),
            Some(UrlRefused::Malformed)
        );
        assert_eq!(
            check("https://user:pw@example.com/", false).await.err(),
            Some(UrlRefused::Credentials)
        );
        assert!(
            check("http://[::1]:9/hook", true).await.is_ok(),
            "allowed when configured"
        );
    }
}
