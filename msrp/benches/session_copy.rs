//! Throughput of an MSRP file transfer over loopback TCP (one 64 MiB message streamed from an
//! `AsyncRead`, through the sans-IO core and the tokio driver, received and counted), against
//! a raw tokio TCP copy of the same bytes in the same run (ratio in docs/performance.md,
//! section "MSRP sessions"), and the same transfer over TLS (`msrps:`, fingerprints pinned)
//! against a raw tokio-rustls copy with the same kind of configurations (`common::tls_copy`,
//! section "MSRP sessions over TLS").
//!
//! Run: `cargo bench -p msrp --bench session_copy`.

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
/// SDP, as issue 5 sets them up), with one connected session between them.
async fn session_pair(
    chunk: usize,
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
        o.session.max_chunk_size = chunk;
        o.session.send_window = 2 * chunk;
        o
    };
    let a = MsrpEndpoint::bind(opts(tls)).await.expect("bind");
    let b = MsrpEndpoint::bind(opts(tls)).await.expect("bind");
    session_between(a, b).await
}

async fn session_between(
    a: MsrpEndpoint,
    b: MsrpEndpoint,
) -> (MsrpEndpoint, MsrpEndpoint, MsrpSession, MsrpSession) {
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

/// Sends one message of `total` bytes from `sa` and waits until `sb` has all of it.
async fn transfer(sa: &mut MsrpSession, sb: &mut MsrpSession, total: u64) -> Duration {
    let start = Instant::now();
    let out = sa
        .send_stream(
            "application/octet-stream",
            Some(total),
            tokio::io::repeat(0xa5).take(total),
            Reports::default(),
        )
        .await
        .expect("send");
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
    let elapsed = start.elapsed();
    // Read the sender's notices too, as an application must.
    loop {
        match sa.next_notice().await.expect("notice") {
            SessionNotice::Sent { message_id } if message_id == out.message_id => break,
            SessionNotice::Failed(f) => panic!("{f}"),
            _ => {}
        }
    }
    out.outcome().await.expect("sent");
    elapsed
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("loopback_transfer_64MiB");
    group.throughput(Throughput::Bytes(TOTAL));
    group.bench_function("tcp", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += common::tcp_copy(TOTAL).await;
                }
                total
            })
        })
    });
    for chunk in [64 * 1024, 256 * 1024] {
        let (_a, _b, mut sa, mut sb) = rt.block_on(session_pair(chunk, false));
        group.bench_function(format!("msrp_chunk_{}k", chunk / 1024), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += transfer(&mut sa, &mut sb, TOTAL).await;
                    }
                    total
                })
            })
        });
    }
    group.finish();

    // Issue 5: the same transfer over TLS, against a raw tokio-rustls copy (pinned
    // configurations, as `tls_copy` measures it) in the same run.
    let mut group = c.benchmark_group("loopback_tls_transfer_64MiB");
    group.throughput(Throughput::Bytes(TOTAL));
    let (ccfg, scfg) = common::pinned_configs();
    group.bench_function("tls", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += common::tls_copy(ccfg.clone(), scfg.clone(), TOTAL).await;
                }
                total
            })
        })
    });
    for chunk in [64 * 1024, 256 * 1024] {
        let (_a, _b, mut sa, mut sb) = rt.block_on(session_pair(chunk, true));
        group.bench_function(format!("msrps_chunk_{}k", chunk / 1024), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += transfer(&mut sa, &mut sb, TOTAL).await;
                    }
                    total
                })
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    targets = bench
}
/// `SESSION_COPY_ONCE=<variant>:<n>` (variant `tcp`, `msrp_chunk_64k`, `msrp_chunk_256k`,
/// `tls`, `msrps_chunk_64k`, `msrps_chunk_256k`):
/// runs `n` transfers of that variant and exits, without criterion, for instruction counts
/// under `valgrind --tool=callgrind` (run with `n` = 0 and `n` = 2 and take the difference
/// over 128 MiB; see docs/performance.md).
fn once(spec: &str) {
    let (variant, n) = spec.split_once(':').expect("variant:n");
    let n: u32 = n.parse().expect("n");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        if variant == "tcp" {
            for _ in 0..n {
                common::tcp_copy(TOTAL).await;
            }
            return;
        }
        if variant == "tls" {
            let (ccfg, scfg) = common::pinned_configs();
            for _ in 0..n {
                common::tls_copy(ccfg.clone(), scfg.clone(), TOTAL).await;
            }
            return;
        }
        let (chunk, tls) = match variant {
            "msrp_chunk_64k" => (64 * 1024, false),
            "msrp_chunk_256k" => (256 * 1024, false),
            "msrps_chunk_64k" => (64 * 1024, true),
            "msrps_chunk_256k" => (256 * 1024, true),
            v => panic!("unknown variant {v}"),
        };
        let (_a, _b, mut sa, mut sb) = session_pair(chunk, tls).await;
        for _ in 0..n {
            transfer(&mut sa, &mut sb, TOTAL).await;
        }
    });
}

fn main() {
    if let Ok(spec) = std::env::var("SESSION_COPY_ONCE") {
        once(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
