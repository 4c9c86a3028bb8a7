//! One transport connection (RFC 4975 §5.4): the parser state of the incoming byte stream,
//! the responses and REPORTs waiting to be written, whether we opened it (and to where), and
//! which sessions are bound to it.
//!
//! The [`Endpoint`](crate::endpoint::Endpoint) owns the connections and does the routing; this
//! module holds the per-connection state and the serialisation of outgoing messages.

use std::time::Instant;

use crate::message::{
    write_body_start, write_end_line, write_head, Continuation, Limits, MessageError, MessageHead,
    Method, Parser, StatusCode,
};
use crate::session::{OutRequest, RecvCursor};
use crate::uri::MsrpUri;

/// Identifies a connection of an [`Endpoint`](crate::endpoint::Endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionHandle(pub u64);

impl std::fmt::Display for ConnectionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// We asked the driver to connect; not up yet.
    Connecting,
    /// Up.
    Open,
    /// Closed (the driver was told, or told us).
    Closed,
}

/// Who opened the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Direction {
    /// We connected to this URI's host and port (the active side).
    Outbound(MsrpUri),
    /// The peer connected to us (the passive side).
    Inbound,
}

/// Where the response to a request goes (RFC 4975 §7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub transaction_id: String,
    /// For SEND, the first URI of the request's From-Path; for other methods the whole of it.
    pub to_path: Vec<MsrpUri>,
    /// Our URI in the context of the session (the last URI of the request's To-Path).
    pub from_path: Vec<MsrpUri>,
    /// The request's Failure-Report.
    pub failure_report: crate::message::FailureReport,
}

/// The request or response whose body is being received.
#[derive(Debug)]
pub(crate) enum Current {
    /// Between messages.
    Idle,
    /// A SEND for a session.
    Send {
        session: crate::endpoint::SessionHandle,
        cursor: RecvCursor,
        reply: Reply,
    },
    /// A REPORT for a session, processed at its end-line (RFC 4975 §7.3.2).
    Report {
        session: crate::endpoint::SessionHandle,
        message_id: Option<String>,
        byte_range: Option<crate::message::ByteRange>,
        status: Option<StatusCode>,
    },
    /// A message whose body is dropped; optionally a response to send at its end-line.
    Discard {
        respond: Option<(Reply, StatusCode)>,
    },
}

/// One transport connection.
#[derive(Debug)]
pub struct Connection {
    /// Who opened it.
    pub direction: Direction,
    /// State.
    pub state: ConnectionState,
    pub(crate) parser: Option<Parser>,
    /// Unconsumed input, presented again with the next bytes (the parser's contract).
    pub(crate) inbuf: Vec<u8>,
    /// Responses and REPORT-free control traffic waiting; written before any chunk
    /// (RFC 4975 §7.1.1: pending responses interrupt long SENDs).
    pub(crate) control: Vec<u8>,
    /// Sessions bound to (or, while connecting, waiting for) this connection.
    pub sessions: Vec<crate::endpoint::SessionHandle>,
    /// Round-robin position among the sessions.
    pub(crate) rr: usize,
    /// An inbound connection that binds no session by then is closed.
    pub(crate) bind_deadline: Option<Instant>,
    pub(crate) current: Current,
    /// Close once the control buffer is drained.
    pub(crate) closing: Option<String>,
    /// A closing connection whose control buffer is not drained by then (the peer does not
    /// read) is dropped anyway.
    pub(crate) close_deadline: Option<Instant>,
    /// The peer's IP address, for an accepted connection counted against
    /// [`EndpointConfig::max_connections_per_address`](crate::endpoint::EndpointConfig::max_connections_per_address).
    pub(crate) peer_ip: Option<std::net::IpAddr>,
}

impl Connection {
    pub(crate) fn new(direction: Direction, state: ConnectionState, limits: Limits) -> Self {
        Connection {
            direction,
            state,
            parser: Some(Parser::new(limits)),
            inbuf: Vec::new(),
            control: Vec::new(),
            sessions: Vec::new(),
            rr: 0,
            bind_deadline: None,
            current: Current::Idle,
            closing: None,
            close_deadline: None,
            peer_ip: None,
        }
    }

    /// The target, when we opened the connection.
    pub fn outbound_target(&self) -> Option<&MsrpUri> {
        match &self.direction {
            Direction::Outbound(u) => Some(u),
            Direction::Inbound => None,
        }
    }

    /// Bytes waiting in the control buffer.
    pub fn pending_control(&self) -> usize {
        self.control.len()
    }

    /// Bytes this connection holds in memory: unparsed input (a partial header block or a
    /// possible end-line) and responses not yet taken by the driver. Body bytes are never
    /// held: they go to the session as they arrive.
    pub fn buffered_bytes(&self) -> usize {
        self.inbuf.len() + self.control.len()
    }
}

/// True when two URIs name the same connection target: same scheme, host, port and
/// transport (RFC 4975 §5.4: a connection "associated with the same host, port, and URI
/// scheme" SHOULD be reused). Session ids do not matter.
pub fn same_target(a: &MsrpUri, b: &MsrpUri) -> bool {
    let strip = |u: &MsrpUri| MsrpUri {
        session_id: None,
        userinfo: None,
        params: Vec::new(),
        ..u.clone()
    };
    strip(a).equivalent(&strip(b))
}

/// Serialises a request of a session with its paths. With `body_out`, a SEND's body is
/// moved there instead of being copied into `out`, and its end-line goes into `tail`: the
/// wire bytes are then `out`, `body_out`, `tail` in that order (RFC 4975 §7.1).
pub(crate) fn write_request(
    req: &mut OutRequest,
    to_path: &[MsrpUri],
    from_path: &[MsrpUri],
    out: &mut Vec<u8>,
    body_out: Option<&mut Vec<u8>>,
    tail: &mut Vec<u8>,
) -> Result<(), MessageError> {
    match req {
        OutRequest::Send(c) => {
            let mut head = MessageHead::request(&c.transaction_id, Method::Send)?;
            head.push_to_path(to_path)?
                .push_from_path(from_path)?
                .push_message_id(&c.message_id)?
                .push_byte_range(c.byte_range)?;
            // RFC 4975 §7.1.1: report headers only for non-default reporting.
            if c.success_report {
                head.push_success_report(true)?;
            }
            if c.failure_report != crate::message::FailureReport::Yes {
                head.push_failure_report(c.failure_report)?;
            }
            if let (Some(cd), Some(_)) = (&c.content_disposition, &c.content_type) {
                // RFC 4975 §9: other MIME headers come before Content-Type.
                head.push("Content-Disposition", cd)?;
            }
            if let Some(ct) = &c.content_type {
                // RFC 4975 §7.1: Content-Type is the last header of a request with a body.
                head.push_content_type(ct)?;
            }
            head.check_complete(c.content_type.is_some())?;
            let inline = if body_out.is_some() { 0 } else { c.body.len() };
            out.reserve(head.as_str().len() + inline + 32);
            write_head(&head, out);
            if c.content_type.is_some() {
                write_body_start(out);
                if let Some(body) = body_out {
                    // The body goes out as its own buffer (no copy): the caller writes `out`,
                    // then the body, then `tail`.
                    *body = std::mem::take(&mut c.body);
                    write_end_line(&c.transaction_id, true, c.flag, tail);
                    return Ok(());
                }
                out.extend_from_slice(&c.body);
            }
            write_end_line(&c.transaction_id, c.content_type.is_some(), c.flag, out);
        }
        OutRequest::Report(r) => {
            // RFC 4975 §7.1.2/§7.1.3: Message-ID of the original, Byte-Range, Status 000;
            // never Success-Report or Failure-Report.
            let mut head = MessageHead::request(&r.transaction_id, Method::Report)?;
            head.push_to_path(to_path)?
                .push_from_path(from_path)?
                .push_message_id(&r.message_id)?
                .push_byte_range(r.byte_range)?
                .push_status(r.status, r.status.reason())?;
            head.check_complete(false)?;
            write_head(&head, out);
            write_end_line(&r.transaction_id, false, Continuation::Complete, out);
        }
    }
    Ok(())
}

/// Serialises a response (RFC 4975 §7.2): To-Path, From-Path, end-line with `$`.
pub(crate) fn write_response(
    reply: &Reply,
    status: StatusCode,
    out: &mut Vec<u8>,
) -> Result<(), MessageError> {
    let mut head = MessageHead::response(&reply.transaction_id, status, status.reason())?;
    head.push_to_path(&reply.to_path)?
        .push_from_path(&reply.from_path)?;
    write_head(&head, out);
    write_end_line(&reply.transaction_id, false, Continuation::Complete, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuse_compares_scheme_host_port_transport() {
        let u = |s: &str| MsrpUri::parse(s).unwrap();
        assert!(same_target(
            &u("msrp://192.0.2.1:2855/a;tcp"),
            &u("msrp://192.0.2.1:2855/b;tcp")
        ));
        assert!(same_target(
            &u("msrp://Host.Example:2855/a;tcp"),
            &u("msrp://host.example:2855;tcp")
        ));
        assert!(!same_target(
            &u("msrps://192.0.2.1:2855/a;tcp"),
            &u("msrp://192.0.2.1:2855/a;tcp")
        ));
        assert!(!same_target(
            &u("msrp://192.0.2.1:2856/a;tcp"),
            &u("msrp://192.0.2.1:2855/a;tcp")
        ));
    }
}
