//! Live view: media sessions with devices (INVITE, RTP/PS ingest) and WebRTC egress to
//! browsers over WHEP.

pub mod hub;
pub mod ingest;
pub mod pools;
pub mod webrtc;
pub mod whep;

use gb28181::sdp::MediaTransport;
use tokio::sync::mpsc;

/// What the HTTP handlers need of the live side.
#[derive(Clone)]
pub struct LiveState {
    /// The stream manager.
    pub hub: hub::Hub,
    /// The WebRTC task.
    pub egress: mpsc::UnboundedSender<webrtc::EgressCmd>,
    /// Transport when the request names none.
    pub default_transport: MediaTransport,
}
