//! Every PS capture in tests/data (provenance in its README) demuxes, with concrete outcomes.

mod ps_common;

use bytes::Bytes;
use media::Codec;
use media::codec::{h264, nal::NalUnits};
use media::ps::Quirk;
use ps_common::*;

#[test]
fn gb28181_test_tool_g711_file() {
    // 3,627,209 B: 7,982 packs, 320 system headers + PSMs, 35,353 G.711 PES of 80 B.
    let data = std::fs::read(testdata("Audio_G711_PS2.mpg")).expect("testdata");
    let r = demux_split(&data, 64 * 1024);
    assert_eq!(r.stats.packs, 7982);
    assert_eq!(r.stats.psms, 320);
    assert_eq!(r.stats.system_headers, 320);
    assert_eq!(
        r.video().count(),
        0,
        "the PSM announces H.264 but none is sent"
    );
    let audio: Vec<_> = r.audio().collect();
    assert_eq!(audio.len(), 35_353);
    assert!(
        audio
            .iter()
            .all(|a| a.codec == Codec::G711A && a.stream_id == 0xC0 && a.pts.is_some())
    );
    // 35,351 PES carry 80 bytes; the two in MPEG-1 syntax (offsets 0x1ca and 0x27a, PTS+DTS
    // with the `0011` prefix) carry 160: 2,828,400 bytes of G.711 in all.
    assert_eq!(audio.iter().filter(|a| a.data.len() == 80).count(), 35_351);
    assert_eq!(audio.iter().filter(|a| a.data.len() == 160).count(), 2);
    assert_eq!(audio.iter().map(|a| a.data.len()).sum::<usize>(), 2_828_400);
    assert!(r.quirks.contains(&Quirk::PsmDescriptorLengthMismatch));
    assert_eq!(r.stats.quirks.get(Quirk::PsmDescriptorLengthMismatch), 320);
    assert_eq!(r.stats.quirks.get(Quirk::Mpeg1PesHeader), 2);
    assert_eq!(
        (
            r.stats.skipped_bytes,
            r.stats.resyncs,
            r.stats.dropped_frames
        ),
        (0, 0, 0)
    );
    // The PSM announces the audio stream first; its first frame adds the sample rate.
    assert_eq!(r.configs.len(), 2);
    assert_eq!(r.configs[0].codec, Some(Codec::G711A));
    assert_eq!(r.configs[0].sample_rate, None);
    assert_eq!(r.configs[1].sample_rate, Some(8000));
    // Quirks are reported once each, though counted every time.
    let mut q = r.quirks.clone();
    q.dedup();
    assert_eq!(q.len(), r.quirks.len());
}

#[test]
fn hikvision_keyframe_payloads() {
    let data =
        std::fs::read(testdata("srs_ps_payloads_seq31813-31914_filler.ps")).expect("fixture");
    let r = demux_split(&data, 1400);
    let video: Vec<_> = r.video().collect();
    assert_eq!(video.len(), 1);
    let key = video[0];
    assert!(key.keyframe);
    assert_eq!(key.codec, Codec::H264);
    // SPS/PPS/SEI PES (PTS on the first only) and three IDR PES of 65,478/65,478/10,178 bytes
    // make one access unit.
    let types: Vec<u8> = NalUnits::new(&key.data)
        .map(|n| h264::nal_type(n[0]))
        .collect();
    assert_eq!(types, [7, 8, 6, 5]);
    assert_eq!(r.stats.pes_packets, 6);
    assert!(r.quirks.contains(&Quirk::PrivateStreamSkipped));
    assert!(r.quirks.contains(&Quirk::PackStuffing));
    let cfg = r
        .configs
        .iter()
        .find(|c| c.stream_id == 0xE0)
        .expect("video config");
    assert_eq!(
        (cfg.width, cfg.height, cfg.frame_rate),
        (Some(2560), Some(1440), Some(25.0))
    );
    assert_eq!(cfg.codec_string.as_deref(), Some("avc1.4d0032"));
    assert_eq!(r.stats.skipped_bytes, 0);
}

#[test]
fn srs_rtp_keyframe_private_stream_audio_and_p_frame() {
    let data =
        std::fs::read(testdata("srs_ps_rtp_seq0-13_ssrc0bebdfa1.rfc4571")).expect("testdata");
    let payloads = rfc4571_payloads(&data);
    assert_eq!(payloads.len(), 14);
    let r = demux_chunks(payloads.into_iter().map(|(_, p)| p));
    let video: Vec<_> = r.video().collect();
    assert_eq!(video.len(), 2);
    assert!(video[0].keyframe && !video[1].keyframe);
    assert_eq!(video[1].pts.unwrap() - video[0].pts.unwrap(), 3600);
    let types: Vec<u8> = NalUnits::new(&video[0].data)
        .map(|n| h264::nal_type(n[0]))
        .take(3)
        .collect();
    assert_eq!(types, [7, 8, 6]);
    // The PSM labels 0xC0 as AAC (stream type 0x0F).
    let audio: Vec<_> = r.audio().collect();
    assert_eq!(audio.len(), 2);
    assert!(audio.iter().all(|a| a.codec == Codec::Aac));
    // The 0xBD PES is split across packets 9/10 and skipped by its length.
    assert!(r.quirks.contains(&Quirk::PrivateStreamSkipped));
    assert_eq!((r.stats.resyncs, r.stats.dropped_frames), (0, 0));
}

#[test]
fn lal_two_p_frames_without_psm() {
    let data = std::fs::read(testdata("lal_ps_rtp_seq0-8_ssrc0bebc265.rfc4571")).expect("testdata");
    let r = demux_chunks(rfc4571_payloads(&data).into_iter().map(|(_, p)| p));
    let video: Vec<_> = r.video().collect();
    assert_eq!(video.len(), 2);
    assert!(video.iter().all(|a| a.codec == Codec::H264 && !a.keyframe));
    assert_eq!(video[1].pts.unwrap() - video[0].pts.unwrap(), 3600);
    assert!(r.quirks.contains(&Quirk::NoPsm));
}

#[test]
fn lal_keyframe_start_is_not_emitted_whole() {
    // One packet: pack, system header, PSM, SPS/PPS and the start of an IDR PES that continues
    // beyond the capture: the frame is cut short and must not come out as if whole.
    let data = std::fs::read(testdata("lal_ps_rtp_seq291_ssrc0bebc265.rtp")).expect("testdata");
    let p = media::rtp::RtpPacket::parse(Bytes::from(data)).expect("rtp");
    let r = demux_chunks([p.payload().clone()]);
    assert_eq!(r.video().count(), 0);
    assert_eq!(r.stats.dropped_frames, 1);
    assert_eq!(r.stats.psms, 1);
}

#[test]
fn srs_single_audio_packet() {
    let data =
        std::fs::read(testdata("srs_ps_rtp_audio_seq31916_ssrc0bebd135.rtp")).expect("testdata");
    let p = media::rtp::RtpPacket::parse(Bytes::from(data)).expect("rtp");
    let r = demux_chunks([p.payload().clone()]);
    let audio: Vec<_> = r.audio().collect();
    assert_eq!(audio.len(), 1);
    // PES_packet_length 110: 3 + 7 header bytes (PTS and two stuffing bytes), 100 of ADTS.
    assert_eq!(audio[0].data.len(), 100);
    assert_eq!(
        audio[0].codec,
        Codec::Aac,
        "no PSM: AAC recognised by its ADTS header"
    );
    assert!(r.quirks.contains(&Quirk::NoPsm));
    assert_eq!(r.configs[0].sample_rate, Some(44_100));
}

#[test]
fn fragments() {
    let frag = |n: &str| Bytes::from(std::fs::read(testdata(n)).expect("testdata"));
    // A whole private PES: skipped, nothing else.
    let r = demux_chunks([frag("srs_private_stream_pes.bin")]);
    assert!(r.aus.is_empty());
    assert_eq!(r.stats.skipped_stream_bytes, 112);
    assert_eq!(r.stats.skipped_bytes, 0);
    // Pack header with counter stuffing, audio PES header and 118 filler bytes.
    let r = demux_chunks([frag("srs_pack_header_audio_pes_filler.bin")]);
    assert!(r.quirks.contains(&Quirk::PackStuffing));
    assert_eq!(r.stats.packs, 1);
    assert_eq!(r.stats.pes_packets, 1);
    // An audio PES header without its payload: cut short, nothing handed on.
    let r = demux_chunks([frag("srs_partial_pes_header.bin")]);
    assert!(r.aus.is_empty());
    // Not a start code: skipped while looking for a pack header.
    let r = demux_chunks([frag("srs_invalid_pes_start.bin")]);
    assert!(r.aus.is_empty());
    assert_eq!(r.stats.skipped_bytes, 8);
    assert_eq!(r.stats.resyncs, 1);
}
