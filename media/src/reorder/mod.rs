//! Sequence-number reordering with a bounded wait and loss accounting, then frame assembly
//! by timestamp and marker bit ([`FrameAssembler`]).
//!
//! RTP over UDP arrives out of order, duplicated or not at all (RFC 3550 §5.1, sequence
//! number; Appendix A.1 for the validation rules used here). [`Reorder`] puts packets back in
//! order, waiting at most [`ReorderConfig::max_wait`] for a missing one, then gives up on it
//! and counts it lost. It is sans-IO: the caller passes the time, and asks
//! [`Reorder::poll_timeout`] when to call back.
//!
//! A receive path, with the PS demuxer of [`crate::ps`] as the consumer:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::{Bytes, BytesMut};
//! use media::reorder::{FrameAssembler, Reorder, ReorderConfig};
//! use media::rtp::{RtpBuilder, RtpPacket};
//!
//! let mut reorder = Reorder::new(ReorderConfig::udp());
//! let mut frames = FrameAssembler::new();
//! let now = Instant::now();
//! let mut buf = BytesMut::new();
//! for (seq, marker) in [(11u16, true), (10, false)] {
//!     RtpBuilder::new(96, seq, 3600, 1).marker(marker).write(b"ps", &mut buf)?;
//!     reorder.push(now, RtpPacket::parse(buf.split().freeze())?);
//!     while let Some(pkt) = reorder.poll(now) {
//!         frames.push(pkt);
//!     }
//!     while let Some(frame) = frames.poll() {
//!         if frame.complete {
//!             // for chunk in &frame.payloads { demuxer.push(chunk.clone()) }
//!             assert_eq!(frame.len(), 4);
//!         } else {
//!             // demuxer.discontinuity()
//!         }
//!         frames.recycle(frame);
//!     }
//! }
//! // Sleep until `reorder.poll_timeout()`, then `reorder.poll(now)` again.
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod assemble;

pub use assemble::{AssemblerStats, Frame, FrameAssembler, FrameAssemblerConfig};

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::rtp::RtpPacket;

/// RFC 3550 Appendix A.1 `MAX_DROPOUT`: a forward jump of at least this many sequence
/// numbers is taken as a possible restart.
pub const MAX_DROPOUT: u16 = 3000;
/// RFC 3550 Appendix A.1 `MAX_MISORDER`: a packet this far behind is late, further is a
/// possible restart.
pub const MAX_MISORDER: u16 = 100;
/// Sequence numbers remembered below the delivery point, to tell a duplicate from a late
/// packet.
const HISTORY: u64 = 1024;

/// Settings of a [`Reorder`] buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReorderConfig {
    /// How long a gap is waited for before the missing packets are counted lost. The first
    /// packet of a stream is also held this long, so that packets sent before it but
    /// received after it still come out in order.
    pub max_wait: Duration,
    /// Packets held at most; a packet further ahead pushes the oldest out (rounded up to a
    /// power of two).
    pub capacity: usize,
    /// Forward jump taken as a possible restart ([`MAX_DROPOUT`]).
    pub max_dropout: u16,
    /// Backward distance still taken as late ([`MAX_MISORDER`]; at most 1024).
    pub max_misorder: u16,
}

impl ReorderConfig {
    /// RTP over UDP: wait up to 50 ms, hold up to 256 packets (the 50 ms of a 60 Mbit/s
    /// stream; the slots cost about 35 KB per stream, twice that at 512).
    pub fn udp() -> Self {
        ReorderConfig {
            max_wait: Duration::from_millis(50),
            capacity: 256,
            max_dropout: MAX_DROPOUT,
            max_misorder: MAX_MISORDER,
        }
    }
    /// RTP over TCP: packets cannot be reordered, a gap is a loss at once.
    pub fn tcp() -> Self {
        ReorderConfig {
            max_wait: Duration::ZERO,
            ..Self::udp()
        }
    }
}

impl Default for ReorderConfig {
    fn default() -> Self {
        Self::udp()
    }
}

/// Counters of a [`Reorder`] buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReorderStats {
    /// Packets pushed.
    pub received: u64,
    /// Packets given out by [`Reorder::poll`].
    pub delivered: u64,
    /// Sequence numbers given up on (waited for longer than `max_wait`, or pushed out).
    pub lost: u64,
    /// Packets that arrived after their sequence number was given up on (dropped).
    pub late: u64,
    /// Packets whose sequence number had already been received (dropped).
    pub duplicates: u64,
    /// Packets that arrived after one with a higher sequence number, in time.
    pub reordered: u64,
    /// Stream restarts: a new SSRC, or a sequence jump beyond `max_dropout`/`max_misorder`
    /// confirmed by the next packet (RFC 3550 A.1).
    pub restarts: u64,
    /// Out-of-window packets never confirmed by a successor (dropped).
    pub discarded: u64,
}

/// What [`Reorder::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Queued for delivery, in order or after a wait.
    Accepted,
    /// Already received; dropped.
    Duplicate,
    /// Its sequence number was already given up on; dropped.
    Late,
    /// Out of window or of another SSRC: held until the next packet confirms a restart.
    Held,
    /// Confirmed a restart; the stream now continues from this packet's predecessor.
    Restarted,
}

#[derive(Debug)]
struct Slot {
    pkt: RtpPacket,
    arrival: Instant,
}

/// Reorder buffer keyed by extended (64-bit) sequence number, wrap-around safe. Sans-IO: see
/// the module docs.
#[derive(Debug)]
pub struct Reorder {
    cfg: ReorderConfig,
    slots: Vec<Option<Slot>>,
    mask: u64,
    started: bool,
    ssrc: u32,
    /// Extended sequence number of the next packet to deliver.
    next: u64,
    /// Highest extended sequence number received.
    highest: u64,
    buffered: usize,
    /// One bit per extended sequence number in `[next - HISTORY, next)`: delivered.
    history: [u64; (HISTORY / 64) as usize],
    deadline: Option<Instant>,
    ready: VecDeque<RtpPacket>,
    candidate: Option<Slot>,
    /// Until then nothing is delivered, so that packets sent before the first one received
    /// can still take their place.
    start_until: Option<Instant>,
    flushing: bool,
    stats: ReorderStats,
}

impl Reorder {
    /// An empty buffer.
    pub fn new(cfg: ReorderConfig) -> Self {
        let cap = cfg.capacity.clamp(1, 1 << 15).next_power_of_two();
        let cfg = ReorderConfig {
            capacity: cap,
            max_misorder: cfg.max_misorder.min(HISTORY as u16),
            ..cfg
        };
        Reorder {
            cfg,
            slots: (0..cap).map(|_| None).collect(),
            mask: cap as u64 - 1,
            started: false,
            ssrc: 0,
            next: 0,
            highest: 0,
            buffered: 0,
            history: [0; (HISTORY / 64) as usize],
            deadline: None,
            // Grows to the largest burst released at once, usually a frame's packets.
            ready: VecDeque::with_capacity(cap.min(32)),
            candidate: None,
            start_until: None,
            flushing: false,
            stats: ReorderStats::default(),
        }
    }

    /// The settings in force (capacity rounded).
    pub fn config(&self) -> &ReorderConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> ReorderStats {
        self.stats
    }

    /// Packets held, waiting or ready.
    pub fn len(&self) -> usize {
        self.buffered + self.ready.len()
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes a packet that arrived at `now`.
    pub fn push(&mut self, now: Instant, pkt: RtpPacket) -> PushOutcome {
        self.stats.received += 1;
        if !self.started {
            self.started = true;
            if !self.cfg.max_wait.is_zero() {
                self.start_until = Some(now + self.cfg.max_wait);
            }
            self.rebase(pkt.ssrc(), pkt.sequence());
            return self.insert(now, pkt);
        }
        if pkt.ssrc() != self.ssrc {
            return self.stray(now, pkt);
        }
        let d = pkt.sequence().wrapping_sub(self.highest as u16);
        let ext = if d != 0 && d < self.cfg.max_dropout {
            self.highest + u64::from(d)
        } else if d.wrapping_neg() <= self.cfg.max_misorder {
            self.highest - u64::from(d.wrapping_neg())
        } else {
            return self.stray(now, pkt);
        };
        if ext < self.next
            && self.start_until.is_some()
            && self.highest - ext < self.cfg.capacity as u64
        {
            // Sent before the first packet received, and nothing delivered yet.
            self.next = ext;
        }
        if ext < self.next {
            return if self.delivered(ext) {
                self.stats.duplicates += 1;
                PushOutcome::Duplicate
            } else {
                self.stats.late += 1;
                PushOutcome::Late
            };
        }
        if self.slots[(ext & self.mask) as usize].is_some() {
            self.stats.duplicates += 1;
            return PushOutcome::Duplicate;
        }
        if ext < self.highest {
            self.stats.reordered += 1;
        }
        self.insert_ext(now, ext, pkt)
    }

    /// The next packet in order, if one is due at `now`.
    pub fn poll(&mut self, now: Instant) -> Option<RtpPacket> {
        if let Some(t) = self.start_until
            && (now >= t || self.flushing)
        {
            self.start_until = None;
            self.advance(now);
        }
        if self.start_until.is_none()
            && self.ready.is_empty()
            && self.buffered > 0
            && (self.flushing || self.deadline.is_some_and(|d| now >= d))
        {
            // Give up on the gap at `next`.
            while self.slots[(self.next & self.mask) as usize].is_none() {
                self.skip_next();
            }
            self.advance(now);
        }
        if self.buffered == 0 {
            self.flushing = false;
        }
        let p = self.ready.pop_front()?;
        self.stats.delivered += 1;
        Some(p)
    }

    /// When [`Reorder::poll`] will next have something to give (after it returned `None`).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.start_until.is_some() {
            self.start_until
        } else if self.buffered > 0 {
            self.deadline
        } else {
            None
        }
    }

    /// Gives up waiting: every held packet is due at the next [`Reorder::poll`] (end of
    /// stream).
    pub fn flush(&mut self) {
        self.flushing = true;
    }

    /// Forgets the stream (held packets are dropped); counters are kept.
    pub fn reset(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.buffered = 0;
        self.ready.clear();
        self.candidate = None;
        self.deadline = None;
        self.start_until = None;
        self.flushing = false;
        self.started = false;
    }

    /// Points `next` at `seq` in a new 2^16 cycle above everything seen so far.
    fn rebase(&mut self, ssrc: u32, seq: u16) {
        self.ssrc = ssrc;
        self.next = (((self.highest >> 16) + 2) << 16) | u64::from(seq);
        self.highest = self.next - 1;
        self.history = [0; (HISTORY / 64) as usize];
    }

    fn insert(&mut self, now: Instant, pkt: RtpPacket) -> PushOutcome {
        let d = pkt.sequence().wrapping_sub(self.highest as u16);
        self.insert_ext(now, self.highest + u64::from(d), pkt)
    }

    fn insert_ext(&mut self, now: Instant, ext: u64, pkt: RtpPacket) -> PushOutcome {
        // Make room: a packet more than `capacity` ahead pushes the oldest out.
        if ext - self.next >= self.cfg.capacity as u64 {
            self.deadline = None;
            self.start_until = None;
        }
        while ext - self.next >= self.cfg.capacity as u64 {
            match self.slots[(self.next & self.mask) as usize].take() {
                Some(s) => {
                    self.buffered -= 1;
                    self.deliver(s.pkt);
                }
                None => self.skip_next(),
            }
        }
        self.slots[(ext & self.mask) as usize] = Some(Slot { pkt, arrival: now });
        self.buffered += 1;
        self.highest = self.highest.max(ext);
        self.advance(now);
        PushOutcome::Accepted
    }

    fn skip_next(&mut self) {
        self.stats.lost += 1;
        self.mark(self.next, false);
        self.next += 1;
    }

    fn deliver(&mut self, pkt: RtpPacket) {
        self.mark(self.next, true);
        self.next += 1;
        self.ready.push_back(pkt);
    }

    /// Moves the in-order run at `next` to `ready`, then sets the deadline for the next gap.
    fn advance(&mut self, now: Instant) {
        if self.start_until.is_some() {
            return;
        }
        let before = self.next;
        while let Some(s) = self.slots[(self.next & self.mask) as usize].take() {
            self.buffered -= 1;
            self.deliver(s.pkt);
        }
        if self.buffered == 0 {
            self.deadline = None;
        } else if self.next != before || self.deadline.is_none() {
            // A new gap: wait from the arrival of the first packet after it.
            let first = (0..self.cfg.capacity as u64)
                .find_map(|i| self.slots[((self.next + i) & self.mask) as usize].as_ref());
            let arrival = first.map_or(now, |s| s.arrival);
            self.deadline = Some(arrival + self.cfg.max_wait);
        }
    }

    fn mark(&mut self, ext: u64, delivered: bool) {
        let bit = ext % HISTORY;
        let (w, b) = ((bit / 64) as usize, bit % 64);
        if delivered {
            self.history[w] |= 1 << b;
        } else {
            self.history[w] &= !(1 << b);
        }
    }

    fn delivered(&self, ext: u64) -> bool {
        let bit = ext % HISTORY;
        self.history[(bit / 64) as usize] & (1 << (bit % 64)) != 0
    }

    /// A packet out of window or of another SSRC: RFC 3550 A.1 restart detection, two
    /// consecutive packets confirm.
    fn stray(&mut self, now: Instant, pkt: RtpPacket) -> PushOutcome {
        let confirms = self.candidate.as_ref().is_some_and(|c| {
            c.pkt.ssrc() == pkt.ssrc() && c.pkt.sequence().wrapping_add(1) == pkt.sequence()
        });
        if !confirms {
            if self.candidate.is_some() {
                self.stats.discarded += 1;
            }
            self.candidate = Some(Slot { pkt, arrival: now });
            return PushOutcome::Held;
        }
        let Some(c) = self.candidate.take() else {
            return PushOutcome::Held; // `confirms` implies a candidate.
        };
        tracing::debug!(
            ssrc = pkt.ssrc(),
            seq = pkt.sequence(),
            "RTP stream restart: new SSRC or sequence jump"
        );
        self.stats.restarts += 1;
        self.start_until = None;
        // Everything held goes out in order; gaps of the old stream are not waited for.
        while self.buffered > 0 {
            match self.slots[(self.next & self.mask) as usize].take() {
                Some(s) => {
                    self.buffered -= 1;
                    self.deliver(s.pkt);
                }
                None => self.skip_next(),
            }
        }
        self.rebase(c.pkt.ssrc(), c.pkt.sequence());
        self.insert(c.arrival, c.pkt);
        self.insert(now, pkt);
        PushOutcome::Restarted
    }
}

#[cfg(test)]
mod tests;
