//! Basic behaviour of the message parser and writer.

mod common;

use common::{crlf, encode_all, parse_bytewise, parse_in_pieces};
use msrp_proto::message::{
    parse_messages, ByteRange, Continuation, Event, FailureReport, HeaderKind, Limits, Message,
    MessageError, MessageHead, Method, Parser, StartLine, StatusCode,
};
use msrp_proto::uri::MsrpUri;

const SEND: &str = "MSRP a786hjs2 SEND
To-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp
From-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp
Message-ID: 87652491
Byte-Range: 1-25/25
Content-Type: text/plain

Hey Bob, are you there?
-------a786hjs2$
";

const OK: &str = "MSRP a786hjs2 200 OK
To-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp
From-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp
-------a786hjs2$
";

#[test]
fn parses_send_with_typed_headers() {
    let msgs = parse_messages(&crlf(SEND), Limits::default()).unwrap();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    let h = &m.head;
    assert_eq!(h.transaction_id(), "a786hjs2");
    assert_eq!(h.method(), Some(&Method::Send));
    assert!(h.is_request());
    assert_eq!(
        h.to_path(),
        vec![MsrpUri::parse("msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp").unwrap()]
    );
    assert_eq!(h.from_path()[0].session_id(), Some("jshA7weztas"));
    assert_eq!(h.message_id(), Some("87652491"));
    assert_eq!(h.byte_range(), Some(ByteRange::whole(25)));
    assert!(h.content_type().unwrap().is("text/plain"));
    assert_eq!(h.success_report(), None);
    assert_eq!(m.body.as_deref(), Some(&b"Hey Bob, are you there?"[..]));
    assert_eq!(m.continuation, Continuation::Complete);
    let names: Vec<_> = h.headers().map(|x| x.name).collect();
    assert_eq!(
        names,
        [
            "To-Path",
            "From-Path",
            "Message-ID",
            "Byte-Range",
            "Content-Type"
        ]
    );
}

#[test]
fn parses_response_without_body() {
    let msgs = parse_messages(&crlf(OK), Limits::default()).unwrap();
    let h = &msgs[0].head;
    assert_eq!(
        h.start_line(),
        StartLine::Response {
            status: StatusCode::OK,
            comment: Some("OK")
        }
    );
    assert_eq!(h.status_code(), Some(StatusCode::OK));
    assert_eq!(msgs[0].body, None);
}

#[test]
fn events_come_in_order_and_body_is_borrowed() {
    let wire = crlf(SEND);
    let mut p = Parser::new(Limits::default());
    let (n, ev) = p.parse(&wire).unwrap();
    let Some(Event::Head { head, body: true }) = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(head.header_count(), 5);
    let rest = &wire[n..];
    let (n2, ev) = p.parse(rest).unwrap();
    let Some(Event::Body(b)) = ev else {
        panic!("{ev:?}")
    };
    // zero copy: the fragment points into our buffer
    assert_eq!(b.as_ptr(), rest.as_ptr());
    assert_eq!(b, b"Hey Bob, are you there?");
    let (n3, ev) = p.parse(&rest[n2..]).unwrap();
    assert_eq!(ev, Some(Event::End(Continuation::Complete)));
    assert_eq!(n + n2 + n3, wire.len());
    assert!(p.is_idle());
    assert_eq!(p.parse(&[]).unwrap(), (0, None));
}

/// `parse_message_ref`: a message whole in the buffer comes at once (zero copy, body and
/// flag, bodiless and empty body distinct); a partial one, or one whose body or end-line
/// is wrong, comes as its head and then the same events or error as from `parse_ref`.
#[test]
fn whole_messages_come_at_once_and_parts_otherwise() {
    use msrp_proto::message::{write_message_ref, EventRef, MessageEventRef};
    let wire = crlf(SEND);
    let mut p = Parser::new(Limits::default());
    let (n, ev) = p.parse_message_ref(&wire).unwrap();
    assert_eq!(n, wire.len());
    let Some(MessageEventRef::Message(m)) = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(m.head.message_id(), Some("87652491"));
    let body = m.body.unwrap();
    assert_eq!(body, b"Hey Bob, are you there?");
    assert_eq!(body.as_ptr(), wire[wire.len() - 43..].as_ptr());
    assert_eq!(m.end, Continuation::Complete);
    let mut out = Vec::new();
    write_message_ref(&m, &mut out);
    assert_eq!(out, wire);
    assert!(p.is_idle());
    assert_eq!(p.offset(), wire.len() as u64);
    assert_eq!(p.body_len(), 23);

    // bodiless, and an empty body
    for (text, has_body) in [
        ("MSRP abcd1234 SEND\nTo-Path: msrp://b.example.com:1/s;tcp\nFrom-Path: msrp://a.example.com:1/s;tcp\n-------abcd1234$\n", false),
        ("MSRP abcd1234 SEND\nTo-Path: msrp://b.example.com:1/s;tcp\nFrom-Path: msrp://a.example.com:1/s;tcp\nContent-Type: text/plain\n\n\n-------abcd1234+\n", true),
    ] {
        let wire = crlf(text);
        let mut p = Parser::new(Limits::default());
        let (n, ev) = p.parse_message_ref(&wire).unwrap();
        assert_eq!(n, wire.len());
        let Some(MessageEventRef::Message(m)) = ev else {
            panic!("{ev:?}")
        };
        assert_eq!(m.body, has_body.then_some(&b""[..]));
        let mut out = Vec::new();
        write_message_ref(&m, &mut out);
        assert_eq!(out, wire);
    }

    // incomplete: the head alone, then the rest as parse_ref gives it
    let cut = wire.len() - 5;
    let mut p = Parser::new(Limits::default());
    let (n, ev) = p.parse_message_ref(&wire[..cut]).unwrap();
    assert!(matches!(
        ev,
        Some(MessageEventRef::Part(EventRef::Head { body: true, .. }))
    ));
    let (n2, ev) = p.parse_message_ref(&wire[n..cut]).unwrap();
    assert_eq!(
        ev,
        Some(MessageEventRef::Part(EventRef::Body(
            b"Hey Bob, are you there?"
        )))
    );
    let (_, ev) = p.parse_message_ref(&wire[n + n2..]).unwrap();
    assert_eq!(
        ev,
        Some(MessageEventRef::Part(EventRef::End(Continuation::Complete)))
    );

    // a broken end-line: the head, then the error at the same offset as parse gives
    let bad = crlf(&SEND.replace("a786hjs2$", "a786hjs2?"));
    let mut p = Parser::new(Limits::default());
    let (n, ev) = p.parse_message_ref(&bad).unwrap();
    assert!(matches!(
        ev,
        Some(MessageEventRef::Part(EventRef::Head { .. }))
    ));
    let (n2, ev) = p.parse_message_ref(&bad[n..]).unwrap();
    assert_eq!(
        ev,
        Some(MessageEventRef::Part(EventRef::Body(
            b"Hey Bob, are you there?"
        )))
    );
    let e = p.parse_message_ref(&bad[n + n2..]).unwrap_err();
    let expected = parse_messages(&bad, Limits::default()).unwrap_err();
    assert_eq!(e, expected);
    assert_eq!(e.kind(), &MessageError::InvalidContinuationFlag);
}

#[test]
fn every_split_gives_the_same_messages() {
    let mut wire = crlf(SEND);
    wire.extend(crlf(OK));
    let whole = parse_messages(&wire, Limits::default()).unwrap();
    assert_eq!(whole.len(), 2);
    assert_eq!(parse_bytewise(&wire, Limits::default()).unwrap(), whole);
    for a in 0..wire.len() {
        let (r, _) = parse_in_pieces(&wire, &[a], Limits::default());
        assert_eq!(r.unwrap(), whole, "split at {a}");
    }
}

#[test]
fn fake_end_line_with_other_tid_is_body() {
    let body = "line1\r\n-------a786hjs2X$\r\n-------a786hjs2+more\r\n-------other$\r\nend";
    let wire = format!(
        "MSRP a786hjs2 SEND\r\nTo-Path: msrp://b.example.com:1/s;tcp\r\nFrom-Path: msrp://a.example.com:1/s;tcp\r\nContent-Type: text/plain\r\n\r\n{body}\r\n-------a786hjs2+\r\n"
    );
    let msgs = parse_bytewise(wire.as_bytes(), Limits::default()).unwrap();
    assert_eq!(msgs[0].body.as_deref(), Some(body.as_bytes()));
    assert_eq!(msgs[0].continuation, Continuation::More);
    assert_eq!(
        parse_messages(wire.as_bytes(), Limits::default()).unwrap(),
        msgs
    );
}

#[test]
fn bodiless_and_empty_body_are_distinct() {
    let bodiless = crlf("MSRP abcd1234 SEND\nTo-Path: msrp://b.example.com:1/s;tcp\nFrom-Path: msrp://a.example.com:1/s;tcp\n-------abcd1234$\n");
    let empty = crlf("MSRP abcd1234 SEND\nTo-Path: msrp://b.example.com:1/s;tcp\nFrom-Path: msrp://a.example.com:1/s;tcp\nContent-Type: text/plain\n\n\n-------abcd1234$\n");
    let a = parse_messages(&bodiless, Limits::default()).unwrap();
    let b = parse_messages(&empty, Limits::default()).unwrap();
    assert_eq!(a[0].body, None);
    assert_eq!(b[0].body, Some(vec![]));
    assert_eq!(encode_all(&a), bodiless);
    assert_eq!(encode_all(&b), empty);
}

#[test]
fn writer_reproduces_input_byte_for_byte() {
    let mut wire = crlf(SEND);
    wire.extend(crlf(OK));
    // odd but legal spelling and spacing survive
    wire.extend(crlf("MSRP zz99.x=y REPORT\nto-path: msrp://a.example.com:1/s;tcp\nFROM-PATH:msrp://b.example.com:1/s;tcp\nMessage-ID: 12345\nByte-Range: 1-*/*\nStatus: 000 200 OK\nX-Ext: anything goes\n-------zz99.x=y$\n"));
    let msgs = parse_messages(&wire, Limits::default()).unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(encode_all(&msgs), wire);
    let r = &msgs[2].head;
    assert_eq!(r.get("x-ext"), Some("anything goes"));
    assert_eq!(r.status().unwrap().code, StatusCode::OK);
    assert_eq!(r.byte_range().unwrap().end, None);
}

#[test]
fn builder_output_parses_back() {
    let to = MsrpUri::parse("msrp://bob.example.com:8888/9di4ea;tcp").unwrap();
    let from = MsrpUri::parse("msrp://alice.example.com:7777/iau39;tcp").unwrap();
    let mut head = MessageHead::request("dkei38sd", Method::Send).unwrap();
    head.push_to_path(std::slice::from_ref(&to))
        .unwrap()
        .push_from_path(std::slice::from_ref(&from))
        .unwrap()
        .push_message_id("456s9wlk3")
        .unwrap()
        .push_byte_range(ByteRange::new(1, None, Some(100)).unwrap())
        .unwrap()
        .push_failure_report(FailureReport::Partial)
        .unwrap()
        .push("X-Custom", "v")
        .unwrap()
        .push_content_type("text/plain; charset=utf-8")
        .unwrap();
    let m = Message {
        head,
        body: Some(b"Hi\r\n-------dkei38sdX\r\n".to_vec()),
        continuation: Continuation::More,
    };
    let wire = m.encode().unwrap();
    let back = parse_messages(&wire, Limits::default()).unwrap();
    assert_eq!(back, vec![m.clone()]);
    let h = &back[0].head;
    assert_eq!(h.to_path(), vec![to]);
    assert_eq!(h.failure_report(), Some(FailureReport::Partial));
    assert_eq!(h.content_type().unwrap().param("charset"), Some("utf-8"));

    // a response
    let mut r = MessageHead::response("dkei38sd", StatusCode::OK, Some("OK")).unwrap();
    r.push_to_path(&[from]).unwrap();
    r.push("From-Path", "msrp://bob.example.com:8888/9di4ea;tcp")
        .unwrap();
    let rm = Message {
        head: r,
        body: None,
        continuation: Continuation::Complete,
    };
    assert_eq!(
        parse_messages(&rm.encode().unwrap(), Limits::default()).unwrap(),
        vec![rm]
    );
}

#[test]
fn builder_enforces_the_same_rules() {
    let mut h = MessageHead::request("abcd1234", Method::Send).unwrap();
    assert_eq!(
        h.push("From-Path", "msrp://a.example.com:1/s;tcp")
            .unwrap_err(),
        MessageError::ToPathNotFirst
    );
    h.push("To-Path", "msrp://a.example.com:1/s;tcp").unwrap();
    assert_eq!(
        h.push("To-Path", "msrp://a.example.com:1/s;tcp")
            .unwrap_err(),
        MessageError::DuplicateHeader(HeaderKind::ToPath)
    );
    assert_eq!(
        h.push("Message-ID", "x").unwrap_err(),
        MessageError::FromPathNotSecond
    );
    h.push("From-Path", "msrp://b.example.com:1/s;tcp").unwrap();
    assert_eq!(
        h.push("Byte-Range", "0-1/1").unwrap_err(),
        MessageError::InvalidByteRange(msrp_proto::message::ByteRangeError::StartZero)
    );
    assert_eq!(
        h.push("Bad Name", "x").unwrap_err(),
        MessageError::InvalidHeaderName
    );
    assert_eq!(h.push("X", "a\0b").unwrap_err(), MessageError::NulByte);
    assert_eq!(
        MessageHead::request("ab", Method::Send).unwrap_err(),
        MessageError::InvalidTransactionId
    );
    assert_eq!(
        MessageHead::request("abcd", Method::Other("send".into())).unwrap_err(),
        MessageError::InvalidMethod
    );
    // a body needs Content-Type last; MIME headers need a body
    let mut m = Message {
        head: h.clone(),
        body: Some(b"x".to_vec()),
        continuation: Continuation::Complete,
    };
    assert_eq!(m.encode().unwrap_err(), MessageError::MissingContentType);
    m.head.push_content_type("text/plain").unwrap();
    m.head.push("X-After", "y").unwrap();
    assert_eq!(m.encode().unwrap_err(), MessageError::ContentTypeNotLast);
    m.head.remove("X-After").unwrap();
    m.body = None;
    assert_eq!(
        m.encode().unwrap_err(),
        MessageError::MimeHeaderWithoutBody(HeaderKind::ContentType)
    );
    m.body = Some(b"a\r\n-------abcd1234$\r\n".to_vec());
    assert_eq!(m.encode().unwrap_err(), MessageError::EndLineInBody);
}

#[test]
fn relay_style_rewrites() {
    let mut msgs = parse_messages(&crlf(SEND), Limits::default()).unwrap();
    let h = &mut msgs[0].head;
    h.set(
        "To-Path",
        "msrp://relay.example.com:2855/x;tcp msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp",
    )
    .unwrap();
    h.set_transaction_id("newtid99").unwrap();
    assert_eq!(h.to_path().len(), 2);
    assert_eq!(h.transaction_id(), "newtid99");
    assert_eq!(h.header_count(), 5);
    assert_eq!(h.headers().next().unwrap().name, "To-Path");
    let wire = msgs[0].encode().unwrap();
    assert_eq!(parse_messages(&wire, Limits::default()).unwrap(), msgs);
    // removing To-Path would break the order rule: refused, head unchanged
    let before = msgs[0].head.clone();
    assert_eq!(
        msgs[0].head.remove("To-Path").unwrap_err(),
        MessageError::ToPathNotFirst
    );
    assert_eq!(msgs[0].head, before);
}

#[test]
fn error_carries_offset_tid_and_status() {
    let mut wire = crlf(OK);
    let bad_at = wire.len();
    wire.extend(crlf("MSRP abcd1234 SEND\nTo-Path: msrp://a.example.com:1/s;tcp\nFrom-Path: msrp://b.example.com:1/s;tcp\nByte-Range: 5-3/9\n-------abcd1234$\n"));
    let e = parse_messages(&wire, Limits::default()).unwrap_err();
    assert_eq!(
        e.kind(),
        &MessageError::InvalidByteRange(msrp_proto::message::ByteRangeError::EndBeforeStart)
    );
    let line = b"MSRP abcd1234 SEND\r\nTo-Path: msrp://a.example.com:1/s;tcp\r\nFrom-Path: msrp://b.example.com:1/s;tcp\r\nByte-Range: ".len();
    assert_eq!(e.offset(), (bad_at + line) as u64);
    assert_eq!(e.transaction_id(), Some("abcd1234"));
    assert_eq!(e.status_code(), StatusCode::BAD_REQUEST);
    assert!(e.to_string().contains("Byte-Range"), "{e}");
}
