//! Per-stream receive statistics: counts, loss (RFC 3550 §6.4.1 / Appendix A.3),
//! interarrival jitter (RFC 3550 §6.4.1 / Appendix A.8), bitrate and frame rate over a
//! sliding window. Sans-IO: arrival times are passed in.
//!
//! Feed every packet as it arrives, before reordering, so that jitter sees true arrival
//! order:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::BytesMut;
//! use media::rtp::{RtpBuilder, RtpPacket};
//! use media::stats::StreamStats;
//!
//! let mut stats = StreamStats::new(90_000);
//! let t0 = Instant::now();
//! let mut buf = BytesMut::new();
//! for i in 0..25u16 {
//!     RtpBuilder::new(96, i, u32::from(i) * 3600, 7).write(&[0; 1000], &mut buf)?;
//!     let pkt = RtpPacket::parse(buf.split().freeze())?;
//!     stats.on_packet(t0 + Duration::from_millis(40) * u32::from(i), &pkt);
//! }
//! let s = stats.snapshot(t0 + Duration::from_secs(1));
//! assert_eq!((s.packets, s.lost, s.jitter), (25, 0, 0));
//! assert!((s.fps - 25.0).abs() < 2.0, "a 1 s window in 100 ms buckets");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::{Duration, Instant};

use crate::reorder::{MAX_DROPOUT, MAX_MISORDER, ReorderStats};
use crate::rtp::RtpPacket;

/// Buckets of the sliding window.
const BUCKETS: usize = 10;
/// Sequence numbers remembered to spot duplicates.
const SEEN: u64 = 1024;

/// A plain copy of the statistics at one instant, for reports and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StatsSnapshot {
    /// SSRC of the last packet.
    pub ssrc: Option<u32>,
    /// Payload type of the last packet.
    pub payload_type: Option<u8>,
    /// Sequence number of the last packet.
    pub last_sequence: Option<u16>,
    /// RTP clock rate used for jitter (Hz).
    pub clock_rate: u32,
    /// Packets received, duplicates included.
    pub packets: u64,
    /// RTP bytes received (headers included).
    pub bytes: u64,
    /// Payload bytes received.
    pub payload_bytes: u64,
    /// Packets expected from the sequence numbers seen (RFC 3550 A.3), over all restarts.
    pub expected: u64,
    /// Expected minus received (duplicates not counted), never negative (RFC 3550 A.3).
    pub lost: u64,
    /// Packets that came after the reorder buffer had given up on them
    /// ([`StreamStats::record_reorder`]; 0 without a reorder buffer).
    pub late: u64,
    /// Packets whose sequence number was seen already.
    pub duplicates: u64,
    /// Packets that arrived after one with a higher sequence number.
    pub reordered: u64,
    /// Sequence restarts and SSRC changes.
    pub restarts: u64,
    /// Interarrival jitter in timestamp units, as an RTCP report carries it (RFC 3550
    /// §6.4.1).
    pub jitter: u32,
    /// The same in milliseconds.
    pub jitter_ms: f64,
    /// RTP bits per second over the window.
    pub bitrate_bps: f64,
    /// New timestamps (frames) per second over the window.
    pub fps: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    id: u64,
    bytes: u64,
    frames: u64,
}

/// Statistics of one received RTP stream. See the module docs.
#[derive(Debug, Clone)]
pub struct StreamStats {
    clock_rate: u32,
    window: Duration,
    base: Option<Instant>,
    snap: StatsSnapshot,
    // Sequence tracking (RFC 3550 A.1/A.3), per SSRC segment.
    max_ext: u64,
    base_ext: u64,
    received_unique: u64,
    expected_before: u64,
    lost_before: u64,
    seen: [u64; (SEEN / 64) as usize],
    // Jitter (RFC 3550 A.8).
    jitter: f64,
    prev: Option<(f64, u32)>,
    last_ts: Option<u32>,
    buckets: [Bucket; BUCKETS],
}

impl StreamStats {
    /// Statistics for a stream with the given RTP clock rate (90 000 for PS video, 8 000 for
    /// G.711) and a one-second window.
    pub fn new(clock_rate: u32) -> Self {
        Self::with_window(clock_rate, Duration::from_secs(1))
    }

    /// Same, with another window for bitrate and fps.
    pub fn with_window(clock_rate: u32, window: Duration) -> Self {
        StreamStats {
            clock_rate: clock_rate.max(1),
            window: window.max(Duration::from_millis(BUCKETS as u64)),
            base: None,
            snap: StatsSnapshot {
                clock_rate: clock_rate.max(1),
                ..StatsSnapshot::default()
            },
            max_ext: 0,
            base_ext: 0,
            received_unique: 0,
            expected_before: 0,
            lost_before: 0,
            seen: [0; (SEEN / 64) as usize],
            jitter: 0.0,
            prev: None,
            last_ts: None,
            buckets: [Bucket::default(); BUCKETS],
        }
    }

    /// Records a packet that arrived at `now`.
    pub fn on_packet(&mut self, now: Instant, pkt: &RtpPacket) {
        let base = *self.base.get_or_insert(now);
        let s = &mut self.snap;
        s.packets += 1;
        s.bytes += pkt.raw().len() as u64;
        s.payload_bytes += pkt.payload().len() as u64;
        s.payload_type = Some(pkt.payload_type());
        s.last_sequence = Some(pkt.sequence());
        let new_ssrc = s.ssrc != Some(pkt.ssrc());
        if new_ssrc && s.ssrc.is_some() {
            s.restarts += 1;
        }
        s.ssrc = Some(pkt.ssrc());
        if new_ssrc {
            self.restart(pkt.sequence());
            self.prev = None;
            self.jitter = 0.0;
        } else {
            self.track_sequence(pkt.sequence());
        }
        // RFC 3550 A.8: D(i,j) = (Rj - Ri) - (Sj - Si); J += (|D| - J) / 16.
        let arrival =
            now.saturating_duration_since(base).as_secs_f64() * f64::from(self.clock_rate);
        if let Some((prev_arrival, prev_ts)) = self.prev {
            let d =
                (arrival - prev_arrival) - f64::from(pkt.timestamp().wrapping_sub(prev_ts) as i32);
            self.jitter += (d.abs() - self.jitter) / 16.0;
        }
        self.prev = Some((arrival, pkt.timestamp()));
        let new_frame = self.last_ts != Some(pkt.timestamp());
        self.last_ts = Some(pkt.timestamp());
        let b = self.bucket(now, base);
        b.bytes += pkt.raw().len() as u64;
        b.frames += u64::from(new_frame);
    }

    /// Takes the counters only a reorder buffer knows (late packets).
    pub fn record_reorder(&mut self, r: &ReorderStats) {
        self.snap.late = r.late;
    }

    /// The statistics as of `now`.
    pub fn snapshot(&self, now: Instant) -> StatsSnapshot {
        let mut s = self.snap;
        let expected = if s.ssrc.is_some() {
            self.max_ext - self.base_ext + 1
        } else {
            0
        };
        s.expected = self.expected_before + expected;
        s.lost = self.lost_before + expected.saturating_sub(self.received_unique);
        s.jitter = self.jitter as u32;
        s.jitter_ms = self.jitter * 1000.0 / f64::from(self.clock_rate);
        if let Some(base) = self.base {
            let blen = self.window / BUCKETS as u32;
            let elapsed = now.saturating_duration_since(base);
            let now_id = (elapsed.as_nanos() / blen.as_nanos().max(1)) as u64;
            let oldest = now_id.saturating_sub(BUCKETS as u64 - 1);
            let span = elapsed.saturating_sub(blen * oldest as u32).as_secs_f64();
            let (bytes, frames) = self
                .buckets
                .iter()
                .filter(|b| (oldest..=now_id).contains(&b.id))
                .fold((0, 0), |(y, f), b| (y + b.bytes, f + b.frames));
            if span > 0.0 {
                s.bitrate_bps = bytes as f64 * 8.0 / span;
                s.fps = frames as f64 / span;
            }
        }
        s
    }

    fn bucket(&mut self, now: Instant, base: Instant) -> &mut Bucket {
        let blen = (self.window / BUCKETS as u32).as_nanos().max(1);
        let id = (now.saturating_duration_since(base).as_nanos() / blen) as u64;
        let b = &mut self.buckets[(id % BUCKETS as u64) as usize];
        if b.id != id {
            *b = Bucket {
                id,
                ..Bucket::default()
            };
        }
        b
    }

    /// Starts a new sequence segment at `seq` (first packet, SSRC change or jump).
    fn restart(&mut self, seq: u16) {
        if self.received_unique > 0 {
            let expected = self.max_ext - self.base_ext + 1;
            self.expected_before += expected;
            self.lost_before += expected.saturating_sub(self.received_unique);
        }
        self.max_ext = (((self.max_ext >> 16) + 2) << 16) | u64::from(seq);
        self.base_ext = self.max_ext;
        self.received_unique = 1;
        self.seen = [0; (SEEN / 64) as usize];
        self.set_seen(self.max_ext);
    }

    /// RFC 3550 A.1, without probation: a jump beyond the window restarts at once.
    fn track_sequence(&mut self, seq: u16) {
        let d = seq.wrapping_sub(self.max_ext as u16);
        if d != 0 && d < MAX_DROPOUT {
            for e in self.max_ext + 1..=(self.max_ext + u64::from(d)).min(self.max_ext + SEEN) {
                self.clear_seen(e);
            }
            self.max_ext += u64::from(d);
            self.set_seen(self.max_ext);
            self.received_unique += 1;
        } else if d.wrapping_neg() <= MAX_MISORDER {
            let ext = self.max_ext - u64::from(d.wrapping_neg());
            if self.is_seen(ext) {
                self.snap.duplicates += 1;
            } else {
                self.set_seen(ext);
                self.snap.reordered += 1;
                self.received_unique += 1;
            }
        } else {
            self.snap.restarts += 1;
            self.restart(seq);
        }
    }

    fn set_seen(&mut self, ext: u64) {
        let b = ext % SEEN;
        self.seen[(b / 64) as usize] |= 1 << (b % 64);
    }
    fn clear_seen(&mut self, ext: u64) {
        let b = ext % SEEN;
        self.seen[(b / 64) as usize] &= !(1 << (b % 64));
    }
    fn is_seen(&self, ext: u64) -> bool {
        let b = ext % SEEN;
        self.seen[(b / 64) as usize] & (1 << (b % 64)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpBuilder;
    use bytes::BytesMut;

    fn pkt(seq: u16, ts: u32) -> RtpPacket {
        let mut b = BytesMut::new();
        RtpBuilder::new(96, seq, ts, 9)
            .write(&[0; 88], &mut b)
            .unwrap();
        RtpPacket::parse(b.freeze()).unwrap()
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn jitter_matches_hand_computation() {
        // 90 kHz; frames every 40 ms (3600 ticks). Arrivals: 0, 40, 85, 120, 160 ms.
        // Transit differences D in ticks: 0, +450, -450, 0 (arrival ticks 0, 3600, 7650,
        // 10800, 14400 against timestamps 0, 3600, 7200, 10800, 14400).
        // J1 = 0; J2 = 0 + (450 - 0)/16 = 28.125; J3 = 28.125 + (450 - 28.125)/16 = 54.4921875;
        // J4 = 54.4921875 + (0 - 54.4921875)/16 = 51.08642578125.
        let mut s = StreamStats::new(90_000);
        let t0 = Instant::now();
        for (i, ms) in [0u32, 40, 85, 120, 160].into_iter().enumerate() {
            s.on_packet(t0 + ms * MS, &pkt(i as u16, i as u32 * 3600));
        }
        let snap = s.snapshot(t0 + 160 * MS);
        assert_eq!(snap.jitter, 51);
        assert!((snap.jitter_ms - 51.086_425_781_25 / 90.0).abs() < 1e-6);
    }

    #[test]
    fn loss_duplicates_reordering_and_wrap() {
        let mut s = StreamStats::new(90_000);
        let t0 = Instant::now();
        for seq in [65534u16, 65535, 1, 0, 0, 4, 5] {
            s.on_packet(t0, &pkt(seq, 0));
        }
        let snap = s.snapshot(t0);
        // Expected 65534..=5 = 8, unique received 6 -> 2,3 lost.
        assert_eq!(
            (
                snap.packets,
                snap.expected,
                snap.lost,
                snap.duplicates,
                snap.reordered
            ),
            (7, 8, 2, 1, 1)
        );
    }

    #[test]
    fn ssrc_change_and_jump_start_new_segments() {
        let mut s = StreamStats::new(90_000);
        let t0 = Instant::now();
        s.on_packet(t0, &pkt(10, 0));
        s.on_packet(t0, &pkt(12, 0)); // one lost
        s.on_packet(t0, &pkt(40_000, 0)); // jump: restart
        s.on_packet(t0, &pkt(40_001, 0));
        let snap = s.snapshot(t0);
        assert_eq!((snap.expected, snap.lost, snap.restarts), (5, 1, 1));
    }

    #[test]
    fn bitrate_and_fps_over_the_window() {
        let mut s = StreamStats::new(90_000);
        let t0 = Instant::now();
        // 2 s of 25 fps, two 100-byte packets per frame.
        for f in 0..50u32 {
            for k in 0..2u16 {
                s.on_packet(t0 + f * 40 * MS, &pkt((2 * f) as u16 + k, f * 3600));
            }
        }
        let snap = s.snapshot(t0 + 2000 * MS);
        assert!((snap.fps - 25.0).abs() < 1.5, "{}", snap.fps);
        let want = 25.0 * 2.0 * 100.0 * 8.0;
        assert!(
            (snap.bitrate_bps - want).abs() / want < 0.06,
            "{}",
            snap.bitrate_bps
        );
        // Nothing for a while: the window empties.
        assert_eq!(s.snapshot(t0 + 10_000 * MS).bitrate_bps, 0.0);
    }
}
