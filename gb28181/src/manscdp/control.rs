//! `Control/DeviceControl` (GB/T 28181-2022 A.2.3.1): PTZ, reboot, recording, guard, alarm
//! reset and key-frame requests.

use super::xml::{Element, XmlWriter};

/// Which spelling of the key-frame command to use: the 2016 standard's `IFameCmd` (sic) or the
/// 2022 standard's `IFrameCmd`. Both are accepted on input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IFrameSpelling {
    /// `IFameCmd` (GB/T 28181-2016 A.2.3.1, the typo most deployed devices expect).
    #[default]
    Gb2016,
    /// `IFrameCmd` (GB/T 28181-2022 A.2.3.1.9).
    Gb2022,
}

impl IFrameSpelling {
    /// The element name for this spelling.
    pub fn element_name(self) -> &'static str {
        match self {
            IFrameSpelling::Gb2016 => "IFameCmd",
            IFrameSpelling::Gb2022 => "IFrameCmd",
        }
    }
}

/// A key-frame request (A.2.3.1.9): the device should send an I-frame at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IFrameCmd {
    /// The command value, `Send`.
    pub value: String,
    /// The spelling received, used again on output.
    pub spelling: IFrameSpelling,
}

impl IFrameCmd {
    /// `Send`, spelled for a 2022 (`IFrameCmd`) or 2016 (`IFameCmd`) peer.
    pub fn send(gb2022: bool) -> IFrameCmd {
        let spelling = if gb2022 {
            IFrameSpelling::Gb2022
        } else {
            IFrameSpelling::Gb2016
        };
        IFrameCmd {
            value: "Send".into(),
            spelling,
        }
    }
}

text_fields! {
    /// A device control command (A.2.3.1). Usually one command per message; the controls
    /// not typed here (DragZoomIn/Out, HomePosition, PTZPreciseCtrl, DeviceUpgrade,
    /// FormatSDCard, TargetTrack, `PTZCmdParams`, `Info/ControlPriority`) stay in `extra`.
    ///
    /// ```
    /// use gb28181::manscdp::{Body, Manscdp};
    /// let m = Manscdp::parse(b"<Control><CmdType>DeviceControl</CmdType><SN>9</SN>\
    ///     <DeviceID>34020000001320000001</DeviceID><IFrameCmd>Send</IFrameCmd></Control>").unwrap();
    /// let Body::DeviceControl(c) = &m.body else { panic!() };
    /// assert!(c.is_keyframe_request());
    /// ```
    pub struct DeviceControl {
        /// PTZ command: 8 bytes as 16 hex digits (Annex A.3), kept as sent.
        ptz_cmd: "PTZCmd",
        /// `Boot`: reboot the device.
        tele_boot: "TeleBoot",
        /// `Record` / `StopRecord` (answered with a Response carrying Result).
        record_cmd: "RecordCmd",
        /// `SetGuard` / `ResetGuard` (answered with a Response carrying Result).
        guard_cmd: "GuardCmd",
        /// `ResetAlarm` (answered with a Response carrying Result).
        alarm_cmd: "AlarmCmd",
    }
    more {
        /// Key-frame request, `IFameCmd` (2016) or `IFrameCmd` (2022).
        pub iframe_cmd: Option<IFrameCmd>,
    }
}

impl DeviceControl {
    /// Whether this asks for a key frame.
    pub fn is_keyframe_request(&self) -> bool {
        self.iframe_cmd.is_some()
    }

    /// `Info/ControlPriority` (2022), when present.
    pub fn control_priority(&self) -> Option<&str> {
        self.extra
            .iter()
            .find(|e| e.name_is("Info"))?
            .child_text("ControlPriority")
    }

    pub(crate) fn from_children(children: Vec<Element>) -> DeviceControl {
        let mut c = DeviceControl::default();
        for el in children {
            let spelling = if el.name_is("IFameCmd") {
                Some(IFrameSpelling::Gb2016)
            } else if el.name_is("IFrameCmd") {
                Some(IFrameSpelling::Gb2022)
            } else {
                None
            };
            match spelling {
                Some(spelling) if c.iframe_cmd.is_none() && el.is_plain() => {
                    c.iframe_cmd = Some(IFrameCmd {
                        value: el.text,
                        spelling,
                    });
                }
                _ => {
                    if let Some(el) = c.take_text_field(el) {
                        c.extra.push(el);
                    }
                }
            }
        }
        c
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        self.write_text_fields(w);
        if let Some(i) = &self.iframe_cmd {
            w.text_element(i.spelling.element_name(), &i.value);
        }
        for el in &self.extra {
            w.element(el);
        }
    }
}
