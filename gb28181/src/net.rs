//! A tokio shell for a sans-IO SIP core: one UDP socket and a TCP listener on the same
//! address (RFC 3261 §18), connections kept open so that a device registered over TCP is
//! reached over the same connection.
//!
//! Every queue is bounded: bytes read from connections wait in a bounded channel (a slow
//! core slows the readers, and TCP flow control the peers); each connection's outgoing
//! queue holds at most [`WRITE_QUEUE`] messages, and a peer that does not read is
//! disconnected. The core decides which accepted connections to keep
//! ([`SipCore::handle_connection_opened`]).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use gb28181::clock::SystemClock;
//! use gb28181::net::{SipServer, Shell};
//! use gb28181::platform::{Platform, PlatformConfig};
//!
//! let server = SipServer::bind("0.0.0.0:5060".parse().unwrap()).await?;
//! let config = PlatformConfig::new("34020000002000000001", "192.0.2.1", 5060, "12345678");
//! let core = Platform::new(config, SystemClock);
//! let (shell, _commands) = Shell::new(server, core);
//! shell
//!     .run(|core: &mut Platform, _now| {
//!         while let Some(ev) = core.poll_event() {
//!             println!("{ev:?}");
//!         }
//!     })
//!     .await;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::device::Device;
use crate::platform::Platform;
use crate::transport::{ConnId, Transmit, Transport};

/// The interface a sans-IO core offers to the shell.
pub trait SipCore: Send + 'static {
    /// A UDP datagram arrived.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]);
    /// A TCP connection was accepted; `false` refuses it (the shell closes it at once).
    fn handle_connection_opened(
        &mut self,
        _now: Instant,
        _conn: ConnId,
        _remote: SocketAddr,
    ) -> bool {
        true
    }
    /// Bytes arrived on a TCP connection.
    fn handle_stream(&mut self, now: Instant, conn: ConnId, from: SocketAddr, data: &[u8]);
    /// A TCP connection closed.
    fn handle_connection_closed(&mut self, now: Instant, conn: ConnId);
    /// A timer is due.
    fn handle_timeout(&mut self, now: Instant);
    /// Next message to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// Next connection to close.
    fn poll_close(&mut self) -> Option<ConnId> {
        None
    }
    /// Next timer.
    fn poll_timeout(&self) -> Option<Instant>;
}

impl SipCore for Platform {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        Platform::handle_datagram(self, now, from, data)
    }
    fn handle_connection_opened(&mut self, now: Instant, conn: ConnId, remote: SocketAddr) -> bool {
        Platform::handle_connection_opened(self, now, conn, remote)
    }
    fn handle_stream(&mut self, now: Instant, conn: ConnId, from: SocketAddr, data: &[u8]) {
        Platform::handle_stream(self, now, conn, from, data)
    }
    fn handle_connection_closed(&mut self, now: Instant, conn: ConnId) {
        Platform::handle_connection_closed(self, now, conn)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Platform::handle_timeout(self, now)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Platform::poll_transmit(self)
    }
    fn poll_close(&mut self) -> Option<ConnId> {
        Platform::poll_close(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Platform::poll_timeout(self)
    }
}

impl SipCore for Device {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        Device::handle_datagram(self, now, from, data)
    }
    fn handle_stream(&mut self, now: Instant, conn: ConnId, from: SocketAddr, data: &[u8]) {
        Device::handle_stream(self, now, conn, from, data)
    }
    fn handle_connection_closed(&mut self, now: Instant, _conn: ConnId) {
        Device::handle_connection_closed(self, now)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Device::handle_timeout(self, now)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Device::poll_transmit(self)
    }
    fn poll_close(&mut self) -> Option<ConnId> {
        Device::poll_close(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Device::poll_timeout(self)
    }
}

/// The bound sockets: UDP and TCP on one address.
#[derive(Debug)]
pub struct SipServer {
    udp: Arc<UdpSocket>,
    tcp: Option<TcpListener>,
}

impl SipServer {
    /// Bind UDP and TCP on `addr` (port 0 picks a port, the same for both when possible).
    pub async fn bind(addr: SocketAddr) -> io::Result<SipServer> {
        let tcp = TcpListener::bind(addr).await?;
        let udp_addr = SocketAddr::new(addr.ip(), tcp.local_addr()?.port());
        let udp = bind_udp_socket(udp_addr)?;
        Ok(SipServer {
            udp: Arc::new(udp),
            tcp: Some(tcp),
        })
    }

    /// Bind UDP only (clients that talk UDP; TCP connections can still be opened with
    /// [`Command::Connect`]).
    pub async fn bind_udp(addr: SocketAddr) -> io::Result<SipServer> {
        Ok(SipServer {
            udp: Arc::new(bind_udp_socket(addr)?),
            tcp: None,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }
}

/// A closure run on the core.
pub type CoreFn<C> = Box<dyn FnOnce(&mut C, Instant) + Send>;

/// A closure run on the core once a TCP connection is open (or failed).
pub type ConnectFn<C> = Box<dyn FnOnce(&mut C, Instant, io::Result<ConnId>) + Send>;

/// Receive buffer asked for the SIP UDP socket: registration storms from thousands of
/// devices arrive in bursts; the kernel default (~208 KiB) drops them and every drop costs a
/// retransmission (0.5 s and more) on the device side. The kernel caps the value at
/// `net.core.rmem_max`.
const UDP_RECV_BUFFER: usize = 32 << 20;

/// A non-blocking UDP socket with a large receive buffer, registered with tokio.
fn bind_udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = socket.set_recv_buffer_size(UDP_RECV_BUFFER) {
        debug!(error = %e, "cannot enlarge the SIP UDP receive buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Something to do on the core from another task.
pub enum Command<C> {
    /// Run a closure on the core.
    Run(CoreFn<C>),
    /// Open a TCP connection; the closure gets its id (or the error) on the core.
    Connect(SocketAddr, ConnectFn<C>),
    /// Stop the shell.
    Shutdown,
}

/// A handle to send [`Command`]s to a running [`Shell`].
pub struct Handle<C> {
    tx: mpsc::Sender<Command<C>>,
    stats: Arc<ShellStats>,
}

impl<C> Clone for Handle<C> {
    fn clone(&self) -> Self {
        Handle {
            tx: self.tx.clone(),
            stats: self.stats.clone(),
        }
    }
}

impl<C: Send + 'static> Handle<C> {
    /// Run `f` on the core and return its result.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut C, Instant) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let cmd = Command::Run(Box::new(move |c: &mut C, now| {
            let _ = tx.send(f(c, now));
        }));
        self.tx.send(cmd).await.ok()?;
        rx.await.ok()
    }

    /// Send a raw command.
    pub async fn send(&self, cmd: Command<C>) -> bool {
        self.tx.send(cmd).await.is_ok()
    }

    /// Ask the shell to stop.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown).await;
    }

    /// The shell's own counters.
    pub fn stats(&self) -> &ShellStats {
        &self.stats
    }
}

/// Messages waiting to be written on one connection; a peer that lets more pile up does not
/// read and is disconnected.
pub const WRITE_QUEUE: usize = 256;

/// Reads (and accepts) waiting for the core.
const EVENT_QUEUE: usize = 4096;

enum ConnEvent {
    Data(ConnId, SocketAddr, Bytes),
    Closed(ConnId),
    Accepted(TcpStream, SocketAddr),
}

/// What a finished outgoing connection attempt reports.
type Connected<C> = (ConnectFn<C>, SocketAddr, io::Result<TcpStream>);

struct Conn {
    remote: SocketAddr,
    writer: mpsc::Sender<Bytes>,
    reader: JoinHandle<()>,
}

/// Counters of the shell (connections it closed on its own).
#[derive(Debug, Default)]
pub struct ShellStats {
    /// Accepted connections the core refused.
    pub refused: AtomicU64,
    /// Connections closed because the peer did not read what we sent.
    pub write_overflows: AtomicU64,
}

/// Runs a core on sockets. See the module documentation.
pub struct Shell<C> {
    server: SipServer,
    core: C,
    commands: mpsc::Receiver<Command<C>>,
    conns: HashMap<ConnId, Conn>,
    next_conn: u64,
    events_tx: mpsc::Sender<ConnEvent>,
    events_rx: mpsc::Receiver<ConnEvent>,
    connected_tx: mpsc::UnboundedSender<Connected<C>>,
    connected_rx: mpsc::UnboundedReceiver<Connected<C>>,
    stats: Arc<ShellStats>,
}

impl<C: SipCore> Shell<C> {
    /// A shell for `core` on `server`, and the handle to command it.
    pub fn new(server: SipServer, core: C) -> (Shell<C>, Handle<C>) {
        let (tx, rx) = mpsc::channel(1024);
        let (etx, erx) = mpsc::channel(EVENT_QUEUE);
        let (ctx, crx) = mpsc::unbounded_channel();
        let stats = Arc::new(ShellStats::default());
        (
            Shell {
                server,
                core,
                commands: rx,
                conns: HashMap::new(),
                next_conn: 1,
                events_tx: etx,
                events_rx: erx,
                connected_tx: ctx,
                connected_rx: crx,
                stats: stats.clone(),
            },
            Handle { tx, stats },
        )
    }

    /// Run until [`Command::Shutdown`] or until every handle is dropped. `on_step` runs after
    /// every input, to drain the core's events.
    pub async fn run(mut self, mut on_step: impl FnMut(&mut C, Instant) + Send) -> C {
        if let Some(listener) = self.server.tcp.take() {
            let etx = self.events_tx.clone();
            tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, from)) => {
                            let _ = stream.set_nodelay(true);
                            if etx.send(ConnEvent::Accepted(stream, from)).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            warn!(error = %e, "TCP accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    }
                }
            });
        }
        let udp = self.server.udp.clone();
        let mut buf = vec![0u8; 65_536];
        loop {
            let deadline = self.core.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = udp.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        let now = Instant::now();
                        self.core.handle_datagram(now, from, &buf[..n]);
                        // Take what else is queued without waiting, then flush once.
                        for _ in 0..64 {
                            match udp.try_recv_from(&mut buf) {
                                Ok((n, from)) => self.core.handle_datagram(now, from, &buf[..n]),
                                Err(_) => break,
                            }
                        }
                    }
                    Err(e) => debug!(error = %e, "UDP receive error"),
                },
                Some(ev) = self.events_rx.recv() => {
                    let now = Instant::now();
                    match ev {
                        ConnEvent::Data(conn, from, data) => self.core.handle_stream(now, conn, from, &data),
                        ConnEvent::Closed(conn) => {
                            if self.conns.remove(&conn).is_some() {
                                debug!(%conn, "TCP connection closed");
                                self.core.handle_connection_closed(now, conn);
                            }
                        }
                        ConnEvent::Accepted(stream, from) => {
                            let id = ConnId(self.next_conn);
                            self.next_conn += 1;
                            if self.core.handle_connection_opened(now, id, from) {
                                self.add_conn(id, stream, from);
                                debug!(%from, conn = %id, "TCP connection accepted");
                            } else {
                                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                                drop(stream);
                            }
                        }
                    }
                }
                Some((f, addr, r)) = self.connected_rx.recv() => {
                    let r = r.map(|stream| {
                        let _ = stream.set_nodelay(true);
                        let id = ConnId(self.next_conn);
                        self.next_conn += 1;
                        self.add_conn(id, stream, addr)
                    });
                    f(&mut self.core, Instant::now(), r);
                }
                cmd = self.commands.recv() => {
                    let now = Instant::now();
                    match cmd {
                        Some(Command::Run(f)) => f(&mut self.core, now),
                        Some(Command::Connect(addr, f)) => {
                            // Connected in a task of its own: an unreachable peer must not
                            // hold up the loop.
                            let done = self.connected_tx.clone();
                            tokio::spawn(async move {
                                let r = TcpStream::connect(addr).await;
                                let _ = done.send((f, addr, r));
                            });
                        }
                        Some(Command::Shutdown) | None => break,
                    }
                }
                () = sleep => {
                    self.core.handle_timeout(Instant::now());
                }
            }
            self.flush().await;
            on_step(&mut self.core, Instant::now());
            self.flush().await;
        }
        for (_, c) in self.conns.drain() {
            c.reader.abort();
        }
        self.core
    }

    fn add_conn(&mut self, id: ConnId, stream: TcpStream, from: SocketAddr) -> ConnId {
        let (mut rd, mut wr) = stream.into_split();
        let (wtx, mut wrx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
        let etx = self.events_tx.clone();
        tokio::spawn(async move {
            while let Some(b) = wrx.recv().await {
                if wr.write_all(&b).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let data = Bytes::copy_from_slice(&buf[..n]);
                        if etx.send(ConnEvent::Data(id, from, data)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = etx.send(ConnEvent::Closed(id)).await;
        });
        self.conns.insert(
            id,
            Conn {
                remote: from,
                writer: wtx,
                reader,
            },
        );
        id
    }

    async fn flush(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            match t.transport {
                Transport::Udp => {
                    if let Err(e) = self.server.udp.send_to(&t.payload, t.remote).await {
                        debug!(remote = %t.remote, error = %e, "UDP send failed");
                    }
                }
                Transport::Tcp(id) => {
                    let Some(c) = self.conns.get(&id) else {
                        debug!(conn = %id, remote = %t.remote, "TCP connection gone; message dropped");
                        continue;
                    };
                    match c.writer.try_send(t.payload) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            // The peer does not read what we send: let it go.
                            warn!(conn = %id, remote = %c.remote, "peer does not read: closing the TCP connection");
                            self.stats.write_overflows.fetch_add(1, Ordering::Relaxed);
                            if let Some(c) = self.conns.remove(&id) {
                                c.reader.abort();
                            }
                            self.core.handle_connection_closed(Instant::now(), id);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            debug!(conn = %id, "TCP writer gone; message dropped");
                        }
                    }
                }
            }
        }
        while let Some(id) = self.core.poll_close() {
            if let Some(c) = self.conns.remove(&id) {
                debug!(conn = %id, remote = %c.remote, "closing TCP connection");
                c.reader.abort();
            }
        }
    }
}
