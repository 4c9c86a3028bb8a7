//! Codec benchmarks, each with its baseline measured in the same run (see
//! docs/performance.md):
//!
//! - `body_1mib`: a SEND with a 1 MiB body arriving in 64 KiB reads, through the parser,
//!   against a bare `memchr::memmem` scan of the same bytes for the end-line.
//! - `send_200b`: parse and write a typical ~200-byte SEND, against `httparse` parsing an
//!   HTTP request with the same number and sizes of headers.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use memchr::memmem;
use msrp_proto::message::{Event, Limits, Parser};

mod common;
use common::{http_equivalent, httparse_parse, parse_and_write, SEND};

const CHUNK: usize = 64 * 1024;

fn big_message() -> (Vec<u8>, usize) {
    let mut m = b"MSRP a786hjs2 SEND\r\nTo-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\nFrom-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\nMessage-ID: 87652491\r\nByte-Range: 1-1048576/1048576\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
    let head_len = m.len();
    // Deterministic pseudo-random body with a CRLF about every 80 bytes and an occasional
    // "\r\n-------" (another transaction's end-line) to keep the scanner honest.
    let mut x: u32 = 0x1234_5678;
    let mut body = Vec::with_capacity(1 << 20);
    while body.len() < 1 << 20 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        match x % 997 {
            0..=11 => body.extend_from_slice(b"\r\n"),
            12 => body.extend_from_slice(b"\r\n-------other99$"),
            _ => body.push((x >> 8) as u8 | 0x20),
        }
    }
    body.truncate(1 << 20);
    m.extend_from_slice(&body);
    m.extend_from_slice(b"\r\n-------a786hjs2$\r\n");
    (m, head_len)
}

/// Drives the parser as a reader would: each call sees the unconsumed bytes plus the next
/// 64 KiB read (windows of one buffer, so no copying is measured).
fn parse_big(data: &[u8]) -> u64 {
    let mut p = Parser::new(Limits::default());
    let mut pos = 0;
    let mut filled = 0;
    let mut body = 0u64;
    loop {
        filled = (filled + CHUNK).min(data.len());
        loop {
            let (n, ev) = p.parse(&data[pos..filled]).unwrap();
            pos += n;
            match ev {
                None => break,
                Some(Event::Body(b)) => body += black_box(b).len() as u64,
                Some(Event::End(_)) => return body,
                Some(Event::Head { head, .. }) => {
                    black_box(head);
                }
            }
        }
    }
}

fn memmem_big(data: &[u8], finder: &memmem::Finder<'_>) -> usize {
    // The same 64 KiB reads; a match may straddle two reads, so each search starts the
    // needle length before the read boundary.
    let mut at = 0;
    while at < data.len() {
        let from = at.saturating_sub(finder.needle().len() - 1);
        let end = (at + CHUNK).min(data.len());
        if let Some(i) = finder.find(&data[from..end]) {
            return from + i;
        }
        at = end;
    }
    0
}

fn body_1mib(c: &mut Criterion) {
    let (data, _) = big_message();
    let finder = memmem::Finder::new(b"\r\n-------a786hjs2$");
    assert_eq!(parse_big(&data), 1 << 20);
    assert!(memmem_big(&data, &finder) > 0);
    let mut g = c.benchmark_group("body_1mib");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function(BenchmarkId::new("baseline", "memmem_scan"), |b| {
        b.iter(|| memmem_big(black_box(&data), &finder))
    });
    g.bench_function(BenchmarkId::new("msrp", "parser"), |b| {
        b.iter(|| parse_big(black_box(&data)))
    });
    g.finish();
}

fn send_200b(c: &mut Criterion) {
    let http = http_equivalent();
    let mut out = Vec::with_capacity(512);
    let mut p = Parser::new(Limits::default());
    parse_and_write(&mut p, SEND, &mut out);
    assert_eq!(out, SEND);
    {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut req = httparse::Request::new(&mut headers);
        assert!(req.parse(&http).unwrap().is_complete());
        assert_eq!(req.headers.len(), 5);
        // same size as the MSRP head and body (the HTTP request has no end-line)
        assert_eq!(http.len(), SEND.len() - b"\r\n-------a786hjs2$\r\n".len());
    }
    let mut g = c.benchmark_group("send_200b");
    g.throughput(Throughput::Bytes(SEND.len() as u64));
    g.bench_function(BenchmarkId::new("baseline", "httparse_parse"), |b| {
        b.iter(|| {
            httparse_parse(black_box(&http));
        })
    });
    g.bench_function(BenchmarkId::new("msrp", "parse_and_write"), |b| {
        b.iter(|| parse_and_write(&mut p, black_box(SEND), &mut out))
    });
    // Not part of the target: parsing the head and the typed getters a session calls.
    g.bench_function(
        BenchmarkId::new("msrp", "parse_head_and_typed_access"),
        |b| {
            b.iter(|| {
                let mut p = Parser::new(Limits::default());
                if let Ok((_, Some(Event::Head { head, .. }))) = p.parse(black_box(SEND)) {
                    black_box((
                        head.to_path(),
                        head.from_path(),
                        head.message_id(),
                        head.byte_range(),
                        head.content_type().map(|c| c.media_type().len()),
                    ));
                }
            })
        },
    );
    g.finish();
}

criterion_group!(benches, body_1mib, send_200b);
criterion_main!(benches);
