//! Counters the simulator reports at the end: calls, and media sent per transport.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use gb28181::sdp::MediaTransport;

/// Media counters of one transport mode, updated by the streaming tasks.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Streams started (ACK received).
    pub streams: AtomicU64,
    /// Streams running now.
    pub live: AtomicU64,
    /// RTP packets sent.
    pub packets: AtomicU64,
    /// Bytes sent (RTP packets, with RFC 4571 prefixes on TCP).
    pub bytes: AtomicU64,
    /// Video frames sent.
    pub video_frames: AtomicU64,
    /// Audio frames sent.
    pub audio_frames: AtomicU64,
    /// TCP connections that could not be made or accepted.
    pub connect_failures: AtomicU64,
    /// Streams that ended on a send error or the platform closing the connection.
    pub broken: AtomicU64,
}

impl TransportStats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

impl fmt::Display for TransportStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = TransportStats::get;
        write!(
            f,
            "streams {}, packets {}, bytes {}, video frames {}, audio frames {}, connect failures {}, broken {}",
            g(&self.streams),
            g(&self.packets),
            g(&self.bytes),
            g(&self.video_frames),
            g(&self.audio_frames),
            g(&self.connect_failures),
            g(&self.broken),
        )
    }
}

/// Media counters of every transport mode.
#[derive(Debug, Default)]
pub struct MediaStats {
    /// RTP over UDP.
    pub udp: TransportStats,
    /// TCP, the platform listens (`a=setup:passive` offer): we connect.
    pub tcp_passive: TransportStats,
    /// TCP, the platform connects (`a=setup:active` offer): we listen.
    pub tcp_active: TransportStats,
}

impl MediaStats {
    /// The counters of a transport mode.
    pub fn of(&self, t: MediaTransport) -> &TransportStats {
        match t {
            MediaTransport::Udp => &self.udp,
            MediaTransport::TcpPassive => &self.tcp_passive,
            MediaTransport::TcpActive => &self.tcp_active,
        }
    }

    /// Streams running now, all transports.
    pub fn live(&self) -> u64 {
        [&self.udp, &self.tcp_passive, &self.tcp_active]
            .iter()
            .map(|t| TransportStats::get(&t.live))
            .sum()
    }
}

/// Call counters, kept by the SIP loop.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CallStats {
    /// INVITEs answered with 200.
    pub invites_answered: u64,
    /// INVITEs refused (488 bad offer, 404 unknown channel, …).
    pub invites_refused: u64,
    /// ACKs of our 200s.
    pub acks: u64,
    /// BYEs from the platform answered with 200.
    pub byes_received: u64,
    /// BYEs we sent (media connection failed or closed).
    pub byes_sent: u64,
    /// Answered calls dropped because no ACK came.
    pub ack_timeouts: u64,
    /// Key-frame requests (IFrameCmd) received.
    pub keyframe_requests: u64,
}
