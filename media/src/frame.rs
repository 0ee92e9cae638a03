//! Access units: the unit of media that flows between the demuxer, the muxer and egress.

use bytes::Bytes;

/// A codec as GB/T 28181 names it (PSM stream types, Annex C / PROTOCOL-NOTES §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// MPEG-4 Part 2 video (stream type 0x10).
    Mpeg4,
    /// H.264 / AVC, Annex B byte stream (stream type 0x1B).
    H264,
    /// H.265 / HEVC, Annex B byte stream (stream type 0x24).
    H265,
    /// SVAC video (stream type 0x80).
    SvacVideo,
    /// G.711 A-law (stream type 0x90).
    G711A,
    /// G.711 µ-law (stream type 0x91).
    G711U,
    /// G.722.1 (stream type 0x92).
    G7221,
    /// G.723.1 (stream type 0x93).
    G7231,
    /// G.729 (stream type 0x99).
    G729,
    /// SVAC audio (stream type 0x9B).
    SvacAudio,
    /// AAC in ADTS framing (stream type 0x0F).
    Aac,
    /// A stream type this crate does not know; the PSM value is kept.
    Unknown(u8),
}

impl Codec {
    /// The PSM `stream_type` byte for this codec.
    pub fn stream_type(self) -> u8 {
        match self {
            Codec::Mpeg4 => 0x10,
            Codec::H264 => 0x1B,
            Codec::H265 => 0x24,
            Codec::SvacVideo => 0x80,
            Codec::G711A => 0x90,
            Codec::G711U => 0x91,
            Codec::G7221 => 0x92,
            Codec::G7231 => 0x93,
            Codec::G729 => 0x99,
            Codec::SvacAudio => 0x9B,
            Codec::Aac => 0x0F,
            Codec::Unknown(t) => t,
        }
    }

    /// The codec for a PSM `stream_type` byte.
    pub fn from_stream_type(t: u8) -> Codec {
        match t {
            0x10 => Codec::Mpeg4,
            0x1B => Codec::H264,
            0x24 => Codec::H265,
            0x80 => Codec::SvacVideo,
            0x90 => Codec::G711A,
            0x91 => Codec::G711U,
            0x92 => Codec::G7221,
            0x93 => Codec::G7231,
            0x99 => Codec::G729,
            0x9B => Codec::SvacAudio,
            0x0F => Codec::Aac,
            other => Codec::Unknown(other),
        }
    }

    /// True for video codecs.
    pub fn is_video(self) -> bool {
        matches!(
            self,
            Codec::Mpeg4 | Codec::H264 | Codec::H265 | Codec::SvacVideo
        )
    }

    /// True for audio codecs.
    pub fn is_audio(self) -> bool {
        matches!(
            self,
            Codec::G711A
                | Codec::G711U
                | Codec::G7221
                | Codec::G7231
                | Codec::G729
                | Codec::SvacAudio
                | Codec::Aac
        )
    }

    /// A short lower-case name (`h264`, `pcma`, `aac`, …) for logs, reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Mpeg4 => "mpeg4",
            Codec::H264 => "h264",
            Codec::H265 => "h265",
            Codec::SvacVideo => "svac",
            Codec::G711A => "pcma",
            Codec::G711U => "pcmu",
            Codec::G7221 => "g722.1",
            Codec::G7231 => "g723.1",
            Codec::G729 => "g729",
            Codec::SvacAudio => "svac-audio",
            Codec::Aac => "aac",
            Codec::Unknown(_) => "unknown",
        }
    }
}

/// One access unit: a whole video frame (all NAL units of one picture, Annex B, with start
/// codes) or one audio frame, as carried by PES packets of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// PES stream id (0xE0–0xEF video, 0xC0–0xDF audio).
    pub stream_id: u8,
    /// The codec, from the PSM or sniffed from the payload.
    pub codec: Codec,
    /// Presentation time stamp, 90 kHz, 33 bits.
    pub pts: Option<u64>,
    /// Decoding time stamp, 90 kHz, 33 bits; `None` when equal to the PTS.
    pub dts: Option<u64>,
    /// An H.264 IDR / H.265 IRAP picture (video), always true for audio.
    pub keyframe: bool,
    /// The payload bytes; a slice of the input wherever the frame was contiguous.
    pub data: Bytes,
}
