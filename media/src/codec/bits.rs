//! Bit reader for H.264/H.265 RBSP syntax: fixed-width fields, `ue(v)`/`se(v)` exp-Golomb codes
//! (H.264 §9.1, H.265 §9.2) and emulation-prevention removal (H.264 §7.4.1, H.265 §7.4.2).

use std::borrow::Cow;

/// The RBSP was shorter than its syntax requires, or an exp-Golomb code was too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bitstream ended or was malformed at bit {bit}")]
pub struct BitError {
    /// Bit offset in the RBSP where reading failed.
    pub bit: usize,
}

/// Removes `emulation_prevention_three_byte`s (`00 00 03` → `00 00`) from a NAL unit payload,
/// giving its RBSP (H.264 §7.3.1, H.265 §7.3.1.1). Borrows when there is nothing to remove.
pub fn to_rbsp(nal: &[u8]) -> Cow<'_, [u8]> {
    let first = find_epb(nal, 0);
    let Some(mut at) = first else {
        return Cow::Borrowed(nal);
    };
    let mut out = Vec::with_capacity(nal.len());
    let mut from = 0;
    loop {
        // `at` is the index of the 0x03 byte to drop.
        out.extend_from_slice(&nal[from..at]);
        from = at + 1;
        match find_epb(nal, from) {
            Some(next) => at = next,
            None => break,
        }
    }
    out.extend_from_slice(&nal[from..]);
    Cow::Owned(out)
}

/// Index of the next `03` that follows `00 00` at or after `from` (the zeros counted from `from`).
fn find_epb(nal: &[u8], from: usize) -> Option<usize> {
    let mut zeros = 0usize;
    for (i, &b) in nal.iter().enumerate().skip(from) {
        if zeros >= 2 && b == 3 {
            return Some(i);
        }
        if b == 0 {
            zeros += 1;
        } else {
            zeros = 0;
        }
    }
    None
}

/// MSB-first reader over an RBSP (emulation prevention already removed, see [`to_rbsp`]).
///
/// ```
/// use media::codec::bits::BitReader;
/// let mut r = BitReader::new(&[0b1010_0110]);
/// assert_eq!(r.read_bit().unwrap(), true);
/// assert_eq!(r.read_ue().unwrap(), 1); // `010`
/// assert_eq!(r.read_ue().unwrap(), 2); // `011`
/// ```
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader at the first bit of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    /// Bits consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bits left.
    pub fn remaining(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    fn err(&self) -> BitError {
        BitError { bit: self.pos }
    }

    /// `u(1)`.
    pub fn read_bit(&mut self) -> Result<bool, BitError> {
        let byte = *self.data.get(self.pos / 8).ok_or(self.err())?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// `u(n)` for n ≤ 64.
    pub fn read_bits(&mut self, n: u32) -> Result<u64, BitError> {
        if n > 64 || (n as usize) > self.remaining() {
            return Err(self.err());
        }
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.read_bit()?);
        }
        Ok(v)
    }

    /// `u(n)` for n ≤ 32, as `u32`.
    pub fn read_u32(&mut self, n: u32) -> Result<u32, BitError> {
        if n > 32 {
            return Err(self.err());
        }
        // n ≤ 32 so the value fits.
        Ok(self.read_bits(n)? as u32)
    }

    /// Skips `n` bits.
    pub fn skip(&mut self, n: usize) -> Result<(), BitError> {
        if n > self.remaining() {
            return Err(self.err());
        }
        self.pos += n;
        Ok(())
    }

    /// `ue(v)`: unsigned exp-Golomb (H.264 §9.1). Codes longer than 32 leading zeros are an error.
    pub fn read_ue(&mut self) -> Result<u32, BitError> {
        let mut zeros = 0u32;
        while !self.read_bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(self.err());
            }
        }
        let rest = self.read_bits(zeros)?;
        let v = (1u64 << zeros) - 1 + rest;
        u32::try_from(v).map_err(|_| self.err())
    }

    /// `se(v)`: signed exp-Golomb (H.264 §9.1.1).
    pub fn read_se(&mut self) -> Result<i32, BitError> {
        let k = i64::from(self.read_ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        i32::try_from(v).map_err(|_| self.err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_emulation_prevention() {
        assert_eq!(
            &*to_rbsp(&[1, 0, 0, 3, 1, 0, 0, 3, 0, 3]),
            &[1, 0, 0, 1, 0, 0, 0, 3]
        );
        assert!(matches!(to_rbsp(&[1, 2, 3]), Cow::Borrowed(_)));
        assert_eq!(&*to_rbsp(&[0, 0, 3]), &[0, 0]);
    }

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 | 00101 → ue 0,1,2,3 then se(4) = -2
        let bits = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&bits);
        assert_eq!(r.read_ue().unwrap(), 0);
        assert_eq!(r.read_ue().unwrap(), 1);
        assert_eq!(r.read_ue().unwrap(), 2);
        assert_eq!(r.read_ue().unwrap(), 3);
        assert_eq!(r.read_se().unwrap(), -2);
        assert!(r.read_ue().is_err());
    }

    #[test]
    fn long_code_is_error_not_panic() {
        let zeros = [0u8; 8];
        assert!(BitReader::new(&zeros).read_ue().is_err());
        assert!(BitReader::new(&[]).read_bits(1).is_err());
        assert!(BitReader::new(&[0xff]).read_bits(65).is_err());
    }
}
