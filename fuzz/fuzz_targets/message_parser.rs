//! The message parser on arbitrary bytes: never panics; whatever parses is written back
//! byte for byte by the writer (the parser keeps the wire text, and the writer must accept
//! everything the parser does); the whole-head fast path and the general path give the same
//! result, and so does `parse_message_ref` (whole messages at once).
#![no_main]

use libfuzzer_sys::fuzz_target;
use msrp_proto::message::{
    body_contains_end_line, parse_messages, write_message_ref, Continuation, Event, EventRef,
    Limits, Message, MessageEventRef, ParseError, Parser,
};

/// `parse_messages` with the whole-head fast path off.
fn parse_general(input: &[u8], limits: Limits) -> Result<Vec<Message>, ParseError> {
    let mut p = Parser::new(limits);
    p.set_fast_head(false);
    let mut out = Vec::new();
    let mut cur: Option<Message> = None;
    let mut pos = 0;
    loop {
        let (n, ev) = p.parse(&input[pos..])?;
        pos += n;
        match ev {
            None => break,
            Some(Event::Head { head, body }) => {
                cur = Some(Message {
                    head,
                    body: body.then(Vec::new),
                    continuation: Continuation::Complete,
                })
            }
            Some(Event::Body(b)) => cur
                .as_mut()
                .unwrap()
                .body
                .as_mut()
                .unwrap()
                .extend_from_slice(b),
            Some(Event::End(f)) => {
                let mut m = cur.take().unwrap();
                m.continuation = f;
                out.push(m);
            }
        }
    }
    p.finish(&input[pos..])?;
    Ok(out)
}

/// `parse_messages` through `Parser::parse_message_ref` (whole messages at once when the
/// buffer holds them); each whole message written back with `write_message_ref` must be
/// exactly the bytes it was parsed from.
fn parse_whole_messages(input: &[u8], limits: Limits) -> Result<Vec<Message>, ParseError> {
    let mut p = Parser::new(limits);
    let mut out = Vec::new();
    let mut cur: Option<Message> = None;
    let mut pos = 0;
    loop {
        let (n, ev) = p.parse_message_ref(&input[pos..])?;
        match ev {
            None => break,
            Some(MessageEventRef::Message(m)) => {
                let mut w = Vec::new();
                write_message_ref(&m, &mut w);
                assert_eq!(w, &input[pos..pos + n], "write_message_ref differs");
                out.push(Message {
                    head: m.head.to_head(),
                    body: m.body.map(<[u8]>::to_vec),
                    continuation: m.end,
                });
            }
            Some(MessageEventRef::Part(EventRef::Head { head, body })) => {
                cur = Some(Message {
                    head: head.to_head(),
                    body: body.then(Vec::new),
                    continuation: Continuation::Complete,
                })
            }
            Some(MessageEventRef::Part(EventRef::Body(b))) => cur
                .as_mut()
                .unwrap()
                .body
                .as_mut()
                .unwrap()
                .extend_from_slice(b),
            Some(MessageEventRef::Part(EventRef::End(f))) => {
                let mut m = cur.take().unwrap();
                m.continuation = f;
                out.push(m);
            }
        }
        pos += n;
    }
    p.finish(&input[pos..])?;
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks tight or default limits, so the limit paths get exercised too.
    let (limits, input) = match data.split_first() {
        Some((&b, rest)) if b & 1 == 1 => (
            Limits {
                max_start_line: 48,
                max_head_bytes: 256,
                max_headers: 6,
                max_body_bytes: 64,
                max_path_uris: 2,
            },
            rest,
        ),
        Some((_, rest)) => (Limits::default(), rest),
        None => return,
    };
    let result = parse_messages(input, limits);
    // The parser's whole-head fast path must agree with its general path: same messages, or
    // the same error at the same offset.
    assert_eq!(
        result,
        parse_general(input, limits),
        "fast and general head paths differ"
    );
    // Whole messages at once (parse_message_ref) must give the same messages or error.
    assert_eq!(
        result,
        parse_whole_messages(input, limits),
        "parse_message_ref differs from parse"
    );
    match result {
        Ok(msgs) => {
            let mut out = Vec::with_capacity(input.len());
            for m in &msgs {
                if let Some(b) = &m.body {
                    assert!(!body_contains_end_line(b, m.head.transaction_id()));
                }
                m.encode_into(&mut out)
                    .expect("a parsed message must encode");
            }
            assert_eq!(out, input, "writer output differs from parsed input");
        }
        Err(e) => {
            assert!(
                e.offset() <= input.len() as u64,
                "error offset beyond input: {e}"
            );
            let _ = e.status_code();
        }
    }
});
