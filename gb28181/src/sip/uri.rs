//! SIP and SIPS URIs (RFC 3261 §19.1) and other absolute URIs (RFC 3261 §25.1 absoluteURI),
//! plus [`percent_decode`] for comparing escaped parts (§19.1.4).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::error::ParseError;
use super::parse::{Cursor, bad_escape, find_param, is_unreserved, parse_digits, set_param};

/// A URI as it appears in a Request-URI or name-addr (RFC 3261 §19.1, §25.1).
///
/// `sip:` and `sips:` URIs are parsed into [`SipUri`]; any other scheme (`tel:`, `http:`,
/// unknown schemes, RFC 4475 §3.3.2) is kept verbatim.
///
/// ```
/// use gb28181::sip::{Host, Uri};
/// let uri: Uri = "sip:34020000001320000001@3402000000".parse().unwrap();
/// let sip = uri.as_sip().unwrap();
/// assert_eq!(sip.user.as_deref(), Some("34020000001320000001"));
/// assert_eq!(sip.host, Host::Domain("3402000000".into()));
/// assert_eq!(uri.to_string(), "sip:34020000001320000001@3402000000");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Uri {
    /// A `sip:` or `sips:` URI (RFC 3261 §19.1.1).
    Sip(SipUri),
    /// Any other absolute URI, verbatim (RFC 3261 §25.1 absoluteURI).
    Other(String),
}

/// A parsed `sip:`/`sips:` URI (RFC 3261 §19.1.1).
///
/// User, password, parameters and headers are kept as written (escapes not decoded), so
/// Display reproduces the input apart from the scheme's case and the IPv6 text form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SipUri {
    /// `sips:` rather than `sip:` (RFC 3261 §19.1).
    pub secure: bool,
    /// The user part, escaped as written (RFC 3261 §19.1.1).
    pub user: Option<String>,
    /// The password, escaped as written (RFC 3261 §19.1.1; deprecated but parsed).
    pub password: Option<String>,
    /// The host (RFC 3261 §19.1.1).
    pub host: Host,
    /// The port, if given (RFC 3261 §19.1.1).
    pub port: Option<u16>,
    /// URI parameters such as `transport`, `lr`, `user` (RFC 3261 §19.1.1).
    pub params: Vec<Param>,
    /// URI headers after `?`, as `(hname, hvalue)` escaped as written (RFC 3261 §19.1.1).
    pub headers: Vec<(String, String)>,
}

/// A host: domain name or IP address (RFC 3261 §25.1 host).
///
/// Domain names are accepted leniently: GB/T 28181 devices use all-digit SIP domains such
/// as `3402000000`, which the RFC's `hostname` rule does not allow, and `_` is tolerated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A domain name as written (RFC 3261 §25.1 hostname).
    Domain(String),
    /// A dotted-quad IPv4 address (RFC 3261 §25.1 IPv4address).
    Ipv4(Ipv4Addr),
    /// An IPv6 address, written in brackets (RFC 3261 §25.1 IPv6reference).
    Ipv6(Ipv6Addr),
}

/// A `name[=value]` parameter of a URI, Via or name-addr (RFC 3261 §19.1.1, §25.1).
///
/// Values are kept as written: a quoted-string value keeps its quotes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Param {
    /// Parameter name as written; look-ups compare it case-insensitively (RFC 3261 §19.1.4).
    pub name: String,
    /// Value, if the parameter has one (RFC 3261 §25.1 gen-value).
    pub value: Option<String>,
}

impl Param {
    /// A parameter `name[=value]` (RFC 3261 §25.1 generic-param).
    pub fn new(name: impl Into<String>, value: Option<String>) -> Param {
        Param {
            name: name.into(),
            value,
        }
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={}", self.name, v),
            None => f.write_str(&self.name),
        }
    }
}

impl Uri {
    /// The SIP URI, if this is one (RFC 3261 §19.1).
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            Uri::Other(_) => None,
        }
    }

    /// Parses an absolute URI (RFC 3261 §25.1); the error offset is within `s`.
    fn parse(s: &str) -> Result<Uri, ParseError> {
        let mut c = Cursor::new(s);
        if !c.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            return Err(c.err("URI scheme"));
        }
        let scheme = c.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        c.expect(b':', "':' after URI scheme")?;
        let secure = if scheme.eq_ignore_ascii_case("sip") {
            false
        } else if scheme.eq_ignore_ascii_case("sips") {
            true
        } else {
            if c.at_end() {
                return Err(c.err("URI after scheme"));
            }
            c.take_while(|b| {
                b >= 0x80 || (b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"'))
            });
            if !c.at_end() {
                return Err(c.err("URI character"));
            }
            return Ok(Uri::Other(s.to_owned()));
        };
        SipUri::parse_after_scheme(&mut c, secure).map(Uri::Sip)
    }
}

impl FromStr for Uri {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Uri, ParseError> {
        Uri::parse(s)
    }
}

impl From<SipUri> for Uri {
    fn from(u: SipUri) -> Uri {
        Uri::Sip(u)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => u.fmt(f),
            Uri::Other(s) => f.write_str(s),
        }
    }
}

/// `user` characters besides escapes: unreserved / user-unreserved (RFC 3261 §25.1).
fn is_user_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'%' | b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/'
        )
}

/// `password` characters besides escapes (RFC 3261 §25.1).
fn is_password_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'%' | b'&' | b'=' | b'+' | b'$' | b',')
}

/// `paramchar` = param-unreserved / unreserved / escaped (RFC 3261 §25.1).
fn is_param_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'%' | b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
}

/// `hname`/`hvalue` characters: hnv-unreserved / unreserved / escaped (RFC 3261 §25.1).
fn is_header_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'%' | b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$')
}

/// Domain-name characters, leniently including `_` (RFC 3261 §25.1 hostname).
fn is_domain_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')
}

/// Parses a host at the cursor (RFC 3261 §25.1 host).
pub(crate) fn parse_host(c: &mut Cursor<'_>) -> Result<Host, ParseError> {
    if c.eat(b'[') {
        let start = c.pos();
        let text = c.take_while(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        let addr =
            Ipv6Addr::from_str(text).map_err(|_| ParseError::expected(start, "IPv6 address"))?;
        c.expect(b']', "']' closing the IPv6 reference")?;
        return Ok(Host::Ipv6(addr));
    }
    let text = c.take_while(is_domain_char);
    if text.is_empty() {
        return Err(c.err("host"));
    }
    Ok(match Ipv4Addr::from_str(text) {
        Ok(a) => Host::Ipv4(a),
        Err(_) => Host::Domain(text.to_owned()),
    })
}

/// Parses `1*DIGIT` as a port number at the cursor.
pub(crate) fn parse_port(c: &mut Cursor<'_>) -> Result<u16, ParseError> {
    let start = c.pos();
    let digits = c.take_while(|b| b.is_ascii_digit());
    parse_digits(digits.as_bytes())
        .and_then(|n| u16::try_from(n).ok())
        .ok_or(ParseError::expected(start, "port number (0-65535)"))
}

impl SipUri {
    /// A `sip:` URI with the given user, host and port and nothing else (RFC 3261 §19.1.1).
    ///
    /// ```
    /// use gb28181::sip::{Host, SipUri};
    /// let u = SipUri::new(Some("34020000002000000001"), Host::Domain("3402000000".into()), None);
    /// assert_eq!(u.to_string(), "sip:34020000002000000001@3402000000");
    /// ```
    pub fn new(user: Option<&str>, host: Host, port: Option<u16>) -> SipUri {
        SipUri {
            secure: false,
            user: user.map(str::to_owned),
            password: None,
            host,
            port,
            params: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// A URI parameter by case-insensitive name (RFC 3261 §19.1.1); `Some(None)` if valueless.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// Sets (replacing) or adds a URI parameter (RFC 3261 §19.1.1).
    pub fn set_param(&mut self, name: &str, value: Option<String>) {
        set_param(&mut self.params, name, value);
    }

    /// Parses the part after `sip:`/`sips:` up to the end of the cursor's input.
    fn parse_after_scheme(c: &mut Cursor<'_>, secure: bool) -> Result<SipUri, ParseError> {
        let mut uri = SipUri::new(None, Host::Domain(String::new()), None);
        uri.secure = secure;
        // '@' appears in no other part of a SIP URI, so the first one ends the userinfo.
        if c.rest().contains('@') {
            let user = escaped_run(c, is_user_char, "user part of SIP URI")?;
            uri.user = Some(user.to_owned());
            if c.eat(b':') {
                let password = c.take_while(is_password_char);
                check_escapes(c, password, "password of SIP URI")?;
                uri.password = Some(password.to_owned());
            }
            c.expect(b'@', "'@' after user part of SIP URI")?;
        }
        uri.host = parse_host(c)?;
        if c.eat(b':') {
            uri.port = Some(parse_port(c)?);
        }
        while c.eat(b';') {
            let name = escaped_run(c, is_param_char, "URI parameter name")?;
            let value = if c.eat(b'=') {
                Some(escaped_run(c, is_param_char, "URI parameter value")?.to_owned())
            } else {
                None
            };
            uri.params.push(Param::new(name, value));
        }
        if c.eat(b'?') {
            loop {
                let name = escaped_run(c, is_header_char, "URI header name")?;
                c.expect(b'=', "'=' after URI header name")?;
                let value = c.take_while(is_header_char);
                check_escapes(c, value, "URI header value")?;
                uri.headers.push((name.to_owned(), value.to_owned()));
                if !c.eat(b'&') {
                    break;
                }
            }
        }
        if !c.at_end() {
            return Err(c.err("end of SIP URI"));
        }
        Ok(uri)
    }
}

/// Fails if `run`, just taken from the cursor, holds a malformed `%` escape.
fn check_escapes(c: &Cursor<'_>, run: &str, what: &'static str) -> Result<(), ParseError> {
    match bad_escape(run) {
        Some(i) => Err(ParseError::expected(c.pos() - run.len() + i, what)),
        None => Ok(()),
    }
}

/// Takes a non-empty run of `f` characters with well-formed escapes.
fn escaped_run<'a>(
    c: &mut Cursor<'a>,
    f: fn(u8) -> bool,
    what: &'static str,
) -> Result<&'a str, ParseError> {
    let run = c.take_while(f);
    if run.is_empty() {
        return Err(c.err(what));
    }
    check_escapes(c, run, what)?;
    Ok(run)
}

impl FromStr for SipUri {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<SipUri, ParseError> {
        match Uri::parse(s)? {
            Uri::Sip(u) => Ok(u),
            Uri::Other(_) => Err(ParseError::expected(0, "sip: or sips: URI")),
        }
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(pw) = &self.password {
                write!(f, ":{pw}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        for p in &self.params {
            write!(f, ";{p}")?;
        }
        for (i, (name, value)) in self.headers.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            write!(f, "{sep}{name}={value}")?;
        }
        Ok(())
    }
}

impl FromStr for Host {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Host, ParseError> {
        let mut c = Cursor::new(s);
        let host = parse_host(&mut c)?;
        if !c.at_end() {
            return Err(c.err("end of host"));
        }
        Ok(host)
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Host {
        match ip {
            IpAddr::V4(a) => Host::Ipv4(a),
            IpAddr::V6(a) => Host::Ipv6(a),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::Ipv4(a) => write!(f, "{a}"),
            Host::Ipv6(a) => write!(f, "[{a}]"),
        }
    }
}

/// Decodes `%XX` escapes (RFC 3261 §19.1.4 comparison rules); invalid escapes stay literal.
///
/// ```
/// assert_eq!(gb28181::sip::uri::percent_decode("%75se%72"), b"user");
/// ```
pub fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = |j: usize| b.get(j).and_then(|x| char::from(*x).to_digit(16));
        if c == b'%'
            && let (Some(h), Some(l)) = (hex(i + 1), hex(i + 2))
        {
            // Both digits are < 16, so the value fits a byte.
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri {
        s.parse().unwrap()
    }

    #[test]
    fn gb_uris() {
        let u = sip("sip:34020000001320000003@192.168.137.11:5060");
        assert_eq!(u.user.as_deref(), Some("34020000001320000003"));
        assert_eq!(u.host, Host::Ipv4(Ipv4Addr::new(192, 168, 137, 11)));
        assert_eq!(u.port, Some(5060));
        let u = sip("sip:34020000001110000001@3402000000.spvmn.cn");
        assert_eq!(u.host, Host::Domain("3402000000.spvmn.cn".into()));
        let u = sip("sip:34020000001320000001@192.168.10.110:5060;transport=udp");
        assert_eq!(u.param("TRANSPORT"), Some(Some("udp")));
    }

    #[test]
    fn rfc4475_user_parts() {
        // intmeth: user-unreserved characters and a password.
        let u = sip(
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        );
        assert_eq!(
            u.user.as_deref(),
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password.as_deref(),
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        // semiuri: ';' in the user part is not a parameter.
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert!(u.params.is_empty());
        // esc01: escapes stay as written; percent_decode compares.
        let u = sip("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31");
        assert_eq!(percent_decode(u.user.as_deref().unwrap()), b"caller");
        assert_eq!(u.params.len(), 2);
        assert_eq!(
            u.to_string(),
            "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31"
        );
    }

    #[test]
    fn ipv6_params_headers_round_trip() {
        for s in [
            "sips:alice@[2001:db8::1]:5061;transport=tls;lr",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E&Subject=x",
            "sip:services.example.com;lr;unknownwith=value;unknown-no-value",
            "sip:%00@host5.example.com",
            "sip:127.0.0.1:5080",
        ] {
            let u: Uri = s.parse().unwrap();
            assert_eq!(u.to_string(), s);
            assert_eq!(u.to_string().parse::<Uri>().unwrap(), u);
        }
        let u = sip("sip:user@example.com?Route=%3Csip:sip.example.com%3E");
        assert_eq!(
            u.headers,
            vec![("Route".into(), "%3Csip:sip.example.com%3E".into())]
        );
    }

    #[test]
    fn other_schemes_are_verbatim() {
        for s in [
            "nobodyKnowsThisScheme:totallyopaquecontent",
            "soap.beep://192.0.2.103:3002",
            "tel:+1234;phone-context=x",
            "isbn:2983792873",
        ] {
            assert_eq!(s.parse::<Uri>().unwrap(), Uri::Other(s.into()));
        }
    }

    #[test]
    fn malformed_uris_are_rejected() {
        for (s, off) in [
            ("<sip:user@example.com>", 0),
            ("sip:user@example.com; lr", 21),
            ("sip:", 4),
            ("sip:@host", 4),
            ("sip:user@", 9),
            ("sip:host:99999", 9),
            ("sip:host;", 9),
            ("sip:host;a=", 11),
            ("sip:[::1", 8),
            ("sip:[zz]", 5),
            ("sip:a b@host", 5),
            ("sip:us%zer@host", 6),
            ("sip:user:p%@host", 10),
            ("sip:h;a=%4", 8),
            ("sip:h?a=b&c", 11),
            ("tel:", 4),
            ("x:a b", 3),
            ("1abc:x", 0),
        ] {
            let e = s.parse::<Uri>().unwrap_err();
            assert_eq!(e.offset, off, "{s}: {e}");
        }
    }

    #[test]
    fn uppercase_scheme_and_set_param() {
        let mut u = sip("SIP:Bob@Example.COM");
        assert!(!u.secure);
        assert_eq!(u.host, Host::Domain("Example.COM".into()));
        u.set_param("transport", Some("tcp".into()));
        u.set_param("Transport", Some("udp".into()));
        assert_eq!(u.to_string(), "sip:Bob@Example.COM;transport=udp");
    }
}
