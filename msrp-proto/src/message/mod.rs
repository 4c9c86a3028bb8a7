//! MSRP messages: types, the incremental parser and the writer (RFC 4975 §7, §9, §10;
//! RFC 4976 §4, §7).
//!
//! ```text
//! msrp-request  = req-start headers [content-stuff] end-line
//! msrp-response = resp-start headers end-line
//! ```
//!
//! - [`Parser`] is a push parser in the style of httparse: give it whatever bytes you have;
//!   it returns how many it consumed and at most one [`Event`]: the head (start line and
//!   headers, owned), a body fragment (borrowed from your buffer, never copied, never
//!   buffered whole), or the end-line with its [`Continuation`] flag. Running out of input is
//!   not an error. [`Limits`] bound everything it holds. [`Parser::parse_ref`] does the same
//!   with the head borrowed ([`EventRef`], [`HeadRef`]) instead of copied, and
//!   [`Parser::parse_message_ref`] gives a message that is whole in the buffer at once
//!   ([`MessageRef`]; [`write_message_ref`] writes it back).
//! - [`write_head`], [`write_body_start`] and [`write_end_line`] produce the wire form
//!   piece by piece for a sender that streams chunks; [`Message::encode`] does a whole
//!   message. The writer's output is exactly what the parser accepts.
//!
//! ```
//! use msrp_proto::message::{Event, Limits, Parser, Continuation};
//!
//! let wire = b"MSRP a786hjs2 SEND\r\n\
//! To-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n\
//! From-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\n\
//! Message-ID: 87652491\r\n\
//! Byte-Range: 1-25/25\r\n\
//! Content-Type: text/plain\r\n\
//! \r\n\
//! Hey Bob, are you there?\r\n\
//! -------a786hjs2$\r\n";
//! let mut parser = Parser::new(Limits::default());
//! let mut buf = &wire[..];
//! let mut body = Vec::new();
//! loop {
//!     let (used, event) = parser.parse(buf).unwrap();
//!     match event {
//!         Some(Event::Head { head, body: has_body }) => {
//!             assert_eq!(head.message_id(), Some("87652491"));
//!             assert!(has_body);
//!         }
//!         Some(Event::Body(b)) => body.extend_from_slice(b),
//!         Some(Event::End(flag)) => {
//!             assert_eq!(flag, Continuation::Complete);
//!             buf = &buf[used..];
//!             break;
//!         }
//!         None => unreachable!("the whole message is in the buffer"),
//!     }
//!     buf = &buf[used..];
//! }
//! assert_eq!(body, b"Hey Bob, are you there?");
//! assert!(buf.is_empty());
//! ```

mod error;
mod head;
mod header;
mod parse;
mod range;
mod status;
mod write;

pub use error::{ErrorCategory, MessageError, ParseError};
pub use head::{HeadRef, HeaderRef, MessageHead, StartLine};
pub use header::{is_ident, is_ident_char, ContentType, FailureReport, HeaderKind, StatusHeader};
pub use parse::{parse_messages, Event, EventRef, MessageEventRef, MessageRef, Parser};
pub use range::{ByteRange, ByteRangeError};
pub use status::StatusCode;
pub use write::{
    body_contains_end_line, write_body_start, write_end_line, write_head, write_head_ref,
    write_message_ref,
};

use std::fmt;

/// Bounds on what the parser accepts and holds. Every limit, when exceeded, gives its own
/// [`MessageError`] variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest start line, without its CRLF ([`MessageError::StartLineTooLong`]). Clamped to
    /// 16 MiB.
    pub max_start_line: usize,
    /// Largest header block: start line, headers and the blank line before a body
    /// ([`MessageError::HeadTooLarge`]). Clamped to 16 MiB.
    pub max_head_bytes: usize,
    /// Most headers in one message ([`MessageError::TooManyHeaders`]).
    pub max_headers: usize,
    /// Largest body of one request (one chunk) ([`MessageError::BodyTooLarge`]). Bodies are
    /// streamed, never buffered by the parser, so this is a policy limit, not a memory one.
    pub max_body_bytes: u64,
    /// Most URIs in one To-Path, From-Path or Use-Path ([`MessageError::TooManyUris`]).
    pub max_path_uris: usize,
}

impl Default for Limits {
    /// Safe defaults: 1 KiB start line, 16 KiB header block, 64 headers, 64 MiB chunk body,
    /// 16 URIs per path.
    fn default() -> Self {
        Limits {
            max_start_line: 1024,
            max_head_bytes: 16 * 1024,
            max_headers: 64,
            max_body_bytes: 64 * 1024 * 1024,
            max_path_uris: 16,
        }
    }
}

/// An MSRP method (RFC 4975 §9 `method = mSEND / mREPORT / other-method`; RFC 4976 §4.1
/// AUTH).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// `SEND` (RFC 4975 §7.1.1).
    Send,
    /// `REPORT` (RFC 4975 §7.1.2).
    Report,
    /// `AUTH` (RFC 4976 §4.1).
    Auth,
    /// Any other `1*UPALPHA` method (answered with 501 by endpoints, RFC 4975 §12).
    Other(Box<str>),
}

impl Method {
    /// Parses `1*UPALPHA`; `None` for anything else (lower case included).
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "SEND" => Some(Method::Send),
            "REPORT" => Some(Method::Report),
            "AUTH" => Some(Method::Auth),
            _ if !s.is_empty() && s.bytes().all(|c| c.is_ascii_uppercase()) => {
                Some(Method::Other(s.into()))
            }
            _ => None,
        }
    }

    /// The method name.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Send => "SEND",
            Method::Report => "REPORT",
            Method::Auth => "AUTH",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The end-line flag (RFC 4975 §7.1, §9 `continuation-flag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Continuation {
    /// `$`: this chunk ends the message.
    Complete,
    /// `+`: more chunks follow.
    More,
    /// `#`: the sender aborts the message.
    Abort,
}

impl Continuation {
    /// The flag byte.
    pub fn as_byte(self) -> u8 {
        match self {
            Continuation::Complete => b'$',
            Continuation::More => b'+',
            Continuation::Abort => b'#',
        }
    }

    /// The flag as a one-character string.
    pub fn as_str(self) -> &'static str {
        match self {
            Continuation::Complete => "$",
            Continuation::More => "+",
            Continuation::Abort => "#",
        }
    }

    /// Parses a flag byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'$' => Some(Continuation::Complete),
            b'+' => Some(Continuation::More),
            b'#' => Some(Continuation::Abort),
            _ => None,
        }
    }
}

impl fmt::Display for Continuation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A whole message held in memory: head, optional body and end-line flag. Handy for small
/// messages, tests and tools; a session streaming large bodies uses [`Parser`] events and the
/// `write_*` functions instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Start line and headers.
    pub head: MessageHead,
    /// The body; `None` for a bodiless request or a response, `Some(vec![])` for an empty
    /// body (RFC 4975 §7.1: "Bodiless requests are distinct from requests with empty
    /// bodies").
    pub body: Option<Vec<u8>>,
    /// The end-line flag.
    pub continuation: Continuation,
}

impl Message {
    /// Appends the wire form to `out`, after checking that the parser will read it back as
    /// this message: the RFC 4975 §7.1 body rules ([`MessageHead::check_complete`]) and that
    /// the body does not contain the end-line ([`MessageError::EndLineInBody`]).
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), MessageError> {
        self.head.check_complete(self.body.is_some())?;
        let tid = self.head.transaction_id();
        if let Some(b) = &self.body {
            if body_contains_end_line(b, tid) {
                return Err(MessageError::EndLineInBody);
            }
        }
        write_head(&self.head, out);
        if let Some(b) = &self.body {
            write_body_start(out);
            out.extend_from_slice(b);
        }
        write_end_line(tid, self.body.is_some(), self.continuation, out);
        Ok(())
    }

    /// The wire form (see [`encode_into`](Self::encode_into)).
    pub fn encode(&self) -> Result<Vec<u8>, MessageError> {
        let mut out = Vec::with_capacity(
            self.head.as_str().len() + self.body.as_ref().map_or(0, Vec::len) + 48,
        );
        self.encode_into(&mut out)?;
        Ok(out)
    }
}
