//! The sans-IO MSRP relay (RFC 4976 §6).
//!
//! [`Relay`] owns every connection of a relay process and decides everything; a driver (the
//! tokio one is `msrp::relay`) moves bytes and reports time. It never opens a socket, never
//! reads a clock and never draws random numbers itself (the caller supplies a [`RandomSource`]).
//!
//! # Driving it
//!
//! - Inputs: [`Relay::accept`] (a peer connected to us), [`Relay::connected`] /
//!   [`Relay::connect_failed`] (an outbound connection we asked for), [`Relay::receive`]
//!   (bytes read), [`Relay::advance`] (bytes written), [`Relay::closed`] (the transport
//!   closed), [`Relay::handle_timeout`].
//! - Outputs: [`Relay::poll_output`] until `None` ([`Output::Transmit`] says a connection has
//!   bytes in [`Relay::transmit`], [`Output::Connect`] asks for an outbound connection,
//!   [`Output::Close`] tells the driver to close one, [`Output::Event`] is for logs);
//!   [`Relay::poll_timeout`] is the next deadline; [`Relay::wants_read`] says whether to read
//!   from a connection now (backpressure: it is `false` while what we would forward cannot be
//!   queued).
//!
//! # What it does
//!
//! - **AUTH** (RFC 4976 §6.3, §9.1): a request addressed to this relay (a To-Path of one URI
//!   naming this relay) is challenged with `401` and a Digest `WWW-Authenticate`
//!   ([`DigestServer`]); right credentials get `200` with a `Use-Path` holding a fresh URI of
//!   this relay (96 random bits in the session id), `Expires` and `Authentication-Info`. The URI
//!   is bound to the connection the AUTH came in on and dies with it or at its expiry. A later
//!   AUTH by the same user with the same From-Path on that connection (a refresh) renews the
//!   URI it holds, with the new `Expires`, instead of issuing another. An
//!   `Expires` below the minimum gets `423` with `Min-Expires`, above the maximum `423` with
//!   `Max-Expires` (RFC 4976 §6.3); without `Expires` the default lifetime is granted. A
//!   wrong password or an unknown user gets `403`; a
//!   nonce we cannot have issued (or a realm/algorithm we did not offer) a new `401`; a stale
//!   nonce `401` with `stale=true`. After [`RelayLimits::max_failed_requests`] failures
//!   without a success the connection is closed (RFC 4976 §6.1, §6.3).
//! - **Forwarding** (RFC 4976 §6.2, §6.4): the first To-Path URI must be a URI this relay
//!   issued. If the request came in on the connection that URI is bound to (the client that
//!   obtained it), it travels outward to the next To-Path URI: over the bound connection of
//!   another of our URIs, or over a connection to that URI's authority (reused when one is
//!   open, otherwise [`Output::Connect`]; `msrps` means TLS). Otherwise it travels toward the
//!   client: the next To-Path URI must be the first From-Path URI of the client's AUTH (its
//!   own URI, or the relay before us), compared as RFC 4975 §6.1 without the session id, and
//!   the request goes out over the bound connection. Our URI moves from the front of To-Path
//!   to the front of From-Path. A URI naming this relay with an unknown or expired session id
//!   gets `481`; a request through this relay that is not allowed (no session id, a client
//!   using someone else's URI) `403`; a To-Path whose first URI is not this relay closes the
//!   connection (§6.2).
//! - **Transactions** (RFC 4976 §6.4.1, §6.4.3): a forwarded SEND keeps its transaction id
//!   when that id is free on the outbound connection (the body cannot contain its end-line,
//!   RFC 4975 §7.1), otherwise gets a random one. With `Failure-Report: yes` the previous hop
//!   gets `200` as soon as the chunk is in; an error response from the next hop, or no
//!   response 30 s after the last byte went out (`408`), becomes a REPORT to the original
//!   sender (`yes` or `partial`). A next-hop error while the chunk is still arriving aborts the
//!   outbound chunk (`#`) and answers the previous hop with that code. Responses to non-SEND
//!   requests (AUTH through a chain) travel back hop by hop with the paths rewritten.
//! - **Streaming**: bodies go through fragment by fragment; nothing holds a whole message.
//!   One message at a time is written to a connection; others wait (their connection is not
//!   read meanwhile), and responses and REPORTs queue behind it. A sender that stalls in the
//!   middle of a body (not held back by backpressure) for [`RelayLimits::body_stall_ms`] is
//!   closed, so it cannot hold the connection it writes to.
//! - **Limits** ([`RelayLimits`]): connections per peer address, bytes queued per connection
//!   (backpressure), the 30 s probation of connections without a successful request (§6.1),
//!   failed requests, chunk size (`413`), URIs per connection.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::message::{
    write_body_start, write_end_line, write_head, Continuation, Event, FailureReport, HeaderKind,
    Limits, MessageHead, Method, Parser, StatusCode,
};
use crate::relay::digest::{Algorithm, Authorization, DigestServer, Rejection};
use crate::relay::users::Users;
use crate::uri::{Host, MsrpUri, Scheme};

/// A refused body (not forwarded) longer than this many times
/// [`RelayLimits::max_chunk_bytes`] closes its connection.
pub const DISCARD_FACTOR: u64 = 16;

/// Port assumed for an MSRP URI without one (the IANA port for MSRP, also Kamailio's default).
pub const DEFAULT_PORT: u16 = 2855;

/// Supplies random bytes (a CSPRNG in production; anything deterministic in tests).
pub type RandomSource = Box<dyn FnMut(&mut [u8]) + Send>;

/// A connection handle, chosen by the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// Per-client limits. The defaults are safe for a public relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayLimits {
    /// Most simultaneous accepted connections from one IP address (default 32).
    pub max_connections_per_address: usize,
    /// Bytes queued for one connection beyond which the connections feeding it are not read
    /// (default 1 MiB). A message body is forwarded as it arrives, so this bounds memory per
    /// connection whatever the body size.
    pub max_pending_bytes: usize,
    /// Milliseconds a connection may stay without any successful request (RFC 4976 §6.1:
    /// "up to 30 seconds"; default 30 000).
    pub probation_ms: u64,
    /// Failed requests (AUTH failures, refused forwards) tolerated on a connection that has
    /// had no successful request; one more closes it (RFC 4976 §6.1, §6.3; default 5).
    pub max_failed_requests: u32,
    /// Largest chunk body forwarded; a larger one is answered `413` (default 64 MiB). A
    /// refused body that goes on beyond [`DISCARD_FACTOR`] times this closes the connection.
    pub max_chunk_bytes: u64,
    /// Most live Use-Path URIs bound to one connection (default 64); more AUTHs get `403`.
    pub max_sessions_per_connection: usize,
    /// AUTH failures (wrong password, unknown user, bad Authorization) tolerated from one IP
    /// address within [`auth_failure_window_ms`](Self::auth_failure_window_ms), across all its
    /// connections (default 20). Beyond it, AUTHs from that address get `403` without their
    /// credentials being checked, until the window since the last counted failure has passed:
    /// reconnecting does not buy an attacker more guesses (RFC 4976 §6.1, §9.1).
    pub max_auth_failures_per_address: u32,
    /// See [`max_auth_failures_per_address`](Self::max_auth_failures_per_address) (default
    /// 60 000).
    pub auth_failure_window_ms: u64,
    /// Milliseconds to wait for the next hop's response after the last byte of a forwarded
    /// request went out (RFC 4976 §6.4.1: 30 seconds; default 30 000).
    pub transaction_timeout_ms: u64,
    /// Milliseconds an outbound connection may take to establish before the requests
    /// waiting for it fail (default 10 000).
    pub connect_timeout_ms: u64,
    /// Milliseconds a connection may pause in the middle of a message body it is sending
    /// while nothing stops it (not held back by backpressure) before it is closed; meanwhile
    /// the connection it forwards to cannot carry other messages (default 30 000).
    pub body_stall_ms: u64,
    /// Parser limits (header block, headers, path length).
    pub parser: Limits,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            max_connections_per_address: 32,
            max_pending_bytes: 1024 * 1024,
            probation_ms: 30_000,
            max_failed_requests: 5,
            max_chunk_bytes: 64 * 1024 * 1024,
            max_sessions_per_connection: 64,
            max_auth_failures_per_address: 20,
            auth_failure_window_ms: 60_000,
            transaction_timeout_ms: 30_000,
            connect_timeout_ms: 10_000,
            body_stall_ms: 30_000,
            parser: Limits::default(),
        }
    }
}

/// How the relay names itself and authenticates clients.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The host name in the URIs this relay issues and recognises as its own (RFC 4976 §4.2
    /// asks for a fully qualified domain name; an IP literal works for tests).
    pub host: String,
    /// Other host names or addresses that also name this relay in To-Path URIs.
    pub aliases: Vec<String>,
    /// Port of the plain TCP listener (`msrp:` URIs), if any.
    pub tcp_port: Option<u16>,
    /// Port of the TLS listener (`msrps:` URIs), if any.
    pub tls_port: Option<u16>,
    /// The Digest realm.
    pub realm: String,
    /// The Digest algorithm challenged with.
    pub algorithm: Algorithm,
    /// Use-Path lifetime when the AUTH has no `Expires` (seconds; default 1800).
    pub default_expires: u32,
    /// Smallest `Expires` accepted; below it `423` with `Min-Expires` (default 60).
    pub min_expires: u32,
    /// Largest lifetime granted; a larger requested Expires gets `423` with `Max-Expires`
    /// (default 7200).
    pub max_expires: u32,
    /// Limits.
    pub limits: RelayLimits,
}

impl RelayConfig {
    /// A configuration with default lifetimes and limits.
    pub fn new(host: impl Into<String>, realm: impl Into<String>) -> Self {
        RelayConfig {
            host: host.into(),
            aliases: Vec::new(),
            tcp_port: None,
            tls_port: None,
            realm: realm.into(),
            algorithm: Algorithm::Sha256,
            default_expires: 1800,
            min_expires: 60,
            max_expires: 7200,
            limits: RelayLimits::default(),
        }
    }
}

/// Why the relay refused to create a [`Relay`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No listener port: the relay could not name itself.
    #[error("the relay needs a TCP or a TLS port")]
    NoPort,
    /// The realm or algorithm was refused by the Digest server.
    #[error("digest: {0}")]
    Digest(String),
    /// min_expires > max_expires or a zero lifetime.
    #[error("expires bounds: min {min} > max {max}, or a zero lifetime")]
    Expires {
        /// The minimum.
        min: u32,
        /// The maximum.
        max: u32,
    },
    /// The host is not usable in an MSRP URI.
    #[error("host {0:?} cannot appear in an MSRP URI")]
    Host(String),
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The connection has bytes in [`Relay::transmit`].
    Transmit(ConnId),
    /// Open a connection to `host:port` (TLS when `tls`, verifying the server as `host`) and
    /// report [`Relay::connected`] or [`Relay::connect_failed`].
    Connect {
        /// The handle the relay gave it.
        conn: ConnId,
        /// Host from the URI (a DNS name or an IP literal without brackets).
        host: String,
        /// Port.
        port: u16,
        /// `msrps`: use TLS.
        tls: bool,
    },
    /// Close the connection (everything queued for it has been handed out). The relay has
    /// forgotten it.
    Close(ConnId),
    /// Something to log.
    Event(RelayEvent),
}

/// Things worth a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEvent {
    /// A connection was accepted.
    Accepted {
        /// Handle.
        conn: ConnId,
        /// Peer address.
        peer: SocketAddr,
        /// Over TLS.
        tls: bool,
    },
    /// A connection was refused (too many from this address).
    Refused {
        /// Peer address.
        peer: SocketAddr,
        /// Why.
        reason: String,
    },
    /// A client authenticated and got a Use-Path.
    Authenticated {
        /// Handle.
        conn: ConnId,
        /// User name.
        user: String,
        /// The Use-Path value returned.
        use_path: String,
        /// Seconds granted.
        expires: u32,
    },
    /// An AUTH failed.
    AuthFailed {
        /// Handle.
        conn: ConnId,
        /// Status sent.
        status: u16,
        /// Why.
        reason: String,
    },
    /// A request was forwarded.
    Forwarded {
        /// Method.
        method: String,
        /// Where it came from.
        from: ConnId,
        /// Where it went.
        to: ConnId,
        /// Message-ID, if any.
        message_id: Option<String>,
    },
    /// A request was refused with a status code.
    Rejected {
        /// Handle.
        conn: ConnId,
        /// Status sent (0: none, the connection was dropped).
        status: u16,
        /// Why.
        reason: String,
    },
    /// A failure REPORT was generated.
    FailureReport {
        /// Where it went.
        conn: ConnId,
        /// The status reported.
        status: u16,
        /// Message-ID.
        message_id: String,
    },
    /// A connection went away (closed by the peer, by us, or failed).
    Closed {
        /// Handle.
        conn: ConnId,
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    Connecting,
    Open,
}

/// A message being received on a connection.
#[derive(Debug)]
enum Rx {
    /// Between messages.
    Idle,
    /// The head is decided; waiting until the target can take a new message.
    Waiting(Box<Pending>),
    /// Body bytes go to `target` as they arrive.
    Forward(Box<Forwarding>),
    /// Body bytes are dropped; at the end-line, `respond` (if any) is sent.
    Discard(Option<Box<MessageHead>>),
}

#[derive(Debug)]
struct Pending {
    target: ConnId,
    /// The head to send, as bytes (`MSRP tid ...`: the transaction id starts at byte 5).
    head: Vec<u8>,
    tid_len: usize,
    has_body: bool,
    /// Metadata to track the transaction once written.
    meta: TxMeta,
}

#[derive(Debug)]
struct Forwarding {
    target: ConnId,
    out_tid: String,
    body_started: bool,
    bytes: u64,
    meta: TxMeta,
}

/// What we remember about a forwarded request.
///
/// Its texts (transaction id, paths, Message-ID, Byte-Range) share one reference-counted
/// allocation: a forwarded SEND's metadata is made once per request and shared by the
/// forwarding state and the outbound transaction (docs/performance.md, relay section).
#[derive(Debug, Clone)]
struct TxMeta {
    source: ConnId,
    method: Method,
    fr: FailureReport,
    /// The request carried Authorization (AUTH failures are counted, RFC 4976 §6.3).
    had_authorization: bool,
    text: Arc<MetaText>,
}

/// The texts of a [`TxMeta`]: one string and where each field is in it.
#[derive(Debug)]
struct MetaText {
    all: String,
    in_tid: (u32, u32),
    from_path: (u32, u32),
    our_uri: (u32, u32),
    message_id: Option<(u32, u32)>,
    byte_range: Option<(u32, u32)>,
}

impl MetaText {
    /// `from_path`: the request's From-Path as received (where REPORTs go); `our_uri`: our
    /// URI as it led the To-Path (it moves to From-Path).
    fn new(
        in_tid: &str,
        from_path: &str,
        our_uri: &str,
        message_id: Option<&str>,
        byte_range: Option<&str>,
    ) -> MetaText {
        let len = in_tid.len()
            + from_path.len()
            + our_uri.len()
            + message_id.map_or(0, str::len)
            + byte_range.map_or(0, str::len);
        let mut all = String::with_capacity(len);
        let mut put = |v: &str| {
            let s = all.len() as u32;
            all.push_str(v);
            (s, all.len() as u32)
        };
        let in_tid = put(in_tid);
        let from_path = put(from_path);
        let our_uri = put(our_uri);
        let message_id = message_id.map(&mut put);
        let byte_range = byte_range.map(&mut put);
        MetaText {
            all,
            in_tid,
            from_path,
            our_uri,
            message_id,
            byte_range,
        }
    }

    fn get(&self, (s, e): (u32, u32)) -> &str {
        &self.all[s as usize..e as usize]
    }
}

impl TxMeta {
    /// The request's transaction id on the connection it came in on.
    fn in_tid(&self) -> &str {
        self.text.get(self.text.in_tid)
    }
    /// The request's From-Path as received (where REPORTs go).
    fn request_from_path(&self) -> &str {
        self.text.get(self.text.from_path)
    }
    /// Our URI (the first To-Path URI as received; it moved to From-Path).
    fn our_uri(&self) -> &str {
        self.text.get(self.text.our_uri)
    }
    fn message_id(&self) -> Option<&str> {
        self.text.message_id.map(|r| self.text.get(r))
    }
    fn byte_range(&self) -> Option<&str> {
        self.text.byte_range.map(|r| self.text.get(r))
    }
}

#[derive(Debug)]
struct Tx {
    meta: TxMeta,
    /// The source is still sending the body of this transaction.
    streaming: bool,
    deadline: Option<u64>,
}

/// A URI compared as RFC 4975 §6.1 says: scheme, host (lower case), port, session id.
type PrevHopKey = (bool, String, Option<u16>, Option<String>);

fn prev_hop_key(u: &MsrpUri) -> PrevHopKey {
    (
        u.is_secure(),
        u.host.to_plain_string().to_ascii_lowercase(),
        u.port,
        u.session_id().map(str::to_string),
    )
}

#[derive(Debug)]
struct Conn {
    peer: SocketAddr,
    tls: bool,
    state: ConnState,
    /// For outbound connections: (host lowercase, port, tls).
    target: Option<(String, u16, bool)>,
    /// The previous hop's URI (first From-Path URI) of the last request that came in on this
    /// connection toward one of our clients (key of [`Relay::prev_hops`]).
    prev_hop: Option<PrevHopKey>,
    /// The route of the last request forwarded from this connection ([`Relay::cached_route`]).
    route: Option<Box<RouteCache>>,
    accepted: bool,
    parser: Parser,
    inbuf: Vec<u8>,
    /// Input processing stopped on a busy or full target (not for lack of input).
    blocked: bool,
    rx: Rx,
    /// Bytes queued for the peer.
    out: VecDeque<u8>,
    /// Total bytes ever handed to the driver (advance).
    sent_total: u64,
    /// Total bytes ever queued.
    queued_total: u64,
    /// The source currently streaming a message into `out`.
    writer: Option<ConnId>,
    /// Whole messages waiting for `writer` to finish.
    deferred: VecDeque<Vec<u8>>,
    /// Sources waiting to write a message into this connection.
    waiters: VecDeque<ConnId>,
    /// Transactions whose timer starts once `sent_total` passes their end offset.
    timer_starts: VecDeque<(u64, String)>,
    /// Outbound transaction ids in use: tid -> transaction.
    txs: HashMap<String, Tx>,
    succeeded: bool,
    failures: u32,
    probation_deadline: Option<u64>,
    connect_deadline: Option<u64>,
    sessions: Vec<String>,
    closing: bool,
    /// When bytes last arrived.
    last_rx: u64,
    /// A stall timer is armed.
    stall_armed: bool,
    /// When the transaction sweep of this connection is armed ([`Timer::TxSweep`]).
    tx_sweep: Option<u64>,
    /// Body bytes of the current message dropped (not forwarded).
    discarded: u64,
}

impl Conn {
    fn new(peer: SocketAddr, tls: bool, state: ConnState, limits: &RelayLimits) -> Self {
        let mut parser_limits = limits.parser;
        // 413 is ours to send (RFC 4975 §7.1.1); the parser only bounds what it holds.
        parser_limits.max_body_bytes = u64::MAX;
        Conn {
            peer,
            tls,
            state,
            target: None,
            prev_hop: None,
            route: None,
            accepted: false,
            parser: Parser::new(parser_limits),
            inbuf: Vec::new(),
            blocked: false,
            rx: Rx::Idle,
            out: VecDeque::new(),
            sent_total: 0,
            queued_total: 0,
            writer: None,
            deferred: VecDeque::new(),
            waiters: VecDeque::new(),
            timer_starts: VecDeque::new(),
            txs: HashMap::new(),
            succeeded: false,
            failures: 0,
            probation_deadline: None,
            connect_deadline: None,
            sessions: Vec::new(),
            closing: false,
            last_rx: 0,
            stall_armed: false,
            tx_sweep: None,
            discarded: 0,
        }
    }
}

/// A Use-Path URI we issued.
#[derive(Debug, Clone)]
struct Binding {
    conn: ConnId,
    expires_at: u64,
    /// The first From-Path URI of the AUTH: the next hop back toward the client.
    toward_client: MsrpUri,
    /// Who authenticated, and the AUTH's whole From-Path (ending with the client's URI): a
    /// later AUTH with both the same on the same connection renews this URI.
    user: String,
    auth_from: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Probation(ConnId),
    Connect(ConnId),
    /// Transactions of a connection whose response is overdue (one timer per connection,
    /// not one per transaction: the heap stays small at any request rate).
    TxSweep(ConnId),
    Session(String),
    Stall(ConnId),
}

/// A routing decision kept for the next requests with the same paths (a session's chunks).
#[derive(Debug)]
struct RouteCache {
    /// The To-Path value decided for.
    to: String,
    /// The first From-Path URI decided for (it picks the previous hop's connection).
    from_first: String,
    /// `to[..ours_end]` are our URIs.
    ours_end: usize,
    /// Session ids of our URIs and the connections they were bound to.
    sids: Vec<(String, ConnId)>,
    route: CachedRoute,
    /// The previous hop noted ([`Conn::prev_hop`]).
    prev: Option<PrevHopKey>,
}

#[derive(Debug)]
enum CachedRoute {
    Conn(ConnId),
    Connect(MsrpUri),
}

/// Which way a request travels through us.
enum Route {
    Conn(ConnId),
    Connect(MsrpUri),
}

/// The relay. See the [module documentation](self).
pub struct Relay {
    config: RelayConfig,
    digest: DigestServer,
    users: Users,
    random: RandomSource,
    next_conn: u64,
    conns: HashMap<ConnId, Conn>,
    per_address: HashMap<IpAddr, usize>,
    /// AUTH failures by peer address: (count, time of the last one).
    auth_failures: HashMap<IpAddr, (u32, u64)>,
    sessions: HashMap<String, Binding>,
    /// Open or opening outbound connections by (host, port, tls).
    outbound: HashMap<(String, u16, bool), ConnId>,
    /// Connections by the previous hop that opened them (one per connection, see
    /// [`Conn::prev_hop`]): a peer that connected to us (an active UA, RFC 6135 §4.5) is
    /// reached over its own connection (RFC 4975 §5.4), not a new one to its a=path address.
    prev_hops: HashMap<PrevHopKey, ConnId>,
    outputs: VecDeque<Output>,
    timers: BinaryHeap<Reverse<(u64, Timer)>>,
    /// Connections to run again (unblocked).
    to_pump: VecDeque<ConnId>,
    now: u64,
    /// The parser's header and path limits are no looser than [`Limits::default`] (what a
    /// built head is held to): forwarded heads can then be rewritten as bytes.
    parser_within_defaults: bool,
    /// Our host and aliases, parsed once.
    our_hosts: Vec<Host>,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("host", &self.config.host)
            .field("connections", &self.conns.len())
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

fn random_hex(random: &mut RandomSource, bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    random(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn host_of(s: &str) -> Host {
    match s.parse::<IpAddr>() {
        Ok(ip) => Host::from(ip),
        Err(_) => Host::Name(s.to_string()),
    }
}

fn host_eq(a: &Host, b: &Host) -> bool {
    match (a, b) {
        (Host::Name(x), Host::Name(y)) => x.eq_ignore_ascii_case(y),
        _ => a.ip().is_some() && a.ip() == b.ip(),
    }
}

/// RFC 4975 §6.1 comparison without the session id.
fn same_authority(a: &MsrpUri, b: &MsrpUri) -> bool {
    a.scheme == b.scheme
        && host_eq(&a.host, &b.host)
        && a.port.unwrap_or(DEFAULT_PORT) == b.port.unwrap_or(DEFAULT_PORT)
        && a.transport.eq_ignore_ascii_case(&b.transport)
}

/// The first URI of a path header value and the rest after its space (the parser checked
/// that URIs are separated by exactly one SP, RFC 4975 §9).
fn split_first_uri(v: &str) -> (&str, &str) {
    v.split_once(' ').unwrap_or((v, ""))
}

/// The URIs of a path header value.
fn parse_uris(v: &str) -> Vec<MsrpUri> {
    v.split(' ')
        .filter_map(|u| MsrpUri::parse(u).ok())
        .collect()
}

fn join(uris: &[MsrpUri]) -> String {
    uris.iter()
        .map(|u| u.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Relay {
    /// A relay with this configuration, users and randomness. `secret` keys the Digest nonces
    /// (draw it from a CSPRNG at start-up).
    pub fn new(
        config: RelayConfig,
        users: Users,
        mut random: RandomSource,
    ) -> Result<Relay, ConfigError> {
        if config.tcp_port.is_none() && config.tls_port.is_none() {
            return Err(ConfigError::NoPort);
        }
        if config.min_expires > config.max_expires
            || config.max_expires == 0
            || config.default_expires == 0
        {
            return Err(ConfigError::Expires {
                min: config.min_expires,
                max: config.max_expires,
            });
        }
        let probe = MsrpUri::new(Scheme::Msrp, host_of(&config.host), 1, "x");
        if MsrpUri::parse(&probe.to_string()).is_err() {
            return Err(ConfigError::Host(config.host.clone()));
        }
        let mut secret = [0u8; 32];
        random(&mut secret);
        let digest = DigestServer::new(config.realm.clone(), config.algorithm, secret)
            .map_err(|e| ConfigError::Digest(e.to_string()))?;
        let d = Limits::default();
        let parser_within_defaults = config.limits.parser.max_headers <= d.max_headers
            && config.limits.parser.max_path_uris <= d.max_path_uris;
        let our_hosts = std::iter::once(&config.host)
            .chain(config.aliases.iter())
            .map(|h| host_of(h))
            .collect();
        Ok(Relay {
            parser_within_defaults,
            our_hosts,
            config,
            digest,
            users,
            random,
            next_conn: 1,
            conns: HashMap::new(),
            per_address: HashMap::new(),
            auth_failures: HashMap::new(),
            sessions: HashMap::new(),
            outbound: HashMap::new(),
            prev_hops: HashMap::new(),
            outputs: VecDeque::new(),
            timers: BinaryHeap::new(),
            to_pump: VecDeque::new(),
            now: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Number of connections (accepted and outbound).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Number of live Use-Path URIs.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Bytes queued for a connection (including messages waiting behind a body).
    pub fn pending_bytes(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, |c| {
            c.out.len() + c.deferred.iter().map(Vec::len).sum::<usize>()
        })
    }

    fn alloc(&mut self) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        id
    }

    fn event(&mut self, e: RelayEvent) {
        self.outputs.push_back(Output::Event(e));
    }

    fn timer(&mut self, at: u64, t: Timer) {
        self.timers.push(Reverse((at, t)));
    }

    // -----------------------------------------------------------------------------------------
    // Inputs
    // -----------------------------------------------------------------------------------------

    /// A peer connected to one of our listeners. `Err` (with the reason) when the per-address
    /// limit refuses it: close it without reading.
    pub fn accept(&mut self, peer: SocketAddr, tls: bool, now: u64) -> Result<ConnId, String> {
        self.now = now;
        let n = self.per_address.get(&peer.ip()).copied().unwrap_or(0);
        if n >= self.config.limits.max_connections_per_address {
            let reason = format!(
                "{n} connections from {} already (limit {})",
                peer.ip(),
                self.config.limits.max_connections_per_address
            );
            self.event(RelayEvent::Refused {
                peer,
                reason: reason.clone(),
            });
            return Err(reason);
        }
        *self.per_address.entry(peer.ip()).or_default() += 1;
        let id = self.alloc();
        let mut c = Conn::new(peer, tls, ConnState::Open, &self.config.limits);
        c.accepted = true;
        // RFC 4976 §6.1: the probationary period.
        let deadline = now + self.config.limits.probation_ms;
        c.probation_deadline = Some(deadline);
        self.conns.insert(id, c);
        self.timer(deadline, Timer::Probation(id));
        self.event(RelayEvent::Accepted {
            conn: id,
            peer,
            tls,
        });
        Ok(id)
    }

    /// An outbound connection asked for with [`Output::Connect`] is established (`peer` is
    /// the address connected to).
    pub fn connected(&mut self, conn: ConnId, peer: SocketAddr, now: u64) {
        self.now = now;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.state = ConnState::Open;
            c.peer = peer;
            c.connect_deadline = None;
            if !c.out.is_empty() {
                self.outputs.push_back(Output::Transmit(conn));
            }
        }
        self.run();
    }

    /// An outbound connection could not be established.
    pub fn connect_failed(&mut self, conn: ConnId, reason: &str, now: u64) {
        self.now = now;
        self.drop_conn(conn, &format!("connect failed: {reason}"), false);
        self.run();
    }

    /// The transport closed (peer closed, reset, or an I/O error).
    pub fn closed(&mut self, conn: ConnId, reason: &str, now: u64) {
        self.now = now;
        self.drop_conn(conn, reason, false);
        self.run();
    }

    /// Whether the driver should read from `conn` now. `false` while the relay cannot use
    /// more input from it (the message it is sending waits for, or fills, another
    /// connection; or it does not read what we send it).
    pub fn wants_read(&self, conn: ConnId) -> bool {
        let Some(c) = self.conns.get(&conn) else {
            return false;
        };
        if c.state != ConnState::Open || c.closing {
            return false;
        }
        let max = self.config.limits.max_pending_bytes;
        if c.blocked || c.out.len() > max {
            return false;
        }
        match &c.rx {
            Rx::Waiting(_) => false,
            Rx::Forward(f) => self.conns.get(&f.target).is_none_or(|t| t.out.len() <= max),
            _ => true,
        }
    }

    /// Bytes read from `conn`.
    pub fn receive(&mut self, conn: ConnId, data: &[u8], now: u64) {
        self.now = now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.closing {
            return;
        }
        c.last_rx = now;
        if c.inbuf.is_empty() {
            // Parse straight from the caller's bytes and keep only what the parser left
            // (a head not yet complete, a possible partial end-line, or what backpressure
            // holds back): body bytes are copied once, into the target's queue.
            if let Some((pos, blocked)) = self.feed(conn, data) {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.inbuf.extend_from_slice(&data[pos..]);
                    c.blocked = blocked;
                }
            }
        } else {
            c.inbuf.extend_from_slice(data);
            self.pump(conn);
        }
        self.run();
    }

    /// The bytes queued for `conn` (the driver writes a prefix and calls [`Relay::advance`]).
    pub fn transmit(&self, conn: ConnId) -> &[u8] {
        match self.conns.get(&conn) {
            Some(c) if c.state == ConnState::Open => c.out.as_slices().0,
            _ => &[],
        }
    }

    /// `n` bytes of [`Relay::transmit`] were written.
    pub fn advance(&mut self, conn: ConnId, n: usize, now: u64) {
        self.now = now;
        let max = self.config.limits.max_pending_bytes;
        let tt = self.config.limits.transaction_timeout_ms;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let n = n.min(c.out.len());
        c.out.drain(..n);
        c.sent_total += n as u64;
        let mut started = false;
        while let Some((off, _)) = c.timer_starts.front() {
            if *off > c.sent_total {
                break;
            }
            let (_, tid) = c.timer_starts.pop_front().unwrap_or_default();
            if let Some(tx) = c.txs.get_mut(&tid) {
                // RFC 4976 §6.4.1: the timer starts when the last byte has been sent.
                tx.deadline = Some(now + tt);
                started = true;
            }
        }
        if c.out.len() <= max {
            // The source that paused on this connection can go on: only the connection's
            // current writer streams a body into it (one message at a time).
            let writer = c.writer;
            let waiting = writer.filter(|w| {
                self.conns
                    .get(w)
                    .is_some_and(|s| matches!(&s.rx, Rx::Forward(f) if f.target == conn))
            });
            self.to_pump.extend(waiting);
            self.to_pump.push_back(conn);
        }
        if started {
            self.arm_tx_sweep(conn, now + tt);
        }
        let closing = self
            .conns
            .get(&conn)
            .is_some_and(|c| c.closing && c.out.is_empty());
        if closing {
            self.drop_conn(conn, "closed by the relay", true);
        } else if self.conns.get(&conn).is_some_and(|c| !c.out.is_empty()) {
            self.outputs.push_back(Output::Transmit(conn));
        }
        self.run();
    }

    /// The next deadline (same clock as `now`), if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Handles every deadline at or before `now`.
    pub fn handle_timeout(&mut self, now: u64) {
        self.now = now;
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, t))) = self.timers.pop() else {
                break;
            };
            match t {
                Timer::Probation(id) => {
                    let expired = self
                        .conns
                        .get(&id)
                        .is_some_and(|c| !c.succeeded && c.probation_deadline == Some(at));
                    if expired {
                        // RFC 4976 §6.1: no successful request in the probationary period.
                        self.event(RelayEvent::Rejected {
                            conn: id,
                            status: 0,
                            reason: "no successful request within the probation period".into(),
                        });
                        self.drop_conn(id, "probation expired", true);
                    }
                }
                Timer::Connect(id) => {
                    let expired = self
                        .conns
                        .get(&id)
                        .is_some_and(|c| c.connect_deadline == Some(at));
                    if expired {
                        self.drop_conn(id, "connect timed out", true);
                    }
                }
                Timer::Stall(id) => {
                    let stall = self.config.limits.body_stall_ms;
                    let state = self
                        .conns
                        .get(&id)
                        .map(|c| (matches!(c.rx, Rx::Forward(_)), c.last_rx));
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.stall_armed = false;
                    }
                    match state {
                        Some((true, last)) if self.body_blocked(id) || last + stall > now => {
                            // Held back by backpressure, or bytes came since: look again later.
                            let at = now.max(last) + stall;
                            self.arm_stall(id, at);
                        }
                        Some((true, _)) => {
                            self.event(RelayEvent::Rejected {
                                conn: id,
                                status: 0,
                                reason: format!(
                                    "stalled for {stall} ms in the middle of a message"
                                ),
                            });
                            self.drop_conn(id, "stalled in the middle of a message", true);
                        }
                        _ => {}
                    }
                }
                Timer::Session(sid) => {
                    if self.sessions.get(&sid).is_some_and(|b| b.expires_at <= now) {
                        // RFC 4976 §6.3: invalidated after the expiry time.
                        self.remove_session(&sid);
                    }
                }
                Timer::TxSweep(id) => {
                    let Some(c) = self.conns.get_mut(&id).filter(|c| c.tx_sweep == Some(at)) else {
                        continue;
                    };
                    c.tx_sweep = None;
                    let mut due: Vec<(u64, String)> = c
                        .txs
                        .iter()
                        .filter_map(|(tid, t)| t.deadline.filter(|d| *d <= now).map(|d| (d, tid)))
                        .map(|(d, tid)| (d, tid.clone()))
                        .collect();
                    due.sort();
                    let expired: Vec<Tx> = due
                        .iter()
                        .filter_map(|(_, tid)| c.txs.remove(tid))
                        .collect();
                    let next = c.txs.values().filter_map(|t| t.deadline).min();
                    if let Some(next) = next {
                        self.arm_tx_sweep(id, next);
                    }
                    for tx in expired {
                        // RFC 4976 §6.4.1: no response 30 s after the last byte: REPORT 408.
                        if tx.meta.method == Method::Send && tx.meta.fr == FailureReport::Yes {
                            self.failure_report(&tx.meta, StatusCode::REQUEST_TIMEOUT);
                        }
                    }
                }
            }
        }
        self.run();
    }

    /// The next thing for the driver to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Closes everything (shutdown): every connection gets [`Output::Close`].
    pub fn close_all(&mut self) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.drop_conn(id, "relay shutting down", true);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Connections
    // -----------------------------------------------------------------------------------------

    fn remove_session(&mut self, sid: &str) {
        if let Some(b) = self.sessions.remove(sid) {
            if let Some(c) = self.conns.get_mut(&b.conn) {
                c.sessions.retain(|s| s != sid);
            }
        }
    }

    /// Forgets a connection; `tell_driver` emits [`Output::Close`].
    fn drop_conn(&mut self, id: ConnId, reason: &str, tell_driver: bool) {
        let Some(c) = self.conns.remove(&id) else {
            return;
        };
        if c.accepted {
            if let Some(n) = self.per_address.get_mut(&c.peer.ip()) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_address.remove(&c.peer.ip());
                }
            }
        }
        if let Some(t) = &c.target {
            if self.outbound.get(t) == Some(&id) {
                self.outbound.remove(t);
            }
        }
        if let Some(k) = &c.prev_hop {
            if self.prev_hops.get(k) == Some(&id) {
                self.prev_hops.remove(k);
            }
        }
        // RFC 4976 §6.3: a client's URIs die with its connection.
        for sid in &c.sessions {
            self.sessions.remove(sid);
        }
        if tell_driver {
            self.outputs.push_back(Output::Close(id));
        }
        self.event(RelayEvent::Closed {
            conn: id,
            reason: reason.to_string(),
        });
        // Requests forwarded over it that wait for a response: REPORT (RFC 4976 §6.4.1).
        for (_, tx) in c.txs {
            if tx.meta.method == Method::Send && tx.meta.fr != FailureReport::No {
                if tx.streaming {
                    let rest = self.discard_rest(&tx.meta);
                    if let Some(s) = self.conns.get_mut(&tx.meta.source) {
                        if matches!(&s.rx, Rx::Forward(f) if f.target == id) {
                            s.rx = rest;
                            self.to_pump.push_back(tx.meta.source);
                        }
                    }
                }
                self.failure_report(&tx.meta, StatusCode::REQUEST_TIMEOUT);
            }
        }
        // A source streaming into it: drop the rest of its message.
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for sid in ids {
            let Some(s) = self.conns.get_mut(&sid) else {
                continue;
            };
            let hit = match &s.rx {
                Rx::Forward(f) => f.target == id,
                Rx::Waiting(p) => p.target == id,
                _ => false,
            };
            if hit {
                let meta = match std::mem::replace(&mut s.rx, Rx::Discard(None)) {
                    Rx::Forward(f) => f.meta,
                    Rx::Waiting(p) => p.meta,
                    _ => continue,
                };
                if meta.method == Method::Send && meta.fr != FailureReport::No {
                    self.failure_report(&meta, StatusCode::REQUEST_TIMEOUT);
                }
                let rest = self.discard_rest(&meta);
                if let Some(s) = self.conns.get_mut(&sid) {
                    s.rx = rest;
                }
                self.to_pump.push_back(sid);
            }
        }
        // The message it was streaming elsewhere: abort it there.
        if let Rx::Forward(f) = c.rx {
            self.abort_outbound(&f);
        }
        for w in c.waiters {
            self.to_pump.push_back(w);
        }
    }

    /// How to finish receiving a SEND whose forwarding failed after a failure REPORT was
    /// sent: the previous hop still gets its 200 (RFC 4976 §6.4.1: the final response is
    /// sent immediately; the failure travels in the REPORT).
    fn discard_rest(&self, meta: &TxMeta) -> Rx {
        if meta.method == Method::Send && meta.fr == FailureReport::Yes {
            Rx::Discard(self.response_for(meta, StatusCode::OK).map(Box::new))
        } else {
            Rx::Discard(None)
        }
    }

    fn arm_stall(&mut self, id: ConnId, at: u64) {
        if let Some(c) = self.conns.get_mut(&id) {
            if !c.stall_armed {
                c.stall_armed = true;
                self.timer(at, Timer::Stall(id));
            }
        }
    }

    /// Makes sure the connection's transaction sweep runs at `at` or earlier. Deadlines on a
    /// connection come in time order (now + the same timeout), so an armed sweep is never
    /// later than a new deadline; the sweep re-arms itself for the earliest one left.
    fn arm_tx_sweep(&mut self, id: ConnId, at: u64) {
        if let Some(c) = self.conns.get_mut(&id) {
            if c.tx_sweep.is_none_or(|s| s > at) {
                c.tx_sweep = Some(at);
                self.timer(at, Timer::TxSweep(id));
            }
        }
    }

    fn close_after_flush(&mut self, id: ConnId) {
        let empty = match self.conns.get_mut(&id) {
            Some(c) => {
                c.closing = true;
                c.out.is_empty() && c.state == ConnState::Open
            }
            None => return,
        };
        if empty {
            self.drop_conn(id, "closed by the relay", true);
        }
    }

    /// Queues a whole message for a connection (behind a body being streamed into it).
    fn send_whole(&mut self, id: ConnId, bytes: Vec<u8>) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.writer.is_some() {
            c.deferred.push_back(bytes);
        } else {
            c.queued_total += bytes.len() as u64;
            c.out.extend(bytes);
            if c.state == ConnState::Open {
                self.outputs.push_back(Output::Transmit(id));
            }
        }
    }

    fn queue(&mut self, id: ConnId, bytes: &[u8]) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.queued_total += bytes.len() as u64;
            c.out.extend(bytes);
            if c.state == ConnState::Open {
                self.outputs.push_back(Output::Transmit(id));
            }
        }
    }

    fn release_writer(&mut self, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.writer = None;
        let deferred: Vec<Vec<u8>> = c.deferred.drain(..).collect();
        let waiters: Vec<ConnId> = c.waiters.drain(..).collect();
        for d in deferred {
            self.queue(id, &d);
        }
        self.to_pump.extend(waiters);
    }

    fn run(&mut self) {
        let mut budget = 10_000;
        while let Some(id) = self.to_pump.pop_front() {
            budget -= 1;
            if budget == 0 {
                break;
            }
            self.pump(id);
        }
    }

    fn fail(&mut self, id: ConnId) {
        let limit = self.config.limits.max_failed_requests;
        if let Some(c) = self.conns.get_mut(&id) {
            if c.accepted && !c.succeeded {
                c.failures += 1;
                if c.failures > limit {
                    // RFC 4976 §6.1, §6.3: several unsuccessful requests: close.
                    self.event(RelayEvent::Rejected {
                        conn: id,
                        status: 0,
                        reason: format!("more than {limit} failed requests"),
                    });
                    self.close_after_flush(id);
                }
            }
        }
    }

    /// Whether AUTHs from `ip` are refused without a check
    /// ([`RelayLimits::max_auth_failures_per_address`]).
    fn auth_locked_out(&self, ip: IpAddr) -> bool {
        let l = &self.config.limits;
        self.auth_failures.get(&ip).is_some_and(|(n, last)| {
            *n >= l.max_auth_failures_per_address
                && self.now < last.saturating_add(l.auth_failure_window_ms)
        })
    }

    fn count_auth_failure(&mut self, ip: Option<IpAddr>) {
        let Some(ip) = ip else {
            return;
        };
        let (now, window) = (self.now, self.config.limits.auth_failure_window_ms);
        let e = self.auth_failures.entry(ip).or_insert((0, now));
        if now >= e.1.saturating_add(window) {
            *e = (0, now);
        }
        e.0 = e.0.saturating_add(1);
        e.1 = now;
        // Bounded memory: forget addresses whose window has passed once the table is big.
        if self.auth_failures.len() > 4096 {
            self.auth_failures
                .retain(|_, (_, last)| now < last.saturating_add(window));
            if self.auth_failures.len() > 8192 {
                // Too many addresses at once: keep only the one just counted.
                let keep = self.auth_failures.get(&ip).copied();
                self.auth_failures.clear();
                if let Some(k) = keep {
                    self.auth_failures.insert(ip, k);
                }
            }
        }
    }

    fn succeed(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.succeeded = true;
            c.probation_deadline = None;
        }
    }

    // -----------------------------------------------------------------------------------------
    // Input processing
    // -----------------------------------------------------------------------------------------

    /// Feeds a connection's buffered input to its parser until it is consumed or blocked.
    fn pump(&mut self, id: ConnId) {
        let mut inbuf = match self.conns.get_mut(&id) {
            Some(c) if !c.closing => std::mem::take(&mut c.inbuf),
            _ => return,
        };
        if let Some((pos, blocked)) = self.feed(id, &inbuf) {
            if let Some(c) = self.conns.get_mut(&id) {
                inbuf.drain(..pos);
                c.inbuf = inbuf;
                c.blocked = blocked;
            }
        }
    }

    /// Feeds `input` (the connection's buffered input, or freshly read bytes) to the
    /// connection's parser until it is consumed or blocked. Returns how many bytes were
    /// consumed and whether it stopped blocked, or `None` when the connection is gone or
    /// closed for broken framing (nothing more to keep).
    fn feed(&mut self, id: ConnId, inbuf: &[u8]) -> Option<(usize, bool)> {
        let mut pos = 0;
        let mut blocked = false;
        loop {
            if !self.try_unblock(id) || self.body_blocked(id) {
                blocked = true;
                break;
            }
            let c = self.conns.get_mut(&id)?;
            if c.closing {
                break;
            }
            // The parser only needs the connection; the event borrows `inbuf`.
            let res = c.parser.parse(&inbuf[pos..]);
            match res {
                Err(e) => {
                    // RFC 4975 §7.1 framing broken: nothing after it can be trusted.
                    let reason = format!("unparsable input: {e}");
                    self.event(RelayEvent::Rejected {
                        conn: id,
                        status: 0,
                        reason: reason.clone(),
                    });
                    if let Some(c) = self.conns.get_mut(&id) {
                        if let Rx::Forward(f) = std::mem::replace(&mut c.rx, Rx::Idle) {
                            self.abort_outbound(&f);
                        }
                    }
                    self.close_after_flush(id);
                    return None;
                }
                Ok((n, None)) => {
                    pos += n;
                    if n == 0 {
                        break;
                    }
                }
                Ok((n, Some(ev))) => {
                    pos += n;
                    self.on_event(id, ev);
                }
            }
        }
        Some((pos, blocked))
    }

    /// True while the current body target cannot take more bytes.
    fn body_blocked(&self, id: ConnId) -> bool {
        let max = self.config.limits.max_pending_bytes;
        match self.conns.get(&id).map(|c| &c.rx) {
            Some(Rx::Forward(f)) => self.conns.get(&f.target).is_some_and(|t| t.out.len() > max),
            _ => false,
        }
    }

    /// Starts a waiting message if its target is free; false if still waiting.
    fn try_unblock(&mut self, id: ConnId) -> bool {
        let target = match self.conns.get(&id).map(|c| &c.rx) {
            Some(Rx::Waiting(p)) => p.target,
            Some(_) => return true,
            None => return false,
        };
        let free = match self.conns.get_mut(&target) {
            Some(t) => {
                if t.writer.is_none() {
                    true
                } else {
                    if !t.waiters.contains(&id) {
                        t.waiters.push_back(id);
                    }
                    false
                }
            }
            None => {
                // Target gone (drop_conn normally switched us to Discard already).
                if let Some(c) = self.conns.get_mut(&id) {
                    c.rx = Rx::Discard(None);
                }
                return true;
            }
        };
        if !free {
            return false;
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return false;
        };
        let Rx::Waiting(p) = std::mem::replace(&mut c.rx, Rx::Idle) else {
            return true;
        };
        self.start_forward(id, *p);
        true
    }

    fn on_event(&mut self, id: ConnId, ev: Event<'_>) {
        match ev {
            Event::Head { head, body } => self.on_head(id, head, body),
            Event::Body(b) => self.on_body(id, b),
            Event::End(flag) => self.on_end(id, flag),
        }
    }

    fn on_body(&mut self, id: ConnId, b: &[u8]) {
        let max_chunk = self.config.limits.max_chunk_bytes;
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if let Rx::Discard(_) = c.rx {
            // A body we drop (refused with 413, 481, 403...) going on far beyond any chunk
            // we accept is an endless body: reading it forever would hold the connection.
            // Close (a finite oversized chunk just gets its 413).
            c.discarded += b.len() as u64;
            let limit = max_chunk.saturating_mul(DISCARD_FACTOR);
            if c.discarded > limit && !c.closing {
                self.event(RelayEvent::Rejected {
                    conn: id,
                    status: 0,
                    reason: format!("refused body goes on beyond {limit} bytes"),
                });
                self.close_after_flush(id);
            }
            return;
        }
        let Rx::Forward(f) = &mut c.rx else {
            return;
        };
        f.bytes += b.len() as u64;
        if f.bytes > max_chunk {
            // RFC 4975 §7.1.1 / §10.5: 413, stop forwarding this message.
            let Rx::Forward(f) = std::mem::replace(&mut c.rx, Rx::Discard(None)) else {
                return;
            };
            self.abort_outbound(&f);
            if f.meta.fr != FailureReport::No {
                if let Some(h) = self.response_for(&f.meta, StatusCode::MESSAGE_TOO_LARGE) {
                    self.send_head(id, &h);
                }
            }
            self.event(RelayEvent::Rejected {
                conn: id,
                status: 413,
                reason: format!("chunk larger than {max_chunk} bytes"),
            });
            return;
        }
        let target = f.target;
        let mut start = false;
        if !f.body_started {
            f.body_started = true;
            start = true;
        }
        let Some(t) = self.conns.get_mut(&target) else {
            return;
        };
        if start {
            let mut v = Vec::new();
            write_body_start(&mut v);
            t.out.extend(v.iter());
            t.queued_total += v.len() as u64;
        }
        t.out.extend(b.iter());
        t.queued_total += b.len() as u64;
        if t.state == ConnState::Open {
            self.outputs.push_back(Output::Transmit(target));
        }
    }

    fn on_end(&mut self, id: ConnId, flag: Continuation) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        match std::mem::replace(&mut c.rx, Rx::Idle) {
            Rx::Idle | Rx::Waiting(_) => {}
            Rx::Discard(resp) => {
                if let Some(h) = resp {
                    self.send_head(id, &h);
                }
            }
            Rx::Forward(f) => self.finish_forward(id, *f, flag),
        }
    }

    fn finish_forward(&mut self, id: ConnId, f: Forwarding, flag: Continuation) {
        let target = f.target;
        let mut v = Vec::new();
        write_end_line(&f.out_tid, f.body_started, flag, &mut v);
        self.queue(target, &v);
        let end = self.conns.get(&target).map_or(0, |t| t.queued_total);
        if let Some(t) = self.conns.get_mut(&target) {
            if let Some(tx) = t.txs.get_mut(&f.out_tid) {
                tx.streaming = false;
                if tx.meta.method == Method::Send && tx.meta.fr == FailureReport::Yes {
                    t.timer_starts.push_back((end, f.out_tid.clone()));
                } else if tx.meta.method != Method::Report {
                    // Responses to other requests (AUTH through a chain) or negative-only
                    // ones: forget them after the same time.
                    let at = self.now + self.config.limits.transaction_timeout_ms;
                    tx.deadline = Some(at);
                    self.arm_tx_sweep(target, at);
                }
            }
        }
        self.release_writer(target);
        // RFC 4976 §6.4.1: Failure-Report yes: a final response immediately, to the previous
        // hop only.
        if f.meta.method == Method::Send && f.meta.fr == FailureReport::Yes {
            if let Some(h) = self.response_for(&f.meta, StatusCode::OK) {
                self.send_head(id, &h);
            }
        }
        self.event(RelayEvent::Forwarded {
            method: f.meta.method.to_string(),
            from: id,
            to: target,
            message_id: f.meta.message_id().map(str::to_string),
        });
        self.succeed(id);
        if self.conns.get(&target).is_some_and(|t| !t.out.is_empty()) {
            self.outputs.push_back(Output::Transmit(target));
        }
    }

    /// Ends a partly forwarded chunk with `#` (RFC 4975 §7.1: abort).
    fn abort_outbound(&mut self, f: &Forwarding) {
        let target = f.target;
        let Some(t) = self.conns.get_mut(&target) else {
            return;
        };
        if t.writer != Some(f.meta.source) {
            return;
        }
        let mut v = Vec::new();
        write_end_line(&f.out_tid, f.body_started, Continuation::Abort, &mut v);
        t.out.extend(v.iter());
        t.queued_total += v.len() as u64;
        t.txs.remove(&f.out_tid);
        self.release_writer(target);
        self.outputs.push_back(Output::Transmit(target));
    }

    fn send_head(&mut self, id: ConnId, h: &MessageHead) {
        let mut v = Vec::with_capacity(h.as_str().len() + 16);
        write_head(h, &mut v);
        write_end_line(h.transaction_id(), false, Continuation::Complete, &mut v);
        self.send_whole(id, v);
    }

    /// A response to the request `meta` describes, for the previous hop (RFC 4975 §7.2,
    /// RFC 4976 §6.4.1: To-Path is the previous hop only, From-Path our URI).
    fn response_for(&self, meta: &TxMeta, code: StatusCode) -> Option<MessageHead> {
        let prev = meta.request_from_path().split(' ').next()?;
        let ours = meta.our_uri();
        let mut h = MessageHead::response(meta.in_tid(), code, code.reason()).ok()?;
        h.push("To-Path", prev).ok()?;
        h.push("From-Path", ours).ok()?;
        Some(h)
    }

    /// A failure REPORT to the original sender of a SEND (RFC 4976 §6.4.1, §6.4.3).
    fn failure_report(&mut self, meta: &TxMeta, code: StatusCode) {
        if !self.conns.contains_key(&meta.source) {
            return;
        }
        let Some(message_id) = meta.message_id().map(str::to_string) else {
            return;
        };
        let tid = random_hex(&mut self.random, 8);
        let build = || -> Result<MessageHead, crate::message::MessageError> {
            let mut h = MessageHead::request(&tid, Method::Report)?;
            h.push("To-Path", meta.request_from_path())?;
            h.push("From-Path", meta.our_uri())?;
            h.push_message_id(&message_id)?;
            if let Some(br) = meta.byte_range() {
                h.push("Byte-Range", br)?;
            }
            h.push_status(code, code.reason())?;
            Ok(h)
        };
        if let Ok(h) = build() {
            self.send_head(meta.source, &h);
            self.event(RelayEvent::FailureReport {
                conn: meta.source,
                status: code.as_u16(),
                message_id,
            });
        }
    }

    /// Rejects the request whose head is `head`: a response with `code` (unless it is a
    /// REPORT or Failure-Report says no), the body dropped.
    fn reject(&mut self, id: ConnId, head: &MessageHead, code: StatusCode, reason: &str) {
        let method = head.method().cloned().unwrap_or(Method::Report);
        let fr = head.failure_report().unwrap_or(FailureReport::Yes);
        let respond = method != Method::Report && fr != FailureReport::No;
        let resp = if respond {
            let prev = head.get_kind(HeaderKind::FromPath).unwrap_or("");
            let prev = if method == Method::Send {
                prev.split(' ').next().unwrap_or("")
            } else {
                prev
            };
            let ours = head
                .get_kind(HeaderKind::ToPath)
                .and_then(|t| t.split(' ').next())
                .unwrap_or("");
            let mut h = MessageHead::response(head.transaction_id(), code, code.reason()).ok();
            if let Some(h2) = h.as_mut() {
                if h2.push("To-Path", prev).is_err() || h2.push("From-Path", ours).is_err() {
                    h = None;
                }
            }
            h.map(Box::new)
        } else {
            None
        };
        self.event(RelayEvent::Rejected {
            conn: id,
            status: code.as_u16(),
            reason: reason.to_string(),
        });
        if let Some(c) = self.conns.get_mut(&id) {
            c.rx = Rx::Discard(resp);
        }
        self.fail(id);
    }

    fn is_our_host(&self, uri: &MsrpUri) -> bool {
        let ours = self.our_hosts.iter().any(|h| host_eq(&uri.host, h));
        let port_ok = match uri.port {
            None => true,
            Some(p) => Some(p) == self.config.tcp_port || Some(p) == self.config.tls_port,
        };
        ours && port_ok && uri.is_tcp()
    }

    fn on_head(&mut self, id: ConnId, head: MessageHead, has_body: bool) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.discarded = 0;
        }
        if !head.is_request() {
            self.on_response(id, head);
            if let Some(c) = self.conns.get_mut(&id) {
                c.rx = Rx::Discard(None);
            }
            return;
        }
        // RFC 4976 §6.3: a relay routes on the leading To-Path URIs: ours, and the next hop.
        // Only those are parsed; the rest of the path moves as text (the parser checked every
        // URI of both paths, RFC 4975 §9).
        let to_value = head.get_kind(HeaderKind::ToPath).unwrap_or("");
        let method = head.method().cloned().unwrap_or(Method::Report);
        let from_value = head.get_kind(HeaderKind::FromPath).unwrap_or("");
        let first_s = split_first_uri(to_value).0;
        let (ours_end, route) = match self.cached_route(id, to_value, from_value) {
            Some(r) => r,
            None => {
                let (first_s, mut rest_s) = split_first_uri(to_value);
                let Some(first) = MsrpUri::parse(first_s).ok() else {
                    return self.reject(id, &head, StatusCode::BAD_REQUEST, "empty To-Path");
                };
                if !self.is_our_host(&first) {
                    // RFC 4976 §6.2: not addressed to this relay: drop the connection.
                    self.event(RelayEvent::Rejected {
                        conn: id,
                        status: 0,
                        reason: format!("To-Path {first} does not name this relay"),
                    });
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.rx = Rx::Discard(None);
                    }
                    self.close_after_flush(id);
                    return;
                }
                if method == Method::Auth && rest_s.is_empty() {
                    // RFC 4976 §6.3: an AUTH for this relay. It has no body we use.
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.rx = Rx::Discard(None);
                    }
                    return self.on_auth(id, &head, &first);
                }
                let Some(sid) = first.session_id() else {
                    return self.reject(
                        id,
                        &head,
                        StatusCode::FORBIDDEN,
                        "To-Path names this relay without a Use-Path session",
                    );
                };
                let Some(bound) = self.live_binding(sid).map(|b| b.conn) else {
                    // RFC 4976 §6.3: a URI that is not (or no longer) valid.
                    return self.reject(
                        id,
                        &head,
                        StatusCode::SESSION_DOES_NOT_EXIST,
                        "unknown or expired Use-Path URI",
                    );
                };
                if rest_s.is_empty() {
                    return self.reject(
                        id,
                        &head,
                        StatusCode::BAD_REQUEST,
                        "To-Path ends at this relay",
                    );
                }
                // Our URIs' session ids and the connections they were bound to (for the cache).
                let mut sids = vec![(sid.to_string(), bound)];
                let mut prev_key = None;
                // Our URIs taken off the front of To-Path so far: `to_value[..ours_end]`.
                let mut ours_end = first_s.len();
                // The Use-Path URI of ours being handled (its binding decides the direction).
                let mut cur = first;
                let mut arrived_on_bound = bound == id;
                let route = loop {
                    // RFC 4976 §6.4: either the previous hop is the client's connection, or the next
                    // hop is the next hop back toward the client.
                    let (next_s, after) = split_first_uri(rest_s);
                    let Ok(next) = MsrpUri::parse(next_s) else {
                        return self.reject(
                            id,
                            &head,
                            StatusCode::BAD_REQUEST,
                            "unparsable To-Path",
                        );
                    };
                    if arrived_on_bound {
                        if self.is_our_host(&next) {
                            // The peer is also a client of ours: run the rules again for that URI.
                            let next_sid = next.session_id().unwrap_or_default();
                            let Some(next_conn) = self.live_binding(next_sid).map(|b| b.conn)
                            else {
                                return self.reject(
                                    id,
                                    &head,
                                    StatusCode::SESSION_DOES_NOT_EXIST,
                                    "unknown next-hop Use-Path URI of this relay",
                                );
                            };
                            sids.push((next_sid.to_string(), next_conn));
                            if after.is_empty() {
                                return self.reject(
                                    id,
                                    &head,
                                    StatusCode::BAD_REQUEST,
                                    "To-Path ends at this relay",
                                );
                            }
                            ours_end += 1 + next_s.len();
                            rest_s = after;
                            cur = next;
                            arrived_on_bound = false;
                            continue;
                        }
                        break Route::Connect(next);
                    }
                    let binding = cur.session_id().and_then(|s| self.sessions.get(s));
                    let Some(conn) = binding
                        .filter(|b| same_authority(&next, &b.toward_client))
                        .map(|b| b.conn)
                    else {
                        return self.reject(
                            id,
                            &head,
                            StatusCode::FORBIDDEN,
                            "Use-Path URI of another client: the next hop is not toward that client",
                        );
                    };
                    // RFC 4975 §5.4, RFC 6135 §4.5: requests back to this previous hop reuse the
                    // connection it opened.
                    let from_first = head
                        .get_kind(HeaderKind::FromPath)
                        .map(|f| split_first_uri(f).0)
                        .and_then(|f| MsrpUri::parse(f).ok());
                    if let Some(prev) = from_first {
                        let key = prev_hop_key(&prev);
                        self.note_prev_hop_key(id, &key);
                        prev_key = Some(key);
                    }
                    break Route::Conn(conn);
                };
                self.cache_route(id, to_value, from_value, ours_end, sids, &route, prev_key);
                (ours_end, route)
            }
        };
        let rest_s = &to_value[(ours_end + 1).min(to_value.len())..];
        let target = match route {
            Route::Conn(c) => c,
            Route::Connect(uri) => match self.connection_to(&uri) {
                Some(c) => c,
                None => {
                    return self.reject(
                        id,
                        &head,
                        StatusCode::FORBIDDEN,
                        "next hop is not a TCP MSRP URI",
                    )
                }
            },
        };
        if target == id {
            return self.reject(
                id,
                &head,
                StatusCode::FORBIDDEN,
                "next hop is the connection the request came from",
            );
        }
        let fr = head.failure_report().unwrap_or(FailureReport::Yes);
        let meta = TxMeta {
            source: id,
            method: method.clone(),
            fr,
            had_authorization: head.authorization().next().is_some(),
            text: Arc::new(MetaText::new(
                head.transaction_id(),
                from_value,
                first_s,
                head.message_id(),
                head.get_kind(HeaderKind::ByteRange),
            )),
        };
        // RFC 4976 §6.4.1, §6.4.2: our URIs leave To-Path and go first in From-Path.
        let new_head = match self.forward_head(&head, &to_value[..ours_end], rest_s) {
            Ok(h) => h,
            Err(e) => {
                return self.reject(
                    id,
                    &head,
                    StatusCode::BAD_REQUEST,
                    &format!("cannot forward: {e}"),
                )
            }
        };
        let p = Pending {
            target,
            head: new_head,
            tid_len: head.transaction_id().len(),
            has_body,
            meta,
        };
        if let Some(c) = self.conns.get_mut(&id) {
            c.rx = Rx::Waiting(Box::new(p));
        }
        // try_unblock (in the pump loop) starts it when the target is free.
    }

    /// A live Use-Path binding by session id.
    fn live_binding(&self, sid: &str) -> Option<&Binding> {
        self.sessions.get(sid).filter(|b| b.expires_at > self.now)
    }

    /// The head of a request to forward, as bytes: the start line unchanged, To-Path without
    /// `ours` (our URIs that led it, in order), From-Path with them in front in reverse order
    /// (each relay puts its URI first, RFC 4976 §6.4.1, §6.4.2), the other header lines as
    /// received. To-Path first and From-Path second (RFC 4975 §9; Kamailio also needs it).
    fn forward_head(
        &self,
        head: &MessageHead,
        ours: &str,
        rest: &str,
    ) -> Result<Vec<u8>, crate::message::MessageError> {
        let from_value = head.get_kind(HeaderKind::FromPath).unwrap_or("");
        let added = ours.split(' ').count();
        let from_n = from_value.split(' ').count();
        // The parser checked every header with limits no looser than the defaults a built
        // head is held to, and the header lines other than the paths travel unchanged: only
        // the longer From-Path can break a limit. Otherwise take the long way, which checks
        // every header again.
        let max = Limits::default().max_path_uris;
        if !self.parser_within_defaults || from_n + added > max {
            let to: Vec<MsrpUri> = parse_uris(rest);
            let mut from: Vec<MsrpUri> = parse_uris(ours);
            from.reverse();
            from.extend(parse_uris(from_value));
            let h = rewrite(head, head.transaction_id(), &to, &from)?;
            let mut v = Vec::with_capacity(h.as_str().len());
            write_head(&h, &mut v);
            return Ok(v);
        }
        let raw = head.as_str();
        // Start line, To-Path line, From-Path line: the others start after the third CRLF.
        let mut lines = raw.match_indices("\r\n").map(|(i, _)| i + 2);
        let (Some(start_end), Some(_), Some(others)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(crate::message::MessageError::MissingFromPath);
        };
        let mut v = Vec::with_capacity(raw.len() + ours.len() + 2);
        v.extend_from_slice(&raw.as_bytes()[..start_end]);
        v.extend_from_slice(b"To-Path: ");
        v.extend_from_slice(rest.as_bytes());
        v.extend_from_slice(b"\r\nFrom-Path: ");
        for u in ours.rsplit(' ') {
            v.extend_from_slice(u.as_bytes());
            v.push(b' ');
        }
        v.extend_from_slice(from_value.as_bytes());
        v.extend_from_slice(b"\r\n");
        v.extend_from_slice(&raw.as_bytes()[others..]);
        Ok(v)
    }

    /// Remembers that `prev` (a first From-Path URI) reached us over `id`.
    fn note_prev_hop_key(&mut self, id: ConnId, key: &PrevHopKey) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.prev_hop.as_ref() == Some(key) {
            return;
        }
        if let Some(old) = c.prev_hop.replace(key.clone()) {
            if self.prev_hops.get(&old) == Some(&id) {
                self.prev_hops.remove(&old);
            }
        }
        self.prev_hops.insert(key.clone(), id);
    }

    /// The route of the last request forwarded from `id`, if this request has the same
    /// To-Path and the same first From-Path URI and the Use-Path bindings it went through
    /// are still live on the same connections (RFC 4976 §6.3: the URIs are valid until they
    /// expire or their connection closes). The URIs are then not parsed again.
    fn cached_route(&mut self, id: ConnId, to: &str, from: &str) -> Option<(usize, Route)> {
        let rc = self.conns.get(&id)?.route.as_ref()?;
        if rc.to != to || rc.from_first != split_first_uri(from).0 {
            return None;
        }
        for (sid, conn) in &rc.sids {
            if self.live_binding(sid).map(|b| b.conn) != Some(*conn) {
                return None;
            }
        }
        let (ours_end, route, prev) = match &rc.route {
            CachedRoute::Conn(c) => (rc.ours_end, Route::Conn(*c), rc.prev.clone()),
            CachedRoute::Connect(u) => (rc.ours_end, Route::Connect(u.clone()), None),
        };
        if let Some(key) = prev {
            // RFC 4975 §5.4: as when the route was decided.
            self.note_prev_hop_key(id, &key);
        }
        Some((ours_end, route))
    }

    /// Remembers the route just decided for requests from `id` (see [`Relay::cached_route`]).
    #[allow(clippy::too_many_arguments)]
    fn cache_route(
        &mut self,
        id: ConnId,
        to: &str,
        from: &str,
        ours_end: usize,
        sids: Vec<(String, ConnId)>,
        route: &Route,
        prev: Option<PrevHopKey>,
    ) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let route = match route {
            Route::Conn(t) => CachedRoute::Conn(*t),
            Route::Connect(u) => CachedRoute::Connect(u.clone()),
        };
        c.route = Some(Box::new(RouteCache {
            to: to.to_string(),
            from_first: split_first_uri(from).0.to_string(),
            ours_end,
            sids,
            route,
            prev,
        }));
    }

    /// The connection a previous hop with this URI opened to us, or an open or opening
    /// connection to the URI's authority, or a new one.
    fn connection_to(&mut self, uri: &MsrpUri) -> Option<ConnId> {
        if !uri.is_tcp() {
            return None;
        }
        if let Some(id) = self.prev_hops.get(&prev_hop_key(uri)) {
            if self.conns.get(id).is_some_and(|c| !c.closing) {
                return Some(*id);
            }
        }
        let host = uri.host.to_plain_string().to_ascii_lowercase();
        let port = uri.port.unwrap_or(DEFAULT_PORT);
        let tls = uri.is_secure();
        let key = (host.clone(), port, tls);
        if let Some(id) = self.outbound.get(&key) {
            if self.conns.get(id).is_some_and(|c| !c.closing) {
                return Some(*id);
            }
        }
        let id = self.alloc();
        let peer = SocketAddr::new(uri.host.ip().unwrap_or(IpAddr::from([0, 0, 0, 0])), port);
        let mut c = Conn::new(peer, tls, ConnState::Connecting, &self.config.limits);
        c.target = Some(key.clone());
        c.succeeded = true;
        let deadline = self.now + self.config.limits.connect_timeout_ms;
        c.connect_deadline = Some(deadline);
        self.conns.insert(id, c);
        self.outbound.insert(key, id);
        self.timer(deadline, Timer::Connect(id));
        self.outputs.push_back(Output::Connect {
            conn: id,
            host,
            port,
            tls,
        });
        Some(id)
    }

    /// Writes the head of a waiting message into its (free) target and starts streaming.
    fn start_forward(&mut self, id: ConnId, p: Pending) {
        let target = p.target;
        let Some(t) = self.conns.get_mut(&target) else {
            return;
        };
        // Keep the transaction id when it is free on the outbound connection: the body
        // cannot contain its end-line (RFC 4975 §7.1); otherwise draw a new one (RFC 4976
        // §6.4).
        let mut head = p.head;
        let mut out_tid = String::from_utf8_lossy(&head[5..5 + p.tid_len]).into_owned();
        if t.txs.contains_key(&out_tid) {
            loop {
                out_tid = random_hex(&mut self.random, 10);
                if !self
                    .conns
                    .get(&target)
                    .is_some_and(|t| t.txs.contains_key(&out_tid))
                {
                    break;
                }
            }
            // RFC 4975 §9: transact-id is ident; hex digits are.
            let mut h = Vec::with_capacity(head.len() + out_tid.len());
            h.extend_from_slice(b"MSRP ");
            h.extend_from_slice(out_tid.as_bytes());
            h.extend_from_slice(&head[5 + p.tid_len..]);
            head = h;
        }
        let Some(t) = self.conns.get_mut(&target) else {
            return;
        };
        let track = match p.meta.method {
            Method::Report => false,
            Method::Send => p.meta.fr != FailureReport::No,
            _ => true,
        };
        if track {
            t.txs.insert(
                out_tid.clone(),
                Tx {
                    meta: p.meta.clone(),
                    streaming: true,
                    deadline: None,
                },
            );
        }
        t.writer = Some(id);
        t.out.extend(head.iter());
        t.queued_total += head.len() as u64;
        if t.state == ConnState::Open {
            self.outputs.push_back(Output::Transmit(target));
        }
        let mut f = Forwarding {
            target,
            out_tid,
            body_started: false,
            bytes: 0,
            meta: p.meta,
        };
        if p.has_body {
            // The blank line before the body is written with the first fragment; write it
            // now so an empty body is kept distinct from no body (RFC 4975 §7.1).
            if let Some(t) = self.conns.get_mut(&target) {
                let mut v = Vec::new();
                write_body_start(&mut v);
                t.out.extend(v.iter());
                t.queued_total += v.len() as u64;
            }
            f.body_started = true;
        }
        if let Some(c) = self.conns.get_mut(&id) {
            c.rx = Rx::Forward(Box::new(f));
        }
        // A sender that stops mid-body would hold the target forever.
        let at = self.now + self.config.limits.body_stall_ms;
        self.arm_stall(id, at);
    }

    fn on_auth(&mut self, id: ConnId, head: &MessageHead, addressed: &MsrpUri) {
        let now_s = self.now / 1000;
        let from_path = head.from_path();
        let tid = head.transaction_id().to_string();
        let to_value = head
            .get_kind(HeaderKind::FromPath)
            .unwrap_or("")
            .to_string();
        let ours = addressed.to_string();
        let respond = |code: StatusCode| -> Option<MessageHead> {
            let mut h = MessageHead::response(&tid, code, code.reason()).ok()?;
            h.push("To-Path", &to_value).ok()?;
            h.push("From-Path", &ours).ok()?;
            Some(h)
        };
        let challenge = |relay: &mut Relay, stale: bool| -> Option<MessageHead> {
            let mut r = [0u8; 16];
            (relay.random)(&mut r);
            let ch = relay.digest.challenge(now_s, &r, stale);
            let mut h = respond(StatusCode::UNAUTHORIZED)?;
            h.push("WWW-Authenticate", &ch.to_string()).ok()?;
            Some(h)
        };
        let peer_ip = self.conns.get(&id).map(|c| c.peer.ip());
        if let Some(ip) = peer_ip.filter(|ip| self.auth_locked_out(*ip)) {
            // Too many failures from this address lately: no more guesses.
            if let Some(h) = respond(StatusCode::FORBIDDEN) {
                self.send_head(id, &h);
            }
            self.event(RelayEvent::AuthFailed {
                conn: id,
                status: 403,
                reason: format!(
                    "more than {} failed AUTHs from {ip} within {} s",
                    self.config.limits.max_auth_failures_per_address,
                    self.config.limits.auth_failure_window_ms / 1000
                ),
            });
            return self.fail(id);
        }
        let Some(auth_value) = head.authorization().next().map(str::to_string) else {
            // RFC 4976 §5.1: an AUTH without Authorization gets 401 with a challenge.
            if let Some(h) = challenge(self, false) {
                self.send_head(id, &h);
            }
            return;
        };
        let auth = match Authorization::parse(&auth_value) {
            Ok(a) => a,
            Err(e) => {
                if let Some(h) = respond(StatusCode::BAD_REQUEST) {
                    self.send_head(id, &h);
                }
                self.event(RelayEvent::AuthFailed {
                    conn: id,
                    status: 400,
                    reason: format!("bad Authorization: {e}"),
                });
                self.count_auth_failure(peer_ip);
                return self.fail(id);
            }
        };
        // RFC 4976 §9.1: the digest-uri is the rightmost To-Path URI.
        let request_uri = head
            .get_kind(HeaderKind::ToPath)
            .and_then(|t| t.split(' ').next_back())
            .unwrap_or("")
            .to_string();
        let users = &self.users;
        let verified = self
            .digest
            .verify(&auth, "AUTH", &request_uri, now_s, |u, r, a| {
                users.ha1(u, r, a).map(str::to_string)
            });
        let verified = match verified {
            Ok(v) => v,
            Err(rej) => {
                let (code, h) = match &rej {
                    Rejection::Stale | Rejection::Replay(_) => (401, challenge(self, true)),
                    Rejection::UriMismatch { .. } => (400, respond(StatusCode::BAD_REQUEST)),
                    // RFC 4976 §6.3: a client that is not authorized gets 403.
                    Rejection::WrongResponse(_) | Rejection::UnknownUser(_) => {
                        (403, respond(StatusCode::FORBIDDEN))
                    }
                    // A nonce or realm we did not issue (a restarted relay): a new challenge.
                    _ => (401, challenge(self, false)),
                };
                if let Some(h) = h {
                    self.send_head(id, &h);
                }
                self.event(RelayEvent::AuthFailed {
                    conn: id,
                    status: code,
                    reason: rej.to_string(),
                });
                if !rej.is_stale() {
                    self.count_auth_failure(peer_ip);
                    self.fail(id);
                }
                return;
            }
        };
        // RFC 4976 §6.3: the requested lifetime must be acceptable.
        let expires = match head.expires() {
            Some(e) if e < self.config.min_expires => {
                let min = self.config.min_expires;
                if let Some(mut h) = respond(StatusCode::INTERVAL_OUT_OF_BOUNDS) {
                    if h.push_expires(HeaderKind::MinExpires, min).is_ok() {
                        self.send_head(id, &h);
                    }
                }
                self.event(RelayEvent::AuthFailed {
                    conn: id,
                    status: 423,
                    reason: format!("Expires {e} below the minimum {min}"),
                });
                return;
            }
            // RFC 4976 §4.6, §6.3: a lifetime above what we permit is an error carrying
            // Max-Expires (the client may retry with it), not silently shortened.
            Some(e) if e > self.config.max_expires => {
                let max = self.config.max_expires;
                if let Some(mut h) = respond(StatusCode::INTERVAL_OUT_OF_BOUNDS) {
                    if h.push_expires(HeaderKind::MaxExpires, max).is_ok() {
                        self.send_head(id, &h);
                    }
                }
                self.event(RelayEvent::AuthFailed {
                    conn: id,
                    status: 423,
                    reason: format!("Expires {e} above the maximum {max}"),
                });
                return;
            }
            Some(e) => e,
            None => self.config.default_expires.min(self.config.max_expires),
        };
        // Refresh. RFC 4976 §5.1 grants a URI per AUTH and says nothing of extending one, but
        // a client keeps using a relay past the lifetime by sending AUTH again before Expires
        // (our RelayClient does at 3/4 of it), while its sessions carry the URI they were
        // negotiated with in their SDP. A fresh URI would leave all of them to die at the old
        // one's expiry (481 "unknown or expired Use-Path URI": found by the 10,000-session
        // soak, every session at once 300 s in), and each refresh would take one more of the
        // connection's `max_sessions_per_connection` slots. So a later AUTH by the same user
        // with the same From-Path (the client's own URI last) over the same connection renews
        // the live URI it holds: the same Use-Path, a new Expires (§6.3 still holds: valid on
        // this connection only, invalidated after the expiry it was last given).
        let auth_from = join(&from_path);
        let renew = self.conns.get(&id).and_then(|c| {
            c.sessions
                .iter()
                .find(|sid| {
                    self.sessions.get(*sid).is_some_and(|b| {
                        b.conn == id
                            && b.expires_at > self.now
                            && b.user == verified.username
                            && b.auth_from == auth_from
                    })
                })
                .cloned()
        });
        let live = self.conns.get(&id).map_or(0, |c| c.sessions.len());
        if renew.is_none() && live >= self.config.limits.max_sessions_per_connection {
            if let Some(h) = respond(StatusCode::FORBIDDEN) {
                self.send_head(id, &h);
            }
            self.event(RelayEvent::AuthFailed {
                conn: id,
                status: 403,
                reason: format!("{live} Use-Path URIs on this connection already"),
            });
            return;
        }
        let Some(toward_client) = from_path.first().cloned() else {
            return;
        };
        let tls = self.conns.get(&id).is_some_and(|c| c.tls);
        let (scheme, port) = match (tls, self.config.tls_port, self.config.tcp_port) {
            (true, Some(p), _) => (Scheme::Msrps, p),
            (_, _, Some(p)) => (Scheme::Msrp, p),
            (_, Some(p), None) => (Scheme::Msrps, p),
            _ => return,
        };
        // RFC 4976 §6.3: at least 64 bits of cryptographically random material.
        let sid = match &renew {
            Some(sid) => sid.clone(),
            None => loop {
                let s = random_hex(&mut self.random, 12);
                if !self.sessions.contains_key(&s) {
                    break s;
                }
            },
        };
        let uri = MsrpUri::new(scheme, host_of(&self.config.host), port, sid.clone());
        // RFC 4976 §5.1 (example): the Use-Path is the relays before us (the From-Path
        // without the client's URI) followed by our new URI.
        let mut use_path: Vec<MsrpUri> = from_path[..from_path.len() - 1].to_vec();
        use_path.push(uri);
        let expires_at = self.now + u64::from(expires) * 1000;
        self.sessions.insert(
            sid.clone(),
            Binding {
                conn: id,
                expires_at,
                toward_client,
                user: verified.username.clone(),
                auth_from,
            },
        );
        if renew.is_none() {
            if let Some(c) = self.conns.get_mut(&id) {
                c.sessions.push(sid.clone());
            }
        }
        // A renewed URI's earlier timer finds the later expiry and leaves it alone.
        self.timer(expires_at, Timer::Session(sid));
        let use_path_s = join(&use_path);
        let build = || -> Option<MessageHead> {
            let mut h = respond(StatusCode::OK)?;
            h.push("Use-Path", &use_path_s).ok()?;
            h.push(
                "Authentication-Info",
                &verified.authentication_info.to_string(),
            )
            .ok()?;
            h.push_expires(HeaderKind::Expires, expires).ok()?;
            Some(h)
        };
        if let Some(h) = build() {
            self.send_head(id, &h);
        }
        self.succeed(id);
        self.event(RelayEvent::Authenticated {
            conn: id,
            user: verified.username,
            use_path: use_path_s,
            expires,
        });
    }

    /// A response arrived (RFC 4976 §6.4.3).
    fn on_response(&mut self, id: ConnId, head: MessageHead) {
        let tid = head.transaction_id();
        let Some(tx) = self.conns.get_mut(&id).and_then(|c| c.txs.remove(tid)) else {
            // Not ours (or timed out): drop it.
            return;
        };
        let code = head.status_code().unwrap_or(StatusCode::BAD_REQUEST);
        let meta = tx.meta;
        if meta.method == Method::Send {
            // Hop by hop: a SEND response is never forwarded.
            if code.is_success() {
                return;
            }
            let source_streaming = tx.streaming
                && self.conns.get(&meta.source).is_some_and(
                    |s| matches!(&s.rx, Rx::Forward(f) if f.out_tid == tid && f.target == id),
                );
            if source_streaming {
                // The next hop refused the chunk while it is still arriving: abort it there
                // and answer the previous hop with the same code (it reports).
                let resp = self.response_for(&meta, code).map(Box::new);
                if let Some(s) = self.conns.get_mut(&meta.source) {
                    if let Rx::Forward(f) = std::mem::replace(&mut s.rx, Rx::Discard(None)) {
                        let resp = resp.filter(|_| meta.fr != FailureReport::No);
                        if code == StatusCode::MESSAGE_TOO_LARGE {
                            // RFC 4975 §10.5: tell the sender now so it stops.
                            self.abort_outbound(&f);
                            if let Some(h) = resp {
                                self.send_head(meta.source, &h);
                            }
                        } else {
                            if let Some(s) = self.conns.get_mut(&meta.source) {
                                s.rx = Rx::Discard(resp);
                            }
                            self.abort_outbound(&f);
                        }
                    }
                }
                self.to_pump.push_back(meta.source);
            } else if meta.fr != FailureReport::No {
                // RFC 4976 §6.4.3: a non-200 to a SEND: REPORT with that code.
                self.failure_report(&meta, code);
            }
            return;
        }
        // RFC 4976 §6.4.3: a response with more To-Path URIs travels on: our URI moves from
        // To-Path to the front of From-Path; sent back over the request's connection with
        // its transaction id.
        let to = head.to_path();
        if to.len() < 2 {
            return;
        }
        let mut from = head.from_path();
        from.insert(0, to[0].clone());
        let Ok(new_head) = rewrite(&head, meta.in_tid(), &to[1..], &from) else {
            return;
        };
        if meta.method == Method::Auth && code == StatusCode::UNAUTHORIZED && meta.had_authorization
        {
            let stale = head
                .www_authenticate()
                .any(|w| w.to_ascii_lowercase().contains("stale=true"));
            if !stale {
                // RFC 4976 §6.3: failed AUTHs forwarded for a directly connected client.
                self.fail(meta.source);
            }
        }
        self.send_head(meta.source, &new_head);
    }
}

/// The head with a new transaction id, To-Path and From-Path (first and second, RFC 4975
/// §9), other headers in their order.
fn rewrite(
    head: &MessageHead,
    tid: &str,
    to: &[MsrpUri],
    from: &[MsrpUri],
) -> Result<MessageHead, crate::message::MessageError> {
    let mut h = match head.start_line() {
        crate::message::StartLine::Request { method } => MessageHead::request(tid, method.clone())?,
        crate::message::StartLine::Response { status, comment } => {
            MessageHead::response(tid, status, comment)?
        }
    };
    h.push_to_path(to)?;
    h.push_from_path(from)?;
    for hd in head.headers() {
        if matches!(hd.kind, HeaderKind::ToPath | HeaderKind::FromPath) {
            continue;
        }
        h.push(hd.name, hd.value)?;
    }
    Ok(h)
}

#[cfg(test)]
mod tests;
