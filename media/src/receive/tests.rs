use super::*;

use bytes::BytesMut;

use crate::Codec;
use crate::packetize::RtpPacketizer;
use crate::ps::PsMuxer;

const SSRC: u32 = 200_000_001;

fn device() -> SocketAddr {
    "10.0.0.9:4000".parse().unwrap()
}

/// A video access unit: a key frame every `gop`, slice bytes odd (no start code inside).
fn video(i: usize, gop: usize, size: usize) -> AccessUnit {
    let key = i.is_multiple_of(gop);
    let mut d = Vec::with_capacity(size + 32);
    if key {
        d.extend_from_slice(&[
            0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xda, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80,
        ]);
    }
    d.extend_from_slice(&[0, 0, 0, 1, if key { 0x65 } else { 0x41 }]);
    d.extend((0..size).map(|k| ((k * 7 + i) as u8) | 1));
    AccessUnit {
        stream_id: 0xE0,
        codec: Codec::H264,
        pts: Some(90_000 + i as u64 * 3600),
        dts: None,
        keyframe: key,
        data: Bytes::from(d),
    }
}

fn audio(i: usize) -> AccessUnit {
    AccessUnit {
        stream_id: 0xC0,
        codec: Codec::G711A,
        pts: Some(90_000 + i as u64 * 3600),
        dts: None,
        keyframe: true,
        data: Bytes::from(vec![0xD5u8; 320]),
    }
}

/// The RTP packets of `n` frames (video, then audio in its own RTP frame), one `Vec` per
/// RTP frame, with whether it carries video and whether that is a key frame.
fn stream(n: usize, gop: usize, ssrc: u32) -> Vec<(bool, bool, Vec<Bytes>)> {
    let mut mux = PsMuxer::new();
    let mut pk = RtpPacketizer::new(ssrc);
    let mut out = Vec::new();
    for i in 0..n {
        for au in [video(i, gop, 3000), audio(i)] {
            let ps = mux.mux(&au).unwrap();
            let mut buf = BytesMut::new();
            let ts = (90_000 + i * 3600) as u32 + u32::from(au.codec.is_audio());
            let pkts: Vec<Bytes> = pk.packetize(ts, &ps, &mut buf).collect();
            out.push((au.codec.is_video(), au.keyframe, pkts));
        }
    }
    out
}

struct Seen {
    video: Vec<AccessUnit>,
    audio: usize,
    asks: usize,
    notices: Vec<Notice>,
}

fn run(
    rx: &mut Receiver,
    frames: &[(bool, bool, Vec<Bytes>)],
    skip: impl Fn(usize) -> bool,
) -> Seen {
    let t0 = Instant::now();
    let mut out = Vec::new();
    let mut seq = 0usize;
    for (k, (_, _, pkts)) in frames.iter().enumerate() {
        let now = t0 + Duration::from_millis(20 * k as u64);
        for p in pkts {
            if !skip(seq) {
                rx.on_packet(now, device(), p.clone(), &mut out);
            }
            seq += 1;
        }
    }
    rx.on_timeout(t0 + Duration::from_secs(3600), &mut out);
    let mut seen = Seen {
        video: Vec::new(),
        audio: 0,
        asks: 0,
        notices: Vec::new(),
    };
    for r in out {
        match r {
            Received::Unit(au) if au.codec.is_video() => seen.video.push(au),
            Received::Unit(_) => seen.audio += 1,
            Received::KeyframeNeeded => seen.asks += 1,
            Received::Notice(n) => seen.notices.push(n),
            _ => {}
        }
    }
    seen
}

#[test]
fn a_clean_stream_comes_out_whole() {
    let frames = stream(30, 10, SSRC);
    let mut rx = Receiver::new(
        Instant::now(),
        ReceiverConfig::udp(SSRC, vec![device().ip()]),
    );
    let seen = run(&mut rx, &frames, |_| false);
    assert_eq!(seen.video.len(), 30);
    assert_eq!(seen.audio, 30);
    assert_eq!(
        seen.asks, 0,
        "a stream that starts on a key frame needs none"
    );
    for (i, au) in seen.video.iter().enumerate() {
        assert_eq!(au.data, video(i, 10, 3000).data, "frame {i}");
    }
    assert_eq!(rx.counters().holds, 0);
    assert_eq!(rx.counters().held_video_frames, 0);
    assert_eq!(rx.diagnosis().accepted, rx.diagnosis().packets);
}

#[test]
fn after_a_loss_video_waits_for_the_next_key_frame_and_audio_flows() {
    let frames = stream(30, 10, SSRC);
    // Lose one packet of video frame 3 (a P-frame): frames 3..9 would be smeared.
    let first_of = |k: usize| frames[..k].iter().map(|f| f.2.len()).sum::<usize>();
    let lost = first_of(6) + 1; // frame index 3 is RTP frame 6 (video, audio alternate)
    assert!(frames[6].0 && !frames[6].1 && frames[6].2.len() > 2);
    let mut rx = Receiver::new(
        Instant::now(),
        ReceiverConfig::udp(SSRC, vec![device().ip()]),
    );
    let seen = run(&mut rx, &frames, |s| s == lost);
    let pts: Vec<u64> = seen
        .video
        .iter()
        .map(|a| (a.pts.unwrap() - 90_000) / 3600)
        .collect();
    let expect: Vec<u64> = (0..3).chain(10..30).collect();
    assert_eq!(
        pts, expect,
        "no frame between the loss and the next key frame"
    );
    assert_eq!(seen.audio, 30, "audio keeps flowing");
    assert_eq!(seen.asks, 1, "one key-frame request per hold");
    assert_eq!(rx.counters().holds, 1);
    assert_eq!(rx.counters().held_video_frames, 6, "P-frames 4..9");
    assert_eq!(rx.counters().incomplete_rtp_frames, 1);
}

#[test]
fn a_lost_audio_frame_holds_no_video_and_a_lost_video_start_does() {
    let frames = stream(30, 10, SSRC);
    let first_of = |k: usize| frames[..k].iter().map(|f| f.2.len()).sum::<usize>();
    // RTP frame 7 is the audio of frame 3: one packet, gone whole. Nothing tells what it
    // was, but the next video frame keeps the cadence.
    assert!(!frames[7].0 && frames[7].2.len() == 1);
    let audio = first_of(7);
    let mut rx = Receiver::new(
        Instant::now(),
        ReceiverConfig::udp(SSRC, vec![device().ip()]),
    );
    let seen = run(&mut rx, &frames, |s| s == audio);
    assert_eq!(seen.video.len(), 30, "no video held for an audio loss");
    assert_eq!(seen.audio, 29);
    assert_eq!(seen.asks, 0);
    assert_eq!(rx.counters().losses_not_video, 1);

    // The first packet of video frame 3 (its PES start) is lost: what is left shows no
    // video, but the next video frame comes two periods after the last: held.
    let start = first_of(6);
    let mut rx = Receiver::new(
        Instant::now(),
        ReceiverConfig::udp(SSRC, vec![device().ip()]),
    );
    let seen = run(&mut rx, &frames, |s| s == start);
    let pts: Vec<u64> = seen
        .video
        .iter()
        .map(|a| (a.pts.unwrap() - 90_000) / 3600)
        .collect();
    assert_eq!(pts, (0..3).chain(10..30).collect::<Vec<_>>());
    assert_eq!(seen.asks, 1);
    assert_eq!(rx.counters().losses_not_video, 0);
}

#[test]
fn a_long_hold_asks_again_every_half_second() {
    // A key frame every 50 frames; RTP frames 20 ms apart: a loss at frame 3 holds for
    // 47 frames (94 RTP frames, 1.86 s).
    let frames = stream(60, 50, SSRC);
    let first_of = |k: usize| frames[..k].iter().map(|f| f.2.len()).sum::<usize>();
    let lost = first_of(6) + 1;
    let mut rx = Receiver::new(
        Instant::now(),
        ReceiverConfig::udp(SSRC, vec![device().ip()]),
    );
    let seen = run(&mut rx, &frames, |s| s == lost);
    assert_eq!(seen.asks, 4, "at 0, 0.5, 1.0 and 1.5 s");
    assert_eq!(rx.counters().holds, 1);
    assert_eq!(seen.video.len(), 3 + 10);
}

#[test]
fn without_the_hold_the_dependent_frames_pass() {
    let frames = stream(30, 10, SSRC);
    let first_of = |k: usize| frames[..k].iter().map(|f| f.2.len()).sum::<usize>();
    let lost = first_of(6) + 1;
    let cfg = ReceiverConfig {
        hold_after_loss: false,
        ..ReceiverConfig::udp(SSRC, vec![device().ip()])
    };
    let mut rx = Receiver::new(Instant::now(), cfg);
    let seen = run(&mut rx, &frames, |s| s == lost);
    assert_eq!(seen.video.len(), 29, "only the damaged frame is dropped");
    assert_eq!(seen.asks, 0);
}

#[test]
fn a_stream_joined_mid_gop_starts_at_a_key_frame_and_asks_once() {
    let frames = stream(30, 10, SSRC);
    let first_of = |k: usize| frames[..k].iter().map(|f| f.2.len()).sum::<usize>();
    // The first 4 frames (8 RTP frames) never arrived: the stream starts at P-frame 4.
    let start = first_of(8);
    let mut rx = Receiver::new(
        Instant::now(),
        ReceiverConfig::udp(SSRC, vec![device().ip()]),
    );
    let seen = run(&mut rx, &frames, |s| s < start);
    assert_eq!(seen.video[0].pts, Some(90_000 + 10 * 3600));
    assert!(seen.video[0].keyframe);
    assert_eq!(seen.video.len(), 20);
    assert_eq!(seen.asks, 1);
    assert_eq!(rx.counters().holds, 0, "the start is no loss");
}

#[test]
fn losses_in_a_row_make_one_hold() {
    let frames = stream(40, 10, SSRC);
    let first_of = |k: usize| frames[..k].iter().map(|f| f.2.len()).sum::<usize>();
    let lost = [
        first_of(4) + 1,
        first_of(8) + 1,
        first_of(12) + 1,
        first_of(26) + 1,
    ];
    let mut rx = Receiver::new(
        Instant::now(),
        ReceiverConfig::udp(SSRC, vec![device().ip()]),
    );
    let seen = run(&mut rx, &frames, |s| lost.contains(&s));
    let pts: Vec<u64> = seen
        .video
        .iter()
        .map(|a| (a.pts.unwrap() - 90_000) / 3600)
        .collect();
    let expect: Vec<u64> = (0..2).chain(10..13).chain(20..40).collect();
    assert_eq!(pts, expect);
    assert_eq!(seen.asks, 2);
    assert_eq!(rx.counters().holds, 2);
}

#[test]
fn media_from_another_address_is_dropped_and_explained() {
    let frames = stream(3, 10, SSRC);
    let intruder: SocketAddr = "10.0.0.66:4000".parse().unwrap();
    let now = Instant::now();
    let mut rx = Receiver::new(now, ReceiverConfig::udp(SSRC, vec![device().ip()]));
    let mut out = Vec::new();
    let mut sent = 0;
    for p in frames.iter().flat_map(|f| f.2.iter()) {
        rx.on_packet(now, intruder, p.clone(), &mut out);
        sent += 1;
    }
    assert_eq!(out, vec![Received::Notice(Notice::ForeignSource(intruder))]);
    assert_eq!(rx.diagnosis().other_source, sent);
    assert_eq!(rx.accepted(), 0);
    let why = rx.diagnosis().explain(SSRC, "udp 10.0.0.5:30000");
    assert!(
        why.contains("10.0.0.66:4000") && why.contains("not the device's address"),
        "{why}"
    );
    assert!(!rx.allows(intruder.ip()) && rx.allows(device().ip()));
    let seen = run(&mut rx, &frames, |_| false);
    assert_eq!(seen.video.len(), 3, "the device itself is heard");
}

#[test]
fn a_wrong_ssrc_is_dropped_unless_latched_after_a_second() {
    let frames = stream(5, 10, 12_345);
    let now = Instant::now();
    let mut rx = Receiver::new(now, ReceiverConfig::udp(SSRC, vec![device().ip()]));
    let seen = run(&mut rx, &frames, |_| false);
    assert!(seen.video.is_empty());
    let why = rx.diagnosis().explain(SSRC, "udp 10.0.0.5:30000");
    assert!(
        why.starts_with("SSRC mismatch: expected 0200000001"),
        "{why}"
    );
    assert!(why.contains("0000012345"), "{why}");

    let cfg = ReceiverConfig {
        policy: SsrcPolicy::Latch,
        ..ReceiverConfig::tcp(SSRC, vec![device().ip()])
    };
    // Within the first second a latch-policy receiver still waits for the right SSRC.
    let mut rx = Receiver::new(now, cfg.clone());
    let mut out = Vec::new();
    rx.on_packet(now, device(), frames[0].2[0].clone(), &mut out);
    assert!(out.is_empty());
    let mut rx = Receiver::new(now - Duration::from_secs(2), cfg);
    let seen = run(&mut rx, &frames, |_| false);
    assert_eq!(seen.video.len(), 5);
    assert_eq!(
        seen.notices,
        vec![Notice::SsrcLatched {
            expected: SSRC,
            got: 12_345
        }]
    );
}

#[test]
fn nothing_or_garbage_is_explained() {
    let now = Instant::now();
    let mut rx = Receiver::new(now, ReceiverConfig::udp(SSRC, Vec::new()));
    assert!(
        rx.diagnosis()
            .explain(SSRC, "udp 1.2.3.4:5")
            .starts_with("no packets arrived at udp 1.2.3.4:5")
    );
    rx.on_packet(now, device(), Bytes::from_static(b"hello"), &mut Vec::new());
    assert!(rx.diagnosis().explain(SSRC, "x").contains("were not RTP"));
}

#[test]
fn a_tcp_reconnect_is_a_loss() {
    let frames = stream(20, 10, SSRC);
    let now = Instant::now();
    let mut rx = Receiver::new(now, ReceiverConfig::tcp(SSRC, vec![device().ip()]));
    let mut out = Vec::new();
    for (k, f) in frames.iter().enumerate() {
        if k == 6 {
            rx.discontinuity(now, &mut out);
        }
        for p in &f.2 {
            rx.on_packet(now, device(), p.clone(), &mut out);
        }
    }
    let video: Vec<u64> = out
        .iter()
        .filter_map(|r| match r {
            Received::Unit(au) if au.codec.is_video() => Some((au.pts.unwrap() - 90_000) / 3600),
            _ => None,
        })
        .collect();
    // Frame 3 arrives whole after the reconnect, but frames 3..9 are held all the same:
    // the transport could have lost anything.
    assert_eq!(video, (0..3).chain(10..20).collect::<Vec<_>>());
    assert_eq!(
        out.iter()
            .filter(|r| **r == Received::KeyframeNeeded)
            .count(),
        1
    );
}
