//! Hostile inputs: each gives its specific error at the right byte offset, whether the bytes
//! arrive at once or one by one, never a panic, and the reader's buffer stays within the
//! limits.

mod common;

use common::{parse_bytewise, parse_in_pieces};
use msrp_proto::message::{
    parse_messages, ByteRangeError, Event, HeaderKind, Limits, MessageError, Parser, StatusCode,
};
use msrp_proto::uri::UriError;

const TO: &str = "To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n";
const FROM: &str = "From-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp\r\n";

/// A bodiless SEND with `extra` headers after To-Path and From-Path.
fn req(extra: &str) -> String {
    format!("MSRP abcd1234 SEND\r\n{TO}{FROM}{extra}-------abcd1234$\r\n")
}

/// A SEND with a body.
fn send_body(extra: &str, body: &str) -> String {
    format!(
        "MSRP abcd1234 SEND\r\n{TO}{FROM}{extra}Content-Type: text/plain\r\n\r\n{body}\r\n-------abcd1234$\r\n"
    )
}

struct Case {
    name: &'static str,
    input: Vec<u8>,
    limits: Limits,
    err: MessageError,
    /// Expected offset, or where to find it: the first occurrence of a marker.
    at: At,
}

enum At {
    Offset(usize),
    Marker(&'static str),
    /// Just after the first occurrence of a marker.
    After(&'static str),
}

fn case(name: &'static str, input: impl Into<Vec<u8>>, err: MessageError, at: At) -> Case {
    Case {
        name,
        input: input.into(),
        limits: Limits::default(),
        err,
        at,
    }
}

fn offset_of(hay: &[u8], needle: &str) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap_or_else(|| panic!("marker {needle:?} not in input"))
}

fn small() -> Limits {
    Limits {
        max_start_line: 64,
        max_head_bytes: 512,
        max_headers: 8,
        max_body_bytes: 1000,
        max_path_uris: 3,
    }
}

fn cases() -> Vec<Case> {
    use At::*;
    use MessageError as E;
    let mut v = vec![
        // --- start line (RFC 4975 §9 req-start / resp-start)
        case("http request", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", E::NotMsrp, Offset(0)),
        case("lowercase msrp", req("").replace("MSRP", "msrp"), E::NotMsrp, Offset(0)),
        case("empty line first", "\r\nMSRP abcd1234 SEND\r\n", E::NotMsrp, Offset(0)),
        case("double space before tid", req("").replace("MSRP ", "MSRP  "), E::InvalidTransactionId, Offset(5)),
        case("tid too short", req("").replace("abcd1234", "abc"), E::InvalidTransactionId, Offset(5)),
        case("tid too long", req("").replace("abcd1234", &"a".repeat(33)), E::InvalidTransactionId, Offset(5)),
        case("tid bad char", req("").replace("abcd1234", "ab_cd"), E::InvalidTransactionId, Offset(5)),
        case("tid starts with dash", req("").replace("abcd1234", "-abcd"), E::InvalidTransactionId, Offset(5)),
        case("lowercase method", req("").replace("SEND", "send"), E::InvalidMethod, Marker("send")),
        case("mixed-case method", req("").replace("SEND", "Send"), E::InvalidMethod, Marker("Send")),
        case("method with digit", req("").replace("SEND", "SEND2"), E::InvalidMethod, Marker("SEND2")),
        case("method with trailing space", req("").replace("SEND\r\n", "SEND \r\n"), E::InvalidMethod, Marker("SEND ")),
        case("no method", "MSRP abcd1234\r\n", E::MalformedStartLine, Offset(13)),
        case("status two digits", "MSRP abcd1234 20 OK\r\n", E::InvalidStatusCode, Offset(14)),
        case("status four digits", "MSRP abcd1234 2000\r\n", E::InvalidStatusCode, Offset(14)),
        case("status glued to comment", "MSRP abcd1234 200OK\r\n", E::InvalidStatusCode, Offset(14)),
        case("start line too long, no CRLF", format!("MSRP abcd1234 200 {}", "x".repeat(2000)), E::StartLineTooLong(1024), Offset(1024)),
        case("start line too long", format!("MSRP abcd1234 200 {}\r\n", "x".repeat(2000)), E::StartLineTooLong(1024), Offset(1024)),
        case("bare LF after start line", "MSRP abcd1234 SEND\n", E::BareLineFeed, Offset(18)),
        case("NUL in comment", "MSRP abcd1234 200 O\0K\r\n", E::NulByte, Offset(19)),
        case("escape in comment", "MSRP abcd1234 200 O\x1bK\r\n", E::ControlCharacter, Offset(19)),
        case("non-UTF-8 comment", b"MSRP abcd1234 200 O\xffK\r\nTo-Path: msrp://a.example.com:1/s;tcp\r\nFrom-Path: msrp://b.example.com:1/s;tcp\r\n-------abcd1234$\r\n".to_vec(), E::InvalidUtf8, Offset(19)),
        // --- header lines (RFC 4975 §9 ext-header, hname, utf8text)
        case("header without colon", req("Message-ID 12345\r\n"), E::HeaderWithoutColon, Marker("Message-ID 1")),
        case("space before colon", req("X-Foo : bar\r\n"), E::InvalidHeaderName, Marker("X-Foo")),
        case("folded header line", req(" continued\r\n"), E::InvalidHeaderName, Marker(" continued")),
        case("header name starts with digit", req("1X: y\r\n"), E::InvalidHeaderName, Marker("1X")),
        case("NUL in header value", req("X-Foo: a\0b\r\n"), E::NulByte, Marker("\0")),
        case("bare CR in header value", req("X-Foo: a\rb\r\n"), E::ControlCharacter, Marker("\rb")),
        case("DEL in header value", req("X-Foo: a\x7fb\r\n"), E::ControlCharacter, Marker("\x7f")),
        case("bare LF in headers", req("X-Foo: a\nX-Bar: b\r\n"), E::BareLineFeed, Marker("\nX-Bar")),
        case("non-UTF-8 header value", {
            let mut b = req("X-Foo: caf\u{e9}\r\n").into_bytes();
            let i = offset_of(&b, "\u{e9}");
            b.splice(i..i + 2, [0xe9]);
            b
        }, E::InvalidUtf8, After("X-Foo: caf")),
        case("truncated UTF-8 in header value", {
            let mut b = req("X-Foo: ab\u{20ac}\r\n").into_bytes();
            let i = offset_of(&b, "\u{20ac}");
            b.remove(i + 2);
            b
        }, E::InvalidUtf8, After("X-Foo: ab")),
        // --- To-Path / From-Path (RFC 4975 §9 headers, §7.1)
        case("no headers", "MSRP abcd1234 SEND\r\n-------abcd1234$\r\n", E::MissingToPath, Offset(20)),
        case("only To-Path", format!("MSRP abcd1234 SEND\r\n{TO}-------abcd1234$\r\n"), E::MissingFromPath, Marker("-------")),
        case("From-Path first", format!("MSRP abcd1234 SEND\r\n{FROM}{TO}-------abcd1234$\r\n"), E::ToPathNotFirst, Offset(20)),
        case("other header second", format!("MSRP abcd1234 SEND\r\n{TO}Message-ID: 12345\r\n{FROM}-------abcd1234$\r\n"), E::FromPathNotSecond, Marker("Message-ID")),
        case("duplicated To-Path", format!("MSRP abcd1234 SEND\r\n{TO}{TO}{FROM}-------abcd1234$\r\n"), E::DuplicateHeader(HeaderKind::ToPath), Offset(20 + TO.len())),
        case("duplicated To-Path later", req(TO), E::DuplicateHeader(HeaderKind::ToPath), Offset(20 + TO.len() + FROM.len())),
        case("duplicated From-Path", req(FROM), E::DuplicateHeader(HeaderKind::FromPath), Offset(20 + TO.len() + FROM.len())),
        case("To-Path not an MSRP URI", req("").replace("msrp://bob", "http://bob"), E::InvalidUri { header: HeaderKind::ToPath, error: UriError::BadScheme }, Marker("http://")),
        case("To-Path double space", req("").replace(";tcp\r\nFrom", ";tcp  msrp://x.example.com:1/a;tcp\r\nFrom"), E::InvalidUri { header: HeaderKind::ToPath, error: UriError::Empty }, Marker("msrp://bob")),
        case("From-Path IP without port", req("").replace("alice.example.com:7777", "192.0.2.1"), E::InvalidUri { header: HeaderKind::FromPath, error: UriError::IpWithoutPort }, Marker("msrp://192")),
        case("To-Path empty", req("").replace("To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp", "To-Path:"), E::InvalidUri { header: HeaderKind::ToPath, error: UriError::Empty }, Marker("\r\nFrom")),
        // --- typed headers
        case("Message-ID too short", req("Message-ID: ab\r\n"), E::InvalidMessageId, Marker("ab\r\n")),
        case("Message-ID with space", req("Message-ID: abcd efgh\r\n"), E::InvalidMessageId, Marker("abcd efgh")),
        case("duplicated Message-ID", req("Message-ID: 12345\r\nMessage-ID: 12346\r\n"), E::DuplicateHeader(HeaderKind::MessageId), Marker("Message-ID: 12346")),
        case("Success-Report maybe", req("Success-Report: maybe\r\n"), E::InvalidReportValue(HeaderKind::SuccessReport), Marker("maybe")),
        case("Success-Report partial", req("Success-Report: partial\r\n"), E::InvalidReportValue(HeaderKind::SuccessReport), Marker("partial")),
        case("Failure-Report sometimes", req("Failure-Report: sometimes\r\n"), E::InvalidReportValue(HeaderKind::FailureReport), Marker("sometimes")),
        case("Byte-Range overflow", req("Byte-Range: 1-99999999999999999999/*\r\n"), E::InvalidByteRange(ByteRangeError::Overflow), Marker("1-999")),
        case("Byte-Range start 0", req("Byte-Range: 0-10/10\r\n"), E::InvalidByteRange(ByteRangeError::StartZero), Marker("0-10")),
        case("Byte-Range end before start", req("Byte-Range: 10-5/20\r\n"), E::InvalidByteRange(ByteRangeError::EndBeforeStart), Marker("10-5")),
        case("Byte-Range end after total", req("Byte-Range: 1-30/20\r\n"), E::InvalidByteRange(ByteRangeError::EndAfterTotal), Marker("1-30")),
        case("Byte-Range start after total", req("Byte-Range: 30-*/20\r\n"), E::InvalidByteRange(ByteRangeError::EndAfterTotal), Marker("30-*")),
        case("Byte-Range garbage", req("Byte-Range: bytes=1-2\r\n"), E::InvalidByteRange(ByteRangeError::Syntax), Marker("bytes=")),
        case("Byte-Range negative", req("Byte-Range: -1-2/3\r\n"), E::InvalidByteRange(ByteRangeError::Syntax), Marker("-1-2")),
        case("Status without namespace", req("Status: 200 OK\r\n"), E::InvalidStatusHeader, Marker("200 OK")),
        case("Status two-digit code", req("Status: 000 20\r\n"), E::InvalidStatusHeader, Marker("000 20")),
        case("Content-Type without subtype", send_body("", "x").replace("text/plain", "text"), E::InvalidContentType, Marker("text\r\n")),
        case("Content-Type unterminated quote", send_body("", "x").replace("text/plain", "text/plain; a=\"b"), E::InvalidContentType, Marker("text/plain;")),
        case("Expires not a number", req("Expires: soon\r\n"), E::InvalidExpires(HeaderKind::Expires), Marker("soon")),
        case("Max-Expires overflow", req("Max-Expires: 99999999999\r\n"), E::InvalidExpires(HeaderKind::MaxExpires), Marker("9999")),
        case("too many headers", req(&"X-A: b\r\n".repeat(63)), E::TooManyHeaders(64), Offset(20 + TO.len() + FROM.len() + 62 * 8)),
        case("head too large", req(&format!("X-A: {}\r\n", "b".repeat(17000))), E::HeadTooLarge(16384), Offset(16384)),
        // --- bodies (RFC 4975 §7.1)
        case("body without Content-Type", format!("MSRP abcd1234 SEND\r\n{TO}{FROM}\r\nhello\r\n-------abcd1234$\r\n"), E::MissingContentType, Marker("\r\nhello")),
        case("Content-Type not last", send_body("", "x").replace("Content-Type: text/plain\r\n", "Content-Type: text/plain\r\nMessage-ID: 12345\r\n"), E::ContentTypeNotLast, After("12345\r\n")),
        case("Content-Type without body", req("Content-Type: text/plain\r\n"), E::MimeHeaderWithoutBody(HeaderKind::ContentType), Marker("-------")),
        case("Content-ID in response", "MSRP abcd1234 200 OK\r\nTo-Path: msrp://a.example.com:1/s;tcp\r\nFrom-Path: msrp://b.example.com:1/s;tcp\r\nContent-ID: <x@y>\r\n-------abcd1234$\r\n", E::MimeHeaderWithoutBody(HeaderKind::ContentId), Marker("-------")),
        case("response with body", "MSRP abcd1234 200 OK\r\nTo-Path: msrp://a.example.com:1/s;tcp\r\nFrom-Path: msrp://b.example.com:1/s;tcp\r\nContent-Type: text/plain\r\n\r\nhi\r\n-------abcd1234$\r\n", E::ResponseWithBody, Marker("\r\nhi")),
        case("REPORT body over 10240", format!("MSRP abcd1234 REPORT\r\n{TO}{FROM}Content-Type: text/plain\r\n\r\n{}\r\n-------abcd1234$\r\n", "r".repeat(10241)), E::NonSendBodyTooLarge, Offset(format!("MSRP abcd1234 REPORT\r\n{TO}{FROM}Content-Type: text/plain\r\n\r\n").len() + 10240)),
        // --- end-lines (RFC 4975 §7.1, §9 end-line)
        case("end-line tid mismatch", req("").replace("-------abcd1234$", "-------abcd9999$"), E::EndLineMismatch, After("-------")),
        case("end-line longer tid", req("").replace("-------abcd1234$", "-------abcd12345$"), E::EndLineMismatch, After("-------")),
        case("end-line bad flag", req("").replace("-------abcd1234$", "-------abcd1234!"), E::InvalidContinuationFlag, Marker("!")),
        case("end-line without CRLF", req("").replace("-------abcd1234$\r\n", "-------abcd1234$X\r\n"), E::MalformedEndLine, Marker("X\r\n")),
        case("response with + flag", "MSRP abcd1234 200 OK\r\nTo-Path: msrp://a.example.com:1/s;tcp\r\nFrom-Path: msrp://b.example.com:1/s;tcp\r\n-------abcd1234+\r\n", E::InvalidContinuationFlag, Marker("+\r\n")),
        case("six-dash end-line", req("").replace("-------abcd1234$", "------abcd1234$"), E::MalformedEndLine, Marker("------")),
        case("body end-line bad flag", send_body("", "hello").replace("-------abcd1234$", "-------abcd1234!"), E::InvalidContinuationFlag, Marker("!")),
        case("body end-line flag then junk", send_body("", "hello").replace("-------abcd1234$\r\n", "-------abcd1234$$\r\n"), E::MalformedEndLine, After("abcd1234$")),
        case("body starts with end-line (no CRLF)", send_body("", "").replace("\r\n\r\n\r\n-------", "\r\n\r\n-------"), E::EndLineWithoutCrlf, Marker("-------")),
        case("truncated in body", send_body("", "hello").replace("\r\n-------abcd1234$\r\n", ""), E::UnexpectedEof, Offset(usize::MAX)),
        case("truncated in head", "MSRP abcd1234 SEND\r\nTo-Pa", E::UnexpectedEof, Offset(usize::MAX)),
        case("truncated end-line", req("").replace("$\r\n", ""), E::UnexpectedEof, Offset(usize::MAX)),
        case("garbage after a message", format!("{}garbage", req("")), E::NotMsrp, Marker("garbage")),
        case("CRLF between messages", format!("{}\r\n{}", req(""), req("")), E::NotMsrp, Offset(req("").len())),
    ];
    // limits given by the caller
    let mut c = case("more URIs than allowed", req("").replace(";tcp\r\nFrom", ";tcp msrp://a.example.com:1/a;tcp msrp://a.example.com:1/b;tcp msrp://a.example.com:1/c;tcp\r\nFrom"), E::TooManyUris { header: HeaderKind::ToPath, limit: 3 }, Marker("msrp://bob"));
    c.limits = small();
    v.push(c);
    let mut c = case(
        "body over the chunk limit",
        send_body("", &"b".repeat(1001)),
        E::BodyTooLarge(1000),
        Offset(offset_of(send_body("", "b").as_bytes(), "b\r\n---") + 1000),
    );
    c.limits = small();
    v.push(c);
    let mut c = case(
        "head over a small limit",
        req(
            &"X-A: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n"
                .repeat(6),
        ),
        E::HeadTooLarge(512),
        Offset(512),
    );
    c.limits = small();
    v.push(c);
    let mut c = case(
        "start line over a small limit",
        "MSRP abcd1234 200 0123456789012345678901234567890123456789012345678901234567890\r\n",
        E::StartLineTooLong(64),
        Offset(64),
    );
    c.limits = small();
    v.push(c);
    v
}

#[test]
fn hostile_inputs_give_specific_errors() {
    let cases = cases();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut names = std::collections::HashSet::new();
    for c in &cases {
        assert!(names.insert(c.name), "duplicate case name {}", c.name);
        let want_at = match c.at {
            At::Offset(usize::MAX) => c.input.len(),
            At::Offset(o) => o,
            At::Marker(m) => offset_of(&c.input, m),
            At::After(m) => offset_of(&c.input, m) + m.len(),
        } as u64;
        let whole = parse_messages(&c.input, c.limits).expect_err(c.name);
        assert_eq!(whole.kind(), &c.err, "{}: {whole}", c.name);
        // the whole-head fast path, the general path and parse_ref agree
        common::assert_paths_agree(&c.input, c.limits);
        assert_eq!(whole.offset(), want_at, "{}: {whole}", c.name);
        // the same error at the same offset however the bytes arrive
        let bytewise = parse_bytewise(&c.input, c.limits).expect_err(c.name);
        assert_eq!(bytewise, whole, "{} (byte by byte)", c.name);
        let (chunked, max_buf) = parse_in_pieces(
            &c.input,
            &(0..c.input.len()).step_by(100).collect::<Vec<_>>(),
            c.limits,
        );
        assert_eq!(chunked.unwrap_err(), whole, "{} (100-byte pieces)", c.name);
        // the reader never had to hold more than the head limit plus a partial end-line
        // plus one piece
        assert!(
            max_buf <= c.limits.max_head_bytes.max(c.limits.max_start_line) + 44 + 100,
            "{}: buffer grew to {max_buf}",
            c.name
        );
        // every error maps to a status code for the peer
        let sc = whole.status_code();
        assert!(sc == StatusCode::BAD_REQUEST || sc == StatusCode::MESSAGE_TOO_LARGE);
        assert!(!whole.to_string().is_empty());
    }
}

/// A source of bytes that never runs out: a head, then the body pattern forever.
fn endless(head: &[u8], pattern: &[u8], piece: usize) -> impl FnMut() -> Vec<u8> {
    let head = head.to_vec();
    let mut sent_head = false;
    let body: Vec<u8> = pattern.iter().copied().cycle().take(piece).collect();
    move || {
        if sent_head {
            body.clone()
        } else {
            sent_head = true;
            head.clone()
        }
    }
}

/// Drives a parser from `next` like a socket reader with a bounded number of reads; returns
/// the error and the largest buffer held.
fn drive(limits: Limits, mut next: impl FnMut() -> Vec<u8>, reads: usize) -> (MessageError, usize) {
    let mut p = Parser::new(limits);
    let mut buf = Vec::new();
    let mut max_buf = 0;
    for _ in 0..reads {
        buf.extend(next());
        max_buf = max_buf.max(buf.len());
        let mut pos = 0;
        loop {
            match p.parse(&buf[pos..]) {
                Err(e) => return (e.kind().clone(), max_buf),
                Ok((n, ev)) => {
                    pos += n;
                    if ev.is_none() {
                        break;
                    }
                    if let Some(Event::Body(b)) = ev {
                        assert!(!b.is_empty());
                    }
                }
            }
        }
        buf.drain(..pos);
    }
    panic!("no error after {reads} reads");
}

#[test]
fn a_body_that_never_ends_stops_at_the_limit_with_bounded_memory() {
    let limits = Limits {
        max_body_bytes: 4 * 1024 * 1024,
        ..Limits::default()
    };
    let head = send_body("", "").into_bytes();
    let head = &head[..head.len() - "\r\n-------abcd1234$\r\n".len()];
    // "\r\n-------" + a prefix of the id at every line: the worst case for the scanner
    let (e, max_buf) = drive(
        limits,
        endless(head, b"data\r\n-------abcd123", 64 * 1024),
        1000,
    );
    assert_eq!(e, MessageError::BodyTooLarge(4 * 1024 * 1024));
    assert!(max_buf <= 64 * 1024 + 44 + head.len(), "{max_buf}");
}

#[test]
fn headers_that_never_end_stop_at_the_limit_with_bounded_memory() {
    let start = format!("MSRP abcd1234 SEND\r\n{TO}{FROM}");
    let (e, max_buf) = drive(
        Limits::default(),
        endless(start.as_bytes(), b"X-A: b\r\n", 1000),
        1000,
    );
    assert_eq!(e, MessageError::TooManyHeaders(64));
    assert!(max_buf <= 16 * 1024 + 44 + 1000, "{max_buf}");
    let (e, max_buf) = drive(Limits::default(), endless(start.as_bytes(), b"X-A: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n", 1000), 1000);
    assert_eq!(e, MessageError::HeadTooLarge(16 * 1024));
    assert!(max_buf <= 16 * 1024 + 44 + 1000, "{max_buf}");
    // one header line that never ends
    let (e, max_buf) = drive(
        Limits::default(),
        endless(start.as_bytes(), b"y", 1000),
        1000,
    );
    assert_eq!(e, MessageError::HeadTooLarge(16 * 1024));
    assert!(max_buf <= 16 * 1024 + 44 + 1000, "{max_buf}");
}

#[test]
fn after_an_error_the_parser_stays_failed() {
    let mut p = Parser::new(Limits::default());
    let e = p.parse(b"GET / HTTP/1.1\r\n").unwrap_err();
    assert_eq!(p.parse(req("").as_bytes()).unwrap_err(), e);
    assert!(!p.is_idle());
}

#[test]
fn extreme_limits_do_not_overflow() {
    let huge = Limits {
        max_start_line: usize::MAX,
        max_head_bytes: usize::MAX,
        max_headers: usize::MAX,
        max_body_bytes: u64::MAX,
        max_path_uris: usize::MAX,
    };
    let msgs = parse_messages(send_body("", "hi").as_bytes(), huge).unwrap();
    assert_eq!(msgs[0].body.as_deref(), Some(&b"hi"[..]));
    let zero = Limits {
        max_start_line: 0,
        max_head_bytes: 0,
        max_headers: 0,
        max_body_bytes: 0,
        max_path_uris: 0,
    };
    let e = parse_messages(send_body("", "hi").as_bytes(), zero).unwrap_err();
    assert_eq!(e.kind(), &MessageError::StartLineTooLong(0));
}

#[test]
fn a_caller_that_drops_unconsumed_bytes_gets_a_fresh_start() {
    let mut p = Parser::new(Limits::default());
    let wire = req("");
    // half a head, then (wrongly) only a shorter buffer: the parser starts over
    assert_eq!(p.parse(&wire.as_bytes()[..60]).unwrap(), (0, None));
    assert_eq!(p.parse(&wire.as_bytes()[..10]).unwrap(), (0, None));
    let (_, ev) = p.parse(wire.as_bytes()).unwrap();
    assert!(matches!(ev, Some(Event::Head { body: false, .. })));
}
