//! G.711 A-law and µ-law companding (ITU-T G.711 §2–3, Tables 1a/2a): 16-bit linear PCM to and
//! from 8-bit codes. The decode direction uses 256-entry tables built at compile time.

/// A-law: linear sample (16-bit) to code (G.711 Table 1a, even bits inverted).
pub fn alaw_encode(sample: i16) -> u8 {
    // Work on the 13-bit magnitude of the standard.
    let mut pcm = i32::from(sample) >> 3;
    let mask = if pcm >= 0 {
        0xd5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let code = if pcm < 32 {
        (pcm >> 1) as u8
    } else {
        let mut seg = 1u8;
        let mut v = pcm >> 5;
        while v > 1 && seg < 7 {
            v >>= 1;
            seg += 1;
        }
        if pcm >= 4096 {
            0x7f
        } else {
            (seg << 4) | ((pcm >> seg) & 0x0f) as u8
        }
    };
    code ^ mask
}

/// A-law: code to linear sample.
pub const fn alaw_decode(code: u8) -> i16 {
    ALAW_TABLE[code as usize]
}

/// µ-law: linear sample (16-bit) to code (G.711 Table 2a, bits inverted).
pub fn ulaw_encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut pcm = i32::from(sample);
    let sign = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    pcm = pcm.min(CLIP) + BIAS;
    let mut seg = 0u8;
    let mut v = pcm >> 7;
    while v > 1 && seg < 7 {
        v >>= 1;
        seg += 1;
    }
    let mantissa = ((pcm >> (seg + 3)) & 0x0f) as u8;
    !(sign | (seg << 4) | mantissa)
}

/// µ-law: code to linear sample.
pub const fn ulaw_decode(code: u8) -> i16 {
    ULAW_TABLE[code as usize]
}

const fn alaw_to_linear(code: u8) -> i16 {
    let a = code ^ 0x55;
    let seg = ((a & 0x70) >> 4) as i32;
    let mut t = ((a & 0x0f) as i32) << 4;
    t = match seg {
        0 => t + 8,
        1 => t + 0x108,
        _ => (t + 0x108) << (seg - 1),
    };
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

const fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let mut t = (((u & 0x0f) as i32) << 3) + 0x84;
    t <<= ((u & 0x70) >> 4) as i32;
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

/// A-law code → linear, all 256 codes.
pub static ALAW_TABLE: [i16; 256] = build_alaw();
/// µ-law code → linear, all 256 codes.
pub static ULAW_TABLE: [i16; 256] = build_ulaw();

const fn build_alaw() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_to_linear(i as u8);
        i += 1;
    }
    t
}

const fn build_ulaw() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_to_linear(i as u8);
        i += 1;
    }
    t
}

/// Encodes linear samples to A-law codes.
pub fn encode_alaw(samples: &[i16], out: &mut Vec<u8>) {
    out.extend(samples.iter().map(|&s| alaw_encode(s)));
}

/// Encodes linear samples to µ-law codes.
pub fn encode_ulaw(samples: &[i16], out: &mut Vec<u8>) {
    out.extend(samples.iter().map(|&s| ulaw_encode(s)));
}

/// Decodes A-law codes to linear samples.
pub fn decode_alaw(codes: &[u8], out: &mut Vec<i16>) {
    out.extend(codes.iter().map(|&c| alaw_decode(c)));
}

/// Decodes µ-law codes to linear samples.
pub fn decode_ulaw(codes: &[u8], out: &mut Vec<i16>) {
    out.extend(codes.iter().map(|&c| ulaw_decode(c)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes() {
        // G.711 silence codes.
        assert_eq!(alaw_encode(0), 0xd5);
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(ulaw_decode(0xff), 0);
        assert_eq!(alaw_decode(0xd5), 8);
        // Full scale.
        assert_eq!(alaw_decode(0xaa), 32256);
        assert_eq!(alaw_decode(0x2a), -32256);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
    }

    #[test]
    fn every_code_round_trips() {
        for c in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(c)), c, "alaw {c:#x}");
            let u = ulaw_encode(ulaw_decode(c));
            // 0x7f and 0xff both decode to 0 (negative and positive zero).
            assert!(u == c || (c == 0x7f && u == 0xff), "ulaw {c:#x} -> {u:#x}");
        }
    }

    #[test]
    fn encode_is_monotonic_and_close() {
        let mut prev = i16::MIN;
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let a = alaw_decode(alaw_encode(s));
            let u = ulaw_decode(ulaw_encode(s));
            assert!(a >= prev || s < 0, "monotonic");
            prev = a.max(prev);
            let tol = (i32::from(s).abs() / 16).max(16);
            assert!(
                (i32::from(a) - i32::from(s)).abs() <= tol + 8,
                "alaw {s} {a}"
            );
            assert!(
                (i32::from(u) - i32::from(s)).abs() <= tol + 132,
                "ulaw {s} {u}"
            );
        }
    }
}
