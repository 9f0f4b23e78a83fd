//! The answering UAS (RFC 3261 §13.3): 100/180 at once, 200 after a ring
//! delay drawn per call, busy (486) and no-answer (480) ratios, per-peer
//! call caps (503), re-INVITE in a dialog, ACK of the 2xx (§13.3.1.4), BYE
//! (§15.1.2) and CANCEL (§9.2: 200, then 487 for the INVITE).

use std::time::Instant;

use super::AuthResult;
use crate::engine::endpoint::Endpoint;
use crate::engine::event::MethodKind;
use crate::engine::state::{NONE, SessKind, SessState, Span, TxState};
use crate::engine::timers::{TimerKind, later};
use crate::engine::util::hex16;
use crate::flow::Flow;
use crate::sip::{self, Message};

impl Endpoint {
    pub(super) fn uas_invite(&mut self, now: Instant, from: Flow, msg: &Message<'_>, key: u64) {
        let Some(call_id) = msg.call_id() else { return };
        if let Some(tag) = msg.to().and_then(|t| t.tag) {
            // A re-INVITE (e.g. hold): accept it in the existing dialog.
            let dk = self.dialog_key(call_id, tag);
            if self.dialogs.contains_key(&dk) {
                let out = self.build_resp(msg, 200, None, &[], true);
                self.send(from, out);
            } else {
                self.counters.rejected += 1;
                self.reply(from, msg, 481, None, &[]);
            }
            return;
        }
        let with_credentials = self.answer.auth_invite && msg.proxy_authorization().is_some();
        if !with_credentials && self.throttled(now) {
            self.reply_unavailable(from, msg, key);
            return;
        }
        // Caps on live server transactions, in all and per source address:
        // a stateless 503 beyond them, which is never retransmitted.
        if !self.server_txn_room(from) {
            self.reply_unavailable(from, msg, key);
            return;
        }
        if self.answer.auth_invite {
            let r = self.check_auth(now, msg, b"INVITE", true);
            if !matches!(r, AuthResult::Ok { first: true })
                && with_credentials
                && self.throttled(now)
            {
                self.reply_unavailable(from, msg, key);
                return;
            }
            if !matches!(r, AuthResult::Ok { .. }) {
                let ti = self.server_invite_txn(now, from, key, NONE);
                let tag = self.stateless_tag(key);
                let (code, stale) = match r {
                    AuthResult::Challenge { stale } => (407, stale),
                    AuthResult::NotFound => (404, false),
                    AuthResult::UriMismatch => (400, false),
                    _ => (403, false),
                };
                let mut hdr = Vec::new();
                if code == 407 {
                    self.write_challenge(now, stale, &mut hdr);
                }
                let extra: &[(&[u8], &[u8])] = if code == 407 {
                    &[(b"Proxy-Authenticate", &hdr)]
                } else {
                    &[]
                };
                let out = self.build_resp(msg, code, Some(&tag), extra, false);
                self.txn_respond(now, ti, out, code);
                return;
            }
        }
        let ti = self.server_invite_txn(now, from, key, NONE);
        // Drawn before anything else random so a fixed ring (the default)
        // leaves every other draw where it was.
        let ring = self.answer.ring.sample(&mut self.rng);
        if !ring.is_zero() {
            // §17.2.1 wants a 100 only when the TU will not answer within
            // 200 ms; an immediate answer (ring 0, the benchmark case) skips it.
            let trying = self.build_resp(msg, 100, None, &[], false);
            self.txn_respond(now, ti, trying, 100);
        }
        if self.rng.chance(self.answer.busy) {
            let tag = self.stateless_tag(key);
            let out = self.build_resp(msg, 486, Some(&tag), &[], false);
            self.txn_respond(now, ti, out, 486);
            return;
        }
        // Bound what one peer can make us hold (issue 8): a client that
        // never sends BYE would otherwise keep calls until `max_call`.
        let pk = self.peer_key(from);
        let cap = self
            .role
            .server()
            .map_or(u32::MAX, |c| c.max_calls_per_peer);
        if self.peer_calls.get(&pk).is_some_and(|n| *n >= cap) {
            self.counters.rejected += 1;
            let tag = self.stateless_tag(key);
            let out = self.build_resp(
                msg,
                503,
                Some(&tag),
                &[(b"Retry-After" as &[u8], b"5" as &[u8])],
                false,
            );
            self.txn_respond(now, ti, out, 503);
            return;
        }
        let tag = self.new_id();
        let th = hex16(tag);
        let dk = self.dialog_key(call_id, &th);
        let si = self.sess_new(SessKind::UasCall);
        *self.peer_calls.entry(pk).or_insert(0) += 1;
        let no_answer = self.rng.chance(self.answer.no_answer);
        let txn_gen = self.txns.generation(ti);
        let sess_gen = self.sessions.generation(si);
        if let Some(s) = self.sessions.get_mut(si) {
            s.key = dk;
            s.tag = tag;
            // UAS calls never send an INVITE: the field holds the peer key.
            s.inv_branch = pk;
            s.txn = ti;
            s.txn_gen = txn_gen;
            s.state = if no_answer {
                SessState::NoAnswer
            } else if ring.is_zero() {
                SessState::Answered
            } else {
                SessState::Ringing
            };
            if no_answer || !ring.is_zero() {
                // Kept to build the 200 / 487 / 480 later.
                s.invite = s.put(msg.as_bytes());
            }
        }
        if let Some(t) = self.txns.get_mut(ti) {
            t.owner = si;
            t.owner_gen = sess_gen;
        }
        self.dialogs.insert(dk, si);
        let ringing = self.build_resp(msg, 180, Some(&th), &[], false);
        self.txn_respond(now, ti, ringing, 180);
        if no_answer {
            let d = self.answer.no_answer_timeout;
            self.arm_sess(later(now, d), TimerKind::RingGuard, si);
        } else if ring.is_zero() {
            self.answer_call(now, si, ti, msg);
        } else {
            self.arm_sess(later(now, ring), TimerKind::Ring, si);
        }
    }

    /// Answer a ringing call now: 200 with the SDP answer on its INVITE
    /// transaction (§13.3.1.4).
    fn answer_call(&mut self, now: Instant, si: u32, ti: u32, inv: &Message<'_>) {
        let Some(s) = self.sessions.get_mut(si) else {
            return;
        };
        s.state = SessState::Answered;
        let th = hex16(s.tag);
        let ok = self.build_resp(inv, 200, Some(&th), &[], true);
        self.counters.answered += 1;
        self.txn_respond(now, ti, ok, 200);
    }

    /// A final response to a ringing INVITE from the stored request
    /// (200 after the ring delay, 487 after CANCEL, 480 unanswered).
    fn finish_stored(&mut self, now: Instant, si: u32, code: u16) {
        let Some(s) = self.sessions.get_mut(si) else {
            return;
        };
        let (ti, tg) = (s.txn, s.txn_gen);
        let th = hex16(s.tag);
        let inv_span = s.invite;
        let buf = std::mem::take(&mut s.buf);
        let live = ti != NONE && self.txns.generation(ti) == tg && self.txns.get(ti).is_some();
        if live
            && let Some(bytes) =
                buf.get(inv_span.0 as usize..inv_span.0 as usize + inv_span.1 as usize)
            && let Ok(inv) = sip::parse(bytes)
        {
            if code == 200 {
                if let Some(s) = self.sessions.get_mut(si) {
                    s.state = SessState::Answered;
                }
                let ok = self.build_resp(&inv, 200, Some(&th), &[], true);
                self.counters.answered += 1;
                self.txn_respond(now, ti, ok, 200);
            } else {
                let out = self.build_resp(&inv, code, Some(&th), &[], false);
                self.txn_respond(now, ti, out, code);
            }
        }
        if let Some(s) = self.sessions.get_mut(si) {
            // The stored INVITE is done with; a call in hold should not keep
            // a kilobyte of buffer capacity around.
            s.buf = if buf.capacity() > 256 {
                Vec::new()
            } else {
                buf
            };
            s.buf.clear();
            s.invite = Span(0, 0);
        }
        if code != 200 {
            // The transaction lives on (Completed) to absorb the ACK.
            if let Some(s) = self.sessions.get_mut(si) {
                s.txn = NONE;
            }
            self.sess_free(si);
        }
    }

    pub(in crate::engine) fn uas_timer(&mut self, now: Instant, kind: TimerKind, si: u32) {
        let Some(s) = self.sessions.get(si) else {
            return;
        };
        match (s.state, kind) {
            (SessState::Ringing, TimerKind::Ring) => self.finish_stored(now, si, 200),
            (SessState::NoAnswer | SessState::Ringing, TimerKind::RingGuard) => {
                self.finish_stored(now, si, 480)
            }
            (SessState::Established, TimerKind::Hold) => self.sess_free(si),
            _ => {}
        }
    }

    pub(super) fn on_ack(&mut self, now: Instant, msg: &Message<'_>, via: &sip::Via<'_>) {
        let key = self.server_txn_key(via, MethodKind::Ack);
        if self.server_txn_ack(now, key) {
            return;
        }
        // ACK for a 2xx: a new transaction, matched to the dialog (§13.3.1.4).
        let (Some(cid), Some(tag)) = (msg.call_id(), msg.to().and_then(|t| t.tag)) else {
            self.counters.unexpected += 1;
            return;
        };
        let dk = self.dialog_key(cid, tag);
        let Some(&si) = self.dialogs.get(&dk) else {
            self.counters.unexpected += 1;
            return;
        };
        let Some(s) = self.sessions.get_mut(si) else {
            return;
        };
        match (s.kind, s.state) {
            (SessKind::UasCall, SessState::Answered) => {
                s.state = SessState::Established;
                let (ti, tg) = (s.txn, s.txn_gen);
                s.txn = NONE;
                if ti != NONE && self.txns.generation(ti) == tg {
                    self.txn_free(ti);
                }
                let max = self.answer.max_call;
                self.arm_sess(later(now, max), TimerKind::Hold, si);
            }
            (SessKind::UasCall, SessState::Established) => self.counters.duplicates += 1,
            _ => self.counters.unexpected += 1,
        }
    }

    pub(super) fn uas_bye(&mut self, now: Instant, from: Flow, msg: &Message<'_>, key: u64) {
        let dk = match (msg.call_id(), msg.to().and_then(|t| t.tag)) {
            (Some(c), Some(t)) => Some(self.dialog_key(c, t)),
            _ => None,
        };
        let si = dk.and_then(|k| self.dialogs.get(&k).copied());
        let code = match si.and_then(|si| self.sessions.get(si).map(|s| (si, s.kind, s.state))) {
            Some((si, SessKind::UasCall, _)) => {
                self.sess_free(si);
                200
            }
            Some((si, SessKind::UacCall, SessState::Confirmed)) => {
                // The far end hung up first.
                self.reply_final(now, from, msg, key, 200, None, &[]);
                self.remote_bye(now, si);
                return;
            }
            _ => {
                self.counters.rejected += 1;
                481
            }
        };
        let tag = self.stateless_tag(key);
        self.reply_final(now, from, msg, key, code, Some(&tag), &[]);
    }

    /// §9.2: 200 for the CANCEL; if the INVITE has no final response yet,
    /// 487 for it. No matching INVITE transaction: 481.
    pub(super) fn uas_cancel(
        &mut self,
        now: Instant,
        from: Flow,
        msg: &Message<'_>,
        via: &sip::Via<'_>,
        key: u64,
    ) {
        let ikey = self.server_txn_key(via, MethodKind::Invite);
        let Some(&ti) = self.server_txns.get(&ikey) else {
            let tag = self.stateless_tag(key);
            self.counters.rejected += 1;
            self.reply_final(now, from, msg, key, 481, Some(&tag), &[]);
            return;
        };
        let (state, owner, og) = match self.txns.get(ti) {
            Some(t) => (t.state, t.owner, t.owner_gen),
            None => return,
        };
        let s_tag = (owner != NONE && self.sessions.generation(owner) == og)
            .then(|| self.sessions.get(owner).map(|s| hex16(s.tag)))
            .flatten()
            .unwrap_or_else(|| self.stateless_tag(key));
        self.reply_final(now, from, msg, key, 200, Some(&s_tag), &[]);
        if state == TxState::Proceeding && owner != NONE && self.sessions.generation(owner) == og {
            self.finish_stored(now, owner, 487);
        }
    }
}
