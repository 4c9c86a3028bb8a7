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
            match p.parse(&buf[pos..]) {
                Err(e) => return (Err(e), max_buf),
                Ok((n, ev)) => {
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
                        Some(Event::Body(b)) => {
                            assert!(!b.is_empty(), "empty body fragment");
                            cur.as_mut()
                                .unwrap()
                                .body
                                .as_mut()
                                .unwrap()
                                .extend_from_slice(b)
                        }
                        Some(Event::End(f)) => {
                            let mut m = cur.take().unwrap();
                            m.continuation = f;
                            out.push(m);
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
    use msrp_proto::message::EventRef;
    let mut p = Parser::new(limits);
    p.set_fast_head(fast);
    let mut out = Vec::new();
    let mut cur: Option<Message> = None;
    let mut pos = 0;
    loop {
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
            Some(Event::Head { head, body }) => {
                cur = Some(Message {
                    head,
                    body: body.then(Vec::new),
                    continuation: Continuation::Complete,
                })
            }
            Some(Event::Body(b)) => cur
                .as_mut()
                .and_then(|m| m.body.as_mut())
                .expect("body after a head with body")
                .extend_from_slice(b),
            Some(Event::End(f)) => {
                let mut m = cur.take().expect("end after a head");
                m.continuation = f;
                out.push(m);
            }
        }
    }
    p.finish(&input[pos..])?;
    Ok(out)
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
}
