//! Queries the platform sends and the Responses that answer them, including multi-message
//! catalog collection (GB/T 28181-2022 Annex M): pages are gathered by SN until `SumNum`
//! distinct items arrived; duplicates and out-of-order pages are harmless; a timeout ends the
//! collection with what arrived, flagged incomplete.
//!
//! Bounded ([`Limits`]): items kept per catalog, items held by all open collections,
//! collections open per device, queries open in all. A catalog cut short by a bound ends
//! flagged incomplete; a query of a kind already open for a device joins it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::config::{Limit, Limits};
use super::{CatalogResult, PlatformEvent, PlatformStats, QueryError, QueryId};
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
    /// Items were dropped by a bound: the catalog ends now, incomplete.
    truncated: bool,
}

/// Where a page's items may go.
struct Room<'a> {
    /// Items this catalog may still take.
    per_catalog: usize,
    /// Items all open collections may still take.
    in_flight: &'a mut usize,
    max_in_flight: usize,
}

impl Collector {
    /// Add a page; returns the bound that dropped items, if any.
    fn add(&mut self, sum_num: u32, items: Vec<CatalogItem>, room: Room<'_>) -> Option<Limit> {
        self.pages += 1;
        self.sum_num = self.sum_num.max(sum_num);
        let mut dropped = None;
        for item in items {
            match self.index.get(&item.device_id) {
                // A repeated item replaces the earlier copy in place.
                Some(&i) => self.items[i] = item,
                None if self.items.len() >= room.per_catalog => {
                    dropped = Some(Limit::CatalogItems);
                }
                None if *room.in_flight >= room.max_in_flight => {
                    dropped = Some(Limit::CatalogItemsInFlight);
                }
                None => {
                    *room.in_flight += 1;
                    self.index.insert(item.device_id.clone(), self.items.len());
                    self.items.push(item);
                }
            }
        }
        if dropped.is_some() {
            self.truncated = true;
        }
        dropped
    }

    fn done(&self) -> bool {
        self.truncated || self.items.len() as u64 >= u64::from(self.sum_num)
    }

    fn finish(self, complete: bool, in_flight: &mut usize) -> CatalogResult {
        *in_flight = in_flight.saturating_sub(self.items.len());
        CatalogResult {
            sum_num: self.sum_num,
            items: self.items,
            complete: complete && !self.truncated,
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

/// Open queries and unsolicited catalogs, indexed by device (a node has tens of thousands
/// open at once during a registration storm: nothing here scans them all per message).
#[derive(Debug, Default)]
pub(super) struct Queries {
    next_id: u64,
    pending: HashMap<QueryId, Pending>,
    by_tx: HashMap<TransactionKey, QueryId>,
    /// Open queries of each device.
    by_device: HashMap<String, Vec<QueryId>>,
    unsolicited: HashMap<(String, u32), (Collector, Instant)>,
    /// SNs of each device's unsolicited catalogs.
    unsolicited_by_device: HashMap<String, Vec<u32>>,
    /// Catalogs recently completed, by (device, SN): late or repeated pages of them are
    /// dropped instead of starting a new, partial catalog.
    finished: VecDeque<(String, u32)>,
    finished_set: HashSet<(String, u32)>,
    /// Catalog items held by open collections.
    in_flight: usize,
}

/// How many finished catalogs are remembered.
const FINISHED_REMEMBERED: usize = 1024;

impl Queries {
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.unsolicited.is_empty()
    }

    /// The open queries of a device.
    fn of_device<'a>(&'a self, device_id: &str) -> impl Iterator<Item = (QueryId, &'a Pending)> {
        self.by_device
            .get(device_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.pending.get(id).map(|p| (*id, p)))
    }

    /// An open query of `kind` for `device_id`, which a new one may join.
    pub fn open_query(&self, device_id: &str, kind: Kind) -> Option<QueryId> {
        self.of_device(device_id)
            .filter(|(_, p)| p.kind == kind)
            .map(|(id, _)| id)
            .min()
    }

    /// Whether one more query of `kind` may open for `device_id`.
    pub fn admit(&self, device_id: &str, kind: Kind, limits: &Limits) -> Result<(), Limit> {
        if self.pending.len() + self.unsolicited.len() >= limits.max_open_queries {
            return Err(Limit::OpenQueries);
        }
        if kind == Kind::Catalog
            && self.open_catalogs(device_id) >= limits.catalog_max_open_per_device
        {
            return Err(Limit::CatalogOpenPerDevice);
        }
        Ok(())
    }

    /// Catalog collections open for one device (queries and unsolicited catalogs).
    fn open_catalogs(&self, device_id: &str) -> usize {
        self.of_device(device_id)
            .filter(|(_, p)| p.kind == Kind::Catalog)
            .count()
            + self
                .unsolicited_by_device
                .get(device_id)
                .map_or(0, Vec::len)
    }

    /// The device a query's MESSAGE went to.
    pub fn device_for_tx(&self, key: &TransactionKey) -> Option<&str> {
        let id = self.by_tx.get(key)?;
        self.pending.get(id).map(|p| p.device_id.as_str())
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
        self.by_device
            .entry(device_id.to_owned())
            .or_default()
            .push(id);
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
    #[allow(clippy::too_many_arguments)]
    pub fn on_device_response(
        &mut self,
        now: Instant,
        device_id: &str,
        msg: Manscdp,
        page_timeout: Duration,
        limits: &Limits,
        stats: &mut PlatformStats,
        events: &mut VecDeque<PlatformEvent>,
    ) -> Option<Manscdp> {
        let kind = Kind::of(&msg.body)?;
        let exact = self
            .of_device(device_id)
            .find(|(_, p)| p.kind == kind && p.sn == msg.sn)
            .map(|(id, _)| id);
        let id = exact.or_else(|| {
            // Some devices answer with an SN of their own: take the oldest open query of the
            // same kind for this device.
            let id = self.open_query(device_id, kind);
            if id.is_some() && kind != Kind::Catalog {
                debug!(%device_id, sn = msg.sn, "response SN matches no query; matched by type");
            }
            id.filter(|_| kind != Kind::Catalog)
        });
        let Some(id) = id else {
            if kind == Kind::Catalog && self.finished_set.contains(&(device_id.to_owned(), msg.sn))
            {
                debug!(%device_id, sn = msg.sn, "late page of a finished catalog dropped");
                return None;
            }
            if let Body::Catalog(page) = msg.body {
                self.unsolicited_page(
                    now,
                    device_id,
                    (msg.sn, page.sum_num, page.items),
                    page_timeout,
                    limits,
                    stats,
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
                let room = Room {
                    per_catalog: limits.catalog_max_items,
                    in_flight: &mut self.in_flight,
                    max_in_flight: limits.catalog_max_items_in_flight,
                };
                if let Some(limit) = c.add(page.sum_num, page.items, room) {
                    stats.hit(limit);
                }
                p.deadline = now + page_timeout;
                if c.done() {
                    self.remember_finished(device_id, msg.sn);
                    let collector = self
                        .complete(id)
                        .and_then(|p| p.catalog)
                        .unwrap_or_default();
                    info!(%device_id, items = collector.items.len(), pages = collector.pages, truncated = collector.truncated, "catalog complete");
                    stats.catalog_items += collector.items.len() as u64;
                    events.push_back(PlatformEvent::Catalog {
                        query: Some(id),
                        device_id: device_id.to_owned(),
                        result: collector.finish(true, &mut self.in_flight),
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
        (sn, sum_num, items): (u32, u32, Vec<CatalogItem>),
        page_timeout: Duration,
        limits: &Limits,
        stats: &mut PlatformStats,
        events: &mut VecDeque<PlatformEvent>,
    ) {
        let key = (device_id.to_owned(), sn);
        if !self.unsolicited.contains_key(&key)
            && let Err(limit) = self.admit(device_id, Kind::Catalog, limits)
        {
            stats.hit(limit);
            debug!(%device_id, sn, limit = limit.as_str(), "unsolicited catalog dropped");
            return;
        }
        if !self.unsolicited.contains_key(&key) {
            self.unsolicited_by_device
                .entry(device_id.to_owned())
                .or_default()
                .push(sn);
        }
        let entry = self
            .unsolicited
            .entry(key.clone())
            .or_insert_with(|| (Collector::default(), now));
        let room = Room {
            per_catalog: limits.catalog_max_items,
            in_flight: &mut self.in_flight,
            max_in_flight: limits.catalog_max_items_in_flight,
        };
        if let Some(limit) = entry.0.add(sum_num, items, room) {
            stats.hit(limit);
        }
        entry.1 = now + page_timeout;
        if entry.0.done()
            && let Some(c) = self.remove_unsolicited(&key)
        {
            self.remember_finished(device_id, sn);
            stats.catalog_items += c.items.len() as u64;
            events.push_back(PlatformEvent::Catalog {
                query: None,
                device_id: device_id.to_owned(),
                result: c.finish(true, &mut self.in_flight),
            });
        }
    }

    /// Time out what waited too long.
    pub fn sweep(
        &mut self,
        now: Instant,
        stats: &mut PlatformStats,
        events: &mut VecDeque<PlatformEvent>,
    ) {
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
                stats.catalog_items += c.items.len() as u64;
                events.push_back(PlatformEvent::Catalog {
                    query: Some(id),
                    device_id: p.device_id,
                    result: c.finish(false, &mut self.in_flight),
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
            if let Some(c) = self.remove_unsolicited(&key) {
                self.remember_finished(&key.0, key.1);
                stats.catalog_items += c.items.len() as u64;
                events.push_back(PlatformEvent::Catalog {
                    query: None,
                    device_id: key.0,
                    result: c.finish(false, &mut self.in_flight),
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
        let ids: Vec<QueryId> = self.by_device.get(device_id).cloned().unwrap_or_default();
        for id in ids {
            self.fail(id, QueryError::DeviceGone, events);
        }
        for sn in self
            .unsolicited_by_device
            .get(device_id)
            .cloned()
            .unwrap_or_default()
        {
            if let Some(c) = self.remove_unsolicited(&(device_id.to_owned(), sn)) {
                self.in_flight = self.in_flight.saturating_sub(c.items.len());
            }
        }
    }

    /// Take an unsolicited collection out of the tables.
    fn remove_unsolicited(&mut self, key: &(String, u32)) -> Option<Collector> {
        let (c, _) = self.unsolicited.remove(key)?;
        if let Some(sns) = self.unsolicited_by_device.get_mut(&key.0) {
            sns.retain(|sn| *sn != key.1);
            if sns.is_empty() {
                self.unsolicited_by_device.remove(&key.0);
            }
        }
        Some(c)
    }

    fn remember_finished(&mut self, device_id: &str, sn: u32) {
        if self.finished.len() >= FINISHED_REMEMBERED
            && let Some(old) = self.finished.pop_front()
        {
            self.finished_set.remove(&old);
        }
        let key = (device_id.to_owned(), sn);
        if self.finished_set.insert(key.clone()) {
            self.finished.push_back(key);
        }
    }

    fn complete(&mut self, id: QueryId) -> Option<Pending> {
        let p = self.pending.remove(&id)?;
        if let Some(tx) = &p.tx {
            self.by_tx.remove(tx);
        }
        if let Some(ids) = self.by_device.get_mut(&p.device_id) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.by_device.remove(&p.device_id);
            }
        }
        Some(p)
    }

    fn fail(&mut self, id: QueryId, error: QueryError, events: &mut VecDeque<PlatformEvent>) {
        if let Some(p) = self.complete(id) {
            if let Some(c) = &p.catalog {
                self.in_flight = self.in_flight.saturating_sub(c.items.len());
            }
            debug!(device_id = %p.device_id, ?error, "query failed");
            events.push_back(PlatformEvent::QueryFailed {
                query: id,
                device_id: p.device_id,
                error,
            });
        }
    }
}
