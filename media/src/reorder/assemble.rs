//! Frame assembly: packets of one timestamp make one frame (GB/T 28181-2022 Annex C: every
//! packet of a PS frame carries the same RTP timestamp, the marker bit ends the frame).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::rtp::RtpPacket;

/// Settings of a [`FrameAssembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameAssemblerConfig {
    /// A frame growing beyond this many payload bytes is cut: given out incomplete, and the
    /// rest of its packets dropped. Bounds memory on a stream that never ends a frame.
    pub max_frame_bytes: usize,
}

impl Default for FrameAssemblerConfig {
    fn default() -> Self {
        FrameAssemblerConfig {
            max_frame_bytes: 8 << 20,
        }
    }
}

/// Counters of a [`FrameAssembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AssemblerStats {
    /// Frames given out.
    pub frames: u64,
    /// Of those, incomplete (a gap, or cut at `max_frame_bytes`).
    pub incomplete: u64,
    /// Frames cut at `max_frame_bytes`.
    pub oversize: u64,
    /// Packets repeating the previous sequence number (dropped).
    pub duplicates: u64,
}

/// One frame: the payloads of consecutive packets with one RTP timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// RTP timestamp shared by the packets.
    pub timestamp: u32,
    /// SSRC of the packets.
    pub ssrc: u32,
    /// Payload type of the first packet.
    pub payload_type: u8,
    /// The payloads in sequence order, each a slice of its received packet (not copied).
    /// Empty payloads are left out. Empty when the frame was cut for its size.
    pub payloads: Vec<Bytes>,
    /// No packet is known to be missing: no sequence gap before or inside the frame, and
    /// not cut. An incomplete frame must not be passed on as whole: drop it and tell the
    /// consumer (for PS, `PsDemuxer::discontinuity`). The very first frame of a stream is
    /// complete if no gap is seen, though the receiver may have joined mid-frame; a PS
    /// demuxer syncs on the pack header anyway.
    pub complete: bool,
    /// Incomplete only for a gap just before its first packet received: either that first
    /// packet or packets of other frames were lost, and nothing inside the frame. A consumer
    /// that can tell a frame's first packet (a PS pack header) may use the frame.
    pub only_front_missing: bool,
    /// The last packet carried the marker bit; without it, the frame ended at a timestamp
    /// change (or a flush, which leaves it incomplete).
    pub marker: bool,
    /// Sequence number of the first packet.
    pub first_seq: u16,
    /// Sequence number of the last packet.
    pub last_seq: u16,
}

impl Frame {
    /// Total payload bytes.
    pub fn len(&self) -> usize {
        self.payloads.iter().map(Bytes::len).sum()
    }

    /// No payload bytes.
    pub fn is_empty(&self) -> bool {
        self.payloads.iter().all(Bytes::is_empty)
    }

    /// Number of packets the frame spans (gaps included).
    pub fn packet_span(&self) -> u16 {
        self.last_seq.wrapping_sub(self.first_seq).wrapping_add(1)
    }

    /// The payload as one buffer: a slice without copy when it is one chunk, else copied.
    pub fn to_contiguous(&self) -> Bytes {
        match self.payloads.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut b = BytesMut::with_capacity(self.len());
                many.iter().for_each(|c| b.extend_from_slice(c));
                b.freeze()
            }
        }
    }
}

#[derive(Debug)]
struct Building {
    frame: Frame,
    bytes: usize,
    cut: bool,
}

/// Groups in-order packets (from a [`super::Reorder`] buffer, or straight from TCP) into
/// [`Frame`]s: a frame ends at the marker bit or when the timestamp (or SSRC) changes, and is
/// flagged incomplete when a sequence gap falls inside it or just before it. Sans-IO.
#[derive(Debug, Default)]
pub struct FrameAssembler {
    cfg: FrameAssemblerConfig,
    cur: Option<Building>,
    last_seq: Option<u16>,
    ready: VecDeque<Frame>,
    /// Set by [`FrameAssembler::discontinuity`]: the next packet starts after a gap.
    gap_pending: bool,
    spare: Vec<Vec<Bytes>>,
    stats: AssemblerStats,
}

impl FrameAssembler {
    /// An assembler with the default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// An assembler with the given settings.
    pub fn with_config(cfg: FrameAssemblerConfig) -> Self {
        FrameAssembler {
            cfg,
            ..Self::default()
        }
    }

    /// Counters.
    pub fn stats(&self) -> AssemblerStats {
        self.stats
    }

    /// Takes the next packet in sequence order.
    pub fn push(&mut self, pkt: RtpPacket) {
        let seq = pkt.sequence();
        let gap = match self.last_seq {
            Some(l) if l == seq => {
                self.stats.duplicates += 1;
                return;
            }
            Some(l) => l.wrapping_add(1) != seq,
            None => false,
        } || std::mem::take(&mut self.gap_pending);
        self.last_seq = Some(seq);
        if let Some(b) = &mut self.cur
            && (b.frame.timestamp != pkt.timestamp() || b.frame.ssrc != pkt.ssrc())
        {
            // The frame ended without its marker: a gap here may have taken its tail.
            if gap {
                b.frame.complete = false;
                b.frame.only_front_missing = false;
            }
            self.finish();
        }
        let b = match &mut self.cur {
            Some(b) => {
                if gap {
                    b.frame.complete = false;
                    b.frame.only_front_missing = false;
                }
                b
            }
            None => {
                let mut payloads = self.spare.pop().unwrap_or_default();
                payloads.clear();
                self.cur.insert(Building {
                    frame: Frame {
                        timestamp: pkt.timestamp(),
                        ssrc: pkt.ssrc(),
                        payload_type: pkt.payload_type(),
                        payloads,
                        complete: !gap,
                        only_front_missing: gap,
                        marker: false,
                        first_seq: seq,
                        last_seq: seq,
                    },
                    bytes: 0,
                    cut: false,
                })
            }
        };
        b.frame.last_seq = seq;
        let marker = pkt.marker();
        let payload = pkt.into_payload();
        if !b.cut && !payload.is_empty() {
            if b.bytes + payload.len() > self.cfg.max_frame_bytes {
                tracing::debug!(
                    ts = b.frame.timestamp,
                    "RTP frame over max_frame_bytes, cut"
                );
                b.cut = true;
                b.frame.complete = false;
                b.frame.only_front_missing = false;
                b.frame.payloads.clear();
                self.stats.oversize += 1;
            } else {
                b.bytes += payload.len();
                b.frame.payloads.push(payload);
            }
        }
        if marker {
            b.frame.marker = true;
            self.finish();
        }
    }

    /// The next finished frame. Call until `None` after each push: at most two frames
    /// finish per packet.
    pub fn poll(&mut self) -> Option<Frame> {
        self.ready.pop_front()
    }

    /// Ends the frame being built (end of stream): it comes out of [`FrameAssembler::poll`]
    /// incomplete, since without its marker nothing says its tail is not missing. (A frame
    /// with its marker has already come out.)
    pub fn flush(&mut self) {
        if let Some(b) = &mut self.cur {
            b.frame.complete = false;
            b.frame.only_front_missing = false;
        }
        self.finish();
    }

    /// Tells the assembler that packets were lost without a sequence gap showing it (for
    /// example the transport was reset): the frame being built is marked incomplete, and so
    /// is the next one.
    pub fn discontinuity(&mut self) {
        if let Some(b) = &mut self.cur {
            b.frame.complete = false;
            b.frame.only_front_missing = false;
        }
        self.last_seq = None;
        self.gap_pending = true;
        self.finish();
    }

    /// Gives a frame's chunk list back for reuse, so that steady state allocates nothing.
    pub fn recycle(&mut self, mut frame: Frame) {
        if self.spare.len() < 4 {
            frame.payloads.clear();
            self.spare.push(frame.payloads);
        }
    }

    fn finish(&mut self) {
        let Some(b) = self.cur.take() else {
            return;
        };
        self.stats.frames += 1;
        if !b.frame.complete {
            self.stats.incomplete += 1;
        }
        self.ready.push_back(b.frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpBuilder;

    fn pkt(seq: u16, ts: u32, marker: bool) -> RtpPacket {
        let mut b = BytesMut::new();
        RtpBuilder::new(96, seq, ts, 1)
            .marker(marker)
            .write(&seq.to_be_bytes(), &mut b)
            .unwrap();
        RtpPacket::parse(b.freeze()).unwrap()
    }

    fn run(pkts: &[(u16, u32, bool)]) -> Vec<(u32, bool, u16, u16, usize)> {
        let mut a = FrameAssembler::new();
        let mut out = Vec::new();
        for &(s, ts, m) in pkts {
            a.push(pkt(s, ts, m));
            while let Some(f) = a.poll() {
                out.push((
                    f.timestamp,
                    f.complete,
                    f.first_seq,
                    f.last_seq,
                    f.payloads.len(),
                ));
                a.recycle(f);
            }
        }
        a.flush();
        out.extend(a.poll().map(|f| {
            (
                f.timestamp,
                f.complete,
                f.first_seq,
                f.last_seq,
                f.payloads.len(),
            )
        }));
        out
    }

    #[test]
    fn marker_ends_a_frame_at_once() {
        assert_eq!(
            run(&[(1, 10, false), (2, 10, true), (3, 20, true)]),
            vec![(10, true, 1, 2, 2), (20, true, 3, 3, 1)]
        );
    }

    #[test]
    fn timestamp_change_ends_a_frame_without_marker() {
        assert_eq!(
            run(&[(65535, 10, false), (0, 10, false), (1, 20, false)]),
            vec![(10, true, 65535, 0, 2), (20, false, 1, 1, 1)]
        );
    }

    #[test]
    fn gap_inside_marks_incomplete() {
        assert_eq!(
            run(&[(1, 10, false), (3, 10, true), (4, 20, true)]),
            vec![(10, false, 1, 3, 2), (20, true, 4, 4, 1)]
        );
    }

    #[test]
    fn gap_at_start_after_marker_marks_only_the_new_frame() {
        assert_eq!(
            run(&[(1, 10, true), (3, 20, false), (4, 20, true)]),
            vec![(10, true, 1, 1, 1), (20, false, 3, 4, 2)]
        );
    }

    #[test]
    fn gap_at_timestamp_change_without_marker_marks_both() {
        assert_eq!(
            run(&[(1, 10, false), (3, 20, false), (4, 20, true)]),
            vec![(10, false, 1, 1, 1), (20, false, 3, 4, 2)]
        );
    }

    #[test]
    fn duplicate_is_dropped_and_oversize_is_cut() {
        let mut a = FrameAssembler::with_config(FrameAssemblerConfig { max_frame_bytes: 4 });
        for (s, m) in [(1, false), (1, false), (2, false), (3, true)] {
            a.push(pkt(s, 10, m));
        }
        let f = a.poll().unwrap();
        assert!(!f.complete && f.payloads.is_empty());
        assert_eq!((f.first_seq, f.last_seq), (1, 3));
        let st = a.stats();
        assert_eq!((st.duplicates, st.oversize, st.incomplete), (1, 1, 1));
    }

    #[test]
    fn discontinuity_marks_current_and_next() {
        let mut a = FrameAssembler::new();
        a.push(pkt(1, 10, false));
        a.discontinuity();
        a.push(pkt(2, 20, true));
        assert!(!a.poll().unwrap().complete);
        assert!(!a.poll().unwrap().complete);
        a.push(pkt(3, 30, true));
        assert!(a.poll().unwrap().complete);
    }
}
