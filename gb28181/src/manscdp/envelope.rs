//! The MANSCDP envelope (GB/T 28181-2022 Annex A.1): root element, `CmdType`, `SN`,
//! `DeviceID`, and the dispatch of bodies to typed messages.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

use super::catalog::{CatalogQuery, CatalogResponse};
use super::charset::{Charset, Decoded, decode_body, encode_body};
use super::control::{DeviceControl, IFrameCmd};
use super::device_info::DeviceInfo;
use super::device_status::DeviceStatus;
use super::keepalive::Keepalive;
use super::xml::{Element, XmlWriter, parse_root};
use super::{CatalogItem, ManscdpError};

/// The root element of a MANSCDP body (Annex A.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RootKind {
    /// `<Query>`: a request for information (Catalog, DeviceInfo, DeviceStatus, RecordInfo, …).
    Query,
    /// `<Control>`: a command (DeviceControl, DeviceConfig).
    Control,
    /// `<Notify>`: an unsolicited report (Keepalive, Alarm, MediaStatus, Catalog changes, …).
    Notify,
    /// `<Response>`: the answer to a Query or Control, with the request's SN.
    Response,
}

impl RootKind {
    /// The element name.
    pub fn as_str(self) -> &'static str {
        match self {
            RootKind::Query => "Query",
            RootKind::Control => "Control",
            RootKind::Notify => "Notify",
            RootKind::Response => "Response",
        }
    }
}

impl fmt::Display for RootKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RootKind {
    type Err = ManscdpError;

    /// ASCII case-insensitive; a namespace prefix (`ns:Query`) is ignored.
    fn from_str(s: &str) -> Result<RootKind, ManscdpError> {
        let local = s.rsplit(':').next().unwrap_or(s);
        [
            RootKind::Query,
            RootKind::Control,
            RootKind::Notify,
            RootKind::Response,
        ]
        .into_iter()
        .find(|k| k.as_str().eq_ignore_ascii_case(local))
        .ok_or_else(|| ManscdpError::UnknownRoot { name: s.to_owned() })
    }
}

macro_rules! cmd_types {
    ($( $(#[$m:meta])* $variant:ident = $name:literal, )*) => {
        /// The `CmdType` of a MANSCDP message (GB/T 28181-2022 Annex A.2; PROTOCOL-NOTES §3).
        ///
        /// Every CmdType of the 2016 and 2022 standards has a variant, whether or not this crate
        /// types its body yet; anything else is kept in [`CmdType::Other`]. Parsing ignores ASCII
        /// case; writing uses the standard's spelling.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum CmdType {
            $( $(#[$m])* $variant, )*
            /// A CmdType not listed above, as received (empty when the body had no `CmdType`).
            Other(String),
        }

        impl CmdType {
            /// The standard's spelling (or the received text for [`CmdType::Other`]).
            pub fn as_str(&self) -> &str {
                match self {
                    $( CmdType::$variant => $name, )*
                    CmdType::Other(s) => s,
                }
            }

            /// Read a CmdType, ignoring ASCII case and surrounding whitespace.
            pub fn parse(s: &str) -> CmdType {
                let s = s.trim();
                $( if s.eq_ignore_ascii_case($name) { return CmdType::$variant; } )*
                CmdType::Other(s.to_owned())
            }
        }
    };
}

cmd_types! {
    /// Device heartbeat (Notify, A.2.5).
    Keepalive = "Keepalive",
    /// Catalog query, response and change notification (A.2.4, A.2.6, Annex M/N).
    Catalog = "Catalog",
    /// Device information query and response (A.2.4, A.2.6).
    DeviceInfo = "DeviceInfo",
    /// Device status query and response (A.2.4, A.2.6).
    DeviceStatus = "DeviceStatus",
    /// Device control: PTZ, keyframe, guard, record, reboot, … (A.2.3).
    DeviceControl = "DeviceControl",
    /// Device configuration (A.2.3).
    DeviceConfig = "DeviceConfig",
    /// Recording query and response (A.2.4, A.2.6).
    RecordInfo = "RecordInfo",
    /// Alarm query, notification and answer (A.2.4, A.2.5).
    Alarm = "Alarm",
    /// Configuration download (A.2.4).
    ConfigDownload = "ConfigDownload",
    /// Preset list query (A.2.4).
    PresetQuery = "PresetQuery",
    /// Mobile device position query and notification (A.2.4, A.2.5).
    MobilePosition = "MobilePosition",
    /// Home position query (2022).
    HomePositionQuery = "HomePositionQuery",
    /// Cruise track list query (2022).
    CruiseTrackListQuery = "CruiseTrackListQuery",
    /// Cruise track query (2022).
    CruiseTrackQuery = "CruiseTrackQuery",
    /// PTZ precise position query (2022).
    PtzPosition = "PTZPosition",
    /// SD card status query (2022).
    SdCardStatus = "SDCardStatus",
    /// Media status notification, e.g. end of playback `NotifyType 121` (A.2.5).
    MediaStatus = "MediaStatus",
    /// Voice broadcast notification and answer (A.2.5, §9.12).
    Broadcast = "Broadcast",
    /// Snapshot upload finished (2022).
    UploadSnapShotFinished = "UploadSnapShotFinished",
    /// Video upload notification (2022).
    VideoUploadNotify = "VideoUploadNotify",
    /// Device upgrade result (2022).
    DeviceUpgradeResult = "DeviceUpgradeResult",
}

impl fmt::Display for CmdType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The typed content of a MANSCDP message, after the envelope.
///
/// Each arm is one (root, CmdType) pair of Annex A; everything not typed yet is
/// [`Body::Unknown`] with its element tree, so further CmdTypes (Alarm, RecordInfo,
/// MediaStatus, Broadcast, …) arrive as new arms without changing the others.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body {
    /// `Notify/Keepalive` (A.2.5.2).
    Keepalive(Keepalive),
    /// `Query/Catalog` (A.2.4.3).
    CatalogQuery(CatalogQuery),
    /// `Response/Catalog` (A.2.6.4, paged per Annex M) or `Notify/Catalog` (change notification,
    /// Annex N).
    Catalog(CatalogResponse),
    /// `Query/DeviceInfo` (A.2.4.4); carries nothing beyond the envelope (other elements are
    /// ignored).
    DeviceInfoQuery,
    /// `Response/DeviceInfo` (A.2.6.6).
    DeviceInfo(DeviceInfo),
    /// `Query/DeviceStatus` (A.2.4.5); carries nothing beyond the envelope (other elements are
    /// ignored).
    DeviceStatusQuery,
    /// `Response/DeviceStatus` (A.2.6.5).
    DeviceStatus(DeviceStatus),
    /// `Control/DeviceControl` (A.2.3.1).
    DeviceControl(DeviceControl),
    /// Any other message: the root element without its `CmdType`, `SN` and `DeviceID` children
    /// (those are in the [`Manscdp`] envelope), everything else kept.
    Unknown(Element),
}

impl Body {
    /// The top-level elements this body keeps without modelling them (`extra`, or the
    /// children of [`Body::Unknown`]).
    pub fn unmodelled(&self) -> &[Element] {
        match self {
            Body::Keepalive(k) => &k.extra,
            Body::CatalogQuery(q) => &q.extra,
            Body::Catalog(c) => &c.extra,
            Body::DeviceInfo(d) => &d.extra,
            Body::DeviceStatus(d) => &d.extra,
            Body::DeviceControl(d) => &d.extra,
            Body::DeviceInfoQuery | Body::DeviceStatusQuery => &[],
            Body::Unknown(el) => &el.children,
        }
    }
}

/// A MANSCDP message (GB/T 28181-2022 Annex A): envelope plus typed body.
///
/// ```
/// use gb28181::manscdp::{Body, Charset, CmdType, Manscdp, RootKind};
/// let query = Manscdp::catalog_query(17, "34020000001110000001");
/// let bytes = query.to_bytes(Charset::Gb2312);
/// let back = Manscdp::parse(&bytes).unwrap();
/// assert_eq!(back.root, RootKind::Query);
/// assert_eq!(back.cmd_type, CmdType::Catalog);
/// assert_eq!(back.sn, 17);
/// assert!(matches!(back.body, Body::CatalogQuery(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manscdp {
    /// Query, Control, Notify or Response.
    pub root: RootKind,
    /// The `CmdType`.
    pub cmd_type: CmdType,
    /// The `SN`; 0 when the body had none or it was not a number (the standard requires ≥ 1,
    /// but test tools send `${SN}` or `sn`, and a Response can still be matched by CmdType).
    pub sn: u32,
    /// The `DeviceID` (the target of a Query/Control, the sender of a Notify/Response); empty
    /// when the body had none (e.g. `Notify/Broadcast` uses SourceID/TargetID).
    pub device_id: String,
    /// The typed content.
    pub body: Body,
}

impl Manscdp {
    /// A message with the given parts; nothing checks that `cmd_type` matches `body`.
    pub fn new(
        root: RootKind,
        cmd_type: CmdType,
        sn: u32,
        device_id: impl Into<String>,
        body: Body,
    ) -> Manscdp {
        Manscdp {
            root,
            cmd_type,
            sn,
            device_id: device_id.into(),
            body,
        }
    }

    /// Parse a received body (any charset; see [`decode_body`]).
    pub fn parse(body: &[u8]) -> Result<Manscdp, ManscdpError> {
        Manscdp::parse_decoded(&decode_body(body))
    }

    /// Parse a body already decoded with [`decode_body`] (keep the [`Decoded`] to answer in
    /// the charset the peer uses).
    pub fn parse_decoded(decoded: &Decoded) -> Result<Manscdp, ManscdpError> {
        Manscdp::parse_str(&decoded.text)
    }

    /// Parse a body given as text.
    pub fn parse_str(xml: &str) -> Result<Manscdp, ManscdpError> {
        Manscdp::from_element(parse_root(xml)?)
    }

    /// Interpret an element tree as a MANSCDP message.
    pub fn from_element(mut root_el: Element) -> Result<Manscdp, ManscdpError> {
        let root: RootKind = root_el.name.parse()?;
        // The envelope's RootKind is authoritative; keep the tree's name consistent with it.
        root_el.name = root.as_str().to_owned();
        let cmd_type = match root_el.take_child("CmdType") {
            Some(el) => CmdType::parse(&el.text),
            None => {
                tracing::debug!(root = %root, "MANSCDP: body has no CmdType");
                CmdType::Other(String::new())
            }
        };
        let sn = match root_el.take_child("SN") {
            Some(el) => el.text.parse().unwrap_or_else(|_| {
                tracing::debug!(sn = %el.text, "MANSCDP: SN is not a number, using 0");
                0
            }),
            None => 0,
        };
        let device_id = root_el
            .take_child("DeviceID")
            .map(|el| el.text)
            .unwrap_or_default();
        let body = match (root, &cmd_type) {
            (RootKind::Notify, CmdType::Keepalive) => {
                Body::Keepalive(Keepalive::from_children(root_el.children))
            }
            (RootKind::Query, CmdType::Catalog) => {
                Body::CatalogQuery(CatalogQuery::from_children(root_el.children))
            }
            (RootKind::Response | RootKind::Notify, CmdType::Catalog) => {
                Body::Catalog(CatalogResponse::from_children(root_el.children))
            }
            (RootKind::Query, CmdType::DeviceInfo) => {
                ignore_extra(&root_el, &cmd_type);
                Body::DeviceInfoQuery
            }
            (RootKind::Response, CmdType::DeviceInfo) => {
                Body::DeviceInfo(DeviceInfo::from_children(root_el.children))
            }
            (RootKind::Query, CmdType::DeviceStatus) => {
                ignore_extra(&root_el, &cmd_type);
                Body::DeviceStatusQuery
            }
            (RootKind::Response, CmdType::DeviceStatus) => {
                Body::DeviceStatus(DeviceStatus::from_children(root_el.children))
            }
            (RootKind::Control, CmdType::DeviceControl) => {
                Body::DeviceControl(DeviceControl::from_children(root_el.children))
            }
            _ => Body::Unknown(root_el),
        };
        Ok(Manscdp {
            root,
            cmd_type,
            sn,
            device_id,
            body,
        })
    }

    /// Serialize to XML text without declaration (CRLF lines, escaped text).
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::with_capacity(256);
        let root = self.root.as_str();
        match &self.body {
            Body::Unknown(el) => {
                let attrs: Vec<(&str, &str)> = el
                    .attrs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                w.open(root, &attrs);
            }
            _ => w.open(root, &[]),
        }
        // An empty CmdType or DeviceID is still written when a later element of that name
        // was kept, so that reading the output back picks the same one.
        let kept = self.body.unmodelled();
        let kept_named = |name: &str| kept.iter().any(|e| e.name_is(name));
        if !self.cmd_type.as_str().is_empty() || kept_named("CmdType") {
            w.text_element("CmdType", self.cmd_type.as_str());
        }
        w.text_element("SN", &self.sn.to_string());
        if !self.device_id.is_empty() || kept_named("DeviceID") {
            w.text_element("DeviceID", &self.device_id);
        }
        match &self.body {
            Body::Keepalive(k) => k.write(&mut w),
            Body::CatalogQuery(q) => q.write(&mut w),
            Body::Catalog(c) => c.write(&mut w),
            Body::DeviceInfoQuery | Body::DeviceStatusQuery => {}
            Body::DeviceInfo(d) => d.write(&mut w),
            Body::DeviceStatus(d) => d.write(&mut w),
            Body::DeviceControl(d) => d.write(&mut w),
            Body::Unknown(el) => {
                w.raw_text_line(&el.text);
                for child in &el.children {
                    w.element(child);
                }
            }
        }
        w.close(root);
        w.finish()
    }

    /// Serialize and encode in `charset`, with a matching XML declaration (see
    /// [`encode_body`]).
    pub fn to_bytes(&self, charset: Charset) -> Bytes {
        encode_body(&self.to_xml(), charset)
    }

    /// `Query/Catalog` (A.2.4.3).
    pub fn catalog_query(sn: u32, device_id: impl Into<String>) -> Manscdp {
        let body = Body::CatalogQuery(CatalogQuery::default());
        Manscdp::new(RootKind::Query, CmdType::Catalog, sn, device_id, body)
    }

    /// `Response/Catalog` with one page of items (A.2.6.4); see also
    /// [`catalog_pages`](super::catalog_pages).
    pub fn catalog_response(
        sn: u32,
        device_id: impl Into<String>,
        sum_num: u32,
        items: Vec<CatalogItem>,
    ) -> Manscdp {
        let body = Body::Catalog(CatalogResponse {
            sum_num,
            items,
            ..CatalogResponse::default()
        });
        Manscdp::new(RootKind::Response, CmdType::Catalog, sn, device_id, body)
    }

    /// `Query/DeviceInfo` (A.2.4.4).
    pub fn device_info_query(sn: u32, device_id: impl Into<String>) -> Manscdp {
        Manscdp::new(
            RootKind::Query,
            CmdType::DeviceInfo,
            sn,
            device_id,
            Body::DeviceInfoQuery,
        )
    }

    /// `Response/DeviceInfo` (A.2.6.6).
    pub fn device_info_response(
        sn: u32,
        device_id: impl Into<String>,
        info: DeviceInfo,
    ) -> Manscdp {
        let body = Body::DeviceInfo(info);
        Manscdp::new(RootKind::Response, CmdType::DeviceInfo, sn, device_id, body)
    }

    /// `Query/DeviceStatus` (A.2.4.5).
    pub fn device_status_query(sn: u32, device_id: impl Into<String>) -> Manscdp {
        let body = Body::DeviceStatusQuery;
        Manscdp::new(RootKind::Query, CmdType::DeviceStatus, sn, device_id, body)
    }

    /// `Response/DeviceStatus` (A.2.6.5).
    pub fn device_status_response(
        sn: u32,
        device_id: impl Into<String>,
        status: DeviceStatus,
    ) -> Manscdp {
        let body = Body::DeviceStatus(status);
        Manscdp::new(
            RootKind::Response,
            CmdType::DeviceStatus,
            sn,
            device_id,
            body,
        )
    }

    /// `Notify/Keepalive` with `Status` OK (A.2.5.2).
    pub fn keepalive(sn: u32, device_id: impl Into<String>) -> Manscdp {
        let body = Body::Keepalive(Keepalive {
            status: "OK".into(),
            ..Keepalive::default()
        });
        Manscdp::new(RootKind::Notify, CmdType::Keepalive, sn, device_id, body)
    }

    /// `Control/DeviceControl` asking for a key frame (A.2.3.1.9): `<IFameCmd>Send</IFameCmd>`
    /// for a 2016 peer, `<IFrameCmd>Send</IFrameCmd>` when `gb2022`.
    pub fn keyframe_request(sn: u32, device_id: impl Into<String>, gb2022: bool) -> Manscdp {
        let control = DeviceControl {
            iframe_cmd: Some(IFrameCmd::send(gb2022)),
            ..DeviceControl::default()
        };
        let body = Body::DeviceControl(control);
        Manscdp::new(
            RootKind::Control,
            CmdType::DeviceControl,
            sn,
            device_id,
            body,
        )
    }

    /// `Control/DeviceControl` with a `PTZCmd` (A.2.3.1.2, command bytes per Annex A.3 as 16
    /// hex digits).
    pub fn ptz_control(
        sn: u32,
        device_id: impl Into<String>,
        ptz_cmd: impl Into<String>,
    ) -> Manscdp {
        let control = DeviceControl {
            ptz_cmd: Some(ptz_cmd.into()),
            ..DeviceControl::default()
        };
        let body = Body::DeviceControl(control);
        Manscdp::new(
            RootKind::Control,
            CmdType::DeviceControl,
            sn,
            device_id,
            body,
        )
    }
}

/// Queries that carry nothing beyond the envelope: anything else is dropped (and logged).
fn ignore_extra(root_el: &Element, cmd_type: &CmdType) {
    if !root_el.children.is_empty() {
        let names: Vec<&str> = root_el.children.iter().map(|c| c.name.as_str()).collect();
        tracing::debug!(%cmd_type, ?names, "MANSCDP: ignoring elements of a query that takes none");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(xml: &str) -> Manscdp {
        let m = Manscdp::parse_str(xml).unwrap();
        for cs in [Charset::Gb2312, Charset::Utf8] {
            assert_eq!(Manscdp::parse(&m.to_bytes(cs)).unwrap(), m, "{xml}");
        }
        m
    }

    #[test]
    fn empty_envelope_fields_keep_their_place() {
        // Found by fuzzing: the first CmdType is empty and a second one is kept as unknown.
        let m = round_trip(
            "<Query><CmdType><x/></CmdType><SN>1</SN><CmdType>PTZPosition</CmdType></Query>",
        );
        assert_eq!(m.cmd_type, CmdType::Other(String::new()));
        let m = round_trip("<Notify><DeviceID/><SN>1</SN><DeviceID>3402</DeviceID></Notify>");
        assert_eq!(m.device_id, "");
        // Nothing kept: nothing extra written.
        let m = Manscdp::parse_str("<Notify><SN>1</SN><SourceID>1</SourceID></Notify>").unwrap();
        assert!(!m.to_xml().contains("DeviceID") && !m.to_xml().contains("CmdType"));
    }

    #[test]
    fn roots_and_cmd_types() {
        assert_eq!("notify".parse::<RootKind>().unwrap(), RootKind::Notify);
        assert_eq!(
            "ns:Response".parse::<RootKind>().unwrap(),
            RootKind::Response
        );
        assert!(matches!(
            Manscdp::parse(b"<Message><CmdType>Keepalive</CmdType></Message>"),
            Err(ManscdpError::UnknownRoot { name }) if name == "Message"
        ));
        assert_eq!(CmdType::parse(" keepalive "), CmdType::Keepalive);
        assert_eq!(CmdType::parse("PTZPosition"), CmdType::PtzPosition);
        assert_eq!(CmdType::parse("sdcardstatus").as_str(), "SDCardStatus");
        assert_eq!(CmdType::parse("Vendor"), CmdType::Other("Vendor".into()));
        let m = round_trip("<notify><CmdType>KEEPALIVE</CmdType><SN>x</SN></notify>");
        assert_eq!(
            (m.root, m.cmd_type, m.sn),
            (RootKind::Notify, CmdType::Keepalive, 0)
        );
    }
}
