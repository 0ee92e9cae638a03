//! PES packet header (ISO/IEC 13818-1 §2.4.3.6–2.4.3.7, Table 2-21; MPEG-1 syntax: ISO/IEC
//! 11172-1 §2.4.3.3) and PTS/DTS encoding.

use super::{Error, need};
use bytes::BufMut;

/// A parsed PES header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PesHeader {
    /// `stream_id`.
    pub stream_id: u8,
    /// `PES_packet_length`: bytes after this field; 0 = unbounded (video).
    pub packet_length: u16,
    /// Bytes from the start code to the first payload byte.
    pub header_len: usize,
    /// Presentation time stamp, 90 kHz.
    pub pts: Option<u64>,
    /// Decoding time stamp, 90 kHz.
    pub dts: Option<u64>,
    /// `data_alignment_indicator`.
    pub data_alignment: bool,
    /// MPEG-1 header syntax.
    pub mpeg1: bool,
}

impl PesHeader {
    /// Payload bytes the packet declares (`None` for `PES_packet_length` 0).
    pub fn payload_len(&self) -> Option<usize> {
        if self.packet_length == 0 {
            None
        } else {
            Some(6 + usize::from(self.packet_length) - self.header_len)
        }
    }
}

/// Stream ids whose PES packets carry no optional header (Table 2-21 condition): PSM, padding,
/// private_stream_2, ECM, EMM, DSMCC, H.222.1 type E, directory.
pub fn has_no_optional_header(stream_id: u8) -> bool {
    matches!(
        stream_id,
        0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF
    )
}

/// Parses the PES header at the start of `data` (`00 00 01 sid`). Both MPEG-2 and MPEG-1
/// syntax are accepted.
///
/// ```
/// use media::ps::pes::{parse, write_header};
/// let mut v = Vec::new();
/// write_header(&mut v, 0xE0, 100, Some(90000), None, true);
/// let h = parse(&v).unwrap();
/// assert_eq!((h.pts, h.payload_len()), (Some(90000), Some(100)));
/// ```
pub fn parse(data: &[u8]) -> Result<PesHeader, Error> {
    need(data, 6)?;
    if data[..3] != [0, 0, 1] || data[3] < 0xBC {
        return Err(Error::Invalid {
            what: "packet_start_code_prefix",
            offset: 0,
        });
    }
    let stream_id = data[3];
    let packet_length = u16::from_be_bytes([data[4], data[5]]);
    let mut h = PesHeader {
        stream_id,
        packet_length,
        header_len: 6,
        pts: None,
        dts: None,
        data_alignment: false,
        mpeg1: false,
    };
    if has_no_optional_header(stream_id) {
        return Ok(h);
    }
    need(data, 7)?;
    if data[6] & 0xC0 == 0x80 {
        need(data, 9)?;
        h.data_alignment = data[6] & 0x04 != 0;
        let flags = data[7] >> 6;
        h.header_len = 9 + usize::from(data[8]);
        let needed = match flags {
            0b10 => 14,
            0b11 => 19,
            0b00 => 9,
            _ => {
                return Err(Error::Invalid {
                    what: "PTS_DTS_flags '01'",
                    offset: 7,
                });
            }
        };
        if needed > h.header_len {
            return Err(Error::Invalid {
                what: "PES_header_data_length",
                offset: 8,
            });
        }
        need(data, h.header_len)?;
        if flags & 0b10 != 0 {
            h.pts = Some(read_ts(&data[9..14]));
        }
        if flags == 0b11 {
            h.dts = Some(read_ts(&data[14..19]));
        }
    } else {
        parse_mpeg1(data, &mut h)?;
    }
    if packet_length != 0 && h.header_len > 6 + usize::from(packet_length) {
        return Err(Error::Invalid {
            what: "PES_packet_length shorter than the header",
            offset: 4,
        });
    }
    Ok(h)
}

/// MPEG-1 packet header after the length: stuffing 0xFF × ≤ 16, optional STD buffer fields,
/// then PTS, PTS+DTS or `0000 1111`.
fn parse_mpeg1(data: &[u8], h: &mut PesHeader) -> Result<(), Error> {
    h.mpeg1 = true;
    let mut pos = 6;
    let mut stuffing = 0;
    loop {
        need(data, pos + 1)?;
        if data[pos] != 0xFF {
            break;
        }
        stuffing += 1;
        pos += 1;
        if stuffing > 16 {
            return Err(Error::Invalid {
                what: "MPEG-1 stuffing_byte count",
                offset: pos,
            });
        }
    }
    if data[pos] & 0xC0 == 0x40 {
        pos += 2; // '01' STD_buffer_scale STD_buffer_size
        need(data, pos + 1)?;
    }
    let b = data[pos];
    match b >> 4 {
        0b0010 => {
            need(data, pos + 5)?;
            h.pts = Some(read_ts(&data[pos..pos + 5]));
            pos += 5;
        }
        0b0011 => {
            need(data, pos + 10)?;
            h.pts = Some(read_ts(&data[pos..pos + 5]));
            h.dts = Some(read_ts(&data[pos + 5..pos + 10]));
            pos += 10;
        }
        _ if b == 0x0F => pos += 1,
        _ => {
            return Err(Error::Invalid {
                what: "MPEG-1 packet header",
                offset: pos,
            });
        }
    }
    h.header_len = pos;
    Ok(())
}

/// Reads a 33-bit time stamp from its 5-byte form (§2.4.3.7). Marker bits are not checked:
/// cameras get them wrong.
pub fn read_ts(b: &[u8]) -> u64 {
    (u64::from(b[0] >> 1 & 7) << 30)
        | (u64::from(b[1]) << 22)
        | (u64::from(b[2] >> 1) << 15)
        | (u64::from(b[3]) << 7)
        | u64::from(b[4] >> 1)
}

/// Writes a 33-bit time stamp with a 4-bit prefix (`0010` PTS only, `0011` PTS of a pair,
/// `0001` DTS).
pub fn write_ts(out: &mut impl BufMut, prefix: u8, ts: u64) {
    let t = ts & ((1 << 33) - 1);
    out.put_slice(&[
        (prefix << 4) | ((t >> 29) as u8 & 0x0e) | 1,
        (t >> 22) as u8,
        ((t >> 14) as u8 & 0xfe) | 1,
        (t >> 7) as u8,
        ((t << 1) as u8) | 1,
    ]);
}

/// Writes an MPEG-2 PES header for `payload_len` bytes (`PES_packet_length` is computed; the
/// caller keeps it ≤ 65535). `aligned` sets `data_alignment_indicator` (the first PES of a
/// frame, `0x84` in PROTOCOL-NOTES §9). A DTS is written only with a PTS.
pub fn write_header(
    out: &mut impl BufMut,
    stream_id: u8,
    payload_len: usize,
    pts: Option<u64>,
    dts: Option<u64>,
    aligned: bool,
) {
    let dts = if pts.is_some() { dts } else { None };
    let hdr_data = match (pts, dts) {
        (Some(_), Some(_)) => 10,
        (Some(_), None) => 5,
        _ => 0,
    };
    let packet_length = (3 + hdr_data + payload_len).min(0xFFFF) as u16;
    out.put_slice(&[0, 0, 1, stream_id]);
    out.put_u16(packet_length);
    out.put_u8(if aligned { 0x84 } else { 0x80 });
    out.put_u8(match hdr_data {
        10 => 0xC0,
        5 => 0x80,
        _ => 0,
    });
    out.put_u8(hdr_data as u8);
    match (pts, dts) {
        (Some(p), Some(d)) => {
            write_ts(out, 0b0011, p);
            write_ts(out, 0b0001, d);
        }
        (Some(p), None) => write_ts(out, 0b0010, p),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_round_trip() {
        for ts in [0u64, 1, 3600, 0x1_ffff_ffff, 0x1_0000_0000, 95652000] {
            let mut v = Vec::new();
            write_ts(&mut v, 2, ts);
            assert_eq!(read_ts(&v), ts);
        }
    }

    #[test]
    fn pts_dts_header() {
        let mut v = Vec::new();
        write_header(&mut v, 0xE0, 10, Some(7200), Some(3600), false);
        let h = parse(&v).unwrap();
        assert_eq!(
            (h.pts, h.dts, h.header_len, h.payload_len()),
            (Some(7200), Some(3600), 19, Some(10))
        );
    }

    #[test]
    fn gb28181_tool_audio_pes() {
        // Audio_G711_PS2.mpg offset 0x3e: PTS+DTS, 80-byte payload.
        let d = [
            0, 0, 1, 0xc0, 0, 0x5d, 0x84, 0xc0, 0x0a, 0x31, 0x02, 0xab, 0xf5, 0xe1, 0x11, 0x02,
            0xab, 0xd9, 0xc1,
        ];
        let h = parse(&d).unwrap();
        assert_eq!(h.payload_len(), Some(80));
        assert!(h.pts.is_some() && h.dts.is_some());
    }

    #[test]
    fn mpeg1_syntax() {
        // stuffing, STD buffer, PTS
        let d = [
            0, 0, 1, 0xc0, 0, 20, 0xff, 0xff, 0x40, 0x20, 0x21, 0, 1, 0, 1,
        ];
        let h = parse(&d).unwrap();
        assert!(h.mpeg1);
        assert_eq!(h.header_len, 15);
        assert_eq!(h.pts, Some(0));
        let none = [0, 0, 1, 0xc0, 0, 5, 0x0f];
        assert_eq!(parse(&none).unwrap().header_len, 7);
        assert!(parse(&[0, 0, 1, 0xc0, 0, 5, 0x55]).is_err());
    }

    #[test]
    fn private_and_padding_have_no_optional_header() {
        let h = parse(&[0, 0, 1, 0xbe, 0, 4]).unwrap();
        assert_eq!(h.payload_len(), Some(4));
        assert!(parse(&[0, 0, 1, 0xe0, 0, 2, 0x80, 0x80, 5]).is_err());
    }
}
