//! Scenario tests of the sans-IO relay on fake time: relays, clients and plain listeners
//! wired together by an in-memory network.

use super::*;
use crate::message::{parse_messages, ByteRange, Message};
use crate::relay::digest::{Challenge, Credentials, DigestClient};
use crate::relay::users::hash_password_lines;
use std::collections::HashSet;

const R1: &str = "relay1.example.com";
const R2: &str = "relay2.example.com";

fn counter_random(seed: u64) -> RandomSource {
    let mut n = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    Box::new(move |buf: &mut [u8]| {
        for b in buf.iter_mut() {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (n >> 33) as u8;
        }
    })
}

fn users(realm: &str) -> Users {
    let mut text = String::new();
    for (u, p) in [
        ("alice", "alice-pw"),
        ("bob", "bob-pw"),
        ("mallory", "mallory-pw"),
    ] {
        text.push_str(&hash_password_lines(u, realm, p).unwrap());
    }
    Users::parse(&text).unwrap()
}

fn relay(host: &str, tcp: u16, tls: u16, seed: u64, tune: impl FnOnce(&mut RelayConfig)) -> Relay {
    let mut cfg = RelayConfig::new(host, host);
    cfg.tcp_port = Some(tcp);
    cfg.tls_port = Some(tls);
    tune(&mut cfg);
    Relay::new(cfg, users(host), counter_random(seed)).unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum End {
    Client(usize),
    Relay(usize, ConnId),
}

#[derive(Default)]
struct Client {
    inbox: Vec<u8>,
    closed: bool,
    /// Stop reading (the relay's queue for it grows).
    paused: bool,
}

/// The in-memory network.
struct World {
    now: u64,
    relays: Vec<Relay>,
    ports: HashMap<u16, usize>,
    /// Plain listeners (UAs reached directly): port -> accepted clients.
    listeners: HashMap<u16, Vec<usize>>,
    links: HashMap<End, End>,
    clients: Vec<Client>,
    events: Vec<RelayEvent>,
}

impl World {
    fn new() -> World {
        World {
            now: 1_000_000,
            relays: Vec::new(),
            ports: HashMap::new(),
            listeners: HashMap::new(),
            links: HashMap::new(),
            clients: Vec::new(),
            events: Vec::new(),
        }
    }

    fn add_relay(&mut self, r: Relay) -> usize {
        let i = self.relays.len();
        for p in [r.config().tcp_port, r.config().tls_port]
            .into_iter()
            .flatten()
        {
            self.ports.insert(p, i);
        }
        self.relays.push(r);
        i
    }

    fn listen(&mut self, port: u16) {
        self.listeners.insert(port, Vec::new());
    }

    fn new_client(&mut self) -> usize {
        self.clients.push(Client::default());
        self.clients.len() - 1
    }

    fn connect(&mut self, relay: usize, tls: bool) -> usize {
        self.connect_from(relay, tls, [127, 0, 0, 1])
    }

    fn connect_from(&mut self, relay: usize, tls: bool, ip: [u8; 4]) -> usize {
        let c = self.new_client();
        let peer = SocketAddr::from((ip, 20_000 + c as u16));
        let id = self.relays[relay].accept(peer, tls, self.now).unwrap();
        self.links.insert(End::Client(c), End::Relay(relay, id));
        self.links.insert(End::Relay(relay, id), End::Client(c));
        self.drive();
        c
    }

    fn send(&mut self, c: usize, bytes: &[u8]) {
        match self.links.get(&End::Client(c)).copied() {
            Some(End::Relay(r, id)) => {
                let now = self.now;
                self.relays[r].receive(id, bytes, now);
            }
            _ => panic!("client {c} is not connected"),
        }
        self.drive();
    }

    fn send_msg(&mut self, c: usize, m: &Message) {
        self.send(c, &m.encode().unwrap());
    }

    fn close_client(&mut self, c: usize) {
        if let Some(End::Relay(r, id)) = self.links.remove(&End::Client(c)) {
            self.links.remove(&End::Relay(r, id));
            let now = self.now;
            self.relays[r].closed(id, "peer closed", now);
        }
        self.drive();
    }

    fn advance_time(&mut self, ms: u64) {
        self.now += ms;
        let now = self.now;
        for r in &mut self.relays {
            if r.poll_timeout().is_some_and(|t| t <= now) {
                r.handle_timeout(now);
            }
        }
        self.drive();
    }

    fn deliver(&mut self, to: End, bytes: &[u8]) {
        match to {
            End::Client(c) => self.clients[c].inbox.extend_from_slice(bytes),
            End::Relay(r, id) => {
                let now = self.now;
                self.relays[r].receive(id, bytes, now);
            }
        }
    }

    fn drive(&mut self) {
        for _round in 0..10_000 {
            let mut progress = false;
            for i in 0..self.relays.len() {
                while let Some(out) = self.relays[i].poll_output() {
                    progress = true;
                    self.handle(i, out);
                }
                // Deliver everything queued whose reader reads.
                let ids: Vec<ConnId> = self
                    .links
                    .keys()
                    .filter_map(|e| match e {
                        End::Relay(r, id) if *r == i => Some(*id),
                        _ => None,
                    })
                    .collect();
                for id in ids {
                    let to = self.links[&End::Relay(i, id)];
                    if let End::Client(c) = to {
                        if self.clients[c].paused {
                            continue;
                        }
                    }
                    let bytes = self.relays[i].transmit(id).to_vec();
                    if !bytes.is_empty() {
                        progress = true;
                        let now = self.now;
                        self.relays[i].advance(id, bytes.len(), now);
                        self.deliver(to, &bytes);
                    }
                }
            }
            if !progress {
                return;
            }
        }
        panic!("the network did not settle");
    }

    fn handle(&mut self, i: usize, out: Output) {
        let now = self.now;
        match out {
            Output::Transmit(_) => {}
            Output::Event(e) => self.events.push(e),
            Output::Close(id) => {
                if let Some(other) = self.links.remove(&End::Relay(i, id)) {
                    self.links.remove(&other);
                    match other {
                        End::Client(c) => self.clients[c].closed = true,
                        End::Relay(j, id2) => self.relays[j].closed(id2, "peer closed", now),
                    }
                }
            }
            Output::Connect { conn, port, .. } => {
                let addr = SocketAddr::from(([127, 0, 0, 9], port));
                if let Some(&j) = self.ports.get(&port) {
                    let peer =
                        SocketAddr::from(([127, 0, 0, 50 + i as u8], 30_000 + conn.0 as u16));
                    let tls = self.relays[j].config().tls_port == Some(port);
                    let id2 = self.relays[j].accept(peer, tls, now).unwrap();
                    self.links.insert(End::Relay(i, conn), End::Relay(j, id2));
                    self.links.insert(End::Relay(j, id2), End::Relay(i, conn));
                    self.relays[i].connected(conn, addr, now);
                } else if self.listeners.contains_key(&port) {
                    let c = self.new_client();
                    self.listeners.get_mut(&port).unwrap().push(c);
                    self.links.insert(End::Relay(i, conn), End::Client(c));
                    self.links.insert(End::Client(c), End::Relay(i, conn));
                    self.relays[i].connected(conn, addr, now);
                } else {
                    self.relays[i].connect_failed(conn, "connection refused", now);
                }
            }
        }
    }

    /// Messages received by a client since last time (the inbox must end on a message).
    fn take(&mut self, c: usize) -> Vec<Message> {
        let inbox = std::mem::take(&mut self.clients[c].inbox);
        parse_messages(&inbox, Limits::default()).expect("the relay sends valid MSRP")
    }

    fn take_one(&mut self, c: usize) -> Message {
        let mut v = self.take(c);
        assert_eq!(v.len(), 1, "expected one message, got {v:#?}");
        v.remove(0)
    }
}

fn uri(s: &str) -> MsrpUri {
    MsrpUri::parse(s).unwrap()
}

fn paths(h: &MessageHead) -> (String, String) {
    (
        h.get("To-Path").unwrap().to_string(),
        h.get("From-Path").unwrap().to_string(),
    )
}

fn auth_msg(tid: &str, to: &[&str], from: &str, extra: &[(&str, String)]) -> Message {
    let mut h = MessageHead::request(tid, Method::Auth).unwrap();
    h.push("To-Path", &to.join(" ")).unwrap();
    h.push("From-Path", from).unwrap();
    for (n, v) in extra {
        h.push(n, v).unwrap();
    }
    Message {
        head: h,
        body: None,
        continuation: Continuation::Complete,
    }
}

fn send_msg(tid: &str, to: &[String], from: &str, body: &[u8], fr: Option<&str>) -> Message {
    let mut h = MessageHead::request(tid, Method::Send).unwrap();
    h.push("To-Path", &to.join(" ")).unwrap();
    h.push("From-Path", from).unwrap();
    h.push_message_id(&format!("m-{tid}")).unwrap();
    if let Some(fr) = fr {
        h.push("Failure-Report", fr).unwrap();
    }
    let n = body.len() as u64;
    h.push_byte_range(ByteRange::new(1, Some(n), Some(n)).unwrap())
        .unwrap();
    h.push_content_type("text/plain").unwrap();
    Message {
        head: h,
        body: Some(body.to_vec()),
        continuation: Continuation::Complete,
    }
}

fn response(req: &Message, code: u16) -> Message {
    let mut h = MessageHead::response(req.head.transaction_id(), StatusCode(code), None).unwrap();
    let from = req.head.get("From-Path").unwrap();
    h.push("To-Path", from.split(' ').next().unwrap()).unwrap();
    h.push("From-Path", req.head.get("To-Path").unwrap())
        .unwrap();
    Message {
        head: h,
        body: None,
        continuation: Continuation::Complete,
    }
}

/// Full AUTH dance through `to` (the first URI is on the client's relay); returns the
/// Use-Path and the 200.
fn authenticate(
    w: &mut World,
    c: usize,
    to: &[&str],
    me: &str,
    user: &str,
    pw: &str,
    expires: Option<u32>,
) -> Message {
    let extra: Vec<(&str, String)> = expires
        .map(|e| ("Expires", e.to_string()))
        .into_iter()
        .collect();
    w.send_msg(c, &auth_msg("auth0001", to, me, &extra));
    let ch = w.take_one(c);
    assert_eq!(
        ch.head.status_code(),
        Some(StatusCode::UNAUTHORIZED),
        "{ch:?}"
    );
    let challenge = Challenge::parse(ch.head.www_authenticate().next().unwrap()).unwrap();
    let mut dc = DigestClient::new(Credentials::new(user, pw).unwrap());
    dc.on_challenge(challenge).unwrap();
    let a = dc.authorize(to.last().unwrap(), "0a4f113b").unwrap();
    let mut extra = extra.clone();
    extra.push(("Authorization", a.to_string()));
    w.send_msg(c, &auth_msg("auth0002", to, me, &extra));
    w.take_one(c)
}

fn r1_uri() -> String {
    format!("msrp://{R1}:7001;tcp")
}

fn r2_uri() -> String {
    format!("msrps://{R2}:7102;tcp")
}

const ALICE: &str = "msrp://alice.example.com:9001/a1;tcp";
const BOB: &str = "msrp://bob.example.com:9002/b1;tcp";

/// One relay, Alice and Bob both authenticated to it.
fn one_relay() -> (World, usize, usize, String, String) {
    let mut w = World::new();
    w.add_relay(relay(R1, 7001, 7101, 1, |_| {}));
    let a = w.connect(0, false);
    let b = w.connect(0, false);
    let ra = authenticate(&mut w, a, &[&r1_uri()], ALICE, "alice", "alice-pw", None);
    let rb = authenticate(&mut w, b, &[&r1_uri()], BOB, "bob", "bob-pw", None);
    let ua = ra.head.get("Use-Path").unwrap().to_string();
    let ub = rb.head.get("Use-Path").unwrap().to_string();
    (w, a, b, ua, ub)
}

#[test]
fn auth_challenge_then_use_path_bound_to_this_relay() {
    let mut w = World::new();
    w.add_relay(relay(R1, 7001, 7101, 1, |_| {}));
    let a = w.connect(0, true);
    w.send_msg(
        a,
        &auth_msg("t0001", &[&format!("msrps://{R1}:7101;tcp")], ALICE, &[]),
    );
    let ch = w.take_one(a);
    // RFC 4976 §5.1: AUTH without Authorization: 401 with WWW-Authenticate.
    assert_eq!(ch.head.status_code(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(ch.head.transaction_id(), "t0001");
    assert_eq!(
        paths(&ch.head),
        (ALICE.into(), format!("msrps://{R1}:7101;tcp"))
    );
    let c = Challenge::parse(ch.head.www_authenticate().next().unwrap()).unwrap();
    assert_eq!(c.realm, R1);
    assert!(c.qop.contains(&"auth".to_string()));
    assert!(!c.stale);

    let ok = authenticate(
        &mut w,
        a,
        &[&format!("msrps://{R1}:7101;tcp")],
        ALICE,
        "alice",
        "alice-pw",
        None,
    );
    assert_eq!(ok.head.status_code(), Some(StatusCode::OK), "{ok:?}");
    assert_eq!(ok.head.transaction_id(), "auth0002");
    assert_eq!(ok.head.to_path(), vec![uri(ALICE)]);
    let use_path = ok.head.use_path().unwrap();
    assert_eq!(use_path.len(), 1);
    let u = &use_path[0];
    // RFC 4976 §6.3: our URI (TLS connection: msrps, TLS port), at least 64 random bits.
    assert_eq!(u.scheme, Scheme::Msrps);
    assert_eq!(u.host, Host::Name(R1.into()));
    assert_eq!(u.port, Some(7101));
    assert!(u.session_id().unwrap().len() >= 16);
    assert_eq!(ok.head.expires(), Some(1800));
    assert!(ok.head.authentication_info().unwrap().contains("rspauth="));
    assert_eq!(w.relays[0].session_count(), 1);

    // An AUTH for another client URI gets a fresh, distinct URI; one for the same client
    // URI renews the URI it holds (a refresh:
    // `a_refresh_auth_renews_the_same_use_path_past_the_first_expiry`).
    let ok2 = authenticate(
        &mut w,
        a,
        &[&format!("msrps://{R1}:7101;tcp")],
        "msrp://alice.example.com:9001/a2;tcp",
        "alice",
        "alice-pw",
        None,
    );
    assert_ne!(ok2.head.use_path(), ok.head.use_path());
    let ok3 = authenticate(
        &mut w,
        a,
        &[&format!("msrps://{R1}:7101;tcp")],
        ALICE,
        "alice",
        "alice-pw",
        None,
    );
    assert_eq!(ok3.head.use_path(), ok.head.use_path());
    assert_eq!(w.relays[0].session_count(), 2);
    assert!(w
        .events
        .iter()
        .any(|e| matches!(e, RelayEvent::Authenticated { user, .. } if user == "alice")));
}

#[test]
fn plain_tcp_connection_gets_an_msrp_uri() {
    let mut w = World::new();
    w.add_relay(relay(R1, 7001, 7101, 1, |_| {}));
    let a = w.connect(0, false);
    let ok = authenticate(&mut w, a, &[&r1_uri()], ALICE, "alice", "alice-pw", None);
    let u = &ok.head.use_path().unwrap()[0];
    assert_eq!((u.scheme, u.port), (Scheme::Msrp, Some(7001)));
}

#[test]
fn wrong_password_and_unknown_user_get_403_and_repeated_failures_close() {
    let mut w = World::new();
    w.add_relay(relay(R1, 7001, 7101, 1, |c| {
        c.limits.max_failed_requests = 2
    }));
    let a = w.connect(0, false);
    let r = authenticate(&mut w, a, &[&r1_uri()], ALICE, "alice", "wrong", None);
    // RFC 4976 §6.3: a client that is not authorized gets 403.
    assert_eq!(r.head.status_code(), Some(StatusCode::FORBIDDEN));
    assert!(r.head.use_path().is_none());
    let r = authenticate(&mut w, a, &[&r1_uri()], ALICE, "nobody", "x", None);
    assert_eq!(r.head.status_code(), Some(StatusCode::FORBIDDEN));
    assert!(!w.clients[a].closed);
    assert_eq!(w.relays[0].session_count(), 0);
    // The third failure exceeds the limit of 2: the connection is closed (RFC 4976 §6.3).
    let r = authenticate(&mut w, a, &[&r1_uri()], ALICE, "alice", "wrong", None);
    assert_eq!(r.head.status_code(), Some(StatusCode::FORBIDDEN));
    assert!(w.clients[a].closed);
    assert_eq!(w.relays[0].connection_count(), 0);
}

#[test]
fn auth_failures_are_limited_per_address_across_connections() {
    let mut w = World::new();
    w.add_relay(relay(R1, 7001, 7101, 1, |c| {
        c.limits.max_failed_requests = 1;
        c.limits.max_auth_failures_per_address = 3;
        c.limits.auth_failure_window_ms = 10_000;
    }));
    // Two wrong guesses close the first connection (per-connection limit 1).
    let a = w.connect(0, false);
    for _ in 0..2 {
        let r = authenticate(&mut w, a, &[&r1_uri()], ALICE, "alice", "guess", None);
        assert_eq!(r.head.status_code(), Some(StatusCode::FORBIDDEN));
    }
    assert!(w.clients[a].closed);
    // Reconnecting buys one more guess: the third failure from 127.0.0.1.
    let b = w.connect(0, false);
    let r = authenticate(&mut w, b, &[&r1_uri()], ALICE, "alice", "guess", None);
    assert_eq!(r.head.status_code(), Some(StatusCode::FORBIDDEN));
    // Now this address gets 403 without a challenge, so no credentials are checked
    // (the per-connection limit then closes b).
    w.send_msg(b, &auth_msg("auth0003", &[&r1_uri()], ALICE, &[]));
    let r = w.take_one(b);
    assert_eq!(r.head.status_code(), Some(StatusCode::FORBIDDEN), "{r:?}");
    assert!(w.clients[b].closed);
    assert!(w.events.iter().any(|e| matches!(e,
        RelayEvent::AuthFailed { reason, .. } if reason.contains("failed AUTHs from 127.0.0.1"))));
    assert_eq!(w.relays[0].session_count(), 0);
    // Another address is not affected.
    let c = w.connect_from(0, false, [192, 0, 2, 7]);
    let r = authenticate(&mut w, c, &[&r1_uri()], ALICE, "alice", "alice-pw", None);
    assert_eq!(r.head.status_code(), Some(StatusCode::OK));
    // After the window, the address may try again.
    w.advance_time(10_001);
    let d = w.connect(0, false);
    let r = authenticate(&mut w, d, &[&r1_uri()], ALICE, "alice", "alice-pw", None);
    assert_eq!(r.head.status_code(), Some(StatusCode::OK), "{r:?}");
}

#[test]
fn expires_out_of_bounds_is_423_with_min_expires_or_max_expires() {
    let mut w = World::new();
    w.add_relay(relay(R1, 7001, 7101, 1, |c| {
        c.min_expires = 120;
        c.max_expires = 600;
    }));
    let a = w.connect(0, false);
    let r = authenticate(
        &mut w,
        a,
        &[&r1_uri()],
        ALICE,
        "alice",
        "alice-pw",
        Some(30),
    );
    assert_eq!(
        r.head.status_code(),
        Some(StatusCode::INTERVAL_OUT_OF_BOUNDS)
    );
    assert_eq!(r.head.min_expires(), Some(120));
    assert!(r.head.use_path().is_none());
    let r = authenticate(
        &mut w,
        a,
        &[&r1_uri()],
        ALICE,
        "alice",
        "alice-pw",
        Some(86_400),
    );
    // RFC 4976 §6.3: too long is an error with Max-Expires, not a shorter grant.
    assert_eq!(
        r.head.status_code(),
        Some(StatusCode::INTERVAL_OUT_OF_BOUNDS)
    );
    assert_eq!(r.head.max_expires(), Some(600));
    assert_eq!(r.head.min_expires(), None);
    assert!(r.head.use_path().is_none());
    assert_eq!(w.relays[0].session_count(), 0);
    let r = authenticate(
        &mut w,
        a,
        &[&r1_uri()],
        ALICE,
        "alice",
        "alice-pw",
        Some(600),
    );
    assert_eq!(r.head.status_code(), Some(StatusCode::OK));
    assert_eq!(r.head.expires(), Some(600));
    let r = authenticate(
        &mut w,
        a,
        &[&r1_uri()],
        ALICE,
        "alice",
        "alice-pw",
        Some(300),
    );
    assert_eq!(r.head.expires(), Some(300));
}

#[test]
fn stale_nonce_gets_401_stale_and_a_forged_nonce_a_new_challenge() {
    let mut w = World::new();
    w.add_relay(relay(R1, 7001, 7101, 1, |_| {}));
    let a = w.connect(0, false);
    w.send_msg(a, &auth_msg("t0001", &[&r1_uri()], ALICE, &[]));
    let ch = w.take_one(a);
    let challenge = Challenge::parse(ch.head.www_authenticate().next().unwrap()).unwrap();
    let mut dc = DigestClient::new(Credentials::new("alice", "alice-pw").unwrap());
    dc.on_challenge(challenge.clone()).unwrap();
    let a_auth = dc.authorize(&r1_uri(), "cafe0001").unwrap();
    // The nonce lives 300 s; the first connection's 30 s probation ends long before, so
    // present the old nonce on a new connection (nonces are not tied to connections).
    w.advance_time(301_000);
    assert!(w.clients[a].closed);
    let a = w.connect(0, false);
    w.send_msg(
        a,
        &auth_msg(
            "t0002",
            &[&r1_uri()],
            ALICE,
            &[("Authorization", a_auth.to_string())],
        ),
    );
    let r = w.take_one(a);
    assert_eq!(r.head.status_code(), Some(StatusCode::UNAUTHORIZED));
    let c2 = Challenge::parse(r.head.www_authenticate().next().unwrap()).unwrap();
    assert!(
        c2.stale,
        "RFC 7616 §3.3: right credentials, old nonce: stale=true"
    );

    let mut forged = challenge;
    forged.nonce = "00".repeat(40);
    let mut dc = DigestClient::new(Credentials::new("alice", "alice-pw").unwrap());
    dc.on_challenge(forged).unwrap();
    let auth = dc.authorize(&r1_uri(), "cafe0002").unwrap();
    w.send_msg(
        a,
        &auth_msg(
            "t0003",
            &[&r1_uri()],
            ALICE,
            &[("Authorization", auth.to_string())],
        ),
    );
    let r = w.take_one(a);
    assert_eq!(r.head.status_code(), Some(StatusCode::UNAUTHORIZED));
    assert!(
        !Challenge::parse(r.head.www_authenticate().next().unwrap())
            .unwrap()
            .stale
    );
}

#[test]
fn send_between_two_clients_of_one_relay_rewrites_paths_and_is_hop_by_hop() {
    let (mut w, a, b, ua, ub) = one_relay();
    let m = send_msg(
        "s0001",
        &[ua.clone(), ub.clone(), BOB.into()],
        ALICE,
        b"Hi Bob",
        None,
    );
    w.send_msg(a, &m);
    // RFC 4976 §6.4.1: the previous hop gets a final response at once, To-Path only itself.
    let ok = w.take_one(a);
    assert_eq!(ok.head.status_code(), Some(StatusCode::OK));
    assert_eq!(ok.head.transaction_id(), "s0001");
    assert_eq!(paths(&ok.head), (ALICE.into(), ua.clone()));
    // Bob sees both our URIs moved to the front of From-Path (RFC 4976 §6.4.1, §3).
    let got = w.take_one(b);
    assert_eq!(got.head.method(), Some(&Method::Send));
    assert_eq!(paths(&got.head), (BOB.into(), format!("{ub} {ua} {ALICE}")));
    assert_eq!(got.body.as_deref(), Some(&b"Hi Bob"[..]));
    assert_eq!(got.head.message_id(), Some("m-s0001"));
    assert_eq!(got.head.byte_range().unwrap().to_string(), "1-6/6");
    // Bob's 200 ends the hop; nothing reaches Alice.
    w.send_msg(b, &response(&got, 200));
    assert!(w.take(a).is_empty());
    // Bob's success REPORT travels back the reverse path (RFC 4976 §3 example).
    let mut h = MessageHead::request("r0001", Method::Report).unwrap();
    h.push("To-Path", &format!("{ub} {ua} {ALICE}")).unwrap();
    h.push("From-Path", BOB).unwrap();
    h.push_message_id("m-s0001").unwrap();
    h.push("Byte-Range", "1-6/6").unwrap();
    h.push_status(StatusCode::OK, Some("OK")).unwrap();
    w.send_msg(
        b,
        &Message {
            head: h,
            body: None,
            continuation: Continuation::Complete,
        },
    );
    let rep = w.take_one(a);
    assert_eq!(rep.head.method(), Some(&Method::Report));
    assert_eq!(paths(&rep.head), (ALICE.into(), format!("{ua} {ub} {BOB}")));
    assert_eq!(rep.head.status().unwrap().code, StatusCode::OK);
    // REPORTs are never answered.
    assert!(w.take(b).is_empty());
}

#[test]
fn unauthenticated_client_cannot_send_through_the_relay() {
    let (mut w, _a, b, _ua, _ub) = one_relay();
    let m = w.connect(0, false);
    // No Use-Path session at all: 403.
    let msg = send_msg(
        "x0001",
        &[r1_uri(), BOB.into()],
        "msrp://m.example.com:1/m;tcp",
        b"spam",
        None,
    );
    w.send_msg(m, &msg);
    let r = w.take_one(m);
    assert_eq!(r.head.status_code(), Some(StatusCode::FORBIDDEN));
    // A guessed session id: 481 (RFC 4976 §6.3: a URI that is not valid).
    let msg = send_msg(
        "x0002",
        &[
            format!("msrp://{R1}:7001/0123456789abcdef01234567;tcp"),
            BOB.into(),
        ],
        "msrp://m.example.com:1/m;tcp",
        b"spam",
        None,
    );
    w.send_msg(m, &msg);
    let r = w.take_one(m);
    assert_eq!(
        r.head.status_code(),
        Some(StatusCode::SESSION_DOES_NOT_EXIST)
    );
    assert!(w.take(b).is_empty());
    // A To-Path that does not name this relay: the connection is dropped (RFC 4976 §6.2).
    let msg = send_msg(
        "x0003",
        &[BOB.into()],
        "msrp://m.example.com:1/m;tcp",
        b"spam",
        None,
    );
    w.send_msg(m, &msg);
    assert!(w.take(m).is_empty());
    assert!(w.clients[m].closed);
}

#[test]
fn another_clients_use_path_is_403_from_a_foreign_connection() {
    let (mut w, a, b, ua, _ub) = one_relay();
    let m = w.connect(0, false);
    let rm = authenticate(
        &mut w,
        m,
        &[&r1_uri()],
        "msrp://m.example.com:1/m;tcp",
        "mallory",
        "mallory-pw",
        None,
    );
    assert_eq!(rm.head.status_code(), Some(StatusCode::OK));
    // Mallory uses Alice's URI to reach Bob: not toward Alice, so 403 (RFC 4976 §6.4).
    let msg = send_msg(
        "x0001",
        &[ua.clone(), BOB.into()],
        "msrp://m.example.com:1/m;tcp",
        b"hijack",
        None,
    );
    w.send_msg(m, &msg);
    assert_eq!(
        w.take_one(m).head.status_code(),
        Some(StatusCode::FORBIDDEN)
    );
    assert!(w.take(a).is_empty() && w.take(b).is_empty());
}

#[test]
fn a_peer_without_relay_reaches_a_client_through_its_use_path() {
    let (mut w, a, _b, ua, _ub) = one_relay();
    let carol = "msrp://carol.example.com:9003/c1;tcp";
    let c = w.connect(0, false);
    w.send_msg(
        c,
        &send_msg("c0001", &[ua.clone(), ALICE.into()], carol, b"hello", None),
    );
    assert_eq!(w.take_one(c).head.status_code(), Some(StatusCode::OK));
    let got = w.take_one(a);
    assert_eq!(paths(&got.head), (ALICE.into(), format!("{ua} {carol}")));
}

#[test]
fn repeated_paths_reuse_the_route_only_while_its_bindings_live() {
    // The relay keeps the routing decision of a connection's last request (same To-Path and
    // first From-Path URI); it must hold only while the Use-Path bindings it went through are
    // live (RFC 4976 §6.3: a URI dies with its connection or at its expiry).
    let mut w = World::new();
    w.add_relay(relay(R1, 7001, 7101, 1, |_| {}));
    let a = w.connect(0, false);
    let b = w.connect(0, false);
    let ra = authenticate(&mut w, a, &[&r1_uri()], ALICE, "alice", "alice-pw", None);
    // Bob's URI lives 60 s, Alice's 1800 s.
    let rb = authenticate(&mut w, b, &[&r1_uri()], BOB, "bob", "bob-pw", Some(60));
    let ua = ra.head.get("Use-Path").unwrap().to_string();
    let ub = rb.head.get("Use-Path").unwrap().to_string();
    let to = [ua.clone(), ub.clone(), BOB.to_string()];
    for (tid, body) in [("s0001", &b"one"[..]), ("s0002", &b"two"[..])] {
        w.send_msg(a, &send_msg(tid, &to, ALICE, body, None));
        assert_eq!(w.take_one(a).head.status_code(), Some(StatusCode::OK));
        let got = w.take_one(b);
        // The same rewrite the second time (RFC 4976 §6.4.1: our URIs to the front of
        // From-Path, in reverse order).
        assert_eq!(paths(&got.head), (BOB.into(), format!("{ub} {ua} {ALICE}")));
        assert_eq!(got.body.as_deref(), Some(body));
        w.send_msg(b, &response(&got, 200));
    }
    // Bob's URI expires: the same paths now get 481, nothing reaches Bob.
    w.advance_time(61_000);
    w.send_msg(a, &send_msg("s0003", &to, ALICE, b"three", None));
    assert_eq!(
        w.take_one(a).head.status_code(),
        Some(StatusCode::SESSION_DOES_NOT_EXIST)
    );
    assert!(w.take(b).is_empty());
    // Bob authenticates again on a new connection: a new URI, a new route; the old
    // connection's route is not used for it.
    let b2 = w.connect(0, false);
    let rb2 = authenticate(&mut w, b2, &[&r1_uri()], BOB, "bob", "bob-pw", None);
    let ub2 = rb2.head.get("Use-Path").unwrap().to_string();
    assert_ne!(ub2, ub);
    let to2 = [ua.clone(), ub2.clone(), BOB.to_string()];
    w.send_msg(a, &send_msg("s0004", &to2, ALICE, b"four", None));
    assert_eq!(w.take_one(a).head.status_code(), Some(StatusCode::OK));
    let got = w.take_one(b2);
    assert_eq!(
        paths(&got.head),
        (BOB.into(), format!("{ub2} {ua} {ALICE}"))
    );
    w.send_msg(b2, &response(&got, 200));
    // Bob's new connection closes: the route cached for it dies with the binding.
    w.close_client(b2);
    w.send_msg(a, &send_msg("s0005", &to2, ALICE, b"five", None));
    assert_eq!(
        w.take_one(a).head.status_code(),
        Some(StatusCode::SESSION_DOES_NOT_EXIST)
    );
    assert!(w.take(b).is_empty());
}

#[test]
fn unknown_session_and_expired_or_closed_bindings_get_481() {
    let (mut w, a, b, ua, ub) = one_relay();
    let carol = "msrp://carol.example.com:9003/c1;tcp";
    let c = w.connect(0, false);
    // Bob's connection closes: his URI dies with it (RFC 4976 §6.3).
    w.close_client(b);
    w.send_msg(
        a,
        &send_msg(
            "s0001",
            &[ua.clone(), ub.clone(), BOB.into()],
            ALICE,
            b"x",
            None,
        ),
    );
    assert_eq!(
        w.take_one(a).head.status_code(),
        Some(StatusCode::SESSION_DOES_NOT_EXIST)
    );
    w.send_msg(
        c,
        &send_msg("s0002", &[ub.clone(), BOB.into()], carol, b"x", None),
    );
    assert_eq!(
        w.take_one(c).head.status_code(),
        Some(StatusCode::SESSION_DOES_NOT_EXIST)
    );
    // Alice's URI expires after 1800 s.
    w.advance_time(1_800_000);
    assert_eq!(w.relays[0].session_count(), 0);
    let c2 = w.connect(0, false);
    w.send_msg(
        c2,
        &send_msg("s0003", &[ua, ALICE.into()], carol, b"x", None),
    );
    let r = w.take(c2);
    assert!(
        w.clients[c].closed,
        "probation closed the idle unauthenticated connection"
    );
    assert_eq!(
        r[0].head.status_code(),
        Some(StatusCode::SESSION_DOES_NOT_EXIST)
    );
}

#[test]
fn next_hop_direct_to_a_ua_times_out_with_report_408() {
    let mut w = World::new();
    w.add_relay(relay(R1, 7001, 7101, 1, |_| {}));
    w.listen(9500);
    let a = w.connect(0, false);
    let ua = authenticate(&mut w, a, &[&r1_uri()], ALICE, "alice", "alice-pw", None)
        .head
        .get("Use-Path")
        .unwrap()
        .to_string();
    let dave = "msrp://127.0.0.1:9500/d1;tcp";
    w.send_msg(
        a,
        &send_msg(
            "s0001",
            &[ua.clone(), dave.into()],
            ALICE,
            b"hello dave",
            None,
        ),
    );
    assert_eq!(w.take_one(a).head.status_code(), Some(StatusCode::OK));
    let d = w.listeners[&9500][0];
    let got = w.take_one(d);
    assert_eq!(paths(&got.head), (dave.into(), format!("{ua} {ALICE}")));
    // Dave never answers: after 30 s Alice gets REPORT 408 (RFC 4976 §6.4.1).
    w.advance_time(29_000);
    assert!(w.take(a).is_empty());
    w.advance_time(1_001);
    let rep = w.take_one(a);
    assert_eq!(rep.head.method(), Some(&Method::Report));
    assert_eq!(rep.head.status().unwrap().code, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(paths(&rep.head), (ALICE.into(), ua.clone()));
    assert_eq!(rep.head.message_id(), Some("m-s0001"));
    assert_eq!(rep.head.get("Byte-Range"), Some("1-10/10"));
    // With Failure-Report: no there is no timer and no response.
    w.send_msg(
        a,
        &send_msg(
            "s0002",
            &[ua.clone(), dave.into()],
            ALICE,
            b"again",
            Some("no"),
        ),
    );
    assert!(w.take(a).is_empty());
    assert_eq!(w.take(d).len(), 1);
    w.advance_time(31_000);
    assert!(w.take(a).is_empty());
}

#[test]
fn next_hop_error_response_becomes_a_report_and_unreachable_next_hop_too() {
    let mut w = World::new();
    w.add_relay(relay(R1, 7001, 7101, 1, |_| {}));
    w.listen(9500);
    let a = w.connect(0, false);
    let ua = authenticate(&mut w, a, &[&r1_uri()], ALICE, "alice", "alice-pw", None)
        .head
        .get("Use-Path")
        .unwrap()
        .to_string();
    let dave = "msrp://127.0.0.1:9500/d1;tcp";
    w.send_msg(
        a,
        &send_msg("s0001", &[ua.clone(), dave.into()], ALICE, b"hello", None),
    );
    assert_eq!(w.take_one(a).head.status_code(), Some(StatusCode::OK));
    let d = w.listeners[&9500][0];
    let got = w.take_one(d);
    w.send(d, &response(&got, 481).encode().unwrap());
    // RFC 4976 §6.4.3: a non-200 to a SEND with Failure-Report other than no: REPORT.
    let rep = w.take_one(a);
    assert_eq!(
        rep.head.status().unwrap().code,
        StatusCode::SESSION_DOES_NOT_EXIST
    );
    // Nobody listens on 9600.
    w.send_msg(
        a,
        &send_msg(
            "s0002",
            &[ua.clone(), "msrp://127.0.0.1:9600/x;tcp".into()],
            ALICE,
            b"x",
            None,
        ),
    );
    let msgs = w.take(a);
    assert!(
        msgs.iter().any(|m| m
            .head
            .status()
            .is_some_and(|s| s.code == StatusCode::REQUEST_TIMEOUT)),
        "{msgs:?}"
    );
}

/// Alice -> R1 -> R2 -> Bob with Alice authenticated at R1 and Bob at R2; then Alice
/// authenticates at R2 through R1 (RFC 4976 §5.1).
#[test]
fn chain_of_two_relays() {
    let mut w = World::new();
    w.add_relay(relay(R1, 7001, 7101, 1, |_| {}));
    w.add_relay(relay(R2, 7002, 7102, 2, |_| {}));
    let a = w.connect(0, false);
    let b = w.connect(1, true);
    let ua = authenticate(&mut w, a, &[&r1_uri()], ALICE, "alice", "alice-pw", None)
        .head
        .get("Use-Path")
        .unwrap()
        .to_string();
    let ub = authenticate(&mut w, b, &[&r2_uri()], BOB, "bob", "bob-pw", None)
        .head
        .get("Use-Path")
        .unwrap()
        .to_string();
    assert!(ub.starts_with(&format!("msrps://{R2}:7102/")));
    w.send_msg(
        a,
        &send_msg(
            "s0001",
            &[ua.clone(), ub.clone(), BOB.into()],
            ALICE,
            b"Hi Bob",
            None,
        ),
    );
    assert_eq!(w.take_one(a).head.status_code(), Some(StatusCode::OK));
    let got = w.take_one(b);
    // RFC 4976 §3: the receiver sees every relay in From-Path, nearest first.
    assert_eq!(paths(&got.head), (BOB.into(), format!("{ub} {ua} {ALICE}")));
    assert_eq!(got.body.as_deref(), Some(&b"Hi Bob"[..]));
    w.send_msg(b, &response(&got, 200));
    // R2's hop-by-hop 200 reached R1 and ended there.
    assert!(w.take(a).is_empty());
    // Bob -> Alice the other way.
    w.send_msg(
        b,
        &send_msg(
            "s0002",
            &[ub.clone(), ua.clone(), ALICE.into()],
            BOB,
            b"Hi Alice",
            None,
        ),
    );
    assert_eq!(w.take_one(b).head.status_code(), Some(StatusCode::OK));
    let got = w.take_one(a);
    assert_eq!(paths(&got.head), (ALICE.into(), format!("{ua} {ub} {BOB}")));

    // AUTH to R2 through R1: challenge and 200 travel back with paths rewritten.
    let to = [ua.as_str(), "msrps://relay2.example.com:7102;tcp"];
    w.send_msg(a, &auth_msg("x0001", &to, ALICE, &[]));
    let ch = w.take_one(a);
    assert_eq!(ch.head.status_code(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(ch.head.transaction_id(), "x0001");
    assert_eq!(paths(&ch.head), (ALICE.into(), format!("{ua} {}", to[1])));
    let r = authenticate(&mut w, a, &to, ALICE, "alice", "alice-pw", None);
    assert_eq!(r.head.status_code(), Some(StatusCode::OK), "{r:?}");
    let up = r.head.use_path().unwrap();
    // RFC 4976 §5.1: the outer relay's Use-Path lists the inner relay's URI, then its own.
    assert_eq!(up.len(), 2);
    assert_eq!(up[0], uri(&ua));
    assert_eq!(up[1].host, Host::Name(R2.into()));
    assert_eq!(w.relays[1].session_count(), 2);
}

#[test]
fn chunked_body_streams_through_with_backpressure() {
    let (mut w, a, b, ua, ub) = {
        let mut w = World::new();
        w.add_relay(relay(R1, 7001, 7101, 1, |c| {
            c.limits.max_pending_bytes = 4096
        }));
        let a = w.connect(0, false);
        let b = w.connect(0, false);
        let ua = authenticate(&mut w, a, &[&r1_uri()], ALICE, "alice", "alice-pw", None);
        let ub = authenticate(&mut w, b, &[&r1_uri()], BOB, "bob", "bob-pw", None);
        (
            w,
            a,
            b,
            ua.head.get("Use-Path").unwrap().to_string(),
            ub.head.get("Use-Path").unwrap().to_string(),
        )
    };
    let body: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let m = send_msg(
        "big1",
        &[ua.clone(), ub.clone(), BOB.into()],
        ALICE,
        &body,
        None,
    );
    let wire = m.encode().unwrap();
    w.clients[b].paused = true;
    let conn_a = match w.links[&End::Client(a)] {
        End::Relay(_, id) => id,
        _ => unreachable!(),
    };
    let conn_b = match w.links[&End::Client(b)] {
        End::Relay(_, id) => id,
        _ => unreachable!(),
    };
    let mut fed = 0;
    while fed < wire.len() && w.relays[0].wants_read(conn_a) {
        let n = 1000.min(wire.len() - fed);
        w.send(a, &wire[fed..fed + n]);
        fed += n;
    }
    // Bob does not read: the relay stops reading Alice after about max_pending_bytes.
    assert!(fed < wire.len());
    assert!(!w.relays[0].wants_read(conn_a));
    assert!(w.relays[0].pending_bytes(conn_b) <= 4096 + 1000 + 200);
    w.clients[b].paused = false;
    w.drive();
    while fed < wire.len() {
        assert!(w.relays[0].wants_read(conn_a));
        let n = 1000.min(wire.len() - fed);
        w.send(a, &wire[fed..fed + n]);
        fed += n;
    }
    let got = w.take_one(b);
    assert_eq!(got.body.as_deref(), Some(&body[..]));
    assert_eq!(w.take_one(a).head.status_code(), Some(StatusCode::OK));
}

#[test]
fn chunk_larger_than_the_limit_gets_413_and_is_aborted_downstream() {
    let mut w = World::new();
    w.add_relay(relay(R1, 7001, 7101, 1, |c| {
        c.limits.max_chunk_bytes = 1000
    }));
    let a = w.connect(0, false);
    let b = w.connect(0, false);
    let ua = authenticate(&mut w, a, &[&r1_uri()], ALICE, "alice", "alice-pw", None)
        .head
        .get("Use-Path")
        .unwrap()
        .to_string();
    let ub = authenticate(&mut w, b, &[&r1_uri()], BOB, "bob", "bob-pw", None)
        .head
        .get("Use-Path")
        .unwrap()
        .to_string();
    w.send_msg(
        a,
        &send_msg("big1", &[ua, ub, BOB.into()], ALICE, &[b'x'; 5000], None),
    );
    let r = w.take_one(a);
    assert_eq!(r.head.status_code(), Some(StatusCode::MESSAGE_TOO_LARGE));
    let got = w.take_one(b);
    assert_eq!(got.continuation, Continuation::Abort);
}

#[test]
fn endless_body_after_413_closes_the_connection() {
    let mut w = World::new();
    w.add_relay(relay(R1, 7001, 7101, 1, |c| {
        c.limits.max_chunk_bytes = 1000
    }));
    let a = w.connect(0, false);
    let b = w.connect(0, false);
    let ua = authenticate(&mut w, a, &[&r1_uri()], ALICE, "alice", "alice-pw", None)
        .head
        .get("Use-Path")
        .unwrap()
        .to_string();
    let ub = authenticate(&mut w, b, &[&r1_uri()], BOB, "bob", "bob-pw", None)
        .head
        .get("Use-Path")
        .unwrap()
        .to_string();
    let head = format!(
        "MSRP endless1 SEND\r\nTo-Path: {ua} {ub} {BOB}\r\nFrom-Path: {ALICE}\r\n\
         Message-ID: endless01\r\nByte-Range: 1-*/*\r\nContent-Type: text/plain\r\n\r\n"
    );
    w.send(a, head.as_bytes());
    // 413 once past 1000 bytes; the body goes on: still open up to 16 x 1000 dropped bytes.
    for _ in 0..16 {
        w.send(a, &[b'z'; 1000]);
    }
    assert_eq!(
        w.take_one(a).head.status_code(),
        Some(StatusCode::MESSAGE_TOO_LARGE)
    );
    assert!(!w.clients[a].closed);
    // 1000 forwarded, 1000 in the block that broke the limit, 14 000 dropped so far.
    for _ in 0..3 {
        w.send(a, &[b'z'; 1000]);
    }
    assert!(w.clients[a].closed);
    assert!(w.events.iter().any(|e| matches!(e,
        RelayEvent::Rejected { reason, .. } if reason.contains("beyond 16000 bytes"))));
    assert!(!w.clients[b].closed);
}

#[test]
fn two_senders_to_one_client_do_not_interleave() {
    let (mut w, a, b, ua, ub) = one_relay();
    let c = w.connect(0, false);
    let carol = "msrp://carol.example.com:9003/c1;tcp";
    let m1 = send_msg(
        "one1",
        &[ua.clone(), ub.clone(), BOB.into()],
        ALICE,
        &[b'1'; 3000],
        None,
    )
    .encode()
    .unwrap();
    let m2 = send_msg(
        "two2",
        &[ub.clone(), BOB.into()],
        carol,
        &[b'2'; 3000],
        None,
    )
    .encode()
    .unwrap();
    // Alice's message is half in when Carol's starts.
    w.send(a, &m1[..1500]);
    w.send(c, &m2);
    w.send(a, &m1[1500..]);
    let got = w.take(b);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].body.as_deref(), Some(&[b'1'; 3000][..]));
    assert_eq!(got[1].body.as_deref(), Some(&[b'2'; 3000][..]));
}

#[test]
fn probation_closes_connections_without_a_successful_request() {
    let mut w = World::new();
    w.add_relay(relay(R1, 7001, 7101, 1, |_| {}));
    let idle = w.connect(0, false);
    let good = w.connect(0, false);
    authenticate(&mut w, good, &[&r1_uri()], ALICE, "alice", "alice-pw", None);
    w.advance_time(29_999);
    assert!(!w.clients[idle].closed);
    w.advance_time(2);
    // RFC 4976 §6.1: 30 s without a successful request.
    assert!(w.clients[idle].closed);
    assert!(!w.clients[good].closed);
}

#[test]
fn connections_per_address_are_limited() {
    let mut r = relay(R1, 7001, 7101, 1, |c| {
        c.limits.max_connections_per_address = 2
    });
    let p = |port| SocketAddr::from(([192, 0, 2, 1], port));
    let c1 = r.accept(p(1), false, 0).unwrap();
    r.accept(p(2), false, 0).unwrap();
    assert!(r.accept(p(3), false, 0).is_err());
    assert!(r
        .accept(SocketAddr::from(([192, 0, 2, 2], 1)), false, 0)
        .is_ok());
    r.closed(c1, "bye", 0);
    assert!(r.accept(p(4), false, 0).is_ok());
}

#[test]
fn garbage_closes_the_connection_and_others_keep_working() {
    let (mut w, a, b, ua, ub) = one_relay();
    let m = w.connect(0, false);
    w.send(m, b"GET / HTTP/1.1\r\n\r\n");
    assert!(w.clients[m].closed);
    w.send_msg(
        a,
        &send_msg("s0001", &[ua, ub, BOB.into()], ALICE, b"still here", None),
    );
    assert_eq!(w.take_one(b).body.as_deref(), Some(&b"still here"[..]));
}

#[test]
fn issued_session_ids_are_distinct() {
    let mut w = World::new();
    w.add_relay(relay(R1, 7001, 7101, 1, |_| {}));
    let a = w.connect(0, false);
    let mut seen = HashSet::new();
    // One client URI per AUTH (the same one again would renew its URI).
    for i in 0..20 {
        let me = format!("msrp://alice.example.com:9001/a{i};tcp");
        let r = authenticate(&mut w, a, &[&r1_uri()], &me, "alice", "alice-pw", None);
        assert!(seen.insert(r.head.get("Use-Path").unwrap().to_string()));
    }
}

#[test]
fn a_sender_stalled_mid_body_is_closed_and_the_target_freed() {
    let (mut w, a, b, ua, ub) = one_relay();
    let carol = "msrp://carol.example.com:9003/c1;tcp";
    let m1 = send_msg(
        "one1",
        &[ua.clone(), ub.clone(), BOB.into()],
        ALICE,
        &[b'1'; 3000],
        None,
    )
    .encode()
    .unwrap();
    w.send(a, &m1[..1500]);
    w.advance_time(29_000);
    assert!(!w.clients[a].closed);
    // Carol's message waits behind Alice's half-sent one.
    let c = w.connect(0, false);
    w.send_msg(
        c,
        &send_msg("two2", &[ub.clone(), BOB.into()], carol, b"hi", None),
    );
    // Alice sends nothing for 30 s: closed; her chunk ends with '#' at Bob; Carol's goes on.
    w.advance_time(1_500);
    assert!(w.clients[a].closed);
    let got = w.take(b);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].continuation, Continuation::Abort);
    assert_eq!(got[1].body.as_deref(), Some(&b"hi"[..]));
}

#[test]
fn a_sender_held_back_by_backpressure_is_not_a_stall() {
    let mut w = World::new();
    w.add_relay(relay(R1, 7001, 7101, 1, |c| {
        c.limits.max_pending_bytes = 4096
    }));
    let a = w.connect(0, false);
    let b = w.connect(0, false);
    let ua = authenticate(&mut w, a, &[&r1_uri()], ALICE, "alice", "alice-pw", None)
        .head
        .get("Use-Path")
        .unwrap()
        .to_string();
    let ub = authenticate(&mut w, b, &[&r1_uri()], BOB, "bob", "bob-pw", None)
        .head
        .get("Use-Path")
        .unwrap()
        .to_string();
    let wire = send_msg("big1", &[ua, ub, BOB.into()], ALICE, &[b'z'; 50_000], None)
        .encode()
        .unwrap();
    w.clients[b].paused = true;
    w.send(a, &wire);
    w.advance_time(120_000);
    assert!(!w.clients[a].closed);
    w.clients[b].paused = false;
    w.drive();
    assert_eq!(w.take_one(b).body.map(|v| v.len()), Some(50_000));
}

#[test]
fn a_refresh_auth_renews_the_same_use_path_past_the_first_expiry() {
    // The soak's finding: sessions negotiated with a Use-Path died at its first expiry even
    // though the client refreshed (a new URI each AUTH). Now a later AUTH by the same user
    // with the same From-Path on the same connection renews the URI it holds.
    let mut w = World::new();
    w.add_relay(relay(R1, 7001, 7101, 1, |c| {
        c.limits.max_sessions_per_connection = 2;
    }));
    let a = w.connect(0, false);
    let b = w.connect(0, false);
    let first = authenticate(
        &mut w,
        a,
        &[&r1_uri()],
        ALICE,
        "alice",
        "alice-pw",
        Some(300),
    );
    assert_eq!(first.head.status_code(), Some(StatusCode::OK), "{first:?}");
    let ua = first.head.get("Use-Path").unwrap().to_string();
    let rb = authenticate(&mut w, b, &[&r1_uri()], BOB, "bob", "bob-pw", None);
    let ub = rb.head.get("Use-Path").unwrap().to_string();
    // Refreshes at 3/4 of the lifetime, more of them than the connection has URI slots:
    // every one is a 200 with the same Use-Path and the new Expires.
    for _ in 0..4 {
        w.advance_time(225_000);
        let again = authenticate(
            &mut w,
            a,
            &[&r1_uri()],
            ALICE,
            "alice",
            "alice-pw",
            Some(300),
        );
        assert_eq!(again.head.status_code(), Some(StatusCode::OK), "{again:?}");
        assert_eq!(again.head.get("Use-Path").unwrap(), ua);
        assert_eq!(again.head.expires(), Some(300));
    }
    // 900 s after the first AUTH (three lifetimes): Bob still reaches Alice through it.
    let m = send_msg(
        "s0001",
        &[ub.clone(), ua.clone(), ALICE.into()],
        BOB,
        b"still here",
        None,
    );
    w.send_msg(b, &m);
    assert_eq!(w.take_one(b).head.status_code(), Some(StatusCode::OK));
    let got = w.take_one(a);
    assert_eq!(got.body.as_deref(), Some(&b"still here"[..]));
    w.send_msg(a, &response(&got, 200));
    // Another client URI on the same connection gets a URI of its own (not Alice's), and
    // takes the connection's second and last slot.
    let other = authenticate(
        &mut w,
        a,
        &[&r1_uri()],
        "msrp://alice.example.com:9001/a2;tcp",
        "alice",
        "alice-pw",
        Some(300),
    );
    assert_eq!(other.head.status_code(), Some(StatusCode::OK), "{other:?}");
    assert_ne!(other.head.get("Use-Path").unwrap(), ua);
    // Without a refresh the URI ends at the expiry it was last given (RFC 4976 §6.3).
    w.advance_time(300_001);
    let m = send_msg("s0002", &[ub, ua, ALICE.into()], BOB, b"gone", None);
    w.send_msg(b, &m);
    assert_eq!(
        w.take_one(b).head.status_code(),
        Some(StatusCode::SESSION_DOES_NOT_EXIST)
    );
    assert!(w.take(a).is_empty());
}
