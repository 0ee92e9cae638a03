//! RTP packets (RFC 3550 §5.1), parsed zero-copy over [`Bytes`] and built into a reusable
//! [`BytesMut`].
//!
//! GB/T 28181 cameras send MPEG-PS in RTP with payload type 96 at 90 kHz (2022 Annex C); some
//! send another payload type, or MPEG-TS (see [`RtpPacket::payload_looks_like_ts`]). This module
//! does not decide: it parses any version-2 packet and leaves the payload to the caller.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use media::rtp::{RtpBuilder, RtpPacket};
//!
//! let mut buf = BytesMut::new();
//! RtpBuilder::new(96, 7, 3600, 0x0bebc265).marker(true).write(b"PS bytes", &mut buf)?;
//! let pkt = RtpPacket::parse(buf.split().freeze())?;
//! assert_eq!((pkt.sequence(), pkt.timestamp(), pkt.marker()), (7, 3600, true));
//! assert_eq!(&pkt.payload()[..], b"PS bytes");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use bytes::{BufMut, Bytes, BytesMut};

/// The only RTP version in use (RFC 3550 §5.1, field V).
pub const RTP_VERSION: u8 = 2;
/// Length of the fixed RTP header (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;
/// Payload type GB/T 28181 uses for MPEG-PS (2022 Annex C; SDP `a=rtpmap:96 PS/90000`).
pub const PT_PS: u8 = 96;
/// Static payload type of G.711 µ-law, 8 kHz (RFC 3551 §6, PCMU).
pub const PT_PCMU: u8 = 0;
/// Static payload type of G.711 A-law, 8 kHz (RFC 3551 §6, PCMA).
pub const PT_PCMA: u8 = 8;
/// MPEG-TS sync byte (ISO/IEC 13818-1 §2.4.3.2).
const TS_SYNC_BYTE: u8 = 0x47;

/// Why a datagram is not a usable RTP packet. Every variant names the byte offset at which the
/// rule failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// The packet ends before a part its header announces (RFC 3550 §5.1, §5.3.1).
    #[error("RTP packet truncated: {what} needs bytes {offset}..{needed}, packet has {len}")]
    Truncated {
        /// The part that did not fit: `fixed header`, `CSRC list`, `extension header`,
        /// `extension data`.
        what: &'static str,
        /// Where that part starts.
        offset: usize,
        /// The packet length that part needs.
        needed: usize,
        /// The packet length we have.
        len: usize,
    },
    /// Field V is not 2 (RFC 3550 §5.1); byte 0.
    #[error("RTP version {version} at byte 0, expected 2")]
    BadVersion {
        /// The version found.
        version: u8,
    },
    /// The P bit is set but the last byte (the pad count, RFC 3550 §5.1) is 0 or larger than
    /// what follows the header.
    #[error(
        "RTP padding count {pad_len} at byte {offset} invalid: {available} bytes follow the header"
    )]
    BadPadding {
        /// Offset of the pad count byte (the last byte).
        offset: usize,
        /// The pad count found.
        pad_len: u8,
        /// Bytes between the end of the header (and extension) and the end of the packet.
        available: usize,
    },
}

/// The fixed RTP header (RFC 3550 §5.1), as parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RtpHeader {
    /// P bit: padding at the end of the packet.
    pub padding: bool,
    /// X bit: a header extension follows the CSRC list (RFC 3550 §5.3.1).
    pub extension: bool,
    /// CC: number of CSRC identifiers (0–15).
    pub csrc_count: u8,
    /// M bit; GB/T 28181 sets it on the last packet of a frame.
    pub marker: bool,
    /// PT (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp (90 kHz for PS video).
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Parses the 12-byte fixed header only (RFC 3550 §5.1); checks the version.
    pub fn parse_fixed(b: &[u8]) -> Result<RtpHeader, RtpError> {
        let Some(h) = b.first_chunk::<RTP_HEADER_LEN>() else {
            return Err(RtpError::Truncated {
                what: "fixed header",
                offset: 0,
                needed: RTP_HEADER_LEN,
                len: b.len(),
            });
        };
        let version = h[0] >> 6;
        if version != RTP_VERSION {
            return Err(RtpError::BadVersion { version });
        }
        Ok(RtpHeader {
            padding: h[0] & 0x20 != 0,
            extension: h[0] & 0x10 != 0,
            csrc_count: h[0] & 0x0f,
            marker: h[1] & 0x80 != 0,
            payload_type: h[1] & 0x7f,
            sequence: u16::from_be_bytes([h[2], h[3]]),
            timestamp: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            ssrc: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        })
    }
}

/// A header extension (RFC 3550 §5.3.1): a 16-bit profile-defined value and the data, whose
/// length the packet gives in 32-bit words. RFC 8285 one-/two-byte forms are profiles
/// `0xBEDE` / `0x100x`; this type does not interpret them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpExtension {
    /// "defined by profile" field.
    pub profile: u16,
    /// The extension data (a multiple of 4 bytes), a slice of the packet.
    pub data: Bytes,
}

/// A parsed RTP packet. Holds the received buffer; the payload, CSRC list and extension are
/// slices of it (no copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    header: RtpHeader,
    raw: Bytes,
    extension: Option<RtpExtension>,
    payload: Bytes,
    padding_len: u8,
}

impl RtpPacket {
    /// Parses one packet (RFC 3550 §5.1): version, CSRC list, header extension (skipped by its
    /// length, §5.3.1) and padding (pad count validated, §5.1 P bit). The payload is a slice of
    /// `raw`. Any payload type is accepted.
    pub fn parse(raw: Bytes) -> Result<RtpPacket, RtpError> {
        let header = RtpHeader::parse_fixed(&raw)?;
        let len = raw.len();
        let mut off = RTP_HEADER_LEN + 4 * usize::from(header.csrc_count);
        if len < off {
            return Err(RtpError::Truncated {
                what: "CSRC list",
                offset: RTP_HEADER_LEN,
                needed: off,
                len,
            });
        }
        let extension = if header.extension {
            let Some(&[p0, p1, l0, l1]) = raw.get(off..off + 4) else {
                return Err(RtpError::Truncated {
                    what: "extension header",
                    offset: off,
                    needed: off + 4,
                    len,
                });
            };
            let data_len = 4 * usize::from(u16::from_be_bytes([l0, l1]));
            let start = off + 4;
            let end = start + data_len;
            if len < end {
                return Err(RtpError::Truncated {
                    what: "extension data",
                    offset: start,
                    needed: end,
                    len,
                });
            }
            off = end;
            Some(RtpExtension {
                profile: u16::from_be_bytes([p0, p1]),
                data: raw.slice(start..end),
            })
        } else {
            None
        };
        let mut end = len;
        let mut padding_len = 0;
        if header.padding {
            let available = len - off;
            // `len >= RTP_HEADER_LEN` here, so `len - 1` does not underflow.
            let pad_len = raw[len - 1];
            if pad_len == 0 || usize::from(pad_len) > available {
                return Err(RtpError::BadPadding {
                    offset: len - 1,
                    pad_len,
                    available,
                });
            }
            padding_len = pad_len;
            end -= usize::from(pad_len);
        }
        let payload = raw.slice(off..end);
        Ok(RtpPacket {
            header,
            raw,
            extension,
            payload,
            padding_len,
        })
    }

    /// The fixed header.
    pub fn header(&self) -> &RtpHeader {
        &self.header
    }
    /// Sequence number (RFC 3550 §5.1).
    pub fn sequence(&self) -> u16 {
        self.header.sequence
    }
    /// RTP timestamp.
    pub fn timestamp(&self) -> u32 {
        self.header.timestamp
    }
    /// SSRC.
    pub fn ssrc(&self) -> u32 {
        self.header.ssrc
    }
    /// Marker bit.
    pub fn marker(&self) -> bool {
        self.header.marker
    }
    /// Payload type.
    pub fn payload_type(&self) -> u8 {
        self.header.payload_type
    }
    /// The contributing sources (RFC 3550 §5.1, CSRC list).
    pub fn csrcs(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        let end = RTP_HEADER_LEN + 4 * usize::from(self.header.csrc_count);
        self.raw[RTP_HEADER_LEN..end]
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
    /// The header extension, if the X bit is set.
    pub fn extension(&self) -> Option<&RtpExtension> {
        self.extension.as_ref()
    }
    /// Number of padding bytes removed from the end (0 without the P bit).
    pub fn padding_len(&self) -> u8 {
        self.padding_len
    }
    /// The payload: a slice of the received buffer, padding excluded.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }
    /// Takes the payload out of the packet.
    pub fn into_payload(self) -> Bytes {
        self.payload
    }
    /// The whole packet as received.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }
    /// True when the payload starts with the MPEG-TS sync byte 0x47 and its length is a
    /// multiple of 188 (ISO/IEC 13818-1 §2.4.3.2): some devices send TS, often with a payload
    /// type other than 96 (PROTOCOL-NOTES §9). An MPEG-PS payload starts with `00 00 01`.
    pub fn payload_looks_like_ts(&self) -> bool {
        payload_looks_like_ts(&self.payload)
    }
}

/// See [`RtpPacket::payload_looks_like_ts`].
pub fn payload_looks_like_ts(payload: &[u8]) -> bool {
    !payload.is_empty()
        && payload.len().is_multiple_of(188)
        && payload.chunks_exact(188).all(|p| p[0] == TS_SYNC_BYTE)
}

/// True when `b` looks like an RTCP packet rather than RTP: version 2 and a second byte in
/// 192–223, the packet types RFC 5761 §4 reserves so that RTP and RTCP can share a transport
/// (SR 200, RR 201, SDES 202, BYE 203, APP 204, …).
pub fn looks_like_rtcp(b: &[u8]) -> bool {
    matches!(b, [b0, b1, ..] if b0 >> 6 == RTP_VERSION && (192..=223).contains(b1))
}

/// Why a packet could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpBuildError {
    /// More than 15 CSRCs (RFC 3550 §5.1, CC is 4 bits).
    #[error("{0} CSRCs, at most 15 fit in the CC field")]
    TooManyCsrcs(usize),
    /// Payload type above 127.
    #[error("payload type {0} does not fit in 7 bits")]
    BadPayloadType(u8),
    /// Extension data not a multiple of 4 bytes or longer than 65535 words (RFC 3550 §5.3.1).
    #[error("extension data of {0} bytes is not a multiple of 4 up to 262140")]
    BadExtensionLength(usize),
}

/// Writes RTP packets (RFC 3550 §5.1) into a caller-owned [`BytesMut`] that can be reused.
///
/// Padding, when asked for, is written as `n - 1` zero bytes and the count `n` (§5.1 P bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpBuilder<'a> {
    /// M bit.
    pub marker: bool,
    /// PT (0–127).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// SSRC.
    pub ssrc: u32,
    /// CSRC list (at most 15).
    pub csrcs: &'a [u32],
    /// Header extension: profile value and data (a multiple of 4 bytes).
    pub extension: Option<(u16, &'a [u8])>,
    /// Padding bytes to append, count byte included (0 = no padding, P bit clear).
    pub padding: u8,
}

impl<'a> RtpBuilder<'a> {
    /// A packet without marker, CSRCs, extension or padding.
    pub fn new(payload_type: u8, sequence: u16, timestamp: u32, ssrc: u32) -> Self {
        RtpBuilder {
            marker: false,
            payload_type,
            sequence,
            timestamp,
            ssrc,
            csrcs: &[],
            extension: None,
            padding: 0,
        }
    }
    /// Sets the marker bit.
    pub fn marker(mut self, marker: bool) -> Self {
        self.marker = marker;
        self
    }
    /// Sets the CSRC list.
    pub fn csrcs(mut self, csrcs: &'a [u32]) -> Self {
        self.csrcs = csrcs;
        self
    }
    /// Sets a header extension.
    pub fn extension(mut self, profile: u16, data: &'a [u8]) -> Self {
        self.extension = Some((profile, data));
        self
    }
    /// Sets the padding length (count byte included).
    pub fn padding(mut self, padding: u8) -> Self {
        self.padding = padding;
        self
    }

    /// Header length (fixed header, CSRCs, extension) this builder writes.
    pub fn header_len(&self) -> usize {
        RTP_HEADER_LEN + 4 * self.csrcs.len() + self.extension.map_or(0, |(_, d)| 4 + d.len())
    }

    /// Appends the header (fixed part, CSRCs, extension) to `out`; the caller then appends
    /// the payload and, if `padding` is set, calls [`RtpBuilder::write_padding`].
    pub fn write_header(&self, out: &mut BytesMut) -> Result<(), RtpBuildError> {
        if self.csrcs.len() > 15 {
            return Err(RtpBuildError::TooManyCsrcs(self.csrcs.len()));
        }
        if self.payload_type > 127 {
            return Err(RtpBuildError::BadPayloadType(self.payload_type));
        }
        if let Some((_, d)) = self.extension
            && (!d.len().is_multiple_of(4) || d.len() / 4 > usize::from(u16::MAX))
        {
            return Err(RtpBuildError::BadExtensionLength(d.len()));
        }
        out.reserve(self.header_len());
        // csrcs.len() <= 15 was checked above.
        let cc = self.csrcs.len() as u8;
        out.put_u8(
            RTP_VERSION << 6
                | u8::from(self.padding > 0) << 5
                | u8::from(self.extension.is_some()) << 4
                | cc,
        );
        out.put_u8(u8::from(self.marker) << 7 | self.payload_type);
        out.put_u16(self.sequence);
        out.put_u32(self.timestamp);
        out.put_u32(self.ssrc);
        for c in self.csrcs {
            out.put_u32(*c);
        }
        if let Some((profile, d)) = self.extension {
            out.put_u16(profile);
            // d.len() / 4 <= u16::MAX was checked above.
            out.put_u16((d.len() / 4) as u16);
            out.put_slice(d);
        }
        Ok(())
    }

    /// Appends the padding (zeros then the count, RFC 3550 §5.1), if any.
    pub fn write_padding(&self, out: &mut BytesMut) {
        if self.padding > 0 {
            out.put_bytes(0, usize::from(self.padding) - 1);
            out.put_u8(self.padding);
        }
    }

    /// Appends a whole packet to `out`; returns its length.
    pub fn write(&self, payload: &[u8], out: &mut BytesMut) -> Result<usize, RtpBuildError> {
        let start = out.len();
        out.reserve(self.header_len() + payload.len() + usize::from(self.padding));
        self.write_header(out)?;
        out.put_slice(payload);
        self.write_padding(out);
        Ok(out.len() - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(b: RtpBuilder<'_>, payload: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        b.write(payload, &mut out).unwrap();
        out.freeze()
    }

    #[test]
    fn round_trip_with_csrc_extension_padding() {
        let raw = build(
            RtpBuilder::new(33, 65535, 0xdead_beef, 42)
                .marker(true)
                .csrcs(&[1, 2])
                .extension(0xBEDE, &[9, 9, 9, 9, 8, 8, 8, 8])
                .padding(3),
            b"hello",
        );
        assert_eq!(raw.len(), 12 + 8 + 4 + 8 + 5 + 3);
        let p = RtpPacket::parse(raw.clone()).unwrap();
        assert_eq!(p.payload_type(), 33);
        assert_eq!(p.sequence(), 65535);
        assert_eq!(p.timestamp(), 0xdead_beef);
        assert_eq!(p.ssrc(), 42);
        assert!(p.marker());
        assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![1, 2]);
        let ext = p.extension().unwrap();
        assert_eq!(ext.profile, 0xBEDE);
        assert_eq!(&ext.data[..], &[9, 9, 9, 9, 8, 8, 8, 8]);
        assert_eq!(p.padding_len(), 3);
        assert_eq!(&p.payload()[..], b"hello");
        // Zero-copy: the payload points into the received buffer.
        assert_eq!(p.payload().as_ptr(), raw[32..].as_ptr());
    }

    #[test]
    fn errors_name_offsets() {
        assert_eq!(
            RtpPacket::parse(Bytes::from_static(&[0x80; 11])),
            Err(RtpError::Truncated {
                what: "fixed header",
                offset: 0,
                needed: 12,
                len: 11
            })
        );
        let mut v = build(RtpBuilder::new(96, 1, 2, 3), b"x").to_vec();
        v[0] = 0x40;
        assert_eq!(
            RtpPacket::parse(v.into()),
            Err(RtpError::BadVersion { version: 1 })
        );
        // CC = 2 but no CSRCs.
        let mut v = build(RtpBuilder::new(96, 1, 2, 3), b"").to_vec();
        v[0] |= 2;
        assert!(matches!(
            RtpPacket::parse(v.into()),
            Err(RtpError::Truncated {
                what: "CSRC list",
                needed: 20,
                ..
            })
        ));
        // Extension announces 2 words, has 1.
        let mut v = build(RtpBuilder::new(96, 1, 2, 3).extension(1, &[0; 4]), b"").to_vec();
        v[15] = 2;
        assert!(matches!(
            RtpPacket::parse(v.into()),
            Err(RtpError::Truncated {
                what: "extension data",
                offset: 16,
                needed: 24,
                ..
            })
        ));
        // Padding count larger than the payload, and zero.
        let mut v = build(RtpBuilder::new(96, 1, 2, 3).padding(2), b"ab").to_vec();
        *v.last_mut().unwrap() = 5;
        assert_eq!(
            RtpPacket::parse(v.clone().into()),
            Err(RtpError::BadPadding {
                offset: 15,
                pad_len: 5,
                available: 4
            })
        );
        *v.last_mut().unwrap() = 0;
        assert!(matches!(
            RtpPacket::parse(v.into()),
            Err(RtpError::BadPadding { pad_len: 0, .. })
        ));
    }

    #[test]
    fn padding_may_take_whole_payload() {
        let raw = build(RtpBuilder::new(96, 1, 2, 3).padding(4), b"");
        let p = RtpPacket::parse(raw).unwrap();
        assert!(p.payload().is_empty());
        assert_eq!(p.padding_len(), 4);
    }

    #[test]
    fn builder_rejects_bad_fields() {
        let mut out = BytesMut::new();
        assert_eq!(
            RtpBuilder::new(128, 0, 0, 0).write(b"", &mut out),
            Err(RtpBuildError::BadPayloadType(128))
        );
        assert_eq!(
            RtpBuilder::new(96, 0, 0, 0)
                .csrcs(&[0; 16])
                .write(b"", &mut out),
            Err(RtpBuildError::TooManyCsrcs(16))
        );
        assert_eq!(
            RtpBuilder::new(96, 0, 0, 0)
                .extension(0, &[0; 3])
                .write(b"", &mut out),
            Err(RtpBuildError::BadExtensionLength(3))
        );
        assert!(out.is_empty());
    }

    #[test]
    fn ts_and_rtcp_detection() {
        let mut ts = vec![0u8; 376];
        ts[0] = 0x47;
        ts[188] = 0x47;
        assert!(payload_looks_like_ts(&ts));
        ts[188] = 0;
        assert!(!payload_looks_like_ts(&ts));
        assert!(!payload_looks_like_ts(&[0, 0, 1, 0xba]));
        assert!(!payload_looks_like_ts(&[]));
        assert!(looks_like_rtcp(&[0x80, 200, 0, 6]));
        assert!(!looks_like_rtcp(&[0x80, 96]));
        assert!(!looks_like_rtcp(&[0x80, 0xe0]));
    }
}
