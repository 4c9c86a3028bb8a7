//! `msrp nat-check`: RFC 5780 NAT behaviour discovery against a STUN server, and the
//! `a=setup` value RFC 6135 §4.2.2 allows this UA to offer.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};
use msrp::stun::{
    discover, discover_tcp_with_udp_filtering, NatReport, StunConfig, StunError, Transport,
};

/// Arguments of `msrp nat-check`.
#[derive(Debug, clap::Args)]
pub struct NatCheckArgs {
    /// STUN server supporting RFC 5780 (two IP addresses, e.g. coturn with
    /// --alt-listening-port).
    #[arg(long, value_name = "HOST:PORT")]
    pub stun: String,
    /// Run the tests over TCP (mapping only: RFC 5780 cannot test filtering over TCP).
    #[arg(long)]
    pub tcp: bool,
    /// With --tcp: also run the RFC 5780 filtering tests over UDP from the same port number
    /// and use their result for the verdict (assumes the NAT filters TCP as it filters UDP;
    /// without this, a NATed TCP check can only say filtering is unknown and offer active).
    #[arg(long, requires = "tcp")]
    pub udp_filtering: bool,
    /// Local address to test from: the MSRP listener's address, so the NAT mapping tested is
    /// the one the MSRP connection will use (RFC 6135 §4.2.2). Default: any address, a free
    /// port.
    #[arg(long, value_name = "ADDR:PORT")]
    pub local: Option<SocketAddr>,
    /// Print one JSON object: mapped_address, mapping, filtering, behind_nat, offer_setup,
    /// reason.
    #[arg(long)]
    pub json: bool,
    /// Initial STUN retransmission timeout in milliseconds (RFC 8489 §6.2.1 recommends 500;
    /// a UDP test without answer gives up after 79 x this value).
    #[arg(long, value_name = "MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub rto_ms: u64,
}

/// The `--json` output; the key names are part of the CLI contract.
#[derive(Debug, serde::Serialize)]
struct JsonReport<'a> {
    mapped_address: String,
    mapping: &'a str,
    filtering: &'a str,
    behind_nat: bool,
    offer_setup: &'a str,
    reason: &'a str,
}

/// Runs the command.
pub fn run(args: NatCheckArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = rt.block_on(check(&args))?;
    if args.json {
        let j = JsonReport {
            mapped_address: report.mapped.to_string(),
            mapping: report.mapping.as_str(),
            filtering: report.filtering.as_str(),
            behind_nat: report.verdict.behind_nat(),
            offer_setup: report.verdict.offer_setup().as_str(),
            reason: &report.reason,
        };
        let mut o = std::io::stdout().lock();
        writeln!(o, "{}", serde_json::to_string(&j)?)?;
        o.flush()?;
    } else {
        print_human(&report)?;
    }
    Ok(())
}

async fn check(args: &NatCheckArgs) -> anyhow::Result<NatReport> {
    let server = resolve(&args.stun, args.local).await?;
    let local = args.local.unwrap_or_else(|| match server.ip() {
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    });
    let transport = if args.tcp {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let config = StunConfig::default().with_rto(Duration::from_millis(args.rto_ms));
    let result = if args.udp_filtering {
        discover_tcp_with_udp_filtering(server, local, config).await
    } else {
        discover(server, local, transport, config).await
    };
    result.map_err(|e| match e {
        StunError::Discovery(msrp::stun::DiscoveryError::Timeout { .. }) => {
            anyhow::anyhow!("{e} (is a STUN server running there and reachable?)")
        }
        other => anyhow::Error::new(other),
    })
}

/// Resolves `HOST:PORT`, preferring the family of `--local` when given.
async fn resolve(text: &str, local: Option<SocketAddr>) -> anyhow::Result<SocketAddr> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        bail!("--stun {text:?}: expected HOST:PORT (for example 127.0.0.1:3478)");
    };
    if host.is_empty() {
        bail!("--stun {text:?}: the host is empty");
    }
    if port.parse::<u16>().is_err() {
        bail!("--stun {text:?}: {port:?} is not a port number (0-65535)");
    }
    let addrs: Vec<SocketAddr> =
        tokio::time::timeout(Duration::from_secs(10), tokio::net::lookup_host(text))
            .await
            .with_context(|| format!("--stun {text:?}: name resolution timed out"))?
            .with_context(|| format!("--stun {text:?}: cannot resolve the host name"))?
            .collect();
    let pick = match local {
        Some(l) => addrs.iter().find(|a| a.is_ipv4() == l.is_ipv4()),
        None => addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()),
    };
    pick.copied().with_context(|| {
        format!("--stun {text:?}: the name has no address of the local address's IP version")
    })
}

/// The report as aligned lines; write errors (a closed pipe) are returned, not a panic.
fn print_human(r: &NatReport) -> std::io::Result<()> {
    let mut o = std::io::stdout().lock();
    writeln!(
        o,
        "mapped address: {} (local {} over {})",
        r.mapped,
        r.local,
        r.transport.as_str()
    )?;
    match r.other_address {
        Some(a) => writeln!(o, "STUN server:    {} (other address {a})", r.server)?,
        None => writeln!(
            o,
            "STUN server:    {} (no RFC 5780 OTHER-ADDRESS)",
            r.server
        )?,
    }
    writeln!(o, "mapping:        {}", r.mapping.as_str())?;
    writeln!(o, "filtering:      {}", r.filtering.as_str())?;
    writeln!(
        o,
        "behind NAT:     {}",
        if r.verdict.behind_nat() { "yes" } else { "no" }
    )?;
    writeln!(o, "offer a=setup:  {}", r.verdict.offer_setup().as_str())?;
    writeln!(o, "reason:         {}", r.reason)?;
    o.flush()
}
