//! Property tests: `parse(write(m)) == m` for generated messages, and any split of a stream
//! of several messages yields the same parse.

mod common;

use common::{assert_paths_agree, parse_in_pieces, parse_in_pieces_with};
use msrp_proto::message::{
    body_contains_end_line, parse_messages, ByteRange, Continuation, FailureReport, HeaderKind,
    Limits, Message, MessageHead, Method, StatusCode,
};
use msrp_proto::uri::MsrpUri;
use proptest::prelude::*;

fn tid() -> impl Strategy<Value = String> {
    // ident = ALPHANUM 3*31 ident-char; short ids with "abcd" prefixes collide more often
    // with the tricky body fragments below.
    prop_oneof!["[a-zA-Z0-9][a-zA-Z0-9.+%=-]{3,31}", "abcd[0-9+=.-]{0,3}",]
}

fn uri() -> impl Strategy<Value = MsrpUri> {
    (
        prop_oneof![Just("msrp"), Just("msrps")],
        prop::option::of("[a-z]{1,6}"),
        prop_oneof![
            "[a-z]{1,8}\\.example\\.(com|net)".prop_map(|s| s),
            Just("192.0.2.7".to_string()),
            Just("[2001:db8::1]".to_string()),
        ],
        1u16..,
        prop::option::of("[a-zA-Z0-9+=/_~.-]{1,12}"),
        prop_oneof![Just("tcp"), Just("ws"), Just("TCP")],
    )
        .prop_map(|(scheme, user, host, port, sid, transport)| {
            let mut s = format!("{scheme}://");
            if let Some(u) = user {
                s += &u;
                s.push('@');
            }
            s += &format!("{host}:{port}");
            if let Some(sid) = sid {
                s.push('/');
                s += &sid;
            }
            s.push(';');
            s += transport;
            MsrpUri::parse(&s).unwrap()
        })
}

fn path() -> impl Strategy<Value = Vec<MsrpUri>> {
    prop::collection::vec(uri(), 1..4)
}

#[derive(Debug, Clone)]
enum Extra {
    MessageId(String),
    Range(ByteRange),
    Success(bool),
    Failure(FailureReport),
    Status(u16, Option<String>),
    Expires(HeaderKind, u32),
    Ext(String, String),
    Auth(String),
}

fn text() -> impl Strategy<Value = String> {
    // utf8text: HTAB, printable ASCII, non-ASCII
    "[\\t -~é€😀]{0,20}"
}

fn extra() -> impl Strategy<Value = Extra> {
    prop_oneof![
        "[a-zA-Z0-9][a-zA-Z0-9.+%=-]{3,31}".prop_map(Extra::MessageId),
        (
            1u64..1000,
            prop::option::of(0u64..2000),
            prop::option::of(0u64..3000)
        )
            .prop_filter_map("valid range", |(s, e, t)| ByteRange::new(s, e, t).ok())
            .prop_map(Extra::Range),
        any::<bool>().prop_map(Extra::Success),
        prop_oneof![
            Just(FailureReport::Yes),
            Just(FailureReport::No),
            Just(FailureReport::Partial)
        ]
        .prop_map(Extra::Failure),
        (0u16..1000, prop::option::of("[ -~]{0,12}")).prop_map(|(c, t)| Extra::Status(c, t)),
        (
            prop_oneof![
                Just(HeaderKind::Expires),
                Just(HeaderKind::MinExpires),
                Just(HeaderKind::MaxExpires)
            ],
            any::<u32>()
        )
            .prop_map(|(k, v)| Extra::Expires(k, v)),
        ("X-[A-Za-z0-9-]{1,10}", text()).prop_map(|(n, v)| Extra::Ext(n, v)),
        "Digest [a-z]{1,6}=\"[a-z0-9]{1,10}\"".prop_map(Extra::Auth),
    ]
}

fn body(tid: String) -> impl Strategy<Value = Vec<u8>> {
    let tricky = vec![
        b"\r\n".to_vec(),
        b"\r".to_vec(),
        b"-------".to_vec(),
        b"$".to_vec(),
        b"+".to_vec(),
        b"#".to_vec(),
        tid.clone().into_bytes(),
        format!("\r\n-------{tid}x").into_bytes(),
        format!("-------{tid}+y").into_bytes(),
    ];
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(tricky),
            prop::collection::vec(any::<u8>(), 0..40),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

fn message() -> impl Strategy<Value = Message> {
    tid().prop_flat_map(|tid| {
        let start = prop_oneof![
            prop_oneof![
                Just(Method::Send),
                Just(Method::Report),
                Just(Method::Auth),
                "[A-Z]{1,10}".prop_map(|m| Method::parse(&m).unwrap()),
            ]
            .prop_map(Ok),
            (100u16..1000, prop::option::of(text())).prop_map(Err),
        ];
        (
            Just(tid.clone()),
            start,
            path(),
            path(),
            prop::collection::vec(extra(), 0..6),
            prop::option::of((body(tid), "(text|application)/[a-z+.-]{1,10}")),
            prop_oneof![
                Just(Continuation::Complete),
                Just(Continuation::More),
                Just(Continuation::Abort)
            ],
        )
            .prop_filter_map(
                "valid message",
                |(tid, start, to, from, extras, body, cont)| {
                    let (mut head, request) = match start {
                        Ok(m) => (MessageHead::request(&tid, m).ok()?, true),
                        Err((code, comment)) => (
                            MessageHead::response(&tid, StatusCode(code), comment.as_deref())
                                .ok()?,
                            false,
                        ),
                    };
                    head.push_to_path(&to).ok()?;
                    head.push_from_path(&from).ok()?;
                    for e in extras {
                        // duplicates of single headers are refused: skip them
                        let _ = match e {
                            Extra::MessageId(v) => head.push_message_id(&v),
                            Extra::Range(r) => head.push_byte_range(r),
                            Extra::Success(b) => head.push_success_report(b),
                            Extra::Failure(f) => head.push_failure_report(f),
                            Extra::Status(c, t) => head.push_status(StatusCode(c), t.as_deref()),
                            Extra::Expires(k, v) => head.push_expires(k, v),
                            Extra::Ext(n, v) => head.push(&n, &v),
                            Extra::Auth(v) => head.push("Authorization", &v),
                        };
                    }
                    let body = match body {
                        Some((b, ct)) if request => {
                            head.push_content_type(&ct).ok()?;
                            if body_contains_end_line(&b, &tid) {
                                return None;
                            }
                            Some(b)
                        }
                        _ => None,
                    };
                    let continuation = if request {
                        cont
                    } else {
                        Continuation::Complete
                    };
                    Some(Message {
                        head,
                        body,
                        continuation,
                    })
                },
            )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_of_write_is_identity(m in message()) {
        let wire = m.encode().unwrap();
        let back = parse_messages(&wire, Limits::default()).unwrap();
        prop_assert_eq!(back.len(), 1);
        prop_assert_eq!(&back[0], &m);
        // and writing the parsed message gives the same bytes
        prop_assert_eq!(back[0].encode().unwrap(), wire);
    }

    #[test]
    fn any_split_gives_the_same_parse(
        msgs in prop::collection::vec(message(), 1..5),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..24),
    ) {
        let mut wire = Vec::new();
        for m in &msgs {
            m.encode_into(&mut wire).unwrap();
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len())).collect();
        cuts.sort_unstable();
        let whole = parse_messages(&wire, Limits::default()).unwrap();
        prop_assert_eq!(&whole, &msgs);
        let (pieces, _) = parse_in_pieces(&wire, &cuts, Limits::default());
        prop_assert_eq!(pieces.unwrap(), whole.clone());
        // whole messages when the buffer holds them, parts otherwise (parse_message_ref)
        let (pieces, _) = parse_in_pieces_with(&wire, &cuts, Limits::default(), true);
        prop_assert_eq!(pieces.unwrap(), whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_split_consistently(
        data in prop::collection::vec(any::<u8>(), 0..400),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut input = b"MSRP abcd1234 SEND\r\nTo-Path: msrp://a.example.com:1/s;tcp\r\n".to_vec();
        input.extend_from_slice(&data);
        let whole = parse_messages(&input, Limits::default());
        let (split, _) = parse_in_pieces(&input, &[cut.index(input.len())], Limits::default());
        prop_assert_eq!(&whole, &split);
        let (split, _) =
            parse_in_pieces_with(&input, &[cut.index(input.len())], Limits::default(), true);
        prop_assert_eq!(whole, split);
        assert_paths_agree(&input, Limits::default());
    }

    /// The whole-head fast path accepts only what the general path accepts, with the same
    /// result, and rejects nothing differently: generated messages with one byte changed,
    /// removed or inserted, under default and tight limits.
    #[test]
    fn fast_and_general_head_paths_agree(
        msgs in prop::collection::vec(message(), 1..3),
        at in any::<prop::sample::Index>(),
        byte in prop_oneof![
            Just(b'\r'), Just(b'\n'), Just(b' '), Just(b':'), Just(b'-'), Just(0u8),
            Just(0x7f), Just(0xc3), Just(0xff), Just(b'\t'), Just(b'/'), Just(b';'),
            any::<u8>()
        ],
        op in 0u8..4,
        tight in any::<bool>(),
    ) {
        let mut wire = Vec::new();
        for m in &msgs {
            m.encode_into(&mut wire).unwrap();
        }
        let i = at.index(wire.len());
        match op {
            0 => wire[i] = byte,
            1 => { wire.remove(i); }
            2 => wire.insert(i, byte),
            _ => {}
        }
        let limits = if tight {
            Limits { max_start_line: 40, max_head_bytes: 200, max_headers: 5, max_body_bytes: 64, max_path_uris: 2 }
        } else {
            Limits::default()
        };
        assert_paths_agree(&wire, limits);
    }
}
