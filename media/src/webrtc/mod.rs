//! WebRTC egress: camera access units to many browsers over one UDP socket, sans-IO.
//!
//! [`Egress`] holds one [`str0m`] `Rtc` per viewer, all behind one UDP socket: ICE-lite
//! (RFC 8445 §2.5) with host candidates only (the socket's addresses as browsers see them), DTLS-SRTP (RFC 5764, AEAD AES-GCM per RFC 7714
//! when the browser offers it), RTP mode. Viewers are added from the SDP offer a browser POSTs
//! to a WHEP endpoint (draft-ietf-wish-whep); the answer names only the codecs that will be
//! sent, with the payload types and `profile-level-id` the browser offered (RFC 8829 §5.3).
//!
//! Media is packetized **once per stream per frame** — H.264 per RFC 6184 (single NAL unit,
//! STAP-A, FU-A), H.265 per RFC 7798 (single NAL unit, AP, FU), G.711 as PCMA/PCMU (RFC 3551
//! §4.5.14) — and the shared payloads are written to each connected viewer with its own SSRC
//! and sequence numbers (RFC 3550 §5.1) through str0m's direct RTP API. Output is collected in a
//! [`TransmitBatch`] that groups each viewer's equal-sized datagrams into UDP GSO runs, ready
//! for `sendmsg(UDP_SEGMENT)` / `sendmmsg`.
//!
//! The core owns no socket and reads no clock: feed it with [`Egress::handle_receive`] and
//! [`Egress::handle_timeout`], write media with [`Egress::write_video`] /
//! [`Egress::write_audio`], drain [`Egress::drain_transmits`], [`Egress::poll_event`] and
//! sleep until [`Egress::poll_timeout`].
//!
//! ```no_run
//! use std::time::Instant;
//! use media::webrtc::{Egress, EgressConfig, StreamId, Tracks, TransmitBatch, ViewerLocation};
//! use media::Codec;
//!
//! let now = Instant::now();
//! let mut egress = Egress::new(EgressConfig::new("192.0.2.10:8189".parse().unwrap()));
//! let offer = "v=0\r\n..."; // the body of the WHEP POST
//! let tracks = Tracks::new(StreamId(1), Some(Codec::H264), Some(Codec::G711A));
//! let (viewer, answer_sdp) = egress.add_viewer(now, offer, tracks, ViewerLocation::Elsewhere)?;
//! // 201 Created with `answer_sdp`; datagrams from the socket go to `handle_receive`,
//! // access units from the PS demuxer go to `write_video` / `write_audio`.
//! let mut batch = TransmitBatch::new(1);
//! egress.drain_transmits(&mut batch);
//! for t in batch.iter() { /* socket.send_to(t.contents, t.destination) */ }
//! # Ok::<(), media::webrtc::EgressError>(())
//! ```

mod batch;
mod egress;
mod gop;
mod offer;
mod packetizer;
mod stun;

pub use batch::{Datagram, Transmit, TransmitBatch};
pub use egress::{Egress, EgressStats};
pub use gop::GopLimits;
pub use offer::{OfferedCodec, OfferedMedia, inspect_offer};
pub use packetizer::{RtpPayload, packetize_h264, packetize_h265};

use crate::Codec;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// One browser session (one WHEP resource), unique for the life of an [`Egress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ViewerId(pub u64);

impl fmt::Display for ViewerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "viewer-{}", self.0)
    }
}

/// A media source (a camera channel) whose frames go to a group of viewers. Chosen by the
/// caller; viewers of one stream share one packetization of each frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

/// What a stream carries: the video codec (H.264 or H.265) and optional audio (G.711A/U).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracks {
    /// The stream the viewer watches.
    pub stream: StreamId,
    /// [`Codec::H264`] or [`Codec::H265`], Annex B access units.
    pub video: Option<Codec>,
    /// [`Codec::G711A`] or [`Codec::G711U`].
    pub audio: Option<Codec>,
}

impl Tracks {
    /// Tracks of `stream`.
    pub fn new(stream: StreamId, video: Option<Codec>, audio: Option<Codec>) -> Self {
        Tracks {
            stream,
            video,
            audio,
        }
    }
}

/// How frames become RTP packets for each viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Packetization {
    /// Packetize each frame once per stream and write the shared payloads to every viewer
    /// through str0m's RTP mode. The default.
    #[default]
    Shared,
    /// str0m's frame API: every viewer packetizes every frame itself, as a plain str0m server
    /// does. Kept as the baseline the egress benchmark compares against.
    PerViewer,
}

/// Settings of an [`Egress`].
#[derive(Debug, Clone)]
pub struct EgressConfig {
    /// The `ip:port` browsers send to: the UDP socket's address as seen by them. It is the
    /// first ICE candidate (type host) of every answer.
    pub announce: SocketAddr,
    /// Further host candidates of every answer (the socket's other interface addresses, for
    /// a wildcard bind on a host with several networks).
    pub more_candidates: Vec<SocketAddr>,
    /// Host candidates only for a browser on this host ([`ViewerLocation::ThisHost`]): the
    /// loopback address, which no other machine can reach.
    pub this_host_candidates: Vec<SocketAddr>,
    /// A viewer that has not completed ICE and DTLS within this time is reaped
    /// ([`EgressEvent::Reaped`]). Default 15 s.
    pub connect_timeout: Duration,
    /// Largest RTP payload, bytes (the RTP header, extensions and SRTP tag come on top).
    /// Default 1200, which keeps datagrams under 1280 (the IPv6 minimum MTU).
    pub max_payload: usize,
    /// Packets kept per viewer to answer NACKs (RFC 4585 §6.2.1) with RTX (RFC 4588); 0 turns
    /// retransmission off. Default 256: about 1.2 s of a 2 Mbps stream, ample for the NACK round
    /// trips of a county network. The payloads are the ones the key-frame cache holds too
    /// (shared, not copied); each kept packet adds str0m's packet record, about 430 bytes.
    pub nack_buffer: usize,
    /// Most datagrams one [`Transmit`] may carry as a UDP GSO run; 1 disables grouping.
    /// Set it from the socket (`quinn_udp::UdpSocketState::max_gso_segments`). Default 1.
    pub max_gso_segments: usize,
    /// Shared packetization (default) or the per-viewer baseline.
    pub packetization: Packetization,
    /// The key-frame cache: each stream's frames since its last key frame, written to a
    /// viewer as soon as it connects so that it starts at once instead of waiting up to a GOP
    /// for the next key frame. A GOP beyond these bounds is not kept (the viewer then waits).
    /// Default 300 frames and 16 MiB; `frames: 0` turns it off.
    pub gop_cache: GopLimits,
}

impl EgressConfig {
    /// Defaults with `announce` as the host candidate.
    pub fn new(announce: SocketAddr) -> Self {
        EgressConfig {
            announce,
            more_candidates: Vec::new(),
            this_host_candidates: Vec::new(),
            connect_timeout: Duration::from_secs(15),
            max_payload: 1200,
            nack_buffer: 256,
            max_gso_segments: 1,
            packetization: Packetization::Shared,
            gop_cache: GopLimits {
                frames: 300,
                bytes: 16 << 20,
            },
        }
    }
}

/// Where a viewer's browser runs, as far as the candidates it can reach go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViewerLocation {
    /// Another machine: [`EgressConfig::announce`] and [`EgressConfig::more_candidates`].
    #[default]
    Elsewhere,
    /// This machine (its request came over loopback): also
    /// [`EgressConfig::this_host_candidates`].
    ThisHost,
}

/// What happened to a viewer, from [`Egress::poll_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EgressEvent {
    /// ICE and DTLS are up. The stream's cached GOP ([`EgressConfig::gop_cache`]) has been
    /// written to the viewer; `started` says whether that included a key frame. When it did
    /// not, video flows from the stream's next key frame: a good moment to ask the camera
    /// for one.
    Connected {
        /// The viewer.
        viewer: ViewerId,
        /// A key frame has gone out to it.
        started: bool,
    },
    /// The viewer went away (ICE consent lost, DTLS closed, a protocol error); it is removed.
    Disconnected(ViewerId),
    /// The browser asked for a key frame (RTCP PLI, RFC 4585 §6.3.1, or FIR, RFC 5104
    /// §4.3.1); ask the camera for one.
    KeyframeRequest(ViewerId),
    /// The viewer never connected within [`EgressConfig::connect_timeout`]; it is removed.
    Reaped(ViewerId),
}

/// Why a viewer could not be added (the gateway answers the WHEP POST with a 4xx).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EgressError {
    /// The stream's codec cannot be sent: the offer has no payload type for it.
    #[error(
        "the offer has no {kind} codec the stream can be sent as: the stream is {}, \
         the offer has {offered:?}",
        stream.name()
    )]
    NoCommonCodec {
        /// `"video"` or `"audio"`.
        kind: &'static str,
        /// The stream's codec ([`Codec::name`] gives the lower-case name).
        stream: Codec,
        /// The encoding names (`rtpmap`) the offer lists for that kind, in its order.
        offered: Vec<String>,
    },
    /// A track codec this egress does not send (video: H.264/H.265, audio: G.711A/U).
    #[error("{codec:?} cannot be sent over WebRTC by this egress")]
    UnsupportedTrack {
        /// The codec given in [`Tracks`].
        codec: Codec,
    },
    /// [`Tracks`] has neither video nor audio.
    #[error("the stream has no track to send")]
    NoTracks,
    /// The offer is not SDP str0m can read.
    #[error("the offer is not valid SDP: {0}")]
    BadOffer(#[source] str0m::error::SdpError),
    /// str0m refused the offer (no fingerprint, no ICE credentials, BUNDLE mismatch, …).
    #[error("the offer was refused: {0}")]
    Refused(#[source] str0m::RtcError),
    /// A configured address cannot be an ICE host candidate.
    #[error("the address {addr} is not a usable ICE candidate: {source}")]
    Candidate {
        /// [`EgressConfig::announce`] or one of the further candidates.
        addr: SocketAddr,
        /// What the ICE agent said.
        #[source]
        source: str0m::error::IceError,
    },
}
