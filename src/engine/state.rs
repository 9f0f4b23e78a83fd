//! The state the engine keeps: transactions (RFC 3261 §17), sessions
//! (dialogs of §12, registrations of §10, pings), registrar bindings, and
//! the session slots' lifecycle. Types only, plus allocation and release
//! of session slots; the layers that drive them are `txn`, `uac` and `uas`.

use std::collections::HashMap;
use std::time::Duration;

use super::endpoint::Endpoint;
use super::event::MethodKind;
use super::util::IdHash;
use super::wheel::TimerId;
use crate::flow::Flow;

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

impl Endpoint {
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
