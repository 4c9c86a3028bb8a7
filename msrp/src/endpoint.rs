//! The tokio driver and the async MSRP API.
//!
//! [`MsrpEndpoint::bind`] starts one driver task that owns the sans-IO
//! [`msrp_proto::endpoint::Endpoint`], the TCP listener, one reader and one writer task per
//! connection, and the timer from `poll_timeout`. The application talks to it through
//! channels: [`MsrpEndpoint`] negotiates sessions (SDP offer/answer, RFC 6135), and each
//! [`MsrpSession`] sends messages ([`SessionSender`]) and yields [`SessionNotice`]s.
//!
//! # The drive loop
//!
//! ```text
//! loop {
//!     pump: write what poll_transmit gives while the connection's writer has room
//!           (at most WRITE_WINDOW bytes in flight), handle poll_event (connect, close,
//!           notices to sessions), feed pending body bytes of outgoing streams
//!     wait for one of: an application command, bytes / connection events from the IO
//!           tasks, room in a session's notice channel, the core's next timeout
//! }
//! ```
//!
//! Back-pressure, so memory stays bounded whatever the peer or the application does:
//! - sending: a stream's reader task reads the next block only after the driver handed the
//!   previous one to the core, and the core takes bytes only up to its send window; chunks
//!   are cut only while the connection has fewer than `WRITE_WINDOW` bytes in flight;
//! - receiving: notices (including body bytes) go to the session through a bounded channel;
//!   when the application falls behind by more than a few MiB of body bytes (or thousands of
//!   notices) the driver stops reading from the connections until it catches up, so TCP flow
//!   control slows the peer down. Writing, and the accounting of written bytes, go on.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use rand::{RngCore, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use msrp_proto::endpoint::{
    CloseReason, ConnectionHandle, Endpoint as Core, EndpointConfig, EndpointError, Event,
    SessionHandle, SessionParams, TransmitParts,
};
use msrp_proto::message::{FailureReport, StatusCode};
use msrp_proto::relay::client::{RelayClientConfig, RelayEvent, RelayFailure};
use msrp_proto::sdp::{
    create_answer, create_offer, session_id_from_entropy, ConnectionPlan, LocalConfig,
    PendingOffer, SdpAnswer, SdpError, SdpOffer,
};
use msrp_proto::session::{MessageSpec, SessionConfig, SessionEvent};
use msrp_proto::uri::{Host, MsrpUri};

use crate::transport::{BoxedIo, PlainTcp, Transport};

/// Bytes handed to a connection's writer task and not yet written, above which the driver
/// stops cutting chunks for that connection.
const WRITE_WINDOW: usize = 256 * 1024;
/// Size of the blocks read from sockets.
const READ_BLOCK: usize = 64 * 1024;
/// Bounds of the blocks read from an outgoing stream: one chunk of its session
/// ([`SessionConfig::chunk_size`]) within these.
const MIN_STREAM_BLOCK: usize = 4 * 1024;
const MAX_STREAM_BLOCK: usize = 4 * 1024 * 1024;
/// Blocks read from one connection and not yet processed by the core.
const INPUT_BLOCKS: usize = 2;
/// Notices buffered per session channel.
const NOTICE_QUEUE: usize = 64;
/// Body bytes of notices waiting for room (beyond the channels) above which the driver stops
/// reading from the network.
const STASH_BYTES: usize = 4 * 1024 * 1024;
/// How long a connection we closed is still read (and its input dropped) after our last
/// bytes went out, so that unread input does not turn the close into a reset.
const LINGER: std::time::Duration = std::time::Duration::from_millis(500);
/// Notices waiting for room above which the driver stops reading from the network.
const STASH_COUNT: usize = 4096;

/// Driver settings.
#[derive(Clone)]
pub struct Options {
    /// Address of the listener (port 0: any free port).
    pub listen: SocketAddr,
    /// Core endpoint settings (bind and connect timeouts, parser limits).
    pub endpoint: EndpointConfig,
    /// Default session settings (chunk size, transaction timeout); accept-types and
    /// max-size come from the [`LocalConfig`] of each negotiation.
    pub session: SessionConfig,
    /// How connections are opened and accepted.
    pub transport: Arc<dyn Transport>,
    /// Create the listener with `SO_REUSEADDR` and `SO_REUSEPORT`
    /// ([`crate::stun::bind_shared_listener`]), so that STUN over TCP can run from its port
    /// while it listens (RFC 6135 §4.2.2, [`crate::nat::resolve_reachability`]). Off by
    /// default: with it, another socket of the same user may bind the same port.
    pub reuse_port: bool,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("listen", &self.listen)
            .field("endpoint", &self.endpoint)
            .field("session", &self.session)
            .field("reuse_port", &self.reuse_port)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Plain TCP on `listen`, default settings.
    pub fn new(listen: SocketAddr) -> Self {
        Options {
            listen,
            endpoint: EndpointConfig::default(),
            session: SessionConfig::default(),
            transport: Arc::new(PlainTcp),
            reuse_port: false,
        }
    }
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The driver task is gone (the endpoint was shut down).
    #[error("the MSRP endpoint is shut down")]
    Shutdown,
    /// The core refused the command.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// SDP or negotiation error (a SIP stack would answer 488).
    #[error(transparent)]
    Sdp(#[from] SdpError),
    /// Socket error.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The message does not fit what the peer accepts (RFC 4975 §8.6).
    #[error("{0}")]
    NotAccepted(String),
    /// Authentication to our relays failed (RFC 4976 §5.1): wrong credentials (401/403),
    /// 423 that could not be satisfied, no answer, or the relay unreachable.
    #[error("relay authentication failed: {0}")]
    Relay(RelayFailure),
}

/// Our relays accepted us (RFC 4976 §5.1): what [`MsrpEndpoint::authenticate_relays`] gives.
#[derive(Debug)]
pub struct RelayBinding {
    /// The Use-Path, first relay first: put it in [`LocalConfig::relay_path`] so the SDP
    /// `a=path` carries it before our URI, and sessions connect through this connection.
    pub use_path: Vec<MsrpUri>,
    /// The shortest lifetime the relays granted, in seconds; the driver refreshes the AUTH
    /// before it runs out.
    pub expires: Option<u32>,
    /// Later outcomes (refreshes, a lost connection).
    pub events: mpsc::UnboundedReceiver<RelayEvent>,
}

/// How a sent message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// All chunks were sent and acknowledged hop by hop (with `Failure-Report: yes`), or sent
    /// (with `partial`/`no`).
    Sent,
    /// The peer confirmed delivery with success REPORTs (`Success-Report: yes`).
    Delivered,
}

/// Why a sent message failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message {message_id} failed with {status}: {reason}")]
pub struct SendFailure {
    /// Message-ID.
    pub message_id: String,
    /// MSRP status (408 for a local timeout).
    pub status: StatusCode,
    /// Description.
    pub reason: String,
}

/// What happens in a session, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionNotice {
    /// The session is connected and can carry messages both ways.
    Connected,
    /// A sent message completed (see [`Outcome::Sent`]).
    Sent {
        /// Message-ID.
        message_id: String,
    },
    /// A sent message was confirmed by success REPORTs.
    Delivered {
        /// Message-ID.
        message_id: String,
    },
    /// Part of a sent message was confirmed by a success REPORT.
    DeliveryProgress {
        /// Message-ID.
        message_id: String,
        /// Bytes confirmed.
        confirmed: u64,
    },
    /// A sent message failed.
    Failed(SendFailure),
    /// A message starts arriving.
    IncomingStarted {
        /// Message-ID.
        message_id: String,
        /// Content-Type.
        content_type: Option<String>,
        /// Size, if announced.
        total: Option<u64>,
        /// `Content-Disposition` (RFC 2183), if the sender gave one: for a file,
        /// `attachment; filename="..."` (RFC 5547 §8). The file name is the peer's: sanitise
        /// it before using it as a path.
        content_disposition: Option<String>,
    },
    /// Body bytes at a 0-based offset; write them with [`crate::sink::SequentialWriter`].
    IncomingData {
        /// Message-ID.
        message_id: String,
        /// Offset.
        offset: u64,
        /// Bytes (shared with the buffer they were read into, not copied).
        data: bytes::Bytes,
    },
    /// A message arrived completely.
    IncomingComplete {
        /// Message-ID.
        message_id: String,
        /// Size.
        size: u64,
    },
    /// An incoming message will not complete.
    IncomingAborted {
        /// Message-ID.
        message_id: String,
        /// Bytes received.
        received: u64,
        /// Why.
        reason: String,
    },
    /// The session ended; this is the last notice.
    Closed(CloseReason),
}

/// Reporting options of a message (RFC 4975 §7.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reports {
    /// Ask for success REPORTs.
    pub success: bool,
    /// Failure-Report value.
    pub failure: FailureReport,
}

impl Default for Reports {
    fn default() -> Self {
        Reports {
            success: false,
            failure: FailureReport::Yes,
        }
    }
}

type OutcomeTx = oneshot::Sender<Result<Outcome, SendFailure>>;
type OutcomeRx = oneshot::Receiver<Result<Outcome, SendFailure>>;

enum Cmd {
    Add {
        params: Box<SessionParams>,
        reply: oneshot::Sender<Result<(SessionHandle, mpsc::Receiver<SessionNotice>), Error>>,
    },
    AddOffered {
        local_uri: Box<MsrpUri>,
        config: Box<SessionConfig>,
        reply: oneshot::Sender<(SessionHandle, mpsc::Receiver<SessionNotice>)>,
    },
    Complete {
        session: SessionHandle,
        params: Box<SessionParams>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Send {
        session: SessionHandle,
        spec: MessageSpec,
        body: Option<Vec<u8>>,
        /// Message-ID, outcome, and the session's chunk size (the block size for streams).
        reply: oneshot::Sender<Result<(String, OutcomeRx, usize), Error>>,
    },
    Body {
        session: SessionHandle,
        message_id: String,
        data: Vec<u8>,
        fin: bool,
        done: oneshot::Sender<Result<(), String>>,
    },
    Abort {
        session: SessionHandle,
        message_id: String,
    },
    Close {
        session: SessionHandle,
    },
    Relay {
        config: Box<RelayClientConfig>,
        reply: oneshot::Sender<Result<RelayBinding, Error>>,
    },
    Stats {
        reply: oneshot::Sender<EndpointStats>,
    },
}

/// What the endpoint holds right now ([`MsrpEndpoint::stats`]): the figures its limits
/// bound whatever the peers do (`docs/limits.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EndpointStats {
    /// Open (or connecting) connections.
    pub connections: usize,
    /// Live sessions.
    pub sessions: usize,
    /// Bytes the core holds for connections: partial header blocks and responses not yet
    /// handed to a writer ([`msrp_proto::endpoint::Endpoint::buffered_bytes`]).
    pub core_buffered: usize,
    /// Bytes handed to connection writers and not yet written (at most about
    /// 256 KiB per connection plus one chunk).
    pub write_inflight: usize,
    /// Body bytes of notices waiting for the application (reading from the network stops
    /// above 4 MiB).
    pub notice_backlog: usize,
}

impl EndpointStats {
    /// Everything the endpoint buffers, in bytes.
    pub fn total_buffered(&self) -> usize {
        self.core_buffered + self.write_inflight + self.notice_backlog
    }
}

enum Input {
    Accepted(BoxedIo, SocketAddr),
    Connected(ConnectionHandle, io::Result<BoxedIo>),
    Data(ConnectionHandle, Vec<u8>),
    Closed(ConnectionHandle, String),
}

/// A running MSRP endpoint: a listener and the driver task.
pub struct MsrpEndpoint {
    cmd: mpsc::UnboundedSender<Cmd>,
    /// Blocks of outgoing streams, recycled by the connection writers.
    pool: BlockPool,
    local_addr: SocketAddr,
    defaults: SessionConfig,
    transport: Arc<dyn Transport>,
    task: JoinHandle<()>,
    accept_task: JoinHandle<()>,
}

impl fmt::Debug for MsrpEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MsrpEndpoint")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Drop for MsrpEndpoint {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.task.abort();
    }
}

fn os_rng() -> msrp_proto::endpoint::Rng {
    let mut r = rand::rngs::StdRng::from_entropy();
    Box::new(move |b: &mut [u8]| r.fill_bytes(b))
}

impl MsrpEndpoint {
    /// Binds the listener and starts the driver.
    pub async fn bind(opts: Options) -> Result<Self, Error> {
        let listener = if opts.reuse_port {
            crate::stun::bind_shared_listener(opts.listen)?
        } else {
            TcpListener::bind(opts.listen).await?
        };
        let local_addr = listener.local_addr()?;
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::channel(64);
        let transport = opts.transport.clone();
        let accept_tx = in_tx.clone();
        let accept_transport = transport.clone();
        let accept_task = tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    continue;
                };
                let t = accept_transport.clone();
                let tx = accept_tx.clone();
                tokio::spawn(async move {
                    match t.accept(tcp).await {
                        Ok(io) => {
                            let _ = tx.send(Input::Accepted(io, peer)).await;
                        }
                        Err(e) => tracing::warn!(%peer, "refused connection: {e}"),
                    }
                });
            }
        });
        let (wrote_tx, wrote_rx) = mpsc::unbounded_channel();
        let pool = BlockPool::default();
        let driver = Driver {
            pool: pool.clone(),
            core: Core::new(opts.endpoint.clone(), os_rng()),
            transport,
            in_tx,
            wrote_tx,
            stash_bytes: 0,
            conns: HashMap::new(),
            sessions: HashMap::new(),
            bodies: HashMap::new(),
            stash: VecDeque::new(),
            relays: HashMap::new(),
        };
        let task = tokio::spawn(driver.run(cmd_rx, in_rx, wrote_rx));
        Ok(MsrpEndpoint {
            cmd: cmd_tx,
            pool,
            local_addr,
            defaults: opts.session,
            transport: opts.transport.clone(),
            task,
            accept_task,
        })
    }

    /// The listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What the endpoint holds now: connections, sessions and buffered bytes.
    pub async fn stats(&self) -> Result<EndpointStats, Error> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Stats { reply })
            .map_err(|_| Error::Shutdown)?;
        rx.await.map_err(|_| Error::Shutdown)
    }

    /// A [`LocalConfig`] for a negotiation: our listener's address (127.0.0.1 when listening
    /// on the unspecified address), reachable, accepting `*`, with a fresh random
    /// session id (80 bits, RFC 4975 §14.1), adjusted by the transport (TLS: `msrps:` and our
    /// `a=fingerprint`). Adjust it before use.
    pub fn local_config(&self) -> LocalConfig {
        let mut entropy = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut entropy);
        let ip = match self.local_addr.ip() {
            ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            ip => ip,
        };
        let mut cfg = LocalConfig::new(
            SocketAddr::new(ip, self.local_addr.port()),
            session_id_from_entropy(&entropy),
        );
        cfg.sdp_session_id = rand::rngs::OsRng.next_u64();
        self.transport.configure_local(&mut cfg);
        cfg
    }

    fn session_config(&self, cfg: &LocalConfig) -> SessionConfig {
        let mut c = self.defaults.clone();
        c.recv.accept_types = cfg.accept_types.iter().map(|a| a.to_string()).collect();
        c.recv.max_size = cfg.max_size;
        c
    }

    /// Creates an offer (RFC 6135 §4.2) and registers its session, so that a peer that
    /// becomes active can connect as soon as it has our offer.
    pub async fn create_offer(&self, cfg: &LocalConfig) -> Result<OfferedSession, Error> {
        let pending = create_offer(cfg)?;
        let local_uri = pending.offer().media().session_uri().clone();
        self.transport.offer_created(&local_uri);
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::AddOffered {
                local_uri: Box::new(local_uri),
                config: Box::new(self.session_config(cfg)),
                reply,
            })
            .map_err(|_| Error::Shutdown)?;
        let (handle, notices) = rx.await.map_err(|_| Error::Shutdown)?;
        Ok(OfferedSession {
            pending,
            session: MsrpSession {
                sender: SessionSender {
                    handle,
                    cmd: self.cmd.clone(),
                    plan: None,
                    pool: self.pool.clone(),
                },
                notices,
            },
        })
    }

    /// Applies the peer's answer to our offer: computes the plan (RFC 6135) and starts the
    /// session (connecting if we are active).
    pub async fn accept_answer(
        &self,
        offered: OfferedSession,
        answer: &SdpAnswer,
    ) -> Result<MsrpSession, Error> {
        let OfferedSession {
            pending,
            mut session,
        } = offered;
        let plan = pending.accept_answer(answer)?;
        self.transport.prepare(&plan);
        let params = SessionParams::from_plan(&plan, self.defaults.clone());
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Complete {
                session: session.sender.handle,
                params: Box::new(params),
                reply,
            })
            .map_err(|_| Error::Shutdown)?;
        rx.await.map_err(|_| Error::Shutdown)??;
        session.sender.plan = Some(Arc::new(plan));
        Ok(session)
    }

    /// Answers a peer's offer (RFC 6135 §4.2) and starts the session. Send the returned
    /// answer to the peer; if we are active we connect at once.
    pub async fn answer_offer(
        &self,
        offer: &SdpOffer,
        cfg: &LocalConfig,
    ) -> Result<(SdpAnswer, MsrpSession), Error> {
        let answered = create_answer(offer, cfg)?;
        self.transport.prepare(&answered.plan);
        let params = SessionParams::from_plan(&answered.plan, self.session_config(cfg));
        let mut session = self.start_session(params).await?;
        session.sender.plan = Some(Arc::new(answered.plan));
        Ok((answered.answer, session))
    }

    /// Connects to the first of our relays and authenticates to each of them (RFC 4976 §5.1),
    /// waiting for the outcome. On success, put [`RelayBinding::use_path`] in
    /// [`LocalConfig::relay_path`] before creating the offer or the answer: the session then
    /// connects through this same connection whatever `a=setup` says, sending its binding
    /// SEND only when active (RFC 6135 §4.5). The AUTH is refreshed before Expires.
    pub async fn authenticate_relays(
        &self,
        config: RelayClientConfig,
    ) -> Result<RelayBinding, Error> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Relay {
                config: Box::new(config),
                reply,
            })
            .map_err(|_| Error::Shutdown)?;
        rx.await.map_err(|_| Error::Shutdown)?
    }

    /// Starts a session from explicit parameters (no SDP).
    pub async fn start_session(&self, params: SessionParams) -> Result<MsrpSession, Error> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Add {
                params: Box::new(params),
                reply,
            })
            .map_err(|_| Error::Shutdown)?;
        let (handle, notices) = rx.await.map_err(|_| Error::Shutdown)??;
        Ok(MsrpSession {
            sender: SessionSender {
                handle,
                cmd: self.cmd.clone(),
                plan: None,
                pool: self.pool.clone(),
            },
            notices,
        })
    }
}

/// An offer we created, with its session waiting for the answer.
#[derive(Debug)]
pub struct OfferedSession {
    pending: PendingOffer,
    session: MsrpSession,
}

impl OfferedSession {
    /// The offer to send to the peer.
    pub fn offer(&self) -> &SdpOffer {
        self.pending.offer()
    }
}

/// One MSRP session: a [`SessionSender`] (also available separately with
/// [`sender`](Self::sender)) and the stream of [`SessionNotice`]s.
#[derive(Debug)]
pub struct MsrpSession {
    sender: SessionSender,
    notices: mpsc::Receiver<SessionNotice>,
}

impl MsrpSession {
    /// The next notice; `None` after [`SessionNotice::Closed`]. Read notices continuously:
    /// when they pile up, the driver stops reading from the network.
    pub async fn next_notice(&mut self) -> Option<SessionNotice> {
        self.notices.recv().await
    }

    /// Waits until the session is connected; fails with the close reason if it ends first.
    /// Notices other than `Connected` received meanwhile are returned too.
    pub async fn connected(&mut self) -> Result<Vec<SessionNotice>, CloseReason> {
        let mut other = Vec::new();
        loop {
            match self.notices.recv().await {
                Some(SessionNotice::Connected) => return Ok(other),
                Some(SessionNotice::Closed(r)) => return Err(r),
                Some(n) => other.push(n),
                None => return Err(CloseReason::Local),
            }
        }
    }

    /// A clonable handle for sending, usable from other tasks.
    pub fn sender(&self) -> SessionSender {
        self.sender.clone()
    }

    /// The negotiated plan, for sessions created through SDP.
    pub fn plan(&self) -> Option<&ConnectionPlan> {
        self.sender.plan.as_deref()
    }

    /// See [`SessionSender::send_text`].
    pub async fn send_text(&self, text: &str) -> Result<OutgoingMessage, Error> {
        self.sender.send_text(text).await
    }

    /// See [`SessionSender::send_bytes`].
    pub async fn send_bytes(
        &self,
        content_type: &str,
        data: Vec<u8>,
        reports: Reports,
    ) -> Result<OutgoingMessage, Error> {
        self.sender.send_bytes(content_type, data, reports).await
    }

    /// See [`SessionSender::send_stream`].
    pub async fn send_stream<R: AsyncRead + Unpin + Send + 'static>(
        &self,
        content_type: &str,
        size: Option<u64>,
        reader: R,
        reports: Reports,
    ) -> Result<OutgoingMessage, Error> {
        self.sender
            .send_stream(content_type, size, reader, reports)
            .await
    }

    /// See [`SessionSender::send_file`].
    pub async fn send_file<R: AsyncRead + Unpin + Send + 'static>(
        &self,
        content_type: &str,
        size: Option<u64>,
        reader: R,
        reports: Reports,
        file_name: &str,
    ) -> Result<OutgoingMessage, Error> {
        self.sender
            .send_file(content_type, size, reader, reports, file_name)
            .await
    }

    /// Closes the session (and its connection when no other session uses it).
    pub fn close(&self) {
        self.sender.close();
    }

    /// Closes the session and waits for its last notice; returns the notices that were still
    /// pending (for example `Failed` for messages whose delivery was not confirmed, RFC 4975
    /// §7.1.1) and the close reason.
    pub async fn close_and_wait(mut self) -> (Vec<SessionNotice>, CloseReason) {
        self.sender.close();
        let mut rest = Vec::new();
        loop {
            match self.notices.recv().await {
                Some(SessionNotice::Closed(r)) => return (rest, r),
                Some(n) => rest.push(n),
                None => return (rest, CloseReason::Local),
            }
        }
    }
}

/// Sends messages on a session.
#[derive(Debug, Clone)]
pub struct SessionSender {
    handle: SessionHandle,
    cmd: mpsc::UnboundedSender<Cmd>,
    plan: Option<Arc<ConnectionPlan>>,
    pool: BlockPool,
}

/// A message being sent.
#[derive(Debug)]
pub struct OutgoingMessage {
    /// Its Message-ID.
    pub message_id: String,
    outcome: OutcomeRx,
}

impl OutgoingMessage {
    /// Waits until the message was sent (or delivered, with success reports) or failed.
    pub async fn outcome(self) -> Result<Outcome, SendFailure> {
        let id = self.message_id;
        self.outcome.await.unwrap_or_else(|_| {
            Err(SendFailure {
                message_id: id,
                status: StatusCode::REQUEST_TIMEOUT,
                reason: "the endpoint shut down".into(),
            })
        })
    }
}

impl SessionSender {
    /// The core's handle of the session.
    pub fn handle(&self) -> SessionHandle {
        self.handle
    }

    /// RFC 4975 §8.6: only types in the peer's accept-types, and not above its max-size.
    fn check(&self, content_type: &str, size: Option<u64>) -> Result<(), Error> {
        let Some(plan) = &self.plan else {
            return Ok(());
        };
        if !plan.peer_accept_types.is_empty()
            && !plan
                .peer_accept_types
                .iter()
                .any(|a| a.allows(content_type))
        {
            return Err(Error::NotAccepted(format!(
                "the peer does not accept {content_type} (its accept-types: {})",
                msrp_proto::sdp::AcceptType::list_to_string(&plan.peer_accept_types)
            )));
        }
        if let (Some(max), Some(size)) = (plan.peer_max_size, size) {
            if size > max {
                return Err(Error::NotAccepted(format!(
                    "the message has {size} bytes, the peer's max-size is {max}"
                )));
            }
        }
        Ok(())
    }

    /// Sends a `text/plain` message.
    pub async fn send_text(&self, text: &str) -> Result<OutgoingMessage, Error> {
        self.send_bytes("text/plain", text.as_bytes().to_vec(), Reports::default())
            .await
    }

    /// Sends a message held in memory.
    pub async fn send_bytes(
        &self,
        content_type: &str,
        data: Vec<u8>,
        reports: Reports,
    ) -> Result<OutgoingMessage, Error> {
        self.check(content_type, Some(data.len() as u64))?;
        let spec = MessageSpec::new(content_type, Some(data.len() as u64))
            .with_success_report(reports.success)
            .with_failure_report(reports.failure);
        Ok(self.queue(spec, Some(data)).await?.0)
    }

    /// Sends a message streamed from `reader` (a file, for example); `size` is its length when
    /// known (else the Byte-Range total is `*` until the end). Only a few blocks of it are in
    /// memory at any time.
    pub async fn send_stream<R: AsyncRead + Unpin + Send + 'static>(
        &self,
        content_type: &str,
        size: Option<u64>,
        reader: R,
        reports: Reports,
    ) -> Result<OutgoingMessage, Error> {
        let spec = MessageSpec::new(content_type, size);
        self.send_stream_spec(spec, reader, reports).await
    }

    /// Like [`send_stream`](Self::send_stream) for a file: the message carries
    /// `Content-Disposition: attachment; filename="<file_name>"` (RFC 5547 §8, RFC 2183 §2.3),
    /// so that the receiver can name it. Quotes, backslashes and control characters are left
    /// out of the name.
    pub async fn send_file<R: AsyncRead + Unpin + Send + 'static>(
        &self,
        content_type: &str,
        size: Option<u64>,
        reader: R,
        reports: Reports,
        file_name: &str,
    ) -> Result<OutgoingMessage, Error> {
        let spec = MessageSpec::new(content_type, size)
            .with_content_disposition(attachment_disposition(file_name));
        self.send_stream_spec(spec, reader, reports).await
    }

    async fn send_stream_spec<R: AsyncRead + Unpin + Send + 'static>(
        &self,
        spec: MessageSpec,
        mut reader: R,
        reports: Reports,
    ) -> Result<OutgoingMessage, Error> {
        let content_type = spec.content_type.clone().unwrap_or_default();
        self.check(&content_type, spec.size)?;
        let spec = spec
            .with_success_report(reports.success)
            .with_failure_report(reports.failure);
        let (out, chunk) = self.queue(spec, None).await?;
        // Blocks of one chunk: the core keeps each block as the body of one chunk, without
        // copying or joining blocks (the session's send window holds two chunks).
        let block = chunk.clamp(MIN_STREAM_BLOCK, MAX_STREAM_BLOCK);
        let (cmd, session, message_id) = (self.cmd.clone(), self.handle, out.message_id.clone());
        let pool = self.pool.clone();
        tokio::spawn(async move {
            loop {
                let mut buf = pool.get(block);
                let n = match read_block(&mut reader, &mut buf).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(%message_id, "reading the body failed: {e}; aborting");
                        let _ = cmd.send(Cmd::Abort {
                            session,
                            message_id,
                        });
                        return;
                    }
                };
                let (done, rx) = oneshot::channel();
                let sent = cmd.send(Cmd::Body {
                    session,
                    message_id: message_id.clone(),
                    data: buf,
                    fin: n == 0,
                    done,
                });
                if sent.is_err() || n == 0 {
                    return;
                }
                // Wait until the core took the block: back-pressure on the reader.
                match rx.await {
                    Ok(Ok(())) => {}
                    _ => return,
                }
            }
        });
        Ok(out)
    }

    async fn queue(
        &self,
        spec: MessageSpec,
        body: Option<Vec<u8>>,
    ) -> Result<(OutgoingMessage, usize), Error> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Send {
                session: self.handle,
                spec,
                body,
                reply,
            })
            .map_err(|_| Error::Shutdown)?;
        let (message_id, outcome, chunk) = rx.await.map_err(|_| Error::Shutdown)??;
        Ok((
            OutgoingMessage {
                message_id,
                outcome,
            },
            chunk,
        ))
    }

    /// Aborts a message being sent (`#`, RFC 4975 §7.1).
    pub fn abort(&self, message_id: &str) {
        let _ = self.cmd.send(Cmd::Abort {
            session: self.handle,
            message_id: message_id.to_string(),
        });
    }

    /// Closes the session.
    pub fn close(&self) {
        let _ = self.cmd.send(Cmd::Close {
            session: self.handle,
        });
    }
}

// ---- the driver ------------------------------------------------------------------------------

struct ConnIo {
    writer: mpsc::UnboundedSender<TransmitParts>,
    inflight: usize,
    reader: JoinHandle<()>,
    /// The writer task: it writes what it was given, then shuts the connection down.
    writer_task: JoinHandle<()>,
    /// Whether the reader may read (the core's [`Core::wants_input`]).
    readable: watch::Sender<bool>,
    /// Blocks the reader may have read and not yet seen processed ([`INPUT_BLOCKS`]), so
    /// that a pause takes effect within that many blocks.
    input_permits: Arc<tokio::sync::Semaphore>,
}

struct SessInfo {
    notices: mpsc::Sender<SessionNotice>,
    /// Outcome waiters: Message-ID -> (sender, resolve only on Delivered).
    waiters: HashMap<String, (OutcomeTx, bool)>,
}

struct PendingBody {
    /// The body; `data[off..]` is not yet taken by the core.
    data: Vec<u8>,
    /// How much of `data` the core has taken. An offset, not `drain`: a body larger than
    /// the send window is taken in many steps, and moving the rest down at every step would
    /// cost time quadratic in its size.
    off: usize,
    fin: bool,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

struct Driver {
    core: Core,
    pool: BlockPool,
    transport: Arc<dyn Transport>,
    in_tx: mpsc::Sender<Input>,
    /// Writer tasks report written bytes here; never paused, so writing goes on while
    /// reading waits for the application.
    wrote_tx: mpsc::UnboundedSender<(ConnectionHandle, usize)>,
    stash_bytes: usize,
    conns: HashMap<ConnectionHandle, ConnIo>,
    sessions: HashMap<SessionHandle, SessInfo>,
    bodies: HashMap<(SessionHandle, String), PendingBody>,
    /// Notices waiting for room in their session's channel, in order.
    stash: VecDeque<(mpsc::Sender<SessionNotice>, SessionNotice)>,
    /// Relay clients by connection: the first outcome's waiter, then the events channel.
    relays: HashMap<ConnectionHandle, RelayWatch>,
}

struct RelayWatch {
    first: Option<oneshot::Sender<Result<RelayBinding, Error>>>,
    events: mpsc::UnboundedSender<RelayEvent>,
    rx: Option<mpsc::UnboundedReceiver<RelayEvent>>,
}

impl Driver {
    async fn run(
        mut self,
        mut cmds: mpsc::UnboundedReceiver<Cmd>,
        mut inputs: mpsc::Receiver<Input>,
        mut wrote: mpsc::UnboundedReceiver<(ConnectionHandle, usize)>,
    ) {
        loop {
            self.pump();
            let deadline = self.core.poll_timeout();
            let sleep = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending().await,
                }
            };
            let blocked = self.stash.front().map(|(tx, _)| tx.clone());
            let room = async move {
                match blocked {
                    Some(tx) => tx.reserve_owned().await.ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(c) => self.on_cmd(c),
                    None => break,
                },
                input = inputs.recv(), if !self.stash_full() => match input {
                    Some(i) => self.on_input(i),
                    None => break,
                },
                Some((c, n)) = wrote.recv() => {
                    if let Some(io) = self.conns.get_mut(&c) {
                        io.inflight = io.inflight.saturating_sub(n);
                    }
                }
                permit = room, if !self.stash.is_empty() => {
                    let (_, n) = self.stash.pop_front().expect("non-empty");
                    self.stash_bytes -= notice_bytes(&n);
                    if let Some(p) = permit {
                        p.send(n);
                    }
                    self.flush_stash();
                }
                () = sleep => self.core.handle_timeout(Instant::now()),
            }
        }
        tracing::debug!("MSRP driver stopped");
    }

    /// Moves data until nothing more can move without waiting.
    fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut progress = false;
            let now = Instant::now();
            let conns: Vec<ConnectionHandle> = self.conns.keys().copied().collect();
            for c in conns {
                while self
                    .conns
                    .get(&c)
                    .is_some_and(|io| io.inflight < WRITE_WINDOW)
                {
                    let Some(data) = self.core.poll_transmit_parts(c, now) else {
                        break;
                    };
                    progress = true;
                    let io = self.conns.get_mut(&c).expect("checked");
                    io.inflight += data.len();
                    let _ = io.writer.send(data);
                }
            }
            while let Some(ev) = self.core.poll_event() {
                progress = true;
                self.on_event(ev);
            }
            progress |= self.feed_bodies();
            if !progress {
                break;
            }
        }
        // Back-pressure per connection: a peer that does not read our responses is not
        // read either (the core's limit on pending output).
        for (c, io) in &self.conns {
            let want = self.core.wants_input(*c);
            io.readable.send_if_modified(|r| {
                let changed = *r != want;
                *r = want;
                changed
            });
        }
    }

    fn feed_bodies(&mut self) -> bool {
        let mut progress = false;
        let keys: Vec<(SessionHandle, String)> = self.bodies.keys().cloned().collect();
        for k in keys {
            let b = self.bodies.get_mut(&k).expect("listed");
            if b.off < b.data.len() {
                // The whole body fits: hand the buffer over without a copy. Else the core
                // copies what fits now and we remember how far it got.
                let whole = b.off == 0 && b.data.len() <= self.core.write_capacity(k.0, &k.1);
                let r = if whole {
                    self.core.write_vec(k.0, &k.1, &mut b.data)
                } else {
                    let r = self.core.write(k.0, &k.1, &b.data[b.off..]);
                    if let Ok(n) = r {
                        b.off += n;
                    }
                    r
                };
                match r {
                    Ok(n) => progress |= n > 0,
                    Err(e) => {
                        let mut b = self.bodies.remove(&k).expect("listed");
                        if let Some(d) = b.done.take() {
                            let _ = d.send(Err(e.to_string()));
                        }
                        progress = true;
                        continue;
                    }
                }
            }
            let b = self.bodies.get_mut(&k).expect("listed");
            if b.off >= b.data.len() {
                let mut b = self.bodies.remove(&k).expect("listed");
                if b.fin {
                    let _ = self.core.finish(k.0, &k.1);
                }
                if let Some(d) = b.done.take() {
                    let _ = d.send(Ok(()));
                }
                progress = true;
            }
        }
        progress
    }

    /// Reading from the network waits while the application is this far behind (the peer
    /// is then slowed down by TCP flow control).
    fn stash_full(&self) -> bool {
        self.stash_bytes > STASH_BYTES || self.stash.len() > STASH_COUNT
    }

    fn notify(&mut self, s: SessionHandle, n: SessionNotice) {
        let Some(info) = self.sessions.get(&s) else {
            return;
        };
        self.stash_bytes += notice_bytes(&n);
        self.stash.push_back((info.notices.clone(), n));
        self.flush_stash();
    }

    fn flush_stash(&mut self) {
        while let Some((tx, _)) = self.stash.front() {
            match tx.clone().try_reserve_owned() {
                Ok(permit) => {
                    let (_, n) = self.stash.pop_front().expect("non-empty");
                    self.stash_bytes -= notice_bytes(&n);
                    permit.send(n);
                }
                Err(mpsc::error::TrySendError::Full(_)) => return,
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    // The application dropped the session's receiver.
                    if let Some((_, n)) = self.stash.pop_front() {
                        self.stash_bytes -= notice_bytes(&n);
                    }
                }
            }
        }
    }

    fn resolve(&mut self, s: SessionHandle, id: &str, r: Result<Outcome, SendFailure>) {
        let Some(info) = self.sessions.get_mut(&s) else {
            return;
        };
        let delivered_only = info.waiters.get(id).map(|(_, d)| *d);
        match (&r, delivered_only) {
            (Ok(Outcome::Sent), Some(true)) => {}
            (_, Some(_)) => {
                let (tx, _) = info.waiters.remove(id).expect("present");
                let _ = tx.send(r);
            }
            (_, None) => {}
        }
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Connect { connection, to } => {
                let t = self.transport.clone();
                let tx = self.in_tx.clone();
                tokio::spawn(async move {
                    let r = t.connect(&to).await;
                    let _ = tx.send(Input::Connected(connection, r)).await;
                });
            }
            Event::CloseConnection { connection, reason } => {
                tracing::debug!(%connection, %reason, "closing connection");
                if let Some(io) = self.conns.remove(&connection) {
                    // Dropping the writer's sender lets it write what it has (a last
                    // response, say 413), then shut its side down; nothing is read
                    // meanwhile. A peer that does not read gets CLOSE_GRACE for that, then
                    // the socket is dropped. After our FIN the reader reads for LINGER more
                    // (the core drops what it reads): closing with unread input would reset
                    // the connection and could lose that last response.
                    let ConnIo {
                        writer_task,
                        reader,
                        readable,
                        input_permits,
                        ..
                    } = io;
                    readable.send_replace(false);
                    let stop = writer_task.abort_handle();
                    tokio::spawn(async move {
                        let grace = msrp_proto::endpoint::CLOSE_GRACE;
                        if tokio::time::timeout(grace, writer_task).await.is_err() {
                            stop.abort();
                            tracing::debug!(%connection, "peer did not read; connection dropped");
                        } else {
                            // Read and drop, without waiting for the core.
                            input_permits.add_permits(1 << 16);
                            readable.send_replace(true);
                            tokio::time::sleep(LINGER).await;
                        }
                        drop(readable);
                        reader.abort();
                    });
                }
            }
            Event::SessionConnected { session, .. } => {
                self.notify(session, SessionNotice::Connected)
            }
            Event::SessionClosed { session, reason } => {
                self.bodies.retain(|(s, _), b| {
                    if *s == session {
                        if let Some(d) = b.done.take() {
                            let _ = d.send(Err("session closed".into()));
                        }
                    }
                    *s != session
                });
                if let Some(info) = self.sessions.get_mut(&session) {
                    for (id, (tx, _)) in info.waiters.drain() {
                        let _ = tx.send(Err(SendFailure {
                            message_id: id,
                            status: StatusCode::REQUEST_TIMEOUT,
                            reason: format!("session ended: {reason}"),
                        }));
                    }
                }
                self.notify(session, SessionNotice::Closed(reason));
                self.sessions.remove(&session);
            }
            Event::RequestRejected {
                connection,
                status,
                reason,
            } => tracing::info!(%connection, %status, %reason, "rejected a request"),
            Event::Session { session, event } => self.on_session_event(session, event),
            Event::Relay { connection, event } => self.on_relay_event(connection, event),
        }
    }

    fn on_relay_event(&mut self, c: ConnectionHandle, event: RelayEvent) {
        let Some(w) = self.relays.get_mut(&c) else {
            return;
        };
        match &event {
            RelayEvent::Authenticated { use_path, expires } => {
                tracing::info!(%c, ?use_path, ?expires, "authenticated to our relays")
            }
            RelayEvent::Failed(f) => tracing::warn!(%c, "relay authentication failed: {f}"),
        }
        if let Some(first) = w.first.take() {
            let r = match event {
                RelayEvent::Authenticated { use_path, expires } => Ok(RelayBinding {
                    use_path,
                    expires,
                    events: w.rx.take().expect("kept until the first outcome"),
                }),
                RelayEvent::Failed(f) => Err(Error::Relay(f)),
            };
            let _ = first.send(r);
        } else {
            let _ = w.events.send(event);
        }
    }

    fn on_session_event(&mut self, s: SessionHandle, ev: SessionEvent) {
        let notice = match ev {
            SessionEvent::SendReady { .. } => return,
            SessionEvent::MessageSent { message_id } => {
                self.resolve(s, &message_id, Ok(Outcome::Sent));
                SessionNotice::Sent { message_id }
            }
            SessionEvent::MessageDelivered { message_id } => {
                self.resolve(s, &message_id, Ok(Outcome::Delivered));
                SessionNotice::Delivered { message_id }
            }
            SessionEvent::DeliveryProgress {
                message_id,
                confirmed,
            } => SessionNotice::DeliveryProgress {
                message_id,
                confirmed,
            },
            SessionEvent::MessageFailed {
                message_id,
                status,
                reason,
            } => {
                let f = SendFailure {
                    message_id: message_id.clone(),
                    status,
                    reason,
                };
                if let Some(mut b) = self.bodies.remove(&(s, message_id.clone())) {
                    if let Some(d) = b.done.take() {
                        let _ = d.send(Err(f.to_string()));
                    }
                }
                self.resolve(s, &message_id, Err(f.clone()));
                SessionNotice::Failed(f)
            }
            SessionEvent::IncomingMessage {
                message_id,
                content_type,
                total,
                content_disposition,
            } => SessionNotice::IncomingStarted {
                message_id,
                content_type,
                total,
                content_disposition,
            },
            SessionEvent::IncomingData {
                message_id,
                offset,
                data,
            } => SessionNotice::IncomingData {
                message_id,
                offset,
                data,
            },
            SessionEvent::IncomingComplete { message_id, size } => {
                SessionNotice::IncomingComplete { message_id, size }
            }
            SessionEvent::IncomingAborted {
                message_id,
                received,
                reason,
            } => SessionNotice::IncomingAborted {
                message_id,
                received,
                reason,
            },
        };
        self.notify(s, notice);
    }

    fn new_session(&mut self, h: SessionHandle) -> mpsc::Receiver<SessionNotice> {
        let (tx, rx) = mpsc::channel(NOTICE_QUEUE);
        self.sessions.insert(
            h,
            SessInfo {
                notices: tx,
                waiters: HashMap::new(),
            },
        );
        rx
    }

    fn on_cmd(&mut self, cmd: Cmd) {
        let now = Instant::now();
        match cmd {
            Cmd::Add { params, reply } => {
                let r = match self.core.add_session(*params, now) {
                    Ok(h) => Ok((h, self.new_session(h))),
                    Err(e) => Err(Error::from(e)),
                };
                let _ = reply.send(r);
            }
            Cmd::AddOffered {
                local_uri,
                config,
                reply,
            } => {
                let h = self.core.add_offered_session(*local_uri, *config);
                let rx = self.new_session(h);
                let _ = reply.send((h, rx));
            }
            Cmd::Complete {
                session,
                params,
                reply,
            } => {
                let r = self.core.complete_session(session, *params, now);
                let _ = reply.send(r.map_err(Error::from));
            }
            Cmd::Send {
                session,
                spec,
                body,
                reply,
            } => {
                let wait_delivered = spec.success_report;
                let r = match self.core.send_message(session, spec) {
                    Ok(id) => {
                        let (tx, rx) = oneshot::channel();
                        if let Some(info) = self.sessions.get_mut(&session) {
                            info.waiters.insert(id.clone(), (tx, wait_delivered));
                        }
                        if let Some(data) = body {
                            self.bodies.insert(
                                (session, id.clone()),
                                PendingBody {
                                    data,
                                    off: 0,
                                    fin: true,
                                    done: None,
                                },
                            );
                        }
                        let chunk = self.core.session_chunk_size(session).unwrap_or(READ_BLOCK);
                        Ok((id, rx, chunk))
                    }
                    Err(e) => Err(Error::from(e)),
                };
                let _ = reply.send(r);
            }
            Cmd::Body {
                session,
                message_id,
                data,
                fin,
                done,
            } => {
                self.bodies.insert(
                    (session, message_id),
                    PendingBody {
                        data,
                        off: 0,
                        fin,
                        done: Some(done),
                    },
                );
            }
            Cmd::Abort {
                session,
                message_id,
            } => {
                self.bodies.remove(&(session, message_id.clone()));
                let _ = self.core.abort(session, &message_id);
            }
            Cmd::Close { session } => {
                let _ = self.core.close_session(session);
            }
            Cmd::Stats { reply } => {
                let _ = reply.send(EndpointStats {
                    connections: self.core.connections().count(),
                    sessions: self.core.session_count(),
                    core_buffered: self.core.buffered_bytes(),
                    write_inflight: self.conns.values().map(|io| io.inflight).sum(),
                    notice_backlog: self.stash_bytes,
                });
            }
            Cmd::Relay { config, reply } => match self.core.authenticate_relays(*config) {
                Ok(c) => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    self.relays.insert(
                        c,
                        RelayWatch {
                            first: Some(reply),
                            events: tx,
                            rx: Some(rx),
                        },
                    );
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
        }
    }

    fn attach(&mut self, c: ConnectionHandle, io: BoxedIo) {
        let (mut rd, mut wr) = tokio::io::split(io);
        let tx = self.in_tx.clone();
        let (readable, mut can_read) = watch::channel(true);
        let input_permits = Arc::new(tokio::sync::Semaphore::new(INPUT_BLOCKS));
        let permits = input_permits.clone();
        let reader = tokio::spawn(async move {
            loop {
                match permits.acquire().await {
                    Ok(p) => p.forget(),
                    Err(_) => return,
                }
                if can_read.wait_for(|r| *r).await.is_err() {
                    return;
                }
                let mut buf = Vec::with_capacity(READ_BLOCK);
                let end = match rd.read_buf(&mut buf).await {
                    Ok(0) => Some("closed by peer".to_string()),
                    Ok(_) => fill_ready(&mut rd, &mut buf).await,
                    Err(e) => Some(e.to_string()),
                };
                if !buf.is_empty() && tx.send(Input::Data(c, buf)).await.is_err() {
                    return;
                }
                if let Some(reason) = end {
                    let _ = tx.send(Input::Closed(c, reason)).await;
                    return;
                }
            }
        });
        let (wtx, mut wrx) = mpsc::unbounded_channel::<TransmitParts>();
        let tx = self.in_tx.clone();
        let wrote = self.wrote_tx.clone();
        let pool = self.pool.clone();
        let writer_task = tokio::spawn(async move {
            loop {
                // Flush whenever the queue runs dry: a TLS stream may accept bytes while its
                // records still wait in the TLS buffer (tokio-rustls returns `Ok(n)` when the
                // socket is full), and only a later write or a flush sends them. Without it
                // the last chunk or response of a burst could stay unsent. Plain TCP's flush
                // does nothing.
                let d = match wrx.try_recv() {
                    Ok(d) => d,
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        if let Err(e) = wr.flush().await {
                            let _ = tx
                                .send(Input::Closed(c, format!("write failed: {e}")))
                                .await;
                            return;
                        }
                        match wrx.recv().await {
                            Some(d) => d,
                            None => break,
                        }
                    }
                };
                if let Err(e) = write_parts(&mut wr, &d).await {
                    let _ = tx
                        .send(Input::Closed(c, format!("write failed: {e}")))
                        .await;
                    return;
                }
                let _ = wrote.send((c, d.len()));
                pool.put(d.body);
            }
            let _ = wr.shutdown().await;
        });
        self.conns.insert(
            c,
            ConnIo {
                writer: wtx,
                inflight: 0,
                reader,
                writer_task,
                readable,
                input_permits,
            },
        );
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Accepted(io, peer) => {
                match self.core.handle_accepted_from(peer.ip(), Instant::now()) {
                    Ok(c) => self.attach(c, io),
                    // Dropping the stream closes it unread.
                    Err(reason) => tracing::info!(%peer, %reason, "refused connection"),
                }
            }
            Input::Connected(c, Ok(io)) => {
                if self.core.connection(c).is_some() {
                    self.attach(c, io);
                    self.core.handle_connected(c);
                }
            }
            Input::Connected(c, Err(e)) => self.core.handle_connect_failed(c, &e.to_string()),
            Input::Data(c, mut d) => {
                // Received body bytes are handed to the application as slices of this buffer:
                // give a short read back its unused capacity so they do not keep it alive.
                if d.len() < d.capacity() / 2 {
                    d.shrink_to_fit();
                }
                self.core
                    .handle_input_bytes(c, bytes::Bytes::from(d), Instant::now());
                if let Some(io) = self.conns.get(&c) {
                    io.input_permits.add_permits(1);
                }
            }
            Input::Closed(c, reason) => {
                if let Some(io) = self.conns.remove(&c) {
                    io.reader.abort();
                    self.core.handle_closed(c, &reason);
                }
            }
        }
    }
}

/// Blocks for outgoing streams, recycled: a chunk body written by a connection writer goes
/// back here, and the next block read from a stream reuses it. The memory is then already
/// mapped and warm, instead of a fresh allocation whose pages fault in on the first write
/// (with 1 MiB blocks, glibc serves each from fresh pages). Bounded: at most
/// [`POOL_BYTES`] bytes are kept, in blocks of [`MIN_STREAM_BLOCK`] to
/// [`MAX_STREAM_BLOCK`] bytes, and never more blocks than streams took out and did not give
/// back: the bodies of small messages (`send_bytes`, copied into 4 KiB blocks by the core)
/// are not kept for streams that never come. Before that rule, an endpoint sending only small
/// messages ended up holding 4 MiB of blocks nobody would take (found by the relay soak:
/// `msrp load` grew by 4 KiB per message and session until each endpoint's pool was full).
#[derive(Clone, Default)]
struct BlockPool(Arc<std::sync::Mutex<PoolState>>);

#[derive(Default)]
struct PoolState {
    blocks: Vec<Vec<u8>>,
    /// Sum of the kept blocks' capacities.
    kept: usize,
    /// Blocks handed out by [`BlockPool::get`] and not yet given back.
    lent: usize,
}

/// Bytes of capacity a [`BlockPool`] keeps at most.
const POOL_BYTES: usize = 4 * 1024 * 1024;

impl fmt::Debug for BlockPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlockPool")
    }
}

impl BlockPool {
    /// An empty buffer with room for `cap` bytes (and not much more), reused if one is kept.
    fn get(&self, cap: usize) -> Vec<u8> {
        if let Ok(mut p) = self.0.lock() {
            p.lent += 1;
            if let Some(i) = p
                .blocks
                .iter()
                .position(|b| b.capacity() >= cap && b.capacity() <= cap.saturating_mul(2))
            {
                let mut b = p.blocks.swap_remove(i);
                p.kept -= b.capacity();
                b.clear();
                return b;
            }
        }
        Vec::with_capacity(cap)
    }

    /// Keeps `block` for reuse when it has a stream block's size, a stream took a block out
    /// that has not come back, and the pool has room.
    fn put(&self, block: Vec<u8>) {
        let cap = block.capacity();
        if !(MIN_STREAM_BLOCK..=MAX_STREAM_BLOCK).contains(&cap) {
            return;
        }
        if let Ok(mut p) = self.0.lock() {
            if p.lent == 0 {
                return;
            }
            p.lent -= 1;
            if p.kept + cap <= POOL_BYTES {
                p.kept += cap;
                p.blocks.push(block);
            }
        }
    }

    /// Bytes of capacity kept now.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.0.lock().map(|p| p.kept).unwrap_or(0)
    }
}

/// Writes head, body and tail of one output with vectored writes (one system call for a
/// whole chunk when the socket takes it), instead of joining them into one buffer first.
async fn write_parts<W: AsyncWrite + Unpin>(wr: &mut W, p: &TransmitParts) -> io::Result<()> {
    let parts = [&p.head[..], &p.body[..], &p.tail[..]];
    let (mut part, mut off) = (0, 0);
    while part < parts.len() {
        if parts[part].len() == off {
            part += 1;
            off = 0;
            continue;
        }
        let mut slices = [IoSlice::new(&[]), IoSlice::new(&[]), IoSlice::new(&[])];
        slices[0] = IoSlice::new(&parts[part][off..]);
        let mut k = 1;
        for rest in &parts[part + 1..] {
            slices[k] = IoSlice::new(rest);
            k += 1;
        }
        let mut n = wr.write_vectored(&slices[..k]).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while n > 0 && part < parts.len() {
            let left = parts[part].len() - off;
            if n >= left {
                n -= left;
                part += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
    }
    Ok(())
}

/// After a read, keeps reading into `buf` while bytes are ready at once and it has room, so
/// that one block (one trip through the driver) carries what the socket holds. A TLS stream
/// hands out one record (at most 16 KiB) per read; without this a 64 KiB block would carry a
/// quarter of what it can. Returns the reason the connection ended, if it did (the bytes read
/// before stay in `buf`).
async fn fill_ready<R: AsyncRead + Unpin>(rd: &mut R, buf: &mut Vec<u8>) -> Option<String> {
    while buf.len() < buf.capacity() {
        let mut read = std::pin::pin!(rd.read_buf(buf));
        let ready = std::future::poll_fn(|cx| match read.as_mut().poll(cx) {
            std::task::Poll::Ready(r) => std::task::Poll::Ready(Some(r)),
            std::task::Poll::Pending => std::task::Poll::Ready(None),
        })
        .await;
        match ready {
            None => return None,
            Some(Ok(0)) => return Some("closed by peer".into()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Some(e.to_string()),
        }
    }
    None
}

/// `attachment; filename="name"` (RFC 2183 §2.3) for a file name, which is written as a
/// quoted-string (RFC 2045 §5.1): quotes, backslashes and control characters are dropped.
pub fn attachment_disposition(file_name: &str) -> String {
    let clean: String = file_name
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect();
    format!("attachment; filename=\"{clean}\"")
}

/// The `filename` parameter of a Content-Disposition value (RFC 2183 §2.3), as given: a
/// quoted-string (unquoted, `\` escapes resolved) or a token. `None` when absent or empty.
/// The name is the peer's: sanitise it before using it as a path.
pub fn disposition_filename(value: &str) -> Option<String> {
    let mut rest = value.split_once(';')?.1;
    loop {
        let trimmed = rest.trim_start();
        let (name, after) = trimmed.split_once('=')?;
        let after = after.trim_start();
        let (param, next) = if let Some(q) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            out.push(e);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => out.push(c),
                }
            }
            let end = end?;
            let next = q[end..].split_once(';').map_or("", |(_, n)| n);
            (out, next)
        } else {
            let (v, next) = after.split_once(';').unwrap_or((after, ""));
            (v.trim().to_string(), next)
        };
        if name.trim().eq_ignore_ascii_case("filename") {
            return (!param.is_empty()).then_some(param);
        }
        if next.is_empty() {
            return None;
        }
        rest = next;
    }
}

/// Reads until `buf` is full (its capacity) or the reader ends; returns the bytes read.
async fn read_block<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut Vec<u8>) -> io::Result<usize> {
    while buf.len() < buf.capacity() {
        if reader.read_buf(buf).await? == 0 {
            break;
        }
    }
    Ok(buf.len())
}

fn notice_bytes(n: &SessionNotice) -> usize {
    match n {
        SessionNotice::IncomingData { data, .. } => data.len(),
        _ => 0,
    }
}

/// The host part for an advertised address (helper for applications building a
/// [`LocalConfig`] by hand).
pub fn host_of(addr: SocketAddr) -> Host {
    Host::from(addr.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_pool_keeps_only_what_streams_took_out() {
        let pool = BlockPool::default();
        // Small messages' bodies (4 KiB blocks from the core) with no stream: none kept,
        // however many.
        for _ in 0..2000 {
            pool.put(Vec::with_capacity(MIN_STREAM_BLOCK));
        }
        assert_eq!(pool.kept(), 0);
        // A stream takes a block out and its chunk body comes back: kept, and reused by the
        // next block of the stream (the same allocation).
        let b = pool.get(64 * 1024);
        let ptr = b.as_ptr();
        pool.put(b);
        assert_eq!(pool.kept(), 64 * 1024);
        let again = pool.get(64 * 1024);
        assert_eq!(again.as_ptr(), ptr);
        assert_eq!(pool.kept(), 0);
        // Only as many blocks come back in as went out: the second put has no lender.
        pool.put(again);
        pool.put(Vec::with_capacity(64 * 1024));
        assert_eq!(pool.kept(), 64 * 1024);
        // Bounded by POOL_BYTES even when streams took out more.
        let out: Vec<Vec<u8>> = (0..8).map(|_| pool.get(MAX_STREAM_BLOCK)).collect();
        for b in out {
            pool.put(b);
        }
        assert!(pool.kept() <= POOL_BYTES, "{}", pool.kept());
        // Blocks outside the stream sizes are never kept.
        let _ = pool.get(MIN_STREAM_BLOCK);
        pool.put(Vec::with_capacity(100));
        assert!(pool.kept() <= POOL_BYTES);
    }

    #[test]
    fn content_disposition_file_names_round_trip_and_parse() {
        for name in ["report.pdf", "a b;c=d.txt", "été.png"] {
            let v = attachment_disposition(name);
            assert_eq!(disposition_filename(&v).as_deref(), Some(name), "{v}");
        }
        // Quotes and backslashes cannot be written unescaped: they are dropped.
        assert_eq!(
            attachment_disposition("a\"b\\c\n.txt"),
            "attachment; filename=\"abc.txt\""
        );
        for (value, want) in [
            ("attachment; filename=plain.bin", Some("plain.bin")),
            ("attachment; size=3; filename=\"x\\\"y\"", Some("x\"y")),
            (
                "ATTACHMENT ;  FileName = \"../../etc/passwd\"",
                Some("../../etc/passwd"),
            ),
            ("inline", None),
            ("attachment; filename=\"\"", None),
            ("attachment; filename=\"unterminated", None),
            ("attachment; creation-date=\"x; filename=no\"", None),
        ] {
            assert_eq!(disposition_filename(value).as_deref(), want, "{value}");
        }
    }
}
