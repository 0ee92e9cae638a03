//! The embedded store: SQLite (bundled) in the data directory. Devices, per-device settings,
//! the catalog tree, online/offline history and generated credentials. Schema changes are
//! versioned migrations keyed by `PRAGMA user_version`.
//!
//! All access goes through one writer thread ([`StoreHandle`]); operations queued while a
//! transaction is open are batched into it, so a burst of keepalives costs one commit.

use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use tracing::{error, warn};

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer version of the gateway.
    #[error("database schema version {found} is newer than this gateway supports ({supported})")]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Highest version known here.
        supported: i64,
    },
    /// The writer thread is gone.
    #[error("the store thread stopped")]
    Closed,
}

/// Migrations, applied in order; index + 1 is the schema version they produce.
const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE devices (
        device_id TEXT PRIMARY KEY,
        name TEXT, custom_name TEXT, manufacturer TEXT, model TEXT, firmware TEXT,
        transport TEXT, remote_addr TEXT, gb_version TEXT, user_agent TEXT,
        registered_at INTEGER, last_keepalive_at INTEGER, expires_at INTEGER,
        password TEXT, charset TEXT,
        catalog_complete INTEGER, catalog_updated_at INTEGER,
        created_at INTEGER NOT NULL
     );
     CREATE TABLE catalog_items (
        device_id TEXT NOT NULL REFERENCES devices(device_id) ON DELETE CASCADE,
        item_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        kind TEXT NOT NULL,
        name TEXT, parent_id TEXT, civil_code TEXT, manufacturer TEXT, model TEXT,
        address TEXT, status TEXT, ptz_type TEXT, longitude REAL, latitude REAL,
        business_group_id TEXT,
        PRIMARY KEY (device_id, item_id)
     );
     CREATE TABLE device_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        device_id TEXT NOT NULL,
        at INTEGER NOT NULL,
        event TEXT NOT NULL,
        reason TEXT
     );
     CREATE INDEX device_events_by_device ON device_events(device_id, at);",
];

/// Milliseconds since the Unix epoch.
pub fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The time at `ms` milliseconds since the Unix epoch.
pub fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// One device as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceRow {
    pub device_id: String,
    pub name: Option<String>,
    pub custom_name: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
    pub transport: Option<String>,
    pub remote_addr: Option<String>,
    pub gb_version: Option<String>,
    pub user_agent: Option<String>,
    pub registered_at: Option<i64>,
    pub last_keepalive_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub password: Option<String>,
    pub charset: Option<String>,
    pub catalog_complete: Option<bool>,
    pub catalog_updated_at: Option<i64>,
}

/// One catalog item as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemRow {
    pub item_id: String,
    pub kind: String,
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
    pub business_group_id: Option<String>,
}

/// One entry of the online/offline history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub at: i64,
    pub event: String,
    pub reason: Option<String>,
}

/// The SQLite database.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Open (creating) `dir/gateway.db` and migrate it.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(dir.join("gateway.db"))?;
        Store::init(conn)
    }

    /// An in-memory store (tests).
    #[cfg(test)]
    pub fn in_memory() -> Result<Store, StoreError> {
        Store::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store, StoreError> {
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    /// Schema version in the file.
    pub fn version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let current = self.version()?;
        let supported = MIGRATIONS.len() as i64;
        if current > supported {
            return Err(StoreError::TooNew {
                found: current,
                supported,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    fn begin(&self) -> Result<(), StoreError> {
        self.conn.execute_batch("BEGIN")?;
        Ok(())
    }

    fn commit(&self) -> Result<(), StoreError> {
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }

    /// A stored setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Store a setting.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO settings(key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    fn ensure_device(&self, device_id: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO devices(device_id, created_at) VALUES (?1, ?2)",
            params![device_id, millis(SystemTime::now())],
        )?;
        Ok(())
    }

    /// Record a registration.
    pub fn save_registration(&self, row: &DeviceRow) -> Result<(), StoreError> {
        self.ensure_device(&row.device_id)?;
        self.conn.execute(
            "UPDATE devices SET transport = ?2, remote_addr = ?3, gb_version = COALESCE(?4, gb_version),
                user_agent = COALESCE(?5, user_agent), registered_at = ?6, expires_at = ?7,
                last_keepalive_at = COALESCE(last_keepalive_at, ?6)
             WHERE device_id = ?1",
            params![
                row.device_id,
                row.transport,
                row.remote_addr,
                row.gb_version,
                row.user_agent,
                row.registered_at,
                row.expires_at
            ],
        )?;
        Ok(())
    }

    /// Record a keepalive.
    pub fn save_keepalive(&self, device_id: &str, at: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE devices SET last_keepalive_at = ?2 WHERE device_id = ?1",
            params![device_id, at],
        )?;
        Ok(())
    }

    /// Record DeviceInfo.
    pub fn save_info(&self, row: &DeviceRow) -> Result<(), StoreError> {
        self.ensure_device(&row.device_id)?;
        self.conn.execute(
            "UPDATE devices SET name = ?2, manufacturer = ?3, model = ?4, firmware = ?5
             WHERE device_id = ?1",
            params![
                row.device_id,
                row.name,
                row.manufacturer,
                row.model,
                row.firmware
            ],
        )?;
        Ok(())
    }

    /// Provisioned settings (`None` leaves a value unchanged; `Some("")` clears it).
    pub fn save_settings(
        &self,
        device_id: &str,
        password: Option<&str>,
        charset: Option<&str>,
        custom_name: Option<&str>,
    ) -> Result<(), StoreError> {
        self.ensure_device(device_id)?;
        fn clear(v: Option<&str>) -> Option<Option<&str>> {
            v.map(|s| (!s.is_empty()).then_some(s))
        }
        let (p, c, n) = (clear(password), clear(charset), clear(custom_name));
        self.conn.execute(
            "UPDATE devices SET
                password = CASE WHEN ?2 THEN ?3 ELSE password END,
                charset = CASE WHEN ?4 THEN ?5 ELSE charset END,
                custom_name = CASE WHEN ?6 THEN ?7 ELSE custom_name END
             WHERE device_id = ?1",
            params![
                device_id,
                p.is_some(),
                p.flatten(),
                c.is_some(),
                c.flatten(),
                n.is_some(),
                n.flatten()
            ],
        )?;
        Ok(())
    }

    /// Replace a device's catalog.
    pub fn save_catalog(
        &self,
        device_id: &str,
        items: &[ItemRow],
        complete: bool,
        at: i64,
    ) -> Result<(), StoreError> {
        self.ensure_device(device_id)?;
        self.conn.execute(
            "DELETE FROM catalog_items WHERE device_id = ?1",
            [device_id],
        )?;
        let mut stmt = self.conn.prepare_cached(
            "INSERT OR REPLACE INTO catalog_items(device_id, item_id, position, kind, name, parent_id,
                civil_code, manufacturer, model, address, status, ptz_type, longitude, latitude,
                business_group_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?;
        for (i, it) in items.iter().enumerate() {
            stmt.execute(params![
                device_id,
                it.item_id,
                i as i64,
                it.kind,
                it.name,
                it.parent_id,
                it.civil_code,
                it.manufacturer,
                it.model,
                it.address,
                it.status,
                it.ptz_type,
                it.longitude,
                it.latitude,
                it.business_group_id
            ])?;
        }
        self.conn.execute(
            "UPDATE devices SET catalog_complete = ?2, catalog_updated_at = ?3 WHERE device_id = ?1",
            params![device_id, complete, at],
        )?;
        Ok(())
    }

    /// Forget a device, its catalog and history.
    pub fn delete_device(&self, device_id: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM catalog_items WHERE device_id = ?1",
            [device_id],
        )?;
        self.conn.execute(
            "DELETE FROM device_events WHERE device_id = ?1",
            [device_id],
        )?;
        self.conn
            .execute("DELETE FROM devices WHERE device_id = ?1", [device_id])?;
        Ok(())
    }

    /// Append to the online/offline history.
    pub fn add_event(
        &self,
        device_id: &str,
        at: i64,
        event: &str,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO device_events(device_id, at, event, reason) VALUES (?1, ?2, ?3, ?4)",
            params![device_id, at, event, reason],
        )?;
        Ok(())
    }

    /// The newest `limit` history entries of a device, newest first.
    pub fn events(&self, device_id: &str, limit: u32) -> Result<Vec<EventRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT at, event, reason FROM device_events WHERE device_id = ?1
             ORDER BY at DESC, id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![device_id, limit], |r| {
            Ok(EventRow {
                at: r.get(0)?,
                event: r.get(1)?,
                reason: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Devices whose last history entry says online: after a crash they are recorded offline.
    pub fn close_open_sessions(&self, at: i64, reason: &str) -> Result<usize, StoreError> {
        let n = self.conn.execute(
            "INSERT INTO device_events(device_id, at, event, reason)
             SELECT e.device_id, ?1, 'offline', ?2 FROM device_events e
             WHERE e.id = (SELECT MAX(id) FROM device_events WHERE device_id = e.device_id)
               AND e.event = 'online'",
            params![at, reason],
        )?;
        Ok(n)
    }

    /// Every device.
    pub fn devices(&self) -> Result<Vec<DeviceRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT device_id, name, custom_name, manufacturer, model, firmware, transport,
                remote_addr, gb_version, user_agent, registered_at, last_keepalive_at, expires_at,
                password, charset, catalog_complete, catalog_updated_at
             FROM devices ORDER BY device_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(DeviceRow {
                device_id: r.get(0)?,
                name: r.get(1)?,
                custom_name: r.get(2)?,
                manufacturer: r.get(3)?,
                model: r.get(4)?,
                firmware: r.get(5)?,
                transport: r.get(6)?,
                remote_addr: r.get(7)?,
                gb_version: r.get(8)?,
                user_agent: r.get(9)?,
                registered_at: r.get(10)?,
                last_keepalive_at: r.get(11)?,
                expires_at: r.get(12)?,
                password: r.get(13)?,
                charset: r.get(14)?,
                catalog_complete: r.get(15)?,
                catalog_updated_at: r.get(16)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every catalog item, as (device ID, item) in catalog order.
    pub fn items(&self) -> Result<Vec<(String, ItemRow)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT device_id, item_id, kind, name, parent_id, civil_code, manufacturer, model,
                address, status, ptz_type, longitude, latitude, business_group_id
             FROM catalog_items ORDER BY device_id, position",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                ItemRow {
                    item_id: r.get(1)?,
                    kind: r.get(2)?,
                    name: r.get(3)?,
                    parent_id: r.get(4)?,
                    civil_code: r.get(5)?,
                    manufacturer: r.get(6)?,
                    model: r.get(7)?,
                    address: r.get(8)?,
                    status: r.get(9)?,
                    ptz_type: r.get(10)?,
                    longitude: r.get(11)?,
                    latitude: r.get(12)?,
                    business_group_id: r.get(13)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

type Op = Box<dyn FnOnce(&Store) -> Result<(), StoreError> + Send>;

enum Msg {
    Op(Op),
    Flush(mpsc::Sender<()>),
}

/// The writer thread's handle. Cheap to clone; operations run in order.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Msg>,
}

impl StoreHandle {
    /// Move `store` to a writer thread.
    pub fn spawn(store: Store) -> StoreHandle {
        let (tx, rx) = mpsc::channel::<Msg>();
        let spawned = thread::Builder::new()
            .name("store".into())
            .spawn(move || writer(store, rx));
        if let Err(e) = spawned {
            error!(error = %e, "cannot start the store thread; nothing will be persisted");
        }
        StoreHandle { tx }
    }

    /// Queue a write.
    pub fn write(&self, op: impl FnOnce(&Store) -> Result<(), StoreError> + Send + 'static) {
        if self.tx.send(Msg::Op(Box::new(op))).is_err() {
            warn!("store thread gone; write dropped");
        }
    }

    /// Run a read (or write) and get its result.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let op: Op = Box::new(move |s| {
            let _ = tx.send(f(s));
            Ok(())
        });
        self.tx.send(Msg::Op(op)).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Wait until everything queued so far is committed.
    pub fn flush_blocking(&self) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
    }
}

fn writer(store: Store, rx: mpsc::Receiver<Msg>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 2048 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let in_tx = store.begin().is_ok();
        let mut flushes = Vec::new();
        for m in batch {
            match m {
                Msg::Op(op) => {
                    if let Err(e) = op(&store) {
                        error!(error = %e, "store write failed");
                    }
                }
                Msg::Flush(done) => flushes.push(done),
            }
        }
        if in_tx && let Err(e) = store.commit() {
            error!(error = %e, "store commit failed");
        }
        for f in flushes {
            let _ = f.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_and_round_trips() {
        let s = Store::in_memory().unwrap();
        assert_eq!(s.version().unwrap(), MIGRATIONS.len() as i64);
        s.set_setting("api_token", "abc").unwrap();
        assert_eq!(s.setting("api_token").unwrap().as_deref(), Some("abc"));
        let row = DeviceRow {
            device_id: "34020000001320000001".into(),
            transport: Some("udp".into()),
            remote_addr: Some("127.0.0.1:5060".into()),
            registered_at: Some(1000),
            expires_at: Some(2000),
            ..DeviceRow::default()
        };
        s.save_registration(&row).unwrap();
        s.save_info(&DeviceRow {
            name: Some("大门".into()),
            ..row.clone()
        })
        .unwrap();
        s.save_settings(&row.device_id, Some("pw"), None, Some("gate"))
            .unwrap();
        let items = vec![
            ItemRow {
                item_id: "34020000001320000002".into(),
                kind: "channel".into(),
                name: Some("通道一".into()),
                ..ItemRow::default()
            },
            ItemRow {
                item_id: "340200".into(),
                kind: "region".into(),
                ..ItemRow::default()
            },
        ];
        s.save_catalog(&row.device_id, &items, true, 5).unwrap();
        s.save_catalog(&row.device_id, &items[..1], false, 6)
            .unwrap();
        let d = &s.devices().unwrap()[0];
        assert_eq!(d.name.as_deref(), Some("大门"));
        assert_eq!(d.custom_name.as_deref(), Some("gate"));
        assert_eq!(d.password.as_deref(), Some("pw"));
        assert_eq!(d.catalog_complete, Some(false));
        assert_eq!(d.last_keepalive_at, Some(1000));
        let all = s.items().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1.name.as_deref(), Some("通道一"));
        // Clearing a setting with an empty string.
        s.save_settings(&row.device_id, Some(""), None, None)
            .unwrap();
        assert_eq!(s.devices().unwrap()[0].password, None);
        assert_eq!(s.devices().unwrap()[0].custom_name.as_deref(), Some("gate"));
    }

    #[test]
    fn history_and_crash_recovery() {
        let s = Store::in_memory().unwrap();
        s.add_event("a", 1, "online", None).unwrap();
        s.add_event("b", 1, "online", None).unwrap();
        s.add_event("b", 2, "offline", Some("keepalive_timeout"))
            .unwrap();
        assert_eq!(s.close_open_sessions(9, "gateway_restart").unwrap(), 1);
        let a = s.events("a", 10).unwrap();
        assert_eq!(a[0].event, "offline");
        assert_eq!(a[0].reason.as_deref(), Some("gateway_restart"));
        assert_eq!(s.events("b", 10).unwrap().len(), 2);
        s.delete_device("a").unwrap();
        assert!(s.events("a", 10).unwrap().is_empty());
    }

    #[test]
    fn refuses_newer_schema() {
        let dir = std::env::temp_dir().join(format!("gbstore-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        {
            let s = Store::open(&dir).unwrap();
            s.conn.pragma_update(None, "user_version", 99).unwrap();
        }
        assert!(matches!(
            Store::open(&dir),
            Err(StoreError::TooNew { found: 99, .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
