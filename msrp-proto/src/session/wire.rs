//! The wire-level values the session logic works with: `Failure-Report` / `Success-Report`
//! values, the end-line continuation flag, `Byte-Range` and status codes.
//!
//! The session logic is independent of how messages are parsed and written: the connection
//! layer turns parsed heads into [`IncomingSend`](super::IncomingSend) values and the session's
//! [`OutRequest`](super::OutRequest) values into bytes.

use std::fmt;

/// `Failure-Report` header value (RFC 4975 §7.1.1). Absent means `Yes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FailureReport {
    /// `yes` (the default): every request gets a response, the sender runs a 30 s timer.
    #[default]
    Yes,
    /// `no`: no response and no failure REPORT at all.
    No,
    /// `partial`: responses only for failures, no timer (RFC 4975 §5.3).
    Partial,
}

impl FailureReport {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReport::Yes => "yes",
            FailureReport::No => "no",
            FailureReport::Partial => "partial",
        }
    }
}

/// The end-line continuation flag (RFC 4975 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Continuation {
    /// `+`: more chunks follow.
    More,
    /// `$`: this chunk ends the message.
    End,
    /// `#`: the sender aborts the message (RFC 4975 §7.1.4's "#" flag).
    Abort,
}

impl Continuation {
    /// The flag character.
    pub fn as_char(self) -> char {
        match self {
            Continuation::More => '+',
            Continuation::End => '$',
            Continuation::Abort => '#',
        }
    }
}

/// A `Byte-Range` value (RFC 4975 §7.1.1): 1-based, inclusive; `None` is `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange {
    /// Position of the first body byte (1 for the first chunk).
    pub start: u64,
    /// Position of the last body byte; `None` for `*`.
    pub end: Option<u64>,
    /// Total size; `None` for `*`.
    pub total: Option<u64>,
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-", self.start)?;
        match self.end {
            Some(e) => write!(f, "{e}/")?,
            None => f.write_str("*/")?,
        }
        match self.total {
            Some(t) => write!(f, "{t}"),
            None => f.write_str("*"),
        }
    }
}

/// An MSRP status code (RFC 4975 §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(pub u16);

impl StatusCode {
    /// 200: success.
    pub const OK: StatusCode = StatusCode(200);
    /// 400: the request was unintelligible.
    pub const BAD_REQUEST: StatusCode = StatusCode(400);
    /// 403: not allowed.
    pub const FORBIDDEN: StatusCode = StatusCode(403);
    /// 408: timeout (RFC 4975 §10.4: treated as a local timeout).
    pub const REQUEST_TIMEOUT: StatusCode = StatusCode(408);
    /// 413: stop sending this message.
    pub const MESSAGE_TOO_LARGE: StatusCode = StatusCode(413);
    /// 415: unsupported media type.
    pub const UNSUPPORTED_MEDIA_TYPE: StatusCode = StatusCode(415);
    /// 481: no such session.
    pub const SESSION_DOES_NOT_EXIST: StatusCode = StatusCode(481);
    /// 501: unknown method.
    pub const NOT_IMPLEMENTED: StatusCode = StatusCode(501);
    /// 506: session bound to another connection.
    pub const WRONG_CONNECTION: StatusCode = StatusCode(506);

    /// True for 2xx.
    pub fn is_success(self) -> bool {
        (200..300).contains(&self.0)
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
