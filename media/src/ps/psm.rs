//! Program stream map (ISO/IEC 13818-1 §2.5.4, Table 2-41) and its CRC_32 (Annex A).
//!
//! GB/T 28181 stream types (Annex C): 0x10 MPEG-4, 0x1B H.264, 0x24 H.265, 0x80 SVAC video,
//! 0x90 G.711A, 0x91 G.711U, 0x92 G.722.1, 0x93 G.723.1, 0x99 G.729, 0x9B SVAC audio, 0x0F AAC
//! (see [`crate::Codec::from_stream_type`]).

use super::{Error, need};
use bytes::BufMut;

/// One elementary stream of the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PsmEntry {
    /// `stream_type`.
    pub stream_type: u8,
    /// `elementary_stream_id`.
    pub stream_id: u8,
}

/// A parsed program stream map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Psm {
    /// `program_stream_map_version`.
    pub version: u8,
    /// The elementary streams.
    pub entries: Vec<PsmEntry>,
    /// The declared lengths did not add up; entries were read up to the CRC (Tiandy, test tool).
    pub length_mismatch: bool,
    /// The CRC_32 matched.
    pub crc_ok: bool,
    /// Bytes from the start code to the end of the CRC.
    pub len: usize,
}

/// Parses a PSM at the start of `data` (`00 00 01 BC`).
///
/// `program_stream_map_length` is trusted (it is where the CRC is); the inner lengths are
/// checked against it and, when they disagree, entries are read up to the CRC: the
/// `Audio_G711_PS2.mpg` file of the GB28181 test tool declares an `elementary_stream_map_length`
/// of 8 while its two entries take 14 bytes.
pub fn parse(data: &[u8]) -> Result<Psm, Error> {
    need(data, 6)?;
    let len = 6 + usize::from(u16::from_be_bytes([data[4], data[5]]));
    need(data, len)?;
    if len < 16 {
        return Err(Error::Invalid {
            what: "program_stream_map_length",
            offset: 4,
        });
    }
    let crc_at = len - 4;
    let version = data[6] & 0x1f;
    let info_len = usize::from(u16::from_be_bytes([data[8], data[9]]));
    let mut mismatch = false;
    let mut pos = 10 + info_len;
    if pos + 2 > crc_at {
        // program_stream_info_length overruns the map: assume no descriptors.
        mismatch = true;
        pos = 10;
    }
    let map_len = usize::from(u16::from_be_bytes([data[pos], data[pos + 1]]));
    pos += 2;
    let declared_end = pos + map_len;
    if declared_end != crc_at {
        mismatch = true;
    }
    let mut entries: Vec<PsmEntry> = Vec::new();
    let mut last_entry = pos;
    while pos + 4 <= crc_at {
        last_entry = pos;
        let e = &data[pos..pos + 4];
        let es_info = usize::from(u16::from_be_bytes([e[2], e[3]]));
        if !is_es_id(e[1]) {
            mismatch = true;
            break;
        }
        entries.push(PsmEntry {
            stream_type: e[0],
            stream_id: e[1],
        });
        pos += 4 + es_info;
        if pos > crc_at {
            mismatch = true;
            break;
        }
    }
    if pos != crc_at {
        mismatch = true;
        // An ES_info_length overran (Tiandy): look for further entries of a known stream type
        // and a valid stream id after the one that broke the count.
        let mut i = last_entry + 4;
        while i + 4 <= crc_at {
            let (t, id) = (data[i], data[i + 1]);
            if !matches!(crate::Codec::from_stream_type(t), crate::Codec::Unknown(_))
                && (0xC0..=0xEF).contains(&id)
                && data[i + 2..i + 4] == [0, 0]
                && !entries.iter().any(|e| e.stream_id == id)
            {
                entries.push(PsmEntry {
                    stream_type: t,
                    stream_id: id,
                });
                i += 4;
            } else {
                i += 1;
            }
        }
    }
    let crc_ok = crc32_mpeg2(&data[..len]) == 0;
    Ok(Psm {
        version,
        entries,
        length_mismatch: mismatch,
        crc_ok,
        len,
    })
}

fn is_es_id(id: u8) -> bool {
    matches!(id, 0xBD | 0xBF | 0xC0..=0xEF | 0xFA..=0xFD)
}

/// Writes a PSM listing `entries` with no descriptors, `current_next_indicator` 1, and a correct
/// CRC_32.
pub fn write(out: &mut impl BufMut, version: u8, entries: &[PsmEntry]) {
    let mut buf = [0u8; 16 + 4 * 16];
    let n = entries.len().min(16);
    let map_len = 4 * n;
    let len = 2 + 2 + 2 + map_len + 4; // after the length field
    buf[..4].copy_from_slice(&[0, 0, 1, 0xBC]);
    buf[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    buf[6] = 0x80 | 0x60 | (version & 0x1f);
    buf[7] = 0xff; // reserved, marker_bit
    buf[8..10].copy_from_slice(&[0, 0]);
    buf[10..12].copy_from_slice(&(map_len as u16).to_be_bytes());
    for (i, e) in entries.iter().take(n).enumerate() {
        buf[12 + 4 * i..16 + 4 * i].copy_from_slice(&[e.stream_type, e.stream_id, 0, 0]);
    }
    let crc_at = 12 + map_len;
    let crc = crc32_mpeg2(&buf[..crc_at]);
    buf[crc_at..crc_at + 4].copy_from_slice(&crc.to_be_bytes());
    out.put_slice(&buf[..crc_at + 4]);
}

/// CRC-32/MPEG-2 (polynomial 0x04C11DB7, initial 0xFFFFFFFF, no reflection, no final xor),
/// Annex A. Over a section including its CRC the result is 0.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc = (crc << 8) ^ CRC_TABLE[(((crc >> 24) as u8) ^ b) as usize];
    }
    crc
}

static CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut k = 0;
        while k < 8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04C1_1DB7
            } else {
                c << 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_check_value() {
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
    }

    #[test]
    fn write_parse() {
        let entries = [
            PsmEntry {
                stream_type: 0x1b,
                stream_id: 0xe0,
            },
            PsmEntry {
                stream_type: 0x90,
                stream_id: 0xc0,
            },
        ];
        let mut v = Vec::new();
        write(&mut v, 3, &entries);
        let p = parse(&v).unwrap();
        assert_eq!(p.entries, entries);
        assert!(p.crc_ok && !p.length_mismatch);
        assert_eq!(p.version, 3);
        assert_eq!(p.len, v.len());
    }

    #[test]
    fn gb28181_test_tool_map_length_8_for_14() {
        // Audio_G711_PS2.mpg offset 0x20.
        let d = [
            0, 0, 1, 0xbc, 0, 0x18, 0xe1, 0xff, 0, 0, 0, 8, 0x1b, 0xe0, 0, 6, 0x0a, 4, b'e', b'n',
            b'g', 0, 0x90, 0xc0, 0, 0, 0x2e, 0xb9, 0x0f, 0x3d,
        ];
        let p = parse(&d).unwrap();
        assert!(p.length_mismatch);
        assert_eq!(
            p.entries,
            [
                PsmEntry {
                    stream_type: 0x1b,
                    stream_id: 0xe0
                },
                PsmEntry {
                    stream_type: 0x90,
                    stream_id: 0xc0
                }
            ]
        );
    }

    #[test]
    fn es_info_length_overrun_recovers_later_entries() {
        // H.264 entry claims 0x20 bytes of descriptors, only 2 follow; then a G.711A entry.
        let mut d = vec![
            0, 0, 1, 0xbc, 0, 20, 0xe0, 0xff, 0, 0, 0, 10, 0x1b, 0xe0, 0, 0x20, 0x0a, 0x00, 0x90,
            0xc0, 0, 0,
        ];
        let crc = crc32_mpeg2(&d);
        d.extend_from_slice(&crc.to_be_bytes());
        let p = parse(&d).unwrap();
        assert!(p.length_mismatch && p.crc_ok);
        assert_eq!(
            p.entries,
            [
                PsmEntry {
                    stream_type: 0x1b,
                    stream_id: 0xe0
                },
                PsmEntry {
                    stream_type: 0x90,
                    stream_id: 0xc0
                }
            ]
        );
    }

    #[test]
    fn hikvision_map_with_hk_descriptors() {
        let d: &[u8] = &[
            0, 0, 1, 0xbc, 0x00, 0x5e, 0xe0, 0xff, 0x00, 0x24, 0x40, 0x0e, 0x48, 0x4b, 0x01, 0x00,
            0x16, 0x9f, 0x21, 0xb6, 0x6b, 0x77, 0x00, 0xff, 0xff, 0xff, 0x41, 0x12, 0x48, 0x4b,
            0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
            0x0e, 0x0f, 0x00, 0x30, 0x1b, 0xe0, 0x00, 0x1c, 0x42, 0x0e, 0x07, 0x10, 0x10, 0xea,
            0x0a, 0x00, 0x05, 0xa0, 0x11, 0x30, 0x00, 0x00, 0x1c, 0x21, 0x2a, 0x0a, 0x7f, 0xff,
            0x00, 0x00, 0x07, 0x08, 0x1f, 0xfe, 0x40, 0xb4, 0x0f, 0xc0, 0x00, 0x0c, 0x43, 0x0a,
            0x00, 0x90, 0xfe, 0x02, 0xb1, 0x13, 0x01, 0xf4, 0x03, 0xff, 0x51, 0x2b, 0xe5, 0x9b,
        ];
        let p = parse(d).unwrap();
        assert!(!p.length_mismatch);
        assert_eq!(p.entries.len(), 2);
        assert_eq!(
            p.entries[1],
            PsmEntry {
                stream_type: 0x0f,
                stream_id: 0xc0
            }
        );
    }
}
