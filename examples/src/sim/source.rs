//! What a simulated camera sends, sans-IO: a [`Clip`] looped forever at a frame rate, an
//! optional G.711 tone, muxed into MPEG-PS (GB/T 28181-2022 Annex C: pack header on every
//! frame, system header and PSM on key frames) and packetized into RTP (PT 96, 90 kHz, ~1400
//! byte payloads, marker on the last packet of a frame, optional RFC 4571 prefixes).
//!
//! [`MediaSource::next_due`] says when the next burst is due, as an offset from the start of
//! the stream; [`MediaSource::next_burst`] makes it. The caller owns the clock and the socket.
//!
//! ```
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use media::Codec;
//! use gb28181_examples::sim::es::Clip;
//! use gb28181_examples::sim::source::{MediaSource, SourceConfig};
//!
//! let es = Bytes::from_static(&[0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce,
//!                               0, 0, 0, 1, 0x65, 0x88, 0, 0, 0, 1, 0x41, 0x9a]);
//! let clip = Arc::new(Clip::from_bytes(Codec::H264, es).unwrap());
//! let mut src = MediaSource::new(clip, SourceConfig { ssrc: 200000001, ..SourceConfig::default() });
//! let first = src.next_burst();
//! assert!(first.keyframe && first.packets.len() == 1);
//! assert_eq!(src.next_due().as_millis(), 40); // 25 fps
//! ```

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use media::codec::g711;
use media::packetize::{DEFAULT_MAX_PAYLOAD, Packets, RtpPacketizer};
use media::ps::PsMuxer;
use media::{AccessUnit, Codec};

use super::es::Clip;

/// 90 kHz: the PS and RTP clock.
pub const CLOCK: u64 = 90_000;
/// Audio frame length: 40 ms, 320 samples at 8 kHz.
pub const AUDIO_FRAME: Duration = Duration::from_millis(40);
/// Samples per audio frame.
pub const AUDIO_SAMPLES: usize = 320;
/// Tone frequency.
pub const TONE_HZ: u32 = 440;
/// PES stream id of the video stream.
pub const VIDEO_STREAM_ID: u8 = 0xE0;
/// PES stream id of the audio stream.
pub const AUDIO_STREAM_ID: u8 = 0xC0;

/// How a stream is made.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    /// Frames per second of the clip (must be > 0; anything else is taken as 25).
    pub fps: f64,
    /// G.711 tone in the PS as well: `Codec::G711A` or `Codec::G711U`.
    pub audio: Option<Codec>,
    /// RTP SSRC.
    pub ssrc: u32,
    /// RTP payload type (96, or what the offer mapped to PS).
    pub payload_type: u8,
    /// Prefix each packet with its RFC 4571 length (RTP over TCP).
    pub rfc4571: bool,
    /// First RTP sequence number.
    pub first_sequence: u16,
    /// PTS of the first frame (90 kHz; RTP timestamps are its low 32 bits).
    pub first_pts: u64,
    /// Largest RTP payload.
    pub max_payload: usize,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            fps: 25.0,
            audio: None,
            ssrc: 0,
            payload_type: 96,
            rfc4571: false,
            first_sequence: 0,
            first_pts: 0,
            max_payload: DEFAULT_MAX_PAYLOAD,
        }
    }
}

/// The packets of one frame.
#[derive(Debug, Clone)]
pub struct Burst {
    /// When it is due, from the start of the stream.
    pub due: Duration,
    /// Video (false: audio).
    pub video: bool,
    /// A video key frame.
    pub keyframe: bool,
    /// Its PTS (90 kHz, 33 bits).
    pub pts: u64,
    /// The RTP packets (iterate, or write [`Packets::wire`] at once on TCP).
    pub packets: Packets,
}

/// A looping clip (and tone) as RTP packets. See the module docs.
#[derive(Debug)]
pub struct MediaSource {
    clip: Arc<Clip>,
    cfg: SourceConfig,
    mux: PsMuxer,
    rtp: RtpPacketizer,
    buf: BytesMut,
    tone: Vec<Bytes>,
    video_n: u64,
    audio_n: u64,
    /// Clip frames skipped by [`MediaSource::force_keyframe`]: the clip index runs ahead of
    /// the frame count (timestamps stay continuous).
    skipped: u64,
}

impl MediaSource {
    /// A source for `clip` (which must hold at least one access unit, as [`Clip`] does).
    pub fn new(clip: Arc<Clip>, mut cfg: SourceConfig) -> MediaSource {
        if !(cfg.fps.is_finite() && cfg.fps > 0.0) {
            cfg.fps = 25.0;
        }
        let mut mux = PsMuxer::new();
        // Stream ids and codecs are fixed and valid: declaring them cannot fail, and the
        // first PSM lists both streams.
        let _ = mux.add_stream(VIDEO_STREAM_ID, clip.codec);
        let audio = cfg
            .audio
            .filter(|c| matches!(c, Codec::G711A | Codec::G711U));
        if let Some(a) = audio {
            let _ = mux.add_stream(AUDIO_STREAM_ID, a);
        }
        cfg.audio = audio;
        let rtp = RtpPacketizer::new(cfg.ssrc)
            .with_payload_type(cfg.payload_type)
            .with_sequence(cfg.first_sequence)
            .with_rfc4571(cfg.rfc4571)
            .with_max_payload(cfg.max_payload);
        MediaSource {
            tone: audio.map(tone_frames).unwrap_or_default(),
            clip,
            cfg,
            mux,
            rtp,
            buf: BytesMut::new(),
            video_n: 0,
            audio_n: 0,
            skipped: 0,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &SourceConfig {
        &self.cfg
    }

    /// A key frame was asked for (IFrameCmd): the next video frame is the clip's next key
    /// frame, the frames before it are skipped (a pre-encoded clip cannot make a key frame of
    /// the current picture; jumping ahead is what keeps every frame sent decodable). Returns
    /// how many frames were skipped.
    pub fn force_keyframe(&mut self) -> u64 {
        let units = &self.clip.units;
        let len = units.len().max(1) as u64;
        let at = self.video_n + self.skipped;
        let Some(ahead) = (0..len).find(|k| units[((at + k) % len) as usize].keyframe) else {
            return 0;
        };
        self.skipped += ahead;
        ahead
    }

    fn video_due(&self) -> Duration {
        Duration::from_secs_f64(self.video_n as f64 / self.cfg.fps)
    }

    fn audio_due(&self) -> Option<Duration> {
        self.cfg.audio.map(|_| AUDIO_FRAME * self.audio_n as u32)
    }

    /// When the next burst is due, from the start of the stream.
    pub fn next_due(&self) -> Duration {
        let v = self.video_due();
        self.audio_due().map_or(v, |a| a.min(v))
    }

    /// Makes the next burst (video before audio when both are due at once).
    pub fn next_burst(&mut self) -> Burst {
        let v = self.video_due();
        match self.audio_due() {
            Some(a) if a < v => self.audio_burst(a),
            _ => self.video_burst(v),
        }
    }

    fn pts(&self, ticks: u64) -> u64 {
        self.cfg.first_pts.wrapping_add(ticks) & 0x1_ffff_ffff
    }

    fn video_burst(&mut self, due: Duration) -> Burst {
        let n = self.video_n;
        self.video_n += 1;
        let units = &self.clip.units;
        // A clip has at least one unit; `max(1)` keeps the modulo defined regardless.
        let unit = &units[((n + self.skipped) % units.len().max(1) as u64) as usize];
        let pts = self.pts((n as f64 * CLOCK as f64 / self.cfg.fps).round() as u64);
        let au = AccessUnit {
            pts: Some(pts),
            ..unit.clone()
        };
        self.packets(due, true, au.keyframe, pts, &au)
    }

    fn audio_burst(&mut self, due: Duration) -> Burst {
        let n = self.audio_n;
        self.audio_n += 1;
        let pts = self.pts(n * CLOCK * AUDIO_FRAME.as_millis() as u64 / 1000);
        let au = AccessUnit {
            stream_id: AUDIO_STREAM_ID,
            codec: self.cfg.audio.unwrap_or(Codec::G711A),
            pts: Some(pts),
            dts: None,
            keyframe: true,
            data: self.tone[(n % self.tone.len().max(1) as u64) as usize].clone(),
        };
        self.packets(due, false, false, pts, &au)
    }

    fn packets(
        &mut self,
        due: Duration,
        video: bool,
        keyframe: bool,
        pts: u64,
        au: &AccessUnit,
    ) -> Burst {
        // Stream ids were declared with their codecs in `new`: muxing cannot fail. Should it
        // anyway, an empty frame gives no packet rather than a panic.
        let ps = self.mux.mux(au).unwrap_or_default();
        let packets = self.rtp.packetize(pts as u32, &ps, &mut self.buf);
        Burst {
            due,
            video,
            keyframe,
            pts,
            packets,
        }
    }
}

/// A 440 Hz sine at 8 kHz, G.711-encoded, as the distinct 40 ms frames of one period of the
/// frame/tone pattern (440 Hz repeats every 200 samples; 5 frames of 320 = 1600 samples).
pub fn tone_frames(codec: Codec) -> Vec<Bytes> {
    let period = 1600;
    let samples: Vec<i16> = (0..period)
        .map(|k| {
            let t = k as f64 * f64::from(TONE_HZ) / 8000.0;
            (8000.0 * (2.0 * std::f64::consts::PI * t).sin()).round() as i16
        })
        .collect();
    samples
        .chunks(AUDIO_SAMPLES)
        .map(|c| {
            let mut out = Vec::with_capacity(AUDIO_SAMPLES);
            match codec {
                Codec::G711U => g711::encode_ulaw(c, &mut out),
                _ => g711::encode_alaw(c, &mut out),
            }
            Bytes::from(out)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::ps::{DemuxEvent, PsDemuxer};
    use media::rtp::RtpPacket;

    fn clip() -> Arc<Clip> {
        // Key frame, then two P frames: a 3-frame loop.
        let mut es = vec![
            0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65,
        ];
        es.extend(std::iter::repeat_n(0x88, 3000));
        es.extend_from_slice(&[0, 0, 0, 1, 0x41, 0x9a, 1, 2, 0, 0, 0, 1, 0x41, 0x9a, 3, 4]);
        Arc::new(Clip::from_bytes(Codec::H264, Bytes::from(es)).unwrap())
    }

    #[test]
    fn a_key_frame_request_jumps_to_the_next_key_frame_with_continuous_timestamps() {
        let mut src = MediaSource::new(clip(), SourceConfig::default());
        let first = src.next_burst();
        assert!(first.keyframe);
        assert!(!src.next_burst().keyframe);
        assert_eq!(src.force_keyframe(), 1, "one P-frame skipped");
        let b = src.next_burst();
        assert!(b.keyframe);
        assert_eq!(b.pts - first.pts, 2 * 3600, "timestamps run on");
        assert!(!src.next_burst().keyframe);
        assert!(!src.next_burst().keyframe);
        assert!(src.next_burst().keyframe, "the loop goes on from there");
        assert_eq!(src.force_keyframe(), 2);
        assert_eq!(src.force_keyframe(), 0, "already at a key frame");
    }

    #[test]
    fn loops_with_continuous_timestamps_and_markers() {
        let clip = clip();
        let mut src = MediaSource::new(
            clip.clone(),
            SourceConfig {
                ssrc: 7,
                first_pts: 0x1_ffff_ff00,
                first_sequence: 65530,
                ..SourceConfig::default()
            },
        );
        let mut demux = PsDemuxer::new();
        let mut last_seq = None;
        let mut units = Vec::new();
        for n in 0..7u64 {
            assert_eq!(src.next_due(), Duration::from_millis(40 * n));
            let b = src.next_burst();
            assert!(b.video);
            assert_eq!(b.keyframe, n % 3 == 0);
            let pkts: Vec<RtpPacket> = b.packets.map(|p| RtpPacket::parse(p).unwrap()).collect();
            for (i, p) in pkts.iter().enumerate() {
                assert_eq!(p.marker(), i + 1 == pkts.len());
                assert_eq!(p.ssrc(), 7);
                assert_eq!(p.timestamp(), (0x1_ffff_ff00u64 + 3600 * n) as u32);
                assert!(p.payload().len() <= 1400);
                if let Some(s) = last_seq {
                    assert_eq!(p.sequence(), u16::wrapping_add(s, 1));
                }
                last_seq = Some(p.sequence());
                demux.push(p.payload().clone());
            }
        }
        demux.finish();
        while let Some(ev) = demux.poll() {
            if let DemuxEvent::AccessUnit(au) = ev {
                units.push(au);
            }
        }
        assert_eq!(units.len(), 7);
        for (n, au) in units.iter().enumerate() {
            assert_eq!(au.data, clip.units[n % 3].data, "frame {n}");
            // 33-bit PTS wraps across the loop.
            assert_eq!(
                au.pts,
                Some((0x1_ffff_ff00 + 3600 * n as u64) & 0x1_ffff_ffff)
            );
        }
    }

    #[test]
    fn audio_interleaves_every_40_ms() {
        let mut src = MediaSource::new(
            clip(),
            SourceConfig {
                fps: 10.0,
                audio: Some(Codec::G711A),
                rfc4571: true,
                ..SourceConfig::default()
            },
        );
        let mut kinds = Vec::new();
        for _ in 0..8 {
            let due = src.next_due();
            let b = src.next_burst();
            assert_eq!(b.due, due);
            // RFC 4571: the length prefix matches each packet.
            for p in b.packets.clone() {
                assert_eq!(usize::from(u16::from_be_bytes([p[0], p[1]])), p.len() - 2);
            }
            kinds.push((b.due.as_millis(), b.video));
        }
        assert_eq!(
            kinds,
            [
                (0, true),
                (0, false),
                (40, false),
                (80, false),
                (100, true),
                (120, false),
                (160, false),
                (200, true)
            ]
        );
    }

    #[test]
    fn tone_is_440_hz() {
        let frames = tone_frames(Codec::G711A);
        assert_eq!(frames.len(), 5);
        let mut pcm = Vec::new();
        for f in &frames {
            g711::decode_alaw(f, &mut pcm);
        }
        let crossings = pcm.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        // 1600 samples = 0.2 s of 440 Hz: 88 periods, 176 sign changes.
        assert!((174..=178).contains(&crossings), "{crossings}");
    }
}
