//! Refusing targets in private, loopback and link-local ranges (SSRF), unless allowed.
//!
//! reqwest skips the DNS resolver for IP-literal URLs, so [`check_url`] checks literals, and
//! [`GuardedResolver`] checks every resolved address (so DNS rebinding can't get around it).
//! Redirects are never followed and proxies are disabled by the dispatcher's client.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether an address is one webhooks may not reach unless private targets are allowed.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

/// IPv6 ranges refused whole: not globally reachable, or able to carry (or translate to) an
/// IPv4 address that the IPv4 rules would refuse. Webhooks on IPv4 use the IPv4 literal.
const FORBIDDEN_V6: &[(u128, u32, &str)] = &[
    (0, 96, "IPv4-compatible ::/96 (deprecated; :: and ::1 included)"),
    (0xffff_0000_0000, 96, "IPv4-mapped ::ffff:0:0/96"),
    (0xffff_0000_0000_0000, 96, "IPv4-translated ::ffff:0:0:0/96"),
    (0x0064_ff9b_0001 << 80, 48, "local-use NAT64 64:ff9b:1::/48"),
    (0x0100 << 112, 64, "discard-only 100::/64"),
    (0x2001 << 112, 32, "Teredo 2001::/32"),
    ((0x2001 << 112) | (0x0002 << 96), 48, "benchmarking 2001:2::/48"),
    (
        (0x2001 << 112) | (0x0db8 << 96),
        32,
        "documentation 2001:db8::/32",
    ),
    (0x3fff << 112, 20, "documentation 3fff::/20"),
    (0xfc00 << 112, 7, "unique local fc00::/7"),
    (0xfe80 << 112, 10, "link-local fe80::/10"),
    (0xfec0 << 112, 10, "site-local fec0::/10 (deprecated)"),
    (0xff00 << 112, 8, "multicast ff00::/8"),
];

/// Whether `addr` is in `net/len`.
fn in_v6(addr: u128, net: u128, len: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    addr & mask == net & mask
}

fn is_forbidden_v6(v6: Ipv6Addr) -> bool {
    let bits = u128::from(v6);
    if FORBIDDEN_V6.iter().any(|&(net, len, _)| in_v6(bits, net, len)) {
        return true;
    }
    let o = v6.octets();
    // NAT64 64:ff9b::/96 and 6to4 2002::/16 reach the IPv4 address they embed.
    if in_v6(bits, 0x0064_ff9b << 96, 96) {
        return is_forbidden_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if in_v6(bits, 0x2002 << 112, 16) {
        return is_forbidden_v4(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    false
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || o[0] == 0 // 0.0.0.0/8
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // CGNAT 100.64.0.0/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 192 && o[1] == 0 && o[2] == 2) // documentation TEST-NET-1
        || (o[0] == 192 && o[1] == 88 && o[2] == 99) // 6to4 relay anycast (deprecated)
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || (o[0] == 198 && o[1] == 51 && o[2] == 100) // documentation TEST-NET-2
        || (o[0] == 203 && o[1] == 0 && o[2] == 113) // documentation TEST-NET-3
        || o[0] >= 240 // reserved
}

/// Why a URL can't be a webhook target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("not a valid URL: {0}")]
    Invalid(String),
    #[error("the scheme must be http or https")]
    Scheme,
    #[error("the URL must not carry credentials")]
    Credentials,
    #[error("the URL has no host")]
    NoHost,
    #[error("the URL is too long (at most 2048 characters)")]
    TooLong,
    #[error(
        "{0} is in a private, loopback or link-local range (set HOOKRELAY_ALLOW_PRIVATE_TARGETS=true to allow)"
    )]
    Private(IpAddr),
}

/// Checks a webhook URL: http(s), no credentials, a host, and no forbidden IP literal.
pub fn check_url(raw: &str, allow_private: bool) -> Result<url::Url, UrlError> {
    if raw.len() > 2048 {
        return Err(UrlError::TooLong);
    }
    let url = url::Url::parse(raw).map_err(|e| UrlError::Invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    let ip = match url.host() {
        None => return Err(UrlError::NoHost),
        Some(url::Host::Domain("")) => return Err(UrlError::NoHost),
        Some(url::Host::Domain(_)) => None,
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
    };
    if let Some(ip) = ip
        && !allow_private
        && is_forbidden(ip)
    {
        return Err(UrlError::Private(ip));
    }
    Ok(url)
}

/// A DNS resolver that drops forbidden addresses and fails when none is left.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl GuardedResolver {
    pub fn new(allow_private: bool) -> Arc<Self> {
        Arc::new(Self { allow_private })
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let total = addrs.len();
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| allow_private || !is_forbidden(a.ip()))
                .collect();
            if allowed.is_empty() {
                let why = if total == 0 {
                    format!("{host} did not resolve")
                } else {
                    format!(
                        "{host} resolves to a private, loopback or link-local address (set HOOKRELAY_ALLOW_PRIVATE_TARGETS=true to allow)"
                    )
                };
                return Err(why.into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "64:ff9b::7f00:1",
            "255.255.255.255",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert!(is_forbidden(ip), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert!(!is_forbidden(ip), "{ip}");
        }
    }

    #[test]
    fn ipv6_ranges_that_carry_or_hide_ipv4_and_documentation_ranges_are_forbidden() {
        for ip in [
            // ::/96, IPv4-compatible, whatever it embeds
            "::127.0.0.1",
            "::10.0.0.1",
            "::8.8.8.8",
            "::",
            // ::ffff:0:0/96, IPv4-mapped, also with a public address (use the IPv4 literal)
            "::ffff:8.8.8.8",
            "::ffff:0:0",
            // ::ffff:0:0:0/96, IPv4-translated
            "::ffff:0:127.0.0.1",
            "::ffff:0:8.8.8.8",
            // local-use NAT64
            "64:ff9b:1::1",
            "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
            // NAT64 well-known prefix with a private IPv4
            "64:ff9b::10.0.0.1",
            "64:ff9b::169.254.169.254",
            // 6to4 with a private, loopback, link-local or documentation IPv4 inside
            "2002:7f00:1::",
            "2002:a00:1::1",
            "2002:a9fe:a9fe::",
            "2002:c000:201::",
            // Teredo, documentation, benchmarking, discard
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:db8::1",
            "2001:db8:ffff::",
            "3fff::1",
            "2001:2::1",
            "100::1",
            // IPv4 documentation ranges
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.255",
            "192.88.99.1",
            "fec0::1",
            "ff02::1",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert!(is_forbidden(ip), "{ip}");
        }
        for ip in [
            // the same families with a public address, where the address is what counts
            "64:ff9b::808:808",
            "2002:808:808::1",
            // just outside the refused ranges
            "2001:db9::1",
            "2001:1::1",
            "2001:3::1",
            "64:ff9b:2::1",
            "::1:0:0:1",
            "192.0.3.1",
            "198.51.101.1",
            "203.0.112.1",
            "4000::1",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert!(!is_forbidden(ip), "{ip}");
        }
    }

    #[test]
    fn bracketed_ipv6_literals_of_forbidden_ranges_are_refused_in_urls() {
        for url in [
            "http://[::127.0.0.1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://[64:ff9b:1::a00:1]/x",
            "http://[2002:7f00:1::]/x",
            "http://[2001::1]/x",
            "http://[2001:db8::1]/x",
            "http://192.0.2.1/x",
            "http://198.51.100.1/x",
            "http://203.0.113.1/x",
        ] {
            assert!(
                matches!(check_url(url, false), Err(UrlError::Private(_))),
                "{url}"
            );
            assert!(check_url(url, true).is_ok(), "{url} with private targets allowed");
        }
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("https://example.com/hook", false).is_ok());
        assert_eq!(check_url("ftp://example.com", false), Err(UrlError::Scheme));
        assert_eq!(
            check_url("https://u:p@example.com", false),
            Err(UrlError::Credentials)
        );
        assert!(matches!(
            check_url("http://127.0.0.1:9/x", false),
            Err(UrlError::Private(_))
        ));
        assert!(matches!(
            check_url("http://[::1]/x", false),
            Err(UrlError::Private(_))
        ));
        assert!(check_url("http://127.0.0.1:9/x", true).is_ok());
        assert!(matches!(check_url("not a url", false), Err(UrlError::Invalid(_))));
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused() {
        let r = GuardedResolver { allow_private: false };
        let name: Name = "localhost".parse().expect("name");
        assert!(r.resolve(name).await.is_err());
        let r = GuardedResolver { allow_private: true };
        let name: Name = "localhost".parse().expect("name");
        assert!(r.resolve(name).await.is_ok());
    }
}
