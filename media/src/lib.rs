//! Media for GB/T 28181: what a camera sends (MPEG-PS inside RTP over UDP or TCP) turned into
//! clean, timestamped access units, and back.
//!
//! The crate is a library first and knows nothing about SIP: an integrator can feed it UDP
//! datagrams, TCP reads or a file.
//!
//! - [`arena`]: copies of frames and packets in reused blocks (no allocation per frame).
//! - [`rtp`]: RTP packets (RFC 3550), parsed zero-copy over [`bytes::Bytes`], and built.
//! - [`tcp`]: RTP over TCP framing (RFC 4571 length prefix, `$` interleaved form).
//! - [`reorder`]: sequence-number reordering with a bounded wait, loss accounting and frame
//!   assembly by timestamp and marker bit.
//! - [`stats`]: per-stream statistics (loss, RFC 3550 jitter, bitrate, fps).
//! - [`ps`]: MPEG Program Stream demux and mux as GB/T 28181 cameras use it (Annex C).
//! - [`receive`]: the whole receive pipeline of one stream (source and SSRC checks, reorder,
//!   assembly, demux, hold-until-key-frame after loss, diagnosis) as one sans-IO object.
//! - [`packetize`]: PS frames into RTP packets (PT 96, 90 kHz), device side.
//! - [`codec`]: H.264/H.265 NAL units and parameter sets, G.711, AAC ADTS.

#![warn(missing_docs)]

pub mod arena;
pub mod codec;
pub mod frame;
pub mod packetize;
pub mod ps;
pub mod receive;
pub mod reorder;
pub mod rtp;
pub mod stats;
pub mod tcp;
#[cfg(feature = "webrtc")]
pub mod webrtc;

pub use frame::{AccessUnit, Codec};
