//! Real camera captures (tests/data, provenance in its README): every packet parses with the
//! documented header values, and frames assemble as the cameras delimited them.

mod rtp_common;

use std::time::{Duration, Instant};

use media::reorder::{Frame, FrameAssembler, Reorder, ReorderConfig};
use media::rtp::RtpPacket;
use media::stats::StreamStats;
use rtp_common::*;

fn parse_all(name: &str) -> Vec<RtpPacket> {
    packets(name)
        .into_iter()
        .map(|b| RtpPacket::parse(b).unwrap_or_else(|e| panic!("{name}: {e}")))
        .collect()
}

fn frames(pkts: &[RtpPacket]) -> Vec<Frame> {
    let mut a = FrameAssembler::new();
    let mut out = Vec::new();
    for p in pkts {
        a.push(p.clone());
        out.extend(std::iter::from_fn(|| a.poll()));
    }
    a.flush();
    out.extend(std::iter::from_fn(|| a.poll()));
    out
}

#[test]
fn lal_two_p_frames() {
    let p = parse_all(LAL_SEQ0_8);
    assert_eq!(p.len(), 9);
    for (i, k) in p.iter().enumerate() {
        assert_eq!(k.sequence(), i as u16);
        assert_eq!(k.ssrc(), 0x0bebc265);
        assert_eq!(k.payload_type(), 96);
        assert_eq!(k.timestamp(), if i < 4 { 3600 } else { 7200 });
        assert_eq!(k.marker(), i == 3 || i == 8, "marker on seq 3 and 8 only");
        assert!(k.extension().is_none() && k.padding_len() == 0 && k.csrcs().len() == 0);
        assert!(!k.payload_looks_like_ts());
    }
    let f = frames(&p);
    assert_eq!(f.len(), 2);
    for (fr, (ts, first, last)) in f.iter().zip([(3600, 0, 3), (7200, 4, 8)]) {
        assert_eq!((fr.timestamp, fr.first_seq, fr.last_seq), (ts, first, last));
        assert!(fr.complete && fr.marker);
        let whole = fr.to_contiguous();
        assert_eq!(
            &whole[..4],
            &[0, 0, 1, 0xBA],
            "each frame starts with a pack header"
        );
    }
    let payload: usize = p.iter().map(|k| k.payload().len()).sum();
    assert_eq!(f.iter().map(Frame::len).sum::<usize>(), payload);
}

#[test]
fn srs_keyframe_audio_and_p_frame() {
    let p = parse_all(SRS_SEQ0_13);
    assert_eq!(p.len(), 14);
    for (i, k) in p.iter().enumerate() {
        assert_eq!(k.sequence(), i as u16);
        assert_eq!(k.ssrc(), 0x0bebdfa1);
        assert_eq!(k.timestamp(), if i <= 10 { 0 } else { 3600 });
        assert!(!k.marker(), "this capture has no markers");
    }
    assert_eq!(&p[0].payload()[..4], &[0, 0, 1, 0xBA]);
    assert_eq!(&p[11].payload()[..4], &[0, 0, 1, 0xC0]);
    // No markers: frames end at the timestamp change; the last one, ended by the flush, may
    // have lost its tail as far as the receiver can tell.
    let f = frames(&p);
    let got: Vec<_> = f
        .iter()
        .map(|f| (f.timestamp, f.first_seq, f.last_seq, f.complete, f.marker))
        .collect();
    assert_eq!(
        got,
        vec![(0, 0, 10, true, false), (3600, 11, 13, false, false)]
    );
}

#[test]
fn single_packets() {
    let [k] = &parse_all(LAL_SEQ291)[..] else {
        panic!()
    };
    assert_eq!(
        (
            k.sequence(),
            k.timestamp(),
            k.ssrc(),
            k.raw().len(),
            k.marker()
        ),
        (291, 208800, 0x0bebc265, 1412, false)
    );
    assert_eq!(&k.payload()[..4], &[0, 0, 1, 0xBA]);
    let [a] = &parse_all(SRS_AUDIO)[..] else {
        panic!()
    };
    assert_eq!(
        (a.sequence(), a.timestamp(), a.ssrc(), a.raw().len()),
        (31916, 95652000, 0x0bebd135, 128)
    );
    assert_eq!(&a.payload()[..4], &[0, 0, 1, 0xC0]);
    assert_eq!(
        a.payload().len(),
        116,
        "audio PES: 6-byte header + PES_packet_length 110"
    );
}

#[test]
fn udp_receive_path_over_a_capture() {
    // Datagrams in a shuffled order, 1 ms apart: reorder, assemble, count.
    let p = parse_all(LAL_SEQ0_8);
    let order = [1usize, 0, 2, 4, 3, 5, 8, 6, 7];
    let t0 = Instant::now();
    let mut r = Reorder::new(ReorderConfig::udp());
    let mut a = FrameAssembler::new();
    let mut st = StreamStats::new(90_000);
    let mut out = Vec::new();
    for (i, &k) in order.iter().enumerate() {
        let now = t0 + Duration::from_millis(i as u64);
        st.on_packet(now, &p[k]);
        r.push(now, p[k].clone());
        while let Some(pkt) = r.poll(now) {
            a.push(pkt);
        }
        out.extend(std::iter::from_fn(|| a.poll()));
    }
    let end = r.poll_timeout().expect("start-up hold still running");
    while let Some(pkt) = r.poll(end) {
        a.push(pkt);
    }
    out.extend(std::iter::from_fn(|| a.poll()));
    assert_eq!(out, frames(&p), "same frames as in-order delivery");
    let s = st.snapshot(t0 + Duration::from_millis(9));
    assert_eq!(
        (s.packets, s.lost, s.reordered, s.ssrc),
        (9, 0, 4, Some(0x0bebc265))
    );
    assert_eq!(r.stats().lost, 0);
}
