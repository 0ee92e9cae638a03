//! Reorder buffer tests: simulated time, no sleeping.

use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::*;
use crate::rtp::RtpBuilder;

fn pkt(seq: u16) -> RtpPacket {
    pkt_ssrc(seq, 7)
}

fn pkt_ssrc(seq: u16, ssrc: u32) -> RtpPacket {
    let mut b = BytesMut::new();
    RtpBuilder::new(96, seq, 3600, ssrc)
        .write(&seq.to_be_bytes(), &mut b)
        .unwrap();
    RtpPacket::parse(b.freeze()).unwrap()
}

fn drain(r: &mut Reorder, now: Instant) -> Vec<u16> {
    std::iter::from_fn(|| r.poll(now))
        .map(|p| p.sequence())
        .collect()
}

const MS: Duration = Duration::from_millis(1);

/// A UDP buffer whose first packet, `first`, arrived 50 ms before `t0`: its start-up hold
/// ends at `t0`, so that tests not about the hold can look at what follows.
fn started(first: u16, t0: Instant) -> Reorder {
    let mut r = Reorder::new(ReorderConfig::udp());
    r.push(t0 - 50 * MS, pkt(first));
    r
}

#[test]
fn in_order_passes_straight_through() {
    let t0 = Instant::now();
    let mut r = Reorder::new(ReorderConfig::udp());
    assert_eq!(r.push(t0, pkt(0)), PushOutcome::Accepted);
    // The first packet waits max_wait for any sent before it.
    assert_eq!(drain(&mut r, t0), Vec::<u16>::new());
    assert_eq!(r.poll_timeout(), Some(t0 + 50 * MS));
    let t1 = t0 + 50 * MS;
    assert_eq!(drain(&mut r, t1), vec![0]);
    for s in 1..5 {
        assert_eq!(r.push(t1, pkt(s)), PushOutcome::Accepted);
        assert_eq!(drain(&mut r, t1), vec![s]);
    }
    assert_eq!(r.poll_timeout(), None);
    assert_eq!(r.stats().lost, 0);
}

#[test]
fn swapped_packets_are_reordered_without_waiting() {
    let t0 = Instant::now();
    let mut r = started(10, t0);
    r.push(t0, pkt(12));
    assert_eq!(drain(&mut r, t0), vec![10]);
    assert_eq!(r.poll_timeout(), Some(t0 + 50 * MS));
    r.push(t0 + MS, pkt(11));
    assert_eq!(drain(&mut r, t0 + MS), vec![11, 12]);
    let st = r.stats();
    assert_eq!((st.reordered, st.lost, st.delivered), (1, 0, 3));
}

#[test]
fn gap_is_given_up_at_the_deadline_then_late_packet_dropped() {
    let t0 = Instant::now();
    let mut r = started(1, t0);
    r.push(t0 + 10 * MS, pkt(4));
    r.push(t0 + 20 * MS, pkt(5));
    assert_eq!(drain(&mut r, t0 + 59 * MS), vec![1]);
    // The deadline counts from the arrival of the first packet after the gap.
    assert_eq!(r.poll_timeout(), Some(t0 + 60 * MS));
    assert_eq!(drain(&mut r, t0 + 60 * MS), vec![4, 5]);
    assert_eq!(r.stats().lost, 2);
    assert_eq!(r.push(t0 + 70 * MS, pkt(2)), PushOutcome::Late);
    assert_eq!(r.push(t0 + 70 * MS, pkt(4)), PushOutcome::Duplicate);
    assert_eq!(r.push(t0 + 70 * MS, pkt(5)), PushOutcome::Duplicate);
    let st = r.stats();
    assert_eq!((st.late, st.duplicates), (1, 2));
}

#[test]
fn packets_sent_before_the_first_received_are_kept() {
    let t0 = Instant::now();
    let mut r = Reorder::new(ReorderConfig::udp());
    r.push(t0, pkt(10));
    r.push(t0 + MS, pkt(8));
    r.push(t0 + 2 * MS, pkt(11));
    assert_eq!(drain(&mut r, t0 + 49 * MS), Vec::<u16>::new());
    assert_eq!(r.poll_timeout(), Some(t0 + 50 * MS));
    // Seq 9 never came: after the hold, its own wait counts from seq 10's arrival.
    assert_eq!(drain(&mut r, t0 + 50 * MS), vec![8, 10, 11]);
    assert_eq!(r.stats().lost, 1);
}

#[test]
fn tcp_config_does_not_wait() {
    let t0 = Instant::now();
    let mut r = Reorder::new(ReorderConfig::tcp());
    r.push(t0, pkt(1));
    r.push(t0, pkt(3));
    assert_eq!(drain(&mut r, t0), vec![1, 3]);
    assert_eq!(r.stats().lost, 1);
}

#[test]
fn duplicates_while_buffered() {
    let t0 = Instant::now();
    let mut r = started(1, t0);
    r.push(t0, pkt(3));
    assert_eq!(r.push(t0, pkt(3)), PushOutcome::Duplicate);
    assert_eq!(r.push(t0, pkt(1)), PushOutcome::Duplicate);
    r.push(t0, pkt(2));
    assert_eq!(drain(&mut r, t0), vec![1, 2, 3]);
    assert_eq!(r.stats().duplicates, 2);
}

#[test]
fn wraps_at_65535() {
    let t0 = Instant::now();
    let mut r = Reorder::new(ReorderConfig::udp());
    let order = [65533u16, 65535, 65534, 1, 0, 2];
    let mut out = Vec::new();
    for s in order {
        r.push(t0, pkt(s));
        out.extend(drain(&mut r, t0));
    }
    assert!(out.is_empty(), "held for max_wait after the first packet");
    out.extend(drain(&mut r, t0 + 50 * MS));
    assert_eq!(out, vec![65533, 65534, 65535, 0, 1, 2]);
    assert_eq!(r.stats().lost, 0);
}

#[test]
fn shuffled_windows_come_out_in_order() {
    // A deterministic shuffle of each window of 8, across the wrap.
    let t0 = Instant::now();
    let mut r = Reorder::new(ReorderConfig::udp());
    let base = 65500u16;
    let mut out = Vec::new();
    for w in 0..20u16 {
        for (k, i) in [3u16, 0, 7, 1, 6, 2, 5, 4].into_iter().enumerate() {
            let now = t0 + u32::from(w * 8) * MS + k as u32 * MS;
            r.push(now, pkt(base.wrapping_add(w * 8 + i)));
            out.extend(drain(&mut r, now));
        }
    }
    let want: Vec<u16> = (0..160).map(|i| base.wrapping_add(i)).collect();
    assert_eq!(out, want);
    assert_eq!(r.stats().lost, 0);
    assert!(r.stats().reordered > 0);
}

#[test]
fn capacity_pushes_oldest_out() {
    let t0 = Instant::now();
    let mut r = Reorder::new(ReorderConfig {
        capacity: 4,
        ..ReorderConfig::udp()
    });
    r.push(t0, pkt(0));
    drain(&mut r, t0 + 50 * MS);
    for s in [2, 3, 4, 5] {
        r.push(t0, pkt(s));
    }
    assert_eq!(drain(&mut r, t0), vec![2, 3, 4, 5], "seq 1 pushed out by 5");
    assert_eq!(r.stats().lost, 1);
}

#[test]
fn big_jump_is_a_restart_once_confirmed() {
    let t0 = Instant::now();
    let mut r = started(100, t0);
    r.push(t0, pkt(102));
    assert_eq!(drain(&mut r, t0), vec![100]);
    assert_eq!(r.push(t0, pkt(40000)), PushOutcome::Held);
    assert_eq!(drain(&mut r, t0), Vec::<u16>::new());
    assert_eq!(r.push(t0, pkt(40001)), PushOutcome::Restarted);
    assert_eq!(drain(&mut r, t0), vec![102, 40000, 40001]);
    r.push(t0, pkt(40002));
    assert_eq!(drain(&mut r, t0), vec![40002]);
    let st = r.stats();
    assert_eq!((st.restarts, st.lost), (1, 1));
}

#[test]
fn single_stray_packet_is_discarded() {
    let t0 = Instant::now();
    let mut r = started(5, t0);
    assert_eq!(r.push(t0, pkt(30000)), PushOutcome::Held);
    r.push(t0, pkt(6));
    assert_eq!(r.push(t0, pkt(9000)), PushOutcome::Held);
    r.push(t0, pkt(7));
    assert_eq!(drain(&mut r, t0), vec![5, 6, 7]);
    assert_eq!(r.stats().discarded, 1);
    assert_eq!(r.stats().restarts, 0);
}

#[test]
fn new_ssrc_restarts() {
    let t0 = Instant::now();
    let mut r = Reorder::new(ReorderConfig::udp());
    r.push(t0, pkt_ssrc(5, 1));
    r.push(t0, pkt_ssrc(6, 2));
    r.push(t0, pkt_ssrc(7, 2));
    let out: Vec<_> = std::iter::from_fn(|| r.poll(t0))
        .map(|p| (p.ssrc(), p.sequence()))
        .collect();
    assert_eq!(out, vec![(1, 5), (2, 6), (2, 7)]);
    assert_eq!(r.stats().restarts, 1);
}

#[test]
fn flush_releases_everything() {
    let t0 = Instant::now();
    let mut r = started(1, t0);
    r.push(t0, pkt(3));
    r.push(t0, pkt(6));
    assert_eq!(drain(&mut r, t0), vec![1]);
    r.flush();
    assert_eq!(drain(&mut r, t0), vec![3, 6]);
    assert_eq!(r.stats().lost, 3);
    assert!(r.is_empty());
}

#[test]
fn bounded_memory_under_random_sequence_numbers() {
    let t0 = Instant::now();
    let mut r = Reorder::new(ReorderConfig::udp());
    let mut x: u32 = 12345;
    for i in 0..20_000u32 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        r.push(t0 + i * MS, pkt((x >> 16) as u16));
        drain(&mut r, t0 + i * MS);
        assert!(r.len() <= r.config().capacity);
    }
}
