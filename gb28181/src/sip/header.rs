//! Header field names, the ordered header list and its typed accessors (RFC 3261 §7.3, §20).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use super::cseq::CSeq;
use super::error::{ParseError, ParseErrorKind};
use super::name_addr::NameAddr;
use super::parse::{is_token, parse_digits};
use super::via::Via;

/// A header field name (RFC 3261 §7.3, §20).
///
/// Parsing is case-insensitive and maps the compact forms of RFC 3261 §7.3.3 and later
/// RFCs (`v f t i m l c k s e o u r b x y`) to their long form; [`HeaderName::as_str`] gives
/// the canonical long name used when serializing. Names this enum does not know are kept in
/// `Other` as written and compare case-insensitively; build names with [`HeaderName::from`]
/// so that a known name never ends up in `Other`.
///
/// ```
/// use gb28181::sip::HeaderName;
/// assert_eq!(HeaderName::from("v"), HeaderName::Via);
/// assert_eq!(HeaderName::from("cALL-id"), HeaderName::CallId);
/// assert_eq!(HeaderName::from("X-GB-Ver"), HeaderName::from("x-gb-ver"));
/// assert_eq!(HeaderName::WwwAuthenticate.as_str(), "WWW-Authenticate");
/// ```
#[derive(Debug, Clone)]
pub enum HeaderName {
    /// `Via`, compact `v` (RFC 3261 §20.42).
    Via,
    /// `From`, compact `f` (RFC 3261 §20.20).
    From,
    /// `To`, compact `t` (RFC 3261 §20.39).
    To,
    /// `Call-ID`, compact `i` (RFC 3261 §20.8).
    CallId,
    /// `CSeq` (RFC 3261 §20.16).
    CSeq,
    /// `Contact`, compact `m` (RFC 3261 §20.10).
    Contact,
    /// `Content-Length`, compact `l` (RFC 3261 §20.14).
    ContentLength,
    /// `Content-Type`, compact `c` (RFC 3261 §20.15).
    ContentType,
    /// `Content-Encoding`, compact `e` (RFC 3261 §20.12).
    ContentEncoding,
    /// `Subject`, compact `s` (RFC 3261 §20.36).
    Subject,
    /// `Supported`, compact `k` (RFC 3261 §20.37).
    Supported,
    /// `Event`, compact `o` (RFC 6665 §8.2.1).
    Event,
    /// `Allow-Events`, compact `u` (RFC 6665 §8.2.2).
    AllowEvents,
    /// `Expires` (RFC 3261 §20.19).
    Expires,
    /// `Max-Forwards` (RFC 3261 §20.22).
    MaxForwards,
    /// `User-Agent` (RFC 3261 §20.41).
    UserAgent,
    /// `Server` (RFC 3261 §20.35).
    Server,
    /// `Allow` (RFC 3261 §20.5).
    Allow,
    /// `Authorization` (RFC 3261 §20.7).
    Authorization,
    /// `WWW-Authenticate` (RFC 3261 §20.44).
    WwwAuthenticate,
    /// `Proxy-Authenticate` (RFC 3261 §20.27).
    ProxyAuthenticate,
    /// `Proxy-Authorization` (RFC 3261 §20.28).
    ProxyAuthorization,
    /// `Date` (RFC 3261 §20.17).
    Date,
    /// `Record-Route` (RFC 3261 §20.30).
    RecordRoute,
    /// `Route` (RFC 3261 §20.34).
    Route,
    /// `Retry-After` (RFC 3261 §20.33).
    RetryAfter,
    /// `Require` (RFC 3261 §20.32).
    Require,
    /// `Proxy-Require` (RFC 3261 §20.29).
    ProxyRequire,
    /// `Unsupported` (RFC 3261 §20.40).
    Unsupported,
    /// `Accept` (RFC 3261 §20.1).
    Accept,
    /// `Subscription-State` (RFC 6665 §8.2.3).
    SubscriptionState,
    /// `Refer-To`, compact `r` (RFC 3515 §2.1).
    ReferTo,
    /// `Referred-By`, compact `b` (RFC 3892 §3).
    ReferredBy,
    /// `Session-Expires`, compact `x` (RFC 4028 §4).
    SessionExpires,
    /// `Identity`, compact `y` (RFC 8224 §4).
    Identity,
    /// Any other header field, name as written (RFC 3261 §7.3 extension-header).
    Other(String),
}

/// Every known name, in the order used to look names up.
const KNOWN: [HeaderName; 35] = [
    HeaderName::Via,
    HeaderName::From,
    HeaderName::To,
    HeaderName::CallId,
    HeaderName::CSeq,
    HeaderName::Contact,
    HeaderName::ContentLength,
    HeaderName::ContentType,
    HeaderName::MaxForwards,
    HeaderName::UserAgent,
    HeaderName::Expires,
    HeaderName::ContentEncoding,
    HeaderName::Subject,
    HeaderName::Supported,
    HeaderName::Event,
    HeaderName::AllowEvents,
    HeaderName::Server,
    HeaderName::Allow,
    HeaderName::Authorization,
    HeaderName::WwwAuthenticate,
    HeaderName::ProxyAuthenticate,
    HeaderName::ProxyAuthorization,
    HeaderName::Date,
    HeaderName::RecordRoute,
    HeaderName::Route,
    HeaderName::RetryAfter,
    HeaderName::Require,
    HeaderName::ProxyRequire,
    HeaderName::Unsupported,
    HeaderName::Accept,
    HeaderName::SubscriptionState,
    HeaderName::ReferTo,
    HeaderName::ReferredBy,
    HeaderName::SessionExpires,
    HeaderName::Identity,
];

impl HeaderName {
    /// The canonical long name (RFC 3261 §7.3.3: compact forms are never sent by this codec).
    pub fn as_str(&self) -> &str {
        match self {
            HeaderName::Other(s) => s,
            known => known.known_str(),
        }
    }

    /// The long name of a known header; "" for `Other`.
    fn known_str(&self) -> &'static str {
        match self {
            HeaderName::Via => "Via",
            HeaderName::From => "From",
            HeaderName::To => "To",
            HeaderName::CallId => "Call-ID",
            HeaderName::CSeq => "CSeq",
            HeaderName::Contact => "Contact",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::ContentType => "Content-Type",
            HeaderName::ContentEncoding => "Content-Encoding",
            HeaderName::Subject => "Subject",
            HeaderName::Supported => "Supported",
            HeaderName::Event => "Event",
            HeaderName::AllowEvents => "Allow-Events",
            HeaderName::Expires => "Expires",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::UserAgent => "User-Agent",
            HeaderName::Server => "Server",
            HeaderName::Allow => "Allow",
            HeaderName::Authorization => "Authorization",
            HeaderName::WwwAuthenticate => "WWW-Authenticate",
            HeaderName::ProxyAuthenticate => "Proxy-Authenticate",
            HeaderName::ProxyAuthorization => "Proxy-Authorization",
            HeaderName::Date => "Date",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::Route => "Route",
            HeaderName::RetryAfter => "Retry-After",
            HeaderName::Require => "Require",
            HeaderName::ProxyRequire => "Proxy-Require",
            HeaderName::Unsupported => "Unsupported",
            HeaderName::Accept => "Accept",
            HeaderName::SubscriptionState => "Subscription-State",
            HeaderName::ReferTo => "Refer-To",
            HeaderName::ReferredBy => "Referred-By",
            HeaderName::SessionExpires => "Session-Expires",
            HeaderName::Identity => "Identity",
            HeaderName::Other(_) => "",
        }
    }

    /// The compact form, if the header has one (RFC 3261 §7.3.3 and the RFCs cited above).
    pub fn compact_form(&self) -> Option<char> {
        Some(match self {
            HeaderName::Via => 'v',
            HeaderName::From => 'f',
            HeaderName::To => 't',
            HeaderName::CallId => 'i',
            HeaderName::Contact => 'm',
            HeaderName::ContentLength => 'l',
            HeaderName::ContentType => 'c',
            HeaderName::Supported => 'k',
            HeaderName::Subject => 's',
            HeaderName::ContentEncoding => 'e',
            HeaderName::Event => 'o',
            HeaderName::AllowEvents => 'u',
            HeaderName::ReferTo => 'r',
            HeaderName::ReferredBy => 'b',
            HeaderName::SessionExpires => 'x',
            HeaderName::Identity => 'y',
            _ => return None,
        })
    }
}

impl From<&str> for HeaderName {
    /// Maps a name case-insensitively, compact forms included (RFC 3261 §7.3.1, §7.3.3).
    fn from(name: &str) -> HeaderName {
        if let [c] = name.as_bytes() {
            let c = char::from(c.to_ascii_lowercase());
            if let Some(h) = KNOWN.iter().find(|h| h.compact_form() == Some(c)) {
                return h.clone();
            }
        }
        KNOWN
            .iter()
            .find(|h| h.known_str().eq_ignore_ascii_case(name))
            .cloned()
            .unwrap_or_else(|| HeaderName::Other(name.to_owned()))
    }
}

impl FromStr for HeaderName {
    type Err = ParseError;
    /// Like [`HeaderName::from`], but rejects names that are not a `token` (RFC 3261 §7.3).
    fn from_str(s: &str) -> Result<HeaderName, ParseError> {
        match s.bytes().position(|b| !is_token(b)) {
            _ if s.is_empty() => Err(ParseError::expected(0, "header field name")),
            Some(i) => Err(ParseError::expected(
                i,
                "token character in header field name",
            )),
            None => Ok(HeaderName::from(s)),
        }
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &HeaderName) -> bool {
        match (self, other) {
            (HeaderName::Other(_), _) | (_, HeaderName::Other(_)) => {
                self.as_str().eq_ignore_ascii_case(other.as_str())
            }
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl Eq for HeaderName {}

impl Hash for HeaderName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for b in self.as_str().bytes() {
            state.write_u8(b.to_ascii_lowercase());
        }
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The header fields of a message, in order (RFC 3261 §7.3).
///
/// Each entry is one header field line as received, with line folding replaced by a single
/// SP and surrounding whitespace trimmed (RFC 3261 §7.3.1). Values are not split at commas;
/// [`Headers::values`] does that. Non-UTF-8 bytes in values are replaced by U+FFFD.
///
/// Content-Length entries are kept as received; serialization ignores their values and
/// writes the body's length in place of the first one.
///
/// ```
/// use gb28181::sip::{HeaderName, Headers};
/// let mut h = Headers::new();
/// h.push(HeaderName::Via, "SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP b.example.com");
/// h.push(HeaderName::Via, "SIP/2.0/TCP c.example.com");
/// assert_eq!(h.values(&HeaderName::Via).len(), 3);
/// assert_eq!(h.top_via().unwrap().branch(), Some("z9hG4bK1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers {
    entries: Vec<(HeaderName, String)>,
}

/// Splits a header value at commas outside quoted strings and `<...>` (RFC 3261 §7.3.1),
/// returning each trimmed, non-empty element with its byte offset in `s`.
pub(crate) fn split_list(s: &str) -> Vec<(usize, &str)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let (mut in_quote, mut in_angle) = (false, false);
    let mut start = 0;
    let mut i = 0;
    let mut push = |from: usize, to: usize| {
        let item = s.get(from..to).unwrap_or("");
        let lead = item.len() - item.trim_start_matches([' ', '\t']).len();
        let item = item.trim_matches([' ', '\t']);
        if !item.is_empty() {
            out.push((from + lead, item));
        }
    };
    while let Some(&c) = b.get(i) {
        match c {
            b'\\' if in_quote => i += 1,
            b'"' => in_quote = !in_quote,
            b'<' if !in_quote => in_angle = true,
            b'>' if !in_quote => in_angle = false,
            b',' if !in_quote && !in_angle => {
                push(start, i);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    push(start, b.len());
    out
}

impl Headers {
    /// An empty header list (RFC 3261 §7.3).
    pub fn new() -> Headers {
        Headers::default()
    }

    /// An empty header list with room for `n` lines.
    pub(crate) fn with_capacity(n: usize) -> Headers {
        Headers {
            entries: Vec::with_capacity(n),
        }
    }

    /// Number of header field lines (RFC 3261 §7.3).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no header fields (RFC 3261 §7.3).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first value of `name` (RFC 3261 §7.3).
    pub fn get(&self, name: &HeaderName) -> Option<&str> {
        self.get_all(name).next()
    }

    /// Every line of `name`, in order, each unsplit (RFC 3261 §7.3.1).
    pub fn get_all<'a>(&'a self, name: &HeaderName) -> impl Iterator<Item = &'a str> {
        self.entries
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All elements of a comma-separated list header across all its lines (RFC 3261 §7.3.1).
    ///
    /// Only meaningful for list headers (Via, Contact, Route, Allow, Supported …); values such
    /// as Date or WWW-Authenticate contain commas that are not list separators.
    pub fn values(&self, name: &HeaderName) -> Vec<&str> {
        self.get_all(name)
            .flat_map(|v| split_list(v).into_iter().map(|(_, item)| item))
            .collect()
    }

    /// Appends a header field line (RFC 3261 §7.3).
    pub fn push(&mut self, name: HeaderName, value: impl Into<String>) {
        self.entries.push((name, value.into()));
    }

    /// Inserts a line before the first `name` line, or first of all (RFC 3261 §16.6 step 8).
    ///
    /// This is how a proxy or UAC puts its Via on top.
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<String>) {
        let at = self
            .entries
            .iter()
            .position(|(n, _)| *n == name)
            .unwrap_or(0);
        self.entries.insert(at, (name, value.into()));
    }

    /// Replaces all `name` lines with one, where the first was, else at the end (RFC 3261 §7.3).
    pub fn set(&mut self, name: HeaderName, value: impl Into<String>) {
        let value = value.into();
        match self.entries.iter().position(|(n, _)| *n == name) {
            Some(at) => {
                if let Some(entry) = self.entries.get_mut(at) {
                    entry.1 = value;
                }
                let mut i = 0;
                self.entries.retain(|(n, _)| {
                    let keep = i == at || *n != name;
                    i += 1;
                    keep
                });
            }
            None => self.entries.push((name, value)),
        }
    }

    /// Removes every `name` line (RFC 3261 §7.3).
    pub fn remove(&mut self, name: &HeaderName) {
        self.entries.retain(|(n, _)| n != name);
    }

    /// All lines in order (RFC 3261 §7.3).
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &str)> {
        self.entries.iter().map(|(n, v)| (n, v.as_str()))
    }

    /// Every Via value, top first (RFC 3261 §20.42).
    pub fn via(&self) -> Result<Vec<Via>, ParseError> {
        let mut out = Vec::new();
        for line in self.get_all(&HeaderName::Via) {
            for (off, item) in split_list(line) {
                out.push(
                    item.parse::<Via>()
                        .map_err(|e| e.shift(off).in_header("Via"))?,
                );
            }
        }
        Ok(out)
    }

    /// The topmost Via (RFC 3261 §18.2.1, §8.1.3.3).
    pub fn top_via(&self) -> Result<Via, ParseError> {
        let line = self.get(&HeaderName::Via).ok_or(missing("Via"))?;
        let (off, item) = split_list(line)
            .into_iter()
            .next()
            .ok_or(ParseError::expected(0, "via-parm").in_header("Via"))?;
        item.parse::<Via>()
            .map_err(|e| e.shift(off).in_header("Via"))
    }

    /// The From address (RFC 3261 §20.20).
    pub fn from(&self) -> Result<NameAddr, ParseError> {
        self.name_addr(&HeaderName::From, "From")
    }

    /// The To address (RFC 3261 §20.39).
    pub fn to(&self) -> Result<NameAddr, ParseError> {
        self.name_addr(&HeaderName::To, "To")
    }

    fn name_addr(&self, name: &HeaderName, label: &'static str) -> Result<NameAddr, ParseError> {
        let v = self.get(name).ok_or(missing(label))?;
        v.parse::<NameAddr>().map_err(|e| e.in_header(label))
    }

    /// Every Contact address across all lines (RFC 3261 §20.10). A `*` value (REGISTER
    /// removing all bindings, §10.2.2) is an error here; see [`Headers::contact_is_wildcard`].
    pub fn contact(&self) -> Result<Vec<NameAddr>, ParseError> {
        let mut out = Vec::new();
        for line in self.get_all(&HeaderName::Contact) {
            for (off, item) in split_list(line) {
                let addr = item
                    .parse::<NameAddr>()
                    .map_err(|e| e.shift(off).in_header("Contact"))?;
                out.push(addr);
            }
        }
        Ok(out)
    }

    /// Whether Contact is `*` (RFC 3261 §10.2.2).
    pub fn contact_is_wildcard(&self) -> bool {
        self.values(&HeaderName::Contact).contains(&"*")
    }

    /// The Call-ID (RFC 3261 §20.8).
    pub fn call_id(&self) -> Option<&str> {
        self.get(&HeaderName::CallId).map(str::trim)
    }

    /// The CSeq (RFC 3261 §20.16).
    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        let v = self.get(&HeaderName::CSeq).ok_or(missing("CSeq"))?;
        v.parse::<CSeq>().map_err(|e| e.in_header("CSeq"))
    }

    /// The Expires delta-seconds (RFC 3261 §20.19); `None` if absent or not a number that
    /// fits 32 bits (§20.19 lets the receiver treat malformed values as absent/default).
    pub fn expires(&self) -> Option<u32> {
        self.get(&HeaderName::Expires).and_then(parse_u32)
    }

    /// The Content-Type value as written (RFC 3261 §20.15); GB/T 28181 peers vary its case.
    pub fn content_type(&self) -> Option<&str> {
        self.get(&HeaderName::ContentType).map(str::trim)
    }

    /// Max-Forwards (RFC 3261 §20.22); `None` if absent or outside 0-255, which RFC 4475
    /// §3.1.2.4 allows treating as absent.
    pub fn max_forwards(&self) -> Option<u32> {
        self.get(&HeaderName::MaxForwards)
            .and_then(parse_u32)
            .filter(|&n| n <= 255)
    }

    /// The body length the Content-Length lines announce (RFC 3261 §20.14):
    /// `Ok(None)` if absent, an error if malformed or if lines disagree.
    pub(crate) fn content_length(&self) -> Result<Option<usize>, ParseError> {
        let mut found: Option<usize> = None;
        for v in self.get_all(&HeaderName::ContentLength) {
            let n = parse_digits(v.trim().as_bytes())
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(
                    ParseError::expected(0, "Content-Length as 1*DIGIT")
                        .in_header("Content-Length"),
                )?;
            match found {
                Some(prev) if prev != n => {
                    return Err(ParseError::new(0, ParseErrorKind::ConflictingContentLength));
                }
                _ => found = Some(n),
            }
        }
        Ok(found)
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a HeaderName, &'a str);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (HeaderName, String)>,
        fn(&'a (HeaderName, String)) -> (&'a HeaderName, &'a str),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(n, v)| (n, v.as_str()))
    }
}

fn missing(name: &'static str) -> ParseError {
    ParseError::new(0, ParseErrorKind::MissingHeader(name))
}

fn parse_u32(v: &str) -> Option<u32> {
    parse_digits(v.trim().as_bytes()).and_then(|n| u32::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compact_and_case() {
        for (s, h) in [
            ("v", HeaderName::Via),
            ("F", HeaderName::From),
            ("t", HeaderName::To),
            ("i", HeaderName::CallId),
            ("m", HeaderName::Contact),
            ("l", HeaderName::ContentLength),
            ("c", HeaderName::ContentType),
            ("k", HeaderName::Supported),
            ("s", HeaderName::Subject),
            ("e", HeaderName::ContentEncoding),
            ("o", HeaderName::Event),
            ("u", HeaderName::AllowEvents),
            ("r", HeaderName::ReferTo),
            ("b", HeaderName::ReferredBy),
            ("x", HeaderName::SessionExpires),
            ("Y", HeaderName::Identity),
            ("MaX-fOrWaRdS", HeaderName::MaxForwards),
            ("www-authenticate", HeaderName::WwwAuthenticate),
        ] {
            assert_eq!(HeaderName::from(s), h, "{s}");
        }
        assert_eq!(HeaderName::from("a"), HeaderName::Other("a".into()));
        assert_eq!(
            HeaderName::from("C%6Fntact"),
            HeaderName::Other("c%6fNTACT".into())
        );
        assert_ne!(HeaderName::from("C%6Fntact"), HeaderName::Contact);
        assert!("bad name".parse::<HeaderName>().is_err());
        assert!("".parse::<HeaderName>().is_err());
    }

    #[test]
    fn list_values_respect_quotes_and_angles() {
        let mut h = Headers::new();
        h.push(
            HeaderName::Contact,
            r#""a, b" <sip:x,y@z>;q=1 , <sip:z@w>,, "#,
        );
        h.push(HeaderName::Contact, "sip:v@u");
        assert_eq!(
            h.values(&HeaderName::Contact),
            vec![r#""a, b" <sip:x,y@z>;q=1"#, "<sip:z@w>", "sip:v@u"]
        );
        assert_eq!(h.contact().unwrap().len(), 3);
        let unusual = HeaderName::from("UnknownHeaderWithUnusualValue");
        h.push(unusual.clone(), ";;,,;;,;");
        assert_eq!(h.values(&unusual), vec![";;", ";;", ";"]);
        assert_eq!(
            split_list(r#""unterminated, \"x"#),
            vec![(0, r#""unterminated, \"x"#)]
        );
        assert_eq!(split_list("a\\"), vec![(0, "a\\")]);
    }

    #[test]
    fn set_push_front_remove() {
        let mut h = Headers::new();
        h.push(HeaderName::Via, "v1");
        h.push(HeaderName::To, "t");
        h.push(HeaderName::Via, "v2");
        h.push_front(HeaderName::Via, "v0");
        assert_eq!(
            h.get_all(&HeaderName::Via).collect::<Vec<_>>(),
            ["v0", "v1", "v2"]
        );
        h.set(HeaderName::Via, "only");
        assert_eq!(h.iter().map(|(_, v)| v).collect::<Vec<_>>(), ["only", "t"]);
        h.set(HeaderName::Expires, "3600");
        assert_eq!(h.expires(), Some(3600));
        h.remove(&HeaderName::Via);
        assert_eq!(h.len(), 2);
        assert!(h.top_via().is_err());
        h.push_front(HeaderName::CallId, " x ");
        assert_eq!(h.call_id(), Some("x"));
        assert_eq!(
            (&h).into_iter().next().map(|(n, _)| n.clone()),
            Some(HeaderName::CallId)
        );
    }

    #[test]
    fn scalar_accessors_are_lenient_but_bounded() {
        let mut h = Headers::new();
        h.push(HeaderName::MaxForwards, "70 ");
        assert_eq!(h.max_forwards(), Some(70));
        h.set(HeaderName::MaxForwards, "300");
        assert_eq!(h.max_forwards(), None);
        h.set(HeaderName::Expires, "10000000000000000000000");
        assert_eq!(h.expires(), None);
        h.push(HeaderName::ContentLength, "13");
        h.push(HeaderName::ContentLength, "5");
        assert_eq!(
            h.content_length().unwrap_err().kind,
            ParseErrorKind::ConflictingContentLength
        );
        h.set(HeaderName::ContentLength, "-999");
        assert!(h.content_length().is_err());
        assert_eq!(
            h.cseq().unwrap_err().kind,
            ParseErrorKind::MissingHeader("CSeq")
        );
    }
}
