//! Reorder buffer and frame assembly under random shuffles, drops and duplicates, across the
//! 65535 → 0 wrap, with simulated time (no sleeping).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use media::packetize::RtpPacketizer;
use media::reorder::{FrameAssembler, Reorder, ReorderConfig};
use media::rtp::RtpPacket;
use proptest::prelude::*;

/// Three packets per frame, frames 3600 ticks apart, starting at `seq0`.
fn stream(seq0: u16, frames: u32) -> Vec<Bytes> {
    let mut p = RtpPacketizer::new(9)
        .with_sequence(seq0)
        .with_max_payload(100);
    let mut buf = BytesMut::new();
    (0..frames)
        .flat_map(|f| {
            p.packetize(f * 3600, &[f as u8; 300], &mut buf)
                .collect::<Vec<_>>()
        })
        .collect()
}

proptest! {
    #[test]
    fn shuffled_dropped_duplicated(
        seq0 in prop_oneof![Just(65_500u16), any::<u16>()],
        swaps in proptest::collection::vec((0usize..240, 1usize..6), 0..60),
        drops in proptest::collection::btree_set(0usize..240, 0..10),
        dups in proptest::collection::btree_set(0usize..240, 0..10),
    ) {
        let pkts = stream(seq0, 80);
        let mut order: Vec<usize> = (0..pkts.len()).collect();
        for (at, d) in swaps {
            let b = (at + d).min(order.len() - 1);
            order.swap(at, b);
        }
        let t0 = Instant::now();
        let mut r = Reorder::new(ReorderConfig::udp());
        let mut a = FrameAssembler::new();
        let mut out = Vec::new();
        let mut frames = Vec::new();
        let mut now = t0;
        let mut sent = 0u64;
        for &i in &order {
            if drops.contains(&i) {
                continue;
            }
            let copies = if dups.contains(&i) { 2 } else { 1 };
            for _ in 0..copies {
                now += Duration::from_millis(1);
                sent += 1;
                r.push(now, RtpPacket::parse(pkts[i].clone()).unwrap());
                while let Some(p) = r.poll(now) {
                    out.push(p.sequence().wrapping_sub(seq0) as usize);
                    a.push(p);
                }
                frames.extend(std::iter::from_fn(|| a.poll()));
            }
        }
        // Time passes: the deadline releases whatever waits.
        while let Some(t) = r.poll_timeout() {
            while let Some(p) = r.poll(t) {
                out.push(p.sequence().wrapping_sub(seq0) as usize);
                a.push(p);
            }
        }
        a.flush();
        frames.extend(std::iter::from_fn(|| a.poll()));

        // In order, no duplicates, never a dropped packet.
        prop_assert!(out.windows(2).all(|w| w[0] < w[1]), "{:?}", out);
        prop_assert!(out.iter().all(|i| !drops.contains(i)));
        let st = r.stats();
        prop_assert_eq!(st.received, sent);
        prop_assert_eq!(st.delivered as usize, out.len());
        prop_assert_eq!(st.delivered + st.duplicates + st.late, sent);
        // Every packet missing from the output is counted lost or arrived late.
        let first = out.first().copied().unwrap_or(0);
        let last = out.last().copied().unwrap_or(0);
        prop_assert_eq!(st.lost as usize, last - first + 1 - out.len());
        // Never a damaged frame passed as whole: complete implies all three packets came
        // out (the first frame excepted: the receiver cannot know what came before it). And
        // a frame whose packets and predecessor's marker packet all came out is complete.
        for (n, f) in frames.iter().enumerate() {
            let k = (f.timestamp / 3600) as usize;
            let all = (3 * k..3 * k + 3).all(|i| out.contains(&i));
            if f.complete && n > 0 {
                prop_assert!(all, "frame {} passed as whole with a packet missing", k);
                prop_assert_eq!(f.to_contiguous(), Bytes::from(vec![k as u8; 300]));
            }
            if all && (k == 0 || out.contains(&(3 * k - 1))) {
                prop_assert!(f.complete, "frame {} intact but flagged", k);
            }
        }
    }
}

#[test]
fn timeouts_are_driven_by_the_callers_clock() {
    let pkts = stream(0, 2);
    let t0 = Instant::now();
    let mut r = Reorder::new(ReorderConfig {
        max_wait: Duration::from_millis(20),
        ..ReorderConfig::udp()
    });
    r.push(t0, RtpPacket::parse(pkts[0].clone()).unwrap());
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_millis(20)));
    assert!(r.poll(t0 + Duration::from_millis(19)).is_none());
    assert_eq!(
        r.poll(t0 + Duration::from_millis(20)).unwrap().sequence(),
        0
    );
    // Seq 1 lost; 2 arrives at 30 ms and waits until 50 ms.
    r.push(
        t0 + Duration::from_millis(30),
        RtpPacket::parse(pkts[2].clone()).unwrap(),
    );
    assert!(r.poll(t0 + Duration::from_millis(49)).is_none());
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_millis(50)));
    assert_eq!(
        r.poll(t0 + Duration::from_millis(50)).unwrap().sequence(),
        2
    );
    assert_eq!(r.stats().lost, 1);
}
