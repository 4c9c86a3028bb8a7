//! Outgoing messages: incremental bodies, chunking with Byte-Range (RFC 4975 §7.1.1), abort
//! (§7.1 `#` flag) and the bookkeeping of success reports (§7.3.2).
//!
//! The application hands body bytes in as they become available ([`OutMessage::write`]); the
//! message never holds more than the send window (two chunks by default), so a 1 GiB file
//! streams through a few MiB of memory. Owned blocks are kept as handed in, so a block of
//! exactly one chunk goes out as that chunk's body without a copy. Chunks are cut when a full chunk is buffered or the body is
//! finished, so no chunk except the last is smaller than the chunk size (§7.1.1: "Senders
//! SHOULD NOT break messages into chunks smaller than 2048 octets, except for the final chunk").

use std::collections::VecDeque;

use super::ranges::RangeSet;
use super::wire::{ByteRange, Continuation, FailureReport};

/// Largest body we send with an explicit range-end; larger chunks carry `*`, since RFC 4975
/// §7.1.1 says a chunk larger than 2048 octets must be interruptible and "any chunk with a body
/// of greater than 2048 octets will have a "*" character in the range-end field".
pub const INTERRUPTIBLE_THRESHOLD: usize = 2048;

/// Writes shorter than this are copied into the last buffered block (or a new block of this
/// capacity) rather than kept as blocks of their own.
const SMALL_BLOCK: usize = 4096;

/// What the application wants to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSpec {
    /// The body's media type. `None` sends a bodiless SEND (RFC 4975 §7.1: no Content-Type and
    /// no body, as used for the initial SEND that binds a connection); its size must be 0.
    pub content_type: Option<String>,
    /// The body size when known; `None` writes `*` as the total until the body is finished
    /// (RFC 4975 §7.1.1: "The total field MAY contain a "*" if the total size of the message
    /// is not known in advance").
    pub size: Option<u64>,
    /// `Success-Report: yes` when true (default `no`).
    pub success_report: bool,
    /// `Failure-Report` value (default `yes`).
    pub failure_report: FailureReport,
    /// `Content-Disposition` (RFC 2183), for example `attachment; filename="a.pdf"` for a
    /// file (RFC 5547 §8); written before Content-Type in every chunk (RFC 4975 §9:
    /// `Other-Mime-header`). `None` writes none.
    pub content_disposition: Option<String>,
}

impl MessageSpec {
    /// A message of `content_type` and known size, default reports.
    pub fn new(content_type: impl Into<String>, size: Option<u64>) -> Self {
        MessageSpec {
            content_type: Some(content_type.into()),
            size,
            success_report: false,
            failure_report: FailureReport::Yes,
            content_disposition: None,
        }
    }

    /// A bodiless SEND (RFC 4975 §5.4: the active endpoint's first SEND "MAY have no body").
    pub fn bodiless() -> Self {
        MessageSpec {
            content_type: None,
            size: Some(0),
            success_report: false,
            failure_report: FailureReport::Yes,
            content_disposition: None,
        }
    }

    /// Sets `Content-Disposition`.
    pub fn with_content_disposition(mut self, value: impl Into<String>) -> Self {
        self.content_disposition = Some(value.into());
        self
    }

    /// Sets `Success-Report`.
    pub fn with_success_report(mut self, yes: bool) -> Self {
        self.success_report = yes;
        self
    }

    /// Sets `Failure-Report`.
    pub fn with_failure_report(mut self, fr: FailureReport) -> Self {
        self.failure_report = fr;
        self
    }
}

/// Where an outgoing message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutState {
    /// Chunks are still to be sent.
    Sending,
    /// A `#` chunk is to be sent next, then nothing more.
    Aborting,
    /// Every chunk was handed to the transport; responses/reports may still arrive.
    Sent,
    /// Nothing more to send (aborted, failed or stopped by a 413).
    Stopped,
}

/// A chunk cut from a message, before it gets a transaction id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Its Byte-Range.
    pub byte_range: ByteRange,
    /// Its body.
    pub body: Vec<u8>,
    /// Its continuation flag.
    pub flag: Continuation,
}

/// One outgoing message.
#[derive(Debug)]
pub struct OutMessage {
    /// The Message-ID.
    pub id: String,
    /// What was asked.
    pub spec: MessageSpec,
    /// Body bytes written by the application and not yet cut into chunks, in the blocks they
    /// were handed in (owned blocks are kept as they are, so that a block of exactly one
    /// chunk becomes that chunk's body without a copy). The first block may be partly
    /// consumed: its first `front_used` bytes were cut already.
    bufs: VecDeque<Vec<u8>>,
    /// Bytes of `bufs[0]` already cut into chunks.
    front_used: usize,
    /// Bytes in `bufs` not yet cut.
    buffered: usize,
    /// Bytes already cut into chunks (the next chunk starts at `next + 1`).
    next: u64,
    /// The application will write no more bytes.
    finished: bool,
    /// Lifecycle.
    pub state: OutState,
    /// A write was (partly) refused for lack of room; tell the application when room returns.
    pub blocked: bool,
    /// Failure already reported to the application.
    pub failed: bool,
    /// "Sent" already reported to the application.
    pub sent_reported: bool,
    /// Bytes acknowledged by success REPORTs (0-based intervals).
    pub success: RangeSet,
}

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// More bytes than the size declared in the [`MessageSpec`].
    #[error("body longer than the declared size of {0} bytes")]
    TooLong(u64),
    /// The body was already finished, or the message was aborted or failed.
    #[error("message no longer accepts body bytes")]
    Closed,
    /// A bodiless message has no body.
    #[error("a bodiless message cannot have body bytes")]
    Bodiless,
}

impl OutMessage {
    /// A new message with nothing written yet.
    pub fn new(id: String, spec: MessageSpec) -> Self {
        let finished = spec.content_type.is_none() || spec.size == Some(0);
        OutMessage {
            id,
            spec,
            bufs: VecDeque::new(),
            front_used: 0,
            buffered: 0,
            next: 0,
            finished,
            state: OutState::Sending,
            blocked: false,
            failed: false,
            sent_reported: false,
            success: RangeSet::new(),
        }
    }

    /// Bytes the application may write now.
    pub fn capacity(&self, window: usize) -> usize {
        if self.finished || self.state != OutState::Sending {
            return 0;
        }
        let room = window.saturating_sub(self.buffered);
        match self.spec.size {
            Some(s) => room.min(usize::try_from(s - self.written()).unwrap_or(usize::MAX)),
            None => room,
        }
    }

    /// Bytes written by the application so far.
    pub fn written(&self) -> u64 {
        self.next + self.buffered as u64
    }

    /// Bytes cut into chunks so far.
    pub fn chunked(&self) -> u64 {
        self.next
    }

    /// Accepts up to the window's room; returns how many bytes were taken (0 means "wait for
    /// room"; the session then signals when there is room again).
    pub fn write(&mut self, data: &[u8], window: usize) -> Result<usize, WriteError> {
        if self.spec.content_type.is_none() {
            return Err(if data.is_empty() {
                WriteError::Closed
            } else {
                WriteError::Bodiless
            });
        }
        if self.finished || self.state != OutState::Sending {
            return Err(WriteError::Closed);
        }
        if let Some(s) = self.spec.size {
            if self.written() + data.len() as u64 > s {
                return Err(WriteError::TooLong(s));
            }
        }
        let n = data.len().min(self.capacity(window));
        match self.bufs.back_mut() {
            // Small writes join the last block while it has room (no reallocation); a new
            // block has room for at least SMALL_BLOCK bytes, so many small writes do not
            // make many small blocks.
            Some(last) if last.capacity() - last.len() >= n => last.extend_from_slice(&data[..n]),
            _ if n > 0 => {
                let mut block = Vec::with_capacity(n.max(SMALL_BLOCK));
                block.extend_from_slice(&data[..n]);
                self.bufs.push_back(block);
            }
            _ => {}
        }
        self.buffered += n;
        if n < data.len() {
            self.blocked = true;
        }
        if self.spec.size == Some(self.written()) {
            self.finished = true;
        }
        Ok(n)
    }

    /// Like [`write`](Self::write) for an owned buffer: when the whole of `data` fits, it is
    /// kept as one block without copying. Returns the bytes taken; the rest is left in `data`
    /// (drained from the front).
    pub fn write_vec(&mut self, data: &mut Vec<u8>, window: usize) -> Result<usize, WriteError> {
        if data.len() >= SMALL_BLOCK
            && self.spec.content_type.is_some()
            && !self.finished
            && self.state == OutState::Sending
            && data.len() <= self.capacity(window)
            && self
                .spec
                .size
                .is_none_or(|s| self.written() + data.len() as u64 <= s)
        {
            let n = data.len();
            self.bufs.push_back(std::mem::take(data));
            self.buffered += n;
            if self.spec.size == Some(self.written()) {
                self.finished = true;
            }
            return Ok(n);
        }
        let n = self.write(data, window)?;
        data.drain(..n);
        Ok(n)
    }

    /// The application will write nothing more. With a known size, finishing early aborts the
    /// message (returns false) since it cannot be completed as declared.
    pub fn finish(&mut self) -> bool {
        self.finished = true;
        match self.spec.size {
            Some(s) => self.written() == s,
            None => true,
        }
    }

    /// True when the body was finished by the application.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// True when a chunk can be cut now.
    pub fn ready(&self, max_chunk: usize) -> bool {
        match self.state {
            OutState::Aborting => true,
            OutState::Sending => self.finished || self.buffered >= max_chunk,
            OutState::Sent | OutState::Stopped => false,
        }
    }

    /// Stops the message; a `#` chunk is sent if any chunk already went out (RFC 4975 §7.1:
    /// "If the sender is aborting an incomplete message, and intends to send no further chunks
    /// in that message, the flag MUST be a "#"").
    pub fn abort(&mut self) {
        self.clear_buffer();
        self.state = match self.state {
            OutState::Sending | OutState::Aborting if self.next > 0 => OutState::Aborting,
            OutState::Sent => OutState::Sent,
            _ => OutState::Stopped,
        };
    }

    /// Stops the message without a `#` chunk (RFC 4975 §10.5: after a 413 the sender "MUST NOT
    /// send any further chunks in the message").
    pub fn stop(&mut self) {
        self.clear_buffer();
        if matches!(self.state, OutState::Sending | OutState::Aborting) {
            self.state = OutState::Stopped;
        }
    }

    /// Drops the buffered body bytes.
    fn clear_buffer(&mut self) {
        self.bufs = VecDeque::new();
        self.front_used = 0;
        self.buffered = 0;
    }

    /// Removes the first `take` buffered bytes (at most [`buffered`](Self::buffered)) and
    /// returns them: the first block itself when it is exactly that long (no copy), else a
    /// copy of those bytes.
    fn take_front(&mut self, take: usize) -> Vec<u8> {
        debug_assert!(take <= self.buffered);
        self.buffered -= take;
        if self.front_used == 0 && self.bufs.front().is_some_and(|b| b.len() == take) {
            return self.bufs.pop_front().unwrap_or_default();
        }
        let mut body = Vec::with_capacity(take);
        while body.len() < take {
            let Some(front) = self.bufs.front() else {
                break;
            };
            let avail = &front[self.front_used..];
            let n = avail.len().min(take - body.len());
            body.extend_from_slice(&avail[..n]);
            self.front_used += n;
            if self.front_used == front.len() {
                self.bufs.pop_front();
                self.front_used = 0;
            }
        }
        body
    }

    /// Body bytes written and not yet cut into chunks.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Cuts the next chunk of at most `max_chunk` body bytes. Call only when [`ready`](Self::ready).
    pub fn cut(&mut self, max_chunk: usize) -> Option<Chunk> {
        match self.state {
            OutState::Aborting => {
                self.state = OutState::Stopped;
                // An empty body positioned after the last byte sent, range-end "*" (unknown).
                return Some(Chunk {
                    byte_range: ByteRange {
                        start: self.next + 1,
                        end: None,
                        total: self.spec.size,
                    },
                    body: Vec::new(),
                    flag: Continuation::Abort,
                });
            }
            OutState::Sending => {}
            _ => return None,
        }
        let take = self.buffered.min(max_chunk.max(1));
        let body = self.take_front(take);
        let start = self.next + 1;
        self.next += take as u64;
        let drained = self.finished && self.buffered == 0;
        let complete = match self.spec.size {
            Some(s) => self.next == s,
            None => drained,
        };
        let flag = if complete {
            self.state = OutState::Sent;
            Continuation::Complete
        } else if drained {
            // Finished with fewer bytes than declared: the message cannot complete.
            self.state = OutState::Stopped;
            Continuation::Abort
        } else {
            Continuation::More
        };
        // RFC 4975 §7.1.1: range-end SHOULD be the last byte's position when known, and MUST be
        // "*" when the chunk is interruptible (every chunk above 2048 octets).
        let end = if take > INTERRUPTIBLE_THRESHOLD {
            None
        } else {
            Some(self.next)
        };
        let total = self
            .spec
            .size
            .or(if complete { Some(self.next) } else { None });
        Some(Chunk {
            byte_range: ByteRange { start, end, total },
            body,
            flag,
        })
    }

    /// The total size, once known (declared, or learned when the body was finished).
    pub fn total(&self) -> Option<u64> {
        self.spec.size.or(if self.finished {
            Some(self.written())
        } else {
            None
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain_chunks(m: &mut OutMessage, max: usize) -> Vec<Chunk> {
        let mut v = Vec::new();
        while m.ready(max) {
            v.push(m.cut(max).unwrap());
        }
        v
    }

    #[test]
    fn known_size_splits_with_byte_ranges() {
        let mut m = OutMessage::new("m".into(), MessageSpec::new("text/plain", Some(10)));
        assert_eq!(m.write(b"abcd", 100).unwrap(), 4);
        assert!(!m.ready(4) || m.cut(4).is_some());
        let mut m = OutMessage::new("m".into(), MessageSpec::new("text/plain", Some(10)));
        m.write(b"abcdefghij", 100).unwrap();
        let c = drain_chunks(&mut m, 4);
        let ranges: Vec<String> = c.iter().map(|c| c.byte_range.to_string()).collect();
        assert_eq!(ranges, ["1-4/10", "5-8/10", "9-10/10"]);
        let flags: Vec<_> = c.iter().map(|c| c.flag).collect();
        assert_eq!(
            flags,
            [
                Continuation::More,
                Continuation::More,
                Continuation::Complete
            ]
        );
        assert_eq!(c.concat_bodies(), b"abcdefghij");
        assert_eq!(m.state, OutState::Sent);
    }

    trait Concat {
        fn concat_bodies(&self) -> Vec<u8>;
    }
    impl Concat for Vec<Chunk> {
        fn concat_bodies(&self) -> Vec<u8> {
            self.iter().flat_map(|c| c.body.iter().copied()).collect()
        }
    }

    #[test]
    fn a_block_of_one_chunk_becomes_its_body_without_a_copy() {
        let chunk = 8192;
        let mut m = OutMessage::new(
            "m".into(),
            MessageSpec::new("application/octet-stream", Some(2 * chunk as u64)),
        );
        let mut blocks = Vec::new();
        for fill in [1u8, 2] {
            let mut block = vec![fill; chunk];
            let ptr = block.as_ptr();
            assert_eq!(m.write_vec(&mut block, 2 * chunk).unwrap(), chunk);
            assert!(block.is_empty(), "the whole block was taken");
            blocks.push(ptr);
        }
        assert_eq!(m.buffered(), 2 * chunk);
        let c = drain_chunks(&mut m, chunk);
        assert_eq!(c.len(), 2);
        for (chunk_out, (ptr, fill)) in c.iter().zip(blocks.iter().zip([1u8, 2])) {
            assert_eq!(
                chunk_out.body.as_ptr(),
                *ptr,
                "the block itself is the body"
            );
            assert!(chunk_out.body.iter().all(|b| *b == fill));
        }
        assert_eq!(m.state, OutState::Sent);
    }

    #[test]
    fn blocks_of_other_sizes_are_cut_and_joined_in_order() {
        // Owned blocks of 5000 and 7000 bytes and small writes, cut into 4096-byte chunks:
        // the bodies are the bytes in order, every chunk but the last full.
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let mut m = OutMessage::new(
            "m".into(),
            MessageSpec::new("application/octet-stream", Some(data.len() as u64)),
        );
        let mut chunks = Vec::new();
        let mut at = 0;
        for len in [5000, 7000, 10, 3, 7987] {
            let piece = &data[at..at + len];
            if len >= SMALL_BLOCK {
                let mut v = piece.to_vec();
                assert_eq!(m.write_vec(&mut v, 1 << 20).unwrap(), len);
            } else {
                assert_eq!(m.write(piece, 1 << 20).unwrap(), len);
            }
            at += len;
            while m.ready(4096) && m.buffered() >= 4096 {
                chunks.push(m.cut(4096).unwrap());
            }
        }
        chunks.extend(drain_chunks(&mut m, 4096));
        assert_eq!(chunks.concat_bodies(), data);
        let sizes: Vec<usize> = chunks.iter().map(|c| c.body.len()).collect();
        assert_eq!(sizes, [4096, 4096, 4096, 4096, 3616]);
        assert_eq!(m.buffered(), 0);
        assert_eq!(m.state, OutState::Sent);
    }

    #[test]
    fn small_writes_share_blocks() {
        let mut m = OutMessage::new("m".into(), MessageSpec::new("text/plain", None));
        for _ in 0..1000 {
            m.write(b"x", 1 << 20).unwrap();
        }
        assert_eq!(m.buffered(), 1000);
        assert_eq!(m.bufs.len(), 1, "1000 one-byte writes fill one block");
    }

    #[test]
    fn unknown_size_uses_star_until_finished() {
        let mut m = OutMessage::new("m".into(), MessageSpec::new("text/plain", None));
        m.write(b"abcdef", 100).unwrap();
        let c = drain_chunks(&mut m, 4);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].byte_range.to_string(), "1-4/*");
        assert_eq!(c[0].flag, Continuation::More);
        assert!(
            !m.ready(4),
            "a partial chunk waits for more bytes or the end"
        );
        m.write(b"gh", 100).unwrap();
        assert!(m.finish());
        let c = drain_chunks(&mut m, 4);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].byte_range.to_string(), "5-8/8");
        assert_eq!(c[0].flag, Continuation::Complete);
    }

    #[test]
    fn unknown_size_finished_on_chunk_boundary_ends_with_empty_chunk() {
        let mut m = OutMessage::new("m".into(), MessageSpec::new("text/plain", None));
        m.write(b"abcd", 100).unwrap();
        let c = drain_chunks(&mut m, 4);
        assert_eq!(c.len(), 1);
        m.finish();
        let c = drain_chunks(&mut m, 4);
        assert_eq!(c[0].byte_range.to_string(), "5-4/4");
        assert_eq!(c[0].flag, Continuation::Complete);
        assert!(c[0].body.is_empty());
    }

    #[test]
    fn large_chunks_have_star_range_end() {
        let mut m = OutMessage::new("m".into(), MessageSpec::new("application/x", Some(5000)));
        m.write(&[7u8; 5000], 10_000).unwrap();
        let c = drain_chunks(&mut m, 4096);
        let ranges: Vec<String> = c.iter().map(|c| c.byte_range.to_string()).collect();
        assert_eq!(ranges, ["1-*/5000", "4097-5000/5000"]);
    }

    #[test]
    fn window_bounds_buffered_bytes() {
        let mut m = OutMessage::new("m".into(), MessageSpec::new("application/x", None));
        assert_eq!(m.write(&[0u8; 100], 64).unwrap(), 64);
        assert!(m.blocked);
        assert_eq!(m.capacity(64), 0);
        m.cut(32).unwrap();
        assert_eq!(m.capacity(64), 32);
    }

    #[test]
    fn declared_size_is_enforced() {
        let mut m = OutMessage::new("m".into(), MessageSpec::new("text/plain", Some(3)));
        assert_eq!(m.write(b"abcd", 100), Err(WriteError::TooLong(3)));
        m.write(b"ab", 100).unwrap();
        assert!(!m.finish(), "finishing short of the declared size fails");
        let c = drain_chunks(&mut m, 100);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].flag, Continuation::Abort);
        assert_eq!(m.write(b"c", 100), Err(WriteError::Closed));
    }

    #[test]
    fn abort_after_first_chunk_sends_hash() {
        let mut m = OutMessage::new("m".into(), MessageSpec::new("text/plain", Some(100)));
        m.write(&[1u8; 50], 100).unwrap();
        m.cut(10).unwrap();
        m.abort();
        let c = drain_chunks(&mut m, 10);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].flag, Continuation::Abort);
        assert_eq!(c[0].byte_range.to_string(), "11-*/100");
        assert_eq!(m.state, OutState::Stopped);
        // abort before anything was sent: nothing goes out
        let mut m = OutMessage::new("m".into(), MessageSpec::new("text/plain", Some(100)));
        m.write(&[1u8; 50], 100).unwrap();
        m.abort();
        assert!(drain_chunks(&mut m, 10).is_empty());
    }

    #[test]
    fn bodiless_and_empty_messages() {
        let mut m = OutMessage::new("m".into(), MessageSpec::bodiless());
        assert_eq!(m.write(b"x", 10), Err(WriteError::Bodiless));
        let c = drain_chunks(&mut m, 10);
        assert_eq!(c.len(), 1);
        // RFC 4975 §7.1.1: zero-length content still has range-start 1: "1-0/0".
        assert_eq!(c[0].byte_range.to_string(), "1-0/0");
        assert_eq!(c[0].flag, Continuation::Complete);
        let mut m = OutMessage::new("e".into(), MessageSpec::new("text/plain", Some(0)));
        let c = drain_chunks(&mut m, 10);
        assert_eq!(c[0].byte_range.to_string(), "1-0/0");
    }
}
