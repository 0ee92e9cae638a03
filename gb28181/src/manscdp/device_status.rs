//! `Response/DeviceStatus` (GB/T 28181-2022 A.2.6.5).

use super::xml::{Element, XmlWriter};

text_fields! {
    /// A device's answer to `Query/DeviceStatus` (A.2.6.5).
    pub struct DeviceStatus {
        /// `OK` or `ERROR`.
        result: "Result",
        /// `ONLINE` or `OFFLINE` (see [`DeviceStatus::is_online`]).
        online: "Online",
        /// `OK` or `ERROR`: whether the device works normally.
        status: "Status",
        /// Why it does not (optional).
        reason: "Reason",
        /// Encoding `ON` / `OFF`.
        encode: "Encode",
        /// Recording `ON` / `OFF`.
        record: "Record",
        /// Device time, `YYYY-MM-DDTHH:MM:SS`.
        device_time: "DeviceTime",
    }
    more {
        /// `Alarmstatus/Item`s: duty status of each alarm input (devices also spell it
        /// `AlarmStatus`).
        pub alarm_status: Vec<AlarmStatusItem>,
    }
}

text_fields! {
    /// One `Alarmstatus/Item` of a device status (A.2.6.5).
    pub struct AlarmStatusItem {
        /// Alarm input ID.
        device_id: "DeviceID",
        /// `ONDUTY`, `OFFDUTY` or `ALARM`.
        duty_status: "DutyStatus",
    }
}

impl DeviceStatus {
    /// A healthy device's answer: Result OK, Online ONLINE, Status OK, encoding and recording
    /// ON.
    pub fn online_ok() -> DeviceStatus {
        DeviceStatus {
            result: Some("OK".into()),
            online: Some("ONLINE".into()),
            status: Some("OK".into()),
            encode: Some("ON".into()),
            record: Some("ON".into()),
            ..DeviceStatus::default()
        }
    }

    /// `Online` read leniently ([`on_off`](super::on_off): `ONLINE`/`ON`/`1` → true,
    /// `OFFLINE`/`OFF`/`0` → false, any case).
    pub fn is_online(&self) -> Option<bool> {
        super::on_off(self.online.as_deref()?)
    }

    pub(crate) fn from_children(children: Vec<Element>) -> DeviceStatus {
        let mut d = DeviceStatus::default();
        let mut have_alarm = false;
        for el in children {
            // A list without items is kept whole in `extra`; the first one with items is
            // the list.
            if !have_alarm
                && el.name_is("Alarmstatus")
                && el.children.iter().any(|c| c.name_is("Item"))
            {
                have_alarm = true;
                for item in el.children {
                    if item.name_is("Item") {
                        let mut a = AlarmStatusItem::default();
                        for f in item.children {
                            if let Some(f) = a.take_text_field(f) {
                                a.extra.push(f);
                            }
                        }
                        d.alarm_status.push(a);
                    } else {
                        tracing::debug!(name = %item.name, "MANSCDP: ignoring non-Item in Alarmstatus");
                    }
                }
            } else if let Some(el) = d.take_text_field(el) {
                d.extra.push(el);
            }
        }
        d
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        self.write_text_fields(w);
        if !self.alarm_status.is_empty() {
            let num = self.alarm_status.len().to_string();
            w.open("Alarmstatus", &[("Num", &num)]);
            for a in &self.alarm_status {
                w.open("Item", &[]);
                a.write_text_fields(w);
                for el in &a.extra {
                    w.element(el);
                }
                w.close("Item");
            }
            w.close("Alarmstatus");
        }
        for el in &self.extra {
            w.element(el);
        }
    }
}
