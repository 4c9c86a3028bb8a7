//! The message parser on arbitrary bytes: never panics; whatever parses is written back
//! byte for byte by the writer (the parser keeps the wire text, and the writer must accept
//! everything the parser does).
#![no_main]

use libfuzzer_sys::fuzz_target;
use msrp_proto::message::{body_contains_end_line, parse_messages, Limits};

fuzz_target!(|data: &[u8]| {
    // The first byte picks tight or default limits, so the limit paths get exercised too.
    let (limits, input) = match data.split_first() {
        Some((&b, rest)) if b & 1 == 1 => (
            Limits {
                max_start_line: 48,
                max_head_bytes: 256,
                max_headers: 6,
                max_body_bytes: 64,
                max_path_uris: 2,
            },
            rest,
        ),
        Some((_, rest)) => (Limits::default(), rest),
        None => return,
    };
    match parse_messages(input, limits) {
        Ok(msgs) => {
            let mut out = Vec::with_capacity(input.len());
            for m in &msgs {
                if let Some(b) = &m.body {
                    assert!(!body_contains_end_line(b, m.head.transaction_id()));
                }
                m.encode_into(&mut out).expect("a parsed message must encode");
            }
            assert_eq!(out, input, "writer output differs from parsed input");
        }
        Err(e) => {
            assert!(e.offset() <= input.len() as u64, "error offset beyond input: {e}");
            let _ = e.status_code();
        }
    }
});
