//! Just enough STUN (RFC 8489) to route a connectivity check from a new address: the local
//! ICE username fragment in USERNAME (RFC 8445 §7.2.2: `<receiver ufrag>:<sender ufrag>`).
//! Authentication is str0m's job; this only picks the viewer whose `Rtc` checks it.

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const ATTR_USERNAME: u16 = 0x0006;

/// The part of the USERNAME attribute before `:`, for a STUN message; `None` otherwise.
pub(crate) fn local_ufrag(datagram: &[u8]) -> Option<&[u8]> {
    // First two bits zero (RFC 8489 §5), the magic cookie at offset 4.
    if datagram.len() < 20 || datagram[0] & 0xc0 != 0 || datagram[4..8] != MAGIC_COOKIE {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let attrs = datagram.get(20..20 + len)?;
    let mut at = 0;
    while at + 4 <= attrs.len() {
        let kind = u16::from_be_bytes([attrs[at], attrs[at + 1]]);
        let alen = usize::from(u16::from_be_bytes([attrs[at + 2], attrs[at + 3]]));
        let value = attrs.get(at + 4..at + 4 + alen)?;
        if kind == ATTR_USERNAME {
            let end = value.iter().position(|&b| b == b':').unwrap_or(value.len());
            return Some(&value[..end]);
        }
        at += 4 + alen.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(username: &[u8]) -> Vec<u8> {
        let mut attr = vec![0, 6, 0, username.len() as u8];
        attr.extend_from_slice(username);
        attr.resize(attr.len().div_ceil(4) * 4, 0);
        let mut v = vec![0, 1, 0, attr.len() as u8];
        v.extend_from_slice(&MAGIC_COOKIE);
        v.extend_from_slice(&[7; 12]);
        v.extend_from_slice(&[0x80, 0x2a, 0, 4, 1, 2, 3, 4]); // ICE-CONTROLLING first
        v[3] += 8;
        v.extend_from_slice(&attr);
        v
    }

    #[test]
    fn finds_local_ufrag() {
        assert_eq!(local_ufrag(&binding(b"srv1:brw")), Some(&b"srv1"[..]));
        assert_eq!(local_ufrag(&binding(b"abc")), Some(&b"abc"[..]));
    }

    #[test]
    fn rejects_non_stun_and_truncation() {
        let m = binding(b"srv1:brw");
        for n in 0..m.len() {
            let _ = local_ufrag(&m[..n]);
        }
        assert_eq!(local_ufrag(&[0x80; 40]), None);
        assert_eq!(local_ufrag(&m[..m.len() - 1]), None);
    }
}
