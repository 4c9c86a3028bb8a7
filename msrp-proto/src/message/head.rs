//! [`MessageHead`]: the start line and headers of one MSRP request or response.

use super::error::MessageError;
use super::header::{self, ContentType, FailureReport, HeaderKind, StatusHeader};
use super::range::ByteRange;
use super::status::StatusCode;
use super::{Limits, Method};
use crate::uri::MsrpUri;
use std::fmt;

/// A byte range inside the head text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize) -> Span {
        // Heads are bounded by Limits::max_head_bytes, which is clamped far below 4 GiB.
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
    fn get(self, s: &str) -> &str {
        &s[self.start as usize..self.end as usize]
    }
}

/// One header: where its name and value are in the head text, and its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Entry {
    pub(crate) name: Span,
    pub(crate) value: Span,
    pub(crate) kind: HeaderKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Start {
    Request(Method),
    Response {
        status: StatusCode,
        comment: Option<Span>,
    },
}

/// The start line of a message, borrowed from a [`MessageHead`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'a> {
    /// `MSRP tid METHOD`.
    Request {
        /// The method.
        method: &'a Method,
    },
    /// `MSRP tid CODE [comment]`.
    Response {
        /// The status code.
        status: StatusCode,
        /// The comment (reason phrase), if any.
        comment: Option<&'a str>,
    },
}

/// One header of a [`MessageHead`], as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRef<'a> {
    /// The name, spelled as on the wire.
    pub name: &'a str,
    /// The value: everything after the colon and the single space that follows it.
    pub value: &'a str,
    /// The header's kind.
    pub kind: HeaderKind,
}

/// Tracks the header rules of RFC 4975 §7.1 / §9 while headers are added one by one.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeadChecker {
    pub(crate) count: usize,
    seen: u32,
    last: Option<HeaderKind>,
    first_mime: Option<HeaderKind>,
}

impl HeadChecker {
    /// Order and duplicate rules for the next header.
    #[inline(always)]
    pub(crate) fn add(&mut self, kind: HeaderKind) -> Result<(), MessageError> {
        // Duplicates first, so "To-Path, To-Path" reports the duplicate (RFC 4975 §9 has
        // exactly one To-Path and one From-Path).
        let bit = kind.bit();
        if bit & HeaderKind::SINGLE & self.seen != 0 {
            return Err(MessageError::DuplicateHeader(kind));
        }
        // RFC 4975 §9: headers = To-Path CRLF From-Path CRLF 1*( header CRLF ); §7.1 / §7.2.
        if self.count < 2 {
            if self.count == 0 && kind != HeaderKind::ToPath {
                return Err(MessageError::ToPathNotFirst);
            }
            if self.count == 1 && kind != HeaderKind::FromPath {
                return Err(MessageError::FromPathNotSecond);
            }
        }
        if bit & HeaderKind::MIME != 0 && self.first_mime.is_none() {
            self.first_mime = Some(kind);
        }
        self.seen |= bit;
        self.count += 1;
        self.last = Some(kind);
        Ok(())
    }

    /// Rules that need the whole head: required headers and the body rules of RFC 4975 §7.1.
    pub(crate) fn finish(&self, request: bool, body: bool) -> Result<(), MessageError> {
        if self.count == 0 {
            return Err(MessageError::MissingToPath);
        }
        if self.count == 1 {
            return Err(MessageError::MissingFromPath);
        }
        if body {
            if !request {
                // RFC 4975 §9: msrp-response = resp-start headers end-line
                return Err(MessageError::ResponseWithBody);
            }
            // RFC 4975 §7.1: "If the request has a body, it MUST contain a Content-Type
            // header field. [...] The Content-Type header field MUST be the last field".
            if self.seen & HeaderKind::ContentType.bit() == 0 {
                return Err(MessageError::MissingContentType);
            }
            if self.last != Some(HeaderKind::ContentType) {
                return Err(MessageError::ContentTypeNotLast);
            }
        } else if let Some(k) = self.first_mime {
            // RFC 4975 §7.1: "A request with no body MUST NOT include a Content-Type or any
            // other MIME-specific header fields."
            return Err(MessageError::MimeHeaderWithoutBody(k));
        }
        Ok(())
    }
}

/// The start line and headers of an MSRP request or response (RFC 4975 §9).
///
/// The text is kept exactly as received (or as built), so [`write_head`](super::write_head)
/// reproduces it byte for byte and header order and spelling survive. Every known header was
/// checked when it was parsed or added; the typed getters ([`to_path`](Self::to_path),
/// [`byte_range`](Self::byte_range), ...) read that checked text on demand.
///
/// Build one with [`request`](Self::request) or [`response`](Self::response) and the `push_*`
/// methods; the To-Path must be pushed first and the From-Path second (RFC 4975 §9).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MessageHead {
    /// Start line and header lines, each ending in CRLF.
    raw: String,
    tid: Span,
    start: Start,
    headers: Vec<Entry>,
}

impl fmt::Debug for MessageHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageHead")
            .field("start", &self.start_line())
            .field("transaction_id", &self.transaction_id())
            .field(
                "headers",
                &self
                    .headers()
                    .map(|h| (h.name, h.value))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl MessageHead {
    /// This head as a [`HeadRef`] (no copy).
    pub fn view(&self) -> HeadRef<'_, '_> {
        HeadRef::new(self.raw.as_bytes(), self.tid, &self.start, &self.headers)
    }

    /// A request head with no headers yet: `MSRP tid METHOD`.
    pub fn request(transaction_id: &str, method: Method) -> Result<Self, MessageError> {
        check_tid(transaction_id)?;
        if !method.as_str().bytes().all(|c| c.is_ascii_uppercase()) || method.as_str().is_empty() {
            return Err(MessageError::InvalidMethod);
        }
        let raw = format!("MSRP {transaction_id} {}\r\n", method.as_str());
        Ok(MessageHead {
            raw,
            tid: Span::new(5, 5 + transaction_id.len()),
            start: Start::Request(method),
            headers: Vec::new(),
        })
    }

    /// A response head with no headers yet: `MSRP tid CODE [comment]`. The comment is
    /// `utf8text` (no control characters other than HTAB).
    pub fn response(
        transaction_id: &str,
        status: StatusCode,
        comment: Option<&str>,
    ) -> Result<Self, MessageError> {
        check_tid(transaction_id)?;
        if status.0 > 999 {
            return Err(MessageError::InvalidStatusCode);
        }
        let mut raw = format!("MSRP {transaction_id} {status}");
        let comment = match comment {
            Some(c) => {
                header::check_text(c.as_bytes()).map_err(|(_, e)| e)?;
                raw.push(' ');
                let s = raw.len();
                raw.push_str(c);
                Some(Span::new(s, raw.len()))
            }
            None => None,
        };
        raw.push_str("\r\n");
        Ok(MessageHead {
            raw,
            tid: Span::new(5, 5 + transaction_id.len()),
            start: Start::Response { status, comment },
            headers: Vec::new(),
        })
    }

    fn checker(&self) -> HeadChecker {
        let mut c = HeadChecker::default();
        for e in &self.headers {
            // Already accepted once, in this order.
            let _ = c.add(e.kind);
        }
        c
    }

    /// Appends a header `name: value`, checking the name (`hname`), the value (`utf8text`,
    /// and the syntax of known headers), duplicates and the To-Path/From-Path order.
    pub fn push(&mut self, name: &str, value: &str) -> Result<&mut Self, MessageError> {
        header::check_name(name.as_bytes())?;
        header::check_text(value.as_bytes()).map_err(|(_, e)| e)?;
        let kind = HeaderKind::from_name(name.as_bytes());
        // Same order of checks as the parser.
        if self.headers.len() >= Limits::default().max_headers {
            return Err(MessageError::TooManyHeaders(Limits::default().max_headers));
        }
        self.checker().add(kind)?;
        header::check_value(kind, value.as_bytes(), &Limits::default())?;
        let ns = self.raw.len();
        self.raw.push_str(name);
        let ne = self.raw.len();
        self.raw.push_str(": ");
        let vs = self.raw.len();
        self.raw.push_str(value);
        let ve = self.raw.len();
        self.raw.push_str("\r\n");
        self.headers.push(Entry {
            name: Span::new(ns, ne),
            value: Span::new(vs, ve),
            kind,
        });
        Ok(self)
    }

    /// Appends a path header (`To-Path`, `From-Path` or `Use-Path`) with these URIs.
    pub fn push_path(
        &mut self,
        kind: HeaderKind,
        uris: &[MsrpUri],
    ) -> Result<&mut Self, MessageError> {
        let name = match kind {
            HeaderKind::ToPath | HeaderKind::FromPath | HeaderKind::UsePath => {
                kind.canonical_name().unwrap_or_default()
            }
            _ => return Err(MessageError::InvalidHeaderName),
        };
        let v = uris
            .iter()
            .map(|u| u.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        self.push(name, &v)
    }

    /// Appends `To-Path`.
    pub fn push_to_path(&mut self, uris: &[MsrpUri]) -> Result<&mut Self, MessageError> {
        self.push_path(HeaderKind::ToPath, uris)
    }

    /// Appends `From-Path`.
    pub fn push_from_path(&mut self, uris: &[MsrpUri]) -> Result<&mut Self, MessageError> {
        self.push_path(HeaderKind::FromPath, uris)
    }

    /// Appends `Message-ID`.
    pub fn push_message_id(&mut self, id: &str) -> Result<&mut Self, MessageError> {
        self.push("Message-ID", id)
    }

    /// Appends `Byte-Range`.
    pub fn push_byte_range(&mut self, r: ByteRange) -> Result<&mut Self, MessageError> {
        self.push("Byte-Range", &r.to_string())
    }

    /// Appends `Success-Report: yes|no`.
    pub fn push_success_report(&mut self, yes: bool) -> Result<&mut Self, MessageError> {
        self.push("Success-Report", if yes { "yes" } else { "no" })
    }

    /// Appends `Failure-Report`.
    pub fn push_failure_report(&mut self, v: FailureReport) -> Result<&mut Self, MessageError> {
        self.push("Failure-Report", v.as_str())
    }

    /// Appends `Status: 000 CODE [comment]` (namespace 000, RFC 4975 §9).
    pub fn push_status(
        &mut self,
        code: StatusCode,
        comment: Option<&str>,
    ) -> Result<&mut Self, MessageError> {
        let v = match comment {
            Some(c) => format!("000 {code} {c}"),
            None => format!("000 {code}"),
        };
        self.push("Status", &v)
    }

    /// Appends `Content-Type`. It must be the last header of a request with a body.
    pub fn push_content_type(&mut self, media_type: &str) -> Result<&mut Self, MessageError> {
        self.push("Content-Type", media_type)
    }

    /// Appends `Expires`, `Min-Expires` or `Max-Expires` (RFC 4976 §4.6).
    pub fn push_expires(&mut self, kind: HeaderKind, secs: u32) -> Result<&mut Self, MessageError> {
        match kind {
            HeaderKind::Expires | HeaderKind::MinExpires | HeaderKind::MaxExpires => {
                self.push(kind.canonical_name().unwrap_or_default(), &secs.to_string())
            }
            _ => Err(MessageError::InvalidHeaderName),
        }
    }

    /// Rebuilds the head from a new start line and header list, checking everything again.
    fn rebuild(
        start: MessageHead,
        headers: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, MessageError> {
        let mut h = start;
        for (n, v) in headers {
            h.push(&n, &v)?;
        }
        Ok(h)
    }

    fn owned_headers(&self) -> Vec<(String, String)> {
        self.headers()
            .map(|h| (h.name.to_string(), h.value.to_string()))
            .collect()
    }

    fn empty_like(&self, tid: &str) -> Result<MessageHead, MessageError> {
        match &self.start {
            Start::Request(m) => MessageHead::request(tid, m.clone()),
            Start::Response { status, comment } => {
                MessageHead::response(tid, *status, comment.map(|c| c.get(&self.raw)))
            }
        }
    }

    /// Replaces the value of the first header called `name` (case-insensitive), or appends
    /// it if there is none. Relays use it to rewrite To-Path and From-Path (RFC 4976 §6.4).
    pub fn set(&mut self, name: &str, value: &str) -> Result<&mut Self, MessageError> {
        let mut hs = self.owned_headers();
        match hs.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some(h) => h.1 = value.to_string(),
            None => hs.push((name.to_string(), value.to_string())),
        }
        *self = Self::rebuild(self.empty_like(self.transaction_id())?, hs)?;
        Ok(self)
    }

    /// Removes every header called `name` (case-insensitive); returns how many were removed.
    /// Fails (leaving the head unchanged) if that breaks the To-Path/From-Path order.
    pub fn remove(&mut self, name: &str) -> Result<usize, MessageError> {
        let mut hs = self.owned_headers();
        let before = hs.len();
        hs.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        let removed = before - hs.len();
        if removed > 0 {
            *self = Self::rebuild(self.empty_like(self.transaction_id())?, hs)?;
        }
        Ok(removed)
    }

    /// Changes the transaction id (relays forward with a new one, RFC 4976 §6.4).
    pub fn set_transaction_id(&mut self, tid: &str) -> Result<&mut Self, MessageError> {
        *self = Self::rebuild(self.empty_like(tid)?, self.owned_headers())?;
        Ok(self)
    }

    /// Checks the RFC 4975 §7.1 rules that depend on whether a body follows: To-Path and
    /// From-Path present; with a body, a request whose last header is Content-Type; without
    /// one, no MIME headers. The writer calls it; the parser applies the same rules.
    pub fn check_complete(&self, body: bool) -> Result<(), MessageError> {
        self.checker().finish(self.is_request(), body)
    }

    /// The head text: start line and headers, each line ending in CRLF.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The transaction id (RFC 4975 §9 `transact-id`).
    pub fn transaction_id(&self) -> &str {
        self.tid.get(&self.raw)
    }

    /// The start line.
    pub fn start_line(&self) -> StartLine<'_> {
        match &self.start {
            Start::Request(method) => StartLine::Request { method },
            Start::Response { status, comment } => StartLine::Response {
                status: *status,
                comment: comment.map(|c| c.get(&self.raw)),
            },
        }
    }

    /// True for requests.
    pub fn is_request(&self) -> bool {
        matches!(self.start, Start::Request(_))
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            Start::Request(m) => Some(m),
            Start::Response { .. } => None,
        }
    }

    /// The status code of a response.
    pub fn status_code(&self) -> Option<StatusCode> {
        match &self.start {
            Start::Response { status, .. } => Some(*status),
            Start::Request(_) => None,
        }
    }

    /// The comment of a response start line.
    pub fn comment(&self) -> Option<&str> {
        match &self.start {
            Start::Response { comment, .. } => comment.map(|c| c.get(&self.raw)),
            Start::Request(_) => None,
        }
    }

    /// All headers, in order.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = HeaderRef<'_>> + '_ {
        self.headers.iter().map(|e| HeaderRef {
            name: e.name.get(&self.raw),
            value: e.value.get(&self.raw),
            kind: e.kind,
        })
    }

    /// Number of headers.
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// The value of the first header called `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The value of the first header of `kind`.
    pub fn get_kind(&self, kind: HeaderKind) -> Option<&str> {
        self.headers
            .iter()
            .find(|e| e.kind == kind)
            .map(|e| e.value.get(&self.raw))
    }

    /// The values of all headers of `kind`, in order.
    pub fn get_all(&self, kind: HeaderKind) -> impl Iterator<Item = &str> + '_ {
        self.headers
            .iter()
            .filter(move |e| e.kind == kind)
            .map(|e| e.value.get(&self.raw))
    }

    /// The To-Path URIs (leftmost is the next hop, RFC 4975 §7.1).
    pub fn to_path(&self) -> Vec<MsrpUri> {
        self.get_kind(HeaderKind::ToPath)
            .map(header::view_uris)
            .unwrap_or_default()
    }

    /// The From-Path URIs.
    pub fn from_path(&self) -> Vec<MsrpUri> {
        self.get_kind(HeaderKind::FromPath)
            .map(header::view_uris)
            .unwrap_or_default()
    }

    /// The Use-Path URIs (RFC 4976 §4.2), if present.
    pub fn use_path(&self) -> Option<Vec<MsrpUri>> {
        self.get_kind(HeaderKind::UsePath).map(header::view_uris)
    }

    /// The Message-ID.
    pub fn message_id(&self) -> Option<&str> {
        self.get_kind(HeaderKind::MessageId)
    }

    /// Success-Report: `Some(true)` for `yes`; `None` when absent (which means `no`,
    /// RFC 4975 §7.1.1).
    pub fn success_report(&self) -> Option<bool> {
        self.get_kind(HeaderKind::SuccessReport)
            .and_then(header::view_success)
    }

    /// Failure-Report; `None` when absent (which means `yes`, RFC 4975 §7.1.1).
    pub fn failure_report(&self) -> Option<FailureReport> {
        self.get_kind(HeaderKind::FailureReport)
            .and_then(header::view_failure)
    }

    /// The Byte-Range.
    pub fn byte_range(&self) -> Option<ByteRange> {
        self.get_kind(HeaderKind::ByteRange)
            .and_then(|v| ByteRange::parse(v).ok())
    }

    /// The Status header (REPORTs, RFC 4975 §7.1.2).
    pub fn status(&self) -> Option<StatusHeader<'_>> {
        self.get_kind(HeaderKind::Status)
            .and_then(header::view_status)
    }

    /// The Content-Type.
    pub fn content_type(&self) -> Option<ContentType<'_>> {
        self.get_kind(HeaderKind::ContentType)
            .and_then(header::view_content_type)
    }

    /// The Content-ID.
    pub fn content_id(&self) -> Option<&str> {
        self.get_kind(HeaderKind::ContentId)
    }

    /// The Content-Description.
    pub fn content_description(&self) -> Option<&str> {
        self.get_kind(HeaderKind::ContentDescription)
    }

    /// The Content-Disposition.
    pub fn content_disposition(&self) -> Option<&str> {
        self.get_kind(HeaderKind::ContentDisposition)
    }

    /// WWW-Authenticate values (RFC 4976 §4.3), raw.
    pub fn www_authenticate(&self) -> impl Iterator<Item = &str> + '_ {
        self.get_all(HeaderKind::WwwAuthenticate)
    }

    /// Authorization values (RFC 4976 §4.4), raw.
    pub fn authorization(&self) -> impl Iterator<Item = &str> + '_ {
        self.get_all(HeaderKind::Authorization)
    }

    /// Authentication-Info (RFC 4976 §4.5), raw.
    pub fn authentication_info(&self) -> Option<&str> {
        self.get_kind(HeaderKind::AuthenticationInfo)
    }

    /// Expires, in seconds (RFC 4976 §4.6).
    pub fn expires(&self) -> Option<u32> {
        self.get_kind(HeaderKind::Expires)
            .and_then(header::view_u32)
    }

    /// Min-Expires, in seconds (RFC 4976 §4.6).
    pub fn min_expires(&self) -> Option<u32> {
        self.get_kind(HeaderKind::MinExpires)
            .and_then(header::view_u32)
    }

    /// Max-Expires, in seconds (RFC 4976 §4.6).
    pub fn max_expires(&self) -> Option<u32> {
        self.get_kind(HeaderKind::MaxExpires)
            .and_then(header::view_u32)
    }
}

fn check_tid(tid: &str) -> Result<(), MessageError> {
    if header::is_ident(tid.as_bytes()) {
        Ok(())
    } else {
        Err(MessageError::InvalidTransactionId)
    }
}

/// A borrowed view of a message head: the start line and headers as the parser checked
/// them, without copying. [`Parser::parse_ref`](super::Parser::parse_ref) hands one out in
/// [`EventRef::Head`](super::EventRef::Head); the text borrows the caller's buffer (`'b`) and
/// the header index the parser (`'p`), so it lives until the next call. Everything a
/// [`MessageHead`] offers is here too; [`to_head`](Self::to_head) makes the owned head.
#[derive(Clone, Copy)]
pub struct HeadRef<'p, 'b> {
    /// Start line and header lines, each ending in CRLF; checked UTF-8 (RFC 4975 §9).
    raw: &'b [u8],
    tid: Span,
    start: &'p Start,
    headers: &'p [Entry],
}

impl fmt::Debug for HeadRef<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeadRef")
            .field("start", &self.start_line())
            .field("transaction_id", &self.transaction_id())
            .field(
                "headers",
                &self
                    .headers()
                    .map(|h| (h.name, h.value))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl PartialEq for HeadRef<'_, '_> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
            && self.tid == other.tid
            && self.start == other.start
            && self.headers == other.headers
    }
}

impl Eq for HeadRef<'_, '_> {}

impl<'p, 'b> HeadRef<'p, 'b> {
    /// `raw` must be UTF-8 that the parser checked; the spans fall on ASCII boundaries.
    pub(crate) fn new(raw: &'b [u8], tid: Span, start: &'p Start, headers: &'p [Entry]) -> Self {
        HeadRef {
            raw,
            tid,
            start,
            headers,
        }
    }

    /// The text at `s`. The head was checked as UTF-8 as a whole and spans start and end at
    /// ASCII bytes, so the conversion cannot fail (it yields "" if it ever did).
    #[inline]
    fn text(&self, s: Span) -> &'b str {
        std::str::from_utf8(&self.raw[s.start as usize..s.end as usize]).unwrap_or_default()
    }

    /// The owned head (one copy of the text and of the header index).
    pub fn to_head(&self) -> MessageHead {
        MessageHead {
            raw: std::str::from_utf8(self.raw).unwrap_or_default().to_owned(),
            tid: self.tid,
            start: self.start.clone(),
            headers: self.headers.to_vec(),
        }
    }

    /// The head text: start line and headers, each line ending in CRLF.
    pub fn as_bytes(&self) -> &'b [u8] {
        self.raw
    }

    /// The head text as a string (checks the UTF-8 again; [`as_bytes`](Self::as_bytes) does
    /// not).
    pub fn as_str(&self) -> &'b str {
        self.text(Span::new(0, self.raw.len()))
    }

    /// The transaction id (RFC 4975 §9 `transact-id`).
    pub fn transaction_id(&self) -> &'b str {
        self.text(self.tid)
    }

    /// The transaction id's bytes (ASCII; no UTF-8 conversion).
    pub fn transaction_id_bytes(&self) -> &'b [u8] {
        &self.raw[self.tid.start as usize..self.tid.end as usize]
    }

    /// The start line.
    pub fn start_line(&self) -> StartLine<'p>
    where
        'b: 'p,
    {
        match self.start {
            Start::Request(method) => StartLine::Request { method },
            Start::Response { status, comment } => StartLine::Response {
                status: *status,
                comment: comment.map(|c| self.text(c)),
            },
        }
    }

    /// True for requests.
    pub fn is_request(&self) -> bool {
        matches!(self.start, Start::Request(_))
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&'p Method> {
        match self.start {
            Start::Request(m) => Some(m),
            Start::Response { .. } => None,
        }
    }

    /// The status code of a response.
    pub fn status_code(&self) -> Option<StatusCode> {
        match self.start {
            Start::Response { status, .. } => Some(*status),
            Start::Request(_) => None,
        }
    }

    /// The comment of a response start line.
    pub fn comment(&self) -> Option<&'b str> {
        match self.start {
            Start::Response { comment, .. } => comment.map(|c| self.text(c)),
            Start::Request(_) => None,
        }
    }

    /// All headers, in order.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = HeaderRef<'b>> + 'p
    where
        'b: 'p,
    {
        let me = *self;
        self.headers.iter().map(move |e| HeaderRef {
            name: me.text(e.name),
            value: me.text(e.value),
            kind: e.kind,
        })
    }

    /// Number of headers.
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// The value of the first header called `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&'b str> {
        self.headers
            .iter()
            .find(|e| self.text(e.name).eq_ignore_ascii_case(name))
            .map(|e| self.text(e.value))
    }

    /// The value of the first header of `kind`.
    pub fn get_kind(&self, kind: HeaderKind) -> Option<&'b str> {
        self.headers
            .iter()
            .find(|e| e.kind == kind)
            .map(|e| self.text(e.value))
    }

    /// The values of all headers of `kind`, in order.
    pub fn get_all(&self, kind: HeaderKind) -> impl Iterator<Item = &'b str> + 'p
    where
        'b: 'p,
    {
        let me = *self;
        self.headers
            .iter()
            .filter(move |e| e.kind == kind)
            .map(move |e| me.text(e.value))
    }

    /// The To-Path URIs (leftmost is the next hop, RFC 4975 §7.1).
    pub fn to_path(&self) -> Vec<MsrpUri> {
        self.get_kind(HeaderKind::ToPath)
            .map(header::view_uris)
            .unwrap_or_default()
    }

    /// The From-Path URIs.
    pub fn from_path(&self) -> Vec<MsrpUri> {
        self.get_kind(HeaderKind::FromPath)
            .map(header::view_uris)
            .unwrap_or_default()
    }

    /// The Use-Path URIs (RFC 4976 §4.2), if present.
    pub fn use_path(&self) -> Option<Vec<MsrpUri>> {
        self.get_kind(HeaderKind::UsePath).map(header::view_uris)
    }

    /// The Message-ID.
    pub fn message_id(&self) -> Option<&'b str> {
        self.get_kind(HeaderKind::MessageId)
    }

    /// Success-Report: `Some(true)` for `yes`; `None` when absent (which means `no`,
    /// RFC 4975 §7.1.1).
    pub fn success_report(&self) -> Option<bool> {
        self.get_kind(HeaderKind::SuccessReport)
            .and_then(header::view_success)
    }

    /// Failure-Report; `None` when absent (which means `yes`, RFC 4975 §7.1.1).
    pub fn failure_report(&self) -> Option<FailureReport> {
        self.get_kind(HeaderKind::FailureReport)
            .and_then(header::view_failure)
    }

    /// The Byte-Range.
    pub fn byte_range(&self) -> Option<ByteRange> {
        self.get_kind(HeaderKind::ByteRange)
            .and_then(|v| ByteRange::parse(v).ok())
    }

    /// The Status header (REPORTs, RFC 4975 §7.1.2).
    pub fn status(&self) -> Option<StatusHeader<'b>> {
        self.get_kind(HeaderKind::Status)
            .and_then(header::view_status)
    }

    /// The Content-Type.
    pub fn content_type(&self) -> Option<ContentType<'b>> {
        self.get_kind(HeaderKind::ContentType)
            .and_then(header::view_content_type)
    }

    /// Expires, in seconds (RFC 4976 §4.6).
    pub fn expires(&self) -> Option<u32> {
        self.get_kind(HeaderKind::Expires)
            .and_then(header::view_u32)
    }
}
