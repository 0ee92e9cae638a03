//! Configuration of the platform core: identity, timers, policies and the bounds on what
//! devices (and anyone on the device network) can make it hold.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::manscdp::Charset;
use crate::throttle::ThrottleConfig;
use crate::transaction::{TimerConfig, TxLimits};

/// What to do with a device that registers without being provisioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownDevicePolicy {
    /// Accept it with the global password (the default).
    #[default]
    Accept,
    /// Refuse it with 403.
    Reject,
}

/// Configuration of a [`super::Platform`].
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// Our 20-digit platform ID (type 200), e.g. `34020000002000000001`.
    pub id: String,
    /// Our SIP domain / digest realm: the first 10 digits of the ID by default.
    pub domain: String,
    /// Address announced in Via and Contact (`sip.announce_ip`), never guessed.
    pub announce_host: String,
    /// Port announced in Via and Contact.
    pub announce_port: u16,
    /// The global device password.
    pub password: String,
    /// Unknown devices: accept with the global password, or reject.
    pub unknown_devices: UnknownDevicePolicy,
    /// Expected keepalive interval (default 60 s).
    pub keepalive_interval: Duration,
    /// Missed keepalive intervals before a device is offline (default 3).
    pub keepalive_max_missed: u32,
    /// Registration lifetime when the device asks for none (default 3600 s).
    pub default_expires: Duration,
    /// Lifetime of a digest nonce (default 300 s).
    pub nonce_ttl: Duration,
    /// How long a query waits for the device's Response (default 30 s).
    pub query_timeout: Duration,
    /// How long a catalog waits for its next page once pages are arriving (default 10 s).
    pub catalog_page_timeout: Duration,
    /// Query DeviceInfo and Catalog by itself when a device comes online (default true).
    pub auto_query: bool,
    /// UTC offset for the `Date` header (default +8 h, Beijing).
    pub utc_offset: Duration,
    /// Bounds on every table and buffer input from the device network can grow.
    pub limits: Limits,
    /// Digest failure throttling.
    pub auth: AuthThrottling,
    /// RFC 3261 timer values.
    pub timers: TimerConfig,
    /// `User-Agent` header value.
    pub user_agent: String,
}

impl PlatformConfig {
    /// Defaults for a platform `id` announcing `host:port`.
    pub fn new(id: &str, announce_host: &str, announce_port: u16, password: &str) -> Self {
        PlatformConfig {
            id: id.to_owned(),
            domain: id.get(..10).unwrap_or(id).to_owned(),
            announce_host: announce_host.to_owned(),
            announce_port,
            password: password.to_owned(),
            unknown_devices: UnknownDevicePolicy::Accept,
            keepalive_interval: Duration::from_secs(60),
            keepalive_max_missed: 3,
            default_expires: Duration::from_secs(3600),
            nonce_ttl: Duration::from_secs(300),
            query_timeout: Duration::from_secs(30),
            catalog_page_timeout: Duration::from_secs(10),
            auto_query: true,
            utc_offset: Duration::from_secs(8 * 3600),
            limits: Limits::default(),
            auth: AuthThrottling::default(),
            timers: TimerConfig::default(),
            user_agent: concat!("gb28181-rs/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// Bounds on what input from the device network can make the platform hold. Each bound,
/// when hit, is counted in [`super::PlatformStats::limit_hits`] under its [`Limit`] name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest SIP datagram handled (default 65,535: any UDP datagram).
    pub max_message_size_udp: usize,
    /// Largest SIP message on a TCP connection (default 256 KiB; a framing error closes it).
    pub max_message_size_tcp: usize,
    /// Server transactions in all and per source address.
    pub transactions: TxLimits,
    /// Devices known (registered or provisioned); new IDs past it get 503 (default 200,000).
    pub max_devices: usize,
    /// TCP connections in all (default 20,000; the gateway also keeps it under its file limit).
    pub max_tcp_connections: usize,
    /// TCP connections from one IP address (default 256: a village NAT of TCP cameras).
    pub max_tcp_connections_per_ip: usize,
    /// A TCP connection that carries no registration is closed after this long (default
    /// 30 s): open, REGISTER, answer the challenge.
    pub tcp_idle_before_register: Duration,
    /// Items kept of one catalog (default 20,000); more are dropped and the catalog is
    /// flagged incomplete.
    pub catalog_max_items: usize,
    /// Catalog collections (queries and unsolicited catalogs) open for one device (default 4).
    pub catalog_max_open_per_device: usize,
    /// Queries and catalog collections open in all (default 20,000).
    pub max_open_queries: usize,
    /// Catalog items held by open collections in all (default 1,000,000).
    pub catalog_max_items_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size_udp: 65_535,
            max_message_size_tcp: 256 * 1024,
            transactions: TxLimits::default(),
            max_devices: 200_000,
            max_tcp_connections: 20_000,
            max_tcp_connections_per_ip: 256,
            tcp_idle_before_register: Duration::from_secs(30),
            catalog_max_items: 20_000,
            catalog_max_open_per_device: 4,
            max_open_queries: 20_000,
            catalog_max_items_in_flight: 1_000_000,
        }
    }
}

/// One bound of [`Limits`] (a stable name for metrics and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Limit {
    /// [`Limits::max_message_size_udp`].
    MessageSizeUdp,
    /// [`Limits::max_message_size_tcp`].
    MessageSizeTcp,
    /// [`TxLimits::max_server`].
    ServerTransactions,
    /// [`TxLimits::max_server_per_source`].
    ServerTransactionsPerSource,
    /// [`Limits::max_devices`].
    Devices,
    /// [`Limits::max_tcp_connections`].
    TcpConnections,
    /// [`Limits::max_tcp_connections_per_ip`].
    TcpConnectionsPerIp,
    /// [`Limits::tcp_idle_before_register`].
    TcpIdleBeforeRegister,
    /// [`Limits::catalog_max_items`].
    CatalogItems,
    /// [`Limits::catalog_max_open_per_device`].
    CatalogOpenPerDevice,
    /// [`Limits::max_open_queries`].
    OpenQueries,
    /// [`Limits::catalog_max_items_in_flight`].
    CatalogItemsInFlight,
}

impl Limit {
    /// Every bound, in a stable order.
    pub const ALL: [Limit; 12] = [
        Limit::MessageSizeUdp,
        Limit::MessageSizeTcp,
        Limit::ServerTransactions,
        Limit::ServerTransactionsPerSource,
        Limit::Devices,
        Limit::TcpConnections,
        Limit::TcpConnectionsPerIp,
        Limit::TcpIdleBeforeRegister,
        Limit::CatalogItems,
        Limit::CatalogOpenPerDevice,
        Limit::OpenQueries,
        Limit::CatalogItemsInFlight,
    ];

    /// A stable snake-case name (the `limit` label of `sip_limit_hits_total`).
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::MessageSizeUdp => "message_size_udp",
            Limit::MessageSizeTcp => "message_size_tcp",
            Limit::ServerTransactions => "server_transactions",
            Limit::ServerTransactionsPerSource => "server_transactions_per_source",
            Limit::Devices => "devices",
            Limit::TcpConnections => "tcp_connections",
            Limit::TcpConnectionsPerIp => "tcp_connections_per_ip",
            Limit::TcpIdleBeforeRegister => "tcp_idle_before_register",
            Limit::CatalogItems => "catalog_items",
            Limit::CatalogOpenPerDevice => "catalog_open_per_device",
            Limit::OpenQueries => "open_queries",
            Limit::CatalogItemsInFlight => "catalog_items_in_flight",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// Throttling of digest failures: per (device ID, source address), per source address and per
/// device ID. A device's own source (the address it last registered from) is never locked
/// out by the per-device or per-source throttles, so failures of others cannot lock it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthThrottling {
    /// One device ID from one address (default: 5 failures in 60 s, 60 s doubling to 1 h).
    pub per_pair: ThrottleConfig,
    /// One address, any device IDs (default: 20 failures in 60 s).
    pub per_source: ThrottleConfig,
    /// One device ID, any address (default: 20 failures in 60 s).
    pub per_device: ThrottleConfig,
}

impl Default for AuthThrottling {
    fn default() -> Self {
        let pair = ThrottleConfig::default();
        AuthThrottling {
            per_pair: pair,
            per_source: ThrottleConfig {
                max_failures: 20,
                capacity: 20_000,
                ..pair
            },
            per_device: ThrottleConfig {
                max_failures: 20,
                ..pair
            },
        }
    }
}

/// Per-device settings the user provisions (REST API, store).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceSettings {
    /// Password for this device; the global one when `None`.
    pub password: Option<String>,
    /// Charset for bodies we send it; by GB version when `None`.
    pub charset: Option<Charset>,
    /// Addresses besides its registration source that may speak for this device (a lower
    /// platform behind a load balancer or several egress addresses). Empty: only the source
    /// of its last authenticated REGISTER.
    pub trusted_sources: Vec<IpNet>,
}

impl DeviceSettings {
    /// True when `ip` is one of the [`DeviceSettings::trusted_sources`].
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted_sources.iter().any(|n| n.contains(&ip))
    }
}
