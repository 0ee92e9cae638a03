//! A GB/T 28181 (2016 and 2022) signalling stack.
//!
//! Layers, bottom up, each usable on its own:
//!
//! - [`sip`]: our own SIP message codec (RFC 3261 grammar, compact headers, folded lines,
//!   streaming framing for TCP).
//! - [`transaction`]: RFC 3261 §17 client and server transactions as sans-IO state machines.
//! - [`digest`]: HTTP digest (MD5) authentication for REGISTER.
//! - [`manscdp`]: MANSCDP XML bodies (Keepalive, Catalog, DeviceInfo, DeviceStatus, …) with
//!   GB2312/GBK/GB18030 handling.
//! - [`sdp`]: GB SDP for INVITE (`y=` SSRC, `f=`, `a=setup`, sub-streams).
//! - [`id`]: 20-digit device and channel IDs (Annex E).
//! - [`platform`]: the platform (server) role: registrar, keepalive, device queries, catalog
//!   collection, as a sans-IO core.
//! - [`device`]: the device role: registration, keepalive and query answers, used by simulators
//!   and for cascading to an upper platform.
//! - [`ua`]: request/response building shared by both roles, RFC 3581 Via stamping, GB dates.
//! - [`clock`]: wall-clock time injected into the cores (system clock or a manual one).
//! - [`throttle`]: failure throttling with growing back-off (digest and API failures).
//! - `net` (feature `tokio`): a UDP + TCP transport shell that drives a sans-IO core.

#![warn(missing_docs)]

pub mod clock;
pub mod device;
pub mod digest;
pub mod id;
pub mod manscdp;
#[cfg(feature = "tokio")]
pub mod net;
pub mod platform;
pub mod sdp;
pub mod sip;
pub mod throttle;
pub mod transaction;
pub mod transport;
pub mod ua;
