//! `msrp sdp offer|answer|plan`: what our stack would offer and answer, and the connection
//! plan an offer/answer pair gives (RFC 4975 §8, RFC 6135).
//!
//! - `offer` prints an SDP offer on stdout.
//! - `answer --offer FILE` prints our answer on stdout; warnings go to stderr.
//! - `plan --offer FILE --answer FILE --side offerer|answerer` prints JSON with the keys
//!   `role`, `connect_to`, `local_path`, `remote_path`, `tls_role`, `warnings`.
//!
//! FILE may be `-` for stdin. Invalid SDP: a message naming the file, the line and the
//! problem, exit status 1.

use std::io::Read;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use msrp_proto::fingerprint::Fingerprint;
use msrp_proto::sdp::{
    create_answer, create_offer, plan, session_id_from_entropy, AcceptType, ConnectionPlan,
    LocalConfig, Reachability, SdpAnswer, SdpOffer, Side,
};
use msrp_proto::uri::MsrpUri;

/// `msrp sdp ...`
#[derive(Debug, Args)]
pub struct SdpArgs {
    #[command(subcommand)]
    command: SdpCommand,
}

#[derive(Debug, Subcommand)]
enum SdpCommand {
    /// Print the SDP offer our stack would send (RFC 6135 §4.2: actpass when reachable or
    /// relayed, else active with port 9).
    Offer(OfferArgs),
    /// Print the SDP answer our stack would give to an offer.
    Answer(AnswerArgs),
    /// Print the connection plan of an offer/answer pair as JSON.
    Plan(PlanArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReachabilityArg {
    /// Our address is globally reachable.
    Reachable,
    /// We are behind a NAT: we can only connect out.
    BehindNat,
    /// Ask the STUN server given with --stun (RFC 5780 discovery from the --listen port;
    /// RFC 6135 §4.2.2): actpass with the mapped address when not NATed or behind an
    /// endpoint-independent NAT, active otherwise.
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SideArg {
    /// We sent the offer.
    Offerer,
    /// We sent the answer.
    Answerer,
}

#[derive(Debug, Args)]
struct LocalArgs {
    /// The address and port we advertise and listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:2855")]
    listen: SocketAddr,
    /// Whether the peer can connect to --listen (RFC 6135 §4.2.2).
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
    /// Use TLS (TCP/TLS/MSRP, msrps: URIs) and put our certificate fingerprint in the SDP.
    #[arg(long)]
    tls: bool,
    /// Fingerprint to advertise with --tls, e.g. "sha-256 AB:CD:..." (repeatable).
    #[arg(long, value_name = "HASH HEX")]
    fingerprint: Vec<String>,
    /// PEM certificate whose SHA-256 fingerprint to advertise with --tls. Without --cert and
    /// --fingerprint a throwaway self-signed certificate is generated.
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// The MSRP session id of our URI (default: 80 random bits, RFC 4975 §14.1).
    #[arg(long, value_name = "ID")]
    session_id: Option<String>,
    /// Media types we accept (RFC 4975 §8.6), space separated.
    #[arg(long, value_name = "TYPES", default_value = "*")]
    accept_types: String,
    /// Media types we accept only wrapped (RFC 4975 §8.6), space separated.
    #[arg(long, value_name = "TYPES")]
    accept_wrapped_types: Option<String>,
    /// Largest message we accept, in octets (a=max-size).
    #[arg(long, value_name = "OCTETS")]
    max_size: Option<u64>,
    /// Signal the CEMA extension (a=msrp-cema, RFC 6714).
    #[arg(long)]
    cema: bool,
    /// The Use-Path our MSRP relay returned, nearest relay first (RFC 4976 §5.1).
    #[arg(long, value_name = "URI", num_args = 1..)]
    relay_path: Vec<String>,
}

#[derive(Debug, Args)]
struct OfferArgs {
    #[command(flatten)]
    local: LocalArgs,
}

#[derive(Debug, Args)]
struct AnswerArgs {
    /// The offer to answer (SDP file, `-` for stdin).
    #[arg(long, value_name = "FILE")]
    offer: PathBuf,
    #[command(flatten)]
    local: LocalArgs,
}

#[derive(Debug, Args)]
struct PlanArgs {
    /// The offer (SDP file, `-` for stdin).
    #[arg(long, value_name = "FILE")]
    offer: PathBuf,
    /// The answer (SDP file, `-` for stdin).
    #[arg(long, value_name = "FILE")]
    answer: PathBuf,
    /// Whose plan to compute.
    #[arg(long, value_enum)]
    side: SideArg,
}

/// Writes `text` to stdout. A write error is returned, not a panic (`print!` panics): `main`
/// exits 0 quietly on a closed pipe (`msrp sdp plan ... | head -3`).
fn emit(text: &str) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())?;
    o.flush()?;
    Ok(())
}

/// Runs `msrp sdp ...`.
pub fn run(args: SdpArgs) -> anyhow::Result<()> {
    match args.command {
        SdpCommand::Offer(a) => {
            let cfg = local_config(&a.local)?;
            let pending = create_offer(&cfg)?;
            emit(&pending.offer().to_string())
        }
        SdpCommand::Answer(a) => {
            let offer = read_sdp(&a.offer, "offer", SdpOffer::parse)?;
            let cfg = local_config(&a.local)?;
            let answered = create_answer(&offer, &cfg).map_err(|e| {
                anyhow!(
                    "cannot answer {} (SIP {}): {e}",
                    a.offer.display(),
                    e.sip_status()
                )
            })?;
            for w in &answered.plan.warnings {
                eprintln!("warning: {w}");
            }
            emit(&answered.answer.to_string())
        }
        SdpCommand::Plan(a) => {
            let offer = read_sdp(&a.offer, "offer", SdpOffer::parse)?;
            let answer = read_sdp(&a.answer, "answer", SdpAnswer::parse)?;
            let side = match a.side {
                SideArg::Offerer => Side::Offerer,
                SideArg::Answerer => Side::Answerer,
            };
            let p = plan(&offer, &answer, side)
                .map_err(|e| anyhow!("answer {}: {e}", a.answer.display()))?;
            emit(&format!(
                "{}\n",
                serde_json::to_string_pretty(&plan_json(&p))?
            ))
        }
    }
}

/// The JSON contract of `msrp sdp plan`.
fn plan_json(p: &ConnectionPlan) -> serde_json::Value {
    let uris = |v: &[MsrpUri]| v.iter().map(|u| u.to_string()).collect::<Vec<_>>();
    serde_json::json!({
        "role": p.role.as_str(),
        "connect_to": p.connect_to.as_ref().map(|u| u.to_string()),
        "local_path": uris(&p.local_path),
        "remote_path": uris(&p.remote_path),
        "tls_role": p.tls_role.map(|r| r.as_str()),
        "warnings": p.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
    })
}

fn read_sdp<T>(
    path: &Path,
    what: &str,
    parse: impl Fn(&str) -> Result<T, msrp_proto::sdp::SdpError>,
) -> anyhow::Result<T> {
    let name = path.display();
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .take(msrp_proto::sdp::MAX_SDP_LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading the {what} from stdin"))?;
    } else {
        let f = std::fs::File::open(path).with_context(|| format!("{what} {name}"))?;
        f.take(msrp_proto::sdp::MAX_SDP_LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("{what} {name}"))?;
    }
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            bail!("{what} {name}: line {line}: not valid UTF-8");
        }
    };
    parse(text).map_err(|e| anyhow!("{what} {name}: {e}"))
}

fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut buf = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading random bytes from /dev/urandom")?;
    Ok(buf)
}

fn local_config(a: &LocalArgs) -> anyhow::Result<LocalConfig> {
    let session_id = match &a.session_id {
        Some(s) => s.clone(),
        // RFC 4975 §14.1: at least 80 bits of randomness.
        None => session_id_from_entropy(&random_bytes::<10>()?),
    };
    let mut cfg = LocalConfig::new(a.listen, session_id);
    cfg.sdp_session_id = u64::from_le_bytes(random_bytes::<8>()?) >> 2;
    cfg.reachability = match a.reachability {
        ReachabilityArg::Reachable => Reachability::Reachable,
        ReachabilityArg::BehindNat => Reachability::BehindNat,
        ReachabilityArg::Auto => {
            let nat = auto_reachability(a)?;
            nat.apply(&mut cfg);
            eprintln!("msrp: reachability: {}", nat.summary());
            nat.reachability
        }
    };
    if a.stun.is_some() && a.reachability != ReachabilityArg::Auto {
        bail!("--stun is only used with --reachability auto");
    }
    cfg.tls = a.tls;
    cfg.accept_types =
        AcceptType::parse_list(&a.accept_types).map_err(|e| anyhow!("--accept-types: {e}"))?;
    if let Some(w) = &a.accept_wrapped_types {
        cfg.accept_wrapped_types =
            AcceptType::parse_list(w).map_err(|e| anyhow!("--accept-wrapped-types: {e}"))?;
    }
    cfg.max_size = a.max_size;
    cfg.cema = a.cema;
    for r in &a.relay_path {
        cfg.relay_path
            .push(MsrpUri::parse(r).map_err(|e| anyhow!("--relay-path '{r}': {e}"))?);
    }
    let mut fps = Vec::new();
    for f in &a.fingerprint {
        fps.push(Fingerprint::parse(f).map_err(|e| anyhow!("--fingerprint '{f}': {e}"))?);
    }
    if let Some(path) = &a.cert {
        fps.push(cert_fingerprint(path)?);
    }
    if a.tls && fps.is_empty() {
        // A throwaway self-signed certificate so that the SDP is complete (RFC 4975 §14.2).
        let id = msrp::tls::TlsIdentity::generate()
            .map_err(|e| anyhow!("generating a self-signed certificate: {e}"))?;
        fps.extend(id.fingerprints().iter().cloned());
    }
    let mut fps = fps.into_iter();
    cfg.fingerprint = fps.next();
    cfg.extra_fingerprints = fps.collect();
    Ok(cfg)
}

/// `--reachability auto`: RFC 5780 discovery from the --listen port (TCP mapping from that
/// port, filtering over UDP from the same port number), mapped to the SDP by
/// [`msrp::nat::NatResolution`]. Nothing listens here, so the port must be free (or held by a
/// listener with `SO_REUSEPORT`).
fn auto_reachability(a: &LocalArgs) -> anyhow::Result<msrp::nat::NatResolution> {
    let Some(stun) = &a.stun else {
        bail!("--reachability auto needs --stun HOST:PORT (a STUN server supporting RFC 5780)");
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let server = msrp::nat::resolve_stun_server(stun, Some(a.listen)).await?;
        let config = msrp::stun::StunConfig::default()
            .with_rto(std::time::Duration::from_millis(a.stun_rto_ms));
        msrp::nat::resolve_reachability(server, a.listen, config)
            .await
            .with_context(|| format!("--reachability auto: STUN discovery with {server} failed"))
    })
}

/// SHA-256 fingerprint of the first certificate of a PEM file (RFC 8122 §5).
fn cert_fingerprint(path: &Path) -> anyhow::Result<Fingerprint> {
    let name = path.display();
    let f = std::fs::File::open(path).with_context(|| format!("--cert {name}"))?;
    let mut reader = std::io::BufReader::new(f);
    let cert = rustls_pemfile::certs(&mut reader)
        .next()
        .ok_or_else(|| anyhow!("--cert {name}: no PEM CERTIFICATE block"))?
        .with_context(|| format!("--cert {name}: invalid PEM"))?;
    Ok(Fingerprint::sha256(cert.as_ref()))
}
