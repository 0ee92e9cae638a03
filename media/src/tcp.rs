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
//! An RTCP frame must also pass the compound-packet checks of RFC 3550 Appendix A.2.
//! A frame is *confirmed* when it carries the stream's SSRC (the first seen, or
//! [`TcpDeframerConfig::expected_ssrc`]), or when the frame right after it is plausible and
//! continues it: same SSRC and, between RTP packets, a sequence number 1 to 16 ahead. Random
//! bytes pass that test far less than once in 2^32.
//!
//! While in sync, each plausible frame with the stream's SSRC is taken as it comes (for RTCP
//! the sender SSRC counts: a camera's SR carries the media SSRC); one with another SSRC is
//! handled like a resync: it must be confirmed. When the frame at the head is not plausible, the deframer scans forward for the
//! first confirmed frame start, drops the bytes before it (counted in
//! [`TcpDeframerStats::skipped_bytes`]) and carries on; the connection is never given up. A
//! position that cannot be decided yet (its follower has not arrived: say garbage that reads
//! as a 60 000-byte frame) is kept while the scan looks further, and is dropped as soon as a
//! confirmed frame shows up after it. At the start of a connection the first frame is
//! confirmed the same way: without `expected_ssrc` it comes out once the next frame's header
//! is in.
//!
//! A frame longer than any seen before is checked for the stream's next packet (same SSRC,
//! next sequence number) starting inside it; if it does, the length field was wrong and the
//! frame is cut there ([`TcpDeframerStats::length_fixes`]). A length field that is too
//! short is only noticed at the next frame, by a resync.
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
//! // RTP packets: V=2, PT 96, sequence numbers 1 and 2, SSRC 7, one payload byte.
//! let pkts = [1u8, 2].map(|seq| [0x80, 96, 0, seq, 0, 0, 0, 0, 0, 0, 0, 7, 0xAA]);
//! let mut stream = Vec::new();
//! for pkt in &pkts {
//!     stream.extend_from_slice(&frame_rfc4571(pkt)?);
//!     stream.extend_from_slice(pkt);
//! }
//! let mut d = TcpDeframer::new();
//! let mut got = Vec::new();
//! for chunk in stream.chunks(5) {
//!     d.push(chunk);
//!     while let Some(p) = d.poll() {
//!         got.push(p.to_vec());
//!     }
//! }
//! assert_eq!(got, pkts);
//! assert_eq!(d.stats().frames, 2);
//! # Ok::<(), media::tcp::FrameTooLong>(())
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::rtp::{RTP_HEADER_LEN, RTP_VERSION, looks_like_rtcp};

/// Length of the vendor block some devices send first on a connection (see the module docs).
pub const VENDOR_PREFIX_LEN: usize = 256;
/// Smallest RTCP packet: 4-byte header and SSRC (RFC 3550 §6.4.2, an empty RR).
const MIN_RTCP_LEN: usize = 8;
/// Largest sequence-number step between two frames that confirm each other.
const MAX_SEQ_STEP: u16 = 16;
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
    /// Frames whose length field ran past the start of the next packet, cut there.
    pub length_fixes: u64,
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
enum Status {
    Confirmed(Kind),
    /// Cannot tell before the buffer holds this many bytes.
    Undecided(usize),
    Rejected,
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
    /// A resync scan is under way.
    scanning: bool,
    /// Undecided positions of the scan, with the buffer length at which to look again.
    pending: Vec<(usize, usize)>,
    /// Positions below this were looked at by the scan.
    scanned: usize,
    /// The frame at the head was confirmed by a resync: take it without an SSRC check.
    head_confirmed: bool,
    /// Longest frame taken so far.
    max_len: usize,
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
            scanning: false,
            pending: Vec::new(),
            scanned: 0,
            head_confirmed: false,
            max_len: 0,
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
                        match (self.ssrc, self.sender_ssrc(hdr)) {
                            _ if self.head_confirmed => {}
                            (Some(_), None) => return None,
                            (Some(known), Some(s)) if s != known => {
                                // Another source, or garbage that looks like a frame:
                                // confirm it like a resync would.
                                self.lose_sync();
                                continue;
                            }
                            _ => {}
                        }
                        if !self.head_confirmed
                            && len > self.max_len
                            && self.max_len > 0
                            && let Some(end) = self.embedded_next(hdr, len, kind)
                        {
                            // The length field is too long: the next packet starts inside.
                            self.stats.length_fixes += 1;
                            tracing::debug!(
                                offset = self.consumed,
                                len,
                                end,
                                "RTP over TCP: length field overruns the next packet"
                            );
                            return Some(self.take(hdr, end - hdr, channel));
                        }
                        if self.buf.len() < hdr + len {
                            return None;
                        }
                        let body = &self.buf[hdr..hdr + len];
                        if looks_like_rtcp(body) && !rtcp_compound_valid(body) {
                            self.lose_sync();
                            continue;
                        }
                        self.head_confirmed = false;
                        return Some(self.take(hdr, len, channel));
                    }
                    Check::Bad => self.lose_sync(),
                }
            } else if !self.resync() {
                return None;
            }
        }
    }

    fn lose_sync(&mut self) {
        tracing::debug!(
            offset = self.consumed,
            "RTP over TCP: lost framing, resyncing"
        );
        self.synced = false;
        self.scanning = false;
    }

    /// Scans for a confirmed frame start. Returns true once in sync, false when more input is
    /// needed (bytes known to be garbage are dropped first). Incremental: positions already
    /// rejected are not looked at again, undecided ones only once enough bytes came.
    fn resync(&mut self) -> bool {
        if !self.scanning {
            self.scanning = true;
            self.pending.clear();
            self.scanned = 0;
        }
        let len = self.buf.len();
        let mut found = None;
        let mut keep = 0;
        for i in 0..self.pending.len() {
            let (pos, need) = self.pending[i];
            let st = if need > len {
                Status::Undecided(need)
            } else {
                self.status(pos)
            };
            match st {
                Status::Confirmed(kind) => {
                    found = Some((pos, kind));
                    break;
                }
                Status::Undecided(need) => {
                    self.pending[keep] = (pos, need);
                    keep += 1;
                }
                Status::Rejected => {}
            }
        }
        if found.is_none() {
            self.pending.truncate(keep);
            for pos in self.scanned..len {
                match self.status(pos) {
                    Status::Confirmed(kind) => {
                        found = Some((pos, kind));
                        break;
                    }
                    Status::Undecided(need) => self.pending.push((pos, need)),
                    Status::Rejected => {}
                }
            }
            self.scanned = len;
        }
        if let Some((pos, kind)) = found {
            self.scanning = false;
            return self.synced_at(pos, kind);
        }
        // Everything before the first undecided position is garbage.
        let first = self.pending.first().map_or(len, |p| p.0);
        self.skip(first);
        self.scanned -= first;
        self.pending.iter_mut().for_each(|p| {
            p.0 -= first;
            p.1 -= first;
        });
        false
    }

    fn skip(&mut self, n: usize) {
        if n > 0 {
            self.buf.advance(n);
            self.consumed += n as u64;
            self.stats.skipped_bytes += n as u64;
        }
    }

    fn synced_at(&mut self, pos: usize, kind: Kind) -> bool {
        self.skip(pos);
        if self.stats.frames == 0
            && self.cfg.vendor_prefix
            && self.consumed == VENDOR_PREFIX_LEN as u64
            && self.stats.skipped_bytes == VENDOR_PREFIX_LEN as u64
        {
            self.stats.skipped_bytes = 0;
            self.stats.vendor_prefix_bytes = VENDOR_PREFIX_LEN as u64;
            tracing::info!("RTP over TCP: skipped a {VENDOR_PREFIX_LEN}-byte vendor prefix");
        } else if pos > 0 {
            self.stats.resyncs += 1;
            tracing::debug!(
                offset = self.consumed,
                skipped = self.stats.skipped_bytes,
                "RTP over TCP: resynced"
            );
        }
        self.kind = Some(kind);
        self.synced = true;
        self.head_confirmed = true;
        true
    }

    /// Can a frame start at `pos`? Confirmed by the stream's SSRC, or by a plausible follower
    /// from the same source. Undecided carries the buffer length at which to look again.
    fn status(&self, pos: usize) -> Status {
        let len = self.buf.len();
        let mut need = None::<usize>;
        let mut wait = |n: usize| need = Some(need.map_or(n, |m| m.min(n)));
        for kind in self.candidate_kinds(pos) {
            match self.check(pos, kind) {
                Check::NeedMore => wait(len + 1),
                Check::Bad => {}
                Check::Ok { hdr, len: n, .. } => {
                    let body = pos + hdr;
                    let ssrc = self.sender_ssrc(body);
                    if self.ssrc.is_some() && ssrc == self.ssrc && len >= body + n {
                        return Status::Confirmed(kind);
                    }
                    match self.follower(body + n, kind, body) {
                        Check::Ok { .. } => return Status::Confirmed(kind),
                        Check::NeedMore => wait((len + 1).max(body + n + 2)),
                        Check::Bad => {}
                    }
                }
            }
        }
        need.map_or(Status::Rejected, Status::Undecided)
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
            [_] => Check::NeedMore,
            // RTCP (RFC 3550 A.2): a compound packet starts with SR or RR.
            [_, b1, ..] if looks_like_rtcp(body) && !matches!(b1, 200 | 201) => Check::Bad,
            _ if len < RTP_HEADER_LEN && !looks_like_rtcp(body) => Check::Bad,
            _ => Check::Ok { hdr, len, channel },
        }
    }

    /// The frame at `pos` is plausible and continues the one whose body starts at `prev`:
    /// same sender SSRC and, between two RTP packets, a sequence number 1 to
    /// [`MAX_SEQ_STEP`] ahead. (A follower with the stream's SSRC does not vouch for a
    /// foreign frame before it: garbage whose length happens to reach the next real frame
    /// would pass.)
    fn follower(&self, pos: usize, kind: Kind, prev: usize) -> Check {
        let Check::Ok { hdr, len, channel } = self.check(pos, kind) else {
            return self.check(pos, kind);
        };
        let body = pos + hdr;
        let Some(s) = self.sender_ssrc(body) else {
            return Check::NeedMore;
        };
        if Some(s) != self.sender_ssrc(prev) {
            return Check::Bad;
        }
        if let (Some(a), Some(b)) = (self.rtp_seq(prev), self.rtp_seq(body)) {
            let step = b.wrapping_sub(a);
            if step == 0 || step > MAX_SEQ_STEP {
                return Check::Bad;
            }
        }
        Check::Ok { hdr, len, channel }
    }

    /// For a head frame longer than any taken so far: where, inside it, the stream's next
    /// RTP packet (same SSRC, sequence number + 1) starts, if it does.
    fn embedded_next(&self, hdr: usize, len: usize, kind: Kind) -> Option<usize> {
        let ssrc = self.sender_ssrc(hdr)?;
        let next = self.rtp_seq(hdr)?.wrapping_add(1);
        let end = self.buf.len().min(hdr + len);
        (hdr + RTP_HEADER_LEN..end).find(|&q| match self.check(q, kind) {
            Check::Ok { hdr: h, .. } => {
                self.sender_ssrc(q + h) == Some(ssrc) && self.rtp_seq(q + h) == Some(next)
            }
            _ => false,
        })
    }

    /// The sequence number of the RTP packet at `body`, `None` for RTCP.
    fn rtp_seq(&self, body: usize) -> Option<u16> {
        match self.buf.get(body..body + 4)? {
            b if looks_like_rtcp(b) => None,
            b => Some(u16::from_be_bytes([b[2], b[3]])),
        }
    }

    /// The sender SSRC of the RTP (bytes 8–11) or RTCP (bytes 4–7, RFC 3550 §6.4) packet
    /// starting at `body`, if buffered.
    fn sender_ssrc(&self, body: usize) -> Option<u32> {
        let b = self.buf.get(body..)?;
        let at = if looks_like_rtcp(b) { 4 } else { 8 };
        let s = b.get(at..at + 4)?;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn take(&mut self, hdr: usize, len: usize, channel: Option<u8>) -> TcpFrame {
        if self.cfg.expected_ssrc.is_none()
            && let Some(s) = self.sender_ssrc(hdr)
        {
            self.ssrc = Some(s);
        }
        self.max_len = self.max_len.max(len);
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

/// RFC 3550 Appendix A.2 checks on a compound RTCP packet: version 2 throughout, first packet
/// SR or RR, and the length fields add up to the whole.
fn rtcp_compound_valid(b: &[u8]) -> bool {
    if !matches!(b.get(1), Some(200 | 201)) {
        return false;
    }
    let mut rest = b;
    while let [b0, _, l0, l1, ..] = rest {
        let n = 4 * (usize::from(u16::from_be_bytes([*l0, *l1])) + 1);
        if b0 >> 6 != RTP_VERSION || n > rest.len() {
            return false;
        }
        rest = &rest[n..];
    }
    rest.is_empty()
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
        let p2 = rtp(2, 5, 20);
        d.push(&[0, 20]);
        d.push(&p2[..11]);
        assert!(
            d.poll().is_none(),
            "the next header without its SSRC is not enough"
        );
        d.push(&p2[11..12]);
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
        assert_eq!(
            drain(&mut d).len(),
            1,
            "a lone frame of another SSRC is dropped"
        );
        assert_eq!(d.stats().skipped_bytes, 22);
        let (o2, o3) = (rtp(10, 6, 20), rtp(11, 6, 20));
        for p in [&other, &o2, &o3] {
            d.push(&[0, 20]);
            d.push(p);
        }
        assert_eq!(
            drain(&mut d).len(),
            2,
            "a new SSRC continued by itself is taken"
        );
    }

    #[test]
    fn overlong_length_field_is_cut_at_the_next_packet() {
        let mut s = Vec::new();
        for seq in 1..=3 {
            let p = rtp(seq, 5, 20);
            // The second packet's prefix claims 300 bytes.
            s.extend_from_slice(&if seq == 2 { [1, 44] } else { [0, 20] });
            s.extend_from_slice(&p);
        }
        s.extend_from_slice(&[0, 20]);
        s.extend_from_slice(&rtp(4, 5, 20));
        let mut d = TcpDeframer::new();
        d.push(&s);
        let got: Vec<u16> = drain(&mut d)
            .iter()
            .map(|f| u16::from_be_bytes([f.packet[2], f.packet[3]]))
            .collect();
        assert_eq!(got, vec![1, 2, 3, 4]);
        assert!(drain(&mut d).is_empty());
        assert_eq!(d.stats().length_fixes, 1);
    }

    #[test]
    fn framing_helpers() {
        assert_eq!(frame_rfc4571(&[0; 1412]), Ok([0x05, 0x84]));
        assert_eq!(frame_rfc4571(&vec![0; 65536]), Err(FrameTooLong(65536)));
        assert_eq!(frame_interleaved(1, &[0; 3]), Ok([b'$', 1, 0, 3]));
    }
}
