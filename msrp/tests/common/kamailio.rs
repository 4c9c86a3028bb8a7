//! Starts Debian's `kamailio` (5.6) as an MSRP relay on loopback for tests and stops it, with
//! all its worker processes, in `Drop`.
//!
//! The configuration is `msrp/tests/kamailio/msrp-relay.cfg` (adapted from the reference relay
//! configuration; see docs/interop.md). Each instance gets free loopback ports and its own run
//! directory (a temp dir holding the ctl socket, the log and, with TLS, a freshly generated
//! certificate and key). Kamailio runs in the foreground (`-DD`), logs to stderr (`-E`, into
//! `kamailio.log` in the run dir) and is the leader of its own process group, so `Drop` can
//! signal the main process and its children at once.
#![allow(dead_code)]

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// Also loaded by msrp-cli/tests/common/pair.rs in the tests that use both.
#[allow(clippy::duplicate_mod)]
#[path = "ports.rs"]
mod ports;

use msrp::tls::TlsIdentity;

/// Realm of the test relay (the cfg's `MSRP_REALM`).
pub const REALM: &str = "msrp-relay.test";
/// Password the test relay accepts for any user name (the cfg's `MSRP_PASSWD`).
pub const PASSWORD: &str = "msrp-secret";
/// Minimum and maximum Expires the cfg accepts for AUTH.
pub const MIN_EXPIRES: u32 = 60;
/// See [`MIN_EXPIRES`].
pub const MAX_EXPIRES: u32 = 3600;

/// How long to wait for Kamailio to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(20);
/// How long to wait for it to exit after SIGTERM before SIGKILL.
const STOP_WITHIN: Duration = Duration::from_secs(5);

/// What to start.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Also listen with TLS (`WITH_TLS`), with a certificate generated for this run.
    pub tls: bool,
    /// Challenge with `algorithm=SHA-256` (`WITH_SHA256`) instead of MD5.
    pub sha256: bool,
    /// Nonce lifetime in seconds (`MSRP_NONCE_EXPIRE`; Kamailio's default is 300).
    pub nonce_expire: Option<u32>,
    /// Log every frame (`WITH_DEBUG`).
    pub debug: bool,
}

/// A running Kamailio relay.
pub struct Kamailio {
    child: Child,
    dir: tempfile::TempDir,
    /// Plain TCP listener.
    pub tcp: SocketAddr,
    /// TLS listener, with [`Options::tls`].
    pub tls: Option<SocketAddr>,
    /// The relay's certificate and key, with [`Options::tls`] (to pin its fingerprint).
    pub identity: Option<TlsIdentity>,
}

/// The configuration file shipped with the tests of the `msrp` crate (this harness is also
/// included by the CLI's tests, whose manifest dir is the sibling `msrp-cli`).
pub fn config_path() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let own = manifest.join("tests/kamailio/msrp-relay.cfg");
    if own.is_file() {
        return own;
    }
    manifest.join("../msrp/tests/kamailio/msrp-relay.cfg")
}

fn missing(what: &str) -> Option<Kamailio> {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} is required for this test under CI=true (.ci/run installs it)");
    }
    eprintln!("skipped: {what} is not installed");
    None
}

fn kamailio_binary() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    // Debian installs it in /usr/sbin, which is not always on a user's PATH.
    dirs.push("/usr/sbin".into());
    dirs.push("/usr/local/sbin".into());
    dirs.into_iter()
        .map(|d| d.join("kamailio"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    ports::free_port()
}

impl Kamailio {
    /// Starts a relay and waits until it accepts connections. `None` means "skip": Kamailio
    /// (or, with TLS, `kamailio-tls-modules`) is not installed and `CI` is not `true`.
    pub fn start(opts: Options) -> Option<Kamailio> {
        let Some(bin) = kamailio_binary() else {
            return missing("kamailio");
        };
        // A port picked free can be taken before Kamailio binds it: retry a few times.
        let mut last_error = String::new();
        for _ in 0..3 {
            match Kamailio::try_start(&bin, &opts) {
                Ok(k) => return Some(k),
                Err(StartError::TlsModuleMissing) => {
                    return missing("kamailio-tls-modules (tls.so)")
                }
                Err(StartError::Failed(e)) => last_error = e,
            }
        }
        panic!("kamailio did not start:\n{last_error}");
    }

    fn try_start(bin: &Path, opts: &Options) -> Result<Kamailio, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("msrp-kamailio-")
            .tempdir()
            .expect("create a run dir");
        let run = dir.path().to_str().expect("UTF-8 temp dir").to_string();
        let tcp_port = free_port();
        let tls_port = opts.tls.then(free_port);
        let mut identity = None;
        let mut cmd = Command::new(bin);
        cmd.arg("-f")
            .arg(config_path())
            .args(["-DD", "-E", "-m", "32", "-M", "4", "-Y", &run])
            .arg(format!("--substdef=!MSRP_RUNDIR!{run}!g"))
            .arg("-A")
            .arg(format!("MSRP_TCP_PORT={tcp_port}"));
        if let Some(port) = tls_port {
            let id = TlsIdentity::generate_for(&["127.0.0.1".to_string(), REALM.to_string()])
                .expect("generate the relay certificate");
            id.write_pem_files(&dir.path().join("relay.crt"), &dir.path().join("relay.key"))
                .expect("write the relay certificate");
            identity = Some(id);
            cmd.args(["-A", "WITH_TLS", "-A"])
                .arg(format!("MSRP_TLS_PORT={port}"));
        }
        if opts.sha256 {
            cmd.args(["-A", "WITH_SHA256"]);
        }
        if let Some(secs) = opts.nonce_expire {
            cmd.arg("-A").arg(format!("MSRP_NONCE_EXPIRE={secs}"));
        }
        if opts.debug {
            cmd.args(["-A", "WITH_DEBUG"]);
        }
        let log_path = dir.path().join("kamailio.log");
        let log = File::create(&log_path).expect("create the log file");
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup the log file"))
            .stderr(log)
            // Own process group: Drop signals the main process and all its children.
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| StartError::Failed(format!("spawn {}: {e}", bin.display())))?;
        let mut k = Kamailio {
            child,
            dir,
            tcp: SocketAddr::from(([127, 0, 0, 1], tcp_port)),
            tls: tls_port.map(|p| SocketAddr::from(([127, 0, 0, 1], p))),
            identity,
        };
        k.wait_ready()?;
        Ok(k)
    }

    fn wait_ready(&mut self) -> Result<(), StartError> {
        let deadline = Instant::now() + READY_WITHIN;
        let targets: Vec<SocketAddr> = std::iter::once(self.tcp).chain(self.tls).collect();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = self.log();
                if log.contains("tls.so") && log.contains("could not find module") {
                    return Err(StartError::TlsModuleMissing);
                }
                return Err(StartError::Failed(format!(
                    "kamailio exited with {status} before listening; log:\n{log}"
                )));
            }
            // Our instance is up once its ctl process logged its event loop (printed after the
            // listeners are bound and the workers forked) and every port accepts. The log
            // check guards against a port picked free but taken meanwhile by another test's
            // Kamailio: a connect alone could then reach the wrong instance.
            if self.log().contains("io_listen_loop(")
                && targets
                    .iter()
                    .all(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok())
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartError::Failed(format!(
                    "kamailio did not accept connections on {targets:?} within {READY_WITHIN:?}; log:\n{}",
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything Kamailio logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }

    /// The last `n` lines of the log, for assertion messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The relay's URI as the client addresses it in To-Path (RFC 4976 §5.1: a relay URI has
    /// no session id), for the plain TCP listener.
    pub fn tcp_uri(&self) -> String {
        format!("msrp://{};tcp", self.tcp)
    }

    /// The relay's URI for the TLS listener.
    pub fn tls_uri(&self) -> Option<String> {
        self.tls.map(|a| format!("msrps://{a};tcp"))
    }

    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args(["-s", signal, "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Processes of process group `pgid` that are still running (zombies excluded), from /proc.
fn live_group_members(pgid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid pgrp ...; comm may contain spaces, so split after ')'.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                return false;
            };
            let mut f = rest.split_whitespace();
            let state = f.next();
            let pgrp = f.nth(1).and_then(|p| p.parse::<u32>().ok());
            pgrp == Some(pgid) && state != Some("Z") && state != Some("X")
        })
        .count()
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // SIGTERM lets Kamailio stop its children and release its shared memory; SIGKILL to the
        // whole group if anything is left after a while. The main process is reaped only at the
        // end, so until then its pid (= the group id) cannot be reused by anyone else.
        let pgid = self.child.id();
        self.signal_group("TERM");
        let deadline = Instant::now() + STOP_WITHIN;
        while live_group_members(pgid) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if live_group_members(pgid) > 0 {
            self.signal_group("KILL");
        }
        let _ = self.child.wait();
    }
}

enum StartError {
    TlsModuleMissing,
    Failed(String),
}
