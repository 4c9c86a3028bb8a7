//! The incremental push parser (RFC 4975 §9 framing).
//!
//! See [`Parser`] for the contract.

use super::error::{MessageError, ParseError};
use super::head::{Entry, HeadChecker, HeadRef, MessageHead, Span, Start};
use super::header::{self, is_ident, is_ident_char, HeaderKind};
use super::{Continuation, Limits, Message, Method, StatusCode};
use memchr::memmem::Finder;
use std::sync::OnceLock;

/// What follows `"-------" + tid` (RFC 4975 §9: `end-line = "-------" transact-id
/// continuation-flag CRLF`). `+` is also an `ident-char`, so `"-------abcd+"` ends
/// transaction `abcd` only when CRLF follows; otherwise it is part of a longer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Not enough bytes to decide.
    Need,
    /// A longer transaction id: not this transaction's end-line.
    Other,
    /// The end-line, with its flag.
    End(Continuation),
    /// A malformed end-line for this transaction: offset from the flag position and problem.
    Bad(usize, MessageError),
}

pub(crate) fn classify_tail(s: &[u8]) -> Tail {
    let Some(&c) = s.first() else {
        return Tail::Need;
    };
    let flag = Continuation::from_byte(c);
    if c == b'+' || flag.is_none() && is_ident_char(c) {
        if flag.is_none() {
            return Tail::Other;
        }
        return match s.get(1..3) {
            None if s[1..] == b"\r\n"[..s.len() - 1] => Tail::Need,
            Some(b"\r\n") => Tail::End(Continuation::More),
            _ => Tail::Other,
        };
    }
    let Some(flag) = flag else {
        return Tail::Bad(0, MessageError::InvalidContinuationFlag);
    };
    match s.get(1..3) {
        None if s[1..] == b"\r\n"[..s.len() - 1] => Tail::Need,
        Some(b"\r\n") => Tail::End(flag),
        _ => Tail::Bad(1, MessageError::MalformedEndLine),
    }
}

/// The part of the end-line the body scan looks for (RFC 4975 §7.1: the end-line after a
/// body is preceded by CRLF).
const END_PREFIX: &[u8] = b"\r\n-------";

/// First `"\r\n-------"` in `hay`: `memchr::memmem` for long inputs, a CR scan for short
/// ones (typical small bodies), where setting up the vectorised search costs more than it saves.
fn find_end_prefix(hay: &[u8]) -> Option<usize> {
    if hay.len() < 64 {
        return find_end_prefix_short(hay);
    }
    static F: OnceLock<Finder<'static>> = OnceLock::new();
    F.get_or_init(|| Finder::new(END_PREFIX)).find(hay)
}

/// [`find_end_prefix`] for short inputs: CRs found eight bytes at a time, the prefix checked
/// as a word.
fn find_end_prefix_short(hay: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const DASHES: u64 = u64::from_le_bytes(*b"\r\n------");
    let is_prefix = |m: usize| {
        hay.len() >= m + END_PREFIX.len() && word(hay, m) == DASHES && hay[m + 8] == b'-'
    };
    let mut i = 0;
    while i + 8 <= hay.len() {
        // bytes equal to CR: "has zero byte" of w ^ CR..CR; exact for the lowest one, and
        // every flagged byte is checked
        let x = word(hay, i) ^ (ONES * 0x0d);
        let mut m = x.wrapping_sub(ONES) & !x & HIGH;
        while m != 0 {
            let k = i + (m.trailing_zeros() / 8) as usize;
            if hay[k] == b'\r' && is_prefix(k) {
                return Some(k);
            }
            m &= m - 1;
        }
        i += 8;
    }
    (i..hay.len()).find(|&k| hay[k] == b'\r' && is_prefix(k))
}

/// RFC 4975 §7.1: non-SEND request bodies "MUST NOT be larger than 10240 octets".
const NON_SEND_MAX_BODY: u64 = 10240;

/// Longest head the parser accepts whatever the limits say (spans are 32-bit).
const HEAD_CLAMP: usize = 16 * 1024 * 1024;

/// What the parser produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'b> {
    /// The start line and headers are complete. `body` tells whether a body (possibly empty)
    /// follows; `Body` events, if any, then `End` come next.
    Head {
        /// The head.
        head: MessageHead,
        /// Whether a body follows (RFC 4975 §7.1: bodiless requests and requests with an
        /// empty body are distinct).
        body: bool,
    },
    /// Some body bytes, borrowed from the buffer given to [`Parser::parse`].
    Body(&'b [u8]),
    /// The end-line; the message is complete.
    End(Continuation),
}

/// What [`Parser::parse_ref`] produced: [`Event`] with the head borrowed instead of owned.
#[derive(Debug, PartialEq, Eq)]
pub enum EventRef<'p, 'b> {
    /// The start line and headers are complete (see [`Event::Head`]).
    Head {
        /// The head, borrowed from the buffer (text) and the parser (header index).
        head: HeadRef<'p, 'b>,
        /// Whether a body follows.
        body: bool,
    },
    /// Some body bytes, borrowed from the buffer given to [`Parser::parse_ref`].
    Body(&'b [u8]),
    /// The end-line; the message is complete.
    End(Continuation),
}

/// A whole message found in one buffer by [`Parser::parse_message_ref`]: its head, its
/// body and its end-line's flag. Equivalent to the [`EventRef::Head`], [`EventRef::Body`]
/// (absent for an empty body) and [`EventRef::End`] events [`Parser::parse_ref`] gives for
/// the same bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct MessageRef<'p, 'b> {
    /// The head, borrowed from the buffer (text) and the parser (header index).
    pub head: HeadRef<'p, 'b>,
    /// The body (possibly empty), borrowed from the buffer; `None` for a message without one
    /// (RFC 4975 §7.1: bodiless requests and requests with an empty body are distinct).
    pub body: Option<&'b [u8]>,
    /// The end-line's continuation flag.
    pub end: Continuation,
}

/// What [`Parser::parse_message_ref`] produced.
#[derive(Debug, PartialEq, Eq)]
pub enum MessageEventRef<'p, 'b> {
    /// The buffer held a whole message (head, body, end-line): all of it at once.
    Message(MessageRef<'p, 'b>),
    /// A part of a message, exactly as [`Parser::parse_ref`] gives it (the message is not
    /// complete in the buffer, or the part after the head goes the general way).
    Part(EventRef<'p, 'b>),
}

/// An event before the head is attached: `Head` holds the head's length in the buffer.
enum Ev<'b> {
    Head { len: usize, body: bool },
    Body(&'b [u8]),
    End(Continuation),
}

type Step<'b> = Result<(usize, Option<Ev<'b>>), Local>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body,
    EndLine,
}

/// Incremental MSRP message parser.
///
/// # Contract
///
/// Call [`Parser::parse`] with the bytes you have. It returns `(consumed, event)`:
/// drop `consumed` bytes from the front of your buffer and call again with the rest plus any
/// new bytes. `event == None` means "need more input" (then `consumed` is 0). Bytes that were
/// not consumed must be presented again, unchanged, at the start of the next call: the parser
/// holds back the head until it is complete (at most [`Limits::max_head_bytes`]) and, inside
/// a body, a possible partial end-line at the end of the buffer (at most 44 bytes).
///
/// Bodies are never buffered: each [`Event::Body`] borrows from your buffer. The end of a body
/// is found by scanning for `"\r\n-------"` with `memchr::memmem` and checking the
/// transaction id after it; a `"\r\n-------"` followed by another (longer) transaction id is
/// body data (RFC 4975 §7.1).
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    state: State,
    /// Stream offset of the first byte of the next call's buffer.
    offset: u64,
    // Head in progress: whole lines examined so far, and what they held.
    scan: usize,
    /// How far the current (incomplete) line has been checked.
    checked: usize,
    start: Option<(Start, Span)>,
    checker: HeadChecker,
    entries: Vec<Entry>,
    /// The start line of the head last handed out (its headers are `entries`, kept until the
    /// next head begins).
    done_start: Start,
    done_tid: Span,
    /// Try [`Parser::fast_head`] first (always, except to test it against the general path).
    fast: bool,
    // Current message (body and end-line).
    tid: [u8; 32],
    tid_len: usize,
    request: bool,
    body_len: u64,
    body_limit: u64,
    body_checked: bool,
    poisoned: Option<ParseError>,
}

type Local = (usize, MessageError);

impl Parser {
    /// A parser enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        let mut limits = limits;
        limits.max_head_bytes = limits.max_head_bytes.min(HEAD_CLAMP);
        limits.max_start_line = limits.max_start_line.min(HEAD_CLAMP);
        Parser {
            limits,
            state: State::Head,
            offset: 0,
            scan: 0,
            checked: 0,
            start: None,
            checker: HeadChecker::default(),
            entries: Vec::new(),
            done_start: Start::Request(Method::Send),
            done_tid: Span::new(0, 0),
            fast: true,
            tid: [0; 32],
            tid_len: 0,
            request: false,
            body_len: 0,
            body_limit: 0,
            body_checked: false,
            poisoned: None,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Stream offset of the first byte not yet consumed.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// True between messages (nothing of a next message consumed yet).
    pub fn is_idle(&self) -> bool {
        self.state == State::Head && self.poisoned.is_none()
    }

    /// Body bytes of the current message handed out so far.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// Call at end of input with the bytes still unconsumed: an error
    /// ([`MessageError::UnexpectedEof`]) if the input stopped inside a message.
    pub fn finish(&mut self, pending: &[u8]) -> Result<(), ParseError> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        if self.state == State::Head && pending.is_empty() {
            return Ok(());
        }
        let e = ParseError::new(
            MessageError::UnexpectedEof,
            self.offset + pending.len() as u64,
            self.current_tid(),
        );
        self.poisoned = Some(e.clone());
        Err(e)
    }

    fn current_tid(&self) -> Option<String> {
        let known = self.state != State::Head || self.start.is_some();
        known.then(|| String::from_utf8_lossy(&self.tid[..self.tid_len]).into_owned())
    }

    /// Parses as much of `buf` as gives one event. See [`Parser`] for the contract.
    ///
    /// After an error, every further call returns the same error.
    pub fn parse<'b>(&mut self, buf: &'b [u8]) -> Result<(usize, Option<Event<'b>>), ParseError> {
        let (n, ev) = self.parse_ref(buf)?;
        let ev = ev.map(|ev| match ev {
            EventRef::Head { head, body } => Event::Head {
                head: head.to_head(),
                body,
            },
            EventRef::Body(b) => Event::Body(b),
            EventRef::End(f) => Event::End(f),
        });
        Ok((n, ev))
    }

    /// [`parse`](Self::parse) without copying the head: [`EventRef::Head`] borrows its text
    /// from `buf` and its header index from the parser, so it must be dropped before the next
    /// call (use [`HeadRef::to_head`] to keep it). Same checks, same errors, same contract.
    pub fn parse_ref<'p, 'b>(
        &'p mut self,
        buf: &'b [u8],
    ) -> Result<(usize, Option<EventRef<'p, 'b>>), ParseError> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        let r = match self.state {
            State::Head => self.parse_head(buf),
            State::Body => self.parse_body(buf),
            State::EndLine => self.parse_end_line(buf),
        };
        self.attach(buf, r)
    }

    /// The result of a step as [`parse_ref`](Self::parse_ref) returns it: the offset moved
    /// on, the head attached, an error recorded.
    #[inline(always)]
    fn attach<'p, 'b>(
        &'p mut self,
        buf: &'b [u8],
        r: Step<'b>,
    ) -> Result<(usize, Option<EventRef<'p, 'b>>), ParseError> {
        match r {
            Ok((n, ev)) => {
                self.offset += n as u64;
                let ev = ev.map(|ev| match ev {
                    Ev::Head { len, body } => EventRef::Head {
                        head: self.head_ref(&buf[..len]),
                        body,
                    },
                    Ev::Body(b) => EventRef::Body(b),
                    Ev::End(f) => EventRef::End(f),
                });
                Ok((n, ev))
            }
            Err((at, kind)) => Err(self.fail(at, kind)),
        }
    }

    /// The head last emitted, its text being `raw`.
    #[inline(always)]
    fn head_ref<'p, 'b>(&'p self, raw: &'b [u8]) -> HeadRef<'p, 'b> {
        HeadRef::new(raw, self.done_tid, &self.done_start, &self.entries)
    }

    /// [`parse_ref`](Self::parse_ref) for a consumer that takes whole messages when it can:
    /// when `buf` holds a complete message (head, body and end-line) from where the parser
    /// stands, it is consumed and returned in one [`MessageEventRef::Message`]; otherwise the
    /// result is exactly what `parse_ref` gives, as [`MessageEventRef::Part`]. Same checks,
    /// same errors at the same offsets, same contract; the calls may be mixed with `parse_ref`
    /// and [`parse`](Self::parse).
    ///
    /// A message whose body or end-line would give an error (or anything unusual there, such
    /// as a body beginning with `-`) is delivered as its head alone; the next call then gives
    /// the body or the error, as `parse_ref` would.
    #[inline]
    pub fn parse_message_ref<'p, 'b>(
        &'p mut self,
        buf: &'b [u8],
    ) -> Result<(usize, Option<MessageEventRef<'p, 'b>>), ParseError> {
        if self.state != State::Head || self.poisoned.is_some() {
            let (n, ev) = self.parse_ref(buf)?;
            return Ok((n, ev.map(MessageEventRef::Part)));
        }
        let r = self.parse_head(buf);
        if let Ok((n, Some(Ev::Head { len, body }))) = r {
            let rest = &buf[n..];
            let whole = if body {
                self.whole_body(rest)
            } else {
                match self.parse_end_line(rest) {
                    Ok((used, Some(Ev::End(flag)))) => Some((0, flag, used)),
                    // Incomplete or an error: the next call reports it.
                    _ => None,
                }
            };
            if let Some((body_len, end, used)) = whole {
                self.state = State::Head;
                self.body_len = body_len as u64;
                self.offset += (n + used) as u64;
                let msg = MessageRef {
                    head: self.head_ref(&buf[..len]),
                    body: body.then(|| &rest[..body_len]),
                    end,
                };
                return Ok((n + used, Some(MessageEventRef::Message(msg))));
            }
        }
        let (n, ev) = self.attach(buf, r)?;
        Ok((n, ev.map(MessageEventRef::Part)))
    }

    /// After a head with a body: if `buf` holds the whole body and its end-line, and
    /// [`parse_body`](Self::parse_body) would give them without an error, the body's length,
    /// the flag and the bytes used. Changes nothing (on `None` the general path goes on).
    #[inline(always)]
    fn whole_body(&self, buf: &[u8]) -> Option<(usize, Continuation, usize)> {
        // A body beginning with '-' may be an end-line without its CRLF (RFC 4975 §7.1; the
        // `body_checked` test of parse_body): leave it to the general path.
        if buf.first() == Some(&b'-') {
            return None;
        }
        let tl = self.tid_len;
        let mut from = 0;
        loop {
            let m = from + find_end_prefix(&buf[from..])?;
            let after = m + END_PREFIX.len();
            if buf.len() < after + tl {
                // No complete end-line can follow.
                return None;
            }
            if !eq_short(&buf[after..after + tl], self.tid()) {
                from = m + 1;
                continue;
            }
            // the usual end-line "$" CRLF at once (classify_tail gives End(Complete) for it)
            if buf.get(after + tl..after + tl + 3) == Some(b"$\r\n") && m as u64 <= self.body_limit
            {
                return Some((m, Continuation::Complete, after + tl + 3));
            }
            return match classify_tail(&buf[after + tl..]) {
                // "\r\n-------" and a longer transaction id: body (RFC 4975 §7.1).
                Tail::Other => {
                    from = m + 1;
                    continue;
                }
                // The body limit as emit_body checks it (body_len is 0 after the head).
                Tail::End(flag) if m as u64 <= self.body_limit => Some((m, flag, after + tl + 3)),
                _ => None,
            };
        }
    }

    #[cold]
    fn fail(&mut self, at: usize, kind: MessageError) -> ParseError {
        let e = ParseError::new(kind, self.offset + at as u64, self.current_tid());
        self.poisoned = Some(e.clone());
        e
    }

    /// Test hook: `false` makes the parser skip its whole-head fast path, so that tests can
    /// check that both paths give the same events and errors.
    #[doc(hidden)]
    pub fn set_fast_head(&mut self, on: bool) {
        self.fast = on;
    }

    fn reset_head(&mut self) {
        self.scan = 0;
        self.checked = 0;
        self.start = None;
        self.checker = HeadChecker::default();
        self.entries.clear();
    }

    fn parse_head<'b>(&mut self, buf: &'b [u8]) -> Step<'b> {
        if buf.len() < self.checked.max(self.scan) {
            // The caller did not present the unconsumed bytes again: start over.
            self.reset_head();
        }
        if self.checked == 0 {
            // A new head: the previous head's index goes.
            self.entries.clear();
            if self.fast {
                if let Some(r) = self.fast_head(buf) {
                    return Ok(r);
                }
                self.reset_head();
            }
        }
        if self.scan == 0 {
            // RFC 4975 §9: pMSRP = %x4D.53.52.50 ; MSRP in caps. Fail fast on anything else.
            let n = buf.len().min(5);
            if buf[..n] != b"MSRP "[..n] {
                return Err((0, MessageError::NotMsrp));
            }
        }
        let limits = self.limits;
        loop {
            let line_start = self.scan;
            let starting = self.start.is_none();
            // How far this line may reach before a limit is exceeded (plus room for the
            // CRLF, and after the headers for a partial end-line).
            let limit = if starting {
                limits.max_start_line + 2
            } else {
                limits.max_head_bytes + 45
            };
            let cr = match scan_line(buf, self.checked.max(line_start), limit) {
                LineScan::Bad(at, e) => return Err((at, e)),
                LineScan::Need(upto) => {
                    if upto >= limit {
                        return Err(if starting {
                            (
                                limits.max_start_line,
                                MessageError::StartLineTooLong(limits.max_start_line),
                            )
                        } else {
                            (
                                limits.max_head_bytes,
                                MessageError::HeadTooLarge(limits.max_head_bytes),
                            )
                        });
                    }
                    self.checked = upto;
                    return Ok((0, None));
                }
                LineScan::End(cr) => cr,
            };
            let line = &buf[line_start..cr];
            let next = cr + 2;
            self.checked = next;
            if starting {
                if line.len() > limits.max_start_line {
                    return Err((
                        line_start + limits.max_start_line,
                        MessageError::StartLineTooLong(limits.max_start_line),
                    ));
                }
                self.parse_start(line)?;
                self.scan = next;
                continue;
            }
            if line.starts_with(b"-------") {
                // End-line right after the headers: no body (RFC 4975 §7.1: "No extra CRLF
                // will be present between the header section and the end-line").
                return self.finish_head(buf, line_start, line_start, false);
            }
            if next > limits.max_head_bytes {
                return Err((
                    limits.max_head_bytes,
                    MessageError::HeadTooLarge(limits.max_head_bytes),
                ));
            }
            if line.is_empty() {
                // The extra CRLF before a body (RFC 4975 §7.1).
                return self.finish_head(buf, line_start, next, true);
            }
            if self.checker.count >= limits.max_headers {
                return Err((line_start, MessageError::TooManyHeaders(limits.max_headers)));
            }
            self.parse_header_line(line, line_start)?;
            self.scan = next;
        }
    }

    /// Whole-head fast path: when `buf` holds a complete head of the usual shape, checks it
    /// in one pass and emits it. Path headers whose URIs are all in the common form
    /// (`uri::common_form_len`) and the Message-ID are checked where they stand, which also
    /// finds the end of their line; other lines are scanned as `utf8text` and their values
    /// checked by `header::check_value`, as in the general path.
    ///
    /// It never reports an error: on anything else (incomplete input, a limit reached, a
    /// rule broken, an unusual shape such as an extension method) it returns `None` and the
    /// caller resets the head state and runs the general path from the start, which then
    /// gives the exact event or error. It accepts only heads the general path accepts, with
    /// the same result (`Parser::set_fast_head` lets the tests compare the two).
    fn fast_head<'b>(&mut self, buf: &'b [u8]) -> Option<(usize, Option<Ev<'b>>)> {
        let limits = self.limits;
        // RFC 4975 §9: req-start = pMSRP SP transact-id SP method CRLF
        if buf.len() < 16 || word(buf, 0) & 0xff_ffff_ffff != u64::from_le_bytes(*b"MSRP \0\0\0") {
            return None;
        }
        let i = header::ident_run(buf, 5, 5 + 33);
        let tid = &buf[5..i];
        // ident = ALPHANUM 3*31ident-char
        if tid.len() < 4
            || tid.len() > 32
            || !tid[0].is_ascii_alphanumeric()
            || buf.get(i) != Some(&b' ')
        {
            return None;
        }
        let at = i + 1;
        let rest = &buf[at..];
        let mut high = false;
        let (start, cr) = if rest.len() >= 8
            && word(rest, 0) & 0xff_ffff_ffff == u64::from_le_bytes(*b"SEND\r\0\0\0")
        {
            (Start::Request(Method::Send), at + 4)
        } else if rest.starts_with(b"REPORT\r") {
            (Start::Request(Method::Report), at + 6)
        } else if rest.starts_with(b"AUTH\r") {
            (Start::Request(Method::Auth), at + 4)
        } else if rest.len() > 3 && rest[..3].iter().all(u8::is_ascii_digit) {
            // resp-start = pMSRP SP transact-id SP status-code [SP comment] CRLF
            let code = rest[..3]
                .iter()
                .fold(0u16, |a, &c| a * 10 + u16::from(c - b'0'));
            let status = StatusCode(code);
            match rest[3] {
                b'\r' => (
                    Start::Response {
                        status,
                        comment: None,
                    },
                    at + 3,
                ),
                b' ' => {
                    let (cr, h) = text_end(buf, at + 4, limits.max_start_line + 2)?;
                    high |= h;
                    let comment = Some(Span::new(at + 4, cr));
                    (Start::Response { status, comment }, cr)
                }
                _ => return None,
            }
        } else {
            return None;
        };
        if cr > limits.max_start_line || buf.get(cr + 1) != Some(&b'\n') {
            return None;
        }
        self.tid[..tid.len()].copy_from_slice(tid);
        self.tid_len = tid.len();
        self.request = matches!(start, Start::Request(_));
        let tid = Span::new(5, 5 + tid.len());

        // The header rules (HeadChecker's, RFC 4975 §7.1, §9), checked as one conjunction at
        // the end: this path only needs to know whether they all hold (otherwise the general
        // path runs and reports the first one broken).
        // RFC 4975 §9: headers = To-Path CRLF From-Path CRLF 1*( header CRLF ). The first
        // two lines must be these (anything else is for the general path to report): their
        // names are compared as such and their values checked as paths.
        if limits.max_headers < 2 {
            return None;
        }
        let mut i = cr + 2;
        for kind in [HeaderKind::ToPath, HeaderKind::FromPath] {
            let ls = i;
            let colon = header::expected_name(&buf[ls..], kind)?;
            let vs = value_start(buf, ls + colon + 1);
            let cr = match path_end(buf, vs, limits.max_path_uris) {
                Some(cr) => cr,
                None => self.fast_text_value(buf, kind, vs, &mut high)?,
            };
            i = self.fast_push(buf, kind, ls, colon, vs, cr)?;
        }
        // The header rules (HeadChecker's, RFC 4975 §7.1, §9) for the rest, checked as one
        // conjunction at the end: this path only needs to know whether they all hold
        // (otherwise the general path runs and reports the first one broken).
        let mut seen = HeaderKind::ToPath.bit() | HeaderKind::FromPath.bit();
        let mut count = 2usize;
        let mut last = HeaderKind::FromPath;
        loop {
            let ls = i;
            match *buf.get(ls)? {
                b'\r' => {
                    // The blank line before a body (RFC 4975 §7.1).
                    if buf.get(ls + 1) != Some(&b'\n') || ls + 2 > limits.max_head_bytes {
                        return None;
                    }
                    let rules = FastRules { seen, last };
                    return self.fast_finish(buf, rules, start, tid, ls, ls + 2, true, high);
                }
                b'-' => {
                    // The end-line right after the headers: no body. As in the general
                    // path, its whole line must be there and be text.
                    if !buf[ls..].starts_with(b"-------") {
                        return None;
                    }
                    match scan_line(buf, ls, limits.max_head_bytes + 45) {
                        LineScan::End(_) => {}
                        _ => return None,
                    }
                    let rules = FastRules { seen, last };
                    return self.fast_finish(buf, rules, start, tid, ls, ls, false, high);
                }
                _ => {}
            }
            if count >= limits.max_headers {
                return None;
            }
            // RFC 4975 §9: hname ":" SP hval
            let (kind, colon) = match header::known_header(&buf[ls..]) {
                Some(k) => k,
                None => {
                    let line = &buf[ls..buf.len().min(ls + limits.max_head_bytes)];
                    let mut c = 0;
                    while c < line.len() && header::is_token_byte(line[c]) {
                        c += 1;
                    }
                    if c == line.len() || line[c] != b':' || !line[0].is_ascii_alphabetic() {
                        return None;
                    }
                    (HeaderKind::from_name(&line[..c]), c)
                }
            };
            let vs = value_start(buf, ls + colon + 1);
            let fused = match kind {
                HeaderKind::ToPath | HeaderKind::FromPath | HeaderKind::UsePath => {
                    path_end(buf, vs, limits.max_path_uris)
                }
                HeaderKind::MessageId => ident_end(buf, vs),
                HeaderKind::ByteRange => super::range::fast_range_end(&buf[vs..]).map(|e| vs + e),
                HeaderKind::ContentType => header::plain_media_type_end(buf, vs),
                _ => None,
            };
            let cr = match fused {
                Some(cr) => cr,
                None => self.fast_text_value(buf, kind, vs, &mut high)?,
            };
            // no second one of a single header (RFC 4975 §9)
            let bit = kind.bit();
            if bit & HeaderKind::SINGLE & seen != 0 {
                return None;
            }
            seen |= bit;
            count += 1;
            last = kind;
            i = self.fast_push(buf, kind, ls, colon, vs, cr)?;
        }
    }

    /// [`fast_head`](Self::fast_head): a value not checked where it stands: scanned as
    /// `utf8text` and checked by `check_value` as in the general path; the CR ending it.
    #[inline(always)]
    fn fast_text_value(
        &self,
        buf: &[u8],
        kind: HeaderKind,
        vs: usize,
        high: &mut bool,
    ) -> Option<usize> {
        let (cr, h) = text_end(buf, vs, self.limits.max_head_bytes)?;
        *high |= h;
        header::check_value(kind, &buf[vs..cr], &self.limits).ok()?;
        Some(cr)
    }

    /// [`fast_head`](Self::fast_head): the line ending at `cr` is within the head limit and
    /// ends in CRLF: index it; where the next line starts.
    #[inline(always)]
    fn fast_push(
        &mut self,
        buf: &[u8],
        kind: HeaderKind,
        ls: usize,
        colon: usize,
        vs: usize,
        cr: usize,
    ) -> Option<usize> {
        if cr + 2 > self.limits.max_head_bytes || buf.get(cr + 1) != Some(&b'\n') {
            return None;
        }
        self.entries.push(Entry {
            name: Span::new(ls, ls + colon),
            value: Span::new(vs, cr),
            kind,
        });
        Some(cr + 2)
    }

    /// The end of [`fast_head`](Self::fast_head): the whole-head rules and the UTF-8 check
    /// (only when a non-ASCII byte was seen), then the event.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn fast_finish<'b>(
        &mut self,
        buf: &[u8],
        rules: FastRules,
        start: Start,
        tid: Span,
        head_end: usize,
        consumed: usize,
        body: bool,
        high: bool,
    ) -> Option<(usize, Option<Ev<'b>>)> {
        // The rest of HeadChecker::add and HeadChecker::finish, all at once (To-Path first
        // and From-Path second were checked where they stand, no duplicates header by
        // header): with a body, a request whose last header is Content-Type, else no MIME
        // header (RFC 4975 §7.1)
        let body_rules = if body {
            self.request && rules.last == HeaderKind::ContentType
        } else {
            rules.seen & HeaderKind::MIME == 0
        };
        if !body_rules {
            return None;
        }
        if high && std::str::from_utf8(&buf[..head_end]).is_err() {
            return None;
        }
        debug_assert!(self.scan == 0 && self.checked == 0 && self.start.is_none());
        Some(self.body_state(start, tid, head_end, consumed, body))
    }

    /// `MSRP SP transact-id SP method` or `MSRP SP transact-id SP status-code [SP comment]`
    /// (RFC 4975 §9).
    fn parse_start(&mut self, line: &[u8]) -> Result<(), Local> {
        if !line.starts_with(b"MSRP ") {
            return Err((0, MessageError::NotMsrp));
        }
        let rest = &line[5..];
        // The id is short (at most 32 bytes): a plain loop beats a vectorised search.
        let Some(sp) = rest.iter().position(|&c| c == b' ') else {
            return Err((line.len(), MessageError::MalformedStartLine));
        };
        let tid = &rest[..sp];
        if !is_ident(tid) {
            return Err((5, MessageError::InvalidTransactionId));
        }
        let at = 5 + sp + 1;
        let after = &line[at..];
        let start = if after.first().is_some_and(u8::is_ascii_digit) {
            let digits = after.len() >= 3 && after[..3].iter().all(u8::is_ascii_digit);
            if !digits || (after.len() > 3 && after[3] != b' ') {
                return Err((at, MessageError::InvalidStatusCode));
            }
            let code = after[..3]
                .iter()
                .fold(0u16, |a, &c| a * 10 + u16::from(c - b'0'));
            let comment = if after.len() > 3 {
                header::check_text(&after[4..]).map_err(|(i, e)| (at + 4 + i, e))?;
                Some(Span::new(at + 4, line.len()))
            } else {
                None
            };
            Start::Response {
                status: StatusCode(code),
                comment,
            }
        } else {
            // RFC 4975 §9: method = 1*UPALPHA; lower case is not a method.
            let m = if after == b"SEND" {
                Method::Send
            } else {
                std::str::from_utf8(after)
                    .ok()
                    .and_then(Method::parse)
                    .ok_or((at, MessageError::InvalidMethod))?
            };
            Start::Request(m)
        };
        self.tid[..tid.len()].copy_from_slice(tid);
        self.tid_len = tid.len();
        self.request = matches!(start, Start::Request(_));
        self.start = Some((start, Span::new(5, 5 + sp)));
        Ok(())
    }

    /// `hname ":" SP hval` (RFC 4975 §9 ext-header; the known headers' values are checked
    /// too).
    fn parse_header_line(&mut self, line: &[u8], at: usize) -> Result<(), Local> {
        // The line's bytes were checked by scan_line. RFC 4975 §9: hname = ALPHA *token.
        // Known names are recognised (and so checked) word-at-a-time; others by the general
        // scan and classification.
        let (kind, colon) = match header::known_header(line) {
            Some(k) => k,
            None => {
                let mut colon = 0;
                while colon < line.len() && header::is_token_byte(line[colon]) {
                    colon += 1;
                }
                if colon == line.len() || line[colon] != b':' || !line[0].is_ascii_alphabetic() {
                    return Err((at, bad_header_line(line)));
                }
                (HeaderKind::from_name(&line[..colon]), colon)
            }
        };
        // RFC 4975 §9: hname ":" SP hval. The value is everything after that one SP (which
        // we also accept missing); further whitespace belongs to the value.
        let mut vs = colon + 1;
        if line.get(vs) == Some(&b' ') {
            vs += 1;
        }
        let value = &line[vs..];
        self.checker.add(kind).map_err(|e| (at, e))?;
        header::check_value(kind, value, &self.limits).map_err(|e| (at + vs, e))?;
        self.entries.push(Entry {
            name: Span::new(at, at + colon),
            value: Span::new(at + vs, at + line.len()),
            kind,
        });
        Ok(())
    }

    fn finish_head<'b>(
        &mut self,
        buf: &'b [u8],
        head_end: usize,
        consumed: usize,
        body: bool,
    ) -> Step<'b> {
        self.checker
            .finish(self.request, body)
            .map_err(|e| (head_end, e))?;
        // RFC 4975 §9: MSRP is UTF-8 text (utf8text in values and comments).
        std::str::from_utf8(&buf[..head_end])
            .map_err(|e| (e.valid_up_to(), MessageError::InvalidUtf8))?;
        let Some((start, tid)) = self.start.take() else {
            return Err((0, MessageError::MalformedStartLine));
        };
        Ok(self.emit_head(start, tid, head_end, consumed, body))
    }

    /// The head is complete and checked: keep its start line (its headers stay in
    /// `entries`), reset the head state and set up the body or end-line state.
    fn emit_head<'b>(
        &mut self,
        start: Start,
        tid: Span,
        head_end: usize,
        consumed: usize,
        body: bool,
    ) -> (usize, Option<Ev<'b>>) {
        self.scan = 0;
        self.checked = 0;
        self.start = None;
        self.checker = HeadChecker::default();
        self.body_state(start, tid, head_end, consumed, body)
    }

    /// [`emit_head`](Self::emit_head) without resetting the general path's head state,
    /// which is still reset when the whole-head fast path runs (it runs only on a new head).
    #[inline(always)]
    fn body_state<'b>(
        &mut self,
        start: Start,
        tid: Span,
        head_end: usize,
        consumed: usize,
        body: bool,
    ) -> (usize, Option<Ev<'b>>) {
        let non_send = !matches!(start, Start::Request(Method::Send));
        self.done_start = start;
        self.done_tid = tid;
        self.body_len = 0;
        if body {
            self.state = State::Body;
            self.body_checked = false;
            self.body_limit = if non_send {
                NON_SEND_MAX_BODY.min(self.limits.max_body_bytes)
            } else {
                self.limits.max_body_bytes
            };
        } else {
            self.state = State::EndLine;
        }
        (
            consumed,
            Some(Ev::Head {
                len: head_end,
                body,
            }),
        )
    }

    fn tid(&self) -> &[u8] {
        &self.tid[..self.tid_len]
    }

    /// `"-------" transact-id continuation-flag CRLF` at the start of `buf` (RFC 4975 §9).
    fn parse_end_line<'b>(&mut self, buf: &'b [u8]) -> Step<'b> {
        let tl = self.tid_len;
        // Fail as soon as the bytes present disagree.
        let n = buf.len().min(7);
        if buf[..n] != b"-------"[..n] {
            return Err((0, MessageError::MalformedEndLine));
        }
        let have = buf.len().saturating_sub(7).min(tl);
        if buf.len() > 7 && buf[7..7 + have] != self.tid()[..have] {
            return Err((7, MessageError::EndLineMismatch));
        }
        if buf.len() < 7 + tl {
            return Ok((0, None));
        }
        let flag = match classify_tail(&buf[7 + tl..]) {
            Tail::Need => return Ok((0, None)),
            // A longer id: another transaction's end-line.
            Tail::Other => return Err((7, MessageError::EndLineMismatch)),
            Tail::Bad(i, e) => return Err((7 + tl + i, e)),
            Tail::End(flag) => flag,
        };
        // RFC 4975 §7.2: "Since a response is never chunked, the continuation flag in the
        // end-line will always contain a dollar sign".
        if !self.request && flag != Continuation::Complete {
            return Err((7 + tl, MessageError::InvalidContinuationFlag));
        }
        self.state = State::Head;
        Ok((7 + tl + 3, Some(Ev::End(flag))))
    }

    fn emit_body<'b>(&mut self, buf: &'b [u8], k: usize) -> Step<'b> {
        if k == 0 {
            return Ok((0, None));
        }
        if self.body_len + k as u64 > self.body_limit {
            let at = (self.body_limit - self.body_len) as usize;
            let e = if self.body_limit < self.limits.max_body_bytes {
                MessageError::NonSendBodyTooLarge
            } else {
                MessageError::BodyTooLarge(self.limits.max_body_bytes)
            };
            return Err((at, e));
        }
        self.body_len += k as u64;
        Ok((k, Some(Ev::Body(&buf[..k]))))
    }

    fn parse_body<'b>(&mut self, buf: &'b [u8]) -> Step<'b> {
        let tl = self.tid_len;
        if !self.body_checked {
            // A body that starts with the end-line lacks the CRLF RFC 4975 §7.1 requires
            // before it ("the end-line MUST be preceded by a CRLF that is not part of the
            // body"); report it instead of reading the rest of the stream as body.
            let n = buf.len().min(7 + tl);
            let prefix_ok = buf.first().is_none_or(|&c| c == b'-')
                && buf[..n.min(7)] == b"-------"[..n.min(7)]
                && (n <= 7 || buf[7..n] == self.tid()[..n - 7]);
            if prefix_ok {
                if n < 7 + tl {
                    return Ok((0, None));
                }
                match classify_tail(&buf[7 + tl..]) {
                    Tail::Need => return Ok((0, None)),
                    Tail::Other => {}
                    Tail::End(_) | Tail::Bad(..) => {
                        return Err((0, MessageError::EndLineWithoutCrlf))
                    }
                }
            }
            self.body_checked = true;
        }
        let mut from = 0;
        loop {
            let Some(i) = find_end_prefix(&buf[from..]) else {
                // Hold back a tail that could begin "\r\n-------".
                let max = buf.len().min(END_PREFIX.len() - 1);
                let keep = (1..=max)
                    .rev()
                    .find(|&k| buf[buf.len() - k..] == END_PREFIX[..k])
                    .unwrap_or(0);
                return self.emit_body(buf, buf.len() - keep);
            };
            let m = from + i;
            let after = m + END_PREFIX.len();
            let avail = buf.len() - after;
            if avail < tl {
                if buf[after..] == self.tid()[..avail] {
                    // Possibly our end-line: wait for more.
                    return self.emit_body(buf, m);
                }
                from = m + 1;
                continue;
            }
            if !eq_short(&buf[after..after + tl], self.tid()) {
                from = m + 1;
                continue;
            }
            let f = after + tl;
            match classify_tail(&buf[f..]) {
                // "\r\n-------" and a longer transaction id: body (RFC 4975 §7.1).
                Tail::Other => {
                    from = m + 1;
                    continue;
                }
                _ if m > 0 => return self.emit_body(buf, m),
                Tail::Need => return Ok((0, None)),
                Tail::Bad(i, e) => return Err((f + i, e)),
                Tail::End(flag) => {
                    self.state = State::Head;
                    return Ok((f + 3, Some(Ev::End(flag))));
                }
            }
        }
    }
}

/// What [`Parser::fast_head`] tracks of the header rules: the kinds seen (bits) and the
/// last one.
#[derive(Clone, Copy)]
struct FastRules {
    seen: u32,
    last: HeaderKind,
}

/// RFC 4975 §9: hname ":" SP hval. The value is everything after that one SP (which we also
/// accept missing); further whitespace belongs to the value. `i` is after the colon.
#[inline(always)]
fn value_start(buf: &[u8], i: usize) -> usize {
    i + usize::from(buf.get(i) == Some(&b' '))
}

/// Why a header line is not `hname ":" ...` (slow path, errors only).
#[cold]
fn bad_header_line(line: &[u8]) -> MessageError {
    match line.first() {
        // RFC 4975 §9 has no line folding: a line starting with whitespace is not a header.
        Some(b' ' | b'\t') => MessageError::InvalidHeaderName,
        // A header name starts with ALPHA; a line of dashes is a broken end-line.
        Some(b'-') => MessageError::MalformedEndLine,
        _ if memchr::memchr(b':', line).is_none() => MessageError::HeaderWithoutColon,
        _ => MessageError::InvalidHeaderName,
    }
}

/// `a == b` for short slices (transaction ids), a word at a time without a `memcmp` call.
#[inline]
fn eq_short(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let mut i = 0;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    // the last word, overlapping the previous one
    word(a, n - 8) == word(b, n - 8)
}

/// The eight bytes of `b` from `i` as a little-endian word (`b` must hold them).
#[inline]
fn word(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

/// Fast path: the CR ending the `utf8text` line that goes on at `i` (RFC 4975 §9: HTAB,
/// %x20-7E, bytes >= 0x80), if it comes before `limit` and LF follows it, and whether the
/// line had a byte >= 0x80 (then the head's UTF-8 must be checked). `None` for anything
/// else; the general path then reports it.
fn text_end(buf: &[u8], mut i: usize, limit: usize) -> Option<(usize, bool)> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let end = limit.min(buf.len());
    let mut acc = 0u64;
    loop {
        while i + 8 <= end {
            let mut w = [0u8; 8];
            w.copy_from_slice(&buf[i..i + 8]);
            let w = u64::from_le_bytes(w);
            // as in scan_line: any byte < 0x20 or == 0x7f; the lowest flagged one is exact
            let ctl = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
            let x = w ^ (ONES * 0x7f);
            let del = x.wrapping_sub(ONES) & !x & HIGH;
            let m = ctl | del;
            if m != 0 {
                let k = m.trailing_zeros() / 8;
                acc |= w & ((1u64 << (8 * k)) - 1);
                i += k as usize;
                break;
            }
            acc |= w;
            i += 8;
        }
        let c = *buf[..end].get(i)?;
        if c >= 0x20 && c != 0x7f || c == b'\t' {
            acc |= u64::from(c);
            i += 1;
            continue;
        }
        return (c == b'\r' && buf.get(i + 1) == Some(&b'\n')).then_some((i, acc & HIGH != 0));
    }
}

/// Fast path: a path header value (RFC 4975 §9 `MSRP-URI *( SP MSRP-URI )`) of at most `max`
/// URIs, all in the common form, at `pos`; the index of the CR that ends it.
fn path_end(buf: &[u8], mut pos: usize, max: usize) -> Option<usize> {
    let mut n = 0;
    loop {
        pos += crate::uri::common_form_len(&buf[pos..])?;
        n += 1;
        if n > max {
            return None;
        }
        match buf.get(pos) {
            Some(b'\r') => return Some(pos),
            Some(b' ') => pos += 1,
            _ => return None,
        }
    }
}

/// Fast path: a Message-ID (RFC 4975 §9 `ident`) at `vs` followed by CR; the CR's index.
fn ident_end(buf: &[u8], vs: usize) -> Option<usize> {
    let i = header::ident_run(buf, vs, vs + 33);
    let ok = (4..=32).contains(&(i - vs))
        && buf[vs].is_ascii_alphanumeric()
        && buf.get(i) == Some(&b'\r');
    ok.then_some(i)
}

enum LineScan {
    /// The line ends with the CR at this index (LF follows).
    End(usize),
    /// No line end yet; bytes up to this index are fine.
    Need(usize),
    /// A byte that may not appear in the start line or a header.
    Bad(usize, MessageError),
}

/// Looks for the CRLF ending the line, from `i` up to index `limit`, checking that every byte
/// is allowed in `utf8text` (RFC 4975 §9: HTAB, %x20-7E, UTF-8 non-ASCII; the UTF-8
/// encoding itself is checked once per head). Eight bytes at a time while no byte is a
/// control character.
fn scan_line(buf: &[u8], mut i: usize, limit: usize) -> LineScan {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let end = limit.min(buf.len());
    loop {
        while i + 8 <= end {
            let mut w = [0u8; 8];
            w.copy_from_slice(&buf[i..i + 8]);
            let w = u64::from_le_bytes(w);
            // any byte < 0x20, or any byte == 0x7f (exact "has less than" / "has zero" tests)
            let ctl = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
            let x = w ^ (ONES * 0x7f);
            let del = x.wrapping_sub(ONES) & !x & HIGH;
            let m = ctl | del;
            if m != 0 {
                // The lowest flagged byte is exact (borrows only run upwards from a byte
                // that really is below 0x20 or 0x7f): go straight to it.
                i += (m.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        if i >= end {
            return LineScan::Need(i);
        }
        let c = buf[i];
        if c >= 0x20 && c != 0x7f || c == b'\t' {
            i += 1;
            continue;
        }
        return match c {
            b'\r' => match buf.get(i + 1) {
                None => LineScan::Need(i),
                Some(b'\n') => LineScan::End(i),
                Some(_) => LineScan::Bad(i, MessageError::ControlCharacter),
            },
            // RFC 4975 §9: lines end in CRLF.
            b'\n' => LineScan::Bad(i, MessageError::BareLineFeed),
            0 => LineScan::Bad(i, MessageError::NulByte),
            _ => LineScan::Bad(i, MessageError::ControlCharacter),
        };
    }
}

/// Parses a complete byte stream of messages held in memory (tests, tools). Bodies are
/// collected; the stream must end at a message boundary.
pub fn parse_messages(input: &[u8], limits: Limits) -> Result<Vec<Message>, ParseError> {
    let mut p = Parser::new(limits);
    let mut out = Vec::new();
    let mut pos = 0;
    let mut cur: Option<Message> = None;
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
                });
            }
            Some(Event::Body(b)) => {
                if let Some(Message { body: Some(v), .. }) = cur.as_mut() {
                    v.extend_from_slice(b);
                }
            }
            Some(Event::End(flag)) => {
                if let Some(mut m) = cur.take() {
                    m.continuation = flag;
                    out.push(m);
                }
            }
        }
    }
    p.finish(&input[pos..])?;
    Ok(out)
}
