//! MSRP relays (RFC 4976).
//!
//! - [`digest`]: HTTP Digest authentication for the AUTH method (RFC 4976 §5.1, §9.1; RFC 7616;
//!   RFC 2617): challenge and credential parsing and printing, the client response, and the
//!   relay side (stateless nonces with integrity and expiry, nonce-count replay checks).
//! - [`users`]: the relay's credentials file, which stores HA1 hashes, never passwords.
//! - [`client`]: the relay client state machine (AUTH to each relay, Use-Path, Expires refresh,
//!   423 handling).
//! - [`server`]: the sans-IO relay itself (RFC 4976 §6): AUTH, Use-Path, forwarding.
//!
//! Everything here is sans-IO: randomness and the current time are inputs supplied by the
//! caller.

pub mod client;
pub mod digest;
pub mod server;
pub mod users;
