//! The endpoint's configured limits (docs/limits.md), on the sans-IO core: connections per
//! address, responses a peer does not read, chunk size (413), header block, unbound
//! connections. Each test also checks what the endpoint holds (`buffered_bytes`).

#[path = "common/pair.rs"]
mod pair;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use msrp_proto::endpoint::{
    hard_output_limit, Endpoint, EndpointConfig, Event, SessionHandle, SessionRole, SessionState,
};
use msrp_proto::message::{Limits, StatusCode};
use msrp_proto::session::{SessionConfig, SessionEvent};
use pair::{seeded_rng, Pair, Who};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn events(ep: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

/// A passive session of B (the peer is A) on a fresh endpoint with `cfg`.
fn passive(cfg: EndpointConfig, now: Instant) -> (Endpoint, SessionHandle) {
    let mut ep = Endpoint::new(cfg, seeded_rng(7));
    let s = ep
        .add_session(
            Pair::params(Who::B, SessionRole::Passive, SessionConfig::default()),
            now,
        )
        .unwrap();
    (ep, s)
}

fn send(tid: &str, to: &str, from: &str, body: Option<&str>, flag: char) -> Vec<u8> {
    let mut m = format!(
        "MSRP {tid} SEND\r\nTo-Path: {to}\r\nFrom-Path: {from}\r\nMessage-ID: m{tid}\r\n\
         Byte-Range: 1-*/*\r\n"
    );
    if let Some(b) = body {
        m.push_str(&format!("Content-Type: text/plain\r\n\r\n{b}\r\n"));
    }
    m.push_str(&format!("-------{tid}{flag}\r\n"));
    m.into_bytes()
}

fn b_uri() -> String {
    Pair::uri(Who::B).to_string()
}

fn a_uri() -> String {
    Pair::uri(Who::A).to_string()
}

fn all_output(ep: &mut Endpoint, now: Instant) -> String {
    let mut out = Vec::new();
    while let Some(t) = ep.poll_transmit(now) {
        out.extend_from_slice(&t.data);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn connections_per_address_are_limited_and_freed_on_close() {
    let now = Instant::now();
    let cfg = EndpointConfig {
        max_connections_per_address: 2,
        ..EndpointConfig::default()
    };
    let mut ep = Endpoint::new(cfg, seeded_rng(1));
    let a = ep.handle_accepted_from(ip("192.0.2.9"), now).unwrap();
    let _b = ep.handle_accepted_from(ip("192.0.2.9"), now).unwrap();
    let refused = ep.handle_accepted_from(ip("192.0.2.9"), now).unwrap_err();
    assert!(refused.contains("limit 2"), "{refused}");
    // Another address is not affected.
    ep.handle_accepted_from(ip("198.51.100.1"), now).unwrap();
    // A closed connection frees its slot.
    ep.handle_closed(a, "closed by peer");
    ep.handle_accepted_from(ip("192.0.2.9"), now).unwrap();
    assert_eq!(ep.connections().count(), 3);
}

#[test]
fn peer_that_does_not_read_responses_is_not_read_then_closed() {
    let now = Instant::now();
    let cfg = EndpointConfig {
        max_pending_output: 8 * 1024,
        ..EndpointConfig::default()
    };
    let (mut ep, s) = passive(cfg, now);
    let c = ep.handle_accepted_from(ip("192.0.2.9"), now).unwrap();
    ep.handle_input(c, &send("bind0001", &b_uri(), &a_uri(), None, '$'), now);
    assert_eq!(ep.session_state(s), Some(SessionState::Connected));
    // Pipelined SENDs, responses never taken (poll_transmit not called: the peer does not
    // read, so the driver's writer is full).
    let mut n = 0;
    while ep.wants_input(c) && n < 10_000 {
        n += 1;
        let tid = format!("tid{n:05}");
        ep.handle_input(c, &send(&tid, &b_uri(), &a_uri(), Some("x"), '$'), now);
    }
    assert!(!ep.wants_input(c), "still wants input after {n} requests");
    let held = ep.buffered_bytes();
    assert!(held > 8 * 1024 && held < 9 * 1024, "{held} bytes held");
    // A driver that keeps reading anyway: the connection is closed at the hard limit.
    for i in 0..10_000 {
        if ep.connection(c).is_none() {
            break;
        }
        let tid = format!("more{i:05}");
        ep.handle_input(c, &send(&tid, &b_uri(), &a_uri(), Some("x"), '$'), now);
        assert!(ep.buffered_bytes() <= hard_output_limit(8 * 1024) + 1024);
    }
    assert!(ep.connection(c).is_none(), "connection still open");
    let ev = events(&mut ep);
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::CloseConnection { reason, .. }
        if reason.contains("does not read our responses"))));
    assert_eq!(ep.buffered_bytes(), 0);
}

#[test]
fn chunk_above_the_limit_gets_413_then_the_connection_closes() {
    let now = Instant::now();
    let cfg = EndpointConfig {
        limits: Limits {
            max_body_bytes: 1000,
            ..Limits::default()
        },
        ..EndpointConfig::default()
    };
    let (mut ep, s) = passive(cfg, now);
    let c = ep.handle_accepted_from(ip("192.0.2.9"), now).unwrap();
    ep.handle_input(c, &send("bind0001", &b_uri(), &a_uri(), None, '$'), now);
    let _ = all_output(&mut ep, now);
    let _ = events(&mut ep);
    // An endless body: 100 KiB so far, no end-line.
    let head = format!(
        "MSRP big00001 SEND\r\nTo-Path: {}\r\nFrom-Path: {}\r\nMessage-ID: big1\r\n\
         Byte-Range: 1-*/*\r\nContent-Type: text/plain\r\n\r\n",
        b_uri(),
        a_uri()
    );
    ep.handle_input(c, head.as_bytes(), now);
    for _ in 0..100 {
        ep.handle_input(c, &[b'z'; 1024], now);
        assert!(ep.buffered_bytes() < 2048);
    }
    // RFC 4975 §10.5: 413, on the same connection (§7.2), then closed.
    let out = all_output(&mut ep, now);
    assert!(out.starts_with("MSRP big00001 413"), "{out}");
    assert!(ep.connection(c).is_none());
    let ev = events(&mut ep);
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::RequestRejected {
            status: StatusCode::MESSAGE_TOO_LARGE,
            ..
        }
    )));
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Session {
            session,
            event: SessionEvent::IncomingAborted { .. }
        } if *session == s
    )));
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::SessionClosed { session, .. } if *session == s)));
}

#[test]
fn endless_header_block_closes_without_holding_more_than_the_limit() {
    let now = Instant::now();
    let (mut ep, s) = passive(EndpointConfig::default(), now);
    let c = ep.handle_accepted_from(ip("192.0.2.9"), now).unwrap();
    ep.handle_input(c, b"MSRP abcd SEND\r\n", now);
    let mut fed = 0;
    while ep.connection(c).is_some() && fed < 1 << 20 {
        ep.handle_input(c, b"X-Junk: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", now);
        fed += 40;
        assert!(ep.buffered_bytes() <= Limits::default().max_head_bytes + 64);
    }
    assert!(ep.connection(c).is_none(), "open after {fed} bytes");
    assert!(fed <= Limits::default().max_head_bytes + 64, "{fed}");
    // The session waiting for its peer is not affected.
    assert_eq!(ep.session_state(s), Some(SessionState::Waiting));
}

#[test]
fn unbound_connection_is_closed_after_the_bind_timeout_even_while_trickling() {
    let now = Instant::now();
    let cfg = EndpointConfig {
        bind_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(60),
        ..EndpointConfig::default()
    };
    let (mut ep, s) = passive(cfg, now);
    let c = ep.handle_accepted_from(ip("192.0.2.9"), now).unwrap();
    // One byte per second of a SEND that would bind the session.
    let bytes = send("slow0001", &b_uri(), &a_uri(), None, '$');
    let mut t = now;
    for b in bytes.iter().take(10) {
        t += Duration::from_secs(1);
        if ep.poll_timeout().is_some_and(|d| d <= t) {
            ep.handle_timeout(t);
        }
        if ep.connection(c).is_none() {
            break;
        }
        ep.handle_input(c, std::slice::from_ref(b), t);
    }
    assert!(ep.connection(c).is_none());
    let ev = events(&mut ep);
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::CloseConnection { reason, .. }
        if reason.contains("no session bound within 2 s"))));
    // The session still waits for its rightful peer.
    assert_eq!(ep.session_state(s), Some(SessionState::Waiting));
}

#[test]
fn closing_a_connection_whose_peer_does_not_read_ends_after_the_grace_without_busy_looping() {
    // Regression: the bind timeout closed gracefully (responses first); with a peer that does
    // not read, the responses never left, the connection stayed forever and poll_timeout
    // kept returning the past bind deadline (the driver spun).
    let now = Instant::now();
    let cfg = EndpointConfig {
        bind_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(600),
        ..EndpointConfig::default()
    };
    let (mut ep, _s) = passive(cfg, now);
    let c = ep.handle_accepted_from(ip("192.0.2.9"), now).unwrap();
    let foreign = "msrp://192.0.2.2:2856/notasession;tcp";
    ep.handle_input(c, &send("tid00001", foreign, &a_uri(), None, '$'), now);
    assert!(ep.connection(c).unwrap().pending_control() > 0);
    // The driver cannot write (poll_transmit not called) and time passes.
    let mut t = now;
    let mut wakeups = 0;
    while ep.connection(c).is_some() && wakeups < 100 {
        let d = ep
            .poll_timeout()
            .expect("a deadline while the connection lives");
        assert!(d > t || wakeups == 0, "deadline in the past: busy loop");
        t = d.max(t);
        ep.handle_timeout(t);
        wakeups += 1;
    }
    assert!(ep.connection(c).is_none());
    assert!(wakeups <= 3, "{wakeups} wake-ups");
    assert!(t - now <= Duration::from_secs(2) + msrp_proto::endpoint::CLOSE_GRACE);
    let ev = events(&mut ep);
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::CloseConnection { reason, .. }
        if reason.contains("not read within"))));
}
