//! MSRP file transfer over TLS between two endpoints (the `msrp` driver with
//! [`msrp::TlsTransport`], fingerprint-pinned both ways) against a raw tokio-rustls copy of
//! the same bytes with the same pinned configurations, in the same run (issue 5: target at
//! least 0.8x; ratio in docs/performance.md, section "TLS").
//!
//! Run: `cargo bench -p msrp --bench msrp_tls`.

#![allow(missing_docs)] // criterion_group! generates an undocumented fn

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use msrp::proto::sdp::{Reachability, SdpAnswer, SdpOffer};
use msrp::{MsrpEndpoint, MsrpSession, Options, Reports, SessionNotice, TlsTransport};
use tokio::io::AsyncReadExt;

mod common;

/// Bytes per message / copy.
const TOTAL: u64 = 64 * 1024 * 1024;

async fn endpoint() -> MsrpEndpoint {
    let tls = Arc::new(TlsTransport::generated(None).expect("identity"));
    MsrpEndpoint::bind(Options::tls("127.0.0.1:0".parse().expect("addr"), tls))
        .await
        .expect("bind")
}

/// Two connected TLS sessions (offerer active, answerer passive).
async fn session_pair() -> (MsrpEndpoint, MsrpEndpoint, MsrpSession, MsrpSession) {
    let (a, b) = (endpoint().await, endpoint().await);
    let mut ca = a.local_config();
    ca.reachability = Reachability::BehindNat;
    let offered = a.create_offer(&ca).await.expect("offer");
    let offer = SdpOffer::parse(&offered.offer().to_string()).expect("offer");
    let (answer, mut sb) = b
        .answer_offer(&offer, &b.local_config())
        .await
        .expect("answer");
    let answer = SdpAnswer::parse(&answer.to_string()).expect("answer");
    let mut sa = a.accept_answer(offered, &answer).await.expect("accept");
    sa.connected().await.expect("offerer connected");
    sb.connected().await.expect("answerer connected");
    (a, b, sa, sb)
}

/// Sends one `TOTAL`-byte message streamed from a reader and returns the time until the
/// receiver has seen all of its bytes.
async fn transfer(sa: &MsrpSession, sb: &mut MsrpSession) -> Duration {
    let start = Instant::now();
    let reader = tokio::io::repeat(0xa5).take(TOTAL);
    let out = sa
        .send_stream(
            "application/octet-stream",
            Some(TOTAL),
            reader,
            Reports::default(),
        )
        .await
        .expect("send");
    let mut got = 0u64;
    loop {
        match sb.next_notice().await.expect("notices") {
            SessionNotice::IncomingData { data, .. } => got += data.len() as u64,
            SessionNotice::IncomingComplete { size, .. } => {
                assert_eq!((size, got), (TOTAL, TOTAL));
                break;
            }
            SessionNotice::Closed(r) => panic!("closed: {r}"),
            _ => {}
        }
    }
    let elapsed = start.elapsed();
    out.outcome().await.expect("outcome");
    elapsed
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (ccfg, scfg) = common::pinned_configs();
    let (_a, _b, sa, sb) = rt.block_on(session_pair());
    let sb = tokio::sync::Mutex::new(sb);
    let mut group = c.benchmark_group("tls_transfer_64MiB");
    group.throughput(Throughput::Bytes(TOTAL));
    group.bench_function("tls_copy", |b| {
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
    group.bench_function("msrp_tls", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut sb = sb.lock().await;
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += transfer(&sa, &mut sb).await;
                }
                total
            })
        })
    });
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
criterion_main!(benches);
