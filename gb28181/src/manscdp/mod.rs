//! MANSCDP: the XML bodies of GB/T 28181 MESSAGE and NOTIFY requests (GB/T 28181-2022
//! Annex A, with the catalog shapes of Annex J, multi-message catalogs of Annex M and change
//! notifications of Annex N).
//!
//! - [`charset`]: GB2312/GBK/GB18030/UTF-8 detection and encoding ([`decode_body`],
//!   [`encode_body`]); never fails, never loses the body.
//! - [`xml`]: a lenient element tree over quick-xml ([`Element`]) that tolerates what devices
//!   send: unescaped `&`, stray text, mismatched case, unknown elements.
//! - [`Manscdp`]: the envelope (root, [`CmdType`], SN, DeviceID) and a typed [`Body`] for
//!   Keepalive, Catalog, DeviceInfo, DeviceStatus and DeviceControl; every other CmdType is
//!   [`Body::Unknown`] with its element tree.
//!
//! Parsing is lenient and lossless where it can be: fields are kept as received text with
//! typed accessors, and elements not modelled are kept in `extra` and written back. Only a
//! body without a usable element tree, or whose root is not Query/Control/Notify/Response, is
//! an error ([`ManscdpError`]).
//!
//! ```
//! use gb28181::manscdp::{Body, Charset, Manscdp};
//! let body = b"<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Notify>\r\n\
//!     <CmdType>Keepalive</CmdType>\r\n<SN>43</SN>\r\n<DeviceID>34020000001320000001</DeviceID>\r\n\
//!     <Status>OK</Status>\r\n</Notify>\r\n";
//! let msg = Manscdp::parse(body).unwrap();
//! let Body::Keepalive(k) = &msg.body else { panic!("not a keepalive") };
//! assert!(k.is_ok());
//! assert_eq!(msg.sn, 43);
//! // Answering a query: encode in the charset the peer expects.
//! let reply = Manscdp::device_info_query(44, "34020000001320000001").to_bytes(Charset::Gb2312);
//! assert!(reply.starts_with(b"<?xml version=\"1.0\" encoding=\"GB2312\"?>"));
//! ```

#[macro_use]
mod fields;

mod catalog;
mod catalog_item;
pub mod charset;
mod control;
mod device_info;
mod device_status;
mod envelope;
mod error;
mod keepalive;
mod values;
pub mod xml;

pub use catalog::{CatalogQuery, CatalogResponse, catalog_pages};
pub use catalog_item::{CatalogEvent, CatalogInfo, CatalogItem, CatalogNodeKind};
pub use charset::{Charset, Decoded, UnknownCharset, decode_body, encode_body};
pub use control::{DeviceControl, IFrameCmd, IFrameSpelling};
pub use device_info::DeviceInfo;
pub use device_status::{AlarmStatusItem, DeviceStatus};
pub use envelope::{Body, CmdType, Manscdp, RootKind};
pub use error::ManscdpError;
pub use keepalive::Keepalive;
pub use values::on_off;
pub use xml::Element;
