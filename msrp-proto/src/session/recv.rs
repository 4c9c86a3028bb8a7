//! Incoming messages: reassembly by Message-ID and Byte-Range (RFC 4975 §7.3.1).
//!
//! The core never holds message bodies: body bytes go to the application as they arrive, as
//! `(offset, bytes)` ranges, and the core only remembers *which* bytes arrived (a bounded
//! [`RangeSet`] per message) to know when a message is complete. Chunks may arrive out of
//! order, overlap (the application writes the later data over the earlier, RFC 4975 §7.3.1
//! "the last chunk received SHOULD take precedence") or leave gaps that a later chunk fills.

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::ranges::RangeSet;
use super::wire::{ByteRange, Continuation, FailureReport, StatusCode};

/// The header values of a received SEND that the session needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingSend {
    /// Transaction id of the request.
    pub transaction_id: String,
    /// `Message-ID` (required in SEND, RFC 4975 §7.1.1).
    pub message_id: Option<String>,
    /// `Byte-Range`, if present.
    pub byte_range: Option<ByteRange>,
    /// `Content-Type`, if present (absent for a bodiless SEND).
    pub content_type: Option<String>,
    /// `Content-Disposition`, if present.
    pub content_disposition: Option<String>,
    /// `Success-Report: yes`.
    pub success_report: bool,
    /// `Failure-Report` (absent means `yes`).
    pub failure_report: FailureReport,
}

/// What happens to the body of the SEND being received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Body bytes go to the application.
    Deliver,
    /// Body bytes are dropped but the request is fine (duplicate, or bodiless).
    Discard {
        /// A chunk of a message already received completely (RFC 4975 §5.4 duplicates).
        duplicate: bool,
    },
    /// The request is refused with this status; body bytes are dropped.
    Reject(StatusCode),
}

/// The state of the SEND whose body is being received, kept by the connection between the
/// head and the end-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecvCursor {
    /// The request's transaction id.
    pub transaction_id: String,
    /// Its Message-ID (empty when missing, and then the verdict is a 400).
    pub message_id: String,
    /// 0-based offset of the first body byte in the message.
    pub offset: u64,
    /// Body bytes seen so far in this chunk.
    pub pos: u64,
    /// What is done with the body.
    pub verdict: Verdict,
    /// The request's Failure-Report.
    pub failure_report: FailureReport,
    /// The request's Success-Report.
    pub success_report: bool,
    /// The total size from the Byte-Range header.
    pub total: Option<u64>,
    /// Reason for a rejection, for the event.
    pub reason: Option<&'static str>,
}

/// An incomplete incoming message.
#[derive(Debug)]
pub struct InMessage {
    /// Content-Type of the message.
    pub content_type: Option<String>,
    /// Total size, once known.
    pub total: Option<u64>,
    /// Bytes received (0-based intervals).
    pub received: RangeSet,
    /// The sender asked for success reports.
    pub success_report: bool,
    /// When its last chunk started arriving.
    pub last_activity: Instant,
}

/// A bounded set of recently seen Message-IDs (finished or refused messages).
#[derive(Debug)]
pub struct RecentIds<V> {
    cap: usize,
    order: VecDeque<String>,
    map: HashMap<String, V>,
}

impl<V: Copy> RecentIds<V> {
    /// A set remembering at most `cap` ids.
    pub fn new(cap: usize) -> Self {
        RecentIds {
            cap,
            order: VecDeque::new(),
            map: HashMap::new(),
        }
    }

    /// Remembers `id`, forgetting the oldest beyond the capacity.
    pub fn insert(&mut self, id: &str, v: V) {
        if self.map.insert(id.to_string(), v).is_none() {
            self.order.push_back(id.to_string());
            while self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }

    /// The value for `id`, if remembered.
    pub fn get(&self, id: &str) -> Option<V> {
        self.map.get(id).copied()
    }
}

/// Limits and policy for receiving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecvPolicy {
    /// Media types we accept (our `a=accept-types`): `type/subtype`, `type/*` or `*`.
    pub accept_types: Vec<String>,
    /// Largest message we accept (our `a=max-size`), if any.
    pub max_size: Option<u64>,
    /// Most incomplete messages at once; more are refused with 413.
    pub max_incomplete: usize,
    /// Most disjoint received intervals per message; more fragmentation is refused with 413.
    pub max_intervals: usize,
    /// An incomplete message with no chunk for this long is abandoned (its slot freed, later
    /// chunks refused), so a peer that stops in the middle of a message cannot hold it open
    /// forever.
    pub idle_timeout: Duration,
}

impl Default for RecvPolicy {
    fn default() -> Self {
        RecvPolicy {
            accept_types: vec!["*".into()],
            max_size: None,
            max_incomplete: 64,
            max_intervals: 1024,
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// The media type of a Content-Type value: `type/subtype` in lower case, parameters dropped.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether `content_type` matches one of `accept` (RFC 4975 §8.6: `*` and `type/*` wildcards).
/// `multipart/mixed` and `multipart/alternative` are always accepted: RFC 4975 §7.3.1 "All
/// MSRP endpoints MUST be able to receive the multipart/mixed and multipart/alternative
/// media-types."
pub fn type_accepted(content_type: &str, accept: &[String]) -> bool {
    let mt = media_type(content_type);
    if mt == "multipart/mixed" || mt == "multipart/alternative" {
        return true;
    }
    let (ty, _) = mt.split_once('/').unwrap_or((mt.as_str(), ""));
    accept.iter().any(|a| {
        let a = media_type(a);
        a == "*"
            || a == mt
            || a.strip_suffix("/*")
                .is_some_and(|t| t.eq_ignore_ascii_case(ty))
    })
}

/// What the receive side asks the session to do, besides delivering data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecvEffect {
    /// A message was seen for the first time.
    Started {
        /// Message-ID.
        message_id: String,
        /// Its Content-Type.
        content_type: Option<String>,
        /// Its total size, if known.
        total: Option<u64>,
        /// Its Content-Disposition.
        content_disposition: Option<String>,
    },
    /// Body bytes at a 0-based offset of the message.
    Data {
        /// Message-ID.
        message_id: String,
        /// Offset of `data[0]` in the message.
        offset: u64,
        /// The bytes (a slice of the input buffer when it was handed in as `Bytes`).
        data: Bytes,
    },
    /// Every byte of the message has arrived.
    Complete {
        /// Message-ID.
        message_id: String,
        /// Its size.
        size: u64,
    },
    /// The message will not complete (sender aborted with `#`, or we refused it after it
    /// started).
    Aborted {
        /// Message-ID.
        message_id: String,
        /// Bytes received before the end.
        received: u64,
        /// Why.
        reason: String,
    },
    /// A success REPORT to send (RFC 4975 §7.1.3) for a 1-based inclusive range.
    SuccessReport {
        /// Message-ID.
        message_id: String,
        /// The range reported on.
        byte_range: ByteRange,
    },
}

/// The receive side of a session.
#[derive(Debug)]
pub struct Receiver {
    policy: RecvPolicy,
    incomplete: HashMap<String, InMessage>,
    /// Messages received completely (for duplicate detection, RFC 4975 §5.4).
    done: RecentIds<u64>,
    /// Messages we refused, and with what (so later chunks get the same answer).
    refused: RecentIds<StatusCode>,
    /// Effects not yet taken by the session.
    effects: Vec<RecvEffect>,
}

impl Receiver {
    /// A receiver with `policy`.
    pub fn new(policy: RecvPolicy) -> Self {
        Receiver {
            policy,
            incomplete: HashMap::new(),
            done: RecentIds::new(1024),
            refused: RecentIds::new(1024),
            effects: Vec::new(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &RecvPolicy {
        &self.policy
    }

    /// Takes the effects produced so far.
    pub fn take_effects(&mut self) -> Vec<RecvEffect> {
        std::mem::take(&mut self.effects)
    }

    /// Number of incomplete messages.
    pub fn incomplete_count(&self) -> usize {
        self.incomplete.len()
    }

    /// Starts receiving a SEND: decides what happens to its body.
    pub fn head(&mut self, h: &IncomingSend, now: Instant) -> RecvCursor {
        let range = h.byte_range.unwrap_or(ByteRange {
            start: 1,
            end: None,
            total: None,
        });
        let mut c = RecvCursor {
            transaction_id: h.transaction_id.clone(),
            message_id: h.message_id.clone().unwrap_or_default(),
            offset: range.start.saturating_sub(1),
            pos: 0,
            verdict: Verdict::Deliver,
            failure_report: h.failure_report,
            success_report: h.success_report,
            total: range.total,
            reason: None,
        };
        let reject = |c: &mut RecvCursor, s: StatusCode, why: &'static str| {
            c.verdict = Verdict::Reject(s);
            c.reason = Some(why);
        };
        if h.message_id.is_none() {
            // RFC 4975 §7.1.1: "Each chunk of a message MUST contain a Message-ID header field".
            reject(&mut c, StatusCode::BAD_REQUEST, "SEND without Message-ID");
            return c;
        }
        if range.start == 0 {
            reject(&mut c, StatusCode::BAD_REQUEST, "Byte-Range start 0");
            return c;
        }
        if self.done.get(&c.message_id).is_some() {
            c.verdict = Verdict::Discard { duplicate: true };
            return c;
        }
        if let Some(s) = self.refused.get(&c.message_id) {
            reject(&mut c, s, "message already refused");
            return c;
        }
        let Some(ct) = h.content_type.as_deref() else {
            if self.incomplete.contains_key(&c.message_id) {
                // A later chunk of a message without its own Content-Type: tolerated.
                return self.check_total(c, now);
            }
            // No Content-Type: bodiless SEND (RFC 4975 §7.1); a body would be a 400 at the end.
            c.verdict = Verdict::Discard { duplicate: false };
            return c;
        };
        // RFC 4975 §7.3.1: unsupported media type -> 415.
        if !type_accepted(ct, &self.policy.accept_types) {
            reject(
                &mut c,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content type not in accept-types",
            );
            return c;
        }
        // Our a=max-size (RFC 4975 §8.6); RFC 4975 §10.5: 413 asks the sender to stop.
        if let (Some(max), Some(t)) = (self.policy.max_size, range.total) {
            if t > max {
                reject(
                    &mut c,
                    StatusCode::MESSAGE_TOO_LARGE,
                    "message above max-size",
                );
                return c;
            }
        }
        if !self.incomplete.contains_key(&c.message_id) {
            if self.incomplete.len() >= self.policy.max_incomplete {
                reject(
                    &mut c,
                    StatusCode::MESSAGE_TOO_LARGE,
                    "too many incomplete messages",
                );
                return c;
            }
            self.incomplete.insert(
                c.message_id.clone(),
                InMessage {
                    content_type: Some(ct.to_string()),
                    total: None,
                    received: RangeSet::new(),
                    success_report: h.success_report,
                    last_activity: now,
                },
            );
            self.effects.push(RecvEffect::Started {
                message_id: c.message_id.clone(),
                content_type: Some(ct.to_string()),
                total: range.total,
                content_disposition: h.content_disposition.clone(),
            });
        }
        self.check_total(c, now)
    }

    fn check_total(&mut self, mut c: RecvCursor, now: Instant) -> RecvCursor {
        let m = self
            .incomplete
            .get_mut(&c.message_id)
            .expect("caller checked");
        m.last_activity = now;
        if let Some(t) = c.total {
            match m.total {
                Some(old) if old != t => {
                    c.verdict = Verdict::Reject(StatusCode::BAD_REQUEST);
                    c.reason = Some("Byte-Range total differs between chunks");
                }
                _ => m.total = Some(t),
            }
        }
        c
    }

    /// Body bytes of the SEND being received.
    pub fn body(&mut self, c: &mut RecvCursor, data: &[u8]) {
        self.body_in(c, data, None);
    }

    /// Like [`body`](Self::body); `data` lies inside `owner` (the buffer the bytes were read
    /// into), so the delivered bytes can share it instead of being copied.
    pub fn body_in(&mut self, c: &mut RecvCursor, data: &[u8], owner: Option<&Bytes>) {
        let at = c.offset + c.pos;
        c.pos += data.len() as u64;
        if c.verdict != Verdict::Deliver || data.is_empty() {
            return;
        }
        let Some(m) = self.incomplete.get_mut(&c.message_id) else {
            return;
        };
        let mut n = data.len() as u64;
        if let Some(t) = m.total {
            if at + n > t {
                n = t.saturating_sub(at);
                c.verdict = Verdict::Reject(StatusCode::BAD_REQUEST);
                c.reason = Some("body extends beyond the Byte-Range total");
            }
        }
        if let Some(max) = self.policy.max_size {
            if at + n > max {
                n = max.saturating_sub(at);
                c.verdict = Verdict::Reject(StatusCode::MESSAGE_TOO_LARGE);
                c.reason = Some("message above max-size");
            }
        }
        if n == 0 {
            return;
        }
        m.received.insert(at, at + n);
        if m.received.interval_count() > self.policy.max_intervals {
            c.verdict = Verdict::Reject(StatusCode::MESSAGE_TOO_LARGE);
            c.reason = Some("message too fragmented");
            return;
        }
        self.effects.push(RecvEffect::Data {
            message_id: c.message_id.clone(),
            offset: at,
            data: share_or_copy(&data[..n as usize], owner),
        });
    }

    /// The end-line of the SEND being received. Returns the transaction response status to
    /// send, if any (RFC 4975 §7.2, §7.1.4).
    pub fn end(&mut self, c: RecvCursor, flag: Continuation) -> Option<StatusCode> {
        let status = match c.verdict {
            Verdict::Reject(s) => {
                self.refuse(&c.message_id, s, c.reason.unwrap_or("refused"));
                s
            }
            Verdict::Discard { duplicate: false } if c.pos > 0 => {
                // RFC 4975 §7.1: "If the request has a body, it MUST contain a Content-Type".
                StatusCode::BAD_REQUEST
            }
            Verdict::Discard { duplicate } => {
                // RFC 4975 §5.4: acknowledgments are still needed for duplicates.
                if duplicate && c.success_report {
                    let total = self.done.get(&c.message_id);
                    self.effects.push(RecvEffect::SuccessReport {
                        message_id: c.message_id.clone(),
                        byte_range: ByteRange {
                            start: c.offset + 1,
                            end: Some(c.offset + c.pos),
                            total,
                        },
                    });
                }
                StatusCode::OK
            }
            Verdict::Deliver => self.deliver_end(&c, flag),
        };
        respond(c.failure_report, status)
    }

    fn deliver_end(&mut self, c: &RecvCursor, flag: Continuation) -> StatusCode {
        let Some(m) = self.incomplete.get_mut(&c.message_id) else {
            return StatusCode::OK;
        };
        match flag {
            Continuation::Abort => {
                let received = m.received.covered();
                let m = self.incomplete.remove(&c.message_id).expect("present");
                self.report_ranges(&c.message_id, &m);
                self.effects.push(RecvEffect::Aborted {
                    message_id: c.message_id.clone(),
                    received,
                    reason: "the sender aborted the message".into(),
                });
                self.refused
                    .insert(&c.message_id, StatusCode::MESSAGE_TOO_LARGE);
                return StatusCode::OK;
            }
            Continuation::Complete => {
                // RFC 4975 §7.3.1: "the chunk that has a termination character of "$" defines
                // the total length of the message".
                let end = c.offset + c.pos;
                match m.total {
                    Some(t) if t != end => {
                        self.refuse(
                            &c.message_id,
                            StatusCode::BAD_REQUEST,
                            "final chunk does not end at the Byte-Range total",
                        );
                        return StatusCode::BAD_REQUEST;
                    }
                    _ => m.total = Some(end),
                }
            }
            Continuation::More => {}
        }
        if let Some(t) = m.total {
            if m.received.covers_prefix(t) {
                let m = self.incomplete.remove(&c.message_id).expect("present");
                self.done.insert(&c.message_id, t);
                if m.success_report || c.success_report {
                    // RFC 4975 §7.1.3: one success report covering the complete message.
                    self.effects.push(RecvEffect::SuccessReport {
                        message_id: c.message_id.clone(),
                        byte_range: ByteRange {
                            start: 1,
                            end: Some(t),
                            total: Some(t),
                        },
                    });
                }
                self.effects.push(RecvEffect::Complete {
                    message_id: c.message_id.clone(),
                    size: t,
                });
            }
        }
        StatusCode::OK
    }

    /// Success reports for every received interval of a message that will not complete
    /// (RFC 4975 §7.1.3: reports "covering all bytes that are received successfully").
    fn report_ranges(&mut self, message_id: &str, m: &InMessage) {
        if !m.success_report {
            return;
        }
        for (s, e) in m.received.iter() {
            self.effects.push(RecvEffect::SuccessReport {
                message_id: message_id.to_string(),
                byte_range: ByteRange {
                    start: s + 1,
                    end: Some(e),
                    total: m.total,
                },
            });
        }
    }

    fn refuse(&mut self, message_id: &str, s: StatusCode, why: &str) {
        if message_id.is_empty() {
            return;
        }
        if let Some(m) = self.incomplete.remove(message_id) {
            self.effects.push(RecvEffect::Aborted {
                message_id: message_id.to_string(),
                received: m.received.covered(),
                reason: format!("refused with {s}: {why}"),
            });
        }
        self.refused.insert(message_id, s);
    }

    /// When the next incomplete message becomes idle.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.incomplete
            .values()
            .map(|m| m.last_activity + self.policy.idle_timeout)
            .min()
    }

    /// Abandons incomplete messages idle for the idle timeout.
    pub fn expire(&mut self, now: Instant) {
        let idle = self.policy.idle_timeout;
        let mut ids: Vec<String> = self
            .incomplete
            .iter()
            .filter(|(_, m)| m.last_activity + idle <= now)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        for id in ids {
            let m = self.incomplete.remove(&id).expect("listed");
            self.refused.insert(&id, StatusCode::REQUEST_TIMEOUT);
            self.effects.push(RecvEffect::Aborted {
                message_id: id,
                received: m.received.covered(),
                reason: format!("no chunk for {} s", idle.as_secs()),
            });
        }
    }

    /// Ends every incomplete message (the connection or session ended).
    pub fn abort_all(&mut self, reason: &str) {
        let mut ids: Vec<String> = self.incomplete.keys().cloned().collect();
        ids.sort();
        for id in ids {
            let m = self.incomplete.remove(&id).expect("present");
            self.effects.push(RecvEffect::Aborted {
                message_id: id,
                received: m.received.covered(),
                reason: reason.to_string(),
            });
        }
    }
}

/// Whether a transaction response is sent for `status` under `failure_report` (RFC 4975 §7.2,
/// §7.1.4): `yes` always; `partial` only for errors ("MUST NOT send a 200"); `no` never ("MUST
/// NOT send a transaction response").
pub fn respond(failure_report: FailureReport, status: StatusCode) -> Option<StatusCode> {
    match failure_report {
        FailureReport::Yes => Some(status),
        FailureReport::Partial if !status.is_success() => Some(status),
        _ => None,
    }
}

/// The bytes of `data` as `Bytes`: a shared slice of `owner` when `data` lies in it and is
/// a large enough part of it, else a copy. A small slice of a large buffer would keep the whole
/// buffer alive, so the memory held by queued data is bounded by 8x its length.
fn share_or_copy(data: &[u8], owner: Option<&Bytes>) -> Bytes {
    match owner {
        Some(o) if data.len().saturating_mul(8) >= o.len() && contains(o, data) => {
            o.slice_ref(data)
        }
        _ => Bytes::copy_from_slice(data),
    }
}

fn contains(owner: &[u8], data: &[u8]) -> bool {
    let (o, d) = (owner.as_ptr_range(), data.as_ptr_range());
    o.start <= d.start && d.end <= o.end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(mid: &str, range: Option<(u64, Option<u64>, Option<u64>)>) -> IncomingSend {
        IncomingSend {
            transaction_id: "t1".into(),
            message_id: Some(mid.into()),
            byte_range: range.map(|(start, end, total)| ByteRange { start, end, total }),
            content_type: Some("text/plain".into()),
            content_disposition: None,
            success_report: false,
            failure_report: FailureReport::Yes,
        }
    }

    fn chunk(
        r: &mut Receiver,
        h: &IncomingSend,
        body: &[u8],
        flag: Continuation,
    ) -> Option<StatusCode> {
        let mut c = r.head(h, Instant::now());
        // feed in two fragments to exercise incremental delivery
        let mid = body.len() / 2;
        r.body(&mut c, &body[..mid]);
        r.body(&mut c, &body[mid..]);
        r.end(c, flag)
    }

    fn assemble(effects: &[RecvEffect], size: usize) -> Vec<u8> {
        let mut buf = vec![0u8; size];
        for e in effects {
            if let RecvEffect::Data { offset, data, .. } = e {
                buf[*offset as usize..*offset as usize + data.len()].copy_from_slice(data);
            }
        }
        buf
    }

    #[test]
    fn whole_message_without_byte_range() {
        let mut r = Receiver::new(RecvPolicy::default());
        let s = chunk(&mut r, &send("m1", None), b"hello", Continuation::Complete);
        assert_eq!(s, Some(StatusCode::OK));
        let e = r.take_effects();
        assert!(matches!(&e[0], RecvEffect::Started { message_id, .. } if message_id == "m1"));
        assert!(e.contains(&RecvEffect::Complete {
            message_id: "m1".into(),
            size: 5
        }));
        assert_eq!(assemble(&e, 5), b"hello");
    }

    #[test]
    fn out_of_order_duplicates_and_gaps() {
        let mut r = Receiver::new(RecvPolicy::default());
        let msg = b"0123456789ABCDEF";
        // last chunk first, then a duplicate overlapping one, then the gap fills
        chunk(
            &mut r,
            &send("m", Some((13, Some(16), Some(16)))),
            &msg[12..],
            Continuation::Complete,
        );
        chunk(
            &mut r,
            &send("m", Some((1, Some(4), Some(16)))),
            &msg[..4],
            Continuation::More,
        );
        chunk(
            &mut r,
            &send("m", Some((3, Some(8), Some(16)))),
            &msg[2..8],
            Continuation::More,
        );
        let e = r.take_effects();
        assert!(
            !e.iter().any(|e| matches!(e, RecvEffect::Complete { .. })),
            "gap 9-12 missing"
        );
        chunk(
            &mut r,
            &send("m", Some((9, Some(12), Some(16)))),
            &msg[8..12],
            Continuation::More,
        );
        let e2 = r.take_effects();
        assert!(e2.contains(&RecvEffect::Complete {
            message_id: "m".into(),
            size: 16
        }));
        let all: Vec<RecvEffect> = e.into_iter().chain(e2).collect();
        assert_eq!(assemble(&all, 16), msg);
        // a chunk of the finished message again: a duplicate, acknowledged, not delivered
        let s = chunk(
            &mut r,
            &send("m", Some((1, Some(4), Some(16)))),
            &msg[..4],
            Continuation::More,
        );
        assert_eq!(s, Some(StatusCode::OK));
        assert!(r.take_effects().is_empty());
    }

    #[test]
    fn star_total_completes_at_dollar() {
        let mut r = Receiver::new(RecvPolicy::default());
        chunk(
            &mut r,
            &send("m", Some((1, None, None))),
            b"abcd",
            Continuation::More,
        );
        assert_eq!(r.incomplete_count(), 1);
        chunk(
            &mut r,
            &send("m", Some((5, None, None))),
            b"ef",
            Continuation::Complete,
        );
        let e = r.take_effects();
        assert!(e.contains(&RecvEffect::Complete {
            message_id: "m".into(),
            size: 6
        }));
        assert_eq!(r.incomplete_count(), 0);
    }

    #[test]
    fn abort_flag_ends_message_and_reports_received_ranges() {
        let mut r = Receiver::new(RecvPolicy::default());
        let mut h = send("m", Some((1, None, Some(100))));
        h.success_report = true;
        chunk(&mut r, &h, b"abcd", Continuation::More);
        let mut h2 = send("m", Some((5, None, Some(100))));
        h2.success_report = true;
        let s = chunk(&mut r, &h2, b"", Continuation::Abort);
        assert_eq!(s, Some(StatusCode::OK));
        let e = r.take_effects();
        assert!(e
            .iter()
            .any(|e| matches!(e, RecvEffect::Aborted { received: 4, .. })));
        assert!(e.contains(&RecvEffect::SuccessReport {
            message_id: "m".into(),
            byte_range: ByteRange {
                start: 1,
                end: Some(4),
                total: Some(100)
            }
        }));
    }

    #[test]
    fn unsupported_type_gets_415_and_later_chunks_too() {
        let mut r = Receiver::new(RecvPolicy {
            accept_types: vec!["text/*".into(), "message/cpim".into()],
            ..RecvPolicy::default()
        });
        let mut h = send("m", Some((1, Some(3), Some(6))));
        h.content_type = Some("image/png".into());
        assert_eq!(
            chunk(&mut r, &h, b"abc", Continuation::More),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        let mut h2 = send("m", Some((4, Some(6), Some(6))));
        h2.content_type = Some("image/png".into());
        assert_eq!(
            chunk(&mut r, &h2, b"def", Continuation::Complete),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert!(r.take_effects().is_empty(), "nothing delivered");
        // accepted: wildcard subtype, parameters, case
        let mut ok = send("n", None);
        ok.content_type = Some("Text/HTML; charset=utf-8".into());
        assert_eq!(
            chunk(&mut r, &ok, b"x", Continuation::Complete),
            Some(StatusCode::OK)
        );
        ok.message_id = Some("o".into());
        ok.content_type = Some("multipart/mixed; boundary=x".into());
        assert_eq!(
            chunk(&mut r, &ok, b"x", Continuation::Complete),
            Some(StatusCode::OK)
        );
    }

    #[test]
    fn max_size_gets_413_by_total_and_by_body() {
        let mut r = Receiver::new(RecvPolicy {
            max_size: Some(10),
            ..RecvPolicy::default()
        });
        assert_eq!(
            chunk(
                &mut r,
                &send("big", Some((1, None, Some(11)))),
                b"a",
                Continuation::More
            ),
            Some(StatusCode::MESSAGE_TOO_LARGE)
        );
        // unknown total: detected from the body, delivery stops at the limit
        assert_eq!(
            chunk(
                &mut r,
                &send("s", Some((1, None, None))),
                &[b'x'; 12],
                Continuation::More
            ),
            Some(StatusCode::MESSAGE_TOO_LARGE)
        );
        let e = r.take_effects();
        let delivered: usize = e
            .iter()
            .map(|e| match e {
                RecvEffect::Data { data, .. } => data.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(delivered, 10);
        assert!(e
            .iter()
            .any(|e| matches!(e, RecvEffect::Aborted { message_id, .. } if message_id == "s")));
    }

    #[test]
    fn failure_report_values_control_responses() {
        let mut r = Receiver::new(RecvPolicy {
            accept_types: vec!["text/plain".into()],
            ..RecvPolicy::default()
        });
        let mut h = send("a", None);
        h.failure_report = FailureReport::No;
        assert_eq!(chunk(&mut r, &h, b"x", Continuation::Complete), None);
        h.message_id = Some("b".into());
        h.failure_report = FailureReport::Partial;
        assert_eq!(
            chunk(&mut r, &h, b"x", Continuation::Complete),
            None,
            "partial: no 200"
        );
        h.message_id = Some("c".into());
        h.content_type = Some("image/gif".into());
        assert_eq!(
            chunk(&mut r, &h, b"x", Continuation::Complete),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        h.message_id = Some("d".into());
        h.failure_report = FailureReport::No;
        assert_eq!(
            chunk(&mut r, &h, b"x", Continuation::Complete),
            None,
            "no: not even errors"
        );
    }

    #[test]
    fn bodiless_send_and_missing_message_id() {
        let mut r = Receiver::new(RecvPolicy::default());
        let mut h = send("b", Some((1, Some(0), Some(0))));
        h.content_type = None;
        assert_eq!(
            chunk(&mut r, &h, b"", Continuation::Complete),
            Some(StatusCode::OK)
        );
        assert!(
            r.take_effects().is_empty(),
            "bodiless SEND is not a message"
        );
        assert_eq!(
            chunk(&mut r, &h, b"xx", Continuation::Complete),
            Some(StatusCode::BAD_REQUEST)
        );
        h.message_id = None;
        assert_eq!(
            chunk(&mut r, &h, b"", Continuation::Complete),
            Some(StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn inconsistent_totals_are_bad_requests() {
        let mut r = Receiver::new(RecvPolicy::default());
        chunk(
            &mut r,
            &send("m", Some((1, Some(2), Some(10)))),
            b"ab",
            Continuation::More,
        );
        assert_eq!(
            chunk(
                &mut r,
                &send("m", Some((3, Some(4), Some(12)))),
                b"cd",
                Continuation::More
            ),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            chunk(
                &mut r,
                &send("k", Some((1, Some(2), Some(10)))),
                b"ab",
                Continuation::Complete
            ),
            Some(StatusCode::BAD_REQUEST),
            "$ before the declared total"
        );
        assert_eq!(
            chunk(
                &mut r,
                &send("j", Some((9, None, Some(10)))),
                b"abc",
                Continuation::Complete
            ),
            Some(StatusCode::BAD_REQUEST),
            "body beyond the total"
        );
    }

    #[test]
    fn incomplete_messages_are_bounded() {
        let mut r = Receiver::new(RecvPolicy {
            max_incomplete: 2,
            max_intervals: 3,
            ..RecvPolicy::default()
        });
        chunk(
            &mut r,
            &send("a", Some((1, None, Some(100)))),
            b"a",
            Continuation::More,
        );
        chunk(
            &mut r,
            &send("b", Some((1, None, Some(100)))),
            b"b",
            Continuation::More,
        );
        assert_eq!(
            chunk(
                &mut r,
                &send("c", Some((1, None, Some(100)))),
                b"c",
                Continuation::More
            ),
            Some(StatusCode::MESSAGE_TOO_LARGE)
        );
        for (i, start) in [10u64, 20, 30].iter().enumerate() {
            let s = chunk(
                &mut r,
                &send("a", Some((*start, None, Some(100)))),
                b"x",
                Continuation::More,
            );
            assert_eq!(
                s,
                Some(if i < 2 {
                    StatusCode::OK
                } else {
                    StatusCode::MESSAGE_TOO_LARGE
                })
            );
        }
    }

    #[test]
    fn idle_incomplete_message_is_abandoned() {
        let mut r = Receiver::new(RecvPolicy {
            idle_timeout: Duration::from_secs(10),
            ..RecvPolicy::default()
        });
        let t0 = Instant::now();
        let mut c = r.head(&send("m", Some((1, None, Some(100)))), t0);
        r.body(&mut c, b"abc");
        r.end(c, Continuation::More);
        r.take_effects();
        assert_eq!(r.next_deadline(), Some(t0 + Duration::from_secs(10)));
        r.expire(t0 + Duration::from_secs(9));
        assert!(r.take_effects().is_empty());
        r.expire(t0 + Duration::from_secs(10));
        let e = r.take_effects();
        assert!(
            matches!(&e[..], [RecvEffect::Aborted { received: 3, reason, .. }] if reason.contains("10 s"))
        );
        assert_eq!(r.incomplete_count(), 0);
        assert_eq!(r.next_deadline(), None);
        // a late chunk of it is refused
        assert_eq!(
            chunk(
                &mut r,
                &send("m", Some((4, None, Some(100)))),
                b"d",
                Continuation::More
            ),
            Some(StatusCode::REQUEST_TIMEOUT)
        );
    }

    #[test]
    fn recent_ids_are_bounded() {
        let mut s = RecentIds::new(2);
        s.insert("a", 1);
        s.insert("b", 2);
        s.insert("c", 3);
        assert_eq!(s.get("a"), None);
        assert_eq!(s.get("c"), Some(3));
    }
}
