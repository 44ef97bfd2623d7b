//! Where actions may send requests. By default anywhere except link-local addresses
//! (169.254.0.0/16, fe80::/10), where cloud metadata services answer with credentials; with
//! `--allowed-destinations` only the networks listed. Host names are checked after DNS
//! resolution (so a name cannot point past the policy), literal addresses before connecting.

use super::ActionError;
use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct Destinations {
    /// Empty: anything but link-local.
    allowed: Vec<IpNet>,
}

tokio::task_local! {
    /// The policy of the server running the current step, for the checks that see a URL.
    pub static POLICY: Arc<Destinations>;
}

impl Destinations {
    /// From a comma-separated list of networks or addresses (`10.0.0.0/8, 192.0.2.7`).
    pub fn parse(list: &str) -> Result<Destinations, String> {
        let allowed = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!("allowed destinations: {s:?} is not an address or network (CIDR)")
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Destinations { allowed })
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        if self.allowed.is_empty() {
            return !is_link_local(ip);
        }
        self.allowed.iter().any(|n| n.contains(&ip))
    }

    /// For a URL whose host is a literal address (DNS is not asked for those).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), ActionError> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        if self.permits(ip) {
            Ok(())
        } else {
            Err(refused(&ip.to_string()))
        }
    }
}

fn refused(what: &str) -> ActionError {
    ActionError::permanent(format!(
        "destination {what} is not allowed (link-local addresses are refused; see --allowed-destinations)"
    ))
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local())
        }
    }
}

/// The HTTP client's resolver: the system's, minus the addresses the policy refuses.
pub struct Resolver(pub Arc<Destinations>);

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(refused(&host).message.into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_is_refused_unless_listed() {
        let open = Destinations::default();
        assert!(!open.permits("169.254.169.254".parse().unwrap()));
        assert!(!open.permits("fe80::1".parse().unwrap()));
        assert!(open.permits("10.1.2.3".parse().unwrap()));
        let listed = Destinations::parse("10.0.0.0/8, 169.254.169.254").unwrap();
        assert!(listed.permits("169.254.169.254".parse().unwrap()));
        assert!(listed.permits("10.9.9.9".parse().unwrap()));
        assert!(!listed.permits("192.0.2.1".parse().unwrap()));
        assert!(Destinations::parse("10.0.0.0/99").is_err());
    }
}
