//! SIP requests and responses: datagram parsing, serialization and the RFC 3261 §8.2
//! sanity checks (RFC 3261 §7).

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{ParseError, ParseErrorKind};
use super::head::{BodyLength, parse_head};
use super::header::{HeaderName, Headers};
pub use super::method::Method;
use super::uri::Uri;

/// A SIP message (RFC 3261 §7).
///
/// ```
/// use gb28181::sip::{Message, Method};
/// let raw = b"MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\n\
///     Via: SIP/2.0/UDP 192.168.137.11:5060;rport;branch=z9hG4bK1066375804\r\n\
///     Call-ID: 1185236415\r\n\
///     CSeq: 20 MESSAGE\r\n\
///     Content-Length:   4\r\n\r\nbody";
/// let msg = Message::parse(raw).unwrap();
/// let Message::Request(req) = &msg else { panic!() };
/// assert_eq!(req.method, Method::Message);
/// assert_eq!(msg.headers().call_id(), Some("1185236415"));
/// assert_eq!(&msg.body()[..], b"body");
/// assert_eq!(Message::parse(&msg.to_bytes()).unwrap(), msg);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request (RFC 3261 §7.1).
    Request(Request),
    /// A response (RFC 3261 §7.2).
    Response(Response),
}

/// A SIP request (RFC 3261 §7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method (RFC 3261 §7.1).
    pub method: Method,
    /// The Request-URI (RFC 3261 §7.1, §19.1).
    pub uri: Uri,
    /// Header fields in order (RFC 3261 §7.3).
    pub headers: Headers,
    /// The message body; its charset is decided above SIP (RFC 3261 §7.4).
    pub body: Bytes,
}

/// A SIP response (RFC 3261 §7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, 100-699 (RFC 3261 §7.2, §21).
    pub status: u16,
    /// Reason phrase, trimmed; may be empty (RFC 3261 §7.2, RFC 4475 §3.1.1.13).
    pub reason: String,
    /// Header fields in order (RFC 3261 §7.3).
    pub headers: Headers,
    /// The message body (RFC 3261 §7.4).
    pub body: Bytes,
}

/// The default reason phrase of a status code (RFC 3261 §21 and extensions); "" if unknown.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "",
    }
}

/// Datagram parse shared by [`Message::parse`] and [`Message::parse_bytes`]; `body` turns a
/// range of `buf` into the body.
fn parse_datagram(
    buf: &[u8],
    body: impl FnOnce(std::ops::Range<usize>) -> Bytes,
) -> Result<Message, ParseError> {
    // CRLFs before the start line are keepalives or padding (RFC 3261 §7.5, RFC 5626 §4.4.1).
    let skip = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let msg = buf.get(skip..).unwrap_or_default();
    let head = parse_head(msg).map_err(|e| e.shift(skip))?;
    let available = msg.len().saturating_sub(head.end);
    let len = match head.body_length {
        BodyLength::Exact(n) if n > available => {
            return Err(ParseError::new(
                skip + head.end,
                ParseErrorKind::BodyTruncated {
                    declared: n,
                    available,
                },
            ));
        }
        // Octets after Content-Length are discarded (RFC 3261 §18.3, RFC 4475 §3.1.1.8).
        BodyLength::Exact(n) => n,
        // Over UDP the datagram ends the message (RFC 3261 §18.3). With conflicting values
        // (RFC 4475 §3.3.9) the body cannot be trusted either way: keep the whole rest and
        // leave the rejection to `validate`, so that a 400 can still be sent.
        BodyLength::Absent | BodyLength::Conflicting { .. } => available,
    };
    let start = skip + head.end;
    Ok(head.into_message(body(start..start + len)))
}

impl Message {
    /// Parses one message from a datagram (RFC 3261 §7, §18.3).
    ///
    /// With Content-Length the body is that many bytes and any further octets are ignored;
    /// without it the body is the rest of the datagram. Leading CRLFs are skipped; lines may
    /// end in bare LF. The body is copied; use [`Message::parse_bytes`] to share the buffer.
    pub fn parse(buf: &[u8]) -> Result<Message, ParseError> {
        parse_datagram(buf, |r| {
            Bytes::copy_from_slice(buf.get(r).unwrap_or_default())
        })
    }

    /// Like [`Message::parse`], but the body is a zero-copy slice of `buf` (RFC 3261 §18.3).
    pub fn parse_bytes(buf: &Bytes) -> Result<Message, ParseError> {
        parse_datagram(buf, |r| {
            if r.end <= buf.len() {
                buf.slice(r)
            } else {
                Bytes::new()
            }
        })
    }

    /// Serializes with long header names and Content-Length from the body (RFC 3261 §7, §20.14).
    ///
    /// Content-Length is written where the first received one was, or after all other
    /// header fields; CR and LF inside values are written as SP.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }

    /// The header fields (RFC 3261 §7.3).
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    /// The header fields, mutable (RFC 3261 §7.3).
    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Message::Request(r) => &mut r.headers,
            Message::Response(r) => &mut r.headers,
        }
    }

    /// The body (RFC 3261 §7.4).
    pub fn body(&self) -> &Bytes {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }

    /// The request, if this is one (RFC 3261 §7.1).
    pub fn as_request(&self) -> Option<&Request> {
        match self {
            Message::Request(r) => Some(r),
            Message::Response(_) => None,
        }
    }

    /// The response, if this is one (RFC 3261 §7.2).
    pub fn as_response(&self) -> Option<&Response> {
        match self {
            Message::Request(_) => None,
            Message::Response(r) => Some(r),
        }
    }
}

impl From<Request> for Message {
    fn from(r: Request) -> Message {
        Message::Request(r)
    }
}

impl From<Response> for Message {
    fn from(r: Response) -> Message {
        Message::Response(r)
    }
}

/// Writes one line, turning any CR or LF inside it into SP so that no value can inject
/// header fields (RFC 3261 §7.3.1), then CRLF.
fn write_line(buf: &mut BytesMut, f: impl FnOnce(&mut BytesMut)) {
    let start = buf.len();
    f(buf);
    if let Some(line) = buf.get_mut(start..) {
        for b in line.iter_mut().filter(|b| **b == b'\r' || **b == b'\n') {
            *b = b' ';
        }
    }
    buf.put_slice(b"\r\n");
}

/// Serializes header fields, Content-Length (in place of the first received one, else last),
/// the empty line and the body (RFC 3261 §7).
fn write_rest(mut buf: BytesMut, headers: &Headers, body: &Bytes) -> Bytes {
    let content_length = |buf: &mut BytesMut| {
        write_line(buf, |b| {
            let _ = write!(b, "Content-Length: {}", body.len());
        })
    };
    let mut wrote_length = false;
    for (name, value) in headers {
        if *name == HeaderName::ContentLength {
            if !wrote_length {
                content_length(&mut buf);
                wrote_length = true;
            }
            continue;
        }
        write_line(&mut buf, |b| {
            b.put_slice(name.as_str().as_bytes());
            b.put_slice(b": ");
            b.put_slice(value.as_bytes());
        });
    }
    if !wrote_length {
        content_length(&mut buf);
    }
    buf.put_slice(b"\r\n");
    buf.put_slice(body);
    buf.freeze()
}

fn capacity(headers: &Headers, body: &Bytes) -> usize {
    let h: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    128 + h + body.len()
}

/// Checks shared by requests and responses: mandatory fields present, single-valued ones
/// once, typed values well formed, Content-Length consistent (RFC 3261 §8.1.1, §8.2.2, §20).
fn validate_headers(h: &Headers) -> Result<(), ParseError> {
    for (name, label) in [
        (HeaderName::Via, "Via"),
        (HeaderName::From, "From"),
        (HeaderName::To, "To"),
        (HeaderName::CallId, "Call-ID"),
        (HeaderName::CSeq, "CSeq"),
    ] {
        match h.get_all(&name).count() {
            0 => return Err(ParseError::new(0, ParseErrorKind::MissingHeader(label))),
            1 => {}
            _ if name == HeaderName::Via => {}
            _ => return Err(ParseError::new(0, ParseErrorKind::DuplicateHeader(label))),
        }
    }
    h.top_via()?;
    h.via()?;
    h.from()?;
    h.to()?;
    h.cseq()?;
    if h.call_id().is_some_and(str::is_empty) {
        return Err(ParseError::expected(0, "Call-ID value").in_header("Call-ID"));
    }
    h.content_length()?;
    Ok(())
}

impl Request {
    /// A request with no header fields and an empty body (RFC 3261 §8.1.1).
    pub fn new(method: Method, uri: Uri) -> Request {
        Request {
            method,
            uri,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Serializes the request (RFC 3261 §7.1); see [`Message::to_bytes`].
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(capacity(&self.headers, &self.body));
        write_line(&mut buf, |b| {
            let _ = write!(b, "{} {} SIP/2.0", self.method, self.uri);
        });
        write_rest(buf, &self.headers, &self.body)
    }

    /// The header checks whose failure calls for a 400 Bad Request (RFC 3261 §8.2.2).
    ///
    /// Via, From, To, Call-ID and CSeq present (From, To, Call-ID, CSeq exactly once) and
    /// well formed, the CSeq method equal to the request method, Content-Length values
    /// consistent (RFC 4475 §3.1.2, §3.3.1, §3.3.8, §3.3.9). Max-Forwards is not required,
    /// for RFC 2543 peers (RFC 4475 §3.4.1).
    pub fn validate(&self) -> Result<(), ParseError> {
        validate_headers(&self.headers)?;
        if self.headers.cseq()?.method != self.method {
            return Err(ParseError::new(0, ParseErrorKind::CSeqMethodMismatch));
        }
        Ok(())
    }
}

impl Response {
    /// A response with the standard reason phrase, no header fields, no body (RFC 3261 §21).
    ///
    /// `status` must be 100-699 to serialize to a valid message.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            reason: reason_phrase(status).to_owned(),
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// RFC 3261 §8.2.6: copies all Via, From, To, Call-ID, CSeq from the request.
    ///
    /// Lines are copied in the request's order and unchanged; adding a To tag is up to the
    /// caller (§8.2.6.2).
    pub fn for_request(req: &Request, status: u16) -> Response {
        let mut resp = Response::new(status);
        for (name, value) in &req.headers {
            if matches!(
                name,
                HeaderName::Via
                    | HeaderName::From
                    | HeaderName::To
                    | HeaderName::CallId
                    | HeaderName::CSeq
            ) {
                resp.headers.push(name.clone(), value);
            }
        }
        resp
    }

    /// Serializes the response (RFC 3261 §7.2); see [`Message::to_bytes`].
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(capacity(&self.headers, &self.body));
        write_line(&mut buf, |b| {
            let _ = write!(b, "SIP/2.0 {:03} {}", self.status, self.reason);
        });
        write_rest(buf, &self.headers, &self.body)
    }

    /// Header checks for a received response (RFC 3261 §8.1.3.3, §20).
    ///
    /// The same requirements as [`Request::validate`] without the method comparison.
    pub fn validate(&self) -> Result<(), ParseError> {
        validate_headers(&self.headers)
    }
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
