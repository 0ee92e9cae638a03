//! What a browser's SDP offer (RFC 8866, JSEP RFC 8829) can receive, and which of its payload
//! types a stream is sent as.
//!
//! str0m negotiates the answer; this module only reads the offer's `m=`, `a=mid`, `a=rtpmap`
//! and `a=fmtp` lines so that the egress can configure str0m with exactly one payload type per
//! track — the browser's own, with its `profile-level-id` (RFC 6184 §8.1) or H.265
//! `profile-id`/`tier-flag`/`level-id` (RFC 7798 §7.1) — and answer nothing else.

use crate::Codec;

/// One `m=` section of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedMedia {
    /// `audio`, `video` or `application`, as on the `m=` line.
    pub kind: String,
    /// `a=mid`, when present.
    pub mid: Option<String>,
    /// The payload types of the `m=` line, in the offer's order of preference.
    pub codecs: Vec<OfferedCodec>,
}

/// One payload type of an `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedCodec {
    /// Payload type.
    pub pt: u8,
    /// Encoding name from `a=rtpmap` (`H264`, `PCMA`, `rtx`…), or the static name of payload
    /// types 0 and 8 (RFC 3551 Table 4) when there is no `a=rtpmap`.
    pub name: String,
    /// RTP clock rate from `a=rtpmap`.
    pub clock_rate: u32,
    /// The `a=fmtp` parameters as written (`key=value;key=value`), or empty.
    pub fmtp: String,
}

impl OfferedCodec {
    /// The value of an `a=fmtp` parameter, keys compared without case (RFC 8866 §6.15).
    pub fn param(&self, key: &str) -> Option<&str> {
        self.fmtp.split(';').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
        })
    }

    fn is(&self, name: &str, clock_rate: u32) -> bool {
        self.name.eq_ignore_ascii_case(name) && self.clock_rate == clock_rate
    }
}

/// Reads the media sections of an SDP offer. Lines it does not need are skipped; nothing here
/// fails, the SDP is validated by str0m afterwards.
///
/// ```
/// use media::webrtc::inspect_offer;
/// let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102 103\r\na=mid:0\r\n\
///            a=rtpmap:102 H264/90000\r\n\
///            a=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n\
///            a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n";
/// let media = inspect_offer(sdp);
/// assert_eq!(media[0].mid.as_deref(), Some("0"));
/// assert_eq!(media[0].codecs[0].param("profile-level-id"), Some("42e01f"));
/// ```
pub fn inspect_offer(sdp: &str) -> Vec<OfferedMedia> {
    let mut out: Vec<OfferedMedia> = Vec::new();
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            let mut parts = m.split_ascii_whitespace();
            let kind = parts.next().unwrap_or_default().to_string();
            let codecs = parts
                .skip(2)
                .filter_map(|pt| pt.parse::<u8>().ok())
                .map(|pt| OfferedCodec {
                    pt,
                    name: match pt {
                        0 => "PCMU".into(),
                        8 => "PCMA".into(),
                        _ => String::new(),
                    },
                    clock_rate: if pt == 0 || pt == 8 { 8000 } else { 0 },
                    fmtp: String::new(),
                })
                .collect();
            out.push(OfferedMedia {
                kind,
                mid: None,
                codecs,
            });
            continue;
        }
        let Some(media) = out.last_mut() else {
            continue;
        };
        if let Some(mid) = line.strip_prefix("a=mid:") {
            media.mid = Some(mid.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("a=rtpmap:") {
            let Some((pt, enc)) = rest.split_once(' ') else {
                continue;
            };
            let Some(codec) = find_pt(media, pt) else {
                continue;
            };
            let mut enc = enc.trim().split('/');
            codec.name = enc.next().unwrap_or_default().to_string();
            codec.clock_rate = enc.next().and_then(|c| c.parse().ok()).unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("a=fmtp:") {
            let Some((pt, params)) = rest.split_once(' ') else {
                continue;
            };
            if let Some(codec) = find_pt(media, pt) {
                codec.fmtp = params.trim().to_string();
            }
        }
    }
    out
}

fn find_pt<'a>(media: &'a mut OfferedMedia, pt: &str) -> Option<&'a mut OfferedCodec> {
    let pt: u8 = pt.trim().parse().ok()?;
    media.codecs.iter_mut().find(|c| c.pt == pt)
}

/// The payload type a track is sent as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Choice {
    pub mid: String,
    pub pt: u8,
    /// RTX payload type (RFC 4588 `apt=`), when the offer has one for `pt`.
    pub rtx: Option<u8>,
    /// H.264 `profile-level-id`.
    pub profile_level_id: Option<u32>,
    /// H.265 `profile-id`, `tier-flag`, `level-id` (RFC 7798 §7.1 defaults 1, 0, 93).
    pub h265_ptl: Option<(u8, u8, u8)>,
}

/// H.264 profiles in order of preference for a camera stream (usually High or Main).
/// Chromium offers no High profile yet decodes High sent under Main or Constrained Baseline
/// (PROTOCOL-NOTES §10), so Main comes right after High; High 4:4:4 (`f4`) last.
fn h264_rank(profile_level_id: u32) -> u32 {
    match profile_level_id >> 8 {
        0x6400 => 0,
        0x4d00 => 1,
        0x42e0 => 2,
        0x4200 => 3,
        0x5800 => 4,
        0xf400 => 6,
        _ => 5,
    }
}

/// Picks the payload type of the first media section of `kind` that can carry `codec`.
/// H.264 needs `packetization-mode=1` (FU-A, RFC 6184 §6.3).
pub(crate) fn choose(media: &[OfferedMedia], kind: &str, codec: Codec) -> Option<Choice> {
    for m in media.iter().filter(|m| m.kind == kind) {
        let Some(mid) = m.mid.clone() else { continue };
        let pick = match codec {
            Codec::H264 => m
                .codecs
                .iter()
                .filter(|c| c.is("H264", 90_000) && c.param("packetization-mode") == Some("1"))
                .filter_map(|c| {
                    let plid = u32::from_str_radix(c.param("profile-level-id")?, 16).ok()?;
                    Some((c, plid))
                })
                .min_by_key(|(_, plid)| h264_rank(*plid))
                .map(|(c, plid)| (c, Some(plid), None)),
            Codec::H265 => m.codecs.iter().find(|c| c.is("H265", 90_000)).map(|c| {
                let num = |k: &str, d: u8| c.param(k).and_then(|v| v.parse().ok()).unwrap_or(d);
                let ptl = (
                    num("profile-id", 1),
                    num("tier-flag", 0),
                    num("level-id", 93),
                );
                (c, None, Some(ptl))
            }),
            Codec::G711A => m
                .codecs
                .iter()
                .find(|c| c.is("PCMA", 8000))
                .map(|c| (c, None, None)),
            Codec::G711U => m
                .codecs
                .iter()
                .find(|c| c.is("PCMU", 8000))
                .map(|c| (c, None, None)),
            _ => None,
        };
        if let Some((c, profile_level_id, h265_ptl)) = pick {
            let apt = c.pt.to_string();
            let rtx = m
                .codecs
                .iter()
                .find(|r| r.name.eq_ignore_ascii_case("rtx") && r.param("apt") == Some(&apt))
                .map(|r| r.pt);
            return Some(Choice {
                mid,
                pt: c.pt,
                rtx,
                profile_level_id,
                h265_ptl,
            });
        }
    }
    None
}

/// The encoding names the offer lists for `kind`, for error messages.
pub(crate) fn offered_names(media: &[OfferedMedia], kind: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for c in media
        .iter()
        .filter(|m| m.kind == kind)
        .flat_map(|m| &m.codecs)
    {
        let name = if c.name.is_empty() {
            c.pt.to_string()
        } else {
            c.name.clone()
        };
        if !["rtx", "red", "ulpfec", "flexfec-03"].contains(&name.to_ascii_lowercase().as_str())
            && !names.contains(&name)
        {
            names.push(name);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROMIUM_VIDEO: &str = "v=0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 9 0 8\r\na=mid:0\r\n\
        a=rtpmap:111 opus/48000/2\r\na=rtpmap:9 G722/8000\r\n\
        a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97 103 104 105 106 112 113\r\na=mid:1\r\n\
        a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
        a=rtpmap:103 H264/90000\r\n\
        a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
        a=rtpmap:104 rtx/90000\r\na=fmtp:104 apt=103\r\n\
        a=rtpmap:105 H264/90000\r\n\
        a=fmtp:105 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=4d001f\r\n\
        a=rtpmap:106 rtx/90000\r\na=fmtp:106 apt=105\r\n\
        a=rtpmap:112 H264/90000\r\n\
        a=fmtp:112 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r\n\
        a=rtpmap:113 rtx/90000\r\na=fmtp:113 apt=112\r\n";

    #[test]
    fn prefers_main_with_packetization_mode_1() {
        let media = inspect_offer(CHROMIUM_VIDEO);
        let c = choose(&media, "video", Codec::H264).unwrap();
        assert_eq!((c.mid.as_str(), c.pt, c.rtx), ("1", 112, Some(113)));
        assert_eq!(c.profile_level_id, Some(0x4d001f));
        let a = choose(&media, "audio", Codec::G711A).unwrap();
        assert_eq!((a.mid.as_str(), a.pt, a.rtx), ("0", 8, None));
    }

    #[test]
    fn no_h265_in_chromium_offer() {
        let media = inspect_offer(CHROMIUM_VIDEO);
        assert_eq!(choose(&media, "video", Codec::H265), None);
        assert_eq!(offered_names(&media, "video"), ["VP8", "H264"]);
    }

    #[test]
    fn static_payload_types_without_rtpmap() {
        let media = inspect_offer("m=audio 9 RTP/SAVPF 0 8\r\na=mid:a\r\n");
        assert_eq!(choose(&media, "audio", Codec::G711U).unwrap().pt, 0);
        assert_eq!(choose(&media, "audio", Codec::G711A).unwrap().pt, 8);
    }

    #[test]
    fn garbage_does_not_panic() {
        for s in [
            "",
            "m=",
            "a=rtpmap:",
            "m=video\na=fmtp:x y\na=rtpmap:96",
            "a=mid:1\n",
        ] {
            let media = inspect_offer(s);
            let _ = choose(&media, "video", Codec::H264);
        }
    }
}
