//! Charset handling of MANSCDP bodies: what real devices send (GB2312, UTF-8 under a GB2312
//! label, GB18030-only characters, no declaration, unescaped `&`) and what we send.

use gb28181::manscdp::{
    Body, CatalogItem, Charset, Decoded, DeviceInfo, Manscdp, catalog_pages, decode_body,
    encode_body,
};

const NAMES: [&str; 6] = [
    "大门口摄像机",
    "一号通道",
    "一水",
    "䶮𠀀摄像机€",
    "A&B <门> \"C\"",
    "统一",
];

fn gb(s: &str) -> Vec<u8> {
    encoding_rs::GB18030.encode(s).0.into_owned()
}

fn info_body(decl: &str, name: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    if !decl.is_empty() {
        b.extend_from_slice(format!("<?xml version=\"1.0\" encoding=\"{decl}\"?>\r\n").as_bytes());
    }
    b.extend_from_slice(
        b"<Response><CmdType>DeviceInfo</CmdType><SN>1</SN><DeviceID>34020000001320000001</DeviceID><DeviceName>",
    );
    b.extend_from_slice(name);
    b.extend_from_slice(b"</DeviceName><Result>OK</Result></Response>");
    b
}

fn device_name(body: &[u8]) -> String {
    match Manscdp::parse(body).unwrap().body {
        Body::DeviceInfo(d) => d.device_name.unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn gb2312_declared_gb2312_bytes() {
    for name in NAMES {
        let escaped = name
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let body = info_body("GB2312", &gb(&escaped));
        let d = decode_body(&body);
        assert_eq!(
            (d.declared, d.detected),
            (Some(Charset::Gb2312), Charset::Gb18030),
            "{name}"
        );
        assert_eq!(device_name(&body), name);
    }
    // Known GB2312 bytes, independent of the encoder: 一号通道.
    let body = info_body("gb2312", &[0xD2, 0xBB, 0xBA, 0xC5, 0xCD, 0xA8, 0xB5, 0xC0]);
    assert_eq!(device_name(&body), "一号通道");
}

#[test]
fn gb2312_declared_utf8_bytes() {
    for name in [
        "大门口摄像机",
        "一号通道",
        "一水",
        "统一",
        "海康威视 DS-2CD",
        "Café 大门",
    ] {
        let body = info_body("GB2312", name.as_bytes());
        assert_eq!(decode_body(&body).detected, Charset::Utf8, "{name}");
        assert_eq!(device_name(&body), name);
    }
}

#[test]
fn gb_text_that_is_also_valid_utf8_keeps_its_declared_charset() {
    // 一水 = D2BB CBAE and 统一 = CDB3 D2BB are valid two-byte UTF-8 ("һˮ", "ͳһ").
    for name in ["一水", "统一", "一水统一"] {
        let bytes = gb(name);
        assert!(std::str::from_utf8(&bytes).is_ok());
        let body = info_body("GB2312", &bytes);
        assert_eq!(decode_body(&body).detected, Charset::Gb18030, "{name}");
        assert_eq!(device_name(&body), name);
    }
}

#[test]
fn gb18030_only_characters() {
    let name = "䶮𠀀摄像机€";
    for decl in ["GB18030", "GB2312", "GBK", ""] {
        let body = info_body(decl, &gb(name));
        assert_eq!(device_name(&body), name, "declared {decl:?}");
    }
}

#[test]
fn utf8_without_declaration() {
    let body = info_body("", "大门口摄像机".as_bytes());
    let d = decode_body(&body);
    assert_eq!((d.declared, d.detected), (None, Charset::Utf8));
    assert_eq!(device_name(&body), "大门口摄像机");
    // <?xml?> without encoding is the same.
    let mut body2 = b"<?xml version=\"1.0\"?>".to_vec();
    body2.extend_from_slice(&body);
    assert_eq!(device_name(&body2), "大门口摄像机");
}

#[test]
fn unescaped_ampersand() {
    for (raw, want) in [
        ("A&B", "A&B"),
        ("门&窗", "门&窗"),
        ("A & B", "A & B"),
        ("A&amp;B&", "A&B&"),
        ("R&D;x", "R&D;x"),
    ] {
        assert_eq!(device_name(&info_body("GB2312", &gb(raw))), want, "{raw}");
        assert_eq!(
            device_name(&info_body("UTF-8", raw.as_bytes())),
            want,
            "{raw}"
        );
    }
}

#[test]
fn never_an_error_for_bytes_that_fit_no_charset() {
    let d: Decoded = decode_body(b"<a>\xff\x00\xfe\x80\x81</a>");
    assert!(d.lossy);
    assert!(d.text.starts_with("<a>") && d.text.ends_with("</a>"));
    let body = info_body("GB2312", b"\xff\xff ok");
    assert!(device_name(&body).ends_with(" ok"));
}

#[test]
fn encode_decode_round_trip_in_each_charset() {
    for cs in [
        Charset::Gb2312,
        Charset::Gbk,
        Charset::Gb18030,
        Charset::Utf8,
    ] {
        for name in NAMES {
            let info = DeviceInfo {
                device_name: Some(name.into()),
                ..DeviceInfo::default()
            };
            let msg = Manscdp::device_info_response(9, "34020000001320000001", info);
            let wire = msg.to_bytes(cs);
            let decl = format!("<?xml version=\"1.0\" encoding=\"{}\"?>", cs.as_str());
            assert!(wire.starts_with(decl.as_bytes()), "{cs}");
            let d = decode_body(&wire);
            assert_eq!(d.declared, Some(cs));
            assert_eq!(
                d.detected,
                if cs.is_gb() {
                    Charset::Gb18030
                } else {
                    Charset::Utf8
                }
            );
            assert!(!d.lossy);
            assert_eq!(Manscdp::parse(&wire).unwrap(), msg, "{cs} {name}");
        }
    }
}

#[test]
fn gb2312_output_is_real_gb2312() {
    let wire = encode_body("<Name>大门口摄像机</Name>", Charset::Gb2312);
    let expected = [
        b"<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Name>".as_slice(),
        &[
            0xB4, 0xF3, 0xC3, 0xC5, 0xBF, 0xDA, 0xC9, 0xE3, 0xCF, 0xF1, 0xBB, 0xFA,
        ],
        b"</Name>",
    ]
    .concat();
    assert_eq!(&wire[..], &expected[..]);
    // Text is escaped on output.
    let item = CatalogItem::channel("34020000001320000001", "A&B<C>", "34020000001180000001");
    let wire = catalog_pages(1, "34020000001180000001", &[item], 10)[0].to_bytes(Charset::Gb2312);
    assert!(String::from_utf8_lossy(&wire).contains("<Name>A&amp;B&lt;C&gt;</Name>"));
}

#[test]
fn byte_order_marks() {
    // UTF-8 BOM wins over a GB declaration.
    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend(info_body("GB2312", "大门口".as_bytes()));
    assert_eq!(device_name(&body), "大门口");
    // GB18030's BOM (84 31 95 33) decodes to U+FEFF, which is not content.
    let mut body = vec![0x84, 0x31, 0x95, 0x33];
    body.extend(info_body("GB18030", &gb("大门口")));
    assert_eq!(device_name(&body), "大门口");
}
