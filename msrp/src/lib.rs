//! Tokio layer of the MSRP stack: drives the sans-IO [`msrp_proto`] core over TCP and TLS.
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
    MsrpEndpoint, MsrpSession, OfferedSession, Options, Outcome, Reports, SendFailure,
    SessionNotice, SessionSender,
};
pub use tls_transport::TlsTransport;
