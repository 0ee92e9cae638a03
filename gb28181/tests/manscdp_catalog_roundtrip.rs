//! Generated catalogs (regions, systems, business groups, virtual organisations, devices and
//! channels with multi-parent ParentIDs, Chinese names and `&<>` in text, Info blocks,
//! unknown elements) survive paging, writing in each charset and re-reading unchanged.

use gb28181::manscdp::{
    Body, CatalogInfo, CatalogItem, CatalogNodeKind, Charset, Element, Manscdp, catalog_pages,
};
use proptest::prelude::*;

const CHARSETS: [Charset; 4] = [
    Charset::Gb2312,
    Charset::Gbk,
    Charset::Gb18030,
    Charset::Utf8,
];

/// Text as devices write it: ASCII (including `&<>"'`), common hanzi (some of whose GB2312
/// bytes are valid UTF-8), full-width punctuation and GB18030-only characters. Leading and
/// trailing whitespace is not significant in MANSCDP and is trimmed on input, so none here.
fn text() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        4 => proptest::char::range(' ', '~'),
        4 => proptest::sample::select("大门口摄像机一号通道水统路口东西南北楼层停车场入出海康威视大华宇视".chars().collect::<Vec<_>>()),
        1 => proptest::sample::select("（）、。：；“”·°№①".chars().collect::<Vec<_>>()),
        1 => proptest::sample::select(vec!['䶮', '𠀀', '€', '\u{E5E5}', 'é']),
        1 => proptest::char::range('\u{4E00}', '\u{9FA5}'),
    ];
    proptest::collection::vec(ch, 0..12).prop_map(|v| {
        v.into_iter()
            .collect::<String>()
            .trim_matches([' ', '\t', '\r', '\n'])
            .to_owned()
    })
}

fn digits(n: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(0u8..10, n)
        .prop_map(|v| v.iter().map(|d| char::from(b'0' + d)).collect())
}

/// A 20-digit ID with the given type code.
fn id_of_type(types: &'static [&'static str]) -> impl Strategy<Value = String> {
    (digits(10), proptest::sample::select(types), digits(7))
        .prop_map(|(a, t, b)| format!("{a}{t}{b}"))
}

fn node() -> impl Strategy<Value = (CatalogNodeKind, String)> {
    prop_oneof![
        prop_oneof![digits(2), digits(4), digits(6), digits(8)]
            .prop_map(|id| (CatalogNodeKind::Region, id)),
        id_of_type(&["200"]).prop_map(|id| (CatalogNodeKind::System, id)),
        id_of_type(&["215"]).prop_map(|id| (CatalogNodeKind::BusinessGroup, id)),
        id_of_type(&["216"]).prop_map(|id| (CatalogNodeKind::VirtualOrganization, id)),
        id_of_type(&["111", "118", "130"]).prop_map(|id| (CatalogNodeKind::Device, id)),
        id_of_type(&["131", "132", "134", "137"]).prop_map(|id| (CatalogNodeKind::Channel, id)),
    ]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn info() -> impl Strategy<Value = Option<CatalogInfo>> {
    proptest::option::of(
        (
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            vendor_elements(),
        )
            .prop_map(
                |(ptz_type, resolution, stream_number_list, business_group_id, extra)| {
                    CatalogInfo {
                        ptz_type,
                        resolution,
                        stream_number_list,
                        business_group_id,
                        extra,
                        ..CatalogInfo::default()
                    }
                },
            ),
    )
}

/// Unknown elements a vendor might add, with text, an attribute or a child.
fn vendor_elements() -> impl Strategy<Value = Vec<Element>> {
    let el = (
        proptest::sample::select(vec!["VendorExt", "HKChannelNo", "x-Custom.1"]),
        text(),
        any::<bool>(),
    )
        .prop_map(|(name, t, nested)| {
            let mut el = Element::with_text(name, t.clone());
            if nested {
                el.attrs.push(("Num".into(), t.clone()));
                el.children.push(Element::with_text("Sub", t));
            }
            el
        });
    proptest::collection::vec(el, 0..3)
}

fn item() -> impl Strategy<Value = CatalogItem> {
    (
        node(),
        text(),
        proptest::collection::vec(node(), 0..3),
        (opt_text(), opt_text(), opt_text(), opt_text()),
        (
            opt_text(),
            proptest::option::of(proptest::sample::select(vec![
                "ON", "OFF", "Online", "OFFLINE",
            ])),
        ),
        proptest::option::of(proptest::sample::select(vec![
            "ON", "OFF", "VLOST", "DEFECT", "ADD", "DEL", "UPDATE",
        ])),
        info(),
        vendor_elements(),
    )
        .prop_map(
            |(
                (_, id),
                name,
                parents,
                (manufacturer, model, address, civil_code),
                (block, status),
                event,
                info,
                extra,
            )| {
                let parent_id = (!parents.is_empty()).then(|| {
                    parents
                        .iter()
                        .map(|(_, p)| p.as_str())
                        .collect::<Vec<_>>()
                        .join("/")
                });
                CatalogItem {
                    device_id: id,
                    name: Some(name),
                    manufacturer,
                    model,
                    address,
                    civil_code,
                    block,
                    parent_id,
                    status: status.map(str::to_owned),
                    event: event.map(str::to_owned),
                    info,
                    extra,
                    ..CatalogItem::default()
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn paged_catalog_round_trips(
        items in proptest::collection::vec(item(), 0..12),
        sn in 1u32..,
        per_page in 1usize..6,
    ) {
        let device = "34020000002000000001";
        let pages = catalog_pages(sn, device, &items, per_page);
        prop_assert_eq!(pages.len(), items.len().div_ceil(per_page).max(1));
        for cs in CHARSETS {
            let mut collected = Vec::new();
            for page in &pages {
                let wire = page.to_bytes(cs);
                let back = Manscdp::parse(&wire).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&back, page, "{}", String::from_utf8_lossy(&wire));
                let Body::Catalog(c) = back.body else { unreachable!() };
                prop_assert_eq!(c.sum_num as usize, items.len());
                collected.extend(c.items);
            }
            prop_assert_eq!(&collected, &items);
        }
        for it in &items {
            let want = it.parent_id.as_deref().map(|p| p.split('/').collect::<Vec<_>>()).unwrap_or_default();
            prop_assert_eq!(it.parent_ids().collect::<Vec<_>>(), want);
        }
    }

    #[test]
    fn node_kinds_follow_ids((kind, id) in node(), name in text()) {
        let item = CatalogItem::new(id, name);
        prop_assert_eq!(item.kind(), kind);
    }
}

#[test]
fn annex_j_tree_round_trips() {
    let system = "34020000002000000001";
    let items = vec![
        CatalogItem::region("34", "安徽省"),
        CatalogItem::region("3402", "芜湖市"),
        CatalogItem::region("340200", "市辖区"),
        CatalogItem::region("34020001", "一号街道"),
        CatalogItem::business_group("34020000002150000001", "治安&交通", system),
        CatalogItem::virtual_organization(
            "34020000002160000001",
            "东区<一>",
            "34020000002150000001",
            "34020000002150000001",
        ),
        CatalogItem {
            manufacturer: Some("海康威视".into()),
            ..CatalogItem::channel(
                "34020000001320000001",
                "大门口摄像机",
                "34020000001180000001/34020000002160000001",
            )
        },
    ];
    let kinds: Vec<_> = items.iter().map(CatalogItem::kind).collect();
    use CatalogNodeKind::*;
    assert_eq!(
        kinds,
        [
            Region,
            Region,
            Region,
            Region,
            BusinessGroup,
            VirtualOrganization,
            Channel
        ]
    );
    assert_eq!(
        items[5].resolved_business_group_id(),
        Some("34020000002150000001")
    );
    assert_eq!(items[6].parent_ids().count(), 2);
    assert_eq!(items[6].civil_code.as_deref(), Some("340200"));
    let pages = catalog_pages(7, system, &items, 3);
    assert_eq!(pages.len(), 3);
    for page in &pages {
        let wire = page.to_bytes(Charset::Gb2312);
        let text = String::from_utf8_lossy(&wire);
        assert!(text.contains("<SumNum>7</SumNum>"));
        assert_eq!(&Manscdp::parse(&wire).unwrap(), page);
    }
    assert!(
        String::from_utf8_lossy(&pages[2].to_bytes(Charset::Utf8))
            .contains("<DeviceList Num=\"1\">")
    );
    let empty = catalog_pages(8, system, &[], 3);
    assert_eq!(empty.len(), 1);
    assert!(
        String::from_utf8_lossy(&empty[0].to_bytes(Charset::Utf8)).contains("<SumNum>0</SumNum>")
    );
}
