//! `msrp demo`: the whole stack in one process, over loopback, in a few seconds.
//!
//! Two endpoints of the library's async API negotiate with SDP as RFC 6135 says: Alice (the
//! offerer) is reachable and offers `a=setup:actpass`; Bob (the answerer) is behind a NAT by
//! configuration, so he answers `a=setup:active` and *he* opens the TCP connection to Alice,
//! the case the RFC 4975 rule ("the offerer connects") cannot handle. Then a short chat both
//! ways, a streamed file transfer checked by SHA-256, and a one-line summary.
//!
//! `--tls` runs the same over `msrps:` with self-signed certificates pinned by `a=fingerprint`
//! (RFC 8122): the active side is the TLS client (RFC 6135 §4.3). `--relay` starts an MSRP
//! relay (RFC 4976) in this process with generated credentials; both endpoints authenticate
//! to it (AUTH with HTTP Digest, RFC 4976 §5.1), put its Use-Path in their a=path, and both
//! open their connection to the relay whatever a=setup says (RFC 6135 §4.5); the relay
//! forwards between them. `--json` prints one event per line instead of the transcript.

use std::collections::VecDeque;
use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use msrp::proto::relay::client::{RelayClientConfig, RelaySpec};
use msrp::proto::relay::digest::Credentials;
use msrp::proto::relay::server::RelayConfig;
use msrp::proto::relay::users::{hash_password_lines, Users};
use msrp::proto::sdp::{ConnectionPlan, LocalConfig, Reachability, SdpAnswer, SdpOffer};
use msrp::proto::uri::{MsrpUri, Scheme};
use msrp::relay::{RelayServer, RelayServerConfig};
use msrp::rustls::RootCertStore;
use msrp::sink::SequentialWriter;
use msrp::tls::{server_config, PeerAuth, TlsIdentity};
use msrp::{MsrpEndpoint, MsrpSession, Options, Reports, SessionNotice, TlsTransport};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

/// The chat: (sender is Alice, text).
const CHAT: &[(bool, &str)] = &[
    (
        true,
        "Hi Bob! I offered a=setup:actpass, so either of us could connect.",
    ),
    (
        false,
        "Hi Alice. I'm behind a NAT, so I answered active and dialled you.",
    ),
    (true, "COMEDIA at work. Sending you a file now."),
    (false, "Go ahead."),
];

/// The chat of `--relay`: Bob is behind a NAT but reachable through the relay.
const CHAT_RELAY: &[(bool, &str)] = &[
    (
        true,
        "Hi Bob! The relay checked our passwords and forwards this to you.",
    ),
    (
        false,
        "Hi Alice. I'm behind a NAT, but the relay makes me reachable, so I answered passive.",
    ),
    (
        true,
        "And we both dialled the relay (RFC 6135 §4.5). Sending you a file now.",
    ),
    (false, "Go ahead."),
];

/// Flags of `msrp demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Run the session over TLS (`msrps:`, `TCP/TLS/MSRP`) with self-signed certificates
    /// pinned by `a=fingerprint` (RFC 8122); the active side is the TLS client.
    #[arg(long)]
    tls: bool,
    /// Start an MSRP relay (RFC 4976) in this process on 127.0.0.1 (ephemeral port, generated
    /// passwords); both endpoints authenticate to it and connect to it (RFC 6135 §4.5), and
    /// it forwards the session. With --tls the relay is reached over TLS (`msrps:`).
    #[arg(long)]
    relay: bool,
    /// One JSON object per line on stdout (each with an "event" field) instead of the
    /// transcript: sdp, negotiated, connected, message, progress, transfer, closed, summary
    /// (with --tls also tls; with --relay also relay and authenticated).
    #[arg(long)]
    json: bool,
    /// Size of the generated file to transfer, in MiB (0 to 1024).
    #[arg(long, value_name = "MIB", default_value_t = 8,
          value_parser = clap::value_parser!(u64).range(0..=1024))]
    size: u64,
    /// Seconds any single step (connection, a message, the transfer) may take.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    timeout: u64,
}

/// Runs `msrp demo`.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(demo(args))
}

/// Transcript or JSON output.
struct Out {
    json: bool,
    color: bool,
}

impl Out {
    fn event(&self, v: Value) {
        if self.json {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{v}");
            let _ = o.flush();
        }
    }

    fn say(&self, s: impl Display) {
        if !self.json {
            println!("{s}");
        }
    }

    fn heading(&self, s: &str) {
        if self.color {
            self.say(format!("\n\x1b[1m== {s}\x1b[0m"));
        } else {
            self.say(format!("\n== {s}"));
        }
    }

    fn highlight(&self, s: &str) -> String {
        if self.color {
            format!("\x1b[1;33m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// Prints an SDP body indented, with the a=setup (and a=fingerprint) lines marked.
    fn sdp(&self, text: &str) {
        for line in text.lines() {
            if line.starts_with("a=setup:") {
                self.say(format!(
                    "  {}   <== RFC 6135 COMEDIA role",
                    self.highlight(line)
                ));
            } else if line.starts_with("a=fingerprint:") {
                self.say(format!(
                    "  {}   <== RFC 8122 certificate pin",
                    self.highlight(line)
                ));
            } else {
                self.say(format!("  {line}"));
            }
        }
    }
}

/// One side of the demo: its session and the notices read ahead.
struct Peer {
    name: &'static str,
    session: MsrpSession,
    backlog: VecDeque<SessionNotice>,
}

impl Peer {
    async fn next(&mut self) -> anyhow::Result<SessionNotice> {
        if let Some(n) = self.backlog.pop_front() {
            return Ok(n);
        }
        match self.session.next_notice().await {
            Some(SessionNotice::Closed(r)) => {
                bail!("{}'s session ended unexpectedly: {r}", self.name)
            }
            Some(n) => Ok(n),
            None => bail!("{}'s session ended unexpectedly", self.name),
        }
    }

    /// Waits until `message_id` was sent and acknowledged; other notices are kept.
    async fn wait_sent(&mut self, message_id: &str) -> anyhow::Result<()> {
        let mut kept = Vec::new();
        let r = loop {
            match self.next().await? {
                SessionNotice::Sent { message_id: id }
                | SessionNotice::Delivered { message_id: id }
                    if id == message_id =>
                {
                    break Ok(())
                }
                SessionNotice::Failed(f) if f.message_id == message_id => {
                    break Err(anyhow!("{} could not send {message_id}: {f}", self.name))
                }
                n => kept.push(n),
            }
        };
        self.backlog.extend(kept);
        r
    }

    /// Receives one whole message into memory.
    async fn recv_small(&mut self) -> anyhow::Result<(String, String, Vec<u8>)> {
        let (id, ct) = loop {
            match self.next().await? {
                SessionNotice::IncomingStarted {
                    message_id,
                    content_type,
                    ..
                } => break (message_id, content_type.unwrap_or_default()),
                SessionNotice::Failed(f) => bail!("{}: {f}", self.name),
                _ => {}
            }
        };
        let mut w = SequentialWriter::new(Vec::new(), 1 << 20);
        loop {
            match self.next().await? {
                SessionNotice::IncomingData {
                    message_id,
                    offset,
                    data,
                } if message_id == id => w.write_at(offset, &data).await?,
                SessionNotice::IncomingComplete { message_id, .. } if message_id == id => break,
                SessionNotice::IncomingAborted {
                    message_id, reason, ..
                } if message_id == id => bail!("{}: message {id} aborted: {reason}", self.name),
                _ => {}
            }
        }
        Ok((id, ct, w.finish().await?))
    }

    /// Receives one message streamed into `path`; calls `progress` with the bytes so far.
    async fn recv_file(
        &mut self,
        path: &Path,
        mut progress: impl FnMut(u64),
    ) -> anyhow::Result<(String, u64)> {
        let id = loop {
            if let SessionNotice::IncomingStarted { message_id, .. } = self.next().await? {
                break message_id;
            }
        };
        let file = tokio::fs::File::create(path)
            .await
            .with_context(|| format!("creating {}", path.display()))?;
        let mut w = SequentialWriter::new(file, 8 << 20);
        let size = loop {
            match self.next().await? {
                SessionNotice::IncomingData {
                    message_id,
                    offset,
                    data,
                } if message_id == id => {
                    w.write_at(offset, &data).await?;
                    progress(w.written());
                }
                SessionNotice::IncomingComplete { message_id, size } if message_id == id => {
                    break size
                }
                SessionNotice::IncomingAborted {
                    message_id, reason, ..
                } if message_id == id => bail!("{}: file {id} aborted: {reason}", self.name),
                _ => {}
            }
        };
        let mut file = w.finish().await?;
        file.flush().await?;
        Ok((id, size))
    }
}

/// Counts what the sender's file reader delivered.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counting<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let n = (buf.filled().len() - before) as u64;
            self.count.fetch_add(n, Ordering::Relaxed);
        }
        r
    }
}

/// Bounds a step: fails with `what` after `secs`.
async fn step<T>(
    secs: u64,
    what: impl Display,
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(Duration::from_secs(secs), f).await {
        Ok(r) => r,
        Err(_) => Err(anyhow!(
            "{what} did not finish within {secs} s (raise --timeout on a slow machine)"
        )),
    }
}

/// Writes `size` pseudo-random bytes to `path`; returns their SHA-256.
async fn generate_file(path: &Path, size: u64) -> anyhow::Result<String> {
    let mut f = tokio::fs::File::create(path)
        .await
        .with_context(|| format!("creating {}", path.display()))?;
    let mut hash = Sha256::new();
    // xorshift64*, seeded from the clock: different bytes on every run.
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    let mut left = size;
    let mut buf = vec![0u8; 1 << 16];
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        for c in buf[..n].chunks_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let v = x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
        hash.update(&buf[..n]);
        f.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    f.flush().await?;
    Ok(hex::encode(hash.finalize()))
}

async fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = tokio::fs::File::open(path).await?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            return Ok(hex::encode(hash.finalize()));
        }
        hash.update(&buf[..n]);
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn plan_json(p: &ConnectionPlan) -> Value {
    json!({
        "role": p.role.as_str(),
        "connect_to": p.connect_to.as_ref().map(|u| u.to_string()),
        "local_uri": p.local_uri.to_string(),
        "tls_role": p.tls_role.map(|r| r.as_str()),
        "peer_fingerprints": p.peer_fingerprints.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
    })
}

fn setup_of(sdp: &str) -> &str {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=setup:"))
        .map(str::trim)
        .unwrap_or("(none)")
}

/// The in-process relay of `--relay`: its URI, realm and shutdown switch.
struct DemoRelay {
    uri: MsrpUri,
    realm: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), msrp::relay::RelayError>>,
}

impl DemoRelay {
    /// Stops the relay and waits for it (bounded).
    async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

/// A password of 20 random letters and digits.
fn generated_password() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut r = rand::thread_rng();
    (0..20)
        .map(|_| CHARS[r.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// Starts an MSRP relay on 127.0.0.1 with an ephemeral port, knowing `users` (name,
/// password) in realm `msrp-demo` (the users list holds only HA1 hashes, RFC 7616 §3.4.2).
/// With `tls`, the relay listens only over TLS (`msrps:`) with `tls` as its certificate.
async fn start_relay(
    users: &[(&str, &str)],
    tls: Option<&TlsIdentity>,
) -> anyhow::Result<DemoRelay> {
    let realm = "msrp-demo";
    let mut lines = String::new();
    for (u, p) in users {
        lines.push_str(&hash_password_lines(u, realm, p).map_err(|e| anyhow!("{e}"))?);
    }
    let users = Users::parse(&lines).map_err(|e| anyhow!("relay users: {e}"))?;
    let mut cfg = RelayServerConfig::new(RelayConfig::new("127.0.0.1", realm), users);
    let any_port = "127.0.0.1:0".parse().expect("literal address");
    match tls {
        Some(id) => {
            cfg.tls_listen = Some(any_port);
            cfg.tls_server = Some(
                server_config(id, PeerAuth::NoClientCertificate)
                    .context("the relay's TLS configuration")?,
            );
        }
        None => cfg.tcp_listen = Some(any_port),
    }
    let server = RelayServer::bind(cfg)
        .await
        .context("starting the relay on 127.0.0.1")?;
    let (scheme, addr) = match tls {
        Some(_) => ("msrps", server.tls_addr()),
        None => ("msrp", server.tcp_addr()),
    };
    let addr = addr.ok_or_else(|| anyhow!("the relay has no listener"))?;
    let uri = MsrpUri::parse(&format!("{scheme}://{addr};tcp"))
        .map_err(|e| anyhow!("the relay's URI: {e}"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    Ok(DemoRelay {
        uri,
        realm: realm.to_string(),
        stop: Some(stop),
        task,
    })
}

/// Authenticates `ep` to `relay` as `user` (RFC 4976 §5.1) and puts the Use-Path into `cfg`
/// (RFC 4976 §5.2: our a=path starts with it).
async fn authenticate(
    out: &Out,
    t: u64,
    ep: &MsrpEndpoint,
    cfg: &mut LocalConfig,
    relay: &DemoRelay,
    user: &str,
    password: &str,
) -> anyhow::Result<()> {
    // "alice" -> "Alice"
    let name: String = user
        .chars()
        .take(1)
        .flat_map(char::to_uppercase)
        .chain(user.chars().skip(1))
        .collect();
    let local = MsrpUri::new(
        if cfg.tls { Scheme::Msrps } else { Scheme::Msrp },
        cfg.host.clone(),
        cfg.port,
        cfg.session_id.clone(),
    );
    let creds = Credentials::new(user, password).map_err(|e| anyhow!("{e}"))?;
    let mut rc = RelayClientConfig::new(
        vec![RelaySpec {
            uri: relay.uri.clone(),
            credentials: creds,
        }],
        local,
    );
    rc.transaction_timeout = Duration::from_secs(t.max(1));
    let b = step(t, format!("{name}'s AUTH to the relay"), async {
        ep.authenticate_relays(rc)
            .await
            .map_err(|e| anyhow!("{name}: {e}"))
    })
    .await?;
    let use_path: Vec<String> = b.use_path.iter().map(|u| u.to_string()).collect();
    out.say(format!(
        "  {name:<5} AUTH {} as {user}: Digest challenge answered, 200 OK, Use-Path {}{}",
        relay.uri,
        use_path.join(" "),
        b.expires
            .map(|e| format!(" (expires in {e} s)"))
            .unwrap_or_default()
    ));
    out.event(
        json!({"event": "authenticated", "who": name.to_lowercase(), "user": user,
        "relay": relay.uri.to_string(), "use_path": use_path, "expires": b.expires}),
    );
    cfg.relay_path = b.use_path;
    Ok(())
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let out = Out {
        json: args.json,
        color: !args.json && std::io::stdout().is_terminal(),
    };
    let t = args.timeout;
    let scheme = if args.tls {
        "msrps (TLS)"
    } else {
        "msrp (TCP)"
    };
    if args.relay {
        out.say(format!(
            "msrp demo: two endpoints in this process on 127.0.0.1, {scheme}, and an MSRP relay.\n\
             Alice offers and is reachable; Bob answers and is behind a NAT (by configuration).\n\
             Both authenticate to the relay (RFC 4976) and both connect to it (RFC 6135 §4.5);\n\
             the relay forwards the session, so Bob is reachable through it."
        ));
    } else {
        out.say(format!(
            "msrp demo: two endpoints in this process on 127.0.0.1, {scheme}.\n\
             Alice offers and is reachable; Bob answers and is behind a NAT (by configuration),\n\
             so RFC 6135 makes Bob the one who opens the connection."
        ));
    }

    // 1. Two endpoints on loopback (library API).
    let listen = "127.0.0.1:0".parse().expect("literal address");
    // With --relay --tls: the relay's certificate (for 127.0.0.1) is the CA root both
    // endpoints verify it against, with the host of its URI (RFC 4976 §6.3, §9.2).
    let relay_tls = if args.relay && args.tls {
        Some(
            TlsIdentity::generate_for(&["127.0.0.1".to_string()])
                .context("generating the relay's certificate")?,
        )
    } else {
        None
    };
    let roots = match &relay_tls {
        Some(id) => {
            let mut r = RootCertStore::empty();
            r.add(id.certificate().clone())
                .context("the relay's certificate as a CA root")?;
            Some(Arc::new(r))
        }
        None => None,
    };
    let (alice_ep, bob_ep, tls_ids) = if args.tls {
        let a = Arc::new(
            TlsTransport::generated(roots.clone()).context("generating Alice's certificate")?,
        );
        let b = Arc::new(
            TlsTransport::generated(roots.clone()).context("generating Bob's certificate")?,
        );
        let ids = (
            a.identity().fingerprint().to_string(),
            b.identity().fingerprint().to_string(),
        );
        (
            MsrpEndpoint::bind(Options::tls(listen, a)).await,
            MsrpEndpoint::bind(Options::tls(listen, b)).await,
            Some(ids),
        )
    } else {
        (
            MsrpEndpoint::bind(Options::new(listen)).await,
            MsrpEndpoint::bind(Options::new(listen)).await,
            None,
        )
    };
    let alice_ep = alice_ep.context("Alice: listening on 127.0.0.1")?;
    let bob_ep = bob_ep.context("Bob: listening on 127.0.0.1")?;
    if let Some((a, b)) = &tls_ids {
        out.heading("TLS identities (self-signed, generated now)");
        out.say(format!("  Alice  {a}"));
        out.say(format!("  Bob    {b}"));
        out.event(json!({"event": "tls", "alice_fingerprint": a, "bob_fingerprint": b}));
    }

    // 1b. With --relay: an MSRP relay in this process, and both endpoints authenticated.
    let mut alice_cfg = alice_ep.local_config();
    let mut bob_cfg = bob_ep.local_config();
    let relay = if args.relay {
        let (alice_pw, bob_pw) = (generated_password(), generated_password());
        let relay = start_relay(
            &[("alice", &alice_pw), ("bob", &bob_pw)],
            relay_tls.as_ref(),
        )
        .await?;
        out.heading(&format!(
            "MSRP relay (RFC 4976) listening on {} (realm {})",
            relay.uri, relay.realm
        ));
        out.say(format!(
            "  users alice / {alice_pw}, bob / {bob_pw} (generated now; the relay keeps only \
             HA1 hashes)"
        ));
        if let Some(id) = &relay_tls {
            out.say(format!(
                "  TLS certificate for 127.0.0.1 {} (generated now; both endpoints trust it as \
                 their CA root and check the URI's host against it)",
                id.fingerprint()
            ));
        }
        out.event(json!({"event": "relay", "uri": relay.uri.to_string(),
            "realm": relay.realm, "users": ["alice", "bob"],
            "fingerprint": relay_tls.as_ref().map(|id| id.fingerprint().to_string())}));
        let r = async {
            authenticate(
                &out,
                t,
                &alice_ep,
                &mut alice_cfg,
                &relay,
                "alice",
                &alice_pw,
            )
            .await?;
            authenticate(&out, t, &bob_ep, &mut bob_cfg, &relay, "bob", &bob_pw).await
        }
        .await;
        if let Err(e) = r {
            relay.shutdown().await;
            return Err(e);
        }
        Some(relay)
    } else {
        None
    };
    let r = session_part(
        &args,
        &out,
        started,
        alice_ep,
        bob_ep,
        alice_cfg,
        bob_cfg,
        relay.as_ref(),
    )
    .await;
    if let Some(relay) = relay {
        relay.shutdown().await;
    }
    r
}

/// The demo from the offer on (the relay, if any, is running and both are authenticated).
#[allow(clippy::too_many_arguments)]
async fn session_part(
    args: &DemoArgs,
    out: &Out,
    started: Instant,
    alice_ep: MsrpEndpoint,
    bob_ep: MsrpEndpoint,
    alice_cfg: LocalConfig,
    mut bob_cfg: LocalConfig,
    relay: Option<&DemoRelay>,
) -> anyhow::Result<()> {
    let t = args.timeout;
    // 2. The offer: Alice is reachable, so a=setup:actpass (RFC 6135 §4.2.2).
    let offered = alice_ep
        .create_offer(&alice_cfg)
        .await
        .context("Alice: creating the offer")?;
    let offer_text = offered.offer().to_string();
    out.heading(&format!(
        "SDP offer from Alice (listening on {}, reachable)",
        alice_ep.local_addr()
    ));
    out.sdp(&offer_text);
    out.event(json!({"event": "sdp", "kind": "offer", "from": "alice",
        "setup": setup_of(&offer_text), "sdp": offer_text}));

    // 3. The answer: Bob is behind a NAT, so he answers active (port 9, RFC 6135 §4.2.2).
    bob_cfg.reachability = Reachability::BehindNat;
    let offer = SdpOffer::parse(&offer_text).context("Bob: parsing Alice's offer")?;
    let (answer, bob_session) = bob_ep
        .answer_offer(&offer, &bob_cfg)
        .await
        .context("Bob: answering the offer")?;
    let answer_text = answer.to_string();
    out.heading(if relay.is_some() {
        "SDP answer from Bob (behind a NAT, reachable through the relay: a=path starts with it)"
    } else {
        "SDP answer from Bob (behind a NAT: port 9, he cannot be dialled)"
    });
    out.sdp(&answer_text);
    out.event(json!({"event": "sdp", "kind": "answer", "from": "bob",
        "setup": setup_of(&answer_text), "sdp": answer_text}));

    let answer = SdpAnswer::parse(&answer_text).context("Alice: parsing Bob's answer")?;
    let alice_session = alice_ep
        .accept_answer(offered, &answer)
        .await
        .context("Alice: applying Bob's answer")?;
    let alice_plan = alice_session
        .plan()
        .cloned()
        .ok_or_else(|| anyhow!("Alice's session has no plan"))?;
    let bob_plan = bob_session
        .plan()
        .cloned()
        .ok_or_else(|| anyhow!("Bob's session has no plan"))?;

    // 4. Roles and who connects to whom.
    out.heading("Negotiated roles (RFC 6135 §4.2)");
    let describe = |name: &str, p: &ConnectionPlan| -> String {
        let tls = p
            .tls_role
            .map(|r| format!(", TLS {}", r.as_str()))
            .unwrap_or_default();
        match &p.connect_to {
            // RFC 6135 §4.5: behind a relay, the connection goes to the relay whatever the
            // role; only the active side sends the first SEND.
            Some(u) if p.via_relay => format!(
                "  {name:<5} {}{tls}: opens its connection to its relay {u}{}",
                p.role.as_str(),
                if p.role.as_str() == "active" {
                    " and sends the first SEND, through the relay"
                } else {
                    " and waits there for the first SEND"
                }
            ),
            Some(u) => format!(
                "  {name:<5} {}{tls}: opens the connection to {u} and sends the first SEND",
                p.role.as_str()
            ),
            None => format!(
                "  {name:<5} {}{tls}: waits for the peer's connection and its first SEND",
                p.role.as_str()
            ),
        }
    };
    out.say(describe("Alice", &alice_plan));
    out.say(describe("Bob", &bob_plan));
    out.event(json!({"event": "negotiated",
        "offer_setup": setup_of(&offer_text), "answer_setup": setup_of(&answer_text),
        "alice": plan_json(&alice_plan), "bob": plan_json(&bob_plan)}));

    let mut alice = Peer {
        name: "Alice",
        session: alice_session,
        backlog: VecDeque::new(),
    };
    let mut bob = Peer {
        name: "Bob",
        session: bob_session,
        backlog: VecDeque::new(),
    };
    let (a_early, b_early) = step(t, "the connection", async {
        let (a, b) = tokio::join!(alice.session.connected(), bob.session.connected());
        let a = a.map_err(|r| anyhow!("Alice's session failed before connecting: {r}"))?;
        let b = b.map_err(|r| anyhow!("Bob (active) could not connect to Alice: {r}"))?;
        Ok((a, b))
    })
    .await?;
    alice.backlog.extend(a_early);
    bob.backlog.extend(b_early);
    let (active, passive, target) = match (&bob_plan.connect_to, &alice_plan.connect_to) {
        (Some(u), None) => ("Bob", "Alice", u.to_string()),
        (None, Some(u)) => ("Alice", "Bob", u.to_string()),
        (Some(b), Some(a)) if relay.is_some() && bob_plan.via_relay && alice_plan.via_relay => {
            let (active, passive, target) = if alice_plan.role.as_str() == "active" {
                ("Alice", "Bob", a.to_string())
            } else {
                ("Bob", "Alice", b.to_string())
            };
            out.say(format!(
                "  connected: Alice -> relay ({a}), Bob -> relay ({b});\n  \
                 {active}'s first SEND went to the relay, which forwarded it to {passive} over \
                 {passive}'s own connection"
            ));
            (active, passive, target)
        }
        _ => bail!("unexpected plans: exactly one side should connect"),
    };
    if relay.is_none() {
        out.say(format!(
            "  connected: {active} -> {passive} ({target}); {passive} bound the connection to \
             the session named in the first SEND's To-Path"
        ));
    }
    let connections: Vec<Value> = [("alice", &alice_plan), ("bob", &bob_plan)]
        .iter()
        .filter_map(|(who, p)| {
            p.connect_to
                .as_ref()
                .map(|u| json!({"from": who, "to": u.to_string(), "via_relay": p.via_relay}))
        })
        .collect();
    if args.tls && relay.is_some() {
        out.say(
            "  TLS: each side verified the relay's certificate (RFC 4976 §9.2); the peer's \
             a=fingerprint cannot be checked end to end through a relay (RFC 6135 §4.3)"
                .to_string(),
        );
    }
    if alice_plan.verify_peer_fingerprint && bob_plan.verify_peer_fingerprint {
        out.say(
            "  TLS: each side's certificate matched the a=fingerprint in its SDP (RFC 8122)"
                .to_string(),
        );
    }
    out.event(json!({"event": "connected", "active": active.to_lowercase(),
        "passive": passive.to_lowercase(), "connect_to": target, "tls": args.tls,
        "relay": relay.map(|r| r.uri.to_string()), "connections": connections,
        "fingerprints_verified": alice_plan.verify_peer_fingerprint && bob_plan.verify_peer_fingerprint}));

    // 5. A short chat.
    out.heading("Chat");
    let chat = if relay.is_some() { CHAT_RELAY } else { CHAT };
    for (from_alice, text) in chat {
        let (from, to) = if *from_alice {
            (&mut alice, &mut bob)
        } else {
            (&mut bob, &mut alice)
        };
        let msg = from
            .session
            .send_text(text)
            .await
            .with_context(|| format!("{}: sending a message", from.name))?;
        let id = msg.message_id.clone();
        let (sent, got) = step(
            t,
            format!("{}'s message to {}", from.name, to.name),
            async { Ok(tokio::join!(from.wait_sent(&id), to.recv_small())) },
        )
        .await?;
        sent?;
        let (rid, ct, body) = got?;
        let body = String::from_utf8(body)
            .with_context(|| format!("{}: the text from {} is not UTF-8", to.name, from.name))?;
        if body != *text || ct != "text/plain" {
            bail!(
                "{} received {rid} ({ct}) {body:?}, expected text/plain {text:?}",
                to.name
            );
        }
        out.say(format!("  {:>5} -> {:<5} {body}", from.name, to.name));
        out.event(json!({"event": "message", "from": from.name.to_lowercase(),
            "to": to.name.to_lowercase(), "message_id": rid, "content_type": ct, "body": body}));
    }

    // 6. A file, streamed from disk to disk in chunks.
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let src = dir.path().join("demo-file.bin");
    let dst = dir.path().join("received.bin");
    let size = args.size << 20;
    let sent_sha = generate_file(&src, size).await?;
    out.heading(&format!("File transfer: Alice -> Bob, {}", mib(size)));
    out.say(format!("  {} (sha256 {sent_sha})", src.display()));
    let bar = (!args.json && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(size);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "  [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b
    });
    let file = tokio::fs::File::open(&src)
        .await
        .with_context(|| format!("opening {}", src.display()))?;
    let read = Arc::new(AtomicU64::new(0));
    let reader = Counting {
        inner: file,
        count: read.clone(),
    };
    let t0 = Instant::now();
    let msg = alice
        .session
        .send_stream(
            "application/octet-stream",
            Some(size),
            reader,
            Reports::default(),
        )
        .await
        .context("Alice: starting the file transfer")?;
    let id = msg.message_id.clone();
    let mut quarter = 0u64;
    let progress = |n: u64| {
        if let Some(b) = &bar {
            b.set_position(n);
        } else if size > 0 && n * 4 / size > quarter {
            quarter = n * 4 / size;
            out.say(format!("  received {} of {}", mib(n), mib(size)));
            out.event(json!({"event": "progress", "bytes": n, "total": size}));
        }
    };
    let (sent, got) = step(t, "the file transfer", async {
        Ok(tokio::join!(
            alice.wait_sent(&id),
            bob.recv_file(&dst, progress)
        ))
    })
    .await?;
    let elapsed = t0.elapsed();
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    sent?;
    let (rid, got_size) = got?;
    let got_sha = sha256_file(&dst).await?;
    let read = read.load(Ordering::Relaxed);
    let rate = size as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64().max(1e-6);
    out.say(format!(
        "  Bob saved {} bytes to {} in {:.2} s ({rate:.0} MiB/s)",
        got_size,
        dst.display(),
        elapsed.as_secs_f64()
    ));
    out.say(format!("  sha256 sent     {sent_sha}"));
    out.say(format!("  sha256 received {got_sha}"));
    out.event(
        json!({"event": "transfer", "message_id": rid, "bytes": got_size,
        "read_by_sender": read, "sha256_sent": sent_sha, "sha256_received": got_sha,
        "seconds": elapsed.as_secs_f64()}),
    );
    if got_size != size || got_sha != sent_sha {
        bail!(
            "file transfer corrupted: sent {size} bytes sha256 {sent_sha}, \
             Bob received {got_size} bytes sha256 {got_sha}"
        );
    }

    // 7. Close: Alice closes; Bob sees the connection end. Through a relay the connections
    // stay up for the AUTH refreshes (RFC 4976 §5.1) and MSRP has no BYE (the end of a
    // session is signalled with SIP, RFC 4975 §5.1): both close.
    let (a_reason, b_reason) = if relay.is_some() {
        let ((_, a), (_, b)) = step(t, "closing both sessions", async {
            Ok(tokio::join!(
                alice.session.close_and_wait(),
                bob.session.close_and_wait()
            ))
        })
        .await?;
        (a.to_string(), b.to_string())
    } else {
        let (_, a_reason) = step(t, "closing Alice's session", async {
            Ok(alice.session.close_and_wait().await)
        })
        .await?;
        let b_reason = step(t, "Bob noticing the close", async {
            loop {
                match bob.session.next_notice().await {
                    Some(SessionNotice::Closed(r)) => return Ok(r.to_string()),
                    Some(_) => {}
                    None => return Ok("closed".to_string()),
                }
            }
        })
        .await?;
        (a_reason.to_string(), b_reason)
    };
    out.heading("Close");
    out.say(format!("  Alice: {a_reason}; Bob: {b_reason}"));
    out.event(json!({"event": "closed", "alice": a_reason, "bob": b_reason}));

    let total = started.elapsed().as_secs_f64();
    let summary = format!(
        "OK: {} ({size} bytes) Alice -> Bob, sha256 match, {:.2} s; {} chat messages; \
         {}{}; {total:.1} s in all",
        mib(size),
        elapsed.as_secs_f64(),
        chat.len(),
        match relay {
            Some(r) => format!(
                "Alice ({}) and Bob ({}) authenticated to the relay {} and both connected to it",
                alice_plan.role.as_str(),
                bob_plan.role.as_str(),
                r.uri
            ),
            None => format!(
                "Bob ({}) connected to Alice ({})",
                bob_plan.role.as_str(),
                alice_plan.role.as_str()
            ),
        },
        if args.tls { " over TLS" } else { "" },
    );
    out.say(format!("\n{}", out.highlight(&summary)));
    out.event(json!({"event": "summary", "ok": true, "bytes": size,
        "sha256": got_sha, "transfer_seconds": elapsed.as_secs_f64(),
        "messages": chat.len(), "tls": args.tls,
        "relay": relay.map(|r| r.uri.to_string()), "seconds": total}));
    Ok(())
}
