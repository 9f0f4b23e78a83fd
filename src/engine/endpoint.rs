//! The endpoint: one per worker, holding every transaction, dialog and
//! registration binding of that worker, plus the timing wheel and the
//! outgoing queue. This file has the struct, its constructors, identifiers
//! and map keys, the buffer pool and output queue, and the `SansIo` entry
//! points; `state` has the state types, `timers` the timer machinery,
//! `txn` the transactions of RFC 3261 §17, `uac` and `uas` the flows.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::SansIo;
use super::config::{ClientConfig, ServerConfig, Timers};
use super::event::{Counters, Event, MethodKind};
use super::state::{Aor, Map, Sess, StateSizes, Txn};
use super::uac::{MixedUser, Pending};
use super::util::{IdHash, NcGuard, Rng, Slab, hash_bytes, mix};
use super::wheel::Wheel;
use super::wire::{Consts, default_sdp, hostport};
use crate::auth::NonceMint;
use crate::flow::Flow;
use crate::sip;

/// Nonces whose `nc` a server endpoint remembers (about 30 B each): at the
/// cap the oldest are forgotten and their clients re-challenged.
const NC_GUARD_CAP: usize = 1 << 20;

/// UAS behaviour shared by `serve` and the answering side of mixed mode.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    /// Delay before the 200 (100 and 180 go at once), drawn per call.
    pub ring: crate::dist::Delay,
    pub busy: f64,
    pub no_answer: f64,
    pub no_answer_timeout: Duration,
    pub max_call: Duration,
    pub auth_register: bool,
    pub auth_invite: bool,
    pub registrar: bool,
}

/// One worker's SIP engine; see the module documentation of [`super`].
#[derive(Debug)]
pub struct Endpoint {
    pub(super) cc: Option<ClientConfig>,
    pub(super) sc: Option<ServerConfig>,
    pub(super) ans: Answer,
    pub(super) t: Timers,
    pub(super) epoch: Instant,
    pub(super) rng: Rng,
    pub(super) id_seed: u64,
    pub(super) id_ctr: u64,
    pub(super) hseed: u64,
    pub(super) wheel: Wheel,
    pub(super) fired: Vec<u64>,
    pub(super) txns: Slab<Txn>,
    pub(super) ctx: Map,
    pub(super) stx: Map,
    pub(super) sess: Slab<Sess>,
    pub(super) dlg: Map,
    pub(super) absorb: HashMap<u64, u16, IdHash>,
    pub(super) fifo_j: VecDeque<(u64, u64)>,
    pub(super) fifo_k: VecDeque<(u64, u64)>,
    pub(super) fifo_d: VecDeque<(u64, u64)>,
    pub(super) aors: Slab<Aor>,
    pub(super) aor_map: Map,
    pub(super) mint: Option<NonceMint>,
    pub(super) txq: VecDeque<(Flow, Vec<u8>)>,
    pub(super) pool: Vec<Vec<u8>>,
    pub(super) events: VecDeque<Event>,
    pub(super) counters: Counters,
    pub(super) k: Consts,
    pub(super) s1: Vec<u8>,
    pub(super) s2: Vec<u8>,
    pub(super) s3: Vec<u8>,
    pub(super) attempts: usize,
    pub(super) shutting: bool,
    pub(super) next_user: usize,
    pub(super) reg_busy: Vec<bool>,
    pub(super) mixed: Vec<MixedUser>,
    pub(super) pending: Vec<Pending>,
    pub(super) rtt_events: bool,
    /// Highest digest `nc` seen per nonce (server only; replay guard).
    pub(super) nc_guard: NcGuard,
    /// Live UAS calls per peer (hash of source address), server only.
    pub(super) peer_calls: HashMap<u64, u32, IdHash>,
}

impl Endpoint {
    fn base(
        local: SocketAddr,
        t: Timers,
        seed: u64,
        ans: Answer,
        now: Instant,
        domain: Vec<u8>,
        sdp: &[u8],
    ) -> Self {
        let mut rng = Rng::new(seed ^ 0x5151_7a7a);
        let local_hp = hostport(&local);
        let mut via_pre = b"SIP/2.0/UDP ".to_vec();
        via_pre.extend_from_slice(&local_hp);
        via_pre.extend_from_slice(b";rport;branch=z9hG4bK");
        let mut contact_self = b"<sip:".to_vec();
        contact_self.extend_from_slice(&local_hp);
        contact_self.push(b'>');
        let mut domain_uri = b"sip:".to_vec();
        domain_uri.extend_from_slice(&domain);
        let sdp_offer = if sdp.is_empty() {
            default_sdp(&local, true)
        } else {
            sdp.to_vec()
        };
        let sdp_answer = if sdp.is_empty() {
            default_sdp(&local, false)
        } else {
            sdp.to_vec()
        };
        // Mix in our address too, so workers given the same seed still
        // generate distinct Call-IDs, tags and branches.
        let id_seed = rng.next_u64() ^ hash_bytes(0x1d5e_ed00, &local_hp);
        let hseed = rng.next_u64();
        Endpoint {
            cc: None,
            sc: None,
            ans,
            t,
            epoch: now,
            rng,
            id_seed,
            id_ctr: 0,
            hseed,
            wheel: Wheel::new(now),
            fired: Vec::new(),
            txns: Slab::default(),
            ctx: Map::default(),
            stx: Map::default(),
            sess: Slab::default(),
            dlg: Map::default(),
            absorb: HashMap::default(),
            fifo_j: VecDeque::new(),
            fifo_k: VecDeque::new(),
            fifo_d: VecDeque::new(),
            aors: Slab::default(),
            aor_map: Map::default(),
            mint: None,
            txq: VecDeque::new(),
            pool: Vec::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
            k: Consts {
                via_pre,
                local: local_hp,
                domain,
                contact_self,
                sdp_offer,
                sdp_answer,
                domain_uri,
                local_host: match local {
                    SocketAddr::V4(v) => v.ip().to_string().into_bytes(),
                    SocketAddr::V6(v) => format!("[{}]", v.ip()).into_bytes(),
                },
                local_port: local.port(),
            },
            s1: Vec::new(),
            s2: Vec::new(),
            s3: Vec::new(),
            attempts: 0,
            shutting: false,
            next_user: 0,
            reg_busy: Vec::new(),
            mixed: Vec::new(),
            pending: Vec::new(),
            rtt_events: false,
            nc_guard: NcGuard::new(NC_GUARD_CAP),
            peer_calls: HashMap::default(),
        }
    }

    /// A load-generating endpoint (UAC; in mixed mode also the answering UAS).
    pub fn client(cfg: ClientConfig, now: Instant) -> Self {
        let domain = if cfg.domain.is_empty() {
            hostport(&cfg.target)
        } else {
            cfg.domain.clone().into_bytes()
        };
        let ans = Answer {
            ring: cfg.answer_ring,
            busy: 0.0,
            no_answer: 0.0,
            no_answer_timeout: cfg.ring_timeout * 2,
            max_call: Duration::from_secs(24 * 3600),
            auth_register: false,
            auth_invite: false,
            registrar: false,
        };
        let mut e = Self::base(cfg.local, cfg.timers, cfg.seed, ans, now, domain, &cfg.sdp);
        // Per-user state (`reg_busy`, `mixed`) is sized by the first attempt
        // of the scenario that needs it (a mix may start any of them).
        e.cc = Some(cfg);
        e
    }

    /// The built-in target: registrar with digest authentication and answering UAS.
    pub fn server(cfg: ServerConfig, now: Instant) -> Self {
        let ans = Answer {
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
        let mut e = Self::base(cfg.local, cfg.timers, cfg.seed, ans, now, domain, &cfg.sdp);
        let mut secret = [0u8; 32];
        let mut r = Rng::new(cfg.nonce_seed);
        for c in secret.chunks_mut(8) {
            c.copy_from_slice(&r.next_u64().to_le_bytes());
        }
        e.mint = Some(NonceMint::with_stream(secret, cfg.seed as u8));
        e.sc = Some(cfg);
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
        let mut n = self.attempts + self.pending.len();
        if self.shutting {
            n += self
                .mixed
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
            .sess
            .live_indices()
            .filter_map(|i| self.sess.get(i))
            .map(|s| s.buf.capacity() + s.chal.capacity())
            .sum();
        let txn_bytes: usize = self
            .txns
            .live_indices()
            .filter_map(|i| self.txns.get(i))
            .map(|t| t.msg.capacity())
            .sum();
        let map_entry = 8 + 4 + 4 + 1;
        StateSizes {
            sessions: self.sess.len(),
            transactions: self.txns.len(),
            absorbers: self.absorb.len(),
            bindings: self.aors.len(),
            timers: self.wheel.len(),
            queued: self.txq.len(),
            approx_bytes: self.sess.capacity() * (std::mem::size_of::<Sess>() + 8)
                + self.txns.capacity() * (std::mem::size_of::<Txn>() + 8)
                + sess_bytes
                + txn_bytes
                + (self.dlg.capacity() + self.ctx.capacity() + self.stx.capacity()) * map_entry
                + self.absorb.capacity() * (8 + 2 + 1)
                + self.wheel.heap_bytes()
                + self.nc_guard.heap_bytes()
                + self.peer_calls.capacity() * (8 + 4 + 1),
        }
    }

    // ---- time and identifiers -------------------------------------------

    #[inline]
    pub(super) fn ns(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }
    #[inline]
    pub(super) fn at(&self, ns: u64) -> Instant {
        self.epoch + Duration::from_nanos(ns)
    }
    /// A fresh 64-bit identifier (Call-ID, tag, branch, cnonce): the
    /// splitmix of a per-endpoint seed and a counter, unique per endpoint.
    #[inline]
    pub(super) fn new_id(&mut self) -> u64 {
        self.id_ctr += 1;
        let mut r = Rng::new(self.id_seed ^ self.id_ctr.wrapping_mul(0xd134_2543_de82_ef95));
        r.next_u64()
    }
    /// Key of a peer (source address and port) for per-peer accounting.
    pub(super) fn peer_key(&self, flow: Flow) -> u64 {
        let a = flow.peer;
        let ip = match a.ip() {
            IpAddr::V4(v) => u128::from(u32::from(v)),
            IpAddr::V6(v) => u128::from(v),
        };
        mix(self.h(&ip.to_le_bytes()), u64::from(a.port()) | 1 << 32)
    }
    #[inline]
    pub(super) fn h(&self, b: &[u8]) -> u64 {
        hash_bytes(self.hseed, b)
    }
    /// Dialog key: Call-ID and local tag (RFC 3261 §12: the dialog ID is
    /// Call-ID + local tag + remote tag; the remote tag adds nothing when
    /// our tags are unique, and leaving it out lets early state match).
    #[inline]
    pub(super) fn dkey(&self, call_id: &[u8], local_tag: &[u8]) -> u64 {
        mix(self.h(call_id), self.h(local_tag))
    }
    /// Client transaction key (§17.1.3): branch + CSeq method.
    #[inline]
    pub(super) fn ckey(&self, branch: &[u8], m: MethodKind) -> u64 {
        mix(self.h(branch), m as u64)
    }
    /// Server transaction key (§17.2.3): branch + sent-by + method, with
    /// ACK folded into INVITE.
    pub(super) fn skey(&self, via: &sip::Via<'_>, m: MethodKind) -> u64 {
        let class = if m == MethodKind::Ack {
            MethodKind::Invite
        } else {
            m
        };
        let b = self.h(via.branch.unwrap_or(b""));
        let sb = self.h(via.host) ^ u64::from(via.port.unwrap_or(5060));
        mix(mix(b, sb), class as u64)
    }

    // ---- buffers and output ---------------------------------------------

    #[inline]
    pub(super) fn take_buf(&mut self) -> Vec<u8> {
        self.pool.pop().unwrap_or_else(|| Vec::with_capacity(1024))
    }
    #[inline]
    pub(super) fn put_buf(&mut self, mut b: Vec<u8>) {
        if self.pool.len() < 4096 {
            b.clear();
            self.pool.push(b);
        }
    }
    /// Queue a datagram built in a pooled buffer.
    #[inline]
    pub(super) fn send(&mut self, dest: Flow, b: Vec<u8>) {
        self.counters.sent += 1;
        self.txq.push_back((dest, b));
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

    // ---- timers ---------------------------------------------------------
}

impl Endpoint {
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
            let mut fired = std::mem::take(&mut self.fired);
            fired.clear();
            self.wheel.advance(now, &mut fired);
            if fired.is_empty() {
                self.fired = fired;
                break;
            }
            for &v in &fired {
                self.dispatch_timer(now, v);
            }
            self.fired = fired;
        }
        self.absorb_sweep(now);
    }

    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Flow> {
        let (dest, mut b) = self.txq.pop_front()?;
        std::mem::swap(buf, &mut b);
        self.put_buf(b);
        Some(dest)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.wheel.next_deadline();
        for fifo in [&self.fifo_j, &self.fifo_k, &self.fifo_d] {
            if let Some(&(exp, _)) = fifo.front() {
                let a = self.at(exp);
                t = Some(t.map_or(a, |x| x.min(a)));
            }
        }
        t
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}
