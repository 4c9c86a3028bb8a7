//! The `send_200b` workload, shared by the criterion bench (`benches/codec.rs`) and the
//! instruction-count driver (`examples/send_200b_count.rs`), so both measure the same code.
#![allow(dead_code)]

use criterion::black_box;
use msrp_proto::message::{
    write_body_start, write_end_line, write_head, write_head_ref, write_message_ref, Event,
    EventRef, MessageEventRef, MessageHead, Parser,
};

/// The RFC 4975 §11.1 SEND (205 bytes: five headers, a 14-byte body).
pub const SEND: &[u8] = b"MSRP a786hjs2 SEND\r\n\
To-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n\
From-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\n\
Message-ID: 87652491\r\n\
Byte-Range: 1-16/16\r\n\
Content-Type: text/plain\r\n\
\r\n\
Hi, I'm Alice!\r\n\
-------a786hjs2$\r\n";

/// The same shape as HTTP: a request line of the same length, five headers with names and
/// values of the same lengths, the blank line and the same body.
pub fn http_equivalent() -> Vec<u8> {
    let text = std::str::from_utf8(SEND).unwrap();
    let mut lines = text.split("\r\n");
    let start = lines.next().unwrap();
    let mut out = format!("POST /{} HTTP/1.1\r\n", "p".repeat(start.len() - 15));
    for line in lines.by_ref().take_while(|l| !l.is_empty()) {
        let (n, v) = line.split_once(": ").unwrap();
        out += &format!("X-{}: {}\r\n", "h".repeat(n.len() - 2), "v".repeat(v.len()));
    }
    out += "\r\nHi, I'm Alice!";
    out.into_bytes()
}

/// Parses one message with `p` (a connection's parser, reused from message to message) and
/// writes it back into `out`, as a consumer that takes whole messages when it can: a message
/// complete in the buffer comes from one [`Parser::parse_message_ref`] call (head borrowed,
/// checked and indexed exactly as for the owned head) and is written with
/// [`write_message_ref`]; a partial one comes in parts, as from [`Parser::parse_ref`].
pub fn parse_and_write(p: &mut Parser, data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut pos = 0;
    let mut head: Option<(&[u8], bool)> = None;
    loop {
        let (n, ev) = p.parse_message_ref(&data[pos..]).unwrap();
        pos += n;
        match ev {
            Some(MessageEventRef::Message(m)) => {
                write_message_ref(&m, out);
                black_box(m);
                return;
            }
            Some(MessageEventRef::Part(EventRef::Head { head: h, body })) => {
                write_head_ref(&h, out);
                if body {
                    write_body_start(out);
                }
                head = Some((h.transaction_id_bytes(), body));
                black_box(h);
            }
            Some(MessageEventRef::Part(EventRef::Body(b))) => out.extend_from_slice(b),
            Some(MessageEventRef::Part(EventRef::End(f))) => {
                let (tid, body) = head.take().unwrap();
                write_end_line(tid, body, f, out);
                return;
            }
            None => unreachable!(),
        }
    }
}

/// [`parse_and_write`] event by event ([`Parser::parse_ref`]: head, body, end-line from
/// three calls; the target workload before `parse_message_ref`, information).
pub fn parse_and_write_events(p: &mut Parser, data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut pos = 0;
    let mut head: Option<(&[u8], bool)> = None;
    loop {
        let (n, ev) = p.parse_ref(&data[pos..]).unwrap();
        pos += n;
        match ev {
            Some(EventRef::Head { head: h, body }) => {
                write_head_ref(&h, out);
                if body {
                    write_body_start(out);
                }
                head = Some((h.transaction_id_bytes(), body));
                black_box(h);
            }
            Some(EventRef::Body(b)) => out.extend_from_slice(b),
            Some(EventRef::End(f)) => {
                let (tid, body) = head.take().unwrap();
                write_end_line(tid, body, f, out);
                return;
            }
            None => unreachable!(),
        }
    }
}

/// [`parse_and_write`] with the owned head ([`Parser::parse`]): the head's text and index
/// copied into a [`MessageHead`] (information, not the target).
pub fn parse_and_write_owned(p: &mut Parser, data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut pos = 0;
    let mut head: Option<(MessageHead, bool)> = None;
    loop {
        let (n, ev) = p.parse(&data[pos..]).unwrap();
        pos += n;
        match ev {
            Some(Event::Head { head: h, body }) => {
                write_head(&h, out);
                if body {
                    write_body_start(out);
                }
                head = Some((h, body));
            }
            Some(Event::Body(b)) => out.extend_from_slice(b),
            Some(Event::End(f)) => {
                let (h, body) = head.take().unwrap();
                write_end_line(h.transaction_id(), body, f, out);
                black_box(h);
                return;
            }
            None => unreachable!(),
        }
    }
}

/// The httparse baseline: parse `http` (borrowed headers, as httparse always does).
pub fn httparse_parse(http: &[u8]) {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut req = httparse::Request::new(&mut headers);
    let st = req.parse(black_box(http)).unwrap();
    black_box((st, req.headers.len()));
}
