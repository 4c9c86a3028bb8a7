//! Tokio layer of the MSRP stack: drives the sans-IO [`msrp_proto`] core over TCP and TLS.
#![forbid(unsafe_code)]

pub use msrp_proto as proto;
