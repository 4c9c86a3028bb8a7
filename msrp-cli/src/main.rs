//! The `msrp` command-line tool.
//!
//! Each subcommand lives in its own module; `main` parses the command line, sets up
//! tracing and maps errors to exit codes.
//!
//! Exit codes: 0 success, 1 failure (the message on stderr says what went wrong),
//! 2 usage error (from clap); `offer`/`answer` also use 3 (a wait timed out) and 4 (the
//! session failed).

use clap::{Parser, Subcommand};

mod demo;
mod nat_check;
mod parse;
mod relay;
mod sdp;
mod session;

/// MSRP (RFC 4975) with the RFC 6135 COMEDIA connection model: chat, file transfer, SDP
/// negotiation, relays and interop testing.
#[derive(Debug, Parser)]
#[command(name = "msrp", version, about, long_about = None)]
struct Cli {
    /// More log output on stderr (repeat for more); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version.
    Version,
    /// Show the stack in one process: two endpoints on loopback negotiate with SDP (one
    /// behind a NAT, so RFC 6135 COMEDIA decides who connects), chat, and transfer a file.
    Demo(demo::DemoArgs),
    /// Discover NAT mapping and filtering behaviour with STUN (RFC 5780) and say which
    /// a=setup value to offer (RFC 6135 §4.2.2).
    NatCheck(nat_check::NatCheckArgs),
    /// Decode a byte stream of MSRP messages (FILE, or standard input for `-`) and print one
    /// JSON object per message: kind, method or status, transaction_id, headers (array of
    /// [name, value] pairs in order), body_len, continuation.
    Parse(parse::ParseArgs),
    /// SDP for MSRP: print our offer or answer, or the connection plan of an exchange.
    Sdp(Box<sdp::SdpArgs>),
    /// Run one MSRP session as the offerer: write our SDP offer to --local-sdp, wait for the
    /// answer in --remote-sdp, connect or accept as RFC 6135 decides, then chat or send
    /// files. Example: msrp offer --local-sdp offer.sdp --remote-sdp answer.sdp --count 1
    Offer(Box<session::SessionArgs>),
    /// Run one MSRP session as the answerer: wait for the offer in --remote-sdp, write our
    /// answer to --local-sdp, then chat or send files. Example:
    /// msrp answer --remote-sdp offer.sdp --local-sdp answer.sdp --send hello
    Answer(Box<session::SessionArgs>),
    /// Run an MSRP relay (RFC 4976): `--config FILE` or flags; `hash-password` makes
    /// users-file lines.
    Relay(Box<relay::RelayArgs>),
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let result: anyhow::Result<()> = match cli.command {
        Command::Version => {
            println!("msrp {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Demo(args) => demo::run(args),
        Command::NatCheck(args) => nat_check::run(args),
        Command::Parse(args) => parse::run(args),
        Command::Sdp(args) => sdp::run(*args),
        Command::Offer(args) => session::run(msrp_proto::sdp::Side::Offerer, *args, cli.verbose),
        Command::Answer(args) => session::run(msrp_proto::sdp::Side::Answerer, *args, cli.verbose),
        Command::Relay(args) => relay::run(*args),
    };
    if let Err(e) = result {
        eprintln!("msrp: {e:#}");
        let code = e.downcast_ref::<session::Failure>().map_or(1, |f| f.code);
        std::process::exit(code);
    }
}
