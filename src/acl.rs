//! Who may register: SUNW.Event's `Allow_hosts` / `Deny_hosts` rules.
//!
//! A list holds IP addresses, CIDR ranges and two keywords: `LOCAL` (loopback plus the subnets
//! directly attached to this host) and `ALL`. Deny wins over allow.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// One entry of a host list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRule {
    /// Every address.
    All,
    /// Loopback and the directly attached subnets.
    Local,
    /// One address or range.
    Net(IpNet),
}

/// A parsed host list, as `--allow-hosts` and `--deny-hosts` take it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostList(pub Vec<HostRule>);

/// Why a host list could not be read.
#[derive(Debug, thiserror::Error)]
#[error("bad host list entry {entry:?}: expected an IP address, a CIDR range, LOCAL or ALL")]
pub struct HostListError {
    /// The entry that was not understood.
    pub entry: String,
}

impl FromStr for HostList {
    type Err = HostListError;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        list.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|entry| !entry.is_empty())
            .map(parse_rule)
            .collect::<Result<Vec<_>, _>>()
            .map(HostList)
    }
}

fn parse_rule(entry: &str) -> Result<HostRule, HostListError> {
    if entry.eq_ignore_ascii_case("ALL") {
        return Ok(HostRule::All);
    }
    if entry.eq_ignore_ascii_case("LOCAL") {
        return Ok(HostRule::Local);
    }
    let error = || HostListError {
        entry: entry.to_owned(),
    };
    if entry.contains('/') {
        return entry
            .parse::<IpNet>()
            .map(|net| HostRule::Net(net.trunc()))
            .map_err(|_| error());
    }
    entry
        .parse::<IpAddr>()
        .map(|ip| HostRule::Net(IpNet::from(ip)))
        .map_err(|_| error())
}

impl fmt::Display for HostList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|rule| match rule {
                HostRule::All => "ALL".to_owned(),
                HostRule::Local => "LOCAL".to_owned(),
                HostRule::Net(net) => net.to_string(),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// The authorization decision for a registration's source address.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    allow: HostList,
    deny: HostList,
    local_nets: Vec<IpNet>,
}

impl AccessPolicy {
    /// Builds the policy, reading the attached subnets once (they back `LOCAL`).
    pub fn new(allow: HostList, deny: HostList) -> Self {
        Self {
            allow,
            deny,
            local_nets: attached_subnets(),
        }
    }

    /// True when `ip` may register: allowed by some rule and denied by none.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.matches(&self.allow, ip) && !self.matches(&self.deny, ip)
    }

    fn matches(&self, list: &HostList, ip: IpAddr) -> bool {
        list.0.iter().any(|rule| match rule {
            HostRule::All => true,
            HostRule::Local => ip.is_loopback() || self.local_nets.iter().any(|n| n.contains(&ip)),
            HostRule::Net(net) => net.contains(&ip),
        })
    }
}

/// Maps an IPv4-mapped IPv6 address to its IPv4 form, so rules written for IPv4 apply.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn attached_subnets() -> Vec<IpNet> {
    let Ok(interfaces) = if_addrs::get_if_addrs() else {
        tracing::warn!("cannot list network interfaces; LOCAL means loopback only");
        return Vec::new();
    };
    interfaces
        .iter()
        .filter_map(|interface| match &interface.addr {
            if_addrs::IfAddr::V4(v4) => ipnet::Ipv4Net::with_netmask(v4.ip, v4.netmask)
                .ok()
                .map(|n| IpNet::V4(n.trunc())),
            if_addrs::IfAddr::V6(v6) => ipnet::Ipv6Net::with_netmask(v6.ip, v6.netmask)
                .ok()
                .map(|n| IpNet::V6(n.trunc())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &str, deny: &str) -> AccessPolicy {
        AccessPolicy::new(allow.parse().expect("allow"), deny.parse().expect("deny"))
    }

    #[test]
    fn local_admits_loopback_and_deny_wins() {
        let p = policy("LOCAL", "127.0.0.7/32");
        assert!(p.permits("127.0.0.1".parse().expect("ip")));
        assert!(p.permits("127.9.0.1".parse().expect("ip")));
        assert!(!p.permits("127.0.0.7".parse().expect("ip")));
        assert!(!p.permits("203.0.113.9".parse().expect("ip")));
    }

    #[test]
    fn ranges_addresses_and_all() {
        let p = policy("10.1.0.0/16, 192.0.2.4", "");
        assert!(p.permits("10.1.200.3".parse().expect("ip")));
        assert!(p.permits("192.0.2.4".parse().expect("ip")));
        assert!(!p.permits("192.0.2.5".parse().expect("ip")));
        assert!(policy("ALL", "").permits("198.51.100.1".parse().expect("ip")));
        assert!(!policy("ALL", "ALL").permits("127.0.0.1".parse().expect("ip")));
        assert!(!policy("", "").permits("127.0.0.1".parse().expect("ip")));
    }

    #[test]
    fn mapped_ipv6_follows_ipv4_rules() {
        let p = policy("127.0.0.0/8", "");
        assert!(p.permits("::ffff:127.0.0.3".parse().expect("ip")));
    }

    #[test]
    fn bad_entries_are_named() {
        let error = "LOCAL,10.0.0.0/33"
            .parse::<HostList>()
            .expect_err("bad mask");
        assert_eq!(error.entry, "10.0.0.0/33");
        assert_eq!(
            "all, 10.0.0.1".parse::<HostList>().expect("ok").to_string(),
            "ALL,10.0.0.1/32"
        );
    }
}
