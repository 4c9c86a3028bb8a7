//! Hostile peers against a running `MsrpEndpoint` (the tokio layer on loopback TCP), with
//! small configured limits so each attack hits its limit within seconds (docs/limits.md).
//! Every test asserts three things:
//! 1. the attacker gets the right status code, or its connection is closed;
//! 2. a legitimate session on the same endpoint keeps working (a message each way after,
//!    and where it makes sense during, the attack);
//! 3. what the endpoint buffers stays within the configured bounds
//!    ([`MsrpEndpoint::stats`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use msrp::proto::endpoint::{EndpointConfig, SessionParams, SessionRole};
use msrp::proto::message::Limits;
use msrp::proto::sdp::{Reachability, SdpAnswer, SdpOffer};
use msrp::proto::session::SessionConfig;
use msrp::proto::uri::MsrpUri;
use msrp::{MsrpEndpoint, MsrpSession, Options, SessionNotice};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

const BIND_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_BODY: u64 = 256 * 1024;
const MAX_PENDING_OUTPUT: usize = 128 * 1024;
const MAX_PER_ADDRESS: usize = 6;
const MAX_SIZE: u64 = 1024 * 1024;
const MAX_INTERVALS: usize = 64;
const STEP: Duration = Duration::from_secs(10);

/// What the endpoint may hold in all (docs/limits.md): per connection a header block, twice
/// the unread-response limit and the writer window (256 KiB plus a chunk), and the 4 MiB of
/// body notices the application has not taken yet.
fn bound(connections: usize) -> usize {
    connections * (16 * 1024 + 2 * MAX_PENDING_OUTPUT + 256 * 1024 + 64 * 1024) + 4 * 1024 * 1024
}

struct World {
    server: MsrpEndpoint,
    client: MsrpEndpoint,
    /// The legitimate session: server side and client side.
    ss: MsrpSession,
    sc: MsrpSession,
}

async fn world() -> World {
    let mut opts = Options::new("127.0.0.1:0".parse().unwrap());
    opts.endpoint = EndpointConfig {
        limits: Limits {
            max_body_bytes: MAX_BODY,
            ..Limits::default()
        },
        bind_timeout: BIND_TIMEOUT,
        connect_timeout: Duration::from_secs(30),
        max_connections_per_address: MAX_PER_ADDRESS,
        max_pending_output: MAX_PENDING_OUTPUT,
    };
    opts.session.recv.max_intervals = MAX_INTERVALS;
    let server = MsrpEndpoint::bind(opts).await.unwrap();
    let client = MsrpEndpoint::bind(Options::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    // The client offers and is unreachable, so it connects to the server (which is passive):
    // the legitimate connection is one of the server's accepted connections, like the
    // attackers'.
    let mut cc = client.local_config();
    cc.reachability = Reachability::BehindNat;
    let offered = client.create_offer(&cc).await.unwrap();
    let mut cs = server.local_config();
    cs.max_size = Some(MAX_SIZE);
    let (answer, mut ss) = server
        .answer_offer(&SdpOffer::parse(&offered.offer().to_string()).unwrap(), &cs)
        .await
        .unwrap();
    let mut sc = client
        .accept_answer(offered, &SdpAnswer::parse(&answer.to_string()).unwrap())
        .await
        .unwrap();
    timeout(STEP, sc.connected()).await.unwrap().unwrap();
    timeout(STEP, ss.connected()).await.unwrap().unwrap();
    World {
        server,
        client,
        ss,
        sc,
    }
}

/// The next complete text message on `s` (other notices skipped).
async fn next_text(s: &mut MsrpSession) -> String {
    let mut bodies: HashMap<String, Vec<u8>> = HashMap::new();
    loop {
        match timeout(STEP, s.next_notice())
            .await
            .expect("a notice in time")
        {
            Some(SessionNotice::IncomingData {
                message_id, data, ..
            }) => bodies
                .entry(message_id)
                .or_default()
                .extend_from_slice(&data),
            Some(SessionNotice::IncomingComplete { message_id, .. }) => {
                let b = bodies.remove(&message_id).unwrap_or_default();
                return String::from_utf8(b).unwrap();
            }
            Some(SessionNotice::Closed(r)) => panic!("legitimate session closed: {r}"),
            Some(_) => {}
            None => panic!("legitimate session gone"),
        }
    }
}

impl World {
    /// A message each way on the legitimate session.
    async fn legit_roundtrip(&mut self, tag: &str) {
        let out = self.sc.send_text(&format!("c->s {tag}")).await.unwrap();
        assert_eq!(next_text(&mut self.ss).await, format!("c->s {tag}"));
        timeout(STEP, out.outcome()).await.unwrap().unwrap();
        let out = self.ss.send_text(&format!("s->c {tag}")).await.unwrap();
        assert_eq!(next_text(&mut self.sc).await, format!("s->c {tag}"));
        timeout(STEP, out.outcome()).await.unwrap().unwrap();
    }

    async fn assert_bounded(&self, what: &str) {
        let st = self.server.stats().await.unwrap();
        assert!(
            st.total_buffered() <= bound(st.connections.max(1)),
            "{what}: {st:?} above {}",
            bound(st.connections.max(1))
        );
        assert!(
            st.core_buffered <= st.connections * (16 * 1024 + 2 * MAX_PENDING_OUTPUT + 256 * 1024),
            "{what}: {st:?}"
        );
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The server's URI for a session id.
    fn uri(&self, session: &str) -> MsrpUri {
        format!("msrp://{}/{session};tcp", self.addr())
            .parse()
            .unwrap()
    }

    /// A second session on the server whose peer is the attacker (`attacker` is its URI):
    /// the attacker is a rightful peer of its own session.
    async fn attacker_session(&self, session: &str, attacker: &str) -> MsrpSession {
        let local = self.uri(session);
        let remote: MsrpUri = attacker.parse().unwrap();
        let mut config = SessionConfig::default();
        config.recv.max_size = Some(MAX_SIZE);
        config.recv.max_intervals = MAX_INTERVALS;
        self.server
            .start_session(SessionParams {
                role: SessionRole::Passive,
                connect_to: None,
                send_binding_send: false,
                local_uri: local.clone(),
                local_path: vec![local],
                remote_path: vec![remote.clone()],
                remote_uri: remote,
                match_session_id_only: false,
                config,
            })
            .await
            .unwrap()
    }
}

/// Drains a session's notices in the background (an application that keeps up); returns the
/// notices when asked.
fn drain(mut s: MsrpSession) -> tokio::task::JoinHandle<Vec<SessionNotice>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Ok(Some(n)) = timeout(Duration::from_secs(20), s.next_notice()).await {
            let end = matches!(n, SessionNotice::Closed(_));
            if !matches!(n, SessionNotice::IncomingData { .. }) {
                seen.push(n);
            }
            if end {
                break;
            }
        }
        seen
    })
}

async fn connect_from(ip: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    timeout(STEP, s.connect(to)).await.unwrap().unwrap()
}

fn send_req(
    tid: &str,
    to: &MsrpUri,
    from: &str,
    range: &str,
    body: Option<&[u8]>,
    flag: char,
) -> Vec<u8> {
    let mut m = format!(
        "MSRP {tid} SEND\r\nTo-Path: {to}\r\nFrom-Path: {from}\r\nMessage-ID: msg-{tid}\r\nByte-Range: {range}\r\n"
    )
    .into_bytes();
    if let Some(b) = body {
        m.extend_from_slice(b"Content-Type: text/plain\r\n\r\n");
        m.extend_from_slice(b);
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(format!("-------{tid}{flag}\r\n").as_bytes());
    m
}

/// Reads until `n` responses arrived (or the connection closed / the time is up); returns
/// (transaction id, status) in order and whether the connection closed.
async fn responses(s: &mut TcpStream, n: usize, within: Duration) -> (Vec<(String, u16)>, bool) {
    let end = tokio::time::Instant::now() + within;
    let mut text = String::new();
    let mut buf = vec![0u8; 64 * 1024];
    let parse = parse_responses;
    loop {
        let got = parse(&text);
        if got.len() >= n {
            return (got, false);
        }
        match tokio::time::timeout_at(end, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (parse(&text), true),
            Ok(Ok(k)) => text.push_str(&String::from_utf8_lossy(&buf[..k])),
            Err(_) => return (got, false),
        }
    }
}

/// Parses response start lines out of `text`.
fn parse_responses(text: &str) -> Vec<(String, u16)> {
    text.split("\r\n")
        .filter_map(|l| {
            let mut w = l.split(' ');
            match (w.next(), w.next(), w.next()) {
                (Some("MSRP"), Some(tid), Some(code)) => {
                    code.parse().ok().map(|c| (tid.to_string(), c))
                }
                _ => None,
            }
        })
        .collect()
}

/// Reads a connection's read half in the background until EOF or an error (at most 20 s),
/// as a real peer does while it writes; `eof` turns true when the server closed.
fn read_all_background(
    mut rd: tokio::net::tcp::OwnedReadHalf,
) -> (Arc<AtomicBool>, tokio::task::JoinHandle<Vec<(String, u16)>>) {
    let eof = Arc::new(AtomicBool::new(false));
    let flag = eof.clone();
    let t = tokio::spawn(async move {
        let mut text = String::new();
        let mut buf = vec![0u8; 16 * 1024];
        let end = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match tokio::time::timeout_at(end, rd.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    flag.store(true, Ordering::SeqCst);
                    break;
                }
                Ok(Ok(k)) => text.push_str(&String::from_utf8_lossy(&buf[..k])),
                Err(_) => break,
            }
        }
        parse_responses(&text)
    });
    (eof, t)
}

/// True when the peer closes the connection within `within` (EOF or reset), reading and
/// discarding whatever comes first.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let end = tokio::time::Instant::now() + within;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tokio::time::timeout_at(end, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn slow_headers_one_byte_at_a_time_are_cut_by_the_unbound_timeout() {
    let mut w = world().await;
    let mut a = TcpStream::connect(w.addr()).await.unwrap();
    let req = send_req(
        "slow0001",
        &w.uri("nosuchsess"),
        "msrp://127.0.0.2:9/x;tcp",
        "1-0/0",
        None,
        '$',
    );
    let start = Instant::now();
    let mut sent = 0;
    // One byte every 100 ms (a bounded loop: at most 100 bytes, 10 s).
    for b in req.iter().take(100) {
        if a.write_all(std::slice::from_ref(b)).await.is_err() {
            break;
        }
        sent += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if start.elapsed() > BIND_TIMEOUT + Duration::from_secs(2) {
            break;
        }
        if sent % 10 == 0 {
            w.assert_bounded("slow headers").await;
        }
    }
    assert!(
        closed_within(&mut a, Duration::from_secs(3)).await,
        "still open"
    );
    let took = start.elapsed();
    assert!(
        took >= BIND_TIMEOUT - Duration::from_millis(200),
        "{took:?}"
    );
    assert!(took <= BIND_TIMEOUT + Duration::from_secs(4), "{took:?}");
    w.legit_roundtrip("after slow headers").await;
    w.assert_bounded("after slow headers").await;
}

#[tokio::test]
async fn endless_header_block_closes_the_connection() {
    let mut w = world().await;
    let a = TcpStream::connect(w.addr()).await.unwrap();
    let (rd, mut wr) = a.into_split();
    let (eof, reader) = read_all_background(rd);
    wr.write_all(b"MSRP endless1 SEND\r\n").await.unwrap();
    let line = format!("X-Junk: {}\r\n", "j".repeat(1000));
    let mut written = 0usize;
    // Bounded: stop at 8 MiB, the first write error, or the server's FIN.
    while written < 8 << 20 && !eof.load(Ordering::SeqCst) {
        match timeout(Duration::from_secs(2), wr.write_all(line.as_bytes())).await {
            Ok(Ok(())) => written += line.len(),
            _ => break,
        }
    }
    let r = timeout(STEP, reader).await.unwrap().unwrap();
    assert!(eof.load(Ordering::SeqCst), "not closed");
    // No complete head, so no paths to answer to: just the close.
    assert!(r.is_empty(), "{r:?}");
    // The head limit is 16 KiB; socket buffers absorb a few MiB more at most.
    assert!(
        written < 8 << 20,
        "wrote {written} bytes without being cut off"
    );
    w.assert_bounded("endless header").await;
    w.legit_roundtrip("after endless header").await;
}

#[tokio::test]
async fn endless_body_gets_413_and_close_while_the_legitimate_session_works() {
    let mut w = world().await;
    let evil = w
        .attacker_session("evilsess01", "msrp://127.0.0.1:9/attacker1;tcp")
        .await;
    let evil = drain(evil);
    let a = TcpStream::connect(w.addr()).await.unwrap();
    let (rd, mut a) = a.into_split();
    let (eof, reader) = read_all_background(rd);
    let to = w.uri("evilsess01");
    let from = "msrp://127.0.0.1:9/attacker1;tcp";
    a.write_all(&send_req("bind0001", &to, from, "1-0/0", None, '$'))
        .await
        .unwrap();
    let head = format!(
        "MSRP endless2 SEND\r\nTo-Path: {to}\r\nFrom-Path: {from}\r\nMessage-ID: bigmessage\r\n\
         Byte-Range: 1-*/*\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    a.write_all(head.as_bytes()).await.unwrap();
    let block = vec![b'z'; 16 * 1024];
    let mut written = 0usize;
    let mut during = false;
    while written < 4 << 20 && !eof.load(Ordering::SeqCst) {
        match timeout(Duration::from_secs(2), a.write_all(&block)).await {
            Ok(Ok(())) => written += block.len(),
            _ => break,
        }
        if !during && written > 64 * 1024 {
            // During the attack.
            w.legit_roundtrip("during endless body").await;
            during = true;
        }
    }
    let r = timeout(STEP, reader).await.unwrap().unwrap();
    // RFC 4975 §10.5 (our chunk limit), then the connection closes.
    assert_eq!(r, vec![("bind0001".into(), 200), ("endless2".into(), 413)]);
    assert!(eof.load(Ordering::SeqCst));
    let seen = evil.await.unwrap();
    assert!(
        seen.iter()
            .any(|n| matches!(n, SessionNotice::IncomingAborted { .. })),
        "{seen:?}"
    );
    assert!(
        matches!(seen.last(), Some(SessionNotice::Closed(_))),
        "{seen:?}"
    );
    w.assert_bounded("endless body").await;
    w.legit_roundtrip("after endless body").await;
}

#[tokio::test]
async fn ten_gib_byte_range_claim_gets_413_and_nothing_is_reserved() {
    let mut w = world().await;
    let evil = w
        .attacker_session("evilsess02", "msrp://127.0.0.1:9/attacker2;tcp")
        .await;
    let evil = drain(evil);
    let mut a = TcpStream::connect(w.addr()).await.unwrap();
    let to = w.uri("evilsess02");
    let from = "msrp://127.0.0.1:9/attacker2;tcp";
    let ten_gib = 10u64 << 30;
    let mut wire = send_req("bind0002", &to, from, "1-0/0", None, '$');
    wire.extend(send_req(
        "huge0001",
        &to,
        from,
        &format!("1-100/{ten_gib}"),
        Some(&[b'h'; 100]),
        '+',
    ));
    // The same claim without a total in the range, then a chunk starting near the end.
    wire.extend(send_req(
        "huge0002",
        &to,
        from,
        &format!("{}-*/*", ten_gib - 99),
        Some(&[b'h'; 100]),
        '$',
    ));
    a.write_all(&wire).await.unwrap();
    let (r, _) = responses(&mut a, 3, STEP).await;
    // RFC 4975 §8.6, §10.5: above our max-size: 413.
    assert_eq!(
        r,
        vec![
            ("bind0002".into(), 200),
            ("huge0001".into(), 413),
            ("huge0002".into(), 413)
        ]
    );
    w.assert_bounded("10 GiB claim").await;
    w.legit_roundtrip("after 10 GiB claim").await;
    // The attacker's session is still usable for proper messages (a 413 is per message).
    a.write_all(&send_req("fine0001", &to, from, "1-2/2", Some(b"ok"), '$'))
        .await
        .unwrap();
    let (r, _) = responses(&mut a, 1, STEP).await;
    assert_eq!(r, vec![("fine0001".into(), 200)]);
    drop(a);
    let _ = evil.await;
}

#[tokio::test]
async fn thousands_of_tiny_chunks_in_order_complete_and_scattered_ones_get_413() {
    let mut w = world().await;
    let evil = w
        .attacker_session("evilsess03", "msrp://127.0.0.1:9/attacker3;tcp")
        .await;
    let evil = drain(evil);
    let mut a = TcpStream::connect(w.addr()).await.unwrap();
    let to = w.uri("evilsess03");
    let from = "msrp://127.0.0.1:9/attacker3;tcp";
    a.write_all(&send_req("bind0003", &to, from, "1-0/0", None, '$'))
        .await
        .unwrap();
    assert_eq!(
        responses(&mut a, 1, STEP).await.0,
        vec![("bind0003".into(), 200)]
    );
    // 3000 one-byte chunks of one message, in order, written without waiting.
    const N: usize = 3000;
    let mut wire = Vec::new();
    for i in 1..=N {
        let flag = if i == N { '$' } else { '+' };
        let mut m = send_req(
            &format!("tiny{i:05}"),
            &to,
            from,
            &format!("{i}-{i}/{N}"),
            Some(b"t"),
            flag,
        );
        m = String::from_utf8(m)
            .unwrap()
            .replace("msg-tiny", "msg-one")
            .replace(&format!("msg-one{i:05}"), "msg-onemessage")
            .into_bytes();
        wire.extend(m);
    }
    let writer = {
        let (mut rd, mut wr) = a.into_split();
        let t = tokio::spawn(async move { wr.write_all(&wire).await.map(|_| wr) });
        let mut got = 0;
        let mut ok = 0;
        let mut text = String::new();
        let mut buf = vec![0u8; 64 * 1024];
        while got < N {
            let k = timeout(STEP, rd.read(&mut buf)).await.unwrap().unwrap();
            assert!(k > 0, "closed after {got} responses");
            text.push_str(&String::from_utf8_lossy(&buf[..k]));
            let lines: Vec<&str> = text
                .split("\r\n")
                .filter(|l| l.starts_with("MSRP tiny"))
                .collect();
            got = lines.len();
            ok = lines.iter().filter(|l| l.contains(" 200")).count();
        }
        assert_eq!(ok, N);
        let wr = t.await.unwrap().unwrap();
        rd.reunite(wr).unwrap()
    };
    let mut a = writer;
    w.assert_bounded("tiny chunks").await;
    w.legit_roundtrip("after tiny chunks").await;
    // Scattered one-byte chunks (every other byte) of another message: after
    // MAX_INTERVALS disjoint pieces the message is refused (413, RFC 4975 §10.5).
    let mut wire = Vec::new();
    for k in 0..(MAX_INTERVALS + 5) {
        let pos = 1 + 2 * k;
        wire.extend(
            String::from_utf8(send_req(
                &format!("scat{k:04}"),
                &to,
                from,
                &format!("{pos}-{pos}/100000"),
                Some(b"s"),
                '+',
            ))
            .unwrap()
            .replace(&format!("msg-scat{k:04}"), "msg-scattered")
            .into_bytes(),
        );
    }
    a.write_all(&wire).await.unwrap();
    let (r, _) = responses(&mut a, MAX_INTERVALS + 5, STEP).await;
    assert_eq!(r.len(), MAX_INTERVALS + 5);
    assert!(r[..MAX_INTERVALS].iter().all(|(_, c)| *c == 200), "{r:?}");
    assert!(r[MAX_INTERVALS..].iter().all(|(_, c)| *c == 413), "{r:?}");
    drop(a);
    let seen = evil.await.unwrap();
    assert!(
        seen.iter().any(
            |n| matches!(n, SessionNotice::IncomingComplete { size, .. } if *size == N as u64)
        ),
        "{seen:?}"
    );
    w.assert_bounded("scattered chunks").await;
}

#[tokio::test]
async fn pipelined_requests_without_reading_responses_are_throttled_and_bounded() {
    let mut w = world().await;
    let evil = w
        .attacker_session("evilsess04", "msrp://127.0.0.1:9/attacker4;tcp")
        .await;
    let evil = drain(evil);
    let a = TcpStream::connect(w.addr()).await.unwrap();
    let to = w.uri("evilsess04");
    let from = "msrp://127.0.0.1:9/attacker4;tcp";
    let (_rd, mut wr) = a.into_split(); // never read
    wr.write_all(&send_req("bind0004", &to, from, "1-0/0", None, '$'))
        .await
        .unwrap();
    // Up to 64 MiB of small SENDs (each answered 200 with ~150 bytes); the server must stop
    // reading once the unread responses pass MAX_PENDING_OUTPUT.
    let mut written = 0usize;
    let mut blocked = false;
    let mut batch = Vec::new();
    for i in 0..2000 {
        batch.extend(send_req(
            &format!("pipe{i:05}"),
            &to,
            from,
            "1-1/1",
            Some(b"p"),
            '$',
        ));
    }
    let start = Instant::now();
    while written < 64 << 20 && start.elapsed() < Duration::from_secs(20) {
        match timeout(Duration::from_secs(2), wr.write_all(&batch)).await {
            Ok(Ok(())) => written += batch.len(),
            Ok(Err(_)) => break,
            Err(_) => {
                blocked = true;
                break;
            }
        }
        w.assert_bounded("pipelining").await;
    }
    assert!(
        blocked,
        "the server read {written} bytes of requests without us reading"
    );
    // Throttled, not dropped: the connection is still there.
    assert_eq!(w.server.stats().await.unwrap().connections, 2);
    w.assert_bounded("pipelining, blocked").await;
    w.legit_roundtrip("during pipelining").await;
    let st = w.server.stats().await.unwrap();
    assert!(
        st.core_buffered <= MAX_PENDING_OUTPUT + 16 * 1024 + 2 * 96 * 1024,
        "{st:?}"
    );
    drop(wr);
    drop(_rd);
    let _ = evil.await;
}

#[tokio::test]
async fn connection_flood_from_one_address_is_limited() {
    let mut w = world().await;
    // The attacker comes from 127.0.0.2; the legitimate client from 127.0.0.1.
    let mut conns = Vec::new();
    for _ in 0..30 {
        conns.push(connect_from("127.0.0.2", w.addr()).await);
    }
    // When does each connection close? (All watched at once, so the measure does not
    // depend on the order or on the machine's load.)
    let start = tokio::time::Instant::now();
    let watchers: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                closed_within(&mut c, BIND_TIMEOUT + Duration::from_secs(4))
                    .await
                    .then(|| start.elapsed())
            })
        })
        .collect();
    w.legit_roundtrip("during flood").await;
    w.assert_bounded("flood").await;
    let st = w.server.stats().await.unwrap();
    assert!(st.connections <= 1 + MAX_PER_ADDRESS, "{st:?}");
    let mut times = Vec::new();
    for t in watchers {
        times.push(
            t.await
                .unwrap()
                .expect("every flood connection is closed in the end"),
        );
    }
    // Refused at once vs. closed by the unbound timeout (the kept ones never bind).
    let early = times.iter().filter(|t| **t < BIND_TIMEOUT / 2).count();
    let late = times
        .iter()
        .filter(|t| **t >= BIND_TIMEOUT - Duration::from_millis(200))
        .count();
    assert_eq!(early, 30 - MAX_PER_ADDRESS, "{times:?}");
    assert_eq!(late, MAX_PER_ADDRESS, "{times:?}");
    let st = w.server.stats().await.unwrap();
    assert_eq!(st.connections, 1, "{st:?}");
    // Slots are free again.
    let mut again = connect_from("127.0.0.2", w.addr()).await;
    assert!(!closed_within(&mut again, Duration::from_millis(300)).await);
    w.legit_roundtrip("after flood").await;
}

#[tokio::test]
async fn sends_for_other_sessions_are_refused_and_do_not_hijack() {
    let mut w = world().await;
    // The legitimate session's URI on the server and its peer's URI.
    let plan = w.ss.plan().unwrap().clone();
    let victim = plan.local_uri.clone();
    let victim_peer = plan.remote_uri.to_string();
    let mut a = TcpStream::connect(w.addr()).await.unwrap();
    // By session id, with the attacker's own From-Path and with the victim peer's (spoofed):
    // the session is bound to another connection: 506 (RFC 4975 §5.4).
    let mut wire = send_req(
        "hij00001",
        &victim,
        "msrp://127.0.0.1:9/mallory;tcp",
        "1-5/5",
        Some(b"evil!"),
        '$',
    );
    wire.extend(send_req(
        "hij00002",
        &victim,
        &victim_peer,
        "1-5/5",
        Some(b"evil!"),
        '$',
    ));
    // An unknown session id: 481.
    wire.extend(send_req(
        "hij00003",
        &w.uri("guessedsid"),
        &victim_peer,
        "1-5/5",
        Some(b"evil!"),
        '$',
    ));
    a.write_all(&wire).await.unwrap();
    let (r, _) = responses(&mut a, 3, STEP).await;
    assert_eq!(
        r,
        vec![
            ("hij00001".into(), 506),
            ("hij00002".into(), 506),
            ("hij00003".into(), 481)
        ]
    );
    // By From-Path, before the rightful peer binds: a waiting session gets 481 for a
    // stranger and stays bindable.
    let waiting = w
        .attacker_session("waitsess01", "msrp://127.0.0.1:9/rightful;tcp")
        .await;
    let waiting = drain(waiting);
    a.write_all(&send_req(
        "hij00004",
        &w.uri("waitsess01"),
        "msrp://127.0.0.1:9/mallory;tcp",
        "1-0/0",
        None,
        '$',
    ))
    .await
    .unwrap();
    assert_eq!(
        responses(&mut a, 1, STEP).await.0,
        vec![("hij00004".into(), 481)]
    );
    let mut b = TcpStream::connect(w.addr()).await.unwrap();
    b.write_all(&send_req(
        "ok000001",
        &w.uri("waitsess01"),
        "msrp://127.0.0.1:9/rightful;tcp",
        "1-0/0",
        None,
        '$',
    ))
    .await
    .unwrap();
    assert_eq!(
        responses(&mut b, 1, STEP).await.0,
        vec![("ok000001".into(), 200)]
    );
    // Nothing of the attacker reached the legitimate session: its next message is ours.
    w.legit_roundtrip("after hijack attempts").await;
    w.assert_bounded("hijack").await;
    drop((a, b));
    let _ = waiting.await;
}

#[tokio::test]
async fn reports_for_unknown_messages_are_ignored_without_response() {
    let mut w = world().await;
    let evil = w
        .attacker_session("evilsess05", "msrp://127.0.0.1:9/attacker5;tcp")
        .await;
    let evil = drain(evil);
    let mut a = TcpStream::connect(w.addr()).await.unwrap();
    let to = w.uri("evilsess05");
    let from = "msrp://127.0.0.1:9/attacker5;tcp";
    let mut wire = send_req("bind0005", &to, from, "1-0/0", None, '$');
    for i in 0..500 {
        // RFC 4975 §7.1.2: REPORTs get no response; unknown Message-IDs are ignored.
        wire.extend(
            format!(
                "MSRP rep{i:05} REPORT\r\nTo-Path: {to}\r\nFrom-Path: {from}\r\nMessage-ID: nosuch{i}\r\n\
                 Byte-Range: 1-10/10\r\nStatus: 000 200 OK\r\n-------rep{i:05}$\r\n"
            )
            .into_bytes(),
        );
    }
    // Also for a session that does not exist, on the same connection.
    wire.extend(
        format!(
            "MSRP rep99999 REPORT\r\nTo-Path: {}\r\nFrom-Path: {from}\r\nMessage-ID: unknown1\r\n\
             Byte-Range: 1-1/1\r\nStatus: 000 481 Gone\r\n-------rep99999$\r\n",
            w.uri("nosuchsess")
        )
        .into_bytes(),
    );
    wire.extend(send_req("after001", &to, from, "1-2/2", Some(b"ok"), '$'));
    a.write_all(&wire).await.unwrap();
    // Exactly two responses: the binding SEND's and the last SEND's; none for the REPORTs.
    let (r, closed) = responses(&mut a, 3, Duration::from_secs(2)).await;
    assert!(!closed);
    assert_eq!(r, vec![("bind0005".into(), 200), ("after001".into(), 200)]);
    w.legit_roundtrip("after reports").await;
    w.assert_bounded("reports").await;
    drop(a);
    let seen = evil.await.unwrap();
    assert!(
        seen.iter()
            .any(|n| matches!(n, SessionNotice::IncomingComplete { size: 2, .. })),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|n| matches!(
            n,
            SessionNotice::Failed(_) | SessionNotice::Delivered { .. }
        )),
        "{seen:?}"
    );
    let _ = &w.client;
}

#[tokio::test]
async fn tls_hijack_with_another_certificate_is_refused_while_the_bound_session_works() {
    use msrp::tls::{client_config, connect_tls, PeerAuth, TlsError, TlsIdentity};
    use msrp::TlsTransport;
    let tls_ep = |id: TlsIdentity| async move {
        let t =
            Arc::new(TlsTransport::new(id, None).with_handshake_timeout(Duration::from_secs(5)));
        let ep = MsrpEndpoint::bind(Options::tls("127.0.0.1:0".parse().unwrap(), t.clone()))
            .await
            .unwrap();
        (ep, t)
    };
    let (a, _ta) = tls_ep(TlsIdentity::generate().unwrap()).await;
    let (b, tb) = tls_ep(TlsIdentity::generate().unwrap()).await;
    // A is behind a NAT: it connects to B (the TLS server, pinning A's fingerprint).
    let mut ca = a.local_config();
    ca.reachability = Reachability::BehindNat;
    let offered = a.create_offer(&ca).await.unwrap();
    let (answer, mut sb) = b
        .answer_offer(
            &SdpOffer::parse(&offered.offer().to_string()).unwrap(),
            &b.local_config(),
        )
        .await
        .unwrap();
    let mut sa = a
        .accept_answer(offered, &SdpAnswer::parse(&answer.to_string()).unwrap())
        .await
        .unwrap();
    timeout(STEP, sa.connected()).await.unwrap().unwrap();
    timeout(STEP, sb.connected()).await.unwrap().unwrap();
    let victim = sb.plan().unwrap().local_uri.clone();
    let a_uri = sb.plan().unwrap().remote_uri.to_string();
    let mut refused = tb.refusals();
    // Mallory has B's fingerprint from the SDP but only her own certificate, and sends a SEND
    // for the bound session with A's From-Path.
    for i in 0..3 {
        let m_id = TlsIdentity::generate().unwrap();
        let cfg = client_config(
            Some(&m_id),
            PeerAuth::Fingerprints(tb.identity().fingerprints().to_vec()),
        )
        .unwrap();
        let tcp = TcpStream::connect(b.local_addr()).await.unwrap();
        // TLS 1.3: the client may finish before the server has checked its certificate.
        if let Ok(mut s) = connect_tls(tcp, "127.0.0.1", cfg, STEP).await {
            let _ = s
                .write_all(&send_req(
                    &format!("tlshij{i:02}"),
                    &victim,
                    &a_uri,
                    "1-5/5",
                    Some(b"evil!"),
                    '$',
                ))
                .await;
            let mut buf = [0u8; 256];
            let r = timeout(STEP, s.read(&mut buf)).await.expect("no hang");
            assert!(
                matches!(r, Err(_) | Ok(0)),
                "the hijacker got an answer: {r:?}"
            );
        }
        let e = timeout(STEP, refused.recv()).await.unwrap().unwrap().error;
        match &*e {
            TlsError::FingerprintMismatch { received, .. } => {
                assert_eq!(received, &m_id.fingerprint().to_string())
            }
            e => panic!("expected a fingerprint mismatch, got {e}"),
        }
    }
    // The bound session carries messages both ways; nothing of Mallory reached it.
    let out = sa.send_text("still ours").await.unwrap();
    assert_eq!(next_text(&mut sb).await, "still ours");
    timeout(STEP, out.outcome()).await.unwrap().unwrap();
    let out = sb.send_text("and back").await.unwrap();
    assert_eq!(next_text(&mut sa).await, "and back");
    timeout(STEP, out.outcome()).await.unwrap().unwrap();
    let st = b.stats().await.unwrap();
    assert_eq!(st.connections, 1, "{st:?}");
    assert!(st.total_buffered() <= bound(1), "{st:?}");
}
