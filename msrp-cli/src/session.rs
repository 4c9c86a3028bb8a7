//! `msrp offer` and `msrp answer`: one MSRP session each, negotiated with SDP exchanged
//! through files (or stdout/stdin), so that scripts and other stacks can take part.
//!
//! - `msrp offer` writes its offer to `--local-sdp`, then waits for the answer in
//!   `--remote-sdp`; `msrp answer` waits for the offer in `--remote-sdp`, then writes its
//!   answer to `--local-sdp`. The RFC 6135 negotiation decides who connects (the active side
//!   connects and sends a SEND at once, RFC 4975 §5.4).
//! - Then it sends what it was asked to (`--send`, `--send-file`, or each line of stdin),
//!   receives messages (text printed, files saved in `--recv-dir`), and exits once everything
//!   sent is acknowledged and `--count` messages arrived.
//!
//! With `--remote-sdp -` the SDP is read from stdin up to the first empty line (or EOF); the
//! following lines are chat lines. With `--local-sdp -` the SDP is written to stdout followed
//! by an empty line.
//!
//! Exit codes: 0 success; 1 failure (bad SDP, failed negotiation, I/O); 3 a wait timed out
//! (the peer's SDP, the connection, a delivery, an expected message); 4 the session failed
//! (connection lost, a message refused or failed).

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use clap::{Args, ValueEnum};
use msrp::proto::endpoint::CloseReason;
use msrp::proto::relay::client::{RelayClientConfig, RelaySpec};
use msrp::proto::relay::digest::Credentials;
use msrp::proto::sdp::{
    AcceptType, ConnectionPlan, FileSelector, MsrpMedia, Reachability, Role, SdpAnswer, SdpOffer,
    Side, Warning,
};
use msrp::proto::uri::{MsrpUri, Scheme};
use msrp::sink::SequentialWriter;
use msrp::tls::{load_ca_file, native_roots, TlsIdentity};
use msrp::{MsrpEndpoint, MsrpSession, Options, Reports, SessionNotice, TlsTransport};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch};

/// Text messages up to this size are kept in memory (for printing and the `body` field).
const TEXT_LIMIT: usize = 1 << 20;
/// Out-of-order bytes held per incoming message before it is refused locally.
const REORDER_LIMIT: usize = 8 << 20;

/// Exit code: a wait timed out.
pub const EXIT_TIMEOUT: i32 = 3;
/// Exit code: the session failed.
pub const EXIT_SESSION: i32 = 4;
/// Exit code: interrupted by SIGINT (Ctrl-C), 128 + 2 as shells report it.
pub const EXIT_INTERRUPTED: i32 = 130;

/// A flag set by the first SIGINT (Ctrl-C). The handler is installed at once, so an early
/// Ctrl-C is not lost; once installed, SIGINT no longer kills the process, the session ends
/// it cleanly instead.
fn interrupt_watch() -> anyhow::Result<watch::Receiver<bool>> {
    let (tx, rx) = watch::channel(false);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut sig = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        tokio::spawn(async move {
            if sig.recv().await.is_some() {
                let _ = tx.send(true);
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = tx.send(true);
        }
    });
    Ok(rx)
}

/// Resolves once `rx` says interrupted.
async fn interrupted(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        // The handler task is gone: no interrupt will come.
        std::future::pending::<()>().await;
    }
}

/// An error with its exit code.
#[derive(Debug)]
pub struct Failure {
    /// Process exit code.
    pub code: i32,
    /// What happened and why.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

fn fail(code: i32, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        code,
        message: message.into(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReachabilityArg {
    /// The peer can connect to --listen.
    Reachable,
    /// We are behind a NAT: we can only connect out (we offer/answer a=setup:active).
    BehindNat,
    /// Ask the STUN server given with --stun: RFC 5780 discovery from the listener's own
    /// port (TCP mapping; filtering measured over UDP from the same port number), then
    /// actpass with the mapped address when not NATed or behind an endpoint-independent NAT,
    /// active otherwise (RFC 6135 §4.2.2). Reported in a `nat` event.
    Auto,
}

/// Flags of `msrp offer` and `msrp answer`.
#[derive(Debug, Args)]
pub struct SessionArgs {
    /// Where to write our SDP (atomically: a temporary file renamed into place); `-` for
    /// stdout (followed by an empty line).
    #[arg(long, value_name = "FILE")]
    local_sdp: PathBuf,
    /// Where the peer's SDP appears (waited for up to --timeout); `-` for stdin, read up to
    /// the first empty line or EOF.
    #[arg(long, value_name = "FILE")]
    remote_sdp: PathBuf,
    /// Address to listen on; port 0 picks a free port, which goes into the SDP.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Whether the peer can connect to us (RFC 6135 §4.2.2: decides a=setup).
    #[arg(long, value_enum, default_value = "reachable")]
    reachability: ReachabilityArg,
    /// STUN server (RFC 5780: two addresses, e.g. coturn with --alt-listening-port) for
    /// --reachability auto.
    #[arg(long, value_name = "HOST:PORT")]
    stun: Option<String>,
    /// Initial STUN retransmission timeout in milliseconds (RFC 8489 §6.2.1).
    #[arg(long, value_name = "MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    stun_rto_ms: u64,
    /// A text/plain message to send (repeatable). Without --send/--send-file, each line of
    /// stdin is sent.
    #[arg(long, value_name = "TEXT")]
    send: Vec<String>,
    /// A file to send, streamed (repeatable). Files start first; --send texts follow once
    /// the first file is under way and overtake it (RFC 4975 §7.1 chunk interleaving).
    #[arg(long, value_name = "PATH")]
    send_file: Vec<PathBuf>,
    /// Content-Type for --send-file.
    #[arg(long, value_name = "TYPE", default_value = "application/octet-stream")]
    file_type: String,
    /// Save received files (non-text messages) in this directory, streamed to disk.
    /// Without it their bytes are only counted and hashed.
    #[arg(long, value_name = "DIR")]
    recv_dir: Option<PathBuf>,
    /// Seconds any single wait may take: the peer's SDP, the connection, a response to a
    /// chunk, the next event while messages are expected.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    timeout: u64,
    /// Messages to receive before exiting (once everything sent is acknowledged).
    #[arg(long, value_name = "N", default_value_t = 0)]
    count: u64,
    /// One JSON object per line on stdout, with an "event" field.
    #[arg(long)]
    json: bool,
    /// Media types we accept (RFC 4975 §8.6), space separated.
    #[arg(long, value_name = "TYPES", default_value = "*")]
    accept_types: String,
    /// Largest message we accept, in octets (a=max-size).
    #[arg(long, value_name = "OCTETS")]
    max_size: Option<u64>,
    /// Largest chunk body we send on a direct session, in octets (each outgoing message
    /// buffers up to two chunks).
    #[arg(long, value_name = "OCTETS", default_value_t = msrp::proto::session::DEFAULT_CHUNK_SIZE)]
    chunk_size: usize,
    /// Largest chunk body we send when the session goes through relays (RFC 4976: ours,
    /// --relay, or the peer's in its a=path), in octets; the smaller of this and
    /// --chunk-size applies. Kamailio 5.6.3 refuses frames of about 11 KiB and more.
    #[arg(long, value_name = "OCTETS", default_value_t = msrp::proto::session::DEFAULT_RELAY_CHUNK_SIZE)]
    relay_chunk_size: usize,
    /// MSRP over TLS (`TCP/TLS/MSRP`, `msrps:`, RFC 4975 §14): our SDP carries our
    /// certificate's a=fingerprint; the active side is the TLS client (RFC 6135 §4.3) and
    /// pins the peer's a=fingerprint. Without --cert a self-signed certificate is generated.
    #[arg(long)]
    tls: bool,
    /// Our certificate chain (PEM, end-entity first), with --key; implies --tls.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// The private key of --cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// CA certificates (PEM) for verifying a peer whose SDP has no a=fingerprint (for
    /// example a relay, RFC 6135 §4.3), with the host name of its URI; implies --tls.
    /// Without it the system roots are used when there are any.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// A relay acting for us (RFC 4976), e.g. `msrp://127.0.0.1:2855;tcp`; repeat for a
    /// chain, the one we connect to first. We AUTH to each before creating our SDP, whose
    /// a=path then starts with the relays' Use-Path, and the session runs over the connection
    /// to the first relay whatever a=setup says (RFC 6135 §4.5). An `msrps:` relay implies
    /// --tls; its certificate is verified against --ca (or the system roots) with the host
    /// name of its URI (RFC 4976 §6.3).
    #[arg(long, value_name = "URI")]
    relay: Vec<String>,
    /// User name at the relays (with --relay-password).
    #[arg(
        long,
        value_name = "NAME",
        requires = "relay_password",
        conflicts_with = "relay_credentials"
    )]
    relay_user: Option<String>,
    /// Password at the relays (with --relay-user).
    #[arg(long, value_name = "PASS", requires = "relay_user")]
    relay_password: Option<String>,
    /// File whose first line is `user:password` (the user name cannot contain `:`; the
    /// password is the rest of the line), instead of --relay-user/--relay-password.
    #[arg(long, value_name = "FILE", conflicts_with = "relay_password")]
    relay_credentials: Option<PathBuf>,
}

/// Reads `user:password` from the first line of a --relay-credentials file.
fn parse_relay_credentials(text: &str) -> Result<(String, String), String> {
    let line = text.lines().next().unwrap_or("");
    let Some((user, pass)) = line.split_once(':') else {
        return Err("expected `user:password` on the first line".into());
    };
    if user.is_empty() {
        return Err("the user name before `:` is empty".into());
    }
    Ok((user.to_string(), pass.to_string()))
}

/// The relay client settings from --relay and the credentials flags.
fn relay_config(args: &SessionArgs, local_uri: MsrpUri) -> anyhow::Result<RelayClientConfig> {
    // RFC 4976 §5.1: every relay of the chain is asked with the same credentials.
    let (user, pass) = match (&args.relay_user, &args.relay_password, &args.relay_credentials) {
        (Some(u), Some(p), None) => (u.clone(), p.clone()),
        (None, None, Some(f)) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("--relay-credentials {}", f.display()))?;
            parse_relay_credentials(&text)
                .map_err(|e| anyhow!("--relay-credentials {}: {e}", f.display()))?
        }
        _ => {
            return Err(anyhow!(
                "--relay needs --relay-user NAME with --relay-password PASS, or --relay-credentials FILE"
            ))
        }
    };
    let credentials =
        Credentials::new(user, pass).map_err(|e| anyhow!("relay credentials: {e}"))?;
    let mut relays = Vec::new();
    for r in &args.relay {
        let uri = MsrpUri::parse(r).map_err(|e| anyhow!("--relay {r}: {e}"))?;
        if uri.session_id.is_some() {
            // RFC 4976 §5.1: the relay is addressed by a URI without a session id.
            return Err(anyhow!(
                "--relay {r}: a relay URI has no session id (e.g. msrp://relay.example:2855;tcp)"
            ));
        }
        if uri.port.is_none() {
            return Err(anyhow!("--relay {r}: the URI needs a port (RFC 4975 §8.2)"));
        }
        relays.push(RelaySpec {
            uri,
            credentials: credentials.clone(),
        });
    }
    let mut c = RelayClientConfig::new(relays, local_uri);
    c.transaction_timeout = Duration::from_secs(args.timeout);
    Ok(c)
}

/// The TLS transport of `--tls`/`--cert`/`--key`/`--ca`.
fn tls_transport(args: &SessionArgs, timeout: Duration) -> anyhow::Result<TlsTransport> {
    let identity = match (&args.cert, &args.key) {
        (Some(c), Some(k)) => {
            TlsIdentity::from_pem_files(c, k).map_err(|e| anyhow!("--cert/--key: {e}"))?
        }
        _ => TlsIdentity::generate().map_err(|e| anyhow!("generating a certificate: {e}"))?,
    };
    let roots = match &args.ca {
        Some(f) => Some(Arc::new(load_ca_file(f).map_err(|e| anyhow!("--ca: {e}"))?)),
        None => native_roots().ok().map(Arc::new),
    };
    Ok(TlsTransport::new(identity, roots).with_handshake_timeout(timeout))
}

/// Runs `msrp offer` (`side` = offerer) or `msrp answer`.
pub fn run(side: Side, args: SessionArgs, verbose: u8) -> anyhow::Result<()> {
    if args.timeout == 0 {
        return Err(anyhow!("--timeout must be at least 1 second"));
    }
    if args.chunk_size == 0 {
        return Err(anyhow!("--chunk-size must be at least 1"));
    }
    if args.relay_chunk_size == 0 {
        return Err(anyhow!("--relay-chunk-size must be at least 1"));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async {
        let int = interrupt_watch()?;
        // Set once the session is being driven: from then on `Run::drive` handles Ctrl-C
        // itself (closing the session and saying what was pending).
        let driving = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut before = int.clone();
        let d = driving.clone();
        tokio::select! {
            r = run_async(side, args, verbose, int, driving) => r,
            () = async {
                interrupted(&mut before).await;
                if d.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
            } => Err(fail(
                EXIT_INTERRUPTED,
                "interrupted (Ctrl-C) before the session started; nothing was sent",
            )),
        }
    })
}

/// Output: JSON events or human-readable lines.
#[derive(Clone, Copy)]
struct Out {
    json: bool,
    verbose: u8,
}

impl Out {
    /// A `failed` event (status 408) for each message still unacknowledged when the session
    /// ends, like a transaction timeout (RFC 4975 §7.1.1: inform the user that the request
    /// probably failed; §10.4: 408).
    fn fail_pending(
        &self,
        pending: &HashMap<String, Pending>,
        reason: impl Fn(&Pending) -> String,
    ) {
        for (id, p) in pending {
            self.event(json!({
                "event": "failed",
                "direction": "out",
                "message_id": id,
                "status": 408,
                "reason": reason(p),
            }));
        }
    }

    fn event(&self, v: Value) {
        if self.json {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{v}");
            let _ = o.flush();
        }
    }

    fn note(&self, msg: impl AsRef<str>) {
        if !self.json || self.verbose > 0 {
            eprintln!("msrp: {}", msg.as_ref());
        }
    }
}

/// Lines of stdin, read by one thread so that the SDP and the chat lines that follow it
/// come from the same buffer.
type StdinLines = mpsc::Receiver<std::io::Result<String>>;

fn spawn_stdin() -> StdinLines {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        loop {
            let mut line = String::new();
            match lock.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => {
                    while line.ends_with('\n') || line.ends_with('\r') {
                        line.pop();
                    }
                    if tx.blocking_send(Ok(line)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}

fn is_dash(p: &Path) -> bool {
    p == Path::new("-")
}

/// Writes our SDP: atomically (temporary file in the same directory, then rename) so that a
/// peer polling for the file never reads half of it.
fn write_local_sdp(path: &Path, sdp: &str) -> anyhow::Result<()> {
    if is_dash(path) {
        let mut o = std::io::stdout().lock();
        write!(o, "{sdp}\r\n").context("writing our SDP to stdout")?;
        o.flush().context("writing our SDP to stdout")?;
        return Ok(());
    }
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("--local-sdp {}: not a file name", path.display()))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, sdp).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("renaming {} to {}", tmp.display(), path.display())
    })?;
    Ok(())
}

/// Reads the peer's SDP: from stdin up to an empty line or EOF, or from a file that may not
/// exist yet (polled until --timeout). A file last modified before `not_before` is stale
/// (left from an earlier run) and is waited past, with a note on stderr.
async fn read_remote_sdp(
    path: &Path,
    what: &str,
    timeout: Duration,
    stdin: Option<&mut StdinLines>,
    not_before: Option<std::time::SystemTime>,
) -> anyhow::Result<String> {
    if let Some(lines) = stdin {
        let mut text = String::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, lines.recv()).await {
                Err(_) => {
                    return Err(fail(
                        EXIT_TIMEOUT,
                        format!(
                            "no {what} on stdin within {} s (end it with an empty line)",
                            timeout.as_secs()
                        ),
                    ))
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(anyhow!("reading the {what} from stdin: {e}")),
                Ok(Some(Ok(l))) if l.trim().is_empty() => {
                    if text.is_empty() {
                        continue; // empty lines before the SDP
                    }
                    break;
                }
                Ok(Some(Ok(l))) => {
                    text.push_str(&l);
                    text.push_str("\r\n");
                    if text.len() > msrp::proto::sdp::MAX_SDP_LEN {
                        return Err(anyhow!("the {what} on stdin is too large"));
                    }
                }
            }
        }
        if text.is_empty() {
            return Err(anyhow!("stdin closed before the {what} arrived"));
        }
        return Ok(text);
    }
    let start = Instant::now();
    let mut last: Option<String> = None;
    let mut stale_noted = false;
    loop {
        let stale = not_before.is_some_and(|nb| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < nb)
        });
        if stale && !stale_noted {
            stale_noted = true;
            eprintln!(
                "msrp: ignoring {}: it is older than our offer (left from an earlier run?); \
                 waiting for the peer's {what}",
                path.display()
            );
        }
        match tokio::fs::read(path).await {
            _ if stale => {}
            Ok(bytes) if !bytes.is_empty() => {
                if bytes.len() > msrp::proto::sdp::MAX_SDP_LEN {
                    return Err(anyhow!(
                        "{what} {}: larger than {} bytes",
                        path.display(),
                        msrp::proto::sdp::MAX_SDP_LEN
                    ));
                }
                let text = String::from_utf8(bytes)
                    .map_err(|_| anyhow!("{what} {}: not valid UTF-8", path.display()))?;
                // A writer that does not rename atomically may still be writing: accept the
                // content once it is the same on two reads in a row.
                if last.as_deref() == Some(text.as_str()) {
                    return Ok(text);
                }
                last = Some(text);
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow!("{what} {}: {e}", path.display())),
        }
        if start.elapsed() >= timeout {
            return Err(fail(
                EXIT_TIMEOUT,
                format!(
                    "the peer's {what} did not appear in {} within {} s{}",
                    path.display(),
                    timeout.as_secs(),
                    if stale_noted {
                        " (the file there is older than our offer: remove it before a new run)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn setup_of(m: &MsrpMedia) -> Option<&'static str> {
    m.setup.map(|s| s.as_str())
}

/// Negotiation facts kept for messages and events.
struct Negotiated {
    plan: ConnectionPlan,
    local_setup: Option<&'static str>,
    remote_setup: Option<&'static str>,
    remote_file: Option<FileSelector>,
    listen: SocketAddr,
    timeout: Duration,
}

impl Negotiated {
    fn peer_did(&self) -> &'static str {
        match self.plan.side {
            Side::Offerer => "answered",
            Side::Answerer => "offered",
        }
    }

    fn remote_setup_text(&self) -> String {
        match self.remote_setup {
            Some(s) => format!("it {} a=setup:{s}", self.peer_did()),
            None => format!(
                "it {} without a=setup (RFC 4975: the offerer connects)",
                self.peer_did()
            ),
        }
    }

    /// The RFC 6135 warning saying the peer's connection cannot reach us through our NAT,
    /// if the plan has one.
    fn nat_blocks_peer(&self) -> Option<&Warning> {
        self.plan.warnings.iter().find(|w| {
            matches!(
                w,
                Warning::NatTraversalNeedsRelay | Warning::UnreachablePassive
            )
        })
    }

    /// Why the session did not connect, in words.
    fn not_connected(&self, why: &CloseReason) -> String {
        let t = self.timeout.as_secs();
        match (self.plan.role, why) {
            (Role::Passive, CloseReason::NotConnected(_)) => match self.nat_blocks_peer() {
                // RFC 6135 §5: behind a NAT, a passive UA is reached only through a relay.
                Some(w) => format!(
                    "peer did not connect within {t} s: NAT traversal needs an MSRP relay \
                     (RFC 4976): a peer that connects to us cannot get through; {w}. Use a \
                     relay the peer can reach: --relay URI with --relay-user/--relay-password \
                     (or --relay-credentials FILE)"
                ),
                None => format!(
                    "peer did not connect within {t} s; {}, so it should have (we listened on {})",
                    self.remote_setup_text(),
                    self.listen
                ),
            },
            (Role::Active, CloseReason::ConnectFailed(r)) => format!(
                "could not connect to {}: {r}; we are active because {}",
                self.plan
                    .connect_to
                    .as_ref()
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                self.remote_setup_text()
            ),
            (Role::Active, CloseReason::NotConnected(r)) => format!(
                "not connected within {t} s: {r}; we connected to {} as the active side ({}) but the peer did not answer our first SEND",
                self.plan.connect_to.as_ref().map(|u| u.to_string()).unwrap_or_default(),
                self.remote_setup_text()
            ),
            (_, r) => format!("the session ended before it was connected: {r}"),
        }
    }

    fn json(&self) -> Value {
        let p = &self.plan;
        json!({
            "event": "negotiated",
            "side": match p.side { Side::Offerer => "offerer", Side::Answerer => "answerer" },
            "role": p.role.as_str(),
            "local_setup": self.local_setup,
            "remote_setup": self.remote_setup,
            "connect_to": p.connect_to.as_ref().map(|u| u.to_string()),
            "local_uri": p.local_uri.to_string(),
            "remote_uri": p.remote_uri.to_string(),
            "tls": p.tls,
            "tls_role": p.tls_role.map(|r| r.as_str()),
            "peer_fingerprint": p.peer_fingerprints.first().map(|f| f.to_string()),
            "warnings": p.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        })
    }
}

/// `--reachability auto`: RFC 5780 discovery from the listener's port (see
/// [`msrp::nat::resolve_reachability`]), bounded by the STUN retransmission budget.
async fn auto_reachability(
    args: &SessionArgs,
    listen: SocketAddr,
) -> anyhow::Result<msrp::nat::NatResolution> {
    let text = args.stun.as_deref().unwrap_or_default();
    let server = msrp::nat::resolve_stun_server(text, Some(listen)).await?;
    let config =
        msrp::stun::StunConfig::default().with_rto(Duration::from_millis(args.stun_rto_ms));
    msrp::nat::resolve_reachability(server, listen, config)
        .await
        .with_context(|| format!("--reachability auto: STUN discovery with {server} failed"))
}

/// The `nat` event: the RFC 5780 findings and the RFC 6135 §4.2.2 decision (the keys of
/// `msrp nat-check --json`, plus `advertised`).
fn nat_event(nat: &msrp::nat::NatResolution) -> Value {
    let r = &nat.report;
    json!({
        "event": "nat",
        "mapped_address": r.mapped.to_string(),
        "mapping": r.mapping.as_str(),
        "filtering": r.filtering.as_str(),
        "behind_nat": r.verdict.behind_nat(),
        "offer_setup": nat.offer_setup().as_str(),
        "advertised": nat.advertised.to_string(),
        "reason": r.reason,
    })
}

async fn run_async(
    side: Side,
    args: SessionArgs,
    verbose: u8,
    int: watch::Receiver<bool>,
    driving: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<()> {
    let out = Out {
        json: args.json,
        verbose,
    };
    let timeout = Duration::from_secs(args.timeout);
    let interactive = args.send.is_empty() && args.send_file.is_empty();
    if let Some(d) = &args.recv_dir {
        std::fs::create_dir_all(d).with_context(|| format!("--recv-dir {}", d.display()))?;
    }
    for f in &args.send_file {
        let m = std::fs::metadata(f).with_context(|| format!("--send-file {}", f.display()))?;
        if !m.is_file() {
            return Err(anyhow!("--send-file {}: not a regular file", f.display()));
        }
    }
    let mut stdin = (is_dash(&args.remote_sdp) || interactive).then(spawn_stdin);

    // An msrps: relay MUST be reached over TLS (RFC 4975 §6, RFC 4976 §6.3).
    let secure_relay = args
        .relay
        .iter()
        .any(|r| MsrpUri::parse(r).is_ok_and(|u| u.is_secure()));
    let tls = if args.tls || args.cert.is_some() || args.ca.is_some() || secure_relay {
        Some(Arc::new(tls_transport(&args, timeout)?))
    } else {
        None
    };
    let mut opts = match &tls {
        Some(t) => Options::tls(args.listen, t.clone()),
        None => Options::new(args.listen),
    };
    opts.endpoint.connect_timeout = timeout;
    opts.endpoint.bind_timeout = timeout;
    opts.session.transaction_timeout = timeout;
    // Each session picks its chunk size: --chunk-size when direct, at most
    // --relay-chunk-size through relays (SessionConfig::chunk_size); the send window follows
    // (two chunks per outgoing message).
    opts.session.max_chunk_size = args.chunk_size;
    opts.session.relay_chunk_size = args.relay_chunk_size;
    let auto = args.reachability == ReachabilityArg::Auto;
    if args.stun.is_some() && !auto {
        return Err(anyhow!("--stun is only used with --reachability auto"));
    }
    if auto && args.stun.is_none() {
        return Err(anyhow!(
            "--reachability auto needs --stun HOST:PORT (a STUN server supporting RFC 5780)"
        ));
    }
    // RFC 6135 §4.2.2: STUN runs from the listener's own port while it listens, so the
    // listener shares it (SO_REUSEPORT).
    opts.reuse_port = auto;
    let ep = MsrpEndpoint::bind(opts)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    if let Some(t) = &tls {
        // A passive endpoint that refuses a connection keeps listening (the transport drops
        // it before it reaches the session); say what happened.
        let mut refusals = t.refusals();
        tokio::spawn(async move {
            loop {
                match refusals.recv().await {
                    Ok(r) => {
                        let who = r
                            .peer
                            .map(|p| format!("from {p}"))
                            .or(r.to.as_ref().map(|t| format!("to {t}")))
                            .unwrap_or_default();
                        out.event(json!({
                            "event": "refused",
                            "peer": r.peer.map(|p| p.to_string()),
                            "to": r.to.as_ref(),
                            "reason": r.error.to_string(),
                        }));
                        eprintln!("msrp: TLS connection {who} refused: {}", r.error);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                }
            }
        });
    }
    let mut cfg = ep.local_config();
    cfg.reachability = match args.reachability {
        ReachabilityArg::Reachable => Reachability::Reachable,
        ReachabilityArg::BehindNat => Reachability::BehindNat,
        ReachabilityArg::Auto => {
            let nat = auto_reachability(&args, ep.local_addr()).await?;
            nat.apply(&mut cfg);
            out.event(nat_event(&nat));
            out.note(format!("reachability: {}", nat.summary()));
            nat.reachability
        }
    };
    cfg.accept_types =
        AcceptType::parse_list(&args.accept_types).map_err(|e| anyhow!("--accept-types: {e}"))?;
    cfg.max_size = args.max_size;

    // RFC 4976 §5.1: AUTH to our relays before making the SDP; the Use-Path goes into our
    // a=path and the session runs over that connection (RFC 6135 §4.5).
    let _relay_binding = if args.relay.is_empty() {
        if args.relay_user.is_some() || args.relay_credentials.is_some() {
            return Err(anyhow!("--relay-user/--relay-credentials need --relay URI"));
        }
        None
    } else {
        let local_uri = MsrpUri::new(
            if cfg.tls { Scheme::Msrps } else { Scheme::Msrp },
            cfg.host.clone(),
            cfg.port,
            cfg.session_id.clone(),
        );
        let rc = relay_config(&args, local_uri)?;
        if let Some(plain) = rc.relays.first().filter(|r| !r.uri.is_secure()) {
            // RFC 4976 §9.4: "any time a client communicates with its relay, it MUST use
            // TLS". Plain TCP stays possible (tests, loopback), but say what it means.
            eprintln!(
                "msrp: warning: relay {} is plain TCP: RFC 4976 §9.4 wants TLS to a relay \
                 (the AUTH exchange and the messages are not protected)",
                plain.uri
            );
        }
        let b = ep
            .authenticate_relays(rc)
            .await
            .map_err(|e| fail(EXIT_SESSION, e.to_string()))?;
        let use_path: Vec<String> = b.use_path.iter().map(|u| u.to_string()).collect();
        out.event(json!({
            "event": "authenticated",
            "use_path": use_path,
            "expires": b.expires,
        }));
        out.note(format!(
            "authenticated to the relays: Use-Path {}",
            use_path.join(" ")
        ));
        cfg.relay_path = b.use_path.clone();
        Some(b)
    };

    let remote_is_stdin = is_dash(&args.remote_sdp);
    fn sdp_stdin(s: &mut Option<StdinLines>, on: bool) -> Option<&mut StdinLines> {
        s.as_mut().filter(|_| on)
    }
    let remote_name = |what: &str| {
        if is_dash(&args.remote_sdp) {
            format!("{what} from stdin")
        } else {
            format!("{what} {}", args.remote_sdp.display())
        }
    };
    let (session, negotiated, local_text, remote_text) = match side {
        Side::Offerer => {
            let offered = ep.create_offer(&cfg).await.context("creating the offer")?;
            let local_text = offered.offer().to_string();
            write_local_sdp(&args.local_sdp, &local_text)?;
            // An answer is made from our offer, so an answer file older than the offer we just
            // wrote is left over from an earlier run: wait for the new one instead of
            // connecting to a session that is gone. Both times come from the file system's
            // clock (our offer file's mtime), so they compare.
            let not_before = if is_dash(&args.local_sdp) {
                None
            } else {
                std::fs::metadata(&args.local_sdp)
                    .and_then(|m| m.modified())
                    .ok()
            };
            let text = read_remote_sdp(
                &args.remote_sdp,
                "answer",
                timeout,
                sdp_stdin(&mut stdin, remote_is_stdin),
                not_before,
            )
            .await?;
            let answer =
                SdpAnswer::parse(&text).map_err(|e| anyhow!("{}: {e}", remote_name("answer")))?;
            let local_setup = setup_of(offered.offer().media());
            let remote_setup = setup_of(answer.media());
            let remote_file = answer.media().file_selector.clone();
            let session = ep
                .accept_answer(offered, &answer)
                .await
                .map_err(|e| anyhow!("{}: {e}", remote_name("answer")))?;
            (
                session,
                (local_setup, remote_setup, remote_file),
                local_text,
                text,
            )
        }
        Side::Answerer => {
            let text = read_remote_sdp(
                &args.remote_sdp,
                "offer",
                timeout,
                sdp_stdin(&mut stdin, remote_is_stdin),
                None,
            )
            .await?;
            let offer =
                SdpOffer::parse(&text).map_err(|e| anyhow!("{}: {e}", remote_name("offer")))?;
            let (answer, session) = ep
                .answer_offer(&offer, &cfg)
                .await
                .map_err(|e| anyhow!("cannot answer the {}: {e}", remote_name("offer")))?;
            let local_text = answer.to_string();
            write_local_sdp(&args.local_sdp, &local_text)?;
            (
                session,
                (
                    setup_of(answer.media()),
                    setup_of(offer.media()),
                    offer.media().file_selector.clone(),
                ),
                local_text,
                text,
            )
        }
    };
    let plan = session
        .plan()
        .cloned()
        .ok_or_else(|| anyhow!("internal error: session without a plan"))?;
    let neg = Negotiated {
        plan,
        local_setup: negotiated.0,
        remote_setup: negotiated.1,
        remote_file: negotiated.2,
        listen: ep.local_addr(),
        timeout,
    };
    for w in &neg.plan.warnings {
        eprintln!("msrp: warning: {w}");
    }
    if verbose > 0 {
        eprintln!("--- our SDP\n{}", local_text.trim_end());
        eprintln!("--- peer SDP\n{}", remote_text.trim_end());
        eprintln!(
            "--- negotiated plan\n{}",
            serde_json::to_string_pretty(&neg.json()).unwrap_or_default()
        );
    }
    out.event(neg.json());
    out.note(format!(
        "negotiated: we are {} (our a=setup:{}, {})",
        neg.plan.role.as_str(),
        neg.local_setup.unwrap_or("(none)"),
        neg.remote_setup_text()
    ));

    let run = Run {
        out,
        neg,
        args,
        interactive,
        stdin,
        int,
    };
    driving.store(true, Ordering::SeqCst);
    run.drive(session).await
}

struct Run {
    out: Out,
    neg: Negotiated,
    args: SessionArgs,
    interactive: bool,
    stdin: Option<StdinLines>,
    /// Set by SIGINT (Ctrl-C).
    int: watch::Receiver<bool>,
}

/// An outgoing message waiting for its acknowledgement.
struct Pending {
    what: String,
}

/// The sink of an incoming body: counts, hashes, and keeps (text) or writes (file) the bytes.
struct BodySink {
    hasher: Sha256,
    bytes: u64,
    mem: Option<Vec<u8>>,
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
}

impl AsyncWrite for BodySink {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let n = match this.file.as_mut() {
            Some(f) => match Pin::new(f).poll_write(cx, buf) {
                Poll::Ready(Ok(n)) => n,
                other => return other,
            },
            None => buf.len(),
        };
        this.hasher.update(&buf[..n]);
        this.bytes += n as u64;
        if let Some(m) = this.mem.as_mut() {
            if m.len() + n > TEXT_LIMIT {
                this.mem = None;
            } else {
                m.extend_from_slice(&buf[..n]);
            }
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.file.as_mut() {
            Some(f) => Pin::new(f).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.file.as_mut() {
            Some(f) => Pin::new(f).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

struct Incoming {
    content_type: String,
    writer: SequentialWriter<BodySink>,
    /// (temporary path, final path) when saved to --recv-dir.
    paths: Option<(PathBuf, PathBuf)>,
    text: bool,
}

/// Reads a file and counts what it read (for the progress bar and for starting the texts
/// once the file is under way).
struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
    bar: Option<indicatif::ProgressBar>,
}

impl<R: AsyncRead + Unpin> AsyncRead for CountingReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let n = (buf.filled().len() - before) as u64;
            let total = self.count.fetch_add(n, Ordering::Relaxed) + n;
            if let Some(b) = &self.bar {
                b.set_position(total);
            }
        }
        r
    }
}

/// A file name safe to create inside --recv-dir: the last path component, no control
/// characters, not `.`/`..`, not hidden, at most 200 bytes.
pub fn sanitize_file_name(name: &str) -> Option<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .trim_start_matches('.')
        .to_string();
    if cleaned.is_empty() {
        return None;
    }
    let mut end = cleaned.len().min(200);
    while !cleaned.is_char_boundary(end) {
        end -= 1;
    }
    Some(cleaned[..end].to_string())
}

/// The file name of an RFC 5547 file-selector `name:"..."` (percent-decoded).
fn selector_name(fs: &FileSelector) -> Option<String> {
    let raw = fs.name.as_deref()?;
    let mut bytes = Vec::with_capacity(raw.len());
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                bytes.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        bytes.push(b[i]);
        i += 1;
    }
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

fn is_text(content_type: &str) -> bool {
    content_type
        .trim()
        .to_ascii_lowercase()
        .starts_with("text/")
}

/// A path in `dir` for `name` that does not exist yet (`name`, `name.1`, `name.2`, ...).
fn free_path(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    if !p.exists() {
        return p;
    }
    for i in 1..10_000 {
        let p = dir.join(format!("{name}.{i}"));
        if !p.exists() {
            return p;
        }
    }
    dir.join(format!("{name}.{}", std::process::id()))
}

impl Run {
    /// Ctrl-C: closes the session (what the driver queued is written), reports what was
    /// still pending, and gives the error that exits with [`EXIT_INTERRUPTED`].
    async fn interrupted_close(
        &self,
        session: &mut MsrpSession,
        unacknowledged: Vec<String>,
        received: u64,
    ) -> anyhow::Error {
        session.close();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while let Ok(Some(n)) = tokio::time::timeout_at(deadline, session.next_notice()).await {
            if matches!(n, SessionNotice::Closed(_)) {
                break;
            }
        }
        let mut msg = "interrupted (Ctrl-C): session closed".to_string();
        if !unacknowledged.is_empty() {
            msg.push_str(&format!(
                "; not acknowledged: {}",
                unacknowledged.join(", ")
            ));
        }
        msg.push_str(&format!("; received {received} message(s)"));
        self.out.event(json!({"event": "closed", "reason": msg}));
        // Let the connection's writer flush what is queued.
        tokio::time::sleep(Duration::from_millis(50)).await;
        fail(EXIT_INTERRUPTED, msg)
    }

    async fn drive(mut self, mut session: MsrpSession) -> anyhow::Result<()> {
        let timeout = self.neg.timeout;
        // 1. Connection (the core closes the session after `timeout`; the margin only guards
        // against a driver that stopped).
        let mut int = self.int.clone();
        let connecting = tokio::select! {
            r = tokio::time::timeout(timeout + Duration::from_secs(2), session.connected()) => Some(r),
            () = interrupted(&mut int) => None,
        };
        let Some(connecting) = connecting else {
            return Err(self.interrupted_close(&mut session, Vec::new(), 0).await);
        };
        let early = match connecting {
            Err(_) => {
                let msg = self
                    .neg
                    .not_connected(&CloseReason::NotConnected("no connection".into()));
                self.out.event(json!({"event": "closed", "reason": msg}));
                return Err(fail(EXIT_TIMEOUT, msg));
            }
            Ok(Err(reason)) => {
                let msg = self.neg.not_connected(&reason);
                self.out
                    .event(json!({"event": "closed", "reason": reason.to_string()}));
                let code = match reason {
                    CloseReason::NotConnected(_) => EXIT_TIMEOUT,
                    _ => EXIT_SESSION,
                };
                return Err(fail(code, msg));
            }
            Ok(Ok(early)) => early,
        };
        let p = &self.neg.plan;
        self.out.event(json!({
            "event": "connected",
            "role": p.role.as_str(),
            "connect_to": p.connect_to.as_ref().map(|u| u.to_string()),
        }));
        self.out.note(match &p.connect_to {
            Some(u) => format!("connected to {u}"),
            None => format!("the peer connected to us on {}", self.neg.listen),
        });

        // 2. Start sending: files first, texts once the first file is under way.
        let mut pending: HashMap<String, Pending> = HashMap::new();
        let mut file_progress: Option<(Arc<AtomicU64>, u64)> = None;
        let mut bars = Vec::new();
        let mut file_counters: Vec<Arc<AtomicU64>> = Vec::new();
        let mut last_total = 0u64;
        for path in self.args.send_file.clone() {
            let file = tokio::fs::File::open(&path)
                .await
                .with_context(|| format!("--send-file {}", path.display()))?;
            let size = file
                .metadata()
                .await
                .with_context(|| format!("--send-file {}", path.display()))?
                .len();
            let count = Arc::new(AtomicU64::new(0));
            let bar = std::io::stderr().is_terminal().then(|| {
                let b = indicatif::ProgressBar::new(size);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                b.set_message(path.display().to_string());
                b
            });
            if let Some(b) = &bar {
                bars.push(b.clone());
            }
            let reader = CountingReader {
                inner: file,
                count: count.clone(),
                bar,
            };
            // RFC 5547 §8: the file's name goes with it (Content-Disposition), so the
            // receiver can save it under that name.
            let file_name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let msg = session
                .send_file(
                    &self.args.file_type,
                    Some(size),
                    reader,
                    Reports::default(),
                    &file_name,
                )
                .await
                .map_err(|e| fail(EXIT_SESSION, format!("sending {}: {e}", path.display())))?;
            self.out.event(json!({
                "event": "sending",
                "message_id": msg.message_id,
                "content_type": self.args.file_type,
                "bytes": size,
                "path": path.display().to_string(),
            }));
            pending.insert(
                msg.message_id.clone(),
                Pending {
                    what: format!("file {}", path.display()),
                },
            );
            file_counters.push(count.clone());
            if file_progress.is_none() {
                file_progress = Some((count, size));
            }
        }
        let mut texts: std::collections::VecDeque<String> = self.args.send.clone().into();
        let mut sending_done = !self.interactive && texts.is_empty();
        let mut send_refused = false;
        let mut stdin_open = self.interactive;
        let mut received: u64 = 0;
        let mut incoming: HashMap<String, Incoming> = HashMap::new();
        let mut file_selector_used = false;
        let mut aborted_in: Vec<String> = Vec::new();
        let mut last_activity = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut notices: std::collections::VecDeque<SessionNotice> = early.into();

        loop {
            // Texts start once the first file has been read from (or at once without files).
            if !texts.is_empty() {
                let ready = match &file_progress {
                    None => true,
                    Some((c, size)) => c.load(Ordering::Relaxed) >= (*size).min(1),
                };
                if ready && !send_refused {
                    while let Some(t) = texts.pop_front() {
                        let m = match session.send_text(&t).await {
                            Ok(m) => m,
                            Err(msrp::endpoint::Error::Endpoint(
                                msrp::proto::endpoint::EndpointError::UnknownSession,
                            )) => {
                                // The session ended meanwhile (for example a failure REPORT
                                // from a relay, RFC 4976 §6.4.1): its Closed notice says why.
                                texts.push_front(t);
                                send_refused = true;
                                break;
                            }
                            Err(e) => {
                                return Err(fail(EXIT_SESSION, format!("sending {t:?}: {e}")))
                            }
                        };
                        self.out.event(json!({
                            "event": "sending",
                            "message_id": m.message_id,
                            "content_type": "text/plain",
                            "bytes": t.len(),
                        }));
                        pending.insert(
                            m.message_id.clone(),
                            Pending {
                                what: format!("text {t:?}"),
                            },
                        );
                    }
                    if !send_refused {
                        sending_done = !self.interactive;
                    }
                }
            }
            if sending_done && pending.is_empty() && received >= self.args.count {
                for b in &bars {
                    b.finish_and_clear();
                }
                session.close();
                // Wait for the Closed notice so that what the driver queued gets written.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                let mut reason = "closed locally".to_string();
                while let Ok(Some(n)) =
                    tokio::time::timeout_at(deadline, session.next_notice()).await
                {
                    if let SessionNotice::Closed(r) = n {
                        reason = r.to_string();
                        break;
                    }
                }
                self.out.event(json!({"event": "closed", "reason": reason}));
                // Let the connection's writer flush what is queued.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Ok(());
            }
            let notice = if let Some(n) = notices.pop_front() {
                n
            } else {
                let idle_deadline = last_activity + timeout;
                let waiting_for_peer = !stdin_open;
                tokio::select! {
                    n = session.next_notice() => match n {
                        Some(n) => n,
                        None => SessionNotice::Closed(CloseReason::Local),
                    },
                    line = async {
                        match self.stdin.as_mut() {
                            Some(s) => s.recv().await,
                            None => std::future::pending().await,
                        }
                    }, if stdin_open => {
                        match line {
                            Some(Ok(l)) => {
                                let m = session.send_text(&l).await.map_err(|e| {
                                    fail(EXIT_SESSION, format!("sending {l:?}: {e}"))
                                })?;
                                self.out.event(json!({
                                    "event": "sending",
                                    "message_id": m.message_id,
                                    "content_type": "text/plain",
                                    "bytes": l.len(),
                                }));
                                pending.insert(m.message_id.clone(), Pending { what: format!("text {l:?}") });
                            }
                            Some(Err(e)) => {
                                eprintln!("msrp: reading stdin: {e}; treating it as closed");
                                stdin_open = false;
                                sending_done = true;
                            }
                            None => {
                                stdin_open = false;
                                sending_done = true;
                            }
                        }
                        last_activity = tokio::time::Instant::now();
                        continue;
                    }
                    _ = tick.tick() => {
                        // A file being read into the session is progress: the core takes
                        // bytes only as chunks go out, so a long transfer is not "idle".
                        let total: u64 = file_counters.iter().map(|c| c.load(Ordering::Relaxed)).sum();
                        if total != last_total {
                            last_total = total;
                            last_activity = tokio::time::Instant::now();
                        }
                        continue;
                    }
                    () = interrupted(&mut int) => {
                        for b in &bars {
                            b.finish_and_clear();
                        }
                        let list: Vec<String> = pending.values().map(|p| p.what.clone()).collect();
                        return Err(self.interrupted_close(&mut session, list, received).await);
                    }
                    () = tokio::time::sleep_until(idle_deadline), if waiting_for_peer => {
                        let t = timeout.as_secs();
                        let mut what = Vec::new();
                        if !pending.is_empty() {
                            let list: Vec<&str> = pending.values().map(|p| p.what.as_str()).collect();
                            what.push(format!("no acknowledgement for {}", list.join(", ")));
                        }
                        if received < self.args.count {
                            what.push(format!("received {received} of {} messages", self.args.count));
                        }
                        let msg = format!("nothing happened for {t} s: {}", what.join("; "));
                        session.close();
                        self.out.fail_pending(&pending, |p| {
                            format!("no acknowledgement for {} within {t} s", p.what)
                        });
                        self.out.event(json!({"event": "closed", "reason": msg}));
                        return Err(fail(EXIT_TIMEOUT, msg));
                    }
                }
            };
            last_activity = tokio::time::Instant::now();
            match notice {
                SessionNotice::Connected => {}
                SessionNotice::Sent { message_id } | SessionNotice::Delivered { message_id } => {
                    if pending.remove(&message_id).is_some() {
                        self.out
                            .event(json!({"event": "delivered", "message_id": message_id}));
                        if self.out.verbose > 0 && !self.out.json {
                            eprintln!("msrp: delivered {message_id}");
                        }
                    }
                }
                SessionNotice::DeliveryProgress { .. } => {}
                SessionNotice::Failed(f) => {
                    let what = pending
                        .remove(&f.message_id)
                        .map(|p| p.what)
                        .unwrap_or_else(|| format!("message {}", f.message_id));
                    self.out.event(json!({
                        "event": "failed",
                        "direction": "out",
                        "message_id": f.message_id,
                        "status": f.status.as_u16(),
                        "reason": f.reason,
                    }));
                    // The session is closed now: the other unacknowledged messages are not
                    // confirmed either.
                    self.out.fail_pending(&pending, |p| {
                        format!(
                            "session closed before {} was acknowledged: message {} failed",
                            p.what, f.message_id
                        )
                    });
                    session.close();
                    self.out
                        .event(json!({"event": "closed", "reason": "a message failed"}));
                    return Err(fail(
                        EXIT_SESSION,
                        format!("sending {what} failed with {}: {}", f.status, f.reason),
                    ));
                }
                SessionNotice::IncomingStarted {
                    message_id,
                    content_type,
                    total,
                    content_disposition,
                } => {
                    let ct = content_type.unwrap_or_default();
                    let inc = self
                        .open_incoming(
                            &message_id,
                            ct,
                            total,
                            content_disposition.as_deref(),
                            &mut file_selector_used,
                        )
                        .await?;
                    incoming.insert(message_id, inc);
                }
                SessionNotice::IncomingData {
                    message_id,
                    offset,
                    data,
                } => {
                    if let Some(inc) = incoming.get_mut(&message_id) {
                        if let Err(e) = inc.writer.write_at(offset, &data).await {
                            let inc = incoming.remove(&message_id).expect("present");
                            if let Some((tmp, _)) = &inc.paths {
                                let _ = tokio::fs::remove_file(tmp).await;
                            }
                            session.close();
                            let msg = format!("saving message {message_id} failed: {e}");
                            self.out.event(json!({"event": "closed", "reason": msg}));
                            return Err(fail(EXIT_SESSION, msg));
                        }
                    }
                }
                SessionNotice::IncomingComplete { message_id, size } => {
                    if let Some(inc) = incoming.remove(&message_id) {
                        self.complete_incoming(&message_id, size, inc).await?;
                        received += 1;
                    }
                }
                SessionNotice::IncomingAborted {
                    message_id,
                    received: got,
                    reason,
                } => {
                    if let Some(inc) = incoming.remove(&message_id) {
                        if let Some((tmp, _)) = &inc.paths {
                            let _ = tokio::fs::remove_file(tmp).await;
                        }
                    }
                    aborted_in.push(format!(
                        "incoming message {message_id} incomplete (aborted after {got} bytes: {reason})"
                    ));
                    self.out.event(json!({
                        "event": "failed",
                        "direction": "in",
                        "message_id": message_id,
                        "status": null,
                        "reason": format!("incoming message aborted after {got} bytes: {reason}"),
                    }));
                    self.out
                        .note(format!("incoming message {message_id} aborted: {reason}"));
                }
                SessionNotice::Closed(reason) => {
                    for b in &bars {
                        b.abandon();
                    }
                    for (tmp, _) in incoming.values().filter_map(|i| i.paths.as_ref()) {
                        let _ = tokio::fs::remove_file(tmp).await;
                    }
                    // Nothing of ours is lost and we got what we waited for: a success, even
                    // when the peer closed first while our stdin was still open (chat).
                    let done =
                        texts.is_empty() && pending.is_empty() && received >= self.args.count;
                    if done {
                        self.out
                            .event(json!({"event": "closed", "reason": reason.to_string()}));
                        self.out.note(format!("session closed: {reason}"));
                        return Ok(());
                    }
                    for (id, p) in &pending {
                        self.out.event(json!({
                            "event": "failed",
                            "direction": "out",
                            "message_id": id,
                            "status": 408,
                            "reason": format!("session ended before {} was acknowledged: {reason}", p.what),
                        }));
                    }
                    for id in incoming.keys() {
                        self.out.event(json!({
                            "event": "failed",
                            "direction": "in",
                            "message_id": id,
                            "status": null,
                            "reason": format!("session ended before the message was complete: {reason}"),
                        }));
                    }
                    self.out
                        .event(json!({"event": "closed", "reason": reason.to_string()}));
                    let mut missing = Vec::new();
                    if !pending.is_empty() {
                        let list: Vec<&str> = pending.values().map(|p| p.what.as_str()).collect();
                        missing.push(format!("unacknowledged: {}", list.join(", ")));
                    }
                    missing.extend(aborted_in.iter().cloned());
                    if !incoming.is_empty() {
                        missing.push(format!("{} incoming message(s) incomplete", incoming.len()));
                    }
                    if received < self.args.count {
                        missing.push(format!(
                            "received {received} of {} messages",
                            self.args.count
                        ));
                    }
                    if !texts.is_empty() {
                        missing.push(format!("{} text(s) not sent", texts.len()));
                    }
                    if stdin_open {
                        missing.push("stdin was still open".into());
                    }
                    return Err(fail(
                        EXIT_SESSION,
                        format!("the session ended: {reason} ({})", missing.join("; ")),
                    ));
                }
            }
        }
    }

    async fn open_incoming(
        &self,
        message_id: &str,
        content_type: String,
        total: Option<u64>,
        disposition: Option<&str>,
        selector_used: &mut bool,
    ) -> anyhow::Result<Incoming> {
        let text = is_text(&content_type);
        // RFC 5547 §8 / RFC 2183: a Content-Disposition filename names the file (the peer's
        // name: sanitised below, never a path).
        let disposed = disposition.and_then(msrp::disposition_filename);
        // RFC 5547: the peer's a=file-selector names the file this session carries.
        let selector = self.neg.remote_file.as_ref().filter(|fs| {
            !*selector_used
                && fs.file_type.as_deref().is_none_or(|t| {
                    t.split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .eq_ignore_ascii_case(content_type.split(';').next().unwrap_or("").trim())
                })
                && fs.size.is_none_or(|s| total.is_none_or(|t| t == s))
        });
        let save =
            self.args.recv_dir.is_some() && (!text || selector.is_some() || disposed.is_some());
        let mut paths = None;
        let mut file = None;
        if let (true, Some(dir)) = (save, &self.args.recv_dir) {
            // The SDP's file-selector (what was negotiated, RFC 5547) first, then the
            // message's Content-Disposition filename, then the Message-ID.
            let name = selector
                .and_then(selector_name)
                .and_then(|n| sanitize_file_name(&n))
                .or_else(|| disposed.as_deref().and_then(sanitize_file_name))
                .or_else(|| sanitize_file_name(message_id))
                .unwrap_or_else(|| "message".into());
            if selector.is_some() {
                *selector_used = true;
            }
            let tmp = dir.join(format!(
                ".{}.part",
                sanitize_file_name(message_id).unwrap_or_else(|| "msg".into())
            ));
            let f = tokio::fs::File::create(&tmp)
                .await
                .with_context(|| format!("creating {}", tmp.display()))?;
            file = Some(tokio::io::BufWriter::with_capacity(256 * 1024, f));
            paths = Some((tmp, dir.join(name)));
        }
        Ok(Incoming {
            writer: SequentialWriter::new(
                BodySink {
                    hasher: Sha256::new(),
                    bytes: 0,
                    mem: text.then(Vec::new),
                    file,
                },
                REORDER_LIMIT,
            ),
            content_type,
            paths,
            text,
        })
    }

    async fn complete_incoming(
        &self,
        message_id: &str,
        size: u64,
        inc: Incoming,
    ) -> anyhow::Result<()> {
        let mut sink = inc
            .writer
            .finish()
            .await
            .with_context(|| format!("writing message {message_id}"))?;
        if let Some(f) = sink.file.as_mut() {
            use tokio::io::AsyncWriteExt;
            f.flush()
                .await
                .with_context(|| format!("writing message {message_id}"))?;
        }
        let saved = match inc.paths {
            Some((tmp, wanted)) => {
                let dir = wanted.parent().unwrap_or(Path::new("."));
                let name = wanted
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| message_id.to_string());
                let dest = free_path(dir, &name);
                tokio::fs::rename(&tmp, &dest)
                    .await
                    .with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
                Some(dest)
            }
            None => None,
        };
        let sha = hex::encode(sink.hasher.finalize());
        let body = if inc.text {
            sink.mem
                .as_ref()
                .map(|m| String::from_utf8_lossy(m).into_owned())
        } else {
            None
        };
        let mut ev = json!({
            "event": "message",
            "message_id": message_id,
            "content_type": inc.content_type,
            "bytes": sink.bytes.max(size),
            "sha256": sha,
        });
        if let Some(b) = &body {
            ev["body"] = Value::String(b.clone());
        }
        if let Some(p) = &saved {
            ev["path"] = Value::String(p.display().to_string());
        }
        self.out.event(ev);
        if !self.out.json {
            match (&body, &saved) {
                (Some(b), None) => {
                    let line = b
                        .trim_end_matches(['\r', '\n'])
                        .replace('\r', "\\r")
                        .replace('\n', "\\n");
                    let mut o = std::io::stdout().lock();
                    let _ = writeln!(o, "{line}");
                    let _ = o.flush();
                }
                (_, Some(p)) => eprintln!(
                    "msrp: received {} ({}, {} bytes, sha256 {sha})",
                    p.display(),
                    inc.content_type,
                    sink.bytes
                ),
                (None, None) => eprintln!(
                    "msrp: received message {message_id} ({}, {} bytes, sha256 {sha}; use --recv-dir to save it)",
                    inc.content_type, sink.bytes
                ),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_cannot_escape_the_directory() {
        assert_eq!(
            sanitize_file_name("../../etc/passwd").as_deref(),
            Some("passwd")
        );
        assert_eq!(
            sanitize_file_name("..\\..\\boot.ini").as_deref(),
            Some("boot.ini")
        );
        assert_eq!(sanitize_file_name("/abs/x.txt").as_deref(), Some("x.txt"));
        assert_eq!(sanitize_file_name(".."), None);
        assert_eq!(sanitize_file_name("dir/"), None);
        assert_eq!(sanitize_file_name(".hidden").as_deref(), Some("hidden"));
        assert_eq!(sanitize_file_name("a\u{0}b\nc").as_deref(), Some("abc"));
        assert_eq!(
            sanitize_file_name(&"é".repeat(300)).map(|s| s.len()),
            Some(200)
        );
    }

    #[test]
    fn file_selector_names_are_percent_decoded() {
        let fs = FileSelector::parse("name:\"my%20file.txt\" size:3").unwrap();
        assert_eq!(selector_name(&fs).as_deref(), Some("my file.txt"));
        let fs = FileSelector::parse("name:\"bad%2\"").unwrap();
        assert_eq!(selector_name(&fs).as_deref(), Some("bad%2"));
    }
}
