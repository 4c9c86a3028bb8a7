//! Session-level tests: chunking, interleaving, transactions, reports.

use super::*;

fn rng() -> impl FnMut(&mut [u8]) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    move |buf: &mut [u8]| {
        for b in buf {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
}

fn cfg(chunk: usize) -> SessionConfig {
    SessionConfig {
        max_chunk_size: chunk,
        send_window: 2 * chunk,
        ..SessionConfig::default()
    }
}

fn sends(s: &mut Session, now: Instant, r: &mut dyn FnMut(&mut [u8])) -> Vec<SendChunk> {
    let mut v = Vec::new();
    while let Some(req) = s.poll_request(now, r) {
        match req {
            OutRequest::Send(c) => v.push(c),
            OutRequest::Report(_) => panic!("unexpected REPORT"),
        }
    }
    v
}

fn events(s: &mut Session) -> Vec<SessionEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

#[test]
fn small_message_is_not_blocked_by_large_one() {
    let mut r = rng();
    let now = Instant::now();
    let mut s = Session::new(cfg(100));
    s.send(
        "large0001".into(),
        MessageSpec::new("application/octet-stream", Some(1000)),
    )
    .unwrap();
    // the large message's body streams in: the window holds only 200 bytes
    assert_eq!(s.write("large0001", &[1u8; 1000]).unwrap(), 200);
    let first = s.poll_request(now, &mut r).unwrap();
    let OutRequest::Send(first) = first else {
        panic!()
    };
    assert_eq!(first.message_id, "large0001");
    s.send("small0001".into(), MessageSpec::new("text/plain", Some(5)))
        .unwrap();
    s.write("small0001", b"hello").unwrap();
    let second = sends(&mut s, now, &mut r);
    // Round robin: the small message goes out right after at most one more chunk of the large.
    let pos = second
        .iter()
        .position(|c| c.message_id == "small0001")
        .unwrap();
    assert!(pos <= 1, "small message waited for {pos} chunks");
    assert_eq!(second[pos].flag, Continuation::Complete);
    assert_eq!(second[pos].byte_range.to_string(), "1-5/5");
}

#[test]
fn streaming_body_respects_window_and_signals_room() {
    let mut r = rng();
    let now = Instant::now();
    let mut s = Session::new(cfg(64));
    s.send(
        "file0001".into(),
        MessageSpec::new("application/octet-stream", None),
    )
    .unwrap();
    let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    let mut written = 0;
    let mut got = Vec::new();
    let mut rounds = 0;
    while written < data.len() || s.wants_to_send() {
        rounds += 1;
        assert!(rounds < 1000);
        let n = s.write("file0001", &data[written..]).unwrap();
        written += n;
        if written == data.len() {
            s.finish("file0001").unwrap();
        }
        assert!(s.write_capacity("file0001") <= 128);
        let cs = sends(&mut s, now, &mut r);
        for c in &cs {
            got.extend_from_slice(&c.body);
            assert!(c.body.len() <= 64);
            s.handle_response(&c.transaction_id, StatusCode::OK);
        }
        let ev = events(&mut s);
        if n < data.len() - (written - n) && written < data.len() {
            assert!(
                ev.contains(&SessionEvent::SendReady {
                    message_id: "file0001".into()
                }),
                "{ev:?}"
            );
        }
        if written == data.len() && !s.wants_to_send() {
            assert!(
                ev.contains(&SessionEvent::MessageSent {
                    message_id: "file0001".into()
                }) || got.len() == data.len()
            );
        }
    }
    assert_eq!(got, data);
}

#[test]
fn transaction_ids_are_fresh_and_not_in_body() {
    let mut r = rng();
    let now = Instant::now();
    let mut s = Session::new(SessionConfig {
        send_window: 100,
        ..cfg(10)
    });
    s.send("mmmm0001".into(), MessageSpec::new("text/plain", Some(50)))
        .unwrap();
    s.write("mmmm0001", &[b'a'; 50]).unwrap();
    let cs = sends(&mut s, now, &mut r);
    let mut ids: Vec<&str> = cs.iter().map(|c| c.transaction_id.as_str()).collect();
    assert_eq!(ids.len(), 5);
    assert!(ids.iter().all(|t| t.len() == 16 && valid_ident(t)));
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5);
}

#[test]
fn end_line_in_body_forces_a_new_transaction_id() {
    // An RNG that first yields the id that appears in the body.
    let mut calls = 0;
    let mut r = move |buf: &mut [u8]| {
        calls += 1;
        for (i, b) in buf.iter_mut().enumerate() {
            *b = if calls == 1 { 0 } else { (i + calls) as u8 };
        }
    };
    let now = Instant::now();
    let mut s = Session::new(cfg(100));
    let body = b"xx-------AAAAAAAAAAAAAAAA$yy";
    s.send(
        "mmmm0001".into(),
        MessageSpec::new("text/plain", Some(body.len() as u64)),
    )
    .unwrap();
    s.write("mmmm0001", body).unwrap();
    let cs = sends(&mut s, now, &mut r);
    assert_ne!(cs[0].transaction_id, "AAAAAAAAAAAAAAAA");
}

#[test]
fn timeout_without_response_fails_with_408_and_aborts() {
    let mut r = rng();
    let t0 = Instant::now();
    let mut s = Session::new(cfg(10));
    s.send("mmmm0001".into(), MessageSpec::new("text/plain", Some(30)))
        .unwrap();
    s.write("mmmm0001", &[b'a'; 20]).unwrap();
    let cs = sends(&mut s, t0, &mut r);
    assert_eq!(cs.len(), 2);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    s.handle_response(&cs[0].transaction_id, StatusCode::OK);
    s.handle_timeout(t0 + Duration::from_secs(29));
    assert!(events(&mut s).is_empty());
    s.handle_timeout(t0 + Duration::from_secs(30));
    let ev = events(&mut s);
    assert!(
        matches!(
            &ev[..],
            [SessionEvent::MessageFailed {
                status: StatusCode::REQUEST_TIMEOUT,
                ..
            }]
        ),
        "{ev:?}"
    );
    // the message is aborted with "#" (RFC 4975 §7.3.2) and accepts no more body
    let cs = sends(&mut s, t0, &mut r);
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].flag, Continuation::Abort);
    assert!(s.write("mmmm0001", b"x").is_err());
    assert!(s.message_state("mmmm0001").is_none());
}

#[test]
fn configurable_timeout_and_partial_runs_no_failure_timer() {
    let mut r = rng();
    let t0 = Instant::now();
    let mut s = Session::new(SessionConfig {
        transaction_timeout: Duration::from_secs(5),
        ..cfg(10)
    });
    s.send(
        "part0001".into(),
        MessageSpec::new("text/plain", Some(3)).with_failure_report(FailureReport::Partial),
    )
    .unwrap();
    s.write("part0001", b"abc").unwrap();
    s.send(
        "nore0001".into(),
        MessageSpec::new("text/plain", Some(3)).with_failure_report(FailureReport::No),
    )
    .unwrap();
    s.write("nore0001", b"abc").unwrap();
    let cs = sends(&mut s, t0, &mut r);
    assert_eq!(cs.len(), 2);
    let ev = events(&mut s);
    // partial/no: "sent" as soon as the chunks went out, nothing waits for a 200
    assert!(ev.contains(&SessionEvent::MessageSent {
        message_id: "part0001".into()
    }));
    assert!(ev.contains(&SessionEvent::MessageSent {
        message_id: "nore0001".into()
    }));
    s.handle_timeout(t0 + Duration::from_secs(5));
    assert!(
        events(&mut s).is_empty(),
        "no timeout failure for partial/no"
    );
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn success_response_reports_sent_once_all_chunks_acked() {
    let mut r = rng();
    let t0 = Instant::now();
    let mut s = Session::new(cfg(4));
    s.send("mmmm0001".into(), MessageSpec::new("text/plain", Some(8)))
        .unwrap();
    s.write("mmmm0001", b"abcdEFGH").unwrap();
    let cs = sends(&mut s, t0, &mut r);
    assert_eq!(cs.len(), 2);
    s.handle_response(&cs[1].transaction_id, StatusCode::OK);
    assert!(events(&mut s).is_empty());
    assert!(!s.handle_response("unknownxxxx", StatusCode::OK));
    s.handle_response(&cs[0].transaction_id, StatusCode::OK);
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::MessageSent {
            message_id: "mmmm0001".into()
        }]
    );
    assert!(s.message_state("mmmm0001").is_none(), "forgotten once done");
}

#[test]
fn error_413_stops_without_hash_and_415_aborts() {
    let mut r = rng();
    let t0 = Instant::now();
    let mut s = Session::new(cfg(4));
    s.send("big00001".into(), MessageSpec::new("text/plain", Some(100)))
        .unwrap();
    s.write("big00001", &[b'a'; 8]).unwrap();
    let cs = sends(&mut s, t0, &mut r);
    s.handle_response(&cs[0].transaction_id, StatusCode::MESSAGE_TOO_LARGE);
    let ev = events(&mut s);
    assert!(matches!(
        &ev[..],
        [SessionEvent::MessageFailed {
            status: StatusCode::MESSAGE_TOO_LARGE,
            ..
        }]
    ));
    // RFC 4975 §10.5: no further chunks at all, not even "#"
    assert!(sends(&mut s, t0, &mut r).is_empty());

    s.send("img00001".into(), MessageSpec::new("image/png", Some(100)))
        .unwrap();
    s.write("img00001", &[b'a'; 8]).unwrap();
    let cs = sends(&mut s, t0, &mut r);
    s.handle_response(&cs[0].transaction_id, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let cs = sends(&mut s, t0, &mut r);
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].flag, Continuation::Abort);
    assert!(s.take_fatal().is_none());
}

#[test]
fn response_481_and_506_are_fatal() {
    for st in [
        StatusCode::SESSION_DOES_NOT_EXIST,
        StatusCode::WRONG_CONNECTION,
    ] {
        let mut r = rng();
        let t0 = Instant::now();
        let mut s = Session::new(cfg(4));
        s.send("mmmm0001".into(), MessageSpec::bodiless()).unwrap();
        let cs = sends(&mut s, t0, &mut r);
        s.handle_response(&cs[0].transaction_id, st);
        assert_eq!(s.take_fatal().map(|f| f.status), Some(st));
    }
}

#[test]
fn success_reports_confirm_delivery() {
    let mut r = rng();
    let t0 = Instant::now();
    let mut s = Session::new(cfg(4));
    s.send(
        "mmmm0001".into(),
        MessageSpec::new("text/plain", Some(8)).with_success_report(true),
    )
    .unwrap();
    s.write("mmmm0001", b"abcdEFGH").unwrap();
    let cs = sends(&mut s, t0, &mut r);
    assert!(cs.iter().all(|c| c.success_report));
    for c in &cs {
        s.handle_response(&c.transaction_id, StatusCode::OK);
    }
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::MessageSent {
            message_id: "mmmm0001".into()
        }]
    );
    s.handle_report(
        "mmmm0001",
        Some(ByteRange {
            start: 1,
            end: Some(4),
            total: Some(8),
        }),
        StatusCode::OK,
    );
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::DeliveryProgress {
            message_id: "mmmm0001".into(),
            confirmed: 4
        }]
    );
    s.handle_report(
        "mmmm0001",
        Some(ByteRange {
            start: 5,
            end: Some(8),
            total: Some(8),
        }),
        StatusCode::OK,
    );
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::MessageDelivered {
            message_id: "mmmm0001".into()
        }]
    );
    // unknown Message-ID: silently ignored (RFC 4975 §7.1.2)
    s.handle_report("nosuch01", None, StatusCode::OK);
    assert!(events(&mut s).is_empty());
}

#[test]
fn failure_report_fails_message_and_session() {
    let mut r = rng();
    let t0 = Instant::now();
    let mut s = Session::new(cfg(4));
    s.send("mmmm0001".into(), MessageSpec::new("text/plain", Some(8)))
        .unwrap();
    s.write("mmmm0001", b"abcd").unwrap();
    sends(&mut s, t0, &mut r);
    s.handle_report(
        "mmmm0001",
        Some(ByteRange {
            start: 1,
            end: Some(4),
            total: Some(8),
        }),
        StatusCode(400),
    );
    let ev = events(&mut s);
    assert!(matches!(
        &ev[..],
        [SessionEvent::MessageFailed {
            status: StatusCode(400),
            ..
        }]
    ));
    assert!(
        s.take_fatal().is_some(),
        "RFC 4975 §7.3.2: treat the session as failed"
    );
}

/// RFC 4976 §6.4.1: a relay answers every chunk with 200 at once, so the message counts as
/// sent; the next hop's failure arrives later as a REPORT, and must still fail the message
/// (RFC 4975 §7.1.1, §7.3.2) and the session, once however many chunks are reported.
#[test]
fn late_failure_report_after_sent_fails_message_and_session() {
    let mut r = rng();
    let t0 = Instant::now();
    let mut s = Session::new(cfg(4));
    s.send("mmmm0001".into(), MessageSpec::new("text/plain", Some(8)))
        .unwrap();
    s.write("mmmm0001", b"abcdEFGH").unwrap();
    let cs = sends(&mut s, t0, &mut r);
    assert_eq!(cs.len(), 2);
    for c in &cs {
        s.handle_response(&c.transaction_id, StatusCode::OK);
    }
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::MessageSent {
            message_id: "mmmm0001".into()
        }]
    );
    assert!(s.message_state("mmmm0001").is_none());
    // Unknown Message-ID: still silently ignored (RFC 4975 §7.1.2).
    s.handle_report("nosuch01", None, StatusCode::REQUEST_TIMEOUT);
    assert!(events(&mut s).is_empty());
    assert!(s.take_fatal().is_none());
    for (start, end) in [(1, 4), (5, 8)] {
        s.handle_report(
            "mmmm0001",
            Some(ByteRange {
                start,
                end: Some(end),
                total: Some(8),
            }),
            StatusCode::REQUEST_TIMEOUT,
        );
    }
    let ev = events(&mut s);
    assert!(
        matches!(
            &ev[..],
            [SessionEvent::MessageFailed {
                status: StatusCode::REQUEST_TIMEOUT,
                ..
            }]
        ),
        "{ev:?}"
    );
    assert!(s.take_fatal().is_some(), "RFC 4975 §7.3.2");
    // A success REPORT for a forgotten message is ignored.
    s.handle_report("mmmm0001", None, StatusCode::OK);
    assert!(events(&mut s).is_empty());
}

#[test]
fn received_success_report_request_generates_report() {
    let mut r = rng();
    let t0 = Instant::now();
    let mut s = Session::new(cfg(4));
    let h = IncomingSend {
        transaction_id: "tid00001".into(),
        message_id: Some("in000001".into()),
        byte_range: Some(ByteRange {
            start: 1,
            end: Some(5),
            total: Some(5),
        }),
        content_type: Some("text/plain".into()),
        content_disposition: None,
        success_report: true,
        failure_report: FailureReport::Yes,
    };
    let mut c = s.recv_head(&h, t0);
    s.recv_body(&mut c, b"hello");
    assert_eq!(s.recv_end(c, Continuation::Complete), Some(StatusCode::OK));
    let ev = events(&mut s);
    assert!(ev.contains(&SessionEvent::IncomingComplete {
        message_id: "in000001".into(),
        size: 5
    }));
    match s.poll_request(t0, &mut r) {
        Some(OutRequest::Report(rep)) => {
            assert_eq!(rep.message_id, "in000001");
            assert_eq!(rep.byte_range.to_string(), "1-5/5");
            assert_eq!(rep.status, StatusCode::OK);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn close_fails_unconfirmed_and_aborts_incoming() {
    let mut r = rng();
    let t0 = Instant::now();
    let mut s = Session::new(cfg(4));
    s.send("mmmm0001".into(), MessageSpec::new("text/plain", Some(8)))
        .unwrap();
    s.write("mmmm0001", b"abcd").unwrap();
    sends(&mut s, t0, &mut r);
    let h = IncomingSend {
        transaction_id: "tid00001".into(),
        message_id: Some("in000001".into()),
        byte_range: Some(ByteRange {
            start: 1,
            end: None,
            total: None,
        }),
        content_type: Some("text/plain".into()),
        content_disposition: None,
        success_report: false,
        failure_report: FailureReport::Yes,
    };
    let mut c = s.recv_head(&h, t0);
    s.recv_body(&mut c, b"hel");
    events(&mut s);
    s.close("connection reset");
    let ev = events(&mut s);
    assert!(ev.iter().any(|e| matches!(e, SessionEvent::MessageFailed { message_id, reason, .. } if message_id == "mmmm0001" && reason.contains("connection reset"))));
    assert!(ev.iter().any(|e| matches!(e, SessionEvent::IncomingAborted { message_id, received: 3, .. } if message_id == "in000001")));
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn application_errors() {
    let mut s = Session::new(cfg(4));
    assert_eq!(
        s.send("ab".into(), MessageSpec::bodiless()),
        Err(SendError::InvalidMessageId)
    );
    s.send("abcd".into(), MessageSpec::bodiless()).unwrap();
    assert_eq!(
        s.send("abcd".into(), MessageSpec::bodiless()),
        Err(SendError::DuplicateMessageId)
    );
    assert_eq!(s.write("nope", b"x"), Err(SendError::UnknownMessage));
    let spec = MessageSpec {
        size: Some(3),
        ..MessageSpec::bodiless()
    };
    assert_eq!(
        s.send("abce".into(), spec),
        Err(SendError::BodilessWithSize)
    );
}

#[test]
fn relayed_session_cuts_chunks_at_the_relay_chunk_size() {
    let config = SessionConfig {
        max_chunk_size: 100_000,
        relay_chunk_size: 3000,
        send_window: 0,
        ..SessionConfig::default()
    };
    assert_eq!(config.chunk_size(false), 100_000);
    assert_eq!(config.chunk_size(true), 3000);
    // The smaller of the two applies through relays.
    let small = SessionConfig {
        max_chunk_size: 2500,
        ..config.clone()
    };
    assert_eq!(small.chunk_size(true), 2500);
    for (via_relay, chunk, expect) in [
        (false, 100_000, vec![10_000]),
        (true, 3000, vec![3000, 3000, 3000, 1000]),
    ] {
        let mut r = rng();
        let mut s = Session::new(config.clone());
        s.set_via_relay(via_relay);
        assert_eq!(s.chunk_size(), chunk);
        // The window is at least two chunks.
        assert_eq!(s.send_window(), 2 * s.chunk_size());
        s.send(
            "relay0001".into(),
            MessageSpec::new("application/octet-stream", Some(10_000)),
        )
        .unwrap();
        let mut written = 0;
        let mut sizes = Vec::new();
        while written < 10_000 || s.wants_to_send() {
            if written < 10_000 {
                written += s.write("relay0001", &vec![7u8; 10_000 - written]).unwrap();
            }
            sizes.extend(
                sends(&mut s, Instant::now(), &mut r)
                    .iter()
                    .map(|c| c.body.len()),
            );
        }
        assert_eq!(sizes, expect, "via_relay {via_relay}");
    }
}

#[test]
fn end_line_search_agrees_with_a_substring_search() {
    // Bodies over a small alphabet (hyphens, parts of the transaction id, CR LF and other
    // bytes), so runs of hyphens followed by the id, or by a prefix of it, are frequent.
    let tid = b"Ab";
    let alphabet: &[u8] = b"---------Abx\r\n";
    let mut r = rng();
    let mut needle = b"-------".to_vec();
    needle.extend_from_slice(tid);
    let mut found = 0;
    for len in 0..300 {
        for _ in 0..40 {
            let mut pick = vec![0u8; len];
            r(&mut pick);
            let body: Vec<u8> = pick
                .iter()
                .map(|b| alphabet[*b as usize % alphabet.len()])
                .collect();
            let want = memchr::memmem::find(&body, &needle).is_some();
            found += usize::from(want);
            assert_eq!(
                contains_end_line(&body, tid),
                want,
                "{:?}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    assert!(found > 200, "the table exercises matches too ({found})");
    // Edges: runs longer than seven, the id at the very end, a run cut by the end.
    for (body, want) in [
        (&b"--------Ab"[..], true),
        (b"-------A", false),
        (b"x-------Aby", true),
        (b"------Ab", false),
        (b"-------", false),
        (b"---- ---Ab", false),
        (b"-------x-------Ab", true),
        (b"", false),
    ] {
        assert_eq!(contains_end_line(body, tid), want, "{body:?}");
    }
}
