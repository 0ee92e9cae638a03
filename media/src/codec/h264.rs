//! H.264 / AVC: NAL unit types (ITU-T H.264 §7.4.1, Table 7-1) and the sequence parameter set
//! (§7.3.2.1.1, VUI Annex E.1.1).

use super::bits::{BitError, BitReader, to_rbsp};

/// Non-IDR coded slice.
pub const NAL_SLICE: u8 = 1;
/// Coded slice of an IDR picture: a key frame.
pub const NAL_IDR: u8 = 5;
/// Supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// Sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// Picture parameter set.
pub const NAL_PPS: u8 = 8;
/// Access unit delimiter.
pub const NAL_AUD: u8 = 9;

/// `nal_unit_type` from the first byte of a NAL unit (§7.3.1).
pub fn nal_type(header: u8) -> u8 {
    header & 0x1f
}

/// VCL NAL units (slices and slice data partitions, types 1–5).
pub fn is_vcl(nal_type: u8) -> bool {
    (1..=5).contains(&nal_type)
}

/// True for an IDR slice, the H.264 random access point.
pub fn is_keyframe_nal(nal_type: u8) -> bool {
    nal_type == NAL_IDR
}

/// What went wrong parsing a parameter set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpsError {
    /// The NAL unit is not of the expected type.
    #[error("NAL unit type {0} is not a sequence parameter set")]
    NotSps(u8),
    /// A field ran past the end of the RBSP.
    #[error(transparent)]
    Bits(#[from] BitError),
    /// A field holds a value the standard forbids.
    #[error("{field} out of range: {value}")]
    OutOfRange {
        /// Syntax element name as the standard spells it.
        field: &'static str,
        /// The value read.
        value: u64,
    },
}

pub(crate) fn range(field: &'static str, value: u32, max: u32) -> Result<u32, SpsError> {
    if value > max {
        Err(SpsError::OutOfRange {
            field,
            value: u64::from(value),
        })
    } else {
        Ok(value)
    }
}

/// The fields of an H.264 sequence parameter set a receiver needs (§7.3.2.1.1).
#[derive(Debug, Clone, PartialEq)]
pub struct Sps {
    /// `profile_idc` (66 Baseline, 77 Main, 100 High…).
    pub profile_idc: u8,
    /// `constraint_set0_flag`…`constraint_set5_flag` and reserved bits, as one byte.
    pub constraint_flags: u8,
    /// `level_idc` (level × 10).
    pub level_idc: u8,
    /// `seq_parameter_set_id`.
    pub sps_id: u32,
    /// `chroma_format_idc` (1 = 4:2:0).
    pub chroma_format_idc: u32,
    /// Luma bit depth.
    pub bit_depth_luma: u32,
    /// Displayed width after `frame_crop_*_offset` (§7.4.2.1.1, equations 7-18 ff.).
    pub width: u32,
    /// Displayed height after cropping.
    pub height: u32,
    /// Frames per second from VUI timing (`time_scale / (2 × num_units_in_tick)`, Annex E.2.1),
    /// when the VUI carries it.
    pub frame_rate: Option<f64>,
}

impl Sps {
    /// Parses an SPS NAL unit (header byte included, emulation prevention still present).
    ///
    /// ```
    /// // 1280x720 Main profile SPS written by libx264
    /// let nal = [0x67, 0x4d, 0x40, 0x1f, 0xec, 0xa0, 0x28, 0x02, 0xdd, 0x80, 0x88, 0x00, 0x00,
    ///            0x03, 0x00, 0x08, 0x00, 0x00, 0x03, 0x01, 0x90, 0x78, 0xc1, 0x8c, 0xb0];
    /// let sps = media::codec::h264::Sps::parse(&nal).unwrap();
    /// assert_eq!((sps.width, sps.height, sps.profile_idc), (1280, 720, 77));
    /// ```
    pub fn parse(nal: &[u8]) -> Result<Sps, SpsError> {
        let header = *nal.first().ok_or(BitError { bit: 0 })?;
        if nal_type(header) != NAL_SPS {
            return Err(SpsError::NotSps(nal_type(header)));
        }
        let rbsp = to_rbsp(&nal[1..]);
        let mut r = BitReader::new(&rbsp);
        let profile_idc = r.read_u32(8)? as u8;
        let constraint_flags = r.read_u32(8)? as u8;
        let level_idc = r.read_u32(8)? as u8;
        let sps_id = range("seq_parameter_set_id", r.read_ue()?, 31)?;
        let mut chroma_format_idc = 1;
        let mut separate_colour_plane = false;
        let mut bit_depth_luma = 8;
        if matches!(
            profile_idc,
            100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
        ) {
            chroma_format_idc = range("chroma_format_idc", r.read_ue()?, 3)?;
            if chroma_format_idc == 3 {
                separate_colour_plane = r.read_bit()?;
            }
            bit_depth_luma = 8 + range("bit_depth_luma_minus8", r.read_ue()?, 6)?;
            range("bit_depth_chroma_minus8", r.read_ue()?, 6)?;
            r.skip(1)?; // qpprime_y_zero_transform_bypass_flag
            if r.read_bit()? {
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.read_bit()? {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        range("log2_max_frame_num_minus4", r.read_ue()?, 12)?;
        match range("pic_order_cnt_type", r.read_ue()?, 2)? {
            0 => {
                range("log2_max_pic_order_cnt_lsb_minus4", r.read_ue()?, 12)?;
            }
            1 => {
                r.skip(1)?; // delta_pic_order_always_zero_flag
                r.read_se()?; // offset_for_non_ref_pic
                r.read_se()?; // offset_for_top_to_bottom_field
                let n = range("num_ref_frames_in_pic_order_cnt_cycle", r.read_ue()?, 255)?;
                for _ in 0..n {
                    r.read_se()?;
                }
            }
            _ => {}
        }
        r.read_ue()?; // max_num_ref_frames
        r.skip(1)?; // gaps_in_frame_num_value_allowed_flag
        let width_mbs = u64::from(r.read_ue()?) + 1;
        let height_map_units = u64::from(r.read_ue()?) + 1;
        let frame_mbs_only = r.read_bit()?;
        if !frame_mbs_only {
            r.skip(1)?; // mb_adaptive_frame_field_flag
        }
        r.skip(1)?; // direct_8x8_inference_flag
        let mut crop = [0u64; 4];
        if r.read_bit()? {
            for c in &mut crop {
                *c = u64::from(r.read_ue()?);
            }
        }
        // Table 6-1 and equations 7-19 to 7-22.
        let chroma_array_type = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let field_factor = if frame_mbs_only { 1 } else { 2 };
        let (crop_x, crop_y) = match chroma_array_type {
            0 => (1, field_factor),
            1 => (2, 2 * field_factor),
            2 => (2, field_factor),
            _ => (1, field_factor),
        };
        let full_w = width_mbs * 16;
        let full_h = height_map_units * 16 * field_factor;
        let width = full_w.saturating_sub(crop_x * (crop[0] + crop[1]));
        let height = full_h.saturating_sub(crop_y * (crop[2] + crop[3]));
        let frame_rate = if r.read_bit()? {
            vui_frame_rate(&mut r)?
        } else {
            None
        };
        Ok(Sps {
            profile_idc,
            constraint_flags,
            level_idc,
            sps_id,
            chroma_format_idc,
            bit_depth_luma,
            width: u32::try_from(width).unwrap_or(u32::MAX),
            height: u32::try_from(height).unwrap_or(u32::MAX),
            frame_rate,
        })
    }

    /// The RFC 6381 codec string, e.g. `avc1.4d001f` (what WebRTC and MSE want).
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }
}

/// `scaling_list()` (§7.3.2.1.1.1): only walked, the values are not needed.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), SpsError> {
    let mut last = 8i32;
    let mut next = 8i32;
    for _ in 0..size {
        if next != 0 {
            let delta = r.read_se()?;
            if !(-128..=127).contains(&delta) {
                return Err(SpsError::OutOfRange {
                    field: "delta_scale",
                    value: delta.unsigned_abs().into(),
                });
            }
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Walks `vui_parameters()` (Annex E.1.1) up to the timing info.
fn vui_frame_rate(r: &mut BitReader<'_>) -> Result<Option<f64>, SpsError> {
    if r.read_bit()? && r.read_u32(8)? == 255 {
        r.skip(32)?; // sar_width, sar_height
    }
    if r.read_bit()? {
        r.skip(1)?; // overscan_appropriate_flag
    }
    if r.read_bit()? {
        r.skip(4)?; // video_format, video_full_range_flag
        if r.read_bit()? {
            r.skip(24)?; // colour_primaries, transfer_characteristics, matrix_coefficients
        }
    }
    if r.read_bit()? {
        r.read_ue()?;
        r.read_ue()?;
    }
    if !r.read_bit()? {
        return Ok(None);
    }
    let num_units_in_tick = r.read_u32(32)?;
    let time_scale = r.read_u32(32)?;
    if num_units_in_tick == 0 || time_scale == 0 {
        return Ok(None);
    }
    Ok(Some(
        f64::from(time_scale) / (2.0 * f64::from(num_units_in_tick)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hikvision_sps_from_srs_capture() {
        // SPS of the camera keyframe in srs_ps_payloads_seq31813-31914_filler.ps.
        let nal = [
            0x67, 0x4d, 0x00, 0x32, 0x9d, 0xa8, 0x0a, 0x00, 0x2d, 0x69, 0xb8, 0x08, 0x08, 0x0a,
            0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x65, 0x08,
        ];
        let sps = Sps::parse(&nal).unwrap();
        assert_eq!(sps.profile_idc, 77);
        assert_eq!(sps.level_idc, 50);
        assert_eq!((sps.width, sps.height), (2560, 1440));
        assert_eq!(sps.frame_rate, Some(25.0));
        assert_eq!(sps.codec_string(), "avc1.4d0032");
    }

    #[test]
    fn rejects_other_nal_and_truncation() {
        assert!(matches!(
            Sps::parse(&[0x68, 0xee]),
            Err(SpsError::NotSps(8))
        ));
        assert!(Sps::parse(&[]).is_err());
        assert!(Sps::parse(&[0x67, 0x4d, 0x00]).is_err());
    }
}
