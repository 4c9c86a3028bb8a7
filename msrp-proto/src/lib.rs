//! Sans-IO core of the MSRP stack.
//!
//! `msrp-proto` implements the Message Session Relay Protocol (RFC 4975), its relay
//! extensions (RFC 4976) and the COMEDIA connection model for MSRP (RFC 6135) without
//! doing any IO: it never opens a socket and never reads the clock. Bytes and time go
//! in; bytes, connect requests, events and timeouts come out. The `msrp` crate drives it
//! with tokio.
#![forbid(unsafe_code)]

pub mod connection;
pub mod endpoint;
pub mod fingerprint;
pub mod message;
pub mod relay;
pub mod sdp;
pub mod session;
pub mod stun;
pub mod uri;
