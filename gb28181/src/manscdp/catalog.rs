//! Catalog query and response (GB/T 28181-2022 A.2.4.3, A.2.6.4), multi-message responses
//! (Annex M) and change notifications (Annex N).

use super::CatalogItem;
use super::envelope::{Body, CmdType, Manscdp, RootKind};
use super::xml::{Element, XmlWriter};

text_fields! {
    /// `Query/Catalog` (A.2.4.3). A cascade peer may restrict the query to changes in a time
    /// range.
    pub struct CatalogQuery {
        /// Start of the time range (optional).
        start_time: "StartTime",
        /// End of the time range (optional).
        end_time: "EndTime",
    }
}

impl CatalogQuery {
    pub(crate) fn from_children(children: Vec<Element>) -> CatalogQuery {
        let mut q = CatalogQuery::default();
        for el in children {
            if let Some(el) = q.take_text_field(el) {
                q.extra.push(el);
            }
        }
        q
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        self.write_text_fields(w);
        for el in &self.extra {
            w.element(el);
        }
    }
}

/// One message of a catalog answer: `Response/Catalog` (A.2.6.4) or a `Notify/Catalog` change
/// notification (Annex N).
///
/// A catalog larger than one message is sent as several Responses with the request's SN
/// (Annex M): `SumNum` is the total, `DeviceList Num` the count in this message. The receiver
/// accumulates pages until it holds `sum_num` distinct items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogResponse {
    /// `SumNum`: items in the whole catalog. When absent or not a number this is the number of
    /// items in this message (the unreadable element is kept in `extra`).
    pub sum_num: u32,
    /// The `Item`s of this message's `DeviceList`. `Num` is recomputed on output.
    pub items: Vec<CatalogItem>,
    /// Children of `DeviceList` other than `Item`.
    pub device_list_extra: Vec<Element>,
    /// Other children of the root, in document order.
    pub extra: Vec<Element>,
}

impl CatalogResponse {
    pub(crate) fn from_children(children: Vec<Element>) -> CatalogResponse {
        let mut r = CatalogResponse::default();
        let mut sum_num = None;
        let mut have_list = false;
        for el in children {
            if sum_num.is_none() && el.is_plain() && el.name_is("SumNum") {
                match el.text.parse::<u32>() {
                    Ok(n) => sum_num = Some(n),
                    Err(_) => r.extra.push(el),
                }
            } else if !have_list && el.name_is("DeviceList") {
                have_list = true;
                for child in el.children {
                    if child.name_is("Item") {
                        r.items.push(CatalogItem::from_element(child));
                    } else {
                        r.device_list_extra.push(child);
                    }
                }
            } else {
                r.extra.push(el);
            }
        }
        r.sum_num = sum_num.unwrap_or_else(|| {
            tracing::debug!("MANSCDP: catalog without a numeric SumNum, using the item count");
            u32::try_from(r.items.len()).unwrap_or(u32::MAX)
        });
        r
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        w.text_element("SumNum", &self.sum_num.to_string());
        let num = self.items.len().to_string();
        w.open("DeviceList", &[("Num", &num)]);
        for item in &self.items {
            item.write(w);
        }
        for el in &self.device_list_extra {
            w.element(el);
        }
        w.close("DeviceList");
        for el in &self.extra {
            w.element(el);
        }
    }
}

/// Split a catalog into `Response/Catalog` messages of at most `per_page` items, all with
/// the same SN and `SumNum` = `items.len()` (Annex M), in order. An empty catalog gives one
/// message with `SumNum` 0. A `per_page` of 0 is taken as 1.
///
/// Used by device simulators and by a lower platform answering its upper platform.
///
/// ```
/// use gb28181::manscdp::{catalog_pages, Body, CatalogItem, Charset};
/// let items: Vec<_> = (1..=5)
///     .map(|i| CatalogItem::channel(format!("3402000000132000000{i}"), format!("通道{i}"), "34020000001110000001"))
///     .collect();
/// let pages = catalog_pages(42, "34020000001110000001", &items, 2);
/// assert_eq!(pages.len(), 3);
/// let Body::Catalog(last) = &pages[2].body else { unreachable!() };
/// assert_eq!((last.sum_num, last.items.len()), (5, 1));
/// let wire = pages[0].to_bytes(Charset::Gb2312); // what goes in the MESSAGE body
/// # assert!(wire.starts_with(b"<?xml version=\"1.0\" encoding=\"GB2312\"?>"));
/// ```
pub fn catalog_pages(
    sn: u32,
    device_id: &str,
    items: &[CatalogItem],
    per_page: usize,
) -> Vec<Manscdp> {
    let sum_num = u32::try_from(items.len()).unwrap_or(u32::MAX);
    let page = |chunk: &[CatalogItem]| {
        let body = Body::Catalog(CatalogResponse {
            sum_num,
            items: chunk.to_vec(),
            ..CatalogResponse::default()
        });
        Manscdp::new(RootKind::Response, CmdType::Catalog, sn, device_id, body)
    };
    if items.is_empty() {
        return vec![page(&[])];
    }
    items.chunks(per_page.max(1)).map(page).collect()
}
