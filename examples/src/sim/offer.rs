//! The device side of the live-view offer/answer (GB/T 28181-2022 §9.2.3, Annex G;
//! PROTOCOL-NOTES §5): what a platform's `s=Play` offer asks for, and the answer a camera
//! gives.
//!
//! ```
//! use gb28181::sdp::{MediaTransport, PlayOffer};
//! use gb28181_examples::sim::offer::{PlayRequest, answer};
//! let offer = PlayOffer {
//!     platform_id: "34020000002000000001".into(),
//!     address: "10.0.0.5".into(),
//!     port: 30000,
//!     transport: MediaTransport::TcpPassive,
//!     ssrc: "0200000001".into(),
//!     stream_number: None,
//! }
//! .build()
//! .to_string();
//! let req = PlayRequest::parse(offer.as_bytes()).unwrap();
//! assert_eq!(req.transport, MediaTransport::TcpPassive);
//! assert_eq!(req.ssrc, 200_000_001);
//! let sdp = answer(&req, "34020000001320000001", "10.0.0.9".parse().unwrap(), 15060, None);
//! let text = sdp.to_string();
//! assert!(text.contains("m=video 15060 TCP/RTP/AVP 96\r\n"));
//! assert!(text.contains("a=setup:active\r\n"));
//! assert!(text.contains("y=0200000001\r\n"));
//! ```

use std::net::{IpAddr, SocketAddr};

use gb28181::sdp::{
    Direction, MediaDescription, MediaTransport, SdpError, SessionDescription, Setup,
};

/// Why an offer cannot be served (answered with 488 Not Acceptable Here).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// The body is not SDP.
    #[error(transparent)]
    Sdp(#[from] SdpError),
    /// Not a live-view request.
    #[error("s={0:?}: only s=Play is simulated")]
    NotPlay(String),
    /// No `m=video` section.
    #[error("no m=video section")]
    NoVideo,
    /// No payload type mapped to PS (or 96 without rtpmap).
    #[error("no PS payload type offered (payloads {0:?})")]
    NoPs(Vec<u8>),
    /// `y=` is not a decimal 32-bit number.
    #[error("y={0:?} is not a decimal SSRC")]
    BadSsrc(String),
    /// No usable IP address in `c=`/`o=`.
    #[error("media address {0:?} is not an IP address")]
    BadAddress(String),
    /// Port 0 where we must send to the port.
    #[error("media port 0")]
    PortZero,
    /// The platform offers to send, not to receive.
    #[error("the offer is a=sendonly/inactive: nothing for a camera to send")]
    Direction,
}

/// What the platform asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayRequest {
    /// Transport mode, named as the platform offered it: `TcpPassive` = the platform listens
    /// (we connect, answering `a=setup:active`); `TcpActive` = the platform connects (we listen,
    /// answering `a=setup:passive`).
    pub transport: MediaTransport,
    /// The offer's media address and port: where UDP goes, or what we connect to.
    pub remote: SocketAddr,
    /// The `m=` protocol as offered (`RTP/AVP`, `TCP/RTP/AVP`, …), echoed in the answer.
    pub protocol: String,
    /// The payload type that carries PS.
    pub payload_type: u8,
    /// `y=` as sent; `None` when the offer had none.
    pub ssrc_text: Option<String>,
    /// `y=` as a number (0 when absent).
    pub ssrc: u32,
    /// Requested sub-stream, if any.
    pub stream_number: Option<u8>,
}

impl PlayRequest {
    /// Reads an INVITE body. Lenient about what does not matter to a camera, strict about
    /// what it must act on (address, port, SSRC, PS payload).
    pub fn parse(body: &[u8]) -> Result<PlayRequest, OfferError> {
        let sd = SessionDescription::parse_bytes(body)?;
        if !sd.session_name.eq_ignore_ascii_case("Play") {
            return Err(OfferError::NotPlay(sd.session_name.clone()));
        }
        let m = sd
            .media
            .iter()
            .find(|m| m.kind.eq_ignore_ascii_case("video"))
            .ok_or(OfferError::NoVideo)?;
        if matches!(m.direction, Some(Direction::SendOnly | Direction::Inactive)) {
            return Err(OfferError::Direction);
        }
        let payload_type = ps_payload(m)?;
        let addr_text = m
            .connection
            .as_deref()
            .or(sd.connection.as_deref())
            .unwrap_or(sd.origin_address.as_str());
        let ip: IpAddr = addr_text
            .trim()
            .parse()
            .map_err(|_| OfferError::BadAddress(addr_text.to_owned()))?;
        let transport = if !m.is_tcp() {
            MediaTransport::Udp
        } else if m.setup == Some(Setup::Active) {
            MediaTransport::TcpActive
        } else {
            // passive, actpass or absent: by default the device is the TCP client.
            MediaTransport::TcpPassive
        };
        if m.port == 0 && transport != MediaTransport::TcpActive {
            return Err(OfferError::PortZero);
        }
        let (ssrc_text, ssrc) = match sd.ssrc.as_deref().map(str::trim) {
            None | Some("") => (None, 0),
            Some(y) => (
                Some(y.to_owned()),
                y.parse::<u32>()
                    .map_err(|_| OfferError::BadSsrc(y.to_owned()))?,
            ),
        };
        Ok(PlayRequest {
            transport,
            remote: SocketAddr::new(ip, m.port),
            protocol: m.protocol.clone(),
            payload_type,
            ssrc_text,
            ssrc,
            stream_number: m.stream_number(),
        })
    }
}

/// The payload type for PS: the one mapped to `PS/90000`, else 96 when offered without
/// rtpmap (static assignment of GB/T 28181-2022 Annex G).
fn ps_payload(m: &MediaDescription) -> Result<u8, OfferError> {
    if let Some((pt, _, _)) = m
        .rtpmaps
        .iter()
        .find(|(pt, name, _)| name.eq_ignore_ascii_case("PS") && m.payloads.contains(pt))
    {
        return Ok(*pt);
    }
    if m.payloads.contains(&96) && m.encoding(96).is_none() {
        return Ok(96);
    }
    Err(OfferError::NoPs(m.payloads.clone()))
}

/// The `f=` media format line (2022 Annex G): `v/<codec>/<resolution>/<fps>/<rate type>/<kbps>`
/// then `a/<codec>/<bitrate>/<sample rate>`. Video codec 2 = H.264, 5 = H.265; resolution codes
/// 1 QCIF … 6 1080P (2016 Annex F); rate type 1 = CBR; audio `a/1/8/1` = G.711, 64 kbit/s, 8 kHz.
pub fn format_line(
    h265: bool,
    size: Option<(u32, u32)>,
    fps: f64,
    kbps: Option<u32>,
    audio: bool,
) -> String {
    let res = match size {
        Some((_, h)) if h <= 144 => "1",
        Some((_, h)) if h <= 288 => "2",
        Some((w, h)) if h <= 576 && w <= 704 => "3",
        Some((_, h)) if h <= 576 => "4",
        Some((_, h)) if h <= 720 => "5",
        Some((_, h)) if h <= 1080 => "6",
        _ => "",
    };
    let codec = if h265 { 5 } else { 2 };
    let audio = if audio { "a/1/8/1" } else { "a///" };
    let kbps = kbps.map(|k| k.to_string()).unwrap_or_default();
    format!("v/{codec}/{res}/{}/1/{kbps}{audio}", fps.round() as u32)
}

/// The camera's answer: our own `o=`/`c=`, `m=video <port> <proto> <pt>`, sendonly, PS rtpmap,
/// `a=setup` opposite to the offer's on TCP, `y=` echoing the offer, optional `f=`.
pub fn answer(
    req: &PlayRequest,
    channel_id: &str,
    address: IpAddr,
    port: u16,
    format: Option<String>,
) -> SessionDescription {
    let tcp = req.transport != MediaTransport::Udp;
    SessionDescription {
        origin_user: channel_id.to_owned(),
        origin_session: "0".into(),
        origin_version: "0".into(),
        origin_address: address.to_string(),
        session_name: "Play".into(),
        uri: None,
        connection: Some(address.to_string()),
        time: (0, 0),
        media: vec![MediaDescription {
            kind: "video".into(),
            port,
            protocol: req.protocol.clone(),
            payloads: vec![req.payload_type],
            connection: None,
            rtpmaps: vec![(req.payload_type, "PS".into(), 90_000)],
            direction: Some(Direction::SendOnly),
            setup: match req.transport {
                MediaTransport::Udp => None,
                MediaTransport::TcpPassive => Some(Setup::Active),
                MediaTransport::TcpActive => Some(Setup::Passive),
            },
            connection_new: tcp,
            attributes: Vec::new(),
        }],
        ssrc: Some(
            req.ssrc_text
                .clone()
                .unwrap_or_else(|| format!("{:010}", req.ssrc)),
        ),
        format,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gb28181::sdp::{PlayAnswer, PlayOffer};

    fn offer(t: MediaTransport) -> String {
        PlayOffer {
            platform_id: "34020000002000000001".into(),
            address: "192.0.2.7".into(),
            port: 30000,
            transport: t,
            ssrc: "0200000001".into(),
            stream_number: Some(0),
        }
        .build()
        .to_string()
    }

    #[test]
    fn every_transport_round_trips_through_the_answer() {
        for (t, setup) in [
            (MediaTransport::Udp, None),
            (MediaTransport::TcpPassive, Some(Setup::Active)),
            (MediaTransport::TcpActive, Some(Setup::Passive)),
        ] {
            let req = PlayRequest::parse(offer(t).as_bytes()).unwrap();
            assert_eq!(req.transport, t);
            assert_eq!(req.remote, "192.0.2.7:30000".parse().unwrap());
            assert_eq!((req.ssrc, req.payload_type), (200_000_001, 96));
            let f = format_line(false, Some((640, 360)), 25.0, Some(512), true);
            assert_eq!(f, "v/2/3/25/1/512a/1/8/1");
            assert_eq!(format_line(true, None, 25.0, None, false), "v/5//25/1/a///");
            let sd = answer(
                &req,
                "34020000001320000001",
                "10.1.2.3".parse().unwrap(),
                4000,
                Some(f),
            );
            let back = SessionDescription::parse(&sd.to_string()).unwrap();
            let a = PlayAnswer::from_sdp(&back).unwrap();
            assert_eq!(a.address, "10.1.2.3");
            assert_eq!(a.port, 4000);
            assert_eq!(a.tcp, t != MediaTransport::Udp);
            assert_eq!(a.setup, setup);
            assert_eq!(a.ssrc, Some(200_000_001));
            assert_eq!(a.payload, Some((96, "PS".into())));
            assert_eq!(back.ssrc.as_deref(), Some("0200000001"));
            assert_eq!(back.media[0].direction, Some(Direction::SendOnly));
        }
    }

    #[test]
    fn vendor_variants() {
        // actpass and no setup at all: the device connects.
        let base = "v=0\r\no=p 0 0 IN IP4 10.0.0.1\r\ns=Play\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n";
        let r = PlayRequest::parse(
            format!("{base}m=video 6000 TCP/RTP/AVP 98 96\r\na=rtpmap:96 ps/90000\r\na=setup:actpass\r\ny=0100000002\r\n")
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(r.transport, MediaTransport::TcpPassive);
        assert_eq!(r.payload_type, 96);
        // 96 without rtpmap, no y=: SSRC 0, the answer writes 10 digits.
        let r = PlayRequest::parse(format!("{base}m=video 6000 RTP/AVP 96\n").as_bytes()).unwrap();
        assert_eq!((r.ssrc_text.as_deref(), r.ssrc), (None, 0));
        let sd = answer(&r, "c", "10.0.0.2".parse().unwrap(), 1, None);
        assert_eq!(sd.ssrc.as_deref(), Some("0000000000"));
    }

    #[test]
    fn unusable_offers_are_refused() {
        let base = "v=0\r\no=p 0 0 IN IP4 10.0.0.1\r\ns=Play\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n";
        type Check = fn(&OfferError) -> bool;
        let cases: [(&str, Check); 8] = [
            ("hello", |e| matches!(e, OfferError::Sdp(_))),
            (
                "v=0\r\no=p 0 0 IN IP4 10.0.0.1\r\ns=Playback\r\nm=video 1 RTP/AVP 96\r\n",
                |e| matches!(e, OfferError::NotPlay(_)),
            ),
            ("m=audio 6000 RTP/AVP 8\r\n", |e| *e == OfferError::NoVideo),
            (
                "m=video 6000 RTP/AVP 98\r\na=rtpmap:98 H264/90000\r\n",
                |e| matches!(e, OfferError::NoPs(_)),
            ),
            ("m=video 6000 RTP/AVP 96\r\ny=02000x0001\r\n", |e| {
                matches!(e, OfferError::BadSsrc(_))
            }),
            ("m=video 6000 RTP/AVP 96\r\ny=99999999999\r\n", |e| {
                matches!(e, OfferError::BadSsrc(_))
            }),
            ("m=video 0 RTP/AVP 96\r\n", |e| *e == OfferError::PortZero),
            ("m=video 6000 RTP/AVP 96\r\na=sendonly\r\n", |e| {
                *e == OfferError::Direction
            }),
        ];
        for (tail, want) in cases {
            let text = if tail.starts_with("v=") || tail == "hello" {
                tail.to_owned()
            } else {
                format!("{base}{tail}")
            };
            let e = PlayRequest::parse(text.as_bytes()).unwrap_err();
            assert!(want(&e), "{tail:?}: {e:?}");
        }
        let named =
            "v=0\r\no=p 0 0 IN IP4 host.example\r\ns=Play\r\nt=0 0\r\nm=video 1 RTP/AVP 96\r\n";
        assert!(matches!(
            PlayRequest::parse(named.as_bytes()),
            Err(OfferError::BadAddress(_))
        ));
        assert!(PlayRequest::parse(&[0xff, 0xfe, 0x00]).is_err());
    }
}
