//! The endpoint: one per worker, holding every transaction, dialog and
//! registration binding of that worker, plus the timing wheel and the
//! outgoing queue. This file has the shared machinery (state, timers,
//! transactions of RFC 3261 §17, the `SansIo` entry points); `uac.rs` and
//! `uas.rs` add the flows.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use crate::flow::Flow;
use std::time::{Duration, Instant};

use super::SansIo;
use super::config::{ClientConfig, ServerConfig, Timers};
use super::event::{Counters, Event, MethodKind, Outcome};
use super::util::{IdHash, NcGuard, Rng, Slab, hash_bytes, hex16, mix};

/// Nonces whose `nc` a server endpoint remembers (about 30 B each): at the
/// cap the oldest are forgotten and their clients re-challenged.
const NC_GUARD_CAP: usize = 1 << 20;
use super::wheel::{TimerId, Wheel};
use crate::auth::NonceMint;
use crate::sip::{self, Message, Method};

pub(super) type Map = HashMap<u64, u32, IdHash>;

pub(super) const NONE: u32 = u32::MAX;

/// Transaction kinds of RFC 3261 §17. The server non-INVITE transaction's
/// Completed state (Timer J) is kept as a compact absorber record instead of
/// a slab entry, see [`Endpoint::absorb_add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(clippy::enum_variant_names)]
pub(super) enum TxKind {
    #[default]
    ClientInvite,
    ClientNonInvite,
    ServerInvite,
}

/// Transaction states (§17.1.1, §17.1.2, §17.2.1; Accepted from RFC 6026).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum TxState {
    #[default]
    Calling,
    Trying,
    Proceeding,
    Completed,
    Accepted,
}

/// One transaction. `msg` keeps the last message sent (the request for a
/// client transaction; the latest response for a server INVITE transaction)
/// so retransmission is a copy, never a rebuild. The Completed state of a
/// client INVITE (Timer D) and the Confirmed state of a server INVITE
/// (Timer I) are absorber records, not slab entries.
#[derive(Debug, Default)]
pub(super) struct Txn {
    pub kind: TxKind,
    pub state: TxState,
    pub method: Option<MethodKind>,
    pub key: u64,
    pub dest: Option<Flow>,
    pub msg: Vec<u8>,
    pub interval_ms: u64,
    pub sent_ns: u64,
    pub retransmitted: bool,
    pub owner: u32,
    pub owner_gen: u32,
    /// Retransmission timer (A, E, G, 2xx).
    pub tm_rtx: TimerId,
    /// Timeout timer (B, F, H, L).
    pub tm_to: TimerId,
}

/// What a session slot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Kind {
    #[default]
    Free,
    UacCall,
    UacReg,
    UacOptions,
    UasCall,
}

/// Session (dialog / registration / ping) states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum St {
    #[default]
    Init,
    // UAC call
    Inviting,
    Confirmed,
    Byeing,
    // UAC registration
    Registering,
    Registered,
    Unregistering,
    // UAS call
    Ringing,
    NoAnswer,
    Answered,
    Established,
    // options
    Pinging,
}

/// A (start, len) range in a session's `buf`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Span(pub u16, pub u16);

/// One session: a UAC call, registration or ping, or a UAS call. Strings a
/// dialog must remember (remote tag, target, route set, request-URI, the
/// INVITE while ringing) live in `buf`, whose capacity survives slot reuse.
#[derive(Debug, Default)]
pub(super) struct Sess {
    pub kind: Kind,
    pub st: St,
    pub key: u64,
    pub call_id: u64,
    pub tag: u64,
    pub user: u32,
    pub peer: u32,
    pub cseq: u32,
    pub inv_cseq: u32,
    pub inv_branch: u64,
    pub txn: u32,
    pub txn_gen: u32,
    pub cancel_txn: u32,
    pub flags: u16,
    pub auth_tries: u8,
    pub redirects: u8,
    pub retries: u8,
    pub nc: u32,
    pub expires: u32,
    pub mixed: bool,
    pub intended_ns: u64,
    pub started_ns: u64,
    pub answered_ns: u64,
    pub bye_ns: u64,
    pub phase_ns: u64,
    pub hold: Duration,
    pub dest: Option<Flow>,
    pub buf: Vec<u8>,
    pub ruri: Span,
    pub to_uri: Span,
    pub rtag: Span,
    pub target: Span,
    pub routes: Span,
    pub invite: Span,
    pub chal: Vec<u8>,
    pub chal_proxy: bool,
    /// [guard / ring / hold, refresh / cancel guard] timers.
    pub tm: [TimerId; 2],
}

pub(super) const F_CANCEL_WANTED: u16 = 1;
pub(super) const F_CANCEL_SENT: u16 = 2;
pub(super) const F_PROV: u16 = 4;
pub(super) const F_SETUP: u16 = 8;
pub(super) const F_TIMED_OUT: u16 = 16;
pub(super) const F_REPORTED: u16 = 32;
pub(super) const F_ANSWERED: u16 = 64;
pub(super) const F_LAST_AUTH: u16 = 128;

impl Sess {
    pub fn get(&self, s: Span) -> &[u8] {
        self.buf
            .get(s.0 as usize..s.0 as usize + s.1 as usize)
            .unwrap_or(&[])
    }
    /// Append `v` to `buf` and return its span (empty span if it would not fit u16).
    pub fn put(&mut self, v: &[u8]) -> Span {
        let start = self.buf.len();
        if start + v.len() > u16::MAX as usize {
            return Span(0, 0);
        }
        self.buf.extend_from_slice(v);
        Span(start as u16, v.len() as u16)
    }
    pub fn reset(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        let mut chal = std::mem::take(&mut self.chal);
        buf.clear();
        chal.clear();
        *self = Sess {
            buf,
            chal,
            txn: NONE,
            cancel_txn: NONE,
            ..Sess::default()
        };
    }
}

/// A registrar binding set for one address-of-record.
#[derive(Debug, Default)]
pub(super) struct Aor {
    pub key: u64,
    pub buf: Vec<u8>,
    /// (start, len, expiry ns since epoch) of each Contact URI in `buf`.
    pub contacts: Vec<(u16, u16, u64)>,
    /// Expiry timer of the soonest binding.
    pub tm: TimerId,
}

/// Timer kinds packed into wheel payloads.
pub(super) mod tk {
    pub const TX_RTX: u8 = 1;
    pub const TX_TIMEOUT: u8 = 2;
    pub const S_HOLD: u8 = 4;
    pub const S_REFRESH: u8 = 5;
    pub const S_RING: u8 = 6;
    pub const S_GUARD: u8 = 7;
    pub const S_CANCEL_GUARD: u8 = 8;
    pub const AOR_EXPIRE: u8 = 9;
}

#[inline]
pub(super) fn pack(kind: u8, idx: u32, generation: u32) -> u64 {
    (u64::from(kind) << 56) | (u64::from(generation & 0x00ff_ffff) << 32) | u64::from(idx)
}

#[inline]
fn unpack(v: u64) -> (u8, u32, u32) {
    ((v >> 56) as u8, (v >> 32) as u32 & 0x00ff_ffff, v as u32)
}

/// Lifetime of an absorber record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Life {
    /// Timer J, 64·T1: server non-INVITE Completed.
    J,
    /// Timer I, T4: server INVITE Confirmed (absorbs retransmitted ACKs).
    K,
    /// Timer D, max(32 s, 64·T1): client INVITE Completed (re-ACK).
    D,
}

/// Absorber code marking a client INVITE that got a non-2xx: a
/// retransmission of that response is ACKed again.
pub(super) const REACK: u16 = 0x8000;

/// Per-endpoint constant header fragments, built once.
#[derive(Debug, Default)]
pub(super) struct Consts {
    /// `SIP/2.0/UDP host:port;branch=z9hG4bK`
    pub via_pre: Vec<u8>,
    /// `;rport`
    pub local: Vec<u8>,
    pub domain: Vec<u8>,
    /// `<sip:host:port>` (UAS Contact)
    pub contact_self: Vec<u8>,
    pub sdp_offer: Vec<u8>,
    pub sdp_answer: Vec<u8>,
    pub domain_uri: Vec<u8>,
    /// Our host as written in Via (IPv6 in brackets) and port.
    pub local_host: Vec<u8>,
    pub local_port: u16,
}

/// Built-in SDP bodies: one PCMU audio stream (RFC 4566, RFC 3264).
pub(super) fn default_sdp(local: &SocketAddr, offer: bool) -> Vec<u8> {
    let ip = local.ip();
    let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let id = if offer { 1001 } else { 2002 };
    let port = if offer { 40000 } else { 50000 };
    format!(
        "v=0\r\no=sipstorm {id} {id} IN {fam} {ip}\r\ns=-\r\nc=IN {fam} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )
    .into_bytes()
}

pub(super) fn hostport(a: &SocketAddr) -> Vec<u8> {
    match a {
        SocketAddr::V4(v) => format!("{}:{}", v.ip(), v.port()).into_bytes(),
        SocketAddr::V6(v) => format!("[{}]:{}", v.ip(), v.port()).into_bytes(),
    }
}

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

/// Per-user state of mixed mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum MixedUser {
    #[default]
    Unregistered,
    Registering,
    Registered,
}

/// A mixed-mode call waiting for its users' registrations.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pending {
    pub intended: Instant,
    pub hold: Duration,
    pub caller: u32,
    pub callee: u32,
}

/// Sizes of the live state, for leak checks and memory accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateSizes {
    /// Live sessions (calls, registrations, pings; both sides).
    pub sessions: usize,
    /// Live transactions.
    pub transactions: usize,
    /// Absorber records (server non-INVITE Completed, client Timer K).
    pub absorbers: usize,
    /// Registrar address-of-record entries.
    pub bindings: usize,
    /// Wheel entries (including lazily cancelled ones).
    pub timers: usize,
    /// Datagrams queued for transmit.
    pub queued: usize,
    /// Approximate heap bytes held by the slabs, maps and buffers.
    pub approx_bytes: usize,
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

    #[inline]
    pub(super) fn arm(&mut self, at: Instant, kind: u8, idx: u32, generation: u32) -> TimerId {
        self.wheel.insert(at, pack(kind, idx, generation))
    }
    /// (Re)arm a transaction timer; the previous one of the same slot
    /// (retransmission, or timeout/linger) is cancelled.
    pub(super) fn arm_txn(&mut self, now: Instant, after: Duration, kind: u8, ti: u32) {
        let g = self.txns.generation(ti);
        let old = match self.txns.get(ti) {
            Some(t) if kind == tk::TX_RTX => t.tm_rtx,
            Some(t) => t.tm_to,
            None => return,
        };
        self.wheel.cancel(old);
        let id = self.arm(later(now, after), kind, ti, g);
        if let Some(t) = self.txns.get_mut(ti) {
            if kind == tk::TX_RTX {
                t.tm_rtx = id;
            } else {
                t.tm_to = id;
            }
        }
    }
    /// (Re)arm a session timer: slot 1 for refresh and the CANCEL guard,
    /// slot 0 for everything else; the slot's previous timer is cancelled.
    pub(super) fn arm_sess(&mut self, at: Instant, kind: u8, si: u32) {
        let g = self.sess.generation(si);
        let slot = usize::from(matches!(kind, tk::S_REFRESH | tk::S_CANCEL_GUARD));
        let Some(old) = self.sess.get(si).map(|s| s.tm[slot]) else {
            return;
        };
        self.wheel.cancel(old);
        let id = self.arm(at, kind, si, g);
        if let Some(s) = self.sess.get_mut(si) {
            s.tm[slot] = id;
        }
    }

    fn dispatch_timer(&mut self, now: Instant, v: u64) {
        let (kind, g, idx) = unpack(v);
        match kind {
            tk::TX_RTX | tk::TX_TIMEOUT => {
                if self.txns.get(idx).is_none() || self.txns.generation(idx) & 0x00ff_ffff != g {
                    return;
                }
                if kind == tk::TX_RTX {
                    self.txn_retransmit(now, idx);
                } else {
                    self.txn_timeout(now, idx);
                }
            }
            tk::AOR_EXPIRE => {
                if self.aors.get(idx).is_some() && self.aors.generation(idx) & 0x00ff_ffff == g {
                    self.aor_expire(now, idx);
                }
            }
            _ => {
                if self.sess.get(idx).is_none() || self.sess.generation(idx) & 0x00ff_ffff != g {
                    return;
                }
                self.sess_timer(now, kind, idx);
            }
        }
    }

    // ---- transactions ---------------------------------------------------

    /// Start a client transaction with the request in `msg` (consumed):
    /// stores a copy, sends it, arms Timer A/E at T1 and B/F at 64·T1.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn client_txn(
        &mut self,
        now: Instant,
        kind: TxKind,
        method: MethodKind,
        key: u64,
        dest: Flow,
        owner: u32,
        msg: Vec<u8>,
    ) -> (u32, u32) {
        let owner_gen = self.sess.generation(owner);
        let sent_ns = self.ns(now);
        let (ti, g, t) = self.txns.insert();
        t.kind = kind;
        t.state = if kind == TxKind::ClientInvite {
            TxState::Calling
        } else {
            TxState::Trying
        };
        t.method = Some(method);
        t.key = key;
        t.dest = Some(dest);
        t.msg.clear();
        t.msg.extend_from_slice(&msg);
        t.interval_ms = self.t.t1.as_millis() as u64;
        t.sent_ns = sent_ns;
        t.retransmitted = false;
        t.owner = owner;
        t.owner_gen = owner_gen;
        t.tm_rtx = TimerId::NONE;
        t.tm_to = TimerId::NONE;
        self.ctx.insert(key, ti);
        self.send(dest, msg);
        let t1 = self.t.t1;
        let t64 = self.t.t64();
        self.arm_txn(now, t1, tk::TX_RTX, ti);
        self.arm_txn(now, t64, tk::TX_TIMEOUT, ti);
        (ti, g)
    }

    /// Free a transaction and its map entry.
    pub(super) fn txn_free(&mut self, ti: u32) {
        if let Some(t) = self.txns.get(ti) {
            let key = t.key;
            let map = if t.kind == TxKind::ServerInvite {
                &mut self.stx
            } else {
                &mut self.ctx
            };
            if map.get(&key) == Some(&ti) {
                map.remove(&key);
            }
            let (a, b) = (t.tm_rtx, t.tm_to);
            self.wheel.cancel(a);
            self.wheel.cancel(b);
            self.txns.remove(ti);
        }
    }

    fn txn_retransmit(&mut self, now: Instant, ti: u32) {
        let t2 = self.t.t2.as_millis() as u64;
        let Some(t) = self.txns.get_mut(ti) else {
            return;
        };
        let next = match (t.kind, t.state) {
            // Timer A: doubles without cap (§17.1.1.2).
            (TxKind::ClientInvite, TxState::Calling) => t.interval_ms * 2,
            // Timer E: doubles up to T2 in Trying, stays T2 in Proceeding (§17.1.2.2).
            (TxKind::ClientNonInvite, TxState::Trying) => (t.interval_ms * 2).min(t2),
            (TxKind::ClientNonInvite, TxState::Proceeding) => t2,
            // Timer G (§17.2.1) and the 2xx retransmission of §13.3.1.4.
            (TxKind::ServerInvite, TxState::Completed | TxState::Accepted) => {
                (t.interval_ms * 2).min(t2)
            }
            _ => return,
        };
        t.interval_ms = next;
        t.retransmitted = true;
        self.send_txn_copy(ti, true);
        self.arm_txn(now, Duration::from_millis(next), tk::TX_RTX, ti);
    }

    /// Terminate client transaction `ti` without a final response and tell
    /// its TU why: Timer B/F ([`Outcome::Timeout`], §17.1.1.2, §17.1.2.2)
    /// or a transport failure ([`Outcome::TransportError`], §17.1.4). The
    /// one teardown for both.
    fn client_txn_fail(&mut self, now: Instant, ti: u32, outcome: Outcome) {
        let Some(t) = self.txns.get(ti) else { return };
        let (owner, owner_gen) = (t.owner, t.owner_gen);
        self.txn_free(ti);
        if self.sess.generation(owner) == owner_gen && self.sess.get(owner).is_some() {
            self.on_txn_failed(now, owner, ti, outcome);
        }
    }

    /// The transport could not deliver to `dest`: an ICMP port, host or
    /// network unreachable came back for a datagram sent there.
    ///
    /// RFC 3261 §18.4: the transport informs its user of a failure in
    /// sending; §17.1.4: the client transaction then informs the TU and
    /// terminates at once (§8.1.3.1 treats it like a 503; for the load
    /// generator it is its own failure reason). Every client transaction
    /// whose next hop is `dest` and that still waits for a final response
    /// ends now with [`Outcome::TransportError`] through the same teardown
    /// as Timer B/F: INVITEs in Calling or Proceeding (nothing listens
    /// where the final response would come from), non-INVITEs in Trying or
    /// Proceeding. Their attempts end with one `*Done` event each and their
    /// state is freed. ICMP errors do not say which datagram bounced beyond
    /// its destination, so every such transaction towards `dest` fails.
    /// Server transactions and attempts not waiting on a transaction (calls
    /// in hold) are left alone. Returns how many transactions ended.
    pub fn transport_error(&mut self, now: Instant, dest: Flow) -> usize {
        let doomed: Vec<(u32, u32)> = self
            .txns
            .live_indices()
            .filter(|&ti| {
                self.txns.get(ti).is_some_and(|t| {
                    t.dest
                        .is_some_and(|d| d.peer == dest.peer && d.transport == dest.transport)
                        && matches!(
                            (t.kind, t.state),
                            (TxKind::ClientInvite, TxState::Calling | TxState::Proceeding)
                                | (
                                    TxKind::ClientNonInvite,
                                    TxState::Trying | TxState::Proceeding
                                )
                        )
                })
            })
            .map(|ti| (ti, self.txns.generation(ti)))
            .collect();
        let mut ended = 0;
        for (ti, g) in doomed {
            // An earlier failure may have freed this one with its session
            // (a CANCEL's failure ends the call and its INVITE).
            if self.txns.generation(ti) == g && self.txns.get(ti).is_some() {
                self.client_txn_fail(now, ti, Outcome::TransportError);
                ended += 1;
            }
        }
        ended
    }

    fn txn_timeout(&mut self, now: Instant, ti: u32) {
        let Some(t) = self.txns.get(ti) else { return };
        let (kind, state, owner, owner_gen) = (t.kind, t.state, t.owner, t.owner_gen);
        match (kind, state) {
            // Timer B: only while Calling; Proceeding waits for the TU.
            (TxKind::ClientInvite, TxState::Calling)
            | (TxKind::ClientNonInvite, TxState::Trying | TxState::Proceeding) => {
                self.counters.timeouts += 1;
                self.client_txn_fail(now, ti, Outcome::Timeout);
            }
            // Timer H (no ACK for a non-2xx) and Timer L (RFC 6026, no ACK for a 2xx).
            (TxKind::ServerInvite, TxState::Completed | TxState::Accepted) => {
                self.counters.ack_timeouts += 1;
                self.txn_free(ti);
                if state == TxState::Accepted
                    && self.sess.generation(owner) == owner_gen
                    && self.sess.get(owner).is_some_and(|s| s.st == St::Answered)
                {
                    self.sess_free(owner);
                }
            }
            _ => {}
        }
    }

    /// Remember a finished non-INVITE transaction for a while (Timer J on
    /// the server: retransmitted requests get the same final response
    /// rebuilt from the retransmission; Timer K on the client: retransmitted
    /// responses are absorbed). One map entry and one FIFO slot, no buffer.
    pub(super) fn absorb_add(&mut self, now: Instant, key: u64, code: u16, life: Life) {
        let (life, fifo) = match life {
            Life::J => (self.t.t64(), &mut self.fifo_j),
            Life::K => (self.t.t4, &mut self.fifo_k),
            Life::D => (self.t.timer_d(), &mut self.fifo_d),
        };
        let exp = later(now, life)
            .saturating_duration_since(self.epoch)
            .as_nanos() as u64;
        fifo.push_back((exp, key));
        self.absorb.insert(key, code);
    }

    fn absorb_sweep(&mut self, now: Instant) {
        let n = self.ns(now);
        for fifo in [&mut self.fifo_j, &mut self.fifo_k, &mut self.fifo_d] {
            while let Some(&(exp, key)) = fifo.front() {
                if exp > n {
                    break;
                }
                fifo.pop_front();
                self.absorb.remove(&key);
            }
        }
    }

    // ---- sessions -------------------------------------------------------

    pub(super) fn sess_new(&mut self, kind: Kind) -> u32 {
        let (si, _, s) = self.sess.insert();
        s.reset();
        s.kind = kind;
        si
    }

    /// Free a session, its dialog map entry and any transaction still
    /// waiting on it without timers of its own (an INVITE in Proceeding).
    pub(super) fn sess_free(&mut self, si: u32) {
        let Some(s) = self.sess.get(si) else { return };
        let (key, txn, txn_gen, tm) = (s.key, s.txn, s.txn_gen, s.tm);
        if s.kind == Kind::UasCall {
            let pk = s.inv_branch;
            if let Some(n) = self.peer_calls.get_mut(&pk) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.peer_calls.remove(&pk);
                }
            }
        }
        for id in tm {
            self.wheel.cancel(id);
        }
        if self.dlg.get(&key) == Some(&si) {
            self.dlg.remove(&key);
        }
        if txn != NONE
            && self.txns.generation(txn) == txn_gen
            && let Some(t) = self.txns.get(txn)
            && matches!(
                t.state,
                TxState::Calling | TxState::Proceeding | TxState::Accepted
            )
        {
            self.txn_free(txn);
        }
        self.sess.remove(si);
    }

    // ---- entry points ---------------------------------------------------

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

    /// A response: match the client transaction (§17.1.3), or a dialog for
    /// a retransmitted 2xx, or an absorber record.
    fn on_response(&mut self, now: Instant, from: Flow, msg: &Message<'_>) {
        if self.sc.is_some() && self.proxy_response(msg) {
            return;
        }
        let (Some(code), Some(via), Some(cseq)) = (msg.status(), msg.top_via(), msg.cseq()) else {
            self.counters.unexpected += 1;
            return;
        };
        let m = method_kind(&cseq.method);
        let key = self.ckey(via.branch.unwrap_or(b""), m);
        let Some(&ti) = self.ctx.get(&key) else {
            if m == MethodKind::Invite && (200..300).contains(&code) {
                self.on_stray_2xx(now, from, msg);
            } else if let Some(&rec) = self.absorb.get(&key) {
                self.counters.duplicates += 1;
                if rec & REACK != 0 && code >= 300 {
                    let ack = self.build_ack_from_response(msg);
                    self.send(from, ack);
                }
            } else if via.host == &self.k.local_host[..]
                && via.port.unwrap_or(5060) == self.k.local_port
                && via.branch.is_some_and(is_our_branch)
            {
                // A retransmission of a response to one of our finished
                // non-INVITE transactions (Timer K absorbs it).
                self.counters.duplicates += 1;
            } else {
                self.counters.unexpected += 1;
            }
            return;
        };
        // A broken or hostile server may echo our branch with another
        // dialog's Call-ID (§8.1.3.3: the response's Call-ID is the
        // request's). Matching on branch alone (§17.1.3) would then end the
        // wrong call; count it unexpected instead.
        if let Some(t) = self.txns.get(ti)
            && self.sess.generation(t.owner) == t.owner_gen
            && let Some(s) = self.sess.get(t.owner)
            && matches!(s.kind, Kind::UacCall | Kind::UacReg | Kind::UacOptions)
            && msg.call_id() != Some(&hex16(s.call_id)[..])
        {
            self.counters.unexpected += 1;
            return;
        }
        let Some(t) = self.txns.get_mut(ti) else {
            return;
        };
        if (200..700).contains(&code)
            && !matches!(t.state, TxState::Completed)
            && let Some(c) = self.counters.responses.get_mut(code as usize)
        {
            *c += 1;
        }
        let (kind, state, owner, owner_gen, sent_ns, rtx) = (
            t.kind,
            t.state,
            t.owner,
            t.owner_gen,
            t.sent_ns,
            t.retransmitted,
        );
        let owner_ok = self.sess.generation(owner) == owner_gen && self.sess.get(owner).is_some();
        if code >= 200 && self.rtt_events && !rtx && state != TxState::Completed {
            let rtt = Duration::from_nanos(self.ns(now).saturating_sub(sent_ns));
            self.emit(Event::TransactionRtt { method: m, rtt });
        }
        match kind {
            TxKind::ClientInvite => {
                if code < 200 {
                    if state == TxState::Calling
                        && let Some(t) = self.txns.get_mut(ti)
                    {
                        // Timers A and B stop; the TU's ring guard bounds Proceeding.
                        t.state = TxState::Proceeding;
                        let (a, b) = (t.tm_rtx, t.tm_to);
                        self.wheel.cancel(a);
                        self.wheel.cancel(b);
                    }
                    if matches!(state, TxState::Calling | TxState::Proceeding) && owner_ok {
                        self.uac_invite_provisional(now, owner, code, msg);
                    }
                } else if code < 300 {
                    // §17.1.1.2: a 2xx terminates the transaction; the TU ACKs.
                    self.txn_free(ti);
                    if owner_ok {
                        self.uac_invite_2xx(now, from, owner, msg);
                    }
                } else {
                    // §17.1.1.3: ACK inside the transaction. The Completed
                    // state (Timer D) shrinks to an absorber record: a
                    // retransmitted final response is ACKed again from it.
                    let ack = self.build_ack_failure(ti, owner, msg);
                    let dest = self.txns.get(ti).and_then(|t| t.dest).unwrap_or(from);
                    self.send(dest, ack);
                    self.txn_free(ti);
                    self.absorb_add(now, key, REACK | code, Life::D);
                    if owner_ok {
                        self.uac_invite_failure(now, owner, code, msg);
                    }
                }
            }
            TxKind::ClientNonInvite => {
                if code < 200 {
                    if let Some(t) = self.txns.get_mut(ti)
                        && t.state == TxState::Trying
                    {
                        t.state = TxState::Proceeding;
                    }
                } else {
                    // Completed (Timer K) needs no state here: a late
                    // retransmission of this response finds no transaction
                    // and, carrying our Via, is counted as a duplicate.
                    self.txn_free(ti);
                    if owner_ok {
                        self.uac_final(now, owner, ti, m, code, msg);
                    }
                }
            }
            TxKind::ServerInvite => {
                self.counters.unexpected += 1;
            }
        }
    }
}

/// `t + d`, saturating far in the future instead of panicking on a
/// absurd duration from the driver.
#[inline]
pub(super) fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(10 * 365 * 86_400)))
        .unwrap_or(t)
}

/// Map a codec method to the engine's compact kind.
pub(super) fn method_kind(m: &Method<'_>) -> MethodKind {
    match m {
        Method::Invite => MethodKind::Invite,
        Method::Ack => MethodKind::Ack,
        Method::Bye => MethodKind::Bye,
        Method::Cancel => MethodKind::Cancel,
        Method::Register => MethodKind::Register,
        Method::Options => MethodKind::Options,
        _ => MethodKind::Other,
    }
}

/// `z9hG4bK` + 16 hex digits.
#[inline]
pub(super) fn branch_text(id: u64) -> [u8; 23] {
    let mut b = [0u8; 23];
    b[..7].copy_from_slice(b"z9hG4bK");
    b[7..].copy_from_slice(&hex16(id));
    b
}

/// Next hop for a SIP URI whose host is an IP literal (the engine does no
/// DNS); the port defaults to 5060.
pub(super) fn hop_of(uri: &[u8]) -> Option<Flow> {
    let u = sip::parse_uri(strip_angle(uri))?;
    let host = u.host;
    let host = host
        .strip_prefix(b"[")
        .and_then(|h| h.strip_suffix(b"]"))
        .unwrap_or(host);
    let ip: IpAddr = std::str::from_utf8(host).ok()?.parse().ok()?;
    Some(Flow::udp(SocketAddr::new(ip, u.port.unwrap_or(5060))))
}

/// The URI inside `<...>` (name-addr form), or the input.
pub(super) fn strip_angle(v: &[u8]) -> &[u8] {
    match (memchr::memchr(b'<', v), memchr::memchr(b'>', v)) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v,
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

/// Whether `b` has the shape of a branch this engine generates
/// (`z9hG4bK` + 16 lowercase hex digits, see `build_req`): only such a
/// branch with our Via can be a late duplicate; any other is unexpected.
fn is_our_branch(b: &[u8]) -> bool {
    b.len() == 23
        && b.starts_with(b"z9hG4bK")
        && b[7..]
            .iter()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-call slab entries stay "a few hundred bytes" (issue 3).
    #[test]
    fn slot_sizes() {
        let (s, t) = (std::mem::size_of::<Sess>(), std::mem::size_of::<Txn>());
        eprintln!("Sess {s} B, Txn {t} B");
        assert!(s <= 320, "Sess is {s} bytes");
        assert!(t <= 128, "Txn is {t} bytes");
    }

    #[test]
    fn pack_roundtrip() {
        let v = pack(tk::S_RING, 0xdead_beef, 0x1234_5678);
        assert_eq!(unpack(v), (tk::S_RING, 0x34_5678, 0xdead_beef));
    }
}
