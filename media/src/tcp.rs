//! RTP over TCP: de-framing with resynchronisation, and framing.
//!
//! GB/T 28181 sends RTP over TCP with the RFC 4571 §2 framing: each packet is preceded by its
//! length as a 16-bit big-endian integer (2022 §C / PROTOCOL-NOTES §9). Devices also send
//! the RTSP interleaved form (RFC 2326 §10.12: `$`, a channel byte, a 16-bit length), and
//! some start a connection with a 256-byte vendor block. [`TcpDeframer`] takes whatever the
//! socket delivers, in chunks of any size, and yields the packets as [`Bytes`] slices of one
//! internal buffer (no copy, no allocation per packet).
//!
//! # Resynchronisation
//!
//! A frame is *plausible* when its length is at least 12 (8 for an RTCP packet, RFC 5761 §4)
//! and at most [`TcpDeframerConfig::max_packet_len`], and its first byte carries RTP version 2.
//! While in sync, each plausible frame is taken as it comes; a frame whose SSRC differs from
//! the stream's (first seen, or [`TcpDeframerConfig::expected_ssrc`]) is taken only if the
//! frame after it is plausible too. When the frame at the head is not plausible, the deframer
//! scans forward one byte at a time for a position where a plausible frame starts *and* is
//! followed by another plausible frame (or carries the stream's SSRC), drops the bytes before
//! it (counted in [`TcpDeframerStats::skipped_bytes`]) and carries on. The connection is
//! never given up. At the start of a connection the first frame is confirmed the same way.
//!
//! # Vendor prefix
//!
//! Some devices send 256 bytes of their own before the first RTP frame. It is detected, not
//! assumed: when nothing has been taken from the connection yet and the first confirmed frame
//! starts exactly at byte 256, those bytes are counted in
//! [`TcpDeframerStats::vendor_prefix_bytes`] instead of as garbage, and logged once.
//!
//! ```
//! use media::tcp::{TcpDeframer, frame_rfc4571};
//!
//! let pkt = [0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0xAA];
//! let mut stream = Vec::new();
//! for _ in 0..2 {
//!     stream.extend_from_slice(&frame_rfc4571(&pkt)?);
//!     stream.extend_from_slice(&pkt);
//! }
//! let mut d = TcpDeframer::new();
//! for chunk in stream.chunks(5) {
//!     d.push(chunk);
//!     while let Some(p) = d.poll() {
//!         assert_eq!(&p[..], &pkt);
//!     }
//! }
//! assert_eq!(d.stats().frames, 2);
//! # Ok::<(), media::tcp::FrameTooLong>(())
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::rtp::{RTP_HEADER_LEN, RTP_VERSION, looks_like_rtcp};

/// Length of the vendor block some devices send first on a connection (see the module docs).
pub const VENDOR_PREFIX_LEN: usize = 256;
/// Smallest RTCP packet: 4-byte header and SSRC (RFC 3550 §6.4.2, an empty RR).
const MIN_RTCP_LEN: usize = 8;
/// How much the internal buffer grows at once, so that allocations are rare.
const GROW: usize = 64 * 1024;

/// Which framing the connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// Detect per frame: `$` interleaved when that parses, else RFC 4571.
    #[default]
    Auto,
    /// RFC 4571 §2: 2-byte big-endian length, then the packet.
    Rfc4571,
    /// RFC 2326 §10.12: `$`, channel, 2-byte big-endian length, then the packet.
    Interleaved,
}

/// Settings of a [`TcpDeframer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpDeframerConfig {
    /// Framing to expect.
    pub framing: Framing,
    /// Largest packet taken as plausible. Lowering it (cameras send about 1412 bytes) makes
    /// resynchronisation more selective.
    pub max_packet_len: usize,
    /// The SSRC the session negotiated (SDP `y=` line), if known: a frame carrying it needs
    /// no further confirmation. Without it, the SSRC of the last frame taken is the stream's.
    pub expected_ssrc: Option<u32>,
    /// Recognise the 256-byte vendor prefix (see the module docs).
    pub vendor_prefix: bool,
}

impl Default for TcpDeframerConfig {
    fn default() -> Self {
        TcpDeframerConfig {
            framing: Framing::Auto,
            max_packet_len: usize::from(u16::MAX),
            expected_ssrc: None,
            vendor_prefix: true,
        }
    }
}

/// Counters of a [`TcpDeframer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpDeframerStats {
    /// Frames yielded.
    pub frames: u64,
    /// Packet bytes yielded (framing headers excluded).
    pub bytes: u64,
    /// Bytes dropped while resynchronising.
    pub skipped_bytes: u64,
    /// Times sync was found again after skipping bytes.
    pub resyncs: u64,
    /// Bytes of a recognised vendor prefix (0 or 256).
    pub vendor_prefix_bytes: u64,
    /// Frames that came in the `$` interleaved form.
    pub interleaved_frames: u64,
}

/// One de-framed packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpFrame {
    /// The interleaved channel (RFC 2326 §10.12; usually 0 RTP, 1 RTCP), `None` for RFC 4571.
    pub channel: Option<u8>,
    /// The packet (RTP, or RTCP, see [`crate::rtp::looks_like_rtcp`]).
    pub packet: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rfc4571,
    Interleaved,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    NeedMore,
    Bad,
    Ok {
        hdr: usize,
        len: usize,
        channel: Option<u8>,
    },
}

/// Streaming de-framer of RTP over TCP (RFC 4571 §2, RFC 2326 §10.12), sans-IO. See the
/// module docs for detection and resynchronisation.
#[derive(Debug)]
pub struct TcpDeframer {
    cfg: TcpDeframerConfig,
    buf: BytesMut,
    kind: Option<Kind>,
    synced: bool,
    /// Bytes removed from the head of the connection so far (frames and skipped bytes).
    consumed: u64,
    ssrc: Option<u32>,
    stats: TcpDeframerStats,
}

impl Default for TcpDeframer {
    fn default() -> Self {
        Self::new()
    }
}

impl TcpDeframer {
    /// A de-framer with the default settings (auto-detected framing).
    pub fn new() -> Self {
        Self::with_config(TcpDeframerConfig::default())
    }

    /// A de-framer with the given settings.
    pub fn with_config(cfg: TcpDeframerConfig) -> Self {
        let kind = match cfg.framing {
            Framing::Auto => None,
            Framing::Rfc4571 => Some(Kind::Rfc4571),
            Framing::Interleaved => Some(Kind::Interleaved),
        };
        TcpDeframer {
            cfg,
            buf: BytesMut::new(),
            kind,
            synced: false,
            consumed: 0,
            ssrc: cfg.expected_ssrc,
            stats: TcpDeframerStats::default(),
        }
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, data: &[u8]) {
        self.reserve(data.len());
        self.buf.put_slice(data);
    }

    /// The internal buffer, for reading straight into it (for example tokio's
    /// `AsyncReadExt::read_buf(deframer.buffer_mut())`), which saves the copy of
    /// [`TcpDeframer::push`]. Append only.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        self.reserve(GROW / 4);
        &mut self.buf
    }

    fn reserve(&mut self, n: usize) {
        if self.buf.capacity() - self.buf.len() < n {
            self.buf.reserve(n.max(GROW));
        }
    }

    /// Bytes buffered and not yet yielded or skipped.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Counters.
    pub fn stats(&self) -> TcpDeframerStats {
        self.stats
    }

    /// The next packet, if a whole one is buffered.
    pub fn poll(&mut self) -> Option<Bytes> {
        self.poll_frame().map(|f| f.packet)
    }

    /// The next packet with its interleaved channel, if a whole one is buffered.
    pub fn poll_frame(&mut self) -> Option<TcpFrame> {
        loop {
            if self.synced {
                // `synced` implies `kind` is set.
                let kind = self.kind?;
                match self.check(0, kind) {
                    Check::NeedMore => return None,
                    Check::Ok { hdr, len, channel } => {
                        if self.buf.len() < hdr + len {
                            return None;
                        }
                        if self.foreign_ssrc(hdr, len) {
                            match self.check(hdr + len, kind) {
                                Check::NeedMore => return None,
                                Check::Ok { .. } => {}
                                Check::Bad => {
                                    self.synced = false;
                                    continue;
                                }
                            }
                        }
                        return Some(self.take(hdr, len, channel));
                    }
                    Check::Bad => {
                        tracing::debug!(
                            offset = self.consumed,
                            "RTP over TCP: lost framing, resyncing"
                        );
                        self.synced = false;
                    }
                }
            } else if !self.resync() {
                return None;
            }
        }
    }

    /// Scans for a confirmed frame start. Returns true once in sync, false when more input is
    /// needed (bytes already known to be garbage are dropped).
    fn resync(&mut self) -> bool {
        let mut pos = 0;
        let found = 'scan: loop {
            if pos >= self.buf.len() {
                break 'scan None;
            }
            let mut undecided = false;
            for kind in self.candidate_kinds(pos) {
                match self.check(pos, kind) {
                    Check::NeedMore => undecided = true,
                    Check::Bad => {}
                    Check::Ok { hdr, len, .. } => {
                        let whole = self.buf.len() >= pos + hdr + len;
                        if whole && self.known_ssrc_at(pos + hdr, len) {
                            break 'scan Some((pos, kind));
                        }
                        match self.check(pos + hdr + len, kind) {
                            Check::Ok { .. } => break 'scan Some((pos, kind)),
                            Check::NeedMore => undecided = true,
                            Check::Bad => {}
                        }
                    }
                }
            }
            if undecided {
                break 'scan None;
            }
            pos += 1;
        };
        let skip = found.map_or(pos, |(p, _)| p);
        if skip > 0 {
            self.buf.advance(skip);
            self.consumed += skip as u64;
            self.stats.skipped_bytes += skip as u64;
        }
        let Some((_, kind)) = found else {
            return false;
        };
        if self.stats.frames == 0
            && self.cfg.vendor_prefix
            && self.consumed == VENDOR_PREFIX_LEN as u64
            && self.stats.skipped_bytes == VENDOR_PREFIX_LEN as u64
        {
            self.stats.skipped_bytes = 0;
            self.stats.vendor_prefix_bytes = VENDOR_PREFIX_LEN as u64;
            tracing::info!("RTP over TCP: skipped a {VENDOR_PREFIX_LEN}-byte vendor prefix");
        } else if skip > 0 || self.stats.frames > 0 {
            self.stats.resyncs += 1;
            tracing::debug!(
                offset = self.consumed,
                skipped = self.stats.skipped_bytes,
                "RTP over TCP: resynced"
            );
        }
        self.kind = Some(kind);
        self.synced = true;
        true
    }

    fn candidate_kinds(&self, pos: usize) -> impl Iterator<Item = Kind> + use<> {
        let (a, b) = match (self.cfg.framing, self.buf.get(pos)) {
            (Framing::Rfc4571, _) => (Some(Kind::Rfc4571), None),
            (Framing::Interleaved, _) => (Some(Kind::Interleaved), None),
            (Framing::Auto, Some(b'$')) => (Some(Kind::Interleaved), Some(Kind::Rfc4571)),
            (Framing::Auto, _) => (Some(Kind::Rfc4571), None),
        };
        a.into_iter().chain(b)
    }

    /// Is the frame at `pos` plausible under `kind`?
    fn check(&self, pos: usize, kind: Kind) -> Check {
        let b = self.buf.get(pos..).unwrap_or(&[]);
        let (hdr, channel, len) = match kind {
            Kind::Rfc4571 => match b {
                [l0, l1, ..] => (2, None, usize::from(u16::from_be_bytes([*l0, *l1]))),
                _ => return Check::NeedMore,
            },
            Kind::Interleaved => match b {
                [b'$', ch, l0, l1, ..] => {
                    (4, Some(*ch), usize::from(u16::from_be_bytes([*l0, *l1])))
                }
                [b'$', ..] | [] => return Check::NeedMore,
                _ => return Check::Bad,
            },
        };
        if !(MIN_RTCP_LEN..=self.cfg.max_packet_len).contains(&len) {
            return Check::Bad;
        }
        let body = &b[hdr..];
        match body {
            [] => Check::NeedMore,
            [b0, ..] if b0 >> 6 != RTP_VERSION => Check::Bad,
            [_] if len < RTP_HEADER_LEN => Check::NeedMore,
            _ if len < RTP_HEADER_LEN && !looks_like_rtcp(body) => Check::Bad,
            _ => Check::Ok { hdr, len, channel },
        }
    }

    /// SSRC of the RTP packet at `body`, `None` for RTCP or when not all there.
    fn ssrc_at(&self, body: usize, len: usize) -> Option<u32> {
        let b = self.buf.get(body..body + len)?;
        if looks_like_rtcp(b) {
            return None;
        }
        let s = b.get(8..12)?;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn known_ssrc_at(&self, body: usize, len: usize) -> bool {
        self.ssrc.is_some() && self.ssrc_at(body, len) == self.ssrc
    }

    /// The frame at the head is RTP with an SSRC other than the stream's.
    fn foreign_ssrc(&self, hdr: usize, len: usize) -> bool {
        match (self.ssrc, self.ssrc_at(hdr, len)) {
            (Some(known), Some(s)) => known != s,
            _ => false,
        }
    }

    fn take(&mut self, hdr: usize, len: usize, channel: Option<u8>) -> TcpFrame {
        if self.cfg.expected_ssrc.is_none()
            && let Some(s) = self.ssrc_at(hdr, len)
        {
            self.ssrc = Some(s);
        }
        let mut frame = self.buf.split_to(hdr + len);
        frame.advance(hdr);
        self.consumed += (hdr + len) as u64;
        self.stats.frames += 1;
        self.stats.bytes += len as u64;
        if channel.is_some() {
            self.stats.interleaved_frames += 1;
        }
        TcpFrame {
            channel,
            packet: frame.freeze(),
        }
    }
}

/// A packet too long for a 16-bit length prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("packet of {0} bytes does not fit a 16-bit length prefix")]
pub struct FrameTooLong(pub usize);

/// The RFC 4571 §2 prefix for `packet`: its length, 16-bit big-endian.
pub fn frame_rfc4571(packet: &[u8]) -> Result<[u8; 2], FrameTooLong> {
    u16::try_from(packet.len())
        .map(u16::to_be_bytes)
        .map_err(|_| FrameTooLong(packet.len()))
}

/// The RFC 2326 §10.12 interleaved header for `packet` on `channel`.
pub fn frame_interleaved(channel: u8, packet: &[u8]) -> Result<[u8; 4], FrameTooLong> {
    let [l0, l1] = frame_rfc4571(packet)?;
    Ok([b'$', channel, l0, l1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16, ssrc: u32, len: usize) -> Vec<u8> {
        let mut p = vec![0x80, 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0]);
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.resize(len, 0x78);
        p
    }

    fn drain(d: &mut TcpDeframer) -> Vec<TcpFrame> {
        std::iter::from_fn(|| d.poll_frame()).collect()
    }

    #[test]
    fn first_frame_waits_for_confirmation_unless_ssrc_known() {
        let p = rtp(1, 5, 20);
        let mut d = TcpDeframer::new();
        d.push(&frame_rfc4571(&p).unwrap());
        d.push(&p);
        assert!(d.poll().is_none());
        d.push(&[0]);
        assert!(
            d.poll().is_none(),
            "one byte of the next prefix is not enough"
        );
        d.push(&[20, 0x80]);
        assert_eq!(d.poll().as_deref(), Some(&p[..]));

        let mut d = TcpDeframer::with_config(TcpDeframerConfig {
            expected_ssrc: Some(5),
            ..Default::default()
        });
        d.push(&[0, 20]);
        d.push(&p);
        assert_eq!(d.poll().as_deref(), Some(&p[..]));
    }

    #[test]
    fn interleaved_channels() {
        let p = rtp(1, 5, 20);
        let rtcp = [0x80, 201, 0, 1, 0, 0, 0, 5];
        let mut s = Vec::new();
        s.extend_from_slice(&frame_interleaved(0, &p).unwrap());
        s.extend_from_slice(&p);
        s.extend_from_slice(&frame_interleaved(1, &rtcp).unwrap());
        s.extend_from_slice(&rtcp);
        s.extend_from_slice(&frame_interleaved(0, &p).unwrap());
        s.extend_from_slice(&p);
        let mut d = TcpDeframer::new();
        d.push(&s);
        let f = drain(&mut d);
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].channel, Some(0));
        assert_eq!(f[1].channel, Some(1));
        assert_eq!(&f[1].packet[..], &rtcp);
        assert_eq!(d.stats().interleaved_frames, 3);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn vendor_prefix_is_recognised() {
        let mut s = vec![0u8; VENDOR_PREFIX_LEN];
        for p in [rtp(1, 5, 30), rtp(2, 5, 30)] {
            s.extend_from_slice(&frame_rfc4571(&p).unwrap());
            s.extend_from_slice(&p);
        }
        let mut d = TcpDeframer::new();
        d.push(&s);
        assert_eq!(drain(&mut d).len(), 2);
        let st = d.stats();
        assert_eq!(
            (st.vendor_prefix_bytes, st.skipped_bytes, st.resyncs),
            (256, 0, 0)
        );
    }

    #[test]
    fn foreign_ssrc_needs_a_plausible_follower() {
        let mut d = TcpDeframer::with_config(TcpDeframerConfig {
            expected_ssrc: Some(5),
            ..Default::default()
        });
        let good = rtp(1, 5, 20);
        let other = rtp(9, 6, 20);
        d.push(&[0, 20]);
        d.push(&good);
        d.push(&[0, 20]);
        d.push(&other);
        assert_eq!(drain(&mut d).len(), 1, "other SSRC waits for its follower");
        d.push(&[0, 20]);
        d.push(&good);
        assert_eq!(drain(&mut d).len(), 2);
    }

    #[test]
    fn framing_helpers() {
        assert_eq!(frame_rfc4571(&[0; 1412]), Ok([0x05, 0x84]));
        assert_eq!(frame_rfc4571(&vec![0; 65536]), Err(FrameTooLong(65536)));
        assert_eq!(frame_interleaved(1, &[0; 3]), Ok([b'$', 1, 0, 3]));
    }
}
