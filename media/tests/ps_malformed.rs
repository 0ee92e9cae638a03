//! Malformed-input sweep: real captures truncated and bit-flipped at every position (a stride
//! for the large file) never make the demuxer panic, and what comes out stays bounded by what
//! went in.

mod ps_common;

use bytes::Bytes;
use media::ps::{DemuxConfig, DemuxEvent, PsDemuxer};
use ps_common::*;

const MAX_FRAME: usize = 1 << 20;

/// Demuxes `data` in chunks of `chunk` with a discontinuity in the middle when asked; checks
/// the output bounds; returns the number of access units.
fn demux_checked(data: &[u8], chunk: usize, gap: bool) -> usize {
    let mut d = PsDemuxer::with_config(DemuxConfig {
        max_frame_size: MAX_FRAME,
        ..DemuxConfig::default()
    });
    let b = Bytes::copy_from_slice(data);
    let mut out_bytes = 0usize;
    let mut units = 0;
    let mut drain = |d: &mut PsDemuxer| {
        while let Some(ev) = d.poll() {
            if let DemuxEvent::AccessUnit(a) = ev {
                // A frame is at most the cap plus the parameter sets put in front of it.
                assert!(a.data.len() <= MAX_FRAME + 64 * 1024);
                out_bytes += a.data.len();
                units += 1;
            }
        }
    };
    let mut at = 0;
    while at < b.len() {
        let end = (at + chunk).min(b.len());
        d.push(b.slice(at..end));
        if gap && at <= b.len() / 2 && b.len() / 2 < end {
            d.discontinuity();
        }
        drain(&mut d);
        at = end;
    }
    d.finish();
    drain(&mut d);
    let s = d.stats();
    // Payload out never exceeds bytes in, but for parameter sets prepended to key frames.
    assert!(out_bytes as u64 <= s.bytes_in + s.parameter_sets_prepended * 64 * 1024);
    units
}

fn sweep(name: &str, data: &[u8], stride: usize) {
    let whole = demux_checked(data, 1400, false);
    assert!(
        whole > 0 || name.ends_with("head"),
        "{name}: nothing demuxed"
    );
    for pos in (0..data.len()).step_by(stride) {
        // Truncated here.
        demux_checked(&data[..pos], 997, false);
        // One bit flipped here (a different bit at each position), in two chunkings.
        let mut m = data.to_vec();
        m[pos] ^= 1 << (pos % 8);
        demux_checked(&m, 1400, pos % 2 == 0);
        // The byte replaced by a start-code-like value.
        m[pos] = [0x00, 0x01, 0xba, 0xff][pos % 4];
        demux_checked(&m, 4096, false);
    }
}

#[test]
fn rtp_captures_every_position() {
    for f in [
        "srs_ps_rtp_seq0-13_ssrc0bebdfa1.rfc4571",
        "lal_ps_rtp_seq0-8_ssrc0bebc265.rfc4571",
    ] {
        let data = std::fs::read(testdata(f)).expect("testdata");
        let ps: Vec<u8> = rfc4571_payloads(&data)
            .into_iter()
            .flat_map(|(_, p)| p.to_vec())
            .collect();
        sweep(f, &ps, 1);
    }
}

#[test]
fn hikvision_keyframe_headers_every_position_body_strided() {
    let data =
        std::fs::read(testdata("srs_ps_payloads_seq31813-31914_filler.ps")).expect("fixture");
    // The headers are in the first bytes and around the PES boundaries: all of the first 1 KiB,
    // then a stride.
    sweep("srs payloads head", &data[..1024.min(data.len())], 1);
    sweep("srs payloads", &data, 97);
}

#[test]
fn gb28181_test_tool_file_prefix_and_stride() {
    let data = std::fs::read(testdata("Audio_G711_PS2.mpg")).expect("testdata");
    sweep("g711 prefix", &data[..8192], 1);
    sweep("g711 strided prefix", &data[..400_000], 4001);
}

#[test]
fn fragments_and_noise() {
    for f in [
        "srs_invalid_pes_start.bin",
        "srs_pack_header_audio_pes_filler.bin",
        "srs_partial_pes_header.bin",
        "srs_private_stream_pes.bin",
    ] {
        let data = std::fs::read(testdata(f)).expect("fixture");
        for pos in 0..data.len() {
            demux_checked(&data[..pos], 3, false);
            let mut m = data.clone();
            m[pos] ^= 0x80;
            demux_checked(&m, 1, true);
        }
    }
    // Pseudo-random noise with start codes sprinkled in.
    let mut seed = 0x1234_5678u32;
    let mut noise: Vec<u8> = (0..200_000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as u8
        })
        .collect();
    for i in (0..noise.len() - 4).step_by(331) {
        let code = [0xba, 0xbb, 0xbc, 0xbd, 0xe0, 0xc0, 0xbe][i % 7];
        noise[i..i + 4].copy_from_slice(&[0, 0, 1, code]);
    }
    for chunk in [1, 188, 1400, 65_536] {
        demux_checked(&noise, chunk, chunk == 188);
    }
}
