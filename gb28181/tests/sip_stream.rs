//! TCP framing limits on real device messages: size limit, mandatory Content-Length,
//! keepalive CRLFs, sticky errors.

use bytes::BytesMut;
use gb28181::sip::{HeaderName, Message, ParseError, ParseErrorKind, StreamDecoder};

const REGISTER: &[u8] = include_bytes!("data/sip/hikvision_ipc_register.sip");
const KEEPALIVE: &[u8] = include_bytes!("data/sip/hikvision_ipc_keepalive.sip");
const CATALOG: &[u8] = include_bytes!("data/sip/hikvision_nvr_catalog_gb2312_page1.sip");
const INVITE_200_TCP: &[u8] =
    include_bytes!("data/sip/srs_utest/hikvision_ipc_invite_200ok_tcp_active.sip");

fn drain(dec: &mut StreamDecoder, buf: &mut BytesMut) -> Result<Vec<Message>, ParseError> {
    let mut out = Vec::new();
    while let Some(m) = dec.decode(buf)? {
        out.push(m);
    }
    Ok(out)
}

#[test]
fn message_over_the_limit_is_an_error() {
    // The NVR catalog page is 1317 bytes: 408 of header section and a 909-byte body.
    assert_eq!(CATALOG.len(), 1317);
    let exact = drain(
        &mut StreamDecoder::new(CATALOG.len()),
        &mut BytesMut::from(CATALOG),
    )
    .unwrap();
    assert_eq!(exact.len(), 1);

    let mut dec = StreamDecoder::new(1000);
    let mut buf = BytesMut::from(&CATALOG[..500]);
    // The header section fits, and the announced total is refused before the body arrives.
    let e = dec.decode(&mut buf).unwrap_err();
    assert_eq!(
        e,
        ParseError::new(408, ParseErrorKind::MessageTooLarge { limit: 1000 })
    );
    assert_eq!(
        e.to_string(),
        "at byte 408: message larger than the 1000-byte limit"
    );

    // A limit below the header section refuses it as soon as more than the limit is buffered
    // without an empty line.
    let mut dec = StreamDecoder::new(300);
    let mut buf = BytesMut::from(&CATALOG[..300]);
    assert!(dec.decode(&mut buf).unwrap().is_none());
    buf.extend_from_slice(&CATALOG[300..301]);
    assert_eq!(
        dec.decode(&mut buf).unwrap_err().kind,
        ParseErrorKind::MessageTooLarge { limit: 300 }
    );
    // Nothing was consumed: the caller still has the bytes for logging.
    assert_eq!(buf.len(), 301);
}

#[test]
fn missing_content_length_is_an_error_on_streams_only() {
    let text = std::str::from_utf8(REGISTER)
        .unwrap()
        .replace("Content-Length: 0\r\n", "");
    let datagram = Message::parse(text.as_bytes()).unwrap();
    assert!(datagram.body().is_empty());
    let mut dec = StreamDecoder::new(4096);
    let e = dec
        .decode(&mut BytesMut::from(text.as_bytes()))
        .unwrap_err();
    assert_eq!(
        e,
        ParseError::new(text.len(), ParseErrorKind::MissingContentLength)
    );
    assert_eq!(
        e.to_string(),
        format!(
            "at byte {}: Content-Length is required on stream transports",
            text.len()
        )
    );
}

#[test]
fn crlf_keepalives_are_skipped_anywhere_between_messages() {
    let mut input = b"\r\n\r\n\r\n".to_vec(); // ping + pong before anything
    for m in [REGISTER, KEEPALIVE, CATALOG, INVITE_200_TCP] {
        input.extend_from_slice(m);
        input.extend_from_slice(b"\r\n\r\n");
    }
    input.extend_from_slice(b"\n\r\n");
    let mut dec = StreamDecoder::new(4096);
    let mut buf = BytesMut::from(&input[..]);
    let got = drain(&mut dec, &mut buf).unwrap();
    let expected: Vec<Message> = [REGISTER, KEEPALIVE, CATALOG, INVITE_200_TCP]
        .iter()
        .map(|m| Message::parse(m).unwrap())
        .collect();
    assert_eq!(got, expected);
    assert!(buf.is_empty());
    assert_eq!(dec.position(), input.len() as u64);
}

#[test]
fn garbage_after_a_message_stops_the_stream_with_a_clear_error() {
    let mut input = KEEPALIVE.to_vec();
    input.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\n");
    let mut dec = StreamDecoder::new(4096);
    let mut buf = BytesMut::from(&input[..]);
    let first = dec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(
        first.headers().get(&HeaderName::UserAgent),
        Some("IP Camera")
    );
    let e = dec.decode(&mut buf).unwrap_err();
    assert_eq!(
        e,
        ParseError::new(4, ParseErrorKind::Expected("SP after method"))
    );
    assert_eq!(e.to_string(), "at byte 4: expected SP after method");
    // The decoder does not try to resynchronise; the caller closes the connection.
    buf.clear();
    buf.extend_from_slice(REGISTER);
    assert_eq!(dec.decode(&mut buf).unwrap_err(), e);
}
