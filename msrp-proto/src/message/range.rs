//! The `Byte-Range` header (RFC 4975 §7.1.1, §9).
//!
//! ```text
//! Byte-Range = "Byte-Range:" SP range-start "-" range-end "/" total
//! range-start = 1*DIGIT
//! range-end   = 1*DIGIT / "*"
//! total       = 1*DIGIT / "*"
//! ```

use std::fmt;

/// A `Byte-Range` value: positions are 1-based and inclusive (RFC 4975 §7.1.1).
///
/// Invariants (checked by [`ByteRange::new`] and the parser): `start >= 1`; if `end` is known,
/// `end >= start - 1` (an empty chunk is `n-(n-1)`, e.g. `1-0/0`); if both `end` and `total`
/// are known, `end <= total`; if only `total` is known, `start - 1 <= total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange {
    /// Position of the first body byte in the whole message (1 for the first chunk).
    pub start: u64,
    /// Position of the last body byte, `None` for `*` (unknown or interruptible).
    pub end: Option<u64>,
    /// Total message size, `None` for `*` (unknown).
    pub total: Option<u64>,
}

/// What is wrong with a `Byte-Range` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ByteRangeError {
    /// Not `start-end/total` with digits or `*`.
    #[error("not of the form start-end/total")]
    Syntax,
    /// A number does not fit in 64 bits.
    #[error("number too large")]
    Overflow,
    /// `range-start` is 0; positions start at 1 (RFC 4975 §7.1.1).
    #[error("range-start must be at least 1")]
    StartZero,
    /// `range-end` is below `range-start - 1`.
    #[error("range-end is before range-start")]
    EndBeforeStart,
    /// `range-end` (or `range-start - 1`) is beyond `total`.
    #[error("range ends beyond the total")]
    EndAfterTotal,
}

impl ByteRange {
    /// A checked range.
    pub fn new(start: u64, end: Option<u64>, total: Option<u64>) -> Result<Self, ByteRangeError> {
        if start == 0 {
            return Err(ByteRangeError::StartZero);
        }
        if let Some(e) = end {
            if e < start - 1 {
                return Err(ByteRangeError::EndBeforeStart);
            }
        }
        if let Some(t) = total {
            if end.unwrap_or(start - 1) > t {
                return Err(ByteRangeError::EndAfterTotal);
            }
        }
        Ok(ByteRange { start, end, total })
    }

    /// The range of a whole message of `len` bytes sent in one chunk: `1-len/len`.
    pub fn whole(len: u64) -> Self {
        ByteRange {
            start: 1,
            end: Some(len),
            total: Some(len),
        }
    }

    /// Number of body bytes the range says the chunk holds, when `end` is known.
    pub fn len(&self) -> Option<u64> {
        self.end.map(|e| e + 1 - self.start)
    }

    /// True when the range is known to hold no bytes (`n-(n-1)`).
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// Parses the header value.
    pub fn parse(s: &str) -> Result<Self, ByteRangeError> {
        Self::parse_bytes(s.as_bytes())
    }

    /// Parses the header value from bytes.
    pub fn parse_bytes(s: &[u8]) -> Result<Self, ByteRangeError> {
        if let Some((start, end, total)) = parse_fast(s) {
            return ByteRange::new(start, end, total);
        }
        Self::parse_general(s)
    }

    /// The general path: every malformed value, with its specific error.
    #[cold]
    fn parse_general(s: &[u8]) -> Result<Self, ByteRangeError> {
        let dash = memchr::memchr(b'-', s).ok_or(ByteRangeError::Syntax)?;
        let (start, rest) = (&s[..dash], &s[dash + 1..]);
        let slash = memchr::memchr(b'/', rest).ok_or(ByteRangeError::Syntax)?;
        let (end, total) = (&rest[..slash], &rest[slash + 1..]);
        let start = parse_num(start)?;
        let end = parse_num_or_star(end)?;
        let total = parse_num_or_star(total)?;
        ByteRange::new(start, end, total)
    }
}

/// One pass over a well-formed value with numbers of at most 19 digits (which cannot
/// overflow a u64); `None` sends anything else to the general path, which names the error.
#[inline]
fn parse_fast(s: &[u8]) -> Option<(u64, Option<u64>, Option<u64>)> {
    let (start, i) = fast_num(s, 0, false)?;
    let start = start?;
    if s.get(i) != Some(&b'-') {
        return None;
    }
    let (end, i) = fast_num(s, i + 1, true)?;
    if s.get(i) != Some(&b'/') {
        return None;
    }
    let (total, i) = fast_num(s, i + 1, true)?;
    (i == s.len()).then_some((start, end, total))
}

/// The parser's whole-head fast path: a well-formed Byte-Range value at the start of `s`
/// that ends at a CR (the end of its line); the CR's index. Accepts exactly what
/// [`ByteRange::parse_bytes`] accepts on the value before the CR, when its numbers have at
/// most 19 digits (`None` sends anything else to the general path).
pub(crate) fn fast_range_end(s: &[u8]) -> Option<usize> {
    // Each number: digits up to the byte `stop`; `*` (None) where `star`; at most 19 digits.
    #[inline(always)]
    fn num(s: &[u8], i: &mut usize, stop: u8, star: bool) -> Option<Option<u64>> {
        let from = *i;
        if star && s.get(from) == Some(&b'*') {
            *i += 1;
            return (s.get(*i) == Some(&stop)).then_some(None);
        }
        let mut n = 0u64;
        loop {
            let c = *s.get(*i)?;
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return (c == stop && *i > from && *i - from <= 19).then_some(Some(n));
            }
            n = n.wrapping_mul(10).wrapping_add(u64::from(d));
            *i += 1;
        }
    }
    let mut i = 0;
    let start = num(s, &mut i, b'-', false)??;
    i += 1;
    let end = num(s, &mut i, b'/', true)?;
    i += 1;
    let total = num(s, &mut i, b'\r', true)?;
    // the relations of RFC 4975 §7.1.1, as ByteRange::new checks them
    let ok = start >= 1
        && end.is_none_or(|e| e >= start - 1)
        && total.is_none_or(|t| end.unwrap_or(start - 1) <= t);
    ok.then_some(i)
}

/// Digits from `i` (or `*` when `star`): the number (`None` for `*`) and where it stops.
#[inline]
fn fast_num(s: &[u8], mut i: usize, star: bool) -> Option<(Option<u64>, usize)> {
    if star && s.get(i) == Some(&b'*') {
        return Some((None, i + 1));
    }
    let from = i;
    let mut n = 0u64;
    while let Some(&c) = s.get(i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        if i - from == 19 {
            return None;
        }
        n = n * 10 + u64::from(d);
        i += 1;
    }
    (i > from).then_some((Some(n), i))
}

fn parse_num(s: &[u8]) -> Result<u64, ByteRangeError> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return Err(ByteRangeError::Syntax);
    }
    s.iter().try_fold(0u64, |acc, &c| {
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or(ByteRangeError::Overflow)
    })
}

fn parse_num_or_star(s: &[u8]) -> Result<Option<u64>, ByteRangeError> {
    if s == b"*" {
        Ok(None)
    } else {
        parse_num(s).map(Some)
    }
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-", self.start)?;
        match self.end {
            Some(e) => write!(f, "{e}/")?,
            None => f.write_str("*/")?,
        }
        match self.total {
            Some(t) => write!(f, "{t}"),
            None => f.write_str("*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc_forms() {
        assert_eq!(ByteRange::parse("1-25/25"), Ok(ByteRange::whole(25)));
        let r = ByteRange::parse("1-*/8").unwrap();
        assert_eq!((r.start, r.end, r.total), (1, None, Some(8)));
        let r = ByteRange::parse("5-8/8").unwrap();
        assert_eq!(r.len(), Some(4));
        let r = ByteRange::parse("1-0/0").unwrap();
        assert!(r.is_empty());
        let r = ByteRange::parse("3-*/*").unwrap();
        assert_eq!((r.end, r.total), (None, None));
        for s in ["1-25/25", "1-*/8", "5-8/8", "1-0/0", "3-*/*", "7-9/*"] {
            assert_eq!(ByteRange::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn rejects_bad_ranges() {
        use ByteRangeError::*;
        for (s, e) in [
            ("", Syntax),
            ("1-2", Syntax),
            ("1/2", Syntax),
            ("a-2/3", Syntax),
            ("-1-2/3", Syntax),
            ("1-2/3/4", Syntax),
            (" 1-2/3", Syntax),
            ("*-2/3", Syntax),
            ("0-2/3", StartZero),
            ("5-3/9", EndBeforeStart),
            ("1-10/9", EndAfterTotal),
            ("11-*/9", EndAfterTotal),
            ("1-18446744073709551616/*", Overflow),
            ("99999999999999999999-*/*", Overflow),
        ] {
            assert_eq!(ByteRange::parse(s), Err(e), "{s:?}");
        }
        // the largest representable values are fine
        let m = u64::MAX;
        assert!(ByteRange::parse(&format!("{m}-{m}/{m}")).is_ok());
    }
}
