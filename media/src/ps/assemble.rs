//! Frame assembly per elementary stream: frame boundaries, codec labelling (PSM, sniffing,
//! relabelling), key frames and parameter-set caching (GB/T 28181-2022 Annex C; PROTOCOL-NOTES
//! §9 real-device quirks).

use super::Quirk;
use super::demux::{DemuxConfig, DemuxEvent, DemuxStats, StreamConfig};
use super::input::{Accum, Seg};
use super::pes::PesHeader;
use super::psm::Psm;
use crate::arena::Arena;
use crate::codec::{self, ParameterSetCache, aac, h264, h265};
use crate::{AccessUnit, Codec};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;

/// Events and counters, shared by the parser and the assembler.
#[derive(Debug, Default)]
pub(crate) struct Out {
    pub events: VecDeque<DemuxEvent>,
    pub stats: DemuxStats,
}

impl Out {
    /// Counts `q`; reports it the first time.
    pub fn quirk(&mut self, q: Quirk) {
        if self.stats.quirks.add(q) {
            self.events.push_back(DemuxEvent::Quirk(q));
        }
    }
}

/// A PES this much shorter than the split size is still full (stuffing). The PTS/DTS of a
/// frame's first PES is allowed for by comparing both payload and packet lengths: a muxer
/// that caps `PES_packet_length` (ffmpeg `-f vob`: 2,027 in 2 KiB packs) gives the first PES
/// fewer payload bytes, one that caps the payload (0xFF80) a longer packet.
const SPLIT_SLACK: usize = 16;

/// No muxer splits frames into PES shorter than this (GB/T 28181 devices use about 64 KiB,
/// commonly 0xFF80; DVD-style muxers fill 2 KiB packs).
const MIN_SPLIT: usize = 1024;

/// Before a stream's split size is known, a continuation is believed after a PES at least
/// this long (devices split near 64 KiB) …
const FIRST_SPLIT: usize = 32 * 1024;

/// … or after a pack header whose SCR is less than this after the one before (10 ms at
/// 90 kHz): packs that close together cut one frame (DVD-style muxers), while a camera's
/// next pack is its next frame, a frame interval later.
const CLOSE_PACKS: u64 = 900;

/// One elementary stream (0xC0–0xEF).
#[derive(Debug, Default)]
struct Stream {
    sid: u8,
    /// The codec the PSM gives.
    psm_codec: Option<Codec>,
    /// The codec of the last access unit handed on.
    codec: Option<Codec>,
    /// A StreamConfig was sent for the current configuration.
    announced: bool,
    accum: Accum,
    pts: Option<u64>,
    dts: Option<u64>,
    /// A frame is being gathered.
    open: bool,
    /// The open frame lost data: it will be dropped.
    damaged: bool,
    last_epoch: u64,
    /// Frames continue across packs here (DVD-style muxers: ffmpeg `-f vob`, GStreamer
    /// `mpegpsmux`), so a pack header does not end a frame.
    spans_packs: bool,
    /// The last frame was ended by a pack header (not by a PTS or the end).
    closed_by_pack: bool,
    params: ParameterSetCache,
    /// (sample rate, channels, object type) last announced.
    audio: Option<(u32, u8, u8)>,
    /// The payload length of this stream's last PES (a frame goes on in a further PES only
    /// after a full one).
    last_pes: LastPes,
    /// The muxer's split size: the longest PES a believed continuation followed.
    split: Option<PesSize>,
}

/// A PES's size: its payload, and its `PES_packet_length` (header included). A muxer caps
/// one or the other when it splits a frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct PesSize {
    payload: usize,
    packet: usize,
}

impl PesSize {
    /// As long as the muxer makes them (`split`), give or take [`SPLIT_SLACK`].
    fn is_full(self, split: PesSize) -> bool {
        self.payload >= MIN_SPLIT
            && (self.payload + SPLIT_SLACK >= split.payload
                || self.packet + SPLIT_SLACK >= split.packet)
    }

    fn max(self, other: PesSize) -> PesSize {
        PesSize {
            payload: self.payload.max(other.payload),
            packet: self.packet.max(other.packet),
        }
    }
}

/// The last PES of a stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum LastPes {
    /// None yet.
    #[default]
    None,
    /// `PES_packet_length` 0: it ran to the next pack, so it may go on in the next.
    Unbounded,
    /// Its size.
    Bounded(PesSize),
}

impl Stream {
    fn is_video(&self) -> bool {
        (0xE0..=0xEF).contains(&self.sid)
    }
}

/// All elementary streams of the program.
#[derive(Debug)]
pub(crate) struct Streams {
    slots: Vec<Option<Box<Stream>>>,
    psm_seen: bool,
    cfg: DemuxConfig,
    copy_buf: BytesMut,
    /// Where frames in several pieces are copied to.
    arena: Arena,
}

/// Frame arena blocks: several P-frames of a 2 Mbit/s stream; a larger frame (a key frame)
/// gets a block of its own size, reused for later frames that fit.
const FRAME_BLOCK: usize = 64 * 1024;
/// Blocks kept: enough for a consumer holding a GOP of a few Mbit/s.
const FRAME_BLOCKS: usize = 32;

fn slot_index(sid: u8) -> Option<usize> {
    (0xC0..=0xEF)
        .contains(&sid)
        .then(|| usize::from(sid - 0xC0))
}

fn starts_with_start_code(head: &[u8]) -> bool {
    head.starts_with(&[0, 0, 1]) || head.starts_with(&[0, 0, 0, 1])
}

impl Streams {
    pub fn new(cfg: DemuxConfig) -> Self {
        Streams {
            slots: (0..48).map(|_| None).collect(),
            psm_seen: false,
            cfg,
            copy_buf: BytesMut::new(),
            arena: Arena::new(FRAME_BLOCK, FRAME_BLOCKS),
        }
    }

    fn stream(&mut self, sid: u8) -> Option<&mut Stream> {
        let i = slot_index(sid)?;
        let slot = self.slots.get_mut(i)?;
        Some(slot.get_or_insert_with(|| {
            Box::new(Stream {
                sid,
                ..Stream::default()
            })
        }))
    }

    /// Is this stream's payload Annex B H.264/H.265 (or not yet known video)?
    pub fn is_nal_video(&mut self, sid: u8) -> bool {
        self.stream(sid).is_some_and(|s| {
            s.is_video()
                && matches!(
                    s.psm_codec.or(s.codec),
                    None | Some(Codec::H264) | Some(Codec::H265)
                )
        })
    }

    /// A PSM (§2.5.4): labels the streams it lists. A changed stream type ends the frame in
    /// progress under the old codec.
    pub fn apply_psm(&mut self, psm: &Psm, out: &mut Out) {
        self.psm_seen = true;
        for e in &psm.entries {
            let new = Codec::from_stream_type(e.stream_type);
            let Some(s) = self.stream(e.stream_id) else {
                continue;
            };
            if s.psm_codec == Some(new) {
                continue;
            }
            let had = s.psm_codec.is_some();
            if had && s.open {
                self.finalize(e.stream_id, out);
            }
            if let Some(s) = self.stream(e.stream_id) {
                s.psm_codec = Some(new);
                if new.is_audio() {
                    // Announce audio the PSM lists before its first frame arrives, so that a
                    // consumer setting up outputs on the first video frame knows of it.
                    out.events.push_back(DemuxEvent::StreamConfig(StreamConfig {
                        stream_id: e.stream_id,
                        codec: Some(new),
                        ..StreamConfig::default()
                    }));
                }
            }
        }
    }

    /// Ends the open video frames of every stream but `except` that got no PES since the last
    /// pack header: GB/T 28181 sends one frame per pack (Annex C), so the frame is whole once
    /// the next pack has begun. Called for every element that follows a pack header.
    pub fn close_pending(&mut self, epoch: u64, except: Option<u8>, out: &mut Out) {
        for i in 32..self.slots.len() {
            let sid = 0xC0 + i as u8;
            let due = self.slots[i].as_ref().is_some_and(|s| {
                s.open && !s.spans_packs && s.last_epoch != epoch && Some(sid) != except
            });
            if due {
                let damaged = self.slots[i].as_ref().is_some_and(|s| s.damaged);
                self.finalize(sid, out);
                if let Some(s) = self.slots[i].as_deref_mut() {
                    s.closed_by_pack = !damaged;
                }
            }
        }
    }

    /// A PES of stream `sid` begins. A video PES starts a new frame when it carries a PTS
    /// other than the open frame's, or when it is the first after a pack header and begins
    /// with a start code (one frame per pack, GB/T 28181 Annex C). A PES without PTS continues
    /// the open frame (frames over 64 KiB span several PES; only the first carries a PTS —
    /// PROTOCOL-NOTES §9). If such a PES comes right after a pack header and does not begin
    /// with a start code, the muxer splits frames across packs (ffmpeg `-f vob`, GStreamer):
    /// from then on only PTS end frames of that stream.
    ///
    /// A continuation (no PTS, not at a start code) is only believed after a full PES of its
    /// stream: a muxer splits a frame because it did not fit, so every PES of a frame but the
    /// last is as long as the muxer makes them. One that follows a short PES belongs to a
    /// frame whose start was lost (a cut file, a source without sequence numbers): it, and
    /// the rest of that frame, are dropped and counted (`DemuxStats::lost_frame_starts`),
    /// never glued to the frame before; the next frame starts clean.
    #[allow(clippy::too_many_arguments)]
    pub fn pes_start(
        &mut self,
        sid: u8,
        h: &PesHeader,
        head: &[u8],
        epoch: u64,
        pack_step: Option<u64>,
        out: &mut Out,
    ) {
        self.close_pending(epoch, Some(sid), out);
        let Some(s) = self.stream(sid) else {
            return;
        };
        let video = s.is_video();
        let sc = starts_with_start_code(head);
        let continuation = video && h.pts.is_none() && !sc;
        let believed = continuation
            && match s.last_pes {
                LastPes::None => false,
                LastPes::Unbounded => true,
                LastPes::Bounded(n) => match s.split {
                    Some(split) => n.is_full(split),
                    None => {
                        n.payload >= FIRST_SPLIT
                            || (n.payload >= MIN_SPLIT
                                && epoch != s.last_epoch
                                && pack_step.is_some_and(|d| d < CLOSE_PACKS))
                    }
                },
            };
        if believed && let LastPes::Bounded(n) = s.last_pes {
            s.split = Some(s.split.map_or(n, |x| x.max(n)));
        }
        let orphan = continuation && !believed;
        let crossed = s.open && epoch != s.last_epoch && !s.spans_packs;
        let new_frame = if !video || !s.open || orphan {
            true
        } else {
            match h.pts {
                // The same PTS after a pack header: the frame goes on across packs
                // (GStreamer repeats the PTS on every PES of a frame).
                Some(p) if s.pts == Some(p) => {
                    s.spans_packs |= crossed;
                    false
                }
                Some(_) => true,
                None if crossed && !sc => {
                    s.spans_packs = true;
                    false
                }
                None => crossed,
            }
        };
        if new_frame {
            if s.open {
                self.finalize(sid, out);
            }
            let Some(s) = self.stream(sid) else {
                return;
            };
            if continuation && s.closed_by_pack && !orphan {
                // The frame just ended by the pack header goes on here: it was cut in two.
                s.spans_packs = true;
            }
            s.open = true;
            s.pts = h.pts;
            s.dts = h.dts;
            // A continuation with no frame open is the tail of a frame we never saw (or
            // lost); so is one after a short PES.
            s.damaged = continuation && (orphan || !s.closed_by_pack);
            if s.damaged && s.codec.is_some() {
                out.stats.lost_frame_starts += 1;
            }
            s.closed_by_pack = false;
            s.accum.clear();
        }
        if let Some(s) = self.stream(sid) {
            s.last_epoch = epoch;
            s.last_pes = match h.payload_len() {
                None => LastPes::Unbounded,
                Some(payload) => LastPes::Bounded(PesSize {
                    payload,
                    packet: usize::from(h.packet_length),
                }),
            };
        }
    }

    /// Payload bytes of stream `sid`.
    pub fn append(&mut self, sid: u8, seg: Seg, out: &mut Out) {
        let max = self.cfg.max_frame_size;
        let Some(s) = self.stream(sid) else {
            return;
        };
        if !s.open || s.damaged {
            return;
        }
        if s.accum.len() + seg.bytes().len() > max {
            s.accum.clear();
            s.damaged = true;
            out.quirk(Quirk::FrameTooLarge);
            return;
        }
        s.accum.push(seg);
    }

    /// The PES of `sid` ended: an audio PES is one access unit.
    pub fn pes_end(&mut self, sid: u8, out: &mut Out) {
        if (0xC0..=0xDF).contains(&sid) {
            self.finalize(sid, out);
        }
    }

    /// The frame of `sid` lost data.
    pub fn damage(&mut self, sid: u8, _out: &mut Out) {
        if let Some(s) = self.stream(sid)
            && s.open
        {
            s.damaged = true;
            s.accum.clear();
        }
    }

    /// Data was lost somewhere: every open frame is damaged. Frames stay open (and damaged)
    /// so that the rest of them, arriving after the resync, is dropped too.
    pub fn damage_all(&mut self, _out: &mut Out) {
        for s in self.slots.iter_mut().flatten() {
            if s.open {
                s.damaged = true;
                s.accum.clear();
            }
        }
    }

    /// End of input: hand on every open frame that is whole.
    pub fn flush(&mut self, out: &mut Out) {
        for i in 0..self.slots.len() {
            if self.slots[i].as_ref().is_some_and(|s| s.open) {
                self.finalize(0xC0 + i as u8, out);
            }
        }
    }

    /// Closes the open frame of `sid` and hands it on unless damaged.
    fn finalize(&mut self, sid: u8, out: &mut Out) {
        let psm_seen = self.psm_seen;
        let Some(i) = slot_index(sid) else { return };
        let Some(s) = self.slots[i].as_deref_mut() else {
            return;
        };
        if !s.open {
            return;
        }
        s.open = false;
        if s.damaged {
            s.damaged = false;
            s.accum.clear();
            out.stats.dropped_frames += 1;
            if s.is_video() {
                out.stats.dropped_video_frames += 1;
            }
            return;
        }
        if s.accum.is_empty() {
            return;
        }
        let data = s.accum.finish(&mut self.arena);
        if s.psm_codec.is_none() {
            out.quirk(if psm_seen {
                Quirk::StreamNotInPsm
            } else {
                Quirk::NoPsm
            });
        }
        if s.is_video() {
            finalize_video(s, data, &self.cfg, &mut self.copy_buf, out);
        } else {
            finalize_audio(s, data, &self.cfg, out);
        }
    }
}

/// Sets the stream's codec, reporting a change and resetting what depends on the codec.
fn set_codec(s: &mut Stream, codec: Codec, out: &mut Out) {
    if s.codec != Some(codec) {
        if s.codec.is_some() {
            out.quirk(Quirk::CodecChanged);
        }
        s.codec = Some(codec);
        s.announced = false;
        s.params = ParameterSetCache::default();
        s.audio = None;
    }
}

fn finalize_video(
    s: &mut Stream,
    data: Bytes,
    cfg: &DemuxConfig,
    buf: &mut BytesMut,
    out: &mut Out,
) {
    let codec = match s.psm_codec {
        Some(c @ (Codec::H264 | Codec::H265)) => c,
        Some(c) if !matches!(c, Codec::Unknown(_)) => c,
        _ => {
            let head = &data[..data.len().min(4096)];
            codec::sniff_video_codec(head)
                .or(s.codec)
                .unwrap_or(Codec::Unknown(0))
        }
    };
    set_codec(s, codec, out);
    let mut data = data;
    let mut keyframe = false;
    if matches!(codec, Codec::H264 | Codec::H265) {
        let scan = codec::scan_access_unit(codec, &data);
        keyframe = scan.keyframe;
        if s.params.update(&data, &scan) {
            s.announced = false;
        }
        if keyframe && !ParameterSetCache::scan_has_all(codec, &scan) {
            if s.params.is_complete(codec) {
                if cfg.prepend_parameter_sets {
                    data = s.params.prepend_to(&data, &scan, buf);
                    out.stats.parameter_sets_prepended += 1;
                }
            } else {
                out.quirk(Quirk::KeyframeWithoutParameterSets);
            }
        }
    }
    if !s.announced {
        s.announced = true;
        out.events
            .push_back(DemuxEvent::StreamConfig(video_config(s, codec)));
    }
    out.stats.video_frames += 1;
    out.stats.keyframes += u64::from(keyframe);
    out.events.push_back(DemuxEvent::AccessUnit(AccessUnit {
        stream_id: s.sid,
        codec,
        pts: s.pts,
        dts: s.dts.filter(|&d| Some(d) != s.pts),
        keyframe,
        data,
    }));
}

fn video_config(s: &Stream, codec: Codec) -> StreamConfig {
    let mut c = StreamConfig {
        stream_id: s.sid,
        codec: Some(codec),
        vps: s.params.vps.clone(),
        sps: s.params.sps.clone(),
        pps: s.params.pps.clone(),
        ..StreamConfig::default()
    };
    if let Some(sps) = &s.params.sps {
        match codec {
            Codec::H264 => {
                if let Ok(p) = h264::Sps::parse(sps) {
                    c.width = Some(p.width);
                    c.height = Some(p.height);
                    c.profile = Some(p.profile_idc);
                    c.level = Some(p.level_idc);
                    c.frame_rate = p.frame_rate;
                    c.codec_string = Some(p.codec_string());
                }
            }
            Codec::H265 => {
                if let Ok(p) = h265::Sps::parse(sps) {
                    c.width = Some(p.width);
                    c.height = Some(p.height);
                    c.profile = Some(p.profile_idc);
                    c.level = Some(p.level_idc);
                    c.frame_rate = p.frame_rate;
                }
            }
            _ => {}
        }
    }
    c
}

/// ADTS at the start of a payload, strictly enough that G.711 bytes do not pass: a valid
/// header whose frame fits and is followed by the end or another header.
fn looks_like_adts(data: &[u8]) -> bool {
    match aac::AdtsHeader::parse(data) {
        Ok(h) => {
            h.frame_length == data.len()
                || (h.frame_length < data.len()
                    && aac::AdtsHeader::parse(&data[h.frame_length..]).is_ok())
        }
        Err(_) => false,
    }
}

/// MPEG-1/2 audio frame sync (ISO/IEC 11172-3 §2.4.1.3): 11 bits set and a non-zero layer.
fn looks_like_mpeg_audio(data: &[u8]) -> bool {
    data.len() >= 4 && data[0] == 0xff && data[1] & 0xe0 == 0xe0 && data[1] & 0x06 != 0
}

fn finalize_audio(s: &mut Stream, data: Bytes, cfg: &DemuxConfig, out: &mut Out) {
    let codec = match s.psm_codec {
        Some(Codec::G711A | Codec::G711U) if looks_like_adts(&data) => {
            out.quirk(Quirk::AacInG711Stream);
            Codec::Aac
        }
        Some(c) if !matches!(c, Codec::Unknown(_)) => c,
        _ if looks_like_adts(&data) => Codec::Aac,
        _ if looks_like_mpeg_audio(&data) => Codec::Unknown(0x03),
        _ => s.psm_codec.unwrap_or(Codec::G711A),
    };
    set_codec(s, codec, out);
    let (rate, channels, object) = match codec {
        Codec::Aac => match aac::AdtsHeader::parse(&data) {
            Ok(h) => (h.sample_rate, h.channels, h.object_type),
            Err(_) => (0, 0, 0),
        },
        Codec::G711A | Codec::G711U => (8000, 1, 0),
        _ => (0, 0, 0),
    };
    if s.audio != Some((rate, channels, object)) {
        s.audio = Some((rate, channels, object));
        s.announced = false;
    }
    if !s.announced {
        s.announced = true;
        out.events.push_back(DemuxEvent::StreamConfig(StreamConfig {
            stream_id: s.sid,
            codec: Some(codec),
            sample_rate: (rate > 0).then_some(rate),
            channels: (rate > 0).then_some(channels),
            profile: (object > 0).then_some(object),
            ..StreamConfig::default()
        }));
    }
    let dts = s.dts.filter(|&d| Some(d) != s.pts);
    if codec == Codec::Aac && cfg.split_adts && rate > 0 {
        // Several whole ADTS frames in one PES: one access unit each, time stamps advanced by
        // 1024 samples a raw data block. Counted first so that nothing is allocated.
        let mut frames = aac::AdtsFrames::new(&data);
        let count = frames.by_ref().count();
        if count > 1 && frames.rest().is_empty() {
            let mut at = 0;
            let mut elapsed = 0u64;
            for (h, f) in aac::AdtsFrames::new(&data) {
                let shift = elapsed * 90_000 / u64::from(rate);
                out.stats.audio_frames += 1;
                out.events.push_back(DemuxEvent::AccessUnit(AccessUnit {
                    stream_id: s.sid,
                    codec,
                    pts: s.pts.map(|p| (p + shift) & ((1 << 33) - 1)),
                    dts: dts.map(|d| (d + shift) & ((1 << 33) - 1)),
                    keyframe: true,
                    data: data.slice(at..at + f.len()),
                }));
                at += f.len();
                elapsed += u64::from(h.samples());
            }
            return;
        }
    }
    out.stats.audio_frames += 1;
    out.events.push_back(DemuxEvent::AccessUnit(AccessUnit {
        stream_id: s.sid,
        codec,
        pts: s.pts,
        dts,
        keyframe: true,
        data,
    }));
}
