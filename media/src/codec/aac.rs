//! AAC in ADTS framing: the fixed and variable header (ISO/IEC 13818-7 §6.2.1, ISO/IEC 14496-3
//! §1.A.2.2) and iteration over the frames of a buffer.

/// Sampling frequencies by `sampling_frequency_index` (ISO/IEC 14496-3 Table 1.18).
pub const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// One parsed ADTS header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsHeader {
    /// `profile_ObjectType` + 1: the MPEG-4 audio object type (2 = AAC LC).
    pub object_type: u8,
    /// `sampling_frequency_index`.
    pub sample_rate_index: u8,
    /// Samples per second.
    pub sample_rate: u32,
    /// `channel_configuration` (0 = defined in the payload).
    pub channels: u8,
    /// `aac_frame_length`: header and payload, bytes.
    pub frame_length: usize,
    /// 7, or 9 when a CRC follows the header (`protection_absent` = 0).
    pub header_length: usize,
    /// `number_of_raw_data_blocks_in_frame` + 1; each block is 1024 samples.
    pub raw_data_blocks: u8,
}

/// Why bytes are not an ADTS header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdtsError {
    /// Fewer than 7 bytes.
    #[error("ADTS header needs 7 bytes")]
    Truncated,
    /// No `0xFFF` syncword, or `layer` is not 0.
    #[error("no ADTS syncword")]
    NoSync,
    /// A reserved sampling frequency index.
    #[error("reserved sampling_frequency_index {0}")]
    SampleRate(u8),
    /// `aac_frame_length` smaller than the header.
    #[error("aac_frame_length {0} shorter than the header")]
    FrameLength(usize),
}

impl AdtsHeader {
    /// Parses the header at the start of `data`.
    ///
    /// ```
    /// use media::codec::aac::AdtsHeader;
    /// // AAC LC, 44.1 kHz, stereo, 371-byte frame
    /// let h = AdtsHeader::parse(&[0xff, 0xf1, 0x50, 0x80, 0x2e, 0x7f, 0xfc]).unwrap();
    /// assert_eq!((h.object_type, h.sample_rate, h.channels, h.frame_length), (2, 44100, 2, 371));
    /// ```
    pub fn parse(data: &[u8]) -> Result<AdtsHeader, AdtsError> {
        let b: &[u8; 7] = data
            .get(..7)
            .and_then(|s| s.try_into().ok())
            .ok_or(AdtsError::Truncated)?;
        if b[0] != 0xff || b[1] & 0xf6 != 0xf0 {
            return Err(AdtsError::NoSync);
        }
        let protection_absent = b[1] & 1 == 1;
        let object_type = (b[2] >> 6) + 1;
        let sample_rate_index = (b[2] >> 2) & 0x0f;
        let sample_rate = *SAMPLE_RATES
            .get(usize::from(sample_rate_index))
            .ok_or(AdtsError::SampleRate(sample_rate_index))?;
        let channels = ((b[2] & 1) << 2) | (b[3] >> 6);
        let frame_length =
            (usize::from(b[3] & 3) << 11) | (usize::from(b[4]) << 3) | usize::from(b[5] >> 5);
        let header_length = if protection_absent { 7 } else { 9 };
        if frame_length < header_length {
            return Err(AdtsError::FrameLength(frame_length));
        }
        Ok(AdtsHeader {
            object_type,
            sample_rate_index,
            sample_rate,
            channels,
            frame_length,
            header_length,
            raw_data_blocks: (b[6] & 3) + 1,
        })
    }

    /// Samples per channel in this frame.
    pub fn samples(&self) -> u32 {
        1024 * u32::from(self.raw_data_blocks)
    }

    /// Writes a 7-byte header (no CRC) for a frame of `payload_len` bytes.
    pub fn write(
        object_type: u8,
        sample_rate_index: u8,
        channels: u8,
        payload_len: usize,
    ) -> [u8; 7] {
        let len = (payload_len + 7).min(0x1fff);
        [
            0xff,
            0xf1,
            ((object_type.saturating_sub(1) & 3) << 6)
                | ((sample_rate_index & 0x0f) << 2)
                | ((channels >> 2) & 1),
            ((channels & 3) << 6) | ((len >> 11) as u8 & 3),
            (len >> 3) as u8,
            ((len as u8 & 7) << 5) | 0x1f,
            0xfc,
        ]
    }
}

/// True when `data` is a whole number of ADTS frames (at least one).
pub fn is_adts_sequence(data: &[u8]) -> bool {
    let mut frames = AdtsFrames::new(data);
    let mut n = 0;
    for _ in frames.by_ref() {
        n += 1;
    }
    n > 0 && frames.rest().is_empty()
}

/// Iterator over the whole ADTS frames at the start of a buffer; stops at the first byte that is
/// not a valid header or at a frame cut short. [`AdtsFrames::rest`] gives what was left.
///
/// ```
/// use media::codec::aac::{AdtsFrames, AdtsHeader};
/// let mut es = AdtsHeader::write(2, 4, 2, 3).to_vec();
/// es.extend_from_slice(&[1, 2, 3]);
/// es.extend_from_within(..);
/// assert_eq!(AdtsFrames::new(&es).count(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct AdtsFrames<'a> {
    data: &'a [u8],
}

impl<'a> AdtsFrames<'a> {
    /// Iterates the frames of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        AdtsFrames { data }
    }

    /// The bytes not yet returned as frames.
    pub fn rest(&self) -> &'a [u8] {
        self.data
    }
}

impl<'a> Iterator for AdtsFrames<'a> {
    type Item = (AdtsHeader, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let h = AdtsHeader::parse(self.data).ok()?;
        let frame = self.data.get(..h.frame_length)?;
        self.data = &self.data[h.frame_length..];
        Some((h, frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_parse_round_trip() {
        let hdr = AdtsHeader::write(2, 3, 1, 200);
        let h = AdtsHeader::parse(&hdr).unwrap();
        assert_eq!(h.sample_rate, 48000);
        assert_eq!(h.channels, 1);
        assert_eq!(h.frame_length, 207);
        assert_eq!(h.header_length, 7);
        assert_eq!(h.samples(), 1024);
    }

    #[test]
    fn rejects_mpeg_audio_and_ulaw_silence() {
        // MPEG-1 layer II header: layer bits non-zero.
        assert_eq!(
            AdtsHeader::parse(&[0xff, 0xfd, 0, 0, 0, 0, 0]),
            Err(AdtsError::NoSync)
        );
        // G.711 µ-law silence is 0xFF bytes.
        assert_eq!(AdtsHeader::parse(&[0xff; 7]), Err(AdtsError::NoSync));
        assert_eq!(AdtsHeader::parse(&[0xff, 0xf1]), Err(AdtsError::Truncated));
        assert!(!is_adts_sequence(&[0xff; 20]));
    }
}
