//! Throughput of an MSRP file transfer over loopback (one 64 MiB message streamed from an
//! `AsyncRead`, through the sans-IO core and the tokio driver, received and counted) against a
//! raw copy of the same bytes measured in the same run:
//!
//! - group `loopback_transfer_64MiB` (issue 4): MSRP over plain TCP against the raw tokio TCP
//!   copy of `common::tcp_copy`;
//! - group `loopback_tls_transfer_64MiB` (issue 5): MSRP over TLS (`msrps:`, fingerprints
//!   pinned from the SDP both ways) against the raw tokio-rustls copy of `common::tls_copy`
//!   with the same kind of pinned configurations.
//!
//! The `*_default` variants use the stack's default configuration (`Options::new` /
//! `Options::tls`, a direct session: [`SessionConfig::max_chunk_size`] chunks); the
//! `*_chunk_64k` variants use 64 KiB chunks for comparison with the former default. Ratios
//! and the method are in docs/performance.md ("MSRP sessions").
//!
//! Run: `cargo bench -p msrp --bench session_copy`.
//!
//! [`SessionConfig::max_chunk_size`]: msrp::proto::session::SessionConfig::max_chunk_size

#![allow(missing_docs)] // criterion_group! generates an undocumented fn

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use msrp::proto::sdp::SdpAnswer;
use msrp::{MsrpEndpoint, MsrpSession, Options, Reports, SessionNotice, TlsTransport};
use tokio::io::AsyncReadExt;

mod common;

/// Bytes per iteration.
const TOTAL: u64 = 64 * 1024 * 1024;

/// Two endpoints over plain TCP (`tls` false) or TLS (`msrps:`, fingerprints pinned from the
/// SDP, as issue 5 sets them up), with one connected session between them. `chunk`: `None`
/// keeps the default session configuration, `Some(n)` sets `max_chunk_size` to `n`.
async fn session_pair(
    chunk: Option<usize>,
    tls: bool,
) -> (MsrpEndpoint, MsrpEndpoint, MsrpSession, MsrpSession) {
    let addr = "127.0.0.1:0".parse().expect("addr");
    let opts = |tls: bool| {
        let mut o = if tls {
            let t = TlsTransport::generated(None)
                .expect("identity")
                .with_handshake_timeout(Duration::from_secs(10));
            Options::tls(addr, Arc::new(t))
        } else {
            Options::new(addr)
        };
        if let Some(chunk) = chunk {
            o.session.max_chunk_size = chunk;
        }
        o
    };
    let a = MsrpEndpoint::bind(opts(tls)).await.expect("bind");
    let b = MsrpEndpoint::bind(opts(tls)).await.expect("bind");
    let offered = a.create_offer(&a.local_config()).await.expect("offer");
    let offer = offered.offer().clone();
    let (answer, mut sb) = b
        .answer_offer(&offer, &b.local_config())
        .await
        .expect("answer");
    let answer = SdpAnswer::parse(&answer.to_string()).expect("answer parses");
    let mut sa = a.accept_answer(offered, &answer).await.expect("accept");
    sa.connected().await.expect("connected");
    sb.connected().await.expect("connected");
    (a, b, sa, sb)
}

/// Sends one message of `total` bytes from `sa` and waits until `sb` has all of it. As in
/// the raw copies of `common::copy` (a spawned writer task and a spawned reader task), the
/// receiving application is a spawned task: the sending application's reads run in the
/// task `send_stream` spawns. Returns the sessions for the next transfer.
async fn transfer(
    sa: MsrpSession,
    mut sb: MsrpSession,
    total: u64,
) -> (Duration, MsrpSession, MsrpSession) {
    let start = Instant::now();
    let receiver = tokio::spawn(async move {
        let mut got = 0u64;
        loop {
            match sb.next_notice().await.expect("notice") {
                SessionNotice::IncomingData { data, .. } => got += data.len() as u64,
                SessionNotice::IncomingComplete { size, .. } => {
                    assert_eq!((size, got), (total, total));
                    break;
                }
                SessionNotice::Closed(r) => panic!("closed: {r}"),
                _ => {}
            }
        }
        sb
    });
    let out = sa
        .send_stream(
            "application/octet-stream",
            Some(total),
            tokio::io::repeat(0xa5).take(total),
            Reports::default(),
        )
        .await
        .expect("send");
    let sb = receiver.await.expect("receiver");
    let elapsed = start.elapsed();
    // Read the sender's notices too, as an application must.
    let mut sa = sa;
    loop {
        match sa.next_notice().await.expect("notice") {
            SessionNotice::Sent { message_id } if message_id == out.message_id => break,
            SessionNotice::Failed(f) => panic!("{f}"),
            _ => {}
        }
    }
    out.outcome().await.expect("sent");
    (elapsed, sa, sb)
}

/// A benchmark variant: its name, and how it runs `n` transfers (returning their total time).
#[derive(Clone, Copy, Debug)]
enum Variant {
    /// Raw tokio TCP copy.
    Tcp,
    /// Raw tokio-rustls copy.
    Tls,
    /// MSRP session, TLS or not, with this chunk size (`None`: the default configuration).
    Msrp { tls: bool, chunk: Option<usize> },
}

impl Variant {
    fn parse(name: &str) -> Option<Variant> {
        let (tls, rest) = match name {
            "tcp" => return Some(Variant::Tcp),
            "tls" => return Some(Variant::Tls),
            n if n.starts_with("msrps_") => (true, &n[6..]),
            n if n.starts_with("msrp_") => (false, &n[5..]),
            _ => return None,
        };
        let chunk = match rest {
            "default" => None,
            r => Some(
                r.strip_prefix("chunk_")?
                    .strip_suffix('k')?
                    .parse::<usize>()
                    .ok()?
                    * 1024,
            ),
        };
        Some(Variant::Msrp { tls, chunk })
    }

    fn name(self) -> String {
        match self {
            Variant::Tcp => "tcp".into(),
            Variant::Tls => "tls".into(),
            Variant::Msrp { tls, chunk } => format!(
                "{}_{}",
                if tls { "msrps" } else { "msrp" },
                chunk.map_or("default".into(), |c| format!("chunk_{}k", c / 1024))
            ),
        }
    }
}

/// Runs `n` transfers of a variant (set-up untimed) and returns the timed total.
struct Runner {
    variant: Variant,
    tls_configs: Option<(
        Arc<msrp::rustls::ClientConfig>,
        Arc<msrp::rustls::ServerConfig>,
    )>,
    pair: Option<Option<(MsrpEndpoint, MsrpEndpoint, MsrpSession, MsrpSession)>>,
}

impl Runner {
    async fn new(variant: Variant) -> Runner {
        let mut r = Runner {
            variant,
            tls_configs: None,
            pair: None,
        };
        match variant {
            Variant::Tcp => {}
            Variant::Tls => r.tls_configs = Some(common::pinned_configs()),
            Variant::Msrp { tls, chunk } => r.pair = Some(Some(session_pair(chunk, tls).await)),
        }
        r
    }

    async fn run(&mut self, n: u64) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..n {
            total += match (&self.variant, &mut self.pair) {
                (Variant::Tcp, _) => common::tcp_copy(TOTAL).await,
                (Variant::Tls, _) => {
                    let (c, s) = self.tls_configs.clone().expect("configs");
                    common::tls_copy(c, s, TOTAL).await
                }
                (_, Some(pair)) => {
                    let (a, b, sa, sb) = pair.take().expect("pair");
                    let (t, sa, sb) = transfer(sa, sb, TOTAL).await;
                    *pair = Some((a, b, sa, sb));
                    t
                }
                (_, None) => unreachable!("session pair set up in new"),
            };
        }
        total
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn group(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, variants: &[Variant]) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(TOTAL));
    for &v in variants {
        let mut runner = rt.block_on(Runner::new(v));
        group.bench_function(v.name(), |b| {
            b.iter_custom(|iters| rt.block_on(runner.run(iters)))
        });
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let kb64 = Some(64 * 1024);
    group(
        c,
        &rt,
        "loopback_transfer_64MiB",
        &[
            Variant::Tcp,
            Variant::Msrp {
                tls: false,
                chunk: None,
            },
            Variant::Msrp {
                tls: false,
                chunk: kb64,
            },
        ],
    );
    group(
        c,
        &rt,
        "loopback_tls_transfer_64MiB",
        &[
            Variant::Tls,
            Variant::Msrp {
                tls: true,
                chunk: None,
            },
            Variant::Msrp {
                tls: true,
                chunk: kb64,
            },
        ],
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    targets = bench
}

/// `SESSION_COPY_ONCE=<variant>:<n>[,<variant>:<n>...]`: runs `n` transfers of each variant
/// (in turn, on one runtime), prints each variant's mean time and throughput to stderr and
/// exits, without criterion. Variants: `tcp`, `tls`, `msrp_default`, `msrps_default`,
/// `msrp_chunk_<K>k`, `msrps_chunk_<K>k` (any chunk size in KiB). With `n` = 0 only the
/// set-up runs: under `valgrind --tool=callgrind`, the count for `n` minus the count for 0
/// is the instructions of `n` transfers (see docs/performance.md).
fn once(spec: &str) {
    let rt = runtime();
    for item in spec.split(',') {
        let (variant, n) = item.split_once(':').expect("variant:n");
        let v = Variant::parse(variant).unwrap_or_else(|| panic!("unknown variant {variant}"));
        let n: u64 = n.parse().expect("n");
        let elapsed = rt.block_on(async {
            let mut r = Runner::new(v).await;
            r.run(n).await
        });
        if n > 0 {
            let per = elapsed / n as u32;
            let mib_s = (TOTAL as f64 / (1024.0 * 1024.0)) / per.as_secs_f64();
            eprintln!(
                "{:<20} {:>10.1?} per 64 MiB  {:>8.0} MiB/s",
                v.name(),
                per,
                mib_s
            );
        }
    }
}

/// `SESSION_COPY_PAIRS=<baseline>,<variant>:<n>`: `n` rounds, each one transfer of the
/// baseline then one of the variant, alternating on one runtime (both set up before the
/// first round); prints the median of the per-round ratios (baseline time / variant time,
/// that is variant throughput / baseline throughput) and their spread. On a shared machine
/// the load changes within seconds; rounds of two transfers 0.1 s apart see about the same
/// load, so their ratio is steadier than ratios of criterion groups measured a minute
/// apart.
fn pairs(spec: &str) {
    let (names, n) = spec.rsplit_once(':').expect("baseline,variant:n");
    let (base, var) = names.split_once(',').expect("baseline,variant");
    let parse = |v: &str| Variant::parse(v).unwrap_or_else(|| panic!("unknown variant {v}"));
    let (base, var) = (parse(base), parse(var));
    let n: usize = n.parse().expect("n");
    let rt = runtime();
    let mut ratios = rt.block_on(async {
        let mut b = Runner::new(base).await;
        let mut v = Runner::new(var).await;
        // One untimed round to warm up both.
        b.run(1).await;
        v.run(1).await;
        let mut ratios = Vec::with_capacity(n);
        for _ in 0..n {
            let tb = b.run(1).await;
            let tv = v.run(1).await;
            ratios.push(tb.as_secs_f64() / tv.as_secs_f64());
        }
        ratios
    });
    ratios.sort_by(f64::total_cmp);
    let q = |f: f64| ratios[((ratios.len() - 1) as f64 * f).round() as usize];
    eprintln!(
        "{} / {}: median ratio {:.2} (quartiles {:.2} to {:.2}, {} rounds)",
        var.name(),
        base.name(),
        q(0.5),
        q(0.25),
        q(0.75),
        ratios.len()
    );
}

fn main() {
    if let Ok(spec) = std::env::var("SESSION_COPY_ONCE") {
        once(&spec);
        return;
    }
    if let Ok(spec) = std::env::var("SESSION_COPY_PAIRS") {
        pairs(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
