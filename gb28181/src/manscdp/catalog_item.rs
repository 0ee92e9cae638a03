//! Catalog items (GB/T 28181-2022 Annex A.2.6.4 `itemType`; node shapes of Annex J; change
//! events of Annex N).

use crate::id::{IdKind, kind as id_kind};

use super::xml::{Element, XmlWriter};

text_fields! {
    /// One `Item` of a catalog `DeviceList` (A.2.6.4): a region, system, business group,
    /// virtual organisation, device or channel.
    ///
    /// Every field of the 2016 and 2022 item lists is kept as received text (lossless; junk
    /// such as `<CivilCode>CivilCode</CivilCode>` survives), with typed accessors
    /// ([`kind`](Self::kind), [`online`](Self::online), [`parent_ids`](Self::parent_ids), …).
    /// Elements neither standard lists stay in `extra`; [`get`](Self::get) finds any of them by
    /// name.
    ///
    /// ```
    /// use gb28181::manscdp::{CatalogItem, CatalogNodeKind};
    /// let mut item = CatalogItem::channel("34020000001320000001", "大门口摄像机", "34020000001110000001");
    /// item.parent_id = Some("34020000001110000001/34020000002160000001".into());
    /// assert_eq!(item.kind(), CatalogNodeKind::Channel);
    /// assert_eq!(item.parent_ids().count(), 2);
    /// assert_eq!(item.online(), Some(true));
    /// ```
    pub struct CatalogItem {
        /// Annex N change event: ON, OFF, VLOST, DEFECT, ADD, DEL, UPDATE (see
        /// [`CatalogItem::event_kind`]).
        event: "Event",
        /// Name of the device, region or node (mandatory).
        name: "Name",
        /// Manufacturer (mandatory for devices).
        manufacturer: "Manufacturer",
        /// Model (mandatory for devices).
        model: "Model",
        /// Owner (2016; dropped by 2022).
        owner: "Owner",
        /// Administrative division code (mandatory).
        civil_code: "CivilCode",
        /// Police area.
        block: "Block",
        /// Installation address (mandatory for devices).
        address: "Address",
        /// `1` when the device has children, `0` otherwise (see [`CatalogItem::has_children`]).
        parental: "Parental",
        /// Parent ID(s), several separated by `/` in 2022 (see [`CatalogItem::parent_ids`]).
        parent_id: "ParentID",
        /// Signalling security mode (2016; dropped by 2022).
        safety_way: "SafetyWay",
        /// Registration mode: 1 RFC 3261 digest, 2 password, 3 certificate, 4 (2022).
        register_way: "RegisterWay",
        /// Security level (2022).
        security_level_code: "SecurityLevelCode",
        /// Certificate serial number (2016).
        cert_num: "CertNum",
        /// Certificate valid flag (2016).
        certifiable: "Certifiable",
        /// Certificate invalidity reason (2016).
        err_code: "ErrCode",
        /// Certificate end of validity (2016).
        end_time: "EndTime",
        /// `0` not secret, `1` secret (mandatory).
        secrecy: "Secrecy",
        /// IP address of the device or system.
        ip_address: "IPAddress",
        /// Port of the device or system (see [`CatalogItem::port_number`]).
        port: "Port",
        /// Device password.
        password: "Password",
        /// `ON` / `OFF` (devices also send `Online`, `OFFLINE`; see [`CatalogItem::online`]).
        status: "Status",
        /// WGS-84 longitude (see [`CatalogItem::coordinates`]).
        longitude: "Longitude",
        /// WGS-84 latitude.
        latitude: "Latitude",
        /// Business group of a virtual organisation (2022 puts it in the item; 2016 in `Info`).
        business_group_id: "BusinessGroupID",
    }
    more {
        /// `DeviceID`: 20-digit device/channel/system ID or 2/4/6/8-digit region code.
        pub device_id: String,
        /// `Info`: camera attributes, when present.
        pub info: Option<CatalogInfo>,
    }
}

text_fields! {
    /// The `Info` of a catalog item (A.2.6.4): camera attributes of 2016 and 2022 (both
    /// versions' fields are read; devices mix them).
    pub struct CatalogInfo {
        /// Camera type: 1 dome, 2 half-dome, 3 fixed bullet, 4 remote bullet (2022 adds 5–7;
        /// may be `/`-separated).
        ptz_type: "PTZType",
        /// Position type (2016).
        position_type: "PositionType",
        /// 1 outdoor, 2 indoor.
        room_type: "RoomType",
        /// Use: 1 public order, 2 traffic, 3 key area (2016).
        use_type: "UseType",
        /// Fill light: 1 none, 2 infrared, 3 white (2022 adds 4 laser, 9 other).
        supply_light_type: "SupplyLightType",
        /// Monitoring direction 1–8.
        direction_type: "DirectionType",
        /// Supported resolutions, `/`-separated.
        resolution: "Resolution",
        /// Business group (2016 position).
        business_group_id: "BusinessGroupID",
        /// Download speeds, `/`-separated (`1/2/4`).
        download_speed: "DownloadSpeed",
        /// SVC spatial mode.
        svc_space_support_mode: "SVCSpaceSupportMode" | "SVCSpaceSupportMod",
        /// SVC temporal mode.
        svc_time_support_mode: "SVCTimeSupportMode",
        /// Imaging type (2022), `/`-separated.
        photoelectric_imaging_type: "PhotoelectricImagingType" | "PhotoelectricImagingTyp",
        /// Capture position type (2022, Annex O).
        capture_position_type: "CapturePositionType",
        /// Stream numbers usable in INVITE (2022), `0/1/2`.
        stream_number_list: "StreamNumberList",
        /// SSVC ratios (2022).
        ssvc_ratio_support_list: "SSVCRatioSupportList",
        /// Mobile device type (2022).
        mobile_device_type: "MobileDeviceType",
        /// Horizontal field of view (2022).
        horizontal_field_angle: "HorizontalFieldAngle",
        /// Vertical field of view (2022).
        vertical_field_angle: "VerticalFieldAngle",
        /// Maximum viewing distance (2022).
        max_view_distance: "MaxViewDistance",
        /// Grassroots unit code (2022).
        grassroots_code: "GrassrootsCode",
        /// Point type (2022).
        point_type: "PointType",
        /// Common name of the point (2022).
        point_common_name: "PointCommonName",
        /// MAC address (2022).
        mac: "MAC",
        /// Function type (2022).
        function_type: "FunctionType",
        /// Encoding type (2022).
        encode_type: "EncodeType",
        /// Installation time (2022).
        install_time: "InstallTime",
        /// Managing unit (2022).
        management_unit: "ManagementUnit",
        /// Contact (2022).
        contact_info: "ContactInfo",
        /// Recording retention in days (2022).
        record_save_days: "RecordSaveDays",
        /// Industrial classification (2022).
        industrial_classification: "IndustrialClassification",
    }
}

/// What a catalog node is, from its ID (Annex J node shapes; ID types of Annex E).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CatalogNodeKind {
    /// 2/4/6/8-digit administrative region (Name only).
    Region,
    /// A platform/system (types 200–214; 200 is the central signalling server).
    System,
    /// A business group (type 215; ParentID = system ID).
    BusinessGroup,
    /// A virtual organisation (type 216; ParentID = parent org, plus BusinessGroupID).
    VirtualOrganization,
    /// A front-end main device: DVR, NVR, encoder, … (types 111–130).
    Device,
    /// A channel or peripheral: camera, IPC, alarm input/output, voice in/out (types 131–199).
    Channel,
    /// Any other 20-digit type (users, external platforms, extensions) or a malformed ID.
    Other,
}

/// A catalog change event (Annex N), sent in `Notify/Catalog` items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CatalogEvent {
    /// Came online.
    On,
    /// Went offline.
    Off,
    /// Video lost.
    Vlost,
    /// Faulty.
    Defect,
    /// Added.
    Add,
    /// Deleted.
    Del,
    /// Updated.
    Update,
}

impl CatalogItem {
    /// An item with a DeviceID and a Name, nothing else.
    pub fn new(device_id: impl Into<String>, name: impl Into<String>) -> CatalogItem {
        CatalogItem {
            device_id: device_id.into(),
            name: Some(name.into()),
            ..CatalogItem::default()
        }
    }

    /// A region node (Annex J): 2/4/6/8-digit code and a name.
    pub fn region(code: impl Into<String>, name: impl Into<String>) -> CatalogItem {
        CatalogItem::new(code, name)
    }

    /// A business group node (Annex J, type 215): ParentID is the system (platform) ID.
    pub fn business_group(
        id: impl Into<String>,
        name: impl Into<String>,
        system_id: impl Into<String>,
    ) -> CatalogItem {
        CatalogItem {
            parent_id: Some(system_id.into()),
            ..CatalogItem::new(id, name)
        }
    }

    /// A virtual organisation node (Annex J, type 216): ParentID is the parent organisation
    /// (or business group), plus its BusinessGroupID.
    pub fn virtual_organization(
        id: impl Into<String>,
        name: impl Into<String>,
        parent_id: impl Into<String>,
        business_group_id: impl Into<String>,
    ) -> CatalogItem {
        CatalogItem {
            parent_id: Some(parent_id.into()),
            business_group_id: Some(business_group_id.into()),
            ..CatalogItem::new(id, name)
        }
    }

    /// A channel with the fields GB/T 28181-2022 makes mandatory: Name, CivilCode (the ID's
    /// first 6 digits), ParentID, Parental 0, RegisterWay 1, Secrecy 0, Status ON. Set
    /// Manufacturer, Model and Address as the device knows them.
    pub fn channel(
        id: impl Into<String>,
        name: impl Into<String>,
        parent_id: impl Into<String>,
    ) -> CatalogItem {
        let id = id.into();
        let civil_code = id.get(..6).filter(|_| id.len() == 20).map(str::to_owned);
        CatalogItem {
            civil_code,
            parental: Some("0".into()),
            parent_id: Some(parent_id.into()),
            register_way: Some("1".into()),
            secrecy: Some("0".into()),
            status: Some("ON".into()),
            ..CatalogItem::new(id, name)
        }
    }

    /// What this node is, from its DeviceID.
    pub fn kind(&self) -> CatalogNodeKind {
        match id_kind(&self.device_id) {
            IdKind::Region => CatalogNodeKind::Region,
            IdKind::Platform => CatalogNodeKind::System,
            IdKind::BusinessGroup => CatalogNodeKind::BusinessGroup,
            IdKind::VirtualOrganization => CatalogNodeKind::VirtualOrganization,
            IdKind::MainDevice => CatalogNodeKind::Device,
            IdKind::Peripheral => CatalogNodeKind::Channel,
            IdKind::Other | IdKind::Invalid => CatalogNodeKind::Other,
        }
    }

    /// The parent IDs: `ParentID` split on `/` (2022 allows several), trimmed, empty parts
    /// skipped.
    pub fn parent_ids(&self) -> impl Iterator<Item = &str> {
        self.parent_id
            .as_deref()
            .unwrap_or("")
            .split('/')
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// `Status` read leniently ([`on_off`](super::on_off): `ON`/`ONLINE`/`1` → true,
    /// `OFF`/`OFFLINE`/`0` → false, any case); `None` when absent or anything else.
    pub fn online(&self) -> Option<bool> {
        super::on_off(self.status.as_deref()?)
    }

    /// The Annex N `Event`, when present and known (any case).
    pub fn event_kind(&self) -> Option<CatalogEvent> {
        let s = self.event.as_deref()?.trim().to_ascii_uppercase();
        Some(match s.as_str() {
            "ON" => CatalogEvent::On,
            "OFF" => CatalogEvent::Off,
            "VLOST" => CatalogEvent::Vlost,
            "DEFECT" => CatalogEvent::Defect,
            "ADD" => CatalogEvent::Add,
            "DEL" => CatalogEvent::Del,
            "UPDATE" => CatalogEvent::Update,
            _ => return None,
        })
    }

    /// `Parental` as a flag (`1` → true, `0` → false).
    pub fn has_children(&self) -> Option<bool> {
        match self.parental.as_deref()?.trim() {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        }
    }

    /// `Port` as a number.
    pub fn port_number(&self) -> Option<u16> {
        self.port.as_deref()?.trim().parse().ok()
    }

    /// `(Longitude, Latitude)` in degrees, when both are numbers.
    pub fn coordinates(&self) -> Option<(f64, f64)> {
        let lon = self.longitude.as_deref()?.trim().parse().ok()?;
        let lat = self.latitude.as_deref()?.trim().parse().ok()?;
        Some((lon, lat))
    }

    /// The business group: the item's `BusinessGroupID` (2022) or `Info/BusinessGroupID`
    /// (2016).
    pub fn resolved_business_group_id(&self) -> Option<&str> {
        self.business_group_id
            .as_deref()
            .or_else(|| self.info.as_ref()?.business_group_id.as_deref())
    }

    /// `Info/PTZType`, or a `PTZType` placed directly in the item (seen in lunasaw's device
    /// templates).
    pub fn ptz_type(&self) -> Option<&str> {
        self.info
            .as_ref()
            .and_then(|i| i.ptz_type.as_deref())
            .or_else(|| {
                self.extra
                    .iter()
                    .find(|e| e.name_is("PTZType"))
                    .map(|e| e.text.as_str())
            })
    }

    /// Any field by element name (ASCII case-insensitive): `DeviceID`, a typed field, or an
    /// unmodelled child in `extra`. `Info` fields are under [`CatalogInfo::get`].
    pub fn get(&self, name: &str) -> Option<&str> {
        if name.eq_ignore_ascii_case("DeviceID") {
            return Some(&self.device_id);
        }
        self.text_field(name).or_else(|| {
            self.extra
                .iter()
                .find(|e| e.name_is(name))
                .map(|e| e.text.as_str())
        })
    }

    pub(crate) fn from_element(item: Element) -> CatalogItem {
        let mut it = CatalogItem::default();
        let mut have_id = false;
        for el in item.children {
            if !have_id && el.is_plain() && el.name_is("DeviceID") {
                have_id = true;
                it.device_id = el.text;
            } else if it.info.is_none() && el.attrs.is_empty() && el.name_is("Info") {
                it.info = Some(CatalogInfo::from_children(el.children));
            } else if let Some(el) = it.take_text_field(el) {
                it.extra.push(el);
            }
        }
        it
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        w.open("Item", &[]);
        w.text_element("DeviceID", &self.device_id);
        self.write_text_fields(w);
        if let Some(info) = &self.info {
            w.open("Info", &[]);
            info.write_text_fields(w);
            for el in &info.extra {
                w.element(el);
            }
            w.close("Info");
        }
        for el in &self.extra {
            w.element(el);
        }
        w.close("Item");
    }
}

impl CatalogInfo {
    /// Any field by element name (ASCII case-insensitive), typed or in `extra`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.text_field(name).or_else(|| {
            self.extra
                .iter()
                .find(|e| e.name_is(name))
                .map(|e| e.text.as_str())
        })
    }

    pub(crate) fn from_children(children: Vec<Element>) -> CatalogInfo {
        let mut info = CatalogInfo::default();
        for el in children {
            if let Some(el) = info.take_text_field(el) {
                info.extra.push(el);
            }
        }
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let k = |id: &str| CatalogItem::new(id, "n").kind();
        assert_eq!(k("34"), CatalogNodeKind::Region);
        assert_eq!(k("340200"), CatalogNodeKind::Region);
        assert_eq!(k("34020000"), CatalogNodeKind::Region);
        assert_eq!(k("34020000002000000001"), CatalogNodeKind::System);
        assert_eq!(k("34020000002150000001"), CatalogNodeKind::BusinessGroup);
        assert_eq!(
            k("34020000002160000001"),
            CatalogNodeKind::VirtualOrganization
        );
        assert_eq!(k("34020000001180000001"), CatalogNodeKind::Device);
        assert_eq!(k("34020000001320000001"), CatalogNodeKind::Channel);
        assert_eq!(k("34020000001310000001"), CatalogNodeKind::Channel);
        assert_eq!(k("34020000003000000001"), CatalogNodeKind::Other);
        assert_eq!(k("CivilCode"), CatalogNodeKind::Other);
    }

    #[test]
    fn lenient_accessors() {
        let mut it = CatalogItem::new("34020000001320000001", "大门口摄像机");
        for (s, v) in [
            ("ON", Some(true)),
            ("Online", Some(true)),
            ("on", Some(true)),
            ("OFFLINE", Some(false)),
            ("off", Some(false)),
            ("Status1", None),
        ] {
            it.status = Some(s.into());
            assert_eq!(it.online(), v, "{s}");
        }
        it.parent_id = Some(" 34020000001110000001 / 34020000002160000001/".into());
        assert_eq!(
            it.parent_ids().collect::<Vec<_>>(),
            ["34020000001110000001", "34020000002160000001"]
        );
        it.event = Some("vlost".into());
        assert_eq!(it.event_kind(), Some(CatalogEvent::Vlost));
        it.port = Some("5060".into());
        assert_eq!(it.port_number(), Some(5060));
        it.longitude = Some("121.472644".into());
        it.latitude = Some("31.231706".into());
        assert_eq!(it.coordinates(), Some((121.472644, 31.231706)));
        assert_eq!(it.get("ipaddress"), None);
        assert_eq!(it.get("PORT"), Some("5060"));
    }

    #[test]
    fn info_aliases() {
        let el = Element::parse(
            "<Item><DeviceID>1</DeviceID><Info><PhotoelectricImagingTyp>1/9</PhotoelectricImagingTyp>\
             <BusinessGroupID>34020000002150000001</BusinessGroupID><X>y</X></Info></Item>",
        )
        .unwrap();
        let it = CatalogItem::from_element(el);
        let info = it.info.as_ref().unwrap();
        assert_eq!(info.photoelectric_imaging_type.as_deref(), Some("1/9"));
        assert_eq!(info.get("x"), Some("y"));
        assert_eq!(
            it.resolved_business_group_id(),
            Some("34020000002150000001")
        );
    }
}
