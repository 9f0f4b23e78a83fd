//! UAC registration (RFC 3261 §10.2): REGISTER, 401/407 with digest
//! (`stale=true` re-challenge, RFC 7616 §3.3), 423 with Min-Expires
//! (§10.2.8), refresh before expiry, unregister (`Expires: 0`).

use std::time::{Duration, Instant};

use super::{MixedUser, Req, pick_challenge};
use crate::auth;
use crate::engine::endpoint::Endpoint;
use crate::engine::event::{Event, MethodKind, Outcome};
use crate::engine::state::{F_LAST_AUTH, F_REPORTED, SessKind, SessState};
use crate::engine::timers::{TimerKind, later};
use crate::sip::{Contact, Message};

impl Endpoint {
    /// A `register` scenario attempt: the next user not already in a
    /// registration (a user stays in one at a time); false when every
    /// user is busy.
    pub(super) fn start_register_attempt(
        &mut self,
        now: Instant,
        intended: Instant,
        hold: Duration,
    ) -> bool {
        let n = self.n_local();
        if self.user_registering.len() != n {
            self.user_registering.resize(n, false);
        }
        for _ in 0..n {
            let Some(k) = self.next_user() else {
                return false;
            };
            if !self.user_registering.get(k).copied().unwrap_or(true) {
                self.user_registering[k] = true;
                let g = self.global_user(k);
                self.start_reg(now, intended, hold, g, false);
                return true;
            }
        }
        false
    }

    pub(super) fn start_reg(
        &mut self,
        now: Instant,
        intended: Instant,
        hold: Duration,
        user: u32,
        mixed: bool,
    ) {
        let expires = self.role.client().map_or(3600, |c| c.expires);
        let si = self.uac_session(
            SessKind::UacReg,
            SessState::Registering,
            user,
            now,
            intended,
        );
        if let Some(s) = self.sessions.get_mut(si) {
            s.expires = expires;
            s.hold = hold;
            s.mixed = mixed;
        }
        if !mixed {
            self.live_attempts += 1;
        }
        self.send_register(now, si, expires);
    }

    pub(super) fn send_register(&mut self, now: Instant, si: u32, expires: u32) {
        let branch = self.new_id();
        let Some(dest) = self.attempt_flow(si) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(si) else {
            return;
        };
        if s.challenge.is_empty() {
            s.flags &= !F_LAST_AUTH;
        } else {
            s.nonce_count += 1;
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

    pub(super) fn unregister(&mut self, now: Instant, si: u32) {
        let ns = self.to_ns(now);
        let Some(s) = self.sessions.get_mut(si) else {
            return;
        };
        s.state = SessState::Unregistering;
        s.phase_ns = ns;
        s.cseq += 1;
        self.send_register(now, si, 0);
    }

    pub(super) fn reg_response(&mut self, now: Instant, si: u32, code: u16, msg: &Message<'_>) {
        let shutting = self.shutting_down;
        let Some(s) = self.sessions.get_mut(si) else {
            return;
        };
        let unreg = s.state == SessState::Unregistering;
        if (200..300).contains(&code) {
            if unreg {
                let (i, p) = (s.intended_ns, s.phase_ns);
                self.emit(Event::Unregistered {
                    intended: self.to_instant(i),
                    started: self.to_instant(p),
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
            s.state = SessState::Registered;
            let (i, st, hold, mixed, user) = (s.intended_ns, s.started_ns, s.hold, s.mixed, s.user);
            if first {
                self.emit(Event::RegisterDone {
                    intended: self.to_instant(i),
                    started: self.to_instant(st),
                    finished: now,
                    outcome: Outcome::Success,
                });
            }
            if mixed {
                let k = self.local_user(user);
                if let Some(m) = self.mixed_users.get_mut(k) {
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
            self.arm_sess(later(now, refresh), TimerKind::Refresh, si);
            if first && !mixed {
                let end = later(self.to_instant(st), hold);
                self.arm_sess(end.max(now), TimerKind::Hold, si);
            }
            return;
        }
        if (code == 401 || code == 407) && s.auth_tries < 3 {
            let ch = pick_challenge(self.role.client(), msg, code == 407);
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

    pub(super) fn reg_fail(&mut self, now: Instant, si: u32, outcome: Outcome) {
        let Some(s) = self.sessions.get(si) else {
            return;
        };
        let (i, st, p) = (s.intended_ns, s.started_ns, s.phase_ns);
        if s.state == SessState::Unregistering {
            self.emit(Event::Unregistered {
                intended: self.to_instant(i),
                started: self.to_instant(p),
                finished: now,
                outcome,
            });
        } else if s.flags & F_REPORTED == 0 {
            self.emit(Event::RegisterDone {
                intended: self.to_instant(i),
                started: self.to_instant(st),
                finished: now,
                outcome,
            });
        } else {
            self.counters.refresh_failed += 1;
        }
        self.reg_end(now, si, Some(outcome));
    }

    fn reg_end(&mut self, now: Instant, si: u32, failed: Option<Outcome>) {
        let Some(s) = self.sessions.get(si) else {
            return;
        };
        let (mixed, user) = (s.mixed, s.user);
        self.sess_free(si);
        let k = self.local_user(user);
        if mixed {
            if let Some(m) = self.mixed_users.get_mut(k) {
                *m = MixedUser::Unregistered;
            }
            if let Some(o) = failed {
                self.fail_pending(now, user, o);
            }
        } else {
            self.live_attempts = self.live_attempts.saturating_sub(1);
            if let Some(b) = self.user_registering.get_mut(k) {
                *b = false;
            }
        }
    }

    /// Timers of a registration: hold over (unregister), refresh due.
    pub(in crate::engine) fn register_timer(&mut self, now: Instant, kind: TimerKind, si: u32) {
        let Some(s) = self.sessions.get_mut(si) else {
            return;
        };
        match (s.state, kind) {
            (SessState::Registered, TimerKind::Hold) => self.unregister(now, si),
            (SessState::Registered, TimerKind::Refresh) => {
                s.cseq += 1;
                s.state = SessState::Registering;
                let e = s.expires;
                self.send_register(now, si, e);
            }
            _ => {}
        }
    }
}
