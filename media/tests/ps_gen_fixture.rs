//! Not a test: the helper `scripts/bench-psdemux.sh` runs to build a large PS file with our
//! muxer, as a camera would send it (one pack per frame, PSM on key frames, PES ≤ 0xFF80).
//!
//! `PS_GEN_IN=clip.h264 PS_GEN_OUT=big.ps PS_GEN_MB=400 cargo test --release -p media \
//!  --test ps_gen_fixture -- --ignored`
//!
//! The clip's access units are repeated with continuing 25 fps time stamps until the output
//! reaches `PS_GEN_MB` megabytes.

mod ps_common;

use bytes::Bytes;
use media::ps::PsMuxer;
use media::{AccessUnit, Codec};
use std::io::Write;

#[test]
#[ignore = "fixture generator for scripts/bench-psdemux.sh"]
fn generate_ps_from_env() {
    let input = std::env::var("PS_GEN_IN").expect("PS_GEN_IN");
    let output = std::env::var("PS_GEN_OUT").expect("PS_GEN_OUT");
    let mb: u64 = std::env::var("PS_GEN_MB").map_or(400, |v| v.parse().expect("PS_GEN_MB"));
    let codec = if input.ends_with(".h265") || input.ends_with(".hevc") {
        Codec::H265
    } else {
        Codec::H264
    };
    let es = Bytes::from(std::fs::read(&input).expect("read PS_GEN_IN"));
    let aus = ps_common::split_access_units(&es, codec);
    assert!(!aus.is_empty(), "no access units in {input}");
    let mut out =
        std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&output).expect("create"));
    let mut mux = PsMuxer::new();
    let mut written = 0u64;
    let mut n = 0u64;
    'outer: loop {
        for (data, key) in &aus {
            let au = AccessUnit {
                stream_id: 0xE0,
                codec,
                pts: Some((n * 3600) & ((1 << 33) - 1)),
                dts: None,
                keyframe: *key,
                data: data.clone(),
            };
            let frame = mux.mux(&au).expect("mux");
            out.write_all(&frame).expect("write");
            written += frame.len() as u64;
            n += 1;
            if written >= mb * 1_000_000 {
                break 'outer;
            }
        }
    }
    out.flush().expect("flush");
    eprintln!("{output}: {written} bytes, {n} frames");
}
