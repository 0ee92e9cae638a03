//! Each real-device quirk of PROTOCOL-NOTES §9, built byte by byte, is tolerated and reported;
//! loss and corruption never yield a damaged frame as whole.

mod ps_common;

use bytes::Bytes;
use media::ps::{DemuxConfig, DemuxEvent, PsDemuxer, PsMuxer, Quirk, pack, pes, psm};
use media::{AccessUnit, Codec};
use ps_common::*;

const SPS: &[u8] = &[
    0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0x84,
];
const PPS: &[u8] = &[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80];

fn idr(n: usize) -> Vec<u8> {
    let mut v = [SPS, PPS, &[0, 0, 0, 1, 0x65, 0x88]].concat();
    v.extend((0..n).map(|i| (i % 251) as u8 | 0x10));
    v
}

fn p_frame(n: usize) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 1, 0x41, 0x9a];
    v.extend((0..n).map(|i| (i % 241) as u8 | 0x20));
    v
}

fn pack_hdr(out: &mut Vec<u8>, scr: u64) {
    pack::write(out, scr, 6106, &[]);
}

fn psm_of(out: &mut Vec<u8>, entries: &[(u8, u8)]) {
    let e: Vec<psm::PsmEntry> = entries
        .iter()
        .map(|&(t, id)| psm::PsmEntry {
            stream_type: t,
            stream_id: id,
        })
        .collect();
    psm::write(out, 0, &e);
}

fn pes_of(out: &mut Vec<u8>, sid: u8, pts: Option<u64>, payload: &[u8]) {
    pes::write_header(out, sid, payload.len(), pts, None, false);
    out.extend_from_slice(payload);
}

fn all_splits(data: &[u8]) -> Vec<Demuxed> {
    [data.len(), 1400, 100, 7, 1]
        .iter()
        .map(|&c| demux_split(data, c))
        .collect()
}

#[test]
fn pes_length_zero_runs_to_next_pack() {
    let mut s = Vec::new();
    let frames = [idr(3000), p_frame(5000)];
    for (i, f) in frames.iter().enumerate() {
        pack_hdr(&mut s, i as u64 * 3600);
        if i == 0 {
            psm_of(&mut s, &[(0x1b, 0xe0)]);
        }
        // PES_packet_length 0: an 0x80/0x80 header, PTS, then the whole frame.
        s.extend_from_slice(&[0, 0, 1, 0xe0, 0, 0, 0x80, 0x80, 5]);
        pes::write_ts(&mut s, 2, i as u64 * 3600);
        s.extend_from_slice(f);
    }
    for r in all_splits(&s) {
        let v: Vec<_> = r.video().collect();
        assert_eq!(v.len(), 2);
        assert_eq!(&v[0].data[..], &frames[0][..]);
        assert_eq!(&v[1].data[..], &frames[1][..]);
        assert!(r.quirks.contains(&Quirk::PesLengthZero));
    }
}

#[test]
fn hikvision_h265_bare_pack_header() {
    // 00 00 01 BA straight followed by 00 00 01 E0, no PSM: H.265 sniffed from NAL headers.
    let vps_sps_pps_idr = [
        &[0u8, 0, 0, 1, 0x40, 0x01, 0x0c, 0x01][..],
        &[0, 0, 0, 1, 0x42, 0x01, 0x01, 0x01],
        &[0, 0, 0, 1, 0x44, 0x01, 0xc1, 0x72],
        &[0, 0, 0, 1, 0x26, 0x01, 0xaf, 0x09, 0x40],
    ]
    .concat();
    let trail = [0u8, 0, 0, 1, 0x02, 0x01, 0xd0, 0x2f, 0x11];
    let mut s = Vec::new();
    for (i, f) in [&vps_sps_pps_idr[..], &trail].iter().enumerate() {
        s.extend_from_slice(&[0, 0, 1, 0xba]);
        pes_of(&mut s, 0xe0, Some(i as u64 * 3600), f);
    }
    for r in all_splits(&s) {
        let v: Vec<_> = r.video().collect();
        assert_eq!(v.len(), 2);
        assert!(v.iter().all(|a| a.codec == Codec::H265));
        assert!(v[0].keyframe && !v[1].keyframe);
        assert!(r.quirks.contains(&Quirk::BarePackHeader));
        assert!(r.quirks.contains(&Quirk::NoPsm));
    }
}

#[test]
fn aac_inside_a_g711_labelled_stream() {
    let aac = std::fs::read(testdata("srs_bench_avatar.aac")).expect("aac");
    let frames = split_adts(&Bytes::from(aac));
    let mut s = Vec::new();
    pack_hdr(&mut s, 0);
    psm_of(&mut s, &[(0x90, 0xc0)]);
    for (i, f) in frames.iter().take(10).enumerate() {
        pack_hdr(&mut s, i as u64 * 2090);
        pes_of(&mut s, 0xc0, Some(i as u64 * 2090), f);
    }
    for r in all_splits(&s) {
        let a: Vec<_> = r.audio().collect();
        assert_eq!(a.len(), 10);
        assert!(a.iter().all(|a| a.codec == Codec::Aac));
        assert_eq!(r.stats.quirks.get(Quirk::AacInG711Stream), 10);
        assert_eq!(
            r.quirks
                .iter()
                .filter(|&&q| q == Quirk::AacInG711Stream)
                .count(),
            1
        );
        // The PSM declares G.711A; the first frame shows AAC at 44.1 kHz.
        assert_eq!(r.configs[0].codec, Some(Codec::G711A));
        assert_eq!(r.configs[0].sample_rate, None);
        assert_eq!(r.configs[1].codec, Some(Codec::Aac));
        assert_eq!(r.configs[1].sample_rate, Some(44_100));
    }
}

#[test]
fn codec_change_mid_stream_and_late_audio() {
    let mut mux = PsMuxer::new();
    let mut s = Vec::new();
    let h264 = |i: u64, key| AccessUnit {
        stream_id: 0xE0,
        codec: Codec::H264,
        pts: Some(i * 3600),
        dts: None,
        keyframe: key,
        data: Bytes::from(if key { idr(100) } else { p_frame(100) }),
    };
    for i in 0..3 {
        s.extend_from_slice(&mux.mux(&h264(i, i == 0)).expect("mux"));
    }
    // Audio appears mid-stream.
    let g711 = AccessUnit {
        stream_id: 0xC0,
        codec: Codec::G711A,
        pts: Some(10_800),
        dts: None,
        keyframe: true,
        data: Bytes::from_static(&[0xd5; 160]),
    };
    s.extend_from_slice(&mux.mux(&g711).expect("mux"));
    // The camera switches to H.265.
    let h265 = [
        &[0u8, 0, 0, 1, 0x40, 0x01, 0x0c][..],
        &[0, 0, 0, 1, 0x42, 0x01, 0x01],
        &[0, 0, 0, 1, 0x44, 0x01, 0xc1],
        &[0, 0, 0, 1, 0x26, 0x01, 0xaf],
    ]
    .concat();
    let au = AccessUnit {
        stream_id: 0xE0,
        codec: Codec::H265,
        pts: Some(14_400),
        dts: None,
        keyframe: true,
        data: Bytes::from(h265),
    };
    s.extend_from_slice(&mux.mux(&au).expect("mux"));
    for r in all_splits(&s) {
        let codecs: Vec<Codec> = r.aus.iter().map(|a| a.codec).collect();
        assert_eq!(
            codecs,
            [
                Codec::H264,
                Codec::H264,
                Codec::H264,
                Codec::G711A,
                Codec::H265
            ]
        );
        assert!(r.quirks.contains(&Quirk::CodecChanged));
        let cfg: Vec<_> = r.configs.iter().map(|c| (c.stream_id, c.codec)).collect();
        assert_eq!(
            cfg,
            [
                (0xE0, Some(Codec::H264)),
                // Audio appears: declared by the PSM, then configured by its first frame.
                (0xC0, Some(Codec::G711A)),
                (0xC0, Some(Codec::G711A)),
                (0xE0, Some(Codec::H265))
            ]
        );
    }
}

#[test]
fn private_and_padding_streams_with_start_codes_inside() {
    let mut s = Vec::new();
    pack_hdr(&mut s, 0);
    psm_of(&mut s, &[(0x1b, 0xe0)]);
    pes_of(&mut s, 0xe0, Some(0), &idr(2000));
    // Hikvision 0xBD private PES whose payload holds a pack start code and a PES start code.
    let fake: Vec<u8> = [
        &[0u8, 0, 1, 0xba, 0x44, 0, 4, 0, 4, 1][..],
        &[0, 0, 1, 0xe0, 0, 3, 0x80, 0, 0],
        &[0x11; 50],
    ]
    .concat();
    s.extend_from_slice(&[0, 0, 1, 0xbd]);
    s.extend_from_slice(&(fake.len() as u16).to_be_bytes());
    s.extend_from_slice(&fake);
    s.extend_from_slice(&[0, 0, 1, 0xbe, 0, 4, 0xff, 0xff, 0xff, 0xff]);
    pack_hdr(&mut s, 3600);
    pes_of(&mut s, 0xe0, Some(3600), &p_frame(500));
    for r in all_splits(&s) {
        assert_eq!(r.video().count(), 2);
        assert!(r.quirks.contains(&Quirk::PrivateStreamSkipped));
        assert_eq!(
            (r.stats.resyncs, r.stats.skipped_bytes, r.stats.packs),
            (0, 0, 2)
        );
    }
}

#[test]
fn discontinuity_drops_the_partial_frame_and_resyncs() {
    let mut mux = PsMuxer::new();
    let frames: Vec<Bytes> = (0..4)
        .map(|i| {
            mux.mux(&AccessUnit {
                stream_id: 0xE0,
                codec: Codec::H264,
                pts: Some(i * 3600),
                dts: None,
                keyframe: i == 0,
                data: Bytes::from(if i == 0 { idr(100_000) } else { p_frame(3000) }),
            })
            .expect("mux")
        })
        .collect();
    let mut d = PsDemuxer::new();
    let mut got = Vec::new();
    let mut drain = |d: &mut PsDemuxer| {
        while let Some(ev) = d.poll() {
            if let DemuxEvent::AccessUnit(a) = ev {
                got.push(a.pts);
            }
        }
    };
    d.push(frames[0].clone());
    // Frame 1 loses its middle.
    d.push(frames[1].slice(..1000));
    d.discontinuity();
    d.push(frames[1].slice(2000..));
    d.push(frames[2].clone());
    drain(&mut d);
    d.push(frames[3].clone());
    d.finish();
    drain(&mut d);
    // Frame 0 ended when frame 1 began (before the loss); frame 1 is dropped; 2 and 3 follow.
    assert_eq!(got, [Some(0), Some(7200), Some(10_800)]);
    assert!(
        !got.contains(&Some(3600)),
        "the damaged frame must not come out"
    );
    let s = d.stats();
    assert_eq!(s.discontinuities, 1);
    assert_eq!(s.dropped_frames, 1);
    assert!(s.skipped_bytes > 0);
}

#[test]
fn oversized_frame_is_dropped_memory_stays_bounded() {
    let mut mux = PsMuxer::new();
    let mut s = Vec::new();
    for (i, n) in [1000usize, 300_000, 1000].iter().enumerate() {
        s.extend_from_slice(
            &mux.mux(&AccessUnit {
                stream_id: 0xE0,
                codec: Codec::H264,
                pts: Some(i as u64 * 3600),
                dts: None,
                keyframe: i == 0,
                data: Bytes::from(if i == 0 { idr(*n) } else { p_frame(*n) }),
            })
            .expect("mux"),
        );
    }
    let mut d = PsDemuxer::with_config(DemuxConfig {
        max_frame_size: 100_000,
        ..DemuxConfig::default()
    });
    d.push(Bytes::from(s));
    d.finish();
    let mut sizes = Vec::new();
    let mut quirks = Vec::new();
    while let Some(ev) = d.poll() {
        match ev {
            DemuxEvent::AccessUnit(a) => sizes.push(a.pts),
            DemuxEvent::Quirk(q) => quirks.push(q),
            _ => {}
        }
    }
    assert_eq!(sizes, [Some(0), Some(7200)]);
    assert!(quirks.contains(&Quirk::FrameTooLarge));
    assert_eq!(d.stats().dropped_frames, 1);
}

#[test]
fn keyframe_without_parameter_sets_gets_the_cached_ones() {
    let mut mux = PsMuxer::new();
    let key_bare = [
        &[0u8, 0, 0, 1, 0x09, 0xf0][..],
        &[0, 0, 0, 1, 0x65, 0x88, 0x84, 0x21],
    ]
    .concat();
    let mut s = Vec::new();
    for (i, data) in [idr(50), p_frame(50), key_bare.clone()]
        .into_iter()
        .enumerate()
    {
        s.extend_from_slice(
            &mux.mux(&AccessUnit {
                stream_id: 0xE0,
                codec: Codec::H264,
                pts: Some(i as u64 * 3600),
                dts: None,
                keyframe: i != 1,
                data: Bytes::from(data),
            })
            .expect("mux"),
        );
    }
    for r in all_splits(&s) {
        let v: Vec<_> = r.video().collect();
        assert_eq!(v.len(), 3);
        // After the AUD: SPS, PPS, then the IDR slice.
        let expected = [
            &[0u8, 0, 0, 1, 0x09, 0xf0][..],
            SPS,
            PPS,
            &[0, 0, 0, 1, 0x65, 0x88, 0x84, 0x21],
        ]
        .concat();
        assert_eq!(&v[2].data[..], &expected[..]);
        assert!(v[2].keyframe);
        assert_eq!(r.stats.parameter_sets_prepended, 1);
    }
    // A key frame with no parameter sets ever seen is handed on as it is, with a quirk.
    let mut mux = PsMuxer::new();
    let only = mux
        .mux(&AccessUnit {
            stream_id: 0xE0,
            codec: Codec::H264,
            pts: Some(0),
            dts: None,
            keyframe: true,
            data: Bytes::from(key_bare),
        })
        .expect("mux");
    let r = demux_split(&only, 1400);
    assert!(r.quirks.contains(&Quirk::KeyframeWithoutParameterSets));
}

#[test]
fn mpeg1_pack_header_and_hikvision_stuffing() {
    let mut s = Vec::new();
    // MPEG-1 pack header (ISO/IEC 11172-1): '0010', SCR, mux rate; 12 bytes.
    s.extend_from_slice(&[0, 0, 1, 0xba, 0x21, 0, 1, 0, 1, 0x80, 0x1b, 0x83]);
    pes_of(&mut s, 0xe0, Some(0), &idr(100));
    // MPEG-2 pack with 6 counter stuffing bytes `ff ff 00 00 05 db` (Hikvision/Tiandy).
    pack::write(&mut s, 3600, 6106, &[0xff, 0xff, 0, 0, 5, 0xdb]);
    pes_of(&mut s, 0xe0, Some(3600), &p_frame(100));
    for r in all_splits(&s) {
        assert_eq!(r.video().count(), 2);
        assert!(r.quirks.contains(&Quirk::Mpeg1PackHeader));
        assert!(r.quirks.contains(&Quirk::PackStuffing));
        assert_eq!(r.stats.skipped_bytes, 0);
    }
}

#[test]
fn tiandy_psm_info_length_overrun() {
    // program_stream_info_length says 0x40 bytes of descriptors, there are none.
    let mut m = vec![
        0, 0, 1, 0xbc, 0, 18, 0xe0, 0xff, 0, 0x40, 0, 8, 0x24, 0xe0, 0, 0, 0x90, 0xc0, 0, 0,
    ];
    let crc = psm::crc32_mpeg2(&m);
    m.extend_from_slice(&crc.to_be_bytes());
    let mut s = Vec::new();
    pack_hdr(&mut s, 0);
    s.extend_from_slice(&m);
    let h265 = [
        &[0u8, 0, 0, 1, 0x40, 0x01, 0x0c][..],
        &[0, 0, 0, 1, 0x42, 0x01, 0x01],
        &[0, 0, 0, 1, 0x44, 0x01, 0xc1],
        &[0, 0, 0, 1, 0x26, 0x01, 0xaf],
    ]
    .concat();
    pes_of(&mut s, 0xe0, Some(0), &h265);
    pes_of(&mut s, 0xc0, Some(0), &[0xd5; 160]);
    for r in all_splits(&s) {
        assert!(r.quirks.contains(&Quirk::PsmDescriptorLengthMismatch));
        let codecs: Vec<Codec> = r.aus.iter().map(|a| a.codec).collect();
        assert!(codecs.contains(&Codec::H265) && codecs.contains(&Codec::G711A));
    }
}

#[test]
fn garbage_between_packs_is_skipped_and_counted() {
    let mut mux = PsMuxer::new();
    let mut s = Vec::new();
    for i in 0..3u64 {
        s.extend_from_slice(
            &mux.mux(&AccessUnit {
                stream_id: 0xE0,
                codec: Codec::H264,
                pts: Some(i * 3600),
                dts: None,
                keyframe: i == 0,
                data: Bytes::from(if i == 0 { idr(500) } else { p_frame(500) }),
            })
            .expect("mux"),
        );
        if i == 0 {
            s.extend_from_slice(&[0x47, 0x11, 0x22, 0, 0, 1, 0x05, 0x99, 0x98]);
        }
    }
    for r in all_splits(&s) {
        assert_eq!(r.stats.skipped_bytes, 9);
        assert_eq!(r.stats.resyncs, 1);
        // The frame before the garbage may have had more PES coming: dropped, not guessed.
        let pts: Vec<_> = r.video().map(|a| a.pts).collect();
        assert_eq!(pts, [Some(3600), Some(7200)]);
    }
}

#[test]
fn end_of_frame_hands_the_frame_on_at_once() {
    let mut mux = PsMuxer::new();
    let frame = |i: u64| AccessUnit {
        stream_id: 0xE0,
        codec: Codec::H264,
        pts: Some(i * 3600),
        dts: None,
        keyframe: i == 0,
        data: Bytes::from(if i == 0 { idr(80_000) } else { p_frame(900) }),
    };
    let f0 = mux.mux(&frame(0)).expect("mux");
    let f1 = mux.mux(&frame(1)).expect("mux");
    let units = |d: &mut PsDemuxer| {
        let mut n = 0;
        while let Some(ev) = d.poll() {
            n += usize::from(matches!(ev, DemuxEvent::AccessUnit(_)));
        }
        n
    };
    // Without the hint the frame waits for the next pack.
    let mut d = PsDemuxer::new();
    d.push(f0.clone());
    assert_eq!(units(&mut d), 0);
    // With it (RTP marker bit), at once, in RTP-sized pieces.
    let mut d = PsDemuxer::new();
    for c in f0.chunks(1400) {
        d.push(Bytes::copy_from_slice(c));
    }
    d.end_of_frame();
    assert_eq!(units(&mut d), 1);
    d.push(f1.slice(..500));
    d.end_of_frame(); // inside a PES: ignored
    d.push(f1.slice(500..));
    assert_eq!(units(&mut d), 0);
    d.end_of_frame();
    assert_eq!(units(&mut d), 1);
    assert_eq!(d.stats().dropped_frames, 0);
}

#[test]
fn psm_stream_types_of_annex_c() {
    // Every stream type GB/T 28181 Annex C lists, labelled straight from the PSM.
    let types = [
        (0x10, 0xe0, Codec::Mpeg4),
        (0x1b, 0xe1, Codec::H264),
        (0x24, 0xe2, Codec::H265),
        (0x80, 0xe3, Codec::SvacVideo),
        (0x90, 0xc0, Codec::G711A),
        (0x91, 0xc1, Codec::G711U),
        (0x92, 0xc2, Codec::G7221),
        (0x93, 0xc3, Codec::G7231),
        (0x99, 0xc4, Codec::G729),
        (0x9b, 0xc5, Codec::SvacAudio),
        (0x0f, 0xc6, Codec::Aac),
    ];
    let mut s = Vec::new();
    pack_hdr(&mut s, 0);
    psm_of(&mut s, &types.map(|(t, id, _)| (t, id)));
    for (_, id, c) in types {
        let payload: Vec<u8> = match c {
            Codec::H264 => idr(10),
            Codec::H265 => vec![0, 0, 0, 1, 0x26, 0x01, 0xaf],
            Codec::Aac => media::codec::aac::AdtsHeader::write(2, 4, 2, 4)
                .into_iter()
                .chain([1, 2, 3, 4])
                .collect(),
            _ => vec![0, 0, 1, 0xb6, 0x10, 0x20, 0x30, 0x40],
        };
        pes_of(&mut s, id, Some(0), &payload);
    }
    let r = demux_split(&s, 1400);
    for (_, id, c) in types {
        let au = r
            .aus
            .iter()
            .find(|a| a.stream_id == id)
            .expect("unit per stream");
        assert_eq!(au.codec, c, "stream {id:#x}");
    }
    // The lone H.265 IDR came without VPS/SPS/PPS; nothing else is unusual.
    assert_eq!(r.quirks, [Quirk::KeyframeWithoutParameterSets]);
}

#[test]
fn several_adts_frames_in_one_pes_become_one_unit_each() {
    let aac = split_adts(&Bytes::from(
        std::fs::read(testdata("srs_bench_avatar.aac")).expect("aac"),
    ));
    let mut s = Vec::new();
    pack_hdr(&mut s, 0);
    psm_of(&mut s, &[(0x0f, 0xc0)]);
    let three: Vec<u8> = aac[..3].iter().flat_map(|f| f.to_vec()).collect();
    pes_of(&mut s, 0xc0, Some(90_000), &three);
    let r = demux_split(&s, 1400);
    let a: Vec<_> = r.audio().collect();
    assert_eq!(a.len(), 3);
    for (i, u) in a.iter().enumerate() {
        assert_eq!(u.data, aac[i]);
        // 1024 samples at 44.1 kHz ≈ 2089.8 ticks of 90 kHz.
        assert_eq!(u.pts, Some(90_000 + (i as u64 * 1024 * 90_000) / 44_100));
    }
}
