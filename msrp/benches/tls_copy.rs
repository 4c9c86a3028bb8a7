//! Throughput of a bulk copy over loopback: raw TCP against raw tokio-rustls with our pinned
//! configurations, in the same run (ratio in docs/performance.md, section "TLS").
//!
//! Run: `cargo bench -p msrp --bench tls_copy`.

#![allow(missing_docs)] // criterion_group! generates an undocumented fn

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

mod common;

/// Bytes copied per iteration.
const TOTAL: u64 = 64 * 1024 * 1024;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (ccfg, scfg) = common::pinned_configs();
    let mut group = c.benchmark_group("loopback_copy_64MiB");
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
    group.bench_function("tls_pinned", |b| {
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
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
