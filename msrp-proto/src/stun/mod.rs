//! STUN (RFC 8489) client core and NAT behaviour discovery (RFC 5780), sans IO.
//!
//! - [`message`]: the codec (header, Binding, the attributes a behaviour-discovery client
//!   needs, FINGERPRINT).
//! - [`transaction`]: one client transaction with the RFC 8489 §6.2 retransmission schedule.
//! - [`discovery`]: the RFC 5780 §4.3/§4.4 test sequence and the RFC 6135 §4.2.2 verdict.
//! - [`sip_via`]: the RFC 6135 §4.2.2 Via `received`/`rport` heuristic.
//!
//! Nothing here opens a socket or reads the clock; the `msrp` crate drives it with tokio.

mod crc32;
pub mod discovery;
pub mod message;
pub mod sip_via;
pub mod transaction;

pub use discovery::{
    combine_tcp_with_udp_filtering, verdict_for, Discovery, DiscoveryError, NatBehavior, NatReport,
    OfferSetup, Verdict,
};
pub use message::{frame_len, Attribute, Class, DecodeError, Message, TransactionId};
pub use sip_via::{check_via, ViaCheck, ViaError};
pub use transaction::{ClientTransaction, Outcome, StunConfig, Transmit, Transport};
