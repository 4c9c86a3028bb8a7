//! STUN transaction timers and RFC 5780 discovery on fake time, against a simulated server
//! and a simulated NAT (RFC 4787 mapping and filtering behaviours).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use msrp_proto::stun::{
    Attribute, Class, ClientTransaction, Discovery, DiscoveryError, Message, NatBehavior,
    OfferSetup, Outcome, StunConfig, TransactionId, Transport, Verdict,
};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ids() -> Box<dyn FnMut() -> TransactionId + Send> {
    let mut n = 0u32;
    Box::new(move || {
        n += 1;
        let mut id = [0xabu8; 12];
        id[8..].copy_from_slice(&n.to_be_bytes());
        TransactionId(id)
    })
}

fn request() -> Message {
    Message::binding_request(TransactionId([1; 12]), vec![])
}

fn success(req: &Message, mapped: SocketAddr) -> Message {
    Message {
        class: Class::SuccessResponse,
        method: 1,
        transaction_id: req.transaction_id,
        attributes: vec![Attribute::XorMappedAddress(mapped)],
    }
}

// ---------------------------------------------------------------------------------------
// Client transaction timers (RFC 8489 §6.2)
// ---------------------------------------------------------------------------------------

#[test]
fn udp_retransmission_schedule_is_rfc8489_default() {
    // RFC 8489 §6.2.1: "requests would be sent at times 0 ms, 500 ms, 1500 ms, 3500 ms,
    // 7500 ms, 15500 ms, and 31500 ms. If the client has not received a response after
    // 39500 ms, the client will consider the transaction to have timed out."
    let t0 = Instant::now();
    let mut t = ClientTransaction::new(
        &request(),
        sa("192.0.2.1:3478"),
        Transport::Udp,
        StunConfig::default(),
        t0,
    );
    let mut sent_at = Vec::new();
    let mut now = t0;
    // Bounded loop: at most 100 timer steps.
    for _ in 0..100 {
        while let Some(tx) = t.poll_transmit() {
            assert_eq!(tx.destination, sa("192.0.2.1:3478"));
            sent_at.push(now.duration_since(t0).as_millis());
        }
        match t.poll_timeout() {
            Some(deadline) => {
                now = deadline;
                t.handle_timeout(now);
            }
            None => break,
        }
    }
    assert_eq!(sent_at, vec![0, 500, 1500, 3500, 7500, 15500, 31500]);
    match t.poll_outcome() {
        Some(Outcome::TimedOut { requests, after }) => {
            assert_eq!(requests, 7);
            assert_eq!(after, Duration::from_millis(39_500));
        }
        other => panic!("expected timeout, got {other:?}"),
    }
    assert_eq!(
        StunConfig::default().udp_total(),
        Duration::from_millis(39_500)
    );
}

#[test]
fn early_timer_call_does_nothing_and_late_call_keeps_schedule() {
    let t0 = Instant::now();
    let mut t = ClientTransaction::new(
        &request(),
        sa("192.0.2.1:3478"),
        Transport::Udp,
        StunConfig::default(),
        t0,
    );
    assert!(t.poll_transmit().is_some());
    t.handle_timeout(t0 + Duration::from_millis(499));
    assert!(t.poll_transmit().is_none());
    // Woken 100 ms late: the retransmission goes out, and the next deadline is still 1500 ms.
    t.handle_timeout(t0 + Duration::from_millis(600));
    assert!(t.poll_transmit().is_some());
    assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_millis(1500)));
}

#[test]
fn tcp_transaction_sends_once_and_times_out_after_ti() {
    // RFC 8489 §6.2.2: no retransmissions over TCP; Ti default 39.5 s.
    let t0 = Instant::now();
    let mut t = ClientTransaction::new(
        &request(),
        sa("192.0.2.1:3478"),
        Transport::Tcp,
        StunConfig::default(),
        t0,
    );
    assert!(t.poll_transmit().is_some());
    assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_millis(39_500)));
    t.handle_timeout(t0 + Duration::from_millis(39_499));
    assert!(t.poll_transmit().is_none());
    assert!(t.poll_outcome().is_none());
    t.handle_timeout(t0 + Duration::from_millis(39_500));
    assert!(t.poll_transmit().is_none());
    assert!(matches!(
        t.poll_outcome(),
        Some(Outcome::TimedOut { requests: 1, .. })
    ));
}

#[test]
fn responses_are_matched_by_transaction_id() {
    let t0 = Instant::now();
    let req = request();
    let mut t = ClientTransaction::new(
        &req,
        sa("192.0.2.1:3478"),
        Transport::Udp,
        StunConfig::default(),
        t0,
    );
    let mut other = success(&req, sa("198.51.100.1:1"));
    other.transaction_id = TransactionId([2; 12]);
    assert!(!t.handle_response(&other, sa("192.0.2.1:3478")));
    // A request with our id (a reflection) is not a response.
    assert!(!t.handle_response(&req, sa("192.0.2.1:3478")));
    assert!(!t.is_done());
    assert!(t.handle_response(&success(&req, sa("198.51.100.1:1")), sa("192.0.2.1:3478")));
    assert!(matches!(t.poll_outcome(), Some(Outcome::Success { .. })));
    // Nothing more after completion.
    t.handle_timeout(t0 + Duration::from_secs(100));
    assert!(t.poll_transmit().is_none());
    assert!(t.poll_outcome().is_none());
}

#[test]
fn error_response_and_unknown_comprehension_required() {
    let t0 = Instant::now();
    let req = request();
    let mut t = ClientTransaction::new(
        &req,
        sa("192.0.2.1:3478"),
        Transport::Udp,
        StunConfig::default(),
        t0,
    );
    let err = Message {
        class: Class::ErrorResponse,
        method: 1,
        transaction_id: req.transaction_id,
        attributes: vec![Attribute::ErrorCode {
            code: 420,
            reason: "Unknown Attribute".into(),
        }],
    };
    assert!(t.handle_response(&err, sa("192.0.2.1:3478")));
    assert_eq!(
        t.poll_outcome(),
        Some(Outcome::ErrorResponse {
            code: 420,
            reason: "Unknown Attribute".into()
        })
    );

    // RFC 8489 §7.3.3: a success response with an unknown comprehension-required attribute
    // fails the transaction.
    let mut t = ClientTransaction::new(
        &req,
        sa("192.0.2.1:3478"),
        Transport::Udp,
        StunConfig::default(),
        t0,
    );
    let mut ok = success(&req, sa("198.51.100.1:1"));
    ok.attributes.push(Attribute::Unknown {
        typ: 0x0031,
        value: vec![0; 4],
    });
    assert!(t.handle_response(&ok, sa("192.0.2.1:3478")));
    assert!(matches!(t.poll_outcome(), Some(Outcome::Failed(_))));
}

// ---------------------------------------------------------------------------------------
// Discovery against a simulated server and NAT
// ---------------------------------------------------------------------------------------

const SERVER: &str = "203.0.113.1:3478";
const ALT: &str = "203.0.113.2:3479";
const LOCAL: &str = "192.0.2.10:5000";

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Ei,
    Ad,
    Apd,
}

/// What the simulated server supports.
#[derive(Clone, Copy)]
struct ServerModel {
    /// Send OTHER-ADDRESS (RFC 5780 support).
    other_address: bool,
    /// Honour CHANGE-REQUEST (otherwise answer from the primary address anyway).
    honour_change: bool,
    /// Answer CHANGE-REQUEST with 420.
    reject_change: bool,
    /// Honour only the change-port flag (a server with one IP address and two ports).
    port_change_only: bool,
    /// Send MAPPED-ADDRESS only (RFC 3489 style) and CHANGED-ADDRESS instead of OTHER-ADDRESS.
    legacy: bool,
    /// Drop everything (unreachable server).
    silent: bool,
}

const GOOD_SERVER: ServerModel = ServerModel {
    other_address: true,
    honour_change: true,
    reject_change: false,
    port_change_only: false,
    legacy: false,
    silent: false,
};

/// None = no NAT. With a NAT, `firewall_only` keeps addresses but filters.
#[derive(Clone, Copy)]
struct NatModel {
    mapping: Kind,
    filtering: Kind,
    translate: bool,
}

struct Sim {
    nat: Option<NatModel>,
    server: ServerModel,
    /// Mapping table: key depends on mapping kind -> public port.
    ports: HashMap<String, u16>,
    /// Destinations contacted from inside (for filtering).
    contacted: HashSet<SocketAddr>,
    requests: Vec<(SocketAddr, Option<(bool, bool)>)>,
}

impl Sim {
    fn new(nat: Option<NatModel>, server: ServerModel) -> Self {
        Sim {
            nat,
            server,
            ports: HashMap::new(),
            contacted: HashSet::new(),
            requests: Vec::new(),
        }
    }

    /// Outbound through the NAT: returns the source address the server sees.
    fn outbound(&mut self, dest: SocketAddr) -> SocketAddr {
        self.contacted.insert(dest);
        let local = sa(LOCAL);
        let Some(nat) = self.nat else { return local };
        if !nat.translate {
            return local;
        }
        let key = match nat.mapping {
            Kind::Ei => String::new(),
            Kind::Ad => dest.ip().to_string(),
            Kind::Apd => dest.to_string(),
        };
        let next = 40000 + self.ports.len() as u16;
        let port = *self.ports.entry(key).or_insert(next);
        SocketAddr::new(IpAddr::from([198, 51, 100, 7]), port)
    }

    /// Inbound through the NAT: may the packet from `from` reach the client?
    fn inbound_allowed(&self, from: SocketAddr) -> bool {
        let Some(nat) = self.nat else { return true };
        match nat.filtering {
            Kind::Ei => true,
            Kind::Ad => self.contacted.iter().any(|c| c.ip() == from.ip()),
            Kind::Apd => self.contacted.contains(&from),
        }
    }

    /// The server: returns (response source, response bytes) or None.
    fn serve(
        &mut self,
        dest: SocketAddr,
        bytes: &[u8],
        transport: Transport,
    ) -> Option<(SocketAddr, Vec<u8>)> {
        let req = Message::decode(bytes).expect("client sends valid STUN");
        assert_eq!(req.class, Class::Request);
        let change = req.find(|a| match a {
            Attribute::ChangeRequest {
                change_ip,
                change_port,
            } => Some((*change_ip, *change_port)),
            _ => None,
        });
        self.requests.push((dest, change));
        let src = self.outbound(dest);
        if self.server.silent {
            return None;
        }
        let (primary, alt) = (sa(SERVER), sa(ALT));
        let (ca, cp) = if dest.ip() == primary.ip() {
            (
                alt.ip(),
                if dest.port() == primary.port() {
                    alt.port()
                } else {
                    primary.port()
                },
            )
        } else {
            (
                primary.ip(),
                if dest.port() == primary.port() {
                    alt.port()
                } else {
                    primary.port()
                },
            )
        };
        let _ = cp;
        if change.is_some() && self.server.reject_change {
            let resp = Message {
                class: Class::ErrorResponse,
                method: 1,
                transaction_id: req.transaction_id,
                attributes: vec![Attribute::ErrorCode {
                    code: 420,
                    reason: "Unknown Attribute".into(),
                }],
            };
            return Some((dest, resp.encode(true)));
        }
        // RFC 5780 §6.1 Table 1.
        let (ci, cpf) = change.unwrap_or((false, false));
        let other_port = if dest.port() == primary.port() {
            alt.port()
        } else {
            primary.port()
        };
        let from = if self.server.honour_change && transport == Transport::Udp {
            SocketAddr::new(
                if ci && !self.server.port_change_only {
                    ca
                } else {
                    dest.ip()
                },
                if cpf { other_port } else { dest.port() },
            )
        } else {
            dest
        };
        let mut attrs = if self.server.legacy {
            vec![Attribute::MappedAddress(src)]
        } else {
            vec![
                Attribute::XorMappedAddress(src),
                Attribute::MappedAddress(src),
            ]
        };
        if self.server.other_address {
            let other = SocketAddr::new(ca, other_port);
            attrs.push(if self.server.legacy {
                Attribute::ChangedAddress(other)
            } else {
                Attribute::OtherAddress(other)
            });
            attrs.push(Attribute::ResponseOrigin(from));
        }
        attrs.push(Attribute::Software("sim".into()));
        let resp = Message {
            class: Class::SuccessResponse,
            method: 1,
            transaction_id: req.transaction_id,
            attributes: attrs,
        };
        Some((from, resp.encode(true)))
    }
}

/// Runs discovery to completion on fake time. Returns the result and the elapsed fake time.
fn run(
    nat: Option<NatModel>,
    server: ServerModel,
    transport: Transport,
) -> (
    Result<msrp_proto::stun::NatReport, DiscoveryError>,
    Duration,
    Sim,
) {
    let mut sim = Sim::new(nat, server);
    let t0 = Instant::now();
    let mut now = t0;
    let mut d = Discovery::new(
        sa(SERVER),
        sa(LOCAL),
        transport,
        StunConfig::default(),
        ids(),
        t0,
    );
    for _ in 0..1000 {
        while let Some(tx) = d.poll_transmit() {
            assert_eq!(tx.transport, transport);
            if let Some((from, resp)) = sim.serve(tx.destination, &tx.contents, transport) {
                if transport == Transport::Tcp || sim.inbound_allowed(from) {
                    d.handle_input(from, &resp, now).unwrap();
                }
            }
        }
        if let Some(r) = d.poll_result() {
            return (r, now - t0, sim);
        }
        let deadline = d.poll_timeout().expect("unfinished discovery has a timer");
        now = deadline;
        d.handle_timeout(now);
        if let Some(r) = d.poll_result() {
            return (r, now - t0, sim);
        }
    }
    panic!("discovery did not finish");
}

fn nat(mapping: Kind, filtering: Kind) -> Option<NatModel> {
    Some(NatModel {
        mapping,
        filtering,
        translate: true,
    })
}

fn to_behavior(k: Kind) -> NatBehavior {
    match k {
        Kind::Ei => NatBehavior::EndpointIndependent,
        Kind::Ad => NatBehavior::AddressDependent,
        Kind::Apd => NatBehavior::AddressAndPortDependent,
    }
}

#[test]
fn no_nat_gives_not_behind_nat_and_actpass() {
    let (r, elapsed, sim) = run(None, GOOD_SERVER, Transport::Udp);
    let r = r.unwrap();
    assert_eq!(r.verdict, Verdict::NotBehindNat);
    assert_eq!(r.mapped, sa(LOCAL));
    assert_eq!(r.mapping, NatBehavior::EndpointIndependent);
    assert_eq!(r.filtering, NatBehavior::EndpointIndependent);
    assert_eq!(r.verdict.offer_setup(), OfferSetup::ActPass);
    assert!(!r.verdict.behind_nat());
    assert_eq!(r.other_address, Some(sa(ALT)));
    assert_eq!(r.response_origin, Some(sa(SERVER)));
    assert_eq!(r.software.as_deref(), Some("sim"));
    // Test I and filtering test II only; no mapping tests needed without a NAT.
    assert_eq!(
        sim.requests,
        vec![(sa(SERVER), None), (sa(SERVER), Some((true, true)))]
    );
    assert_eq!(elapsed, Duration::ZERO);
}

#[test]
fn every_nat_combination_gets_the_right_verdict() {
    for m in [Kind::Ei, Kind::Ad, Kind::Apd] {
        for f in [Kind::Ei, Kind::Ad, Kind::Apd] {
            let (r, _, sim) = run(nat(m, f), GOOD_SERVER, Transport::Udp);
            let r = r.unwrap();
            assert_eq!(
                r.mapping,
                to_behavior(m),
                "mapping for {m:?}/{f:?}: {}",
                r.reason
            );
            assert_eq!(
                r.filtering,
                to_behavior(f),
                "filtering for {m:?}/{f:?}: {}",
                r.reason
            );
            assert!(r.verdict.behind_nat());
            assert_eq!(r.mapped.ip(), IpAddr::from([198, 51, 100, 7]));
            if m == Kind::Ei && f == Kind::Ei {
                assert_eq!(r.verdict, Verdict::EndpointIndependent);
                assert_eq!(r.verdict.offer_setup(), OfferSetup::ActPass);
            } else {
                assert_eq!(
                    r.verdict,
                    Verdict::BehindNat {
                        mapping: to_behavior(m),
                        filtering: to_behavior(f)
                    }
                );
                assert_eq!(r.verdict.offer_setup(), OfferSetup::Active);
            }
            // RFC 5780 §4.4: filtering tests precede any request to the alternate address.
            let first_alt = sim
                .requests
                .iter()
                .position(|(d, _)| d.ip() == sa(ALT).ip());
            let last_change = sim.requests.iter().rposition(|(_, c)| c.is_some());
            if let (Some(a), Some(c)) = (first_alt, last_change) {
                assert!(
                    c < a,
                    "filtering test after a mapping test: {:?}",
                    sim.requests
                );
            }
            // Mapping test II goes to the alternate IP with the primary port.
            if let Some(a) = first_alt {
                assert_eq!(
                    sim.requests[a].0,
                    SocketAddr::new(sa(ALT).ip(), sa(SERVER).port())
                );
            }
            assert!(!r.reason.is_empty());
            // RFC 5780 §5: no more than ten new transactions per second. One transaction at
            // a time and at most five per run (test I, filtering II/III, mapping II/III).
            let transactions: std::collections::HashSet<_> =
                sim.requests.iter().map(|(d, c)| (*d, *c)).collect();
            assert!(transactions.len() <= 5, "{:?}", sim.requests);
        }
    }
}

#[test]
fn filtering_timeouts_follow_the_retransmission_schedule() {
    // Address-and-port-dependent filtering: tests II and III each time out after 39.5 s.
    let (r, elapsed, sim) = run(nat(Kind::Ei, Kind::Apd), GOOD_SERVER, Transport::Udp);
    assert!(r.is_ok());
    assert_eq!(elapsed, Duration::from_millis(2 * 39_500));
    // 1 (test I) + 7 + 7 (retransmitted change requests) + 1 (mapping II).
    assert_eq!(sim.requests.len(), 16);
    assert_eq!(
        sim.requests
            .iter()
            .filter(|(_, c)| *c == Some((true, true)))
            .count(),
        7
    );
    assert_eq!(
        sim.requests
            .iter()
            .filter(|(_, c)| *c == Some((false, true)))
            .count(),
        7
    );
}

#[test]
fn firewall_without_nat_offers_active() {
    let fw = Some(NatModel {
        mapping: Kind::Ei,
        filtering: Kind::Apd,
        translate: false,
    });
    let (r, _, _) = run(fw, GOOD_SERVER, Transport::Udp);
    let r = r.unwrap();
    assert_eq!(
        r.verdict,
        Verdict::Firewalled {
            filtering: NatBehavior::AddressAndPortDependent
        }
    );
    assert!(!r.verdict.behind_nat());
    assert_eq!(r.verdict.offer_setup(), OfferSetup::Active);
}

#[test]
fn server_without_other_address() {
    let s = ServerModel {
        other_address: false,
        ..GOOD_SERVER
    };
    let (r, _, sim) = run(None, s, Transport::Udp);
    let r = r.unwrap();
    assert_eq!(r.verdict, Verdict::NotBehindNat);
    assert_eq!(r.filtering, NatBehavior::NotTested);
    assert!(r.reason.contains("no OTHER-ADDRESS"), "{}", r.reason);
    assert_eq!(sim.requests.len(), 1);

    let (r, _, _) = run(nat(Kind::Ei, Kind::Ei), s, Transport::Udp);
    let r = r.unwrap();
    // Even an endpoint-independent NAT cannot be proven so: active.
    assert_eq!(
        r.verdict,
        Verdict::BehindNat {
            mapping: NatBehavior::NotTested,
            filtering: NatBehavior::NotTested
        }
    );
    assert_eq!(r.verdict.offer_setup(), OfferSetup::Active);
}

#[test]
fn server_ignoring_change_request_is_not_taken_for_open_filtering() {
    let s = ServerModel {
        honour_change: false,
        ..GOOD_SERVER
    };
    let (r, _, _) = run(nat(Kind::Ei, Kind::Apd), s, Transport::Udp);
    let r = r.unwrap();
    assert_eq!(r.filtering, NatBehavior::NotTested);
    assert_eq!(r.mapping, NatBehavior::EndpointIndependent);
    assert_eq!(r.verdict.offer_setup(), OfferSetup::Active);
    assert!(r.reason.contains("not measured"), "{}", r.reason);
}

#[test]
fn server_rejecting_change_request_with_420() {
    // RFC 5780 §5: "Clients MUST be prepared to receive a 420 for requests that include
    // CHANGE-REQUEST".
    let s = ServerModel {
        reject_change: true,
        ..GOOD_SERVER
    };
    let (r, _, _) = run(nat(Kind::Ei, Kind::Ei), s, Transport::Udp);
    let r = r.unwrap();
    assert_eq!(r.filtering, NatBehavior::NotTested);
    assert_eq!(r.mapping, NatBehavior::EndpointIndependent);
    assert_eq!(r.verdict.offer_setup(), OfferSetup::Active);
    assert!(r.reason.contains("420"), "{}", r.reason);
}

#[test]
fn legacy_rfc3489_attributes_are_used_as_fallbacks() {
    let s = ServerModel {
        legacy: true,
        ..GOOD_SERVER
    };
    let (r, _, _) = run(nat(Kind::Ei, Kind::Ei), s, Transport::Udp);
    let r = r.unwrap();
    assert_eq!(r.other_address, Some(sa(ALT)));
    assert_eq!(r.verdict, Verdict::EndpointIndependent);
}

#[test]
fn unreachable_server_is_a_timeout_error() {
    let s = ServerModel {
        silent: true,
        ..GOOD_SERVER
    };
    let (r, elapsed, sim) = run(None, s, Transport::Udp);
    match r {
        Err(DiscoveryError::Timeout { requests, .. }) => assert_eq!(requests, 7),
        other => panic!("expected timeout, got {other:?}"),
    }
    assert_eq!(elapsed, Duration::from_millis(39_500));
    assert_eq!(sim.requests.len(), 7);
}

#[test]
fn tcp_runs_mapping_tests_only() {
    // Endpoint-independent NAT over TCP: mapping measured, filtering untestable (RFC 5780
    // §3.2), so the verdict stays conservative.
    let (r, _, sim) = run(nat(Kind::Ei, Kind::Ei), GOOD_SERVER, Transport::Tcp);
    let r = r.unwrap();
    assert_eq!(r.mapping, NatBehavior::EndpointIndependent);
    assert_eq!(r.filtering, NatBehavior::NotTested);
    assert_eq!(r.verdict.offer_setup(), OfferSetup::Active);
    assert!(r.reason.contains("TCP"), "{}", r.reason);
    assert!(
        sim.requests.iter().all(|(_, c)| c.is_none()),
        "no CHANGE-REQUEST over TCP"
    );

    let (r, _, _) = run(nat(Kind::Apd, Kind::Ei), GOOD_SERVER, Transport::Tcp);
    assert_eq!(r.unwrap().mapping, NatBehavior::AddressAndPortDependent);

    let (r, _, sim) = run(None, GOOD_SERVER, Transport::Tcp);
    let r = r.unwrap();
    assert_eq!(r.verdict, Verdict::NotBehindNat);
    assert_eq!(sim.requests.len(), 1);
}

#[test]
fn tcp_connect_failure_is_a_transport_error() {
    let t0 = Instant::now();
    let mut d = Discovery::new(
        sa(SERVER),
        sa(LOCAL),
        Transport::Tcp,
        StunConfig::default(),
        ids(),
        t0,
    );
    let tx = d.poll_transmit().unwrap();
    d.handle_transport_failure(tx.destination, "connection refused", t0);
    match d.poll_result() {
        Some(Err(DiscoveryError::Transport { why, .. })) => assert_eq!(why, "connection refused"),
        other => panic!("expected transport error, got {other:?}"),
    }
    assert!(d.poll_timeout().is_none());
}

#[test]
fn garbage_and_stray_responses_are_ignored() {
    let t0 = Instant::now();
    let mut d = Discovery::new(
        sa(SERVER),
        sa(LOCAL),
        Transport::Udp,
        StunConfig::default(),
        ids(),
        t0,
    );
    let tx = d.poll_transmit().unwrap();
    assert!(d
        .handle_input(sa(SERVER), b"garbage that is not STUN", t0)
        .is_err());
    let stray = success(&request(), sa("198.51.100.1:9"));
    d.handle_input(sa(SERVER), &stray.encode(true), t0).unwrap();
    assert!(d.poll_result().is_none());
    assert!(!d.is_finished());
    // The real response still completes test I.
    let req = Message::decode(&tx.contents).unwrap();
    // FINGERPRINT is on by default (RFC 5780 §5) and SOFTWARE is present.
    assert!(matches!(
        req.attributes.last(),
        Some(Attribute::Fingerprint(_))
    ));
    assert!(req.software().is_some());
    let mut ok = success(&req, sa(LOCAL));
    ok.attributes.push(Attribute::OtherAddress(sa(ALT)));
    d.handle_input(sa(SERVER), &ok.encode(false), t0).unwrap();
    // Now filtering test II is in flight.
    let tx2 = d.poll_transmit().unwrap();
    let req2 = Message::decode(&tx2.contents).unwrap();
    assert!(req2.attributes.contains(&Attribute::ChangeRequest {
        change_ip: true,
        change_port: true
    }));
    // A late duplicate response to test I (retransmission) must not complete test II.
    d.handle_input(sa(SERVER), &ok.encode(false), t0).unwrap();
    assert!(!d.is_finished());
}

// ---------------------------------------------------------------------------------------
// TCP mapping combined with UDP filtering
// ---------------------------------------------------------------------------------------

#[test]
fn tcp_mapping_with_udp_filtering_can_reach_actpass() {
    use msrp_proto::stun::combine_tcp_with_udp_filtering;
    // Endpoint-independent NAT: TCP alone cannot prove filtering, UDP supplies it.
    let (tcp, _, _) = run(nat(Kind::Ei, Kind::Ei), GOOD_SERVER, Transport::Tcp);
    let tcp = tcp.unwrap();
    assert_eq!(tcp.verdict.offer_setup(), OfferSetup::Active);
    let (udp, _, _) = run(nat(Kind::Ei, Kind::Ei), GOOD_SERVER, Transport::Udp);
    let c = combine_tcp_with_udp_filtering(tcp.clone(), udp);
    assert_eq!(c.verdict, Verdict::EndpointIndependent);
    assert_eq!(c.verdict.offer_setup(), OfferSetup::ActPass);
    assert_eq!(c.mapped, tcp.mapped, "a=path gets the TCP mapping");
    assert_eq!(c.transport, Transport::Tcp);
    assert_eq!(c.filtering, NatBehavior::EndpointIndependent);
    assert!(
        c.reason
            .contains("assuming the NAT filters TCP as it filters UDP"),
        "{}",
        c.reason
    );
    assert!(
        c.reason.contains("TCP: ") && c.reason.contains("UDP: "),
        "{}",
        c.reason
    );

    // Port-restricted filtering over UDP: active.
    let (udp, _, _) = run(nat(Kind::Ei, Kind::Apd), GOOD_SERVER, Transport::Udp);
    let c = combine_tcp_with_udp_filtering(tcp.clone(), udp);
    assert_eq!(
        c.verdict,
        Verdict::BehindNat {
            mapping: NatBehavior::EndpointIndependent,
            filtering: NatBehavior::AddressAndPortDependent
        }
    );

    // UDP blocked: filtering unknown, active, and the reason says why.
    let silent = ServerModel {
        silent: true,
        ..GOOD_SERVER
    };
    let (udp, _, _) = run(nat(Kind::Ei, Kind::Ei), silent, Transport::Udp);
    assert!(udp.is_err());
    let c = combine_tcp_with_udp_filtering(tcp.clone(), udp);
    assert_eq!(c.filtering, NatBehavior::NotTested);
    assert_eq!(c.verdict.offer_setup(), OfferSetup::Active);
    assert!(
        c.reason.contains("UDP: filtering tests failed"),
        "{}",
        c.reason
    );

    // No NAT over TCP but a UDP firewall: firewalled, active.
    let (tcp, _, _) = run(None, GOOD_SERVER, Transport::Tcp);
    let fw = Some(NatModel {
        mapping: Kind::Ei,
        filtering: Kind::Ad,
        translate: false,
    });
    let (udp, _, _) = run(fw, GOOD_SERVER, Transport::Udp);
    let c = combine_tcp_with_udp_filtering(tcp.unwrap(), udp);
    assert_eq!(
        c.verdict,
        Verdict::Firewalled {
            filtering: NatBehavior::AddressDependent
        }
    );
}

#[test]
fn alternate_server_attribute_is_ignored() {
    // RFC 5780 §5: "Clients SHOULD ignore an ALTERNATE-SERVER attribute in a response".
    // ALTERNATE-SERVER (0x8023) in a success response: no redirect, the response is used.
    let t0 = Instant::now();
    let mut d = Discovery::new(
        sa(SERVER),
        sa(LOCAL),
        Transport::Udp,
        StunConfig::default(),
        ids(),
        t0,
    );
    let tx = d.poll_transmit().unwrap();
    let req = Message::decode(&tx.contents).unwrap();
    let mut ok = success(&req, sa(LOCAL));
    let mut alt = vec![0u8, 1];
    alt.extend_from_slice(&3478u16.to_be_bytes());
    alt.extend_from_slice(&[198, 51, 100, 99]);
    ok.attributes.push(Attribute::Unknown {
        typ: 0x8023,
        value: alt,
    });
    d.handle_input(sa(SERVER), &ok.encode(true), t0).unwrap();
    let r = d
        .poll_result()
        .expect("finished: no OTHER-ADDRESS")
        .unwrap();
    assert_eq!(r.verdict, Verdict::NotBehindNat);
    // Nothing was sent to the alternate server.
    assert!(d.poll_transmit().is_none());
}

#[test]
fn server_changing_only_the_port_is_not_taken_for_open_filtering() {
    // Asked to change IP and port, the server answers from its primary IP with the other
    // port: a port-restricted NAT would still let it through only if it were address-
    // dependent, so it proves nothing about endpoint-independence.
    let s = ServerModel {
        port_change_only: true,
        ..GOOD_SERVER
    };
    let (r, _, _) = run(nat(Kind::Ei, Kind::Ad), s, Transport::Udp);
    let r = r.unwrap();
    assert_eq!(r.filtering, NatBehavior::NotTested, "{}", r.reason);
    assert_eq!(r.verdict.offer_setup(), OfferSetup::Active);
    assert!(
        r.reason.contains("not from another IP address"),
        "{}",
        r.reason
    );
}
