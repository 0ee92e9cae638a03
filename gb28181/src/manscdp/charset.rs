//! Character sets of MANSCDP bodies: GB2312 (2016 devices), GB18030 (mandated by
//! GB/T 28181-2022 §6.10) and UTF-8 (what many devices really send).
//!
//! # Decoding policy ([`decode_body`])
//!
//! Decoding never fails and never drops the body: the worst case is U+FFFD replacement
//! characters, reported in [`Decoded::lossy`].
//!
//! - A UTF-8 byte-order mark wins over any declaration: the body is UTF-8.
//! - Declared `GB2312`, `GBK` or `GB18030`: decoded with the GB18030 decoder (a superset of the
//!   other two), **unless** the body is valid UTF-8, contains non-ASCII bytes, and either
//!   - most of its non-ASCII characters read as UTF-8 are Chinese text (CJK ideographs, CJK and
//!     full-width punctuation, common symbols such as `°`, `·`, `№`, `①`), or
//!   - the same bytes are not valid GB18030.
//!
//!   Then it is a UTF-8 body mislabelled as GB, which real devices send.
//! - Declared `UTF-8`, another label, or no declaration: UTF-8 when valid; otherwise GB18030
//!   when that decodes cleanly; otherwise lossy UTF-8.
//!
//! ## Why this heuristic
//!
//! UTF-8 encodes Chinese with three-byte sequences (`E4..E9` followed by two bytes in
//! `80..BF`). GB2312/GBK encode it with byte pairs whose second byte is `A1..FE` (GB2312) or
//! `40..FE` (GBK), so a GB body is almost never valid UTF-8 as a whole: the pairs would have to
//! chain into three-byte sequences across character boundaries and end exactly before each
//! ASCII `<`. Valid UTF-8 made of Chinese characters is therefore strong evidence for UTF-8.
//!
//! The one common exception is short: about a fifth of frequent hanzi have a GB2312 code of
//! the form `C2..DF A1..BF`, which is a valid *two-byte* UTF-8 sequence (一 `D2 BB` reads as
//! `һ`, 水 `CB AE` as `ˮ`). A name like `一水` is thus valid UTF-8, but its UTF-8 reading is
//! Cyrillic/Greek/IPA letters, not Chinese, so the "mostly Chinese" test rejects it and the
//! declared GB charset is kept. Testing only "is it valid UTF-8" would misread such names.
//!
//! The remaining ambiguity (GB text whose bytes form three-byte UTF-8 sequences decoding to
//! CJK characters) needs rare GBK-extension characters in specific alignments; those bodies
//! would be read as UTF-8. [`encode_body`] guards our own output against it: if a GB-encoded
//! body would be misdetected, it appends a comment whose GB bytes are not valid UTF-8.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use encoding_rs::GB18030;

/// A character set named in a MANSCDP XML declaration (GB/T 28181-2016 §6.x GB2312,
/// GB/T 28181-2022 §6.10 GB18030).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Charset {
    /// `GB2312` — what 2016 devices declare. Decoded and encoded with GB18030 (a superset).
    Gb2312,
    /// `GBK` — decoded and encoded with GB18030 (a superset).
    Gbk,
    /// `GB18030` — mandated by GB/T 28181-2022 §6.10.
    Gb18030,
    /// `UTF-8`.
    Utf8,
}

impl Charset {
    /// The label written in an XML declaration: `GB2312`, `GBK`, `GB18030` or `UTF-8`.
    pub fn as_str(self) -> &'static str {
        match self {
            Charset::Gb2312 => "GB2312",
            Charset::Gbk => "GBK",
            Charset::Gb18030 => "GB18030",
            Charset::Utf8 => "UTF-8",
        }
    }

    /// Whether this is one of the GB family (decoded and encoded as GB18030).
    pub fn is_gb(self) -> bool {
        !matches!(self, Charset::Utf8)
    }
}

impl fmt::Display for Charset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A charset label this crate does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown MANSCDP charset label {0:?}")]
pub struct UnknownCharset(pub String);

impl FromStr for Charset {
    type Err = UnknownCharset;

    /// Case-insensitive; accepts the usual aliases (`gb_2312`, `gb2312-80`, `cp936`, `utf8`, …).
    fn from_str(s: &str) -> Result<Charset, UnknownCharset> {
        let label = s.trim().to_ascii_lowercase();
        Ok(match label.as_str() {
            "gb2312" | "gb_2312" | "gb-2312" | "gb_2312-80" | "gb2312-80" | "csgb2312"
            | "euc-cn" | "x-euc-cn" => Charset::Gb2312,
            "gbk" | "cp936" | "ms936" | "windows-936" | "x-gbk" => Charset::Gbk,
            "gb18030" | "gb-18030" | "gb_18030" => Charset::Gb18030,
            "utf-8" | "utf8" | "unicode-1-1-utf-8" => Charset::Utf8,
            _ => return Err(UnknownCharset(s.to_owned())),
        })
    }
}

/// A decoded MANSCDP body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The body as text, XML declaration included.
    pub text: String,
    /// The charset named in the XML declaration, when it names one this crate knows.
    pub declared: Option<Charset>,
    /// The decoder actually used: [`Charset::Utf8`] or [`Charset::Gb18030`] (GB2312 and GBK are
    /// decoded as GB18030).
    pub detected: Charset,
    /// Whether malformed sequences were replaced with U+FFFD.
    pub lossy: bool,
}

/// Decode a MANSCDP body to text; see the [module documentation](self) for the policy.
///
/// ```
/// use gb28181::manscdp::{decode_body, Charset};
/// // "一号通道" in GB2312, declared GB2312.
/// let body = b"<?xml version=\"1.0\" encoding=\"GB2312\"?><Name>\xd2\xbb\xba\xc5\xcd\xa8\xb5\xc0</Name>";
/// let d = decode_body(body);
/// assert!(d.text.contains("一号通道"));
/// assert_eq!(d.declared, Some(Charset::Gb2312));
/// assert_eq!(d.detected, Charset::Gb18030);
/// // The same name in UTF-8 under the same (wrong) declaration.
/// let body = "<?xml version=\"1.0\" encoding=\"GB2312\"?><Name>一号通道</Name>";
/// assert_eq!(decode_body(body.as_bytes()).detected, Charset::Utf8);
/// ```
pub fn decode_body(body: &[u8]) -> Decoded {
    if let Some(rest) = body.strip_prefix(b"\xEF\xBB\xBF") {
        let declared = declared_charset(rest);
        let (text, lossy) = utf8_lossy(rest);
        return Decoded {
            text,
            declared,
            detected: Charset::Utf8,
            lossy,
        };
    }
    let declared = declared_charset(body);
    let detected = detect(body, declared);
    let (text, lossy) = match detected {
        Charset::Utf8 => utf8_lossy(body),
        _ => {
            let (text, had_errors) = GB18030.decode_without_bom_handling(body);
            (text.into_owned(), had_errors)
        }
    };
    Decoded {
        text,
        declared,
        detected,
        lossy,
    }
}

fn utf8_lossy(bytes: &[u8]) -> (String, bool) {
    match String::from_utf8_lossy(bytes) {
        Cow::Borrowed(s) => (s.to_owned(), false),
        Cow::Owned(s) => (s, true),
    }
}

/// Which decoder [`decode_body`] uses for `body` (without BOM) given its declaration.
fn detect(body: &[u8], declared: Option<Charset>) -> Charset {
    let utf8 = std::str::from_utf8(body).ok();
    match declared {
        Some(cs) if cs.is_gb() => {
            let Some(text) = utf8 else {
                return Charset::Gb18030;
            };
            if text.is_ascii() {
                return Charset::Gb18030;
            }
            let (chinese, non_ascii) = chinese_share(text);
            if chinese * 2 > non_ascii {
                // Mostly Chinese when read as UTF-8: a UTF-8 body under a GB label.
                return Charset::Utf8;
            }
            let (_, gb_errors) = GB18030.decode_without_bom_handling(body);
            if gb_errors {
                Charset::Utf8
            } else {
                Charset::Gb18030
            }
        }
        _ => {
            if utf8.is_some() {
                return Charset::Utf8;
            }
            let (_, gb_errors) = GB18030.decode_without_bom_handling(body);
            if gb_errors {
                Charset::Utf8
            } else {
                Charset::Gb18030
            }
        }
    }
}

/// Count the non-ASCII characters of `text` that are plausible in Chinese device text, and all
/// non-ASCII characters.
fn chinese_share(text: &str) -> (usize, usize) {
    let mut chinese = 0;
    let mut non_ascii = 0;
    for c in text.chars().filter(|c| !c.is_ascii()) {
        non_ascii += 1;
        if is_chinese_text_char(c) {
            chinese += 1;
        }
    }
    (chinese, non_ascii)
}

/// Characters that Chinese device names, addresses and descriptions are made of: CJK
/// ideographs and punctuation, full-width forms, and the symbols GB2312 rows 1–2 carry.
/// Two-byte UTF-8 letters (Latin-1, Greek, Cyrillic, IPA, …) are deliberately absent: they are
/// what GB2312 text looks like when misread as UTF-8.
fn is_chinese_text_char(c: char) -> bool {
    matches!(c as u32,
        0xB0 | 0xB1 | 0xB7 | 0xD7 | 0xF7      // ° ± · × ÷
        | 0x2000..=0x206F                    // general punctuation — ‘’“” … ‰ ※
        | 0x2100..=0x21FF                    // letterlike, number forms, arrows: ℃ № Ⅰ →
        | 0x2200..=0x22FF                    // mathematical operators
        | 0x2460..=0x24FF                    // enclosed alphanumerics ①
        | 0x2500..=0x26FF                    // box drawing, geometric shapes, symbols ★
        | 0x2E80..=0x2FDF                    // CJK radicals
        | 0x3000..=0x33FF                    // CJK punctuation, kana, bopomofo, enclosed CJK
        | 0x3400..=0x4DBF                    // CJK extension A
        | 0x4E00..=0x9FFF                    // CJK unified ideographs
        | 0xF900..=0xFAFF                    // CJK compatibility ideographs
        | 0xFE30..=0xFE4F                    // CJK compatibility forms
        | 0xFF00..=0xFFEF                    // half-width and full-width forms
        | 0x20000..=0x3134F                  // CJK extensions B–G
    )
}

/// The `encoding` of the XML declaration at the start of `body`, if it names a known charset.
fn declared_charset(body: &[u8]) -> Option<Charset> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = &body[start..];
    if !rest.starts_with(b"<?xml") {
        return None;
    }
    let end = rest.windows(2).take(512).position(|w| w == b"?>")?;
    let decl = &rest[..end];
    let at = decl
        .windows(8)
        .position(|w| w.eq_ignore_ascii_case(b"encoding"))?;
    let mut tail = decl[at + 8..]
        .iter()
        .skip_while(|b| b.is_ascii_whitespace());
    if tail.next() != Some(&b'=') {
        return None;
    }
    let mut tail = tail.skip_while(|b| b.is_ascii_whitespace());
    let quote = *tail.next()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let label: Vec<u8> = tail.take_while(|&&b| b != quote).copied().collect();
    std::str::from_utf8(&label).ok()?.parse().ok()
}

/// Encode an outgoing MANSCDP body in `charset`.
///
/// Any XML declaration at the start of `xml` is replaced by
/// `<?xml version="1.0" encoding="…"?>` naming `charset`, and the text is encoded to match.
/// GB2312 and GBK requests are encoded with the GB18030 encoder: GB2312 text comes out
/// identical, and characters outside GB2312 still survive instead of becoming `?`.
///
/// ```
/// use gb28181::manscdp::{decode_body, encode_body, Charset};
/// let bytes = encode_body("<Name>大门口摄像机</Name>", Charset::Gb2312);
/// assert!(bytes.starts_with(b"<?xml version=\"1.0\" encoding=\"GB2312\"?>"));
/// assert!(decode_body(&bytes).text.ends_with("<Name>大门口摄像机</Name>"));
/// ```
pub fn encode_body(xml: &str, charset: Charset) -> Bytes {
    let content = strip_declaration(xml);
    let mut text = String::with_capacity(content.len() + 48);
    text.push_str("<?xml version=\"1.0\" encoding=\"");
    text.push_str(charset.as_str());
    text.push_str("\"?>\r\n");
    text.push_str(content);
    if !charset.is_gb() {
        return Bytes::from(text.into_bytes());
    }
    // Never produces errors: GB18030 covers all of Unicode (U+E5E5, the one unmappable code
    // point, becomes a numeric character reference, which XML resolves back).
    let (bytes, _, _) = GB18030.encode(&text);
    let mut bytes = bytes.into_owned();
    if detect(&bytes, Some(charset)) != Charset::Gb18030 {
        // Our GB bytes happen to read as Chinese UTF-8; add GB bytes that are not UTF-8 so
        // that any receiver sniffing for UTF-8 (ourselves included) keeps the declared charset.
        let (guard, _, _) = GB18030.encode("<!-- 字符集 GB18030 -->\r\n");
        bytes.extend_from_slice(&guard);
    }
    Bytes::from(bytes)
}

/// `xml` without a leading XML declaration (and the whitespace around it).
fn strip_declaration(xml: &str) -> &str {
    let trimmed = xml.trim_start_matches('\u{FEFF}').trim_start();
    if trimmed.starts_with("<?xml")
        && let Some(end) = trimmed.find("?>")
    {
        return trimmed[end + 2..].trim_start();
    }
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gb(s: &str) -> Vec<u8> {
        GB18030.encode(s).0.into_owned()
    }

    #[test]
    fn charset_labels() {
        assert_eq!("gb2312".parse::<Charset>().unwrap(), Charset::Gb2312);
        assert_eq!(" GBK ".parse::<Charset>().unwrap(), Charset::Gbk);
        assert_eq!("Gb18030".parse::<Charset>().unwrap(), Charset::Gb18030);
        assert_eq!("utf-8".parse::<Charset>().unwrap(), Charset::Utf8);
        assert_eq!("UTF8".parse::<Charset>().unwrap(), Charset::Utf8);
        assert!("latin1".parse::<Charset>().is_err());
        for cs in [
            Charset::Gb2312,
            Charset::Gbk,
            Charset::Gb18030,
            Charset::Utf8,
        ] {
            assert_eq!(cs.as_str().parse::<Charset>().unwrap(), cs);
        }
    }

    #[test]
    fn declaration_is_found() {
        assert_eq!(
            declared_charset(b"<?xml version=\"1.0\" encoding=\"gb2312\"?>"),
            Some(Charset::Gb2312)
        );
        assert_eq!(
            declared_charset(b"\r\n <?xml version='1.0' ENCODING = 'UTF-8' ?><a/>"),
            Some(Charset::Utf8)
        );
        assert_eq!(
            declared_charset(b"<?xml version=\"1.0\"?><Response/>"),
            None
        );
        assert_eq!(declared_charset(b"<Response/>"), None);
        assert_eq!(declared_charset(b"<?xml encoding=\"x\"?>"), None);
        assert_eq!(declared_charset(b"<?xml encoding=\"GB2312"), None);
    }

    #[test]
    fn gb_bytes_that_are_valid_utf8_stay_gb() {
        // 一 = D2 BB, 水 = CB AE: valid two-byte UTF-8 ("һˮ") but not Chinese as UTF-8.
        let mut body = b"<?xml version=\"1.0\" encoding=\"GB2312\"?><Name>".to_vec();
        body.extend(gb("一水"));
        body.extend(b"</Name>");
        assert!(std::str::from_utf8(&body).is_ok());
        let d = decode_body(&body);
        assert_eq!(d.detected, Charset::Gb18030);
        assert!(d.text.contains("<Name>一水</Name>"), "{}", d.text);
        assert!(!d.lossy);
    }

    #[test]
    fn utf8_under_gb_label_is_utf8() {
        for name in ["一水", "大门口摄像机", "一号通道", "Café 大门"] {
            let body = format!("<?xml version=\"1.0\" encoding=\"GB2312\"?><Name>{name}</Name>");
            let d = decode_body(body.as_bytes());
            assert_eq!(d.detected, Charset::Utf8, "{name}");
            assert_eq!(d.text, body);
        }
    }

    #[test]
    fn undeclared_falls_back_to_gb18030() {
        let mut body = b"<Name>".to_vec();
        body.extend(gb("大门口摄像机"));
        body.extend(b"</Name>");
        let d = decode_body(&body);
        assert_eq!(d.declared, None);
        assert_eq!(d.detected, Charset::Gb18030);
        assert_eq!(d.text, "<Name>大门口摄像机</Name>");
        // Declared UTF-8 but really GB: same fallback.
        let mut body = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Name>".to_vec();
        body.extend(gb("一号通道"));
        body.extend(b"</Name>");
        assert!(decode_body(&body).text.contains("一号通道"));
    }

    #[test]
    fn garbage_is_replaced_not_rejected() {
        let d = decode_body(b"<a>\xff\xfe\x80</a>");
        assert!(d.lossy);
        assert!(d.text.starts_with("<a>"));
        let d = decode_body(
            b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"GB2312\"?><a>\xe5\xa4\xa7</a>",
        );
        assert_eq!(d.detected, Charset::Utf8);
        assert!(d.text.contains("大"));
    }

    #[test]
    fn encode_replaces_declaration() {
        let b = encode_body(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a>一</a>",
            Charset::Gb18030,
        );
        assert_eq!(
            &b[..],
            &[
                b"<?xml version=\"1.0\" encoding=\"GB18030\"?>\r\n<a>".as_slice(),
                &gb("一"),
                b"</a>"
            ]
            .concat()[..]
        );
        let b = encode_body("<a>一</a>", Charset::Utf8);
        assert_eq!(
            &b[..],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<a>一</a>".as_bytes()
        );
    }

    #[test]
    fn encode_guards_ambiguous_gb_output() {
        // "中文" in UTF-8 read as GB18030 gives three GBK characters; encoding those back to
        // GB18030 yields bytes that are valid, Chinese-looking UTF-8.
        let (tricky, _) = GB18030.decode_without_bom_handling("中文".as_bytes());
        let xml = format!("<a>{tricky}</a>");
        let b = encode_body(&xml, Charset::Gb2312);
        let d = decode_body(&b);
        assert_eq!(d.detected, Charset::Gb18030);
        assert!(d.text.contains(&xml), "{}", d.text);
    }
}
