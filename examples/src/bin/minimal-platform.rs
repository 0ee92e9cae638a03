//! A minimal GB/T 28181 platform built from the `gb28181` crate alone: it accepts device
//! registrations (digest, global password), tracks keepalives, and prints each device's
//! catalog when it arrives. No gateway, no database.
//!
//! ```text
//! cargo run -p gb28181-examples --bin minimal-platform -- 127.0.0.1:5060 12345678
//! cargo run -p gb28181-examples --bin gb28181-sim -- --server 127.0.0.1:5060 --kind nvr
//! ```

use gb28181::clock::SystemClock;
use gb28181::net::{Shell, SipServer};
use gb28181::platform::{Platform, PlatformConfig, PlatformEvent};
use std::net::SocketAddr;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| "127.0.0.1:5060".parse().expect("literal address"));
    let password = args.next().unwrap_or_else(|| "12345678".into());

    let server = SipServer::bind(listen).await?;
    let addr = server.local_addr()?;
    // Announce the address devices reach us on (here: the listen address).
    let config = PlatformConfig::new(
        "34020000002000000001",
        &addr.ip().to_string(),
        addr.port(),
        &password,
    );
    let core = Platform::new(config, SystemClock);
    let (shell, handle) = Shell::new(server, core);
    println!("platform 34020000002000000001 listening on udp+tcp {addr}");

    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        handle.shutdown().await;
    });
    shell
        .run(|core: &mut Platform, _now| {
            while let Some(event) = core.poll_event() {
                match event {
                    PlatformEvent::Online { device_id, .. } => println!("{device_id} online"),
                    PlatformEvent::Offline {
                        device_id, reason, ..
                    } => println!("{device_id} offline ({reason})"),
                    PlatformEvent::DeviceInfo {
                        device_id, info, ..
                    } => println!(
                        "{device_id}: {} {} {}",
                        info.manufacturer.unwrap_or_default(),
                        info.model.unwrap_or_default(),
                        info.firmware.unwrap_or_default()
                    ),
                    PlatformEvent::Catalog {
                        device_id, result, ..
                    } => {
                        println!(
                            "{device_id}: catalog of {} item(s){}",
                            result.items.len(),
                            if result.complete { "" } else { " (incomplete)" }
                        );
                        for item in &result.items {
                            println!(
                                "  {} {} [{}]",
                                item.device_id,
                                item.name.as_deref().unwrap_or("-"),
                                item.status.as_deref().unwrap_or("?")
                            );
                        }
                    }
                    _ => {}
                }
            }
        })
        .await;
    Ok(())
}
