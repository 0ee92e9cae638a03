//! Gateway configuration: a TOML file, overridden by command-line flags, with defaults that
//! run out of the box.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use gb28181::sdp::MediaTransport;
use serde::{Deserialize, Deserializer};

/// `media.transport` by name, an unknown one refused with the accepted names.
fn media_transport<'de, D: Deserializer<'de>>(d: D) -> Result<MediaTransport, D::Error> {
    let name = String::deserialize(d)?;
    MediaTransport::parse(&name).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "`{name}` is not a media transport: expected udp, tcp-passive or tcp-active"
        ))
    })
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Data directory (SQLite database, generated credentials).
    pub data_dir: Option<PathBuf>,
    /// SIP settings.
    pub sip: SipConfig,
    /// HTTP settings.
    pub http: HttpConfig,
    /// Media (RTP from devices) settings.
    pub media: MediaConfig,
    /// WebRTC egress settings.
    pub webrtc: WebrtcConfig,
    /// Bounds on what the device network can make the gateway hold.
    pub limits: LimitsConfig,
    /// Storage settings.
    pub store: StoreConfig,
}

/// `[limits]`: bounds on every table and buffer the device network can grow (each hit is
/// counted in `sip_limit_hits_total{limit=…}`), and the digest failure throttles.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest SIP datagram handled, in bytes.
    pub max_message_size_udp: usize,
    /// Largest SIP message on a TCP connection, in bytes.
    pub max_message_size_tcp: usize,
    /// Devices known (registered or provisioned); new ones past it get 503.
    pub max_devices: usize,
    /// Server transactions in all.
    pub max_transactions: usize,
    /// Server transactions from one source address.
    pub max_transactions_per_source: usize,
    /// TCP connections in all (also kept under the process's file limit).
    pub max_tcp_connections: usize,
    /// TCP connections from one address.
    pub max_tcp_connections_per_ip: usize,
    /// Seconds a TCP connection may stay open without carrying a registration.
    pub tcp_idle_before_register_secs: u64,
    /// Items kept of one catalog.
    pub catalog_max_items: usize,
    /// Catalog collections open for one device.
    pub catalog_max_open_per_device: usize,
    /// Queries and catalog collections open in all.
    pub max_open_queries: usize,
    /// Catalog items held by open collections in all.
    pub catalog_max_items_in_flight: usize,
    /// Digest failures of one device ID from one address, in `auth_window_secs`, that lock
    /// the pair out.
    pub auth_max_failures: u32,
    /// Digest failures from one address (any IDs) that lock it out.
    pub auth_max_failures_per_source: u32,
    /// Digest failures of one device ID (any address) that lock it out for addresses it
    /// never registered from.
    pub auth_max_failures_per_device: u32,
    /// The window failures are counted in, in seconds.
    pub auth_window_secs: u64,
    /// The first lockout, in seconds; each further one doubles.
    pub auth_backoff_secs: u64,
    /// The longest lockout, in seconds.
    pub auth_max_backoff_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = gb28181::platform::Limits::default();
        let a = gb28181::platform::AuthThrottling::default();
        LimitsConfig {
            max_message_size_udp: l.max_message_size_udp,
            max_message_size_tcp: l.max_message_size_tcp,
            max_devices: l.max_devices,
            max_transactions: l.transactions.max_server,
            max_transactions_per_source: l.transactions.max_server_per_source,
            max_tcp_connections: l.max_tcp_connections,
            max_tcp_connections_per_ip: l.max_tcp_connections_per_ip,
            tcp_idle_before_register_secs: l.tcp_idle_before_register.as_secs(),
            catalog_max_items: l.catalog_max_items,
            catalog_max_open_per_device: l.catalog_max_open_per_device,
            max_open_queries: l.max_open_queries,
            catalog_max_items_in_flight: l.catalog_max_items_in_flight,
            auth_max_failures: a.per_pair.max_failures,
            auth_max_failures_per_source: a.per_source.max_failures,
            auth_max_failures_per_device: a.per_device.max_failures,
            auth_window_secs: a.per_pair.window.as_secs(),
            auth_backoff_secs: a.per_pair.initial_backoff.as_secs(),
            auth_max_backoff_secs: a.per_pair.max_backoff.as_secs(),
        }
    }
}

impl LimitsConfig {
    /// The core's bounds.
    pub fn platform_limits(&self) -> gb28181::platform::Limits {
        gb28181::platform::Limits {
            max_message_size_udp: self.max_message_size_udp,
            max_message_size_tcp: self.max_message_size_tcp,
            transactions: gb28181::transaction::TxLimits {
                max_server: self.max_transactions,
                max_server_per_source: self.max_transactions_per_source,
            },
            max_devices: self.max_devices,
            max_tcp_connections: self.max_tcp_connections,
            max_tcp_connections_per_ip: self.max_tcp_connections_per_ip,
            tcp_idle_before_register: Duration::from_secs(self.tcp_idle_before_register_secs),
            catalog_max_items: self.catalog_max_items,
            catalog_max_open_per_device: self.catalog_max_open_per_device,
            max_open_queries: self.max_open_queries,
            catalog_max_items_in_flight: self.catalog_max_items_in_flight,
        }
    }

    /// The core's digest throttles.
    pub fn auth_throttling(&self) -> gb28181::platform::AuthThrottling {
        let d = gb28181::platform::AuthThrottling::default();
        let with = |c: gb28181::throttle::ThrottleConfig, max_failures| {
            gb28181::throttle::ThrottleConfig {
                max_failures,
                window: Duration::from_secs(self.auth_window_secs.max(1)),
                initial_backoff: Duration::from_secs(self.auth_backoff_secs.max(1)),
                max_backoff: Duration::from_secs(
                    self.auth_max_backoff_secs
                        .max(self.auth_backoff_secs.max(1)),
                ),
                ..c
            }
        };
        gb28181::platform::AuthThrottling {
            per_pair: with(d.per_pair, self.auth_max_failures),
            per_source: with(d.per_source, self.auth_max_failures_per_source),
            per_device: with(d.per_device, self.auth_max_failures_per_device),
        }
    }
}

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Cap on the database size in MiB (0: none, the disk is the limit).
    pub max_size_mb: u64,
    /// Online/offline history rows kept per device (the newest).
    pub history_max_rows_per_device: u32,
    /// History older than this many days is deleted.
    pub history_retention_days: u32,
    /// Writes queued for the store at most (then the signalling waits, the API answers 503).
    pub write_queue: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        let d = crate::store::StoreLimits::default();
        StoreConfig {
            max_size_mb: 0,
            history_max_rows_per_device: d.history_max_rows,
            history_retention_days: (d.history_retention.as_secs() / 86_400) as u32,
            write_queue: d.queue,
        }
    }
}

impl StoreConfig {
    /// The store's limits.
    pub fn store_limits(&self) -> crate::store::StoreLimits {
        crate::store::StoreLimits {
            max_size: (self.max_size_mb > 0).then(|| self.max_size_mb.saturating_mul(1 << 20)),
            history_max_rows: self.history_max_rows_per_device.max(1),
            history_retention: Duration::from_secs(
                u64::from(self.history_retention_days.max(1)) * 86_400,
            ),
            queue: self.write_queue.max(16),
        }
    }
}

/// `[media]`: RTP/PS from devices.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Address media sockets bind to.
    pub bind_ip: IpAddr,
    /// Address announced to devices in SDP (`c=`); the SIP announce address when absent.
    pub announce_ip: Option<IpAddr>,
    /// Port range for media, `"30000-30999"`.
    pub ports: String,
    /// Default transport: `udp`, `tcp-passive` (device connects to us) or `tcp-active`
    /// (also read: `tcp`, `passive`, `active`). Anything else is refused at start.
    #[serde(deserialize_with = "media_transport")]
    pub transport: MediaTransport,
    /// How long to wait for the device to answer an INVITE, in seconds.
    pub invite_timeout_secs: u64,
    /// How long after the 200 OK media must start, in seconds.
    pub no_media_timeout_secs: u64,
    /// How long a stream stays up after its last viewer left, in seconds.
    pub linger_secs: u64,
    /// A playing stream with no media from its device for this long is ended (BYE, and its
    /// viewers are told the device stopped sending), in seconds.
    pub stall_timeout_secs: u64,
    /// Accept UDP media from the address in the device's SDP answer as well as from the
    /// address it registered from (for devices whose media leave from another interface
    /// than their SIP; off by default, since the answer is the device's own claim).
    pub trust_sdp_address: bool,
    /// `strict` (default): RTP with an SSRC other than the negotiated one is not the stream;
    /// `latch`: if only one other SSRC arrives, take it (devices that ignore `y=`).
    pub ssrc_policy: media::receive::SsrcPolicy,
    /// After a lost video frame, hold the stream's video until the next key frame (the
    /// frames in between depend on the lost one: a decoder would show them smeared). On by
    /// default; off only to see what passing them on looks like.
    pub hold_video_after_loss: bool,
    /// Ask the device for a key frame (IFrameCmd) as soon as video is held after a loss,
    /// within `keyframe_request_interval_secs`. On by default.
    pub keyframe_after_loss: bool,
    /// Minimum seconds between two key-frame requests to one stream.
    pub keyframe_request_interval_secs: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind_ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            announce_ip: None,
            ports: "30000-30999".into(),
            transport: MediaTransport::Udp,
            invite_timeout_secs: 10,
            no_media_timeout_secs: 10,
            linger_secs: 10,
            stall_timeout_secs: 10,
            trust_sdp_address: false,
            ssrc_policy: media::receive::SsrcPolicy::Strict,
            hold_video_after_loss: true,
            keyframe_after_loss: true,
            keyframe_request_interval_secs: 2,
        }
    }
}

impl MediaConfig {
    /// The port range as (first, last).
    pub fn port_range(&self) -> Result<(u16, u16), ConfigError> {
        let bad = || ConfigError::Invalid {
            key: "media.ports",
            reason: format!("`{}` is not a range like 30000-30999", self.ports),
        };
        let (a, b) = self.ports.split_once('-').ok_or_else(bad)?;
        let (a, b): (u16, u16) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        if a == 0 || b < a {
            return Err(bad());
        }
        Ok((a, b))
    }
}

/// `[webrtc]`: the WHEP/WebRTC side.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebrtcConfig {
    /// Address the WebRTC UDP socket binds to.
    pub bind_ip: IpAddr,
    /// The one UDP port every viewer uses (0 picks a free port).
    pub udp_port: u16,
    /// Address put in ICE host candidates; the SIP announce address when absent.
    pub announce_ip: Option<IpAddr>,
}

impl Default for WebrtcConfig {
    fn default() -> Self {
        WebrtcConfig {
            bind_ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            udp_port: 8000,
            announce_ip: None,
        }
    }
}

/// `[sip]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// UDP and TCP listen address.
    pub listen: SocketAddr,
    /// Address announced in Via/Contact; the listen address when it is not a wildcard,
    /// otherwise 127.0.0.1 with a warning.
    pub announce_ip: Option<IpAddr>,
    /// Platform ID (20 digits, type 200).
    pub id: String,
    /// SIP domain / realm; the first 10 digits of `id` when absent.
    pub domain: Option<String>,
    /// Global device password; generated on first start when absent.
    pub password: Option<String>,
    /// `accept` (default) or `reject` devices that are not provisioned.
    pub unknown_devices: UnknownDevices,
    /// Keepalive interval in seconds.
    pub keepalive_interval_secs: u64,
    /// Missed keepalive intervals before a device is offline.
    pub keepalive_max_missed: u32,
    /// Registration lifetime in seconds when a device asks for none.
    pub default_expires_secs: u64,
    /// Lifetime of a digest nonce in seconds.
    pub nonce_ttl_secs: u64,
    /// How long a query waits for the device's Response, in seconds.
    pub query_timeout_secs: u64,
    /// How long a catalog waits for its next page, in seconds.
    pub catalog_page_timeout_secs: u64,
    /// Offset of the local time zone for the `Date` header, in hours (Beijing: 8).
    pub utc_offset_hours: u8,
    /// Query DeviceInfo and Catalog when a device comes online.
    pub auto_query: bool,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: "0.0.0.0:5060".parse().unwrap_or_else(|_| unreachable!()),
            announce_ip: None,
            id: "34020000002000000001".into(),
            domain: None,
            password: None,
            unknown_devices: UnknownDevices::Accept,
            keepalive_interval_secs: 60,
            keepalive_max_missed: 3,
            default_expires_secs: 3600,
            nonce_ttl_secs: 300,
            query_timeout_secs: 30,
            catalog_page_timeout_secs: 10,
            utc_offset_hours: 8,
            auto_query: true,
        }
    }
}

/// Policy for devices that are not provisioned.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnknownDevices {
    /// Accept with the global password.
    #[default]
    Accept,
    /// Reject with 403.
    Reject,
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address of the REST API and web pages.
    pub listen: SocketAddr,
    /// Bearer token for `/api/v1` (at least 16 characters); generated on first start when
    /// absent.
    pub api_token: Option<String>,
    /// How long `POST …/catalog`, `…/info` and `…/status` wait, in seconds.
    pub query_wait_secs: u64,
    /// Origins allowed to call the API from a browser page (CORS). None by default: the
    /// player and console are served from the gateway itself.
    pub cors_origins: Vec<String>,
    /// Seconds a client has to send a request's headers (slow clients are dropped).
    pub header_read_timeout_secs: u64,
    /// Open HTTP connections at most (further clients wait in the listen backlog).
    pub max_connections: usize,
    /// On shutdown, seconds open requests get to finish before they are cut.
    pub shutdown_grace_secs: u64,
    /// Failed token attempts from one address in `auth_window_secs` before it is refused
    /// (429) for a growing back-off.
    pub auth_max_failures: u32,
    /// The window failed attempts are counted in, in seconds.
    pub auth_window_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "0.0.0.0:8080".parse().unwrap_or_else(|_| unreachable!()),
            api_token: None,
            query_wait_secs: 35,
            cors_origins: Vec::new(),
            header_read_timeout_secs: 10,
            max_connections: 1024,
            shutdown_grace_secs: 5,
            auth_max_failures: 10,
            auth_window_secs: 60,
        }
    }
}

/// Shortest API token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

impl SipConfig {
    /// The realm: configured, or the first 10 digits of the ID.
    pub fn domain(&self) -> String {
        self.domain
            .clone()
            .unwrap_or_else(|| self.id.get(..10).unwrap_or(&self.id).to_owned())
    }

    /// Keepalive interval.
    pub fn keepalive_interval(&self) -> Duration {
        Duration::from_secs(self.keepalive_interval_secs.max(1))
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A value is out of range.
    #[error("invalid setting {key}: {reason}")]
    Invalid {
        /// The setting.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

impl Config {
    /// Read a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Check values a typo could break.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let id = &self.sip.id;
        if id.len() != 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::Invalid {
                key: "sip.id",
                reason: format!("`{id}` is not a 20-digit GB/T 28181 ID"),
            });
        }
        if self.sip.keepalive_max_missed == 0 {
            return Err(ConfigError::Invalid {
                key: "sip.keepalive_max_missed",
                reason: "must be at least 1".into(),
            });
        }
        self.media.port_range()?;
        if let Some(t) = &self.http.api_token
            && t.chars().count() < MIN_TOKEN_LEN
        {
            return Err(ConfigError::Invalid {
                key: "http.api_token",
                reason: format!(
                    "a token of {} characters is too easy to guess: use at least {MIN_TOKEN_LEN} (or leave it out to have one generated)",
                    t.chars().count()
                ),
            });
        }
        for origin in &self.http.cors_origins {
            if origin.parse::<axum::http::HeaderValue>().is_err() || origin == "*" {
                return Err(ConfigError::Invalid {
                    key: "http.cors_origins",
                    reason: format!("`{origin}` is not an origin like https://console.example"),
                });
            }
        }
        if self.sip.utc_offset_hours > 14 {
            return Err(ConfigError::Invalid {
                key: "sip.utc_offset_hours",
                reason: "must be 0..=14".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file() {
        let c: Config = toml::from_str(
            r#"
            data_dir = "/var/lib/gb"
            [sip]
            listen = "0.0.0.0:5061"
            announce_ip = "10.0.0.5"
            id = "44010000002000000001"
            password = "secret"
            unknown_devices = "reject"
            keepalive_interval_secs = 30
            [http]
            listen = "127.0.0.1:9000"
            api_token = "a-long-enough-token"
            cors_origins = ["https://console.example"]
            [limits]
            max_devices = 1000
            auth_max_failures = 3
            [store]
            max_size_mb = 64
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.sip.domain(), "4401000000");
        assert_eq!(c.sip.unknown_devices, UnknownDevices::Reject);
        assert_eq!(c.http.listen.port(), 9000);
        assert_eq!(c.sip.keepalive_max_missed, 3);
        assert_eq!(c.limits.platform_limits().max_devices, 1000);
        assert_eq!(c.limits.auth_throttling().per_pair.max_failures, 3);
        assert_eq!(c.store.store_limits().max_size, Some(64 << 20));
    }

    #[test]
    fn refuses_short_tokens_and_wildcard_origins() {
        let mut c = Config::default();
        c.http.api_token = Some("short".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("http.api_token") && e.contains("16"), "{e}");
        c.http.api_token = Some("0123456789abcdef".into());
        c.validate().unwrap();
        c.http.cors_origins = vec!["*".into()];
        assert!(c.validate().is_err());
    }

    #[test]
    fn media_policies_are_enums_and_unknown_names_are_refused_with_the_accepted_ones() {
        let c: Config =
            toml::from_str("[media]\ntransport = \"tcp-active\"\nssrc_policy = \"latch\"").unwrap();
        assert_eq!(c.media.transport, MediaTransport::TcpActive);
        assert_eq!(c.media.ssrc_policy, media::receive::SsrcPolicy::Latch);
        let c: Config = toml::from_str("[media]\ntransport = \"TCP\"").unwrap();
        assert_eq!(c.media.transport, MediaTransport::TcpPassive, "an alias");
        let e = toml::from_str::<Config>("[media]\ntransport = \"rtsp\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("transport") && e.contains("udp, tcp-passive or tcp-active"),
            "{e}"
        );
        let e = toml::from_str::<Config>("[media]\nssrc_policy = \"loose\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ssrc_policy") && e.contains("strict"), "{e}");
    }

    #[test]
    fn rejects_typos_and_bad_ids() {
        assert!(toml::from_str::<Config>("[sip]\nlisten_addr = \"x\"").is_err());
        let mut c = Config::default();
        c.sip.id = "123".into();
        assert!(c.validate().is_err());
    }
}
