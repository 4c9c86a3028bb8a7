//! Instruction-count driver for the `send_200b` benchmark (see docs/performance.md):
//! runs one side of it N times, for `valgrind --tool=callgrind`, whose counts are
//! deterministic where the shared machine's timings are not.
//!
//! ```text
//! send_200b_count msrp|msrp_events|msrp_owned|httparse N
//! ```
//! Instructions per message = (count with N) - (count with 0), divided by N.
#![allow(missing_docs)]

#[path = "../benches/common/mod.rs"]
mod common;

use msrp_proto::message::{Limits, Parser};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (side, n) = match (args.get(1), args.get(2).and_then(|n| n.parse::<u64>().ok())) {
        (Some(s), Some(n))
            if ["msrp", "msrp_events", "msrp_owned", "httparse"].contains(&s.as_str()) =>
        {
            (s.clone(), n)
        }
        _ => {
            eprintln!("usage: send_200b_count msrp|msrp_events|msrp_owned|httparse N");
            std::process::exit(2);
        }
    };
    let http = common::http_equivalent();
    let mut out = Vec::with_capacity(512);
    let mut p = Parser::new(Limits::default());
    // Warm-up outside the count difference: one of each, whatever N is.
    common::parse_and_write(&mut p, common::SEND, &mut out);
    assert_eq!(out, common::SEND);
    common::parse_and_write_events(&mut p, common::SEND, &mut out);
    assert_eq!(out, common::SEND);
    common::parse_and_write_owned(&mut p, common::SEND, &mut out);
    assert_eq!(out, common::SEND);
    common::httparse_parse(&http);
    for _ in 0..n {
        match side.as_str() {
            "msrp" => common::parse_and_write(&mut p, common::SEND, &mut out),
            "msrp_events" => common::parse_and_write_events(&mut p, common::SEND, &mut out),
            "msrp_owned" => common::parse_and_write_owned(&mut p, common::SEND, &mut out),
            _ => common::httparse_parse(&http),
        }
    }
}
