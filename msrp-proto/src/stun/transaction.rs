//! One STUN client transaction, sans IO (RFC 8489 §6.2).
//!
//! Over UDP the request is retransmitted after RTO, 2·RTO, 4·RTO... until Rc requests have
//! been sent; the transaction fails Rm·RTO after the last one (§6.2.1). Over TCP there are no
//! retransmissions and the transaction fails after Ti (§6.2.2). Time is an input: the caller
//! reads `poll_timeout`, calls `handle_timeout(now)` when it passes and sends whatever
//! `poll_transmit` hands out.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::message::{Class, Message, TransactionId, METHOD_BINDING};

/// The transport a transaction (or a whole discovery) runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP: unreliable, STUN retransmits (RFC 8489 §6.2.1).
    Udp,
    /// TCP: reliable, one request per transaction and a Ti timeout (RFC 8489 §6.2.2).
    Tcp,
}

impl Transport {
    /// `"udp"` or `"tcp"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// Timer and attribute settings for STUN client transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StunConfig {
    /// Initial retransmission timeout. RFC 8489 §6.2.1: "SHOULD be greater than or equal to
    /// 500 ms", 500 ms RECOMMENDED; smaller values are for known networks (tests on loopback).
    pub rto: Duration,
    /// Total number of requests sent over UDP (RFC 8489 §6.2.1: default 7).
    pub rc: u32,
    /// Multiple of the initial RTO waited after the last request (RFC 8489 §6.2.1: default 16).
    pub rm: u32,
    /// Transaction timeout over TCP (RFC 8489 §6.2.2: default 39.5 s).
    pub ti: Duration,
    /// SOFTWARE attribute to put in requests (RFC 8489 §14.14: SHOULD be included), if any.
    pub software: Option<String>,
    /// Add FINGERPRINT to requests (RFC 8489 §14.7; RFC 5780 §5 asks for it when STUN shares
    /// a flow with application traffic, as it does when run from the MSRP port).
    pub fingerprint: bool,
}

impl Default for StunConfig {
    fn default() -> Self {
        StunConfig {
            rto: Duration::from_millis(500),
            rc: 7,
            rm: 16,
            ti: Duration::from_millis(39_500),
            software: Some(concat!("msrp-rs ", env!("CARGO_PKG_VERSION")).to_string()),
            fingerprint: true,
        }
    }
}

impl StunConfig {
    /// The same schedule with the initial RTO (and Ti, scaled to stay equal to the UDP total
    /// as RFC 8489 §6.2.2 intends) replaced.
    pub fn with_rto(mut self, rto: Duration) -> Self {
        self.rto = rto;
        self.ti = self.udp_total();
        self
    }

    /// Time from the first request until a UDP transaction without a response fails:
    /// (2^(Rc-1) - 1 + Rm) · RTO, 39.5 s with the defaults.
    pub fn udp_total(&self) -> Duration {
        let doublings = (1u32 << self.rc.clamp(1, 20).saturating_sub(1)) - 1;
        self.rto * (doublings + self.rm)
    }
}

/// Bytes to send to a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send (for TCP: the connection to this address, opened on first use).
    pub destination: SocketAddr,
    /// The transport.
    pub transport: Transport,
    /// The encoded STUN message.
    pub contents: Vec<u8>,
}

/// How a transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A Binding success response, and the address it came from.
    Success {
        /// The response.
        response: Message,
        /// Source address of the response (for UDP; the connection's peer for TCP).
        from: SocketAddr,
    },
    /// A Binding error response (RFC 8489 §7.3.4) with its ERROR-CODE.
    ErrorResponse {
        /// The error code (500 when the response carries no usable ERROR-CODE).
        code: u16,
        /// The reason phrase.
        reason: String,
    },
    /// No response within the schedule (RFC 8489 §6.2.1 / §6.2.2).
    TimedOut {
        /// How many requests were sent.
        requests: u32,
        /// How long the transaction ran.
        after: Duration,
    },
    /// The transport failed (TCP connect refused or reset, hard ICMP error), or the response
    /// was unusable (RFC 8489 §7.3.3: unknown comprehension-required attributes).
    Failed(String),
}

/// One client transaction.
#[derive(Debug)]
pub struct ClientTransaction {
    id: TransactionId,
    destination: SocketAddr,
    transport: Transport,
    request: Vec<u8>,
    config: StunConfig,
    started: Instant,
    /// Requests sent so far (the first is sent at creation).
    sent: u32,
    /// Interval before the next retransmission.
    rto: Duration,
    deadline: Instant,
    transmit_pending: bool,
    outcome: Option<Outcome>,
    done: bool,
}

impl ClientTransaction {
    /// Starts a transaction for `request` (a request message) to `destination`. The first
    /// transmission is immediately available from [`poll_transmit`](Self::poll_transmit).
    pub fn new(
        request: &Message,
        destination: SocketAddr,
        transport: Transport,
        config: StunConfig,
        now: Instant,
    ) -> Self {
        let deadline = match transport {
            Transport::Udp if config.rc > 1 => now + config.rto,
            Transport::Udp => now + config.rto * config.rm,
            Transport::Tcp => now + config.ti,
        };
        ClientTransaction {
            id: request.transaction_id,
            destination,
            transport,
            request: request.encode(config.fingerprint),
            rto: config.rto,
            config,
            started: now,
            sent: 1,
            deadline,
            transmit_pending: true,
            outcome: None,
            done: false,
        }
    }

    /// The transaction id.
    pub fn id(&self) -> TransactionId {
        self.id
    }

    /// Where the request goes.
    pub fn destination(&self) -> SocketAddr {
        self.destination
    }

    /// Requests handed out for sending so far (1 + retransmissions).
    pub fn requests_sent(&self) -> u32 {
        self.sent
    }

    /// The next request to send, if one is due.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.done || !self.transmit_pending {
            return None;
        }
        self.transmit_pending = false;
        Some(Transmit {
            destination: self.destination,
            transport: self.transport,
            contents: self.request.clone(),
        })
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.done).then_some(self.deadline)
    }

    /// Advances the timers to `now`: schedules a retransmission or times the transaction out.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.done || now < self.deadline {
            return;
        }
        match self.transport {
            // RFC 8489 §6.2.1: retransmit, doubling the interval, until Rc requests are sent;
            // then wait Rm times the (initial) RTO.
            Transport::Udp if self.sent < self.config.rc => {
                self.sent += 1;
                self.transmit_pending = true;
                self.rto *= 2;
                // Schedule from the deadline, not from `now`, so a late wake-up does not
                // stretch the whole schedule.
                self.deadline = if self.sent < self.config.rc {
                    self.deadline + self.rto
                } else {
                    self.deadline + self.config.rto * self.config.rm
                };
            }
            _ => self.finish(Outcome::TimedOut {
                requests: self.sent,
                after: now.saturating_duration_since(self.started),
            }),
        }
    }

    /// Offers a received message. Returns false (and changes nothing) if it is not a Binding
    /// response to this transaction (RFC 8489 §6.3: responses are matched by transaction id).
    pub fn handle_response(&mut self, msg: &Message, from: SocketAddr) -> bool {
        if self.done || msg.transaction_id != self.id || msg.method != METHOD_BINDING {
            return false;
        }
        match msg.class {
            Class::SuccessResponse => {
                // RFC 8489 §7.3.3: unknown comprehension-required attributes make the
                // response unusable and the transaction failed.
                let unknown = msg.unknown_comprehension_required();
                if !unknown.is_empty() {
                    self.finish(Outcome::Failed(format!(
                        "success response carries unknown comprehension-required attributes {unknown:04x?}"
                    )));
                } else {
                    self.finish(Outcome::Success {
                        response: msg.clone(),
                        from,
                    });
                }
                true
            }
            Class::ErrorResponse => {
                let (code, reason) = msg
                    .error_code()
                    .map(|(c, r)| (c, r.to_string()))
                    .unwrap_or((500, "error response without ERROR-CODE".to_string()));
                self.finish(Outcome::ErrorResponse { code, reason });
                true
            }
            Class::Request | Class::Indication => false,
        }
    }

    /// The transport under this transaction failed (RFC 8489 §6.2.1: hard ICMP error;
    /// §6.2.2: TCP connection could not be established, reset or failed).
    pub fn handle_transport_failure(&mut self, why: impl Into<String>) {
        if !self.done {
            self.finish(Outcome::Failed(why.into()));
        }
    }

    /// The outcome, once the transaction has ended (handed out once).
    pub fn poll_outcome(&mut self) -> Option<Outcome> {
        self.outcome.take()
    }

    /// True once the transaction has ended.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn finish(&mut self, o: Outcome) {
        self.done = true;
        self.transmit_pending = false;
        self.outcome = Some(o);
    }
}
