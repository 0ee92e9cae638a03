//! Live view: media sessions with devices (INVITE, RTP/PS ingest) and WebRTC egress to
//! browsers over WHEP.

pub mod core;
pub mod hub;
pub mod ingest;
pub mod pools;
pub mod webrtc;
pub mod whep;

use gb28181::sdp::MediaTransport;

/// What the HTTP handlers need of the live side.
#[derive(Clone)]
pub struct LiveState {
    /// The stream manager.
    pub hub: hub::Hub,
    /// Transport when the request names none.
    pub default_transport: MediaTransport,
}
