//! UAC flows: registration (RFC 3261 §10), calls (§13–§15, CANCEL §9),
//! OPTIONS (§11), and the mixed mode that registers users and calls between
//! them. This module starts attempts (one round-robin user cursor shared by
//! every scenario), stops them (`shutdown`, `abandon`) and routes what the
//! transaction layer reports to the flow it belongs to; `build` writes the
//! requests, `call`, `register`, `options` and `mixed` are the flows.

use std::time::{Duration, Instant};

use super::config::{ClientConfig, Party, Scenario};
use super::endpoint::Endpoint;
use super::event::{Event, MethodKind, Outcome};
use super::state::{F_CANCEL_SENT, F_CANCEL_WANTED, F_PROV, Sess, SessKind, SessState};
use super::util::hex16;
use crate::auth;
use crate::sip::Message;

mod build;
mod call;
mod mixed;
mod options;
mod register;

pub(super) use build::Req;
pub(super) use mixed::{MixedUser, Pending};

use call::Callee;

impl Endpoint {
    /// This worker's `k`-th user as an index into the whole user list
    /// (workers and segments take disjoint strides of it).
    pub(super) fn global_user(&self, k: usize) -> u32 {
        let Some(cfg) = self.role.client() else {
            return 0;
        };
        (cfg.user_offset + k * cfg.user_stride.max(1)) as u32
    }
    /// The inverse of [`Self::global_user`].
    fn local_user(&self, g: u32) -> usize {
        let Some(cfg) = self.role.client() else {
            return 0;
        };
        (g as usize).saturating_sub(cfg.user_offset) / cfg.user_stride.max(1)
    }
    /// How many users this worker owns.
    fn n_local(&self) -> usize {
        let Some(cfg) = self.role.client() else {
            return 0;
        };
        let n = cfg.users.len().min(1 << 22);
        if cfg.user_offset < n {
            (n - cfg.user_offset).div_ceil(cfg.user_stride.max(1))
        } else {
            0
        }
    }

    /// The next of this worker's users (a local index), round robin: one
    /// cursor for every scenario, so a mix spreads its attempts over all
    /// users. `None` when the worker has no users.
    pub(super) fn next_user(&mut self) -> Option<usize> {
        let n = self.n_local();
        if n == 0 {
            return None;
        }
        let k = self.user_cursor % n;
        self.user_cursor = self.user_cursor.wrapping_add(1);
        Some(k)
    }

    /// A new UAC session of `kind` in `state` for global user `user`: a
    /// fresh Call-ID and From tag (RFC 3261 §8.1.1.4, §8.1.1.3), CSeq 1,
    /// the attempt's start times, and its entry in `dialogs`.
    fn uac_session(
        &mut self,
        kind: SessKind,
        state: SessState,
        user: u32,
        now: Instant,
        intended: Instant,
    ) -> u32 {
        let call_id = self.new_id();
        let tag = self.new_id();
        let key = self.dialog_key(&hex16(call_id), &hex16(tag));
        let (started_ns, intended_ns) = (self.to_ns(now), self.to_ns(intended));
        let si = self.sess_new(kind);
        if let Some(s) = self.sessions.get_mut(si) {
            s.key = key;
            s.call_id = call_id;
            s.tag = tag;
            s.user = user;
            s.cseq = 1;
            s.state = state;
            s.intended_ns = intended_ns;
            s.started_ns = started_ns;
        }
        self.dialogs.insert(key, si);
        si
    }

    /// Where session `si`'s out-of-dialog requests go: the target, with
    /// the key of the attempt's connection over a stream transport (see
    /// `keyed_flow`), fixed at its first request so a challenge resend,
    /// refresh or unregistration takes the same connection.
    pub(super) fn attempt_flow(&mut self, si: u32) -> Option<crate::flow::Flow> {
        let s = self.sessions.get(si)?;
        if let Some(d) = s.dest {
            return Some(d);
        }
        let user = s.user;
        let target = self.role.client()?.target_flow();
        let flow = self.keyed_flow(target, user);
        if let Some(s) = self.sessions.get_mut(si) {
            s.dest = Some(flow);
        }
        Some(flow)
    }

    /// Start one attempt of the configured scenario: a registration, a call
    /// or a ping (RFC 6076 attempts). `intended` is the schedule's start time
    /// (events carry it for coordinated-omission correction), `hold` the
    /// call hold time or registration lifetime sampled by the driver.
    /// Returns false when nothing can start (shutting down, server endpoint,
    /// every user of a register scenario busy).
    pub fn start_attempt(&mut self, now: Instant, intended: Instant, hold: Duration) -> bool {
        if self.scen.is_some() {
            return self.scen_start(now, intended, hold);
        }
        let Some(cfg) = self.role.client() else {
            return false;
        };
        self.start_attempt_as(cfg.scenario, now, intended, hold)
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
        if self.shutting_down {
            return false;
        }
        let Some(cfg) = self.role.client() else {
            return false;
        };
        let configured_callee = cfg.callee != Party::Default;
        let n_all = cfg.users.len().min(1 << 22);
        match scenario {
            Scenario::Register => self.start_register_attempt(now, intended, hold),
            Scenario::Call => {
                let Some(k) = self.next_user() else {
                    return false;
                };
                let g = self.global_user(k);
                let callee = if configured_callee {
                    Callee::Configured
                } else {
                    Callee::User(((g as usize + 1) % n_all.max(1)) as u32)
                };
                self.start_call(now, intended, hold, g, callee);
                true
            }
            Scenario::Options => {
                let g = self.next_user().map_or(0, |k| self.global_user(k));
                self.start_options(now, intended, g);
                true
            }
            Scenario::Mixed => self.start_mixed(now, intended, hold),
        }
    }

    /// Stop: no new attempts; calls in hold send BYE, ringing calls that
    /// had a provisional are cancelled, held registrations unregister.
    /// Everything else finishes by its own timers, so `in_flight()` reaches
    /// zero within about 64·T1.
    pub fn shutdown(&mut self, now: Instant) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        let pend = std::mem::take(&mut self.pending_calls);
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
        let live: Vec<u32> = self.sessions.live_indices().collect();
        for si in live {
            let Some(s) = self.sessions.get(si) else {
                continue;
            };
            match (s.kind, s.state) {
                (SessKind::UacCall, SessState::Confirmed) => self.send_bye(now, si),
                (SessKind::UacCall, SessState::Inviting) => {
                    let prov = s.flags & F_PROV != 0;
                    let sent = s.flags & F_CANCEL_SENT != 0;
                    if let Some(s) = self.sessions.get_mut(si) {
                        s.flags |= F_CANCEL_WANTED;
                    }
                    if prov && !sent {
                        self.send_cancel(now, si);
                    }
                }
                (SessKind::UacReg, SessState::Registered) if s.mixed || !s.hold.is_zero() => {
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
        self.scen_abandon(now);
        let live: Vec<u32> = self.sessions.live_indices().collect();
        for si in live {
            let Some(s) = self.sessions.get(si) else {
                continue;
            };
            match (s.kind, s.state) {
                (SessKind::UacCall, _) => self.call_done(now, si, Outcome::Timeout, None),
                (SessKind::UacReg, SessState::Registered) => {}
                (SessKind::UacReg, _) => self.reg_fail(now, si, Outcome::Timeout),
                (SessKind::UacOptions, _) => self.options_done(now, si, Outcome::Timeout),
                _ => {}
            }
        }
    }

    /// Final response to a client non-INVITE transaction of session `si`.
    pub(in crate::engine) fn uac_final(
        &mut self,
        now: Instant,
        si: u32,
        _ti: u32,
        m: MethodKind,
        code: u16,
        msg: &Message<'_>,
    ) {
        let Some(s) = self.sessions.get(si) else {
            return;
        };
        match (s.kind, m) {
            (SessKind::UacCall, MethodKind::Bye) => self.bye_final(now, si, code),
            (SessKind::UacReg, MethodKind::Register) => self.reg_response(now, si, code, msg),
            (SessKind::UacOptions, MethodKind::Options) => self.options_final(now, si, code),
            _ => {}
        }
    }

    /// A client transaction owned by `si` ended without a final response:
    /// Timer B or F (`Outcome::Timeout`) or a transport error. A CANCEL that
    /// times out leaves the call to its CANCEL guard; one the transport
    /// could not deliver ends the call (the INVITE cannot be answered
    /// either).
    pub(super) fn on_txn_failed(&mut self, now: Instant, si: u32, ti: u32, outcome: Outcome) {
        let Some(s) = self.sessions.get(si) else {
            return;
        };
        match (s.kind, s.state) {
            (SessKind::UacCall, SessState::Inviting)
                if s.txn == ti || outcome == Outcome::TransportError =>
            {
                self.call_done(now, si, outcome, None)
            }
            (SessKind::UacCall, SessState::Byeing) => self.call_done(now, si, outcome, None),
            (SessKind::UacReg, _) => self.reg_fail(now, si, outcome),
            (SessKind::UacOptions, _) => self.options_done(now, si, outcome),
            _ => {}
        }
    }
}

/// The challenge of a 401/407 to answer. RFC 8760 §2.4: a server may send
/// one `WWW-Authenticate` (`Proxy-Authenticate`) per algorithm, preferred
/// first, and the client uses the topmost one it supports. With configured
/// preferences the best-ranked acceptable one wins; none acceptable means
/// the attempt fails with the 401/407.
pub(super) fn pick_challenge<'m>(
    client: Option<&ClientConfig>,
    msg: &Message<'m>,
    proxy: bool,
) -> Option<&'m [u8]> {
    let name: &[u8] = if proxy {
        b"Proxy-Authenticate"
    } else {
        b"WWW-Authenticate"
    };
    let prefs = client.map_or(&[][..], |c| &c.digest_algorithms[..]);
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

impl Sess {
    /// Keep the challenge to answer and count the retry it causes: the next
    /// request carries credentials for it with a fresh nonce count and the
    /// next CSeq (RFC 3261 §22.2, §8.1.3.5).
    fn take_challenge(&mut self, ch: &[u8], proxy: bool) {
        self.challenge.clear();
        self.challenge.extend_from_slice(ch);
        self.challenge_is_proxy = proxy;
        self.nonce_count = 0;
        self.auth_tries += 1;
        self.cseq += 1;
    }
}
