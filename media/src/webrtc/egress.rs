//! [`Egress`]: many str0m viewers behind one UDP socket, fed once per frame.

use super::batch::TransmitBatch;
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

#[derive(Debug, Default)]
struct StreamState {
    video: Option<Codec>,
    viewers: Vec<ViewerId>,
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
    events: VecDeque<EgressEvent>,
    pending: TransmitBatch,
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
            events: VecDeque::new(),
            pending: TransmitBatch::new(max_gso_segments),
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
        drive(id, &mut viewer, now, &mut self.pending, &mut self.events);
        self.by_ufrag.insert(ufrag, id);
        let stream = self.streams.entry(tracks.stream).or_default();
        stream.video = tracks.video;
        stream.viewers.push(id);
        self.viewers.insert(id, viewer);
        self.reap_dead();
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
            let mut ignored = VecDeque::new();
            drive(viewer, v, now, &mut self.pending, &mut ignored);
        }
        v.dead = true;
        self.reap_dead();
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
        drive(id, v, now, &mut self.pending, &mut self.events);
        self.reap_dead();
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
                self.events.push_back(EgressEvent::Reaped(*id));
                continue;
            }
            if v.timeout <= now {
                if let Err(e) = v.rtc.handle_input(Input::Timeout(now)) {
                    tracing::debug!(%id, "timeout refused: {e}");
                }
                drive(*id, v, now, &mut self.pending, &mut self.events);
            }
        }
        self.reap_dead();
    }

    /// When [`Self::handle_timeout`] should be called next; `None` without viewers.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.viewers
            .values()
            .map(|v| {
                if v.connected {
                    v.timeout
                } else {
                    v.timeout.min(v.created + self.config.connect_timeout)
                }
            })
            .min()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<EgressEvent> {
        self.events.pop_front()
    }

    /// Moves the datagrams to send into `out` (appending). With an empty `out` the buffers
    /// are swapped, not copied; keep reusing one batch and [`TransmitBatch::clear`] it after
    /// sending.
    pub fn drain_transmits(&mut self, out: &mut TransmitBatch) {
        self.stats.datagrams_out += self.pending.datagram_count() as u64;
        let max = self.pending.max_segments();
        self.pending.move_into(out);
        self.pending.set_max_segments(max);
    }

    /// Writes a video access unit (Annex B) to every connected viewer of `stream`. It is
    /// packetized once; a viewer that has not yet had a key frame gets nothing until one
    /// comes. Returns the number of viewers written to.
    pub fn write_video(&mut self, now: Instant, stream: StreamId, au: &AccessUnit) -> usize {
        let Some(state) = self.streams.get(&stream) else {
            return 0;
        };
        if state.video != Some(au.codec) {
            return 0;
        }
        let ids = state.viewers.clone();
        self.write_video_to_ids(now, &ids, au)
    }

    /// Writes a video access unit to one viewer only — the cached key frame (with its
    /// parameter sets) that starts a viewer that just connected. Returns false when the
    /// viewer is unknown, not connected, or waits for a key frame and `au` is not one.
    pub fn write_video_to(&mut self, now: Instant, viewer: ViewerId, au: &AccessUnit) -> bool {
        let matches = self
            .viewers
            .get(&viewer)
            .is_some_and(|v| self.streams.get(&v.stream).and_then(|s| s.video) == Some(au.codec));
        matches && self.write_video_to_ids(now, &[viewer], au) == 1
    }

    fn write_video_to_ids(&mut self, now: Instant, ids: &[ViewerId], au: &AccessUnit) -> usize {
        let wanted = |v: &Viewer| v.connected && !v.dead && (v.keyframe_sent || au.keyframe);
        if !ids
            .iter()
            .any(|id| self.viewers.get(id).is_some_and(wanted))
        {
            return 0;
        }
        let ts = self.rtp_time(now, au.pts, 90_000);
        let shared = self.config.packetization == Packetization::Shared;
        self.payloads.clear();
        if shared {
            match au.codec {
                Codec::H265 => {
                    packetize_h265(&au.data, self.config.max_payload, &mut self.payloads)
                }
                _ => packetize_h264(&au.data, self.config.max_payload, &mut self.payloads),
            }
            if self.payloads.is_empty() {
                return 0;
            }
            self.stats.frames_packetized += 1;
        }
        let mut written = 0;
        for id in ids {
            let Some(v) = self.viewers.get_mut(id) else {
                continue;
            };
            if !wanted(v) {
                continue;
            }
            let Some(track) = v.video.as_mut() else {
                continue;
            };
            let sent = if shared {
                write_rtp(
                    &mut v.rtc,
                    track,
                    &self.payloads,
                    ts,
                    now,
                    self.config.nack_buffer > 0,
                    false,
                )
            } else {
                let time = MediaTime::new(u64::from(ts), Frequency::NINETY_KHZ);
                match v.rtc.writer(track.mid) {
                    Some(w) => w.write(track.pt, now, time, &au.data[..]).is_ok(),
                    None => false,
                }
            };
            if !sent {
                continue;
            }
            v.keyframe_sent |= au.keyframe;
            written += 1;
            self.stats.packets_written += self.payloads.len() as u64;
            if let Err(e) = v.rtc.handle_input(Input::Timeout(now)) {
                tracing::debug!(%id, "timeout refused: {e}");
            }
            drive(*id, v, now, &mut self.pending, &mut self.events);
        }
        self.reap_dead();
        written
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
            drive(*id, v, now, &mut self.pending, &mut self.events);
        }
        self.reap_dead();
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
        if !self.viewers.values().any(|v| v.dead || !v.rtc.is_alive()) {
            return;
        }
        let dead: Vec<ViewerId> = self
            .viewers
            .iter()
            .filter(|(_, v)| v.dead || !v.rtc.is_alive())
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
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
                if s.viewers.is_empty() {
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

/// Drains a viewer's str0m output to its next timeout: transmits into the batch, events
/// into the queue (RFC 8445 consent loss and DTLS close end the viewer).
fn drive(
    id: ViewerId,
    v: &mut Viewer,
    now: Instant,
    pending: &mut TransmitBatch,
    events: &mut VecDeque<EgressEvent>,
) {
    for round in 0..3 {
        loop {
            match v.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    v.timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => pending.push(t.source, t.destination, &t.contents),
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        v.connected = true;
                        events.push_back(EgressEvent::Connected(id));
                    }
                    Event::KeyframeRequest(_) => events.push_back(EgressEvent::KeyframeRequest(id)),
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected)
                    | Event::Closed
                        if !v.dead =>
                    {
                        v.dead = true;
                        events.push_back(EgressEvent::Disconnected(id));
                    }
                    _ => {}
                },
                Err(e) => {
                    tracing::debug!(%id, "viewer failed: {e}");
                    v.rtc.disconnect();
                    if !v.dead {
                        v.dead = true;
                        events.push_back(EgressEvent::Disconnected(id));
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
