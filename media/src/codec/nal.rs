//! Annex B byte streams: start codes and NAL unit splitting (H.264 Annex B, H.265 Annex B).
//!
//! Splitting is zero-copy: [`NalUnits`] yields sub-slices, [`NalUnitsBytes`] yields
//! [`Bytes`] slices that share the input's buffer.

use bytes::Bytes;
use std::ops::Range;

/// Finds the next start code prefix `00 00 01` at or after `from`.
///
/// Returns `(start, len)`: where the prefix begins (including one leading zero when it is the
/// 4-byte form `00 00 00 01`) and its length, 3 or 4.
///
/// ```
/// use media::codec::nal::find_start_code;
/// assert_eq!(find_start_code(&[9, 0, 0, 1, 0x65], 0), Some((1, 3)));
/// assert_eq!(find_start_code(&[9, 0, 0, 0, 1, 0x65], 0), Some((1, 4)));
/// ```
pub fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let i = find_001(data, from)?;
    if i > from && data[i - 1] == 0 {
        Some((i - 1, 4))
    } else {
        Some((i, 3))
    }
}

/// Index of the first `00 00 01` at or after `from`, found with the SIMD substring search of
/// the `memchr` crate (an access unit is scanned for its NAL units by the demuxer and again by
/// the packetizer: this is on every frame's path).
pub fn find_001(data: &[u8], from: usize) -> Option<usize> {
    let rest = data.get(from..)?;
    memchr::memmem::find(rest, &[0, 0, 1]).map(|i| from + i)
}

/// Range of each NAL unit (start code and trailing zero bytes excluded) of an Annex B buffer.
/// Bytes before the first start code are not a NAL unit and are ignored.
#[derive(Debug, Clone)]
pub struct NalRanges<'a> {
    data: &'a [u8],
    /// Start of the next NAL unit, or `data.len()` when done.
    pos: usize,
}

impl<'a> NalRanges<'a> {
    /// Iterates the NAL units of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        let pos = match find_001(data, 0) {
            Some(i) => i + 3,
            None => data.len(),
        };
        NalRanges { data, pos }
    }
}

impl Iterator for NalRanges<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        loop {
            if self.pos >= self.data.len() {
                return None;
            }
            let start = self.pos;
            let (mut end, next) = match find_001(self.data, start) {
                Some(i) => (i, i + 3),
                None => (self.data.len(), self.data.len()),
            };
            self.pos = next;
            // trailing_zero_8bits and the leading zero of a 4-byte start code.
            while end > start && self.data[end - 1] == 0 {
                end -= 1;
            }
            if end > start {
                return Some(start..end);
            }
        }
    }
}

/// Zero-copy iterator over the NAL units of an Annex B buffer, as sub-slices.
///
/// ```
/// use media::codec::nal::NalUnits;
/// let es = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 4];
/// let nals: Vec<&[u8]> = NalUnits::new(&es).collect();
/// assert_eq!(nals, [&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4]]);
/// ```
#[derive(Debug, Clone)]
pub struct NalUnits<'a> {
    ranges: NalRanges<'a>,
}

impl<'a> NalUnits<'a> {
    /// Iterates the NAL units of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        NalUnits {
            ranges: NalRanges::new(data),
        }
    }
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let r = self.ranges.next()?;
        self.ranges.data.get(r)
    }
}

/// Zero-copy iterator over the NAL units of a [`Bytes`] buffer, as [`Bytes`] slices of it.
#[derive(Debug, Clone)]
pub struct NalUnitsBytes {
    data: Bytes,
    pos: usize,
}

impl NalUnitsBytes {
    /// Iterates the NAL units of `data`.
    pub fn new(data: Bytes) -> Self {
        let pos = match find_001(&data, 0) {
            Some(i) => i + 3,
            None => data.len(),
        };
        NalUnitsBytes { data, pos }
    }
}

impl Iterator for NalUnitsBytes {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let mut ranges = NalRanges {
            data: &self.data,
            pos: self.pos,
        };
        let r = ranges.next();
        self.pos = ranges.pos;
        r.map(|r| self.data.slice(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_and_four_byte_start_codes() {
        let es = [
            0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 0, 1, 0x65, 0x88,
        ];
        let nals: Vec<&[u8]> = NalUnits::new(&es).collect();
        assert_eq!(nals, [&[0x09, 0xf0][..], &[0x67, 0x42], &[0x65, 0x88]]);
        let b: Vec<Bytes> = NalUnitsBytes::new(Bytes::copy_from_slice(&es)).collect();
        assert_eq!(b.len(), 3);
        assert_eq!(&b[1][..], &[0x67, 0x42]);
    }

    #[test]
    fn no_start_code_no_nal() {
        assert_eq!(NalUnits::new(&[1, 2, 3, 0, 0]).count(), 0);
        assert_eq!(NalUnits::new(&[]).count(), 0);
        assert_eq!(NalUnits::new(&[0, 0, 1]).count(), 0);
        assert_eq!(find_001(&[0, 1], 0), None);
        assert_eq!(find_001(&[0, 0, 1], usize::MAX), None);
    }

    #[test]
    fn find_matches_naive() {
        let data: Vec<u8> = (0..2000u32)
            .map(|i| [0, 0, 1, 2, 0, 7, 1][(i * 7 % 13 % 7) as usize])
            .collect();
        for from in 0..50 {
            let naive = (from..data.len().saturating_sub(2)).find(|&i| data[i..i + 3] == [0, 0, 1]);
            assert_eq!(find_001(&data, from), naive);
        }
    }
}
