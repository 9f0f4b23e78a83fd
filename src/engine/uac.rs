//! UAC flows: registration (RFC 3261 §10), calls (§13–§15, CANCEL §9),
//! OPTIONS (§11), and the mixed mode that registers users and calls between
//! them. Requests are built with `sip::Builder` into pooled buffers from
//! per-endpoint constant fragments and the compact session state.

use std::time::{Duration, Instant};

use super::config::Scenario;
use super::endpoint::{Endpoint, MixedUser, Pending};
use super::event::{Event, MethodKind, Outcome};
use super::state::{
    F_ANSWERED, F_CANCEL_SENT, F_CANCEL_WANTED, F_LAST_AUTH, F_PROV, F_REPORTED, F_SETUP,
    F_TIMED_OUT, Kind, NONE, Span, St, TxKind,
};
use super::timers::{later, tk};
use super::util::{dec, hex16, mix};
use super::wire::{branch_text, hop_of, strip_angle};
use crate::auth;
use crate::flow::Flow;
use crate::sip::{self, Builder, Contact, Message, Method};

/// Which request `build_req` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Req {
    Invite,
    Cancel,
    Ack2xx,
    Bye,
    Register(u32),
    Options,
}

/// Callee of a new call.
#[derive(Debug, Clone, Copy)]
pub(super) enum Callee {
    /// `ClientConfig::callee`.
    Fixed,
    /// Global user index.
    User(u32),
}

impl Endpoint {
    fn global_user(&self, k: usize) -> u32 {
        let Some(cc) = &self.cc else { return 0 };
        (cc.user_offset + k * cc.user_stride.max(1)) as u32
    }
    fn local_user(&self, g: u32) -> usize {
        let Some(cc) = &self.cc else { return 0 };
        (g as usize).saturating_sub(cc.user_offset) / cc.user_stride.max(1)
    }
    fn n_local(&self) -> usize {
        let Some(cc) = &self.cc else { return 0 };
        let n = cc.users.len().min(1 << 22);
        if cc.user_offset < n {
            (n - cc.user_offset).div_ceil(cc.user_stride.max(1))
        } else {
            0
        }
    }

    /// Start one attempt of the configured scenario: a registration, a call
    /// or a ping (RFC 6076 attempts). `intended` is the schedule's start time
    /// (events carry it for coordinated-omission correction), `hold` the
    /// call hold time or registration lifetime sampled by the driver.
    /// Returns false when nothing can start (shutting down, server endpoint,
    /// every user of a register scenario busy).
    pub fn start_attempt(&mut self, now: Instant, intended: Instant, hold: Duration) -> bool {
        let Some(cc) = &self.cc else { return false };
        self.start_attempt_as(cc.scenario, now, intended, hold)
    }

    /// [`Self::start_attempt`] of a given scenario rather than the
    /// configured one: a weighted mix picks the scenario per attempt. Users
    /// are shared by the scenarios (one round-robin cursor), and a user
    /// stays in one registration at a time.
    pub fn start_attempt_as(
        &mut self,
        scenario: Scenario,
        now: Instant,
        intended: Instant,
        hold: Duration,
    ) -> bool {
        if self.shutting {
            return false;
        }
        let Some(cc) = &self.cc else { return false };
        let fixed_callee = cc.callee.is_some();
        let n_all = cc.users.len().min(1 << 22);
        let n = self.n_local();
        match scenario {
            Scenario::Register => {
                if n == 0 {
                    return false;
                }
                if self.reg_busy.len() != n {
                    self.reg_busy.resize(n, false);
                }
                for _ in 0..n {
                    let k = self.next_user % n;
                    self.next_user = self.next_user.wrapping_add(1);
                    if !self.reg_busy.get(k).copied().unwrap_or(true) {
                        self.reg_busy[k] = true;
                        let g = self.global_user(k);
                        self.start_reg(now, intended, hold, g, false);
                        return true;
                    }
                }
                false
            }
            Scenario::Call => {
                if n == 0 {
                    return false;
                }
                let k = self.next_user % n;
                self.next_user = self.next_user.wrapping_add(1);
                let g = self.global_user(k);
                let callee = if fixed_callee {
                    Callee::Fixed
                } else {
                    Callee::User(((g as usize + 1) % n_all.max(1)) as u32)
                };
                self.start_call(now, intended, hold, g, callee);
                true
            }
            Scenario::Options => {
                let g = if n == 0 {
                    0
                } else {
                    let k = self.next_user % n;
                    self.next_user = self.next_user.wrapping_add(1);
                    self.global_user(k)
                };
                self.start_options(now, intended, g);
                true
            }
            Scenario::Mixed => {
                if n == 0 {
                    return false;
                }
                if self.mixed.len() != n {
                    self.mixed.resize(n, MixedUser::Unregistered);
                }
                let k = self.next_user % n;
                self.next_user = self.next_user.wrapping_add(1);
                let kc = (k + 1) % n;
                let (gc, gd) = (self.global_user(k), self.global_user(kc));
                self.pending.push(Pending {
                    intended,
                    hold,
                    caller: gc,
                    callee: gd,
                });
                for kk in [k, kc] {
                    if self.mixed.get(kk) == Some(&MixedUser::Unregistered) {
                        self.mixed[kk] = MixedUser::Registering;
                        let g = self.global_user(kk);
                        self.start_reg(now, intended, Duration::ZERO, g, true);
                    }
                }
                self.kick_pending(now);
                true
            }
        }
    }

    /// Stop: no new attempts; calls in hold send BYE, ringing calls that
    /// had a provisional are cancelled, held registrations unregister.
    /// Everything else finishes by its own timers, so `in_flight()` reaches
    /// zero within about 64·T1.
    pub fn shutdown(&mut self, now: Instant) {
        if self.shutting {
            return;
        }
        self.shutting = true;
        let pend = std::mem::take(&mut self.pending);
        for p in pend {
            let at = now;
            self.emit(Event::CallDone {
                intended: p.intended,
                started: at,
                outcome: Outcome::Cancelled,
                bye_sent: None,
                bye_done: None,
                answered: None,
            });
        }
        let live: Vec<u32> = self.sess.live_indices().collect();
        for si in live {
            let Some(s) = self.sess.get(si) else { continue };
            match (s.kind, s.st) {
                (Kind::UacCall, St::Confirmed) => self.send_bye(now, si),
                (Kind::UacCall, St::Inviting) => {
                    let prov = s.flags & F_PROV != 0;
                    let sent = s.flags & F_CANCEL_SENT != 0;
                    if let Some(s) = self.sess.get_mut(si) {
                        s.flags |= F_CANCEL_WANTED;
                    }
                    if prov && !sent {
                        self.send_cancel(now, si);
                    }
                }
                (Kind::UacReg, St::Registered) if s.mixed || !s.hold.is_zero() => {
                    self.unregister(now, si)
                }
                _ => {}
            }
        }
    }

    /// Give up on every attempt still in flight, now: each ends with
    /// exactly one `*Done` event, outcome [`Outcome::Timeout`] (no final
    /// response arrived within the time the driver allowed), and its state
    /// is freed. For a driver whose drain deadline passed before Timer B/F
    /// (`--drain` shorter than 64·T1, a second signal): without it those
    /// attempts would be counted as attempted but neither succeeded nor
    /// failed. Registrations already established are left alone (their
    /// `RegisterDone` was reported). Implies [`Endpoint::shutdown`].
    pub fn abandon(&mut self, now: Instant) {
        self.shutdown(now);
        let live: Vec<u32> = self.sess.live_indices().collect();
        for si in live {
            let Some(s) = self.sess.get(si) else { continue };
            match (s.kind, s.st) {
                (Kind::UacCall, _) => self.call_done(now, si, Outcome::Timeout, None),
                (Kind::UacReg, St::Registered) => {}
                (Kind::UacReg, _) => self.reg_fail(now, si, Outcome::Timeout),
                (Kind::UacOptions, _) => self.options_done(now, si, Outcome::Timeout),
                _ => {}
            }
        }
    }

    // ---- building -------------------------------------------------------

    /// Write request `req` of session `si` into a pooled buffer.
    pub(super) fn build_req(&mut self, si: u32, req: Req, branch: u64, cseq: u32) -> Vec<u8> {
        let mut out = self.take_buf();
        let needs_auth = self.sess.get(si).is_some_and(|s| !s.chal.is_empty());
        let cnonce = if needs_auth {
            hex16(self.new_id())
        } else {
            [b'0'; 16]
        };
        let Endpoint {
            sess,
            cc,
            k,
            s1,
            s2,
            s3,
            ..
        } = self;
        let (Some(s), Some(cc)) = (sess.get(si), cc.as_ref()) else {
            return out;
        };
        // Our user's name.
        s1.clear();
        cc.users.write_name(s.user as usize, s1);
        let (method, mname): (Method<'_>, &[u8]) = match req {
            Req::Invite => (Method::Invite, b"INVITE"),
            Req::Cancel => (Method::Cancel, b"CANCEL"),
            Req::Ack2xx => (Method::Ack, b"ACK"),
            Req::Bye => (Method::Bye, b"BYE"),
            Req::Register(_) => (Method::Register, b"REGISTER"),
            Req::Options => (Method::Options, b"OPTIONS"),
        };
        let ruri: &[u8] = match req {
            Req::Invite | Req::Cancel => s.get(s.ruri),
            Req::Ack2xx | Req::Bye => s.get(s.target),
            Req::Register(_) | Req::Options => &k.domain_uri,
        };
        let bh = hex16(branch);
        let th = hex16(s.tag);
        let ch = hex16(s.call_id);
        let mut nb = [0u8; 20];
        let cs = dec(u64::from(cseq), &mut nb);
        let mut b = Builder::request(&mut out, &method, ruri);
        b.header_parts(b"Via", &[&k.via_pre, &bh]);
        b.header(b"Max-Forwards", b"70");
        if matches!(req, Req::Ack2xx | Req::Bye) && s.routes.1 > 0 {
            b.header(b"Route", s.get(s.routes));
        }
        b.header_parts(b"From", &[b"<sip:", s1, b"@", &k.domain, b">;tag=", &th]);
        match req {
            Req::Invite | Req::Cancel => {
                b.header_parts(b"To", &[b"<", s.get(s.to_uri), b">"]);
            }
            Req::Ack2xx | Req::Bye => {
                b.header_parts(b"To", &[b"<", s.get(s.to_uri), b">;tag=", s.get(s.rtag)]);
            }
            Req::Register(_) => {
                b.header_parts(b"To", &[b"<sip:", s1, b"@", &k.domain, b">"]);
            }
            Req::Options => {
                b.header_parts(b"To", &[b"<", &k.domain_uri, b">"]);
            }
        }
        b.header(b"Call-ID", &ch);
        b.header_parts(b"CSeq", &[cs, b" ", mname]);
        if matches!(req, Req::Invite | Req::Register(_)) {
            b.header_parts(b"Contact", &[b"<sip:", s1, b"@", &k.local, b">"]);
        }
        if let Req::Register(e) = req {
            b.header_u32(b"Expires", e);
        }
        if matches!(req, Req::Invite | Req::Register(_))
            && !s.chal.is_empty()
            && let Ok(mut chal) = auth::parse_challenge(&s.chal)
        {
            // `chosen_qop` prefers auth; a client configured for auth-int
            // answers with it whenever it is offered.
            if cc.digest_qop == auth::Qop::AuthInt && chal.qop_auth_int {
                chal.qop_auth = false;
            }
            s2.clear();
            cc.users.write_password(s.user as usize, s2);
            let ha1 = auth::Ha1::from_challenge(&chal, s1, s2);
            s3.clear();
            let body: &[u8] = if req == Req::Invite {
                &k.sdp_offer
            } else {
                b""
            };
            if auth::write_authorization(s3, &chal, s1, &ha1, mname, ruri, body, s.nc, &cnonce)
                .is_ok()
            {
                let name: &[u8] = if s.chal_proxy {
                    b"Proxy-Authorization"
                } else {
                    b"Authorization"
                };
                b.header(name, s3);
            }
        }
        b.header(b"User-Agent", b"sipstorm");
        if req == Req::Invite {
            b.finish(Some(b"application/sdp"), &k.sdp_offer);
        } else {
            b.finish(None, b"");
        }
        out
    }

    /// §17.1.1.3: the ACK for a non-2xx final response, built from the
    /// INVITE kept in the transaction (Request-URI, top Via, From, Call-ID,
    /// CSeq number, Route) and the response's To.
    pub(super) fn build_ack_failure(
        &mut self,
        ti: u32,
        _owner: u32,
        resp: &Message<'_>,
    ) -> Vec<u8> {
        let mut out = self.take_buf();
        let Some(t) = self.txns.get_mut(ti) else {
            return out;
        };
        let inv = std::mem::take(&mut t.msg);
        if let Ok(req) = sip::parse(&inv) {
            let mut nb = [0u8; 20];
            let seq = req.cseq().map_or(1, |c| c.seq);
            let cs = dec(u64::from(seq), &mut nb);
            let mut b =
                Builder::request(&mut out, &Method::Ack, req.uri().unwrap_or(b"sip:invalid"));
            if let Some(v) = req.top_via() {
                b.header(b"Via", v.raw);
            }
            b.header(b"Max-Forwards", b"70");
            for r in req.headers(b"Route") {
                b.header(b"Route", r);
            }
            b.header(b"From", req.header(b"From").unwrap_or(b""));
            b.header(b"To", resp.header(b"To").unwrap_or(b""));
            b.header(b"Call-ID", req.call_id().unwrap_or(b""));
            b.header_parts(b"CSeq", &[cs, b" ACK"]);
            b.finish(None, b"");
        }
        if let Some(t) = self.txns.get_mut(ti) {
            t.msg = inv;
        }
        out
    }

    /// The ACK for a retransmitted non-2xx final response whose transaction
    /// is already an absorber record (Timer D): built from the response
    /// (its Via is our top Via with the INVITE's branch), with the To URI as
    /// Request-URI; the server matches it by branch (§17.2.3).
    pub(super) fn build_ack_from_response(&mut self, resp: &Message<'_>) -> Vec<u8> {
        let mut out = self.take_buf();
        let ruri = resp.to().map_or(&b"sip:invalid"[..], |t| t.uri);
        let mut nb = [0u8; 20];
        let seq = resp.cseq().map_or(1, |c| c.seq);
        let cs = dec(u64::from(seq), &mut nb);
        let mut b = Builder::request(&mut out, &Method::Ack, ruri);
        if let Some(v) = resp.top_via() {
            b.header(b"Via", v.raw);
        }
        b.header(b"Max-Forwards", b"70");
        b.header(b"From", resp.header(b"From").unwrap_or(b""));
        b.header(b"To", resp.header(b"To").unwrap_or(b""));
        b.header(b"Call-ID", resp.call_id().unwrap_or(b""));
        b.header_parts(b"CSeq", &[cs, b" ACK"]);
        b.finish(None, b"");
        out
    }

    // ---- calls ----------------------------------------------------------

    pub(super) fn start_call(
        &mut self,
        now: Instant,
        intended: Instant,
        hold: Duration,
        caller: u32,
        callee: Callee,
    ) {
        let call_id = self.new_id();
        let tag = self.new_id();
        let key = self.dkey(&hex16(call_id), &hex16(tag));
        let cancel = self.cc.as_ref().map_or(0.0, |c| c.cancel_ratio);
        let cancel = self.rng.chance(cancel);
        let (target, ring_timeout) = match &self.cc {
            Some(c) => (c.target_flow(), c.ring_timeout),
            None => return,
        };
        // Request-URI = To URI = sip:callee@domain.
        self.s1.clear();
        self.s1.extend_from_slice(b"sip:");
        match (callee, &self.cc) {
            (Callee::Fixed, Some(c)) => self
                .s1
                .extend_from_slice(c.callee.as_deref().unwrap_or("service").as_bytes()),
            (Callee::User(u), Some(c)) => c.users.write_name(u as usize, &mut self.s1),
            _ => {}
        }
        self.s1.push(b'@');
        self.s1.extend_from_slice(&self.k.domain);
        let (ins, ints) = (self.ns(now), self.ns(intended));
        let si = self.sess_new(Kind::UacCall);
        let uri = std::mem::take(&mut self.s1);
        if let Some(s) = self.sess.get_mut(si) {
            s.key = key;
            s.call_id = call_id;
            s.tag = tag;
            s.user = caller;
            s.peer = match callee {
                Callee::User(u) => u,
                Callee::Fixed => NONE,
            };
            s.cseq = 1;
            s.st = St::Inviting;
            s.intended_ns = ints;
            s.started_ns = ins;
            s.hold = hold;
            s.dest = Some(target);
            if cancel {
                s.flags |= F_CANCEL_WANTED;
            }
            s.ruri = s.put(&uri);
            s.to_uri = s.ruri;
        }
        self.s1 = uri;
        self.dlg.insert(key, si);
        self.attempts += 1;
        self.send_invite(now, si);
        self.arm_sess(later(now, ring_timeout), tk::S_GUARD, si);
    }

    fn send_invite(&mut self, now: Instant, si: u32) {
        let branch = self.new_id();
        let Some(s) = self.sess.get_mut(si) else {
            return;
        };
        s.inv_branch = branch;
        s.inv_cseq = s.cseq;
        if !s.chal.is_empty() {
            s.nc += 1;
        }
        let (cseq, dest) = (s.cseq, s.dest);
        let Some(dest) = dest else { return };
        let (ti, g) =
            self.send_request(now, si, Req::Invite, MethodKind::Invite, branch, cseq, dest);
        if let Some(s) = self.sess.get_mut(si) {
            s.txn = ti;
            s.txn_gen = g;
        }
    }

    /// CANCEL (§9.1): only after a provisional response, same branch and
    /// CSeq number as the INVITE, its own non-INVITE transaction.
    fn send_cancel(&mut self, now: Instant, si: u32) {
        let Some(s) = self.sess.get_mut(si) else {
            return;
        };
        if s.st != St::Inviting || s.flags & F_PROV == 0 || s.flags & F_CANCEL_SENT != 0 {
            return;
        }
        s.flags |= F_CANCEL_SENT;
        let (branch, cseq, dest) = (s.inv_branch, s.inv_cseq, s.dest);
        let Some(dest) = dest else { return };
        let (ti, _) =
            self.send_request(now, si, Req::Cancel, MethodKind::Cancel, branch, cseq, dest);
        if let Some(s) = self.sess.get_mut(si) {
            s.cancel_txn = ti;
        }
        let guard = self.t.t64();
        self.arm_sess(later(now, guard), tk::S_CANCEL_GUARD, si);
    }

    /// Build request `req` of session `si` and start its client transaction
    /// (§17.1: INVITE or non-INVITE by method); returns the transaction and
    /// its generation.
    #[allow(clippy::too_many_arguments)]
    fn send_request(
        &mut self,
        now: Instant,
        si: u32,
        req: Req,
        method: MethodKind,
        branch: u64,
        cseq: u32,
        dest: Flow,
    ) -> (u32, u32) {
        let msg = self.build_req(si, req, branch, cseq);
        let key = self.ckey(&branch_text(branch), method);
        let kind = if method == MethodKind::Invite {
            TxKind::ClientInvite
        } else {
            TxKind::ClientNonInvite
        };
        self.client_txn(now, kind, method, key, dest, si, msg)
    }

    fn send_bye(&mut self, now: Instant, si: u32) {
        let branch = self.new_id();
        let bye_ns = self.ns(now);
        let Some(s) = self.sess.get_mut(si) else {
            return;
        };
        s.cseq += 1;
        s.st = St::Byeing;
        s.bye_ns = bye_ns;
        let (cseq, dest) = (s.cseq, s.dest);
        let Some(dest) = dest else { return };
        self.send_request(now, si, Req::Bye, MethodKind::Bye, branch, cseq, dest);
    }

    fn send_ack_2xx(&mut self, si: u32) {
        let Some(s) = self.sess.get(si) else { return };
        // The same branch for every retransmission of this ACK.
        let (branch, cseq, dest) = (mix(s.call_id, u64::from(s.inv_cseq)), s.inv_cseq, s.dest);
        let Some(dest) = dest else { return };
        let msg = self.build_req(si, Req::Ack2xx, branch, cseq);
        self.send(dest, msg);
    }

    pub(super) fn uac_invite_provisional(
        &mut self,
        now: Instant,
        si: u32,
        code: u16,
        _msg: &Message<'_>,
    ) {
        let ns = self.ns(now);
        let Some(s) = self.sess.get_mut(si) else {
            return;
        };
        if s.kind != Kind::UacCall || s.st != St::Inviting {
            return;
        }
        s.flags |= F_PROV;
        // RFC 6076 §4.2: SRD ends at the first 18x (100 Trying does not count).
        if code > 100 && s.flags & F_SETUP == 0 {
            s.flags |= F_SETUP;
            let (i, st) = (s.intended_ns, s.started_ns);
            self.emit(Event::CallSetup {
                intended: self.at(i),
                invite_sent: self.at(st),
                first_provisional_or_200: self.at(ns),
            });
        }
        let Some(s) = self.sess.get(si) else { return };
        if s.flags & (F_CANCEL_WANTED | F_TIMED_OUT) != 0 && s.flags & F_CANCEL_SENT == 0 {
            self.send_cancel(now, si);
        }
    }

    pub(super) fn uac_invite_2xx(&mut self, now: Instant, from: Flow, si: u32, msg: &Message<'_>) {
        let ns = self.ns(now);
        let Some(s) = self.sess.get_mut(si) else {
            return;
        };
        if s.kind != Kind::UacCall || s.st != St::Inviting {
            return;
        }
        // Dialog state from the 2xx (§12.1.2): remote tag, remote target
        // (Contact), route set (Record-Route reversed).
        let rtag = msg.to().and_then(|t| t.tag).unwrap_or(b"");
        s.rtag = s.put(rtag);
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
        let first_hop = if rr.is_empty() {
            hop_of(s.get(s.target))
        } else {
            rr.last().and_then(|r| hop_of(r))
        };
        s.dest = Some(first_hop.unwrap_or(from));
        s.answered_ns = ns;
        s.flags |= F_ANSWERED;
        s.txn = NONE;
        s.st = St::Confirmed;
        let setup = s.flags & F_SETUP == 0;
        s.flags |= F_SETUP;
        let crossed = s.flags & (F_CANCEL_SENT | F_TIMED_OUT) != 0 || self.shutting;
        let (i, st, hold) = (s.intended_ns, s.started_ns, s.hold);
        self.send_ack_2xx(si);
        if setup {
            self.emit(Event::CallSetup {
                intended: self.at(i),
                invite_sent: self.at(st),
                first_provisional_or_200: now,
            });
        }
        self.emit(Event::CallAnswered {
            intended: self.at(i),
            invite_sent: self.at(st),
            answered: now,
        });
        if crossed || hold.is_zero() {
            // A 200 that crossed our CANCEL: ACK it, then BYE (§9.1).
            self.send_bye(now, si);
        } else {
            self.arm_sess(later(now, hold), tk::S_HOLD, si);
        }
    }

    /// A 2xx to an INVITE whose transaction is gone: a retransmission
    /// (the UAS did not get our ACK), so ACK again (§13.2.2.4).
    pub(super) fn on_stray_2xx(&mut self, _now: Instant, _from: Flow, msg: &Message<'_>) {
        let (Some(cid), Some(tag)) = (msg.call_id(), msg.from().and_then(|f| f.tag)) else {
            self.counters.unexpected += 1;
            return;
        };
        let key = self.dkey(cid, tag);
        match self.dlg.get(&key).copied() {
            Some(si) if self.sess.get(si).is_some_and(|s| s.flags & F_ANSWERED != 0) => {
                self.counters.duplicates += 1;
                self.send_ack_2xx(si);
            }
            _ => self.counters.unexpected += 1,
        }
    }

    pub(super) fn uac_invite_failure(
        &mut self,
        now: Instant,
        si: u32,
        code: u16,
        msg: &Message<'_>,
    ) {
        let Some(s) = self.sess.get_mut(si) else {
            return;
        };
        if s.kind != Kind::UacCall || s.st != St::Inviting {
            return;
        }
        s.txn = NONE;
        let cancelled = s.flags & F_CANCEL_SENT != 0;
        let timed_out = s.flags & F_TIMED_OUT != 0;
        if (code == 401 || code == 407)
            && s.auth_tries == 0
            && !cancelled
            && !self.shutting
            && let Some(ch) = pick_challenge(self.cc.as_ref(), msg, code == 407)
        {
            s.take_challenge(ch, code == 407);
            s.flags &= !F_PROV;
            self.send_invite(now, si);
            return;
        }
        if (300..400).contains(&code) && s.redirects < 3 && !cancelled && !self.shutting {
            let contact = msg.contacts().find_map(|c| match c {
                Contact::Addr { addr, .. } => Some(addr.uri),
                Contact::Star => None,
            });
            if let Some(uri) = contact {
                let uri = strip_angle(uri);
                match hop_of(uri) {
                    Some(dest) => {
                        s.ruri = s.put(uri);
                        s.dest = Some(dest);
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
    fn call_done(&mut self, now: Instant, si: u32, outcome: Outcome, bye_done: Option<Instant>) {
        let Some(s) = self.sess.get(si) else { return };
        let opt = |ns: u64| (ns != 0).then(|| self.epoch + Duration::from_nanos(ns));
        let ev = Event::CallDone {
            intended: self.at(s.intended_ns),
            started: self.at(s.started_ns),
            outcome,
            bye_sent: opt(s.bye_ns),
            bye_done,
            answered: (s.flags & F_ANSWERED != 0).then(|| self.at(s.answered_ns)),
        };
        let _ = now;
        self.emit(ev);
        self.sess_free(si);
        self.attempts = self.attempts.saturating_sub(1);
    }

    /// The far end sent BYE on an established call.
    pub(super) fn remote_bye(&mut self, now: Instant, si: u32) {
        self.call_done(now, si, Outcome::Success, None);
    }

    /// Final response to a client non-INVITE transaction of session `si`.
    pub(super) fn uac_final(
        &mut self,
        now: Instant,
        si: u32,
        _ti: u32,
        m: MethodKind,
        code: u16,
        msg: &Message<'_>,
    ) {
        let Some(s) = self.sess.get(si) else { return };
        match (s.kind, m) {
            (Kind::UacCall, MethodKind::Bye) => {
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
            (Kind::UacReg, MethodKind::Register) => self.reg_response(now, si, code, msg),
            (Kind::UacOptions, MethodKind::Options) => {
                let outcome = if (200..300).contains(&code) {
                    Outcome::Success
                } else {
                    Outcome::Failed(code)
                };
                self.options_done(now, si, outcome);
            }
            _ => {}
        }
    }

    /// A client transaction owned by `si` ended without a final response:
    /// Timer B or F (`Outcome::Timeout`) or a transport error. A CANCEL that
    /// times out leaves the call to its CANCEL guard; one the transport
    /// could not deliver ends the call (the INVITE cannot be answered
    /// either).
    pub(super) fn on_txn_failed(&mut self, now: Instant, si: u32, ti: u32, outcome: Outcome) {
        let Some(s) = self.sess.get(si) else { return };
        match (s.kind, s.st) {
            (Kind::UacCall, St::Inviting) if s.txn == ti || outcome == Outcome::TransportError => {
                self.call_done(now, si, outcome, None)
            }
            (Kind::UacCall, St::Byeing) => self.call_done(now, si, outcome, None),
            (Kind::UacReg, _) => self.reg_fail(now, si, outcome),
            (Kind::UacOptions, _) => self.options_done(now, si, outcome),
            _ => {}
        }
    }

    /// Session timers of the UAC side; UAS ones go to `uas_timer`.
    pub(super) fn sess_timer(&mut self, now: Instant, kind: u8, si: u32) {
        let Some(s) = self.sess.get_mut(si) else {
            return;
        };
        match (s.kind, s.st, kind) {
            (Kind::UacCall, St::Confirmed, tk::S_HOLD) => self.send_bye(now, si),
            (Kind::UacCall, St::Inviting, tk::S_GUARD) => {
                // Rang too long: cancel (after a provisional) and report a timeout.
                s.flags |= F_TIMED_OUT;
                if s.flags & F_PROV != 0 {
                    self.send_cancel(now, si);
                }
            }
            (Kind::UacCall, St::Inviting, tk::S_CANCEL_GUARD) => {
                // §9.1: no final response 64·T1 after CANCEL: give up.
                let o = if s.flags & F_TIMED_OUT != 0 {
                    Outcome::Timeout
                } else {
                    Outcome::Cancelled
                };
                self.call_done(now, si, o, None);
            }
            (Kind::UacReg, St::Registered, tk::S_HOLD) => self.unregister(now, si),
            (Kind::UacReg, St::Registered, tk::S_REFRESH) => {
                s.cseq += 1;
                s.st = St::Registering;
                let e = s.expires;
                self.send_register(now, si, e);
            }
            (Kind::UasCall, _, _) => self.uas_timer(now, kind, si),
            _ => {}
        }
    }

    // ---- registration ---------------------------------------------------

    fn start_reg(
        &mut self,
        now: Instant,
        intended: Instant,
        hold: Duration,
        user: u32,
        mixed: bool,
    ) {
        let call_id = self.new_id();
        let tag = self.new_id();
        let key = self.dkey(&hex16(call_id), &hex16(tag));
        let expires = self.cc.as_ref().map_or(3600, |c| c.expires);
        let (ins, ints) = (self.ns(now), self.ns(intended));
        let si = self.sess_new(Kind::UacReg);
        if let Some(s) = self.sess.get_mut(si) {
            s.key = key;
            s.call_id = call_id;
            s.tag = tag;
            s.user = user;
            s.cseq = 1;
            s.expires = expires;
            s.intended_ns = ints;
            s.started_ns = ins;
            s.hold = hold;
            s.mixed = mixed;
            s.st = St::Registering;
        }
        self.dlg.insert(key, si);
        if !mixed {
            self.attempts += 1;
        }
        self.send_register(now, si, expires);
    }

    fn send_register(&mut self, now: Instant, si: u32, expires: u32) {
        let branch = self.new_id();
        let Some(dest) = self.cc.as_ref().map(|c| c.target_flow()) else {
            return;
        };
        let Some(s) = self.sess.get_mut(si) else {
            return;
        };
        if s.chal.is_empty() {
            s.flags &= !F_LAST_AUTH;
        } else {
            s.nc += 1;
            s.flags |= F_LAST_AUTH;
        }
        let cseq = s.cseq;
        self.send_request(
            now,
            si,
            Req::Register(expires),
            MethodKind::Register,
            branch,
            cseq,
            dest,
        );
    }

    fn unregister(&mut self, now: Instant, si: u32) {
        let ns = self.ns(now);
        let Some(s) = self.sess.get_mut(si) else {
            return;
        };
        s.st = St::Unregistering;
        s.phase_ns = ns;
        s.cseq += 1;
        self.send_register(now, si, 0);
    }

    fn reg_response(&mut self, now: Instant, si: u32, code: u16, msg: &Message<'_>) {
        let shutting = self.shutting;
        let Some(s) = self.sess.get_mut(si) else {
            return;
        };
        let unreg = s.st == St::Unregistering;
        if (200..300).contains(&code) {
            if unreg {
                let (i, p) = (s.intended_ns, s.phase_ns);
                self.emit(Event::Unregistered {
                    intended: self.at(i),
                    started: self.at(p),
                    finished: now,
                    outcome: Outcome::Success,
                });
                self.reg_end(now, si, None);
                return;
            }
            // Granted lifetime: our Contact's expires, else Expires, else asked.
            let granted = msg
                .contacts()
                .find_map(|c| match c {
                    Contact::Addr { expires, .. } => expires,
                    Contact::Star => None,
                })
                .or(msg.expires())
                .unwrap_or(s.expires);
            s.auth_tries = 0;
            s.retries = 0;
            let first = s.flags & F_REPORTED == 0;
            s.flags |= F_REPORTED;
            s.st = St::Registered;
            let (i, st, hold, mixed, user) = (s.intended_ns, s.started_ns, s.hold, s.mixed, s.user);
            if first {
                self.emit(Event::RegisterDone {
                    intended: self.at(i),
                    started: self.at(st),
                    finished: now,
                    outcome: Outcome::Success,
                });
            }
            if mixed {
                let k = self.local_user(user);
                if let Some(m) = self.mixed.get_mut(k) {
                    *m = MixedUser::Registered;
                }
                self.kick_pending(now);
            }
            if !mixed && hold.is_zero() {
                self.reg_end(now, si, None);
                return;
            }
            if shutting {
                self.unregister(now, si);
                return;
            }
            // Refresh at 80% of the granted lifetime (at least 1 s ahead).
            let refresh =
                Duration::from_millis(u64::from(granted.max(1)) * 800).max(Duration::from_secs(1));
            self.arm_sess(later(now, refresh), tk::S_REFRESH, si);
            if first && !mixed {
                let end = later(self.at(st), hold);
                self.arm_sess(end.max(now), tk::S_HOLD, si);
            }
            return;
        }
        if (code == 401 || code == 407) && s.auth_tries < 3 {
            let ch = pick_challenge(self.cc.as_ref(), msg, code == 407);
            let retry = match ch.map(auth::parse_challenge) {
                // Retry when we sent no credentials, or they were right but
                // the nonce went stale (RFC 7616 §3.3).
                Some(Ok(c)) => s.flags & F_LAST_AUTH == 0 || c.stale,
                _ => false,
            };
            if retry && let Some(ch) = ch {
                s.take_challenge(ch, code == 407);
                let e = if unreg { 0 } else { s.expires };
                self.send_register(now, si, e);
                return;
            }
        }
        if code == 423 && s.retries < 2 && !unreg {
            // §10.2.8: retry with at least Min-Expires.
            if let Some(min) = msg.min_expires() {
                s.expires = s.expires.max(min);
                s.retries += 1;
                s.cseq += 1;
                let e = s.expires;
                self.send_register(now, si, e);
                return;
            }
        }
        self.reg_fail(now, si, Outcome::Failed(code));
    }

    fn reg_fail(&mut self, now: Instant, si: u32, outcome: Outcome) {
        let Some(s) = self.sess.get(si) else { return };
        let (i, st, p) = (s.intended_ns, s.started_ns, s.phase_ns);
        if s.st == St::Unregistering {
            self.emit(Event::Unregistered {
                intended: self.at(i),
                started: self.at(p),
                finished: now,
                outcome,
            });
        } else if s.flags & F_REPORTED == 0 {
            self.emit(Event::RegisterDone {
                intended: self.at(i),
                started: self.at(st),
                finished: now,
                outcome,
            });
        } else {
            self.counters.refresh_failed += 1;
        }
        self.reg_end(now, si, Some(outcome));
    }

    fn reg_end(&mut self, now: Instant, si: u32, failed: Option<Outcome>) {
        let Some(s) = self.sess.get(si) else { return };
        let (mixed, user) = (s.mixed, s.user);
        self.sess_free(si);
        let k = self.local_user(user);
        if mixed {
            if let Some(m) = self.mixed.get_mut(k) {
                *m = MixedUser::Unregistered;
            }
            if let Some(o) = failed {
                self.fail_pending(now, user, o);
            }
        } else {
            self.attempts = self.attempts.saturating_sub(1);
            if let Some(b) = self.reg_busy.get_mut(k) {
                *b = false;
            }
        }
    }

    // ---- options --------------------------------------------------------

    fn start_options(&mut self, now: Instant, intended: Instant, user: u32) {
        let call_id = self.new_id();
        let tag = self.new_id();
        let branch = self.new_id();
        let key = self.dkey(&hex16(call_id), &hex16(tag));
        let Some(dest) = self.cc.as_ref().map(|c| c.target_flow()) else {
            return;
        };
        let (ins, ints) = (self.ns(now), self.ns(intended));
        let si = self.sess_new(Kind::UacOptions);
        if let Some(s) = self.sess.get_mut(si) {
            s.key = key;
            s.call_id = call_id;
            s.tag = tag;
            s.user = user;
            s.cseq = 1;
            s.intended_ns = ints;
            s.started_ns = ins;
            s.st = St::Pinging;
        }
        self.dlg.insert(key, si);
        self.attempts += 1;
        self.send_request(now, si, Req::Options, MethodKind::Options, branch, 1, dest);
    }

    fn options_done(&mut self, now: Instant, si: u32, outcome: Outcome) {
        let Some(s) = self.sess.get(si) else { return };
        let (i, st) = (s.intended_ns, s.started_ns);
        self.emit(Event::OptionsDone {
            intended: self.at(i),
            started: self.at(st),
            finished: now,
            outcome,
        });
        self.sess_free(si);
        self.attempts = self.attempts.saturating_sub(1);
    }

    // ---- mixed ----------------------------------------------------------

    fn registered(&self, g: u32) -> bool {
        self.mixed.get(self.local_user(g)) == Some(&MixedUser::Registered)
    }

    /// Place every waiting mixed call whose two users are registered.
    fn kick_pending(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending.len() {
            let p = self.pending[i];
            if self.registered(p.caller) && self.registered(p.callee) {
                self.pending.swap_remove(i);
                self.start_call(now, p.intended, p.hold, p.caller, Callee::User(p.callee));
            } else {
                i += 1;
            }
        }
    }

    /// A mixed registration failed: calls waiting for that user fail with it.
    fn fail_pending(&mut self, now: Instant, user: u32, o: Outcome) {
        let mut i = 0;
        while i < self.pending.len() {
            let p = self.pending[i];
            if p.caller == user || p.callee == user {
                self.pending.swap_remove(i);
                self.emit(Event::CallDone {
                    intended: p.intended,
                    started: now,
                    outcome: o,
                    bye_sent: None,
                    bye_done: None,
                    answered: None,
                });
            } else {
                i += 1;
            }
        }
    }
}

/// The challenge of a 401/407 to answer. RFC 8760 §2.4: a server may send
/// one `WWW-Authenticate` (`Proxy-Authenticate`) per algorithm, preferred
/// first, and the client uses the topmost one it supports. With configured
/// preferences the best-ranked acceptable one wins; none acceptable means
/// the attempt fails with the 401/407.
pub(super) fn pick_challenge<'m>(
    cc: Option<&super::config::ClientConfig>,
    msg: &Message<'m>,
    proxy: bool,
) -> Option<&'m [u8]> {
    let name: &[u8] = if proxy {
        b"Proxy-Authenticate"
    } else {
        b"WWW-Authenticate"
    };
    let prefs = cc.map_or(&[][..], |c| &c.digest_algorithms[..]);
    let mut best: Option<(usize, &'m [u8])> = None;
    for value in msg.headers(name) {
        let Ok(ch) = auth::parse_challenge(value) else {
            continue;
        };
        let rank = if prefs.is_empty() {
            0
        } else {
            match prefs.iter().position(|a| *a == ch.algorithm) {
                Some(r) => r,
                None => continue,
            }
        };
        if best.is_none_or(|(r, _)| rank < r) {
            best = Some((rank, value));
        }
    }
    best.map(|(_, v)| v)
}

impl super::state::Sess {
    /// Keep the challenge to answer and count the retry it causes: the next
    /// request carries credentials for it with a fresh nonce count and the
    /// next CSeq (RFC 3261 §22.2, §8.1.3.5).
    fn take_challenge(&mut self, ch: &[u8], proxy: bool) {
        self.chal.clear();
        self.chal.extend_from_slice(ch);
        self.chal_proxy = proxy;
        self.nc = 0;
        self.auth_tries += 1;
        self.cseq += 1;
    }
}
