//! What the platform knows of one device, and why a command for one could not start.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::config::{DeviceSettings, Limit};
use crate::manscdp::Charset;
use crate::transport::Transport;

/// What the platform knows of one device.
#[derive(Debug, Clone)]
pub struct DeviceState {
    /// Device ID.
    pub id: String,
    /// Provisioned settings.
    pub settings: DeviceSettings,
    /// Registered and alive.
    pub online: bool,
    /// Registered (may be offline after missed keepalives).
    pub registered: bool,
    /// Transport of the registration.
    pub transport: Transport,
    /// Source address of the registration (NAT-safe destination).
    pub remote: Option<SocketAddr>,
    /// Contact URI.
    pub contact: Option<String>,
    /// `X-GB-ver` (2.0 = 2016, 3.0 = 2022).
    pub gb_version: Option<String>,
    /// Registration expiry.
    pub expires_at: Option<Instant>,
    /// Last sign of life (registration or keepalive).
    pub last_seen: Option<Instant>,
}

impl DeviceState {
    pub(super) fn new(id: &str, settings: DeviceSettings) -> DeviceState {
        DeviceState {
            id: id.to_owned(),
            settings,
            online: false,
            registered: false,
            transport: Transport::Udp,
            remote: None,
            contact: None,
            gb_version: None,
            expires_at: None,
            last_seen: None,
        }
    }

    /// True for a 2022 device (`X-GB-ver: 3.x`).
    pub fn is_gb2022(&self) -> bool {
        self.gb_version
            .as_deref()
            .is_some_and(|v| v.trim().starts_with('3'))
    }

    /// The charset for bodies sent to this device.
    pub fn charset(&self) -> Charset {
        self.settings.charset.unwrap_or(if self.is_gb2022() {
            Charset::Gb18030
        } else {
            Charset::Gb2312
        })
    }
}

impl DeviceState {
    /// True when a message from `transport`/`remote` may speak for this registered device:
    /// it comes over the TCP connection it registered on, from the UDP address it registered
    /// from, or from one of its trusted addresses.
    pub fn is_source(&self, transport: Transport, remote: SocketAddr) -> bool {
        if self.settings.trusts(remote.ip()) {
            return true;
        }
        match (self.transport, transport) {
            (Transport::Tcp(a), Transport::Tcp(b)) => a == b,
            (Transport::Udp, Transport::Udp) => self.remote == Some(remote),
            _ => false,
        }
    }

    /// The address it last registered from, or a trusted one: failures of others from
    /// elsewhere never lock it out.
    pub(super) fn is_home(&self, ip: IpAddr) -> bool {
        self.remote.is_some_and(|r| r.ip() == ip) || self.settings.trusts(ip)
    }
}

/// Why a command could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// No such device.
    #[error("device {0} is unknown")]
    UnknownDevice(String),
    /// The device is not registered and online.
    #[error("device {0} is offline")]
    Offline(String),
    /// A bound on open queries is reached; try again later.
    #[error("too many open queries ({})", .0.as_str())]
    Busy(Limit),
}
