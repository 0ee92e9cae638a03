//! PS demux throughput on a 1080p H.264 PS stream (as GB/T 28181 cameras send it) against a
//! plain memcpy of the same bytes in the same run; the start-code scan against the byte loop
//! it replaced; SPS parsing.
//!
//! The stream: 2 s of libx264 1920x1080 25 fps at 16 Mbit/s (testsrc2) when ffmpeg is
//! installed, else synthetic 1080p-sized frames (same layout; the demuxer never decodes slice
//! data), muxed by `PsMuxer` and repeated to 64 MB. Goal: demux within 2x of memcpy.
//!
//! `cargo bench -p benches --bench ps`

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use media::codec::{h264, h265};
use media::ps::{DemuxEvent, PsDemuxer, PsMuxer};
use media::{AccessUnit, Codec};
use std::hint::black_box;
use std::process::Command;

/// A real 1920x1080 SPS (libx264 ultrafast, Constrained Baseline, level 4.0, VUI timing).
const SPS_1080P: &[u8] = &[
    0x67, 0x42, 0xc0, 0x28, 0xda, 0x01, 0xe0, 0x08, 0x9f, 0x97, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
    0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x83, 0x2a,
];

/// The H.265 Main SPS of media/tests/data/srs_bench_avatar.h265 (768x320).
const SPS_H265: &[u8] = &[
    0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03,
    0x00, 0x3f, 0xa0, 0x06, 0x02, 0x01, 0x41, 0x65, 0x95, 0x9a, 0x49, 0x32, 0xbc, 0x05, 0xa7, 0x08,
    0x00, 0x00, 0x03, 0x00, 0x08, 0x00, 0x00, 0x03, 0x00, 0xc8, 0x40,
];

fn encoded_clip() -> Option<Vec<u8>> {
    let path = std::env::temp_dir().join("gb28181-bench-ps-1080p-2s.h264");
    if !path.exists() {
        let ok = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=1920x1080:rate=25")
            .args([
                "-t",
                "2",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-b:v",
                "16M",
            ])
            .args(["-maxrate", "16M", "-bufsize", "4M", "-g", "50"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
    }
    std::fs::read(path).ok()
}

/// Access units of the clip: cut before each start code whose NAL is an SPS (key frame) or a
/// slice with first_mb_in_slice 0 that follows a slice.
fn access_units(es: &Bytes) -> Vec<(Bytes, bool)> {
    let mut cuts = vec![0];
    let mut keys = vec![false];
    let mut seen_slice = false;
    let mut pos = 0;
    while let Some((sc, len)) = media::codec::nal::find_start_code(es, pos) {
        let Some(&b0) = es.get(sc + len) else { break };
        let t = h264::nal_type(b0);
        let first = es.get(sc + len + 1).is_some_and(|b| b & 0x80 != 0);
        if seen_slice && (matches!(t, 6..=9) || (matches!(t, 1 | 5) && first)) {
            cuts.push(sc);
            keys.push(false);
            seen_slice = false;
        }
        if matches!(t, 1 | 5) {
            seen_slice = true;
            if t == 5 {
                *keys.last_mut().expect("one entry at least") = true;
            }
        }
        pos = sc + len;
    }
    cuts.push(es.len());
    cuts.windows(2)
        .zip(keys)
        .map(|(w, k)| (es.slice(w[0]..w[1]), k))
        .collect()
}

/// Synthetic 1080p-sized frames: key frame every 50 of 250 KB, others 60 KB.
fn synthetic_units() -> Vec<(Bytes, bool)> {
    let mut seed = 0x2545_f491u32;
    (0..50)
        .map(|i| {
            let key = i % 50 == 0;
            let mut f = Vec::new();
            if key {
                f.extend_from_slice(&[0, 0, 0, 1]);
                f.extend_from_slice(SPS_1080P);
                f.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0]);
            }
            f.extend_from_slice(&[0, 0, 0, 1, if key { 0x65 } else { 0x41 }, 0x88]);
            let n = if key { 250_000 } else { 60_000 };
            f.extend((0..n).map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                (seed as u8) | 0x10
            }));
            (Bytes::from(f), key)
        })
        .collect()
}

fn ps_stream(target: usize) -> Bytes {
    let units = match encoded_clip() {
        Some(es) => access_units(&Bytes::from(es)),
        None => {
            eprintln!("ffmpeg not found: benchmarking synthetic 1080p-sized frames");
            synthetic_units()
        }
    };
    let mut mux = PsMuxer::new();
    let mut out = Vec::with_capacity(target + (1 << 20));
    let mut n = 0u64;
    while out.len() < target {
        for (data, key) in &units {
            let au = AccessUnit {
                stream_id: 0xE0,
                codec: Codec::H264,
                pts: Some(n * 3600),
                dts: None,
                keyframe: *key,
                data: data.clone(),
            };
            out.extend_from_slice(&mux.mux(&au).expect("valid access unit"));
            n += 1;
        }
    }
    Bytes::from(out)
}

fn demux(chunks: &[Bytes]) -> usize {
    let mut d = PsDemuxer::new();
    let mut bytes = 0;
    for c in chunks {
        d.push(c.clone());
        while let Some(ev) = d.poll() {
            if let DemuxEvent::AccessUnit(au) = ev {
                bytes += au.data.len();
            }
        }
    }
    d.finish();
    while let Some(ev) = d.poll() {
        if let DemuxEvent::AccessUnit(au) = ev {
            bytes += au.data.len();
        }
    }
    bytes
}

fn bench_ps(c: &mut Criterion) {
    let ps = ps_stream(64 << 20);
    let mut g = c.benchmark_group("ps_1080p_h264");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(ps.len() as u64));
    g.bench_function("memcpy", |b| {
        let mut dst = vec![0u8; ps.len()];
        b.iter(|| {
            dst.copy_from_slice(black_box(&ps));
            black_box(&dst);
        })
    });
    for chunk in [1400usize, 1 << 20] {
        let chunks: Vec<Bytes> = (0..ps.len())
            .step_by(chunk)
            .map(|i| ps.slice(i..(i + chunk).min(ps.len())))
            .collect();
        g.bench_with_input(BenchmarkId::new("demux", chunk), &chunks, |b, chunks| {
            b.iter(|| black_box(demux(chunks)))
        });
    }
    g.finish();
}

/// The start-code scan before `find_001` used `memchr`: a byte loop that skips three bytes
/// after any byte above 1. Kept here as the baseline of `nal_scan`.
fn skip3_find_001(data: &[u8], from: usize) -> Option<usize> {
    let n = data.len();
    let mut i = from.checked_add(2)?;
    while i < n {
        let b = data[i];
        if b > 1 {
            i += 3;
        } else if b == 1 && data[i - 1] == 0 && data[i - 2] == 0 {
            return Some(i - 2);
        } else {
            i += 1;
        }
    }
    None
}

fn count_start_codes(es: &[u8], find: impl Fn(&[u8], usize) -> Option<usize>) -> usize {
    let mut n = 0;
    let mut from = 0;
    while let Some(i) = find(es, from) {
        n += 1;
        from = i + 3;
    }
    n
}

/// Finding the NAL units of an access unit (the demuxer and the packetizer both do, on every
/// frame): the 1080p clip's elementary stream, `find_001` against the byte loop it replaced.
fn bench_nal_scan(c: &mut Criterion) {
    let Some(es) = encoded_clip() else {
        return eprintln!("nal_scan: ffmpeg not installed, skipped");
    };
    let expected = count_start_codes(&es, skip3_find_001);
    assert_eq!(
        count_start_codes(&es, media::codec::nal::find_001),
        expected
    );
    let mut g = c.benchmark_group("nal_scan");
    g.throughput(Throughput::Bytes(es.len() as u64));
    g.bench_function("skip3_loop", |b| {
        b.iter(|| count_start_codes(black_box(&es), skip3_find_001))
    });
    g.bench_function("find_001", |b| {
        b.iter(|| count_start_codes(black_box(&es), media::codec::nal::find_001))
    });
    g.finish();
}

fn bench_sps(c: &mut Criterion) {
    c.bench_function("sps_parse/h264_1080p", |b| {
        b.iter(|| h264::Sps::parse(black_box(SPS_1080P)).expect("valid SPS"))
    });
    c.bench_function("sps_parse/h265", |b| {
        b.iter(|| h265::Sps::parse(black_box(SPS_H265)).expect("valid SPS"))
    });
}

criterion_group!(benches, bench_ps, bench_nal_scan, bench_sps);
criterion_main!(benches);
