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
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden_v4(v4);
            }
            let seg = v6.segments();
            // NAT64 64:ff9b::/96 embeds an IPv4 address.
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
                let o = v6.octets();
                return is_forbidden_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || v6 == Ipv6Addr::from([0u8; 16])
        }
    }
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
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18.0.0/15
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
