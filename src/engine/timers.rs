//! Timers: what each wheel entry means (its kind, packed with the slot
//! and generation it belongs to), arming them, dispatching them when they
//! fire, and the lifetimes of absorber records (RFC 3261 §17 Timers D, I,
//! J). Cancellation is lazy: a fired entry whose slot generation moved on
//! is ignored.

use std::time::{Duration, Instant};

use super::endpoint::Endpoint;
use super::state::SessKind;
use super::wheel::TimerId;

/// What a wheel entry is for; packed into its payload with the slot it
/// belongs to (see [`pack`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum TimerKind {
    /// A transaction's retransmission: Timer A (§17.1.1.2), E (§17.1.2.2),
    /// G (§17.2.1), or the 2xx retransmission of §13.3.1.4.
    TxnRetransmit = 1,
    /// A transaction's timeout: Timer B, F, H, or L (RFC 6026 §8.4).
    TxnTimeout = 2,
    /// Session slot 0: hold time over (UAC call: BYE; registration:
    /// unregister; UAS call: the longest call it keeps).
    Hold = 4,
    /// Session slot 1: refresh a registration before it expires.
    Refresh = 5,
    /// Session slot 0: a UAS call's ring delay is over (200).
    Ring = 6,
    /// Session slot 0: a call rang too long (UAC: CANCEL and time out;
    /// UAS: 480). No §17 timer bounds Proceeding, so the TU must.
    RingGuard = 7,
    /// Session slot 1: no final response 64·T1 after our CANCEL (§9.1).
    CancelGuard = 8,
    /// A registrar binding set's soonest expiry.
    BindingExpiry = 9,
    /// A scenario call's wake-up: a pause or timewait over, a `recv`
    /// timed out.
    ScenWake = 10,
    /// A scenario call's `retrans` send is due again.
    ScenRetransmit = 11,
}

impl TimerKind {
    fn from_u8(v: u8) -> Option<TimerKind> {
        Some(match v {
            1 => TimerKind::TxnRetransmit,
            2 => TimerKind::TxnTimeout,
            4 => TimerKind::Hold,
            5 => TimerKind::Refresh,
            6 => TimerKind::Ring,
            7 => TimerKind::RingGuard,
            8 => TimerKind::CancelGuard,
            9 => TimerKind::BindingExpiry,
            10 => TimerKind::ScenWake,
            11 => TimerKind::ScenRetransmit,
            _ => return None,
        })
    }
}

/// Slab generations are kept to 24 bits in a payload.
const GEN_MASK: u32 = 0x00ff_ffff;

/// A wheel payload: kind in the top byte, 24 bits of the slot's
/// generation, the slot index in the low 32 bits.
#[inline]
pub(super) fn pack(kind: TimerKind, idx: u32, generation: u32) -> u64 {
    (u64::from(kind as u8) << 56) | (u64::from(generation & GEN_MASK) << 32) | u64::from(idx)
}

#[inline]
fn unpack(v: u64) -> (Option<TimerKind>, u32, u32) {
    (
        TimerKind::from_u8((v >> 56) as u8),
        (v >> 32) as u32 & GEN_MASK,
        v as u32,
    )
}

/// Lifetime of an absorber record: which §17 timer its waiting state
/// stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Life {
    /// Timer J, 64·T1: server non-INVITE Completed (§17.2.2).
    J = 0,
    /// Timer I, T4: server INVITE Confirmed, absorbing retransmitted ACKs
    /// (§17.2.1).
    I = 1,
    /// Timer D, max(32 s, 64·T1): client INVITE Completed, ACKing a
    /// retransmitted non-2xx again (§17.1.1.2).
    D = 2,
}

impl Life {
    /// How many lifetimes there are (one expiry FIFO each).
    pub const COUNT: usize = 3;
}

/// `t + d`, saturating far in the future instead of panicking on a
/// absurd duration from the driver.
#[inline]
pub(super) fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(10 * 365 * 86_400)))
        .unwrap_or(t)
}

impl Endpoint {
    #[inline]
    pub(super) fn arm(
        &mut self,
        at: Instant,
        kind: TimerKind,
        idx: u32,
        generation: u32,
    ) -> TimerId {
        self.wheel.insert(at, pack(kind, idx, generation))
    }

    /// (Re)arm a transaction timer; the previous one of the same slot
    /// (retransmission, or timeout) is cancelled.
    pub(super) fn arm_txn(&mut self, now: Instant, after: Duration, kind: TimerKind, ti: u32) {
        let g = self.txns.generation(ti);
        let old = match self.txns.get(ti) {
            Some(t) if kind == TimerKind::TxnRetransmit => t.retransmit_timer,
            Some(t) => t.timeout_timer,
            None => return,
        };
        self.wheel.cancel(old);
        let id = self.arm(later(now, after), kind, ti, g);
        if let Some(t) = self.txns.get_mut(ti) {
            if kind == TimerKind::TxnRetransmit {
                t.retransmit_timer = id;
            } else {
                t.timeout_timer = id;
            }
        }
    }

    /// (Re)arm a session timer: slot 1 for refresh and the CANCEL guard,
    /// slot 0 for everything else; the slot's previous timer is cancelled.
    pub(super) fn arm_sess(&mut self, at: Instant, kind: TimerKind, si: u32) {
        let g = self.sessions.generation(si);
        let slot = usize::from(matches!(kind, TimerKind::Refresh | TimerKind::CancelGuard));
        let Some(old) = self.sessions.get(si).map(|s| s.timers[slot]) else {
            return;
        };
        self.wheel.cancel(old);
        let id = self.arm(at, kind, si, g);
        if let Some(s) = self.sessions.get_mut(si) {
            s.timers[slot] = id;
        }
    }

    /// (Re)arm the expiry timer of a registrar binding set.
    pub(super) fn arm_aor(&mut self, at: Instant, ai: u32) {
        let g = self.aors.generation(ai);
        let Some(old) = self.aors.get(ai).map(|a| a.expiry_timer) else {
            return;
        };
        self.wheel.cancel(old);
        let id = self.arm(at, TimerKind::BindingExpiry, ai, g);
        if let Some(a) = self.aors.get_mut(ai) {
            a.expiry_timer = id;
        }
    }

    /// A wheel entry fired: hand it to its layer if its slot still holds
    /// the generation it was armed for.
    pub(super) fn dispatch_timer(&mut self, now: Instant, v: u64) {
        let (Some(kind), g, idx) = unpack(v) else {
            return;
        };
        match kind {
            TimerKind::TxnRetransmit | TimerKind::TxnTimeout => {
                if self.txns.get(idx).is_none() || self.txns.generation(idx) & GEN_MASK != g {
                    return;
                }
                if kind == TimerKind::TxnRetransmit {
                    self.txn_retransmit(now, idx);
                } else {
                    self.txn_timeout(now, idx);
                }
            }
            TimerKind::ScenWake | TimerKind::ScenRetransmit => {
                self.scen_timer(now, kind == TimerKind::ScenRetransmit, idx, g);
            }
            TimerKind::BindingExpiry => {
                if self.aors.get(idx).is_some() && self.aors.generation(idx) & GEN_MASK == g {
                    self.aor_expire(now, idx);
                }
            }
            _ => {
                if self.sessions.get(idx).is_none() || self.sessions.generation(idx) & GEN_MASK != g
                {
                    return;
                }
                self.sess_timer(now, kind, idx);
            }
        }
    }

    /// A session timer fired: the flow the session belongs to handles it.
    fn sess_timer(&mut self, now: Instant, kind: TimerKind, si: u32) {
        let Some(s) = self.sessions.get(si) else {
            return;
        };
        match s.kind {
            SessKind::UacCall => self.call_timer(now, kind, si),
            SessKind::UacReg => self.register_timer(now, kind, si),
            SessKind::UasCall => self.uas_timer(now, kind, si),
            SessKind::UacOptions | SessKind::Free => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_roundtrip() {
        let v = pack(TimerKind::Ring, 0xdead_beef, 0x1234_5678);
        assert_eq!(unpack(v), (Some(TimerKind::Ring), 0x34_5678, 0xdead_beef));
        assert_eq!(unpack(0).0, None, "an unknown kind is no timer");
    }
}
