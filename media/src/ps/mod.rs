//! MPEG-2 Program Stream as GB/T 28181 cameras send it (GB/T 28181-2022 Annex C,
//! ISO/IEC 13818-1 §2.5): a streaming, zero-copy demuxer and a muxer.
//!
//! The stream is a sequence of packs (§2.5.3.3): a pack header, on key frames a system header
//! (§2.5.3.5) and a program stream map (§2.5.4), then PES packets (§2.4.3.6). One video frame is
//! one pack in GB/T 28181 practice; frames over 64 KiB span several PES packets.
//!
//! - [`PsDemuxer`]: bytes in any chunking → [`DemuxEvent`]s (access units, stream configuration,
//!   real-device quirks).
//! - [`PsMuxer`]: access units → one PS frame each, as a camera sends it.
//! - [`pack`], [`system_header`], [`psm`], [`pes`]: the syntax elements, parse and write.
//!
//! ## How the demuxer cuts frames
//!
//! A video access unit is the payload of the PES packets of one stream between frame
//! boundaries: a PES whose PTS differs from the open frame's, or the first PES after a pack
//! header (GB/T 28181: one frame per pack), or [`PsDemuxer::end_of_frame`] (the RTP marker
//! bit). PES without PTS continue the frame. Muxers that split frames across packs (ffmpeg
//! `-f vob`, GStreamer `mpegpsmux`) are recognised by a continuation PES right after a pack
//! header; for them only the PTS cuts. An audio PES is one access unit (an AAC PES holding
//! several ADTS frames gives one unit per frame).
//!
//! Key frames (H.264 IDR, H.265 IRAP) always carry their parameter sets: the last SPS/PPS/VPS
//! seen are inserted when a key frame comes without them. Data loss
//! ([`PsDemuxer::discontinuity`]) and corruption drop the frames in progress and resume at the
//! next pack header; a damaged frame is never handed on as whole. Every element is skipped by
//! its declared length (pack stuffing, private streams, padding); only resynchronisation and
//! `PES_packet_length` 0 look for start codes.
//!
//! ```
//! use bytes::Bytes;
//! use media::{AccessUnit, Codec, ps::{DemuxEvent, PsDemuxer, PsMuxer}};
//!
//! let au = AccessUnit {
//!     stream_id: 0xE0, codec: Codec::H264, pts: Some(3600), dts: None, keyframe: true,
//!     data: Bytes::from_static(&[0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 0x88]),
//! };
//! let mut mux = PsMuxer::new();
//! let ps = mux.mux(&au).unwrap();
//! let mut demux = PsDemuxer::new();
//! demux.push(ps);
//! demux.finish();
//! let mut units = Vec::new();
//! while let Some(ev) = demux.poll() {
//!     if let DemuxEvent::AccessUnit(a) = ev { units.push(a); }
//! }
//! assert_eq!(units, [au]);
//! ```

mod assemble;
mod demux;
mod input;
mod mux;
pub mod pack;
pub mod pes;
pub mod psm;
mod quirk;
pub mod system_header;

pub use demux::{DemuxConfig, DemuxEvent, DemuxStats, PsDemuxer, StreamConfig};
pub use mux::{MuxConfig, MuxError, PsMuxer};
pub use quirk::{Quirk, QuirkCounts};

/// `00 00 01 BA`: pack_start_code (§2.5.3.3).
pub const PACK_START: u8 = 0xBA;
/// `00 00 01 BB`: system_header_start_code (§2.5.3.5).
pub const SYSTEM_HEADER: u8 = 0xBB;
/// `00 00 01 BC`: program_stream_map (§2.5.4).
pub const PROGRAM_STREAM_MAP: u8 = 0xBC;
/// `00 00 01 BD`: private_stream_1 (Hikvision puts its own data here).
pub const PRIVATE_STREAM_1: u8 = 0xBD;
/// `00 00 01 BE`: padding_stream.
pub const PADDING_STREAM: u8 = 0xBE;
/// `00 00 01 BF`: private_stream_2.
pub const PRIVATE_STREAM_2: u8 = 0xBF;
/// `00 00 01 B9`: MPEG_program_end_code.
pub const PROGRAM_END: u8 = 0xB9;

/// Why a syntax element could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// More bytes are needed: at least `needed` in total from the start code.
    #[error("incomplete: {needed} bytes needed")]
    Incomplete {
        /// Bytes needed from the start code on.
        needed: usize,
    },
    /// The bytes break a rule of the syntax.
    #[error("invalid {what} at byte {offset}")]
    Invalid {
        /// The syntax element or rule.
        what: &'static str,
        /// Offset from the start code.
        offset: usize,
    },
}

pub(crate) fn need(data: &[u8], n: usize) -> Result<(), Error> {
    if data.len() < n {
        Err(Error::Incomplete { needed: n })
    } else {
        Ok(())
    }
}
