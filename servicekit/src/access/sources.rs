//! Which addresses may ask for signatures (`DIGSIGSERVER_ALLOWED_SOURCES`),
//! and whose `X-Forwarded-For` is believed (`DIGSIGSERVER_TRUSTED_PROXIES`).

use std::net::IpAddr;

use ipnet::IpNet;
use poem::http::HeaderMap;

/// A list of networks (`10.0.0.0/8, 192.168.1.7`), comma or space separated;
/// a bare address is a /32 or /128.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks(Vec<IpNet>);

impl Networks {
    /// Parses a list; an error names the entry.
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{s:?} is not an address or a network (CIDR)"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether `addr` is in one of the networks.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.0.iter().any(|net| net.contains(&addr))
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:10.0.0.1`) as IPv4.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
        v4 => v4,
    }
}

/// The client's address: the peer's, or, when the peer is a trusted proxy,
/// the last address in `X-Forwarded-For` that is not a trusted proxy (the
/// one the nearest trusted proxy saw). A header from an untrusted peer is
/// ignored: anyone can write one.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &Networks) -> IpAddr {
    let mut addr = canonical(peer);
    if !trusted.contains(addr) {
        return addr;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect();
    for hop in forwarded.into_iter().rev() {
        addr = canonical(hop);
        if !trusted.contains(addr) {
            break;
        }
    }
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_and_bare_addresses() {
        let n = Networks::parse("10.0.0.0/8, 192.168.1.7 fd00::/8").unwrap();
        assert!(n.contains(ip("10.1.2.3")));
        assert!(n.contains(ip("192.168.1.7")));
        assert!(!n.contains(ip("192.168.1.8")));
        assert!(n.contains(ip("fd00::1")));
        assert!(n.contains(ip("::ffff:10.0.0.1")));
        assert!(Networks::parse("10.0.0.0/33")
            .unwrap_err()
            .contains("10.0.0.0/33"));
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let trusted = Networks::parse("10.0.0.0/8").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "1.2.3.4, 203.0.113.9, 10.0.0.5".parse().unwrap(),
        );
        // Through two trusted hops: the address the first of them saw.
        assert_eq!(
            client_address(ip("10.0.0.2"), &h, &trusted),
            ip("203.0.113.9")
        );
        // From an untrusted peer the header is ignored.
        assert_eq!(
            client_address(ip("198.51.100.1"), &h, &trusted),
            ip("198.51.100.1")
        );
        // No header: the proxy itself.
        assert_eq!(
            client_address(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
    }
}
