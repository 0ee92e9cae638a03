//! Queries the platform sends and the Responses that answer them, including multi-message
//! catalog collection (GB/T 28181-2022 Annex M): pages are gathered by SN until `SumNum`
//! distinct items arrived; duplicates and out-of-order pages are harmless; a timeout ends the
//! collection with what arrived, flagged incomplete.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::{CatalogResult, PlatformEvent, QueryError, QueryId};
use crate::manscdp::{Body, CatalogItem, Manscdp};
use crate::sip::Response;
use crate::transaction::TransactionKey;

/// What a query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Catalog,
    DeviceInfo,
    DeviceStatus,
}

impl Kind {
    fn of(body: &Body) -> Option<Kind> {
        match body {
            Body::Catalog(_) => Some(Kind::Catalog),
            Body::DeviceInfo(_) => Some(Kind::DeviceInfo),
            Body::DeviceStatus(_) => Some(Kind::DeviceStatus),
            _ => None,
        }
    }
}

/// Items of one catalog, deduplicated by DeviceID.
#[derive(Debug, Default)]
struct Collector {
    sum_num: u32,
    items: Vec<CatalogItem>,
    index: HashMap<String, usize>,
    pages: u32,
}

impl Collector {
    fn add(&mut self, sum_num: u32, items: Vec<CatalogItem>) {
        self.pages += 1;
        self.sum_num = self.sum_num.max(sum_num);
        for item in items {
            match self.index.get(&item.device_id) {
                // A repeated item replaces the earlier copy in place.
                Some(&i) => self.items[i] = item,
                None => {
                    self.index.insert(item.device_id.clone(), self.items.len());
                    self.items.push(item);
                }
            }
        }
    }

    fn done(&self) -> bool {
        self.items.len() as u64 >= u64::from(self.sum_num)
    }

    fn finish(self, complete: bool) -> CatalogResult {
        CatalogResult {
            sum_num: self.sum_num,
            items: self.items,
            complete,
            pages: self.pages,
        }
    }
}

#[derive(Debug)]
struct Pending {
    device_id: String,
    kind: Kind,
    sn: u32,
    tx: Option<TransactionKey>,
    deadline: Instant,
    catalog: Option<Collector>,
}

/// Open queries and unsolicited catalogs.
#[derive(Debug, Default)]
pub(super) struct Queries {
    next_id: u64,
    pending: HashMap<QueryId, Pending>,
    by_tx: HashMap<TransactionKey, QueryId>,
    unsolicited: HashMap<(String, u32), (Collector, Instant)>,
    /// Catalogs recently completed, by (device, SN): late or repeated pages of them are
    /// dropped instead of starting a new, partial catalog.
    finished: VecDeque<(String, u32)>,
}

/// How many finished catalogs are remembered.
const FINISHED_REMEMBERED: usize = 1024;

impl Queries {
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.unsolicited.is_empty()
    }

    pub fn start(
        &mut self,
        now: Instant,
        device_id: &str,
        kind: Kind,
        sn: u32,
        tx: TransactionKey,
        timeout: Duration,
    ) -> QueryId {
        self.next_id += 1;
        let id = QueryId(self.next_id);
        self.by_tx.insert(tx.clone(), id);
        self.pending.insert(
            id,
            Pending {
                device_id: device_id.to_owned(),
                kind,
                sn,
                tx: Some(tx),
                deadline: now + timeout,
                catalog: None,
            },
        );
        id
    }

    /// The device answered our MESSAGE.
    pub fn on_response(
        &mut self,
        _now: Instant,
        key: &TransactionKey,
        resp: &Response,
        events: &mut VecDeque<PlatformEvent>,
    ) {
        if resp.status < 200 {
            return;
        }
        let Some(id) = self.by_tx.remove(key) else {
            return;
        };
        if let Some(p) = self.pending.get_mut(&id) {
            p.tx = None;
        }
        if resp.status >= 300 {
            self.fail(id, QueryError::Rejected(resp.status), events);
        }
    }

    /// Our MESSAGE got no answer at all.
    pub fn on_tx_timeout(
        &mut self,
        _now: Instant,
        key: &TransactionKey,
        events: &mut VecDeque<PlatformEvent>,
    ) {
        if let Some(id) = self.by_tx.remove(key) {
            self.fail(id, QueryError::NoAnswer, events);
        }
    }

    /// A Response MESSAGE from a device. Returns the message when it answers nothing.
    pub fn on_device_response(
        &mut self,
        now: Instant,
        device_id: &str,
        msg: Manscdp,
        page_timeout: Duration,
        events: &mut VecDeque<PlatformEvent>,
    ) -> Option<Manscdp> {
        let kind = Kind::of(&msg.body)?;
        let exact = self
            .pending
            .iter()
            .find(|(_, p)| p.device_id == device_id && p.kind == kind && p.sn == msg.sn)
            .map(|(id, _)| *id);
        let id = exact.or_else(|| {
            // Some devices answer with an SN of their own: take the oldest open query of the
            // same kind for this device.
            let id = self
                .pending
                .iter()
                .filter(|(_, p)| p.device_id == device_id && p.kind == kind)
                .map(|(id, _)| *id)
                .min();
            if id.is_some() && kind != Kind::Catalog {
                debug!(%device_id, sn = msg.sn, "response SN matches no query; matched by type");
            }
            id.filter(|_| kind != Kind::Catalog)
        });
        let Some(id) = id else {
            if kind == Kind::Catalog
                && self
                    .finished
                    .iter()
                    .any(|(d, sn)| d == device_id && *sn == msg.sn)
            {
                debug!(%device_id, sn = msg.sn, "late page of a finished catalog dropped");
                return None;
            }
            if let Body::Catalog(page) = msg.body {
                self.unsolicited_page(
                    now,
                    device_id,
                    msg.sn,
                    page.sum_num,
                    page.items,
                    page_timeout,
                    events,
                );
                return None;
            }
            return Some(msg);
        };
        match msg.body {
            Body::DeviceInfo(info) => {
                self.complete(id);
                events.push_back(PlatformEvent::DeviceInfo {
                    query: id,
                    device_id: device_id.to_owned(),
                    info,
                });
            }
            Body::DeviceStatus(status) => {
                self.complete(id);
                events.push_back(PlatformEvent::DeviceStatus {
                    query: id,
                    device_id: device_id.to_owned(),
                    status,
                });
            }
            Body::Catalog(page) => {
                let p = self.pending.get_mut(&id)?;
                let c = p.catalog.get_or_insert_with(Collector::default);
                c.add(page.sum_num, page.items);
                p.deadline = now + page_timeout;
                if c.done() {
                    self.remember_finished(device_id, msg.sn);
                    let collector = self
                        .complete(id)
                        .and_then(|p| p.catalog)
                        .unwrap_or_default();
                    info!(%device_id, items = collector.items.len(), pages = collector.pages, "catalog complete");
                    metrics::counter!("catalog_items_total")
                        .increment(collector.items.len() as u64);
                    events.push_back(PlatformEvent::Catalog {
                        query: Some(id),
                        device_id: device_id.to_owned(),
                        result: collector.finish(true),
                    });
                }
            }
            _ => {}
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    fn unsolicited_page(
        &mut self,
        now: Instant,
        device_id: &str,
        sn: u32,
        sum_num: u32,
        items: Vec<CatalogItem>,
        page_timeout: Duration,
        events: &mut VecDeque<PlatformEvent>,
    ) {
        let key = (device_id.to_owned(), sn);
        let entry = self
            .unsolicited
            .entry(key.clone())
            .or_insert_with(|| (Collector::default(), now));
        entry.0.add(sum_num, items);
        entry.1 = now + page_timeout;
        if entry.0.done()
            && let Some((c, _)) = self.unsolicited.remove(&key)
        {
            self.remember_finished(device_id, sn);
            metrics::counter!("catalog_items_total").increment(c.items.len() as u64);
            events.push_back(PlatformEvent::Catalog {
                query: None,
                device_id: device_id.to_owned(),
                result: c.finish(true),
            });
        }
    }

    /// Time out what waited too long.
    pub fn sweep(&mut self, now: Instant, events: &mut VecDeque<PlatformEvent>) {
        let due: Vec<QueryId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let has_items = self
                .pending
                .get(&id)
                .and_then(|p| p.catalog.as_ref())
                .is_some_and(|c| c.pages > 0);
            if has_items && let Some(p) = self.complete(id) {
                self.remember_finished(&p.device_id, p.sn);
                let c = p.catalog.unwrap_or_default();
                info!(device_id = %p.device_id, items = c.items.len(), sum_num = c.sum_num, "catalog incomplete at timeout");
                metrics::counter!("catalog_items_total").increment(c.items.len() as u64);
                events.push_back(PlatformEvent::Catalog {
                    query: Some(id),
                    device_id: p.device_id,
                    result: c.finish(false),
                });
            } else {
                self.fail(id, QueryError::Timeout, events);
            }
        }
        let stale: Vec<(String, u32)> = self
            .unsolicited
            .iter()
            .filter(|(_, (_, d))| *d <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            if let Some((c, _)) = self.unsolicited.remove(&key) {
                self.remember_finished(&key.0, key.1);
                events.push_back(PlatformEvent::Catalog {
                    query: None,
                    device_id: key.0,
                    result: c.finish(false),
                });
            }
        }
    }

    /// The device went away: every open query for it fails.
    pub fn fail_device(
        &mut self,
        _now: Instant,
        device_id: &str,
        events: &mut VecDeque<PlatformEvent>,
    ) {
        let ids: Vec<QueryId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.device_id == device_id)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.fail(id, QueryError::DeviceGone, events);
        }
        self.unsolicited.retain(|(d, _), _| d != device_id);
    }

    fn remember_finished(&mut self, device_id: &str, sn: u32) {
        if self.finished.len() >= FINISHED_REMEMBERED {
            self.finished.pop_front();
        }
        self.finished.push_back((device_id.to_owned(), sn));
    }

    fn complete(&mut self, id: QueryId) -> Option<Pending> {
        let p = self.pending.remove(&id)?;
        if let Some(tx) = &p.tx {
            self.by_tx.remove(tx);
        }
        Some(p)
    }

    fn fail(&mut self, id: QueryId, error: QueryError, events: &mut VecDeque<PlatformEvent>) {
        if let Some(p) = self.complete(id) {
            debug!(device_id = %p.device_id, ?error, "query failed");
            events.push_back(PlatformEvent::QueryFailed {
                query: id,
                device_id: p.device_id,
                error,
            });
        }
    }
}
