//! `msrp load`: a load generator for MSRP sessions, directly between endpoints of this
//! process or through relays (RFC 4976).
//!
//! Each of the `--sessions` sessions is a pair of [`MsrpEndpoint`]s in this process: the
//! sender offers, the receiver answers (SDP offer/answer, RFC 6135), and with `--relay` both
//! authenticate to the relays first (RFC 4976 §5.1) so every message crosses them. The sender
//! sends `--size`-byte messages (cut into `--chunk-size` chunks, RFC 4975 §7.1) at `--rate`
//! messages per second in total (0: as fast as the `--window` allows: messages sent and not
//! yet received complete, per session), for `--count` messages in total or for `--duration`
//! seconds. The window is end to end on purpose: relays acknowledge hop by hop (RFC 4976
//! §6.4), so a window of unacknowledged messages would let a relay that answers `200` before
//! forwarding queue without bound.
//!
//! Every body starts with a 24-byte header (magic `MLD1`, session index, sequence number, send
//! time in nanoseconds since the start of the run, little endian); the rest is filler. The
//! receiver checks the header and the size, counts each sequence number once (a second copy is
//! a duplicate), and measures the delivery latency (send to complete message). The sender
//! measures the acknowledgement latency (send to the `200 OK` of the last chunk, hop by hop:
//! from the first relay when there is one, RFC 4976 §6.4).
//!
//! `--receivers-per-endpoint N` (with `--relay`) changes the topology: only the senders
//! authenticate at the relays, each on its own connection with its own Use-Path; the
//! receivers are not behind a relay and are reached by the last relay directly. N receivers
//! share one endpoint (one listener), and the relay reuses one outbound connection per
//! authority (RFC 4975 §5.4, RFC 4976 §6.3), so it carries their sessions over one
//! connection per receiving endpoint. The relay then holds `sessions + sessions / N`
//! connections instead of `2 x sessions` (10,000 sessions: 10,100 with N = 100).
//!
//! With `--rate`, the sessions' first messages are spread over one sending interval, so that
//! the total rate is even rather than a burst of one message per session every interval.
//!
//! `--idle N` instead opens N connections to the first relay, authenticates each (one Use-Path
//! per connection) and holds them idle, for measuring the relay's memory per session.
//!
//! Traffic goes only to loopback or to the documentation ranges used inside test network
//! namespaces (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) unless
//! `--allow-non-loopback` is given.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use msrp::proto::message::{Event as ParseEvent, Limits, Parser};
use msrp::proto::relay::client::{RelayClient, RelayClientConfig, RelayEvent, RelaySpec};
use msrp::proto::relay::digest::Credentials;
use msrp::proto::sdp::{SdpAnswer, SdpOffer};
use msrp::proto::session::SessionConfig;
use msrp::proto::uri::{Host, MsrpUri, Scheme};
use msrp::{MsrpEndpoint, MsrpSession, Options, Reports, SessionNotice, SessionSender};
use rand::{RngCore, SeedableRng};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::session::Failure;

/// Exit status when messages were lost, duplicated, corrupted or refused.
pub const EXIT_LOSS: i32 = 4;
/// Bytes of the header at the start of every body.
pub const HEADER_LEN: usize = 24;
const MAGIC: &[u8; 4] = b"MLD1";
const CONTENT_TYPE: &str = "application/octet-stream";
/// Concurrent AUTH handshakes in `--idle` mode.
const IDLE_CONCURRENCY: usize = 64;

/// Arguments of `msrp load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Number of sessions (each a sender and a receiver endpoint in this process).
    #[arg(long, value_name = "N", default_value_t = 1)]
    sessions: usize,
    /// Messages to send in total (spread over the sessions); default 1000 unless --duration.
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    count: Option<u64>,
    /// Send for this many seconds instead of a --count (with --idle: hold the connections
    /// this long; default until SIGTERM or Ctrl-C).
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Messages per second in total; 0 sends as fast as the --window allows.
    #[arg(long, value_name = "MSGS_PER_S", default_value_t = 0.0)]
    rate: f64,
    /// Body size of each message in octets (at least 24: the sequence header).
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    size: usize,
    /// Largest chunk body in octets, direct and through relays alike (default: the
    /// session defaults, 1 MiB direct and 8 KiB through relays; keep it under 11 KiB through
    /// Kamailio).
    #[arg(long, value_name = "BYTES")]
    chunk_size: Option<usize>,
    /// Messages in flight per session (sent and not yet received complete, or failed)
    /// before the sender waits.
    #[arg(long, value_name = "N", default_value_t = 16)]
    window: usize,
    /// Local IP address of the endpoints (port chosen by the system).
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    listen: IpAddr,
    /// A relay for both ends of each session, e.g. `msrp://127.0.0.1:2855;tcp`; repeat for
    /// a chain, the one connected to first. Plain TCP (`msrp:`) only.
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
    /// File whose first line is `user:password`, instead of --relay-user/--relay-password.
    #[arg(long, value_name = "FILE", conflicts_with = "relay_password")]
    relay_credentials: Option<PathBuf>,
    /// With --relay: only the senders authenticate at the relays; the receivers are reached
    /// by the last relay directly, N sessions per receiving endpoint (one listener, one
    /// connection from the relay), so the relay holds sessions + sessions/N connections
    /// instead of 2 x sessions.
    #[arg(long, value_name = "N", requires = "relay", conflicts_with = "idle")]
    receivers_per_endpoint: Option<usize>,
    /// Instead of sending: open N connections to the first --relay, AUTH on each and hold
    /// them idle (prints an `idle_ready` event once all are authenticated).
    #[arg(long, value_name = "N", conflicts_with_all = ["count", "rate"])]
    idle: Option<usize>,
    /// Seconds to wait for the last messages after sending stopped.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    drain_timeout: u64,
    /// Seconds allowed for each setup step (AUTH, connection).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    timeout: u64,
    /// Print a progress line (a `progress` event with --json) every SECS seconds.
    #[arg(long, value_name = "SECS")]
    progress: Option<f64>,
    /// Allow addresses other than loopback and the documentation ranges (sends real load to
    /// real networks: only with the owner's consent).
    #[arg(long)]
    allow_non_loopback: bool,
    /// Print JSON events on standard output, ending with one `result` object.
    #[arg(long)]
    json: bool,
}

// ---- validation --------------------------------------------------------------------------

/// Loopback, or the documentation ranges used inside test network namespaces.
fn is_test_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || (o[0], o[1], o[2]) == (192, 0, 2)
                || (o[0], o[1], o[2]) == (198, 51, 100)
                || (o[0], o[1], o[2]) == (203, 0, 113)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback() || (s[0], s[1]) == (0x2001, 0x0db8)
        }
    }
}

fn check_address(what: &str, host: &Host, allow: bool) -> anyhow::Result<()> {
    if allow {
        return Ok(());
    }
    let ok = match host {
        Host::Name(n) => n.eq_ignore_ascii_case("localhost"),
        h => h.ip().is_some_and(is_test_address),
    };
    if !ok {
        bail!(
            "{what}: {host} is not a loopback or documentation (test namespace) address; \
             msrp load refuses to send load elsewhere unless --allow-non-loopback is given"
        );
    }
    Ok(())
}

/// Relays with their credentials, from the flags.
fn relay_specs(a: &LoadArgs) -> anyhow::Result<Vec<RelaySpec>> {
    if a.relay.is_empty() {
        if a.relay_user.is_some() || a.relay_credentials.is_some() {
            bail!("--relay-user/--relay-credentials need --relay URI");
        }
        return Ok(Vec::new());
    }
    let (user, pass) = match (&a.relay_user, &a.relay_password, &a.relay_credentials) {
        (Some(u), Some(p), None) => (u.clone(), p.clone()),
        (None, None, Some(f)) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("--relay-credentials {}", f.display()))?;
            let line = text.lines().next().unwrap_or("");
            match line.split_once(':') {
                Some((u, p)) if !u.is_empty() => (u.to_string(), p.to_string()),
                _ => bail!(
                    "--relay-credentials {}: expected `user:password` on the first line",
                    f.display()
                ),
            }
        }
        _ => bail!(
            "--relay needs --relay-user NAME with --relay-password PASS, or --relay-credentials FILE"
        ),
    };
    let credentials =
        Credentials::new(user, pass).map_err(|e| anyhow!("relay credentials: {e}"))?;
    let mut out = Vec::new();
    for r in &a.relay {
        let uri = MsrpUri::parse(r).map_err(|e| anyhow!("--relay {r}: {e}"))?;
        if uri.scheme != Scheme::Msrp {
            bail!("--relay {r}: only msrp: (plain TCP) relays are supported");
        }
        if uri.port.is_none() {
            bail!("--relay {r}: the URI needs a port (RFC 4975 §8.2)");
        }
        check_address(&format!("--relay {r}"), &uri.host, a.allow_non_loopback)?;
        out.push(RelaySpec {
            uri,
            credentials: credentials.clone(),
        });
    }
    Ok(out)
}

/// What `run` does, checked before anything starts.
struct Plan {
    sessions: usize,
    /// Messages per session (the first `count % sessions` sessions send one more).
    count: Option<u64>,
    duration: Option<Duration>,
    /// Interval between two messages of one session.
    interval: Option<Duration>,
    size: usize,
    /// The session settings (chunk sizes).
    session: SessionConfig,
    window: usize,
    relays: Vec<RelaySpec>,
    /// Receivers per shared receiving endpoint, not behind the relays (`None`: each session
    /// has its own receiving endpoint, behind the relays when there are some).
    receivers_per_endpoint: Option<usize>,
    timeout: Duration,
    drain: Duration,
    progress: Option<Duration>,
    json: bool,
}

fn secs(what: &str, v: f64) -> anyhow::Result<Duration> {
    if !v.is_finite() || v <= 0.0 || v > 1e7 {
        bail!("{what} must be a positive number of seconds, not {v}");
    }
    Ok(Duration::from_secs_f64(v))
}

fn plan(a: &LoadArgs) -> anyhow::Result<Plan> {
    if !a.allow_non_loopback && !is_test_address(a.listen) {
        bail!(
            "--listen {}: not a loopback or documentation (test namespace) address; \
             give --allow-non-loopback to use it",
            a.listen
        );
    }
    let relays = relay_specs(a)?;
    if a.sessions == 0 || a.sessions > 100_000 {
        bail!("--sessions must be between 1 and 100000");
    }
    if a.size < HEADER_LEN {
        bail!("--size must be at least {HEADER_LEN} octets (the sequence header)");
    }
    if a.size > 1 << 30 {
        bail!("--size must be at most 1 GiB");
    }
    if a.chunk_size.is_some_and(|c| c == 0 || c > 64 * 1024 * 1024) {
        bail!("--chunk-size must be between 1 and 67108864");
    }
    if a.window == 0 || a.window > 4096 {
        bail!("--window must be between 1 and 4096");
    }
    if u64::try_from(a.size.saturating_mul(a.window).saturating_mul(a.sessions)).unwrap_or(u64::MAX)
        > 4 << 30
    {
        bail!("--size x --window x --sessions exceeds 4 GiB of bodies in flight; lower one");
    }
    if !a.rate.is_finite() || a.rate < 0.0 {
        bail!("--rate must be 0 (as fast as possible) or a positive number");
    }
    let duration = a.duration.map(|d| secs("--duration", d)).transpose()?;
    let count = match (a.count, duration) {
        (Some(0), _) => bail!("--count must be at least 1"),
        (Some(c), _) => Some(c),
        (None, Some(_)) => None,
        (None, None) => Some(1000),
    };
    if let Some(c) = count {
        if c < a.sessions as u64 {
            bail!("--count {c} is smaller than --sessions {}", a.sessions);
        }
    }
    if a.receivers_per_endpoint
        .is_some_and(|n| n == 0 || n > 100_000)
    {
        bail!("--receivers-per-endpoint must be between 1 and 100000");
    }
    let mut session = SessionConfig::default();
    if let Some(c) = a.chunk_size {
        session.max_chunk_size = c;
        session.relay_chunk_size = c;
    }
    let interval = (a.rate > 0.0).then(|| Duration::from_secs_f64(a.sessions as f64 / a.rate));
    Ok(Plan {
        sessions: a.sessions,
        count,
        duration,
        interval,
        size: a.size,
        session,
        window: a.window,
        relays,
        receivers_per_endpoint: a.receivers_per_endpoint,
        timeout: Duration::from_secs(a.timeout.max(1)),
        drain: Duration::from_secs(a.drain_timeout),
        progress: a.progress.map(|p| secs("--progress", p)).transpose()?,
        json: a.json,
    })
}

// ---- statistics --------------------------------------------------------------------------

/// A latency histogram in microseconds with about 0.2 % resolution and fixed memory: values
/// below 1024 µs have their own bucket, larger ones 512 buckets per power of two.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const SUB: u64 = 512;

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    /// Empty.
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; (2 * SUB + 64 * SUB) as usize],
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < 2 * SUB {
            return v as usize;
        }
        // v >= 1024: shift so that the mantissa is in [512, 1024).
        let shift = 63 - v.leading_zeros() as u64 - 9;
        let mantissa = v >> shift;
        (2 * SUB + (shift - 1) * SUB + (mantissa - SUB)) as usize
    }

    /// The smallest value of bucket `i` (the value reported for it).
    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < 2 * SUB {
            return i;
        }
        let shift = (i - 2 * SUB) / SUB + 1;
        let mantissa = (i - 2 * SUB) % SUB + SUB;
        mantissa << shift
    }

    /// Records one value.
    pub fn record(&mut self, v: u64) {
        let i = Self::index(v).min(self.counts.len() - 1);
        self.counts[i] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    /// Number of values.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0..=1), rounded down to its bucket; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i).min(self.max);
            }
        }
        self.max
    }

    /// The largest value recorded.
    pub fn max(&self) -> u64 {
        self.max
    }

    fn summary_ms(&self) -> serde_json::Value {
        let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
        json!({
            "samples": self.len(),
            "p50": ms(self.quantile(0.50)),
            "p90": ms(self.quantile(0.90)),
            "p99": ms(self.quantile(0.99)),
            "max": ms(self.max),
        })
    }
}

/// Counters shared by the sender and receiver tasks.
#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
    received: AtomicU64,
    duplicated: AtomicU64,
    corrupt: AtomicU64,
    aborted: AtomicU64,
    bytes_received: AtomicU64,
    /// Nanoseconds since the start at the last complete message.
    last_rx_ns: AtomicU64,
    ack_latency: Mutex<Histogram>,
    delivery_latency: Mutex<Histogram>,
    /// First send failure, for the message.
    first_error: Mutex<Option<String>>,
}

impl Stats {
    fn note_error(&self, e: String) {
        let mut g = self.first_error.lock().expect("not poisoned");
        if g.is_none() {
            *g = Some(e);
        }
    }
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// Writes the sequence header into `body`.
pub fn write_header(body: &mut [u8], session: u32, seq: u64, sent_ns: u64) {
    body[..4].copy_from_slice(MAGIC);
    body[4..8].copy_from_slice(&session.to_le_bytes());
    body[8..16].copy_from_slice(&seq.to_le_bytes());
    body[16..24].copy_from_slice(&sent_ns.to_le_bytes());
}

/// Reads a sequence header: (session, seq, sent_ns), `None` when it is not one.
pub fn read_header(h: &[u8]) -> Option<(u32, u64, u64)> {
    if h.len() < HEADER_LEN || &h[..4] != MAGIC {
        return None;
    }
    let session = u32::from_le_bytes(h[4..8].try_into().ok()?);
    let seq = u64::from_le_bytes(h[8..16].try_into().ok()?);
    let ns = u64::from_le_bytes(h[16..24].try_into().ok()?);
    Some((session, seq, ns))
}

/// Sequence numbers seen, as a growable bitset.
#[derive(Default)]
struct Seen(Vec<u64>);

impl Seen {
    /// Marks `seq`; false when it was already marked.
    fn insert(&mut self, seq: u64) -> bool {
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if w >= self.0.len() {
            self.0.resize(w + 1, 0);
        }
        let fresh = self.0[w] & (1 << b) == 0;
        self.0[w] |= 1 << b;
        fresh
    }
}

// ---- sessions ----------------------------------------------------------------------------

struct Pair {
    sender: SessionSender,
    /// Keep the endpoints (their drivers stop when dropped): the sender's, and the
    /// receiver's unless it is a shared one.
    _endpoints: (MsrpEndpoint, Option<MsrpEndpoint>),
    /// Drains the sender session's notices.
    sender_notices: tokio::task::JoinHandle<()>,
    receiver: MsrpSession,
}

async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    t: Duration,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(t, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(anyhow!("{what}: {e}")),
        Err(_) => Err(anyhow!("{what}: no outcome within {} s", t.as_secs())),
    }
}

fn endpoint_options(p: &Plan, listen: IpAddr) -> Options {
    let mut opts = Options::new(SocketAddr::new(listen, 0));
    opts.session = p.session.clone();
    opts.endpoint.connect_timeout = p.timeout;
    opts
}

/// Sets up session `i`: a sender endpoint, and a receiver endpoint of its own or the
/// `shared` one (then not behind the relays: the last relay connects to it).
async fn make_pair(
    p: &Plan,
    listen: IpAddr,
    i: usize,
    shared: Option<&MsrpEndpoint>,
) -> anyhow::Result<Pair> {
    let opts = endpoint_options(p, listen);
    let a = MsrpEndpoint::bind(opts.clone())
        .await
        .with_context(|| format!("session {i}: binding the sender on {listen}"))?;
    let own = match shared {
        Some(_) => None,
        None => Some(
            MsrpEndpoint::bind(opts)
                .await
                .with_context(|| format!("session {i}: binding the receiver on {listen}"))?,
        ),
    };
    let b = shared.or(own.as_ref()).expect("one of the two");
    let mut acfg = a.local_config();
    // A fresh session id per call, also on a shared endpoint.
    let mut bcfg = b.local_config();
    if !p.relays.is_empty() {
        // RFC 4976 §5.1: AUTH to the relays first; a=path then starts with the Use-Path and
        // the session runs over the connection to the first relay (RFC 6135 §4.5). A shared
        // receiver is not behind the relays: its a=path is its own URI only, and the last
        // relay connects to it (RFC 4976 §6.3).
        let mut who_auth = vec![(&a, &mut acfg, "sender")];
        if shared.is_none() {
            who_auth.push((b, &mut bcfg, "receiver"));
        }
        for (ep, cfg, who) in who_auth {
            let me = MsrpUri::new(
                Scheme::Msrp,
                cfg.host.clone(),
                cfg.port,
                cfg.session_id.clone(),
            );
            let mut rc = RelayClientConfig::new(p.relays.clone(), me);
            rc.transaction_timeout = p.timeout;
            let binding = bounded(
                &format!("session {i}: {who} AUTH"),
                p.timeout + Duration::from_secs(1),
                ep.authenticate_relays(rc),
            )
            .await?;
            cfg.relay_path = binding.use_path;
        }
    }
    let offered = a
        .create_offer(&acfg)
        .await
        .with_context(|| format!("session {i}: creating the offer"))?;
    let offer = SdpOffer::parse(&offered.offer().to_string())?;
    let (answer, mut bs) = b
        .answer_offer(&offer, &bcfg)
        .await
        .with_context(|| format!("session {i}: answering"))?;
    let answer = SdpAnswer::parse(&answer.to_string())?;
    let mut asess = a
        .accept_answer(offered, &answer)
        .await
        .with_context(|| format!("session {i}: accepting the answer"))?;
    let (ra, rb) = tokio::join!(
        tokio::time::timeout(p.timeout, asess.connected()),
        tokio::time::timeout(p.timeout, bs.connected())
    );
    for (who, r) in [("sender", ra), ("receiver", rb)] {
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(why)) => bail!("session {i}: the {who} closed before connecting: {why}"),
            Err(_) => bail!(
                "session {i}: the {who} did not connect within {} s",
                p.timeout.as_secs()
            ),
        }
    }
    let sender = asess.sender();
    // Notices must be read or the driver stops reading from the network.
    let sender_notices = tokio::spawn(async move { while asess.next_notice().await.is_some() {} });
    Ok(Pair {
        sender,
        _endpoints: (a, own),
        sender_notices,
        receiver: bs,
    })
}

struct SendJob {
    index: u32,
    quota: Option<u64>,
    deadline: Option<Instant>,
    interval: Option<Duration>,
    window: usize,
    /// Permits for messages in flight; the receiver gives one back per message.
    permits: Arc<tokio::sync::Semaphore>,
    /// Longest wait for a permit before the sender gives up.
    stall: Duration,
    template: Arc<Vec<u8>>,
    t0: Instant,
    /// Wait before the first message (with --rate: this session's place in the interval).
    first_delay: Duration,
}

async fn send_loop(job: SendJob, sender: SessionSender, stats: Arc<Stats>) {
    type Acked = (Result<msrp::Outcome, msrp::SendFailure>, Duration);
    let mut inflight: JoinSet<Acked> = JoinSet::new();
    let record = |r: Option<Result<Acked, tokio::task::JoinError>>| match r {
        Some(Ok((Ok(_), took))) => {
            bump(&stats.acked);
            let us = took.as_micros() as u64;
            stats.ack_latency.lock().expect("not poisoned").record(us);
        }
        Some(Ok((Err(f), _))) => {
            bump(&stats.failed);
            stats.note_error(f.to_string());
            // A failed message will not arrive: its place in the window is free.
            job.permits.add_permits(1);
        }
        Some(Err(e)) => {
            bump(&stats.failed);
            stats.note_error(format!("outcome task: {e}"));
        }
        None => {}
    };
    // Spread the sessions' first messages over one interval (an even total rate).
    let mut next = Instant::now() + job.first_delay;
    let mut seq = 0u64;
    loop {
        if job.quota.is_some_and(|q| seq >= q) {
            break;
        }
        if let Some(iv) = job.interval {
            tokio::time::sleep_until(next).await;
            next += iv;
        }
        // Outcomes lag behind deliveries through relays; keep their tasks bounded too.
        while inflight.len() >= 4 * job.window {
            record(inflight.join_next().await);
        }
        while let Some(r) = inflight.try_join_next() {
            record(Some(r));
        }
        let permit = tokio::select! {
            p = job.permits.acquire() => p.ok(),
            _ = tokio::time::sleep(job.stall) => None,
        };
        let Some(permit) = permit else {
            stats.note_error(format!(
                "session {}: nothing delivered for {} s with {} messages in flight",
                job.index,
                job.stall.as_secs(),
                job.window
            ));
            break;
        };
        permit.forget();
        if job.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let mut body = job.template.as_ref().clone();
        let at = Instant::now();
        let ns = at.duration_since(job.t0).as_nanos() as u64;
        write_header(&mut body, job.index, seq, ns);
        match sender
            .send_bytes(CONTENT_TYPE, body, Reports::default())
            .await
        {
            Ok(out) => {
                bump(&stats.sent);
                inflight.spawn(async move {
                    let r = out.outcome().await;
                    (r, at.elapsed())
                });
            }
            Err(e) => {
                bump(&stats.failed);
                stats.note_error(format!("session {}: send: {e}", job.index));
                break;
            }
        }
        seq += 1;
    }
    while !inflight.is_empty() {
        record(inflight.join_next().await);
    }
}

async fn receive_loop(
    index: u32,
    mut session: MsrpSession,
    size: u64,
    t0: Instant,
    stats: Arc<Stats>,
    permits: Arc<tokio::sync::Semaphore>,
) {
    let mut heads: HashMap<String, Vec<u8>> = HashMap::new();
    let mut seen = Seen::default();
    while let Some(n) = session.next_notice().await {
        match n {
            SessionNotice::IncomingStarted { message_id, .. } => {
                heads.insert(message_id, Vec::with_capacity(HEADER_LEN));
            }
            SessionNotice::IncomingData {
                message_id,
                offset,
                data,
            } => {
                if let Some(h) = heads.get_mut(&message_id) {
                    // Body bytes come in order within a message; keep the first 24.
                    if offset as usize == h.len() && h.len() < HEADER_LEN {
                        let take = (HEADER_LEN - h.len()).min(data.len());
                        h.extend_from_slice(&data[..take]);
                    }
                }
            }
            SessionNotice::IncomingComplete {
                message_id,
                size: got,
            } => {
                let now = t0.elapsed().as_nanos() as u64;
                let h = heads.remove(&message_id).unwrap_or_default();
                match read_header(&h) {
                    Some((s, seq, sent_ns)) if s == index && got == size => {
                        if seen.insert(seq) {
                            permits.add_permits(1);
                            bump(&stats.received);
                            stats.bytes_received.fetch_add(got, Ordering::Relaxed);
                            stats.last_rx_ns.fetch_max(now, Ordering::Relaxed);
                            let us = now.saturating_sub(sent_ns) / 1000;
                            stats
                                .delivery_latency
                                .lock()
                                .expect("not poisoned")
                                .record(us);
                        } else {
                            bump(&stats.duplicated);
                        }
                    }
                    _ => bump(&stats.corrupt),
                }
            }
            SessionNotice::IncomingAborted { message_id, .. } => {
                heads.remove(&message_id);
                bump(&stats.aborted);
            }
            SessionNotice::Closed(_) => break,
            _ => {}
        }
    }
}

/// Prints events (JSON lines on stdout) or human lines (stderr for progress).
struct Out {
    json: bool,
}

impl Out {
    fn event(&self, v: serde_json::Value) {
        if self.json {
            println!("{v}");
        }
    }
    fn note(&self, s: impl AsRef<str>) {
        if !self.json {
            eprintln!("{}", s.as_ref());
        }
    }
}

/// Runs the command.
pub fn run(args: LoadArgs) -> anyhow::Result<()> {
    let idle = args.idle;
    let hold = args.duration;
    let p = plan(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match idle {
        Some(n) => rt.block_on(run_idle(p, n, hold)),
        None => rt.block_on(run_load(p, args.listen, args.rate)),
    }
}

async fn run_load(p: Plan, listen: IpAddr, rate: f64) -> anyhow::Result<()> {
    let out = Out { json: p.json };
    let mode = if p.relays.is_empty() {
        "direct"
    } else {
        "relay"
    };
    let relays: Vec<String> = p.relays.iter().map(|r| r.uri.to_string()).collect();
    let chunk_size = p.session.chunk_size(!p.relays.is_empty());
    let setup_start = Instant::now();
    let mut pairs = Vec::with_capacity(p.sessions);
    // Shared receiving endpoints (--receivers-per-endpoint), kept until the end.
    let mut shared: Vec<MsrpEndpoint> = Vec::new();
    for i in 0..p.sessions {
        let recv = match p.receivers_per_endpoint {
            Some(n) => {
                if i % n == 0 {
                    shared.push(
                        MsrpEndpoint::bind(endpoint_options(&p, listen))
                            .await
                            .with_context(|| {
                                format!("binding receiving endpoint {} on {listen}", i / n)
                            })?,
                    );
                }
                shared.last()
            }
            None => None,
        };
        pairs.push(make_pair(&p, listen, i, recv).await?);
    }
    out.event(json!({
        "event": "ready",
        "mode": mode,
        "relays": relays,
        "sessions": p.sessions,
        "receiving_endpoints": shared.len(),
        "setup_s": setup_start.elapsed().as_secs_f64(),
    }));
    out.note(format!(
        "msrp load: {} session(s) {} ready in {:.2} s",
        p.sessions,
        if p.relays.is_empty() {
            "direct".to_string()
        } else {
            format!("through {}", relays.join(" "))
        },
        setup_start.elapsed().as_secs_f64()
    ));

    let stats = Arc::new(Stats::default());
    let mut template = vec![0u8; p.size];
    for (k, b) in template.iter_mut().enumerate().skip(HEADER_LEN) {
        *b = b'a' + (k % 26) as u8;
    }
    let template = Arc::new(template);
    let t0 = Instant::now();
    let deadline = p.duration.map(|d| t0 + d);
    let mut senders = JoinSet::new();
    let mut receivers = JoinSet::new();
    let mut keep = Vec::new();
    for (i, pair) in pairs.into_iter().enumerate() {
        let quota = p.count.map(|c| {
            let n = p.sessions as u64;
            c / n + u64::from((i as u64) < c % n)
        });
        let permits = Arc::new(tokio::sync::Semaphore::new(p.window));
        let job = SendJob {
            permits: permits.clone(),
            stall: p.drain.max(Duration::from_secs(1)),
            index: i as u32,
            quota,
            deadline,
            interval: p.interval,
            window: p.window,
            template: template.clone(),
            t0,
            first_delay: p
                .interval
                .map(|iv| iv.mul_f64(i as f64 / p.sessions as f64))
                .unwrap_or_default(),
        };
        senders.spawn(send_loop(job, pair.sender.clone(), stats.clone()));
        receivers.spawn(receive_loop(
            i as u32,
            pair.receiver,
            p.size as u64,
            t0,
            stats.clone(),
            permits,
        ));
        keep.push((pair.sender, pair._endpoints, pair.sender_notices));
    }

    let progress = p.progress.map(|every| {
        let stats = stats.clone();
        let json = p.json;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(Instant::now() + every, every);
            let mut last = (0u64, Instant::now());
            loop {
                tick.tick().await;
                let rx = get(&stats.received);
                let now = Instant::now();
                let rate = (rx - last.0) as f64 / now.duration_since(last.1).as_secs_f64();
                last = (rx, now);
                let ev = json!({
                    "event": "progress",
                    "elapsed_s": round3(t0.elapsed().as_secs_f64()),
                    "sent": get(&stats.sent),
                    "acked": get(&stats.acked),
                    "received": rx,
                    "msgs_per_s": round3(rate),
                });
                if json {
                    println!("{ev}");
                } else {
                    eprintln!(
                        "  {:>7.1} s  sent {}  received {}  {:.0} msg/s",
                        t0.elapsed().as_secs_f64(),
                        get(&stats.sent),
                        rx,
                        rate
                    );
                }
            }
        })
    });

    while senders.join_next().await.is_some() {}
    let send_done = Instant::now();
    // The last messages may still be on their way: wait for every sent one (bounded).
    while get(&stats.received) + get(&stats.corrupt) < get(&stats.sent)
        && send_done.elapsed() < p.drain
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if let Some(t) = progress {
        t.abort();
    }
    for (s, _, _) in &keep {
        s.close();
    }
    // Receivers end with their session's Closed notice; bounded.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while receivers.join_next().await.is_some() {}
    })
    .await;
    receivers.abort_all();

    let sent = get(&stats.sent);
    let received = get(&stats.received);
    let lost = sent.saturating_sub(received);
    let duplicated = get(&stats.duplicated);
    let corrupt = get(&stats.corrupt);
    let failed = get(&stats.failed);
    let aborted = get(&stats.aborted);
    let elapsed = Duration::from_nanos(get(&stats.last_rx_ns)).max(Duration::from_micros(1));
    let secs = elapsed.as_secs_f64();
    let bytes = get(&stats.bytes_received);
    let msgs_per_s = received as f64 / secs;
    let mb_per_s = bytes as f64 / secs / 1e6;
    let ack = stats.ack_latency.lock().expect("not poisoned").clone();
    let del = stats.delivery_latency.lock().expect("not poisoned").clone();
    let first_error = stats.first_error.lock().expect("not poisoned").clone();
    out.event(json!({
        "event": "result",
        "mode": mode,
        "relays": relays,
        "sessions": p.sessions,
        "size": p.size,
        "chunk_size": chunk_size,
        "window": p.window,
        "rate": rate,
        "sent": sent,
        "acked": get(&stats.acked),
        "received": received,
        "lost": lost,
        "duplicated": duplicated,
        "corrupt": corrupt,
        "failed": failed,
        "aborted": aborted,
        // Microseconds: a short run's rates must agree with its duration (ms would be 3 %
        // off for a 30 ms run).
        "elapsed_s": round6(secs),
        "msgs_per_s": round3(msgs_per_s),
        "mb_per_s": round3(mb_per_s),
        "ack_latency_ms": ack.summary_ms(),
        "delivery_latency_ms": del.summary_ms(),
        "first_error": first_error,
    }));
    if !p.json {
        let ms = |us: u64| us as f64 / 1000.0;
        println!(
            "sent {sent}, received {received}, lost {lost}, duplicated {duplicated}, \
             corrupt {corrupt}, failed {failed}\n\
             {msgs_per_s:.1} messages/s, {mb_per_s:.3} MB/s over {secs:.3} s \
             ({} session(s), {} B messages, {} B chunks)\n\
             delivery latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}\n\
             200 OK latency ms:   p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
            p.sessions,
            p.size,
            chunk_size,
            ms(del.quantile(0.5)),
            ms(del.quantile(0.9)),
            ms(del.quantile(0.99)),
            ms(del.max()),
            ms(ack.quantile(0.5)),
            ms(ack.quantile(0.9)),
            ms(ack.quantile(0.99)),
            ms(ack.max()),
        );
    }
    drop(keep);
    drop(shared);
    if lost > 0 || duplicated > 0 || corrupt > 0 || failed > 0 {
        return Err(anyhow::Error::new(Failure {
            code: EXIT_LOSS,
            message: format!(
                "{lost} of {sent} messages lost, {duplicated} duplicated, {corrupt} corrupt, \
                 {failed} failed{}",
                first_error
                    .map(|e| format!(" (first failure: {e})"))
                    .unwrap_or_default()
            ),
        }));
    }
    Ok(())
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

// ---- idle sessions -----------------------------------------------------------------------

/// Connects to the first relay and authenticates (RFC 4976 §5.1) with our sans-IO relay
/// client; returns the open connection.
async fn idle_connection(
    relays: Vec<RelaySpec>,
    i: usize,
    timeout: Duration,
) -> anyhow::Result<TcpStream> {
    let first = &relays[0].uri;
    let port = first.port.expect("checked");
    let host = first.host.to_string();
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let mut stream = tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| anyhow!("connect {host}:{port}: timed out"))??;
    let _ = stream.set_nodelay(true);
    // Our URI (never dialled: the relay reaches us over this connection).
    let me = MsrpUri::new(
        Scheme::Msrp,
        Host::V4([127, 0, 0, 1].into()),
        9,
        format!("idle{i}"),
    );
    let mut rc = RelayClientConfig::new(relays, me);
    rc.transaction_timeout = timeout;
    let mut client = RelayClient::new(rc);
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut random = move |b: &mut [u8]| rng.fill_bytes(b);
    client.start(std::time::Instant::now());
    let mut parser = Parser::new(Limits::default());
    let mut buf = Vec::new();
    // AUTH, 401, AUTH with credentials, 200 per relay; bounded.
    for _ in 0..16 {
        if let Some(ev) = client.poll_event() {
            return match ev {
                RelayEvent::Authenticated { .. } => Ok(stream),
                RelayEvent::Failed(f) => Err(anyhow!("AUTH failed: {f}")),
            };
        }
        let Some(msg) = client.poll_transmit(std::time::Instant::now(), &mut random) else {
            bail!("the relay client has nothing to send and no outcome");
        };
        stream.write_all(&msg.encode()?).await?;
        let head = tokio::time::timeout(timeout, read_response(&mut stream, &mut parser, &mut buf))
            .await
            .map_err(|_| anyhow!("no AUTH response within {} s", timeout.as_secs()))??;
        client.handle_response(std::time::Instant::now(), &head);
    }
    bail!("AUTH did not complete after 16 exchanges")
}

async fn read_response(
    stream: &mut TcpStream,
    parser: &mut Parser,
    buf: &mut Vec<u8>,
) -> anyhow::Result<msrp::proto::message::MessageHead> {
    let mut head = None;
    loop {
        loop {
            let (used, ev) = parser
                .parse(buf)
                .map_err(|e| anyhow!("bad response: {e}"))?;
            let ev_head = match ev {
                None => {
                    buf.drain(..used);
                    break;
                }
                Some(ParseEvent::Head { head, .. }) => Some(head),
                Some(ParseEvent::Body(_)) => None,
                Some(ParseEvent::End(_)) => {
                    buf.drain(..used);
                    return head.ok_or_else(|| anyhow!("end-line without a head"));
                }
            };
            if ev_head.is_some() {
                head = ev_head;
            }
            buf.drain(..used);
        }
        if buf.len() > 64 * 1024 {
            bail!("response larger than 64 KiB");
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("the relay closed the connection");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn run_idle(p: Plan, n: usize, hold: Option<f64>) -> anyhow::Result<()> {
    let out = Out { json: p.json };
    if p.relays.is_empty() {
        bail!("--idle needs --relay URI (and credentials)");
    }
    if n == 0 || n > 1_000_000 {
        bail!("--idle must be between 1 and 1000000");
    }
    let start = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(IDLE_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.expect("never closed");
        let relays = p.relays.clone();
        let timeout = p.timeout;
        tasks.spawn(async move {
            let r = idle_connection(relays, i, timeout).await;
            drop(permit);
            r
        });
    }
    let mut conns = Vec::with_capacity(n);
    let mut failed = 0u64;
    let mut first_error = None;
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(s)) => conns.push(s),
            Ok(Err(e)) => {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    let setup = start.elapsed().as_secs_f64();
    out.event(json!({
        "event": "idle_ready",
        "sessions": n,
        "authenticated": conns.len(),
        "failed": failed,
        "setup_s": round3(setup),
        "first_error": first_error,
    }));
    out.note(format!(
        "msrp load: {} of {n} connections authenticated in {setup:.2} s{}; holding them",
        conns.len(),
        first_error
            .as_ref()
            .map(|e| format!(" (first failure: {e})"))
            .unwrap_or_default()
    ));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    let wait = async {
        match hold {
            Some(h) => tokio::time::sleep(Duration::from_secs_f64(h)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = wait => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    // Which connections the relay still holds open (a read would block).
    let mut open = 0u64;
    for c in &conns {
        let mut b = [0u8; 1];
        match c.try_read(&mut b) {
            Ok(0) => {}
            Ok(_) => open += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open += 1,
            Err(_) => {}
        }
    }
    let authenticated = conns.len() as u64;
    out.event(json!({
        "event": "result",
        "mode": "idle",
        "sessions": n,
        "authenticated": authenticated,
        "failed": failed,
        "still_open": open,
        "held_s": round3(start.elapsed().as_secs_f64() - setup),
    }));
    out.note(format!(
        "{authenticated} authenticated, {open} still open at the end, {failed} failed"
    ));
    drop(conns);
    if failed > 0 || open < authenticated {
        return Err(anyhow::Error::new(Failure {
            code: EXIT_LOSS,
            message: format!(
                "{failed} of {n} AUTHs failed, {} connections closed by the relay",
                authenticated - open
            ),
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_within_resolution() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (q, want) in [(0.5, 50_000u64), (0.9, 90_000), (0.99, 99_000)] {
            let got = h.quantile(q);
            let err = (got as f64 - want as f64).abs() / want as f64;
            assert!(err < 0.005, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.max(), 100_000);
        assert_eq!(h.len(), 100_000);
        // Small values are exact.
        let mut s = Histogram::new();
        for v in [3u64, 3, 7, 900] {
            s.record(v);
        }
        assert_eq!(s.quantile(0.5), 3);
        assert_eq!(s.quantile(0.75), 7);
        assert_eq!(s.quantile(1.0), 900);
        // Huge values do not overflow the buckets.
        s.record(u64::MAX / 2);
        assert_eq!(s.max(), u64::MAX / 2);
        assert_eq!(Histogram::new().quantile(0.5), 0);
    }

    #[test]
    fn bucket_values_round_down_monotonically() {
        let mut last = 0;
        for v in (0..5_000_000u64).step_by(997) {
            let i = Histogram::index(v);
            let lo = Histogram::value(i);
            assert!(lo <= v && v - lo <= v / 500 + 1, "{v} -> {lo}");
            assert!(i >= last);
            last = i;
        }
    }

    #[test]
    fn header_round_trips_and_rejects_other_bodies() {
        let mut b = vec![0u8; 30];
        write_header(&mut b, 7, 123_456_789, 42);
        assert_eq!(read_header(&b), Some((7, 123_456_789, 42)));
        assert_eq!(read_header(&b[..23]), None);
        b[0] = b'X';
        assert_eq!(read_header(&b), None);
    }

    #[test]
    fn seen_counts_each_sequence_number_once() {
        let mut s = Seen::default();
        assert!(s.insert(0));
        assert!(s.insert(1000));
        assert!(!s.insert(1000));
        assert!(!s.insert(0));
        assert!(s.insert(63));
    }

    #[test]
    fn only_loopback_and_documentation_addresses() {
        for ok in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "192.0.2.7",
            "198.51.100.1",
            "203.0.113.9",
            "2001:db8::1",
        ] {
            assert!(is_test_address(ok.parse().unwrap()), "{ok}");
        }
        for bad in [
            "10.0.0.1",
            "8.8.8.8",
            "192.0.3.1",
            "::",
            "0.0.0.0",
            "2001:4860::1",
        ] {
            assert!(!is_test_address(bad.parse().unwrap()), "{bad}");
        }
        assert!(check_address("x", &Host::Name("localhost".into()), false).is_ok());
        let e = check_address("--relay r", &Host::Name("relay.example.com".into()), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--allow-non-loopback"), "{e}");
        assert!(check_address("x", &Host::Name("relay.example.com".into()), true).is_ok());
    }
}
