//! whep-load: N WebRTC viewers in one process against a WHEP endpoint (draft-ietf-wish-whep),
//! reporting what each received.
//!
//! ```text
//! whep-load --url http://127.0.0.1:8080/whep/1 --token bench --peers 100 --seconds 20
//! ```
//!
//! Each peer is a str0m client in RTP mode (no depacketization, so that the load generator
//! stays cheap) with its own UDP socket on `--bind` (one address per viewer, as browsers
//! have). It POSTs a recvonly H.264 (and with `--audio` PCMA) offer with `Authorization:
//! Bearer`, applies the `201 Created` answer, counts RTP packets, payload bytes, frames
//! (marker bits) and losses (gaps in the extended sequence numbers, RFC 3550 A.3), and DELETEs
//! its `Location` when done. Peers start at `--ramp` per second; everything stops after
//! `--seconds`. The last line is machine-readable: `RESULT peers=… connected=… packets=…`.

use clap::Parser;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

#[derive(Parser, Debug, Clone)]
#[command(about = "WHEP load generator: many str0m viewers in one process")]
struct Args {
    /// WHEP endpoint, `http://host:port/path`.
    #[arg(long)]
    url: String,
    /// Bearer token.
    #[arg(long, default_value = "bench")]
    token: String,
    /// Number of viewers (at most 5000).
    #[arg(long, default_value_t = 10)]
    peers: usize,
    /// How long each run lasts, seconds from the first POST (at most 3600).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Viewers started per second.
    #[arg(long, default_value_t = 100)]
    ramp: u32,
    /// Local address for the viewers' sockets.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Also offer audio (PCMA/PCMU).
    #[arg(long)]
    audio: bool,
    /// Print one line per viewer.
    #[arg(long)]
    per_peer: bool,
    /// A file of WHEP paths on the `--url` host, one per line: viewer `i` uses line `i`
    /// (modulo their count), so that many streams get a viewer each.
    #[arg(long)]
    paths: Option<std::path::PathBuf>,
}

/// What one viewer saw.
#[derive(Debug, Default, Clone)]
struct PeerReport {
    error: Option<String>,
    connect_ms: Option<u64>,
    packets: u64,
    bytes: u64,
    frames: u64,
    lost: u64,
    first_seq: Option<u64>,
    max_seq: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = Args::parse();
    args.peers = args.peers.min(5000);
    args.seconds = args.seconds.min(3600);
    let target = HttpTarget::parse(&args.url)?;
    let paths: Arc<Vec<String>> = Arc::new(match &args.paths {
        Some(f) => std::fs::read_to_string(f)?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        None => vec![target.path.clone()],
    });
    if paths.is_empty() {
        return Err("--paths names no path".into());
    }
    let args = Arc::new(args);
    let target = Arc::new(target);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.seconds);
    // SIGTERM ends the run early; every viewer still reports and DELETEs its session.
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        term.recv().await;
        let _ = stop_tx.send(true);
    });
    let mut tasks = Vec::with_capacity(args.peers);
    let gap = Duration::from_secs(1) / args.ramp.max(1);
    for i in 0..args.peers {
        tokio::time::sleep_until(start + gap * i as u32).await;
        if *stop.borrow() {
            break;
        }
        let (args, target, mut stop) = (args.clone(), target.clone(), stop.clone());
        let path = paths[i % paths.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut report = PeerReport::default();
            let run = run_peer(&args, &target, &path, deadline, &mut stop, &mut report);
            if let Err(e) = run.await {
                report.error = Some(e.to_string());
            }
            report
        }));
    }
    let mut reports = Vec::with_capacity(tasks.len());
    for t in tasks {
        reports.push(t.await.unwrap_or_else(|e| PeerReport {
            error: Some(e.to_string()),
            ..Default::default()
        }));
    }
    print_report(&args, &reports, start.elapsed());
    Ok(())
}

async fn run_peer(
    args: &Args,
    target: &HttpTarget,
    path: &str,
    deadline: Instant,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    report: &mut PeerReport,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let sock = UdpSocket::bind(SocketAddr::new(args.bind, 0)).await?;
    let local = sock.local_addr()?;
    let begun = Instant::now();
    let mut rtc = Rtc::builder()
        .set_rtp_mode(true)
        .enable_h265(false)
        .enable_pcma(args.audio, false)
        .enable_pcmu(args.audio, false)
        .build(begun.into_std());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    if args.audio {
        change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    }
    let (offer, pending) = change.apply().ok_or("no offer")?;
    let (status, location, body) = target
        .request("POST", path, &args.token, Some(&offer.to_sdp_string()))
        .await?;
    if status != 201 {
        return Err(format!("POST answered {status}: {}", body.trim()).into());
    }
    let answer = SdpAnswer::from_sdp_string(&body)?;
    rtc.sdp_api().accept_answer(pending, answer)?;

    let mut buf = vec![0u8; 2048];
    loop {
        let timeout = drain(&mut rtc, &sock, report, begun)?;
        let wake = Instant::from_std(timeout).min(deadline);
        let input = tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let (n, from) = r?;
                Some((n, from))
            }
            _ = tokio::time::sleep_until(wake) => None,
            _ = stop.changed() => break,
        };
        let now = Instant::now();
        if now >= deadline || *stop.borrow() {
            break;
        }
        match input {
            Some((n, from)) => {
                if let Ok(r) = Receive::new(Protocol::Udp, from, local, &buf[..n]) {
                    rtc.handle_input(Input::Receive(now.into_std(), r))?;
                    drain(&mut rtc, &sock, report, begun)?;
                }
                // Drain what else is queued without waking the runtime again.
                while let Ok((n, from)) = sock.try_recv_from(&mut buf) {
                    if let Ok(r) = Receive::new(Protocol::Udp, from, local, &buf[..n]) {
                        rtc.handle_input(Input::Receive(now.into_std(), r))?;
                        drain(&mut rtc, &sock, report, begun)?;
                    }
                }
            }
            None => rtc.handle_input(Input::Timeout(now.into_std()))?,
        }
    }
    if let Some(first) = report.first_seq {
        let expected = report.max_seq - first + 1;
        report.lost = expected.saturating_sub(report.packets);
    }
    if let Some(loc) = location {
        let _ = target.request("DELETE", &loc, &args.token, None).await;
    }
    Ok(())
}

/// Polls output to the next timeout: events counted, transmits sent without waiting (a full
/// socket buffer drops them, as a network would).
fn drain(
    rtc: &mut Rtc,
    sock: &UdpSocket,
    report: &mut PeerReport,
    begun: Instant,
) -> io::Result<std::time::Instant> {
    loop {
        match rtc.poll_output().map_err(io::Error::other)? {
            Output::Timeout(t) => return Ok(t),
            Output::Transmit(t) => {
                let _ = sock.try_send_to(&t.contents, t.destination);
            }
            Output::Event(Event::RtpPacket(p)) => count(report, &p),
            Output::Event(Event::Connected) => {
                report.connect_ms = Some(begun.elapsed().as_millis() as u64);
            }
            Output::Event(_) => {}
        }
    }
}

fn count(report: &mut PeerReport, p: &str0m::rtp::RtpPacket) {
    let seq = *p.seq_no;
    report.packets += 1;
    report.bytes += p.payload.len() as u64;
    report.frames += u64::from(p.header.marker);
    report.first_seq = Some(report.first_seq.map_or(seq, |f| f.min(seq)));
    report.max_seq = report.max_seq.max(seq);
}

fn print_report(args: &Args, reports: &[PeerReport], elapsed: Duration) {
    let ok: Vec<&PeerReport> = reports.iter().filter(|r| r.connect_ms.is_some()).collect();
    if args.per_peer {
        for (i, r) in reports.iter().enumerate() {
            println!(
                "peer {i}: connect_ms={:?} packets={} bytes={} frames={} lost={} error={:?}",
                r.connect_ms, r.packets, r.bytes, r.frames, r.lost, r.error
            );
        }
    }
    let mut errors: Vec<&str> = reports.iter().filter_map(|r| r.error.as_deref()).collect();
    errors.sort_unstable();
    errors.dedup();
    for e in errors.iter().take(5) {
        println!("error: {e}");
    }
    let stat = |f: fn(&PeerReport) -> u64| {
        let mut v: Vec<u64> = ok.iter().map(|r| f(r)).collect();
        v.sort_unstable();
        match v.len() {
            0 => (0, 0, 0),
            n => (v[0], v[n / 2], v[n - 1]),
        }
    };
    let (pmin, pmed, pmax) = stat(|r| r.packets);
    let (fmin, fmed, fmax) = stat(|r| r.frames);
    let (cmin, cmed, cmax) = stat(|r| r.connect_ms.unwrap_or(0));
    let packets: u64 = ok.iter().map(|r| r.packets).sum();
    let bytes: u64 = ok.iter().map(|r| r.bytes).sum();
    let frames: u64 = ok.iter().map(|r| r.frames).sum();
    let lost: u64 = ok.iter().map(|r| r.lost).sum();
    let loss = if packets + lost > 0 {
        100.0 * lost as f64 / (packets + lost) as f64
    } else {
        0.0
    };
    println!(
        "per peer: packets min/median/max {pmin}/{pmed}/{pmax}, frames {fmin}/{fmed}/{fmax}, \
         connect ms {cmin}/{cmed}/{cmax}"
    );
    println!(
        "RESULT peers={} connected={} packets={packets} bytes={bytes} frames={frames} \
         lost={lost} loss_pct={loss:.3} seconds={:.1}",
        reports.len(),
        ok.len(),
        elapsed.as_secs_f64()
    );
}

/// `http://host:port/path`, spoken as plain HTTP/1.1 (no TLS: a load target on this host).
struct HttpTarget {
    addr: String,
    host: String,
    path: String,
}

impl HttpTarget {
    fn parse(url: &str) -> Result<HttpTarget, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let addr = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(HttpTarget {
            addr,
            host: authority.to_string(),
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
        })
    }

    /// One request on a fresh connection; returns status, `Location` and body.
    async fn request(
        &self,
        method: &str,
        path: &str,
        token: &str,
        sdp: Option<&str>,
    ) -> io::Result<(u16, Option<String>, String)> {
        let mut conn = TcpStream::connect(&self.addr).await?;
        let body = sdp.unwrap_or("");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.host,
            body.len()
        );
        conn.write_all(head.as_bytes()).await?;
        conn.write_all(body.as_bytes()).await?;
        let mut resp = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut resp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "HTTP response timed out"))??;
        let text = String::from_utf8_lossy(&resp);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP status"))?;
        let location = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("location")
                .then(|| v.trim().to_string())
        });
        Ok((status, location, body.to_string()))
    }
}
