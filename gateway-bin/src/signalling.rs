//! The signalling service: runs the `gb28181` platform core on the SIP sockets, turns its
//! events into registry updates and store writes, and answers API queries.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gb28181::manscdp::{DeviceInfo, DeviceStatus};
use gb28181::net::{Handle, Shell, SipServer};
use gb28181::platform::{
    CatalogResult, CommandError, DeviceSettings, InviteParams, Lockouts, Platform, PlatformEvent,
    PlatformStats, QueryError, QueryId, SessionId,
};
use tokio::sync::{mpsc, oneshot};

use crate::live::hub::LiveError;
use tracing::{debug, info};

use crate::registry::{Registry, item_row};
use crate::store::{DeviceRow, StoreHandle, millis};

/// What a query produced.
#[derive(Debug, Clone)]
pub enum QueryOutcome {
    /// A catalog.
    Catalog(CatalogResult),
    /// DeviceInfo.
    Info(DeviceInfo),
    /// DeviceStatus.
    Status(DeviceStatus),
    /// The device did not deliver.
    Failed(QueryError),
}

/// Why a query could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryFailure {
    /// The device is unknown.
    #[error("device {0} is unknown")]
    UnknownDevice(String),
    /// The device is offline.
    #[error("device {0} is offline")]
    Offline(String),
    /// Too many queries are open; try again later.
    #[error("too many open queries ({0})")]
    Busy(&'static str),
    /// The device did not answer in time.
    #[error("{0}")]
    Device(QueryError),
    /// The wait ran out.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The signalling task stopped.
    #[error("the signalling service stopped")]
    Stopped,
    /// The platform refused the command for another reason.
    #[error("the query was refused: {0}")]
    Refused(CommandError),
}

/// Callers waiting for a query's outcome (several when a query joined an open one).
type Waiters = Arc<Mutex<HashMap<QueryId, Vec<oneshot::Sender<QueryOutcome>>>>>;

/// What the security view shows: refusals and lockouts of the signalling core.
#[derive(Debug, Clone)]
pub struct SecuritySnapshot {
    /// Sources refused for claiming a device they are not, with counts.
    pub refused_sources: Vec<(IpAddr, u64)>,
    /// Sources of digest failures, with counts.
    pub auth_failure_sources: Vec<(IpAddr, u64)>,
    /// What the digest throttles hold locked now.
    pub lockouts: Lockouts,
    /// The core's counters.
    pub stats: PlatformStats,
    /// Live (client, server) transactions and TCP connections.
    pub load: (usize, usize, usize),
}

/// Which query to run.
#[derive(Debug, Clone, Copy)]
pub enum QueryKind {
    /// Catalog.
    Catalog,
    /// DeviceInfo.
    Info,
    /// DeviceStatus.
    Status,
}

/// A handle the API uses to talk to the platform core.
#[derive(Clone)]
pub struct Signalling {
    handle: Handle<Platform>,
    waiters: Waiters,
}

impl Signalling {
    /// Start the platform core on `server`. Returns the service handle and the task.
    pub fn start(
        server: SipServer,
        core: Platform,
        registry: Registry,
        store: StoreHandle,
        calls: mpsc::UnboundedSender<PlatformEvent>,
    ) -> (Signalling, tokio::task::JoinHandle<Platform>) {
        let (shell, handle) = Shell::new(server, core);
        let waiters: Waiters = Arc::default();
        let mut sink = EventSink {
            registry,
            store,
            waiters: waiters.clone(),
            calls,
            keepalives: HashMap::new(),
            next_keepalive_flush: Instant::now() + KEEPALIVE_FLUSH,
        };
        let task = tokio::spawn(shell.run(move |core: &mut Platform, now| {
            while let Some(ev) = core.poll_event() {
                sink.handle(ev);
            }
            sink.flush_keepalives(now, false);
        }));
        (Signalling { handle, waiters }, task)
    }

    /// Run a query and wait up to `wait` for its outcome.
    pub async fn query(
        &self,
        device_id: &str,
        kind: QueryKind,
        wait: Duration,
    ) -> Result<QueryOutcome, QueryFailure> {
        let (tx, rx) = oneshot::channel();
        let waiters = self.waiters.clone();
        let id = device_id.to_owned();
        let started = self
            .handle
            .call(move |core: &mut Platform, now| {
                let r = match kind {
                    QueryKind::Catalog => core.query_catalog(now, &id),
                    QueryKind::Info => core.query_device_info(now, &id),
                    QueryKind::Status => core.query_device_status(now, &id),
                };
                if let Ok(q) = &r
                    && let Ok(mut w) = waiters.lock()
                {
                    w.entry(*q).or_default().push(tx);
                }
                r
            })
            .await
            .ok_or(QueryFailure::Stopped)?;
        let query = match started {
            Ok(q) => q,
            Err(CommandError::UnknownDevice(d)) => return Err(QueryFailure::UnknownDevice(d)),
            Err(CommandError::Offline(d)) => return Err(QueryFailure::Offline(d)),
            Err(CommandError::Busy(limit)) => return Err(QueryFailure::Busy(limit.as_str())),
            Err(other) => return Err(QueryFailure::Refused(other)),
        };
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(QueryOutcome::Failed(e))) => Err(QueryFailure::Device(e)),
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(QueryFailure::Stopped),
            Err(_) => {
                if let Ok(mut w) = self.waiters.lock()
                    && let Some(list) = w.get_mut(&query)
                {
                    list.retain(|tx| !tx.is_closed());
                    if list.is_empty() {
                        w.remove(&query);
                    }
                }
                Err(QueryFailure::Timeout(wait))
            }
        }
    }

    /// Send an INVITE.
    pub async fn invite(&self, params: InviteParams) -> Result<SessionId, LiveError> {
        let r = self
            .handle
            .call(move |core: &mut Platform, now| core.invite(now, params))
            .await
            .ok_or(LiveError::Stopped)?;
        r.map_err(|e| match e {
            CommandError::UnknownDevice(d) => LiveError::UnknownDevice(d),
            CommandError::Offline(d) => LiveError::Offline(d),
            CommandError::Busy(limit) => {
                LiveError::Refused(format!("gateway busy ({})", limit.as_str()))
            }
            other => LiveError::Refused(other.to_string()),
        })
    }

    /// End a session (BYE or CANCEL).
    pub async fn hangup(&self, session: SessionId) {
        let _ = self
            .handle
            .call(move |core: &mut Platform, now| core.hangup(now, session))
            .await;
    }

    /// Ask a channel for a key frame.
    pub async fn request_keyframe(&self, device_id: String, channel_id: String) {
        let r = self
            .handle
            .call(move |core: &mut Platform, now| {
                core.request_keyframe(now, &device_id, &channel_id)
            })
            .await;
        if let Some(Err(e)) = r {
            info!(error = %e, "key frame request not sent");
        }
    }

    /// Refusals, lockouts and load of the core, for the security view.
    pub async fn security(&self) -> Option<SecuritySnapshot> {
        self.handle
            .call(|core: &mut Platform, now| SecuritySnapshot {
                refused_sources: core.refused_sources(),
                auth_failure_sources: core.auth_failure_sources(),
                lockouts: core.auth_lockouts(now),
                stats: core.stats().clone(),
                load: core.load(),
            })
            .await
    }

    /// The shell's counters (connections it closed on its own).
    pub fn shell_stats(&self) -> &gb28181::net::ShellStats {
        self.handle.stats()
    }

    /// Provision a device in the core.
    pub async fn provision(&self, device_id: String, settings: DeviceSettings) -> bool {
        self.handle
            .call(move |core: &mut Platform, _| core.provision(&device_id, settings))
            .await
            .is_some()
    }

    /// Remove a device from the core.
    pub async fn remove(&self, device_id: String) -> bool {
        self.handle
            .call(move |core: &mut Platform, now| core.remove_device(now, &device_id))
            .await
            .unwrap_or(false)
    }

    /// Stop the core.
    pub async fn shutdown(&self) {
        self.handle.shutdown().await;
    }
}

/// Keepalives are written to the store at most this often (the registry has them at once).
const KEEPALIVE_FLUSH: Duration = Duration::from_secs(5);

struct EventSink {
    registry: Registry,
    store: StoreHandle,
    waiters: Waiters,
    calls: mpsc::UnboundedSender<PlatformEvent>,
    /// Last keepalive per device since the last write.
    keepalives: HashMap<String, i64>,
    next_keepalive_flush: Instant,
}

impl EventSink {
    fn resolve(&self, query: QueryId, outcome: QueryOutcome) {
        let waiters = self.waiters.lock().ok().and_then(|mut w| w.remove(&query));
        let mut waiters = waiters.unwrap_or_default();
        if let Some(last) = waiters.pop() {
            for tx in waiters {
                let _ = tx.send(outcome.clone());
            }
            let _ = last.send(outcome);
        }
    }

    /// Write the keepalives seen since the last write, as one operation (10,000 devices'
    /// keepalives a second would otherwise be 10,000 writes a second).
    fn flush_keepalives(&mut self, now: Instant, force: bool) {
        if self.keepalives.is_empty() || (!force && now < self.next_keepalive_flush) {
            return;
        }
        self.next_keepalive_flush = now + KEEPALIVE_FLUSH;
        let seen: Vec<(String, i64)> = self.keepalives.drain().collect();
        self.store.write(move |s| s.save_keepalives(&seen));
    }

    /// Each event's store write is queued before the registry shows it: a reader that sees
    /// a change in the API and then reads from the store (queued after it, answered after
    /// its commit) finds it stored.
    fn handle(&mut self, ev: PlatformEvent) {
        match ev {
            PlatformEvent::Registered {
                device_id,
                transport,
                remote,
                gb_version,
                user_agent,
                expires,
                at,
                ..
            } => {
                let row = DeviceRow {
                    device_id: device_id.clone(),
                    transport: Some(transport.name().to_owned()),
                    remote_addr: Some(remote.to_string()),
                    gb_version: gb_version.clone(),
                    user_agent: user_agent.clone(),
                    registered_at: Some(millis(at)),
                    expires_at: Some(millis(at + expires)),
                    ..DeviceRow::default()
                };
                let stored = row.clone();
                self.store.write(move |s| s.save_registration(&stored));
                self.registry.update(&device_id, |r| {
                    r.registered = true;
                    r.transport = row.transport.clone();
                    r.remote_addr = row.remote_addr.clone();
                    if gb_version.is_some() {
                        r.gb_version = gb_version;
                    }
                    if user_agent.is_some() {
                        r.user_agent = user_agent;
                    }
                    r.registered_at = Some(at);
                    r.expires_at = Some(at + expires);
                    r.last_keepalive_at.get_or_insert(at);
                });
            }
            PlatformEvent::Online { device_id, at } => {
                metrics::counter!("device_online_transitions_total").increment(1);
                let id = device_id.clone();
                self.store
                    .write(move |s| s.add_event(&id, millis(at), "online", None));
                self.registry
                    .update_existing(&device_id, |r| r.online = true);
            }
            PlatformEvent::Offline {
                device_id,
                reason,
                at,
            } => {
                info!(%device_id, %reason, "device offline");
                metrics::counter!("device_offline_transitions_total", "reason" => reason.as_str())
                    .increment(1);
                let still_registered = reason == gb28181::platform::OfflineReason::KeepaliveTimeout;
                let id = device_id.clone();
                self.store
                    .write(move |s| s.add_event(&id, millis(at), "offline", Some(reason.as_str())));
                self.registry.update_existing(&device_id, |r| {
                    r.online = false;
                    r.registered = still_registered;
                });
            }
            PlatformEvent::Keepalive { device_id, at } => {
                self.registry
                    .update_existing(&device_id, |r| r.last_keepalive_at = Some(at));
                self.keepalives.insert(device_id, millis(at));
            }
            PlatformEvent::AuthFailed {
                device_id,
                remote,
                reason,
            } => {
                // The core logs failures itself, summarised; one line per attempt would let
                // a flood flood the log.
                debug!(%device_id, %remote, reason = reason.as_str(), "registration refused");
            }
            PlatformEvent::DeviceInfo {
                query,
                device_id,
                info,
            } => {
                let row = DeviceRow {
                    device_id: device_id.clone(),
                    name: info.device_name.clone(),
                    manufacturer: info.manufacturer.clone(),
                    model: info.model.clone(),
                    firmware: info.firmware.clone(),
                    ..DeviceRow::default()
                };
                let stored = row.clone();
                self.store.write(move |s| s.save_info(&stored));
                self.registry.update_existing(&device_id, |r| {
                    r.name = row.name;
                    r.manufacturer = row.manufacturer;
                    r.model = row.model;
                    r.firmware = row.firmware;
                });
                self.resolve(query, QueryOutcome::Info(info));
            }
            PlatformEvent::DeviceStatus { query, status, .. } => {
                self.resolve(query, QueryOutcome::Status(status));
            }
            PlatformEvent::Catalog {
                query,
                device_id,
                result,
            } => {
                let mut items: Vec<_> = result.items.iter().map(item_row).collect();
                let complete = result.complete;
                if !complete {
                    // A partial catalog never deletes what a complete one listed: merge.
                    if let Some(old) = self.registry.get(&device_id)
                        && !old.items.is_empty()
                    {
                        let mut merged: Vec<_> = old.items.as_ref().clone();
                        let mut index: HashMap<String, usize> = merged
                            .iter()
                            .enumerate()
                            .map(|(i, m)| (m.item_id.clone(), i))
                            .collect();
                        for it in items {
                            match index.get(&it.item_id) {
                                Some(&i) => merged[i] = it,
                                None => {
                                    index.insert(it.item_id.clone(), merged.len());
                                    merged.push(it);
                                }
                            }
                        }
                        items = merged;
                    }
                }
                let at = std::time::SystemTime::now();
                debug!(%device_id, items = items.len(), complete, "catalog stored");
                let shared = Arc::new(items);
                let for_store = shared.clone();
                let id = device_id.clone();
                self.store
                    .write(move |s| s.save_catalog(&id, &for_store, complete, millis(at)));
                self.registry.update_existing(&device_id, |r| {
                    r.items = shared;
                    r.catalog_complete = Some(complete);
                    r.catalog_updated_at = Some(at);
                });
                if let Some(q) = query {
                    self.resolve(q, QueryOutcome::Catalog(result));
                }
            }
            PlatformEvent::QueryFailed {
                query,
                device_id,
                error,
            } => {
                info!(%device_id, %error, "query failed");
                self.resolve(query, QueryOutcome::Failed(error));
            }
            PlatformEvent::Message { device_id, message } => {
                info!(%device_id, cmd_type = %message.cmd_type.as_str(), "device message");
            }
            ev @ (PlatformEvent::CallProgress { .. }
            | PlatformEvent::CallAnswered { .. }
            | PlatformEvent::CallFailed { .. }
            | PlatformEvent::CallEnded { .. }) => {
                let _ = self.calls.send(ev);
            }
            other => debug!(event = ?other, "platform event not handled"),
        }
    }
}
