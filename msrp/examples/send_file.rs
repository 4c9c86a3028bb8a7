//! Send a file between two endpoints in one process over loopback, streamed in chunks from
//! disk to disk, and compare SHA-256 digests.
//!
//! Run: `cargo run -p msrp --example send_file -- PATH`
//!
//! The receiver is behind a NAT (by configuration), so it answers `a=setup:active` and opens
//! the connection (RFC 6135); the file goes the other way on that connection.

use std::path::PathBuf;
use std::time::Instant;

use msrp::proto::sdp::{Reachability, SdpAnswer, SdpOffer};
use msrp::sink::SequentialWriter;
use msrp::{MsrpEndpoint, Options, Reports, SessionNotice};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = PathBuf::from(std::env::args().nth(1).ok_or("usage: send_file PATH")?);
    let sender = MsrpEndpoint::bind(Options::new("127.0.0.1:0".parse()?)).await?;
    let receiver = MsrpEndpoint::bind(Options::new("127.0.0.1:0".parse()?)).await?;

    let offered = sender.create_offer(&sender.local_config()).await?;
    let offer = SdpOffer::parse(&offered.offer().to_string())?;
    let mut cfg = receiver.local_config();
    cfg.reachability = Reachability::BehindNat;
    let (answer, mut rx) = receiver.answer_offer(&offer, &cfg).await?;
    let tx = sender
        .accept_answer(offered, &SdpAnswer::parse(&answer.to_string())?)
        .await?;
    rx.connected().await?;

    let file = tokio::fs::File::open(&path).await?;
    let size = file.metadata().await?.len();
    let started = Instant::now();
    let msg = tx
        .send_stream(
            "application/octet-stream",
            Some(size),
            file,
            Reports::default(),
        )
        .await?;

    // Receive into a temporary file, in order, whatever order the chunks arrive in.
    let dir = tempfile::tempdir()?;
    let out_path = dir.path().join("received");
    let mut sink = SequentialWriter::new(tokio::fs::File::create(&out_path).await?, 8 << 20);
    while let Some(n) = rx.next_notice().await {
        match n {
            SessionNotice::IncomingData { offset, data, .. } => {
                sink.write_at(offset, &data).await?
            }
            SessionNotice::IncomingComplete { .. } => break,
            SessionNotice::IncomingAborted { reason, .. } => return Err(reason.into()),
            SessionNotice::Closed(r) => return Err(r.to_string().into()),
            _ => {}
        }
    }
    sink.finish().await?.flush().await?;
    println!("outcome: {:?}", msg.outcome().await?);
    let secs = started.elapsed().as_secs_f64();

    let a = hex::encode(Sha256::digest(std::fs::read(&path)?));
    let b = hex::encode(Sha256::digest(std::fs::read(&out_path)?));
    println!("{size} bytes in {secs:.2} s; sha256 sent {a}, received {b}");
    if a != b {
        return Err("digests differ".into());
    }
    Ok(())
}
