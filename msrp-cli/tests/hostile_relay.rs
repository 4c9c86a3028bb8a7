//! Hostile peers against a running `msrp relay` process, with small configured limits so
//! each attack hits its limit within seconds (docs/limits.md). Each test asserts:
//! 1. the attacker gets the right status code, or its connection is closed;
//! 2. a legitimate session through the same relay (alice and bob, authenticated before the
//!    attack) keeps carrying messages during and after it;
//! 3. the relay's resident memory (`/proc/PID/status` VmRSS) stays within a bound.
//!
//! Attackers connect from 127.0.0.2 (the legitimate clients from 127.0.0.1) so per-address
//! limits apply to them only. Every relay is killed by a Drop guard; every read has a deadline.

#[path = "common/relay_proc.rs"]
mod relay_proc;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use msrp_proto::message::{
    ByteRange, Continuation, Event, Limits, Message, MessageHead, Method, Parser, StatusCode,
};
use msrp_proto::relay::digest::{Challenge, Credentials, DigestClient};
use relay_proc::{rss_kib, Fixture, RelayProc};

const IO_TIMEOUT: Duration = Duration::from_secs(10);
const ALICE: &str = "msrp://alice.test:9001/a1;tcp";
const BOB: &str = "msrp://bob.test:9002/b1;tcp";
const MALLORY: &str = "msrp://mallory.test:9003/m1;tcp";
/// Growth of the relay's RSS tolerated over a test (it starts around 10 MiB).
const RSS_SLACK_KIB: u64 = 24 * 1024;

/// A blocking TCP connection from a given loopback source address (std cannot bind before
/// connecting; tokio's TcpSocket can, on a throwaway runtime).
fn connect_from(src: &str, to: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(format!("{src}:0").parse().unwrap()).unwrap();
        tokio::time::timeout(IO_TIMEOUT, s.connect(to))
            .await
            .unwrap()
            .unwrap()
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s
}

/// A raw MSRP client with a push parser.
struct Peer {
    io: TcpStream,
    buf: Vec<u8>,
    parser: Parser,
    uri: String,
}

impl Peer {
    fn new(io: TcpStream, uri: &str) -> Peer {
        io.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Peer {
            io,
            buf: Vec::new(),
            parser: Parser::new(Limits::default()),
            uri: uri.to_string(),
        }
    }

    fn send(&mut self, m: &Message) {
        self.io.write_all(&m.encode().unwrap()).unwrap();
    }

    /// The next message, or `None` when the connection closed or nothing came in `wait`.
    fn recv_within(&mut self, wait: Duration) -> Option<Message> {
        let deadline = Instant::now() + wait;
        let mut cur: Option<Message> = None;
        loop {
            loop {
                let (n, ev) = self.parser.parse(&self.buf).expect("valid MSRP");
                let done = match ev {
                    None => true,
                    Some(Event::Head { head, body }) => {
                        cur = Some(Message {
                            head,
                            body: body.then(Vec::new),
                            continuation: Continuation::Complete,
                        });
                        false
                    }
                    Some(Event::Body(b)) => {
                        if let Some(Message { body: Some(v), .. }) = cur.as_mut() {
                            v.extend_from_slice(b);
                        }
                        false
                    }
                    Some(Event::End(flag)) => {
                        self.buf.drain(..n);
                        let mut m = cur.take().unwrap();
                        m.continuation = flag;
                        return Some(m);
                    }
                };
                self.buf.drain(..n);
                if done {
                    break;
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            let mut tmp = [0u8; 16384];
            match self.io.read(&mut tmp) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return None,
            }
        }
    }

    fn recv(&mut self) -> Message {
        self.recv_within(IO_TIMEOUT)
            .expect("a message within the timeout")
    }

    fn auth_msg(&self, tid: &str, to: &str, authorization: Option<String>) -> Message {
        let mut h = MessageHead::request(tid, Method::Auth).unwrap();
        h.push("To-Path", to).unwrap();
        h.push("From-Path", &self.uri).unwrap();
        if let Some(a) = authorization {
            h.push("Authorization", &a).unwrap();
        }
        Message {
            head: h,
            body: None,
            continuation: Continuation::Complete,
        }
    }

    /// AUTH: the challenge round when there is one; returns the final response.
    fn authenticate(&mut self, to: &str, user: &str, pw: &str) -> Message {
        let m = self.auth_msg("auth01", to, None);
        self.send(&m);
        let ch = self.recv();
        if ch.head.status_code() != Some(StatusCode::UNAUTHORIZED) {
            return ch;
        }
        let c = Challenge::parse(ch.head.www_authenticate().next().unwrap()).unwrap();
        let mut dc = DigestClient::new(Credentials::new(user, pw).unwrap());
        dc.on_challenge(c).unwrap();
        let a = dc.authorize(to, "1234abcd").unwrap();
        let m = self.auth_msg("auth02", to, Some(a.to_string()));
        self.send(&m);
        self.recv()
    }

    fn use_path(&mut self, to: &str, user: &str, pw: &str) -> String {
        let r = self.authenticate(to, user, pw);
        assert_eq!(r.head.status_code(), Some(StatusCode::OK), "{r:?}");
        r.head.get("Use-Path").unwrap().to_string()
    }
}

/// True when the relay closes `s` within `within` (EOF or reset); what it sends is dropped.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let end = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

fn send_msg(tid: &str, to: &str, from: &str, body: &[u8]) -> Message {
    let mut h = MessageHead::request(tid, Method::Send).unwrap();
    h.push("To-Path", to).unwrap();
    h.push("From-Path", from).unwrap();
    h.push_message_id(&format!("msg-{tid}")).unwrap();
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

fn respond(req: &Message, code: u16) -> Message {
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

/// The relay and a legitimate session through it: alice and bob, authenticated.
struct World {
    _fx: Fixture,
    relay: RelayProc,
    alice: Peer,
    bob: Peer,
    ua: String,
    ub: String,
    n: u32,
    rss_start: u64,
}

impl World {
    fn new(extra: &[&str]) -> World {
        let fx = Fixture::new();
        let relay = fx.start("relay", extra);
        let tcp = relay.tcp.unwrap();
        let mut alice = Peer::new(TcpStream::connect(tcp).unwrap(), ALICE);
        let mut bob = Peer::new(TcpStream::connect(tcp).unwrap(), BOB);
        let ua = alice.use_path(&relay.tcp_uri(), "alice", "alice-pw");
        let ub = bob.use_path(&relay.tcp_uri(), "bob", "bob-pw");
        let mut w = World {
            rss_start: 0,
            _fx: fx,
            relay,
            alice,
            bob,
            ua,
            ub,
            n: 0,
        };
        w.legit("warm-up");
        w.rss_start = rss_kib(w.relay.child.id());
        w
    }

    fn addr(&self) -> SocketAddr {
        self.relay.tcp.unwrap()
    }

    /// Alice sends bob a message through the relay; bob gets it and answers 200; alice gets
    /// the relay's 200.
    fn legit(&mut self, tag: &str) {
        self.n += 1;
        let tid = format!("legit{:04}", self.n);
        let body = format!("hello bob ({tag})");
        let m = send_msg(
            &tid,
            &format!("{} {} {BOB}", self.ua, self.ub),
            ALICE,
            body.as_bytes(),
        );
        self.alice.send(&m);
        let ok = self.alice.recv();
        assert_eq!(ok.head.status_code(), Some(StatusCode::OK), "{tag}: {ok:?}");
        let got = self.bob.recv();
        assert!(
            got.body.as_deref() == Some(body.as_bytes()),
            "{tag}: bob got {:?} ({} body bytes)",
            got.head,
            got.body.as_ref().map_or(0, Vec::len)
        );
        self.bob.send(&respond(&got, 200));
    }

    fn assert_memory(&self, what: &str) {
        let now = rss_kib(self.relay.child.id());
        eprintln!("{what}: relay RSS {} KiB -> {now} KiB", self.rss_start);
        assert!(
            now <= self.rss_start + RSS_SLACK_KIB,
            "{what}: relay RSS grew from {} KiB to {now} KiB",
            self.rss_start
        );
    }
}

#[test]
fn slow_headers_are_closed_by_the_probation_timeout() {
    let mut w = World::new(&["--probation-secs", "1"]);
    let mut a = connect_from("127.0.0.2", w.addr());
    let req = b"MSRP slow1 AUTH\r\nTo-Path: msrp://localhost;tcp\r\nFrom-Path: ";
    let start = Instant::now();
    // One byte every 100 ms, at most 60 bytes (6 s).
    for b in req.iter() {
        if a.write_all(std::slice::from_ref(b)).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if start.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    assert!(closed_within(&mut a, Duration::from_secs(3)));
    let took = start.elapsed();
    // RFC 4976 §6.1: no successful request within the probation period.
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took <= Duration::from_secs(6), "{took:?}");
    w.legit("after slow headers");
    w.assert_memory("slow headers");
}

#[test]
fn endless_header_block_closes_the_connection() {
    let mut w = World::new(&["--max-header-bytes", "4096"]);
    let mut a = connect_from("127.0.0.2", w.addr());
    a.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    a.write_all(b"MSRP endless1 AUTH\r\n").unwrap();
    let line = format!("X-Junk: {}\r\n", "j".repeat(1000));
    let mut written = 0usize;
    while written < 32 << 20 {
        if a.write_all(line.as_bytes()).is_err() {
            break;
        }
        written += line.len();
        if written % (1 << 20) < line.len() {
            w.legit("during endless header");
        }
    }
    assert!(written < 32 << 20, "the relay read {written} header bytes");
    assert!(closed_within(&mut a, Duration::from_secs(3)));
    w.legit("after endless header");
    w.assert_memory("endless header");
}

#[test]
fn connection_flood_from_one_address_is_limited() {
    let mut w = World::new(&[
        "--max-connections-per-address",
        "4",
        "--probation-secs",
        "2",
    ]);
    let conns: Vec<TcpStream> = (0..20)
        .map(|_| connect_from("127.0.0.2", w.addr()))
        .collect();
    // When does each connection close? Watched at once (one thread each), so the measure
    // does not depend on the order or on the machine's load.
    let start = Instant::now();
    let watchers: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            std::thread::spawn(move || {
                closed_within(&mut c, Duration::from_secs(6)).then(|| start.elapsed())
            })
        })
        .collect();
    w.legit("during flood");
    let times: Vec<Duration> = watchers
        .into_iter()
        .map(|t| {
            t.join()
                .unwrap()
                .expect("every flood connection is closed in the end")
        })
        .collect();
    // Refused at once vs. closed by the 2 s probation (they never succeed).
    let early = times
        .iter()
        .filter(|t| **t < Duration::from_secs(1))
        .count();
    let late = times
        .iter()
        .filter(|t| **t >= Duration::from_millis(1800))
        .count();
    assert_eq!(early, 16, "{times:?}");
    assert_eq!(late, 4, "{times:?}");
    // Slots are free again.
    let mut again = connect_from("127.0.0.2", w.addr());
    assert!(!closed_within(&mut again, Duration::from_millis(300)));
    w.legit("after flood");
    w.assert_memory("flood");
}

#[test]
fn auth_brute_force_is_cut_per_address_across_reconnects() {
    let mut w = World::new(&[
        "--max-failed-requests",
        "2",
        "--max-auth-failures-per-address",
        "5",
        "--auth-failure-window-secs",
        "60",
    ]);
    let relay_uri = w.relay.tcp_uri();
    let mut statuses = Vec::new();
    let mut connections = 0;
    // At most 30 guesses, reconnecting whenever the relay closes the connection.
    let mut m = Peer::new(connect_from("127.0.0.2", w.addr()), MALLORY);
    connections += 1;
    for i in 0..30 {
        let guess = format!("guess{i}");
        m.send(&m.auth_msg(&format!("brute{i:03}"), &relay_uri, None));
        let Some(ch) = m.recv_within(Duration::from_secs(3)) else {
            // Closed (too many failures on this connection): reconnect.
            m = Peer::new(connect_from("127.0.0.2", w.addr()), MALLORY);
            connections += 1;
            continue;
        };
        if ch.head.status_code() != Some(StatusCode::UNAUTHORIZED) {
            // No challenge any more: refused outright.
            statuses.push(ch.head.status_code().unwrap().as_u16());
            continue;
        }
        let c = Challenge::parse(ch.head.www_authenticate().next().unwrap()).unwrap();
        let mut dc = DigestClient::new(Credentials::new("alice", &guess).unwrap());
        dc.on_challenge(c).unwrap();
        let a = dc.authorize(&relay_uri, "1234abcd").unwrap();
        m.send(&m.auth_msg(&format!("brute{i:03}b"), &relay_uri, Some(a.to_string())));
        match m.recv_within(Duration::from_secs(3)) {
            Some(r) => statuses.push(r.head.status_code().unwrap().as_u16()),
            None => {
                m = Peer::new(connect_from("127.0.0.2", w.addr()), MALLORY);
                connections += 1;
            }
        }
        if i % 10 == 0 {
            w.legit("during brute force");
        }
    }
    // Exactly 5 credential checks failed (403); every later AUTH got 403 without a
    // challenge (RFC 4976 §6.3: a client that is not authorized gets 403).
    assert!(statuses.iter().all(|s| *s == 403), "{statuses:?}");
    assert!(connections > 1, "the per-connection limit never closed");
    let log = w.relay.log();
    let refused = log.matches("failed AUTHs from 127.0.0.2").count();
    assert!(refused >= 10, "refused without check: {refused}\n{log}");
    // The right password from that address is refused too, for the window.
    let mut m = Peer::new(connect_from("127.0.0.2", w.addr()), MALLORY);
    let r = m.authenticate(&relay_uri, "alice", "alice-pw");
    assert_eq!(r.head.status_code(), Some(StatusCode::FORBIDDEN));
    // Another address is not affected: carol authenticates from 127.0.0.1.
    let mut carol = Peer::new(TcpStream::connect(w.addr()).unwrap(), MALLORY);
    carol.use_path(&relay_uri, "carol", "carol-pw");
    w.legit("after brute force");
    w.assert_memory("brute force");
}

#[test]
fn ten_gib_byte_range_and_endless_body_get_413_from_the_relay() {
    let mut w = World::new(&["--max-chunk-bytes", "65536", "--body-stall-secs", "2"]);
    let relay_uri = w.relay.tcp_uri();
    // The attacker has an account (carol) and two connections: one sends, the other is
    // the destination (an accomplice), so the legitimate alice -> bob path is separate.
    let mut m = Peer::new(connect_from("127.0.0.2", w.addr()), MALLORY);
    let um = m.use_path(&relay_uri, "carol", "carol-pw");
    let mut sink = Peer::new(
        connect_from("127.0.0.2", w.addr()),
        "msrp://sink.test:9/s1;tcp",
    );
    let us = sink.use_path(&relay_uri, "carol", "carol-pw");
    // Claiming 10 GiB, body without an end.
    let ten_gib = 10u64 << 30;
    let head = format!(
        "MSRP huge0001 SEND\r\nTo-Path: {um} {us} msrp://sink.test:9/s1;tcp\r\n\
         From-Path: {MALLORY}\r\nMessage-ID: hugemessage\r\n\
         Byte-Range: 1-{ten_gib}/{ten_gib}\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    m.io.write_all(head.as_bytes()).unwrap();
    m.io.set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let block = vec![b'z'; 16 * 1024];
    let mut written = 0usize;
    // Loopback socket buffers autotune to several MiB on each side, and a loaded machine
    // may not schedule the relay for a while: the attacker can put ~10 MiB into the
    // kernel before the relay reads a byte. The relay itself answers 413 after 64 KiB and
    // closes 16 x 64 KiB after that, so an attacker still writing after 64 MiB means the
    // relay is reading the endless body forever.
    const BOUND: usize = 64 << 20;
    while written < BOUND {
        if m.io.write_all(&block).is_err() {
            break;
        }
        written += block.len();
        if written == 256 * 1024 {
            w.legit("during 10 GiB claim");
        }
        // Stop as soon as the relay answered.
        let mut peek = [0u8; 1];
        m.io.set_nonblocking(true).unwrap();
        let answered = m.io.peek(&mut peek).is_ok_and(|n| n > 0);
        m.io.set_nonblocking(false).unwrap();
        if answered {
            break;
        }
    }
    let r = m.recv();
    assert_eq!(r.head.transaction_id(), "huge0001");
    // RFC 4975 §10.5 / our max_chunk_bytes: 413.
    assert_eq!(r.head.status_code(), Some(StatusCode::MESSAGE_TOO_LARGE));
    assert!(
        written < BOUND,
        "the relay accepted {written} bytes of an endless body without answering or closing"
    );
    // The destination saw at most the forwarded part, ended with '#' (aborted).
    if let Some(got) = sink.recv_within(Duration::from_secs(2)) {
        assert_eq!(got.continuation, Continuation::Abort, "{:?}", got.head);
        assert!(got.body.map_or(0, |b| b.len()) <= 65536);
    }
    w.legit("after 10 GiB claim");
    w.assert_memory("10 GiB claim");
}
