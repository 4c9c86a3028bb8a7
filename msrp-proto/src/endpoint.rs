//! The MSRP endpoint: the one type the IO layer drives (RFC 4975 §5.4, §7; RFC 6135 §4.2.2,
//! §6).
//!
//! An [`Endpoint`] owns every connection and every session. It never touches a socket or a
//! clock: the driver feeds it
//!
//! - connection lifecycle: [`handle_connected`](Endpoint::handle_connected) /
//!   [`handle_connect_failed`](Endpoint::handle_connect_failed) for connections it asked for
//!   with [`Event::Connect`], [`handle_accepted`](Endpoint::handle_accepted) for connections
//!   the listener accepted, [`handle_closed`](Endpoint::handle_closed) when one dies;
//! - bytes (with the time they arrived): [`handle_input`](Endpoint::handle_input);
//! - time: [`handle_timeout`](Endpoint::handle_timeout);
//!
//! and drains
//!
//! - bytes to write: [`poll_transmit`](Endpoint::poll_transmit) (or per connection,
//!   [`poll_transmit_on`](Endpoint::poll_transmit_on), to apply back-pressure);
//! - events: [`poll_event`](Endpoint::poll_event) ([`Event::Connect`] and
//!   [`Event::CloseConnection`] are instructions for the driver, the rest is for the
//!   application);
//! - the next deadline: [`poll_timeout`](Endpoint::poll_timeout).
//!
//! ```text
//! loop {
//!     while let Some(t) = ep.poll_transmit(now) { write t.data to t.connection }
//!     while let Some(ev) = ep.poll_event() { connect / close / tell the application }
//!     wait for: bytes (handle_input), a connection (handle_accepted / handle_connected),
//!               a closed socket (handle_closed), an application command, or poll_timeout()
//! }
//! ```
//!
//! # Binding
//!
//! The active side (the one the negotiation made active) connects to the plan's `connect_to`,
//! reusing an outbound connection to the same scheme, host and port when there is one
//! (RFC 4975 §5.4: "it SHOULD reuse that connection"), and immediately sends a bodiless SEND
//! so the passive side can bind the connection (RFC 4975 §5.4, RFC 6135 §4.2.2). The passive
//! side binds an accepted connection to the session named by the first request's To-Path when
//! its From-Path is the peer's URI from the SDP (or by session id alone with CEMA, RFC 6714);
//! an unknown session gets 481 and the connection stays unbound; a session already bound to
//! another connection gets 506 (RFC 4975 §5.4). An inbound connection that binds nothing
//! within [`EndpointConfig::bind_timeout`] is closed.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

pub use crate::connection::ConnectionHandle;
use crate::connection::{
    same_target, write_request, write_response, Connection, ConnectionState, Current, Direction,
    Reply,
};
use crate::message::{Event as ParseEvent, FailureReport, Limits, Method, StatusCode};
use crate::relay::client::{RelayClient, RelayClientConfig, RelayEvent, RelayFailure};
use crate::session::recv::respond;
use crate::session::{
    random_ident, IncomingSend, MessageSpec, SendError, Session, SessionConfig, SessionEvent,
};
use crate::uri::MsrpUri;

/// How long a connection we close may take to write its pending responses before it is
/// dropped anyway (a peer that does not read cannot keep it open).
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Unread responses at which the core closes a connection itself: twice
/// [`EndpointConfig::max_pending_output`] plus 256 KiB (room for the responses to the few
/// blocks a driver may have read before it paused).
pub fn hard_output_limit(max_pending_output: usize) -> usize {
    max_pending_output
        .saturating_mul(2)
        .saturating_add(256 * 1024)
}

/// Identifies a session of an [`Endpoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionHandle(pub u64);

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session#{}", self.0)
    }
}

/// Our connection role for a session (RFC 6135 §4.2: the result of the `a=setup` negotiation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionRole {
    /// We connect and send the first SEND.
    Active,
    /// We wait for the peer's connection and its first SEND.
    Passive,
}

/// What the endpoint needs to know about a negotiated session (typically derived from the
/// SDP layer's connection plan).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParams {
    /// Our role.
    pub role: SessionRole,
    /// Where to connect (`Some` for the active side; also for a passive side behind a relay).
    pub connect_to: Option<MsrpUri>,
    /// Send a SEND as soon as the connection is up (true exactly when active, RFC 4975 §5.4).
    pub send_binding_send: bool,
    /// Our session URI (matched against the To-Path of incoming requests).
    pub local_uri: MsrpUri,
    /// From-Path of our requests.
    pub local_path: Vec<MsrpUri>,
    /// To-Path of our requests (the peer's `a=path`, after any relays of ours).
    pub remote_path: Vec<MsrpUri>,
    /// The peer's session URI (matched against the From-Path of its first request).
    pub remote_uri: MsrpUri,
    /// Match sessions by session id only (CEMA, RFC 6714 §4).
    pub match_session_id_only: bool,
    /// Chunking, timeouts, accept-types and max-size.
    pub config: SessionConfig,
}

impl SessionParams {
    /// The parameters of a session negotiated with SDP (RFC 6135): role, where to connect,
    /// paths and session matching come from the connection plan; `config` carries our
    /// chunking, timeouts and receive policy (our accept-types and max-size).
    pub fn from_plan(plan: &crate::sdp::ConnectionPlan, config: SessionConfig) -> Self {
        SessionParams {
            role: match plan.role {
                crate::sdp::Role::Active => SessionRole::Active,
                crate::sdp::Role::Passive => SessionRole::Passive,
            },
            connect_to: plan.connect_to.clone(),
            send_binding_send: plan.send_binding_send,
            local_uri: plan.local_uri.clone(),
            local_path: plan.local_path.clone(),
            remote_path: plan.remote_path.clone(),
            remote_uri: plan.remote_uri.clone(),
            match_session_id_only: plan.match_session_id_only,
            config,
        }
    }

    /// True when the session goes through relays (RFC 4976): its To-Path has more than the
    /// peer's URI (our relays' Use-Path, the peer's relays, or both). Such a session cuts its
    /// chunks at [`SessionConfig::relay_chunk_size`] at most, since relays may limit the frame
    /// size.
    pub fn via_relay(&self) -> bool {
        self.remote_path.len() > 1
    }
}

/// Endpoint settings. Every limit is documented in `docs/limits.md` (default, and what
/// happens when a peer exceeds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Parser limits per connection: start line, header block, headers, URIs per path, and
    /// the largest chunk body accepted (a larger one is answered `413` and the connection
    /// closed, RFC 4975 §10.5).
    pub limits: Limits,
    /// An inbound connection that binds no session within this time is closed (the
    /// unbound-connection timeout: slow or endless header blocks, connections that never
    /// send a SEND for a session of ours).
    pub bind_timeout: Duration,
    /// A session that is not connected (bound, and for the active side its binding SEND
    /// answered) within this time is closed.
    pub connect_timeout: Duration,
    /// Most simultaneous accepted connections from one IP address (default 32); more are
    /// refused by [`Endpoint::handle_accepted_from`] (the driver closes them unread).
    pub max_connections_per_address: usize,
    /// Bytes of responses queued for one connection (the peer is not reading them) above
    /// which [`Endpoint::wants_input`] says to stop reading from it (default 1 MiB); at
    /// [`hard_output_limit`] the connection is closed, for drivers that keep reading.
    pub max_pending_output: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            limits: Limits::default(),
            bind_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            max_connections_per_address: 32,
            max_pending_output: 1024 * 1024,
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The application closed it.
    Local,
    /// The connection to `connect_to` could not be opened.
    ConnectFailed(String),
    /// The connection closed or broke (RFC 4975 §5.4: "If a connection fails for any reason,
    /// then an MSRP endpoint MUST consider any sessions associated with the connection as
    /// also having failed").
    ConnectionLost(String),
    /// The peer sent something that is not MSRP or broke a limit; the connection was closed.
    ProtocolError(String),
    /// The peer refused the session (481 or 506 to our SEND, or a failure REPORT, RFC 4975
    /// §7.3.2, §10.8, §10.10).
    Rejected {
        /// The status.
        status: StatusCode,
        /// Description.
        reason: String,
    },
    /// Not connected within [`EndpointConfig::connect_timeout`].
    NotConnected(String),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Local => f.write_str("closed locally"),
            CloseReason::ConnectFailed(r) => write!(f, "could not connect: {r}"),
            CloseReason::ConnectionLost(r) => write!(f, "connection lost: {r}"),
            CloseReason::ProtocolError(r) => write!(f, "protocol error from the peer: {r}"),
            CloseReason::Rejected { status, reason } => {
                write!(f, "rejected by the peer with {status}: {reason}")
            }
            CloseReason::NotConnected(r) => write!(f, "not connected: {r}"),
        }
    }
}

impl std::error::Error for CloseReason {}

/// What the endpoint tells its driver and the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Driver: open a transport connection (TCP, TLS for `msrps:`) to `to`'s host and port,
    /// then call [`Endpoint::handle_connected`] or [`Endpoint::handle_connect_failed`].
    Connect {
        /// The connection's handle.
        connection: ConnectionHandle,
        /// Where to.
        to: MsrpUri,
    },
    /// Driver: write what was already polled, then close the connection.
    CloseConnection {
        /// Which.
        connection: ConnectionHandle,
        /// Why.
        reason: String,
    },
    /// A session is connected: bound to a connection, and (active side) the peer accepted our
    /// binding SEND.
    SessionConnected {
        /// Which session.
        session: SessionHandle,
        /// On which connection.
        connection: ConnectionHandle,
    },
    /// A session ended; it accepts no more commands.
    SessionClosed {
        /// Which.
        session: SessionHandle,
        /// Why.
        reason: CloseReason,
    },
    /// We refused a request on a connection (for example 481 for an unknown session on an
    /// unbound connection, or 506).
    RequestRejected {
        /// The connection.
        connection: ConnectionHandle,
        /// The status we answered (or would have, with `Failure-Report: no`).
        status: StatusCode,
        /// Description.
        reason: String,
    },
    /// The relay client on a connection opened with [`Endpoint::authenticate_relays`]
    /// reports (RFC 4976 §5.1): authenticated (first time or after a refresh) or failed.
    Relay {
        /// The connection to the first relay.
        connection: ConnectionHandle,
        /// What.
        event: RelayEvent,
    },
    /// An event of a session (message progress and incoming messages).
    Session {
        /// Which session.
        session: SessionHandle,
        /// What.
        event: SessionEvent,
    },
}

/// Bytes to write on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The connection.
    pub connection: ConnectionHandle,
    /// The bytes.
    pub data: Vec<u8>,
}

/// Bytes for one connection in three parts, written in order: `head`, `body`, `tail`. Only a
/// SEND chunk has a `body` and `tail` (its end-line); the body is not copied on its way out.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TransmitParts {
    /// The head (start line, headers, blank line) or a whole message without a body.
    pub head: Vec<u8>,
    /// The chunk body, moved out of the send buffer.
    pub body: Vec<u8>,
    /// The end-line after the body.
    pub tail: Vec<u8>,
}

impl TransmitParts {
    /// Total length.
    pub fn len(&self) -> usize {
        self.head.len() + self.body.len() + self.tail.len()
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Waiting for the connection (active: connecting; passive: waiting for the peer).
    Waiting,
    /// Active side: the binding SEND is out, its response not yet in.
    Binding,
    /// Connected.
    Connected,
}

#[derive(Debug)]
struct SessionEntry {
    params: SessionParams,
    core: Session,
    conn: Option<ConnectionHandle>,
    state: SessionState,
    deadline: Option<Instant>,
    binding_message: Option<String>,
    /// Registered from our offer, before the answer: requests for our URI bind provisionally
    /// (see [`Endpoint::add_offered_session`]).
    provisional: bool,
    /// From-Path of the first request on a provisional binding, checked at completion.
    first_from: Option<MsrpUri>,
}

/// Outcome of parsing one buffer.
enum Run {
    Consumed(usize),
    Gone,
    Error(crate::message::ParseError),
}

/// Why an application command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// No such session (closed or never created).
    #[error("no such session")]
    UnknownSession,
    /// The session refused the command.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The session parameters are inconsistent.
    #[error("invalid session parameters: {0}")]
    InvalidParams(&'static str),
}

/// A random source supplied by the driver: fills the buffer with random bytes.
pub type Rng = Box<dyn FnMut(&mut [u8]) + Send>;

/// The sans-IO MSRP endpoint. See the [module documentation](self).
pub struct Endpoint {
    config: EndpointConfig,
    rng: Rng,
    sessions: HashMap<SessionHandle, SessionEntry>,
    /// Session handles in creation order (deterministic iteration).
    session_order: Vec<SessionHandle>,
    conns: HashMap<ConnectionHandle, Connection>,
    conn_order: Vec<ConnectionHandle>,
    events: VecDeque<Event>,
    next_id: u64,
    tx_rr: usize,
    /// The buffer being parsed in place by [`handle_input_bytes`](Self::handle_input_bytes):
    /// body bytes delivered from it share it.
    input_owner: Option<bytes::Bytes>,
    /// Relay clients, by the connection to their first relay (RFC 4976 §5.1), with whether
    /// their first round has started.
    relays: HashMap<ConnectionHandle, (RelayClient, bool)>,
    /// The latest time given as an input.
    now: Option<Instant>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("sessions", &self.session_order)
            .field("connections", &self.conn_order)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// A new endpoint. `rng` provides the randomness for transaction ids and Message-IDs.
    pub fn new(config: EndpointConfig, rng: Rng) -> Self {
        Endpoint {
            config,
            rng,
            sessions: HashMap::new(),
            session_order: Vec::new(),
            conns: HashMap::new(),
            conn_order: Vec::new(),
            events: VecDeque::new(),
            next_id: 1,
            tx_rr: 0,
            input_owner: None,
            relays: HashMap::new(),
            now: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    // ---- getters -------------------------------------------------------------------------

    /// State of a session, `None` once closed.
    pub fn session_state(&self, s: SessionHandle) -> Option<SessionState> {
        self.sessions.get(&s).map(|e| e.state)
    }

    /// The connection a session is bound to (or waits for).
    pub fn session_connection(&self, s: SessionHandle) -> Option<ConnectionHandle> {
        self.sessions.get(&s).and_then(|e| e.conn)
    }

    /// The largest chunk body a session sends ([`Session::chunk_size`]: its
    /// [`SessionConfig::max_chunk_size`], or at most its
    /// [`SessionConfig::relay_chunk_size`] through relays), `None` once closed.
    pub fn session_chunk_size(&self, s: SessionHandle) -> Option<usize> {
        self.sessions.get(&s).map(|e| e.core.chunk_size())
    }

    /// The parameters a session was created with.
    pub fn session_params(&self, s: SessionHandle) -> Option<&SessionParams> {
        self.sessions.get(&s).map(|e| &e.params)
    }

    /// The open or connecting connections.
    pub fn connections(&self) -> impl Iterator<Item = ConnectionHandle> + '_ {
        self.conn_order.iter().copied()
    }

    /// A connection's state.
    pub fn connection(&self, c: ConnectionHandle) -> Option<&Connection> {
        self.conns.get(&c)
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Bytes held for all connections (see [`Connection::buffered_bytes`]): what a peer can
    /// make the endpoint hold, bounded by the limits of [`EndpointConfig`].
    pub fn buffered_bytes(&self) -> usize {
        self.conns.values().map(Connection::buffered_bytes).sum()
    }

    /// Whether the driver should read from connection `c` now: `false` while more than
    /// [`EndpointConfig::max_pending_output`] bytes of responses wait for it (the peer sends
    /// requests but does not read what we answer), or once it is closing.
    pub fn wants_input(&self, c: ConnectionHandle) -> bool {
        self.conns.get(&c).is_some_and(|conn| {
            conn.state == ConnectionState::Open
                && conn.closing.is_none()
                && conn.control.len() <= self.config.max_pending_output
        })
    }

    // ---- application commands ------------------------------------------------------------

    /// Adds a negotiated session. An active session connects (or reuses a connection); a
    /// passive one waits for the peer's connection until the connect timeout.
    pub fn add_session(
        &mut self,
        params: SessionParams,
        now: Instant,
    ) -> Result<SessionHandle, EndpointError> {
        if params.local_path.is_empty() || params.remote_path.is_empty() {
            return Err(EndpointError::InvalidParams("empty local or remote path"));
        }
        if params.role == SessionRole::Active && params.connect_to.is_none() {
            return Err(EndpointError::InvalidParams(
                "an active session needs a connect_to URI",
            ));
        }
        let h = SessionHandle(self.next_id);
        self.next_id += 1;
        let mut core = Session::new(params.config.clone());
        core.set_via_relay(params.via_relay());
        let connect_to = params.connect_to.clone();
        self.sessions.insert(
            h,
            SessionEntry {
                params,
                core,
                conn: None,
                state: SessionState::Waiting,
                deadline: Some(now + self.config.connect_timeout),
                binding_message: None,
                provisional: false,
                first_from: None,
            },
        );
        self.session_order.push(h);
        if let Some(target) = connect_to {
            self.start_outbound(h, target);
        }
        Ok(h)
    }

    /// Registers the session of an offer we sent, before its answer arrives: our URI is
    /// known, the peer's is not. If the answer makes the peer active, its connection and first
    /// SEND may arrive before the application has processed the answer; they bind
    /// provisionally (the SEND gets its response), and [`complete_session`](Self::complete_session)
    /// checks the first request's From-Path against the answer's path then (RFC 4975 §5.4).
    pub fn add_offered_session(
        &mut self,
        local_uri: MsrpUri,
        config: SessionConfig,
    ) -> SessionHandle {
        let h = SessionHandle(self.next_id);
        self.next_id += 1;
        let params = SessionParams {
            role: SessionRole::Passive,
            connect_to: None,
            send_binding_send: false,
            local_path: vec![local_uri.clone()],
            remote_path: vec![local_uri.clone()],
            remote_uri: local_uri.clone(),
            local_uri,
            match_session_id_only: false,
            config: config.clone(),
        };
        self.sessions.insert(
            h,
            SessionEntry {
                params,
                core: Session::new(config),
                conn: None,
                state: SessionState::Waiting,
                deadline: None,
                binding_message: None,
                provisional: true,
                first_from: None,
            },
        );
        self.session_order.push(h);
        h
    }

    /// Completes a session registered with [`add_offered_session`](Self::add_offered_session)
    /// once the answer is known. `params.config` is ignored (the session keeps the
    /// configuration it was registered with).
    pub fn complete_session(
        &mut self,
        h: SessionHandle,
        params: SessionParams,
        now: Instant,
    ) -> Result<(), EndpointError> {
        if params.local_path.is_empty() || params.remote_path.is_empty() {
            return Err(EndpointError::InvalidParams("empty local or remote path"));
        }
        if params.role == SessionRole::Active && params.connect_to.is_none() {
            return Err(EndpointError::InvalidParams(
                "an active session needs a connect_to URI",
            ));
        }
        let e = self
            .sessions
            .get_mut(&h)
            .ok_or(EndpointError::UnknownSession)?;
        if !e.provisional {
            return Err(EndpointError::InvalidParams(
                "session is not awaiting completion",
            ));
        }
        let config = e.params.config.clone();
        e.params = SessionParams { config, ..params };
        e.core.set_via_relay(e.params.via_relay());
        e.provisional = false;
        e.deadline = Some(now + self.config.connect_timeout);
        let first_from = e.first_from.take();
        let bound = e.conn;
        let p = e.params.clone();
        if let Some(c) = bound {
            let ok = p.role == SessionRole::Passive
                && first_from.as_ref().is_some_and(|f| {
                    if p.match_session_id_only {
                        f.session_id.is_some() && f.session_id == p.remote_uri.session_id
                    } else {
                        p.remote_uri.equivalent(f)
                    }
                });
            if ok {
                let e = self.sessions.get_mut(&h).expect("exists");
                e.state = SessionState::Connected;
                self.events.push_back(Event::SessionConnected {
                    session: h,
                    connection: c,
                });
            } else {
                // Someone else bound it: undo, and drop that connection.
                let e = self.sessions.get_mut(&h).expect("exists");
                e.conn = None;
                if let Some(conn) = self.conns.get_mut(&c) {
                    conn.sessions.retain(|x| *x != h);
                }
                self.events.push_back(Event::RequestRejected {
                    connection: c,
                    status: StatusCode::SESSION_DOES_NOT_EXIST,
                    reason: format!(
                        "From-Path {} of the provisional binding is not the answer's peer {}",
                        first_from.map_or_else(|| "(none)".into(), |f| f.to_string()),
                        p.remote_uri
                    ),
                });
                if self
                    .conns
                    .get(&c)
                    .is_some_and(|conn| conn.sessions.is_empty())
                {
                    self.close_connection(c, "provisional binding did not match the answer");
                }
            }
        }
        // RFC 6135 §4.5: behind a relay we connect to it whatever our role (passive: no
        // binding SEND); a passive session already bound provisionally keeps its connection.
        if p.role == SessionRole::Active || bound.is_none() {
            if let Some(target) = p.connect_to {
                self.start_outbound(h, target);
            }
        }
        Ok(())
    }

    /// Connects an active session: reuses an outbound connection to the same target or asks
    /// the driver for a new one.
    fn start_outbound(&mut self, h: SessionHandle, target: MsrpUri) {
        // RFC 4975 §5.4: reuse a connection to the same host, port and scheme.
        let existing = self.conn_order.iter().copied().find(|c| {
            let conn = &self.conns[c];
            conn.state != ConnectionState::Closed
                && conn.closing.is_none()
                && conn
                    .outbound_target()
                    .is_some_and(|t| same_target(t, &target))
        });
        let c = match existing {
            Some(c) => c,
            None => {
                let c = ConnectionHandle(self.next_id);
                self.next_id += 1;
                self.conns.insert(
                    c,
                    Connection::new(
                        Direction::Outbound(target.clone()),
                        ConnectionState::Connecting,
                        self.config.limits,
                    ),
                );
                self.conn_order.push(c);
                self.events.push_back(Event::Connect {
                    connection: c,
                    to: target,
                });
                c
            }
        };
        self.conns.get_mut(&c).expect("exists").sessions.push(h);
        self.sessions.get_mut(&h).expect("exists").conn = Some(c);
        if self.conns[&c].state == ConnectionState::Open {
            self.on_outbound_up(h, c);
        }
    }

    /// Opens a connection to the first of `config.relays` and authenticates to each relay
    /// through it (RFC 4976 §5.1); the outcome comes as [`Event::Relay`], and the client
    /// refreshes before Expires by itself. Sessions whose `connect_to` is that relay reuse
    /// this connection (RFC 4976 §6.3: the granted URIs are only valid on it; RFC 6135 §4.5).
    /// The connection is kept while its relay client lives, with or without sessions.
    pub fn authenticate_relays(
        &mut self,
        config: RelayClientConfig,
    ) -> Result<ConnectionHandle, EndpointError> {
        let Some(first) = config.relays.first() else {
            return Err(EndpointError::InvalidParams("no relay to authenticate to"));
        };
        let target = first.uri.clone();
        let c = ConnectionHandle(self.next_id);
        self.next_id += 1;
        self.conns.insert(
            c,
            Connection::new(
                Direction::Outbound(target.clone()),
                ConnectionState::Connecting,
                self.config.limits,
            ),
        );
        self.conn_order.push(c);
        self.events.push_back(Event::Connect {
            connection: c,
            to: target,
        });
        self.relays.insert(c, (RelayClient::new(config), false));
        Ok(c)
    }

    /// Moves the relay client's events of connection `c` to the endpoint's events.
    fn drain_relay_events(&mut self, c: ConnectionHandle) {
        if let Some((client, _)) = self.relays.get_mut(&c) {
            while let Some(event) = client.poll_event() {
                self.events.push_back(Event::Relay {
                    connection: c,
                    event,
                });
            }
        }
    }

    /// Queues a message on a session; returns its Message-ID. Write its body with
    /// [`write`](Self::write) (unless bodiless or empty) and end it with
    /// [`finish`](Self::finish) when the size was not declared.
    pub fn send_message(
        &mut self,
        s: SessionHandle,
        spec: MessageSpec,
    ) -> Result<String, EndpointError> {
        let e = self
            .sessions
            .get_mut(&s)
            .ok_or(EndpointError::UnknownSession)?;
        let id = random_ident(&mut *self.rng, 20);
        e.core.send(id.clone(), spec)?;
        Ok(id)
    }

    /// Writes body bytes; returns how many were taken (0: wait for
    /// [`SessionEvent::SendReady`]).
    pub fn write(
        &mut self,
        s: SessionHandle,
        message_id: &str,
        data: &[u8],
    ) -> Result<usize, EndpointError> {
        let e = self
            .sessions
            .get_mut(&s)
            .ok_or(EndpointError::UnknownSession)?;
        Ok(e.core.write(message_id, data)?)
    }

    /// Like [`write`](Self::write) for an owned buffer, avoiding a copy when the message's
    /// buffer is empty and all of `data` fits. Taken bytes are removed from `data`.
    pub fn write_vec(
        &mut self,
        s: SessionHandle,
        message_id: &str,
        data: &mut Vec<u8>,
    ) -> Result<usize, EndpointError> {
        let e = self
            .sessions
            .get_mut(&s)
            .ok_or(EndpointError::UnknownSession)?;
        Ok(e.core.write_vec(message_id, data)?)
    }

    /// Bytes [`write`](Self::write) would take now.
    pub fn write_capacity(&self, s: SessionHandle, message_id: &str) -> usize {
        self.sessions
            .get(&s)
            .map_or(0, |e| e.core.write_capacity(message_id))
    }

    /// Ends a message's body.
    pub fn finish(&mut self, s: SessionHandle, message_id: &str) -> Result<(), EndpointError> {
        let e = self
            .sessions
            .get_mut(&s)
            .ok_or(EndpointError::UnknownSession)?;
        Ok(e.core.finish(message_id)?)
    }

    /// Aborts a message (`#`, RFC 4975 §7.1).
    pub fn abort(&mut self, s: SessionHandle, message_id: &str) -> Result<(), EndpointError> {
        let e = self
            .sessions
            .get_mut(&s)
            .ok_or(EndpointError::UnknownSession)?;
        Ok(e.core.abort(message_id)?)
    }

    /// Closes a session. Its connection is closed when no other session uses it (RFC 4975
    /// §5.4: "A connection SHOULD NOT be closed while there are sessions associated with it").
    pub fn close_session(&mut self, s: SessionHandle) -> Result<(), EndpointError> {
        if !self.sessions.contains_key(&s) {
            return Err(EndpointError::UnknownSession);
        }
        self.end_session(s, CloseReason::Local);
        Ok(())
    }

    // ---- inputs ----------------------------------------------------------------------------

    /// The listener accepted a connection (its peer address not counted; see
    /// [`handle_accepted_from`](Self::handle_accepted_from)).
    pub fn handle_accepted(&mut self, now: Instant) -> ConnectionHandle {
        let c = ConnectionHandle(self.next_id);
        self.next_id += 1;
        let mut conn = Connection::new(
            Direction::Inbound,
            ConnectionState::Open,
            self.config.limits,
        );
        conn.bind_deadline = Some(now + self.config.bind_timeout);
        self.conns.insert(c, conn);
        self.conn_order.push(c);
        c
    }

    /// The listener accepted a connection from `peer`. `Err` (the reason) when
    /// [`EndpointConfig::max_connections_per_address`] connections from that address are open
    /// already: the driver closes it without reading.
    pub fn handle_accepted_from(
        &mut self,
        peer: std::net::IpAddr,
        now: Instant,
    ) -> Result<ConnectionHandle, String> {
        let n = self
            .conns
            .values()
            .filter(|k| k.peer_ip == Some(peer))
            .count();
        if n >= self.config.max_connections_per_address {
            return Err(format!(
                "{n} connections from {peer} already (limit {})",
                self.config.max_connections_per_address
            ));
        }
        let c = self.handle_accepted(now);
        self.conns.get_mut(&c).expect("just added").peer_ip = Some(peer);
        Ok(c)
    }

    /// A connection asked for with [`Event::Connect`] is up.
    pub fn handle_connected(&mut self, c: ConnectionHandle) {
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        if conn.state != ConnectionState::Connecting {
            return;
        }
        conn.state = ConnectionState::Open;
        for s in conn.sessions.clone() {
            self.on_outbound_up(s, c);
        }
    }

    /// A connection asked for with [`Event::Connect`] could not be opened.
    pub fn handle_connect_failed(&mut self, c: ConnectionHandle, reason: &str) {
        if let Some((client, _)) = self.relays.remove(&c) {
            drop(client);
            let relay = self
                .conns
                .get(&c)
                .and_then(|k| k.outbound_target())
                .map(|u| u.to_string())
                .unwrap_or_default();
            self.events.push_back(Event::Relay {
                connection: c,
                event: RelayEvent::Failed(RelayFailure::Unreachable {
                    relay,
                    reason: reason.to_string(),
                }),
            });
        }
        self.drop_connection(
            c,
            |r| CloseReason::ConnectFailed(r.to_string()),
            reason,
            false,
        );
    }

    /// A connection closed (EOF or error). Its sessions end with
    /// [`CloseReason::ConnectionLost`].
    pub fn handle_closed(&mut self, c: ConnectionHandle, reason: &str) {
        let reason = match self.conns.get_mut(&c) {
            Some(conn) => {
                // A message cut off in the middle (RFC 4975 §7.3.1 notes truncated chunks).
                match conn.parser.as_mut().map(|p| p.finish(&conn.inbuf)) {
                    Some(Err(e)) if reason.is_empty() || reason == "closed by peer" => {
                        format!("{reason} ({e})")
                    }
                    _ => reason.to_string(),
                }
            }
            None => return,
        };
        self.drop_connection(
            c,
            |r| CloseReason::ConnectionLost(r.to_string()),
            &reason,
            false,
        );
    }

    /// Bytes arrived on a connection, in a buffer the endpoint may keep: body bytes are
    /// delivered ([`SessionEvent::IncomingData`]) as slices of it, without copying.
    pub fn handle_input_bytes(&mut self, c: ConnectionHandle, data: bytes::Bytes, now: Instant) {
        self.input_owner = Some(data.clone());
        self.handle_input(c, &data, now);
        self.input_owner = None;
    }

    /// Bytes arrived on a connection.
    pub fn handle_input(&mut self, c: ConnectionHandle, data: &[u8], now: Instant) {
        self.now = Some(self.now.map_or(now, |t| t.max(now)));
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        if conn.state != ConnectionState::Open || conn.closing.is_some() {
            return;
        }
        let Some(mut parser) = conn.parser.take() else {
            return;
        };
        let mut inbuf = std::mem::take(&mut conn.inbuf);
        let mut d = 0;
        // Bytes left over from the previous call (a partial head or a possible end-line at
        // the end of the buffer) are completed with small slices of `data`, until they are
        // consumed; then the bulk of `data` is parsed in place, without copying it.
        let mut result = Run::Consumed(0);
        while !inbuf.is_empty() && d < data.len() {
            let old = inbuf.len();
            let take = (data.len() - d).min(4096);
            inbuf.extend_from_slice(&data[d..d + take]);
            d += take;
            result = self.parse_run(c, &mut parser, &inbuf, now);
            match result {
                Run::Consumed(pos) if pos >= old => {
                    // What is left is a suffix of `data[..d]`: continue from `data` itself.
                    d -= inbuf.len() - pos;
                    inbuf.clear();
                }
                Run::Consumed(pos) => {
                    inbuf.drain(..pos);
                }
                _ => break,
            }
        }
        if inbuf.is_empty() && matches!(result, Run::Consumed(_)) {
            result = self.parse_run(c, &mut parser, &data[d..], now);
            if let Run::Consumed(pos) = result {
                inbuf = data[d + pos..].to_vec();
            }
        }
        match result {
            Run::Gone => return,
            Run::Error(e) => {
                // The byte stream cannot be resynchronised: close the connection. A request
                // whose body broke the chunk limit is answered 413 first (RFC 4975 §10.5:
                // "the request was larger than the receiver is willing to accept").
                let reason = format!("unparsable input: {e}");
                if e.status_code() == StatusCode::MESSAGE_TOO_LARGE {
                    self.refuse_current(c, StatusCode::MESSAGE_TOO_LARGE, &reason);
                    self.after_input();
                    return;
                }
                self.drop_connection(
                    c,
                    |r| CloseReason::ProtocolError(r.to_string()),
                    &reason,
                    true,
                );
                return;
            }
            Run::Consumed(_) => {}
        }
        if let Some(conn) = self.conns.get_mut(&c) {
            conn.parser = Some(parser);
            conn.inbuf = inbuf;
            if conn.control.len() > hard_output_limit(self.config.max_pending_output) {
                // The driver kept reading although wants_input said no: the memory bound
                // holds anyway.
                let reason = format!(
                    "the peer does not read our responses ({} bytes waiting)",
                    conn.control.len()
                );
                self.drop_connection(
                    c,
                    |r| CloseReason::ProtocolError(r.to_string()),
                    &reason,
                    true,
                );
                return;
            }
        }
        self.after_input();
    }

    /// The request being received on `c` broke a limit: it is answered `status` (subject to
    /// its Failure-Report; an incoming message is aborted), then the connection is closed
    /// once the response is written; its sessions end with a protocol error.
    fn refuse_current(&mut self, c: ConnectionHandle, status: StatusCode, reason: &str) {
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        let reply = match std::mem::replace(&mut conn.current, Current::Idle) {
            Current::Send {
                session,
                cursor,
                reply,
            } => {
                if let Some(e) = self.sessions.get_mut(&session) {
                    // `#`: the chunk is cut off; the session reports the message aborted.
                    let _ = e.core.recv_end(cursor, crate::message::Continuation::Abort);
                }
                respond(reply.failure_report, status).map(|_| reply)
            }
            Current::Discard {
                respond: Some((reply, _)),
            } => respond(reply.failure_report, status).map(|_| reply),
            _ => None,
        };
        if let Some(reply) = reply {
            self.queue_response(c, &reply, status);
        }
        self.events.push_back(Event::RequestRejected {
            connection: c,
            status,
            reason: reason.to_string(),
        });
        if let Some(conn) = self.conns.get_mut(&c) {
            // Nothing more is read from it (the parser stays taken).
            conn.closing = Some(reason.to_string());
            conn.inbuf.clear();
        }
        if self.conns.get(&c).is_some_and(|k| k.control.is_empty()) {
            self.drop_connection(
                c,
                |r| CloseReason::ProtocolError(r.to_string()),
                reason,
                true,
            );
        }
    }

    /// Parses `input` until the parser needs more; returns how much it consumed.
    fn parse_run(
        &mut self,
        c: ConnectionHandle,
        parser: &mut crate::message::Parser,
        input: &[u8],
        now: Instant,
    ) -> Run {
        let mut pos = 0;
        loop {
            match parser.parse(&input[pos..]) {
                Ok((n, Some(ev))) => {
                    pos += n;
                    self.on_parse_event(c, ev, now);
                    if !self.conns.contains_key(&c) {
                        return Run::Gone;
                    }
                }
                Ok((_, None)) => return Run::Consumed(pos),
                Err(e) => return Run::Error(e),
            }
        }
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = Some(self.now.map_or(now, |t| t.max(now)));
        let relay_conns: Vec<ConnectionHandle> = self.relays.keys().copied().collect();
        for c in relay_conns {
            if let Some((client, _)) = self.relays.get_mut(&c) {
                client.handle_timeout(now);
            }
            self.drain_relay_events(c);
        }
        for s in self.session_order.clone() {
            let Some(e) = self.sessions.get_mut(&s) else {
                continue;
            };
            e.core.handle_timeout(now);
            if e.deadline.is_some_and(|d| d <= now) && e.state != SessionState::Connected {
                let why = match (e.params.role, e.state) {
                    (SessionRole::Passive, _) => format!(
                        "the peer did not connect and send its first SEND within {} s",
                        self.config.connect_timeout.as_secs()
                    ),
                    (SessionRole::Active, SessionState::Binding) => format!(
                        "the peer did not answer our first SEND within {} s",
                        self.config.connect_timeout.as_secs()
                    ),
                    (SessionRole::Active, _) => format!(
                        "the connection was not established within {} s",
                        self.config.connect_timeout.as_secs()
                    ),
                };
                self.end_session(s, CloseReason::NotConnected(why));
            }
        }
        for c in self.conn_order.clone() {
            let Some(conn) = self.conns.get(&c) else {
                continue;
            };
            if conn.close_deadline.is_some_and(|d| d <= now) {
                let why = format!(
                    "{} (its pending responses were not read within {} s)",
                    conn.closing.clone().unwrap_or_default(),
                    CLOSE_GRACE.as_secs()
                );
                self.finish_close(c, &why);
                continue;
            }
            if conn.bind_deadline.is_some_and(|d| d <= now)
                && conn.sessions.is_empty()
                && conn.closing.is_none()
            {
                let why = format!(
                    "no session bound within {} s",
                    self.config.bind_timeout.as_secs()
                );
                self.close_connection(c, &why);
            }
        }
        self.after_input();
    }

    // ---- outputs ---------------------------------------------------------------------------

    /// The next deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let s = self
            .sessions
            .values()
            .flat_map(|e| {
                [
                    e.core.poll_timeout(),
                    e.deadline.filter(|_| e.state != SessionState::Connected),
                ]
            })
            .flatten();
        let c = self.conns.values().filter_map(|c| {
            let bind = c
                .bind_deadline
                .filter(|_| c.sessions.is_empty() && c.closing.is_none());
            [bind, c.close_deadline].into_iter().flatten().min()
        });
        let r = self
            .relays
            .values()
            .filter_map(|(client, _)| client.poll_timeout());
        s.chain(c).chain(r).min()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.events.is_empty() {
            self.collect_session_events();
        }
        self.events.pop_front()
    }

    /// Bytes to write on any connection (round robin across connections).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        let n = self.conn_order.len();
        for i in 0..n {
            let c = self.conn_order[(self.tx_rr + i) % n];
            if let Some(data) = self.poll_transmit_on(c, now) {
                self.tx_rr = (self.tx_rr + i + 1) % n.max(1);
                return Some(Transmit {
                    connection: c,
                    data,
                });
            }
        }
        None
    }

    /// Bytes to write on one connection: pending responses first, then the next request of
    /// its sessions in turn (REPORTs, then one chunk). Call it only while the connection can
    /// take more, so that chunks are cut late and responses do not wait behind them.
    pub fn poll_transmit_on(&mut self, c: ConnectionHandle, now: Instant) -> Option<Vec<u8>> {
        let mut parts = self.poll_transmit_parts(c, now)?;
        if !parts.body.is_empty() || !parts.tail.is_empty() {
            parts.head.reserve(parts.body.len() + parts.tail.len());
            parts.head.extend_from_slice(&parts.body);
            parts.head.extend_from_slice(&parts.tail);
        }
        Some(parts.head)
    }

    /// Like [`poll_transmit_on`](Self::poll_transmit_on), without copying a chunk's body:
    /// the bytes to write are `head`, `body`, `tail` in that order (for a vectored write).
    /// The body is the buffer the application handed in (see [`write_vec`](Self::write_vec)).
    pub fn poll_transmit_parts(
        &mut self,
        c: ConnectionHandle,
        now: Instant,
    ) -> Option<TransmitParts> {
        let conn = self.conns.get_mut(&c)?;
        if conn.state != ConnectionState::Open {
            return None;
        }
        if !conn.control.is_empty() {
            return Some(TransmitParts {
                head: std::mem::take(&mut conn.control),
                ..TransmitParts::default()
            });
        }
        if conn.closing.is_some() {
            let reason = conn.closing.take().unwrap_or_default();
            self.finish_close(c, &reason);
            return None;
        }
        if let Some((client, started)) = self.relays.get_mut(&c) {
            if !*started {
                *started = true;
                client.start(now);
            }
            let msg = client.poll_transmit(now, &mut *self.rng);
            self.drain_relay_events(c);
            if let Some(msg) = msg {
                match msg.encode() {
                    Ok(out) => {
                        return Some(TransmitParts {
                            head: out,
                            ..TransmitParts::default()
                        })
                    }
                    Err(e) => {
                        self.close_connection(c, &format!("cannot write our AUTH: {e}"));
                        return None;
                    }
                }
            }
        }
        let conn = self.conns.get_mut(&c)?;
        let n = conn.sessions.len();
        for i in 0..n {
            let conn = self.conns.get_mut(&c)?;
            let s = conn.sessions[(conn.rr + i) % n];
            let Some(e) = self.sessions.get_mut(&s) else {
                continue;
            };
            if e.state == SessionState::Waiting || !e.core.wants_to_send() {
                continue;
            }
            let Some(mut req) = e.core.poll_request(now, &mut *self.rng) else {
                continue;
            };
            conn.rr = (conn.rr + i + 1) % n;
            let mut p = TransmitParts::default();
            match write_request(
                &mut req,
                &e.params.remote_path,
                &e.params.local_path,
                &mut p.head,
                Some(&mut p.body),
                &mut p.tail,
            ) {
                Ok(()) => return Some(p),
                Err(err) => {
                    // Our own request does not serialise: a bug or bad local parameters.
                    self.end_session(
                        s,
                        CloseReason::ProtocolError(format!("cannot write our request: {err}")),
                    );
                    return None;
                }
            }
        }
        None
    }

    // ---- internals -------------------------------------------------------------------------

    /// The outbound connection of an active session is up: send the binding SEND at once
    /// (RFC 4975 §5.4: "the active endpoint MUST immediately issue a SEND request").
    fn on_outbound_up(&mut self, s: SessionHandle, c: ConnectionHandle) {
        let e = self.sessions.get_mut(&s).expect("exists");
        if e.state != SessionState::Waiting {
            return;
        }
        if !e.params.send_binding_send {
            // Passive behind our relay (RFC 6135 §4.5): we connected, the peer sends first.
            return;
        }
        let id = random_ident(&mut *self.rng, 20);
        // A bodiless SEND, first in line (RFC 4975 §7.1: "the active endpoint sends a SEND
        // request immediately upon establishing a connection. If it has nothing to say at the
        // moment, it can send a request with no body").
        match e.core.send_first(id.clone(), MessageSpec::bodiless()) {
            Ok(()) => {
                e.binding_message = Some(id);
                e.state = SessionState::Binding;
            }
            Err(err) => {
                self.end_session(
                    s,
                    CloseReason::ProtocolError(format!("cannot queue the binding SEND: {err}")),
                );
                return;
            }
        }
        let _ = c;
    }

    fn on_parse_event(&mut self, c: ConnectionHandle, ev: ParseEvent<'_>, now: Instant) {
        match ev {
            ParseEvent::Head { head, body: _ } => self.on_head(c, head, now),
            ParseEvent::Body(data) => {
                let conn = self.conns.get_mut(&c).expect("exists");
                if let Current::Send {
                    session, cursor, ..
                } = &mut conn.current
                {
                    if let Some(e) = self.sessions.get_mut(session) {
                        e.core.recv_body_in(cursor, data, self.input_owner.as_ref());
                    }
                }
            }
            ParseEvent::End(flag) => {
                let conn = self.conns.get_mut(&c).expect("exists");
                match std::mem::replace(&mut conn.current, Current::Idle) {
                    Current::Idle => {}
                    Current::Send {
                        session,
                        cursor,
                        reply,
                    } => {
                        let status = match self.sessions.get_mut(&session) {
                            Some(e) => e.core.recv_end(cursor, flag),
                            // The session closed while its SEND was arriving.
                            None => {
                                respond(reply.failure_report, StatusCode::SESSION_DOES_NOT_EXIST)
                            }
                        };
                        if let Some(st) = status {
                            self.queue_response(c, &reply, st);
                        }
                    }
                    Current::Report {
                        session,
                        message_id,
                        byte_range,
                        status,
                    } => {
                        // RFC 4975 §7.1.2: no response to a REPORT, ever.
                        if let (Some(e), Some(mid), Some(st)) =
                            (self.sessions.get_mut(&session), message_id, status)
                        {
                            e.core.handle_report(&mid, byte_range, st);
                        }
                    }
                    Current::Discard { respond } => {
                        if let Some((reply, st)) = respond {
                            self.queue_response(c, &reply, st);
                        }
                    }
                }
            }
        }
    }

    fn queue_response(&mut self, c: ConnectionHandle, reply: &Reply, status: StatusCode) {
        if let Some(conn) = self.conns.get_mut(&c) {
            // RFC 4975 §7.2: "The response MUST be transmitted back on the same connection on
            // which the original request arrived."
            let _ = write_response(reply, status, &mut conn.control);
        }
    }

    fn on_head(&mut self, c: ConnectionHandle, head: crate::message::MessageHead, now: Instant) {
        let tid = head.transaction_id().to_string();
        if !head.is_request() {
            // A response: find the session whose transaction it answers.
            if let Some((client, _)) = self.relays.get_mut(&c) {
                if client.handle_response(now, &head) {
                    self.drain_relay_events(c);
                    self.conns.get_mut(&c).expect("exists").current =
                        Current::Discard { respond: None };
                    return;
                }
            }
            let status = head.status_code().unwrap_or(StatusCode::BAD_REQUEST);
            let sessions = self.conns[&c].sessions.clone();
            for s in sessions {
                if let Some(e) = self.sessions.get_mut(&s) {
                    if e.core.handle_response(&tid, status) {
                        break;
                    }
                }
            }
            self.conns.get_mut(&c).expect("exists").current = Current::Discard { respond: None };
            return;
        }
        let method = head.method().cloned().unwrap_or(Method::Other("".into()));
        let to_path = head.to_path();
        let from_path = head.from_path();
        let failure_report = head.failure_report().unwrap_or(FailureReport::Yes);
        // RFC 4975 §7.2: responses to SEND go to the previous hop only; others to the full path.
        let reply = Reply {
            transaction_id: tid,
            to_path: match method {
                Method::Send => from_path.iter().take(1).cloned().collect(),
                _ => from_path.clone(),
            },
            from_path: to_path.last().cloned().into_iter().collect(),
            failure_report,
        };
        let routed = self.route(c, to_path.last(), from_path.last());
        let current = match routed {
            Err((status, reason)) => {
                self.events.push_back(Event::RequestRejected {
                    connection: c,
                    status,
                    reason,
                });
                // RFC 4975 §7.3: "the receiver MUST generate a 481 error and ignore the
                // request" (subject to Failure-Report); never a response to a REPORT.
                let respond = match method {
                    Method::Report => None,
                    _ => respond(failure_report, status).map(|s| (reply, s)),
                };
                Current::Discard { respond }
            }
            Ok(s) => match method {
                Method::Send => {
                    let incoming = IncomingSend {
                        transaction_id: reply.transaction_id.clone(),
                        message_id: head.message_id().map(str::to_string),
                        byte_range: head.byte_range(),
                        content_type: head.content_type().map(|ct| ct.as_str().to_string()),
                        content_disposition: head.content_disposition().map(str::to_string),
                        success_report: head.success_report().unwrap_or(false),
                        failure_report,
                    };
                    let e = self.sessions.get_mut(&s).expect("routed");
                    let cursor = e.core.recv_head(&incoming, now);
                    Current::Send {
                        session: s,
                        cursor,
                        reply,
                    }
                }
                Method::Report => Current::Report {
                    session: s,
                    message_id: head.message_id().map(str::to_string),
                    byte_range: head.byte_range(),
                    status: head.status().map(|st| st.code),
                },
                // RFC 4975 §10.9 / §12: unknown methods get 501.
                _ => Current::Discard {
                    respond: respond(failure_report, StatusCode::NOT_IMPLEMENTED)
                        .map(|st| (reply, st)),
                },
            },
        };
        self.conns.get_mut(&c).expect("exists").current = current;
    }

    /// Finds the session a request on connection `c` belongs to, binding `c` to it when it is
    /// the passive side's first request (RFC 4975 §5.4, §7.3).
    fn route(
        &mut self,
        c: ConnectionHandle,
        to: Option<&MsrpUri>,
        from: Option<&MsrpUri>,
    ) -> Result<SessionHandle, (StatusCode, String)> {
        let Some(to) = to else {
            return Err((StatusCode::BAD_REQUEST, "request without To-Path".into()));
        };
        let found = self.session_order.iter().copied().find(|s| {
            let p = &self.sessions[s].params;
            if p.match_session_id_only {
                p.local_uri.session_id.is_some() && p.local_uri.session_id == to.session_id
            } else {
                p.local_uri.equivalent(to)
            }
        });
        let Some(s) = found else {
            return Err((
                StatusCode::SESSION_DOES_NOT_EXIST,
                format!("no session for To-Path {to}"),
            ));
        };
        let e = self.sessions.get_mut(&s).expect("found");
        match e.conn {
            Some(bound) if bound == c => {
                if e.state == SessionState::Waiting
                    && e.params.role == SessionRole::Passive
                    && !e.provisional
                {
                    // Passive behind a relay: the first request through our own connection.
                    e.state = SessionState::Connected;
                    self.events.push_back(Event::SessionConnected {
                        session: s,
                        connection: c,
                    });
                }
                Ok(s)
            }
            Some(_) => Err((
                StatusCode::WRONG_CONNECTION,
                format!("session {to} is bound to another connection"),
            )),
            None if e.provisional => {
                // Our offer's session, answer not processed yet: bind provisionally; the
                // From-Path is checked by complete_session.
                e.conn = Some(c);
                e.first_from = from.cloned();
                let conn = self.conns.get_mut(&c).expect("exists");
                conn.sessions.push(s);
                conn.bind_deadline = None;
                Ok(s)
            }
            None => {
                let from_ok = from.is_some_and(|f| {
                    if e.params.match_session_id_only {
                        f.session_id.is_some() && f.session_id == e.params.remote_uri.session_id
                    } else {
                        e.params.remote_uri.equivalent(f)
                    }
                });
                if !from_ok {
                    // RFC 4975 §5.4: the connecting host must be the one the URI was given
                    // to; its From-Path names it. Not a match: 481, stay unbound.
                    return Err((
                        StatusCode::SESSION_DOES_NOT_EXIST,
                        format!(
                            "From-Path {} is not the peer of session {to}",
                            from.map_or_else(|| "(none)".to_string(), |f| f.to_string())
                        ),
                    ));
                }
                e.conn = Some(c);
                e.state = SessionState::Connected;
                let conn = self.conns.get_mut(&c).expect("exists");
                conn.sessions.push(s);
                conn.bind_deadline = None;
                self.events.push_back(Event::SessionConnected {
                    session: s,
                    connection: c,
                });
                Ok(s)
            }
        }
    }

    /// After processing input or time: sessions that hit something fatal end.
    fn after_input(&mut self) {
        for s in self.session_order.clone() {
            let fatal = self.sessions.get_mut(&s).and_then(|e| e.core.take_fatal());
            if let Some(f) = fatal {
                self.collect_events_of(s);
                self.end_session(
                    s,
                    CloseReason::Rejected {
                        status: f.status,
                        reason: f.reason,
                    },
                );
            }
        }
        self.collect_session_events();
    }

    fn collect_session_events(&mut self) {
        for s in self.session_order.clone() {
            self.collect_events_of(s);
        }
    }

    fn collect_events_of(&mut self, s: SessionHandle) {
        let Some(e) = self.sessions.get_mut(&s) else {
            return;
        };
        let mut end = None;
        while let Some(ev) = e.core.poll_event() {
            // The binding SEND is ours, not the application's: its 200 connects the session.
            let is_binding = |id: &str| e.binding_message.as_deref() == Some(id);
            match ev {
                SessionEvent::MessageSent { message_id } if is_binding(&message_id) => {
                    e.binding_message = None;
                    if e.state == SessionState::Binding {
                        e.state = SessionState::Connected;
                        self.events.push_back(Event::SessionConnected {
                            session: s,
                            connection: e.conn.expect("bound"),
                        });
                    }
                }
                SessionEvent::MessageFailed {
                    message_id,
                    status,
                    reason,
                } if is_binding(&message_id) => {
                    e.binding_message = None;
                    end = Some(CloseReason::Rejected {
                        status,
                        reason: format!("our first SEND failed: {reason}"),
                    });
                }
                SessionEvent::SendReady { message_id }
                | SessionEvent::MessageDelivered { message_id }
                | SessionEvent::DeliveryProgress { message_id, .. }
                    if is_binding(&message_id) => {}
                ev => self.events.push_back(Event::Session {
                    session: s,
                    event: ev,
                }),
            }
        }
        if let Some(r) = end {
            if self.sessions.contains_key(&s) {
                self.end_session(s, r);
            }
        }
    }

    fn end_session(&mut self, s: SessionHandle, reason: CloseReason) {
        let Some(mut e) = self.sessions.remove(&s) else {
            return;
        };
        self.session_order.retain(|x| *x != s);
        let why = reason.to_string();
        e.core.close(&why);
        while let Some(ev) = e.core.poll_event() {
            let binding = matches!(&ev, SessionEvent::MessageFailed { message_id, .. }
                if e.binding_message.as_deref() == Some(message_id.as_str()));
            if !binding {
                self.events.push_back(Event::Session {
                    session: s,
                    event: ev,
                });
            }
        }
        self.events
            .push_back(Event::SessionClosed { session: s, reason });
        if let Some(c) = e.conn {
            let empty = match self.conns.get_mut(&c) {
                Some(conn) => {
                    conn.sessions.retain(|x| *x != s);
                    conn.sessions.is_empty()
                }
                None => false,
            };
            // The connection to our relay stays for its relay client (RFC 4976 §6.3).
            if empty && !self.relays.contains_key(&c) {
                self.close_connection(c, "no session left on the connection");
            }
        }
    }

    /// Closes a connection gracefully: pending responses are still written, then the driver
    /// is told to close it.
    fn close_connection(&mut self, c: ConnectionHandle, reason: &str) {
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        if conn.state == ConnectionState::Open && !conn.control.is_empty() {
            conn.closing = Some(reason.to_string());
            conn.close_deadline = self.now.map(|t| t + CLOSE_GRACE);
            return;
        }
        self.finish_close(c, reason);
    }

    fn finish_close(&mut self, c: ConnectionHandle, reason: &str) {
        self.drop_connection(
            c,
            |r| CloseReason::ConnectionLost(r.to_string()),
            reason,
            true,
        );
    }

    /// Removes a connection, ending the sessions on it with `why(reason)`.
    fn drop_connection(
        &mut self,
        c: ConnectionHandle,
        why: impl Fn(&str) -> CloseReason,
        reason: &str,
        tell_driver: bool,
    ) {
        let Some(conn) = self.conns.remove(&c) else {
            return;
        };
        self.conn_order.retain(|x| *x != c);
        if let Some((mut client, _)) = self.relays.remove(&c) {
            // RFC 4976 §6.3: the URIs the relays granted die with the connection.
            client.handle_connection_lost();
            while let Some(event) = client.poll_event() {
                self.events.push_back(Event::Relay {
                    connection: c,
                    event,
                });
            }
        }
        if tell_driver {
            self.events.push_back(Event::CloseConnection {
                connection: c,
                reason: reason.to_string(),
            });
        }
        for s in conn.sessions {
            if let Some(e) = self.sessions.get_mut(&s) {
                e.conn = None;
            }
            self.collect_events_of(s);
            self.end_session(s, why(reason));
        }
    }
}
