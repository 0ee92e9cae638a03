//! A lenient element tree for MANSCDP bodies (GB/T 28181-2022 Annex A), read with quick-xml.
//!
//! What real devices send and this reader accepts:
//!
//! - unescaped `&` in text (`<Name>A&B</Name>`) and unknown entities (`&nbsp;`), kept literally;
//! - stray text between elements (`<Channel>1</Channel>/>`), kept in the parent's `text`;
//! - end tags that do not match (`<a><b></a>` closes both), or match only ignoring ASCII case
//!   (`<Alarmstatus>…</AlarmStatus>`); end tags matching nothing are ignored;
//! - a tag whose name is not an XML name (`<a<b>`) is kept as text;
//! - whitespace around values (text is trimmed of XML whitespace).
//!
//! Rejected: no element at all, a body that ends inside an element (truncated), unterminated
//! markup, and nesting deeper than [`MAX_DEPTH`].

use quick_xml::Reader;
use quick_xml::events::{BytesRef, BytesStart, Event};

use super::ManscdpError;

/// Deepest element nesting accepted. MANSCDP needs 5 (`Response/DeviceList/Item/Info/…`);
/// the limit keeps recursion over the tree (drop, clone, write) shallow on hostile input.
pub const MAX_DEPTH: usize = 32;

/// One XML element: name, attributes, trimmed text and child elements in document order.
///
/// Lookups by name ignore ASCII case, because devices vary it (`Alarmstatus`, `AlarmStatus`).
///
/// ```
/// use gb28181::manscdp::Element;
/// let el = Element::parse("<Item><DeviceID> 34020000001320000001 </DeviceID><Name>A&B</Name></Item>").unwrap();
/// assert_eq!(el.child_text("deviceid"), Some("34020000001320000001"));
/// assert_eq!(el.child_text("Name"), Some("A&B"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// Element name as received.
    pub name: String,
    /// Attributes in document order, values unescaped.
    pub attrs: Vec<(String, String)>,
    /// Text directly inside this element (all pieces concatenated, XML whitespace trimmed).
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
}

impl Element {
    /// An empty element called `name`.
    pub fn new(name: impl Into<String>) -> Element {
        Element {
            name: name.into(),
            ..Element::default()
        }
    }

    /// An element called `name` holding `text`.
    pub fn with_text(name: impl Into<String>, text: impl Into<String>) -> Element {
        Element {
            name: name.into(),
            text: text.into(),
            ..Element::default()
        }
    }

    /// Parse the root element of an XML document (see the [module docs](self) for leniency).
    pub fn parse(xml: &str) -> Result<Element, ManscdpError> {
        parse_root(xml)
    }

    /// Whether this element is called `name`, ignoring ASCII case.
    pub fn name_is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The first child called `name` (ASCII case-insensitive).
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name_is(name))
    }

    /// The text of the first child called `name` (ASCII case-insensitive).
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// All children called `name` (ASCII case-insensitive), in document order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name_is(name))
    }

    /// The value of attribute `name` (ASCII case-insensitive).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Append a child and return `self` (builder style).
    pub fn push(mut self, child: Element) -> Element {
        self.children.push(child);
        self
    }

    /// Remove and return the first child called `name`.
    pub fn take_child(&mut self, name: &str) -> Option<Element> {
        let i = self.children.iter().position(|c| c.name_is(name))?;
        Some(self.children.remove(i))
    }

    /// Whether this is a plain text element: no attributes and no children.
    pub fn is_plain(&self) -> bool {
        self.attrs.is_empty() && self.children.is_empty()
    }

    /// Serialize this element (no declaration), one element per CRLF-terminated line.
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::default();
        w.element(self);
        w.finish()
    }
}

/// Parse the root element of `xml`; content after the root is ignored.
pub(crate) fn parse_root(xml: &str) -> Result<Element, ManscdpError> {
    // A byte-order mark (e.g. GB18030's `84 31 95 33`, decoded) is not content; tag names are
    // sliced from `xml` at reader positions, so it must go before the reader starts.
    let xml = xml.strip_prefix('\u{FEFF}').unwrap_or(xml);
    let mut reader = Reader::from_str(xml);
    {
        let config = reader.config_mut();
        config.allow_dangling_amp = true;
        config.check_end_names = false;
        config.allow_unmatched_ends = true;
        config.expand_empty_elements = false;
        config.trim_text(false);
    }
    let mut stack: Vec<Element> = Vec::new();
    loop {
        let before = reader.buffer_position();
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(source) => {
                return Err(ManscdpError::Xml {
                    position: reader.error_position(),
                    source,
                });
            }
        };
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(start) | Event::Empty(start) => {
                let Some(name) = tag_name(xml, before, &start) else {
                    // Not a tag a device meant (`<a<b>`, `< x>`): keep it as text.
                    if let Some(top) = stack.last_mut() {
                        let after = reader.buffer_position() as usize;
                        top.text
                            .push_str(xml.get(before as usize..after).unwrap_or_default());
                    }
                    continue;
                };
                let el = Element {
                    name: name.to_owned(),
                    attrs: attributes(&start),
                    ..Element::default()
                };
                if empty {
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(el),
                        None => return Ok(el),
                    }
                } else if stack.len() >= MAX_DEPTH {
                    return Err(ManscdpError::TooDeep {
                        element: el.name,
                        limit: MAX_DEPTH,
                        position: before,
                    });
                } else {
                    stack.push(el);
                }
            }
            Event::End(end) => {
                let name = end.name();
                let name = name.as_ref();
                let Some(i) = stack
                    .iter()
                    .rposition(|e| e.name.as_bytes().eq_ignore_ascii_case(name))
                else {
                    tracing::debug!(
                        tag = %String::from_utf8_lossy(name),
                        "MANSCDP: ignoring end tag that closes nothing"
                    );
                    continue;
                };
                // Close everything above `i` implicitly, then `i` itself.
                while stack.len() > i + 1 {
                    close_top(&mut stack);
                }
                if let Some(root) = close_top(&mut stack) {
                    return Ok(root);
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    if top.text.is_empty()
                        && t.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                    {
                        // Leading whitespace is trimmed anyway; skipping it spares an
                        // allocation per element of an indented body.
                        continue;
                    }
                    match t.xml10_content() {
                        Ok(s) => top.text.push_str(&s),
                        Err(_) => top.text.push_str(&String::from_utf8_lossy(&t)),
                    }
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&c));
                }
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    push_reference(&mut top.text, &r);
                }
            }
            Event::Eof => {
                return Err(match stack.pop() {
                    Some(open) => ManscdpError::Unclosed {
                        element: open.name,
                        position: xml.len() as u64,
                    },
                    None => ManscdpError::NoRoot,
                });
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
}

/// Pop the top element, trim its text and attach it to its parent; return it if it was the
/// root.
fn close_top(stack: &mut Vec<Element>) -> Option<Element> {
    let mut el = stack.pop()?;
    trim_xml_ws(&mut el.text);
    match stack.last_mut() {
        Some(parent) => {
            parent.children.push(el);
            None
        }
        None => Some(el),
    }
}

fn trim_xml_ws(s: &mut String) {
    let is_ws = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n');
    let end = s.trim_end_matches(is_ws).len();
    s.truncate(end);
    let start = s.len() - s.trim_start_matches(is_ws).len();
    s.drain(..start);
}

/// The name of the start tag read at byte `at` of `xml`, if it is an XML name. The name is
/// sliced from the source text, which is already valid UTF-8.
fn tag_name<'x>(xml: &'x str, at: u64, start: &BytesStart<'_>) -> Option<&'x str> {
    let at = usize::try_from(at).ok()?;
    let raw = start.name();
    let raw = raw.as_ref();
    // `at` is the `<` of the tag; the name follows it directly.
    let name = xml.get(at + 1..at + 1 + raw.len())?;
    (name.as_bytes() == raw && is_xml_name(name)).then_some(name)
}

fn attributes(start: &BytesStart<'_>) -> Vec<(String, String)> {
    let mut attrs = Vec::new();
    let mut iter = start.attributes();
    iter.with_checks(false);
    for attr in iter {
        let Ok(attr) = attr else {
            break; // malformed attribute list: keep what was read
        };
        let Ok(key) = std::str::from_utf8(attr.key.as_ref()) else {
            continue;
        };
        if !is_xml_name(key) {
            continue;
        }
        let raw = String::from_utf8_lossy(&attr.value);
        attrs.push((key.to_owned(), unescape_lenient(&raw)));
    }
    attrs
}

/// Append the text a reference (`&amp;`, `&#x4E2D;`, `&foo;`) stands for; references that
/// are neither predefined nor valid characters are kept literally.
fn push_reference(out: &mut String, r: &BytesRef<'_>) {
    let raw = String::from_utf8_lossy(r);
    match resolve_reference(&raw) {
        Some(c) => out.push(c),
        None => {
            out.push('&');
            out.push_str(&raw);
            out.push(';');
        }
    }
}

/// The character `&name;` stands for, if any.
fn resolve_reference(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix('x') {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code).filter(|&c| c != '\0')
        }
    }
}

/// Unescape an attribute value, keeping unknown or broken references literally.
fn unescape_lenient(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let resolved = after
            .find(';')
            .filter(|&semi| semi <= 32)
            .and_then(|semi| Some((resolve_reference(&after[..semi])?, semi)));
        match resolved {
            Some((c, semi)) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// An XML 1.0 `Name` (ASCII letters, digits, `_ - . :`, and the non-ASCII ranges the standard
/// allows; private-use characters excluded).
fn is_xml_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
    {
        // Fast path for the ASCII names MANSCDP uses.
        return !bytes[0].is_ascii_digit() && !matches!(bytes[0], b'-' | b'.');
    }
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let start_char = |c: char| {
        c.is_ascii_alphabetic()
            || c == '_'
            || c == ':'
            || matches!(c as u32,
                0xC0..=0xD6 | 0xD8..=0xF6 | 0xF8..=0x2FF | 0x370..=0x37D | 0x37F..=0x1FFF
                | 0x200C..=0x200D | 0x2070..=0x218F | 0x2C00..=0x2FEF | 0x3001..=0xD7FF
                | 0xF900..=0xFDCF | 0xFDF0..=0xFFFD | 0x10000..=0xEFFFF)
    };
    start_char(first)
        && chars.all(|c| {
            start_char(c)
                || c.is_ascii_digit()
                || c == '-'
                || c == '.'
                || matches!(c as u32, 0xB7 | 0x300..=0x36F | 0x203F..=0x2040)
        })
}

/// Writes MANSCDP XML: one element per line, CRLF line ends, no indentation (the layout
/// Hikvision and most platforms use), text and attribute values escaped.
#[derive(Debug, Default)]
pub(crate) struct XmlWriter {
    out: String,
}

impl XmlWriter {
    pub(crate) fn with_capacity(n: usize) -> XmlWriter {
        XmlWriter {
            out: String::with_capacity(n),
        }
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }

    /// `<name attrs>` + CRLF.
    pub(crate) fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.start_tag(name, attrs.iter().copied());
        self.out.push_str("\r\n");
    }

    /// `</name>` + CRLF.
    pub(crate) fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\r\n");
    }

    /// `<name>text</name>` + CRLF.
    pub(crate) fn text_element(&mut self, name: &str, text: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        escape_text(&mut self.out, text);
        self.close(name);
    }

    /// A whole element tree.
    pub(crate) fn element(&mut self, el: &Element) {
        self.start_tag(
            &el.name,
            el.attrs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        if el.children.is_empty() {
            escape_text(&mut self.out, &el.text);
        } else {
            self.out.push_str("\r\n");
            if !el.text.is_empty() {
                escape_text(&mut self.out, &el.text);
                self.out.push_str("\r\n");
            }
            for child in &el.children {
                self.element(child);
            }
        }
        self.close(&el.name);
    }

    /// Text directly inside the element being written (stray text kept from a device).
    pub(crate) fn raw_text_line(&mut self, text: &str) {
        if !text.is_empty() {
            escape_text(&mut self.out, text);
            self.out.push_str("\r\n");
        }
    }

    fn start_tag<'a>(&mut self, name: &str, attrs: impl Iterator<Item = (&'a str, &'a str)>) {
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            self.out.push(' ');
            self.out.push_str(k);
            self.out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '&' => self.out.push_str("&amp;"),
                    '<' => self.out.push_str("&lt;"),
                    '>' => self.out.push_str("&gt;"),
                    '"' => self.out.push_str("&quot;"),
                    '\r' => self.out.push_str("&#13;"),
                    '\n' => self.out.push_str("&#10;"),
                    '\t' => self.out.push_str("&#9;"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        self.out.push('>');
    }
}

/// Escape `&`, `<`, `>` and carriage returns (which XML readers would otherwise turn into
/// line feeds).
fn escape_text(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(i) = rest.find(['&', '<', '>', '\r']) {
        out.push_str(&rest[..i]);
        out.push_str(match rest.as_bytes()[i] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            _ => "&#13;",
        });
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_text() {
        let el = Element::parse(
            "<a><n>A&B</n><m>x &amp; y &nbsp; &#x4E2D;&#20013;</m><o> A & B; C </o></a>",
        )
        .unwrap();
        assert_eq!(el.child_text("n"), Some("A&B"));
        assert_eq!(el.child_text("m"), Some("x & y &nbsp; 中中"));
        assert_eq!(el.child_text("o"), Some("A & B; C"));
    }

    #[test]
    fn stray_text_and_mismatched_tags() {
        let el =
            Element::parse("<R>\n<Channel>1</Channel>/>\n<x><y>1</x><Z>2</z></Q></R>trailing<")
                .unwrap();
        assert_eq!(el.text, "/>");
        assert_eq!(el.child_text("channel"), Some("1"));
        assert_eq!(el.child("x").unwrap().child_text("y"), Some("1"));
        assert_eq!(el.child_text("z"), Some("2"));
    }

    #[test]
    fn invalid_names_become_text() {
        let el = Element::parse("<a><b<c>1</a>").unwrap();
        assert_eq!(el.text, "<b<c>1");
        assert!(el.children.is_empty());
    }

    #[test]
    fn errors() {
        assert!(matches!(Element::parse(""), Err(ManscdpError::NoRoot)));
        assert!(matches!(
            Element::parse("<?xml version=\"1.0\"?> text"),
            Err(ManscdpError::NoRoot)
        ));
        assert!(matches!(
            Element::parse("<a><b>1</b>"),
            Err(ManscdpError::Unclosed { element, .. }) if element == "a"
        ));
        assert!(matches!(
            Element::parse("<a><b"),
            Err(ManscdpError::Xml { .. })
        ));
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert!(matches!(
            Element::parse(&deep),
            Err(ManscdpError::TooDeep { .. })
        ));
    }

    #[test]
    fn attributes_and_bom() {
        let el = Element::parse("\u{FEFF}<L Num=\"2\" x='a&amp;b&c' bad>t</L>").unwrap();
        assert_eq!(el.attr("num"), Some("2"));
        assert_eq!(el.attr("x"), Some("a&b&c"));
    }

    #[test]
    fn write_then_read_is_identity() {
        let mut el = Element::new("Root");
        el.attrs.push(("k".into(), "a\"<&>\r\n\tb".into()));
        el.text = "stray <&>\r text".into();
        el.children
            .push(Element::with_text("Name", "A&B <大门> \r x"));
        el.children.push(Element::new("Empty"));
        let xml = el.to_xml();
        assert_eq!(Element::parse(&xml).unwrap(), el);
    }
}
