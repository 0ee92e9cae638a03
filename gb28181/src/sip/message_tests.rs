//! Unit tests of message parsing and serialization, on real Hikvision captures.

use super::*;
use crate::sip::{CSeq, Host, NameAddr};

const REGISTER: &[u8] = include_bytes!("../../tests/data/sip/hikvision_ipc_register.sip");
const KEEPALIVE: &[u8] = include_bytes!("../../tests/data/sip/hikvision_ipc_keepalive.sip");
const INVITE_200: &[u8] = include_bytes!("../../tests/data/sip/hikvision_ipc_invite_200ok_sdp.sip");
const CATALOG: &[u8] =
    include_bytes!("../../tests/data/sip/hikvision_nvr_catalog_gb2312_page1.sip");

fn request(raw: &[u8]) -> Request {
    match Message::parse(raw).unwrap() {
        Message::Request(r) => r,
        Message::Response(r) => panic!("expected a request, got {}", r.status),
    }
}

fn err(raw: &[u8]) -> ParseError {
    Message::parse(raw).unwrap_err()
}

#[test]
fn hikvision_register() {
    let r = request(REGISTER);
    assert_eq!(r.method, Method::Register);
    assert_eq!(r.uri.to_string(), "sip:34020000002000000001@3402000000");
    let via = r.headers.top_via().unwrap();
    assert_eq!(via.host, Host::Ipv4([192, 168, 137, 11].into()));
    assert_eq!(via.port, Some(5060));
    assert_eq!(via.rport(), Some(None));
    assert_eq!(via.branch(), Some("z9hG4bK1371463273"));
    assert_eq!(r.headers.from().unwrap().tag(), Some("2043466181"));
    assert_eq!(r.headers.to().unwrap().tag(), None);
    assert_eq!(r.headers.call_id(), Some("1011047669"));
    assert_eq!(r.headers.cseq().unwrap(), CSeq::new(1, Method::Register));
    let contact = r.headers.contact().unwrap();
    assert_eq!(contact[0].uri.as_sip().unwrap().port, Some(5060));
    assert_eq!(r.headers.max_forwards(), Some(70));
    assert_eq!(r.headers.expires(), Some(3600));
    assert_eq!(r.headers.get(&HeaderName::UserAgent), Some("IP Camera"));
    assert!(r.body.is_empty());
    r.validate().unwrap();
    // Serialization of this canonical capture is byte-exact.
    assert_eq!(&r.to_bytes()[..], REGISTER);
}

#[test]
fn hikvision_keepalive_with_padded_content_length_and_lf_body() {
    let r = request(KEEPALIVE);
    assert_eq!(r.method, Method::Message);
    assert_eq!(r.headers.content_type(), Some("Application/MANSCDP+xml"));
    assert_eq!(r.headers.get(&HeaderName::ContentLength), Some("175"));
    assert_eq!(r.body.len(), 175);
    assert!(
        r.body
            .starts_with(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Notify>\n")
    );
    let again = Message::parse(&r.to_bytes()).unwrap();
    assert_eq!(again, Message::Request(r));
}

#[test]
fn hikvision_invite_answer_and_nvr_catalog() {
    let Message::Response(resp) = Message::parse(INVITE_200).unwrap() else {
        panic!()
    };
    assert_eq!((resp.status, resp.reason.as_str()), (200, "OK"));
    assert_eq!(resp.body.len(), 263);
    assert!(resp.body.ends_with(b"y=0000630886\r\nf=\r\n"));
    resp.validate().unwrap();
    let r = request(CATALOG);
    assert_eq!(
        r.uri.as_sip().unwrap().host,
        Host::Domain("3402000000.spvmn.cn".into())
    );
    assert_eq!(r.body.len(), 909);
    assert!(
        r.body
            .starts_with(b"<?xml version=\"1.0\" encoding=\"gb2312\"?>\r\n<Response>\n")
    );
}

#[test]
fn parse_bytes_shares_the_buffer() {
    let buf = Bytes::from_static(KEEPALIVE);
    let msg = Message::parse_bytes(&buf).unwrap();
    assert_eq!(msg.body().as_ptr(), buf[KEEPALIVE.len() - 175..].as_ptr());
    assert_eq!(msg, Message::parse(KEEPALIVE).unwrap());
}

#[test]
fn lf_only_leading_crlf_and_trailing_octets() {
    let lf: Vec<u8> = REGISTER.iter().copied().filter(|&b| b != b'\r').collect();
    assert_eq!(
        Message::parse(&lf).unwrap(),
        Message::parse(REGISTER).unwrap()
    );
    let mut padded = b"\r\n\r\n".to_vec();
    padded.extend_from_slice(REGISTER);
    padded.extend_from_slice(b"garbage after Content-Length: 0");
    assert_eq!(
        Message::parse(&padded).unwrap(),
        Message::parse(REGISTER).unwrap()
    );
}

#[test]
fn datagram_body_rules() {
    // No Content-Length: the rest of the datagram.
    let m = Message::parse(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\n\r\nrest").unwrap();
    assert_eq!(&m.body()[..], b"rest");
    let e = err(b"SIP/2.0 200 OK\r\nContent-Length: 5\r\n\r\nrest");
    assert_eq!(
        e,
        ParseError::new(
            37,
            ParseErrorKind::BodyTruncated {
                declared: 5,
                available: 4
            }
        )
    );
    assert_eq!(
        e.to_string(),
        "at byte 37: Content-Length 5 exceeds the 4 bytes after the header fields"
    );
    let e = err(b"SIP/2.0 200 OK\r\nContent-Length: -1\r\n\r\n");
    assert_eq!(e, ParseError::expected(32, "Content-Length as 1*DIGIT"));
    // Conflicting values: body is the rest; validate() reports it.
    let Message::Request(r) =
        Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nl: 2\r\n\r\nabc").unwrap()
    else {
        panic!()
    };
    assert_eq!(&r.body[..], b"abc");
}

#[test]
fn start_line_errors_name_the_rule() {
    for (raw, offset, kind) in [
        (
            &b"INVITE sip:alan@jasomi.com\r\n\r\n"[..],
            26,
            ParseErrorKind::Expected("SIP-Version in request line"),
        ),
        (
            b"OPTIONS sip:a@b SIP/7.0\r\n\r\n",
            16,
            ParseErrorKind::UnsupportedVersion,
        ),
        (
            b"OPTIONS sip:a@b HTTP/1.1\r\n\r\n",
            16,
            ParseErrorKind::Expected("SIP-Version in request line"),
        ),
        (
            b"SIP/2.0 4294967301 x\r\n\r\n",
            8,
            ParseErrorKind::Expected("3-digit Status-Code"),
        ),
        (
            b"SIP/2.0 099 x\r\n\r\n",
            8,
            ParseErrorKind::Expected("Status-Code between 100 and 699"),
        ),
        (
            b"SIP/2.0 20 OK\r\n\r\n",
            8,
            ParseErrorKind::Expected("3-digit Status-Code"),
        ),
        (
            b"SIP/2.0 200OK\r\n\r\n",
            11,
            ParseErrorKind::Expected("SP after Status-Code"),
        ),
        (
            b"SIP/2.0200 OK\r\n\r\n",
            0,
            ParseErrorKind::UnsupportedVersion,
        ),
        (
            b"SIP/2.x 200 OK\r\n\r\n",
            0,
            ParseErrorKind::Expected("SIP-Version in status line"),
        ),
        (
            b"SIP/3.0 200 OK\r\n\r\n",
            0,
            ParseErrorKind::UnsupportedVersion,
        ),
        (
            b"INVITE <sip:a@b> SIP/2.0\r\n\r\n",
            7,
            ParseErrorKind::Expected("URI scheme"),
        ),
        (
            b"INVITE sip:a@b?Route=x SIP/2.0\r\n\r\n",
            14,
            ParseErrorKind::Expected("Request-URI without headers"),
        ),
        (
            b"Via: SIP/2.0/UDP h\r\n\r\n",
            3,
            ParseErrorKind::Expected("SP after method"),
        ),
        (
            b" INVITE sip:a@b SIP/2.0\r\n\r\n",
            0,
            ParseErrorKind::Expected("method token at start of request line"),
        ),
        (
            b"INVITE sip:a@b SIP/2.0 x\r\n\r\n",
            23,
            ParseErrorKind::Expected("end of request line"),
        ),
        (
            b"INVITE sip:a@b SIP/2.0\r\n",
            24,
            ParseErrorKind::Expected("empty line ending the header section"),
        ),
        (
            b"INVITE sip:a@b SIP/2.0",
            22,
            ParseErrorKind::Expected("CRLF ending the start line"),
        ),
        (
            b"\r\n\r\n",
            4,
            ParseErrorKind::Expected("CRLF ending the start line"),
        ),
        (
            b"INVITE sip:a@b SIP/2.0\r\r\n\r\n",
            22,
            ParseErrorKind::Expected("LF after CR"),
        ),
        (
            b"INVITE sip:\xff@b SIP/2.0\r\n\r\n",
            11,
            ParseErrorKind::Expected("ASCII Request-URI"),
        ),
    ] {
        assert_eq!(
            err(raw),
            ParseError::new(offset, kind),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn tolerated_start_line_whitespace() {
    // RFC 4475 §3.1.2.9 / §3.1.2.10 allow ignoring extra SP; we re-send with single SP.
    let r = request(b"INVITE  sip:user@example.com  SIP/2.0  \r\nl: 0\r\n\r\n");
    assert_eq!(r.uri.to_string(), "sip:user@example.com");
    assert!(
        r.to_bytes()
            .starts_with(b"INVITE sip:user@example.com SIP/2.0\r\n")
    );
    let Message::Response(r) = Message::parse(b"sip/2.0 100\r\n\r\n").unwrap() else {
        panic!()
    };
    assert_eq!((r.status, r.reason.as_str()), (100, ""));
}

#[test]
fn serialization_is_canonical_and_injection_safe() {
    let mut r = request(
        b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h\r\ni: x\r\nl: 7\r\nX-Y: 1\r\n\r\n0123456",
    );
    assert_eq!(
        &r.to_bytes()[..],
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nCall-ID: x\r\nContent-Length: 7\r\nX-Y: 1\r\n\r\n0123456"
    );
    r.headers.push(HeaderName::Subject, "a\r\nInjected: yes");
    r.body = Bytes::from_static(b"xy");
    let again = request(&r.to_bytes());
    assert_eq!(
        again.headers.get(&HeaderName::Subject),
        Some("a  Injected: yes")
    );
    assert_eq!(again.headers.get(&HeaderName::ContentLength), Some("2"));
    assert_eq!(again.headers.get(&HeaderName::from("Injected")), None);
    // Without Content-Length one is appended.
    let bare = Request::new(Method::Options, "sip:a@b".parse().unwrap());
    assert_eq!(
        &bare.to_bytes()[..],
        b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n"
    );
}

#[test]
fn response_for_request_copies_dialog_headers() {
    let reg = request(REGISTER);
    let mut ok = Response::for_request(&reg, 200);
    ok.headers.push(HeaderName::Expires, "3600");
    let bytes = ok.to_bytes();
    let text = std::str::from_utf8(&bytes).unwrap();
    assert_eq!(
        text,
        "SIP/2.0 200 OK\r\n\
         Via: SIP/2.0/UDP 192.168.137.11:5060;rport;branch=z9hG4bK1371463273\r\n\
         From: <sip:34020000001320000003@3402000000>;tag=2043466181\r\n\
         To: <sip:34020000001320000003@3402000000>\r\n\
         Call-ID: 1011047669\r\n\
         CSeq: 1 REGISTER\r\n\
         Expires: 3600\r\n\
         Content-Length: 0\r\n\r\n"
    );
    assert_eq!(Response::new(401).reason, "Unauthorized");
    assert_eq!(Response::new(299).reason, "");
    assert_eq!(
        Response::new(404).to_bytes().as_ref(),
        b"SIP/2.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    );
}

#[test]
fn validate_reports_rfc4475_semantic_errors() {
    let base = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n";
    request(format!("{base}\r\n").as_bytes())
        .validate()
        .unwrap();
    let check = |extra: &str, kind: ParseErrorKind| {
        let r = request(format!("{base}{extra}\r\n").as_bytes());
        assert_eq!(r.validate().unwrap_err().kind, kind, "{extra}");
    };
    check("To: <sip:e@f>\r\n", ParseErrorKind::DuplicateHeader("To"));
    check("l: 1\r\nl: 2\r\n", ParseErrorKind::ConflictingContentLength);
    let r = request(
        base.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE")
            .add_crlf()
            .as_bytes(),
    );
    assert_eq!(
        r.validate().unwrap_err().kind,
        ParseErrorKind::CSeqMethodMismatch
    );
    let r = request(base.replace("Call-ID: x\r\n", "").add_crlf().as_bytes());
    assert_eq!(
        r.validate().unwrap_err().kind,
        ParseErrorKind::MissingHeader("Call-ID")
    );
    let r = request(base.replace("<sip:c@d>", "<sip:c@d").add_crlf().as_bytes());
    let e = r.validate().unwrap_err();
    assert_eq!(
        e.to_string(),
        "at byte 8 of the To header value: expected '>' closing the name-addr"
    );
    let resp = Response::for_request(&request(format!("{base}\r\n").as_bytes()), 200);
    resp.validate().unwrap();
    let to: NameAddr = resp.headers.to().unwrap();
    assert_eq!(to.tag(), None);
}

trait AddCrlf {
    fn add_crlf(self) -> String;
}

impl AddCrlf for String {
    fn add_crlf(mut self) -> String {
        self.push_str("\r\n");
        self
    }
}
