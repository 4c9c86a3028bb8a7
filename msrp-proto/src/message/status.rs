//! MSRP status codes (RFC 4975 §10, RFC 4976 §10.3).

use std::fmt;

/// A three-digit MSRP status code, as carried in a response start line or a `Status` header
/// (RFC 4975 §9: `status-code = 3DIGIT`).
///
/// Any value 000..=999 can be carried; the named constants are the codes RFC 4975 §10 and
/// RFC 4976 §10.3 define (RFC 4976 adds only 401; there is no 420 in either RFC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(pub u16);

impl StatusCode {
    /// 200: the transaction succeeded (RFC 4975 §10.1).
    pub const OK: StatusCode = StatusCode(200);
    /// 400: the request was unintelligible (RFC 4975 §10.2).
    pub const BAD_REQUEST: StatusCode = StatusCode(400);
    /// 401: the request needs authorization (RFC 4976 §10.3, AUTH challenge).
    pub const UNAUTHORIZED: StatusCode = StatusCode(401);
    /// 403: the action is not allowed (RFC 4975 §10.3).
    pub const FORBIDDEN: StatusCode = StatusCode(403);
    /// 408: no response arrived in time, used in REPORTs only (RFC 4975 §10.4).
    pub const REQUEST_TIMEOUT: StatusCode = StatusCode(408);
    /// 413: the receiver wants the sender to stop sending the message (RFC 4975 §10.5).
    pub const MESSAGE_TOO_LARGE: StatusCode = StatusCode(413);
    /// 415: the media type is not understood (RFC 4975 §10.6).
    pub const UNSUPPORTED_MEDIA_TYPE: StatusCode = StatusCode(415);
    /// 423: a parameter value is out of bounds (RFC 4975 §10.7); RFC 4976 §4.6 sends it as
    /// "Interval Out-of-Bounds" when an AUTH `Expires` is outside the relay's range.
    pub const PARAMETER_OUT_OF_BOUNDS: StatusCode = StatusCode(423);
    /// Alias of 423 under its RFC 4976 §4.6 name.
    pub const INTERVAL_OUT_OF_BOUNDS: StatusCode = StatusCode(423);
    /// 481: the session does not exist (RFC 4975 §10.8).
    pub const SESSION_DOES_NOT_EXIST: StatusCode = StatusCode(481);
    /// 501: the method is not understood (RFC 4975 §10.9).
    pub const NOT_IMPLEMENTED: StatusCode = StatusCode(501);
    /// 506: the session is already bound to another connection (RFC 4975 §10.10).
    pub const WRONG_CONNECTION: StatusCode = StatusCode(506);

    /// Every code RFC 4975 and RFC 4976 define, in numeric order.
    pub const ALL: [StatusCode; 11] = [
        Self::OK,
        Self::BAD_REQUEST,
        Self::UNAUTHORIZED,
        Self::FORBIDDEN,
        Self::REQUEST_TIMEOUT,
        Self::MESSAGE_TOO_LARGE,
        Self::UNSUPPORTED_MEDIA_TYPE,
        Self::PARAMETER_OUT_OF_BOUNDS,
        Self::SESSION_DOES_NOT_EXIST,
        Self::NOT_IMPLEMENTED,
        Self::WRONG_CONNECTION,
    ];

    /// The numeric value.
    pub fn as_u16(self) -> u16 {
        self.0
    }

    /// True for 2xx codes.
    pub fn is_success(self) -> bool {
        (200..300).contains(&self.0)
    }

    /// The reason phrase used in RFC 4975/4976 examples and registries, if the code is one
    /// they define.
    pub fn reason(self) -> Option<&'static str> {
        Some(match self.0 {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            408 => "Request Timeout",
            413 => "Message Too Large",
            415 => "Unsupported Media Type",
            423 => "Parameter Out-of-Bounds",
            481 => "Session Does Not Exist",
            501 => "Not Implemented",
            506 => "Wrong Connection",
            _ => return None,
        })
    }
}

impl fmt::Display for StatusCode {
    /// Always three digits, as on the wire.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rfc_code_has_a_reason_and_three_digits() {
        let codes: Vec<u16> = StatusCode::ALL.iter().map(|c| c.as_u16()).collect();
        assert_eq!(
            codes,
            [200, 400, 401, 403, 408, 413, 415, 423, 481, 501, 506]
        );
        for c in StatusCode::ALL {
            assert!(c.reason().is_some(), "{c}");
            assert_eq!(c.to_string().len(), 3);
        }
        assert_eq!(StatusCode(299).reason(), None);
        assert!(StatusCode::OK.is_success());
        assert!(!StatusCode::WRONG_CONNECTION.is_success());
    }
}
