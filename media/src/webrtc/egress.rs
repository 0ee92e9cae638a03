//! [`Egress`]: many str0m viewers behind one UDP socket, fed once per frame.

use super::batch::TransmitBatch;
use super::gop::{CachedBody, CachedFrame, GopCache, GopLimits};
use super::offer::{Choice, choose, inspect_offer, offered_names};
use super::packetizer::{RtpPayload, packetize_h264, packetize_h265};
use super::{
    EgressConfig, EgressError, EgressEvent, Packetization, StreamId, Tracks, ViewerId,
    ViewerLocation, stun,
};
use crate::{AccessUnit, Codec};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use str0m::change::SdpOffer;
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::format::{Codec as RtcCodec, FormatParams};
use str0m::media::{Frequency, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{Extension, ExtensionMap, RtpWrite, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

/// Remote addresses remembered per viewer (ICE may try a few before settling).
const MAX_ADDRS: usize = 8;

/// Counters since the egress was created, plus the current viewer counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EgressStats {
    /// Viewers added and not yet removed.
    pub viewers: usize,
    /// Of those, viewers with ICE and DTLS up.
    pub connected: usize,
    /// Access units packetized (once per stream, whatever the number of viewers).
    pub frames_packetized: u64,
    /// RTP packets written to viewers (payloads × viewers).
    pub packets_written: u64,
    /// Datagrams handed to the shell.
    pub datagrams_out: u64,
    /// Datagrams received that belong to no viewer.
    pub unrouted: u64,
}

/// One outgoing track of a viewer: its payload type, SSRC and RTP sequence numbers.
#[derive(Debug)]
struct Track {
    mid: Mid,
    pt: Pt,
    ssrc: Ssrc,
    /// Next extended sequence number (RFC 3550 §5.1; the ROC stays 0 at the start, as SRTP
    /// needs, RFC 3711 §3.3.1).
    seq: u64,
    /// No packet sent yet (the first audio packet carries the marker, RFC 3551 §4.1).
    first: bool,
}

struct Viewer {
    rtc: Rtc,
    stream: StreamId,
    video: Option<Track>,
    audio: Option<Track>,
    created: Instant,
    connected: bool,
    /// A key frame went out: later frames decode.
    keyframe_sent: bool,
    timeout: Instant,
    ufrag: Box<[u8]>,
    addrs: Vec<SocketAddr>,
    dead: bool,
}

#[derive(Debug)]
struct StreamState {
    video: Option<Codec>,
    viewers: Vec<ViewerId>,
    cache: GopCache,
    /// Opened by [`Egress::open_stream`]: kept without viewers, until `end_stream`.
    open: bool,
}

impl StreamState {
    fn new(video: Option<Codec>, limits: GopLimits) -> Self {
        StreamState {
            video,
            viewers: Vec::new(),
            cache: GopCache::new(limits),
            open: false,
        }
    }
}

/// What the viewers' str0m instances produced, for the shell to collect.
#[derive(Debug)]
struct Outbox {
    pending: TransmitBatch,
    events: VecDeque<EgressEvent>,
    /// Viewers that connected since the last [`Egress::settle`].
    starting: Vec<ViewerId>,
    /// Viewers found dead or closed since the last [`Egress::settle`] (may repeat).
    dying: Vec<ViewerId>,
    /// No viewer's timer is due before this (it may be early: a timer that moved later is
    /// found when it comes, and the exact time is computed again then).
    earliest: Option<Instant>,
}

impl Outbox {
    fn wake_at(&mut self, t: Instant) {
        self.earliest = Some(self.earliest.map_or(t, |e| e.min(t)));
    }
}

/// A video frame to write: its RTP time and its payloads or access unit.
#[derive(Debug, Clone, Copy)]
struct Frame<'a> {
    ts: u32,
    keyframe: bool,
    body: FrameBody<'a>,
}

#[derive(Debug, Clone, Copy)]
enum FrameBody<'a> {
    Packets(&'a [RtpPayload]),
    Unit(&'a AccessUnit),
}

/// WebRTC egress for many viewers on one UDP socket. See the [module docs](super).
pub struct Egress {
    config: EgressConfig,
    crypto: Arc<CryptoProvider>,
    cert: Option<DtlsCert>,
    viewers: HashMap<ViewerId, Viewer>,
    streams: HashMap<StreamId, StreamState>,
    by_addr: HashMap<SocketAddr, ViewerId>,
    by_ufrag: HashMap<Box<[u8]>, ViewerId>,
    out: Outbox,
    payloads: Vec<RtpPayload>,
    next_id: u64,
    epoch: Option<Instant>,
    stats: EgressStats,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Egress {
    /// A new egress. One DTLS certificate is made here and shared by every viewer (the
    /// fingerprint in each answer is the same), which keeps `add_viewer` cheap.
    pub fn new(config: EgressConfig) -> Self {
        let crypto = Arc::new(str0m::crypto::from_feature_flags());
        let cert = crypto.dtls_provider.generate_certificate();
        let max_gso_segments = config.max_gso_segments;
        Egress {
            config,
            crypto,
            cert,
            viewers: HashMap::new(),
            streams: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            out: Outbox {
                pending: TransmitBatch::new(max_gso_segments),
                events: VecDeque::new(),
                starting: Vec::new(),
                dying: Vec::new(),
                earliest: None,
            },
            payloads: Vec::new(),
            next_id: 1,
            epoch: None,
            stats: EgressStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EgressConfig {
        &self.config
    }

    /// Adds a viewer from a browser's SDP offer (the body of a WHEP POST) and returns its id
    /// and the SDP answer. The answer names one payload type per track, taken from the offer:
    /// H.264 with `packetization-mode=1` and the offered `profile-level-id` closest to a
    /// camera's (High, then Main, then Constrained Baseline…), H.265 only if offered, PCMA or
    /// PCMU. A video stream the offer cannot receive is an [`EgressError::NoCommonCodec`];
    /// audio the offer cannot receive is left out of the answer. The answer's candidates
    /// depend on where the browser runs (`location`).
    pub fn add_viewer(
        &mut self,
        now: Instant,
        offer_sdp: &str,
        tracks: Tracks,
        location: ViewerLocation,
    ) -> Result<(ViewerId, String), EgressError> {
        if tracks.video.is_none() && tracks.audio.is_none() {
            return Err(EgressError::NoTracks);
        }
        if let Some(codec) = tracks.video
            && !matches!(codec, Codec::H264 | Codec::H265)
        {
            return Err(EgressError::UnsupportedTrack { codec });
        }
        if let Some(codec) = tracks.audio
            && !matches!(codec, Codec::G711A | Codec::G711U)
        {
            return Err(EgressError::UnsupportedTrack { codec });
        }
        let media = inspect_offer(offer_sdp);
        let pick = |kind: &'static str, codec: Option<Codec>| match codec {
            None => Ok(None),
            Some(c) => choose(&media, kind, c)
                .map(|choice| Some((c, choice)))
                .ok_or_else(|| EgressError::NoCommonCodec {
                    kind,
                    stream: c,
                    offered: offered_names(&media, kind),
                }),
        };
        let video = pick("video", tracks.video)?;
        let audio = match pick("audio", tracks.audio) {
            Ok(a) => a,
            Err(e) if video.is_some() => {
                tracing::debug!("viewer gets video only: {e}");
                None
            }
            Err(e) => return Err(e),
        };
        let offer = SdpOffer::from_sdp_string(offer_sdp).map_err(EgressError::BadOffer)?;
        let this_host: &[SocketAddr] = match location {
            ViewerLocation::Elsewhere => &[],
            ViewerLocation::ThisHost => &self.config.this_host_candidates,
        };
        let mut candidates = Vec::new();
        for &addr in std::iter::once(&self.config.announce)
            .chain(&self.config.more_candidates)
            .chain(this_host)
        {
            let c = Candidate::host(addr, "udp")
                .map_err(|source| EgressError::Candidate { addr, source })?;
            candidates.push(c);
        }

        let mut rtc = self.rtc_config(video.as_ref(), audio.as_ref()).build(now);
        for c in candidates {
            rtc.add_local_candidate(c);
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(EgressError::Refused)?;

        let id = ViewerId(self.next_id);
        self.next_id += 1;
        let ufrag: Box<[u8]> = rtc
            .direct_api()
            .local_ice_credentials()
            .ufrag
            .into_bytes()
            .into();
        let shared = self.config.packetization == Packetization::Shared;
        let mut track = |choice: Option<(Codec, Choice)>| {
            let (_, choice) = choice?;
            let mid = Mid::from(choice.mid.as_str());
            let ssrc = if shared {
                rtc.direct_api().stream_tx_by_mid(mid, None)?.ssrc()
            } else {
                Ssrc::from(0)
            };
            Some(Track {
                mid,
                pt: Pt::from(choice.pt),
                ssrc,
                // A random start (RFC 3550 §5.1) below 2^15, so that the ROC stays 0 for a
                // while whatever the receiver assumes.
                seq: u64::from(*ssrc) & 0x7fff,
                first: true,
            })
        };
        let video_track = track(video);
        let audio_track = track(audio);
        let mut viewer = Viewer {
            rtc,
            stream: tracks.stream,
            video: video_track,
            audio: audio_track,
            created: now,
            connected: false,
            keyframe_sent: false,
            timeout: now,
            ufrag: ufrag.clone(),
            addrs: Vec::new(),
            dead: false,
        };
        drive(id, &mut viewer, now, &mut self.out);
        self.out.wake_at(now + self.config.connect_timeout);
        self.by_ufrag.insert(ufrag, id);
        let limits = self.config.gop_cache;
        let stream = self
            .streams
            .entry(tracks.stream)
            .or_insert_with(|| StreamState::new(tracks.video, limits));
        if stream.video != tracks.video {
            stream.video = tracks.video;
            stream.cache.clear();
        }
        stream.viewers.push(id);
        self.viewers.insert(id, viewer);
        self.settle(now);
        Ok((id, answer.to_sdp_string()))
    }

    /// str0m configuration for one viewer: ICE-lite, only the chosen payload types, the MID
    /// header extension only (no transport-wide CC: the camera's bitrate is not ours to adapt,
    /// and its feedback would cost a packet per few packets sent).
    fn rtc_config(
        &self,
        video: Option<&(Codec, Choice)>,
        audio: Option<&(Codec, Choice)>,
    ) -> RtcConfig {
        let mut exts = ExtensionMap::empty();
        exts.set(4, Extension::RtpMid);
        let mut config = RtcConfig::new()
            .set_ice_lite(true)
            .set_crypto_provider(self.crypto.clone())
            .set_rtp_mode(self.config.packetization == Packetization::Shared)
            .set_extension_map(exts)
            .set_send_buffer_video(self.config.nack_buffer.max(1))
            .clear_codecs();
        if let Some(cert) = &self.cert {
            config = config.set_dtls_cert(cert.clone());
        }
        let nack = self.config.nack_buffer > 0;
        let codecs = config.codec_config();
        for (codec, choice) in video.into_iter().chain(audio) {
            let pt = Pt::from(choice.pt);
            let rtx = choice.rtx.filter(|_| nack).map(Pt::from);
            match codec {
                Codec::H264 => {
                    codecs.add_h264(pt, rtx, true, choice.profile_level_id.unwrap_or(0x42e01f))
                }
                Codec::H265 => {
                    let (profile, tier, level) = choice.h265_ptl.unwrap_or((1, 0, 93));
                    codecs.add_h265(pt, rtx, profile, tier, level)
                }
                Codec::G711U => codecs.add_config(
                    pt,
                    None,
                    RtcCodec::PCMU,
                    Frequency::EIGHT_KHZ,
                    None,
                    FormatParams::default(),
                ),
                _ => codecs.add_config(
                    pt,
                    None,
                    RtcCodec::PCMA,
                    Frequency::EIGHT_KHZ,
                    None,
                    FormatParams::default(),
                ),
            }
        }
        for p in codecs.iter_mut() {
            p.set_fb_transport_cc(false);
            p.set_fb_remb(false);
        }
        config
    }

    /// Removes a viewer (WHEP `DELETE`): sends RTCP BYE and DTLS close_notify, then forgets
    /// it. No event follows. Returns false for an unknown id.
    pub fn remove_viewer(&mut self, now: Instant, viewer: ViewerId) -> bool {
        let Some(v) = self.viewers.get_mut(&viewer) else {
            return false;
        };
        if v.rtc.close().is_ok() {
            let events = self.out.events.len();
            drive(viewer, v, now, &mut self.out);
            self.out.events.truncate(events);
        }
        v.dead = true;
        self.out.dying.push(viewer);
        self.settle(now);
        true
    }

    /// Feeds a datagram received on the socket. Media, RTCP and DTLS are routed with one hash
    /// lookup by source address; a STUN message by the local ICE username fragment in its
    /// USERNAME (RFC 8445 §7.2.2), after which its source address belongs to that viewer.
    /// Returns false when no viewer takes it.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        datagram: &[u8],
    ) -> bool {
        // STUN (RFC 7983: first byte 0..=3) names its viewer; it is rare (connectivity and
        // consent checks), so it is looked up by username fragment even from a known address,
        // which also moves an address a new session reuses. Everything else: by address.
        let by_stun = match datagram.first() {
            Some(0..=3) => stun::local_ufrag(datagram).and_then(|u| self.by_ufrag.get(u).copied()),
            _ => None,
        };
        let known = self.by_addr.get(&source).copied();
        let Some(id) = by_stun.or(known) else {
            self.stats.unrouted += 1;
            return false;
        };
        let Some(v) = self.viewers.get_mut(&id) else {
            self.stats.unrouted += 1;
            return false;
        };
        let Ok(receive) = Receive::new(Protocol::Udp, source, destination, datagram) else {
            self.stats.unrouted += 1;
            return false;
        };
        let input = Input::Receive(now, receive);
        if known != Some(id) {
            if !v.rtc.accepts(&input) {
                self.stats.unrouted += 1;
                return false;
            }
            if v.addrs.len() == MAX_ADDRS {
                let old = v.addrs.remove(0);
                if self.by_addr.get(&old) == Some(&id) {
                    self.by_addr.remove(&old);
                }
            }
            v.addrs.push(source);
            self.by_addr.insert(source, id);
        }
        if let Err(e) = v.rtc.handle_input(input) {
            tracing::debug!(%id, "input refused: {e}");
        }
        drive(id, v, now, &mut self.out);
        self.settle(now);
        true
    }

    /// Advances time: str0m timers (RTCP reports, ICE consent, DTLS retransmits, NACK
    /// answers) of every viewer due by `now`, and reaping of viewers that never connected.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (id, v) in self.viewers.iter_mut() {
            if !v.connected && now >= v.created + self.config.connect_timeout {
                tracing::debug!(%id, "reaped: not connected after {:?}", self.config.connect_timeout);
                v.rtc.disconnect();
                v.dead = true;
                self.out.dying.push(*id);
                self.out.events.push_back(EgressEvent::Reaped(*id));
                continue;
            }
            if v.timeout <= now {
                if let Err(e) = v.rtc.handle_input(Input::Timeout(now)) {
                    tracing::debug!(%id, "timeout refused: {e}");
                }
                drive(*id, v, now, &mut self.out);
            }
        }
        self.settle(now);
        let connect_timeout = self.config.connect_timeout;
        self.out.earliest = self
            .viewers
            .values()
            .map(|v| {
                if v.connected {
                    v.timeout
                } else {
                    v.timeout.min(v.created + connect_timeout)
                }
            })
            .min();
    }

    /// When [`Self::handle_timeout`] should be called next; `None` without viewers. Constant
    /// time: the shell asks after every input.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.viewers.is_empty() {
            return None;
        }
        self.out.earliest
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<EgressEvent> {
        self.out.events.pop_front()
    }

    /// Moves the datagrams to send into `out` (appending). With an empty `out` the buffers
    /// are swapped, not copied; keep reusing one batch and [`TransmitBatch::clear`] it after
    /// sending.
    pub fn drain_transmits(&mut self, out: &mut TransmitBatch) {
        let pending = &mut self.out.pending;
        self.stats.datagrams_out += pending.datagram_count() as u64;
        let max = pending.max_segments();
        pending.move_into(out);
        pending.set_max_segments(max);
    }

    /// Writes a video access unit (Annex B) to every connected viewer of `stream`. It is
    /// packetized once; a viewer that has not yet had a key frame gets nothing until one
    /// comes. The frame is also kept in the stream's key-frame cache
    /// ([`EgressConfig::gop_cache`]) for viewers that connect later. A stream that has neither
    /// viewers nor been opened ([`Self::open_stream`]) is unknown: nothing is written or kept.
    /// Returns the number of viewers written to.
    pub fn write_video(&mut self, now: Instant, stream: StreamId, au: &AccessUnit) -> usize {
        if !matches!(au.codec, Codec::H264 | Codec::H265) || au.data.is_empty() {
            return 0;
        }
        let ts = self.rtp_time(now, au.pts, 90_000);
        let shared = self.config.packetization == Packetization::Shared;
        let nackable = self.config.nack_buffer > 0;
        let Egress {
            streams,
            viewers,
            payloads,
            out,
            stats,
            ..
        } = self;
        let Some(state) = streams.get_mut(&stream) else {
            return 0;
        };
        match state.video {
            None => state.video = Some(au.codec),
            Some(c) if c != au.codec => return 0,
            Some(_) => {}
        }
        let wanted = |v: &Viewer| v.connected && !v.dead && (v.keyframe_sent || au.keyframe);
        let any = state
            .viewers
            .iter()
            .any(|id| viewers.get(id).is_some_and(wanted));
        if !any && !state.cache.enabled() {
            return 0;
        }
        payloads.clear();
        if shared {
            match au.codec {
                Codec::H265 => packetize_h265(&au.data, self.config.max_payload, payloads),
                _ => packetize_h264(&au.data, self.config.max_payload, payloads),
            }
            if payloads.is_empty() {
                return 0;
            }
            stats.frames_packetized += 1;
        }
        let frame = Frame {
            ts,
            keyframe: au.keyframe,
            body: if shared {
                FrameBody::Packets(payloads)
            } else {
                FrameBody::Unit(au)
            },
        };
        let mut written = 0;
        for id in &state.viewers {
            let Some(v) = viewers.get_mut(id).filter(|v| wanted(v)) else {
                continue;
            };
            if write_frame(*id, v, frame, now, nackable, out) {
                written += 1;
                stats.packets_written += payloads.len() as u64;
            }
        }
        if state.cache.enabled() {
            let body = if shared {
                CachedBody::Packets(payloads.as_slice().into())
            } else {
                CachedBody::Unit(au.clone())
            };
            state.cache.push(CachedFrame {
                ts,
                keyframe: au.keyframe,
                body,
            });
        }
        self.settle(now);
        written
    }

    /// Opens a stream before its first viewer: its frames are cached from now on, and it stays
    /// (with its cache) when its last viewer leaves, until [`Self::end_stream`]. A stream that
    /// is not opened exists only while it has viewers. Opening an open stream does nothing.
    pub fn open_stream(&mut self, stream: StreamId, video: Option<Codec>) {
        let limits = self.config.gop_cache;
        self.streams
            .entry(stream)
            .or_insert_with(|| StreamState::new(video, limits))
            .open = true;
    }

    /// Forgets a stream: its viewers are removed (as by [`Self::remove_viewer`], with no
    /// event) and its key-frame cache is dropped. Returns false for an unknown stream.
    pub fn end_stream(&mut self, now: Instant, stream: StreamId) -> bool {
        let Some(state) = self.streams.remove(&stream) else {
            return false;
        };
        for id in &state.viewers {
            self.remove_viewer(now, *id);
        }
        true
    }

    /// Starts the viewers that just connected (the cached GOP goes out to them, then the
    /// [`EgressEvent::Connected`] event) and forgets the dead ones.
    fn settle(&mut self, now: Instant) {
        let nackable = self.config.nack_buffer > 0;
        let Egress {
            streams,
            viewers,
            out,
            stats,
            ..
        } = self;
        while let Some(id) = out.starting.pop() {
            let Some(v) = viewers.get_mut(&id).filter(|v| !v.dead) else {
                continue;
            };
            let cached = streams.get(&v.stream).map_or(&[][..], |s| s.cache.frames());
            for f in cached {
                let frame = Frame {
                    ts: f.ts,
                    keyframe: f.keyframe,
                    body: match &f.body {
                        CachedBody::Packets(p) => FrameBody::Packets(p),
                        CachedBody::Unit(au) => FrameBody::Unit(au),
                    },
                };
                if !write_frame(id, v, frame, now, nackable, out) {
                    break;
                }
                if let FrameBody::Packets(p) = frame.body {
                    stats.packets_written += p.len() as u64;
                }
            }
            out.events.push_back(EgressEvent::Connected {
                viewer: id,
                started: v.keyframe_sent,
            });
        }
        self.reap_dead();
    }

    /// Writes a G.711 frame (A-law or µ-law bytes, one per sample at 8 kHz) to every connected
    /// viewer of `stream` that receives audio, unchanged as PCMA/PCMU (RFC 3551 §4.5.14). The
    /// 90 kHz PTS becomes the 8 kHz RTP clock. Returns the number of viewers written to.
    pub fn write_audio(&mut self, now: Instant, stream: StreamId, au: &AccessUnit) -> usize {
        if !matches!(au.codec, Codec::G711A | Codec::G711U) || au.data.is_empty() {
            return 0;
        }
        let ts = self.rtp_time(now, au.pts, 8000);
        let Some(state) = self.streams.get(&stream) else {
            return 0;
        };
        let shared = self.config.packetization == Packetization::Shared;
        let max = self.config.max_payload.max(super::packetizer::MIN_PAYLOAD);
        self.payloads.clear();
        self.payloads
            .extend(au.data.chunks(max).map(|c| RtpPayload {
                data: Arc::from(c),
                marker: false,
            }));
        let mut written = 0;
        for id in &state.viewers {
            let Some(v) = self.viewers.get_mut(id) else {
                continue;
            };
            let Some(track) = v.audio.as_mut().filter(|_| v.connected && !v.dead) else {
                continue;
            };
            let sent = if shared {
                write_rtp(&mut v.rtc, track, &self.payloads, ts, now, false, true)
            } else {
                let time = MediaTime::new(u64::from(ts), Frequency::EIGHT_KHZ);
                match v.rtc.writer(track.mid) {
                    Some(w) => w.write(track.pt, now, time, &au.data[..]).is_ok(),
                    None => false,
                }
            };
            if !sent {
                continue;
            }
            written += 1;
            self.stats.packets_written += self.payloads.len() as u64;
            if let Err(e) = v.rtc.handle_input(Input::Timeout(now)) {
                tracing::debug!(%id, "timeout refused: {e}");
            }
            drive(*id, v, now, &mut self.out);
        }
        self.settle(now);
        written
    }

    /// RTP timestamp at `rate` Hz from a 90 kHz PTS (wrapping to 32 bits, RFC 3550 §5.1), or
    /// from `now` when the access unit has none.
    fn rtp_time(&mut self, now: Instant, pts: Option<u64>, rate: u64) -> u32 {
        let ticks_90k = match pts {
            Some(p) => p,
            None => {
                let epoch = *self.epoch.get_or_insert(now);
                (now.saturating_duration_since(epoch).as_micros() as u64).wrapping_mul(9) / 100
            }
        };
        (u128::from(ticks_90k) * u128::from(rate) / 90_000) as u32
    }

    /// Current counters.
    pub fn stats(&self) -> EgressStats {
        EgressStats {
            viewers: self.viewers.len(),
            connected: self.viewers.values().filter(|v| v.connected).count(),
            ..self.stats
        }
    }

    /// Viewer ids of `stream`.
    pub fn viewers_of(&self, stream: StreamId) -> &[ViewerId] {
        self.streams.get(&stream).map_or(&[], |s| &s.viewers)
    }

    /// True when the viewer exists and has ICE and DTLS up.
    pub fn is_connected(&self, viewer: ViewerId) -> bool {
        self.viewers.get(&viewer).is_some_and(|v| v.connected)
    }

    fn reap_dead(&mut self) {
        if self.out.dying.is_empty() {
            return;
        }
        let dead = std::mem::take(&mut self.out.dying);
        for &id in &dead {
            let Some(v) = self.viewers.remove(&id) else {
                continue;
            };
            for a in &v.addrs {
                if self.by_addr.get(a) == Some(&id) {
                    self.by_addr.remove(a);
                }
            }
            self.by_ufrag.remove(&v.ufrag);
            if let Some(s) = self.streams.get_mut(&v.stream) {
                s.viewers.retain(|x| *x != id);
                // An open stream stays until `end_stream`.
                if s.viewers.is_empty() && !s.open {
                    self.streams.remove(&v.stream);
                }
            }
        }
    }
}

/// Queues `payloads` on a viewer's send stream with its own sequence numbers.
fn write_rtp(
    rtc: &mut Rtc,
    track: &mut Track,
    payloads: &[RtpPayload],
    ts: u32,
    now: Instant,
    nackable: bool,
    audio: bool,
) -> bool {
    let mut api = rtc.direct_api();
    let Some(stream) = api.stream_tx(&track.ssrc) else {
        return false;
    };
    // G.711 carries one sample per byte: a frame split over packets advances the clock by
    // the bytes before each packet (RFC 3551 §4.5.14). Video packets share the frame's time.
    let mut time = ts;
    for p in payloads {
        let marker = if audio { track.first } else { p.marker };
        stream.write_rtp(
            RtpWrite::new(track.pt, track.seq.into(), time, now, p.data.clone())
                .marker(marker)
                .nackable(nackable),
        );
        if audio {
            time = time.wrapping_add(p.data.len() as u32);
        }
        track.seq += 1;
        track.first = false;
    }
    true
}

/// Writes a video frame to one viewer (which has a video track): the shared payloads with its
/// own sequence numbers, or the access unit through str0m's packetizer. Returns false when
/// str0m has no stream for it.
fn write_frame(
    id: ViewerId,
    v: &mut Viewer,
    frame: Frame<'_>,
    now: Instant,
    nackable: bool,
    out: &mut Outbox,
) -> bool {
    let Some(track) = v.video.as_mut() else {
        return false;
    };
    let sent = match frame.body {
        FrameBody::Packets(p) => write_rtp(&mut v.rtc, track, p, frame.ts, now, nackable, false),
        FrameBody::Unit(au) => {
            let time = MediaTime::new(u64::from(frame.ts), Frequency::NINETY_KHZ);
            match v.rtc.writer(track.mid) {
                Some(w) => w.write(track.pt, now, time, &au.data[..]).is_ok(),
                None => false,
            }
        }
    };
    if !sent {
        return false;
    }
    v.keyframe_sent |= frame.keyframe;
    if let Err(e) = v.rtc.handle_input(Input::Timeout(now)) {
        tracing::debug!(%id, "timeout refused: {e}");
    }
    drive(id, v, now, out);
    true
}

/// Drains a viewer's str0m output to its next timeout: transmits into the batch, events
/// into the queue (RFC 8445 consent loss and DTLS close end the viewer).
fn drive(id: ViewerId, v: &mut Viewer, now: Instant, out: &mut Outbox) {
    poll_until_timeout(id, v, now, out);
    out.wake_at(v.timeout);
    if v.dead || !v.rtc.is_alive() {
        out.dying.push(id);
    }
}

/// The loop of [`drive`].
fn poll_until_timeout(id: ViewerId, v: &mut Viewer, now: Instant, out: &mut Outbox) {
    for round in 0..3 {
        loop {
            match v.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    v.timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => out.pending.push(t.source, t.destination, &t.contents),
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        v.connected = true;
                        out.starting.push(id);
                    }
                    Event::KeyframeRequest(_) => {
                        out.events.push_back(EgressEvent::KeyframeRequest(id))
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected)
                    | Event::Closed
                        if !v.dead =>
                    {
                        v.dead = true;
                        out.events.push_back(EgressEvent::Disconnected(id));
                    }
                    _ => {}
                },
                Err(e) => {
                    tracing::debug!(%id, "viewer failed: {e}");
                    v.rtc.disconnect();
                    if !v.dead {
                        v.dead = true;
                        out.events.push_back(EgressEvent::Disconnected(id));
                    }
                    return;
                }
            }
        }
        if v.timeout > now || round == 2 || !v.rtc.is_alive() {
            return;
        }
        if let Err(e) = v.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(%id, "timeout refused: {e}");
            return;
        }
    }
}
