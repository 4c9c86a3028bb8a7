//! Tokio layer of the MSRP stack: drives the sans-IO [`msrp_proto`] core over TCP and TLS.
//!
//! - [`MsrpEndpoint`]: a listener plus one driver task that owns the core and moves bytes,
//!   connections and timers ([`endpoint`] documents the drive loop and back-pressure). The
//!   application negotiates sessions (SDP offer/answer with the RFC 6135 `a=setup` rules),
//!   then sends on an [`MsrpSession`] and reads its [`SessionNotice`]s.
//! - [`TlsTransport`] (`msrps:`, RFC 8122 fingerprints; the active side is the TLS client),
//!   [`stun`] and [`nat`] (RFC 5780 discovery for `--reachability auto`), [`relay`] (the
//!   RFC 4976 relay server driver), [`sink`] (writing incoming bodies in order).
//!
//! # COMEDIA over loopback
//!
//! Alice is reachable and offers `actpass`; Bob is behind a NAT, answers `active` and opens
//! the connection to Alice (the case the RFC 4975 rule, "the offerer connects", cannot
//! handle). In real use the SDP strings travel in SIP.
//!
//! ```
//! use msrp::proto::sdp::{Reachability, Role, SdpAnswer, SdpOffer};
//! use msrp::{MsrpEndpoint, Options, SessionNotice};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let alice = MsrpEndpoint::bind(Options::new("127.0.0.1:0".parse()?)).await?;
//! let bob = MsrpEndpoint::bind(Options::new("127.0.0.1:0".parse()?)).await?;
//!
//! let offered = alice.create_offer(&alice.local_config()).await?;
//! let offer = offered.offer().to_string(); // a=setup:actpass
//!
//! let mut bob_cfg = bob.local_config();
//! bob_cfg.reachability = Reachability::BehindNat;
//! let (answer, mut bob_session) = bob.answer_offer(&SdpOffer::parse(&offer)?, &bob_cfg).await?;
//! assert_eq!(bob_session.plan().unwrap().role, Role::Active); // a=setup:active
//!
//! let mut alice_session = alice
//!     .accept_answer(offered, &SdpAnswer::parse(&answer.to_string())?)
//!     .await?;
//! alice_session.connected().await?;
//! bob_session.connected().await?;
//!
//! bob_session.send_text("hello from behind the NAT").await?;
//! // Keep reading notices: they carry incoming bytes (and back-pressure the driver).
//! let mut text = Vec::new();
//! while let Some(n) = alice_session.next_notice().await {
//!     match n {
//!         SessionNotice::IncomingData { data, .. } => text.extend(data),
//!         SessionNotice::IncomingComplete { .. } => break,
//!         _ => {}
//!     }
//! }
//! assert_eq!(text, b"hello from behind the NAT");
//! # Ok(()) }
//! ```
//!
//! Examples: `cargo run -p msrp --example chat_pair` (chat and a streamed file between two
//! endpoints), `send_file`, `relay`; `msrp demo` is the same idea with a transcript.
#![forbid(unsafe_code)]

pub use msrp_proto as proto;
/// The rustls version this crate builds its TLS configurations with.
pub use rustls;
/// The tokio-rustls version of the streams [`tls`] returns.
pub use tokio_rustls;

pub mod endpoint;
pub mod nat;
pub mod relay;
pub mod sink;
pub mod stun;
pub mod tls;
pub mod tls_transport;
pub mod transport;

pub use endpoint::{
    attachment_disposition, disposition_filename, EndpointStats, MsrpEndpoint, MsrpSession,
    OfferedSession, Options, Outcome, RelayBinding, Reports, SendFailure, SessionNotice,
    SessionSender,
};
pub use tls_transport::TlsTransport;
