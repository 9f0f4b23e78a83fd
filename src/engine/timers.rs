//! Timers: what each wheel entry means (its kind, packed with the slot
//! and generation it belongs to), arming them, dispatching them when they
//! fire, and the lifetimes of absorber records (RFC 3261 §17 Timers D, I,
//! J). Cancellation is lazy: a fired entry whose slot generation moved on
//! is ignored.

use std::time::{Duration, Instant};

use super::endpoint::Endpoint;
use super::state::Kind;
use super::wheel::TimerId;

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

    pub(super) fn dispatch_timer(&mut self, now: Instant, v: u64) {
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

    /// (Re)arm the expiry timer of a registrar binding set.
    pub(super) fn arm_aor(&mut self, at: Instant, ai: u32) {
        let g = self.aors.generation(ai);
        let Some(old) = self.aors.get(ai).map(|a| a.tm) else {
            return;
        };
        self.wheel.cancel(old);
        let id = self.arm(at, tk::AOR_EXPIRE, ai, g);
        if let Some(a) = self.aors.get_mut(ai) {
            a.tm = id;
        }
    }

    /// A session timer fired: the flow the session belongs to handles it.
    fn sess_timer(&mut self, now: Instant, kind: u8, si: u32) {
        let Some(s) = self.sess.get(si) else { return };
        match s.kind {
            Kind::UacCall => self.call_timer(now, kind, si),
            Kind::UacReg => self.register_timer(now, kind, si),
            Kind::UasCall => self.uas_timer(now, kind, si),
            Kind::UacOptions | Kind::Free => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_roundtrip() {
        let v = pack(tk::S_RING, 0xdead_beef, 0x1234_5678);
        assert_eq!(unpack(v), (tk::S_RING, 0x34_5678, 0xdead_beef));
    }
}
