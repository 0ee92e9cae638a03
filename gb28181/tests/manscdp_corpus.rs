//! Every MANSCDP body of this crate's test data (real devices', public projects' and
//! synthetic ones) parses, with the values a platform relies on; and every parsed message
//! survives writing and re-reading in each charset unchanged.

mod manscdp_support;

use gb28181::manscdp::{
    Body, CatalogNodeKind, Charset, CmdType, IFrameSpelling, Manscdp, RootKind, decode_body,
};
use manscdp_support::{LOCAL, all_bodies, data, real_bodies};

fn local(name: &str) -> Vec<u8> {
    std::fs::read(format!("{LOCAL}/{name}")).unwrap()
}

fn parse(bytes: &[u8]) -> Manscdp {
    Manscdp::parse(bytes).unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(bytes)))
}

#[test]
fn every_real_body_parses() {
    let real = real_bodies();
    // 11 real files under manscdp/, 46 MANSCDP MESSAGE bodies under sip/.
    assert!(
        real.len() >= 57,
        "test data missing? found {} bodies",
        real.len()
    );
    let all = all_bodies();
    assert!(all.len() >= real.len() + 4);
    for s in &all {
        if let Err(e) = Manscdp::parse(&s.bytes) {
            panic!("{}: {e}", s.name);
        }
    }
}

#[test]
fn every_parsed_body_round_trips_in_every_charset() {
    for s in all_bodies() {
        let m = parse(&s.bytes);
        for cs in [
            Charset::Gb2312,
            Charset::Gbk,
            Charset::Gb18030,
            Charset::Utf8,
        ] {
            let wire = m.to_bytes(cs);
            let back = Manscdp::parse(&wire).unwrap_or_else(|e| panic!("{} in {cs}: {e}", s.name));
            assert_eq!(
                back,
                m,
                "{} in {cs}:\n{}",
                s.name,
                String::from_utf8_lossy(&wire)
            );
        }
    }
}

#[test]
fn hikvision_nvr_catalog_page() {
    let bytes = local("hikvision_nvr_catalog_gb2312_page1.xml");
    assert_eq!(bytes, data("sip/hikvision_nvr_catalog_gb2312_page1.sip"));
    let d = decode_body(&bytes);
    assert_eq!(d.declared, Some(Charset::Gb2312));
    let m = parse(&bytes);
    assert_eq!(
        (m.root, &m.cmd_type, m.sn),
        (RootKind::Response, &CmdType::Catalog, 419315752)
    );
    assert_eq!(m.device_id, "34020000001110000001");
    let Body::Catalog(c) = &m.body else {
        panic!("{:?}", m.body)
    };
    assert_eq!(c.sum_num, 8);
    assert_eq!(c.items.len(), 2);
    let (a, b) = (&c.items[0], &c.items[1]);
    assert_eq!(a.device_id, "34020000001320000001");
    assert_eq!(a.name.as_deref(), Some("Camera 01"));
    assert_eq!(b.name.as_deref(), Some("IPCamera 02"));
    assert_eq!(a.address.as_deref(), Some("192.168.254.18"));
    assert_eq!((a.online(), b.online()), (Some(true), Some(false)));
    assert_eq!(a.kind(), CatalogNodeKind::Channel);
    assert_eq!(a.has_children(), Some(false));
    assert_eq!(a.register_way.as_deref(), Some("1"));
    assert_eq!(a.owner.as_deref(), Some("Owner"));
    assert_eq!(a.parent_id, None);
    assert!(a.extra.is_empty() && c.extra.is_empty());
}

#[test]
fn gb2312_chinese_catalog_decodes_from_real_gb_bytes() {
    let bytes = local("synthetic_nvr_catalog_gb2312_chinese.xml");
    // 大门口摄像机 as GB2312, checked against the bytes on disk.
    let name = [
        0xB4, 0xF3, 0xC3, 0xC5, 0xBF, 0xDA, 0xC9, 0xE3, 0xCF, 0xF1, 0xBB, 0xFA,
    ];
    assert!(bytes.windows(name.len()).any(|w| w == name));
    let d = decode_body(&bytes);
    assert_eq!(
        (d.declared, d.detected, d.lossy),
        (Some(Charset::Gb2312), Charset::Gb18030, false)
    );
    let m = parse(&bytes);
    let Body::Catalog(c) = &m.body else { panic!() };
    assert_eq!(c.sum_num, 5);
    let names: Vec<_> = c.items.iter().map(|i| i.name.as_deref().unwrap()).collect();
    assert_eq!(names, ["大门口摄像机", "一号通道", "一水"]);
    assert_eq!(c.items[1].address.as_deref(), Some("停车场入口&出口"));
    assert_eq!(c.items[0].manufacturer.as_deref(), Some("海康威视"));
    assert_eq!(
        c.items[0].parent_ids().collect::<Vec<_>>(),
        ["34020000001180000001"]
    );

    // The same catalog sent as UTF-8 under the GB2312 declaration reads identically.
    let utf8 = local("synthetic_nvr_catalog_utf8_declared_gb2312.xml");
    assert_eq!(decode_body(&utf8).detected, Charset::Utf8);
    assert_eq!(parse(&utf8), m);
}

#[test]
fn gb18030_four_byte_characters() {
    let m = parse(&local("synthetic_deviceinfo_gb18030_4byte.xml"));
    let Body::DeviceInfo(d) = &m.body else {
        panic!()
    };
    assert_eq!(d.device_name.as_deref(), Some("䶮𠀀摄像机€"));
    assert_eq!(d.manufacturer.as_deref(), Some("大华"));
    assert_eq!(d.channel, Some(1));
}

#[test]
fn device_status_quirks() {
    let m = parse(&local("synthetic_devicestatus_utf8_quirks.xml"));
    assert_eq!((&m.cmd_type, m.sn), (&CmdType::DeviceStatus, 88));
    let Body::DeviceStatus(s) = &m.body else {
        panic!("{:?}", m.body)
    };
    assert_eq!(s.is_online(), Some(true));
    assert_eq!(s.reason.as_deref(), Some("A&B 门禁"));
    let duty: Vec<_> = s
        .alarm_status
        .iter()
        .map(|a| {
            (
                a.device_id.as_deref().unwrap(),
                a.duty_status.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        duty,
        [
            ("34020000001340000001", "ONDUTY"),
            ("34020000001340000002", "ALARM")
        ]
    );
    assert_eq!(s.extra.len(), 1);
    assert_eq!(s.extra[0].attr("a"), Some("1"));
}

#[test]
fn keepalives() {
    let m = parse(&data("manscdp/hikvision_nvr_keepalive_gb2312.xml"));
    assert_eq!((m.sn, m.device_id.as_str()), (2034, "34020000001110000001"));
    let Body::Keepalive(k) = &m.body else {
        panic!()
    };
    assert!(k.is_ok());
    assert_eq!(k.info_device_ids.len(), 6);
    assert_eq!(k.info_device_ids[5], "34020000001320000008");

    let m = parse(&data("sip/hikvision_ipc_keepalive.sip"));
    let Body::Keepalive(k) = &m.body else {
        panic!()
    };
    assert!(k.is_ok() && k.info_device_ids.is_empty() && k.extra.is_empty());

    // GMV baseline: Info carries a DeviceID and its Status.
    let m = parse(&data("sip/gmv/reference/extracted/tc-03-007.sip"));
    let Body::Keepalive(k) = &m.body else {
        panic!()
    };
    assert_eq!(k.info_device_ids, ["34020000001320000002"]);
    assert_eq!(k.info_extra[0].name, "Status");
}

#[test]
fn queries() {
    let m = parse(&data("sip/srs_catalog_query.sip"));
    assert_eq!((m.root, m.sn), (RootKind::Query, 419315752));
    assert!(matches!(m.body, Body::CatalogQuery(_)));
    let m = parse(&data("sip/gmv/reference/extracted/tc-05-013.sip"));
    assert_eq!(m.body, Body::DeviceInfoQuery);
    let m = parse(&data("sip/gmv/reference/extracted/tc-06-017.sip"));
    assert_eq!(m.body, Body::DeviceStatusQuery);
    // A query for something not typed yet keeps its tree.
    let m = parse(&data("sip/gmv/reference/extracted/tc-13-045.sip"));
    assert_eq!(m.cmd_type, CmdType::RecordInfo);
    let Body::Unknown(el) = &m.body else { panic!() };
    assert_eq!(el.child_text("Type"), Some("all"));
}

#[test]
fn device_info_and_status_responses() {
    let m = parse(&data("sip/gmv/reference/extracted/tc-05-015.sip"));
    let Body::DeviceInfo(d) = &m.body else {
        panic!()
    };
    assert_eq!(d.device_name.as_deref(), Some("IPC-GB28181-2022"));
    assert_eq!(d.firmware.as_deref(), Some("V5.8.1"));
    assert_eq!(d.channel, Some(1));
    assert!(d.is_ok());

    let m = parse(&data("sip/gmv/reference/extracted/tc-06-019.sip"));
    let Body::DeviceStatus(s) = &m.body else {
        panic!()
    };
    assert_eq!(s.is_online(), Some(true));
    assert_eq!(s.device_time.as_deref(), Some("2026-06-14T12:00:00"));
    assert_eq!(
        (s.encode.as_deref(), s.record.as_deref()),
        (Some("ON"), Some("ON"))
    );

    // Stray "/>" after </Channel>, ${SN} placeholder: SN 0, values intact.
    let m = parse(&data("manscdp/lunasaw/test/deviceInfo.xml"));
    assert_eq!(m.sn, 0);
    let Body::DeviceInfo(d) = &m.body else {
        panic!()
    };
    assert_eq!(d.device_name.as_deref(), Some("IPC-CLIENT"));
    assert_eq!(d.model.as_deref(), Some("TC-2808AN-HD"));
    assert_eq!(d.channel, Some(1));

    let m = parse(&data("manscdp/lunasaw/client/deviceInfo.xml"));
    let Body::DeviceInfo(d) = &m.body else {
        panic!()
    };
    assert_eq!(d.manufacturer.as_deref(), Some("海康威视"));

    let m = parse(&data("manscdp/lunasaw/client/deviceStatus.xml"));
    assert_eq!((m.sn, m.device_id.as_str()), (0, "channelId"));
    let Body::DeviceStatus(s) = &m.body else {
        panic!()
    };
    assert_eq!(s.is_online(), Some(true)); // "online"
}

#[test]
fn lunasaw_catalogs() {
    let m = parse(&data("manscdp/lunasaw/test/catalog.xml"));
    assert_eq!(m.sn, 0);
    let Body::Catalog(c) = &m.body else { panic!() };
    assert_eq!((c.sum_num, c.items.len()), (1, 1));
    let it = &c.items[0];
    assert_eq!(it.address.as_deref(), Some("上海市五角场合生汇"));
    assert_eq!(it.online(), Some(true)); // "Online"
    assert_eq!(it.ptz_type(), Some("1")); // PTZType directly in the item
    assert_eq!(it.cert_num.as_deref(), Some("CertNum1"));
    assert_eq!(it.end_time.as_deref(), Some("2010-11-11T19:46:17"));
    assert_eq!(it.coordinates(), Some((121.472644, 31.231706)));
    assert_eq!(it.port_number(), Some(5060));
    assert_eq!(it.kind(), CatalogNodeKind::Device); // type 118: an NVR listing itself
    assert_eq!(it.get("ErrCode"), Some("400"));

    let m = parse(&data("manscdp/lunasaw/client/catalog.xml"));
    let Body::Catalog(c) = &m.body else { panic!() };
    assert_eq!(c.items[0].manufacturer.as_deref(), Some("海康"));
    assert_eq!(c.items[0].online(), None); // "Status1"
}

#[test]
fn catalog_notifications() {
    // Annex N change notification.
    let m = parse(&data("sip/gmv/reference/extracted/tc-17-069.sip"));
    assert_eq!(m.root, RootKind::Notify);
    let Body::Catalog(c) = &m.body else { panic!() };
    assert_eq!(
        c.items[0].event_kind(),
        Some(gb28181::manscdp::CatalogEvent::On)
    );
    // Empty catalog notify: SumNum 0, no DeviceList.
    let m = parse(&data("sip/gmv/generated/notify-normal-01-request.sip"));
    let Body::Catalog(c) = &m.body else { panic!() };
    assert_eq!((c.sum_num, c.items.len()), (0, 0));
}

#[test]
fn device_control() {
    let m = parse(&data("sip/gmv/reference/extracted/tc-08-025.sip"));
    let Body::DeviceControl(c) = &m.body else {
        panic!()
    };
    assert_eq!(c.ptz_cmd.as_deref(), Some("A50F0100000000B5"));
    assert_eq!(c.control_priority(), Some("5"));
    assert!(!c.is_keyframe_request());

    for (xml, spelling) in [
        ("IFameCmd", IFrameSpelling::Gb2016),
        ("IFrameCmd", IFrameSpelling::Gb2022),
    ] {
        let body = format!(
            "<Control><CmdType>DeviceControl</CmdType><SN>3</SN><DeviceID>34020000001320000001</DeviceID>\
             <{xml}>Send</{xml}></Control>"
        );
        let m = parse(body.as_bytes());
        let Body::DeviceControl(c) = &m.body else {
            panic!()
        };
        let cmd = c.iframe_cmd.as_ref().unwrap();
        assert_eq!((cmd.value.as_str(), cmd.spelling), ("Send", spelling));
        assert_eq!(
            m,
            Manscdp::keyframe_request(
                3,
                "34020000001320000001",
                spelling == IFrameSpelling::Gb2022
            )
        );
    }
    let wire =
        Manscdp::keyframe_request(1, "34020000001320000001", false).to_bytes(Charset::Gb2312);
    assert!(String::from_utf8_lossy(&wire).contains("<IFameCmd>Send</IFameCmd>"));
    let wire =
        Manscdp::keyframe_request(1, "34020000001320000001", true).to_bytes(Charset::Gb18030);
    assert!(String::from_utf8_lossy(&wire).contains("<IFrameCmd>Send</IFrameCmd>"));
}

#[test]
fn alarms_and_other_cmdtypes_are_kept_as_trees() {
    // WVP's alarm notifies carry no CmdType and no SN.
    for f in [
        "alarm_notify_no_alarmtype.xml",
        "alarm_notify_with_alarmtype.xml",
        "alarm_notify_alarmtype_in_info.xml",
    ] {
        let m = parse(&data(&format!("manscdp/{f}")));
        assert_eq!(
            (m.root, &m.cmd_type, m.sn),
            (RootKind::Notify, &CmdType::Other(String::new()), 0),
            "{f}"
        );
        let Body::Unknown(el) = &m.body else {
            panic!("{f}")
        };
        assert_eq!(el.child_text("AlarmPriority"), Some("1"), "{f}");
    }
    let m = parse(&data("manscdp/alarm_notify_alarmtype_in_info.xml"));
    let Body::Unknown(el) = &m.body else { panic!() };
    assert_eq!(
        el.child("Info").and_then(|i| i.child_text("AlarmType")),
        Some("2")
    );

    let m = parse(&data("sip/gmv/reference/extracted/tc-12-043.sip"));
    assert_eq!(m.cmd_type, CmdType::Alarm);
    assert!(matches!(&m.body, Body::Unknown(el) if el.child_text("AlarmMethod") == Some("4")));

    // Broadcast notify: SourceID/TargetID, no DeviceID.
    let m = parse(&data("sip/gmv/reference/extracted/tc-18-073.sip"));
    assert_eq!(
        (&m.cmd_type, m.device_id.as_str()),
        (&CmdType::Broadcast, "")
    );
    assert!(
        matches!(&m.body, Body::Unknown(el) if el.child_text("TargetID") == Some("34020000001370000001"))
    );

    // Responses to controls keep their Result.
    let m = parse(&data("sip/gmv/reference/extracted/tc-08-027.sip"));
    assert_eq!(
        (m.root, &m.cmd_type),
        (RootKind::Response, &CmdType::DeviceControl)
    );
    assert!(matches!(&m.body, Body::Unknown(el) if el.child_text("Result") == Some("OK")));
}
