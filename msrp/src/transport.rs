//! The transport seam: how the driver opens and accepts connections.
//!
//! The driver works on any byte stream ([`BoxedIo`]). [`Transport`] turns a connect request
//! (an MSRP URI) or an accepted TCP socket into such a stream. [`PlainTcp`] is plain TCP;
//! a TLS transport wraps the TCP stream with `crate::tls::connect_tls` / `accept_tls`
//! (RFC 4975 §5.4: `msrps:` URIs MUST use TLS; RFC 6135 §6: the active side is the TLS
//! client) and plugs in here without touching the driver.

use std::future::Future;
use std::io;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use msrp_proto::sdp::{ConnectionPlan, LocalConfig};
use msrp_proto::uri::MsrpUri;

/// A bidirectional byte stream.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A boxed connection stream.
pub type BoxedIo = Box<dyn Io>;

/// A boxed future returning a stream.
pub type IoFuture = Pin<Box<dyn Future<Output = io::Result<BoxedIo>> + Send>>;

/// Opens and accepts connections for the driver.
pub trait Transport: Send + Sync + 'static {
    /// Connects to the host and port of `to` (active side).
    fn connect(&self, to: &MsrpUri) -> IoFuture;
    /// Finishes accepting a TCP connection (for TLS: the server handshake).
    fn accept(&self, tcp: TcpStream) -> IoFuture;

    /// Called with each negotiated plan before its session starts, so that a TLS transport
    /// can learn the peer fingerprints to expect (RFC 8122) and its TLS role (RFC 6135 §6).
    /// Plain TCP ignores it.
    fn prepare(&self, plan: &ConnectionPlan) {
        let _ = plan;
    }

    /// Called when we create an offer, before its answer is known: a peer that the answer
    /// makes active may connect before [`prepare`](Self::prepare) is called with the plan
    /// (RFC 8122 §6.2), and a TLS transport must then hold that connection's data until it
    /// can verify the peer's certificate. Plain TCP ignores it.
    fn offer_created(&self, local_uri: &MsrpUri) {
        let _ = local_uri;
    }

    /// Adjusts a fresh [`LocalConfig`] to this transport (TLS: `TCP/TLS/MSRP`, `msrps:` and
    /// our `a=fingerprint`, RFC 4975 §14.2). Plain TCP leaves it as is.
    fn configure_local(&self, cfg: &mut LocalConfig) {
        let _ = cfg;
    }
}

/// Plain TCP (`msrp:` URIs). Refuses `msrps:` URIs, which MUST use TLS (RFC 4975 §6).
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainTcp;

impl Transport for PlainTcp {
    fn connect(&self, to: &MsrpUri) -> IoFuture {
        let secure = to.is_secure();
        let host = to.host.to_plain_string();
        let port = to.port;
        Box::pin(async move {
            if secure {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "msrps: URI needs a TLS transport (RFC 4975 §6)",
                ));
            }
            let port = port.ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "MSRP URI without a port")
            })?;
            let s = TcpStream::connect((host.as_str(), port)).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s) as BoxedIo)
        })
    }

    fn accept(&self, tcp: TcpStream) -> IoFuture {
        Box::pin(async move {
            tcp.set_nodelay(true)?;
            Ok(Box::new(tcp) as BoxedIo)
        })
    }
}
