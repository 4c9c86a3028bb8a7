//! The wire-level values the session logic works with, from the codec: `Failure-Report`
//! values, the end-line continuation flag, `Byte-Range` and status codes.
//!
//! The session logic is independent of how messages are parsed and written: the endpoint
//! turns parsed heads into [`IncomingSend`](super::IncomingSend) values and the session's
//! [`OutRequest`](super::OutRequest) values into bytes.

pub use crate::message::{ByteRange, Continuation, FailureReport, StatusCode};
