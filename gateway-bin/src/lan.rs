//! Which of this host's addresses to announce when a socket is bound to a wildcard address
//! and no announce address is configured: the address of the interface that holds the
//! default route (read from the routing table, without sending anything), and every usable
//! interface address as an ICE host candidate.
//!
//! The choice is a pure function of what [`HostAddresses::discover`] read, so it is tested on
//! made-up hosts.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// One address of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddr {
    /// The interface (`eth0`).
    pub name: String,
    /// Its address.
    pub ip: IpAddr,
}

/// This host's addresses and the interface of its IPv4 default route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostAddresses {
    /// Every interface address, in the order the system lists them.
    pub interfaces: Vec<InterfaceAddr>,
    /// The interface that holds the IPv4 default route (lowest metric), if there is one.
    pub default_route: Option<String>,
}

/// Why an address is announced (printed at start, so an operator sees where it came from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Set in the configuration.
    Configured,
    /// The socket is bound to it.
    Bound,
    /// The address of the interface that holds the default route.
    DefaultRoute(String),
    /// No default route: the first usable address, of this interface.
    FirstInterface(String),
    /// Nothing but loopback: only this machine can reach it.
    LoopbackOnly,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Configured => f.write_str("configured"),
            Origin::Bound => f.write_str("the bound address"),
            Origin::DefaultRoute(i) => write!(f, "{i}, which holds the default route"),
            Origin::FirstInterface(i) => write!(f, "{i}; there is no default route"),
            Origin::LoopbackOnly => f.write_str("loopback: no other address on this host"),
        }
    }
}

/// An address to announce and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    pub ip: IpAddr,
    pub origin: Origin,
}

impl Announce {
    /// The address for a socket bound to `bind`: `configured` when set, `bind` when it is
    /// not a wildcard, else the host's best address ([`HostAddresses::best`]).
    pub fn choose(configured: Option<IpAddr>, bind: IpAddr, host: &HostAddresses) -> Announce {
        if let Some(ip) = configured {
            return Announce {
                ip,
                origin: Origin::Configured,
            };
        }
        if !bind.is_unspecified() {
            return Announce {
                ip: bind,
                origin: Origin::Bound,
            };
        }
        host.best()
    }

    /// Whether only this machine can reach it.
    pub fn is_loopback(&self) -> bool {
        self.ip.is_loopback()
    }
}

impl HostAddresses {
    /// Read the interfaces and the routing table (`/proc/net/route`; without it, as on
    /// systems other than Linux, there is no default route and the first usable address is
    /// taken).
    pub fn discover() -> HostAddresses {
        let interfaces = if_addrs::get_if_addrs()
            .map(|list| {
                list.into_iter()
                    .map(|i| InterfaceAddr {
                        ip: i.ip(),
                        name: i.name,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let default_route = std::fs::read_to_string("/proc/net/route")
            .ok()
            .and_then(|t| default_route_interface(&t));
        HostAddresses {
            interfaces,
            default_route,
        }
    }

    /// The IPv4 address to announce: the default route's interface's, else the first usable
    /// one, else loopback.
    pub fn best(&self) -> Announce {
        let usable = self.usable_v4();
        if let Some(name) = &self.default_route
            && let Some(a) = usable.iter().find(|a| &a.name == name)
        {
            return Announce {
                ip: a.ip,
                origin: Origin::DefaultRoute(name.clone()),
            };
        }
        match usable.first() {
            Some(a) => Announce {
                ip: a.ip,
                origin: Origin::FirstInterface(a.name.clone()),
            },
            None => Announce {
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                origin: Origin::LoopbackOnly,
            },
        }
    }

    /// Every IPv4 address another machine may reach: not loopback, link-local, unspecified,
    /// broadcast or multicast.
    pub fn usable_v4(&self) -> Vec<&InterfaceAddr> {
        self.interfaces
            .iter()
            .filter(|a| match a.ip {
                IpAddr::V4(v4) => {
                    !(v4.is_loopback()
                        || v4.is_link_local()
                        || v4.is_unspecified()
                        || v4.is_broadcast()
                        || v4.is_multicast())
                }
                IpAddr::V6(_) => false,
            })
            .collect()
    }

    /// ICE host candidates for a socket on the IPv4 wildcard: `first`, then every other
    /// usable IPv4 address, each once.
    pub fn candidates(&self, first: IpAddr) -> Vec<IpAddr> {
        let mut out = vec![first];
        for a in self.usable_v4() {
            if !out.contains(&a.ip) {
                out.push(a.ip);
            }
        }
        out
    }
}

/// The interface of the IPv4 default route with the lowest metric in the text of
/// `/proc/net/route` (columns `Iface Destination Gateway Flags RefCnt Use Metric Mask …`,
/// addresses in hex; a default route has destination and mask 0 and is up, flag 0x1).
pub fn default_route_interface(proc_net_route: &str) -> Option<String> {
    proc_net_route
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let flags = u32::from_str_radix(f[3], 16).ok()?;
            let metric: u32 = f[6].parse().ok()?;
            (f[1] == "00000000" && f[7] == "00000000" && flags & 1 == 1)
                .then(|| (metric, f[0].to_owned()))
        })
        .min_by_key(|(metric, _)| *metric)
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t010000AC\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t000000AC\t00000000\t0001\t0\t0\t100\t0000FFFF\t0\t0\t0
";

    fn host(list: &[(&str, &str)], default_route: Option<&str>) -> HostAddresses {
        HostAddresses {
            interfaces: list
                .iter()
                .map(|(n, ip)| InterfaceAddr {
                    name: (*n).into(),
                    ip: ip.parse().unwrap(),
                })
                .collect(),
            default_route: default_route.map(Into::into),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_default_route_with_the_lowest_metric_wins() {
        assert_eq!(default_route_interface(ROUTES).as_deref(), Some("eth0"));
        let down = ROUTES.replace(
            "eth0\t00000000\t010000AC\t0003",
            "eth0\t00000000\t010000AC\t0002",
        );
        assert_eq!(default_route_interface(&down).as_deref(), Some("wlan0"));
        let none = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
                    eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n";
        assert_eq!(default_route_interface(none), None);
        assert_eq!(default_route_interface(""), None);
        assert_eq!(default_route_interface("garbage\nx y z\n"), None);
    }

    #[test]
    fn the_default_route_interface_is_announced_and_every_lan_address_is_a_candidate() {
        let h = host(
            &[
                ("lo", "127.0.0.1"),
                ("docker0", "172.17.0.1"),
                ("eth0", "fe80::1"),
                ("eth0", "10.1.2.3"),
                ("eth1", "169.254.10.10"),
                ("eth1", "192.168.9.4"),
            ],
            Some("eth0"),
        );
        let a = Announce::choose(None, ip("0.0.0.0"), &h);
        assert_eq!(a.ip, ip("10.1.2.3"));
        assert_eq!(a.origin, Origin::DefaultRoute("eth0".into()));
        assert_eq!(
            h.candidates(a.ip),
            [ip("10.1.2.3"), ip("172.17.0.1"), ip("192.168.9.4")],
            "no loopback, no link-local, no IPv6 on an IPv4 socket"
        );
        assert_eq!(a.origin.to_string(), "eth0, which holds the default route");
    }

    #[test]
    fn configured_and_bound_addresses_come_first_and_loopback_is_the_last_resort() {
        let h = host(&[("lo", "127.0.0.1"), ("eth3", "10.9.9.9")], None);
        let a = Announce::choose(Some(ip("203.0.113.7")), ip("0.0.0.0"), &h);
        assert_eq!((a.ip, a.origin), (ip("203.0.113.7"), Origin::Configured));
        let a = Announce::choose(None, ip("10.9.9.9"), &h);
        assert_eq!((a.ip, a.origin), (ip("10.9.9.9"), Origin::Bound));
        let a = Announce::choose(None, ip("0.0.0.0"), &h);
        assert_eq!(a.ip, ip("10.9.9.9"));
        assert_eq!(a.origin, Origin::FirstInterface("eth3".into()));
        let lo = host(&[("lo", "127.0.0.1"), ("eth0", "fe80::2")], Some("eth0"));
        let a = Announce::choose(None, ip("0.0.0.0"), &lo);
        assert_eq!(a.ip, ip("127.0.0.1"));
        assert!(a.is_loopback());
        assert_eq!(lo.candidates(a.ip), [ip("127.0.0.1")]);
    }

    #[test]
    fn discovery_on_this_host_finds_loopback_at_least() {
        let h = HostAddresses::discover();
        assert!(h.interfaces.iter().any(|a| a.ip.is_loopback()), "{h:?}");
    }
}
