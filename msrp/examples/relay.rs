//! Run an MSRP relay (RFC 4976) on loopback with one user, until Ctrl-C.
//!
//! Run: `cargo run -p msrp --example relay -- [ADDR:PORT] [USER] [PASSWORD]`
//! (defaults `127.0.0.1:2855 alice secret`, realm `example.com`). The `msrp relay` command
//! is the full-featured version (TLS, TOML configuration, limits).

use msrp::proto::relay::server::RelayConfig;
use msrp::proto::relay::users::{hash_password_lines, Users};
use msrp::relay::{RelayServer, RelayServerConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:2855".into());
    let user = args.next().unwrap_or_else(|| "alice".into());
    let password = args.next().unwrap_or_else(|| "secret".into());
    let realm = "example.com";

    // The users file holds HA1 hashes, never the password (RFC 7616 §3.4.2).
    let users = Users::parse(&hash_password_lines(&user, realm, &password)?)?;
    let mut cfg = RelayServerConfig::new(RelayConfig::new("127.0.0.1", realm), users);
    cfg.tcp_listen = Some(listen.parse()?);
    let server = RelayServer::bind(cfg).await?;
    println!(
        "relay listening on msrp://{} (realm {realm}, user {user}); Ctrl-C stops it",
        server.tcp_addr().expect("tcp listener")
    );
    server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
