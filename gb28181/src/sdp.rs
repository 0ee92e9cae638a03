//! SDP as GB/T 28181 uses it for INVITE (2022 Annex G, §9.2.3; RFC 4566 / RFC 4145 /
//! RFC 4571): `s=Play|Playback|Download|Talk`, `y=` SSRC, `f=` media format, `a=setup`,
//! `a=connection`, `a=streamnumber` and the vendor sub-stream variants.
//!
//! Parsing is lenient (LF or CRLF, unknown lines kept, `y=`/`f=` anywhere); building writes
//! CRLF lines in the order devices expect.
//!
//! ```
//! use gb28181::sdp::{MediaTransport, PlayOffer, SessionDescription};
//! let offer = PlayOffer {
//!     platform_id: "34020000002000000001".into(),
//!     address: "10.0.0.5".into(),
//!     port: 30000,
//!     transport: MediaTransport::TcpPassive,
//!     ssrc: "0200000001".into(),
//!     stream_number: Some(0),
//! }
//! .build();
//! let text = offer.to_string();
//! assert!(text.contains("m=video 30000 TCP/RTP/AVP 96 97 98 99\r\n"));
//! assert!(text.contains("a=setup:passive\r\n"));
//! let back = SessionDescription::parse(&text).unwrap();
//! assert_eq!(back.ssrc.as_deref(), Some("0200000001"));
//! ```

use std::fmt;

/// Why an SDP body could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The body is not text.
    #[error("SDP body is not UTF-8")]
    NotText,
    /// A required line is missing.
    #[error("SDP has no {0} line")]
    Missing(&'static str),
    /// A line is malformed.
    #[error("SDP line {line} is malformed: expected {expected}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What was expected.
        expected: &'static str,
    },
}

/// How RTP travels (GB/T 28181-2022 §9.2.3, RFC 4571 / RFC 4145).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaTransport {
    /// RTP over UDP (`RTP/AVP`).
    Udp,
    /// RTP over TCP, the device connects to us (we offer `a=setup:passive`).
    TcpPassive,
    /// RTP over TCP, we connect to the device (we offer `a=setup:active`).
    TcpActive,
}

impl MediaTransport {
    /// `udp`, `tcp-passive`, `tcp-active`.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaTransport::Udp => "udp",
            MediaTransport::TcpPassive => "tcp-passive",
            MediaTransport::TcpActive => "tcp-active",
        }
    }

    /// Parse `udp`, `tcp-passive`/`tcp` or `tcp-active`.
    pub fn parse(s: &str) -> Option<MediaTransport> {
        match s.trim().to_ascii_lowercase().as_str() {
            "udp" => Some(MediaTransport::Udp),
            "tcp" | "tcp-passive" | "tcp_passive" | "passive" => Some(MediaTransport::TcpPassive),
            "tcp-active" | "tcp_active" | "active" => Some(MediaTransport::TcpActive),
            _ => None,
        }
    }
}

/// `a=setup` (RFC 4145 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// This side connects.
    Active,
    /// This side listens.
    Passive,
    /// Either.
    ActPass,
}

/// Media direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendonly`
    SendOnly,
    /// `a=recvonly`
    RecvOnly,
    /// `a=sendrecv`
    SendRecv,
    /// `a=inactive`
    Inactive,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `video` or `audio`.
    pub kind: String,
    /// Port.
    pub port: u16,
    /// `RTP/AVP`, `TCP/RTP/AVP`, `RTP/AVP/TCP` …
    pub protocol: String,
    /// Payload types.
    pub payloads: Vec<u8>,
    /// Media-level `c=` address.
    pub connection: Option<String>,
    /// `a=rtpmap:` entries: (payload type, encoding name, clock rate).
    pub rtpmaps: Vec<(u8, String, u32)>,
    /// Direction.
    pub direction: Option<Direction>,
    /// `a=setup`.
    pub setup: Option<Setup>,
    /// `a=connection:new`.
    pub connection_new: bool,
    /// Other attributes in order, as (name, value).
    pub attributes: Vec<(String, Option<String>)>,
}

impl MediaDescription {
    /// True for RTP over TCP.
    pub fn is_tcp(&self) -> bool {
        self.protocol.to_ascii_uppercase().contains("TCP")
    }

    /// The encoding name for a payload type (`PS`, `H264`, `PCMA` …).
    pub fn encoding(&self, pt: u8) -> Option<&str> {
        self.rtpmaps
            .iter()
            .find(|(p, _, _)| *p == pt)
            .map(|(_, n, _)| n.as_str())
    }

    /// The requested sub-stream: `a=streamnumber` (2022), or the vendor variants
    /// `a=stream`, `a=streamprofile`, `a=streamMode:MAIN|SUB`.
    pub fn stream_number(&self) -> Option<u8> {
        for (name, value) in &self.attributes {
            let v = value.as_deref().unwrap_or("").trim();
            match name.to_ascii_lowercase().as_str() {
                "streamnumber" | "stream" | "streamprofile" => {
                    if let Ok(n) = v.parse() {
                        return Some(n);
                    }
                }
                "streammode" => {
                    return Some(if v.eq_ignore_ascii_case("SUB") { 1 } else { 0 });
                }
                _ => {}
            }
        }
        None
    }
}

/// A parsed or built SDP session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=` username (the sender's GB ID).
    pub origin_user: String,
    /// `o=` session id.
    pub origin_session: String,
    /// `o=` version.
    pub origin_version: String,
    /// `o=` address.
    pub origin_address: String,
    /// `s=` Play, Playback, Download, Talk.
    pub session_name: String,
    /// `u=` (playback: `channelID:type`).
    pub uri: Option<String>,
    /// Session-level `c=` address.
    pub connection: Option<String>,
    /// `t=` start and stop (0 0 for live).
    pub time: (u64, u64),
    /// `m=` sections.
    pub media: Vec<MediaDescription>,
    /// `y=` SSRC as sent (10 decimal digits by the standard; devices also send fewer).
    pub ssrc: Option<String>,
    /// `f=` media format line, as sent.
    pub format: Option<String>,
}

impl SessionDescription {
    /// Parse an SDP body.
    pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
        let mut sd = SessionDescription {
            origin_user: String::new(),
            origin_session: "0".into(),
            origin_version: "0".into(),
            origin_address: String::new(),
            session_name: String::new(),
            uri: None,
            connection: None,
            time: (0, 0),
            media: Vec::new(),
            ssrc: None,
            format: None,
        };
        let mut saw_version = false;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r').trim();
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim();
            let lineno = n + 1;
            match k.trim() {
                "v" => saw_version = true,
                "o" => {
                    let f: Vec<&str> = v.split_whitespace().collect();
                    if f.len() < 6 {
                        return Err(SdpError::Malformed {
                            line: lineno,
                            expected: "o=<user> <id> <version> IN IP4 <address>",
                        });
                    }
                    sd.origin_user = f[0].into();
                    sd.origin_session = f[1].into();
                    sd.origin_version = f[2].into();
                    sd.origin_address = f[5].into();
                }
                "s" => sd.session_name = v.into(),
                "u" => sd.uri = Some(v.into()),
                "c" => {
                    let addr = v.split_whitespace().nth(2).map(str::to_owned).ok_or(
                        SdpError::Malformed {
                            line: lineno,
                            expected: "c=IN IP4 <address>",
                        },
                    )?;
                    match sd.media.last_mut() {
                        Some(m) => m.connection = Some(addr),
                        None => sd.connection = Some(addr),
                    }
                }
                "t" => {
                    let mut it = v.split_whitespace().map(|x| x.parse::<u64>().unwrap_or(0));
                    sd.time = (it.next().unwrap_or(0), it.next().unwrap_or(0));
                }
                "m" => {
                    let f: Vec<&str> = v.split_whitespace().collect();
                    let port = f.get(1).and_then(|p| p.split('/').next()?.parse().ok());
                    let (Some(kind), Some(port), Some(proto)) = (f.first(), port, f.get(2)) else {
                        return Err(SdpError::Malformed {
                            line: lineno,
                            expected: "m=<media> <port> <proto> <fmt> …",
                        });
                    };
                    sd.media.push(MediaDescription {
                        kind: (*kind).into(),
                        port,
                        protocol: (*proto).into(),
                        payloads: f[3..].iter().filter_map(|p| p.parse().ok()).collect(),
                        connection: None,
                        rtpmaps: Vec::new(),
                        direction: None,
                        setup: None,
                        connection_new: false,
                        attributes: Vec::new(),
                    });
                }
                "y" => sd.ssrc = Some(v.into()),
                "f" => sd.format = Some(v.into()),
                "a" => {
                    let (name, value) = match v.split_once(':') {
                        Some((n, val)) => (n.trim(), Some(val.trim())),
                        None => (v, None),
                    };
                    let Some(m) = sd.media.last_mut() else {
                        continue;
                    };
                    match (name.to_ascii_lowercase().as_str(), value) {
                        ("rtpmap", Some(val)) => {
                            let mut it = val.split_whitespace();
                            let pt = it.next().and_then(|p| p.parse().ok());
                            let enc = it.next().unwrap_or("");
                            let mut e = enc.split('/');
                            let name = e.next().unwrap_or("").to_owned();
                            let rate = e.next().and_then(|r| r.parse().ok()).unwrap_or(90_000);
                            if let Some(pt) = pt {
                                m.rtpmaps.push((pt, name, rate));
                            }
                        }
                        ("sendonly", _) => m.direction = Some(Direction::SendOnly),
                        ("recvonly", _) => m.direction = Some(Direction::RecvOnly),
                        ("sendrecv", _) => m.direction = Some(Direction::SendRecv),
                        ("inactive", _) => m.direction = Some(Direction::Inactive),
                        ("setup", Some(val)) => {
                            m.setup = match val.to_ascii_lowercase().as_str() {
                                "active" => Some(Setup::Active),
                                "passive" => Some(Setup::Passive),
                                "actpass" => Some(Setup::ActPass),
                                _ => None,
                            }
                        }
                        ("connection", Some(val)) if val.eq_ignore_ascii_case("new") => {
                            m.connection_new = true
                        }
                        _ => m
                            .attributes
                            .push((name.to_owned(), value.map(str::to_owned))),
                    }
                }
                _ => {}
            }
        }
        if !saw_version && sd.media.is_empty() {
            return Err(SdpError::Missing("v="));
        }
        if sd.media.is_empty() {
            return Err(SdpError::Missing("m="));
        }
        Ok(sd)
    }

    /// Parse a body given as bytes.
    pub fn parse_bytes(body: &[u8]) -> Result<SessionDescription, SdpError> {
        SessionDescription::parse(std::str::from_utf8(body).map_err(|_| SdpError::NotText)?)
    }

    /// The address media goes to or comes from: the first `m=` section's `c=`, else the
    /// session's, else the origin's.
    pub fn media_address(&self) -> Option<&str> {
        self.media
            .first()
            .and_then(|m| m.connection.as_deref())
            .or(self.connection.as_deref())
            .or(Some(self.origin_address.as_str()).filter(|a| !a.is_empty()))
    }

    /// The `y=` SSRC as a number (the RTP SSRC is that decimal value as u32).
    pub fn ssrc_value(&self) -> Option<u32> {
        self.ssrc.as_deref().and_then(|s| s.trim().parse().ok())
    }
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v=0\r\n")?;
        write!(
            f,
            "o={} {} {} IN IP4 {}\r\n",
            self.origin_user, self.origin_session, self.origin_version, self.origin_address
        )?;
        write!(f, "s={}\r\n", self.session_name)?;
        if let Some(u) = &self.uri {
            write!(f, "u={u}\r\n")?;
        }
        if let Some(c) = &self.connection {
            write!(f, "c=IN IP4 {c}\r\n")?;
        }
        write!(f, "t={} {}\r\n", self.time.0, self.time.1)?;
        for m in &self.media {
            write!(f, "m={} {} {}", m.kind, m.port, m.protocol)?;
            for p in &m.payloads {
                write!(f, " {p}")?;
            }
            write!(f, "\r\n")?;
            if let Some(c) = &m.connection {
                write!(f, "c=IN IP4 {c}\r\n")?;
            }
            if let Some(d) = m.direction {
                let s = match d {
                    Direction::SendOnly => "sendonly",
                    Direction::RecvOnly => "recvonly",
                    Direction::SendRecv => "sendrecv",
                    Direction::Inactive => "inactive",
                };
                write!(f, "a={s}\r\n")?;
            }
            for (pt, name, rate) in &m.rtpmaps {
                write!(f, "a=rtpmap:{pt} {name}/{rate}\r\n")?;
            }
            if let Some(s) = m.setup {
                let s = match s {
                    Setup::Active => "active",
                    Setup::Passive => "passive",
                    Setup::ActPass => "actpass",
                };
                write!(f, "a=setup:{s}\r\n")?;
            }
            if m.connection_new {
                write!(f, "a=connection:new\r\n")?;
            }
            for (name, value) in &m.attributes {
                match value {
                    Some(v) => write!(f, "a={name}:{v}\r\n")?,
                    None => write!(f, "a={name}\r\n")?,
                }
            }
        }
        if let Some(y) = &self.ssrc {
            write!(f, "y={y}\r\n")?;
        }
        if let Some(fl) = &self.format {
            write!(f, "f={fl}\r\n")?;
        }
        Ok(())
    }
}

/// The platform's live-view offer to a channel (2022 §9.2.3, PROTOCOL-NOTES §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayOffer {
    /// Platform ID (o= user).
    pub platform_id: String,
    /// Address announced for media (`media.announce_ip`).
    pub address: String,
    /// Our media port (UDP receive port, or TCP listen port for passive).
    pub port: u16,
    /// Transport mode.
    pub transport: MediaTransport,
    /// SSRC (`y=`), 10 digits.
    pub ssrc: String,
    /// Sub-stream (0 main, 1 sub); written as `a=streamnumber` (2022).
    pub stream_number: Option<u8>,
}

impl PlayOffer {
    /// The offer: PS/MPEG4/H264/H265 payloads 96–99 (2022 Annex G numbering), recvonly.
    pub fn build(&self) -> SessionDescription {
        let tcp = self.transport != MediaTransport::Udp;
        let mut attributes = Vec::new();
        if let Some(n) = self.stream_number {
            attributes.push(("streamnumber".to_owned(), Some(n.to_string())));
        }
        SessionDescription {
            origin_user: self.platform_id.clone(),
            origin_session: "0".into(),
            origin_version: "0".into(),
            origin_address: self.address.clone(),
            session_name: "Play".into(),
            uri: None,
            connection: Some(self.address.clone()),
            time: (0, 0),
            media: vec![MediaDescription {
                kind: "video".into(),
                port: self.port,
                protocol: if tcp { "TCP/RTP/AVP" } else { "RTP/AVP" }.into(),
                payloads: vec![96, 97, 98, 99],
                connection: None,
                rtpmaps: vec![
                    (96, "PS".into(), 90_000),
                    (97, "MPEG4".into(), 90_000),
                    (98, "H264".into(), 90_000),
                    (99, "H265".into(), 90_000),
                ],
                direction: Some(Direction::RecvOnly),
                setup: match self.transport {
                    MediaTransport::Udp => None,
                    MediaTransport::TcpPassive => Some(Setup::Passive),
                    MediaTransport::TcpActive => Some(Setup::Active),
                },
                connection_new: tcp,
                attributes,
            }],
            ssrc: Some(self.ssrc.clone()),
            format: None,
        }
    }
}

/// What a device answered, reduced to what the media side needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayAnswer {
    /// Device media address.
    pub address: String,
    /// Device media port (its TCP listen port when we connect).
    pub port: u16,
    /// RTP over TCP.
    pub tcp: bool,
    /// The device's `a=setup`.
    pub setup: Option<Setup>,
    /// The SSRC the device says it will use (`y=`), when it sent one.
    pub ssrc: Option<u32>,
    /// The payload type it chose and its encoding name.
    pub payload: Option<(u8, String)>,
}

impl PlayAnswer {
    /// Reduce a device's answer.
    pub fn from_sdp(sd: &SessionDescription) -> Result<PlayAnswer, SdpError> {
        let m = sd
            .media
            .iter()
            .find(|m| m.kind.eq_ignore_ascii_case("video"))
            .or(sd.media.first())
            .ok_or(SdpError::Missing("m="))?;
        let address = sd
            .media_address()
            .ok_or(SdpError::Missing("c="))?
            .to_owned();
        let payload = m
            .payloads
            .first()
            .map(|pt| (*pt, m.encoding(*pt).unwrap_or("PS").to_owned()));
        Ok(PlayAnswer {
            address,
            port: m.port,
            tcp: m.is_tcp(),
            setup: m.setup,
            ssrc: sd.ssrc_value(),
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hikvision_answer() {
        let text = "v=0\r\no=34020000001320000003 1073 1073 IN IP4 192.168.137.11\r\ns=Play\r\nc=IN IP4 192.168.137.11\r\nt=0 0\r\nm=video 15060 RTP/AVP 96\r\na=setup:active\r\na=sendonly\r\na=rtpmap:96 PS/90000\r\na=username:34020000001320000003\r\na=password:12345678\r\na=filesize:0\r\ny=0000630886\r\nf=\r\n";
        let sd = SessionDescription::parse(text).unwrap();
        let a = PlayAnswer::from_sdp(&sd).unwrap();
        assert_eq!(a.address, "192.168.137.11");
        assert_eq!(a.port, 15060);
        assert!(!a.tcp);
        assert_eq!(a.ssrc, Some(630886));
        assert_eq!(a.payload, Some((96, "PS".into())));
        assert_eq!(sd.format.as_deref(), Some(""));
        assert_eq!(sd.media[0].direction, Some(Direction::SendOnly));
    }

    #[test]
    fn offers_round_trip_for_every_transport() {
        for t in [
            MediaTransport::Udp,
            MediaTransport::TcpPassive,
            MediaTransport::TcpActive,
        ] {
            let offer = PlayOffer {
                platform_id: "34020000002000000001".into(),
                address: "10.0.0.5".into(),
                port: 30002,
                transport: t,
                ssrc: "0200000001".into(),
                stream_number: Some(1),
            }
            .build();
            let back = SessionDescription::parse(&offer.to_string()).unwrap();
            assert_eq!(back, offer);
            assert_eq!(back.media[0].stream_number(), Some(1));
            assert_eq!(back.media[0].is_tcp(), t != MediaTransport::Udp);
        }
    }

    #[test]
    fn vendor_substream_variants() {
        let base =
            "v=0\no=x 0 0 IN IP4 1.2.3.4\ns=Play\nc=IN IP4 1.2.3.4\nt=0 0\nm=video 1 RTP/AVP 96\n";
        for (attr, want) in [
            ("a=stream:1", 1),
            ("a=streamprofile:2", 2),
            ("a=streamMode:SUB", 1),
            ("a=streamMode:MAIN", 0),
            ("a=streamnumber:0", 0),
        ] {
            let sd = SessionDescription::parse(&format!("{base}{attr}\n")).unwrap();
            assert_eq!(sd.media[0].stream_number(), Some(want), "{attr}");
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(SessionDescription::parse("hello").is_err());
        assert!(SessionDescription::parse("v=0\r\nm=video x RTP/AVP\r\n").is_err());
        assert!(SessionDescription::parse_bytes(&[0xff, 0xfe]).is_err());
    }
}
