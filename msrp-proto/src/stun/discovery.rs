//! NAT behaviour discovery (RFC 5780 §4), sans IO, and the RFC 6135 §4.2.2 verdict.
//!
//! [`Discovery`] runs the tests of RFC 5780 §4.3 (mapping) and §4.4 (filtering) one
//! transaction at a time and ends with a [`NatReport`]:
//!
//! 1. Test I (§4.2, §4.3, §4.4): a plain Binding request to the server. It yields the mapped
//!    address, OTHER-ADDRESS and RESPONSE-ORIGIN. No response means the server is unreachable
//!    and discovery fails.
//! 2. Filtering test II (§4.4, UDP only): CHANGE-REQUEST change-IP and change-port to the
//!    primary address; a response means endpoint-independent filtering. Otherwise test III:
//!    CHANGE-REQUEST change-port; a response means address-dependent filtering, none means
//!    address-and-port-dependent filtering.
//! 3. Mapping test II (§4.3), only if the mapped address differs from the local address:
//!    a request to the alternate IP and primary port; the same mapped address means
//!    endpoint-independent mapping. Otherwise test III to the alternate IP and port: the same
//!    mapped address as test II means address-dependent mapping, a different one
//!    address-and-port-dependent mapping.
//!
//! The filtering tests run before mapping tests II and III on purpose: RFC 5780 §4.4 says
//! they "are sensitive to prior state on the NAT", and mapping tests II and III send traffic
//! to the alternate address, which would open an address-dependent filter for it.
//!
//! Over TCP only the mapping tests apply: RFC 5780 §3.2 says the filtering test "applies
//! only to UDP datagrams" (a response from another address cannot arrive on the client's
//! TCP connection, and §3 notes that "STUN forbids a server from creating a new TCP ...
//! connection to the client"). Filtering is then reported as [`NatBehavior::NotTested`] and
//! a NATed client gets the conservative verdict.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::message::{Attribute, DecodeError, Message, TransactionId};
use super::transaction::{ClientTransaction, Outcome, StunConfig, Transmit, Transport};

/// A NAT mapping or filtering behaviour (RFC 4787 terms, as RFC 5780 §4.3/§4.4 measure them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatBehavior {
    /// Endpoint-independent.
    EndpointIndependent,
    /// Address-dependent.
    AddressDependent,
    /// Address- and port-dependent.
    AddressAndPortDependent,
    /// Could not be determined (test not applicable, server lacks RFC 5780 support, or the
    /// alternate address did not answer); the report's reason says why.
    NotTested,
}

impl NatBehavior {
    /// `endpoint-independent`, `address-dependent`, `address-and-port-dependent` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            NatBehavior::EndpointIndependent => "endpoint-independent",
            NatBehavior::AddressDependent => "address-dependent",
            NatBehavior::AddressAndPortDependent => "address-and-port-dependent",
            NatBehavior::NotTested => "unknown",
        }
    }
}

/// The `a=setup` value a UA may offer (RFC 6135 §4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfferSetup {
    /// `actpass`: the UA can accept the peer's connection at its (mapped) address.
    ActPass,
    /// `active`: the UA must open the connection itself.
    Active,
}

impl OfferSetup {
    /// `actpass` or `active`.
    pub fn as_str(self) -> &'static str {
        match self {
            OfferSetup::ActPass => "actpass",
            OfferSetup::Active => "active",
        }
    }
}

/// The reachability verdict of RFC 6135 §4.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The mapped address equals the local address: no NAT between us and the server
    /// (RFC 5780 §4.3: "the client knows that it is not NATed"), and no filtering was seen.
    NotBehindNat,
    /// Behind a NAT whose mapping and filtering are both endpoint-independent: reachable at
    /// the mapped address, so the UA may offer `actpass` with it in a=path.
    EndpointIndependent,
    /// Behind a NAT with some other (or unknown) behaviour: offer `active`.
    BehindNat {
        /// Mapping behaviour.
        mapping: NatBehavior,
        /// Filtering behaviour.
        filtering: NatBehavior,
    },
    /// Not NATed, but unsolicited inbound traffic is filtered (a stateful firewall): the UA
    /// is not reachable, so it offers `active`.
    Firewalled {
        /// The filtering behaviour observed.
        filtering: NatBehavior,
    },
}

impl Verdict {
    /// True when a NAT was detected.
    pub fn behind_nat(&self) -> bool {
        matches!(
            self,
            Verdict::EndpointIndependent | Verdict::BehindNat { .. }
        )
    }

    /// The setup value RFC 6135 §4.2.2 allows: `actpass` only when the UA "can provide a
    /// globally reachable address".
    pub fn offer_setup(&self) -> OfferSetup {
        match self {
            Verdict::NotBehindNat | Verdict::EndpointIndependent => OfferSetup::ActPass,
            Verdict::BehindNat { .. } | Verdict::Firewalled { .. } => OfferSetup::Active,
        }
    }
}

/// The result of a discovery run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatReport {
    /// Transport the tests ran over.
    pub transport: Transport,
    /// The STUN server's primary address.
    pub server: SocketAddr,
    /// The local address the tests ran from.
    pub local: SocketAddr,
    /// The mapped address from test I (XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS).
    pub mapped: SocketAddr,
    /// The server's OTHER-ADDRESS (or CHANGED-ADDRESS), if it sent one.
    pub other_address: Option<SocketAddr>,
    /// The server's RESPONSE-ORIGIN (or SOURCE-ADDRESS) in test I, if it sent one.
    pub response_origin: Option<SocketAddr>,
    /// The server's SOFTWARE, if any.
    pub software: Option<String>,
    /// Mapping behaviour.
    pub mapping: NatBehavior,
    /// Filtering behaviour.
    pub filtering: NatBehavior,
    /// The verdict.
    pub verdict: Verdict,
    /// Why: the observations behind the verdict and the conclusion, in words.
    pub reason: String,
    /// The observations alone (what [`reason`](Self::reason) is built from).
    pub observations: Vec<String>,
}

/// Why discovery could not reach a verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// Test I got no response (RFC 5780 §4.2: no connectivity with the STUN server).
    #[error("no response from STUN server {server} over {} after {requests} request(s) in {after_ms} ms", transport.as_str())]
    Timeout {
        /// The server.
        server: SocketAddr,
        /// Transport used.
        transport: Transport,
        /// Requests sent.
        requests: u32,
        /// Milliseconds waited.
        after_ms: u128,
    },
    /// Test I failed at the transport level (connection refused, reset...).
    #[error("STUN server {server} over {}: {why}", transport.as_str())]
    Transport {
        /// The server.
        server: SocketAddr,
        /// Transport used.
        transport: Transport,
        /// What happened.
        why: String,
    },
    /// Test I got an error response.
    #[error("STUN server {server} answered with error {code} {reason:?}")]
    ErrorResponse {
        /// The server.
        server: SocketAddr,
        /// ERROR-CODE.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// Test I's success response has no (XOR-)MAPPED-ADDRESS.
    #[error("STUN server {0} sent a success response without a mapped address")]
    NoMappedAddress(SocketAddr),
}

/// Which test a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    TestI,
    FilteringII,
    FilteringIII,
    MappingII,
    MappingIII,
}

/// The RFC 5780 discovery state machine. Drive it like a quinn connection: send what
/// [`poll_transmit`](Self::poll_transmit) returns, feed received messages to
/// [`handle_input`](Self::handle_input), call [`handle_timeout`](Self::handle_timeout) at
/// [`poll_timeout`](Self::poll_timeout), and stop when [`poll_result`](Self::poll_result)
/// returns a value.
pub struct Discovery {
    server: SocketAddr,
    local: SocketAddr,
    transport: Transport,
    config: StunConfig,
    next_id: Box<dyn FnMut() -> TransactionId + Send>,
    step: Step,
    current: Option<ClientTransaction>,
    // Observations.
    mapped1: Option<SocketAddr>,
    mapped2: Option<SocketAddr>,
    other: Option<SocketAddr>,
    origin: Option<SocketAddr>,
    software: Option<String>,
    mapping: NatBehavior,
    filtering: NatBehavior,
    notes: Vec<String>,
    result: Option<Result<NatReport, DiscoveryError>>,
    finished: bool,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("server", &self.server)
            .field("local", &self.local)
            .field("transport", &self.transport)
            .field("step", &self.step)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// Compares addresses after unwrapping IPv4-mapped IPv6 (a dual-stack socket reports
/// `::ffff:a.b.c.d`).
fn same_addr(a: SocketAddr, b: SocketAddr) -> bool {
    canonical(a) == canonical(b)
}

fn canonical(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => a,
        },
        IpAddr::V4(_) => a,
    }
}

impl Discovery {
    /// Starts discovery against `server` from `local`, which must be the concrete local
    /// address (not a wildcard) the requests leave from, since test I compares it with the
    /// mapped address. `next_id` supplies transaction ids; RFC 8489 §5 wants them
    /// cryptographically random (the tokio layer uses `rand`).
    pub fn new(
        server: SocketAddr,
        local: SocketAddr,
        transport: Transport,
        config: StunConfig,
        next_id: Box<dyn FnMut() -> TransactionId + Send>,
        now: Instant,
    ) -> Self {
        let mut d = Discovery {
            server,
            local,
            transport,
            config,
            next_id,
            step: Step::TestI,
            current: None,
            mapped1: None,
            mapped2: None,
            other: None,
            origin: None,
            software: None,
            mapping: NatBehavior::NotTested,
            filtering: NatBehavior::NotTested,
            notes: Vec::new(),
            result: None,
            finished: false,
        };
        d.start(Step::TestI, server, None, now);
        d
    }

    /// The transport this discovery uses.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    fn start(&mut self, step: Step, dest: SocketAddr, change: Option<(bool, bool)>, now: Instant) {
        let mut attrs = Vec::new();
        if let Some((change_ip, change_port)) = change {
            attrs.push(Attribute::ChangeRequest {
                change_ip,
                change_port,
            });
        }
        if let Some(s) = &self.config.software {
            attrs.push(Attribute::Software(s.clone()));
        }
        let req = Message::binding_request((self.next_id)(), attrs);
        self.step = step;
        self.current = Some(ClientTransaction::new(
            &req,
            dest,
            self.transport,
            self.config.clone(),
            now,
        ));
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.current.as_mut()?.poll_transmit()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next; `None` once finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        self.current.as_ref()?.poll_timeout()
    }

    /// Advances timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(t) = self.current.as_mut() {
            t.handle_timeout(now);
        }
        self.advance(now);
    }

    /// Feeds one received STUN message (a UDP datagram, or one message cut from a TCP stream
    /// with [`frame_len`](super::frame_len)) from `from`. Messages that do not decode or do
    /// not belong to the current transaction (late responses to earlier tests, strays) are
    /// ignored; the decode error is returned for logging.
    pub fn handle_input(
        &mut self,
        from: SocketAddr,
        data: &[u8],
        now: Instant,
    ) -> Result<(), DecodeError> {
        let msg = Message::decode(data)?;
        if let Some(t) = self.current.as_mut() {
            t.handle_response(&msg, from);
        }
        self.advance(now);
        Ok(())
    }

    /// The transport to `destination` failed (TCP connect refused or reset, or a hard ICMP
    /// error); the transaction in flight there fails (RFC 8489 §6.2.1, §6.2.2).
    pub fn handle_transport_failure(&mut self, destination: SocketAddr, why: &str, now: Instant) {
        if let Some(t) = self.current.as_mut() {
            if t.destination() == destination {
                t.handle_transport_failure(why);
            }
        }
        self.advance(now);
    }

    /// The result, once discovery has finished (handed out once).
    pub fn poll_result(&mut self) -> Option<Result<NatReport, DiscoveryError>> {
        self.result.take()
    }

    /// True once discovery has finished.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    fn advance(&mut self, now: Instant) {
        // Each outcome may start the next test; loop bounded by the number of steps.
        for _ in 0..8 {
            let Some(t) = self.current.as_mut() else {
                return;
            };
            let Some(outcome) = t.poll_outcome() else {
                return;
            };
            self.current = None;
            self.on_outcome(outcome, now);
            if self.finished {
                return;
            }
        }
    }

    fn on_outcome(&mut self, outcome: Outcome, now: Instant) {
        match self.step {
            Step::TestI => self.on_test_i(outcome, now),
            Step::FilteringII => {
                match outcome {
                    Outcome::Success { from, .. } => {
                        if canonical(from).ip() == canonical(self.server).ip() {
                            // RFC 5780 §6.1 Table 1: the answer must come from Ca:Cp. From the
                            // primary IP, the server ignored (or half-honoured) CHANGE-REQUEST,
                            // so the answer proves nothing about filtering by address.
                            self.filtering = NatBehavior::NotTested;
                            self.notes.push(format!(
                                "the server answered CHANGE-REQUEST(change IP and port) from {from}, \
                                 not from another IP address, so filtering was not measured"
                            ));
                        } else {
                            self.filtering = NatBehavior::EndpointIndependent;
                            self.notes.push(format!(
                                "a response from the alternate address {from} got through (RFC 5780 §4.4 test II)"
                            ));
                        }
                        self.start_mapping_ii(now);
                    }
                    Outcome::TimedOut { .. } | Outcome::Failed(_) => {
                        // RFC 5780 §4.4: no response -> test III.
                        self.notes.push(
                            "no response from the alternate IP and port (RFC 5780 §4.4 test II)"
                                .to_string(),
                        );
                        self.start(Step::FilteringIII, self.server, Some((false, true)), now);
                    }
                    Outcome::ErrorResponse { code, reason } => {
                        self.notes.push(format!(
                            "the server rejected CHANGE-REQUEST with {code} {reason:?}, so filtering was not measured"
                        ));
                        self.start_mapping_ii(now);
                    }
                }
            }
            Step::FilteringIII => {
                match outcome {
                    Outcome::Success { from, .. } if same_addr(from, self.server) => {
                        self.notes.push(format!(
                            "the server answered CHANGE-REQUEST(change port) from {from}, so filtering was not measured"
                        ));
                    }
                    Outcome::Success { from, .. } => {
                        self.filtering = NatBehavior::AddressDependent;
                        self.notes.push(format!(
                            "a response from the server's other port ({from}) got through (RFC 5780 §4.4 test III)"
                        ));
                    }
                    Outcome::TimedOut { .. } | Outcome::Failed(_) => {
                        self.filtering = NatBehavior::AddressAndPortDependent;
                        self.notes.push(
                            "no response from the server's other port either (RFC 5780 §4.4 test III)"
                                .to_string(),
                        );
                    }
                    Outcome::ErrorResponse { code, reason } => {
                        self.notes.push(format!(
                            "the server rejected CHANGE-REQUEST with {code} {reason:?}, so filtering was not measured"
                        ));
                    }
                }
                self.start_mapping_ii(now);
            }
            Step::MappingII => match outcome {
                Outcome::Success { response, .. } => match response.mapped_address() {
                    Some(m2) if Some(m2) == self.mapped1 => {
                        self.mapping = NatBehavior::EndpointIndependent;
                        self.notes.push(format!(
                            "the alternate address saw the same mapped address {m2} (RFC 5780 §4.3 test II)"
                        ));
                        self.finish(now);
                    }
                    Some(m2) => {
                        self.mapped2 = Some(m2);
                        self.notes.push(format!(
                            "the alternate address saw a different mapped address {m2} (RFC 5780 §4.3 test II)"
                        ));
                        let other = self
                            .other
                            .expect("mapping tests run only with OTHER-ADDRESS");
                        self.start(Step::MappingIII, other, None, now);
                    }
                    None => {
                        self.notes
                            .push("mapping test II response had no mapped address".to_string());
                        self.finish(now);
                    }
                },
                other => {
                    self.notes.push(format!(
                        "mapping test II to the alternate address failed: {}",
                        describe(&other)
                    ));
                    self.finish(now);
                }
            },
            Step::MappingIII => match outcome {
                Outcome::Success { response, .. } => {
                    match response.mapped_address() {
                        Some(m3) if Some(m3) == self.mapped2 => {
                            self.mapping = NatBehavior::AddressDependent;
                            self.notes.push(format!(
                                "the alternate IP and port saw {m3}, as in test II (RFC 5780 §4.3 test III)"
                            ));
                        }
                        Some(m3) => {
                            self.mapping = NatBehavior::AddressAndPortDependent;
                            self.notes.push(format!(
                                "the alternate IP and port saw yet another mapped address {m3} (RFC 5780 §4.3 test III)"
                            ));
                        }
                        None => self
                            .notes
                            .push("mapping test III response had no mapped address".to_string()),
                    }
                    self.finish(now);
                }
                other => {
                    self.notes.push(format!(
                        "mapping test III to the alternate address failed: {}",
                        describe(&other)
                    ));
                    self.finish(now);
                }
            },
        }
    }

    fn on_test_i(&mut self, outcome: Outcome, now: Instant) {
        let (response, _from) = match outcome {
            Outcome::Success { response, from } => (response, from),
            Outcome::TimedOut { requests, after } => {
                return self.fail(DiscoveryError::Timeout {
                    server: self.server,
                    transport: self.transport,
                    requests,
                    after_ms: after.as_millis(),
                })
            }
            Outcome::Failed(why) => {
                return self.fail(DiscoveryError::Transport {
                    server: self.server,
                    transport: self.transport,
                    why,
                })
            }
            Outcome::ErrorResponse { code, reason } => {
                return self.fail(DiscoveryError::ErrorResponse {
                    server: self.server,
                    code,
                    reason,
                })
            }
        };
        let Some(mapped) = response.mapped_address() else {
            return self.fail(DiscoveryError::NoMappedAddress(self.server));
        };
        self.mapped1 = Some(mapped);
        self.other = response.other_address();
        self.origin = response.response_origin();
        self.software = response.software().map(str::to_string);
        let nated = !same_addr(mapped, self.local);
        if nated {
            self.notes.push(format!(
                "the mapped address {mapped} differs from the local address {}",
                self.local
            ));
        } else {
            // RFC 5780 §4.3: "the client knows that it is not NATed and the effective mapping
            // will be Endpoint-Independent".
            self.mapping = NatBehavior::EndpointIndependent;
            self.notes.push(format!(
                "the mapped address {mapped} equals the local address"
            ));
        }
        let Some(other) = self.other else {
            // RFC 5780 §4.3/§4.4: "If OTHER-ADDRESS is not returned, the server does not
            // support this usage and this test cannot be run."
            self.notes.push(format!(
                "the server sent no OTHER-ADDRESS over {}, so the RFC 5780 tests could not run",
                self.transport.as_str()
            ));
            return self.finish(now);
        };
        if same_addr(other, self.server) || other.ip() == self.server.ip() {
            self.notes.push(format!(
                "OTHER-ADDRESS {other} does not name a second IP address, so the RFC 5780 tests could not run"
            ));
            self.other = None;
            return self.finish(now);
        }
        match self.transport {
            Transport::Udp => self.start(Step::FilteringII, self.server, Some((true, true)), now),
            Transport::Tcp => {
                // RFC 5780 §3.2: the filtering test "applies only to UDP datagrams".
                self.notes.push(
                    "filtering cannot be tested over TCP (RFC 5780 §3.2: a response from another \
                     address cannot arrive on this connection)"
                        .to_string(),
                );
                self.start_mapping_ii(now);
            }
        }
    }

    fn start_mapping_ii(&mut self, now: Instant) {
        let nated = self.mapped1.is_some_and(|m| !same_addr(m, self.local));
        match self.other {
            Some(other) if nated => {
                // RFC 5780 §4.3 test II: alternate address, primary port.
                let dest = SocketAddr::new(other.ip(), self.server.port());
                self.start(Step::MappingII, dest, None, now);
            }
            _ => self.finish(now),
        }
    }

    fn fail(&mut self, e: DiscoveryError) {
        self.finished = true;
        self.current = None;
        self.result = Some(Err(e));
    }

    fn finish(&mut self, _now: Instant) {
        let mapped = self.mapped1.expect("finish only after test I succeeded");
        let nated = !same_addr(mapped, self.local);
        let verdict = verdict_for(nated, self.mapping, self.filtering);
        let observations = std::mem::take(&mut self.notes);
        self.finished = true;
        self.current = None;
        self.result = Some(Ok(NatReport {
            transport: self.transport,
            server: self.server,
            local: self.local,
            mapped,
            other_address: self.other,
            response_origin: self.origin,
            software: self.software.take(),
            mapping: self.mapping,
            filtering: self.filtering,
            verdict,
            reason: reason_text(&observations, verdict, mapped),
            observations,
        }));
    }
}

/// The RFC 6135 §4.2.2 verdict from the observations: `nated` (mapped address differs from the
/// local one), mapping and filtering behaviour.
pub fn verdict_for(nated: bool, mapping: NatBehavior, filtering: NatBehavior) -> Verdict {
    if !nated {
        match filtering {
            NatBehavior::AddressDependent | NatBehavior::AddressAndPortDependent => {
                Verdict::Firewalled { filtering }
            }
            _ => Verdict::NotBehindNat,
        }
    } else if mapping == NatBehavior::EndpointIndependent
        && filtering == NatBehavior::EndpointIndependent
    {
        Verdict::EndpointIndependent
    } else {
        Verdict::BehindNat { mapping, filtering }
    }
}

fn conclusion(verdict: Verdict, mapped: SocketAddr) -> String {
    match verdict {
        Verdict::NotBehindNat => {
            format!("not behind a NAT: reachable at {mapped}, so offer actpass (RFC 6135 §4.2.2)")
        }
        Verdict::EndpointIndependent => format!(
            "behind a NAT with endpoint-independent mapping and filtering: reachable at the \
             mapped address {mapped}, so offer actpass with it in a=path (RFC 6135 §4.2.2)"
        ),
        Verdict::BehindNat { mapping, filtering } => format!(
            "behind a NAT ({} mapping, {} filtering): a peer's connection would not get in, \
             so offer active (RFC 6135 §4.2.2)",
            mapping.as_str(),
            filtering.as_str()
        ),
        Verdict::Firewalled { filtering } => format!(
            "not behind a NAT, but inbound traffic is filtered ({} filtering): a peer's \
             connection would not get in, so offer active (RFC 6135 §4.2.2)",
            filtering.as_str()
        ),
    }
}

fn reason_text(observations: &[String], verdict: Verdict, mapped: SocketAddr) -> String {
    let mut parts: Vec<String> = observations.to_vec();
    parts.push(conclusion(verdict, mapped));
    parts.join("; ")
}

/// Combines a TCP discovery (run from the MSRP listener's port: the mapped TCP address and the
/// TCP mapping behaviour) with a UDP discovery from the same port number (the filtering
/// behaviour, which RFC 5780 §3.2 can test only for UDP).
///
/// RFC 6135 §4.2.2 asks for endpoint-independent mapping *and* filtering of the TCP port the
/// MSRP connection will use, and the a=path address must be the TCP mapping. Over TCP alone
/// filtering is unknown, so the verdict can never be `actpass` behind a NAT; this combination
/// takes the UDP filtering as evidence for TCP, an assumption the reason states (it holds for
/// one-to-one NATs and typical NAPTs that treat both protocols alike, but a NAT may differ).
/// A failed UDP run leaves filtering unknown.
pub fn combine_tcp_with_udp_filtering(
    tcp: NatReport,
    udp: Result<NatReport, DiscoveryError>,
) -> NatReport {
    let nated = !same_addr(tcp.mapped, tcp.local);
    let mut observations: Vec<String> = tcp
        .observations
        .iter()
        .map(|o| format!("TCP: {o}"))
        .collect();
    let filtering = match &udp {
        Ok(u) => {
            observations.extend(u.observations.iter().map(|o| format!("UDP: {o}")));
            if u.filtering != NatBehavior::NotTested {
                observations.push(format!(
                    "assuming the NAT filters TCP as it filters UDP ({} over UDP; RFC 5780 \
                     cannot test TCP filtering)",
                    u.filtering.as_str()
                ));
            }
            u.filtering
        }
        Err(e) => {
            observations.push(format!("UDP: filtering tests failed: {e}"));
            NatBehavior::NotTested
        }
    };
    let verdict = verdict_for(nated, tcp.mapping, filtering);
    NatReport {
        filtering,
        verdict,
        reason: reason_text(&observations, verdict, tcp.mapped),
        observations,
        ..tcp
    }
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Success { .. } => "success".to_string(),
        Outcome::ErrorResponse { code, reason } => format!("error {code} {reason:?}"),
        Outcome::TimedOut { requests, after } => format!(
            "no response after {requests} request(s) in {} ms",
            after.as_millis()
        ),
        Outcome::Failed(why) => why.clone(),
    }
}
