//! Chunking invariance: any split of the input yields the same access units, configurations,
//! quirks and counters as the whole buffer at once (proptest).

mod ps_common;

use bytes::Bytes;
use media::ps::PsMuxer;
use media::{AccessUnit, Codec};
use proptest::prelude::*;
use ps_common::*;
use std::sync::OnceLock;

/// A mixed stream from our muxer: H.264 frames (some over 64 KiB), G.711 and AAC.
fn mixed() -> &'static [u8] {
    static DATA: OnceLock<Vec<u8>> = OnceLock::new();
    DATA.get_or_init(|| {
        let es = Bytes::from(std::fs::read(testdata("srs_bench_avatar.h264")).expect("clip"));
        let aac = Bytes::from(std::fs::read(testdata("srs_bench_avatar.aac")).expect("aac"));
        let aac = split_adts(&aac);
        let mut mux = PsMuxer::new();
        let mut out = Vec::new();
        for (i, (data, key)) in split_access_units(&es, Codec::H264)
            .into_iter()
            .take(12)
            .enumerate()
        {
            let mut data = data;
            if i == 3 {
                // One frame over 64 KiB.
                let mut big = data.to_vec();
                big.extend((0..70_000).map(|k| (k % 200) as u8 + 1));
                data = Bytes::from(big);
            }
            let t = i as u64 * 3600;
            let units = [
                AccessUnit {
                    stream_id: 0xE0,
                    codec: Codec::H264,
                    pts: Some(t),
                    dts: None,
                    keyframe: key,
                    data,
                },
                AccessUnit {
                    stream_id: 0xC0,
                    codec: Codec::G711A,
                    pts: Some(t),
                    dts: None,
                    keyframe: true,
                    data: Bytes::from_static(&[0x55; 320]),
                },
                AccessUnit {
                    stream_id: 0xC1,
                    codec: Codec::Aac,
                    pts: Some(t),
                    dts: None,
                    keyframe: true,
                    data: aac[i].clone(),
                },
            ];
            for au in &units {
                out.extend_from_slice(&mux.mux(au).expect("mux"));
            }
        }
        out
    })
}

fn inputs() -> &'static [Vec<u8>] {
    static DATA: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    DATA.get_or_init(|| {
        let g711 = std::fs::read(testdata("Audio_G711_PS2.mpg")).expect("testdata");
        let rtp =
            std::fs::read(testdata("srs_ps_rtp_seq0-13_ssrc0bebdfa1.rfc4571")).expect("testdata");
        vec![
            std::fs::read(testdata("srs_ps_payloads_seq31813-31914_filler.ps")).expect("fixture"),
            g711[..40_000].to_vec(),
            rfc4571_payloads(&rtp)
                .into_iter()
                .flat_map(|(_, p)| p.to_vec())
                .collect(),
            mixed().to_vec(),
        ]
    })
}

fn demux_at(data: &[u8], cuts: &[usize]) -> Demuxed {
    let b = Bytes::copy_from_slice(data);
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points.dedup();
    demux_chunks(points.windows(2).map(|w| b.slice(w[0]..w[1])))
}

fn assert_same(a: &Demuxed, b: &Demuxed) {
    assert_eq!(a.aus.len(), b.aus.len());
    assert!(a.aus == b.aus, "access units differ");
    assert_eq!(a.configs, b.configs);
    assert_eq!(a.quirks, b.quirks);
    assert_eq!(a.stats, b.stats);
}

#[test]
fn whole_inputs_demux_cleanly() {
    for (i, data) in inputs().iter().enumerate() {
        let r = demux_at(data, &[]);
        assert!(!r.aus.is_empty(), "input {i}");
        assert_eq!(r.stats.resyncs, 0, "input {i}");
    }
    assert_eq!(demux_at(mixed(), &[]).aus.len(), 36);
}

#[test]
fn every_single_cut_of_the_hikvision_header_region() {
    let data = &inputs()[0];
    let whole = demux_at(data, &[]);
    for cut in 0..600 {
        assert_same(&demux_at(data, &[cut]), &whole);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_split_same_result(which in 0usize..4, cuts in proptest::collection::vec(any::<usize>(), 0..200)) {
        let data = &inputs()[which];
        let whole = demux_at(data, &[]);
        let split = demux_at(data, &cuts);
        assert_same(&split, &whole);
    }

    #[test]
    fn tiny_chunks_same_result(which in 0usize..4, size in 1usize..64) {
        let data = &inputs()[which];
        let whole = demux_at(data, &[]);
        let cuts: Vec<usize> = (size..data.len()).step_by(size).collect();
        assert_same(&demux_at(data, &cuts), &whole);
    }
}
