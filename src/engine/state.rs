//! The state the engine keeps: transactions (RFC 3261 §17), sessions
//! (dialogs of §12, registrations of §10, pings), registrar bindings, and
//! the session slots' lifecycle. Types only, plus allocation and release
//! of session slots; the layers that drive them are `txn`, `uac` and `uas`.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::endpoint::Endpoint;
use super::event::MethodKind;
use super::timers::Life;
use super::util::IdHash;
use super::wheel::TimerId;
use crate::flow::Flow;

/// A map from a seeded 64-bit key (of a transaction, dialog or AOR) to a
/// slab index. The key is already well mixed, so the map does no hashing.
pub(super) type IndexByKey = HashMap<u64, u32, IdHash>;

/// "No slot": an unset transaction or session index.
pub(super) const NONE: u32 = u32::MAX;

/// Transaction kinds of RFC 3261 §17. The server non-INVITE transaction
/// has no slab entry at all: it answers at once, and its Completed state
/// (Timer J) is an absorber record, see [`Endpoint::absorb_add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(clippy::enum_variant_names)]
pub(super) enum TxKind {
    #[default]
    ClientInvite,
    ClientNonInvite,
    ServerInvite,
}

/// Transaction states (§17.1.1, §17.1.2, §17.2.1; Accepted from RFC 6026).
/// Completed of a client INVITE and Confirmed of a server INVITE are
/// absorber records, not states of a slab entry.
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
/// so retransmission is a copy, never a rebuild.
#[derive(Debug, Default)]
pub(super) struct Txn {
    pub kind: TxKind,
    pub state: TxState,
    pub method: Option<MethodKind>,
    /// Its key in `client_txns` or `server_txns`.
    pub key: u64,
    /// Where its messages go: the next hop of a client transaction, the
    /// flow the request came in on for a server one (§18.2.2).
    pub dest: Option<Flow>,
    pub msg: Vec<u8>,
    /// The current retransmission interval (Timers A, E, G double it).
    pub interval_ms: u64,
    /// When the request was first sent (RTT events).
    pub sent_ns: u64,
    pub retransmitted: bool,
    /// Its final response may be a challenge whose answer a measured
    /// latency includes (see [`super::Endpoint::prompt_replies`]).
    pub prompt: bool,
    /// The session it belongs to (its TU) and that slot's generation.
    pub owner: u32,
    pub owner_gen: u32,
    /// Retransmission timer (A, E, G, 2xx of §13.3.1.4).
    pub retransmit_timer: TimerId,
    /// Timeout timer (B, F, H, L).
    pub timeout_timer: TimerId,
}

/// What a session slot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum SessKind {
    #[default]
    Free,
    UacCall,
    UacReg,
    UacOptions,
    UasCall,
}

/// Session (dialog / registration / ping) states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum SessState {
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
    pub kind: SessKind,
    pub state: SessState,
    /// Its key in `dialogs` (Call-ID + local tag).
    pub key: u64,
    pub call_id: u64,
    /// Our tag (From of a UAC, To of a UAS).
    pub tag: u64,
    /// Global index of the user (UAC).
    pub user: u32,
    pub cseq: u32,
    /// CSeq number and branch of the INVITE (CANCEL and ACK reuse them). A
    /// UAS call sends no INVITE: `inv_branch` holds its peer's key for the
    /// per-peer call cap instead.
    pub inv_cseq: u32,
    pub inv_branch: u64,
    /// The transaction the session waits on (INVITE, REGISTER, OPTIONS;
    /// the server INVITE of a UAS call) and its generation.
    pub txn: u32,
    pub txn_gen: u32,
    pub cancel_txn: u32,
    /// `F_*` bits.
    pub flags: u16,
    pub auth_tries: u8,
    pub redirects: u8,
    /// 423 retries (§10.2.8).
    pub retries: u8,
    /// Digest nonce count of the kept challenge (RFC 7616 §3.4).
    pub nonce_count: u32,
    /// Registration lifetime asked for, in seconds.
    pub expires: u32,
    /// A registration of mixed mode (not an attempt of its own).
    pub mixed: bool,
    pub intended_ns: u64,
    pub started_ns: u64,
    pub answered_ns: u64,
    pub bye_ns: u64,
    /// Start of the current phase (unregistration).
    pub phase_ns: u64,
    pub hold: Duration,
    /// Next hop of the session's requests.
    pub dest: Option<Flow>,
    pub buf: Vec<u8>,
    pub request_uri: Span,
    pub to_uri: Span,
    pub remote_tag: Span,
    /// Remote target (the 2xx's Contact, §12.1.2).
    pub target: Span,
    /// Route set (Record-Route reversed, comma-joined).
    pub routes: Span,
    /// The INVITE of a ringing UAS call, to build its final response from.
    pub invite: Span,
    /// The challenge (`WWW-Authenticate` / `Proxy-Authenticate` value) to
    /// answer in the next request.
    pub challenge: Vec<u8>,
    pub challenge_is_proxy: bool,
    /// Slot 0: ring guard, ring or hold; slot 1: refresh or CANCEL guard
    /// (see [`Endpoint::arm_sess`]).
    pub timers: [TimerId; 2],
}

/// `Sess::flags`: a CANCEL is to be sent once a provisional arrives.
pub(super) const F_CANCEL_WANTED: u16 = 1;
/// The CANCEL went out.
pub(super) const F_CANCEL_SENT: u16 = 2;
/// A provisional response arrived (CANCEL is allowed, §9.1).
pub(super) const F_PROV: u16 = 4;
/// `CallSetup` was reported (RFC 6076 SRD).
pub(super) const F_SETUP: u16 = 8;
/// The ring guard fired: the call ends as a timeout.
pub(super) const F_TIMED_OUT: u16 = 16;
/// `RegisterDone` was reported (later failures are refresh failures).
pub(super) const F_REPORTED: u16 = 32;
/// A 2xx answered the INVITE.
pub(super) const F_ANSWERED: u16 = 64;
/// The last REGISTER carried credentials.
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
        let mut challenge = std::mem::take(&mut self.challenge);
        buf.clear();
        challenge.clear();
        *self = Sess {
            buf,
            challenge,
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
    /// Each binding's Contact URI in `buf` and its expiry.
    pub contacts: Vec<Binding>,
    /// Expiry timer of the soonest binding.
    pub expiry_timer: TimerId,
}

/// One binding of an address-of-record.
#[derive(Debug, Clone, Copy)]
pub(super) struct Binding {
    /// The Contact URI: `Aor::buf[start..start + len]`.
    pub start: u16,
    pub len: u16,
    /// Expiry, ns since the endpoint's epoch.
    pub expiry: u64,
    /// The Contact's host and port are the address the REGISTER came from:
    /// the registering UA bound its own address (and, with authentication,
    /// proved it receives there by answering the challenge). Only such
    /// bindings are proxy targets (see `proxy`).
    pub own_address: bool,
}

impl Aor {
    /// The Contact URI of binding `b`.
    pub fn uri(&self, b: &Binding) -> &[u8] {
        self.buf
            .get(b.start as usize..b.start as usize + b.len as usize)
            .unwrap_or(b"")
    }
}

/// Absorber records: the waiting state of a finished transaction shrunk
/// to one map entry and one FIFO slot (see [`Endpoint::absorb_add`]).
/// Records of one lifetime expire in the order they were added, so each
/// lifetime has its own FIFO. A Timer J record (server non-INVITE
/// Completed) also keeps its final response, byte for byte, in `responses`:
/// a ring appended in the order of the J FIFO and trimmed with it, bounded
/// by `response_cap` (the oldest records go first beyond it).
#[derive(Debug, Default)]
pub(super) struct Absorbers {
    /// Transaction key → its record.
    pub records: HashMap<u64, Absorbed, IdHash>,
    /// (expiry ns since epoch, key, record sequence number, end of its
    /// response in `responses`), one FIFO per [`Life`].
    pub expiry: [VecDeque<(u64, u64, u64, u64)>; Life::COUNT],
    /// Stored responses of J records, oldest first.
    pub responses: VecDeque<u8>,
    /// Logical offset of `responses[0]` (offsets only grow).
    pub responses_base: u64,
    /// Most bytes `responses` may hold.
    pub response_cap: usize,
    /// Sequence number of the next record, so that an expiring FIFO slot
    /// removes only the record it was added with.
    pub next_seq: u64,
}

/// One absorber record.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Absorbed {
    /// The final response code (server non-INVITE), 0 (server INVITE
    /// Confirmed), or [`REACK`] | code (client INVITE).
    pub code: u16,
    pub seq: u64,
    /// Server non-INVITE: fingerprint of the request and its source (a
    /// retransmission is the same bytes from the same peer, §17.2.3), and
    /// where its response lies in `responses` (logical offset, length).
    pub fingerprint: u64,
    pub at: u64,
    pub len: u32,
}

impl Absorbers {
    /// Remove the record a FIFO slot was added with (unless a later record
    /// of the same key replaced it) and the stored bytes up to its end.
    pub(super) fn forget(&mut self, (_, key, seq, end): (u64, u64, u64, u64)) {
        if self.records.get(&key).is_some_and(|r| r.seq == seq) {
            self.records.remove(&key);
        }
        if end > self.responses_base {
            let k = ((end - self.responses_base) as usize).min(self.responses.len());
            self.responses.drain(..k);
            self.responses_base += k as u64;
        }
    }
}

/// Absorber code bit marking a client INVITE that got a non-2xx: a
/// retransmission of that response is ACKed again (§17.1.1.2, Timer D).
pub(super) const REACK: u16 = 0x8000;

/// Sizes of the live state, for leak checks and memory accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateSizes {
    /// Live sessions (calls, registrations, pings; both sides).
    pub sessions: usize,
    /// Live transactions.
    pub transactions: usize,
    /// Absorber records (Timer J of server non-INVITE, Timer I of server
    /// INVITE, Timer D of client INVITE transactions).
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

impl Endpoint {
    /// A fresh session slot of `kind`, reset.
    pub(super) fn sess_new(&mut self, kind: SessKind) -> u32 {
        let (si, _, s) = self.sessions.insert();
        s.reset();
        s.kind = kind;
        si
    }

    /// Free a session, its dialog map entry and any transaction still
    /// waiting on it without timers of its own (an INVITE in Proceeding).
    pub(super) fn sess_free(&mut self, si: u32) {
        let Some(s) = self.sessions.get(si) else {
            return;
        };
        let (key, txn, txn_gen, timers) = (s.key, s.txn, s.txn_gen, s.timers);
        if let Some(d) = s.dest
            && d.conn.is_key()
            && s.kind != SessKind::UasCall
            && self
                .role
                .client()
                .is_some_and(|c| c.connection == crate::flow::ConnectionMode::Call)
        {
            // One connection per attempt: the attempt is over.
            self.released.push_back(d);
        }
        if s.kind == SessKind::UasCall {
            let pk = s.inv_branch;
            if let Some(n) = self.peer_calls.get_mut(&pk) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.peer_calls.remove(&pk);
                }
            }
        }
        for id in timers {
            self.wheel.cancel(id);
        }
        if self.dialogs.get(&key) == Some(&si) {
            self.dialogs.remove(&key);
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
        self.sessions.remove(si);
    }
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
}
