//! `name-addr` / `addr-spec` values of From, To, Contact, Route and friends (RFC 3261 §20.10,
//! §20.20, §20.39, §25.1).

use std::fmt;
use std::str::FromStr;

use super::error::ParseError;
use super::parse::{Cursor, find_param, is_token, is_ws, set_param, write_quoted};
use super::uri::{Param, Uri};

/// An address with optional display name and header parameters (RFC 3261 §25.1 name-addr,
/// addr-spec; §20.10).
///
/// Parses both forms: `"Bob" <sip:bob@biloxi.com>;tag=a6c85cf` and
/// `sip:bob@biloxi.com;tag=a6c85cf` (where the parameters after an unbracketed URI belong to
/// the header, RFC 3261 §20). Display always writes the bracketed form.
///
/// ```
/// use gb28181::sip::NameAddr;
/// let a: NameAddr = "<sip:34020000001320000003@3402000000>;tag=2043466181".parse().unwrap();
/// assert_eq!(a.tag(), Some("2043466181"));
/// assert_eq!(a.to_string(), "<sip:34020000001320000003@3402000000>;tag=2043466181");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NameAddr {
    /// The display name, unquoted and unescaped (RFC 3261 §25.1 display-name).
    pub display_name: Option<String>,
    /// The address (RFC 3261 §25.1 addr-spec).
    pub uri: Uri,
    /// Header parameters such as `tag`, `expires`, `q` (RFC 3261 §20.10, §20.20).
    pub params: Vec<Param>,
}

impl NameAddr {
    /// An address without display name or parameters (RFC 3261 §25.1 name-addr).
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display_name: None,
            uri,
            params: Vec::new(),
        }
    }

    /// The `tag` parameter of From/To (RFC 3261 §19.3).
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }

    /// Sets (replacing) the `tag` parameter (RFC 3261 §19.3).
    pub fn set_tag(&mut self, tag: impl Into<String>) {
        set_param(&mut self.params, "tag", Some(tag.into()));
    }

    /// A header parameter by case-insensitive name (RFC 3261 §20.10); `Some(None)` if valueless.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// Sets (replacing) or adds a header parameter (RFC 3261 §25.1 generic-param).
    pub fn set_param(&mut self, name: &str, value: Option<String>) {
        set_param(&mut self.params, name, value);
    }
}

/// Parses the URI between `<` and `>` at the cursor (RFC 3261 §25.1 LAQUOT addr-spec RAQUOT).
fn bracketed_uri(c: &mut Cursor<'_>) -> Result<Uri, ParseError> {
    c.expect(b'<', "'<' before the URI")?;
    let start = c.pos();
    let text = c.take_while(|b| b != b'>');
    c.expect(b'>', "'>' closing the name-addr")?;
    text.parse::<Uri>().map_err(|e| e.shift(start))
}

impl FromStr for NameAddr {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<NameAddr, ParseError> {
        let mut c = Cursor::new(s);
        c.skip_ws();
        let (display_name, uri) = match c.peek() {
            Some(b'"') => {
                let (_, name) = c.quoted_string()?;
                c.skip_ws();
                (Some(name), bracketed_uri(&mut c)?)
            }
            Some(b'<') => (None, bracketed_uri(&mut c)?),
            _ => {
                // display-name = *(token LWS): tokens followed by '<'; otherwise addr-spec.
                let start = c.pos();
                let mut end = start;
                while !c.take_while(is_token).is_empty() {
                    end = c.pos();
                    c.skip_ws();
                }
                if end > start && c.peek() == Some(b'<') {
                    let name = s.get(start..end).unwrap_or_default().to_owned();
                    (Some(name), bracketed_uri(&mut c)?)
                } else {
                    // RFC 3261 §20: an unbracketed URI cannot contain ',', ';' or '?';
                    // parameters after it are header parameters.
                    c.reset(start);
                    let text = c.take_while(|b| !is_ws(b) && b != b';' && b != b',');
                    if let Some(q) = text.find('?') {
                        return Err(ParseError::expected(
                            start + q,
                            "'<' '>' around a URI with headers",
                        ));
                    }
                    (None, text.parse::<Uri>().map_err(|e| e.shift(start))?)
                }
            }
        };
        let params = c.generic_params()?;
        c.skip_ws();
        if !c.at_end() {
            return Err(c.err("';' parameter or end of the address"));
        }
        Ok(NameAddr {
            display_name,
            uri,
            params,
        })
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.display_name {
            write_quoted(f, name)?;
            f.write_str(" ")?;
        }
        write!(f, "<{}>", self.uri)?;
        for p in &self.params {
            write!(f, ";{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn na(s: &str) -> NameAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forms_and_params() {
        let a = na("Bob <sip:bob@biloxi.com>;tag=a6c85cf");
        assert_eq!(a.display_name.as_deref(), Some("Bob"));
        assert_eq!(a.tag(), Some("a6c85cf"));
        let a = na("sip:user@example.com ;   tag    = 1918181833n");
        assert_eq!(a.display_name, None);
        assert_eq!(a.tag(), Some("1918181833n"));
        let a = na("caller<sip:caller@example.com>;tag=323");
        assert_eq!(a.display_name.as_deref(), Some("caller"));
        let a = na("sip:+19725552222@gw1.example.net;unknownparam");
        assert_eq!(a.param("unknownparam"), Some(None));
        assert!(a.uri.as_sip().unwrap().params.is_empty());
        let a = na("<sip:+19725552222@gw1.example.net;unknownparam>");
        assert!(a.params.is_empty());
        assert_eq!(a.uri.as_sip().unwrap().param("unknownparam"), Some(None));
    }

    #[test]
    fn quoted_display_names() {
        let a = na(r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8"#);
        assert_eq!(a.display_name.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(a.tag(), Some("98asjd8"));
        assert_eq!(
            a.to_string(),
            r#""J Rosenberg \\\"" <sip:jdrosen@example.com>;tag=98asjd8"#
        );
        assert_eq!(a.to_string().parse::<NameAddr>().unwrap(), a);
        let a = na("\"BEL:\\\u{7} NUL:\\\0 DEL:\\\u{7f}\" <sip:x@example.com>");
        assert_eq!(
            a.display_name.as_deref(),
            Some("BEL:\u{7} NUL:\0 DEL:\u{7f}")
        );
        assert_eq!(a.to_string().parse::<NameAddr>().unwrap(), a);
        let a = na("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>");
        assert_eq!(
            a.display_name.as_deref(),
            Some("token1~` token2'+_ token3*%!.-")
        );
    }

    #[test]
    fn other_schemes() {
        assert_eq!(
            na("isbn:2983792873").uri,
            Uri::Other("isbn:2983792873".into())
        );
        assert_eq!(
            na("<http://www.example.com>;tag=3234233").tag(),
            Some("3234233")
        );
        assert_eq!(
            na("<name:John_Smith>").uri,
            Uri::Other("name:John_Smith".into())
        );
    }

    #[test]
    fn rfc4475_invalid_addresses() {
        // quotbal: unterminated quoted display name.
        assert!(
            "\"Mr. J. User <sip:j.user@example.com>"
                .parse::<NameAddr>()
                .is_err()
        );
        // badaspec: whitespace inside <>.
        let e = "\"Watson, Thomas\" < sip:t.watson@example.org >"
            .parse::<NameAddr>()
            .unwrap_err();
        assert_eq!(e.offset, 18);
        // baddn: unquoted display name with a comma.
        assert!(
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43"
                .parse::<NameAddr>()
                .is_err()
        );
        // regbadct: addr-spec with URI headers must use <>.
        let e = "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
            .parse::<NameAddr>()
            .unwrap_err();
        assert_eq!(e.offset, 20);
        // badinv01: empty parameters.
        assert!(
            "\"Joe\" <sip:joe@example.org>;;;;"
                .parse::<NameAddr>()
                .is_err()
        );
        assert!("<sip:a@b".parse::<NameAddr>().is_err());
        assert!("<sip:a@b> junk".parse::<NameAddr>().is_err());
        assert!("".parse::<NameAddr>().is_err());
    }

    #[test]
    fn set_tag_replaces() {
        let mut a = na("<sip:a@b>;TAG=1;x");
        a.set_tag("2");
        assert_eq!(a.to_string(), "<sip:a@b>;TAG=2;x");
        let mut a = na("<sip:a@b>");
        a.set_tag("9");
        assert_eq!(a.tag(), Some("9"));
    }
}
