//! Transport addressing shared by the sans-IO cores and their I/O shells.
//!
//! A core never owns a socket. It names where a message goes with a [`Transport`] and a remote
//! address; the shell (see `net`) owns the UDP socket and the TCP connections and maps
//! [`ConnId`]s to them.

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;

/// Identifies one TCP connection for the lifetime of the shell that opened or accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tcp#{}", self.0)
    }
}

/// The transport a message arrived on or leaves by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// The shared UDP socket.
    Udp,
    /// An established TCP connection (RFC 3261 §18.3 framing).
    Tcp(ConnId),
}

impl Transport {
    /// True for a reliable transport: no retransmission timers (RFC 3261 §17.1.1.2).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp(_))
    }

    /// The Via transport token: `UDP` or `TCP`.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp(_) => "TCP",
        }
    }

    /// `udp` or `tcp`, as shown in the API and the store.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp(_) => "tcp",
        }
    }
}

/// Bytes a core wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The transport to send on.
    pub transport: Transport,
    /// The peer address (for TCP, the connection's remote address; informational).
    pub remote: SocketAddr,
    /// One serialized SIP message.
    pub payload: Bytes,
}
