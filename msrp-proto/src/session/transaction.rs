//! Outstanding SEND transactions and their timers (RFC 4975 §7.1.1, §7.2).
//!
//! Every chunk is one transaction with a fresh transaction id. With `Failure-Report: yes` the
//! sender runs a timer: no 200 within the transaction timeout (30 s by default) from the time
//! the chunk was handed to the transport means the request "probably failed" and the user is
//! told (RFC 4975 §7.1.1). With `partial` no timer is needed, but a non-200 response still has
//! to be reported, so the entry is kept for the same time and then forgotten silently. With
//! `no`, no response comes and nothing is kept.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use super::wire::FailureReport;

/// One outstanding transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The Message-ID of the chunk.
    pub message_id: String,
    /// 0-based offset of the chunk's first byte in the message.
    pub offset: u64,
    /// Number of body bytes in the chunk.
    pub len: u64,
    /// The chunk's Failure-Report value (`yes` or `partial`).
    pub failure_report: FailureReport,
    /// When the timer fires.
    pub deadline: Instant,
}

/// The transactions of one session, keyed by transaction id.
#[derive(Debug, Default)]
pub struct Transactions {
    map: HashMap<String, Transaction>,
    /// Deadlines in insertion order; since every deadline is `now + timeout` with a
    /// non-decreasing `now`, this is also deadline order. Entries whose transaction already
    /// completed are skipped lazily.
    order: VecDeque<(Instant, String)>,
}

impl Transactions {
    /// True when `tid` is in use (a new id must not collide, RFC 4975 §7.1).
    pub fn contains(&self, tid: &str) -> bool {
        self.map.contains_key(tid)
    }

    /// Starts tracking a transaction.
    pub fn insert(&mut self, tid: String, tx: Transaction) {
        self.order.push_back((tx.deadline, tid.clone()));
        self.map.insert(tid, tx);
    }

    /// Removes and returns the transaction a response answers.
    pub fn complete(&mut self, tid: &str) -> Option<Transaction> {
        let tx = self.map.remove(tid);
        self.gc_front();
        tx
    }

    /// Removes every transaction of a message (it was aborted or failed).
    pub fn forget_message(&mut self, message_id: &str) {
        self.map.retain(|_, t| t.message_id != message_id);
        self.gc_front();
    }

    /// Number of outstanding transactions.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is outstanding.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of outstanding `Failure-Report: yes` transactions of a message.
    pub fn awaiting(&self, message_id: &str) -> usize {
        self.map
            .values()
            .filter(|t| t.message_id == message_id && t.failure_report == FailureReport::Yes)
            .count()
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.order.front().map(|(d, _)| *d)
    }

    /// Removes and returns the transactions whose deadline is at or before `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<(String, Transaction)> {
        let mut out = Vec::new();
        while let Some((d, _)) = self.order.front() {
            if *d > now {
                break;
            }
            let (_, tid) = self.order.pop_front().expect("front exists");
            if let Some(tx) = self.map.remove(&tid) {
                out.push((tid, tx));
            }
        }
        self.gc_front();
        out
    }

    /// Drops every transaction, returning them.
    pub fn drain(&mut self) -> Vec<(String, Transaction)> {
        self.order.clear();
        self.map.drain().collect()
    }

    fn gc_front(&mut self) {
        while let Some((_, tid)) = self.order.front() {
            if self.map.contains_key(tid) {
                break;
            }
            self.order.pop_front();
        }
        // Keep the order queue from growing without bound when many transactions complete
        // out of order behind a long-lived one.
        if self.order.len() > 2 * self.map.len() + 64 {
            self.order.retain(|(_, tid)| self.map.contains_key(tid));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tx(m: &str, deadline: Instant) -> Transaction {
        Transaction {
            message_id: m.into(),
            offset: 0,
            len: 1,
            failure_report: FailureReport::Yes,
            deadline,
        }
    }

    #[test]
    fn expiry_in_deadline_order_skips_completed() {
        let t0 = Instant::now();
        let mut t = Transactions::default();
        t.insert("a".into(), tx("m1", t0 + Duration::from_secs(1)));
        t.insert("b".into(), tx("m1", t0 + Duration::from_secs(2)));
        t.insert("c".into(), tx("m2", t0 + Duration::from_secs(3)));
        assert_eq!(t.awaiting("m1"), 2);
        assert!(t.complete("a").is_some());
        assert!(t.complete("a").is_none());
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(2)));
        let e = t.expire(t0 + Duration::from_secs(2));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, "b");
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(3)));
        t.forget_message("m2");
        assert!(t.is_empty());
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn order_queue_stays_bounded() {
        let t0 = Instant::now();
        let mut t = Transactions::default();
        t.insert("keep".into(), tx("m", t0));
        for i in 0..10_000 {
            let id = format!("t{i}");
            t.insert(id.clone(), tx("m", t0));
            t.complete(&id);
        }
        assert!(t.order.len() < 200, "{}", t.order.len());
        assert_eq!(t.len(), 1);
    }
}
