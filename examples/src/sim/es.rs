//! Annex B elementary-stream clips (H.264 Annex B, H.265 Annex B) split into access units, one
//! picture each, for the simulator to stream in a loop.
//!
//! An access unit starts (H.264 §7.4.1.2.3, H.265 §7.4.2.4.4) at an access unit delimiter, at a
//! parameter set or prefix SEI (or another "first in an access unit" NAL unit type) that
//! follows a slice, or at a slice that begins a new picture: `first_mb_in_slice` = 0 (H.264),
//! `first_slice_segment_in_pic_flag` = 1 (H.265). Pictures made of several slices therefore
//! stay whole, and parameter sets ride with the picture after them, the key frame.
//!
//! ```
//! use media::Codec;
//! use gb28181_examples::sim::es::split_access_units;
//! // SPS, PPS, IDR slice (first_mb 0), then a P picture in two slices.
//! let es = [0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 0x88,
//!           0, 0, 0, 1, 0x41, 0x9a, 0, 0, 1, 0x41, 0x4a];
//! let aus = split_access_units(Codec::H264, &es);
//! assert_eq!(aus, [0..18, 18..29]);
//! ```

use std::ops::Range;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use media::codec::{ParameterSetCache, h264, h265, nal, scan_access_unit, sniff_video_codec};
use media::{AccessUnit, Codec};

/// Why a clip cannot be streamed.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Neither H.264 nor H.265 Annex B.
    #[error("{path}: not an H.264/H.265 Annex B stream (pass --codec)")]
    UnknownCodec {
        /// The file.
        path: String,
    },
    /// No key frame, so nothing a receiver could start decoding from.
    #[error("{path}: no key frame (IDR/IRAP) found")]
    NoKeyFrame {
        /// The file.
        path: String,
    },
}

/// A video clip as access units, ready to stream.
#[derive(Debug, Clone)]
pub struct Clip {
    /// H.264 or H.265.
    pub codec: Codec,
    /// The access units, from the first key frame on; `pts` is `None` (set when streamed).
    pub units: Vec<AccessUnit>,
    /// Picture width from the first SPS, when it parses.
    pub width: Option<u32>,
    /// Picture height from the first SPS.
    pub height: Option<u32>,
    /// Key frames that came without their parameter sets and got the cached ones.
    pub parameter_sets_added: usize,
    /// Access units dropped before the first key frame.
    pub skipped_leading: usize,
}

impl Clip {
    /// Reads and splits a file. The codec is `codec`, else guessed from the extension
    /// (`.h265`, `.hevc`, `.265` → H.265; `.h264`, `.264`, `.avc` → H.264), else sniffed.
    pub fn open(path: &Path, codec: Option<Codec>) -> Result<Clip, ClipError> {
        let name = path.display().to_string();
        let data = std::fs::read(path).map_err(|source| ClipError::Read {
            path: name.clone(),
            source,
        })?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let codec = codec
            .or(match ext.as_deref() {
                Some("h265" | "hevc" | "265") => Some(Codec::H265),
                Some("h264" | "264" | "avc") => Some(Codec::H264),
                _ => None,
            })
            .or_else(|| sniff_video_codec(&data))
            .ok_or(ClipError::UnknownCodec { path: name.clone() })?;
        Clip::from_bytes(codec, Bytes::from(data)).ok_or(ClipError::NoKeyFrame { path: name })
    }

    /// Splits an Annex B stream; `None` without a key frame. Access units before the first key
    /// frame are dropped (a loop must start where a decoder can), and a key frame without its
    /// parameter sets gets the last ones seen inserted (after a leading AUD).
    pub fn from_bytes(codec: Codec, data: Bytes) -> Option<Clip> {
        let mut units = Vec::new();
        let mut cache = ParameterSetCache::default();
        let mut scratch = BytesMut::new();
        let mut parameter_sets_added = 0;
        let mut skipped_leading = 0;
        for r in split_access_units(codec, &data) {
            let bytes = data.slice(r);
            let scan = scan_access_unit(codec, &bytes);
            cache.update(&bytes, &scan);
            if units.is_empty() && !scan.keyframe {
                skipped_leading += 1;
                continue;
            }
            let bytes = if scan.keyframe
                && !ParameterSetCache::scan_has_all(codec, &scan)
                && cache.is_complete(codec)
            {
                parameter_sets_added += 1;
                cache.prepend_to(&bytes, &scan, &mut scratch)
            } else {
                bytes
            };
            units.push(AccessUnit {
                stream_id: 0xE0,
                codec,
                pts: None,
                dts: None,
                keyframe: scan.keyframe,
                data: bytes,
            });
        }
        if units.is_empty() {
            return None;
        }
        let (width, height) = picture_size(codec, &cache);
        Some(Clip {
            codec,
            units,
            width,
            height,
            parameter_sets_added,
            skipped_leading,
        })
    }

    /// Number of key frames.
    pub fn keyframes(&self) -> usize {
        self.units.iter().filter(|u| u.keyframe).count()
    }

    /// Total bytes of one loop.
    pub fn len_bytes(&self) -> usize {
        self.units.iter().map(|u| u.data.len()).sum()
    }
}

fn picture_size(codec: Codec, cache: &ParameterSetCache) -> (Option<u32>, Option<u32>) {
    let Some(sps) = cache.sps.as_deref() else {
        return (None, None);
    };
    match codec {
        Codec::H265 => h265::Sps::parse(sps)
            .map(|s| (Some(s.width), Some(s.height)))
            .unwrap_or((None, None)),
        _ => h264::Sps::parse(sps)
            .map(|s| (Some(s.width), Some(s.height)))
            .unwrap_or((None, None)),
    }
}

/// Where a NAL unit stands in access-unit framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Always opens an access unit (AUD).
    Delimiter,
    /// Opens an access unit when it follows a slice (parameter sets, prefix SEI …).
    Leading,
    /// A slice; `first` when it begins a picture.
    Slice { first: bool },
    /// Belongs to the access unit it is in (suffix SEI, end of sequence, filler …).
    Trailing,
}

fn role(codec: Codec, nal: &[u8]) -> Role {
    let Some(&b0) = nal.first() else {
        return Role::Trailing;
    };
    match codec {
        Codec::H265 => {
            let t = h265::nal_type(b0);
            match t {
                h265::NAL_AUD => Role::Delimiter,
                // VPS, SPS, PPS, prefix SEI, reserved 41–44, unspecified 48–55 (§7.4.2.4.4).
                32..=34 | 39 | 41..=44 | 48..=55 => Role::Leading,
                // first_slice_segment_in_pic_flag: the first bit after the 2-byte header.
                0..=31 => Role::Slice {
                    first: nal.get(2).is_some_and(|b| b & 0x80 != 0),
                },
                _ => Role::Trailing,
            }
        }
        _ => {
            let t = h264::nal_type(b0);
            match t {
                h264::NAL_AUD => Role::Delimiter,
                // SEI, SPS, PPS, prefix NAL, subset SPS, reserved 16–18 (§7.4.1.2.3).
                6..=8 | 14..=18 => Role::Leading,
                // first_mb_in_slice is ue(v): 0 is the single bit '1'.
                1..=5 => Role::Slice {
                    first: nal.get(1).is_some_and(|b| b & 0x80 != 0),
                },
                _ => Role::Trailing,
            }
        }
    }
}

/// Byte ranges of the access units of an Annex B stream. Each range starts at the start code
/// of its first NAL unit (a 4-byte one included); the ranges are contiguous, so together they
/// cover the stream from its first start code to its end.
pub fn split_access_units(codec: Codec, data: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let Some((first, _)) = nal::find_start_code(data, 0) else {
        return out;
    };
    let mut au_start = first;
    let mut has_slice = false;
    let mut pos = first;
    while let Some((sc, len)) = nal::find_start_code(data, pos) {
        let nal_start = sc + len;
        let nal_end = nal::find_001(data, nal_start).unwrap_or(data.len());
        let unit = &data[nal_start..nal_end];
        let role = role(codec, unit);
        let boundary = match role {
            Role::Delimiter => sc > au_start,
            Role::Leading => has_slice,
            Role::Slice { first } => has_slice && first,
            Role::Trailing => false,
        };
        if boundary {
            out.push(au_start..sc);
            au_start = sc;
            has_slice = false;
        }
        if matches!(role, Role::Slice { .. }) {
            has_slice = true;
        }
        pos = nal_start;
    }
    if au_start < data.len() {
        out.push(au_start..data.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nals(units: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for u in units {
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(u);
        }
        v
    }

    #[test]
    fn h264_slices_of_one_picture_stay_together() {
        let es = nals(&[
            &[0x67, 0x4d],
            &[0x68, 0xee],
            &[0x06, 0x05],
            &[0x65, 0x88], // IDR, first_mb 0
            &[0x65, 0x4a], // IDR, second slice
            &[0x41, 0x9a], // P, new picture
            &[0x41, 0x20], // P, second slice
            &[0x0c, 0xff], // filler stays
            &[0x09, 0x10], // AUD opens
            &[0x41, 0x9a],
        ]);
        let aus = split_access_units(Codec::H264, &es);
        assert_eq!(aus, [0..30, 30..48, 48..60]);
        let clip = Clip::from_bytes(Codec::H264, Bytes::from(es)).unwrap();
        assert_eq!(clip.keyframes(), 1);
        assert!(clip.units[0].keyframe && !clip.units[1].keyframe);
    }

    #[test]
    fn h265_first_slice_flag_and_parameter_sets() {
        let es = nals(&[
            &[0x40, 0x01, 0x0c],
            &[0x42, 0x01, 0x01],
            &[0x44, 0x01, 0xc0],
            &[0x26, 0x01, 0xaf], // IDR_W_RADL, first slice segment
            &[0x26, 0x01, 0x20], // another segment of it
            &[0x50, 0x01, 0x00], // suffix SEI (40) stays
            &[0x02, 0x01, 0xd0], // TRAIL_R, new picture
        ]);
        let aus = split_access_units(Codec::H265, &es);
        assert_eq!(aus.len(), 2);
        assert_eq!(aus[1].start, 6 * 7);
    }

    #[test]
    fn leading_frames_dropped_and_parameter_sets_added() {
        let es = nals(&[
            &[0x41, 0x9a], // P before any key frame: dropped
            &[0x67, 0x4d],
            &[0x68, 0xee],
            &[0x65, 0x88],
            &[0x41, 0x9a],
            &[0x09, 0x10],
            &[0x65, 0x88], // IDR without SPS/PPS
        ]);
        let clip = Clip::from_bytes(Codec::H264, Bytes::from(es)).unwrap();
        assert_eq!(clip.skipped_leading, 1);
        assert_eq!(clip.parameter_sets_added, 1);
        assert_eq!(clip.units.len(), 3);
        assert_eq!(
            &clip.units[2].data[..],
            &nals(&[&[0x09, 0x10], &[0x67, 0x4d], &[0x68, 0xee], &[0x65, 0x88]])[..]
        );
    }

    #[test]
    fn garbage_gives_no_clip() {
        assert!(Clip::from_bytes(Codec::H264, Bytes::from_static(&[1, 2, 3])).is_none());
        assert!(Clip::from_bytes(Codec::H264, Bytes::from(nals(&[&[0x41, 0x9a]]))).is_none());
        assert!(split_access_units(Codec::H265, &[0, 0, 1]).len() <= 1);
    }
}
