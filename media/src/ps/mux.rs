//! PS muxer, device side (GB/T 28181-2022 Annex C; ISO/IEC 13818-1 §2.5): one access unit in,
//! one PS "frame" out, laid out as cameras send it — pack header on every frame, system header
//! and PSM on key frames, PES packets of at most `max_pes_payload` bytes with the PTS on the
//! first.

use super::{pack, pes, psm, system_header};
use crate::{AccessUnit, Codec};
use bytes::{Bytes, BytesMut};

/// Tuning of a [`PsMuxer`].
#[derive(Debug, Clone)]
pub struct MuxConfig {
    /// `program_mux_rate` and `rate_bound`, in 50 bytes/s units. Default 0x3FFF (≈ 6.5 Mbit/s).
    pub mux_rate: u32,
    /// Payload bytes per PES at most; larger frames span several PES. Default 0xFF80.
    pub max_pes_payload: usize,
    /// Without a video stream, send the system header and PSM every this many audio frames
    /// (and on the first). Default 50.
    pub audio_psm_interval: u32,
    /// `pack_stuffing_length` (0–7); the bytes are 0xFF. Default 0.
    pub pack_stuffing: u8,
}

impl Default for MuxConfig {
    fn default() -> Self {
        MuxConfig {
            mux_rate: 0x3fff,
            max_pes_payload: 0xff80,
            audio_psm_interval: 50,
            pack_stuffing: 0,
        }
    }
}

/// Why an access unit cannot be muxed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MuxError {
    /// The stream id is not 0xE0–0xEF for video or 0xC0–0xDF for audio.
    #[error("stream id {stream_id:#04x} does not fit codec {codec:?}")]
    StreamId {
        /// The access unit's stream id.
        stream_id: u8,
        /// Its codec.
        codec: Codec,
    },
    /// A PSM holds at most 16 streams here.
    #[error("too many streams")]
    TooManyStreams,
}

/// Access units → MPEG-PS frames.
///
/// ```
/// use bytes::Bytes;
/// use media::{AccessUnit, Codec, ps::PsMuxer};
/// let mut mux = PsMuxer::new();
/// let g711 = AccessUnit { stream_id: 0xC0, codec: Codec::G711A, pts: Some(0), dts: None,
///                         keyframe: true, data: Bytes::from_static(&[0xd5; 160]) };
/// let frame = mux.mux(&g711).unwrap();
/// assert_eq!(&frame[..4], &[0, 0, 1, 0xBA]);
/// ```
#[derive(Debug)]
pub struct PsMuxer {
    cfg: MuxConfig,
    streams: Vec<(u8, Codec)>,
    psm_version: u8,
    psm_dirty: bool,
    last_scr: u64,
    audio_since_psm: u32,
    buf: BytesMut,
}

impl Default for PsMuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl PsMuxer {
    /// A muxer with the default [`MuxConfig`].
    pub fn new() -> Self {
        Self::with_config(MuxConfig::default())
    }

    /// A muxer with `cfg`.
    pub fn with_config(cfg: MuxConfig) -> Self {
        PsMuxer {
            cfg,
            streams: Vec::new(),
            psm_version: 0,
            psm_dirty: true,
            last_scr: 0,
            audio_since_psm: 0,
            buf: BytesMut::new(),
        }
    }

    /// Declares a stream up front so that the first PSM lists it (streams are otherwise added
    /// when their first access unit comes).
    pub fn add_stream(&mut self, stream_id: u8, codec: Codec) -> Result<(), MuxError> {
        let ok = if codec.is_video() {
            (0xE0..=0xEF).contains(&stream_id)
        } else {
            (0xC0..=0xDF).contains(&stream_id)
        };
        if !ok {
            return Err(MuxError::StreamId { stream_id, codec });
        }
        let count = self.streams.len();
        match self.streams.iter_mut().find(|(id, _)| *id == stream_id) {
            Some((_, c)) if *c == codec => return Ok(()),
            Some((_, c)) => *c = codec,
            None if count >= 16 => return Err(MuxError::TooManyStreams),
            None => self.streams.push((stream_id, codec)),
        }
        self.psm_dirty = true;
        self.psm_version = (self.psm_version + 1) & 0x1f;
        Ok(())
    }

    /// Muxes one access unit into one PS frame.
    pub fn mux(&mut self, au: &AccessUnit) -> Result<Bytes, MuxError> {
        self.add_stream(au.stream_id, au.codec)?;
        let video = au.codec.is_video();
        let has_video = self.streams.iter().any(|(_, c)| c.is_video());
        let with_psm = self.psm_dirty
            || (video && au.keyframe)
            || (!has_video && self.audio_since_psm >= self.cfg.audio_psm_interval);
        if let Some(t) = au.dts.or(au.pts) {
            self.last_scr = t;
        }
        let max = self.cfg.max_pes_payload.clamp(1, 0xffff - 13);
        let pes_count = au.data.len().div_ceil(max).max(1);
        self.buf
            .reserve(14 + 7 + 64 + 100 + pes_count * 19 + au.data.len());
        let stuffing = [0xffu8; 7];
        pack::write(
            &mut self.buf,
            self.last_scr,
            self.cfg.mux_rate,
            &stuffing[..usize::from(self.cfg.pack_stuffing.min(7))],
        );
        if with_psm {
            let bounds: Vec<system_header::StreamBound> = self
                .streams
                .iter()
                .map(|&(stream_id, c)| system_header::StreamBound {
                    stream_id,
                    scale_1024: c.is_video(),
                    size_bound: if c.is_video() { 1024 } else { 64 },
                })
                .collect();
            system_header::write(&mut self.buf, self.cfg.mux_rate, &bounds);
            let entries: Vec<psm::PsmEntry> = self
                .streams
                .iter()
                .map(|&(stream_id, c)| psm::PsmEntry {
                    stream_type: c.stream_type(),
                    stream_id,
                })
                .collect();
            psm::write(&mut self.buf, self.psm_version, &entries);
            self.psm_dirty = false;
            self.audio_since_psm = 0;
        }
        if !video {
            self.audio_since_psm += 1;
        }
        let mut chunks = au.data.chunks(max);
        let first = chunks.next().unwrap_or(&[]);
        pes::write_header(
            &mut self.buf,
            au.stream_id,
            first.len(),
            au.pts,
            au.dts.filter(|_| au.dts != au.pts),
            video && au.keyframe,
        );
        self.buf.extend_from_slice(first);
        for c in chunks {
            pes::write_header(&mut self.buf, au.stream_id, c.len(), None, None, false);
            self.buf.extend_from_slice(c);
        }
        Ok(self.buf.split().freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_layout() {
        let mut m = PsMuxer::new();
        let au = AccessUnit {
            stream_id: 0xE0,
            codec: Codec::H265,
            pts: Some(90_000),
            dts: None,
            keyframe: true,
            data: Bytes::from(vec![0x11; 200_000]),
        };
        let f = m.mux(&au).unwrap();
        let p = pack::parse(&f).unwrap();
        assert_eq!(p.scr_base, 90_000);
        let sh = system_header::parse(&f[p.len..]).unwrap();
        let map = psm::parse(&f[p.len + sh.len..]).unwrap();
        assert!(map.crc_ok);
        assert_eq!(map.entries[0].stream_type, 0x24);
        let mut at = p.len + sh.len + map.len;
        let mut total = 0;
        let mut n = 0;
        while at < f.len() {
            let h = pes::parse(&f[at..]).unwrap();
            assert_eq!(h.pts.is_some(), n == 0);
            let len = h.payload_len().unwrap();
            assert!(len <= 0xff80);
            total += len;
            at += h.header_len + len;
            n += 1;
        }
        assert_eq!((total, n), (200_000, 4));
    }

    #[test]
    fn wrong_stream_id() {
        let mut m = PsMuxer::new();
        assert!(m.add_stream(0xC0, Codec::H264).is_err());
        assert!(m.add_stream(0xE0, Codec::G711U).is_err());
    }
}
