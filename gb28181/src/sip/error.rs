//! Parse errors of the SIP codec: a byte offset plus what the grammar expected there.

use std::fmt;

/// A SIP parse failure (RFC 3261 §7, §25): where it happened and which rule failed.
///
/// `offset` counts bytes from the start of the input that was being parsed:
/// the datagram for [`Message::parse`](super::Message::parse), the current message (after any
/// skipped keepalive CRLFs) for [`StreamDecoder`](super::StreamDecoder), and the header value
/// for typed accessors such as [`Headers::via`](super::Headers::via) (the kind then says which
/// header). Kinds that describe a whole message rather than a position (a missing header, a
/// CSeq/method mismatch) carry offset 0 and their Display omits it.
///
/// ```
/// use gb28181::sip::{Message, ParseErrorKind};
/// let err = Message::parse(b"OPTIONS sip:a@b SIP/7.0\r\n\r\n").unwrap_err();
/// assert_eq!(err.kind, ParseErrorKind::UnsupportedVersion);
/// assert_eq!(err.to_string(), "at byte 16: unsupported SIP version (only SIP/2.0)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset of the failure in the parsed input (RFC 3261 §7; see the type's docs).
    pub offset: usize,
    /// Which rule of RFC 3261 §25 (or which framing check) failed.
    pub kind: ParseErrorKind,
}

/// What went wrong while parsing a SIP message or header value (RFC 3261 §7, §25).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The grammar required this element here (RFC 3261 §25.1).
    #[error("expected {0}")]
    Expected(&'static str),
    /// The start line names a SIP version other than 2.0 (RFC 3261 §7.1; answer 505).
    #[error("unsupported SIP version (only SIP/2.0)")]
    UnsupportedVersion,
    /// Content-Length announces more bytes than the datagram holds (RFC 3261 §18.3).
    #[error("Content-Length {declared} exceeds the {available} bytes after the header fields")]
    BodyTruncated {
        /// The Content-Length value.
        declared: usize,
        /// The bytes actually available after the empty line.
        available: usize,
    },
    /// Several Content-Length fields with different values (RFC 4475 §3.3.9).
    #[error("conflicting Content-Length header fields")]
    ConflictingContentLength,
    /// A message on a stream transport without Content-Length (RFC 3261 §18.3).
    #[error("Content-Length is required on stream transports")]
    MissingContentLength,
    /// The message exceeds the decoder's configured limit (RFC 3261 §18.3; answer 513 or close).
    #[error("message larger than the {limit}-byte limit")]
    MessageTooLarge {
        /// The configured maximum message size.
        limit: usize,
    },
    /// A header field this operation needs is absent (RFC 3261 §8.1.1).
    #[error("missing {0} header field")]
    MissingHeader(&'static str),
    /// A single-valued header field appears more than once (RFC 3261 §7.3.1, §20).
    #[error("{0} header field appears more than once")]
    DuplicateHeader(&'static str),
    /// A typed accessor could not parse a header value (RFC 3261 §20); `offset` is within it.
    #[error("malformed {header} header value: expected {expected}")]
    InvalidHeader {
        /// Canonical name of the header field.
        header: &'static str,
        /// What the grammar required at the offset.
        expected: &'static str,
    },
    /// The CSeq method differs from the request method (RFC 3261 §8.1.1.5, RFC 4475 §3.1.2.17).
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch,
}

impl ParseErrorKind {
    /// Whether the error refers to a position (false for whole-message checks).
    fn is_positional(&self) -> bool {
        !matches!(
            self,
            ParseErrorKind::MissingHeader(_)
                | ParseErrorKind::DuplicateHeader(_)
                | ParseErrorKind::CSeqMethodMismatch
        )
    }
}

impl ParseError {
    /// An error of `kind` at `offset` (RFC 3261 §25 grammar position).
    pub fn new(offset: usize, kind: ParseErrorKind) -> ParseError {
        ParseError { offset, kind }
    }

    /// An [`ParseErrorKind::Expected`] error at `offset`.
    pub(crate) fn expected(offset: usize, what: &'static str) -> ParseError {
        ParseError::new(offset, ParseErrorKind::Expected(what))
    }

    /// The same error moved `by` bytes further into an enclosing input.
    pub(crate) fn shift(self, by: usize) -> ParseError {
        ParseError {
            offset: self.offset.saturating_add(by),
            kind: self.kind,
        }
    }

    /// Reframes an error from parsing a header value as an [`ParseErrorKind::InvalidHeader`].
    pub(crate) fn in_header(self, header: &'static str) -> ParseError {
        let kind = match self.kind {
            ParseErrorKind::Expected(expected) => {
                ParseErrorKind::InvalidHeader { header, expected }
            }
            other => other,
        };
        ParseError {
            offset: self.offset,
            kind,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ParseErrorKind::InvalidHeader { header, expected } => write!(
                f,
                "at byte {} of the {header} header value: expected {expected}",
                self.offset
            ),
            kind if kind.is_positional() => write!(f, "at byte {}: {kind}", self.offset),
            kind => write!(f, "{kind}"),
        }
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_offset_and_expectation() {
        let e = ParseError::expected(37, "SIP-Version in request line");
        assert_eq!(
            e.to_string(),
            "at byte 37: expected SIP-Version in request line"
        );
        let e = ParseError::new(0, ParseErrorKind::MissingHeader("Call-ID"));
        assert_eq!(e.to_string(), "missing Call-ID header field");
        let e = ParseError::expected(4, "host").in_header("Via");
        assert_eq!(
            e.to_string(),
            "at byte 4 of the Via header value: expected host"
        );
    }
}
