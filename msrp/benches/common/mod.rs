//! Copy baselines over loopback, shared by the benchmarks: each benchmark measures its own
//! figure against these in the same run (`mod common;` from a bench file).
//!
//! - [`tcp_copy`]: raw tokio TCP, the ceiling of any plain-TCP transfer;
//! - [`tls_copy`]: raw tokio-rustls with our pinned [`msrp::tls`] configurations, the
//!   baseline for MSRP over TLS (issue 5: "TLS file transfer against a raw tokio-rustls
//!   copy of the same bytes").
//!
//! Connection set-up (TCP connect, TLS handshake) is done before the clock starts; only the
//! transfer of `total` bytes, until the receiver has counted them all, is timed.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use msrp::rustls::{ClientConfig, ServerConfig};
use msrp::tls::{accept_tls, client_config, connect_tls, server_config, PeerAuth, TlsIdentity};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Size of the write and read buffers.
pub const CHUNK: usize = 64 * 1024;

const SETUP: Duration = Duration::from_secs(10);

/// A connected loopback TCP pair (client, server).
pub async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let client = client.expect("connect");
    let (server, _) = server.expect("accept");
    client.set_nodelay(true).expect("nodelay");
    server.set_nodelay(true).expect("nodelay");
    (client, server)
}

/// Pinned client and server configurations for two fresh identities, as two endpoints that
/// exchanged fingerprints in SDP would build them.
pub fn pinned_configs() -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let server_id = TlsIdentity::generate().expect("identity");
    let client_id = TlsIdentity::generate().expect("identity");
    let ccfg = client_config(
        Some(&client_id),
        PeerAuth::Fingerprints(server_id.fingerprints().to_vec()),
    )
    .expect("client config");
    let scfg = server_config(
        &server_id,
        PeerAuth::Fingerprints(client_id.fingerprints().to_vec()),
    )
    .expect("server config");
    (ccfg, scfg)
}

/// Writes `total` bytes into `tx` and reads them from `rx` concurrently; returns the time
/// from the first write until the receiver has them all.
pub async fn copy<W, R>(mut tx: W, mut rx: R, total: u64) -> Duration
where
    W: AsyncWrite + Unpin + Send + 'static,
    R: AsyncRead + Unpin + Send + 'static,
{
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        let buf = vec![0xa5u8; CHUNK];
        let mut left = total;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            tx.write_all(&buf[..n]).await.expect("write");
            left -= n as u64;
        }
        tx.flush().await.expect("flush");
        tx
    });
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0u64;
        while got < total {
            let n = rx.read(&mut buf).await.expect("read");
            assert!(n > 0, "early EOF after {got} of {total} bytes");
            got += n as u64;
        }
        rx
    });
    let (tx, rx) = tokio::join!(writer, reader);
    let elapsed = start.elapsed();
    drop((tx.expect("writer"), rx.expect("reader")));
    elapsed
}

/// Raw tokio TCP copy of `total` bytes over loopback.
pub async fn tcp_copy(total: u64) -> Duration {
    let (client, server) = tcp_pair().await;
    copy(client, server, total).await
}

/// Raw tokio-rustls copy of `total` bytes over loopback, client to server, with the given
/// configurations (handshake done before timing).
pub async fn tls_copy(ccfg: Arc<ClientConfig>, scfg: Arc<ServerConfig>, total: u64) -> Duration {
    let (client, server) = tcp_pair().await;
    let (c, s) = tokio::join!(
        connect_tls(client, "127.0.0.1", ccfg, SETUP),
        accept_tls(server, scfg, SETUP)
    );
    copy(c.expect("TLS connect"), s.expect("TLS accept"), total).await
}
