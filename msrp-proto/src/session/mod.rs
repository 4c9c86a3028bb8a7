//! One MSRP session (RFC 4975 §7): outgoing messages cut into chunks, incoming chunks
//! reassembled, transactions and their timers, success and failure reports.
//!
//! A [`Session`] knows nothing about connections or bytes on the wire. The endpoint feeds it
//! the parsed SENDs, responses and REPORTs of the connection the session is bound to, and
//! pulls from it the requests to write ([`Session::poll_request`]) when that connection has
//! room, and the events for the application ([`Session::poll_event`]). Time is an input
//! ([`Session::handle_timeout`]), and randomness for transaction ids comes from the caller.
//!
//! # Fairness
//!
//! Messages are cut into chunks of at most [`Session::chunk_size`] bytes (see
//! [`SessionConfig::chunk_size`]: smaller through relays) and the
//! chunks of all messages with data ready are taken in turn (round robin), so a small message
//! queued behind a large one goes out after at most one chunk of it (RFC 4975 §7.1.1: "each
//! concurrent request gets a chance to send some fair portion of data"). The endpoint pulls a
//! chunk only when the connection's outgoing buffer is nearly empty, and always writes pending
//! responses and REPORTs first: a SEND is thus "interrupted" at chunk boundaries whenever other
//! traffic waits (RFC 4975 §7.1.1: "SEND requests larger than 2048 octets MUST be interrupted
//! if the sender needs to send pending responses or REPORT requests").

pub mod ranges;
pub mod recv;
pub mod send;
pub mod transaction;
pub mod wire;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

pub use recv::{IncomingSend, RecvCursor, RecvPolicy};
pub use send::{MessageSpec, OutState, WriteError};
pub use wire::{ByteRange, Continuation, FailureReport, StatusCode};

use recv::{Receiver, RecvEffect};
use send::OutMessage;
use transaction::{Transaction, Transactions};

/// A source of randomness supplied by the caller (the core reads no RNG itself).
pub type RandomSource<'a> = &'a mut dyn FnMut(&mut [u8]);

/// Characters of generated identifiers: ALPHANUM, a subset of RFC 4975 §9 `ident-char`.
const IDENT_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A random identifier of `len` ALPHANUM characters (RFC 4975 §9 `ident` needs 4 to 32).
///
/// 16 characters carry about 95 bits, above the 64 bits of randomness RFC 4975 §7.1 requires
/// for transaction ids.
pub fn random_ident(rng: RandomSource<'_>, len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rng(&mut bytes);
    bytes
        .iter()
        .map(|b| IDENT_ALPHABET[(*b as usize) % IDENT_ALPHABET.len()] as char)
        .collect()
}

/// Default [`SessionConfig::max_chunk_size`]: the largest chunk body on a direct session.
///
/// Chosen from `msrp/benches/session_copy.rs` (docs/performance.md, "Chunk size"): the
/// per-chunk work (head, transaction, 200 response, task hops) is paid once per chunk, so
/// larger chunks approach the raw copy. Each outgoing message buffers at most its send window
/// (two chunks by default), so this also sets the sender's memory per message.
pub const DEFAULT_CHUNK_SIZE: usize = 1024 * 1024;

/// Default [`SessionConfig::relay_chunk_size`]: the largest chunk body when the session goes
/// through a relay (RFC 4976).
///
/// Relays may limit their frame size: Kamailio 5.6.3 answers `413` to frames of 11,239 bytes
/// and more and drops the connection above 16 KiB (docs/interop.md). 8 KiB of body leaves room
/// for the headers, which grow with every relay in To-Path and From-Path. RFC 4975 §7.1.1:
/// chunks SHOULD NOT be smaller than 2048 octets, so 8 KiB stays well above that.
pub const DEFAULT_RELAY_CHUNK_SIZE: usize = 8 * 1024;

/// True when `body` contains `"-------" tid`, the start of the end-line of transaction `tid`
/// (RFC 4975 §7.1: "the sender MUST ensure that the end-line ... is not present in the
/// body"). `tid` must not start with `-` (an `ident` starts with ALPHANUM, RFC 4975 §9).
///
/// Searches for hyphens (a single-byte search, several times cheaper per byte than a
/// substring search), and looks closer only where one is found: a run of seven hyphens
/// covers every seventh position, so when the byte six after a hyphen is not one, no run
/// starts before it and the search goes on past it.
pub fn contains_end_line(body: &[u8], tid: &[u8]) -> bool {
    debug_assert!(tid.first() != Some(&b'-'));
    const RUN: usize = 7;
    let mut at = 0;
    while let Some(i) = memchr::memchr(b'-', &body[at..]) {
        let p = at + i;
        match body.get(p + RUN - 1) {
            None => return false,
            Some(b'-') => {}
            Some(_) => {
                at = p + RUN;
                continue;
            }
        }
        // Hyphens at p and p+6: find the end of the run that contains p+6.
        let end = body[p + RUN - 1..]
            .iter()
            .position(|b| *b != b'-')
            .map_or(body.len(), |n| p + RUN - 1 + n);
        // The run is all hyphens from p to end only if p..p+6 are too.
        let run_start = body[..end]
            .iter()
            .rposition(|b| *b != b'-')
            .map_or(0, |n| n + 1);
        if end - run_start >= RUN && body[end..].starts_with(tid) {
            return true;
        }
        at = end;
    }
    false
}

/// Session settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Largest chunk body we send on a direct session, one whose To-Path is only the peer's
    /// URI (default [`DEFAULT_CHUNK_SIZE`], 1 MiB).
    pub max_chunk_size: usize,
    /// Largest chunk body we send when the session goes through relays (RFC 4976: a To-Path
    /// with more than one URI, ours or the peer's); the smaller of this and
    /// [`max_chunk_size`](Self::max_chunk_size) applies (default
    /// [`DEFAULT_RELAY_CHUNK_SIZE`], 8 KiB).
    pub relay_chunk_size: usize,
    /// Body bytes buffered per outgoing message before writes are refused; at least two
    /// chunks are always allowed, so that the application can fill the next chunk while the
    /// previous one is written (default 128 KiB, so two chunks: 2 MiB with the default
    /// direct chunk size, 128 KiB through relays).
    pub send_window: usize,
    /// Time to wait for the response to a `Failure-Report: yes` transaction (RFC 4975 §7.1.1:
    /// 30 seconds).
    pub transaction_timeout: Duration,
    /// What we accept and how much.
    pub recv: RecvPolicy,
}

impl SessionConfig {
    /// The chunk size a session uses: [`max_chunk_size`](Self::max_chunk_size) on a direct
    /// session, at most [`relay_chunk_size`](Self::relay_chunk_size) through relays; at least
    /// one byte.
    pub fn chunk_size(&self, via_relay: bool) -> usize {
        let c = if via_relay {
            self.max_chunk_size.min(self.relay_chunk_size)
        } else {
            self.max_chunk_size
        };
        c.max(1)
    }

    /// The send window for a chunk size: [`send_window`](Self::send_window), at least two
    /// chunks.
    pub fn window(&self, chunk: usize) -> usize {
        self.send_window.max(chunk.saturating_mul(2))
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_chunk_size: DEFAULT_CHUNK_SIZE,
            relay_chunk_size: DEFAULT_RELAY_CHUNK_SIZE,
            send_window: 128 * 1024,
            transaction_timeout: Duration::from_secs(30),
            recv: RecvPolicy::default(),
        }
    }
}

/// A request the session wants written on its connection. The connection adds To-Path and
/// From-Path (the session's paths) and serialises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutRequest {
    /// One chunk of a message.
    Send(SendChunk),
    /// A REPORT.
    Report(ReportRequest),
}

/// A SEND request carrying one chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendChunk {
    /// Fresh transaction id.
    pub transaction_id: String,
    /// The message's Message-ID.
    pub message_id: String,
    /// Position of the chunk.
    pub byte_range: ByteRange,
    /// Content-Type; `None` for a bodiless SEND.
    pub content_type: Option<String>,
    /// `Success-Report: yes` (written only when true: "no" is the default).
    pub success_report: bool,
    /// `Failure-Report` (written only when not `yes`, the default).
    pub failure_report: FailureReport,
    /// `Content-Disposition` of the message, if any.
    pub content_disposition: Option<String>,
    /// The chunk's body.
    pub body: Vec<u8>,
    /// End-line flag.
    pub flag: Continuation,
}

/// A REPORT request (RFC 4975 §7.1.2): never has Success-Report or Failure-Report headers and
/// gets no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRequest {
    /// Fresh transaction id.
    pub transaction_id: String,
    /// Message-ID of the message reported on.
    pub message_id: String,
    /// The bytes reported on.
    pub byte_range: ByteRange,
    /// `Status: 000 <code>`.
    pub status: StatusCode,
}

/// Something the application should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The outgoing message's buffer has room again: write more of its body.
    SendReady {
        /// Message-ID.
        message_id: String,
    },
    /// Every chunk of the message went out and, with `Failure-Report: yes`, got a 200.
    MessageSent {
        /// Message-ID.
        message_id: String,
    },
    /// Success REPORTs covered the whole message (it was asked with `Success-Report: yes`).
    MessageDelivered {
        /// Message-ID.
        message_id: String,
    },
    /// A success REPORT covered part of the message.
    DeliveryProgress {
        /// Message-ID.
        message_id: String,
        /// Bytes confirmed so far.
        confirmed: u64,
    },
    /// The message failed: an error response or failure REPORT, a transaction timeout (408),
    /// or the session ended before it was confirmed. No more chunks of it are sent.
    MessageFailed {
        /// Message-ID.
        message_id: String,
        /// Why, as an MSRP status (408 for a local timeout).
        status: StatusCode,
        /// A description.
        reason: String,
    },
    /// A message starts arriving.
    IncomingMessage {
        /// Message-ID.
        message_id: String,
        /// Its Content-Type.
        content_type: Option<String>,
        /// Its size, if the sender gave it.
        total: Option<u64>,
        /// Its `Content-Disposition` (RFC 2183), if the first chunk received had one.
        content_disposition: Option<String>,
    },
    /// Body bytes of an incoming message at a 0-based offset. Overlapping ranges may come
    /// (a resent chunk); the later data takes precedence (RFC 4975 §7.3.1).
    IncomingData {
        /// Message-ID.
        message_id: String,
        /// Offset of `data[0]`.
        offset: u64,
        /// The bytes.
        data: bytes::Bytes,
    },
    /// All bytes of an incoming message arrived.
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
        /// Why (sender's `#`, our refusal, connection loss).
        reason: String,
    },
}

/// Something that ends the session, noticed while processing (for the endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal {
    /// The status that caused it.
    pub status: StatusCode,
    /// Description.
    pub reason: String,
}

/// One MSRP session's message logic.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    /// Chunk size in use ([`SessionConfig::chunk_size`]).
    chunk: usize,
    out: HashMap<String, OutMessage>,
    /// Messages that may have chunks to cut, in round-robin order.
    rr: VecDeque<String>,
    reports: VecDeque<(String, ByteRange, StatusCode)>,
    transactions: Transactions,
    receiver: Receiver,
    events: VecDeque<SessionEvent>,
    fatal: Option<Fatal>,
    /// Message-IDs of the last [`RECENTLY_SENT`] messages reported sent and forgotten, so a
    /// failure REPORT arriving later is still recognised as ours (RFC 4976 §6.4.1: a relay
    /// answers each chunk with 200 at once and reports a failure further on afterwards).
    recently_sent: VecDeque<String>,
}

/// How many forgotten sent messages a late failure REPORT can still fail.
const RECENTLY_SENT: usize = 256;

impl Session {
    /// A new session.
    pub fn new(config: SessionConfig) -> Self {
        let receiver = Receiver::new(config.recv.clone());
        Session {
            chunk: config.chunk_size(false),
            config,
            out: HashMap::new(),
            rr: VecDeque::new(),
            reports: VecDeque::new(),
            transactions: Transactions::default(),
            receiver,
            events: VecDeque::new(),
            fatal: None,
            recently_sent: VecDeque::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Tells the session whether it goes through relays (RFC 4976: its To-Path has more than
    /// one URI): chunks are then cut at [`SessionConfig::relay_chunk_size`] at most. A new
    /// session is direct. Applies to chunks cut from now on.
    pub fn set_via_relay(&mut self, via_relay: bool) {
        self.chunk = self.config.chunk_size(via_relay);
    }

    /// The largest chunk body this session sends now.
    pub fn chunk_size(&self) -> usize {
        self.chunk
    }

    /// Body bytes each outgoing message may buffer ([`SessionConfig::window`]).
    pub fn send_window(&self) -> usize {
        self.config.window(self.chunk)
    }

    // ---- application commands ----------------------------------------------------------

    /// Queues a message. The Message-ID must be unique (RFC 4975 §7.1.1: "highly unlikely to
    /// be repeated"); use [`random_ident`] to make one.
    pub fn send(&mut self, message_id: String, spec: MessageSpec) -> Result<(), SendError> {
        if self.out.contains_key(&message_id) {
            return Err(SendError::DuplicateMessageId);
        }
        if !valid_ident(&message_id) {
            return Err(SendError::InvalidMessageId);
        }
        if spec.content_type.is_none() && spec.size != Some(0) {
            return Err(SendError::BodilessWithSize);
        }
        self.rr.push_back(message_id.clone());
        self.out
            .insert(message_id.clone(), OutMessage::new(message_id, spec));
        Ok(())
    }

    /// Queues a message ahead of every other (used for the binding SEND, which must be the
    /// first request on a new connection, RFC 4975 §5.4).
    pub fn send_first(&mut self, message_id: String, spec: MessageSpec) -> Result<(), SendError> {
        self.send(message_id.clone(), spec)?;
        self.rr.retain(|id| *id != message_id);
        self.rr.push_front(message_id);
        Ok(())
    }

    /// Writes body bytes of a queued message; returns how many were taken (fewer than given
    /// when the send window is full: wait for [`SessionEvent::SendReady`]).
    pub fn write(&mut self, message_id: &str, data: &[u8]) -> Result<usize, SendError> {
        let window = self.send_window();
        let m = self
            .out
            .get_mut(message_id)
            .ok_or(SendError::UnknownMessage)?;
        Ok(m.write(data, window)?)
    }

    /// Like [`write`](Self::write), taking an owned buffer: when the message's buffer is
    /// empty and all of `data` fits, it is kept without a copy. Taken bytes are removed from
    /// the front of `data`.
    pub fn write_vec(&mut self, message_id: &str, data: &mut Vec<u8>) -> Result<usize, SendError> {
        let window = self.send_window();
        let m = self
            .out
            .get_mut(message_id)
            .ok_or(SendError::UnknownMessage)?;
        Ok(m.write_vec(data, window)?)
    }

    /// Bytes [`write`](Self::write) would take now.
    pub fn write_capacity(&self, message_id: &str) -> usize {
        let window = self.send_window();
        self.out.get(message_id).map_or(0, |m| m.capacity(window))
    }

    /// The body is complete. With a declared size, finishing short of it aborts the message.
    pub fn finish(&mut self, message_id: &str) -> Result<(), SendError> {
        let m = self
            .out
            .get_mut(message_id)
            .ok_or(SendError::UnknownMessage)?;
        if !m.finish() {
            let declared = m.spec.size.unwrap_or(0);
            let written = m.written();
            self.fail(
                message_id,
                StatusCode::BAD_REQUEST,
                format!("body finished after {written} of {declared} declared bytes"),
                FailAction::Abort,
            );
        }
        Ok(())
    }

    /// Aborts a message (RFC 4975 §7.1: the `#` flag). Already-sent chunks stay sent.
    pub fn abort(&mut self, message_id: &str) -> Result<(), SendError> {
        if !self.out.contains_key(message_id) {
            return Err(SendError::UnknownMessage);
        }
        self.fail(
            message_id,
            StatusCode::BAD_REQUEST,
            "aborted by the application".into(),
            FailAction::Abort,
        );
        Ok(())
    }

    /// State of an outgoing message, if still tracked.
    pub fn message_state(&self, message_id: &str) -> Option<OutState> {
        self.out.get(message_id).map(|m| m.state)
    }

    // ---- output ------------------------------------------------------------------------

    /// True when [`poll_request`](Self::poll_request) would return something.
    pub fn wants_to_send(&self) -> bool {
        !self.reports.is_empty()
            || self
                .rr
                .iter()
                .any(|id| self.out.get(id).is_some_and(|m| m.ready(self.chunk)))
    }

    /// The next request to write: REPORTs first, then the next chunk in round-robin order.
    /// `now` starts the chunk's transaction timer.
    pub fn poll_request(&mut self, now: Instant, rng: RandomSource<'_>) -> Option<OutRequest> {
        if let Some((message_id, byte_range, status)) = self.reports.pop_front() {
            let transaction_id = self.new_tid(rng, &[]);
            return Some(OutRequest::Report(ReportRequest {
                transaction_id,
                message_id,
                byte_range,
                status,
            }));
        }
        let max = self.chunk;
        for _ in 0..self.rr.len() {
            let id = self.rr.pop_front()?;
            let Some(m) = self.out.get_mut(&id) else {
                continue;
            };
            if !m.ready(max) {
                if matches!(m.state, OutState::Sending | OutState::Aborting) {
                    self.rr.push_back(id);
                }
                continue;
            }
            let had_no_room = m.blocked;
            let chunk = m.cut(max).expect("ready message yields a chunk");
            let window = self.config.window(max);
            if had_no_room && m.capacity(window) > 0 {
                m.blocked = false;
                self.events.push_back(SessionEvent::SendReady {
                    message_id: id.clone(),
                });
            }
            let spec = m.spec.clone();
            let state = m.state;
            if matches!(state, OutState::Sending | OutState::Aborting) {
                self.rr.push_back(id.clone());
            }
            let transaction_id = self.new_tid(rng, &chunk.body);
            if spec.failure_report != FailureReport::No {
                self.transactions.insert(
                    transaction_id.clone(),
                    Transaction {
                        message_id: id.clone(),
                        offset: chunk.byte_range.start - 1,
                        len: chunk.body.len() as u64,
                        failure_report: spec.failure_report,
                        deadline: now + self.config.transaction_timeout,
                    },
                );
            }
            let req = SendChunk {
                transaction_id,
                message_id: id.clone(),
                byte_range: chunk.byte_range,
                content_type: spec.content_type.clone(),
                content_disposition: spec.content_disposition.clone(),
                success_report: spec.success_report,
                failure_report: spec.failure_report,
                body: chunk.body,
                flag: chunk.flag,
            };
            match state {
                OutState::Sent => self.check_sent(&id),
                OutState::Stopped => {
                    self.out.remove(&id);
                }
                _ => {}
            }
            return Some(OutRequest::Send(req));
        }
        None
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.drain_receiver();
        self.events.pop_front()
    }

    /// Something that ends the session, if one happened (taken once).
    pub fn take_fatal(&mut self) -> Option<Fatal> {
        self.fatal.take()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (
            self.transactions.next_deadline(),
            self.receiver.next_deadline(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- input -------------------------------------------------------------------------

    /// Time passed: expired `Failure-Report: yes` transactions fail their message with 408
    /// (RFC 4975 §7.1.1: "the element MUST inform the user that the request probably failed";
    /// §10.4: a 408 is treated like a local timeout).
    pub fn handle_timeout(&mut self, now: Instant) {
        // Incomplete incoming messages idle for too long are abandoned.
        self.receiver.expire(now);
        for (_, tx) in self.transactions.expire(now) {
            if tx.failure_report == FailureReport::Yes {
                let secs = self.config.transaction_timeout.as_secs_f64();
                self.fail(
                    &tx.message_id,
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "no response to the chunk at byte {} within {secs} s",
                        tx.offset + 1
                    ),
                    FailAction::Abort,
                );
            }
        }
    }

    /// A response to one of our requests. Returns false when the transaction id is unknown
    /// (late or foreign responses are ignored).
    pub fn handle_response(&mut self, transaction_id: &str, status: StatusCode) -> bool {
        let Some(tx) = self.transactions.complete(transaction_id) else {
            return false;
        };
        if status.is_success() {
            self.check_sent(&tx.message_id);
        } else {
            self.handle_failure_status(&tx.message_id, status, "response");
        }
        true
    }

    /// A REPORT about one of our messages (RFC 4975 §7.3.2). Unknown Message-IDs are ignored
    /// (RFC 4975 §7.1.2: "SHOULD silently ignore"). `byte_range` absent means the whole message.
    pub fn handle_report(
        &mut self,
        message_id: &str,
        byte_range: Option<ByteRange>,
        status: StatusCode,
    ) {
        let known = self.out.contains_key(message_id);
        if !status.is_success() {
            if !known {
                // A message already reported sent: RFC 4976 §6.4.1 relays answer 200 hop by
                // hop and send the failure later as a REPORT; RFC 4975 §7.1.1 still requires
                // telling the user. Unknown Message-IDs stay silently ignored (RFC 4975
                // §7.1.2), and one message fails once however many chunks are reported.
                let Some(pos) = self.recently_sent.iter().position(|x| x == message_id) else {
                    return;
                };
                self.recently_sent.remove(pos);
            }
            // RFC 4975 §7.3.2: a failure REPORT is interpreted like the matching response;
            // "When an endpoint that sent a SEND request receives a failure REPORT indicating
            // that a particular byte range was not received, it MUST treat the session as
            // failed." A 413 or 415 refuses the message, not the session.
            self.handle_failure_status(message_id, status, "REPORT");
            if !matches!(
                status,
                StatusCode::MESSAGE_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE
            ) && self.fatal.is_none()
            {
                self.fatal = Some(Fatal {
                    status,
                    reason: format!("failure REPORT {status} for message {message_id}"),
                });
            }
            return;
        }
        let Some(m) = self.out.get_mut(message_id) else {
            return;
        };
        if !m.spec.success_report {
            return;
        }
        let (start, end) = match byte_range {
            Some(r) => (
                r.start.saturating_sub(1),
                r.end.or(r.total).or(m.total()).unwrap_or(r.start - 1),
            ),
            None => (0, m.total().unwrap_or(0)),
        };
        m.success.insert(start, end);
        let confirmed = m.success.covered();
        match m.total() {
            Some(t) if m.success.covers_prefix(t) && m.state == OutState::Sent => {
                self.events.push_back(SessionEvent::MessageDelivered {
                    message_id: message_id.to_string(),
                });
                self.out.remove(message_id);
                self.transactions.forget_message(message_id);
            }
            _ => self.events.push_back(SessionEvent::DeliveryProgress {
                message_id: message_id.to_string(),
                confirmed,
            }),
        }
    }

    /// The head of a received SEND (arriving at `now`); keep the cursor until the end-line.
    pub fn recv_head(&mut self, h: &IncomingSend, now: Instant) -> RecvCursor {
        self.receiver.head(h, now)
    }

    /// Body bytes of the SEND being received.
    pub fn recv_body(&mut self, c: &mut RecvCursor, data: &[u8]) {
        self.receiver.body(c, data);
    }

    /// Like [`recv_body`](Self::recv_body), with `data` inside `owner`: delivered bytes share
    /// that buffer instead of being copied.
    pub fn recv_body_in(&mut self, c: &mut RecvCursor, data: &[u8], owner: Option<&bytes::Bytes>) {
        self.receiver.body_in(c, data, owner);
    }

    /// The end-line of the SEND being received; returns the response status to send, if any.
    pub fn recv_end(&mut self, c: RecvCursor, flag: Continuation) -> Option<StatusCode> {
        self.receiver.end(c, flag)
    }

    /// The session is over (connection lost, closed by the application or the peer): every
    /// unfinished message fails, every incomplete incoming message is aborted, and messages
    /// still awaiting a success report are reported (RFC 4975 §7.1.1: "if the success report
    /// has not been received by the time the session is ended, the device SHOULD inform the
    /// user").
    pub fn close(&mut self, reason: &str) {
        let mut ids: Vec<String> = self.out.keys().cloned().collect();
        ids.sort();
        for id in ids {
            let m = &self.out[&id];
            let unconfirmed = m.state != OutState::Sent
                || self.transactions.awaiting(&id) > 0
                || m.spec.success_report;
            if unconfirmed && !m.failed {
                self.events.push_back(SessionEvent::MessageFailed {
                    message_id: id.clone(),
                    status: StatusCode::REQUEST_TIMEOUT,
                    reason: format!("session ended before delivery was confirmed: {reason}"),
                });
            }
        }
        self.out.clear();
        self.rr.clear();
        self.reports.clear();
        self.transactions.drain();
        self.receiver.abort_all(reason);
        self.drain_receiver();
    }

    // ---- internals ---------------------------------------------------------------------

    fn new_tid(&self, rng: RandomSource<'_>, body: &[u8]) -> String {
        loop {
            let tid = random_ident(&mut *rng, 16);
            // RFC 4975 §7.1: the id MUST NOT collide with a current transaction, and the
            // end-line MUST NOT appear in the body (else choose a new id).
            if self.transactions.contains(&tid) {
                continue;
            }
            if contains_end_line(body, tid.as_bytes()) {
                continue;
            }
            return tid;
        }
    }

    /// Reports "sent" once every chunk went out and every `yes` transaction got its 200; the
    /// message is forgotten unless a success report is still awaited.
    fn check_sent(&mut self, message_id: &str) {
        let Some(m) = self.out.get_mut(message_id) else {
            return;
        };
        if m.state != OutState::Sent || m.failed || m.sent_reported {
            return;
        }
        if self.transactions.awaiting(message_id) > 0 {
            return;
        }
        m.sent_reported = true;
        self.events.push_back(SessionEvent::MessageSent {
            message_id: message_id.to_string(),
        });
        if !m.spec.success_report {
            // Outstanding `partial` transactions stay until they expire: an error response
            // may still come for them.
            self.out.remove(message_id);
            if self.recently_sent.len() == RECENTLY_SENT {
                self.recently_sent.pop_front();
            }
            self.recently_sent.push_back(message_id.to_string());
        }
    }

    fn handle_failure_status(&mut self, message_id: &str, status: StatusCode, via: &str) {
        let action = match status {
            // RFC 4975 §10.5: after a 413 the sender "MUST NOT send any further chunks".
            StatusCode::MESSAGE_TOO_LARGE => FailAction::Stop,
            _ => FailAction::Abort,
        };
        let reason = match status {
            StatusCode::REQUEST_TIMEOUT => "the peer or a relay timed out".to_string(),
            StatusCode::MESSAGE_TOO_LARGE => "the peer refused the message (too large)".to_string(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                "the peer does not accept the content type".to_string()
            }
            StatusCode::SESSION_DOES_NOT_EXIST => "the peer does not know the session".to_string(),
            StatusCode::WRONG_CONNECTION => {
                "the peer has the session bound to another connection".to_string()
            }
            s => format!("the peer answered {s}"),
        };
        if self.out.contains_key(message_id) {
            self.fail(message_id, status, format!("{reason} ({via})"), action);
        } else {
            // Already reported as sent (Failure-Report partial or no, where nothing waits for
            // a 200): RFC 4975 §7.1.1 still requires telling the user about an error response.
            self.events.push_back(SessionEvent::MessageFailed {
                message_id: message_id.to_string(),
                status,
                reason: format!("{reason} ({via})"),
            });
        }
        // RFC 4975 §10.8: 481 "The sender should terminate the session"; §10.10: 506 "cease
        // sending messages for that session on this connection".
        if matches!(
            status,
            StatusCode::SESSION_DOES_NOT_EXIST | StatusCode::WRONG_CONNECTION
        ) && self.fatal.is_none()
        {
            self.fatal = Some(Fatal {
                status,
                reason: format!("{reason} ({via} {status})"),
            });
        }
    }

    fn fail(&mut self, message_id: &str, status: StatusCode, reason: String, action: FailAction) {
        let Some(m) = self.out.get_mut(message_id) else {
            return;
        };
        match action {
            // RFC 4975 §7.3.2: a failure for a chunk being delivered aborts the message with "#".
            FailAction::Abort => m.abort(),
            FailAction::Stop => m.stop(),
        }
        if !m.failed {
            m.failed = true;
            self.events.push_back(SessionEvent::MessageFailed {
                message_id: message_id.to_string(),
                status,
                reason,
            });
        }
        let keep = m.state == OutState::Aborting;
        if !keep {
            self.out.remove(message_id);
            self.rr.retain(|id| id != message_id);
        }
        self.transactions.forget_message(message_id);
    }

    fn drain_receiver(&mut self) {
        for e in self.receiver.take_effects() {
            match e {
                RecvEffect::Started {
                    message_id,
                    content_type,
                    total,
                    content_disposition,
                } => self.events.push_back(SessionEvent::IncomingMessage {
                    message_id,
                    content_type,
                    total,
                    content_disposition,
                }),
                RecvEffect::Data {
                    message_id,
                    offset,
                    data,
                } => self.events.push_back(SessionEvent::IncomingData {
                    message_id,
                    offset,
                    data,
                }),
                RecvEffect::Complete { message_id, size } => self
                    .events
                    .push_back(SessionEvent::IncomingComplete { message_id, size }),
                RecvEffect::Aborted {
                    message_id,
                    received,
                    reason,
                } => self.events.push_back(SessionEvent::IncomingAborted {
                    message_id,
                    received,
                    reason,
                }),
                RecvEffect::SuccessReport {
                    message_id,
                    byte_range,
                } => self
                    .reports
                    .push_back((message_id, byte_range, StatusCode::OK)),
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailAction {
    Abort,
    Stop,
}

/// Why a send command was refused (the application's mistake).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// A message with this Message-ID is already queued.
    #[error("a message with this Message-ID is already being sent")]
    DuplicateMessageId,
    /// The Message-ID is not an RFC 4975 §9 `ident`.
    #[error("Message-ID must be 4 to 32 characters of ALPHANUM . - + % = starting with ALPHANUM")]
    InvalidMessageId,
    /// A bodiless message must have size 0.
    #[error("a bodiless message has size 0")]
    BodilessWithSize,
    /// No such message (finished, failed or never queued).
    #[error("no such outgoing message")]
    UnknownMessage,
    /// A body write was refused.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// RFC 4975 §9: `ident = ALPHANUM 3*31ident-char`.
pub fn valid_ident(s: &str) -> bool {
    let b = s.as_bytes();
    (4..=32).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+' | b'%' | b'='))
}

#[cfg(test)]
mod tests;
