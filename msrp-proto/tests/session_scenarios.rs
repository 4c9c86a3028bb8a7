//! Scenario tests of the sans-IO endpoint: two endpoints on the in-memory `Pair` harness,
//! fake time (RFC 4975 §5.4, §7; RFC 6135 §4.2.2).

#[path = "common/pair.rs"]
mod pair;

use std::time::Duration;

use msrp_proto::endpoint::{CloseReason, EndpointConfig, Event, SessionRole, SessionState};
use msrp_proto::message::{
    parse_messages, ByteRange, Continuation, FailureReport, Limits, Message, MessageHead, Method,
    StatusCode,
};
use msrp_proto::session::{MessageSpec, RecvPolicy, SessionConfig, SessionEvent};
use msrp_proto::uri::MsrpUri;
use pair::{Pair, Who};

fn cfg(chunk: usize) -> SessionConfig {
    SessionConfig {
        max_chunk_size: chunk,
        send_window: 2 * chunk,
        ..SessionConfig::default()
    }
}

fn connected(p: &Pair, w: Who, s: msrp_proto::endpoint::SessionHandle) -> bool {
    p.saw(
        w,
        |e| matches!(e, Event::SessionConnected { session, .. } if *session == s),
    )
}

fn complete(p: &Pair, w: Who, s: msrp_proto::endpoint::SessionHandle, id: &str) -> Option<u64> {
    p.session_events(w, s).into_iter().find_map(|e| match e {
        SessionEvent::IncomingComplete { message_id, size } if message_id == id => Some(size),
        _ => None,
    })
}

/// A SEND as a scripted peer would write it.
#[allow(clippy::too_many_arguments)]
fn raw_send(
    tid: &str,
    to: &MsrpUri,
    from: &MsrpUri,
    mid: &str,
    range: Option<ByteRange>,
    body: Option<&[u8]>,
    flag: Continuation,
    fr: Option<FailureReport>,
) -> Vec<u8> {
    let mut h = MessageHead::request(tid, Method::Send).unwrap();
    h.push_to_path(std::slice::from_ref(to)).unwrap();
    h.push_from_path(std::slice::from_ref(from)).unwrap();
    h.push_message_id(mid).unwrap();
    if let Some(r) = range {
        h.push_byte_range(r).unwrap();
    }
    if let Some(fr) = fr {
        h.push_failure_report(fr).unwrap();
    }
    if body.is_some() {
        h.push_content_type("text/plain").unwrap();
    }
    Message {
        head: h,
        body: body.map(<[u8]>::to_vec),
        continuation: flag,
    }
    .encode()
    .unwrap()
}

fn responses(bytes: &[u8]) -> Vec<(String, u16)> {
    parse_messages(bytes, Limits::default())
        .unwrap()
        .into_iter()
        .filter(|m| !m.head.is_request())
        .map(|m| {
            (
                m.head.transaction_id().to_string(),
                m.head.status_code().unwrap().0,
            )
        })
        .collect()
}

fn range(start: u64, end: u64, total: u64) -> Option<ByteRange> {
    Some(ByteRange {
        start,
        end: Some(end),
        total: Some(total),
    })
}

#[test]
fn every_role_combination_connects_and_exchanges_messages() {
    for a_role in [SessionRole::Active, SessionRole::Passive] {
        let mut p = Pair::new(EndpointConfig::default());
        let (sa, sb) = p.session(a_role, cfg(1024));
        p.drive();
        assert!(connected(&p, Who::A, sa), "{a_role:?}: A connected");
        assert!(connected(&p, Who::B, sb), "{a_role:?}: B connected");
        // exactly one side asked to connect: the active one
        let connects = |w| {
            let side = if w == Who::A { &p.a } else { &p.b };
            side.events
                .iter()
                .filter(|e| matches!(e, Event::Connect { .. }))
                .count()
        };
        let (ca, cb) = (connects(Who::A), connects(Who::B));
        assert_eq!(
            (ca, cb),
            if a_role == SessionRole::Active {
                (1, 0)
            } else {
                (0, 1)
            }
        );
        // the binding SEND is not an application message
        assert!(p.session_events(Who::A, sa).is_empty() && p.session_events(Who::B, sb).is_empty());
        let m1 = p.send_bytes(Who::A, sa, "text/plain", b"hello from A", |s| s);
        let m2 = p.send_bytes(Who::B, sb, "text/plain", b"hello from B", |s| s);
        p.drive();
        assert_eq!(p.received_body(Who::B, sb, &m1), b"hello from A");
        assert_eq!(p.received_body(Who::A, sa, &m2), b"hello from B");
        assert!(p
            .session_events(Who::A, sa)
            .contains(&SessionEvent::MessageSent { message_id: m1 }));
        assert!(p
            .session_events(Who::B, sb)
            .contains(&SessionEvent::MessageSent { message_id: m2 }));
    }
}

#[test]
fn active_side_sends_bodiless_send_immediately() {
    let mut p = Pair::new(EndpointConfig::default());
    let (sa, _sb) = p.session(SessionRole::Active, cfg(1024));
    p.drive();
    let c = p.a.ep.session_connection(sa).unwrap();
    let first = parse_messages(&p.a.sent[&c], Limits::default()).unwrap();
    // RFC 4975 §5.4 / §7.1: the first request is a SEND, here bodiless (no Content-Type).
    assert_eq!(first[0].head.method(), Some(&Method::Send));
    assert_eq!(first[0].body, None);
    assert_eq!(
        first[0].head.byte_range().map(|r| r.to_string()).as_deref(),
        Some("1-0/0")
    );
    assert_eq!(
        first[0].head.to_path(),
        vec![Pair::uri(Who::B)],
        "To-Path is the peer's URI"
    );
}

#[test]
fn cema_binds_by_session_id_only() {
    let mut p = Pair::new(EndpointConfig::default());
    let now = p.now;
    let mut pb = Pair::params(Who::B, SessionRole::Passive, cfg(1024));
    pb.match_session_id_only = true;
    // The peer's path as seen by B differs from what A writes (a middlebox rewrote it).
    pb.remote_uri = MsrpUri::parse("msrp://198.51.100.7:9999/alicesess01;tcp").unwrap();
    let sb = p.b.ep.add_session(pb, now).unwrap();
    let mut pa = Pair::params(Who::A, SessionRole::Active, cfg(1024));
    pa.match_session_id_only = true;
    let sa = p.a.ep.add_session(pa, now).unwrap();
    p.drive();
    assert!(connected(&p, Who::A, sa) && connected(&p, Who::B, sb));
}

#[test]
fn foreign_session_gets_481_and_connection_stays_unbound_then_rightful_send_binds() {
    let mut p = Pair::new(EndpointConfig::default());
    let now = p.now;
    let sb =
        p.b.ep
            .add_session(Pair::params(Who::B, SessionRole::Passive, cfg(1024)), now)
            .unwrap();
    let c = p.raw_connect(Who::B);
    let me = Pair::uri(Who::A);
    let foreign = MsrpUri::parse("msrp://192.0.2.2:2856/someoneelse;tcp").unwrap();
    p.raw_send(
        Who::B,
        c,
        &raw_send(
            "tid00001",
            &foreign,
            &me,
            "mid00001",
            range(1, 0, 0),
            None,
            Continuation::Complete,
            None,
        ),
    );
    assert_eq!(
        responses(&p.raw_take(c)),
        vec![("tid00001".to_string(), 481)]
    );
    assert_eq!(p.b.ep.session_state(sb), Some(SessionState::Waiting));
    assert!(p.saw(Who::B, |e| matches!(
        e,
        Event::RequestRejected {
            status: StatusCode::SESSION_DOES_NOT_EXIST,
            ..
        }
    )));
    // right session id but a From-Path that is not the peer from the SDP: 481 too
    let stranger = MsrpUri::parse("msrp://203.0.113.9:1234/mallory;tcp").unwrap();
    p.raw_send(
        Who::B,
        c,
        &raw_send(
            "tid00002",
            &Pair::uri(Who::B),
            &stranger,
            "mid00002",
            range(1, 0, 0),
            None,
            Continuation::Complete,
            None,
        ),
    );
    assert_eq!(
        responses(&p.raw_take(c)),
        vec![("tid00002".to_string(), 481)]
    );
    assert_eq!(p.b.ep.session_state(sb), Some(SessionState::Waiting));
    // the rightful SEND binds
    p.raw_send(
        Who::B,
        c,
        &raw_send(
            "tid00003",
            &Pair::uri(Who::B),
            &me,
            "mid00003",
            range(1, 0, 0),
            None,
            Continuation::Complete,
            None,
        ),
    );
    assert_eq!(
        responses(&p.raw_take(c)),
        vec![("tid00003".to_string(), 200)]
    );
    assert_eq!(p.b.ep.session_state(sb), Some(SessionState::Connected));
    assert_eq!(p.b.ep.session_connection(sb), Some(c));
    // a second connection for the bound session gets 506
    let c2 = p.raw_connect(Who::B);
    p.raw_send(
        Who::B,
        c2,
        &raw_send(
            "tid00004",
            &Pair::uri(Who::B),
            &me,
            "mid00004",
            range(1, 0, 0),
            None,
            Continuation::Complete,
            None,
        ),
    );
    assert_eq!(
        responses(&p.raw_take(c2)),
        vec![("tid00004".to_string(), 506)]
    );
    assert_eq!(
        p.b.ep.session_connection(sb),
        Some(c),
        "still bound to the first"
    );
    // and the unbound second connection is closed after the bind timeout
    p.advance(Duration::from_secs(31));
    assert!(p.saw(
        Who::B,
        |e| matches!(e, Event::CloseConnection { connection, .. } if *connection == c2)
    ));
    assert_eq!(p.b.ep.session_state(sb), Some(SessionState::Connected));
}

#[test]
fn large_message_does_not_block_small_one_and_bodies_match() {
    let mut p = Pair::new(EndpointConfig::default());
    let (sa, sb) = p.session(SessionRole::Active, cfg(4096));
    p.drive();
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let big_id =
        p.a.ep
            .send_message(
                sa,
                MessageSpec::new("application/octet-stream", Some(big.len() as u64)),
            )
            .unwrap();
    let mut off = p.a.ep.write(sa, &big_id, &big).unwrap();
    // a few chunks of the big one go out, then a small message is queued
    for _ in 0..3 {
        p.step();
        off += p.a.ep.write(sa, &big_id, &big[off..]).unwrap();
    }
    let small_id =
        p.a.ep
            .send_message(sa, MessageSpec::new("text/plain", Some(2)))
            .unwrap();
    p.a.ep.write(sa, &small_id, b"hi").unwrap();
    let mut small_done_at = None;
    for i in 0..100_000 {
        if off < big.len() {
            off += p.a.ep.write(sa, &big_id, &big[off..]).unwrap();
        }
        let progressed = p.step();
        if small_done_at.is_none() && complete(&p, Who::B, sb, &small_id).is_some() {
            small_done_at = Some(i);
            assert!(
                complete(&p, Who::B, sb, &big_id).is_none(),
                "the small message must arrive before the large one completes"
            );
        }
        if !progressed && off == big.len() {
            break;
        }
    }
    assert!(small_done_at.is_some());
    assert_eq!(complete(&p, Who::B, sb, &big_id), Some(big.len() as u64));
    assert_eq!(p.received_body(Who::B, sb, &big_id), big);
    // the large message went out in many chunks of at most 4096 bytes
    let c = p.a.ep.session_connection(sa).unwrap();
    let sent = parse_messages(
        &p.a.sent[&c],
        Limits {
            max_body_bytes: 1 << 20,
            ..Limits::default()
        },
    )
    .unwrap();
    let chunks: Vec<_> = sent
        .iter()
        .filter(|m| m.head.message_id() == Some(big_id.as_str()))
        .collect();
    assert!(chunks.len() >= 1_000_000 / 4096);
    assert!(chunks
        .iter()
        .all(|m| m.body.as_ref().unwrap().len() <= 4096));
    assert_eq!(chunks.last().unwrap().continuation, Continuation::Complete);
    // RFC 4975 §7.1.1: every chunk has a Byte-Range, chunks go in Byte-Range order, and all
    // carry the same report headers; chunks above 2048 bytes have "*" as range-end.
    let starts: Vec<u64> = chunks
        .iter()
        .map(|m| m.head.byte_range().unwrap().start)
        .collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(starts[0], 1);
    assert!(chunks
        .iter()
        .all(|m| m.head.success_report().is_none() && m.head.failure_report().is_none()));
    assert!(chunks
        .iter()
        .all(|m| m.body.as_ref().unwrap().len() <= 2048
            || m.head.byte_range().unwrap().end.is_none()));
    assert!(chunks
        .iter()
        .all(|m| m.head.byte_range().unwrap().total == Some(big.len() as u64)));
}

#[test]
fn reassembly_out_of_order_with_duplicates_and_gaps() {
    let mut p = Pair::new(EndpointConfig::default());
    let now = p.now;
    let sb =
        p.b.ep
            .add_session(Pair::params(Who::B, SessionRole::Passive, cfg(1024)), now)
            .unwrap();
    let c = p.raw_connect(Who::B);
    let (to, from) = (Pair::uri(Who::B), Pair::uri(Who::A));
    let msg = b"The quick brown fox jumps over the lazy dog";
    let n = msg.len() as u64;
    let send = |tid: &str, s: u64, e: u64, flag| {
        raw_send(
            tid,
            &to,
            &from,
            "reasm001",
            range(s, e, n),
            Some(&msg[s as usize - 1..e as usize]),
            flag,
            None,
        )
    };
    let mut wire = Vec::new();
    wire.extend(send("t0000001", 31, n, Continuation::Complete)); // last chunk first
    wire.extend(send("t0000002", 1, 10, Continuation::More));
    wire.extend(send("t0000003", 5, 15, Continuation::More)); // overlaps
    wire.extend(send("t0000004", 1, 10, Continuation::More)); // duplicate
    p.raw_send(Who::B, c, &wire);
    assert_eq!(
        complete(&p, Who::B, sb, "reasm001"),
        None,
        "gap 16-30 still missing"
    );
    p.raw_send(Who::B, c, &send("t0000005", 16, 30, Continuation::More));
    assert_eq!(complete(&p, Who::B, sb, "reasm001"), Some(n));
    assert_eq!(p.received_body(Who::B, sb, "reasm001"), msg);
    let out = p.raw_take(c);
    let r = responses(&out);
    assert_eq!(r.len(), 5);
    assert!(r.iter().all(|(_, s)| *s == 200));
    // RFC 4975 §7.2: To-Path is the first From-Path URI of the SEND, From-Path is our URI,
    // the end-line flag is "$", and the transaction id is the request's.
    for m in parse_messages(&out, Limits::default()).unwrap() {
        assert_eq!(m.head.to_path(), vec![Pair::uri(Who::A)]);
        assert_eq!(m.head.from_path(), vec![Pair::uri(Who::B)]);
        assert_eq!(m.continuation, Continuation::Complete);
    }
    assert_eq!(r[0].0, "t0000001");
}

#[test]
fn reports_get_no_response_and_unknown_reports_are_ignored() {
    let mut p = Pair::new(EndpointConfig::default());
    let now = p.now;
    let sb =
        p.b.ep
            .add_session(Pair::params(Who::B, SessionRole::Passive, cfg(1024)), now)
            .unwrap();
    let c = p.raw_connect(Who::B);
    let (to, from) = (Pair::uri(Who::B), Pair::uri(Who::A));
    p.raw_send(
        Who::B,
        c,
        &raw_send(
            "tid00001",
            &to,
            &from,
            "mid00001",
            range(1, 0, 0),
            None,
            Continuation::Complete,
            None,
        ),
    );
    p.raw_take(c);
    let mut h = MessageHead::request("tid00002", Method::Report).unwrap();
    h.push_to_path(std::slice::from_ref(&to)).unwrap();
    h.push_from_path(std::slice::from_ref(&from)).unwrap();
    h.push_message_id("neverSent1").unwrap();
    h.push_byte_range(ByteRange {
        start: 1,
        end: Some(3),
        total: Some(3),
    })
    .unwrap();
    h.push_status(StatusCode::OK, None).unwrap();
    let report = Message {
        head: h,
        body: None,
        continuation: Continuation::Complete,
    }
    .encode()
    .unwrap();
    p.raw_send(Who::B, c, &report);
    // RFC 4975 §7.1.2: no response to a REPORT; unknown Message-ID: silently ignored.
    assert!(p.raw_take(c).is_empty());
    assert!(p.session_events(Who::B, sb).is_empty());
    assert_eq!(p.b.ep.session_state(sb), Some(SessionState::Connected));
}

#[test]
fn abort_with_hash_reaches_receiver() {
    let mut p = Pair::new(EndpointConfig::default());
    let (sa, sb) = p.session(SessionRole::Active, cfg(1024));
    p.drive();
    let id =
        p.a.ep
            .send_message(
                sa,
                MessageSpec::new("application/octet-stream", Some(100_000)),
            )
            .unwrap();
    p.a.ep.write(sa, &id, &[5u8; 2048]).unwrap();
    p.drive();
    p.a.ep.abort(sa, &id).unwrap();
    p.drive();
    let ev = p.session_events(Who::B, sb);
    assert!(ev.iter().any(|e| matches!(e, SessionEvent::IncomingAborted { message_id, received: 2048, .. } if *message_id == id)), "{ev:?}");
    assert!(p
        .session_events(Who::A, sa)
        .iter()
        .any(|e| matches!(e, SessionEvent::MessageFailed { message_id, .. } if *message_id == id)));
    let c = p.a.ep.session_connection(sa).unwrap();
    let sent = parse_messages(&p.a.sent[&c], Limits::default()).unwrap();
    assert_eq!(sent.last().unwrap().continuation, Continuation::Abort);
    // the session survives
    assert_eq!(p.a.ep.session_state(sa), Some(SessionState::Connected));
}

#[test]
fn success_report_yes_confirms_delivery_with_report() {
    let mut p = Pair::new(EndpointConfig::default());
    let (sa, sb) = p.session(SessionRole::Active, cfg(1024));
    p.drive();
    let body = vec![9u8; 5000];
    let id = p.send_bytes(Who::A, sa, "application/octet-stream", &body, |s| {
        s.with_success_report(true)
    });
    p.drive();
    assert_eq!(complete(&p, Who::B, sb, &id), Some(5000));
    assert!(p
        .session_events(Who::A, sa)
        .contains(&SessionEvent::MessageDelivered {
            message_id: id.clone()
        }));
    // the REPORT on the wire: Message-ID, Byte-Range of the whole message, Status 000 200
    let cb = p.b.ep.session_connection(sb).unwrap();
    let report = parse_messages(&p.b.sent[&cb], Limits::default())
        .unwrap()
        .into_iter()
        .find(|m| m.head.method() == Some(&Method::Report))
        .expect("a REPORT");
    assert_eq!(report.head.message_id(), Some(id.as_str()));
    assert_eq!(report.head.byte_range().unwrap().to_string(), "1-5000/5000");
    let st = report.head.status().unwrap();
    assert_eq!((st.namespace, st.code), (0, StatusCode::OK));
    assert!(report.head.success_report().is_none() && report.head.failure_report().is_none());
}

#[test]
fn success_report_no_sends_no_report() {
    let mut p = Pair::new(EndpointConfig::default());
    let (sa, sb) = p.session(SessionRole::Active, cfg(1024));
    p.drive();
    let id = p.send_bytes(Who::A, sa, "text/plain", b"x", |s| s);
    p.drive();
    assert_eq!(complete(&p, Who::B, sb, &id), Some(1));
    let cb = p.b.ep.session_connection(sb).unwrap();
    let msgs = parse_messages(&p.b.sent[&cb], Limits::default()).unwrap();
    assert!(msgs
        .iter()
        .all(|m| m.head.method() != Some(&Method::Report)));
}

#[test]
fn failure_report_no_and_partial_suppress_200() {
    let mut p = Pair::new(EndpointConfig::default());
    let (sa, sb) = p.session(SessionRole::Active, cfg(1024));
    p.drive();
    let cb = p.b.ep.session_connection(sb).unwrap();
    let before = responses(&p.b.sent[&cb]).len();
    let no = p.send_bytes(Who::A, sa, "text/plain", b"no", |s| {
        s.with_failure_report(FailureReport::No)
    });
    let partial = p.send_bytes(Who::A, sa, "text/plain", b"partial", |s| {
        s.with_failure_report(FailureReport::Partial)
    });
    p.drive();
    assert_eq!(complete(&p, Who::B, sb, &no), Some(2));
    assert_eq!(complete(&p, Who::B, sb, &partial), Some(7));
    assert_eq!(
        responses(&p.b.sent[&cb]).len(),
        before,
        "no response for no/partial successes"
    );
    let ev = p.session_events(Who::A, sa);
    assert!(ev.contains(&SessionEvent::MessageSent { message_id: no }));
    assert!(ev.contains(&SessionEvent::MessageSent {
        message_id: partial
    }));
    // partial still gets an error response: a type B does not accept
    let mut p = Pair::new(EndpointConfig::default());
    let mut c = cfg(1024);
    c.recv.accept_types = vec!["text/plain".into()];
    let (sa, _sb) = p.session(SessionRole::Active, c);
    p.drive();
    let bad = p.send_bytes(Who::A, sa, "image/png", b"png", |s| {
        s.with_failure_report(FailureReport::Partial)
    });
    p.drive();
    assert!(p.session_events(Who::A, sa).iter().any(|e| matches!(e, SessionEvent::MessageFailed { message_id, status: StatusCode::UNSUPPORTED_MEDIA_TYPE, .. } if *message_id == bad)));
}

#[test]
fn receiver_policy_413_and_415() {
    let mut p = Pair::new(EndpointConfig::default());
    let mut c = cfg(1024);
    c.recv = RecvPolicy {
        accept_types: vec!["text/*".into()],
        max_size: Some(3000),
        ..RecvPolicy::default()
    };
    let (sa, sb) = p.session(SessionRole::Active, c);
    p.drive();
    let big = p.send_bytes(Who::A, sa, "text/plain", &[b'a'; 5000], |s| s);
    p.drive();
    let img = p.send_bytes(Who::A, sa, "image/jpeg", b"jpeg", |s| s);
    p.drive();
    let ok = p.send_bytes(Who::A, sa, "text/html", b"<p>ok</p>", |s| s);
    p.drive();
    let ev = p.session_events(Who::A, sa);
    assert!(ev.iter().any(|e| matches!(e, SessionEvent::MessageFailed { message_id, status: StatusCode::MESSAGE_TOO_LARGE, .. } if *message_id == big)), "{ev:?}");
    assert!(ev.iter().any(|e| matches!(e, SessionEvent::MessageFailed { message_id, status: StatusCode::UNSUPPORTED_MEDIA_TYPE, .. } if *message_id == img)));
    assert!(ev.contains(&SessionEvent::MessageSent {
        message_id: ok.clone()
    }));
    assert_eq!(complete(&p, Who::B, sb, &ok), Some(9));
    assert_eq!(complete(&p, Who::B, sb, &big), None);
    // 413: the sender sent no chunk after the refusal (RFC 4975 §10.5)
    let ca = p.a.ep.session_connection(sa).unwrap();
    let chunks = parse_messages(&p.a.sent[&ca], Limits::default())
        .unwrap()
        .into_iter()
        .filter(|m| m.head.message_id() == Some(big.as_str()))
        .count();
    assert!(
        chunks <= 3,
        "{chunks} chunks of a refused 5000-byte message with 1024-byte chunks"
    );
    assert_eq!(
        p.a.ep.session_state(sa),
        Some(SessionState::Connected),
        "the session survives"
    );
}

#[test]
fn transaction_timeout_fails_message_with_408() {
    let mut p = Pair::new(EndpointConfig::default());
    let (sa, _sb) = p.session(SessionRole::Active, cfg(1024));
    p.drive();
    // B's answers are lost from now on
    p.links[0].drop_from = Some(Who::B);
    let id = p.send_bytes(Who::A, sa, "text/plain", b"anyone?", |s| s);
    p.drive();
    p.advance(Duration::from_secs(29));
    assert!(!p
        .session_events(Who::A, sa)
        .iter()
        .any(|e| matches!(e, SessionEvent::MessageFailed { .. })));
    p.advance(Duration::from_secs(2));
    assert!(p.session_events(Who::A, sa).iter().any(|e| matches!(e, SessionEvent::MessageFailed { message_id, status: StatusCode::REQUEST_TIMEOUT, .. } if *message_id == id)));
}

#[test]
fn connection_loss_mid_transfer_ends_both_sessions_with_reason() {
    let mut p = Pair::new(EndpointConfig::default());
    let (sa, sb) = p.session(SessionRole::Active, cfg(1024));
    p.drive();
    let id =
        p.a.ep
            .send_message(
                sa,
                MessageSpec::new("application/octet-stream", Some(1_000_000)),
            )
            .unwrap();
    p.a.ep.write(sa, &id, &[1u8; 2048]).unwrap();
    p.drive();
    // the transport dies under both
    let l = p.links.remove(0);
    p.a.ep
        .handle_closed(l.a.unwrap(), "connection reset by peer");
    p.b.ep
        .handle_closed(l.b.unwrap(), "connection reset by peer");
    p.drive();
    for (w, s) in [(Who::A, sa), (Who::B, sb)] {
        assert!(p.saw(w, |e| matches!(e, Event::SessionClosed { session, reason: CloseReason::ConnectionLost(r) } if *session == s && r.contains("reset"))), "{w:?}");
        assert_eq!(p.side(w).ep.session_state(s), None);
    }
    assert!(p
        .session_events(Who::A, sa)
        .iter()
        .any(|e| matches!(e, SessionEvent::MessageFailed { message_id, .. } if *message_id == id)));
    assert!(p.session_events(Who::B, sb).iter().any(|e| matches!(e, SessionEvent::IncomingAborted { message_id, received: 2048, .. } if *message_id == id)));
    assert_eq!(p.a.ep.poll_timeout(), None, "nothing left to wait for");
}

#[test]
fn passive_session_without_connection_times_out() {
    let mut p = Pair::new(EndpointConfig::default());
    let now = p.now;
    let sb =
        p.b.ep
            .add_session(Pair::params(Who::B, SessionRole::Passive, cfg(1024)), now)
            .unwrap();
    p.advance(Duration::from_secs(31));
    assert!(p.saw(Who::B, |e| matches!(e, Event::SessionClosed { session, reason: CloseReason::NotConnected(_) } if *session == sb)));
}

#[test]
fn active_connect_failure_ends_session() {
    let mut p = Pair::new(EndpointConfig::default());
    p.b.listen = None; // B behind a NAT: nobody listens there
    let now = p.now;
    let sa =
        p.a.ep
            .add_session(Pair::params(Who::A, SessionRole::Active, cfg(1024)), now)
            .unwrap();
    p.drive();
    assert!(p.saw(Who::A, |e| matches!(e, Event::SessionClosed { session, reason: CloseReason::ConnectFailed(_) } if *session == sa)));
}

#[test]
fn second_active_session_to_same_peer_reuses_connection() {
    let mut p = Pair::new(EndpointConfig::default());
    let (sa, _sb) = p.session(SessionRole::Active, cfg(1024));
    p.drive();
    // a second session with the same peer host and port (RFC 4975 §5.4: SHOULD reuse)
    let now = p.now;
    let mut pa = Pair::params(Who::A, SessionRole::Active, cfg(1024));
    pa.local_uri = MsrpUri::parse("msrp://192.0.2.1:2855/alicesess02;tcp").unwrap();
    pa.local_path = vec![pa.local_uri.clone()];
    let target = MsrpUri::parse("msrp://192.0.2.2:2856/bobsession3;tcp").unwrap();
    pa.connect_to = Some(target.clone());
    pa.remote_path = vec![target.clone()];
    pa.remote_uri = target;
    let mut pb = Pair::params(Who::B, SessionRole::Passive, cfg(1024));
    pb.local_uri = MsrpUri::parse("msrp://192.0.2.2:2856/bobsession3;tcp").unwrap();
    pb.local_path = vec![pb.local_uri.clone()];
    pb.remote_uri = MsrpUri::parse("msrp://192.0.2.1:2855/alicesess02;tcp").unwrap();
    pb.remote_path = vec![pb.remote_uri.clone()];
    let sb2 = p.b.ep.add_session(pb, now).unwrap();
    let sa2 = p.a.ep.add_session(pa, now).unwrap();
    p.drive();
    let connects =
        p.a.events
            .iter()
            .filter(|e| matches!(e, Event::Connect { .. }))
            .count();
    assert_eq!(connects, 1, "one connection for both sessions");
    assert_eq!(
        p.a.ep.session_connection(sa),
        p.a.ep.session_connection(sa2)
    );
    assert!(connected(&p, Who::B, sb2));
    let id = p.send_bytes(Who::A, sa2, "text/plain", b"second", |s| s);
    p.drive();
    assert_eq!(p.received_body(Who::B, sb2, &id), b"second");
    // RFC 4975 §5.4: the connection is not closed while a session still uses it.
    let c = p.a.ep.session_connection(sa).unwrap();
    p.a.ep.close_session(sa).unwrap();
    p.drive();
    assert!(!p.saw(Who::A, |e| matches!(e, Event::CloseConnection { .. })));
    assert_eq!(p.a.ep.session_state(sa2), Some(SessionState::Connected));
    p.a.ep.close_session(sa2).unwrap();
    p.drive();
    assert!(p.saw(
        Who::A,
        |e| matches!(e, Event::CloseConnection { connection, .. } if *connection == c)
    ));
    // the peer sees the connection go and ends its remaining session with the reason
    assert!(p.saw(Who::B, |e| matches!(e, Event::SessionClosed { session, reason: CloseReason::ConnectionLost(_) } if *session == sb2)));
}

#[test]
fn unknown_method_gets_501_and_garbage_closes_connection() {
    let mut p = Pair::new(EndpointConfig::default());
    let (sa, sb) = p.session(SessionRole::Passive, cfg(1024));
    p.drive();
    let _ = sa;
    let c = p.raw_connect(Who::B);
    let mut h = MessageHead::request("tidx0001", Method::Other("FOO".into())).unwrap();
    h.push_to_path(&[Pair::uri(Who::B)]).unwrap();
    h.push_from_path(&[Pair::uri(Who::A)]).unwrap();
    let foo = Message {
        head: h,
        body: None,
        continuation: Continuation::Complete,
    }
    .encode()
    .unwrap();
    // sb is bound to A's connection: on another connection this is 506, not 501
    p.raw_send(Who::B, c, &foo);
    assert_eq!(
        responses(&p.raw_take(c)),
        vec![("tidx0001".to_string(), 506)]
    );
    p.raw_send(Who::B, c, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(p.saw(
        Who::B,
        |e| matches!(e, Event::CloseConnection { connection, .. } if *connection == c)
    ));
    assert_eq!(
        p.b.ep.session_state(sb),
        Some(SessionState::Connected),
        "other connections unaffected"
    );
}

#[test]
fn offerer_registered_before_answer_binds_provisionally_and_confirms() {
    // The answer made B (the answerer) active: B connects and sends its first SEND before A
    // has processed the answer. A registered its session when it sent the offer.
    let mut p = Pair::new(EndpointConfig::default());
    let now = p.now;
    let sa = p.a.ep.add_offered_session(Pair::uri(Who::A), cfg(1024));
    let sb =
        p.b.ep
            .add_session(Pair::params(Who::B, SessionRole::Active, cfg(1024)), now)
            .unwrap();
    p.drive();
    assert!(
        connected(&p, Who::B, sb),
        "B's binding SEND was answered with 200"
    );
    assert!(!connected(&p, Who::A, sa), "A does not know the peer yet");
    p.a.ep
        .complete_session(
            sa,
            Pair::params(Who::A, SessionRole::Passive, cfg(1024)),
            now,
        )
        .unwrap();
    p.drive();
    assert!(connected(&p, Who::A, sa));
    let id = p.send_bytes(Who::A, sa, "text/plain", b"after the race", |s| s);
    p.drive();
    assert_eq!(p.received_body(Who::B, sb, &id), b"after the race");
}

#[test]
fn provisional_binding_by_a_stranger_is_undone_at_completion() {
    let mut p = Pair::new(EndpointConfig::default());
    let now = p.now;
    let sa = p.a.ep.add_offered_session(Pair::uri(Who::A), cfg(1024));
    let c = p.raw_connect(Who::A);
    let stranger = MsrpUri::parse("msrp://203.0.113.9:1234/mallory;tcp").unwrap();
    p.raw_send(
        Who::A,
        c,
        &raw_send(
            "tid00001",
            &Pair::uri(Who::A),
            &stranger,
            "mid00001",
            range(1, 0, 0),
            None,
            Continuation::Complete,
            None,
        ),
    );
    p.a.ep
        .complete_session(
            sa,
            Pair::params(Who::A, SessionRole::Passive, cfg(1024)),
            now,
        )
        .unwrap();
    p.drive();
    assert!(!connected(&p, Who::A, sa));
    assert_eq!(p.a.ep.session_connection(sa), None);
    assert!(p.saw(
        Who::A,
        |e| matches!(e, Event::CloseConnection { connection, .. } if *connection == c)
    ));
    assert_eq!(
        p.a.ep.session_state(sa),
        Some(SessionState::Waiting),
        "still waits for the peer"
    );
}

#[test]
fn input_split_at_any_size_gives_the_same_messages() {
    let body: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
    for piece in [1usize, 3, 44, 45, 4103, 1 << 20] {
        let mut p = Pair::new(EndpointConfig::default());
        p.piece = piece;
        let (sa, sb) = p.session(SessionRole::Active, cfg(3000));
        p.drive();
        let id = p.send_bytes(Who::A, sa, "application/octet-stream", &body, |s| s);
        let t = p.send_bytes(Who::B, sb, "text/plain", b"reply", |s| s);
        p.drive();
        assert_eq!(p.received_body(Who::B, sb, &id), body, "piece {piece}");
        assert_eq!(p.received_body(Who::A, sa, &t), b"reply", "piece {piece}");
        assert!(p
            .session_events(Who::A, sa)
            .contains(&SessionEvent::MessageSent { message_id: id }));
    }
}

#[test]
fn peer_stopping_mid_message_does_not_hold_it_forever() {
    let mut p = Pair::new(EndpointConfig::default());
    let now = p.now;
    let sb =
        p.b.ep
            .add_session(Pair::params(Who::B, SessionRole::Passive, cfg(1024)), now)
            .unwrap();
    let c = p.raw_connect(Who::B);
    let (to, from) = (Pair::uri(Who::B), Pair::uri(Who::A));
    let total = Some(ByteRange {
        start: 1,
        end: Some(4),
        total: Some(1000),
    });
    p.raw_send(
        Who::B,
        c,
        &raw_send(
            "tid00001",
            &to,
            &from,
            "stall001",
            total,
            Some(b"abcd"),
            Continuation::More,
            None,
        ),
    );
    assert_eq!(
        responses(&p.raw_take(c)),
        vec![("tid00001".to_string(), 200)]
    );
    p.advance(Duration::from_secs(119));
    assert!(!p
        .session_events(Who::B, sb)
        .iter()
        .any(|e| matches!(e, SessionEvent::IncomingAborted { .. })));
    p.advance(Duration::from_secs(2));
    assert!(p.session_events(Who::B, sb).iter().any(|e| matches!(e, SessionEvent::IncomingAborted { message_id, received: 4, .. } if message_id == "stall001")));
    assert_eq!(
        p.b.ep.session_state(sb),
        Some(SessionState::Connected),
        "the session lives on"
    );
}

mod hostile_input {
    use super::*;
    use proptest::prelude::*;

    fn valid_exchange() -> Vec<u8> {
        let (to, from) = (Pair::uri(Who::B), Pair::uri(Who::A));
        let mut w = raw_send(
            "tid00001",
            &to,
            &from,
            "mid00001",
            range(1, 0, 0),
            None,
            Continuation::Complete,
            None,
        );
        w.extend(raw_send(
            "tid00002",
            &to,
            &from,
            "mid00002",
            range(1, 5, 10),
            Some(b"hello"),
            Continuation::More,
            Some(FailureReport::Partial),
        ));
        w.extend(raw_send(
            "tid00003",
            &to,
            &from,
            "mid00002",
            range(6, 10, 10),
            Some(b"world"),
            Continuation::Complete,
            None,
        ));
        w
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Mutated and truncated MSRP, split anywhere, never panics the endpoint; the
        /// connection either stays usable or is closed with a reason, and time still runs.
        #[test]
        fn endpoint_survives_mutated_input(
            flips in proptest::collection::vec((0usize..400, any::<u8>()), 0..8),
            cut in 0usize..400,
            piece in 1usize..64,
        ) {
            let mut p = Pair::new(EndpointConfig::default());
            p.piece = piece;
            let now = p.now;
            let sb = p.b.ep.add_session(Pair::params(Who::B, SessionRole::Passive, cfg(1024)), now).unwrap();
            let c = p.raw_connect(Who::B);
            let mut w = valid_exchange();
            for (i, b) in flips {
                let n = w.len();
                w[i % n] = b;
            }
            w.truncate(w.len() - cut.min(w.len()));
            p.raw_send(Who::B, c, &w);
            p.b.ep.handle_closed(c, "closed by peer");
            p.advance(Duration::from_secs(200));
            // nothing left waiting on that connection; the session either closed with a
            // reason or is still waiting for its peer
            prop_assert!(p.b.ep.connection(c).is_none());
            if let Some(st) = p.b.ep.session_state(sb) {
                prop_assert_eq!(st, SessionState::Waiting);
            }
        }
    }
}
