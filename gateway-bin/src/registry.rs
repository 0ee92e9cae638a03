//! The in-memory device registry the API reads, kept in step with the store.

use std::sync::Arc;
use std::time::SystemTime;

use dashmap::DashMap;
use gb28181::manscdp::{CatalogItem, CatalogNodeKind};
use serde::Serialize;

use crate::store::{DeviceRow, ItemRow, from_millis};

/// What the gateway knows of one device.
#[derive(Debug, Clone, Default)]
pub struct DeviceRecord {
    pub device_id: String,
    pub name: Option<String>,
    pub custom_name: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
    pub online: bool,
    /// Holds a live registration (may be offline after missed keepalives).
    pub registered: bool,
    pub transport: Option<String>,
    pub remote_addr: Option<String>,
    pub gb_version: Option<String>,
    pub user_agent: Option<String>,
    pub registered_at: Option<SystemTime>,
    pub last_keepalive_at: Option<SystemTime>,
    pub expires_at: Option<SystemTime>,
    pub password: Option<String>,
    pub charset: Option<String>,
    pub catalog_complete: Option<bool>,
    pub catalog_updated_at: Option<SystemTime>,
    /// CIDR ranges that may speak for the device besides its registration source.
    pub trusted_sources: Vec<String>,
    pub items: Arc<Vec<ItemRow>>,
}

/// Split a stored comma-separated list of CIDR ranges.
pub fn split_sources(s: Option<&str>) -> Vec<String> {
    s.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

impl DeviceRecord {
    /// A record restored from the store (offline until the device shows up).
    pub fn from_row(row: DeviceRow, items: Vec<ItemRow>) -> DeviceRecord {
        DeviceRecord {
            device_id: row.device_id,
            name: row.name,
            custom_name: row.custom_name,
            manufacturer: row.manufacturer,
            model: row.model,
            firmware: row.firmware,
            online: false,
            registered: false,
            transport: row.transport,
            remote_addr: row.remote_addr,
            gb_version: row.gb_version,
            user_agent: row.user_agent,
            registered_at: row.registered_at.map(from_millis),
            last_keepalive_at: row.last_keepalive_at.map(from_millis),
            expires_at: row.expires_at.map(from_millis),
            password: row.password,
            charset: row.charset,
            catalog_complete: row.catalog_complete,
            catalog_updated_at: row.catalog_updated_at.map(from_millis),
            trusted_sources: split_sources(row.trusted_sources.as_deref()),
            items: Arc::new(items),
        }
    }

    /// The settings the signalling core needs.
    pub fn settings(&self) -> gb28181::platform::DeviceSettings {
        gb28181::platform::DeviceSettings {
            password: self.password.clone(),
            charset: self.charset.as_deref().and_then(|c| c.parse().ok()),
            trusted_sources: self
                .trusted_sources
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
        }
    }

    /// Items that are devices or channels (not organisational nodes).
    pub fn channels(&self) -> impl Iterator<Item = &ItemRow> {
        self.items.iter().filter(|i| is_channel_kind(&i.kind))
    }

    /// The JSON view.
    pub fn view(&self) -> DeviceView {
        DeviceView {
            device_id: self.device_id.clone(),
            name: self.custom_name.clone().or_else(|| self.name.clone()),
            manufacturer: self.manufacturer.clone(),
            model: self.model.clone(),
            firmware: self.firmware.clone(),
            online: self.online,
            transport: self.transport.clone(),
            remote_addr: self.remote_addr.clone(),
            gb_version: self.gb_version.clone(),
            user_agent: self.user_agent.clone(),
            registered_at: self.registered_at.map(rfc3339),
            last_keepalive_at: self.last_keepalive_at.map(rfc3339),
            expires_at: self.expires_at.map(rfc3339),
            channel_count: self.channels().count(),
            catalog_complete: self.catalog_complete,
            catalog_updated_at: self.catalog_updated_at.map(rfc3339),
            charset: self.charset.clone(),
            has_password: self.password.is_some(),
            trusted_sources: self.trusted_sources.clone(),
        }
    }
}

/// `GET /api/v1/devices` entries.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeviceView {
    pub device_id: String,
    pub name: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
    pub online: bool,
    pub transport: Option<String>,
    pub remote_addr: Option<String>,
    pub gb_version: Option<String>,
    pub user_agent: Option<String>,
    pub registered_at: Option<String>,
    pub last_keepalive_at: Option<String>,
    pub expires_at: Option<String>,
    pub channel_count: usize,
    pub catalog_complete: Option<bool>,
    pub catalog_updated_at: Option<String>,
    pub charset: Option<String>,
    pub has_password: bool,
    pub trusted_sources: Vec<String>,
}

/// `GET /api/v1/devices/{id}/channels` entries.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChannelView {
    pub channel_id: String,
    pub name: Option<String>,
    pub parent_id: Option<String>,
    pub civil_code: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub address: Option<String>,
    pub status: Option<String>,
    pub ptz_type: Option<String>,
    pub longitude: Option<f64>,
    pub latitude: Option<f64>,
    pub kind: String,
}

impl From<&ItemRow> for ChannelView {
    fn from(i: &ItemRow) -> Self {
        ChannelView {
            channel_id: i.item_id.clone(),
            name: i.name.clone(),
            parent_id: i.parent_id.clone(),
            civil_code: i.civil_code.clone(),
            manufacturer: i.manufacturer.clone(),
            model: i.model.clone(),
            address: i.address.clone(),
            status: i.status.as_deref().map(normalize_status),
            ptz_type: i.ptz_type.clone(),
            longitude: i.longitude,
            latitude: i.latitude,
            kind: i.kind.clone(),
        }
    }
}

/// `ON` / `OFF` whatever spelling the device used (`Online`, `OFFLINE`, `on`, `1` …; see
/// `gb28181::manscdp::on_off`); anything else as sent, trimmed.
fn normalize_status(s: &str) -> String {
    match gb28181::manscdp::on_off(s) {
        Some(true) => "ON".into(),
        Some(false) => "OFF".into(),
        None => s.trim().to_owned(),
    }
}

/// The stored kind name of a catalog node.
pub fn kind_name(kind: CatalogNodeKind) -> &'static str {
    match kind {
        CatalogNodeKind::Region => "region",
        CatalogNodeKind::System => "system",
        CatalogNodeKind::BusinessGroup => "business_group",
        CatalogNodeKind::VirtualOrganization => "virtual_organization",
        CatalogNodeKind::Device => "device",
        CatalogNodeKind::Channel => "channel",
        CatalogNodeKind::Other => "other",
    }
}

/// Devices and channels are video sources; regions, systems, groups and organisations are
/// the tree around them.
pub fn is_channel_kind(kind: &str) -> bool {
    matches!(kind, "device" | "channel" | "other")
}

/// A catalog item as stored.
pub fn item_row(item: &CatalogItem) -> ItemRow {
    let coords = item.coordinates();
    ItemRow {
        item_id: item.device_id.clone(),
        kind: kind_name(item.kind()).to_owned(),
        name: item.name.clone(),
        parent_id: item.parent_id.clone(),
        civil_code: item.civil_code.clone(),
        manufacturer: item.manufacturer.clone(),
        model: item.model.clone(),
        address: item.address.clone(),
        status: item.status.clone(),
        ptz_type: item.ptz_type().map(str::to_owned),
        longitude: coords.map(|c| c.0),
        latitude: coords.map(|c| c.1),
        business_group_id: item.resolved_business_group_id().map(str::to_owned),
    }
}

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The registry.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    devices: Arc<DashMap<String, DeviceRecord>>,
}

impl Registry {
    /// Insert or replace a record.
    pub fn insert(&self, rec: DeviceRecord) {
        self.devices.insert(rec.device_id.clone(), rec);
    }

    /// Update a device, creating it when new.
    pub fn update(&self, device_id: &str, f: impl FnOnce(&mut DeviceRecord)) {
        let mut entry = self
            .devices
            .entry(device_id.to_owned())
            .or_insert_with(|| DeviceRecord {
                device_id: device_id.to_owned(),
                ..DeviceRecord::default()
            });
        f(&mut entry);
    }

    /// Update a device only if it exists.
    pub fn update_existing(&self, device_id: &str, f: impl FnOnce(&mut DeviceRecord)) -> bool {
        match self.devices.get_mut(device_id) {
            Some(mut r) => {
                f(&mut r);
                true
            }
            None => false,
        }
    }

    /// One device.
    pub fn get(&self, device_id: &str) -> Option<DeviceRecord> {
        self.devices.get(device_id).map(|r| r.clone())
    }

    /// Forget a device.
    pub fn remove(&self, device_id: &str) -> bool {
        self.devices.remove(device_id).is_some()
    }

    /// Every device, sorted by ID.
    pub fn list(&self) -> Vec<DeviceView> {
        let mut v: Vec<DeviceView> = self.devices.iter().map(|r| r.view()).collect();
        v.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        v
    }

    /// (registered, online) counts.
    pub fn counts(&self) -> (usize, usize) {
        let mut registered = 0;
        let mut online = 0;
        for r in self.devices.iter() {
            if r.registered {
                registered += 1;
            }
            if r.online {
                online += 1;
            }
        }
        (registered, online)
    }

    /// Number of known devices.
    pub fn len(&self) -> usize {
        self.devices.len()
    }
}
