//! Message framing on stream transports (RFC 3261 §18.3, §7.5; RFC 5626 §4.4.1 keepalives).

use bytes::{Buf, BytesMut};

use super::error::{ParseError, ParseErrorKind};
use super::head::{BodyLength, Head, parse_head};
use super::message::Message;

/// Default limit for [`StreamDecoder`] (RFC 3261 §18.3): 64 KiB, the largest UDP datagram.
///
/// Well above the biggest GB/T 28181 catalog pages seen from NVRs.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// Splits a TCP byte stream into SIP messages (RFC 3261 §18.3).
///
/// Feed it the connection's receive buffer; it consumes each message it returns and leaves
/// partial input in place, so a message may arrive split at any byte. CRLFs between
/// messages (keepalives, RFC 5626 §4.4.1) are skipped. Every message must carry
/// Content-Length, and a message (header section plus body) larger than the configured
/// maximum is an error as soon as that is known.
///
/// After an error the stream cannot be resynchronised: the decoder keeps returning the same
/// error and the caller should close the connection (RFC 3261 §18.3, RFC 4475 §3.3.9).
/// Error offsets count from the first byte of the offending message.
///
/// ```
/// use bytes::BytesMut;
/// use gb28181::sip::StreamDecoder;
/// let mut dec = StreamDecoder::new(8192);
/// let mut buf = BytesMut::from(&b"\r\n\r\nSIP/2.0 100 Trying\r\nContent-Length: 0\r\n\r\nSIP/2.0 200 OK\r\nContent-"[..]);
/// let first = dec.decode(&mut buf).unwrap().unwrap();
/// assert_eq!(first.as_response().unwrap().status, 100);
/// assert!(dec.decode(&mut buf).unwrap().is_none()); // waits for the rest
/// buf.extend_from_slice(b"Length: 2\r\n\r\nhi");
/// let second = dec.decode(&mut buf).unwrap().unwrap();
/// assert_eq!(&second.body()[..], b"hi");
/// assert!(buf.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    max_message_size: usize,
    /// The current message's parsed head and total length, once its header section is in.
    pending: Option<(Head, usize)>,
    /// Where the search for the empty line resumes in the current message.
    scanned: usize,
    /// The error that stopped the stream, repeated on every later call.
    failed: Option<ParseError>,
    /// Bytes consumed from the stream so far.
    position: u64,
}

/// Finds the end of the header section (just past the empty line), searching from `from`.
/// A line ends in LF, optionally preceded by CR.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(&b) = buf.get(i) {
        if b == b'\n' {
            match (buf.get(i + 1), buf.get(i + 2)) {
                (Some(b'\n'), _) => return Some(i + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

impl StreamDecoder {
    /// A decoder rejecting messages larger than `max_message_size` bytes (RFC 3261 §18.3).
    pub fn new(max_message_size: usize) -> StreamDecoder {
        StreamDecoder {
            max_message_size,
            pending: None,
            scanned: 0,
            failed: None,
            position: 0,
        }
    }

    /// The configured maximum message size (RFC 3261 §18.3).
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Bytes consumed so far, messages and skipped keepalives (RFC 3261 §18.3, RFC 5626 §4.4.1).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Decodes and consumes the next complete message at the front of `buf` (RFC 3261 §18.3).
    ///
    /// `Ok(None)` means more input is needed; call again until it returns `Ok(None)` to
    /// drain several messages from one read. The body is a zero-copy slice of the buffer.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, ParseError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let result = self.decode_inner(buf);
        if let Err(e) = result {
            self.failed = Some(e);
            self.pending = None;
        }
        result
    }

    fn too_large(&self, offset: usize) -> ParseError {
        ParseError::new(
            offset,
            ParseErrorKind::MessageTooLarge {
                limit: self.max_message_size,
            },
        )
    }

    fn decode_inner(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, ParseError> {
        if self.pending.is_none() {
            // CRLFs before a start line are keepalives (RFC 3261 §7.5, RFC 5626 §4.4.1).
            // Once part of a message is buffered, its first byte is not CR or LF.
            let skip = buf
                .iter()
                .position(|&b| b != b'\r' && b != b'\n')
                .unwrap_or(buf.len());
            if skip > 0 {
                buf.advance(skip);
                self.position += skip as u64;
                self.scanned = 0;
            }
            if buf.is_empty() {
                return Ok(None);
            }
            let Some(end) = find_head_end(buf, self.scanned) else {
                if buf.len() > self.max_message_size {
                    return Err(self.too_large(self.max_message_size));
                }
                // Rescan the last two bytes: the empty line may straddle the next read.
                self.scanned = buf.len().saturating_sub(2);
                return Ok(None);
            };
            self.scanned = 0;
            if end > self.max_message_size {
                return Err(self.too_large(self.max_message_size));
            }
            let head = parse_head(buf.get(..end).unwrap_or_default())?;
            let body_len = match head.body_length {
                BodyLength::Exact(n) => n,
                BodyLength::Absent => {
                    return Err(ParseError::new(end, ParseErrorKind::MissingContentLength));
                }
                BodyLength::Conflicting { offset } => {
                    return Err(ParseError::new(
                        offset,
                        ParseErrorKind::ConflictingContentLength,
                    ));
                }
            };
            let total = end
                .checked_add(body_len)
                .filter(|&t| t <= self.max_message_size)
                .ok_or(self.too_large(end))?;
            self.pending = Some((head, total));
        }
        let total = match &self.pending {
            Some((_, total)) if buf.len() >= *total => *total,
            _ => return Ok(None),
        };
        let Some((head, _)) = self.pending.take() else {
            return Ok(None);
        };
        let bytes = buf.split_to(total).freeze();
        self.position += total as u64;
        let body = bytes.slice(head.end.min(total)..total);
        Ok(Some(head.into_message(body)))
    }
}

/// The receive side of one stream connection (RFC 3261 §18.3): the bytes read so far and the
/// framing state over them, kept together for the life of the connection.
///
/// A TCP read ends wherever the network split the stream: a message may arrive in many
/// reads, several messages in one. Feed every read with [`MessageStream::extend`] and take
/// complete messages with [`MessageStream::next_message`]; bytes of a message not yet
/// complete stay buffered for the next read. The buffer never holds more than one partial
/// message (at most the size limit) plus the last read.
///
/// ```
/// use gb28181::sip::MessageStream;
/// let raw = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 5\r\n\r\nhello";
/// let mut stream = MessageStream::new(4096);
/// stream.extend(&raw[..20]);
/// assert!(stream.next_message().unwrap().is_none());
/// stream.extend(&raw[20..]);
/// let msg = stream.next_message().unwrap().unwrap();
/// assert_eq!(&msg.body()[..], b"hello");
/// assert_eq!(stream.buffered(), 0);
/// ```
#[derive(Debug)]
pub struct MessageStream {
    decoder: StreamDecoder,
    buf: BytesMut,
}

/// A buffer this large is given back once it is empty, so that a connection that once
/// carried a big catalog page does not keep the memory (RFC 3261 §18.3 framing needs none).
const KEEP_CAPACITY: usize = 16 * 1024;

impl MessageStream {
    /// A stream refusing messages larger than `max_message_size` bytes (RFC 3261 §18.3).
    pub fn new(max_message_size: usize) -> MessageStream {
        MessageStream {
            decoder: StreamDecoder::new(max_message_size),
            buf: BytesMut::new(),
        }
    }

    /// Append bytes read from the connection (any split of the stream).
    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete message, `Ok(None)` when more bytes are needed (RFC 3261 §18.3).
    ///
    /// After an error the stream cannot be resynchronised: every later call returns the same
    /// error, and the connection should be closed.
    pub fn next_message(&mut self) -> Result<Option<Message>, ParseError> {
        let r = self.decoder.decode(&mut self.buf);
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf = BytesMut::new();
        }
        r
    }

    /// Bytes buffered that do not yet form a complete message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes consumed from the stream so far (RFC 3261 §18.3).
    pub fn position(&self) -> u64 {
        self.decoder.position()
    }

    /// The size limit (RFC 3261 §18.3).
    pub fn max_message_size(&self) -> usize {
        self.decoder.max_message_size()
    }
}

impl Default for StreamDecoder {
    /// A decoder with [`DEFAULT_MAX_MESSAGE_SIZE`].
    fn default() -> StreamDecoder {
        StreamDecoder::new(DEFAULT_MAX_MESSAGE_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::HeaderName;

    const TRYING: &[u8] =
        b"SIP/2.0 100 Trying\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n";

    fn drain(dec: &mut StreamDecoder, buf: &mut BytesMut) -> Result<Vec<Message>, ParseError> {
        let mut out = Vec::new();
        while let Some(m) = dec.decode(buf)? {
            out.push(m);
        }
        Ok(out)
    }

    #[test]
    fn byte_at_a_time_with_keepalives() {
        let mut input = b"\r\n\r\n".to_vec();
        input.extend_from_slice(TRYING);
        input.extend_from_slice(b"\r\n");
        input.extend_from_slice(b"MESSAGE sip:a@b SIP/2.0\nl: 3\n\nabc");
        let mut dec = StreamDecoder::new(1024);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in &input {
            buf.extend_from_slice(&[b]);
            got.extend(drain(&mut dec, &mut buf).unwrap());
        }
        assert_eq!(got.len(), 2);
        assert_eq!(&got[1].body()[..], b"abc");
        assert!(buf.is_empty());
        assert_eq!(dec.position(), input.len() as u64);
    }

    #[test]
    fn missing_content_length_is_an_error_and_sticks() {
        let mut dec = StreamDecoder::new(1024);
        let mut buf = BytesMut::from(&b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n"[..]);
        let e = dec.decode(&mut buf).unwrap_err();
        assert_eq!(e, ParseError::new(47, ParseErrorKind::MissingContentLength));
        assert_eq!(dec.decode(&mut buf).unwrap_err(), e);
        buf.clear();
        buf.extend_from_slice(TRYING);
        assert_eq!(dec.decode(&mut buf).unwrap_err(), e);
    }

    #[test]
    fn size_limit_applies_to_head_and_announced_body() {
        let mut dec = StreamDecoder::new(TRYING.len() - 1);
        let mut buf = BytesMut::from(TRYING);
        let e = dec.decode(&mut buf).unwrap_err();
        assert_eq!(
            e.kind,
            ParseErrorKind::MessageTooLarge {
                limit: TRYING.len() - 1
            }
        );

        // An endless header section is refused once it passes the limit.
        let mut dec = StreamDecoder::new(100);
        let mut buf = BytesMut::from(&b"OPTIONS sip:a@b SIP/2.0\r\n"[..]);
        assert!(dec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&[b'X'; 80]);
        assert!(
            dec.decode(&mut buf)
                .unwrap_err()
                .to_string()
                .contains("100-byte limit")
        );

        // A huge Content-Length is refused before the body arrives.
        let mut dec = StreamDecoder::new(100);
        let mut buf = BytesMut::from(&b"SIP/2.0 200 OK\r\nl: 1000000\r\n\r\n"[..]);
        let e = dec.decode(&mut buf).unwrap_err();
        assert_eq!(
            e,
            ParseError::new(30, ParseErrorKind::MessageTooLarge { limit: 100 })
        );
        let mut dec = StreamDecoder::new(usize::MAX);
        let mut buf = BytesMut::from(&b"SIP/2.0 200 OK\r\nl: 18446744073709551615\r\n\r\n"[..]);
        assert!(dec.decode(&mut buf).is_err());
    }

    #[test]
    fn conflicting_content_length_closes_the_stream() {
        let raw = b"OPTIONS sip:user@example.com SIP/2.0\r\nContent-Length: 13\r\nMax-Forwards: 60\r\nContent-Length: 5\r\n\r\nThere's no way";
        let mut dec = StreamDecoder::new(1024);
        let e = dec.decode(&mut BytesMut::from(&raw[..])).unwrap_err();
        assert_eq!(
            e,
            ParseError::new(92, ParseErrorKind::ConflictingContentLength)
        );
    }

    #[test]
    fn body_is_a_slice_of_the_receive_buffer() {
        let raw = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 5\r\n\r\nhello";
        let mut buf = BytesMut::from(&raw[..]);
        let ptr = buf.as_ptr() as usize;
        let msg = StreamDecoder::default().decode(&mut buf).unwrap().unwrap();
        assert_eq!(msg.body().as_ptr() as usize, ptr + raw.len() - 5);
        assert_eq!(msg.headers().get(&HeaderName::ContentLength), Some("5"));
    }
}
