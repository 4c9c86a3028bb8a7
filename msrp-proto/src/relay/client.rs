//! The relay client (RFC 4976 §5.1): AUTH to each of our relays in turn, Use-Path, Expires and
//! its refresh, 423 with Min-Expires / Max-Expires.
//!
//! Sans-IO in the style of the rest of the core: feed it the responses to its AUTH requests
//! ([`RelayClient::handle_response`]), the time ([`RelayClient::handle_timeout`]) and a lost
//! connection ([`RelayClient::handle_connection_lost`]); drain AUTH requests to send on the
//! connection to the first relay ([`RelayClient::poll_transmit`], with caller randomness for
//! transaction ids and cnonces), events ([`RelayClient::poll_event`]) and the next deadline
//! ([`RelayClient::poll_timeout`]).
//!
//! # Chains (RFC 4976 §5.1)
//!
//! The AUTH to the first relay has `To-Path: R1`. Once R1 answers 200 with its Use-Path U1,
//! the AUTH to the next relay goes through it: `To-Path: U1 R2`, and so on. The digest-uri of
//! each AUTH is its rightmost To-Path URI, the relay being authenticated to (RFC 4976 §9.1).
//! The RFC's example relay returns the whole path so far in Use-Path (`U1 U2`); Kamailio
//! returns only its own URI. Both are handled: a Use-Path that starts with the path so far is
//! taken as is, any other is appended to it.
//!
//! With the final Use-Path `U`, [`RelayClient::to_path`] gives `U` followed by the peer's SDP
//! path, and [`RelayClient::sdp_path`] gives `U` reversed followed by our own URI.
//!
//! # Expiry and refresh
//!
//! Each relay grants a lifetime in the Expires of its 200 (each may differ, RFC 4976 §5.1).
//! The client starts a new round of AUTHs through the whole chain when 3/4 of the shortest
//! lifetime has passed ([`REFRESH_FRACTION`]), reusing each relay's nonce with the next nonce
//! count (no extra 401 round trip unless the nonce went stale). A relay that answers
//! `423 Interval Out-of-Bounds` gets the same AUTH again with the Expires it asked for
//! (Min-Expires or Max-Expires), once; the adjusted value is kept for later refreshes. A 200
//! without Expires schedules no refresh. A round that fails ends with [`RelayEvent::Failed`];
//! the URIs of the previous round stay usable until they expire.
//!
//! A relay's URI is only valid on the connection the AUTH came over (RFC 4976 §6.3): after
//! [`RelayClient::handle_connection_lost`] the Use-Path is gone and [`RelayClient::start`]
//! must run again on a new connection.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::digest::{
    cnonce_from_random, AuthenticationInfo, Challenge, Credentials, DigestClient, DigestError,
};
use crate::message::{
    Continuation, HeaderKind, Message, MessageError, MessageHead, Method, StatusCode,
};
use crate::session::{random_ident, RandomSource};
use crate::uri::MsrpUri;

/// Fraction of the granted lifetime after which the client refreshes (numerator / 4).
pub const REFRESH_FRACTION: (u32, u32) = (3, 4);
/// Default time to wait for an AUTH response (RFC 4975 §7.3 suggests 30 s for transactions).
pub const DEFAULT_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Most 401s accepted for one relay in one round (a fresh challenge, then stale ones).
pub const MAX_CHALLENGES_PER_ROUND: u32 = 3;

/// One relay acting on our behalf, with our credentials for it.
#[derive(Debug, Clone)]
pub struct RelaySpec {
    /// The relay's URI as configured (`msrps://relay.example.com:2856;tcp`; no session id).
    pub uri: MsrpUri,
    /// Our user name and password at this relay.
    pub credentials: Credentials,
}

/// Relay client settings.
#[derive(Debug, Clone)]
pub struct RelayClientConfig {
    /// Our relays, the one we connect to first (RFC 4976 §5.1: one AUTH per relay).
    pub relays: Vec<RelaySpec>,
    /// Our own URI, sent in From-Path and appended to the SDP path.
    pub local_uri: MsrpUri,
    /// Lifetime to ask for in `Expires` (RFC 4976 §5.1: MAY); `None` lets each relay choose.
    pub expires: Option<u32>,
    /// How long to wait for each AUTH response.
    pub transaction_timeout: Duration,
}

impl RelayClientConfig {
    /// Settings with the default transaction timeout and no Expires request.
    pub fn new(relays: Vec<RelaySpec>, local_uri: MsrpUri) -> Self {
        RelayClientConfig {
            relays,
            local_uri,
            expires: None,
            transaction_timeout: DEFAULT_TRANSACTION_TIMEOUT,
        }
    }
}

/// Why authentication to a relay failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayFailure {
    /// The relay refused our credentials (a new challenge without `stale=true` after our
    /// Authorization, or too many challenges).
    #[error("relay {relay} refused the credentials")]
    CredentialsRejected {
        /// The relay's configured URI.
        relay: String,
    },
    /// `403`: authenticated but not authorized to use the relay (RFC 4976 §6.3).
    #[error("relay {relay} answered 403: not authorized")]
    Forbidden {
        /// The relay's configured URI.
        relay: String,
    },
    /// `423` that a retry with the relay's limit did not fix, or without a usable limit.
    #[error("relay {relay} refused every Expires we tried (423)")]
    IntervalOutOfBounds {
        /// The relay's configured URI.
        relay: String,
    },
    /// Any other failure status.
    #[error("relay {relay} answered {code}{}", comment.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Status {
        /// The relay's configured URI.
        relay: String,
        /// The status code.
        code: u16,
        /// The comment of the status line.
        comment: Option<String>,
    },
    /// The connection to the first relay could not be opened (refused, unreachable, TLS
    /// handshake or certificate verification failed, RFC 4976 §9.2).
    #[error("could not connect to relay {relay}: {reason}")]
    Unreachable {
        /// The relay's configured URI.
        relay: String,
        /// Why.
        reason: String,
    },
    /// No response within the transaction timeout.
    #[error("relay {relay} did not answer the AUTH within {after:?}")]
    Timeout {
        /// The relay's configured URI.
        relay: String,
        /// The timeout.
        after: Duration,
    },
    /// The response breaks RFC 4976 (no or bad Use-Path, unparsable challenge, wrong
    /// rspauth...).
    #[error("relay {relay} sent an unusable response: {why}")]
    BadResponse {
        /// The relay's configured URI.
        relay: String,
        /// What is wrong.
        why: String,
    },
    /// The connection to the first relay closed: every URI it granted is void (RFC 4976 §6.3).
    #[error("connection to the relay closed")]
    ConnectionLost,
}

/// What the relay client reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEvent {
    /// Every relay accepted us (first time or after a refresh).
    Authenticated {
        /// The final Use-Path: our relays' URIs, first relay first (the To-Path prefix).
        use_path: Vec<MsrpUri>,
        /// The shortest lifetime granted, in seconds, if any relay gave one.
        expires: Option<u32>,
    },
    /// A round of AUTHs failed.
    Failed(RelayFailure),
}

/// Where the client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayState {
    /// Not started, or the connection was lost.
    Idle,
    /// AUTH to relay number `index` (0-based) of the current round.
    Authenticating {
        /// Which relay.
        index: usize,
    },
    /// Every relay accepted us; refresh pending.
    Authenticated,
    /// The last round failed (see the event); [`RelayClient::start`] tries again.
    Failed,
}

#[derive(Debug)]
struct PerRelay {
    spec: RelaySpec,
    digest: DigestClient,
    /// Expires to request; starts at the configured value, adjusted by 423.
    expires: Option<u32>,
    /// This round: a 423 retry was used.
    interval_retried: bool,
    /// This round: 401s received.
    challenges: u32,
    /// When the current grant started and how long it lasts.
    granted: Option<(Instant, Option<u32>)>,
}

#[derive(Debug)]
struct InFlight {
    tid: String,
    deadline: Instant,
}

/// The RFC 4976 client state machine for one chain of relays over one connection.
#[derive(Debug)]
pub struct RelayClient {
    config: RelayClientConfig,
    relays: Vec<PerRelay>,
    state: RelayState,
    /// Use-Path accumulated in the current round.
    round_path: Vec<MsrpUri>,
    /// Use-Path of the last successful round.
    use_path: Option<Vec<MsrpUri>>,
    in_flight: Option<InFlight>,
    need_send: bool,
    refresh_at: Option<Instant>,
    events: VecDeque<RelayEvent>,
}

impl RelayClient {
    /// A client for these relays. Nothing is sent before [`RelayClient::start`].
    pub fn new(config: RelayClientConfig) -> Self {
        let relays = config
            .relays
            .iter()
            .map(|spec| PerRelay {
                spec: spec.clone(),
                digest: DigestClient::new(spec.credentials.clone()),
                expires: config.expires,
                interval_retried: false,
                challenges: 0,
                granted: None,
            })
            .collect();
        RelayClient {
            config,
            relays,
            state: RelayState::Idle,
            round_path: Vec::new(),
            use_path: None,
            in_flight: None,
            need_send: false,
            refresh_at: None,
            events: VecDeque::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> RelayState {
        self.state
    }

    /// The Use-Path of the last successful round (first relay first).
    pub fn use_path(&self) -> Option<&[MsrpUri]> {
        self.use_path.as_deref()
    }

    /// RFC 4976 §5.1: the To-Path of our requests: the Use-Path followed by the peer's SDP
    /// path. `None` before authentication.
    pub fn to_path(&self, peer_path: &[MsrpUri]) -> Option<Vec<MsrpUri>> {
        let mut p = self.use_path.clone()?;
        p.extend_from_slice(peer_path);
        Some(p)
    }

    /// RFC 4976 §5.1: the SDP `a=path` to give the peer: the Use-Path reversed, then our URI.
    /// `None` before authentication.
    pub fn sdp_path(&self) -> Option<Vec<MsrpUri>> {
        let mut p: Vec<MsrpUri> = self.use_path.as_ref()?.iter().rev().cloned().collect();
        p.push(self.config.local_uri.clone());
        Some(p)
    }

    /// True if `tid` is the transaction id of our AUTH awaiting a response (for routing
    /// responses on a connection shared with sessions).
    pub fn owns(&self, tid: &str) -> bool {
        self.in_flight.as_ref().is_some_and(|f| f.tid == tid)
    }

    /// Starts (or restarts) a round of AUTHs from the first relay. With no relays configured
    /// it reports success at once with an empty Use-Path.
    pub fn start(&mut self, _now: Instant) {
        self.round_path.clear();
        self.in_flight = None;
        self.refresh_at = None;
        for r in &mut self.relays {
            r.interval_retried = false;
            r.challenges = 0;
        }
        if self.relays.is_empty() {
            self.use_path = Some(Vec::new());
            self.state = RelayState::Authenticated;
            self.events.push_back(RelayEvent::Authenticated {
                use_path: Vec::new(),
                expires: None,
            });
            return;
        }
        self.state = RelayState::Authenticating { index: 0 };
        self.need_send = true;
    }

    /// The connection to the first relay closed: every URI is void (RFC 4976 §6.3).
    pub fn handle_connection_lost(&mut self) {
        let was_active = self.state != RelayState::Idle;
        self.state = RelayState::Idle;
        self.use_path = None;
        self.in_flight = None;
        self.need_send = false;
        self.refresh_at = None;
        for r in &mut self.relays {
            r.granted = None;
        }
        if was_active {
            self.events
                .push_back(RelayEvent::Failed(RelayFailure::ConnectionLost));
        }
    }

    /// The next AUTH to send on the connection to the first relay. `rng` supplies the
    /// randomness for the transaction id and the cnonce.
    pub fn poll_transmit(&mut self, now: Instant, rng: RandomSource<'_>) -> Option<Message> {
        if !self.need_send {
            return None;
        }
        let RelayState::Authenticating { index } = self.state else {
            self.need_send = false;
            return None;
        };
        self.need_send = false;
        let tid = random_ident(&mut *rng, 16);
        let mut cn = [0u8; 16];
        rng(&mut cn);
        match self.build_auth(index, &tid, &cnonce_from_random(&cn)) {
            Ok(head) => {
                self.in_flight = Some(InFlight {
                    tid,
                    deadline: now + self.config.transaction_timeout,
                });
                Some(Message {
                    head,
                    body: None,
                    continuation: Continuation::Complete,
                })
            }
            Err(why) => {
                self.fail(RelayFailure::BadResponse {
                    relay: self.relays[index].spec.uri.to_string(),
                    why,
                });
                None
            }
        }
    }

    fn build_auth(&mut self, index: usize, tid: &str, cnonce: &str) -> Result<MessageHead, String> {
        let me = self.config.local_uri.clone();
        let r = &mut self.relays[index];
        let target = r.spec.uri.clone();
        let mut to_path = self.round_path.clone();
        to_path.push(target.clone());
        let e = |e: MessageError| format!("cannot build the AUTH: {e}");
        let mut head = MessageHead::request(tid, Method::Auth).map_err(e)?;
        // RFC 4975 §7.1: To-Path first, From-Path second (Kamailio also insists).
        head.push_to_path(&to_path).map_err(e)?;
        head.push_from_path(std::slice::from_ref(&me)).map_err(e)?;
        if r.digest.challenge().is_some() {
            // RFC 4976 §9.1: the digest-uri is the rightmost To-Path URI.
            let auth = r
                .digest
                .authorize(&target.to_string(), cnonce)
                .map_err(|e| format!("cannot build the Authorization: {e}"))?;
            head.push("Authorization", &auth.to_string()).map_err(e)?;
        }
        if let Some(secs) = r.expires {
            head.push_expires(HeaderKind::Expires, secs).map_err(e)?;
        }
        Ok(head)
    }

    /// A response received on the connection. Returns `false` (and ignores it) if it does
    /// not answer our AUTH in flight.
    pub fn handle_response(&mut self, now: Instant, head: &MessageHead) -> bool {
        if !self.owns(head.transaction_id()) {
            return false;
        }
        let Some(status) = head.status_code() else {
            return false;
        };
        self.in_flight = None;
        let RelayState::Authenticating { index } = self.state else {
            return true;
        };
        let relay = self.relays[index].spec.uri.to_string();
        match status {
            StatusCode::OK => self.on_ok(now, index, head),
            StatusCode::UNAUTHORIZED => self.on_challenge(index, head),
            StatusCode::INTERVAL_OUT_OF_BOUNDS => self.on_interval(index, head),
            StatusCode::FORBIDDEN => self.fail(RelayFailure::Forbidden { relay }),
            StatusCode(code) => self.fail(RelayFailure::Status {
                relay,
                code,
                comment: head.comment().map(str::to_string),
            }),
        }
        true
    }

    fn bad(&mut self, index: usize, why: impl Into<String>) {
        let relay = self.relays[index].spec.uri.to_string();
        self.fail(RelayFailure::BadResponse {
            relay,
            why: why.into(),
        });
    }

    fn on_ok(&mut self, now: Instant, index: usize, head: &MessageHead) {
        let info = match head.authentication_info().map(AuthenticationInfo::parse) {
            None => None,
            Some(Ok(i)) => Some(i),
            Some(Err(e)) => return self.bad(index, format!("Authentication-Info: {e}")),
        };
        if let Err(e) = self.relays[index].digest.on_success(info.as_ref()) {
            return self.bad(index, e.to_string());
        }
        let Some(returned) = head.use_path().filter(|p| !p.is_empty()) else {
            return self.bad(
                index,
                "200 to AUTH without a valid Use-Path (RFC 4976 §5.1)",
            );
        };
        // RFC 4976 §4.2: Use-Path URIs MUST have an explicit port.
        if returned.iter().any(|u| u.port.is_none()) {
            return self.bad(index, "Use-Path URI without a port (RFC 4976 §4.2)");
        }
        let prefix_matches = returned.len() > self.round_path.len()
            && self
                .round_path
                .iter()
                .zip(&returned)
                .all(|(a, b)| a.equivalent(b));
        if prefix_matches {
            self.round_path = returned;
        } else {
            self.round_path.extend(returned);
        }
        let r = &mut self.relays[index];
        r.granted = Some((now, head.expires()));
        r.interval_retried = false;
        r.challenges = 0;
        if index + 1 < self.relays.len() {
            self.state = RelayState::Authenticating { index: index + 1 };
            self.need_send = true;
            return;
        }
        // Round complete.
        let use_path = std::mem::take(&mut self.round_path);
        let expires = self
            .relays
            .iter()
            .filter_map(|r| r.granted.and_then(|(_, e)| e))
            .min();
        self.refresh_at = self
            .relays
            .iter()
            .filter_map(|r| {
                let (at, secs) = r.granted?;
                let secs = u64::from(secs?);
                Some(at + Duration::from_secs(secs) * REFRESH_FRACTION.0 / REFRESH_FRACTION.1)
            })
            .min();
        self.use_path = Some(use_path.clone());
        self.state = RelayState::Authenticated;
        self.events
            .push_back(RelayEvent::Authenticated { use_path, expires });
    }

    fn on_challenge(&mut self, index: usize, head: &MessageHead) {
        let relay = self.relays[index].spec.uri.to_string();
        let Some(value) = head.www_authenticate().next() else {
            return self.bad(index, "401 without WWW-Authenticate (RFC 4976 §5.1)");
        };
        let challenge = match Challenge::parse(value) {
            Ok(c) => c,
            Err(e) => return self.bad(index, format!("WWW-Authenticate: {e}")),
        };
        let r = &mut self.relays[index];
        r.challenges += 1;
        if r.challenges > MAX_CHALLENGES_PER_ROUND {
            return self.fail(RelayFailure::CredentialsRejected { relay });
        }
        match r.digest.on_challenge(challenge) {
            Ok(_) => self.need_send = true,
            Err(DigestError::CredentialsRejected { .. }) => {
                self.fail(RelayFailure::CredentialsRejected { relay })
            }
            Err(e) => self.bad(index, e.to_string()),
        }
    }

    fn on_interval(&mut self, index: usize, head: &MessageHead) {
        let relay = self.relays[index].spec.uri.to_string();
        let r = &mut self.relays[index];
        // RFC 4976 §6.3: the relay names its limit in Min-Expires or Max-Expires.
        let limit = head.min_expires().or(head.max_expires());
        match limit {
            Some(secs) if !r.interval_retried && r.expires != Some(secs) => {
                r.interval_retried = true;
                r.expires = Some(secs);
                self.need_send = true;
            }
            _ => self.fail(RelayFailure::IntervalOutOfBounds { relay }),
        }
    }

    fn fail(&mut self, failure: RelayFailure) {
        self.state = RelayState::Failed;
        self.in_flight = None;
        self.need_send = false;
        self.round_path.clear();
        // The previous round's URIs stay usable until they expire; refresh again then.
        self.refresh_at = None;
        self.events.push_back(RelayEvent::Failed(failure));
    }

    /// Advances time: a response overdue fails the round; a due refresh starts a new round.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(f) = &self.in_flight {
            if now >= f.deadline {
                if let RelayState::Authenticating { index } = self.state {
                    let relay = self.relays[index].spec.uri.to_string();
                    let after = self.config.transaction_timeout;
                    self.fail(RelayFailure::Timeout { relay, after });
                }
                return;
            }
        }
        if self.state == RelayState::Authenticated && self.refresh_at.is_some_and(|t| now >= t) {
            self.start(now);
        }
    }

    /// When [`RelayClient::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.in_flight {
            Some(f) => Some(f.deadline),
            None if self.state == RelayState::Authenticated => self.refresh_at,
            None => None,
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::parse_messages;
    use crate::message::Limits;
    use crate::relay::digest::{Algorithm, Authorization, DigestServer};
    use crate::relay::users::{hash_password_lines, Users};
    use crate::uri::{Host, Scheme};

    fn uri(s: &str) -> MsrpUri {
        MsrpUri::parse(s).unwrap()
    }

    fn local() -> MsrpUri {
        MsrpUri::new(
            Scheme::Msrps,
            Host::Name("alice.example.com".into()),
            9892,
            "98cjs",
        )
    }

    /// Deterministic randomness for tests.
    fn counter_rng() -> impl FnMut(&mut [u8]) {
        let mut n = 0u8;
        move |b: &mut [u8]| {
            for x in b {
                n = n.wrapping_add(37);
                *x = n;
            }
        }
    }

    /// How a fake relay builds its Use-Path.
    #[derive(Clone, Copy, PartialEq)]
    enum PathStyle {
        /// Only its own URI (Kamailio).
        OwnOnly,
        /// The path so far plus its own (RFC 4976 §5.1 example).
        Full,
    }

    /// A relay's AUTH handling, built on our digest server, for driving the client.
    struct FakeRelay {
        host: &'static str,
        server: DigestServer,
        users: Users,
        min: u32,
        max: u32,
        style: PathStyle,
        issued: u32,
        /// Answer nothing (to test timeouts).
        silent: bool,
    }

    impl FakeRelay {
        fn new(host: &'static str, password: &str) -> Self {
            let users =
                Users::parse(&hash_password_lines("alice", host, password).unwrap()).unwrap();
            FakeRelay {
                host,
                server: DigestServer::new(host, Algorithm::Sha256, [3; 32]).unwrap(),
                users,
                min: 60,
                max: 3600,
                style: PathStyle::OwnOnly,
                issued: 0,
                silent: false,
            }
        }

        fn uri(&self) -> MsrpUri {
            uri(&format!("msrps://{}:2856;tcp", self.host))
        }

        fn answer(&mut self, secs: u64, req: &MessageHead) -> Option<MessageHead> {
            if self.silent {
                return None;
            }
            let to = req.to_path();
            let from = req.from_path();
            assert!(
                to.last().unwrap().equivalent(&self.uri()),
                "AUTH addressed to {to:?}"
            );
            let reply = |code: u16, comment: &str| {
                let mut h =
                    MessageHead::response(req.transaction_id(), StatusCode(code), Some(comment))
                        .unwrap();
                h.push_to_path(&from).unwrap();
                h.push_from_path(&to).unwrap();
                h
            };
            let Some(value) = req.authorization().next() else {
                let mut h = reply(401, "Unauthorized");
                h.push(
                    "WWW-Authenticate",
                    &self
                        .server
                        .challenge(secs, &[self.issued as u8; 16], false)
                        .to_string(),
                )
                .unwrap();
                self.issued += 1;
                return Some(h);
            };
            let auth = Authorization::parse(value).unwrap();
            let rightmost = to.last().unwrap().to_string();
            let users = &self.users;
            match self
                .server
                .verify(&auth, "AUTH", &rightmost, secs, |u, r, a| {
                    users.ha1(u, r, a).map(str::to_string)
                }) {
                Err(rej) => {
                    let mut h = reply(401, "Unauthorized");
                    h.push(
                        "WWW-Authenticate",
                        &self
                            .server
                            .challenge(secs, &[0xee; 16], rej.is_stale())
                            .to_string(),
                    )
                    .unwrap();
                    Some(h)
                }
                Ok(ok) => {
                    if let Some(e) = req.expires() {
                        if e < self.min {
                            let mut h = reply(423, "Interval Out-of-Bounds");
                            h.push_expires(HeaderKind::MinExpires, self.min).unwrap();
                            return Some(h);
                        }
                        if e > self.max {
                            let mut h = reply(423, "Interval Out-of-Bounds");
                            h.push_expires(HeaderKind::MaxExpires, self.max).unwrap();
                            return Some(h);
                        }
                    }
                    self.issued += 1;
                    let mine = uri(&format!("msrps://{}:2856/u{};tcp", self.host, self.issued));
                    let mut path: Vec<MsrpUri> = match self.style {
                        PathStyle::OwnOnly => vec![],
                        PathStyle::Full => to[..to.len() - 1].to_vec(),
                    };
                    path.push(mine);
                    let mut h = reply(200, "OK");
                    h.push_path(HeaderKind::UsePath, &path).unwrap();
                    h.push("Authentication-Info", &ok.authentication_info.to_string())
                        .unwrap();
                    h.push_expires(HeaderKind::Expires, req.expires().unwrap_or(self.max))
                        .unwrap();
                    Some(h)
                }
            }
        }
    }

    /// Runs the client against fake relays (index by the rightmost To-Path URI) until it has
    /// nothing to send, at time `t0 + secs`. Returns the events.
    fn drive(
        c: &mut RelayClient,
        relays: &mut [FakeRelay],
        t0: Instant,
        secs: u64,
        rng: &mut dyn FnMut(&mut [u8]),
    ) -> Vec<RelayEvent> {
        let now = t0 + Duration::from_secs(secs);
        for _ in 0..20 {
            let Some(msg) = c.poll_transmit(now, &mut *rng) else {
                break;
            };
            // Through the wire format and our parser.
            let wire = msg.encode().unwrap();
            let parsed = parse_messages(&wire, Limits::default()).unwrap().remove(0);
            let target = parsed.head.to_path().last().unwrap().clone();
            let relay = relays
                .iter_mut()
                .find(|r| r.uri().equivalent(&target))
                .expect("AUTH for a relay we know");
            if let Some(resp) = relay.answer(1000 + secs, &parsed.head) {
                assert!(c.handle_response(now, &resp));
            }
        }
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    fn client_for(relays: &[FakeRelay], password: &str, expires: Option<u32>) -> RelayClient {
        let specs = relays
            .iter()
            .map(|r| RelaySpec {
                uri: r.uri(),
                credentials: Credentials::new("alice", password).unwrap(),
            })
            .collect();
        let mut cfg = RelayClientConfig::new(specs, local());
        cfg.expires = expires;
        RelayClient::new(cfg)
    }

    #[test]
    fn single_relay_challenge_then_use_path_and_paths() {
        let mut relays = [FakeRelay::new("intra.example.com", "pw")];
        let mut c = client_for(&relays, "pw", Some(900));
        let t0 = Instant::now();
        let mut rng = counter_rng();
        assert_eq!(c.state(), RelayState::Idle);
        assert!(
            c.poll_transmit(t0, &mut rng).is_none(),
            "nothing before start"
        );
        c.start(t0);
        let ev = drive(&mut c, &mut relays, t0, 0, &mut rng);
        let use_path = vec![uri("msrps://intra.example.com:2856/u2;tcp")];
        assert_eq!(
            ev,
            vec![RelayEvent::Authenticated {
                use_path: use_path.clone(),
                expires: Some(900)
            }]
        );
        assert_eq!(c.state(), RelayState::Authenticated);
        assert_eq!(c.use_path(), Some(&use_path[..]));
        // RFC 4976 §5.1 path rules.
        let peer = vec![uri("msrps://bob.example.net:8145/foo;tcp")];
        assert_eq!(c.to_path(&peer).unwrap(), [use_path.clone(), peer].concat());
        assert_eq!(c.sdp_path().unwrap(), [use_path, vec![local()]].concat());
        // Refresh at 3/4 of 900 s.
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(675)));
    }

    #[test]
    fn first_auth_has_no_authorization_and_the_second_answers_the_challenge() {
        let relays = [FakeRelay::new("intra.example.com", "pw")];
        let mut c = client_for(&relays, "pw", None);
        let t0 = Instant::now();
        let mut rng = counter_rng();
        c.start(t0);
        let first = c.poll_transmit(t0, &mut rng).unwrap();
        assert!(first.head.authorization().next().is_none());
        assert!(first.head.expires().is_none());
        assert_eq!(first.head.to_path(), vec![relays[0].uri()]);
        assert_eq!(first.head.from_path(), vec![local()]);
        // Only To-Path and From-Path, in that order.
        let names: Vec<&str> = first.head.headers().map(|h| h.name).collect();
        assert_eq!(names, ["To-Path", "From-Path"]);
        assert!(
            c.poll_transmit(t0, &mut rng).is_none(),
            "one AUTH at a time"
        );
        let mut h401 = MessageHead::response(
            first.head.transaction_id(),
            StatusCode(401),
            Some("Unauthorized"),
        )
        .unwrap();
        h401.push_to_path(&[local()]).unwrap();
        h401.push_from_path(&[relays[0].uri()]).unwrap();
        h401.push(
            "WWW-Authenticate",
            "Digest realm=\"intra.example.com\", nonce=\"abc\", qop=\"auth\"",
        )
        .unwrap();
        // A response to another transaction is not ours.
        let mut other = h401.clone();
        other.set_transaction_id("someoneelse").unwrap();
        assert!(!c.handle_response(t0, &other));
        assert!(c.handle_response(t0, &h401));
        let second = c.poll_transmit(t0, &mut rng).unwrap();
        assert_ne!(second.head.transaction_id(), first.head.transaction_id());
        let auth = Authorization::parse(second.head.authorization().next().unwrap()).unwrap();
        // RFC 4976 §9.1: the digest-uri is the rightmost To-Path URI; cnonce and nc present.
        assert_eq!(auth.uri, relays[0].uri().to_string());
        assert_eq!(auth.nc, 1);
        assert!(!auth.cnonce.is_empty());
        assert_eq!(auth.qop, "auth");
    }

    #[test]
    fn refresh_reuses_the_nonce_and_reports_again() {
        let mut relays = [FakeRelay::new("intra.example.com", "pw")];
        // Nonces outlive the refresh interval here (the stale case is the next test).
        relays[0].server = DigestServer::new("intra.example.com", Algorithm::Sha256, [3; 32])
            .unwrap()
            .with_nonce_lifetime(3600);
        let mut c = client_for(&relays, "pw", Some(600));
        let t0 = Instant::now();
        let mut rng = counter_rng();
        c.start(t0);
        assert_eq!(drive(&mut c, &mut relays, t0, 0, &mut rng).len(), 1);
        let refresh = t0 + Duration::from_secs(450);
        assert_eq!(c.poll_timeout(), Some(refresh));
        // Not yet.
        c.handle_timeout(refresh - Duration::from_secs(1));
        assert!(c.poll_transmit(refresh, &mut rng).is_none());
        c.handle_timeout(refresh);
        assert!(matches!(c.state(), RelayState::Authenticating { index: 0 }));
        // The refresh AUTH carries credentials at once (nc=2 on the same nonce).
        let m = c.poll_transmit(refresh, &mut rng).unwrap();
        let a = Authorization::parse(m.head.authorization().next().unwrap()).unwrap();
        assert_eq!(a.nc, 2);
        let resp = relays[0].answer(1450, &m.head).unwrap();
        assert_eq!(resp.status_code(), Some(StatusCode::OK));
        assert!(c.handle_response(refresh, &resp));
        // A new AUTH gives a new URI (Use-Path changes; the application re-advertises it).
        let ev = c.poll_event().unwrap();
        assert_eq!(
            ev,
            RelayEvent::Authenticated {
                use_path: vec![uri("msrps://intra.example.com:2856/u3;tcp")],
                expires: Some(600)
            }
        );
        assert_eq!(c.poll_timeout(), Some(refresh + Duration::from_secs(450)));
    }

    #[test]
    fn stale_nonce_on_refresh_is_retried() {
        let mut relays = [FakeRelay::new("intra.example.com", "pw")];
        relays[0].server = DigestServer::new("intra.example.com", Algorithm::Sha256, [3; 32])
            .unwrap()
            .with_nonce_lifetime(100);
        let mut c = client_for(&relays, "pw", Some(600));
        let t0 = Instant::now();
        let mut rng = counter_rng();
        c.start(t0);
        drive(&mut c, &mut relays, t0, 0, &mut rng);
        c.handle_timeout(t0 + Duration::from_secs(450));
        let ev = drive(&mut c, &mut relays, t0, 450, &mut rng);
        assert!(
            matches!(ev.as_slice(), [RelayEvent::Authenticated { .. }]),
            "{ev:?}"
        );
    }

    #[test]
    fn interval_too_short_is_retried_with_min_expires() {
        let mut relays = [FakeRelay::new("intra.example.com", "pw")];
        let mut c = client_for(&relays, "pw", Some(30));
        let t0 = Instant::now();
        let mut rng = counter_rng();
        c.start(t0);
        let ev = drive(&mut c, &mut relays, t0, 0, &mut rng);
        assert!(
            matches!(
                ev.as_slice(),
                [RelayEvent::Authenticated {
                    expires: Some(60),
                    ..
                }]
            ),
            "{ev:?}"
        );
        // Refresh at 45 s, asking for 60 again.
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(45)));
        c.handle_timeout(t0 + Duration::from_secs(45));
        let m = c
            .poll_transmit(t0 + Duration::from_secs(45), &mut rng)
            .unwrap();
        assert_eq!(m.head.expires(), Some(60));
        // Too long: Max-Expires.
        let mut relays = [FakeRelay::new("intra.example.com", "pw")];
        let mut c = client_for(&relays, "pw", Some(99_999));
        c.start(t0);
        let ev = drive(&mut c, &mut relays, t0, 0, &mut rng);
        assert!(
            matches!(
                ev.as_slice(),
                [RelayEvent::Authenticated {
                    expires: Some(3600),
                    ..
                }]
            ),
            "{ev:?}"
        );
    }

    #[test]
    fn a_second_423_fails() {
        let mut relays = [FakeRelay::new("intra.example.com", "pw")];
        relays[0].min = 120;
        relays[0].max = 100; // inconsistent relay: no Expires is acceptable
        let mut c = client_for(&relays, "pw", Some(30));
        let t0 = Instant::now();
        let mut rng = counter_rng();
        c.start(t0);
        let ev = drive(&mut c, &mut relays, t0, 0, &mut rng);
        assert_eq!(
            ev,
            vec![RelayEvent::Failed(RelayFailure::IntervalOutOfBounds {
                relay: relays[0].uri().to_string()
            })]
        );
        assert_eq!(c.state(), RelayState::Failed);
    }

    #[test]
    fn wrong_password_fails_without_looping() {
        let mut relays = [FakeRelay::new("intra.example.com", "pw")];
        let mut c = client_for(&relays, "wrong", None);
        let t0 = Instant::now();
        let mut rng = counter_rng();
        c.start(t0);
        let ev = drive(&mut c, &mut relays, t0, 0, &mut rng);
        assert_eq!(
            ev,
            vec![RelayEvent::Failed(RelayFailure::CredentialsRejected {
                relay: relays[0].uri().to_string()
            })]
        );
        assert!(c.use_path().is_none());
    }

    #[test]
    fn chain_of_two_relays_both_use_path_styles() {
        for style in [PathStyle::OwnOnly, PathStyle::Full] {
            let mut relays = [
                FakeRelay::new("intra.example.com", "pw"),
                FakeRelay::new("extra.example.com", "pw"),
            ];
            relays[1].style = style;
            relays[1].issued = 100;
            let mut c = client_for(&relays, "pw", Some(1800));
            let t0 = Instant::now();
            let mut rng = counter_rng();
            c.start(t0);
            // Watch the AUTH to the second relay: it goes through the first one's URI.
            let mut to_paths = Vec::new();
            for _ in 0..10 {
                let Some(m) = c.poll_transmit(t0, &mut rng) else {
                    break;
                };
                to_paths.push(m.head.to_path());
                let target = m.head.to_path().last().unwrap().clone();
                let r = relays
                    .iter_mut()
                    .find(|r| r.uri().equivalent(&target))
                    .unwrap();
                let resp = r.answer(1000, &m.head).unwrap();
                assert!(c.handle_response(t0, &resp));
            }
            let intra = uri("msrps://intra.example.com:2856/u2;tcp");
            let extra = uri("msrps://extra.example.com:2856/u102;tcp");
            assert_eq!(
                to_paths.last().unwrap(),
                &vec![intra.clone(), relays[1].uri()]
            );
            let ev = c.poll_event().unwrap();
            assert_eq!(
                ev,
                RelayEvent::Authenticated {
                    use_path: vec![intra.clone(), extra.clone()],
                    expires: Some(1800)
                }
            );
            // RFC 4976 §5.1 example: Use-Path "B C" gives the SDP path "C B A".
            assert_eq!(c.sdp_path().unwrap(), vec![extra, intra, local()]);
        }
    }

    #[test]
    fn timeout_without_response_fails() {
        let mut relays = [FakeRelay::new("intra.example.com", "pw")];
        relays[0].silent = true;
        let mut c = client_for(&relays, "pw", None);
        let t0 = Instant::now();
        let mut rng = counter_rng();
        c.start(t0);
        assert!(drive(&mut c, &mut relays, t0, 0, &mut rng).is_empty());
        let deadline = t0 + DEFAULT_TRANSACTION_TIMEOUT;
        assert_eq!(c.poll_timeout(), Some(deadline));
        c.handle_timeout(deadline - Duration::from_millis(1));
        assert!(c.poll_event().is_none());
        c.handle_timeout(deadline);
        assert_eq!(
            c.poll_event(),
            Some(RelayEvent::Failed(RelayFailure::Timeout {
                relay: relays[0].uri().to_string(),
                after: DEFAULT_TRANSACTION_TIMEOUT
            }))
        );
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn bad_responses_fail_clearly() {
        let t0 = Instant::now();
        let relay = uri("msrps://intra.example.com:2856;tcp");
        let start = |c: &mut RelayClient, rng: &mut dyn FnMut(&mut [u8])| {
            c.start(t0);
            c.poll_transmit(t0, rng).unwrap()
        };
        let base = |m: &Message, code: u16| {
            let mut h = MessageHead::response(m.head.transaction_id(), StatusCode(code), Some("x"))
                .unwrap();
            h.push_to_path(&[local()]).unwrap();
            h.push_from_path(std::slice::from_ref(&relay)).unwrap();
            h
        };
        let relays = [FakeRelay::new("intra.example.com", "pw")];
        let check = |h: &dyn Fn(&Message) -> MessageHead, want: &dyn Fn(&RelayFailure) -> bool| {
            let mut c = client_for(&relays, "pw", None);
            let mut rng = counter_rng();
            let m = start(&mut c, &mut rng);
            assert!(c.handle_response(t0, &h(&m)));
            match c.poll_event() {
                Some(RelayEvent::Failed(f)) => assert!(want(&f), "{f:?}"),
                other => panic!("{other:?}"),
            }
        };
        // 200 without Use-Path.
        check(
            &|m| base(m, 200),
            &|f| matches!(f, RelayFailure::BadResponse { why, .. } if why.contains("Use-Path")),
        );
        // Use-Path without a port.
        check(
            &|m| {
                let mut h = base(m, 200);
                h.push("Use-Path", "msrps://intra.example.com/x;tcp")
                    .unwrap();
                h
            },
            &|f| matches!(f, RelayFailure::BadResponse { why, .. } if why.contains("port")),
        );
        // 401 without WWW-Authenticate, and with Basic.
        check(&|m| base(m, 401), &|f| {
            matches!(f, RelayFailure::BadResponse { .. })
        });
        check(
            &|m| {
                let mut h = base(m, 401);
                h.push("WWW-Authenticate", "Basic realm=\"x\"").unwrap();
                h
            },
            &|f| matches!(f, RelayFailure::BadResponse { why, .. } if why.contains("Basic")),
        );
        // 403 and other codes.
        check(&|m| base(m, 403), &|f| {
            matches!(f, RelayFailure::Forbidden { .. })
        });
        check(
            &|m| base(m, 500),
            &|f| matches!(f, RelayFailure::Status { code: 500, comment: Some(c), .. } if c == "x"),
        );
        // 423 without a limit.
        check(&|m| base(m, 423), &|f| {
            matches!(f, RelayFailure::IntervalOutOfBounds { .. })
        });
    }

    #[test]
    fn wrong_rspauth_fails_and_connection_loss_voids_the_path() {
        let mut relays = [FakeRelay::new("intra.example.com", "pw")];
        let mut c = client_for(&relays, "pw", None);
        let t0 = Instant::now();
        let mut rng = counter_rng();
        c.start(t0);
        let m = c.poll_transmit(t0, &mut rng).unwrap();
        let r401 = relays[0].answer(1000, &m.head).unwrap();
        c.handle_response(t0, &r401);
        let m = c.poll_transmit(t0, &mut rng).unwrap();
        let ok = relays[0].answer(1000, &m.head).unwrap();
        let mut forged = ok.clone();
        forged
            .set(
                "Authentication-Info",
                "rspauth=\"0000000000000000000000000000000000000000000000000000000000000000\", qop=auth",
            )
            .unwrap();
        assert!(c.handle_response(t0, &forged));
        assert!(matches!(
            c.poll_event(),
            Some(RelayEvent::Failed(RelayFailure::BadResponse { why, .. })) if why.contains("rspauth")
        ));
        // A good round, then the connection drops.
        c.start(t0);
        let ev = drive(&mut c, &mut relays, t0, 1, &mut rng);
        assert!(matches!(ev.as_slice(), [RelayEvent::Authenticated { .. }]));
        c.handle_connection_lost();
        assert_eq!(
            c.poll_event(),
            Some(RelayEvent::Failed(RelayFailure::ConnectionLost))
        );
        assert_eq!(c.state(), RelayState::Idle);
        assert!(c.use_path().is_none() && c.sdp_path().is_none() && c.poll_timeout().is_none());
    }

    #[test]
    fn no_relays_means_no_use_path_prefix() {
        let mut c = RelayClient::new(RelayClientConfig::new(vec![], local()));
        c.start(Instant::now());
        assert_eq!(
            c.poll_event(),
            Some(RelayEvent::Authenticated {
                use_path: vec![],
                expires: None
            })
        );
        assert_eq!(c.sdp_path().unwrap(), vec![local()]);
    }
}
