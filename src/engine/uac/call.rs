//! UAC calls: INVITE with SDP, provisional responses, 2xx → ACK with the
//! dialog's route set (§12.1.2, §13.2.2.4), hold, BYE (§15); CANCEL after a
//! provisional (§9.1); 407 re-INVITE with credentials; 3xx following the
//! Contact; re-ACK of a retransmitted 2xx.

use std::time::{Duration, Instant};

use super::Req;
use super::pick_challenge;
use crate::engine::endpoint::Endpoint;
use crate::engine::event::{Event, MethodKind, Outcome};
use crate::engine::state::{
    F_ANSWERED, F_CANCEL_SENT, F_CANCEL_WANTED, F_PROV, F_SETUP, F_TIMED_OUT, NONE, SessKind,
    SessState, Span,
};
use crate::engine::timers::{TimerKind, later};
use crate::engine::util::mix;
use crate::engine::wire::{hop_of, strip_angle};
use crate::flow::{ConnId, Flow, TransportKind};
use crate::sip::{Contact, Message};

/// Callee of a new call.
#[derive(Debug, Clone, Copy)]
pub(super) enum Callee {
    /// `ClientConfig::callee`: the next entry of its pattern, or a field
    /// of the caller's users-file line.
    Configured,
    /// Global user index.
    User(u32),
}

impl Endpoint {
    pub(super) fn start_call(
        &mut self,
        now: Instant,
        intended: Instant,
        hold: Duration,
        caller: u32,
        callee: Callee,
    ) {
        let (target, ring_timeout, cancel) = match self.role.client() {
            Some(c) => (c.target_flow(), c.ring_timeout, c.cancel_ratio),
            None => return,
        };
        let cancel = self.rng.chance(cancel);
        // Request-URI = To URI = sip:callee@domain. A pattern's entries are
        // spread over workers and segments as users are (stride and offset).
        let pick = self.role.client().map_or(0, |c| {
            c.user_offset as u64 + self.callee_cursor * c.user_stride.max(1) as u64
        });
        self.scratch.name.clear();
        self.scratch.name.extend_from_slice(b"sip:");
        match (callee, self.role.client()) {
            (Callee::Configured, Some(c)) => {
                self.callee_cursor += 1;
                c.callee
                    .write(&c.users, caller as usize, pick, &mut self.scratch.name);
            }
            (Callee::User(u), Some(c)) => c.users.write_name(u as usize, &mut self.scratch.name),
            _ => {}
        }
        self.scratch.name.push(b'@');
        self.scratch.name.extend_from_slice(&self.wire.domain);
        let target = self.keyed_flow(target, caller);
        let si = self.uac_session(
            SessKind::UacCall,
            SessState::Inviting,
            caller,
            now,
            intended,
        );
        let uri = std::mem::take(&mut self.scratch.name);
        if let Some(s) = self.sessions.get_mut(si) {
            s.hold = hold;
            s.dest = Some(target);
            if cancel {
                s.flags |= F_CANCEL_WANTED;
            }
            s.request_uri = s.put(&uri);
            s.to_uri = s.request_uri;
        }
        self.scratch.name = uri;
        self.live_attempts += 1;
        self.send_invite(now, si);
        self.arm_sess(later(now, ring_timeout), TimerKind::RingGuard, si);
    }

    fn send_invite(&mut self, now: Instant, si: u32) {
        let branch = self.new_id();
        let Some(s) = self.sessions.get_mut(si) else {
            return;
        };
        s.inv_branch = branch;
        s.inv_cseq = s.cseq;
        if !s.challenge.is_empty() {
            s.nonce_count += 1;
        }
        let (cseq, dest) = (s.cseq, s.dest);
        let Some(dest) = dest else { return };
        let (ti, g) =
            self.send_request(now, si, Req::Invite, MethodKind::Invite, branch, cseq, dest);
        if let Some(s) = self.sessions.get_mut(si) {
            s.txn = ti;
            s.txn_gen = g;
        }
    }

    /// CANCEL (§9.1): only after a provisional response, same branch and
    /// CSeq number as the INVITE, its own non-INVITE transaction.
    pub(super) fn send_cancel(&mut self, now: Instant, si: u32) {
        let Some(s) = self.sessions.get_mut(si) else {
            return;
        };
        if s.state != SessState::Inviting || s.flags & F_PROV == 0 || s.flags & F_CANCEL_SENT != 0 {
            return;
        }
        s.flags |= F_CANCEL_SENT;
        let (branch, cseq, dest) = (s.inv_branch, s.inv_cseq, s.dest);
        let Some(dest) = dest else { return };
        let (ti, _) =
            self.send_request(now, si, Req::Cancel, MethodKind::Cancel, branch, cseq, dest);
        if let Some(s) = self.sessions.get_mut(si) {
            s.cancel_txn = ti;
        }
        let guard = self.timers.t64();
        self.arm_sess(later(now, guard), TimerKind::CancelGuard, si);
    }

    pub(super) fn send_bye(&mut self, now: Instant, si: u32) {
        let branch = self.new_id();
        let bye_ns = self.to_ns(now);
        let Some(s) = self.sessions.get_mut(si) else {
            return;
        };
        s.cseq += 1;
        s.state = SessState::Byeing;
        s.bye_ns = bye_ns;
        let (cseq, dest) = (s.cseq, s.dest);
        let Some(dest) = dest else { return };
        self.send_request(now, si, Req::Bye, MethodKind::Bye, branch, cseq, dest);
    }

    fn send_ack_2xx(&mut self, si: u32) {
        let Some(s) = self.sessions.get(si) else {
            return;
        };
        // The same branch for every retransmission of this ACK.
        let (branch, cseq, dest) = (mix(s.call_id, u64::from(s.inv_cseq)), s.inv_cseq, s.dest);
        let Some(dest) = dest else { return };
        let msg = self.build_req(si, Req::Ack2xx, branch, cseq, dest.transport);
        self.send(dest, msg);
    }

    pub(in crate::engine) fn uac_invite_provisional(
        &mut self,
        now: Instant,
        si: u32,
        code: u16,
        _msg: &Message<'_>,
    ) {
        let ns = self.to_ns(now);
        let Some(s) = self.sessions.get_mut(si) else {
            return;
        };
        if s.kind != SessKind::UacCall || s.state != SessState::Inviting {
            return;
        }
        s.flags |= F_PROV;
        // RFC 6076 §4.2: SRD ends at the first 18x (100 Trying does not count).
        if code > 100 && s.flags & F_SETUP == 0 {
            s.flags |= F_SETUP;
            let (i, st) = (s.intended_ns, s.started_ns);
            self.emit(Event::CallSetup {
                intended: self.to_instant(i),
                invite_sent: self.to_instant(st),
                first_provisional_or_200: self.to_instant(ns),
            });
        }
        let Some(s) = self.sessions.get(si) else {
            return;
        };
        if s.flags & (F_CANCEL_WANTED | F_TIMED_OUT) != 0 && s.flags & F_CANCEL_SENT == 0 {
            self.send_cancel(now, si);
        }
    }

    pub(in crate::engine) fn uac_invite_2xx(
        &mut self,
        now: Instant,
        from: Flow,
        si: u32,
        msg: &Message<'_>,
    ) {
        let ns = self.to_ns(now);
        let Some(s) = self.sessions.get_mut(si) else {
            return;
        };
        if s.kind != SessKind::UacCall || s.state != SessState::Inviting {
            return;
        }
        // Dialog state from the 2xx (§12.1.2): remote tag, remote target
        // (Contact), route set (Record-Route reversed).
        let rtag = msg.to().and_then(|t| t.tag).unwrap_or(b"");
        s.remote_tag = s.put(rtag);
        let target = msg.contacts().find_map(|c| match c {
            Contact::Addr { addr, .. } => Some(addr.uri),
            Contact::Star => None,
        });
        let target = target.unwrap_or(b"");
        s.target = s.put(strip_angle(target));
        let rr: Vec<&[u8]> = msg.record_routes().map(|r| r.raw).collect();
        if !rr.is_empty() {
            let start = s.buf.len();
            for (i, r) in rr.iter().rev().enumerate() {
                if i > 0 {
                    s.buf.push(b',');
                }
                s.buf.extend_from_slice(r);
            }
            let len = s.buf.len() - start;
            s.routes = if len <= u16::MAX as usize && s.buf.len() <= u16::MAX as usize {
                Span(start as u16, len as u16)
            } else {
                Span(0, 0)
            };
        }
        let transport = s.dest.map_or(from.transport, |d| d.transport);
        let first_hop = if rr.is_empty() {
            hop_of(s.get(s.target), transport)
        } else {
            rr.last().and_then(|r| hop_of(r, transport))
        };
        // In-dialog requests keep the attempt's connection key.
        let key = s.dest.map_or(ConnId::ANY, |d| d.conn);
        s.dest = Some(first_hop.map_or(from, |h| Flow { conn: key, ..h }));
        s.answered_ns = ns;
        s.flags |= F_ANSWERED;
        s.txn = NONE;
        s.state = SessState::Confirmed;
        let setup = s.flags & F_SETUP == 0;
        s.flags |= F_SETUP;
        let crossed = s.flags & (F_CANCEL_SENT | F_TIMED_OUT) != 0 || self.shutting_down;
        let (i, st, hold) = (s.intended_ns, s.started_ns, s.hold);
        self.send_ack_2xx(si);
        if setup {
            self.emit(Event::CallSetup {
                intended: self.to_instant(i),
                invite_sent: self.to_instant(st),
                first_provisional_or_200: now,
            });
        }
        self.emit(Event::CallAnswered {
            intended: self.to_instant(i),
            invite_sent: self.to_instant(st),
            answered: now,
        });
        if crossed || hold.is_zero() {
            // A 200 that crossed our CANCEL: ACK it, then BYE (§9.1).
            self.send_bye(now, si);
        } else {
            self.arm_sess(later(now, hold), TimerKind::Hold, si);
        }
    }

    /// A 2xx to an INVITE whose transaction is gone: a retransmission
    /// (the UAS did not get our ACK), so ACK again (§13.2.2.4).
    pub(in crate::engine) fn on_stray_2xx(
        &mut self,
        _now: Instant,
        _from: Flow,
        msg: &Message<'_>,
    ) {
        let (Some(cid), Some(tag)) = (msg.call_id(), msg.from().and_then(|f| f.tag)) else {
            self.counters.unexpected += 1;
            return;
        };
        let key = self.dialog_key(cid, tag);
        match self.dialogs.get(&key).copied() {
            Some(si)
                if self
                    .sessions
                    .get(si)
                    .is_some_and(|s| s.flags & F_ANSWERED != 0) =>
            {
                self.counters.duplicates += 1;
                self.send_ack_2xx(si);
            }
            _ => self.counters.unexpected += 1,
        }
    }

    pub(in crate::engine) fn uac_invite_failure(
        &mut self,
        now: Instant,
        si: u32,
        code: u16,
        msg: &Message<'_>,
    ) {
        let Some(s) = self.sessions.get_mut(si) else {
            return;
        };
        if s.kind != SessKind::UacCall || s.state != SessState::Inviting {
            return;
        }
        s.txn = NONE;
        let cancelled = s.flags & F_CANCEL_SENT != 0;
        let timed_out = s.flags & F_TIMED_OUT != 0;
        if (code == 401 || code == 407)
            && s.auth_tries == 0
            && !cancelled
            && !self.shutting_down
            && let Some(ch) = pick_challenge(self.role.client(), msg, code == 407)
        {
            s.take_challenge(ch, code == 407);
            s.flags &= !F_PROV;
            self.send_invite(now, si);
            return;
        }
        if (300..400).contains(&code) && s.redirects < 3 && !cancelled && !self.shutting_down {
            let contact = msg.contacts().find_map(|c| match c {
                Contact::Addr { addr, .. } => Some(addr.uri),
                Contact::Star => None,
            });
            if let Some(uri) = contact {
                let uri = strip_angle(uri);
                let transport = s.dest.map_or(TransportKind::Udp, |d| d.transport);
                match hop_of(uri, transport) {
                    Some(dest) => {
                        s.request_uri = s.put(uri);
                        let key = s.dest.map_or(ConnId::ANY, |d| d.conn);
                        s.dest = Some(Flow { conn: key, ..dest });
                        s.redirects += 1;
                        s.cseq += 1;
                        s.flags &= !F_PROV;
                        self.send_invite(now, si);
                        return;
                    }
                    None => {
                        self.call_done(now, si, Outcome::TransportError, None);
                        return;
                    }
                }
            }
        }
        let outcome = if timed_out {
            Outcome::Timeout
        } else if cancelled && code == 487 {
            Outcome::Cancelled
        } else {
            Outcome::Failed(code)
        };
        self.call_done(now, si, outcome, None);
    }

    /// One call attempt ends: exactly one `CallDone`, state freed.
    pub(super) fn call_done(
        &mut self,
        now: Instant,
        si: u32,
        outcome: Outcome,
        bye_done: Option<Instant>,
    ) {
        let Some(s) = self.sessions.get(si) else {
            return;
        };
        let opt = |ns: u64| (ns != 0).then(|| self.epoch + Duration::from_nanos(ns));
        let ev = Event::CallDone {
            intended: self.to_instant(s.intended_ns),
            started: self.to_instant(s.started_ns),
            outcome,
            bye_sent: opt(s.bye_ns),
            bye_done,
            answered: (s.flags & F_ANSWERED != 0).then(|| self.to_instant(s.answered_ns)),
        };
        let _ = now;
        self.emit(ev);
        self.sess_free(si);
        self.live_attempts = self.live_attempts.saturating_sub(1);
    }

    /// The far end sent BYE on an established call.
    pub(in crate::engine) fn remote_bye(&mut self, now: Instant, si: u32) {
        self.call_done(now, si, Outcome::Success, None);
    }

    /// Final response to our BYE: the call ends (a 2xx is a success unless
    /// the call was cancelled or timed out on the way).
    pub(super) fn bye_final(&mut self, now: Instant, si: u32, code: u16) {
        let Some(s) = self.sessions.get(si) else {
            return;
        };
        let outcome = if s.flags & (F_CANCEL_SENT | F_TIMED_OUT) != 0 {
            if s.flags & F_TIMED_OUT != 0 {
                Outcome::Timeout
            } else {
                Outcome::Cancelled
            }
        } else if (200..300).contains(&code) {
            Outcome::Success
        } else {
            Outcome::Failed(code)
        };
        self.call_done(now, si, outcome, Some(now));
    }

    /// Timers of a UAC call: hold time over (BYE), ring guard, CANCEL guard.
    pub(in crate::engine) fn call_timer(&mut self, now: Instant, kind: TimerKind, si: u32) {
        let Some(s) = self.sessions.get_mut(si) else {
            return;
        };
        match (s.state, kind) {
            (SessState::Confirmed, TimerKind::Hold) => self.send_bye(now, si),
            (SessState::Inviting, TimerKind::RingGuard) => {
                // Rang too long: cancel (after a provisional) and report a timeout.
                s.flags |= F_TIMED_OUT;
                if s.flags & F_PROV != 0 {
                    self.send_cancel(now, si);
                }
            }
            (SessState::Inviting, TimerKind::CancelGuard) => {
                // §9.1: no final response 64·T1 after CANCEL: give up.
                let o = if s.flags & F_TIMED_OUT != 0 {
                    Outcome::Timeout
                } else {
                    Outcome::Cancelled
                };
                self.call_done(now, si, o, None);
            }
            _ => {}
        }
    }
}
