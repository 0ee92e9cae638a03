//! System header (ISO/IEC 13818-1 §2.5.3.5, Table 2-40).

use super::{Error, need};
use bytes::BufMut;

/// One `stream_id` entry of the system header: its P-STD buffer bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamBound {
    /// `stream_id` (0xE0 video, 0xC0 audio, …).
    pub stream_id: u8,
    /// `P-STD_buffer_bound_scale`: 1 → units of 1024 bytes, 0 → 128 bytes.
    pub scale_1024: bool,
    /// `P-STD_buffer_size_bound` (13 bits).
    pub size_bound: u16,
}

/// A parsed system header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemHeader {
    /// `rate_bound`, 50 bytes/s units.
    pub rate_bound: u32,
    /// `audio_bound`.
    pub audio_bound: u8,
    /// `video_bound`.
    pub video_bound: u8,
    /// Per-stream buffer bounds.
    pub streams: Vec<StreamBound>,
    /// Bytes from the start code to the end of the header.
    pub len: usize,
}

/// Parses the system header at the start of `data` (`00 00 01 BB`).
pub fn parse(data: &[u8]) -> Result<SystemHeader, Error> {
    need(data, 6)?;
    let len = 6 + usize::from(u16::from_be_bytes([data[4], data[5]]));
    need(data, len)?;
    if len < 12 {
        return Err(Error::Invalid {
            what: "system header_length",
            offset: 4,
        });
    }
    let b = &data[6..len];
    let rate_bound = (u32::from(b[0] & 0x7f) << 15) | (u32::from(b[1]) << 7) | u32::from(b[2] >> 1);
    let audio_bound = b[3] >> 2;
    let video_bound = b[4] & 0x1f;
    let streams = b[6..]
        .chunks_exact(3)
        .filter(|e| e[0] & 0x80 != 0)
        .map(|e| StreamBound {
            stream_id: e[0],
            scale_1024: e[1] & 0x20 != 0,
            size_bound: (u16::from(e[1] & 0x1f) << 8) | u16::from(e[2]),
        })
        .collect();
    Ok(SystemHeader {
        rate_bound,
        audio_bound,
        video_bound,
        streams,
        len,
    })
}

/// Writes a system header for `streams`, with fixed_flag 0, CSPS 0 and both locks set, as
/// GB/T 28181 cameras do.
pub fn write(out: &mut impl BufMut, rate_bound: u32, streams: &[StreamBound]) {
    let audio = streams
        .iter()
        .filter(|s| (0xC0..=0xDF).contains(&s.stream_id))
        .count() as u8;
    let video = streams
        .iter()
        .filter(|s| (0xE0..=0xEF).contains(&s.stream_id))
        .count() as u8;
    let r = rate_bound & 0x3f_ffff;
    let len = 6 + 3 * streams.len();
    out.put_slice(&[0, 0, 1, 0xBB]);
    out.put_u16(len as u16);
    out.put_slice(&[
        0x80 | (r >> 15) as u8,
        (r >> 7) as u8,
        ((r << 1) as u8) | 1,
        (audio & 0x3f) << 2,   // audio_bound, fixed_flag 0, CSPS_flag 0
        0xe0 | (video & 0x1f), // system_audio_lock, system_video_lock, marker, video_bound
        0x7f,                  // packet_rate_restriction_flag 0, reserved
    ]);
    for s in streams {
        out.put_slice(&[
            s.stream_id,
            0xc0 | if s.scale_1024 { 0x20 } else { 0 } | ((s.size_bound >> 8) as u8 & 0x1f),
            s.size_bound as u8,
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let streams = [
            StreamBound {
                stream_id: 0xe0,
                scale_1024: true,
                size_bound: 128,
            },
            StreamBound {
                stream_id: 0xc0,
                scale_1024: false,
                size_bound: 32,
            },
        ];
        let mut v = Vec::new();
        write(&mut v, 50_000, &streams);
        let h = parse(&v).unwrap();
        assert_eq!(h.rate_bound, 50_000);
        assert_eq!((h.audio_bound, h.video_bound), (1, 1));
        assert_eq!(h.streams, streams);
        assert_eq!(h.len, v.len());
    }

    #[test]
    fn from_gb28181_test_tool() {
        // Audio_G711_PS2.mpg, offset 0x0e.
        let d = [
            0, 0, 1, 0xbb, 0, 0x0c, 0x80, 0x1e, 0xff, 0xfe, 0xe1, 0x7f, 0xe0, 0xe0, 0xe8, 0xc0,
            0xc0, 0x20,
        ];
        let h = parse(&d).unwrap();
        assert_eq!(h.streams.len(), 2);
        assert_eq!(h.streams[1].stream_id, 0xc0);
        assert!(parse(&d[..10]).is_err());
    }
}
