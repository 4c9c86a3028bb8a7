//! The `msrp` command-line tool.
//!
//! Each subcommand lives in its own module; `main` parses the command line, sets up
//! tracing and maps errors to exit codes.
//!
//! Exit codes: 0 success, 1 failure (the message on stderr says what went wrong),
//! 2 usage error (from clap); `offer`/`answer` also use 3 (a wait timed out), 4 (the
//! session failed) and 130 (interrupted by Ctrl-C, the session closed). The `--help` texts
//! (with examples) are in this file; `msrp man` and `msrp completions` are generated from
//! the same clap definitions.

use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

mod demo;
mod load;
mod nat_check;
mod parse;
mod relay;
mod sdp;
mod session;

const MAIN_HELP: &str = "\
Examples:
  msrp demo                 two endpoints in this process: SDP, COMEDIA roles, chat, a file
  msrp demo --tls --json    the same over TLS, as JSON events
  msrp demo --relay         the same through an MSRP relay started in this process
  msrp offer --local-sdp offer.sdp --remote-sdp answer.sdp                 # terminal 1
  msrp answer --remote-sdp offer.sdp --local-sdp answer.sdp --send hello   # terminal 2
  msrp relay --listen 127.0.0.1:2855 --realm example.com --users users.txt
  msrp load --sessions 4 --count 10000 --size 1024
  msrp nat-check --stun 127.0.0.1:3478
  msrp sdp offer --reachability behind-nat

Exit status: 0 success; 1 failure (stderr says what went wrong and what to do); 2 usage
error; offer/answer also 3 (a wait timed out), 4 (the session failed) and 130 (Ctrl-C);
load 4 (messages lost, duplicated or refused).

Logging: -v info, -vv debug, -vvv trace, on stderr; RUST_LOG (e.g. RUST_LOG=msrp=debug)
overrides. Shell completions: msrp completions <SHELL>; man pages: msrp man --out-dir DIR.";

const DEMO_HELP: &str = "\
Examples:
  msrp demo                 the transcript, with a progress bar when stderr is a terminal
  msrp demo --tls           msrps: with self-signed certificates pinned by a=fingerprint
  msrp demo --relay         both authenticate to an in-process MSRP relay (RFC 4976) and
                            both connect to it (RFC 6135 §4.5)
  msrp demo --relay --tls   the same with the relay reached over msrps:
  msrp demo --json | jq -c 'select(.event == \"summary\")'

Exit status: 0 when the chat and the transfer (SHA-256 compared) succeeded, 1 otherwise.";

const OFFER_HELP: &str = "\
Examples:
  msrp offer  --local-sdp offer.sdp  --remote-sdp answer.sdp               # terminal 1
  msrp answer --remote-sdp offer.sdp --local-sdp answer.sdp                # terminal 2
    (same directory) then type lines in either terminal: each line is one message;
    Ctrl-D ends that side's input, and the session once everything is delivered.

  msrp offer --local-sdp offer.sdp --remote-sdp answer.sdp --send-file big.iso
  msrp answer --remote-sdp offer.sdp --local-sdp answer.sdp --recv-dir in/ --count 1
  msrp offer --reachability behind-nat ...     offer a=setup:active (we connect out)

Exit status: 0 done; 1 failure (bad SDP, negotiation, I/O); 3 a wait timed out (the
peer's SDP, the connection, a delivery); 4 the session failed (connection lost, a message
refused); 130 interrupted by Ctrl-C (the session is closed first, stderr says what was
still pending).";

const ANSWER_HELP: &str = "\
Examples:
  msrp answer --remote-sdp offer.sdp --local-sdp answer.sdp --send hello --count 1
  msrp answer --remote-sdp offer.sdp --local-sdp answer.sdp --recv-dir in/ --count 1
  msrp answer --reachability behind-nat ...    answer a=setup:active (we connect out)
  msrp answer --remote-sdp - --local-sdp -     SDP on stdin (up to an empty line) and stdout

Exit status: 0 done; 1 failure (bad SDP, negotiation, I/O); 3 a wait timed out (the
peer's SDP, the connection, a delivery); 4 the session failed (connection lost, a message
refused); 130 interrupted by Ctrl-C (the session is closed first, stderr says what was
still pending).";

const RELAY_HELP: &str = "\
Examples:
  printf 'secret' | msrp relay hash-password --user alice --realm example.com >> users.txt
  msrp relay --listen 127.0.0.1:2855 --realm example.com --users users.txt
  msrp relay --config relay.toml --json     prints {\"event\":\"listening\",...} when ready

Stops cleanly on SIGTERM or Ctrl-C (exit 0). Exit status 1: bad configuration or a
listener that cannot be opened (the message names it).";

const LOAD_HELP: &str = "\
Examples:
  msrp load --sessions 4 --count 10000                   direct, in this process, 1 KiB
  msrp load --size 1048576 --chunk-size 8192 --count 50  1 MiB messages in 8 KiB chunks
  msrp load --relay 'msrp://127.0.0.1:2855;tcp' --relay-user alice --relay-password secret \\
            --sessions 8 --rate 2000 --duration 30 --progress 1 --json
  msrp load --idle 10000 --relay 'msrp://127.0.0.1:2855;tcp' --relay-credentials cred.txt

Addresses: only loopback (127.0.0.0/8, ::1, localhost) and the documentation ranges used in
test network namespaces (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32),
unless --allow-non-loopback.

Exit status: 0 every message arrived once and intact; 1 setup failure (bad flags, relay
unreachable, AUTH refused); 4 messages lost, duplicated, corrupt or refused (or, with
--idle, an AUTH failed or the relay closed a held connection).";

const NAT_HELP: &str = "\
Examples:
  msrp nat-check --stun stun.example.net:3478
  msrp nat-check --stun 127.0.0.1:3478 --tcp --local 0.0.0.0:2855 --json

Exit status: 0 with a verdict; 1 when the STUN server did not answer or the answer was
unusable (the message says which test failed).";

const PARSE_HELP: &str = "\
Examples:
  msrp parse samples/rfc4975-session.msrp
  cat capture.msrp | msrp parse -

Exit status: 0 all messages decoded; 1 malformed input (the messages before it are printed,
then stderr names the problem and its byte offset).";

const SDP_HELP: &str = "\
Examples:
  msrp sdp offer --listen 192.0.2.10:2855 > offer.sdp
  msrp sdp answer --offer offer.sdp --reachability behind-nat > answer.sdp
  msrp sdp plan --offer offer.sdp --answer answer.sdp --side offerer

Exit status: 0 success; 1 invalid SDP or a negotiation error (the message names the line
and the problem; a SIP stack would answer 488).";

/// MSRP (RFC 4975) with the RFC 6135 COMEDIA connection model: chat, file transfer, SDP
/// negotiation, relays and interop testing.
#[derive(Debug, Parser)]
#[command(name = "msrp", version, after_help = MAIN_HELP)]
struct Cli {
    /// More log output on stderr (repeat for more); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// See it work: two endpoints in this process negotiate, chat and transfer a file.
    ///
    /// Two endpoints on loopback negotiate with SDP; one is behind a NAT (by
    /// configuration), so RFC 6135 COMEDIA makes it the side that connects. Prints both SDPs
    /// with their a=setup lines, the roles, a chat both ways, a file transfer (progress bar
    /// on a terminal) and a one-line summary. --tls runs it over TLS; --relay through an
    /// MSRP relay started in the same process.
    #[command(after_help = DEMO_HELP)]
    Demo(demo::DemoArgs),
    /// Chat or send files as the SDP offerer (one session).
    ///
    /// Writes our SDP offer to --local-sdp, waits for the answer in --remote-sdp, connects
    /// or accepts as RFC 6135 decides, then sends --send texts, --send-file files or each
    /// line of stdin, and prints what arrives.
    #[command(after_help = OFFER_HELP)]
    Offer(Box<session::SessionArgs>),
    /// Chat or send files as the SDP answerer (one session).
    ///
    /// Waits for the offer in --remote-sdp, writes our answer to --local-sdp, connects or
    /// accepts as RFC 6135 decides, then sends --send texts, --send-file files or each line
    /// of stdin, and prints what arrives.
    #[command(after_help = ANSWER_HELP)]
    Answer(Box<session::SessionArgs>),
    /// Run an MSRP relay (RFC 4976).
    ///
    /// Configured by `--config FILE` (TOML) or flags; `msrp relay hash-password` makes the
    /// users-file lines (HA1 hashes). See docs/relay.md.
    #[command(after_help = RELAY_HELP)]
    Relay(Box<relay::RelayArgs>),
    /// Load generator: N sessions directly or through relays; messages/s, MB/s, latency.
    ///
    /// Each session is a sender and a receiver endpoint in this process (through --relay
    /// both authenticate first). Messages carry a sequence number; the receiver counts lost
    /// and duplicated ones. Prints messages/s, MB/s and latency percentiles (send to 200 OK,
    /// send to complete message at the receiver). `--idle N` holds N authenticated relay
    /// connections instead. See docs/cli.md.
    #[command(after_help = LOAD_HELP)]
    Load(Box<load::LoadArgs>),
    /// Detect a NAT with STUN and say which a=setup to offer.
    ///
    /// Runs the RFC 5780 mapping and filtering tests against --stun and prints the mapped
    /// address, the behaviour, and the a=setup value RFC 6135 §4.2.2 allows us to offer.
    #[command(after_help = NAT_HELP)]
    NatCheck(nat_check::NatCheckArgs),
    /// Print the SDP offer or answer we would send, or the connection plan of an exchange.
    #[command(after_help = SDP_HELP)]
    Sdp(Box<sdp::SdpArgs>),
    /// Decode MSRP messages from a file or stdin into JSON, one object per message.
    ///
    /// Reads FILE (or standard input for `-`) and prints one JSON object per message: kind,
    /// method or status, transaction_id, headers (array of [name, value] pairs in order),
    /// body_len, continuation.
    #[command(after_help = PARSE_HELP)]
    Parse(parse::ParseArgs),
    /// Print a shell completion script to standard output.
    #[command(after_help = "\
Examples:
  msrp completions bash > ~/.local/share/bash-completion/completions/msrp
  msrp completions zsh > ~/.zfunc/_msrp
  msrp completions fish > ~/.config/fish/completions/msrp.fish")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page, or write one page per command into a directory.
    #[command(after_help = "\
Examples:
  msrp man | man -l -
  msrp man --out-dir target/man     writes msrp.1, msrp-offer.1, msrp-sdp-plan.1, ...")]
    Man {
        /// Write msrp.1 and a page per subcommand (msrp-offer.1, ...) into DIR.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Print the version.
    Version,
}

/// Writes the man page of `cmd` and of its subcommands into `dir`, one file per command
/// named after its display name (`msrp.1`, `msrp-offer.1`, `msrp-sdp-plan.1`, ...); `cmd`
/// must be built, so that subcommands carry those names.
fn write_man_pages(cmd: &clap::Command, dir: &std::path::Path) -> anyhow::Result<()> {
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        write_man_pages(sub, dir)?;
    }
    Ok(())
}

fn man(out_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    cmd.build();
    match out_dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            Ok(())
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating --out-dir {}", dir.display()))?;
            write_man_pages(&cmd, &dir)
        }
    }
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
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "msrp", &mut script);
            std::io::Write::write_all(&mut std::io::stdout().lock(), &script).map_err(Into::into)
        }
        Command::Man { out_dir } => man(out_dir),
        Command::NatCheck(args) => nat_check::run(args),
        Command::Parse(args) => parse::run(args),
        Command::Sdp(args) => sdp::run(*args),
        Command::Offer(args) => session::run(msrp_proto::sdp::Side::Offerer, *args, cli.verbose),
        Command::Answer(args) => session::run(msrp_proto::sdp::Side::Answerer, *args, cli.verbose),
        Command::Relay(args) => relay::run(*args),
        Command::Load(args) => load::run(*args),
    };
    if let Err(e) = result {
        // `msrp man | head`: a closed pipe is not worth an error.
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            std::process::exit(0);
        }
        eprintln!("msrp: {e:#}");
        let code = e.downcast_ref::<session::Failure>().map_or(1, |f| f.code);
        std::process::exit(code);
    }
}
