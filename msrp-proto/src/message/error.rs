//! Message codec errors.

use super::header::HeaderKind;
use super::range::ByteRangeError;
use super::status::StatusCode;
use crate::uri::UriError;
use std::fmt;

/// Who is at fault for an error, in the spirit of rustls' error groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCategory {
    /// The bytes do not follow RFC 4975 §9 (or a MUST of §7): the peer sent garbage.
    Malformed,
    /// The message is well formed so far but exceeds one of our [`Limits`](super::Limits).
    LimitExceeded,
    /// The input ended in the middle of a message.
    Truncated,
}

/// What is wrong with a message: the specific problem, without position.
///
/// The builder methods of [`MessageHead`](super::MessageHead) return it directly; the parser
/// wraps it in a [`ParseError`] with the byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The message does not start with `MSRP` in capitals followed by a space (RFC 4975 §9
    /// `pMSRP`).
    #[error("message does not start with \"MSRP \"")]
    NotMsrp,
    /// The start line is longer than [`Limits::max_start_line`](super::Limits::max_start_line).
    #[error("start line longer than {0} bytes")]
    StartLineTooLong(usize),
    /// The start line is not `MSRP SP transact-id SP (method / status-code [SP comment])`.
    #[error("malformed start line")]
    MalformedStartLine,
    /// The transaction id is not an `ident` (ALPHANUM 3*31 ident-char, RFC 4975 §9).
    #[error("invalid transaction id (must be 4-32 characters: letter or digit, then letters, digits or . - + % =)")]
    InvalidTransactionId,
    /// The method is not `1*UPALPHA` (RFC 4975 §9); lower-case methods are rejected.
    #[error("invalid method (must be upper-case letters)")]
    InvalidMethod,
    /// The response status code is not 3 digits.
    #[error("invalid status code (must be 3 digits)")]
    InvalidStatusCode,
    /// A line ends with LF without the CR before it (RFC 4975 §9 uses CRLF only).
    #[error("line ends with a bare LF instead of CRLF")]
    BareLineFeed,
    /// A NUL byte in the start line or a header.
    #[error("NUL byte in message header")]
    NulByte,
    /// Another control character (other than HTAB) in the start line or a header value.
    #[error("control character in message header")]
    ControlCharacter,
    /// The start line or a header value is not valid UTF-8 (RFC 4975 §9 `utf8text`).
    #[error("header text is not valid UTF-8")]
    InvalidUtf8,
    /// The header block (start line, headers, blank line) is larger than
    /// [`Limits::max_head_bytes`](super::Limits::max_head_bytes).
    #[error("header block larger than {0} bytes")]
    HeadTooLarge(usize),
    /// More headers than [`Limits::max_headers`](super::Limits::max_headers).
    #[error("more than {0} headers")]
    TooManyHeaders(usize),
    /// A header line has no `:`.
    #[error("header line without ':'")]
    HeaderWithoutColon,
    /// A header name is not `ALPHA *token` (RFC 4975 §9 `hname`), e.g. it has a space before
    /// the colon or the line starts with whitespace.
    #[error("invalid header name")]
    InvalidHeaderName,
    /// The first header is not To-Path (RFC 4975 §9 `headers`, §7.1).
    #[error("first header must be To-Path")]
    ToPathNotFirst,
    /// The second header is not From-Path (RFC 4975 §9 `headers`, §7.1).
    #[error("second header must be From-Path")]
    FromPathNotSecond,
    /// The message has no To-Path header.
    #[error("missing To-Path header")]
    MissingToPath,
    /// The message has no From-Path header.
    #[error("missing From-Path header")]
    MissingFromPath,
    /// A header that may appear only once appears again.
    #[error("duplicate {0} header")]
    DuplicateHeader(HeaderKind),
    /// A To-Path, From-Path or Use-Path URI is invalid.
    #[error("invalid URI in {header}: {error}")]
    InvalidUri {
        /// The header holding the URI.
        header: HeaderKind,
        /// What is wrong with it.
        error: UriError,
    },
    /// A path header has more URIs than [`Limits::max_path_uris`](super::Limits::max_path_uris).
    #[error("{header} has more than {limit} URIs")]
    TooManyUris {
        /// The header.
        header: HeaderKind,
        /// The limit.
        limit: usize,
    },
    /// Message-ID is not an `ident` (RFC 4975 §9).
    #[error("invalid Message-ID")]
    InvalidMessageId,
    /// Success-Report is not `yes`/`no`, or Failure-Report not `yes`/`no`/`partial`.
    #[error("invalid {0} value")]
    InvalidReportValue(HeaderKind),
    /// Byte-Range is invalid (RFC 4975 §7.1.1, §9).
    #[error("invalid Byte-Range: {0}")]
    InvalidByteRange(ByteRangeError),
    /// Status is not `namespace SP status-code [SP comment]` (RFC 4975 §9).
    #[error("invalid Status header")]
    InvalidStatusHeader,
    /// Content-Type is not `type "/" subtype *(";" gen-param)` (RFC 4975 §9).
    #[error("invalid Content-Type")]
    InvalidContentType,
    /// Expires, Min-Expires or Max-Expires is not a number that fits in 32 bits (RFC 4976 §7).
    #[error("invalid {0} value")]
    InvalidExpires(HeaderKind),
    /// A request with a body has no Content-Type (RFC 4975 §7.1).
    #[error("request has a body but no Content-Type header")]
    MissingContentType,
    /// Content-Type is not the last header of a request with a body (RFC 4975 §7.1).
    #[error("Content-Type must be the last header before the body")]
    ContentTypeNotLast,
    /// A request without a body, or a response, carries a Content-Type or other MIME header
    /// (RFC 4975 §7.1).
    #[error("{0} header in a message without a body")]
    MimeHeaderWithoutBody(HeaderKind),
    /// A response has a body (RFC 4975 §7.2, §9: `msrp-response = resp-start headers end-line`).
    #[error("response has a body")]
    ResponseWithBody,
    /// A non-SEND request body is larger than 10240 bytes (RFC 4975 §7.1).
    #[error("non-SEND request body larger than 10240 bytes")]
    NonSendBodyTooLarge,
    /// A body is larger than [`Limits::max_body_bytes`](super::Limits::max_body_bytes).
    #[error("body larger than {0} bytes")]
    BodyTooLarge(u64),
    /// The end-line has another transaction id than the start line (RFC 4975 §7.1).
    #[error("end-line transaction id does not match the start line")]
    EndLineMismatch,
    /// The end-line flag is not `$`, `+` or `#` (RFC 4975 §9 `continuation-flag`).
    #[error("invalid continuation flag in end-line (must be $, + or #)")]
    InvalidContinuationFlag,
    /// The end-line is not followed by CRLF, or is otherwise malformed.
    #[error("malformed end-line")]
    MalformedEndLine,
    /// The body starts with the end-line: the CRLF that must precede it is missing
    /// (RFC 4975 §7.1: "the end-line MUST be preceded by a CRLF that is not part of the body").
    #[error("end-line not preceded by CRLF after the body")]
    EndLineWithoutCrlf,
    /// The body contains the end-line (RFC 4975 §7.1: the sender MUST choose another
    /// transaction id). Only the writer reports this.
    #[error("body contains the end-line for its transaction id")]
    EndLineInBody,
    /// The input ended inside a message.
    #[error("input ended inside a message")]
    UnexpectedEof,
}

impl MessageError {
    /// Who is at fault.
    pub fn category(&self) -> ErrorCategory {
        use MessageError::*;
        match self {
            StartLineTooLong(_)
            | HeadTooLarge(_)
            | TooManyHeaders(_)
            | TooManyUris { .. }
            | BodyTooLarge(_)
            | NonSendBodyTooLarge => ErrorCategory::LimitExceeded,
            UnexpectedEof => ErrorCategory::Truncated,
            _ => ErrorCategory::Malformed,
        }
    }

    /// The status code the peer should get for a request with this problem: 413 when a body
    /// is too large (RFC 4975 §10.5), 400 otherwise (RFC 4975 §10.2).
    pub fn status_code(&self) -> StatusCode {
        match self {
            MessageError::BodyTooLarge(_) | MessageError::NonSendBodyTooLarge => {
                StatusCode::MESSAGE_TOO_LARGE
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A parse failure: what is wrong, where (byte offset from the start of the stream), and the
/// transaction id of the message when it was already known.
///
/// After an error the [`Parser`](super::Parser) is poisoned: the stream has lost framing and
/// the connection should be closed (after sending [`ParseError::status_code`] if
/// [`ParseError::transaction_id`] is known and the message was a request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(Box<Inner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    kind: MessageError,
    offset: u64,
    transaction_id: Option<String>,
}

impl ParseError {
    pub(crate) fn new(kind: MessageError, offset: u64, transaction_id: Option<String>) -> Self {
        ParseError(Box::new(Inner {
            kind,
            offset,
            transaction_id,
        }))
    }

    /// The specific problem.
    pub fn kind(&self) -> &MessageError {
        &self.0.kind
    }

    /// Byte offset, from the start of the stream given to the parser, where the problem was
    /// found.
    pub fn offset(&self) -> u64 {
        self.0.offset
    }

    /// The transaction id of the broken message, if its start line had been parsed.
    pub fn transaction_id(&self) -> Option<&str> {
        self.0.transaction_id.as_deref()
    }

    /// Who is at fault.
    pub fn category(&self) -> ErrorCategory {
        self.0.kind.category()
    }

    /// The status code the peer should get (see [`MessageError::status_code`]).
    pub fn status_code(&self) -> StatusCode {
        self.0.kind.status_code()
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte offset {}", self.0.kind, self.0.offset)?;
        if let Some(t) = &self.0.transaction_id {
            write!(f, " (transaction {t})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}
