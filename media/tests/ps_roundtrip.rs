//! Our muxer → our demuxer gives back the same access units, byte for byte, for H.264, H.265,
//! G.711 A/µ and AAC, with frames larger than 64 KiB, whatever the chunking.

mod ps_common;

use bytes::Bytes;
use media::ps::{DemuxConfig, DemuxEvent, PsDemuxer, PsMuxer};
use media::{AccessUnit, Codec};
use ps_common::*;

fn video_units(file: &str, codec: Codec) -> Vec<AccessUnit> {
    let es = Bytes::from(std::fs::read(testdata(file)).expect("clip"));
    split_access_units(&es, codec)
        .into_iter()
        .enumerate()
        .map(|(i, (data, key))| {
            let i = i as u64;
            AccessUnit {
                stream_id: 0xE0,
                codec,
                // B-frame style: DTS one frame behind PTS on odd frames.
                pts: Some(90_000 + i * 3600 + 3600),
                dts: (i % 2 == 1).then_some(90_000 + i * 3600),
                keyframe: key,
                data,
            }
        })
        .collect()
}

/// Synthetic H.264 frames around the PES split size: 1 byte to 300 KB of slice data.
fn large_h264_units() -> Vec<AccessUnit> {
    let sizes = [
        200_000usize,
        65_408 - 6,
        65_408,
        65_409,
        70_000,
        1,
        300_000,
        131_000,
    ];
    let mut seed = 7u32;
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let key = i % 4 == 0;
            let mut d = Vec::with_capacity(n + 32);
            if key {
                d.extend_from_slice(&[
                    0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xda, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80,
                ]);
            }
            d.extend_from_slice(&[0, 0, 0, 1, if key { 0x65 } else { 0x41 }]);
            d.extend((0..n).map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                ((seed >> 16) as u8) | 1
            }));
            AccessUnit {
                stream_id: 0xE0,
                codec: Codec::H264,
                pts: Some(i as u64 * 3600),
                dts: None,
                keyframe: key,
                data: Bytes::from(d),
            }
        })
        .collect()
}

fn g711_units(codec: Codec, sid: u8) -> Vec<AccessUnit> {
    (0..200u64)
        .map(|i| {
            let samples: Vec<i16> = (0..160)
                .map(|k| ((i * 160 + k) as f64 * 0.3).sin().mul_add(8000.0, 0.0) as i16)
                .collect();
            let mut data = Vec::new();
            if codec == Codec::G711A {
                media::codec::g711::encode_alaw(&samples, &mut data);
            } else {
                media::codec::g711::encode_ulaw(&samples, &mut data);
            }
            AccessUnit {
                stream_id: sid,
                codec,
                pts: Some(i * 1800),
                dts: None,
                keyframe: true,
                data: Bytes::from(data),
            }
        })
        .collect()
}

fn aac_units() -> Vec<AccessUnit> {
    let es = Bytes::from(std::fs::read(testdata("srs_bench_avatar.aac")).expect("clip"));
    split_adts(&es)
        .into_iter()
        .enumerate()
        .map(|(i, data)| AccessUnit {
            stream_id: 0xC0,
            codec: Codec::Aac,
            pts: Some(i as u64 * 1024 * 90_000 / 44_100),
            dts: None,
            keyframe: true,
            data,
        })
        .collect()
}

fn mux_all(units: &[AccessUnit]) -> Vec<u8> {
    let mut mux = PsMuxer::new();
    let mut out = Vec::new();
    for au in units {
        out.extend_from_slice(&mux.mux(au).expect("mux"));
    }
    out
}

fn demux_exact(ps: &[u8], chunk: usize) -> Vec<AccessUnit> {
    // Identity needs the demuxer to hand frames on as muxed (no parameter-set insertion).
    let mut d = PsDemuxer::with_config(DemuxConfig {
        prepend_parameter_sets: false,
        ..DemuxConfig::default()
    });
    let b = Bytes::copy_from_slice(ps);
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let end = (at + chunk).min(b.len());
        d.push(b.slice(at..end));
        at = end;
        while let Some(ev) = d.poll() {
            if let DemuxEvent::AccessUnit(a) = ev {
                out.push(a);
            }
        }
    }
    d.finish();
    while let Some(ev) = d.poll() {
        if let DemuxEvent::AccessUnit(a) = ev {
            out.push(a);
        }
    }
    let s = d.stats();
    assert_eq!((s.skipped_bytes, s.resyncs, s.dropped_frames), (0, 0, 0));
    out
}

fn assert_round_trip(units: &[AccessUnit]) {
    let ps = mux_all(units);
    for chunk in [ps.len(), 1400, 4096, 7] {
        let back = demux_exact(&ps, chunk);
        assert_eq!(back.len(), units.len(), "chunk {chunk}: access unit count");
        for (i, (a, b)) in units.iter().zip(&back).enumerate() {
            assert!(
                a == b,
                "chunk {chunk}: access unit {i} differs ({} vs {} bytes, pts {:?}/{:?})",
                a.data.len(),
                b.data.len(),
                a.pts,
                b.pts
            );
        }
    }
}

#[test]
fn h264_avatar() {
    let units = video_units("srs_bench_avatar.h264", Codec::H264);
    assert_eq!(units.len(), 308);
    assert_round_trip(&units);
}

#[test]
fn h265_avatar() {
    let units = video_units("srs_bench_avatar.h265", Codec::H265);
    assert!(units.iter().filter(|u| u.keyframe).count() >= 2);
    assert_round_trip(&units);
}

#[test]
fn h264_frames_over_64k() {
    let units = large_h264_units();
    assert!(units.iter().any(|u| u.data.len() > 256 * 1024));
    assert_round_trip(&units);
}

#[test]
fn g711_alaw_and_ulaw() {
    assert_round_trip(&g711_units(Codec::G711A, 0xC0));
    assert_round_trip(&g711_units(Codec::G711U, 0xC1));
}

#[test]
fn aac_avatar() {
    let units = aac_units();
    assert!(units.len() > 100);
    assert_round_trip(&units);
}

#[test]
fn interleaved_video_and_audio() {
    let video = video_units("srs_bench_avatar.h264", Codec::H264);
    let audio = g711_units(Codec::G711A, 0xC0);
    let mut units = Vec::new();
    for (i, v) in video.iter().take(100).enumerate() {
        units.push(v.clone());
        units.push(audio[i].clone());
    }
    assert_round_trip(&units);
}

#[test]
fn single_pes_frames_are_slices_of_the_input() {
    let units = video_units("srs_bench_avatar.h264", Codec::H264);
    let ps = Bytes::from(mux_all(&units[..20]));
    let mut d = PsDemuxer::new();
    d.push(ps.clone());
    d.finish();
    let range = ps.as_ptr() as usize..ps.as_ptr() as usize + ps.len();
    let mut n = 0;
    while let Some(ev) = d.poll() {
        if let DemuxEvent::AccessUnit(a) = ev
            && a.data.len() < 0xff80
        {
            assert!(
                range.contains(&(a.data.as_ptr() as usize)),
                "copied instead of sliced"
            );
            n += 1;
        }
    }
    assert!(n >= 10);
}
