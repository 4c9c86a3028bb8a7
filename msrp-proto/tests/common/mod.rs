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
