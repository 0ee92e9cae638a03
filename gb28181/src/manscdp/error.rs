//! Errors returned when a MANSCDP body cannot be understood at all.

use thiserror::Error;

/// Why a MANSCDP body (GB/T 28181-2022 Annex A) could not be parsed.
///
/// The parser is lenient: unknown elements, stray text, unescaped `&`, case variations of
/// element names, a missing `CmdType` (kept as [`CmdType::Other`] with an empty name), a
/// missing or non-numeric `SN` (read as 0) and a missing `DeviceID` (read as empty) are all
/// tolerated. An error is returned only when there is no usable element tree.
///
/// Positions are byte offsets in the *decoded* (UTF-8) text, which equal offsets in the
/// received bytes for ASCII content (everything up to the first non-ASCII character).
///
/// [`CmdType::Other`]: super::CmdType::Other
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ManscdpError {
    /// The body holds no element at all (empty, only whitespace, text or a declaration).
    #[error("MANSCDP body has no root element")]
    NoRoot,

    /// The XML is broken where quick-xml cannot continue (an unterminated tag, comment or CDATA
    /// section, a `<!` that starts nothing known).
    #[error("MANSCDP body is not well-formed XML at byte {position}: {source}")]
    Xml {
        /// Byte offset in the decoded text where the reader failed.
        position: u64,
        /// What quick-xml reported.
        #[source]
        source: quick_xml::Error,
    },

    /// The body ends inside an element: it was truncated.
    #[error("MANSCDP body ends inside <{element}> (truncated at byte {position})")]
    Unclosed {
        /// The innermost element still open at the end of the input.
        element: String,
        /// Length of the decoded text.
        position: u64,
    },

    /// Elements are nested deeper than any MANSCDP message needs.
    #[error(
        "MANSCDP body nests elements deeper than {limit} levels at <{element}> (byte {position})"
    )]
    TooDeep {
        /// The element that went over the limit.
        element: String,
        /// The nesting limit.
        limit: usize,
        /// Byte offset of that element's start tag.
        position: u64,
    },

    /// The root element is not one of `Query`, `Control`, `Notify`, `Response` (Annex A.1).
    #[error("MANSCDP root element <{name}> is none of Query, Control, Notify, Response")]
    UnknownRoot {
        /// The root element's name as received.
        name: String,
    },
}
