//! Character classes and a bounds-checked cursor shared by the SIP parsers (RFC 3261 §25.1).
//!
//! Every parser in this module tree reads through [`Cursor`], which never indexes past the
//! end of its input: looking ahead yields `None` instead. Slices are only cut at ASCII bytes,
//! so they always fall on UTF-8 character boundaries.

use super::error::ParseError;
use super::uri::Param;

/// `token` characters (RFC 3261 §25.1).
pub(crate) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// `unreserved` = alphanum / mark (RFC 3261 §25.1).
pub(crate) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

/// SP or HTAB, the whitespace of `LWS` once line folding is removed (RFC 3261 §25.1).
pub(crate) fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The offset of the first `%` in `s` that does not start an `escaped` triplet
/// `"%" HEXDIG HEXDIG` (RFC 3261 §25.1), if any.
pub(crate) fn bad_escape(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(|x| x.is_ascii_hexdigit());
            if !hex(i + 1) || !hex(i + 2) {
                return Some(i);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    None
}

/// Parses a run of ASCII digits as a `u64`, `None` on empty input, other bytes or overflow.
pub(crate) fn parse_digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(n)
}

/// A read position in a header value or URI; all look-ahead is bounds-checked.
pub(crate) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `s`.
    pub(crate) fn new(s: &'a str) -> Cursor<'a> {
        Cursor { s, pos: 0 }
    }

    /// Current byte offset.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Moves back to an earlier position returned by [`Cursor::pos`].
    pub(crate) fn reset(&mut self, pos: usize) {
        self.pos = pos.min(self.s.len());
    }

    /// The byte at the cursor.
    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    /// Whether the whole input has been consumed.
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    /// Everything from the cursor on.
    pub(crate) fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    /// The input between `start` and the cursor (empty if that is not a valid range).
    pub(crate) fn since(&self, start: usize) -> &'a str {
        self.s.get(start..self.pos).unwrap_or("")
    }

    /// Consumes `c` if it is next.
    pub(crate) fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes `c` or fails with "expected `what`".
    pub(crate) fn expect(&mut self, c: u8, what: &'static str) -> Result<(), ParseError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    /// Skips SP/HTAB; returns how many bytes were skipped.
    pub(crate) fn skip_ws(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// Consumes `SWS c SWS` (RFC 3261 §25.1 SEMI, COLON, SLASH, EQUAL …); on a miss the
    /// cursor is left where it was.
    pub(crate) fn sep(&mut self, c: u8) -> bool {
        let start = self.pos;
        self.skip_ws();
        if self.eat(c) {
            self.skip_ws();
            true
        } else {
            self.pos = start;
            false
        }
    }

    /// Consumes bytes while `f` holds. `f` must accept either no non-ASCII byte or all of
    /// them, so the cursor only stops on character boundaries.
    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.since(start)
    }

    /// An "expected `what`" error at the cursor.
    pub(crate) fn err(&self, what: &'static str) -> ParseError {
        ParseError::expected(self.pos, what)
    }

    /// Parses a `quoted-string` at the cursor (RFC 3261 §25.1) and returns it verbatim
    /// (quotes included) and unescaped.
    pub(crate) fn quoted_string(&mut self) -> Result<(&'a str, String), ParseError> {
        let start = self.pos;
        self.expect(b'"', "'\"' opening a quoted-string")?;
        let mut out = String::new();
        let mut seg = self.pos;
        loop {
            match self.peek() {
                None => return Err(self.err("'\"' closing the quoted-string")),
                Some(b'"') => {
                    out.push_str(self.since(seg));
                    self.pos += 1;
                    return Ok((self.since(start), out));
                }
                Some(b'\\') => {
                    out.push_str(self.since(seg));
                    self.pos += 1;
                    // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
                    match self.peek() {
                        Some(c) if c < 0x80 && c != b'\r' && c != b'\n' => {
                            out.push(char::from(c));
                            self.pos += 1;
                        }
                        _ => return Err(self.err("ASCII character after '\\' in quoted-string")),
                    }
                    seg = self.pos;
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// Parses `*( SEMI generic-param )` with `generic-param = token [ EQUAL gen-value ]` and
    /// `gen-value = token / host / quoted-string` (RFC 3261 §25.1). Quoted values keep
    /// their quotes.
    pub(crate) fn generic_params(&mut self) -> Result<Vec<Param>, ParseError> {
        let mut params = Vec::new();
        while self.sep(b';') {
            let name = self.take_while(is_token);
            if name.is_empty() {
                return Err(self.err("parameter name after ';'"));
            }
            let value = if self.sep(b'=') {
                let value = if self.peek() == Some(b'"') {
                    self.quoted_string()?.0
                } else {
                    self.take_while(|b| is_token(b) || matches!(b, b':' | b'[' | b']'))
                };
                if value.is_empty() {
                    return Err(self.err("parameter value after '='"));
                }
                Some(value.to_owned())
            } else {
                None
            };
            params.push(Param {
                name: name.to_owned(),
                value,
            });
        }
        Ok(params)
    }
}

/// Finds a parameter by case-insensitive name (RFC 3261 §19.1.4, §20).
pub(crate) fn find_param<'p>(params: &'p [Param], name: &str) -> Option<Option<&'p str>> {
    params
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .map(|p| p.value.as_deref())
}

/// Replaces (or appends) the parameter `name`.
pub(crate) fn set_param(params: &mut Vec<Param>, name: &str, value: Option<String>) {
    if let Some(p) = params
        .iter_mut()
        .find(|p| p.name.eq_ignore_ascii_case(name))
    {
        p.value = value;
    } else {
        params.push(Param {
            name: name.to_owned(),
            value,
        });
    }
}

/// Writes `s` as a quoted-string, escaping `"`, `\` and control characters (RFC 3261 §25.1).
/// CR and LF cannot be escaped and are written as SP.
pub(crate) fn write_quoted(f: &mut impl std::fmt::Write, s: &str) -> std::fmt::Result {
    f.write_char('"')?;
    for ch in s.chars() {
        match ch {
            '\r' | '\n' => f.write_char(' ')?,
            '"' | '\\' => {
                f.write_char('\\')?;
                f.write_char(ch)?;
            }
            c if c.is_ascii_control() && c != '\t' => {
                f.write_char('\\')?;
                f.write_char(c)?;
            }
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_string_unescapes_and_keeps_raw() {
        let mut c = Cursor::new(r#""J Rosenberg \\\"" <x>"#);
        let (raw, text) = c.quoted_string().unwrap();
        assert_eq!(raw, r#""J Rosenberg \\\"""#);
        assert_eq!(text, r#"J Rosenberg \""#);
        assert_eq!(c.rest(), " <x>");
    }

    #[test]
    fn unterminated_quoted_string_is_an_error() {
        let mut c = Cursor::new("\"Mr. J. User <sip:j.user@example.com>");
        let e = c.quoted_string().unwrap_err();
        assert_eq!(e.offset, 37);
        let mut c = Cursor::new("\"trailing backslash\\");
        assert!(c.quoted_string().is_err());
    }

    #[test]
    fn generic_params_allow_whitespace_around_separators() {
        let mut c = Cursor::new(" ; newparam = newvalue ; secondparam ; q = 0.33");
        let p = c.generic_params().unwrap();
        assert!(c.at_end());
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].value.as_deref(), Some("newvalue"));
        assert_eq!(p[1].value, None);
        assert_eq!(p[2].value.as_deref(), Some("0.33"));
        assert!(Cursor::new(";;").generic_params().is_err());
        assert!(Cursor::new(";a=").generic_params().is_err());
    }

    #[test]
    fn escapes_and_digits() {
        assert_eq!(bad_escape("a%20b%7e"), None);
        assert_eq!(bad_escape("a%2"), Some(1));
        assert_eq!(bad_escape("%41%zz"), Some(3));
        assert_eq!(parse_digits(b"0068"), Some(68));
        assert_eq!(parse_digits(b""), None);
        assert_eq!(parse_digits(b"-1"), None);
        assert_eq!(parse_digits(b"36893488147419103232"), None);
    }

    #[test]
    fn write_quoted_escapes() {
        let mut s = String::new();
        write_quoted(&mut s, "a\"b\\c\u{7}d\r\n").unwrap();
        assert_eq!(s, "\"a\\\"b\\\\c\\\u{7}d  \"");
    }
}
