//! Codec helpers: Annex B NAL units, H.264/H.265 parameter sets and key frames, AAC ADTS and
//! G.711 companding.
//!
//! - [`nal`]: zero-copy Annex B splitting (H.264/H.265 Annex B).
//! - [`bits`]: exp-Golomb bit reader and emulation-prevention removal.
//! - [`h264`], [`h265`]: NAL unit types and SPS parsing.
//! - [`aac`]: ADTS headers (ISO/IEC 13818-7 §6.2).
//! - [`g711`]: A-law and µ-law (ITU-T G.711).
//!
//! [`scan_access_unit`], [`sniff_video_codec`] and [`ParameterSetCache`] are what the PS
//! demuxer uses to flag key frames and keep SPS/PPS/VPS with them.

pub mod aac;
pub mod bits;
pub mod g711;
pub mod h264;
pub mod h265;
pub mod nal;

use crate::Codec;
use bytes::{BufMut, Bytes, BytesMut};
use std::ops::Range;

/// What the NAL units in front of the first slice of a video access unit say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuScan {
    /// The first slice is an H.264 IDR or an H.265 IRAP picture.
    pub keyframe: bool,
    /// A slice (VCL NAL unit) was found.
    pub has_slice: bool,
    /// Range of the last VPS (H.265) before the first slice.
    pub vps: Option<Range<usize>>,
    /// Range of the last SPS before the first slice.
    pub sps: Option<Range<usize>>,
    /// Range of the last PPS before the first slice.
    pub pps: Option<Range<usize>>,
    /// Where parameter sets may be inserted: after a leading access unit delimiter, else 0.
    pub insert_at: usize,
}

/// Walks the NAL units of an Annex B access unit up to its first slice only, so that the cost
/// does not depend on the size of the picture (H.264 §7.4.1.2.3, H.265 §7.4.2.4.4 order).
///
/// ```
/// use media::{Codec, codec::scan_access_unit};
/// let au = [0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0x88, 0x84];
/// let scan = scan_access_unit(Codec::H264, &au);
/// assert!(scan.keyframe);
/// assert_eq!(scan.sps, Some(4..6));
/// ```
pub fn scan_access_unit(codec: Codec, data: &[u8]) -> AuScan {
    let mut scan = AuScan::default();
    let Some(first) = nal::find_001(data, 0) else {
        return scan;
    };
    let mut start = first + 3;
    let mut index = 0;
    while start < data.len() {
        let header = data[start];
        let (vcl, key, kind) = match codec {
            Codec::H265 => {
                let t = h265::nal_type(header);
                let kind = match t {
                    h265::NAL_VPS => 1,
                    h265::NAL_SPS => 2,
                    h265::NAL_PPS => 3,
                    h265::NAL_AUD => 4,
                    _ => 0,
                };
                (h265::is_vcl(t), h265::is_keyframe_nal(t), kind)
            }
            _ => {
                let t = h264::nal_type(header);
                let kind = match t {
                    h264::NAL_SPS => 2,
                    h264::NAL_PPS => 3,
                    h264::NAL_AUD => 4,
                    _ => 0,
                };
                (h264::is_vcl(t), h264::is_keyframe_nal(t), kind)
            }
        };
        if vcl {
            scan.has_slice = true;
            scan.keyframe = key;
            return scan;
        }
        let (mut end, next) = match nal::find_001(data, start) {
            Some(i) => (i, i + 3),
            None => (data.len(), data.len()),
        };
        while end > start && data[end - 1] == 0 {
            end -= 1;
        }
        match kind {
            1 => scan.vps = Some(start..end),
            2 => scan.sps = Some(start..end),
            3 => scan.pps = Some(start..end),
            4 if index == 0 => scan.insert_at = end,
            _ => {}
        }
        index += 1;
        start = next;
    }
    scan
}

/// Guesses H.264 or H.265 from the NAL unit headers at the start of an access unit, for a
/// stream no PSM describes (PROTOCOL-NOTES §9 "Missing PSM"). Each header is checked against
/// both syntaxes: H.264 `nal_ref_idc` rules (§7.4.1) and H.265 `nuh_layer_id` = 0,
/// `nuh_temporal_id_plus1` > 0 (§7.4.2.2). `None` when neither fits (not Annex B video).
pub fn sniff_video_codec(data: &[u8]) -> Option<Codec> {
    let mut h264_ok = true;
    let mut h265_ok = true;
    let mut seen = 0;
    let mut pos = 0;
    while seen < 8 {
        let Some(sc) = nal::find_001(data, pos) else {
            break;
        };
        let Some(&b0) = data.get(sc + 3) else {
            break;
        };
        let b1 = data.get(sc + 4).copied().unwrap_or(1);
        seen += 1;
        h264_ok &= plausible_h264(b0);
        h265_ok &= plausible_h265(b0, b1);
        if !h264_ok && !h265_ok {
            return None;
        }
        if h264_ok != h265_ok {
            break;
        }
        pos = sc + 3;
        if pos > 4096 {
            break;
        }
    }
    match (seen, h264_ok, h265_ok) {
        (0, _, _) => None,
        (_, true, _) => Some(Codec::H264),
        (_, false, true) => Some(Codec::H265),
        _ => None,
    }
}

fn plausible_h264(b0: u8) -> bool {
    if b0 & 0x80 != 0 {
        return false;
    }
    let ref_idc = (b0 >> 5) & 3;
    match h264::nal_type(b0) {
        1 => true,
        5 | 7 | 8 => ref_idc != 0,
        6 | 9..=12 => ref_idc == 0,
        _ => false,
    }
}

fn plausible_h265(b0: u8, b1: u8) -> bool {
    let layer_id = ((b0 & 1) << 5) | (b1 >> 3);
    let t = h265::nal_type(b0);
    b0 & 0x80 == 0 && layer_id == 0 && b1 & 7 != 0 && matches!(t, 0..=9 | 16..=21 | 32..=40)
}

/// The latest VPS/SPS/PPS of a video stream, kept so that a key frame can always be decoded
/// on its own (GB/T 28181 cameras often send them only with some key frames).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParameterSetCache {
    /// Video parameter set (H.265 only), without start code.
    pub vps: Option<Bytes>,
    /// Sequence parameter set, without start code.
    pub sps: Option<Bytes>,
    /// Picture parameter set, without start code.
    pub pps: Option<Bytes>,
}

impl ParameterSetCache {
    /// Records the parameter sets found in `data` by `scan`. Copies a set only when it differs
    /// from the cached one (so the cache never pins a whole frame buffer). Returns true when
    /// anything changed.
    pub fn update(&mut self, data: &[u8], scan: &AuScan) -> bool {
        let mut changed = false;
        for (slot, range) in [
            (&mut self.vps, &scan.vps),
            (&mut self.sps, &scan.sps),
            (&mut self.pps, &scan.pps),
        ] {
            if let Some(nal) = range.as_ref().and_then(|r| data.get(r.clone()))
                && slot.as_deref() != Some(nal)
            {
                *slot = Some(Bytes::copy_from_slice(nal));
                changed = true;
            }
        }
        changed
    }

    /// True when the sets a key frame of `codec` needs are all cached.
    pub fn is_complete(&self, codec: Codec) -> bool {
        self.sps.is_some() && self.pps.is_some() && (codec != Codec::H265 || self.vps.is_some())
    }

    /// True when `scan` found every set `codec` needs.
    pub fn scan_has_all(codec: Codec, scan: &AuScan) -> bool {
        scan.sps.is_some() && scan.pps.is_some() && (codec != Codec::H265 || scan.vps.is_some())
    }

    /// Writes the cached sets, each behind a 4-byte start code.
    pub fn write_annex_b(&self, out: &mut BytesMut) {
        for nal in [&self.vps, &self.sps, &self.pps].into_iter().flatten() {
            out.put_slice(&[0, 0, 0, 1]);
            out.put_slice(nal);
        }
    }

    /// `data` with the cached sets inserted at `scan.insert_at` (after a leading AUD).
    pub fn prepend_to(&self, data: &[u8], scan: &AuScan, out: &mut BytesMut) -> Bytes {
        let at = scan.insert_at.min(data.len());
        out.reserve(data.len() + 64 + self.sps.as_ref().map_or(0, |s| s.len()));
        out.put_slice(&data[..at]);
        self.write_annex_b(out);
        out.put_slice(&data[at..]);
        out.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_distinguishes() {
        let h264 = [
            0, 0, 0, 1, 0x67, 0x4d, 0, 0, 0, 1, 0x68, 0xee, 0, 0, 1, 0x65, 0x88,
        ];
        assert_eq!(sniff_video_codec(&h264), Some(Codec::H264));
        let h265 = [
            0, 0, 0, 1, 0x40, 0x01, 0x0c, 0, 0, 0, 1, 0x42, 0x01, 0x01, 0, 0, 1, 0x26, 0x01,
        ];
        assert_eq!(sniff_video_codec(&h265), Some(Codec::H265));
        assert_eq!(
            sniff_video_codec(&[0, 0, 1, 0x02, 0x01, 0xaf]),
            Some(Codec::H265)
        );
        assert_eq!(sniff_video_codec(&[0, 0, 1, 0x41, 0x9a]), Some(Codec::H264));
        assert_eq!(sniff_video_codec(&[0, 0, 1, 0xb3, 0x14]), None);
        assert_eq!(sniff_video_codec(&[1, 2, 3]), None);
    }

    #[test]
    fn scan_stops_at_first_slice_and_finds_aud() {
        let au = [
            0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x41, 0x9a, 0, 0, 1, 0x67,
        ];
        let scan = scan_access_unit(Codec::H264, &au);
        assert!(!scan.keyframe && scan.has_slice);
        assert_eq!(scan.insert_at, 6);
        assert_eq!(scan.sps, None);
    }

    #[test]
    fn cache_prepends_after_aud() {
        let key = [
            0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0x88,
        ];
        let mut cache = ParameterSetCache::default();
        assert!(cache.update(&key, &scan_access_unit(Codec::H264, &key)));
        assert!(!cache.update(&key, &scan_access_unit(Codec::H264, &key)));
        let bare = [0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x65, 0x88];
        let scan = scan_access_unit(Codec::H264, &bare);
        let out = cache.prepend_to(&bare, &scan, &mut BytesMut::new());
        assert_eq!(
            &out[..],
            &[
                0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 1,
                0x65, 0x88
            ]
        );
    }
}
