//! RTP payloads of one access unit, built once per stream and shared by every viewer.
//!
//! - H.264: RFC 6184 non-interleaved mode (`packetization-mode=1`): single NAL unit packets
//!   (§5.6), STAP-A for runs of small NAL units such as SPS+PPS (§5.7.1), FU-A for NAL units
//!   larger than a packet (§5.8).
//! - H.265: RFC 7798 without DONL: single NAL unit packets (§4.4.1), aggregation packets
//!   (§4.4.2), fragmentation units (§4.4.3).
//!
//! A NAL unit is fragmented into pieces of equal size (the last one may be shorter), so the
//! datagrams of one frame are the same length and go out as one UDP GSO run. The marker bit
//! is set on the last packet of the access unit (RFC 6184 §5.1, RFC 7798 §4.1).

use crate::codec::nal::NalUnits;
use std::sync::Arc;

/// One RTP payload (no RTP header) and its marker bit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPayload {
    /// The payload bytes, shared between the viewers.
    pub data: Arc<[u8]>,
    /// RTP marker: last packet of the access unit.
    pub marker: bool,
}

/// Smallest payload size the packetizers accept; smaller values are raised to it.
pub const MIN_PAYLOAD: usize = 64;

const STAP_A: u8 = 24;
const FU_A: u8 = 28;
const H265_AP: u8 = 48;
const H265_FU: u8 = 49;

/// Appends the RTP payloads of an H.264 Annex B access unit to `out` (RFC 6184).
///
/// ```
/// use media::webrtc::packetize_h264;
/// let mut au = vec![0, 0, 0, 1, 0x67, 0x64, 0, 0x1f, 0, 0, 0, 1, 0x68, 0xee];
/// au.extend([0, 0, 1, 0x65]);
/// au.extend(std::iter::repeat_n(0x88, 3000));
/// let mut out = Vec::new();
/// packetize_h264(&au, 1200, &mut out);
/// assert_eq!(out[0].data[0] & 0x1f, 24); // STAP-A with SPS and PPS
/// assert_eq!(out[1].data[0] & 0x1f, 28); // FU-A
/// assert_eq!(out.len(), 4);
/// assert!(out[3].marker && !out[2].marker);
/// ```
pub fn packetize_h264(au: &[u8], max_payload: usize, out: &mut Vec<RtpPayload>) {
    packetize(au, max_payload, Syntax::H264, out);
}

/// Appends the RTP payloads of an H.265 Annex B access unit to `out` (RFC 7798).
pub fn packetize_h265(au: &[u8], max_payload: usize, out: &mut Vec<RtpPayload>) {
    packetize(au, max_payload, Syntax::H265, out);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Syntax {
    H264,
    H265,
}

impl Syntax {
    /// NAL units a browser decoder does not use: SEI, access unit delimiters, filler
    /// (H.264 types 6, 9, 12; H.265 types 35, 38, 39, 40). Leaving them out keeps a frame's
    /// packets the same size (one GSO run per viewer) and saves bandwidth.
    fn droppable(self, nal: &[u8]) -> bool {
        match self {
            Syntax::H264 => matches!(nal[0] & 0x1f, 6 | 9 | 12),
            Syntax::H265 => matches!((nal[0] >> 1) & 0x3f, 35 | 38 | 39 | 40),
        }
    }

    fn header_len(self) -> usize {
        match self {
            Syntax::H264 => 1,
            Syntax::H265 => 2,
        }
    }
}

fn packetize(au: &[u8], max_payload: usize, syntax: Syntax, out: &mut Vec<RtpPayload>) {
    let max = max_payload.max(MIN_PAYLOAD);
    let first = out.len();
    let mut scratch = Vec::with_capacity(max);
    let mut group: Vec<&[u8]> = Vec::new();
    let mut group_len = syntax.header_len();
    for nal in NalUnits::new(au) {
        if nal.len() < syntax.header_len() || syntax.droppable(nal) {
            continue;
        }
        if syntax.header_len() + 2 + nal.len() <= max {
            if group_len + 2 + nal.len() > max {
                flush(&mut group, syntax, &mut scratch, out);
                group_len = syntax.header_len();
            }
            group.push(nal);
            group_len += 2 + nal.len();
            continue;
        }
        flush(&mut group, syntax, &mut scratch, out);
        group_len = syntax.header_len();
        if nal.len() <= max {
            push(out, nal);
        } else {
            fragment(nal, max, syntax, &mut scratch, out);
        }
    }
    flush(&mut group, syntax, &mut scratch, out);
    if out.len() > first
        && let Some(last) = out.last_mut()
    {
        last.marker = true;
    }
}

fn push(out: &mut Vec<RtpPayload>, data: &[u8]) {
    out.push(RtpPayload {
        data: Arc::from(data),
        marker: false,
    });
}

/// One NAL unit as is, or several in a STAP-A (RFC 6184 §5.7.1) / AP (RFC 7798 §4.4.2).
fn flush(group: &mut Vec<&[u8]>, syntax: Syntax, scratch: &mut Vec<u8>, out: &mut Vec<RtpPayload>) {
    match group.len() {
        0 => return,
        1 => push(out, group[0]),
        _ => {
            scratch.clear();
            match syntax {
                Syntax::H264 => {
                    // F is the OR of the aggregated F bits, NRI their maximum (§5.7.1).
                    let f = group.iter().fold(0, |f, n| f | (n[0] & 0x80));
                    let nri = group.iter().map(|n| n[0] & 0x60).max().unwrap_or(0);
                    scratch.push(f | nri | STAP_A);
                }
                Syntax::H265 => {
                    // F OR-ed, LayerId and TID the lowest of the aggregated units (§4.4.2).
                    let f = group.iter().fold(0, |f, n| f | (n[0] & 0x80));
                    let layer = group
                        .iter()
                        .map(|n| ((n[0] & 1) << 5) | (n[1] >> 3))
                        .min()
                        .unwrap_or(0);
                    let tid = group.iter().map(|n| n[1] & 7).min().unwrap_or(1);
                    scratch.push(f | (H265_AP << 1) | (layer >> 5));
                    scratch.push(((layer & 0x1f) << 3) | tid);
                }
            }
            for nal in group.iter() {
                // A grouped NAL unit is shorter than the payload, so its size fits 16 bits.
                scratch.extend_from_slice(&(nal.len() as u16).to_be_bytes());
                scratch.extend_from_slice(nal);
            }
            push(out, scratch);
        }
    }
    group.clear();
}

/// FU-A (RFC 6184 §5.8) or H.265 FU (RFC 7798 §4.4.3) fragments of equal size.
fn fragment(
    nal: &[u8],
    max: usize,
    syntax: Syntax,
    scratch: &mut Vec<u8>,
    out: &mut Vec<RtpPayload>,
) {
    let (prefix, body): (&[u8], &[u8]) = match syntax {
        Syntax::H264 => (&[(nal[0] & 0xe0) | FU_A, nal[0] & 0x1f], &nal[1..]),
        Syntax::H265 => (
            &[
                (nal[0] & 0x81) | (H265_FU << 1),
                nal[1],
                (nal[0] >> 1) & 0x3f,
            ],
            &nal[2..],
        ),
    };
    let room = max - prefix.len();
    let count = body.len().div_ceil(room);
    let size = body.len().div_ceil(count);
    let fu_header = prefix.len() - 1;
    for (i, piece) in body.chunks(size).enumerate() {
        scratch.clear();
        scratch.extend_from_slice(prefix);
        if i == 0 {
            scratch[fu_header] |= 0x80;
        }
        if i + 1 == count {
            scratch[fu_header] |= 0x40;
        }
        scratch.extend_from_slice(piece);
        push(out, scratch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn au(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(n);
        }
        v
    }

    /// RFC 6184 depacketization, the inverse of `packetize_h264`.
    fn depacketize_h264(payloads: &[RtpPayload]) -> Vec<Vec<u8>> {
        let mut nals = Vec::new();
        let mut fu: Vec<u8> = Vec::new();
        for p in payloads {
            let d = &p.data;
            match d[0] & 0x1f {
                STAP_A => {
                    let mut at = 1;
                    while at + 2 <= d.len() {
                        let n = u16::from_be_bytes([d[at], d[at + 1]]) as usize;
                        nals.push(d[at + 2..at + 2 + n].to_vec());
                        at += 2 + n;
                    }
                }
                FU_A => {
                    if d[1] & 0x80 != 0 {
                        fu = vec![(d[0] & 0xe0) | (d[1] & 0x1f)];
                    }
                    fu.extend_from_slice(&d[2..]);
                    if d[1] & 0x40 != 0 {
                        nals.push(std::mem::take(&mut fu));
                    }
                }
                _ => nals.push(d.to_vec()),
            }
        }
        nals
    }

    #[test]
    fn h264_round_trip_and_equal_fragments() {
        let big: Vec<u8> = std::iter::once(0x65)
            .chain((0..10_001).map(|i| i as u8 | 1))
            .collect();
        let nals: Vec<&[u8]> = vec![
            &[0x09, 0xf0],
            &[0x67, 0x64, 0x00, 0x1f],
            &[0x68, 0xee],
            &big,
            &[0x06, 5],
        ];
        let mut out = Vec::new();
        packetize_h264(&au(&nals), 1200, &mut out);
        // The AUD and the SEI are left out; SPS/PPS go in one STAP-A, the slice in FU-As.
        assert_eq!(
            depacketize_h264(&out),
            nals[1..4].iter().map(|n| n.to_vec()).collect::<Vec<_>>()
        );
        assert!(out.iter().all(|p| p.data.len() <= 1200));
        let frag: Vec<usize> = out[1..].iter().map(|p| p.data.len()).collect();
        assert!(
            frag[..frag.len() - 1].iter().all(|&l| l == frag[0]),
            "{frag:?}"
        );
        // A P-frame with an SEI is one run of equal-sized packets (one GSO send).
        let mut p_frame = Vec::new();
        packetize_h264(&au(&[&[0x06, 5], &big]), 1200, &mut p_frame);
        let sizes: Vec<usize> = p_frame.iter().map(|p| p.data.len()).collect();
        assert!(
            sizes[..sizes.len() - 1].iter().all(|&l| l == sizes[0]),
            "{sizes:?}"
        );
        assert_eq!(out.iter().filter(|p| p.marker).count(), 1);
        assert!(out.last().unwrap().marker);
    }

    #[test]
    fn h265_fu_and_ap_headers() {
        let vps = [0x40, 0x01, 0x0c];
        let sps = [0x42, 0x01, 0x01];
        let mut idr = vec![0x26, 0x01];
        idr.extend(std::iter::repeat_n(0xaa, 2500));
        let mut out = Vec::new();
        packetize_h265(&au(&[&vps, &sps, &idr]), 1200, &mut out);
        assert_eq!((out[0].data[0] >> 1) & 0x3f, H265_AP);
        assert_eq!(&out[0].data[2..4], &[0, 3]);
        assert_eq!((out[1].data[0] >> 1) & 0x3f, H265_FU);
        assert_eq!(out[1].data[2], 0x80 | 19);
        assert_eq!(out.last().unwrap().data[2], 0x40 | 19);
        let body: usize = out[1..].iter().map(|p| p.data.len() - 3).sum();
        assert_eq!(body, idr.len() - 2);
    }

    #[test]
    fn tiny_max_and_garbage_do_not_panic() {
        for input in [
            &[][..],
            &[0, 0, 1],
            &[0, 0, 1, 0x65],
            &[1, 2, 3, 0, 0, 1, 0x40],
        ] {
            for max in [0, 1, 64, 1200] {
                packetize_h264(input, max, &mut Vec::new());
                packetize_h265(input, max, &mut Vec::new());
            }
        }
    }
}
