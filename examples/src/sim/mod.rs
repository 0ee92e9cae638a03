//! The camera side of live view for `gb28181-sim` (GB/T 28181-2022 §9.2, Annex C): answer a
//! platform's INVITE and stream PS over RTP in every transport mode.
//!
//! - [`es`]: an H.264/H.265 Annex B clip split into access units, one picture each.
//! - [`source`]: the clip looped in real time (and a G.711 tone), muxed into PS and packetized
//!   into RTP; sans-IO.
//! - [`offer`]: the platform's `s=Play` offer read, the camera's answer written.
//! - [`stream`]: one stream's tokio task: UDP, TCP connect (with retries) or TCP accept.
//! - [`calls`]: INVITE/ACK/BYE handling in the SIP loop, streams started and stopped.
//! - [`stats`]: counters for the report.

pub mod calls;
pub mod es;
pub mod offer;
pub mod source;
pub mod stats;
pub mod stream;
