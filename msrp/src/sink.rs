//! Writing incoming message bodies to a sequential sink.
//!
//! The core hands body bytes out as `(offset, bytes)` ranges as they arrive (RFC 4975 §7.3.1:
//! chunks may come out of order, overlap or leave gaps filled later). A file or an
//! [`AsyncWrite`] wants them in order: [`SequentialWriter`] writes in-order bytes through at
//! once, skips bytes already written (a resent chunk), and holds out-of-order ranges in a
//! bounded reorder buffer until the gap before them is filled.

use std::collections::BTreeMap;
use std::io;

use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Writes `(offset, bytes)` ranges to `W` in order. See the [module documentation](self).
#[derive(Debug)]
pub struct SequentialWriter<W> {
    inner: W,
    next: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
    limit: usize,
}

impl<W: AsyncWrite + Unpin> SequentialWriter<W> {
    /// A writer holding at most `reorder_limit` out-of-order bytes.
    pub fn new(inner: W, reorder_limit: usize) -> Self {
        SequentialWriter {
            inner,
            next: 0,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            limit: reorder_limit,
        }
    }

    /// Bytes written to the sink so far (a contiguous prefix of the message).
    pub fn written(&self) -> u64 {
        self.next
    }

    /// Writes the range at `offset`. Fails with `InvalidData` when out-of-order data would
    /// exceed the reorder limit.
    pub async fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset + data.len() as u64;
        if end <= self.next {
            return Ok(()); // already written (duplicate)
        }
        if offset > self.next {
            if self.pending_bytes + data.len() > self.limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "out-of-order data beyond the reorder buffer of {} bytes",
                        self.limit
                    ),
                ));
            }
            self.pending_bytes += data.len();
            if let Some(old) = self.pending.insert(offset, data.to_vec()) {
                self.pending_bytes -= old.len();
            }
            return Ok(());
        }
        let skip = (self.next - offset) as usize;
        self.inner.write_all(&data[skip..]).await?;
        self.next = end;
        // Flush what became contiguous.
        while let Some((&off, _)) = self.pending.first_key_value() {
            if off > self.next {
                break;
            }
            let (off, buf) = self.pending.pop_first().expect("non-empty");
            self.pending_bytes -= buf.len();
            let e = off + buf.len() as u64;
            if e > self.next {
                let skip = (self.next - off) as usize;
                self.inner.write_all(&buf[skip..]).await?;
                self.next = e;
            }
        }
        Ok(())
    }

    /// Flushes and returns the sink.
    pub async fn finish(mut self) -> io::Result<W> {
        self.inner.flush().await?;
        Ok(self.inner)
    }

    /// The sink.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reorders_skips_duplicates_and_bounds_memory() {
        let mut w = SequentialWriter::new(Vec::new(), 10);
        w.write_at(5, b"fgh").await.unwrap(); // early
        w.write_at(0, b"abcde").await.unwrap(); // fills the gap
        w.write_at(2, b"cdefgh").await.unwrap(); // duplicate overlap
        w.write_at(8, b"ij").await.unwrap();
        assert_eq!(w.written(), 10);
        assert!(
            w.write_at(20, b"0123456789x").await.is_err(),
            "over the limit"
        );
        assert_eq!(w.finish().await.unwrap(), b"abcdefghij");
    }
}
