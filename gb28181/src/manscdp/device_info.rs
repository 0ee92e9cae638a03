//! `Response/DeviceInfo` (GB/T 28181-2022 A.2.6.6).

use super::xml::{Element, XmlWriter};

text_fields! {
    /// A device's answer to `Query/DeviceInfo` (A.2.6.6).
    ///
    /// ```
    /// use gb28181::manscdp::{Body, Charset, DeviceInfo, Manscdp};
    /// let info = DeviceInfo {
    ///     device_name: Some("大门口摄像机".into()),
    ///     result: Some("OK".into()),
    ///     channel: Some(1),
    ///     ..DeviceInfo::default()
    /// };
    /// let msg = Manscdp::device_info_response(7, "34020000001320000001", info.clone());
    /// let back = Manscdp::parse(&msg.to_bytes(Charset::Gb2312)).unwrap();
    /// assert_eq!(back.body, Body::DeviceInfo(info));
    /// ```
    pub struct DeviceInfo {
        /// Device name (optional).
        device_name: "DeviceName",
        /// `OK` or `ERROR`.
        result: "Result",
        /// Manufacturer.
        manufacturer: "Manufacturer",
        /// Model.
        model: "Model",
        /// Firmware version.
        firmware: "Firmware",
        /// Device type (GB/T 28181-2011 devices).
        device_type: "DeviceType",
        /// Number of cameras (GB/T 28181-2011 devices).
        max_camera: "MaxCamera",
        /// Number of alarm inputs (GB/T 28181-2011 devices).
        max_alarm: "MaxAlarm",
    }
    more {
        /// `Channel`: number of video input channels. A value that is not a number stays in
        /// `extra`.
        pub channel: Option<u32>,
    }
}

impl DeviceInfo {
    /// Whether `Result` says OK (ASCII case-insensitive); `true` when absent.
    pub fn is_ok(&self) -> bool {
        self.result
            .as_deref()
            .is_none_or(|r| r.trim().eq_ignore_ascii_case("OK"))
    }

    pub(crate) fn from_children(children: Vec<Element>) -> DeviceInfo {
        let mut d = DeviceInfo::default();
        for el in children {
            if d.channel.is_none() && el.is_plain() && el.name_is("Channel") {
                match el.text.parse() {
                    Ok(n) => d.channel = Some(n),
                    Err(_) => d.extra.push(el),
                }
            } else if let Some(el) = d.take_text_field(el) {
                d.extra.push(el);
            }
        }
        d
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        self.write_text_fields(w);
        if let Some(n) = self.channel {
            w.text_element("Channel", &n.to_string());
        }
        for el in &self.extra {
            w.element(el);
        }
    }
}
