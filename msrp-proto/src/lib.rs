//! Sans-IO core of the MSRP stack.
//!
//! `msrp-proto` implements the Message Session Relay Protocol (RFC 4975), its relay
//! extensions (RFC 4976) and the COMEDIA connection model for MSRP (RFC 6135) without
//! doing any IO: it never opens a socket and never reads the clock. Bytes and time go
//! in; bytes, connect requests, events and timeouts come out. The `msrp` crate drives it
//! with tokio.
//!
//! # The drive loop
//!
//! [`endpoint::Endpoint`] owns every connection and session. An IO layer drives it like this
//! (the `msrp` crate's driver is one such loop, see `docs/architecture.md`):
//!
//! ```text
//! loop {
//!     while let Some(t) = ep.poll_transmit(now) { write t.data to t.connection }
//!     while let Some(ev) = ep.poll_event() {
//!         Connect => open a connection, then ep.handle_connected / handle_connect_failed
//!         CloseConnection => close it
//!         anything else => tell the application
//!     }
//!     wait for: bytes (ep.handle_input), an accepted connection (ep.handle_accepted),
//!               a closed socket (ep.handle_closed), an application command,
//!               or the deadline ep.poll_timeout() (ep.handle_timeout)
//! }
//! ```
//!
//! # COMEDIA in a few lines
//!
//! RFC 6135 decides which side opens the TCP connection from `a=setup`. A reachable offerer
//! offers `actpass`; an answerer behind a NAT answers `active` and connects; both sides
//! compute the same [`sdp::ConnectionPlan`]:
//!
//! ```
//! use msrp_proto::sdp::{create_answer, create_offer, LocalConfig, Reachability, Role, SdpOffer};
//!
//! let alice = LocalConfig::new("192.0.2.10:2855".parse().unwrap(), "alicesession");
//! let pending = create_offer(&alice).unwrap();
//! let offer_text = pending.offer().to_string();
//! assert!(offer_text.contains("a=setup:actpass\r\n"));
//!
//! // Bob is behind a NAT: he answers active, with the discard port 9 (RFC 6135 §4.2.2).
//! let mut bob = LocalConfig::new("198.51.100.7:2855".parse().unwrap(), "bobsession");
//! bob.reachability = Reachability::BehindNat;
//! let answered = create_answer(&SdpOffer::parse(&offer_text).unwrap(), &bob).unwrap();
//! let answer_text = answered.answer.to_string();
//! assert!(answer_text.contains("a=setup:active\r\n"));
//! assert!(answer_text.contains("m=message 9 TCP/MSRP"));
//!
//! // Bob connects to the first URI of Alice's a=path; Alice waits.
//! assert_eq!(answered.plan.role, Role::Active);
//! let connect_to = answered.plan.connect_to.as_ref().unwrap().to_string();
//! assert_eq!(connect_to, "msrp://192.0.2.10:2855/alicesession;tcp");
//! let alice_plan = pending
//!     .accept_answer(&msrp_proto::sdp::SdpAnswer::parse(&answer_text).unwrap())
//!     .unwrap();
//! assert_eq!(alice_plan.role, Role::Passive);
//! assert!(alice_plan.connect_to.is_none());
//! ```
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
