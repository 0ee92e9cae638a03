//! The embedded store: SQLite (bundled) in the data directory. Devices, per-device settings,
//! the catalog tree, online/offline history and generated credentials. Schema changes are
//! versioned migrations keyed by `PRAGMA user_version`.
//!
//! All access goes through one writer thread ([`StoreHandle`]); operations queued while a
//! transaction is open are batched into it, so a burst of registrations costs one commit.
//!
//! Durability and bounds:
//! - the data directory is 0700 and the database files 0600 (they hold the API token and
//!   device passwords);
//! - an operation that waits for its result ([`StoreHandle::call`]) gets it only after its
//!   transaction committed; a failed statement or commit rolls back, every caller of that
//!   batch gets the error, and the writer goes on with a new transaction;
//! - the queue is bounded: [`StoreHandle::write`] waits when it is full (back-pressure on the
//!   signalling), [`StoreHandle::call`] answers [`StoreError::Busy`];
//! - the history keeps at most `history_max_rows` rows per device and nothing older than the
//!   retention; the database may be capped in size (`max_size_mb`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use tracing::{error, info, warn};

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
    /// The write queue is full: the store is behind; try again shortly.
    #[error("the store is busy (write queue full)")]
    Busy,
    /// The transaction this operation was part of was rolled back.
    #[error("rolled back: {0}")]
    RolledBack(String),
    /// A file or directory could not be created or secured.
    #[error("{0}")]
    Io(String),
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
    // 2: addresses trusted to speak for a device besides its registration source.
    "ALTER TABLE devices ADD COLUMN trusted_sources TEXT;
     CREATE INDEX device_events_by_time ON device_events(at);",
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
    /// Comma-separated CIDR ranges (`DeviceSettings::trusted_sources`).
    pub trusted_sources: Option<String>,
}

/// Store settings (`[store]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Cap on the database size in bytes (`None`: the disk is the limit).
    pub max_size: Option<u64>,
    /// History rows kept per device (the newest).
    pub history_max_rows: u32,
    /// History older than this is deleted.
    pub history_retention: Duration,
    /// Operations queued for the writer at most.
    pub queue: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_size: None,
            history_max_rows: 10_000,
            history_retention: Duration::from_secs(400 * 86_400),
            queue: 16_384,
        }
    }
}

/// What the writer counted (exported as metrics).
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Operations that failed.
    pub op_errors: AtomicU64,
    /// Transactions rolled back (a failed statement that ended the transaction, or COMMIT).
    pub rollbacks: AtomicU64,
    /// Calls refused because the queue was full.
    pub busy: AtomicU64,
    /// Times a writer waited for room in the queue.
    pub waits: AtomicU64,
    /// History rows deleted by the retention.
    pub history_pruned: AtomicU64,
}

/// A settings change from the API: `None` leaves a value, `Some("")` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsUpdate {
    pub password: Option<String>,
    pub charset: Option<String>,
    pub custom_name: Option<String>,
    /// Comma-separated CIDR ranges.
    pub trusted_sources: Option<String>,
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
    limits: StoreLimits,
    stats: Arc<StoreStats>,
    /// History rows added per device since its last pruning.
    history_added: RefCell<HashMap<String, u32>>,
}

/// History rows added to one device between two prunings of it.
const PRUNE_EVERY: u32 = 256;

/// Make `dir` (and the database files in it, when they exist) private to this user: the
/// database holds the API token and device passwords.
#[cfg(unix)]
pub fn secure_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let io =
        |what: &str, e: std::io::Error| StoreError::Io(format!("{what} {}: {e}", dir.display()));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io("cannot create", e))?;
    let meta = std::fs::metadata(dir).map_err(|e| io("cannot read", e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        warn!(dir = %dir.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "data directory was readable by others: now 0700");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io("cannot secure", e))?;
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn secure_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", dir.display())))
}

/// Create the database file 0600 (SQLite gives its -wal and -shm files the same mode) and
/// tighten files left looser by an older version.
#[cfg(unix)]
fn secure_db_files(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", path.display())))?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let f = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if let Ok(meta) = std::fs::metadata(&f)
            && meta.permissions().mode() & 0o077 != 0
        {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| StoreError::Io(format!("cannot secure {}: {e}", f.display())))?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn secure_db_files(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

impl Store {
    /// Open (creating) `dir/gateway.db` and migrate it.
    pub fn open(dir: &Path, limits: StoreLimits) -> Result<Store, StoreError> {
        secure_dir(dir)?;
        let path = dir.join("gateway.db");
        secure_db_files(&path)?;
        let conn = Connection::open(&path)?;
        Store::init(conn, limits)
    }

    /// An in-memory store (tests).
    #[cfg(test)]
    pub fn in_memory() -> Result<Store, StoreError> {
        Store::init(Connection::open_in_memory()?, StoreLimits::default())
    }

    fn init(conn: Connection, limits: StoreLimits) -> Result<Store, StoreError> {
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = Store {
            conn,
            limits,
            stats: Arc::default(),
            history_added: RefCell::default(),
        };
        store.migrate()?;
        if let Some(max) = limits.max_size {
            let page: i64 = store.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            let pages = (max / page.max(512) as u64).max(1);
            let set: i64 =
                store
                    .conn
                    .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                        r.get(0)
                    })?;
            info!(max_bytes = max, pages = set, "database size capped");
        }
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

    /// Roll back whatever transaction is open (a no-op when SQLite already did).
    fn rollback(&self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
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

    fn has_device(&self, device_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM devices WHERE device_id = ?1")?
            .exists([device_id])?)
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

    /// Record the last keepalive of several devices.
    pub fn save_keepalives(&self, seen: &[(String, i64)]) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("UPDATE devices SET last_keepalive_at = ?2 WHERE device_id = ?1")?;
        for (device_id, at) in seen {
            stmt.execute(params![device_id, at])?;
        }
        Ok(())
    }

    /// Record DeviceInfo (of a device already stored: nothing a device sends creates one).
    pub fn save_info(&self, row: &DeviceRow) -> Result<(), StoreError> {
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
    pub fn save_settings(&self, device_id: &str, s: &SettingsUpdate) -> Result<(), StoreError> {
        self.ensure_device(device_id)?;
        fn clear(v: Option<&str>) -> Option<Option<&str>> {
            v.map(|s| (!s.is_empty()).then_some(s))
        }
        let (p, c, n, t) = (
            clear(s.password.as_deref()),
            clear(s.charset.as_deref()),
            clear(s.custom_name.as_deref()),
            clear(s.trusted_sources.as_deref()),
        );
        self.conn.execute(
            "UPDATE devices SET
                password = CASE WHEN ?2 THEN ?3 ELSE password END,
                charset = CASE WHEN ?4 THEN ?5 ELSE charset END,
                custom_name = CASE WHEN ?6 THEN ?7 ELSE custom_name END,
                trusted_sources = CASE WHEN ?8 THEN ?9 ELSE trusted_sources END
             WHERE device_id = ?1",
            params![
                device_id,
                p.is_some(),
                p.flatten(),
                c.is_some(),
                c.flatten(),
                n.is_some(),
                n.flatten(),
                t.is_some(),
                t.flatten()
            ],
        )?;
        Ok(())
    }

    /// Replace a device's catalog (of a device already stored).
    pub fn save_catalog(
        &self,
        device_id: &str,
        items: &[ItemRow],
        complete: bool,
        at: i64,
    ) -> Result<(), StoreError> {
        if !self.has_device(device_id)? {
            return Ok(());
        }
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

    /// Append to the online/offline history of a stored device. Every [`PRUNE_EVERY`] rows
    /// of a device, its history is cut to the newest `history_max_rows`.
    pub fn add_event(
        &self,
        device_id: &str,
        at: i64,
        event: &str,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let added = self
            .conn
            .prepare_cached(
                "INSERT INTO device_events(device_id, at, event, reason)
                 SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM devices WHERE device_id = ?1)",
            )?
            .execute(params![device_id, at, event, reason])?;
        if added == 0 {
            return Ok(());
        }
        let due = {
            let mut map = self.history_added.borrow_mut();
            let n = map.entry(device_id.to_owned()).or_default();
            *n += 1;
            let due = *n >= PRUNE_EVERY;
            if due {
                *n = 0;
            }
            due
        };
        if due {
            let n = self.prune_device_history(device_id)?;
            self.stats.history_pruned.fetch_add(n, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Cut one device's history to the newest `history_max_rows` rows.
    pub fn prune_device_history(&self, device_id: &str) -> Result<u64, StoreError> {
        let n = self.conn.execute(
            "DELETE FROM device_events WHERE device_id = ?1 AND id <= (
                SELECT id FROM device_events WHERE device_id = ?1
                ORDER BY id DESC LIMIT 1 OFFSET ?2)",
            params![device_id, self.limits.history_max_rows],
        )?;
        Ok(n as u64)
    }

    /// Delete history older than the retention, as of `now` (milliseconds).
    pub fn prune_old_history(&self, now: i64) -> Result<u64, StoreError> {
        let cutoff = now.saturating_sub(
            i64::try_from(self.limits.history_retention.as_millis()).unwrap_or(i64::MAX),
        );
        let n = self
            .conn
            .execute("DELETE FROM device_events WHERE at < ?1", [cutoff])?;
        Ok(n as u64)
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
                password, charset, catalog_complete, catalog_updated_at, trusted_sources
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
                trusted_sources: r.get(17)?,
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

/// What to tell a caller once its transaction ended (`Ok` when it committed).
type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// An operation: runs in the writer's transaction; says whether it succeeded and returns its
/// reply (if it has a caller).
type Op = Box<dyn FnOnce(&Store) -> (bool, Option<Reply>) + Send>;

enum Msg {
    Op(Op),
    Flush(mpsc::Sender<()>),
}

/// The writer thread's handle. Cheap to clone; operations run in order.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::SyncSender<Msg>,
    stats: Arc<StoreStats>,
}

impl StoreHandle {
    /// Move `store` to a writer thread.
    pub fn spawn(store: Store) -> StoreHandle {
        let (tx, rx) = mpsc::sync_channel::<Msg>(store.limits.queue.max(16));
        let stats = store.stats.clone();
        let writer_stats = stats.clone();
        let spawned = thread::Builder::new()
            .name("store".into())
            .spawn(move || writer(store, rx, &writer_stats));
        if let Err(e) = spawned {
            error!(error = %e, "cannot start the store thread; nothing will be persisted");
        }
        StoreHandle { tx, stats }
    }

    /// The writer's counters.
    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// Queue a write. When the queue is full this waits for room: the caller (the signalling)
    /// slows down to the store's pace instead of growing the queue.
    pub fn write(&self, op: impl FnOnce(&Store) -> Result<(), StoreError> + Send + 'static) {
        let stats = self.stats.clone();
        let op: Op = Box::new(move |s| {
            if let Err(e) = op(s) {
                stats.op_errors.fetch_add(1, Ordering::Relaxed);
                error!(error = %e, "store write failed");
                return (false, None);
            }
            (true, None)
        });
        let msg = match self.tx.try_send(Msg::Op(op)) {
            Ok(()) => return,
            Err(mpsc::TrySendError::Full(m)) => m,
            Err(mpsc::TrySendError::Disconnected(_)) => {
                warn!("store thread gone; write dropped");
                return;
            }
        };
        self.stats.waits.fetch_add(1, Ordering::Relaxed);
        let send = || self.tx.send(msg).is_ok();
        let sent = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(send)
            }
            _ => send(),
        };
        if !sent {
            warn!("store thread gone; write dropped");
        }
    }

    /// Run a read or write and get its result once its transaction has committed. A full
    /// queue answers [`StoreError::Busy`] at once.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let stats = self.stats.clone();
        let op: Op = Box::new(move |s| {
            let r = f(s);
            let ok = r.is_ok();
            if !ok {
                stats.op_errors.fetch_add(1, Ordering::Relaxed);
            }
            let reply: Reply = Box::new(move |committed: Result<(), StoreError>| {
                let _ = tx.send(match (r, committed) {
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(e),
                    (Ok(v), Ok(())) => Ok(v),
                });
            });
            (ok, Some(reply))
        });
        match self.tx.try_send(Msg::Op(op)) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(_)) => {
                self.stats.busy.fetch_add(1, Ordering::Relaxed);
                return Err(StoreError::Busy);
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(StoreError::Closed),
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Wait until everything queued so far is committed (at most `timeout`).
    pub fn flush_blocking(&self, timeout: Duration) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(timeout);
        }
    }
}

/// How often old history is deleted.
const RETENTION_SWEEP: Duration = Duration::from_secs(3600);

fn writer(store: Store, rx: mpsc::Receiver<Msg>, stats: &StoreStats) {
    let mut next_retention = Instant::now();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 2048 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        if Instant::now() >= next_retention {
            next_retention = Instant::now() + RETENTION_SWEEP;
            match store.prune_old_history(millis(SystemTime::now())) {
                Ok(n) => {
                    stats.history_pruned.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => warn!(error = %e, "history retention failed"),
            }
        }
        run_batch(&store, batch, stats);
    }
}

/// Run a batch in as few transactions as possible. A statement error that ends the
/// transaction (SQLite rolls back on a full disk, for one) or a failed COMMIT fails every
/// operation of that transaction; the writer then starts a new one.
fn run_batch(store: &Store, batch: Vec<Msg>, stats: &StoreStats) {
    let mut replies: Vec<Reply> = Vec::new();
    let mut flushes = Vec::new();
    let fail_all = |replies: &mut Vec<Reply>, why: &str| {
        stats.rollbacks.fetch_add(1, Ordering::Relaxed);
        for r in replies.drain(..) {
            r(Err(StoreError::RolledBack(why.to_owned())));
        }
    };
    let mut open = store.begin().is_ok();
    for m in batch {
        let op = match m {
            Msg::Op(op) => op,
            Msg::Flush(done) => {
                flushes.push(done);
                continue;
            }
        };
        if !open {
            store.rollback();
            open = store.begin().is_ok();
        }
        // Each operation in a savepoint: a failed one leaves nothing half-done behind.
        let savepoint = open && store.conn.execute_batch("SAVEPOINT op").is_ok();
        let (ok, reply) = op(store);
        if savepoint && store.in_transaction() {
            let end = if ok {
                "RELEASE op"
            } else {
                "ROLLBACK TO op; RELEASE op"
            };
            if let Err(e) = store.conn.execute_batch(end) {
                warn!(error = %e, "savepoint not closed");
            }
        }
        if open && !store.in_transaction() {
            // SQLite ended the transaction on an error (SQLITE_FULL, I/O): what ran before
            // in it is gone.
            error!("store transaction rolled back by SQLite; the batch's writes are lost");
            fail_all(
                &mut replies,
                "the transaction was rolled back after an error",
            );
            if let Some(r) = reply {
                r(Err(StoreError::RolledBack(
                    "the transaction was rolled back after an error".into(),
                )));
            }
            open = false;
            continue;
        }
        replies.extend(reply);
    }
    if open {
        match store.commit() {
            Ok(()) => {
                for r in replies.drain(..) {
                    r(Ok(()));
                }
            }
            Err(e) => {
                error!(error = %e, "store commit failed; rolled back");
                store.rollback();
                fail_all(&mut replies, &e.to_string());
            }
        }
    } else {
        fail_all(&mut replies, "no transaction could be started");
    }
    for f in flushes {
        let _ = f.send(());
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
        let update = SettingsUpdate {
            password: Some("pw".into()),
            custom_name: Some("gate".into()),
            trusted_sources: Some("10.0.0.0/24".into()),
            ..SettingsUpdate::default()
        };
        s.save_settings(&row.device_id, &update).unwrap();
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
        assert_eq!(d.trusted_sources.as_deref(), Some("10.0.0.0/24"));
        assert_eq!(d.last_keepalive_at, Some(1000));
        let all = s.items().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1.name.as_deref(), Some("通道一"));
        // Clearing a setting with an empty string.
        let clear = SettingsUpdate {
            password: Some(String::new()),
            ..SettingsUpdate::default()
        };
        s.save_settings(&row.device_id, &clear).unwrap();
        assert_eq!(s.devices().unwrap()[0].password, None);
        assert_eq!(s.devices().unwrap()[0].custom_name.as_deref(), Some("gate"));
    }

    fn with_devices(ids: &[&str]) -> Store {
        let s = Store::in_memory().unwrap();
        for id in ids {
            s.save_registration(&DeviceRow {
                device_id: (*id).into(),
                ..DeviceRow::default()
            })
            .unwrap();
        }
        s
    }

    #[test]
    fn history_and_crash_recovery() {
        let s = with_devices(&["a", "b"]);
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
            let s = Store::open(&dir, StoreLimits::default()).unwrap();
            s.conn.pragma_update(None, "user_version", 99).unwrap();
        }
        assert!(matches!(
            Store::open(&dir, StoreLimits::default()),
            Err(StoreError::TooNew { found: 99, .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nothing_a_device_sends_creates_a_device() {
        let s = Store::in_memory().unwrap();
        let id = "34020000001320000001";
        s.save_info(&DeviceRow {
            device_id: id.into(),
            name: Some("x".into()),
            ..DeviceRow::default()
        })
        .unwrap();
        s.save_catalog(id, &[ItemRow::default()], true, 1).unwrap();
        s.save_keepalives(&[(id.into(), 5)]).unwrap();
        s.add_event(id, 1, "online", None).unwrap();
        assert!(s.devices().unwrap().is_empty());
        assert!(s.items().unwrap().is_empty());
        assert!(s.events(id, 10).unwrap().is_empty());
    }

    #[test]
    fn history_is_cut_per_device_and_by_age() {
        let mut s = with_devices(&["a", "b"]);
        s.limits.history_max_rows = 100;
        for k in 0..1000 {
            s.add_event("a", k, "online", None).unwrap();
        }
        let pruned = s.stats.history_pruned.load(Ordering::Relaxed);
        s.add_event("b", 5, "online", None).unwrap();
        assert!(s.events("a", 10_000).unwrap().len() <= 100 + PRUNE_EVERY as usize);
        assert!(pruned >= 600, "{pruned}");
        assert_eq!(s.events("a", 1).unwrap()[0].at, 999, "the newest are kept");
        s.limits.history_retention = Duration::from_millis(500);
        s.prune_old_history(1000).unwrap();
        assert!(s.events("a", 10_000).unwrap().iter().all(|e| e.at >= 500));
        assert!(s.events("b", 10).unwrap().is_empty());
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("gbstore-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("perm");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = Store::open(&dir, StoreLimits::default()).unwrap();
        s.set_setting("api_token", "secret-token-0123456789")
            .unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        for f in ["gateway.db", "gateway.db-wal", "gateway.db-shm"] {
            let p = dir.join(f);
            if p.exists() {
                assert_eq!(mode(&p), 0o600, "{f}");
            }
        }
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_fails_the_writes_and_loses_nothing_committed() {
        let dir = temp_dir("full");
        let limits = StoreLimits {
            max_size: Some(256 * 1024),
            ..StoreLimits::default()
        };
        let h = StoreHandle::spawn(Store::open(&dir, limits).unwrap());
        let id = "34020000001320000001";
        h.call(move |s| {
            s.save_registration(&DeviceRow {
                device_id: id.into(),
                ..DeviceRow::default()
            })
        })
        .await
        .unwrap();
        let items: Vec<ItemRow> = (0..200)
            .map(|k| ItemRow {
                item_id: format!("item{k}"),
                kind: "channel".into(),
                name: Some("一号楼".repeat(4)),
                ..ItemRow::default()
            })
            .collect();
        let small = items[..200].to_vec();
        h.call(move |s| s.save_catalog(id, &small, true, 1))
            .await
            .unwrap();
        // Catalogs far larger than the cap: refused with the cause, and the write
        // that replaced the catalog leaves the old one in place.
        let big: Vec<ItemRow> = (0..20_000)
            .map(|k| ItemRow {
                item_id: format!("big{k}"),
                kind: "channel".into(),
                name: Some("很长的名字".repeat(20)),
                ..ItemRow::default()
            })
            .collect();
        let err = h
            .call(move |s| s.save_catalog(id, &big, true, 2))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("full"), "{err}");
        // Reads are served, the old catalog is whole, and later small writes go through.
        let n = h.call(|s| s.items()).await.unwrap().len();
        assert_eq!(n, 200);
        h.call(move |s| s.set_setting("after", "ok")).await.unwrap();
        assert_eq!(
            h.call(|s| s.setting("after")).await.unwrap().as_deref(),
            Some("ok")
        );
        assert!(h.stats().op_errors.load(Ordering::Relaxed) >= 1);
        drop(h);
        // Nothing committed is lost across a reopen.
        std::thread::sleep(Duration::from_millis(100));
        let s = Store::open(&dir, limits).unwrap();
        assert_eq!(s.items().unwrap().len(), 200);
        assert_eq!(s.setting("after").unwrap().as_deref(), Some("ok"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_answers_after_its_commit_and_a_failed_commit_rolls_back() {
        let dir = temp_dir("commit");
        let h = StoreHandle::spawn(Store::open(&dir, StoreLimits::default()).unwrap());
        // The answer comes after COMMIT: another connection sees the write at once.
        h.call(|s| s.set_setting("k", "v")).await.unwrap();
        let other = Connection::open(dir.join("gateway.db")).unwrap();
        let seen: String = other
            .query_row("SELECT value FROM settings WHERE key = 'k'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(seen, "v");
        // A COMMIT that fails (a deferred foreign key broken in the batch) rolls back:
        // the caller gets the error, and the writer goes on with a new transaction.
        let err = h
            .call(|s| {
                s.conn.execute_batch(
                    "PRAGMA defer_foreign_keys = ON;
                     INSERT INTO catalog_items(device_id, item_id, position, kind)
                     VALUES ('nobody', 'x', 0, 'channel');",
                )?;
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::RolledBack(_)), "{err}");
        h.call(|s| s.set_setting("k2", "v2")).await.unwrap();
        let seen: String = other
            .query_row("SELECT value FROM settings WHERE key = 'k2'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(seen, "v2");
        assert_eq!(h.stats().rollbacks.load(Ordering::Relaxed), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_queue_is_bounded_calls_get_busy_and_writes_wait() {
        let dir = temp_dir("queue");
        let limits = StoreLimits {
            queue: 16,
            ..StoreLimits::default()
        };
        let h = StoreHandle::spawn(Store::open(&dir, limits).unwrap());
        // The writer is held up for a moment; the queue fills behind it.
        let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
        h.write(move |_| {
            let _ = held_rx.recv_timeout(Duration::from_secs(5));
            Ok(())
        });
        std::thread::sleep(Duration::from_millis(100));
        let mut busy = 0;
        let mut queued = Vec::new();
        for k in 0..40 {
            let h2 = h.clone();
            let call = tokio::spawn(async move {
                h2.call(move |s| s.set_setting(&format!("k{k}"), "v")).await
            });
            tokio::task::yield_now().await;
            queued.push(call);
        }
        // The spawned calls run when a worker gets to them: wait until they filled the queue
        // (16 fit; the rest are refused).
        let filled = Instant::now();
        while h.stats().busy.load(Ordering::Relaxed) < 20 {
            assert!(
                filled.elapsed() < Duration::from_secs(10),
                "the calls never ran"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A write waits for room instead of growing the queue.
        let writer = h.clone();
        let t0 = Instant::now();
        let waiting =
            tokio::task::spawn_blocking(move || writer.write(|s| s.set_setting("w", "1")));
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !waiting.is_finished(),
            "the write waits while the queue is full"
        );
        held_tx.send(()).unwrap();
        waiting.await.unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(200));
        for c in queued {
            match c.await.unwrap() {
                Ok(()) => {}
                Err(StoreError::Busy) => busy += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(busy >= 20, "{busy} of 40 refused while the queue was full");
        assert_eq!(h.stats().busy.load(Ordering::Relaxed), busy);
        assert_eq!(
            h.call(|s| s.setting("w")).await.unwrap().as_deref(),
            Some("1")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
