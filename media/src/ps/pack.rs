//! Pack header (ISO/IEC 13818-1 §2.5.3.3, Table 2-38; MPEG-1: ISO/IEC 11172-1 §2.4.3.2).

use super::{Error, need};
use bytes::BufMut;

/// A parsed pack header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackHeader {
    /// System clock reference base, 90 kHz, 33 bits.
    pub scr_base: u64,
    /// SCR extension, 27 MHz remainder (0 for MPEG-1).
    pub scr_ext: u16,
    /// `program_mux_rate` in units of 50 bytes/s.
    pub mux_rate: u32,
    /// MPEG-1 syntax (`0010` after the start code).
    pub mpeg1: bool,
    /// Only the start code was there (Hikvision H.265, see [`super::Quirk::BarePackHeader`]).
    pub bare: bool,
    /// `pack_stuffing_length`.
    pub stuffing: u8,
    /// Some stuffing bytes are not 0xFF (vendor counters).
    pub stuffing_not_ff: bool,
    /// Bytes from the start code to the next start code, stuffing included.
    pub len: usize,
}

/// Parses the pack header at the start of `data` (which begins with `00 00 01 BA`).
///
/// Stuffing is skipped by `pack_stuffing_length`, never by looking for the next start code.
///
/// ```
/// use media::ps::pack::{parse, write};
/// let mut buf = Vec::new();
/// write(&mut buf, 3600, 6106, &[0xff; 2]);
/// let h = parse(&buf).unwrap();
/// assert_eq!((h.scr_base, h.mux_rate, h.len), (3600, 6106, 16));
/// ```
pub fn parse(data: &[u8]) -> Result<PackHeader, Error> {
    need(data, 5)?;
    if data[..4] != [0, 0, 1, 0xBA] {
        return Err(Error::Invalid {
            what: "pack_start_code",
            offset: 0,
        });
    }
    let b4 = data[4];
    if b4 == 0 {
        need(data, 8)?;
        if data[4..7] == [0, 0, 1] {
            return Ok(PackHeader {
                scr_base: 0,
                scr_ext: 0,
                mux_rate: 0,
                mpeg1: false,
                bare: true,
                stuffing: 0,
                stuffing_not_ff: false,
                len: 4,
            });
        }
    }
    if b4 >> 6 == 0b01 {
        need(data, 14)?;
        let b = &data[4..14];
        let scr_base = (u64::from(b[0] >> 3 & 7) << 30)
            | (u64::from(b[0] & 3) << 28)
            | (u64::from(b[1]) << 20)
            | (u64::from(b[2] >> 3) << 15)
            | (u64::from(b[2] & 3) << 13)
            | (u64::from(b[3]) << 5)
            | u64::from(b[4] >> 3);
        let scr_ext = (u16::from(b[4] & 3) << 7) | u16::from(b[5] >> 1);
        let mux_rate = (u32::from(b[6]) << 14) | (u32::from(b[7]) << 6) | u32::from(b[8] >> 2);
        let stuffing = b[9] & 7;
        let len = 14 + usize::from(stuffing);
        need(data, len)?;
        let stuffing_not_ff = data[14..len].iter().any(|&x| x != 0xff);
        Ok(PackHeader {
            scr_base,
            scr_ext,
            mux_rate,
            mpeg1: false,
            bare: false,
            stuffing,
            stuffing_not_ff,
            len,
        })
    } else if b4 >> 4 == 0b0010 {
        need(data, 12)?;
        let b = &data[4..12];
        let scr_base = (u64::from(b[0] >> 1 & 7) << 30)
            | (u64::from(b[1]) << 22)
            | (u64::from(b[2] >> 1) << 15)
            | (u64::from(b[3]) << 7)
            | u64::from(b[4] >> 1);
        let mux_rate =
            (u32::from(b[5] & 0x7f) << 15) | (u32::from(b[6]) << 7) | u32::from(b[7] >> 1);
        Ok(PackHeader {
            scr_base,
            scr_ext: 0,
            mux_rate,
            mpeg1: true,
            bare: false,
            stuffing: 0,
            stuffing_not_ff: false,
            len: 12,
        })
    } else {
        Err(Error::Invalid {
            what: "pack header '01' marker",
            offset: 4,
        })
    }
}

/// Writes an MPEG-2 pack header with `scr_base` (90 kHz), SCR extension 0, `mux_rate` (50 B/s
/// units) and up to 7 stuffing bytes.
pub fn write(out: &mut impl BufMut, scr_base: u64, mux_rate: u32, stuffing: &[u8]) {
    let s = scr_base & ((1 << 33) - 1);
    let ext = 0u16;
    let m = mux_rate & 0x3f_ffff;
    let stuffing = &stuffing[..stuffing.len().min(7)];
    out.put_slice(&[
        0,
        0,
        1,
        0xBA,
        0x44 | ((s >> 27) as u8 & 0x38) | ((s >> 28) as u8 & 3),
        (s >> 20) as u8,
        ((s >> 12) as u8 & 0xf8) | 0x04 | ((s >> 13) as u8 & 3),
        (s >> 5) as u8,
        ((s << 3) as u8 & 0xf8) | 0x04 | ((ext >> 7) as u8 & 3),
        ((ext << 1) as u8) | 1,
        (m >> 14) as u8,
        (m >> 6) as u8,
        ((m << 2) as u8) | 3,
        0xf8 | stuffing.len() as u8,
    ]);
    out.put_slice(stuffing);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hikvision_stuffing_skipped_by_length() {
        // From srs_ps_payloads_seq31813-31914_filler.ps: 6 stuffing bytes `ff ff 01 78 46 c7`.
        let d = [
            0, 0, 1, 0xba, 0x56, 0x29, 0xb6, 0x04, 0xd4, 0x01, 0x09, 0xc3, 0x47, 0xfe, 0xff, 0xff,
            0x01, 0x78, 0x46, 0xc7, 0, 0, 1, 0xbb,
        ];
        let h = parse(&d).unwrap();
        assert_eq!(h.len, 20);
        assert!(h.stuffing_not_ff);
        assert_eq!(h.mux_rate, (0x09 << 14) | (0xc3 << 6) | (0x47 >> 2));
    }

    #[test]
    fn scr_round_trip_all_bits() {
        for scr in [0, 1, 0x1_ffff_ffff, 0x1_2345_6789, 90000 * 3600] {
            let mut v = Vec::new();
            write(&mut v, scr, 0x3f_ffff, &[]);
            let h = parse(&v).unwrap();
            assert_eq!((h.scr_base, h.mux_rate, h.len), (scr, 0x3f_ffff, 14));
        }
    }

    #[test]
    fn mpeg1_and_bare() {
        let m1 = [0, 0, 1, 0xba, 0x21, 0, 1, 0, 1, 0x80, 0x1b, 0x83];
        let h = parse(&m1).unwrap();
        assert!(h.mpeg1);
        assert_eq!(h.len, 12);
        let bare = [0, 0, 1, 0xba, 0, 0, 1, 0xe0];
        assert!(parse(&bare).unwrap().bare);
        assert!(matches!(
            parse(&bare[..6]),
            Err(Error::Incomplete { needed: 8 })
        ));
        assert!(parse(&[0, 0, 1, 0xba, 0xff]).is_err());
    }
}
