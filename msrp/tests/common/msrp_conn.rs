//! A minimal MSRP connection for interop tests: messages written with our codec writer, read
//! back with our push parser, every wait bounded.
#![allow(dead_code)]

use std::time::Duration;

use msrp::proto::message::{Continuation, Event, Limits, Message, MessageHead, Parser};
use msrp::proto::relay::client::{RelayClient, RelayEvent};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bound on every network wait.
pub const WAIT: Duration = Duration::from_secs(10);
/// Most bytes buffered while waiting for one message.
pub const MAX_FRAME: usize = 256 * 1024;

/// A message as parsed by our codec, with its wire text for assertion messages.
#[derive(Debug)]
pub struct Received {
    /// Start line and headers.
    pub head: MessageHead,
    /// Body, if the message had one.
    pub body: Option<Vec<u8>>,
    /// What came over the wire (lossy UTF-8).
    pub raw: String,
}

impl Received {
    /// The status code of a response (panics on a request).
    pub fn code(&self) -> u16 {
        self.head
            .status_code()
            .unwrap_or_else(|| panic!("not a response: {}", self.raw))
            .0
    }
}

/// What a bounded read produced.
#[derive(Debug)]
pub enum ReadOutcome {
    /// A complete message.
    Message(Received),
    /// Nothing complete within the time given.
    Nothing,
    /// The peer closed (or reset) the connection.
    Closed,
}

/// One MSRP connection.
pub struct Conn<S> {
    stream: S,
    buf: Vec<u8>,
    parser: Parser,
    next_tid: u32,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Wraps a connected stream.
    pub fn new(stream: S) -> Self {
        Conn {
            stream,
            buf: Vec::new(),
            parser: Parser::new(Limits::default()),
            next_tid: 1,
        }
    }

    /// A transaction id unique on this connection.
    pub fn next_tid(&mut self, prefix: &str) -> String {
        let tid = format!("{prefix}{}x{}", self.next_tid, std::process::id());
        self.next_tid += 1;
        tid
    }

    /// Writes raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Encodes and sends a message.
    pub async fn send(&mut self, msg: &Message) {
        let wire = msg.encode().unwrap();
        self.send_raw(&wire).await;
    }

    /// Reads the next message within `within`.
    pub async fn read_within(&mut self, within: Duration) -> ReadOutcome {
        let deadline = tokio::time::Instant::now() + within;
        let mut head = None;
        let mut body: Option<Vec<u8>> = None;
        let mut raw = String::new();
        loop {
            loop {
                let (used, event) = self
                    .parser
                    .parse(&self.buf)
                    .unwrap_or_else(|e| panic!("peer sent a frame we cannot parse: {e}"));
                raw.push_str(&String::from_utf8_lossy(&self.buf[..used]));
                let done = match event {
                    None => {
                        self.buf.drain(..used);
                        break;
                    }
                    Some(Event::Head { head: h, body: b }) => {
                        head = Some(h);
                        body = b.then(Vec::new);
                        false
                    }
                    Some(Event::Body(b)) => {
                        body.get_or_insert_with(Vec::new).extend_from_slice(b);
                        false
                    }
                    Some(Event::End(flag)) => {
                        assert_eq!(flag, Continuation::Complete, "{raw}");
                        true
                    }
                };
                self.buf.drain(..used);
                if done {
                    let head = head.take().expect("end-line after a head");
                    return ReadOutcome::Message(Received {
                        head,
                        body: body.take(),
                        raw,
                    });
                }
            }
            assert!(
                self.buf.len() < MAX_FRAME,
                "message larger than {MAX_FRAME}"
            );
            let mut chunk = [0u8; 16384];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return ReadOutcome::Nothing,
                Ok(Err(_)) | Ok(Ok(0)) => return ReadOutcome::Closed,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads the next message; panics if none arrives within [`WAIT`].
    pub async fn read_message(&mut self) -> Received {
        match self.read_within(WAIT).await {
            ReadOutcome::Message(m) => m,
            ReadOutcome::Nothing => panic!("no complete message within {WAIT:?}"),
            ReadOutcome::Closed => panic!(
                "peer closed the connection; buffered: {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Reads the next message, which must be a response without a body.
    pub async fn read_response(&mut self) -> Received {
        let r = self.read_message().await;
        assert!(
            r.head.status_code().is_some(),
            "expected a response: {}",
            r.raw
        );
        assert!(r.body.is_none(), "a response has no body: {}", r.raw);
        r
    }
}

/// Drives our sans-IO relay client over the connection until it has nothing left to send;
/// returns its events.
pub async fn drive_client<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    client: &mut RelayClient,
    rng: &mut dyn FnMut(&mut [u8]),
) -> Vec<RelayEvent> {
    let now = std::time::Instant::now();
    for _ in 0..10 {
        let Some(msg) = client.poll_transmit(now, &mut *rng) else {
            break;
        };
        conn.send(&msg).await;
        let r = conn.read_response().await;
        assert!(
            client.handle_response(now, &r.head),
            "response not claimed by the client: {}",
            r.raw
        );
    }
    std::iter::from_fn(|| client.poll_event()).collect()
}

/// A small xorshift generator for transaction ids and cnonces in tests.
pub fn test_rng() -> impl FnMut(&mut [u8]) {
    let mut state = u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15;
    move |buf: &mut [u8]| {
        for b in buf {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
    }
}
