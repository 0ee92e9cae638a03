//! Device, channel and platform IDs (GB/T 28181-2022 Annex E.1; 2016 Annex D).
//!
//! A full ID is 20 decimal digits: centre code (8), industry (2), type (3), network (1),
//! sequence (6). Administrative regions use 2, 4, 6 or 8 digits and appear as catalog nodes.

use std::fmt;

/// What an ID names, from its length and its type code (digits 11–13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// A 2/4/6/8-digit administrative region (catalog region node).
    Region,
    /// A front-end main device (111–130: DVR, encoder, NVR, HVR, …).
    MainDevice,
    /// A peripheral or channel (131–143: camera, IPC, alarm in/out, voice in/out, …).
    Peripheral,
    /// A platform server (200–211: signalling server, media server, …).
    Platform,
    /// A business group (215).
    BusinessGroup,
    /// A virtual organisation (216).
    VirtualOrganization,
    /// A user, external platform or extension type (300–999).
    Other,
    /// Not a valid GB ID (wrong length or not all digits).
    Invalid,
}

/// A GB/T 28181 ID, checked to be 2, 4, 6, 8 or 20 ASCII digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GbId(String);

impl GbId {
    /// Parse an ID; `None` unless it is 2, 4, 6, 8 or 20 decimal digits.
    pub fn parse(s: &str) -> Option<GbId> {
        let s = s.trim();
        if matches!(s.len(), 2 | 4 | 6 | 8 | 20) && s.bytes().all(|b| b.is_ascii_digit()) {
            Some(GbId(s.to_owned()))
        } else {
            None
        }
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 3-digit type code (digits 11–13) of a 20-digit ID.
    pub fn type_code(&self) -> Option<u16> {
        type_code(&self.0)
    }

    /// What this ID names.
    pub fn kind(&self) -> IdKind {
        kind(&self.0)
    }

    /// The SIP domain of this ID: its first 10 digits (20-digit IDs only).
    pub fn domain(&self) -> Option<&str> {
        (self.0.len() == 20).then(|| &self.0[..10])
    }
}

impl fmt::Display for GbId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for GbId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GbId({})", self.0)
    }
}

/// The 3-digit type code (digits 11–13) of a 20-digit ID given as text.
pub fn type_code(id: &str) -> Option<u16> {
    if id.len() == 20 && id.bytes().all(|b| b.is_ascii_digit()) {
        id[10..13].parse().ok()
    } else {
        None
    }
}

/// Classify an ID given as text (see [`IdKind`]).
pub fn kind(id: &str) -> IdKind {
    let id = id.trim();
    if !id.bytes().all(|b| b.is_ascii_digit()) {
        return IdKind::Invalid;
    }
    match id.len() {
        2 | 4 | 6 | 8 => IdKind::Region,
        20 => match type_code(id).unwrap_or(0) {
            111..=130 => IdKind::MainDevice,
            131..=199 => IdKind::Peripheral,
            215 => IdKind::BusinessGroup,
            216 => IdKind::VirtualOrganization,
            200..=214 => IdKind::Platform,
            _ => IdKind::Other,
        },
        _ => IdKind::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_ids() {
        assert_eq!(kind("34020000001320000001"), IdKind::Peripheral);
        assert_eq!(kind("34020000001180000001"), IdKind::MainDevice);
        assert_eq!(kind("34020000002000000001"), IdKind::Platform);
        assert_eq!(kind("34020000002150000001"), IdKind::BusinessGroup);
        assert_eq!(kind("34020000002160000001"), IdKind::VirtualOrganization);
        assert_eq!(kind("340200"), IdKind::Region);
        assert_eq!(kind("3402000"), IdKind::Invalid);
        assert_eq!(kind("3402000000132000000a"), IdKind::Invalid);
        let id = GbId::parse("34020000001320000001").unwrap();
        assert_eq!(id.domain(), Some("3402000000"));
        assert_eq!(id.type_code(), Some(132));
    }
}
