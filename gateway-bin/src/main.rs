//! `gb28181-gateway`: the server a county platform runs. It registers GB/T 28181 cameras and
//! NVRs, keeps the device registry in SQLite and serves a REST API.

mod api;
mod config;
mod http;
mod lan;
mod live;
mod registry;
mod signalling;
mod store;
mod web;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Parser;
use gb28181::clock::SystemClock;
use gb28181::net::SipServer;
use gb28181::platform::{Platform, PlatformConfig, UnknownDevicePolicy};
use rand::RngCore;
use tracing::{error, info, warn};

use crate::config::{Config, UnknownDevices};
use crate::registry::{DeviceRecord, Registry};
use crate::signalling::Signalling;
use crate::store::{Store, StoreHandle, millis};

/// Descriptors kept free of SIP connections (HTTP, media, WebRTC, the database).
const RESERVED_FDS: u64 = 1024;

/// Raise the soft limit on open files to the hard limit: every TCP device is one descriptor.
/// Returns the limit now in force.
fn raise_nofile_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => Some(n),
        Err(e) => {
            warn!(error = %e, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// GB/T 28181 gateway: device registry, REST API.
#[derive(Debug, Parser)]
#[command(name = "gb28181-gateway", version, about)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (SQLite database, generated credentials). Default: ./data
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// SIP listen address (UDP and TCP). Default: 0.0.0.0:5060
    #[arg(long, value_name = "ADDR:PORT")]
    sip_listen: Option<SocketAddr>,
    /// Address announced in Via/Contact.
    #[arg(long, value_name = "IP")]
    sip_announce_ip: Option<IpAddr>,
    /// HTTP listen address. Default: 0.0.0.0:8080
    #[arg(long, value_name = "ADDR:PORT")]
    http_listen: Option<SocketAddr>,
    /// Platform ID (20 digits).
    #[arg(long, value_name = "ID")]
    sip_id: Option<String>,
    /// SIP domain / realm (default: first 10 digits of the ID).
    #[arg(long, value_name = "DOMAIN")]
    sip_domain: Option<String>,
    /// Global device password.
    #[arg(long, value_name = "PW")]
    sip_password: Option<String>,
    /// API bearer token.
    #[arg(long, value_name = "TOKEN")]
    api_token: Option<String>,
    /// Media port range for RTP from devices, e.g. 30000-30999.
    #[arg(long, value_name = "FIRST-LAST")]
    media_ports: Option<String>,
    /// The one UDP port of WebRTC egress (0: any free port).
    #[arg(long, value_name = "PORT")]
    webrtc_udp_port: Option<u16>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn random_secret(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut raw);
    hex::encode(raw)
}

/// A configured secret, else the one stored at first start, else a new one (stored).
fn secret(
    store: &Store,
    configured: Option<String>,
    key: &str,
    bytes: usize,
) -> Result<(String, bool), Box<dyn std::error::Error>> {
    if let Some(v) = configured {
        return Ok((v, false));
    }
    if let Some(v) = store.setting(key)? {
        return Ok((v, false));
    }
    let v = random_secret(bytes);
    store.set_setting(key, &v)?;
    Ok((v, true))
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    // Take SIGTERM over before anything else, so a stop during start-up is clean too.
    #[cfg(unix)]
    let term = (
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?,
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?,
    );
    let mut cfg = match &cli.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(v) = cli.data_dir {
        cfg.data_dir = Some(v);
    }
    if let Some(v) = cli.sip_listen {
        cfg.sip.listen = v;
    }
    if let Some(v) = cli.sip_announce_ip {
        cfg.sip.announce_ip = Some(v);
    }
    if let Some(v) = cli.http_listen {
        cfg.http.listen = v;
    }
    if let Some(v) = cli.sip_id {
        cfg.sip.id = v;
    }
    if let Some(v) = cli.sip_domain {
        cfg.sip.domain = Some(v);
    }
    if let Some(v) = cli.sip_password {
        cfg.sip.password = Some(v);
    }
    if let Some(v) = cli.api_token {
        cfg.http.api_token = Some(v);
    }
    if let Some(v) = cli.media_ports {
        cfg.media.ports = v;
    }
    if let Some(v) = cli.webrtc_udp_port {
        cfg.webrtc.udp_port = v;
    }
    cfg.validate()?;
    let nofile = raise_nofile_limit();

    let data_dir = cfg
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("data"));
    let store = Store::open(&data_dir, cfg.store.store_limits())
        .map_err(|e| format!("cannot open the store in {}: {e}", data_dir.display()))?;

    let (password, new_password) = secret(&store, cfg.sip.password.clone(), "sip_password", 6)?;
    let (token, new_token) = secret(&store, cfg.http.api_token.clone(), "api_token", 16)?;

    // Known devices are listed at once, offline until they show up.
    let registry = Registry::default();
    let mut items_by_device: std::collections::HashMap<String, Vec<_>> = Default::default();
    for (device, item) in store.items()? {
        items_by_device.entry(device).or_default().push(item);
    }
    let rows = store.devices()?;
    let closed = store.close_open_sessions(millis(SystemTime::now()), "gateway_restart")?;
    if closed > 0 {
        info!(
            devices = closed,
            "recorded devices offline after an unclean stop"
        );
    }
    let mut provisioned = Vec::new();
    for row in rows {
        let items = items_by_device.remove(&row.device_id).unwrap_or_default();
        let record = DeviceRecord::from_row(row, items);
        provisioned.push((record.device_id.clone(), record.settings()));
        registry.insert(record);
    }

    // What to announce where a bind is a wildcard: the default route's interface address.
    let host = lan::HostAddresses::discover();
    let sip_announce = lan::Announce::choose(cfg.sip.announce_ip, cfg.sip.listen.ip(), &host);
    let announce = sip_announce.ip;
    let sip_server = SipServer::bind(cfg.sip.listen)
        .await
        .map_err(|e| format!("cannot bind SIP on {}: {e}", cfg.sip.listen))?;
    let sip_addr = sip_server.local_addr()?;

    let mut pc = PlatformConfig::new(
        &cfg.sip.id,
        &announce.to_string(),
        sip_addr.port(),
        &password,
    );
    pc.domain = cfg.sip.domain();
    pc.unknown_devices = match cfg.sip.unknown_devices {
        UnknownDevices::Accept => UnknownDevicePolicy::Accept,
        UnknownDevices::Reject => UnknownDevicePolicy::Reject,
    };
    pc.keepalive_interval = cfg.sip.keepalive_interval();
    pc.keepalive_max_missed = cfg.sip.keepalive_max_missed;
    pc.default_expires = Duration::from_secs(cfg.sip.default_expires_secs.max(60));
    pc.nonce_ttl = Duration::from_secs(cfg.sip.nonce_ttl_secs.max(10));
    pc.query_timeout = Duration::from_secs(cfg.sip.query_timeout_secs.max(1));
    pc.catalog_page_timeout = Duration::from_secs(cfg.sip.catalog_page_timeout_secs.max(1));
    pc.utc_offset = Duration::from_secs(u64::from(cfg.sip.utc_offset_hours) * 3600);
    pc.auto_query = cfg.sip.auto_query;
    pc.limits = cfg.limits.platform_limits();
    pc.auth = cfg.limits.auth_throttling();
    if let Some(n) = nofile {
        let room = usize::try_from(n.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX);
        if pc.limits.max_tcp_connections > room {
            warn!(
                configured = pc.limits.max_tcp_connections,
                open_file_limit = n,
                "limits.max_tcp_connections lowered to fit the open-file limit"
            );
            pc.limits.max_tcp_connections = room.max(1);
        }
    }
    let mut core = Platform::new(pc, SystemClock);
    for (id, settings) in provisioned {
        core.provision(&id, settings);
    }

    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| warn!(error = %e, "metrics recorder not installed"))
        .ok();

    let store = StoreHandle::spawn(store);
    let (calls_tx, calls_rx) = tokio::sync::mpsc::unbounded_channel();
    let (signalling, sip_task) =
        Signalling::start(sip_server, core, registry.clone(), store.clone(), calls_tx);

    // WebRTC egress: one UDP socket for every viewer.
    let webrtc_bind = SocketAddr::new(cfg.webrtc.bind_ip, cfg.webrtc.udp_port);
    let webrtc_socket = std::net::UdpSocket::bind(webrtc_bind)
        .map_err(|e| format!("cannot bind the WebRTC UDP port {webrtc_bind}: {e}"))?;
    let webrtc_port = webrtc_socket.local_addr()?.port();
    // ICE host candidates: the configured address alone; else the SIP announce address (or
    // the bound one) and, on a wildcard bind, every other LAN address, plus loopback for a
    // browser on this machine.
    let webrtc_first = lan::Announce::choose(
        cfg.webrtc.announce_ip.or(cfg.sip.announce_ip),
        cfg.webrtc.bind_ip,
        &host,
    );
    let (webrtc_candidates, this_host) =
        if cfg.webrtc.announce_ip.is_some() || !cfg.webrtc.bind_ip.is_unspecified() {
            (vec![webrtc_first.ip], Vec::new())
        } else {
            let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
            (
                host.candidates(webrtc_first.ip),
                if webrtc_first.ip == loopback {
                    Vec::new()
                } else {
                    vec![SocketAddr::new(loopback, webrtc_port)]
                },
            )
        };
    let webrtc_addrs: Vec<SocketAddr> = webrtc_candidates
        .iter()
        .map(|ip| SocketAddr::new(*ip, webrtc_port))
        .collect();
    // Bounded: when the WebRTC thread falls behind, a stream's ingest drops access units
    // (and holds its video until a key frame) instead of queueing without limit.
    let (egress_tx, egress_rx) = tokio::sync::mpsc::channel(live::webrtc::EGRESS_QUEUE);
    let (viewer_tx, viewer_rx) = tokio::sync::mpsc::unbounded_channel();
    live::webrtc::spawn(
        webrtc_socket,
        live::webrtc::Candidates {
            all: webrtc_addrs.clone(),
            this_host: this_host.clone(),
        },
        egress_rx,
        viewer_tx,
    )
    .map_err(|e| format!("cannot start the WebRTC thread: {e}"))?;

    // Live streams from devices.
    let media_announce = lan::Announce::choose(
        cfg.media.announce_ip.or(cfg.sip.announce_ip),
        cfg.media.bind_ip,
        &host,
    );
    // A wildcard media bind follows the SIP address when SIP is bound to one address.
    let media_announce = if media_announce.origin != lan::Origin::Configured
        && cfg.media.bind_ip.is_unspecified()
        && !cfg.sip.listen.ip().is_unspecified()
    {
        sip_announce.clone()
    } else {
        media_announce
    };
    let default_transport = cfg.media.transport;
    let (first_port, last_port) = cfg.media.port_range()?;
    let mut rng = rand::rng();
    let hub = live::hub::start(
        live::hub::HubConfig {
            core: live::core::LiveConfig {
                platform_id: cfg.sip.id.clone(),
                announce_ip: media_announce.ip,
                invite_timeout: Duration::from_secs(cfg.media.invite_timeout_secs.max(1)),
                no_media_timeout: Duration::from_secs(cfg.media.no_media_timeout_secs.max(1)),
                stall_timeout: Duration::from_secs(cfg.media.stall_timeout_secs.max(1)),
                linger: Duration::from_secs(cfg.media.linger_secs),
                keyframe_interval: Duration::from_secs(cfg.media.keyframe_request_interval_secs),
                trust_sdp_address: cfg.media.trust_sdp_address,
                keyframe_after_loss: cfg.media.keyframe_after_loss,
                max_ended: 1024,
            },
            bind_ip: cfg.media.bind_ip,
            ssrc_policy: cfg.media.ssrc_policy,
            hold_video_after_loss: cfg.media.hold_video_after_loss,
        },
        // Random starting points: after a restart, a device still sending to the previous
        // session's port with its SSRC does not feed the next session.
        live::pools::PortPool::new(first_port, last_port).starting_at(rng.next_u32()),
        live::pools::SsrcPool::new(&cfg.sip.domain()).starting_at(rng.next_u32()),
        signalling.clone(),
        egress_tx,
        viewer_rx,
        calls_rx,
    );

    let state = api::AppState {
        registry: registry.clone(),
        signalling: signalling.clone(),
        store: store.clone(),
        token: Arc::from(token.as_str()),
        metrics,
        query_wait: Duration::from_secs(cfg.http.query_wait_secs.max(1)),
        live: live::LiveState {
            hub: hub.clone(),
            default_transport,
        },
        token_failures: api::token_throttle(
            cfg.http.auth_max_failures.max(1),
            Duration::from_secs(cfg.http.auth_window_secs.max(1)),
        ),
        cors_origins: cfg.http.cors_origins.clone(),
    };
    let app = api::router(state);
    let listener = tokio::net::TcpListener::bind(cfg.http.listen)
        .await
        .map_err(|e| format!("cannot bind HTTP on {}: {e}", cfg.http.listen))?;
    let http_addr = listener.local_addr()?;

    println!("gb28181-gateway {}", env!("CARGO_PKG_VERSION"));
    println!(
        "  SIP   udp+tcp {sip_addr} (announced as {announce}:{}: {}), platform ID {}, domain {}",
        sip_addr.port(),
        sip_announce.origin,
        cfg.sip.id,
        cfg.sip.domain()
    );
    println!("  HTTP  http://{http_addr}/  (API under /api/v1)");
    println!(
        "  MEDIA {} ports {} (announced as {}: {}), default transport {}",
        cfg.media.bind_ip,
        cfg.media.ports,
        media_announce.ip,
        media_announce.origin,
        default_transport.as_str()
    );
    let listed: Vec<String> = webrtc_addrs.iter().map(ToString::to_string).collect();
    println!(
        "  WEBRTC udp {} (candidates {}{}: {})",
        SocketAddr::new(webrtc_bind.ip(), webrtc_port),
        listed.join(", "),
        if this_host.is_empty() {
            ""
        } else {
            ", and loopback for a browser on this machine"
        },
        webrtc_first.origin
    );
    for (what, a) in [
        ("SIP", &sip_announce),
        ("media", &media_announce),
        ("WebRTC", &webrtc_first),
    ] {
        if a.is_loopback() && a.origin != lan::Origin::Configured {
            println!(
                "  WARNING: {what} announces {}: only this machine can reach it. Set the announce \
                 address, or bind an address devices and browsers reach.",
                a.ip
            );
            warn!(what, ip = %a.ip, "announcing a loopback address: only this machine can reach it");
        }
    }
    println!("  data  {}", data_dir.display());
    // Shown once, on the terminal (never through the log); kept in the data directory.
    if new_password {
        println!("  generated SIP device password: {password}");
    }
    if new_token {
        println!("  generated API token: {token}");
    }
    println!("  devices known: {}", registry.len());
    info!(%sip_addr, %http_addr, "gateway started");

    #[cfg(unix)]
    let stop = shutdown_signal(term);
    #[cfg(not(unix))]
    let stop = shutdown_signal();
    let limits = http::HttpLimits {
        header_read_timeout: Duration::from_secs(cfg.http.header_read_timeout_secs.max(1)),
        max_connections: cfg.http.max_connections.max(1),
        shutdown_grace: Duration::from_secs(cfg.http.shutdown_grace_secs),
    };
    http::serve(listener, app, limits, stop).await;
    info!("shutting down");
    // Every live call gets its BYE while the signalling still runs.
    if tokio::time::timeout(Duration::from_secs(5), hub.shutdown())
        .await
        .is_err()
    {
        warn!("live calls were not all hung up in time");
    }
    signalling.shutdown().await;
    match tokio::time::timeout(Duration::from_secs(10), sip_task).await {
        Ok(Ok(core)) => {
            let now = millis(SystemTime::now());
            let online: Vec<String> = core
                .devices()
                .filter(|d| d.online)
                .map(|d| d.id.clone())
                .collect();
            info!(
                devices = online.len(),
                "recording devices offline at shutdown"
            );
            store.write(move |s| {
                for id in &online {
                    s.add_event(id, now, "offline", Some("gateway_shutdown"))?;
                }
                Ok(())
            });
        }
        Ok(Err(e)) => error!(error = %e, "signalling task failed"),
        Err(_) => warn!("signalling did not stop in time; shutdown events not written"),
    }
    let flush = store.clone();
    let _ =
        tokio::task::spawn_blocking(move || flush.flush_blocking(Duration::from_secs(10))).await;
    info!("stopped");
    Ok(())
}

#[cfg(unix)]
async fn shutdown_signal(
    (mut term, mut int): (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
) {
    tokio::select! {
        _ = int.recv() => {},
        _ = term.recv() => {},
    }
}

#[cfg(not(unix))]
async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
