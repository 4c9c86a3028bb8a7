//! The message parser fed in arbitrary pieces: the result (messages, or the error and its
//! offset) is the same as when the whole input is given at once, and the reader's buffer
//! stays bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use msrp_proto::message::{parse_messages, Continuation, Event, Limits, Message, Parser};

fuzz_target!(|data: &[u8]| {
    // First 8 bytes: piece sizes (1..=256); the rest: the stream.
    if data.len() < 8 {
        return;
    }
    let (sizes, input) = data.split_at(8);
    let limits = Limits::default();
    let whole = parse_messages(input, limits);

    let mut p = Parser::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut out: Vec<Message> = Vec::new();
    let mut cur: Option<Message> = None;
    let mut pos = 0;
    let mut k = 0;
    let result = 'feed: loop {
        let n = (sizes[k % 8] as usize + 1).min(input.len() - pos);
        k += 1;
        buf.extend_from_slice(&input[pos..pos + n]);
        pos += n;
        assert!(
            buf.len() <= limits.max_head_bytes + 44 + 256,
            "buffer grew to {}",
            buf.len()
        );
        let mut used = 0;
        loop {
            match p.parse(&buf[used..]) {
                Err(e) => break 'feed Err(e),
                Ok((c, ev)) => {
                    used += c;
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
                            assert!(!b.is_empty());
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
        buf.drain(..used);
        if pos == input.len() {
            break match p.finish(&buf) {
                Ok(()) => Ok(out),
                Err(e) => Err(e),
            };
        }
    };
    assert_eq!(result, whole);
});
