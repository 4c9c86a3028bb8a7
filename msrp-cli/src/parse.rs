//! `msrp parse [FILE|-]`: decode a byte stream of MSRP messages (RFC 4975 §9) and print one
//! JSON object per message on stdout.
//!
//! Each line is an object with exactly these keys:
//! - `kind`: `"request"` or `"response"`;
//! - `method` (requests, a string such as `"SEND"`) or `status` (responses, a number such as
//!   `200`);
//! - `transaction_id`: string;
//! - `headers`: array of `[name, value]` pairs (two-element arrays of strings), in wire order
//!   and spelling;
//! - `body_len`: number of body bytes (0 without a body);
//! - `continuation`: `"$"`, `"+"` or `"#"`.
//!
//! The input is streamed through a bounded buffer: bodies are counted, never held. On
//! malformed input the messages before it are printed, then a line on stderr names the
//! problem and its byte offset, and the exit status is 1.

use anyhow::Context;
use msrp_proto::message::{Event, Limits, MessageHead, Parser, StartLine};
use std::io::{Read, Write};
use std::path::PathBuf;

/// Arguments of `msrp parse`.
#[derive(Debug, clap::Args)]
pub struct ParseArgs {
    /// File holding the MSRP byte stream; `-` (the default) reads standard input.
    #[arg(value_name = "FILE|-", default_value = "-")]
    pub input: PathBuf,
}

/// Read size; the buffer grows beyond it only while a header block is incomplete, and the
/// parser's limits bound that.
const READ_SIZE: usize = 64 * 1024;

/// The JSON line for one complete message (keys in the documented order).
#[derive(Debug, serde::Serialize)]
pub struct MessageLine<'a> {
    /// `"request"` or `"response"`.
    pub kind: &'static str,
    /// The method of a request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'a str>,
    /// The status code of a response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The transaction id.
    pub transaction_id: &'a str,
    /// `[name, value]` pairs in wire order.
    pub headers: Vec<[&'a str; 2]>,
    /// Body bytes.
    pub body_len: u64,
    /// `$`, `+` or `#`.
    pub continuation: &'static str,
}

impl<'a> MessageLine<'a> {
    /// The line for `head` with a body of `body_len` bytes and end-line flag `continuation`.
    pub fn new(head: &'a MessageHead, body_len: u64, continuation: &'static str) -> Self {
        let (kind, method, status) = match head.start_line() {
            StartLine::Request { method } => ("request", Some(method.as_str()), None),
            StartLine::Response { status, .. } => ("response", None, Some(status.as_u16())),
        };
        MessageLine {
            kind,
            method,
            status,
            transaction_id: head.transaction_id(),
            headers: head.headers().map(|h| [h.name, h.value]).collect(),
            body_len,
            continuation,
        }
    }
}

/// Parses everything `input` yields, writing one JSON line per message to `out`.
pub fn parse_stream(mut input: impl Read, out: &mut impl Write) -> anyhow::Result<u64> {
    let mut parser = Parser::new(Limits::default());
    let mut buf = vec![0u8; READ_SIZE];
    let (mut start, mut end) = (0usize, 0usize);
    let mut current: Option<(MessageHead, u64)> = None;
    let mut count = 0u64;
    loop {
        // Hand out everything the buffer holds.
        loop {
            let (n, ev) = match parser.parse(&buf[start..end]) {
                Ok(r) => r,
                Err(e) => {
                    out.flush()?;
                    anyhow::bail!("malformed MSRP input: {e}");
                }
            };
            start += n;
            match ev {
                None => break,
                Some(Event::Head { head, .. }) => current = Some((head, 0)),
                Some(Event::Body(b)) => {
                    if let Some((_, len)) = current.as_mut() {
                        *len += b.len() as u64;
                    }
                }
                Some(Event::End(flag)) => {
                    if let Some((head, len)) = current.take() {
                        serde_json::to_writer(
                            &mut *out,
                            &MessageLine::new(&head, len, flag.as_str()),
                        )?;
                        out.write_all(b"\n")?;
                        count += 1;
                    }
                }
            }
        }
        // Keep the unconsumed tail at the front and read more after it.
        buf.copy_within(start..end, 0);
        end -= start;
        start = 0;
        if end + READ_SIZE > buf.len() {
            buf.resize(end + READ_SIZE, 0);
        }
        let n = loop {
            match input.read(&mut buf[end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("reading input"),
            }
        };
        if n == 0 {
            out.flush()?;
            if let Err(e) = parser.finish(&buf[..end]) {
                anyhow::bail!("malformed MSRP input: {e}");
            }
            return Ok(count);
        }
        end += n;
    }
}

/// Runs `msrp parse`.
pub fn run(args: ParseArgs) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.input.as_os_str() == "-" {
        parse_stream(std::io::stdin().lock(), &mut out)?;
    } else {
        let f = std::fs::File::open(&args.input)
            .with_context(|| format!("cannot open {}", args.input.display()))?;
        parse_stream(f, &mut out)?;
    }
    out.flush()?;
    Ok(())
}
