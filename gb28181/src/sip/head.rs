//! The message head: start line and header section, with line folding, compact names and
//! Content-Length framing (RFC 3261 §7.1, §7.2, §7.3.1, §20.14).

use std::borrow::Cow;

use bytes::Bytes;

use super::error::{ParseError, ParseErrorKind};
use super::header::{HeaderName, Headers};
use super::message::{Message, Request, Response};
use super::method::Method;
use super::parse::{is_token, is_ws, parse_digits};
use super::uri::Uri;

/// A parsed start line (RFC 3261 §7.1, §7.2).
#[derive(Debug, Clone)]
pub(crate) enum StartLine {
    Request(Method, Uri),
    Response(u16, String),
}

/// A parsed start line plus header section; `end` is where the body starts.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) start: StartLine,
    pub(crate) headers: Headers,
    pub(crate) end: usize,
    pub(crate) body_length: BodyLength,
}

impl Head {
    /// Attaches a body and builds the message.
    pub(crate) fn into_message(self, body: Bytes) -> Message {
        match self.start {
            StartLine::Request(method, uri) => Message::Request(Request {
                method,
                uri,
                headers: self.headers,
                body,
            }),
            StartLine::Response(status, reason) => Message::Response(Response {
                status,
                reason,
                headers: self.headers,
                body,
            }),
        }
    }
}

/// Checks `SIP-Version` (RFC 3261 §7.1): "SIP/2.0" case-insensitively.
fn check_version(v: &[u8], offset: usize, what: &'static str) -> Result<(), ParseError> {
    if v.eq_ignore_ascii_case(b"SIP/2.0") {
        return Ok(());
    }
    let numbered = v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
        && v.get(4..).is_some_and(|r| {
            let mut parts = r.split(|&b| b == b'.');
            let digits = |p: Option<&[u8]>| {
                p.is_some_and(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit))
            };
            digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
        });
    Err(if numbered {
        ParseError::new(offset, ParseErrorKind::UnsupportedVersion)
    } else {
        ParseError::expected(offset, what)
    })
}

fn skip_ws(line: &[u8], mut i: usize) -> usize {
    while line.get(i).is_some_and(|&b| is_ws(b)) {
        i += 1;
    }
    i
}

fn run_until_ws(line: &[u8], mut i: usize) -> usize {
    while line.get(i).is_some_and(|&b| !is_ws(b)) {
        i += 1;
    }
    i
}

/// Parses `Status-Line = SIP-Version SP Status-Code SP Reason-Phrase` (RFC 3261 §7.2).
fn parse_status_line(line: &[u8]) -> Result<StartLine, ParseError> {
    let version_end = run_until_ws(line, 0);
    check_version(
        line.get(..version_end).unwrap_or_default(),
        0,
        "SIP-Version in status line",
    )?;
    let code_start = skip_ws(line, version_end);
    if code_start == version_end {
        return Err(ParseError::expected(version_end, "SP after SIP-Version"));
    }
    let mut code_end = code_start;
    while line.get(code_end).is_some_and(u8::is_ascii_digit) {
        code_end += 1;
    }
    let code = line.get(code_start..code_end).unwrap_or_default();
    let status = match code {
        [a, b, c] => u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'),
        _ => return Err(ParseError::expected(code_start, "3-digit Status-Code")),
    };
    if !(100..=699).contains(&status) {
        return Err(ParseError::expected(
            code_start,
            "Status-Code between 100 and 699",
        ));
    }
    let reason = match line.get(code_end) {
        None => &[][..],
        Some(&b) if is_ws(b) => line.get(code_end + 1..).unwrap_or_default().trim_ascii(),
        Some(_) => return Err(ParseError::expected(code_end, "SP after Status-Code")),
    };
    Ok(StartLine::Response(
        status,
        String::from_utf8_lossy(reason).into_owned(),
    ))
}

/// Parses `Request-Line = Method SP Request-URI SP SIP-Version` (RFC 3261 §7.1).
///
/// Tolerated, as RFC 4475 §3.1.2.9 and §3.1.2.10 allow: several SP between elements and
/// whitespace after the version. Rejected, as §3.1.2.7, §3.1.2.8 and §3.1.2.11 allow: a
/// Request-URI in `<>`, with embedded whitespace, or with URI headers (RFC 3261 §19.1.1).
fn parse_request_line(line: &[u8]) -> Result<StartLine, ParseError> {
    let method_end = line
        .iter()
        .position(|&b| !is_token(b))
        .unwrap_or(line.len());
    if method_end == 0 {
        return Err(ParseError::expected(
            0,
            "method token at start of request line",
        ));
    }
    if line.get(method_end) != Some(&b' ') {
        return Err(ParseError::expected(method_end, "SP after method"));
    }
    // All token characters are ASCII, so this cannot fail.
    let method = std::str::from_utf8(line.get(..method_end).unwrap_or_default())
        .map_err(|_| ParseError::expected(0, "method"))?
        .parse::<Method>()?;
    let uri_start = skip_ws(line, method_end);
    let uri_end = run_until_ws(line, uri_start);
    let uri_bytes = line.get(uri_start..uri_end).unwrap_or_default();
    if uri_bytes.is_empty() {
        return Err(ParseError::expected(uri_start, "Request-URI"));
    }
    let uri_text = std::str::from_utf8(uri_bytes)
        .map_err(|e| ParseError::expected(uri_start + e.valid_up_to(), "ASCII Request-URI"))?;
    let uri = uri_text.parse::<Uri>().map_err(|e| e.shift(uri_start))?;
    if let Uri::Sip(sip) = &uri
        && !sip.headers.is_empty()
    {
        let q = uri_text.find('?').unwrap_or(0);
        return Err(ParseError::expected(
            uri_start + q,
            "Request-URI without headers",
        ));
    }
    let version_start = skip_ws(line, uri_end);
    if version_start == line.len() || version_start == uri_end {
        return Err(ParseError::expected(
            version_start,
            "SIP-Version in request line",
        ));
    }
    let version_end = run_until_ws(line, version_start);
    let version = line.get(version_start..version_end).unwrap_or_default();
    check_version(version, version_start, "SIP-Version in request line")?;
    let end = skip_ws(line, version_end);
    if end != line.len() {
        return Err(ParseError::expected(end, "end of request line"));
    }
    Ok(StartLine::Request(method, uri))
}

/// Parses a start line and header section from `buf` (which begins at the start line).
pub(crate) fn parse_head(buf: &[u8]) -> Result<Head, ParseError> {
    let incomplete = || ParseError::expected(buf.len(), "CRLF ending the start line");
    let nl = buf
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(incomplete)?;
    let mut line = buf.get(..nl).unwrap_or_default();
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    if let Some(cr) = line.iter().position(|&b| b == b'\r') {
        return Err(ParseError::expected(cr, "LF after CR"));
    }
    let start = if line
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
    {
        parse_status_line(line)?
    } else {
        parse_request_line(line)?
    };
    let section = parse_header_section(buf, nl + 1)?;
    Ok(Head {
        start,
        headers: section.headers,
        end: section.end,
        body_length: section.body_length,
    })
}

/// One line of the header section: `[start, end)` without its CRLF/LF, and where the next
/// line starts. `None` if no LF follows `pos`.
fn next_line(buf: &[u8], pos: usize) -> Result<Option<(usize, usize, usize)>, ParseError> {
    let Some(rest) = buf.get(pos..) else {
        return Ok(None);
    };
    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let mut end = pos + nl;
    if end > pos && buf.get(end - 1) == Some(&b'\r') {
        end -= 1;
    }
    if let Some(cr) = buf
        .get(pos..end)
        .and_then(|l| l.iter().position(|&b| b == b'\r'))
    {
        return Err(ParseError::expected(pos + cr, "LF after CR"));
    }
    Ok(Some((pos, end, pos + nl + 1)))
}

fn trim_ws(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&c| !is_ws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|&c| !is_ws(c)).map_or(start, |e| e + 1);
    b.get(start..end).unwrap_or_default()
}

/// What the Content-Length lines of a header section say about the body (RFC 3261 §20.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyLength {
    /// No Content-Length line.
    Absent,
    /// One or more lines, all with this value.
    Exact(usize),
    /// Lines disagree; `offset` is where the first disagreeing value starts.
    Conflicting { offset: usize },
}

/// A parsed header section: its fields, where it ends (just past the empty line) and the
/// Content-Length it announces.
#[derive(Debug, Clone)]
pub(crate) struct HeaderSection {
    pub(crate) headers: Headers,
    pub(crate) end: usize,
    pub(crate) body_length: BodyLength,
}

/// Parses header lines from `pos` (just after the start line) through the empty line,
/// unfolding continuation lines (RFC 3261 §7.3.1). Lines may end in CRLF or bare LF.
/// Content-Length values are checked here, with offsets into `buf`.
pub(crate) fn parse_header_section(buf: &[u8], pos: usize) -> Result<HeaderSection, ParseError> {
    let incomplete = || ParseError::expected(buf.len(), "empty line ending the header section");
    let mut headers = Headers::with_capacity(12);
    let mut body_length = BodyLength::Absent;
    let mut line = next_line(buf, pos)?.ok_or_else(incomplete)?;
    loop {
        let (start, end, next) = line;
        let text = buf.get(start..end).unwrap_or_default();
        if text.is_empty() {
            return Ok(HeaderSection {
                headers,
                end: next,
                body_length,
            });
        }
        let name_len = text
            .iter()
            .position(|&b| !is_token(b))
            .unwrap_or(text.len());
        if name_len == 0 {
            return Err(ParseError::expected(start, "header field name"));
        }
        let after_name = text.get(name_len..).unwrap_or_default();
        let ws = after_name
            .iter()
            .position(|&b| !is_ws(b))
            .unwrap_or(after_name.len());
        if after_name.get(ws) != Some(&b':') {
            return Err(ParseError::expected(
                start + name_len + ws,
                "':' after header field name",
            ));
        }
        let after_colon = after_name.get(ws + 1..).unwrap_or_default();
        let first = trim_ws(after_colon);
        let value_offset =
            start + name_len + ws + 1 + after_colon.iter().take_while(|&&b| is_ws(b)).count();
        // Continuation lines start with SP or HTAB (RFC 3261 §7.3.1).
        let mut folded: Option<Vec<u8>> = None;
        line = next_line(buf, next)?.ok_or_else(incomplete)?;
        while buf.get(line.0).is_some_and(|&b| is_ws(b)) {
            let part = trim_ws(buf.get(line.0..line.1).unwrap_or_default());
            let v = folded.get_or_insert_with(|| first.to_vec());
            if !part.is_empty() {
                if !v.is_empty() {
                    v.push(b' ');
                }
                v.extend_from_slice(part);
            }
            line = next_line(buf, line.2)?.ok_or_else(incomplete)?;
        }
        let value = match folded {
            Some(v) => String::from_utf8(v)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            None => String::from_utf8_lossy(first).into_owned(),
        };
        // The name is all token characters, hence ASCII.
        let name = String::from_utf8_lossy(text.get(..name_len).unwrap_or_default());
        let name = match name {
            Cow::Borrowed(s) => HeaderName::from(s),
            Cow::Owned(s) => HeaderName::from(s.as_str()),
        };
        if name == HeaderName::ContentLength {
            let n = parse_digits(value.as_bytes())
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(ParseError::expected(
                    value_offset,
                    "Content-Length as 1*DIGIT",
                ))?;
            body_length = match body_length {
                BodyLength::Absent => BodyLength::Exact(n),
                BodyLength::Exact(prev) if prev != n => BodyLength::Conflicting {
                    offset: value_offset,
                },
                other => other,
            };
        }
        headers.push(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::CSeq;

    fn section(s: &str) -> Headers {
        let sec = parse_header_section(s.as_bytes(), 0).unwrap();
        assert_eq!(sec.end, s.len());
        sec.headers
    }

    #[test]
    fn folding_and_whitespace() {
        let h = section(
            "TO :\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\ncseq: 0009\r\n  INVITE\r\ns :\r\nXa: a \r\n\t b\r\n \r\n c\r\n\r\n",
        );
        assert_eq!(
            h.get(&HeaderName::To),
            Some("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n")
        );
        assert_eq!(h.cseq().unwrap(), CSeq::new(9, Method::Invite));
        assert_eq!(h.get(&HeaderName::Subject), Some(""));
        assert_eq!(h.get(&HeaderName::from("x")), None);
        assert_eq!(h.get(&HeaderName::from("XA")), Some("a b c"));
    }

    #[test]
    fn lf_only_and_errors() {
        let h = section("Via: SIP/2.0/UDP h\nContent-Length:   175\n\n");
        assert_eq!(h.content_length().unwrap(), Some(175));
        let sec = parse_header_section(b"l: 13\r\nl: 13\r\nl: 5\r\n\r\n", 0).unwrap();
        assert_eq!(sec.body_length, BodyLength::Conflicting { offset: 17 });
        let sec = parse_header_section(b"L:0\r\n\r\n", 0).unwrap();
        assert_eq!(sec.body_length, BodyLength::Exact(0));
        for (s, off) in [
            (" folded: start\r\n\r\n", 0),
            ("NoColon value\r\n\r\n", 8),
            (": empty name\r\n\r\n", 0),
            ("A: b\rc\r\n\r\n", 4),
            ("A: b\r\n", 6),
            ("A: b\r\n continued", 16),
            ("Content-Length: -999\r\n\r\n", 16),
            ("Content-Length: \r\n\r\n", 16),
            ("l: 99999999999999999999999\r\n\r\n", 3),
        ] {
            let e = parse_header_section(s.as_bytes(), 0).unwrap_err();
            assert_eq!(e.offset, off, "{s:?}: {e}");
        }
    }
}
