//! The SIP message codec (RFC 3261 §7, §18.3, §19, §20, §25; RFC 3581).
//!
//! Our own parser and serializer, tuned for what GB/T 28181 devices actually send:
//!
//! - [`Message::parse`] reads one datagram; [`MessageStream`] (built on
//!   [`StreamDecoder`]) frames messages on TCP, whatever the reads' boundaries.
//! - Header names are case-insensitive and compact forms (`v`, `f`, `t`, `i`, `m`, `l`, `c`,
//!   `k`, `s`, `e`, `o`, `u`, `r`, `b`, `x`, `y`) map to [`HeaderName`] variants; folded lines
//!   are unfolded. [`Headers`] keeps every line as text, in order; typed accessors
//!   ([`Headers::via`], [`Headers::from`], [`Headers::cseq`] …) parse on demand, so a message
//!   with one malformed header still parses and can be answered with 400 (RFC 4475 §3.1.2).
//! - Bodies stay [`bytes::Bytes`]; their charset (GB2312/GB18030 MANSCDP) is decided above SIP.
//! - Serialization writes canonical long names and recomputes Content-Length.
//!
//! Leniency, each a documented branch: LF-only line endings, whitespace around header
//! colons and after values (`Content-Length:   175`, `Max-Forwards: 70 `), several SP
//! between request-line elements, all-digit SIP domains (`3402000000`). Rejected: anything
//! that breaks the start line or the framing (RFC 4475 §3.1.2). No input panics.
//!
//! ```
//! use gb28181::sip::{HeaderName, Message, Response};
//! let raw = include_bytes!("../../tests/data/sip/hikvision_ipc_register.sip");
//! let Message::Request(register) = Message::parse(raw).unwrap() else { unreachable!() };
//! assert_eq!(register.headers.expires(), Some(3600));
//! let mut ok = Response::for_request(&register, 200);
//! ok.headers.push(HeaderName::Expires, "3600");
//! assert!(ok.to_bytes().starts_with(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.168.137.11:5060;rport;"));
//! ```

mod cseq;
mod error;
mod framing;
mod head;
mod header;
mod message;
mod method;
mod name_addr;
mod parse;
pub mod uri;
mod via;

pub use cseq::CSeq;
pub use error::{ParseError, ParseErrorKind};
pub use framing::{DEFAULT_MAX_MESSAGE_SIZE, MessageStream, StreamDecoder};
pub use header::{HeaderName, Headers};
pub use message::{Message, Method, Request, Response, reason_phrase};
pub use name_addr::NameAddr;
pub use uri::{Host, Param, SipUri, Uri};
pub use via::Via;

/// Whether a datagram is only CRLFs: a keepalive ping or pong (RFC 5626 §4.4.1), not a
/// message.
pub fn is_keepalive(datagram: &[u8]) -> bool {
    !datagram.is_empty() && datagram.iter().all(|&b| b == b'\r' || b == b'\n')
}
