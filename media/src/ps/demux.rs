//! The streaming demuxer: PS bytes in any chunking → access units (ISO/IEC 13818-1 §2.5,
//! GB/T 28181-2022 Annex C).
//!
//! Every element is skipped or read by its declared length; the only scans are the resync
//! search for a pack start code and the end of a `PES_packet_length` 0 payload.

use super::assemble::{Out, Streams};
use super::input::Input;
use super::{Error, Quirk, QuirkCounts, pack, pes, psm};
use crate::Codec;
use crate::frame::AccessUnit;
use bytes::Bytes;

/// Tuning of a [`PsDemuxer`].
#[derive(Debug, Clone)]
pub struct DemuxConfig {
    /// A frame larger than this is dropped (with [`Quirk::FrameTooLarge`]): bounds memory
    /// whatever the input says. Default 16 MiB.
    pub max_frame_size: usize,
    /// Insert the cached SPS/PPS(/VPS) in front of a key frame that came without them.
    /// Default true.
    pub prepend_parameter_sets: bool,
    /// Hand on each ADTS frame of an AAC PES as its own access unit. Default true.
    pub split_adts: bool,
}

impl Default for DemuxConfig {
    fn default() -> Self {
        DemuxConfig {
            max_frame_size: 16 << 20,
            prepend_parameter_sets: true,
            split_adts: true,
        }
    }
}

/// What the demuxer found.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DemuxEvent {
    /// A whole frame of one stream.
    AccessUnit(AccessUnit),
    /// A stream appeared or its configuration changed; comes before the access unit it
    /// applies to.
    StreamConfig(StreamConfig),
    /// A real-device quirk met for the first time in this stream.
    Quirk(Quirk),
}

/// The configuration of one elementary stream, from its PSM entry and its parameter sets or
/// ADTS headers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamConfig {
    /// PES stream id.
    pub stream_id: u8,
    /// The codec (PSM or sniffed).
    pub codec: Option<Codec>,
    /// Picture width after cropping.
    pub width: Option<u32>,
    /// Picture height after cropping.
    pub height: Option<u32>,
    /// H.264 `profile_idc` / H.265 `general_profile_idc`.
    pub profile: Option<u8>,
    /// `level_idc`.
    pub level: Option<u8>,
    /// Frames per second, when the VUI carries timing.
    pub frame_rate: Option<f64>,
    /// RFC 6381 codec string (`avc1.4d0032`) for H.264.
    pub codec_string: Option<String>,
    /// H.265 VPS (no start code).
    pub vps: Option<Bytes>,
    /// SPS (no start code).
    pub sps: Option<Bytes>,
    /// PPS (no start code).
    pub pps: Option<Bytes>,
    /// Audio samples per second.
    pub sample_rate: Option<u32>,
    /// Audio channels.
    pub channels: Option<u8>,
}

/// Counters of a [`PsDemuxer`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemuxStats {
    /// Bytes pushed.
    pub bytes_in: u64,
    /// Pack headers.
    pub packs: u64,
    /// System headers.
    pub system_headers: u64,
    /// Program stream maps.
    pub psms: u64,
    /// Audio/video PES packets.
    pub pes_packets: u64,
    /// Video access units handed on.
    pub video_frames: u64,
    /// Key frames among them.
    pub keyframes: u64,
    /// Audio access units handed on.
    pub audio_frames: u64,
    /// Private, padding and other-stream PES bytes skipped by length.
    pub skipped_stream_bytes: u64,
    /// Bytes that were no valid syntax, skipped while resynchronising.
    pub skipped_bytes: u64,
    /// Times the demuxer lost sync and searched for the next pack header.
    pub resyncs: u64,
    /// Calls to [`PsDemuxer::discontinuity`].
    pub discontinuities: u64,
    /// Frames dropped because data was lost, corrupt, cut short or too large.
    pub dropped_frames: u64,
    /// Video frames among them: the frames after one may reference it.
    pub dropped_video_frames: u64,
    /// Video PES continuations whose frame start was lost (they follow a short PES, or no
    /// frame): dropped with the rest of their frame, never glued to the frame before. Not
    /// counted before the stream's first frame (joining a stream mid-frame is no loss).
    pub lost_frame_starts: u64,
    /// Key frames that got the cached parameter sets prepended.
    pub parameter_sets_prepended: u64,
    /// Last SCR base seen (90 kHz).
    pub last_scr: Option<u64>,
    /// Occurrences of each quirk.
    pub quirks: QuirkCounts,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// At a start code.
    Boundary,
    /// Lost: looking for `00 00 01 BA`.
    Resync,
    /// Inside a PES payload (or a skipped element) of `remaining` bytes.
    Payload { remaining: usize, sid: Option<u8> },
    /// Inside a `PES_packet_length` 0 payload: it runs to the next pack (or system) start code.
    ToPack { sid: u8, nal: bool },
}

#[derive(PartialEq)]
enum Step {
    Progress,
    NeedMore,
}

/// The largest PES header plus the payload bytes looked at for frame boundaries.
const PES_PEEK: usize = 9 + 255 + 4;

/// Streaming MPEG-PS demuxer (sans-IO): push bytes, poll events.
///
/// ```
/// use bytes::Bytes;
/// use media::ps::{DemuxEvent, PsDemuxer};
/// let capture = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"),
///     "/tests/data/srs_ps_payloads_seq31813-31914_filler.ps")).unwrap();
/// let mut demux = PsDemuxer::new();
/// for udp_payload in capture.chunks(1400) {
///     demux.push(Bytes::copy_from_slice(udp_payload));
///     while let Some(ev) = demux.poll() {
///         if let DemuxEvent::AccessUnit(au) = ev { assert!(au.keyframe); }
///     }
/// }
/// demux.finish();
/// while demux.poll().is_some() {}
/// assert_eq!(demux.stats().video_frames, 1);
/// ```
#[derive(Debug)]
pub struct PsDemuxer {
    input: Input,
    scratch: Vec<u8>,
    /// The last program stream map applied (its bytes, length mismatch, CRC good).
    last_psm: Option<(Vec<u8>, bool, bool)>,
    state: State,
    streams: Streams,
    out: Out,
    pack_epoch: u64,
    /// How far the last pack's SCR is after the one before (90 kHz), when both had one.
    pack_step: Option<u64>,
    finishing: bool,
    flushed: bool,
}

impl Default for PsDemuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl PsDemuxer {
    /// A demuxer with the default [`DemuxConfig`].
    pub fn new() -> Self {
        Self::with_config(DemuxConfig::default())
    }

    /// A demuxer with `config`.
    pub fn with_config(config: DemuxConfig) -> Self {
        PsDemuxer {
            input: Input::default(),
            scratch: Vec::with_capacity(PES_PEEK),
            last_psm: None,
            state: State::Boundary,
            streams: Streams::new(config),
            out: Out::default(),
            pack_epoch: 0,
            pack_step: None,
            finishing: false,
            flushed: false,
        }
    }

    /// Queues the next bytes of the stream (a UDP payload, a TCP read, a file block). Cheap:
    /// the work happens in [`poll`](Self::poll). Poll until `None` between pushes to keep
    /// memory bounded.
    pub fn push(&mut self, chunk: Bytes) {
        if self.finishing {
            self.finishing = false;
            self.flushed = false;
            self.state = State::Boundary;
        }
        self.out.stats.bytes_in += chunk.len() as u64;
        self.input.push(chunk);
    }

    /// The caller lost data here (an RTP sequence gap, a TCP reconnect): the frames in progress
    /// are dropped and parsing resumes at the next pack header.
    pub fn discontinuity(&mut self) {
        self.out.stats.discontinuities += 1;
        self.input.mark_gap();
    }

    /// The caller knows a PS frame ends here (the RTP marker bit, or the end of a reassembled
    /// RTP frame): the open video frame is handed on at this point instead of when the next
    /// pack arrives, saving a frame interval of latency. Ignored when a PES is still open here.
    pub fn end_of_frame(&mut self) {
        self.input.mark_frame_end();
    }

    /// End of input: the last frame is complete, hand it on.
    pub fn finish(&mut self) {
        self.finishing = true;
    }

    /// The next event, or `None` when more input is needed.
    pub fn poll(&mut self) -> Option<DemuxEvent> {
        loop {
            if let Some(ev) = self.out.events.pop_front() {
                return Some(ev);
            }
            if self.step() == Step::NeedMore {
                if self.finishing && !self.flushed {
                    self.flushed = true;
                    if let State::ToPack { sid, .. } = self.state {
                        self.streams.pes_end(sid, &mut self.out);
                        self.state = State::Boundary;
                    }
                    self.streams.flush(&mut self.out);
                    continue;
                }
                // The step that ran out of input may still have produced events.
                return self.out.events.pop_front();
            }
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &DemuxStats {
        &self.out.stats
    }

    fn step(&mut self) -> Step {
        if self.input.avail() == 0 && self.input.take_gap() {
            self.streams.damage_all(&mut self.out);
            self.state = State::Resync;
            return Step::Progress;
        }
        match self.state {
            State::Boundary => self.boundary(),
            State::Resync => self.resync(),
            State::Payload { remaining, sid } => self.payload(remaining, sid),
            State::ToPack { sid, nal } => self.unbounded_payload(sid, nal),
        }
    }

    /// The element at the read position needs `n` bytes and fewer are readable.
    fn short(&mut self, n: usize) -> Step {
        let avail = self.input.avail();
        debug_assert!(avail < n);
        if self.input.gap_ahead() || self.finishing {
            // Cut by lost data or by the end of input: these bytes are all there will be.
            self.out.stats.skipped_bytes += self.input.clear_readable() as u64;
            return if self.input.gap_ahead() {
                Step::Progress
            } else {
                Step::NeedMore
            };
        }
        Step::NeedMore
    }

    fn corrupt(&mut self) -> Step {
        self.out.stats.resyncs += 1;
        self.out.quirk(Quirk::Resync);
        self.streams.damage_all(&mut self.out);
        self.input.advance(1);
        self.out.stats.skipped_bytes += 1;
        self.state = State::Resync;
        Step::Progress
    }

    fn boundary(&mut self) -> Step {
        if self.input.take_frame_end() {
            self.streams.close_pending(u64::MAX, None, &mut self.out);
        }
        let Some(b) = self.input.peek(4, &mut self.scratch) else {
            return self.short(4);
        };
        let code = [b[0], b[1], b[2], b[3]];
        if code[..3] != [0, 0, 1] {
            if code == [0, 0, 0, 1] || code == [0, 0, 0, 0] {
                self.out.quirk(Quirk::ZeroStuffing);
                self.input.advance(1);
                self.out.stats.skipped_bytes += 1;
                return Step::Progress;
            }
            return self.corrupt();
        }
        if code[3] != super::PACK_START {
            let except = (0xC0..=0xEF).contains(&code[3]).then_some(code[3]);
            self.streams
                .close_pending(self.pack_epoch, except, &mut self.out);
        }
        match code[3] {
            super::PACK_START => self.pack(),
            super::PROGRAM_END => {
                self.input.advance(4);
                Step::Progress
            }
            super::SYSTEM_HEADER => self.skip_element(None),
            super::PROGRAM_STREAM_MAP => self.psm(),
            super::PRIVATE_STREAM_1 | super::PRIVATE_STREAM_2 => {
                self.skip_element(Some(Quirk::PrivateStreamSkipped))
            }
            super::PADDING_STREAM => self.skip_element(None),
            0xC0..=0xEF => self.pes(code[3]),
            0xF0..=0xFF => self.skip_element(Some(Quirk::OtherStreamSkipped)),
            _ => self.corrupt(),
        }
    }

    /// An element skipped by its 16-bit length (system header, private, padding, others).
    fn skip_element(&mut self, quirk: Option<Quirk>) -> Step {
        let Some(b) = self.input.peek(6, &mut self.scratch) else {
            return self.short(6);
        };
        let len = usize::from(u16::from_be_bytes([b[4], b[5]]));
        if b[3] == super::SYSTEM_HEADER {
            self.out.stats.system_headers += 1;
        }
        if let Some(q) = quirk {
            self.out.quirk(q);
        }
        self.out.stats.skipped_stream_bytes += 6 + len as u64;
        self.input.advance(6);
        self.state = State::Payload {
            remaining: len,
            sid: None,
        };
        Step::Progress
    }

    fn pack(&mut self) -> Step {
        let n = self.input.avail().min(21);
        let Some(b) = self.input.peek(n, &mut self.scratch) else {
            return Step::NeedMore;
        };
        match pack::parse(b) {
            Err(Error::Incomplete { needed }) => self.short(needed),
            Err(Error::Invalid { .. }) => self.corrupt(),
            Ok(h) => {
                self.input.advance(h.len);
                let s = &mut self.out.stats;
                s.packs += 1;
                self.pack_step = match (s.last_scr, h.bare) {
                    (Some(prev), false) => h.scr_base.checked_sub(prev),
                    _ => None,
                };
                if !h.bare {
                    s.last_scr = Some(h.scr_base);
                }
                self.pack_epoch += 1;
                if h.bare {
                    self.out.quirk(Quirk::BarePackHeader);
                }
                if h.mpeg1 {
                    self.out.quirk(Quirk::Mpeg1PackHeader);
                }
                if h.stuffing_not_ff {
                    self.out.quirk(Quirk::PackStuffing);
                }
                Step::Progress
            }
        }
    }

    fn psm(&mut self) -> Step {
        let Some(b) = self.input.peek(6, &mut self.scratch) else {
            return self.short(6);
        };
        let len = 6 + usize::from(u16::from_be_bytes([b[4], b[5]]));
        let Some(b) = self.input.peek(len, &mut self.scratch) else {
            return self.short(len);
        };
        if let Some((bytes, length_mismatch, crc_ok)) = &self.last_psm
            && bytes[..] == *b
        {
            // Cameras repeat the same map before every key frame: applied already, and
            // parsing it again would allocate its entry list per key frame.
            let (length_mismatch, crc_ok) = (*length_mismatch, *crc_ok);
            self.input.advance(len);
            self.out.stats.psms += 1;
            if length_mismatch {
                self.out.quirk(Quirk::PsmDescriptorLengthMismatch);
            }
            if !crc_ok {
                self.out.quirk(Quirk::PsmCrcMismatch);
            }
            return Step::Progress;
        }
        match psm::parse(b) {
            Err(Error::Incomplete { needed }) => self.short(needed),
            Err(Error::Invalid { .. }) => self.corrupt(),
            Ok(map) => {
                let mut raw = self.last_psm.take().map(|l| l.0).unwrap_or_default();
                raw.clear();
                raw.extend_from_slice(b);
                self.last_psm = Some((raw, map.length_mismatch, map.crc_ok));
                self.input.advance(len);
                self.out.stats.psms += 1;
                if map.length_mismatch {
                    self.out.quirk(Quirk::PsmDescriptorLengthMismatch);
                }
                if !map.crc_ok {
                    self.out.quirk(Quirk::PsmCrcMismatch);
                }
                self.streams.apply_psm(&map, &mut self.out);
                Step::Progress
            }
        }
    }

    fn pes(&mut self, sid: u8) -> Step {
        let avail = self.input.avail();
        let n = avail.min(PES_PEEK);
        let Some(b) = self.input.peek(n, &mut self.scratch) else {
            return Step::NeedMore;
        };
        let h = match pes::parse(b) {
            Err(Error::Incomplete { needed }) => return self.short(needed),
            Err(Error::Invalid { .. }) => return self.corrupt(),
            Ok(h) => h,
        };
        // Look at the first payload bytes too (frame boundary without PTS).
        let want_head = h.payload_len().unwrap_or(4).min(4);
        if b.len() < h.header_len + want_head {
            return self.short(h.header_len + want_head);
        }
        let mut head = [0u8; 4];
        head[..want_head].copy_from_slice(&b[h.header_len..h.header_len + want_head]);
        let head = &head[..want_head];
        self.input.advance(h.header_len);
        self.out.stats.pes_packets += 1;
        if h.mpeg1 {
            self.out.quirk(Quirk::Mpeg1PesHeader);
        }
        self.streams.pes_start(
            sid,
            &h,
            head,
            self.pack_epoch,
            self.pack_step,
            &mut self.out,
        );
        self.state = match h.payload_len() {
            Some(remaining) => State::Payload {
                remaining,
                sid: Some(sid),
            },
            None => {
                self.out.quirk(Quirk::PesLengthZero);
                State::ToPack {
                    sid,
                    nal: self.streams.is_nal_video(sid),
                }
            }
        };
        Step::Progress
    }

    fn payload(&mut self, remaining: usize, sid: Option<u8>) -> Step {
        if remaining == 0 {
            if let Some(sid) = sid {
                self.streams.pes_end(sid, &mut self.out);
            }
            self.state = State::Boundary;
            return Step::Progress;
        }
        let Some(seg) = self.input.take(remaining) else {
            if self.finishing && !self.input.gap_ahead() {
                // Cut short by the end of input.
                if let Some(sid) = sid {
                    self.streams.damage(sid, &mut self.out);
                }
                self.state = State::Boundary;
            }
            return Step::NeedMore;
        };
        let n = seg.bytes().len();
        self.state = State::Payload {
            remaining: remaining - n,
            sid,
        };
        if let Some(sid) = sid {
            self.streams.append(sid, seg, &mut self.out);
        }
        Step::Progress
    }

    /// A start code that ends a `PES_packet_length` 0 payload: a pack header, or for H.264/H.265
    /// any system or PES start code (a NAL header byte is never ≥ 0x80).
    fn ends_unbounded(code: u8, nal: bool) -> bool {
        code == super::PACK_START || (nal && (super::PROGRAM_END..=0xEF).contains(&code))
    }

    fn unbounded_payload(&mut self, sid: u8, nal: bool) -> Step {
        let front = self.input.front();
        let len = front.len();
        let mut from = 0;
        let mut safe = len.saturating_sub(3);
        while let Some(p) = crate::codec::nal::find_001(front, from) {
            match front.get(p + 3) {
                Some(&c) if Self::ends_unbounded(c, nal) => {
                    safe = p;
                    if p == 0 {
                        self.streams.pes_end(sid, &mut self.out);
                        self.state = State::Boundary;
                        return Step::Progress;
                    }
                    break;
                }
                Some(_) => from = p + 1,
                None => {
                    safe = p;
                    break;
                }
            }
        }
        if safe > 0 {
            if let Some(seg) = self.input.take(safe) {
                self.streams.append(sid, seg, &mut self.out);
            }
            return Step::Progress;
        }
        // Fewer than 4 bytes left in this chunk: look across.
        if let Some(b) = self.input.peek(4, &mut self.scratch) {
            if b[..3] == [0, 0, 1] && Self::ends_unbounded(b[3], nal) {
                self.streams.pes_end(sid, &mut self.out);
                self.state = State::Boundary;
            } else if let Some(seg) = self.input.take(1) {
                self.streams.append(sid, seg, &mut self.out);
            }
            return Step::Progress;
        }
        if (self.input.gap_ahead() || self.finishing)
            && let Some(seg) = self.input.take(usize::MAX)
        {
            self.streams.append(sid, seg, &mut self.out);
            return Step::Progress;
        }
        Step::NeedMore
    }

    fn resync(&mut self) -> Step {
        let front = self.input.front();
        let len = front.len();
        let mut from = 0;
        let mut safe = len.saturating_sub(3);
        while let Some(p) = crate::codec::nal::find_001(front, from) {
            match front.get(p + 3) {
                Some(&super::PACK_START) => {
                    self.input.advance(p);
                    self.out.stats.skipped_bytes += p as u64;
                    self.state = State::Boundary;
                    return Step::Progress;
                }
                Some(_) => from = p + 1,
                None => {
                    safe = p;
                    break;
                }
            }
        }
        if safe > 0 {
            self.input.advance(safe);
            self.out.stats.skipped_bytes += safe as u64;
            return Step::Progress;
        }
        if let Some(b) = self.input.peek(4, &mut self.scratch) {
            if b == [0, 0, 1, super::PACK_START] {
                self.state = State::Boundary;
            } else {
                self.input.advance(1);
                self.out.stats.skipped_bytes += 1;
            }
            return Step::Progress;
        }
        if self.input.gap_ahead() || self.finishing {
            let n = self.input.clear_readable();
            self.out.stats.skipped_bytes += n as u64;
            if n > 0 || self.input.gap_ahead() {
                return Step::Progress;
            }
        }
        Step::NeedMore
    }
}
