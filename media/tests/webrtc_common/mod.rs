//! An in-memory network between an `Egress` and str0m client peers (browsers stand-ins), with
//! simulated time: no sockets, no sleeping.
#![allow(dead_code)]

use bytes::Bytes;
use media::codec::{h264, h265, nal::find_start_code};
use media::webrtc::{
    Egress, EgressConfig, EgressEvent, Tracks, TransmitBatch, ViewerId, ViewerLocation,
};
use media::{AccessUnit, Codec};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaData, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

/// The egress's announce address.
pub const SERVER: &str = "127.0.0.1:8189";

/// A file of `media/tests/data` (provenance in the README there).
pub fn testdata(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/")).join(name)
}

/// Splits an Annex B elementary stream into access units: a new unit begins at an AUD,
/// SEI or parameter set after a slice, or at a slice starting a picture
/// (`first_mb_in_slice` 0 / `first_slice_segment_in_pic_flag` 1).
pub fn access_units(es: &Bytes, codec: Codec) -> Vec<AccessUnit> {
    let mut cuts = vec![0usize];
    let mut keys = vec![false];
    let mut seen_vcl = false;
    let mut pos = 0;
    while let Some((sc, len)) = find_start_code(es, pos) {
        let h = sc + len;
        let Some(&b0) = es.get(h) else { break };
        let b1 = es.get(h + 1).copied().unwrap_or(0);
        let b2 = es.get(h + 2).copied().unwrap_or(0);
        let (vcl, first, prefix, key) = if codec == Codec::H265 {
            let t = h265::nal_type(b0);
            (
                t < 32,
                b2 & 0x80 != 0,
                matches!(t, 32..=35 | 39),
                h265::is_keyframe_nal(t),
            )
        } else {
            let t = h264::nal_type(b0);
            (
                matches!(t, 1 | 5),
                b1 & 0x80 != 0,
                matches!(t, 6..=9),
                t == 5,
            )
        };
        if seen_vcl && (prefix || (vcl && first)) {
            cuts.push(sc);
            keys.push(false);
            seen_vcl = false;
        }
        if vcl {
            seen_vcl = true;
            if key {
                *keys.last_mut().unwrap() = true;
            }
        }
        pos = h;
    }
    cuts.push(es.len());
    cuts.windows(2)
        .zip(keys)
        .enumerate()
        .map(|(i, (w, keyframe))| AccessUnit {
            stream_id: 0xe0,
            codec,
            pts: Some(i as u64 * 3600),
            dts: None,
            keyframe,
            data: es.slice(w[0]..w[1]),
        })
        .collect()
}

/// NAL units of an Annex B buffer, as owned byte vectors.
pub fn nal_units(data: &[u8]) -> Vec<Vec<u8>> {
    media::codec::nal::NalUnits::new(data)
        .map(|n| n.to_vec())
        .collect()
}

/// A browser stand-in: a str0m peer in frame mode that offers recvonly media.
pub struct Client {
    pub rtc: Rtc,
    pub addr: SocketAddr,
    pub timeout: Instant,
    pub video_mid: Option<Mid>,
    pub audio_mid: Option<Mid>,
    pub viewer: Option<ViewerId>,
    pub connected: bool,
    pub media: Vec<MediaData>,
    pending: Option<SdpPendingOffer>,
}

impl Client {
    /// A client at `addr` whose offer is built from `config` (codecs) with a video and,
    /// if `audio`, an audio m-line.
    pub fn new(now: Instant, addr: SocketAddr, config: RtcConfig, audio: bool) -> (Client, String) {
        let mut rtc = config.build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut change = rtc.sdp_api();
        let video_mid = change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let audio_mid = audio
            .then(|| change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None));
        let (offer, pending) = change.apply().unwrap();
        let client = Client {
            rtc,
            addr,
            timeout: now,
            video_mid: Some(video_mid),
            audio_mid,
            viewer: None,
            connected: false,
            media: Vec::new(),
            pending: Some(pending),
        };
        (client, offer.to_sdp_string())
    }

    /// Applies the egress's answer.
    pub fn accept(&mut self, answer: &str) {
        let answer = SdpAnswer::from_sdp_string(answer).unwrap();
        let pending = self.pending.take().unwrap();
        self.rtc.sdp_api().accept_answer(pending, answer).unwrap();
    }

    /// Drains output to the next timeout; returns datagrams for the server.
    fn drain(&mut self, out: &mut Vec<(SocketAddr, SocketAddr, Vec<u8>)>) {
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(t) => {
                    self.timeout = t;
                    return;
                }
                Output::Transmit(t) => out.push((t.source, t.destination, t.contents.to_vec())),
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaData(m)) => self.media.push(m),
                Output::Event(_) => {}
            }
        }
    }

    /// Frames received on the video m-line.
    pub fn video_frames(&self) -> Vec<&MediaData> {
        self.media
            .iter()
            .filter(|m| Some(m.mid) == self.video_mid)
            .collect()
    }

    /// Frames received on the audio m-line.
    pub fn audio_frames(&self) -> Vec<&MediaData> {
        self.media
            .iter()
            .filter(|m| Some(m.mid) == self.audio_mid)
            .collect()
    }

    /// All NAL units received on the video m-line, in order.
    pub fn video_nals(&self) -> Vec<Vec<u8>> {
        self.video_frames()
            .iter()
            .flat_map(|m| nal_units(&m.data))
            .collect()
    }
}

/// A client config whose offer has what Chromium 156 offers (PROTOCOL-NOTES §10): VP8,
/// VP9, AV1, H.264 42001f/42e01f/4d001f/f4001f with packetization-mode 1 and 0, no H.265;
/// opus, G722, PCMU, PCMA.
pub fn chromium_like() -> RtcConfig {
    let mut config = Rtc::builder()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_g722(true, false)
        .enable_pcmu(true, false)
        .enable_pcma(true, false)
        .enable_vp8(true)
        .enable_vp9(true)
        .enable_av1(true);
    let h264 = config.codec_config();
    for (pt, rtx, mode1, plid) in [
        (103, 104, true, 0x42001f),
        (107, 108, false, 0x42001f),
        (109, 114, true, 0x42e01f),
        (115, 116, false, 0x42e01f),
        (117, 118, true, 0x4d001f),
        (119, 120, false, 0x4d001f),
        (121, 122, true, 0xf4001f),
        (123, 124, false, 0xf4001f),
    ] {
        h264.add_h264(pt.into(), Some(rtx.into()), mode1, plid);
    }
    config
}

/// The egress, its clients and the in-memory wire between them.
pub struct Net {
    pub egress: Egress,
    pub clients: Vec<Client>,
    pub now: Instant,
    pub events: Vec<EgressEvent>,
    batch: TransmitBatch,
    /// Datagrams from the egress dropped on purpose (destination has no client).
    pub lost: usize,
}

impl Net {
    pub fn new(mut config: EgressConfig) -> Net {
        config.announce = SERVER.parse().unwrap();
        Net {
            egress: Egress::new(config),
            clients: Vec::new(),
            now: Instant::now(),
            events: Vec::new(),
            batch: TransmitBatch::new(8),
            lost: 0,
        }
    }

    /// Adds a client whose offer comes from `config`; returns its index, or the egress's
    /// error.
    pub fn add_client(
        &mut self,
        config: RtcConfig,
        audio: bool,
        tracks: Tracks,
    ) -> Result<usize, media::webrtc::EgressError> {
        let i = self.clients.len();
        let addr: SocketAddr = format!("127.0.0.2:{}", 20000 + i).parse().unwrap();
        let (mut client, offer) = Client::new(self.now, addr, config, audio);
        let (viewer, answer) =
            self.egress
                .add_viewer(self.now, &offer, tracks, ViewerLocation::Elsewhere)?;
        client.accept(&answer);
        client.viewer = Some(viewer);
        self.clients.push(client);
        self.pump();
        Ok(i)
    }

    /// Moves datagrams both ways until nobody has anything to say.
    pub fn pump(&mut self) {
        for _ in 0..1000 {
            let mut to_server = Vec::new();
            for c in &mut self.clients {
                c.drain(&mut to_server);
            }
            self.egress.drain_transmits(&mut self.batch);
            let mut delivered = !to_server.is_empty();
            let mut replies = Vec::new();
            for d in self.batch.datagrams() {
                delivered = true;
                match self.clients.iter_mut().find(|c| c.addr == d.destination) {
                    Some(c) => {
                        let r = Receive::new(Protocol::Udp, d.source, d.destination, d.contents)
                            .unwrap();
                        c.rtc.handle_input(Input::Receive(self.now, r)).unwrap();
                        // str0m wants its output polled after each input: the SRTP keys of
                        // a handshake that just completed are installed there, before the
                        // media that follows the last DTLS flight.
                        c.drain(&mut replies);
                    }
                    None => self.lost += 1,
                }
            }
            self.batch.clear();
            for (src, dst, bytes) in to_server.into_iter().chain(replies) {
                self.egress.handle_receive(self.now, src, dst, &bytes);
            }
            while let Some(e) = self.egress.poll_event() {
                self.events.push(e);
            }
            if !delivered {
                return;
            }
        }
        panic!("the network did not settle");
    }

    /// Advances simulated time by `dt`, firing every timer due on the way (in steps of at
    /// most 10 ms).
    pub fn advance(&mut self, dt: Duration) {
        let end = self.now + dt;
        while self.now < end {
            let step = (self.now + Duration::from_millis(10)).min(end);
            self.now = step;
            if self.egress.poll_timeout().is_some_and(|t| t <= self.now) {
                self.egress.handle_timeout(self.now);
            }
            for c in &mut self.clients {
                if c.timeout <= self.now {
                    c.rtc.handle_input(Input::Timeout(self.now)).unwrap();
                }
            }
            self.pump();
        }
    }

    /// Advances time until every client is connected (at most 5 s).
    pub fn connect_all(&mut self) {
        for _ in 0..500 {
            if self.clients.iter().all(|c| c.connected) {
                return;
            }
            self.advance(Duration::from_millis(10));
        }
        panic!("clients did not connect");
    }
}
