//! Real-device deviations from ISO/IEC 13818-1 that the demuxer tolerates (PROTOCOL-NOTES §9).

/// A named deviation from the standard met in the stream. Each is reported once per demuxer
/// (one camera session) as a [`super::DemuxEvent::Quirk`]; [`QuirkCounts`] counts every
/// occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Quirk {
    /// A stream was demuxed without any program stream map: video codec sniffed from the NAL
    /// headers, audio from the payload and stream id (ffmpeg `-f vob`, some NVR re-muxers).
    NoPsm,
    /// PES packets on a stream id the program stream map does not list.
    StreamNotInPsm,
    /// PSM lengths do not add up: `program_stream_info_length` or `elementary_stream_map_length`
    /// disagree with the entries (Tiandy; the GB28181 test tool's `Audio_G711_PS2.mpg` says 8
    /// where its entries take 14). The entries are read up to the CRC instead.
    PsmDescriptorLengthMismatch,
    /// The PSM CRC_32 (§2.5.4.2, Annex A) is wrong; the map is used anyway.
    PsmCrcMismatch,
    /// A video PES with `PES_packet_length` 0: its payload runs to the next pack start code.
    PesLengthZero,
    /// A private_stream_1/2 (0xBD/0xBF) PES skipped by its length (Hikvision 0xBD).
    PrivateStreamSkipped,
    /// A PES on a stream id that is neither audio nor video (0xF0–0xFF) skipped by its length.
    OtherStreamSkipped,
    /// AAC in ADTS framing inside a stream the PSM labels G.711; relabelled as AAC.
    AacInG711Stream,
    /// A stream changed codec mid-stream (new PSM stream type or different sniffed codec).
    CodecChanged,
    /// A PES header in MPEG-1 syntax (ISO/IEC 11172-1 §2.4.3.2) inside an MPEG-2 stream.
    Mpeg1PesHeader,
    /// An MPEG-1 pack header (ISO/IEC 11172-1 §2.4.3.2).
    Mpeg1PackHeader,
    /// `pack_stuffing_byte`s that are not 0xFF (Hikvision/Tiandy write counters such as
    /// `ff ff 00 00 05 db`); skipped by `pack_stuffing_length` all the same.
    PackStuffing,
    /// A pack start code with no pack header fields, straight followed by the next start code
    /// (Hikvision H.265: `00 00 01 BA 00 00 01 E0`).
    BarePackHeader,
    /// Zero bytes between packets where a start code was expected.
    ZeroStuffing,
    /// A key frame without SPS/PPS(/VPS) before any were cached: handed on as it is.
    KeyframeWithoutParameterSets,
    /// A frame grew past the configured maximum; it was dropped.
    FrameTooLarge,
    /// Bytes that are no valid PS syntax were skipped up to the next pack header.
    Resync,
}

impl Quirk {
    /// Every quirk, in declaration order.
    pub const ALL: [Quirk; 17] = [
        Quirk::NoPsm,
        Quirk::StreamNotInPsm,
        Quirk::PsmDescriptorLengthMismatch,
        Quirk::PsmCrcMismatch,
        Quirk::PesLengthZero,
        Quirk::PrivateStreamSkipped,
        Quirk::OtherStreamSkipped,
        Quirk::AacInG711Stream,
        Quirk::CodecChanged,
        Quirk::Mpeg1PesHeader,
        Quirk::Mpeg1PackHeader,
        Quirk::PackStuffing,
        Quirk::BarePackHeader,
        Quirk::ZeroStuffing,
        Quirk::KeyframeWithoutParameterSets,
        Quirk::FrameTooLarge,
        Quirk::Resync,
    ];

    /// A stable snake_case name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Quirk::NoPsm => "no_psm",
            Quirk::StreamNotInPsm => "stream_not_in_psm",
            Quirk::PsmDescriptorLengthMismatch => "psm_descriptor_length_mismatch",
            Quirk::PsmCrcMismatch => "psm_crc_mismatch",
            Quirk::PesLengthZero => "pes_length_zero",
            Quirk::PrivateStreamSkipped => "private_stream_skipped",
            Quirk::OtherStreamSkipped => "other_stream_skipped",
            Quirk::AacInG711Stream => "aac_in_g711_stream",
            Quirk::CodecChanged => "codec_changed",
            Quirk::Mpeg1PesHeader => "mpeg1_pes_header",
            Quirk::Mpeg1PackHeader => "mpeg1_pack_header",
            Quirk::PackStuffing => "pack_stuffing",
            Quirk::BarePackHeader => "bare_pack_header",
            Quirk::ZeroStuffing => "zero_stuffing",
            Quirk::KeyframeWithoutParameterSets => "keyframe_without_parameter_sets",
            Quirk::FrameTooLarge => "frame_too_large",
            Quirk::Resync => "resync",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Quirk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How many times each [`Quirk`] occurred.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuirkCounts {
    counts: [u64; Quirk::ALL.len()],
}

impl QuirkCounts {
    /// Occurrences of `q`.
    pub fn get(&self, q: Quirk) -> u64 {
        self.counts[q.index()]
    }

    /// Adds one occurrence; returns true on the first.
    pub(crate) fn add(&mut self, q: Quirk) -> bool {
        let c = &mut self.counts[q.index()];
        *c += 1;
        *c == 1
    }

    /// The quirks met, with their counts.
    pub fn iter(&self) -> impl Iterator<Item = (Quirk, u64)> + '_ {
        Quirk::ALL
            .iter()
            .map(|&q| (q, self.get(q)))
            .filter(|&(_, n)| n > 0)
    }
}
