//! RTP over TCP de-framing of the real captures: any chunking gives the same packets, the `$`
//! interleaved form, garbage and vendor prefixes are survived.

mod rtp_common;

use bytes::Bytes;
use media::rtp::RtpPacket;
use media::tcp::{
    Framing, TcpDeframer, TcpDeframerConfig, VENDOR_PREFIX_LEN, frame_interleaved, frame_rfc4571,
};
use proptest::prelude::*;
use rtp_common::*;

/// Both multi-packet captures back to back, as one connection would carry them.
fn stream() -> (Vec<u8>, Vec<Bytes>) {
    let mut raw = load(LAL_SEQ0_8);
    raw.extend(load(SRS_SEQ0_13));
    let pkts = split_rfc4571(&raw);
    (raw, pkts)
}

/// (SSRC, sequence number) of each packet, for readable comparisons.
fn ids(pkts: &[Bytes]) -> Vec<(u32, u16)> {
    pkts.iter()
        .map(|p| {
            let k = RtpPacket::parse(p.clone()).expect("yielded packets parse");
            (k.ssrc(), k.sequence())
        })
        .collect()
}

fn feed(d: &mut TcpDeframer, data: &[u8], cuts: &[usize]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut at = 0;
    for &c in cuts.iter().chain([&data.len()]) {
        let c = c.clamp(at, data.len());
        d.push(&data[at..c]);
        at = c;
        out.extend(std::iter::from_fn(|| d.poll()));
    }
    out
}

/// The last frame of a stream is confirmed by what follows it (or by a known SSRC); tests
/// end the stream with the start of another frame.
const TAIL: [u8; 3] = [0x05, 0x84, 0x80];

#[test]
fn whole_captures_in_one_push() {
    let (mut raw, pkts) = stream();
    raw.extend_from_slice(&TAIL);
    let mut d = TcpDeframer::new();
    let got = feed(&mut d, &raw, &[]);
    assert_eq!(ids(&got), ids(&pkts));
    assert!(got == pkts);
    assert_eq!(d.stats().frames, 23);
    assert_eq!((d.stats().skipped_bytes, d.stats().resyncs), (0, 0));
    for p in got {
        RtpPacket::parse(p).expect("every de-framed packet parses");
    }
}

#[test]
fn byte_by_byte() {
    let (mut raw, pkts) = stream();
    raw.extend_from_slice(&TAIL);
    let cuts: Vec<usize> = (1..raw.len()).collect();
    assert!(feed(&mut TcpDeframer::new(), &raw, &cuts) == pkts);
}

proptest! {
    #[test]
    fn any_chunking_gives_the_same_packets(mut cuts in proptest::collection::vec(0usize..25_800, 0..40)) {
        let (mut raw, pkts) = stream();
        raw.extend_from_slice(&TAIL);
        cuts.sort_unstable();
        let got = feed(&mut TcpDeframer::new(), &raw, &cuts);
        prop_assert!(got == pkts, "{:?}", ids(&got));
    }

    #[test]
    fn garbage_between_frames_is_skipped(
        at in proptest::collection::btree_set(1usize..22, 1..4),
        junk in proptest::collection::vec(any::<u8>(), 1..200),
        chunk in 1usize..3000,
    ) {
        let (_, pkts) = stream();
        let mut raw = Vec::new();
        for (i, p) in pkts.iter().enumerate() {
            if at.contains(&i) {
                raw.extend_from_slice(&junk);
            }
            raw.extend_from_slice(&frame_rfc4571(p).unwrap());
            raw.extend_from_slice(p);
        }
        raw.extend_from_slice(&TAIL);
        let mut d = TcpDeframer::new();
        let cuts: Vec<usize> = (chunk..raw.len()).step_by(chunk).collect();
        let got = feed(&mut d, &raw, &cuts);
        // Random junk may swallow a frame or two that follows it before sync is found
        // again, but never corrupts one: what comes out is a subsequence of what was sent,
        // and the last packets always make it.
        let mut it = pkts.iter();
        for g in &got {
            prop_assert!(it.any(|p| p == g), "yielded a packet that was not sent");
        }
        let (g, p) = (ids(&got), ids(&pkts));
        prop_assert_eq!(g.last(), p.last());
        prop_assert!(got.len() + 2 * at.len() >= pkts.len(), "{} of {}", got.len(), pkts.len());
        prop_assert!(d.buffered() <= 3, "only the tail is left");
    }
}

#[test]
fn garbage_at_start_and_between_is_counted() {
    let (_, pkts) = stream();
    // Bytes that can never start a plausible frame: lengths 0xFFFF with version 3 bodies.
    let junk = [0xFFu8; 37];
    let mut raw = junk.to_vec();
    for (i, p) in pkts.iter().enumerate() {
        raw.extend_from_slice(&frame_rfc4571(p).unwrap());
        raw.extend_from_slice(p);
        if i == 5 {
            raw.extend_from_slice(&junk[..11]);
        }
    }
    raw.extend_from_slice(&TAIL);
    let mut d = TcpDeframer::new();
    let got = feed(&mut d, &raw, &[100, 5000, 5001]);
    assert_eq!(ids(&got), ids(&pkts));
    assert!(got == pkts);
    let st = d.stats();
    assert_eq!(
        (st.skipped_bytes, st.resyncs, st.vendor_prefix_bytes),
        (48, 2, 0)
    );
}

#[test]
fn vendor_prefix_before_a_capture() {
    let (raw, pkts) = stream();
    // A vendor block of text and binary bytes, 256 long.
    let mut prefix: Vec<u8> = b"HKVS\x01\x00\x00\x00".to_vec();
    prefix.resize(VENDOR_PREFIX_LEN, 0x00);
    let mut all = prefix;
    all.extend_from_slice(&raw);
    all.extend_from_slice(&TAIL);
    let mut d = TcpDeframer::new();
    let got = feed(&mut d, &all, &[10, 255, 256, 257, 300]);
    assert_eq!(ids(&got), ids(&pkts));
    let st = d.stats();
    assert_eq!(
        (st.vendor_prefix_bytes, st.skipped_bytes, st.resyncs),
        (256, 0, 0)
    );
}

#[test]
fn interleaved_form_of_a_capture() {
    let (_, pkts) = stream();
    let mut raw = Vec::new();
    for p in &pkts {
        raw.extend_from_slice(&frame_interleaved(0, p).unwrap());
        raw.extend_from_slice(p);
    }
    // An RTCP sender report from the camera on channel 1 (RFC 3550 §6.4.1, 28 bytes).
    let mut rr = vec![0x80, 200, 0, 6, 0x0b, 0xeb, 0xdf, 0xa1];
    rr.resize(28, 0);
    raw.extend_from_slice(&frame_interleaved(1, &rr).unwrap());
    raw.extend_from_slice(&rr);
    raw.extend_from_slice(b"$\x00\x05\x84\x80");
    for cfg in [
        TcpDeframerConfig::default(),
        TcpDeframerConfig {
            framing: Framing::Interleaved,
            ..Default::default()
        },
    ] {
        let mut d = TcpDeframer::with_config(cfg);
        d.push(&raw);
        let frames: Vec<_> = std::iter::from_fn(|| d.poll_frame()).collect();
        assert_eq!(frames.len(), pkts.len() + 1);
        assert!(
            frames[..pkts.len()]
                .iter()
                .zip(&pkts)
                .all(|(f, p)| f.channel == Some(0) && f.packet == *p)
        );
        assert_eq!(frames[pkts.len()].channel, Some(1));
        assert!(media::rtp::looks_like_rtcp(&frames[pkts.len()].packet));
        assert_eq!(d.stats().skipped_bytes, 0);
    }
}

#[test]
fn known_ssrc_needs_no_follower() {
    let raw = load(SRS_AUDIO);
    let mut d = TcpDeframer::with_config(TcpDeframerConfig {
        expected_ssrc: Some(0x0bebd135),
        ..Default::default()
    });
    d.push(&frame_rfc4571(&raw).unwrap());
    d.push(&raw);
    assert_eq!(d.poll().as_deref(), Some(&raw[..]));
}

#[test]
fn yielded_packets_share_the_read_buffer() {
    let (mut raw, _) = stream();
    raw.extend_from_slice(&TAIL);
    let mut d = TcpDeframer::new();
    d.buffer_mut().extend_from_slice(&raw);
    let a = d.poll().unwrap();
    let b = d.poll().unwrap();
    // Consecutive packets sit 2 bytes (the next length prefix) apart in one allocation.
    assert_eq!(a.as_ptr() as usize + a.len() + 2, b.as_ptr() as usize);
}
