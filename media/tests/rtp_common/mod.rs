//! Helpers shared by the `rtp_*` integration tests: the real captures.
#![allow(dead_code)]

use bytes::Bytes;

/// The four RTP captures in `tests/data` (provenance in the README there).
pub const LAL_SEQ0_8: &str = "lal_ps_rtp_seq0-8_ssrc0bebc265.rfc4571";
pub const LAL_SEQ291: &str = "lal_ps_rtp_seq291_ssrc0bebc265.rtp";
pub const SRS_SEQ0_13: &str = "srs_ps_rtp_seq0-13_ssrc0bebdfa1.rfc4571";
pub const SRS_AUDIO: &str = "srs_ps_rtp_audio_seq31916_ssrc0bebd135.rtp";
pub const ALL: [&str; 4] = [LAL_SEQ0_8, LAL_SEQ291, SRS_SEQ0_13, SRS_AUDIO];

/// Reads a capture from `tests/data`.
pub fn load(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");
    std::fs::read(format!("{path}{name}")).unwrap_or_else(|e| panic!("capture {name}: {e}"))
}

/// The packets of an RFC 4571 capture (2-byte big-endian length before each), split by hand.
pub fn split_rfc4571(data: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 <= data.len() {
        let n = usize::from(u16::from_be_bytes([data[i], data[i + 1]]));
        out.push(Bytes::copy_from_slice(&data[i + 2..i + 2 + n]));
        i += 2 + n;
    }
    assert_eq!(i, data.len(), "capture ends on a frame boundary");
    out
}

/// All packets of a capture.
pub fn packets(name: &str) -> Vec<Bytes> {
    let d = load(name);
    if name.ends_with(".rfc4571") {
        split_rfc4571(&d)
    } else {
        vec![Bytes::from(d)]
    }
}
