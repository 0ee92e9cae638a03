//! A UDP relay that adds what a real network does to a media stream: jitter, and with it
//! reordering (each datagram waits a random time, so datagrams sent close together overtake
//! each other). Loss is left to the kernel (an nftables `numgen random` rule), which this
//! kernel offers where it has no netem.
//!
//! Port `listen + i` is relayed to `to + i` for `i` in `0..ports`, sent from `from + i` (a
//! fixed source port per stream, below the ephemeral range, so that firewall rules can tell
//! the relayed packets from the sender's own).
//!
//! ```text
//! udp-impair --listen 0.0.0.0:21000 --to 10.0.0.1:40000 --from 10.0.0.2:20000 --ports 10 \
//!     --jitter-ms 20 --seed 7
//! ```
//!
//! Runs until killed; every queue is bounded (`--max-queue` datagrams per port, extra
//! datagrams are dropped and counted). Prints its counters on SIGTERM/SIGINT.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;
use tokio::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "UDP relay with jitter and reordering, for network tests")]
struct Args {
    /// First port to listen on (with its address).
    #[arg(long)]
    listen: SocketAddr,
    /// First destination.
    #[arg(long)]
    to: SocketAddr,
    /// First source address to send from.
    #[arg(long)]
    from: SocketAddr,
    /// How many consecutive ports.
    #[arg(long, default_value_t = 1)]
    ports: u16,
    /// Each datagram is delayed by a uniform 0..=jitter milliseconds.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Random seed (runs repeat).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Datagrams waiting per port at most.
    #[arg(long, default_value_t = 4096)]
    max_queue: usize,
}

#[derive(Default)]
struct Counters {
    relayed: AtomicU64,
    overflow: AtomicU64,
    reordered: AtomicU64,
}

fn offset(a: SocketAddr, i: u16) -> SocketAddr {
    SocketAddr::new(a.ip(), a.port() + i)
}

async fn relay(
    listen: UdpSocket,
    send: UdpSocket,
    to: SocketAddr,
    jitter: Duration,
    seed: u64,
    max_queue: usize,
    counters: Arc<Counters>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    // (due, arrival order) → datagram; the order number keeps equal dues in arrival order.
    let mut queue: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>> = BinaryHeap::new();
    let mut n = 0u64;
    let mut last_sent = 0u64;
    let mut buf = vec![0u8; 65_536];
    loop {
        let next = queue.peek().map(|Reverse((t, _, _))| *t);
        tokio::select! {
            r = listen.recv_from(&mut buf) => {
                let Ok((len, _)) = r else { continue };
                if queue.len() >= max_queue {
                    counters.overflow.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let wait = if jitter.is_zero() {
                    Duration::ZERO
                } else {
                    jitter.mul_f64(rng.random::<f64>())
                };
                n += 1;
                queue.push(Reverse((Instant::now() + wait, n, buf[..len].to_vec())));
            }
            () = sleep_until(next) => {
                let now = Instant::now();
                while let Some(Reverse((t, _, _))) = queue.peek() {
                    if *t > now {
                        break;
                    }
                    let Some(Reverse((_, k, d))) = queue.pop() else { break };
                    if k < last_sent {
                        counters.reordered.fetch_add(1, Ordering::Relaxed);
                    }
                    last_sent = last_sent.max(k);
                    let _ = send.send_to(&d, to).await;
                    counters.relayed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let counters = Arc::new(Counters::default());
    for i in 0..args.ports {
        let listen = UdpSocket::bind(offset(args.listen, i))
            .await
            .unwrap_or_else(|e| panic!("bind {}: {e}", offset(args.listen, i)));
        let send = UdpSocket::bind(offset(args.from, i))
            .await
            .unwrap_or_else(|e| panic!("bind {}: {e}", offset(args.from, i)));
        tokio::spawn(relay(
            listen,
            send,
            offset(args.to, i),
            Duration::from_millis(args.jitter_ms),
            args.seed.wrapping_add(u64::from(i)),
            args.max_queue,
            counters.clone(),
        ));
    }
    println!("relaying");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    println!(
        "relayed {} reordered {} overflow {}",
        counters.relayed.load(Ordering::Relaxed),
        counters.reordered.load(Ordering::Relaxed),
        counters.overflow.load(Ordering::Relaxed)
    );
}
