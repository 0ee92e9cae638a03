//! What the platform core reports to its user.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use crate::manscdp::{CatalogItem, DeviceInfo, DeviceStatus, Manscdp};
use crate::transport::Transport;

use super::{CallEndReason, SessionId};
use bytes::Bytes;

/// Identifies one query the user started (catalog, device info, device status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(pub u64);

/// Why a device went offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineReason {
    /// The device unregistered (`Expires: 0`).
    Unregistered,
    /// The registration expired without a refresh.
    RegistrationExpired,
    /// No keepalive for the configured number of intervals.
    KeepaliveTimeout,
    /// The TCP connection the device registered over closed.
    ConnectionClosed,
    /// The device was removed by the user.
    Removed,
}

impl OfflineReason {
    /// A stable lower-case name for logs, the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            OfflineReason::Unregistered => "unregistered",
            OfflineReason::RegistrationExpired => "registration_expired",
            OfflineReason::KeepaliveTimeout => "keepalive_timeout",
            OfflineReason::ConnectionClosed => "connection_closed",
            OfflineReason::Removed => "removed",
        }
    }
}

impl fmt::Display for OfflineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a registration attempt was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// The digest response did not match the password (403).
    WrongPassword,
    /// The username is not the device ID of the From header (403).
    UsernameMismatch,
    /// The device is not provisioned and the policy rejects unknown devices (403).
    UnknownDevice,
    /// The Authorization header could not be parsed (400).
    BadCredentials(String),
    /// The digest realm is not our domain (403).
    RealmMismatch,
    /// The digest URI is not the Request-URI (403).
    UriMismatch,
    /// Refused without evaluation: too many failures of this device ID or address (403 with
    /// `Retry-After`).
    Throttled {
        /// When attempts are evaluated again.
        retry_after: Duration,
    },
    /// The device table is full ([`super::Limits::max_devices`], 503).
    TooManyDevices,
}

impl AuthFailure {
    /// A stable lower-case name for logs and the API.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthFailure::WrongPassword => "wrong_password",
            AuthFailure::UsernameMismatch => "username_mismatch",
            AuthFailure::UnknownDevice => "unknown_device",
            AuthFailure::BadCredentials(_) => "bad_credentials",
            AuthFailure::RealmMismatch => "realm_mismatch",
            AuthFailure::UriMismatch => "uri_mismatch",
            AuthFailure::Throttled { .. } => "throttled",
            AuthFailure::TooManyDevices => "too_many_devices",
        }
    }
}

/// Why a query did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryError {
    /// The device never answered the MESSAGE (transaction timeout).
    NoAnswer,
    /// The device answered the MESSAGE with this error status.
    Rejected(u16),
    /// The device accepted the query but its Response did not arrive in time.
    Timeout,
    /// The device went offline or its connection closed while the query was open.
    DeviceGone,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::NoAnswer => f.write_str("the device did not answer the query"),
            QueryError::Rejected(s) => write!(f, "the device rejected the query with {s}"),
            QueryError::Timeout => f.write_str("the device did not send its response in time"),
            QueryError::DeviceGone => f.write_str("the device went offline"),
        }
    }
}

/// A completed catalog: every item collected for one SN.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogResult {
    /// `SumNum` announced by the device.
    pub sum_num: u32,
    /// The distinct items received (duplicates dropped, arrival order kept).
    pub items: Vec<CatalogItem>,
    /// False when the collection ended on the timeout before `sum_num` items arrived.
    pub complete: bool,
    /// Number of Response messages received.
    pub pages: u32,
}

/// Events from [`super::Platform`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PlatformEvent {
    /// A device registered or refreshed its registration.
    Registered {
        /// Device ID.
        device_id: String,
        /// Transport it registered over.
        transport: Transport,
        /// Its source address (what we send to).
        remote: SocketAddr,
        /// Its Contact URI.
        contact: Option<String>,
        /// `X-GB-ver` it sent (2.0 = 2016, 3.0 = 2022).
        gb_version: Option<String>,
        /// Its User-Agent.
        user_agent: Option<String>,
        /// Registration lifetime granted.
        expires: Duration,
        /// True for a refresh of a live registration.
        refresh: bool,
        /// When.
        at: SystemTime,
    },
    /// A device came online (registered, or resumed keepalives).
    Online {
        /// Device ID.
        device_id: String,
        /// When.
        at: SystemTime,
    },
    /// A device went offline.
    Offline {
        /// Device ID.
        device_id: String,
        /// Why.
        reason: OfflineReason,
        /// When.
        at: SystemTime,
    },
    /// A keepalive arrived.
    Keepalive {
        /// Device ID.
        device_id: String,
        /// When.
        at: SystemTime,
    },
    /// A registration attempt was refused.
    AuthFailed {
        /// The device ID the request claimed.
        device_id: String,
        /// Its source.
        remote: SocketAddr,
        /// Why.
        reason: AuthFailure,
    },
    /// Answer to [`super::Platform::query_device_info`].
    DeviceInfo {
        /// The query.
        query: QueryId,
        /// Device ID.
        device_id: String,
        /// The answer.
        info: DeviceInfo,
    },
    /// Answer to [`super::Platform::query_device_status`].
    DeviceStatus {
        /// The query.
        query: QueryId,
        /// Device ID.
        device_id: String,
        /// The answer.
        status: DeviceStatus,
    },
    /// A catalog was collected, either for a query or sent by the device on its own.
    Catalog {
        /// The query, when this answers one.
        query: Option<QueryId>,
        /// Device ID.
        device_id: String,
        /// The collected catalog.
        result: CatalogResult,
    },
    /// A query failed.
    QueryFailed {
        /// The query.
        query: QueryId,
        /// Device ID.
        device_id: String,
        /// Why.
        error: QueryError,
    },
    /// A provisional response (180 …) to an INVITE.
    CallProgress {
        /// The session.
        session: SessionId,
        /// Status code.
        status: u16,
    },
    /// The device answered an INVITE with 200; the ACK is already sent.
    CallAnswered {
        /// The session.
        session: SessionId,
        /// The device's SDP answer.
        sdp: Bytes,
    },
    /// The INVITE failed (error response, no answer, device gone, cancelled).
    CallFailed {
        /// The session.
        session: SessionId,
        /// The final status, `None` when the device never answered.
        status: Option<u16>,
        /// Reason phrase or explanation.
        reason: String,
    },
    /// An answered session ended.
    CallEnded {
        /// The session.
        session: SessionId,
        /// Why.
        reason: CallEndReason,
    },
    /// A MANSCDP message this core does not handle itself (alarms, media status, …).
    Message {
        /// Device ID (From user).
        device_id: String,
        /// The parsed body.
        message: Box<Manscdp>,
    },
}
