//! Two MSRP endpoints in one process, on loopback: an SDP offer/answer exchange (RFC 6135
//! COMEDIA), then a text message each way and a streamed "file" with a SHA-256 check.
//!
//! Run: `cargo run -p msrp --example chat_pair`
//!
//! The drive loop lives inside [`msrp::MsrpEndpoint`]: one task owns the sans-IO core and
//! moves bytes, connections and timers. The application only negotiates, sends, and reads
//! [`SessionNotice`]s, which it must keep reading (they also carry incoming body bytes, which
//! go to a sink through [`SequentialWriter`]).

use std::collections::HashMap;
use std::time::Duration;

use msrp::proto::sdp::{Reachability, SdpAnswer, SdpOffer};
use msrp::sink::SequentialWriter;
use msrp::{MsrpEndpoint, MsrpSession, Options, Reports, SessionNotice};
use sha2::{Digest, Sha256};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let alice = MsrpEndpoint::bind(Options::new("127.0.0.1:0".parse()?)).await?;
    let bob = MsrpEndpoint::bind(Options::new("127.0.0.1:0".parse()?)).await?;

    // Alice offers (reachable: a=setup:actpass). The SDP goes to Bob as text, e.g. in SIP.
    let offered = alice.create_offer(&alice.local_config()).await?;
    let offer_text = offered.offer().to_string();
    println!("--- offer\n{offer_text}");

    // Bob is behind a NAT: he answers a=setup:active, so *he* opens the connection.
    let mut bob_cfg = bob.local_config();
    bob_cfg.reachability = Reachability::BehindNat;
    let (answer, mut bob_session) = bob
        .answer_offer(&SdpOffer::parse(&offer_text)?, &bob_cfg)
        .await?;
    let answer_text = answer.to_string();
    println!("--- answer\n{answer_text}");

    let mut alice_session = alice
        .accept_answer(offered, &SdpAnswer::parse(&answer_text)?)
        .await?;
    println!(
        "alice is {}, bob is {}",
        alice_session.plan().map(|p| p.role.as_str()).unwrap_or("?"),
        bob_session.plan().map(|p| p.role.as_str()).unwrap_or("?")
    );
    alice_session.connected().await?;
    bob_session.connected().await?;

    // Text both ways.
    alice_session.send_text("Hi Bob!").await?;
    bob_session.send_text("Hello Alice.").await?;

    // A 4 MiB "file", streamed from an AsyncRead.
    let file: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    let expected = hex::encode(Sha256::digest(&file));
    let out = alice_session
        .send_stream(
            "application/octet-stream",
            Some(file.len() as u64),
            std::io::Cursor::new(file),
            Reports::default(),
        )
        .await?;

    let (bob_got, alice_got) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(receive(&mut bob_session, 2), receive(&mut alice_session, 1))
    })
    .await?;
    println!("file sent: {:?}", out.outcome().await);
    for (id, ct, digest, text) in bob_got.into_iter().chain(alice_got) {
        println!(
            "received {id} ({ct}): sha256 {digest} {}",
            text.unwrap_or_default()
        );
    }
    println!("expected file sha256 {expected}");
    alice_session.close();
    Ok(())
}

/// Reads notices until `count` messages arrived; returns (id, type, sha256, text).
async fn receive(
    s: &mut MsrpSession,
    count: usize,
) -> Vec<(String, String, String, Option<String>)> {
    let mut open: HashMap<String, (String, SequentialWriter<Vec<u8>>)> = HashMap::new();
    let mut done = Vec::new();
    while done.len() < count {
        match s.next_notice().await {
            Some(SessionNotice::IncomingStarted {
                message_id,
                content_type,
                ..
            }) => {
                // A real application would open a file here for large bodies.
                let sink = SequentialWriter::new(Vec::new(), 1 << 20);
                open.insert(message_id, (content_type.unwrap_or_default(), sink));
            }
            Some(SessionNotice::IncomingData {
                message_id,
                offset,
                data,
            }) => {
                if let Some((_, w)) = open.get_mut(&message_id) {
                    w.write_at(offset, &data).await.expect("in memory");
                }
            }
            Some(SessionNotice::IncomingComplete { message_id, .. }) => {
                if let Some((ct, w)) = open.remove(&message_id) {
                    let body = w.finish().await.expect("in memory");
                    let text = ct
                        .starts_with("text/")
                        .then(|| String::from_utf8_lossy(&body).into_owned());
                    done.push((message_id, ct, hex::encode(Sha256::digest(&body)), text));
                }
            }
            Some(SessionNotice::Closed(r)) => {
                eprintln!("session closed: {r}");
                break;
            }
            Some(_) => {}
            None => break,
        }
    }
    done
}
