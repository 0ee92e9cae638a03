//! H.265 / HEVC: NAL unit types (ITU-T H.265 §7.4.2.2, Table 7-1) and the sequence parameter
//! set (§7.3.2.2.1) with `profile_tier_level` (§7.3.3), `st_ref_pic_set` (§7.3.7) and VUI
//! timing (Annex E.2.1).

use super::bits::{BitError, BitReader, to_rbsp};
use super::h264::{SpsError, range};

/// `BLA_W_LP`, the first IRAP type.
pub const NAL_BLA_W_LP: u8 = 16;
/// `IDR_W_RADL`.
pub const NAL_IDR_W_RADL: u8 = 19;
/// `IDR_N_LP`.
pub const NAL_IDR_N_LP: u8 = 20;
/// `CRA_NUT`.
pub const NAL_CRA: u8 = 21;
/// Video parameter set.
pub const NAL_VPS: u8 = 32;
/// Sequence parameter set.
pub const NAL_SPS: u8 = 33;
/// Picture parameter set.
pub const NAL_PPS: u8 = 34;
/// Access unit delimiter.
pub const NAL_AUD: u8 = 35;
/// Prefix SEI.
pub const NAL_SEI_PREFIX: u8 = 39;

/// `nal_unit_type` from the first byte of the two-byte NAL unit header (§7.3.1.2).
pub fn nal_type(header0: u8) -> u8 {
    (header0 >> 1) & 0x3f
}

/// VCL NAL units (types 0–31).
pub fn is_vcl(nal_type: u8) -> bool {
    nal_type < 32
}

/// IRAP pictures (BLA, IDR, CRA and reserved IRAP types 16–23): the H.265 random access points.
pub fn is_keyframe_nal(nal_type: u8) -> bool {
    (16..=23).contains(&nal_type)
}

/// The fields of an H.265 sequence parameter set a receiver needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Sps {
    /// `general_profile_space`.
    pub profile_space: u8,
    /// `general_tier_flag` (false = Main tier).
    pub tier_flag: bool,
    /// `general_profile_idc` (1 Main, 2 Main 10…).
    pub profile_idc: u8,
    /// `general_profile_compatibility_flag[32]`.
    pub profile_compatibility: u32,
    /// The 48 bits from `general_progressive_source_flag` on (constraint indicator flags).
    pub constraint_flags: u64,
    /// `general_level_idc` (level × 30).
    pub level_idc: u8,
    /// `sps_seq_parameter_set_id`.
    pub sps_id: u32,
    /// `chroma_format_idc`.
    pub chroma_format_idc: u32,
    /// Luma bit depth.
    pub bit_depth_luma: u32,
    /// Width after the conformance window (§7.4.3.2.1).
    pub width: u32,
    /// Height after the conformance window.
    pub height: u32,
    /// Frames per second from VUI timing (`vui_time_scale / vui_num_units_in_tick`).
    pub frame_rate: Option<f64>,
}

impl Sps {
    /// Parses an SPS NAL unit (two-byte header included, emulation prevention still present).
    pub fn parse(nal: &[u8]) -> Result<Sps, SpsError> {
        let header = *nal.first().ok_or(BitError { bit: 0 })?;
        if nal_type(header) != NAL_SPS {
            return Err(SpsError::NotSps(nal_type(header)));
        }
        let rbsp = to_rbsp(nal.get(2..).ok_or(BitError { bit: 8 })?);
        let mut r = BitReader::new(&rbsp);
        r.skip(4)?; // sps_video_parameter_set_id
        let max_sub_layers_minus1 = r.read_u32(3)?;
        if max_sub_layers_minus1 > 6 {
            return Err(SpsError::OutOfRange {
                field: "sps_max_sub_layers_minus1",
                value: max_sub_layers_minus1.into(),
            });
        }
        r.skip(1)?; // sps_temporal_id_nesting_flag
        let profile_space = r.read_u32(2)? as u8;
        let tier_flag = r.read_bit()?;
        let profile_idc = r.read_u32(5)? as u8;
        let profile_compatibility = r.read_u32(32)?;
        let constraint_flags = r.read_bits(48)?;
        let level_idc = r.read_u32(8)? as u8;
        skip_sub_layers(&mut r, max_sub_layers_minus1)?;
        let sps_id = range("sps_seq_parameter_set_id", r.read_ue()?, 15)?;
        let chroma_format_idc = range("chroma_format_idc", r.read_ue()?, 3)?;
        if chroma_format_idc == 3 && r.read_bit()? {
            // separate_colour_plane_flag: ChromaArrayType 0, crop units of 1.
        }
        let pic_w = u64::from(r.read_ue()?);
        let pic_h = u64::from(r.read_ue()?);
        let mut win = [0u64; 4];
        if r.read_bit()? {
            for w in &mut win {
                *w = u64::from(r.read_ue()?);
            }
        }
        // Table 6-1: SubWidthC, SubHeightC.
        let (sub_w, sub_h) = match chroma_format_idc {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let width = pic_w.saturating_sub(sub_w * (win[0] + win[1]));
        let height = pic_h.saturating_sub(sub_h * (win[2] + win[3]));
        let bit_depth_luma = 8 + range("bit_depth_luma_minus8", r.read_ue()?, 8)?;
        range("bit_depth_chroma_minus8", r.read_ue()?, 8)?;
        let log2_max_poc_lsb = 4 + range("log2_max_pic_order_cnt_lsb_minus4", r.read_ue()?, 12)?;
        let ordering_all = r.read_bit()?;
        let first = if ordering_all {
            0
        } else {
            max_sub_layers_minus1
        };
        for _ in first..=max_sub_layers_minus1 {
            r.read_ue()?; // sps_max_dec_pic_buffering_minus1
            r.read_ue()?; // sps_max_num_reorder_pics
            r.read_ue()?; // sps_max_latency_increase_plus1
        }
        for _ in 0..6 {
            // log2_min_luma_coding_block_size_minus3 … max_transform_hierarchy_depth_intra
            r.read_ue()?;
        }
        if r.read_bit()? && r.read_bit()? {
            skip_scaling_list_data(&mut r)?;
        }
        r.skip(2)?; // amp_enabled_flag, sample_adaptive_offset_enabled_flag
        if r.read_bit()? {
            r.skip(8)?; // pcm_sample_bit_depth_{luma,chroma}_minus1
            r.read_ue()?;
            r.read_ue()?;
            r.skip(1)?; // pcm_loop_filter_disabled_flag
        }
        let num_sets = range("num_short_term_ref_pic_sets", r.read_ue()?, 64)?;
        let mut sets: Vec<RefPicSet> = Vec::with_capacity(num_sets as usize);
        for idx in 0..num_sets as usize {
            let set = st_ref_pic_set(&mut r, idx, &sets)?;
            sets.push(set);
        }
        if r.read_bit()? {
            let n = range("num_long_term_ref_pics_sps", r.read_ue()?, 32)?;
            for _ in 0..n {
                r.skip(log2_max_poc_lsb as usize + 1)?;
            }
        }
        r.skip(2)?; // sps_temporal_mvp_enabled_flag, strong_intra_smoothing_enabled_flag
        let frame_rate = if r.read_bit()? {
            vui_frame_rate(&mut r)?
        } else {
            None
        };
        Ok(Sps {
            profile_space,
            tier_flag,
            profile_idc,
            profile_compatibility,
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
}

/// The sub-layer part of `profile_tier_level()` (§7.3.3).
fn skip_sub_layers(r: &mut BitReader<'_>, max_sub_layers_minus1: u32) -> Result<(), SpsError> {
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(max_sub_layers_minus1 as usize) {
        *p = (r.read_bit()?, r.read_bit()?);
    }
    if max_sub_layers_minus1 > 0 {
        for _ in max_sub_layers_minus1..8 {
            r.skip(2)?; // reserved_zero_2bits
        }
    }
    for &(profile, level) in present.iter().take(max_sub_layers_minus1 as usize) {
        if profile {
            r.skip(88)?;
        }
        if level {
            r.skip(8)?;
        }
    }
    Ok(())
}

/// `scaling_list_data()` (§7.3.4): walked only.
fn skip_scaling_list_data(r: &mut BitReader<'_>) -> Result<(), SpsError> {
    for size_id in 0..4u32 {
        let step = if size_id == 3 { 3 } else { 1 };
        for _ in (0..6).step_by(step) {
            if !r.read_bit()? {
                r.read_ue()?; // scaling_list_pred_matrix_id_delta
            } else {
                let coefs = 64.min(1 << (4 + (size_id << 1)));
                if size_id > 1 {
                    r.read_se()?; // scaling_list_dc_coef_minus8
                }
                for _ in 0..coefs {
                    r.read_se()?;
                }
            }
        }
    }
    Ok(())
}

/// Delta POCs of one short-term reference picture set: negative (S0) and positive (S1).
#[derive(Debug, Clone, Default)]
struct RefPicSet {
    s0: Vec<i32>,
    s1: Vec<i32>,
}

/// `st_ref_pic_set(stRpsIdx)` (§7.3.7) with the derivation of equations 7-61 and 7-62, needed
/// because the size of an inter-predicted set depends on the set it refers to.
fn st_ref_pic_set(
    r: &mut BitReader<'_>,
    idx: usize,
    sets: &[RefPicSet],
) -> Result<RefPicSet, SpsError> {
    let inter = idx != 0 && r.read_bit()?;
    if !inter {
        let neg = range("num_negative_pics", r.read_ue()?, 16)?;
        let pos = range("num_positive_pics", r.read_ue()?, 16)?;
        let mut set = RefPicSet::default();
        let mut poc = 0i32;
        for _ in 0..neg {
            poc -= range("delta_poc_s0_minus1", r.read_ue()?, 1 << 15)? as i32 + 1;
            r.skip(1)?;
            set.s0.push(poc);
        }
        poc = 0;
        for _ in 0..pos {
            poc += range("delta_poc_s1_minus1", r.read_ue()?, 1 << 15)? as i32 + 1;
            r.skip(1)?;
            set.s1.push(poc);
        }
        return Ok(set);
    }
    // In the SPS delta_idx_minus1 is absent: the reference set is the previous one.
    let reference = &sets[idx - 1];
    let sign = r.read_bit()?;
    let abs = range("abs_delta_rps_minus1", r.read_ue()?, 1 << 15)? as i32 + 1;
    let delta_rps = if sign { -abs } else { abs };
    let n = reference.s0.len() + reference.s1.len();
    let mut use_delta = [true; 33];
    for u in use_delta.iter_mut().take(n + 1) {
        let used = r.read_bit()?;
        if !used {
            *u = r.read_bit()?;
        }
    }
    let (n0, n1) = (reference.s0.len(), reference.s1.len());
    let mut set = RefPicSet::default();
    for j in (0..n1).rev() {
        let d = reference.s1[j] + delta_rps;
        if d < 0 && use_delta[n0 + j] {
            set.s0.push(d);
        }
    }
    if delta_rps < 0 && use_delta[n] {
        set.s0.push(delta_rps);
    }
    for (&s0, &used) in reference.s0.iter().zip(&use_delta) {
        let d = s0 + delta_rps;
        if d < 0 && used {
            set.s0.push(d);
        }
    }
    for j in (0..n0).rev() {
        let d = reference.s0[j] + delta_rps;
        if d > 0 && use_delta[j] {
            set.s1.push(d);
        }
    }
    if delta_rps > 0 && use_delta[n] {
        set.s1.push(delta_rps);
    }
    for j in 0..n1 {
        let d = reference.s1[j] + delta_rps;
        if d > 0 && use_delta[n0 + j] {
            set.s1.push(d);
        }
    }
    if set.s0.len() > 16 || set.s1.len() > 16 {
        return Err(SpsError::OutOfRange {
            field: "NumDeltaPocs",
            value: (set.s0.len() + set.s1.len()) as u64,
        });
    }
    Ok(set)
}

/// `vui_parameters()` (Annex E.2.1) up to the timing info.
fn vui_frame_rate(r: &mut BitReader<'_>) -> Result<Option<f64>, SpsError> {
    if r.read_bit()? && r.read_u32(8)? == 255 {
        r.skip(32)?;
    }
    if r.read_bit()? {
        r.skip(1)?;
    }
    if r.read_bit()? {
        r.skip(4)?;
        if r.read_bit()? {
            r.skip(24)?;
        }
    }
    if r.read_bit()? {
        r.read_ue()?;
        r.read_ue()?;
    }
    r.skip(3)?; // neutral_chroma_indication_flag, field_seq_flag, frame_field_info_present_flag
    if r.read_bit()? {
        for _ in 0..4 {
            r.read_ue()?; // def_disp_win_*_offset
        }
    }
    if !r.read_bit()? {
        return Ok(None);
    }
    let num_units_in_tick = r.read_u32(32)?;
    let time_scale = r.read_u32(32)?;
    if num_units_in_tick == 0 || time_scale == 0 {
        return Ok(None);
    }
    Ok(Some(f64::from(time_scale) / f64::from(num_units_in_tick)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nal_types() {
        assert_eq!(nal_type(0x40), NAL_VPS);
        assert_eq!(nal_type(0x42), NAL_SPS);
        assert_eq!(nal_type(0x26), NAL_IDR_W_RADL);
        assert!(is_keyframe_nal(NAL_CRA));
        assert!(!is_keyframe_nal(1));
        assert!(is_vcl(NAL_IDR_N_LP) && !is_vcl(NAL_PPS));
    }

    #[test]
    fn truncated_is_error() {
        assert!(Sps::parse(&[0x42]).is_err());
        assert!(Sps::parse(&[0x42, 0x01, 0x01]).is_err());
        assert!(matches!(
            Sps::parse(&[0x40, 0x01]),
            Err(SpsError::NotSps(32))
        ));
    }
}
