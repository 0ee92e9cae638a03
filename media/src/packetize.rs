//! Device side: one media frame (a PS pack, or raw G.711) into RTP packets (RFC 3550 §5.1),
//! as GB/T 28181-2022 Annex C asks: every packet of a frame carries the frame's timestamp,
//! the marker bit is set on the last one, sequence numbers increase by one and wrap.
//!
//! ```
//! use bytes::BytesMut;
//! use media::packetize::RtpPacketizer;
//! use media::rtp::RtpPacket;
//!
//! let mut p = RtpPacketizer::new(0x0bebc265);
//! let mut buf = BytesMut::new();
//! let frame = vec![0u8; 3000];
//! let pkts: Vec<_> = p.packetize(3600, &frame, &mut buf).collect();
//! assert_eq!(pkts.len(), 3); // 1400 + 1400 + 200
//! let last = RtpPacket::parse(pkts[2].clone())?;
//! assert!(last.marker() && last.timestamp() == 3600 && last.sequence() == 2);
//! # Ok::<(), media::rtp::RtpError>(())
//! ```

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use crate::rtp::{PT_PCMA, PT_PCMU, PT_PS, RTP_HEADER_LEN, RTP_VERSION};

/// Default largest payload per packet: PS chunks of about 1400 bytes (PROTOCOL-NOTES §9), so
/// that a packet fits a 1500-byte MTU.
pub const DEFAULT_MAX_PAYLOAD: usize = 1400;
/// Largest payload that still fits the 16-bit RFC 4571 length prefix.
const MAX_PAYLOAD_LIMIT: usize = u16::MAX as usize - RTP_HEADER_LEN;

/// When the marker bit is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerMode {
    /// On the last packet of each frame (video and PS, GB/T 28181-2022 Annex C; RFC 3551 §4.1
    /// leaves video markers to the profile).
    EndOfFrame,
    /// On the first packet of a talkspurt (RFC 3551 §4.1, audio): the first packet sent and
    /// the first after [`RtpPacketizer::start_talkspurt`].
    Talkspurt,
}

/// Turns frames into RTP packets. Sans-IO: writes into a caller's reusable [`BytesMut`].
#[derive(Debug, Clone)]
pub struct RtpPacketizer {
    ssrc: u32,
    payload_type: u8,
    clock_rate: u32,
    max_payload: usize,
    sequence: u16,
    marker_mode: MarkerMode,
    talkspurt: bool,
    rfc4571: bool,
}

impl RtpPacketizer {
    /// A PS packetizer: payload type 96, 90 kHz, 1400-byte payloads, marker at end of frame,
    /// first sequence number 0.
    pub fn new(ssrc: u32) -> Self {
        RtpPacketizer {
            ssrc,
            payload_type: PT_PS,
            clock_rate: 90_000,
            max_payload: DEFAULT_MAX_PAYLOAD,
            sequence: 0,
            marker_mode: MarkerMode::EndOfFrame,
            talkspurt: true,
            rfc4571: false,
        }
    }

    /// A raw G.711 packetizer for voice broadcast (RFC 3551 §4.5.14, §6): PCMA (PT 8) or
    /// PCMU (PT 0), 8 kHz, talkspurt markers. One frame (say 20 ms = 160 bytes) per packet.
    pub fn g711(ssrc: u32, a_law: bool) -> Self {
        RtpPacketizer {
            payload_type: if a_law { PT_PCMA } else { PT_PCMU },
            clock_rate: 8000,
            marker_mode: MarkerMode::Talkspurt,
            ..Self::new(ssrc)
        }
    }

    /// Sets the payload type (7 bits; higher bits are dropped).
    pub fn with_payload_type(mut self, pt: u8) -> Self {
        self.payload_type = pt & 0x7f;
        self
    }
    /// Sets the clock rate used by [`RtpPacketizer::ticks`].
    pub fn with_clock_rate(mut self, hz: u32) -> Self {
        self.clock_rate = hz;
        self
    }
    /// Sets the largest payload per packet (1 to 65523).
    pub fn with_max_payload(mut self, n: usize) -> Self {
        self.max_payload = n.clamp(1, MAX_PAYLOAD_LIMIT);
        self
    }
    /// Sets the next sequence number (RFC 3550 §5.1 recommends a random start).
    pub fn with_sequence(mut self, seq: u16) -> Self {
        self.sequence = seq;
        self
    }
    /// Prefixes every packet with its RFC 4571 §2 length, for RTP over TCP.
    pub fn with_rfc4571(mut self, on: bool) -> Self {
        self.rfc4571 = on;
        self
    }
    /// Sets the marker policy.
    pub fn with_marker_mode(mut self, m: MarkerMode) -> Self {
        self.marker_mode = m;
        self
    }

    /// The sequence number the next packet will carry.
    pub fn sequence(&self) -> u16 {
        self.sequence
    }
    /// The SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }
    /// The clock rate.
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }
    /// `d` in clock ticks, modulo 2^32 (add to a start timestamp).
    pub fn ticks(&self, d: Duration) -> u32 {
        (d.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as u32
    }
    /// With [`MarkerMode::Talkspurt`], marks the next packet (after silence).
    pub fn start_talkspurt(&mut self) {
        self.talkspurt = true;
    }

    /// Packetizes one frame. See [`RtpPacketizer::packetize_chunks`].
    pub fn packetize(&mut self, timestamp: u32, frame: &[u8], out: &mut BytesMut) -> Packets {
        self.packetize_chunks(timestamp, &[frame], out)
    }

    /// Packetizes one frame given as chunks (for example the PES pieces of a PS pack) with
    /// the frame's RTP timestamp. The packets are written back to back (each with its length
    /// prefix when [`RtpPacketizer::with_rfc4571`] is on) into `out`, which is then split off:
    /// reuse `out` for the next frame, and once the packets are dropped its memory is reused.
    /// An empty frame gives no packet.
    pub fn packetize_chunks<B: AsRef<[u8]>>(
        &mut self,
        timestamp: u32,
        chunks: &[B],
        out: &mut BytesMut,
    ) -> Packets {
        let total: usize = chunks.iter().map(|c| c.as_ref().len()).sum();
        let count = total.div_ceil(self.max_payload);
        let prefix = if self.rfc4571 { 2 } else { 0 };
        out.reserve(total + count * (prefix + RTP_HEADER_LEN));
        let mut chunks = chunks.iter().map(AsRef::as_ref).filter(|c| !c.is_empty());
        let mut cur: &[u8] = &[];
        let mut left = total;
        for i in 0..count {
            let n = left.min(self.max_payload);
            left -= n;
            let marker = match self.marker_mode {
                MarkerMode::EndOfFrame => i + 1 == count,
                MarkerMode::Talkspurt => std::mem::take(&mut self.talkspurt),
            };
            if self.rfc4571 {
                // n <= MAX_PAYLOAD_LIMIT, so the packet length fits 16 bits.
                out.put_u16((RTP_HEADER_LEN + n) as u16);
            }
            out.put_u8(RTP_VERSION << 6);
            out.put_u8(u8::from(marker) << 7 | self.payload_type);
            out.put_u16(self.sequence);
            out.put_u32(timestamp);
            out.put_u32(self.ssrc);
            self.sequence = self.sequence.wrapping_add(1);
            let mut need = n;
            while need > 0 {
                if cur.is_empty() {
                    // `total` counted every chunk, so one remains while `need > 0`.
                    let Some(next) = chunks.next() else { break };
                    cur = next;
                }
                let k = need.min(cur.len());
                out.put_slice(&cur[..k]);
                cur = &cur[k..];
                need -= k;
            }
        }
        Packets {
            data: out.split().freeze(),
            prefix,
            max_payload: self.max_payload,
            left: total,
            count,
        }
    }
}

/// The packets of one frame: written back to back in one buffer; iterate to get each as a
/// [`Bytes`] slice of it (no copy).
#[derive(Debug, Clone)]
pub struct Packets {
    data: Bytes,
    prefix: usize,
    max_payload: usize,
    left: usize,
    count: usize,
}

impl Packets {
    /// All remaining packets as written, back to back (with their RFC 4571 prefixes when
    /// enabled): one write to a TCP socket.
    pub fn wire(&self) -> &Bytes {
        &self.data
    }
}

impl Iterator for Packets {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.count == 0 {
            return None;
        }
        let n = self.left.min(self.max_payload);
        self.left -= n;
        self.count -= 1;
        let len = (self.prefix + RTP_HEADER_LEN + n).min(self.data.len());
        Some(self.data.split_to(len))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.count, Some(self.count))
    }
}

impl ExactSizeIterator for Packets {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpPacket;
    use crate::tcp::TcpDeframer;

    #[test]
    fn chunks_are_split_across_packets() {
        let mut p = RtpPacketizer::new(5)
            .with_max_payload(4)
            .with_sequence(65535);
        let mut buf = BytesMut::new();
        let chunks: [&[u8]; 3] = [b"abc", b"", b"defghij"];
        let pkts: Vec<_> = p
            .packetize_chunks(90, &chunks, &mut buf)
            .map(|b| RtpPacket::parse(b).unwrap())
            .collect();
        let got: Vec<_> = pkts
            .iter()
            .map(|k| (k.sequence(), k.marker(), &k.payload()[..]))
            .collect();
        assert_eq!(
            got,
            vec![
                (65535, false, &b"abcd"[..]),
                (0, false, b"efgh"),
                (1, true, b"ij")
            ]
        );
        assert!(pkts.iter().all(|k| k.timestamp() == 90 && k.ssrc() == 5));
        assert_eq!(p.sequence(), 2);
    }

    #[test]
    fn rfc4571_output_deframes() {
        let mut p = RtpPacketizer::new(5).with_rfc4571(true);
        let mut buf = BytesMut::new();
        let frame = vec![7u8; 5000];
        let pk = p.packetize(0, &frame, &mut buf);
        assert_eq!(pk.len(), 4);
        let mut d = TcpDeframer::new();
        d.push(pk.wire());
        d.push(&[0, 12, 0x80]); // the start of a next frame confirms the last one
        let n = std::iter::from_fn(|| d.poll()).count();
        assert_eq!(n, 4);
        let pieces: Vec<_> = pk.collect();
        assert_eq!(&pieces[0][..2], &[0x05, 0x84]);
    }

    #[test]
    fn g711_talkspurt_marker_and_ticks() {
        let mut p = RtpPacketizer::g711(1, true);
        assert_eq!(p.ticks(Duration::from_millis(20)), 160);
        let mut buf = BytesMut::new();
        let marks: Vec<bool> = (0..3)
            .flat_map(|i| {
                if i == 2 {
                    p.start_talkspurt();
                }
                p.packetize(i * 160, &[0xd5; 160], &mut buf)
                    .collect::<Vec<_>>()
            })
            .map(|b| RtpPacket::parse(b).unwrap())
            .inspect(|k| assert_eq!((k.payload_type(), k.payload().len()), (8, 160)))
            .map(|k| k.marker())
            .collect();
        assert_eq!(marks, vec![true, false, true]);
    }

    #[test]
    fn empty_frame_gives_nothing() {
        let mut p = RtpPacketizer::new(5);
        let mut buf = BytesMut::new();
        assert_eq!(p.packetize(0, &[], &mut buf).count(), 0);
        assert_eq!(p.sequence(), 0);
    }
}
