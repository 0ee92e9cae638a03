//! The Via header field value (RFC 3261 §20.42, §18.2.1; RFC 3581 rport).

use std::fmt;
use std::str::FromStr;

use super::error::ParseError;
use super::parse::{Cursor, find_param, is_token, set_param};
use super::uri::{Host, Param, parse_host, parse_port};

/// One `via-parm`: `SIP/2.0/<transport> host[:port];params` (RFC 3261 §20.42).
///
/// Whitespace around `/`, `:`, `;` and `=` is accepted as RFC 3261 allows (RFC 4475 §3.1.1.1).
///
/// ```
/// use gb28181::sip::Via;
/// let mut v: Via = "SIP/2.0/UDP 192.168.137.11:5060;rport;branch=z9hG4bK1371463273".parse().unwrap();
/// assert_eq!(v.branch(), Some("z9hG4bK1371463273"));
/// assert_eq!(v.rport(), Some(None));
/// v.set_param("rport", Some("5060".into()));
/// v.set_param("received", Some("10.0.0.7".into()));
/// assert_eq!(v.to_string(), "SIP/2.0/UDP 192.168.137.11:5060;rport=5060;branch=z9hG4bK1371463273;received=10.0.0.7");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Via {
    /// Transport token as written: `UDP`, `TCP`, `TLS`, `SCTP` or an extension (RFC 3261 §20.42).
    pub transport: String,
    /// The sent-by host (RFC 3261 §18.2.1).
    pub host: Host,
    /// The sent-by port, if given (RFC 3261 §18.2.1).
    pub port: Option<u16>,
    /// Via parameters: `branch`, `received`, `rport`, `maddr`, `ttl`, extensions (RFC 3261 §20.42).
    pub params: Vec<Param>,
}

impl Via {
    /// A Via without parameters (RFC 3261 §20.42).
    pub fn new(transport: impl Into<String>, host: Host, port: Option<u16>) -> Via {
        Via {
            transport: transport.into(),
            host,
            port,
            params: Vec::new(),
        }
    }

    /// The `branch` parameter, the transaction identifier (RFC 3261 §8.1.1.7).
    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    /// The `rport` parameter (RFC 3581 §3): `Some(None)` when requested without a value,
    /// `Some(Some(port))` when filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.param("rport").map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// The `received` parameter, the source address seen by the server (RFC 3261 §18.2.1).
    pub fn received(&self) -> Option<&str> {
        self.param("received").flatten()
    }

    /// A parameter by case-insensitive name (RFC 3261 §20.42); `Some(None)` if valueless.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// Sets (replacing in place) or appends a parameter (RFC 3261 §18.2.1, RFC 3581 §4).
    pub fn set_param(&mut self, name: &str, value: Option<String>) {
        set_param(&mut self.params, name, value);
    }
}

impl FromStr for Via {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Via, ParseError> {
        let mut c = Cursor::new(s);
        c.skip_ws();
        let protocol = c.take_while(is_token);
        if !protocol.eq_ignore_ascii_case("SIP") {
            return Err(ParseError::expected(
                c.pos() - protocol.len(),
                "SIP in Via sent-protocol",
            ));
        }
        if !c.sep(b'/') {
            return Err(c.err("'/' in Via sent-protocol"));
        }
        let start = c.pos();
        if c.take_while(is_token) != "2.0" {
            return Err(ParseError::expected(start, "2.0 in Via sent-protocol"));
        }
        if !c.sep(b'/') {
            return Err(c.err("'/' in Via sent-protocol"));
        }
        let transport = c.take_while(is_token);
        if transport.is_empty() {
            return Err(c.err("transport in Via sent-protocol"));
        }
        if c.skip_ws() == 0 {
            return Err(c.err("whitespace before Via sent-by"));
        }
        let host = parse_host(&mut c)?;
        let port = if c.sep(b':') {
            Some(parse_port(&mut c)?)
        } else {
            None
        };
        let params_start = c.pos();
        let params = c.generic_params()?;
        if let Some(Some(v)) = find_param(&params, "rport")
            && v.parse::<u16>().is_err()
        {
            return Err(ParseError::expected(
                params_start,
                "port number in the rport parameter",
            ));
        }
        c.skip_ws();
        if !c.at_end() {
            return Err(c.err("';' parameter or end of via-parm"));
        }
        Ok(Via {
            transport: transport.to_owned(),
            host,
            port,
            params,
        })
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        for p in &self.params {
            write!(f, ";{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn gb_vias() {
        let v: Via = "SIP/2.0/UDP 39.100.155.146:15063;rport=15063;branch=z9hG4bK34208805"
            .parse()
            .unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, Host::Ipv4(Ipv4Addr::new(39, 100, 155, 146)));
        assert_eq!(v.port, Some(15063));
        assert_eq!(v.rport(), Some(Some(15063)));
        assert_eq!(v.received(), None);
        let v: Via = "SIP/2.0/UDP 192.168.137.92:5061;rport=61378;received=192.168.1.13;branch=z9hG4bK802519080"
            .parse()
            .unwrap();
        assert_eq!(v.received(), Some("192.168.1.13"));
        assert_eq!(v.rport(), Some(Some(61378)));
    }

    #[test]
    fn torture_whitespace() {
        // wsinv, after unfolding.
        let v: Via = "SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw"
            .parse()
            .unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.branch(), Some("390skdjuw"));
        let v: Via = "SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8"
            .parse()
            .unwrap();
        assert_eq!(v.host, Host::Domain("spindle.example.com".into()));
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
        assert_eq!(
            v.to_string(),
            "SIP/2.0/TCP spindle.example.com;branch=z9hG4bK9ikj8"
        );
        let v: Via = "SIP/2.0/UDP [2001:db8::9:1]:5060;received=2001:db8::9:255;branch=z9hG4bKas3"
            .parse()
            .unwrap();
        assert_eq!(v.received(), Some("2001:db8::9:255"));
        assert_eq!(v.to_string().parse::<Via>().unwrap(), v);
    }

    #[test]
    fn malformed_vias() {
        for (s, off) in [
            ("SIP/2.0/UDP 192.0.2.15;;", 23),
            ("SIP/7.0/UDP c.example.com", 4),
            ("HTTP/2.0/UDP h", 0),
            ("SIP/2.0/UDPhost", 15),
            ("SIP/2.0/UDP", 11),
            ("SIP/2.0/UDP h:x", 14),
            ("SIP/2.0/UDP h;rport=x", 13),
            ("SIP/2.0/UDP h, SIP/2.0/UDP i", 13),
            ("", 0),
        ] {
            let e = s.parse::<Via>().unwrap_err();
            assert_eq!(e.offset, off, "{s}: {e}");
        }
    }
}
