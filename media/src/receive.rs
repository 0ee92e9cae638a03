//! The receive pipeline of one camera stream, in one place: RTP datagrams (UDP) or RFC 4571
//! frames (TCP) in, clean access units out — source check, SSRC policy, reordering, frame
//! assembly, PS demux, loss handling, statistics and the diagnosis that explains a stream
//! that never starts. Sans-IO: the caller owns the socket and the clock.
//!
//! **Loss never corrupts.** A video frame that lost data is dropped (the assembler and the
//! demuxer see to it); and since the frames after it may reference it, the receiver then
//! holds video back until the next key frame, asking for one at once
//! ([`Received::KeyframeNeeded`]). Audio keeps flowing. A viewer sees a short freeze, never a
//! smeared picture.
//!
//! Which losses are video: a damaged RTP frame that still shows a video PES start, a video
//! frame the demuxer dropped, a TCP discontinuity. A loss that leaves nothing to tell (whole
//! RTP frames gone, or a damaged frame without a PES start) is decided by the next video
//! frame: a key frame, or a frame one frame period after the last one (the video's PTS
//! cadence unbroken, so the loss was audio), passes; anything else starts the hold. Irregular
//! timestamps therefore hold rather than pass.
//!
//! ```
//! use std::time::Instant;
//! use media::receive::{Received, Receiver, ReceiverConfig};
//! let now = Instant::now();
//! let device: std::net::SocketAddr = "10.0.0.9:4000".parse().unwrap();
//! let mut rx = Receiver::new(now, ReceiverConfig::udp(200_000_001, vec![device.ip()]));
//! let mut out = Vec::new();
//! # let datagram = bytes::Bytes::new();
//! rx.on_packet(now, device, datagram, &mut out); // every datagram from the media socket
//! for r in out.drain(..) {
//!     match r {
//!         Received::Unit(_au) => { /* to the viewers */ }
//!         Received::KeyframeNeeded => { /* ask the camera (IFrameCmd) */ }
//!         _ => {}
//!     }
//! }
//! // sleep until rx.poll_timeout(), then rx.on_timeout(now, &mut out)
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::AccessUnit;
use crate::ps::{DemuxEvent, DemuxStats, PsDemuxer, Quirk, StreamConfig};
use crate::reorder::{AssemblerStats, FrameAssembler, Reorder, ReorderConfig};
use crate::rtp::{self, RtpPacket};
use crate::stats::{StatsSnapshot, StreamStats};

/// What to do with RTP whose SSRC is not the negotiated one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum SsrcPolicy {
    /// Not our stream: count it for the diagnosis, drop it.
    #[default]
    Strict,
    /// When nothing with the negotiated SSRC arrived for a second and one other SSRC did,
    /// take that one (devices that ignore `y=`).
    Latch,
}

/// How the stream arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP datagrams: reordered, gaps are losses.
    Udp,
    /// RFC 4571 frames over TCP: in order, nothing to wait for.
    Tcp,
}

/// Settings of a [`Receiver`].
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// The SSRC the stream was negotiated with (`y=`).
    pub ssrc: u32,
    /// The device's addresses: media from anywhere else is dropped. Empty: any address.
    pub allowed: Vec<IpAddr>,
    /// What to do with other SSRCs.
    pub policy: SsrcPolicy,
    /// UDP or TCP.
    pub transport: Transport,
    /// Hold video after a loss until the next key frame (default true). Off only to measure
    /// what passing damaged references on looks like.
    pub hold_after_loss: bool,
    /// While video is held, ask again this long after the last [`Received::KeyframeNeeded`]
    /// (the key frame asked for may itself have been lost). Default 500 ms.
    pub reask_after: Duration,
}

impl ReceiverConfig {
    /// UDP from `allowed`, strict SSRC.
    pub fn udp(ssrc: u32, allowed: Vec<IpAddr>) -> ReceiverConfig {
        ReceiverConfig {
            ssrc,
            allowed,
            policy: SsrcPolicy::Strict,
            transport: Transport::Udp,
            hold_after_loss: true,
            reask_after: Duration::from_millis(500),
        }
    }

    /// TCP from `allowed`, strict SSRC.
    pub fn tcp(ssrc: u32, allowed: Vec<IpAddr>) -> ReceiverConfig {
        ReceiverConfig {
            transport: Transport::Tcp,
            ..ReceiverConfig::udp(ssrc, allowed)
        }
    }
}

/// What the receiver produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// The stream's configuration (codec, resolution, parameter sets).
    Config(StreamConfig),
    /// An access unit, whole, and for video decodable (its references were passed on).
    Unit(AccessUnit),
    /// A real-device quirk, the first time it shows in this stream.
    Quirk(Quirk),
    /// Video is held until a key frame (a loss, or none yet): ask the device for one.
    /// At the start of a hold, then every [`ReceiverConfig::reask_after`] while it lasts.
    KeyframeNeeded,
    /// Something worth one log line.
    Notice(Notice),
}

/// Events worth a log line, each reported once per stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Media came from an address that is not the device's; it is dropped.
    ForeignSource(SocketAddr),
    /// The device ignores `y=`: its SSRC was taken ([`SsrcPolicy::Latch`]).
    SsrcLatched {
        /// The negotiated SSRC.
        expected: u32,
        /// The one taken.
        got: u32,
    },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::ForeignSource(from) => write!(
                f,
                "media from {from}, which is not the device's address, dropped"
            ),
            Notice::SsrcLatched { expected, got } => write!(
                f,
                "the device ignores y=: expected SSRC {expected:010}, taking {got:010}"
            ),
        }
    }
}

/// Why a stream shows no media: counters of what did arrive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Diagnosis {
    /// Datagrams or TCP frames received.
    pub packets: u64,
    /// Packets accepted as this stream.
    pub accepted: u64,
    /// Packets that were not RTP.
    pub not_rtp: u64,
    /// RTP packets with another SSRC.
    pub wrong_ssrc: u64,
    /// The last other SSRC seen.
    pub last_wrong_ssrc: Option<u32>,
    /// Packets from an address other than the device's: dropped (they could be anyone's).
    pub other_source: u64,
    /// TCP connections refused (counted by the caller, which accepts them): from another
    /// address than the device's, or while the device's connection was up.
    pub refused_connections: u64,
    /// The last source address seen.
    pub last_source: Option<SocketAddr>,
    /// A TCP connection was established (set by the caller).
    pub tcp_connected: bool,
}

impl Diagnosis {
    /// A sentence naming the likely cause of "no media", for the viewer and the log.
    pub fn explain(&self, expected_ssrc: u32, listen: &str) -> String {
        let source = || {
            self.last_source
                .map(|s| s.to_string())
                .unwrap_or_else(|| "?".into())
        };
        if self.packets == 0 {
            if listen.starts_with("tcp-active") {
                return format!(
                    "no packets: could not connect to or received nothing from the device ({listen}); check that the device listens where its SDP answer says"
                );
            }
            return format!(
                "no packets arrived at {listen}: check media.announce_ip, firewalls and NAT between the device and the gateway"
            );
        }
        if self.other_source > 0 && self.accepted == 0 && self.wrong_ssrc == 0 {
            return format!(
                "packets from {} only, which is not the device's address: they were dropped (a device behind NAT? see media.trust_sdp_address)",
                source()
            );
        }
        if self.wrong_ssrc > 0 && self.accepted == 0 {
            return format!(
                "SSRC mismatch: expected {expected_ssrc:010} (0x{expected_ssrc:08X}), the device sent {} packet(s) with SSRC {} from {}",
                self.wrong_ssrc,
                self.last_wrong_ssrc
                    .map(|s| format!("{s:010} (0x{s:08X})"))
                    .unwrap_or_default(),
                source()
            );
        }
        if self.not_rtp > 0 && self.accepted == 0 {
            return format!("{} packet(s) from {} were not RTP", self.not_rtp, source());
        }
        format!(
            "{} RTP packet(s) arrived but no decodable video frame (not PS, or no key frame)",
            self.accepted
        )
    }
}

/// Counters of the pipeline as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// RTP frames (one timestamp) assembled.
    pub rtp_frames: u64,
    /// RTP frames dropped because a sequence gap fell inside or just before them.
    pub incomplete_rtp_frames: u64,
    /// RTP frames that ended without their marker bit.
    pub frames_without_marker: u64,
    /// Video access units held back while waiting for a key frame after a loss: frames a
    /// decoder could not have shown right.
    pub held_video_frames: u64,
    /// Times video was held after a loss.
    pub holds: u64,
    /// Losses found not to be video (the next video frame kept the PTS cadence).
    pub losses_not_video: u64,
}

/// One stream's receive pipeline. See the module documentation.
#[derive(Debug)]
pub struct Receiver {
    cfg: ReceiverConfig,
    reorder: Reorder,
    assembler: FrameAssembler,
    demux: PsDemuxer,
    stats: StreamStats,
    diag: Diagnosis,
    counters: ReceiverStats,
    latched: Option<u32>,
    started: Instant,
    warned_source: bool,
    /// Video waits for a key frame (at the start, and after a loss).
    holding: bool,
    /// A loss that may have been video: the next video frame decides.
    suspect: bool,
    /// PTS of the last video frame and the step before it (90 kHz).
    last_video_pts: Option<u64>,
    video_step: Option<u64>,
    /// When [`Received::KeyframeNeeded`] was last sent in this hold.
    asked: Option<Instant>,
    /// The demuxer's dropped video frames already acted on.
    seen_video_drops: u64,
}

impl Receiver {
    /// A receiver for a stream negotiated at `now`.
    pub fn new(now: Instant, cfg: ReceiverConfig) -> Receiver {
        let reorder = Reorder::new(match cfg.transport {
            Transport::Udp => ReorderConfig::udp(),
            Transport::Tcp => ReorderConfig::tcp(),
        });
        Receiver {
            holding: cfg.hold_after_loss,
            suspect: false,
            last_video_pts: None,
            video_step: None,
            cfg,
            reorder,
            assembler: FrameAssembler::new(),
            demux: PsDemuxer::new(),
            stats: StreamStats::new(90_000),
            diag: Diagnosis::default(),
            counters: ReceiverStats::default(),
            latched: None,
            started: now,
            warned_source: false,
            asked: None,
            seen_video_drops: 0,
        }
    }

    /// The diagnosis so far.
    pub fn diagnosis(&self) -> &Diagnosis {
        &self.diag
    }

    /// The diagnosis, for the counters the caller keeps (TCP connections).
    pub fn diagnosis_mut(&mut self) -> &mut Diagnosis {
        &mut self.diag
    }

    /// Whether media (or a TCP connection) from `ip` may be the device's.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.cfg.allowed.is_empty() || self.cfg.allowed.contains(&ip)
    }

    /// Packets accepted as this stream so far.
    pub fn accepted(&self) -> u64 {
        self.diag.accepted
    }

    /// Receive statistics (loss, jitter, bitrate, fps).
    pub fn stats(&self, now: Instant) -> StatsSnapshot {
        let mut s = self.stats.clone();
        s.record_reorder(&self.reorder.stats());
        s.snapshot(now)
    }

    /// The demuxer's counters.
    pub fn demux_stats(&self) -> &DemuxStats {
        self.demux.stats()
    }

    /// The frame assembler's counters.
    pub fn assembler_stats(&self) -> AssemblerStats {
        self.assembler.stats()
    }

    /// The pipeline's counters.
    pub fn counters(&self) -> &ReceiverStats {
        &self.counters
    }

    /// One UDP datagram or one RFC 4571 frame from `from`.
    pub fn on_packet(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: Bytes,
        out: &mut Vec<Received>,
    ) {
        self.diag.packets += 1;
        self.diag.last_source = Some(from);
        if rtp::looks_like_rtcp(&data) {
            return;
        }
        if !self.allows(from.ip()) {
            // Anyone on the network can send to our port with a guessed SSRC: not the device.
            self.diag.other_source += 1;
            if !self.warned_source {
                self.warned_source = true;
                out.push(Received::Notice(Notice::ForeignSource(from)));
            }
            return;
        }
        let pkt = match RtpPacket::parse(data) {
            Ok(p) => p,
            Err(_) => {
                self.diag.not_rtp += 1;
                return;
            }
        };
        let ssrc = pkt.ssrc();
        if ssrc != self.cfg.ssrc && self.latched != Some(ssrc) {
            self.diag.wrong_ssrc += 1;
            self.diag.last_wrong_ssrc = Some(ssrc);
            let may_latch = self.cfg.policy == SsrcPolicy::Latch
                && self.diag.accepted == 0
                && now.duration_since(self.started) >= Duration::from_secs(1);
            if !may_latch {
                return;
            }
            self.latched = Some(ssrc);
            out.push(Received::Notice(Notice::SsrcLatched {
                expected: self.cfg.ssrc,
                got: ssrc,
            }));
        }
        if pkt.payload_looks_like_ts() {
            self.diag.not_rtp += 1;
            return;
        }
        self.diag.accepted += 1;
        self.stats.on_packet(now, &pkt);
        self.reorder.push(now, pkt);
        self.drain(now, out);
    }

    /// Drive the reorder wait.
    pub fn on_timeout(&mut self, now: Instant, out: &mut Vec<Received>) {
        self.drain(now, out);
    }

    /// When the reorder buffer next gives up waiting for a missing packet.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.reorder.poll_timeout()
    }

    /// The transport lost data without a sequence gap showing it (a TCP reconnect).
    pub fn discontinuity(&mut self, now: Instant, out: &mut Vec<Received>) {
        self.assembler.discontinuity();
        self.demux.discontinuity();
        self.lost(now, out);
    }

    fn drain(&mut self, now: Instant, out: &mut Vec<Received>) {
        while let Some(p) = self.reorder.poll(now) {
            self.assembler.push(p);
        }
        while let Some(mut frame) = self.assembler.poll() {
            self.counters.rtp_frames += 1;
            if !frame.marker {
                self.counters.frames_without_marker += 1;
            }
            let front_whole = !frame.complete
                && frame.only_front_missing
                && frame.marker
                && frame
                    .payloads
                    .first()
                    .is_some_and(|p| p.starts_with(PACK_START));
            if front_whole {
                // Only packets before it were lost, and it starts with its pack header: it is
                // whole. What was lost is another frame, audio or video: the next video frame
                // tells.
                self.demux.discontinuity();
                self.maybe_lost();
            }
            if frame.complete || front_whole {
                for b in frame.payloads.drain(..) {
                    self.demux.push(b);
                }
                if frame.marker {
                    // One frame per RTP marker: hand it on now, not at the next pack.
                    self.demux.end_of_frame();
                }
            } else {
                // Never hand on a damaged frame: drop it and resync at the next pack.
                self.counters.incomplete_rtp_frames += 1;
                self.demux.discontinuity();
                if frame.payloads.iter().any(|p| has_video_pes_start(p)) {
                    self.lost(now, out);
                } else {
                    self.maybe_lost();
                }
            }
            self.assembler.recycle(frame);
            self.demuxed(now, out);
        }
    }

    fn demuxed(&mut self, now: Instant, out: &mut Vec<Received>) {
        while let Some(ev) = self.demux.poll() {
            self.demux_drops(now, out);
            match ev {
                DemuxEvent::AccessUnit(au) => self.unit(now, au, out),
                DemuxEvent::StreamConfig(c) => out.push(Received::Config(c)),
                DemuxEvent::Quirk(q) => out.push(Received::Quirk(q)),
            }
        }
        self.demux_drops(now, out);
    }

    /// A video frame the demuxer dropped is a loss like any other.
    fn demux_drops(&mut self, now: Instant, out: &mut Vec<Received>) {
        let drops = self.demux.stats().dropped_video_frames;
        if drops > self.seen_video_drops {
            self.seen_video_drops = drops;
            self.lost(now, out);
        }
    }

    /// Data was lost that may have been video: the next video frame decides.
    fn maybe_lost(&mut self) {
        if self.cfg.hold_after_loss && !self.holding {
            self.suspect = true;
        }
    }

    /// Video lost a frame: hold it until the next key frame.
    fn lost(&mut self, now: Instant, out: &mut Vec<Received>) {
        self.suspect = false;
        if !self.cfg.hold_after_loss || self.holding {
            return;
        }
        self.holding = true;
        self.asked = None;
        self.counters.holds += 1;
        self.ask(now, out);
    }

    /// Asks for a key frame at the start of a hold, and again while it lasts.
    fn ask(&mut self, now: Instant, out: &mut Vec<Received>) {
        let due = self
            .asked
            .is_none_or(|t| now.saturating_duration_since(t) >= self.cfg.reask_after);
        if due {
            self.asked = Some(now);
            out.push(Received::KeyframeNeeded);
        }
    }

    fn unit(&mut self, now: Instant, au: AccessUnit, out: &mut Vec<Received>) {
        if au.codec.is_video() {
            let step = match (au.pts, self.last_video_pts) {
                (Some(p), Some(l)) => Some(p.wrapping_sub(l) & PTS_MASK),
                _ => None,
            };
            if self.suspect {
                self.suspect = false;
                let cadence = step.is_some_and(|s| s > 0 && Some(s) == self.video_step);
                if au.keyframe || cadence {
                    self.counters.losses_not_video += 1;
                } else {
                    self.lost(now, out);
                }
            }
            if au.pts.is_some() {
                self.last_video_pts = au.pts;
                self.video_step = step;
            }
        }
        if au.codec.is_video() && self.holding {
            if au.keyframe {
                self.holding = false;
            } else {
                self.counters.held_video_frames += 1;
                // At the start nothing was asked yet: a stream that begins mid-GOP.
                self.ask(now, out);
                return;
            }
        }
        out.push(Received::Unit(au));
    }
}

/// A PS pack header's start code: every PS-over-RTP frame begins with one.
const PACK_START: &[u8] = &[0, 0, 1, 0xBA];

/// PTS are 33 bits.
const PTS_MASK: u64 = (1 << 33) - 1;

/// Whether `payload` holds the start of a video PES packet (`00 00 01 E0`–`EF`).
fn has_video_pes_start(payload: &[u8]) -> bool {
    payload
        .windows(4)
        .any(|w| w[0] == 0 && w[1] == 0 && w[2] == 1 && (0xE0..=0xEF).contains(&w[3]))
}

#[cfg(test)]
mod tests;
