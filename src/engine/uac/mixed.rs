//! Mixed mode: register the users (Contacts pointing at this endpoint),
//! then call between them through the target once both ends of a call are
//! registered, answering on this endpoint's own UAS side.

use std::time::{Duration, Instant};

use super::call::Callee;
use crate::engine::endpoint::Endpoint;
use crate::engine::event::{Event, Outcome};

/// Per-user state of mixed mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(in crate::engine) enum MixedUser {
    #[default]
    Unregistered,
    Registering,
    Registered,
}

/// A mixed-mode call waiting for its users' registrations.
#[derive(Debug, Clone, Copy)]
pub(in crate::engine) struct Pending {
    pub intended: Instant,
    pub hold: Duration,
    pub caller: u32,
    pub callee: u32,
}

impl Endpoint {
    /// A `mixed` scenario attempt: a call from the next user to the one
    /// after, placed once both are registered (each registers on first use).
    pub(super) fn start_mixed(&mut self, now: Instant, intended: Instant, hold: Duration) -> bool {
        let n = self.n_local();
        let Some(k) = self.next_user() else {
            return false;
        };
        if self.mixed_users.len() != n {
            self.mixed_users.resize(n, MixedUser::Unregistered);
        }
        let kc = (k + 1) % n;
        let (gc, gd) = (self.global_user(k), self.global_user(kc));
        self.pending_calls.push(Pending {
            intended,
            hold,
            caller: gc,
            callee: gd,
        });
        for kk in [k, kc] {
            if self.mixed_users.get(kk) == Some(&MixedUser::Unregistered) {
                self.mixed_users[kk] = MixedUser::Registering;
                let g = self.global_user(kk);
                self.start_reg(now, intended, Duration::ZERO, g, true);
            }
        }
        self.kick_pending(now);
        true
    }

    fn registered(&self, g: u32) -> bool {
        self.mixed_users.get(self.local_user(g)) == Some(&MixedUser::Registered)
    }

    /// Place every waiting mixed call whose two users are registered.
    pub(super) fn kick_pending(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending_calls.len() {
            let p = self.pending_calls[i];
            if self.registered(p.caller) && self.registered(p.callee) {
                self.pending_calls.swap_remove(i);
                self.start_call(now, p.intended, p.hold, p.caller, Callee::User(p.callee));
            } else {
                i += 1;
            }
        }
    }

    /// A mixed registration failed: calls waiting for that user fail with it.
    pub(super) fn fail_pending(&mut self, now: Instant, user: u32, o: Outcome) {
        let mut i = 0;
        while i < self.pending_calls.len() {
            let p = self.pending_calls[i];
            if p.caller == user || p.callee == user {
                self.pending_calls.swap_remove(i);
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
