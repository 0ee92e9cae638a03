//! The CSeq header field value (RFC 3261 §20.16, §8.1.1.5).

use std::fmt;
use std::str::FromStr;

use super::error::ParseError;
use super::message::Method;
use super::parse::{Cursor, is_token, parse_digits};

/// Command sequence: a sequence number and the request method (RFC 3261 §20.16).
///
/// ```
/// use gb28181::sip::{CSeq, Method};
/// let c: CSeq = "20 MESSAGE".parse().unwrap();
/// assert_eq!(c, CSeq { seq: 20, method: Method::Message });
/// assert_eq!(c.to_string(), "20 MESSAGE");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CSeq {
    /// Sequence number; RFC 3261 §8.1.1.5 wants it below 2^31, values up to 2^32-1 are accepted.
    pub seq: u32,
    /// The method of the request this CSeq belongs to (RFC 3261 §20.16).
    pub method: Method,
}

impl CSeq {
    /// A CSeq value (RFC 3261 §20.16).
    pub fn new(seq: u32, method: Method) -> CSeq {
        CSeq { seq, method }
    }
}

impl FromStr for CSeq {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<CSeq, ParseError> {
        let mut c = Cursor::new(s);
        c.skip_ws();
        let start = c.pos();
        let digits = c.take_while(|b| b.is_ascii_digit());
        let seq = parse_digits(digits.as_bytes())
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(ParseError::expected(
                start,
                "CSeq sequence number below 2^32",
            ))?;
        if c.skip_ws() == 0 {
            return Err(c.err("whitespace between CSeq number and method"));
        }
        let start = c.pos();
        let method = c.take_while(is_token);
        if method.is_empty() {
            return Err(c.err("CSeq method"));
        }
        let method = method.parse::<Method>().map_err(|e| e.shift(start))?;
        c.skip_ws();
        if !c.at_end() {
            return Err(c.err("end of CSeq value"));
        }
        Ok(CSeq { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lenient_whitespace_and_extension_methods() {
        let c: CSeq = "0009 INVITE".parse().unwrap();
        assert_eq!(c, CSeq::new(9, Method::Invite));
        let c: CSeq = " 139122385 !interesting-Method0123456789_*+`.%indeed'~ "
            .parse()
            .unwrap();
        assert_eq!(c.seq, 139122385);
        assert_eq!(
            c.method,
            Method::Extension("!interesting-Method0123456789_*+`.%indeed'~".into())
        );
        assert_eq!(c.to_string().parse::<CSeq>().unwrap(), c);
    }

    #[test]
    fn rejects_overlarge_and_malformed() {
        for (s, off) in [
            ("36893488147419103232 REGISTER", 0),
            ("9292394834772304023312 OPTIONS", 0),
            ("INVITE", 0),
            ("1INVITE", 1),
            ("1 ", 2),
            ("1 INVITE x", 9),
            ("1 INV:ITE", 5),
        ] {
            let e = s.parse::<CSeq>().unwrap_err();
            assert_eq!(e.offset, off, "{s}: {e}");
        }
        assert_eq!("4294967295 ACK".parse::<CSeq>().unwrap().seq, u32::MAX);
    }
}
