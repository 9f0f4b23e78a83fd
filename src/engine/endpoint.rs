//! The endpoint: one per worker, holding every transaction, dialog and
//! registration binding of that worker, plus the timing wheel and the
//! outgoing queue. This file has the struct, its constructors, identifiers
//! and map keys, the buffer pool and output queue, and the `SansIo` entry
//! points; `state` has the state types, `timers` the timer machinery,
//! `txn` the transactions of RFC 3261 §17, `uac` and `uas` the flows.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::SansIo;
use super::config::{ClientConfig, ServerConfig, Timers};
use super::event::{Counters, Event, MethodKind};
use super::state::{Absorbed, Absorbers, Aor, IndexByKey, Sess, StateSizes, Txn};
use super::uac::{MixedUser, Pending};
use super::util::{IdHash, NcGuard, Rng, Slab, hash_bytes, mix};
use super::wheel::Wheel;
use super::wire::{Wire, hostport};
use crate::auth::NonceMint;
use crate::flow::Flow;
use crate::sip;

/// Nonces whose `nc` a server endpoint remembers (about 30 B each): at the
/// cap the oldest are forgotten and their clients re-challenged.
const NC_GUARD_CAP: usize = 1 << 20;

/// Bytes of Timer J responses a client endpoint keeps (its answering UAS
/// side in mixed mode); a server takes `ServerConfig::response_store_bytes`.
const RESPONSE_STORE_BYTES: usize = 32 << 20;

/// What an endpoint is configured as.
#[derive(Debug)]
pub(super) enum Role {
    /// A load generator (`sipstorm run`): its UAC flows, and in mixed mode
    /// also the answering UAS its users' calls reach.
    Client(ClientConfig),
    /// The built-in target (`sipstorm serve`): registrar with digest
    /// authentication, stateless proxy, answering UAS.
    Server(ServerConfig),
}

impl Role {
    #[inline]
    pub(super) fn client(&self) -> Option<&ClientConfig> {
        match self {
            Role::Client(c) => Some(c),
            Role::Server(_) => None,
        }
    }
    #[inline]
    pub(super) fn server(&self) -> Option<&ServerConfig> {
        match self {
            Role::Server(c) => Some(c),
            Role::Client(_) => None,
        }
    }
}

/// UAS behaviour shared by `serve` and the answering side of mixed mode.
#[derive(Debug, Clone)]
pub(super) struct AnswerPolicy {
    /// Delay before the 200 (100 and 180 go at once), drawn per call.
    pub ring: crate::dist::Delay,
    /// Fraction of calls answered 486 Busy Here.
    pub busy: f64,
    /// Fraction of calls never answered (480 after `no_answer_timeout`).
    pub no_answer: f64,
    pub no_answer_timeout: Duration,
    /// The longest a call is kept without BYE.
    pub max_call: Duration,
    pub auth_register: bool,
    pub auth_invite: bool,
    /// Act as registrar (REGISTER is answered 405 otherwise).
    pub registrar: bool,
}

/// Reused buffers for values assembled while building or checking one
/// message, so doing so allocates nothing.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    /// A user name (From/To/Contact user, digest username) or a URI built
    /// around one.
    pub name: Vec<u8>,
    /// A user's password.
    pub password: Vec<u8>,
    /// A header value: `Authorization`, a challenge, the registrar's
    /// Contact list.
    pub header: Vec<u8>,
    /// The From user when it is not the user (`--caller`).
    pub caller: Vec<u8>,
    /// A digest username.
    pub auth_name: Vec<u8>,
    /// The extra header lines of one request (`--header`).
    pub extra: Vec<u8>,
    /// A message body rendered from a template (`--sdp`).
    pub body: Vec<u8>,
}

/// One worker's SIP engine; see the module documentation of [`super`].
#[derive(Debug)]
pub struct Endpoint {
    pub(super) role: Role,
    pub(super) answer: AnswerPolicy,
    pub(super) timers: Timers,
    /// Time zero of this endpoint's nanosecond timestamps.
    pub(super) epoch: Instant,
    pub(super) rng: Rng,
    /// Identifiers (Call-ID, tags, branches) are a hash of seed and counter.
    pub(super) id_seed: u64,
    pub(super) id_counter: u64,
    /// Seed of every map key's hash (so a peer cannot aim at one bucket).
    pub(super) hash_seed: u64,
    pub(super) wheel: Wheel,
    /// Reused buffer of the payloads the wheel fired.
    pub(super) fired_timers: Vec<u64>,
    pub(super) txns: Slab<Txn>,
    /// Client transactions by branch + method (§17.1.3).
    pub(super) client_txns: IndexByKey,
    /// Server INVITE transactions by branch + sent-by + method (§17.2.3).
    pub(super) server_txns: IndexByKey,
    pub(super) sessions: Slab<Sess>,
    /// Sessions by Call-ID + local tag.
    pub(super) dialogs: IndexByKey,
    pub(super) absorbers: Absorbers,
    pub(super) aors: Slab<Aor>,
    /// Registrar binding sets by the hash of their user.
    pub(super) aor_map: IndexByKey,
    /// Mints and checks digest nonces (server only).
    pub(super) nonce_mint: Option<NonceMint>,
    /// Messages to send, in order, each in a pooled buffer.
    pub(super) outbox: VecDeque<(Flow, Vec<u8>)>,
    pub(super) buf_pool: Vec<Vec<u8>>,
    pub(super) events: VecDeque<Event>,
    pub(super) counters: Counters,
    pub(super) wire: Wire,
    pub(super) scratch: Scratch,
    /// Attempts started and not finished.
    pub(super) live_attempts: usize,
    pub(super) shutting_down: bool,
    /// Round-robin position over this worker's users (`next_user`).
    pub(super) user_cursor: usize,
    /// Calls placed to a `--callee` pattern so far (its next entry).
    pub(super) callee_cursor: u64,
    /// Per local user: in a registration attempt now.
    pub(super) user_registering: Vec<bool>,
    /// Per local user: registration state of mixed mode.
    pub(super) mixed_users: Vec<MixedUser>,
    /// Mixed-mode calls waiting for their users' registrations.
    pub(super) pending_calls: Vec<Pending>,
    pub(super) rtt_events: bool,
    /// Live client transactions with `Txn::prompt` set.
    pub(super) prompt_txns: u32,
    /// An INVITE of this endpoint was challenged (401/407): from now on
    /// unauthenticated INVITEs may be too.
    pub(super) invites_challenged: bool,
    /// Highest digest `nc` seen per nonce (server only; replay guard).
    pub(super) nc_guard: NcGuard,
    /// Live UAS calls per peer (hash of source address), server only.
    pub(super) peer_calls: HashMap<u64, u32, IdHash>,
    /// Live server INVITE transactions per source IP address (server only;
    /// `max_transactions_per_source`).
    pub(super) source_txns: HashMap<u64, u32, IdHash>,
    /// Key of the proxy's branch MAC (server only, see `proxy`).
    pub(super) branch_key: [u8; 32],
    /// Reused buffer of the (unescaped) user of an address-of-record.
    pub(super) aor_user: Vec<u8>,
    /// Connection keys handed out (pool slots and per-attempt keys).
    pub(super) conn_keys: u32,
    /// Per-attempt connections whose attempt ended, for the transport to
    /// close ([`Endpoint::poll_released`]).
    pub(super) released: VecDeque<Flow>,
    /// A SIPp scenario run instead of the built-in flows (`--sf`).
    pub(super) scen: Option<Box<super::scenario::ScenEngine>>,
}

impl Endpoint {
    fn new(role: Role, wire: Wire, answer: AnswerPolicy, now: Instant) -> Self {
        let (timers, seed) = match &role {
            Role::Client(c) => (c.timers, c.seed),
            Role::Server(c) => (c.timers, c.seed),
        };
        let mut rng = Rng::new(seed ^ 0x5151_7a7a);
        // Mix in our address too, so workers given the same seed still
        // generate distinct Call-IDs, tags and branches.
        let id_seed = rng.next_u64() ^ hash_bytes(0x1d5e_ed00, &wire.hostport);
        let hash_seed = rng.next_u64();
        Endpoint {
            role,
            answer,
            timers,
            epoch: now,
            rng,
            id_seed,
            id_counter: 0,
            hash_seed,
            wheel: Wheel::new(now),
            fired_timers: Vec::new(),
            txns: Slab::default(),
            client_txns: IndexByKey::default(),
            server_txns: IndexByKey::default(),
            sessions: Slab::default(),
            dialogs: IndexByKey::default(),
            absorbers: Absorbers {
                response_cap: RESPONSE_STORE_BYTES,
                ..Absorbers::default()
            },
            aors: Slab::default(),
            aor_map: IndexByKey::default(),
            nonce_mint: None,
            outbox: VecDeque::new(),
            buf_pool: Vec::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
            wire,
            scratch: Scratch::default(),
            live_attempts: 0,
            shutting_down: false,
            user_cursor: 0,
            callee_cursor: 0,
            user_registering: Vec::new(),
            mixed_users: Vec::new(),
            pending_calls: Vec::new(),
            rtt_events: false,
            prompt_txns: 0,
            invites_challenged: false,
            nc_guard: NcGuard::new(NC_GUARD_CAP),
            peer_calls: HashMap::default(),
            source_txns: HashMap::default(),
            branch_key: [0; 32],
            aor_user: Vec::new(),
            conn_keys: 0,
            released: VecDeque::new(),
            scen: None,
        }
    }

    /// The flow of a new attempt of `user` to `target`: over a stream
    /// transport it carries the key of the connection the attempt uses
    /// ([`ClientConfig::connection`]): a pool slot in turn, the user, or a
    /// key of its own (released when the attempt ends, see
    /// [`Endpoint::poll_released`]). Datagram flows are returned as they
    /// are.
    pub(super) fn keyed_flow(&mut self, target: Flow, user: u32) -> Flow {
        let Some(mode) = self.role.client().map(|c| c.connection) else {
            return target;
        };
        if !target.transport.is_stream() {
            return target;
        }
        let key = match mode {
            crate::flow::ConnectionMode::User => user,
            crate::flow::ConnectionMode::Shared(n) => {
                self.conn_keys = self.conn_keys.wrapping_add(1);
                self.conn_keys % n.max(1)
            }
            crate::flow::ConnectionMode::Call => {
                self.conn_keys = self.conn_keys.wrapping_add(1);
                self.conn_keys
            }
        };
        Flow::new(target.transport, target.peer, crate::flow::ConnId::key(key))
    }

    /// A per-attempt connection (`ConnectionMode::Call`) whose attempt
    /// ended: the transport may close it once its queue went out.
    pub fn poll_released(&mut self) -> Option<Flow> {
        self.released.pop_front()
    }

    /// A load-generating endpoint (UAC; in mixed mode also the answering UAS).
    pub fn client(cfg: ClientConfig, now: Instant) -> Self {
        let domain = if cfg.domain.is_empty() {
            hostport(&cfg.target)
        } else {
            cfg.domain.clone().into_bytes()
        };
        let answer = AnswerPolicy {
            ring: cfg.answer_ring,
            busy: 0.0,
            no_answer: 0.0,
            no_answer_timeout: cfg.ring_timeout * 2,
            max_call: Duration::from_secs(24 * 3600),
            auth_register: false,
            auth_invite: false,
            registrar: false,
        };
        let wire = Wire::new(cfg.local, domain, &[]).with_client(&cfg);
        // Per-user state (`user_registering`, `mixed_users`) is sized by the
        // first attempt of the scenario that needs it (a mix may start any).
        let scen = cfg.scenario_file.clone().map(|s| {
            let users = s.users.clone().unwrap_or_else(|| cfg.users.clone());
            Box::new(super::scenario::ScenEngine::new(
                s,
                cfg.transport,
                cfg.local,
                Some(cfg.target),
                users,
                cfg.timers.t2,
                cfg.seed,
            ))
        });
        let mut e = Self::new(Role::Client(cfg), wire, answer, now);
        e.scen = scen;
        e
    }

    /// The built-in target: registrar with digest authentication and answering UAS.
    pub fn server(cfg: ServerConfig, now: Instant) -> Self {
        let answer = AnswerPolicy {
            ring: cfg.ring,
            busy: cfg.busy_ratio,
            no_answer: cfg.no_answer_ratio,
            no_answer_timeout: cfg.no_answer_timeout,
            max_call: cfg.max_call,
            auth_register: cfg.auth,
            auth_invite: cfg.auth && cfg.auth_invite,
            registrar: true,
        };
        let domain = hostport(&cfg.local);
        let mint = NonceMint::with_stream(cfg.secret.derive(b"digest nonce"), cfg.worker);
        let branch_key = cfg.secret.derive(b"proxy branch");
        // Hash keys and identifiers (tags, branches) come from the secret,
        // not from the seed of the draws: a peer that cannot guess them
        // cannot aim keys at one bucket or predict a tag. The worker index
        // keeps workers sharing an address apart.
        let keys = cfg.secret.derive(b"hash keys and identifiers");
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&keys[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w) ^ u64::from(cfg.worker).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        };
        let (hash_seed, id_seed) = (word(0), word(1));
        let response_cap = cfg.response_store_bytes;
        let mut wire = Wire::new(cfg.local, domain, &cfg.sdp);
        wire.set_listen(&cfg.listen);
        let scen = cfg.scenario_file.clone().map(|s| {
            // A server's transport is the one its first listener speaks.
            let transport = cfg
                .listen
                .first()
                .map_or(crate::flow::TransportKind::Udp, |l| l.0);
            let users = s.users.clone().unwrap_or_else(|| cfg.passwords.clone());
            Box::new(super::scenario::ScenEngine::new(
                s,
                transport,
                cfg.local,
                None,
                users,
                cfg.timers.t2,
                cfg.seed,
            ))
        });
        let mut e = Self::new(Role::Server(cfg), wire, answer, now);
        e.nonce_mint = Some(mint);
        e.branch_key = branch_key;
        e.hash_seed = hash_seed;
        e.id_seed = id_seed ^ hash_bytes(0x1d5e_ed00, &e.wire.hostport);
        e.absorbers.response_cap = response_cap;
        e.scen = scen;
        e
    }

    /// Also emit [`Event::TransactionRtt`] for client transactions answered
    /// without retransmission (off by default: one event per transaction).
    pub fn set_rtt_events(&mut self, on: bool) {
        self.rtt_events = on;
    }

    /// Whether a message received now may call for a reply that a measured
    /// latency includes, so the driver should handle it at once rather
    /// than at its next pacing tick.
    ///
    /// Responses are stamped with their kernel arrival time, so handling
    /// them a tick later changes no latency, unless the engine answers them
    /// with a request whose round trip the metric also spans:
    /// - a 401/407 to a REGISTER: the authenticated REGISTER is part of RRD
    ///   (RFC 6076 §4.1);
    /// - a 401/407 to an INVITE (once this endpoint has seen INVITEs
    ///   challenged): the re-INVITE is part of SRD (§4.2);
    /// - any request to an answering UAS (the built-in target, or mixed
    ///   mode's own UAS): its 180/200 are the latency the caller measures.
    ///
    /// Not prompt: the ACK for a 2xx (no metric spans it; the UAS waits T1
    /// before retransmitting), BYE answers and refresh answers (they end a
    /// measurement that their arrival stamp already closed), and the BYE
    /// after hold (a timer, fired at its tick).
    pub fn prompt_replies(&self) -> bool {
        match &self.role {
            Role::Server(_) => true,
            Role::Client(_) if self.scen.is_some() => {
                self.scen.as_deref().is_some_and(|s| s.prompt())
            }
            Role::Client(c) => c.scenario == super::Scenario::Mixed || self.prompt_txns > 0,
        }
    }

    /// Attempts started by `start_attempt` and not finished yet (plus
    /// mixed-mode registrations still unregistering after `shutdown`).
    pub fn in_flight(&self) -> usize {
        let mut n = self.live_attempts + self.pending_calls.len() + self.scen_live();
        if self.shutting_down {
            n += self
                .mixed_users
                .iter()
                .filter(|u| **u != MixedUser::Unregistered)
                .count();
        }
        n
    }

    /// Cumulative counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Sizes of the live state (leak checks, memory accounting).
    pub fn state_sizes(&self) -> StateSizes {
        let sess_bytes: usize = self
            .sessions
            .live_indices()
            .filter_map(|i| self.sessions.get(i))
            .map(|s| s.buf.capacity() + s.challenge.capacity())
            .sum();
        let txn_bytes: usize = self
            .txns
            .live_indices()
            .filter_map(|i| self.txns.get(i))
            .map(|t| t.msg.capacity())
            .sum();
        let map_entry = 8 + 4 + 4 + 1;
        StateSizes {
            sessions: self.sessions.len(),
            transactions: self.txns.len(),
            absorbers: self.absorbers.records.len(),
            bindings: self.aors.len(),
            timers: self.wheel.len(),
            queued: self.outbox.len(),
            approx_bytes: self.sessions.capacity() * (std::mem::size_of::<Sess>() + 8)
                + self.txns.capacity() * (std::mem::size_of::<Txn>() + 8)
                + sess_bytes
                + txn_bytes
                + (self.dialogs.capacity()
                    + self.client_txns.capacity()
                    + self.server_txns.capacity())
                    * map_entry
                + self.absorbers.records.capacity() * (8 + std::mem::size_of::<Absorbed>() + 1)
                + self.absorbers.responses.capacity()
                + self
                    .absorbers
                    .expiry
                    .iter()
                    .map(|f| f.capacity() * 32)
                    .sum::<usize>()
                + self.source_txns.capacity() * (8 + 4 + 1)
                + self.wheel.heap_bytes()
                + self.nc_guard.heap_bytes()
                + self.peer_calls.capacity() * (8 + 4 + 1),
        }
    }

    // ---- time and identifiers -------------------------------------------

    #[inline]
    pub(super) fn to_ns(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }
    #[inline]
    pub(super) fn to_instant(&self, ns: u64) -> Instant {
        self.epoch + Duration::from_nanos(ns)
    }
    /// A fresh 64-bit identifier (Call-ID, tag, branch, cnonce): the
    /// splitmix of a per-endpoint seed and a counter, unique per endpoint.
    #[inline]
    pub(super) fn new_id(&mut self) -> u64 {
        self.id_counter += 1;
        let mut r = Rng::new(self.id_seed ^ self.id_counter.wrapping_mul(0xd134_2543_de82_ef95));
        r.next_u64()
    }
    /// Fingerprint of a request as received from `from`: a retransmission
    /// (§17.2.3) is the same bytes from the same peer, so it matches a
    /// stored one only if both are equal.
    pub(super) fn request_fingerprint(&self, from: Flow, msg: &sip::Message<'_>) -> u64 {
        mix(self.hash(msg.as_bytes()), self.peer_key(from))
    }
    /// Key of a source IP address (any port), for per-source caps.
    pub(super) fn source_key(&self, flow: Flow) -> u64 {
        let ip = match flow.peer.ip() {
            IpAddr::V4(v) => u128::from(u32::from(v)),
            IpAddr::V6(v) => u128::from(v),
        };
        self.hash(&ip.to_le_bytes())
    }
    /// Key of a peer (source address and port) for per-peer accounting.
    pub(super) fn peer_key(&self, flow: Flow) -> u64 {
        let a = flow.peer;
        let ip = match a.ip() {
            IpAddr::V4(v) => u128::from(u32::from(v)),
            IpAddr::V6(v) => u128::from(v),
        };
        mix(self.hash(&ip.to_le_bytes()), u64::from(a.port()) | 1 << 32)
    }
    #[inline]
    pub(super) fn hash(&self, b: &[u8]) -> u64 {
        hash_bytes(self.hash_seed, b)
    }
    /// Dialog key: Call-ID and local tag (RFC 3261 §12: the dialog ID is
    /// Call-ID + local tag + remote tag; the remote tag adds nothing when
    /// our tags are unique, and leaving it out lets early state match).
    #[inline]
    pub(super) fn dialog_key(&self, call_id: &[u8], local_tag: &[u8]) -> u64 {
        mix(self.hash(call_id), self.hash(local_tag))
    }
    /// Client transaction key (§17.1.3): branch + CSeq method.
    #[inline]
    pub(super) fn client_txn_key(&self, branch: &[u8], m: MethodKind) -> u64 {
        mix(self.hash(branch), m as u64)
    }
    /// Server transaction key (§17.2.3): branch + sent-by + method, with
    /// ACK folded into INVITE.
    pub(super) fn server_txn_key(&self, via: &sip::Via<'_>, m: MethodKind) -> u64 {
        let class = if m == MethodKind::Ack {
            MethodKind::Invite
        } else {
            m
        };
        let b = self.hash(via.branch.unwrap_or(b""));
        let sb = self.hash(via.host) ^ u64::from(via.port.unwrap_or(5060));
        mix(mix(b, sb), class as u64)
    }

    // ---- buffers and output ---------------------------------------------

    #[inline]
    pub(super) fn take_buf(&mut self) -> Vec<u8> {
        self.buf_pool
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(1024))
    }
    #[inline]
    pub(super) fn put_buf(&mut self, mut b: Vec<u8>) {
        if self.buf_pool.len() < 4096 {
            b.clear();
            self.buf_pool.push(b);
        }
    }
    /// Queue a datagram built in a pooled buffer.
    #[inline]
    pub(super) fn send(&mut self, dest: Flow, b: Vec<u8>) {
        self.counters.sent += 1;
        self.outbox.push_back((dest, b));
    }
    /// Queue a copy of a transaction's stored message.
    pub(super) fn send_txn_copy(&mut self, ti: u32, retransmit: bool) {
        let mut b = self.take_buf();
        let dest = match self.txns.get(ti) {
            Some(t) => {
                b.extend_from_slice(&t.msg);
                t.dest
            }
            None => None,
        };
        match dest {
            Some(d) => {
                if retransmit {
                    self.counters.retransmitted += 1;
                }
                self.send(d, b)
            }
            None => self.put_buf(b),
        }
    }

    pub(super) fn emit(&mut self, e: Event) {
        self.events.push_back(e);
    }

    pub(super) fn count_sent_response(&mut self, code: u16) {
        if (200..700).contains(&code)
            && let Some(c) = self.counters.responses_sent.get_mut(code as usize)
        {
            *c += 1;
        }
    }

    /// Every message received: parse, then the request or response path.
    fn on_message(&mut self, now: Instant, from: Flow, data: &[u8]) {
        if self.scen.is_some() {
            // A scenario owns its calls completely: no transaction layer,
            // registrar or proxy under it (SIPp has none either).
            self.scen_handle(now, from, data);
            return;
        }
        let msg = match sip::parse(data) {
            Ok(m) => m,
            Err(e) => {
                self.counters.unparseable += 1;
                self.on_unparseable(now, from, data, e);
                return;
            }
        };
        if msg.is_request() {
            self.on_request(now, from, &msg);
        } else {
            self.on_response(now, from, &msg);
        }
    }
}

impl SansIo for Endpoint {
    type Event = Event;

    fn handle(&mut self, now: Instant, from: Flow, data: &[u8]) {
        self.counters.received += 1;
        self.on_message(now, from, data);
    }

    fn handle_timeout(&mut self, now: Instant) {
        // Fired timers may arm new ones already due (after a long pause);
        // a few rounds catch up without looping forever.
        for _ in 0..8 {
            let mut fired = std::mem::take(&mut self.fired_timers);
            fired.clear();
            self.wheel.advance(now, &mut fired);
            if fired.is_empty() {
                self.fired_timers = fired;
                break;
            }
            for &v in &fired {
                self.dispatch_timer(now, v);
            }
            self.fired_timers = fired;
        }
        self.absorb_sweep(now);
    }

    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Flow> {
        let (dest, mut b) = self.outbox.pop_front()?;
        std::mem::swap(buf, &mut b);
        self.put_buf(b);
        Some(dest)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.wheel.next_deadline();
        for fifo in &self.absorbers.expiry {
            if let Some(&(exp, ..)) = fifo.front() {
                let a = self.to_instant(exp);
                t = Some(t.map_or(a, |x| x.min(a)));
            }
        }
        t
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}
