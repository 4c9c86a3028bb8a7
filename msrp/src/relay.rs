//! The tokio driver of the MSRP relay (RFC 4976 §6): listeners, connections, timers.
//!
//! All protocol decisions are made by the sans-IO [`Relay`];
//! this module moves bytes. One task owns the relay and runs the event loop; each connection
//! has a reader task (which reads only while the relay [wants input](Relay::wants_read) from
//! it, so a slow next hop slows its sources instead of filling memory) and a writer task (one
//! write in flight per connection; the relay's queue is advanced only when it is written).
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use msrp::relay::{RelayServer, RelayServerConfig};
//! use msrp_proto::relay::server::RelayConfig;
//! use msrp_proto::relay::users::{hash_password_lines, Users};
//!
//! let users = Users::parse(&hash_password_lines("alice", "relay.example.com", "secret")?)?;
//! let mut cfg = RelayServerConfig::new(RelayConfig::new("relay.example.com", "relay.example.com"), users);
//! cfg.tcp_listen = Some("127.0.0.1:2855".parse()?);
//! let server = RelayServer::bind(cfg).await?;
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use msrp_proto::relay::server::{ConfigError, ConnId, Output, Relay, RelayConfig, RelayEvent};
use msrp_proto::relay::users::Users;
use rand::{RngCore, SeedableRng};
use rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::tls::{accept_tls, connect_tls};

/// Largest read from a socket, and largest write handed to a writer task.
const IO_CHUNK: usize = 16 * 1024;
/// Read buffer of a new connection; it grows to [`IO_CHUNK`] at the first read that fills it.
const FIRST_READ: usize = 2 * 1024;
/// Time allowed for a TLS handshake or an outbound TCP connect.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time given to writers to flush at shutdown.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);
/// Most events handled before the relay's outputs are carried out (a burst of reads and
/// write completions is taken in one go; accepts and timers are not held back longer).
const EVENT_BATCH: usize = 64;
/// Most spare buffers kept for reuse (read buffers of [`IO_CHUNK`], write buffers).
const SPARE_BUFFERS: usize = 64;

/// Full-size read buffers going from the readers to the event loop and back: a read is
/// handed over without a copy and the buffer reused, not freed.
#[derive(Clone, Default)]
struct ReadPool(Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

impl ReadPool {
    fn get(&self) -> Vec<u8> {
        let spare = self.0.lock().ok().and_then(|mut p| p.pop());
        spare.unwrap_or_else(|| vec![0u8; IO_CHUNK])
    }

    fn put(&self, buf: Vec<u8>) {
        if buf.len() == IO_CHUNK {
            if let Ok(mut p) = self.0.lock() {
                if p.len() < SPARE_BUFFERS {
                    p.push(buf);
                }
            }
        }
    }
}

/// Everything the relay process needs.
#[derive(Debug)]
pub struct RelayServerConfig {
    /// The protocol configuration. Its `tcp_port`/`tls_port` are set from the listeners
    /// when left `None` (port 0 binds pick a free port).
    pub relay: RelayConfig,
    /// Credentials (HA1 hashes).
    pub users: Users,
    /// Plain TCP listener address (`msrp:` URIs).
    pub tcp_listen: Option<SocketAddr>,
    /// TLS listener address (`msrps:` URIs).
    pub tls_listen: Option<SocketAddr>,
    /// Server TLS configuration for the TLS listener (no client certificate: RFC 4976 clients
    /// authenticate with AUTH).
    pub tls_server: Option<Arc<ServerConfig>>,
    /// Client TLS configuration for `msrps:` next hops (CA roots and host name); without it
    /// such next hops fail.
    pub tls_client: Option<Arc<ClientConfig>>,
}

impl RelayServerConfig {
    /// No listeners yet, no TLS.
    pub fn new(relay: RelayConfig, users: Users) -> Self {
        RelayServerConfig {
            relay,
            users,
            tcp_listen: None,
            tls_listen: None,
            tls_server: None,
            tls_client: None,
        }
    }
}

/// Errors of the relay driver.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// No listener configured.
    #[error("no listener: give a TCP and/or a TLS listen address")]
    NoListener,
    /// A TLS listener without a certificate.
    #[error("the TLS listener needs a certificate and key")]
    NoCertificate,
    /// Binding a listener failed (address in use, permission...).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// The protocol configuration was refused.
    #[error("relay configuration: {0}")]
    Config(#[from] ConfigError),
}

/// A bound relay, ready to [`run`](RelayServer::run).
pub struct RelayServer {
    relay: Relay,
    tcp: Option<TcpListener>,
    tls: Option<(TcpListener, Arc<ServerConfig>)>,
    tls_client: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for RelayServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayServer")
            .field("tcp", &self.tcp_addr())
            .field("tls", &self.tls_addr())
            .finish_non_exhaustive()
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}
type Stream = Box<dyn Io>;

enum Ev {
    Ready(ConnId, Stream),
    /// Bytes read: the first `usize` bytes of the buffer.
    Data(ConnId, Vec<u8>, usize),
    ReadClosed(ConnId, String),
    /// A write is done; the buffer comes back for reuse.
    Written(ConnId, Vec<u8>),
    WriteFailed(ConnId, String),
    Connected(ConnId, Stream, SocketAddr),
    ConnectFailed(ConnId, String),
}

struct Handle {
    writer: Option<mpsc::UnboundedSender<Option<Vec<u8>>>>,
    readable: watch::Sender<bool>,
    in_flight: bool,
    /// Handshake or connect task, then the reader.
    tasks: Vec<JoinHandle<()>>,
    writer_task: Option<JoinHandle<()>>,
}

impl Handle {
    fn pending() -> Handle {
        Handle {
            writer: None,
            readable: watch::channel(false).0,
            in_flight: false,
            tasks: Vec::new(),
            writer_task: None,
        }
    }
}

impl RelayServer {
    /// Binds the listeners and builds the relay. The relay's own ports come from the bound
    /// listeners unless set in `config.relay`.
    pub async fn bind(config: RelayServerConfig) -> Result<RelayServer, RelayError> {
        let RelayServerConfig {
            mut relay,
            users,
            tcp_listen,
            tls_listen,
            tls_server,
            tls_client,
        } = config;
        if tcp_listen.is_none() && tls_listen.is_none() {
            return Err(RelayError::NoListener);
        }
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| RelayError::Bind { addr, source })
        };
        let tcp = match tcp_listen {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        let tls = match tls_listen {
            Some(a) => {
                let cfg = tls_server.ok_or(RelayError::NoCertificate)?;
                Some((bind(a).await?, cfg))
            }
            None => None,
        };
        let port = |l: &TcpListener| l.local_addr().map(|a| a.port()).ok();
        if relay.tcp_port.is_none() {
            relay.tcp_port = tcp.as_ref().and_then(port);
        }
        if relay.tls_port.is_none() {
            relay.tls_port = tls.as_ref().and_then(|(l, _)| port(l));
        }
        let mut rng = rand::rngs::StdRng::from_entropy();
        let random = Box::new(move |b: &mut [u8]| rng.fill_bytes(b));
        let relay = Relay::new(relay, users, random)?;
        Ok(RelayServer {
            relay,
            tcp,
            tls,
            tls_client,
        })
    }

    /// The plain TCP listener's address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The TLS listener's address.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The relay configuration in force (with the ports filled in).
    pub fn relay_config(&self) -> &RelayConfig {
        self.relay.config()
    }

    /// Runs until `shutdown` completes, then stops accepting, closes every connection
    /// (giving queued bytes up to 2 s to go out) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), RelayError> {
        let RelayServer {
            relay,
            tcp,
            tls,
            tls_client,
        } = self;
        let (tx, mut rx) = mpsc::channel::<Ev>(1024);
        let mut d = Driver {
            relay,
            start: Instant::now(),
            handles: HashMap::new(),
            paused: HashSet::new(),
            tx,
            tls_client,
            closing: Vec::new(),
            pool: ReadPool::default(),
            spare: Vec::new(),
        };
        tokio::pin!(shutdown);
        loop {
            let deadline = d
                .relay
                .poll_timeout()
                .map(|ms| d.start + Duration::from_millis(ms));
            tokio::select! {
                _ = &mut shutdown => break,
                acc = accept(tcp.as_ref()) => {
                    if let Ok((s, peer)) = acc {
                        let _ = s.set_nodelay(true);
                        d.accepted(Box::new(s), peer);
                    }
                }
                acc = accept(tls.as_ref().map(|(l, _)| l)) => {
                    if let (Ok((s, peer)), Some((_, cfg))) = (acc, tls.as_ref()) {
                        let _ = s.set_nodelay(true);
                        d.accepted_tls(s, peer, cfg.clone());
                    }
                }
                ev = rx.recv() => match ev {
                    Some(ev) => {
                        // Take what else has arrived, then carry out the outputs once.
                        let mut touched = Vec::new();
                        touched.extend(d.on_event(ev));
                        for _ in 1..EVENT_BATCH {
                            match rx.try_recv() {
                                Ok(ev) => touched.extend(d.on_event(ev)),
                                Err(_) => break,
                            }
                        }
                        d.flush(&touched);
                    }
                    None => break,
                },
                _ = sleep_until(deadline) => {
                    let now = d.now();
                    d.relay.handle_timeout(now);
                    d.flush(&[]);
                }
            }
        }
        tracing::info!("relay shutting down");
        drop(tcp);
        drop(tls);
        d.relay.close_all();
        d.flush(&[]);
        let mut tasks: Vec<JoinHandle<()>> = std::mem::take(&mut d.closing);
        for (_, h) in d.handles.drain() {
            drop(h.writer);
            for t in h.tasks {
                t.abort();
            }
            tasks.extend(h.writer_task);
        }
        let _ = tokio::time::timeout(SHUTDOWN_FLUSH, async {
            for t in tasks {
                let _ = t.await;
            }
        })
        .await;
        Ok(())
    }
}

async fn accept(l: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

struct Driver {
    relay: Relay,
    start: Instant,
    handles: HashMap<ConnId, Handle>,
    /// Connections whose reader is paused.
    paused: HashSet<ConnId>,
    tx: mpsc::Sender<Ev>,
    tls_client: Option<Arc<ClientConfig>>,
    /// Writers flushing connections the relay closed.
    closing: Vec<JoinHandle<()>>,
    /// Read buffers shared with the readers.
    pool: ReadPool,
    /// Write buffers back from the writers, for the next writes.
    spare: Vec<Vec<u8>>,
}

impl Driver {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn accepted(&mut self, s: Stream, peer: SocketAddr) {
        let now = self.now();
        match self.relay.accept(peer, false, now) {
            Ok(id) => {
                self.start_io(id, s);
            }
            Err(_) => drop(s),
        }
        self.flush(&[]);
    }

    fn accepted_tls(&mut self, s: TcpStream, peer: SocketAddr, cfg: Arc<ServerConfig>) {
        let now = self.now();
        let Ok(id) = self.relay.accept(peer, true, now) else {
            self.flush(&[]);
            return;
        };
        let tx = self.tx.clone();
        let task = tokio::spawn(async move {
            match accept_tls(s, cfg, HANDSHAKE_TIMEOUT).await {
                Ok(t) => {
                    let _ = tx.send(Ev::Ready(id, Box::new(t))).await;
                }
                Err(e) => {
                    let _ = tx.send(Ev::ReadClosed(id, format!("TLS: {e}"))).await;
                }
            }
        });
        let mut h = Handle::pending();
        h.tasks.push(task);
        self.handles.insert(id, h);
        self.flush(&[]);
    }

    /// Spawns the reader and writer of an established connection.
    fn start_io(&mut self, id: ConnId, s: Stream) {
        let (mut rd, mut wr) = tokio::io::split(s);
        let (readable, mut can_read) = watch::channel(self.relay.wants_read(id));
        let (wtx, mut wrx) = mpsc::unbounded_channel::<Option<Vec<u8>>>();
        let tx = self.tx.clone();
        let pool = self.pool.clone();
        let reader = tokio::spawn(async move {
            // Small until a read fills it: an idle client (authenticated, no traffic) then
            // costs a few KiB, not IO_CHUNK (docs/performance.md, idle sessions).
            let mut buf = vec![0u8; FIRST_READ];
            loop {
                while !*can_read.borrow_and_update() {
                    if can_read.changed().await.is_err() {
                        return;
                    }
                }
                match rd.read(&mut buf).await {
                    Ok(0) => {
                        let _ = tx.send(Ev::ReadClosed(id, "closed by peer".into())).await;
                        return;
                    }
                    Ok(n) => {
                        let data = if buf.len() < IO_CHUNK {
                            // Still the small first buffer: copy out what was read, and
                            // switch to a full-size one once a read fills it.
                            let data = buf[..n].to_vec();
                            if n == buf.len() {
                                buf = pool.get();
                            }
                            data
                        } else {
                            // Hand the buffer itself over; the event loop returns it to the
                            // pool once the relay has taken the bytes.
                            std::mem::replace(&mut buf, pool.get())
                        };
                        if tx.send(Ev::Data(id, data, n)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Ev::ReadClosed(id, e.to_string())).await;
                        return;
                    }
                }
            }
        });
        let tx = self.tx.clone();
        let writer = tokio::spawn(async move {
            loop {
                // Flush whenever the queue runs dry: over TLS, tokio-rustls accepts bytes whose
                // records still wait in rustls when the socket is full, and only a later write
                // or a flush sends them; without this the last bytes of a burst could stay
                // unsent (the same fix as the endpoint driver's writer). No-op on plain TCP.
                let next = match wrx.try_recv() {
                    Ok(next) => next,
                    Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => break,
                    Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                        if let Err(e) = wr.flush().await {
                            let _ = tx.send(Ev::WriteFailed(id, e.to_string())).await;
                            return;
                        }
                        match wrx.recv().await {
                            Some(next) => next,
                            None => break,
                        }
                    }
                };
                let Some(data) = next else {
                    break;
                };
                if let Err(e) = wr.write_all(&data).await {
                    let _ = tx.send(Ev::WriteFailed(id, e.to_string())).await;
                    return;
                }
                if tx.send(Ev::Written(id, data)).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        let h = self.handles.entry(id).or_insert_with(Handle::pending);
        h.writer = Some(wtx);
        h.readable = readable;
        h.tasks.push(reader);
        h.writer_task = Some(writer);
        if !self.relay.wants_read(id) {
            self.paused.insert(id);
        }
    }

    /// Handles one event; returns the connection whose read permission may have changed.
    fn on_event(&mut self, ev: Ev) -> Option<ConnId> {
        let now = self.now();
        match ev {
            Ev::Ready(id, s) => {
                if self.handles.contains_key(&id) {
                    self.start_io(id, s);
                }
                Some(id)
            }
            Ev::Data(id, data, n) => {
                self.relay.receive(id, &data[..n], now);
                self.pool.put(data);
                Some(id)
            }
            Ev::ReadClosed(id, why) | Ev::WriteFailed(id, why) => {
                self.forget(id);
                self.relay.closed(id, &why, now);
                None
            }
            Ev::Written(id, mut buf) => {
                if let Some(h) = self.handles.get_mut(&id) {
                    h.in_flight = false;
                }
                self.relay.advance(id, buf.len(), now);
                if self.spare.len() < SPARE_BUFFERS {
                    buf.clear();
                    self.spare.push(buf);
                }
                self.write(id);
                Some(id)
            }
            Ev::Connected(id, s, addr) => {
                if self.handles.contains_key(&id) {
                    self.relay.connected(id, addr, now);
                    self.start_io(id, s);
                    self.write(id);
                }
                Some(id)
            }
            Ev::ConnectFailed(id, why) => {
                self.forget(id);
                self.relay.connect_failed(id, &why, now);
                None
            }
        }
    }

    fn forget(&mut self, id: ConnId) {
        if let Some(h) = self.handles.remove(&id) {
            for t in h.tasks.into_iter().chain(h.writer_task) {
                t.abort();
            }
        }
        self.paused.remove(&id);
    }

    /// Hands the next piece of a connection's queue to its writer.
    fn write(&mut self, id: ConnId) {
        let Some(h) = self.handles.get_mut(&id) else {
            return;
        };
        if h.in_flight {
            return;
        }
        let Some(w) = &h.writer else {
            return;
        };
        let data = self.relay.transmit(id);
        if data.is_empty() {
            return;
        }
        let n = data.len().min(IO_CHUNK * 4);
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.extend_from_slice(&data[..n]);
        if w.send(Some(buf)).is_ok() {
            h.in_flight = true;
        }
    }

    /// Carries out the relay's outputs and updates read permissions.
    fn flush(&mut self, touched: &[ConnId]) {
        let mut check: Vec<ConnId> = self.paused.iter().copied().collect();
        check.extend_from_slice(touched);
        check.sort_unstable();
        check.dedup();
        while let Some(out) = self.relay.poll_output() {
            match out {
                Output::Transmit(id) => {
                    self.write(id);
                    check.push(id);
                }
                Output::Connect {
                    conn,
                    host,
                    port,
                    tls,
                } => self.connect(conn, host, port, tls),
                Output::Close(id) => {
                    if let Some(h) = self.handles.remove(&id) {
                        // The writer flushes what it holds, then shuts the stream down; the
                        // reader (or a handshake in progress) stops now.
                        if let Some(w) = &h.writer {
                            let _ = w.send(None);
                        }
                        for t in h.tasks {
                            t.abort();
                        }
                        if let Some(t) = h.writer_task {
                            self.closing.push(t);
                        }
                    }
                    self.closing.retain(|t| !t.is_finished());
                    self.paused.remove(&id);
                }
                Output::Event(e) => log_event(&e),
            }
        }
        for id in check {
            let want = self.relay.wants_read(id);
            if let Some(h) = self.handles.get(&id) {
                h.readable.send_if_modified(|v| {
                    let changed = *v != want;
                    *v = want;
                    changed
                });
                if want {
                    self.paused.remove(&id);
                } else {
                    self.paused.insert(id);
                }
            }
        }
    }

    fn connect(&mut self, id: ConnId, host: String, port: u16, tls: bool) {
        let tx = self.tx.clone();
        let client = self.tls_client.clone();
        let task = tokio::spawn(async move {
            let r = async {
                let addrs = tokio::time::timeout(
                    HANDSHAKE_TIMEOUT,
                    tokio::net::lookup_host((host.as_str(), port)),
                )
                .await
                .map_err(|_| "name resolution timed out".to_string())?
                .map_err(|e| format!("cannot resolve {host}: {e}"))?;
                let mut last = format!("{host} has no address");
                for addr in addrs {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(addr)).await {
                        Ok(Ok(s)) => {
                            let _ = s.set_nodelay(true);
                            if !tls {
                                return Ok::<(Stream, SocketAddr), String>((Box::new(s), addr));
                            }
                            let cfg = client.clone().ok_or_else(|| {
                                "msrps next hop but no TLS client configuration".to_string()
                            })?;
                            let t = connect_tls(s, &host, cfg, HANDSHAKE_TIMEOUT)
                                .await
                                .map_err(|e| format!("TLS to {host}:{port}: {e}"))?;
                            return Ok((Box::new(t), addr));
                        }
                        Ok(Err(e)) => last = format!("connect {addr}: {e}"),
                        Err(_) => last = format!("connect {addr}: timed out"),
                    }
                }
                Err(last)
            }
            .await;
            let _ = match r {
                Ok((s, addr)) => tx.send(Ev::Connected(id, s, addr)).await,
                Err(e) => tx.send(Ev::ConnectFailed(id, e)).await,
            };
        });
        let mut h = Handle::pending();
        h.tasks.push(task);
        self.handles.insert(id, h);
        tracing::debug!(conn = %id, %port, tls, "connecting to next hop");
    }
}

fn log_event(e: &RelayEvent) {
    match e {
        RelayEvent::Accepted { conn, peer, tls } => {
            tracing::info!(conn = %conn, %peer, tls, "accepted connection")
        }
        RelayEvent::Refused { peer, reason } => {
            tracing::warn!(%peer, %reason, "refused connection")
        }
        RelayEvent::Authenticated {
            conn,
            user,
            use_path,
            expires,
        } => tracing::info!(conn = %conn, %user, %use_path, expires, "authenticated"),
        RelayEvent::AuthFailed {
            conn,
            status,
            reason,
        } => tracing::warn!(conn = %conn, status, %reason, "AUTH failed"),
        RelayEvent::Forwarded {
            method,
            from,
            to,
            message_id,
        } => {
            tracing::debug!(%method, from = %from, to = %to, message_id = ?message_id, "forwarded")
        }
        RelayEvent::Rejected {
            conn,
            status,
            reason,
        } => tracing::warn!(conn = %conn, status, %reason, "rejected"),
        RelayEvent::FailureReport {
            conn,
            status,
            message_id,
        } => tracing::info!(conn = %conn, status, %message_id, "failure REPORT sent"),
        RelayEvent::Closed { conn, reason } => {
            tracing::info!(conn = %conn, %reason, "connection closed")
        }
    }
}
