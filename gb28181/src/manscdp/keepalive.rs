//! `Notify/Keepalive` (GB/T 28181-2022 A.2.5.2, §9.6): the device heartbeat.

use super::xml::{Element, XmlWriter};

/// A keepalive notification (A.2.5.2). Sent every 60 s by default; three missed = offline.
///
/// `Info` lists faulty sub-devices; Hikvision NVRs list their channels there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keepalive {
    /// `Status`: `OK` or `ERROR` (empty when absent).
    pub status: String,
    /// `Info/DeviceID`: sub-devices the device reports (faulty ones per the standard).
    pub info_device_ids: Vec<String>,
    /// Other children of `Info` (e.g. per-device `Status`), in document order.
    pub info_extra: Vec<Element>,
    /// Other children of the root, in document order.
    pub extra: Vec<Element>,
}

impl Keepalive {
    /// Whether `Status` says OK (ASCII case-insensitive).
    pub fn is_ok(&self) -> bool {
        self.status.eq_ignore_ascii_case("OK")
    }

    pub(crate) fn from_children(children: Vec<Element>) -> Keepalive {
        let mut k = Keepalive::default();
        let mut have_status = false;
        let mut have_info = false;
        for el in children {
            if !have_status && el.is_plain() && el.name_is("Status") {
                have_status = true;
                k.status = el.text;
            } else if !have_info && el.attrs.is_empty() && el.name_is("Info") {
                // An empty `<Info>` (Hikvision IPCs send one) is the same as none; a later
                // non-empty one is then the list.
                have_info = !el.children.is_empty();
                for c in el.children {
                    if c.is_plain() && c.name_is("DeviceID") {
                        k.info_device_ids.push(c.text);
                    } else {
                        k.info_extra.push(c);
                    }
                }
            } else {
                k.extra.push(el);
            }
        }
        k
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        w.text_element("Status", &self.status);
        if !self.info_device_ids.is_empty() || !self.info_extra.is_empty() {
            w.open("Info", &[]);
            for id in &self.info_device_ids {
                w.text_element("DeviceID", id);
            }
            for el in &self.info_extra {
                w.element(el);
            }
            w.close("Info");
        }
        for el in &self.extra {
            w.element(el);
        }
    }
}
