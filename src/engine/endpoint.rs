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
use super::state::{Absorbers, Aor, IndexByKey, Sess, StateSizes, Txn};
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
    /// Per local user: in a registration attempt now.
    pub(super) user_registering: Vec<bool>,
    /// Per local user: registration state of mixed mode.
    pub(super) mixed_users: Vec<MixedUser>,
    /// Mixed-mode calls waiting for their users' registrations.
    pub(super) pending_calls: Vec<Pending>,
    pub(super) rtt_events: bool,
    /// Highest digest `nc` seen per nonce (server only; replay guard).
    pub(super) nc_guard: NcGuard,
    /// Live UAS calls per peer (hash of source address), server only.
    pub(super) peer_calls: HashMap<u64, u32, IdHash>,
    /// Connection keys handed out (pool slots and per-attempt keys).
    pub(super) conn_keys: u32,
    /// Per-attempt connections whose attempt ended, for the transport to
    /// close ([`Endpoint::poll_released`]).
    pub(super) released: VecDeque<Flow>,
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
            absorbers: Absorbers::default(),
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
            user_registering: Vec::new(),
            mixed_users: Vec::new(),
            pending_calls: Vec::new(),
            rtt_events: false,
            nc_guard: NcGuard::new(NC_GUARD_CAP),
            peer_calls: HashMap::default(),
            conn_keys: 0,
            released: VecDeque::new(),
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
        let wire = Wire::new(cfg.local, domain, &cfg.sdp);
        // Per-user state (`user_registering`, `mixed_users`) is sized by the
        // first attempt of the scenario that needs it (a mix may start any).
        Self::new(Role::Client(cfg), wire, answer, now)
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
        let mut secret = [0u8; 32];
        let mut r = Rng::new(cfg.nonce_seed);
        for c in secret.chunks_mut(8) {
            c.copy_from_slice(&r.next_u64().to_le_bytes());
        }
        let mint = NonceMint::with_stream(secret, cfg.seed as u8);
        let mut wire = Wire::new(cfg.local, domain, &cfg.sdp);
        wire.set_listen(&cfg.listen);
        let mut e = Self::new(Role::Server(cfg), wire, answer, now);
        e.nonce_mint = Some(mint);
        e
    }

    /// Also emit [`Event::TransactionRtt`] for client transactions answered
    /// without retransmission (off by default: one event per transaction).
    pub fn set_rtt_events(&mut self, on: bool) {
        self.rtt_events = on;
    }

    /// Attempts started by `start_attempt` and not finished yet (plus
    /// mixed-mode registrations still unregistering after `shutdown`).
    pub fn in_flight(&self) -> usize {
        let mut n = self.live_attempts + self.pending_calls.len();
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
            absorbers: self.absorbers.codes.len(),
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
                + self.absorbers.codes.capacity() * (8 + 2 + 1)
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
            if let Some(&(exp, _)) = fifo.front() {
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
