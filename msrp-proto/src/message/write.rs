//! The message writer (RFC 4975 §7.1, §7.2, §9).
//!
//! A sender streaming a chunk writes [`write_head`], then for a body [`write_body_start`] and
//! the body bytes, then [`write_end_line`]. [`Message::encode`](super::Message::encode) does it
//! all for a message in memory.

use super::parse::{classify_tail, Tail};
use super::{Continuation, HeadRef, MessageHead, MessageRef};
use memchr::memmem;

/// Appends the start line and headers (each ending in CRLF) exactly as held by `head`.
pub fn write_head(head: &MessageHead, out: &mut Vec<u8>) {
    out.extend_from_slice(head.as_str().as_bytes());
}

/// [`write_head`] for a borrowed head (as [`Parser::parse_ref`](super::Parser::parse_ref)
/// gives it): appends its text unchanged.
pub fn write_head_ref(head: &HeadRef<'_, '_>, out: &mut Vec<u8>) {
    out.extend_from_slice(head.as_bytes());
}

/// Appends a whole message as [`Parser::parse_message_ref`](super::Parser::parse_message_ref)
/// gives it: the head, for a body the blank line and the body, then the end-line (RFC 4975
/// §7.1: the CRLF before the end-line after a body). The same bytes as [`write_head_ref`],
/// [`write_body_start`], the body and [`write_end_line`], with one reservation.
#[inline]
pub fn write_message_ref(msg: &MessageRef<'_, '_>, out: &mut Vec<u8>) {
    let head = msg.head.as_bytes();
    let tid = msg.head.transaction_id_bytes();
    out.reserve(head.len() + msg.body.map_or(0, |b| b.len() + 4) + tid.len() + 10);
    out.extend_from_slice(head);
    match msg.body {
        Some(body) => {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(body);
            out.extend_from_slice(b"\r\n-------");
        }
        None => out.extend_from_slice(b"-------"),
    }
    out.extend_from_slice(tid);
    out.extend_from_slice(&[msg.end.as_byte(), b'\r', b'\n']);
}

/// Appends the blank line that separates the headers from a body (RFC 4975 §7.1: "The body
/// MUST be separated from the header fields with an extra CRLF"). Write it only when a body,
/// possibly empty, follows.
pub fn write_body_start(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\r\n");
}

/// Appends the end-line `-------` tid flag CRLF. After a body (`after_body`), first the CRLF
/// that RFC 4975 §7.1 requires before the end-line ("If a body is present, the end-line MUST
/// be preceded by a CRLF that is not part of the body").
/// `tid` is a `&str` or, for example, [`HeadRef::transaction_id_bytes`].
pub fn write_end_line(
    tid: impl AsRef<[u8]>,
    after_body: bool,
    flag: Continuation,
    out: &mut Vec<u8>,
) {
    let tid = tid.as_ref();
    out.reserve(12 + tid.len());
    if after_body {
        out.extend_from_slice(b"\r\n-------");
    } else {
        out.extend_from_slice(b"-------");
    }
    out.extend_from_slice(tid);
    out.extend_from_slice(&[flag.as_byte(), b'\r', b'\n']);
}

/// True when `body`, sent with transaction id `tid`, would be read differently by a
/// receiver: it contains the end-line for `tid` (RFC 4975 §7.1: the sender "MUST ensure that
/// the end-line [...] is not present in the body" and otherwise choose another transaction
/// id). Precisely: `"\r\n-------" + tid` anywhere, or `"-------" + tid` at the very start,
/// not followed by another `ident-char` (which would make it a different, longer id).
pub fn body_contains_end_line(body: &[u8], tid: &str) -> bool {
    let tid = tid.as_bytes();
    // What the receiver sees after `"-------" + tid` at `at`: the body bytes, then the
    // "\r\n-------" that always follows a body.
    let misread = |at: usize| {
        let mut tail = [0u8; 3];
        let following = body[at.min(body.len())..].iter().chain(b"\r\n-");
        for (t, &b) in tail.iter_mut().zip(following) {
            *t = b;
        }
        !matches!(classify_tail(&tail), Tail::Other)
    };
    if body.starts_with(b"-------") && body[7..].starts_with(tid) && misread(7 + tid.len()) {
        return true;
    }
    memmem::find_iter(body, b"\r\n-------").any(|m| {
        let after = m + 9;
        body[after..].starts_with(tid) && misread(after + tid.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_line_forms() {
        let mut out = Vec::new();
        write_end_line("abcd", false, Continuation::Complete, &mut out);
        assert_eq!(out, b"-------abcd$\r\n");
        out.clear();
        write_end_line("abcd", true, Continuation::More, &mut out);
        assert_eq!(out, b"\r\n-------abcd+\r\n");
        out.clear();
        write_end_line("abcd", true, Continuation::Abort, &mut out);
        assert_eq!(out, b"\r\n-------abcd#\r\n");
    }

    #[test]
    fn detects_end_line_in_body() {
        assert!(body_contains_end_line(b"x\r\n-------abcd$\r\n", "abcd"));
        assert!(body_contains_end_line(b"x\r\n-------abcd", "abcd"));
        assert!(body_contains_end_line(b"-------abcd+", "abcd"));
        assert!(body_contains_end_line(b"x\r\n-------abcd+\r\n", "abcd"));
        assert!(body_contains_end_line(b"x\r\n-------abcd!", "abcd"));
        // "+" followed by more id characters is a longer id
        assert!(!body_contains_end_line(b"x\r\n-------abcd+x\r\n", "abcd"));
        assert!(!body_contains_end_line(b"x\r\n-------abcd+\r", "abcd"));
        assert!(body_contains_end_line(b"-------abcd", "abcd"));
        // a longer id is another transaction's end-line: harmless
        assert!(!body_contains_end_line(b"x\r\n-------abcde$\r\n", "abcd"));
        // no CRLF before it and not at the start
        assert!(!body_contains_end_line(b"x-------abcd$\r\n", "abcd"));
        assert!(!body_contains_end_line(b"x\r\n-------abc", "abcd"));
        assert!(!body_contains_end_line(b"", "abcd"));
    }
}
