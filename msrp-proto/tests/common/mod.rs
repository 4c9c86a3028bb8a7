//! Helpers shared by the codec tests.
#![allow(dead_code)]

use msrp_proto::message::{Continuation, Event, Limits, Message, ParseError, Parser};

/// Feeds `input` to a parser in pieces ending at `cuts` (sorted offsets), the way a socket
/// reader would: unconsumed bytes stay at the front of the buffer and new bytes are appended.
/// Returns the messages (bodies collected) or the first error, and the largest number of
/// bytes the reader's buffer ever held.
pub fn parse_in_pieces(
    input: &[u8],
    cuts: &[usize],
    limits: Limits,
) -> (Result<Vec<Message>, ParseError>, usize) {
    parse_in_pieces_with(input, cuts, limits, false)
}

/// One call of the parser: [`Parser::parse`], or with `whole` [`Parser::parse_message_ref`]
/// with a whole message turned into its three events (no `Body` for an empty body), the
/// head copied. Also checks what the parser reports after a whole message.
pub fn parse_step<'b>(
    p: &mut Parser,
    buf: &'b [u8],
    whole: bool,
) -> Result<(usize, Vec<Event<'b>>), ParseError> {
    use msrp_proto::message::{EventRef, MessageEventRef};
    if !whole {
        let (n, ev) = p.parse(buf)?;
        return Ok((n, ev.into_iter().collect()));
    }
    let before = p.offset();
    let (n, ev) = p.parse_message_ref(buf)?;
    let evs = match ev {
        None => Vec::new(),
        Some(MessageEventRef::Message(m)) => {
            let mut v = vec![Event::Head {
                head: m.head.to_head(),
                body: m.body.is_some(),
            }];
            let body_len = m.body.map_or(0, |b| b.len());
            if let Some(b) = m.body.filter(|b| !b.is_empty()) {
                v.push(Event::Body(b));
            }
            v.push(Event::End(m.end));
            // the whole message: its bytes written back are exactly those consumed
            let mut out = Vec::new();
            msrp_proto::message::write_message_ref(&m, &mut out);
            assert_eq!(out, &buf[..n], "write_message_ref differs from the input");
            assert!(p.is_idle(), "not idle after a whole message");
            assert_eq!(p.body_len(), body_len as u64);
            v
        }
        Some(MessageEventRef::Part(e)) => vec![match e {
            EventRef::Head { head, body } => Event::Head {
                head: head.to_head(),
                body,
            },
            EventRef::Body(b) => Event::Body(b),
            EventRef::End(f) => Event::End(f),
        }],
    };
    assert_eq!(
        p.offset(),
        before + n as u64,
        "offset not moved by the bytes consumed"
    );
    Ok((n, evs))
}

/// [`parse_in_pieces`], through [`Parser::parse_message_ref`] when `whole`.
pub fn parse_in_pieces_with(
    input: &[u8],
    cuts: &[usize],
    limits: Limits,
    whole: bool,
) -> (Result<Vec<Message>, ParseError>, usize) {
    let mut p = Parser::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut cur: Option<Message> = None;
    let mut max_buf = 0;
    let mut last = 0;
    let ends = cuts
        .iter()
        .copied()
        .filter(|&c| c > 0 && c < input.len())
        .chain(std::iter::once(input.len()));
    for end in ends {
        if end < last {
            continue;
        }
        buf.extend_from_slice(&input[last..end]);
        last = end;
        max_buf = max_buf.max(buf.len());
        let mut pos = 0;
        loop {
            match parse_step(&mut p, &buf[pos..], whole) {
                Err(e) => return (Err(e), max_buf),
                Ok((n, evs)) => {
                    pos += n;
                    if evs.is_empty() {
                        break;
                    }
                    for ev in evs {
                        match ev {
                            Event::Head { head, body } => {
                                cur = Some(Message {
                                    head,
                                    body: body.then(Vec::new),
                                    continuation: Continuation::Complete,
                                })
                            }
                            Event::Body(b) => {
                                assert!(!b.is_empty(), "empty body fragment");
                                cur.as_mut()
                                    .unwrap()
                                    .body
                                    .as_mut()
                                    .unwrap()
                                    .extend_from_slice(b)
                            }
                            Event::End(f) => {
                                let mut m = cur.take().unwrap();
                                m.continuation = f;
                                out.push(m);
                            }
                        }
                    }
                }
            }
        }
        buf.drain(..pos);
    }
    if let Err(e) = p.finish(&buf) {
        return (Err(e), max_buf);
    }
    (Ok(out), max_buf)
}

/// Parses `input` fed one byte at a time.
pub fn parse_bytewise(input: &[u8], limits: Limits) -> Result<Vec<Message>, ParseError> {
    let cuts: Vec<usize> = (1..input.len()).collect();
    parse_in_pieces(input, &cuts, limits).0
}

/// Re-encodes messages.
pub fn encode_all(msgs: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        m.encode_into(&mut out).expect("encode");
    }
    out
}

/// Replaces LF by CRLF (for readable test literals).
pub fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}

/// Parses the whole `input` with one parser, as `parse_messages` does, but choosing the path:
/// `fast == false` turns the whole-head fast path off (the general path only), and
/// `borrowed` reads heads through `Parser::parse_ref` (copied with `HeadRef::to_head`).
pub fn parse_whole(
    input: &[u8],
    limits: Limits,
    fast: bool,
    borrowed: bool,
) -> Result<Vec<Message>, ParseError> {
    parse_whole_with(input, limits, fast, borrowed, false)
}

/// [`parse_whole`]; with `whole`, through [`Parser::parse_message_ref`] (`borrowed` is then
/// ignored).
pub fn parse_whole_with(
    input: &[u8],
    limits: Limits,
    fast: bool,
    borrowed: bool,
    whole: bool,
) -> Result<Vec<Message>, ParseError> {
    use msrp_proto::message::EventRef;
    let mut p = Parser::new(limits);
    p.set_fast_head(fast);
    let mut out = Vec::new();
    let mut cur: Option<Message> = None;
    let mut pos = 0;
    loop {
        if whole {
            let (n, evs) = parse_step(&mut p, &input[pos..], true)?;
            pos += n;
            if evs.is_empty() {
                break;
            }
            for ev in evs {
                collect(&mut cur, &mut out, ev);
            }
            continue;
        }
        let (n, ev) = if borrowed {
            let (n, ev) = p.parse_ref(&input[pos..])?;
            let ev = ev.map(|ev| match ev {
                EventRef::Head { head, body } => Event::Head {
                    head: head.to_head(),
                    body,
                },
                EventRef::Body(b) => Event::Body(b),
                EventRef::End(f) => Event::End(f),
            });
            (n, ev)
        } else {
            p.parse(&input[pos..])?
        };
        pos += n;
        match ev {
            None => break,
            Some(ev) => collect(&mut cur, &mut out, ev),
        }
    }
    p.finish(&input[pos..])?;
    Ok(out)
}

/// Adds one event to the message being collected (`cur`) or, at its end, to `out`.
fn collect(cur: &mut Option<Message>, out: &mut Vec<Message>, ev: Event<'_>) {
    match ev {
        Event::Head { head, body } => {
            *cur = Some(Message {
                head,
                body: body.then(Vec::new),
                continuation: Continuation::Complete,
            })
        }
        Event::Body(b) => cur
            .as_mut()
            .and_then(|m| m.body.as_mut())
            .expect("body after a head with body")
            .extend_from_slice(b),
        Event::End(f) => {
            let mut m = cur.take().expect("end after a head");
            m.continuation = f;
            out.push(m);
        }
    }
}

/// Checks that the whole-head fast path, the general path and the borrowed-head API all
/// give the same messages or the same error (kind, offset, transaction id) for `input`.
pub fn assert_paths_agree(input: &[u8], limits: Limits) {
    let fast = parse_whole(input, limits, true, false);
    let general = parse_whole(input, limits, false, false);
    assert_eq!(
        fast,
        general,
        "fast and general paths differ on {:?}",
        String::from_utf8_lossy(input)
    );
    let borrowed = parse_whole(input, limits, true, true);
    assert_eq!(
        borrowed,
        fast,
        "parse_ref differs from parse on {:?}",
        String::from_utf8_lossy(input)
    );
    assert_eq!(
        fast,
        msrp_proto::message::parse_messages(input, limits),
        "parse_messages differs"
    );
    let whole = parse_whole_with(input, limits, true, true, true);
    assert_eq!(
        whole,
        fast,
        "parse_message_ref differs from parse on {:?}",
        String::from_utf8_lossy(input)
    );
    let whole_general = parse_whole_with(input, limits, false, true, true);
    assert_eq!(
        whole_general,
        fast,
        "parse_message_ref (general head path) differs from parse on {:?}",
        String::from_utf8_lossy(input)
    );
}
