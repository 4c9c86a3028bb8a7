//! `msrp relay`: the MSRP relay server (RFC 4976), and `msrp relay hash-password`.
//!
//! Configuration comes from a TOML file (`--config FILE`, keys below) and/or flags; a flag
//! overrides the file. See `docs/relay.md`.
//!
//! ```toml
//! host = "relay.example.com"     # name in the issued URIs (default: the listen IP)
//! realm = "relay.example.com"    # Digest realm (default: host)
//! users = "/etc/msrp/users"      # from `msrp relay hash-password`
//! listen = "0.0.0.0:2855"        # plain TCP (msrp:)
//! tls_listen = "0.0.0.0:2856"    # TLS (msrps:)
//! cert = "relay.pem"
//! key = "relay.key"
//! ca = "ca.pem"                  # roots for msrps next hops (default: system roots)
//! default_expires = 1800
//! min_expires = 60
//! max_expires = 7200
//!
//! [limits]
//! max_connections_per_address = 32
//! max_pending_bytes = 1048576
//! probation_secs = 30
//! max_failed_requests = 5
//! max_chunk_bytes = 67108864
//! max_sessions_per_connection = 64
//! max_auth_failures_per_address = 20
//! auth_failure_window_secs = 60
//! max_header_bytes = 16384
//! transaction_timeout_secs = 30
//! body_stall_secs = 30
//! ```
//!
//! Every limit is described in `docs/limits.md`.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use msrp::relay::{RelayServer, RelayServerConfig};
use msrp::tls::{ca_roots, client_config, server_config, PeerAuth, TlsIdentity};
use msrp_proto::relay::server::{RelayConfig, RelayLimits};
use msrp_proto::relay::users::{hash_password_lines, Users};

/// Arguments of `msrp relay`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RelayArgs {
    #[command(subcommand)]
    action: Option<RelayAction>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, clap::Subcommand)]
enum RelayAction {
    /// Read a password from standard input and print the users-file lines for NAME in
    /// REALM (one per digest algorithm; HA1 hashes, never the password).
    HashPassword {
        /// User name.
        #[arg(long, value_name = "NAME")]
        user: String,
        /// Realm (the relay's --realm).
        #[arg(long, value_name = "REALM")]
        realm: String,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// TOML configuration file (flags override its values).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Plain TCP listen address (msrp: URIs).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// TLS listen address (msrps: URIs); needs --cert and --key.
    #[arg(long, value_name = "ADDR:PORT")]
    tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for the TLS listener.
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// PEM private key for the TLS listener.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// PEM CA certificates that msrps next hops must chain to (default: the system roots).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Host name in the URIs this relay issues (default: the listen IP address).
    #[arg(long, value_name = "NAME")]
    host: Option<String>,
    /// Digest realm (default: the host).
    #[arg(long, value_name = "REALM")]
    realm: Option<String>,
    /// Users file (lines from `msrp relay hash-password`).
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,
    /// Use-Path lifetime when the AUTH has no Expires, seconds.
    #[arg(long, value_name = "SECS")]
    default_expires: Option<u32>,
    /// Smallest Expires accepted (smaller: 423 with Min-Expires), seconds.
    #[arg(long, value_name = "SECS")]
    min_expires: Option<u32>,
    /// Largest lifetime granted (a larger requested Expires gets 423 with Max-Expires),
    /// seconds.
    #[arg(long, value_name = "SECS")]
    max_expires: Option<u32>,
    /// Most connections from one IP address.
    #[arg(long, value_name = "N")]
    max_connections_per_address: Option<usize>,
    /// Bytes queued per connection before its sources stop being read.
    #[arg(long, value_name = "BYTES")]
    max_pending_bytes: Option<usize>,
    /// Seconds a connection may stay without a successful request.
    #[arg(long, value_name = "SECS")]
    probation_secs: Option<u64>,
    /// Failed requests (AUTH failures included) tolerated before closing a connection that
    /// never succeeded.
    #[arg(long, value_name = "N")]
    max_failed_requests: Option<u32>,
    /// Largest chunk forwarded (larger: 413).
    #[arg(long, value_name = "BYTES")]
    max_chunk_bytes: Option<u64>,
    /// Most live Use-Path URIs per connection (more AUTHs: 403).
    #[arg(long, value_name = "N")]
    max_sessions_per_connection: Option<usize>,
    /// AUTH failures tolerated from one IP address within --auth-failure-window-secs, over
    /// all its connections; beyond it its AUTHs get 403 unchecked.
    #[arg(long, value_name = "N")]
    max_auth_failures_per_address: Option<u32>,
    /// The window of --max-auth-failures-per-address, seconds since the last failure.
    #[arg(long, value_name = "SECS")]
    auth_failure_window_secs: Option<u64>,
    /// Largest header block (start line, headers, blank line); larger: the connection closes.
    #[arg(long, value_name = "BYTES")]
    max_header_bytes: Option<usize>,
    /// Seconds a sender may pause in the middle of a body before its connection closes.
    #[arg(long, value_name = "SECS")]
    body_stall_secs: Option<u64>,
    /// Worker threads of the relay's runtime. One (the default) forwards with the least CPU
    /// per message (no wake-ups across threads, docs/performance.md); more let one relay
    /// process use more cores.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Print JSON events on standard output (`{"event":"listening",...}` once listening).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    host: Option<String>,
    realm: Option<String>,
    users: Option<PathBuf>,
    listen: Option<SocketAddr>,
    tls_listen: Option<SocketAddr>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
    default_expires: Option<u32>,
    min_expires: Option<u32>,
    max_expires: Option<u32>,
    #[serde(default)]
    limits: FileLimits,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_connections_per_address: Option<usize>,
    max_pending_bytes: Option<usize>,
    probation_secs: Option<u64>,
    max_failed_requests: Option<u32>,
    max_chunk_bytes: Option<u64>,
    max_sessions_per_connection: Option<usize>,
    max_auth_failures_per_address: Option<u32>,
    auth_failure_window_secs: Option<u64>,
    max_header_bytes: Option<usize>,
    transaction_timeout_secs: Option<u64>,
    body_stall_secs: Option<u64>,
}

/// Runs the command.
pub fn run(args: RelayArgs) -> anyhow::Result<()> {
    match args.action {
        Some(RelayAction::HashPassword { user, realm }) => hash_password(&user, &realm),
        None => serve(args.run),
    }
}

fn hash_password(user: &str, realm: &str) -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("cannot read the password from standard input")?;
    // The password is the first line, without its line ending.
    let password = input.lines().next().unwrap_or("");
    if password.is_empty() {
        bail!("no password on standard input");
    }
    // A closed stdout is an error for `main` (exit 0 on a closed pipe), not a panic.
    let mut o = std::io::stdout().lock();
    std::io::Write::write_all(
        &mut o,
        hash_password_lines(user, realm, password)?.as_bytes(),
    )?;
    std::io::Write::flush(&mut o)?;
    Ok(())
}

fn read_file_config(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{}: invalid configuration", path.display()))
}

fn build(a: RunArgs) -> anyhow::Result<(RelayServerConfig, bool)> {
    let f = match &a.config {
        Some(p) => read_file_config(p)?,
        None => FileConfig::default(),
    };
    let listen = a.listen.or(f.listen);
    let tls_listen = a.tls_listen.or(f.tls_listen);
    if listen.is_none() && tls_listen.is_none() {
        bail!("nothing to listen on: give --listen ADDR:PORT and/or --tls-listen ADDR:PORT (or listen/tls_listen in the configuration file)");
    }
    let host = match a.host.or(f.host) {
        Some(h) => h,
        None => {
            let ip = listen.or(tls_listen).map(|s| s.ip());
            match ip {
                Some(ip) if !ip.is_unspecified() => ip.to_string(),
                _ => bail!("give --host NAME: the relay's name for its URIs cannot be taken from an unspecified listen address"),
            }
        }
    };
    if host.parse::<std::net::IpAddr>().is_ok() {
        // RFC 4976 §4.2: the URIs a relay hands out carry a fully qualified domain name (TLS
        // clients check the relay's certificate against it, §9.2). An address works for
        // tests and plain TCP; say so instead of failing.
        eprintln!(
            "msrp: warning: the relay's URIs will carry the IP address {host}; RFC 4976 §4.2 \
             wants a fully qualified domain name (give --host NAME, matching the TLS \
             certificate)"
        );
    }
    let realm = a.realm.or(f.realm).unwrap_or_else(|| host.clone());
    let users_path = a.users.or(f.users).ok_or_else(|| {
        anyhow::anyhow!("give --users FILE (make its lines with `msrp relay hash-password`)")
    })?;
    let users_text = std::fs::read_to_string(&users_path)
        .with_context(|| format!("cannot read the users file {}", users_path.display()))?;
    let users = Users::parse(&users_text)
        .with_context(|| format!("users file {}", users_path.display()))?;
    let mut rc = RelayConfig::new(host, realm);
    if let Some(v) = a.default_expires.or(f.default_expires) {
        rc.default_expires = v;
    }
    if let Some(v) = a.min_expires.or(f.min_expires) {
        rc.min_expires = v;
    }
    if let Some(v) = a.max_expires.or(f.max_expires) {
        rc.max_expires = v;
    }
    let fl = f.limits;
    let mut l = RelayLimits::default();
    if let Some(v) = a
        .max_connections_per_address
        .or(fl.max_connections_per_address)
    {
        l.max_connections_per_address = v;
    }
    if let Some(v) = a.max_pending_bytes.or(fl.max_pending_bytes) {
        l.max_pending_bytes = v;
    }
    if let Some(v) = a.probation_secs.or(fl.probation_secs) {
        l.probation_ms = v.saturating_mul(1000);
    }
    if let Some(v) = a.max_failed_requests.or(fl.max_failed_requests) {
        l.max_failed_requests = v;
    }
    if let Some(v) = a.max_chunk_bytes.or(fl.max_chunk_bytes) {
        l.max_chunk_bytes = v;
    }
    if let Some(v) = a
        .max_sessions_per_connection
        .or(fl.max_sessions_per_connection)
    {
        l.max_sessions_per_connection = v;
    }
    if let Some(v) = a
        .max_auth_failures_per_address
        .or(fl.max_auth_failures_per_address)
    {
        l.max_auth_failures_per_address = v;
    }
    if let Some(v) = a.auth_failure_window_secs.or(fl.auth_failure_window_secs) {
        l.auth_failure_window_ms = v.saturating_mul(1000);
    }
    if let Some(v) = a.max_header_bytes.or(fl.max_header_bytes) {
        l.parser.max_head_bytes = v;
    }
    if let Some(v) = fl.transaction_timeout_secs {
        l.transaction_timeout_ms = v.saturating_mul(1000);
    }
    if let Some(v) = a.body_stall_secs.or(fl.body_stall_secs) {
        l.body_stall_ms = v.saturating_mul(1000);
    }
    rc.limits = l;
    let mut cfg = RelayServerConfig::new(rc, users);
    cfg.tcp_listen = listen;
    cfg.tls_listen = tls_listen;
    let cert = a.cert.or(f.cert);
    let key = a.key.or(f.key);
    if tls_listen.is_some() {
        let (Some(cert), Some(key)) = (cert, key) else {
            bail!("the TLS listener needs --cert FILE and --key FILE");
        };
        let id = TlsIdentity::from_pem_files(&cert, &key)
            .with_context(|| "cannot load the TLS certificate and key".to_string())?;
        cfg.tls_server = Some(server_config(&id, PeerAuth::NoClientCertificate)?);
    }
    let ca = a.ca.or(f.ca);
    // Next hops over msrps are verified by CA roots and host name (RFC 4976 §9.2).
    cfg.tls_client = match ca_roots(ca.as_deref(), false) {
        Ok(roots) => Some(client_config(None, PeerAuth::CaRoots(roots))?),
        Err(e) if ca.is_some() => return Err(e).context("cannot load the CA file"),
        Err(e) => {
            tracing::warn!("no system CA roots ({e}); msrps next hops will fail");
            None
        }
    };
    Ok((cfg, a.json))
}

fn serve(a: RunArgs) -> anyhow::Result<()> {
    let threads = usize::from(a.threads);
    let (cfg, json) = build(a)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let server = RelayServer::bind(cfg).await?;
        let rc = server.relay_config();
        let tcp = server.tcp_addr().map(|a| a.to_string());
        let tls = server.tls_addr().map(|a| a.to_string());
        if json {
            let ev = serde_json::json!({
                "event": "listening",
                "tcp": tcp,
                "tls": tls,
                "host": rc.host,
                "realm": rc.realm,
            });
            println!("{ev}");
        }
        eprintln!(
            "msrp relay: listening{}{} as {} (realm {})",
            tcp.as_deref()
                .map(|a| format!(" on tcp {a}"))
                .unwrap_or_default(),
            tls.as_deref()
                .map(|a| format!(" on tls {a}"))
                .unwrap_or_default(),
            rc.host,
            rc.realm
        );
        tracing::info!(?tcp, ?tls, "listening");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot install the SIGTERM handler")?;
        // The relay's event loop runs as a task on a worker thread, not on this thread
        // (block_on): the connections' reader and writer tasks wake it without unparking
        // another thread each time (docs/performance.md, relays).
        let run = server.run(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        });
        tokio::spawn(run)
            .await
            .context("the relay's event loop panicked")??;
        if json {
            println!("{}", serde_json::json!({"event": "stopped"}));
        }
        eprintln!("msrp relay: stopped");
        Ok(())
    })
}
