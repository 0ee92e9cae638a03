//! Request methods (RFC 3261 §7.1, §27.4 and the extension RFCs cited per variant).

use std::fmt;
use std::str::FromStr;

use super::error::ParseError;
use super::parse::is_token;

/// A SIP request method (RFC 3261 §7.1). Methods are case-sensitive: `invite` is an
/// extension method, not INVITE (RFC 3261 §7.1).
///
/// ```
/// use gb28181::sip::Method;
/// assert_eq!("MESSAGE".parse::<Method>().unwrap(), Method::Message);
/// assert_eq!("invite".parse::<Method>().unwrap(), Method::Extension("invite".into()));
/// assert_eq!(Method::Register.to_string(), "REGISTER");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// REGISTER (RFC 3261 §10).
    Register,
    /// INVITE (RFC 3261 §13).
    Invite,
    /// ACK (RFC 3261 §13.2.2.4, §17.1.1.3).
    Ack,
    /// BYE (RFC 3261 §15).
    Bye,
    /// CANCEL (RFC 3261 §9).
    Cancel,
    /// OPTIONS (RFC 3261 §11).
    Options,
    /// MESSAGE (RFC 3428), the carrier of GB/T 28181 MANSCDP commands.
    Message,
    /// INFO (RFC 6086), the carrier of GB/T 28181 MANSRTSP playback control.
    Info,
    /// SUBSCRIBE (RFC 6665).
    Subscribe,
    /// NOTIFY (RFC 6665).
    Notify,
    /// UPDATE (RFC 3311).
    Update,
    /// PRACK (RFC 3262).
    Prack,
    /// REFER (RFC 3515).
    Refer,
    /// PUBLISH (RFC 3903).
    Publish,
    /// Any other `token` (RFC 3261 §25.1 extension-method).
    Extension(String),
}

impl Method {
    /// The method name as sent on the wire (RFC 3261 §7.1).
    pub fn as_str(&self) -> &str {
        match self {
            Method::Register => "REGISTER",
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Message => "MESSAGE",
            Method::Info => "INFO",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Refer => "REFER",
            Method::Publish => "PUBLISH",
            Method::Extension(s) => s,
        }
    }
}

impl FromStr for Method {
    type Err = ParseError;

    /// Parses a method `token` case-sensitively (RFC 3261 §7.1, §25.1).
    fn from_str(s: &str) -> Result<Method, ParseError> {
        if let Some(i) = s.bytes().position(|b| !is_token(b)) {
            return Err(ParseError::expected(i, "token character in method"));
        }
        Ok(match s {
            "" => return Err(ParseError::expected(0, "method")),
            "REGISTER" => Method::Register,
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "MESSAGE" => Method::Message,
            "INFO" => Method::Info,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "REFER" => Method::Refer,
            "PUBLISH" => Method::Publish,
            other => Method::Extension(other.to_owned()),
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_case_sensitivity() {
        for m in [
            Method::Register,
            Method::Invite,
            Method::Ack,
            Method::Bye,
            Method::Cancel,
            Method::Options,
            Method::Message,
            Method::Info,
            Method::Subscribe,
            Method::Notify,
            Method::Update,
            Method::Prack,
            Method::Refer,
            Method::Publish,
            Method::Extension("RE%47IST%45R".into()),
        ] {
            assert_eq!(m.as_str().parse::<Method>().unwrap(), m);
        }
        assert_eq!(
            "Register".parse::<Method>().unwrap(),
            Method::Extension("Register".into())
        );
        assert_eq!("".parse::<Method>().unwrap_err().offset, 0);
        assert_eq!("IN VITE".parse::<Method>().unwrap_err().offset, 2);
    }
}
